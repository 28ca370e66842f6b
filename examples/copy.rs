//! Copies an image between layouts and archives, printing each blob it copied or skipped.
//!
//! ```text
//! cargo run --release --example copy -- SRC DST [--platform OS/ARCH[/VARIANT] | --all]
//!     [--src-creds USER[:PASSWORD]] [--src-tls-verify[=BOOL]] [--src-cert-dir DIR]
//!     [--src-authfile FILE] [--dest-creds ...] [--dest-tls-verify[=BOOL]]
//!     [--dest-cert-dir DIR] [--dest-authfile FILE] [--registries-conf FILE]
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
//! `docker-archive:FILE[:REPO:TAG]` or `docker://HOST/NAME[:TAG|@DIGEST]`. Registries are
//! reached as skopeo reaches them: registries.conf (mirrors, `insecure`, `blocked`),
//! `certs.d`, the auth files and the system's CA store, loopback registries over plain HTTP
//! unless TLS is asked for; the options are skopeo's. Digests are kept whenever the format
//! allows (a docker archive stores no manifest; Docker manifests written to
//! `oci:`/`oci-archive:` become OCI ones); only the blobs the destination lacks are copied.

use std::process::ExitCode;

use ocikit::SystemContext;
use ocikit::copy::{CopyOptions, Location, copy};
use ocikit::distribution::Credentials;
use ocikit::image::parse_platform;
use ocikit::progress::Event;

const USAGE: &str = "usage: copy SRC DST [--platform OS/ARCH[/VARIANT] | --all]
  SRC, DST: oci:DIR[:NAME] | oci-archive:FILE[:NAME] | docker-archive:FILE[:REPO:TAG]
            | docker://HOST/NAME[:TAG|@DIGEST]
  --src-creds, --dest-creds USER[:PASSWORD]   credentials for the registry
  --src-tls-verify, --dest-tls-verify[=BOOL]  require HTTPS and verified certificates (true),
                                              or allow plain HTTP and any certificate (false)
  --src-cert-dir, --dest-cert-dir DIR         *.crt, *.cert and *.key to use for TLS
  --src-authfile, --dest-authfile FILE        the auth file to read credentials from
  --registries-conf FILE                      registries.conf to read instead of the system's
  --policy FILE, --registries.d DIR           signature policy and lookaside configuration
  --remove-signatures                         do not copy signatures
  --sign-by KEY, --sign-by-sigstore-private-key KEY
                                              sign (OpenPGP secret key file, cosign key)";

/// Applies `--src-X`/`--dest-X` option `name` with `value` to `context`.
fn context_option(
    context: SystemContext,
    name: &str,
    value: Option<String>,
    args: &mut impl Iterator<Item = String>,
) -> Result<SystemContext, Box<dyn std::error::Error>> {
    let given = value.clone();
    let mut value = || {
        given
            .clone()
            .or_else(|| args.next())
            .ok_or_else(|| format!("--{name} needs a value"))
    };
    Ok(match name.split_once('-').map(|(_, n)| n) {
        Some("creds") => {
            let v = value()?;
            let (user, password) = v.split_once(':').unwrap_or((&v, ""));
            context.credentials(Credentials::new(user, password))
        }
        // A boolean flag, as skopeo's: `--src-tls-verify` or `--src-tls-verify=false`.
        Some("tls-verify") => match given.as_deref() {
            None | Some("true") => context.tls_verify(true),
            Some("false") => context.tls_verify(false),
            Some(other) => return Err(format!("--{name}={other}: expected true or false").into()),
        },
        Some("cert-dir") => context.cert_dir(value()?),
        Some("authfile") => context.auth_files(vec![value()?.into()]),
        _ => return Err(format!("unknown option --{name}").into()),
    })
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut options = CopyOptions::new();
    let mut src_context = SystemContext::new();
    let mut dest_context = SystemContext::new();
    let mut registries_conf = None;
    let mut trust = ocikit::trust::TrustOptions::new();
    let password = || std::env::var("OCIKIT_PASSWORD").unwrap_or_default();
    while let Some(arg) = args.next() {
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if let Some(n) = name.strip_prefix("--src-") {
            src_context = context_option(src_context, &format!("src-{n}"), value, &mut args)?;
            continue;
        }
        if let Some(n) = name.strip_prefix("--dest-") {
            dest_context = context_option(dest_context, &format!("dest-{n}"), value, &mut args)?;
            continue;
        }
        if name == "--registries-conf" {
            let file = value
                .or_else(|| args.next())
                .ok_or("--registries-conf needs a value")?;
            registries_conf = Some(std::path::PathBuf::from(file));
            continue;
        }
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
            "--platform" => {
                options = options.platform(parse_platform(&value()?)?);
            }
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
    if let Some(file) = registries_conf {
        src_context = src_context.registries_conf_files(vec![file.clone()]);
        dest_context = dest_context.registries_conf_files(vec![file]);
    }
    options = options
        .source_context(src_context)
        .destination_context(dest_context)
        .trust(trust);
    let src: Location = src.parse()?;
    let dst: Location = dst.parse()?;
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        // One line per event: what each blob did, and the image's total. (A command would
        // draw bars from these events, one per blob id.)
        options = options.progress(|event: &Event<'_>| {
            let short = |d: &ocikit::oci_spec::image::Descriptor| {
                let digest = d.digest().digest();
                digest[..12.min(digest.len())].to_owned()
            };
            match event {
                Event::Total { blobs, bytes } => eprintln!("{blobs} blobs, {bytes} bytes"),
                Event::Started { id, descriptor } => {
                    eprintln!(
                        "{id} {} started ({} bytes)",
                        short(descriptor),
                        descriptor.size()
                    )
                }
                Event::Done { id, descriptor } => eprintln!("{id} {} done", short(descriptor)),
                Event::Skipped { id, descriptor } => {
                    eprintln!("{id} {} already there", short(descriptor))
                }
                Event::Mounted {
                    id,
                    descriptor,
                    from,
                } => {
                    eprintln!("{id} {} mounted from {from}", short(descriptor))
                }
                _ => {}
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
            eprintln!("copy: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
