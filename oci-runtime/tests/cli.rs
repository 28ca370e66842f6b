//! The `oci-runtime` command line, driven from separate processes like a runc client would.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestBundle, id};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_oci-runtime");

fn cli(root: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = cli(root, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn state(root: &Path, id: &str) -> Value {
    serde_json::from_str(&ok(root, &["state", id])).unwrap()
}

fn wait_for_status(root: &Path, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = state(root, id);
        if s["status"] == want || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn create_start_state_kill_delete_from_separate_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let mut b = TestBundle::new("echo started > /tmp/marker; while :; do sleep 0.05; done");
    b.config["annotations"] = serde_json::json!({"org.example.key": "value"});
    let bundle = b.write().to_str().unwrap().to_string();
    let cid = id("cli");
    let pid_file = tmp.path().join("pid");

    // create: its own process, which exits while the container waits.
    let create = Command::new(BIN)
        .args([
            "--root",
            root.to_str().unwrap(),
            "create",
            "--bundle",
            &bundle,
        ])
        .args(["--pid-file", pid_file.to_str().unwrap(), &cid])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(create.success());
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();

    let s = state(&root, &cid);
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], cid.as_str());
    assert_eq!(s["pid"], pid);
    assert_eq!(s["bundle"], bundle.as_str());
    assert_eq!(s["annotations"]["org.example.key"], "value");
    assert!(s["ociVersion"].is_string() && s["created"].is_string());
    // The runtime-spec State, plus runc's extra fields.
    let spec_state: oci_spec::runtime::State = serde_json::from_value(s.clone()).unwrap();
    assert_eq!(spec_state.id(), &cid);
    assert!(!b.rootfs().join("tmp/marker").exists(), "ran before start");

    let list = ok(&root, &["list", "--format", "json"]);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], cid.as_str());
    // OWNER is the state directory's owner, as runc's: by name, else `#UID`.
    assert_eq!(list[0]["owner"], "root");
    assert_eq!(
        state(&root, &cid)["owner"],
        "",
        "state leaves it empty, as runc's"
    );
    let dir = root.join(&cid);
    for (uid, name) in [(65534, "nobody"), (4242, "#4242")] {
        std::os::unix::fs::chown(&dir, Some(uid), None).unwrap();
        let list: Value = serde_json::from_str(&ok(&root, &["list", "-f", "json"])).unwrap();
        assert_eq!(list[0]["owner"], name);
        let table = ok(&root, &["list"]);
        assert!(table.lines().nth(1).unwrap().ends_with(name), "{table}");
    }
    std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
    assert_eq!(ok(&root, &["list", "-q"]), format!("{cid}\n"));

    // delete without --force refuses a live container, and says so in its exit status.
    assert!(!cli(&root, &["delete", &cid]).status.success());

    ok(&root, &["start", &cid]);
    assert_eq!(state(&root, &cid)["status"], "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.rootfs().join("tmp/marker").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(b.rootfs().join("tmp/marker").exists());
    assert!(!cli(&root, &["start", &cid]).status.success());

    // pid 1 ignores an untrapped SIGTERM; SIGKILL (by number) stops it.
    ok(&root, &["kill", &cid, "9"]);
    let s = wait_for_status(&root, &cid, "stopped");
    assert_eq!(s["status"], "stopped");
    assert!(!cli(&root, &["kill", &cid, "KILL"]).status.success());

    ok(&root, &["delete", &cid]);
    assert!(!cli(&root, &["delete", &cid]).status.success());
    ok(&root, &["delete", "--force", &cid]);
    let gone = cli(&root, &["state", &cid]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("does not exist"));
}

#[test]
fn run_returns_the_container_exit_status() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let b = TestBundle::new("echo out; echo err >&2; exit 5");
    let bundle = b.write().to_str().unwrap().to_string();
    let out = cli(&root, &["run", "--bundle", &bundle, &id("run")]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(ok(&root, &["list", "-q"]), "", "run deletes the container");
}

#[test]
fn kill_by_name_from_another_process_ends_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let b = TestBundle::new("trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done");
    let bundle = b.write().to_str().unwrap().to_string();
    let cid = id("killrun");
    let mut run = Command::new(BIN)
        .args(["--root", root.to_str().unwrap(), "run", "-b", &bundle, &cid])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(run.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    ok(&root, &["kill", &cid]); // SIGTERM by default
    assert_eq!(run.wait().unwrap().code(), Some(3));

    // And SIGKILL: run exits 128 + 9, like runc.
    let cid = id("killrun");
    let mut run = Command::new(BIN)
        .args(["--root", root.to_str().unwrap(), "run", "-b", &bundle, &cid])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(run.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    ok(&root, &["kill", &cid, "SIGKILL"]);
    assert_eq!(run.wait().unwrap().code(), Some(137));
}

#[test]
fn spec_features_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    ok(&root, &["spec", "--bundle", tmp.path().to_str().unwrap()]);
    let spec: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["root"]["path"], "rootfs");
    assert_eq!(spec["process"]["args"][0], "sh");
    assert_eq!(spec["hostname"], "oci-runtime");
    // runc refuses to overwrite it too.
    assert!(
        !cli(&root, &["spec", "--bundle", tmp.path().to_str().unwrap()])
            .status
            .success()
    );

    let f: Value = serde_json::from_str(&ok(&root, &["features"])).unwrap();
    assert!(f["linux"]["namespaces"].as_array().unwrap().len() >= 7);

    let bad = cli(&root, &["create", "--bundle", "/nonexistent", "x"]);
    assert_eq!(bad.status.code(), Some(1));
    let log = tmp.path().join("log.json");
    let out = Command::new(BIN)
        .args([
            "--root",
            root.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ])
        .args(["--log-format", "json", "kill", "nope", "TERM"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does not exist"));
    assert!(
        !cli(&root, &["create", "--console-socket", "/x", "x"])
            .status
            .success()
    );
}

#[test]
fn preserved_descriptors_reach_the_container_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let b = TestBundle::new("ls /proc/self/fd | wc -l; cat <&3");
    let bundle = b.write().to_str().unwrap().to_string();
    std::fs::write(tmp.path().join("passed"), "through fd 3\n").unwrap();
    // A host shell opens fd 3 (preserved) and fd 4 (not) before exec'ing the runtime.
    let script = format!(
        "exec 3<{p} 4<{p}; exec {BIN} --root {r} run --preserve-fds 1 --bundle {bundle} {id}",
        p = tmp.path().join("passed").display(),
        r = root.display(),
        id = id("preserve"),
    );
    let out = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 0, 1, 2, 3 and ls's own directory descriptor.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5\nthrough fd 3\n");
}
