//! Points where oci-runtime differed from runc or crun on the same bundle, or from the
//! runtime-spec text (issue 21), each observed from where it shows: inside the container,
//! in the hooks' input, in the command's error. runc is the reference where it is right,
//! crun where runc is not. Needs root (CI has it).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Guard, TestBundle, id, run_with, runtime};
use ocikit_runtime::{CreateOptions, ExitStatus};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_oci-runtime");

/// Runs `b` under each runtime's command line: (exit code, stdout, stderr) for each.
fn under(runtimes: &[&str], b: &TestBundle) -> Vec<(Option<i32>, String, String)> {
    b.write();
    runtimes.iter().map(|r| run_with(r, b)).collect()
}

/// The capabilities `runc spec` writes (ambient listed, no inheritable set), for a non-root
/// user: runc and crun start it, warn about the ambient set and give the process no ambient
/// capability; so do we.
#[test]
fn runc_spec_capabilities_start_with_a_warning() {
    let mut b = TestBundle::new("grep -E '^Cap(Amb|Eff|Prm|Inh)' /proc/self/status");
    let three = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    b.config["process"]["capabilities"] = json!({
        "bounding": three, "effective": three, "permitted": three, "ambient": three
    });
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let r = under(&[BIN, "runc", "crun"], &b);
    let (ours, runc, crun) = (&r[0], &r[1], &r[2]);
    assert_eq!(ours.0, Some(0), "{ours:?}");
    assert!(ours.1.contains("CapAmb:\t0000000000000000"), "{ours:?}");
    assert_eq!(ours.1, runc.1, "oci-runtime (left) and runc (right)");
    assert_eq!(ours.1, crun.1, "oci-runtime (left) and crun (right)");
    assert_eq!((runc.0, crun.0), (Some(0), Some(0)));
    assert!(
        ours.2
            .contains("warning: ambient capability CAP_KILL is not raised"),
        "{}",
        ours.2
    );
}

/// An unknown capability name is an error at create, naming the field: runtime-spec 1.0.2
/// (config.md, `capabilities`): "Any value which cannot be mapped to a relevant kernel
/// interface MUST cause an error." (On this host runc 1.1.5 only warns, "ignoring unknown or
/// unavailable capabilities", and crun 1.8.1 ignores it: neither is the reference here.)
#[test]
fn unknown_capability_is_an_error_at_create() {
    let (root, rt) = runtime();
    let mut b = TestBundle::new("true");
    b.config["process"]["capabilities"] = json!({"bounding": ["CAP_KILL", "CAP_TEST"]});
    let ours = under(&[BIN], &b).remove(0);
    assert_ne!(ours.0, Some(0), "{ours:?}");
    assert!(
        ours.2.contains("process.capabilities.bounding[1]") && ours.2.contains("CAP_TEST"),
        "{}",
        ours.2
    );
    let name = id("cap-test");
    match rt.create(&name, b.path(), CreateOptions::new()) {
        Err(ocikit_runtime::Error::InvalidConfig { field, reason }) => {
            assert_eq!(field, "process.capabilities.bounding[1]");
            assert!(reason.contains("CAP_TEST"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!root.path().join("state").join(&name).exists());
}

/// A FIFO in `linux.devices` is made (no device-cgroup rule for it: v1 refuses one), as
/// runc does.
#[test]
fn fifo_devices_are_created_without_a_cgroup_rule() {
    let mut b = TestBundle::new("test -p /dev/myfifo && ls -l /dev/myfifo | cut -c1-10");
    let _ = std::os::unix::fs::symlink("busybox", b.rootfs().join("bin/cut"));
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/myfifo", "type": "p", "major": 0, "minor": 0, "fileMode": 432}
    ]);
    let r = under(&[BIN, "runc"], &b);
    assert_eq!(r[0].0, Some(0), "{:?}", r[0]);
    assert_eq!(r[0].1, "prw-rw----\n");
    assert_eq!(r[0].1, r[1].1, "oci-runtime (left) and runc (right)");
}

fn ns_of(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// No namespace listed at all: the container shares every namespace of the runtime (the
/// mount one too), as under runc; its mounts are made inside the rootfs and undone by
/// delete, and the host's mount table is left as it was.
#[test]
fn every_namespace_inherited() {
    let mut b = TestBundle::new("for n in mnt uts ipc net pid; do readlink /proc/self/ns/$n; done");
    b.config["linux"]["namespaces"] = json!([]);
    b.config.as_object_mut().unwrap().remove("hostname");
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours = under(&[BIN], &b).remove(0);
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(ours.0, Some(0), "{ours:?}");
    let host: String = ["mnt", "uts", "ipc", "net", "pid"]
        .iter()
        .map(|n| ns_of("self", n) + "\n")
        .collect();
    assert_eq!(ours.1, host, "the runtime's own namespaces");
    let rootfs = b.rootfs().to_string_lossy().into_owned();
    assert!(!after.contains(&rootfs), "mounts left behind:\n{after}");
    assert_eq!(
        before.lines().count(),
        after.lines().count(),
        "the host's mount table is unchanged"
    );
    // runc runs it too (and leaves its mounts in the rootfs, which we undo here).
    b.write();
    let runc = run_with("runc", &b);
    let left = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut points: Vec<&str> = left
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(rootfs.as_str()))
        .collect();
    points.reverse();
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
    assert_eq!(runc.0, Some(0), "{runc:?}");
    assert_eq!(runc.1, ours.1, "oci-runtime (left) and runc (right)");
}

/// A read-only root without a mount namespace would remount the host's mount holding the
/// rootfs: refused, naming the field.
#[test]
fn no_mount_namespace_refuses_a_readonly_root() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("true");
    b.config["linux"]["namespaces"] = json!([{"type": "pid"}]);
    b.config["root"]["readonly"] = true.into();
    b.write();
    let e = rt
        .create(&id("ro-nomnt"), b.path(), CreateOptions::new())
        .unwrap_err();
    assert!(e.to_string().contains("root.readonly"), "{e}");
}

/// `hostname` with a UTS namespace joined by path: set in that namespace, as runc does.
#[test]
fn hostname_in_a_joined_uts_namespace() {
    let mut outs = Vec::new();
    for runtime in [BIN, "runc"] {
        let mut holder = Command::new("unshare")
            .args(["--uts", "sleep", "30"])
            .spawn()
            .unwrap();
        let pid = holder.id();
        // unshare has exec'd sleep once its namespace differs from ours.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ns_of(&pid.to_string(), "uts") == ns_of("self", "uts")
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut b = TestBundle::new("hostname");
        b.config["hostname"] = "joined".into();
        b.config["linux"]["namespaces"] = json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "uts", "path": format!("/proc/{pid}/ns/uts")}
        ]);
        b.write();
        outs.push(run_with(runtime, &b));
        let _ = holder.kill();
        let _ = holder.wait();
    }
    assert_eq!(outs[0].0, Some(0), "{:?}", outs[0]);
    assert_eq!(outs[0].1, "joined\n");
    assert_eq!(outs[0].1, outs[1].1, "oci-runtime (left) and runc (right)");
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        "joined\n",
        "the host keeps its name"
    );
}

/// A seccomp profile denying `getcwd` (no `noNewPrivileges`, so it is loaded early): the
/// working-directory check runs before it, so the container starts, as under crun.
#[test]
fn cwd_check_before_a_seccomp_filter_denying_getcwd() {
    let mut b = TestBundle::new("echo started");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let r = under(&[BIN, "crun"], &b);
    assert_eq!(r[0].0, Some(0), "{:?}", r[0]);
    assert_eq!(r[0].1, "started\n");
    assert_eq!(r[0].1, r[1].1, "oci-runtime (left) and crun (right)");
}

/// The hooks of steps 3 to 5 of the lifecycle (prestart, createRuntime, createContainer)
/// receive the state with status `created`, as crun passes it.
#[test]
fn early_hooks_see_created_as_under_crun() {
    let mut seen = Vec::new();
    for runtime in [BIN, "crun"] {
        let logs = tempfile::tempdir().unwrap();
        let log = logs.path().join("log");
        let mut b = TestBundle::new("true");
        let hook = |name: &str| {
            json!({"path": "/bin/busybox", "args": ["sh", "-c",
                format!("echo \"{name} $(cat)\" >> {}", log.display())]})
        };
        b.config["hooks"] = json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")]
        });
        b.write();
        let out = run_with(runtime, &b);
        assert_eq!(out.0, Some(0), "{runtime}: {out:?}");
        let text = std::fs::read_to_string(&log).unwrap();
        let statuses: Vec<(String, String)> = text
            .lines()
            .map(|l| {
                let (n, s) = l.split_once(' ').unwrap();
                let v: Value = serde_json::from_str(s).unwrap();
                (n.to_string(), v["status"].as_str().unwrap().to_string())
            })
            .collect();
        seen.push(statuses);
    }
    let want = [("prestart", "created"), ("createRuntime", "created")]
        .map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(seen[0], want, "ours");
    assert_eq!(seen[0], seen[1], "oci-runtime (left) and crun (right)");
}

/// Limits for a controller this host does not mount are an error naming it, for network
/// limits (net_cls, net_prio) as for hugetlb; nothing is left behind.
#[test]
fn limits_for_missing_controllers_are_errors_naming_them() {
    let mounted = |c: &str| {
        Path::new("/sys/fs/cgroup")
            .join(c)
            .join("cgroup.procs")
            .exists()
    };
    let cases = [
        ("net_cls", json!({"network": {"classID": 1048577}})),
        (
            "net_prio",
            json!({"network": {"priorities": [{"name": "lo", "priority": 1}]}}),
        ),
        (
            "hugetlb",
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}),
        ),
    ];
    let (root, rt) = runtime();
    let mut checked = 0;
    for (controller, resources) in cases {
        if mounted(controller) {
            continue; // a host that has it: nothing to refuse
        }
        let mut b = TestBundle::new("true");
        b.config["linux"]["resources"] = resources;
        b.write();
        let name = id("nocontroller");
        let e = rt
            .create(&name, b.path(), CreateOptions::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("cgroup controller {controller}")),
            "{controller}: {e}"
        );
        assert!(!root.path().join("state").join(&name).exists());
        checked += 1;
    }
    // This host (CI's kind) mounts none of the three.
    assert!(checked > 0, "no missing controller to check on this host");
}

/// On a cgroup v1 host the container's `/sys/fs/cgroup` shows its own v1 controllers as
/// runc's does: the process reads its memory limit there.
#[test]
fn the_container_reads_its_memory_limit_in_sys_fs_cgroup() {
    let mut b = TestBundle::new(
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/pids/pids.max",
    );
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
    }));
    b.config["linux"]["resources"] = json!({"memory": {"limit": 100663296}, "pids": {"limit": 77}});
    let r = under(&[BIN, "runc"], &b);
    assert_eq!(
        r[0],
        (Some(0), "100663296\n77\n".to_string(), String::new())
    );
    assert_eq!(r[0].1, r[1].1, "oci-runtime (left) and runc (right)");
}

/// Poststart hooks run once the user's program runs (runtime-spec lifecycle step 9 after
/// step 8): the hook finds the container process already executing `sleep`, never still the
/// runtime's init, on every one of 20 runs (it used to race the `execve`).
#[test]
fn poststart_runs_after_the_program_is_executed() {
    let (_root, rt) = runtime();
    let runs: usize = std::env::var("OCIKIT_POSTSTART_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("log");
    let mut b = TestBundle::new("");
    b.config["process"]["args"] = json!(["sleep", "10"]);
    // The state's pid, then the program that process executes (/proc/<pid>/exe changes
    // at execve before the close-on-exec descriptors are closed; its name, comm, only after).
    let script = format!(
        "pid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p'); readlink /proc/$pid/exe >> {}",
        log.display()
    );
    b.config["hooks"] = json!({"poststart": [
        {"path": "/bin/busybox", "args": ["sh", "-c", script]}
    ]});
    b.write();
    for _ in 0..runs {
        let name = id("poststart");
        let _guard = Guard(&rt, name.clone());
        let opts = CreateOptions::new()
            .stdin(std::fs::File::open("/dev/null").unwrap())
            .stdout(std::fs::File::create("/dev/null").unwrap());
        rt.create(&name, b.path(), opts).unwrap();
        rt.start(&name).unwrap();
        rt.kill(&name, ocikit_runtime::Signal::SIGKILL).unwrap();
        assert_eq!(
            rt.wait(&name).unwrap(),
            ExitStatus::Signaled(ocikit_runtime::Signal::SIGKILL)
        );
        rt.delete(&name, false).unwrap();
    }
    let text = std::fs::read_to_string(&log).unwrap();
    // The path as the host resolves it in the container's mount namespace.
    let sleeps = text.lines().filter(|l| l.ends_with("/bin/busybox")).count();
    eprintln!("poststart saw the program in {sleeps} of {runs} runs");
    assert_eq!(sleeps, runs, "{text}");
}

/// `exec` into a container that shares the runtime's mount namespace runs in the
/// container's root (its rootfs, reached through the container process), not the host's.
#[test]
fn exec_without_a_mount_namespace_runs_in_the_container_root() {
    use std::io::Read;
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("exec sleep 100");
    b.config["linux"]["namespaces"] = json!([{"type": "pid"}]);
    b.config.as_object_mut().unwrap().remove("hostname");
    std::fs::write(b.rootfs().join("marker"), "inside\n").unwrap();
    b.write();
    let name = id("exec-nomnt");
    let _guard = Guard(&rt, name.clone());
    let quiet = || {
        CreateOptions::new()
            .stdin(std::fs::File::open("/dev/null").unwrap())
            .stdout(std::fs::File::create("/dev/null").unwrap())
    };
    rt.create(&name, b.path(), quiet()).unwrap();
    rt.start(&name).unwrap();
    let mut p = rt.process_of(&name).unwrap();
    p.set_args(Some(["cat", "/marker"].map(String::from).to_vec()));
    let (r, w) = std::io::pipe().unwrap();
    let pid = rt.exec(&name, &p, quiet().stdout(w)).unwrap();
    let status = rt.wait_process(pid).unwrap();
    let mut out = String::new();
    { r }.read_to_string(&mut out).unwrap();
    assert_eq!((status, out.as_str()), (ExitStatus::Exited(0), "inside\n"));
    rt.delete(&name, true).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(b.rootfs().to_str().unwrap()),
        "delete undid the container's mounts"
    );
}
