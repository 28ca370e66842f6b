//! Registries as operators configure them (`SystemContext`): TLS trusted through a
//! `certs.d` directory, through the system's store (`SSL_CERT_FILE`), or refused; a client
//! certificate from `certs.d`; registries.conf mirrors (one down, one serving a corrupt
//! blob), `blocked`, `insecure`, a file that does not parse, and credentials given per call.
//!
//! Needs the registries of `scripts/test.sh`: `OCIKIT_TEST_REGISTRY` (plain HTTP),
//! `OCIKIT_TEST_TLS_REGISTRY`, `OCIKIT_TEST_MTLS_REGISTRY` (client certificate required) and
//! `OCIKIT_TEST_TLS_DIR` (`ca.crt`, `client.cert`, `client.key`); fails without them. The
//! tests of the `ocikit` command need the workspace built (`scripts/test.sh` does).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{own_registry, registry};
use ocikit::SystemContext;
use ocikit::copy::{CopyOptions, pull, push};
use ocikit::distribution::RegistriesConf;
use ocikit::image::{ImageDestination, ImageSource, sha256};
use ocikit::layout::Layout;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with `bash scripts/test.sh`"))
}

fn tls_dir() -> PathBuf {
    PathBuf::from(env("OCIKIT_TEST_TLS_DIR"))
}

/// A layout holding one image, `app:v1`, of one layer of `size` pseudo-random bytes.
fn image(root: &Path, seed: u64, size: usize) -> (Layout, String) {
    let l = Layout::create(root).unwrap();
    let mut x = seed | 1;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "data", &data[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let (ld, ls) = l.write_blob(&layer[..], None, None).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer).to_string()]},
    }))
    .unwrap();
    let (cd, cs) = l.write_blob(&config[..], None, None).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cd.to_string(), "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": ld.to_string(), "size": ls}],
    }))
    .unwrap();
    let (md, _) = l.write_blob(&manifest[..], None, None).unwrap();
    let any = ocikit::image::AnyManifest::from_bytes(
        manifest,
        Some(&"application/vnd.oci.image.manifest.v1+json".into()),
    )
    .unwrap();
    l.tag(&"v1".parse().unwrap(), &any).unwrap();
    (l, md.to_string())
}

/// No registries.conf, no auth files, no system `certs.d`: only what the test gives.
fn hermetic() -> SystemContext {
    SystemContext::new()
        .registries_conf(RegistriesConf::default())
        .auth_files(Vec::new())
        .certs_d(Vec::new())
}

/// A `certs.d` root with `host/` holding the given files of the test's TLS directory.
fn certs_d(host: &str, files: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(host);
    std::fs::create_dir(&dir).unwrap();
    for f in files {
        std::fs::copy(tls_dir().join(f), dir.join(f)).unwrap();
    }
    root
}

/// A private copy of the system's CA bundle with the test CA added, at `path` (for
/// `SSL_CERT_FILE`).
fn bundle_with_test_ca(path: &Path) {
    let mut pem = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    pem.extend(std::fs::read(tls_dir().join("ca.crt")).unwrap());
    std::fs::write(path, pem).unwrap();
}

/// The digest of the image tagged `got` in the layout at `root`.
fn got_digest(root: &Path) -> String {
    let layout = Layout::open(root).unwrap();
    layout
        .resolve(&"got".parse().unwrap())
        .unwrap()
        .digest()
        .to_string()
}

fn push_and_pull(context: SystemContext, registry: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (src, digest) = image(&dir.path().join("src"), 7, 100_000);
    let reference = format!("{registry}/ocikit-context/{name}:v1");
    let pushed = push(
        &format!("oci:{}:v1", src.root().display()).parse().unwrap(),
        &reference,
        &CopyOptions::new().destination_context(context.clone()),
    )
    .unwrap();
    assert_eq!(pushed.top.digest().to_string(), digest);
    let pulled = pull(
        &reference,
        &dir.path().join("pulled"),
        Some("got"),
        &CopyOptions::new().source_context(context),
    )
    .unwrap();
    assert_eq!(pulled.top.digest().to_string(), digest);
    assert_eq!(pulled.blobs.len(), 2);
}

#[test]
fn tls_trusted_through_a_certs_d_directory() {
    let registry = env("OCIKIT_TEST_TLS_REGISTRY");
    let root = certs_d(&registry, &["ca.crt"]);
    push_and_pull(
        hermetic().certs_d(vec![root.path().into()]),
        &registry,
        "certs-d",
    );
    // skopeo's --cert-dir: the directory itself, for every registry.
    push_and_pull(
        hermetic().cert_dir(root.path().join(&registry)),
        &registry,
        "cert-dir",
    );
}

#[test]
fn tls_refused_when_nothing_trusts_the_ca_and_the_error_says_why() {
    let registry = env("OCIKIT_TEST_TLS_REGISTRY");
    let dir = tempfile::tempdir().unwrap();
    let e = pull(
        &format!("{registry}/ocikit-context/none:v1"),
        dir.path(),
        None,
        &CopyOptions::new().source_context(hermetic().tls_verify(true)),
    )
    .unwrap_err();
    let e = ocikit::ErrorChain(&e).to_string();
    assert!(e.contains(&format!("https://{registry}/")), "{e}");
    assert!(e.contains("UnknownIssuer"), "{e}");
}

#[test]
fn a_client_certificate_from_certs_d() {
    let registry = env("OCIKIT_TEST_MTLS_REGISTRY");
    let root = certs_d(&registry, &["ca.crt", "client.cert", "client.key"]);
    push_and_pull(
        hermetic().certs_d(vec![root.path().into()]),
        &registry,
        "client-cert",
    );
    // Without it, the registry ends the handshake.
    let no_cert = certs_d(&registry, &["ca.crt"]);
    let dir = tempfile::tempdir().unwrap();
    let e = pull(
        &format!("{registry}/ocikit-context/client-cert:v1"),
        dir.path(),
        None,
        &CopyOptions::new().source_context(hermetic().certs_d(vec![no_cert.path().into()])),
    )
    .unwrap_err();
    let e = ocikit::ErrorChain(&e).to_string();
    assert!(e.contains(&registry), "{e}");
}

/// `ocikit copy`, trusting the registry through the system's store: a private copy of
/// the bundle with the test CA added, given as `SSL_CERT_FILE`; skopeo's options.
#[test]
fn tls_trusted_through_the_system_store_by_the_ocikit_command() {
    let registry = env("OCIKIT_TEST_TLS_REGISTRY");
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.pem");
    bundle_with_test_ca(&bundle);
    let conf = dir.path().join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let (src, digest) = image(&dir.path().join("src"), 9, 50_000);
    let reference = format!("docker://{registry}/ocikit-context/system-store:v1");
    let copy = |args: &[&str], bundle: &Path| {
        Command::new(common::workspace_binary("ocikit"))
            .arg("copy")
            .args(args)
            .args(["--registries-conf", conf.to_str().unwrap()])
            .env("SSL_CERT_FILE", bundle)
            .env("HOME", dir.path())
            .env("REGISTRY_AUTH_FILE", dir.path().join("auth.json"))
            .output()
            .unwrap()
    };
    let src_loc = format!("oci:{}:v1", src.root().display());
    let out = copy(&[&src_loc, &reference, "--dest-tls-verify=true"], &bundle);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst_loc = format!("oci:{}:got", dir.path().join("pulled").display());
    let out = copy(&[&reference, &dst_loc, "--src-tls-verify"], &bundle);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got_digest(&dir.path().join("pulled")), digest);
    // The system bundle alone does not trust it.
    let out = copy(
        &[&reference, &dst_loc, "--src-tls-verify"],
        Path::new("/etc/ssl/certs/ca-certificates.crt"),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
}

/// The system's store is read only when a certificate needs it: not for a registry its own
/// CA (`--src-cert-dir`) verifies, nor for a plain-HTTP one; when the registry's directory
/// holds another CA, the store is read and the pull goes on trusting both, as
/// containers/image trusts the system's pool plus `certs.d`; with neither trusting it, the
/// error names the registry and the problem; a plain-HTTP registry that redirects to HTTPS
/// storage reads it then. Runs the `ocikit` command under strace(1) with
/// `SSL_CERT_FILE` set to a private bundle, and looks for that bundle among the files it opened.
#[test]
fn the_system_store_is_read_only_when_a_certificate_needs_it() {
    let registry = env("OCIKIT_TEST_TLS_REGISTRY");
    let plain = common::registry();
    let dir = tempfile::tempdir().unwrap();
    let (src, digest) = image(&dir.path().join("src"), 11, 40_000);
    let reference = format!("{registry}/ocikit-context/lazy-store:v1");
    let ca_root = certs_d(&registry, &["ca.crt"]);
    let pushed = push(
        &format!("oci:{}:v1", src.root().display()).parse().unwrap(),
        &reference,
        &CopyOptions::new()
            .destination_context(hermetic().cert_dir(ca_root.path().join(&registry))),
    )
    .unwrap();
    assert_eq!(pushed.top.digest().to_string(), digest);
    push(
        &format!("oci:{}:v1", src.root().display()).parse().unwrap(),
        &format!("{plain}/ocikit-context/lazy-store:v1"),
        &CopyOptions::new().destination_context(hermetic()),
    )
    .unwrap();
    // The system's bundle plus the test CA, and the test CA's own directory.
    let with_ca = dir.path().join("with-ca.pem");
    bundle_with_test_ca(&with_ca);
    let without_ca = dir.path().join("without-ca.pem");
    std::fs::copy("/etc/ssl/certs/ca-certificates.crt", &without_ca).unwrap();
    let own_ca = dir.path().join("own");
    std::fs::create_dir(&own_ca).unwrap();
    std::fs::copy(tls_dir().join("ca.crt"), own_ca.join("ca.crt")).unwrap();
    // A directory with a CA that did not sign the registry's certificate.
    let other_ca = dir.path().join("other");
    std::fs::create_dir(&other_ca).unwrap();
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=ocikit-test-other-ca", "-keyout"])
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(other_ca.join("ca.crt"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let conf = dir.path().join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default": [{"type": "insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let run = std::cell::Cell::new(0);
    // Runs `ocikit copy` with `args` and `bundle` as the system's store; returns whether it
    // succeeded, its stderr, and whether it opened the bundle.
    let traced = |args: &[String], bundle: &Path| {
        run.set(run.get() + 1);
        let trace = dir.path().join(format!("trace{}", run.get()));
        let out = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
            .arg(&trace)
            .arg(common::workspace_binary("ocikit"))
            .args(["copy", "-q", "--policy"])
            .arg(&policy)
            .args(["--registries-conf", conf.to_str().unwrap()])
            .args(args)
            .env("SSL_CERT_FILE", bundle)
            .env("SSL_CERT_DIR", dir.path().join("no-such-dir"))
            .env("HOME", dir.path())
            .env("REGISTRY_AUTH_FILE", dir.path().join("auth.json"))
            .output()
            .unwrap();
        let opened = std::fs::read_to_string(&trace)
            .unwrap()
            .contains(&format!("\"{}\"", bundle.display()));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            opened,
        )
    };
    // Pulls `from` into `pulled<N>` (N: the run's number) with `flags`.
    let pull_with = |from: &str, flags: &[&str], bundle: &Path| {
        let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        args.push(format!("docker://{from}"));
        let to = dir.path().join(format!("pulled{}", run.get() + 1));
        args.push(format!("oci:{}:got", to.display()));
        traced(&args, bundle)
    };
    let own = own_ca.to_str().unwrap();
    let other = other_ca.to_str().unwrap();
    // Its own CA verifies it: the store is not read.
    let (ok, stderr, opened) = pull_with(&reference, &["--src-cert-dir", own], &with_ca);
    assert!(ok, "{stderr}");
    assert!(
        !opened,
        "the system's store was read for a registry its own CA verifies"
    );
    // Another CA in its directory, the test CA in the system's store: read, and trusted.
    let (ok, stderr, opened) = pull_with(&reference, &["--src-cert-dir", other], &with_ca);
    assert!(ok, "{stderr}");
    assert!(opened, "the system's store was not read");
    let pulled = dir.path().join(format!("pulled{}", run.get()));
    assert_eq!(got_digest(&pulled), digest);
    // Neither trusts it: refused, naming the registry and the problem.
    let (ok, stderr, opened) = pull_with(&reference, &["--src-cert-dir", other], &without_ca);
    assert!(!ok);
    assert!(opened);
    assert!(
        stderr.contains(&registry) && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
    // Plain HTTP: nothing to verify, the store is not read.
    let plain_ref = format!("{plain}/ocikit-context/lazy-store:v1");
    let (ok, stderr, opened) = pull_with(&plain_ref, &[], &with_ca);
    assert!(ok, "{stderr}");
    assert!(
        !opened,
        "the system's store was read for a plain-HTTP registry"
    );
    // Nor for a push to it (its uploads stream bodies that cannot be sent twice).
    let (ok, stderr, opened) = traced(
        &[
            format!("oci:{}:v1", src.root().display()),
            format!("docker://{plain}/ocikit-context/lazy-store-push:v1"),
        ],
        &with_ca,
    );
    assert!(ok, "{stderr}");
    assert!(!opened, "the system's store was read for a plain-HTTP push");
    // A plain-HTTP registry that sends every request on to HTTPS storage the system's
    // store trusts (as registries redirect blobs to a CDN): read then, and trusted.
    let redirecting = redirector(format!("https://{registry}"));
    let (ok, stderr, opened) = pull_with(
        &format!("{redirecting}/ocikit-context/lazy-store:v1"),
        &[],
        &with_ca,
    );
    assert!(ok, "{stderr}");
    assert!(opened, "the system's store was not read for the redirect");
    let pulled = dir.path().join(format!("pulled{}", run.get()));
    assert_eq!(got_digest(&pulled), digest);
}

/// A plain-HTTP server on loopback that answers every request with a 307 to the same path
/// under `target` (`https://host:port`). Returns its address.
fn redirector(target: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let target = target.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut reader = BufReader::new(client.try_clone()?);
                let mut first = String::new();
                reader.read_line(&mut first)?;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = first.split(' ').nth(1).unwrap_or("/");
                let mut client = client;
                write!(
                    client,
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}{path}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                )?;
                client.shutdown(Shutdown::Both)
            });
        }
    });
    addr
}

/// A relay in front of `upstream`, one request per connection: it answers as the registry
/// does, but flips the last byte of every blob it serves. Counts the connections.
fn corrupting_mirror(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let _ = relay_once(client, &upstream);
            });
        }
    });
    (addr, count)
}

fn relay_once(client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if !line.to_ascii_lowercase().starts_with("connection:") {
            head.push(line);
        }
    }
    let blob = head
        .first()
        .is_some_and(|l| l.starts_with("GET ") && l.contains("/blobs/"));
    let mut server = TcpStream::connect(upstream)?;
    let mut request = head.concat();
    request.push_str("Connection: close\r\n\r\n");
    server.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    if blob
        && response.starts_with(b"HTTP/1.1 200")
        && let Some(last) = response.last_mut()
    {
        *last ^= 0xff;
    }
    let mut client = client;
    client.write_all(&response)?;
    client.shutdown(Shutdown::Both)
}

#[test]
fn mirrors_down_then_corrupt_fall_back_to_the_location() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let (src, digest) = image(&dir.path().join("src"), 11, 200_000);
    let name = format!("ocikit-context/mirrored-{}", std::process::id());
    push(
        &format!("oci:{}:v1", src.root().display()).parse().unwrap(),
        &format!("{registry}/{name}:v1"),
        &CopyOptions::new().destination_context(hermetic()),
    )
    .unwrap();
    // Nothing listens on the first mirror; the second serves corrupt blobs.
    let down = TcpListener::bind("127.0.0.1:0").unwrap();
    let down_addr = down.local_addr().unwrap().to_string();
    drop(down);
    let (corrupt, connections) = corrupting_mirror(registry.clone());
    let conf = RegistriesConf::parse(
        &format!(
            r#"
[[registry]]
prefix = "example.invalid/team"
location = "{registry}/ocikit-context"

[[registry.mirror]]
location = "{down_addr}/ocikit-context"

[[registry.mirror]]
location = "{corrupt}/ocikit-context"
"#
        ),
        "test.conf",
    )
    .unwrap();
    let context =
        hermetic()
            .registries_conf(conf)
            .client(ocikit::distribution::Client::builder().retry(
                ocikit::distribution::RetryPolicy::new(
                    1,
                    std::time::Duration::from_millis(10),
                    std::time::Duration::from_millis(10),
                ),
            ));
    let logical = format!(
        "example.invalid/team/{}:v1",
        name.trim_start_matches("ocikit-context/")
    );
    let pulled = pull(
        &logical,
        &dir.path().join("pulled"),
        Some("v1"),
        &CopyOptions::new().source_context(context),
    )
    .unwrap();
    assert_eq!(pulled.top.digest().to_string(), digest);
    // The corrupt mirror was asked (manifest and blobs), and the blobs came whole.
    assert!(connections.load(Ordering::SeqCst) >= 2);
    // Every blob in the layout is what its digest says.
    let blobs = dir.path().join("pulled/blobs/sha256");
    let mut checked = 0;
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            sha256(&bytes).to_string(),
            format!("sha256:{}", path.file_name().unwrap().to_str().unwrap())
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
    // The relay does corrupt: with it as the only place, the pull fails verification and
    // leaves no blob of the layer behind.
    let conf = RegistriesConf::parse(
        &format!("[[registry]]\nprefix = \"example.invalid/team\"\nlocation = \"{corrupt}/ocikit-context\"\n"),
        "test.conf",
    )
    .unwrap();
    let e = pull(
        &logical,
        &dir.path().join("corrupt"),
        Some("v1"),
        &CopyOptions::new().source_context(hermetic().registries_conf(conf)),
    )
    .unwrap_err();
    assert!(
        matches!(&e, ocikit::Error::Image(i) if i.is_verification()),
        "{e}"
    );
}

#[test]
fn a_blocked_registry_is_refused_without_a_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    let conf = RegistriesConf::parse(
        &format!("[[registry]]\nlocation = \"{addr}/blocked\"\nblocked = true\n"),
        "blocked.conf",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let context = hermetic().registries_conf(conf);
    let e = pull(
        &format!("{addr}/blocked/app:v1"),
        dir.path(),
        None,
        &CopyOptions::new().source_context(context.clone()),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            ocikit::Error::Distribution(ocikit::distribution::Error::Blocked { .. })
        ),
        "{e}"
    );
    let (src, _) = image(&dir.path().join("src"), 3, 1000);
    let e = push(
        &format!("oci:{}:v1", src.root().display()).parse().unwrap(),
        &format!("{addr}/blocked/app:v1"),
        &CopyOptions::new().destination_context(context),
    )
    .unwrap_err();
    assert!(e.to_string().contains("blocked"), "{e}");
    assert!(listener.accept().is_err(), "a connection was made");
}

#[test]
fn a_registries_conf_that_does_not_parse_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        "[[registry]]\nlocation = \"reg.lan\"\n[[registry.mirror]]\nlocation = \"m.lan\"\npull-from-mirror = \"never\"\n",
    )
    .unwrap();
    let e = pull(
        "reg.lan/app:v1",
        dir.path(),
        None,
        &CopyOptions::new().source_context(hermetic().registries_conf_files(vec![conf.clone()])),
    )
    .unwrap_err();
    let e = ocikit::ErrorChain(&e).to_string();
    assert!(e.starts_with(&format!("{}:5:20: ", conf.display())), "{e}");
    // The command says it the same way.
    let out = Command::new(common::workspace_binary("ocikit"))
        .arg("copy")
        .args(["docker://reg.lan/app:v1", "oci:/nonexistent/x"])
        .args(["--registries-conf", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:5:20: ", conf.display())),
        "{stderr}"
    );
    // A short name is refused, saying so.
    let e = pull("busybox:1", dir.path(), None, &CopyOptions::new()).unwrap_err();
    let e = ocikit::ErrorChain(&e).to_string();
    assert!(e.contains("short name"), "{e}");
}

/// The image store reads through the same context: a mirror serving corrupt blobs (config
/// and layer) is passed over for the location, and the stored layer is the real one.
#[test]
fn the_store_pulls_past_a_corrupt_mirror() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let (src, digest) = image(&dir.path().join("src"), 13, 150_000);
    let name = format!("store-mirrored-{}", std::process::id());
    push(
        &format!("oci:{}:v1", src.root().display()).parse().unwrap(),
        &format!("{registry}/ocikit-context/{name}:v1"),
        &CopyOptions::new().destination_context(hermetic()),
    )
    .unwrap();
    let (corrupt, connections) = corrupting_mirror(registry.clone());
    let conf = RegistriesConf::parse(
        &format!(
            "[[registry]]\nprefix = \"example.invalid/team\"\nlocation = \"{registry}/ocikit-context\"\n\
             [[registry.mirror]]\nlocation = \"{corrupt}/ocikit-context\"\n"
        ),
        "test.conf",
    )
    .unwrap();
    let store = ocikit::store::Store::open(dir.path().join("store")).unwrap();
    let pulled = store
        .pull(
            &format!("docker://example.invalid/team/{name}:v1")
                .parse()
                .unwrap(),
            &ocikit::store::PullOptions::new().context(hermetic().registries_conf(conf)),
        )
        .unwrap();
    assert!(connections.load(Ordering::SeqCst) >= 2);
    assert_eq!(pulled.layers.len(), 1);
    assert!(pulled.layers[0].fetched && pulled.layers[0].unpacked);
    assert_eq!(
        pulled.name.as_ref().map(|n| n.as_str().to_owned()),
        Some(format!("example.invalid/team/{name}:v1"))
    );
    let images = store.images().unwrap();
    assert!(
        images.iter().any(|i| i.digest.to_string() == digest),
        "{images:?}"
    );
}

/// registries.conf's `insecure = true`: "unencrypted HTTP as well as TLS connections with
/// untrusted certificates are allowed": the TLS registry whose CA nothing trusts is reached
/// over TLS without verification, and the plain one over HTTP.
#[test]
fn insecure_allows_an_untrusted_certificate_and_plain_http() {
    for registry in [env("OCIKIT_TEST_TLS_REGISTRY"), registry()] {
        let conf = RegistriesConf::parse(
            &format!("[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"),
            "insecure.conf",
        )
        .unwrap();
        push_and_pull(
            hermetic().registries_conf(conf),
            &registry,
            &format!("insecure-{}", std::process::id()),
        );
    }
    // skopeo's --tls-verify=false does the same for every registry.
    push_and_pull(
        hermetic().tls_verify(false),
        &env("OCIKIT_TEST_TLS_REGISTRY"),
        "tls-verify-false",
    );
}

/// skopeo's `--dest-creds`/`--src-creds` on `ocikit copy`, against a registry with
/// htpasswd: they work, and without them the registry refuses.
#[test]
fn credentials_given_per_call_to_ocikit_copy() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    common::run(
        Command::new("htpasswd")
            .arg("-Bbc")
            .arg(&htpasswd)
            .args(["alice", "s3cret"]),
    );
    let reg = own_registry(&format!(
        "auth:\n  htpasswd:\n    realm: ocikit\n    path: {}\n",
        htpasswd.display()
    ));
    let (src, digest) = image(&dir.path().join("src"), 17, 20_000);
    let conf = dir.path().join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let copy = |args: &[&str]| {
        Command::new(common::workspace_binary("ocikit"))
            .arg("copy")
            .args(args)
            .args(["--registries-conf", conf.to_str().unwrap()])
            .env("HOME", dir.path())
            .env("REGISTRY_AUTH_FILE", dir.path().join("auth.json"))
            .output()
            .unwrap()
    };
    let reference = format!("docker://{}/team/app:v1", reg.addr);
    let src_loc = format!("oci:{}:v1", src.root().display());
    let out = copy(&[&src_loc, &reference]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authentication"), "{stderr}");
    let out = copy(&[&src_loc, &reference, "--dest-creds", "alice:s3cret"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst_loc = format!("oci:{}:got", dir.path().join("pulled").display());
    let out = copy(&[&reference, &dst_loc, "--src-creds=alice:s3cret"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got_digest(&dir.path().join("pulled")), digest);
    let out = copy(&[&reference, &dst_loc, "--src-creds", "alice:wrong"]);
    assert!(!out.status.success());
}
