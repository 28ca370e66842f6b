//! `/proc` and `/sys`: what the runtime mounts there, masks and makes read-only, and the
//! attacks that redirect it (CVE-2019-19921 / CVE-2023-27561, CVE-2023-28642,
//! CVE-2025-31133).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ocikit_runtime::{CreateOptions, ExitStatus};
use serde_json::json;

use crate::kit::*;
use crate::mounts::flipper;

/// Replaces the rootfs's `/<name>` directory with a symlink to `target`.
fn symlink_in_rootfs(b: &TestBundle, name: &str, target: &str) {
    let path = b.rootfs().join(name);
    std::fs::remove_dir(&path).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

/// CVE-2023-28642: the image's `/proc` (or `/sys`) is a symlink. runc refuses to mount procfs
/// or sysfs on anything but a directory; so must we, with an error that names the path, and
/// with nothing left behind.
#[test]
fn cve_2023_28642_proc_or_sys_as_a_symlink_is_refused_like_runc() {
    let (root, rt) = runtime();
    for (name, target) in [
        ("proc", "/fake"),
        ("sys", "/fake"),
        ("proc", "../../../../../../../../.."),
        ("sys", "/"),
    ] {
        let b = TestBundle::new("true");
        std::fs::create_dir(b.rootfs().join("fake")).unwrap();
        symlink_in_rootfs(&b, name, target);
        b.write();
        let cid = id("symlinked");
        let _guard = Guard(&rt, cid.clone());
        let err = rt
            .create(&cid, b.path(), CreateOptions::new())
            .map(|_| ())
            .expect_err(&format!("/{name} -> {target} was accepted"));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("/{name}")),
            "{name} -> {target}: {msg}"
        );
        assert!(!root.path().join("state").join(&cid).exists());
        assert_eq!(
            std::fs::read_dir(b.rootfs().join("fake")).unwrap().count(),
            0
        );
        // The reference refuses it too.
        let state = tempfile::tempdir().unwrap();
        let runc = cli(
            "runc",
            state.path(),
            &["run", "--bundle", b.path().to_str().unwrap(), &cid],
        );
        assert!(!runc.status.success(), "runc accepted /{name} -> {target}");
    }
}

/// A mount of a mount table, with its id and its parent's.
struct Node {
    id: u32,
    parent: u32,
    entry: MountEntry,
}

/// The mount table of process `pid`, as the host sees it, with mount ids.
fn mount_tree(pid: i32) -> Vec<Node> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let (id, parent) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
            let entry = parse_mountinfo(line).pop()?;
            Some(Node { id, parent, entry })
        })
        .collect()
}

/// The masks and read-only paths of a container's every `proc` and `sysfs` mount, as the host
/// sees its mount table: each problem found, as text.
///
/// Masks are found by mount id, as mounts on a child named `keys` (or `sys`...) of the
/// procfs mount, never by the path text: the kernel renders `mountinfo` in several reads,
/// each line's path as the names are at that moment, so while the race's attacker renames
/// `/proc` the procfs line can say `/proc` and its masks' lines `/proc-link/keys`.
fn unprotected(table: &[Node]) -> Vec<String> {
    let depth = |n: &Node| n.entry.point.matches('/').count();
    let name = |n: &Node| {
        n.entry
            .point
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    // The top of the stack of mounts on `m`'s child `child`.
    let top = |m: &Node, child: &str| {
        let mut at = table
            .iter()
            .rev()
            .find(|n| n.parent == m.id && name(n) == child)?;
        while let Some(over) = table
            .iter()
            .rev()
            .find(|n| n.parent == at.id && depth(n) == depth(at) && name(n) == child)
        {
            at = over;
        }
        Some(at)
    };
    let mut problems = Vec::new();
    // Whole procfs and sysfs mounts (a bind of one of their directories has another root).
    for m in table.iter().filter(|m| m.entry.root == "/") {
        let sub = |name: &str| format!("{}/{name}", m.entry.point.trim_end_matches('/'));
        match m.entry.fstype.as_str() {
            "proc" => {
                for masked in ["keys", "timer_list", "acpi", "kcore", "sched_debug", "scsi"] {
                    if Path::new("/proc").join(masked).exists() && top(m, masked).is_none() {
                        problems.push(format!("{} is not masked", sub(masked)));
                    }
                }
                for ro in ["sys", "bus", "fs", "irq", "sysrq-trigger"] {
                    if !Path::new("/proc").join(ro).exists() {
                        continue;
                    }
                    if !top(m, ro).is_some_and(|r| r.entry.options.iter().any(|o| o == "ro")) {
                        problems.push(format!("{} is not read-only", sub(ro)));
                    }
                }
            }
            "sysfs" => {
                if !m.entry.options.iter().any(|o| o == "ro") {
                    problems.push(format!("{} is writable", m.entry.point));
                }
                if Path::new("/sys/firmware").exists() && top(m, "firmware").is_none() {
                    problems.push(format!("{} is not masked", sub("firmware")));
                }
            }
            _ => {}
        }
    }
    problems
}

/// CVE-2023-27561 (CVE-2019-19921 re-introduced): the runtime writes through `/proc` after
/// mounting it (masks, read-only remounts, sysctls, LSM labels); if `/proc` can be swapped
/// for a symlink between the mount and those writes, they go to a plain directory and the
/// real procfs stays unmasked and writable (`/proc/sys/kernel/core_pattern` is a way out). A
/// second container sharing the rootfs swaps `/proc` and `/sys` with symlinks in a loop while
/// containers of the default configuration are created for a few seconds. Each one must be
/// refused or have every procfs and sysfs it got masked and read-only.
#[test]
fn cve_2023_27561_racing_proc_and_sys_symlinks_never_unmask_them() {
    let (_root, rt) = runtime();
    let mut b = spec_bundle("true");
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    let rootfs = b.rootfs();
    let mut pairs = Vec::new();
    for name in ["proc", "sys"] {
        let other = format!("elsewhere-{name}");
        std::fs::create_dir(rootfs.join(&other)).unwrap();
        let link = rootfs.join(format!("{name}-link"));
        std::os::unix::fs::symlink(format!("/{other}"), &link).unwrap();
        pairs.push((rootfs.join(name), link));
    }
    b.write();
    let stop = Arc::new(AtomicBool::new(false));
    let flips = flipper(pairs, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut created, mut refused) = (0, 0);
    let mut problems = Vec::new();
    while Instant::now() < deadline && created + refused < 150 {
        let name = id("procrace");
        let _guard = Guard(&rt, name.clone());
        match rt.create(&name, b.path(), CreateOptions::new()) {
            Ok(c) => {
                created += 1;
                let found = unprotected(&mount_tree(c.pid()));
                if !found.is_empty() {
                    problems.push(format!("{name}: {}", found.join(", ")));
                }
            }
            Err(e) => {
                refused += 1;
                // Refused because of the swap, and saying where.
                let msg = e.to_string();
                if !msg.contains("/proc") && !msg.contains("/sys") {
                    problems.push(format!("{name}: refused for another reason: {msg}"));
                }
            }
        }
        let _ = rt.delete(&name, true);
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flips.join().unwrap();
    assert!(
        problems.is_empty(),
        "{} of the {created} containers created ({refused} refused) had: {problems:#?}",
        problems.len()
    );
    assert!(flips > 100, "the race never ran ({flips} swaps)");
    assert!(created + refused >= 5, "too few attempts");
}

/// The default configuration's `maskedPaths` and `readonlyPaths`, attacked from inside by
/// root without `CAP_SYS_ADMIN`: the masked files read empty, and nothing unmasks them,
/// remounts them read-write, mounts a fresh procfs or writes a sysctl (the value it already
/// has, so a hole would change nothing). Same outcomes as runc's for the same bundle.
#[test]
fn masked_and_readonly_paths_cannot_be_undone_without_cap_sys_admin_like_runc() {
    let script = r#"
        for p in /proc/keys /proc/timer_list; do echo "$p=$(wc -c <$p)"; done
        echo acpi=$(ls -A /proc/acpi | wc -l)
        echo firmware=$(ls -A /sys/firmware | wc -l)
        umount /proc/keys 2>/dev/null; echo umount-keys=$?
        umount /proc/acpi 2>/dev/null; echo umount-acpi=$?
        umount -l /proc/sys 2>/dev/null; echo umount-sys=$?
        mount -o remount,rw /proc/sys 2>/dev/null; echo remount-proc-sys=$?
        mount -o remount,rw /sys 2>/dev/null; echo remount-sys=$?
        mkdir /dev/shm/p; mount -t proc proc /dev/shm/p 2>/dev/null; echo new-proc=$?
        mount --bind /proc/sys /dev/shm/p 2>/dev/null; echo bind-proc-sys=$?
        v=$(cat /proc/sys/kernel/printk_ratelimit)
        (echo "$v" >/proc/sys/kernel/printk_ratelimit) 2>/dev/null; echo sysctl=$?
        v=$(cat /proc/irq/default_smp_affinity)
        (echo "$v" >/proc/irq/default_smp_affinity) 2>/dev/null; echo irq=$?
        (echo "$(cat /sys/kernel/profiling)" >/sys/kernel/profiling) 2>/dev/null; echo sysfs=$?
    "#;
    let host_sysctl = std::fs::read("/proc/sys/kernel/printk_ratelimit").unwrap();
    let mut b = spec_bundle(script);
    applets(&b, &["umount", "mkdir", "wc"]);
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    b.write();
    let ours = run_with(BIN, &b);
    let theirs = run_with("runc", &b);
    assert_eq!(ours.0, Some(0), "{ours:?}");
    let expected = [
        "/proc/keys=0",
        "/proc/timer_list=0",
        "acpi=0",
        "firmware=0",
        "umount-keys=1",
        "umount-acpi=1",
        "umount-sys=1",
        "remount-proc-sys=1",
        "remount-sys=1",
        "new-proc=1",
        "bind-proc-sys=1",
        "sysctl=1",
        "irq=1",
        "sysfs=1",
    ];
    assert_eq!(ours.1.lines().collect::<Vec<_>>(), expected, "{ours:?}");
    assert_eq!(ours, theirs, "oci-runtime (left) and runc (right) differ");
    assert_eq!(
        std::fs::read("/proc/sys/kernel/printk_ratelimit").unwrap(),
        host_sysctl
    );
}

/// CVE-2025-31133: masking binds `/dev/null` over each masked path; when the container
/// controls `/dev` (here a volume bound there, with `null` a symlink to
/// `/proc/sys/kernel/core_pattern`), following that name would bind the host's
/// `core_pattern` where the container can reach it. The masks must be the null device or
/// the container must be refused. (Nothing is written: a hole would change the host.)
#[test]
fn cve_2025_31133_masks_never_follow_a_dev_null_symlink() {
    let (_root, rt) = runtime();
    let volume = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", volume.path().join("null"))
        .unwrap();
    let mut b = spec_bundle(
        "for p in /proc/keys /proc/timer_list; do stat -L -c '%F %t:%T' $p; done; \
         wc -c </proc/keys; grep ' /proc/keys ' /proc/self/mountinfo >&2",
    );
    applets(&b, &["stat", "wc"]);
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    mounts.push(
        json!({"destination": "/dev", "type": "bind", "source": volume.path(),
                       "options": ["rbind"]}),
    );
    match try_run(&rt, &b) {
        // Refused, for this reason and no other (a refusal for anything else would prove
        // nothing about the masks).
        Err(e) => assert!(e.to_string().contains("/dev/null"), "{e}"),
        Ok(out) => {
            assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
            assert_eq!(
                out.stdout, "character special file 1:3\ncharacter special file 1:3\n0\n",
                "a masked path is not the null device: {out:?}"
            );
        }
    }
}

/// `/proc/kcore` (the kernel's memory as an ELF core) reads empty in a default container.
/// Needs a kernel with `CONFIG_PROC_KCORE`.
#[test]
#[ignore = "needs /proc/kcore (CONFIG_PROC_KCORE), which this machine's kernel lacks"]
fn proc_kcore_is_masked_needs_proc_kcore() {
    assert!(
        Path::new("/proc/kcore").exists(),
        "this machine has no /proc/kcore"
    );
    let (_root, rt) = runtime();
    let b = spec_bundle("wc -c </proc/kcore; head -c 4 /proc/kcore | wc -c");
    applets(&b, &["wc", "head"]);
    let out = run(&rt, &b);
    assert_eq!(out.stdout, "0\n0\n", "{out:?}");
}

/// `/proc/sysrq-trigger` cannot be written from a default container (`h` would only print
/// help to the kernel log). Needs a kernel with `CONFIG_MAGIC_SYSRQ`.
#[test]
#[ignore = "needs /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ), which this machine's kernel lacks"]
fn proc_sysrq_trigger_is_read_only_needs_sysrq() {
    assert!(
        Path::new("/proc/sysrq-trigger").exists(),
        "this machine has no /proc/sysrq-trigger"
    );
    let (_root, rt) = runtime();
    let b = spec_bundle("(echo h >/proc/sysrq-trigger) 2>/dev/null; echo rc=$?");
    let out = run(&rt, &b);
    assert_eq!(out.stdout, "rc=1\n", "{out:?}");
}

/// CVE-2023-27561 as published: with `/proc` swapped for a symlink in a loop, the AppArmor
/// profile the runtime writes to `/proc/self/attr/apparmor/exec` must still confine every
/// container it creates. Needs AppArmor enabled and the profile named by
/// `OCIKIT_TEST_APPARMOR_PROFILE` (default `docker-default`) loaded.
#[test]
#[ignore = "needs AppArmor, which this machine's kernel lacks"]
fn cve_2023_27561_apparmor_profile_survives_a_racing_proc_symlink_needs_apparmor() {
    let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    assert!(enabled, "AppArmor is not enabled on this machine");
    let profile =
        std::env::var("OCIKIT_TEST_APPARMOR_PROFILE").unwrap_or_else(|_| "docker-default".into());
    let (_root, rt) = runtime();
    let mut b = spec_bundle("cat /proc/self/attr/current");
    b.config["process"]["apparmorProfile"] = profile.clone().into();
    let rootfs = b.rootfs();
    std::fs::create_dir(rootfs.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("/elsewhere", rootfs.join("proc-link")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flips = flipper(
        vec![(rootfs.join("proc"), rootfs.join("proc-link"))],
        stop.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(out) = try_run(&rt, &b) {
            seen.push(out.stdout);
        }
    }
    stop.store(true, Ordering::Relaxed);
    flips.join().unwrap();
    for s in &seen {
        assert!(s.starts_with(&profile), "a container ran unconfined: {s}");
    }
}
