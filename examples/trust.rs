//! Signs and verifies images: containers simple signing (OpenPGP) and cosign keys.
//!
//! ```text
//! cargo run --example trust -- generate-key PREFIX           # cosign: PREFIX.key, PREFIX.pub
//! cargo run --example trust -- sign IMAGE (--sign-by KEY.asc | --sigstore-key PREFIX.key)
//!     [--registries.d DIR]
//! cargo run --example trust -- verify IMAGE [--policy FILE] [--registries.d DIR]
//! ```
//!
//! IMAGE is `docker://HOST/NAME:TAG` (or any location the `copy` recipe takes, for
//! `verify`). Passwords come from `OCIKIT_PASSWORD` (cosign keys, as cosign's
//! `COSIGN_PASSWORD`; OpenPGP secret keys, empty for none). `--sign-by` takes an exported
//! OpenPGP secret key (`gpg --export-secret-keys --armor FPR`), not a gpg keyring
//! fingerprint: ocikit never calls gpg. OpenPGP keys are made with gpg; `generate-key`
//! makes cosign keys. Simple signatures go to the lookaside storage registries.d gives
//! (`lookaside-staging`, else `lookaside`), cosign signatures to the `sha256-<hex>.sig` tag.

use std::process::ExitCode;

use ocikit::copy::{Location, open_destination, open_source};
use ocikit::image::host_platform;
use ocikit::trust::{
    CosignPrivateKey, DockerIdentity, ImageIdentity, SimpleSigner, TrustOptions, check_opened,
    sign_cosign, sign_simple,
};

const USAGE: &str = "usage: trust generate-key PREFIX
       trust sign IMAGE (--sign-by KEY | --sigstore-key KEY) [--registries.d DIR]
       trust verify IMAGE [--policy FILE] [--registries.d DIR]";

fn password() -> Vec<u8> {
    std::env::var("OCIKIT_PASSWORD")
        .unwrap_or_default()
        .into_bytes()
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let command = args.next().ok_or(USAGE)?;
    let mut positional = Vec::new();
    let mut trust = TrustOptions::new();
    let mut sign_by = None;
    let mut sigstore_key = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--policy" => trust = trust.policy_path(value()?),
            "--registries.d" => trust = trust.registries_d(value()?),
            "--sign-by" => sign_by = Some(value()?),
            "--sigstore-key" => sigstore_key = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(arg),
        }
    }
    match (command.as_str(), positional.as_slice()) {
        ("generate-key", [prefix]) => {
            let key = CosignPrivateKey::generate()?;
            std::fs::write(format!("{prefix}.key"), key.to_encrypted_pem(&password())?)?;
            std::fs::write(format!("{prefix}.pub"), key.public_key().to_pem())?;
            println!("wrote {prefix}.key and {prefix}.pub");
        }
        ("sign", [image]) => {
            let location: Location = image.parse()?;
            let Location::Docker { reference } = &location else {
                return Err("sign takes a docker:// image".into());
            };
            let identity = DockerIdentity::parse(reference)?;
            let source = open_source(&location, &host_platform())?;
            let digest = source.top().digest().clone();
            match (sign_by, sigstore_key) {
                (Some(key), None) => {
                    let signer = SimpleSigner::from_armored_or_binary(
                        &std::fs::read(&key)?,
                        &String::from_utf8(password())?,
                    )?;
                    let url = sign_simple(&trust, &signer, &identity, &digest)?;
                    println!(
                        "signed {identity} ({digest}) by {}: {url}",
                        signer.fingerprint()
                    );
                }
                (None, Some(key)) => {
                    let key =
                        CosignPrivateKey::from_encrypted_pem(&std::fs::read(key)?, &password())?;
                    let destination = open_destination(&location)?;
                    let sig = sign_cosign(
                        &key,
                        &identity,
                        &digest,
                        destination.as_source(),
                        destination.destination(),
                    )?;
                    println!("signed {identity} ({digest}): {}", sig.digest());
                }
                _ => return Err("sign needs one of --sign-by and --sigstore-key".into()),
            }
        }
        ("verify", [image]) => {
            let location: Location = image.parse()?;
            let source = open_source(&location, &host_platform())?;
            let verdict = check_opened(&location, &source, &trust)?;
            let scope = verdict
                .scope
                .map(|s| s.to_string())
                .unwrap_or_else(|| "no policy".into());
            println!(
                "accepted {} ({}) by {scope}{}",
                ImageIdentity::of_location(&location)?,
                source.top().digest(),
                if verdict.signed_identities.is_empty() {
                    String::new()
                } else {
                    format!(", signed as {}", verdict.signed_identities.join(", "))
                }
            );
        }
        _ => return Err(USAGE.into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trust: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
