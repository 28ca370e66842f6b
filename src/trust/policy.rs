//! `containers-policy.json(5)`: which images are accepted, by transport and scope.
//!
//! Parsing is strict, as the man page asks: "unrecognized, duplicated or otherwise invalid
//! fields cause the entire file, and usually the entire operation, to be rejected". Errors
//! carry the line and column serde_json reports.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::TrustError;

/// A parsed `policy.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    default: Vec<Requirement>,
    transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

/// One policy requirement. "For an image to be accepted, *all* of the requirements must be
/// satisfied simultaneously."
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Requirement {
    /// `insecureAcceptAnything`: accepts any image.
    InsecureAcceptAnything,
    /// `reject`: "rejects every image, and every signature".
    Reject,
    /// `signedBy`: a simple signing (OpenPGP) signature by one of these keys.
    SignedBy {
        /// The keyrings (`keyPath`, `keyPaths` or `keyData`).
        keys: Vec<KeySource>,
        /// What identity the signature must claim.
        identity: IdentityRule,
        /// A `keyType` other than `GPGKeys` (known to containers/image, implemented by none).
        unsupported: Option<String>,
    },
    /// `sigstoreSigned`: a cosign signature by this public key.
    SigstoreSigned {
        /// The public keys (`keyPath`, `keyPaths`, `keyData`, `keyDatas`): any one of them.
        keys: Vec<KeySource>,
        /// What identity the signature must claim.
        identity: IdentityRule,
        /// The fields asking for what ocikit does not implement (Fulcio, Rekor, PKI).
        unsupported: Option<String>,
    },
}

/// Where a requirement's keys are.
#[derive(Clone, Debug, PartialEq)]
pub enum KeySource {
    /// A file (`keyPath`, `keyPaths`).
    Path(PathBuf),
    /// The bytes themselves (`keyData`, base64 in the file).
    Data(Vec<u8>),
}

impl KeySource {
    /// The key bytes.
    pub fn read(&self) -> Result<Vec<u8>, TrustError> {
        match self {
            KeySource::Data(d) => Ok(d.clone()),
            KeySource::Path(p) => std::fs::read(p).map_err(|source| TrustError::Io {
                path: p.clone(),
                source,
            }),
        }
    }
}

/// `signedIdentity`: what the identity a signature claims must be, for an image.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityRule {
    /// `matchExact`: "the identity in the signature must exactly match the image identity".
    MatchExact,
    /// `matchRepoDigestOrExact` (the default): "If the image identity carries a tag, the
    /// identity in the signature must exactly match; if the image identity uses a digest
    /// reference, the identity in the signature must be in the same repository".
    MatchRepoDigestOrExact,
    /// `matchRepository`: "the identity in the signature must be in the same repository as
    /// the image identity".
    MatchRepository,
    /// `exactReference`: "must exactly match a specified identity".
    ExactReference(DockerIdentity),
    /// `exactRepository`: "must be in the same repository as a specified identity".
    ExactRepository(DockerIdentity),
    /// `remapIdentity`: "If the image identity matches the specified prefix, that prefix is
    /// replaced by the specified “signed prefix” ...; matching then follows the
    /// `matchRepoDigestOrExact` semantics".
    RemapIdentity {
        /// `prefix`.
        prefix: String,
        /// `signedPrefix`.
        signed_prefix: String,
    },
}

/// A docker reference as containers/image compares them: the fully expanded repository name
/// (`docker.io/library/busybox`), and the tag or digest only when written (a signature's
/// identity may be a bare repository, as cosign writes it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DockerIdentity {
    name: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl DockerIdentity {
    /// Parses `text` with docker's normalisation (`busybox` is `docker.io/library/busybox`),
    /// keeping "no tag" apart from `:latest`.
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        let reference: ocikit_distribution::Reference = text.parse().map_err(
            |e: ocikit_distribution::Error| TrustError::InvalidIdentity {
                value: text.to_owned(),
                reason: e.to_string(),
            },
        )?;
        let last = text.rsplit('/').next().unwrap_or(text);
        let digest = reference.digest().map(|d| d.to_string());
        let tagged = last.split('@').next().unwrap_or(last).contains(':');
        let tag = if tagged {
            reference.tag().map(ToString::to_string)
        } else {
            None
        };
        Ok(DockerIdentity {
            name: format!("{}/{}", reference.registry(), reference.repository()),
            tag,
            digest,
        })
    }

    /// The repository, fully expanded (`docker.io/library/busybox`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, when one was written.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when one was written.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }
}

impl fmt::Display for DockerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl IdentityRule {
    /// Whether a signature claiming `signed` is acceptable for the image `image` (`None`:
    /// the transport has no docker identity, as `oci:`, where only `exactReference` and
    /// `exactRepository` can match).
    pub fn matches(&self, image: Option<&DockerIdentity>, signed: &DockerIdentity) -> bool {
        match (self, image) {
            (IdentityRule::ExactReference(want), _) => {
                !signed.is_name_only() && want.to_string() == signed.to_string()
            }
            (IdentityRule::ExactRepository(want), _) => want.name == signed.name,
            (_, None) => false,
            (IdentityRule::MatchExact, Some(image)) => {
                !image.is_name_only()
                    && !signed.is_name_only()
                    && image.to_string() == signed.to_string()
            }
            (IdentityRule::MatchRepoDigestOrExact, Some(image)) => {
                repo_digest_or_exact(image, signed)
            }
            (IdentityRule::MatchRepository, Some(image)) => image.name == signed.name,
            (
                IdentityRule::RemapIdentity {
                    prefix,
                    signed_prefix,
                },
                Some(image),
            ) => {
                let remapped = match image.name.strip_prefix(prefix.as_str()) {
                    Some(rest) if rest.is_empty() || rest.starts_with('/') => DockerIdentity {
                        name: format!("{signed_prefix}{rest}"),
                        ..image.clone()
                    },
                    _ => image.clone(),
                };
                repo_digest_or_exact(&remapped, signed)
            }
        }
    }
}

fn repo_digest_or_exact(image: &DockerIdentity, signed: &DockerIdentity) -> bool {
    if image.digest.is_some() {
        image.name == signed.name
    } else if image.tag.is_some() {
        image.to_string() == signed.to_string()
    } else {
        false
    }
}

impl Policy {
    /// Parses a `policy.json`; errors name the line and column.
    pub fn from_slice(bytes: &[u8], path: Option<&Path>) -> Result<Policy, TrustError> {
        let raw: RawPolicy = serde_json::from_slice(bytes).map_err(|e| TrustError::Policy {
            path: path.map(Path::to_path_buf),
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        Ok(Policy {
            default: raw.default,
            transports: raw
                .transports
                .map(|t| t.0.into_iter().map(|(k, v)| (k, v.0)).collect())
                .unwrap_or_default(),
        })
    }

    /// Reads and parses the policy at `path`.
    pub fn from_file(path: &Path) -> Result<Policy, TrustError> {
        let bytes = std::fs::read(path).map_err(|source| TrustError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::from_slice(&bytes, Some(path))
    }

    /// The policy at the usual locations: "`$HOME/.config/containers/policy.json`, if it
    /// exists, otherwise from `/etc/containers/policy.json`"; `None` when neither exists.
    pub fn from_default_locations() -> Result<Option<Policy>, TrustError> {
        let mut candidates = Vec::new();
        if let Some(home) = std::env::var_os("HOME") {
            candidates.push(PathBuf::from(home).join(".config/containers/policy.json"));
        }
        candidates.push(PathBuf::from("/etc/containers/policy.json"));
        for path in candidates {
            if path.exists() {
                return Policy::from_file(&path).map(Some);
            }
        }
        Ok(None)
    }

    /// A policy of one global default.
    pub fn with_default(default: Vec<Requirement>) -> Policy {
        Policy {
            default,
            transports: BTreeMap::new(),
        }
    }

    /// The requirements for an image of `transport` whose scopes, most specific first, are
    /// `scopes`: "If multiple policy requirements match a given image, only the requirements
    /// from the most specific match apply". Returns the scope that matched (`""` for the
    /// transport's default, `None` for the global default).
    pub fn requirements_for<'a>(
        &'a self,
        transport: &str,
        scopes: &[String],
    ) -> (Option<&'a str>, &'a [Requirement]) {
        if let Some(t) = self.transports.get(transport) {
            for scope in scopes.iter().map(String::as_str).chain([""]) {
                if let Some((k, r)) = t.get_key_value(scope) {
                    return (Some(k.as_str()), r);
                }
            }
        }
        (None, &self.default)
    }
}

/// The policy scopes of a docker reference, most specific first (containers-policy.json(5),
/// `docker:`): the reference itself ("named Docker references *in the fully expanded
/// form*, either using a tag or digest"), then the repository, its parent namespaces, the
/// registry host, and the wildcarded domains ("`*.example.com` is a valid case").
pub fn docker_scopes(image: &DockerIdentity) -> Vec<String> {
    let mut scopes = Vec::new();
    if !image.is_name_only() {
        scopes.push(image.to_string());
    }
    let mut name = image.name.as_str();
    scopes.push(name.to_owned());
    while let Some((parent, _)) = name.rsplit_once('/') {
        scopes.push(parent.to_owned());
        name = parent;
    }
    // `name` is the host[:port] now. Wildcards: "*.b.c" for "a.b.c", then "*.c".
    let host = name.split(':').next().unwrap_or(name);
    let mut rest = host;
    while let Some((_, parent)) = rest.split_once('.') {
        scopes.push(format!("*.{parent}"));
        rest = parent;
    }
    scopes
}

/// The policy scopes of a path-based location (`oci:DIR:NAME`, archives): "_directory_`:`_tag_,
/// and _directory_ referring to a directory containing one or more tags, or any of the
/// parent directories" ("The top-level scope `"/"` is forbidden").
pub fn path_scopes(path: &Path, name: Option<&str>) -> Vec<String> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut scopes = Vec::new();
    if let Some(n) = name {
        scopes.push(format!("{}:{n}", path.display()));
    }
    let mut p = Some(path.as_path());
    while let Some(dir) = p {
        if dir.parent().is_none() {
            break;
        }
        scopes.push(dir.display().to_string());
        p = dir.parent();
    }
    scopes
}

// --- Parsing ----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default: Vec<Requirement>,
    transports: Option<UniqueMap<UniqueMap<Vec<Requirement>>>>,
}

/// A JSON object whose duplicated keys are an error, as containers/image's parser has it.
struct UniqueMap<V>(BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(de::Error::custom(format!("duplicated key {key:?}")));
                    }
                    let value = map.next_value()?;
                    out.insert(key, value);
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(V_(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRequirement {
    #[serde(rename = "type")]
    kind: String,
    key_type: Option<String>,
    key_path: Option<PathBuf>,
    key_paths: Option<Vec<PathBuf>>,
    key_data: Option<String>,
    key_datas: Option<Vec<String>>,
    signed_identity: Option<RawIdentity>,
    fulcio: Option<serde_json::Value>,
    pki: Option<serde_json::Value>,
    rekor_public_key_path: Option<serde_json::Value>,
    rekor_public_key_paths: Option<serde_json::Value>,
    rekor_public_key_data: Option<serde_json::Value>,
    rekor_public_key_datas: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawIdentity {
    #[serde(rename = "type")]
    kind: String,
    docker_reference: Option<String>,
    docker_repository: Option<String>,
    prefix: Option<String>,
    signed_prefix: Option<String>,
}

impl<'de> Deserialize<'de> for Requirement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawRequirement::deserialize(d)?;
        raw.into_requirement().map_err(de::Error::custom)
    }
}

impl RawRequirement {
    fn into_requirement(self) -> Result<Requirement, String> {
        let simple = |r: Requirement, raw: &RawRequirement| {
            if raw.key_type.is_some()
                || raw.key_path.is_some()
                || raw.key_paths.is_some()
                || raw.key_data.is_some()
                || raw.key_datas.is_some()
                || raw.signed_identity.is_some()
                || raw.fulcio.is_some()
                || raw.pki.is_some()
                || raw.rekor_public_key_path.is_some()
                || raw.rekor_public_key_paths.is_some()
                || raw.rekor_public_key_data.is_some()
                || raw.rekor_public_key_datas.is_some()
            {
                Err(format!("{:?} takes no other field", raw.kind))
            } else {
                Ok(r)
            }
        };
        let b64 = |s: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("keyData is not base64: {e}"))
        };
        let identity = |raw: Option<RawIdentity>| -> Result<IdentityRule, String> {
            match raw {
                None => Ok(IdentityRule::MatchRepoDigestOrExact),
                Some(i) => i.into_rule(),
            }
        };
        match self.kind.as_str() {
            "insecureAcceptAnything" => simple(Requirement::InsecureAcceptAnything, &self),
            "reject" => simple(Requirement::Reject, &self),
            "signedBy" => {
                if self.key_datas.is_some()
                    || self.fulcio.is_some()
                    || self.pki.is_some()
                    || self.rekor_public_key_path.is_some()
                    || self.rekor_public_key_paths.is_some()
                    || self.rekor_public_key_data.is_some()
                    || self.rekor_public_key_datas.is_some()
                {
                    return Err("signedBy takes keyType, keyPath, keyPaths, keyData and \
                                signedIdentity only"
                        .into());
                }
                // "Exactly one of `keyPath`, `keyPaths` and `keyData` must be present".
                let keys = match (self.key_path, self.key_paths, self.key_data) {
                    (Some(p), None, None) => vec![KeySource::Path(p)],
                    (None, Some(ps), None) if !ps.is_empty() => {
                        ps.into_iter().map(KeySource::Path).collect()
                    }
                    (None, None, Some(d)) => vec![KeySource::Data(b64(&d)?)],
                    _ => {
                        return Err(
                            "signedBy needs exactly one of keyPath, keyPaths and keyData".into(),
                        );
                    }
                };
                let unsupported = match self.key_type.as_deref() {
                    Some("GPGKeys") => None,
                    // Named by containers/image, implemented by none.
                    Some(t @ ("signedByGPGKeys" | "X509Certificates" | "signedByX509CAs")) => {
                        Some(format!("signedBy keyType {t}"))
                    }
                    Some(t) => return Err(format!("unknown keyType {t:?}")),
                    None => return Err("signedBy needs keyType".into()),
                };
                Ok(Requirement::SignedBy {
                    keys,
                    identity: identity(self.signed_identity)?,
                    unsupported,
                })
            }
            "sigstoreSigned" => {
                if self.key_type.is_some() {
                    return Err("sigstoreSigned takes no keyType".into());
                }
                let mut keys: Vec<KeySource> = Vec::new();
                keys.extend(self.key_path.map(KeySource::Path));
                keys.extend(
                    self.key_paths
                        .unwrap_or_default()
                        .into_iter()
                        .map(KeySource::Path),
                );
                if let Some(d) = &self.key_data {
                    keys.push(KeySource::Data(b64(d)?));
                }
                for d in self.key_datas.unwrap_or_default() {
                    keys.push(KeySource::Data(b64(&d)?));
                }
                let mut wanted = Vec::new();
                for (field, present) in [
                    ("fulcio", self.fulcio.is_some()),
                    ("pki", self.pki.is_some()),
                    ("rekorPublicKeyPath", self.rekor_public_key_path.is_some()),
                    ("rekorPublicKeyPaths", self.rekor_public_key_paths.is_some()),
                    ("rekorPublicKeyData", self.rekor_public_key_data.is_some()),
                    ("rekorPublicKeyDatas", self.rekor_public_key_datas.is_some()),
                ] {
                    if present {
                        wanted.push(field);
                    }
                }
                if keys.is_empty() && wanted.is_empty() {
                    return Err(
                        "sigstoreSigned needs keyPath, keyPaths, keyData or keyDatas \
                                (or fulcio)"
                            .into(),
                    );
                }
                Ok(Requirement::SigstoreSigned {
                    keys,
                    identity: identity(self.signed_identity)?,
                    unsupported: (!wanted.is_empty())
                        .then(|| format!("sigstoreSigned with {}", wanted.join(", "))),
                })
            }
            other => Err(format!("unknown requirement type {other:?}")),
        }
    }
}

impl RawIdentity {
    fn into_rule(self) -> Result<IdentityRule, String> {
        let none_but = |allowed: &[&str]| -> Result<(), String> {
            for (field, present) in [
                ("dockerReference", self.docker_reference.is_some()),
                ("dockerRepository", self.docker_repository.is_some()),
                ("prefix", self.prefix.is_some()),
                ("signedPrefix", self.signed_prefix.is_some()),
            ] {
                if present && !allowed.contains(&field) {
                    return Err(format!("signedIdentity {:?} takes no {field}", self.kind));
                }
            }
            Ok(())
        };
        let parse = |s: &Option<String>, field: &str| -> Result<DockerIdentity, String> {
            let s = s
                .as_deref()
                .ok_or_else(|| format!("signedIdentity {:?} needs {field}", self.kind))?;
            DockerIdentity::parse(s).map_err(|e| e.to_string())
        };
        match self.kind.as_str() {
            "matchExact" => none_but(&[]).map(|()| IdentityRule::MatchExact),
            "matchRepoDigestOrExact" => {
                none_but(&[]).map(|()| IdentityRule::MatchRepoDigestOrExact)
            }
            "matchRepository" => none_but(&[]).map(|()| IdentityRule::MatchRepository),
            "exactReference" => {
                none_but(&["dockerReference"])?;
                let r = parse(&self.docker_reference, "dockerReference")?;
                if r.is_name_only() {
                    return Err("exactReference needs a tag or digest".into());
                }
                Ok(IdentityRule::ExactReference(r))
            }
            "exactRepository" => {
                none_but(&["dockerRepository"])?;
                Ok(IdentityRule::ExactRepository(parse(
                    &self.docker_repository,
                    "dockerRepository",
                )?))
            }
            "remapIdentity" => {
                none_but(&["prefix", "signedPrefix"])?;
                let check = |s: &Option<String>, field: &str| -> Result<String, String> {
                    let s = s
                        .clone()
                        .ok_or_else(|| format!("remapIdentity needs {field}"))?;
                    // "they must not contain tags/digests" and are fully expanded names.
                    let tagged = s
                        .split_once('/')
                        .is_some_and(|(_, path)| path.contains(':'));
                    if s.is_empty() || s.contains('@') || tagged {
                        return Err(format!("remapIdentity {field} {s:?} is not a repository"));
                    }
                    Ok(s)
                };
                Ok(IdentityRule::RemapIdentity {
                    prefix: check(&self.prefix, "prefix")?,
                    signed_prefix: check(&self.signed_prefix, "signedPrefix")?,
                })
            }
            other => Err(format!("unknown signedIdentity type {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_picks_the_most_specific_scope() {
        let p = Policy::from_slice(
            br#"{"default":[{"type":"reject"}],
                 "transports":{"docker":{
                   "":[{"type":"insecureAcceptAnything"}],
                   "example.com/ns":[{"type":"signedBy","keyType":"GPGKeys","keyData":"AAAA"}],
                   "*.internal":[{"type":"reject"}]}}}"#,
            None,
        )
        .unwrap();
        let id = DockerIdentity::parse("example.com/ns/app:v1").unwrap();
        let (scope, r) = p.requirements_for("docker", &docker_scopes(&id));
        assert_eq!(scope, Some("example.com/ns"));
        assert!(matches!(r[0], Requirement::SignedBy { .. }));
        let id = DockerIdentity::parse("a.b.internal/x:1").unwrap();
        assert_eq!(
            p.requirements_for("docker", &docker_scopes(&id)).0,
            Some("*.internal")
        );
        let id = DockerIdentity::parse("other.org/x:1").unwrap();
        assert_eq!(
            p.requirements_for("docker", &docker_scopes(&id)).0,
            Some("")
        );
        assert_eq!(p.requirements_for("oci", &[]).0, None);
    }

    #[test]
    fn errors_name_line_and_column() {
        for (text, line) in [
            ("{\"default\": [\n  {\"type\": \"reject\",}\n]}", 2),
            ("{\"default\": [{\"type\": \"reject\"}],\n \"bogus\": 1}", 2),
            ("{\"default\": [{\"type\": \"nope\"}]}", 1),
            (
                "{\"default\": [],\n\"transports\": {\"docker\": {\"a\": [], \"a\": []}}}",
                2,
            ),
            (
                "{\"default\": [{\"type\":\"signedBy\",\"keyType\":\"GPGKeys\"}]}",
                1,
            ),
        ] {
            match Policy::from_slice(text.as_bytes(), None) {
                Err(TrustError::Policy { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn identity_rules() {
        let id = |s: &str| DockerIdentity::parse(s).unwrap();
        let tagged = id("example.com/ns/app:v1");
        let digested = id(
            "example.com/ns/app@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        );
        let r = IdentityRule::MatchRepoDigestOrExact;
        assert!(r.matches(Some(&tagged), &id("example.com/ns/app:v1")));
        assert!(!r.matches(Some(&tagged), &id("example.com/ns/app:v2")));
        assert!(!r.matches(Some(&tagged), &id("example.com/ns/app")));
        assert!(r.matches(Some(&digested), &id("example.com/ns/app:v2")));
        assert!(!r.matches(Some(&digested), &id("example.com/ns/other:v2")));
        assert!(IdentityRule::MatchRepository.matches(Some(&tagged), &id("example.com/ns/app")));
        assert!(!IdentityRule::MatchExact.matches(Some(&digested), &id("example.com/ns/app:v1")));
        let remap = IdentityRule::RemapIdentity {
            prefix: "mirror.local/vendor".into(),
            signed_prefix: "vendor.example".into(),
        };
        assert!(remap.matches(
            Some(&id("mirror.local/vendor/p/i:1")),
            &id("vendor.example/p/i:1")
        ));
        assert!(!remap.matches(
            Some(&id("mirror.local/vendorx/i:1")),
            &id("vendor.example/i:1")
        ));
        assert_eq!(id("busybox").name(), "docker.io/library/busybox");
        assert_eq!(id("busybox").tag(), None);
    }
}
