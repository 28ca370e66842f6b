//! The lifecycle: create, start, state, kill, delete, run.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, mkfifo};
use oci_spec::runtime::{ContainerState, Process, State};

use crate::cgroup::{Cgroup, Stats};
use crate::config::{Bundle, validate_id};
use crate::error::{Error, Result};
use crate::hooks::{self, Point};
use crate::init::{
    INIT_ENV, InitConfig, MAX_MESSAGE, Msg, PROTOCOL_VERSION, channel_error, encode, hello, recv,
    send, send_body,
};
use crate::state::{
    FIFO, Persisted, load_cgroup, load_hooks, load_spec, now_rfc3339, proc_stat, save_cgroup,
    save_hooks, save_spec,
};
use crate::sys;

/// The default state root, like runc's `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/ocikit";

/// Where cgroup file systems are mounted by default.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Where containers' state lives and which binary serves as their init process.
///
/// A `Runtime` is `Send + Sync`; one value may serve many threads at once.
#[derive(Debug)]
pub struct Runtime {
    root: PathBuf,
    helper: PathBuf,
    cgroup_root: PathBuf,
    rootless: bool,
    sealed: OnceLock<OwnedFd>,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new(DEFAULT_ROOT)
    }
}

/// Options for [`Runtime::create`] and [`Runtime::run`]. Defaults: stdio inherited from the
/// calling process, no preserved descriptors, `pivot_root`.
#[derive(Debug, Default)]
pub struct CreateOptions {
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    preserve_fds: u32,
    no_pivot: bool,
    console_socket: Option<PathBuf>,
}

impl CreateOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The container's standard input (default: the caller's).
    pub fn stdin(mut self, fd: impl Into<OwnedFd>) -> Self {
        self.stdin = Some(fd.into());
        self
    }

    /// The container's standard output (default: the caller's).
    pub fn stdout(mut self, fd: impl Into<OwnedFd>) -> Self {
        self.stdout = Some(fd.into());
        self
    }

    /// The container's standard error (default: the caller's).
    pub fn stderr(mut self, fd: impl Into<OwnedFd>) -> Self {
        self.stderr = Some(fd.into());
        self
    }

    /// Passes the caller's descriptors `3 .. 3 + n` to the container (default 0). They must
    /// not be close-on-exec in the caller, like runc's `--preserve-fds`.
    pub fn preserve_fds(mut self, n: u32) -> Self {
        self.preserve_fds = n;
        self
    }

    /// The unix socket that receives the master of the container's pseudo-terminal when
    /// `process.terminal` is true (required then; default none), as runc's
    /// `--console-socket`: one message whose payload is the terminal's name and whose
    /// `SCM_RIGHTS` carry the descriptor.
    pub fn console_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.console_socket = Some(path.into());
        self
    }

    /// Switches root with `MS_MOVE` + `chroot` instead of `pivot_root` (default false), for
    /// roots where `pivot_root` is impossible (e.g. a ramfs initrd).
    pub fn no_pivot(mut self, yes: bool) -> Self {
        self.no_pivot = yes;
        self
    }
}

/// A container's state: the runtime-spec State plus what runc also reports.
#[derive(Debug, Clone)]
pub struct Container {
    state: State,
    rootfs: PathBuf,
    created: String,
    paused: bool,
}

impl Container {
    /// The runtime-spec State (`ociVersion`, `id`, `status`, `pid`, `bundle`, `annotations`).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The id.
    pub fn id(&self) -> &str {
        self.state.id()
    }

    /// The status.
    pub fn status(&self) -> ContainerState {
        *self.state.status()
    }

    /// The pid of the container process as the host sees it (0 once stopped, as runc says).
    pub fn pid(&self) -> i32 {
        self.state.pid().unwrap_or(0)
    }

    /// The absolute rootfs path.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// When it was created, RFC 3339.
    pub fn created(&self) -> &str {
        &self.created
    }

    /// Whether it is paused ([`Runtime::pause`]): its status is then `running` in the
    /// runtime-spec State, which has no paused status, and `paused` in [`to_json`](Self::to_json)
    /// and the command line's `state` and `list`, as runc reports it.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The status as runc names it: `paused` for a paused container, else the State's.
    pub fn status_name(&self) -> String {
        if self.paused {
            "paused".into()
        } else {
            self.status().to_string()
        }
    }

    /// The JSON `runc state` prints: the State fields plus `rootfs`, `created` and `owner`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.state).expect("State serializes");
        if let Some(o) = v.as_object_mut() {
            o.insert("pid".into(), self.pid().into());
            o.insert("status".into(), self.status_name().into());
            o.insert("rootfs".into(), self.rootfs.to_string_lossy().into());
            o.insert("created".into(), self.created.clone().into());
            o.insert("owner".into(), "".into());
        }
        v
    }
}

/// An event of a running container ([`Runtime::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Its cgroup's counters, read now.
    Stats(Stats),
    /// The kernel found its cgroup out of memory (the OOM killer may have run).
    Oom,
}

/// How a container process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(Signal),
}

impl ExitStatus {
    /// The shell convention runc follows: the exit code, or 128 + the signal number.
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Exited(c) => *c,
            ExitStatus::Signaled(s) => 128 + *s as i32,
        }
    }
}

/// Parses a signal the way `runc kill` does: `KILL`, `SIGKILL` or `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || Error::InvalidSignal { signal: s.into() };
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

fn sys_err(context: &'static str) -> impl FnOnce(Errno) -> Error {
    move |e| Error::sys(context, None, e)
}

impl Runtime {
    /// A runtime keeping state under `root`, using the running executable as the init helper
    /// (the program must call [`crate::init_if_requested`] first thing in `main`: if it did
    /// not, [`create`](Self::create), [`exec`](Self::exec) and [`run`](Self::run) refuse with
    /// [`Error::InitNotWired`] before spawning anything).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime {
            root: root.into(),
            helper: PathBuf::from("/proc/self/exe"),
            cgroup_root: PathBuf::from(DEFAULT_CGROUP_ROOT),
            rootless: crate::rootless::is_rootless(),
            sealed: OnceLock::new(),
        }
    }

    /// Where the cgroup file systems are mounted (default [`DEFAULT_CGROUP_ROOT`]): a v2
    /// (unified) hierarchy if `<root>/cgroup.controllers` exists, else one v1 hierarchy per
    /// controller in `<root>/<controller>`.
    pub fn with_cgroup_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.cgroup_root = root.into();
        self
    }

    /// Runs containers as `runc --rootless` does (default: [`crate::is_rootless`], true for
    /// every user but root): a cgroup that cannot be made or written for lack of permission
    /// is skipped, unless the configuration asks for limits, which is then an
    /// [`Error::Rootless`] naming them. See the crate's "Rootless" section.
    pub fn rootless(mut self, yes: bool) -> Self {
        self.rootless = yes;
        self
    }

    /// Uses another binary as the init helper (default: the running executable). It must call
    /// [`crate::init_if_requested`] first thing in `main`; the `oci-runtime` binary does. A
    /// helper that does not greet the runtime as an init first (it exits, hangs for
    /// [`HELLO_TIMEOUT`], or writes something else) is killed and the operation fails with
    /// [`Error::InitNotWired`]; nothing is sent to it.
    pub fn with_helper(mut self, helper: impl Into<PathBuf>) -> Self {
        self.helper = helper.into();
        self
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Refuses to re-execute the running program as an init if it never called
    /// [`crate::init_if_requested`]: its own `main` would run in the child instead.
    fn check_wired(&self) -> Result<()> {
        if crate::init::wired() || !self.helper_is_self() {
            return Ok(());
        }
        Err(Error::InitNotWired {
            helper: self.helper_display(),
            reason: "this program never called ocikit_runtime::init_if_requested(), so \
                     re-executing it would run its own main; nothing was spawned"
                .into(),
        })
    }

    /// Whether the helper is the running executable (by default, or named by its path).
    fn helper_is_self(&self) -> bool {
        if self.helper == Path::new("/proc/self/exe") {
            return true;
        }
        let exe = std::env::current_exe().and_then(std::fs::canonicalize);
        matches!((exe, std::fs::canonicalize(&self.helper)), (Ok(a), Ok(b)) if a == b)
    }

    /// The helper's path for messages: the running executable's real path for the default.
    fn helper_display(&self) -> PathBuf {
        match std::env::current_exe() {
            Ok(exe) if self.helper == Path::new("/proc/self/exe") => exe,
            _ => self.helper.clone(),
        }
    }

    fn dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        Ok(self.root.join(id))
    }

    /// The helper as a descriptor the container can never write through (CVE-2019-5736):
    /// a read-only detached bind mount of it where the kernel allows (cheap), else a sealed
    /// in-memory copy. Made once per `Runtime`.
    fn sealed_helper(&self) -> Result<&OwnedFd> {
        if let Some(fd) = self.sealed.get() {
            return Ok(fd);
        }
        let fd = match sys::readonly_clone(&self.helper) {
            Ok(fd) => fd,
            Err(_) => self.memfd_copy()?,
        };
        Ok(self.sealed.get_or_init(|| fd))
    }

    fn memfd_copy(&self) -> Result<OwnedFd> {
        let src = std::fs::File::open(&self.helper)
            .map_err(|e| Error::io("opening the init helper", Some(self.helper.clone()), e))?;
        let len = src
            .metadata()
            .map_err(|e| Error::io("opening the init helper", Some(self.helper.clone()), e))?
            .len() as usize;
        let mfd = memfd_create(
            "oci-runtime",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(sys_err("memfd_create"))?;
        let mut done = 0;
        while done < len {
            let n = nix::sys::sendfile::sendfile(&mfd, &src, None, len - done)
                .map_err(sys_err("copying the init helper"))?;
            if n == 0 {
                break;
            }
            done += n;
        }
        fcntl(
            &mfd,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SEAL
                    | SealFlag::F_SEAL_SHRINK
                    | SealFlag::F_SEAL_GROW
                    | SealFlag::F_SEAL_WRITE,
            ),
        )
        .map_err(sys_err("sealing the init helper"))?;
        Ok(mfd)
    }

    /// Creates a container from the bundle at `bundle`: namespaces, root filesystem and user
    /// are set up and the process waits for [`start`](Self::start). Returns its state.
    ///
    /// The container process is a child of the calling process (like runc's init), so the
    /// caller can [`wait`](Self::wait) for it.
    pub fn create(
        &self,
        id: &str,
        bundle: impl AsRef<Path>,
        opts: CreateOptions,
    ) -> Result<Container> {
        self.check_wired()?;
        let dir = self.dir(id)?;
        let bundle = Bundle::load(bundle)?;
        crate::rootless::check_config(bundle.spec())?;
        crate::security::check_lsm(bundle.spec())?;
        if let Some(p) = bundle.spec().process() {
            for w in crate::security::ambient_warnings(p) {
                eprintln!("oci-runtime: warning: {w}");
            }
        }
        let terminal = bundle.spec().process().as_ref().and_then(|p| p.terminal());
        if terminal == Some(true) && opts.console_socket.is_none() {
            return Err(Error::config(
                "process.terminal",
                "a terminal needs a console socket (CreateOptions::console_socket)",
            ));
        }
        if let Some(s) = bundle
            .spec()
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
        {
            // Compiled here for its errors and warnings; the init process compiles it again.
            for w in crate::seccomp::compile(s)?.1 {
                eprintln!("oci-runtime: warning: {w}");
            }
        }
        // Private, like runc's: whoever can open a created container's fifo can start it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| Error::io("creating state root", Some(self.root.clone()), e))?;
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::ContainerExists { id: id.into() });
            }
            Err(e) => return Err(Error::io("creating state directory", Some(dir), e)),
        }
        let mut persisted = Persisted {
            id: id.into(),
            pid: 0,
            start_time: 0,
            bundle: bundle.dir().to_path_buf(),
            rootfs: bundle.rootfs().to_path_buf(),
            created: now_rfc3339(),
            annotations: bundle.spec().annotations().clone().unwrap_or_default(),
            oci_version: bundle.spec().version().clone(),
        };
        // Always a cgroup, as runc (its device policy is default-deny whatever the
        // configuration says): by default `<id>` below the caller's own cgroup.
        let linux = bundle.spec().linux().as_ref();
        let mut cgroup = linux.map(|l| {
            let path = l.cgroups_path().clone().unwrap_or_else(|| id.into());
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            Cgroup::plan(&self.cgroup_root, &path, &own)
        });
        let result = self.spawn_init(&dir, &bundle, opts, &mut persisted, &mut cgroup);
        match result {
            Ok(()) => self.state(id),
            Err(e) => {
                if persisted.pid > 0 {
                    let pid = Pid::from_raw(persisted.pid);
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                }
                if let Some(cg) = &cgroup {
                    kill_all(cg);
                    let _ = cg.remove(Duration::from_secs(2));
                }
                if !crate::rootfs::has_mount_namespace(bundle.spec()) {
                    crate::rootfs::undo_shared_mounts(bundle.rootfs(), bundle.spec());
                }
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn spawn_init(
        &self,
        dir: &Path,
        bundle: &Bundle,
        opts: CreateOptions,
        persisted: &mut Persisted,
        cgroup: &mut Option<Cgroup>,
    ) -> Result<()> {
        persisted.save(dir)?;
        save_spec(dir, bundle.spec())?;
        if let Some(h) = bundle.spec().hooks() {
            // For poststart and poststop, which run when the bundle may be gone.
            save_hooks(dir, h)?;
        }
        let fifo = dir.join(FIFO);
        mkfifo(&fifo, Mode::from_bits_truncate(0o600))
            .map_err(|e| Error::sys("creating exec fifo", Some(fifo.clone()), e))?;
        // Writable by whichever user the container process runs as.
        std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
            .map_err(|e| Error::io("chmod exec fifo", Some(fifo.clone()), e))?;

        let CreateOptions {
            stdin,
            stdout,
            stderr,
            preserve_fds,
            no_pivot,
            console_socket,
        } = opts;
        let init = InitConfig {
            spec: bundle.spec().clone(),
            rootfs: bundle.rootfs().to_path_buf(),
            fifo: fifo.clone(),
            no_pivot,
            preserve_fds,
            exec_pid: None,
            rootless_euid: !nix::unistd::geteuid().is_root(),
        };
        // Measured before anything is spawned: the whole configuration travels as one message.
        let init = encode(&init, "the container configuration (config.json)")?;
        let (mut child, ours) = self.spawn_helper([stdin, stdout, stderr], preserve_fds)?;
        let proto = |e: std::io::Error| channel_error("talking to the container init", e);
        let outcome = (|| -> Result<()> {
            // In its cgroup before it does anything (it waits for the configuration).
            if let Some(cg) = cgroup.as_mut() {
                let linux = bundle.spec().linux().as_ref();
                let made = cg.create(&self.cgroup_root, linux);
                // Recorded even after a failure, so that delete removes what was made.
                save_cgroup(dir, cg)?;
                match made {
                    Err(e) if self.rootless && crate::cgroup::permission_denied(&e) => {
                        // runc --rootless: "ignore cgroup permission errors", but never
                        // limits the configuration asks for.
                        let _ = cg.remove(Duration::ZERO);
                        crate::cgroup::refuse_limits(linux, &e)?;
                        remove_cgroup_record(dir)?;
                        *cgroup = None;
                    }
                    made => made?,
                }
            }
            if let Some(cg) = cgroup.as_ref() {
                cg.add(child.id() as i32)?;
            }
            send_config(&ours, &init, "talking to the container init")?;
            loop {
                match recv::<Msg>(&ours).map_err(proto)? {
                    Some(Msg::NeedMaps) => {
                        let linux = bundle.spec().linux().as_ref();
                        crate::rootless::write_id_maps(
                            child.id() as i32,
                            linux
                                .and_then(|l| l.uid_mappings().as_deref())
                                .unwrap_or(&[]),
                            linux
                                .and_then(|l| l.gid_mappings().as_deref())
                                .unwrap_or(&[]),
                        )?;
                        send(&ours, &Msg::MapsDone).map_err(proto)?;
                    }
                    // The stage that forked it exits right away; it is reaped below.
                    Some(Msg::Pid(pid)) => persisted.pid = pid,
                    Some(Msg::CreateHooks) => {
                        // runtime-spec (runtime.md, State): "created: the runtime has
                        // finished the create operation (after step 2 in the lifecycle)";
                        // these hooks are steps 3 to 5, so they see `created`, as under crun.
                        let state = hook_state(persisted, ContainerState::Created);
                        let spec = bundle.spec();
                        hooks::run(Point::Prestart, &hooks::of(spec, Point::Prestart), &state)?;
                        let create = hooks::of(spec, Point::CreateRuntime);
                        hooks::run(Point::CreateRuntime, &create, &state)?;
                        send(&ours, &Msg::HookState(state)).map_err(proto)?;
                    }
                    Some(Msg::Pty(name)) => {
                        let (_, master) = crate::terminal::recv_fd(&ours, 1)?;
                        if let Some(path) = &console_socket {
                            crate::terminal::send_to_console_socket(path, &name, &master)?;
                        }
                    }
                    Some(Msg::Ready) if persisted.pid > 0 => return Ok(()),
                    Some(Msg::Failed(message)) => return Err(Error::InitFailed { message }),
                    Some(Msg::MapsDone) | Some(Msg::Ready) | Some(Msg::HookState(_)) | None => {
                        return Err(Error::InitFailed {
                            message: "the init process exited without reporting".into(),
                        });
                    }
                }
            }
        })();
        let _ = child.kill();
        let _ = child.wait();
        outcome?;
        persisted.start_time =
            proc_stat(persisted.pid)
                .map(|(_, t)| t)
                .ok_or_else(|| Error::InitFailed {
                    message: "the container process vanished".into(),
                })?;
        persisted.save_process(dir)
    }

    /// Spawns the init helper with the given stdio (`None`: the caller's), passing it
    /// descriptors `3 .. 3 + preserve_fds` and the sync socket; returns it and our end.
    fn spawn_helper(
        &self,
        stdio: [Option<OwnedFd>; 3],
        preserve_fds: u32,
    ) -> Result<(std::process::Child, UnixStream)> {
        let helper = self.sealed_helper()?;
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| Error::io("creating sync socket", None, e))?;
        let target = 3 + preserve_fds as i32;
        // Above every number the child's descriptor shuffling writes to (stdio, preserved
        // descriptors, the sync socket), so the path stays valid until exec.
        let helper = sys::dup_above(helper, target + 1)
            .map_err(sys_err("duplicating the init helper descriptor"))?;
        let mut cmd = Command::new(format!("/proc/self/fd/{}", helper.as_raw_fd()));
        cmd.arg0("oci-runtime")
            .arg("init")
            .env_clear()
            .env(INIT_ENV, target.to_string());
        let [stdin, stdout, stderr] = stdio;
        if let Some(fd) = stdin {
            cmd.stdin(Stdio::from(fd));
        }
        if let Some(fd) = stdout {
            cmd.stdout(Stdio::from(fd));
        }
        if let Some(fd) = stderr {
            cmd.stderr(Stdio::from(fd));
        }
        sys::pass_fd(&mut cmd, theirs.as_fd().as_raw_fd(), target);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io("spawning the container init", Some(self.helper.clone()), e))?;
        drop(theirs);
        if let Err(reason) = expect_hello(&ours, &mut child) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::InitNotWired {
                helper: self.helper_display(),
                reason,
            });
        }
        Ok((child, ours))
    }

    /// The process a container was created with (`process` of its configuration): a
    /// starting point for [`exec`](Self::exec).
    pub fn process_of(&self, id: &str) -> Result<Process> {
        let dir = self.dir(id)?;
        Persisted::load(&dir, id)?;
        load_spec(&dir)?
            .process()
            .clone()
            .ok_or_else(|| Error::config("process", "is required to create a container"))
    }

    /// Runs `process` in a created or running container, as `runc exec` does: it joins the
    /// container's namespaces and cgroup, and gets its own user, capabilities, rlimits,
    /// `noNewPrivileges`, environment and terminal from `process` (see
    /// [`process_of`](Self::process_of) for the container's own), and the container's
    /// seccomp filter. Returns its pid; it is a child of the caller, so
    /// [`wait_process`](Self::wait_process) can wait for it. `opts` gives its stdio, preserved
    /// descriptors and console socket.
    pub fn exec(&self, id: &str, process: &Process, opts: CreateOptions) -> Result<i32> {
        self.check_wired()?;
        let (dir, p) = self.live(id, "exec")?;
        let mut spec = load_spec(&dir)?;
        spec.set_process(Some(process.clone()));
        crate::config::validate(&spec)?;
        crate::security::check_lsm(&spec)?;
        for w in crate::security::ambient_warnings(process) {
            eprintln!("oci-runtime: warning: {w}");
        }
        let CreateOptions {
            stdin,
            stdout,
            stderr,
            preserve_fds,
            console_socket,
            ..
        } = opts;
        if process.terminal() == Some(true) && console_socket.is_none() {
            return Err(Error::config(
                "process.terminal",
                "a terminal needs a console socket (CreateOptions::console_socket)",
            ));
        }
        let init = InitConfig {
            spec,
            rootfs: p.rootfs.clone(),
            fifo: PathBuf::new(),
            no_pivot: false,
            preserve_fds,
            exec_pid: Some(p.pid),
            rootless_euid: !nix::unistd::geteuid().is_root(),
        };
        let init = encode(&init, "the process and the container configuration")?;
        let (mut child, ours) = self.spawn_helper([stdin, stdout, stderr], preserve_fds)?;
        let proto = |e: std::io::Error| channel_error("talking to the exec helper", e);
        let mut pid = 0;
        let outcome = (|| -> Result<()> {
            if let Some(cg) = load_cgroup(&dir)? {
                cg.add(child.id() as i32)?;
            }
            send_config(&ours, &init, "talking to the exec helper")?;
            loop {
                match recv::<Msg>(&ours).map_err(proto)? {
                    Some(Msg::Pid(p)) => pid = p,
                    Some(Msg::Pty(name)) => {
                        let (_, master) = crate::terminal::recv_fd(&ours, 1)?;
                        if let Some(path) = &console_socket {
                            crate::terminal::send_to_console_socket(path, &name, &master)?;
                        }
                    }
                    Some(Msg::Ready) if pid > 0 => return Ok(()),
                    Some(Msg::Failed(message)) => return Err(Error::InitFailed { message }),
                    _ => {
                        return Err(Error::InitFailed {
                            message: "the exec helper exited without reporting".into(),
                        });
                    }
                }
            }
        })();
        let _ = child.kill();
        let _ = child.wait();
        if let Err(e) = outcome {
            if pid > 0 {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(pid), None);
            }
            return Err(e);
        }
        Ok(pid)
    }

    /// Waits for a process started by [`exec`](Self::exec) (a child of the caller).
    pub fn wait_process(&self, pid: i32) -> Result<ExitStatus> {
        loop {
            match waitpid(Pid::from_raw(pid), None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus::Exited(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ExitStatus::Signaled(sig)),
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("waiting for the process", None, e)),
            }
        }
    }

    /// Lets a created container's process run its program.
    pub fn start(&self, id: &str) -> Result<()> {
        let dir = self.dir(id)?;
        let p = Persisted::load(&dir, id)?;
        let status = p.status(&dir);
        if status != ContainerState::Created {
            return Err(Error::InvalidState {
                id: id.into(),
                operation: "start",
                status,
            });
        }
        let fifo_path = dir.join(FIFO);
        let fifo = open(
            fifo_path.as_path(),
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("opening exec fifo", Some(fifo_path.clone()), e))?;
        loop {
            let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
            let n = match poll(&mut fds, PollTimeout::from(100u8)) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("waiting on exec fifo", None, e)),
            };
            if n > 0 {
                let mut b = [0u8; 1];
                match nix::unistd::read(&fifo, &mut b) {
                    Ok(1) => break,
                    Ok(_) => {
                        return Err(Error::InvalidState {
                            id: id.into(),
                            operation: "start",
                            status: ContainerState::Running,
                        });
                    }
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                    Err(e) => return Err(Error::sys("reading exec fifo", None, e)),
                }
            }
            let status = p.status(&dir);
            if status != ContainerState::Created {
                return Err(Error::InvalidState {
                    id: id.into(),
                    operation: "start",
                    status,
                });
            }
        }
        let _ = std::fs::remove_file(&fifo_path);
        // runtime-spec (runtime.md, Lifecycle): "9. The poststart hooks MUST be invoked by the
        // runtime" after "8. The runtime MUST run the user-specified program". The init
        // writes the byte just before execve and keeps its end of the fifo open, close-on-exec,
        // until then: the end of the stream is the program running (or the init gone).
        // Without this wait, poststart hooks raced the execve.
        wait_for_hangup(&fifo);
        if let Some(h) = load_hooks(&dir)? {
            let state = hook_state(&p, ContainerState::Running);
            hooks::run_warn(
                Point::Poststart,
                &hooks::for_point(&h, Point::Poststart),
                &state,
            );
        }
        Ok(())
    }

    /// The container's state.
    pub fn state(&self, id: &str) -> Result<Container> {
        let dir = self.dir(id)?;
        let p = Persisted::load(&dir, id)?;
        let status = p.status(&dir);
        let mut state = State::default();
        state.set_version(p.oci_version.clone());
        state.set_id(p.id.clone());
        state.set_status(status);
        state.set_pid(match status {
            ContainerState::Created | ContainerState::Running => Some(p.pid),
            _ => None,
        });
        state.set_bundle(p.bundle.clone());
        state.set_annotations((!p.annotations.is_empty()).then(|| p.annotations.clone()));
        // Paused is running with a frozen cgroup, as runc derives it.
        let paused = status == ContainerState::Running
            && load_cgroup(&dir)?.is_some_and(|cg| cg.is_frozen());
        Ok(Container {
            state,
            rootfs: p.rootfs,
            created: p.created,
            paused,
        })
    }

    /// Every container under the state root, sorted by id.
    pub fn list(&self) -> Result<Vec<Container>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing containers", Some(self.root.clone()), e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids.iter().filter_map(|id| self.state(id).ok()).collect())
    }

    /// The state directory and saved state of container `id`, which must be created or
    /// running for `operation`.
    fn live(&self, id: &str, operation: &'static str) -> Result<(PathBuf, Persisted)> {
        let dir = self.dir(id)?;
        let p = Persisted::load(&dir, id)?;
        let status = p.status(&dir);
        if !matches!(status, ContainerState::Created | ContainerState::Running) {
            return Err(Error::InvalidState {
                id: id.into(),
                operation,
                status,
            });
        }
        Ok((dir, p))
    }

    /// Sends a signal to the container process (created or running).
    pub fn kill(&self, id: &str, signal: Signal) -> Result<()> {
        let (_, p) = self.live(id, "kill")?;
        kill(Pid::from_raw(p.pid), signal).map_err(sys_err("kill"))
    }

    /// Sends a signal to every process of the container (`kill --all`): those in its cgroup,
    /// or only its process when it has no cgroup.
    pub fn kill_all(&self, id: &str, signal: Signal) -> Result<()> {
        let (dir, p) = self.live(id, "kill")?;
        match load_cgroup(&dir)? {
            Some(cg) => {
                for pid in cg.pids() {
                    let _ = kill(Pid::from_raw(pid), signal);
                }
                Ok(())
            }
            None => kill(Pid::from_raw(p.pid), signal).map_err(sys_err("kill")),
        }
    }

    /// Waits for the container process to end; only the process that created the container
    /// (its parent) can do this, and not if it set `SIGCHLD` to `SIG_IGN`.
    pub fn wait(&self, id: &str) -> Result<ExitStatus> {
        let dir = self.dir(id)?;
        let p = Persisted::load(&dir, id)?;
        loop {
            match waitpid(Pid::from_raw(p.pid), None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus::Exited(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ExitStatus::Signaled(sig)),
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("waiting for the container", None, e)),
            }
        }
    }

    /// Deletes a stopped container's state. With `force`, a created or running container is
    /// killed (`SIGKILL`) first; without it, that is an [`Error::InvalidState`].
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let dir = self.dir(id)?;
        let p = Persisted::load(&dir, id)?;
        let status = p.status(&dir);
        if status != ContainerState::Stopped {
            if !force {
                return Err(Error::InvalidState {
                    id: id.into(),
                    operation: "delete",
                    status,
                });
            }
            if p.pid > 0 {
                let pid = Pid::from_raw(p.pid);
                let _ = kill(pid, Signal::SIGKILL);
                // A frozen process only dies once thawed.
                if let Some(cg) = load_cgroup(&dir)?.filter(Cgroup::is_frozen) {
                    kill_all(&cg);
                    let _ = cg.freeze(false);
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                while p.status(&dir) != ContainerState::Stopped && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        // Reap it if it is our child (checked by start time, so never someone else's).
        if p.pid > 0 && proc_stat(p.pid).is_some_and(|(_, t)| t == p.start_time) {
            let _ = waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG));
        }
        if let Some(cg) = load_cgroup(&dir)? {
            // Whatever is left in it (processes of a container without a pid namespace).
            kill_all(&cg);
            cg.remove(Duration::from_secs(5))?;
        }
        if let Ok(spec) = load_spec(&dir)
            && !crate::rootfs::has_mount_namespace(&spec)
        {
            crate::rootfs::undo_shared_mounts(&p.rootfs, &spec);
        }
        let poststop = load_hooks(&dir)?
            .map(|h| hooks::for_point(&h, Point::Poststop))
            .unwrap_or_default();
        if !poststop.is_empty() {
            let state = hook_state(&p, ContainerState::Stopped);
            hooks::run_warn(Point::Poststop, &poststop, &state);
        }
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io("removing state", Some(dir), e))
    }

    /// The counters of the container's cgroup (memory use, OOM kills, CPU time and
    /// throttling, processes); `None` where the host does not provide one.
    pub fn stats(&self, id: &str) -> Result<Stats> {
        let dir = self.dir(id)?;
        Persisted::load(&dir, id)?;
        Ok(load_cgroup(&dir)?.map(|cg| cg.stats()).unwrap_or_default())
    }

    /// The cgroup of a created or running container, for `operation`.
    fn live_cgroup(&self, id: &str, operation: &'static str) -> Result<Cgroup> {
        let (dir, _) = self.live(id, operation)?;
        load_cgroup(&dir)?.ok_or_else(|| Error::Unsupported {
            feature: format!("{operation} of a container without a cgroup"),
        })
    }

    /// Suspends every process of a created or running container (the cgroup freezer: v1
    /// `freezer.state`, v2 `cgroup.freeze`), as `runc pause`; [`state`](Self::state) then
    /// says [`Container::is_paused`].
    pub fn pause(&self, id: &str) -> Result<()> {
        self.live_cgroup(id, "pause")?.freeze(true)
    }

    /// Lets a paused container run again, as `runc resume`; a container that is not paused
    /// is an [`Error::InvalidState`].
    pub fn resume(&self, id: &str) -> Result<()> {
        let cg = self.live_cgroup(id, "resume")?;
        if !cg.is_frozen() {
            return Err(Error::InvalidState {
                id: id.into(),
                operation: "resume (it is not paused)",
                status: self.state(id)?.status(),
            });
        }
        cg.freeze(false)
    }

    /// Changes the cgroup limits of a created or running container to those `resources`
    /// sets (only those; device rules excluded), as `runc update`. Every value is checked
    /// before anything is written; the saved configuration is not changed.
    pub fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        self.live_cgroup(id, "update")?.update(resources)
    }

    /// The pids (as the host sees them) of every process in the container's cgroup, sorted,
    /// as `runc ps` lists them; just the container process when it has no cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let (dir, p) = self.live(id, "ps")?;
        let mut pids = match load_cgroup(&dir)? {
            Some(cg) => cg.pids(),
            None => vec![p.pid],
        };
        pids.sort_unstable();
        Ok(pids)
    }

    /// Streams the container's events, as `runc events`: [`Event::Stats`] every `interval`
    /// (the first at once) and [`Event::Oom`] as soon as the kernel reports an out-of-memory
    /// condition in its cgroup (v1: an eventfd registered on `memory.oom_control`; v2: the
    /// `oom` count of `memory.events`). Returns when `on_event` returns `false` or the
    /// container has stopped or is deleted.
    pub fn events(
        &self,
        id: &str,
        interval: Duration,
        mut on_event: impl FnMut(Event) -> bool,
    ) -> Result<()> {
        let cg = self.live_cgroup(id, "events")?;
        let mut oom = cg.watch_oom()?;
        let interval = interval.max(Duration::from_millis(1));
        let mut next = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next {
                if !on_event(Event::Stats(cg.stats())) {
                    return Ok(());
                }
                next = now + interval;
            }
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200));
            match oom.poll(wait) {
                None => return Ok(()),
                Some(n) => {
                    for _ in 0..n {
                        if !on_event(Event::Oom) {
                            return Ok(());
                        }
                    }
                }
            }
            match self.state(id) {
                Ok(c) if c.status() != ContainerState::Stopped => {}
                _ => return Ok(()),
            }
        }
    }

    /// `create`, `start`, wait for the process, `delete`; returns how the process ended.
    pub fn run(
        &self,
        id: &str,
        bundle: impl AsRef<Path>,
        opts: CreateOptions,
    ) -> Result<ExitStatus> {
        self.create(id, bundle, opts)?;
        let status = self.start(id).and_then(|()| self.wait(id));
        let deleted = self.delete(id, true);
        let status = status?;
        deleted?;
        Ok(status)
    }
}

/// How long a helper has to greet the runtime after it is spawned: a generous bound on
/// executing a binary, even on a loaded machine.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(20);

/// Reads the init's greeting ([`crate::init::hello`]) before anything is sent to the helper;
/// `Err` says why the helper is not an init of this protocol.
fn expect_hello(
    sock: &UnixStream,
    child: &mut std::process::Child,
) -> std::result::Result<(), String> {
    use std::io::Read;
    let mut got = [0u8; 16];
    let mut n = 0;
    let deadline = Instant::now() + HELLO_TIMEOUT;
    while n < got.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "it did not greet the runtime within {} s",
                HELLO_TIMEOUT.as_secs()
            ));
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| format!("setting a timeout on the sync socket: {e}"))?;
        match (&*sock).read(&mut got[n..]) {
            Ok(0) => {
                // Usually it has exited; one that only closed the socket is killed by the
                // caller, so do not wait for it long.
                let grace = Instant::now() + Duration::from_secs(1);
                let status = loop {
                    match child.try_wait() {
                        Ok(Some(status)) => break format!("it ended ({status})"),
                        Ok(None) if Instant::now() < grace => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Ok(None) => break "it closed the sync socket".to_string(),
                        Err(e) => break format!("it ended (status unknown: {e})"),
                    }
                };
                return Err(format!("{status} without greeting the runtime as an init"));
            }
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("reading its greeting: {e}")),
        }
    }
    let _ = sock.set_read_timeout(None);
    let want = hello();
    if got[..12] != want[..12] {
        return Err(format!(
            "its first bytes {:?} are not the init greeting",
            String::from_utf8_lossy(&got)
        ));
    }
    let version = u32::from_le_bytes([got[12], got[13], got[14], got[15]]);
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "it speaks init protocol {version}, this library {PROTOCOL_VERSION} (another \
             version of ocikit-runtime)"
        ));
    }
    Ok(())
}

/// Sends the encoded configuration; if the init hung up first, its own reason (a `Failed`
/// message it left on the socket) is the error rather than a broken pipe.
fn send_config(sock: &UnixStream, body: &[u8], context: &'static str) -> Result<()> {
    debug_assert!(body.len() <= MAX_MESSAGE);
    let Err(e) = send_body(sock, body) else {
        return Ok(());
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
    let reason = recv::<Msg>(sock);
    let _ = sock.set_read_timeout(None);
    match reason {
        Ok(Some(Msg::Failed(message))) => Err(Error::InitFailed { message }),
        _ => Err(channel_error(context, e)),
    }
}

/// The runtime-spec State JSON given to hooks.
fn hook_state(p: &Persisted, status: ContainerState) -> String {
    let mut state = State::default();
    state.set_version(p.oci_version.clone());
    state.set_id(p.id.clone());
    state.set_status(status);
    state.set_pid((p.pid > 0 && status != ContainerState::Stopped).then_some(p.pid));
    state.set_bundle(p.bundle.clone());
    state.set_annotations((!p.annotations.is_empty()).then(|| p.annotations.clone()));
    serde_json::to_string(&state).expect("State serializes")
}

/// Waits until no process holds the (non-blocking) fifo open for writing.
fn wait_for_hangup(fifo: &OwnedFd) {
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
        let mut b = [0u8; 16];
        match nix::unistd::read(fifo, &mut b) {
            Ok(0) => return,
            Ok(_) | Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// Sends `SIGKILL` to every process in the cgroup.
fn kill_all(cg: &Cgroup) {
    for pid in cg.pids() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Forgets a cgroup that was skipped (rootless): `delete` has nothing to remove.
fn remove_cgroup_record(dir: &Path) -> Result<()> {
    let path = dir.join(crate::state::CGROUP_FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("removing the cgroup record", Some(path), e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_copies_are_read_only() {
        let rt = Runtime::new("/nonexistent").with_helper("/bin/busybox");
        let copy = rt.memfd_copy().unwrap();
        let seals = fcntl(&copy, FcntlArg::F_GET_SEALS).unwrap();
        assert_ne!(seals & libc::F_SEAL_WRITE, 0);
        let len = std::fs::metadata("/bin/busybox").unwrap().len();
        assert_eq!(std::fs::File::from(copy).metadata().unwrap().len(), len);
        // The preferred form: a read-only mount that refuses writers. (A private file: one
        // that something executes would refuse writers with ETXTBSY anyway.)
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"#!/bin/true\n").unwrap();
        if let Ok(fd) = sys::readonly_clone(&file) {
            let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let err = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EROFS));
        }
    }

    #[test]
    fn a_helper_must_greet_first() {
        use std::io::Write;
        let mut child = Command::new("/bin/true").spawn().unwrap();
        let greeted = |bytes: &[u8], child: &mut std::process::Child| {
            let (ours, theirs) = UnixStream::pair().unwrap();
            (&theirs).write_all(bytes).unwrap();
            drop(theirs);
            expect_hello(&ours, child)
        };
        assert_eq!(greeted(&hello(), &mut child), Ok(()));
        let e = greeted(b"HTTP/1.1 200 OK\r\n\r\n", &mut child).unwrap_err();
        assert!(e.contains("not the init greeting"), "{e}");
        let mut other = hello();
        other[12] = 99;
        let e = greeted(&other, &mut child).unwrap_err();
        assert!(e.contains("init protocol 99"), "{e}");
        let e = greeted(b"ocikit", &mut child).unwrap_err();
        assert!(
            e.contains("it ended (exit status: 0) without greeting"),
            "{e}"
        );
        // One that closed the socket but lives on is not waited for.
        let mut sleeper = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let e = greeted(b"", &mut sleeper).unwrap_err();
        assert!(e.contains("it closed the sync socket"), "{e}");
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }

    #[test]
    fn oversized_messages_are_refused_before_sending() {
        let big = "x".repeat(MAX_MESSAGE + 1);
        match encode(&big, "the test message") {
            Err(Error::TooLarge {
                what,
                size,
                limit,
                limit_of,
            }) => {
                assert_eq!(what, "the test message");
                assert!(limit_of.contains("MAX_MESSAGE"), "{limit_of}");
                assert_eq!(size, MAX_MESSAGE as u64 + 3);
                assert_eq!(limit, MAX_MESSAGE as u64);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // A length prefix over the limit is refused on receipt, unread.
        let (a, b) = UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut &b, &(MAX_MESSAGE as u32 + 1).to_le_bytes()).unwrap();
        let e = recv::<Msg>(&a).unwrap_err();
        match channel_error("test", e) {
            Error::TooLarge { size, limit, .. } => {
                assert_eq!(size, MAX_MESSAGE as u64 + 1);
                assert_eq!(limit, MAX_MESSAGE as u64);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn runtime_is_shareable_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<Runtime>();
        check::<Container>();
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGHUP").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        for bad in ["", "NOPE", "0", "999", "-1"] {
            assert!(
                matches!(parse_signal(bad), Err(Error::InvalidSignal { .. })),
                "{bad}"
            );
        }
    }
}
