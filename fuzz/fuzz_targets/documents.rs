//! Manifests, indexes and configs: any bytes give a value or an error, and a document that
//! parses survives an edit that changes nothing with the same JSON (no field lost).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ocikit_image::{AnyManifest, Config, Document, SpecDocument};

fn lossless<T: SpecDocument>(mut doc: Document<T>) {
    let before: serde_json::Value = serde_json::from_slice(doc.raw()).unwrap();
    if doc.edit(|_| {}).is_ok() {
        let after: serde_json::Value = serde_json::from_slice(doc.raw()).unwrap();
        assert_eq!(before, after);
    }
}

fuzz_target!(|data: &[u8]| {
    match AnyManifest::from_bytes(data.to_vec(), None) {
        Ok(AnyManifest::Manifest(m)) => lossless(m),
        Ok(AnyManifest::Index(i)) => lossless(i),
        Err(_) => {}
    }
    if let Ok(c) = Config::from_bytes(data.to_vec()) {
        lossless(c);
    }
});
