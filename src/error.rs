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
    /// Writing a bundle's or a recipe's files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
}
