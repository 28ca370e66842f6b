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

/// A gpg home with one RSA key made by `gpg --batch --gen-key`; its fingerprint, and the
/// exported public key and secret key files.
pub struct GpgKey {
    pub home: tempfile::TempDir,
    pub fingerprint: String,
    pub public: PathBuf,
    pub secret: PathBuf,
}

impl GpgKey {
    pub fn new(name: &str) -> GpgKey {
        GpgKey::with_type(name, "Key-Type: RSA\nKey-Length: 2048")
    }

    /// gpg's default kind of key today: EdDSA on ed25519.
    pub fn ed25519(name: &str) -> GpgKey {
        GpgKey::with_type(name, "Key-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign")
    }

    pub fn with_type(name: &str, key_type: &str) -> GpgKey {
        let home = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        let params = home.path().join("params");
        std::fs::write(
            &params,
            format!(
                "{key_type}\nName-Real: {name}\nName-Email: {name}@ocikit.test\n\
                 Expire-Date: 0\n%no-protection\n%commit\n"
            ),
        )
        .unwrap();
        let gpg = |args: &[&str]| {
            run(Command::new("gpg")
                .env("GNUPGHOME", home.path())
                .args(["--batch", "--quiet"])
                .args(args))
        };
        gpg(&["--gen-key", params.to_str().unwrap()]);
        let listing = gpg(&["--with-colons", "--list-secret-keys"]);
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_owned())
            .expect("a fingerprint");
        let public = home.path().join("public.asc");
        let secret = home.path().join("secret.asc");
        std::fs::write(&public, gpg(&["--armor", "--export", &fingerprint])).unwrap();
        std::fs::write(
            &secret,
            gpg(&["--armor", "--export-secret-keys", &fingerprint]),
        )
        .unwrap();
        GpgKey {
            home,
            fingerprint,
            public,
            secret,
        }
    }
}

impl Drop for GpgKey {
    fn drop(&mut self) {
        // The agent gpg started for this home.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// A docker-registry of the test's own (deletes enabled), with the configuration's extra
/// lines (auth, TLS), killed on drop.
pub struct OwnRegistry {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn own_registry(extra_yaml: &str) -> OwnRegistry {
    use std::net::{TcpListener, TcpStream};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n  secret: test-not-a-secret\n{extra_yaml}",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (installed by scripts/test.sh)");
    let registry = OwnRegistry {
        child,
        addr,
        _dir: dir,
    };
    for _ in 0..100 {
        if TcpStream::connect(&registry.addr).is_ok() {
            return registry;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("docker-registry did not start on {}", registry.addr);
}
