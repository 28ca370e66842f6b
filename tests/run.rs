//! Pull, unpack, convert, run: an image pushed to the registry of scripts/test.sh
//! (`OCIKIT_TEST_REGISTRY`), pulled and unpacked into a bundle by us, gives the same output
//! under runc as under oci-runtime; `ocikit run` runs it end to end with limits, and the
//! `run` recipe runs an image from the store with its exit status.
//!
//! Needs root, runc, busybox-static and the registry (scripts/test.sh); fails without them.

use std::path::Path;
use std::process::Command;

use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::{CopyOptions, Location, copy, open_source};
use ocikit::image::host_platform;
use ocikit::layout::Layout;
use ocikit::unpack::{UnpackOptions, unpack_bundle};

mod common;
use common::{busybox_tree, example_binary, registry, workspace_binary};

/// A busybox image with a user, pushed to the registry; returns its `docker://` location.
fn pushed_image(dir: &Path, repo: &str) -> String {
    let tree = dir.join("tree");
    busybox_tree(&tree);
    std::fs::write(
        tree.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("etc/group"),
        "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
    )
    .unwrap();
    let layout = Layout::create(dir.join("layout")).unwrap();
    let spec = BuildSpec::new()
        .layer(&tree)
        .entrypoint(vec!["/bin/sh".into(), "-c".into()])
        .cmd(vec!["echo hello from $GREETING; id; pwd".into()])
        .env("GREETING=ocikit")
        .workdir("/etc")
        .user("app");
    let built = build_image(None, &layout, Some(&"v1".parse().unwrap()), &spec).unwrap();
    assert_eq!(built.layers.len(), 1);
    let dst = format!("docker://{}/{repo}:v1", registry());
    copy(
        &format!("oci:{}:v1", dir.join("layout").display())
            .parse::<Location>()
            .unwrap(),
        &dst.parse::<Location>().unwrap(),
        &CopyOptions::new(),
    )
    .unwrap();
    dst
}

fn output(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("spawn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn pulled_image_runs_the_same_under_runc_and_oci_runtime() {
    assert!(
        rustix::process::geteuid().is_root(),
        "containers need root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let image = pushed_image(tmp.path(), &format!("ocikit-run/{}", std::process::id()));
    let source = open_source(&image.parse::<Location>().unwrap(), &host_platform()).unwrap();
    let bundle = tmp.path().join("bundle");
    let made = unpack_bundle(
        source.source(),
        &source.image().unwrap(),
        &bundle,
        &UnpackOptions::new(),
    )
    .unwrap();
    let user = made.spec.process().as_ref().unwrap().user();
    assert_eq!((user.uid(), user.gid()), (1000, 1000));
    assert_eq!(user.additional_gids().as_deref(), Some(&[2000][..]));

    let runc_root = tmp.path().join("runc-state");
    let id = format!("ocikit-run-test-{}", std::process::id());
    let (runc_code, runc_out) = output(Command::new("runc").arg("--root").arg(&runc_root).args([
        "run",
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]));
    let rt_root = tmp.path().join("rt-state");
    let ours = workspace_binary("oci-runtime");
    let (our_code, our_out) = output(Command::new(&ours).arg("--root").arg(&rt_root).args([
        "run",
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]));
    assert_eq!(runc_code, 0, "runc: {runc_out}");
    assert_eq!((our_code, &our_out), (runc_code, &runc_out));
    assert!(our_out.contains("hello from ocikit"), "{our_out}");
    assert!(our_out.contains("uid=1000"), "{our_out}");
    assert!(our_out.lines().any(|l| l == "/etc"), "{our_out}");
}

/// The CPU quota as the container's own cgroup shows it (v2's `cpu.max` starts with it; v1's
/// `cpu.cfs_quota_us` is it).
const SHOW_CPU_QUOTA: &str = "{ read q rest </sys/fs/cgroup/cpu.max || \
    read q </sys/fs/cgroup/cpu/cpu.cfs_quota_us; } 2>/dev/null; echo $q";

/// `ocikit run` pulls the pushed image into a store and runs a command of ours in it under
/// the limits asked for, which the container's cgroups show; its status is the command's.
#[test]
fn ocikit_run_pulls_and_runs_with_limits() {
    assert!(
        rustix::process::geteuid().is_root(),
        "containers need root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let image = pushed_image(
        tmp.path(),
        &format!("ocikit-run-recipe/{}", std::process::id()),
    );
    let store = tmp.path().join("store");
    let out = Command::new(workspace_binary("ocikit"))
        .arg("run")
        .arg("--root")
        .arg(&store)
        .args(["--memory", "512m", "--cpus", "0.5", &image])
        // The image's entrypoint is `/bin/sh -c`: the command replaces its `Cmd`.
        .arg(format!(
            "echo overridden; {SHOW_LIMIT}; {SHOW_CPU_QUOTA}; exit 7"
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The limits are the container's.
    assert_eq!(stdout, format!("overridden\n{}\n50000\n", 512 << 20));
    let store = ocikit::store::Store::open(&store).unwrap();
    assert!(store.containers().unwrap().is_empty());
}

/// A busybox image in `dir/layout`, tagged `t`, whose command is `/bin/sh -c SCRIPT`.
fn shell_image(dir: &std::path::Path, script: &str) {
    let tree = dir.join("tree");
    busybox_tree(&tree);
    let layout = Layout::create(dir.join("layout")).unwrap();
    let spec = BuildSpec::new()
        .layer(&tree)
        .entrypoint(vec!["/bin/sh".into(), "-c".into()])
        .cmd(vec![script.into()]);
    build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap();
}

/// The `run` recipe: pulled on first use from a layout into the store, run with the image's
/// command, exiting with its status; the second time by the name the pull gave, no pull.
#[test]
fn run_recipe_runs_an_image_from_the_store_with_its_status() {
    assert!(
        rustix::process::geteuid().is_root(),
        "containers need root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    shell_image(tmp.path(), "echo from the recipe; exit 3");
    let store = tmp.path().join("store");
    let src = format!("oci:{}:t", tmp.path().join("layout").display());
    for (image, pulls) in [(src.as_str(), true), ("t", false)] {
        let out = Command::new(example_binary("run"))
            .arg(image)
            .arg(&store)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{image}: {stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "from the recipe\n");
        assert_eq!(stderr.contains("run: pulled sha256:"), pulls, "{stderr}");
    }
    let store = ocikit::store::Store::open(&store).unwrap();
    assert!(store.containers().unwrap().is_empty());
    assert!(store.check().unwrap().is_ok());
}

/// A bundle `umoci unpack` made, with umoci's own config.json, runs under oci-runtime.
#[test]
fn a_bundle_umoci_made_runs_under_oci_runtime() {
    assert!(
        rustix::process::geteuid().is_root(),
        "containers need root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    shell_image(tmp.path(), "echo from a umoci bundle; exit 3");
    let bundle = tmp.path().join("bundle");
    common::run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:t", tmp.path().join("layout").display()),
        bundle.to_str().unwrap(),
    ]));
    let (code, out) = output(
        Command::new(workspace_binary("oci-runtime"))
            .arg("--root")
            .arg(tmp.path().join("state"))
            .args([
                "run",
                "--bundle",
                bundle.to_str().unwrap(),
                "umoci-bundle-test",
            ]),
    );
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("from a umoci bundle"), "{out}");
}

/// A busybox image in a layout under `dir`, named `t`; returns its location.
fn layout_image(dir: &Path) -> Location {
    let tree = dir.join("tree");
    busybox_tree(&tree);
    let layout = Layout::create(dir.join("layout")).unwrap();
    let spec = BuildSpec::new().layer(&tree).cmd(vec!["true".into()]);
    build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap();
    format!("oci:{}:t", dir.join("layout").display())
        .parse()
        .unwrap()
}

/// The memory limit as the container's own cgroup shows it (v2, or v1's memory hierarchy).
const SHOW_LIMIT: &str = "cat /sys/fs/cgroup/memory.max 2>/dev/null \
    || cat /sys/fs/cgroup/memory/memory.limit_in_bytes";

/// One options value runs an image with a memory limit and a command, and hands back what
/// the container wrote to its piped output and error: the unpack path.
#[test]
fn one_options_value_limits_memory_and_captures_output() {
    use ocikit::run::{RunOptions, Stdio, run_image};
    assert!(
        rustix::process::geteuid().is_root(),
        "containers need root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let opened = open_source(&layout_image(tmp.path()), &host_platform()).unwrap();
    let state = tmp.path().join("state");
    let share = tmp.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("greeting"), "from the host\n").unwrap();
    let mut bind = ocikit::oci_spec::runtime::Mount::default();
    bind.set_destination("/share".into());
    bind.set_typ(Some("bind".into()));
    bind.set_source(Some(share.clone()));
    bind.set_options(Some(vec!["rbind".into(), "ro".into()]));
    let options = RunOptions::new()
        .helper(workspace_binary("oci-runtime"))
        .state_root(&state)
        .memory_limit(64 << 20)
        .env("ANSWER=42")
        .mount(bind)
        .command(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!(
                "{SHOW_LIMIT}; echo answer $ANSWER; cat /share/greeting; echo to stderr >&2; exit 5"
            ),
        ])
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped);
    let bundle = tmp.path().join("bundle");
    let (made, out) =
        run_image(opened.source(), &opened.image().unwrap(), &bundle, &options).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        5,
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, format!("{}\nanswer 42\nfrom the host\n", 64 << 20));
    assert_eq!(out.stderr, b"to stderr\n");
    let memory = made
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit());
    assert_eq!(memory, Some(64 << 20));
    // The container is deleted; the bundle is the caller's and stays.
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
    assert!(bundle.join("config.json").is_file());
}

/// The same options on the store path: the caller reads the piped output while the
/// container runs, then waits; the container and its root filesystem are gone after.
#[test]
fn one_options_value_runs_from_the_store() {
    use ocikit::run::{RunOptions, Stdio, spawn_stored};
    use ocikit::store::{PullOptions, Store};
    use std::io::Read;
    assert!(
        rustix::process::geteuid().is_root(),
        "containers need root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let pulled = store
        .pull(&layout_image(tmp.path()), &PullOptions::new())
        .unwrap();
    let state = tmp.path().join("state");
    let options = RunOptions::new()
        .helper(workspace_binary("oci-runtime"))
        .state_root(&state)
        .id(format!("ocikit-run-options-{}", std::process::id()))
        .memory_limit(96 << 20)
        .user("1000:1000")
        .command(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("{SHOW_LIMIT}; id -u"),
        ])
        .stdout(Stdio::Piped);
    let mut running = spawn_stored(&store, pulled.manifest.digest().as_ref(), &options).unwrap();
    let mut stdout = String::new();
    running
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = running.wait().unwrap();
    assert_eq!(status.code(), 0, "{stdout}");
    assert_eq!(stdout, format!("{}\n1000\n", 96 << 20));
    assert!(store.containers().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
}
