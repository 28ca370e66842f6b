//! sha256 throughput of [`ocikit_image::digest_reader`] over a file, next to `openssl dgst -sha256`
//! on the same file.
//!
//! `cargo bench -p ocikit-image --bench digest` hashes a 256 MiB file of deterministic
//! pseudo-random bytes (xorshift64*) in a temporary directory with both, in one criterion group
//! with byte throughput, so the two lines are directly comparable. The file is hot in the page
//! cache for both (criterion's warm-up reads it first), so this measures hashing and the read
//! loop, not the disk. `benches/sha256-vs-openssl.sh` at the repository root prints the ratio.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) criterion runs each routine once as
//! a smoke test; the file is then 1 MiB so the unoptimised test build stays quick.
//!
//! Needs `openssl` on PATH (Debian package `openssl`, installed by `scripts/test.sh`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ocikit_image::oci_spec::image::DigestAlgorithm;

const BENCH_SIZE: u64 = 256 << 20;
const TEST_SIZE: u64 = 1 << 20;

/// Writes `size` bytes of xorshift64* output (fixed seed) to `path`.
fn write_pseudo_random(path: &Path, size: u64) {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("create bench file"));
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..n]).expect("write bench file");
        left -= n as u64;
    }
    out.into_inner()
        .expect("flush bench file")
        .sync_all()
        .expect("sync bench file");
}

fn ours(path: &Path) -> String {
    let file = File::open(path).expect("open bench file");
    let (digest, size) =
        ocikit_image::digest_reader(&DigestAlgorithm::Sha256, file).expect("digest_reader");
    assert_eq!(
        size,
        std::fs::metadata(path).expect("stat bench file").len()
    );
    digest.to_string()
}

fn openssl(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(path)
        .output()
        .expect("run `openssl dgst` (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl dgst failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `-r` prints "<hex> *<file>".
    let text = String::from_utf8(out.stdout).expect("openssl prints ASCII");
    let hex = text.split_whitespace().next().unwrap_or_default();
    format!("sha256:{hex}")
}

fn bench(c: &mut Criterion) {
    let measuring = std::env::args().any(|a| a == "--bench");
    let size = if measuring { BENCH_SIZE } else { TEST_SIZE };
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("random.bin");
    write_pseudo_random(&path, size);

    // Both sides must compute the same thing, or the comparison means nothing.
    let expected = openssl(&path);
    assert_eq!(
        ours(&path),
        expected,
        "digest_reader disagrees with openssl"
    );

    let mut group = c.benchmark_group("sha256_256MiB");
    group
        .throughput(Throughput::Bytes(size))
        // ~160 ms an iteration: flat sampling, 10 samples of a few iterations each, so the
        // whole bench (file creation included) takes well under a minute.
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
    group.bench_function("ocikit_image", |b| b.iter(|| ours(&path)));
    group.bench_function("openssl", |b| b.iter(|| openssl(&path)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
