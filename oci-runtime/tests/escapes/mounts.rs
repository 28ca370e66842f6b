//! CVE-2021-30465: mount destinations that turn into symlinks between the runtime's check
//! and its `mount(2)`, so that the mount lands outside the rootfs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{RenameFlags, renameat2};
use ocikit_runtime::CreateOptions;
use serde_json::json;

use crate::kit::*;

/// Swaps each `(a, b)` pair (atomically, `RENAME_EXCHANGE`) over and over until told to
/// stop, as a second container sharing the volume would; returns how many swaps it made.
pub(crate) fn flipper(
    pairs: Vec<(PathBuf, PathBuf)>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let cwd = nix::fcntl::AT_FDCWD;
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            for (a, b) in &pairs {
                if renameat2(cwd, a, cwd, b, RenameFlags::RENAME_EXCHANGE).is_ok() {
                    n += 1;
                }
            }
            // Leave the runtime a core: on a busy machine a spinning attacker mostly slows
            // the race down. The windows last longer than this.
            std::thread::sleep(Duration::from_micros(50));
        }
        n
    })
}

/// How many mounts of the directory `source` a mount table holds, and where.
fn mounts_of(table: &[MountEntry], source: &Path) -> Vec<String> {
    let source = shell_path(source);
    table
        .iter()
        .filter(|m| m.root == source)
        .map(|m| m.point.clone())
        .collect()
}

const PAIRS: usize = 4;

/// CVE-2021-30465, a real race: four bind-mount destinations in the rootfs are swapped, in a
/// loop, with symlinks to a host directory (absolute, and climbing with `../`), while
/// containers are created one after the other for a few seconds. A `createContainer` hook
/// records the container's mount table before the root changes; after it, the host reads it
/// again. Every bind mount must land inside the rootfs, once, every time; the host directory
/// stays empty.
#[test]
fn cve_2021_30465_mount_destinations_swapped_for_symlinks_stay_in_the_rootfs() {
    let (_root, rt) = runtime();
    let outside = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("marker"), "volume").unwrap();
    let records = tempfile::tempdir().unwrap();
    let mut b = TestBundle::new("true");
    let rootfs = std::fs::canonicalize(b.rootfs()).unwrap();
    let mnt = rootfs.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let abs = shell_path(outside.path());
    let mut pairs = Vec::new();
    for k in 0..PAIRS {
        let dir = mnt.join(format!("d{k}"));
        let link = mnt.join(format!("l{k}"));
        std::fs::create_dir(&dir).unwrap();
        let target = if k % 2 == 0 {
            abs.clone()
        } else {
            format!("../../../../../../../../../..{abs}")
        };
        std::os::unix::fs::symlink(target, &link).unwrap();
        b.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": format!("/mnt/d{k}"), "type": "bind",
            "source": source.path(), "options": ["rbind"]
        }));
        pairs.push((dir, link));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flips = flipper(pairs, stop.clone());
    let (created, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut failures = Vec::new();
    for i in 0..60 {
        if Instant::now() > deadline {
            break;
        }
        let record = records.path().join(i.to_string());
        b.config["hooks"] = json!({"createContainer": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat /proc/self/mountinfo > {}", shell_path(&record))]
        }]});
        b.write();
        let name = id("race");
        let _guard = Guard(&rt, name.clone());
        let c = match rt.create(&name, b.path(), CreateOptions::new()) {
            Ok(c) => c,
            Err(_) => {
                refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        created.fetch_add(1, Ordering::Relaxed);
        let before = parse_mountinfo(&std::fs::read_to_string(&record).unwrap());
        let after = mountinfo(c.pid());
        let landed = mounts_of(&before, source.path());
        if landed.len() != PAIRS || landed.iter().any(|p| !Path::new(p).starts_with(&rootfs)) {
            failures.push(format!("before the root changed: {landed:?}"));
        }
        let seen = mounts_of(&after, source.path());
        if seen.len() != PAIRS {
            failures.push(format!("inside the container: {seen:?}"));
        }
        rt.delete(&name, true).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flips.join().unwrap();
    let created = created.into_inner();
    assert!(
        failures.is_empty(),
        "mounts outside the rootfs: {failures:#?}"
    );
    assert!(flips > 100, "the race never ran ({flips} swaps)");
    assert!(
        created >= 5,
        "too few containers to race ({created}, {refused:?} refused)"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    let host = mountinfo(std::process::id() as i32);
    assert!(
        host.iter()
            .all(|m| !Path::new(&m.point).starts_with(outside.path()))
    );
}
