//! The crate's one error type.

use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;

/// Everything that can go wrong in `ocikit-layout`.
///
/// Every variant that concerns a file names it (`path`). The error converts to and from
/// [`ocikit_image::Error`], so it travels through the [`ImageSource`](ocikit_image::ImageSource) and
/// [`ImageDestination`](ocikit_image::ImageDestination) traits: a missing blob or tag becomes
/// [`ocikit_image::Error::NotFound`], a verification failure becomes the digest or size mismatch
/// it was, anything else is kept whole in [`ocikit_image::Error::Backend`] and comes back out of it
/// by `Error::from`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a file failed.
    #[error("{}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error of the operating system.
        source: io::Error,
    },

    /// The directory or archive is not an OCI image layout (missing or wrong `oci-layout`).
    #[error("{}: not an OCI image layout: {reason}", .path.display())]
    NotALayout {
        /// The `oci-layout` file (or the directory, when it does not exist).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A document (`index.json`, a manifest, an index, a config, `manifest.json`) is invalid,
    /// too large or unparsable.
    #[error("{}", .path.display())]
    Document {
        /// The file holding it.
        path: PathBuf,
        /// What the parser or validator said.
        source: Box<ocikit_image::Error>,
    },

    /// A blob the operation needs is not there.
    #[error("{}: blob {digest} is missing", .path.display())]
    BlobMissing {
        /// Where it should be.
        path: PathBuf,
        /// Its digest.
        digest: Digest,
    },

    /// A blob's content does not match its digest or size.
    #[error("{}", .path.display())]
    Verification {
        /// The blob file (or the archive entry).
        path: PathBuf,
        /// [`ocikit_image::Error::DigestMismatch`] or [`ocikit_image::Error::SizeMismatch`].
        source: Box<ocikit_image::Error>,
    },

    /// A reference name that the image-layout grammar does not allow.
    #[error("invalid reference name {value:?}: {reason}")]
    InvalidRefName {
        /// The offending text.
        value: String,
        /// Why it was refused.
        reason: String,
    },

    /// No manifest has this reference name (or none for the platform asked for).
    #[error("{}: no manifest is named {name:?}", .path.display())]
    RefNotFound {
        /// The `index.json` (or `manifest.json`) searched.
        path: PathBuf,
        /// The name looked for.
        name: String,
    },

    /// An archive that is truncated, holds paths that escape it, or lacks a file it needs.
    #[error("{}: invalid archive: {reason}", .path.display())]
    InvalidArchive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The operation is not possible for this kind of store (an index into a docker archive,
    /// a tag without a repository name).
    #[error("{}: {reason}", .path.display())]
    Unsupported {
        /// The store.
        path: PathBuf,
        /// Why not.
        reason: String,
    },

    /// An error of `ocikit-image` that concerns no particular file (an unsupported digest
    /// algorithm, no image for the platform asked for).
    #[error(transparent)]
    Image(ocikit_image::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| {
            // A typed error sent through a stream (a verifier's mismatch) keeps its type.
            match ocikit_image::Error::from(source) {
                ocikit_image::Error::Io(source) => Error::Io { path, source },
                e if e.is_verification() => Error::Verification {
                    path,
                    source: Box::new(e),
                },
                e => Error::Document {
                    path,
                    source: Box::new(e),
                },
            }
        }
    }

    pub(crate) fn doc(path: &Path) -> impl FnOnce(ocikit_image::Error) -> Error + '_ {
        move |source| match source {
            ocikit_image::Error::Io(source) => Error::Io {
                path: path.to_owned(),
                source,
            },
            source if source.is_verification() => Error::Verification {
                path: path.to_owned(),
                source: Box::new(source),
            },
            source => Error::Document {
                path: path.to_owned(),
                source: Box::new(source),
            },
        }
    }

    /// True for a missing blob or reference name.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::BlobMissing { .. } | Error::RefNotFound { .. })
            || matches!(self, Error::Image(ocikit_image::Error::NotFound(_)))
    }
}

impl From<Error> for ocikit_image::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::BlobMissing { .. } | Error::RefNotFound { .. } => {
                ocikit_image::Error::NotFound(e.to_string())
            }
            Error::Verification { source, .. } => *source,
            Error::Image(e) => e,
            other => ocikit_image::Error::Backend(Box::new(other)),
        }
    }
}

impl From<ocikit_image::Error> for Error {
    fn from(e: ocikit_image::Error) -> Self {
        match e {
            ocikit_image::Error::Backend(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::Image(ocikit_image::Error::Backend(other)),
            },
            e => Error::Image(e),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
