//! Unpacks an image into a bundle's root filesystem, verifying every layer twice as it
//! streams (compressed digest, then diff_id), like `umoci unpack --image SRC BUNDLE`.
//!
//! ```text
//! cargo run --release --example unpack -- SRC BUNDLE_DIR [--platform OS/ARCH[/VARIANT]]
//! ```
//!
//! SRC is any location the `copy` recipe takes (`oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]`,
//! `docker-archive:FILE[:REPO:TAG]`, `docker://REF`). The layers go to `BUNDLE_DIR/rootfs`,
//! which must be empty or missing.

use std::process::ExitCode;

use ocikit::copy::{Location, open_source};
use ocikit::image::{ApplyOptions, host_platform, parse_platform, platform_to_string};
use ocikit::unpack::unpack_image;

const USAGE: &str = "usage: unpack SRC BUNDLE_DIR [--platform OS/ARCH[/VARIANT]]";

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut platform = host_platform();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--platform" => {
                platform = parse_platform(&args.next().ok_or("--platform needs a value")?)?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(arg),
        }
    }
    let [src, bundle] = positional.as_slice() else {
        return Err(USAGE.into());
    };
    let location: Location = src.parse()?;
    let source = open_source(&location, &platform)?;
    let rootfs = std::path::Path::new(bundle).join("rootfs");
    let started = std::time::Instant::now();
    let report = unpack_image(
        source.source(),
        &source.reference(),
        &platform,
        &rootfs,
        &ApplyOptions::new(),
    )?;
    for (layer, applied) in &report.layers {
        println!(
            "layer {} {:>12} bytes -> diff_id {} ({} entries, {} files, {} whiteouts)",
            layer.digest(),
            layer.size(),
            applied.diff_id,
            applied.entries,
            applied.files,
            applied.whiteouts
        );
    }
    println!(
        "unpacked {} ({}, {} layers) into {} in {:.2?}",
        report.manifest.digest(),
        platform_to_string(&report.config.platform()),
        report.layers.len(),
        rootfs.display(),
        started.elapsed()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unpack: {e}");
            ExitCode::FAILURE
        }
    }
}
