//! Busybox containers, each test checking one feature that would be missing without it.
//! Needs root and namespaces (CI has both).

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;

use common::{TestBundle, id, run, runtime};
use oci_spec::runtime::ContainerState;
use ocikit_runtime::{CreateOptions, Error, ExitStatus, Signal};
use serde_json::json;

#[test]
fn hostname_and_domainname() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("hostname; cat /proc/sys/kernel/domainname");
    b.config["hostname"] = "acceptance-box".into();
    b.config["domainname"] = "example.test".into();
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    assert_eq!(out.stdout, "acceptance-box\nexample.test\n");
}

#[test]
fn process_is_pid_1_and_host_processes_are_invisible() {
    let (_root, rt) = runtime();
    let b = TestBundle::new("echo $$; ls /proc | grep '^[0-9]' | sort -n");
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("1"));
    let pids: Vec<u32> = lines.map(|l| l.parse().unwrap()).collect();
    // sh itself, and the ls/grep/sort of the pipeline: nothing of the host's.
    assert!(pids.contains(&1), "{pids:?}");
    assert!(pids.len() <= 4 && pids.iter().all(|p| *p < 10), "{pids:?}");
    assert!(!pids.contains(&std::process::id()));
}

/// The mount points inside the container, from `/proc/self/mountinfo`.
fn mount_points(mountinfo: &str) -> Vec<String> {
    let mut v: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .collect();
    v.sort();
    v
}

#[test]
fn exactly_the_requested_mounts() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("cat /proc/self/mountinfo");
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("hello"), "hi").unwrap();
    b.config["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/data", "type": "bind", "source": src.path(),
               "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "rprivate"]}),
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
               "options": ["size=1m", "mode=750", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
    ]);
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    assert_eq!(
        mount_points(&out.stdout),
        [
            "/",
            "/data",
            "/dev",
            "/dev/mqueue",
            "/dev/pts",
            "/proc",
            "/scratch",
            "/sys"
        ],
        "{}",
        out.stdout
    );
    let line = |mp: &str| {
        out.stdout
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(mp))
            .unwrap()
            .to_string()
    };
    let data = line("/data");
    let opts = data.split(' ').nth(5).unwrap();
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.split(',').any(|x| x == o), "{o} missing: {data}");
    }
    let scratch = line("/scratch");
    assert!(
        scratch.contains("tmpfs") && scratch.contains("size=1024k"),
        "{scratch}"
    );
    assert!(scratch.contains("mode=750"), "{scratch}");
    assert!(line("/sys").split(' ').nth(5).unwrap().starts_with("ro"));
    assert!(line("/dev/mqueue").contains("mqueue"));
}

#[test]
fn default_devices_and_dev_symlinks() {
    let (_root, rt) = runtime();
    let b = TestBundle::new(
        "ls /dev | sort | grep -v '^pts$'; readlink /dev/fd; readlink /dev/ptmx; echo x > /dev/null && echo null-ok",
    );
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    for d in [
        "full", "null", "random", "tty", "urandom", "zero", "fd", "stdin", "stdout", "stderr",
        "ptmx",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == d),
            "/dev/{d} missing: {}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("/proc/self/fd\npts/ptmx\nnull-ok\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn readonly_root_refuses_writes() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("touch /newfile; echo rc=$?; touch /tmp/x; echo rc=$?");
    b.config["root"]["readonly"] = true.into();
    let out = run(&rt, &b);
    assert!(out.stdout.contains("rc=1\nrc=1\n"), "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    assert!(!b.rootfs().join("newfile").exists());

    // And writable when not asked.
    b.config["root"]["readonly"] = false.into();
    let out = run(&rt, &b);
    assert!(out.stdout.starts_with("rc=0\n"), "{out:?}");
    assert!(b.rootfs().join("newfile").exists());
}

#[test]
fn user_groups_and_umask_switched() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("id -u; id -g; id -G; umask");
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 23});
    b.config["process"]["cwd"] = "/tmp".into();
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    let mut groups: Vec<&str> = lines[2].split(' ').collect();
    groups.sort();
    assert_eq!(groups, ["10", "1000", "20"]);
    assert_eq!(lines[3], "0027");
}

#[test]
fn env_and_cwd() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("echo $FOO; echo \"$SPACED\"; pwd");
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar", "SPACED=a b"]);
    b.config["process"]["cwd"] = "/work/dir".into();
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    assert_eq!(out.stdout, "bar\na b\n/work/dir\n");
}

#[test]
fn exit_codes_propagate() {
    let (_root, rt) = runtime();
    for code in [0, 3, 77] {
        let b = TestBundle::new(&format!("exit {code}"));
        assert_eq!(run(&rt, &b).status, ExitStatus::Exited(code));
    }
    let mut b = TestBundle::new("unused");
    b.config["process"]["args"] = json!(["/bin/does-not-exist"]);
    b.write();
    match rt.run(&id("missing"), b.path(), CreateOptions::new()) {
        Err(Error::InitFailed { message }) => {
            assert!(message.contains("does-not-exist"), "{message}")
        }
        other => panic!("expected InitFailed, got {other:?}"),
    }
}

#[test]
fn signals_reach_the_container() {
    let (_root, rt) = runtime();
    // A trapped SIGTERM becomes an exit code; SIGKILL kills.
    for (sig, want) in [
        (Signal::SIGTERM, ExitStatus::Exited(42)),
        (Signal::SIGKILL, ExitStatus::Signaled(Signal::SIGKILL)),
    ] {
        let b = TestBundle::new("trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done");
        b.write();
        let (r, w) = std::io::pipe().unwrap();
        let cid = id("sig");
        let c = rt
            .create(&cid, b.path(), CreateOptions::new().stdout(w))
            .unwrap();
        assert_eq!(c.status(), ContainerState::Created);
        assert!(c.pid() > 0);
        rt.start(&cid).unwrap();
        assert_eq!(rt.state(&cid).unwrap().status(), ContainerState::Running);
        let mut line = String::new();
        BufReader::new(r).read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        rt.kill(&cid, sig).unwrap();
        let status = rt.wait(&cid).unwrap();
        assert_eq!(status, want);
        assert_eq!(rt.state(&cid).unwrap().status(), ContainerState::Stopped);
        rt.delete(&cid, false).unwrap();
        assert!(matches!(
            rt.state(&cid),
            Err(Error::ContainerNotFound { .. })
        ));
    }
    assert_eq!(ExitStatus::Signaled(Signal::SIGKILL).code(), 137);
}

#[test]
fn delete_refuses_a_live_container_unless_forced() {
    let (_root, rt) = runtime();
    let b = TestBundle::new("sleep 100");
    b.write();
    let cid = id("del");
    rt.create(&cid, b.path(), CreateOptions::new()).unwrap();
    assert!(matches!(
        rt.create(&cid, b.path(), CreateOptions::new()),
        Err(Error::ContainerExists { .. })
    ));
    assert!(matches!(
        rt.delete(&cid, false),
        Err(Error::InvalidState {
            status: ContainerState::Created,
            ..
        })
    ));
    rt.start(&cid).unwrap();
    assert!(matches!(
        rt.start(&cid),
        Err(Error::InvalidState {
            status: ContainerState::Running,
            ..
        })
    ));
    assert!(matches!(
        rt.delete(&cid, false),
        Err(Error::InvalidState {
            status: ContainerState::Running,
            ..
        })
    ));
    rt.delete(&cid, true).unwrap();
    assert!(rt.list().unwrap().is_empty());
}

#[test]
fn masked_and_readonly_paths() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new(
        "cat /etc/secret; echo; ls /secrets; echo ---; echo x > /etc/ro/f; echo rc=$?",
    );
    std::fs::write(b.rootfs().join("etc/secret"), "TOPSECRET").unwrap();
    std::fs::create_dir_all(b.rootfs().join("secrets")).unwrap();
    std::fs::write(b.rootfs().join("secrets/key"), "k").unwrap();
    std::fs::create_dir_all(b.rootfs().join("etc/ro")).unwrap();
    b.config["linux"]["maskedPaths"] = json!(["/etc/secret", "/secrets", "/not/there"]);
    b.config["linux"]["readonlyPaths"] = json!(["/etc/ro", "/not/there/either"]);
    let out = run(&rt, &b);
    assert!(!out.stdout.contains("TOPSECRET"), "{out:?}");
    assert!(!out.stdout.contains("key"), "{out:?}");
    assert!(out.stdout.ends_with("---\nrc=1\n"), "{out:?}");
    assert!(!b.rootfs().join("etc/ro/f").exists());
}

#[test]
fn symlinked_mount_destination_stays_inside_the_root() {
    let (_root, rt) = runtime();
    let host = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("from-source"), "x").unwrap();
    let mut b = TestBundle::new(
        "cat /proc/self/mountinfo | awk '{print $5}'; ls /climb/sub; touch /evil/written",
    );
    // An absolute link to a host directory and a relative one climbing out of the rootfs.
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("evil")).unwrap();
    let up = format!("../../../../../../../..{}", host.path().display());
    std::os::unix::fs::symlink(&up, b.rootfs().join("climb")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"}),
        json!({"destination": "/climb/sub", "type": "bind", "source": source.path(), "options": ["bind"]}),
    ]);
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    let inside = host.path().display().to_string();
    // Both mounts landed on the link targets as seen inside the root...
    assert!(out.stdout.lines().any(|l| l == inside), "{out:?}");
    assert!(
        out.stdout.lines().any(|l| l == format!("{inside}/sub")),
        "{out:?}"
    );
    assert!(out.stdout.contains("from-source"), "{out:?}");
    // ...which are directories of the rootfs, never the host's.
    assert!(
        b.rootfs()
            .join(host.path().strip_prefix("/").unwrap())
            .is_dir()
    );
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0);
}

#[test]
fn no_host_descriptor_leaks() {
    let (_root, rt) = runtime();
    // A descriptor this process leaks on purpose (not close-on-exec).
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    nix::fcntl::fcntl(
        &leaked,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let b = TestBundle::new("ls /proc/self/fd; readlink /proc/1/exe");
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    let mut lines = out.stdout.lines();
    let fds: Vec<&str> = lines.by_ref().take(4).collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "{out:?} (leaked fd {})",
        leaked.as_raw_fd()
    );
    // pid 1 is the user's program, not the runtime.
    assert_eq!(lines.next(), Some("/bin/busybox"));
}

#[test]
fn user_namespace_mappings() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("cat /proc/self/uid_map /proc/self/gid_map; id -u");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "100000", "65536", "0", "100000", "65536", "0"],
        "{out:?}"
    );
}

#[test]
fn joins_an_existing_namespace_by_path() {
    let (_root, rt) = runtime();
    // A long-running container whose uts namespace a second one joins.
    let first = TestBundle::new("sleep 100");
    let mut first = first;
    first.config["hostname"] = "shared-uts".into();
    first.write();
    let cid = id("owner");
    let c = rt.create(&cid, first.path(), CreateOptions::new()).unwrap();
    let mut second = TestBundle::new("hostname");
    second.config.as_object_mut().unwrap().remove("hostname");
    second.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "network"},
        {"type": "uts", "path": format!("/proc/{}/ns/uts", c.pid())}
    ]);
    let out = run(&rt, &second);
    rt.delete(&cid, true).unwrap();
    assert_eq!(out.stdout, "shared-uts\n", "{out:?}");
}

#[test]
fn sysctl_and_no_pivot() {
    let (_root, rt) = runtime();
    let mut b =
        TestBundle::new("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni; echo $$");
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    b.write();
    let (r, w) = std::io::pipe().unwrap();
    let status = rt
        .run(
            &id("sysctl"),
            b.path(),
            CreateOptions::new().stdout(w).no_pivot(true),
        )
        .unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut { r }, &mut s).unwrap();
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(s, "1\n1234\n1\n");
}

#[test]
fn invalid_bundles_are_refused_before_anything_runs() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("true");
    b.config["mounts"] = json!([{"destination": "relative", "type": "tmpfs", "source": "tmpfs"}]);
    b.write();
    match rt.create(&id("bad"), b.path(), CreateOptions::new()) {
        Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "mounts[0].destination"),
        other => panic!("{other:?}"),
    }
    assert!(rt.list().unwrap().is_empty());
}

#[test]
fn every_namespace_is_new_and_time_offsets_apply() {
    let (_root, rt) = runtime();
    const KINDS: [&str; 7] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "uts"];
    let script = KINDS
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}"))
        .collect::<Vec<_>>()
        .join("; ")
        + "; cat /proc/uptime";
    let mut b = TestBundle::new(&script);
    b.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"},
        {"type": "network"}, {"type": "cgroup"}, {"type": "time"}
    ]);
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000, "nanosecs": 0}});
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    for (k, inside) in KINDS.iter().zip(&lines) {
        let host = std::fs::read_link(format!("/proc/self/ns/{k}")).unwrap();
        assert!(inside.starts_with(&format!("{k}:[")), "{inside}");
        assert_ne!(Some(*inside), host.to_str(), "{k} namespace is the host's");
    }
    let uptime: f64 = lines[7].split(' ').next().unwrap().parse().unwrap();
    assert!(uptime >= 864000.0, "boottime offset not applied: {uptime}");
}

#[test]
fn spec_devices_cgroup_mount_and_rootfs_propagation() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new(
        "ls -l /dev/mynull | awk '{print $1, $5, $6}'; echo hi > /dev/mynull && echo written; \
         awk '$5 == \"/\" {print $7}' /proc/self/mountinfo; \
         awk '$5 ~ \"^/sys/fs/cgroup(/memory)?$\" {print $6, $9}' /proc/self/mountinfo; \
         ls /sys/fs/cgroup/memory | grep -c cgroup.procs",
    );
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 384, "uid": 0, "gid": 0}
    ]);
    b.config["linux"]["rootfsPropagation"] = "rshared".into();
    b.config["mounts"].as_array_mut().unwrap().push(json!(
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    ));
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "crw------- 1, 3", "{out:?}");
    assert_eq!(lines[1], "written");
    assert!(lines[2].starts_with("shared:"), "root not shared: {out:?}");
    // On this v1 host, as runc: a tmpfs with the container's own cgroup of each hierarchy.
    assert_eq!(lines[3], "rw,nosuid,nodev,noexec,relatime tmpfs", "{out:?}");
    assert_eq!(
        lines[4], "ro,nosuid,nodev,noexec,relatime cgroup",
        "{out:?}"
    );
    assert_eq!(lines[5], "1");
}

#[test]
fn the_runtime_binary_cannot_be_written_through_the_container() {
    // A private copy of the helper, so that no other test executes the same file (which
    // would make any write attempt fail with ETXTBSY, protected or not).
    let (root, _) = runtime();
    let helper = root.path().join("oci-runtime");
    std::fs::copy(env!("CARGO_BIN_EXE_oci-runtime"), &helper).unwrap();
    // Children that other test threads forked while the copy was open for writing hold that
    // descriptor until their exec; executing the copy before then would fail with ETXTBSY.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let rt = ocikit_runtime::Runtime::new(root.path().join("state")).with_helper(&helper);
    let b = TestBundle::new("true");
    b.write();
    let cid = id("sealed");
    let c = rt.create(&cid, b.path(), CreateOptions::new()).unwrap();
    // Before start, the container's pid 1 is still the runtime. Keep a handle on its
    // executable, as an attacker inside would (CVE-2019-5736)...
    let exe = nix::fcntl::open(
        format!("/proc/{}/exe", c.pid()).as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    rt.start(&cid).unwrap();
    assert_eq!(rt.wait(&cid).unwrap(), ExitStatus::Exited(0));
    rt.delete(&cid, false).unwrap();
    // ...then, once nothing executes it any more, try to open it for writing.
    let reopen = format!("/proc/self/fd/{}", exe.as_raw_fd());
    match std::fs::OpenOptions::new().write(true).open(&reopen) {
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}"),
        Ok(f) => {
            // The fallback: a sealed memfd copy.
            let seals = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GET_SEALS).unwrap();
            assert!(
                seals & libc::F_SEAL_WRITE != 0,
                "the runtime binary is writable"
            );
        }
    }
}
