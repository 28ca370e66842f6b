//! Side-by-side with skopeo against one local docker-registry: pull of a multi-layer image
//! (over 100 MB compressed) into an OCI layout, and push of it from a layout to an empty
//! registry; peak RSS of our side. Both over plain HTTP, then both again over TLS (the
//! registry given a certificate from a CA made by `openssl` here; skopeo trusts it through
//! `--src-cert-dir`/`--dest-cert-dir`, ours through the same directory as
//! `ClientBuilder::cert_dir`), so the cost of TLS shows.
//!
//! ```text
//! cargo bench -p ocikit-distribution --bench vs_skopeo
//! ```
//!
//! Each pull and push is also timed through the `ocikit` command (`ocikit copy`, what users
//! run: its argument parsing, registries.conf, policy and the facade's copy included), which
//! must be built first: `cargo build --release -p ocikit-cli` (compare.sh does).
//!
//! Needs docker-registry, skopeo, openssl and gzip on PATH. Each side runs in its own process (ours is
//! this binary re-executed), timed by wall clock; the fastest of `ROUNDS` runs is kept. Before
//! every timed run dirty pages are flushed and, as root, the page cache is dropped
//! ([`common::settle`]): otherwise whichever run comes when memory is full pays for reclaim. Built
//! but not run by `cargo test` (it does nothing without `--bench`).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{LAYERS, copy_blobs, make_source, pull, settle};
use ocikit_distribution::ocikit_image::{
    AnyManifest, ImageDestination, ImageSource, Tag, TagOrDigest,
};
use ocikit_distribution::{Client, Repository};
use ocikit_layout::Layout;
use support::{Registry, run};

const ROUNDS: usize = 5;
fn client(cert_dir: Option<&String>) -> Client {
    let mut b = Client::builder().auth_files(Vec::new());
    if let Some(dir) = cert_dir {
        b = b.cert_dir(dir);
    }
    b.build().unwrap()
}

/// Ours, in this process: `pull ADDR REPO DIR [CERT_DIR]` or `push DIR ADDR REPO
/// [CERT_DIR]`; prints peak RSS.
fn child(args: &[String]) {
    let cert_dir = args.get(4);
    let args = &args[..args.len().min(4)];
    match args {
        [mode, a, b, c] if mode == "pull" => {
            let repo = client(cert_dir).repository_at(a, b).unwrap();
            let layout = Layout::create(c).unwrap();
            pull(&repo, &layout, &"bench".parse().unwrap());
        }
        [mode, a, b, c] if mode == "push" => {
            let layout = Layout::open(a).unwrap();
            let repo: Repository = client(cert_dir).repository_at(b, c).unwrap();
            let tag: Tag = "bench".parse().unwrap();
            let top = layout.resolve(&TagOrDigest::Tag(tag.clone())).unwrap();
            let AnyManifest::Manifest(m) = layout.fetch_manifest(&top).unwrap() else {
                panic!("an image")
            };
            let mut blobs = m.layers().clone();
            blobs.push(m.config().clone());
            copy_blobs(&repo, &layout, blobs);
            ImageDestination::tag(&repo, &tag, &AnyManifest::Manifest(m)).unwrap();
        }
        _ => panic!("bad child arguments {args:?}"),
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: 0 kB");
    println!("{hwm}");
}

fn timed(cmd: &mut Command) -> (Duration, String) {
    settle();
    let start = Instant::now();
    let out = run(cmd);
    (start.elapsed(), out)
}

fn best<T>(runs: impl Iterator<Item = (Duration, T)>) -> (Duration, T) {
    runs.min_by_key(|(d, _)| *d).unwrap()
}

fn kib(out: &str) -> u64 {
    out.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("vs_skopeo: run with `cargo bench -p ocikit-distribution --bench vs_skopeo`");
        return;
    }
    let me = std::env::current_exe().unwrap();
    // Both sides write their layouts (and the registries their storage) to tmpfs when there
    // is one, so the disk's write-back does not decide the race.
    let shm = Path::new("/dev/shm");
    let work = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    println!("working in {}", work.path().display());
    let src = work.path().join("src");
    make_source(&src, work.path());
    let total: u64 = std::fs::read_dir(src.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "image: {} layers, {:.1} MiB compressed",
        LAYERS.len(),
        total as f64 / 1048576.0
    );

    compare(work.path(), &src, &me, None);
    let tls = Tls::make(work.path());
    compare(work.path(), &src, &me, Some(&tls));
}

/// A CA and a certificate for 127.0.0.1 it signed, made by `openssl`: `dir` holds the CA as
/// `ca.crt` (a certs.d directory for the clients), `server/` the registry's pair.
struct Tls {
    dir: PathBuf,
    yaml: String,
}

impl Tls {
    fn make(work: &Path) -> Tls {
        let dir = work.join("certs");
        let server = dir.join("server");
        std::fs::create_dir_all(&server).unwrap();
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=ocikit-bench-ca"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .arg("-keyout")
            .arg(server.join("ca.key"))
            .arg("-out")
            .arg(dir.join("ca.crt")));
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .arg("-keyout")
            .arg(server.join("key.pem"))
            .arg("-out")
            .arg(server.join("csr.pem")));
        std::fs::write(
            server.join("ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
            .arg("-in")
            .arg(server.join("csr.pem"))
            .arg("-CA")
            .arg(dir.join("ca.crt"))
            .arg("-CAkey")
            .arg(server.join("ca.key"))
            .arg("-CAserial")
            .arg(server.join("ca.srl"))
            .arg("-extfile")
            .arg(server.join("ext"))
            .arg("-out")
            .arg(server.join("cert.pem")));
        let yaml = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            server.join("cert.pem").display(),
            server.join("key.pem").display()
        );
        Tls { dir, yaml }
    }
}

/// Times both sides' pushes and pulls, over plain HTTP or over `tls`, and prints a line for
/// each (prefixed `TLS ` over TLS).
fn compare(work: &Path, src: &Path, me: &Path, tls: Option<&Tls>) {
    let yaml = tls.map_or("", |t| t.yaml.as_str());
    let (src_flags, dest_flags, prefix) = match tls {
        None => (
            vec!["--src-tls-verify=false".to_owned()],
            vec!["--dest-tls-verify=false".to_owned()],
            "",
        ),
        Some(t) => (
            vec!["--src-cert-dir".to_owned(), t.dir.display().to_string()],
            vec!["--dest-cert-dir".to_owned(), t.dir.display().to_string()],
            "TLS ",
        ),
    };
    let ours = |cmd: &mut Command| {
        if let Some(t) = tls {
            cmd.arg(&t.dir);
        }
        timed(cmd)
    };
    // The command, given the same policy as skopeo (accept anything: no signature work on
    // either side) and skopeo's certificate flags.
    let cli = me
        .parent()
        .and_then(Path::parent)
        .map(|release| release.join("ocikit"))
        .filter(|p| p.exists())
        .expect("target/release/ocikit: build it first (cargo build --release -p ocikit-cli)");
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default": [{"type": "insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let ocikit_copy = |flags: &[String], from: String, to: String| {
        let mut c = Command::new(&cli);
        c.args(["copy", "-q", "--policy"])
            .arg(&policy)
            .args(flags)
            .arg(from)
            .arg(to);
        timed(&mut c)
    };
    // Push to an empty registry: a fresh one for every run of either side.
    let mut push_skopeo = Vec::new();
    let mut push_ours = Vec::new();
    let mut push_cli = Vec::new();
    for _ in 0..ROUNDS {
        let reg = Registry::start_in(work, yaml, |_| {});
        push_skopeo.push(timed(
            Command::new("skopeo")
                .args(["copy", "--quiet"])
                .args(&dest_flags)
                .arg(format!("oci:{}:bench", src.display()))
                .arg(format!("docker://{}/bench/img:bench", reg.addr)),
        ));
        drop(reg);
        let reg = Registry::start_in(work, yaml, |_| {});
        push_ours.push(ours(
            Command::new(me)
                .arg("--child")
                .arg("push")
                .arg(src)
                .arg(&reg.addr)
                .arg("bench/img"),
        ));
        drop(reg);
        let reg = Registry::start_in(work, yaml, |_| {});
        push_cli.push(ocikit_copy(
            &dest_flags,
            format!("oci:{}:bench", src.display()),
            format!("docker://{}/bench/img:bench", reg.addr),
        ));
    }
    // Pull from one registry holding the image into fresh layouts.
    let reg = Registry::start_in(work, yaml, |_| {});
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .args(&dest_flags)
        .arg(format!("oci:{}:bench", src.display()))
        .arg(format!("docker://{}/bench/img:bench", reg.addr)));
    let mut pull_skopeo = Vec::new();
    let mut pull_ours = Vec::new();
    let mut pull_cli = Vec::new();
    for round in 0..ROUNDS {
        let theirs: PathBuf = work.join(format!("theirs{round}"));
        pull_skopeo.push(timed(
            Command::new("skopeo")
                .args(["copy", "--quiet"])
                .args(&src_flags)
                .arg(format!("docker://{}/bench/img:bench", reg.addr))
                .arg(format!("oci:{}:bench", theirs.display())),
        ));
        let ours_dir = work.join(format!("ours{round}"));
        pull_ours.push(ours(
            Command::new(me)
                .arg("--child")
                .arg("pull")
                .arg(&reg.addr)
                .arg("bench/img")
                .arg(&ours_dir),
        ));
        let cli_dir = work.join(format!("cli{round}"));
        pull_cli.push(ocikit_copy(
            &src_flags,
            format!("docker://{}/bench/img:bench", reg.addr),
            format!("oci:{}:bench", cli_dir.display()),
        ));
        let _ = std::fs::remove_dir_all(&theirs);
        let _ = std::fs::remove_dir_all(&ours_dir);
        let _ = std::fs::remove_dir_all(&cli_dir);
    }
    let reg_pull_addr = reg.addr.clone();
    // skopeo's peak RSS, from one more run of each under /usr/bin/time (untimed: the wrapper
    // would add its own start-up to skopeo's time).
    let rss_dir = work.join("rss");
    let pull_rss = peak_rss(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .args(&src_flags)
            .arg(format!("docker://{}/bench/img:bench", reg.addr))
            .arg(format!("oci:{}:bench", rss_dir.display())),
    );
    let _ = std::fs::remove_dir_all(&rss_dir);
    let reg = Registry::start_in(work, yaml, |_| {});
    let push_rss = peak_rss(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .args(&dest_flags)
            .arg(format!("oci:{}:bench", src.display()))
            .arg(format!("docker://{}/bench/img:bench", reg.addr)),
    );
    let (ps, _) = best(push_skopeo.into_iter());
    let (po, po_out) = best(push_ours.into_iter());
    let (ls, _) = best(pull_skopeo.into_iter());
    let (lo, lo_out) = best(pull_ours.into_iter());
    let (pc, _) = best(pull_cli.into_iter());
    let (uc, _) = best(push_cli.into_iter());
    println!(
        "{prefix}pull into a layout: skopeo {:.3}s, ours {:.3}s, ratio {:.2} (goal <= 0.50), our peak RSS {} KiB, skopeo peak RSS {pull_rss} KiB",
        ls.as_secs_f64(),
        lo.as_secs_f64(),
        lo.as_secs_f64() / ls.as_secs_f64(),
        kib(&lo_out)
    );
    println!(
        "{prefix}push to an empty registry: skopeo {:.3}s, ours {:.3}s, ratio {:.2} (goal <= {}), our peak RSS {} KiB, skopeo peak RSS {push_rss} KiB",
        ps.as_secs_f64(),
        po.as_secs_f64(),
        po.as_secs_f64() / ps.as_secs_f64(),
        if tls.is_some() { "0.60" } else { "0.75" },
        kib(&po_out)
    );
    println!(
        "{prefix}pull into a layout with the ocikit command: skopeo {:.3}s, ours {:.3}s, ratio {:.2} (goal <= 0.50), our peak RSS {} KiB, skopeo peak RSS {pull_rss} KiB",
        ls.as_secs_f64(),
        pc.as_secs_f64(),
        pc.as_secs_f64() / ls.as_secs_f64(),
        peak_rss(
            Command::new(&cli)
                .args(["copy", "-q", "--policy"])
                .arg(&policy)
                .args(&src_flags)
                .arg(format!("docker://{}/bench/img:bench", reg_pull_addr))
                .arg(format!("oci:{}:bench", work.join("rss-cli").display()))
        )
    );
    let _ = std::fs::remove_dir_all(work.join("rss-cli"));
    let fresh = Registry::start_in(work, yaml, |_| {});
    let cli_push_rss = peak_rss(
        Command::new(&cli)
            .args(["copy", "-q", "--policy"])
            .arg(&policy)
            .args(&dest_flags)
            .arg(format!("oci:{}:bench", src.display()))
            .arg(format!("docker://{}/bench/img:bench", fresh.addr)),
    );
    println!(
        "{prefix}push to an empty registry with the ocikit command: skopeo {:.3}s, ours {:.3}s, ratio {:.2} (goal <= {}), our peak RSS {cli_push_rss} KiB, skopeo peak RSS {push_rss} KiB",
        ps.as_secs_f64(),
        uc.as_secs_f64(),
        uc.as_secs_f64() / ps.as_secs_f64(),
        if tls.is_some() { "0.60" } else { "0.75" },
    );
}

/// Peak RSS in KiB of `cmd` (a peer), run under `/usr/bin/time`.
fn peak_rss(cmd: &Command) -> u64 {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .output()
        .expect("/usr/bin/time must be installed (scripts/test.sh installs it)");
    assert!(out.status.success(), "{cmd:?} failed under /usr/bin/time");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("/usr/bin/time prints the peak RSS last")
}
