//! Capabilities, `noNewPrivileges`, rlimits and `oomScoreAdj`, observed from inside busybox
//! containers, and compared with runc. Needs root (CI has it). The attacks of published
//! container escapes against these and the rest of the runtime are in `tests/escapes/`.

mod common;

use common::{TestBundle, id, run, run_with, runtime};
use ocikit_runtime::{CreateOptions, ExitStatus};
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
        "bounding": ["CAP_KILL", "CAP_AUDIT_WRITE"],
        "effective": ["CAP_KILL", "CAP_AUDIT_WRITE"],
        "permitted": ["CAP_KILL", "CAP_AUDIT_WRITE"]
    });
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    // CAP_KILL (5) | CAP_AUDIT_WRITE (29). (An unknown name is an error at create:
    // tests/spec_points.rs.)
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

const SECCOMP_PROBE: &str = "mkdir /tmp/x; echo mkdir=$?; kill -0 $$; echo kill0=$?; \
    kill -CONT $$; echo cont=$?; sync; echo sync=$?; ls /tmp";

fn seccomp_bundle(extra_name: Option<&str>) -> TestBundle {
    let mut b = TestBundle::new(SECCOMP_PROBE);
    std::os::unix::fs::symlink("busybox", b.rootfs().join("bin/sync")).unwrap();
    let mut mkdir = vec!["mkdir", "mkdirat"];
    mkdir.extend(extra_name);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": mkdir, "action": "SCMP_ACT_ERRNO", "errnoRet": 95},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"}
        ]
    });
    b.config["process"]["noNewPrivileges"] = true.into();
    b
}

#[test]
fn seccomp_errno_arguments_and_kill() {
    let (_root, rt) = runtime();
    let b = seccomp_bundle(Some("not_a_syscall"));
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    // 95 is EOPNOTSUPP, 13 EACCES; sync dies of SIGSYS (31): 128 + 31.
    assert_eq!(
        out.stdout, "mkdir=1\nkill0=1\ncont=0\nsync=159\n",
        "{out:?}"
    );
    assert!(out.stderr.contains("Operation not supported"), "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
}

#[test]
fn seccomp_default_errno_with_an_allow_list() {
    let (_root, rt) = runtime();
    let mut b =
        TestBundle::new("echo hi; grep '^Seccomp:' /proc/self/status; mkdir /tmp/y 2>&1; true");
    let allowed = [
        "read",
        "write",
        "openat",
        "open",
        "close",
        "fstat",
        "newfstatat",
        "stat",
        "lstat",
        "mmap",
        "munmap",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "ioctl",
        "execve",
        "exit",
        "exit_group",
        "arch_prctl",
        "set_tid_address",
        "getpid",
        "getppid",
        "fork",
        "vfork",
        "clone",
        "clone3",
        "wait4",
        "dup2",
        "dup3",
        "pipe",
        "pipe2",
        "fcntl",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "prctl",
        "uname",
        "getcwd",
        "lseek",
        "sendfile",
        "readv",
        "writev",
        "statx",
        "poll",
        "ppoll",
        "faccessat",
        "faccessat2",
        "access",
        "setpgid",
        "getpgrp",
        "umask",
        "kill",
        "prlimit64",
        "mprotect",
        "getrandom",
        "rseq",
        "set_robust_list",
        "futex",
        "sigaltstack",
        "getdents64",
        "readlink",
        "madvise",
    ];
    b.config["process"]["noNewPrivileges"] = true.into();
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "syscalls": [{"names": allowed.to_vec(), "action": "SCMP_ACT_ALLOW"}]
    });
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    // mkdir is not in the list: the default errno (EPERM).
    assert_eq!(
        out.stdout,
        "hi\nSeccomp:\t2\nmkdir: can't create directory '/tmp/y': Operation not permitted\n",
        "{out:?}"
    );
}

#[test]
fn same_seccomp_outcomes_as_runc() {
    for nnp in [true, false] {
        let mut b = seccomp_bundle(None);
        b.config["process"]["noNewPrivileges"] = nnp.into();
        b.config["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
        });
        b.write();
        let ours = run_with(BIN, &b);
        let theirs = run_with("runc", &b);
        assert_eq!(ours, theirs, "oci-runtime (left) and runc (right) differ");
        assert_eq!(ours.1, "mkdir=1\nkill0=1\ncont=0\nsync=159\n");
    }
}

#[test]
fn scheduler_and_io_priority() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("awk '{print $19, $41}' /proc/self/stat; ionice");
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    let out = run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    // Nice 5, policy 3 (SCHED_BATCH).
    assert_eq!(out.stdout, "5 3\nbest-effort: prio 6\n");
}

#[test]
fn lsm_labels_without_the_lsm_are_a_clear_error() {
    let (root, rt) = runtime();
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    for (field, value, enabled) in [
        ("apparmorProfile", "docker-default", apparmor),
        ("selinuxLabel", "system_u:system_r:container_t:s0", selinux),
    ] {
        if enabled {
            continue; // this host could apply it
        }
        let mut b = TestBundle::new("true");
        b.config["process"][field] = value.into();
        b.write();
        let name = id("lsm");
        let err = rt
            .create(&name, b.path(), CreateOptions::new())
            .unwrap_err();
        assert!(
            matches!(&err, ocikit_runtime::Error::Unsupported { feature } if feature.contains(field)
                && feature.contains("not enabled on this host")),
            "{err}"
        );
        assert!(!root.path().join("state").join(&name).exists());
    }
}
