//! How a subcommand fails: one line with the error and its causes, and an exit code a
//! script can test.
//!
//! | code | meaning |
//! |---|---|
//! | 1 | a failure not listed below |
//! | 2 | bad arguments: an invalid reference, location, size or option value |
//! | 3 | not found: image, tag, repository, layout, blob, store entry or working container |
//! | 4 | the registry refused the credentials, or asked for some and none were given |
//! | 5 | the registry could not be reached (connection, DNS, TLS) |
//! | 6 | refused by the signature policy, or content failed verification |
//! | 125 | `run` only: ocikit failed, not the container |

use std::error::Error as StdError;
use std::fmt;
use std::process::ExitCode;

use ocikit::distribution::Error as DistError;

/// Why a subcommand failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An error of the library.
    Lib(ocikit::Error),
    /// A value on the command line that does not parse (exit 2).
    Usage(String),
    /// Something that does not exist (exit 3).
    NotFound(String),
    /// Content that failed verification (exit 6).
    Corrupt(String),
    /// Anything else, with its cause (exit 1).
    Other(String, Option<Box<dyn StdError + Send + Sync>>),
}

impl Failure {
    /// A failure with a message and no cause (exit 1).
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        Failure::Other(message.into(), None)
    }

    /// `what` failed because of `cause`.
    pub(crate) fn io(what: impl Into<String>, cause: std::io::Error) -> Self {
        Failure::Other(what.into(), Some(Box::new(cause)))
    }

    /// The error and every cause, once each, joined by `: ` on one line.
    pub(crate) fn chain(&self) -> String {
        let (mut text, mut source): (String, Option<&(dyn StdError + 'static)>) = match self {
            Failure::Lib(e) => (e.to_string(), e.source()),
            Failure::Usage(m) | Failure::NotFound(m) | Failure::Corrupt(m) => (m.clone(), None),
            Failure::Other(m, cause) => (
                m.clone(),
                cause.as_deref().map(|c| c as &(dyn StdError + 'static)),
            ),
        };
        while let Some(cause) = source {
            let line = cause.to_string();
            // A cause whose text the message already holds adds nothing.
            if !text.contains(&line) {
                text.push_str(": ");
                text.push_str(&line);
            }
            source = cause.source();
        }
        text.replace('\n', " ")
    }

    /// The documented exit code; `run` reports its own failures as 125, as podman does.
    pub(crate) fn exit_code(&self, run: bool) -> ExitCode {
        let code = self.code();
        if run && code != 2 {
            return ExitCode::from(125);
        }
        ExitCode::from(code)
    }

    fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::NotFound(_) => 3,
            Failure::Corrupt(_) => 6,
            Failure::Other(..) => 1,
            Failure::Lib(e) => lib_code(e),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.chain())
    }
}

impl From<ocikit::Error> for Failure {
    fn from(e: ocikit::Error) -> Self {
        Failure::Lib(e)
    }
}

impl From<DistError> for Failure {
    fn from(e: DistError) -> Self {
        Failure::Lib(e.into())
    }
}

impl From<ocikit::trust::TrustError> for Failure {
    fn from(e: ocikit::trust::TrustError) -> Self {
        Failure::Lib(e.into())
    }
}

impl From<ocikit::layout::Error> for Failure {
    fn from(e: ocikit::layout::Error) -> Self {
        Failure::Lib(e.into())
    }
}

impl From<ocikit::image::Error> for Failure {
    fn from(e: ocikit::image::Error) -> Self {
        Failure::Lib(e.into())
    }
}

fn lib_code(e: &ocikit::Error) -> u8 {
    use ocikit::Error as E;
    match e {
        E::InvalidLocation { .. } => 2,
        E::Distribution(d) => dist_code(d),
        E::Layout(l) => layout_code(l),
        E::Image(i) => image_code(i),
        E::Store(
            ocikit::store::StoreError::ImageNotFound { .. }
            | ocikit::store::StoreError::ContainerNotFound { .. }
            | ocikit::store::StoreError::NotWorkingContainer { .. },
        ) => 3,
        E::Trust(_) => 6,
        _ => 1,
    }
}

fn dist_code(e: &DistError) -> u8 {
    use ocikit::distribution::ErrorCode as C;
    match e {
        DistError::InvalidReference { .. } => 2,
        DistError::Registry { status, errors, .. } => {
            let code_is = |c: &[C]| errors.iter().any(|r| c.contains(&r.code));
            if *status == 401 || *status == 403 || code_is(&[C::Unauthorized, C::Denied]) {
                4
            } else if *status == 404
                || code_is(&[
                    C::ManifestUnknown,
                    C::NameUnknown,
                    C::BlobUnknown,
                    C::ManifestBlobUnknown,
                ])
            {
                3
            } else {
                1
            }
        }
        DistError::Auth { .. } => 4,
        DistError::Http { .. } => 5,
        DistError::Image(i) => image_code(i),
        _ => 1,
    }
}

fn layout_code(e: &ocikit::layout::Error) -> u8 {
    use ocikit::layout::Error as L;
    match e {
        L::NotALayout { .. } | L::RefNotFound { .. } | L::BlobMissing { .. } => 3,
        L::InvalidRefName { .. } => 2,
        L::Verification { .. } => 6,
        L::Image(i) => image_code(i),
        _ => 1,
    }
}

fn image_code(e: &ocikit::image::Error) -> u8 {
    use ocikit::image::Error as I;
    match e {
        I::DigestMismatch { .. } | I::SizeMismatch { .. } => 6,
        I::InvalidDigest { .. } => 2,
        I::NotFound(_) => 3,
        // A transport's own error, boxed by the `ImageSource` it came through.
        I::Backend(inner) => {
            if let Some(d) = inner.downcast_ref::<DistError>() {
                dist_code(d)
            } else if let Some(l) = inner.downcast_ref::<ocikit::layout::Error>() {
                layout_code(l)
            } else if let Some(f) = inner.downcast_ref::<ocikit::Error>() {
                lib_code(f)
            } else {
                1
            }
        }
        _ => 1,
    }
}
