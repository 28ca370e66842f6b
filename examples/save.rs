//! Saves an image to an archive file, like `docker save` or `skopeo copy SRC docker-archive:`.
//!
//! ```text
//! cargo run --release --example save -- SRC FILE [--oci] [--name NAME]
//! ```
//!
//! Writes a `docker save` archive (`docker load` and `skopeo` read it), or with `--oci` an OCI
//! archive (a tar of an image layout). NAME is `REPO:TAG` for docker archives, a reference
//! name for OCI ones.

use std::process::ExitCode;

use ocikit::copy::{CopyOptions, Location, copy};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut positional, mut oci, mut name) = (Vec::new(), false, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--oci" => oci = true,
            "--name" => name = Some(args.next().ok_or("--name needs a value")?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(arg),
        }
    }
    let [src, file] = positional.as_slice() else {
        return Err("usage: save SRC FILE [--oci] [--name NAME]".into());
    };
    let transport = if oci { "oci-archive" } else { "docker-archive" };
    let suffix = name.map(|n| format!(":{n}")).unwrap_or_default();
    let dst: Location = format!("{transport}:{file}{suffix}").parse()?;
    let report = copy(&src.parse()?, &dst, &CopyOptions::new())?;
    println!(
        "saved {} ({} blobs, {} bytes) to {dst}",
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
            eprintln!("save: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
