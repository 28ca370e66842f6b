//! Inspects an image without pulling its layers, as `skopeo inspect` does: prints skopeo's
//! JSON (name, digest, tags, created, architecture, os, labels, layers, environment).
//!
//! ```text
//! cargo run --example inspect -- REF [OS/ARCH[/VARIANT]]
//! ```
//!
//! REF is a location (`docker://HOST/NAME[:TAG|@DIGEST]`, `oci:DIR:TAG`, `oci-archive:FILE`,
//! `docker-archive:FILE`); of a multi-platform image, the platform given (default: the
//! host's) is described. Registries are reached as skopeo reaches them (registries.conf,
//! `certs.d`, the auth files, the proxy variables). `ocikit inspect` also prints the
//! manifest as stored (`--raw`) or the configuration (`--config`).

use std::process::ExitCode;

use ocikit::copy::Location;
use ocikit::image::{host_platform, parse_platform};
use ocikit::inspect::inspect;

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (reference, platform) = match args.as_slice() {
        [reference] => (reference, host_platform()),
        [reference, platform] => (reference, parse_platform(platform)?),
        _ => return Err("usage: inspect REF [OS/ARCH[/VARIANT]]".into()),
    };
    let inspected = inspect(&reference.parse::<Location>()?, &platform)?;
    println!("{}", serde_json::to_string_pretty(&inspected.inspection)?);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inspect: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
