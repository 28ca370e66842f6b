//! Builds an image from directories: each `--layer DIR` becomes a layer on top of the base
//! (or of nothing, with `--from scratch`), and the config gets the settings given, like
//! `umoci repack` plus `umoci config`, or a `FROM`/`COPY`/`ENTRYPOINT` Dockerfile.
//!
//! ```text
//! cargo run --release --example build -- --from SRC|scratch --layer DIR [--layer DIR ...]
//!     [--entrypoint ARG ...] [--cmd ARG ...] [--env K=V ...] [--workdir P]
//!     [--platform OS/ARCH[/VARIANT]] [--diff BASE CHANGED] [--annotation K=V ...] DST
//! ```
//!
//! `--entrypoint` and `--cmd` may be repeated: each adds one argument (`--entrypoint /bin/sh
//! --entrypoint -c`). `--diff BASE CHANGED` adds a layer of what changed between two trees
//! (whiteouts for deletions), as `umoci repack` does. SRC and DST are any locations the `copy` recipe takes. Layers are gzip,
//! built on every core; `SOURCE_DATE_EPOCH` clamps file times and sets `created`.

use std::process::ExitCode;

use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::{Location, open_destination, open_source};
use ocikit::image::{AnyManifest, BuildOptions, host_platform, parse_platform};

const USAGE: &str = "usage: build --from SRC|scratch --layer DIR [--layer DIR ...] \
[--entrypoint ARG ...] [--cmd ARG ...] [--env K=V ...] [--workdir P] [--platform P] DST";

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut spec = BuildSpec::new().layer_options(BuildOptions::new().source_date_epoch_from_env());
    let mut from = None;
    let mut dst = None;
    let mut platform = host_platform();
    let (mut entrypoint, mut cmd) = (Vec::new(), Vec::new());
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--from" => from = Some(value()?),
            "--layer" => spec = spec.layer(value()?),
            "--diff" => {
                let base = value()?;
                spec = spec.diff_layer(base, value()?);
            }
            "--annotation" => {
                let kv = value()?;
                let (k, v) = kv.split_once('=').ok_or("--annotation takes KEY=VALUE")?;
                spec = spec.annotation(k, v);
            }
            "--entrypoint" => entrypoint.push(value()?),
            "--cmd" => cmd.push(value()?),
            "--env" => spec = spec.env(value()?),
            "--workdir" => spec = spec.workdir(value()?),
            "--platform" => platform = parse_platform(&value()?)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ if dst.is_none() => dst = Some(arg),
            _ => return Err(USAGE.into()),
        }
    }
    let (Some(from), Some(dst)) = (from, dst) else {
        return Err(USAGE.into());
    };
    if !entrypoint.is_empty() {
        spec = spec.entrypoint(entrypoint);
    }
    if !cmd.is_empty() {
        spec = spec.cmd(cmd);
    }
    spec = spec.platform(platform.clone());
    let destination = open_destination(&dst.parse::<Location>()?)?;
    let base = match from.as_str() {
        "scratch" => None,
        src => Some(open_source(&src.parse::<Location>()?, &platform)?),
    };
    let base_ref = base.as_ref().map(|b| b.reference());
    let started = std::time::Instant::now();
    let report = build_image(
        base.as_ref()
            .map(|b| b.source() as &dyn ocikit::image::ImageSource)
            .zip(base_ref.as_ref()),
        destination.destination(),
        None,
        &spec,
    )?;
    destination.name(&AnyManifest::Manifest(report.manifest.clone()))?;
    destination.finish()?;
    for layer in &report.layers {
        println!(
            "layer {} {:>12} bytes, diff_id {} ({} entries)",
            layer.descriptor.digest(),
            layer.descriptor.size(),
            layer.diff_id,
            layer.entries
        );
    }
    println!(
        "built {} ({} layers, config {}) into {dst} in {:.2?}",
        report.manifest.digest(),
        report.manifest.layers().len(),
        report.config.digest(),
        started.elapsed()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("build: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
