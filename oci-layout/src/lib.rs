//! The OCI image layout on disk, OCI archives and `docker save` archives.
//!
//! A [`Layout`] is a directory as the
//! [image-layout spec](https://github.com/opencontainers/image-spec/blob/v1.1.1/image-layout.md)
//! gives it: `oci-layout`, `index.json`, and blobs under `blobs/<alg>/<encoded>`. An
//! [`OciArchive`] is a tar of one (what `skopeo copy ... oci-archive:` writes); a
//! [`DockerArchive`] is what `docker save` writes. Each implements
//! [`ImageSource`](ocikit_image::ImageSource), and [`Layout`], [`OciArchiveWriter`] and
//! [`DockerArchiveWriter`] implement [`ImageDestination`](ocikit_image::ImageDestination), so
//! one copy routine (the facade's `copy`) moves images between any two of them.
//!
//! ```
//! use ocikit_layout::{Layout, RefName};
//! use ocikit_layout::ocikit_image::{AnyManifest, Manifest, sha256};
//!
//! let dir = tempfile::tempdir()?;
//! let layout = Layout::create(dir.path())?;
//! let (config, size) = layout.write_blob(&b"{}"[..], Some(&sha256(b"{}")), Some(2))?;
//! let raw = format!(
//!     r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
//!         "config":{{"mediaType":"application/vnd.oci.image.config.v1+json",
//!                    "digest":"{config}","size":{size}}},"layers":[]}}"#
//! );
//! let manifest = AnyManifest::Manifest(Manifest::from_bytes(raw.into_bytes())?);
//! let descriptor = layout.put_manifest(&manifest)?;
//! layout.set_ref(&"v1".parse::<RefName>()?, &descriptor)?;
//! assert_eq!(layout.resolve_ref(&"v1".parse()?)?[0].digest(), manifest.digest());
//! assert!(layout.fsck()?.is_ok());
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! - Blobs written from a stream ([`Layout::write_blob`]): verified against the expected
//!   digest and size when given (sha256 or sha512), else hashed with sha256; written to a
//!   temporary file under [`TEMP_DIR`], fsynced, renamed into place, directory fsynced. A
//!   reader never sees a partial or wrong blob. Writing a blob that is there is a no-op.
//! - Blobs read as verifying streams ([`Layout::open_blob`]): the local disk is not trusted.
//! - Names (`org.opencontainers.image.ref.name` in `index.json`): [`Layout::set_ref`] (move),
//!   [`Layout::add_ref`] (several manifests per name, told apart by platform),
//!   [`Layout::remove_ref`], [`Layout::refs`], and resolution through nested indexes by
//!   platform ([`Layout::resolve_manifest`]).
//! - [`Layout::gc`]: marks from `index.json` through indexes, manifests, configs, layers and
//!   subjects; removes the rest and the temporary files of dead writers.
//! - [`Layout::fsck`]: every problem, not just the first ([`FsckReport`]).
//! - Archives read in place: one pass over the tar headers, then positioned reads of each
//!   entry ([`Section`]); nothing is unpacked. Archives written as streams: blobs go into the
//!   tar as they come, verified, and a blob that fails is cut off again; the archive appears
//!   at its path only when finished.
//! - OCI archives imported from a stream that cannot seek ([`Layout::import_oci_archive`]):
//!   each blob is verified and stored as it passes, nothing else is written.
//! - Docker archives in both forms, read and written: legacy (`<id>/layer.tar`, often
//!   symlinks to `<hex>.tar`, uncompressed; skopeo's `<hex>.tar`) and Docker 25+ (an OCI
//!   layout whose `blobs/sha256/<hex>` files the same `manifest.json` names), with
//!   `RepoTags` ([`DockerArchiveFormat`]).
//!
//! # Reference names
//! The image-layout grammar for `ref.name` ([`RefName`]) is wider than a distribution tag
//! ([`ocikit_image::Tag`]): `library/busybox:1.36` is a valid name, not a tag. This crate's own
//! API takes [`RefName`]; the destination trait's `tag` takes a [`Tag`](ocikit_image::Tag), which
//! is converted (a tag that breaks the layout grammar, like `_x` or `a__b`, is refused).
//! Through [`ImageSource::resolve`](ocikit_image::ImageSource::resolve), a name with several
//! entries (one per platform) resolves to the one for the host's platform, else the first;
//! use [`Layout::resolve_manifest`] to choose.
//!
//! # Concurrency
//! Every read-modify-write of `index.json`, and GC, holds an advisory `flock` on
//! [`LOCK_FILE`] inside the layout; `index.json` is replaced atomically (temporary file, fsync,
//! rename, directory fsync). Readers never take the lock and tools that do not know it
//! (skopeo, umoci) are not hindered by it; two processes of this crate writing into one
//! layout at once lose no name. Blob writers take no lock: content addressing makes
//! concurrent writes of one blob harmless. GC run while another process copies may remove
//! blobs that process stored but has not named yet, unless its `min_age` covers the copy.
//!
//! # Non-goals
//! - No layer unpacking or building (that is `ocikit-image`), no registry access (that is
//!   `ocikit-distribution`).
//! - Archives compressed as a whole (`.tar.gz`) are not read: decompress them first.
//! - A legacy docker archive stores no manifest: an image read from one gets a Docker
//!   schema 2 manifest made from `manifest.json`, whose digest no registry ever saw. Its
//!   config and layers are the archive's bytes. (Docker 25+ archives, which this crate writes
//!   by default, store the manifests, and those are used.)
//!
//! # Security
//! Layouts and archives are untrusted input. Every blob is verified against its digest and
//! size as it is read, including blobs on the local disk; documents (`index.json`,
//! manifests, configs, `manifest.json`) are read with a size cap (4 MiB by default) before
//! they are parsed. Archive entry names are normalised and names that climb out with `..` are
//! ignored; links inside an archive resolve only to entries of the same archive, never to the
//! file system. Blob paths are built from validated digests, whose characters cannot form
//! `/` or `..`. Nothing is ever written outside the layout directory, or outside the
//! archive's own temporary file.

mod docker_archive;
mod error;
mod fsutil;
mod gc;
mod layout;
mod oci_archive;
mod refname;
mod tarfile;

pub use docker_archive::{DockerArchive, DockerArchiveFormat, DockerArchiveWriter, DockerImage};
pub use error::{Error, Result};
pub use gc::{FsckReport, GcReport, Problem};
pub use layout::{BlobWriter, LOCK_FILE, Layout, TEMP_DIR};
pub use oci_archive::{OciArchive, OciArchiveWriter};
pub use oci_spec;
pub use ocikit_image;
pub use refname::RefName;
pub use tarfile::Section;
