//! Runtime `config.json`: any bytes parse to a spec or an error, and validation of a spec
//! returns, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<ocikit_runtime::oci_spec::runtime::Spec>(data) {
        let _ = ocikit_runtime::validate(&spec);
    }
});
