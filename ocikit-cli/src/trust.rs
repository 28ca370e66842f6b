//! Trust: `sign` (a simple signature, as `skopeo standalone-sign` plus the upload `skopeo
//! copy --sign-by` does, or a cosign signature), `verify` (an image against the signature
//! policy, as `skopeo copy`/`podman pull` would before accepting it) and `generate-key`
//! (a cosign key pair, as `cosign generate-key-pair`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ocikit::copy::{Location, open_destination_with, open_source_with};
use ocikit::image::host_platform;
use ocikit::trust::{
    CosignPrivateKey, DockerIdentity, ImageIdentity, SimpleSigner, TrustOptions, check_opened,
    sign_cosign, sign_simple,
};

use crate::failure::Failure;
use crate::registry::{RegistryFlags, TrustFlags, location};

/// The passphrase of a key: the file given, else `$OCIKIT_PASSWORD`, else `$COSIGN_PASSWORD`
/// (cosign's), else asked for on a terminal, else empty.
pub(crate) fn passphrase(file: &Option<PathBuf>, confirm: bool) -> Result<String, Failure> {
    if let Some(f) = file {
        return std::fs::read_to_string(f)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| Failure::io(format!("reading {}", f.display()), e));
    }
    for var in ["OCIKIT_PASSWORD", "COSIGN_PASSWORD"] {
        if let Ok(v) = std::env::var(var) {
            return Ok(v);
        }
    }
    if !std::io::stdin().is_terminal() {
        return Ok(String::new());
    }
    let first = rpassword::prompt_password("Passphrase for the key: ")
        .map_err(|e| Failure::io("reading the passphrase", e))?;
    if confirm {
        let again = rpassword::prompt_password("Again: ")
            .map_err(|e| Failure::io("reading the passphrase", e))?;
        if again != first {
            return Err(Failure::Usage("the passphrases differ".into()));
        }
    }
    Ok(first)
}

/// The bytes of a key file.
pub(crate) fn read(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::io(format!("reading {}", path.display()), e))
}

/// Sign an image in a registry: a simple signature (OpenPGP) stored where registries.d
/// says, or a cosign signature stored next to the image.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit sign --sign-by signer.asc docker://registry.example/app:1\n  \
    ocikit sign --sign-by-sigstore-private-key cosign.key docker://registry.example/app:1\n\n\
    --sign-by takes an exported OpenPGP secret key (gpg --export-secret-keys --armor ID).")]
pub(crate) struct SignArgs {
    /// The image: docker://HOST/NAME:TAG.
    image: String,
    /// Sign with this OpenPGP secret key file (a simple signature).
    #[arg(
        long,
        value_name = "KEY",
        required_unless_present = "sign_by_sigstore_private_key"
    )]
    sign_by: Option<PathBuf>,
    /// Sign with this cosign private key.
    #[arg(long, value_name = "KEY", conflicts_with = "sign_by")]
    sign_by_sigstore_private_key: Option<PathBuf>,
    /// The file holding the key's passphrase (default: $OCIKIT_PASSWORD, $COSIGN_PASSWORD).
    #[arg(long, value_name = "FILE")]
    sign_passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    trust: TrustFlags,
}

/// `--sign-by KEY`'s signer (an OpenPGP secret key, armored or binary).
pub(crate) fn simple_signer(
    key: &PathBuf,
    passphrase_file: &Option<PathBuf>,
) -> Result<SimpleSigner, Failure> {
    Ok(SimpleSigner::from_armored_or_binary(
        &read(key)?,
        &passphrase(passphrase_file, false)?,
    )?)
}

/// `--sign-by-sigstore-private-key KEY`'s key (cosign's encrypted PEM).
pub(crate) fn cosign_key(
    key: &PathBuf,
    passphrase_file: &Option<PathBuf>,
) -> Result<CosignPrivateKey, Failure> {
    Ok(CosignPrivateKey::from_encrypted_pem(
        &read(key)?,
        passphrase(passphrase_file, false)?.as_bytes(),
    )?)
}

/// What a copy does with signatures: skopeo's `--remove-signatures`, `--sign-by` and
/// `--sign-by-sigstore-private-key` (those of `copy` and `work push`).
#[derive(Args, Debug)]
pub(crate) struct SigningFlags {
    /// Do not copy signatures.
    #[arg(long)]
    remove_signatures: bool,
    /// Sign with this OpenPGP secret key (an exported key file).
    #[arg(long, value_name = "KEY")]
    sign_by: Option<PathBuf>,
    /// Sign with this cosign private key.
    #[arg(long, value_name = "KEY")]
    sign_by_sigstore_private_key: Option<PathBuf>,
    /// The file holding the signing key's passphrase (default: $OCIKIT_PASSWORD,
    /// $COSIGN_PASSWORD, asked on a terminal).
    #[arg(long, value_name = "FILE")]
    sign_passphrase_file: Option<PathBuf>,
}

impl SigningFlags {
    /// `trust` with these flags: signatures removed, signers added.
    pub(crate) fn apply(&self, mut trust: TrustOptions) -> Result<TrustOptions, Failure> {
        trust = trust.remove_signatures(self.remove_signatures);
        if let Some(key) = &self.sign_by {
            trust = trust.sign_by(simple_signer(key, &self.sign_passphrase_file)?);
        }
        if let Some(key) = &self.sign_by_sigstore_private_key {
            trust = trust.sign_by_sigstore(cosign_key(key, &self.sign_passphrase_file)?);
        }
        Ok(trust)
    }
}

pub(crate) fn sign(a: SignArgs) -> Result<ExitCode, Failure> {
    let location = location(&a.image)?;
    let Location::Docker { reference } = &location else {
        return Err(Failure::Usage(format!(
            "sign works on registry images (docker://HOST/NAME:TAG), not {location}"
        )));
    };
    let identity = DockerIdentity::parse(reference)?;
    let context = a.registry.context();
    let source = open_source_with(&location, &host_platform(), &context)?;
    let digest = source.top().digest().clone();
    if let Some(key) = &a.sign_by {
        let signer = simple_signer(key, &a.sign_passphrase_file)?;
        let url = sign_simple(&a.trust.options(), &signer, &identity, &digest)?;
        println!("{url}");
    } else if let Some(key) = &a.sign_by_sigstore_private_key {
        let key = cosign_key(key, &a.sign_passphrase_file)?;
        let destination = open_destination_with(&location, &context)?;
        let signature = sign_cosign(
            &key,
            &identity,
            &digest,
            destination.as_source(),
            destination.destination(),
        )?;
        println!("{}", signature.digest());
    }
    Ok(ExitCode::SUCCESS)
}

/// Check an image against the signature policy, as a copy or pull would.
#[derive(Args)]
#[command(after_help = "Example:\n  \
    ocikit verify --policy policy.json --registries.d registries.d \
    docker://registry.example/app:1\n\n\
    Exit code 6 when the policy refuses the image.")]
pub(crate) struct VerifyArgs {
    /// The image: any location.
    image: String,
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    trust: TrustFlags,
}

pub(crate) fn verify(a: VerifyArgs) -> Result<ExitCode, Failure> {
    let location = location(&a.image)?;
    let source = open_source_with(&location, &host_platform(), &a.registry.context())?;
    let verdict = check_opened(&location, &source, &a.trust.options())?;
    let identity = ImageIdentity::of_location(&location)?;
    let by = verdict
        .scope
        .map(|s| format!(" by the policy's scope {s}"))
        .unwrap_or_else(|| " (no policy)".into());
    let signed = if verdict.signed_identities.is_empty() {
        String::new()
    } else {
        format!(", signed as {}", verdict.signed_identities.join(", "))
    };
    println!(
        "Accepted {identity} ({}){by}{signed}",
        source.top().digest()
    );
    Ok(ExitCode::SUCCESS)
}

/// Make a cosign key pair: PREFIX.key (encrypted with the passphrase) and PREFIX.pub.
#[derive(Args)]
#[command(
    after_help = "Example:\n  COSIGN_PASSWORD=... ocikit generate-key --output-key-prefix release"
)]
pub(crate) struct GenerateKeyArgs {
    /// The files' prefix (cosign's flag name).
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    output_key_prefix: String,
    /// The file holding the passphrase (default: $OCIKIT_PASSWORD, $COSIGN_PASSWORD, asked).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

pub(crate) fn generate_key(a: GenerateKeyArgs) -> Result<ExitCode, Failure> {
    let private = PathBuf::from(format!("{}.key", a.output_key_prefix));
    let public = PathBuf::from(format!("{}.pub", a.output_key_prefix));
    for p in [&private, &public] {
        if p.exists() {
            return Err(Failure::msg(format!(
                "{} exists: remove it or choose another --output-key-prefix",
                p.display()
            )));
        }
    }
    let password = passphrase(&a.passphrase_file, true)?;
    let key = CosignPrivateKey::generate()?;
    let pem = key.to_encrypted_pem(password.as_bytes())?;
    write_new(&private, pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, key.public_key().to_pem().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    println!("Private key written to {}", private.display());
    println!("Public key written to {}", public.display());
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` (never replacing a file) with `bytes`, readable as `mode` says.
fn write_new(path: &PathBuf, bytes: &[u8], mode: u32) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Failure::io(format!("creating {}", path.display()), e))?;
    // Only a file this call created is removed on failure.
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(path);
            Failure::io(format!("writing {}", path.display()), e)
        })
}
