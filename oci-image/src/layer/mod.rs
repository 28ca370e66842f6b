//! Layers: building a layer from a directory (or the difference of two) and applying a layer's
//! tar stream to a root filesystem.
//!
//! See [`build_layer`], [`build_diff_layer`] and [`apply_layer`] (and its Security section).

mod apply;
mod build;
mod pgzip;
mod root;

pub use apply::{
    ApplyOptions, ApplyReport, Devices, IdMap, IdRange, MAX_PATH_DEPTH, Ownership, apply_layer,
};
pub use build::{BuildOptions, BuiltLayer, build_diff_layer, build_layer};
