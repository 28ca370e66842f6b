//! Unpacking an image into a root filesystem: the recipe behind `examples/unpack.rs`.
//!
//! [`unpack_image`] resolves an image (through any index, for one platform), then applies its
//! layers in order into a directory, each verified twice as it streams: the compressed bytes
//! against the manifest's descriptor and the uncompressed tar against the config's
//! `rootfs.diff_ids`. Any mismatch is an error and the directory must not be used.

use std::path::{Path, PathBuf};

use crate::fsutil::remove_tree;

use ocikit_image::oci_spec::image::{Descriptor, Digest, Platform};
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
///
/// On failure (a layer that does not match its digest, a read error, a full disk) what was
/// written is removed: `rootfs` is left as it was found, empty or missing (with any parent
/// directory this call created), so a half-unpacked tree is never mistaken for the image.
pub fn unpack_image(
    source: &dyn ImageSource,
    reference: &TagOrDigest,
    platform: &Platform,
    rootfs: &Path,
    options: &ApplyOptions,
) -> Result<UnpackReport, Error> {
    let image = source.fetch_image(reference, platform)?;
    let diff_ids = checked_diff_ids(&image.manifest, &image.config)?;
    let layers = image.manifest.layers();
    let made = Undo::prepare_empty_dir(rootfs)?;
    let mut applied = Vec::with_capacity(layers.len());
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        let step = (|| {
            let blob = source.open_blob(layer)?;
            apply_layer(rootfs, blob, layer.media_type(), Some(diff_id), options)
        })();
        match step {
            Ok(report) => applied.push((layer.clone(), report)),
            Err(e) => {
                made.undo();
                return Err(e);
            }
        }
    }
    Ok(UnpackReport {
        manifest: image.manifest,
        config: image.config,
        layers: applied,
    })
}

/// The config's diff_ids, one for each of the manifest's layers, or the error that says they
/// disagree; and every layer must be a layer (not an artifact's blob).
pub(crate) fn checked_diff_ids(manifest: &Manifest, config: &Config) -> Result<Vec<Digest>, Error> {
    let diff_ids = config.diff_ids();
    let layers = manifest.layers();
    if diff_ids.len() != layers.len() {
        return Err(Error::Invalid {
            kind: ocikit_image::DocumentKind::Config,
            field: "rootfs.diff_ids".into(),
            reason: format!(
                "{} diff_ids for {} layers in the manifest",
                diff_ids.len(),
                layers.len()
            ),
        });
    }
    for layer in layers {
        if !matches!(layer.media_type().kind(), ContentKind::Layer { .. }) {
            return Err(Error::UnexpectedMediaType {
                expected: "a layer".into(),
                actual: layer.media_type().clone(),
            });
        }
    }
    Ok(diff_ids)
}

/// What an unpack made, to be taken back when it fails: the directory it fills and the
/// top-most directory it created on the way there (none when the directory existed).
struct Undo {
    dir: PathBuf,
    created: Option<PathBuf>,
}

impl Undo {
    /// Makes `dir` and its missing parents, remembering the top-most one it made.
    fn prepare_dir(dir: &Path) -> Result<Undo, Error> {
        let created = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && std::fs::symlink_metadata(a).is_err())
            .last()
            .map(Path::to_path_buf);
        std::fs::create_dir_all(dir).map_err(|source| Error::Apply {
            path: dir.display().to_string(),
            op: "create",
            source,
        })?;
        Ok(Undo {
            dir: dir.to_path_buf(),
            created,
        })
    }

    /// Makes `dir` (and its parents), refusing one that already has entries: layers applied
    /// over unknown content would not give the image's filesystem.
    fn prepare_empty_dir(dir: &Path) -> Result<Undo, Error> {
        let apply_err = |op, source| Error::Apply {
            path: dir.display().to_string(),
            op,
            source,
        };
        let undo = Undo::prepare_dir(dir)?;
        let mut entries = std::fs::read_dir(dir).map_err(|e| apply_err("read directory", e))?;
        if entries.next().is_some() {
            return Err(apply_err(
                "unpack into",
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the root filesystem directory is not empty",
                ),
            ));
        }
        Ok(undo)
    }

    /// Removes the directories this unpack created, if it created any; otherwise nothing.
    fn undo_if_created(self) {
        if let Some(top) = &self.created {
            let _ = remove_tree(top);
        }
    }

    /// Removes what was written: the directories this unpack created, or else everything in
    /// the directory it found empty. Best effort: the caller reports the error that caused it.
    fn undo(self) {
        match &self.created {
            Some(top) => {
                let _ = remove_tree(top);
            }
            None => {
                for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                    let _ = remove_tree(&entry.path());
                }
            }
        }
    }
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
///
/// `bundle` may exist, but must not hold a `config.json` or a non-empty `rootfs`. A failed
/// unpack or conversion leaves `bundle` as it was found: what was written is removed, and a
/// `bundle` directory this call created is removed whole.
pub fn unpack_bundle(
    source: &dyn ImageSource,
    reference: &TagOrDigest,
    platform: &Platform,
    bundle: &Path,
    apply: &ApplyOptions,
    convert: &crate::convert::ConvertOptions,
) -> Result<BundleReport, crate::Error> {
    let config = bundle.join("config.json");
    if std::fs::symlink_metadata(&config).is_ok() {
        return Err(crate::Error::Io {
            path: config,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the bundle already has a configuration",
            ),
        });
    }
    let made = Undo::prepare_dir(bundle)?;
    let rootfs = bundle.join("rootfs");
    let rootfs_existed = std::fs::symlink_metadata(&rootfs).is_ok();
    // unpack_image takes back what it wrote itself when it fails.
    let unpacked = match unpack_image(source, reference, platform, &rootfs, apply) {
        Ok(unpacked) => unpacked,
        Err(e) => {
            made.undo_if_created();
            return Err(e.into());
        }
    };
    let result = crate::convert::runtime_config(unpacked.config.value(), &rootfs, convert)
        .map_err(crate::Error::from)
        .and_then(|spec| write_config(bundle, &spec).map(|()| spec));
    match result {
        Ok(spec) => Ok(BundleReport { unpacked, spec }),
        Err(e) => {
            if made.created.is_some() {
                made.undo();
            } else {
                // The rootfs was empty or missing, as unpack_image checked.
                Undo {
                    created: (!rootfs_existed).then(|| rootfs.clone()),
                    dir: rootfs,
                }
                .undo();
            }
            Err(e)
        }
    }
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
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}
