//! Building images: layers from directories appended to a base image (or to nothing), and the
//! configuration edited to match. The recipe behind `examples/build.rs`.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use ocikit_image::oci_spec::image::{
    Config as ExecConfig, Descriptor, History, ImageConfiguration, ImageManifestBuilder, MediaType,
    Platform, RootFs,
};

use crate::progress::{self, BlobId, Event, Observer, Progress, Reporting};
use ocikit_image::{
    AnyManifest, BuiltLayer, Config, Error, ImageDestination, ImageSource, Manifest, MediaTypeExt,
    Tag, TagOrDigest, build_diff_layer, build_layer, descriptor_of, host_platform,
};

/// Where a new layer's content comes from.
#[derive(Clone, Debug)]
enum LayerSource {
    /// A whole tree.
    Dir(PathBuf),
    /// What changed from a base tree to a changed copy.
    Diff(PathBuf, PathBuf),
}

/// What to build: set with the chained setters of [`BuildSpec::new`].
#[derive(Clone, Debug, Default)]
pub struct BuildSpec {
    layers: Vec<LayerSource>,
    annotations: Vec<(String, String)>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    workdir: Option<String>,
    user: Option<String>,
    labels: Vec<(String, String)>,
    platform: Option<Platform>,
    created: Option<String>,
    layer_options: ocikit_image::BuildOptions,
    progress: Option<Observer>,
}

impl BuildSpec {
    /// Nothing to add yet: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer made from the tree under `dir` (in order; none by default).
    pub fn layer(mut self, dir: impl Into<PathBuf>) -> Self {
        self.layers.push(LayerSource::Dir(dir.into()));
        self
    }

    /// Appends a layer of what changed from the tree `base` to the tree `changed` (new and
    /// modified entries, whiteouts for deletions; see [`ocikit_image::build_diff_layer`]), like
    /// `umoci repack` after editing an unpacked rootfs.
    pub fn diff_layer(mut self, base: impl Into<PathBuf>, changed: impl Into<PathBuf>) -> Self {
        self.layers
            .push(LayerSource::Diff(base.into(), changed.into()));
        self
    }

    /// Sets one annotation of the image manifest.
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.push((key.into(), value.into()));
        self
    }

    /// Sets `Entrypoint` (default: the base's).
    pub fn entrypoint(mut self, args: Vec<String>) -> Self {
        self.entrypoint = Some(args);
        self
    }

    /// Sets `Cmd` (default: the base's).
    pub fn cmd(mut self, args: Vec<String>) -> Self {
        self.cmd = Some(args);
        self
    }

    /// Sets one `KEY=VALUE` in `Env`, replacing the base's value of `KEY` if it has one.
    pub fn env(mut self, key_value: impl Into<String>) -> Self {
        self.env.push(key_value.into());
        self
    }

    /// Sets `WorkingDir` (default: the base's).
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// Sets `User` (default: the base's).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Sets one label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// The platform: which image of a base index to build on, and what a scratch image says
    /// it is for. Default: the host's.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The `created` time, RFC 3339. Default: `SOURCE_DATE_EPOCH` when set, else now.
    pub fn created(mut self, rfc3339: impl Into<String>) -> Self {
        self.created = Some(rfc3339.into());
        self
    }

    /// How the layers are made (compression, time clamping, owners). Default:
    /// [`ocikit_image::BuildOptions::new`] with `SOURCE_DATE_EPOCH` from the environment.
    pub fn layer_options(mut self, options: ocikit_image::BuildOptions) -> Self {
        self.layer_options = options;
        self
    }

    /// Reports the blobs written to the destination to `observer` (default none): see
    /// [`progress`] and [`build_image`].
    pub fn progress(mut self, observer: impl Progress + 'static) -> Self {
        self.progress = Some(Observer::new(observer));
        self
    }
}

/// What [`build_image`] wrote.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BuildReport {
    /// The new image's manifest (always OCI).
    pub manifest: Manifest,
    /// Its configuration.
    pub config: Config,
    /// The layers built, in order (the base's are in the manifest before them).
    pub layers: Vec<BuiltLayer>,
}

/// Builds an image on `base` (a source and the reference of the image in it), or on nothing,
/// into `destination`, and names it `tag` there when given.
///
/// The base's config and layers are kept (its layers copied when the destination lacks them);
/// each directory of the spec becomes a layer with a history entry; the config's diff_ids,
/// `created` and the spec's settings are written. The manifest is an OCI one whatever the
/// base's family: layer and config bytes are never changed, only their media types.
///
/// Every layer is built (into temporary files) before anything is written to `destination`:
/// a directory that is missing or unreadable ([`Error::BuildDirectory`](crate::Error::BuildDirectory))
/// or a failed build leaves it as it was. The [`progress`](BuildSpec::progress) observer then
/// gets the image's total (base layers, new layers, config) and each blob's events as the
/// destination takes it.
pub fn build_image(
    base: Option<(&dyn ImageSource, &TagOrDigest)>,
    destination: &dyn ImageDestination,
    tag: Option<&Tag>,
    spec: &BuildSpec,
) -> Result<BuildReport, crate::Error> {
    for source in &spec.layers {
        let dirs = match source {
            LayerSource::Dir(dir) => vec![dir],
            LayerSource::Diff(base, changed) => vec![base, changed],
        };
        for dir in dirs {
            let checked = std::fs::metadata(dir).and_then(|m| {
                if m.is_dir() {
                    Ok(())
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "not a directory",
                    ))
                }
            });
            if let Err(source) = checked {
                return Err(crate::Error::BuildDirectory {
                    path: dir.clone(),
                    source,
                });
            }
        }
    }
    let platform = spec.platform.clone().unwrap_or_else(host_platform);
    let created = spec.created.clone().unwrap_or_else(now_rfc3339);
    let (mut config, base_layers) = match base {
        Some((source, reference)) => {
            let image = source.fetch_image(reference, &platform)?;
            (image.config.into_value(), image.manifest.layers().clone())
        }
        None => {
            let mut c = ImageConfiguration::default();
            c.set_os(platform.os().clone());
            c.set_architecture(platform.architecture().clone());
            c.set_variant(platform.variant().clone());
            c.set_rootfs(RootFs::default());
            c.set_config(Some(ExecConfig::default()));
            (c, Vec::new())
        }
    };

    // Every layer built first, each into a temporary file removed when `built` is dropped.
    let mut built: Vec<(BuiltLayer, TempLayer)> = Vec::new();
    let mut history = config.history().clone().unwrap_or_default();
    for source in &spec.layers {
        let (layer, file) = build_to_temp(source, &spec.layer_options)?;
        config
            .rootfs_mut()
            .diff_ids_mut()
            .push(layer.diff_id.to_string());
        let mut h = History::default();
        h.set_created(Some(created.clone()));
        h.set_created_by(Some(match source {
            LayerSource::Dir(dir) => format!("ocikit build --layer {}", dir.display()),
            LayerSource::Diff(base, changed) => format!(
                "ocikit build --diff {} {}",
                base.display(),
                changed.display()
            ),
        }));
        history.push(h);
        built.push((layer, file));
    }
    config.set_history(Some(history));
    config.set_created(Some(created));
    let mut exec = config.config().clone().unwrap_or_default();
    if let Some(e) = &spec.entrypoint {
        exec.set_entrypoint(Some(e.clone()));
    }
    if let Some(c) = &spec.cmd {
        exec.set_cmd(Some(c.clone()));
    }
    if let Some(w) = &spec.workdir {
        exec.set_working_dir(Some(w.clone()));
    }
    if let Some(u) = &spec.user {
        exec.set_user(Some(u.clone()));
    }
    if !spec.env.is_empty() {
        let mut env = exec.env().clone().unwrap_or_default();
        for kv in &spec.env {
            let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
            env.push(kv.clone());
        }
        exec.set_env(Some(env));
    }
    if !spec.labels.is_empty() {
        let mut labels = exec.labels().clone().unwrap_or_default();
        labels.extend(spec.labels.iter().cloned());
        exec.set_labels(Some(labels));
    }
    config.set_config(Some(exec));
    let config = Config::new(config)?;
    let config_descriptor = descriptor_of(MediaType::ImageConfig, config.raw());

    // Now the destination: base layers, new layers, config, manifest.
    let observer = spec.progress.as_ref();
    if let Some(o) = observer {
        let mut all = base_layers.clone();
        all.extend(built.iter().map(|(l, _)| l.descriptor.clone()));
        all.push(config_descriptor.clone());
        o.total(&all);
    }
    let mut layers = Vec::new();
    if let Some((source, _)) = base {
        for layer in &base_layers {
            let id = BlobId::next();
            let copied = match observer {
                Some(observer) => destination.copy_blob_from(
                    &Reporting {
                        inner: source,
                        id,
                        observer,
                    },
                    layer,
                )?,
                None => destination.copy_blob_from(source, layer)?,
            };
            progress::send(observer, end_event(copied, id, layer));
            let mut layer = layer.clone();
            layer.set_media_type(layer.media_type().to_oci());
            layers.push(layer);
        }
    }
    for (layer, file) in &mut built {
        put_blob(destination, &layer.descriptor, &mut file.file, observer)?;
        layers.push(layer.descriptor.clone());
    }
    put_blob(destination, &config_descriptor, &mut config.raw(), observer)?;
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_descriptor)
        .layers(layers);
    if !spec.annotations.is_empty() {
        manifest = manifest.annotations(
            spec.annotations
                .iter()
                .cloned()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    let manifest = store_manifest(manifest, destination, tag)?;
    Ok(BuildReport {
        manifest,
        config,
        layers: built.into_iter().map(|(l, _)| l).collect(),
    })
}

/// The event that ends a blob's progress: done when bytes were stored, skipped otherwise.
fn end_event(copied: bool, id: BlobId, descriptor: &Descriptor) -> Event<'_> {
    if copied {
        Event::Done { id, descriptor }
    } else {
        Event::Skipped { id, descriptor }
    }
}

/// Stores one blob read from `data` unless the destination has it, with its progress.
fn put_blob(
    destination: &dyn ImageDestination,
    descriptor: &Descriptor,
    data: &mut dyn Read,
    observer: Option<&Observer>,
) -> Result<(), Error> {
    let id = BlobId::next();
    if destination.has_blob(descriptor)? {
        progress::send(observer, Event::Skipped { id, descriptor });
        return Ok(());
    }
    match observer {
        Some(observer) => destination.put_blob(
            descriptor,
            &mut progress::Counting::start(data, id, descriptor, observer),
        )?,
        None => destination.put_blob(descriptor, data)?,
    }
    progress::send(observer, Event::Done { id, descriptor });
    Ok(())
}

/// A built layer's temporary file, removed on drop.
struct TempLayer {
    file: File,
    path: PathBuf,
}

impl Drop for TempLayer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Builds a layer into a temporary file, rewound to its start for the destination (which
/// verifies it again on the way in).
fn build_to_temp(
    source: &LayerSource,
    options: &ocikit_image::BuildOptions,
) -> Result<(BuiltLayer, TempLayer), Error> {
    let (file, path) = temp_file()?;
    let mut temp = TempLayer { file, path };
    let out = BufWriter::new(&temp.file);
    let layer = match source {
        LayerSource::Dir(dir) => build_layer(dir, out, options)?,
        LayerSource::Diff(base, changed) => build_diff_layer(base, changed, out, options)?,
    };
    temp.file.seek(SeekFrom::Start(0))?;
    Ok((layer, temp))
}

fn temp_file() -> Result<(File, PathBuf), Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".ocikit-layer-{}-{n}", std::process::id()));
        match File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `SOURCE_DATE_EPOCH` when set, else the current time, as RFC 3339 in UTC.
fn now_rfc3339() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    rfc3339(secs)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
/// Finishes `manifest`, stores it in `destination` and names it `tag` when given.
pub(crate) fn store_manifest(
    manifest: ImageManifestBuilder,
    destination: &dyn ImageDestination,
    tag: Option<&Tag>,
) -> Result<Manifest, Error> {
    let manifest = manifest.build().map_err(|e| Error::Invalid {
        kind: ocikit_image::DocumentKind::Manifest,
        field: String::new(),
        reason: e.to_string(),
    })?;
    let manifest = Manifest::new(manifest)?;
    let any = AnyManifest::Manifest(manifest.clone());
    destination.put_manifest(&any)?;
    if let Some(tag) = tag {
        destination.tag(tag, &any)?;
    }
    Ok(manifest)
}

pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Makes an image index of `images` (manifest descriptors, each with its platform) in
/// `destination`, named `tag` when given: what `docker manifest create` or `crane index
/// append` makes, for images built for several platforms.
pub fn build_index(
    destination: &dyn ImageDestination,
    images: &[ocikit_image::oci_spec::image::Descriptor],
    tag: Option<&Tag>,
) -> Result<ocikit_image::Index, Error> {
    for (i, d) in images.iter().enumerate() {
        if d.platform().is_none() {
            return Err(Error::Invalid {
                kind: ocikit_image::DocumentKind::Index,
                field: format!("manifests[{i}].platform"),
                reason: "every image of a multi-platform index needs its platform".into(),
            });
        }
    }
    let index = ocikit_image::oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(images.to_vec())
        .build()
        .map_err(|e| Error::Invalid {
            kind: ocikit_image::DocumentKind::Index,
            field: String::new(),
            reason: e.to_string(),
        })?;
    let index = ocikit_image::Index::new(index)?;
    let any = AnyManifest::Index(index.clone());
    destination.put_manifest(&any)?;
    if let Some(tag) = tag {
        destination.tag(tag, &any)?;
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
