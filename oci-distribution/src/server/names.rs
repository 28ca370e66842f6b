//! Repository names, query strings and percent-decoding of request targets.

use ocikit_image::Tag;
use ocikit_layout::RefName;

/// The longest repository name accepted. The distribution-spec: "Many clients impose a limit
/// of 255 characters on the length of the concatenation of the registry hostname (and
/// optional port), `/`, and `<name>` value."
pub(crate) const MAX_NAME_LEN: usize = 255;

/// True when `name` matches the distribution-spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
///
/// Components therefore never are empty, `.` or `..`, and never start with `_`: the storage
/// relies on that (see `storage.rs`).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('/').all(crate::reference::path_component)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded `key=value` pairs of a query string (a key without `=` has an empty value).
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Escapes a query value for a `Link` header (tags and names need none, but `last` is
/// client-supplied text echoed back).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How a tag that is no layout reference name is stored: this prefix, then the tag's bytes
/// in hex. `+` never appears in a tag, so no tag is stored under a name of this form
/// otherwise.
const ENCODED_TAG: &str = "tag+";

/// The reference name (`org.opencontainers.image.ref.name`) tag `tag` is stored under.
///
/// The distribution-spec's tags, `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`, are not all layout
/// reference names, whose components start and end with an alphanumeric and have one
/// separator (or `--`) between alphanumerics: `_x`, `v1-`, `a__b` are tags but not names.
/// A tag that is a name is stored as itself (so `skopeo copy oci:<layout>:<tag>` finds it);
/// any other is stored as `tag+<hex of its bytes>`, which is a name and decodes back.
pub(crate) fn tag_ref(tag: &Tag) -> RefName {
    RefName::new(tag.as_str()).unwrap_or_else(|_| {
        let hex: String = tag.as_str().bytes().map(|b| format!("{b:02x}")).collect();
        RefName::new(format!("{ENCODED_TAG}{hex}"))
            .expect("an alphanumeric, a separator and hex digits make a reference name")
    })
}

/// The tag stored under reference name `name`; `None` for a name no tag is stored under
/// (written into the layout by another tool, say `a:b`), which the API cannot address.
pub(crate) fn ref_tag(name: &RefName) -> Option<Tag> {
    let text = name.as_str();
    let Some(hex) = text.strip_prefix(ENCODED_TAG) else {
        return Tag::new(text).ok();
    };
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let tag = Tag::new(String::from_utf8(bytes).ok()?).ok()?;
    // Only the one encoding `tag_ref` makes: a tag that is a name is stored as itself.
    (tag_ref(&tag) == *name).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_grammar() {
        for ok in [
            "a",
            "library/busybox",
            "a.b_c__d---e/f0",
            "ocikit-test/x-1-2-3",
            "0/1/2",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a//b",
            "/a",
            "a/",
            "..",
            "a/../b",
            ".a",
            "a.",
            "a___b",
            "a_-b",
            "_layout",
            "a/_layout",
            "a..b",
            "a b",
            "a%2fb",
            &"a".repeat(256),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_tag_has_a_reference_name() {
        let longest = format!("_{}", "-".repeat(127));
        for (tag, stored) in [
            ("latest", "latest"),
            ("v1.0-rc.1", "v1.0-rc.1"),
            ("A--b", "A--b"),
            ("_x", "tag+5f78"),
            ("v1-", "tag+76312d"),
            ("a__b", "tag+615f5f62"),
            (longest.as_str(), ""),
        ] {
            let tag = Tag::new(tag).unwrap();
            let name = tag_ref(&tag);
            if !stored.is_empty() {
                assert_eq!(name.as_str(), stored);
            }
            assert_eq!(ref_tag(&name).as_ref(), Some(&tag));
        }
        for foreign in ["a:b", "tag+zz", "tag+5", "tag+6c6174657374", "x/y"] {
            assert_eq!(ref_tag(&RefName::new(foreign).unwrap()), None, "{foreign}");
        }
    }

    #[test]
    fn queries_decode() {
        assert_eq!(
            parse_query("digest=sha256%3Aabc&from=a/b&n"),
            vec![
                ("digest".into(), "sha256:abc".into()),
                ("from".into(), "a/b".into()),
                ("n".into(), String::new())
            ]
        );
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }
}
