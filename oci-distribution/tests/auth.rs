//! Authentication against real docker-registry instances the tests start themselves: one
//! with htpasswd (basic auth), one with token auth whose token server is a small std::net
//! server here, signing RS256 JWTs with `openssl dgst` and a key and certificate made with
//! `openssl req`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ocikit_distribution::ocikit_image::TagOrDigest;
use ocikit_distribution::{AuthErrorKind, Client, Credentials, Error, Repository, RetryPolicy};
use support::{Registry, any, push_image, run};

fn client_with(registry: &str, creds: Option<Credentials>) -> Client {
    let mut b = Client::builder()
        .auth_files(Vec::new())
        .retry(RetryPolicy::none());
    if let Some(c) = creds {
        b = b.credentials(registry, c);
    }
    b.build().unwrap()
}

fn round_trip(repo: &Repository) {
    let m = push_image(repo, "amd64", 21, &[4096]);
    repo.put_manifest(&any(&m), Some(&"v1".parse().unwrap()))
        .unwrap();
    let got = repo.get_manifest(&"v1".parse().unwrap()).unwrap();
    assert_eq!(got.digest(), m.digest());
    let mut blob = repo.get_blob(&m.layers()[0]).unwrap();
    std::io::copy(&mut blob, &mut std::io::sink()).unwrap();
    assert_eq!(repo.tags(None).unwrap(), vec!["v1".to_owned()]);
}

fn assert_auth_error(e: &Error, kind: AuthErrorKind, status: u16) {
    match e {
        Error::Auth {
            kind: k, status: s, ..
        } => {
            assert_eq!((k, *s), (&kind, Some(status)), "{e}");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[test]
fn basic_auth_with_htpasswd() {
    let secrets = tempfile::tempdir().unwrap();
    let htpasswd = secrets.path().join("htpasswd");
    run(Command::new("htpasswd")
        .args(["-Bbc"])
        .arg(&htpasswd)
        .args(["alice", "s3cret"]));
    let reg = Registry::start(
        &format!(
            "auth:\n  htpasswd:\n    realm: ocikit-basic\n    path: {}\n",
            htpasswd.display()
        ),
        |_| {},
    );
    let addr = reg.addr.clone();

    let good = client_with(&addr, Some(Credentials::new("alice", "s3cret")));
    good.ping(&addr).unwrap();
    round_trip(&good.repository_at(&addr, "team/app").unwrap());

    let wrong = client_with(&addr, Some(Credentials::new("alice", "wrong")));
    let e = wrong
        .repository_at(&addr, "team/app")
        .unwrap()
        .get_manifest(&"v1".parse().unwrap())
        .unwrap_err();
    assert_auth_error(&e, AuthErrorKind::Unauthorized, 401);

    let anonymous = client_with(&addr, None);
    let e = anonymous.ping(&addr).unwrap_err();
    assert_auth_error(&e, AuthErrorKind::Unauthorized, 401);

    // Credentials from a docker config.json.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{addr}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#),
    )
    .unwrap();
    let from_file = Client::builder().auth_files(vec![config]).build().unwrap();
    let tags = from_file
        .repository_at(&addr, "team/app")
        .unwrap()
        .tags(None)
        .unwrap();
    assert_eq!(tags, vec!["v1".to_owned()]);
}

/// base64url without padding.
fn b64url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

struct TokenServer {
    dir: PathBuf,
    x5c: String,
    issued: AtomicUsize,
    expires_in: AtomicUsize,
}

impl TokenServer {
    fn new(dir: &Path) -> TokenServer {
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=ocikit-test-token-issuer", "-keyout"])
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem")));
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(dir.join("cert.pem"))
            .output()
            .unwrap()
            .stdout;
        let x5c = oci_distribution_b64(&der);
        TokenServer {
            dir: dir.to_owned(),
            x5c,
            issued: AtomicUsize::new(0),
            expires_in: AtomicUsize::new(300),
        }
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let input = self.dir.join(format!("input-{n}"));
        std::fs::write(&input, &signing_input).unwrap();
        let sig = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(self.dir.join("key.pem"))
            .arg(&input)
            .output()
            .unwrap();
        assert!(sig.status.success());
        format!("{signing_input}.{}", b64url(&sig.stdout))
    }

    /// Serves `GET /token`: alice/s3cret get what they ask for, anonymous callers get pull
    /// on `public/*` only, anything else is 401.
    fn serve(self: Arc<Self>, listener: TcpListener) {
        std::thread::spawn(move || {
            for stream in listener.incoming().take(1000) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let method = line.split_whitespace().next().unwrap_or("").to_owned();
                let mut target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut auth = None;
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_owned());
                        } else if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let user = if method == "POST" {
                    // OAuth2 refresh-token grant: the form's scopes become query-like pairs.
                    let mut body = vec![0u8; length.min(1 << 16)];
                    if reader.read_exact(&mut body).is_err() {
                        continue;
                    }
                    let form = String::from_utf8_lossy(&body).into_owned();
                    let field = |name: &str| {
                        form.split('&')
                            .find_map(|p| p.strip_prefix(&format!("{name}=")))
                            .unwrap_or("")
                            .to_owned()
                    };
                    let scopes: Vec<String> = field("scope")
                        .split("%20")
                        .map(|s| format!("scope={s}"))
                        .collect();
                    target = format!("/token?{}", scopes.join("&"));
                    (field("grant_type") == "refresh_token"
                        && field("refresh_token") == "alice-refresh-token")
                        .then_some(Some("alice"))
                } else {
                    match auth.as_deref() {
                        None => Some(None),
                        // alice:s3cret
                        Some("Basic YWxpY2U6czNjcmV0") => Some(Some("alice")),
                        Some(_) => None,
                    }
                };
                let (status, body) = match user {
                    None => (
                        "401 Unauthorized",
                        r#"{"details":"wrong credentials"}"#.to_owned(),
                    ),
                    Some(user) => {
                        let query = target.split_once('?').map(|x| x.1).unwrap_or("");
                        let mut access = Vec::new();
                        for pair in query.split('&') {
                            let Some(("scope", scope)) = pair.split_once('=') else {
                                continue;
                            };
                            let scope = scope
                                .replace("%3A", ":")
                                .replace("%2F", "/")
                                .replace("%2C", ",");
                            let parts: Vec<&str> = scope.split(':').collect();
                            if parts.len() != 3 {
                                continue;
                            }
                            let actions: Vec<&str> = parts[2]
                                .split(',')
                                .filter(|a| {
                                    user.is_some()
                                        || (*a == "pull" && parts[1].starts_with("public/"))
                                })
                                .collect();
                            access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": actions}));
                        }
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        let claims = serde_json::json!({
                            "iss": "ocikit-test-issuer", "sub": user.unwrap_or(""),
                            "aud": "ocikit-test-registry", "exp": now + 300, "nbf": now - 10,
                            "iat": now, "jti": format!("{now}-{}", self.issued.load(Ordering::Relaxed)),
                            "access": access,
                        });
                        let token = self.sign(&claims);
                        (
                            "200 OK",
                            serde_json::json!({"token": token, "access_token": token, "expires_in": self.expires_in.load(Ordering::Relaxed)}).to_string(),
                        )
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }
}

fn oci_distribution_b64(bytes: &[u8]) -> String {
    // Standard base64 with padding, for x5c.
    let mut s = b64url(bytes).replace('-', "+").replace('_', "/");
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    s
}

#[test]
fn bearer_token_flow() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let token_addr = listener.local_addr().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let server = Arc::new(TokenServer::new(keys.path()));
    server.clone().serve(listener);
    let reg = Registry::start(
        &format!(
            "auth:\n  token:\n    realm: http://{token_addr}/token\n    service: ocikit-test-registry\n    \
             issuer: ocikit-test-issuer\n    rootcertbundle: {}\n",
            keys.path().join("cert.pem").display()
        ),
        |_| {},
    );
    let addr = reg.addr.clone();

    let alice = client_with(&addr, Some(Credentials::new("alice", "s3cret")));
    let repo = alice.repository_at(&addr, "public/app").unwrap();
    round_trip(&repo);
    // Tokens are cached per scope: the same scope again asks the token server nothing.
    let before = server.issued.load(Ordering::Relaxed);
    assert!(
        before >= 1,
        "the registry must have sent us to the token server"
    );
    repo.get_manifest(&"v1".parse().unwrap()).unwrap();
    repo.tags(None).unwrap();
    assert_eq!(server.issued.load(Ordering::Relaxed), before);
    // A token is used until it expires, then a new one is fetched.
    server.expires_in.store(1, Ordering::Relaxed);
    let short = client_with(&addr, Some(Credentials::new("alice", "s3cret")));
    let short_repo = short.repository_at(&addr, "public/app").unwrap();
    let t0 = server.issued.load(Ordering::Relaxed);
    short_repo.tags(None).unwrap();
    short_repo.tags(None).unwrap();
    let t1 = server.issued.load(Ordering::Relaxed);
    assert_eq!(t1, t0 + 1, "one token for both requests while it is valid");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    short_repo.tags(None).unwrap();
    assert!(
        server.issued.load(Ordering::Relaxed) > t1,
        "expired token renewed"
    );
    server.expires_in.store(300, Ordering::Relaxed);

    // Cross-repository mount needs pull on the source and push on the target.
    let m = repo.get_manifest(&"v1".parse().unwrap()).unwrap();
    let layer = match &m {
        ocikit_distribution::ocikit_image::AnyManifest::Manifest(m) => m.layers()[0].clone(),
        _ => unreachable!(),
    };
    let other = alice.repository_at(&addr, "private/copy").unwrap();
    assert!(other.mount_blob(&layer, "public/app").unwrap());

    // Anonymous: pull on public/* works, push is refused with a typed error.
    let anon = client_with(&addr, None);
    let public = anon.repository_at(&addr, "public/app").unwrap();
    let got = public
        .get_manifest(&TagOrDigest::Digest(m.digest().clone()))
        .unwrap();
    assert_eq!(got.digest(), m.digest());
    let e = public
        .put_manifest(&got, Some(&"v2".parse().unwrap()))
        .unwrap_err();
    assert_auth_error(&e, AuthErrorKind::Unauthorized, 401);

    // An identity token (as `docker login` stores for OAuth2 registries), exchanged by POST.
    let oauth = client_with(
        &addr,
        Some(Credentials::identity_token("alice-refresh-token")),
    );
    let oauth_repo = oauth.repository_at(&addr, "private/oauth").unwrap();
    assert!(oauth_repo.mount_blob(&layer, "public/app").unwrap());
    let bad = client_with(&addr, Some(Credentials::identity_token("stolen")));
    let e = bad
        .repository_at(&addr, "public/app")
        .unwrap()
        .tags(None)
        .unwrap_err();
    assert_auth_error(&e, AuthErrorKind::TokenRefused, 401);

    // Wrong credentials: the token server refuses them.
    let wrong = client_with(&addr, Some(Credentials::new("alice", "nope")));
    let e = wrong
        .repository_at(&addr, "public/app")
        .unwrap()
        .tags(None)
        .unwrap_err();
    assert_auth_error(&e, AuthErrorKind::TokenRefused, 401);
}
