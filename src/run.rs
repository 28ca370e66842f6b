//! Running images: unpack (or mount from the store), convert, create, start, wait, delete,
//! all set by one [`RunOptions`].
//!
//! - [`run_image`] unpacks an image into a bundle directory and runs it, like `umoci unpack`
//!   then `runc run`; [`run_stored`] runs an image of the [`Store`] over an overlay mount, like
//!   `podman run`; [`run_bundle`] runs a bundle already made.
//! - Each has a `spawn_` twin that returns once the container's process started: a
//!   [`Running`] container whose piped standard streams the caller reads or writes while it
//!   runs, then [`Running::wait`]s for.
//!
//! # What the program must do
//!
//! The runtime starts each container's init by re-executing a program: by default the running
//! one (`/proc/self/exe`), which must then call [`ocikit::init_if_requested()`](crate::init_if_requested)
//! first thing in `main`, before any thread is started:
//!
//! ```no_run
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Returns at once in the program itself; never returns in a container's init.
//!     ocikit::init_if_requested();
//!     // ... ocikit::run::run_image(...) and the rest of the program.
//!     Ok(())
//! }
//! ```
//!
//! A program that cannot (a test harness, a plugin) names another program that does with
//! [`RunOptions::helper`], such as the workspace's `oci-runtime` binary. Creating containers
//! needs root (or a rootless configuration: [`RunOptions::rootless`]).

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;
use ocikit_image::{ApplyOptions, ImageSource, ResolvedImage};
use ocikit_runtime::{CreateOptions, ExitStatus, Runtime};

use crate::convert::ConvertOptions;
use crate::progress::{Observer, Progress};
use crate::store::{RootfsOptions, Store};
use crate::unpack::{BundleReport, UnpackOptions, unpack_bundle};

/// Where a container's standard input, output or error goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stdio {
    /// The caller's own (the default).
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe: the caller writes the container's input ([`Running::stdin`]) or reads its
    /// output ([`Running::stdout`], [`Running::stderr`]; [`Output`] holds it after a `run_`).
    Piped,
}

/// How a container is run, set with chained setters on [`RunOptions::new`]: what the
/// container runs and with what limits (written into its `config.json`), how it is unpacked,
/// its standard streams, and where the runtime keeps its state. One value serves
/// [`run_image`], [`run_stored`] and [`run_bundle`] (a bundle already has its `config.json`:
/// there only the id, state, helper and streams apply).
#[derive(Clone, Debug)]
pub struct RunOptions {
    id: Option<String>,
    state_root: Option<PathBuf>,
    helper: Option<PathBuf>,
    convert: ConvertOptions,
    apply: ApplyOptions,
    rootfs: RootfsOptions,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    progress: Option<Observer>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            id: None,
            state_root: None,
            helper: None,
            convert: ConvertOptions::new()
                .capabilities(crate::convert::DEFAULT_CAPABILITIES.iter().copied()),
            apply: ApplyOptions::new(),
            rootfs: RootfsOptions::new(),
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            progress: None,
        }
    }
}

impl RunOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The container id (default: `ocikit-<pid>-<n>`, unique in this process).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Where container state lives (default [`runtime::default_root`](crate::runtime::default_root):
    /// `/run/ocikit`, or `$XDG_RUNTIME_DIR/ocikit` for any user but root).
    pub fn state_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.state_root = Some(root.into());
        self
    }

    /// The program re-executed as each container's init (default: this program, which must
    /// call [`ocikit::init_if_requested()`](crate::init_if_requested) first in `main`).
    pub fn helper(mut self, helper: impl Into<PathBuf>) -> Self {
        self.helper = Some(helper.into());
        self
    }

    /// A memory limit in bytes (default none).
    pub fn memory_limit(mut self, bytes: i64) -> Self {
        self.convert = self.convert.memory_limit(bytes);
        self
    }

    /// A CPU limit: `quota` microseconds of CPU time per `period` (default none).
    pub fn cpu_quota(mut self, quota: i64, period: u64) -> Self {
        self.convert = self.convert.cpu_quota(quota, period);
        self
    }

    /// The most processes the container may have (default none).
    pub fn pids_limit(mut self, pids: i64) -> Self {
        self.convert = self.convert.pids_limit(pids);
        self
    }

    /// The command: replaces the image's `Entrypoint` and `Cmd` with `args` (default: the
    /// image's).
    pub fn command(mut self, args: Vec<String>) -> Self {
        self.convert = self.convert.entrypoint(args).cmd(Vec::new());
        self
    }

    /// Replaces the image's `Cmd`, the arguments after its `Entrypoint` (default: the
    /// image's).
    pub fn args(mut self, args: Vec<String>) -> Self {
        self.convert = self.convert.cmd(args);
        self
    }

    /// Sets `KEY=VALUE` in the environment, over the image's value of `KEY`.
    pub fn env(mut self, key_value: impl Into<String>) -> Self {
        self.convert = self.convert.env(key_value);
        self
    }

    /// The user the process runs as, as `Config.User` gives it (`name`, `uid`,
    /// `name:group`, `uid:gid`; default: the image's).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.convert = self.convert.user(user);
        self
    }

    /// The capabilities the process may hold (default [`DEFAULT_CAPABILITIES`], podman's:
    /// root in the container may chown, override permissions, change its ids...): see
    /// [`ConvertOptions::capabilities`].
    ///
    /// [`DEFAULT_CAPABILITIES`]: crate::convert::DEFAULT_CAPABILITIES
    pub fn capabilities<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.convert = self.convert.capabilities(names);
        self
    }

    /// Capabilities a process not running as uid 0 keeps (default none): see
    /// [`ConvertOptions::non_root_capabilities`].
    pub fn non_root_capabilities<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.convert = self.convert.non_root_capabilities(names);
        self
    }

    /// Gives a user or group the image lacks an `/etc/passwd` or `/etc/group` entry in the
    /// container's root, as `podman run` does (default false): see
    /// [`ConvertOptions::podman_passwd`].
    pub fn podman_passwd(mut self, podman: bool) -> Self {
        self.convert = self.convert.podman_passwd(podman);
        self
    }

    /// Gives the process the additional groups `podman run` gives it rather than
    /// image-spec conversion.md's (default false): see [`ConvertOptions::podman_groups`].
    pub fn podman_groups(mut self, podman: bool) -> Self {
        self.convert = self.convert.podman_groups(podman);
        self
    }

    /// The working directory instead of the image's (default: the image's `WorkingDir`).
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.convert = self.convert.workdir(dir);
        self
    }

    /// Adds a mount (default none), e.g. a bind mount of a host directory.
    pub fn mount(mut self, mount: Mount) -> Self {
        self.convert = self.convert.mount(mount);
        self
    }

    /// The container's hostname (default: the runtime's).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.convert = self.convert.hostname(hostname);
        self
    }

    /// Makes the configuration runnable without root (default false): see
    /// [`ConvertOptions::rootless`].
    pub fn rootless(mut self, rootless: bool) -> Self {
        self.convert = self.convert.rootless(rootless);
        self
    }

    /// Everything else of the conversion at once (read-only root, volumes, default
    /// arguments...), replacing what the setters above set: see [`ConvertOptions`]. Default
    /// [`ConvertOptions::new`] with [`DEFAULT_CAPABILITIES`] (a [`ConvertOptions`] given here
    /// keeps its own: `runc spec`'s unless it sets them).
    ///
    /// [`DEFAULT_CAPABILITIES`]: crate::convert::DEFAULT_CAPABILITIES
    pub fn convert(mut self, options: ConvertOptions) -> Self {
        self.convert = options;
        self
    }

    /// How [`run_image`] applies layers (default [`ApplyOptions::new`]).
    pub fn apply(mut self, options: ApplyOptions) -> Self {
        self.apply = options;
        self
    }

    /// How [`run_stored`] mounts the root filesystem (default [`RootfsOptions::new`]).
    pub fn rootfs(mut self, options: RootfsOptions) -> Self {
        self.rootfs = options;
        self
    }

    /// The container's standard input (default [`Stdio::Inherit`]).
    pub fn stdin(mut self, stdio: Stdio) -> Self {
        self.stdin = stdio;
        self
    }

    /// The container's standard output (default [`Stdio::Inherit`]).
    pub fn stdout(mut self, stdio: Stdio) -> Self {
        self.stdout = stdio;
        self
    }

    /// The container's standard error (default [`Stdio::Inherit`]).
    pub fn stderr(mut self, stdio: Stdio) -> Self {
        self.stderr = stdio;
        self
    }

    /// Reports [`run_image`]'s unpacking to `observer` (default none): see
    /// [`progress`](crate::progress).
    pub fn progress(mut self, observer: impl Progress + 'static) -> Self {
        self.progress = Some(Observer::new(observer));
        self
    }

    fn runtime(&self) -> Result<Runtime, crate::Error> {
        // /run/ocikit for root, $XDG_RUNTIME_DIR/ocikit for anyone else (as runc).
        let root = match self.state_root.clone() {
            Some(root) => root,
            None => ocikit_runtime::default_root()?,
        };
        let runtime = Runtime::new(root);
        Ok(match &self.helper {
            Some(helper) => runtime.with_helper(helper),
            None => runtime,
        })
    }

    fn container_id(&self) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        self.id.clone().unwrap_or_else(|| {
            format!(
                "ocikit-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            )
        })
    }
}

/// How a container ended, with the output it wrote to [`Stdio::Piped`] streams.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Output {
    /// How its process ended.
    pub status: ExitStatus,
    /// Its standard output, when piped (empty otherwise).
    pub stdout: Vec<u8>,
    /// Its standard error, when piped (empty otherwise).
    pub stderr: Vec<u8>,
}

/// A container whose process runs: read its piped output, then [`wait`](Running::wait) for
/// it. Dropped without a wait, it is killed and deleted.
#[derive(Debug)]
pub struct Running {
    runtime: Runtime,
    id: String,
    store: Option<Store>,
    finished: bool,
    /// The container's standard input, when [`Stdio::Piped`]: close it (drop it, or
    /// [`Option::take`] it) to give the process end of file.
    pub stdin: Option<File>,
    /// The container's standard output, when [`Stdio::Piped`].
    pub stdout: Option<File>,
    /// The container's standard error, when [`Stdio::Piped`].
    pub stderr: Option<File>,
}

impl Running {
    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits for the container's process to end, then deletes the container (and, from
    /// [`spawn_stored`], its root filesystem in the store). Piped output not read by then
    /// may fill its pipe and keep the process from ending: read it first, or use
    /// [`wait_with_output`](Self::wait_with_output).
    pub fn wait(mut self) -> Result<ExitStatus, crate::Error> {
        self.stdin = None;
        let status = self.runtime.wait(&self.id);
        let cleaned = self.clean_up();
        let status = status?;
        cleaned?;
        Ok(status)
    }

    /// Reads the piped output to its end while the process runs, then [`wait`](Self::wait)s.
    pub fn wait_with_output(mut self) -> Result<Output, crate::Error> {
        self.stdin = None;
        let (stdout, stderr) = (self.stdout.take(), self.stderr.take());
        let read_all = |f: Option<File>| -> std::io::Result<Vec<u8>> {
            let mut out = Vec::new();
            if let Some(mut f) = f {
                f.read_to_end(&mut out)?;
            }
            Ok(out)
        };
        let (out, err) = std::thread::scope(|s| {
            let err = s.spawn(|| read_all(stderr));
            let out = read_all(stdout);
            (
                out,
                err.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            )
        });
        let status = self.wait()?;
        let pipe = |source| crate::Error::Io {
            path: PathBuf::from("<container output pipe>"),
            source,
        };
        Ok(Output {
            status,
            stdout: out.map_err(pipe)?,
            stderr: err.map_err(pipe)?,
        })
    }

    /// Deletes the container (killing what still runs) and its store root filesystem.
    fn clean_up(&mut self) -> Result<(), crate::Error> {
        self.finished = true;
        let deleted = self.runtime.delete(&self.id, true);
        let removed = match &self.store {
            Some(store) => store.remove_container(&self.id),
            None => Ok(()),
        };
        deleted?;
        removed
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.clean_up();
        }
    }
}

/// The descriptor a stream gets, and the caller's end of its pipe.
fn stream(stdio: Stdio, input: bool) -> Result<(Option<OwnedFd>, Option<File>), crate::Error> {
    let io = |path: &str| {
        let path = PathBuf::from(path);
        move |source| crate::Error::Io { path, source }
    };
    Ok(match stdio {
        Stdio::Inherit => (None, None),
        Stdio::Null => {
            let null = File::options()
                .read(input)
                .write(!input)
                .open("/dev/null")
                .map_err(io("/dev/null"))?;
            (Some(null.into()), None)
        }
        Stdio::Piped => {
            let (reader, writer) = std::io::pipe().map_err(io("<pipe>"))?;
            let (theirs, ours): (OwnedFd, OwnedFd) = if input {
                (reader.into(), writer.into())
            } else {
                (writer.into(), reader.into())
            };
            (Some(theirs), Some(File::from(ours)))
        }
    })
}

/// Creates and starts the container of `bundle` with the options' streams.
fn spawn(
    bundle: &Path,
    options: &RunOptions,
    id: String,
    store: Option<Store>,
) -> Result<Running, crate::Error> {
    let (stdin, stdin_ours) = stream(options.stdin, true)?;
    let (stdout, stdout_ours) = stream(options.stdout, false)?;
    let (stderr, stderr_ours) = stream(options.stderr, false)?;
    let mut create = CreateOptions::new();
    if let Some(fd) = stdin {
        create = create.stdin(fd);
    }
    if let Some(fd) = stdout {
        create = create.stdout(fd);
    }
    if let Some(fd) = stderr {
        create = create.stderr(fd);
    }
    let runtime = options.runtime()?;
    // The container's ends of the pipes go with `create` (dropped when it returns): the
    // caller's reads see end of file once the container's process is gone.
    runtime.create(&id, bundle, create)?;
    let running = Running {
        runtime,
        id,
        store,
        finished: false,
        stdin: stdin_ours,
        stdout: stdout_ours,
        stderr: stderr_ours,
    };
    // Dropping `running` on failure deletes the container.
    running.runtime.start(&running.id)?;
    Ok(running)
}

/// Creates and starts the container of the bundle `bundle` (its `config.json` and root
/// filesystem as they are): see [`Running`]. Only the options' id, state root, helper and
/// streams apply.
///
/// The program must call [`ocikit::init_if_requested()`](crate::init_if_requested) first
/// thing in `main`, or name a helper with [`RunOptions::helper`]: see the
/// [module docs](self).
pub fn spawn_bundle(bundle: &Path, options: &RunOptions) -> Result<Running, crate::Error> {
    spawn(bundle, options, options.container_id(), None)
}

/// Creates, starts and waits for the container of `bundle`, deletes it, and returns how its
/// process ended and its piped output, like `runc run`: [`spawn_bundle`] then
/// [`Running::wait_with_output`].
///
/// The program must call [`ocikit::init_if_requested()`](crate::init_if_requested) first
/// thing in `main`, or name a helper with [`RunOptions::helper`]: see the
/// [module docs](self).
pub fn run_bundle(bundle: &Path, options: &RunOptions) -> Result<Output, crate::Error> {
    spawn_bundle(bundle, options)?.wait_with_output()
}

/// Unpacks `image` of `source` into the bundle directory `bundle` (see
/// [`unpack_bundle`]: the options' layer, conversion and progress settings), then creates and
/// starts its container. The bundle stays when the container is deleted.
///
/// The program must call [`ocikit::init_if_requested()`](crate::init_if_requested) first
/// thing in `main`, or name a helper with [`RunOptions::helper`]: see the
/// [module docs](self).
pub fn spawn_image(
    source: &dyn ImageSource,
    image: &ResolvedImage,
    bundle: &Path,
    options: &RunOptions,
) -> Result<(BundleReport, Running), crate::Error> {
    let unpack = UnpackOptions::new()
        .apply(options.apply.clone())
        .convert(options.convert.clone())
        .observer(options.progress.clone());
    let made = unpack_bundle(source, image, bundle, &unpack)?;
    let running = spawn_bundle(bundle, options)?;
    Ok((made, running))
}

/// [`spawn_image`], then [`Running::wait_with_output`].
///
/// ```no_run
/// use ocikit::copy::open_source;
/// use ocikit::run::{RunOptions, Stdio, run_image};
///
/// ocikit::init_if_requested();
/// let opened = open_source(&"registry.example/app:v1".parse()?, &ocikit::image::host_platform())?;
/// let options = RunOptions::new()
///     .memory_limit(256 << 20)
///     .command(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
///     .stdout(Stdio::Piped);
/// let (_, out) = run_image(opened.source(), &opened.image()?, "/tmp/bundle".as_ref(), &options)?;
/// assert_eq!(out.stdout, b"hi\n");
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn run_image(
    source: &dyn ImageSource,
    image: &ResolvedImage,
    bundle: &Path,
    options: &RunOptions,
) -> Result<(BundleReport, Output), crate::Error> {
    let (made, running) = spawn_image(source, image, bundle, options)?;
    Ok((made, running.wait_with_output()?))
}

/// Makes a container of the store's image `image` (a name or digest, see
/// [`Store::create_bundle`]: an overlay over the image's snapshots and the options'
/// conversion), then creates and starts it; waiting deletes the container and its root
/// filesystem.
///
/// The program must call [`ocikit::init_if_requested()`](crate::init_if_requested) first
/// thing in `main`, or name a helper with [`RunOptions::helper`]: see the
/// [module docs](self).
pub fn spawn_stored(
    store: &Store,
    image: &str,
    options: &RunOptions,
) -> Result<Running, crate::Error> {
    let id = options.container_id();
    let bundle = store.create_bundle(image, &id, &options.convert, &options.rootfs)?;
    match spawn(&bundle, options, id.clone(), Some(store.clone())) {
        Ok(running) => Ok(running),
        Err(e) => {
            let _ = store.remove_container(&id);
            Err(e)
        }
    }
}

/// [`spawn_stored`], then [`Running::wait_with_output`].
pub fn run_stored(
    store: &Store,
    image: &str,
    options: &RunOptions,
) -> Result<Output, crate::Error> {
    spawn_stored(store, image, options)?.wait_with_output()
}
