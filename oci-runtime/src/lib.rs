//! The OCI runtime specification on Linux.
//!
//! This crate will hold the container lifecycle (create, start, state, kill, delete),
//! namespaces, mounts, `pivot_root`, cgroups, capabilities, rlimits, seccomp, hooks and
//! terminals, and a runc-compatible command line. It depends on none of the other ocikit crates.
//!
//! Status: the crate exists so the workspace has its final shape; its contents come with the
//! runtime issues.

pub use oci_spec;
