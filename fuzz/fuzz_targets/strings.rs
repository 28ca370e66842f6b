//! Digests, tags, tag-or-digest and platforms: parse, and what parses prints back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(d) = ocikit_image::parse_digest(text) {
        assert_eq!(ocikit_image::parse_digest(&d.to_string()).unwrap(), d);
    }
    if let Ok(t) = text.parse::<ocikit_image::TagOrDigest>() {
        assert_eq!(t.to_string().parse::<ocikit_image::TagOrDigest>().unwrap(), t);
    }
    if let Ok(p) = ocikit_image::parse_platform(text) {
        let again = ocikit_image::parse_platform(&ocikit_image::platform_to_string(&p)).unwrap();
        assert_eq!(again, p);
    }
});
