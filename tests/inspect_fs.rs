//! An image's final filesystem read through `inspect_fs` (nothing unpacked) is the tree
//! `umoci unpack` makes of the same image: an image whose layers hold whiteouts, an opaque
//! directory, a file replacing a directory and hard links.
//!
//! Needs root (umoci keeps owners only as root, and the image has files of other owners) and
//! umoci (scripts/test.sh installs it); fails without them.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::Location;
use ocikit::image::{EntryKind, host_platform, sha256};
use ocikit::inspect_fs::image_fs;
use ocikit::layout::Layout;

mod common;
use common::run;

/// Three layers: a base; a diff that deletes a file, empties a directory and refills it
/// (an opaque whiteout), replaces a directory with a file and adds a hard link; a top layer.
fn image(dir: &Path) -> String {
    let base = dir.join("base");
    for d in ["etc", "data", "swap/old", "opq"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    std::fs::write(base.join("etc/hostname"), "box\n").unwrap();
    std::fs::set_permissions(base.join("etc"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::lchown(base.join("etc/hostname"), Some(1000), Some(2000)).unwrap();
    std::fs::write(base.join("data/keep"), "kept\n").unwrap();
    std::fs::write(base.join("data/gone"), "deleted by the second layer\n").unwrap();
    std::fs::write(base.join("swap/old/file"), "old\n").unwrap();
    std::fs::write(base.join("opq/a"), "a\n").unwrap();
    std::fs::write(base.join("opq/b"), "b\n").unwrap();
    std::fs::write(base.join("hard1"), "one inode, two names\n").unwrap();
    std::fs::hard_link(base.join("hard1"), base.join("hard2")).unwrap();
    std::os::unix::fs::symlink("etc/hostname", base.join("lnk")).unwrap();

    let changed = dir.join("changed");
    run(Command::new("cp").arg("-a").arg(&base).arg(&changed));
    std::fs::remove_file(changed.join("data/gone")).unwrap();
    std::fs::remove_dir_all(changed.join("swap")).unwrap();
    std::fs::write(changed.join("swap"), "a file where a directory was\n").unwrap();
    std::fs::remove_file(changed.join("opq/a")).unwrap();
    std::fs::remove_file(changed.join("opq/b")).unwrap();
    std::fs::write(changed.join("opq/c"), "c\n").unwrap();
    std::fs::hard_link(changed.join("opq/c"), changed.join("newlink")).unwrap();

    let top = dir.join("top");
    std::fs::create_dir_all(top.join("app")).unwrap();
    std::fs::write(top.join("app/run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        top.join("app/run.sh"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();

    let layout = Layout::create(dir.join("layout")).unwrap();
    let spec = BuildSpec::new()
        .layer(&base)
        .diff_layer(&base, &changed)
        .layer(&top);
    build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap();
    format!("oci:{}:t", dir.join("layout").display())
}

/// `path type mode uid:gid size link` of everything below `root`, and each file's hash.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>, hashes: &mut HashMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let (kind, size) = match m.file_type() {
            t if t.is_file() => ('f', m.len()),
            t if t.is_dir() => ('d', 0),
            t if t.is_symlink() => ('l', 0),
            _ => ('?', 0),
        };
        let link = std::fs::read_link(&p).map(|l| l.display().to_string());
        let (mode, owner) = (m.mode() & 0o7777, format!("{}:{}", m.uid(), m.gid()));
        out.push(format!(
            "{rel} {kind} {mode:o} {owner} {size} {}",
            link.unwrap_or_default()
        ));
        if kind == 'f' {
            hashes.insert(rel, sha256(&std::fs::read(&p).unwrap()).to_string());
        } else if kind == 'd' {
            walk(root, &p, out, hashes);
        }
    }
}

#[test]
fn the_image_filesystem_is_the_tree_umoci_unpacks() {
    assert!(
        rustix::process::geteuid().is_root(),
        "umoci keeps owners only as root, and the image has files of other owners (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let location = image(tmp.path());
    let bundle = tmp.path().join("bundle");
    let layout_ref = location.trim_start_matches("oci:");
    run(Command::new("umoci")
        .args(["unpack", "--image", layout_ref])
        .arg(&bundle));
    let (mut theirs, mut their_hashes) = (Vec::new(), HashMap::new());
    let rootfs = bundle.join("rootfs");
    walk(&rootfs, &rootfs, &mut theirs, &mut their_hashes);
    theirs.sort();

    // The listing, through the API a tool author uses.
    let fs = image_fs(&location.parse::<Location>().unwrap(), &host_platform()).unwrap();
    let mut ours: Vec<String> = fs
        .view()
        .entries()
        .map(|e| {
            let m = e.meta();
            let kind = match m.kind() {
                EntryKind::File => 'f',
                EntryKind::Directory => 'd',
                EntryKind::Symlink => 'l',
                _ => '?',
            };
            let link = m.link_target().map(|l| l.display().to_string());
            let (path, owner) = (e.path().display(), format!("{}:{}", m.uid(), m.gid()));
            let (mode, size) = (m.mode(), m.size());
            format!(
                "{path} {kind} {mode:o} {owner} {size} {}",
                link.unwrap_or_default()
            )
        })
        .collect();
    ours.sort();
    assert_eq!(ours, theirs);

    // The features the image is for are there.
    let view = fs.view();
    for gone in ["data/gone", "opq/a", "opq/b", "swap/old"] {
        assert!(view.get(gone).is_none(), "{gone} is still listed");
    }
    assert_eq!(view.get("swap").unwrap().meta().kind(), EntryKind::File);
    assert_eq!(
        view.get("hard2").unwrap().hardlink(),
        Some(Path::new("hard1"))
    );
    assert_eq!(
        view.get("opq/c").unwrap().hardlink(),
        Some(Path::new("newlink"))
    );

    // Contents, streamed once per file, are umoci's too.
    let mut our_hashes = HashMap::new();
    fs.read_contents(|entry, content| {
        let mut data = Vec::new();
        content.read_to_end(&mut data)?;
        our_hashes.insert(
            entry.path().display().to_string(),
            sha256(&data).to_string(),
        );
        Ok(())
    })
    .unwrap();
    for e in view
        .entries()
        .filter(|e| e.meta().kind() == EntryKind::File)
    {
        let first = e.hardlink().unwrap_or(e.path()).display().to_string();
        let path = e.path().display().to_string();
        assert_eq!(our_hashes.get(&first), their_hashes.get(&path), "{path}");
    }
    assert_eq!(
        our_hashes.len(),
        their_hashes.len() - 2,
        "two paths are hard links"
    );
}
