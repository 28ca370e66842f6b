//! Pull throughput from our embedded registry (`RegistryServer`) against docker-registry, in
//! one run, for two clients: ours and skopeo. One image of gzip layers (about 107 MiB).
//!
//! ```text
//! cargo bench -p ocikit-distribution --bench server_vs_docker_registry
//! ```
//!
//! Needs docker-registry, skopeo and gzip on PATH. Both registries store on tmpfs
//! (`/dev/shm`) when there is one; each registry runs as its own process (ours is this binary
//! re-executed with `--serve`); each client runs as its own process (ours too), pulling
//! into a fresh layout. The fastest of `ROUNDS` runs of each pair is kept. It also prints each
//! registry's CPU time per pull (from `/proc`, at tick resolution, summed over all pulls):
//! the cost of serving, apart from the clients that share the two cores; and each registry's
//! peak RSS. Built but not run by `cargo test` (it does nothing without `--bench`).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{LAYERS, cpu_seconds, make_source, pull, settle};
use ocikit_distribution::{Client, RegistryServer};
use ocikit_layout::Layout;
use support::{Registry, run, spawn_until_first_line};

const ROUNDS: usize = 5;
/// Ours, in this process: `pull ADDR REPO DIR`, blobs on `WORKERS` threads.
fn child(args: &[String]) {
    let [mode, addr, name, dir] = args else {
        panic!("bad child arguments {args:?}")
    };
    assert_eq!(mode, "pull");
    let client = Client::builder().auth_files(Vec::new()).build().unwrap();
    let repo = client.repository_at(addr, name).unwrap();
    let layout = Layout::create(dir).unwrap();
    pull(&repo, &layout, &"bench".parse().unwrap());
}

fn timed(cmd: &mut Command, server: u32) -> (Duration, f64) {
    settle();
    let cpu = cpu_seconds(server);
    let start = Instant::now();
    run(cmd);
    (start.elapsed(), cpu_seconds(server) - cpu)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    if let [mode, root] = &args[..]
        && mode == "--serve"
    {
        // Our registry in a process of its own, as docker-registry runs: its address on
        // stdout, then serving until stdin closes.
        let server = RegistryServer::new(root).bind("127.0.0.1:0").unwrap();
        println!("{}", server.addr());
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        server.stop();
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "server_vs_docker_registry: run with `cargo bench -p ocikit-distribution --bench server_vs_docker_registry`"
        );
        return;
    }
    let me = std::env::current_exe().unwrap();
    let shm = Path::new("/dev/shm");
    let work = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    println!("working in {}", work.path().display());
    let src = work.path().join("src");
    let total = make_source(&src, work.path());
    let mib = total as f64 / 1048576.0;
    println!("image: {} layers, {mib:.1} MiB compressed", LAYERS.len());

    let docker = Registry::start_in(work.path(), "", |_| {});
    let (mut ours, ours_addr) = spawn_until_first_line(
        Command::new(&me)
            .arg("--serve")
            .arg(work.path().join("ours-root"))
            .stdin(Stdio::piped()),
    );
    let registries = [
        ("docker-registry", docker.addr.clone(), docker.pid()),
        ("ocikit", ours_addr.trim().to_owned(), ours.id()),
    ];
    for (_, addr, _) in &registries {
        run(Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:bench", src.display()))
            .arg(format!("docker://{addr}/bench/img:bench")));
    }
    // times[client][registry], and the registries' CPU seconds over all pulls.
    let mut times = [[Duration::MAX; 2]; 2];
    let mut cpu = [0.0f64; 2];
    for round in 0..ROUNDS {
        for (r, (_, addr, pid)) in registries.iter().enumerate() {
            let dir = work.path().join(format!("skopeo-{round}-{r}"));
            let (t, c) = timed(
                Command::new("skopeo")
                    .args(["copy", "--quiet", "--src-tls-verify=false"])
                    .arg(format!("docker://{addr}/bench/img:bench"))
                    .arg(format!("oci:{}:bench", dir.display())),
                *pid,
            );
            times[0][r] = times[0][r].min(t);
            cpu[r] += c;
            let _ = std::fs::remove_dir_all(&dir);
            let dir = work.path().join(format!("ours-{round}-{r}"));
            let (t, c) = timed(
                Command::new(&me)
                    .args(["--child", "pull", addr, "bench/img"])
                    .arg(&dir),
                *pid,
            );
            times[1][r] = times[1][r].min(t);
            cpu[r] += c;
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    for (c, client) in ["skopeo", "ocikit client"].iter().enumerate() {
        let [d, o] = times[c];
        println!(
            "{client} pull: from docker-registry {:.3}s ({:.0} MiB/s), from ours {:.3}s ({:.0} MiB/s): throughput ratio {:.2} (goal >= 2)",
            d.as_secs_f64(),
            mib / d.as_secs_f64(),
            o.as_secs_f64(),
            mib / o.as_secs_f64(),
            d.as_secs_f64() / o.as_secs_f64()
        );
    }
    // What serving costs, whoever pulls: on 2 cores the client takes most of the machine, so
    // this, not the pull time, is where the servers differ.
    let pulls = (2 * ROUNDS) as f64;
    let [d, o] = cpu.map(|c| c * 1000.0 / pulls);
    println!(
        "server CPU per pull: docker-registry {d:.0} ms, ours {o:.0} ms: ratio {:.2}",
        o / d
    );
    let [d, o] = [docker.pid(), ours.id()].map(peak_rss_kib);
    println!("server peak RSS: docker-registry {d} KiB, ours {o} KiB");
    drop(ours.stdin.take());
    ours.wait().unwrap();
}

/// The peak RSS (`VmHWM`) of the running process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
