//! The client: one HTTP agent (connections reused), authentication state and the request
//! loop with retries.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::http::{self, Method, Response, StatusCode};

use crate::auth::{Challenge, CredentialSources, Token, parse_challenges, parse_token_response};
use crate::config::is_loopback;
use crate::error::{AuthErrorKind, decode_errors};
use crate::tls::{HostTls, Trust, cert_dir_of, extra_roots, read_cert_dir, tls_config};
use crate::{ClientBuilder, Credentials, Error, Reference, Repository, Result};

/// A blocking registry client. Cheap to clone (clones share connections and tokens) and
/// usable from several threads.
///
/// ```no_run
/// use ocikit_distribution::{Client, Reference};
///
/// let client = Client::new()?;
/// let reference: Reference = "localhost:5000/app:latest".parse()?;
/// let repo = client.repository(&reference);
/// let manifest = repo.get_manifest(reference.target())?;
/// println!("{} {}", manifest.digest(), manifest.media_type());
/// # Ok::<_, ocikit_distribution::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

struct Inner {
    /// The proxy every agent goes through, if any.
    proxy: Option<ureq::Proxy>,
    /// The CAs given in code ([`ClientBuilder::ca_root_pem`]), which every agent trusts.
    given_roots: Vec<ureq::tls::Certificate<'static>>,
    /// Each registry's connection: its scheme and agent, decided on first use.
    endpoints: Mutex<HashMap<String, Endpoint>>,
    config: ClientBuilder,
    sources: CredentialSources,
    state: Mutex<AuthState>,
}

#[derive(Default)]
struct AuthState {
    /// What each registry asked for the last time it said 401.
    schemes: HashMap<String, Challenge>,
    /// Bearer tokens per registry and scope set.
    tokens: HashMap<(String, String), Token>,
    /// Credentials looked up per registry (`None`: there are none).
    credentials: HashMap<String, Option<Credentials>>,
}

/// A request body.
pub(crate) enum Body<'a> {
    /// No body.
    Empty,
    /// Bytes in memory (the request can be replayed).
    Bytes(&'a [u8]),
    /// A stream of known length (the request cannot be replayed).
    Stream(&'a mut dyn Read, u64),
}

impl Body<'_> {
    fn replayable(&self) -> bool {
        !matches!(self, Body::Stream(..))
    }
}

/// A request as the repository operations describe it.
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) registry: &'a str,
    pub(crate) scopes: Vec<String>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Body<'a>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(method: Method, url: String, registry: &'a str) -> Self {
        Request {
            method,
            url,
            registry,
            scopes: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub(crate) fn scope(mut self, scope: String) -> Self {
        self.scopes.push(scope);
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: Body<'a>) -> Self {
        self.body = body;
        self
    }
}

/// How a registry is reached.
#[derive(Clone)]
struct Endpoint {
    /// `http` or `https`.
    https: bool,
    agent: ureq::Agent,
    /// The agent trusts only the CAs given in code and the registry's own (`certs.d`), not
    /// the system's store yet: see [`Client::widen`].
    narrow: bool,
    /// What the registry's certificate directory holds.
    host: Arc<HostTls>,
}

/// The value of a response header, if present and text.
pub(crate) fn header<B>(resp: &Response<B>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

/// Reads at most `limit` bytes of a response body.
pub(crate) fn read_body(resp: &mut Response<ureq::Body>, limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(limit)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Turns an error answer into [`Error::Registry`], reading (a capped part of) its body.
pub(crate) fn status_error(method: &Method, url: &str, mut resp: Response<ureq::Body>) -> Error {
    let status = resp.status().as_u16();
    let body = if *method == Method::HEAD {
        Vec::new()
    } else {
        read_body(&mut resp, 64 << 10).unwrap_or_default()
    };
    let errors = decode_errors(&body);
    let text = if errors.is_empty() {
        String::from_utf8_lossy(&body[..body.len().min(512)])
            .trim()
            .to_owned()
    } else {
        String::new()
    };
    Error::Registry {
        status,
        method: method.to_string(),
        url: url.to_owned(),
        errors,
        body: text,
    }
}

fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
        || (status.is_server_error() && !matches!(status.as_u16(), 501 | 505))
}

fn retryable_error(e: &ureq::Error) -> bool {
    match e {
        // What we refused to send (a header value that would split the request) is refused
        // again on every attempt.
        ureq::Error::Io(io) => io.kind() != std::io::ErrorKind::InvalidInput,
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

/// `Retry-After` as seconds or as an HTTP date (IMF-fixdate), capped at 60 s.
fn retry_after<B>(resp: &Response<B>) -> Option<Duration> {
    let value = header(resp, "retry-after")?;
    let secs = match value.parse::<u64>() {
        Ok(secs) => secs,
        Err(_) => {
            let at = parse_http_date(&value)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs();
            at.saturating_sub(now)
        }
    };
    Some(Duration::from_secs(secs.min(60)))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace().skip(1);
    let day: u64 = parts.next()?.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| Some(*m) == parts.clone().next())? as u64
        + 1;
    parts.next();
    let year: u64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years from 1970.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

impl Client {
    /// A client with the default configuration.
    pub fn new() -> Result<Self> {
        ClientBuilder::default().build()
    }

    /// The builder of a client; see [`ClientBuilder`] for the settings and their defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub(crate) fn from_builder(config: ClientBuilder) -> Result<Self> {
        let proxy = match &config.proxy {
            Some(url) => Some(ureq::Proxy::new(url).map_err(|e| Error::Protocol {
                url: url.clone(),
                message: format!("invalid proxy: {e}"),
            })?),
            None if config.proxy_from_env => ureq::Proxy::try_from_env(),
            None => None,
        };
        let given_roots = extra_roots(&config)?;
        let sources = CredentialSources {
            explicit: config.credentials.clone(),
            auth_files: config.auth_files.clone(),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                proxy,
                given_roots,
                endpoints: Mutex::new(HashMap::new()),
                config,
                sources,
                state: Mutex::new(AuthState::default()),
            }),
        })
    }

    /// How `registry` is reached, decided on its first use:
    /// - HTTPS when [`ClientBuilder::https`] names it or `tls_verify(true)` was set;
    /// - plain HTTP when [`ClientBuilder::plain_http`] names it;
    /// - HTTPS with its own CAs and client certificate when it has a certificate directory
    ///   (`certs.d/HOST[:PORT]` or the builder's `cert_dir`), loopback hosts included;
    /// - when insecure (listed, or `tls_verify(false)`): HTTPS without verifying the
    ///   certificate if `GET /v2/` gets an HTTP answer over it, else plain HTTP
    ///   (containers-registries.conf(5): "unencrypted HTTP as well as TLS connections with
    ///   untrusted certificates are allowed");
    /// - plain HTTP for loopback hosts, as crane does; HTTPS for every other host.
    fn endpoint(&self, registry: &str) -> Result<Endpoint> {
        if let Some(e) = self
            .inner
            .endpoints
            .lock()
            .expect("endpoints")
            .get(registry)
        {
            return Ok(e.clone());
        }
        let config = &self.inner.config;
        let listed = |list: &[String]| list.iter().any(|h| h == registry);
        let dir = cert_dir_of(config, registry);
        let host = Arc::new(match &dir {
            Some(dir) => read_cert_dir(dir)?,
            None => HostTls::default(),
        });
        let own = self.own_roots(&host);
        let insecure = config.tls_verify == Some(false) || listed(&config.insecure);
        let unverified = insecure.then(|| {
            make_agent(
                config,
                self.inner.proxy.clone(),
                tls_config(Trust::Narrow(&own), &host, false),
            )
        });
        let https = if listed(&config.force_https) || config.tls_verify == Some(true) {
            true
        } else if listed(&config.plain_http) {
            false
        } else if dir.is_some() {
            true
        } else if let Some(agent) = &unverified {
            agent.get(format!("https://{registry}/v2/")).call().is_ok()
        } else {
            !is_loopback(registry)
        };
        let (agent, narrow) = match unverified {
            Some(agent) => (agent, false),
            None => {
                // A registry with CAs of its own, or reached over plain HTTP, starts without
                // the system's store: reading it costs 2.4 ms (9 ms with a cold page cache)
                // per process, and such a registry's certificate rarely needs it.
                let narrow = !https || !host.roots.is_empty();
                let trust = if narrow {
                    Trust::Narrow(&own)
                } else {
                    Trust::Wide(&own)
                };
                let tls = tls_config(trust, &host, true);
                (make_agent(config, self.inner.proxy.clone(), tls), narrow)
            }
        };
        let endpoint = Endpoint {
            https,
            agent,
            narrow,
            host,
        };
        self.inner
            .endpoints
            .lock()
            .expect("endpoints")
            .insert(registry.to_owned(), endpoint.clone());
        Ok(endpoint)
    }

    /// The CAs given in code and the registry's own.
    fn own_roots(&self, host: &HostTls) -> Vec<ureq::tls::Certificate<'static>> {
        let mut own = self.inner.given_roots.clone();
        own.extend_from_slice(&host.roots);
        own
    }

    /// The endpoint of `registry` trusting the system's store too, once a certificate failed
    /// against its narrow trust (a registry signed by a public CA, or a redirect to blob
    /// storage that is). The trust is then what containers/image gives: the system's pool
    /// plus the registry's `certs.d` CAs, so nothing is accepted that it would refuse, nor
    /// refused that it would accept; the request is sent again.
    fn widen(&self, registry: &str, narrow: &Endpoint) -> Endpoint {
        let own = self.own_roots(&narrow.host);
        let tls = tls_config(Trust::Wide(&own), &narrow.host, true);
        let wide = Endpoint {
            https: narrow.https,
            agent: make_agent(&self.inner.config, self.inner.proxy.clone(), tls),
            narrow: false,
            host: narrow.host.clone(),
        };
        let mut endpoints = self.inner.endpoints.lock().expect("endpoints");
        match endpoints.get(registry) {
            // Another thread widened it first.
            Some(e) if !e.narrow => e.clone(),
            _ => {
                endpoints.insert(registry.to_owned(), wide.clone());
                wide
            }
        }
    }

    pub(crate) fn config(&self) -> &ClientBuilder {
        &self.inner.config
    }

    /// The repository `reference` names (its tag or digest is not kept).
    pub fn repository(&self, reference: &Reference) -> Repository {
        Repository::new(
            self.clone(),
            reference.registry_host().to_owned(),
            reference.repository().to_owned(),
        )
    }

    /// The repository `name` on `registry` (`host[:port]`); the name is validated.
    pub fn repository_at(&self, registry: &str, name: &str) -> Result<Repository> {
        let r = Reference::new(registry, name, "latest".parse().expect("valid tag"))?;
        Ok(self.repository(&r))
    }

    /// `http://host` or `https://host` (see [`endpoint`](Self::endpoint)). A certificate
    /// directory that cannot be read gives HTTPS here, and its error on the first request.
    pub(crate) fn base_url(&self, registry: &str) -> String {
        let https = self.endpoint(registry).map(|e| e.https).unwrap_or(true);
        format!("{}://{registry}", if https { "https" } else { "http" })
    }

    /// Checks that `registry` speaks the distribution API (`GET /v2/`), authenticating if it
    /// asks to.
    pub fn ping(&self, registry: &str) -> Result<()> {
        let url = format!("{}/v2/", self.base_url(registry));
        let mut resp = self.execute(Request::new(Method::GET, url.clone(), registry))?;
        if resp.status().is_success() {
            let _ = read_body(&mut resp, 64 << 10);
            Ok(())
        } else {
            Err(status_error(&Method::GET, &url, resp))
        }
    }

    /// Lists the repositories of `registry` (`GET /v2/_catalog`), following `Link` pages of
    /// `page_size` entries (the registry's default when `None`).
    pub fn catalog(&self, registry: &str, page_size: Option<u32>) -> Result<Vec<String>> {
        let base = self.base_url(registry);
        let mut url = format!("{base}/v2/_catalog");
        if let Some(n) = page_size {
            url.push_str(&format!("?n={n}"));
        }
        self.paged(registry, url, "registry:catalog:*", "repositories")
    }

    /// Follows `Link: <...>; rel="next"` pages, collecting the string array `field`.
    pub(crate) fn paged(
        &self,
        registry: &str,
        first: String,
        scope: &str,
        field: &str,
    ) -> Result<Vec<String>> {
        let base = self.base_url(registry);
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 100_000 {
                return Err(Error::Protocol {
                    url,
                    message: "more than 100000 pages".into(),
                });
            }
            let req = Request::new(Method::GET, url.clone(), registry)
                .scope(scope.to_owned())
                .header("accept", "application/json");
            let mut resp = self.execute(req)?;
            if !resp.status().is_success() {
                return Err(status_error(&Method::GET, &url, resp));
            }
            next = header(&resp, "link").and_then(|l| next_link(&l)).map(|l| {
                if l.starts_with("http://") || l.starts_with("https://") {
                    l
                } else {
                    format!("{base}{l}")
                }
            });
            let body = read_body(&mut resp, 16 << 20)?;
            let value: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                    url: url.clone(),
                    message: format!("invalid JSON: {e}"),
                })?;
            if let Some(items) = value.get(field).and_then(|v| v.as_array()) {
                out.extend(items.iter().filter_map(|v| v.as_str().map(str::to_owned)));
            }
        }
        Ok(out)
    }

    /// Sends a request, authenticating and retrying as configured. Returns the response
    /// whatever its status, except refusals after authentication ([`Error::Auth`]).
    pub(crate) fn execute(&self, mut req: Request<'_>) -> Result<Response<ureq::Body>> {
        let mut endpoint = self.endpoint(req.registry)?;
        if endpoint.narrow && !req.body.replayable() && req.url.starts_with("https://") {
            // A body that cannot be sent twice goes over TLS trusting every CA it may need.
            // (Over plain HTTP there is no certificate; ureq does not send such a body again
            // on a redirect either.)
            endpoint = self.widen(req.registry, &endpoint);
        }
        let policy = self.inner.config.retry.clone();
        let mut attempt = 0u32;
        let mut auth_retried = false;
        loop {
            let auth = self.authorization(req.registry, &req.scopes)?;
            let replayable = req.body.replayable();
            let result = send_once(&endpoint.agent, &mut req, auth.as_deref());
            match result {
                Err(e) if endpoint.narrow && certificate_refused(&e) => {
                    endpoint = self.widen(req.registry, &endpoint);
                    continue;
                }
                Err(ureq::Error::Io(io))
                    if io
                        .get_ref()
                        .is_some_and(|i| i.is::<Error>() || i.is::<ocikit_image::Error>()) =>
                {
                    // Our own stream (a verifying reader) failed while it was being sent.
                    return Err(Error::from(io));
                }
                Err(e) => {
                    if replayable && retryable_error(&e) && attempt < policy.max_retries() {
                        std::thread::sleep(policy.backoff(attempt));
                        attempt += 1;
                        continue;
                    }
                    return Err(Error::Http {
                        method: req.method.to_string(),
                        url: req.url.clone(),
                        source: e,
                    });
                }
                Ok(mut resp) => {
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED {
                        let challenges = header(&resp, "www-authenticate")
                            .map(|h| parse_challenges(&h))
                            .unwrap_or_default();
                        let _ = read_body(&mut resp, 64 << 10);
                        if auth_retried || !replayable {
                            return Err(Error::Auth {
                                kind: AuthErrorKind::Unauthorized,
                                registry: req.registry.to_owned(),
                                status: Some(401),
                                message: format!(
                                    "{} {} refused{}",
                                    req.method,
                                    req.url,
                                    if auth.is_some() {
                                        " with the credentials or token given"
                                    } else {
                                        " without credentials"
                                    }
                                ),
                            });
                        }
                        auth_retried = true;
                        self.learn(req.registry, &mut req.scopes, &challenges)?;
                        continue;
                    }
                    if status == StatusCode::FORBIDDEN && auth.is_some() {
                        let e = status_error(&req.method, &req.url, resp);
                        return Err(Error::Auth {
                            kind: AuthErrorKind::Unauthorized,
                            registry: req.registry.to_owned(),
                            status: Some(403),
                            message: e.to_string(),
                        });
                    }
                    if replayable && retryable_status(status) && attempt < policy.max_retries() {
                        let wait = retry_after(&resp).unwrap_or_else(|| policy.backoff(attempt));
                        let _ = read_body(&mut resp, 64 << 10);
                        std::thread::sleep(wait);
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
            }
        }
    }
}

/// Whether `e` is our side refusing the server's certificate (rustls's verdict, whether ureq
/// passes it on as is or inside an I/O error).
fn certificate_refused(e: &ureq::Error) -> bool {
    let tls = match e {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    matches!(tls, Some(rustls::Error::InvalidCertificate(_)))
}

fn send_once(
    agent: &ureq::Agent,
    req: &mut Request<'_>,
    auth: Option<&str>,
) -> std::result::Result<Response<ureq::Body>, ureq::Error> {
    let mut builder = http::Request::builder()
        .method(req.method.clone())
        .uri(req.url.as_str());
    for (k, v) in &req.headers {
        builder = builder.header(*k, v.as_str());
    }
    if let Some(a) = auth {
        builder = builder.header("authorization", a);
    }
    match &mut req.body {
        Body::Empty => {
            if matches!(req.method, Method::PUT | Method::POST | Method::PATCH) {
                builder = builder.header("content-length", "0");
            }
            agent.run(builder.body(())?)
        }
        Body::Bytes(b) => {
            builder = builder.header("content-length", b.len().to_string());
            agent.run(builder.body(*b)?)
        }
        Body::Stream(r, len) => {
            builder = builder.header("content-length", len.to_string());
            agent.run(builder.body(ureq::SendBody::from_reader(*r))?)
        }
    }
}

impl Client {
    /// Records what a 401 asked for.
    fn learn(
        &self,
        registry: &str,
        scopes: &mut Vec<String>,
        challenges: &[Challenge],
    ) -> Result<()> {
        let bearer = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }));
        let chosen = bearer.or_else(|| challenges.iter().find(|c| matches!(c, Challenge::Basic)));
        let Some(chosen) = chosen.cloned() else {
            return Err(Error::Auth {
                kind: AuthErrorKind::BadChallenge,
                registry: registry.to_owned(),
                status: Some(401),
                message: "401 without a Basic or Bearer challenge".into(),
            });
        };
        // The token that was refused (if any) is dropped.
        let refused = (registry.to_owned(), scopes.join(" "));
        if let Challenge::Bearer {
            scope: Some(scope), ..
        } = &chosen
        {
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                if !scopes.iter().any(|have| have == s) {
                    scopes.push(s.to_owned());
                }
            }
        }
        let mut state = self.inner.state.lock().expect("auth state");
        state.tokens.remove(&refused);
        state.schemes.insert(registry.to_owned(), chosen);
        Ok(())
    }

    fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(c) = self
            .inner
            .state
            .lock()
            .expect("auth state")
            .credentials
            .get(registry)
        {
            return Ok(c.clone());
        }
        let found = self.inner.sources.lookup(registry)?;
        self.inner
            .state
            .lock()
            .expect("auth state")
            .credentials
            .insert(registry.to_owned(), found.clone());
        Ok(found)
    }

    /// The `Authorization` header for a request, fetching a token when needed.
    fn authorization(&self, registry: &str, scopes: &[String]) -> Result<Option<String>> {
        let scheme = self
            .inner
            .state
            .lock()
            .expect("auth state")
            .schemes
            .get(registry)
            .cloned();
        match scheme {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self
                .credentials(registry)?
                .filter(|c| c.token().is_none())
                .map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = (registry.to_owned(), scopes.join(" "));
                if let Some(t) = self
                    .inner
                    .state
                    .lock()
                    .expect("auth state")
                    .tokens
                    .get(&key)
                    && t.expires > Instant::now()
                {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let token = self.fetch_token(registry, &realm, service.as_deref(), scopes)?;
                let value = format!("Bearer {}", token.value);
                self.inner
                    .state
                    .lock()
                    .expect("auth state")
                    .tokens
                    .insert(key, token);
                Ok(Some(value))
            }
        }
    }

    fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Token> {
        let creds = self.credentials(registry)?;
        // Credentials never travel in clear to a realm when the registry itself uses TLS.
        if creds.is_some()
            && realm.starts_with("http://")
            && self.base_url(registry).starts_with("https://")
        {
            return Err(Error::Auth {
                kind: AuthErrorKind::BadChallenge,
                registry: registry.to_owned(),
                status: None,
                message: format!("refusing to send credentials to the plain-HTTP realm {realm}"),
            });
        }
        let mut endpoint = self.endpoint(registry)?;
        let send = |agent: &ureq::Agent| {
            if let Some(token) = creds.as_ref().and_then(Credentials::token) {
                // OAuth2: exchange the identity (refresh) token for an access token.
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", token.to_owned()),
                    ("client_id", "ocikit".to_owned()),
                    ("scope", scopes.join(" ")),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_owned()));
                }
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", crate::blob::encode_query(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                agent
                    .post(realm)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .send(body.as_bytes())
            } else {
                let mut req = agent.get(realm);
                if let Some(s) = service {
                    req = req.query("service", s);
                }
                for s in scopes {
                    req = req.query("scope", s);
                }
                if let Some(c) = &creds {
                    req = req
                        .query("account", c.username())
                        .header("authorization", c.basic_header());
                }
                req.call()
            }
        };
        let policy = &self.inner.config.retry;
        let mut attempt = 0;
        let mut resp = loop {
            match send(&endpoint.agent) {
                Err(e) if endpoint.narrow && certificate_refused(&e) => {
                    endpoint = self.widen(registry, &endpoint);
                    continue;
                }
                Ok(mut r) if retryable_status(r.status()) && attempt < policy.max_retries() => {
                    let wait = retry_after(&r).unwrap_or_else(|| policy.backoff(attempt));
                    let _ = read_body(&mut r, 64 << 10);
                    std::thread::sleep(wait);
                }
                Ok(r) => break r,
                Err(e) if retryable_error(&e) && attempt < policy.max_retries() => {
                    std::thread::sleep(policy.backoff(attempt));
                }
                Err(e) => {
                    return Err(Error::Http {
                        method: "GET".into(),
                        url: realm.to_owned(),
                        source: e,
                    });
                }
            }
            attempt += 1;
        };
        let status = resp.status().as_u16();
        let body = read_body(&mut resp, 1 << 20)?;
        if status != 200 {
            return Err(Error::Auth {
                kind: AuthErrorKind::TokenRefused,
                registry: registry.to_owned(),
                status: Some(status),
                message: format!(
                    "token server {realm} refused {} credentials: {}",
                    if creds.is_some() {
                        "the"
                    } else {
                        "anonymous, without"
                    },
                    String::from_utf8_lossy(&body[..body.len().min(300)]).trim()
                ),
            });
        }
        parse_token_response(&body, registry)
    }
}

/// An agent with the client's settings and `tls`.
fn make_agent(
    config: &ClientBuilder,
    proxy: Option<ureq::Proxy>,
    tls: ureq::tls::TlsConfig,
) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .proxy(proxy)
        .user_agent(config.user_agent.as_str())
        // Blobs are served as stored; no transparent decompression, so byte offsets for
        // `Range` stay true.
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .timeout_connect(Some(config.connect_timeout))
        .timeout_per_read(Some(config.read_timeout))
        .timeout_recv_response(Some(config.read_timeout))
        .max_redirects(10)
        .max_idle_connections_per_host(8)
        .build()
        .into()
}

/// The target of `rel="next"` in a `Link` header.
pub(crate) fn next_link(link: &str) -> Option<String> {
    for part in link.split(',') {
        let part = part.trim();
        let (target, params) = part.split_once(';').unwrap_or((part, ""));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        if params.split(';').any(|p| {
            p.trim()
                .replace(' ', "")
                .eq_ignore_ascii_case("rel=\"next\"")
                || p.trim().eq_ignore_ascii_case("rel=next")
        }) {
            return Some(target.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/p1>; rel="prev", <https://x/p3>; rel=next"#).as_deref(),
            Some("https://x/p3")
        );
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn what_is_retried() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 201, 400, 401, 403, 404, 416, 501, 505] {
            assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        let resp = |v: &str| {
            Response::builder()
                .header("retry-after", v)
                .body(())
                .unwrap()
        };
        assert_eq!(retry_after(&resp("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&resp("3600")), Some(Duration::from_secs(60)));
        // A date in the past: retry now.
        assert_eq!(
            retry_after(&resp("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&resp("soon")), None);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        let io = |kind| ureq::Error::Io(std::io::Error::new(kind, "x"));
        assert!(retryable_error(&io(std::io::ErrorKind::ConnectionReset)));
        assert!(retryable_error(&io(std::io::ErrorKind::UnexpectedEof)));
        assert!(!retryable_error(&io(std::io::ErrorKind::InvalidInput)));
        assert!(retryable_error(&ureq::Error::ConnectionFailed));
        assert!(!retryable_error(&ureq::Error::BadUri("x".into())));
    }

    #[test]
    fn plain_http_only_for_loopback_and_listed_hosts() {
        let c = Client::builder()
            .plain_http("reg.lan:5000")
            .build()
            .unwrap();
        assert_eq!(c.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(c.base_url("localhost"), "http://localhost");
        assert_eq!(c.base_url("reg.lan:5000"), "http://reg.lan:5000");
        assert_eq!(c.base_url("reg.lan"), "https://reg.lan");
        assert_eq!(c.base_url("quay.io"), "https://quay.io");
    }
}
