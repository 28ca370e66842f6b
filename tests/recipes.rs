//! The recipes of `examples/`, each run as its example binary and checked by its effect, and
//! the `ocikit build`/`ocikit unpack`/`ocikit artifact` commands on the same images: an
//! image built from scratch and then on top of itself unpacks to the trees it was made of,
//! in every format, and umoci unpacks it to the same tree.
//!
//! Needs umoci and busybox-static (scripts/test.sh installs them), root for owners, the
//! registry of scripts/test.sh, and the recipes and the `ocikit` binary built
//! (`cargo build --workspace --examples`, then `cargo test --workspace`, as scripts/test.sh
//! does); fails without them.

use std::path::{Path, PathBuf};
use std::process::Command;

use ocikit::copy::{Location, open_source};
use ocikit::image::{AnyManifest, host_platform};

mod common;
use common::{busybox_tree, example_binary, registry, run, workspace_binary};

/// The `ocikit` command.
fn ocikit() -> Command {
    Command::new(workspace_binary("ocikit"))
}

/// Runs `cmd`, failing the test unless it succeeds; returns its stdout and its stderr.
fn run_both(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("spawn");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{cmd:?} failed: {stderr}\n{stdout}");
    (stdout, stderr)
}

/// Sorted `path type size content-hash link` lines of a tree.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&p).unwrap().display()
                ));
            } else if m.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &p, out);
            } else {
                let data = std::fs::read(&p).unwrap();
                out.push(format!(
                    "{rel} {} {}",
                    data.len(),
                    ocikit::image::sha256(&data)
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Under `root`: `base/`, a busybox tree, and `app/`, holding `app/hello.sh`.
fn base_and_app_trees(root: &Path) -> (PathBuf, PathBuf) {
    let base_dir = root.join("base");
    busybox_tree(&base_dir);
    let app_dir = root.join("app");
    std::fs::create_dir_all(app_dir.join("app")).unwrap();
    std::fs::write(app_dir.join("app/hello.sh"), "echo hello\n").unwrap();
    (base_dir, app_dir)
}

#[test]
fn build_from_scratch_then_on_top_and_unpack_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let (base_dir, app_dir) = base_and_app_trees(tmp.path());

    let unpack = example_binary("unpack");
    let layout = tmp.path().join("layout");
    let base = format!("oci:{}:base", layout.display());
    let out = run(ocikit().args([
        "build",
        "--from",
        "scratch",
        "--layer",
        base_dir.to_str().unwrap(),
        "--entrypoint",
        "/bin/sh",
        "--cmd",
        "/app/hello.sh",
        "--env",
        "PATH=/bin",
        &base,
    ]));
    // The command prints the manifest's digest, which the tag names.
    let tagged = open_source(&base.parse::<Location>().unwrap(), &host_platform()).unwrap();
    assert_eq!(out.trim(), tagged.top().digest().to_string(), "{out}");

    // On top, into each kind of destination.
    let archive = tmp.path().join("app.tar");
    let docker = tmp.path().join("docker.tar");
    for dst in [
        format!("oci:{}:app", layout.display()),
        format!("oci-archive:{}:app", archive.display()),
        format!("docker-archive:{}:example/app:v1", docker.display()),
    ] {
        run(ocikit().args([
            "build",
            "--from",
            &base,
            "--layer",
            app_dir.to_str().unwrap(),
            "--env",
            "GREETING=hi",
            "--workdir",
            "/app",
            &dst,
        ]));
        let bundle = tmp
            .path()
            .join(format!("bundle-{}", dst.split(':').next().unwrap()));
        let out = run(Command::new(&unpack).args([&dst, bundle.to_str().unwrap()]));
        assert_eq!(
            out.lines().filter(|l| l.starts_with("layer ")).count(),
            2,
            "{out}"
        );
        let mut want = tree(&base_dir);
        want.extend(tree(&app_dir));
        want.sort();
        want.dedup();
        assert_eq!(tree(&bundle.join("rootfs")), want, "{dst}");

        // The config carries both the base's settings and the new ones.
        let src = open_source(&dst.parse::<Location>().unwrap(), &host_platform()).unwrap();
        let image = src
            .source()
            .fetch_image(&src.reference(), &host_platform())
            .unwrap();
        let exec = image.config.config().clone().unwrap();
        assert_eq!(
            exec.entrypoint().as_deref(),
            Some(&["/bin/sh".to_owned()][..])
        );
        assert_eq!(exec.working_dir().as_deref(), Some("/app"));
        let env = exec.env().clone().unwrap();
        assert!(env.contains(&"PATH=/bin".to_owned()) && env.contains(&"GREETING=hi".to_owned()));
        assert_eq!(image.config.history().as_ref().unwrap().len(), 2);
        assert_eq!(image.config.diff_ids().len(), 2);
    }

    // umoci unpacks what we built to the same tree.
    let umoci_bundle = tmp.path().join("umoci-bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:app", layout.display()),
        umoci_bundle.to_str().unwrap(),
    ]));
    assert_eq!(
        tree(&umoci_bundle.join("rootfs")),
        tree(&tmp.path().join("bundle-oci/rootfs"))
    );
}

#[test]
fn unpack_refuses_a_tampered_layer_and_a_non_empty_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    busybox_tree(&src);
    let layout = tmp.path().join("layout");
    let image = format!("oci:{}:t", layout.display());
    build_from_scratch(&src, &image);
    let busy = tmp.path().join("busy");
    std::fs::create_dir_all(busy.join("rootfs/x")).unwrap();
    let out = ocikit()
        .args(["unpack", &image, busy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // Flip one byte of the layer blob: the unpack fails on the digest.
    let opened = open_source(&image.parse::<Location>().unwrap(), &host_platform()).unwrap();
    let AnyManifest::Manifest(m) = opened.top_manifest().unwrap() else {
        panic!("a manifest");
    };
    let layer = &m.layers()[0];
    let path = layout.join("blobs/sha256").join(layer.digest().digest());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let bundle = tmp.path().join("bundle");
    let out = ocikit()
        .args(["unpack", &image, bundle.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("digest mismatch"), "{err}");
}

#[test]
fn save_then_load_keeps_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    busybox_tree(&src);
    let image = format!("oci:{}:t", tmp.path().join("layout").display());
    build_from_scratch(&src, &image);
    // A docker archive with the `save` recipe, an OCI archive with `ocikit copy`.
    for (oci, name) in [(false, "example/busybox:1"), (true, "saved")] {
        let file = tmp
            .path()
            .join(format!("{name}.tar").replace([':', '/'], "_"));
        let file = file.to_str().unwrap();
        if oci {
            let (_, err) =
                run_both(ocikit().args(["copy", &image, &format!("oci-archive:{file}:{name}")]));
            assert!(err.contains("manifests written"), "{err}");
        } else {
            let out = run(Command::new(example_binary("save")).args([&image, file, name]));
            assert!(out.starts_with("saved sha256:"), "{out}");
            // The name is the archive's RepoTags, as `docker load` reads it.
            let archive = ocikit::layout::DockerArchive::open(file).unwrap();
            archive.find(Some(name)).expect("the image under its name");
        }
        let dst = format!(
            "oci:{}:loaded",
            tmp.path()
                .join(format!("back-{name}").replace([':', '/'], "_"))
                .display()
        );
        let out = run(Command::new(example_binary("load")).args([file, &dst]));
        assert!(out.starts_with("loaded sha256:"), "{out}");
        // The layer and config come back byte for byte.
        let a = open_source(&image.parse::<Location>().unwrap(), &host_platform()).unwrap();
        let b = open_source(&dst.parse::<Location>().unwrap(), &host_platform()).unwrap();
        let ia = a
            .source()
            .fetch_image(&a.reference(), &host_platform())
            .unwrap();
        let ib = b
            .source()
            .fetch_image(&b.reference(), &host_platform())
            .unwrap();
        assert_eq!(ia.config.digest(), ib.config.digest());
        assert_eq!(
            ia.manifest
                .layers()
                .iter()
                .map(|l| l.digest().clone())
                .collect::<Vec<_>>(),
            ib.manifest
                .layers()
                .iter()
                .map(|l| l.digest().clone())
                .collect::<Vec<_>>()
        );
    }
    // Not an archive at all.
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar").unwrap();
    let out = Command::new(example_binary("load"))
        .args([junk.to_str().unwrap(), "oci:/nonexistent-never:x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn multiarch_index_pushed_and_pulled_per_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    busybox_tree(&src);
    let dst = format!(
        "docker://{}/ocikit-multiarch/{}:v1",
        registry(),
        std::process::id()
    );
    let out = run(Command::new(example_binary("multiarch")).args([src.to_str().unwrap(), &dst]));
    assert_eq!(out.matches("same digest").count(), 2, "{out}");
    // The index is what the tag names, with both platforms.
    let s = open_source(&dst.parse::<Location>().unwrap(), &host_platform()).unwrap();
    let AnyManifest::Index(index) = s.top_manifest().unwrap() else {
        panic!("the tag names an index");
    };
    let platforms: Vec<String> = index
        .manifests()
        .iter()
        .map(|d| ocikit::image::platform_to_string(d.platform().as_ref().unwrap()))
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
}

#[test]
fn artifacts_pushed_attached_listed_and_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    busybox_tree(&src);
    let repo = format!(
        "docker://{}/ocikit-artifact/{}",
        registry(),
        std::process::id()
    );
    let image = format!("{repo}:app");
    build_from_scratch(&src, &image);
    let artifact = |args: &[&str]| run(ocikit().arg("artifact").args(args));
    // A chart, as its own artifact.
    let chart = tmp.path().join("chart-0.1.0.tgz");
    std::fs::write(&chart, b"helm chart bytes").unwrap();
    let out = artifact(&[
        "push",
        chart.to_str().unwrap(),
        &format!("{repo}:chart"),
        "--type",
        "application/vnd.cncf.helm.config.v1+json",
        "--media-type",
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    ]);
    assert!(out.starts_with("sha256:"), "{out}");
    // An SBOM attached to the image by the `artifact` recipe, which lists the referrers it
    // finds then; a signature-like one of another type by the command.
    let sbom = tmp.path().join("sbom.spdx.json");
    std::fs::write(&sbom, br#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    let out = run(Command::new(example_binary("artifact")).args([
        &image,
        sbom.to_str().unwrap(),
        "application/spdx+json",
    ]));
    let attached = out
        .strip_prefix("attached ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        out.contains(&format!("referrer {attached} ")) && out.contains(" application/spdx+json"),
        "{out}"
    );
    let sig = tmp.path().join("sig");
    std::fs::write(&sig, b"signature").unwrap();
    artifact(&[
        "attach",
        &image,
        sig.to_str().unwrap(),
        "--type",
        "application/vnd.example.sig",
    ]);
    let all = artifact(&["list", &image]);
    assert_eq!(all.lines().count(), 2, "{all}");
    let sboms = artifact(&["list", &image, "--type", "application/spdx+json"]);
    assert_eq!(sboms.lines().count(), 1, "{sboms}");
    let sbom_digest = sboms.split_whitespace().next().unwrap().to_owned();
    assert_eq!(sbom_digest, attached);
    // Fetch the SBOM back by digest, and the chart by tag.
    let out_dir = tmp.path().join("fetched");
    artifact(&[
        "fetch",
        &format!("{repo}@{sbom_digest}"),
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(out_dir.join("sbom.spdx.json")).unwrap(),
        br#"{"spdxVersion":"SPDX-2.3"}"#
    );
    artifact(&["fetch", &format!("{repo}:chart"), out_dir.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(out_dir.join("chart-0.1.0.tgz")).unwrap(),
        b"helm chart bytes"
    );
}

#[test]
fn quickstart_runs_end_to_end() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the quickstart runs a container: it needs root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = run(Command::new(example_binary("quickstart")).arg(tmp.path()));
    for step in [
        "[1/5] build",
        "[2/5] push",
        "[3/5] pull",
        "[4/5] rootfs",
        "[5/5] run",
    ] {
        assert!(out.contains(step), "{step} missing:\n{out}");
    }
    assert!(out.contains("hello from a container"), "{out}");
    assert!(out.contains("pid 1,"), "{out}");
    assert!(out.contains("hostname quickstart"), "{out}");
    assert!(out.contains("exited with 0"), "{out}");
    // What was pushed is what was pulled.
    let digest = |step: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(step))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{step} in {out}"))
            .to_owned()
    };
    assert_eq!(digest("[1/5] build"), digest("[3/5] pull"));
    // The configuration kept under the work directory carries the limits; the container's
    // root filesystem is gone with it, the image stays in the store.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("config.json")).unwrap()).unwrap();
    let store = ocikit::store::Store::open(tmp.path().join("store")).unwrap();
    assert!(store.containers().unwrap().is_empty());
    assert_eq!(store.images().unwrap().len(), 1);
    assert!(store.check().unwrap().is_ok());
    assert_eq!(config["linux"]["resources"]["memory"]["limit"], 512 << 20);
}

#[test]
fn build_with_a_diff_layer_and_annotations() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    busybox_tree(&base);
    std::fs::write(base.join("etc/old"), "to be deleted").unwrap();
    let changed = tmp.path().join("changed");
    run(Command::new("cp").arg("-a").arg(&base).arg(&changed));
    std::fs::remove_file(changed.join("etc/old")).unwrap();
    std::fs::write(changed.join("etc/new"), "added").unwrap();
    let layout = tmp.path().join("layout");
    let first = format!("oci:{}:base", layout.display());
    let second = format!("oci:{}:next", layout.display());
    build_from_scratch(&base, &first);
    run(ocikit().args([
        "build",
        "--from",
        &first,
        "--diff",
        base.to_str().unwrap(),
        changed.to_str().unwrap(),
        "--annotation",
        "org.opencontainers.image.title=diffed",
        &second,
    ]));
    let bundle = tmp.path().join("bundle");
    run(ocikit().args(["unpack", &second, bundle.to_str().unwrap()]));
    assert_eq!(tree(&bundle.join("rootfs")), tree(&changed));
    let s = open_source(&second.parse::<Location>().unwrap(), &host_platform()).unwrap();
    let AnyManifest::Manifest(m) = s.top_manifest().unwrap() else {
        panic!("a manifest");
    };
    assert_eq!(
        m.annotations().as_ref().unwrap()["org.opencontainers.image.title"],
        "diffed"
    );
    assert_eq!(m.layers().len(), 2);
    // The diff layer holds only the change: the new file, a whiteout, and their directory
    // (whose time changed).
    let blob = s.source().open_blob(&m.layers()[1]).unwrap();
    let mut entries: Vec<String> = tar::Archive::new(flate2::read::GzDecoder::new(blob))
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    entries.sort();
    assert!(
        entries == ["etc/", "etc/.wh.old", "etc/new"] || entries == ["etc/.wh.old", "etc/new"],
        "{entries:?}"
    );
}

/// The `build` recipe: one layer onto a base, with its configuration edit, and one layer
/// from scratch; the `unpack` recipe gives back the trees it was made of.
#[test]
fn build_recipe_adds_a_layer_and_an_env() {
    let tmp = tempfile::tempdir().unwrap();
    let (base_dir, app_dir) = base_and_app_trees(tmp.path());
    let layout = tmp.path().join("layout");
    let (base, app) = (
        format!("oci:{}:base", layout.display()),
        format!("docker-archive:{}", tmp.path().join("app.tar").display()),
    );
    let build = example_binary("build");
    let out = run(Command::new(&build).args([base_dir.to_str().unwrap(), &base]));
    assert!(
        out.contains("built sha256:") && out.contains("(1 layers)"),
        "{out}"
    );
    let out = run(Command::new(&build).args([app_dir.to_str().unwrap(), &app, &base]));
    assert_eq!(out.lines().filter(|l| l.starts_with("layer ")).count(), 1);
    assert!(out.contains("(2 layers)"), "{out}");
    let src = open_source(&app.parse::<Location>().unwrap(), &host_platform()).unwrap();
    let image = src.image().unwrap();
    let env = image
        .config
        .config()
        .clone()
        .unwrap()
        .env()
        .clone()
        .unwrap();
    assert!(env.contains(&"BUILT_BY=ocikit".to_owned()), "{env:?}");
    assert_eq!(image.config.diff_ids().len(), 2);

    let bundle = tmp.path().join("bundle");
    let out = run(Command::new(example_binary("unpack")).args([&app, bundle.to_str().unwrap()]));
    assert!(out.contains("unpacked sha256:"), "{out}");
    assert!(bundle.join("config.json").is_file());
    let mut want = tree(&base_dir);
    want.extend(tree(&app_dir));
    want.sort();
    want.dedup();
    assert_eq!(tree(&bundle.join("rootfs")), want);
}

/// Builds `image` from nothing but the tree `src`, with `ocikit build`.
fn build_from_scratch(src: &std::path::Path, image: &str) {
    run(ocikit().args([
        "build",
        "--from",
        "scratch",
        "--layer",
        src.to_str().unwrap(),
        image,
    ]));
}
