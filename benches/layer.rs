//! Layer build and layer apply: [`ocikit_image::build_layer`] of one directory tree into a gzip
//! layer, and [`ocikit_image::apply_layer`] of that layer to a new, empty directory; throughput in
//! bytes of the uncompressed tar stream.
//!
//! ```text
//! cargo bench --bench layer
//! ```
//!
//! The tree is generated in a temporary directory from a fixed seed, so every run measures the
//! same bytes: 4,000 small text-like files (up to 32 KiB each) in 64 directories and four
//! random 24 MiB files, about 170 MB. The build writes its blob to `io::sink()`, so it measures
//! the walk, read, tar, gzip (default level and threads) and hashing, not the disk; every build
//! must give the digest of the first. Every apply writes into a directory of its own, created
//! untimed, and the applied trees are only removed at the end (removing thousands of files
//! slows the next creations on this machine's ext4). Under `cargo test` (no `--bench`
//! argument) criterion runs each routine once on a tree of about 1 MB.
//!
//! Needs only a writable temporary directory (`TMPDIR`); about 4 GB of it under `cargo bench`
//! (some 20 applied trees).

mod util;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ocikit_image::{
    ApplyOptions, BuildOptions, BuiltLayer, VerifyingReader, apply_layer, build_layer,
};
use util::{Xorshift, measuring, slow_group, write_file};

/// What the generated tree holds.
struct Tree {
    root: PathBuf,
    files: u64,
    bytes: u64,
}

/// Writes the deterministic tree under `root`.
fn make_tree(root: &Path, measuring: bool) -> Tree {
    // (directories, small files, largest small file, large files, large file size)
    let (dirs, small, small_max, large, large_size) = if measuring {
        (64, 4000, 32 << 10, 4, 24 << 20)
    } else {
        (4, 40, 8 << 10, 2, 256 << 10)
    };
    let mut rng = Xorshift::new(0x1a7e5);
    let mut tree = Tree {
        root: root.to_owned(),
        files: 0,
        bytes: 0,
    };
    for d in 0..dirs {
        std::fs::create_dir_all(root.join(format!("usr/share/d{d:02}/sub"))).unwrap();
    }
    for i in 0..small {
        let sub = if i % 3 == 0 { "/sub" } else { "" };
        let path = root.join(format!("usr/share/d{:02}{sub}/file{i:04}.txt", i % dirs));
        let size = rng.below(small_max + 1);
        write_file(&path, &mut rng, size, true);
        tree.files += 1;
        tree.bytes += size;
    }
    std::fs::create_dir_all(root.join("opt/data")).unwrap();
    for i in 0..large {
        write_file(
            &root.join(format!("opt/data/blob{i}.bin")),
            &mut rng,
            large_size,
            false,
        );
        tree.files += 1;
        tree.bytes += large_size;
    }
    tree
}

fn build(tree: &Tree) -> BuiltLayer {
    build_layer(&tree.root, std::io::sink(), &BuildOptions::new()).expect("build_layer")
}

fn bench(c: &mut Criterion) {
    let measuring = measuring();
    let work = tempfile::tempdir().expect("a temporary directory");
    let tree = make_tree(&work.path().join("tree"), measuring);

    // The blob that every apply reads, built once untimed.
    let blob = work.path().join("layer.tar.gz");
    let built = build_layer(
        &tree.root,
        File::create(&blob).expect("create the blob file"),
        &BuildOptions::new(),
    )
    .expect("build_layer");
    assert_eq!(
        std::fs::metadata(&blob).unwrap().len(),
        built.descriptor.size(),
        "the blob's length is not its descriptor's size"
    );
    eprintln!(
        "layer: {} files, {:.1} MB of content, {:.1} MB tar, {:.1} MB gzip, {} entries",
        tree.files,
        tree.bytes as f64 / 1e6,
        built.uncompressed_size as f64 / 1e6,
        built.descriptor.size() as f64 / 1e6,
        built.entries
    );

    // About 2.5 s a build on this machine's 2 cores: 10 of them.
    let mut group = slow_group(c, "layer", built.uncompressed_size, Duration::from_secs(25));

    group.bench_function("build_gzip", |b| {
        b.iter(|| {
            let again = build(&tree);
            assert_eq!(
                again.descriptor.digest(),
                built.descriptor.digest(),
                "two builds of one tree differ"
            );
            assert_eq!(again.diff_id, built.diff_id);
        })
    });

    // Every apply into a directory of its own, kept until the end of the group.
    let applied = tempfile::tempdir_in(work.path()).expect("a temporary directory");
    let mut n = 0u64;
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("apply_gzip", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let root = applied.path().join(n.to_string());
                n += 1;
                std::fs::create_dir(&root).unwrap();
                let file = File::open(&blob).expect("open the blob");
                let start = Instant::now();
                let layer = VerifyingReader::for_descriptor(file, &built.descriptor)
                    .expect("a verifying reader");
                let report = apply_layer(
                    &root,
                    layer,
                    built.descriptor.media_type(),
                    Some(&built.diff_id),
                    &ApplyOptions::new(),
                )
                .expect("apply_layer");
                total += start.elapsed();
                assert_eq!(
                    (report.files, report.file_bytes),
                    (tree.files, tree.bytes),
                    "the applied layer does not hold the tree's files"
                );
                assert_eq!(report.entries, built.entries);
            }
            total
        })
    });
    group.finish();
    if n > 0 {
        // Counts are not contents: one large file of the first applied tree, byte for byte.
        let name = "opt/data/blob0.bin";
        let got = std::fs::read(applied.path().join("0").join(name)).unwrap();
        assert!(
            got == std::fs::read(tree.root.join(name)).unwrap(),
            "{name} differs after apply"
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
