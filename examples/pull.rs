//! Pulls an image into the image store, like `podman pull`: each layer fetched once,
//! verified, and unpacked once into its snapshot as it is stored; layers the store has are
//! skipped.
//!
//! ```text
//! cargo run --example pull -- SRC [STORE]
//! ```
//!
//! SRC is any location the `copy` recipe takes (`docker://REF`, `oci:DIR[:NAME]`, archives);
//! STORE is root's `/var/lib/ocikit` (a user's `~/.local/share/ocikit`) unless given.
//! `skopeo inspect oci:STORE/layout:NAME` reads what it holds. `ocikit pull` adds podman's
//! flags (platform, credentials, policy) and a progress display.

use std::process::ExitCode;

use ocikit::copy::Location;
use ocikit::store::{PullOptions, Store};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (src, root) = match args.as_slice() {
        [src] => (src, Store::default_root()),
        [src, root] => (src, root.into()),
        _ => return Err("usage: pull SRC [STORE]".into()),
    };
    let src: Location = src.parse()?;
    let store = Store::open(root)?;
    let pulled = store.pull(&src, &PullOptions::new())?;
    for layer in &pulled.layers {
        let what = match (layer.fetched, layer.unpacked) {
            (true, true) => "fetched and unpacked",
            (true, false) => "fetched (already unpacked)",
            (false, true) => "unpacked (blob already stored)",
            (false, false) => "already stored",
        };
        println!("layer {}: {what}", layer.descriptor.digest());
    }
    let name = pulled
        .name
        .map_or("(no name)".to_owned(), |n| n.to_string());
    println!("pulled {} as {name}", pulled.manifest.digest());
    Ok(())
}

fn main() -> ExitCode {
    // For a user, the store's files keep the image's owners in a user namespace of the
    // user's ids, entered while the program has one thread (its id mapper is this program
    // run again: init_if_requested first).
    ocikit::init_if_requested();
    if let Err(e) = ocikit::runtime::enter_user_namespace() {
        eprintln!("pull: {e}");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pull: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
