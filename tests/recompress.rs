//! `CopyOptions::compress_layers`: layers stored in another compression, their `diff_id`s
//! checked against the config. Layouts only: no registry needed.

use ocikit::copy::{CopyOptions, Location, copy};
use ocikit::image::ImageDestination;
use ocikit::image::{AnyManifest, Compression, sha256};
use ocikit::layout::Layout;

/// A layout `root` holding `root:v1`: one plain-tar layer of one file, and a config whose
/// diff_id is `diff_id` (the layer's own, unless a test gives another).
fn image(root: &std::path::Path, diff_id: Option<String>) {
    let l = Layout::create(root).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let data = b"recompressed\n";
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "file", &data[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let (ld, ls) = l.write_blob(&layer[..], None, None).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers",
                   "diff_ids": [diff_id.unwrap_or_else(|| sha256(&layer).to_string())]},
    }))
    .unwrap();
    let (cd, cs) = l.write_blob(&config[..], None, None).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cd.to_string(), "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": ld.to_string(), "size": ls}],
    }))
    .unwrap();
    l.write_blob(&manifest[..], None, None).unwrap();
    let any = AnyManifest::from_bytes(
        manifest,
        Some(&"application/vnd.oci.image.manifest.v1+json".into()),
    )
    .unwrap();
    l.tag(&"v1".parse().unwrap(), &any).unwrap();
}

fn oci(dir: &std::path::Path, name: &str) -> Location {
    format!("oci:{}:{name}", dir.display()).parse().unwrap()
}

#[test]
fn layers_are_stored_in_the_compression_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    image(&src, None);
    for (compression, media_type, magic) in [
        (
            Compression::Zstd,
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &[0x28, 0xb5][..],
        ),
        (
            Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &[0x1f, 0x8b][..],
        ),
    ] {
        let dst = dir.path().join(format!("{compression:?}"));
        let report = copy(
            &oci(&src, "v1"),
            &oci(&dst, "v1"),
            &CopyOptions::new().compress_layers(Some(compression)),
        )
        .unwrap();
        let AnyManifest::Manifest(m) = &report.top else {
            panic!("a manifest")
        };
        let layer = &m.layers()[0];
        assert_eq!(layer.media_type().to_string(), media_type);
        let out = Layout::open(&dst).unwrap();
        let bytes = std::fs::read(out.blob_path(layer.digest())).unwrap();
        assert!(bytes.starts_with(magic), "{compression:?}");
        assert_eq!(sha256(&bytes), *layer.digest());
        // The copy is an image others can read: its config still names the same diff_id.
        let fsck = out.fsck().unwrap();
        assert!(fsck.is_ok(), "{:?}", fsck.problems);
    }
}

/// A layer whose content is not what the config's diff_id says is refused, and the
/// destination gets no image.
#[test]
fn a_layer_that_contradicts_its_diff_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    image(&src, Some(sha256(b"something else").to_string()));
    let dst = dir.path().join("dst");
    let err = copy(
        &oci(&src, "v1"),
        &oci(&dst, "v1"),
        &CopyOptions::new().compress_layers(Some(Compression::Zstd)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("diff_ids"), "{err}");
    let refs = Layout::open(&dst)
        .map(|l| l.refs().unwrap())
        .unwrap_or_default();
    assert!(refs.is_empty(), "{refs:?}");
}
