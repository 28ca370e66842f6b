//! What both registry benchmarks share: the benchmark image, written as an OCI layout, and
//! a blob copy on several threads.

#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use oci_distribution::oci_image::{ImageDestination, ImageSource, Manifest};
use oci_distribution::oci_spec::image::{Descriptor, MediaType};

use crate::support::{RandomReader, run};

/// Layer sizes of the benchmark image (over 100 MiB compressed in all).
pub(crate) const LAYERS: &[u64] = &[
    40 << 20,
    30 << 20,
    20 << 20,
    12 << 20,
    4 << 20,
    1 << 20,
    64 << 10,
];
/// Blobs copied at once.
pub(crate) const WORKERS: usize = 4;

pub(crate) fn write_blob(layout: &Path, bytes: &[u8]) -> Descriptor {
    let digest = oci_distribution::oci_image::sha256(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(digest.digest()), bytes).unwrap();
    Descriptor::new(MediaType::ImageLayerGzip, bytes.len() as u64, digest)
}

/// An OCI layout with one image of gzip layers of random bytes, named `bench`; returns
/// the compressed size of its layers.
pub(crate) fn make_source(dir: &Path, work: &Path) -> u64 {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut total = 0;
    for (i, &len) in LAYERS.iter().enumerate() {
        let raw = work.join(format!("layer{i}"));
        let mut data = Vec::new();
        RandomReader::new(100 + i as u64, len)
            .read_to_end(&mut data)
            .unwrap();
        diff_ids.push(oci_distribution::oci_image::sha256(&data).to_string());
        std::fs::write(&raw, &data).unwrap();
        run(Command::new("gzip").args(["-1", "-n", "-f"]).arg(&raw));
        let gz = std::fs::read(work.join(format!("layer{i}.gz"))).unwrap();
        total += gz.len() as u64;
        layers.push(write_blob(dir, &gz));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let mut cd = write_blob(dir, &config);
    cd.set_media_type(MediaType::ImageConfig);
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cd, "layers": layers,
    });
    let m = Manifest::from_bytes(serde_json::to_vec(&m).unwrap()).unwrap();
    write_blob(dir, m.raw());
    let mut d = serde_json::to_value(m.descriptor()).unwrap();
    d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "bench"});
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [d]}).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    total
}

/// Copies `blobs` with `WORKERS` threads.
pub(crate) fn copy_blobs(
    dst: &(dyn ImageDestination + Sync),
    src: &(dyn ImageSource + Sync),
    blobs: Vec<Descriptor>,
) {
    let queue = Mutex::new(blobs);
    std::thread::scope(|s| {
        let workers = std::env::var("OCIKIT_BENCH_WORKERS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(WORKERS);
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let Some(d) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    dst.copy_blob_from(src, &d).unwrap();
                }
            });
        }
    });
}
