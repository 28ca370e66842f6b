//! The OCI image layout on disk.
//!
//! TODO crate docs.

mod docker_archive;
mod error;
mod fsutil;
mod gc;
mod layout;
mod oci_archive;
mod refname;
mod tarfile;

pub use docker_archive::{DockerArchive, DockerArchiveWriter, DockerImage};
pub use error::{Error, Result};
pub use gc::{FsckReport, GcReport, Problem};
pub use layout::{LOCK_FILE, Layout, TEMP_DIR};
pub use oci_archive::{OciArchive, OciArchiveWriter};
pub use oci_image;
pub use oci_spec;
pub use refname::RefName;
pub use tarfile::Section;
