//! What a plain-HTTP registry answers a blob `GET` with, as the client reads it: interim
//! responses, the head, a body by `Content-Length`, chunked or until the connection closes.
//! No input may panic or hang the reader, and no body comes out longer than the input it
//! came from.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(len) = ocikit_distribution::fuzz_response(data) {
        assert!(len <= data.len() as u64, "{len} body bytes from {} bytes", data.len());
    }
});
