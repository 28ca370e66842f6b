//! Hashing throughput (filled in by the benchmark work).
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let data = vec![0x5au8; 1 << 20];
    c.bench_function("sha256 1 MiB", |b| b.iter(|| oci_image::sha256(&data)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
