//! Several processes on one layout: a writer killed mid-blob, and two writers tagging at
//! once. The children are this test binary run again with an environment variable naming
//! their role (the `child_*` tests do nothing without it).

mod common;

use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ocikit_layout::ocikit_image::{AnyManifest, ImageDestination, ImageSource, Tag, sha256};
use ocikit_layout::{Layout, TEMP_DIR};

const ROLE: &str = "OCIKIT_LAYOUT_TEST_ROLE";
const DIR: &str = "OCIKIT_LAYOUT_TEST_DIR";
const SRC: &str = "OCIKIT_LAYOUT_TEST_SRC";

/// Runs the test `name` of this binary in a child process with `envs`.
fn spawn(name: &str, envs: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// `SLOW_SIZE` zero bytes, delivered 64 KiB at a time with a pause: a stream that takes
/// minutes, so the parent can kill the writer in the middle.
struct Slow {
    left: u64,
}

const SLOW_SIZE: u64 = 1 << 30;

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::thread::sleep(Duration::from_millis(5));
        let n = buf.len().min(65536).min(self.left as usize);
        buf[..n].fill(0);
        self.left -= n as u64;
        Ok(n)
    }
}

fn zeros_digest() -> ocikit_layout::oci_spec::image::Digest {
    // sha256 of SLOW_SIZE zero bytes, computed once (1 GiB of hashing is too slow in debug
    // builds, so the child is given a digest it can never reach instead).
    sha256(b"never reached")
}

#[test]
fn child_slow_writer() {
    if std::env::var(ROLE).as_deref() != Ok("slow") {
        return;
    }
    let layout = Layout::open(std::env::var(DIR).unwrap()).unwrap();
    let _ = layout.write_blob(
        Slow { left: SLOW_SIZE },
        Some(&zeros_digest()),
        Some(SLOW_SIZE),
    );
    unreachable!("the parent kills this process first");
}

fn temp_files(root: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(root.join(TEMP_DIR))
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn killed_writer_leaves_a_clean_layout() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let (_, d) = common::image(&l, "amd64", b"kept");
    l.set_ref(&"kept".parse().unwrap(), &d).unwrap();
    let blobs_before = std::fs::read_dir(dir.path().join("blobs/sha256"))
        .unwrap()
        .count();

    let mut child = spawn(
        "child_slow_writer",
        &[(ROLE, "slow"), (DIR, dir.path().to_str().unwrap())],
    );
    // Wait until the writer is well into its blob.
    let start = Instant::now();
    let tmp = loop {
        let files = temp_files(dir.path());
        if let Some(f) = files.first()
            && std::fs::metadata(f).map(|m| m.len()).unwrap_or(0) > 1 << 20
        {
            break f.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child never started writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // While the writer lives, GC leaves its temporary file alone.
    let r = l.gc(Duration::ZERO).unwrap();
    assert_eq!(r.temp_files_removed, 0);
    assert!(tmp.exists());

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Nothing at the final path, fsck clean, the temporary file still there...
    assert!(!l.has_blob(&zeros_digest()).unwrap());
    let report = l.fsck().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.temp_files, 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        blobs_before
    );
    // ...until GC removes it.
    let r = l.gc(Duration::ZERO).unwrap();
    assert_eq!(r.temp_files_removed, 1);
    assert_eq!(r.blobs_removed, 0);
    assert!(r.bytes_freed > 1 << 20);
    assert!(temp_files(dir.path()).is_empty());
    assert!(l.fsck().unwrap().is_ok());
    let img = l
        .fetch_image(
            &"kept".parse().unwrap(),
            &ocikit_layout::ocikit_image::parse_platform("linux/amd64").unwrap(),
        )
        .unwrap();
    assert_eq!(img.manifest.digest(), d.digest());
}

const TAGS_PER_WRITER: usize = 40;

#[test]
fn child_copier() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let Some(id) = role.strip_prefix("copy-") else {
        return;
    };
    let src = Layout::open(std::env::var(SRC).unwrap()).unwrap();
    let dst = Layout::open(std::env::var(DIR).unwrap()).unwrap();
    let top = src.resolve(&"img".parse().unwrap()).unwrap();
    let any = src.fetch_manifest(&top).unwrap();
    let AnyManifest::Manifest(m) = &any else {
        panic!("expected a manifest")
    };
    for blob in std::iter::once(m.config()).chain(m.layers()) {
        dst.copy_blob_from(&src, blob).unwrap();
    }
    for i in 0..TAGS_PER_WRITER {
        let tag: Tag = format!("w{id}-{i}").parse().unwrap();
        dst.tag(&tag, &any).unwrap();
        // A shared name, moved by both writers.
        dst.tag(&"shared".parse().unwrap(), &any).unwrap();
    }
}

#[test]
fn concurrent_writers_lose_no_tag() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dst = Layout::create(dir.path().join("dst")).unwrap();
    let mut children = Vec::new();
    let mut digests = Vec::new();
    for id in 0..2 {
        let src_dir = dir.path().join(format!("src{id}"));
        let src = Layout::create(&src_dir).unwrap();
        let (_, d) = common::image(&src, "amd64", format!("writer {id}").as_bytes());
        src.set_ref(&"img".parse().unwrap(), &d).unwrap();
        digests.push(d.digest().clone());
        children.push((src_dir, id));
    }
    let mut running: Vec<Child> = children
        .iter()
        .map(|(src_dir, id)| {
            spawn(
                "child_copier",
                &[
                    (ROLE, &format!("copy-{id}")),
                    (DIR, dst.root().to_str().unwrap()),
                    (SRC, src_dir.to_str().unwrap()),
                ],
            )
        })
        .collect();
    for child in &mut running {
        assert!(child.wait().unwrap().success());
    }
    let refs = dst.refs().unwrap();
    assert_eq!(refs.len(), 2 * TAGS_PER_WRITER + 1, "a tag was lost");
    for (id, digest) in digests.iter().enumerate() {
        for i in 0..TAGS_PER_WRITER {
            let found = dst
                .resolve_ref(&format!("w{id}-{i}").parse().unwrap())
                .unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].digest(), digest);
        }
    }
    assert_eq!(
        dst.resolve_ref(&"shared".parse().unwrap()).unwrap().len(),
        1
    );
    assert!(dst.fsck().unwrap().is_ok());
    assert!(temp_files(dst.root()).is_empty());
}
