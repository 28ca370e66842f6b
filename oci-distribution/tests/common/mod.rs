//! Helpers shared by the integration tests that talk to a real registry.
//!
//! Those tests need the docker-registry instance that `bash scripts/test.sh` starts on
//! 127.0.0.1 with a free port; the script exports its address as `OCIKIT_TEST_REGISTRY`.
//! A test that needs it fails (never skips) when the variable is absent.
//!
//! Use from a test file with `mod common;`.

#![allow(dead_code, unreachable_pub)]

/// The name of the variable `scripts/test.sh` exports.
pub const REGISTRY_ENV: &str = "OCIKIT_TEST_REGISTRY";

/// The `host:port` of the test registry (plain HTTP, no auth, deletes enabled).
///
/// # Panics
/// When `OCIKIT_TEST_REGISTRY` is unset or empty: these tests need the registry started by
/// `bash scripts/test.sh`.
pub fn registry_addr() -> String {
    match std::env::var(REGISTRY_ENV) {
        Ok(addr) if !addr.trim().is_empty() => addr.trim().to_owned(),
        _ => panic!(
            "{REGISTRY_ENV} is not set: this test needs the docker-registry started by the \
             project's test command. Run `bash scripts/test.sh` (optionally with `-p \
             oci-distribution`) instead of plain `cargo test`."
        ),
    }
}
