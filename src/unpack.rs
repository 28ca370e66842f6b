//! Unpacking an image into a root filesystem: the recipe behind `examples/unpack.rs`.
//!
//! [`unpack_image`] takes an image (resolved through any index, for one platform, by
//! [`OpenedSource::image`](crate::copy::OpenedSource::image) or
//! [`ImageSource::fetch_image`]), then applies its layers in order into a directory, each
//! verified twice as it streams: the compressed bytes against the manifest's descriptor and
//! the uncompressed tar against the config's `rootfs.diff_ids`. Any mismatch is an error and the directory must not be used.

use std::path::{Path, PathBuf};

use crate::fsutil::remove_tree;

use crate::progress::{BlobId, Counting, Event, Observer, Progress};
use ocikit_image::oci_spec::image::{Descriptor, Digest};
use ocikit_image::{
    ApplyOptions, ApplyReport, Config, ContentKind, Error, ImageSource, Manifest, MediaTypeExt,
    ResolvedImage, apply_layer,
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

/// How [`unpack_image`] and [`unpack_bundle`] unpack, set with chained setters on
/// [`UnpackOptions::new`].
#[derive(Clone, Debug)]
pub struct UnpackOptions {
    apply: ApplyOptions,
    convert: crate::convert::ConvertOptions,
    progress: Option<Observer>,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            apply: ApplyOptions::new(),
            convert: crate::convert::ConvertOptions::new(),
            progress: None,
        }
    }
}

impl UnpackOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// How layers are applied (owners, whiteouts, size limits; default
    /// [`ApplyOptions::new`]).
    pub fn apply(mut self, options: ApplyOptions) -> Self {
        self.apply = options;
        self
    }

    /// How [`unpack_bundle`] makes `config.json` of the image's configuration (default
    /// [`ConvertOptions::new`](crate::convert::ConvertOptions::new)).
    pub fn convert(mut self, options: crate::convert::ConvertOptions) -> Self {
        self.convert = options;
        self
    }

    /// Reports the layers to `observer` (default none): their total, then each layer
    /// started, its compressed bytes as they are applied, done once applied and verified.
    /// See [`progress`](crate::progress).
    pub fn progress(mut self, observer: impl Progress + 'static) -> Self {
        self.progress = Some(Observer::new(observer));
        self
    }

    pub(crate) fn observer(mut self, observer: Option<Observer>) -> Self {
        self.progress = observer;
        self
    }
}

/// Unpacks `image` (found in `source`, e.g. by [`OpenedSource::image`](crate::copy::OpenedSource::image)
/// or [`ImageSource::fetch_image`]) into the directory `rootfs`, which must be empty or not
/// exist yet.
///
/// Non-distributable layers are applied like any other when the source has them; a source
/// without one is an error, as the image cannot be unpacked whole.
///
/// On failure (a layer that does not match its digest, a read error, a full disk) what was
/// written is removed: `rootfs` is left as it was found, empty or missing (with any parent
/// directory this call created), so a half-unpacked tree is never mistaken for the image.
pub fn unpack_image(
    source: &dyn ImageSource,
    image: &ResolvedImage,
    rootfs: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, Error> {
    let diff_ids = checked_diff_ids(&image.manifest, &image.config)?;
    let layers = image.manifest.layers();
    let observer = options.progress.as_ref();
    if let Some(o) = observer {
        o.total(layers);
    }
    let made = Undo::prepare_empty_dir(rootfs)?;
    let mut applied = Vec::with_capacity(layers.len());
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        let id = BlobId::next();
        let step = (|| -> Result<ApplyReport, Error> {
            let blob = source.open_blob(layer)?;
            let report = match observer {
                Some(o) => {
                    let blob = Counting::start(blob, id, layer, o);
                    apply_layer(
                        rootfs,
                        blob,
                        layer.media_type(),
                        Some(diff_id),
                        &options.apply,
                    )?
                }
                None => apply_layer(
                    rootfs,
                    blob,
                    layer.media_type(),
                    Some(diff_id),
                    &options.apply,
                )?,
            };
            crate::progress::send(
                observer,
                Event::Done {
                    id,
                    descriptor: layer,
                },
            );
            Ok(report)
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
        manifest: image.manifest.clone(),
        config: image.config.clone(),
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
    image: &ResolvedImage,
    bundle: &Path,
    options: &UnpackOptions,
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
    let unpacked = match unpack_image(source, image, &rootfs, options) {
        Ok(unpacked) => unpacked,
        Err(e) => {
            made.undo_if_created();
            return Err(e.into());
        }
    };
    let result = crate::convert::runtime_config(unpacked.config.value(), &rootfs, &options.convert)
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
