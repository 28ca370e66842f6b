//! Lifecycle hooks: each at its point, in order, with the state on stdin, in the right
//! namespaces; failures abort creation (early hooks) or only warn (late ones).

mod common;

use std::time::{Duration, Instant};

use common::{Guard, TestBundle, id, runtime};
use ocikit_runtime::{CreateOptions, Error, ExitStatus};
use serde_json::{Value, json};

/// A hook that appends `<name> <hostname> <state JSON>` to `log`, via the host's busybox
/// (or the container's, for startContainer, which runs after the root changed).
fn hook(name: &str, log: &str) -> Value {
    json!({
        "path": "/bin/busybox",
        "args": ["sh", "-c", format!("echo \"{name} $(hostname) $(cat)\" >> {log}")],
        "env": ["PATH=/bin"]
    })
}

fn quiet() -> CreateOptions {
    CreateOptions::new()
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .stdout(std::fs::File::create("/dev/null").unwrap())
}

#[test]
fn every_hook_in_order_with_the_state() {
    let (_root, rt) = runtime();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("log");
    let log = log.to_str().unwrap();
    let mut b = TestBundle::new("true");
    // startContainer runs inside the new root: the log directory is mounted there too.
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": logs.path(), "type": "bind", "source": logs.path(),
                     "options": ["rbind"]}),
    );
    std::fs::create_dir_all(b.rootfs().join(logs.path().strip_prefix("/").unwrap())).unwrap();
    b.config["hooks"] = json!({
        "prestart": [hook("prestart", log)],
        "createRuntime": [hook("createRuntime", log)],
        "createContainer": [hook("createContainer", log)],
        "startContainer": [hook("startContainer", log)],
        "poststart": [hook("poststart", log)],
        "poststop": [hook("poststop", log)]
    });
    b.config["annotations"] = json!({"org.example.k": "v"});
    b.write();
    let name = id("hooks");
    let _guard = Guard(&rt, name.clone());
    let c = rt.create(&name, b.path(), quiet()).unwrap();
    rt.start(&name).unwrap();
    assert_eq!(rt.wait(&name).unwrap(), ExitStatus::Exited(0));
    rt.delete(&name, false).unwrap();

    let text = std::fs::read_to_string(logs.path().join("log")).unwrap();
    let lines: Vec<(&str, &str, Value)> = text
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, ' ');
            let (n, h, s) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            (
                n,
                h,
                serde_json::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}")),
            )
        })
        .collect();
    let names: Vec<&str> = lines.iter().map(|l| l.0).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for (n, hostname, state) in &lines {
        assert_eq!(state["id"], name.as_str(), "{n}");
        assert_eq!(state["bundle"], b.path().to_str().unwrap(), "{n}");
        assert_eq!(state["annotations"]["org.example.k"], "v", "{n}");
        // createContainer and startContainer run in the container's namespaces.
        let inside = matches!(*n, "createContainer" | "startContainer");
        let want = if inside { "box" } else { host.trim() };
        assert_eq!(*hostname, want, "{n}");
    }
    let status = |i: usize| lines[i].2["status"].as_str().unwrap().to_string();
    // Steps 3 to 5 of the lifecycle: after create (runtime-spec State), as crun passes it.
    for (name, _, state) in &lines[..3] {
        assert_eq!(state["status"], "created", "{name}");
    }
    assert_eq!(status(4), "running");
    assert_eq!(status(5), "stopped");
    assert_eq!(lines[1].2["pid"], c.pid());
    assert_eq!(lines[4].2["pid"], c.pid());
}

#[test]
fn a_failing_create_runtime_hook_aborts_and_cleans_up() {
    let (root, rt) = runtime();
    let mut b = TestBundle::new("true");
    b.config["hooks"] = json!({"createRuntime": [
        {"path": "/bin/busybox", "args": ["sh", "-c", "exit 3"]}
    ]});
    b.write();
    let name = id("hookfail");
    match rt.create(&name, b.path(), quiet()) {
        Err(Error::HookFailed { hook, message }) => {
            assert!(hook.starts_with("hooks.createRuntime[0]"), "{hook}");
            assert!(message.contains('3'), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!root.path().join("state").join(&name).exists());
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_fails() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("true");
    b.config["hooks"] = json!({"createContainer": [
        {"path": "/bin/busybox", "args": ["sleep", "30"], "timeout": 1}
    ]});
    b.write();
    let t = Instant::now();
    let err = rt.create(&id("hooktime"), b.path(), quiet()).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("true");
    let fail = json!({"path": "/bin/busybox", "args": ["false"]});
    b.config["hooks"] = json!({"poststart": [fail.clone()], "poststop": [fail]});
    let out = common::run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
}
