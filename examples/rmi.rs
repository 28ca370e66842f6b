//! Removes images from the image store, like `podman rmi`: each name (or every name of a
//! digest), then the layers and blobs no other image or container uses. An image a container
//! uses is refused.
//!
//! ```text
//! cargo run --release --example rmi -- [--store DIR] NAME|DIGEST...
//! ```

use std::process::ExitCode;

use ocikit::store::Store;

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut root = Store::default_root();
    if args.first().map(String::as_str) == Some("--store") && args.len() > 1 {
        root = args[1].clone().into();
        args.drain(..2);
    }
    if args.is_empty() {
        return Err("usage: rmi [--store DIR] NAME|DIGEST...".into());
    }
    let store = Store::open(root)?;
    for reference in &args {
        let freed = store.remove_image(reference)?;
        println!(
            "removed {reference}: {} snapshots and {} blobs, {} bytes freed",
            freed.snapshots.len(),
            freed.blobs,
            freed.bytes
        );
    }
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
