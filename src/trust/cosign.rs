//! cosign key signatures: ECDSA P-256 keys in cosign's files, and signatures stored as cosign
//! stores them.
//!
//! - Private key: PEM `ENCRYPTED SIGSTORE PRIVATE KEY` (older cosign: `ENCRYPTED COSIGN
//!   PRIVATE KEY`) around the JSON envelope of go-securesystemslib's `encrypted` package:
//!   `{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":B64},
//!   "cipher":{"name":"nacl/secretbox","nonce":B64},"ciphertext":B64}`, the plaintext a
//!   PKCS#8 DER private key, the secretbox key scrypt(password, salt) of 32 bytes.
//! - Public key: PKIX PEM `PUBLIC KEY`.
//! - Signature: ECDSA P-256 with SHA-256 over the payload bytes, ASN.1 DER, base64 in the
//!   `dev.cosignproject.cosign/signature` annotation of a layer of media type
//!   `application/vnd.dev.cosign.simplesigning.v1+json` whose blob is the payload, in the
//!   manifest tagged `sha256-<hex>.sig` beside the image (or an OCI 1.1 referrer of it).

use base64::Engine as _;
use oci_spec::image::{Descriptor, Digest, MediaType};
use ocikit_image::{AnyManifest, ImageDestination, ImageSource, Tag, TagOrDigest};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::der::pem::{self, LineEnding};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use serde::{Deserialize, Serialize};

use super::TrustError;

/// The media type of a cosign signature layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a layer's signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The PEM label of cosign's encrypted private keys.
pub const PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The label older cosign releases wrote.
pub const OLD_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// The artifact type of cosign signatures stored as OCI 1.1 referrers.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

// go-securesystemslib's parameters; like it, keys with others are refused (an attacker could
// otherwise make the key derivation cost anything).
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// A cosign private key, decrypted.
#[derive(Clone)]
pub struct CosignPrivateKey(SigningKey);

impl std::fmt::Debug for CosignPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CosignPrivateKey(..)")
    }
}

/// A cosign public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignPublicKey(VerifyingKey);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

/// Go's `[]byte` in JSON: standard base64 with padding.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

fn key_error(reason: impl Into<String>) -> TrustError {
    TrustError::InvalidKey {
        reason: reason.into(),
    }
}

fn secretbox_key(password: &[u8], salt: &[u8]) -> Result<[u8; 32], TrustError> {
    let params = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 32)
        .map_err(|e| key_error(format!("scrypt parameters: {e}")))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key)
        .map_err(|e| key_error(format!("scrypt: {e}")))?;
    Ok(key)
}

fn random<const N: usize>() -> Result<[u8; N], TrustError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| key_error(format!("no randomness: {e}")))?;
    Ok(b)
}

/// The PEM and JSON envelope of an encrypted key, checked, not yet decrypted.
fn parse_envelope(pem_text: &[u8]) -> Result<Envelope, TrustError> {
    let (label, json) =
        pem::decode_vec(pem_text).map_err(|e| key_error(format!("not a PEM file: {e}")))?;
    if label != PRIVATE_KEY_LABEL && label != OLD_PRIVATE_KEY_LABEL {
        return Err(key_error(format!(
            "PEM label {label:?}, not {PRIVATE_KEY_LABEL:?}"
        )));
    }
    let env: Envelope = serde_json::from_slice(&json)
        .map_err(|e| key_error(format!("the encrypted key's JSON: {e}")))?;
    if env.kdf.name != "scrypt" || env.cipher.name != "nacl/secretbox" {
        return Err(key_error(format!(
            "kdf {:?} and cipher {:?}, not scrypt and nacl/secretbox",
            env.kdf.name, env.cipher.name
        )));
    }
    let p = &env.kdf.params;
    if (p.n, p.r, p.p) != (1 << SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P) {
        return Err(key_error(format!(
            "scrypt parameters N={} r={} p={}, not N=32768 r=8 p=1",
            p.n, p.r, p.p
        )));
    }
    if env.cipher.nonce.len() != NONCE_LEN {
        return Err(key_error("the secretbox nonce is not 24 bytes"));
    }
    Ok(env)
}

fn from_pkcs8(der: &[u8]) -> Result<CosignPrivateKey, TrustError> {
    SigningKey::from_pkcs8_der(der)
        .map(CosignPrivateKey)
        .map_err(|e| key_error(format!("not a PKCS#8 ECDSA P-256 key: {e}")))
}

impl CosignPrivateKey {
    /// A new random key.
    pub fn generate() -> Result<CosignPrivateKey, TrustError> {
        loop {
            // A random scalar; the rare value out of range is drawn again.
            let bytes = random::<32>()?;
            if let Ok(key) = SigningKey::from_bytes(&bytes.into()) {
                return Ok(CosignPrivateKey(key));
            }
        }
    }

    /// Reads cosign's encrypted PEM with `password`.
    pub fn from_encrypted_pem(
        pem_text: &[u8],
        password: &[u8],
    ) -> Result<CosignPrivateKey, TrustError> {
        let env = parse_envelope(pem_text)?;
        let key = secretbox_key(password, &env.kdf.salt)?;
        use crypto_secretbox::aead::{Aead, KeyInit};
        let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
        let der = cipher
            .decrypt(
                crypto_secretbox::Nonce::from_slice(&env.cipher.nonce),
                env.ciphertext.as_slice(),
            )
            .map_err(|_| key_error("decryption failed: a wrong password, or a damaged key"))?;
        from_pkcs8(&der)
    }

    /// cosign's encrypted PEM of this key, under `password`.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String, TrustError> {
        let der = self
            .0
            .to_pkcs8_der()
            .map_err(|e| key_error(format!("PKCS#8: {e}")))?;
        let salt = random::<SALT_LEN>()?;
        let nonce = random::<NONCE_LEN>()?;
        let key = secretbox_key(password, &salt)?;
        use crypto_secretbox::aead::{Aead, KeyInit};
        let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
        let ciphertext = cipher
            .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), der.as_bytes())
            .map_err(|_| key_error("encryption failed"))?;
        let env = Envelope {
            kdf: Kdf {
                name: "scrypt".into(),
                params: ScryptParams {
                    n: 1 << SCRYPT_LOG_N,
                    r: SCRYPT_R,
                    p: SCRYPT_P,
                },
                salt: salt.to_vec(),
            },
            cipher: Cipher {
                name: "nacl/secretbox".into(),
                nonce: nonce.to_vec(),
            },
            ciphertext,
        };
        let json = serde_json::to_vec(&env).expect("the envelope serialises");
        pem::encode_string(PRIVATE_KEY_LABEL, LineEnding::LF, &json)
            .map_err(|e| key_error(format!("PEM: {e}")))
    }

    /// The public half.
    pub fn public_key(&self) -> CosignPublicKey {
        CosignPublicKey(*self.0.verifying_key())
    }

    /// The DER signature of `payload`.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let sig: Signature = self.0.sign(payload);
        let der: DerSignature = sig.to_der();
        der.as_bytes().to_vec()
    }
}

impl CosignPublicKey {
    /// Reads a PKIX PEM public key.
    pub fn from_pem(pem_text: &[u8]) -> Result<CosignPublicKey, TrustError> {
        let text =
            std::str::from_utf8(pem_text).map_err(|_| key_error("a public key PEM is text"))?;
        VerifyingKey::from_public_key_pem(text.trim())
            .map(CosignPublicKey)
            .map_err(|e| key_error(format!("not a PEM ECDSA P-256 public key: {e}")))
    }

    /// The PKIX PEM text.
    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 key encodes")
    }

    /// Whether `signature` (ASN.1 DER, as cosign writes it) signs `payload`.
    pub fn verify(&self, payload: &[u8], signature: &[u8]) -> Result<(), TrustError> {
        let sig = Signature::from_der(signature).map_err(|e| TrustError::BadSignature {
            reason: format!("not an ASN.1 ECDSA signature: {e}"),
        })?;
        self.0
            .verify(payload, &sig)
            .map_err(|_| TrustError::BadSignature {
                reason: "the ECDSA signature does not verify with the key".into(),
            })
    }
}

/// Parses a key of either kind (for the fuzz target): an encrypted private key's envelope,
/// a PKCS#8 private key, or a public key.
#[doc(hidden)]
pub fn fuzz_keys(bytes: &[u8]) -> bool {
    CosignPrivateKey::from_encrypted_pem(bytes, b"").is_ok()
        | CosignPublicKey::from_pem(bytes).is_ok()
}

/// One cosign signature as stored: the payload bytes and the signature over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignSignature {
    /// The payload (a layer's blob).
    pub payload: Vec<u8>,
    /// The DER signature (decoded from the annotation).
    pub signature: Vec<u8>,
}

/// The tag cosign gives the signatures of `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> Tag {
    format!("{}-{}.sig", digest.algorithm(), digest.digest())
        .parse()
        .expect("a valid tag")
}

/// The largest payload read.
const MAX_PAYLOAD: u64 = 4 << 20;

/// The cosign signatures of `digest` in `source`: the `.sig` tag's layers, or, when there is
/// no such tag, the referrers whose layers are signatures (cosign writes one or the other).
pub fn find(
    source: &dyn ImageSource,
    digest: &Digest,
    size: u64,
    media_type: &MediaType,
) -> Result<Vec<CosignSignature>, TrustError> {
    // One request for the tag and its manifest where the source can (a registry's GET).
    let mut manifests = Vec::new();
    match source.resolve_manifest(&TagOrDigest::Tag(signature_tag(digest))) {
        Ok((_, doc)) => manifests.push(doc),
        Err(ocikit_image::Error::NotFound(_)) => {
            let subject = Descriptor::new(media_type.clone(), size, digest.clone());
            match source.referrers(&subject) {
                Ok(list) => {
                    for d in list.into_iter().filter(|d| {
                        d.artifact_type()
                            .as_ref()
                            .is_none_or(|t| t.to_string() == SIGNATURE_ARTIFACT_TYPE)
                    }) {
                        manifests.push(source.fetch_manifest(&d)?);
                    }
                }
                // A source without referrers has none.
                Err(ocikit_image::Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    }
    let mut out = Vec::new();
    for doc in manifests {
        let AnyManifest::Manifest(m) = doc else {
            continue;
        };
        for layer in m.layers() {
            if layer.media_type().to_string() != SIMPLE_SIGNING_MEDIA_TYPE {
                continue;
            }
            let Some(b64) = layer
                .annotations()
                .as_ref()
                .and_then(|a| a.get(SIGNATURE_ANNOTATION))
            else {
                continue;
            };
            let signature = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| TrustError::BadSignature {
                    reason: format!("the {SIGNATURE_ANNOTATION} annotation is not base64: {e}"),
                })?;
            if layer.size() > MAX_PAYLOAD {
                return Err(TrustError::BadSignature {
                    reason: format!("a payload larger than {MAX_PAYLOAD} bytes"),
                });
            }
            let mut payload = Vec::new();
            std::io::Read::read_to_end(&mut source.open_blob(layer)?, &mut payload)
                .map_err(ocikit_image::Error::from)?;
            out.push(CosignSignature { payload, signature });
        }
    }
    Ok(out)
}

/// Adds `signature` to the `.sig` manifest of `digest` in `destination` (made when missing;
/// an existing one, read from `existing`, keeps its layers), as `cosign sign` does.
pub fn attach(
    existing: Option<&dyn ImageSource>,
    destination: &dyn ImageDestination,
    digest: &Digest,
    signature: &CosignSignature,
) -> Result<AnyManifest, TrustError> {
    use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder};
    let tag = signature_tag(digest);
    let mut layers: Vec<Descriptor> = Vec::new();
    if let Some(source) = existing {
        match source.resolve(&TagOrDigest::Tag(tag.clone())) {
            Ok(d) => {
                if let AnyManifest::Manifest(m) = source.fetch_manifest(&d)? {
                    layers.extend(m.layers().iter().cloned());
                }
            }
            Err(ocikit_image::Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let payload_digest = ocikit_image::sha256(&signature.payload);
    let sig_b64 = base64::engine::general_purpose::STANDARD.encode(&signature.signature);
    let duplicate = layers.iter().any(|l| {
        l.digest() == &payload_digest
            && l.annotations()
                .as_ref()
                .and_then(|a| a.get(SIGNATURE_ANNOTATION))
                == Some(&sig_b64)
    });
    let media = MediaType::Other(SIMPLE_SIGNING_MEDIA_TYPE.into());
    let layer = DescriptorBuilder::default()
        .media_type(media)
        .digest(payload_digest)
        .size(signature.payload.len() as u64)
        .annotations([(SIGNATURE_ANNOTATION.to_owned(), sig_b64)])
        .build()
        .map_err(|e| key_error(e.to_string()))?;
    destination.put_blob(&layer, &mut signature.payload.as_slice())?;
    if !duplicate {
        layers.push(layer);
    }
    // The configuration cosign writes: an empty image whose diff_ids are the payloads.
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest().to_string()).collect();
    let config = serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {}
    });
    let config = serde_json::to_vec(&config).expect("json");
    let config_d = ocikit_image::descriptor_of(MediaType::ImageConfig, &config);
    destination.put_blob(&config_d, &mut config.as_slice())?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_d)
        .layers(layers)
        .build()
        .map_err(|e| key_error(e.to_string()))?;
    let raw = serde_json::to_vec(&manifest).expect("json");
    let doc = AnyManifest::from_bytes(raw, Some(&MediaType::ImageManifest))?;
    destination.put_manifest(&doc)?;
    destination.tag(&tag, &doc)?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sign() {
        let key = CosignPrivateKey::generate().unwrap();
        let pem = key.to_encrypted_pem(b"pw").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let back = CosignPrivateKey::from_encrypted_pem(pem.as_bytes(), b"pw").unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert!(matches!(
            CosignPrivateKey::from_encrypted_pem(pem.as_bytes(), b"wrong"),
            Err(TrustError::InvalidKey { .. })
        ));
        let public = CosignPublicKey::from_pem(key.public_key().to_pem().as_bytes()).unwrap();
        let sig = key.sign(b"payload");
        public.verify(b"payload", &sig).unwrap();
        assert!(public.verify(b"other", &sig).is_err());
        let other = CosignPrivateKey::generate().unwrap().public_key();
        assert!(other.verify(b"payload", &sig).is_err());
    }
}
