//! Trust: signing and verifying images, and the policy that gates copy, pull and run.
//!
//! What skopeo and podman read, read the same way:
//! - [`Policy`]: `containers-policy.json(5)`, from a path given or the usual locations
//!   (`$HOME/.config/containers/policy.json`, then `/etc/containers/policy.json`). **No policy
//!   file anywhere: every image is accepted, as before this module existed.**
//! - [`RegistriesD`]: `containers-registries.d(5)`, where simple signatures are stored (the
//!   lookaside `file://` or `http(s)://` storage, `NAME@sha256=HEX/signature-N`).
//! - Simple signing ([`simple`]): the `containers-signature(5)` payload signed as an OpenPGP
//!   message, verified against keyrings, with the pure-Rust `pgp` crate.
//! - cosign key signatures ([`cosign`]): ECDSA P-256 keys in cosign's files, signatures in
//!   the `sha256-<hex>.sig` manifest or an OCI 1.1 referrer.
//!
//! [`check`] decides on an image before any layer is read: [`copy`](crate::copy::copy), the
//! image store's [`pull`](crate::store::Store::pull) (so `ocikit pull` and `ocikit run`) call it
//! with the [`TrustOptions`] they are given, and a rejected image writes nothing at the destination.
//! The decision is about the manifest or index the reference names (the digests in it bind
//! everything below it): for each requirement of the most specific scope, at least one
//! signature must be made by an accepted key, over that document's digest, claiming an
//! identity the requirement's `signedIdentity` accepts.
//!
//! A requirement ocikit does not implement (`sigstoreSigned` with Fulcio, Rekor or PKI,
//! `signedBy` with a `keyType` other than `GPGKeys`) is an
//! [`Unsupported`](TrustError::Unsupported) error, never an accept. cosign signatures are
//! looked up whenever a `sigstoreSigned` requirement asks for them, whatever
//! `use-sigstore-attachments` says (that option decides whether [`copy`](crate::copy::copy)
//! carries them along).

pub mod cosign;
pub mod payload;
pub mod policy;
pub mod registries_d;
pub mod simple;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::image::Descriptor;
use ocikit_image::ImageSource;

pub use cosign::{CosignPrivateKey, CosignPublicKey};
pub use payload::Payload;
pub use policy::{DockerIdentity, IdentityRule, KeySource, Policy, Requirement};
pub use registries_d::RegistriesD;
pub use simple::{Keyring, SimpleSigner};

use crate::copy::{Location, OpenedSource};

/// Errors of the trust module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The image was refused by the policy.
    #[error("{image}: rejected by the policy ({scope}): {reason}")]
    Rejected {
        /// The image, as given.
        image: String,
        /// The policy scope whose requirements applied.
        scope: Scope,
        /// Why.
        reason: Rejection,
    },
    /// The policy asks for what ocikit does not implement: never taken as an accept.
    #[error("{image}: unsupported policy requirement: {requirement}")]
    Unsupported {
        /// The image.
        image: String,
        /// The requirement.
        requirement: String,
    },
    /// A `policy.json` that does not parse, or asks for something invalid.
    #[error("{}: line {line}, column {column}: {reason}", path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "policy".into()))]
    Policy {
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// Line (from 1).
        line: usize,
        /// Column (from 1).
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// A registries.d file that does not parse or conflicts with another.
    #[error("{path}: {reason}")]
    RegistriesD {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A docker reference in a policy or a signature that does not parse.
    #[error("invalid docker reference {value:?}: {reason}")]
    InvalidIdentity {
        /// The text.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A signature payload that is not the expected JSON.
    #[error("invalid signature payload: {reason}")]
    InvalidPayload {
        /// What is wrong.
        reason: String,
    },
    /// A key that cannot be read or used.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What is wrong.
        reason: String,
    },
    /// A signature that is malformed or does not verify.
    #[error("bad signature: {reason}")]
    BadSignature {
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing lookaside storage failed.
    #[error("signature storage {url}: {reason}")]
    Lookaside {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// Signing was asked for where signatures cannot be stored.
    #[error("cannot sign {destination}: {reason}")]
    CannotSign {
        /// The destination.
        destination: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// Reading signatures or documents from the source failed.
    #[error(transparent)]
    Image(#[from] ocikit_image::Error),
}

/// The policy scope whose requirements decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The global `default`.
    Default,
    /// A transport's scope (`""` is its default).
    Transport {
        /// `docker`, `oci`...
        transport: String,
        /// The scope.
        scope: String,
    },
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Default => f.write_str("default"),
            Scope::Transport { transport, scope } if scope.is_empty() => {
                write!(f, "transport {transport} default")
            }
            Scope::Transport { transport, scope } => write!(f, "{transport} scope {scope:?}"),
        }
    }
}

/// Why an image was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The requirement `reject`.
    PolicyRejects,
    /// No signature of the kind a requirement needs.
    NoSignature {
        /// `simple signing` or `cosign`.
        kind: &'static str,
    },
    /// Signatures exist, none is acceptable: why each was refused.
    NoAcceptedSignature(Vec<SignatureFailure>),
}

/// Why one signature was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// Not made by any key the requirement trusts.
    UnknownKey(String),
    /// Malformed, or its cryptographic check failed.
    Invalid(String),
    /// A valid signature of another manifest.
    DigestMismatch {
        /// The digest it signs.
        signed: String,
        /// The image's.
        actual: String,
    },
    /// A valid signature claiming an identity the requirement does not accept.
    IdentityMismatch {
        /// What it claims.
        signed: String,
        /// The image's identity.
        image: String,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::PolicyRejects => f.write_str("the policy says reject"),
            Rejection::NoSignature { kind } => write!(f, "no {kind} signature"),
            Rejection::NoAcceptedSignature(failures) => {
                f.write_str("no signature accepted: ")?;
                for (i, failure) in failures.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "signature {}: {failure}", i + 1)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for SignatureFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureFailure::UnknownKey(k) => write!(f, "signed by a key not trusted ({k})"),
            SignatureFailure::Invalid(r) => write!(f, "invalid ({r})"),
            SignatureFailure::DigestMismatch { signed, actual } => {
                write!(f, "signs manifest {signed}, the image's is {actual}")
            }
            SignatureFailure::IdentityMismatch { signed, image } => {
                write!(f, "claims identity {signed}, not accepted for {image}")
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
enum PolicyChoice {
    #[default]
    DefaultLocations,
    Path(PathBuf),
    Given(Arc<Policy>),
}

/// How images are checked, and signed on copy, set with chained setters on
/// [`TrustOptions::new`]; taken by [`CopyOptions`](crate::copy::CopyOptions::trust), the
/// store's [`PullOptions`](crate::store::PullOptions::trust) (the `ocikit` command's
/// `--policy` and `--registries.d`).
#[derive(Clone, Debug, Default)]
pub struct TrustOptions {
    policy: PolicyChoice,
    registries_d: Option<PathBuf>,
    remove_signatures: bool,
    sign_by: Option<Arc<SimpleSigner>>,
    sign_by_sigstore: Option<Arc<CosignPrivateKey>>,
}

impl TrustOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The policy file to use, as skopeo's `--policy` (default: the usual locations; none
    /// there accepts every image).
    pub fn policy_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.policy = PolicyChoice::Path(path.into());
        self
    }

    /// A policy already parsed (default: see [`policy_path`](Self::policy_path)).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = PolicyChoice::Given(Arc::new(policy));
        self
    }

    /// The registries.d directory, as skopeo's `--registries.d` (default:
    /// [`RegistriesD::default_dir`]).
    pub fn registries_d(mut self, dir: impl Into<PathBuf>) -> Self {
        self.registries_d = Some(dir.into());
        self
    }

    /// Copies no signature along with the image, as skopeo's `--remove-signatures` (default
    /// false: simple signatures go from the source's lookaside to the destination's, and
    /// cosign `.sig` manifests along when `use-sigstore-attachments` is on for the source).
    pub fn remove_signatures(mut self, remove: bool) -> Self {
        self.remove_signatures = remove;
        self
    }

    /// Signs the copied image with this OpenPGP key, as skopeo's `--sign-by` (default none).
    pub fn sign_by(mut self, signer: SimpleSigner) -> Self {
        self.sign_by = Some(Arc::new(signer));
        self
    }

    /// Signs the copied image with this cosign key, as skopeo's
    /// `--sign-by-sigstore-private-key` (default none).
    pub fn sign_by_sigstore(mut self, key: CosignPrivateKey) -> Self {
        self.sign_by_sigstore = Some(Arc::new(key));
        self
    }

    /// The policy these options name: `None` when none is given and none exists at the
    /// usual locations.
    pub fn load_policy(&self) -> Result<Option<Arc<Policy>>, TrustError> {
        Ok(match &self.policy {
            PolicyChoice::DefaultLocations => Policy::from_default_locations()?.map(Arc::new),
            PolicyChoice::Path(p) => Some(Arc::new(Policy::from_file(p)?)),
            PolicyChoice::Given(p) => Some(p.clone()),
        })
    }

    /// The registries.d configuration these options name.
    pub fn load_registries_d(&self) -> Result<RegistriesD, TrustError> {
        match &self.registries_d {
            Some(d) => RegistriesD::load(d),
            None => RegistriesD::load(&RegistriesD::default_dir()),
        }
    }
}

/// What an image is called, for the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageIdentity {
    /// An image in a registry (`docker:` transport).
    Docker(DockerIdentity),
    /// An image at a path (`oci:`, `oci-archive:`, `docker-archive:`).
    Path {
        /// The transport name in policy.json.
        transport: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// The name in it.
        name: Option<String>,
    },
}

impl ImageIdentity {
    /// The identity of a [`Location`].
    pub fn of_location(location: &Location) -> Result<ImageIdentity, TrustError> {
        Ok(match location {
            Location::Docker { reference } => {
                ImageIdentity::Docker(DockerIdentity::parse(reference)?)
            }
            Location::Oci { dir, name } => ImageIdentity::Path {
                transport: "oci",
                path: dir.clone(),
                name: name.clone(),
            },
            Location::OciArchive { file, name } => ImageIdentity::Path {
                transport: "oci-archive",
                path: file.clone(),
                name: name.clone(),
            },
            Location::DockerArchive { file, repo_tag } => ImageIdentity::Path {
                transport: "docker-archive",
                path: file.clone(),
                name: repo_tag.clone(),
            },
        })
    }

    fn transport(&self) -> &'static str {
        match self {
            ImageIdentity::Docker(_) => "docker",
            ImageIdentity::Path { transport, .. } => transport,
        }
    }

    fn scopes(&self) -> Vec<String> {
        match self {
            ImageIdentity::Docker(d) => policy::docker_scopes(d),
            ImageIdentity::Path { path, name, .. } => policy::path_scopes(path, name.as_deref()),
        }
    }

    fn docker(&self) -> Option<&DockerIdentity> {
        match self {
            ImageIdentity::Docker(d) => Some(d),
            ImageIdentity::Path { .. } => None,
        }
    }
}

impl fmt::Display for ImageIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageIdentity::Docker(d) => write!(f, "docker://{d}"),
            ImageIdentity::Path {
                transport,
                path,
                name,
            } => {
                write!(f, "{transport}:{}", path.display())?;
                if let Some(n) = name {
                    write!(f, ":{n}")?;
                }
                Ok(())
            }
        }
    }
}

/// What [`check`] accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// The scope whose requirements applied (`None`: there was no policy at all).
    pub scope: Option<Scope>,
    /// The identities claimed by the signatures that satisfied a requirement.
    pub signed_identities: Vec<String>,
}

/// Decides whether the image whose top document (manifest or index, as the reference names
/// it) is `top`, with the bytes `raw`, may be used: see the module docs. Reads signatures
/// only when a requirement needs them; reads no layer.
pub fn check(
    options: &TrustOptions,
    identity: &ImageIdentity,
    source: &dyn ImageSource,
    top: &Descriptor,
    raw: &[u8],
) -> Result<Verdict, TrustError> {
    let Some(policy) = options.load_policy()? else {
        return Ok(Verdict {
            scope: None,
            signed_identities: Vec::new(),
        });
    };
    let transport = identity.transport();
    let (scope, requirements) = policy.requirements_for(transport, &identity.scopes());
    let scope = match scope {
        None => Scope::Default,
        Some(s) => Scope::Transport {
            transport: transport.to_owned(),
            scope: s.to_owned(),
        },
    };
    let image = identity.to_string();
    let reject = |reason: Rejection| TrustError::Rejected {
        image: image.clone(),
        scope: scope.clone(),
        reason,
    };
    if requirements.is_empty() {
        // containers/image refuses an empty list: "the array of policy requirements must
        // not be empty".
        return Err(TrustError::Policy {
            path: None,
            line: 0,
            column: 0,
            reason: format!("the requirements of {scope} are an empty list"),
        });
    }
    // Unsupported requirements first: never a partial accept.
    for r in requirements {
        if let Requirement::SignedBy {
            unsupported: Some(u),
            ..
        }
        | Requirement::SigstoreSigned {
            unsupported: Some(u),
            ..
        } = r
        {
            return Err(TrustError::Unsupported {
                image,
                requirement: u.clone(),
            });
        }
    }
    let mut simple_sigs: Option<Vec<Vec<u8>>> = None;
    let mut cosign_sigs: Option<Vec<cosign::CosignSignature>> = None;
    let mut signed_identities = Vec::new();
    for r in requirements {
        match r {
            Requirement::InsecureAcceptAnything => {}
            Requirement::Reject => return Err(reject(Rejection::PolicyRejects)),
            Requirement::SignedBy {
                keys,
                identity: rule,
                ..
            } => {
                if simple_sigs.is_none() {
                    simple_sigs = Some(match identity.docker() {
                        Some(d) => options
                            .load_registries_d()?
                            .lookaside(d, false)
                            .read(top.digest())?,
                        // Simple signatures live in lookaside storage of registries only.
                        None => Vec::new(),
                    });
                }
                let sigs = simple_sigs.as_deref().unwrap_or_default();
                if sigs.is_empty() {
                    return Err(reject(Rejection::NoSignature {
                        kind: "simple signing",
                    }));
                }
                let keyring = Keyring::from_sources(keys)?;
                let mut failures = Vec::new();
                let mut accepted = None;
                for sig in sigs {
                    let outcome = keyring
                        .verify(sig)
                        .and_then(|p| accept_payload(p, identity, rule, raw));
                    match outcome {
                        Ok(id) => {
                            accepted = Some(id);
                            break;
                        }
                        Err(f) => failures.push(f),
                    }
                }
                match accepted {
                    Some(id) => signed_identities.push(id),
                    None => return Err(reject(Rejection::NoAcceptedSignature(failures))),
                }
            }
            Requirement::SigstoreSigned {
                keys,
                identity: rule,
                ..
            } => {
                if cosign_sigs.is_none() {
                    cosign_sigs = Some(cosign::find(
                        source,
                        top.digest(),
                        top.size(),
                        top.media_type(),
                    )?);
                }
                let sigs = cosign_sigs.as_deref().unwrap_or_default();
                if sigs.is_empty() {
                    return Err(reject(Rejection::NoSignature { kind: "cosign" }));
                }
                let mut public = Vec::new();
                for k in keys {
                    public.push(CosignPublicKey::from_pem(&k.read()?)?);
                }
                let mut failures = Vec::new();
                let mut accepted = None;
                for sig in sigs {
                    let verified = if public
                        .iter()
                        .any(|k| k.verify(&sig.payload, &sig.signature).is_ok())
                    {
                        Payload::parse(&sig.payload, payload::COSIGN_TYPE)
                            .map_err(|e| SignatureFailure::Invalid(e.to_string()))
                    } else if cosign_malformed(&sig.signature) {
                        Err(SignatureFailure::Invalid(
                            "not an ASN.1 ECDSA signature".into(),
                        ))
                    } else {
                        Err(SignatureFailure::UnknownKey(
                            "the ECDSA signature verifies with none of the keys".into(),
                        ))
                    };
                    match verified.and_then(|p| accept_payload(p, identity, rule, raw)) {
                        Ok(id) => {
                            accepted = Some(id);
                            break;
                        }
                        Err(f) => failures.push(f),
                    }
                }
                match accepted {
                    Some(id) => signed_identities.push(id),
                    None => return Err(reject(Rejection::NoAcceptedSignature(failures))),
                }
            }
        }
    }
    Ok(Verdict {
        scope: Some(scope),
        signed_identities,
    })
}

fn cosign_malformed(signature: &[u8]) -> bool {
    p256::ecdsa::Signature::from_der(signature).is_err()
}

/// Checks a verified payload's claims: the digest of `raw` ("The value of this member MUST
/// match the manifest of the signed container image"), then the identity rule.
fn accept_payload(
    payload: Payload,
    identity: &ImageIdentity,
    rule: &IdentityRule,
    raw: &[u8],
) -> Result<String, SignatureFailure> {
    let signed = &payload.manifest_digest;
    let actual = ocikit_image::digest_bytes(signed.algorithm(), raw)
        .map_err(|e| SignatureFailure::Invalid(e.to_string()))?;
    if &actual != signed {
        return Err(SignatureFailure::DigestMismatch {
            signed: signed.to_string(),
            actual: ocikit_image::sha256(raw).to_string(),
        });
    }
    let claimed = DockerIdentity::parse(&payload.docker_reference)
        .map_err(|e| SignatureFailure::Invalid(e.to_string()))?;
    if !rule.matches(identity.docker(), &claimed) {
        return Err(SignatureFailure::IdentityMismatch {
            signed: payload.docker_reference,
            image: identity.to_string(),
        });
    }
    Ok(payload.docker_reference)
}

/// [`check`] for a [`Location`] opened with [`open_source`](crate::copy::open_source).
pub fn check_opened(
    location: &Location,
    source: &OpenedSource,
    options: &TrustOptions,
) -> Result<Verdict, crate::Error> {
    let identity = ImageIdentity::of_location(location)?;
    let top = source.top_manifest()?;
    Ok(check(
        options,
        &identity,
        source.source(),
        source.top(),
        top.raw(),
    )?)
}

/// Signs the manifest `digest` as the image `identity` (a docker reference) with simple
/// signing, and stores the signature in the lookaside storage registries.d gives for writing
/// (`lookaside-staging`, else `lookaside`); returns where it went.
pub fn sign_simple(
    options: &TrustOptions,
    signer: &SimpleSigner,
    identity: &DockerIdentity,
    digest: &oci_spec::image::Digest,
) -> Result<String, TrustError> {
    let payload = Payload::new(payload::SIMPLE_SIGNING_TYPE, digest, &identity.to_string());
    let signature = signer.sign(&payload.to_json())?;
    options
        .load_registries_d()?
        .lookaside(identity, true)
        .add(digest, &signature)
}

/// Signs the manifest `digest` as `identity` with a cosign key and attaches the signature
/// to the image in `destination` (which `existing` reads, when it can be read: the signatures
/// already there are kept).
pub fn sign_cosign(
    key: &CosignPrivateKey,
    identity: &DockerIdentity,
    digest: &oci_spec::image::Digest,
    existing: Option<&dyn ImageSource>,
    destination: &dyn ocikit_image::ImageDestination,
) -> Result<ocikit_image::AnyManifest, TrustError> {
    let payload = Payload::new(payload::COSIGN_TYPE, digest, &identity.to_string()).to_json();
    let signature = key.sign(&payload);
    cosign::attach(
        existing,
        destination,
        digest,
        &cosign::CosignSignature { payload, signature },
    )
}

/// After a copy of `src` to `dst` whose top document is `top`: carries the source's
/// signatures along (unless [`TrustOptions::remove_signatures`]) and signs, as asked. Called
/// by [`copy`](crate::copy::copy) before it names and finishes the destination.
pub(crate) fn after_copy(
    options: &TrustOptions,
    source_location: &Location,
    source: &OpenedSource,
    destination_location: &Location,
    destination: &crate::copy::OpenedDestination,
    top: &ocikit_image::AnyManifest,
) -> Result<(), TrustError> {
    let wants_signing = options.sign_by.is_some() || options.sign_by_sigstore.is_some();
    if options.remove_signatures && !wants_signing {
        return Ok(());
    }
    let source_id = ImageIdentity::of_location(source_location)?;
    let dest_id = ImageIdentity::of_location(destination_location)?;
    let unchanged = top.digest() == source.top().digest();
    let registries = || options.load_registries_d();
    if !options.remove_signatures && unchanged {
        // Simple signatures: from the source's lookaside to the destination's.
        if let (Some(from), Some(to)) = (source_id.docker(), dest_id.docker()) {
            let config = registries()?;
            let read = config.lookaside(from, false);
            let write = config.lookaside(to, true);
            if read != write {
                let signatures = read.read(top.digest())?;
                if !signatures.is_empty() {
                    let existing = write.read(top.digest())?;
                    for sig in signatures {
                        if !existing.contains(&sig) {
                            write.add(top.digest(), &sig)?;
                        }
                    }
                }
            }
        }
        // cosign: the `.sig` manifest, when the source is a layout or opts in.
        let carry_cosign = match source_id.docker() {
            Some(d) => registries()?.use_sigstore_attachments(d),
            None => true,
        };
        if carry_cosign {
            let tag = cosign::signature_tag(top.digest());
            match source
                .source()
                .resolve(&ocikit_image::TagOrDigest::Tag(tag.clone()))
            {
                Ok(d) => {
                    crate::copy::copy_image(
                        source.source(),
                        &ocikit_image::TagOrDigest::Digest(d.digest().clone()),
                        destination.destination(),
                        Some(&tag),
                        &crate::copy::CopyOptions::new().all(true),
                    )?;
                }
                Err(ocikit_image::Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if wants_signing {
        let Some(dest) = dest_id.docker() else {
            return Err(TrustError::CannotSign {
                destination: dest_id.to_string(),
                reason: "signatures are made for docker:// destinations only".into(),
            });
        };
        if let Some(signer) = &options.sign_by {
            sign_simple(options, signer, dest, top.digest())?;
        }
        if let Some(key) = &options.sign_by_sigstore {
            sign_cosign(
                key,
                dest,
                top.digest(),
                destination.as_source(),
                destination.destination(),
            )?;
        }
    }
    Ok(())
}
