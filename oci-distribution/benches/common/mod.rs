//! What both registry benchmarks share: the benchmark image, written as an OCI layout, and
//! a blob copy on several threads.

#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use ocikit_distribution::Repository;
use ocikit_distribution::oci_spec::image::{Descriptor, MediaType};
use ocikit_distribution::ocikit_image::{
    AnyManifest, ImageDestination, ImageSource, Tag, TagOrDigest,
};
use ocikit_layout::Layout;

use crate::support::{RandomReader, run, write_blob, write_image_by_hand};

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

/// An OCI layout with one image of gzip layers of random bytes, named `bench`; returns
/// the compressed size of its layers.
pub(crate) fn make_source(dir: &Path, work: &Path) -> u64 {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, &len) in LAYERS.iter().enumerate() {
        let raw = work.join(format!("layer{i}"));
        let mut data = Vec::new();
        RandomReader::new(100 + i as u64, len)
            .read_to_end(&mut data)
            .unwrap();
        diff_ids.push(ocikit_distribution::ocikit_image::sha256(&data).to_string());
        std::fs::write(&raw, &data).unwrap();
        run(Command::new("gzip").args(["-1", "-n", "-f"]).arg(&raw));
        let gz = std::fs::read(work.join(format!("layer{i}.gz"))).unwrap();
        layers.push(write_blob(dir, &gz, MediaType::ImageLayerGzip));
    }
    let total = layers.iter().map(Descriptor::size).sum();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux"});
    write_image_by_hand(dir, layers, diff_ids, config, "bench");
    total
}

/// Copies `blobs` with `WORKERS` threads, largest first (as the facade's copy does).
pub(crate) fn copy_blobs(
    dst: &(dyn ImageDestination + Sync),
    src: &(dyn ImageSource + Sync),
    mut blobs: Vec<Descriptor>,
) {
    // Popped from the end: the biggest blob bounds the time, so it goes first.
    blobs.sort_by_key(|d| d.size());
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

/// Flushes dirty pages and, as root, drops the clean page cache, so every timed run starts
/// with free memory instead of paying for reclaiming whatever the last run left (tmpfs
/// pages, where both sides' data lives, are not dropped). Without root only the flush.
pub(crate) fn settle() {
    let _ = Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
}

/// CPU time (user and system, all threads, exited ones included) of process `pid`, in
/// seconds, at the kernel's tick resolution.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Pulls `repo:tag` (one image manifest) into `layout` as `skopeo copy` and the facade's copy
/// do: the manifest by tag (one `GET`), then its config and layers on several threads, then
/// the tag.
pub(crate) fn pull(repo: &Repository, layout: &Layout, tag: &Tag) {
    let (_, top) = repo
        .resolve_manifest(&TagOrDigest::Tag(tag.clone()))
        .unwrap();
    let AnyManifest::Manifest(manifest) = top else {
        panic!("the benchmark image is one manifest")
    };
    let mut blobs = manifest.layers().clone();
    blobs.push(manifest.config().clone());
    copy_blobs(layout, repo, blobs);
    layout.tag(tag, &AnyManifest::Manifest(manifest)).unwrap();
}
