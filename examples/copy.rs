//! Copies an image between layouts and archives, printing each blob it copied or skipped.
//!
//! ```text
//! cargo run --release --example copy -- SRC DST [--platform OS/ARCH[/VARIANT] | --all]
//!     [--policy FILE] [--registries.d DIR] [--remove-signatures]
//!     [--sign-by KEY.asc] [--sign-by-sigstore-private-key KEY]
//! ```
//!
//! `--policy` and `--registries.d` have skopeo's meaning (the source image must satisfy the
//! policy; simple signatures are read and written where registries.d says). `--sign-by`
//! takes an exported OpenPGP secret key file, `--sign-by-sigstore-private-key` a cosign key;
//! their password comes from `OCIKIT_PASSWORD`.
//!
//! SRC and DST are `oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]`,
//! `docker-archive:FILE[:REPO:TAG]` or `docker://HOST/NAME[:TAG|@DIGEST]` (loopback registries
//! over plain HTTP). Digests are kept whenever the format allows (a docker archive stores no
//! manifest; Docker manifests written to `oci:`/`oci-archive:` become OCI ones); only the
//! blobs the destination lacks are copied.

use std::process::ExitCode;

use ocikit::copy::{CopyOptions, Location, copy};
use ocikit::image::parse_platform;

const USAGE: &str = "usage: copy SRC DST [--platform OS/ARCH[/VARIANT] | --all] [--policy FILE]
  [--registries.d DIR] [--remove-signatures] [--sign-by KEY] [--sign-by-sigstore-private-key KEY]
  SRC, DST: oci:DIR[:NAME] | oci-archive:FILE[:NAME] | docker-archive:FILE[:REPO:TAG]
            | docker://HOST/NAME[:TAG|@DIGEST]";

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut options = CopyOptions::new();
    let mut trust = ocikit::trust::TrustOptions::new();
    let password = || std::env::var("OCIKIT_PASSWORD").unwrap_or_default();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--policy" => trust = trust.policy_path(value()?),
            "--registries.d" => trust = trust.registries_d(value()?),
            "--remove-signatures" => trust = trust.remove_signatures(true),
            "--sign-by" => {
                let key = std::fs::read(value()?)?;
                trust = trust.sign_by(ocikit::trust::SimpleSigner::from_armored_or_binary(
                    &key,
                    &password(),
                )?);
            }
            "--sign-by-sigstore-private-key" => {
                let key = std::fs::read(value()?)?;
                trust =
                    trust.sign_by_sigstore(ocikit::trust::CosignPrivateKey::from_encrypted_pem(
                        &key,
                        password().as_bytes(),
                    )?);
            }
            "--platform" => options = options.platform(parse_platform(&value()?)?),
            "--all" => options = options.all(true),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(arg),
        }
    }
    let [src, dst] = positional.as_slice() else {
        return Err(USAGE.into());
    };
    let src: Location = src.parse()?;
    let dst: Location = dst.parse()?;
    options = options.trust(trust);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        // One line per blob, redrawn in place: digest, bar, bytes.
        options = options.progress(|p| {
            let width = 30;
            let filled = (p.done * width).checked_div(p.total).unwrap_or(width) as usize;
            let digest = p.descriptor.digest().digest();
            eprint!(
                "\r{} [{}{}] {:>12}/{:<12}",
                &digest[..12.min(digest.len())],
                "#".repeat(filled),
                " ".repeat(width as usize - filled),
                p.done,
                p.total
            );
            if p.done == p.total {
                eprintln!();
            }
        });
    }
    let report = copy(&src, &dst, &options)?;
    for blob in &report.blobs {
        println!(
            "{:<8} {} {:>12} {}",
            blob.action.to_string(),
            blob.descriptor.digest(),
            blob.descriptor.size(),
            blob.descriptor.media_type()
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
    println!(
        "copied {} of {} blobs ({} bytes) from {src} to {dst}",
        report
            .blobs
            .iter()
            .filter(|b| b.action == ocikit::copy::BlobAction::Copied)
            .count(),
        report.blobs.len(),
        report.bytes_copied()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("copy: {e}");
            ExitCode::FAILURE
        }
    }
}
