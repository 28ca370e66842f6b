//! Container run: [`ocikit::run::run_bundle`] of `/bin/true` in a busybox bundle (create,
//! start, wait, delete, as `runc run` does), one container after the other.
//!
//! ```text
//! cargo bench --bench run
//! ```
//!
//! The bundle is made once: a busybox-static rootfs and the `config.json` that
//! [`ocikit::convert::runtime_config`] gives an image without configuration (namespaces,
//! mounts, masked paths as `runc spec`) with `/bin/true` as its command. Container state lives
//! in a temporary directory. The runtime re-executes this binary as each container's init, so
//! `main` calls [`ocikit::init_if_requested`] before anything else (hence no
//! `criterion_main!`). `sh oci-runtime/benches/run.sh` compares the same run with runc and
//! crun. Under `cargo test` (no `--bench` argument) criterion runs it once.
//!
//! Needs root (namespaces, mounts) and `/bin/busybox` (Debian package `busybox-static`,
//! installed by `scripts/test.sh`); fails, never skips, without them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group};
use ocikit::convert::{ConvertOptions, runtime_config};
use ocikit::oci_spec::image::ImageConfiguration;
use ocikit::run::{RunOptions, run_bundle};

fn bench(c: &mut Criterion) {
    assert!(
        rustix::process::geteuid().is_root(),
        "the run bench needs root (namespaces, mounts); CI runs as root"
    );
    let work = tempfile::tempdir().expect("a temporary directory");
    let bundle = work.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    common::busybox_tree(&rootfs);
    let spec = runtime_config(
        &ImageConfiguration::default(),
        &rootfs,
        &ConvertOptions::new().entrypoint(vec!["/bin/true".into()]),
    )
    .expect("runtime_config");
    spec.save(bundle.join("config.json"))
        .expect("write config.json");
    let options = RunOptions::new().state_root(work.path().join("state"));

    // The exit code is the container's: a failing command must show up as such.
    let failing = work.path().join("failing");
    common::busybox_tree(&failing.join("rootfs"));
    runtime_config(
        &ImageConfiguration::default(),
        &failing.join("rootfs"),
        &ConvertOptions::new().entrypoint(vec!["/bin/sh".into(), "-c".into(), "exit 3".into()]),
    )
    .unwrap()
    .save(failing.join("config.json"))
    .unwrap();
    let status = run_bundle(&failing, &options)
        .expect("run `sh -c 'exit 3'`")
        .status;
    assert_eq!(status.code(), 3, "the container's exit code is lost");

    let mut group = c.benchmark_group("run");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        // About 5 ms a run: 1,275 of them (linear sampling, 50 samples).
        .measurement_time(Duration::from_secs(8));
    group.bench_function("true", |b| {
        b.iter(|| {
            let status = run_bundle(&bundle, &options).expect("run_bundle").status;
            assert_eq!(status.code(), 0, "/bin/true exited with {}", status.code());
        })
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    // The runtime re-executes this binary as each container's init.
    ocikit::init_if_requested();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
