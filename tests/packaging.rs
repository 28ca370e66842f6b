//! `scripts/package-check.sh`, the packaging step of `.ci/run`, pointed at small workspaces
//! made in a temporary directory: it must fail, naming the crate and the reason, when a
//! packaged crate's lock resolves a sibling from the registry, when the tree has a crate from
//! the registry named like one of ours, and when metadata is missing or a placeholder; and it
//! must pass on this workspace.
//!
//! These tests reach crates.io, as `cargo package` does: the failures they provoke are the
//! real ones, with the real `oci-image 0.1.0` that another project publishes there (the name
//! this project's image crate had before the rename). An offline registry standing in for
//! crates.io would test our picture of cargo's overlay instead of cargo itself. CI can reach
//! crates.io (it fetches the index for every build). Each run packages into its own target
//! directory, never this workspace's `target/` (which the running `cargo test` holds).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The checksum crates.io's `oci-image 0.1.0` (not ours) has in a Cargo.lock.
const FOREIGN_OCI_IMAGE_CHECKSUM: &str =
    "00eefe00f97aea360cd2379e369389073d78b8c4070af1072b11ed7ebde96e03";

/// Metadata that satisfies the check, for a fixture crate that should not fail on it.
const GOOD_METADATA: &str = r#"edition = "2024"
description = "A fixture of the ocikit packaging test."
license = "Apache-2.0"
readme = "README.md"
keywords = ["fixture"]
categories = ["development-tools::testing"]

[package.metadata.docs.rs]
all-features = true
"#;

/// Writes `files` (relative path, contents) under `root`.
fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

/// Runs the check on the workspace at `manifest_dir` with `extra` arguments, packaging into
/// `target_dir`.
fn package_check(manifest_dir: &Path, target_dir: &Path, extra: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package-check.sh");
    Command::new("bash")
        .arg(script)
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .args(extra)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .unwrap()
}

/// The `package-check: CRATE: REASON` lines of a run's stderr.
fn failures(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("package-check: "))
        .map(str::to_owned)
        .collect()
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A workspace whose member `oci-image 0.1.0` (a name crates.io already has, for someone
/// else's crate) is not published, and a member that depends on it by path and version.
/// `cargo package --workspace` packages both, but only publishable crates go into the local
/// overlay, so the dependent's packaged lock pins crates.io's `oci-image 0.1.0`, and cargo
/// itself exits 0: exactly the failure a published crate would carry to its users.
#[test]
fn a_sibling_resolved_from_the_registry_fails_and_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let manifest = format!(
        r#"[package]
name = "fixture-layout"
version = "0.1.0"
{GOOD_METADATA}
[dependencies]
oci-image = {{ path = "../oci-image", version = "0.1.0" }}
"#
    );
    write_tree(
        &ws,
        &[
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"oci-image\", \"layout\"]\nresolver = \"3\"\n",
            ),
            (
                "oci-image/Cargo.toml",
                "[package]\nname = \"oci-image\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
                 publish = false\n",
            ),
            ("oci-image/src/lib.rs", "//! Ours.\n"),
            ("layout/Cargo.toml", &manifest),
            ("layout/README.md", "# fixture-layout\n"),
            ("layout/src/lib.rs", "//! Uses ours.\n"),
        ],
    );
    // Verification is left on, as in CI: the script skips it once the locks have failed.
    let out = package_check(&ws, &tmp.path().join("target"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let failures = failures(&out);
    assert_eq!(failures.len(), 1, "{}", describe(&out));
    let line = &failures[0];
    assert!(
        line.starts_with(
            "package-check: fixture-layout: Cargo.lock resolves sibling oci-image 0.1.0 from \
             registry+https://github.com/rust-lang/crates.io-index, not from this workspace"
        ),
        "{line}"
    );
    assert!(
        line.contains(&format!("checksum {FOREIGN_OCI_IMAGE_CHECKSUM}")),
        "{line}"
    );
    // The tarball's own lock is what the message is about.
    let lock = lock_of(&tmp.path().join("target/package/fixture-layout-0.1.0.crate"));
    assert!(lock.contains(FOREIGN_OCI_IMAGE_CHECKSUM), "{lock}");
}

/// The Cargo.lock inside a `.crate` tarball, read with `tar`.
fn lock_of(crate_file: &Path) -> String {
    let name = crate_file.file_stem().unwrap().to_str().unwrap();
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(crate_file)
        .arg(format!("{name}/Cargo.lock"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A workspace member that depends on crates.io's `oci-image` (one of our former names) by
/// version only: the tree and the packaged lock both have a crate named like ours that is
/// not ours.
#[test]
fn a_crate_named_like_ours_from_the_registry_fails_the_tree_check() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let manifest = format!(
        r#"[package]
name = "fixture-user"
version = "0.1.0"
{GOOD_METADATA}
[workspace]

[dependencies]
oci-image = "=0.1.0"
"#
    );
    write_tree(
        &ws,
        &[
            ("Cargo.toml", &manifest),
            ("README.md", "# fixture-user\n"),
            ("src/lib.rs", "//! Uses theirs.\n"),
        ],
    );
    let out = package_check(&ws, &tmp.path().join("target"), &["--no-verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let failures = failures(&out);
    assert!(
        failures.iter().any(|l| l
            == "package-check: workspace: `cargo tree` has oci-image v0.1.0 from crates.io, \
                not from this workspace"),
        "{}",
        describe(&out)
    );
    assert!(
        failures.iter().any(|l| l.starts_with(
            "package-check: fixture-user: Cargo.lock has oci-image 0.1.0 from \
             registry+https://github.com/rust-lang/crates.io-index, a crate named like one of ours"
        )),
        "{}",
        describe(&out)
    );
    assert_eq!(failures.len(), 2, "{}", describe(&out));
}

/// Missing metadata, a placeholder URL and a publishable crate outside the workspace are each
/// named with their crate (or manifest) and reason.
#[test]
fn missing_metadata_and_placeholders_fail_and_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    write_tree(
        &ws,
        &[
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"bare\"]\nexclude = [\"fuzz\"]\nresolver = \"3\"\n",
            ),
            (
                "bare/Cargo.toml",
                "[package]\nname = \"fixture-bare\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
                 license = \"Apache-2.0\"\nrepository = \"https://example.invalid/fixture\"\n\
                 keywords = [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\"]\n\
                 categories = [\"containers\"]\n",
            ),
            ("bare/src/lib.rs", "//! Bare.\n"),
            (
                "fuzz/Cargo.toml",
                "[package]\nname = \"fixture-fuzz\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
                 [workspace]\n",
            ),
            ("fuzz/src/lib.rs", ""),
        ],
    );
    let out = package_check(&ws, &tmp.path().join("target"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let mut got = failures(&out);
    got.sort();
    let mut want = vec![
        "package-check: bare/Cargo.toml: line 6: placeholder host example.invalid: leave out a \
         field that has no true value",
        "package-check: fixture-bare: no `description` in bare/Cargo.toml",
        "package-check: fixture-bare: no `readme`",
        "package-check: fixture-bare: 6 keywords: crates.io takes at most 5",
        "package-check: fixture-bare: category 'containers' is not a crates.io category slug",
        "package-check: fixture-bare: no `[package.metadata.docs.rs]`",
        "package-check: fuzz/Cargo.toml: a package outside the workspace must say \
         `publish = false`",
        "package-check: fixture-bare: the packaged Cargo.toml names no readme",
    ];
    want.sort();
    assert_eq!(got, want, "{}", describe(&out));
}

/// This workspace passes every check but the build from the tarballs (which `.ci/run` runs
/// itself, against the warm target directory), and all six crates are packaged.
#[test]
fn this_workspace_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = package_check(&root, tmp.path(), &["--no-verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(failures(&out), Vec::<String>::new());
    for name in [
        "ocikit",
        "ocikit-image",
        "ocikit-layout",
        "ocikit-distribution",
        "ocikit-runtime",
        "ocikit-cli",
    ] {
        let lock = lock_of(&tmp.path().join(format!("package/{name}-0.1.0.crate")));
        assert!(lock.contains(&format!("name = \"{name}\"")), "{lock}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "6 crates packaged (ocikit, ocikit-distribution, ocikit-image, ocikit-layout, \
             ocikit-runtime, ocikit-cli)"
        ),
        "{stderr}"
    );
}

/// Packaging the same version again after its code changed builds the new code: cargo keeps
/// the siblings it unpacked for verification under `$CARGO_HOME/registry/src` and would build
/// the earlier ones (a method the dependent now calls would be missing), so the check removes
/// the members' old unpacks first.
#[test]
fn a_second_packaging_of_the_same_version_builds_the_new_code() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let base = format!("ocikit-fixture-base-{}", std::process::id());
    let user = format!("ocikit-fixture-user-{}", std::process::id());
    let base_ident = base.replace('-', "_");
    let manifests = |base_lib: &str, user_lib: &str| {
        write_tree(
            &ws,
            &[
                (
                    "Cargo.toml",
                    "[workspace]\nmembers = [\"base\", \"user\"]\nresolver = \"3\"\n",
                ),
                (
                    "base/Cargo.toml",
                    &format!("[package]\nname = \"{base}\"\nversion = \"0.1.0\"\n{GOOD_METADATA}"),
                ),
                ("base/README.md", "# base\n"),
                ("base/src/lib.rs", base_lib),
                (
                    "user/Cargo.toml",
                    &format!(
                        "[package]\nname = \"{user}\"\nversion = \"0.1.0\"\n{GOOD_METADATA}\n\
                         [dependencies]\n{base} = {{ path = \"../base\", version = \"0.1.0\" }}\n"
                    ),
                ),
                ("user/README.md", "# user\n"),
                ("user/src/lib.rs", user_lib),
            ],
        )
    };
    let target = tmp.path().join("target");
    manifests(
        "//! Base.\n/// One.\npub fn one() -> u32 { 1 }\n",
        &format!("//! User.\n/// One.\npub fn get() -> u32 {{ {base_ident}::one() }}\n"),
    );
    let first = package_check(&ws, &target, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", describe(&first));
    manifests(
        "//! Base.\n/// One.\npub fn one() -> u32 { 1 }\n/// Two.\npub fn two() -> u32 { 2 }\n",
        &format!("//! User.\n/// Two.\npub fn get() -> u32 {{ {base_ident}::two() }}\n"),
    );
    let second = package_check(&ws, &target, &[]);
    assert_eq!(second.status.code(), Some(0), "{}", describe(&second));
    // What the check unpacked for this test goes with it.
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    for registry in std::fs::read_dir(home.join("registry/src")).unwrap() {
        for name in [&base, &user] {
            let _ = std::fs::remove_dir_all(
                registry
                    .as_ref()
                    .unwrap()
                    .path()
                    .join(format!("{name}-0.1.0")),
            );
        }
    }
}
