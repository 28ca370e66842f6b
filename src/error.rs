//! The facade's one error type.

/// The facade's errors: each crate's own, kept whole, and the facade's own cases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A location string that is not one of the supported forms.
    #[error("invalid location {value:?}: {reason}")]
    InvalidLocation {
        /// The text given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An error of the image vocabulary or of a source or destination, through the traits.
    #[error(transparent)]
    Image(#[from] ocikit_image::Error),
    /// An error of a layout or archive, from its own API.
    #[error(transparent)]
    Layout(#[from] ocikit_layout::Error),
    /// An error of the registry client, from its own API.
    #[error(transparent)]
    Distribution(#[from] ocikit_distribution::Error),
    /// The image configuration could not become a runtime configuration.
    #[error(transparent)]
    Convert(#[from] crate::convert::ConvertError),
    /// An error of the image store of its own (the crates' errors keep their variants).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A signature policy refused an image, or signing or verifying failed.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// An error of the container runtime.
    #[error(transparent)]
    Runtime(#[from] ocikit_runtime::Error),
    /// A directory to build a layer of is missing, unreadable or not a directory (checked
    /// before anything is built or written).
    #[error("build directory {}", path.display())]
    BuildDirectory {
        /// The directory as given.
        path: std::path::PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing a bundle's or a recipe's files failed (the cause is the
    /// [`source`](std::error::Error::source)).
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
}

/// Shows an error followed by its causes (its [`source`](std::error::Error::source) chain),
/// `error: cause: cause of the cause`, on one line.
///
/// Every error of ocikit and of its crates either says its cause in its own message or
/// returns it from `source()`, never both, as the Rust API guidelines ask: printing the chain
/// (with this, or with `anyhow`'s `{:#}`) shows each cause once, and printing the error alone
/// (`{}`) shows only its own part.
///
/// ```
/// let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
/// let e = ocikit::Error::Io { path: "/x/config.json".into(), source: io };
/// assert_eq!(ocikit::ErrorChain(&e).to_string(), "/x/config.json: gone");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}
