//! A blocking client for OCI registries (distribution-spec v1.1).
//!
//! This crate will hold references, authentication (anonymous tokens, basic, bearer, docker
//! `config.json` and credential helpers), pull, push (monolithic, chunked, cross-repository
//! mount), tags, referrers, deletion, retries and resumable downloads, on a blocking HTTP client.
//! It implements the source and destination traits of [`oci_image`].
//!
//! Status: the crate exists so the workspace has its final shape; its contents come with the
//! registry-client issue.

pub use oci_image;
pub use oci_spec;
