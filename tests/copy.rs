//! The copy recipe on real peer-made images: through `oci:` → `oci-archive:` →
//! `docker-archive:` → `oci:` the config and layers stay byte for byte; `--all` copies an
//! index whole; a second copy copies nothing; the `copy` example runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use ocikit::copy::{BlobAction, CopyOptions, Location, copy};
use ocikit::image::oci_spec::image::Descriptor;
use ocikit::image::{AnyManifest, ImageSource, parse_platform, sha256};
use ocikit::layout::{DockerArchive, Layout, OciArchive};

mod common;
use common::{registry, run};

/// A busybox image made by umoci, named `t`.
fn umoci_image(dir: &Path) -> PathBuf {
    let layout = dir.join("umoci");
    let image = format!("{}:t", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    let bundle = dir.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &image])
        .arg(&bundle));
    std::fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    std::fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox")).unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    layout
}

fn bytes(src: &dyn ImageSource, d: &Descriptor) -> Vec<u8> {
    let mut out = Vec::new();
    src.open_blob(d).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn loc(s: String) -> Location {
    s.parse().unwrap()
}

#[test]
fn round_trip_keeps_config_and_layers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = umoci_image(d);
    let opts = CopyOptions::new();
    let hops = [
        format!("oci:{}:t", src.display()),
        format!("oci:{}:v1", d.join("a").display()),
        format!("oci-archive:{}:v1", d.join("b.tar").display()),
        format!(
            "docker-archive:{}:example/app:v1",
            d.join("c.tar").display()
        ),
        format!("oci:{}:back", d.join("e").display()),
    ];
    for pair in hops.windows(2) {
        let report = copy(&loc(pair[0].clone()), &loc(pair[1].clone()), &opts).unwrap();
        assert!(
            report.blobs.iter().all(|b| b.action == BlobAction::Copied),
            "{pair:?}"
        );
        assert_eq!(report.blobs.len(), 2);
    }
    let original = Layout::open(&src).unwrap();
    let amd64 = parse_platform("linux/amd64").unwrap();
    let first = original.fetch_image(&"t".parse().unwrap(), &amd64).unwrap();
    let back = Layout::open(d.join("e")).unwrap();
    let last = back.fetch_image(&"back".parse().unwrap(), &amd64).unwrap();
    assert_eq!(first.config.raw(), last.config.raw());
    assert_eq!(first.manifest.layers().len(), last.manifest.layers().len());
    for (a, b) in first.manifest.layers().iter().zip(last.manifest.layers()) {
        assert_eq!(a.digest(), b.digest());
        assert_eq!(bytes(&original, a), bytes(&back, b));
    }
    // The manifest itself is kept at every hop: the docker archive (Docker 25+ form)
    // stores it beside manifest.json.
    let oa = OciArchive::open(d.join("b.tar")).unwrap();
    let mid = oa.fetch_image(&"v1".parse().unwrap(), &amd64).unwrap();
    assert_eq!(mid.manifest.raw(), first.manifest.raw());
    let da = DockerArchive::open(d.join("c.tar")).unwrap();
    let stored = &da.find(Some("example/app:v1")).unwrap().manifest;
    assert_eq!(stored.raw(), first.manifest.raw());
    assert_eq!(last.manifest.raw(), first.manifest.raw());
    assert!(back.fsck().unwrap().is_ok());

    // Copying again copies nothing.
    let again = copy(&loc(hops[0].clone()), &loc(hops[1].clone()), &opts).unwrap();
    assert!(again.blobs.iter().all(|b| b.action == BlobAction::Skipped));
    assert_eq!(again.bytes_copied(), 0);

    // A docker archive skopeo wrote (legacy form, layers decompressed, no manifest) becomes
    // an OCI image in a layout, which umoci unpacks.
    let sk = d.join("sk.tar");
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &hops[0],
        &format!("docker-archive:{}:x/y:z", sk.display()),
    ]));
    let conv = d.join("conv");
    let r = copy(
        &loc(format!("docker-archive:{}:x/y:z", sk.display())),
        &loc(format!("oci:{}:c", conv.display())),
        &opts,
    )
    .unwrap();
    assert_eq!(
        r.top.media_type().to_string(),
        "application/vnd.oci.image.manifest.v1+json"
    );
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:c", conv.display()))
        .arg(d.join("conv-bundle")));
    assert!(d.join("conv-bundle/rootfs/bin/busybox").is_file());

    // skopeo reads what we wrote at every hop.
    for reference in [&hops[1], &hops[2], &hops[3], &hops[4]] {
        run(Command::new("skopeo").args(["inspect", "--raw", reference]));
    }
}

/// A two-platform index in a layout made with the layout API, named `multi`.
fn multiarch(root: &Path) -> Layout {
    let l = Layout::create(root).unwrap();
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(arch.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "arch", arch.as_bytes()).unwrap();
        let layer_tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &layer_tar).unwrap();
        let gz = gz.finish().unwrap();
        let (ld, ls) = l.write_blob(&gz[..], None, None).unwrap();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer_tar).to_string()]},
        }))
        .unwrap();
        let (cd, cs) = l.write_blob(&config[..], None, None).unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": cd.to_string(), "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": ld.to_string(), "size": ls}],
        }))
        .unwrap();
        let (md, ms) = l.write_blob(&manifest[..], None, None).unwrap();
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md.to_string(), "size": ms,
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let index = ocikit::image::Index::from_bytes(
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }))
        .unwrap(),
    )
    .unwrap();
    let d = l.put_manifest(&AnyManifest::Index(index)).unwrap();
    l.set_ref(&"multi".parse().unwrap(), &d).unwrap();
    l
}

#[test]
fn platforms_and_all() {
    let dir = tempfile::tempdir().unwrap();
    let src = multiarch(&dir.path().join("src"));
    let from = loc(format!("oci:{}:multi", src.root().display()));

    // One platform: the manifest alone, named.
    let to = loc(format!("oci:{}:arm", dir.path().join("one").display()));
    let opts = CopyOptions::new().platform(parse_platform("linux/arm64").unwrap());
    let r = copy(&from, &to, &opts).unwrap();
    assert_eq!(r.manifests.len(), 1);
    let one = Layout::open(dir.path().join("one")).unwrap();
    let img = one
        .fetch_image(
            &"arm".parse().unwrap(),
            &parse_platform("linux/amd64").unwrap(),
        )
        .unwrap();
    assert_eq!(img.config.architecture().to_string(), "arm64");

    // All: the index kept, digest and all.
    let to = loc(format!(
        "oci-archive:{}:multi",
        dir.path().join("all.tar").display()
    ));
    let r = copy(&from, &to, &CopyOptions::new().all(true)).unwrap();
    assert_eq!(r.manifests.len(), 3);
    assert_eq!(r.blobs.len(), 4);
    let a = OciArchive::open(dir.path().join("all.tar")).unwrap();
    assert_eq!(
        a.resolve(&"multi".parse().unwrap()).unwrap().digest(),
        src.resolve(&"multi".parse().unwrap()).unwrap().digest()
    );
    // A docker archive holds no index.
    let to = loc(format!(
        "docker-archive:{}:x/y:z",
        dir.path().join("d.tar").display()
    ));
    assert!(copy(&from, &to, &CopyOptions::new().all(true)).is_err());
    assert!(!dir.path().join("d.tar").exists());
    // A platform the index lacks: an error listing what it has.
    let opts = CopyOptions::new().platform(parse_platform("linux/s390x").unwrap());
    let e = copy(&from, &to, &opts).unwrap_err();
    assert!(e.to_string().contains("linux/arm64"), "{e}");
}

/// The `copy` recipe copies the host's image of an index and prints each blob; `ocikit
/// copy --all` copies every image, and skips what the destination has.
#[test]
fn copy_example_prints_what_it_copied() {
    let example = common::example_binary("copy");
    let dir = tempfile::tempdir().unwrap();
    let src = multiarch(&dir.path().join("src"));
    let from = format!("oci:{}:multi", src.root().display());
    let to = format!("oci:{}:m", dir.path().join("dst").display());
    // Config and layer, then the summary.
    let out = run(Command::new(&example).args([&from, &to]));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("copied ")).count(),
        3,
        "{out}"
    );
    assert!(out.contains("copied 2 of 2 blobs"), "{out}");
    let out = run(Command::new(&example).args([&from, &to]));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("skipped ")).count(),
        2,
        "{out}"
    );
    let bad = Command::new(&example)
        .args([&from, "nowhere:x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid location"));

    // Every platform: the two images' blobs, then nothing copied again.
    let ocikit = common::workspace_binary("ocikit");
    let all = format!("oci:{}:m", dir.path().join("all").display());
    let copy_all = || {
        let out = Command::new(&ocikit)
            .args(["copy", "--all", &from, &all])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };
    let err = copy_all();
    assert!(
        err.contains("Copied 4 blobs") && err.contains("3 manifests"),
        "{err}"
    );
    let err = copy_all();
    assert!(
        err.contains("Copied 0 blobs") && err.contains("4 already present"),
        "{err}"
    );
}

/// `docker://` both ways against the registry `scripts/test.sh` starts
/// (`OCIKIT_TEST_REGISTRY`): digests kept, blobs the registry has are skipped.
#[test]
fn registry_round_trip() {
    // Needs the server: fails, never skips, without it.
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let src = multiarch(&dir.path().join("src"));
    let from = loc(format!("oci:{}:multi", src.root().display()));
    let repo = format!("docker://{registry}/ocikit-copy/multi");
    let r = copy(
        &from,
        &loc(format!("{repo}:v1")),
        &CopyOptions::new().all(true),
    )
    .unwrap();
    assert_eq!(r.manifests.len(), 3);
    // Again: every blob is there already.
    let again = copy(
        &from,
        &loc(format!("{repo}:v2")),
        &CopyOptions::new().all(true),
    )
    .unwrap();
    assert!(again.blobs.iter().all(|b| b.action == BlobAction::Skipped));
    // Back to a layout, the index digest unchanged.
    let back = dir.path().join("back");
    let r = copy(
        &loc(format!("{repo}:v1")),
        &loc(format!("oci:{}:m", back.display())),
        &CopyOptions::new().all(true),
    )
    .unwrap();
    assert_eq!(
        r.top.digest(),
        src.resolve(&"multi".parse().unwrap()).unwrap().digest()
    );
    run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("{repo}:v2"),
    ]));
}

/// Blobs copied on several threads come out in manifest order, the same as on one, and the
/// progress observer sees each blob's bytes grow to its size and end once.
#[test]
fn parallel_copies_report_progress() {
    use ocikit::progress::Event;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let src = umoci_image(dir.path());
    let from = loc(format!("oci:{}:t", src.display()));
    /// (bytes seen, ends) per blob digest; the totals announced.
    type Seen = Arc<Mutex<(HashMap<String, (Vec<u64>, usize)>, Vec<u64>)>>;
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let opts = CopyOptions::new()
        .jobs(4)
        .progress(move |event: &Event<'_>| {
            let mut seen = sink.lock().unwrap();
            match *event {
                Event::Total { bytes, .. } => seen.1.push(bytes),
                Event::Bytes {
                    descriptor, done, ..
                } => seen
                    .0
                    .entry(descriptor.digest().to_string())
                    .or_default()
                    .0
                    .push(done),
                Event::Done { descriptor, .. } | Event::Skipped { descriptor, .. } => {
                    seen.0.entry(descriptor.digest().to_string()).or_default().1 += 1
                }
                _ => {}
            }
        });
    let many = copy(
        &from,
        &loc(format!("oci:{}:t", dir.path().join("a").display())),
        &opts,
    )
    .unwrap();
    let one = copy(
        &from,
        &loc(format!("oci:{}:t", dir.path().join("b").display())),
        &CopyOptions::new().jobs(1),
    )
    .unwrap();
    let digests = |r: &ocikit::copy::CopyReport| {
        r.blobs
            .iter()
            .map(|b| b.descriptor.digest().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&many), digests(&one));
    let seen = seen.lock().unwrap();
    let sizes: u64 = many.blobs.iter().map(|b| b.descriptor.size()).sum();
    assert_eq!(seen.1, vec![sizes]);
    for blob in &many.blobs {
        let (bytes, ends) = &seen.0[&blob.descriptor.digest().to_string()];
        assert!(bytes.windows(2).all(|w| w[0] < w[1]), "{bytes:?}");
        assert!(
            bytes.iter().all(|&b| b <= blob.descriptor.size()),
            "{bytes:?}"
        );
        assert_eq!(*ends, 1, "{}", blob.descriptor.digest());
    }
}

/// A list of platforms keeps only those images in a rewritten index; index-only copies the
/// index document alone.
#[test]
fn platform_lists_and_index_only() {
    let dir = tempfile::tempdir().unwrap();
    let src = multiarch(&dir.path().join("src"));
    let from = loc(format!("oci:{}:multi", src.root().display()));
    let original = src.resolve(&"multi".parse().unwrap()).unwrap();

    let to = loc(format!("oci:{}:arm", dir.path().join("arm").display()));
    let opts = CopyOptions::new().platforms(vec![parse_platform("linux/arm64").unwrap()]);
    let r = copy(&from, &to, &opts).unwrap();
    let AnyManifest::Index(index) = &r.top else {
        panic!("an index")
    };
    assert_eq!(index.manifests().len(), 1);
    assert_eq!(
        index.manifests()[0]
            .platform()
            .as_ref()
            .unwrap()
            .architecture()
            .to_string(),
        "arm64"
    );
    assert_ne!(index.digest(), original.digest());
    assert_eq!(r.manifests.len(), 2, "the arm64 manifest and the new index");

    let to = loc(format!("oci:{}:idx", dir.path().join("idx").display()));
    let r = copy(&from, &to, &CopyOptions::new().index_only(true)).unwrap();
    assert_eq!(r.top.digest(), original.digest());
    assert!(r.blobs.is_empty());
    assert_eq!(r.manifests.len(), 1);
}

/// `pull` and `push` are `copy` with a registry at one end.
#[test]
fn pull_and_push_through_the_registry() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let src = multiarch(&dir.path().join("src"));
    let reference = format!("{registry}/ocikit-pull-push/{}:v1", std::process::id());
    let pushed = ocikit::copy::push(
        &loc(format!("oci:{}:multi", src.root().display())),
        &reference,
        &CopyOptions::new().all(true),
    )
    .unwrap();
    let pulled = ocikit::copy::pull(
        &format!("docker://{reference}"),
        &dir.path().join("pulled"),
        Some("got"),
        &CopyOptions::new().all(true),
    )
    .unwrap();
    assert_eq!(pulled.top.digest(), pushed.top.digest());
    let l = Layout::open(dir.path().join("pulled")).unwrap();
    assert_eq!(
        l.resolve(&"got".parse().unwrap()).unwrap().digest(),
        pushed.top.digest()
    );
}

/// A relay in front of `upstream` that counts the manifest requests going through it, by
/// method (`"GET"`, `"HEAD"`).
fn manifest_counting_relay(
    upstream: String,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(100) {
            let Ok(client) = conn else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            for (mut from, mut to, up) in [
                (
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    true,
                ),
                (server, client, false),
            ] {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if up {
                            // Request lines: only heads carry `/manifests/` here (no
                            // uploads go through this relay).
                            let text = String::from_utf8_lossy(&buf[..n]);
                            for line in text.split("\r\n") {
                                if let Some((method, rest)) = line.split_once(' ')
                                    && rest.starts_with("/v2/")
                                    && rest.contains("/manifests/")
                                {
                                    log.lock().unwrap().push(method.to_owned());
                                }
                            }
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    (addr, seen)
}

/// A pull asks for each manifest once: the top one is resolved and fetched by the same `GET`.
#[test]
fn a_pull_fetches_each_manifest_once() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let src = multiarch(&dir.path().join("src"));
    let name = format!("ocikit-once/{}", std::process::id());
    ocikit::copy::push(
        &loc(format!("oci:{}:multi", src.root().display())),
        &format!("{registry}/{name}:v1"),
        &CopyOptions::new().all(true),
    )
    .unwrap();
    let (relay, seen) = manifest_counting_relay(registry);
    let pull = |to: &str, options: &CopyOptions| {
        seen.lock().unwrap().clear();
        ocikit::copy::pull(
            &format!("docker://{relay}/{name}:v1"),
            &dir.path().join(to),
            Some("got"),
            options,
        )
        .unwrap();
        let mut methods = seen.lock().unwrap().clone();
        methods.sort();
        methods
    };
    // The index and its two manifests.
    assert_eq!(pull("all", &CopyOptions::new().all(true)), ["GET"; 3]);
    // The index and the manifest of one platform.
    let one = CopyOptions::new().platform(parse_platform("linux/arm64").unwrap());
    assert_eq!(pull("one", &one), ["GET"; 2]);
}

/// Registry to registry on one host: the blobs are mounted, not uploaded again.
#[test]
fn registry_to_registry_copies_mount() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let src = umoci_image(dir.path());
    let a = format!("docker://{registry}/ocikit-mount/a{}:t", std::process::id());
    let b = format!("docker://{registry}/ocikit-mount/b{}:t", std::process::id());
    copy(
        &loc(format!("oci:{}:t", src.display())),
        &loc(a.clone()),
        &CopyOptions::new(),
    )
    .unwrap();
    let r = copy(&loc(a), &loc(b), &CopyOptions::new()).unwrap();
    assert!(!r.blobs.is_empty());
    for blob in &r.blobs {
        assert_eq!(
            blob.action,
            BlobAction::Mounted,
            "{}",
            blob.descriptor.digest()
        );
    }
    assert_eq!(r.bytes_copied(), 0);
}

/// Referrers (an SBOM attached to an image) follow the image on request, registry to layout
/// to registry, and are found by each backend's referrers lookup.
#[test]
fn referrers_are_copied_on_request() {
    use ocikit::artifact::push_artifact;
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let src = umoci_image(dir.path());
    let a = format!(
        "docker://{registry}/ocikit-referrers/a{}:t",
        std::process::id()
    );
    let pushed = copy(
        &loc(format!("oci:{}:t", src.display())),
        &loc(a.clone()),
        &CopyOptions::new(),
    )
    .unwrap();
    let opened =
        ocikit::copy::open_source(&loc(a.clone()), &ocikit::image::host_platform()).unwrap();
    let repo = opened.repository().unwrap();
    let sbom = dir.path().join("sbom.json");
    std::fs::write(&sbom, b"{\"sbom\":true}").unwrap();
    push_artifact(
        repo,
        &sbom,
        "application/spdx+json",
        "application/spdx+json",
        Some(&pushed.top.descriptor()),
        &Default::default(),
        None,
    )
    .unwrap();

    // Without the option, the layout gets the image only.
    let plain = dir.path().join("plain");
    copy(
        &loc(a.clone()),
        &loc(format!("oci:{}:t", plain.display())),
        &CopyOptions::new(),
    )
    .unwrap();
    let l = Layout::open(&plain).unwrap();
    assert!(l.referrers(&pushed.top.descriptor()).unwrap().is_empty());

    // With it, the SBOM comes along and the layout lists it.
    let with = dir.path().join("with");
    let r = copy(
        &loc(a),
        &loc(format!("oci:{}:t", with.display())),
        &CopyOptions::new().referrers(true),
    )
    .unwrap();
    assert_eq!(r.manifests.len(), 2);
    let l = Layout::open(&with).unwrap();
    let found = l.referrers(&pushed.top.descriptor()).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].artifact_type().as_ref().unwrap().to_string(),
        "application/spdx+json"
    );
    assert!(l.fsck().unwrap().is_ok());

    // And on to another repository, where the registry lists it.
    let b = format!(
        "docker://{registry}/ocikit-referrers/b{}:t",
        std::process::id()
    );
    copy(
        &loc(format!("oci:{}:t", with.display())),
        &loc(b.clone()),
        &CopyOptions::new().referrers(true),
    )
    .unwrap();
    let opened = ocikit::copy::open_source(&loc(b), &ocikit::image::host_platform()).unwrap();
    let listed = opened
        .repository()
        .unwrap()
        .referrers(pushed.top.digest(), None)
        .unwrap();
    assert_eq!(listed.len(), 1);
}
