//! Connections are reused across requests, and a configured proxy carries them: a raw TCP
//! forwarder (a test peer) in front of the registry of `scripts/test.sh` counts the
//! connections it accepts and the bytes it sends back. Blob downloads go on the same pooled
//! connections as every other request (one HTTP stack, ureq), through the proxy when one is
//! set, following redirects.

mod common;
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::process::Command;

use ocikit_distribution::Client;
use support::{any, example_binary, free_port, push_image, unique};

/// What a [`forwarder`] counted.
#[derive(Clone, Default)]
struct Counts {
    /// Connections accepted.
    accepted: Arc<AtomicUsize>,
    /// Bytes sent from upstream to the client.
    down: Arc<AtomicUsize>,
    /// Blob requests (`GET .../blobs/`) sent from the client upstream.
    blob_gets: Arc<AtomicUsize>,
}

/// Forwards bytes both ways to `upstream`; returns its address and what it counts. As a
/// `connect_proxy`, it first answers an HTTP `CONNECT` (to `upstream` only).
fn forwarder(upstream: String, connect_proxy: bool) -> (String, Counts) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let counts = Counts::default();
    let count = counts.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(1000) {
            let Ok(mut client) = conn else { continue };
            count.accepted.fetch_add(1, Ordering::Relaxed);
            if connect_proxy {
                // Read the CONNECT head byte by byte (nothing may be over-read).
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read_exact(&mut byte).is_err() {
                        break;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                if !head.starts_with(&format!("CONNECT {upstream} ")) {
                    let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
                    continue;
                }
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
            }
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            for (mut from, mut to, upstream) in [
                (
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    true,
                ),
                (server, client, false),
            ] {
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    while let Ok(n) = from.read(&mut buf) {
                        // Counted before it is sent: the client cannot have it uncounted.
                        let sent = &buf[..n];
                        if !upstream {
                            count.down.fetch_add(n, Ordering::SeqCst);
                        } else if sent.windows(7).any(|w| w == b"/blobs/") {
                            let gets = sent.windows(5).filter(|w| *w == b"GET /").count();
                            count.blob_gets.fetch_add(gets, Ordering::SeqCst);
                        }
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    (addr, counts)
}

#[test]
fn connections_are_reused() {
    let registry = common::registry_addr();
    let (fwd, counts) = forwarder(registry, false);
    let client = Client::builder().auth_files(Vec::new()).build().unwrap();
    let repo = client.repository_at(&fwd, &unique("reuse")).unwrap();
    let m = push_image(&repo, "amd64", 71, &[1000, 2000, 3000]);
    for i in 0..10 {
        repo.put_manifest(&any(&m), Some(&format!("t{i}").parse().unwrap()))
            .unwrap();
        repo.get_manifest(&format!("t{i}").parse().unwrap())
            .unwrap();
    }
    // About 45 requests, sequential: one connection (a second if the registry closed one).
    let n = counts.accepted.load(Ordering::Relaxed);
    assert!((1..=2).contains(&n), "{n} connections for ~45 requests");
    // 30 blob downloads, sequential, on the same pooled connection (one more if the
    // registry closed it): one HTTP stack, one pool.
    for _ in 0..10 {
        for layer in m.layers() {
            let mut blob = repo.get_blob(layer).unwrap();
            let n = std::io::copy(&mut blob, &mut std::io::sink()).unwrap();
            assert_eq!(n, layer.size());
        }
    }
    let after = counts.accepted.load(Ordering::Relaxed);
    assert!(
        (n..=n + 1).contains(&after),
        "{} connections for 30 blobs",
        after - n
    );
}

#[test]
fn an_explicit_proxy_carries_the_requests() {
    let registry = common::registry_addr();
    let (proxy, counts) = forwarder(registry.clone(), true);
    let client = Client::builder()
        .proxy(format!("http://{proxy}"))
        .auth_files(Vec::new())
        .build()
        .unwrap();
    client.ping(&registry).unwrap();
    let repo = client.repository_at(&registry, &unique("proxied")).unwrap();
    let m = push_image(&repo, "amd64", 72, &[1000]);
    repo.put_manifest(&any(&m), Some(&"v1".parse().unwrap()))
        .unwrap();
    let n = counts.accepted.load(Ordering::Relaxed);
    assert!((1..=2).contains(&n), "{n} tunnels, reused");
    // A blob download takes the proxy too: it is asked for and comes back through it.
    let layer = &m.layers()[0];
    let before = counts.down.load(Ordering::SeqCst);
    let gets = counts.blob_gets.load(Ordering::SeqCst);
    let mut blob = repo.get_blob(layer).unwrap();
    assert_eq!(
        std::io::copy(&mut blob, &mut std::io::sink()).unwrap(),
        layer.size()
    );
    assert_eq!(counts.blob_gets.load(Ordering::SeqCst), gets + 1);
    let through = counts.down.load(Ordering::SeqCst) - before;
    assert!(
        through as u64 >= layer.size(),
        "{through} bytes through the proxy for a blob of {}",
        layer.size()
    );
    assert!(Client::builder().proxy("::not a url").build().is_err());
}

#[test]
fn a_redirected_plain_download_is_followed() {
    // A registry front (a test peer) that sends every blob to the real registry with a 307,
    // as registries send blobs to their storage.
    let registry = common::registry_addr();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let front = listener.local_addr().unwrap().to_string();
    let target = registry.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(50) {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read_exact(&mut byte).is_ok() {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{target}{path}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        }
    });
    let client = Client::builder().auth_files(Vec::new()).build().unwrap();
    let name = unique("redirected");
    let m = push_image(
        &client.repository_at(&registry, &name).unwrap(),
        "amd64",
        73,
        &[300_000],
    );
    let repo = client.repository_at(&front, &name).unwrap();
    let layer = &m.layers()[0];
    let mut blob = repo.get_blob(layer).unwrap();
    let mut bytes = Vec::new();
    blob.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, layer.size());
    assert_eq!(
        &ocikit_distribution::ocikit_image::sha256(&bytes),
        layer.digest()
    );
}

#[test]
fn the_environment_proxy_and_no_proxy_are_honoured() {
    // `examples/inspect` reads the manifest and the config blob, in a process of its own, so
    // that the proxy variables set for it touch no other test.
    let registry = common::registry_addr();
    let bin = example_binary("inspect");
    let client = Client::builder().auth_files(Vec::new()).build().unwrap();
    let repo = client
        .repository_at(&registry, &unique("envproxy"))
        .unwrap();
    let m = push_image(&repo, "amd64", 74, &[1000]);
    repo.put_manifest(&any(&m), Some(&"v1".parse().unwrap()))
        .unwrap();
    let reference = format!("docker://{registry}/{}:v1", repo.name());
    let inspect = |env: &[(&str, String)]| {
        let mut cmd = Command::new(&bin);
        cmd.arg(&reference);
        for var in ["ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"] {
            cmd.env_remove(var).env_remove(var.to_ascii_lowercase());
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "inspect with {env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let inspection: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(inspection["Architecture"], "amd64");
    };
    // Through the proxy: the config blob, downloaded over plain HTTP, is asked for through it.
    let (proxy, counts) = forwarder(registry.clone(), true);
    inspect(&[("HTTP_PROXY", format!("http://{proxy}"))]);
    assert_eq!(
        counts.blob_gets.load(Ordering::SeqCst),
        1,
        "the config's GET"
    );
    // The registry on NO_PROXY: nothing goes to the proxy, which does not even listen.
    let dead = format!("http://127.0.0.1:{}", free_port());
    inspect(&[("HTTP_PROXY", dead), ("NO_PROXY", "127.0.0.1".to_owned())]);
}
