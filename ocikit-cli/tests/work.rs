//! `ocikit work`'s command line: every subcommand's help carries an example, and bad input
//! is refused before anything changes, with one line naming the flag and the documented
//! exit code. What the subcommands do, against buildah, is in the facade's
//! `tests/working.rs`.
//!
//! Needs root (the store's directory is made as root's; CI runs as root).

use std::path::Path;
use std::process::{Command, Output, Stdio};

const OCIKIT: &str = env!("CARGO_BIN_EXE_ocikit");

fn work(root: &Path, args: &[&str]) -> Output {
    Command::new(OCIKIT)
        .arg("work")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn every_work_subcommand_has_help_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        "from",
        "run",
        "copy",
        "config",
        "commit",
        "push",
        "containers",
        "rm",
    ] {
        let out = work(dir.path(), &[sub, "--help"]);
        assert!(out.status.success(), "{sub}: {out:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Example"), "{sub}: {help}");
        assert!(
            help.contains(&format!("ocikit work {sub} ")),
            "{sub}: {help}"
        );
    }
}

#[test]
fn bad_values_exit_2_naming_the_flag_and_change_nothing() {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "the store is made as root's (CI runs as root)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let cases: [(&[&str], &str); 7] = [
        (&["copy", "--chown", "me:us", "c", "a", "/b"], "--chown"),
        (&["copy", "--chmod", "9", "c", "a", "/b"], "--chmod"),
        (&["config", "--label", "novalue", "c"], "--label"),
        (&["config", "--annotation", "=v", "c"], "--annotation"),
        (&["config", "--env", "NOVALUE", "c"], "--env"),
        (&["config", "--cmd", "[1, 2]", "c"], "--cmd"),
        (&["run", "--network", "bridge", "c", "true"], "--network"),
    ];
    for (args, flag) in cases {
        let out = work(&root, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    // Nothing was made: no working container, and a missing one is "not found" (3).
    let out = work(&root, &["containers", "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = work(&root, &["rm", "c"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ocikit work: ") && err.lines().count() == 1,
        "{err}"
    );
}
