//! Layers applied in overlayfs form (`Whiteouts::Overlay`): each into its own empty directory,
//! whiteouts as 0/0 character devices, opaque directories by xattr; and stacks of such
//! directories mounted with overlayfs, compared with the same layers applied in order to one
//! directory.
//!
//! Needs root (CI runs as root): whiteout devices are made with mknod, opaque directories get
//! `trusted.*` xattrs, owners are kept, and the end-to-end tests mount overlayfs. Run as
//! anyone else these tests fail rather than skip. One test drops to uid 65534 on purpose to
//! show what an unprivileged user gets.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{E, gzip, image_layers, tar, umoci};
use ocikit_image::oci_spec::image::MediaType;
use ocikit_image::{
    ApplyOptions, ApplyReport, Error, OverlayXattrs, Whiteouts, apply_layer, sha256,
};

const TRUSTED: Whiteouts = Whiteouts::Overlay(OverlayXattrs::Trusted);
const USER: Whiteouts = Whiteouts::Overlay(OverlayXattrs::User);

fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "overlay form tests need root (mknod, trusted xattrs, mount); CI runs as root"
    );
}

fn apply_with(dir: &Path, entries: &[E<'_>], whiteouts: Whiteouts) -> Result<ApplyReport, Error> {
    apply_layer(
        dir,
        &tar(entries)[..],
        &MediaType::ImageLayer,
        None,
        &ApplyOptions::new().whiteouts(whiteouts),
    )
}

/// A fresh empty directory `name` under `base`, mode 0755 (what a store makes).
fn fresh(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("getxattr {name} on {}: {e}", path.display()),
    }
}

/// Asserts `path` is a whiteout: a character device 0/0.
fn assert_whiteout(path: &Path) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        m.file_type().is_char_device(),
        "{} is not a char device",
        path.display()
    );
    assert_eq!(m.rdev(), 0, "{} is not device 0/0", path.display());
}

fn assert_opaque(path: &Path, name: &str) {
    assert!(path.is_dir(), "{} is not a directory", path.display());
    assert_eq!(
        xattr(path, name).as_deref(),
        Some(&b"y"[..]),
        "{} is not opaque",
        path.display()
    );
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn whiteouts_become_devices_and_opaque_markers_xattrs() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let snap = fresh(tmp.path(), "snap");
    let report = apply_with(
        &snap,
        &[
            E::Dir("etc/"),
            E::File("etc/hosts", b"127.0.0.1 localhost\n"),
            E::File("etc/.wh.passwd", b""),
            E::Dir("var/"),
            E::File("var/.wh.cache", b""),
            E::Dir("d/"),
            E::File("d/.wh..wh..opq", b""),
            E::File("d/mine", b"this layer's"),
            // A marker in a directory the layer does not list: the directory is made.
            E::File("e/.wh..wh..opq", b""),
            // AUFS bookkeeping is not content.
            E::File(".wh..wh.plnk", b""),
            E::Dir(".wh..wh.orph/"),
        ],
        TRUSTED,
    )
    .unwrap();
    assert_whiteout(&snap.join("etc/passwd"));
    assert_whiteout(&snap.join("var/cache"));
    assert_eq!(
        std::fs::read(snap.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
    assert_opaque(&snap.join("d"), "trusted.overlay.opaque");
    assert_eq!(names(&snap.join("d")), ["mine"]);
    assert_opaque(&snap.join("e"), "trusted.overlay.opaque");
    assert_eq!(names(&snap.join("e")), Vec::<String>::new());
    // Only what was asked: no marker elsewhere, no `.wh.` names left, no AUFS entries.
    assert_eq!(xattr(&snap.join("etc"), "trusted.overlay.opaque"), None);
    assert_eq!(xattr(&snap, "trusted.overlay.opaque"), None);
    assert_eq!(names(&snap), ["d", "e", "etc", "var"]);
    assert_eq!(report.whiteouts, 4);
    assert_eq!(report.ignored, 2);
    assert!(!report.hides_lower_layers);
    // The device is what overlayfs itself makes: no permission bits, owned by us (root).
    let m = std::fs::symlink_metadata(snap.join("etc/passwd")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0);
}

#[test]
fn user_xattrs_for_a_userxattr_mount() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let snap = fresh(tmp.path(), "snap");
    apply_with(
        &snap,
        &[
            E::Dir("d/"),
            E::File("d/.wh..wh..opq", b""),
            E::File(".wh.x", b""),
        ],
        USER,
    )
    .unwrap();
    assert_opaque(&snap.join("d"), "user.overlay.opaque");
    assert_eq!(xattr(&snap.join("d"), "trusted.overlay.opaque"), None);
    assert_whiteout(&snap.join("x"));
    assert_eq!(OverlayXattrs::User.mount_option(), Some("userxattr"));
    assert_eq!(OverlayXattrs::Trusted.mount_option(), None);
    assert_eq!(
        OverlayXattrs::Trusted.opaque_xattr(),
        "trusted.overlay.opaque"
    );
}

#[test]
fn a_whiteout_spares_what_the_same_layer_made() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let snap = fresh(tmp.path(), "snap");
    apply_with(
        &snap,
        &[
            // Entry, then its whiteout: "Files that are present in the same layer as a
            // whiteout file can only be hidden by whiteout files in subsequent layers".
            E::File("a", b"kept"),
            E::File(".wh.a", b""),
            E::Dir("p/"),
            E::File("p/q", b"kept too"),
            E::File(".wh.p", b""),
            // Whiteout, then an entry of the name: the entry replaces the device.
            E::File(".wh.b", b""),
            E::File("b", b"new b"),
            E::File(".wh.s", b""),
            E::Symlink("s", "b"),
            // Whiteout, then a directory of the name: over the lower layers the old `c` is
            // gone first, so the new one is opaque.
            E::File(".wh.c", b""),
            E::Dir("c/"),
            E::File("c/x", b"x"),
            // Whiteout, then an entry below the name with no directory entry: the device
            // becomes an opaque directory.
            E::File(".wh.f", b""),
            E::File("f/y", b"y"),
            // Whiteout, then an opaque marker inside it: nothing to mark, `g` stays hidden.
            E::File(".wh.g", b""),
            E::File("g/.wh..wh..opq", b""),
            // A file, then a directory of the same name in one layer (duplicates break
            // layer.md, but must mean the same in both forms): the directory is opaque.
            E::File("h", b"first"),
            E::Dir("h/"),
            // The same whiteout twice.
            E::File(".wh.i", b""),
            E::File(".wh.i", b""),
            // A directory made for a whiteout below, then whited out itself.
            E::File("j/.wh.k", b""),
            E::File(".wh.j", b""),
            // Whiteouts and markers below a whiteout: over the lower layers, nothing is
            // there to remove, and `m` stays hidden.
            E::File(".wh.m", b""),
            E::File("m/.wh.x", b""),
            E::File("m/n/.wh.x", b""),
            E::File("m/n/.wh..wh..opq", b""),
            // Whiteouts below an opaque directory hide nothing more: before the marker they
            // are removed, after it they are not made (overlayfs would list them there).
            E::Dir("o/"),
            E::Dir("o/sub/"),
            E::File("o/.wh.before", b""),
            E::File("o/sub/.wh.before", b""),
            E::File("o/.wh..wh..opq", b""),
            E::File("o/.wh.after", b""),
            E::File("o/sub/.wh.after", b""),
            E::File("o/kept", b"kept"),
        ],
        TRUSTED,
    )
    .unwrap();
    assert_eq!(std::fs::read(snap.join("a")).unwrap(), b"kept");
    assert_eq!(std::fs::read(snap.join("p/q")).unwrap(), b"kept too");
    assert_eq!(xattr(&snap.join("p"), "trusted.overlay.opaque"), None);
    assert_eq!(std::fs::read(snap.join("b")).unwrap(), b"new b");
    assert_eq!(std::fs::read_link(snap.join("s")).unwrap(), Path::new("b"));
    assert_opaque(&snap.join("c"), "trusted.overlay.opaque");
    assert_eq!(names(&snap.join("c")), ["x"]);
    assert_opaque(&snap.join("f"), "trusted.overlay.opaque");
    assert_eq!(std::fs::read(snap.join("f/y")).unwrap(), b"y");
    assert_whiteout(&snap.join("g"));
    assert_opaque(&snap.join("h"), "trusted.overlay.opaque");
    assert_whiteout(&snap.join("i"));
    assert_whiteout(&snap.join("j"));
    assert_opaque(&snap.join("o"), "trusted.overlay.opaque");
    assert_eq!(names(&snap.join("o")), ["kept", "sub"]);
    assert_eq!(names(&snap.join("o/sub")), Vec::<String>::new());
    assert_eq!(
        names(&snap),
        ["a", "b", "c", "f", "g", "h", "i", "j", "m", "o", "p", "s"]
    );
    assert_whiteout(&snap.join("m"));
    // Directories a layer lists and keeps are never opaque by accident.
    assert_eq!(xattr(&snap.join("p"), "trusted.overlay.opaque"), None);
}

#[test]
fn hardlinks_stay_within_the_layer() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let snap = fresh(tmp.path(), "snap");
    apply_with(
        &snap,
        &[
            E::Dir("bin/"),
            E::FileMode("bin/busybox", b"#!busybox", 0o755),
            E::Hardlink("bin/sh", "bin/busybox"),
            E::Hardlink("bin/ls", "/bin/busybox"),
        ],
        TRUSTED,
    )
    .unwrap();
    let ino = |p: &str| std::fs::metadata(snap.join(p)).unwrap().ino();
    assert_eq!(ino("bin/sh"), ino("bin/busybox"));
    assert_eq!(ino("bin/ls"), ino("bin/busybox"));
    assert_eq!(
        std::fs::metadata(snap.join("bin/busybox")).unwrap().nlink(),
        3
    );

    // A link to a lower layer's file cannot be written in a layer alone.
    let snap2 = fresh(tmp.path(), "snap2");
    let e = apply_with(&snap2, &[E::Hardlink("sh", "bin/busybox")], TRUSTED).unwrap_err();
    match &e {
        Error::Apply { path, op, source } => {
            assert_eq!((path.as_str(), *op), ("sh", "link"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            assert!(source.to_string().contains("not in this layer"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Nor to a name this layer whited out (applied over the lower layers, it is gone).
    let snap3 = fresh(tmp.path(), "snap3");
    let e = apply_with(
        &snap3,
        &[E::File(".wh.x", b""), E::Hardlink("y", "x")],
        TRUSTED,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Apply { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
}

#[test]
fn links_to_lower_files_are_copied_from_the_lower_layers() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let l1 = fresh(tmp.path(), "l1");
    apply_with(
        &l1,
        &[
            E::Dir("bin/"),
            E::Pax(
                "bin/busybox",
                b"#!busybox",
                vec![
                    ("uid", b"1000".as_slice()),
                    ("gid", b"1001".as_slice()),
                    ("mtime", b"1500000000.5".as_slice()),
                    ("SCHILY.xattr.user.x", b"1".as_slice()),
                ],
            ),
            E::Symlink("lnk", "bin/busybox"),
            E::Fifo("fifo"),
            E::Dir("d/"),
            E::File("d/gone", b"gone"),
            E::Dir("o/"),
            E::File("o/hidden", b"hidden"),
            E::File("shadowed", b"old"),
        ],
        TRUSTED,
    )
    .unwrap();
    let l2 = fresh(tmp.path(), "l2");
    apply_with(
        &l2,
        &[
            E::Dir("d/"),
            E::File("d/.wh.gone", b""),
            E::Dir("o/"),
            E::File("o/.wh..wh..opq", b""),
            E::File("top", b"top"),
            E::File("shadowed", b"new"),
        ],
        TRUSTED,
    )
    .unwrap();
    let lowers = vec![l2.clone(), l1.clone()];
    let with_lowers = ApplyOptions::new()
        .whiteouts(TRUSTED)
        .lower_layers(lowers.clone());
    let l3 = fresh(tmp.path(), "l3");
    let report = apply_layer(
        &l3,
        &tar(&[
            E::Hardlink("sh", "bin/busybox"),
            E::Hardlink("ash", "/bin/busybox"),
            E::Hardlink("l2", "lnk"),
            E::Hardlink("f2", "fifo"),
            E::Hardlink("t2", "top"),
            E::Hardlink("s2", "shadowed"),
        ])[..],
        &MediaType::ImageLayer,
        None,
        &with_lowers,
    )
    .unwrap();
    assert_eq!(report.hardlinks, 6);
    let lower = std::fs::metadata(l1.join("bin/busybox")).unwrap();
    let copy = std::fs::metadata(l3.join("sh")).unwrap();
    assert_eq!(std::fs::read(l3.join("sh")).unwrap(), b"#!busybox");
    assert_eq!(
        (
            copy.mode(),
            copy.uid(),
            copy.gid(),
            copy.mtime(),
            copy.mtime_nsec()
        ),
        (lower.mode(), 1000, 1001, 1_500_000_000, 500_000_000)
    );
    assert_eq!(xattr(&l3.join("sh"), "user.x").as_deref(), Some(&b"1"[..]));
    assert_ne!(copy.ino(), lower.ino(), "a copy, not a link across layers");
    assert_eq!(std::fs::metadata(l3.join("ash")).unwrap().ino(), copy.ino());
    assert_eq!(
        std::fs::read_link(l3.join("l2")).unwrap(),
        Path::new("bin/busybox")
    );
    assert!(
        std::fs::symlink_metadata(l3.join("f2"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(std::fs::read(l3.join("t2")).unwrap(), b"top");
    assert_eq!(
        std::fs::read(l3.join("s2")).unwrap(),
        b"new",
        "the upper one"
    );
    assert_eq!(
        std::fs::metadata(l1.join("bin/busybox")).unwrap().nlink(),
        1
    );

    // What the lower layers hide is not found: a whited out file, a file under an opaque
    // directory, a name no layer has; nor is anything without the lower layers.
    for (i, source) in ["d/gone", "o/hidden", "nowhere", "bin/busybox/x"]
        .into_iter()
        .enumerate()
    {
        let snap = fresh(tmp.path(), &format!("miss{i}"));
        let e = apply_layer(
            &snap,
            &tar(&[E::Hardlink("x", source)])[..],
            &MediaType::ImageLayer,
            None,
            &with_lowers,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Apply { op: "link", .. }),
            "{source}: {e:?}"
        );
    }
    // This layer's own whiteouts and opaque directories hide the lower files too.
    for (i, entries) in [
        vec![
            E::Dir("bin/"),
            E::File("bin/.wh.busybox", b""),
            E::Hardlink("x", "bin/busybox"),
        ],
        vec![
            E::Dir("bin/"),
            E::File("bin/.wh..wh..opq", b""),
            E::Hardlink("x", "bin/busybox"),
        ],
        vec![E::File(".wh..wh..opq", b""), E::Hardlink("x", "top")],
    ]
    .into_iter()
    .enumerate()
    {
        let snap = fresh(tmp.path(), &format!("own{i}"));
        let e = apply_layer(
            &snap,
            &tar(&entries)[..],
            &MediaType::ImageLayer,
            None,
            &with_lowers,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Apply { op: "link", .. }),
            "case {i}: {e:?}"
        );
    }
    // A lower layer that is not there is an error before anything is written.
    let snap = fresh(tmp.path(), "nolower");
    let e = apply_layer(
        &snap,
        &tar(&[E::File("f", b"f")])[..],
        &MediaType::ImageLayer,
        None,
        &ApplyOptions::new()
            .whiteouts(TRUSTED)
            .lower_layers(vec![tmp.path().join("missing")]),
    )
    .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Apply {
                op: "open lower layer",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(names(&snap), Vec::<String>::new());
}

#[test]
fn only_an_empty_directory_takes_a_layer_in_overlay_form() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let snap = fresh(tmp.path(), "snap");
    std::fs::write(snap.join("old"), b"old").unwrap();
    let e = apply_with(&snap, &[E::File("new", b"new")], TRUSTED).unwrap_err();
    match &e {
        Error::Apply { op, source, .. } => {
            assert_eq!(*op, "open root");
            assert_eq!(source.kind(), std::io::ErrorKind::DirectoryNotEmpty);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(names(&snap), ["old"], "nothing was written");
    // Remove form (the default) is unchanged: it applies over what is there.
    apply_with(&snap, &[E::File("new", b"new")], Whiteouts::Remove).unwrap();
    assert_eq!(names(&snap), ["new", "old"]);
}

#[test]
fn a_layers_own_overlay_xattrs_are_not_written() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let snap = fresh(tmp.path(), "snap");
    let report = apply_with(
        &snap,
        &[E::Pax(
            "f",
            b"data",
            vec![
                ("SCHILY.xattr.trusted.overlay.redirect", b"/etc".as_slice()),
                ("SCHILY.xattr.trusted.overlay.opaque", b"y".as_slice()),
                ("SCHILY.xattr.user.overlay.metacopy", b"".as_slice()),
                ("SCHILY.xattr.user.kept", b"yes".as_slice()),
            ],
        )],
        TRUSTED,
    )
    .unwrap();
    let f = snap.join("f");
    assert_eq!(xattr(&f, "trusted.overlay.redirect"), None);
    assert_eq!(xattr(&f, "trusted.overlay.opaque"), None);
    assert_eq!(xattr(&f, "user.overlay.metacopy"), None);
    assert_eq!(xattr(&f, "user.kept").as_deref(), Some(&b"yes"[..]));
    assert_eq!(report.xattrs_skipped, 3);
}

#[test]
fn an_opaque_root_is_reported() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    for (whiteouts, name) in [(TRUSTED, "overlay"), (Whiteouts::Remove, "remove")] {
        let snap = fresh(tmp.path(), name);
        let report = apply_with(
            &snap,
            &[E::File(".wh..wh..opq", b""), E::File("only", b"me")],
            whiteouts,
        )
        .unwrap();
        assert!(report.hides_lower_layers, "{name}");
        assert_eq!(names(&snap), ["only"], "{name}");
        let report = apply_with(&fresh(tmp.path(), &format!("{name}2")), &[], whiteouts).unwrap();
        assert!(!report.hides_lower_layers, "{name}");
    }
}

#[test]
fn devices_option_does_not_govern_whiteouts() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let snap = fresh(tmp.path(), "snap");
    let report = apply_layer(
        &snap,
        &tar(&[E::File(".wh.x", b""), E::Char("null", 1, 3)])[..],
        &MediaType::ImageLayer,
        None,
        &ApplyOptions::new()
            .whiteouts(TRUSTED)
            .devices(ocikit_image::Devices::Skip),
    )
    .unwrap();
    assert_whiteout(&snap.join("x"));
    assert!(!snap.join("null").exists());
    assert_eq!((report.whiteouts, report.devices_skipped), (1, 1));
}

#[test]
fn diff_id_and_compression_work_the_same() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let plain = tar(&[E::Dir("a/"), E::File("a/.wh.b", b""), E::File("c", b"c")]);
    let diff_id = sha256(&plain);
    let snap = fresh(tmp.path(), "snap");
    let report = apply_layer(
        &snap,
        &gzip(&plain)[..],
        &MediaType::ImageLayerGzip,
        Some(&diff_id),
        &ApplyOptions::new().whiteouts(TRUSTED),
    )
    .unwrap();
    assert_eq!(report.diff_id, diff_id);
    assert_whiteout(&snap.join("a/b"));
    let wrong = sha256(b"not it");
    let e = apply_layer(
        &fresh(tmp.path(), "snap2"),
        &gzip(&plain)[..],
        &MediaType::ImageLayerGzip,
        Some(&wrong),
        &ApplyOptions::new().whiteouts(TRUSTED),
    )
    .unwrap_err();
    assert!(matches!(e, Error::DiffIdMismatch { .. }), "{e:?}");
}

#[test]
fn hostile_whiteouts_stay_inside() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("sentinel"), b"untouched").unwrap();
    let abs = format!("{}/.wh.sentinel", outside.display());
    let abs_opq = format!("{}/.wh..wh..opq", outside.display());
    for (i, entries) in [
        vec![
            E::Symlink("out", "../outside"),
            E::File("out/.wh.sentinel", b""),
        ],
        vec![
            E::Symlink("out", outside.to_str().unwrap()),
            E::File("out/.wh..wh..opq", b""),
        ],
        vec![E::File(&abs, b"")],
        vec![E::File(&abs_opq, b"")],
        vec![E::File("../outside/.wh.sentinel", b"")],
        vec![E::File(".wh..", b"")],
    ]
    .into_iter()
    .enumerate()
    {
        let snap = fresh(tmp.path(), &format!("snap{i}"));
        let _ = apply_with(&snap, &entries, TRUSTED);
        assert_eq!(names(&outside), ["sentinel"], "case {i}");
        assert_eq!(
            std::fs::read(outside.join("sentinel")).unwrap(),
            b"untouched"
        );
        assert_eq!(xattr(&outside, "trusted.overlay.opaque"), None, "case {i}");
    }
}

/// Runs as uid/gid 65534 (not root, no capabilities), in a child process: what an
/// unprivileged user gets in overlay form. Linux 5.8+ lets anyone make a 0/0 whiteout, and
/// `user.*` xattrs need only ownership; `trusted.*` needs CAP_SYS_ADMIN.
#[test]
fn an_unprivileged_user_writes_user_overlay_form() {
    if let Ok(dir) = std::env::var("OCIKIT_OVERLAY_CHILD") {
        // The child, as 65534.
        let dir = Path::new(&dir);
        let entries = [
            E::Dir("d/"),
            E::File("d/.wh..wh..opq", b""),
            E::File("d/f", b"f"),
            E::File(".wh.gone", b""),
        ];
        let user = apply_with(&dir.join("user"), &entries, USER);
        let trusted = apply_with(&dir.join("trusted"), &entries, TRUSTED);
        // The error and its causes, as a program prints them.
        let chain = |e: ocikit_image::Error| {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            text
        };
        println!("user: {:?}", user.map(|r| r.whiteouts).map_err(chain));
        println!("trusted: {:?}", trusted.map(|r| r.whiteouts).map_err(chain));
        return;
    }
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["user", "trusted"] {
        let d = fresh(tmp.path(), name);
        std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
    }
    let out = {
        use std::os::unix::process::CommandExt;
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "an_unprivileged_user_writes_user_overlay_form",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("OCIKIT_OVERLAY_CHILD", tmp.path())
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Whiteouts and user xattrs work unprivileged (this kernel is 5.8+)...
    assert!(stdout.contains("user: Ok(2)"), "{stdout}");
    let user = tmp.path().join("user");
    assert_whiteout(&user.join("gone"));
    assert_opaque(&user.join("d"), "user.overlay.opaque");
    assert_eq!(std::fs::metadata(user.join("d/f")).unwrap().uid(), 65534);
    // ...trusted xattrs do not, and that is an error naming the marker, not a silent skip.
    assert!(
        stdout.contains("trusted: Err(\"whiteout \\\"d/.wh..wh..opq\\\": Operation not permitted"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------------------
// End to end: overlayfs mounts of snapshots against one tree applied in order.

/// An overlayfs mount of `lowers` (top first) at `target`, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn new(lowers: &[PathBuf], target: &Path, xattrs: OverlayXattrs) -> Mount {
        let mut opts = format!(
            "lowerdir={}",
            lowers
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        );
        if let Some(o) = xattrs.mount_option() {
            opts.push(',');
            opts.push_str(o);
        }
        let out = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(target)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -o {opts}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(target.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Everything below `dir`, one sorted line per entry: path, type, mode, owner, mtime, and
/// per type the size and content hash, link target or device number; plus `user.*` xattrs.
fn tree(dir: &Path) -> Vec<String> {
    let (out, unlisted) = tree_and_ghosts(dir);
    assert_eq!(unlisted, Vec::<String>::new(), "names listed but not found");
    out
}

/// [`tree`], and the names a directory listing gives that cannot be found: overlayfs lists
/// the whiteouts of a directory it does not merge (one only one layer has), though looking
/// them up finds nothing. A whiteout of a name no lower layer has, in a directory no lower
/// layer has, is such a ghost.
fn tree_and_ghosts(dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut out = Vec::new();
    let mut ghosts = Vec::new();
    walk(dir, dir, &mut out, &mut ghosts);
    out.sort();
    ghosts.sort();
    (out, ghosts)
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>, ghosts: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(base).unwrap().display().to_string();
        let m = match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ghosts.push(rel);
                continue;
            }
            other => other.unwrap(),
        };
        let ft = m.file_type();
        let what = if ft.is_symlink() {
            format!("link -> {}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_dir() {
            "dir".to_owned()
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            format!("file {} {}", data.len(), sha256(&data))
        } else if ft.is_char_device() {
            format!("char {:x}", m.rdev())
        } else if ft.is_block_device() {
            format!("block {:x}", m.rdev())
        } else if ft.is_fifo() {
            "fifo".to_owned()
        } else {
            "socket".to_owned()
        };
        let mut line = format!(
            "{rel} {what} mode={:o} owner={}:{} mtime={}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            m.mtime()
        );
        if !ft.is_symlink() {
            let mut buf = [0u8; 4096];
            let n = rustix::fs::llistxattr(p.as_path(), &mut buf[..]).unwrap();
            let mut names: Vec<&[u8]> = buf[..n]
                .split(|&b| b == 0)
                .filter(|n| n.starts_with(b"user.") && !n.starts_with(b"user.overlay."))
                .collect();
            names.sort();
            for name in names {
                let name = std::str::from_utf8(name).unwrap();
                let value = xattr(&p, name).unwrap();
                line.push_str(&format!(" {name}={}", String::from_utf8_lossy(&value)));
            }
        }
        out.push(line);
        if ft.is_dir() {
            walk(base, &p, out, ghosts);
        }
    }
}

/// Applies `layers` in order to one directory (remove form) and each to its own snapshot
/// (overlay form), mounts the snapshots, and returns both trees.
/// With `with_lowers`, each layer is given the snapshots below it
/// ([`ApplyOptions::lower_layers`]).
fn both_ways(
    base: &Path,
    layers: &[Vec<u8>],
    xattrs: OverlayXattrs,
    with_lowers: bool,
) -> (Vec<String>, Vec<String>) {
    let flat = fresh(base, "flat");
    let mut lowers = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let diff_id = sha256(layer);
        apply_layer(
            &flat,
            &layer[..],
            &MediaType::ImageLayer,
            Some(&diff_id),
            &ApplyOptions::new(),
        )
        .unwrap_or_else(|e| panic!("layer {i} in remove form: {e}"));
        let snap = fresh(base, &format!("snap{i}"));
        let report = apply_layer(
            &snap,
            &layer[..],
            &MediaType::ImageLayer,
            Some(&diff_id),
            &ApplyOptions::new()
                .whiteouts(Whiteouts::Overlay(xattrs))
                .lower_layers(if with_lowers {
                    lowers.clone()
                } else {
                    Vec::new()
                }),
        )
        .unwrap_or_else(|e| panic!("layer {i} in overlay form: {e}"));
        if report.hides_lower_layers {
            lowers.clear();
        }
        lowers.insert(0, snap);
    }
    if lowers.len() == 1 {
        // overlayfs mounts without an upper layer only over two lowers or more.
        lowers.push(fresh(base, "empty"));
    }
    let merged = fresh(base, "merged");
    let mount = Mount::new(&lowers, &merged, xattrs);
    let (mounted, ghosts) = tree_and_ghosts(&merged);
    drop(mount);
    assert_eq!(names(&merged), Vec::<String>::new(), "unmounted");
    let flat = tree(&flat);
    for ghost in &ghosts {
        // Each is a whiteout in one of the snapshots, and nothing in the applied tree.
        assert!(
            lowers
                .iter()
                .any(|l| std::fs::symlink_metadata(l.join(ghost))
                    .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)),
            "{ghost} is listed but is no whiteout"
        );
        assert!(
            !flat.iter().any(|l| l.starts_with(&format!("{ghost} "))),
            "{ghost} is in the applied tree"
        );
    }
    (flat, mounted)
}

/// Three layers with every change layer.md describes: additions, modifications, whiteouts
/// of files and of whole trees, an opaque directory, a directory deleted and made again,
/// entries replacing entries of other types (each way), hard links, devices, fifos, owners,
/// set-id modes and xattrs.
fn three_layers() -> Vec<Vec<u8>> {
    let l1 = tar(&[
        E::Dir("etc/"),
        E::File("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        E::File("etc/hosts", b"127.0.0.1 localhost\n"),
        E::Dir("bin/"),
        E::FileMode("bin/busybox", b"#!busybox", 0o755),
        E::Hardlink("bin/sh", "bin/busybox"),
        E::Symlink("lib", "usr/lib"),
        E::Dir("usr/"),
        E::Dir("usr/lib/"),
        E::File("usr/lib/libc.so", b"libc"),
        E::File("usr/lib/libm.so", b"libm"),
        E::Dir("var/"),
        E::Dir("var/cache/"),
        E::File("var/cache/a", b"a"),
        E::Dir("var/cache/sub/"),
        E::File("var/cache/sub/b", b"b"),
        E::Dir("opt/"),
        E::File("opt/tool", b"a file, a directory later"),
        E::Dir("data/"),
        E::File("data/x", b"under a directory that becomes a file"),
        E::Symlink("link", "etc"),
        E::Dir("gone/"),
        E::Dir("gone/deep/"),
        E::File("gone/deep/f", b"f"),
        E::Dir("again/"),
        E::File("again/old", b"old"),
        E::Dir("dev/"),
        E::Char("dev/null", 1, 3),
        E::Fifo("dev/fifo"),
        E::DirMode("tmp/", 0o1777),
        E::FileMode("setuid", b"suid", 0o4755),
        E::FileMode("bin/su", b"su", 0o4755),
        E::Pax(
            "note",
            b"note",
            vec![
                ("uid", b"1000".as_slice()),
                ("gid", b"1001".as_slice()),
                ("SCHILY.xattr.user.note", b"hello".as_slice()),
            ],
        ),
        E::Pax(
            "owned",
            b"owned",
            vec![
                ("uid", b"1000".as_slice()),
                ("gid", b"1001".as_slice()),
                ("SCHILY.xattr.user.note", b"hello".as_slice()),
            ],
        ),
    ]);
    let l2 = tar(&[
        E::Dir("etc/"),
        E::File("etc/.wh.passwd", b""),
        E::File("etc/hosts", b"10.0.0.1 modified\n"),
        E::Dir("var/"),
        E::Dir("var/cache/"),
        E::File("var/cache/.wh..wh..opq", b""),
        E::File("var/cache/new", b"new"),
        E::Dir("opt/"),
        E::Dir("opt/tool/"),
        E::File("opt/tool/bin", b"now a directory"),
        E::File("data", b"now a file"),
        E::File(".wh.gone", b""),
        E::File("mine", b"stays"),
        E::File(".wh.mine", b""),
        E::File(".wh.again", b""),
        E::Dir("again/"),
        E::File("again/new", b"new"),
        E::Dir("bin/"),
        E::File("bin/sh2", b"#!sh2"),
        E::Hardlink("bin/sh3", "bin/sh2"),
        E::File("bin/.wh.sh", b""),
        E::DirMode("tmp/", 0o1777),
        E::File("tmp/scratch", b"s"),
    ]);
    let l3 = tar(&[
        E::Dir("link/"),
        E::File("link/f", b"a directory where a symlink was"),
        E::Dir("etc/"),
        E::File("etc/passwd", b"root:x:0:0::/root:/bin/ash\n"),
        E::Dir("data/"),
        E::File("data/y", b"a directory again, without the first one's x"),
        E::Dir("var/"),
        E::Dir("var/cache/"),
        E::File("var/cache/.wh.new", b""),
        E::Dir("usr/"),
        E::Dir("usr/lib/"),
        E::File("usr/lib/.wh.libc.so", b""),
        E::Dir("dev/"),
        E::File("dev/.wh.fifo", b""),
        E::File(".wh.setuid", b""),
        E::Dir("setuid/"),
        E::File("setuid/inner", b"i"),
        E::File("owned", b"replaced, owner root"),
    ]);
    vec![l1, l2, l3]
}

#[test]
fn three_layers_mounted_with_overlayfs_match_the_applied_tree() {
    assert_root();
    for (xattrs, with_lowers) in [
        (OverlayXattrs::Trusted, false),
        (OverlayXattrs::User, false),
        (OverlayXattrs::Trusted, true),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (flat, mounted) = both_ways(tmp.path(), &three_layers(), xattrs, with_lowers);
        assert_eq!(mounted, flat, "{xattrs:?}");
        // What the comparison shows is the image, not two empty trees.
        let has = |prefix: &str| flat.iter().any(|l| l.starts_with(prefix));
        assert!(has("etc/passwd file 27 "), "{flat:#?}");
        assert!(has("data/y file"));
        assert!(!has("data/x"));
        assert!(!has("gone"));
        assert!(!has("var/cache/a"));
        assert!(!has("var/cache/new"));
        assert!(!has("again/old"));
        assert!(has("again/new"));
        assert!(has("mine file"));
        assert!(has("dev/null char 103"));
        assert!(!has("dev/fifo"));
        assert!(has("lib link -> usr/lib"));
        assert!(has("link dir"));
        assert!(has("bin/sh3 file"));
        assert!(!has("bin/sh "));
        assert!(has("owned file"));
        assert!(has("bin/su file 2 "));
        assert!(
            flat.iter()
                .any(|l| l.starts_with("bin/su ") && l.contains("mode=4755"))
        );
        assert!(flat.iter().any(|l| l.starts_with("note ")
            && l.contains("owner=1000:1001")
            && l.ends_with("user.note=hello")));
        assert_eq!(flat.len(), 32, "{flat:#?}");
    }
}

// ---------------------------------------------------------------------------------------
// The same, for random stacks of layers.

/// One change in a generated layer; paths are indexes into a small vocabulary, so layers
/// collide often (a name made, whited out, replaced by another type, made again).
#[derive(Clone, Debug)]
enum Op {
    File(Vec<usize>, usize),
    Dir(Vec<usize>),
    Symlink(Vec<usize>, usize),
    Fifo(Vec<usize>),
    Whiteout(Vec<usize>),
    /// An opaque marker in this directory (the root when empty).
    Opaque(Vec<usize>),
    /// A file, then a hard link to it.
    Link(Vec<usize>, Vec<usize>),
    /// A hard link to whatever is at a path, maybe in a lower layer (with lower layers
    /// only).
    BareLink(Vec<usize>, Vec<usize>),
}

/// An entry with owned strings, for [`E`].
enum Owned {
    File(String, &'static [u8]),
    Dir(String),
    Symlink(String, &'static str),
    Fifo(String),
    Hardlink(String, String),
}

fn path_of(p: &[usize]) -> String {
    p.iter()
        .map(|&i| ["a", "b", "c"][i])
        .collect::<Vec<_>>()
        .join("/")
}

/// A layer as tools write them: every entry comes after directory entries for all its
/// parents (which also keeps entries from being written through symlinks, where one layer
/// alone cannot know what a lower layer's link points to).
fn generated_layer(ops: &[Op]) -> Vec<u8> {
    fn parents(p: &[usize], out: &mut Vec<Owned>) {
        for i in 1..p.len() {
            out.push(Owned::Dir(format!("{}/", path_of(&p[..i]))));
        }
    }
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::File(p, n) => {
                parents(p, &mut out);
                out.push(Owned::File(path_of(p), [&b"1"[..], b"22", b"333"][*n]));
            }
            Op::Dir(p) => {
                parents(p, &mut out);
                out.push(Owned::Dir(format!("{}/", path_of(p))));
            }
            Op::Symlink(p, t) => {
                parents(p, &mut out);
                // Dangling: remove form follows a symlink on the way to a link's source,
                // which one layer alone cannot.
                out.push(Owned::Symlink(path_of(p), ["x", "a/x", "/x", "../x"][*t]));
            }
            Op::Fifo(p) => {
                parents(p, &mut out);
                out.push(Owned::Fifo(path_of(p)));
            }
            Op::Whiteout(p) => {
                parents(p, &mut out);
                let (dir, name) = p.split_at(p.len() - 1);
                let dir = if dir.is_empty() {
                    String::new()
                } else {
                    format!("{}/", path_of(dir))
                };
                out.push(Owned::File(format!("{dir}.wh.{}", path_of(name)), b""));
            }
            Op::Opaque(p) => {
                if p.is_empty() {
                    out.push(Owned::File(".wh..wh..opq".into(), b""));
                } else {
                    parents(p, &mut out);
                    out.push(Owned::Dir(format!("{}/", path_of(p))));
                    out.push(Owned::File(format!("{}/.wh..wh..opq", path_of(p)), b""));
                }
            }
            Op::Link(source, link) => {
                parents(source, &mut out);
                out.push(Owned::File(path_of(source), b"linked"));
                parents(link, &mut out);
                out.push(Owned::Hardlink(path_of(link), path_of(source)));
            }
            Op::BareLink(source, link) => {
                parents(link, &mut out);
                out.push(Owned::Hardlink(path_of(link), path_of(source)));
            }
        }
    }
    let entries: Vec<E<'_>> = out
        .iter()
        .map(|o| match o {
            Owned::File(p, d) => E::File(p, d),
            Owned::Dir(p) => E::Dir(p),
            Owned::Symlink(p, t) => E::Symlink(p, t),
            Owned::Fifo(p) => E::Fifo(p),
            Owned::Hardlink(p, s) => E::Hardlink(p, s),
        })
        .collect();
    tar(&entries)
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let path = || prop::collection::vec(0..3usize, 1..=3);
    prop_oneof![
        3 => (path(), 0..3usize).prop_map(|(p, n)| Op::File(p, n)),
        3 => path().prop_map(Op::Dir),
        1 => (path(), 0..4usize).prop_map(|(p, t)| Op::Symlink(p, t)),
        1 => path().prop_map(Op::Fifo),
        3 => path().prop_map(Op::Whiteout),
        2 => prop::collection::vec(0..3usize, 0..=2).prop_map(Op::Opaque),
        1 => (path(), path()).prop_map(|(s, l)| Op::Link(s, l)),
        1 => (path(), path()).prop_map(|(s, l)| Op::BareLink(s, l)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 96,
        failure_persistence: None,
        // Remove form refuses many generated links (to nothing, to a directory).
        max_global_rejects: 100_000,
        ..proptest::test_runner::Config::default()
    })]

    /// Any stack of three such layers: where remove form applies them, overlay form does
    /// too (given the lower layers when a link reaches into them), and the mounted
    /// snapshots show the same tree.
    #[test]
    fn random_stacks_mount_as_they_apply(
        layers in proptest::collection::vec(proptest::collection::vec(op(), 0..10), 3),
        with_lowers in proptest::bool::ANY,
    ) {
        assert_root();
        let layers: Vec<Vec<u8>> = layers
            .iter()
            .map(|ops| {
                let ops: Vec<Op> = ops
                    .iter()
                    .filter(|op| with_lowers || !matches!(op, Op::BareLink(..)))
                    .cloned()
                    .collect();
                generated_layer(&ops)
            })
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        // Layers remove form refuses (a hard link whose source a later entry replaced by a
        // directory, say) say nothing about overlay form.
        let flat = fresh(tmp.path(), "probe");
        for layer in &layers {
            let applied = apply_layer(
                &flat, &layer[..], &MediaType::ImageLayer, None, &ApplyOptions::new(),
            );
            proptest::prop_assume!(applied.is_ok());
        }
        let (flat, mounted) = both_ways(tmp.path(), &layers, OverlayXattrs::Trusted, with_lowers);
        proptest::prop_assert_eq!(mounted, flat);
    }
}

/// Layers as [`build_layer`](ocikit_image::build_layer) and
/// [`build_diff_layer`](ocikit_image::build_diff_layer) write them from three real trees
/// (gzip, with the whiteouts and opaque markers the differences need): the mounted snapshots
/// show the last tree, as the layers applied in order do.
#[test]
fn built_diff_layers_mount_as_the_tree_they_came_from() {
    use std::os::unix::fs::symlink;
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let t = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir(&d).unwrap();
        d
    };
    let (a, b, c) = (t("a"), t("b"), t("c"));
    let write = |p: PathBuf, data: &str| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    // A: a small system.
    for (p, d) in [
        ("etc/passwd", "root:x:0:0\n"),
        ("etc/hosts", "localhost\n"),
        ("bin/busybox", "#!bb"),
        ("usr/lib/libc.so", "libc"),
        ("var/cache/1", "1"),
        ("var/cache/2", "2"),
        ("var/cache/sub/3", "3"),
        ("opt/tool", "file"),
        ("data/x", "x"),
    ] {
        write(a.join(p), d);
    }
    std::fs::hard_link(a.join("bin/busybox"), a.join("bin/sh")).unwrap();
    symlink("usr/lib", a.join("lib")).unwrap();
    // B: A with a file deleted, a directory emptied and refilled (opaque), a file turned
    // into a directory and a directory into a file, a tree deleted, a link added.
    Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", a.display()))
        .arg(&b)
        .status()
        .unwrap();
    std::fs::remove_file(b.join("etc/passwd")).unwrap();
    std::fs::remove_dir_all(b.join("var/cache")).unwrap();
    write(b.join("var/cache/new"), "new");
    std::fs::remove_file(b.join("opt/tool")).unwrap();
    write(b.join("opt/tool/bin"), "now a directory");
    std::fs::remove_dir_all(b.join("data")).unwrap();
    write(b.join("data"), "now a file");
    // New links to a file of A: build_diff_layer writes them as links to a lower layer's
    // file, which overlay form copies from the lower layers it is given.
    std::fs::hard_link(b.join("bin/busybox"), b.join("bin/ls")).unwrap();
    std::fs::hard_link(b.join("bin/busybox"), b.join("bin/cat")).unwrap();
    write(b.join("bin/new"), "#!new");
    std::fs::hard_link(b.join("bin/new"), b.join("bin/new2")).unwrap();
    // C: B with the file back, the symlink made a directory, the file a directory again.
    Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", b.display()))
        .arg(&c)
        .status()
        .unwrap();
    write(c.join("etc/passwd"), "root:x:0:0:new\n");
    std::fs::remove_file(c.join("lib")).unwrap();
    write(c.join("lib/own"), "own");
    std::fs::remove_file(c.join("data")).unwrap();
    write(c.join("data/y"), "y");
    std::fs::remove_file(c.join("var/cache/new")).unwrap();

    let options = ocikit_image::BuildOptions::new();
    let mut layers = Vec::new();
    let mut blob = Vec::new();
    let built = ocikit_image::build_layer(&a, &mut blob, &options).unwrap();
    layers.push((blob, built));
    for (base, changed) in [(&a, &b), (&b, &c)] {
        let mut blob = Vec::new();
        let built = ocikit_image::build_diff_layer(base, changed, &mut blob, &options).unwrap();
        layers.push((blob, built));
    }
    let work = t("work");
    let mut lowers = Vec::new();
    for (i, (blob, built)) in layers.iter().enumerate() {
        let snap = fresh(&work, &format!("snap{i}"));
        if i == 1 {
            // Without the lower layers, the link to a lower file cannot be written.
            let alone = fresh(&work, "alone");
            let e = apply_layer(
                &alone,
                &blob[..],
                built.descriptor.media_type(),
                Some(&built.diff_id),
                &ApplyOptions::new().whiteouts(TRUSTED),
            )
            .unwrap_err();
            assert!(
                matches!(&e, Error::Apply { op: "link", source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound),
                "{e:?}"
            );
        }
        let report = apply_layer(
            &snap,
            &blob[..],
            built.descriptor.media_type(),
            Some(&built.diff_id),
            &ApplyOptions::new()
                .whiteouts(TRUSTED)
                .lower_layers(lowers.clone()),
        )
        .unwrap();
        assert!(!report.hides_lower_layers);
        lowers.insert(0, snap);
    }
    // The two new links to A's busybox are one copy in the second layer.
    let ino = |p: &str| std::fs::metadata(work.join("snap1").join(p)).unwrap().ino();
    assert_eq!(ino("bin/ls"), ino("bin/cat"));
    // The second layer has the whiteouts and the opaque marker the changes need.
    assert_whiteout(&work.join("snap1/etc/passwd"));
    assert_opaque(&work.join("snap1/var/cache"), "trusted.overlay.opaque");
    let merged = fresh(&work, "merged");
    let mount = Mount::new(&lowers, &merged, OverlayXattrs::Trusted);
    let mounted = tree(&merged);
    drop(mount);
    assert_eq!(mounted, tree(&c));
    assert!(
        mounted.iter().any(|l| l.starts_with("lib/own file")),
        "{mounted:#?}"
    );
    assert!(!mounted.iter().any(|l| l.starts_with("var/cache/1")));
}

/// Layers umoci wrote (`umoci repack` after creating, changing and deleting files and
/// directories), each applied in overlay form to its own snapshot and mounted: the tree is
/// umoci's own unpack of the image.
#[test]
fn umoci_layers_mount_as_umoci_unpacks_them() {
    use std::os::unix::fs::symlink;
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let image = format!("{}:t", layout.display());
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);
    let step = |n: u32, change: &dyn Fn(&Path)| {
        let bundle = tmp.path().join(format!("bundle{n}"));
        let b = bundle.to_str().unwrap().to_owned();
        umoci(&["unpack", "--image", &image, &b]);
        change(&bundle.join("rootfs"));
        umoci(&["repack", "--image", &image, &b]);
    };
    step(1, &|rootfs| {
        std::fs::create_dir_all(rootfs.join("etc/conf.d")).unwrap();
        std::fs::write(rootfs.join("etc/conf.d/a"), b"a").unwrap();
        std::fs::write(rootfs.join("etc/conf.d/b"), b"b").unwrap();
        std::fs::create_dir_all(rootfs.join("var/lib/app/deep")).unwrap();
        std::fs::write(rootfs.join("var/lib/app/state"), b"1").unwrap();
        std::fs::write(rootfs.join("var/lib/app/deep/x"), b"x").unwrap();
        std::fs::write(rootfs.join("etc/motd"), b"hello").unwrap();
        symlink("motd", rootfs.join("etc/motd.link")).unwrap();
        std::fs::create_dir(rootfs.join("srv")).unwrap();
        std::fs::write(rootfs.join("srv/file"), b"a file, then a directory").unwrap();
        // `var` has attributes of its own, which later layers (that change `var/lib` only)
        // must not lose.
        std::fs::set_permissions(rootfs.join("var"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        std::os::unix::fs::chown(rootfs.join("var"), Some(7), Some(8)).unwrap();
        let status = Command::new("touch")
            .args(["-d", "@1000000000"])
            .arg(rootfs.join("var"))
            .status()
            .unwrap();
        assert!(status.success());
    });
    step(2, &|rootfs| {
        std::fs::write(rootfs.join("etc/motd"), b"changed").unwrap();
        std::fs::remove_file(rootfs.join("etc/conf.d/a")).unwrap();
        std::fs::remove_dir_all(rootfs.join("var/lib/app")).unwrap();
        std::fs::remove_file(rootfs.join("etc/motd.link")).unwrap();
        std::fs::create_dir(rootfs.join("etc/motd.link")).unwrap();
        std::fs::write(rootfs.join("etc/motd.link/inside"), b"i").unwrap();
        std::fs::remove_file(rootfs.join("srv/file")).unwrap();
        std::fs::create_dir(rootfs.join("srv/file")).unwrap();
        std::fs::write(rootfs.join("srv/file/in"), b"in").unwrap();
        std::fs::set_permissions(
            rootfs.join("etc/conf.d/b"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    });
    step(3, &|rootfs| {
        // A deleted directory comes back with other content.
        std::fs::create_dir_all(rootfs.join("var/lib/app")).unwrap();
        std::fs::write(rootfs.join("var/lib/app/other"), b"2").unwrap();
    });

    let layers = image_layers(&layout, "t");
    assert!(layers.len() >= 3, "umoci wrote {} layers", layers.len());
    let work = fresh(tmp.path(), "work");
    let mut lowers = Vec::new();
    let mut whiteouts = 0;
    for (i, (layer, diff_id)) in layers.iter().enumerate() {
        let blob =
            std::fs::File::open(layout.join("blobs/sha256").join(layer.digest().digest())).unwrap();
        let verified = ocikit_image::VerifyingReader::for_descriptor(blob, layer).unwrap();
        let snap = fresh(&work, &format!("snap{i}"));
        // umoci lists the directory of each change but not the directories above it
        // (`var/lib` for a change in it, not `var`): with the lower layers given, those take
        // the lower directory's attributes, as they keep them in remove form.
        let r = apply_layer(
            &snap,
            verified,
            layer.media_type(),
            Some(diff_id),
            &ApplyOptions::new()
                .whiteouts(TRUSTED)
                .lower_layers(lowers.clone()),
        )
        .unwrap();
        whiteouts += r.whiteouts;
        lowers.insert(0, snap);
    }
    assert!(whiteouts >= 2, "umoci's layers held {whiteouts} whiteouts");
    if lowers.len() == 1 {
        lowers.push(fresh(&work, "empty"));
    }
    let merged = fresh(&work, "merged");
    let mount = Mount::new(&lowers, &merged, OverlayXattrs::Trusted);
    let mounted = tree(&merged);
    drop(mount);
    let check = tmp.path().join("check");
    umoci(&["unpack", "--image", &image, check.to_str().unwrap()]);
    assert_eq!(mounted, tree(&check.join("rootfs")));
    let has = |p: &str| mounted.iter().any(|l| l.starts_with(p));
    assert!(has("var/lib/app/other file"), "{mounted:#?}");
    assert!(!has("var/lib/app/state"));
    assert!(!has("var/lib/app/deep"));
    assert!(!has("etc/conf.d/a"));
    assert!(has("srv/file/in file"));
    assert!(
        has("var dir mode=750 owner=7:8 mtime=1000000000"),
        "{mounted:#?}"
    );
}

/// With `lower_layers_pending`, a layer that needs nothing from the layers below unpacks as
/// without it, and one that does (a directory it only implies, a hard link to a file it does
/// not hold) stops with `NeedsLowerLayers` naming the path.
#[test]
fn pending_lower_layers_stop_only_the_layers_that_need_them() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    let pending = |dir: &Path, entries: &[E<'_>]| {
        apply_layer(
            dir,
            &tar(entries)[..],
            &MediaType::ImageLayer,
            None,
            &ApplyOptions::new()
                .whiteouts(TRUSTED)
                .lower_layers_pending(true),
        )
    };
    let alone = [
        E::Dir("etc/"),
        E::File("etc/motd", b"hi"),
        E::Hardlink("etc/motd.link", "etc/motd"),
        E::File(".wh.gone", b""),
        E::Dir("o/"),
        E::File("o/.wh..wh..opq", b""),
    ];
    let with = fresh(tmp.path(), "with");
    pending(&with, &alone).unwrap();
    let without = fresh(tmp.path(), "without");
    apply_with(&without, &alone, TRUSTED).unwrap();
    assert_eq!(tree(&with), tree(&without));

    let implied = fresh(tmp.path(), "implied");
    match pending(&implied, &[E::File("var/lib/x", b"x")]) {
        Err(Error::NeedsLowerLayers { path, .. }) => assert_eq!(path, "var"),
        other => panic!("{other:?}"),
    }
    let linked = fresh(tmp.path(), "linked");
    match pending(
        &linked,
        &[E::Dir("bin/"), E::Hardlink("bin/ls", "bin/busybox")],
    ) {
        Err(Error::NeedsLowerLayers { path, .. }) => assert_eq!(path, "bin/busybox"),
        other => panic!("{other:?}"),
    }
}

/// An upper directory (what a container wrote through an overlay mount) becomes a layer:
/// 0/0 devices and `overlay.whiteout` files become `.wh.` entries, an opaque directory gets
/// `.wh..wh..opq` after its own entry, overlayfs' attributes are dropped and other xattrs kept;
/// a redirected directory or a metadata-only copy is refused, naming the entry. The layer,
/// applied in overlay form, gives back the same directory.
#[test]
fn an_upper_directory_becomes_a_layer() {
    use ocikit_image::{BuildOptions, build_overlay_layer};
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let upper = fresh(dir.path(), "upper");
    std::fs::create_dir_all(upper.join("etc/opaque")).unwrap();
    std::fs::write(upper.join("etc/opaque/new"), "new").unwrap();
    rustix::fs::lsetxattr(
        upper.join("etc/opaque"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        upper.join("etc"),
        "trusted.overlay.impure",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        upper.join("etc"),
        "user.kept",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("etc/gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::write(upper.join("xwhiteout"), "").unwrap();
    rustix::fs::lsetxattr(
        upper.join("xwhiteout"),
        "trusted.overlay.whiteout",
        b"",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    std::fs::write(upper.join("file"), "content").unwrap();
    std::fs::hard_link(upper.join("file"), upper.join("link")).unwrap();

    let mut blob = Vec::new();
    let built = build_overlay_layer(
        &upper,
        OverlayXattrs::Trusted,
        &mut blob,
        &BuildOptions::new(),
    )
    .unwrap();
    let mut names = Vec::new();
    let mut gz = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    for e in gz.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let xattrs: Vec<String> = e
            .pax_extensions()
            .unwrap()
            .into_iter()
            .flatten()
            .map(|x| x.unwrap().key().unwrap().to_owned())
            .filter(|k| k.starts_with("SCHILY.xattr."))
            .collect();
        names.push(format!("{path} {:?} {xattrs:?}", e.header().entry_type()));
    }
    assert_eq!(
        names,
        [
            "etc/ Directory [\"SCHILY.xattr.user.kept\"]",
            "etc/.wh.gone Regular []",
            "etc/opaque/ Directory []",
            "etc/opaque/.wh..wh..opq Regular []",
            "etc/opaque/new Regular []",
            "file Regular []",
            "link Link []",
            ".wh.xwhiteout Regular []",
        ]
    );
    assert_eq!(built.entries, 8);

    // Applied in overlay form, the layer gives back the upper directory's view.
    let back = fresh(dir.path(), "back");
    apply_layer(
        &back,
        &blob[..],
        &MediaType::ImageLayerGzip,
        Some(&built.diff_id),
        &ApplyOptions::new().whiteouts(TRUSTED),
    )
    .unwrap();
    assert_whiteout(&back.join("etc/gone"));
    assert_whiteout(&back.join("xwhiteout"));
    assert_opaque(&back.join("etc/opaque"), "trusted.overlay.opaque");
    assert_eq!(std::fs::read(back.join("etc/opaque/new")).unwrap(), b"new");

    // Content in a lower layer cannot be expressed.
    rustix::fs::lsetxattr(
        upper.join("etc/opaque"),
        "trusted.overlay.redirect",
        b"/elsewhere",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let err = build_overlay_layer(
        &upper,
        OverlayXattrs::Trusted,
        &mut Vec::new(),
        &BuildOptions::new(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Overlay { path, .. } if path == "etc/opaque"),
        "{err:?}"
    );
}
