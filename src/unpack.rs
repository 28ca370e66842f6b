//! Unpacking an image into a root filesystem: the recipe behind `examples/unpack.rs`.
//!
//! [`unpack_image`] resolves an image (through any index, for one platform), then applies its
//! layers in order into a directory, each verified twice as it streams: the compressed bytes
//! against the manifest's descriptor and the uncompressed tar against the config's
//! `rootfs.diff_ids`. Any mismatch is an error and the directory must not be used.

use std::path::Path;

use ocikit_image::oci_spec::image::{Descriptor, Platform};
use ocikit_image::{
    ApplyOptions, ApplyReport, Config, ContentKind, Error, ImageSource, Manifest, MediaTypeExt,
    TagOrDigest, apply_layer,
};

/// What [`unpack_image`] did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UnpackReport {
    /// The image manifest unpacked.
    pub manifest: Manifest,
    /// Its configuration (the runtime configuration is made from it).
    pub config: Config,
    /// Each layer with what applying it did, base first.
    pub layers: Vec<(Descriptor, ApplyReport)>,
}

/// Unpacks the image `reference` names in `source`, for `platform` when it names an index,
/// into the directory `rootfs`, which must be empty or not exist yet.
///
/// Non-distributable layers are applied like any other when the source has them; a source
/// without one is an error, as the image cannot be unpacked whole.
pub fn unpack_image(
    source: &dyn ImageSource,
    reference: &TagOrDigest,
    platform: &Platform,
    rootfs: &Path,
    options: &ApplyOptions,
) -> Result<UnpackReport, Error> {
    let image = source.fetch_image(reference, platform)?;
    let diff_ids = image.config.diff_ids();
    let layers = image.manifest.layers();
    if diff_ids.len() != layers.len() {
        return Err(ocikit_image::Error::Invalid {
            kind: ocikit_image::DocumentKind::Config,
            field: "rootfs.diff_ids".into(),
            reason: format!(
                "{} diff_ids for {} layers in the manifest",
                diff_ids.len(),
                layers.len()
            ),
        });
    }
    prepare_empty_dir(rootfs)?;
    let mut applied = Vec::with_capacity(layers.len());
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        if !matches!(layer.media_type().kind(), ContentKind::Layer { .. }) {
            return Err(Error::UnexpectedMediaType {
                expected: "a layer".into(),
                actual: layer.media_type().clone(),
            });
        }
        let blob = source.open_blob(layer)?;
        let report = apply_layer(rootfs, blob, layer.media_type(), Some(diff_id), options)?;
        applied.push((layer.clone(), report));
    }
    Ok(UnpackReport {
        manifest: image.manifest,
        config: image.config,
        layers: applied,
    })
}

/// Makes `dir` (and its parents), refusing one that already has entries: layers applied over
/// unknown content would not give the image's filesystem.
fn prepare_empty_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Apply {
        path: dir.display().to_string(),
        op: "create",
        source: e,
    })?;
    let mut entries = std::fs::read_dir(dir).map_err(|e| Error::Apply {
        path: dir.display().to_string(),
        op: "read directory",
        source: e,
    })?;
    if entries.next().is_some() {
        return Err(Error::Apply {
            path: dir.display().to_string(),
            op: "unpack into",
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the root filesystem directory is not empty",
            ),
        });
    }
    Ok(())
}

/// What [`unpack_bundle`] made.
#[derive(Debug)]
#[non_exhaustive]
pub struct BundleReport {
    /// The root filesystem unpacked.
    pub unpacked: UnpackReport,
    /// The runtime configuration written to `config.json`.
    pub spec: oci_spec::runtime::Spec,
}

/// Unpacks an image into a runtime bundle: `bundle/rootfs` (see [`unpack_image`]) and
/// `bundle/config.json` converted from the image configuration (see
/// [`runtime_config`](crate::convert::runtime_config)), like `umoci unpack`. A bundle any OCI
/// runtime (runc, `oci-runtime`) can run.
pub fn unpack_bundle(
    source: &dyn ImageSource,
    reference: &TagOrDigest,
    platform: &Platform,
    bundle: &Path,
    apply: &ApplyOptions,
    convert: &crate::convert::ConvertOptions,
) -> Result<BundleReport, crate::Error> {
    let rootfs = bundle.join("rootfs");
    let unpacked = unpack_image(source, reference, platform, &rootfs, apply)?;
    let spec = crate::convert::runtime_config(unpacked.config.value(), &rootfs, convert)?;
    write_config(bundle, &spec)?;
    Ok(BundleReport { unpacked, spec })
}

/// Writes `bundle/config.json` through a temporary file renamed into place.
pub(crate) fn write_config(
    bundle: &Path,
    spec: &oci_spec::runtime::Spec,
) -> Result<(), crate::Error> {
    let path = bundle.join("config.json");
    let tmp = bundle.join(".config.json.tmp");
    let io = |source| crate::Error::Io {
        path: path.clone(),
        source,
    };
    let text = serde_json::to_vec_pretty(spec).map_err(|e| io(e.into()))?;
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}
