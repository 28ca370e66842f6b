//! `containers-registries.d(5)`: where simple signatures of a registry's images are kept (the
//! "lookaside" storage), and the lookaside protocol itself (containers/image's
//! `docs/signature-protocols.md`): `BASE/REPOSITORY@ALGO=HEX/signature-N`, N from 1.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::TrustError;
use super::policy::{DockerIdentity, docker_scopes};

/// The most signatures read for one image (a guard against a storage without end).
const MAX_SIGNATURES: usize = 128;
/// The largest signature file read.
pub(crate) const MAX_SIGNATURE_SIZE: u64 = 4 << 20;

/// The merged `*.yaml` files of a registries.d directory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegistriesD {
    default_docker: Option<Namespace>,
    docker: BTreeMap<String, Namespace>,
}

/// One configuration section (`default-docker`, or a scope under `docker`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Namespace {
    lookaside: Option<String>,
    lookaside_staging: Option<String>,
    sigstore: Option<String>,
    sigstore_staging: Option<String>,
    use_sigstore_attachments: Option<bool>,
}

impl Namespace {
    /// "`lookaside-staging` defines an URL of the signature storage, used for editing it
    /// (adding or deleting signatures). This key is optional; if it is missing, `lookaside`
    /// below is used." `sigstore` and `sigstore-staging` are their older names.
    fn url(&self, write: bool) -> Option<&str> {
        let staging = self
            .lookaside_staging
            .as_deref()
            .or(self.sigstore_staging.as_deref());
        let read = self.lookaside.as_deref().or(self.sigstore.as_deref());
        if write { staging.or(read) } else { read }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    default_docker: Option<Namespace>,
    docker: Option<BTreeMap<String, Namespace>>,
}

impl RegistriesD {
    /// Reads and merges the `*.yaml` files of `dir` (none when it does not exist). "there can
    /// be at most one `default-docker` section across all files, and there can be at most
    /// one instance of any key under the `docker` section".
    pub fn load(dir: &Path) -> Result<RegistriesD, TrustError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TrustError::Io { path, source }
        };
        let mut merged = RegistriesD::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(merged),
            Err(e) => return Err(io(dir)(e)),
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let file = parse(&bytes).map_err(|reason| TrustError::RegistriesD {
                path: path.clone(),
                reason,
            })?;
            let conflict = |what: String| TrustError::RegistriesD {
                path: path.clone(),
                reason: format!("{what} is configured in another file too"),
            };
            if let Some(d) = file.default_docker {
                if merged.default_docker.is_some() {
                    return Err(conflict("default-docker".into()));
                }
                merged.default_docker = Some(d);
            }
            for (scope, ns) in file.docker.unwrap_or_default() {
                if merged.docker.insert(scope.clone(), ns).is_some() {
                    return Err(conflict(format!("docker scope {scope:?}")));
                }
            }
        }
        Ok(merged)
    }

    /// The directory containers/image reads when none is given:
    /// `$HOME/.config/containers/registries.d` if it exists, else
    /// `/etc/containers/registries.d`.
    pub fn default_dir() -> PathBuf {
        if let Some(home) = std::env::var_os("HOME") {
            let user = PathBuf::from(home).join(".config/containers/registries.d");
            if user.is_dir() {
                return user;
            }
        }
        PathBuf::from("/etc/containers/registries.d")
    }

    /// The section for `image`: "only the configuration for the most-precisely matching
    /// scope is used", else `default-docker`; one without the wanted URL falls through, as
    /// containers/image's lookup does.
    fn lookup<T>(
        &self,
        image: &DockerIdentity,
        get: impl Fn(&Namespace) -> Option<T>,
    ) -> Option<T> {
        for scope in docker_scopes(image) {
            if scope.starts_with("*.") {
                continue; // registries.d has no wildcard scopes
            }
            if let Some(v) = self.docker.get(&scope).and_then(&get) {
                return Some(v);
            }
        }
        self.default_docker.as_ref().and_then(get)
    }

    /// The lookaside base URL of `image`'s repository, to read (`write` false) or to add
    /// signatures to; containers/image falls back to `file:///var/lib/containers/sigstore`
    /// (root) or `~/.local/share/containers/sigstore` when nothing is configured.
    pub fn lookaside(&self, image: &DockerIdentity, write: bool) -> Lookaside {
        let base = self
            .lookup(image, |ns| ns.url(write).map(str::to_owned))
            .unwrap_or_else(|| {
                // containers/image asks `rootless.GetRootlessEUID() == 0`: root only in a
                // user namespace (ocikit_runtime::enter_user_namespace) is still a user.
                let rootless = ocikit_runtime::is_rootless();
                match std::env::var_os("HOME") {
                    Some(home) if rootless => format!(
                        "file://{}/.local/share/containers/sigstore",
                        Path::new(&home).display()
                    ),
                    _ => "file:///var/lib/containers/sigstore".to_owned(),
                }
            });
        // "repo := reference.Path(dr.ref) // Note that this is without a tag or digest":
        // the repository path without the registry host.
        let path = image
            .name()
            .split_once('/')
            .map(|(_, p)| p)
            .unwrap_or(image.name());
        Lookaside {
            base: format!("{}/{}", base.trim_end_matches('/'), path),
        }
    }

    /// Whether `use-sigstore-attachments` is on for `image` (default false).
    pub fn use_sigstore_attachments(&self, image: &DockerIdentity) -> bool {
        self.lookup(image, |ns| ns.use_sigstore_attachments)
            .unwrap_or(false)
    }
}

fn parse(bytes: &[u8]) -> Result<File, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(File {
            default_docker: None,
            docker: None,
        });
    }
    serde_norway::from_slice(bytes).map_err(|e| e.to_string())
}

/// Parses one registries.d YAML file (for the fuzz target).
#[doc(hidden)]
pub fn fuzz_registries_d(bytes: &[u8]) -> bool {
    parse(bytes).is_ok()
}

/// The lookaside storage of one repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookaside {
    base: String,
}

impl Lookaside {
    /// `BASE/REPOSITORY`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of signature `index` (from 1) of the manifest `digest`:
    /// `@ALGO=HEX/signature-N`.
    pub fn url(&self, digest: &oci_spec::image::Digest, index: usize) -> String {
        format!(
            "{}@{}={}/signature-{index}",
            self.base,
            digest.algorithm(),
            digest.digest()
        )
    }

    /// Reads the signatures of `digest`, from `signature-1` on until one is missing.
    pub fn read(&self, digest: &oci_spec::image::Digest) -> Result<Vec<Vec<u8>>, TrustError> {
        let mut out = Vec::new();
        for index in 1..=MAX_SIGNATURES {
            match get(&self.url(digest, index))? {
                Some(sig) => out.push(sig),
                None => break,
            }
        }
        Ok(out)
    }

    /// Adds `signature` after those `digest` has (only `file://` storage can be written, as
    /// with containers/image); returns its URL.
    pub fn add(
        &self,
        digest: &oci_spec::image::Digest,
        signature: &[u8],
    ) -> Result<String, TrustError> {
        for index in 1..=MAX_SIGNATURES {
            let url = self.url(digest, index);
            let path = file_path(&url)?;
            if path.exists() {
                continue;
            }
            let dir = path.parent().expect("a file under a directory");
            std::fs::create_dir_all(dir).map_err(|source| TrustError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            // Written whole, then renamed: a reader never sees half a signature.
            let tmp = dir.join(format!(".signature-{index}.tmp-{}", std::process::id()));
            let io = |p: &Path| {
                let path = p.to_path_buf();
                move |source| TrustError::Io { path, source }
            };
            std::fs::write(&tmp, signature).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            return Ok(url);
        }
        Err(TrustError::Lookaside {
            url: self.base.clone(),
            reason: format!("more than {MAX_SIGNATURES} signatures"),
        })
    }
}

/// The path of a `file://` URL; other schemes cannot be written.
fn file_path(url: &str) -> Result<PathBuf, TrustError> {
    match url.strip_prefix("file://") {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        _ => Err(TrustError::Lookaside {
            url: url.to_owned(),
            reason: "only file:// lookaside storage can be written (as with containers/image)"
                .into(),
        }),
    }
}

/// Reads one lookaside file: `None` when it does not exist (file missing, HTTP 404). The one
/// place lookaside reads go through HTTP(S), with ureq.
fn get(url: &str) -> Result<Option<Vec<u8>>, TrustError> {
    let err = |reason: String| TrustError::Lookaside {
        url: url.to_owned(),
        reason,
    };
    if let Some(path) = url.strip_prefix("file://") {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e.to_string())),
        };
        return read_capped(file).map(Some).map_err(err);
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent.get(url).call().map_err(|e| err(e.to_string()))?;
        return match response.status().as_u16() {
            200 => read_capped(response.into_body().into_reader())
                .map(Some)
                .map_err(err),
            404 => Ok(None),
            s => Err(err(format!("HTTP status {s}"))),
        };
    }
    Err(err("lookaside URLs are file://, http:// or https://".into()))
}

fn read_capped(reader: impl Read) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    reader
        .take(MAX_SIGNATURE_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > MAX_SIGNATURE_SIZE {
        return Err(format!(
            "a signature larger than {MAX_SIGNATURE_SIZE} bytes"
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_scope_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "default-docker:\n  sigstore: file:///default\n\
             docker:\n  example.com/ns:\n    lookaside: https://sigs.example/x/\n    \
             lookaside-staging: file:///staging\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "docker:\n  example.com:\n    lookaside: file:///host\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.yml"), "not: [valid").unwrap();
        let config = RegistriesD::load(dir.path()).unwrap();
        let id = DockerIdentity::parse("example.com/ns/app:v1").unwrap();
        assert_eq!(
            config.lookaside(&id, false).base(),
            "https://sigs.example/x/ns/app"
        );
        assert_eq!(config.lookaside(&id, true).base(), "file:///staging/ns/app");
        let other = DockerIdentity::parse("example.com/other:v1").unwrap();
        assert_eq!(config.lookaside(&other, true).base(), "file:///host/other");
        let elsewhere = DockerIdentity::parse("registry.org/x/y:1").unwrap();
        assert_eq!(
            config.lookaside(&elsewhere, false).base(),
            "file:///default/x/y"
        );
        let digest: oci_spec::image::Digest =
            format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(
            config.lookaside(&elsewhere, false).url(&digest, 1),
            format!("file:///default/x/y@sha256={}/signature-1", "ab".repeat(32))
        );

        std::fs::write(
            dir.path().join("c.yaml"),
            "docker:\n  example.com:\n    lookaside: file:///again\n",
        )
        .unwrap();
        assert!(matches!(
            RegistriesD::load(dir.path()),
            Err(TrustError::RegistriesD { .. })
        ));
        std::fs::write(
            dir.path().join("c.yaml"),
            "docker:\n  x.io:\n    bogus: 1\n",
        )
        .unwrap();
        assert!(matches!(
            RegistriesD::load(dir.path()),
            Err(TrustError::RegistriesD { .. })
        ));
    }

    #[test]
    fn file_lookaside_adds_and_reads_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let l = Lookaside {
            base: format!("file://{}/ns/app", dir.path().display()),
        };
        let digest: oci_spec::image::Digest =
            format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
        assert!(l.read(&digest).unwrap().is_empty());
        l.add(&digest, b"one").unwrap();
        let url = l.add(&digest, b"two").unwrap();
        assert!(url.ends_with("/signature-2"), "{url}");
        assert_eq!(
            l.read(&digest).unwrap(),
            vec![b"one".to_vec(), b"two".to_vec()]
        );
    }
}
