//! Loads an archive file into a layout or registry, like `docker load`: the archive's form
//! (`docker save`, either layout of it, or an OCI archive) is found from its content.
//!
//! ```text
//! cargo run --release --example load -- FILE DST [--name NAME]
//! ```
//!
//! NAME picks one image of a docker archive holding several (`REPO:TAG`) or a reference name
//! of an OCI archive; DST is any location the `copy` recipe takes.

use std::process::ExitCode;

use ocikit::copy::{CopyOptions, Location, copy};
use ocikit::layout::{DockerArchive, OciArchive};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut positional, mut name) = (Vec::new(), None::<String>);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--name" => name = Some(args.next().ok_or("--name needs a value")?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(arg),
        }
    }
    let [file, dst] = positional.as_slice() else {
        return Err("usage: load FILE DST [--name NAME]".into());
    };
    let suffix = name.as_ref().map(|n| format!(":{n}")).unwrap_or_default();
    // A docker archive has manifest.json (Docker 25+ ones are OCI layouts too; reading them
    // as docker archives keeps their RepoTags); anything else must be an OCI archive.
    let src: Location = if DockerArchive::open(file).is_ok() {
        format!("docker-archive:{file}{suffix}").parse()?
    } else {
        OciArchive::open(file)?;
        format!("oci-archive:{file}{suffix}").parse()?
    };
    let report = copy(&src, &dst.parse()?, &CopyOptions::new())?;
    println!(
        "loaded {} from {src} ({} blobs, {} bytes copied)",
        report.top.digest(),
        report.blobs.len(),
        report.bytes_copied()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
