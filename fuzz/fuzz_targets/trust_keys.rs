//! Key and signature parsers: cosign private (encrypted PEM) and public keys, OpenPGP
//! keyrings (armored or binary) and OpenPGP signed messages verified against a fixed key:
//! any bytes fail with a typed error, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = ocikit::trust::cosign::fuzz_keys(bytes);
    let _ = ocikit::trust::simple::fuzz_openpgp(bytes);
});
