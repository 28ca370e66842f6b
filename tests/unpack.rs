//! `ocikit unpack` makes a runnable bundle, as `umoci unpack` does, and a failed unpack
//! leaves the bundle directory as it found it.
//!
//! Needs root (owners, and runc to run the bundles), runc, umoci and busybox-static
//! (scripts/test.sh installs them), and the `ocikit` binary (`cargo test --workspace`
//! builds it); fails without them.

use std::path::Path;
use std::process::Command;

use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::{Location, open_source};
use ocikit::image::{AnyManifest, host_platform};
use ocikit::layout::Layout;
use ocikit::unpack::{UnpackOptions, unpack_bundle};

mod common;
use common::{busybox_tree, run, workspace_binary};

/// `ocikit unpack ARGS...`.
fn unpack(args: &[&str]) -> Command {
    let mut cmd = Command::new(workspace_binary("ocikit"));
    cmd.arg("unpack").args(args);
    cmd
}

fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "unpacking owners and running bundles need root (CI runs as root)"
    );
}

/// An image whose configuration sets a user (with a supplementary group), environment,
/// working directory, entrypoint and cmd, as two layers (busybox, then an app directory),
/// tagged `t` in the layout `dir/layout`. Returns the `oci:` location.
fn app_image(dir: &Path) -> String {
    let base = dir.join("base");
    busybox_tree(&base);
    std::fs::write(
        base.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        base.join("etc/group"),
        "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
    )
    .unwrap();
    for applet in ["env", "sort", "pwd"] {
        std::os::unix::fs::symlink("busybox", base.join("bin").join(applet)).unwrap();
    }
    let app = dir.join("app");
    std::fs::create_dir_all(app.join("srv/app")).unwrap();
    std::fs::write(app.join("srv/app/data"), "application data\n").unwrap();
    // The image's user may write there: the root filesystem is writable, as umoci's is.
    std::fs::set_permissions(
        app.join("srv/app"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let layout = Layout::create(dir.join("layout")).unwrap();
    let spec = BuildSpec::new()
        .layer(&base)
        .layer(&app)
        .entrypoint(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo \"args: $0 $1\"; id; pwd; cat data; env | sort; touch /srv/app/new && echo writable".into(),
        ])
        .cmd(vec!["first".into(), "second".into()])
        .env("GREETING=ocikit")
        .env("PATH=/bin")
        .workdir("/srv/app")
        .user("app");
    build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap();
    format!("oci:{}:t", dir.join("layout").display())
}

/// `runc run` of `bundle` with a private state root, in a terminal as a user would type it
/// (`script` gives it one: umoci's configuration asks for a terminal, which runc opens from
/// its caller's). Returns the exit code and the output, with the terminal's `\r\n` as `\n`.
fn runc_run(bundle: &Path, state: &Path, id: &str) -> (i32, String) {
    let command = format!(
        "runc --root '{}' run --bundle '{}' '{id}'",
        state.display(),
        bundle.display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    // Kept open until the end: at the end of its input, script would type an end-of-file
    // into the terminal.
    let stdin = child.stdin.take();
    let out = child.wait_with_output().expect("script");
    drop(stdin);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
    )
}

/// The acceptance: `ocikit unpack oci:DIR:TAG BUNDLE && runc run -b BUNDLE ID` prints the
/// same as `umoci unpack --image DIR:TAG B2 && runc run -b B2 ID2`.
#[test]
fn unpacked_bundle_runs_under_runc_as_umocis_does() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let image = app_image(tmp.path());
    let ours = tmp.path().join("ours");
    let out = unpack(&[&image, ours.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Unpacked sha256:"), "{err}");
    assert!(ours.join("config.json").is_file());
    assert!(ours.join("rootfs/srv/app/data").is_file());

    let theirs = tmp.path().join("theirs");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:t", tmp.path().join("layout").display()),
        theirs.to_str().unwrap(),
    ]));

    let state = tmp.path().join("runc-state");
    let pid = std::process::id();
    let (our_code, our_out) = runc_run(&ours, &state, &format!("unpack-ours-{pid}"));
    let (their_code, their_out) = runc_run(&theirs, &state, &format!("unpack-umoci-{pid}"));
    assert_eq!(their_code, 0, "runc on umoci's bundle: {their_out}");
    assert_eq!((our_code, &our_out), (their_code, &their_out));
    // Each setting of the image's configuration is visible in what ran.
    // The same bundle without a terminal runs from a pipe, and prints the same but `TERM`.
    let piped = tmp.path().join("piped");
    run(&mut unpack(&[
        &image,
        piped.to_str().unwrap(),
        "--no-terminal",
    ]));
    let out = Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle", piped.to_str().unwrap()])
        .arg(format!("unpack-piped-{pid}"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        their_out.replace("TERM=xterm\n", "")
    );
    for want in [
        "TERM=xterm",
        "args: first second",
        "uid=1000(app) gid=1000(app)",
        "/srv/app",
        "application data",
        "writable",
        "GREETING=ocikit",
        "PATH=/bin",
    ] {
        assert!(our_out.contains(want), "{want:?} missing from {our_out}");
    }
}

/// The first layer is written, the second fails its digest at its end: nothing of the bundle
/// remains, whether the bundle directory was missing, empty, or held files of its own.
#[test]
fn a_corrupt_layer_leaves_the_bundle_as_it_was() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let image = app_image(tmp.path());
    let opened = open_source(&image.parse::<Location>().unwrap(), &host_platform()).unwrap();
    let AnyManifest::Manifest(m) = opened.top_manifest().unwrap() else {
        panic!("a manifest");
    };
    assert_eq!(m.layers().len(), 2);
    let blob = tmp
        .path()
        .join("layout/blobs/sha256")
        .join(m.layers()[1].digest().digest());
    let mut bytes = std::fs::read(&blob).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();

    let unpack = |bundle: &Path| {
        unpack(&[&image, bundle.to_str().unwrap()])
            .output()
            .unwrap()
    };
    // Missing: missing again, with the parent this unpack had to create.
    let missing = tmp.path().join("new/bundle");
    let out = unpack(&missing);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mismatch"), "{err}");
    assert!(!tmp.path().join("new").exists(), "{err}");

    // Existing, with a file of the user's: the file stays, nothing is added.
    let existing = tmp.path().join("existing");
    std::fs::create_dir_all(existing.join("rootfs")).unwrap();
    std::fs::write(existing.join("notes"), "mine").unwrap();
    let out = unpack(&existing);
    assert!(!out.status.success());
    let mut left: Vec<_> = walk(&existing);
    left.sort();
    assert_eq!(left, ["notes", "rootfs"]);
    assert!(walk(&existing.join("rootfs")).is_empty());

    // Existing and empty: empty again (no rootfs).
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(!unpack(&empty).status.success());
    assert!(walk(&empty).is_empty(), "{:?}", walk(&empty));
    assert_eq!(
        std::fs::read_to_string(existing.join("notes")).unwrap(),
        "mine"
    );

    // A bundle that already has a configuration is refused before anything is written.
    let configured = tmp.path().join("configured");
    std::fs::create_dir_all(&configured).unwrap();
    std::fs::write(configured.join("config.json"), "{}").unwrap();
    let out = unpack(&configured);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has a configuration"));
    assert_eq!(walk(&configured), ["config.json"]);
    assert_eq!(
        std::fs::read_to_string(configured.join("config.json")).unwrap(),
        "{}"
    );
}

/// A conversion that fails after the layers were applied (the image's user is not in the
/// rootfs) also takes the rootfs back.
#[test]
fn a_failed_conversion_leaves_no_rootfs() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    busybox_tree(&tree);
    let layout = Layout::create(tmp.path().join("layout")).unwrap();
    let spec = BuildSpec::new()
        .layer(&tree)
        .cmd(vec!["true".into()])
        .user("nobody-here");
    build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap();
    let location: Location = format!("oci:{}:t", tmp.path().join("layout").display())
        .parse()
        .unwrap();
    let source = open_source(&location, &host_platform()).unwrap();
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    let err = unpack_bundle(
        source.source(),
        &source.image().unwrap(),
        &bundle,
        &UnpackOptions::new(),
    )
    .unwrap_err();
    assert!(matches!(err, ocikit::Error::Convert(_)), "{err}");
    assert!(err.to_string().contains("nobody-here"), "{err}");
    assert!(walk(&bundle).is_empty(), "{:?}", walk(&bundle));
}

/// `--rootless` writes the configuration `umoci unpack --rootless` would: a user namespace
/// mapping the caller to root, no network namespace, no cgroup limits; runc runs it.
#[test]
fn rootless_bundle_maps_the_caller() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let image = app_image(tmp.path());
    let bundle = tmp.path().join("rootless");
    run(&mut unpack(&[
        &image,
        bundle.to_str().unwrap(),
        "--rootless",
    ]));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let namespaces: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(namespaces.contains(&"user"), "{namespaces:?}");
    assert!(!namespaces.contains(&"network"), "{namespaces:?}");
    let uid = rustix::process::geteuid().as_raw();
    assert_eq!(
        config["linux"]["uidMappings"],
        serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}])
    );
    assert!(config["linux"]["resources"].is_null());
    // The image's user is not mapped in a one-id namespace: run as the mapped root instead.
    let mut config = config;
    config["process"]["user"] = serde_json::json!({"uid": 0, "gid": 0});
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let (code, out) = runc_run(
        &bundle,
        &tmp.path().join("state"),
        &format!("unpack-rootless-{}", std::process::id()),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("args: first second"), "{out}");
}

/// The names directly in `dir`.
fn walk(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}
