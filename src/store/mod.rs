//! The image store: where pulled images live, each layer unpacked once, and where containers
//! get their root filesystems as overlay mounts over those layers, as podman's
//! containers/storage does, without a daemon or a database.
//!
//! ```text
//! STORE/
//!   layout/                  an OCI image layout: blobs, and image names in index.json
//!                            (skopeo and umoci read it: `skopeo inspect oci:STORE/layout:NAME`)
//!   snapshots/<chain-id>/    one per layer chain (image-spec ChainID), committed by rename:
//!     diff/                  the layer alone, in overlayfs form (whiteouts as 0/0 character
//!                            devices, opaque directories marked by an xattr)
//!     snapshot.json          chain ID, diff_id, layer digest, unpacked size
//!   snapshots/.tmp/          snapshots being unpacked (removed by `prune` once their writer died)
//!   snapshots/.locks/        one lock file per chain ID: a layer is unpacked by one process
//!   containers/<id>/         container.json; upper/ and work/ (the container's changes) and
//!                            merged/ (its root filesystem) for an overlay, rootfs/ for a copy
//!   .store.lock              shared by pulls and mounts, exclusive for removal and prune
//! ```
//!
//! [`Store::pull`] fetches the manifest and configuration first, then every layer at once (up
//! to [`PullOptions::jobs`]): each blob is read from the source once, verified against its
//! digest and its diff_id, stored in the layout and unpacked into its snapshot in the same
//! pass. A layer whose tar needs the layers below it (a directory it implies without listing
//! it, a hard link to a lower file: ocikit-image's `lower_layers`) while they are still being
//! unpacked is only stored in that pass, and unpacked from the store once they are there (a
//! read the page cache mostly serves). Layers the store has are neither fetched nor unpacked
//! again. The image's name is written last, so an interrupted pull leaves only complete blobs
//! and snapshots (and temporaries `prune` removes), and the next pull goes on from there.
//!
//! [`Store::mount_rootfs`] gives a container its root filesystem in constant time: an overlay
//! of the image's snapshots with a private upper directory.

mod meta;

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use oci_spec::image::{Descriptor, Digest, Platform};
use ocikit_image::{
    AnyManifest, ApplyOptions, ApplyReport, Config, ImageSource, Manifest, OverlayXattrs,
    Whiteouts, apply_layer, host_platform,
};
use ocikit_layout::{Layout, RefName};

use crate::SystemContext;
use crate::copy::{Location, open_source_with};
use crate::fsutil::remove_tree;
use meta::SnapshotMeta;
pub use meta::{ContainerInfo, ImageInfo, RootfsKind};
pub(crate) use meta::{ContainerMeta, read_json, write_json};

const LAYOUT_DIR: &str = "layout";
const SNAPSHOTS_DIR: &str = "snapshots";
const CONTAINERS_DIR: &str = "containers";
const STORE_LOCK: &str = ".store.lock";
const SNAPSHOT_FILE: &str = "snapshot.json";
const CONTAINER_FILE: &str = "container.json";
const DIFF_DIR: &str = "diff";
const TMP_DIR: &str = ".tmp";
const LOCKS_DIR: &str = ".locks";

/// What can go wrong in the store, besides the errors of the crates it composes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No image of that name or digest is in the store.
    #[error("no image {reference:?} in the store {store}")]
    ImageNotFound {
        /// The name or digest asked for.
        reference: String,
        /// The store's directory.
        store: PathBuf,
    },
    /// No container of that id has a root filesystem from the store.
    #[error("no container {id:?} in the store")]
    ContainerNotFound {
        /// The id asked for.
        id: String,
    },
    /// A container of that id already has a root filesystem from the store.
    #[error("container {id:?} already has a root filesystem in the store")]
    ContainerExists {
        /// The id.
        id: String,
    },
    /// The store directory belongs to another user: using it would mix owners in the
    /// snapshots, or let that user change what this one runs.
    #[error("the store {path} is owned by uid {owner}, not by this user (uid {user})")]
    NotOwned {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        user: u32,
    },
    /// The image is used by containers, which must be removed first.
    #[error("image {reference:?} is used by containers {containers:?}")]
    InUse {
        /// The image.
        reference: String,
        /// The containers using it.
        containers: Vec<String>,
    },
    /// overlayfs could not be mounted; [`RootfsOptions::copy_fallback`] makes a full copy
    /// instead.
    #[error(
        "mounting the overlay root filesystem of {id:?} (RootfsOptions::copy_fallback makes a \
         full copy instead)"
    )]
    Overlay {
        /// The container.
        id: String,
        /// What the kernel said.
        #[source]
        source: ocikit_runtime::Error,
    },
    /// The store container of that id was made by a run, not as a working container.
    #[error("container {id:?} is not a working container")]
    NotWorkingContainer {
        /// The id.
        id: String,
    },
    /// A file to copy into a working container could not be read.
    #[error("copy source {}", path.display())]
    CopySource {
        /// The source.
        path: PathBuf,
        /// What happened.
        #[source]
        source: io::Error,
    },
    /// A metadata file of the store is not what the store writes.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file operation on the store failed.
    #[error("{}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What happened.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}

/// How [`Store::pull`] pulls, set with chained setters on [`PullOptions::new`].
#[derive(Clone, Debug)]
pub struct PullOptions {
    platform: Platform,
    name: Option<RefName>,
    jobs: usize,
    context: SystemContext,
    trust: crate::trust::TrustOptions,
    progress: Option<crate::progress::Observer>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: host_platform(),
            name: None,
            jobs: 4,
            context: SystemContext::new(),
            trust: crate::trust::TrustOptions::new(),
            progress: None,
        }
    }
}

impl PullOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The platform to pull from an index (default: this host's).
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// The name the image gets in the store (default: the location's reference, such as
    /// `registry.example:5000/app:v1`, or the name in a layout or archive; an image from a
    /// location without a name is stored by digest only).
    pub fn name(mut self, name: RefName) -> Self {
        self.name = Some(name);
        self
    }

    /// How many layers are fetched and unpacked at once (default 4, at least 1).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// How a `docker://` location is reached: registries.conf, TLS, credentials. Default:
    /// [`SystemContext::new`], the system's files.
    pub fn context(mut self, context: SystemContext) -> Self {
        self.context = context;
        self
    }

    /// The signature policy checked before anything is fetched but the top document
    /// (default: the policy at the usual locations; none accepts every image).
    pub fn trust(mut self, trust: crate::trust::TrustOptions) -> Self {
        self.trust = trust;
        self
    }

    /// Reports the layers to `observer` (default none): their total, then each layer read
    /// from the source (started, bytes as the store takes them, done once stored and
    /// unpacked) or skipped (the store had its blob). See [`progress`](crate::progress).
    pub fn progress(mut self, observer: impl crate::progress::Progress + 'static) -> Self {
        self.progress = Some(crate::progress::Observer::new(observer));
        self
    }
}

/// What [`Store::pull`] did for one layer.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LayerPull {
    /// The layer's descriptor in the manifest.
    pub descriptor: Descriptor,
    /// Its chain ID: the snapshot it is unpacked in.
    pub chain_id: Digest,
    /// Whether its blob was read from the source (false: the store had it).
    pub fetched: bool,
    /// Whether it was unpacked now (false: the store had its snapshot).
    pub unpacked: bool,
}

/// What [`Store::pull`] stored.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PulledImage {
    /// The name it got, if any.
    pub name: Option<RefName>,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its configuration.
    pub config: Config,
    /// Each layer, base first.
    pub layers: Vec<LayerPull>,
}

/// An image of the store, as [`Store::image`] finds it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoredImage {
    /// The manifest.
    pub manifest: Manifest,
    /// The configuration.
    pub config: Config,
    /// The snapshot directories of its layers (`diff/` in overlay form), base first.
    pub snapshots: Vec<PathBuf>,
}

/// How [`Store::mount_rootfs`] makes a root filesystem, set with chained setters on
/// [`RootfsOptions::new`].
#[derive(Clone, Debug, Default)]
pub struct RootfsOptions {
    copy_fallback: bool,
}

impl RootfsOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where overlayfs cannot be mounted, unpack the image's layers into a private copy
    /// instead (costs the image's size in time and disk). Default false: an error.
    pub fn copy_fallback(mut self, copy_fallback: bool) -> Self {
        self.copy_fallback = copy_fallback;
        self
    }
}

/// What [`Store::prune`] removed.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PruneReport {
    /// Snapshots no image or container uses, by chain ID.
    pub snapshots: Vec<Digest>,
    /// Blobs no image uses.
    pub blobs: u64,
    /// Bytes freed (blobs and the unpacked size of snapshots).
    pub bytes: u64,
    /// Temporaries of pulls that died.
    pub temporaries: usize,
}

/// What [`Store::check`] found: every problem, not only the first.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// Each problem, with the path it concerns.
    pub problems: Vec<(PathBuf, String)>,
}

impl CheckReport {
    /// True when the store has no problem.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// An image store in a directory: see the module docs.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    layout: Layout,
    user_xattrs: bool,
}

/// An advisory lock on a file of the store, released on drop: the store's own (shared for
/// pulls and mounts, exclusive for removal and prune), or a chain's (exclusive, while one
/// process unpacks it).
pub(crate) struct StoreLock(File);

impl StoreLock {
    pub(crate) fn take(path: &Path, exclusive: bool) -> Result<StoreLock, StoreError> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        }
        .map_err(io_err(path))?;
        Ok(StoreLock(file))
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl Store {
    /// The default store of this user: root's is `/var/lib/ocikit`, another user's (also
    /// in [`ocikit_runtime::enter_user_namespace`]) `$XDG_DATA_HOME/ocikit`, else
    /// `~/.local/share/ocikit` (as containers/storage places root's and rootless stores).
    pub fn default_root() -> PathBuf {
        // Root only in a user namespace (ocikit_runtime::enter_user_namespace) is a user.
        if !ocikit_runtime::is_rootless() {
            return PathBuf::from("/var/lib/ocikit");
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(data).join("ocikit");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        PathBuf::from(home).join(".local/share/ocikit")
    }

    /// Opens the store in `root`, making it when it does not exist. The directory must
    /// belong to this user ([`StoreError::NotOwned`] otherwise). An unprivileged user's store
    /// marks whiteouts with `user.overlay.*` attributes, which only mounts made with the
    /// `userxattr` option read.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, crate::Error> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let root = root.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(io_err(&root))?;
        let meta = fs::metadata(&root).map_err(io_err(&root))?;
        let user = rustix::process::geteuid().as_raw();
        if meta.uid() != user {
            return Err(StoreError::NotOwned {
                path: root,
                owner: meta.uid(),
                user,
            }
            .into());
        }
        for dir in [
            root.join(SNAPSHOTS_DIR).join(TMP_DIR),
            root.join(SNAPSHOTS_DIR).join(LOCKS_DIR),
            root.join(CONTAINERS_DIR),
        ] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        let layout_dir = root.join(LAYOUT_DIR);
        let layout = if layout_dir.join("oci-layout").exists() {
            Layout::open(&layout_dir)?
        } else {
            Layout::create(&layout_dir)?
        };
        Ok(Store {
            root,
            layout,
            // Not root on the host: overlayfs only reads `user.overlay.*` in a user
            // namespace's mounts (the `userxattr` option), and only such a mount is ours.
            user_xattrs: ocikit_runtime::is_rootless(),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image layout inside the store, where blobs and names live.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn lock(&self, exclusive: bool) -> Result<StoreLock, StoreError> {
        StoreLock::take(&self.root.join(STORE_LOCK), exclusive)
    }

    /// The lock of one chain's snapshot: one process unpacks (or commits) it at a time.
    fn lock_chain(&self, chain_id: &Digest) -> Result<StoreLock, StoreError> {
        let path = self
            .root
            .join(SNAPSHOTS_DIR)
            .join(LOCKS_DIR)
            .join(snapshot_key(chain_id));
        StoreLock::take(&path, true)
    }

    fn snapshot_dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join(SNAPSHOTS_DIR).join(snapshot_key(chain_id))
    }

    pub(crate) fn container_dir(&self, id: &str) -> Result<PathBuf, crate::Error> {
        ocikit_runtime::validate_id(id)?;
        Ok(self.root.join(CONTAINERS_DIR).join(id))
    }

    /// Pulls the image `location` names into the store: see the module docs. Any source
    /// [`copy`](crate::copy) takes works (`docker://`, `oci:`, archives).
    pub fn pull(
        &self,
        location: &Location,
        options: &PullOptions,
    ) -> Result<PulledImage, crate::Error> {
        let opened = open_source_with(location, &options.platform, &options.context)?;
        // The policy decides before any layer is fetched or anything is stored.
        crate::trust::check_opened(location, &opened, &options.trust)?;
        // A layer that fails verification is fetched again from the source's next place (a
        // registry's mirrors, then its location); a failed layer leaves nothing behind.
        let tries = opened.places();
        let source = opened.source();
        let image = source.fetch_image(&opened.reference(), &options.platform)?;
        let name = match &options.name {
            Some(n) => Some(n.clone()),
            None => default_name(location)?,
        };
        let diff_ids = crate::unpack::checked_diff_ids(&image.manifest, &image.config)?;
        let layers = image.manifest.layers().clone();
        let chain_ids = image.config.chain_ids();
        let _lock = self.lock(false)?;
        if let Some(o) = &options.progress {
            o.total(&layers);
        }

        // Every layer at once, up to `jobs`; the first error stops the others from starting.
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let ladder = Ladder::new(layers.len());
        let results: Mutex<Vec<Option<Result<LayerPull, crate::Error>>>> =
            Mutex::new((0..layers.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..options.jobs.min(layers.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= layers.len() || failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let layer = LayerJob {
                            index: i,
                            descriptor: &layers[i],
                            diff_id: &diff_ids[i],
                            chain_ids: &chain_ids[..=i],
                        };
                        let id = crate::progress::BlobId::next();
                        let reporting;
                        let source: &dyn ImageSource = match &options.progress {
                            Some(observer) => {
                                reporting = crate::progress::Reporting {
                                    inner: source,
                                    id,
                                    observer,
                                };
                                &reporting
                            }
                            None => source,
                        };
                        let mut left = tries;
                        let r = loop {
                            left -= 1;
                            match self.store_layer(source, &layer, &ladder) {
                                Err(crate::Error::Image(e)) if left > 0 && e.is_verification() => {
                                    continue;
                                }
                                other => break other,
                            }
                        };
                        if let Ok(pulled) = &r {
                            let descriptor = &layers[i];
                            crate::progress::send(
                                options.progress.as_ref(),
                                if pulled.fetched {
                                    crate::progress::Event::Done { id, descriptor }
                                } else {
                                    crate::progress::Event::Skipped { id, descriptor }
                                },
                            );
                        }
                        ladder.done(i, r.is_ok());
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        results.lock().expect("no panics under the lock")[i] = Some(r);
                    }
                });
            }
        });
        // Layers not started are those after a failure: report the first failure.
        let mut pulled = Vec::with_capacity(layers.len());
        for r in results
            .into_inner()
            .expect("no panics under the lock")
            .into_iter()
            .flatten()
        {
            pulled.push(r?);
        }

        // The documents, then the name: a name is visible only once all it needs is stored.
        self.layout.write_blob(
            image.config.raw(),
            Some(image.config.digest()),
            Some(image.config.size()),
        )?;
        let manifest = AnyManifest::Manifest(image.manifest.clone());
        let mut descriptor = self.layout.put_manifest(&manifest)?;
        descriptor.set_platform(Some(image.config.platform()));
        match &name {
            Some(n) => self.layout.set_ref(n, &descriptor)?,
            None => self.layout.add_unnamed(&descriptor)?,
        }
        Ok(PulledImage {
            name,
            manifest: image.manifest,
            config: image.config,
            layers: pulled,
        })
    }

    /// Makes sure the store has the blob of a layer and the snapshot of its chain, reading the
    /// source once: see the module docs.
    fn store_layer(
        &self,
        source: &dyn ImageSource,
        job: &LayerJob<'_>,
        ladder: &Ladder,
    ) -> Result<LayerPull, crate::Error> {
        let layer = job.descriptor;
        let chain_id = job.chain_ids.last().expect("a layer has a chain ID");
        let mut done = LayerPull {
            descriptor: layer.clone(),
            chain_id: chain_id.clone(),
            fetched: false,
            unpacked: false,
        };
        // One process unpacks a chain; the others wait for it and find it done.
        let _chain = self.lock_chain(chain_id)?;

        let snapshot = self.snapshot_dir(chain_id);
        let mut have_blob = self.layout.has_blob(layer.digest())?;
        if snapshot.join(SNAPSHOT_FILE).is_file() {
            if !have_blob {
                let blob = source.open_blob(layer)?;
                self.layout
                    .write_blob(blob, Some(layer.digest()), Some(layer.size()))?;
                done.fetched = true;
            }
            return Ok(done);
        }
        let below = &job.chain_ids[..job.index];
        // All of them: a layer that stands alone may be unpacked before those under it.
        let below_ready = below
            .iter()
            .all(|c| self.snapshot_dir(c).join(SNAPSHOT_FILE).is_file());
        if !below_ready {
            if !have_blob {
                // One pass still: the blob is stored and the layer unpacked alone, unless an
                // entry needs the layers below; then the rest is only stored.
                done.fetched = true;
                have_blob = true;
                let alone = self.apply_options().lower_layers_pending(true);
                if let Some((tmp, report)) = self.store_and_unpack(source, job, &alone)? {
                    return self.commit_snapshot(tmp, &snapshot, job, report, done);
                }
            }
            if !ladder.wait_below(job.index) {
                return Err(StoreError::Corrupt {
                    path: snapshot,
                    reason: "a layer below this one failed".into(),
                }
                .into());
            }
        }

        let options = self.apply_options().lower_layers(self.lower_dirs(below)?);
        let (tmp, report) = if have_blob {
            let tmp = self.snapshot_tempdir(chain_id)?;
            let blob = self.layout.open_blob(layer)?;
            let diff = tmp.path.join(DIFF_DIR);
            let report = apply_layer(&diff, blob, layer.media_type(), Some(job.diff_id), &options)?;
            (tmp, report)
        } else {
            done.fetched = true;
            // With its lower layers given, an unpack never stops for want of them.
            self.store_and_unpack(source, job, &options)?
                .ok_or_else(|| StoreError::Corrupt {
                    path: snapshot.clone(),
                    reason: "the layer asked for its lower layers although it had them".into(),
                })?
        };
        self.commit_snapshot(tmp, &snapshot, job, report, done)
    }

    /// A temporary snapshot directory for `chain_id`, with its empty `diff/` (mode 0755: the
    /// root of a mount shows the top snapshot's own attributes).
    fn snapshot_tempdir(&self, chain_id: &Digest) -> Result<TempDir, StoreError> {
        let tmp = tempdir_in(&self.root.join(SNAPSHOTS_DIR).join(TMP_DIR), chain_id)?;
        let diff = tmp.path.join(DIFF_DIR);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&diff)
            .map_err(io_err(&diff))?;
        Ok(tmp)
    }

    /// Writes the metadata of a snapshot unpacked in `tmp` and renames it into place.
    fn commit_snapshot(
        &self,
        tmp: TempDir,
        snapshot: &Path,
        job: &LayerJob<'_>,
        report: ApplyReport,
        mut done: LayerPull,
    ) -> Result<LayerPull, crate::Error> {
        let meta = SnapshotMeta {
            chain_id: done.chain_id.clone(),
            diff_id: job.diff_id.clone(),
            parent: job.chain_ids[..job.index].last().cloned(),
            layer: job.descriptor.digest().clone(),
            size: report.uncompressed_size,
            hides_lower_layers: report.hides_lower_layers,
        };
        meta::write_json(&tmp.path.join(SNAPSHOT_FILE), &meta)?;
        fs::rename(&tmp.path, snapshot).map_err(io_err(snapshot))?;
        tmp.keep();
        done.unpacked = true;
        Ok(done)
    }

    /// Reads a layer from the source once, storing its blob and unpacking it on the way with
    /// `options`: `Some` with the unpacked snapshot; `None` when, with
    /// `lower_layers_pending`, an entry needed the layers below
    /// ([`ocikit_image::Error::NeedsLowerLayers`]), after the rest of the blob was stored.
    fn store_and_unpack(
        &self,
        source: &dyn ImageSource,
        job: &LayerJob<'_>,
        options: &ApplyOptions,
    ) -> Result<Option<(TempDir, ApplyReport)>, crate::Error> {
        let layer = job.descriptor;
        let chain_id = job.chain_ids.last().expect("a layer has a chain ID");
        let tmp = self.snapshot_tempdir(chain_id)?;
        let diff = tmp.path.join(DIFF_DIR);
        let mut writer = self
            .layout
            .blob_writer(Some(layer.digest()), Some(layer.size()))?;
        let mut tee = Tee {
            inner: source.open_blob(layer)?,
            writer: &mut writer,
            failed: None,
        };
        let applied = apply_layer(
            &diff,
            &mut tee,
            layer.media_type(),
            Some(job.diff_id),
            options,
        );
        let unpacked = match applied {
            Ok(report) => Some(report),
            Err(ocikit_image::Error::NeedsLowerLayers { .. }) => {
                // What the applier read went to the blob already; the rest follows.
                let rest = io::copy(&mut tee, &mut io::sink());
                if let Some(e) = tee.failed.take() {
                    return Err(e.into());
                }
                rest.map_err(ocikit_image::Error::from)?;
                None
            }
            Err(e) => return Err(tee.failed.take().map_or_else(|| e.into(), Into::into)),
        };
        if let Some(e) = tee.failed.take() {
            return Err(e.into());
        }
        writer.commit()?;
        Ok(unpacked.map(|report| (tmp, report)))
    }

    /// The `diff/` directories an overlay of the chains `chains` (base first) stacks, the top
    /// first, as `lowerdir=` lists them: down to the first layer that hides every layer below
    /// it (an opaque marker at its root, which overlayfs cannot express).
    fn lower_dirs(&self, chains: &[Digest]) -> Result<Vec<PathBuf>, StoreError> {
        let mut dirs = Vec::with_capacity(chains.len());
        for chain in chains.iter().rev() {
            let dir = self.snapshot_dir(chain);
            let meta = meta::read_snapshot(&dir.join(SNAPSHOT_FILE))?;
            dirs.push(dir.join(DIFF_DIR));
            if meta.hides_lower_layers {
                break;
            }
        }
        Ok(dirs)
    }

    /// Layers are unpacked alone, each into an empty directory, in the form overlayfs stacks;
    /// an unprivileged user's store marks whiteouts with `user.overlay.*` attributes.
    fn apply_options(&self) -> ApplyOptions {
        ApplyOptions::new().whiteouts(Whiteouts::Overlay(self.overlay_xattrs()))
    }

    /// Finds an image by name (as [`pull`](Self::pull) stored it) or by manifest digest.
    pub fn image(&self, reference: &str) -> Result<StoredImage, crate::Error> {
        let descriptor = self.find(reference)?;
        let manifest = match self.layout.get_manifest(&descriptor)? {
            AnyManifest::Manifest(m) => m,
            AnyManifest::Index(_) => {
                return Err(self.not_found(reference));
            }
        };
        let config = self.layout.fetch_config(&manifest)?;
        let snapshots = config
            .chain_ids()
            .iter()
            .map(|c| self.snapshot_dir(c))
            .collect();
        Ok(StoredImage {
            manifest,
            config,
            snapshots,
        })
    }

    fn not_found(&self, reference: &str) -> crate::Error {
        StoreError::ImageNotFound {
            reference: reference.to_owned(),
            store: self.root.clone(),
        }
        .into()
    }

    /// The index entry of `reference`: a name, or a manifest digest.
    fn find(&self, reference: &str) -> Result<Descriptor, crate::Error> {
        let entries = self.layout.index()?.value().manifests().clone();
        // A digest only with an algorithm digests use: `app:v1` is a name, not a digest of
        // algorithm `app`.
        let by_digest = ocikit_image::parse_digest(reference).ok();
        entries
            .into_iter()
            .find(|d| {
                by_digest.as_ref().map_or_else(
                    || meta::ref_name(d) == Some(reference),
                    |digest| d.digest() == digest,
                )
            })
            .ok_or_else(|| self.not_found(reference))
    }

    /// The images of the store, one entry per manifest with all its names.
    pub fn images(&self) -> Result<Vec<ImageInfo>, crate::Error> {
        let mut out: Vec<ImageInfo> = Vec::new();
        for d in self.layout.index()?.value().manifests() {
            if let Some(seen) = out.iter_mut().find(|i| &i.digest == d.digest()) {
                seen.names.extend(meta::ref_name(d).map(str::to_owned));
                continue;
            }
            let Ok(AnyManifest::Manifest(m)) = self.layout.get_manifest(d) else {
                continue; // not an image this store pulled (an index put there by hand)
            };
            let config = self.layout.fetch_config(&m)?;
            let mut size = 0;
            for chain in config.chain_ids() {
                if let Ok(s) = meta::read_snapshot(&self.snapshot_dir(&chain).join(SNAPSHOT_FILE)) {
                    size += s.size;
                }
            }
            out.push(ImageInfo {
                names: meta::ref_name(d).map(str::to_owned).into_iter().collect(),
                digest: d.digest().clone(),
                size,
                created: config.created().clone(),
            });
        }
        Ok(out)
    }

    /// Removes the name `reference` (or, given a digest, every name of that image), then what
    /// no image or container uses any more (see [`prune`](Self::prune)). An image a container
    /// uses is not removed ([`StoreError::InUse`]).
    pub fn remove_image(&self, reference: &str) -> Result<PruneReport, crate::Error> {
        let _lock = self.lock(true)?;
        let descriptor = self.find(reference)?;
        let digest = descriptor.digest().clone();
        let remaining_names = self
            .layout
            .index()?
            .value()
            .manifests()
            .iter()
            .filter(|d| d.digest() == &digest)
            .count();
        let by_digest = ocikit_image::parse_digest(reference).is_ok();
        if by_digest || remaining_names <= 1 {
            let users: Vec<String> = self
                .containers_unlocked()?
                .into_iter()
                .filter(|c| c.image.as_ref() == Some(&digest))
                .map(|c| c.id)
                .collect();
            if !users.is_empty() {
                return Err(StoreError::InUse {
                    reference: reference.to_owned(),
                    containers: users,
                }
                .into());
            }
        }
        if by_digest {
            self.layout.remove_digest(&digest)?;
        } else {
            let name = RefName::new(reference)?;
            self.layout.remove_ref(&name, None)?;
        }
        self.prune_unlocked()
    }

    /// Removes every snapshot and blob no image or container uses, and the temporaries of
    /// pulls that died. Waits for running pulls to finish.
    pub fn prune(&self) -> Result<PruneReport, crate::Error> {
        let _lock = self.lock(true)?;
        self.prune_unlocked()
    }

    fn prune_unlocked(&self) -> Result<PruneReport, crate::Error> {
        let mut report = PruneReport::default();
        let mut live: Vec<String> = Vec::new();
        for d in self.layout.index()?.value().manifests() {
            if let Ok(AnyManifest::Manifest(m)) = self.layout.get_manifest(d)
                && let Ok(config) = self.layout.fetch_config(&m)
            {
                live.extend(config.chain_ids().iter().map(snapshot_key));
            }
        }
        for c in self.containers_unlocked()? {
            live.extend(c.chain_ids.iter().map(snapshot_key));
        }
        let dir = self.root.join(SNAPSHOTS_DIR);
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || live.contains(&name) {
                continue;
            }
            let path = entry.path();
            if let Ok(meta) = meta::read_snapshot(&path.join(SNAPSHOT_FILE)) {
                report.bytes += meta.size;
                report.snapshots.push(meta.chain_id);
            }
            remove_tree(&path).map_err(io_err(&path))?;
            let _ = fs::remove_file(dir.join(LOCKS_DIR).join(&name));
        }
        // Temporaries: under the exclusive lock no pull runs, so every one is a dead pull's.
        let tmp = dir.join(TMP_DIR);
        for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let entry = entry.map_err(io_err(&tmp))?;
            remove_tree(&entry.path()).map_err(io_err(entry.path()))?;
            report.temporaries += 1;
        }
        let gc = self.layout.gc(std::time::Duration::ZERO)?;
        report.bytes += gc.bytes_freed;
        report.blobs = gc.blobs_removed;
        Ok(report)
    }

    /// Checks the whole store: every blob against its digest and every document (the
    /// layout's fsck), and for every image and container, that each snapshot it needs is
    /// complete. Temporaries of running or dead pulls are not problems.
    pub fn check(&self) -> Result<CheckReport, crate::Error> {
        let _lock = self.lock(false)?;
        let mut report = CheckReport::default();
        let fsck = self.layout.fsck()?;
        for p in fsck.problems {
            report
                .problems
                .push((self.layout.root().to_owned(), p.to_string()));
        }
        let mut needed: Vec<Digest> = Vec::new();
        for d in self.layout.index()?.value().manifests() {
            if let Ok(AnyManifest::Manifest(m)) = self.layout.get_manifest(d)
                && let Ok(config) = self.layout.fetch_config(&m)
            {
                needed.extend(config.chain_ids());
            }
        }
        for c in self.containers_unlocked()? {
            needed.extend(c.chain_ids);
        }
        needed.sort_by_key(|a| a.to_string());
        needed.dedup();
        for chain in needed {
            let dir = self.snapshot_dir(&chain);
            match meta::read_snapshot(&dir.join(SNAPSHOT_FILE)) {
                Ok(meta) if meta.chain_id == chain && dir.join(DIFF_DIR).is_dir() => {}
                Ok(_) => report
                    .problems
                    .push((dir, format!("the snapshot is not that of {chain}"))),
                Err(e) => report.problems.push((
                    dir,
                    format!("incomplete snapshot: {}", crate::ErrorChain(&e)),
                )),
            }
        }
        Ok(report)
    }

    /// Gives container `id` the root filesystem of `image` (a name or digest): an overlay of
    /// the image's snapshots with a private upper directory, mounted at the returned path, in
    /// constant time whatever the image's size. What the container writes or deletes stays in
    /// its upper directory: other containers and the image do not see it.
    pub fn mount_rootfs(
        &self,
        image: &str,
        id: &str,
        options: &RootfsOptions,
    ) -> Result<PathBuf, crate::Error> {
        self.new_container(Some(image), id, options, false)
    }

    /// Makes the directory of container `id` and its root filesystem over `image` (none: an
    /// empty one). `self_contained`: every change stays whole in the upper directory (a
    /// working container, whose upper directory a commit reads).
    pub(crate) fn new_container(
        &self,
        image: Option<&str>,
        id: &str,
        options: &RootfsOptions,
        self_contained: bool,
    ) -> Result<PathBuf, crate::Error> {
        let dir = self.container_dir(id)?;
        let _lock = self.lock(false)?;
        let stored = image.map(|i| self.image(i)).transpose()?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::ContainerExists { id: id.into() }.into());
            }
            Err(e) => return Err(io_err(&dir)(e).into()),
        }
        let result = self.make_rootfs(&dir, id, image, stored.as_ref(), options, self_contained);
        if result.is_err() {
            let _ = remove_tree(&dir);
        }
        result
    }

    fn make_rootfs(
        &self,
        dir: &Path,
        id: &str,
        image: Option<&str>,
        stored: Option<&StoredImage>,
        options: &RootfsOptions,
        self_contained: bool,
    ) -> Result<PathBuf, crate::Error> {
        let mut meta = ContainerMeta {
            id: id.to_owned(),
            image: stored.map(|s| s.manifest.digest().clone()),
            image_name: image.unwrap_or_default().to_owned(),
            chain_ids: stored.map(|s| s.config.chain_ids()).unwrap_or_default(),
            rootfs: RootfsKind::Overlay,
        };
        // Written first, so that prune keeps the snapshots while the mount is made.
        meta::write_json(&dir.join(CONTAINER_FILE), &meta)?;
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            fs::create_dir(d).map_err(io_err(d))?;
        }
        let lowers = self.container_lowers(dir, &meta)?;
        match self.mount_overlay(dir, lowers, self_contained) {
            Ok(()) => Ok(merged),
            Err(source) if !options.copy_fallback => Err(StoreError::Overlay {
                id: id.to_owned(),
                source,
            }
            .into()),
            Err(_) => {
                for d in [&upper, &work, &merged] {
                    fs::remove_dir(d).map_err(io_err(d))?;
                }
                let rootfs = dir.join("rootfs");
                fs::create_dir(&rootfs).map_err(io_err(&rootfs))?;
                if let Some(stored) = stored {
                    let diff_ids = stored.config.diff_ids();
                    for (layer, diff_id) in stored.manifest.layers().iter().zip(&diff_ids) {
                        let blob = self.layout.open_blob(layer)?;
                        apply_layer(
                            &rootfs,
                            blob,
                            layer.media_type(),
                            Some(diff_id),
                            &ApplyOptions::new(),
                        )?;
                    }
                }
                meta.rootfs = RootfsKind::Copy;
                meta::write_json(&dir.join(CONTAINER_FILE), &meta)?;
                Ok(rootfs)
            }
        }
    }

    /// The lower directories of container `dir`'s overlay, top first: the snapshots of
    /// `meta.chain_ids`, which must all be complete (an empty directory for none).
    fn container_lowers(
        &self,
        dir: &Path,
        meta: &ContainerMeta,
    ) -> Result<Vec<PathBuf>, StoreError> {
        let mut lowers = Vec::with_capacity(meta.chain_ids.len());
        for chain in meta.chain_ids.iter().rev() {
            let snapshot = self.snapshot_dir(chain);
            if !snapshot.join(SNAPSHOT_FILE).is_file() {
                return Err(StoreError::Corrupt {
                    path: snapshot,
                    reason: "the image's snapshot is missing: pull the image again".into(),
                });
            }
            lowers.push(snapshot.join(DIFF_DIR));
        }
        if lowers.is_empty() {
            let empty = dir.join("empty");
            if let Err(e) = fs::create_dir(&empty)
                && e.kind() != io::ErrorKind::AlreadyExists
            {
                return Err(io_err(&empty)(e));
            }
            lowers.push(empty);
        }
        Ok(lowers)
    }

    /// Mounts the overlay of container `dir` (its `upper/`, `work/` and `merged/` exist).
    fn mount_overlay(
        &self,
        dir: &Path,
        lowers: Vec<PathBuf>,
        self_contained: bool,
    ) -> Result<(), ocikit_runtime::Error> {
        ocikit_runtime::Overlay::new(lowers)
            .upper(dir.join("upper"), dir.join("work"))
            .user_xattrs(self.user_xattrs)
            .self_contained_upper(self_contained)
            .mount(dir.join("merged"))
    }

    /// Makes a runtime bundle for container `id` of `image`: the root filesystem of
    /// [`mount_rootfs`](Self::mount_rootfs) and, next to it, `config.json` converted from the
    /// image's configuration with `convert` (see [`runtime_config`](crate::convert::runtime_config)).
    /// Returns the bundle's directory, for any OCI runtime; [`remove_container`](Self::remove_container)
    /// removes it all.
    pub fn create_bundle(
        &self,
        image: &str,
        id: &str,
        convert: &crate::convert::ConvertOptions,
        options: &RootfsOptions,
    ) -> Result<PathBuf, crate::Error> {
        let rootfs = self.mount_rootfs(image, id, options)?;
        let bundle = self.container_dir(id)?;
        let made = (|| {
            let stored = self.image(image)?;
            let mut spec = crate::convert::runtime_config(stored.config.value(), &rootfs, convert)?;
            // After the conversion, which resolved the user from the image's own entries.
            crate::convert::add_podman_entries(stored.config.value(), &rootfs, convert)?;
            let mut root = spec.root().clone().unwrap_or_default();
            // Relative to the bundle, which is the container's directory.
            let name = rootfs.file_name().map(PathBuf::from).unwrap_or_default();
            root.set_path(name);
            spec.set_root(Some(root));
            crate::unpack::write_config(&bundle, &spec)
        })();
        match made {
            Ok(()) => Ok(bundle),
            Err(e) => {
                let _ = self.remove_container(id);
                Err(e)
            }
        }
    }

    /// Whether the store marks overlay attributes in the `user.` namespace (an unprivileged
    /// user's store) rather than `trusted.`.
    pub(crate) fn overlay_xattrs(&self) -> OverlayXattrs {
        if self.user_xattrs {
            OverlayXattrs::User
        } else {
            OverlayXattrs::Trusted
        }
    }

    /// The metadata of container `id` ([`StoreError::ContainerNotFound`] if it has none).
    pub(crate) fn container_meta(&self, id: &str) -> Result<ContainerMeta, crate::Error> {
        let dir = self.container_dir(id)?;
        if !dir.join(CONTAINER_FILE).is_file() {
            return Err(StoreError::ContainerNotFound { id: id.into() }.into());
        }
        Ok(meta::read_json(&dir.join(CONTAINER_FILE))?)
    }

    /// Mounts container `id`'s overlay again if it is not mounted (after a reboot, or an
    /// unmount by hand); its upper directory keeps what it wrote. Returns the root
    /// filesystem's path.
    pub(crate) fn ensure_mounted(
        &self,
        id: &str,
        self_contained: bool,
    ) -> Result<PathBuf, crate::Error> {
        use std::os::unix::fs::MetadataExt;
        let dir = self.container_dir(id)?;
        let _lock = self.lock(false)?;
        let meta = self.container_meta(id)?;
        if meta.rootfs == RootfsKind::Copy {
            return Ok(dir.join("rootfs"));
        }
        let merged = dir.join("merged");
        let (outer, inner) = (
            fs::metadata(&dir).map_err(io_err(&dir))?,
            fs::metadata(&merged).map_err(io_err(&merged))?,
        );
        if outer.dev() != inner.dev() {
            return Ok(merged); // a mount of its own
        }
        let upper = dir.join("upper");
        if !upper.is_dir() {
            // A commit moves the upper directory into a snapshot and makes a new one: a process
            // killed in between leaves none, and mounting an empty one would lose the changes
            // without a word.
            return Err(StoreError::Corrupt {
                path: upper,
                reason: "missing: a commit of this container was interrupted; the image it \
                         committed may be incomplete: remove the container"
                    .into(),
            }
            .into());
        }
        let lowers = self.container_lowers(&dir, &meta)?;
        // The work directory may hold what an earlier mount left: overlayfs wants it empty.
        let work = dir.join("work");
        remove_tree(&work).map_err(io_err(&work))?;
        fs::create_dir(&work).map_err(io_err(&work))?;
        self.mount_overlay(&dir, lowers, self_contained)
            .map_err(|source| StoreError::Overlay {
                id: id.to_owned(),
                source,
            })?;
        Ok(merged)
    }

    /// Makes every snapshot of a stored image that the store lacks, from the layer blobs in
    /// its layout (an image written into the layout by a commit rather than pulled).
    pub(crate) fn unpack_stored(
        &self,
        manifest: &Manifest,
        config: &Config,
    ) -> Result<(), crate::Error> {
        let diff_ids = crate::unpack::checked_diff_ids(manifest, config)?;
        let chain_ids = config.chain_ids();
        let _lock = self.lock(false)?;
        for (index, layer) in manifest.layers().iter().enumerate() {
            let job = LayerJob {
                index,
                descriptor: layer,
                diff_id: &diff_ids[index],
                chain_ids: &chain_ids[..=index],
            };
            let chain_id = &chain_ids[index];
            let _chain = self.lock_chain(chain_id)?;
            let snapshot = self.snapshot_dir(chain_id);
            if snapshot.join(SNAPSHOT_FILE).is_file() {
                continue;
            }
            let options = self
                .apply_options()
                .lower_layers(self.lower_dirs(&chain_ids[..index])?);
            let tmp = self.snapshot_tempdir(chain_id)?;
            let blob = self.layout.open_blob(layer)?;
            let report = apply_layer(
                &tmp.path.join(DIFF_DIR),
                blob,
                layer.media_type(),
                Some(job.diff_id),
                &options,
            )?;
            let done = LayerPull {
                descriptor: layer.clone(),
                chain_id: chain_id.clone(),
                fetched: false,
                unpacked: false,
            };
            self.commit_snapshot(tmp, &snapshot, &job, report, done)?;
        }
        Ok(())
    }

    /// Makes the upper directory of working container `id` the snapshot of the top layer of
    /// the image `manifest`/`config` (a commit just wrote exactly that directory as that
    /// layer, over the snapshots the container stacks), then mounts the container again over
    /// the image's snapshots with an empty upper directory: the commit costs no unpack.
    /// Returns false, having changed nothing, when the container does not stack exactly the
    /// layers below, the snapshot exists already, or a process still uses the mount.
    pub(crate) fn rebase_container(
        &self,
        id: &str,
        image_name: &str,
        manifest: &Manifest,
        config: &Config,
        layer_size: u64,
    ) -> Result<bool, crate::Error> {
        let dir = self.container_dir(id)?;
        let _lock = self.lock(false)?;
        let chain_ids = config.chain_ids();
        let diff_ids = config.diff_ids();
        let (Some(chain_id), Some(diff_id), Some(layer)) =
            (chain_ids.last(), diff_ids.last(), manifest.layers().last())
        else {
            return Ok(false);
        };
        let mut meta = self.container_meta(id)?;
        if meta.rootfs != RootfsKind::Overlay
            || meta.chain_ids[..] != chain_ids[..chain_ids.len() - 1]
        {
            return Ok(false);
        }
        let _chain = self.lock_chain(chain_id)?;
        let snapshot = self.snapshot_dir(chain_id);
        if snapshot.join(SNAPSHOT_FILE).is_file() {
            return Ok(false);
        }
        let merged = dir.join("merged");
        match ocikit_runtime::unmount_unused(&merged) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            // EINVAL: not mounted.
            Err(ocikit_runtime::Error::Io { source, .. })
                if source.raw_os_error() == Some(libc_einval()) => {}
            Err(e) => return Err(e.into()),
        }
        let upper = dir.join("upper");
        let moved = (|| -> Result<(), crate::Error> {
            as_snapshot(&upper, self.overlay_xattrs()).map_err(io_err(&upper))?;
            let tmp = self.snapshot_tempdir(chain_id)?;
            let diff = tmp.path.join(DIFF_DIR);
            fs::remove_dir(&diff).map_err(io_err(&diff))?;
            fs::rename(&upper, &diff).map_err(io_err(&diff))?;
            let snapshot_meta = SnapshotMeta {
                chain_id: chain_id.clone(),
                diff_id: diff_id.clone(),
                parent: chain_ids.len().checked_sub(2).map(|i| chain_ids[i].clone()),
                layer: layer.digest().clone(),
                size: layer_size,
                hides_lower_layers: false,
            };
            meta::write_json(&tmp.path.join(SNAPSHOT_FILE), &snapshot_meta)?;
            fs::rename(&tmp.path, &snapshot).map_err(io_err(&snapshot))?;
            tmp.keep();
            Ok(())
        })();
        if upper.exists() {
            // Not moved: the container goes on as it was.
            moved?;
            self.remount(&dir, &meta)?;
            return Ok(false);
        }
        fs::create_dir(&upper).map_err(io_err(&upper))?;
        meta.image = Some(manifest.digest().clone());
        meta.image_name = image_name.to_owned();
        meta.chain_ids = chain_ids;
        meta::write_json(&dir.join(CONTAINER_FILE), &meta)?;
        self.remount(&dir, &meta)?;
        moved.map(|()| true)
    }

    /// Mounts container `dir` again (unmounted) over `meta`'s snapshots, with a clean work
    /// directory.
    fn remount(&self, dir: &Path, meta: &ContainerMeta) -> Result<(), crate::Error> {
        let work = dir.join("work");
        remove_tree(&work).map_err(io_err(&work))?;
        fs::create_dir(&work).map_err(io_err(&work))?;
        let lowers = self.container_lowers(dir, meta)?;
        self.mount_overlay(dir, lowers, true)
            .map_err(|source| StoreError::Overlay {
                id: meta.id.clone(),
                source,
            })?;
        Ok(())
    }

    /// The containers that have a root filesystem from the store.
    pub fn containers(&self) -> Result<Vec<ContainerInfo>, crate::Error> {
        let _lock = self.lock(false)?;
        self.containers_unlocked()
    }

    fn containers_unlocked(&self) -> Result<Vec<ContainerInfo>, crate::Error> {
        let dir = self.root.join(CONTAINERS_DIR);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path().join(CONTAINER_FILE);
            // A container whose metadata is not written yet has nothing mounted either.
            if let Ok(meta) = meta::read_json::<ContainerMeta>(&path) {
                out.push(meta.into_info(&entry.path()));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Unmounts and removes the root filesystem of container `id`, with everything it wrote.
    pub fn remove_container(&self, id: &str) -> Result<(), crate::Error> {
        let dir = self.container_dir(id)?;
        let _lock = self.lock(false)?;
        let meta: ContainerMeta = match meta::read_json(&dir.join(CONTAINER_FILE)) {
            Ok(m) => m,
            Err(_) if !dir.exists() => {
                return Err(StoreError::ContainerNotFound { id: id.into() }.into());
            }
            Err(_) => {
                // Interrupted before its metadata was written: nothing was mounted.
                return Ok(remove_tree(&dir).map_err(io_err(&dir))?);
            }
        };
        if meta.rootfs == RootfsKind::Overlay {
            let merged = dir.join("merged");
            match ocikit_runtime::unmount(&merged) {
                Ok(()) => {}
                // EINVAL: not a mount point (never mounted, or unmounted already).
                Err(ocikit_runtime::Error::Io { source, .. })
                    if source.raw_os_error() == Some(libc_einval()) => {}
                Err(e) => return Err(e.into()),
            }
        }
        remove_tree(&dir).map_err(io_err(&dir))?;
        Ok(())
    }
}

/// Turns an overlay upper directory (unmounted) into a snapshot's `diff/`, as an unpack of
/// the layer made of it would have written it: overlayfs' own bookkeeping attributes
/// (`overlay.origin`, `overlay.impure`, `overlay.nlink`...) are removed, whiteouts and opaque
/// markers kept; sockets, which layers do not hold, are removed; the root gets the mode and
/// owner every snapshot's root has (0755, root).
fn as_snapshot(upper: &Path, xattrs: OverlayXattrs) -> io::Result<()> {
    fn walk(dir: &Path, prefix: &str) -> io::Result<()> {
        clean_xattrs(dir, prefix)?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let ft = entry.file_type()?;
            if std::os::unix::fs::FileTypeExt::is_socket(&ft) {
                fs::remove_file(&path)?;
            } else if ft.is_dir() {
                walk(&path, prefix)?;
            } else if !ft.is_symlink() {
                clean_xattrs(&path, prefix)?;
            }
        }
        Ok(())
    }
    fn clean_xattrs(path: &Path, prefix: &str) -> io::Result<()> {
        let mut names = vec![0u8; 1024];
        let n = loop {
            match rustix::fs::llistxattr(path, &mut names[..]) {
                Ok(n) => break n,
                Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
                Err(rustix::io::Errno::NOTSUP) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        };
        for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            let Some(what) = name.strip_prefix(prefix) else {
                continue;
            };
            if what != "opaque" && what != "whiteout" {
                rustix::fs::lremovexattr(path, name)?;
            }
        }
        Ok(())
    }
    let prefix = match xattrs {
        OverlayXattrs::User => "user.overlay.",
        _ => "trusted.overlay.",
    };
    walk(upper, prefix)?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(upper, fs::Permissions::from_mode(0o755))?;
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::lchown(upper, Some(0), Some(0))?;
    }
    Ok(())
}

fn libc_einval() -> i32 {
    rustix::io::Errno::INVAL.raw_os_error()
}

/// The directory name of a chain ID: its encoded part, prefixed by the algorithm unless it is
/// sha256 (the only one chain IDs use).
fn snapshot_key(chain_id: &Digest) -> String {
    let alg = chain_id.algorithm().to_string();
    if alg == "sha256" {
        chain_id.digest().to_owned()
    } else {
        format!("{alg}-{}", chain_id.digest())
    }
}

/// The name an image pulled from `location` gets in the store by default: the reference of a
/// `docker://` location (as `registry.example:5000/app:v1`; none for a reference by digest
/// alone), the name in a layout or archive, if any.
pub fn default_name(location: &Location) -> Result<Option<RefName>, crate::Error> {
    let text = match location {
        Location::Docker { reference } => {
            let parsed: ocikit_distribution::Reference = reference.parse()?;
            if parsed.tag().is_none() && parsed.digest().is_some() {
                return Ok(None); // by digest: the digest is its identity
            }
            Some(parsed.to_string())
        }
        Location::Oci { name, .. } | Location::OciArchive { name, .. } => name.clone(),
        Location::DockerArchive { repo_tag, .. } => repo_tag.clone(),
    };
    Ok(text.map(|t| RefName::new(&t)).transpose()?)
}

/// One layer of a pull: its place, descriptor, diff_id, and the chain IDs up to it.
struct LayerJob<'a> {
    index: usize,
    descriptor: &'a Descriptor,
    diff_id: &'a Digest,
    chain_ids: &'a [Digest],
}

/// How far the layers of one pull are: a layer is unpacked over the snapshots below it, so
/// its thread waits for the layer right below (which waits for its own).
struct Ladder {
    done: Mutex<Vec<Option<bool>>>,
    changed: Condvar,
}

impl Ladder {
    fn new(layers: usize) -> Ladder {
        Ladder {
            done: Mutex::new(vec![None; layers]),
            changed: Condvar::new(),
        }
    }

    /// Records that layer `index` is stored (`ok`) or failed.
    fn done(&self, index: usize, ok: bool) {
        self.done.lock().expect("no panics under the lock")[index] = Some(ok);
        self.changed.notify_all();
    }

    /// Waits until every layer below `index` is stored (true) or one failed (false): not only
    /// the one right below, as a layer that stands alone may be done before those under it.
    fn wait_below(&self, index: usize) -> bool {
        let mut done = self.done.lock().expect("no panics under the lock");
        loop {
            if done[..index].contains(&Some(false)) {
                return false;
            }
            if done[..index].iter().all(Option::is_some) {
                return true;
            }
            done = self.changed.wait(done).expect("no panics under the lock");
        }
    }
}

/// Passes what it reads on, and pushes the same bytes into a blob being stored. A failure to
/// store is kept (typed) and ends the read.
struct Tee<'a, R> {
    inner: R,
    writer: &'a mut ocikit_layout::BlobWriter,
    failed: Option<ocikit_layout::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.writer.push(&buf[..n]) {
            self.failed = Some(e);
            return Err(io::Error::other("storing the blob failed"));
        }
        Ok(n)
    }
}

/// A directory removed on drop unless kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = remove_tree(&self.path);
        }
    }
}

fn tempdir_in(dir: &Path, chain_id: &Digest) -> Result<TempDir, StoreError> {
    static N: AtomicUsize = AtomicUsize::new(0);
    loop {
        let path = dir.join(format!(
            "{}-{}-{}",
            snapshot_key(chain_id),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::create_dir(&path) {
            Ok(()) => return Ok(TempDir { path, keep: false }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&path)(e)),
        }
    }
}
#[cfg(test)]
mod tests {
    //! A pull whose upper layers need the layers below (a directory they do not list, a hard
    //! link to a lower file) gives the snapshots an unpack over those layers gives, whether
    //! they are unpacked alone or after the layers below. Needs root (owners, whiteout
    //! devices), as the store's tests do.

    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use oci_spec::image::MediaType;

    use super::*;

    fn gzip(tar: Vec<u8>) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn entry(
        b: &mut tar::Builder<Vec<u8>>,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        data: &[u8],
    ) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, path: &str, source: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_link(&mut h, path, source).unwrap();
    }

    fn blob(layout: &Layout, bytes: &[u8]) -> (Digest, u64) {
        layout.write_blob(bytes, None, None).unwrap()
    }

    #[test]
    fn layers_that_need_the_layers_below_get_what_they_hold() {
        assert!(
            rustix::process::geteuid().is_root(),
            "owners and whiteout devices need root (CI runs as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let src = Layout::create(dir.path().join("src")).unwrap();
        // The base: many files, so the layers above are read while it is unpacked.
        let mut base = tar::Builder::new(Vec::new());
        entry(&mut base, "usr/", tar::EntryType::Directory, 0o755, b"");
        entry(&mut base, "usr/lib/", tar::EntryType::Directory, 0o700, b"");
        entry(
            &mut base,
            "usr/lib/a",
            tar::EntryType::Regular,
            0o640,
            b"lower file",
        );
        entry(&mut base, "many/", tar::EntryType::Directory, 0o755, b"");
        for i in 0..3000 {
            entry(
                &mut base,
                &format!("many/{i}"),
                tar::EntryType::Regular,
                0o644,
                b"x",
            );
        }
        // A directory it does not list (usr/lib keeps 0700), and a link to the lower file.
        let mut implied = tar::Builder::new(Vec::new());
        entry(
            &mut implied,
            "usr/lib/b",
            tar::EntryType::Regular,
            0o644,
            b"b",
        );
        let mut linked = tar::Builder::new(Vec::new());
        entry(&mut linked, "usr/", tar::EntryType::Directory, 0o755, b"");
        entry(
            &mut linked,
            "usr/lib/",
            tar::EntryType::Directory,
            0o700,
            b"",
        );
        link(&mut linked, "usr/lib/c", "usr/lib/a");
        // And one that stands alone.
        let mut alone = tar::Builder::new(Vec::new());
        entry(&mut alone, "etc/", tar::EntryType::Directory, 0o755, b"");
        entry(&mut alone, "etc/d", tar::EntryType::Regular, 0o600, b"d");

        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for tar in [base, implied, linked, alone] {
            let tar = tar.into_inner().unwrap();
            diff_ids.push(ocikit_image::sha256(&tar).to_string());
            let gz = gzip(tar);
            let (digest, size) = blob(&src, &gz);
            layers.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest.to_string(), "size": size,
            }));
        }
        let platform = host_platform();
        let config = serde_json::json!({
            "architecture": platform.architecture().to_string(),
            "os": platform.os().to_string(),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = serde_json::to_vec(&config).unwrap();
        let (config_digest, config_size) = blob(&src, &config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.to_string(), "size": config_size,
            },
            "layers": layers,
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let (digest, size) = blob(&src, &manifest);
        let descriptor = Descriptor::new(MediaType::ImageManifest, size, digest);
        src.set_ref(&RefName::new("t").unwrap(), &descriptor)
            .unwrap();

        let store = Store::open(dir.path().join("store")).unwrap();
        let location: Location = format!("oci:{}:t", dir.path().join("src").display())
            .parse()
            .unwrap();
        let pulled = store.pull(&location, &PullOptions::new()).unwrap();
        assert!(pulled.layers.iter().all(|l| l.fetched && l.unpacked));
        let stored = store.image("t").unwrap();
        let diff = |i: usize, path: &str| stored.snapshots[i].join(DIFF_DIR).join(path);
        // The implied directory took the lower one's mode, not 0755.
        let mode = fs::metadata(diff(1, "usr/lib"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o700);
        assert_eq!(fs::read(diff(1, "usr/lib/b")).unwrap(), b"b");
        // The link became a copy of the lower file, with its mode.
        let c = fs::metadata(diff(2, "usr/lib/c")).unwrap();
        assert_eq!(fs::read(diff(2, "usr/lib/c")).unwrap(), b"lower file");
        assert_eq!(c.permissions().mode() & 0o7777, 0o640);
        assert_eq!(c.nlink(), 1);
        assert_eq!(fs::read(diff(3, "etc/d")).unwrap(), b"d");
        assert!(store.check().unwrap().is_ok());
    }
}
