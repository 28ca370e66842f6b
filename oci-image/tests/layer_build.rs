//! Building layers: determinism, round trips through `apply_layer`, diff layers with
//! whiteouts, compression choices, and what real tools (`gzip`, `tar`) say of our output.
//!
//! Some trees use owners and device nodes, which need root; CI runs as root.

mod common;

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use common::listing;
use ocikit_image::oci_spec::image::MediaType;
use ocikit_image::{
    ApplyOptions, BuildOptions, BuiltLayer, Compression, apply_layer, build_diff_layer,
    build_layer, sha256,
};

fn build(dir: &Path, options: &BuildOptions) -> (BuiltLayer, Vec<u8>) {
    let mut blob = Vec::new();
    let layer = build_layer(dir, &mut blob, options).unwrap();
    (layer, blob)
}

fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// A small tree with one of everything a layer can hold.
fn sample_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc/sub")).unwrap();
    std::fs::write(dir.join("etc/hostname"), b"box\n").unwrap();
    std::fs::write(dir.join("etc/sub/data"), vec![42u8; 300_000]).unwrap();
    let long = "n".repeat(150);
    std::fs::write(dir.join(&long), b"long name").unwrap();
    symlink("hostname", dir.join("etc/link")).unwrap();
    symlink("x".repeat(140), dir.join("longlink")).unwrap();
    std::fs::hard_link(dir.join("etc/hostname"), dir.join("etc/hard")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    std::fs::write(dir.join("suid"), b"#!").unwrap();
    std::fs::set_permissions(dir.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    rustix::fs::setxattr(
        dir.join("suid").as_path(),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    // A socket, which layers cannot hold.
    let _sock = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
    set_mtime(&dir.join("etc/hostname"), 1_600_000_000, 123_456_789);
    set_mtime(&dir.join("etc/sub"), 1_500_000_000, 0);
    if rustix::process::geteuid().is_root() {
        // An owner too large for a ustar header.
        std::os::unix::fs::lchown(dir.join(&long), Some(3_000_000), Some(3_000_001)).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("null").as_path(),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
    }
}

/// `listing` plus owners, times and link counts, for stricter comparisons.
fn full_listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for line in listing(dir) {
        let rel = line.split(' ').next().unwrap().to_owned();
        let m = std::fs::symlink_metadata(dir.join(&rel)).unwrap();
        let times = if m.file_type().is_symlink() {
            String::new()
        } else {
            format!("{}.{}", m.mtime(), m.mtime_nsec())
        };
        out.push(format!(
            "{line} uid={} gid={} nlink={} t={times} rdev={}",
            m.uid(),
            m.gid(),
            if m.is_dir() { 0 } else { m.nlink() },
            m.rdev()
        ));
    }
    out
}

#[test]
fn round_trip_through_apply() {
    assert!(
        rustix::process::geteuid().is_root(),
        "owners and devices need root (CI runs as root)"
    );
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let (layer, blob) = build(src.path(), &BuildOptions::new().compression(compression));
        assert_eq!(layer.descriptor.digest(), &sha256(&blob));
        assert_eq!(layer.descriptor.size(), blob.len() as u64);
        let dst = tempfile::tempdir().unwrap();
        let report = apply_layer(
            dst.path(),
            &blob[..],
            layer.descriptor.media_type(),
            Some(&layer.diff_id),
            &ApplyOptions::new(),
        )
        .unwrap();
        assert_eq!(report.diff_id, layer.diff_id);
        assert_eq!(report.uncompressed_size, layer.uncompressed_size);
        let mut want = full_listing(src.path());
        want.retain(|l| !l.starts_with("sock "));
        assert_eq!(full_listing(dst.path()), want, "{compression:?}");
        let mut v = [0u8; 4];
        let n =
            rustix::fs::getxattr(dst.path().join("suid").as_path(), "user.k", &mut v[..]).unwrap();
        assert_eq!(&v[..n], b"v");
    }
}

#[test]
fn deterministic_whatever_the_threads() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    // Enough data for several parallel gzip blocks.
    let mut seed = 1u64;
    let noise: Vec<u8> = (0..3_500_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 16) as u8 + b'a'
        })
        .collect();
    std::fs::write(src.path().join("noise"), &noise).unwrap();
    let (a, blob_a) = build(src.path(), &BuildOptions::new().threads(1));
    let (b, blob_b) = build(src.path(), &BuildOptions::new().threads(4));
    let (c, _) = build(src.path(), &BuildOptions::new());
    assert_eq!(blob_a, blob_b);
    assert_eq!(a.descriptor.digest(), c.descriptor.digest());
    assert_eq!(a.diff_id, b.diff_id);
    // A series of gzip members, one per MiB of tar (RFC 1952 2.2: "A gzip file consists of a
    // series of members"), read whole by a multistream decoder; a single-member decoder stops
    // after the first MiB.
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&blob_b[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(sha256(&tar), a.diff_id);
    assert_eq!(tar.len() as u64, a.uncompressed_size);
    let mut first = Vec::new();
    flate2::read::GzDecoder::new(&blob_b[..])
        .read_to_end(&mut first)
        .unwrap();
    assert_eq!(first.len(), 1 << 20);
}

#[test]
fn gzip_and_tar_accept_our_output() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let (_, blob) = build(src.path(), &BuildOptions::new());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("layer.tar.gz");
    std::fs::write(&file, &blob).unwrap();
    let gz = Command::new("gzip").arg("-t").arg(&file).status().unwrap();
    assert!(gz.success(), "gzip -t refused our stream");
    let out = Command::new("tar")
        .arg("-tzvf")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&"n".repeat(150)), "{text}");
    assert!(
        text.contains("etc/hard link to etc/hostname") || text.contains("etc/link -> hostname")
    );
    assert!(!text.contains("sock"));
}

#[test]
fn size_close_to_gzip_6() {
    // Text-like data: what layers mostly hold.
    let src = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..200_000 {
        text.push_str(&format!(
            "line {i} of some configuration value={}\n",
            i * 7919 % 1000
        ));
    }
    std::fs::write(src.path().join("text"), &text).unwrap();
    let (_, ours) = build(src.path(), &BuildOptions::new().source_date_epoch(Some(0)));
    // The same tar through gzip -6.
    let (plain_layer, plain) = build(
        src.path(),
        &BuildOptions::new()
            .compression(Compression::None)
            .source_date_epoch(Some(0)),
    );
    let mut child = Command::new("gzip")
        .args(["-6", "-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &plain));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    let ratio = ours.len() as f64 / out.stdout.len() as f64;
    assert!(
        ratio <= 1.05,
        "ours {} vs gzip -6 {} ({ratio:.3})",
        ours.len(),
        out.stdout.len()
    );
    assert_eq!(plain_layer.descriptor.media_type(), &MediaType::ImageLayer);
}

#[test]
fn source_date_epoch_clamps_and_owners_normalise() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [a.path(), b.path()] {
        std::fs::write(d.join("f"), b"same").unwrap();
    }
    set_mtime(&a.path().join("f"), 1_700_000_000, 5);
    set_mtime(&b.path().join("f"), 1_800_000_000, 0);
    let opts = BuildOptions::new()
        .source_date_epoch(Some(1_000_000_000))
        .normalize_owners(true);
    let (la, _) = build(a.path(), &opts);
    let (lb, _) = build(b.path(), &opts);
    assert_eq!(la.descriptor.digest(), lb.descriptor.digest());
    let (lc, _) = build(a.path(), &BuildOptions::new());
    assert_ne!(la.descriptor.digest(), lc.descriptor.digest());
}

fn cp_a(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn diff_layers_recreate_the_changed_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let changed = tmp.path().join("changed");
    std::fs::create_dir(&base).unwrap();
    std::fs::create_dir_all(base.join("keep")).unwrap();
    std::fs::write(base.join("keep/same"), b"same").unwrap();
    std::fs::write(base.join("keep/edit"), b"before").unwrap();
    std::fs::write(base.join("keep/gone"), b"x").unwrap();
    std::fs::create_dir_all(base.join("dropdir/inner")).unwrap();
    std::fs::write(base.join("dropdir/inner/f"), b"x").unwrap();
    std::fs::create_dir_all(base.join("replaced")).unwrap();
    std::fs::write(base.join("replaced/old1"), b"x").unwrap();
    std::fs::write(base.join("replaced/old2"), b"x").unwrap();
    std::fs::write(base.join("becomes_dir"), b"file").unwrap();
    std::fs::write(base.join("chmod"), b"m").unwrap();
    cp_a(&base, &changed);

    std::fs::write(changed.join("keep/edit"), b"after!").unwrap();
    std::fs::remove_file(changed.join("keep/gone")).unwrap();
    std::fs::write(changed.join("keep/new"), b"new").unwrap();
    std::fs::remove_dir_all(changed.join("dropdir")).unwrap();
    std::fs::remove_file(changed.join("replaced/old1")).unwrap();
    std::fs::remove_file(changed.join("replaced/old2")).unwrap();
    std::fs::write(changed.join("replaced/fresh"), b"fresh").unwrap();
    std::fs::remove_file(changed.join("becomes_dir")).unwrap();
    std::fs::create_dir(changed.join("becomes_dir")).unwrap();
    std::fs::write(changed.join("becomes_dir/child"), b"c").unwrap();
    std::fs::set_permissions(
        changed.join("chmod"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    let mut blob = Vec::new();
    let layer = build_diff_layer(&base, &changed, &mut blob, &BuildOptions::new()).unwrap();

    // What the layer holds.
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    for e in archive.entries().unwrap() {
        names.push(String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap());
    }
    for want in [
        "keep/edit",
        "keep/.wh.gone",
        "keep/new",
        ".wh.dropdir",
        "replaced/.wh..wh..opq",
        "replaced/fresh",
        "becomes_dir/",
        "becomes_dir/child",
        "chmod",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == "keep/same"),
        "unchanged file in {names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("old1")), "{names:?}");

    // Applied on a copy of the base, it gives the changed tree.
    let target = tmp.path().join("target");
    cp_a(&base, &target);
    apply_layer(
        &target,
        &blob[..],
        layer.descriptor.media_type(),
        Some(&layer.diff_id),
        &ApplyOptions::new(),
    )
    .unwrap();
    assert_eq!(listing(&target), listing(&changed));
}
