//! Copies an image between locations, printing what it did with each blob.
//!
//! ```text
//! cargo run --example copy -- SRC DST [--all]
//! ```
//!
//! SRC and DST are `oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]`,
//! `docker-archive:FILE[:REPO:TAG]` or `docker://HOST/NAME[:TAG|@DIGEST]`; `--all` copies
//! every image of a multi-platform index. Registries are reached as skopeo reaches them
//! (registries.conf, `certs.d`, the auth files). The `ocikit copy` command does the same with
//! skopeo's flags (credentials, TLS, signatures, recompression, progress).

use std::process::ExitCode;

use ocikit::copy::{BlobAction, CopyOptions, Location, copy};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (src, dst, all) = match args.as_slice() {
        [src, dst] => (src, dst, false),
        [src, dst, flag] if flag == "--all" => (src, dst, true),
        _ => return Err("usage: copy SRC DST [--all]".into()),
    };
    let (src, dst): (Location, Location) = (src.parse()?, dst.parse()?);
    let report = copy(&src, &dst, &CopyOptions::new().all(all))?;
    for blob in &report.blobs {
        let d = &blob.descriptor;
        println!(
            "{:<8} {} {:>12} {}",
            blob.action.to_string(),
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
        .filter(|b| b.action == BlobAction::Copied)
        .count();
    println!(
        "copied {copied} of {} blobs ({} bytes) from {src} to {dst}",
        report.blobs.len(),
        report.bytes_copied()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("copy: {}", ocikit::ErrorChain(&*e));
            ExitCode::FAILURE
        }
    }
}
