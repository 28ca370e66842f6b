//! The crate's one error type, and the registry's error codes.

use std::fmt;
use std::io;

/// An error code of the distribution-spec's error body (`{"errors":[{"code":...}]}`).
///
/// Codes the spec does not list (and the Docker-specific ones it dropped) are kept in
/// [`ErrorCode::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: blob unknown to registry.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: blob upload invalid.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: blob upload unknown to registry.
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: provided digest did not match uploaded content.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: a manifest references a blob the registry does not have.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: manifest invalid.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: manifest unknown to registry.
    ManifestUnknown,
    /// `NAME_INVALID`: invalid repository name.
    NameInvalid,
    /// `NAME_UNKNOWN`: repository name not known to registry.
    NameUnknown,
    /// `SIZE_INVALID`: provided length did not match content length.
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication required.
    Unauthorized,
    /// `DENIED`: requested access to the resource is denied.
    Denied,
    /// `UNSUPPORTED`: the operation is unsupported.
    Unsupported,
    /// `TOOMANYREQUESTS`: too many requests.
    TooManyRequests,
    /// Any other code, verbatim.
    Unknown(String),
}

impl ErrorCode {
    /// Decodes a code as the registry sent it.
    pub fn parse(code: &str) -> Self {
        match code {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            other => ErrorCode::Unknown(other.to_owned()),
        }
    }

    /// The code as the spec spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unknown(s) => s,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a registry's error body.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryError {
    /// The decoded code.
    pub code: ErrorCode,
    /// The registry's message (may be empty).
    pub message: String,
    /// The registry's `detail`, unstructured.
    pub detail: Option<serde_json::Value>,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// Decodes a registry error body; anything that is not one gives an empty list.
pub(crate) fn decode_errors(body: &[u8]) -> Vec<RegistryError> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| {
            b.errors
                .into_iter()
                .map(|e| RegistryError {
                    code: ErrorCode::parse(&e.code),
                    message: e.message,
                    detail: e.detail.filter(|d| !d.is_null()),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn place(path: &std::path::Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        (Some(l), None) => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}

fn list(errors: &[RegistryError], body: &str) -> String {
    if errors.is_empty() {
        if body.is_empty() {
            "no error body".to_owned()
        } else {
            body.to_owned()
        }
    } else {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What went wrong while authenticating.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// The registry refused the request after the client authenticated as well as it could
    /// (no credentials, wrong ones, or not enough rights): HTTP 401 or 403.
    Unauthorized,
    /// The token server refused to give a token (wrong credentials: its HTTP status is kept).
    TokenRefused,
    /// The token server's answer was not a token.
    BadTokenResponse,
    /// The `WWW-Authenticate` challenge could not be understood or names an unsupported scheme.
    BadChallenge,
    /// Credentials could not be read (auth file, credential helper).
    Credentials,
}

/// Everything that can go wrong in `ocikit-distribution`.
///
/// `From<Error> for ocikit_image::Error` maps "not found" answers to
/// [`ocikit_image::Error::NotFound`], verification errors to `ocikit_image`'s own, and keeps the
/// rest whole in [`ocikit_image::Error::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A text that is not a valid image reference.
    #[error("invalid reference {value:?}: {reason}")]
    InvalidReference {
        /// The offending text.
        value: String,
        /// Why it was refused.
        reason: String,
    },

    /// The registry answered with an HTTP error status.
    #[error("{method} {url}: HTTP {status}: {}", list(.errors, .body))]
    Registry {
        /// The HTTP status.
        status: u16,
        /// The request method.
        method: String,
        /// The request URL (without credentials).
        url: String,
        /// The decoded error body (empty when the body was not a registry error body).
        errors: Vec<RegistryError>,
        /// The start of the body when it was not a registry error body.
        body: String,
    },

    /// Authentication failed.
    #[error("authentication with {registry} failed ({kind:?}{}): {message}",
        .status.map(|s| format!(", HTTP {s}")).unwrap_or_default())]
    Auth {
        /// What failed.
        kind: AuthErrorKind,
        /// The registry host.
        registry: String,
        /// The HTTP status of the refusal, if there was one.
        status: Option<u16>,
        /// Details.
        message: String,
    },

    /// A transport error (connection, TLS, timeout) after the retries were spent.
    #[error("{method} {url}")]
    Http {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: ureq::Error,
    },

    /// The registry answered something the protocol does not allow (a missing `Location`,
    /// a digest header that contradicts the content, a bad JSON body).
    #[error("protocol error from {url}: {message}")]
    Protocol {
        /// The request URL.
        url: String,
        /// What was wrong.
        message: String,
    },

    /// Content failed verification, or a document failed to parse or validate.
    #[error(transparent)]
    Image(#[from] ocikit_image::Error),

    /// An I/O error of a local stream.
    #[error(transparent)]
    Io(io::Error),

    /// A configuration file (registries.conf, a certificate directory) that could not be
    /// read or is invalid: the file, and the line and column (1-based) where that is known.
    #[error("{}: {message}", place(path, *line, *column))]
    Config {
        /// The file (or directory).
        path: std::path::PathBuf,
        /// The line of the error, when known.
        line: Option<usize>,
        /// Its column, when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },

    /// registries.conf blocks the image ("If `true`, pulling images with matching names is
    /// forbidden", containers-registries.conf(5)): refused before any connection.
    #[error("{reference} is blocked by the [[registry]] of prefix {prefix:?} in {}", file.display())]
    Blocked {
        /// The reference refused.
        reference: String,
        /// The prefix of the table that blocks it.
        prefix: String,
        /// The file of that table.
        file: std::path::PathBuf,
    },

    /// The embedded registry (feature `server`) could not start: its storage, its address,
    /// or its htpasswd file.
    #[error("registry server: {message}")]
    Server {
        /// What failed.
        message: String,
    },
}

impl From<io::Error> for Error {
    /// Recovers typed errors carried through `io` (ours and `ocikit_image`'s).
    fn from(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            if let Some(Ok(typed)) = e.into_inner().map(|i| i.downcast::<Error>()) {
                return *typed;
            }
            unreachable!("checked above");
        }
        match ocikit_image::Error::from(e) {
            ocikit_image::Error::Io(e) => Error::Io(e),
            other => Error::Image(other),
        }
    }
}

impl Error {
    /// The HTTP status of a registry or authentication refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Registry { status, .. } => Some(*status),
            Error::Auth { status, .. } => *status,
            _ => None,
        }
    }

    /// The registry error codes the answer carried (empty for other errors).
    pub fn codes(&self) -> Vec<&ErrorCode> {
        match self {
            Error::Registry { errors, .. } => errors.iter().map(|e| &e.code).collect(),
            _ => Vec::new(),
        }
    }

    /// True for a 404, or any answer whose codes say the manifest, blob or repository is
    /// unknown.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Registry { status, errors, .. } => {
                *status == 404
                    || errors.iter().any(|e| {
                        matches!(
                            e.code,
                            ErrorCode::ManifestUnknown
                                | ErrorCode::BlobUnknown
                                | ErrorCode::NameUnknown
                        )
                    })
            }
            Error::Image(ocikit_image::Error::NotFound(_)) => true,
            _ => false,
        }
    }

    /// True for an authentication failure.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth { .. })
    }

    /// Wraps the error in an `io::Error` so it can travel through `Read`; `Error::from` gets
    /// it back.
    pub fn into_io(self) -> io::Error {
        match self {
            Error::Io(e) => e,
            Error::Image(e) => e.into_io(),
            other => io::Error::other(other),
        }
    }
}

impl From<Error> for ocikit_image::Error {
    fn from(e: Error) -> Self {
        if e.is_not_found() {
            return match e {
                Error::Image(inner) => inner,
                other => ocikit_image::Error::NotFound(other.to_string()),
            };
        }
        match e {
            Error::Image(inner) => inner,
            Error::Io(io) => ocikit_image::Error::Io(io),
            other => ocikit_image::Error::Backend(Box::new(other)),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_codes_known_and_unknown() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},
            {"code":"SOMETHING_NEW","message":""}]}"#;
        let errors = decode_errors(body);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].code, ErrorCode::ManifestUnknown);
        assert!(errors[0].detail.is_some());
        assert_eq!(errors[1].code, ErrorCode::Unknown("SOMETHING_NEW".into()));
        assert!(decode_errors(b"404 page not found").is_empty());
        for code in ["BLOB_UNKNOWN", "DENIED", "TOOMANYREQUESTS", "SIZE_INVALID"] {
            assert_eq!(ErrorCode::parse(code).as_str(), code);
        }
    }

    #[test]
    fn not_found_maps_to_image_not_found() {
        let e = Error::Registry {
            status: 404,
            method: "GET".into(),
            url: "http://x/v2/a/manifests/b".into(),
            errors: decode_errors(br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#),
            body: String::new(),
        };
        assert!(e.is_not_found());
        assert_eq!(e.status(), Some(404));
        assert!(matches!(
            ocikit_image::Error::from(e),
            ocikit_image::Error::NotFound(_)
        ));
        let denied = Error::Registry {
            status: 403,
            method: "GET".into(),
            url: "u".into(),
            errors: vec![],
            body: "no".into(),
        };
        assert!(matches!(
            ocikit_image::Error::from(denied),
            ocikit_image::Error::Backend(_)
        ));
    }

    #[test]
    fn verification_survives_io() {
        let e = ocikit_image::Error::SizeMismatch {
            expected: 1,
            actual: 2,
        };
        let back = Error::from(Error::Image(e).into_io());
        assert!(matches!(
            back,
            Error::Image(ocikit_image::Error::SizeMismatch { .. })
        ));
        let ours = Error::Protocol {
            url: "u".into(),
            message: "m".into(),
        };
        assert!(matches!(
            Error::from(ours.into_io()),
            Error::Protocol { .. }
        ));
    }
}
