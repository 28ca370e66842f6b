//! Signature payloads (simple signing and cosign): any bytes parse or fail, never panic; what
//! parses serialises to a payload that parses back to the same claims.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ocikit::trust::payload::{COSIGN_TYPE, Payload, SIMPLE_SIGNING_TYPE};

fuzz_target!(|bytes: &[u8]| {
    for kind in [SIMPLE_SIGNING_TYPE, COSIGN_TYPE] {
        if let Ok(p) = Payload::parse(bytes, kind) {
            let again = Payload::parse(&p.to_json(), kind).expect("a written payload parses");
            assert_eq!(again, p);
        }
    }
});
