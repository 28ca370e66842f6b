//! Embedding the runtime cannot misfire (issue 15.3): a host program's own `main` never runs
//! as a container's init. A program that forgot `ocikit_runtime::init_if_requested()` gets a
//! typed error naming the fix; a helper that is not an init is refused by the handshake
//! before anything is sent to it, never with "Broken pipe".
//!
//! Needs root (containers are created) and the `forgot_init` example built (`cargo test`
//! builds examples; `bash scripts/test.sh` does). Runs in CI as root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestBundle, id, runtime};
use ocikit_runtime::{CreateOptions, Error, Runtime};

/// The `forgot_init` example, built next to this test binary.
fn forgot_init() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("examples/forgot_init");
    assert!(
        path.exists(),
        "{} is not built: run `cargo build -p ocikit-runtime --examples` first, as \
         `cargo test -p ocikit-runtime` and `bash scripts/test.sh` do",
        path.display()
    );
    path
}

/// Runs `forgot_init STATE BUNDLE ID [HELPER]` in a fresh working directory; returns its exit
/// code, standard error, and the lines its `main` appended to `forgot_init.marker` there.
fn run_forgetful(
    bundle: &TestBundle,
    helper: Option<&str>,
) -> (Option<i32>, u32, String, Vec<String>) {
    let cwd = tempfile::tempdir().unwrap();
    let state = cwd.path().join("state");
    let name = id("forgot");
    let mut cmd = Command::new(forgot_init());
    cmd.current_dir(cwd.path())
        .arg(&state)
        .arg(bundle.path())
        .arg(&name)
        .args(helper);
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let marker = std::fs::read_to_string(cwd.path().join("forgot_init.marker")).unwrap_or_default();
    // Nothing was left behind for the container either.
    assert!(
        !state.join(&name).exists(),
        "state of {name} left behind after a refused create"
    );
    (
        out.status.code(),
        pid,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        marker.lines().map(String::from).collect(),
    )
}

/// The acceptance test of issue 15.3: the program's `main` writes a marker line first thing;
/// after it tried to create a container with the default helper (itself), the marker holds
/// exactly one line, the parent's own, and the error names `init_if_requested`.
#[test]
fn forgotten_init_never_runs_main_in_a_child() {
    let bundle = TestBundle::new("echo should-not-run");
    bundle.write();
    let (code, pid, stderr, marker) = run_forgetful(&bundle, None);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert_eq!(
        marker.len(),
        1,
        "main ran more than once (as a container init?): {marker:?}"
    );
    assert!(
        marker[0].starts_with(&format!("pid {pid} ")),
        "the one run of main is not the parent's ({pid}): {marker:?}"
    );
    assert!(
        stderr.contains("ocikit_runtime::init_if_requested()"),
        "the error does not name the fix: {stderr}"
    );
    assert!(stderr.contains("Runtime::with_helper"), "{stderr}");
    assert!(stderr.contains("nothing was spawned"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert!(!stderr.contains("should-not-run"), "{stderr}");
}

/// The same program given a real init helper (the `oci-runtime` binary) creates its
/// container, and its `main` still runs once: the marker can tell a child's run apart, so the
/// test above could fail.
#[test]
fn forgetful_program_with_a_real_helper_works() {
    let bundle = TestBundle::new("true");
    bundle.write();
    let (code, pid, stderr, marker) =
        run_forgetful(&bundle, Some(env!("CARGO_BIN_EXE_oci-runtime")));
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(marker.len(), 1, "{marker:?}");
    assert!(marker[0].starts_with(&format!("pid {pid} ")), "{marker:?}");
}

/// A program that is not an init as the helper (`/bin/true` exits at once) is refused by
/// the handshake with the typed error naming the helper and the fix.
#[test]
fn a_helper_that_is_not_an_init_is_refused() {
    let (root, rt) = runtime();
    let rt = Runtime::new(rt.root()).with_helper("/bin/true");
    let bundle = TestBundle::new("true");
    bundle.write();
    let name = id("notinit");
    let err = rt
        .create(&name, bundle.path(), CreateOptions::new())
        .unwrap_err();
    match &err {
        Error::InitNotWired { helper, reason } => {
            assert_eq!(helper, Path::new("/bin/true"));
            assert!(reason.contains("without greeting"), "{reason}");
        }
        other => panic!("expected InitNotWired, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("/bin/true"), "{text}");
    assert!(text.contains("init_if_requested"), "{text}");
    assert!(!root.path().join("state").join(&name).exists());

    // Through the command line's forgetful program too.
    let (code, _, stderr, marker) = run_forgetful(&bundle, Some("/bin/true"));
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(marker.len(), 1, "{marker:?}");
    assert!(
        stderr.contains("/bin/true: not a container init helper"),
        "{stderr}"
    );
    assert!(stderr.contains("init_if_requested"), "{stderr}");
}

/// This test binary never calls `init_if_requested`: the default helper (itself) is refused
/// for `create`, `run` and `exec` before anything is made or spawned.
#[test]
fn default_helper_in_a_program_that_forgot_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let rt = Runtime::new(root.path().join("state"));
    let bundle = TestBundle::new("true");
    bundle.write();
    let name = id("default");
    for err in [
        rt.create(&name, bundle.path(), CreateOptions::new())
            .map(drop)
            .unwrap_err(),
        rt.run(&name, bundle.path(), CreateOptions::new())
            .map(drop)
            .unwrap_err(),
        rt.exec(&name, &Default::default(), CreateOptions::new())
            .map(drop)
            .unwrap_err(),
    ] {
        match &err {
            Error::InitNotWired { helper, .. } => {
                assert_eq!(*helper, std::env::current_exe().unwrap());
            }
            other => panic!("expected InitNotWired, got {other:?}"),
        }
        assert!(err.to_string().contains("init_if_requested"), "{err}");
    }
    // Not even the state root was made.
    assert!(!root.path().join("state").exists());
    // Naming this program by its path is the same mistake.
    let rt = Runtime::new(root.path().join("state")).with_helper(std::env::current_exe().unwrap());
    assert!(matches!(
        rt.create(&name, bundle.path(), CreateOptions::new()),
        Err(Error::InitNotWired { .. })
    ));
}
