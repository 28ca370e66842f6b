//! What a client sends the embedded registry on one connection: request heads, bodies by
//! `Content-Length` or chunked, pipelined requests, TLS hellos and garbage. No input may
//! panic or hang the connection loop, and what it sends back stays bounded: every answer
//! is a small head plus a short body, one per request at most.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = ocikit_distribution::fuzz_connection(data);
    // A request is at least `X / HTTP/1.1\r\n\r\n` (18 bytes); each answer is under 1 KiB
    // (a refusal, or the stand-in handler's line).
    let answers = out.windows(9).filter(|w| w.starts_with(b"HTTP/1.")).count();
    assert!(answers <= data.len() / 18 + 1, "{answers} answers to {} bytes", data.len());
    assert!(out.len() <= answers * 1024, "{} bytes for {answers} answers", out.len());
});
