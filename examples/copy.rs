//! Copies an image between locations, printing what it did with each blob, as `skopeo copy`
//! does.
//!
//! ```text
//! cargo run --example copy -- SRC DST
//! ```
//!
//! SRC and DST are `oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]`,
//! `docker-archive:FILE[:REPO:TAG]` or `docker://HOST/NAME[:TAG|@DIGEST]`; of a
//! multi-platform index, the host's image is copied. Registries are reached as skopeo reaches
//! them (registries.conf, `certs.d`, the auth files). Blobs the destination has are skipped.
//! The `ocikit copy` command does the same with skopeo's flags (`--all`, credentials, TLS,
//! signatures, recompression, progress).

use std::process::ExitCode;

use ocikit::copy::{BlobAction, CopyOptions, Location, copy};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst] = args.as_slice() else {
        return Err("usage: copy SRC DST".into());
    };
    let (src, dst): (Location, Location) = (src.parse()?, dst.parse()?);
    let report = copy(&src, &dst, &CopyOptions::new())?;
    for blob in &report.blobs {
        let d = &blob.descriptor;
        let action = blob.action.to_string();
        println!(
            "{action:<8} {} {:>12} {}",
            d.digest(),
            d.size(),
            d.media_type()
        );
    }
    for m in &report.manifests {
        println!(
            "manifest {} {:>12} {}",
            m.digest(),
            m.size(),
            m.media_type()
        );
    }
    let copied = report
        .blobs
        .iter()
        .filter(|b| b.action == BlobAction::Copied);
    let (copied, all) = (copied.count(), report.blobs.len());
    println!(
        "copied {copied} of {all} blobs ({} bytes) from {src} to {dst}",
        report.bytes_copied()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("copy: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
