//! Lists the images of the image store, like `podman images`: names, digest, creation time
//! and unpacked size.
//!
//! ```text
//! cargo run --example images -- [STORE]
//! ```
//!
//! STORE is root's `/var/lib/ocikit` (a user's `~/.local/share/ocikit`) unless given. See
//! also the `pull`, `rmi` and `prune` recipes; `ocikit images` adds `--format json`.

use std::process::ExitCode;

use ocikit::store::Store;

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = match args.as_slice() {
        [] => Store::default_root(),
        [root] => root.into(),
        _ => return Err("usage: images [STORE]".into()),
    };
    let store = Store::open(root)?;
    println!(
        "{:<40} {:<12} {:<22} {:>12}",
        "NAME", "DIGEST", "CREATED", "SIZE"
    );
    for image in store.images()? {
        let names = if image.names.is_empty() {
            vec!["<none>".to_owned()]
        } else {
            image.names.clone()
        };
        for name in names {
            println!(
                "{:<40} {:<12} {:<22} {:>12}",
                name,
                &image.digest.digest()[..12],
                image.created.as_deref().unwrap_or("-"),
                image.size
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("images: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
