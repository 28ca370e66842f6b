//! The OCI runtime specification on Linux: create, start, state, kill and delete containers
//! from OCI bundles, as a library and as a runc-compatible command line (`oci-runtime`).
//!
//! ```no_run
//! use ocikit_runtime::{CreateOptions, Runtime};
//!
//! fn main() -> Result<(), ocikit_runtime::Error> {
//!     // First thing: this program may be re-executed as a container's init process.
//!     ocikit_runtime::init_if_requested();
//!     let rt = Runtime::new("/run/ocikit");
//!     let status = rt.run("demo", "/path/to/bundle", CreateOptions::new())?;
//!     println!("exited with {}", status.code());
//!     Ok(())
//! }
//! ```
//!
//! # Features
//! - Bundle loading and validation against the runtime-spec's Linux MUSTs ([`Bundle`],
//!   [`validate`]): each violation is an [`Error::InvalidConfig`] naming the field.
//! - The lifecycle of the spec's "Operations": [`Runtime::create`], [`start`](Runtime::start),
//!   [`state`](Runtime::state), [`kill`](Runtime::kill), [`delete`](Runtime::delete), plus
//!   [`run`](Runtime::run) and [`list`](Runtime::list). State lives under a root directory
//!   (default [`DEFAULT_ROOT`]), one folder per id, written atomically, so other processes can
//!   start, kill or delete a container.
//! - Namespaces: pid, mount, network, ipc, uts, user (mappings written by the parent), cgroup,
//!   time (with offsets); joining existing ones by path; hostname and domainname.
//! - Root filesystem: mounts with their options (bind, rbind, ro, nosuid, nodev, noexec,
//!   atime flags, propagation, fs data such as tmpfs `size`/`mode`), proc, sysfs, mqueue,
//!   devpts, cgroup (on a v1 host a tmpfs showing the container's own cgroup in each
//!   hierarchy, as runc's; the cgroup2 hierarchy on a v2 host); rootfs propagation; `pivot_root` or
//!   `MS_MOVE` + `chroot`; read-only root; default devices and `/dev` symlinks; spec devices;
//!   masked and read-only paths; sysctls. Without a mount namespace (none listed, as runc
//!   allows) the mounts are made inside the rootfs in the caller's namespace, the root is
//!   changed with `chroot`, and [`Runtime::delete`] undoes them; a read-only root and
//!   rootfs propagation then need a mount namespace and are refused.
//! - Process: args (looked up in the container's `PATH`), env, cwd, uid/gid/additional gids,
//!   umask; stdio inherited or supplied; exit status back to the caller ([`ExitStatus`]).
//! - Cgroups (the file-system driver, v1 and v2): always created, as runc does
//!   (`linux.cgroupsPath` is an absolute path from the hierarchy's root or a relative one,
//!   `<id>` by default, below the caller's own cgroup), the process moved in before it runs
//!   anything, removed on delete. Every container gets runc's default-deny device policy,
//!   whatever the configuration says: deny all, then its `linux.resources.devices` rules, its
//!   `linux.devices`, and runc's always-allowed devices. Memory (limit,
//!   reservation, swap, swappiness, OOM killer), cpu (shares or weight, quota and period,
//!   burst, realtime, idle, cpus, mems), pids, blkio/io weights and throttles, hugetlb,
//!   device rules (v1 lists; on v2 an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program), the v2
//!   `unified` map; on v2 only the controllers the limits need are enabled.
//!   Network limits (`net_cls` class id, `net_prio` priorities) on v1. A limit for a
//!   controller the host does not mount is an [`Error::Unsupported`] naming it.
//!   [`Runtime::stats`] reads memory, OOM-kill, CPU and pid counters.
//! - Operations of runc's beyond the spec's: [`Runtime::pause`] and [`Runtime::resume`]
//!   (the freezer: v1 `freezer.state`, v2 `cgroup.freeze`; [`Container::is_paused`], and
//!   `paused` in the command line's `state`), [`Runtime::update`] (new limits on a live
//!   container, as `runc update`), [`Runtime::pids`] (`ps`), [`Runtime::events`] (stats every
//!   interval and OOM events as they happen: v1 an eventfd on `memory.oom_control`, v2
//!   `memory.events`).
//! - Security: `process.capabilities` (bounding, effective, permitted, inheritable, ambient;
//!   an unknown name is an [`Error::InvalidConfig`] naming it, as with runc 1.1; an ambient
//!   capability not both permitted and inheritable is not raised, with a warning, as runc and
//!   crun do; none listed means none at all, as with runc),
//!   `noNewPrivileges`, `rlimits`, `oomScoreAdj`, `scheduler` (`sched_setattr`),
//!   `ioPriority`; `apparmorProfile` and `selinuxLabel` applied at `execve` where the host
//!   has that LSM, a clear [`Error::Unsupported`] otherwise (`linux.mountLabel` always).
//! - Seccomp: `linux.seccomp` compiled to classic BPF in Rust (no libseccomp): default action
//!   and `defaultErrnoRet`, rules by system call name (a name unknown to the architecture is
//!   skipped with a warning), `SCMP_ACT_ERRNO`/`errnoRet`, kill (thread or process), trap,
//!   trace, log, allow; argument conditions (all seven operators, 64-bit); the `log`,
//!   `tsync` and `spec_allow` flags. Only the native architecture (x86_64) has rules: any
//!   other, and x32 system calls, are killed. Installed right before `execve` with
//!   `noNewPrivileges`, before capabilities are dropped without it (as runc does).
//!
//! # How a container is started
//! The caller may be multi-threaded, so nothing non-trivial happens between fork and exec:
//! [`Runtime::create`] spawns a helper binary (by default the running executable; see
//! [`Runtime::with_helper`]) with `std::process::Command`, whose only pre-exec step is a `dup2`
//! of a sync socket. The helper must call [`init_if_requested`] first thing in `main` (the
//! `oci-runtime` binary does), and a host program's own `main` never runs as an init:
//! - With the default helper, `create`, `exec` and `run` refuse before spawning anything,
//!   with [`Error::InitNotWired`] naming `init_if_requested` and [`Runtime::with_helper`],
//!   unless this program called [`init_if_requested`] (it records that it ran).
//! - Any helper must greet the runtime first, before it is sent anything: the init writes a
//!   fixed magic string and its protocol version on the sync socket. A helper that exits,
//!   says something else or stays silent for [`HELLO_TIMEOUT`] is killed and the caller gets
//!   [`Error::InitNotWired`] naming it (a helper named with `with_helper` that forgot the
//!   call still runs its own `main`: name only programs that make the call).
//!
//! The configuration then travels to the init as one message on that socket, of at most
//! [`MAX_MESSAGE`] bytes (a larger one is an [`Error::TooLarge`] before anything is
//! spawned). That fresh, single-threaded init process joins and creates
//! namespaces, forks the container's pid 1 as a child of the caller (`CLONE_PARENT`, as runc
//! does), sets up the root filesystem and user, then blocks on `<root>/<id>/exec.fifo` until
//! [`Runtime::start`] opens it, and finally `execve`s the user's program.
//!
//! # State
//! `<root>/<id>/state.json` holds the id, bundle, rootfs, creation time and annotations;
//! `<root>/<id>/process.json` the container process's pid and start time (so a recycled pid is
//! never mistaken for it). Each is written once, atomically (a temporary file renamed into
//! place), and never replaced. The status is derived, not stored: `creating` until
//! `process.json` exists, `created` while `exec.fifo` exists, `running` while the process
//! lives, then `stopped` (a zombie counts as stopped). The root and the container
//! directories are `0700`.
//!
//! - Hooks: `prestart` and `createRuntime` run by the caller once the container's mounts are
//!   in place, `createContainer` in the container's namespaces right before the root
//!   changes (these three see the status `created`, as under crun), `startContainer` in the
//!   container after `start`, `poststart` once the user's program is executed and before
//!   `start` returns, `poststop` on delete; each with the State JSON on stdin and its
//!   `timeout`. A
//!   failing early hook aborts creation (everything is cleaned up, [`Error::HookFailed`]);
//!   a failing `poststart`/`poststop` hook is a warning.
//! - Terminals: `process.terminal` opens a pty from the container's `/dev/ptmx`, makes it
//!   the process's controlling terminal and stdio, sizes it from `consoleSize`, and sends
//!   its master to [`CreateOptions::console_socket`] (`--console-socket`) with `SCM_RIGHTS`,
//!   as runc does, so runc's receivers work unchanged ([`receive_pty`] is such a receiver);
//!   `oci-runtime run` in the foreground without a console socket relays the terminal, its
//!   window size and each change of it ([`relay_window_size`]).
//! - `exec` ([`Runtime::exec`], CLI `exec [--process FILE] ID -- CMD...`): a new process in
//!   a created or running container, in its namespaces and cgroup, with the user,
//!   capabilities, rlimits, environment and terminal of the given process (by default the
//!   container's, [`Runtime::process_of`]) and the container's seccomp filter.
//!
//! # Rootless
//! An unprivileged user runs containers as with `runc --rootless` ([`Runtime::rootless`],
//! on by default for any user but root):
//! - State lives under `$XDG_RUNTIME_DIR/ocikit` ([`default_root`]); without that variable
//!   the caller must name a root of its own ([`Error::Rootless`] says so).
//! - The configuration must ask for a user namespace (as [`rootless_spec`] and
//!   [`make_rootless`] do, like `runc spec --rootless`). Its `uidMappings` and
//!   `gidMappings` are written by the runtime when they map only the caller's own ids (with
//!   `setgroups` denied, as the kernel requires), and by `newuidmap` / `newgidmap` (Debian's
//!   `uidmap` package) when they map more, within what `/etc/subuid` and `/etc/subgid` grant.
//!   The init process is dumpable only while its mappings are written (those tools, and
//!   the kernel, check who owns `/proc/<pid>`), as runc's is.
//! - Cgroups are skipped when the caller cannot write them (permission denied), as runc
//!   does; a configuration that asks for limits there (`linux.resources` memory, cpu, pids...)
//!   is refused with an [`Error::Rootless`] naming each limit, never run without them.
//!   Device rules are not limits: in a user namespace no device can be created anyway.
//! - The systemd cgroup driver is not implemented (`--systemd-cgroup` is an error).
//! - [`enter_user_namespace`] makes a program root in a user namespace of the caller's ids
//!   ([`rootless_mappings`]: itself, then its subordinate ranges), as `podman unshare`, so
//!   that it can give files the owners an image names and mount overlays; the runtime then
//!   creates containers inside it, translating the host ids of their mappings.
//!
//! # Non-goals (for now)
//! `SCMP_ACT_NOTIFY` (refused), SELinux mount labels (refused), the systemd cgroup driver,
//! rdma resources, seccomp rules for other architectures than x86_64.
//!
//! # Security
//! The bundle is trusted as a configuration but its rootfs is not:
//! - Mount destinations and device paths are resolved inside the rootfs at mount time with
//!   `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, and the mount is made onto the opened
//!   `/proc/self/fd/N`: a symlink in the image cannot redirect a mount onto the host
//!   (CVE-2021-30465).
//! - The init process is executed through a read-only, detached bind mount of the helper
//!   binary (`open_tree` + `mount_setattr`; a sealed memfd copy where the kernel refuses that)
//!   and is non-dumpable, so the container can neither reach the runtime's memory nor write
//!   to its binary through `/proc/<pid>/exe` (CVE-2019-5736).
//! - Every descriptor but stdio and explicitly preserved ones is close-on-exec before the
//!   user's program runs, and the working directory is checked to resolve inside the new root
//!   (CVE-2024-21626).
//! - `linux.maskedPaths`, `linux.readonlyPaths` and `linux.sysctl` never go through a name
//!   the rootfs can change: after the root switch, `/proc` and `/sys` are opened without
//!   following symlinks and checked to be the procfs and sysfs the runtime mounted (anything
//!   else refuses the container with [`Error::UnsafePath`]), each path below them is resolved
//!   relative to that descriptor (no symlink followed; a symlink is an error, only a missing
//!   file is skipped), and each mask or read-only bind is attached onto the opened file with
//!   `open_tree`/`fsmount` + `move_mount`, so a `/proc` swapped for a symlink cannot leave the
//!   real procfs unmasked and `/proc/sys` writable (CVE-2023-27561, CVE-2019-19921).
//! - Masked files are bind mounts of the container's `/dev/null` opened once without
//!   following a symlink and checked to be the null device (character device 1:3, else
//!   [`Error::UnsafePath`]): a `/dev` the container controls cannot make a mask expose
//!   what a symlink named `null` points at, such as the host's `core_pattern`
//!   (CVE-2025-31133).
//! - The library is safe to call from several threads at once; a [`Runtime`] is `Sync`.
//! - The container process has exactly the capabilities `process.capabilities` lists (none
//!   if it lists none), and runs under its seccomp filter and LSM profile when given. An
//!   ambient capability is raised only if it is also permitted and inheritable (the kernel's
//!   rule; runc warns about the others and goes on, and so do we), and [`default_spec`] has no
//!   inheritable or ambient capabilities: a non-root user gets none (CVE-2022-29162).
//! - Hooks run with the caller's umask, as runc's do, not the 0 used while the root
//!   filesystem is set up.
//! - A host program's `main` never runs as a container's init (see "How a container is
//!   started"), and every message between the runtime and the init is size-checked on both
//!   ends ([`MAX_MESSAGE`]).

mod cgroup;
mod config;
mod container;
mod devices;
mod error;
mod hooks;
mod init;
mod overlay;
mod rootfs;
mod rootless;
mod seccomp;
mod security;
mod state;
mod sys;
mod syscalls;
mod terminal;

pub use oci_spec;

pub use cgroup::Stats;
pub use config::{Bundle, validate, validate_id};
pub use container::{
    Container, CreateOptions, DEFAULT_CGROUP_ROOT, DEFAULT_ROOT, Event, ExitStatus, HELLO_TIMEOUT,
    Runtime, parse_signal,
};
pub use error::{Error, Result};
pub use init::MAX_MESSAGE;
pub use nix::sys::signal::Signal;
pub use overlay::{MAX_OVERLAY_LOWERS, Overlay, unmount, unmount_unused};
pub use rootless::{
    default_root, enter_user_namespace, is_rootless, make_rootless, rootless_mappings,
    rootless_spec,
};
pub use terminal::receive_pty;

/// If this process was started as a container's init process by [`Runtime::create`], runs it
/// and never returns; otherwise returns at once. Call it first thing in `main` of any program
/// used as the init helper (see [`Runtime::with_helper`]), including any program that
/// creates containers with the default helper (itself): whatever comes before the call in
/// `main` also runs in each container's init.
///
/// It also records that this program makes the call: without it, [`Runtime::create`],
/// [`Runtime::exec`] and [`Runtime::run`] with the default helper refuse with
/// [`Error::InitNotWired`] instead of re-executing a `main` that would not become an init.
pub fn init_if_requested() {
    init::main_if_requested()
}

/// Forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH received by this
/// process to `pid` (the container process), as `runc run` does. Installs process-wide signal
/// handlers: meant for command-line tools, not for libraries.
pub fn forward_signals(pid: i32) {
    sys::forward_signals(pid)
}

/// Gives the terminal `master` (the master of a container's pseudo-terminal, as
/// `oci-runtime run` relays it) the window size of this process's standard input now, and
/// again on every `SIGWINCH` this process receives, as `runc run` does: the kernel then
/// signals the container's foreground process group itself, so [`forward_signals`] no
/// longer forwards `SIGWINCH`. Does nothing to the size while standard input is not a
/// terminal. Installs a process-wide handler and keeps a duplicate of `master` open:
/// meant for command-line tools.
pub fn relay_window_size(master: &impl std::os::fd::AsFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = master.as_fd().try_clone_to_owned()?;
    sys::copy_window_size(0, fd.as_raw_fd());
    sys::relay_window_size(fd);
    Ok(())
}

/// The configuration `oci-runtime spec` writes, like `runc spec`: `sh` in `rootfs`, read-only
/// root, hostname `oci-runtime`, the usual mounts, namespaces, masked and read-only paths.
///
/// Its capabilities are runc's default set (`CAP_AUDIT_WRITE`, `CAP_KILL`,
/// `CAP_NET_BIND_SERVICE`) in the bounding, effective and permitted sets only: no inheritable
/// and no ambient ones, so a process run as a non-root user has no capability at all
/// (runc's fix for CVE-2022-29162 removed the inheritable set from its default; runc 1.1
/// still lists an ambient set, which without inheritable capabilities the kernel never
/// raises, so we leave it out).
pub fn default_spec() -> oci_spec::runtime::Spec {
    use oci_spec::runtime::Capability;
    let mut spec = oci_spec::runtime::Spec::default();
    spec.set_hostname(Some("oci-runtime".into()));
    let runc_default: std::collections::HashSet<Capability> = [
        Capability::AuditWrite,
        Capability::Kill,
        Capability::NetBindService,
    ]
    .into();
    if let Some(process) = spec.process_mut() {
        let mut caps = oci_spec::runtime::LinuxCapabilities::default();
        caps.set_bounding(Some(runc_default.clone()))
            .set_effective(Some(runc_default.clone()))
            .set_permitted(Some(runc_default))
            .set_inheritable(None)
            .set_ambient(None);
        process.set_capabilities(Some(caps));
    }
    spec
}

/// What `oci-runtime features` prints: the runtime-spec "features" document.
pub fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "iversion", "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec",
            "noiversion", "nolazytime", "nomand", "norelatime", "nostrictatime", "nosuid",
            "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared", "rslave",
            "runbindable", "rw", "shared", "silent", "slave", "strictatime", "suid", "sync",
            "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": security::capability_names(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                    "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                    "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86_64"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {
            "io.github.ocikit.runtime.version": env!("CARGO_PKG_VERSION")
        }
    })
}
