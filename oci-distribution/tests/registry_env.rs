//! Smoke test of the test wiring: the registry started by `bash scripts/test.sh` is reachable.
//!
//! Needs `OCIKIT_TEST_REGISTRY` (exported by `scripts/test.sh`, which starts a private
//! docker-registry on 127.0.0.1); without it this test fails rather than skips. Run it with
//! `bash scripts/test.sh -p ocikit-distribution`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `GET path` over plain HTTP/1.1 and returns the raw response (head and body).
fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("cannot connect to the test registry at {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("set a write timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("reading the response of GET {path} from {addr}: {e}"));
    String::from_utf8_lossy(&response).into_owned()
}

/// The value of header `name` (case-insensitive) in a raw HTTP response head.
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[test]
fn registry_answers_v2_base_endpoint() {
    let addr = common::registry_addr();
    let response = http_get(&addr, "/v2/");

    let status_line = response.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let status = parts.next().unwrap_or_default();
    assert!(
        version.starts_with("HTTP/1."),
        "GET /v2/ on {addr}: not an HTTP/1.x response: {status_line:?}"
    );
    assert_eq!(
        status, "200",
        "GET /v2/ on {addr} must answer 200 (no auth configured); response:\n{response}"
    );
    assert_eq!(
        header(&response, "Docker-Distribution-API-Version"),
        Some("registry/2.0"),
        "GET /v2/ on {addr} must carry `Docker-Distribution-API-Version: registry/2.0`; \
         response:\n{response}"
    );
}

#[test]
fn header_lookup_is_case_insensitive_and_stops_at_the_body() {
    let raw =
        "HTTP/1.1 200 OK\r\ndocker-distribution-api-version:  registry/2.0 \r\n\r\nX-Not: header";
    assert_eq!(
        header(raw, "Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    assert_eq!(header(raw, "X-Not"), None);
}
