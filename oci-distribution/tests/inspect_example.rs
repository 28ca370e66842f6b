//! Runs `examples/inspect.rs` (of the `ocikit` package), and `ocikit inspect --raw` and
//! `--config`, against an image we pushed to the registry of `scripts/test.sh`, which builds
//! the examples (`cargo build --examples`) and the command (`cargo test --workspace`) before
//! the tests run; when they were not built, the test fails saying so.

mod common;
mod support;

use std::process::Command;

use support::{any, client, example_binary, index_of, ocikit_binary, push_image, run, unique};

#[test]
fn inspect_example_prints_what_skopeo_would() {
    let addr = common::registry_addr();
    let bin = example_binary("inspect");
    let repo = client().repository_at(&addr, &unique("inspect")).unwrap();
    let amd = push_image(&repo, "amd64", 51, &[300, 400]);
    let arm = push_image(&repo, "arm64", 52, &[500]);
    repo.put_manifest(&any(&amd), None).unwrap();
    repo.put_manifest(&any(&arm), None).unwrap();
    let index = index_of(&[(&amd, "amd64"), (&arm, "arm64")]);
    let index = ocikit_distribution::ocikit_image::AnyManifest::Index(index);
    repo.put_manifest(&index, Some(&"multi".parse().unwrap()))
        .unwrap();
    let reference = format!("docker://{addr}/{}:multi", repo.name());

    let out = run(Command::new(&bin).args([&reference, "linux/arm64"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], index.digest().to_string());
    assert_eq!(v["ManifestDigest"], arm.digest().to_string());
    assert_eq!(v["Architecture"], "arm64");
    assert_eq!(v["RepoTags"], serde_json::json!(["multi"]));
    assert_eq!(v["Layers"][0], arm.layers()[0].digest().to_string());
    assert_eq!(v["Env"][1], "SEED=52");
    assert_eq!(v["Created"], "2024-01-02T03:04:05Z");

    let ocikit = ocikit_binary();
    let raw = Command::new(&ocikit)
        .args(["inspect", &reference, "--raw"])
        .output()
        .unwrap();
    assert_eq!(raw.stdout, index.raw());
    let config = Command::new(&ocikit)
        .args([
            "inspect",
            &reference,
            "--config",
            "--override-arch",
            "amd64",
        ])
        .output()
        .unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(cfg["architecture"], "amd64");

    let missing = Command::new(&bin)
        .arg(format!("docker://{addr}/{}:nope", repo.name()))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    // The error says not found and names the tag.
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("not found") && err.contains("nope"), "{err}");
}
