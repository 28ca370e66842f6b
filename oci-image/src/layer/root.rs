//! A directory that paths are resolved inside of, never outside.
//!
//! Every path a layer names is resolved against the root's file descriptor as if the root were
//! `/`: `..` at the top stays at the top, and a symlink, absolute or relative, is followed
//! inside the root. Where the kernel has `openat2(2)` (Linux 5.6+) it does this with
//! `RESOLVE_IN_ROOT`; elsewhere the same rules are applied here one component at a time with
//! `O_NOFOLLOW`. Only directories are resolved this way: the last component of an entry is
//! always operated on with `*at` calls relative to its parent's descriptor, without following
//! it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// How many symlinks one resolution may pass through, as the kernel's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

/// How directories inside the root are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resolver {
    /// `openat2` with `RESOLVE_IN_ROOT`.
    Kernel,
    /// Component by component in user space.
    Userspace,
}

/// An open root directory.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    resolver: Resolver,
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

impl Root {
    /// Opens `path` (which must be a directory) as a root, choosing the kernel resolver when
    /// the kernel has it.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(path, dir_flags(), Mode::empty())?;
        let resolver = match rustix::fs::openat2(
            &fd,
            ".",
            dir_flags(),
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(_) => Resolver::Kernel,
            Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM => {
                Resolver::Userspace
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Root { fd, resolver })
    }

    /// Like [`Root::open`] with a chosen resolver (tests exercise both).
    #[cfg(test)]
    pub(crate) fn open_with(path: &Path, resolver: Resolver) -> io::Result<Root> {
        let mut root = Root::open(path)?;
        root.resolver = resolver;
        Ok(root)
    }

    /// The root's own descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the directory at `components` inside the root. With `create`, missing
    /// directories are made (mode 0755, owned by the caller), as `tar` does for entries
    /// whose parents the archive does not list.
    pub(crate) fn dir(&self, components: &[OsString], create: bool) -> io::Result<OwnedFd> {
        match self.resolve(components) {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        // Walk down, making what is missing. Each step is resolved from the root again, so a
        // symlink met on the way is still followed only inside the root.
        let mut parent = rustix::io::dup(&self.fd)?;
        for i in 0..components.len() {
            match self.resolve(&components[..=i]) {
                Ok(fd) => parent = fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rustix::fs::mkdirat(&parent, &components[i], Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    parent = self.resolve(&components[..=i])?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(parent)
    }

    fn resolve(&self, components: &[OsString]) -> io::Result<OwnedFd> {
        if components.is_empty() {
            return Ok(rustix::io::dup(&self.fd)?);
        }
        match self.resolver {
            Resolver::Kernel => {
                let path = join(components);
                loop {
                    match rustix::fs::openat2(
                        &self.fd,
                        OsStr::from_bytes(&path),
                        dir_flags(),
                        Mode::empty(),
                        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                    ) {
                        // openat2 asks callers to retry when a concurrent rename raced it.
                        Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => continue,
                        other => return Ok(other?),
                    }
                }
            }
            Resolver::Userspace => self.walk(components, false),
        }
    }

    /// `RESOLVE_IN_ROOT` in user space: a stack of open directories from the root down,
    /// symlinks read and spliced into the components still to walk.
    /// With `file`, the last component may be a regular file, which is opened to read.
    fn walk(&self, components: &[OsString], file: bool) -> io::Result<OwnedFd> {
        let mut stack: Vec<OwnedFd> = vec![rustix::io::dup(&self.fd)?];
        let mut pending: Vec<OsString> = components.iter().rev().cloned().collect();
        let mut links = 0;
        while let Some(c) = pending.pop() {
            let name = c.as_bytes();
            if name.is_empty() || name == b"." {
                continue;
            }
            if name == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let cur = stack.last().expect("the root is never popped");
            let st = rustix::fs::statat(cur, &c, AtFlags::SYMLINK_NOFOLLOW)?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(rustix::io::Errno::LOOP.into());
                    }
                    let target = rustix::fs::readlinkat(cur, &c, Vec::new())?;
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        stack.truncate(1);
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        pending.push(OsStr::from_bytes(part).to_owned());
                    }
                }
                FileType::Directory => {
                    let fd =
                        rustix::fs::openat(cur, &c, dir_flags() | OFlags::NOFOLLOW, Mode::empty())?;
                    stack.push(fd);
                }
                FileType::RegularFile if file && pending.is_empty() => {
                    return Ok(rustix::fs::openat(
                        cur,
                        &c,
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?);
                }
                _ => return Err(rustix::io::Errno::NOTDIR.into()),
            }
        }
        if file {
            // The path named a directory.
            return Err(rustix::io::Errno::ISDIR.into());
        }
        Ok(stack.pop().expect("the root is never popped"))
    }

    /// Opens the regular file at `components` for reading, every symlink on the way (the
    /// last one included) followed inside the root only.
    pub(crate) fn open_file(&self, components: &[OsString]) -> io::Result<File> {
        let fd = match self.resolver {
            Resolver::Kernel => loop {
                match rustix::fs::openat2(
                    &self.fd,
                    OsStr::from_bytes(&join(components)),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => continue,
                    other => break other?,
                }
            },
            Resolver::Userspace => self.walk(components, true)?,
        };
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            // A device or fifo could block or never end.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }
}

fn join(components: &[OsString]) -> Vec<u8> {
    let mut path = Vec::new();
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(c.as_bytes());
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    fn comps(p: &str) -> Vec<OsString> {
        p.split('/')
            .filter(|c| !c.is_empty())
            .map(OsString::from)
            .collect()
    }

    /// Where an opened directory really is.
    fn where_is(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(format!(
            "/proc/self/fd/{}",
            rustix::fd::AsRawFd::as_raw_fd(fd)
        ))
        .unwrap()
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        for resolver in [Resolver::Kernel, Resolver::Userspace] {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("root");
            std::fs::create_dir_all(root.join("usr/lib")).unwrap();
            std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
            symlink("/usr/lib", root.join("abs")).unwrap();
            symlink("../../../../outside", root.join("up")).unwrap();
            symlink("usr/lib", root.join("rel")).unwrap();
            symlink("loop", root.join("loop")).unwrap();
            let r = Root::open_with(&root, resolver).unwrap();
            let real = std::fs::canonicalize(&root).unwrap();

            assert_eq!(
                where_is(&r.dir(&comps("abs"), false).unwrap()),
                real.join("usr/lib")
            );
            assert_eq!(
                where_is(&r.dir(&comps("rel"), false).unwrap()),
                real.join("usr/lib")
            );
            // `..` past the top stays at the top, so `up` names <root>/outside, which does not
            // exist: a dangling link is not a way out, nor is creating through it.
            let e = r.dir(&comps("up"), false).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{resolver:?}");
            assert!(r.dir(&comps("up/x"), true).is_err());
            assert!(!tmp.path().join("outside/x").exists());
            // Once <root>/outside exists, the link leads there.
            std::fs::create_dir(root.join("outside")).unwrap();
            let made = r.dir(&comps("up/x"), true).unwrap();
            assert_eq!(where_is(&made), real.join("outside/x"), "{resolver:?}");
            assert!(!tmp.path().join("outside/x").exists());
            assert_eq!(
                r.dir(&comps("loop"), false).unwrap_err().raw_os_error(),
                Some(libc_eloop())
            );
        }
    }

    fn libc_eloop() -> i32 {
        rustix::io::Errno::LOOP.raw_os_error()
    }

    #[test]
    fn files_open_inside_the_root_only() {
        for resolver in [Resolver::Kernel, Resolver::Userspace] {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("root");
            std::fs::create_dir_all(root.join("etc")).unwrap();
            std::fs::write(root.join("etc/passwd"), b"inside").unwrap();
            std::fs::write(tmp.path().join("secret"), b"host").unwrap();
            symlink("../../secret", root.join("up")).unwrap();
            symlink(tmp.path().join("secret"), root.join("abs")).unwrap();
            symlink("etc/passwd", root.join("rel")).unwrap();
            let r = Root::open_with(&root, resolver).unwrap();
            let read = |p: &str| -> io::Result<Vec<u8>> {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut r.open_file(&comps(p))?, &mut v)?;
                Ok(v)
            };
            assert_eq!(read("rel").unwrap(), b"inside", "{resolver:?}");
            // Both links point at a host file, which inside the root does not exist.
            assert_eq!(read("up").unwrap_err().kind(), io::ErrorKind::NotFound);
            assert_eq!(read("abs").unwrap_err().kind(), io::ErrorKind::NotFound);
            assert!(read("etc").is_err());
        }
    }

    #[test]
    fn create_makes_missing_parents() {
        for resolver in [Resolver::Kernel, Resolver::Userspace] {
            let tmp = tempfile::tempdir().unwrap();
            let r = Root::open_with(tmp.path(), resolver).unwrap();
            r.dir(&comps("a/b/c"), true).unwrap();
            assert!(tmp.path().join("a/b/c").is_dir());
            std::fs::write(tmp.path().join("file"), b"").unwrap();
            let e = r.dir(&comps("file/x"), true).unwrap_err();
            assert_eq!(
                e.raw_os_error(),
                Some(rustix::io::Errno::NOTDIR.raw_os_error())
            );
        }
    }
}
