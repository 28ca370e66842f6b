//! Signs an image with a new cosign key and verifies it under a policy that requires that
//! key, as `cosign generate-key-pair`, `cosign sign --key` and a `sigstoreSigned` policy do.
//!
//! ```text
//! OCIKIT_PASSWORD=... cargo run --example trust -- docker://HOST/NAME:TAG PREFIX
//! ```
//!
//! Writes PREFIX.key (encrypted with `OCIKIT_PASSWORD`) and PREFIX.pub. The `ocikit`
//! command does the same with any key and policy: `ocikit generate-key`, `ocikit sign`,
//! `ocikit verify`.

use std::process::ExitCode;

use ocikit::copy::{Location, open_destination, open_source};
use ocikit::image::host_platform;
use ocikit::trust::{CosignPrivateKey, DockerIdentity, Policy, TrustOptions};
use ocikit::trust::{check_opened, sign_cosign};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [image, prefix] = args.as_slice() else {
        return Err("usage: trust docker://HOST/NAME:TAG PREFIX".into());
    };
    let location: Location = image.parse()?;
    let Location::Docker { reference } = &location else {
        return Err("sign a registry image (docker://...)".into());
    };

    // A key pair, the private half encrypted as cosign encrypts it.
    let key = CosignPrivateKey::generate()?;
    let password = std::env::var("OCIKIT_PASSWORD").unwrap_or_default();
    std::fs::write(
        format!("{prefix}.key"),
        key.to_encrypted_pem(password.as_bytes())?,
    )?;
    std::fs::write(format!("{prefix}.pub"), key.public_key().to_pem())?;

    // Sign what the tag names now: a signature manifest stored next to the image.
    let digest = open_source(&location, &host_platform())?
        .top()
        .digest()
        .clone();
    let to = open_destination(&location)?;
    let identity = DockerIdentity::parse(reference)?;
    sign_cosign(&key, &identity, &digest, to.as_source(), to.destination())?;
    println!("signed {reference} ({digest})");

    // Verify under a policy that accepts only this key's signatures; registries.d tells the
    // verifier to look for cosign signatures on this registry.
    let policy =
        format!(r#"{{"default": [{{"type": "sigstoreSigned", "keyPath": "{prefix}.pub"}}]}}"#);
    let registries_d = tempfile::tempdir()?;
    let yaml = "default-docker:\n  use-sigstore-attachments: true\n";
    std::fs::write(registries_d.path().join("sigstore.yaml"), yaml)?;
    let trust = TrustOptions::new()
        .policy(Policy::from_slice(policy.as_bytes(), None)?)
        .registries_d(registries_d.path());
    check_opened(
        &location,
        &open_source(&location, &host_platform())?,
        &trust,
    )?;
    println!("verified {reference} against {prefix}.pub");
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
