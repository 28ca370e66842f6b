//! Removes an image from the image store, like `podman rmi`: the name (or every name of a
//! digest), then the layers and blobs no other image or container uses. An image a container
//! uses is refused.
//!
//! ```text
//! cargo run --example rmi -- NAME|DIGEST [STORE]
//! ```
//!
//! STORE is root's `/var/lib/ocikit` (a user's `~/.local/share/ocikit`) unless given.

use std::process::ExitCode;

use ocikit::store::Store;

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (reference, root) = match args.as_slice() {
        [reference] => (reference, Store::default_root()),
        [reference, root] => (reference, root.into()),
        _ => return Err("usage: rmi NAME|DIGEST [STORE]".into()),
    };
    let store = Store::open(root)?;
    let freed = store.remove_image(reference)?;
    println!(
        "removed {reference}: {} snapshots and {} blobs, {} bytes freed",
        freed.snapshots.len(),
        freed.blobs,
        freed.bytes
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmi: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
