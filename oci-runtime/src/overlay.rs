//! Overlay root filesystems: what an image store gives each container (its image's layers as
//! read-only lower directories, a private upper and work directory), mounted on the host.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;

use crate::{Error, Result};

/// The most lower directories one overlay mount takes: the kernel's `OVL_MAX_STACK`
/// (fs/overlayfs/params.h, 500).
pub const MAX_OVERLAY_LOWERS: usize = 500;

/// An overlayfs mount, described with chained setters on [`Overlay::new`] and made with
/// [`Overlay::mount`].
///
/// ```no_run
/// use ocikit_runtime::Overlay;
/// // Layers top first, as overlayfs stacks them ("lowerdir=upper-most:...:lower-most").
/// Overlay::new(["/store/snapshots/c2/diff", "/store/snapshots/c1/diff"])
///     .upper("/store/containers/x/upper", "/store/containers/x/work")
///     .mount("/store/containers/x/merged")?;
/// ocikit_runtime::unmount("/store/containers/x/merged")?;
/// # Ok::<_, ocikit_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Overlay {
    lowers: Vec<PathBuf>,
    upper: Option<(PathBuf, PathBuf)>,
    user_xattrs: bool,
    self_contained_upper: bool,
}

impl Overlay {
    /// An overlay of `lowers`, the top-most first (at least one).
    pub fn new<P: Into<PathBuf>>(lowers: impl IntoIterator<Item = P>) -> Self {
        Overlay {
            lowers: lowers.into_iter().map(Into::into).collect(),
            upper: None,
            user_xattrs: false,
            self_contained_upper: false,
        }
    }

    /// A writable overlay: changes go to `upper`, and `work` is overlayfs' scratch directory
    /// on the same file system (both empty at first). Default: read-only, which needs at least
    /// two lower directories.
    pub fn upper(mut self, upper: impl Into<PathBuf>, work: impl Into<PathBuf>) -> Self {
        self.upper = Some((upper.into(), work.into()));
        self
    }

    /// Reads whiteouts and opaque directories from `user.overlay.*` attributes instead of
    /// `trusted.overlay.*` (the `userxattr` option, for lower directories an unprivileged
    /// user wrote). Default false.
    pub fn user_xattrs(mut self, user_xattrs: bool) -> Self {
        self.user_xattrs = user_xattrs;
        self
    }

    /// Keeps every change whole in the upper directory, so that it can be read as a layer
    /// (a commit): no redirects (`redirect_dir=off`, or `nofollow` with
    /// [`user_xattrs`](Self::user_xattrs); renaming a lower directory fails with `EXDEV`, and
    /// programs copy instead, as `mv` does) and `metacopy=off` (a file whose metadata changes
    /// is copied up with its data). Default false: the kernel's defaults.
    pub fn self_contained_upper(mut self, yes: bool) -> Self {
        self.self_contained_upper = yes;
        self
    }

    /// Mounts the overlay on `target` (an existing directory). The lower directories are
    /// opened first and named to the kernel as `/proc/self/fd/N`, so that the option string
    /// stays short whatever their paths (it must fit in one page) and a path is resolved
    /// once.
    pub fn mount(&self, target: impl AsRef<Path>) -> Result<()> {
        let target = target.as_ref();
        if self.lowers.is_empty() || self.lowers.len() > MAX_OVERLAY_LOWERS {
            return Err(Error::config(
                "overlay lower directories",
                format!(
                    "{} given: between 1 and {MAX_OVERLAY_LOWERS} are needed",
                    self.lowers.len()
                ),
            ));
        }
        if self.upper.is_none() && self.lowers.len() < 2 {
            return Err(Error::config(
                "overlay lower directories",
                "a read-only overlay needs at least two",
            ));
        }
        let open_dir = |path: &Path| -> Result<OwnedFd> {
            open(
                path,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::sys("opening an overlay directory", Some(path.to_owned()), e))
        };
        let lowers = self
            .lowers
            .iter()
            .map(|p| open_dir(p))
            .collect::<Result<Vec<_>>>()?;
        let lowerdir = lowers
            .iter()
            .map(|fd| format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .collect::<Vec<_>>()
            .join(":");
        let mut data = format!("lowerdir={lowerdir}");
        if let Some((upper, work)) = &self.upper {
            for dir in [upper, work] {
                if dir.to_str().is_none_or(|s| s.contains([',', ':'])) {
                    return Err(Error::config(
                        "overlay upper directory",
                        format!("{} is not UTF-8 or holds ',' or ':'", dir.display()),
                    ));
                }
            }
            data.push_str(&format!(
                ",upperdir={},workdir={}",
                upper.display(),
                work.display()
            ));
        }
        if self.user_xattrs {
            data.push_str(",userxattr");
        }
        if self.self_contained_upper {
            // With `userxattr` the kernel refuses `redirect_dir=off` ("conflicting options:
            // userxattr,redirect_dir=off"); its mode there must be `nofollow`, which creates
            // no redirect either ("Redirects are not created and not followed",
            // overlayfs.rst), so a renamed lower directory is still copied whole.
            data.push_str(if self.user_xattrs {
                ",redirect_dir=nofollow,metacopy=off"
            } else {
                ",redirect_dir=off,metacopy=off"
            });
        }
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| {
            if crate::rootless::is_rootless() && matches!(e, Errno::EPERM | Errno::EINVAL) {
                // Unprivileged, only a mount namespace of the caller's own user namespace
                // takes overlayfs, and with `userxattr` only (Linux 5.11).
                return Error::Rootless {
                    what: format!("the overlay mount on {}", target.display()),
                    reason: format!(
                        "the kernel refused it ({e}): an unprivileged overlay needs Linux 5.11 \
                         or later, the userxattr option{} and a process that is root in a user \
                         namespace of its own (ocikit_runtime::enter_user_namespace)",
                        if self.user_xattrs {
                            ""
                        } else {
                            " (not asked for)"
                        }
                    ),
                };
            }
            Error::sys("mounting overlay", Some(target.to_owned()), e)
        })?;
        drop(lowers);
        Ok(())
    }
}

/// Unmounts the file system mounted on `target`; a mount still in use (a process has its
/// working directory there) is detached instead, and goes when the last user leaves.
pub fn unmount(target: impl AsRef<Path>) -> Result<()> {
    let target = target.as_ref();
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| Error::sys("unmounting", Some(target.to_owned()), e)),
        Err(e) => Err(Error::sys("unmounting", Some(target.to_owned()), e)),
    }
}

/// Unmounts the file system mounted on `target` only if nothing uses it: `Ok(false)`, and
/// the mount left as it is, when a process still has a file or directory open there (where
/// [`unmount`] would detach it). For a caller about to reuse what the mount wrote.
pub fn unmount_unused(target: impl AsRef<Path>) -> Result<bool> {
    let target = target.as_ref();
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(true),
        Err(Errno::EBUSY) => Ok(false),
        Err(e) => Err(Error::sys("unmounting", Some(target.to_owned()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lower_counts_are_refused_before_any_syscall() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Overlay::new(Vec::<PathBuf>::new())
                .upper("u", "w")
                .mount(dir.path()),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(matches!(
            Overlay::new(["a"]).mount(dir.path()),
            Err(Error::InvalidConfig { .. })
        ));
        let many = vec![dir.path().to_owned(); MAX_OVERLAY_LOWERS + 1];
        assert!(matches!(
            Overlay::new(many).upper("u", "w").mount(dir.path()),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(matches!(
            Overlay::new([dir.path()])
                .upper("u,x", "w")
                .mount(dir.path()),
            Err(Error::InvalidConfig { .. })
        ));
    }

    #[test]
    fn a_missing_lower_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        match Overlay::new([&missing]).upper("u", "w").mount(dir.path()) {
            Err(Error::Io { path, .. }) => assert_eq!(path.as_deref(), Some(missing.as_path())),
            other => panic!("{other:?}"),
        }
    }
}
