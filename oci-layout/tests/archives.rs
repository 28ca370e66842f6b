//! OCI and docker archives: written as streams, read in place, bad input refused.

mod common;

use std::fs;
use std::io::Read;

use oci_layout::oci_image::{AnyManifest, ImageDestination, ImageSource, parse_platform, sha256};
use oci_layout::oci_spec::image::{Descriptor, MediaType};
use oci_layout::{DockerArchive, DockerArchiveWriter, Error, Layout, OciArchive, OciArchiveWriter};

fn read_all(src: &dyn ImageSource, d: &Descriptor) -> Vec<u8> {
    let mut out = Vec::new();
    src.open_blob(d).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn copy_manifest(src: &dyn ImageSource, dst: &dyn ImageDestination, d: &Descriptor) -> AnyManifest {
    let any = src.fetch_manifest(d).unwrap();
    if let AnyManifest::Manifest(m) = &any {
        dst.copy_blob_from(src, m.config()).unwrap();
        for l in m.layers() {
            dst.copy_blob_from(src, l).unwrap();
        }
    }
    dst.put_manifest(&any).unwrap();
    any
}

#[test]
fn oci_archive_round_trip_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path().join("l")).unwrap();
    let (_, amd) = common::image(&l, "amd64", b"a");
    let (_, arm) = common::image(&l, "arm64", b"b");
    let index = common::index(&l, &[amd.clone(), arm.clone()]);

    let path = dir.path().join("a.tar");
    let w = OciArchiveWriter::create(&path).unwrap();
    // A blob that fails verification is cut off again and the archive stays valid.
    let bogus = Descriptor::new(MediaType::ImageLayerGzip, 5, sha256(b"right"));
    assert!(w.put_blob(&bogus, &mut &b"wrong"[..]).is_err());
    assert!(!w.has_blob(&bogus).unwrap());
    for d in [&amd, &arm] {
        copy_manifest(&l, &w, d);
    }
    w.put_manifest(&AnyManifest::Index(index.clone())).unwrap();
    w.tag(
        &"multi".parse().unwrap(),
        &AnyManifest::Index(index.clone()),
    )
    .unwrap();
    assert!(!path.exists(), "visible only once finished");
    w.finish().unwrap();

    let a = OciArchive::open(&path).unwrap();
    assert_eq!(a.refs().len(), 1);
    let img = a
        .fetch_image(
            &"multi".parse().unwrap(),
            &parse_platform("linux/arm64").unwrap(),
        )
        .unwrap();
    assert_eq!(img.manifest.digest(), arm.digest());
    for layer in img.manifest.layers() {
        assert_eq!(read_all(&a, layer), read_all(&l, layer));
    }
    let got = a
        .resolve_manifest(
            &"multi".parse().unwrap(),
            &parse_platform("linux/amd64").unwrap(),
        )
        .unwrap();
    assert_eq!(got.digest(), amd.digest());

    // The archive is a tar of a valid layout: unpack it with tar and open it.
    let out = dir.path().join("unpacked");
    fs::create_dir(&out).unwrap();
    tar::Archive::new(fs::File::open(&path).unwrap())
        .unpack(&out)
        .unwrap();
    let unpacked = Layout::open(&out).unwrap();
    assert!(unpacked.fsck().unwrap().is_ok());

    // Dropping a writer unfinished leaves nothing.
    let other = dir.path().join("b.tar");
    drop(OciArchiveWriter::create(&other).unwrap());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn truncated_and_foreign_archives_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path().join("l")).unwrap();
    let (m, d) = common::image(&l, "amd64", b"x");
    let path = dir.path().join("a.tar");
    let w = OciArchiveWriter::create(&path).unwrap();
    copy_manifest(&l, &w, &d);
    w.tag(&"x".parse().unwrap(), &AnyManifest::Manifest(m.clone()))
        .unwrap();
    w.finish().unwrap();
    let full = fs::read(&path).unwrap();
    // Cut in the middle of the layer data: refused when opened, or the blob fails.
    // Cut inside an entry (the last is index.json, before 1024 bytes of end marker).
    for cut in [700, full.len() / 2, full.len() - 1100] {
        let t = dir.path().join("t.tar");
        fs::write(&t, &full[..cut]).unwrap();
        match OciArchive::open(&t) {
            Err(Error::InvalidArchive { path, reason }) => {
                assert_eq!(path, t);
                assert!(reason.contains("truncated"), "{reason}");
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // A docker archive is not an OCI archive, and the other way around.
    let e = DockerArchive::open(&path).unwrap_err();
    assert!(matches!(e, Error::InvalidArchive { .. }), "{e}");
    fs::write(dir.path().join("junk.tar"), b"not a tar at all").unwrap();
    assert!(OciArchive::open(dir.path().join("junk.tar")).is_err());
}

#[test]
fn docker_archive_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path().join("l")).unwrap();
    let (m, d) = common::image(&l, "amd64", b"x");
    let (m2, d2) = common::image(&l, "amd64", b"y");
    let path = dir.path().join("d.tar");
    let w = DockerArchiveWriter::create(&path, Some("example.com/app")).unwrap();
    copy_manifest(&l, &w, &d);
    copy_manifest(&l, &w, &d2);
    w.tag(&"v1".parse().unwrap(), &AnyManifest::Manifest(m.clone()))
        .unwrap();
    w.tag(&"v2".parse().unwrap(), &AnyManifest::Manifest(m2.clone()))
        .unwrap();
    // An index cannot be stored.
    let index = common::index(&l, std::slice::from_ref(&d));
    assert!(w.put_manifest(&AnyManifest::Index(index)).is_err());
    w.finish().unwrap();

    let a = DockerArchive::open(&path).unwrap();
    assert_eq!(a.images().len(), 2);
    let img = a.find(Some("example.com/app:v2")).unwrap();
    assert_eq!(img.repo_tags, ["example.com/app:v2"]);
    assert!(img.manifest.is_docker());
    assert_eq!(img.manifest.config().digest(), m2.config().digest());
    assert_eq!(img.manifest.layers()[0].digest(), m2.layers()[0].digest());
    assert!(a.find(Some("example.com/app:v3")).is_err());
    assert!(a.find(None).is_err(), "two images, no name");
    // Through the trait.
    let fetched = a
        .fetch_image(
            &"v1".parse().unwrap(),
            &parse_platform("linux/amd64").unwrap(),
        )
        .unwrap();
    assert_eq!(fetched.config.raw(), read_all(&l, m.config()));
    assert_eq!(
        read_all(&a, &fetched.manifest.layers()[0]),
        read_all(&l, &m.layers()[0])
    );
}
