//! Lists the images of the image store, like `podman images`: names, digest, creation time
//! and unpacked size.
//!
//! ```text
//! cargo run --release --example images -- [--store DIR]
//! ```
//!
//! See also the `rmi` and `prune` recipes; `pull` fills the store.

use std::process::ExitCode;

use ocikit::store::Store;

/// Sizes as podman prints them (decimal units).
fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.3} {}", units[unit])
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = match args.as_slice() {
        [] => Store::default_root(),
        [flag, dir] if flag == "--store" => dir.into(),
        _ => return Err("usage: images [--store DIR]".into()),
    };
    let store = Store::open(root)?;
    println!(
        "{:<50} {:<12} {:<22} {:>12}",
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
                "{:<50} {:<12} {:<22} {:>12}",
                name,
                &image.digest.digest()[..12],
                image.created.as_deref().unwrap_or("-"),
                human(image.size)
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
