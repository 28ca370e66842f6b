//! The client configuration of registry locations, as containers/image's `SystemContext`:
//! made from the files skopeo and podman read by default (registries.conf, `certs.d`, the
//! auth files, the system's CA store), with per-call overrides for credentials, TLS
//! verification and a certificate directory (skopeo's `--src-creds`, `--src-tls-verify`,
//! `--src-cert-dir` and their `--dest-*` twins).
//!
//! ```no_run
//! use ocikit::SystemContext;
//! use ocikit::copy::{CopyOptions, pull};
//! use ocikit::distribution::Credentials;
//!
//! let registry = SystemContext::new()
//!     .cert_dir("/srv/certs/registry.internal")
//!     .credentials(Credentials::new("me", "secret"));
//! let options = CopyOptions::new().source_context(registry);
//! pull("registry.internal:5000/team/app:1", "/tmp/app".as_ref(), Some("1"), &options)?;
//! # Ok::<_, ocikit::Error>(())
//! ```
//!
//! Pulls go to the mirrors registries.conf gives for the image, in order, then to its
//! location; a mirror that cannot be reached, lacks the image or serves a blob that fails
//! verification is passed over for the next place. Pushes go where the reference says (with
//! the `insecure` and `blocked` of its table). A blocked image is refused before any
//! connection ([`ocikit_distribution::Error::Blocked`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use ocikit_distribution::{
    Client, ClientBuilder, Credentials, Endpoint, Reference, RegistriesConf, Repository,
};
use ocikit_image::oci_spec::image::{Descriptor, Digest};
use ocikit_image::{AnyManifest, BlobReader, Config, ImageSource, Manifest, TagOrDigest};

use crate::Error;

/// Where registries.conf comes from.
#[derive(Clone, Debug, Default)]
enum Registries {
    /// [`RegistriesConf::system_files`], read when a location is opened.
    #[default]
    System,
    /// These files, read when a location is opened.
    Files(Vec<PathBuf>),
    /// This configuration.
    Given(RegistriesConf),
}

/// How registries are reached: registries.conf, TLS trust, credentials, and the client's
/// other settings. Cheap to clone; files are read when a `docker://` location is opened.
///
/// Every setter consumes and returns the context; each says its default, which is what
/// skopeo does with the same files.
#[derive(Clone, Debug, Default)]
pub struct SystemContext {
    registries: Registries,
    credentials: Option<Credentials>,
    tls_verify: Option<bool>,
    cert_dir: Option<PathBuf>,
    certs_d: Option<Vec<PathBuf>>,
    auth_files: Option<Vec<PathBuf>>,
    client: Option<ClientBuilder>,
}

impl SystemContext {
    /// The system's configuration: see each setter for its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads registries.conf from `files`, in order, instead of the system's. Default:
    /// [`RegistriesConf::system_files`] (`$CONTAINERS_REGISTRIES_CONF`, else
    /// `~/.config/containers/registries.conf` or `/etc/containers/registries.conf`, and
    /// their `registries.conf.d` drop-ins).
    pub fn registries_conf_files(mut self, files: Vec<PathBuf>) -> Self {
        self.registries = Registries::Files(files);
        self
    }

    /// Uses `conf` as registries.conf (an empty [`RegistriesConf::default`] for none).
    /// Default: the system's files, as [`registries_conf_files`](Self::registries_conf_files)
    /// says.
    pub fn registries_conf(mut self, conf: RegistriesConf) -> Self {
        self.registries = Registries::Given(conf);
        self
    }

    /// Authenticates with `credentials` to every registry reached (skopeo's `--creds`),
    /// before any auth file. Default: the auth files' credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Requires HTTPS with a verified certificate (`true`, loopback registries included), or
    /// allows plain HTTP and unverified certificates everywhere (`false`), as skopeo's
    /// `--tls-verify`. Default: unset, registries.conf's `insecure` decides (HTTPS with
    /// verification, plain HTTP for loopback registries).
    pub fn tls_verify(mut self, verify: bool) -> Self {
        self.tls_verify = Some(verify);
        self
    }

    /// Uses the `*.crt`, `*.cert` and `*.key` files of `dir` for every registry, in place of
    /// the `certs.d` directories (skopeo's `--cert-dir`). Default: none.
    pub fn cert_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cert_dir = Some(dir.into());
        self
    }

    /// The `certs.d` directories searched for `HOST[:PORT]/`. Default:
    /// [`ocikit_distribution::default_certs_d`] (`~/.config/containers/certs.d`,
    /// `/etc/containers/certs.d`, `/etc/docker/certs.d`).
    pub fn certs_d(mut self, dirs: Vec<PathBuf>) -> Self {
        self.certs_d = Some(dirs);
        self
    }

    /// The auth files searched for credentials (skopeo's `--authfile`; empty for none).
    /// Default: [`ocikit_distribution::default_auth_files`].
    pub fn auth_files(mut self, files: Vec<PathBuf>) -> Self {
        self.auth_files = Some(files);
        self
    }

    /// The client settings the context starts from (timeouts, retries, proxies, CAs given
    /// in code...); the context's own settings are applied over them. Default:
    /// [`Client::builder`].
    pub fn client(mut self, builder: ClientBuilder) -> Self {
        self.client = Some(builder);
        self
    }

    /// The registries configuration in force.
    pub fn registries(&self) -> Result<RegistriesConf, Error> {
        Ok(match &self.registries {
            Registries::System => RegistriesConf::load_system()?,
            Registries::Files(files) => RegistriesConf::load(files)?,
            Registries::Given(conf) => conf.clone(),
        })
    }

    /// A client for `endpoints`, with the context's settings and each endpoint's `insecure`.
    pub fn client_for(&self, endpoints: &[Endpoint]) -> Result<Client, Error> {
        let mut b = self.client.clone().unwrap_or_default();
        if let Some(v) = self.tls_verify {
            b = b.tls_verify(v);
        }
        if let Some(dir) = &self.cert_dir {
            b = b.cert_dir(dir);
        }
        if let Some(dirs) = &self.certs_d {
            b = b.certs_d(dirs.clone());
        }
        if let Some(files) = &self.auth_files {
            b = b.auth_files(files.clone());
        }
        for e in endpoints {
            let host = e.reference.registry_host();
            if let Some(c) = &self.credentials {
                b = b.credentials(host, c.clone());
            }
            b = match e.insecure {
                Some(true) => b.insecure(host),
                // `insecure = false`: "container runtimes require TLS", loopback included.
                Some(false) => b.https(host),
                None => b,
            };
        }
        Ok(b.build()?)
    }

    /// The repositories to pull `reference` from, in order (mirrors, then the location).
    pub fn pull_repositories(&self, reference: &str) -> Result<Vec<Repository>, Error> {
        let reference = qualified(reference)?;
        let endpoints = self.registries()?.pull_endpoints(&reference)?;
        let client = self.client_for(&endpoints)?;
        Ok(endpoints
            .iter()
            .map(|e| client.repository(&e.reference))
            .collect())
    }

    /// The repository to push `reference` to, and the reference.
    pub fn push_repository(&self, reference: &str) -> Result<(Repository, Reference), Error> {
        let reference = qualified(reference)?;
        let endpoint = self.registries()?.push_endpoint(&reference)?;
        let client = self.client_for(std::slice::from_ref(&endpoint))?;
        Ok((client.repository(&reference), reference))
    }
}

/// Parses a reference that names its registry. Short names are out of scope
/// (`unqualified-search-registries` and aliases are not read): "the first component is a
/// registry when it has a `.` or a `:`, or is `localhost`".
pub(crate) fn qualified(text: &str) -> Result<Reference, Error> {
    let first = text.split('/').next().unwrap_or(text);
    let has_registry = text.contains('/')
        && (first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.starts_with('['));
    if !has_registry {
        return Err(Error::InvalidLocation {
            value: format!("docker://{text}"),
            reason: "a short name (no registry): short names are not resolved, give the \
                     registry, e.g. docker.io/library/NAME"
                .into(),
        });
    }
    Ok(text.parse()?)
}

/// A registry source over several places (mirrors, then the location): each request goes
/// to the first place that answers it; a place that cannot be reached is not asked again;
/// a blob opened again (after it failed verification) comes from the next place that has
/// it.
pub(crate) struct MirroredSource {
    repos: Vec<Repository>,
    /// The place that gave the top manifest.
    chosen: usize,
    /// Places whose connection failed.
    down: Mutex<Vec<bool>>,
    /// The place that served each blob last.
    served: Mutex<HashMap<Digest, usize>>,
}

impl MirroredSource {
    /// Resolves `target` at the first place that has it.
    pub(crate) fn open(
        repos: Vec<Repository>,
        target: &TagOrDigest,
    ) -> Result<(Self, Descriptor, AnyManifest), Error> {
        let mut source = MirroredSource {
            down: Mutex::new(vec![false; repos.len()]),
            served: Mutex::new(HashMap::new()),
            repos,
            chosen: 0,
        };
        let (i, (top, doc)) = source.first(0, |r| r.resolve_manifest(target))?;
        source.chosen = i;
        Ok((source, top, doc))
    }

    /// The repository that gave the top manifest.
    pub(crate) fn repository(&self) -> &Repository {
        &self.repos[self.chosen]
    }

    /// How many places there are.
    pub(crate) fn places(&self) -> usize {
        self.repos.len()
    }

    /// Asks the places from `start` on (wrapping), passing over those down; the last error
    /// when none answers.
    fn first<'s, T>(
        &'s self,
        start: usize,
        f: impl Fn(&'s Repository) -> ocikit_image::Result<T>,
    ) -> ocikit_image::Result<(usize, T)> {
        let n = self.repos.len();
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            if self.down.lock().expect("no panics under the lock")[i] && n > 1 {
                continue;
            }
            match f(&self.repos[i]) {
                Ok(v) => return Ok((i, v)),
                Err(e) => {
                    if unreachable(&e) {
                        self.down.lock().expect("no panics under the lock")[i] = true;
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            ocikit_image::Error::NotFound("no registry location could be reached".into())
        }))
    }
}

/// Whether an error says the place could not be reached at all (connection, TLS).
fn unreachable(e: &ocikit_image::Error) -> bool {
    match e {
        ocikit_image::Error::Backend(b) => b
            .downcast_ref::<ocikit_distribution::Error>()
            .is_some_and(|d| matches!(d, ocikit_distribution::Error::Http { .. })),
        _ => false,
    }
}

impl ImageSource for MirroredSource {
    fn resolve(&self, reference: &TagOrDigest) -> ocikit_image::Result<Descriptor> {
        Ok(self.first(0, |r| r.resolve(reference))?.1)
    }

    fn open_blob_unverified(&self, d: &Descriptor) -> ocikit_image::Result<BlobReader<'_>> {
        let start = self
            .served
            .lock()
            .expect("no panics under the lock")
            .get(d.digest())
            .map_or(0, |i| i + 1);
        let (i, stream) = self.first(start, |r| Ok(r.get_blob_unverified(d)?))?;
        self.served
            .lock()
            .expect("no panics under the lock")
            .insert(d.digest().clone(), i);
        Ok(Box::new(stream))
    }

    fn open_manifest_unverified(&self, d: &Descriptor) -> ocikit_image::Result<BlobReader<'_>> {
        Ok(self
            .first(self.chosen, |r| r.open_manifest_unverified(d))?
            .1)
    }

    fn resolve_manifest(
        &self,
        reference: &TagOrDigest,
    ) -> ocikit_image::Result<(Descriptor, AnyManifest)> {
        Ok(self
            .first(self.chosen, |r| r.resolve_manifest(reference))?
            .1)
    }

    /// A configuration is read whole and verified at one place, the next on any failure
    /// (a corrupt one included).
    fn fetch_config(&self, manifest: &Manifest) -> ocikit_image::Result<Config> {
        Ok(self.first(self.chosen, |r| r.fetch_config(manifest))?.1)
    }

    fn referrers(&self, subject: &Descriptor) -> ocikit_image::Result<Vec<Descriptor>> {
        ImageSource::referrers(self.repository(), subject)
    }

    fn max_document_size(&self) -> u64 {
        ImageSource::max_document_size(self.repository())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_refused_with_a_reason() {
        for short in ["busybox", "busybox:1", "library/busybox"] {
            let e = qualified(short).unwrap_err();
            assert!(e.to_string().contains("short name"), "{e}");
        }
        for full in [
            "docker.io/library/busybox",
            "localhost/a",
            "127.0.0.1:5000/a:1",
        ] {
            qualified(full).unwrap();
        }
    }
}
