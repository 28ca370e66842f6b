//! Frees what no image or container of the image store uses, like `podman image prune`:
//! snapshots, blobs, and what pulls that died left behind; then checks the whole store (every
//! blob against its digest, every snapshot complete). `--check` only checks.
//!
//! ```text
//! cargo run --release --example prune -- [--store DIR] [--check]
//! ```
//!
//! Exits 1 when the check finds a problem, printing each.

use std::process::ExitCode;

use ocikit::store::Store;

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut root = Store::default_root();
    let mut check_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => root = args.next().ok_or("--store needs a value")?.into(),
            "--check" => check_only = true,
            _ => return Err("usage: prune [--store DIR] [--check]".into()),
        }
    }
    let store = Store::open(root)?;
    if !check_only {
        let freed = store.prune()?;
        println!(
            "pruned {} snapshots, {} blobs and {} temporaries: {} bytes freed",
            freed.snapshots.len(),
            freed.blobs,
            freed.temporaries,
            freed.bytes
        );
    }
    let report = store.check()?;
    for (path, problem) in &report.problems {
        println!("{}: {problem}", path.display());
    }
    if !report.is_ok() {
        return Ok(ExitCode::FAILURE);
    }
    println!("the store is sound");
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("prune: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
