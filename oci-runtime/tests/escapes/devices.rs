//! Device access: a container given `CAP_MKNOD` (Docker's default set has it) makes nodes for
//! the host's disks and memory and opens them. The device cgroup must refuse the open
//! (`EPERM`), whatever `linux.resources` says, as runc's default-deny list does.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::kit::*;

/// `<runtime> create --pid-file`, stdio on `/dev/null`: the pid of the created container.
fn create(runtime: &str, root: &Path, bundle: &Path, id: &str) -> i32 {
    let pid_file = root.join(format!("{id}.pid"));
    let status = Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{runtime} create {id}: {status}");
    std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The v1 `devices.list` of the cgroup process `pid` is in, sorted; `None` on a host
/// without a v1 devices hierarchy (cgroup v2 filters devices with an eBPF program).
fn devices_list(pid: i32) -> Option<Vec<String>> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroups.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "devices")
            .then(|| path.to_string())
    })?;
    let file = Path::new("/sys/fs/cgroup/devices")
        .join(path.trim_start_matches('/'))
        .join("devices.list");
    let mut lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    Some(lines)
}

/// The default configuration plus `CAP_MKNOD`, with `linux.resources` removed.
fn mknod_bundle(script: &str) -> TestBundle {
    let mut b = spec_bundle(script);
    applets(&b, &["mknod", "dd", "head"]);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_MKNOD".into());
    }
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    b.write();
    b
}

/// The host's root disk (the block device `/` is on), a loop device, `/dev/mem`, `/dev/kmsg`
/// and `/dev/loop-control`: `mknod` may succeed or not, but opening the node must fail with
/// `EPERM`, with the same outcome under runc for the same bundle; where the host has a v1
/// devices hierarchy, the container's `devices.list` is runc's.
#[test]
fn mknod_of_host_devices_then_open_is_eperm_and_devices_list_is_runcs() {
    let root_dev = std::fs::metadata("/").unwrap().dev();
    let (major, minor) = (
        nix::sys::stat::major(root_dev),
        nix::sys::stat::minor(root_dev),
    );
    let nodes = [
        ("rootdisk", "b", major, minor),
        ("loop0", "b", 7, 0),
        ("mem", "c", 1, 1),
        ("kmsg", "c", 1, 11),
        ("loopctl", "c", 10, 237),
    ];
    let script: String = nodes
        .iter()
        .map(|(name, t, ma, mi)| {
            format!(
                "mknod /dev/{name} {t} {ma} {mi}; \
                 echo {name}=$(dd if=/dev/{name} of=/dev/null bs=1 count=1 2>&1 | head -1); "
            )
        })
        .collect();
    let b = mknod_bundle(&script);
    let ours = run_with(BIN, &b);
    let theirs = run_with("runc", &b);
    assert_eq!(ours.0, Some(0), "{ours:?}");
    for (name, ..) in nodes {
        let line = ours
            .1
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {ours:?}"));
        assert!(
            line.ends_with("Operation not permitted"),
            "{name}: the container opened the host's device: {line}"
        );
    }
    assert_eq!(ours, theirs, "oci-runtime (left) and runc (right) differ");

    // The rules themselves, read from the host.
    let probe = mknod_bundle("true");
    let mut lists = Vec::new();
    for runtime in [BIN, "runc"] {
        let state = tempfile::tempdir().unwrap();
        let cid = id("devlist");
        let pid = create(runtime, state.path(), probe.path(), &cid);
        lists.push(devices_list(pid));
        let deleted = cli(runtime, state.path(), &["delete", "--force", &cid]);
        assert!(deleted.status.success(), "{deleted:?}");
    }
    if lists[1].is_some() {
        let ours = lists[0]
            .as_ref()
            .expect("our container has no devices cgroup");
        assert!(
            !ours.contains(&"a *:* rwm".to_string()),
            "no device rules: {ours:?}"
        );
    }
    assert_eq!(
        lists[0], lists[1],
        "devices.list: ours (left), runc's (right)"
    );
}

/// crun's CVE-2019-18837 and CVE-2026-88264: when `/dev` is not a mount of its own, the
/// image's `/dev` (or a node in it) is a symlink out of the rootfs, absolute or climbing with
/// `../`, and the runtime creates the default and configured device nodes through it. Every
/// node must be made inside the rootfs: the host directory stays empty, the host file keeps
/// its content and stays a regular file, and the container's `/dev/null` is the null device.
#[test]
fn device_nodes_are_never_created_through_symlinks_out_of_the_rootfs() {
    let host_dir = tempfile::tempdir().unwrap();
    let host_file = host_dir.path().join("victim");
    std::fs::write(&host_file, "host data").unwrap();
    let before = fingerprint(&host_file);
    let (_root, rt) = runtime();
    let file = shell_path(&host_file);
    let climb = format!("../../../../../../../../..{}", shell_path(host_dir.path()));
    for case in ["dev-absolute", "dev-climbing", "nodes"] {
        let mut b = TestBundle::new("stat -c '%F %t:%T' /dev/null /dev/zero /dev/mydev");
        applets(&b, &["stat"]);
        let dev = b.rootfs().join("dev");
        std::fs::remove_dir(&dev).unwrap();
        match case {
            "dev-absolute" => std::os::unix::fs::symlink(host_dir.path(), &dev).unwrap(),
            "dev-climbing" => std::os::unix::fs::symlink(&climb, &dev).unwrap(),
            _ => {
                std::fs::create_dir(&dev).unwrap();
                std::os::unix::fs::symlink(&file, dev.join("null")).unwrap();
                std::os::unix::fs::symlink(format!("../../../../../../..{file}"), dev.join("zero"))
                    .unwrap();
                std::os::unix::fs::symlink(&file, dev.join("mydev")).unwrap();
            }
        }
        let mounts = b.config["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
        b.config["linux"]["devices"] = serde_json::json!([
            {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 438}
        ]);
        if let Ok(out) = try_run(&rt, &b) {
            assert_eq!(
                out.stdout,
                "character special file 1:3\ncharacter special file 1:5\n\
                 character special file 1:3\n",
                "{case}: {out:?}"
            );
        }
        let names: Vec<_> = std::fs::read_dir(host_dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["victim"], "{case}: created on the host");
        assert!(
            std::fs::symlink_metadata(&host_file).unwrap().is_file(),
            "{case}"
        );
        assert_eq!(
            fingerprint(&host_file),
            before,
            "{case}: the host file changed"
        );
    }
}
