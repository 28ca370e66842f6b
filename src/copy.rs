//! Copying images between the places they live: the recipe behind `examples/copy.rs`.
//!
//! [`copy_image`] is generic over [`ImageSource`] and [`ImageDestination`]: it resolves a
//! reference, walks indexes (one platform, or all of them), copies each blob the destination
//! lacks (verified on the way), then stores manifests bottom-up and names the top one.
//! Manifests are copied as their raw bytes, so digests are kept, except where the destination
//! cannot hold them as they are: a legacy docker archive stores no manifest (an image read
//! back from one gets a Docker manifest made for it), and [`copy`] rewrites Docker manifests
//! into OCI ones for `oci:` and `oci-archive:` (see [`CopyOptions::format`]).
//!
//! [`Location`] parses the `oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]`,
//! `docker-archive:FILE[:REPO:TAG]` and `docker://REFERENCE` forms skopeo uses (and a bare
//! `HOST/NAME[:TAG]`, as [`pull`] and [`push`] take), and [`copy`] opens both ends and copies.
//!
//! ```
//! use ocikit::copy::{CopyOptions, Location, copy};
//! # let dir = tempfile::tempdir()?;
//! # let src = dir.path().join("src");
//! # ocikit::layout::Layout::create(&src)?;
//! # // An empty layout has nothing to copy: this shows the call only.
//! let from: Location = format!("oci:{}:latest", src.display()).parse()?;
//! let to: Location = format!("oci-archive:{}/out.tar:latest", dir.path().display()).parse()?;
//! assert!(copy(&from, &to, &CopyOptions::new()).is_err()); // no image named latest
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use crate::Error;
use crate::context::{MirroredSource, SystemContext};
use crate::progress::{BlobId, Event, Observer, Progress, Reporting};
use ocikit_distribution::Repository;
use ocikit_image::oci_spec::image::{Descriptor, Platform};
use ocikit_image::{
    AnyManifest, ContentKind, Format, ImageDestination, ImageSource, MAX_INDEX_DEPTH, MediaTypeExt,
    ResolvedImage, Tag, TagOrDigest, host_platform, select_manifest,
};
use ocikit_layout::{
    DockerArchive, DockerArchiveWriter, Layout, OciArchive, OciArchiveWriter, RefName,
};

/// Which images of an index to copy.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    platform: Option<Platform>,
    platforms: Vec<Platform>,
    index_only: bool,
    all: bool,
    format: Option<Format>,
    jobs: Option<usize>,
    progress: Option<Observer>,
    mount_from: Option<String>,
    referrers: bool,
    source_context: Option<SystemContext>,
    destination_context: Option<SystemContext>,
    /// How many times a blob that fails verification is fetched (from the source's next
    /// place): the source's places, set by [`copy`].
    blob_tries: usize,
    trust: crate::trust::TrustOptions,
    compress_layers: Option<ocikit_image::Compression>,
}

impl CopyOptions {
    /// Defaults: the image for this host's platform.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies the image for `platform` out of an index (default: the host's platform). A
    /// reference that names a manifest is copied whatever its platform.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// Copies an index with every image it lists, unchanged (default: false).
    pub fn all(mut self, all: bool) -> Self {
        self.all = all;
        self
    }

    /// Rewrites manifests and indexes of the other family into `format` (media types of the
    /// document, its config and layers; config and layer bytes are untouched, the rewritten
    /// documents get new digests). Default: `None`, every document is copied as is.
    ///
    /// [`copy`] asks for [`Format::Oci`] when writing to `oci:` and `oci-archive:`, since
    /// skopeo and umoci read only OCI manifests from a layout.
    pub fn format(mut self, format: Option<Format>) -> Self {
        self.format = format;
        self
    }

    /// Copies an index keeping only the images for these platforms (and nested indexes):
    /// the index is rewritten with the remaining entries, so its digest changes, as with
    /// `crane copy --platform` of several platforms. Default: empty (see
    /// [`platform`](Self::platform) and [`all`](Self::all)).
    pub fn platforms(mut self, platforms: Vec<Platform>) -> Self {
        self.platforms = platforms;
        self
    }

    /// Copies only the manifest or index named, none of what it refers to, like skopeo's
    /// `--multi-arch index-only` (default false). The destination must accept an index whose
    /// images it does not hold (registries do; a layout then fails its fsck until they come).
    pub fn index_only(mut self, index_only: bool) -> Self {
        self.index_only = index_only;
        self
    }

    /// Before uploading a blob the destination lacks, asks it to mount the blob from this
    /// repository of the same registry (cross-repository mount), uploading only when it
    /// declines. [`copy`] sets it for `docker://` to `docker://` on one registry. Default:
    /// none.
    pub fn mount_from(mut self, repository: Option<String>) -> Self {
        self.mount_from = repository;
        self
    }

    /// Also copies the manifests that refer to what is copied (signatures, SBOMs, any
    /// artifact whose `subject` is a copied manifest), and theirs in turn, like `oras copy -r`
    /// (default false). Referrers are copied as they are, never rewritten.
    pub fn referrers(mut self, referrers: bool) -> Self {
        self.referrers = referrers;
        self
    }

    /// How a `docker://` source is reached: registries.conf, TLS, credentials (skopeo's
    /// `--src-*` options). Default: [`SystemContext::new`], the system's files.
    pub fn source_context(mut self, context: SystemContext) -> Self {
        self.source_context = Some(context);
        self
    }

    /// How a `docker://` destination is reached (skopeo's `--dest-*` options). Default:
    /// [`SystemContext::new`], the system's files.
    pub fn destination_context(mut self, context: SystemContext) -> Self {
        self.destination_context = Some(context);
        self
    }

    /// The signature policy [`copy`] enforces before it reads any blob, the signatures it
    /// carries along and those it makes (default: [`TrustOptions::new`](crate::trust::TrustOptions::new),
    /// the policy at the usual locations, none accepting everything). [`copy_image`] checks
    /// nothing: its caller decides.
    pub fn trust(mut self, trust: crate::trust::TrustOptions) -> Self {
        self.trust = trust;
        self
    }

    /// Stores the image's layers with `compression` (skopeo's `--dest-compress-format`): each
    /// layer in another compression is decompressed, its `diff_id` checked against the
    /// config, compressed again and stored under its new digest; the manifest is rewritten
    /// with the new descriptors (so its digest changes). zstd layers exist only in the OCI
    /// family: documents are then written as OCI ones unless [`format`](Self::format) says
    /// otherwise. Default: `None`, layers are copied as they are.
    pub fn compress_layers(mut self, compression: Option<ocikit_image::Compression>) -> Self {
        self.compress_layers = compression;
        self
    }

    /// The format documents are written in: [`format`](Self::format)'s, else OCI when layers
    /// are recompressed to zstd.
    fn effective_format(&self) -> Option<Format> {
        self.format.or(
            (self.compress_layers == Some(ocikit_image::Compression::Zstd)).then_some(Format::Oci),
        )
    }

    /// How many blobs are copied at once (default 4; at least 1).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Reports the copy to `observer` (default none): the total of each image copied, and
    /// each blob started, its bytes as the destination takes them, and once its end (done,
    /// skipped, mounted): see [`progress`](crate::progress). Blobs are copied on up to
    /// [`jobs`](Self::jobs) threads, and the observer is called from each of them.
    pub fn progress(mut self, observer: impl Progress + 'static) -> Self {
        self.progress = Some(Observer::new(observer));
        self
    }
}

/// What happened to one blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobAction {
    /// Copied: the destination did not have it.
    Copied,
    /// Skipped: the destination had it.
    Skipped,
    /// Mounted from another repository of the same registry, without uploading.
    Mounted,
    /// Left out: a non-distributable layer the source does not hold.
    NotAvailable,
}

impl fmt::Display for BlobAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlobAction::Copied => "copied",
            BlobAction::Skipped => "skipped",
            BlobAction::Mounted => "mounted",
            BlobAction::NotAvailable => "not available",
        })
    }
}

/// One blob of a copy.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BlobCopy {
    /// The blob (config or layer).
    pub descriptor: Descriptor,
    /// What was done.
    pub action: BlobAction,
}

/// What [`copy_image`] did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CopyReport {
    /// Every config and layer, in copy order.
    pub blobs: Vec<BlobCopy>,
    /// Every manifest and index stored, children before parents.
    pub manifests: Vec<Descriptor>,
    /// The manifest or index copied at the top (what was named, if a name was given).
    pub top: AnyManifest,
}

impl CopyReport {
    /// Bytes of blobs actually copied.
    pub fn bytes_copied(&self) -> u64 {
        self.blobs
            .iter()
            .filter(|b| b.action == BlobAction::Copied)
            .map(|b| b.descriptor.size())
            .sum()
    }
}

/// Copies the image `reference` names from `source` to `destination` and names it `tag`
/// there, when given.
///
/// Without [`CopyOptions::all`], indexes are walked down to the manifest of the wanted
/// platform and only that manifest is copied (and named); with it, the index and all it
/// lists are copied unchanged. Blobs the destination has are skipped.
pub fn copy_image(
    source: &(dyn ImageSource + Sync),
    reference: &TagOrDigest,
    destination: &(dyn ImageDestination + Sync),
    tag: Option<&Tag>,
    options: &CopyOptions,
) -> ocikit_image::Result<CopyReport> {
    let (descriptor, doc) = source.resolve_manifest(reference)?;
    copy_fetched(source, descriptor, doc, destination, tag, options)
}

/// [`copy_image`] of the manifest or index `descriptor` names, `doc`, already fetched.
fn copy_fetched(
    source: &(dyn ImageSource + Sync),
    mut descriptor: Descriptor,
    mut doc: AnyManifest,
    destination: &(dyn ImageDestination + Sync),
    tag: Option<&Tag>,
    options: &CopyOptions,
) -> ocikit_image::Result<CopyReport> {
    let platform = options.platform.clone().unwrap_or_else(host_platform);
    let mut report = Report::default();
    let top = if options.index_only {
        destination.put_manifest(&doc)?;
        report.manifests.push(doc.descriptor());
        doc
    } else {
        // Without `all` or a platform list, indexes are walked down to the one platform.
        let whole_tree = options.all || !options.platforms.is_empty();
        let mut depth = 0;
        while let (false, AnyManifest::Index(index)) = (whole_tree, &doc) {
            if depth == MAX_INDEX_DEPTH {
                return Err(ocikit_image::Error::Invalid {
                    kind: ocikit_image::DocumentKind::Index,
                    field: "manifests".into(),
                    reason: format!("indexes nested deeper than {MAX_INDEX_DEPTH}"),
                });
            }
            descriptor = select_manifest(index, &platform)?.clone();
            doc = source.fetch_manifest(&descriptor)?;
            depth += 1;
        }
        copy_tree(
            source,
            &descriptor,
            Some(doc),
            destination,
            &mut report,
            options,
            0,
        )?
    };
    if options.referrers {
        copy_referrers(source, destination, &mut report, options)?;
    }
    if let Some(tag) = tag {
        destination.tag(tag, &top)?;
    }
    Ok(CopyReport {
        blobs: report.blobs,
        manifests: report.manifests,
        top,
    })
}

#[derive(Default)]
struct Report {
    blobs: Vec<BlobCopy>,
    manifests: Vec<Descriptor>,
}

/// The most referrers one copy follows (a guard against registries that answer without
/// end).
const MAX_REFERRERS: usize = 1024;

/// Copies the referrers of every manifest copied so far, and theirs, as they are.
fn copy_referrers(
    source: &(dyn ImageSource + Sync),
    destination: &(dyn ImageDestination + Sync),
    report: &mut Report,
    options: &CopyOptions,
) -> ocikit_image::Result<()> {
    let as_is = CopyOptions {
        format: None,
        platforms: Vec::new(),
        referrers: false,
        ..options.clone()
    };
    let mut seen: std::collections::HashSet<String> = report
        .manifests
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    let mut queue: Vec<Descriptor> = report.manifests.clone();
    while let Some(subject) = queue.pop() {
        for referrer in source.referrers(&subject)? {
            if !seen.insert(referrer.digest().to_string()) {
                continue;
            }
            if seen.len() > MAX_REFERRERS + report.manifests.len() {
                return Err(ocikit_image::Error::Invalid {
                    kind: ocikit_image::DocumentKind::Index,
                    field: "referrers".into(),
                    reason: format!("more than {MAX_REFERRERS} referrers"),
                });
            }
            let before = report.manifests.len();
            copy_tree(source, &referrer, None, destination, report, &as_is, 0)?;
            queue.extend(report.manifests[before..].iter().cloned());
        }
    }
    Ok(())
}

/// Copies `blobs` on up to `options.jobs` threads, skipping what the destination has;
/// records each in manifest order.
fn copy_blobs(
    source: &(dyn ImageSource + Sync),
    blobs: &[Descriptor],
    destination: &(dyn ImageDestination + Sync),
    report: &mut Report,
    options: &CopyOptions,
) -> ocikit_image::Result<()> {
    let observer = options.progress.as_ref();
    if let Some(o) = observer {
        o.total(blobs);
    }
    let copy_one = |d: &Descriptor| -> ocikit_image::Result<BlobCopy> {
        let id = BlobId::next();
        let reporting;
        let source: &dyn ImageSource = match observer {
            Some(observer) => {
                reporting = Reporting {
                    inner: source,
                    id,
                    observer,
                };
                &reporting
            }
            None => source,
        };
        let mounted = match &options.mount_from {
            Some(from) if !destination.has_blob(d)? => destination.mount_blob(d, from)?,
            _ => false,
        };
        let copied = if mounted {
            Ok(true)
        } else {
            // A blob that fails verification is fetched again, from the source's next place
            // (a registry's mirrors and location), as often as it has places.
            let mut tries = options.blob_tries.max(1);
            loop {
                tries -= 1;
                match destination.copy_blob_from(source, d) {
                    Err(e) if tries > 0 && e.is_verification() => continue,
                    other => break other,
                }
            }
        };
        let action = match copied {
            Ok(true) if mounted => BlobAction::Mounted,
            Ok(true) => BlobAction::Copied,
            Ok(false) => BlobAction::Skipped,
            Err(ocikit_image::Error::NotFound(_))
                if matches!(
                    d.media_type().kind(),
                    ContentKind::Layer {
                        distributable: false,
                        ..
                    }
                ) =>
            {
                BlobAction::NotAvailable
            }
            Err(e) => return Err(e),
        };
        // Exactly one end per blob, once the destination holds it.
        crate::progress::send(
            observer,
            match (action, &options.mount_from) {
                (BlobAction::Copied, _) => Event::Done { id, descriptor: d },
                (BlobAction::Mounted, Some(from)) => Event::Mounted {
                    id,
                    descriptor: d,
                    from,
                },
                _ => Event::Skipped { id, descriptor: d },
            },
        );
        Ok(BlobCopy {
            descriptor: d.clone(),
            action,
        })
    };
    let jobs = options.jobs.unwrap_or(4).min(blobs.len()).max(1);
    let results: Vec<ocikit_image::Result<BlobCopy>> = if jobs == 1 {
        blobs.iter().map(copy_one).collect()
    } else {
        // Largest first: the biggest blob bounds the copy's time, so it must not start last.
        let mut order: Vec<usize> = (0..blobs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(blobs[i].size()));
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<ocikit_image::Result<BlobCopy>>>> =
            blobs.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let r = copy_one(&blobs[i]);
                        let failed = r.is_err();
                        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                        if failed {
                            // Stop handing out work; blobs in flight finish.
                            next.store(blobs.len(), Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        slots
            .into_iter()
            .filter_map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect()
    };
    for r in results {
        report.blobs.push(r?);
    }
    Ok(())
}

/// The media type in `format`, when it is of the other family.
fn convert_type(
    media_type: &oci_spec::image::MediaType,
    format: Format,
) -> Option<oci_spec::image::MediaType> {
    if media_type.format() == Some(format) || media_type.format().is_none() {
        return None;
    }
    match format {
        Format::Oci => Some(media_type.to_oci()),
        _ => media_type.to_docker(),
    }
}

fn copy_tree(
    source: &(dyn ImageSource + Sync),
    descriptor: &Descriptor,
    fetched: Option<AnyManifest>,
    destination: &(dyn ImageDestination + Sync),
    report: &mut Report,
    options: &CopyOptions,
    depth: usize,
) -> ocikit_image::Result<AnyManifest> {
    let mut doc = match fetched {
        Some(doc) => doc,
        None => source.fetch_manifest(descriptor)?,
    };
    match &mut doc {
        AnyManifest::Manifest(m) => {
            let mut blobs = vec![m.config().clone()];
            match options.compress_layers {
                Some(compression) => {
                    let (layers, copies) =
                        crate::recompress::recompress_layers(source, m, destination, compression)?;
                    // The layers left as they are, with the config, are copied as usual.
                    blobs.extend(layers.iter().filter(|l| m.layers().contains(l)).cloned());
                    copy_blobs(source, &blobs, destination, report, options)?;
                    report.blobs.extend(copies);
                    if &layers != m.layers() {
                        m.edit(|v| {
                            v.set_layers(layers);
                        })?;
                    }
                }
                None => {
                    blobs.extend(m.layers().iter().cloned());
                    copy_blobs(source, &blobs, destination, report, options)?;
                }
            }
            if let Some(format) = options.effective_format()
                && let Some(to) = convert_type(m.media_type(), format)
            {
                m.edit(|v| {
                    v.set_media_type(Some(to));
                    let mut config = v.config().clone();
                    if let Some(t) = convert_type(config.media_type(), format) {
                        config.set_media_type(t);
                    }
                    v.set_config(config);
                    for layer in v.layers_mut() {
                        if let Some(t) = convert_type(layer.media_type(), format) {
                            layer.set_media_type(t);
                        }
                    }
                })?;
            }
        }
        AnyManifest::Index(index) => {
            if depth >= MAX_INDEX_DEPTH {
                return Err(ocikit_image::Error::Invalid {
                    kind: ocikit_image::DocumentKind::Index,
                    field: "manifests".into(),
                    reason: format!("indexes nested deeper than {MAX_INDEX_DEPTH}"),
                });
            }
            let mut children = Vec::new();
            for child in index.manifests() {
                let wanted = options.platforms.is_empty()
                    || child.platform().as_ref().is_none_or(|p| {
                        child.media_type().kind() == ContentKind::Index
                            || options
                                .platforms
                                .iter()
                                .any(|w| ocikit_image::platform_matches(w, p))
                    });
                if !wanted {
                    continue;
                }
                if child.media_type().is_manifest_like() {
                    let copied =
                        copy_tree(source, child, None, destination, report, options, depth + 1)?;
                    // Keep platform and annotations; take the (maybe new) type and digest.
                    let mut d = child.clone();
                    d.set_media_type(copied.media_type().clone());
                    d.set_digest(copied.digest().clone());
                    d.set_size(copied.raw().len() as u64);
                    children.push(d);
                } else {
                    copy_blobs(
                        source,
                        std::slice::from_ref(child),
                        destination,
                        report,
                        options,
                    )?;
                    children.push(child.clone());
                }
            }
            let to = options
                .effective_format()
                .and_then(|f| convert_type(index.media_type(), f));
            if to.is_some() || &children != index.manifests() {
                index.edit(|v| {
                    if let Some(to) = to {
                        v.set_media_type(Some(to));
                    }
                    v.set_manifests(children);
                })?;
            }
        }
    }
    destination.put_manifest(&doc)?;
    report.manifests.push(doc.descriptor());
    Ok(doc)
}

/// Where an image lives, in skopeo's transport syntax; a bare `HOST/NAME[:TAG|@DIGEST]`
/// (the first component a host: a `.` or `:` in it, or `localhost`) is a `docker://` one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// `oci:DIR[:NAME]`: an image layout directory, and a reference name in it.
    Oci {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name`.
        name: Option<String>,
    },
    /// `oci-archive:FILE[:NAME]`: a tar of an image layout.
    OciArchive {
        /// The archive.
        file: PathBuf,
        /// The reference name in its `index.json`.
        name: Option<String>,
    },
    /// `docker-archive:FILE[:REPO:TAG]`: a `docker save` archive.
    DockerArchive {
        /// The archive.
        file: PathBuf,
        /// The `RepoTags` entry, `REPO:TAG`.
        repo_tag: Option<String>,
    },
    /// `docker://REFERENCE`: an image in a registry (`host[:port]/name[:tag|@digest]`;
    /// loopback registries are reached over plain HTTP).
    Docker {
        /// The image reference.
        reference: String,
    },
}

impl FromStr for Location {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidLocation {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        // A bare `HOST/NAME[:TAG|@DIGEST]`, as `pull` and `push` take: the first component
        // names a registry (a `.` or a `:` in it, or `localhost`, as docker reads it).
        if let Some((host, _)) = s.split_once('/')
            && (host.contains('.') || host.contains(':') || host == "localhost")
            && !["oci", "oci-archive", "docker-archive", "docker"]
                .iter()
                .any(|t| s.starts_with(&format!("{t}:")))
            && s.parse::<ocikit_distribution::Reference>().is_ok()
        {
            return Ok(Location::Docker {
                reference: s.to_owned(),
            });
        }
        let (transport, rest) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected TRANSPORT:... or HOST/NAME[:TAG]"))?;
        // PATH[:NAME], the name after the last colon.
        let path_and_name = |rest: &str| -> (PathBuf, Option<String>) {
            match rest.rsplit_once(':') {
                Some((p, n)) if !n.contains('/') => (
                    PathBuf::from(p),
                    Some(n.to_owned()).filter(|n| !n.is_empty()),
                ),
                _ => (PathBuf::from(rest), None),
            }
        };
        let loc = match transport {
            "oci" => {
                let (dir, name) = path_and_name(rest);
                Location::Oci { dir, name }
            }
            "oci-archive" => {
                let (file, name) = path_and_name(rest);
                Location::OciArchive { file, name }
            }
            "docker-archive" => match rest.split_once(':') {
                Some((file, repo_tag)) => {
                    if !repo_tag.contains(':') {
                        return Err(invalid("expected docker-archive:FILE[:REPO:TAG]"));
                    }
                    Location::DockerArchive {
                        file: file.into(),
                        repo_tag: Some(repo_tag.to_owned()),
                    }
                }
                None => Location::DockerArchive {
                    file: rest.into(),
                    repo_tag: None,
                },
            },
            "docker" => Location::Docker {
                reference: rest.trim_start_matches("//").to_owned(),
            },
            _ => {
                return Err(invalid(
                    "transports are oci, oci-archive, docker-archive, docker",
                ));
            }
        };
        match &loc {
            Location::Oci { dir, .. } | Location::OciArchive { file: dir, .. }
                if dir.as_os_str().is_empty() =>
            {
                Err(invalid("the path is empty"))
            }
            _ => Ok(loc),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |n: &Option<String>| n.as_ref().map(|n| format!(":{n}")).unwrap_or_default();
        match self {
            Location::Oci { dir, name } => write!(f, "oci:{}{}", dir.display(), opt(name)),
            Location::OciArchive { file, name } => {
                write!(f, "oci-archive:{}{}", file.display(), opt(name))
            }
            Location::DockerArchive { file, repo_tag } => {
                write!(f, "docker-archive:{}{}", file.display(), opt(repo_tag))
            }
            Location::Docker { reference } => write!(f, "docker://{reference}"),
        }
    }
}

enum Source {
    Oci(Layout),
    OciArchive(Box<OciArchive>),
    DockerArchive(DockerArchive),
    Registry(Box<MirroredSource>),
}

/// A source [`Location`], opened, with the manifest or index it names.
pub struct OpenedSource {
    source: Source,
    top: Descriptor,
    platform: Platform,
    /// The top document when resolving the name fetched it (a registry's one `GET`).
    fetched: Option<AnyManifest>,
}

impl OpenedSource {
    /// The source, through the trait.
    pub fn source(&self) -> &(dyn ImageSource + Sync) {
        match &self.source {
            Source::Oci(l) => l,
            Source::OciArchive(a) => a.as_ref(),
            Source::DockerArchive(a) => a,
            Source::Registry(r) => r.as_ref(),
        }
    }

    /// The manifest or index the location names.
    pub fn top(&self) -> &Descriptor {
        &self.top
    }

    /// The manifest or index the location names, fetched and verified (for a `docker://`
    /// location, it came with resolving the name: no second request).
    pub fn top_manifest(&self) -> ocikit_image::Result<AnyManifest> {
        match &self.fetched {
            Some(doc) => Ok(doc.clone()),
            None => self.source().fetch_manifest(&self.top),
        }
    }

    /// The platform the source was opened for (the image taken from an index).
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The image the location names, for the platform it was opened for: its manifest
    /// (through any index) and configuration, fetched and verified. What
    /// [`unpack_bundle`](crate::unpack::unpack_bundle) and the run path take.
    pub fn image(&self) -> ocikit_image::Result<ResolvedImage> {
        match &self.fetched {
            // A registry's top document came with resolving the name.
            Some(AnyManifest::Manifest(manifest)) => {
                let config = self.source().fetch_config(manifest)?;
                Ok(ResolvedImage::new(manifest.clone(), config))
            }
            _ => self.source().fetch_image(&self.reference(), &self.platform),
        }
    }

    /// The registry repository, for a `docker://` location (for what only registries do:
    /// tags, referrers, deletion).
    pub fn repository(&self) -> Option<&Repository> {
        match &self.source {
            Source::Registry(r) => Some(r.repository()),
            _ => None,
        }
    }

    /// How many places the source has: a registry's mirrors and location, else 1.
    pub(crate) fn places(&self) -> usize {
        match &self.source {
            Source::Registry(r) => r.places(),
            _ => 1,
        }
    }

    /// The top as a reference for [`ImageSource`] calls (by digest, which every source
    /// resolves).
    pub fn reference(&self) -> TagOrDigest {
        TagOrDigest::Digest(self.top.digest().clone())
    }
}

/// Opens `location` to read from, resolving the name it gives (for a layout name listed once
/// per platform, the entry for `platform`); a `docker://` location is reached as the
/// system's files say ([`SystemContext::new`]).
pub fn open_source(location: &Location, platform: &Platform) -> Result<OpenedSource, Error> {
    open_source_with(location, platform, &SystemContext::new())
}

/// [`open_source`], reaching a `docker://` location as `context` says (registries.conf's
/// mirrors and location, then TLS and credentials).
pub fn open_source_with(
    location: &Location,
    platform: &Platform,
    context: &SystemContext,
) -> Result<OpenedSource, Error> {
    let mut fetched = None;
    let (source, top) = match location {
        Location::Oci { dir, name } => {
            let layout = Layout::open(dir)?;
            let top = layout.resolve_top(ref_name(name)?.as_ref(), platform)?;
            (Source::Oci(layout), top)
        }
        Location::OciArchive { file, name } => {
            let archive = OciArchive::open(file)?;
            let top = archive.resolve_top(ref_name(name)?.as_ref(), platform)?;
            (Source::OciArchive(Box::new(archive)), top)
        }
        Location::DockerArchive { file, repo_tag } => {
            let archive = DockerArchive::open(file)?;
            let top = archive.find(repo_tag.as_deref())?.manifest.descriptor();
            (Source::DockerArchive(archive), top)
        }
        Location::Docker { reference } => {
            let target = crate::context::qualified(reference)?.target().clone();
            let repos = context.pull_repositories(reference)?;
            let (source, top, doc) = MirroredSource::open(repos, &target)?;
            fetched = Some(doc);
            (Source::Registry(Box::new(source)), top)
        }
    };
    Ok(OpenedSource {
        source,
        top,
        platform: platform.clone(),
        fetched,
    })
}

enum Destination {
    Oci(Layout, Option<RefName>),
    OciArchive(Box<OciArchiveWriter>, Option<RefName>),
    DockerArchive(Box<DockerArchiveWriter>, Option<Tag>),
    Registry(Box<Repository>, Option<Tag>),
}

/// A destination [`Location`], opened: write through [`destination`](Self::destination), then
/// [`name`](Self::name) the top manifest and [`finish`](Self::finish).
pub struct OpenedDestination {
    inner: Destination,
}

impl OpenedDestination {
    /// The destination, through the trait.
    pub fn destination(&self) -> &(dyn ImageDestination + Sync) {
        match &self.inner {
            Destination::Oci(l, _) => l,
            Destination::OciArchive(w, _) => w.as_ref(),
            Destination::DockerArchive(w, _) => w.as_ref(),
            Destination::Registry(r, _) => r.as_ref(),
        }
    }

    /// The family of manifests the destination should hold: OCI for `oci:` and
    /// `oci-archive:`, whose readers (skopeo, umoci) ignore Docker manifests; `None` keeps
    /// what the source has.
    pub fn preferred_format(&self) -> Option<Format> {
        match &self.inner {
            Destination::Oci(..) | Destination::OciArchive(..) => Some(Format::Oci),
            _ => None,
        }
    }

    /// Gives `top` the name the location asked for. Names that are distribution tags go
    /// through [`ImageDestination::tag`]; layout names outside that grammar
    /// (`oci:DIR:library/busybox:1.36`) through the layout's own API; a layout location
    /// without a name lists the manifest unnamed in `index.json`, as skopeo does.
    pub fn name(&self, top: &AnyManifest) -> Result<(), Error> {
        let as_tag = |n: &RefName| n.as_str().parse::<Tag>().ok();
        match &self.inner {
            Destination::Oci(layout, name) => match name {
                Some(n) => match as_tag(n) {
                    Some(tag) => layout.tag(&tag, top)?,
                    None => layout.set_ref(n, &top.descriptor())?,
                },
                None => layout.add_unnamed(&top.descriptor())?,
            },
            Destination::OciArchive(writer, name) => {
                if let Some(n) = name {
                    match as_tag(n) {
                        Some(tag) => writer.tag(&tag, top)?,
                        None => writer.set_ref(n, &top.descriptor())?,
                    }
                }
            }
            Destination::DockerArchive(writer, tag) => {
                if let Some(tag) = tag {
                    writer.tag(tag, top)?;
                }
            }
            Destination::Registry(repo, tag) => {
                if let Some(tag) = tag {
                    repo.tag(tag, top)?;
                }
            }
        }
        Ok(())
    }

    /// The destination as a source, where it can be read back (layouts, registries), to
    /// find what it holds already (signatures).
    pub fn as_source(&self) -> Option<&dyn ImageSource> {
        match &self.inner {
            Destination::Oci(l, _) => Some(l),
            Destination::Registry(r, _) => Some(r.as_ref()),
            Destination::OciArchive(..) | Destination::DockerArchive(..) => None,
        }
    }

    /// Completes the destination: archives are written out (to a temporary file renamed into
    /// place); layouts and registries have nothing left to do.
    pub fn finish(self) -> Result<(), Error> {
        match self.inner {
            Destination::OciArchive(w, _) => w.finish()?,
            Destination::DockerArchive(w, _) => w.finish()?,
            Destination::Oci(..) | Destination::Registry(..) => {}
        }
        Ok(())
    }
}

/// Opens `location` to write to (a layout is created when missing; an archive is written
/// anew); a `docker://` location is reached as the system's files say
/// ([`SystemContext::new`]).
pub fn open_destination(location: &Location) -> Result<OpenedDestination, Error> {
    open_destination_with(location, &SystemContext::new())
}

/// [`open_destination`], reaching a `docker://` location as `context` says.
pub fn open_destination_with(
    location: &Location,
    context: &SystemContext,
) -> Result<OpenedDestination, Error> {
    let inner = match location {
        Location::Oci { dir, name } => Destination::Oci(Layout::create(dir)?, ref_name(name)?),
        Location::OciArchive { file, name } => {
            Destination::OciArchive(Box::new(OciArchiveWriter::create(file)?), ref_name(name)?)
        }
        Location::DockerArchive { file, repo_tag } => {
            let (repo, tag) = match repo_tag.as_deref().and_then(|s| s.rsplit_once(':')) {
                Some((repo, tag)) => (Some(repo), Some(tag.parse::<Tag>()?)),
                None => (None, None),
            };
            Destination::DockerArchive(Box::new(DockerArchiveWriter::create(file, repo)?), tag)
        }
        Location::Docker { reference } => {
            let (repo, reference) = context.push_repository(reference)?;
            let tag = reference.tag().cloned();
            Destination::Registry(Box::new(repo), tag)
        }
    };
    Ok(OpenedDestination { inner })
}

fn ref_name(name: &Option<String>) -> Result<Option<RefName>, Error> {
    Ok(name.as_deref().map(RefName::new).transpose()?)
}

/// Opens `source` and `destination` and copies the image: see [`copy_image`],
/// [`open_source`] and [`open_destination`].
pub fn copy(
    source: &Location,
    destination: &Location,
    options: &CopyOptions,
) -> Result<CopyReport, Error> {
    let platform = options.platform.clone().unwrap_or_else(host_platform);
    let default = SystemContext::new();
    let src = open_source_with(
        source,
        &platform,
        options.source_context.as_ref().unwrap_or(&default),
    )?;
    // The policy decides before anything is read but the top document, or written.
    crate::trust::check_opened(source, &src, &options.trust)?;
    let dst = open_destination_with(
        destination,
        options.destination_context.as_ref().unwrap_or(&default),
    )?;
    let mut options = match (options.format, dst.preferred_format()) {
        (None, Some(format)) => options.clone().format(Some(format)),
        _ => options.clone(),
    };
    if let Source::Registry(r) = &src.source {
        options.blob_tries = r.places();
    }
    if let (Some(from), Destination::Registry(to, _)) = (src.repository(), &dst.inner)
        && options.mount_from.is_none()
        && from.registry() == to.registry()
        && from.name() != to.name()
    {
        options = options.mount_from(Some(from.name().to_owned()));
    }
    let report = copy_fetched(
        src.source(),
        src.top.clone(),
        src.top_manifest()?,
        dst.destination(),
        None,
        &options,
    )?;
    crate::trust::after_copy(&options.trust, source, &src, destination, &dst, &report.top)?;
    dst.name(&report.top)?;
    dst.finish()?;
    Ok(report)
}

/// Pulls the image `reference` names (`HOST/NAME[:TAG|@DIGEST]`) from its registry into the
/// image layout at `dir` (created when missing), named `name` there: `copy docker://REF
/// oci:DIR:NAME`, like `skopeo copy` or `crane pull --format oci`.
pub fn pull(
    reference: &str,
    dir: &std::path::Path,
    name: Option<&str>,
    options: &CopyOptions,
) -> Result<CopyReport, Error> {
    let source = Location::Docker {
        reference: reference.trim_start_matches("docker://").to_owned(),
    };
    let destination = Location::Oci {
        dir: dir.to_owned(),
        name: name.map(str::to_owned),
    };
    copy(&source, &destination, options)
}

/// Pushes the image at `source` (any location) to the registry reference `reference`
/// (`HOST/NAME[:TAG]`), like `skopeo copy SRC docker://REF` or `crane push`.
pub fn push(
    source: &Location,
    reference: &str,
    options: &CopyOptions,
) -> Result<CopyReport, Error> {
    let destination = Location::Docker {
        reference: reference.trim_start_matches("docker://").to_owned(),
    };
    copy(source, &destination, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let l: Location = "oci:/tmp/x:latest".parse().unwrap();
        assert_eq!(
            l,
            Location::Oci {
                dir: "/tmp/x".into(),
                name: Some("latest".into())
            }
        );
        let l: Location = "oci:/tmp/x".parse().unwrap();
        assert_eq!(
            l,
            Location::Oci {
                dir: "/tmp/x".into(),
                name: None
            }
        );
        let l: Location = "docker-archive:/tmp/a.tar:example.com:5000/app:v1"
            .parse()
            .unwrap();
        assert_eq!(
            l,
            Location::DockerArchive {
                file: "/tmp/a.tar".into(),
                repo_tag: Some("example.com:5000/app:v1".into())
            }
        );
        assert!("nope:/x".parse::<Location>().is_err());
        // A bare registry reference, as pull and push take it.
        let l: Location = "localhost:5000/app:v1".parse().unwrap();
        assert_eq!(
            l,
            Location::Docker {
                reference: "localhost:5000/app:v1".into()
            }
        );
        let l: Location = "registry.example/team/app".parse().unwrap();
        assert_eq!(l.to_string(), "docker://registry.example/team/app");
        assert!("busybox".parse::<Location>().is_err());
        assert!("oci:".parse::<Location>().is_err());
        assert!("docker-archive:/a.tar:notag".parse::<Location>().is_err());
        let l: Location = "oci-archive:o.tar:t".parse().unwrap();
        assert_eq!(l.to_string(), "oci-archive:o.tar:t");
    }
}
