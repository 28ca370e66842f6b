//! The security suite: each test replays a published container escape (runc's, crun's,
//! youki's CVEs) or a known weak spot against `oci-runtime`, from inside a busybox container,
//! and checks that the host was not touched: fingerprints of host files and of the runtime
//! binary, host files absent, mount tables, `devices.list`, `/proc/<pid>/status` capability
//! masks, descriptor lists and state-directory permissions. runc (installed by
//! `scripts/test.sh`) is the reference where its behaviour is the one to match.
//!
//! Needs root (CI runs it as root). A test that needs a kernel feature the machine may lack
//! (`/proc/kcore`, `/proc/sysrq-trigger`, AppArmor) names it and is `#[ignore]`d, so it is
//! never counted as passing; run those with `--ignored` on a machine that has the feature.
//!
//! Every race is bounded (a few seconds), so the suite stays cheap enough for every CI run.

#[path = "../common/mod.rs"]
mod common;

mod binary;
mod capabilities;
mod descriptors;
mod devices;
mod kit;
mod mounts;
mod procfs;
mod state;
