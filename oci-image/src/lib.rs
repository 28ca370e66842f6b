//! The OCI image vocabulary: digests, verifying streams, media types, manifests, indexes and
//! configs with their raw bytes kept, platforms, and the source and destination traits that
//! every place an image can live implements.
//!
//! All spec types come from [`oci_spec`], re-exported here; this crate adds what computes,
//! verifies and validates them.
//!
//! # Features
//! - [`Hasher`], [`sha256`], [`digest_reader`]: sha256 and sha512 over bytes and streams.
//! - [`VerifyingReader`]: a stream checked against a digest and size, failing at EOF.
//! - [`DigestingReader`], [`DigestingWriter`]: digest and size of what passes through.
//!
//! # Non-goals
//! - No network access, no filesystem layout: those are `oci-distribution` and `oci-layout`.
//!
//! # Security
//! Content is untrusted until verified: a [`VerifyingReader`] passes bytes through as they
//! come, and only its `Ok(0)` at EOF says they matched.

mod digest;
mod error;
mod verify;

pub use digest::{Hasher, check_supported, digest_bytes, digest_reader, parse_digest, sha256};
pub use error::{DocumentKind, Error, Result};
pub use oci_spec;
pub use verify::{DigestingReader, DigestingWriter, VerifyingReader};
