//! Helpers of the ocikit-distribution integration tests: images made of random bytes, and
//! extra docker-registry instances (with auth) started and stopped by the test itself.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ocikit_distribution::oci_spec::image::{Descriptor, MediaType};
use ocikit_distribution::ocikit_image::{AnyManifest, Index, Manifest, sha256};
use ocikit_distribution::{Client, Repository, RetryPolicy};

/// A client for the tests: quick retries, no auth files of the machine.
/// The example program `name` of the `ocikit` package, built by `scripts/test.sh` (`cargo
/// build --examples`) before the tests; the test fails, saying so, when it was not built.
pub fn example_binary(name: &str) -> PathBuf {
    let bin = profile_dir().join("examples").join(name);
    assert!(
        bin.exists(),
        "examples/{name} is not built: run `cargo build --examples`, as scripts/test.sh does"
    );
    bin
}

/// The `ocikit` command (package `ocikit-cli`), which `cargo test --workspace` builds before
/// the tests run; the test fails, saying so, when it was not built.
pub fn ocikit_binary() -> PathBuf {
    let bin = profile_dir().join("ocikit");
    assert!(
        bin.exists(),
        "{} is not built: run the tests with `bash scripts/test.sh` (cargo test --workspace)",
        bin.display()
    );
    bin
}

/// `target/debug` (or `release`), under `CARGO_TARGET_DIR` when set.
fn profile_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    target.join(profile)
}

pub fn client() -> Client {
    Client::builder()
        .retry(RetryPolicy::new(
            3,
            Duration::from_millis(20),
            Duration::from_millis(200),
        ))
        .auth_files(Vec::new())
        .build()
        .expect("client")
}

/// A repository name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    format!(
        "ocikit-test/{prefix}-{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A reader of `len` pseudo-random bytes from `seed` (xorshift: fast, reproducible).
pub struct RandomReader {
    state: u64,
    left: u64,
}

impl RandomReader {
    pub fn new(seed: u64, len: u64) -> Self {
        RandomReader {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            left: len,
        }
    }
}

impl Read for RandomReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            let b = self.state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The descriptor of `RandomReader::new(seed, len)`.
pub fn random_descriptor(seed: u64, len: u64, media_type: MediaType) -> Descriptor {
    let (digest, size) = ocikit_distribution::ocikit_image::digest_reader(
        &ocikit_distribution::oci_spec::image::DigestAlgorithm::Sha256,
        RandomReader::new(seed, len),
    )
    .unwrap();
    Descriptor::new(media_type, size, digest)
}

/// Pushes an image of random layers of the given sizes for `arch`; returns its manifest.
pub fn push_image(repo: &Repository, arch: &str, seed: u64, layer_sizes: &[u64]) -> Manifest {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, &len) in layer_sizes.iter().enumerate() {
        let s = seed * 1000 + i as u64;
        let d = random_descriptor(s, len, MediaType::ImageLayerGzip);
        repo.push_blob(&d, &mut RandomReader::new(s, len)).unwrap();
        diff_ids.push(d.digest().to_string());
        layers.push(d);
    }
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/usr/bin", format!("SEED={seed}")]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cd = Descriptor::new(MediaType::ImageConfig, config.len() as u64, sha256(&config));
    repo.push_blob_bytes(&cd, &config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cd,
        "layers": layers,
    });
    Manifest::from_bytes(serde_json::to_vec(&manifest).unwrap()).unwrap()
}

/// An index of `manifests`, with platform `linux/<arch>` each.
pub fn index_of(manifests: &[(&Manifest, &str)]) -> Index {
    let entries: Vec<serde_json::Value> = manifests
        .iter()
        .map(|(m, arch)| {
            let mut d = serde_json::to_value(m.descriptor()).unwrap();
            d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
            d
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    Index::from_bytes(serde_json::to_vec(&index).unwrap()).unwrap()
}

pub fn any(m: &Manifest) -> AnyManifest {
    AnyManifest::Manifest(m.clone())
}

/// A port nothing listens on now.
/// Writes `bytes` as a blob of the layout at `dir` by hand (no ocikit-layout code), creating
/// `blobs/sha256` as needed; returns its descriptor, of `media_type`.
pub fn write_blob(dir: &Path, bytes: &[u8], media_type: MediaType) -> Descriptor {
    let digest = sha256(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(digest.digest()), bytes).unwrap();
    Descriptor::new(media_type, bytes.len() as u64, digest)
}

/// Finishes by hand an OCI layout at `dir` whose `layers` are already written (with
/// [`write_blob`]): writes `config` with its `rootfs` set to `diff_ids`, the manifest,
/// `index.json` naming it `name`, and `oci-layout`. What a peer reads then is not what our
/// layout code wrote. Returns the manifest.
pub fn write_image_by_hand(
    dir: &Path,
    layers: Vec<Descriptor>,
    diff_ids: Vec<String>,
    mut config: serde_json::Value,
    name: &str,
) -> Manifest {
    config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
    let config = serde_json::to_vec(&config).unwrap();
    let config = write_blob(dir, &config, MediaType::ImageConfig);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": layers,
    });
    let manifest = Manifest::from_bytes(serde_json::to_vec(&manifest).unwrap()).unwrap();
    write_blob(dir, manifest.raw(), MediaType::ImageManifest);
    let mut entry = serde_json::to_value(manifest.descriptor()).unwrap();
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [entry]}).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A docker-registry started by a test, stopped (and its storage removed) on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// The process id of the registry (benchmarks read its CPU time).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `docker-registry serve` with `auth_yaml` (an `auth:` section, or empty) on a
    /// free 127.0.0.1 port and waits until it answers.
    pub fn start(auth_yaml: &str, prepare: impl FnOnce(&Path)) -> Registry {
        Self::start_in(&std::env::temp_dir(), auth_yaml, prepare)
    }

    /// Like [`Registry::start`], with its storage under `parent`.
    pub fn start_in(parent: &Path, auth_yaml: &str, prepare: impl FnOnce(&Path)) -> Registry {
        let dir = tempfile::tempdir_in(parent).unwrap();
        prepare(dir.path());
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: test-not-a-secret\n{auth_yaml}",
                dir.path().join("data").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry must be installed (scripts/test.sh installs it)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(&addr).is_ok() {
                    // Someone else's server on a port we lost the race for would answer
                    // too: ours must still be running.
                    std::thread::sleep(Duration::from_millis(100));
                    if let Ok(None) = child.try_wait() {
                        return Registry { child, addr, dir };
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("could not start docker-registry; log:\n{log}");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` with its stdout piped and waits for the first line it prints (a server's
/// address, say); returns the child, still running, and that line.
pub fn spawn_until_first_line(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Our own registry (`ocikit_distribution::RegistryServer`) on a free loopback port, with its
/// storage in a temporary directory; stopped on drop.
pub struct Served {
    pub addr: String,
    pub handle: Option<ocikit_distribution::ServerHandle>,
    pub dir: tempfile::TempDir,
}

impl Served {
    pub fn start() -> Served {
        Self::start_with(|s| s)
    }

    /// Starts a server configured by `configure`.
    pub fn start_with(
        configure: impl FnOnce(
            ocikit_distribution::RegistryServer,
        ) -> ocikit_distribution::RegistryServer,
    ) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let handle = configure(ocikit_distribution::RegistryServer::new(dir.path()))
            .bind("127.0.0.1:0")
            .expect("bind a loopback port");
        Served {
            addr: handle.addr().to_string(),
            handle: Some(handle),
            dir,
        }
    }

    /// The layout of repository `name`.
    pub fn layout_dir(&self, name: &str) -> PathBuf {
        self.dir
            .path()
            .join("repositories")
            .join(name)
            .join("_layout")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
    }
}
