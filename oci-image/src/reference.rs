//! Tags, and the tag-or-digest that names a manifest inside one repository or layout.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::Digest;

use crate::{Error, Result, parse_digest};

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`, as the distribution-spec defines it.
///
/// ```
/// use ocikit_image::Tag;
/// let t: Tag = "v1.2.3-rc_1".parse()?;
/// assert_eq!(t.as_str(), "v1.2.3-rc_1");
/// assert!("-leading-dash".parse::<Tag>().is_err());
/// assert!("has/slash".parse::<Tag>().is_err());
/// # Ok::<_, ocikit_image::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Validates `text` as a tag.
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        let err = |reason: &str| Error::InvalidTag {
            value: text.clone(),
            reason: reason.to_owned(),
        };
        let b = text.as_bytes();
        if b.is_empty() {
            return Err(err("empty"));
        }
        if b.len() > 128 {
            return Err(err("longer than 128 characters"));
        }
        if !(b[0].is_ascii_alphanumeric() || b[0] == b'_') {
            return Err(err("must start with a letter, a digit or '_'"));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(err(&format!(
                "character {c:?} is not allowed (letters, digits, '_', '.', '-')"
            )));
        }
        Ok(Tag(text))
    }

    /// The tag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Tag::new(s)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Tag::new(s).map_err(serde::de::Error::custom)
    }
}

/// What names a manifest within one repository or layout: a tag or a digest.
///
/// Parsing treats text with a `:` as a digest (tags cannot contain one) and everything else
/// as a tag.
///
/// ```
/// use ocikit_image::TagOrDigest;
/// assert!(matches!("latest".parse()?, TagOrDigest::Tag(_)));
/// let d: TagOrDigest =
///     "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".parse()?;
/// assert!(matches!(d, TagOrDigest::Digest(_)));
/// # Ok::<_, ocikit_image::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TagOrDigest {
    /// A tag.
    Tag(Tag),
    /// A digest.
    Digest(Digest),
}

impl FromStr for TagOrDigest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.contains(':') {
            parse_digest(s).map(TagOrDigest::Digest)
        } else {
            Tag::new(s).map(TagOrDigest::Tag)
        }
    }
}

impl fmt::Display for TagOrDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagOrDigest::Tag(t) => t.fmt(f),
            TagOrDigest::Digest(d) => d.fmt(f),
        }
    }
}

impl From<Tag> for TagOrDigest {
    fn from(t: Tag) -> Self {
        TagOrDigest::Tag(t)
    }
}

impl From<Digest> for TagOrDigest {
    fn from(d: Digest) -> Self {
        TagOrDigest::Digest(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tag_rules() {
        assert!(Tag::new("a".repeat(128)).is_ok());
        assert!(Tag::new("a".repeat(129)).is_err());
        for ok in ["latest", "_x", "1.0", "A-b_c.d"] {
            assert!(Tag::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a b", "ä", "a/b", "a@b"] {
            assert!(
                matches!(Tag::new(bad), Err(Error::InvalidTag { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn tag_serde() {
        let t: Tag = serde_json::from_str("\"v1\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"v1\"");
        assert!(serde_json::from_str::<Tag>("\"bad tag\"").is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".{0,300}") {
            let _ = s.parse::<TagOrDigest>();
        }

        #[test]
        fn valid_tags_round_trip(s in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") {
            let t = Tag::new(s.clone()).unwrap();
            prop_assert_eq!(t.to_string(), s.clone());
            prop_assert_eq!(s.parse::<TagOrDigest>().unwrap(), TagOrDigest::Tag(t));
        }
    }
}
