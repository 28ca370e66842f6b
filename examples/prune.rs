//! Frees what no image or container of the image store uses, like `podman image prune`:
//! snapshots, blobs, and what pulls that died left behind; then checks the whole store (every
//! blob against its digest, every snapshot complete).
//!
//! ```text
//! cargo run --example prune -- [STORE]
//! ```
//!
//! STORE is root's `/var/lib/ocikit` (a user's `~/.local/share/ocikit`) unless given. Exits
//! 1 when the check finds a problem, printing each (`ocikit prune --check` only checks).

use std::process::ExitCode;

use ocikit::store::Store;

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = match args.as_slice() {
        [] => Store::default_root(),
        [root] => root.into(),
        _ => return Err("usage: prune [STORE]".into()),
    };
    let store = Store::open(root)?;
    let freed = store.prune()?;
    println!(
        "pruned {} snapshots, {} blobs and {} temporaries: {} bytes freed",
        freed.snapshots.len(),
        freed.blobs,
        freed.temporaries,
        freed.bytes
    );
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
