//! Client configuration: a consuming builder, every setting with its default.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::Credentials;

/// When and how often idempotent requests are retried.
///
/// A request is retried on connection errors, timeouts, HTTP 408, 429 and 5xx (except 501
/// and 505), after an exponential backoff with full jitter, or after `Retry-After` when the
/// registry sends one (capped at 60 s). Uploads of streamed blob bytes are not retried (the
/// bytes are gone); their session start and end are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries, backoff from 250 ms doubling up to 8 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// A policy of `max_retries` retries, backing off from `initial_backoff` (doubled each
    /// time) to at most `max_backoff`.
    pub fn new(max_retries: u32, initial_backoff: Duration, max_backoff: Duration) -> Self {
        RetryPolicy {
            max_retries,
            initial_backoff,
            max_backoff: max_backoff.max(initial_backoff),
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy::new(0, Duration::ZERO, Duration::ZERO)
    }

    /// How many times a request is retried after its first attempt.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The wait before retry `attempt` (0-based): a random duration up to
    /// `min(max, initial * 2^attempt)` ("full jitter").
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let nanos = cap.as_nanos() as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        // Half fixed, half random, so a retry never comes immediately.
        Duration::from_nanos(nanos / 2 + random_u64() % (nanos / 2 + 1))
    }
}

/// Random bits from the standard library's per-process hashing keys (no extra dependency;
/// good enough for jitter, not for secrets).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// Builds a [`Client`](crate::Client). Every setter consumes and returns the builder.
///
/// ```
/// use std::time::Duration;
/// use ocikit_distribution::{Client, Credentials, RetryPolicy};
///
/// let client = Client::builder()
///     .plain_http("registry.internal:5000")
///     .connect_timeout(Duration::from_secs(5))
///     .retry(RetryPolicy::new(2, Duration::from_millis(100), Duration::from_secs(2)))
///     .chunk_size(16 << 20)
///     .credentials("registry.internal:5000", Credentials::new("me", "secret"))
///     .build()?;
/// # Ok::<_, ocikit_distribution::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    pub(crate) plain_http: Vec<String>,
    pub(crate) force_https: Vec<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) chunk_size: u64,
    pub(crate) user_agent: String,
    pub(crate) proxy_from_env: bool,
    pub(crate) proxy: Option<String>,
    pub(crate) ca_roots_pem: Vec<Vec<u8>>,
    pub(crate) credentials: HashMap<String, Credentials>,
    pub(crate) auth_files: Option<Vec<PathBuf>>,
    pub(crate) max_document_size: u64,
    pub(crate) resume_attempts: u32,
    pub(crate) single_post: bool,
    pub(crate) insecure: Vec<String>,
    pub(crate) tls_verify: Option<bool>,
    pub(crate) cert_dir: Option<PathBuf>,
    pub(crate) certs_d: Vec<PathBuf>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            plain_http: Vec::new(),
            force_https: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            chunk_size: 32 << 20,
            user_agent: concat!("ocikit/", env!("CARGO_PKG_VERSION")).to_owned(),
            proxy_from_env: true,
            proxy: None,
            ca_roots_pem: Vec::new(),
            credentials: HashMap::new(),
            auth_files: None,
            max_document_size: ocikit_image::DEFAULT_MAX_DOCUMENT_SIZE,
            resume_attempts: 5,
            single_post: false,
            insecure: Vec::new(),
            tls_verify: None,
            cert_dir: None,
            certs_d: default_certs_d(),
        }
    }
}

impl ClientBuilder {
    /// Talks plain HTTP (no TLS) to `registry` (`host` or `host:port`, matched exactly).
    /// Default: only `localhost`, `127.0.0.0/8` and `[::1]` (any port) use plain HTTP; every
    /// other host uses HTTPS.
    pub fn plain_http(mut self, registry: impl Into<String>) -> Self {
        self.plain_http.push(registry.into());
        self
    }

    /// Talks HTTPS to `registry` (`host[:port]`, matched exactly) even when it is a loopback
    /// host, which would use plain HTTP by default. Default: none.
    pub fn https(mut self, registry: impl Into<String>) -> Self {
        self.force_https.push(registry.into());
        self
    }

    /// How long connecting (DNS, TCP) may take. Default 30 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long any single read from the network may wait (a stalled transfer fails after
    /// this, and a blob download then resumes). Default 60 s. There is no limit on a whole
    /// transfer.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// The retry policy of idempotent requests. Default [`RetryPolicy::default`] (4 retries,
    /// 250 ms to 8 s).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Blobs larger than this are uploaded in chunks of this size (PATCH with
    /// `Content-Range`, at least the registry's `OCI-Chunk-Min-Length`); smaller ones in one
    /// request. Default 32 MiB. Values below 64 KiB are raised to 64 KiB.
    pub fn chunk_size(mut self, bytes: u64) -> Self {
        self.chunk_size = bytes.max(64 << 10);
        self
    }

    /// The `User-Agent` header. Default `ocikit/<version>`.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// Whether to use the proxy named by `ALL_PROXY`/`HTTPS_PROXY`/`HTTP_PROXY` (and
    /// lowercase forms), honouring `NO_PROXY`. Default true.
    pub fn proxy_from_env(mut self, yes: bool) -> Self {
        self.proxy_from_env = yes;
        self
    }

    /// Sends every request through the proxy at `url` (`http://[user:password@]host:port`,
    /// also `socks5://`), in place of any proxy from the environment. Default: none.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// Allows `registry` (`host[:port]`, matched exactly) to be insecure, as registries.conf's
    /// `insecure = true` does ("unencrypted HTTP as well as TLS connections with untrusted
    /// certificates are allowed", containers-registries.conf(5)): HTTPS is tried first,
    /// without verifying the certificate, and plain HTTP when the registry does not speak
    /// TLS. Default: none.
    pub fn insecure(mut self, registry: impl Into<String>) -> Self {
        self.insecure.push(registry.into());
        self
    }

    /// TLS verification for every registry, as skopeo's `--tls-verify`: `true` requires
    /// HTTPS with a verified certificate, loopback hosts included; `false` makes every
    /// registry [`insecure`](Self::insecure). Default: unset (HTTPS with verification, plain
    /// HTTP for loopback hosts and those given to [`plain_http`](Self::plain_http) or
    /// [`insecure`](Self::insecure)).
    pub fn tls_verify(mut self, verify: bool) -> Self {
        self.tls_verify = Some(verify);
        self
    }

    /// A directory of `*.crt` (CA), `*.cert` and `*.key` (client certificate and key) files
    /// used for every registry in place of the `certs.d` directories, as skopeo's
    /// `--cert-dir`; registries are then reached over HTTPS, loopback ones included.
    /// Default: none.
    pub fn cert_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cert_dir = Some(dir.into());
        self
    }

    /// The `certs.d` directories searched, in order, for a `HOST[:PORT]` directory of the
    /// registry's own CAs and client certificate (containers-certs.d(5): `*.crt` are CA
    /// certificates, `*.cert`/`*.key` pairs of the same name client certificates and keys).
    /// The first that has one is used, and the registry is reached over HTTPS, loopback
    /// ones included. Default: [`default_certs_d`]. An empty list disables them.
    pub fn certs_d(mut self, dirs: Vec<PathBuf>) -> Self {
        self.certs_d = dirs;
        self
    }

    /// Also trusts the CA certificates in `pem` (one or more PEM certificates) for HTTPS, as
    /// for a private registry with its own CA; call again to add more. Default: none. The
    /// client always trusts the system's CA store (rustls-native-certs: `$SSL_CERT_FILE` and
    /// `$SSL_CERT_DIR` when set, else the distribution's bundle, such as
    /// `/etc/ssl/certs/ca-certificates.crt`), or the Mozilla roots bundled with the TLS stack
    /// when the system has none. The system's store is read once per process, and only when
    /// an HTTPS registry needs it: a registry whose certificate directory holds CAs
    /// (`certs.d`, [`cert_dir`](Self::cert_dir)) is first tried with those and the ones given
    /// here, and the system's store is added (and the request sent again) only if the
    /// server's certificate fails against them; plain-HTTP registries never read it. The
    /// trust is the same as containers/image's (the system's pool plus `certs.d`); only the
    /// 2–9 ms of reading the store are saved where it is not needed.
    pub fn ca_root_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_roots_pem.push(pem.into());
        self
    }

    /// Uses `credentials` for `registry` (`host[:port]`, or `docker.io`), before any auth
    /// file. Default: none given.
    pub fn credentials(mut self, registry: impl Into<String>, credentials: Credentials) -> Self {
        self.credentials.insert(registry.into(), credentials);
        self
    }

    /// The auth files to search for credentials, in order (docker `config.json` or
    /// containers `auth.json` format; `credHelpers` and `credsStore` run
    /// `docker-credential-<name> get`). Default: [`default_auth_files`](crate::default_auth_files)
    /// (`$REGISTRY_AUTH_FILE`, the containers `auth.json` files, `$DOCKER_CONFIG/config.json`
    /// or `~/.docker/config.json`). An empty list disables auth files.
    pub fn auth_files(mut self, files: Vec<PathBuf>) -> Self {
        self.auth_files = Some(files);
        self
    }

    /// The largest manifest or index accepted. Default 4 MiB.
    pub fn max_document_size(mut self, bytes: u64) -> Self {
        self.max_document_size = bytes;
        self
    }

    /// How many times a blob download resumes (with `Range`) after its connection dropped.
    /// Default 5.
    pub fn resume_attempts(mut self, attempts: u32) -> Self {
        self.resume_attempts = attempts;
        self
    }

    /// Uploads blobs held in memory ([`Repository::push_blob_bytes`](crate::Repository::push_blob_bytes):
    /// configs, small artifacts) with one `POST ...?digest=` carrying the bytes, the
    /// distribution-spec's single-request monolithic upload, falling back to `PUT` when the
    /// registry answers by opening a session instead (202). Saves a round trip where
    /// supported. Default false (`POST` then `PUT`).
    pub fn single_post_upload(mut self, yes: bool) -> Self {
        self.single_post = yes;
        self
    }

    /// Builds the client.
    pub fn build(self) -> crate::Result<crate::Client> {
        crate::Client::from_builder(self)
    }
}

/// The `certs.d` directories searched by default, in order (containers-certs.d(5)):
/// `$XDG_CONFIG_HOME/containers/certs.d` (or `$HOME/.config/containers/certs.d`),
/// `/etc/containers/certs.d`, and docker's `/etc/docker/certs.d`.
pub fn default_certs_d() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(home) = config_home {
        dirs.push(home.join("containers/certs.d"));
    }
    dirs.push(PathBuf::from("/etc/containers/certs.d"));
    dirs.push(PathBuf::from("/etc/docker/certs.d"));
    dirs
}

/// True when `registry` is loopback: `localhost`, `127.0.0.0/8` or `[::1]`, with any port.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.split(':').next().unwrap_or(registry)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for yes in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:1",
            "127.9.8.7",
            "[::1]:5000",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "example.com",
            "128.0.0.1:5000",
            "[::2]:1",
            "localhost.example",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let p = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_millis(400));
        for attempt in 0..10 {
            let cap = Duration::from_millis(100 << attempt.min(2));
            let b = p.backoff(attempt);
            assert!(b >= cap / 2 && b <= cap, "{attempt}: {b:?}");
        }
        assert_eq!(RetryPolicy::none().backoff(3), Duration::ZERO);
    }
}
