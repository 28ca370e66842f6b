//! Reference names of the image layout (`org.opencontainers.image.ref.name`).

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A validated `org.opencontainers.image.ref.name`, by the grammar of image-layout v1.1:
///
/// ```text
/// ref       ::= component ("/" component)*
/// component ::= alphanum (separator alphanum)*
/// alphanum  ::= [A-Za-z0-9]+
/// separator ::= [-._:@+] | "--"
/// ```
///
/// This is wider than a distribution-spec tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`): a layout
/// may name a manifest `library/busybox:1.36` or `v1.0+build`. Every [`ocikit_image::Tag`] that
/// starts with an alphanumeric and has no `__` or `_-`-style runs is a valid name; a tag like
/// `_x` is not, and is refused here. Names are at most 1024 bytes long.
///
/// ```
/// use ocikit_layout::RefName;
/// assert!("v1.0".parse::<RefName>().is_ok());
/// assert!("library/busybox:1.36".parse::<RefName>().is_ok());
/// assert!("bad name".parse::<RefName>().is_err());
/// assert!("a//b".parse::<RefName>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RefName(String);

/// Longest accepted name, in bytes.
const MAX_LEN: usize = 1024;

impl RefName {
    /// Validates `text` as a reference name.
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        let fail = |reason: &str| Error::InvalidRefName {
            value: text.clone(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(fail("empty"));
        }
        if text.len() > MAX_LEN {
            return Err(fail("longer than 1024 bytes"));
        }
        for component in text.split('/') {
            check_component(component).map_err(fail)?;
        }
        Ok(RefName(text))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_component(c: &str) -> std::result::Result<(), &'static str> {
    let b = c.as_bytes();
    if b.is_empty() {
        return Err("empty path component");
    }
    let alnum = |x: u8| x.is_ascii_alphanumeric();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("a component must start and end with a letter or digit");
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: one of -._:@+ or "--", followed by an alphanumeric.
        let len = if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            2
        } else if b"-._:@+".contains(&b[i]) {
            1
        } else {
            return Err("only letters, digits, '/' and the separators - . _ : @ + are allowed");
        };
        i += len;
        if !b.get(i).is_some_and(|&x| alnum(x)) {
            return Err("separators must be followed by a letter or digit");
        }
    }
    Ok(())
}

impl FromStr for RefName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RefName::new(s)
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RefName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&ocikit_image::Tag> for RefName {
    type Error = Error;
    fn try_from(tag: &ocikit_image::Tag) -> Result<Self> {
        RefName::new(tag.as_str())
    }
}

impl serde::Serialize for RefName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for RefName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RefName::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        for ok in ["a", "v1.0", "1", "a--b", "a-b_c.d:e@f+g", "x/y/z", "latest"] {
            assert!(RefName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "-a", "a-", "a..b", "a/", "/a", "a b", "a---b", "ä", "a__b", "_a",
        ] {
            assert!(RefName::new(bad).is_err(), "{bad}");
        }
        assert!(RefName::new("a".repeat(1025)).is_err());
    }
}
