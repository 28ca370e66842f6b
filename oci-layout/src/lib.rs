//! The OCI image layout on disk.
//!
//! TODO crate docs.

mod error;
mod fsutil;
mod gc;
mod layout;
mod refname;

pub use error::{Error, Result};
pub use gc::{FsckReport, GcReport, Problem};
pub use layout::{LOCK_FILE, Layout, TEMP_DIR};
pub use oci_image;
pub use oci_spec;
pub use refname::RefName;
