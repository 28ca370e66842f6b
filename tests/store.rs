//! The image store: pulls from the registry of scripts/test.sh (`OCIKIT_TEST_REGISTRY`), each
//! layer fetched and unpacked once; overlay root filesystems that keep containers apart;
//! removal, prune and check; two pulls at once; pulls killed midway; the `ocikit` command's
//! store subcommands and the store recipes (`pull`, `images`, `rmi`, `prune`).
//!
//! Needs root (overlay mounts, owners, whiteout devices), the registry, skopeo and
//! busybox-static (scripts/test.sh); fails without them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::{CopyOptions, Location, copy};
use ocikit::image::oci_spec::image::Descriptor;
use ocikit::image::{ImageSource, host_platform};
use ocikit::layout::Layout;
use ocikit::store::{PullOptions, RootfsOptions, Store, StoreError};
use ocikit::unpack::{UnpackOptions, unpack_image};

mod common;
use common::{busybox_tree, example_binary, registry, run, workspace_binary};

fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "overlay mounts and whiteout devices need root (CI runs as root)"
    );
}

/// Deterministic incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A three-layer image: busybox with data; then a diff layer that deletes a file and
/// replaces a directory's content; then a layer of noise (`noise_len` bytes). Built in
/// `dir/layout` as `t`; returns the layout location.
fn layered_image(dir: &Path, noise_len: usize) -> String {
    let base = dir.join("base");
    busybox_tree(&base);
    for applet in ["rm", "touch", "find", "sort"] {
        std::os::unix::fs::symlink("busybox", base.join("bin").join(applet)).unwrap();
    }
    std::fs::create_dir_all(base.join("data")).unwrap();
    std::fs::write(base.join("data/keep"), "kept\n").unwrap();
    std::fs::write(base.join("data/gone"), "deleted by the second layer\n").unwrap();
    std::fs::create_dir_all(base.join("swap/old")).unwrap();
    std::fs::write(base.join("swap/old/file"), "old\n").unwrap();
    let changed = dir.join("changed");
    run(Command::new("cp").arg("-a").arg(&base).arg(&changed));
    std::fs::remove_file(changed.join("data/gone")).unwrap();
    std::fs::remove_dir_all(changed.join("swap/old")).unwrap();
    std::fs::write(changed.join("swap/new"), "new\n").unwrap();
    let top = dir.join("top");
    std::fs::create_dir_all(top.join("app")).unwrap();
    std::fs::write(top.join("app/blob"), noise(7, noise_len)).unwrap();

    let layout = Layout::create(dir.join("layout")).unwrap();
    let spec = BuildSpec::new()
        .layer(&base)
        .diff_layer(&base, &changed)
        .layer(&top)
        .cmd(vec!["/bin/sh".into()]);
    build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap();
    format!("oci:{}:t", dir.join("layout").display())
}

/// Pushes the layout image to the test registry as `repo:v1`; returns the `docker://` text.
fn push(src: &str, repo: &str) -> String {
    let dst = format!("docker://{}/{repo}:v1", registry());
    copy(
        &src.parse::<Location>().unwrap(),
        &dst.parse::<Location>().unwrap(),
        &CopyOptions::new(),
    )
    .unwrap();
    dst
}

/// Sorted `path type size content-hash link` lines of a tree (the root's own entry left out).
fn tree(dir: &Path) -> Vec<String> {
    let out = run(Command::new("find")
        .arg(".")
        .args(["-mindepth", "1", "-printf", "%p %y %m %U:%G %s %l\n"])
        .current_dir(dir));
    let mut lines: Vec<String> = out
        .lines()
        .map(|l| {
            let path = l.split(' ').next().unwrap();
            let full = dir.join(path);
            let meta = std::fs::symlink_metadata(&full).unwrap();
            let hash = if meta.is_file() {
                ocikit::image::sha256(&std::fs::read(&full).unwrap()).to_string()
            } else {
                String::new()
            };
            // Directory sizes and times differ between file systems: only the rest counts.
            let mut fields: Vec<&str> = l.split(' ').collect();
            if fields[1] == "d" {
                fields[4] = "-";
            }
            format!("{} {hash}", fields.join(" "))
        })
        .collect();
    lines.sort();
    lines
}

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

#[test]
fn a_second_pull_fetches_and_unpacks_nothing_and_skopeo_reads_the_store() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let image = push(
        &layered_image(tmp.path(), 64 << 10),
        &unique("ocikit-store/again"),
    );
    let store = Store::open(tmp.path().join("store")).unwrap();
    let location: Location = image.parse().unwrap();
    let first = store.pull(&location, &PullOptions::new()).unwrap();
    assert_eq!(first.layers.len(), 3);
    assert!(first.layers.iter().all(|l| l.fetched && l.unpacked));
    let second = store.pull(&location, &PullOptions::new()).unwrap();
    assert!(second.layers.iter().all(|l| !l.fetched && !l.unpacked));
    assert_eq!(second.manifest.digest(), first.manifest.digest());

    let name = first.name.clone().unwrap().to_string();
    assert_eq!(name, image.trim_start_matches("docker://"));
    let images = store.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].names, std::slice::from_ref(&name));
    assert_eq!(&images[0].digest, first.manifest.digest());
    assert!(images[0].size > 64 << 10, "{}", images[0].size);
    assert!(store.check().unwrap().is_ok());

    let out = run(Command::new("skopeo").args([
        "inspect",
        &format!("oci:{}/layout:{name}", store.root().display()),
    ]));
    let inspected: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inspected["Digest"], first.manifest.digest().to_string());
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 3);
}

#[test]
fn containers_see_the_image_and_not_each_others_changes() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = layered_image(tmp.path(), 4096);
    let store = Store::open(tmp.path().join("store")).unwrap();
    let pulled = store
        .pull(&src.parse().unwrap(), &PullOptions::new())
        .unwrap();
    let digest = pulled.manifest.digest().to_string();

    // The overlay shows what unpacking the layers one over another gives.
    let unpacked = tmp.path().join("unpacked");
    let opened = ocikit::copy::open_source(&src.parse().unwrap(), &host_platform()).unwrap();
    unpack_image(
        opened.source(),
        &opened.image().unwrap(),
        &unpacked,
        &UnpackOptions::new(),
    )
    .unwrap();
    let one = store
        .mount_rootfs(&digest, &unique("one"), &RootfsOptions::new())
        .unwrap();
    let two = store
        .mount_rootfs("t", &unique("two"), &RootfsOptions::new())
        .unwrap();
    assert_eq!(tree(&one), tree(&unpacked));
    assert!(!one.join("data/gone").exists());
    assert!(!one.join("swap/old").exists());

    // A write and a delete in one container: the other and the snapshots do not see them.
    std::fs::write(one.join("data/written"), "one's").unwrap();
    std::fs::remove_file(one.join("data/keep")).unwrap();
    assert!(!two.join("data/written").exists());
    assert_eq!(
        std::fs::read_to_string(two.join("data/keep")).unwrap(),
        "kept\n"
    );
    let image = store.image("t").unwrap();
    assert!(image.snapshots[0].join("diff/data/keep").is_file());
    for snapshot in &image.snapshots {
        assert!(!snapshot.join("diff/data/written").exists());
    }
    assert_eq!(store.containers().unwrap().len(), 2);

    // Another container with the same id is refused; removal unmounts and removes it all.
    assert!(matches!(
        store.mount_rootfs("t", &unique("one"), &RootfsOptions::new()),
        Err(ocikit::Error::Store(StoreError::ContainerExists { .. }))
    ));
    store.remove_container(&unique("one")).unwrap();
    assert!(!one.exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(one.to_str().unwrap()), "{mounts}");
    assert!(matches!(
        store.remove_container(&unique("one")),
        Err(ocikit::Error::Store(StoreError::ContainerNotFound { .. }))
    ));
    store.remove_container(&unique("two")).unwrap();
    assert!(store.check().unwrap().is_ok());
}

/// `ocikit run` from the store: pulled on first use, the container's writes go with it; the
/// next run, by name, needs no source (it is gone) and sees none of them.
#[test]
fn ocikit_run_runs_from_the_store_in_place() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = layered_image(tmp.path(), 4096);
    let store = tmp.path().join("store");
    let run_it = |args: &[&str]| {
        Command::new(workspace_binary("ocikit"))
            .arg("run")
            .arg("--root")
            .arg(&store)
            .args(args)
            .output()
            .unwrap()
    };
    // Pulled on first use; the container writes, then goes with what it wrote.
    let out = run_it(&[
        &src,
        "/bin/sh",
        "-c",
        "cat /data/keep; touch /data/new; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kept\n");
    assert!(Store::open(&store).unwrap().image("t").is_ok(), "pulled");
    // Run again by name, the source gone: no pull, and nothing of the first container.
    std::fs::remove_dir_all(tmp.path().join("layout")).unwrap();
    let out = run_it(&[
        "t",
        "/bin/sh",
        "-c",
        "test ! -e /data/new && test ! -e /data/gone",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let store = Store::open(&store).unwrap();
    assert!(store.containers().unwrap().is_empty());
    assert!(store.check().unwrap().is_ok());
}

/// How many layers an `ocikit pull` unpacked, from its summary on standard error
/// (`Pulled 3 layers (3 fetched, 0 already stored; 3 unpacked)`).
fn unpacked_count(stderr: &[u8]) -> usize {
    let text = String::from_utf8_lossy(stderr);
    let summary = text
        .lines()
        .find(|l| l.starts_with("Pulled "))
        .unwrap_or_else(|| panic!("no summary in {text}"));
    let (_, rest) = summary.split_once("; ").unwrap();
    rest.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn removal_and_prune_keep_what_is_used_and_free_the_rest() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = layered_image(tmp.path(), 4096);
    let store = Store::open(tmp.path().join("store")).unwrap();
    store
        .pull(&src.parse().unwrap(), &PullOptions::new())
        .unwrap();
    let id = unique("user");
    store.mount_rootfs("t", &id, &RootfsOptions::new()).unwrap();
    match store.remove_image("t") {
        Err(ocikit::Error::Store(StoreError::InUse { containers, .. })) => {
            assert_eq!(containers, std::slice::from_ref(&id))
        }
        other => panic!("{other:?}"),
    }
    // A prune keeps what the image and the container use.
    let pruned = store.prune().unwrap();
    assert!(
        pruned.snapshots.is_empty() && pruned.blobs == 0,
        "{pruned:?}"
    );
    store.remove_container(&id).unwrap();
    let removed = store.remove_image("t").unwrap();
    assert_eq!(removed.snapshots.len(), 3);
    assert_eq!(removed.blobs, 5, "3 layers, config, manifest");
    assert!(store.images().unwrap().is_empty());
    let snapshots = std::fs::read_dir(store.root().join("snapshots"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(snapshots, 0);
    assert!(store.check().unwrap().is_ok());
    assert!(matches!(
        store.remove_image("t"),
        Err(ocikit::Error::Store(StoreError::ImageNotFound { .. }))
    ));
    assert!(matches!(
        store.mount_rootfs("nope", &unique("x"), &RootfsOptions::new()),
        Err(ocikit::Error::Store(StoreError::ImageNotFound { .. }))
    ));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    // A store of another user.
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(1000), Some(1000)).unwrap();
    match Store::open(&theirs) {
        Err(ocikit::Error::Store(StoreError::NotOwned { owner, .. })) => assert_eq!(owner, 1000),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);

    // A layer whose diff_id is not the one the configuration gives: nothing is named,
    // nothing is unpacked, and the store stays sound.
    let src = layered_image(tmp.path(), 4096);
    let layout = Layout::open(tmp.path().join("layout")).unwrap();
    let top = layout.resolve_ref(&"t".parse().unwrap()).unwrap().remove(0);
    let manifest = match layout.get_manifest(&top).unwrap() {
        ocikit::image::AnyManifest::Manifest(m) => m,
        _ => panic!("a manifest"),
    };
    let config = layout.fetch_config(&manifest).unwrap();
    let mut value = config.value().clone();
    let mut rootfs = value.rootfs().clone();
    let mut diff_ids = rootfs.diff_ids().clone();
    diff_ids[2] = ocikit::image::sha256(b"not the layer").to_string();
    rootfs.set_diff_ids(diff_ids);
    value.set_rootfs(rootfs);
    let bad_config = serde_json::to_vec(&value).unwrap();
    let (config_digest, config_size) = layout.write_blob(&bad_config[..], None, None).unwrap();
    let mut edited = manifest.clone();
    edited
        .edit(|m| {
            let mut c = m.config().clone();
            c.set_digest(config_digest.clone());
            c.set_size(config_size);
            m.set_config(c);
        })
        .unwrap();
    let d = layout
        .put_manifest(&ocikit::image::AnyManifest::Manifest(edited))
        .unwrap();
    layout.set_ref(&"lied".parse().unwrap(), &d).unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let lied_src = src.replace(":t", ":lied");
    let err = store
        .pull(&lied_src.parse().unwrap(), &PullOptions::new())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ocikit::Error::Image(ocikit::image::Error::DiffIdMismatch { .. })
        ),
        "{err:?}"
    );
    assert!(store.images().unwrap().is_empty());
    assert!(store.check().unwrap().is_ok());
    assert_eq!(
        std::fs::read_dir(store.root().join("snapshots/.tmp"))
            .unwrap()
            .count(),
        0,
        "a failed layer leaves no temporary"
    );

    // A source whose layer blob is corrupt: a typed verification error, and nothing of that
    // layer is stored (no blob, no snapshot), nor a name.
    let corrupt_dir = tmp.path().join("corrupt");
    run(Command::new("cp")
        .arg("-a")
        .arg(tmp.path().join("layout"))
        .arg(&corrupt_dir));
    let corrupt = Layout::open(&corrupt_dir).unwrap();
    let top = corrupt
        .resolve_ref(&"t".parse().unwrap())
        .unwrap()
        .remove(0);
    let ocikit::image::AnyManifest::Manifest(m) = corrupt.get_manifest(&top).unwrap() else {
        panic!("a manifest");
    };
    let bad_layer = m.layers()[2].clone();
    let path = corrupt.blob_path(bad_layer.digest());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = store
        .pull(
            &format!("oci:{}:t", corrupt_dir.display()).parse().unwrap(),
            &PullOptions::new(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, ocikit::Error::Image(e) if e.is_verification())
            || err.to_string().contains("mismatch"),
        "{err:?}"
    );
    assert!(store.images().unwrap().is_empty());
    assert!(!store.layout().has_blob(bad_layer.digest()).unwrap());
    assert!(store.check().unwrap().is_ok());

    // A blob corrupted on disk is what the check reports.
    store
        .pull(&src.parse().unwrap(), &PullOptions::new())
        .unwrap();
    assert!(store.check().unwrap().is_ok());
    let layer = store.image("t").unwrap().manifest.layers()[2].clone();
    let path = store.layout().blob_path(layer.digest());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let report = store.check().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].1.contains(&layer.digest().to_string()),
        "{:?}",
        report.problems
    );
}

#[test]
fn two_processes_pulling_one_image_both_succeed_and_unpack_each_layer_once() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let image = push(
        &layered_image(tmp.path(), 2 << 20),
        &unique("ocikit-store/twice"),
    );
    let store = tmp.path().join("store");
    Store::open(&store).unwrap();
    let pull = || {
        Command::new(workspace_binary("ocikit"))
            .arg("pull")
            .arg("--root")
            .arg(&store)
            .arg(&image)
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(pull);
        let b = s.spawn(pull);
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut unpacked = 0;
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        unpacked += unpacked_count(&out.stderr);
    }
    assert_eq!(unpacked, 3, "each layer unpacked once in all");
    assert!(Store::open(&store).unwrap().check().unwrap().is_ok());
}

/// A TCP relay to the registry that counts the bytes it passes to the client and, past
/// `limit`, kills the process `victim` holds (SIGKILL) once.
struct KillingRelay {
    addr: String,
    passed: Arc<AtomicU64>,
    fired: Arc<AtomicBool>,
}

impl KillingRelay {
    fn start(limit: u64, victim: Arc<AtomicU64>) -> KillingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let passed = Arc::new(AtomicU64::new(0));
        let fired = Arc::new(AtomicBool::new(false));
        let (p, f) = (passed.clone(), fired.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let upstream = TcpStream::connect(registry()).unwrap();
                let (p, f, victim) = (p.clone(), f.clone(), victim.clone());
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut u2);
                });
                std::thread::spawn(move || {
                    let (mut client, mut upstream) = (client, upstream);
                    let mut buf = [0u8; 16 << 10];
                    while let Ok(n) = upstream.read(&mut buf) {
                        if n == 0 || client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        if p.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > limit
                            && !f.swap(true, Ordering::SeqCst)
                        {
                            let pid = victim.load(Ordering::SeqCst) as i32;
                            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                                let _ = rustix::process::kill_process(
                                    pid,
                                    rustix::process::Signal::KILL,
                                );
                            }
                        }
                    }
                });
            }
        });
        KillingRelay {
            addr,
            passed,
            fired,
        }
    }
}

#[test]
fn pulls_killed_midway_leave_a_sound_store_and_the_next_pull_completes() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let repo = unique("ocikit-store/killed");
    push(&layered_image(tmp.path(), 3 << 20), &repo);
    let store = tmp.path().join("store");
    Store::open(&store).unwrap();
    let mut kills = 0;
    for limit in [2_000u64, 300_000, 1_200_000, 2_500_000, 3_300_000] {
        let victim = Arc::new(AtomicU64::new(0));
        let relay = KillingRelay::start(limit, victim.clone());
        let mut child = Command::new(workspace_binary("ocikit"))
            .arg("pull")
            .arg("--root")
            .arg(&store)
            .arg(format!("docker://{}/{repo}:v1", relay.addr))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        victim.store(child.id() as u64, Ordering::SeqCst);
        let status = child.wait().unwrap();
        if relay.fired.load(Ordering::SeqCst) {
            kills += 1;
            assert!(
                !status.success(),
                "killed after {} bytes",
                relay.passed.load(Ordering::SeqCst)
            );
        }
        let opened = Store::open(&store).unwrap();
        let report = opened.check().unwrap();
        assert!(
            report.is_ok(),
            "after a kill at {limit} bytes: {:?}",
            report.problems
        );
    }
    assert!(kills >= 4, "only {kills} pulls were killed midway");
    // The next pull completes, from where the killed ones stopped, under the image's name.
    let name = format!("{}/{repo}:v1", registry());
    let out = run(Command::new(workspace_binary("ocikit"))
        .arg("pull")
        .arg("--root")
        .arg(&store)
        .arg(format!("docker://{name}")));
    assert!(out.starts_with("sha256:"), "{out}");
    let opened = Store::open(&store).unwrap();
    assert!(opened.check().unwrap().is_ok());
    assert!(opened.image(&name).is_ok());
    // What the dead pulls left behind goes with a prune; the image stays.
    opened.prune().unwrap();
    assert_eq!(
        std::fs::read_dir(store.join("snapshots/.tmp"))
            .unwrap()
            .count(),
        0
    );
    assert!(opened.check().unwrap().is_ok());
    assert!(opened.image(&name).is_ok());
}

/// Where overlayfs cannot be mounted (here: a store inside an overlay mount, which overlayfs
/// refuses as an upper directory) the error says so and leaves nothing; asked for, a full
/// copy is made instead, and removed with the container.
#[test]
fn without_overlayfs_a_clear_error_or_the_copy_asked_for() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let tree_dir = tmp.path().join("tree");
    busybox_tree(&tree_dir);
    let layout = Layout::create(tmp.path().join("layout")).unwrap();
    let spec = BuildSpec::new()
        .layer(&tree_dir)
        .cmd(vec!["/bin/sh".into()]);
    build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap();
    let src = format!("oci:{}:t", tmp.path().join("layout").display());

    let outer = tmp.path().join("outer");
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir_all(outer.join(d)).unwrap();
    }
    let o = |d: &str| outer.join(d).display().to_string();
    run(Command::new("mount").args([
        "-t",
        "overlay",
        "overlay",
        "-o",
        &format!("lowerdir={},upperdir={},workdir={}", o("l"), o("u"), o("w")),
        &o("m"),
    ]));
    let result = std::panic::catch_unwind(|| {
        let store = Store::open(outer.join("m/store")).unwrap();
        store
            .pull(&src.parse().unwrap(), &PullOptions::new())
            .unwrap();
        let id = unique("copied");
        let err = store
            .mount_rootfs("t", &id, &RootfsOptions::new())
            .unwrap_err();
        assert!(
            matches!(err, ocikit::Error::Store(StoreError::Overlay { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("copy_fallback"), "{err}");
        assert!(store.containers().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(store.root().join("containers"))
                .unwrap()
                .count(),
            0
        );

        let rootfs = store
            .mount_rootfs("t", &id, &RootfsOptions::new().copy_fallback(true))
            .unwrap();
        assert_eq!(tree(&rootfs), tree(&tree_dir));
        let listed = store.containers().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].kind, ocikit::store::RootfsKind::Copy);
        assert_eq!(listed[0].rootfs, rootfs);
        store.remove_container(&id).unwrap();
        assert!(!rootfs.exists());
        assert!(store.check().unwrap().is_ok());
    });
    run(Command::new("umount").arg(o("m")));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// An unprivileged user's store: the same pull, as uid 65534, marks whiteouts and opaque
/// directories the way a `userxattr` overlay mount reads them (`user.overlay.opaque`, 0/0
/// character devices), and the store stays that user's (root is refused it).
#[test]
fn an_unprivileged_users_store_uses_user_overlay_attributes() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = layered_image(tmp.path(), 4096);
    let store = tmp.path().join("user-store");
    std::fs::create_dir(&store).unwrap();
    std::os::unix::fs::chown(&store, Some(65534), Some(65534)).unwrap();
    let out = Command::new(workspace_binary("ocikit"))
        .arg("pull")
        .arg("--root")
        .arg(&store)
        .arg(&src)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The second layer deletes data/gone and replaces all of swap/.
    let snapshots = store.join("snapshots");
    let mut found_whiteout = false;
    let mut found_opaque = false;
    for entry in std::fs::read_dir(&snapshots).unwrap() {
        let diff = entry.unwrap().path().join("diff");
        // The base layer's snapshot has the file; the second's has its whiteout.
        if let Ok(meta) = std::fs::symlink_metadata(diff.join("data/gone"))
            && meta.file_type().is_char_device()
        {
            assert_eq!((meta.rdev(), meta.uid()), (0, 65534));
            found_whiteout = true;
        }
        let mut value = [0u8; 1];
        if diff.join("swap").is_dir()
            && !diff.join("swap/old").exists()
            && rustix::fs::getxattr(diff.join("swap"), "user.overlay.opaque", &mut value[..])
                .is_ok_and(|n| n == 1 && value[0] == b'y')
        {
            assert!(
                rustix::fs::getxattr(diff.join("swap"), "trusted.overlay.opaque", &mut value[..])
                    .is_err()
            );
            found_opaque = true;
        }
    }
    assert!(
        found_whiteout && found_opaque,
        "{}",
        run(Command::new("find").arg(&snapshots))
    );
    match Store::open(&store) {
        Err(ocikit::Error::Store(StoreError::NotOwned { owner, user, .. })) => {
            assert_eq!((owner, user), (65534, 0))
        }
        other => panic!("{other:?}"),
    }
}

/// Snapshot directories and blobs of a store.
fn counts(store: &Path) -> (usize, usize) {
    let snapshots = std::fs::read_dir(store.join("snapshots"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("diff").is_dir())
        .count();
    let blobs = std::fs::read_dir(store.join("layout/blobs/sha256")).map_or(0, |d| d.count());
    (snapshots, blobs)
}

/// The store's subcommands, as a user types them: `ocikit pull`, `images` lists the image,
/// `rmi` refuses it while a container uses it and removes it after (its 3 snapshots and 5
/// blobs), `prune` frees a dead pull's leftovers and checks the store; a corrupt blob makes
/// `prune --check` fail (exit 6), naming it.
#[test]
fn images_rmi_and_prune_commands() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = layered_image(tmp.path(), 4096);
    let store_dir = tmp.path().join("store");
    let s = store_dir.to_str().unwrap();
    let ocikit = |sub: &str, args: &[&str]| {
        Command::new(workspace_binary("ocikit"))
            .args([sub, "--root", s])
            .args(args)
            .output()
            .unwrap()
    };
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let pulled = ocikit("pull", &[&src]);
    assert!(text(&pulled).starts_with("sha256:"), "{pulled:?}");
    let listed = ocikit("images", &[]);
    assert!(listed.status.success());
    let line = text(&listed).lines().nth(1).unwrap_or_default().to_owned();
    let store = Store::open(&store_dir).unwrap();
    let digest = store.image("t").unwrap().manifest.digest().clone();
    assert!(
        line.starts_with("t ") && line.contains(&digest.digest()[..12]),
        "{line}"
    );

    let id = unique("command");
    store.mount_rootfs("t", &id, &RootfsOptions::new()).unwrap();
    let refused = ocikit("rmi", &["t"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&id),
        "{refused:?}"
    );
    store.remove_container(&id).unwrap();
    assert_eq!(counts(&store_dir), (3, 5));
    let removed = ocikit("rmi", &["t"]);
    assert!(removed.status.success(), "{removed:?}");
    assert_eq!(text(&removed), "Untagged: t\n");
    assert_eq!(counts(&store_dir), (0, 0), "the 3 snapshots and 5 blobs");
    assert_eq!(
        text(&ocikit("images", &[])).lines().count(),
        1,
        "the header only"
    );

    // A dead pull's temporary snapshot goes with a prune; the store is then sound.
    let left = store_dir.join("snapshots/.tmp/left-by-a-dead-pull");
    std::fs::create_dir(&left).unwrap();
    let pruned = ocikit("prune", &[]);
    assert!(pruned.status.success(), "{pruned:?}");
    assert!(text(&pruned).contains("1 temporary files"), "{pruned:?}");
    assert!(!left.exists());
    assert!(store.check().unwrap().is_ok());

    // A corrupt blob: the check says which, and fails.
    let layer = pull_and_corrupt_a_layer(&store, &src);
    let checked = ocikit("prune", &["--check"]);
    assert_eq!(checked.status.code(), Some(6), "{checked:?}");
    assert!(
        text(&checked).contains(&layer.digest().to_string()),
        "{checked:?}"
    );
}

/// Pulls `src` into `store` as `t` and flips a byte of its first layer's blob; returns
/// that layer.
fn pull_and_corrupt_a_layer(store: &Store, src: &str) -> Descriptor {
    store
        .pull(&src.parse().unwrap(), &PullOptions::new())
        .unwrap();
    let layer = store.image("t").unwrap().manifest.layers()[0].clone();
    let path = store.layout().blob_path(layer.digest());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    layer
}

/// The store recipes, each run with its positional arguments: `pull` fetches and unpacks
/// each layer, `images` lists the image, `rmi` frees its snapshots and blobs, `prune` frees
/// a dead pull's leftovers and says the store is sound, or exits 1 naming a corrupt blob.
#[test]
fn store_recipes_pull_list_remove_and_prune() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = layered_image(tmp.path(), 4096);
    let store_dir = tmp.path().join("store");
    let s = store_dir.to_str().unwrap();
    let recipe = |name: &str, args: &[&str]| {
        Command::new(example_binary(name))
            .args(args)
            .output()
            .unwrap()
    };
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let pulled = recipe("pull", &[&src, s]);
    assert!(pulled.status.success(), "{pulled:?}");
    assert_eq!(
        text(&pulled).matches(": fetched and unpacked\n").count(),
        3,
        "{pulled:?}"
    );
    let store = Store::open(&store_dir).unwrap();
    let digest = store.image("t").unwrap().manifest.digest().clone();
    assert!(text(&pulled).ends_with(&format!("pulled {digest} as t\n")));
    let again = recipe("pull", &[&src, s]);
    assert_eq!(text(&again).matches(": already stored\n").count(), 3);

    let listed = text(&recipe("images", &[s]));
    let line = listed.lines().nth(1).unwrap_or_default();
    assert!(
        line.starts_with("t ") && line.contains(&digest.digest()[..12]),
        "{listed}"
    );
    let removed = recipe("rmi", &["t", s]);
    assert!(removed.status.success(), "{removed:?}");
    assert!(
        text(&removed).starts_with("removed t: 3 snapshots and 5 blobs"),
        "{removed:?}"
    );
    assert_eq!(text(&recipe("images", &[s])).lines().count(), 1);

    std::fs::create_dir(store_dir.join("snapshots/.tmp/left-by-a-dead-pull")).unwrap();
    let pruned = recipe("prune", &[s]);
    assert!(pruned.status.success(), "{pruned:?}");
    assert!(text(&pruned).contains("1 temporaries"), "{pruned:?}");
    assert!(text(&pruned).ends_with("the store is sound\n"));

    let layer = pull_and_corrupt_a_layer(&store, &src);
    let checked = recipe("prune", &[s]);
    assert_eq!(checked.status.code(), Some(1));
    assert!(
        text(&checked).contains(&layer.digest().to_string()),
        "{checked:?}"
    );
}

/// Archives are sources too: an image saved as a docker archive and as an OCI archive pulls
/// into the store under the name each gives, with the same layers (stored once).
#[test]
fn images_pull_from_archives_under_their_names() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = layered_image(tmp.path(), 4096);
    let docker = format!(
        "docker-archive:{}:example/app:v1",
        tmp.path().join("d.tar").display()
    );
    let oci = format!("oci-archive:{}:saved", tmp.path().join("o.tar").display());
    for dst in [&docker, &oci] {
        copy(
            &src.parse::<Location>().unwrap(),
            &dst.parse::<Location>().unwrap(),
            &CopyOptions::new(),
        )
        .unwrap();
    }
    let store = Store::open(tmp.path().join("store")).unwrap();
    let from_oci = store
        .pull(&oci.parse().unwrap(), &PullOptions::new())
        .unwrap();
    assert_eq!(from_oci.name.unwrap().to_string(), "saved");
    assert!(from_oci.layers.iter().all(|l| l.fetched && l.unpacked));
    let from_docker = store
        .pull(&docker.parse().unwrap(), &PullOptions::new())
        .unwrap();
    assert_eq!(from_docker.name.unwrap().to_string(), "example/app:v1");
    // The same layers (a docker archive keeps them as they were): nothing unpacked again.
    assert!(
        from_docker.layers.iter().all(|l| !l.unpacked),
        "{:?}",
        from_docker.layers
    );
    let mut names: Vec<String> = store
        .images()
        .unwrap()
        .into_iter()
        .flat_map(|i| i.names)
        .collect();
    names.sort();
    assert_eq!(names, ["example/app:v1", "saved"]);
    assert!(store.check().unwrap().is_ok());
}
