//! Connections are reused across requests, and a configured proxy carries them: a raw TCP
//! forwarder (a test peer) in front of the registry of `scripts/test.sh` counts the
//! connections it accepts.

mod common;
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use oci_distribution::Client;
use support::{any, push_image, unique};

/// Forwards bytes both ways to `upstream`; returns its address and the accepted count. As a
/// `connect_proxy`, it first answers an HTTP `CONNECT` (to `upstream` only).
fn forwarder(upstream: String, connect_proxy: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(1000) {
            let Ok(mut client) = conn else { continue };
            count.fetch_add(1, Ordering::Relaxed);
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
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    (addr, accepted)
}

#[test]
fn connections_are_reused() {
    let registry = common::registry_addr();
    let (fwd, accepted) = forwarder(registry, false);
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
    let n = accepted.load(Ordering::Relaxed);
    assert!((1..=2).contains(&n), "{n} connections for ~45 requests");
}

#[test]
fn an_explicit_proxy_carries_the_requests() {
    let registry = common::registry_addr();
    let (proxy, accepted) = forwarder(registry.clone(), true);
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
    let n = accepted.load(Ordering::Relaxed);
    assert!((1..=2).contains(&n), "{n} tunnels, reused");
    assert!(Client::builder().proxy("::not a url").build().is_err());
}
