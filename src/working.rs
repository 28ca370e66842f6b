//! Working containers, as buildah makes them: a container over an image of the
//! [store](crate::store), commands run inside it change its filesystem, its configuration is
//! edited, and a commit turns what changed into one new layer on top of the image's.
//!
//! ```text
//! buildah from IMAGE            WorkingContainer::from_image(&store, "IMAGE", &FromOptions::new())
//! buildah run C -- CMD...       container.run(&["CMD".into()], &RunInOptions::new())
//! buildah copy C SRC DEST       container.copy_in(&[SRC], "DEST", &CopyInOptions::new())
//! buildah config --entrypoint   container.configure(&ConfigEdit::new().entrypoint(...))
//! buildah commit C IMAGE        container.commit(&CommitOptions::new().name("IMAGE"))
//! buildah containers / rm       WorkingContainer::list(&store), container.remove()
//! ```
//!
//! A working container's root filesystem is the store's overlay mount of the image's
//! snapshots, mounted with `redirect_dir=off` and `metacopy=off` so that its upper directory
//! holds every change whole: that directory *is* the change, and [`WorkingContainer::commit`]
//! writes it as a layer ([`ocikit_image::build_overlay_layer`]: overlay whiteouts and opaque
//! directories become OCI whiteouts and opaque markers). The mount stays between calls and
//! between processes until the container is removed (or the machine restarts: it is mounted
//! again when next used).
//!
//! Runs need root, as the store's overlay mounts do.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest, MediaType};
use oci_spec::runtime::{LinuxNamespaceType, MountBuilder};
use ocikit_image::{
    AnyManifest, BuildOptions, BuiltLayer, Compression, Config, Manifest, MediaTypeExt,
    build_overlay_layer, host_platform,
};
use ocikit_layout::RefName;
use ocikit_runtime::ExitStatus;
use serde::{Deserialize, Serialize};

use crate::convert::{ConvertOptions, runtime_config};
use crate::copy::{CopyOptions, Location};
use crate::store::{
    PullOptions, RootfsOptions, Store, StoreError, StoreLock, read_json, write_json,
};

const WORKING_FILE: &str = "working.json";
const WORKING_LOCK: &str = "working.lock";

/// `containers/<name>/working.json`: what makes a store container a working container.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkingMeta {
    name: String,
    /// The image it was made from, as named, and its manifest; none from scratch.
    base_name: Option<String>,
    base: Option<Digest>,
    /// The image configuration as edited: the base image's (unknown fields kept) or, from
    /// scratch, a new one.
    config: serde_json::Value,
    /// The manifest annotations the commit writes.
    annotations: BTreeMap<String, String>,
    /// Commands run since the last commit: the history entry's `created_by`.
    commands: Vec<String>,
}

/// A working container of the store: see the module docs.
#[derive(Debug)]
pub struct WorkingContainer {
    store: Store,
    name: String,
    meta: WorkingMeta,
}

/// What [`WorkingContainer::list`] shows of a working container.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkingInfo {
    /// Its name (the store container's id).
    pub name: String,
    /// The image it was made from, as named (none: from scratch).
    pub image_name: Option<String>,
    /// That image's manifest digest.
    pub image: Option<Digest>,
    /// Its root filesystem.
    pub rootfs: PathBuf,
}

/// How [`WorkingContainer::from_image`] and [`WorkingContainer::from_scratch`] make a
/// container, set with chained setters on [`FromOptions::new`].
#[derive(Clone, Debug, Default)]
pub struct FromOptions {
    name: Option<String>,
    pull: Option<PullOptions>,
}

impl FromOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The container's name (default as buildah names them: `<image>-working-container`,
    /// `working-container` from scratch, with `-2`, `-3`... when taken).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// When the store lacks the image and it names a location (`docker://...`, `oci:...`),
    /// pull it with these options first (default: pull with [`PullOptions::new`]).
    pub fn pull(mut self, options: PullOptions) -> Self {
        self.pull = Some(options);
        self
    }
}

/// The network a command run in a working container gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Network {
    /// The host's network, with its `/etc/resolv.conf` and `/etc/hosts` bound read-only into
    /// the container (`buildah run --network host`): builds usually fetch packages. The
    /// default.
    #[default]
    Host,
    /// An empty network namespace: no network at all (`--network none`).
    None,
}

/// How [`WorkingContainer::run`] runs a command, set with chained setters on
/// [`RunInOptions::new`].
#[derive(Clone, Debug, Default)]
pub struct RunInOptions {
    network: Network,
    env: Vec<String>,
    user: Option<String>,
    workdir: Option<String>,
    runtime: crate::run::RunOptions,
}

impl RunInOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The network (default [`Network::Host`]).
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Sets `KEY=VALUE` for this command, over the container's configuration.
    pub fn env(mut self, key_value: impl Into<String>) -> Self {
        self.env.push(key_value.into());
        self
    }

    /// Runs as this user (`name`, `uid`, `uid:gid`...; default: the configuration's `User`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Runs in this directory (default: the configuration's `WorkingDir`, else `/`).
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// How the runtime is called: its state directory and init helper (default
    /// [`crate::run::RunOptions::new`]; the id is always the container's own).
    pub fn runtime(mut self, options: crate::run::RunOptions) -> Self {
        self.runtime = options;
        self
    }
}

/// How [`WorkingContainer::copy_in`] copies, set with chained setters on
/// [`CopyInOptions::new`].
#[derive(Clone, Debug, Default)]
pub struct CopyInOptions {
    owner: Option<(u32, u32)>,
    mode: Option<u32>,
}

impl CopyInOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The owner of every copied entry (`buildah copy --chown`; default 0:0, as buildah and
    /// Docker's `COPY` give them).
    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.owner = Some((uid, gid));
        self
    }

    /// The permission bits of every copied entry (`buildah copy --chmod`; default: each
    /// source's own).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode & 0o7777);
        self
    }
}

/// Edits of a working container's configuration (`buildah config`), set with chained
/// setters on [`ConfigEdit::new`] and applied by [`WorkingContainer::configure`]. Each
/// setter changes one field; fields not set are kept.
#[derive(Clone, Debug, Default)]
pub struct ConfigEdit {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    unset_env: Vec<String>,
    workdir: Option<String>,
    user: Option<String>,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    ports: Vec<String>,
    volumes: Vec<String>,
    stop_signal: Option<String>,
    author: Option<String>,
}

impl ConfigEdit {
    /// No edit yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Entrypoint` (an empty list removes it).
    pub fn entrypoint(mut self, args: Vec<String>) -> Self {
        self.entrypoint = Some(args);
        self
    }

    /// `Cmd` (an empty list removes it).
    pub fn cmd(mut self, args: Vec<String>) -> Self {
        self.cmd = Some(args);
        self
    }

    /// Sets `KEY=VALUE` in `Env`, replacing the key's value if it has one.
    pub fn env(mut self, key_value: impl Into<String>) -> Self {
        self.env.push(key_value.into());
        self
    }

    /// Removes `KEY` from `Env` (`buildah config --env KEY-`).
    pub fn unset_env(mut self, key: impl Into<String>) -> Self {
        self.unset_env.push(key.into());
        self
    }

    /// `WorkingDir`.
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// `User`.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// A label (`Labels`).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// An annotation of the committed image's manifest.
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.push((key.into(), value.into()));
        self
    }

    /// An exposed port, `PORT[/PROTOCOL]` (`ExposedPorts`; `tcp` when no protocol is given).
    pub fn port(mut self, port: impl Into<String>) -> Self {
        self.ports.push(port.into());
        self
    }

    /// A volume path (`Volumes`).
    pub fn volume(mut self, path: impl Into<String>) -> Self {
        self.volumes.push(path.into());
        self
    }

    /// `StopSignal`.
    pub fn stop_signal(mut self, signal: impl Into<String>) -> Self {
        self.stop_signal = Some(signal.into());
        self
    }

    /// The image's `author`.
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.author = Some(author.into());
        self
    }
}

/// How [`WorkingContainer::commit`] commits, set with chained setters on
/// [`CommitOptions::new`].
#[derive(Clone, Debug)]
pub struct CommitOptions {
    name: Option<String>,
    layer: BuildOptions,
    custom_layer: bool,
    source_date_epoch: Option<i64>,
    empty_layer: bool,
    created_by: Option<String>,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            name: None,
            layer: BuildOptions::new().compression(Compression::None),
            custom_layer: false,
            source_date_epoch: None,
            empty_layer: false,
            created_by: None,
        }
    }
}

impl CommitOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The name the image gets in the store (default: none, stored by digest).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How the layer is built: compression and level, owners (default: uncompressed, as
    /// `buildah commit` stores layers (its `--disable-compression` is true by default), owners
    /// and times kept; [`push`] compresses such layers on their way out, as `buildah push`
    /// does).
    pub fn layer_options(mut self, options: BuildOptions) -> Self {
        self.layer = options;
        self.custom_layer = true;
        self
    }

    /// Clamps the layer's modification times to this Unix time and dates the image at it, for
    /// a reproducible image (default: none; the image is dated now).
    pub fn source_date_epoch(mut self, epoch: Option<i64>) -> Self {
        self.source_date_epoch = epoch;
        self
    }

    /// Commits an empty layer when nothing changed (default false: the image gets a history
    /// entry marked `empty_layer` and no new layer).
    pub fn empty_layer(mut self, yes: bool) -> Self {
        self.empty_layer = yes;
        self
    }

    /// The history entry's `created_by` (default: the commands run since the last commit,
    /// joined by `; `).
    pub fn created_by(mut self, text: impl Into<String>) -> Self {
        self.created_by = Some(text.into());
        self
    }
}

/// What [`WorkingContainer::commit`] wrote.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Committed {
    /// The new image's manifest.
    pub manifest: Manifest,
    /// Its configuration.
    pub config: Config,
    /// The name it got in the store, if any.
    pub name: Option<RefName>,
    /// The new layer (none: nothing changed and no empty layer was asked for).
    pub layer: Option<BuiltLayer>,
}

impl WorkingContainer {
    /// Makes a working container over `image`: a name or digest the store has, else a
    /// location (`docker://...`, `oci:DIR:NAME`...) pulled into the store first, as
    /// `buildah from` does.
    pub fn from_image(
        store: &Store,
        image: &str,
        options: &FromOptions,
    ) -> Result<WorkingContainer, crate::Error> {
        let found = match image.parse::<Location>() {
            Ok(location) => {
                let name = crate::store::default_name(&location)?.map(|n| n.to_string());
                match store.image(name.as_deref().unwrap_or(image)) {
                    Err(crate::Error::Store(StoreError::ImageNotFound { .. })) => {
                        let pull = options.pull.clone().unwrap_or_default();
                        let pulled = store.pull(&location, &pull)?;
                        Ok((
                            pulled
                                .name
                                .map(|n| n.to_string())
                                .unwrap_or_else(|| image.into()),
                            pulled.manifest.digest().clone(),
                        ))
                    }
                    Err(e) => Err(e),
                    Ok(stored) => Ok((
                        name.unwrap_or_else(|| image.into()),
                        stored.manifest.digest().clone(),
                    )),
                }
            }
            Err(_) => store
                .image(image)
                .map(|s| (image.to_owned(), s.manifest.digest().clone())),
        };
        let (image_name, digest) = found?;
        let stored = store.image(digest.as_ref())?;
        let config: serde_json::Value =
            serde_json::from_slice(stored.config.raw()).map_err(|e| StoreError::Corrupt {
                path: store.layout().root().to_owned(),
                reason: format!("the configuration of {digest}: {e}"),
            })?;
        let base = short_name(&image_name);
        Self::create(
            store,
            Some((image_name, digest)),
            config,
            &options.name,
            &format!("{base}-working-container"),
        )
    }

    /// Makes a working container with an empty root filesystem (`buildah from scratch`), for
    /// this host's platform.
    pub fn from_scratch(
        store: &Store,
        options: &FromOptions,
    ) -> Result<WorkingContainer, crate::Error> {
        let platform = host_platform();
        let config = serde_json::json!({
            "architecture": platform.architecture().to_string(),
            "os": platform.os().to_string(),
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        Self::create(store, None, config, &options.name, "working-container")
    }

    fn create(
        store: &Store,
        base: Option<(String, Digest)>,
        config: serde_json::Value,
        name: &Option<String>,
        default_name: &str,
    ) -> Result<WorkingContainer, crate::Error> {
        let image = base.as_ref().map(|(_, d)| d.to_string());
        let mut attempt = 1;
        let name = loop {
            let name = match (name, attempt) {
                (Some(n), _) => n.clone(),
                (None, 1) => default_name.to_owned(),
                (None, n) => format!("{default_name}-{n}"),
            };
            match store.new_container(image.as_deref(), &name, &RootfsOptions::new(), true) {
                Ok(_) => break name,
                Err(crate::Error::Store(StoreError::ContainerExists { .. }))
                    if name_is_default(&name, default_name) && attempt < 10_000 =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let meta = WorkingMeta {
            name: name.clone(),
            base_name: base.as_ref().map(|(n, _)| n.clone()),
            base: base.map(|(_, d)| d),
            config,
            annotations: BTreeMap::new(),
            commands: Vec::new(),
        };
        let dir = store.container_dir(&name)?;
        if let Err(e) = write_json(&dir.join(WORKING_FILE), &meta) {
            let _ = store.remove_container(&name);
            return Err(e.into());
        }
        Ok(WorkingContainer {
            store: store.clone(),
            name,
            meta,
        })
    }

    /// Opens the working container `name` ([`StoreError::ContainerNotFound`] if there is
    /// none; [`StoreError::NotWorkingContainer`] if the store container of that id is not a
    /// working container).
    pub fn open(store: &Store, name: &str) -> Result<WorkingContainer, crate::Error> {
        let dir = store.container_dir(name)?;
        store.container_meta(name)?;
        let path = dir.join(WORKING_FILE);
        if !path.is_file() {
            return Err(StoreError::NotWorkingContainer { id: name.into() }.into());
        }
        let meta: WorkingMeta = read_json(&path)?;
        Ok(WorkingContainer {
            store: store.clone(),
            name: name.to_owned(),
            meta,
        })
    }

    /// The working containers of the store.
    pub fn list(store: &Store) -> Result<Vec<WorkingInfo>, crate::Error> {
        let mut out = Vec::new();
        for c in store.containers()? {
            let Ok(dir) = store.container_dir(&c.id) else {
                continue;
            };
            let Ok(meta) = read_json::<WorkingMeta>(&dir.join(WORKING_FILE)) else {
                continue; // a container of `run`, not a working container
            };
            out.push(WorkingInfo {
                name: c.id,
                image_name: meta.base_name,
                image: meta.base,
                rootfs: c.rootfs,
            });
        }
        Ok(out)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its root filesystem (mounted again if it is not).
    pub fn rootfs(&self) -> Result<PathBuf, crate::Error> {
        self.check_exists()?;
        self.store.ensure_mounted(&self.name, true)
    }

    /// Its image configuration as edited so far (the image-spec JSON).
    pub fn config(&self) -> &serde_json::Value {
        &self.meta.config
    }

    fn dir(&self) -> Result<PathBuf, crate::Error> {
        self.store.container_dir(&self.name)
    }

    /// A container removed (by another handle or process) is not found, not recreated.
    fn check_exists(&self) -> Result<(), crate::Error> {
        let dir = self.dir()?;
        if !dir.join(WORKING_FILE).is_file() {
            return Err(StoreError::ContainerNotFound {
                id: self.name.clone(),
            }
            .into());
        }
        Ok(())
    }

    /// Takes the container's own lock: one run, copy, edit or commit at a time.
    fn lock(&self) -> Result<StoreLock, crate::Error> {
        self.check_exists()?;
        Ok(StoreLock::take(&self.dir()?.join(WORKING_LOCK), true)?)
    }

    fn save(&self) -> Result<(), crate::Error> {
        Ok(write_json(&self.dir()?.join(WORKING_FILE), &self.meta)?)
    }

    /// Runs `args` in the container, with its configuration's environment, user and working
    /// directory (overridden by `options`), and waits for it: what it writes or deletes
    /// changes the container's filesystem. Standard input, output and error are the
    /// caller's. Mount points the runtime has to make (`/proc`, `/dev`, `/etc/resolv.conf`
    /// for [`Network::Host`]...) are removed after the run when the image lacked them and
    /// they are still empty, so they do not end up in a commit.
    pub fn run(
        &mut self,
        args: &[String],
        options: &RunInOptions,
    ) -> Result<ExitStatus, crate::Error> {
        if args.is_empty() {
            return Err(crate::convert::ConvertError::NoCommand.into());
        }
        let _lock = self.lock()?;
        let rootfs = self.store.ensure_mounted(&self.name, true)?;
        let dir = self.dir()?;
        let mut config: oci_spec::image::ImageConfiguration =
            serde_json::from_value(self.meta.config.clone()).map_err(|e| StoreError::Corrupt {
                path: dir.join(WORKING_FILE),
                reason: format!("the configuration: {e}"),
            })?;
        if options.user.is_some() || options.workdir.is_some() {
            let mut c = config.config().clone().unwrap_or_default();
            if let Some(user) = &options.user {
                c.set_user(Some(user.clone()));
            }
            if let Some(workdir) = &options.workdir {
                c.set_working_dir(Some(workdir.clone()));
            }
            config.set_config(Some(c));
        }
        // As a user (root only in the user namespace of ocikit_runtime::enter_user_namespace,
        // where the store mounted this root with `userxattr`), the configuration is runc's
        // rootless one with this user's id ranges, as the store's `run` makes it.
        let rootless = ocikit_runtime::is_rootless();
        // buildah run's capabilities are podman's (containers.conf's defaults).
        let mut convert = ConvertOptions::new()
            .entrypoint(args.to_vec())
            .capabilities(crate::convert::DEFAULT_CAPABILITIES.iter().copied())
            .rootless(rootless);
        for e in &options.env {
            convert = convert.env(e.clone());
        }
        let mut spec = runtime_config(&config, &rootfs, &convert)?;
        if rootless && options.network == Network::None {
            // runc's rootless configuration has no network namespace (it could not mount
            // sysfs without one, and binds the host's `/sys` instead); a new one is still
            // the user namespace's own to make, and `--network none` asks for it.
            if let Some(linux) = spec.linux_mut().as_mut() {
                let mut ns = linux.namespaces().clone().unwrap_or_default();
                let mut net = oci_spec::runtime::LinuxNamespace::default();
                net.set_typ(LinuxNamespaceType::Network);
                ns.push(net);
                linux.set_namespaces(Some(ns));
            }
        }
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path(PathBuf::from("merged"));
        root.set_readonly(Some(false));
        spec.set_root(Some(root));
        if options.network == Network::Host {
            if let Some(ns) = spec
                .linux_mut()
                .as_mut()
                .and_then(|l| l.namespaces_mut().as_mut())
            {
                ns.retain(|n| n.typ() != LinuxNamespaceType::Network);
            }
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            let etc_is_dir = kind_in_root(&rootfs, "etc") == Some(EntryKind::Dir);
            for file in ["/etc/resolv.conf", "/etc/hosts"] {
                if etc_is_dir && Path::new(file).is_file() {
                    mounts.push(
                        MountBuilder::default()
                            .destination(file)
                            .typ("bind")
                            .source(file)
                            .options(vec![
                                "rbind".into(),
                                "ro".into(),
                                "nosuid".into(),
                                "nodev".into(),
                                "noexec".into(),
                            ])
                            .build()
                            .map_err(|e| StoreError::Corrupt {
                                path: PathBuf::from(file),
                                reason: e.to_string(),
                            })?,
                    );
                }
            }
            spec.set_mounts(Some(mounts));
        }
        // What the runtime will make for its mounts, to be removed after the run.
        let mut scaffolding = Vec::new();
        for m in spec.mounts().iter().flatten() {
            if let Some(first) = first_missing(&rootfs, m.destination())
                && !scaffolding.contains(&first)
            {
                scaffolding.push(first);
            }
        }
        crate::unpack::write_config(&dir, &spec)?;
        let id = format!("{}-run-{}", self.name, std::process::id());
        let status =
            crate::run::run_bundle(&dir, &options.runtime.clone().id(&id)).map(|out| out.status);
        for path in scaffolding.iter().rev() {
            remove_scaffolding(&rootfs, path);
        }
        let _ = fs::remove_file(dir.join("config.json"));
        let status = status?;
        self.meta.commands.push(
            args.iter()
                .map(|a| shell_word(a))
                .collect::<Vec<_>>()
                .join(" "),
        );
        self.save()?;
        Ok(status)
    }

    /// Copies host files and directories into the container at `dest` (absolute, or relative
    /// to the configuration's `WorkingDir`), as `buildah copy` does: a directory's contents
    /// go into `dest`; a file goes to `dest` itself, or into it when `dest` ends with `/`, is
    /// a directory, or several sources are given. Symbolic links inside a copied directory
    /// are copied as links; a source given by a link is followed. Every path is resolved
    /// inside the container's root (a link in the container never leads out of it). A source
    /// that does not exist is [`StoreError::CopySource`], before anything is copied.
    pub fn copy_in(
        &mut self,
        sources: &[PathBuf],
        dest: &str,
        options: &CopyInOptions,
    ) -> Result<(), crate::Error> {
        let _lock = self.lock()?;
        let rootfs = self.store.ensure_mounted(&self.name, true)?;
        let mut metas = Vec::with_capacity(sources.len());
        for s in sources {
            let meta = fs::metadata(s).map_err(|source| StoreError::CopySource {
                path: s.clone(),
                source,
            })?;
            metas.push(meta);
        }
        if sources.is_empty() {
            return Err(StoreError::CopySource {
                path: PathBuf::new(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "no source given"),
            }
            .into());
        }
        let workdir = self.meta.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .to_owned();
        let dest_path = if dest.starts_with('/') {
            PathBuf::from(dest)
        } else {
            Path::new(&workdir).join(dest)
        };
        let rel: PathBuf = dest_path
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        let dest_kind = kind_in_root(&rootfs, &rel.to_string_lossy());
        let dest_is_dir = dest.ends_with('/')
            || sources.len() > 1
            || metas.iter().any(|m| m.is_dir())
            || dest_kind == Some(EntryKind::Dir);
        let (mut reader, writer) = io::pipe().map_err(|e| StoreError::Io {
            path: rootfs.clone(),
            source: e,
        })?;
        let dest_exists = dest_kind.is_some();
        std::thread::scope(|scope| {
            let producer = scope.spawn(|| {
                let mut tar = tar::Builder::new(io::BufWriter::new(writer));
                tar.follow_symlinks(false);
                let mut w = CopyTar {
                    tar: &mut tar,
                    options,
                };
                for (src, meta) in sources.iter().zip(&metas) {
                    if meta.is_dir() {
                        if !dest_exists && !rel.as_os_str().is_empty() {
                            w.entry(src, meta, &rel)?;
                        }
                        w.tree(src, &rel)?;
                    } else {
                        let target = if dest_is_dir {
                            rel.join(src.file_name().unwrap_or(OsStr::new("file")))
                        } else {
                            rel.clone()
                        };
                        w.entry(src, meta, &target)?;
                    }
                }
                tar.into_inner()?.flush()?;
                Ok::<(), CopyFailure>(())
            });
            let applied = ocikit_image::apply_layer(
                &rootfs,
                &mut reader,
                &MediaType::ImageLayer,
                None,
                &ocikit_image::ApplyOptions::new(),
            );
            // Whatever the applier left unread, so the producer never blocks on a full pipe.
            let _ = io::copy(&mut reader, &mut io::sink());
            let produced = producer.join().expect("the tar producer does not panic");
            match (produced, applied) {
                (Err(CopyFailure::Source { path, source }), _) => {
                    Err(StoreError::CopySource { path, source }.into())
                }
                (_, Err(e)) => Err(e.into()),
                (Err(CopyFailure::Io(source)), Ok(_)) => Err(StoreError::Io {
                    path: rootfs.clone(),
                    source,
                }
                .into()),
                (Ok(()), Ok(_)) => Ok(()),
            }
        })
    }

    /// Edits the configuration the next commit writes (and the next runs use).
    pub fn configure(&mut self, edit: &ConfigEdit) -> Result<(), crate::Error> {
        let _lock = self.lock()?;
        let root = &mut self.meta.config;
        if !root.is_object() {
            *root = serde_json::json!({});
        }
        if let Some(author) = &edit.author {
            root["author"] = author.clone().into();
        }
        if !root["config"].is_object() {
            root["config"] = serde_json::json!({});
        }
        let c = &mut root["config"];
        for (field, value) in [("Entrypoint", &edit.entrypoint), ("Cmd", &edit.cmd)] {
            match value {
                Some(args) if args.is_empty() => {
                    if let Some(map) = c.as_object_mut() {
                        map.remove(field);
                    }
                }
                Some(args) => c[field] = serde_json::json!(args),
                None => {}
            }
        }
        if !edit.env.is_empty() || !edit.unset_env.is_empty() {
            let mut env: Vec<String> = c["Env"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_owned();
            for kv in &edit.env {
                let k = key(kv);
                env.retain(|e| key(e) != k);
                env.push(kv.clone());
            }
            env.retain(|e| !edit.unset_env.contains(&key(e)));
            c["Env"] = serde_json::json!(env);
        }
        if let Some(w) = &edit.workdir {
            c["WorkingDir"] = w.clone().into();
        }
        if let Some(u) = &edit.user {
            c["User"] = u.clone().into();
        }
        if let Some(s) = &edit.stop_signal {
            c["StopSignal"] = s.clone().into();
        }
        for (field, items) in [
            (
                "Labels",
                edit.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                    .collect::<Vec<_>>(),
            ),
            (
                "ExposedPorts",
                edit.ports
                    .iter()
                    .map(|p| {
                        let p = if p.contains('/') {
                            p.clone()
                        } else {
                            format!("{p}/tcp")
                        };
                        (p, serde_json::json!({}))
                    })
                    .collect(),
            ),
            (
                "Volumes",
                edit.volumes
                    .iter()
                    .map(|v| (v.clone(), serde_json::json!({})))
                    .collect(),
            ),
        ] {
            if items.is_empty() {
                continue;
            }
            if !c[field].is_object() {
                c[field] = serde_json::json!({});
            }
            for (k, v) in items {
                c[field][k] = v;
            }
        }
        for (k, v) in &edit.annotations {
            self.meta.annotations.insert(k.clone(), v.clone());
        }
        self.save()
    }

    /// Commits the container's changes as one new layer on top of its image's layers, with
    /// the edited configuration and a history entry, into the store (under
    /// [`CommitOptions::name`] if given); [`crate::copy`] takes it from there to a layout or
    /// a registry (`oci:STORE/layout:NAME`). The container stays as it is. A failure leaves
    /// the store as it was (a layer blob already written is removed by the next prune).
    pub fn commit(&mut self, options: &CommitOptions) -> Result<Committed, crate::Error> {
        let _lock = self.lock()?;
        self.store.ensure_mounted(&self.name, true)?;
        let dir = self.dir()?;
        let layout = self.store.layout().clone();
        let name = options.name.as_deref().map(RefName::new).transpose()?;
        let base = match &self.meta.base {
            Some(d) => Some(self.store.image(d.as_ref())?),
            None => None,
        };

        let layer_options = match options.source_date_epoch {
            Some(epoch) => options.layer.clone().source_date_epoch(Some(epoch)),
            None => options.layer.clone(),
        };
        let mut writer = layout.blob_writer(None, None)?;
        let built = build_overlay_layer(
            &dir.join("upper"),
            self.store.overlay_xattrs(),
            &mut writer,
            &layer_options,
        )?;
        let layer = if built.entries > 0 || options.empty_layer {
            let (digest, size) = writer.commit()?;
            debug_assert_eq!(&digest, built.descriptor.digest());
            debug_assert_eq!(size, built.descriptor.size());
            Some(built)
        } else {
            drop(writer);
            None
        };

        let created = match options.source_date_epoch {
            Some(epoch) => crate::build::rfc3339(epoch),
            None => crate::build::rfc3339(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
            ),
        };
        let created_by = options
            .created_by
            .clone()
            .unwrap_or_else(|| self.meta.commands.join("; "));
        let mut config = self.meta.config.clone();
        config["created"] = created.clone().into();
        if !config["rootfs"].is_object() {
            config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": []});
        }
        if !config["rootfs"]["diff_ids"].is_array() {
            config["rootfs"]["diff_ids"] = serde_json::json!([]);
        }
        let mut history = serde_json::json!({"created": created, "created_by": created_by});
        match &layer {
            Some(l) => config["rootfs"]["diff_ids"]
                .as_array_mut()
                .expect("an array, just made so")
                .push(l.diff_id.to_string().into()),
            None => history["empty_layer"] = true.into(),
        }
        if !config["history"].is_array() {
            config["history"] = serde_json::json!([]);
        }
        config["history"]
            .as_array_mut()
            .expect("an array, just made so")
            .push(history);
        let config_bytes = serde_json::to_vec(&config).map_err(|e| StoreError::Corrupt {
            path: dir.join(WORKING_FILE),
            reason: format!("the configuration: {e}"),
        })?;
        let config_doc = Config::from_bytes(config_bytes)?;

        // Base layers keep their bytes; Docker media types become their OCI names.
        let mut layers: Vec<Descriptor> = base
            .as_ref()
            .map(|b| b.manifest.layers().clone())
            .unwrap_or_default();
        for l in &mut layers {
            let oci = l.media_type().to_oci();
            l.set_media_type(oci);
        }
        if let Some(l) = &layer {
            layers.push(l.descriptor.clone());
        }
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_doc.descriptor(),
            "layers": layers,
        });
        manifest["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
        if !self.meta.annotations.is_empty() {
            manifest["annotations"] = serde_json::json!(self.meta.annotations);
        }
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::Corrupt {
            path: dir.join(WORKING_FILE),
            reason: format!("the manifest: {e}"),
        })?;
        let manifest_doc = Manifest::from_bytes(manifest_bytes)?;

        // Blobs and snapshots first, the name last: a name is visible only once all it needs
        // is stored.
        layout.write_blob(
            config_doc.raw(),
            Some(config_doc.digest()),
            Some(config_doc.size()),
        )?;
        // The snapshot of the new layer: the upper directory itself when the layer holds
        // it as it is (no times or owners changed on the way), the container then going on
        // over the new image with an empty upper directory; else an unpack of the layer.
        let image_name = name
            .as_ref()
            .map_or_else(|| manifest_doc.digest().to_string(), ToString::to_string);
        let rebased = match &layer {
            Some(l) if !options.custom_layer && options.source_date_epoch.is_none() => {
                self.store.rebase_container(
                    &self.name,
                    &image_name,
                    &manifest_doc,
                    &config_doc,
                    l.uncompressed_size,
                )?
            }
            _ => false,
        };
        if !rebased {
            self.store.unpack_stored(&manifest_doc, &config_doc)?;
        }
        // What the container now stands on is saved before the name is written: a failure in
        // between leaves a container that says where it is.
        self.meta.commands.clear();
        if rebased {
            // The container now stands on the new image: later commits add to it.
            self.meta.base = Some(manifest_doc.digest().clone());
            self.meta.base_name = Some(image_name);
            self.meta.config = config;
        }
        self.save()?;
        let any = AnyManifest::Manifest(manifest_doc.clone());
        let mut descriptor = layout.put_manifest(&any)?;
        descriptor.set_platform(Some(config_doc.platform()));
        {
            let _store = self.store.lock(false)?;
            match &name {
                Some(n) => layout.set_ref(n, &descriptor)?,
                None => layout.add_unnamed(&descriptor)?,
            }
        }
        Ok(Committed {
            manifest: manifest_doc,
            config: config_doc,
            name,
            layer,
        })
    }

    /// Unmounts and removes the container, with everything it wrote (`buildah rm`). Images
    /// it committed stay.
    pub fn remove(self) -> Result<(), crate::Error> {
        let _lock = self.lock()?;
        self.store.remove_container(&self.name)
    }
}

/// How [`push`] pushes, set with chained setters on [`PushOptions::new`].
#[derive(Clone, Debug)]
pub struct PushOptions {
    compression: Compression,
    copy: CopyOptions,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            compression: Compression::Gzip,
            copy: CopyOptions::new(),
        }
    }
}

impl PushOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// How the image's uncompressed layers are compressed on the way (default gzip, as
    /// `buildah push` does; [`Compression::None`] sends them as they are). Compressed layers
    /// are sent as they are.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The options of the copy itself (platform, progress...; default [`CopyOptions::new`]).
    pub fn copy(mut self, options: CopyOptions) -> Self {
        self.copy = options;
        self
    }
}

/// Copies `image` (a name or digest in the store) to `destination`, as `buildah push` does:
/// the layers a commit stored uncompressed are compressed first (into the store's layout,
/// where the next push finds them; a prune removes them), the manifest is rewritten to name
/// them, and the image goes out through [`copy`](crate::copy::copy). Returns the manifest
/// that was pushed (the stored one when nothing needed compressing).
pub fn push(
    store: &Store,
    image: &str,
    destination: &Location,
    options: &PushOptions,
) -> Result<Manifest, crate::Error> {
    let stored = store.image(image)?;
    let layout = store.layout();
    let mut manifest = stored.manifest.clone();
    if options.compression != Compression::None {
        let mut layers = manifest.layers().clone();
        let mut changed = false;
        for layer in &mut layers {
            if layer.media_type().compression() != Some(Compression::None) {
                continue;
            }
            let mut writer = layout.blob_writer(None, None)?;
            let built = ocikit_image::compress_layer(
                layout.open_blob(layer)?,
                &mut writer,
                &BuildOptions::new().compression(options.compression),
            )?;
            writer.commit()?;
            // The diff_id the configuration records is the uncompressed blob's digest.
            if &built.diff_id != layer.digest() {
                return Err(StoreError::Corrupt {
                    path: layout.root().to_owned(),
                    reason: format!("layer {} is not what it says", layer.digest()),
                }
                .into());
            }
            *layer = built.descriptor;
            changed = true;
        }
        if changed {
            let mut value: serde_json::Value =
                serde_json::from_slice(manifest.raw()).map_err(|e| StoreError::Corrupt {
                    path: layout.root().to_owned(),
                    reason: format!("manifest {}: {e}", manifest.digest()),
                })?;
            value["layers"] = serde_json::json!(layers);
            let bytes = serde_json::to_vec(&value).map_err(|e| StoreError::Corrupt {
                path: layout.root().to_owned(),
                reason: e.to_string(),
            })?;
            manifest = Manifest::from_bytes(bytes)?;
        }
    }
    let mut descriptor = layout.put_manifest(&AnyManifest::Manifest(manifest.clone()))?;
    descriptor.set_platform(Some(stored.config.platform()));
    // The copy reads the layout by name: a name of this push's own, removed after it.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = RefName::new(format!(
        "ocikit-push-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))?;
    layout.set_ref(&name, &descriptor)?;
    let source = Location::Oci {
        dir: layout.root().to_owned(),
        name: Some(name.to_string()),
    };
    let copied = crate::copy::copy(&source, destination, &options.copy);
    layout.remove_ref(&name, None)?;
    copied?;
    Ok(manifest)
}

/// Whether `name` is `default` or `default-N`: a name this module chose, so another may be
/// tried when it is taken.
fn name_is_default(name: &str, default: &str) -> bool {
    name == default
        || name
            .strip_prefix(default)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

/// The short name of an image, as buildah names working containers after it: the last path
/// component of the repository, without tag or digest (`busybox` for
/// `docker://registry:5000/lib/busybox:1.36`), reduced to the characters a container id may
/// hold.
fn short_name(image: &str) -> String {
    let image = image.rsplit_once("://").map_or(image, |(_, r)| r);
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split(':').next().unwrap_or(last);
    let clean: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_matches(|c| c == '-' || c == '.').to_owned();
    if clean.is_empty() {
        "image".into()
    } else {
        clean
    }
}

/// A word as a shell would need it quoted, for the history's `created_by`.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryKind {
    Dir,
    File,
    Other,
}

/// What `rel` is inside `root`, resolved as the container would see it (links followed
/// inside the root, never out of it); none if it does not exist.
fn kind_in_root(root: &Path, rel: &str) -> Option<EntryKind> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let fd = rustix::fs::openat2(
        &dir,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
    Some(match ft {
        rustix::fs::FileType::Directory => EntryKind::Dir,
        rustix::fs::FileType::RegularFile => EntryKind::File,
        _ => EntryKind::Other,
    })
}

/// The first component of `dest` (absolute, in the container) that does not exist in
/// `root`, as a path relative to it: what a runtime making the mount point creates.
fn first_missing(root: &Path, dest: &Path) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for c in dest.components() {
        if let std::path::Component::Normal(name) = c {
            rel.push(name);
            if kind_in_root(root, &rel.to_string_lossy()).is_none() {
                return Some(rel);
            }
        }
    }
    None
}

/// Removes what a runtime made at `rel` in `root` for a mount point: empty directories and
/// empty files only, never following a link (what a command wrote there stays).
fn remove_scaffolding(root: &Path, rel: &Path) {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let Some(name) = rel.file_name() else {
        return;
    };
    let parent = rel
        .parent()
        .map_or_else(|| ".".into(), |p| p.to_string_lossy().into_owned());
    let parent = if parent.is_empty() {
        ".".to_owned()
    } else {
        parent
    };
    let Ok(root_fd) = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let Ok(dir) = rustix::fs::openat2(
        &root_fd,
        parent.as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS,
    ) else {
        return;
    };
    remove_empty_at(&dir, name, 0);
}

fn remove_empty_at(dir: &std::os::fd::OwnedFd, name: &OsStr, depth: usize) {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return;
    };
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::RegularFile if st.st_size == 0 => {
            let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
        }
        rustix::fs::FileType::Directory if depth < 16 => {
            if let Ok(sub) = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                let names: Vec<std::ffi::OsString> = rustix::fs::Dir::read_from(&sub)
                    .map(|d| {
                        d.filter_map(Result::ok)
                            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
                            .filter(|n| n != "." && n != "..")
                            .collect()
                    })
                    .unwrap_or_default();
                for n in names {
                    remove_empty_at(&sub, &n, depth + 1);
                }
            }
            let _ = rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR);
        }
        _ => {}
    }
}

/// Why writing the tar of a copy failed.
enum CopyFailure {
    /// A source could not be read.
    Source { path: PathBuf, source: io::Error },
    /// The pipe to the applier failed (it stopped reading: its error is the one to report).
    Io(io::Error),
}

impl From<io::Error> for CopyFailure {
    fn from(e: io::Error) -> Self {
        CopyFailure::Io(e)
    }
}

/// The tar stream of a copy: entries named in the container, owners and modes as asked.
struct CopyTar<'a, W: Write> {
    tar: &'a mut tar::Builder<W>,
    options: &'a CopyInOptions,
}

impl<W: Write> CopyTar<'_, W> {
    fn tree(&mut self, dir: &Path, rel: &Path) -> Result<(), CopyFailure> {
        let source = |source| CopyFailure::Source {
            path: dir.to_owned(),
            source,
        };
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(source)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(source)?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(|source| CopyFailure::Source {
                path: path.clone(),
                source,
            })?;
            let target = rel.join(&name);
            self.entry(&path, &meta, &target)?;
            if meta.is_dir() {
                self.tree(&path, &target)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, meta: &fs::Metadata, name: &Path) -> Result<(), CopyFailure> {
        let fail = |source| CopyFailure::Source {
            path: path.to_owned(),
            source,
        };
        if name
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b".wh."))
        {
            // A layer cannot hold such a name: readers take it for a whiteout (layer.md).
            return Err(fail(io::Error::new(
                io::ErrorKind::InvalidInput,
                "names starting with .wh. are whiteouts in a layer and cannot be copied",
            )));
        }
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        let (uid, gid) = self.options.owner.unwrap_or((0, 0));
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        if let Some(mode) = self.options.mode {
            h.set_mode(mode);
        }
        h.set_mtime(meta.mtime().max(0) as u64);
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(fail)?;
            h.set_size(0);
            self.tar.append_link(&mut h, name, &target).map_err(fail)?;
        } else if ft.is_dir() {
            h.set_size(0);
            self.tar
                .append_data(&mut h, name, io::empty())
                .map_err(fail)?;
        } else if ft.is_file() {
            let file = File::open(path).map_err(fail)?;
            let len = file.metadata().map_err(fail)?.len();
            h.set_size(len);
            // Cut at the length the header records, should the file grow meanwhile.
            let mut data = io::Read::take(file, len);
            self.tar
                .append_data(&mut h, name, &mut data)
                .map_err(fail)?;
            if data.limit() > 0 {
                return Err(fail(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was being copied",
                )));
            }
        } else {
            // Devices, fifos and sockets are not copied, as buildah skips them.
            return Ok(());
        }
        Ok(())
    }
}
