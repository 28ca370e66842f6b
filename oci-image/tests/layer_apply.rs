//! Applying layers: what image-spec `layer.md` asks (entries, whiteouts, opaque directories,
//! hard links, metadata), verification, and every hostile entry we know of, each checked with
//! sentinels outside the root that must stay untouched.
//!
//! Some checks (owners, device nodes) need root; CI runs as root, and those tests fail rather
//! than skip when run as anyone else.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;

use common::{E, gzip, listing, tar};
use ocikit_image::oci_spec::image::MediaType;
use ocikit_image::{ApplyOptions, ApplyReport, Error, VerifyingReader, apply_layer, sha256};

/// A root inside a temp dir, with a sentinel file and directory next to it (outside).
struct Scene {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("sentinel"), b"untouched").unwrap();
        Scene {
            _tmp: tmp,
            root,
            outside,
        }
    }

    fn apply(&self, entries: &[E<'_>]) -> Result<ApplyReport, Error> {
        apply_layer(
            &self.root,
            &tar(entries)[..],
            &MediaType::ImageLayer,
            None,
            &ApplyOptions::new(),
        )
    }

    /// The outside world is as it was: same files, same content, nothing added.
    fn assert_outside_untouched(&self) {
        assert_eq!(
            listing(&self.outside),
            [format!("sentinel file 644 9 {}", sha256(b"untouched"))],
            "something outside the root changed"
        );
        assert_eq!(
            std::fs::metadata(self.outside.join("sentinel"))
                .unwrap()
                .nlink(),
            1,
            "the sentinel gained a hard link"
        );
        // Nothing was created next to the root either.
        let mut siblings: Vec<_> = std::fs::read_dir(self.root.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        siblings.sort();
        assert_eq!(siblings, ["outside", "root"]);
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.root.join(rel)).unwrap()
    }

    fn outside_abs(&self) -> String {
        self.outside.display().to_string()
    }
}

fn fix_sentinel_mode(scene: &Scene) {
    // The sentinel is created with the process umask; make the listing predictable.
    std::fs::set_permissions(
        scene.outside.join("sentinel"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
}

fn scene() -> Scene {
    let s = Scene::new();
    fix_sentinel_mode(&s);
    s
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ----------------------------------------------------------------------------------------
// Hostile entries

#[test]
fn dotdot_above_the_root_is_refused() {
    let s = scene();
    for path in [
        "../outside/sentinel",
        "a/../../outside/sentinel",
        "/../outside/sentinel",
    ] {
        let e = s.apply(&[E::File(path, b"pwned")]).unwrap_err();
        assert!(matches!(e, Error::UnsafeEntry { .. }), "{path}: {e:?}");
    }
    s.assert_outside_untouched();
}

#[test]
fn absolute_paths_stay_inside() {
    let s = scene();
    let abs = format!("{}/sentinel", s.outside_abs());
    s.apply(&[E::File(&abs, b"contained")]).unwrap();
    assert_eq!(s.read(abs.trim_start_matches('/')), b"contained");
    s.assert_outside_untouched();
}

#[test]
fn symlinked_parent_in_the_same_layer_stays_inside() {
    let s = scene();
    let abs = s.outside_abs();
    s.apply(&[
        E::Symlink("up", "../../../../../../.."),
        E::Symlink("abs", &abs),
        E::File("up/sentinel", b"one"),
        E::Dir("abs/"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    // `up` resolves to the root itself, so the file lands at <root>/sentinel; the directory
    // entry `abs/` replaces the (dangling) link instead of following it.
    assert_eq!(s.read("sentinel"), b"one");
    assert!(
        std::fs::symlink_metadata(s.root.join("abs"))
            .unwrap()
            .is_dir()
    );
    s.assert_outside_untouched();
}

#[test]
fn symlink_from_a_lower_layer_stays_inside() {
    let s = scene();
    let abs = s.outside_abs();
    s.apply(&[E::Symlink("evil", &abs)]).unwrap();
    // The link's target exists inside the root once the layer makes it; the upper layer
    // writes through the link, which must mean <root><outside>/sentinel.
    let inside_target = abs.trim_start_matches('/').to_owned() + "/";
    s.apply(&[E::Dir(&inside_target)]).unwrap();
    s.apply(&[E::File("evil/sentinel", b"contained")]).unwrap();
    assert_eq!(s.read(&format!("{inside_target}sentinel")), b"contained");
    s.assert_outside_untouched();
}

#[test]
fn dangling_symlinked_parent_is_an_error_not_an_escape() {
    let s = scene();
    let abs = s.outside_abs();
    let e = s
        .apply(&[E::Symlink("evil", &abs), E::File("evil/new", b"x")])
        .unwrap_err();
    assert!(matches!(e, Error::Apply { .. }), "{e:?}");
    assert!(!s.outside.join("new").exists());
    s.assert_outside_untouched();
}

#[test]
fn file_replaces_a_symlink_instead_of_writing_through_it() {
    let s = scene();
    let target = format!("{}/sentinel", s.outside_abs());
    s.apply(&[E::Symlink("f", &target)]).unwrap();
    s.apply(&[E::File("f", b"replaced")]).unwrap();
    let m = std::fs::symlink_metadata(s.root.join("f")).unwrap();
    assert!(m.is_file());
    assert_eq!(s.read("f"), b"replaced");
    // Same within one layer.
    s.apply(&[E::Symlink("g", &target), E::File("g", b"again")])
        .unwrap();
    assert_eq!(s.read("g"), b"again");
    s.assert_outside_untouched();
}

#[test]
fn directory_entry_replaces_a_symlink() {
    let s = scene();
    let abs = s.outside_abs();
    s.apply(&[E::Symlink("d", &abs), E::Dir("d/"), E::File("d/x", b"in")])
        .unwrap();
    assert!(
        std::fs::symlink_metadata(s.root.join("d"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(s.read("d/x"), b"in");
    s.assert_outside_untouched();
}

#[test]
fn hardlink_sources_outside_are_refused() {
    let s = scene();
    let abs = format!("{}/sentinel", s.outside_abs());
    // `..` above the root.
    let e = s
        .apply(&[E::Hardlink("h", "../outside/sentinel")])
        .unwrap_err();
    assert!(matches!(e, Error::UnsafeEntry { .. }), "{e:?}");
    // An absolute source is a path inside the root, where it does not exist.
    let e = s.apply(&[E::Hardlink("h", &abs)]).unwrap_err();
    assert!(matches!(e, Error::Apply { .. }), "{e:?}");
    // Through a symlink to the outside directory.
    let e = s
        .apply(&[
            E::Symlink("s", &s.outside_abs()),
            E::Hardlink("h", "s/sentinel"),
        ])
        .unwrap_err();
    assert!(matches!(e, Error::Apply { .. }), "{e:?}");
    // A hard link to a symlink that points outside links the symlink, not its target.
    s.apply(&[E::Symlink("l", &abs), E::Hardlink("h2", "l")])
        .unwrap();
    assert!(
        std::fs::symlink_metadata(s.root.join("h2"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    s.assert_outside_untouched();
}

#[test]
fn whiteouts_cannot_reach_outside() {
    let s = scene();
    for bad in [".wh..", "a/.wh..", ".wh.", ".wh.."] {
        let e = s.apply(&[E::File(bad, b"")]).unwrap_err();
        assert!(matches!(e, Error::UnsafeEntry { .. }), "{bad}: {e:?}");
    }
    let e = s.apply(&[E::File("../.wh.outside", b"")]).unwrap_err();
    assert!(matches!(e, Error::UnsafeEntry { .. }), "{e:?}");
    // Through a symlinked parent, a whiteout removes inside the root only.
    std::fs::create_dir_all(s.root.join(s.outside_abs().trim_start_matches('/'))).unwrap();
    s.apply(&[E::Symlink("s", &s.outside_abs())]).unwrap();
    s.apply(&[
        E::File("s/.wh.sentinel", b""),
        E::File("s/.wh..wh..opq", b""),
    ])
    .unwrap();
    // An opaque whiteout at the top of a symlink to the outside empties nothing outside.
    s.assert_outside_untouched();
}

#[test]
fn existing_hardlinks_are_not_written_through() {
    let s = scene();
    s.apply(&[E::File("a", b"original"), E::Hardlink("b", "a")])
        .unwrap();
    assert_eq!(std::fs::metadata(s.root.join("a")).unwrap().nlink(), 2);
    s.apply(&[E::File("b", b"new")]).unwrap();
    assert_eq!(s.read("a"), b"original");
    assert_eq!(s.read("b"), b"new");
}

#[test]
fn a_non_directory_cannot_replace_the_root() {
    let s = scene();
    for e in [E::File("./", b""), E::Symlink(".", "/")] {
        let err = s.apply(&[e]).unwrap_err();
        assert!(matches!(err, Error::UnsafeEntry { .. }), "{err:?}");
    }
    assert!(s.root.is_dir());
    s.assert_outside_untouched();
}

// ----------------------------------------------------------------------------------------
// What layer.md asks

#[test]
fn files_dirs_links_and_missing_parents() {
    let s = scene();
    let r = s
        .apply(&[
            E::Dir("etc/"),
            E::FileMode("etc/hostname", b"box\n", 0o600),
            E::File("deep/er/file", b"parents made"),
            E::Symlink("etc/link", "hostname"),
            E::Hardlink("etc/hard", "etc/hostname"),
            E::Fifo("run.fifo"),
        ])
        .unwrap();
    assert_eq!(s.read("etc/hostname"), b"box\n");
    assert_eq!(s.read("etc/link"), b"box\n");
    assert_eq!(s.read("deep/er/file"), b"parents made");
    let m = std::fs::metadata(s.root.join("etc/hostname")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);
    assert_eq!(m.nlink(), 2);
    assert_eq!(m.mtime(), 1_600_000_000);
    assert!(
        std::fs::symlink_metadata(s.root.join("run.fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        (
            r.files,
            r.directories,
            r.symlinks,
            r.hardlinks,
            r.special_files
        ),
        (2, 1, 1, 1, 1)
    );
    assert_eq!(r.entries, 6);
    assert_eq!(
        r.diff_id,
        sha256(&tar(&[
            E::Dir("etc/"),
            E::FileMode("etc/hostname", b"box\n", 0o600),
            E::File("deep/er/file", b"parents made"),
            E::Symlink("etc/link", "hostname"),
            E::Hardlink("etc/hard", "etc/hostname"),
            E::Fifo("run.fifo"),
        ]))
    );
}

#[test]
fn special_modes_and_directory_times() {
    let s = scene();
    s.apply(&[
        E::DirMode("ro/", 0o555),
        E::File("ro/inside", b"written after the read-only dir entry"),
        E::FileMode("bin/su", b"#!", 0o4755),
        E::DirMode("tmp/", 0o1777),
    ])
    .unwrap();
    let mode = |p: &str| std::fs::metadata(s.root.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(mode("bin/su"), 0o4755);
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(
        s.read("ro/inside"),
        b"written after the read-only dir entry"
    );
    // The directory's time is the entry's, though a file was created in it afterwards.
    assert_eq!(
        std::fs::metadata(s.root.join("ro")).unwrap().mtime(),
        1_600_000_000
    );
}

#[test]
fn whiteouts_remove_lower_entries() {
    let s = scene();
    s.apply(&[
        E::File("a", b"1"),
        E::Dir("d/"),
        E::File("d/x", b"2"),
        E::Dir("d/sub/"),
        E::File("d/sub/y", b"3"),
        E::File("keep", b"4"),
    ])
    .unwrap();
    let r = s
        .apply(&[
            E::File(".wh.a", b""),
            E::File(".wh.d", b""),
            E::File(".wh.nothing", b""),
        ])
        .unwrap();
    // Three whiteouts, one of which had nothing to remove.
    assert_eq!(r.whiteouts, 3);
    assert!(!s.root.join("a").exists());
    assert!(!s.root.join("d").exists());
    assert_eq!(s.read("keep"), b"4");
    // Whiteout files themselves are never created.
    assert!(!s.root.join(".wh.a").exists());
}

#[test]
fn whiteout_and_entry_of_the_same_name_in_one_layer() {
    let s = scene();
    s.apply(&[E::File("f", b"lower"), E::File("g", b"lower")])
        .unwrap();
    // Whiteout first, then the new entry: the new entry stays.
    s.apply(&[E::File(".wh.f", b""), E::File("f", b"upper")])
        .unwrap();
    assert_eq!(s.read("f"), b"upper");
    // Entry first, then the whiteout: "whiteout files MUST only apply to resources in
    // lower/parent layers", so the new entry stays too.
    s.apply(&[E::File("g", b"upper"), E::File(".wh.g", b"")])
        .unwrap();
    assert_eq!(s.read("g"), b"upper");
}

#[test]
fn opaque_directories_hide_lower_content_and_keep_this_layers() {
    let s = scene();
    s.apply(&[
        E::Dir("d/"),
        E::File("d/lower1", b"x"),
        E::Dir("d/sub/"),
        E::File("d/sub/lower2", b"x"),
        E::File("other", b"kept"),
    ])
    .unwrap();
    // This layer re-populates d, before and after the opaque marker.
    s.apply(&[
        E::Dir("d/"),
        E::File("d/before", b"b"),
        E::Dir("d/sub/"),
        E::File("d/sub/new", b"n"),
        E::File("d/.wh..wh..opq", b""),
        E::File("d/after", b"a"),
    ])
    .unwrap();
    let mut names: Vec<String> = listing(&s.root.join("d"))
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["after", "before", "sub", "sub/new"]);
    assert_eq!(s.read("other"), b"kept");
    assert!(!s.root.join("d/.wh..wh..opq").exists());
}

#[test]
fn entries_replace_entries_of_another_type() {
    let s = scene();
    s.apply(&[
        E::Dir("was_dir/"),
        E::File("was_dir/child", b"x"),
        E::File("was_file", b"x"),
        E::Symlink("was_link", "nowhere"),
    ])
    .unwrap();
    s.apply(&[
        E::File("was_dir", b"now a file"),
        E::Dir("was_file/"),
        E::Fifo("was_link"),
    ])
    .unwrap();
    assert_eq!(s.read("was_dir"), b"now a file");
    assert!(s.root.join("was_file").is_dir());
    assert!(
        std::fs::symlink_metadata(s.root.join("was_link"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn hardlinks_to_lower_layers() {
    let s = scene();
    s.apply(&[E::File("bin/busybox", b"ELF")]).unwrap();
    s.apply(&[E::Hardlink("bin/sh", "bin/busybox")]).unwrap();
    assert_eq!(
        std::fs::metadata(s.root.join("bin/busybox"))
            .unwrap()
            .nlink(),
        2
    );
    let e = s.apply(&[E::Hardlink("x", "missing")]).unwrap_err();
    assert!(matches!(e, Error::Apply { .. }), "{e:?}");
}

#[test]
fn pax_owner_times_and_xattrs() {
    let s = scene();
    s.apply(&[E::Pax(
        "f",
        b"data",
        vec![
            ("uid", b"1234567".as_slice()),
            ("gid", b"4242".as_slice()),
            ("mtime", b"1700000000.25".as_slice()),
            ("SCHILY.xattr.user.ocikit", b"value".as_slice()),
        ],
    )])
    .unwrap();
    let m = std::fs::metadata(s.root.join("f")).unwrap();
    assert_eq!(m.mtime(), 1_700_000_000);
    assert_eq!(m.mtime_nsec(), 250_000_000);
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(s.root.join("f").as_path(), "user.ocikit", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"value");
    assert!(is_root(), "owner checks need root (CI runs as root)");
    assert_eq!((m.uid(), m.gid()), (1_234_567, 4242));
}

#[test]
fn ownership_can_be_ignored_or_mapped() {
    use ocikit_image::{IdMap, IdRange, Ownership};
    assert!(is_root(), "owner checks need root (CI runs as root)");
    let s = scene();
    let layer = tar(&[E::Pax(
        "f",
        b"",
        vec![("uid", b"10".as_slice()), ("gid", b"20".as_slice())],
    )]);
    let map = IdMap {
        uids: vec![IdRange {
            container: 0,
            host: 100_000,
            size: 65_536,
        }],
        gids: vec![IdRange {
            container: 0,
            host: 200_000,
            size: 65_536,
        }],
    };
    apply_layer(
        &s.root,
        &layer[..],
        &MediaType::ImageLayer,
        None,
        &ApplyOptions::new().ownership(Ownership::Map(map)),
    )
    .unwrap();
    let m = std::fs::metadata(s.root.join("f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (100_010, 200_020));
    apply_layer(
        &s.root,
        &layer[..],
        &MediaType::ImageLayer,
        None,
        &ApplyOptions::new().ownership(Ownership::Ignore),
    )
    .unwrap();
    let m = std::fs::metadata(s.root.join("f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let small = IdMap {
        uids: vec![IdRange {
            container: 0,
            host: 1,
            size: 5,
        }],
        gids: vec![],
    };
    let e = apply_layer(
        &s.root,
        &layer[..],
        &MediaType::ImageLayer,
        None,
        &ApplyOptions::new().ownership(Ownership::Map(small)),
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::UnsafeEntry { ref reason, .. } if reason.contains("not mapped")),
        "{e:?}"
    );
}

#[test]
fn devices_by_option() {
    use ocikit_image::Devices;
    assert!(is_root(), "device nodes need root (CI runs as root)");
    let s = scene();
    let layer = tar(&[E::Char("dev/null", 1, 3)]);
    let r = apply_layer(
        &s.root,
        &layer[..],
        &MediaType::ImageLayer,
        None,
        &ApplyOptions::new(),
    )
    .unwrap();
    assert_eq!(r.special_files, 1);
    let m = std::fs::symlink_metadata(s.root.join("dev/null")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &m.file_type()
    ));
    assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
    let r = apply_layer(
        &s.root,
        &layer[..],
        &MediaType::ImageLayer,
        None,
        &ApplyOptions::new().devices(Devices::Skip),
    )
    .unwrap();
    assert_eq!((r.special_files, r.devices_skipped), (0, 1));
}

// ----------------------------------------------------------------------------------------
// Compression and verification

#[test]
fn gzip_and_zstd_are_detected() {
    let layer = tar(&[E::File("f", b"compressed")]);
    let diff_id = sha256(&layer);
    let zst = zstd::encode_all(&layer[..], 3).unwrap();
    for (bytes, mt) in [
        (gzip(&layer), MediaType::ImageLayerGzip),
        (zst, MediaType::ImageLayerZstd),
        // A plain tar under a gzip media type, as docker-archives have.
        (layer.clone(), MediaType::ImageLayerGzip),
    ] {
        let s = scene();
        let r = apply_layer(
            &s.root,
            &bytes[..],
            &mt,
            Some(&diff_id),
            &ApplyOptions::new(),
        )
        .unwrap();
        assert_eq!(r.diff_id, diff_id);
        assert_eq!(r.uncompressed_size, layer.len() as u64);
        assert_eq!(s.read("f"), b"compressed");
    }
}

#[test]
fn wrong_diff_id_is_an_error() {
    let s = scene();
    let layer = gzip(&tar(&[E::File("f", b"x")]));
    let e = apply_layer(
        &s.root,
        &layer[..],
        &MediaType::ImageLayerGzip,
        Some(&sha256(b"other")),
        &ApplyOptions::new(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::DiffIdMismatch { .. }), "{e:?}");
}

#[test]
fn wrong_compressed_digest_is_an_error_even_after_the_tar_end() {
    let s = scene();
    let good = gzip(&tar(&[E::File("f", b"x")]));
    // Trailing bytes after the gzip stream change the blob's digest, not its tar content.
    let mut tampered = good.clone();
    tampered.extend_from_slice(b"trailing");
    let reader =
        VerifyingReader::new(&tampered[..], sha256(&good), Some(good.len() as u64)).unwrap();
    let e = apply_layer(
        &s.root,
        reader,
        &MediaType::ImageLayerGzip,
        None,
        &ApplyOptions::new(),
    )
    .unwrap_err();
    assert!(e.is_verification(), "{e:?}");
}

#[test]
fn decompression_is_bounded() {
    let s = scene();
    let big = vec![0u8; 1 << 20];
    let layer = gzip(&tar(&[E::File("zeros", &big)]));
    let e = apply_layer(
        &s.root,
        &layer[..],
        &MediaType::ImageLayerGzip,
        None,
        &ApplyOptions::new().max_uncompressed_size(Some(64 * 1024)),
    )
    .unwrap_err();
    assert!(matches!(e, Error::LayerTooLarge { limit: 65536 }), "{e:?}");
}

#[test]
fn truncated_layers_are_errors() {
    let s = scene();
    let layer = gzip(&tar(&[E::File("f", &[7u8; 10_000])]));
    for cut in [1, 10, layer.len() / 2, layer.len() - 1] {
        let r = apply_layer(
            &s.root,
            &layer[..cut],
            &MediaType::ImageLayerGzip,
            None,
            &ApplyOptions::new(),
        );
        assert!(r.is_err(), "cut at {cut} was accepted");
    }
}

#[test]
fn short_reads_change_nothing() {
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let entries = [
        E::Dir("a/"),
        E::File("a/b", &[1u8; 5000]),
        E::Symlink("c", "a/b"),
    ];
    let layer = gzip(&tar(&entries));
    let s1 = scene();
    let s2 = scene();
    apply_layer(
        &s1.root,
        &layer[..],
        &MediaType::ImageLayerGzip,
        None,
        &ApplyOptions::new(),
    )
    .unwrap();
    apply_layer(
        &s2.root,
        Trickle(&layer),
        &MediaType::ImageLayerGzip,
        None,
        &ApplyOptions::new(),
    )
    .unwrap();
    assert_eq!(listing(&s1.root), listing(&s2.root));
}

#[test]
fn an_early_error_in_a_big_layer_stops_promptly() {
    // The bad entry comes first; megabytes follow that the decompressing thread must stop
    // sending (a hang here means it blocked on a reader that had given up).
    let s = scene();
    let big = vec![1u8; 16 << 20];
    let layer = gzip(&tar(&[E::File("../escape", b"x"), E::File("big", &big)]));
    let e = apply_layer(
        &s.root,
        &layer[..],
        &MediaType::ImageLayerGzip,
        None,
        &ApplyOptions::new(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::UnsafeEntry { .. }), "{e:?}");
    assert!(!s.root.join("big").exists());
    s.assert_outside_untouched();
}

#[test]
fn a_corrupt_blob_is_reported_as_a_digest_mismatch() {
    // A flipped byte inside the deflate data makes the gzip decoder fail first; the error
    // says what is really wrong: the blob is not the one the descriptor names.
    let s = scene();
    let good = gzip(&tar(&[E::File("f", &[5u8; 50_000])]));
    let mut bad = good.clone();
    let at = bad.len() - 20;
    bad[at] ^= 0xff;
    let reader = VerifyingReader::new(&bad[..], sha256(&good), Some(good.len() as u64)).unwrap();
    let e = apply_layer(
        &s.root,
        reader,
        &MediaType::ImageLayerGzip,
        None,
        &ApplyOptions::new(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
}

#[test]
fn modes_survive_the_umask_and_read_only_files_get_their_content() {
    // The process umask (022 here) must not strip what the layer says.
    let s = scene();
    s.apply(&[
        E::FileMode("group-writable", b"g", 0o666),
        E::FileMode("read-only", b"content", 0o444),
        E::FileMode("plain", b"p", 0o644),
    ])
    .unwrap();
    let mode = |p: &str| std::fs::metadata(s.root.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("group-writable"), 0o666);
    assert_eq!(mode("read-only"), 0o444);
    assert_eq!(mode("plain"), 0o644);
    assert_eq!(s.read("read-only"), b"content");
}

#[test]
fn files_written_in_parts_keep_order_with_links_and_replacements() {
    // File contents are written by a second thread, in parts for big files, while later
    // entries go on: a hard link to a file still being written, then a replacement of the
    // file, must end as if everything happened in layer order.
    let s = scene();
    let big: Vec<u8> = (0..(3 << 20) + 7).map(|i: u32| (i % 251) as u8).collect();
    let report = s
        .apply(&[
            E::File("a", &big),
            E::Hardlink("b", "a"),
            E::File("a", b"replaced"),
            E::FileMode("ro", &big[..1 << 20], 0o400),
        ])
        .unwrap();
    assert_eq!(
        s.read("b"),
        big,
        "the link keeps the first file, written in full"
    );
    assert_eq!(s.read("a"), b"replaced");
    assert_eq!(s.read("ro"), &big[..1 << 20]);
    let mode = std::fs::metadata(s.root.join("ro")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o400);
    assert_eq!(report.files, 3);
    assert_eq!(report.file_bytes, big.len() as u64 + 8 + (1 << 20));
    s.assert_outside_untouched();
}

#[test]
fn a_failed_write_is_an_error_naming_the_file() {
    // A root on a 1 MiB tmpfs: the 4 MiB file cannot be written, and the error says which
    // entry and what went wrong, whichever thread wrote it.
    assert!(
        is_root(),
        "mounting a small tmpfs needs root (CI runs as root)"
    );
    let s = scene();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&s.root)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a tmpfs on the root");
    let big = vec![7u8; 4 << 20];
    let result = s.apply(&[
        E::File("small", b"fits"),
        E::File("dir/big", &big),
        E::File("after", b"x"),
    ]);
    let umounted = std::process::Command::new("umount")
        .arg(&s.root)
        .status()
        .unwrap();
    assert!(umounted.success(), "unmount the tmpfs");
    match result {
        Err(Error::Apply { path, op, source }) => {
            assert_eq!(path, "dir/big");
            assert_eq!(op, "write");
            assert_eq!(source.raw_os_error(), Some(28), "ENOSPC: {source}");
        }
        other => panic!("expected a write error for dir/big, got {other:?}"),
    }
    s.assert_outside_untouched();
}
