//! What the facade's criterion benches share: telling a measured run from the one-shot run of
//! `cargo test`, and deterministic pseudo-random content.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};

/// True under `cargo bench` (criterion's `--bench` argument, without `--test`): the benches
/// then use their full sizes; under `cargo test` they use tiny ones, so the unoptimised
/// one-shot run stays quick.
pub(crate) fn measuring() -> bool {
    let mut bench = false;
    let mut test = false;
    for arg in std::env::args() {
        bench |= arg == "--bench";
        test |= arg == "--test";
    }
    bench && !test
}

/// A group for iterations of seconds over `bytes` of data: flat sampling, 10 samples, 1 s of
/// warm-up, `measurement` in all.
pub(crate) fn slow_group<'c>(
    c: &'c mut Criterion,
    name: &str,
    bytes: u64,
    measurement: Duration,
) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Bytes(bytes))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(measurement);
    group
}

/// xorshift64* from a fixed seed: fast and the same on every run.
pub(crate) struct Xorshift(u64);

impl Xorshift {
    pub(crate) fn new(seed: u64) -> Self {
        Xorshift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf` with random bytes (incompressible).
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    /// Fills `buf` with text-like bytes: letters, spaces and newlines, 5 bits of entropy a
    /// byte, so gzip shrinks it to about two thirds, as it does source and configuration.
    pub(crate) fn fill_text(&mut self, buf: &mut [u8]) {
        const ALPHABET: &[u8; 32] = b"etaoinshrdlucmfwypvbgkqjxz   \n.,";
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            for (b, w) in chunk.iter_mut().zip(word) {
                *b = ALPHABET[usize::from(w & 31)];
            }
        }
    }
}

/// Writes `size` random (`text`: text-like) bytes from `rng` to a new file at `path`.
pub(crate) fn write_file(path: &Path, rng: &mut Xorshift, size: u64, text: bool) {
    let file = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut chunk = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if text {
            rng.fill_text(&mut chunk[..n]);
        } else {
            rng.fill(&mut chunk[..n]);
        }
        out.write_all(&chunk[..n])
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        left -= n as u64;
    }
    out.flush()
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
