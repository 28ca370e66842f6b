//! Loads an archive file into a layout or a registry, as `docker load` does: the archive's
//! form (`docker save`, either layout of it, or an OCI archive) is found from its content.
//!
//! ```text
//! cargo run --example load -- FILE DST
//! ```
//!
//! DST is a location (`oci:DIR:TAG`, `docker://HOST/NAME:TAG`...). Of an archive holding
//! several images, name the one to load: `ocikit copy docker-archive:FILE:REPO:TAG DST`.

use std::process::ExitCode;

use ocikit::copy::{CopyOptions, Location, copy};
use ocikit::layout::{DockerArchive, OciArchive};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, dst] = args.as_slice() else {
        return Err("usage: load FILE DST".into());
    };
    // A docker archive has manifest.json (Docker 25+ ones are OCI layouts too; reading them
    // as docker archives keeps their RepoTags); anything else must be an OCI archive.
    let src: Location = if DockerArchive::open(file).is_ok() {
        format!("docker-archive:{file}").parse()?
    } else {
        OciArchive::open(file)?;
        format!("oci-archive:{file}").parse()?
    };
    let report = copy(&src, &dst.parse()?, &CopyOptions::new())?;
    let (digest, blobs) = (report.top.digest(), report.blobs.len());
    println!(
        "loaded {digest} from {src} ({blobs} blobs, {} bytes)",
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
