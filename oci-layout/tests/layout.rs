//! The layout on disk: create/open, blobs, names, resolution, GC, fsck and bad input.

mod common;

use std::fs;
use std::time::Duration;

use ocikit_layout::ocikit_image::oci_spec::image::Descriptor;
use ocikit_layout::ocikit_image::{
    ImageDestination, ImageSource, Tag, TagOrDigest, parse_platform, sha256,
};
use ocikit_layout::{Error, Layout, Problem, RefName};

fn name(s: &str) -> RefName {
    s.parse().unwrap()
}

#[test]
fn create_then_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new");
    Layout::create(&root).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let l = Layout::open(&root).unwrap();
    assert!(l.refs().unwrap().is_empty());
    // Creating again opens.
    Layout::create(&root).unwrap();
}

#[test]
fn open_refuses_bad_layouts_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    match Layout::open(root) {
        Err(Error::NotALayout { path, .. }) => assert!(path.ends_with("oci-layout")),
        other => panic!("{other:?}"),
    }
    fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    let e = Layout::open(root).unwrap_err();
    assert!(e.to_string().contains("2.0.0"), "{e}");
    fs::write(root.join("oci-layout"), "not json").unwrap();
    assert!(matches!(Layout::open(root), Err(Error::NotALayout { .. })));
    fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    match Layout::open(root) {
        Err(Error::NotALayout { path, reason }) => {
            assert!(path.ends_with("index.json"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    fs::write(
        root.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[{]}"#,
    )
    .unwrap();
    match Layout::open(root) {
        Err(Error::Document { path, .. }) => assert!(path.ends_with("index.json")),
        other => panic!("{other:?}"),
    }
    let big = format!(
        r#"{{"schemaVersion":2,"manifests":[],"annotations":{{"x":"{}"}}}}"#,
        "a".repeat(5 << 20)
    );
    fs::write(root.join("index.json"), big).unwrap();
    match Layout::open(root) {
        Err(Error::Document { path, source })
            if matches!(*source, ocikit_layout::ocikit_image::Error::TooLarge { .. }) =>
        {
            assert!(path.ends_with("index.json"))
        }
        other => panic!("{other:?}"),
    }
}

fn temp_files(l: &Layout) -> usize {
    fs::read_dir(l.root().join(ocikit_layout::TEMP_DIR))
        .map(|r| r.count())
        .unwrap_or(0)
}

#[test]
fn blobs_are_verified_before_they_appear() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let data = b"some blob";
    let d = sha256(data);
    // Wrong content, short, long: an error, nothing at the final path, no temp left.
    for (bytes, size) in [
        (&b"some blub"[..], 9),
        (&b"some"[..], 9),
        (&b"some blob!"[..], 9),
    ] {
        let e = l.write_blob(bytes, Some(&d), Some(size)).unwrap_err();
        match &e {
            Error::Verification { path, .. } => assert_eq!(path, &l.blob_path(&d)),
            other => panic!("{other}"),
        }
        assert!(!l.has_blob(&d).unwrap());
        assert_eq!(temp_files(&l), 0);
    }
    let (got, n) = l.write_blob(&data[..], Some(&d), Some(9)).unwrap();
    assert_eq!((got, n), (d.clone(), 9));
    assert_eq!(fs::read(l.blob_path(&d)).unwrap(), data);
    // Writing again is a no-op that does not read the stream.
    let (got, _) = l.write_blob(&b"garbage"[..], Some(&d), Some(9)).unwrap();
    assert_eq!(got, d);
    // Without an expected digest, the digest is computed.
    let (got, _) = l.write_blob(&b"other"[..], None, None).unwrap();
    assert_eq!(got, sha256(b"other"));
    // Unsupported algorithms are refused.
    let md5: ocikit_layout::oci_spec::image::Digest =
        "md5:d41d8cd98f00b204e9800998ecf8427e".parse().unwrap();
    assert!(l.write_blob(&b""[..], Some(&md5), None).is_err());
}

#[test]
fn blob_writers_verify_at_commit_and_leave_nothing_otherwise() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let d = sha256(b"pushed blob");
    // Wrong content and short: the commit fails, nothing at the final path, no temp left.
    for bytes in [&b"pushed blub"[..], &b"pushed"[..]] {
        let mut w = l.blob_writer(Some(&d), Some(11)).unwrap();
        w.write_all(bytes).unwrap();
        assert_eq!(temp_files(&l), 1);
        match w.commit().unwrap_err() {
            Error::Verification { path, .. } => assert_eq!(path, l.blob_path(&d)),
            other => panic!("{other}"),
        }
        assert!(!l.has_blob(&d).unwrap());
        assert_eq!(temp_files(&l), 0);
    }
    // Long: refused at the push that goes over, with the typed error inside the io::Error.
    let mut w = l.blob_writer(Some(&d), Some(11)).unwrap();
    w.push(b"pushed blob").unwrap();
    assert!(matches!(w.push(b"!"), Err(Error::Verification { .. })));
    let err = w.write(b"!").unwrap_err();
    assert!(err.get_ref().unwrap().is::<Error>(), "{err}");
    // Dropped without a commit: no temp left.
    drop(w);
    assert_eq!(temp_files(&l), 0);
    // Right: visible only after the commit.
    let mut w = l.blob_writer(Some(&d), Some(11)).unwrap();
    w.write_all(b"pushed ").unwrap();
    w.write_all(b"blob").unwrap();
    assert_eq!(w.size(), 11);
    assert!(!l.has_blob(&d).unwrap());
    assert_eq!(w.commit().unwrap(), (d.clone(), 11));
    assert_eq!(fs::read(l.blob_path(&d)).unwrap(), b"pushed blob");
    // Without an expectation, the digest is computed.
    let mut w = l.blob_writer(None, None).unwrap();
    w.write_all(b"other").unwrap();
    assert_eq!(w.commit().unwrap().0, sha256(b"other"));
}

#[test]
fn reading_a_corrupt_blob_fails() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let (d, n) = l.write_blob(&b"precious"[..], None, None).unwrap();
    fs::write(l.blob_path(&d), b"precioux").unwrap();
    let desc = Descriptor::new(
        ocikit_layout::oci_spec::image::MediaType::ImageLayer,
        n,
        d.clone(),
    );
    let e = l
        .open_blob(&desc)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(ocikit_layout::ocikit_image::Error::from(e).is_verification());
    // Through the trait too.
    let mut r = ImageSource::open_blob(&l, &desc).unwrap();
    assert!(r.read_to_end(&mut Vec::new()).is_err());
}

#[test]
fn names_add_move_remove_list() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let (_, amd) = common::image(&l, "amd64", b"a");
    let (_, arm) = common::image(&l, "arm64", b"b");
    for i in 0..20 {
        l.set_ref(&name(&format!("t{i}")), &amd).unwrap();
    }
    assert_eq!(l.refs().unwrap().len(), 20);
    // Move t3 to the arm image.
    l.set_ref(&name("t3"), &arm).unwrap();
    let t3 = l.resolve_ref(&name("t3")).unwrap();
    assert_eq!(t3.len(), 1);
    assert_eq!(t3[0].digest(), arm.digest());
    // Two manifests under one name, by platform.
    l.add_ref(&name("multi"), &amd).unwrap();
    l.add_ref(&name("multi"), &arm).unwrap();
    l.add_ref(&name("multi"), &arm).unwrap();
    assert_eq!(l.resolve_ref(&name("multi")).unwrap().len(), 2);
    let pick = l
        .resolve_manifest(&name("multi"), &parse_platform("linux/arm64").unwrap())
        .unwrap();
    assert_eq!(pick.digest(), arm.digest());
    let e = l
        .resolve_manifest(&name("multi"), &parse_platform("linux/s390x").unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("linux/amd64"), "{e}");
    // Remove one platform, then the name.
    let removed = l
        .remove_ref(
            &name("multi"),
            Some(&parse_platform("linux/amd64").unwrap()),
        )
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(l.remove_ref(&name("multi"), None).unwrap(), 1);
    assert!(matches!(
        l.remove_ref(&name("multi"), None),
        Err(Error::RefNotFound { .. })
    ));
    assert!(matches!(
        l.resolve_ref(&name("nope")),
        Err(Error::RefNotFound { .. })
    ));
    // Names with characters a distribution tag does not allow.
    l.set_ref(&name("library/busybox:1.36"), &amd).unwrap();
    assert!("bad name!".parse::<RefName>().is_err());
}

#[test]
fn resolve_through_nested_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let (_, amd) = common::image(&l, "amd64", b"a");
    let (_, arm) = common::image(&l, "arm64", b"b");
    let inner = common::index(&l, &[amd.clone(), arm.clone()]);
    let outer = common::index(&l, &[inner.descriptor()]);
    l.set_ref(&name("latest"), &outer.descriptor()).unwrap();
    let got = l
        .resolve_manifest(&name("latest"), &parse_platform("linux/arm64").unwrap())
        .unwrap();
    assert_eq!(got.digest(), arm.digest());
    // Through the trait: fetch_image walks both indexes.
    let img = l
        .fetch_image(
            &"latest".parse().unwrap(),
            &parse_platform("linux/amd64").unwrap(),
        )
        .unwrap();
    assert_eq!(img.indexes.len(), 2);
    assert_eq!(img.manifest.digest(), amd.digest());
    // By digest, also for a manifest index.json does not list.
    let by_digest = ImageSource::resolve(&l, &TagOrDigest::Digest(arm.digest().clone())).unwrap();
    assert_eq!(by_digest.media_type(), arm.media_type());
}

#[test]
fn trait_tag_replaces_and_failed_operations_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let (m1, d1) = common::image(&l, "amd64", b"1");
    let (m2, _) = common::image(&l, "amd64", b"2");
    let tag: Tag = "v1".parse().unwrap();
    l.tag(
        &tag,
        &ocikit_layout::ocikit_image::AnyManifest::Manifest(m1),
    )
    .unwrap();
    l.tag(
        &tag,
        &ocikit_layout::ocikit_image::AnyManifest::Manifest(m2.clone()),
    )
    .unwrap();
    let got = ImageSource::resolve(&l, &"v1".parse().unwrap()).unwrap();
    assert_eq!(got.digest(), m2.digest());

    let before = fs::read(l.index_path()).unwrap();
    let missing = Descriptor::new(d1.media_type().clone(), 3, sha256(b"not stored"));
    assert!(matches!(
        l.set_ref(&name("x"), &missing),
        Err(Error::BlobMissing { .. })
    ));
    let wrong_size = Descriptor::new(d1.media_type().clone(), d1.size() + 1, d1.digest().clone());
    assert!(l.set_ref(&name("x"), &wrong_size).is_err());
    assert!(l.remove_ref(&name("nope"), None).is_err());
    assert_eq!(fs::read(l.index_path()).unwrap(), before);
}

#[test]
fn gc_removes_what_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let (_, keep) = common::image(&l, "amd64", b"keep");
    let (_, drop) = common::image(&l, "amd64", b"drop");
    l.set_ref(&name("keep"), &keep).unwrap();
    l.set_ref(&name("drop"), &drop).unwrap();
    // A referrer of `keep` (subject) is kept when reachable, as is its subject.
    let nothing = l.gc(Duration::ZERO).unwrap();
    assert_eq!(nothing.blobs_removed, 0);
    l.remove_ref(&name("drop"), None).unwrap();
    // Too young for a 1 hour grace.
    assert_eq!(l.gc(Duration::from_secs(3600)).unwrap().blobs_removed, 0);
    let r = l.gc(Duration::ZERO).unwrap();
    // manifest + config + layer of `drop`.
    assert_eq!(r.blobs_removed, 3);
    assert!(r.bytes_freed > 0);
    assert!(l.fsck().unwrap().is_ok());
    assert!(l.has_blob(keep.digest()).unwrap());
    assert!(!l.has_blob(drop.digest()).unwrap());
}

#[test]
fn fsck_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let (m, d) = common::image(&l, "amd64", b"x");
    l.set_ref(&name("x"), &d).unwrap();
    assert!(l.fsck().unwrap().is_ok(), "{}", l.fsck().unwrap());
    // Corrupt the config, remove the layer, add a stray file.
    fs::write(l.blob_path(m.config().digest()), b"{}").unwrap();
    fs::remove_file(l.blob_path(m.layers()[0].digest())).unwrap();
    fs::write(l.root().join("blobs/sha256/notadigest"), b"").unwrap();
    let r = l.fsck().unwrap();
    assert_eq!(r.problems.len(), 4, "{r}");
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::SizeMismatch { .. }))
    );
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::MissingBlob { .. }))
    );
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::UnexpectedFile { .. }))
    );
    // Content that does not match its name.
    let (d2, _) = l.write_blob(&b"abc"[..], None, None).unwrap();
    fs::write(l.blob_path(&d2), b"abd").unwrap();
    let r = l.fsck().unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::DigestMismatch { .. })),
        "{r}"
    );
}

#[test]
fn sha512_blobs_and_subjects() {
    use ocikit_layout::ocikit_image::{AnyManifest, Manifest};
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    // sha512: stored under blobs/sha512.
    let data = b"sha512 content";
    let d512 = ocikit_layout::ocikit_image::digest_bytes(
        &ocikit_layout::oci_spec::image::DigestAlgorithm::Sha512,
        data,
    )
    .unwrap();
    l.write_blob(&data[..], Some(&d512), Some(data.len() as u64))
        .unwrap();
    assert!(l.root().join("blobs/sha512").join(d512.digest()).is_file());
    assert!(l.write_blob(&b"other"[..], Some(&d512), None).is_ok()); // present: no-op

    // A referrer (subject = the image) named, the image not: GC keeps both.
    let (_, image) = common::image(&l, "amd64", b"subject");
    let (empty, _) = l.write_blob(&b"{}"[..], None, None).unwrap();
    let referrer = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/example",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": empty.to_string(), "size": 2}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": image.digest().to_string(), "size": image.size()},
    });
    let referrer = Manifest::from_bytes(serde_json::to_vec(&referrer).unwrap()).unwrap();
    let rd = l.put_manifest(&AnyManifest::Manifest(referrer)).unwrap();
    l.set_ref(&name("sig"), &rd).unwrap();
    let r = l.gc(Duration::ZERO).unwrap();
    assert_eq!(r.blobs_removed, 1, "only the unreferenced sha512 blob goes");
    assert!(l.has_blob(image.digest()).unwrap());
    assert!(l.fsck().unwrap().is_ok());
}

#[test]
fn layouts_we_write_match_the_json_schemas() {
    let schemas = common::schema::Schemas::load().expect("the schemas in oci-layout/tests/schema");
    // The checker itself catches what it should.
    let bad = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "not a media type", "digest": "sha256:x y", "size": "1"}]});
    assert_eq!(schemas.check("image-index-schema.json", &bad).len(), 3);
    assert!(
        !schemas
            .check("image-layout-schema.json", &serde_json::json!({}))
            .is_empty()
    );

    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    common::check_schemas(&l);
    let (_, amd) = common::image(&l, "amd64", b"a");
    let (_, arm) = common::image(&l, "arm64", b"b");
    let index = common::index(&l, &[amd.clone(), arm.clone()]);
    l.set_ref(&name("multi"), &index.descriptor()).unwrap();
    l.add_ref(&name("both"), &amd).unwrap();
    l.add_ref(&name("both"), &arm).unwrap();
    l.set_ref(&name("library/x:1"), &amd).unwrap();
    common::check_schemas(&l);
}

/// Gives at most 7 bytes per `read`, as pipes and sockets may.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn short_reads_write_the_same_blob() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (d, n) = l
        .write_blob(
            Trickle(&data),
            Some(&sha256(&data)),
            Some(data.len() as u64),
        )
        .unwrap();
    assert_eq!((d, n), (sha256(&data), data.len() as u64));
    assert_eq!(fs::read(l.blob_path(&sha256(&data))).unwrap(), data);
}

#[test]
fn copying_a_corrupt_blob_between_layouts_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = Layout::create(dir.path().join("src")).unwrap();
    let dst = Layout::create(dir.path().join("dst")).unwrap();
    let data = b"the real content of the blob".to_vec();
    let (digest, size) = src.write_blob(&data[..], None, None).unwrap();
    let d = Descriptor::new(
        ocikit_layout::ocikit_image::oci_spec::image::MediaType::ImageLayer,
        size,
        digest.clone(),
    );
    // Good copy, then a skipped one.
    assert!(dst.copy_blob_from(&src, &d).unwrap());
    assert!(!dst.copy_blob_from(&src, &d).unwrap());

    // The source's file changes under it: same size, other bytes.
    let dst2 = Layout::create(dir.path().join("dst2")).unwrap();
    let path = dir.path().join("src/blobs/sha256").join(digest.digest());
    fs::write(&path, b"THE real content of the blob").unwrap();
    let e = dst2.copy_blob_from(&src, &d).unwrap_err();
    assert!(
        e.is_verification() || e.to_string().contains("mismatch"),
        "{e:?}"
    );
    assert!(!ImageDestination::has_blob(&dst2, &d).unwrap());
    assert!(dst2.fsck().unwrap().is_ok());
}
