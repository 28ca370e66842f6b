//! OCI and docker archives: written as streams, read in place, bad input refused.

mod common;

use std::fs;
use std::io::Read;

use ocikit_layout::oci_spec::image::{Descriptor, MediaType};
use ocikit_layout::ocikit_image::{
    AnyManifest, ImageDestination, ImageSource, parse_platform, sha256,
};
use ocikit_layout::{
    DockerArchive, DockerArchiveFormat, DockerArchiveWriter, Error, Layout, OciArchive,
    OciArchiveWriter,
};

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
    for format in [DockerArchiveFormat::Oci, DockerArchiveFormat::Legacy] {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path().join("l")).unwrap();
        let (m, d) = common::image(&l, "amd64", b"x");
        let (m2, d2) = common::image(&l, "amd64", b"y");
        let path = dir.path().join("d.tar");
        let w = DockerArchiveWriter::with_format(&path, Some("example.com/app"), format).unwrap();
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
        match format {
            // The Docker 25+ form stores the manifest: digest kept.
            DockerArchiveFormat::Oci => assert_eq!(img.manifest.raw(), m2.raw()),
            _ => assert!(img.manifest.is_docker()),
        }
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
        if format == DockerArchiveFormat::Oci {
            // Also an OCI archive, named as Docker 25 names it.
            let o = OciArchive::open(&path).unwrap();
            let names: Vec<String> = o.refs().iter().map(|(n, _)| n.to_string()).collect();
            assert_eq!(names, ["v1", "v2"]);
            let out = dir.path().join("unpacked");
            fs::create_dir(&out).unwrap();
            tar::Archive::new(fs::File::open(&path).unwrap())
                .unpack(&out)
                .unwrap();
            let unpacked = Layout::open(&out).unwrap();
            assert!(unpacked.fsck().unwrap().is_ok());
            common::check_schemas(&unpacked);
        }
    }
}

/// Builds a tar from (name, bytes) pairs, as Docker 25+ lays out `docker save`: an OCI
/// layout plus `manifest.json` naming `blobs/sha256/<hex>` files.
fn tar_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn docker_25_archive_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path().join("l")).unwrap();
    let (m, d) = common::image(&l, "amd64", b"moby");
    let blob = |desc: &Descriptor| {
        (
            format!("blobs/sha256/{}", desc.digest().digest()),
            read_all(&l, desc),
        )
    };
    let manifest_json = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", m.config().digest().digest()),
        "RepoTags": ["moby/app:25"],
        "Layers": [format!("blobs/sha256/{}", m.layers()[0].digest().digest())],
    }]);
    let index_json = serde_json::json!({"schemaVersion": 2, "manifests": [d]});
    let bytes = tar_of(&[
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), index_json.to_string().into_bytes()),
        (
            "manifest.json".into(),
            manifest_json.to_string().into_bytes(),
        ),
        blob(m.config()),
        blob(&m.layers()[0]),
        blob(&d),
    ]);
    let path = dir.path().join("moby.tar");
    fs::write(&path, bytes).unwrap();
    let a = DockerArchive::open(&path).unwrap();
    let img = a.find(Some("docker.io/moby/app:25")).unwrap();
    // The stored manifest is the image's.
    assert_eq!(img.manifest.raw(), m.raw());
    let fetched = a
        .fetch_image(
            &"25".parse().unwrap(),
            &parse_platform("linux/amd64").unwrap(),
        )
        .unwrap();
    assert_eq!(fetched.config.raw(), read_all(&l, m.config()));
    assert_eq!(
        read_all(&a, &fetched.manifest.layers()[0]),
        read_all(&l, &m.layers()[0])
    );
    // The same file is also an OCI archive.
    let o = OciArchive::open(&path).unwrap();
    assert_eq!(o.index().manifests()[0].digest(), d.digest());

    // Without the OCI layout beside it, a manifest is made: gzip recognised, digests taken
    // from the blob paths.
    let bytes = tar_of(&[
        (
            "manifest.json".into(),
            manifest_json.to_string().into_bytes(),
        ),
        blob(m.config()),
        blob(&m.layers()[0]),
    ]);
    fs::write(&path, bytes).unwrap();
    let a = DockerArchive::open(&path).unwrap();
    let img = a.find(None).unwrap();
    assert!(img.manifest.is_docker());
    assert_eq!(img.manifest.layers()[0].digest(), m.layers()[0].digest());
    assert_eq!(
        img.manifest.layers()[0].media_type().to_string(),
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );

    // A manifest.json naming a file the archive lacks is refused, naming the archive.
    let bad = tar_of(&[(
        "manifest.json".into(),
        manifest_json.to_string().into_bytes(),
    )]);
    fs::write(&path, bad).unwrap();
    match DockerArchive::open(&path) {
        Err(Error::InvalidArchive { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains("does not hold"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// Only `Read`: no seeking, as from a pipe.
struct Pipe<R>(R);

impl<R: Read> Read for Pipe<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Short reads too, as pipes give.
        let n = buf.len().min(1000);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn oci_archive_imported_from_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path().join("l")).unwrap();
    let (m, d) = common::image(&l, "amd64", b"streamed");
    let path = dir.path().join("a.tar");
    let w = OciArchiveWriter::create(&path).unwrap();
    copy_manifest(&l, &w, &d);
    w.tag(&"s".parse().unwrap(), &AnyManifest::Manifest(m.clone()))
        .unwrap();
    w.finish().unwrap();

    let dst = Layout::create(dir.path().join("dst")).unwrap();
    let before = fs::read(dst.index_path()).unwrap();
    // Truncated: an error, index.json untouched.
    let full = fs::read(&path).unwrap();
    assert!(
        dst.import_oci_archive(Pipe(&full[..full.len() / 2]))
            .is_err()
    );
    assert_eq!(fs::read(dst.index_path()).unwrap(), before);
    // Whole: imported, verified, named.
    let entries = dst
        .import_oci_archive(Pipe(fs::File::open(&path).unwrap()))
        .unwrap();
    assert_eq!(entries.len(), 1);
    let img = dst
        .fetch_image(
            &"s".parse().unwrap(),
            &parse_platform("linux/amd64").unwrap(),
        )
        .unwrap();
    assert_eq!(img.manifest.digest(), m.digest());
    assert!(dst.fsck().unwrap().is_ok());
    common::check_schemas(&dst);
    // A blob whose content does not match its name is refused.
    let mut bad = full.clone();
    let layer_hex = m.layers()[0].digest().digest().to_owned();
    let at = full
        .windows(layer_hex.len())
        .position(|w| w == layer_hex.as_bytes())
        .unwrap();
    let data = at - (at % 512) + 512; // the entry's data follows its header block
    bad[data + 20] ^= 0xff;
    let other = Layout::create(dir.path().join("other")).unwrap();
    let e = other.import_oci_archive(Pipe(&bad[..])).unwrap_err();
    assert!(matches!(e, Error::Verification { .. }), "{e}");
    assert!(other.refs().unwrap().is_empty());
}
