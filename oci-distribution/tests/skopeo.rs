//! Interoperability with skopeo through the real docker-registry (`OCIKIT_TEST_REGISTRY`):
//! what skopeo pushes we pull with the same digests; what we push skopeo inspects and copies
//! into a layout identical to the one we write from the same pull.

mod common;
mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use ocikit_distribution::Repository;
use ocikit_distribution::oci_spec::image::MediaType;
use ocikit_distribution::ocikit_image::{
    AnyManifest, ImageSource, Manifest, MediaTypeExt, TagOrDigest, host_platform, sha256,
};
use support::{any, client, run, unique, write_blob, write_image_by_hand};

/// A gzip tar layer of a few files, made with `tar`; returns (bytes, diff id).
fn make_layer(dir: &Path, seed: u32) -> (Vec<u8>, String) {
    let content = dir.join(format!("content-{seed}"));
    std::fs::create_dir_all(content.join("etc")).unwrap();
    std::fs::write(content.join("etc/hello"), format!("hello {seed}\n")).unwrap();
    std::fs::write(
        content.join("data.bin"),
        vec![seed as u8; 10_000 + seed as usize],
    )
    .unwrap();
    let tar = dir.join(format!("layer-{seed}.tar"));
    run(Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&content)
        .arg("."));
    let raw = std::fs::read(&tar).unwrap();
    let diff_id = sha256(&raw).to_string();
    run(Command::new("gzip").args(["-n", "-f"]).arg(&tar));
    (
        std::fs::read(dir.join(format!("layer-{seed}.tar.gz"))).unwrap(),
        diff_id,
    )
}

/// Writes an OCI layout with one image named `tag`, by hand; returns the manifest.
fn make_layout(layout: &Path, work: &Path) -> Manifest {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for seed in 1..=2 {
        let (bytes, diff_id) = make_layer(work, seed);
        layers.push(write_blob(layout, &bytes, MediaType::ImageLayerGzip));
        diff_ids.push(diff_id);
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-05-06T07:08:09Z",
        "config": {"Env": ["PATH=/bin", "FROM=skopeo-test"]},
    });
    write_image_by_hand(layout, layers, diff_ids, config, "tag")
}

/// Pulls `target` into a layout directory of our own making: every blob streamed through
/// the verifying reader into `blobs/sha256/<hex>`, the manifest's bytes as served.
fn pull_to_layout(repo: &Repository, target: &TagOrDigest, layout: &Path) -> Manifest {
    let img = repo.fetch_image(target, &host_platform()).unwrap();
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    for d in img.manifest.layers() {
        let mut stream = repo.open_blob(d).unwrap();
        let mut file = std::fs::File::create(dir.join(d.digest().digest())).unwrap();
        std::io::copy(&mut stream, &mut file).unwrap();
        stream.finish().unwrap();
    }
    std::fs::write(dir.join(img.config.digest().digest()), img.config.raw()).unwrap();
    std::fs::write(dir.join(img.manifest.digest().digest()), img.manifest.raw()).unwrap();
    img.manifest
}

fn blob_files(layout: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        out.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path()).unwrap(),
        );
    }
    out
}

#[test]
fn skopeo_pushes_we_pull_with_the_same_digests() {
    let addr = common::registry_addr();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let made = make_layout(&layout, work.path());
    let name = unique("from-skopeo");
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:tag", layout.display()))
        .arg(format!("docker://{addr}/{name}:v1")));

    let repo = client().repository_at(&addr, &name).unwrap();
    let ours = work.path().join("ours");
    let got = pull_to_layout(&repo, &"v1".parse().unwrap(), &ours);
    assert_eq!(got.digest(), made.digest());
    assert_eq!(blob_files(&ours), blob_files(&layout));

    // Docker schema 2, as skopeo converts it: Docker media types accepted, digest as skopeo
    // computes it.
    let docker_name = unique("from-skopeo-v2s2");
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--format", "v2s2"])
        .arg(format!("oci:{}:tag", layout.display()))
        .arg(format!("docker://{addr}/{docker_name}:v1")));
    let skopeo_digest = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{addr}/{docker_name}:v1")));
    let docker_repo = client().repository_at(&addr, &docker_name).unwrap();
    let m = docker_repo.get_manifest(&"v1".parse().unwrap()).unwrap();
    assert_eq!(m.digest().to_string(), skopeo_digest.trim());
    assert_eq!(
        m.media_type().format(),
        Some(ocikit_distribution::ocikit_image::Format::Docker)
    );
    let img = docker_repo
        .fetch_image(&"v1".parse().unwrap(), &host_platform())
        .unwrap();
    for (l, want) in img.manifest.layers().iter().zip(made.layers()) {
        assert_eq!(l.digest(), want.digest());
        let mut all = Vec::new();
        docker_repo
            .open_blob(l)
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
    }
}

#[test]
fn we_push_skopeo_inspects_and_copies_to_an_identical_layout() {
    let addr = common::registry_addr();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let made = make_layout(&source, work.path());
    let name = unique("to-skopeo");
    let repo = client().repository_at(&addr, &name).unwrap();
    // Push every blob from the hand-made layout, then the manifest under a tag.
    let files = blob_files(&source);
    for d in made.layers().iter().chain([made.config()]) {
        let bytes = &files[d.digest().digest()];
        repo.push_blob(d, &mut bytes.as_slice()).unwrap();
    }
    repo.put_manifest(&any(&made), Some(&"v1".parse().unwrap()))
        .unwrap();

    let inspect = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{addr}/{name}:v1")));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], made.digest().to_string());
    let layers: Vec<String> = made
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    assert_eq!(inspect["Layers"], serde_json::json!(layers));
    assert_eq!(inspect["Architecture"], "amd64");
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{addr}/{name}:v1")));
    assert_eq!(raw.as_bytes(), made.raw());

    let theirs = work.path().join("theirs");
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{addr}/{name}:v1"))
        .arg(format!("oci:{}:v1", theirs.display())));
    let ours = work.path().join("ours");
    let pulled = pull_to_layout(&repo, &"v1".parse().unwrap(), &ours);
    assert_eq!(pulled.digest(), made.digest());
    assert_eq!(blob_files(&ours), blob_files(&theirs));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(theirs.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], made.digest().to_string());
    let _ = AnyManifest::Manifest(pulled);
}
