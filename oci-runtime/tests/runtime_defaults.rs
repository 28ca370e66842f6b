//! runc's lessons on defaults (issue 25, points 2, 6 and 7), with runc as the reference on the
//! same bundles:
//! - the default spec gives a non-root user no capabilities (CVE-2022-29162);
//! - hooks create files with the caller's umask, not 0;
//! - a configuration too big for the runtime's channel to its init fails with an error that
//!   names the limit, not "Broken pipe".
//!
//! Needs root, runc and busybox-static (scripts/test.sh installs them); runs in CI as root.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{TestBundle, id, run_with, runtime};
use ocikit_runtime::{CreateOptions, Error, MAX_MESSAGE};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_oci-runtime");

/// A busybox bundle whose `config.json` is what `<runtime> spec` writes, running `script` as
/// `uid`, without a terminal.
fn spec_bundle(runtime: &str, script: &str, uid: u32) -> TestBundle {
    let mut bundle = TestBundle::new(script);
    let out = Command::new(runtime)
        .args(["spec", "--bundle"])
        .arg(bundle.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{runtime} spec: {out:?}");
    let path = bundle.path().join("config.json");
    bundle.config = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let p = &mut bundle.config["process"];
    p["terminal"] = false.into();
    p["args"] = json!(["sh", "-c", script]);
    p["user"] = json!({"uid": uid, "gid": uid});
    bundle.write();
    bundle
}

/// The `Cap*:` lines of `/proc/self/status` in `out`, by name.
fn caps(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.starts_with("Cap")
                .then(|| (k.to_string(), u64::from_str_radix(v.trim(), 16).unwrap()))
        })
        .collect()
}

const CAP_SCRIPT: &str = "grep Cap /proc/self/status";

/// runc's default set: CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10).
const RUNC_DEFAULT_CAPS: u64 = (1 << 29) | (1 << 5) | (1 << 10);

#[test]
fn default_spec_has_no_inheritable_or_ambient_capabilities() {
    let ours = spec_bundle(BIN, "true", 0).config;
    let theirs = spec_bundle("runc", "true", 0).config;
    let c = &ours["process"]["capabilities"];
    assert!(
        c.get("inheritable")
            .is_none_or(|v| v.as_array().unwrap().is_empty()),
        "{c}"
    );
    assert!(
        c.get("ambient")
            .is_none_or(|v| v.as_array().unwrap().is_empty()),
        "{c}"
    );
    let sorted = |v: &Value| {
        let mut names: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(
            sorted(&c[set]),
            sorted(&theirs["process"]["capabilities"][set]),
            "process.capabilities.{set} differs from runc spec's"
        );
    }
    // `oci-runtime spec` writes the library's default.
    let lib = serde_json::to_value(ocikit_runtime::default_spec()).unwrap();
    assert_eq!(
        sorted(&lib["process"]["capabilities"]["bounding"]),
        sorted(&c["bounding"])
    );
    assert!(lib["process"]["capabilities"].get("ambient").is_none());
}

/// CVE-2022-29162: the default spec run as uid 1000 has no capabilities at all (CapEff,
/// CapPrm, CapInh, CapAmb 0), exactly like runc on the same bundle.
#[test]
fn default_spec_as_a_user_has_no_capabilities_like_runc() {
    let bundle = spec_bundle(BIN, CAP_SCRIPT, 1000);
    let (code, out, err) = run_with(BIN, &bundle);
    assert_eq!(code, Some(0), "{err}");
    let ours = caps(&out);
    for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(ours.get(set), Some(&0), "{set} in {out}");
    }
    assert_eq!(ours.get("CapBnd"), Some(&RUNC_DEFAULT_CAPS), "{out}");
    let (code, out, err) = run_with("runc", &bundle);
    assert_eq!(code, Some(0), "runc: {err}");
    assert_eq!(
        ours,
        caps(&out),
        "oci-runtime (left) and runc (right) differ"
    );
}

/// As root, the same default spec gives the default set, as runc does.
#[test]
fn default_spec_as_root_has_runc_default_capabilities() {
    let bundle = spec_bundle(BIN, CAP_SCRIPT, 0);
    let (code, out, err) = run_with(BIN, &bundle);
    assert_eq!(code, Some(0), "{err}");
    let ours = caps(&out);
    assert_eq!(ours.get("CapEff"), Some(&RUNC_DEFAULT_CAPS), "{out}");
    assert_eq!(ours.get("CapAmb"), Some(&0), "{out}");
    let (_, out, _) = run_with("runc", &bundle);
    assert_eq!(
        ours,
        caps(&out),
        "oci-runtime (left) and runc (right) differ"
    );
}

/// runc 1.1's own `spec` still lists ambient capabilities without inheritable ones; the
/// kernel cannot raise those, runc skips them silently, and the runtime must not raise
/// anything beyond what the configuration allows: the container runs, with no capability
/// for a non-root user, as under runc.
#[test]
fn ambient_capabilities_without_inheritable_ones_are_not_raised_like_runc() {
    let bundle = spec_bundle("runc", CAP_SCRIPT, 1000);
    assert!(
        bundle.config["process"]["capabilities"]["ambient"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "runc spec lists ambient capabilities: {}",
        bundle.config["process"]["capabilities"]
    );
    let (code, out, err) = run_with(BIN, &bundle);
    assert_eq!(code, Some(0), "{err}");
    let ours = caps(&out);
    assert_eq!(ours.get("CapAmb"), Some(&0), "{out}");
    assert_eq!(ours.get("CapEff"), Some(&0), "{out}");
    let (_, out, _) = run_with("runc", &bundle);
    assert_eq!(
        ours,
        caps(&out),
        "oci-runtime (left) and runc (right) differ"
    );

    // With the capability inheritable as well, it is raised (and so effective for the
    // user): exactly what the configuration says.
    let mut bundle = bundle;
    bundle.config["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
    bundle.write();
    let (code, out, err) = run_with(BIN, &bundle);
    assert_eq!(code, Some(0), "{err}");
    let ours = caps(&out);
    assert_eq!(ours.get("CapAmb"), Some(&(1 << 5)), "{out}");
    assert_eq!(ours.get("CapEff"), Some(&(1 << 5)), "{out}");
    let (_, out, _) = run_with("runc", &bundle);
    assert_eq!(
        ours,
        caps(&out),
        "oci-runtime (left) and runc (right) differ"
    );
}

/// Runs `runtime run` on `bundle` under `umask 027` (a shell sets it, then execs the
/// runtime): the exit code and standard error.
fn run_with_umask(runtime: &str, bundle: &TestBundle, umask: &str) -> (Option<i32>, String) {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$@\""))
        .arg("sh")
        .arg(runtime)
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(id("umask"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Gives `bundle` one hook at each point the runtime runs them itself, each creating the file
/// `<dir>/<point>`.
fn set_hooks(bundle: &mut TestBundle, dir: &Path) {
    let hook = |name: &str| {
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo > {}/{name}", dir.display())]
        })
    };
    bundle.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")],
    });
    bundle.write();
}

/// The mode of each file in `dir`, in octal, by name.
fn modes(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
            (e.file_name().into_string().unwrap(), format!("{mode:o}"))
        })
        .collect()
}

/// Issue 25.6: a file a hook creates has the runtime's umask, not 0: under `umask 027` a
/// hook's new file is 0640 (0666 & !027), for every hook the runtime runs, as under runc.
#[test]
fn hooks_create_files_with_the_callers_umask_like_runc() {
    let mut results = Vec::new();
    for runtime in [BIN, "runc"] {
        let dir = tempfile::tempdir().unwrap();
        let mut bundle = TestBundle::new("true");
        set_hooks(&mut bundle, dir.path());
        let (code, err) = run_with_umask(runtime, &bundle, "027");
        assert_eq!(code, Some(0), "{runtime}: {err}");
        results.push(modes(dir.path()));
    }
    let (ours, runc) = (&results[0], &results[1]);
    for hook in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        assert_eq!(
            ours.get(hook).map(String::as_str),
            Some("640"),
            "{hook}'s file under umask 027: {ours:?}"
        );
    }
    assert_eq!(ours, runc, "oci-runtime (left) and runc (right) differ");
}

/// Issue 25.7, through the command line: a configuration with a 65 MiB annotation is over
/// the channel's limit and fails with an error naming the limit and what exceeded it, not
/// "Broken pipe"; nothing is left under the state root.
#[test]
fn oversized_configuration_fails_with_the_limit_named_cli() {
    let mut bundle = TestBundle::new("true");
    bundle.config["annotations"] = json!({"big": "x".repeat(MAX_MESSAGE + 1024)});
    bundle.write();
    let state = tempfile::tempdir().unwrap();
    let name = id("big");
    let out = Command::new(BIN)
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&name)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the container configuration (config.json) is too big"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "over the {MAX_MESSAGE}-byte limit of the runtime's channel to the container init"
        )),
        "{err}"
    );
    assert!(!err.contains("Broken pipe"), "{err}");
    assert!(!state.path().join(&name).exists());
}

/// The same through the library: [`Error::TooLarge`] with the size and the limit; a
/// configuration well under the limit (a 1 MiB annotation) still runs.
#[test]
fn oversized_configuration_fails_with_the_limit_named_library() {
    let (root, rt) = runtime();
    let mut bundle = TestBundle::new("true");
    bundle.config["annotations"] = json!({"big": "x".repeat(MAX_MESSAGE + 1024)});
    bundle.write();
    let name = id("big");
    match rt.create(&name, bundle.path(), CreateOptions::new()) {
        Err(Error::TooLarge {
            what,
            size,
            limit,
            limit_of,
        }) => {
            assert!(what.contains("configuration"), "{what}");
            assert!(
                limit_of.contains("channel to the container init"),
                "{limit_of}"
            );
            assert!(size > MAX_MESSAGE as u64 + 1024, "{size}");
            assert_eq!(limit, MAX_MESSAGE as u64);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(!root.path().join("state").join(&name).exists());

    bundle.config["annotations"] = json!({"big": "x".repeat(1 << 20)});
    let out = common::run(&rt, &bundle);
    assert_eq!(out.status.code(), 0, "{out:?}");

    // A config.json that never ends is refused at the same limit, without reading it whole.
    let endless = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", endless.path().join("config.json")).unwrap();
    match ocikit_runtime::Bundle::load(endless.path()) {
        Err(Error::TooLarge { size, limit, .. }) => {
            assert_eq!(limit, MAX_MESSAGE as u64);
            assert_eq!(size, limit + 1);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// Rust's runtime ignores `SIGPIPE` in the init process and an ignored signal survives
/// `execve`: the container's process must start with the default action, as under runc
/// (`yes | head -1` would otherwise see EPIPE instead of being killed).
#[test]
fn container_process_starts_with_default_sigpipe_like_runc() {
    const SIGPIPE: u64 = 1 << (13 - 1);
    let ignored = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap_or_else(|| panic!("no SigIgn in {status}"))
    };
    let bundle = TestBundle::new("grep -E '^Sig(Ign|Blk)' /proc/self/status");
    bundle.write();
    let (code, ours, err) = run_with(BIN, &bundle);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ignored(&ours) & SIGPIPE, 0, "SIGPIPE ignored: {ours}");
    // This test process ignores SIGPIPE itself (Rust's runtime does), so the check can fail.
    let caller = ignored(&std::fs::read_to_string("/proc/self/status").unwrap());
    assert_ne!(caller & SIGPIPE, 0);
    assert!(ours.contains("SigBlk:\t0000000000000000"), "{ours}");
    let (code, theirs, err) = run_with("runc", &bundle);
    assert_eq!(code, Some(0), "runc: {err}");
    assert_eq!(ignored(&theirs) & SIGPIPE, 0, "runc: {theirs}");
    assert!(
        theirs.contains("SigBlk:\t0000000000000000"),
        "runc: {theirs}"
    );
}
