//! Progress as one mechanism: an image built with a progress observer, then pushed with one
//! to the registry of scripts/test.sh (`OCIKIT_TEST_REGISTRY`): one total, one end per blob,
//! totals equal to what the registry stores (its `HEAD` answers), events from several copying
//! threads and none lost.
//!
//! Needs the registry (scripts/test.sh) and root (unpacking, the store); fails without them.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::{CopyOptions, Location, push};
use ocikit::layout::Layout;
use ocikit::progress::{BlobId, Event};

mod common;
use common::registry;

/// An event as recorded: which blob, what, the thread it came from.
#[derive(Clone, Debug)]
enum Seen {
    Total { blobs: usize, bytes: u64 },
    Started(BlobId, u64),
    Bytes(BlobId, u64),
    Done(BlobId, String, u64),
    Skipped(BlobId),
    Mounted(BlobId),
}

type Log = Arc<Mutex<Vec<(Seen, ThreadId)>>>;

/// An observer that records every event with its thread.
fn recorder() -> (Log, impl Fn(&Event<'_>) + Send + Sync + 'static) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let observer = move |event: &Event<'_>| {
        let seen = match *event {
            Event::Total { blobs, bytes } => Seen::Total { blobs, bytes },
            Event::Started { id, descriptor } => Seen::Started(id, descriptor.size()),
            Event::Bytes { id, done, .. } => Seen::Bytes(id, done),
            Event::Done { id, descriptor } => {
                Seen::Done(id, descriptor.digest().to_string(), descriptor.size())
            }
            Event::Skipped { id, .. } => Seen::Skipped(id),
            Event::Mounted { id, .. } => Seen::Mounted(id),
            _ => return,
        };
        sink.lock()
            .unwrap()
            .push((seen, std::thread::current().id()));
    };
    (log, observer)
}

/// Checks one operation's events: one total first, then per blob id a start, bytes that grow
/// and stay within the blob, and exactly one end, with nothing out of order (nothing lost).
/// Returns the blobs done (digest to size), and the threads that sent events.
fn check(log: &Log, blobs: usize) -> (BTreeMap<String, u64>, HashSet<ThreadId>) {
    let log = log.lock().unwrap();
    let totals: Vec<_> = log
        .iter()
        .filter_map(|(s, _)| match s {
            Seen::Total { blobs, bytes } => Some((*blobs, *bytes)),
            _ => None,
        })
        .collect();
    assert_eq!(totals.len(), 1, "one total: {totals:?}");
    assert!(matches!(log[0].0, Seen::Total { .. }), "the total first");
    let (total_blobs, total_bytes) = totals[0];
    assert_eq!(total_blobs, blobs);

    /// Per id: size once started, bytes so far, ended.
    #[derive(Default)]
    struct Blob {
        size: Option<u64>,
        done: u64,
        ends: usize,
    }
    let mut per_id: BTreeMap<BlobId, Blob> = BTreeMap::new();
    let mut done = BTreeMap::new();
    let mut threads = HashSet::new();
    for (seen, thread) in &log[1..] {
        threads.insert(*thread);
        match seen {
            Seen::Total { .. } => unreachable!(),
            Seen::Started(id, size) => {
                let b = per_id.entry(*id).or_default();
                assert!(b.size.is_none() && b.ends == 0, "{id} started twice");
                b.size = Some(*size);
            }
            Seen::Bytes(id, n) => {
                let b = per_id.get_mut(id).expect("bytes of a blob not started");
                assert_eq!(b.ends, 0, "{id}: bytes after its end");
                assert!(*n > b.done, "{id}: bytes went back, {} then {n}", b.done);
                assert!(*n <= b.size.unwrap(), "{id}: {n} bytes of {:?}", b.size);
                b.done = *n;
            }
            Seen::Done(id, digest, size) => {
                let b = per_id.get_mut(id).expect("done of a blob not started");
                assert_eq!(b.size, Some(*size));
                b.ends += 1;
                assert!(
                    done.insert(digest.clone(), *size).is_none(),
                    "{digest} twice"
                );
            }
            Seen::Skipped(id) | Seen::Mounted(id) => {
                per_id.entry(*id).or_default().ends += 1;
            }
        }
    }
    assert_eq!(per_id.len(), blobs, "one id per blob");
    for (id, b) in &per_id {
        assert_eq!(b.ends, 1, "{id}: one end");
    }
    assert_eq!(
        done.values().sum::<u64>(),
        total_bytes,
        "the total is what was done"
    );
    (done, threads)
}

/// Incompressible content, so that each layer is a few MiB on the wire too.
fn noise(path: &Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn build_and_push_report_every_blob_once() {
    let registry = registry();
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = BuildSpec::new().cmd(vec!["/data/0".into()]);
    let layers = 6;
    for i in 0..layers {
        let dir = tmp.path().join(format!("layer{i}"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        noise(
            &dir.join(format!("data/{i}")),
            (2 << 20) + i * 4096,
            i as u64 + 7,
        );
        spec = spec.layer(dir);
    }

    // Build into a layout: the total (layers and config) first, each blob done once.
    let layout = Layout::create(tmp.path().join("layout")).unwrap();
    let (built_log, observer) = recorder();
    let built = build_image(
        None,
        &layout,
        Some(&"v1".parse().unwrap()),
        &spec.progress(observer),
    )
    .unwrap();
    let (built_done, _) = check(&built_log, layers + 1);
    let mut expected: BTreeMap<String, u64> = built
        .manifest
        .layers()
        .iter()
        .map(|l| (l.digest().to_string(), l.size()))
        .collect();
    let config = built.manifest.config();
    expected.insert(config.digest().to_string(), config.size());
    assert_eq!(built_done, expected);

    // Push it on four threads.
    let repo = format!("ocikit-progress/{}", std::process::id());
    let (pushed_log, observer) = recorder();
    let source: Location = format!("oci:{}:v1", tmp.path().join("layout").display())
        .parse()
        .unwrap();
    let report = push(
        &source,
        &format!("{registry}/{repo}:v1"),
        &CopyOptions::new().jobs(4).progress(observer),
    )
    .unwrap();
    let (pushed_done, threads) = check(&pushed_log, layers + 1);
    assert_eq!(pushed_done, expected, "every blob uploaded, once");
    assert!(
        threads.len() >= 2,
        "the copy's events come from its threads: {threads:?}"
    );
    assert!(!threads.contains(&std::thread::current().id()));
    assert_eq!(report.blobs.len(), layers + 1);

    // What the registry stores: each blob's size as its HEAD answers, the same total.
    let client = ocikit::distribution::Client::new().unwrap();
    let repository = client.repository_at(&registry, &repo).unwrap();
    let mut stored = BTreeMap::new();
    for digest in expected.keys() {
        let size = repository
            .blob_exists(&digest.parse().unwrap())
            .unwrap()
            .unwrap_or_else(|| panic!("{digest} is not in the registry"));
        stored.insert(digest.clone(), size);
    }
    assert_eq!(stored, pushed_done);

    // Pushed again: every blob is there, each reported skipped once, none started.
    let (again_log, observer) = recorder();
    push(
        &source,
        &format!("{registry}/{repo}:v1"),
        &CopyOptions::new().jobs(4).progress(observer),
    )
    .unwrap();
    let log = again_log.lock().unwrap();
    assert!(
        log.iter()
            .all(|(s, _)| matches!(s, Seen::Total { .. } | Seen::Skipped(_))),
        "{log:?}"
    );
    let skipped = log
        .iter()
        .filter(|(s, _)| matches!(s, Seen::Skipped(_)))
        .count();
    assert_eq!(skipped, layers + 1);
}

/// Unpacking and the store's pull report through the same observer: the layers' total, each
/// layer done once; a second pull finds every layer stored and says so once per layer.
#[test]
fn unpack_and_store_pull_report_every_layer_once() {
    use ocikit::copy::open_source;
    use ocikit::store::{PullOptions, Store};
    use ocikit::unpack::{UnpackOptions, unpack_image};
    assert!(
        rustix::process::geteuid().is_root(),
        "unpacking owners and the store's overlay attributes need root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let layers = 3;
    let mut spec = BuildSpec::new();
    for i in 0..layers {
        let dir = tmp.path().join(format!("layer{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        noise(
            &dir.join(format!("f{i}")),
            (1 << 20) + i * 512,
            i as u64 + 3,
        );
        spec = spec.layer(dir);
    }
    let layout = Layout::create(tmp.path().join("layout")).unwrap();
    let built = build_image(None, &layout, Some(&"t".parse().unwrap()), &spec).unwrap();
    let expected: BTreeMap<String, u64> = built
        .manifest
        .layers()
        .iter()
        .map(|l| (l.digest().to_string(), l.size()))
        .collect();
    let location: Location = format!("oci:{}:t", tmp.path().join("layout").display())
        .parse()
        .unwrap();

    let (log, observer) = recorder();
    let opened = open_source(&location, &ocikit::image::host_platform()).unwrap();
    unpack_image(
        opened.source(),
        &opened.image().unwrap(),
        &tmp.path().join("rootfs"),
        &UnpackOptions::new().progress(observer),
    )
    .unwrap();
    assert_eq!(check(&log, layers).0, expected);

    let store = Store::open(tmp.path().join("store")).unwrap();
    let (log, observer) = recorder();
    store
        .pull(&location, &PullOptions::new().progress(observer))
        .unwrap();
    assert_eq!(check(&log, layers).0, expected);
    let (again, observer) = recorder();
    store
        .pull(&location, &PullOptions::new().progress(observer))
        .unwrap();
    let again = again.lock().unwrap();
    assert!(matches!(again[0].0, Seen::Total { blobs, .. } if blobs == layers));
    assert_eq!(again.len(), layers + 1, "{again:?}");
    assert!(
        again[1..]
            .iter()
            .all(|(s, _)| matches!(s, Seen::Skipped(_)))
    );
}
