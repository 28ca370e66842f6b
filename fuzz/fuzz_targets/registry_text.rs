//! What registries send as text: `WWW-Authenticate` headers, error codes, and references.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = oci_distribution::parse_challenges(text);
    let _ = oci_distribution::ErrorCode::parse(text);
    if let Ok(r) = text.parse::<oci_distribution::Reference>() {
        // A parsed reference prints back to one that parses to the same.
        let again: oci_distribution::Reference = r.to_string().parse().unwrap();
        assert_eq!(again.to_string(), r.to_string());
    }
});
