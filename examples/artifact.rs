//! Attaches a file to an image as an OCI artifact (an SBOM, say) and lists the image's
//! referrers, as `oras attach` and `oras discover` do.
//!
//! ```text
//! cargo run --example artifact -- docker://HOST/NAME:TAG FILE [ARTIFACT_TYPE]
//! ```
//!
//! The artifact is a manifest whose `subject` is the image, with FILE as its one layer
//! (titled with the file's name) and ARTIFACT_TYPE as its `artifactType` (default:
//! `application/spdx+json`). Registries without the referrers API (docker-registry 2.8) get
//! the referrers tag as well. `ocikit artifact push|attach|list|fetch` do the rest.

use std::collections::HashMap;
use std::process::ExitCode;

use ocikit::artifact::push_artifact;
use ocikit::copy::{Location, open_source};
use ocikit::image::host_platform;

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (image, file, artifact_type) = match args.as_slice() {
        [image, file] => (image, file, "application/spdx+json"),
        [image, file, t] => (image, file, t.as_str()),
        _ => return Err("usage: artifact docker://HOST/NAME:TAG FILE [ARTIFACT_TYPE]".into()),
    };
    let source = open_source(&image.parse::<Location>()?, &host_platform())?;
    let repo = source
        .repository()
        .ok_or("attach to an image in a registry (docker://)")?;
    let subject = source.top();
    let layer_type = format!("{artifact_type}.layer");
    let no_annotations = HashMap::new();
    let attached = push_artifact(
        repo,
        file.as_ref(),
        artifact_type,
        &layer_type,
        Some(subject),
        &no_annotations,
        None,
    )?;
    println!("attached {} to {}", attached.digest(), subject.digest());
    for d in repo.referrers(subject.digest(), None)? {
        let t = d.artifact_type().as_ref().map(ToString::to_string);
        println!(
            "referrer {} {} {}",
            d.digest(),
            d.size(),
            t.unwrap_or_default()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("artifact: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
