//! What registries send as text: `WWW-Authenticate` headers, error codes, and references.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = ocikit_distribution::parse_challenges(text);
    let _ = ocikit_distribution::ErrorCode::parse(text);
    if let Ok(r) = text.parse::<ocikit_distribution::Reference>() {
        // A parsed reference prints back to one that parses to the same.
        let again: ocikit_distribution::Reference = r.to_string().parse().unwrap();
        assert_eq!(again.to_string(), r.to_string());
    }
});
