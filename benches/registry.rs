//! Pull and push with [`ocikit_distribution::Client`] against a local docker-registry: pull of a
//! six-layer image (about 41 MiB) into a new OCI image layout, and push of it from a layout to
//! an empty registry; throughput in bytes of the blobs copied (layers and config).
//!
//! ```text
//! cargo bench --bench registry
//! ```
//!
//! The image is made of pseudo-random layers (fixed seeds) and pushed, untimed, to a
//! docker-registry this bench starts on a free 127.0.0.1 port. A pull is: resolve the tag,
//! fetch manifest and config, copy the blobs four at a time (each verified before it is
//! stored), tag the manifest in the layout. Every pull goes to a layout of its own, removed
//! untimed. Every push goes to a docker-registry of its own, started untimed, so every blob is
//! really uploaded. Registry storage and layouts live on tmpfs (`/dev/shm`) when it has room,
//! as in `cargo bench -p ocikit-distribution --bench vs_skopeo` (which compares with skopeo), so
//! the disk's write-back does not decide the figures. Under `cargo test` (no `--bench`
//! argument) criterion runs each once with an image of about 0.3 MiB.
//!
//! Needs `docker-registry` on PATH (Debian package `docker-registry`, installed by
//! `scripts/test.sh`); fails, never skips, without it.

#[path = "../oci-distribution/benches/common/mod.rs"]
mod common;
#[path = "../oci-distribution/tests/support/mod.rs"]
mod support;
mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use common::copy_blobs;
use criterion::{Criterion, criterion_group, criterion_main};
use ocikit_distribution::Repository;
use ocikit_distribution::ocikit_image::{
    AnyManifest, ImageDestination, ImageSource, Manifest, Tag, TagOrDigest, host_platform,
};
use ocikit_layout::Layout;
use support::{Registry, client, push_image};
use util::{measuring, slow_group};

const REPOSITORY: &str = "bench/img";

fn tag() -> Tag {
    "bench".parse().unwrap()
}

/// Pulls `REPOSITORY:bench` into a new layout at `dir`; returns the manifest.
fn pull(repo: &Repository, dir: &Path) -> Manifest {
    let layout = Layout::create(dir).expect("create a layout");
    let img = repo
        .fetch_image(&TagOrDigest::Tag(tag()), &host_platform())
        .expect("fetch the image");
    let mut blobs = img.manifest.layers().clone();
    blobs.push(img.manifest.config().clone());
    copy_blobs(&layout, repo, blobs);
    ImageDestination::tag(
        &layout,
        &tag(),
        &AnyManifest::Manifest(img.manifest.clone()),
    )
    .expect("tag the layout");
    img.manifest
}

/// Pushes the image tagged `bench` in `layout` to `REPOSITORY:bench` at `addr`.
fn push(layout: &Layout, addr: &str) {
    let repo = client()
        .repository_at(addr, REPOSITORY)
        .expect("a repository");
    let top = layout
        .resolve(&TagOrDigest::Tag(tag()))
        .expect("resolve in the layout");
    let AnyManifest::Manifest(m) = layout.fetch_manifest(&top).expect("the manifest") else {
        panic!("the layout's image is an index");
    };
    let mut blobs = m.layers().clone();
    blobs.push(m.config().clone());
    copy_blobs(&repo, layout, blobs);
    ImageDestination::tag(&repo, &tag(), &AnyManifest::Manifest(m)).expect("tag the manifest");
}

/// The registry at `addr` serves `expected` under `REPOSITORY:bench`, with every blob.
fn check_registry(addr: &str, expected: &Manifest) {
    let repo = client().repository_at(addr, REPOSITORY).unwrap();
    let top = repo
        .resolve(&TagOrDigest::Tag(tag()))
        .expect("the pushed tag resolves");
    assert_eq!(top.digest(), expected.descriptor().digest());
    for d in expected.layers().iter().chain([expected.config()]) {
        assert!(
            ImageDestination::has_blob(&repo, d).unwrap(),
            "{} was not pushed",
            d.digest()
        );
    }
}

/// The layout at `dir` holds `expected` under `bench`, every blob verified.
fn check_layout(dir: &Path, expected: &Manifest) {
    let layout = Layout::open(dir).unwrap();
    let top = layout.resolve(&TagOrDigest::Tag(tag())).unwrap();
    assert_eq!(top.digest(), expected.descriptor().digest());
    let report = layout.fsck().expect("fsck");
    assert!(report.is_ok(), "the pulled layout: {report}");
    assert_eq!(report.blobs_checked, expected.layers().len() as u64 + 2);
}

fn bench(c: &mut Criterion) {
    let measuring = measuring();
    let layers: &[u64] = if measuring {
        &[16 << 20, 12 << 20, 8 << 20, 4 << 20, 1 << 20, 64 << 10]
    } else {
        &[256 << 10, 64 << 10, 4 << 10]
    };
    // tmpfs when it has room for the source registry, a layout, a pull and a push (containers
    // often get a 64 MiB /dev/shm); the temporary directory otherwise.
    let shm = Path::new("/dev/shm");
    let room = rustix::fs::statvfs(shm).map_or(0, |s| s.f_bavail * s.f_frsize);
    let work = if room >= 512 << 20 {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory");

    // The image, in a registry that serves every pull.
    let source = Registry::start_in(work.path(), "", |_| {});
    let repo = client()
        .repository_at(&source.addr, REPOSITORY)
        .expect("a repository");
    let manifest = push_image(&repo, "amd64", 7, layers);
    ImageDestination::tag(&repo, &tag(), &AnyManifest::Manifest(manifest.clone()))
        .expect("tag the source image");
    let bytes: u64 = manifest
        .layers()
        .iter()
        .chain([manifest.config()])
        .map(|d| d.size())
        .sum();
    eprintln!(
        "registry: {} layers, {:.1} MiB of blobs",
        layers.len(),
        bytes as f64 / 1048576.0
    );

    // The layout every push reads: one pull, untimed, checked.
    let pushed_from = work.path().join("layout");
    assert_eq!(
        pull(&repo, &pushed_from).descriptor().digest(),
        manifest.descriptor().digest()
    );
    check_layout(&pushed_from, &manifest);
    let pushed_from = Layout::open(&pushed_from).unwrap();

    let mut group = slow_group(c, "registry", bytes, Duration::from_secs(10));

    let mut n = 0u64;
    group.bench_function("pull", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = work.path().join(format!("pull{n}"));
                n += 1;
                let start = Instant::now();
                let pulled = pull(&repo, &dir);
                total += start.elapsed();
                assert_eq!(pulled.descriptor().digest(), manifest.descriptor().digest());
                if n == 1 {
                    check_layout(&dir, &manifest);
                }
                std::fs::remove_dir_all(&dir).unwrap();
            }
            total
        })
    });

    group.bench_function("push", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let empty = Registry::start_in(work.path(), "", |_| {});
                let start = Instant::now();
                push(&pushed_from, &empty.addr);
                total += start.elapsed();
                check_registry(&empty.addr, &manifest);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
