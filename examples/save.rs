//! Saves an image to a `docker save` archive, as `docker save` or
//! `skopeo copy SRC docker-archive:FILE` do (`docker load` and skopeo read it back).
//!
//! ```text
//! cargo run --example save -- SRC FILE [REPO:TAG]
//! ```
//!
//! SRC is a location (`oci:DIR:TAG`, `docker://REF`...); REPO:TAG names the image in the
//! archive, for `docker load`. An OCI archive (a tar of an image layout) is a copy too:
//! `ocikit copy SRC oci-archive:FILE:NAME`.

use std::process::ExitCode;

use ocikit::copy::{CopyOptions, Location, copy};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (src, dst) = match args.as_slice() {
        [src, file] => (src, format!("docker-archive:{file}")),
        [src, file, name] => (src, format!("docker-archive:{file}:{name}")),
        _ => return Err("usage: save SRC FILE [REPO:TAG]".into()),
    };
    let dst: Location = dst.parse()?;
    let report = copy(&src.parse()?, &dst, &CopyOptions::new())?;
    let (digest, blobs) = (report.top.digest(), report.blobs.len());
    println!(
        "saved {digest} ({blobs} blobs, {} bytes) to {dst}",
        report.bytes_copied()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("save: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
