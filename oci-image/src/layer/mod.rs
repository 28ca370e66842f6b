//! Layers: applying a layer's tar stream to a root filesystem.
//!
//! See [`apply_layer`] and its Security section.

mod apply;
mod root;

pub use apply::{
    ApplyOptions, ApplyReport, Devices, IdMap, IdRange, MAX_PATH_DEPTH, Ownership, apply_layer,
};
