//! `policy.json` and registries.d YAML: any bytes parse or fail with a typed error, never
//! panic; a parsed policy answers scope lookups for any reference.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ocikit::trust::policy::{DockerIdentity, Policy, docker_scopes};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(policy) = Policy::from_slice(bytes, None) {
        let id = DockerIdentity::parse("registry.example:5000/ns/app:v1").unwrap();
        let _ = policy.requirements_for("docker", &docker_scopes(&id));
    }
    let _ = ocikit::trust::registries_d::fuzz_registries_d(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(id) = DockerIdentity::parse(text) {
            let _ = docker_scopes(&id);
        }
    }
});
