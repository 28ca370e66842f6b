//! Digests, tags, tag-or-digest and platforms: parse, and what parses prints back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(d) = oci_image::parse_digest(text) {
        assert_eq!(oci_image::parse_digest(&d.to_string()).unwrap(), d);
    }
    if let Ok(t) = text.parse::<oci_image::TagOrDigest>() {
        assert_eq!(t.to_string().parse::<oci_image::TagOrDigest>().unwrap(), t);
    }
    if let Ok(p) = oci_image::parse_platform(text) {
        let again = oci_image::parse_platform(&oci_image::platform_to_string(&p)).unwrap();
        assert_eq!(again, p);
    }
});
