//! Reading layers without applying them: [`LayerReader`]'s entries (kinds, metadata,
//! contents, whiteouts), compression and verification at the end; and [`ImageFs`], the
//! merged view of several layers, compared with what `apply_layer` makes on disk for the
//! same layers.
//!
//! The comparison with `apply_layer` needs root (owners, device nodes); CI runs as root, and
//! that test fails rather than skips as anyone else.

mod common;

use std::collections::HashMap;
use std::io::Read;

use common::{E, gzip, listing, tar};
use ocikit_image::oci_spec::image::MediaType;
use ocikit_image::{
    ApplyOptions, Compression, EntryKind, Error, ImageFs, LayerReader, VerifyingReader,
    apply_layer, sha256,
};

/// `(path, kind, mode, size, link, content)` of every entry, and the reader's summary.
type Seen = Vec<(String, EntryKind, u32, u64, Option<String>, Vec<u8>)>;

fn read_all(layer: &[u8], media_type: &MediaType) -> Result<Seen, Error> {
    let mut reader = LayerReader::new(layer, media_type)?;
    let mut seen = Vec::new();
    for entry in reader.entries()? {
        let mut entry = entry?;
        let mut content = Vec::new();
        entry.read_to_end(&mut content).map_err(Error::from)?;
        let m = entry.meta();
        seen.push((
            m.path().display().to_string(),
            m.kind(),
            m.mode(),
            m.size(),
            m.link_target().map(|p| p.display().to_string()),
            content,
        ));
    }
    assert!(reader.summary().is_some(), "a complete read is verified");
    Ok(seen)
}

#[test]
fn entries_carry_their_kind_metadata_and_content() {
    let layer = tar(&[
        E::Dir("./"),
        E::DirMode("etc/", 0o750),
        E::FileMode("etc/hostname", b"box\n", 0o600),
        E::Symlink("etc/link", "../etc/hostname"),
        E::Hardlink("etc/hard", "/etc/hostname"),
        E::Fifo("run.fifo"),
        E::Char("null", 1, 3),
        E::File("etc/.wh.motd", b""),
        E::File("var/.wh..wh..opq", b""),
        E::File(".wh..wh.plnk", b""),
        E::Pax(
            "owned",
            b"x",
            vec![
                ("uid", b"1000"),
                ("gid", b"2000"),
                ("mtime", b"1700000000.5"),
                ("SCHILY.xattr.user.note", b"v"),
            ],
        ),
    ]);
    let seen = read_all(&layer, &MediaType::ImageLayer).unwrap();
    let short: Vec<_> = seen
        .iter()
        .map(|(p, k, mode, size, link, content)| {
            (
                p.as_str(),
                *k,
                *mode,
                *size,
                link.as_deref(),
                content.as_slice(),
            )
        })
        .collect();
    use EntryKind as K;
    assert_eq!(
        short,
        [
            (".", K::Directory, 0o755, 0, None, &b""[..]),
            ("etc", K::Directory, 0o750, 0, None, b""),
            ("etc/hostname", K::File, 0o600, 4, None, b"box\n"),
            (
                "etc/link",
                K::Symlink,
                0o777,
                0,
                Some("../etc/hostname"),
                b""
            ),
            ("etc/hard", K::Hardlink, 0o777, 0, Some("etc/hostname"), b""),
            ("run.fifo", K::Fifo, 0o644, 0, None, b""),
            ("null", K::CharDevice, 0o666, 0, None, b""),
            ("etc/motd", K::Whiteout, 0, 0, None, b""),
            ("var", K::Opaque, 0, 0, None, b""),
            ("owned", K::File, 0o644, 1, None, b"x"),
        ]
    );

    // The PAX records and the device numbers, and the AUFS bookkeeping counted as ignored.
    let mut reader = LayerReader::new(&layer[..], &MediaType::ImageLayer).unwrap();
    let metas: Vec<_> = reader
        .entries()
        .unwrap()
        .map(|e| e.unwrap().into_meta())
        .collect();
    let owned = metas.last().unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1000, 2000));
    assert_eq!(
        owned.mtime(),
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_500)
    );
    let xattrs: Vec<_> = owned.xattrs().collect();
    assert_eq!(xattrs, [(std::ffi::OsStr::new("user.note"), &b"v"[..])]);
    assert_eq!(metas[6].device(), Some((1, 3)));
    let summary = reader.summary().unwrap();
    assert_eq!((summary.entries, summary.ignored), (10, 1));
    assert_eq!(summary.diff_id, sha256(&layer));
    assert_eq!(summary.uncompressed_size, layer.len() as u64);
}

#[test]
fn compression_is_sniffed_and_checked_against_the_media_type() {
    let layer = tar(&[E::File("f", b"compressed")]);
    let zst = zstd::encode_all(&layer[..], 3).unwrap();
    for (bytes, mt, want) in [
        (gzip(&layer), MediaType::ImageLayerGzip, Compression::Gzip),
        (zst.clone(), MediaType::ImageLayerZstd, Compression::Zstd),
        // A plain tar under a gzip media type, as docker-archives have.
        (layer.clone(), MediaType::ImageLayerGzip, Compression::None),
    ] {
        let mut reader = LayerReader::new(&bytes[..], &mt)
            .unwrap()
            .expect_diff_id(sha256(&layer));
        assert_eq!(reader.compression(), want);
        let paths: Vec<_> = reader
            .entries()
            .unwrap()
            .map(|e| e.unwrap().meta().path().to_owned())
            .collect();
        assert_eq!(paths, [std::path::Path::new("f")]);
        assert_eq!(reader.summary().unwrap().compression, want);
    }
    for (bytes, mt) in [
        (gzip(&layer), MediaType::ImageLayerZstd),
        (zst, MediaType::ImageLayerGzip),
        (gzip(&layer), MediaType::ImageLayer),
    ] {
        let e = LayerReader::new(&bytes[..], &mt).unwrap_err();
        assert!(
            matches!(e, Error::CompressionMismatch { ref media_type, .. } if *media_type == mt),
            "{e:?}"
        );
        // apply_layer reads with the same rule.
        let dir = tempfile::tempdir().unwrap();
        let e = apply_layer(dir.path(), &bytes[..], &mt, None, &ApplyOptions::new()).unwrap_err();
        assert!(matches!(e, Error::CompressionMismatch { .. }), "{e:?}");
    }
}

#[test]
fn a_wrong_diff_id_is_the_last_item_and_nothing_is_verified() {
    let layer = gzip(&tar(&[E::File("a", b"1"), E::File("b", b"2")]));
    let mut reader = LayerReader::new(&layer[..], &MediaType::ImageLayerGzip)
        .unwrap()
        .expect_diff_id(sha256(b"another layer"));
    let items: Vec<_> = reader.entries().unwrap().collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[1].is_ok());
    assert!(
        matches!(items[2], Err(Error::DiffIdMismatch { .. })),
        "{:?}",
        items[2]
    );
    assert!(reader.summary().is_none());
    assert!(reader.finish().is_err());
}

#[test]
fn a_wrong_compressed_digest_is_found_after_the_tar_end() {
    let good = gzip(&tar(&[E::File("f", b"x")]));
    // Trailing bytes after the gzip stream change the blob's digest, not its tar content.
    let mut tampered = good.clone();
    tampered.extend_from_slice(b"trailing");
    let input =
        VerifyingReader::new(&tampered[..], sha256(&good), Some(good.len() as u64)).unwrap();
    let mut reader = LayerReader::new(input, &MediaType::ImageLayerGzip).unwrap();
    let last = reader.entries().unwrap().last().unwrap();
    assert!(last.is_err_and(|e| e.is_verification()));
    assert!(reader.summary().is_none());
}

#[test]
fn a_reader_stopped_early_reports_nothing_until_finished() {
    let plain = tar(&[E::File("a", &[1u8; 70_000]), E::File("b", b"2")]);
    let layer = gzip(&plain);
    let diff_id = sha256(&plain);
    let mut reader = LayerReader::new(&layer[..], &MediaType::ImageLayerGzip)
        .unwrap()
        .expect_diff_id(diff_id.clone());
    let first = reader.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(first.meta().path().to_str(), Some("a"));
    drop(first);
    assert!(reader.summary().is_none(), "nothing verified yet");
    assert_eq!(reader.finish().unwrap().diff_id, diff_id);

    // Finishing a reader never iterated reads every entry.
    let reader = LayerReader::new(&layer[..], &MediaType::ImageLayerGzip)
        .unwrap()
        .expect_diff_id(sha256(b"wrong"));
    assert!(matches!(reader.finish(), Err(Error::DiffIdMismatch { .. })));
}

#[test]
fn truncated_bombs_and_hostile_paths_are_typed_errors() {
    let layer = gzip(&tar(&[E::File("f", &[7u8; 10_000])]));
    for cut in [10, layer.len() / 2, layer.len() - 1] {
        let r = read_all(&layer[..cut], &MediaType::ImageLayerGzip);
        assert!(r.is_err(), "cut at {cut} was accepted");
    }
    let big = gzip(&tar(&[E::File("zeros", &vec![0u8; 1 << 20])]));
    let mut reader = LayerReader::new(&big[..], &MediaType::ImageLayerGzip)
        .unwrap()
        .max_uncompressed_size(Some(64 * 1024));
    let e = reader
        .entries()
        .unwrap()
        .find_map(|e| {
            e.and_then(|mut e| e.read_to_end(&mut Vec::new()).map_err(Error::from))
                .err()
        })
        .unwrap();
    assert!(matches!(e, Error::LayerTooLarge { limit: 65536 }), "{e:?}");
    for (entries, what) in [
        (vec![E::File("../escape", b"x")], "climbs above the root"),
        (vec![E::File("a/.wh..", b"")], "names no single entry"),
        (vec![E::Hardlink("h", "/")], "a hard link to the root"),
        (vec![E::File("./", b"")], "names the root"),
    ] {
        let e = read_all(&tar(&entries), &MediaType::ImageLayer).unwrap_err();
        assert!(
            matches!(&e, Error::UnsafeEntry { reason, .. } if reason.contains(what)),
            "{e:?}"
        );
    }
}

/// The lines `common::listing` gives for a tree, made from the merged view instead.
fn view_listing(layers: &[Vec<u8>]) -> Vec<String> {
    let mut fs = ImageFs::new();
    for layer in layers {
        fs.add_layer(LayerReader::new(&layer[..], &MediaType::ImageLayer).unwrap())
            .unwrap();
    }
    let mut hashes = HashMap::new();
    for (i, layer) in layers.iter().enumerate() {
        let reader = LayerReader::new(&layer[..], &MediaType::ImageLayer).unwrap();
        fs.read_contents(i, reader, |entry, content| {
            let mut data = Vec::new();
            content.read_to_end(&mut data)?;
            let old = hashes.insert(entry.path().to_owned(), sha256(&data));
            assert!(old.is_none(), "one call per file");
            Ok(())
        })
        .unwrap();
    }
    let mut lines: Vec<String> = fs
        .entries()
        .map(|e| {
            let m = e.meta();
            let path = e.path().display();
            match m.kind() {
                EntryKind::File => format!(
                    "{path} file {:o} {} {}",
                    m.mode(),
                    m.size(),
                    hashes[e.hardlink().unwrap_or(e.path())]
                ),
                EntryKind::Directory => format!("{path} dir {:o}", m.mode()),
                EntryKind::Symlink => {
                    format!("{path} link -> {}", m.link_target().unwrap().display())
                }
                EntryKind::Fifo => format!("{path} special 10000"),
                _ => format!("{path} special 20000"),
            }
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_merged_view_is_what_apply_makes() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root for device nodes (CI runs as root)"
    );
    let big = [5u8; 300_000];
    let scenarios: Vec<Vec<Vec<E<'_>>>> = vec![
        // Whiteouts, opaque directories, a file replacing a directory and back.
        vec![
            vec![
                E::Dir("a/"),
                E::File("a/gone", b"1"),
                E::File("a/kept", b"2"),
                E::Dir("o/"),
                E::File("o/lower", b"3"),
                E::Dir("o/sub/"),
                E::File("o/sub/deep", b"4"),
                E::Dir("swap/"),
                E::File("swap/inner", b"5"),
                E::File("file2dir", b"6"),
                E::File("big", &big),
            ],
            vec![
                E::File("a/.wh.gone", b""),
                E::File("o/.wh..wh..opq", b""),
                E::File("o/upper", b"7"),
                E::File("swap", b"now a file"),
                E::DirMode("file2dir/", 0o700),
                E::File("file2dir/x", b"8"),
                E::File(".wh.nothing", b""),
            ],
        ],
        // Hard links: within a layer, to a lower layer's file, surviving their source.
        vec![
            vec![
                E::FileMode("src", b"linked", 0o640),
                E::Hardlink("same", "src"),
                E::Fifo("pipe"),
            ],
            vec![
                E::Hardlink("from_lower", "src"),
                E::Hardlink("pipe2", "pipe"),
                E::File(".wh.src", b""),
            ],
            vec![E::Hardlink("again", "same"), E::File("same", b"replaced")],
        ],
        // Parents through symlinks; a layer's whiteout and opaque marker spare its own
        // entries; the root's own entry; implicit parents.
        vec![
            vec![
                E::DirMode("./", 0o711),
                E::Dir("usr/"),
                E::Dir("usr/lib/"),
                E::Symlink("lib", "usr/lib"),
                E::Symlink("abs", "/usr"),
                E::Dir("d/"),
                E::File("d/old", b"x"),
            ],
            vec![
                E::File("lib/x", b"through the link"),
                E::File("abs/lib/y", b"absolute"),
                E::File("d/new", b"mine"),
                E::File("d/.wh..wh..opq", b""),
                E::File("d/.wh.new", b""),
                E::File("implicit/deep/file", b"z"),
                E::Char("dev", 1, 3),
            ],
        ],
    ];
    for layers in scenarios {
        let tars: Vec<Vec<u8>> = layers.iter().map(|l| tar(l)).collect();
        let dir = tempfile::tempdir().unwrap();
        for t in &tars {
            apply_layer(
                dir.path(),
                &t[..],
                &MediaType::ImageLayer,
                None,
                &ApplyOptions::new(),
            )
            .unwrap();
        }
        assert_eq!(view_listing(&tars), listing(dir.path()), "{layers:?}");
    }
}

#[test]
fn the_merged_view_verifies_and_refuses_what_apply_refuses() {
    // A wrong diff_id anywhere fails the whole view.
    let layer = tar(&[E::File("f", b"x")]);
    let mut fs = ImageFs::new();
    let reader = LayerReader::new(&layer[..], &MediaType::ImageLayer)
        .unwrap()
        .expect_diff_id(sha256(b"not it"));
    assert!(matches!(
        fs.add_layer(reader),
        Err(Error::DiffIdMismatch { .. })
    ));
    // A hard link to nothing is an error, as apply makes it.
    let mut fs = ImageFs::new();
    let dangling = tar(&[E::Hardlink("h", "missing")]);
    let e = fs
        .add_layer(LayerReader::new(&dangling[..], &MediaType::ImageLayer).unwrap())
        .unwrap_err();
    assert!(matches!(e, Error::Apply { .. }), "{e:?}");
}
