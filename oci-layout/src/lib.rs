//! The OCI image layout on disk.
//!
//! This crate will hold the [image layout](https://github.com/opencontainers/image-spec/blob/v1.1.1/image-layout.md)
//! (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) with verified atomic blob writes, tags, GC
//! and fsck, safe concurrent writers, OCI archives and `docker save` archives. It implements the
//! source and destination traits of [`oci_image`].
//!
//! Status: the crate exists so the workspace has its final shape; its contents come with the
//! layout issue.

pub use oci_image;
pub use oci_spec;
