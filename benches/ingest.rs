//! Blob ingest: one 256 MiB blob put into an OCI image layout through
//! [`ImageDestination::put_blob`] with its descriptor known, so the layout verifies digest and
//! size before the blob becomes visible; throughput in bytes.
//!
//! ```text
//! cargo bench --bench ingest
//! ```
//!
//! The blob is a file of pseudo-random bytes (fixed seed) in a temporary directory, hot in the
//! page cache; every put goes to a new layout created untimed, so it is really written (hashed,
//! written to a temporary file, fsynced, renamed, directory fsynced) and the time includes the
//! disk's flush. `bash oci-layout/benches/ingest.sh` compares the same write with `cp` +
//! `sha256sum`. Under `cargo test` (no `--bench` argument) criterion runs it once with 1 MiB.
//!
//! Needs only a writable temporary directory (`TMPDIR`), 512 MiB of it under `cargo bench`.

mod util;

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ocikit_image::oci_spec::image::{Descriptor, DigestAlgorithm, MediaType};
use ocikit_image::{ImageDestination, digest_reader};
use ocikit_layout::Layout;
use util::{Xorshift, measuring, slow_group, write_file};

fn bench(c: &mut Criterion) {
    let size: u64 = if measuring() { 256 << 20 } else { 1 << 20 };
    let work = tempfile::tempdir().expect("a temporary directory");
    let source = work.path().join("source.bin");
    write_file(&source, &mut Xorshift::new(0x1235), size, false);
    let (digest, len) = digest_reader(
        &DigestAlgorithm::Sha256,
        File::open(&source).expect("open the source"),
    )
    .expect("hash the source");
    assert_eq!(len, size);
    let descriptor = Descriptor::new(MediaType::ImageLayer, size, digest);

    let put = |dir: &std::path::Path| -> (Layout, Duration) {
        let layout = Layout::create(dir).expect("create a layout");
        let mut data = File::open(&source).expect("open the source");
        let start = Instant::now();
        layout.put_blob(&descriptor, &mut data).expect("put_blob");
        (layout, start.elapsed())
    };

    // What the timed puts must produce: the blob, readable and verified, under its digest.
    let (layout, _) = put(&work.path().join("check"));
    let mut stored = Vec::new();
    layout
        .open_blob(&descriptor)
        .expect("open the stored blob")
        .read_to_end(&mut stored)
        .expect("the stored blob verifies");
    assert_eq!(stored.len() as u64, size);
    drop(stored);
    std::fs::remove_dir_all(layout.root()).unwrap();
    // A stream that is not the descriptor's content must be refused and leave nothing.
    let wrong = Layout::create(work.path().join("wrong")).expect("create a layout");
    let mut short = File::open(&source).unwrap().take(size - 1);
    assert!(wrong.put_blob(&descriptor, &mut short).is_err());
    assert!(!wrong.has_blob(descriptor.digest()).unwrap());

    let mut group = slow_group(c, "ingest", size, Duration::from_secs(15));
    let mut n = 0u64;
    group.bench_function("layout_put_blob_256MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = work.path().join(format!("layout{n}"));
                n += 1;
                let (layout, took) = put(&dir);
                total += took;
                assert_eq!(
                    std::fs::metadata(layout.blob_path(descriptor.digest()))
                        .expect("the blob is in the layout")
                        .len(),
                    size
                );
                // One file: removing it does not slow the next put's creations.
                std::fs::remove_dir_all(&dir).unwrap();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
