//! Capabilities, `noNewPrivileges`, rlimits and `oomScoreAdj`, observed from inside busybox
//! containers, and compared with runc. Needs root (CI has it).

mod common;

use std::process::{Command, Stdio};

use common::{TestBundle, id, run, runtime};
use oci_runtime::ExitStatus;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_oci-runtime");

/// The `Cap*` and `NoNewPrivs` lines of `/proc/self/status`.
const STATUS: &str = "grep -E '^(Cap|NoNewPrivs)' /proc/self/status";

fn status_line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
        .trim()
}

#[test]
fn capabilities_as_a_user_with_ambient() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new(STATUS);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    // CAP_CHOWN (0) | CAP_KILL (5) | CAP_NET_BIND_SERVICE (10).
    assert_eq!(status_line(&out.stdout, "CapBnd"), "0000000000000421");
    for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(status_line(&out.stdout, set), "0000000000000400", "{set}");
    }
    assert_eq!(status_line(&out.stdout, "NoNewPrivs"), "0");
}

#[test]
fn capabilities_as_root_and_no_new_privileges() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new(&format!("{STATUS}; kill -0 1 && echo kill-ok"));
    b.config["process"]["noNewPrivileges"] = true.into();
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NOT_A_CAPABILITY"],
        "effective": ["CAP_KILL", "CAP_AUDIT_WRITE"],
        "permitted": ["CAP_KILL", "CAP_AUDIT_WRITE"]
    });
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    // CAP_KILL (5) | CAP_AUDIT_WRITE (29); the unknown name is skipped.
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(status_line(&out.stdout, set), "0000000020000020", "{set}");
    }
    assert_eq!(status_line(&out.stdout, "CapInh"), "0000000000000000");
    assert_eq!(status_line(&out.stdout, "NoNewPrivs"), "1");
    assert!(out.stdout.contains("kill-ok"));
}

#[test]
fn no_capabilities_listed_means_none() {
    let (_root, rt) = runtime();
    let b = TestBundle::new(&format!(
        "{STATUS}; hostname other 2>/dev/null || echo denied"
    ));
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    assert_eq!(status_line(&out.stdout, "CapEff"), "0000000000000000");
    assert_eq!(status_line(&out.stdout, "CapBnd"), "0000000000000000");
    assert!(out.stdout.contains("denied"), "{out:?}");
}

#[test]
fn rlimits_and_oom_score_adj() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("ulimit -n; ulimit -Hn; ulimit -c; cat /proc/self/oom_score_adj");
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    b.config["process"]["oomScoreAdj"] = 345.into();
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    assert_eq!(out.stdout, "321\n654\n0\n345\n");
}

/// Runs the bundle with a runc-compatible command line; returns exit code and output.
fn run_with(runtime: &str, bundle: &TestBundle) -> (Option<i32>, String, String) {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(runtime)
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(id("sec"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {runtime}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn same_capabilities_and_rlimits_as_runc() {
    for (user, nnp) in [
        (json!({"uid": 0, "gid": 0}), false),
        (json!({"uid": 1000, "gid": 1000}), true),
    ] {
        let mut b = TestBundle::new(&format!("{STATUS}; ulimit -n; ulimit -Hn; ulimit -s"));
        b.config["process"]["user"] = user;
        b.config["process"]["noNewPrivileges"] = nnp.into();
        b.config["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"],
            "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"]
        });
        b.config["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
            {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 8388608}
        ]);
        b.write();
        let ours = run_with(BIN, &b);
        let theirs = run_with("runc", &b);
        assert_eq!(ours, theirs, "oci-runtime (left) and runc (right) differ");
        assert_eq!(ours.0, Some(0));
    }
}
