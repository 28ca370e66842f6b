//! What the client trusts: the system's CA store, CAs given in code, and per-registry
//! `certs.d` directories (containers-certs.d(5)).

use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::{ClientBuilder, Error, Result};

/// The CA certificates of the system's store, as rustls-native-certs finds them
/// (`$SSL_CERT_FILE`/`$SSL_CERT_DIR` when set, else the distribution's bundle). Certificates
/// that do not parse are skipped, as the store's other readers do.
///
/// Read once per process, as Go's `x509.SystemCertPool` is, and only when an agent needs it
/// (`Trust::Wide`): reading Debian's store (its bundle and the 146 files of
/// `/etc/ssl/certs`) took 2.4–2.9 ms with a warm page cache and 9.2–9.8 ms with a cold one.
pub(crate) fn system_roots() -> Vec<Certificate<'static>> {
    static ROOTS: std::sync::OnceLock<Vec<Certificate<'static>>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            found
                .certs
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .collect()
        })
        .clone()
}

/// Every certificate of a PEM text, which must hold at least one.
fn pem_certs(pem: &[u8], what: &dyn Fn() -> String) -> Result<Vec<Certificate<'static>>> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(config_error(what(), format!("invalid PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(config_error(what(), "no certificate in it".into()));
    }
    Ok(certs)
}

fn config_error(what: String, message: String) -> Error {
    Error::Config {
        path: PathBuf::from(what),
        line: None,
        column: None,
        message,
    }
}

/// What one registry's certificate directory holds.
#[derive(Default)]
pub(crate) struct HostTls {
    /// Its CAs (`*.crt`).
    pub(crate) roots: Vec<Certificate<'static>>,
    /// Its client certificate (`NAME.cert` with `NAME.key`).
    pub(crate) client: Option<ClientCert>,
}

/// The certificate directory of `registry` (`host[:port]`): the builder's `cert_dir`, else
/// the first `certs.d` root holding a directory named exactly `registry` ("the port part
/// presence / absence must precisely match the port usage in image references",
/// containers-certs.d(5)).
pub(crate) fn cert_dir_of(config: &ClientBuilder, registry: &str) -> Option<PathBuf> {
    if let Some(dir) = &config.cert_dir {
        return Some(dir.clone());
    }
    // A registry name never holds `/` or `..` as a whole component, but an IPv6 literal's
    // brackets and colons are fine in a file name.
    if registry.is_empty() || registry.contains('/') || registry == ".." {
        return None;
    }
    config
        .certs_d
        .iter()
        .map(|root| root.join(registry))
        .find(|dir| dir.is_dir())
}

/// Reads a certificate directory: "`*.crt` files with this extensions will be interpreted
/// as CA certificates, `*.cert` ... as client certificates, `*.key` ... as client keys",
/// and "the client certificate-key pair will be selected by the file name (e.g.,
/// `client.{cert,key}`)" (containers-certs.d(5)). A `.cert` without its `.key`, or the
/// reverse, is an error, as in containers/image; so is a second pair.
pub(crate) fn read_cert_dir(dir: &Path) -> Result<HostTls> {
    let io =
        |path: &Path, e: std::io::Error| config_error(path.display().to_string(), e.to_string());
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| io(dir, e)))
        .collect::<Result<_>>()?;
    names.sort();
    let mut host = HostTls::default();
    for path in &names {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let shown = || path.display().to_string();
        match ext {
            "crt" => {
                let pem = std::fs::read(path).map_err(|e| io(path, e))?;
                host.roots.extend(pem_certs(&pem, &shown)?);
            }
            "cert" => {
                let key_path = path.with_extension("key");
                if !key_path.exists() {
                    return Err(config_error(
                        shown(),
                        format!("client certificate without its key {}", key_path.display()),
                    ));
                }
                if host.client.is_some() {
                    return Err(config_error(
                        shown(),
                        "a second client certificate in the directory".into(),
                    ));
                }
                let pem = std::fs::read(path).map_err(|e| io(path, e))?;
                let chain = pem_certs(&pem, &shown)?;
                let key_pem = std::fs::read(&key_path).map_err(|e| io(&key_path, e))?;
                let key = PrivateKey::from_pem(&key_pem).map_err(|e| {
                    config_error(key_path.display().to_string(), format!("invalid key: {e}"))
                })?;
                host.client = Some(ClientCert::new_with_certs(&chain, key));
            }
            "key" if !path.with_extension("cert").exists() => {
                return Err(config_error(
                    shown(),
                    format!(
                        "client key without its certificate {}",
                        path.with_extension("cert").display()
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(host)
}

/// Which CAs an agent trusts.
pub(crate) enum Trust<'a> {
    /// Only these: the builder's and the host's own (its `certs.d` CAs). Used until a
    /// certificate fails against them, so that the system's store is read only when it is
    /// needed (see `Client::widen`). May be empty (a plain-HTTP registry).
    Narrow(&'a [Certificate<'static>]),
    /// The system's store too (`system_roots`), with the builder's and the host's CAs.
    Wide(&'a [Certificate<'static>]),
}

/// The TLS configuration of a host: whom it trusts; its client certificate; verification
/// off when `verify` is false (then `trust` does not matter).
pub(crate) fn tls_config(trust: Trust<'_>, host: &HostTls, verify: bool) -> TlsConfig {
    let mut tls = TlsConfig::builder().disable_verification(!verify);
    if verify {
        let roots = match trust {
            Trust::Narrow(own) => RootCerts::new_with_certs(own),
            Trust::Wide(own) => {
                let system = system_roots();
                if system.is_empty() && own.is_empty() {
                    // No system store at all: the Mozilla roots compiled in.
                    RootCerts::WebPki
                } else {
                    let mut all = system;
                    all.extend_from_slice(own);
                    RootCerts::new_with_certs(&all)
                }
            }
        };
        tls = tls.root_certs(roots);
    }
    if let Some(client) = &host.client {
        tls = tls.client_cert(Some(client.clone()));
    }
    tls.build()
}

/// The CAs given to [`ClientBuilder::ca_root_pem`], each of which must parse whole.
pub(crate) fn extra_roots(config: &ClientBuilder) -> Result<Vec<Certificate<'static>>> {
    let mut certs = Vec::new();
    for pem in &config.ca_roots_pem {
        certs.extend(pem_certs(pem, &|| {
            "a CA root PEM given to the client".into()
        })?);
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_without_its_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client.key"), "x").unwrap();
        let e = read_cert_dir(dir.path()).err().unwrap();
        assert!(
            e.to_string().contains("client key without its certificate"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("client.key")).unwrap();
        std::fs::write(dir.path().join("ca.crt"), "no pem here").unwrap();
        let e = read_cert_dir(dir.path()).err().unwrap();
        assert!(e.to_string().contains("ca.crt"), "{e}");
        assert!(e.to_string().contains("no certificate"), "{e}");
    }

    #[test]
    fn the_first_certs_d_with_the_host_wins_and_ports_must_match() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(b.path().join("reg.lan:5000")).unwrap();
        std::fs::create_dir(a.path().join("reg.lan")).unwrap();
        let config = ClientBuilder::default().certs_d(vec![a.path().into(), b.path().into()]);
        assert_eq!(
            cert_dir_of(&config, "reg.lan:5000"),
            Some(b.path().join("reg.lan:5000"))
        );
        assert_eq!(
            cert_dir_of(&config, "reg.lan"),
            Some(a.path().join("reg.lan"))
        );
        assert_eq!(cert_dir_of(&config, "reg.lan:443"), None);
        assert_eq!(cert_dir_of(&config, ".."), None);
        let fixed = config.cert_dir("/somewhere");
        assert_eq!(cert_dir_of(&fixed, "x"), Some(PathBuf::from("/somewhere")));
    }
}
