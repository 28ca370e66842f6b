//! The crate's one error type.

use std::io;

use oci_spec::image::{Digest, MediaType};

/// What kind of document an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DocumentKind {
    /// An image manifest (OCI or Docker schema 2).
    Manifest,
    /// An image index or a Docker manifest list.
    Index,
    /// An image configuration.
    Config,
    /// A content descriptor.
    Descriptor,
}

impl std::fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DocumentKind::Manifest => "manifest",
            DocumentKind::Index => "index",
            DocumentKind::Config => "config",
            DocumentKind::Descriptor => "descriptor",
        })
    }
}

/// Everything that can go wrong in `ocikit-image`.
///
/// The error survives a trip through [`io::Error`]: a [`VerifyingReader`](crate::VerifyingReader)
/// reports a mismatch as an `io::Error` of kind [`io::ErrorKind::InvalidData`] whose inner error
/// is this type, and `Error::from(io_error)` gives the typed error back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Content hashed to another digest than the one expected.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the content was supposed to have.
        expected: Digest,
        /// The digest of the content actually read.
        actual: Digest,
    },

    /// Content had another length than the one expected.
    ///
    /// When the stream is too long, reading stops as soon as that is known, so `actual` is a
    /// lower bound (`expected + 1` or more).
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The size the content was supposed to have.
        expected: u64,
        /// The number of bytes actually seen.
        actual: u64,
    },

    /// A digest algorithm this crate cannot compute (only sha256 and sha512 are supported).
    #[error("unsupported digest algorithm {0:?} (sha256 and sha512 are supported)")]
    UnsupportedAlgorithm(String),

    /// A string that is not a valid digest.
    #[error("invalid digest {value:?}: {reason}")]
    InvalidDigest {
        /// The offending text.
        value: String,
        /// Why it was refused.
        reason: String,
    },

    /// A string that is not a valid tag or digest reference.
    #[error("invalid tag {value:?}: {reason}")]
    InvalidTag {
        /// The offending text.
        value: String,
        /// Why it was refused.
        reason: String,
    },

    /// A document is larger than the configured cap.
    #[error("{kind} is too large: {size} bytes or more, the limit is {limit}")]
    TooLarge {
        /// What was being read.
        kind: DocumentKind,
        /// The configured limit in bytes.
        limit: u64,
        /// The size seen (a lower bound when read from a stream).
        size: u64,
    },

    /// A document is not valid JSON, or does not have the shape the spec gives it.
    #[error("{kind} is not valid at `{path}` (line {line}, column {column}): {message}")]
    Json {
        /// What was being parsed.
        kind: DocumentKind,
        /// The JSON path of the value at fault, e.g. `layers[2].digest` (`.` for the whole
        /// document).
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What the parser said.
        message: String,
    },

    /// A document parsed but breaks a rule of the image-spec.
    #[error("invalid {kind}: field `{field}`: {reason}")]
    Invalid {
        /// What was being validated.
        kind: DocumentKind,
        /// The JSON path of the field at fault, e.g. `layers[2].digest`.
        field: String,
        /// The rule that was broken.
        reason: String,
    },

    /// A Docker image manifest schema 1, which this crate does not read.
    #[error(
        "Docker image manifest schema 1 ({media_type}) is not supported: \
         it is deprecated and unsigned content cannot be verified; convert it to schema 2 or OCI"
    )]
    SchemaV1 {
        /// The media type or schema version that identified it.
        media_type: String,
    },

    /// A document of one kind was found where another was expected.
    #[error("unexpected media type {actual}, expected {expected}")]
    UnexpectedMediaType {
        /// What was expected, in words or as a media type.
        expected: String,
        /// What was found.
        actual: MediaType,
    },

    /// A platform string that cannot be parsed.
    #[error("invalid platform {value:?}: {reason}")]
    InvalidPlatform {
        /// The offending text.
        value: String,
        /// Why it was refused.
        reason: String,
    },

    /// No manifest in an index matches the wanted platform.
    #[error("no image for platform {wanted} (available: {})", available_list(.available))]
    NoMatchingPlatform {
        /// The platform asked for.
        wanted: String,
        /// The platforms the index offers, as `os/arch[/variant]`.
        available: Vec<String>,
    },

    /// A layer entry that would reach outside the root, or cannot be applied safely.
    #[error("unsafe layer entry {path:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as the layer gives it.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A layer applied in overlay form with
    /// [`ApplyOptions::lower_layers_pending`](crate::ApplyOptions::lower_layers_pending) needs
    /// the layers below it, which are not unpacked yet: apply it again, into an empty
    /// directory, with [`ApplyOptions::lower_layers`](crate::ApplyOptions::lower_layers).
    #[error("the layer needs the layers below it at {path:?}: {reason}")]
    NeedsLowerLayers {
        /// The entry or directory that needs them.
        path: String,
        /// What it needs them for.
        reason: &'static str,
    },

    /// An overlayfs upper directory holds something a layer cannot express: a redirected
    /// directory (`overlay.redirect`, made when a lower directory is renamed with
    /// `redirect_dir=on`) or a metadata-only copy (`overlay.metacopy`), whose content lives in
    /// a lower directory. Mount with `redirect_dir=off,metacopy=off` to commit such changes.
    #[error("overlay upper entry {path:?}: {reason}")]
    Overlay {
        /// The entry's path, relative to the upper directory.
        path: String,
        /// What it holds.
        reason: &'static str,
    },

    /// A filesystem operation failed while applying or building a layer.
    #[error("{op} {path:?}")]
    Apply {
        /// The entry's path, relative to the root.
        path: String,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A layer's uncompressed content does not match the diff_id the config records.
    #[error("layer diff_id mismatch: the config says {expected}, the content is {actual}")]
    DiffIdMismatch {
        /// The diff_id from the image config.
        expected: Digest,
        /// The digest of the uncompressed stream.
        actual: Digest,
    },

    /// A layer expanded past the configured limit.
    #[error("layer expands past the limit of {limit} bytes")]
    LayerTooLarge {
        /// The limit in bytes.
        limit: u64,
    },

    /// A compression this build cannot read or write.
    #[error("unsupported compression: {0}")]
    UnsupportedCompression(String),

    /// A layer whose bytes are compressed otherwise than its media type says (gzip bytes
    /// under a zstd or plain tar type, and so on; a plain tar passes under any layer type).
    #[error("layer of media type {media_type} is {found:?}-compressed")]
    CompressionMismatch {
        /// The media type the descriptor gives.
        media_type: MediaType,
        /// The compression the first bytes show.
        found: crate::Compression,
    },

    /// A tag, digest or blob that the source does not have.
    #[error("not found: {0}")]
    NotFound(String),

    /// An I/O error from the underlying stream or file.
    #[error(transparent)]
    Io(io::Error),

    /// An error of a backend (layout, registry) that implements the source or destination
    /// traits, kept whole so callers can downcast to the backend's own error type.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync + 'static>),
}

fn available_list(available: &[String]) -> String {
    if available.is_empty() {
        "none".to_owned()
    } else {
        available.join(", ")
    }
}

impl Error {
    /// Wraps this error in an [`io::Error`] of a fitting kind, so it can travel through
    /// [`io::Read`] and [`io::Write`]; [`Error::from`] unwraps it again.
    pub fn into_io(self) -> io::Error {
        match self {
            Error::Io(e) => e,
            Error::NotFound(_) => io::Error::new(io::ErrorKind::NotFound, self),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }

    /// True when the error says that content did not match its digest or size.
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            Error::DigestMismatch { .. }
                | Error::SizeMismatch { .. }
                | Error::DiffIdMismatch { .. }
        )
    }

    pub(crate) fn json(kind: DocumentKind, path: &str, e: &serde_json::Error) -> Self {
        Error::Json {
            kind,
            path: if path.is_empty() {
                ".".to_owned()
            } else {
                path.to_owned()
            },
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        }
    }

    pub(crate) fn invalid(
        kind: DocumentKind,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            kind,
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<io::Error> for Error {
    /// Recovers a typed error that was sent through `io` with [`Error::into_io`]; any other
    /// `io::Error` becomes [`Error::Io`].
    fn from(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let kind = e.kind();
            match e.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(typed)) => return *typed,
                Some(Err(other)) => return Error::Io(io::Error::new(kind, other)),
                None => unreachable!("get_ref returned Some"),
            }
        }
        Error::Io(e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_error_survives_io() {
        let e = Error::SizeMismatch {
            expected: 3,
            actual: 2,
        };
        let io = e.into_io();
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
        match Error::from(io) {
            Error::SizeMismatch { expected, actual } => assert_eq!((expected, actual), (3, 2)),
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn plain_io_error_stays_io() {
        let e = Error::from(io::Error::new(io::ErrorKind::BrokenPipe, "gone"));
        assert!(matches!(e, Error::Io(ref io) if io.kind() == io::ErrorKind::BrokenPipe));
    }

    #[test]
    fn no_platform_lists_what_exists() {
        let e = Error::NoMatchingPlatform {
            wanted: "linux/s390x".into(),
            available: vec!["linux/amd64".into(), "linux/arm64/v8".into()],
        };
        assert_eq!(
            e.to_string(),
            "no image for platform linux/s390x (available: linux/amd64, linux/arm64/v8)"
        );
    }
}
