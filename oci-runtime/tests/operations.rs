//! The operations runc has besides the lifecycle, driven through the `oci-runtime` command
//! line as containerd or podman drive runc's: `pause`/`resume`, `update`, `ps`, `events`
//! (streaming stats and OOM events). runc on the same bundles is the reference where it can
//! be. Needs root and this host's cgroups v1 (CI has both).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Guard, TestBundle, id};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_oci-runtime");

fn cli_with(runtime: &str, root: &Path, args: &[&str]) -> Output {
    Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .unwrap()
}

fn ok_with(runtime: &str, root: &Path, args: &[&str]) -> String {
    let out = cli_with(runtime, root, args);
    assert!(
        out.status.success(),
        "{runtime} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    ok_with(BIN, root, args)
}

/// A bundle whose container also mounts `/sys/fs/cgroup` (runc's default mounts do), with
/// the extra busybox applets `names`.
fn bundle(script: &str, names: &[&str]) -> TestBundle {
    let mut b = TestBundle::new(script);
    for a in names {
        let _ = std::os::unix::fs::symlink("busybox", b.rootfs().join("bin").join(a));
    }
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
    }));
    b
}

/// Runs the bundle detached under `runtime`'s command line; returns the container's pid.
fn run_detached(runtime: &str, root: &Path, b: &TestBundle, name: &str) -> i32 {
    let bundle = b.write().to_str().unwrap().to_string();
    let pid_file = root.with_extension("pid");
    // A file, not a pipe: the container keeps its stderr open after the command returns.
    let err_file = root.with_extension("stderr");
    let status = Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["run", "-d", "--bundle", &bundle, "--pid-file"])
        .arg(&pid_file)
        .arg(name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{runtime} run: {}",
        std::fs::read_to_string(&err_file).unwrap_or_default()
    );
    std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// User plus system CPU time of a process, in clock ticks (`/proc/<pid>/stat`).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of the line; `after` starts at field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn status_of(runtime: &str, root: &Path, name: &str) -> String {
    let v: Value = serde_json::from_str(&ok_with(runtime, root, &["state", name])).unwrap();
    v["status"].as_str().unwrap().to_string()
}

/// `pause`: `state` says paused (as runc's does), the busy process gets no CPU for a second;
/// `resume`: running again and its CPU time grows. `list` shows it paused too.
#[test]
fn pause_freezes_and_resume_thaws() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let b = bundle("while :; do :; done", &[]);
    let name = id("pause");
    let rt = ocikit_runtime::Runtime::new(&root);
    let _guard = Guard(&rt, name.clone());
    let pid = run_detached(BIN, &root, &b, &name);
    // On a busy machine the loop may wait a while for a core.
    let grows_from = |t: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while cpu_ticks(pid) <= t && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        cpu_ticks(pid) > t
    };
    assert!(grows_from(0), "the loop runs");

    ok(&root, &["pause", &name]);
    assert_eq!(status_of(BIN, &root, &name), "paused");
    assert!(ok(&root, &["list"]).contains("paused"));
    let frozen = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(cpu_ticks(pid), frozen, "no CPU time while paused");
    // A second resume after this one is refused: it is no longer paused.
    ok(&root, &["resume", &name]);
    assert_eq!(status_of(BIN, &root, &name), "running");
    assert!(grows_from(frozen), "CPU time grows again after resume");
    let again = cli_with(BIN, &root, &["resume", &name]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not paused"),
        "{again:?}"
    );
    // A paused container can be force-deleted (it is thawed to die).
    ok(&root, &["pause", &name]);
    ok(&root, &["delete", "--force", &name]);
    // Gone, or a zombie waiting for whoever inherited it (the runtime command has exited).
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit(')').next().unwrap_or_default().trim_start();
    assert!(state.is_empty() || state.starts_with('Z'), "{state}");
}

/// runc's own `state` on a paused container says `paused` too: the same word.
#[test]
fn paused_is_what_runc_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("runc");
    let b = bundle("while :; do sleep 1; done", &[]);
    let name = id("runc-pause");
    run_detached("runc", &root, &b, &name);
    ok_with("runc", &root, &["pause", &name]);
    let theirs = status_of("runc", &root, &name);
    ok_with("runc", &root, &["delete", "--force", &name]);
    assert_eq!(theirs, "paused");
}

/// `update --memory` (and the other flags, and `-r FILE`) on a running container: the
/// container reads its new limits in its own `/sys/fs/cgroup`, as under runc.
#[test]
fn update_changes_the_limits_the_container_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for runtime in [BIN, "runc"] {
        let root = tmp
            .path()
            .join(if runtime == "runc" { "runc" } else { "ours" });
        let mut b = bundle("sleep 100", &[]);
        b.config["linux"]["resources"] = json!({"memory": {"limit": 268435456}});
        let name = id("update");
        let rt = ocikit_runtime::Runtime::new(&root);
        let _guard = (runtime == BIN).then(|| Guard(&rt, name.clone()));
        run_detached(runtime, &root, &b, &name);
        let read = |file: &str| {
            ok_with(
                runtime,
                &root,
                &["exec", &name, "cat", &format!("/sys/fs/cgroup/{file}")],
            )
            .trim()
            .to_string()
        };
        let before = read("memory/memory.limit_in_bytes");
        ok_with(
            runtime,
            &root,
            &[
                "update",
                "--memory",
                "64m",
                "--cpu-quota",
                "20000",
                "--cpu-period",
                "100000",
                "--pids-limit",
                "42",
                "--cpuset-cpus",
                "0",
                &name,
            ],
        );
        let res = tmp.path().join(format!("{name}.json"));
        std::fs::write(&res, r#"{"cpu": {"shares": 512}}"#).unwrap();
        ok_with(
            runtime,
            &root,
            &["update", "-r", res.to_str().unwrap(), &name],
        );
        let after = [
            before,
            read("memory/memory.limit_in_bytes"),
            read("cpu/cpu.cfs_quota_us"),
            read("pids/pids.max"),
            read("cpu/cpu.shares"),
            read("cpuset/cpuset.cpus"),
        ];
        ok_with(runtime, &root, &["delete", "--force", &name]);
        out.push(after);
    }
    assert_eq!(
        out[0],
        ["268435456", "67108864", "20000", "42", "512", "0"],
        "ours"
    );
    assert_eq!(out[0], out[1], "oci-runtime (left) and runc (right) differ");

    // A bad value is refused before anything is written.
    let root = tmp.path().join("bad");
    let b = bundle("sleep 100", &[]);
    let name = id("update-bad");
    let rt = ocikit_runtime::Runtime::new(&root);
    let _guard = Guard(&rt, name.clone());
    run_detached(BIN, &root, &b, &name);
    let bad = cli_with(BIN, &root, &["update", "--memory", "lots", &name]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--memory lots"));
}

/// `ps --format json` lists the container's processes (host pids) as runc's does, and the
/// table is ps(1)'s lines for them.
#[test]
fn ps_lists_the_containers_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut counts = Vec::new();
    for runtime in [BIN, "runc"] {
        let root = tmp
            .path()
            .join(if runtime == "runc" { "runc" } else { "ours" });
        let b = bundle("sleep 100 & exec sleep 101", &[]);
        let name = id("ps");
        let rt = ocikit_runtime::Runtime::new(&root);
        let _guard = (runtime == BIN).then(|| Guard(&rt, name.clone()));
        let pid = run_detached(runtime, &root, &b, &name);
        let deadline = Instant::now() + Duration::from_secs(5);
        let pids = loop {
            let v: Vec<i32> =
                serde_json::from_str(&ok_with(runtime, &root, &["ps", "--format", "json", &name]))
                    .unwrap();
            if v.len() >= 2 || Instant::now() > deadline {
                break v;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(pids.contains(&pid), "{runtime}: {pids:?} without {pid}");
        if runtime == BIN {
            let table = ok(&root, &["ps", &name]);
            let mut lines = table.lines();
            assert!(lines.next().unwrap().contains("PID"), "{table}");
            let rows: Vec<&str> = lines.collect();
            assert_eq!(rows.len(), 2, "{table}");
            assert!(rows.iter().all(|r| r.contains("sleep 10")), "{table}");
            let custom = ok(&root, &["ps", &name, "-o", "pid,comm"]);
            assert!(custom.contains(&format!("{pid} sleep")), "{custom}");
        }
        ok_with(runtime, &root, &["delete", "--force", &name]);
        counts.push(pids.len());
    }
    assert_eq!(counts, [2, 2], "oci-runtime (left) and runc (right)");
}

/// Runs out of its 32 MiB after a second, then lives on for a second. The pipeline that
/// eats memory asks to be the OOM killer's first choice (`oom_score_adj` 1000). Without it,
/// one CI run's stream ended right after the `oom` event, its last sample from before the
/// OOM: the container had stopped, which is what happens when the kernel picks the shell,
/// the container's init, as a victim.
const OOM_SCRIPT: &str = "sleep 1; (echo 1000 > /proc/self/oom_score_adj; \
     head -c 100m /dev/zero | tail > /dev/null); sleep 1";

/// `events --interval`: stats every interval in runc's shape, an `oom` event when the
/// container's cgroup runs out of memory, and the stream ends when the container stops.
#[test]
fn events_stream_stats_and_oom() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let mut b = bundle(OOM_SCRIPT, &["head", "tail"]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
    let name = id("events");
    let rt = ocikit_runtime::Runtime::new(&root);
    let _guard = Guard(&rt, name.clone());
    run_detached(BIN, &root, &b, &name);
    let t = Instant::now();
    let out = cli_with(BIN, &root, &["events", "--interval", "300ms", &name]);
    let took = t.elapsed();
    assert!(out.status.success(), "{out:?}");
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(took < Duration::from_secs(15), "ended with the container");
    let stats = events.iter().filter(|e| e["type"] == "stats").count();
    let ooms: Vec<&Value> = events.iter().filter(|e| e["type"] == "oom").collect();
    assert!(stats >= 4, "a sample every 300 ms for 2 s: {events:?}");
    assert!(!ooms.is_empty(), "{events:?}");
    assert_eq!(ooms[0], &json!({"type": "oom", "id": name}));
    assert!(events.iter().all(|e| e["id"] == name.as_str()));
    let last = events.iter().rev().find(|e| e["type"] == "stats").unwrap();
    let kills = last["data"]["memory"]["oomKills"].as_u64();
    assert!(
        kills >= Some(1),
        "a sample after the OOM counts it: {events:?}"
    );
    let _ = ok(&root, &["delete", "--force", &name]);
}

/// runc's `events` on the same OOM: the same `{"type":"oom","id":...}` line.
#[test]
fn runc_reports_the_same_oom_event() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("runc");
    let mut b = bundle(OOM_SCRIPT, &["head", "tail"]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
    let name = id("runc-events");
    run_detached("runc", &root, &b, &name);
    let mut child = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["events", "--interval", "300ms", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["delete", "--force", &name])
        .status();
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let oom = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["type"] == "oom");
    assert_eq!(oom, Some(json!({"type": "oom", "id": name})), "{text}");
}
