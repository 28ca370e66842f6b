//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use oci_spec::runtime::ContainerState;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bundle's `config.json` violates the runtime-spec (or a requirement of this runtime).
    #[error("invalid config: {field}: {reason}")]
    InvalidConfig {
        /// The JSON path of the offending field, e.g. `process.args` or `linux.namespaces[2]`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A container id that the runtime refuses (empty, `.`/`..`, or characters other than
    /// `[A-Za-z0-9_+.-]`).
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// The id as given.
        id: String,
        /// Why it is refused.
        reason: String,
    },
    /// A container with this id already exists under the state root.
    #[error("container {id:?} already exists")]
    ContainerExists {
        /// The id.
        id: String,
    },
    /// No container with this id exists under the state root.
    #[error("container {id:?} does not exist")]
    ContainerNotFound {
        /// The id.
        id: String,
    },
    /// The operation is not allowed in the container's current status.
    #[error("cannot {operation} container {id:?}: it is {status}")]
    InvalidState {
        /// The id.
        id: String,
        /// The operation asked for (`start`, `delete`, `kill`...).
        operation: &'static str,
        /// The status the container is in.
        status: ContainerState,
    },
    /// A signal name or number that is not a Linux signal.
    #[error("invalid signal {signal:?}")]
    InvalidSignal {
        /// The signal as given.
        signal: String,
    },
    /// The container's init process reported a failure while setting the container up.
    #[error("container init failed: {message}")]
    InitFailed {
        /// The init process's own description of the failure.
        message: String,
    },
    /// A lifecycle hook failed (could not run, exited non-zero, or timed out).
    #[error("{hook}: {message}")]
    HookFailed {
        /// Which hook: its point in the lifecycle, index and path.
        hook: String,
        /// How it failed.
        message: String,
    },
    /// The program that would run as the container's init does not serve as one: the
    /// running program never called [`crate::init_if_requested`] (checked before anything is
    /// spawned), or the helper named with [`crate::Runtime::with_helper`] exited, hung or
    /// answered something other than the init greeting.
    #[error(
        "{}: not a container init helper ({reason}); call ocikit_runtime::init_if_requested() \
         first thing in main of the program that creates containers, or name a helper that \
         does, such as the oci-runtime binary, with Runtime::with_helper",
        helper.display()
    )]
    InitNotWired {
        /// The helper program (the running executable by default).
        helper: PathBuf,
        /// What went wrong with it.
        reason: String,
    },
    /// Something is larger than a limit of this runtime allows, e.g. a configuration too big
    /// for the channel to the container init ([`crate::MAX_MESSAGE`]).
    #[error("{what} is too big: {size} bytes, over the {limit}-byte limit of {limit_of}")]
    TooLarge {
        /// What was too big, e.g. `the container configuration (config.json)`.
        what: String,
        /// Its size in bytes (serialized, for a message).
        size: u64,
        /// The limit it exceeded, in bytes.
        limit: u64,
        /// Whose limit it is, e.g. `the runtime's channel to the container init
        /// (ocikit_runtime::MAX_MESSAGE)`.
        limit_of: &'static str,
    },
    /// A path of the container's root filesystem that the runtime protects or relies on is
    /// not what it must be: `/proc` or `/sys` that is not the procfs or sysfs the runtime
    /// mounted there (swapped for a symlink or another directory), `/dev/null` that is not
    /// the null device, a masked or read-only path reached through a symlink. The container
    /// is refused rather than started unprotected.
    #[error("{}: {reason}", path.display())]
    UnsafePath {
        /// The path, as the container sees it.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A feature that this runtime does not implement (yet).
    #[error("not supported: {feature}")]
    Unsupported {
        /// What was asked for.
        feature: String,
    },
    /// Something an unprivileged (rootless) caller cannot do as the configuration or the
    /// call asks: no state root of its own (no `XDG_RUNTIME_DIR` and no `--root`), cgroup
    /// limits where it cannot write cgroups, id mappings beyond its own id without
    /// `newuidmap`/`newgidmap` or beyond the ranges `/etc/subuid` and `/etc/subgid` grant.
    #[error("rootless: {what}: {reason}")]
    Rootless {
        /// What could not be done or applied, e.g. `linux.resources.memory.limit` or `the
        /// state root`.
        what: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// An I/O or system call failure, with what was being done and on which path.
    #[error("{context}{}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Io {
        /// What the runtime was doing.
        context: &'static str,
        /// The path involved, if any.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `error: cause: its cause...`: an error with its [`source`](std::error::Error::source)
/// chain on one line, as runc prints a failure (each error's message holds none of its
/// causes' text).
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl Error {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(context: &'static str, path: Option<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            context,
            path,
            source,
        }
    }

    pub(crate) fn sys(
        context: &'static str,
        path: Option<PathBuf>,
        errno: nix::errno::Errno,
    ) -> Self {
        Error::io(context, path, io::Error::from_raw_os_error(errno as i32))
    }
}

/// Lets a typed error travel through `io::Result` APIs; [`From<io::Error>`] recovers it.
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::InvalidConfig { .. } | Error::InvalidId { .. } | Error::InvalidSignal { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::ContainerExists { .. } => io::ErrorKind::AlreadyExists,
            Error::ContainerNotFound { .. } => io::ErrorKind::NotFound,
            Error::Unsupported { .. } => io::ErrorKind::Unsupported,
            Error::TooLarge { .. } | Error::UnsafePath { .. } => io::ErrorKind::InvalidData,
            Error::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// Recovers an [`Error`] carried inside an `io::Error`, or wraps a plain one.
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            match e.into_inner().map(|b| b.downcast::<Error>()) {
                Some(Ok(inner)) => return *inner,
                Some(Err(other)) => return Error::io("i/o", None, io::Error::other(other)),
                None => unreachable!("checked get_ref above"),
            }
        }
        Error::io("i/o", None, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_io_error() {
        let e = Error::config("process.args", "must not be empty");
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
        match Error::from(io) {
            Error::InvalidConfig { field, .. } => assert_eq!(field, "process.args"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
