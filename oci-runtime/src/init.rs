//! The container init process: a fresh, single-threaded execution of a helper binary.
//!
//! The caller (possibly a multi-threaded program) spawns the helper with `std::process::Command`
//! through a read-only detached bind mount of the binary (or a sealed memfd copy); the only thing that happens between its fork and exec
//! is one `dup2` of the sync socket. The helper, seeing [`INIT_ENV`], runs [`main`]:
//!
//! 1. stage 1 (a child of the caller): joins namespaces by path, creates the user namespace and
//!    waits for the caller to write the id mappings, unshares the other namespaces, writes time
//!    offsets, then `clone(CLONE_PARENT)`s stage 2, reports its pid and exits.
//! 2. stage 2 (pid 1 of the new pid namespace, a child of the caller): hostname, root
//!    filesystem, user, umask, cwd; marks every descriptor but stdio and the preserved ones
//!    close-on-exec; reports "ready"; blocks opening the `exec.fifo` until `start` reads it;
//!    then `execve`s the user process.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Uid, chdir, execve, getcwd, setgroups, sethostname, setresgid, setresuid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hooks::{self, Point};
use crate::seccomp;
use crate::security::{self, CapSets};
use crate::{rootfs, sys, terminal};

/// The environment variable naming the sync socket's descriptor in the helper process.
pub(crate) const INIT_ENV: &str = "_OCIKIT_INIT_FD";

/// What the caller sends the init process.
#[derive(Serialize, Deserialize)]
pub(crate) struct InitConfig {
    pub(crate) spec: Spec,
    pub(crate) rootfs: PathBuf,
    pub(crate) fifo: PathBuf,
    pub(crate) no_pivot: bool,
    pub(crate) preserve_fds: u32,
    /// `exec`: the pid of a running container's process whose namespaces to join; `spec`
    /// then holds the container's configuration with the process to run.
    pub(crate) exec_pid: Option<i32>,
    /// The caller is not root (runc's "rootless EUID"): supplementary groups are left as
    /// inherited unless the process asks for some.
    #[serde(default)]
    pub(crate) rootless_euid: bool,
}

/// Messages on the sync socket.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Msg {
    /// Stage 1 created a user namespace: write its id mappings.
    NeedMaps,
    /// The mappings are written.
    MapsDone,
    /// Stage 2's pid, as the caller sees it.
    Pid(i32),
    /// Stage 2 is set up and waits for `start`.
    Ready,
    /// Stage 2 is about to change root: run the prestart and createRuntime hooks.
    CreateHooks,
    /// They ran: the state JSON for the hooks run in the container.
    HookState(String),
    /// The container's pty: its slave's path; the master follows (`SCM_RIGHTS`, one byte).
    Pty(String),
    /// Setting up failed.
    Failed(String),
}

/// The largest message either end of the runtime's channel to a container's init process
/// (its sync socket) sends or accepts, in bytes (64 MiB); the configuration is one message.
///
/// runc sets no limit of its own (a 100 MB annotation goes through it); we bound what one
/// process reads from another so that neither end allocates without limit, and check it
/// on both sides, so an oversized configuration is an [`Error::TooLarge`] before anything
/// is spawned rather than a broken pipe.
pub const MAX_MESSAGE: usize = 64 << 20;

/// The limit's name in [`Error::TooLarge`].
const CHANNEL: &str = "the runtime's channel to the container init (ocikit_runtime::MAX_MESSAGE)";

/// What the init process writes first on the sync socket, before reading anything: a magic
/// string and [`PROTOCOL_VERSION`] (little-endian). The caller trusts nothing from a helper
/// that does not greet it so.
pub(crate) const HELLO_MAGIC: &[u8; 12] = b"ocikit-init\0";

/// The version of the messages on the sync socket; a helper built from another version of
/// this crate may speak another.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// The greeting: [`HELLO_MAGIC`] then [`PROTOCOL_VERSION`].
pub(crate) fn hello() -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..12].copy_from_slice(HELLO_MAGIC);
    h[12..].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    h
}

/// Set by [`main_if_requested`]: this program calls `init_if_requested`, so re-executing it
/// as a container's init runs the init, not the program's own `main`.
static WIRED: AtomicBool = AtomicBool::new(false);

/// Whether this process called `init_if_requested`.
pub(crate) fn wired() -> bool {
    WIRED.load(Ordering::SeqCst)
}

/// Serializes `msg` as one sync-socket message body, refusing one over [`MAX_MESSAGE`]
/// with an [`Error::TooLarge`] that names `what`.
pub(crate) fn encode<T: Serialize>(msg: &T, what: &str) -> Result<Vec<u8>> {
    let body = serde_json::to_vec(msg)
        .map_err(|e| Error::io("encoding a message for the container init", None, e.into()))?;
    if body.len() > MAX_MESSAGE {
        return Err(Error::TooLarge {
            what: what.into(),
            size: body.len() as u64,
            limit: MAX_MESSAGE as u64,
            limit_of: CHANNEL,
        });
    }
    Ok(body)
}

/// Writes one message body (from [`encode`]) with its length prefix.
pub(crate) fn send_body(mut w: &UnixStream, body: &[u8]) -> std::io::Result<()> {
    let mut buf = (body.len() as u32).to_le_bytes().to_vec();
    buf.extend_from_slice(body);
    w.write_all(&buf)
}

/// Writes one length-prefixed JSON message; one over [`MAX_MESSAGE`] is an
/// [`Error::TooLarge`] (carried in the `io::Error`) and nothing is written.
pub(crate) fn send<T: Serialize>(w: &UnixStream, msg: &T) -> std::io::Result<()> {
    let body = encode(msg, "a message on the sync socket")?;
    send_body(w, &body)
}

/// Reads one message; `Ok(None)` on a clean end of stream. A length over [`MAX_MESSAGE`]
/// is an [`Error::TooLarge`] (carried in the `io::Error`), read no further.
pub(crate) fn recv<T: for<'a> Deserialize<'a>>(mut r: &UnixStream) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(Error::TooLarge {
            what: "a message received on the sync socket".into(),
            size: len as u64,
            limit: MAX_MESSAGE as u64,
            limit_of: CHANNEL,
        }
        .into());
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some(serde_json::from_slice(&body)?))
}

/// An error of the sync socket as a typed [`Error`]: one that [`send`] or [`recv`] carried
/// (such as [`Error::TooLarge`]) comes back as itself, any other is an I/O error in
/// `context`.
pub(crate) fn channel_error(context: &'static str, e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return Error::from(e);
    }
    Error::io(context, None, e)
}

/// If this process was spawned as a container init, runs it and never returns.
pub(crate) fn main_if_requested() {
    WIRED.store(true, Ordering::SeqCst);
    if let Some(pid) = std::env::var_os(crate::rootless::MAPPER_ENV) {
        crate::rootless::mapper_main(pid);
    }
    let Some(fd) = std::env::var_os(INIT_ENV) else {
        return;
    };
    // Nothing in the container may read this process's memory or reach its executable.
    let _ = nix::sys::prctl::set_dumpable(false);
    let fd: RawFd = match fd.to_str().and_then(|s| s.parse().ok()) {
        Some(fd) => fd,
        None => std::process::exit(120),
    };
    let sock = match sys::inherited_fd(fd) {
        Ok(fd) => UnixStream::from(fd),
        Err(_) => std::process::exit(121),
    };
    // First, so the caller knows it talks to an init of its own protocol.
    if (&sock).write_all(&hello()).is_err() {
        std::process::exit(121);
    }
    let cfg: InitConfig = match recv(&sock) {
        Ok(Some(c)) => c,
        Ok(None) => std::process::exit(122),
        Err(e) => {
            let e = channel_error("reading the configuration from the runtime", e);
            let _ = send(&sock, &Msg::Failed(crate::error::with_causes(&e)));
            std::process::exit(122)
        }
    };
    let code = match stage1(&sock, &cfg) {
        Ok(code) => code,
        Err(e) => {
            let _ = send(&sock, &Msg::Failed(crate::error::with_causes(&e)));
            1
        }
    };
    std::process::exit(code)
}

fn ns_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

fn proto(e: std::io::Error) -> Error {
    channel_error("talking to the runtime", e)
}

/// Returns the exit code for stage 1; stage 2 never returns from here.
fn stage1(sock: &UnixStream, cfg: &InitConfig) -> Result<i32> {
    if let Some(pid) = cfg.exec_pid {
        let in_userns = join_process(pid)?;
        return fork_stage2(sock, cfg, None, in_userns);
    }
    // Opened first, as the caller's user: the state directory is private to it, and the
    // container's root in a new user namespace could not reach the path.
    let fifo = open(
        cfg.fifo.as_path(),
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("opening exec fifo", Some(cfg.fifo.clone()), e))?;
    let namespaces = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    // Open every namespace to join first: joining one (mount) can hide the others' paths.
    let mut joins: Vec<(CloneFlags, OwnedFd)> = Vec::new();
    for ns in &namespaces {
        if let Some(p) = ns.path() {
            let fd = open(
                p.as_path(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::sys("opening namespace", Some(p.clone()), e))?;
            joins.push((ns_flag(ns.typ()), fd));
        }
    }
    joins.sort_by_key(|(f, _)| *f != CloneFlags::CLONE_NEWUSER);
    for (flag, fd) in &joins {
        setns(fd.as_fd(), *flag).map_err(|e| Error::sys("joining namespace", None, e))?;
    }
    let new: Vec<CloneFlags> = namespaces
        .iter()
        .filter(|n| n.path().is_none())
        .map(|n| ns_flag(n.typ()))
        .collect();
    let in_userns = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User);
    if new.contains(&CloneFlags::CLONE_NEWUSER) {
        // Unprivileged, the caller writes our mappings as itself (or through newuidmap,
        // which checks that it owns us): /proc/<pid> of a non-dumpable process belongs to
        // root. Dumpable only until they are written, as runc's init is.
        let rootless = crate::rootless::is_rootless();
        if rootless {
            nix::sys::prctl::set_dumpable(true)
                .map_err(|e| Error::sys("PR_SET_DUMPABLE", None, e))?;
        }
        unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(|e| Error::sys("creating user namespace", None, e))?;
        send(sock, &Msg::NeedMaps).map_err(proto)?;
        let answer = recv::<Msg>(sock).map_err(proto)?;
        if rootless {
            nix::sys::prctl::set_dumpable(false)
                .map_err(|e| Error::sys("PR_SET_DUMPABLE", None, e))?;
        }
        match answer {
            Some(Msg::MapsDone) => {}
            other => {
                return Err(Error::InitFailed {
                    message: format!("expected MapsDone, got {other:?}"),
                });
            }
        }
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(|e| Error::sys("becoming root in the user namespace", None, e))?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(|e| Error::sys("becoming root in the user namespace", None, e))?;
    }
    let flags = new
        .iter()
        .filter(|f| **f != CloneFlags::CLONE_NEWUSER)
        .fold(CloneFlags::empty(), |a, f| a | *f);
    unshare(flags).map_err(|e| Error::sys("creating namespaces", None, e))?;
    if let Some(offsets) = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone())
    {
        let mut text = String::new();
        for (clock, o) in offsets {
            text.push_str(&format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            ));
        }
        std::fs::write("/proc/self/timens_offsets", text)
            .map_err(|e| Error::io("writing time offsets", None, e))?;
    }
    if let Some(adj) = cfg.spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        // Through the host's /proc, before the container's root replaces it; inherited by
        // stage 2.
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Error::io("writing oom_score_adj", None, e))?;
    }
    fork_stage2(sock, cfg, Some(fifo), in_userns)
}

/// Joins every namespace of process `pid` that differs from ours (the user namespace first,
/// the mount namespace last); returns whether that included a user namespace.
fn join_process(pid: i32) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let kinds = [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("time", CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut joins = Vec::new();
    // A container without a mount namespace of its own runs chrooted in ours: its root is
    // reached through /proc/<pid>/root, opened before any namespace changes.
    let root = open(
        format!("/proc/{pid}/root").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("opening the container's root", None, e))?;
    let mut shares_mounts = false;
    for (name, flag) in kinds {
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let (Ok(a), Ok(b)) = (
            std::fs::metadata(&theirs),
            std::fs::metadata(format!("/proc/self/ns/{name}")),
        ) else {
            continue; // a kernel without this namespace kind
        };
        if a.ino() == b.ino() && a.dev() == b.dev() {
            shares_mounts |= name == "mnt";
            continue;
        }
        let fd = open(
            theirs.as_path(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("opening namespace", Some(theirs.clone()), e))?;
        joins.push((flag, fd));
    }
    let mut in_userns = false;
    for (flag, fd) in &joins {
        setns(fd.as_fd(), *flag).map_err(|e| Error::sys("joining namespace", None, e))?;
        in_userns |= *flag == CloneFlags::CLONE_NEWUSER;
    }
    if shares_mounts {
        nix::unistd::fchdir(&root)
            .map_err(|e| Error::sys("entering the container's root", None, e))?;
        nix::unistd::chroot(".").map_err(|e| Error::sys("chroot", None, e))?;
    }
    Ok(in_userns)
}

/// Forks stage 2 as a child of the caller and reports its pid.
fn fork_stage2(
    sock: &UnixStream,
    cfg: &InitConfig,
    fifo: Option<OwnedFd>,
    in_userns: bool,
) -> Result<i32> {
    // Stage 2 waits on this pipe until its pid is reported, so the caller always learns the
    // pid before "ready" (both stages write to the same socket).
    let (go_r, go_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("creating a pipe", None, e))?;
    match sys::fork_to_parent().map_err(|e| Error::sys("forking the container init", None, e))? {
        Some(pid) => {
            drop(go_r);
            send(sock, &Msg::Pid(pid.as_raw())).map_err(proto)?;
            nix::unistd::write(&go_w, b"1")
                .map_err(|e| Error::sys("releasing stage 2", None, e))?;
            Ok(0)
        }
        None => {
            drop(go_w);
            let mut b = [0u8; 1];
            if !matches!(nix::unistd::read(&go_r, &mut b), Ok(1)) {
                std::process::exit(1);
            }
            drop(go_r);
            let err = stage2(sock, cfg, fifo, in_userns);
            let _ = send(sock, &Msg::Failed(crate::error::with_causes(&err)));
            std::process::exit(1)
        }
    }
}

/// Finds the program to run like runc: a name without `/` is looked up in the container's
/// `PATH` (from `process.env`), relative to the new root.
fn lookup(program: &str, env: &[String]) -> Result<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return match nix::unistd::access(&p, nix::unistd::AccessFlags::X_OK) {
            Ok(()) => Ok(p),
            Err(e) => Err(Error::config(
                "process.args[0]",
                format!("{program}: {}", e.desc()),
            )),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok()
            && candidate.is_file()
        {
            return Ok(candidate);
        }
    }
    Err(Error::config(
        "process.args[0]",
        format!("executable {program:?} not found in $PATH"),
    ))
}

fn cstrings<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<std::ffi::CString>> {
    items
        .into_iter()
        .map(|b| {
            std::ffi::CString::new(b.to_vec())
                .map_err(|_| Error::config("process", "argument or variable contains a NUL byte"))
        })
        .collect()
}

/// Stage 2: only returns on failure.
fn stage2(sock: &UnixStream, cfg: &InitConfig, fifo: Option<OwnedFd>, in_userns: bool) -> Error {
    match stage2_inner(sock, cfg, fifo, in_userns) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

/// Hostname, hooks before the root changes, root filesystem: what `create` sets up and
/// `exec` finds done.
fn set_up_container(
    sock: &UnixStream,
    cfg: &InitConfig,
    in_userns: bool,
    caller_umask: Mode,
    hook_state: &std::cell::RefCell<String>,
) -> Result<()> {
    let spec = &cfg.spec;
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sethostname(h).map_err(|e| Error::sys("setting hostname", None, e))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        sys::set_domainname(d).map_err(|e| Error::sys("setting domainname", None, e))?;
    }
    // The caller runs prestart and createRuntime hooks, we run createContainer ones here
    // (in the container's namespaces, before the root changes) and startContainer ones last.
    let wants_hooks = [
        Point::Prestart,
        Point::CreateRuntime,
        Point::CreateContainer,
        Point::StartContainer,
    ]
    .into_iter()
    .any(|p| !hooks::of(spec, p).is_empty());
    let before_pivot = || -> Result<()> {
        if !wants_hooks {
            return Ok(());
        }
        send(sock, &Msg::CreateHooks).map_err(proto)?;
        match recv::<Msg>(sock).map_err(proto)? {
            Some(Msg::HookState(state)) => *hook_state.borrow_mut() = state,
            other => {
                return Err(Error::InitFailed {
                    message: format!("expected HookState, got {other:?}"),
                });
            }
        }
        // Hooks run with the runtime's umask, as runc's do (its init inherits the caller's
        // and only clears it around mknod), not the 0 of the root filesystem's setup.
        let setup_umask = umask(caller_umask);
        let ran = hooks::run(
            Point::CreateContainer,
            &hooks::of(spec, Point::CreateContainer),
            &hook_state.borrow(),
        );
        umask(setup_umask);
        ran
    };
    rootfs::setup(&rootfs::RootfsPlan {
        spec,
        rootfs: &cfg.rootfs,
        no_pivot: cfg.no_pivot,
        in_userns,
        before_pivot: &before_pivot,
    })?;
    Ok(())
}

fn stage2_inner(
    sock: &UnixStream,
    cfg: &InitConfig,
    fifo: Option<OwnedFd>,
    in_userns: bool,
) -> Result<Never> {
    let spec = &cfg.spec;
    let process = spec.process().as_ref().expect("validated");
    // 0 while the root filesystem is set up, so device nodes and directories get exactly
    // the modes asked for (runc clears it for its device nodes too); the caller's, which
    // this process inherited, is kept for the hooks.
    let caller_umask = umask(Mode::empty());
    let hook_state = std::cell::RefCell::new(String::new());
    if cfg.exec_pid.is_none() {
        set_up_container(sock, cfg, in_userns, caller_umask, &hook_state)?;
    }
    if process.terminal() == Some(true) {
        // From the container's own devpts instance, like runc; the caller forwards the
        // master to the console socket.
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        let (master, name, slave) = terminal::open_pty(size)?;
        send(sock, &Msg::Pty(name)).map_err(proto)?;
        terminal::send_fd(sock, b"P", &master)?;
        drop(master);
        terminal::make_controlling(slave)?;
    }

    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        // The warnings were printed by the caller, which compiled it too.
        Some(s) => Some(seccomp::compile(s)?.0),
        None => None,
    };
    let nnp = process.no_new_privileges() == Some(true);
    // Like runc: rlimits, then the bounding set (needs CAP_SETPCAP, so before the user
    // changes), the user with the permitted set kept, then the other sets.
    for r in security::rlimits(process.rlimits().as_deref().unwrap_or(&[]))? {
        sys::set_rlimit(r.resource, r.soft, r.hard)
            .map_err(|e| Error::sys("setting an rlimit", None, e))?;
    }
    if let Some(s) = process.scheduler() {
        sys::sched_setattr(&security::sched_attr(s))
            .map_err(|e| Error::sys("setting the scheduler", None, e))?;
    }
    if let Some(p) = process.io_priority() {
        let (class, level) = security::io_priority(p)?;
        sys::ioprio_set(class, level)
            .map_err(|e| Error::sys("setting the I/O priority", None, e))?;
    }
    // LSM labels take effect at execve; the caller checked that the host has the LSM.
    if let Some(profile) = process.apparmor_profile() {
        let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(attr, format!("exec {profile}"))
            .map_err(|e| Error::io("setting the AppArmor profile", Some(attr.into()), e))?;
    }
    if let Some(label) = process.selinux_label() {
        std::fs::write("/proc/self/attr/exec", label).map_err(|e| {
            Error::io(
                "setting the SELinux label",
                Some("/proc/self/attr/exec".into()),
                e,
            )
        })?;
    }
    // The working directory, and its check, before any seccomp filter: a profile may deny
    // getcwd (crun orders it so too). As root, like runc's first attempt.
    let cwd = process.cwd();
    chdir(cwd.as_path()).map_err(|e| Error::sys("changing to cwd", Some(cwd.clone()), e))?;
    // CVE-2024-21626: the working directory must be inside the container's root.
    match getcwd() {
        Ok(p) if p.is_absolute() => {}
        _ => {
            return Err(Error::config(
                "process.cwd",
                "does not resolve inside the container root",
            ));
        }
    }
    if let Some(p) = seccomp.as_ref().filter(|_| !nnp) {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: now, while the
        // capabilities are still there (so the rest of the setup runs under it, as with runc).
        sys::seccomp_filter(&p.filter, p.flags)
            .map_err(|e| Error::sys("installing the seccomp filter", None, e))?;
    }
    // No `process.capabilities` means no capabilities at all, as with runc.
    let caps = process
        .capabilities()
        .as_ref()
        .map(CapSets::from_spec)
        .unwrap_or_default();
    {
        nix::sys::prctl::set_keepcaps(true).map_err(|e| Error::sys("PR_SET_KEEPCAPS", None, e))?;
        for cap in (0..64).filter(|c| caps.bounding & (1 << c) == 0) {
            sys::drop_bounding(cap)
                .map_err(|e| Error::sys("dropping a bounding capability", None, e))?;
        }
    }

    let user = process.user();
    // runc: "if we didn't get HOME already, set it based on the user's HOME", the home of
    // the container's /etc/passwd entry of the uid, else "/". Read here, still root and
    // inside the container's root.
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", passwd_home(user.uid())));
    }
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // runc, rootless: "We don't need to set groups if we're in a rootless container" (it
    // keeps the inherited ones, the caller's, as the namespace maps them); only groups the
    // process asks for are set then.
    if !(cfg.rootless_euid && gids.is_empty())
        && let Err(e) = setgroups(&gids)
        // A joined user namespace may forbid setgroups; only fail if groups were asked for.
        && !gids.is_empty()
    {
        return Err(Error::sys("setgroups", None, e));
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).map_err(|e| Error::sys("setgid", None, e))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).map_err(|e| Error::sys("setuid", None, e))?;
    umask(Mode::from_bits_truncate(user.umask().unwrap_or(0o022)));
    {
        sys::capset(caps.effective, caps.permitted, caps.inheritable)
            .map_err(|e| Error::sys("setting capabilities", None, e))?;
        // The kernel raises an ambient capability only if it is both permitted and
        // inheritable (capabilities(7)); runc skips the others silently, so a configuration
        // listing ambient capabilities without inheritable ones (runc's own default spec)
        // runs with none, as under runc, rather than failing.
        let raisable = caps.ambient & caps.permitted & caps.inheritable;
        for cap in (0..64).filter(|c| raisable & (1 << c) != 0) {
            sys::raise_ambient(cap)
                .map_err(|e| Error::sys("raising an ambient capability", None, e))?;
        }
        nix::sys::prctl::set_keepcaps(false).map_err(|e| Error::sys("PR_SET_KEEPCAPS", None, e))?;
    }
    if nnp {
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| Error::sys("PR_SET_NO_NEW_PRIVS", None, e))?;
    }

    let args = process.args().clone().unwrap_or_default();
    let program = lookup(&args[0], &env)?;
    let argv = cstrings(args.iter().map(|a| a.as_bytes()))?;
    let envp = cstrings(env.iter().map(|e| e.as_bytes()))?;
    let path = cstrings([program.as_os_str().as_bytes()])?.remove(0);

    // Only stdio and the preserved descriptors may reach the container process.
    sys::cloexec_from(3 + cfg.preserve_fds as RawFd)
        .map_err(|e| Error::sys("closing descriptors", None, e))?;
    send(sock, &Msg::Ready).map_err(proto)?;

    // `create` waits for `start`; `exec` goes straight on. The fifo's write end stays open
    // (close-on-exec) until execve: `start` waits for it to close before poststart hooks.
    let mut _until_exec = None;
    if let Some(fifo) = fifo {
        let reopen = format!("/proc/self/fd/{}", fifo.as_raw_fd());
        let w = open(
            reopen.as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("opening exec fifo (is /proc mounted?)", None, e))?;
        // `start` has opened the fifo; it returns (and runs poststart hooks) once the byte is
        // written, so startContainer hooks run first.
        let start_hooks = hooks::of(spec, Point::StartContainer);
        if !start_hooks.is_empty() {
            let mut state: serde_json::Value =
                serde_json::from_str(&hook_state.borrow()).unwrap_or_default();
            state["status"] = "running".into();
            let state = state.to_string();
            if let Err(e) = hooks::run(Point::StartContainer, &start_hooks, &state) {
                let _ = writeln!(std::io::stderr(), "oci-runtime: {e}");
                std::process::exit(127)
            }
        }
        nix::unistd::write(&w, b"0").map_err(|e| Error::sys("writing exec fifo", None, e))?;
        _until_exec = Some(w);
    }
    if let Err(e) = sys::default_sigpipe() {
        let _ = writeln!(std::io::stderr(), "oci-runtime: restoring SIGPIPE: {e}");
        std::process::exit(127)
    }
    if let Some(p) = seccomp.as_ref().filter(|_| nnp) {
        // Last, so that only execve runs under the filter.
        if let Err(e) = sys::seccomp_filter(&p.filter, p.flags) {
            let _ = writeln!(std::io::stderr(), "oci-runtime: installing seccomp: {e}");
            std::process::exit(127)
        }
    }
    let e = execve(&path, &argv, &envp).unwrap_err();
    // Past "ready", nobody reads the socket any more: say it where the user sees it.
    let _ = writeln!(
        std::io::stderr(),
        "oci-runtime: exec {}: {e}",
        program.display()
    );
    std::process::exit(127)
}

/// The home directory of `uid` in the container's `/etc/passwd` (the sixth field of its
/// first entry), else `/`, as runc's `GetExecUserPath` defaults it. The file must be a
/// regular one (opened without blocking: a fifo in its place cannot stall the init) and is
/// read up to 1 MiB.
fn passwd_home(uid: u32) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let text = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open("/etc/passwd")
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))
        .and_then(|f| {
            let mut text = String::new();
            f.take(1 << 20).read_to_string(&mut text).ok()?;
            Some(text)
        })
        .unwrap_or_default();
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map(|f| f[5].to_owned())
        .unwrap_or_else(|| "/".to_owned())
}
