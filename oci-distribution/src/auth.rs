//! Authentication: `WWW-Authenticate` challenges, credentials and where they come from,
//! and the cache of bearer tokens.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::AuthErrorKind;
use crate::{Error, Result};

/// A user name and a password (or a personal access token used as one), or an OAuth2
/// identity (refresh) token as `docker login` stores for some registries.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
    identity_token: Option<String>,
}

/// The user name docker's credential helpers give for an identity token.
const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
            identity_token: None,
        }
    }

    /// An identity token: exchanged at the token server for access tokens (OAuth2
    /// `grant_type=refresh_token`); useless for basic auth.
    pub fn identity_token(token: impl Into<String>) -> Self {
        Credentials {
            username: IDENTITY_TOKEN_USER.to_owned(),
            password: String::new(),
            identity_token: Some(token.into()),
        }
    }

    /// The identity token, when these credentials are one.
    pub fn token(&self) -> Option<&str> {
        self.identity_token.as_deref()
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The `Authorization` value for basic auth.
    pub(crate) fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            base64_encode(format!("{}:{}", self.username, self.password).as_bytes())
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A challenge of a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`: get a token from `realm`.
    Bearer {
        /// The token server URL.
        realm: String,
        /// The `service` parameter to pass on, if given.
        service: Option<String>,
        /// The scope the registry asked for, if given.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value into its challenges (unknown schemes are
/// skipped). Parameter names are case-insensitive; values may be quoted with `\` escapes or
/// bare tokens; commas separate both parameters and challenges.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut current: Option<(String, HashMap<String, String>)> = None;
    let mut rest = header.trim();
    let flush = |cur: Option<(String, HashMap<String, String>)>, out: &mut Vec<Challenge>| {
        if let Some((scheme, mut params)) = cur {
            match scheme.to_ascii_lowercase().as_str() {
                "basic" => out.push(Challenge::Basic),
                "bearer" => {
                    if let Some(realm) = params.remove("realm") {
                        out.push(Challenge::Bearer {
                            realm,
                            service: params.remove("service"),
                            scope: params.remove("scope"),
                        });
                    }
                }
                _ => {}
            }
        }
    };
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        // A token: a scheme (followed by space or end) or a parameter name (followed by '=').
        let end = rest.find(['=', ' ', '\t', ',']).unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start_matches([' ', '\t']);
        if let Some(value_part) = after.strip_prefix('=').filter(|_| current.is_some()) {
            let value_part = value_part.trim_start_matches([' ', '\t']);
            let (value, remaining) = if let Some(quoted) = value_part.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut consumed = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => {
                            consumed = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[consumed..])
            } else {
                let end = value_part
                    .find([',', ' ', '\t'])
                    .unwrap_or(value_part.len());
                (value_part[..end].to_owned(), &value_part[end..])
            };
            if let Some((_, params)) = current.as_mut() {
                params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining;
        } else if token.is_empty() {
            // Stray '=' without a scheme: skip one character.
            rest = &rest[1..];
        } else {
            flush(current.take(), &mut out);
            current = Some((token.to_owned(), HashMap::new()));
            rest = &rest[end..];
        }
    }
    flush(current.take(), &mut out);
    out
}

/// A bearer token and when it stops being usable.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) value: String,
    pub(crate) expires: Instant,
}

/// Reads a token server's answer.
pub(crate) fn parse_token_response(body: &[u8], registry: &str) -> Result<Token> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let a: Answer = serde_json::from_slice(body).map_err(|e| Error::Auth {
        kind: AuthErrorKind::BadTokenResponse,
        registry: registry.to_owned(),
        status: None,
        message: format!("token answer is not JSON: {e}"),
    })?;
    let value = a
        .token
        .filter(|t| !t.is_empty())
        .or(a.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| Error::Auth {
            kind: AuthErrorKind::BadTokenResponse,
            registry: registry.to_owned(),
            status: None,
            message: "token answer has neither `token` nor `access_token`".into(),
        })?;
    // The spec's default lifetime is 60 s; keep a margin so a token is not used as it expires.
    let lifetime = a.expires_in.unwrap_or(60).max(1);
    let margin = (lifetime / 10).min(30);
    Ok(Token {
        value,
        expires: Instant::now() + Duration::from_secs(lifetime - margin),
    })
}

/// Where credentials come from when none were given for a registry.
#[derive(Clone, Debug, Default)]
pub(crate) struct CredentialSources {
    pub(crate) explicit: HashMap<String, Credentials>,
    pub(crate) auth_files: Option<Vec<PathBuf>>,
}

impl CredentialSources {
    /// Credentials for `registry`: given ones first, then the auth files in order.
    pub(crate) fn lookup(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(c) = self.explicit.get(registry).or_else(|| {
            self.explicit
                .iter()
                .find(|(k, _)| key_matches(k, registry))
                .map(|(_, c)| c)
        }) {
            return Ok(Some(c.clone()));
        }
        let files = match &self.auth_files {
            Some(files) => files.clone(),
            None => default_auth_files(),
        };
        for file in files {
            if let Some(c) = lookup_auth_file(&file, registry)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// The auth files searched by default, in order, as containers/image and docker do:
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` (else
/// `/run/containers/UID/auth.json`),
/// `$XDG_CONFIG_HOME/containers/auth.json` (or `~/.config/...`), then `$DOCKER_CONFIG/config.json`
/// (or `~/.docker/config.json`).
pub fn default_auth_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = env("HOME");
    let mut files = Vec::new();
    if let Some(f) = env("REGISTRY_AUTH_FILE") {
        files.push(f);
    }
    match env("XDG_RUNTIME_DIR") {
        Some(d) => files.push(d.join("containers/auth.json")),
        // Where containers/image keeps the primary file without XDG_RUNTIME_DIR.
        None => files.push(PathBuf::from(format!(
            "/run/containers/{}/auth.json",
            rustix::process::getuid().as_raw()
        ))),
    }
    match (env("XDG_CONFIG_HOME"), &home) {
        (Some(d), _) => files.push(d.join("containers/auth.json")),
        (None, Some(h)) => files.push(h.join(".config/containers/auth.json")),
        _ => {}
    }
    match (env("DOCKER_CONFIG"), &home) {
        (Some(d), _) => files.push(d.join("config.json")),
        (None, Some(h)) => files.push(h.join(".docker/config.json")),
        _ => {}
    }
    files
}

/// The auth file a `login` writes and a `logout` edits: `$REGISTRY_AUTH_FILE` when set,
/// else "the primary (read/write) file ... `${XDG_RUNTIME_DIR}/containers/auth.json`"
/// (containers-auth.json(5)), else `/run/containers/UID/auth.json`, where containers/image
/// keeps it when `XDG_RUNTIME_DIR` is not set.
pub fn primary_auth_file() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(f) = env("REGISTRY_AUTH_FILE") {
        return PathBuf::from(f);
    }
    match env("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("containers/auth.json"),
        None => PathBuf::from(format!(
            "/run/containers/{}/auth.json",
            rustix::process::getuid().as_raw()
        )),
    }
}

/// Stores `credentials` for `key` (a registry, `host[:port]`, or a namespace in one,
/// `host/path`) in the auth file at `path`, as `podman login` and `skopeo login` do: the
/// entry `auths.KEY.auth` is base64 of `user:password` ("the concatenation of the username,
/// a colon, and the password", containers-auth.json(5)); an identity token is stored as
/// `identitytoken`. Every other entry and key of the file is kept. The file is replaced
/// atomically, readable by its owner only (0600), its directory made (0700) if missing.
pub fn store_auth_file_credentials(
    path: &Path,
    key: &str,
    credentials: &Credentials,
) -> Result<()> {
    let mut file = read_auth_file_value(path)?;
    let entry = match credentials.token() {
        Some(token) => serde_json::json!({ "identitytoken": token }),
        None => serde_json::json!({
            "auth": base64_encode(
                format!("{}:{}", credentials.username(), credentials.password()).as_bytes()
            )
        }),
    };
    auths_of(&mut file, path)?.insert(key.to_owned(), entry);
    write_auth_file_value(path, &file)
}

/// Removes the entry for `key` from the auth file at `path` (`None`: every entry, as
/// `logout --all`); returns how many entries were removed. A missing file has none.
pub fn remove_auth_file_credentials(path: &Path, key: Option<&str>) -> Result<usize> {
    if !path.exists() {
        return Ok(0);
    }
    let mut file = read_auth_file_value(path)?;
    let auths = auths_of(&mut file, path)?;
    let removed = match key {
        Some(k) => {
            // The key as written, else one that names the same registry (`https://host`).
            let found = if auths.contains_key(k) {
                Some(k.to_owned())
            } else if !k.contains('/') {
                auths.keys().find(|e| key_matches(e, k)).cloned()
            } else {
                None
            };
            usize::from(found.is_some_and(|f| auths.remove(&f).is_some()))
        }
        None => {
            let n = auths.len();
            auths.clear();
            n
        }
    };
    if removed > 0 {
        write_auth_file_value(path, &file)?;
    }
    Ok(removed)
}

fn auth_file_error(path: &Path, message: String) -> Error {
    Error::Config {
        path: path.to_owned(),
        line: None,
        column: None,
        message,
    }
}

/// The file as JSON (an empty object when it does not exist).
fn read_auth_file_value(path: &Path) -> Result<serde_json::Value> {
    match std::fs::read(path) {
        Ok(text) if text.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(text) => {
            let v: serde_json::Value =
                serde_json::from_slice(&text).map_err(|e| Error::Config {
                    path: path.to_owned(),
                    line: Some(e.line()),
                    column: Some(e.column()),
                    message: format!("not valid JSON: {e}"),
                })?;
            if !v.is_object() {
                return Err(auth_file_error(path, "not a JSON object".into()));
            }
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(auth_file_error(path, format!("cannot read: {e}"))),
    }
}

fn auths_of<'a>(
    file: &'a mut serde_json::Value,
    path: &Path,
) -> Result<&'a mut serde_json::Map<String, serde_json::Value>> {
    let object = file.as_object_mut().expect("checked when read");
    object
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| auth_file_error(path, "`auths` is not an object".into()))
}

/// Writes `value` to a temporary file next to `path` (0600) and renames it over `path`.
fn write_auth_file_value(path: &Path, value: &serde_json::Value) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let fail = |what: &str, e: std::io::Error| auth_file_error(path, format!("cannot {what}: {e}"));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| fail("create its directory", e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.as_deref().unwrap_or("auth.json"),
        std::process::id()
    ));
    let text = serde_json::to_vec_pretty(value).expect("JSON values serialise");
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write", e));
    }
    Ok(())
}

fn cred_error(message: String, registry: &str) -> Error {
    Error::Auth {
        kind: AuthErrorKind::Credentials,
        registry: registry.to_owned(),
        status: None,
        message,
    }
}

/// The key docker uses for Docker Hub in auth files and helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// `https://host/path` or `host/path` → `host`.
fn normalize_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn key_matches(key: &str, registry: &str) -> bool {
    let host = normalize_key(key);
    host == registry || (is_docker_hub(registry) && is_docker_hub(host))
}

/// Looks `registry` up in a docker `config.json` or containers `auth.json`: `credHelpers`,
/// then `auths`, then `credsStore`. A missing file is no credentials.
pub fn lookup_auth_file(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(cred_error(
                format!("cannot read {}: {e}", path.display()),
                registry,
            ));
        }
    };
    #[derive(serde::Deserialize, Default)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
        identitytoken: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct File {
        #[serde(default)]
        auths: HashMap<String, Entry>,
        #[serde(default)]
        cred_helpers: HashMap<String, String>,
        creds_store: Option<String>,
    }
    let file: File = serde_json::from_slice(&text)
        .map_err(|e| cred_error(format!("{} is not valid: {e}", path.display()), registry))?;
    if let Some(helper) = file
        .cred_helpers
        .iter()
        .find(|(k, _)| key_matches(k, registry))
        .map(|(_, v)| v)
    {
        return credential_helper(&format!("docker-credential-{helper}"), registry);
    }
    // Exact keys first, then normalised ones.
    let entry = file.auths.get(registry).or_else(|| {
        file.auths
            .iter()
            .find(|(k, _)| key_matches(k, registry))
            .map(|(_, v)| v)
    });
    if let Some(entry) = entry {
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials::identity_token(token)));
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64_decode(auth.trim()).ok_or_else(|| {
                cred_error(
                    format!("{}: `auth` for {registry} is not base64", path.display()),
                    registry,
                )
            })?;
            let decoded = String::from_utf8(decoded).map_err(|_| {
                cred_error(format!("{}: `auth` is not UTF-8", path.display()), registry)
            })?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| {
                cred_error(
                    format!("{}: `auth` is not user:password", path.display()),
                    registry,
                )
            })?;
            return Ok(Some(Credentials::new(u, p)));
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Some(Credentials::new(u.clone(), p.clone())));
        }
    }
    if let Some(store) = file.creds_store.filter(|s| !s.is_empty()) {
        return credential_helper(&format!("docker-credential-{store}"), registry);
    }
    Ok(None)
}

/// Runs a docker credential helper (`PROGRAM get`, the server on stdin). A helper that
/// reports "credentials not found" gives `Ok(None)`.
pub fn credential_helper(program: &str, registry: &str) -> Result<Option<Credentials>> {
    let server = if is_docker_hub(registry) {
        DOCKER_HUB_KEY
    } else {
        registry
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cred_error(format!("cannot run {program}: {e}"), registry))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading: a broken pipe is not an error here.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cred_error(format!("{program}: {e}"), registry))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if text.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(cred_error(
            format!("{program} get failed ({}): {}", out.status, text.trim()),
            registry,
        ));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let a: Answer = serde_json::from_slice(&out.stdout)
        .map_err(|e| cred_error(format!("{program} answered no credentials: {e}"), registry))?;
    if a.username == IDENTITY_TOKEN_USER {
        return Ok(Some(Credentials::identity_token(a.secret)));
    }
    Ok(Some(Credentials::new(a.username, a.secret)))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub(crate) fn base64_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard (or URL-safe) base64, padding optional; `None` on invalid input.
pub(crate) fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in input.bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `login` keeps what else the file holds, writes 0600, and reads back; `logout` removes
    /// one entry or all; a file that is not JSON is an error naming it, and is left alone.
    #[test]
    fn auth_file_store_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/auth.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"auths":{"other.example":{"auth":"eDp5"}},"credHelpers":{"h.example":"pass"}}"#,
        )
        .unwrap();
        store_auth_file_credentials(&path, "r.example:5000", &Credentials::new("u", "p:w"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            v["auths"]["r.example:5000"]["auth"],
            base64_encode(b"u:p:w")
        );
        assert_eq!(v["auths"]["other.example"]["auth"], "eDp5");
        assert_eq!(v["credHelpers"]["h.example"], "pass");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = lookup_auth_file(&path, "r.example:5000").unwrap().unwrap();
        assert_eq!((back.username(), back.password()), ("u", "p:w"));
        assert_eq!(
            remove_auth_file_credentials(&path, Some("r.example:5000")).unwrap(),
            1
        );
        assert_eq!(
            remove_auth_file_credentials(&path, Some("r.example:5000")).unwrap(),
            0
        );
        assert_eq!(remove_auth_file_credentials(&path, None).unwrap(), 1);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["auths"], serde_json::json!({}));
        assert_eq!(v["credHelpers"]["h.example"], "pass");
        // A new file in a new directory.
        let fresh = dir.path().join("new/dir/auth.json");
        store_auth_file_credentials(&fresh, "r", &Credentials::new("a", "b")).unwrap();
        assert!(lookup_auth_file(&fresh, "r").unwrap().is_some());
        // Not JSON: an error naming the file, and the file is untouched.
        std::fs::write(&path, "{not json").unwrap();
        let e = store_auth_file_credentials(&path, "r", &Credentials::new("a", "b")).unwrap_err();
        assert!(e.to_string().contains("auth.json"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "abcd", "user:pa ss:wörd"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{e}");
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn challenges_parse_robustly() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            vec![Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }]
        );
        let c = parse_challenges(r#"basic REALM="x", Bearer realm=https://t/x , service = "s\"q""#);
        assert_eq!(
            c,
            vec![
                Challenge::Basic,
                Challenge::Bearer {
                    realm: "https://t/x".into(),
                    service: Some("s\"q".into()),
                    scope: None
                }
            ]
        );
        assert_eq!(parse_challenges("Basic"), vec![Challenge::Basic]);
        assert!(parse_challenges("Negotiate abc==, Bearer service=x").is_empty());
        for junk in ["", "=", "\"", "Bearer realm=\"unterminated", ",,,", "a=b=c"] {
            let _ = parse_challenges(junk);
        }
    }

    #[test]
    fn token_answers() {
        let t = parse_token_response(br#"{"access_token":"abc","expires_in":300}"#, "r").unwrap();
        assert_eq!(t.value, "abc");
        assert!(t.expires > Instant::now() + Duration::from_secs(200));
        assert!(parse_token_response(br#"{"token":""}"#, "r").is_err());
        assert!(matches!(
            parse_token_response(b"<html>", "r"),
            Err(Error::Auth {
                kind: AuthErrorKind::BadTokenResponse,
                ..
            })
        ));
    }

    #[test]
    fn auth_files_and_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-test");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nif [ \"$server\" = reg.example ]; then\n\
             printf '{\"ServerURL\":\"%s\",\"Username\":\"hu\",\"Secret\":\"hs\"}' \"$server\"\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
        )
        .unwrap();
        #[allow(clippy::permissions_set_readonly_false)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let h = helper.to_str().unwrap();
        assert_eq!(
            credential_helper(h, "reg.example").unwrap(),
            Some(Credentials::new("hu", "hs"))
        );
        assert_eq!(credential_helper(h, "other.example").unwrap(), None);
        assert!(credential_helper("/nonexistent/helper", "x").is_err());

        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},
                     "localhost:5000":{{"username":"u","password":"p"}}}},
                   "credHelpers":{{}}}}"#,
                base64_encode(b"hub:secret:x")
            ),
        )
        .unwrap();
        assert_eq!(
            lookup_auth_file(&config, "docker.io").unwrap(),
            Some(Credentials::new("hub", "secret:x"))
        );
        assert_eq!(
            lookup_auth_file(&config, "localhost:5000").unwrap(),
            Some(Credentials::new("u", "p"))
        );
        assert_eq!(lookup_auth_file(&config, "quay.io").unwrap(), None);
        assert_eq!(
            lookup_auth_file(&config, "registry-1.docker.io").unwrap(),
            Some(Credentials::new("hub", "secret:x"))
        );
        let given = CredentialSources {
            explicit: [("docker.io".to_owned(), Credentials::new("g", "p"))].into(),
            auth_files: Some(vec![config.clone()]),
        };
        assert_eq!(
            given.lookup("registry-1.docker.io").unwrap(),
            Some(Credentials::new("g", "p"))
        );
        assert_eq!(
            given.lookup("localhost:5000").unwrap(),
            Some(Credentials::new("u", "p"))
        );
        assert_eq!(
            lookup_auth_file(&dir.path().join("missing.json"), "x").unwrap(),
            None
        );
        let creds = Credentials::new("me", "hunter2");
        assert!(!format!("{creds:?}").contains("hunter2"));
        let t = Credentials::identity_token("refresh-me");
        assert!(!format!("{t:?}").contains("refresh-me"));
        std::fs::write(
            &config,
            r#"{"auths":{"acr.example":{"auth":"PHRva2VuPjo=","identitytoken":"idt"}}}"#,
        )
        .unwrap();
        assert_eq!(
            lookup_auth_file(&config, "acr.example")
                .unwrap()
                .unwrap()
                .token(),
            Some("idt")
        );
    }
}
