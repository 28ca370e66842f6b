//! Runs an image's command from the image store, like `podman run --rm IMAGE`: the image is
//! pulled into the store when the store lacks it, the container gets an overlay root
//! filesystem over the stored layers (removed with what it wrote when it exits), and this
//! program exits with the container's status.
//!
//! ```text
//! cargo run --example run -- IMAGE [STORE]
//! ```
//!
//! IMAGE is a name the store has, or a location to pull (`docker://REF`, `oci:DIR:NAME`,
//! archives); STORE is root's `/var/lib/ocikit` (a user's `~/.local/share/ocikit`) unless
//! given. The `ocikit run` command adds podman's flags (limits, `-e`, `-u`, `-v`, ...).
//!
//! The rule for a program that runs containers: the runtime starts each container's init by
//! running the program again, so `main` calls `ocikit::init_if_requested()` first, before
//! any thread starts (and, for a user, enters its user namespace while it has one thread).

use std::process::ExitCode;

use ocikit::run::{RunOptions, run_stored};
use ocikit::store::{PullOptions, Store, StoreError};

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (image, root) = match args.as_slice() {
        [image] => (image, Store::default_root()),
        [image, root] => (image, root.into()),
        _ => return Err("usage: run IMAGE [STORE]".into()),
    };
    let store = Store::open(root)?;
    let digest = match store.image(image) {
        Ok(stored) => stored.manifest.digest().clone(),
        Err(ocikit::Error::Store(StoreError::ImageNotFound { .. })) => {
            let pulled = store.pull(&image.parse()?, &PullOptions::new())?;
            eprintln!("run: pulled {}", pulled.manifest.digest());
            pulled.manifest.digest().clone()
        }
        Err(e) => return Err(e.into()),
    };
    let options = RunOptions::new()
        .id(format!("recipe-run-{}", std::process::id()))
        .rootless(ocikit::runtime::is_rootless());
    let output = run_stored(&store, digest.as_ref(), &options)?;
    Ok(ExitCode::from(output.status.code().clamp(0, 255) as u8))
}

fn main() -> ExitCode {
    // In a container's init (this program run again) this runs the container: no return.
    ocikit::init_if_requested();
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
