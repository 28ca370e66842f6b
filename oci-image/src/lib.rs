//! The OCI image vocabulary: digests, verifying streams, media types, manifests, indexes and
//! configs with their raw bytes kept, platforms, and the source and destination traits that
//! every place an image can live implements.
//!
//! All spec types come from [`oci_spec`], re-exported here; this crate adds what computes,
//! verifies and validates them. The standard annotation keys are `oci_spec`'s
//! (`oci_spec::image::ANNOTATION_REF_NAME` and its siblings).
//!
//! # Features
//! - [`Hasher`], [`sha256`], [`digest_reader`]: sha256 and sha512 over bytes and streams.
//! - [`VerifyingReader`]: a stream checked against a digest and size, failing at EOF.
//! - [`DigestingReader`], [`DigestingWriter`]: digest and size of what passes through.
//! - [`MediaTypeExt`]: OCI and Docker schema 2 media types, classified and converted.
//! - [`Manifest`], [`Index`], [`Config`], [`AnyManifest`]: documents parsed and validated with
//!   their raw bytes kept, edited without losing unknown fields.
//! - [`parse_platform`], [`select_manifest`]: platforms normalised and matched.
//! - [`build_layer`], [`build_diff_layer`], [`build_overlay_layer`]: deterministic layers from
//!   directories, from the difference of two, or from an overlayfs upper directory, gzip
//!   compressed on every core.
//! - [`apply_layer`]: a layer applied to a rootfs, whiteouts and all, never escaping it; or
//!   written alone into an empty directory in overlayfs form ([`Whiteouts::Overlay`]), so a
//!   stack of such directories mounted as overlayfs layers shows the image.
//! - [`LayerReader`]: a layer's entries streamed (path, kind, mode, owner, size, link target,
//!   xattrs, content), whiteouts and opaque markers told, compression and diff_id checked;
//!   [`ImageFs`]: an image's layers merged into its final filesystem, in memory, without
//!   writing to disk.
//! - [`ImageSource`], [`ImageDestination`]: the traits every backend implements, with
//!   verification and platform selection provided.
//!
//! # Non-goals
//! - No network access and no layout on disk: those are `ocikit-distribution` and `ocikit-layout`.
//! - Docker schema 1 manifests are refused, not converted.
//!
//! # Security
//! Content is untrusted until verified: a [`VerifyingReader`] passes bytes through as they
//! come, and only its `Ok(0)` at EOF says they matched. Documents are read with a size cap
//! ([`DEFAULT_MAX_DOCUMENT_SIZE`]) before they are parsed.

/// The annotation keys the image-spec defines (`annotations.md`), re-exported from
/// `oci_spec` under short names, plus the Docker-compatible keys tools commonly read.
pub mod annotations {
    pub use oci_spec::image::{
        ANNOTATION_AUTHORS as AUTHORS, ANNOTATION_BASE_IMAGE_DIGEST as BASE_IMAGE_DIGEST,
        ANNOTATION_BASE_IMAGE_NAME as BASE_IMAGE_NAME, ANNOTATION_CREATED as CREATED,
        ANNOTATION_DESCRIPTION as DESCRIPTION, ANNOTATION_DOCUMENTATION as DOCUMENTATION,
        ANNOTATION_LICENSES as LICENSES, ANNOTATION_REF_NAME as REF_NAME,
        ANNOTATION_REVISION as REVISION, ANNOTATION_SOURCE as SOURCE, ANNOTATION_TITLE as TITLE,
        ANNOTATION_URL as URL, ANNOTATION_VENDOR as VENDOR, ANNOTATION_VERSION as VERSION,
    };
    /// The image name containerd records in an index entry (`docker.io/library/x:tag`), which
    /// `docker save` archives of Docker 25+ and `ctr export` write next to `REF_NAME`.
    pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
}

mod digest;
mod document;
mod error;
mod layer;
mod media_type;
mod platform;
mod reference;
mod transport;
mod verify;

pub use digest::{
    Hasher, check_supported, descriptor_of, descriptor_of_reader, digest_bytes, digest_reader,
    parse_digest, sha256,
};
pub use document::{
    AnyManifest, Config, DEFAULT_MAX_DOCUMENT_SIZE, Document, Index, Manifest, SpecDocument,
    read_capped, validate_descriptor,
};
pub use error::{DocumentKind, Error, Result};
pub use layer::{
    ApplyOptions, ApplyReport, BuildOptions, BuiltLayer, Devices, IdMap, IdRange, MAX_PATH_DEPTH,
    OverlayXattrs, Ownership, Whiteouts, apply_layer, build_diff_layer, build_layer,
    build_overlay_layer, compress_layer, open_in_root, read_in_root,
};
pub use layer::{
    Decompressed, EntryKind, EntryMeta, FsEntry, ImageFs, LayerEntries, LayerEntry, LayerReader,
    LayerSummary,
};
pub use media_type::{Compression, ContentKind, Format, MediaTypeExt, docker, is_valid_media_type};
pub use oci_spec;
pub use platform::{
    host_platform, normalize_platform, parse_platform, platform_matches, platform_score,
    platform_to_string, select_manifest,
};
pub use reference::{Tag, TagOrDigest};
pub use transport::{BlobReader, ImageDestination, ImageSource, MAX_INDEX_DEPTH, ResolvedImage};
pub use verify::{DigestingReader, DigestingWriter, VerifyingReader};
