//! The state directory and container ids: whoever can write a container's `exec.fifo` starts
//! it, whoever picks its id picks a path.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use oci_spec::runtime::ContainerState;
use ocikit_runtime::{CreateOptions, Runtime};

use crate::kit::*;

/// The user the host-side attacker runs as.
const NOBODY: u32 = 65534;

fn mode(path: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.mode() & 0o7777, m.uid())
}

/// Runs `program args` as uid/gid 65534 (a local user who is not root), with a time limit.
fn as_nobody(program: &str, args: &[&str]) -> std::process::Output {
    Command::new("/bin/busybox")
        .arg("timeout")
        .arg("5")
        .arg(program)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The state root and each container's directory are `0700` and root's; the `exec.fifo` is
/// `0622` as runc's is. A local user who is not root (the directories above are open to
/// them) can neither read a created container's state, list the root, write its fifo nor
/// `start` it: it stays created.
#[test]
fn state_directories_are_private_and_the_fifo_unreachable_like_runc() {
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let root = parent.path().join("state");
    let rt = Runtime::new(&root).with_helper(BIN);
    let b = TestBundle::new("true");
    b.write();
    let cid = id("private");
    let _guard = Guard(&rt, cid.clone());
    rt.create(&cid, b.path(), CreateOptions::new()).unwrap();
    let dir = root.join(&cid);
    let fifo = dir.join("exec.fifo");
    assert_eq!(mode(&root), (0o700, 0), "state root");
    assert_eq!(mode(&dir), (0o700, 0), "container directory");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // runc's, for the same bundle.
    let runc_root = parent.path().join("runc");
    let runc_id = id("private-runc");
    let created = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["create", "--bundle", b.path().to_str().unwrap(), &runc_id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(created.success());
    let runc_modes = (
        mode(&runc_root),
        mode(&runc_root.join(&runc_id).join("exec.fifo")),
    );
    cli("runc", &runc_root, &["delete", "--force", &runc_id]);
    assert_eq!(
        runc_modes.0,
        mode(&root),
        "state root: runc's (left), ours (right)"
    );
    assert_eq!(
        runc_modes.1,
        mode(&fifo),
        "exec.fifo: runc's (left), ours (right)"
    );

    // The attacks of a local user.
    let (root_s, dir_s, fifo_s) = (shell_path(&root), shell_path(&dir), shell_path(&fifo));
    let state_json = format!("{dir_s}/state.json");
    for (what, out) in [
        ("list the root", as_nobody("ls", &[&root_s])),
        ("read state.json", as_nobody("cat", &[&state_json])),
        (
            "write exec.fifo",
            as_nobody("sh", &["-c", &format!("echo 0 > {fifo_s}")]),
        ),
        ("start", as_nobody(BIN, &["--root", &root_s, "start", &cid])),
    ] {
        assert!(!out.status.success(), "a user could {what}: {out:?}");
    }
    assert_eq!(rt.state(&cid).unwrap().status(), ContainerState::Created);
    rt.delete(&cid, true).unwrap();
}

/// Ids that are paths or carry control characters.
fn hostile_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "/x",
        "a/../../x",
        "..\\x",
        "a\nb",
        "\x1b[31mred",
        "a\tb",
        "a b",
        "x\u{7f}",
        "é",
    ]
    .map(String::from)
    .to_vec();
    ids.push("y".repeat(300));
    ids.push("z".repeat(5000));
    ids
}

/// Hostile ids (`../x`, `a/b`, absolute, empty, very long, control characters, NUL) are
/// refused by every operation of the library and of the command line, as runc refuses them,
/// and nothing is created, changed or removed outside the state root: not even a live
/// container of another runtime whose state directory `../x` names.
#[test]
fn hostile_ids_are_refused_and_touch_nothing_outside_the_root() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("state");
    let rt = Runtime::new(&root).with_helper(BIN);
    // A neighbour: a live container `x` whose state directory is `<root>/../x`.
    let neighbour = Runtime::new(parent.path()).with_helper(BIN);
    let b = TestBundle::new("true");
    b.write();
    let _guard = Guard(&neighbour, "x".into());
    neighbour
        .create("x", b.path(), CreateOptions::new())
        .unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let before = tree(parent.path());

    let mut ids = hostile_ids();
    ids.push("a\0b".into());
    let process = neighbour.process_of("x").unwrap();
    for cid in &ids {
        let show = format!("{cid:?}");
        let _guard = Guard(&rt, cid.clone());
        assert!(
            rt.create(cid, b.path(), CreateOptions::new()).is_err(),
            "create {show}"
        );
        assert!(rt.state(cid).is_err(), "state {show}");
        assert!(rt.start(cid).is_err(), "start {show}");
        assert!(
            rt.kill(cid, nix::sys::signal::Signal::SIGKILL).is_err(),
            "kill {show}"
        );
        assert!(rt.delete(cid, true).is_err(), "delete {show}");
        assert!(
            rt.exec(cid, &process, CreateOptions::new()).is_err(),
            "exec {show}"
        );
        assert!(rt.process_of(cid).is_err(), "process_of {show}");
    }
    assert_eq!(tree(parent.path()), before, "the library changed files");

    for runtime in [BIN, "runc"] {
        for cid in hostile_ids() {
            let bundle = b.path().to_str().unwrap();
            for args in [
                vec!["create", "--bundle", bundle, &cid],
                vec!["run", "--bundle", bundle, &cid],
                vec!["start", &cid],
                vec!["kill", &cid, "KILL"],
                vec!["delete", "--force", &cid],
            ] {
                let out = cli(runtime, &root, &args);
                assert!(
                    !out.status.success(),
                    "{runtime} {args:?} succeeded: {out:?}"
                );
            }
        }
    }
    assert_eq!(tree(parent.path()), before, "a command line changed files");
    assert_eq!(
        neighbour.state("x").unwrap().status(),
        ContainerState::Created,
        "the neighbour was touched"
    );
    neighbour.delete("x", true).unwrap();
}
