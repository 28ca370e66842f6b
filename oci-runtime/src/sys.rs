//! The crate's only `unsafe` code: the few system calls nix does not wrap safely.
//!
//! Everything else uses nix's safe wrappers. Each function here is small, and each `unsafe`
//! block says why it is sound.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::unistd::Pid;

/// Arranges for `fd` (open in this process, normally close-on-exec) to appear as `target` in the
/// child that `cmd` spawns, without close-on-exec. The pre-exec hook runs between fork and exec
/// and does only `dup2`/`fcntl`, which are async-signal-safe, so it is sound in a
/// multi-threaded parent; the descriptor reaches no other child.
pub(crate) fn pass_fd(cmd: &mut Command, fd: RawFd, target: RawFd) {
    let hook = move || {
        // SAFETY: dup2 and fcntl are async-signal-safe raw system calls on integers; they touch
        // no memory and take no locks, as required between fork and exec.
        let r = unsafe {
            if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            }
        };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: the hook above is async-signal-safe (see its comment).
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Takes ownership of a descriptor number inherited from the parent process.
///
/// Only called by the init process on the descriptor its parent passed with [`pass_fd`] and
/// named in the environment; nothing else in the init process owns it.
pub(crate) fn inherited_fd(fd: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: F_GETFD only queries the descriptor table entry.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the descriptor is open (checked above) and, by the protocol with the parent, owned
    // by nobody else in this freshly executed, single-threaded process.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `clone(CLONE_PARENT | SIGCHLD)`: a fork whose child becomes a child of our parent, so the
/// process that spawned the init process can wait for the container process.
///
/// Returns `None` in the child and the child's pid in the parent.
///
/// Must only be called from a single-threaded process (the init process is one).
pub(crate) fn fork_to_parent() -> Result<Option<Pid>, Errno> {
    // SAFETY: a raw clone without CLONE_VM and without a new stack behaves like fork(2): the
    // child gets a copy-on-write copy of the address space and continues on its own copy of the
    // stack. The caller is single-threaded, so no lock can be held by a vanished thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match r {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// Marks every descriptor from `first` up close-on-exec (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`), falling back to walking `/proc/self/fd`.
pub(crate) fn cloexec_from(first: RawFd) -> Result<(), Errno> {
    // SAFETY: close_range only changes descriptor flags; it touches no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|_| Errno::last())?;
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD only changes a descriptor flag; a stale number yields EBADF, ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// `setdomainname(2)`.
pub(crate) fn set_domainname(name: &str) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call; the kernel
    // only reads them.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(r).map(drop)
}

static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and takes plain integers.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Installs process-wide handlers that forward the usual termination and user signals to
/// `pid`, as `runc run` does for its container.
pub(crate) fn forward_signals(pid: i32) {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    FORWARD_TO.store(pid, std::sync::atomic::Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        // SAFETY: the handler only loads an atomic and calls kill, both async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}
