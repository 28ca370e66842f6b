//! The crate's only `unsafe` code: the few system calls nix does not wrap safely.
//!
//! Everything else uses nix's safe wrappers. Each function here is small, and each `unsafe`
//! block says why it is sound.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
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

/// The master of the terminal `oci-runtime run` relays, or -1: on `SIGWINCH` our terminal's
/// size is copied to it instead of forwarding the signal.
static WINCH_MASTER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn forward(sig: libc::c_int) {
    let master = WINCH_MASTER.load(std::sync::atomic::Ordering::Relaxed);
    if sig == libc::SIGWINCH && master >= 0 {
        copy_window_size(0, master);
        return;
    }
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and takes plain integers.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Copies the window size of terminal `from` to terminal `to` (`TIOCGWINSZ` then
/// `TIOCSWINSZ`); the kernel then sends `SIGWINCH` to the foreground process group of `to`.
/// Does nothing if `from` is not a terminal. Async-signal-safe (two ioctls).
pub(crate) fn copy_window_size(from: RawFd, to: RawFd) -> bool {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `ws` is a valid, writable winsize alive for the call; bad descriptors only
    // make the ioctl fail.
    let r = unsafe { libc::ioctl(from, libc::TIOCGWINSZ, &mut ws as *mut libc::winsize) };
    if r < 0 {
        return false;
    }
    // SAFETY: as above; the kernel only reads `ws`.
    let r = unsafe { libc::ioctl(to, libc::TIOCSWINSZ, &ws as *const libc::winsize) };
    r == 0
}

/// From now on, `SIGWINCH` copies our standard input's window size to the terminal `master`
/// (kept open for the rest of the process) rather than being forwarded; takes effect with
/// [`forward_signals`].
pub(crate) fn relay_window_size(master: OwnedFd) {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    use std::os::fd::IntoRawFd;
    let old = WINCH_MASTER.swap(master.into_raw_fd(), std::sync::atomic::Ordering::Relaxed);
    if old >= 0 {
        // SAFETY: `old` came from `into_raw_fd` above in an earlier call; nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(old) });
    }
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only loads atomics and makes ioctl/kill calls, all
    // async-signal-safe.
    let _ = unsafe { sigaction(Signal::SIGWINCH, &action) };
}

/// A new eventfd (close-on-exec), counter at 0.
pub(crate) fn eventfd() -> Result<OwnedFd, Errno> {
    // SAFETY: eventfd takes two integers and returns a new descriptor or -1.
    let r = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    new_fd(r as libc::c_long)
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

/// Restores the default action of `SIGPIPE`. Rust's runtime ignores it before `main` (so a
/// write to a closed pipe is `EPIPE`), and an ignored signal stays ignored across `execve`:
/// the container's process must start with the default, as under runc.
pub(crate) fn default_sigpipe() -> Result<(), Errno> {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installs no handler (SIG_DFL), in the single-threaded init process.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.map(drop)
}

/// A detached, read-only bind mount of the file at `path` (`open_tree(OPEN_TREE_CLONE)` then
/// `mount_setattr(MOUNT_ATTR_RDONLY)`), as an `O_PATH` descriptor that can be executed through
/// `/proc/self/fd/N`. Nothing can be written through it, nor through `/proc/<pid>/exe` of a
/// process executing it. Needs `CAP_SYS_ADMIN` and Linux 5.12.
pub(crate) fn readonly_clone(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    use nix::fcntl::{OFlag, open};
    let file = open(
        path,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let clone = clone_mount(&file, false)?;
    mount_readonly(&clone)?;
    Ok(clone)
}

/// A close-on-exec duplicate of `fd` numbered `min` or higher (`F_DUPFD_CLOEXEC`).
pub(crate) fn dup_above(fd: &OwnedFd, min: RawFd) -> Result<OwnedFd, Errno> {
    let r = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(min))?;
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// `prctl(PR_CAPBSET_DROP)`: removes capability `cap` from the bounding set. A number the
/// kernel does not know (`EINVAL`) counts as dropped.
pub(crate) fn drop_bounding(cap: u32) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only; it reads and writes no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    match Errno::result(r) {
        Ok(_) | Err(Errno::EINVAL) => Ok(()),
        Err(e) => Err(e),
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `capset(2)` with 64-bit masks (`_LINUX_CAPABILITY_VERSION_3`) for the calling thread.
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: `header` and `data` are properly laid out (`repr(C)`) version-3 structures, two
    // data elements as that version requires, alive for the call; the kernel only reads them.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    Errno::result(r).map(drop)
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)`.
pub(crate) fn raise_ambient(cap: u32) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            cap as libc::c_ulong,
            0,
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// `prlimit(2)` on the calling process.
pub(crate) fn set_rlimit(resource: u32, soft: u64, hard: u64) -> Result<(), Errno> {
    let new = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `new` is a valid rlimit64 alive for the call and only read; the old-value
    // pointer is null, so nothing is written.
    let r = unsafe { libc::prlimit64(0, resource, &new, std::ptr::null_mut()) };
    Errno::result(r).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, program)`: installs a classic BPF filter on the
/// calling thread (all threads with `SECCOMP_FILTER_FLAG_TSYNC`).
pub(crate) fn seccomp_filter(
    filter: &[libc::sock_filter],
    flags: libc::c_uint,
) -> Result<(), Errno> {
    let len = u16::try_from(filter.len()).map_err(|_| Errno::EINVAL)?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` valid instructions that outlive the call; the kernel
    // copies the program and never writes through the pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(r).map(drop)
}

/// `ioctl(fd, TIOCSCTTY, 0)`: makes the terminal `fd` the calling session leader's
/// controlling terminal.
pub(crate) fn set_controlling_tty(fd: &impl std::os::fd::AsFd) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an integer argument and touches no memory of ours.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(r).map(drop)
}

/// `ioctl(fd, TIOCSWINSZ)`: the terminal's size in rows and columns.
pub(crate) fn set_window_size(
    fd: &impl std::os::fd::AsFd,
    rows: u16,
    cols: u16,
) -> Result<(), Errno> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `ws` is a valid winsize alive for the call; the kernel only reads it.
    let r = unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    Errno::result(r).map(drop)
}

/// Takes ownership of a descriptor that `recvmsg` just received with `SCM_RIGHTS`.
pub(crate) fn received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed this descriptor in our table for this message only;
    // nothing else knows its number, so this is its one owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The kernel's `struct sched_attr` (its first version, 48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SchedAttr {
    pub(crate) size: u32,
    pub(crate) policy: u32,
    pub(crate) flags: u64,
    pub(crate) nice: i32,
    pub(crate) priority: u32,
    pub(crate) runtime: u64,
    pub(crate) deadline: u64,
    pub(crate) period: u64,
}

/// `sched_setattr(0, attr, 0)` on the calling thread.
pub(crate) fn sched_setattr(attr: &SchedAttr) -> Result<(), Errno> {
    let mut a = *attr;
    a.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `a` is a properly laid out sched_attr whose size field says its size; the
    // kernel only reads it during the call.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) };
    Errno::result(r).map(drop)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)` on the calling process.
pub(crate) fn ioprio_set(class: u32, level: u32) -> Result<(), Errno> {
    // SAFETY: ioprio_set takes integers only.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, (class << 13) | level) };
    Errno::result(r).map(drop)
}

/// Loads an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE` and attaches it to the cgroup
/// v2 directory `cgroup` (`BPF_F_ALLOW_MULTI`), as runc does for device rules.
pub(crate) fn attach_device_filter(
    cgroup: &std::path::Path,
    insns: &[crate::devices::BpfInsn],
) -> Result<(), Errno> {
    let dir = nix::fcntl::open(
        cgroup,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let license = c"Apache";
    // `union bpf_attr` for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license; the rest zero.
    let mut load = [0u64; 16];
    load[0] = 15 | ((insns.len() as u64) << 32); // BPF_PROG_TYPE_CGROUP_DEVICE
    load[1] = insns.as_ptr() as u64;
    load[2] = license.as_ptr() as u64;
    // SAFETY: `load` is a zeroed bpf_attr (128 bytes) naming `insns` and `license`, which
    // outlive the call; the kernel only reads them and returns a new descriptor or -1.
    let prog = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            5, // BPF_PROG_LOAD
            load.as_ptr(),
            std::mem::size_of_val(&load),
        )
    };
    if prog < 0 {
        return Err(Errno::last());
    }
    // SAFETY: BPF_PROG_LOAD returned a fresh descriptor that nothing else owns.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as RawFd) };
    // For BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags.
    let mut attach = [0u32; 8];
    attach[0] = dir.as_raw_fd() as u32;
    attach[1] = prog.as_raw_fd() as u32;
    attach[2] = 6; // BPF_CGROUP_DEVICE
    attach[3] = 2; // BPF_F_ALLOW_MULTI
    // SAFETY: `attach` is a zeroed bpf_attr prefix naming two open descriptors; the kernel
    // only reads it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            8, // BPF_PROG_ATTACH
            attach.as_ptr(),
            std::mem::size_of_val(&attach),
        )
    };
    Errno::result(r).map(drop)
}

// The new mount API's flags that libc does not define (linux/mount.h).
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSOPEN_CLOEXEC: libc::c_uint = 0x01;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x01;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

/// Takes ownership of a descriptor a system call just returned, or its error.
fn new_fd(r: libc::c_long) -> Result<OwnedFd, Errno> {
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// A detached copy of the mount at the file `fd` names (`open_tree(fd, "", OPEN_TREE_CLONE |
/// AT_EMPTY_PATH)`), with the mounts below it when `recursive`. Resolves no path: the copy
/// is of exactly what `fd` was opened on.
pub(crate) fn clone_mount(fd: &impl AsFd, recursive: bool) -> Result<OwnedFd, Errno> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the descriptor is open for the call, the empty path is a valid C string, the
    // flags are integers; the kernel returns a new descriptor or -1.
    new_fd(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_fd().as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    })
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY)`: makes the mount `fd` is the
/// root of (a detached one from [`clone_mount`]) read-only, and only that mount; its other
/// flags (some locked by the kernel in a user namespace) stay as they are.
pub(crate) fn mount_readonly(fd: &impl AsFd) -> Result<(), Errno> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the descriptor is open, the empty path is a valid C string, and `attr` is a
    // properly sized `mount_attr` that the kernel only reads during the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_fd().as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// `move_mount(mount, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`:
/// attaches the detached mount `mount` on top of the very file `target` was opened on, with
/// no path resolved at all.
pub(crate) fn attach_mount(mount: &impl AsFd, target: &impl AsFd) -> Result<(), Errno> {
    // SAFETY: both descriptors are open for the call, the empty paths are valid C strings and
    // the flags are integers; the kernel reads nothing else.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_fd().as_raw_fd(),
            c"".as_ptr(),
            target.as_fd().as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

/// A new, detached, read-only tmpfs (`fsopen` + `fsconfig` + `fsmount`), its source named
/// `tmpfs` and its superblock read-only too, as `mount("tmpfs", .., "tmpfs", MS_RDONLY)`
/// makes it.
pub(crate) fn readonly_tmpfs() -> Result<OwnedFd, Errno> {
    // SAFETY: a valid C string for the file system name and integer flags; the kernel
    // returns a new descriptor or -1.
    let fs = new_fd(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })?;
    let config = |cmd: libc::c_uint,
                  key: Option<&std::ffi::CStr>,
                  value: Option<&std::ffi::CStr>| {
        let key = key.map_or(std::ptr::null(), |k| k.as_ptr());
        let value = value.map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: the descriptor is open; key and value are null or valid C strings that
        // outlive the call, which only reads them.
        let r = unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, key, value, 0) };
        Errno::result(r).map(drop)
    };
    config(FSCONFIG_SET_STRING, Some(c"source"), Some(c"tmpfs"))?;
    config(FSCONFIG_SET_FLAG, Some(c"ro"), None)?;
    config(FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: the descriptor is open and the flags are integers; the kernel returns a new
    // descriptor or -1.
    new_fd(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            libc::MOUNT_ATTR_RDONLY,
        )
    })
}
