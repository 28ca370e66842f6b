//! The container's root filesystem: mounts, devices, `pivot_root`, masked and read-only paths.
//!
//! Every mount destination is opened inside the root with `openat2(RESOLVE_IN_ROOT)` (so a
//! symlink in the image is resolved as if the rootfs were `/`) and the mount is made onto
//! `/proc/self/fd/N` of that opened target (CVE-2021-30465).

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2, readlinkat};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mkdirat, mknodat};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{
    Gid, Uid, UnlinkatFlags, chdir, chroot, fchownat, pivot_root, symlinkat, unlinkat,
};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxNamespaceType, Mount, Spec};

use crate::error::{Error, Result};

/// Parsed mount options: flags to set, flags to clear, propagation changes and fs data.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MountOptions {
    pub(crate) flags: MsFlags,
    pub(crate) clear: MsFlags,
    pub(crate) propagation: Vec<MsFlags>,
    pub(crate) data: Vec<String>,
}

impl MountOptions {
    /// Splits runc-style option strings into flags and fs-specific data.
    pub(crate) fn parse<S: AsRef<str>>(options: &[S]) -> Self {
        let mut o = MountOptions {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
        };
        for opt in options {
            let opt = opt.as_ref();
            let (set, clear) = match opt {
                "defaults" => (MsFlags::empty(), MsFlags::empty()),
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
                "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
                "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
                "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
                "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
                "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
                "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
                "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty()),
                "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION),
                "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
                "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                | "unbindable" | "runbindable" => {
                    o.propagation.push(propagation(opt).expect("listed"));
                    continue;
                }
                other => {
                    o.data.push(other.to_string());
                    continue;
                }
            };
            o.flags = (o.flags | set) & !clear;
            o.clear = (o.clear | clear) & !set;
        }
        o
    }

    fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// The `mount(2)` flags of a propagation name (`rslave` is `MS_SLAVE | MS_REC`).
pub(crate) fn propagation(name: &str) -> Option<MsFlags> {
    let (rec, base) = match name.strip_prefix('r') {
        Some(b) if !b.is_empty() && name != "ro" && name != "rw" => (MsFlags::MS_REC, b),
        _ => (MsFlags::empty(), name),
    };
    let f = match base {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    };
    Some(f | rec)
}

/// What to create when a path does not exist.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    Nothing,
    Dir,
    File,
}

/// `openat2` in the root, retried on `EAGAIN`: the kernel returns it when a rename or mount
/// anywhere raced with a `..` it was resolving, and asks the caller to retry.
fn in_root<P: ?Sized + nix::NixPath>(
    root: &OwnedFd,
    path: &P,
    how: OpenHow,
) -> Result<OwnedFd, Errno> {
    let mut tries = 0;
    loop {
        match openat2(root.as_fd(), path, how) {
            Err(Errno::EAGAIN) if tries < 1000 => tries += 1,
            other => return other,
        }
    }
}

fn in_root_how(extra: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Lexically cleans an absolute or relative path to its normal components (`..` at the top
/// stays at the top, as it does at `/`).
fn clean(path: &Path) -> Vec<&OsStr> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn rel(parts: &[&OsStr]) -> PathBuf {
    if parts.is_empty() {
        PathBuf::from(".")
    } else {
        parts.iter().collect()
    }
}

/// Opens `path` inside `root` (an `O_PATH` directory descriptor) as if `root` were `/`,
/// creating missing components as `create` says (directories on the way, then a directory or
/// an empty file). Symlinks are followed but can never leave the root.
pub(crate) fn open_in_root(root: &OwnedFd, path: &Path, create: Create) -> Result<OwnedFd> {
    let err = |e: Errno| Error::sys("resolving in root", Some(path.to_path_buf()), e);
    let parts: Vec<PathBuf> = clean(path).into_iter().map(PathBuf::from).collect();
    open_parts(root, parts, create, 0).map_err(err)
}

fn open_parts(
    root: &OwnedFd,
    parts: Vec<PathBuf>,
    create: Create,
    depth: u32,
) -> Result<OwnedFd, Errno> {
    let refs: Vec<&OsStr> = parts.iter().map(|p| p.as_os_str()).collect();
    let full = rel(&refs);
    match in_root(root, &full, in_root_how(OFlag::empty())) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) if create != Create::Nothing => {}
        Err(e) => return Err(e),
    }
    if depth > 40 {
        return Err(Errno::ELOOP);
    }
    for i in 0..refs.len() {
        let here = rel(&refs[..=i]);
        match in_root(root, &here, in_root_how(OFlag::empty())) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let parent = in_root(root, &rel(&refs[..i]), in_root_how(OFlag::O_DIRECTORY))?;
        // A dangling symlink: create what it points to, resolved inside the root.
        if let Ok(target) = readlinkat(parent.as_fd(), refs[i]) {
            let target = PathBuf::from(target);
            let mut next: Vec<PathBuf> = if target.is_absolute() {
                Vec::new()
            } else {
                parts[..i].to_vec()
            };
            next.push(target);
            next.extend(parts[i + 1..].iter().cloned());
            let joined: PathBuf = next.iter().collect();
            let cleaned = clean(&joined).into_iter().map(PathBuf::from).collect();
            return open_parts(root, cleaned, create, depth + 1);
        }
        let last = i + 1 == refs.len();
        let made = if last && create == Create::File {
            openat(
                parent.as_fd(),
                refs[i],
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            mkdirat(parent.as_fd(), refs[i], Mode::from_bits_truncate(0o755))
        };
        match made {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    in_root(root, &full, in_root_how(OFlag::empty()))
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn sys<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> Error + 'a {
    move |e| Error::sys(context, Some(path.to_path_buf()), e)
}

/// Flags a bind remount must keep because the kernel locks them (e.g. in a user namespace).
fn locked_flags(path: &Path, keep_rdonly: bool) -> MsFlags {
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(s) {
            out |= m;
        }
    }
    if keep_rdonly && f.contains(FsFlags::ST_RDONLY) {
        out |= MsFlags::MS_RDONLY;
    }
    out
}

/// What the init process needs to set up the root filesystem.
pub(crate) struct RootfsPlan<'a> {
    pub(crate) spec: &'a Spec,
    pub(crate) rootfs: &'a Path,
    pub(crate) no_pivot: bool,
    pub(crate) in_userns: bool,
    /// Runs once the mounts are in place, right before the root changes (the createRuntime
    /// and createContainer hooks).
    pub(crate) before_pivot: &'a dyn Fn() -> Result<()>,
}

/// Runs in the container's new mount namespace: prepares the rootfs, mounts, devices, switches
/// root, then masks and write-protects what the config asks for. Leaves the cwd at `/`.
pub(crate) fn setup(plan: &RootfsPlan<'_>) -> Result<()> {
    let linux = plan.spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    let before = if prop.ends_with("private") {
        MsFlags::MS_PRIVATE | MsFlags::MS_REC
    } else {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    };
    let root = Path::new("/");
    // Without a mount namespace of its own (none listed), the container shares the runtime's,
    // as runc allows: its mounts are made inside the rootfs there (delete undoes them), the
    // root is changed with chroot, and nothing touches `/` or the mount holding the rootfs
    // (the configuration check refused a read-only root and rootfs propagation).
    let own_mounts = has_mount_namespace(plan.spec);
    if own_mounts {
        mount(None::<&str>, root, None::<&str>, before, None::<&str>)
            .map_err(sys("making / private to the container", root))?;
        mount(
            Some(plan.rootfs),
            plan.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("bind-mounting the rootfs", plan.rootfs))?;
    }
    let root_fd = open(
        plan.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("opening the rootfs", plan.rootfs))?;

    let mounts = plan.spec.mounts().clone().unwrap_or_default();
    let cgroupns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup));
    for (i, m) in mounts.iter().enumerate() {
        mount_one(&root_fd, i, m, plan.in_userns, cgroupns)?;
    }
    let dev_is_bound = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && MountOptions::parse(m.options().as_deref().unwrap_or_default()).is_bind()
    });
    if !dev_is_bound {
        let devices = linux.and_then(|l| l.devices().clone()).unwrap_or_default();
        create_devices(&root_fd, &devices, plan.in_userns)?;
    }
    // Like runc, a missing working directory is created (inside the root).
    if let Some(p) = plan.spec.process() {
        open_in_root(&root_fd, p.cwd(), Create::Dir)?;
    }
    drop(root_fd);
    (plan.before_pivot)()?;

    chdir(plan.rootfs).map_err(sys("entering the rootfs", plan.rootfs))?;
    if !own_mounts {
        chroot(".").map_err(sys("chroot", plan.rootfs))?;
    } else if plan.no_pivot {
        mount(
            Some(plan.rootfs),
            root,
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(sys("moving the rootfs to /", plan.rootfs))?;
        chroot(".").map_err(sys("chroot", plan.rootfs))?;
    } else {
        pivot_root(".", ".").map_err(sys("pivot_root", plan.rootfs))?;
        // The old root is now stacked on top of the new one: detach it, without letting the
        // unmount propagate back to the host.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("making the old root a slave", root))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(sys("detaching the old root", root))?;
    }
    chdir("/").map_err(sys("chdir", root))?;

    if let Some(l) = linux {
        protect(l, &mounts)?;
    }
    if prop.ends_with("shared") || prop.ends_with("unbindable") {
        let f = propagation(&prop).expect("validated");
        mount(None::<&str>, root, None::<&str>, f, None::<&str>)
            .map_err(sys("setting rootfs propagation", root))?;
    }
    if plan
        .spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let flags =
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(root, false);
        mount(None::<&str>, root, None::<&str>, flags, None::<&str>)
            .map_err(sys("making the root read-only", root))?;
    }
    Ok(())
}

/// Mounts `m` (`mounts[i]`); `cgroupns`: the container has a cgroup namespace of its own.
fn mount_one(root: &OwnedFd, i: usize, m: &Mount, in_userns: bool, cgroupns: bool) -> Result<()> {
    let dest = m.destination();
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().clone().unwrap_or_default();
    let bind = opts.is_bind() || typ == "bind";
    if bind {
        let source = m.source().clone().unwrap_or_default();
        let meta = std::fs::metadata(&source)
            .map_err(|e| Error::io("bind mount source", Some(source.clone()), e))?;
        let create = if meta.is_dir() {
            Create::Dir
        } else {
            Create::File
        };
        let target = open_in_root(root, dest, create)?;
        let rec = opts.flags & MsFlags::MS_REC;
        mount(
            Some(&source),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND | rec,
            None::<&str>,
        )
        .map_err(sys("bind-mounting onto", dest))?;
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            // Reopen: the old descriptor still names the directory under the new mount.
            let target = open_in_root(root, dest, Create::Nothing)?;
            let path = fd_path(&target);
            let flags = MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | rec
                | extra
                | locked_flags(&path, in_userns);
            mount(None::<&str>, &path, None::<&str>, flags, None::<&str>)
                .map_err(sys("remounting", dest))?;
        }
    } else if typ == "cgroup" && !cgroup2_host() {
        mount_cgroup_v1(root, m, &opts, in_userns, cgroupns)?;
    } else {
        let target = if typ == "proc" || typ == "sysfs" {
            plain_dir(root, i, dest, &typ)?
        } else {
            open_in_root(root, dest, Create::Dir)?
        };
        let (fstype, default_source) = match typ.as_str() {
            // A unified host: the container's cgroup namespace shows its own cgroup, as runc.
            "cgroup" | "cgroup2" => ("cgroup2", "cgroup2"),
            t => (t, t),
        };
        let source = m
            .source()
            .clone()
            .unwrap_or_else(|| PathBuf::from(default_source));
        let data = opts.data.join(",");
        mount(
            Some(&source),
            &fd_path(&target),
            Some(fstype),
            opts.flags & !MsFlags::MS_REMOUNT,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .map_err(sys("mounting", dest))?;
    }
    if !opts.propagation.is_empty() {
        let target = open_in_root(root, dest, Create::Nothing)?;
        for p in &opts.propagation {
            mount(
                None::<&str>,
                &fd_path(&target),
                None::<&str>,
                *p,
                None::<&str>,
            )
            .map_err(sys("setting propagation of", dest))?;
        }
    }
    Ok(())
}

/// CVE-2023-28642: procfs and sysfs go only onto a plain directory of the root filesystem,
/// never through a symlink or onto a file, as runc ("filesystem must be mounted on ordinary
/// directory"). The directory is opened without following a final symlink, and the mount is
/// made onto that descriptor, so a later swap of the path changes nothing.
fn plain_dir(root: &OwnedFd, i: usize, dest: &Path, fstype: &str) -> Result<OwnedFd> {
    let field = || format!("mounts[{i}].destination");
    let parts = clean(dest);
    let Some((name, dir)) = parts.split_last() else {
        return Err(Error::config(
            field(),
            format!("{fstype} cannot be mounted on /"),
        ));
    };
    let parent = open_in_root(root, &rel(dir), Create::Dir)?;
    match mkdirat(parent.as_fd(), *name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(Error::sys("creating mount point", Some(dest.into()), e)),
    }
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(parent.as_fd(), *name, flags, Mode::empty()).map_err(|e| match e {
        Errno::ENOTDIR | Errno::ELOOP => {
            let what = match nix::sys::stat::fstatat(
                parent.as_fd(),
                *name,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st)
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK =>
                {
                    "a symlink"
                }
                _ => "not a directory",
            };
            Error::config(
                field(),
                format!(
                    "{} is {what} in the root filesystem: {fstype} is only mounted on a plain \
                     directory",
                    dest.display()
                ),
            )
        }
        e => Error::sys("opening mount point", Some(dest.into()), e),
    })
}

/// Whether the host's `/sys/fs/cgroup` is the unified (v2) hierarchy.
fn cgroup2_host() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// A v1 hierarchy as a container's `cgroup` mount shows it.
#[derive(Debug, PartialEq, Eq)]
struct Hierarchy {
    /// The last component of the host's mount point (`memory`, `cpu,cpuacct`): the
    /// directory in the container's mount.
    dir: String,
    /// Its controllers (or name) as mount options: `cpu,cpuacct`, `name=systemd`.
    options: String,
    /// This process's own cgroup of it on the host; `None` when that is not below the
    /// mount's root.
    own: Option<PathBuf>,
}

/// Whether the configuration gives the container a mount namespace (new or joined).
pub(crate) fn has_mount_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Mount))
}

/// The mount points a container without a mount namespace left in ours, deepest (latest)
/// first: those strictly below `rootfs` at or under one of its `mounts`, masked or read-only
/// paths, from the text of `/proc/self/mountinfo`.
pub(crate) fn shared_mounts(mountinfo: &str, rootfs: &Path, spec: &Spec) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().clone())
        .collect();
    if let Some(l) = spec.linux() {
        for p in l.masked_paths().iter().chain(l.readonly_paths()).flatten() {
            roots.push(PathBuf::from(p));
        }
    }
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(|p| PathBuf::from(unescape(p))))
        .filter(|p| {
            p.strip_prefix(rootfs).is_ok_and(|rel| {
                let rel = Path::new("/").join(rel);
                rel != Path::new("/") && roots.iter().any(|r| rel.starts_with(r))
            })
        })
        .collect();
    out.reverse();
    out.dedup();
    out
}

/// Detaches what [`shared_mounts`] finds (delete of a container without a mount namespace).
pub(crate) fn undo_shared_mounts(rootfs: &Path, spec: &Spec) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for p in shared_mounts(&info, rootfs, spec) {
        let _ = umount2(&p, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // At most \377: a byte.
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The v1 hierarchies this process is in, from the text of `/proc/self/mountinfo` and
/// `/proc/self/cgroup`: each once (its first mount), named as the host mounts it, as runc's
/// `GetCgroupMounts`. The unified hierarchy of a hybrid host is not one of them.
fn v1_hierarchies(mountinfo: &str, proc_cgroup: &str) -> Vec<Hierarchy> {
    // (controllers, path) of each v1 line: "4:memory:/a/b", "1:name=systemd:/".
    let own: Vec<(Vec<&str>, &str)> = proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            (!ctrls.is_empty()).then(|| (ctrls.split(',').collect(), path))
        })
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 || right[0] != "cgroup" {
            continue;
        }
        let subsystems: Vec<&str> = right[2]
            .split(',')
            .filter(|o| own.iter().any(|(c, _)| c.contains(o)))
            .collect();
        if subsystems.is_empty() || subsystems.iter().any(|s| seen.contains(s)) {
            continue;
        }
        seen.extend(&subsystems);
        let (mount_root, mount_point) = (unescape(left[3]), PathBuf::from(unescape(left[4])));
        let own = own
            .iter()
            .find(|(c, _)| c.contains(&subsystems[0]))
            .and_then(|(_, path)| Path::new(path).strip_prefix(&mount_root).ok())
            .map(|rel| mount_point.join(rel));
        let Some(dir) = mount_point.file_name() else {
            continue;
        };
        out.push(Hierarchy {
            dir: dir.to_string_lossy().into_owned(),
            options: subsystems.join(","),
            own,
        });
    }
    out
}

/// The `cgroup` mount on a v1 host, as runc 1.1 makes it: a tmpfs holding one directory per
/// hierarchy, each showing the container's own cgroup (with a cgroup namespace, a cgroup file
/// system of that hierarchy, whose root is the namespace's; without, a bind mount of this
/// process's cgroup, which is already the container's), and a symlink per controller of a
/// comounted hierarchy (`cpu -> cpu,cpuacct`).
fn mount_cgroup_v1(
    root: &OwnedFd,
    m: &Mount,
    opts: &MountOptions,
    in_userns: bool,
    cgroupns: bool,
) -> Result<()> {
    let dest = m.destination();
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let target = open_in_root(root, dest, Create::Dir)?;
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .map_err(sys("mounting a tmpfs for the cgroups on", dest))?;
    let read =
        |p: &str| std::fs::read_to_string(p).map_err(|e| Error::io("reading", Some(p.into()), e));
    let hierarchies = v1_hierarchies(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?);
    let flags = (opts.flags | base) & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    for h in &hierarchies {
        let sub = dest.join(&h.dir);
        let target = open_in_root(root, &sub, Create::Dir)?;
        if cgroupns {
            // A named hierarchy's source is its name, as runc's ("systemd").
            let source = h.options.strip_prefix("name=").unwrap_or("cgroup");
            mount(
                Some(source),
                &fd_path(&target),
                Some("cgroup"),
                flags,
                Some(h.options.as_str()),
            )
            .map_err(sys("mounting the cgroup hierarchy on", &sub))?;
            continue;
        }
        let Some(own) = &h.own else {
            return Err(Error::Unsupported {
                feature: format!(
                    "a cgroup mount without a cgroup namespace when this process's {} cgroup \
                     is outside the host's mount of it",
                    h.options
                ),
            });
        };
        mount(
            Some(own),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("bind-mounting the container's cgroup onto", &sub))?;
        // Reopen: the old descriptor still names the directory under the new mount.
        let target = open_in_root(root, &sub, Create::Nothing)?;
        let path = fd_path(&target);
        let remount =
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(&path, in_userns);
        mount(None::<&str>, &path, None::<&str>, remount, None::<&str>)
            .map_err(sys("remounting", &sub))?;
    }
    let dir = open_in_root(root, dest, Create::Nothing)?;
    for h in hierarchies.iter().filter(|h| h.dir.contains(',')) {
        for name in h.dir.split(',') {
            match symlinkat(h.dir.as_str(), dir.as_fd(), name) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(Error::sys(
                        "creating cgroup symlink",
                        Some(dest.join(name)),
                        e,
                    ));
                }
            }
        }
    }
    Ok(())
}

fn default_devices() -> Vec<LinuxDevice> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| {
        let mut d = LinuxDevice::default();
        d.set_path(p.into());
        d.set_typ(LinuxDeviceType::C);
        d.set_major(major);
        d.set_minor(minor);
        d.set_file_mode(Some(0o666));
        d.set_uid(Some(0));
        d.set_gid(Some(0));
        d
    })
    .collect()
}

fn create_devices(root: &OwnedFd, spec_devices: &[LinuxDevice], in_userns: bool) -> Result<()> {
    let mut all = default_devices();
    for d in spec_devices {
        all.retain(|x| x.path() != d.path());
        all.push(d.clone());
    }
    for d in &all {
        create_device(root, d, in_userns)?;
    }
    let dev = open_in_root(root, Path::new("/dev"), Create::Dir)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match symlinkat(target, dev.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys("creating /dev symlink", Some(name.into()), e)),
        }
    }
    Ok(())
}

fn create_device(root: &OwnedFd, d: &LinuxDevice, in_userns: bool) -> Result<()> {
    let path = d.path();
    let parts = clean(path);
    let Some((name, dir)) = parts.split_last() else {
        return Err(Error::config("linux.devices.path", "must name a file"));
    };
    let parent = open_in_root(root, &rel(dir), Create::Dir)?;
    if in_userns {
        // mknod is not allowed in a user namespace: bind-mount the host's node instead.
        let target = open_in_root(root, path, Create::File)?;
        return mount(
            Some(path),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind-mounting device", path));
    }
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let mode = Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666));
    let dev = makedev(d.major() as u64, d.minor() as u64);
    match unlinkat(parent.as_fd(), *name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys("replacing device", Some(path.clone()), e)),
    }
    mknodat(parent.as_fd(), *name, kind, mode, dev).map_err(sys("mknod", path))?;
    fchownat(
        parent.as_fd(),
        *name,
        d.uid().map(Uid::from_raw),
        d.gid().map(Gid::from_raw),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(sys("chown device", path))
}

/// Whether the configuration's last mount at `/<name>` is of type `fstype`: then that is
/// what the root switch must have left there.
fn mounted_at(mounts: &[Mount], name: &str, fstype: &str) -> bool {
    mounts
        .iter()
        .rev()
        .find(|m| clean(m.destination()) == [OsStr::new(name)])
        .is_some_and(|m| m.typ().as_deref() == Some(fstype))
}

/// The container's root after the root switch, with its `/proc` and `/sys` held open once
/// verified: everything [`protect`] does goes through these descriptors, never through a
/// path that could be renamed or swapped for a symlink in the meantime (CVE-2023-27561).
struct Protected {
    root: OwnedFd,
    /// The procfs at `/proc`, when the configuration mounts one there.
    proc: Option<OwnedFd>,
    /// The sysfs at `/sys`, when the configuration mounts one there.
    sys: Option<OwnedFd>,
    /// The container's `/dev/null`, opened (and checked) on first use.
    null: Option<OwnedFd>,
}

fn unsafe_path(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
    Error::UnsafePath {
        path: path.into(),
        reason: reason.into(),
    }
}

/// `/<name>` of the root, opened without following any symlink, and checked to be the file
/// system `magic` (`what`). The runtime mounted it there before the root switch; anything
/// else there now means the rootfs was changed under it (runc's fix of CVE-2023-27561 checks
/// the same: "verify it is procfs").
fn open_verified(
    root: &OwnedFd,
    name: &str,
    magic: nix::sys::statfs::FsType,
    what: &str,
) -> Result<OwnedFd> {
    let path = PathBuf::from("/").join(name);
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = in_root(root, name, how).map_err(|e| match e {
        Errno::ELOOP => unsafe_path(
            &path,
            format!(
                "is a symlink where the runtime mounted {what}: refusing to protect it by name"
            ),
        ),
        Errno::ENOENT | Errno::ENOTDIR => unsafe_path(
            &path,
            format!("is no longer the directory the runtime mounted {what} on"),
        ),
        e => Error::sys("opening", Some(path.clone()), e),
    })?;
    let fs = nix::sys::statfs::fstatfs(&fd).map_err(sys("statfs", &path))?;
    if fs.filesystem_type() != magic {
        return Err(unsafe_path(
            &path,
            format!(
                "is not {what} (file system magic {:#x}) although the runtime mounted {what} \
                 there: the root filesystem changed under the runtime",
                fs.filesystem_type().0
            ),
        ));
    }
    Ok(fd)
}

impl Protected {
    /// Opens what the configuration's mounts put at `/proc` and `/sys`, after the root switch
    /// (the working directory is `/`, the container's root).
    fn open(mounts: &[Mount]) -> Result<Self> {
        let root = open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys("opening the new root", Path::new("/")))?;
        let proc = mounted_at(mounts, "proc", "proc")
            .then(|| open_verified(&root, "proc", nix::sys::statfs::PROC_SUPER_MAGIC, "procfs"))
            .transpose()?;
        let sys = mounted_at(mounts, "sys", "sysfs")
            .then(|| open_verified(&root, "sys", nix::sys::statfs::SYSFS_MAGIC, "sysfs"))
            .transpose()?;
        Ok(Protected {
            root,
            proc,
            sys,
            null: None,
        })
    }

    /// Opens `path` (`O_PATH`) for a mask or a read-only mount; `None` when it does not
    /// exist. Below a verified `/proc` or `/sys`: relative to that descriptor, no symlink
    /// followed and nothing outside it reached. Elsewhere: inside the root, symlinks followed
    /// but never out of it (as runc's securejoin).
    fn resolve(&self, path: &Path) -> Result<Option<OwnedFd>> {
        let parts = clean(path);
        let (base, rest, resolve) = match (parts.first(), &self.proc, &self.sys) {
            (Some(first), Some(proc), _) if *first == "proc" => (proc, &parts[1..], true),
            (Some(first), _, Some(sys)) if *first == "sys" => (sys, &parts[1..], true),
            _ => (&self.root, &parts[..], false),
        };
        let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC);
        let how = if resolve {
            how.resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            )
        } else {
            how.resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
        };
        match in_root(base, &rel(rest), how) {
            Ok(fd) => Ok(Some(fd)),
            // Absent (this kernel has no such file): nothing to protect.
            Err(Errno::ENOENT) => Ok(None),
            Err(Errno::ELOOP) => Err(unsafe_path(
                path,
                "is reached through a symlink: masked and read-only paths below /proc and \
                 /sys are never followed through one",
            )),
            Err(e) => Err(Error::sys(
                "opening masked or read-only path",
                Some(path.into()),
                e,
            )),
        }
    }

    /// The container's `/dev/null`, which every masked file becomes a bind mount of: opened
    /// once without following a symlink and checked to be the null device (character device
    /// 1:3), so a `/dev` the container controls cannot make a mask expose what a symlink
    /// named `null` points at (CVE-2025-31133).
    fn null(&mut self) -> Result<&OwnedFd> {
        if self.null.is_none() {
            let path = Path::new("/dev/null");
            let how = OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS);
            let fd = in_root(&self.root, "dev/null", how).map_err(|e| match e {
                Errno::ELOOP => unsafe_path(path, "is reached through a symlink (/dev is one)"),
                e => Error::sys(
                    "opening the null device to mask paths with",
                    Some(path.into()),
                    e,
                ),
            })?;
            let st = nix::sys::stat::fstat(&fd).map_err(sys("stat", path))?;
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            let (major, minor) = (
                nix::sys::stat::major(st.st_rdev),
                nix::sys::stat::minor(st.st_rdev),
            );
            if kind != SFlag::S_IFCHR || (major, minor) != (1, 3) {
                let found = match kind {
                    SFlag::S_IFLNK => "a symlink".to_string(),
                    SFlag::S_IFCHR => format!("character device {major}:{minor}"),
                    SFlag::S_IFBLK => format!("block device {major}:{minor}"),
                    SFlag::S_IFDIR => "a directory".to_string(),
                    _ => "not a device".to_string(),
                };
                return Err(unsafe_path(
                    path,
                    format!(
                        "is {found}, not the null device (character device 1:3) that masked \
                         files are bound from"
                    ),
                ));
            }
            self.null = Some(fd);
        }
        Ok(self.null.as_ref().expect("set above"))
    }
}

/// Applies `linux.sysctl`, `linux.readonlyPaths` and `linux.maskedPaths` after the root
/// switch (in that order, so a sysctl is written before `/proc/sys` is made read-only).
///
/// Every one of them goes through descriptors: `/proc` and `/sys` are opened once and checked
/// to be the procfs and sysfs the runtime mounted, each path is resolved relative to them,
/// and each mount is made onto the opened descriptor with the new mount API (`open_tree`,
/// `fsmount`, `mount_setattr`, `move_mount`, Linux 5.12, which the runtime already needs for
/// its read-only helper binary). That API was chosen over `mount(2)` onto `/proc/self/fd/N`
/// because it names no path at all: no `/proc` has to be trusted to name a descriptor
/// (before the root switch that was the host's; after it, the container's, which is what is
/// being protected), and it works the same when the configuration mounts no procfs.
fn protect(linux: &oci_spec::runtime::Linux, mounts: &[Mount]) -> Result<()> {
    let mut p = Protected::open(mounts)?;
    if let Some(sysctls) = l_sysctl(linux) {
        // Sysctls are files of procfs: written through the procfs at /proc, checked to be one
        // even when the configuration does not mount it itself.
        let proc = match &p.proc {
            Some(proc) => proc.try_clone().map_err(|e| Error::io("dup", None, e))?,
            None => open_verified(
                &p.root,
                "proc",
                nix::sys::statfs::PROC_SUPER_MAGIC,
                "procfs",
            )?,
        };
        let beneath = ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS;
        let sys_dir = in_root(
            &proc,
            "sys",
            OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .resolve(beneath),
        )
        .map_err(sys("opening", Path::new("/proc/sys")))?;
        for (key, value) in sysctls {
            let name = key.replace('.', "/");
            let path = PathBuf::from("/proc/sys").join(&name);
            let how = OpenHow::new()
                .flags(OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
                .resolve(beneath);
            let fd = in_root(&sys_dir, name.as_str(), how)
                .map_err(|e| Error::sys("opening sysctl", Some(path.clone()), e))?;
            use std::io::Write;
            std::fs::File::from(fd)
                .write_all(value.as_bytes())
                .map_err(|e| Error::io("writing sysctl", Some(path), e))?;
        }
    }
    for path in linux.readonly_paths().iter().flatten() {
        let path = Path::new(path);
        if let Some(target) = p.resolve(path)? {
            readonly_path(&target, path)?;
        }
    }
    for path in linux.masked_paths().iter().flatten() {
        let path = Path::new(path);
        if let Some(target) = p.resolve(path)? {
            mask_path(&mut p, &target, path)?;
        }
    }
    Ok(())
}

fn l_sysctl(
    linux: &oci_spec::runtime::Linux,
) -> Option<&std::collections::HashMap<String, String>> {
    linux.sysctl().as_ref().filter(|s| !s.is_empty())
}

/// Makes the file `target` (`path`) opened read-only: a copy of its mount tree, the copy's
/// top made read-only, attached on top of it, as runc's bind onto itself then read-only
/// remount (runtime-spec: "readonlyPaths ... will set the provided paths as readonly inside
/// the container").
fn readonly_path(target: &OwnedFd, path: &Path) -> Result<()> {
    let tree =
        crate::sys::clone_mount(target, true).map_err(sys("bind-mounting read-only path", path))?;
    crate::sys::mount_readonly(&tree).map_err(sys("remounting read-only", path))?;
    crate::sys::attach_mount(&tree, target).map_err(sys("mounting read-only path", path))
}

/// Masks the file `target` (`path`): an empty read-only tmpfs over a directory, the checked
/// null device over anything else (runtime-spec: "maskedPaths ... will mask over the provided
/// paths inside the container so that they cannot be read").
fn mask_path(p: &mut Protected, target: &OwnedFd, path: &Path) -> Result<()> {
    let st = nix::sys::stat::fstat(target).map_err(sys("stat", path))?;
    let tree = if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        crate::sys::readonly_tmpfs().map_err(sys("creating a tmpfs to mask", path))?
    } else {
        crate::sys::clone_mount(p.null()?, false)
            .map_err(sys("bind-mounting /dev/null to mask", path))?
    };
    crate::sys::attach_mount(&tree, target).map_err(sys("masking", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let o = MountOptions::parse(&["rbind", "ro", "nosuid", "rslave", "size=64k", "mode=755"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        );
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, vec!["size=64k", "mode=755"]);
        let o = MountOptions::parse(&["ro", "rw", "noexec", "exec", "private"]);
        assert_eq!(o.flags, MsFlags::empty());
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE]);
        assert_eq!(
            propagation("runbindable"),
            Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC)
        );
        assert_eq!(propagation("ro"), None);
    }

    #[test]
    fn resolves_symlinks_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("root");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::create_dir_all(rootfs.join("outside")).unwrap();
        // An absolute link and a climbing one: both must stay inside `root`.
        std::os::unix::fs::symlink("/", rootfs.join("etc/abs")).unwrap();
        std::os::unix::fs::symlink("../../../outside", rootfs.join("etc/up")).unwrap();
        let root = open(&rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        open_in_root(&root, Path::new("/etc/abs/made"), Create::Dir).unwrap();
        assert!(rootfs.join("made").is_dir());
        open_in_root(&root, Path::new("/etc/up/x/file"), Create::File).unwrap();
        assert!(rootfs.join("outside/x/file").is_file());
        assert!(!dir.path().join("outside/x").exists());
        assert!(open_in_root(&root, Path::new("/../../nope"), Create::Nothing).is_err());
    }

    /// Only the last mount at `/proc` (or `/sys`) decides what must be there after the root
    /// switch; `/proc/sys` or `/procfs` are other places.
    #[test]
    fn what_the_configuration_mounts_at_proc_and_sys() {
        let m = |dest: &str, typ: &str| {
            let mut m = Mount::default();
            m.set_destination(dest.into());
            m.set_typ(Some(typ.into()));
            m
        };
        let mounts = [
            m("/proc", "proc"),
            m("/sys/", "sysfs"),
            m("/procfs", "tmpfs"),
        ];
        assert!(mounted_at(&mounts, "proc", "proc"));
        assert!(mounted_at(&mounts, "sys", "sysfs"));
        assert!(!mounted_at(&mounts, "sys", "proc"));
        let covered = [
            m("/proc", "proc"),
            m("/proc", "bind"),
            m("/proc/sys", "proc"),
        ];
        assert!(!mounted_at(&covered, "proc", "proc"));
        assert!(!mounted_at(&[], "proc", "proc"));
    }

    /// A host with comounted controllers, a named hierarchy, a second mount of one
    /// hierarchy, a cgroup2 mount and an escaped path.
    #[test]
    fn v1_hierarchies_from_mountinfo() {
        let mountinfo = "\
25 20 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:29 /kube /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
40 20 0:28 / /mnt/my\\040memory rw - cgroup cgroup rw,memory
41 20 0:31 / /mnt/perf rw - cgroup cgroup rw,perf_event
";
        let own = "\
5:net_cls,net_prio:/kube/pod1
4:memory:/user/me
3:cpu,cpuacct:/
2:name=systemd:/user.slice
0::/user.slice
";
        let h = v1_hierarchies(mountinfo, own);
        let got: Vec<(&str, &str, Option<&Path>)> = h
            .iter()
            .map(|h| (h.dir.as_str(), h.options.as_str(), h.own.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "systemd",
                    "name=systemd",
                    Some(Path::new("/sys/fs/cgroup/systemd/user.slice"))
                ),
                (
                    "cpu,cpuacct",
                    "cpu,cpuacct",
                    Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
                ),
                (
                    "memory",
                    "memory",
                    Some(Path::new("/sys/fs/cgroup/memory/user/me"))
                ),
                (
                    "net_cls,net_prio",
                    "net_cls,net_prio",
                    Some(Path::new("/sys/fs/cgroup/net_cls,net_prio/pod1"))
                ),
            ],
            "perf_event is mounted but this process is not in it; memory only once"
        );
        let outside = v1_hierarchies(mountinfo, "4:memory:/\n");
        assert_eq!(outside.len(), 1);
        assert_eq!(
            outside[0].own.as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        let h = v1_hierarchies(
            "40 20 0:28 /a /mnt/my\\040mem rw - cgroup cgroup rw,memory\n",
            "4:memory:/b\n",
        );
        assert_eq!(h[0].dir, "my mem");
        assert_eq!(
            unescape("a\\134b\\777\\04"),
            "a\\b\\777\\04",
            "no overflow, no overrun"
        );
        assert_eq!(h[0].own, None, "/b is not below the mount's root /a");
    }
}
