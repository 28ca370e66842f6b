//! Unpacks an image into a bundle and runs it with `oci-runtime`, like `podman run` without
//! the daemon: pull (from any location the `copy` recipe takes), unpack, convert, run.
//!
//! ```text
//! cargo run --release --example run -- SRC [--store DIR | --bundle DIR] [--memory 512M]
//!     [--cpus 0.5] [--pids N] [--platform P] [--policy FILE] [--registries.d DIR] [-- CMD...]
//! ```
//!
//! `--policy` and `--registries.d` have skopeo's meaning: the image must satisfy the policy
//! before anything of it is unpacked or stored.
//!
//! Runs as root, or as a user with `/etc/subuid` and `/etc/subgid` ranges and `newuidmap`
//! (rootless, as podman: in a user namespace of the user's ids; state under
//! `$XDG_RUNTIME_DIR`, the store in the user's directory). With `--store`, the image is run from the image store
//! (pulled into it first when missing): the container gets an overlay root filesystem over
//! the stored layers, made in constant time, and removed with what it wrote when it exits,
//! like `podman run --rm`; SRC may then also be a name the store has. Without, the image is
//! unpacked into a bundle, in a temporary directory unless `--bundle` names one (which must
//! not exist yet, or be empty). The container's exit code becomes this program's, as with
//! `runc run`.

use std::process::ExitCode;

use ocikit::copy::{Location, open_source};
use ocikit::image::{host_platform, parse_platform};
use ocikit::run::{RunOptions, run_image, run_stored};
use ocikit::store::{PullOptions, Store, StoreError, default_name};
use ocikit::trust::{TrustOptions, check_opened};

const USAGE: &str = "usage: run SRC [--store DIR | --bundle DIR] [--memory SIZE] [--cpus N] \
[--pids N] [--platform P] [--policy FILE] [--registries.d DIR] [-- CMD...]";

/// `512M`, `1G`, `1048576`.
fn parse_size(s: &str) -> Result<i64, String> {
    let (digits, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: i64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("unknown size unit in {s:?}")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: f64 = digits.parse().map_err(|_| format!("bad size {s:?}"))?;
    Ok((n * mult as f64) as i64)
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut src = None;
    let mut bundle = None;
    let mut store = None;
    let mut platform = host_platform();
    // One set of options: limits, command, and where the container runs; unprivileged (or
    // root only in a user namespace), a configuration a user can run.
    let mut options = RunOptions::new().rootless(ocikit::runtime::is_rootless());
    let mut cmd = Vec::new();
    let mut trust = TrustOptions::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bundle" => bundle = Some(std::path::PathBuf::from(value()?)),
            "--store" => store = Some(std::path::PathBuf::from(value()?)),
            "--memory" => options = options.memory_limit(parse_size(&value()?)?),
            "--cpus" => {
                let cpus: f64 = value()?.parse().map_err(|_| "--cpus takes a number")?;
                options = options.cpu_quota((cpus * 100_000.0) as i64, 100_000);
            }
            "--pids" => options = options.pids_limit(value()?.parse()?),
            "--platform" => platform = parse_platform(&value()?)?,
            "--policy" => trust = trust.policy_path(value()?),
            "--registries.d" => trust = trust.registries_d(value()?),
            "--" => {
                cmd.extend(args.by_ref());
                break;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ if src.is_none() => src = Some(arg),
            _ => return Err(USAGE.into()),
        }
    }
    let src = src.ok_or(USAGE)?;
    if !cmd.is_empty() {
        options = options.command(cmd);
    }
    if let Some(store) = store {
        if bundle.is_some() {
            return Err("--store and --bundle exclude each other".into());
        }
        return run_from_store(&Store::open(store)?, &src, &platform, &options, trust);
    }
    let src: Location = src.parse()?;
    let temp;
    let bundle = match bundle {
        Some(b) => b,
        None => {
            temp = TempDir::new()?;
            temp.0.clone()
        }
    };
    let source = open_source(&src, &platform)?;
    check_opened(&src, &source, &trust)?;
    let (made, out) = run_image(source.source(), &source.image()?, &bundle, &options)?;
    eprintln!(
        "run: {} unpacked ({} layers) into {}",
        made.unpacked.manifest.digest(),
        made.unpacked.layers.len(),
        bundle.display()
    );
    eprintln!("run: container exited with {}", out.status.code());
    Ok(ExitCode::from(out.status.code().clamp(0, 255) as u8))
}

/// Runs `src` (a name or digest the store has, else a location to pull) from the store.
fn run_from_store(
    store: &Store,
    src: &str,
    platform: &ocikit::oci_spec::image::Platform,
    options: &RunOptions,
    trust: TrustOptions,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // A name the store has, or a location whose name it has: no pull ("missing" policy).
    let location: Option<Location> = src.parse().ok();
    let stored_name = match &location {
        Some(l) => default_name(l)?.map(|n| n.to_string()),
        None => None,
    };
    let found = store.image(stored_name.as_deref().unwrap_or(src));
    let image = match (found, location) {
        (Ok(image), _) => image,
        (Err(ocikit::Error::Store(StoreError::ImageNotFound { .. })), Some(location)) => {
            let options = PullOptions::new().platform(platform.clone()).trust(trust);
            let pulled = store.pull(&location, &options)?;
            eprintln!(
                "run: pulled {} into {}",
                pulled.manifest.digest(),
                store.root().display()
            );
            store.image(pulled.manifest.digest().as_ref())?
        }
        (Err(e), _) => return Err(e.into()),
    };
    let id = format!("ocikit-run-{}", std::process::id());
    let digest = image.manifest.digest().to_string();
    // The container's root filesystem is removed with it.
    let out = run_stored(store, &digest, &options.clone().id(id))?;
    eprintln!("run: container exited with {}", out.status.code());
    Ok(ExitCode::from(out.status.code().clamp(0, 255) as u8))
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let base = std::env::temp_dir();
        for n in 0..1000u32 {
            let p = base.join(format!("ocikit-run-{}-{n}", std::process::id()));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free temporary directory name"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> ExitCode {
    // The runtime re-executes this program as each container's init.
    ocikit::init_if_requested();
    // Unprivileged: root in a user namespace of this user's ids (itself, then its
    // /etc/subuid and /etc/subgid ranges), as podman does, so that layers keep their owners
    // and overlay mounts can be made. Before any thread starts.
    if let Err(e) = ocikit::runtime::enter_user_namespace() {
        eprintln!("run: {e}");
        return ExitCode::from(125);
    }
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("run: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::from(125)
        }
    }
}
