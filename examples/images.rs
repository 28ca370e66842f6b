//! Lists, removes and prunes the images of the image store, like `podman images`, `podman rmi`
//! and `podman image prune`, and checks the store (every blob's digest, every snapshot).
//!
//! ```text
//! cargo run --release --example images -- [--store DIR]            # list
//! cargo run --release --example images -- [--store DIR] rmi NAME|DIGEST...
//! cargo run --release --example images -- [--store DIR] prune
//! cargo run --release --example images -- [--store DIR] check
//! ```

use std::process::ExitCode;

use ocikit::store::Store;

const USAGE: &str = "usage: images [--store DIR] [rmi NAME|DIGEST... | prune | check]";

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

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let mut root = Store::default_root();
    if args.peek().map(String::as_str) == Some("--store") {
        args.next();
        root = args.next().ok_or("--store needs a value")?.into();
    }
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let store = Store::open(root)?;
    match command.as_deref() {
        None => {
            println!(
                "{:<50} {:<19} {:<22} {:>12}",
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
                        "{:<50} {:<19} {:<22} {:>12}",
                        name,
                        &image.digest.digest()[..12],
                        image.created.as_deref().unwrap_or("-"),
                        human(image.size)
                    );
                }
            }
        }
        Some("rmi") if !rest.is_empty() => {
            for reference in &rest {
                let report = store.remove_image(reference)?;
                println!(
                    "removed {reference}: {} snapshots, {} blobs, {} freed",
                    report.snapshots.len(),
                    report.blobs,
                    human(report.bytes)
                );
            }
        }
        Some("prune") if rest.is_empty() => {
            let report = store.prune()?;
            println!(
                "pruned {} snapshots, {} blobs and {} temporaries: {} freed",
                report.snapshots.len(),
                report.blobs,
                report.temporaries,
                human(report.bytes)
            );
        }
        Some("check") if rest.is_empty() => {
            let report = store.check()?;
            for (path, problem) in &report.problems {
                println!("{}: {problem}", path.display());
            }
            if !report.is_ok() {
                return Ok(ExitCode::FAILURE);
            }
            println!("the store is sound");
        }
        Some("-h" | "--help") => println!("{USAGE}"),
        _ => return Err(USAGE.into()),
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("images: {e}");
            ExitCode::FAILURE
        }
    }
}
