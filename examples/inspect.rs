//! Inspects an image without pulling its layers, like `skopeo inspect`.
//!
//! ```text
//! cargo run --release --example inspect -- REF [--raw | --config] [--platform P]
//! ```
//!
//! REF is `docker://HOST/NAME[:TAG|@DIGEST]` (a bare `HOST/NAME:TAG` is taken as one), or any
//! location the `copy` recipe takes. Without options it prints skopeo's JSON: name, digest,
//! tags, created, architecture, os, labels, layers and environment of the image for the
//! platform (the host's by default). `--raw` prints the manifest (or index) bytes exactly as
//! stored; `--config` the configuration blob of the image for the platform. Credentials come
//! from the docker and containers auth files; loopback registries are reached over plain
//! HTTP.

use std::io::Write;
use std::process::ExitCode;

use ocikit::copy::Location;
use ocikit::image::{host_platform, parse_platform};
use ocikit::inspect::inspect;

const USAGE: &str = "usage: inspect REF [--raw | --config] [--platform OS/ARCH[/VARIANT]]";

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut reference, mut raw, mut config, mut platform) = (None, false, false, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--raw" => raw = true,
            "--config" => config = true,
            "--platform" => {
                platform = Some(parse_platform(
                    &args.next().ok_or("--platform needs a value")?,
                )?)
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if arg.starts_with("--") => {
                return Err(format!("unknown option {arg}\n{USAGE}").into());
            }
            _ if reference.is_none() => reference = Some(arg),
            _ => return Err(USAGE.into()),
        }
    }
    if raw && config {
        return Err("--raw and --config exclude each other".into());
    }
    let text = reference.ok_or(USAGE)?;
    let location: Location = if text.contains(':')
        && text
            .split(':')
            .next()
            .is_some_and(|t| ["docker", "oci", "oci-archive", "docker-archive"].contains(&t))
    {
        text.parse()?
    } else {
        format!("docker://{text}").parse()?
    };
    let got = inspect(&location, &platform.unwrap_or_else(host_platform))?;
    let mut out = std::io::stdout().lock();
    if raw {
        out.write_all(got.top.raw())?;
    } else if config {
        out.write_all(got.config.raw())?;
    } else {
        serde_json::to_writer_pretty(&mut out, &got.inspection)?;
        writeln!(out)?;
    }
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
