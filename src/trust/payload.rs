//! The signed JSON payload shared by simple signing and cosign (`containers-signature(5)`):
//!
//! ```json
//! {"critical": {"type": "atomic container signature",
//!               "image": {"docker-manifest-digest": "sha256:..."},
//!               "identity": {"docker-reference": "registry.example/app:v1"}},
//!  "optional": {"creator": "...", "timestamp": 1483228800}}
//! ```
//!
//! Parsed strictly: "consumers MUST reject the signature if the `critical` object, or _any_
//! of its subobjects, contain _any_ member or data value which is unrecognized, unsupported,
//! invalid, or in any other way unexpected"; unknown members of `optional` are accepted.

use serde::{Deserialize, Serialize};

use super::TrustError;

/// `critical.type` of simple signing (OpenPGP) signatures.
pub const SIMPLE_SIGNING_TYPE: &str = "atomic container signature";
/// `critical.type` of cosign signatures.
pub const COSIGN_TYPE: &str = "cosign container image signature";

/// The claims of a signature, once its cryptographic signature is verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// `critical.type`.
    pub kind: String,
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: oci_spec::image::Digest,
    /// `critical.identity.docker-reference`, as written.
    pub docker_reference: String,
    /// `optional.creator`.
    pub creator: Option<String>,
    /// `optional.timestamp`.
    pub timestamp: Option<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    critical: Critical,
    // cosign writes `"optional": null`.
    #[serde(default)]
    optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    // Field order as cosign and containers/image write them does not matter to readers.
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

impl Payload {
    /// A payload claiming `docker_reference` for the manifest `digest`.
    pub fn new(kind: &str, digest: &oci_spec::image::Digest, docker_reference: &str) -> Payload {
        Payload {
            kind: kind.to_owned(),
            manifest_digest: digest.clone(),
            docker_reference: docker_reference.to_owned(),
            creator: Some(format!("ocikit {}", env!("CARGO_PKG_VERSION"))),
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs() as i64),
        }
    }

    /// The JSON bytes to sign.
    pub fn to_json(&self) -> Vec<u8> {
        let mut optional = serde_json::Map::new();
        if let Some(c) = &self.creator {
            optional.insert("creator".into(), c.clone().into());
        }
        if let Some(t) = self.timestamp {
            optional.insert("timestamp".into(), t.into());
        }
        let raw = Raw {
            critical: Critical {
                identity: Identity {
                    docker_reference: self.docker_reference.clone(),
                },
                image: Image {
                    docker_manifest_digest: self.manifest_digest.to_string(),
                },
                kind: self.kind.clone(),
            },
            optional: Some(optional),
        };
        serde_json::to_vec(&raw).expect("a payload serialises")
    }

    /// Parses a payload (only ever after its signature is verified) of the type `expected`.
    pub fn parse(bytes: &[u8], expected: &str) -> Result<Payload, TrustError> {
        let bad = |reason: String| TrustError::InvalidPayload { reason };
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if raw.critical.kind != expected {
            return Err(bad(format!(
                "critical.type is {:?}, not {expected:?}",
                raw.critical.kind
            )));
        }
        let manifest_digest =
            ocikit_image::parse_digest(&raw.critical.image.docker_manifest_digest)
                .map_err(|e| bad(format!("critical.image.docker-manifest-digest: {e}")))?;
        let optional = match raw.optional {
            Some(o) => o,
            None if expected == COSIGN_TYPE => serde_json::Map::new(),
            None => return Err(bad("optional must be an object".into())),
        };
        // "Consumers still SHOULD reject signatures where a member of an `optional` object is
        // supported but the value is recognized as invalid."
        let creator = match optional.get("creator") {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("optional.creator must be a string".into())),
        };
        let timestamp = match optional.get("timestamp") {
            None => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| bad("optional.timestamp must be a 64-bit integer".into()))?,
            ),
        };
        Ok(Payload {
            kind: raw.critical.kind,
            manifest_digest,
            docker_reference: raw.critical.identity.docker_reference,
            creator,
            timestamp,
        })
    }
}

/// Parses a payload of either type (for the fuzz target).
#[doc(hidden)]
pub fn fuzz_payload(bytes: &[u8]) -> bool {
    Payload::parse(bytes, SIMPLE_SIGNING_TYPE).is_ok() | Payload::parse(bytes, COSIGN_TYPE).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let d = ocikit_image::sha256(b"m");
        let p = Payload::new(SIMPLE_SIGNING_TYPE, &d, "example.com/app:v1");
        let back = Payload::parse(&p.to_json(), SIMPLE_SIGNING_TYPE).unwrap();
        assert_eq!(back, p);
        assert!(Payload::parse(&p.to_json(), COSIGN_TYPE).is_err());
        let cosign = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r/a"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        assert!(Payload::parse(cosign.as_bytes(), COSIGN_TYPE).is_ok());
        for bad in [
            // an unknown member of critical
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"r/a"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"atomic container signature","x":1}},"optional":{{}}}}"#
            ),
            // a duplicated member
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"r/a"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"atomic container signature","type":"atomic container signature"}},"optional":{{}}}}"#
            ),
            // a bad digest
            r#"{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"sha256:zz"},"type":"atomic container signature"},"optional":{}}"#.to_owned(),
            // a timestamp that is not an integer
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"r/a"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"atomic container signature"}},"optional":{{"timestamp":"now"}}}}"#
            ),
        ] {
            assert!(Payload::parse(bad.as_bytes(), SIMPLE_SIGNING_TYPE).is_err(), "{bad}");
        }
    }
}
