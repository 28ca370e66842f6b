//! Shared helpers of the facade's tests.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The address of the docker-registry `scripts/test.sh` starts (`OCIKIT_TEST_REGISTRY`);
/// unset is a failure, not a skip.
pub fn registry() -> String {
    std::env::var("OCIKIT_TEST_REGISTRY")
        .expect("OCIKIT_TEST_REGISTRY is not set: run the tests with `bash scripts/test.sh`")
}

/// The binary of example `name`, which scripts/test.sh builds (`cargo build --examples`)
/// before the tests. Missing is a failure, not a skip.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --examples` first, as `bash scripts/test.sh` does",
        path.display()
    );
    path
}

/// A binary of the workspace (`oci-runtime`), which `cargo build`/`cargo test --workspace`
/// put in the target directory. Missing is a failure, not a skip.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests with `bash scripts/test.sh`",
        path.display()
    );
    path
}

/// Runs `cmd`, failing the test with its stderr unless it succeeds; returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A tiny static userland: busybox from `busybox-static` and a few applet links.
pub fn busybox_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox"))
        .expect("/bin/busybox (busybox-static, installed by scripts/test.sh)");
    for applet in ["sh", "ls", "cat", "echo", "id", "true"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}
