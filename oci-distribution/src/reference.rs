//! Image references: `[registry[:port]/]repository[:tag][@digest]`, normalised as docker does.

use std::fmt;
use std::str::FromStr;

use oci_spec::distribution::Reference as SpecReference;
use oci_spec::image::Digest;
use ocikit_image::{Tag, TagOrDigest};

use crate::{Error, Result};

/// A validated image reference, a newtype over [`oci_spec::distribution::Reference`].
///
/// Parsing normalises as docker does: no registry means `docker.io`, a one-component
/// repository on `docker.io` gets `library/`, and no tag nor digest means `latest`. A first
/// component with a `.` or a `:`, or `localhost`, is a registry. The digest is checked (sha256
/// and sha512 are supported). When both a tag and a digest are given, the digest decides what
/// is fetched.
///
/// ```
/// use ocikit_distribution::Reference;
///
/// let r: Reference = "busybox".parse()?;
/// assert_eq!(r.registry(), "docker.io");
/// assert_eq!(r.repository(), "library/busybox");
/// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
///
/// let r: Reference = "localhost:5000/team/app@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".parse()?;
/// assert_eq!(r.registry(), "localhost:5000");
/// assert!(r.digest().is_some());
/// assert!("UPPER/case".parse::<Reference>().is_err());
/// # Ok::<_, ocikit_distribution::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    inner: SpecReference,
    target: TagOrDigest,
    tag: Option<Tag>,
}

impl Reference {
    /// Parses and validates a reference.
    pub fn parse(text: &str) -> Result<Self> {
        let err = |reason: String| Error::InvalidReference {
            value: text.to_owned(),
            reason,
        };
        if text.trim() != text {
            return Err(err("leading or trailing white space".into()));
        }
        // oci-spec's grammar has no IPv6 literal hosts: parse with a stand-in host, then put
        // the literal back.
        let mut ipv6 = None;
        let mut parsed = text.to_owned();
        if let Some(rest) = text.strip_prefix('[') {
            let (addr, after) = rest
                .split_once(']')
                .ok_or_else(|| err("unterminated '[' in the registry host".into()))?;
            addr.parse::<std::net::Ipv6Addr>()
                .map_err(|e| err(format!("invalid IPv6 address {addr:?}: {e}")))?;
            ipv6 = Some(format!("[{addr}]"));
            parsed = format!("ipv6.stand-in.invalid{after}");
        }
        let mut inner = SpecReference::from_str(&parsed).map_err(|e| err(e.to_string()))?;
        if let Some(host) = ipv6 {
            let port = inner
                .registry()
                .strip_prefix("ipv6.stand-in.invalid")
                .unwrap_or_default()
                .to_owned();
            let registry = format!("{host}{port}");
            let repo = inner.repository().to_owned();
            inner = match (
                inner.tag().map(str::to_owned),
                inner.digest().map(str::to_owned),
            ) {
                (Some(t), Some(d)) => SpecReference::with_tag_and_digest(registry, repo, t, d),
                (_, Some(d)) => SpecReference::with_digest(registry, repo, d),
                (t, None) => SpecReference::with_tag(registry, repo, t.unwrap_or("latest".into())),
            };
        }
        Self::from_spec(inner).map_err(|e| match e {
            Error::InvalidReference { reason, .. } => err(reason),
            other => other,
        })
    }

    /// Validates a reference of `oci_spec` (for example one made by its constructors).
    pub fn from_spec(inner: SpecReference) -> Result<Self> {
        let err = |reason: String| Error::InvalidReference {
            value: inner.to_string(),
            reason,
        };
        if inner.registry().is_empty() {
            return Err(err("no registry".into()));
        }
        let repo = inner.repository();
        if repo.is_empty() {
            return Err(err("empty repository".into()));
        }
        for component in repo.split('/') {
            let ok = !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && component.as_bytes()[0].is_ascii_alphanumeric()
                && component.as_bytes()[component.len() - 1].is_ascii_alphanumeric();
            if !ok {
                return Err(err(format!(
                    "repository component {component:?} must be lowercase letters and digits \
                     separated by '.', '_', '__' or '-'"
                )));
            }
        }
        let target = match (inner.digest(), inner.tag()) {
            (Some(d), _) => {
                TagOrDigest::Digest(ocikit_image::parse_digest(d).map_err(|e| err(e.to_string()))?)
            }
            (None, Some(t)) => TagOrDigest::Tag(
                t.parse()
                    .map_err(|e: ocikit_image::Error| err(e.to_string()))?,
            ),
            (None, None) => TagOrDigest::Tag("latest".parse().expect("valid tag")),
        };
        let tag = match (&target, inner.tag()) {
            (TagOrDigest::Tag(t), _) => Some(t.clone()),
            (TagOrDigest::Digest(_), Some(t)) => Some(
                t.parse()
                    .map_err(|e: ocikit_image::Error| err(e.to_string()))?,
            ),
            (TagOrDigest::Digest(_), None) => None,
        };
        Ok(Reference { inner, target, tag })
    }

    /// A reference to `target` in `registry`/`repository`.
    pub fn new(registry: &str, repository: &str, target: TagOrDigest) -> Result<Self> {
        let inner = match &target {
            TagOrDigest::Tag(t) => {
                SpecReference::with_tag(registry.into(), repository.into(), t.to_string())
            }
            TagOrDigest::Digest(d) => {
                SpecReference::with_digest(registry.into(), repository.into(), d.to_string())
            }
        };
        Self::from_spec(inner)
    }

    /// The registry as written or normalised (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The host to connect to, with its port: `registry-1.docker.io` for `docker.io` (and
    /// `index.docker.io`), as docker does; the registry itself otherwise.
    pub fn registry_host(&self) -> &str {
        match self.registry() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            other => other,
        }
    }

    /// The repository (`library/busybox`).
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag, if one was given (or `latest` when neither tag nor digest was).
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        match &self.target {
            TagOrDigest::Digest(d) => Some(d),
            TagOrDigest::Tag(_) => None,
        }
    }

    /// What to fetch: the digest when there is one, else the tag.
    pub fn target(&self) -> &TagOrDigest {
        &self.target
    }

    /// The same repository with another tag or digest.
    pub fn with_target(&self, target: TagOrDigest) -> Self {
        Self::new(self.registry(), self.repository(), target).expect("same valid repository")
    }

    /// The `oci_spec` reference.
    pub fn as_spec(&self) -> &SpecReference {
        &self.inner
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl From<Reference> for SpecReference {
    fn from(r: Reference) -> Self {
        r.inner
    }
}

impl TryFrom<SpecReference> for Reference {
    type Error = Error;
    fn try_from(r: SpecReference) -> Result<Self> {
        Reference::from_spec(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn docker_normalisation() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (
                r.registry(),
                r.registry_host(),
                r.repository(),
                r.tag().map(Tag::as_str)
            ),
            (
                "docker.io",
                "registry-1.docker.io",
                "library/busybox",
                Some("latest")
            )
        );
        let r = Reference::parse("user/app:1.0").unwrap();
        assert_eq!((r.registry(), r.repository()), ("docker.io", "user/app"));
        let r = Reference::parse("docker.io/busybox").unwrap();
        assert_eq!(r.repository(), "library/busybox");
        let r = Reference::parse("localhost/app").unwrap();
        assert_eq!((r.registry(), r.repository()), ("localhost", "app"));
        let r = Reference::parse("127.0.0.1:5000/a/b/c:v2").unwrap();
        assert_eq!((r.registry(), r.repository()), ("127.0.0.1:5000", "a/b/c"));
        assert_eq!(r.target().to_string(), "v2");
        let r = Reference::parse(&format!("[::1]:5000/app@{D}")).unwrap();
        assert_eq!(r.registry(), "[::1]:5000");
        assert_eq!(r.digest().unwrap().to_string(), D);
        let r = Reference::parse(&format!("quay.io/a/b:t@{D}")).unwrap();
        assert_eq!(r.tag().map(Tag::as_str), Some("t"));
        assert!(matches!(r.target(), TagOrDigest::Digest(_)));
    }

    #[test]
    fn invalid_references_are_refused_clearly() {
        for bad in [
            "",
            "Upper/case",
            "a//b",
            "app:",
            "app@sha256:abc",
            "app@md5:0123",
            " app",
            "app:has/slash",
            "-app",
            "a/b_",
        ] {
            match Reference::parse(bad) {
                Err(Error::InvalidReference { value, reason }) => {
                    assert_eq!(value, bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn round_trip() {
        for text in ["example.com:8443/x/y:z", "localhost:5000/app:latest"] {
            assert_eq!(Reference::parse(text).unwrap().to_string(), text);
        }
        let r = Reference::new("localhost:5000", "app", D.parse().unwrap()).unwrap();
        assert_eq!(r.to_string(), format!("localhost:5000/app@{D}"));
    }
}
