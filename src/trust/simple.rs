//! Simple signing: the `containers-signature(5)` payload signed as an OpenPGP message, with
//! the pure-Rust `pgp` crate (rPGP); never a shell-out to gpg.
//!
//! Verification follows "OpenPGP signature verification" of containers-signature(5): "The
//! blob MUST be a “Signed Message”"; "The signature MUST have been made by an expected key";
//! "MUST be correctly formed and pass the cryptographic validation"; "MUST correctly
//! authenticate the included JSON payload (in particular, the parsing of the JSON payload
//! MUST NOT start before the complete payload has been cryptographically authenticated)";
//! "MUST NOT be expired".

use std::io::Read;

use pgp::composed::{Message, MessageBuilder, SignedPublicKey, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{KeyDetails, Password, PublicKeyTrait};

use super::payload::{Payload, SIMPLE_SIGNING_TYPE};
use super::policy::KeySource;
use super::registries_d::MAX_SIGNATURE_SIZE;
use super::{SignatureFailure, TrustError};

/// Public keys a `signedBy` requirement trusts (`keyPath`, `keyPaths`, `keyData`: armored or
/// binary keyrings of one or more keys).
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Keyring {
    /// Parses a keyring, armored or binary; secret keys count by their public halves.
    pub fn from_bytes(bytes: &[u8]) -> Result<Keyring, TrustError> {
        let bad = |e: pgp::errors::Error| TrustError::InvalidKey {
            reason: format!("OpenPGP keyring: {e}"),
        };
        let (parsed, _) = pgp::composed::PublicOrSecret::from_reader_many(bytes).map_err(bad)?;
        let mut keys = Vec::new();
        for key in parsed {
            keys.push(match key.map_err(bad)? {
                pgp::composed::PublicOrSecret::Public(k) => k,
                pgp::composed::PublicOrSecret::Secret(k) => k.signed_public_key(),
            });
        }
        if keys.is_empty() {
            return Err(TrustError::InvalidKey {
                reason: "an OpenPGP keyring without keys".into(),
            });
        }
        Ok(Keyring { keys })
    }

    /// The keys of every source, together.
    pub fn from_sources(sources: &[KeySource]) -> Result<Keyring, TrustError> {
        let mut keys = Vec::new();
        for s in sources {
            keys.extend(Keyring::from_bytes(&s.read()?)?.keys);
        }
        Ok(Keyring { keys })
    }

    /// The fingerprints (hex) of the primary keys.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| hex(k.primary_key.fingerprint().as_bytes()))
            .collect()
    }

    /// Verifies a signature blob and returns its payload, parsed only once authenticated.
    pub fn verify(&self, blob: &[u8]) -> Result<Payload, SignatureFailure> {
        let invalid = |what: String| SignatureFailure::Invalid(what);
        let message = Message::from_bytes(blob)
            .map_err(|e| invalid(format!("not an OpenPGP message: {e}")))?;
        let mut message = message
            .decompress()
            .map_err(|e| invalid(format!("OpenPGP decompression: {e}")))?;
        if !message.is_signed() {
            return Err(invalid("not an OpenPGP signed message".into()));
        }
        // Bounded: a compressed message may claim any size.
        let mut data = Vec::new();
        (&mut message)
            .take(MAX_SIGNATURE_SIZE + 1)
            .read_to_end(&mut data)
            .map_err(|e| invalid(format!("OpenPGP message: {e}")))?;
        if data.len() as u64 > MAX_SIGNATURE_SIZE {
            return Err(invalid(format!(
                "a payload larger than {MAX_SIGNATURE_SIZE} bytes"
            )));
        }
        let now = chrono_now();
        let mut verified = None;
        'keys: for key in &self.keys {
            let mut candidates: Vec<&dyn PublicKeyTrait> = vec![&key.primary_key];
            candidates.extend(key.public_subkeys.iter().map(|s| s as &dyn PublicKeyTrait));
            for candidate in candidates {
                if let Ok(sig) = message.verify(candidate) {
                    verified = Some((key, sig.clone()));
                    break 'keys;
                }
            }
        }
        let Some((key, sig)) = verified else {
            return Err(SignatureFailure::UnknownKey(format!(
                "verified by none of the keys {}",
                self.fingerprints().join(", ")
            )));
        };
        if let Some(expires) = key.expires_at()
            && expires.timestamp() < now
        {
            return Err(invalid(format!(
                "the key {} expired",
                hex(key.primary_key.fingerprint().as_bytes())
            )));
        }
        if let (Some(created), Some(valid_for)) = (sig.created(), sig.signature_expiration_time())
            && valid_for.num_seconds() > 0
            && created.timestamp() + valid_for.num_seconds() < now
        {
            return Err(invalid("the signature expired".into()));
        }
        Payload::parse(&data, SIMPLE_SIGNING_TYPE).map_err(|e| invalid(e.to_string()))
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An OpenPGP secret key that signs payloads.
#[derive(Clone)]
pub struct SimpleSigner {
    key: SignedSecretKey,
    passphrase: String,
}

impl std::fmt::Debug for SimpleSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimpleSigner({})", self.fingerprint())
    }
}

impl SimpleSigner {
    /// Reads an exported secret key (`gpg --export-secret-keys`, armored or binary) whose
    /// secret is protected by `passphrase` (empty: none); the primary key signs.
    pub fn from_armored_or_binary(
        bytes: &[u8],
        passphrase: &str,
    ) -> Result<SimpleSigner, TrustError> {
        let bad = |e: pgp::errors::Error| TrustError::InvalidKey {
            reason: format!("OpenPGP secret key: {e}"),
        };
        let (parsed, _) = pgp::composed::PublicOrSecret::from_reader_many(bytes).map_err(bad)?;
        for key in parsed {
            if let pgp::composed::PublicOrSecret::Secret(key) = key.map_err(bad)? {
                let signer = SimpleSigner {
                    key,
                    passphrase: passphrase.to_owned(),
                };
                // A wrong passphrase shows now, not at the first signature.
                signer.sign(b"{}")?;
                return Ok(signer);
            }
        }
        Err(TrustError::InvalidKey {
            reason: "no OpenPGP secret key in the file".into(),
        })
    }

    /// The primary key's fingerprint (hex, lower case).
    pub fn fingerprint(&self) -> String {
        hex(self.key.primary_key.fingerprint().as_bytes())
    }

    /// Signs `payload` as an OpenPGP signed message (binary), as skopeo's `--sign-by` does.
    pub fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, TrustError> {
        let mut builder = MessageBuilder::from_bytes("", payload.to_vec());
        builder.sign(
            &self.key.primary_key,
            Password::from(self.passphrase.as_str()),
            HashAlgorithm::Sha256,
        );
        builder
            .to_vec(rand_core::OsRng)
            .map_err(|e| TrustError::InvalidKey {
                reason: format!("OpenPGP signing: {e}"),
            })
    }
}

/// Parses a keyring and verifies a signed message against a fixed key (for the fuzz target).
#[doc(hidden)]
pub fn fuzz_openpgp(bytes: &[u8]) -> bool {
    let keyring = Keyring::from_bytes(bytes).is_ok();
    let _ = SimpleSigner::from_armored_or_binary(bytes, "");
    keyring | Keyring { keys: Vec::new() }.verify(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_invalid_signature_not_a_panic() {
        let keyring = Keyring { keys: Vec::new() };
        for blob in [
            &b""[..],
            b"\x89junk",
            b"-----BEGIN PGP MESSAGE-----\n\n-----END",
        ] {
            assert!(matches!(
                keyring.verify(blob),
                Err(SignatureFailure::Invalid(_))
            ));
        }
        assert!(Keyring::from_bytes(b"not a key").is_err());
    }
}
