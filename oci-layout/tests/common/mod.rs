//! Small images built in tests: gzip layers made with `tar` and `flate2`, configs and
//! manifests written with the layout's own API.
#![allow(dead_code)]

use std::io::Write;

use ocikit_layout::Layout;
use ocikit_layout::ocikit_image::oci_spec::image::{Descriptor, Digest, MediaType};
use ocikit_layout::ocikit_image::{AnyManifest, Index, Manifest, parse_platform, sha256};

/// A gzip-compressed tar of `files`, and its diff-id (sha256 of the tar).
pub(crate) fn layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let diff_id = sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// Stores a one-layer image for `linux/<arch>` and returns the manifest and its descriptor
/// (with the platform set). Not tagged.
pub(crate) fn image(layout: &Layout, arch: &str, content: &[u8]) -> (Manifest, Descriptor) {
    let (gz, diff_id) = layer(&[("hello.txt", content), ("arch", arch.as_bytes())]);
    let (layer_digest, layer_size) = layout.write_blob(&gz[..], None, None).unwrap();
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created_by": "ocikit tests"}],
    });
    let config = serde_json::to_vec(&config).unwrap();
    let (config_digest, config_size) = layout.write_blob(&config[..], None, None).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.to_string(), "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest.to_string(), "size": layer_size}],
    });
    let m = Manifest::from_bytes(serde_json::to_vec(&manifest).unwrap()).unwrap();
    layout
        .put_manifest(&AnyManifest::Manifest(m.clone()))
        .unwrap();
    let mut d = m.descriptor();
    d.set_platform(Some(parse_platform(&format!("linux/{arch}")).unwrap()));
    (m, d)
}

/// Stores an index of `manifests` and returns it.
pub(crate) fn index(layout: &Layout, manifests: &[Descriptor]) -> Index {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let i = Index::from_bytes(serde_json::to_vec(&index).unwrap()).unwrap();
    layout.put_manifest(&AnyManifest::Index(i.clone())).unwrap();
    i
}

/// The media type of an OCI index, for descriptors.
pub(crate) fn index_type() -> MediaType {
    MediaType::ImageIndex
}

/// Runs a command, panicking with its output when it fails.
pub(crate) fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) mod schema;

/// Checks `oci-layout`, `index.json` and every manifest, index and config reachable from it
/// against the image-spec v1.1.1 JSON schemas (kept in `tests/schema/`); panics listing every
/// error.
pub(crate) fn check_schemas(layout: &Layout) {
    use ocikit_layout::ocikit_image::{ContentKind, MediaTypeExt};
    let schemas = schema::Schemas::load().expect("the schemas in oci-layout/tests/schema");
    let read = |path: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    };
    let mut errors = schemas.check(
        "image-layout-schema.json",
        &read(layout.root().join("oci-layout")),
    );
    errors.extend(schemas.check("image-index-schema.json", &read(layout.index_path())));
    let mut queue: Vec<Descriptor> = layout.index().unwrap().manifests().clone();
    let mut seen = std::collections::HashSet::new();
    while let Some(d) = queue.pop() {
        if !seen.insert(d.digest().clone()) {
            continue;
        }
        let path = layout.blob_path(d.digest());
        let file = match d.media_type().kind() {
            ContentKind::Manifest => "image-manifest-schema.json",
            ContentKind::Index => "image-index-schema.json",
            ContentKind::Config => "config-schema.json",
            _ => continue,
        };
        let doc = read(path);
        errors.extend(
            schemas
                .check(file, &doc)
                .into_iter()
                .map(|e| format!("{}: {e}", d.digest())),
        );
        match layout.get_manifest(&d) {
            Ok(AnyManifest::Manifest(m)) => {
                queue.push(m.config().clone());
                queue.extend(m.layers().iter().cloned());
            }
            Ok(AnyManifest::Index(i)) => queue.extend(i.manifests().iter().cloned()),
            Err(_) => {}
        }
    }
    assert!(errors.is_empty(), "schema errors:\n{}", errors.join("\n"));
}
