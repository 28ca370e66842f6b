//! Eight threads of one process create and run containers at once, repeatedly, while other
//! threads allocate: no hang, no crash, every exit status and output right.

mod common;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{TestBundle, id, runtime};
use ocikit_runtime::{CreateOptions, ExitStatus};

const THREADS: usize = 8;
const ROUNDS: usize = 6;

#[test]
fn eight_threads_run_containers_while_others_allocate() {
    let (_root, rt) = runtime();
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    // The bundle reads its code and tag from the environment, so one bundle per thread.
    let bundles: Vec<TestBundle> = (0..THREADS)
        .map(|_| TestBundle::new("echo \"$TAG\"; exit $CODE"))
        .collect();
    std::thread::scope(|s| {
        // A watchdog: a hang fails the test instead of stalling CI.
        s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !done.load(Ordering::Relaxed) {
                if Instant::now() > deadline {
                    eprintln!("containers hung");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        for _ in 0..2 {
            s.spawn(|| {
                let mut keep = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let v = vec![n as u8; (n >> 40) % 65536 + 1];
                    keep.push(v);
                    if keep.len() > 64 {
                        keep.clear();
                    }
                }
            });
        }
        let workers: Vec<_> = bundles
            .iter()
            .enumerate()
            .map(|(t, bundle)| {
                let rt = &rt;
                s.spawn(move || {
                    for round in 0..ROUNDS {
                        let code = (t * ROUNDS + round) as i32 % 100;
                        let mut b = TestBundle {
                            dir: tempfile::tempdir_in(bundle.path()).unwrap(),
                            config: bundle.config.clone(),
                        };
                        b.config["process"]["env"] = serde_json::json!([
                            "PATH=/bin",
                            format!("CODE={code}"),
                            format!("TAG=t{t}r{round}"),
                        ]);
                        b.config["root"]["path"] = bundle.rootfs().to_str().unwrap().into();
                        b.write();
                        let (mut r, w) = std::io::pipe().unwrap();
                        let status = rt
                            .run(&id("mt"), b.path(), CreateOptions::new().stdout(w))
                            .unwrap();
                        let mut out = String::new();
                        r.read_to_string(&mut out).unwrap();
                        assert_eq!(status, ExitStatus::Exited(code));
                        assert_eq!(out, format!("t{t}r{round}\n"));
                    }
                })
            })
            .collect();
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        stop.store(true, Ordering::Relaxed);
        done.store(true, Ordering::Relaxed);
        for r in results {
            if let Err(panic) = r {
                std::panic::resume_unwind(panic);
            }
        }
    });
    assert!(rt.list().unwrap().is_empty());
}
