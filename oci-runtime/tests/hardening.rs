//! Issue 25's hardening points, each checked against runc 1.1 on the same bundle where runc
//! is the reference: the default-deny device policy (whatever the configuration says), the
//! `cgroup` mount on a v1 host, relative paths in `config.json`, and `/proc` or `/sys` as a
//! symlink in the rootfs (CVE-2023-28642).
//!
//! Every test needs root (mounts, cgroups, mknod); CI runs them as root. The host is a cgroup
//! v1 one with an empty cgroup2 hierarchy at `/sys/fs/cgroup/unified` (hybrid): the v1 code
//! runs for real, and the v2 device program runs for real on that unified hierarchy (it has no
//! controllers, but cgroup device programs need none). The rest of the v2 code (limits,
//! controllers) is covered by the fixture tests in `src/cgroup.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{TestBundle, id, runtime};
use ocikit_runtime::{CreateOptions, Error, ExitStatus};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_oci-runtime");

/// What one `run` printed: exit code, stdout, stderr.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `bundle` as container `name` with the runc-compatible command line of `runtime`
/// (`runc` or ours), from the working directory `cwd`.
fn run_cli(runtime: &str, bundle: &Path, name: &str, cwd: &Path) -> Run {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(runtime)
        .current_dir(cwd)
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(name)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {runtime}: {e}"));
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A busybox bundle whose configuration is `oci-runtime spec`'s default, running `script`
/// with a writable root and `CAP_MKNOD` added to each capability set (Docker's default set
/// has it), as the issue's attack did.
fn default_spec_bundle(script: &str) -> TestBundle {
    let mut b = TestBundle::new(script);
    for a in ["mknod", "head", "cut"] {
        std::os::unix::fs::symlink("busybox", b.rootfs().join("bin").join(a)).unwrap();
    }
    let spec_dir = tempfile::tempdir().unwrap();
    let status = Command::new(BIN)
        .args(["spec", "--bundle"])
        .arg(spec_dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read(spec_dir.path().join("config.json")).unwrap();
    let mut config: Value = serde_json::from_slice(&text).unwrap();
    config["root"]["readonly"] = false.into();
    config["process"]["args"] = json!(["sh", "-c", script]);
    for (_, set) in config["process"]["capabilities"]
        .as_object_mut()
        .unwrap()
        .iter_mut()
    {
        set.as_array_mut().unwrap().push("CAP_MKNOD".into());
    }
    b.config = config;
    b
}

/// This process's own cgroup directory in the v1 hierarchy mounted at `dir`, as named in
/// `/proc/self/cgroup` by `key` (`memory`, `name=systemd`, or `""` for the unified one).
fn own_cgroup(key: &str, dir: &str) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = text
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            (c == key || c.split(',').any(|c| c == key)).then(|| p.to_string())
        })
        .unwrap_or_else(|| panic!("no {key} in {text}"));
    Path::new("/sys/fs/cgroup")
        .join(dir)
        .join(path.trim_start_matches('/'))
}

/// The container's cgroups (default path: its id below ours) are gone.
fn assert_no_cgroup_left(name: &str) {
    for (key, dir) in [
        ("memory", "memory"),
        ("devices", "devices"),
        ("pids", "pids"),
        ("name=systemd", "systemd"),
        ("", "unified"),
    ] {
        let d = own_cgroup(key, dir).join(name);
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// runc 1.1.5's `devices.list` for a container whose configuration has no device rules
/// (seen on this kind of host): deny by default, mknod of anything, the standard devices.
const RUNC_DEFAULT_LIST: &str = "b *:* m\nc *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\n\
    c 1:9 rwm\nc 5:0 rwm\nc 5:2 rwm\nc 10:200 rwm\nc 136:* rwm\n";

/// Issue 25.1: `"devices": []` (what `oci-runtime spec` writes) and no `linux.resources` at
/// all used to leave `devices.list` at `a *:* rwm`, and a container with `CAP_MKNOD` read a
/// host loop device. Now, as under runc: mknod of a block device is allowed, opening it fails
/// with EPERM, and `devices.list` (read inside, through the container's cgroup mount) is
/// runc's, line for line. Needs root.
#[test]
fn default_device_policy_whatever_the_configuration_says_as_runc() {
    const SCRIPT: &str = "cat /sys/fs/cgroup/devices/devices.list; \
        mknod /dev/x b 7 0; echo mknod=$?; head -c 1 /dev/x 2>&1 >/dev/null; echo open=$?; \
        head -c 1 /dev/zero | wc -c";
    for resources in ["devices: []", "removed"] {
        let mut b = default_spec_bundle(SCRIPT);
        if resources == "removed" {
            b.config["linux"]
                .as_object_mut()
                .unwrap()
                .remove("resources");
        } else {
            assert_eq!(b.config["linux"]["resources"], json!({"devices": []}));
        }
        b.write();
        let name = id("hard-dev");
        let here = std::env::current_dir().unwrap();
        let ours = run_cli(BIN, b.path(), &name, &here);
        let theirs = run_cli("runc", b.path(), &name, &here);
        assert_eq!(ours.code, Some(0), "{resources}: {ours:?}");
        assert_eq!(
            ours.stdout,
            format!(
                "{RUNC_DEFAULT_LIST}mknod=0\nhead: /dev/x: Operation not permitted\nopen=1\n1\n"
            ),
            "{resources}: {ours:?}"
        );
        assert_eq!(
            ours, theirs,
            "{resources}: oci-runtime (left) and runc (right)"
        );
        assert_no_cgroup_left(&name);
    }
}

/// The configuration's own rules and devices come on top of the default, which they cannot
/// take away (runc appends its defaults last). Through the library. Needs root.
#[test]
fn configuration_rules_on_top_of_the_default() {
    let (_root, rt) = runtime();
    let mut b = default_spec_bundle(
        "head -c 1 /dev/mine 2>&1 >/dev/null; echo mine=$?; \
         head -c 1 /dev/zero >/dev/null; echo zero=$?; \
         mknod /dev/l1 b 7 1; head -c 1 /dev/l1 2>&1 >/dev/null; echo l1=$?; \
         cat /sys/fs/cgroup/devices/devices.list",
    );
    // Denying /dev/zero: the default allows it again. Allowing loop1 for reading.
    b.config["linux"]["resources"] = json!({"devices": [
        {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": true, "type": "b", "major": 7, "minor": 1, "access": "r"}
    ]});
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/mine", "type": "b", "major": 7, "minor": 2, "fileMode": 384}]);
    let out = common::run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..3], ["mine=0", "zero=0", "l1=0"], "{out:?}");
    let list = &lines[3..];
    assert!(
        list.contains(&"b 7:1 r") && list.contains(&"b 7:2 rwm"),
        "{list:?}"
    );
    assert!(!list.contains(&"a *:* rwm"), "{list:?}");
}

/// The same default on a cgroup v2 hierarchy: with no `linux.resources`, the eBPF program
/// denies the block device and allows the standard ones. Runs on this host's unified
/// hierarchy (`with_cgroup_root`). Needs root.
#[test]
fn default_device_policy_on_cgroup_v2() {
    let unified = Path::new("/sys/fs/cgroup/unified");
    assert!(
        unified.join("cgroup.controllers").exists(),
        "a cgroup2 mount"
    );
    let (_root, rt) = runtime();
    let rt = rt.with_cgroup_root(unified);
    let mut b = default_spec_bundle(
        "mknod /dev/x b 7 0; echo mknod=$?; head -c 1 /dev/x 2>&1 >/dev/null; echo open=$?; \
         head -c 1 /dev/zero | wc -c",
    );
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    let out = common::run(&rt, &b);
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    assert_eq!(
        out.stdout, "mknod=0\nhead: /dev/x: Operation not permitted\nopen=1\n1\n",
        "{out:?}"
    );
}

/// Issue 25.5: the `cgroup` mount on a v1 host showed the host's whole cgroup2 tree. Now, as
/// under runc, it shows the container's own cgroups: the same directories, the same mounts
/// (cgroup file systems rooted at the container's cgroup with a cgroup namespace, bind
/// mounts of its cgroup paths without), the same limit and `/proc/self/cgroup`. Needs root.
#[test]
fn cgroup_mount_shows_the_containers_own_cgroups_as_runc() {
    const SCRIPT: &str = "grep cgroup /proc/self/mountinfo | cut -d' ' -f4-; \
        ls /sys/fs/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
        wc -l < /sys/fs/cgroup/pids/cgroup.procs; cat /proc/self/cgroup; \
        ls /sys/fs/cgroup/unified 2>&1; true";
    for cgroupns in [true, false] {
        let mut b = default_spec_bundle(SCRIPT);
        b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
        let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
        assert!(
            ns.contains(&json!({"type": "cgroup"})),
            "the default has one"
        );
        if !cgroupns {
            ns.retain(|n| n["type"] != "cgroup");
        }
        b.write();
        // One id for both: without a cgroup namespace the paths name it.
        let name = id("hard-cgmount");
        let here = std::env::current_dir().unwrap();
        let ours = run_cli(BIN, b.path(), &name, &here);
        let theirs = run_cli("runc", b.path(), &name, &here);
        assert_eq!(ours.code, Some(0), "{ours:?}");
        assert_eq!(
            ours, theirs,
            "cgroupns {cgroupns}: oci-runtime (left), runc (right)"
        );
        let out = &ours.stdout;
        assert!(out.contains("\n67108864\n"), "{out}");
        assert!(!out.contains("cgroup2"), "no unified tree: {out}");
        assert!(
            out.contains("ls: /sys/fs/cgroup/unified: No such file"),
            "{out}"
        );
        let memory =
            " /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory";
        let root = if cgroupns {
            "/".to_string()
        } else {
            let own = own_cgroup("memory", "memory");
            let rel = own.strip_prefix("/sys/fs/cgroup/memory").unwrap();
            Path::new("/").join(rel).join(&name).display().to_string()
        };
        assert!(
            out.contains(&format!("\n{root}{memory}\n")),
            "{root}: {out}"
        );
        assert_no_cgroup_left(&name);
    }
}

/// A rootfs at `/proc` or `/sys` of which is `kind` ("symlink" or "file").
fn hostile_mount_point(dest: &str, kind: &str) -> TestBundle {
    let b = TestBundle::new("echo ran");
    let path = b.rootfs().join(dest.trim_start_matches('/'));
    std::fs::remove_dir(&path).unwrap();
    std::fs::create_dir(b.rootfs().join("decoy")).unwrap();
    match kind {
        "symlink" => std::os::unix::fs::symlink("/decoy", &path).unwrap(),
        _ => std::fs::write(&path, "").unwrap(),
    }
    b
}

/// Issue 25.4, CVE-2023-28642: procfs and sysfs are only mounted on a plain directory. A
/// rootfs whose `/proc` or `/sys` is a symlink (or a file) is refused with an error naming
/// the mount and the path; nothing is mounted through the link and no cgroup is left. A
/// plain directory still works. Needs root.
#[test]
fn proc_or_sys_not_a_plain_directory_is_refused() {
    let (_root, rt) = runtime();
    // TestBundle's mounts: [0] /proc (proc), [3] /sys (sysfs).
    for (dest, index, fstype) in [("/proc", 0, "proc"), ("/sys", 3, "sysfs")] {
        for kind in ["symlink", "file"] {
            let b = hostile_mount_point(dest, kind);
            b.write();
            let name = id("hard-procsym");
            // Deletes the container if a regression lets it be created.
            let _guard = common::Guard(&rt, name.clone());
            let err = rt
                .create(
                    &name,
                    b.path(),
                    CreateOptions::new().stdin(std::fs::File::open("/dev/null").unwrap()),
                )
                .unwrap_err();
            let Error::InitFailed { message } = &err else {
                panic!("{dest} {kind}: {err:?}");
            };
            let what = if kind == "symlink" {
                "a symlink"
            } else {
                "not a directory"
            };
            assert_eq!(
                message,
                &format!(
                    "invalid config: mounts[{index}].destination: {dest} is {what} in the root \
                     filesystem: {fstype} is only mounted on a plain directory"
                ),
                "{dest} {kind}"
            );
            assert!(
                std::fs::read_dir(b.rootfs().join("decoy"))
                    .unwrap()
                    .next()
                    .is_none(),
                "nothing mounted through the link"
            );
            assert!(matches!(
                rt.state(&name),
                Err(Error::ContainerNotFound { .. })
            ));
            assert_no_cgroup_left(&name);
        }
    }
    let out = common::run(
        &rt,
        &TestBundle::new("ls /proc/self/fd >/dev/null && ls /sys/fs"),
    );
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    assert!(out.stdout.contains("cgroup"), "{out:?}");
}

/// The same bundles under runc are refused too (its CVE-2023-28642 fix), so this is runc's
/// behaviour, not a stricter one. Needs root.
#[test]
fn runc_refuses_the_same_rootfs() {
    for dest in ["/proc", "/sys"] {
        let b = hostile_mount_point(dest, "symlink");
        b.write();
        let here = std::env::current_dir().unwrap();
        let theirs = run_cli("runc", b.path(), &id("hard-runc"), &here);
        assert_ne!(theirs.code, Some(0), "{theirs:?}");
        assert!(
            theirs
                .stderr
                .contains("must be mounted on ordinary directory"),
            "{theirs:?}"
        );
    }
}

/// Issue 25.3: relative paths in `config.json` are the bundle's (runtime-spec: "Path values
/// for bind mounts are either absolute or relative to the bundle"), whatever the caller's
/// working directory: `oci-runtime run --bundle /abs/bundle ID` run from a directory that
/// has its own `rel-src` mounts the bundle's, as runc does. Needs root.
#[test]
fn relative_bind_source_resolves_in_the_bundle() {
    let mut b = TestBundle::new("cat /mnt/marker /file");
    std::fs::create_dir(b.path().join("rel-src")).unwrap();
    std::fs::write(b.path().join("rel-src/marker"), "bundle dir\n").unwrap();
    std::fs::write(b.path().join("rel-file"), "bundle file\n").unwrap();
    b.config["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/mnt", "type": "bind", "source": "rel-src",
               "options": ["rbind", "ro"]}),
        json!({"destination": "/file", "source": "./rel-file", "options": ["bind"]}),
    ]);
    b.write();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(elsewhere.path().join("rel-src")).unwrap();
    std::fs::write(elsewhere.path().join("rel-src/marker"), "caller's cwd\n").unwrap();
    std::fs::write(elsewhere.path().join("rel-file"), "caller's file\n").unwrap();
    let name = id("hard-rel");
    let ours = run_cli(BIN, b.path(), &name, elsewhere.path());
    assert_eq!(ours.code, Some(0), "{ours:?}");
    assert_eq!(ours.stdout, "bundle dir\nbundle file\n");
    let theirs = run_cli("runc", b.path(), &name, elsewhere.path());
    assert_eq!(ours, theirs, "oci-runtime (left) and runc (right)");
}

/// Hook paths MUST be absolute (runtime-spec): a relative one would run whatever the caller's
/// working directory holds. Refused before anything runs.
#[test]
fn relative_hook_path_is_refused() {
    let mut b = TestBundle::new("true");
    b.config["hooks"] = json!({"createRuntime": [{"path": "bin/hook"}]});
    b.write();
    let (_root, rt) = runtime();
    let err = rt
        .create(&id("hard-hook"), b.path(), CreateOptions::new())
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "hooks.createRuntime[0].path"),
        "{err:?}"
    );
}
