#![doc = include_str!("../README.md")]
//!
//! # Crates
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`image`] | `ocikit-image` | digests, verifying streams, media types, manifests, platforms |
//! | [`layout`] | `ocikit-layout` | the OCI image layout on disk and archives |
//! | [`distribution`] | `ocikit-distribution` | the blocking registry client |
//! | [`runtime`] | `ocikit-runtime` | the runtime specification on Linux |
//!
//! [`copy`] composes them: one copy routine for every pair of places an image can live;
//! [`unpack`] makes a root filesystem of an image and [`build`] makes images of directories.
//! [`SystemContext`] says how registries are reached (registries.conf, `certs.d`, the system's
//! CA store, credentials), as skopeo's options do.
//! [`trust`] signs and verifies images and enforces `policy.json` on copy and pull.
//! [`run`] runs an image (unpacked, or from the [`store`]) with one [`run::RunOptions`];
//! a program that runs containers calls [`init_if_requested`] first thing in `main`.
//! Copy, build, unpack and the store's pull report to one [`progress`] observer.
//! Errors say their cause either in their message or through `source()`, never both:
//! [`ErrorChain`] prints an error with its causes.
//!
//! [`oci_spec`] is re-exported so that every crate and every user shares one set of spec types.

pub mod artifact;
pub mod build;
mod context;
pub mod convert;
pub mod copy;
mod error;
mod fsutil;
pub mod inspect;
pub mod inspect_fs;
pub mod progress;
mod recompress;
pub mod run;
pub mod store;
pub mod trust;
pub mod unpack;
pub mod working;

pub use context::SystemContext;
pub use error::{Error, ErrorChain};
pub use oci_spec;
pub use ocikit_distribution as distribution;
pub use ocikit_image as image;
pub use ocikit_layout as layout;
pub use ocikit_runtime as runtime;
/// Must be called first thing in `main` by a program that runs containers: see [`run`].
pub use ocikit_runtime::init_if_requested;
