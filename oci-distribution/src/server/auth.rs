//! Basic authentication against an htpasswd file of bcrypt hashes.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;

use crate::{Error, Result};

/// Users and their bcrypt password hashes, as `htpasswd -B` writes them (`user:$2y$...`, one
/// a line; empty lines and `#` comments are skipped).
///
/// Only bcrypt (`$2a$`, `$2b$`, `$2x$`, `$2y$`) is accepted, as docker-registry does: the
/// MD5-crypt, `{SHA}` and plain-text forms `htpasswd` can also write are too weak and are
/// refused when the file is read.
///
/// ```
/// use ocikit_distribution::Htpasswd;
/// let users = Htpasswd::parse("# users\nalice:$2y$05$0123456789012345678901u5fQ0YHn0jNxDtkD5Ve/2VO6TvZ0iQKm\n")?;
/// assert_eq!(users.len(), 1);
/// assert!(Htpasswd::parse("bob:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=").is_err());
/// # Ok::<_, ocikit_distribution::Error>(())
/// ```
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Digests of `Authorization` values already checked: bcrypt is slow by design, and a
    /// client sends the same header on every request.
    verified: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Htpasswd {
    /// Parses the text of an htpasswd file.
    pub fn parse(text: &str) -> Result<Self> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| Error::Server {
                message: format!("htpasswd line {}: {reason}", n + 1),
            };
            let (user, hash) = line.split_once(':').ok_or_else(|| bad("no `:`"))?;
            if user.is_empty() {
                return Err(bad("empty user name"));
            }
            if !["$2a$", "$2b$", "$2x$", "$2y$"]
                .iter()
                .any(|p| hash.starts_with(p))
            {
                return Err(bad("only bcrypt hashes are accepted (htpasswd -B)"));
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Reads an htpasswd file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let text = std::fs::read_to_string(path.as_ref()).map_err(|e| Error::Server {
            message: format!("reading {}: {e}", path.as_ref().display()),
        })?;
        Self::parse(&text)
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file named no user (then nobody can log in).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// True when `authorization` (the request header's value) is `Basic` with a known user
    /// and the right password.
    pub(crate) fn check(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let key = ocikit_image::sha256(value.as_bytes()).to_string();
        if self.verified.lock().expect("not poisoned").contains(&key) {
            return true;
        }
        let Some((scheme, encoded)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        let ok = self
            .users
            .get(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false));
        if ok {
            let mut verified = self.verified.lock().expect("not poisoned");
            // Bounded: a changing header (many users, rotated passwords) cannot grow it forever.
            if verified.len() > 1024 {
                verified.clear();
            }
            verified.insert(key);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_bcrypt_and_caches() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let users = Htpasswd::parse(&format!("alice:{hash}\n")).unwrap();
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(users.check(Some(&header("alice", "secret"))));
        assert!(users.check(Some(&header("alice", "secret"))));
        assert!(!users.check(Some(&header("alice", "wrong"))));
        assert!(!users.check(Some(&header("bob", "secret"))));
        assert!(!users.check(Some("Bearer x")));
        assert!(!users.check(None));
        assert!(Htpasswd::parse("alice:plain").is_err());
        assert!(Htpasswd::parse("nocolon").is_err());
    }
}
