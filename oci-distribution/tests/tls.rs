//! HTTPS with a private CA: a docker-registry started by the test with a certificate made by
//! `openssl` for 127.0.0.1, trusted through `ClientBuilder::ca_root_pem`.

mod support;

use std::process::Command;

use ocikit_distribution::{Client, Error};
use support::{Registry, any, push_image, run};

#[test]
fn https_registry_with_a_private_ca() {
    let keys = tempfile::tempdir().unwrap();
    let (cert, key) = (keys.path().join("cert.pem"), keys.path().join("key.pem"));
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let reg = Registry::start(
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
        |_| {},
    );
    let addr = reg.addr.clone();
    let pem = std::fs::read(&cert).unwrap();
    let trusted = Client::builder()
        .https(&addr)
        .ca_root_pem(pem)
        .auth_files(Vec::new())
        .build()
        .unwrap();
    trusted.ping(&addr).unwrap();
    let repo = trusted.repository_at(&addr, "secure/app").unwrap();
    let m = push_image(&repo, "amd64", 61, &[70_000]);
    repo.put_manifest(&any(&m), Some(&"v1".parse().unwrap()))
        .unwrap();
    assert_eq!(
        repo.get_manifest(&"v1".parse().unwrap()).unwrap().digest(),
        m.digest()
    );

    // Without the CA the certificate is refused; plain HTTP to a TLS port fails too.
    let untrusted = Client::builder()
        .https(&addr)
        .auth_files(Vec::new())
        .retry(ocikit_distribution::RetryPolicy::none())
        .build()
        .unwrap();
    assert!(matches!(untrusted.ping(&addr), Err(Error::Http { .. })));
    assert!(
        Client::builder()
            .ca_root_pem("not a certificate")
            .build()
            .is_err()
    );
}
