//! Builds one layer from a directory onto a base image (or onto nothing) and edits the
//! configuration, as `umoci repack` plus `umoci config` (or a `FROM`, `COPY`, `ENV`
//! Dockerfile) do.
//!
//! ```text
//! cargo run --example build -- DIR DST [BASE]
//! ```
//!
//! DIR's tree becomes a gzip layer on top of BASE's layers (default: `scratch`, no base);
//! the configuration keeps BASE's settings and gains `BUILT_BY=ocikit`. BASE and DST are
//! locations (`oci:DIR:TAG`, `oci-archive:FILE`, `docker-archive:FILE`, `docker://REF`).
//! `SOURCE_DATE_EPOCH` clamps file times and sets `created`. The `ocikit build` command does
//! the same with any number of layers, diffs and configuration edits.

use std::process::ExitCode;

use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::{Location, open_destination, open_source};
use ocikit::image::{AnyManifest, BuildOptions, ImageSource, host_platform};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, dst, base) = match args.as_slice() {
        [dir, dst] => (dir, dst, "scratch"),
        [dir, dst, base] => (dir, dst, base.as_str()),
        _ => return Err("usage: build DIR DST [BASE|scratch]".into()),
    };
    let spec = BuildSpec::new()
        .layer_options(BuildOptions::new().source_date_epoch_from_env())
        .layer(dir)
        .env("BUILT_BY=ocikit");
    let base = match base {
        "scratch" => None,
        base => Some(open_source(&base.parse::<Location>()?, &host_platform())?),
    };
    let base_ref = base.as_ref().map(|b| b.reference());
    let destination = open_destination(&dst.parse::<Location>()?)?;
    let built = build_image(
        base.as_ref()
            .map(|b| b.source() as &dyn ImageSource)
            .zip(base_ref.as_ref()),
        destination.destination(),
        None,
        &spec,
    )?;
    // Tag what was built (the name DST gives), then commit (archives are written here).
    destination.name(&AnyManifest::Manifest(built.manifest.clone()))?;
    destination.finish()?;
    for layer in &built.layers {
        let d = &layer.descriptor;
        let (digest, size, entries) = (d.digest(), d.size(), layer.entries);
        println!("layer {digest} {size} bytes ({entries} entries)");
    }
    let layers = built.manifest.layers().len();
    println!(
        "built {} ({layers} layers) into {dst}",
        built.manifest.digest()
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
