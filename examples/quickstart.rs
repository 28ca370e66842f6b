//! The whole story on one machine with no network: build a small image from a static
//! userland, push it to an embedded registry, pull it into a fresh layout, unpack it to a
//! bundle, and run it with a memory and CPU limit, printing what happened at each step.
//!
//! ```text
//! bash scripts/quickstart.sh        # installs busybox-static, then runs this as root
//! cargo run --release --example quickstart [-- WORKDIR]
//! ```
//!
//! Needs root (the container's namespaces and mounts) and `/bin/busybox` (Debian's
//! `busybox-static`). Everything is written under WORKDIR (default: a temporary directory,
//! removed at the end).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ocikit::build::{BuildSpec, build_image};
use ocikit::convert::ConvertOptions;
use ocikit::copy::{CopyOptions, Location, open_source, pull, push};
use ocikit::distribution::RegistryServer;
use ocikit::image::{ApplyOptions, host_platform, platform_to_string};
use ocikit::layout::Layout;
use ocikit::run::{RunOptions, run_bundle};
use ocikit::unpack::unpack_bundle;

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "id", "hostname", "ls", "head", "wc", "true",
];

fn step(n: u32, what: &str, started: Instant, detail: String) {
    println!("[{n}/6] {what:<8} {:>8.1?}  {detail}", started.elapsed());
}

fn userland(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::create_dir_all(dir.join("etc"))?;
    std::fs::copy("/bin/busybox", dir.join("bin/busybox"))?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))?;
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}

fn run(work: &Path) -> Result<i32, Box<dyn std::error::Error>> {
    let platform = host_platform();

    // 1. Build: one layer from a static busybox, from scratch, into a local layout.
    let t = Instant::now();
    let tree = work.join("userland");
    userland(&tree).map_err(|e| format!("/bin/busybox (apt-get install busybox-static): {e}"))?;
    let built_dir = work.join("built");
    let layout = Layout::create(&built_dir)?;
    let spec = BuildSpec::new()
        .layer(&tree)
        .entrypoint(vec!["/bin/sh".into(), "-c".into()])
        .cmd(vec![
            "echo hello from a container built, pushed, pulled and run by ocikit; \
             echo \"  hostname $(hostname), $(id)\"; echo \"  pid $$, $(ls / | wc -l) entries in /\""
                .into(),
        ])
        .env("GREETING=hello")
        .platform(platform.clone());
    let built = build_image(None, &layout, Some(&"latest".parse()?), &spec)?;
    let layer = &built.layers[0];
    step(
        1,
        "build",
        t,
        format!(
            "{} ({}): one layer of {} bytes ({} entries), manifest {}",
            built_dir.display(),
            platform_to_string(&platform),
            layer.descriptor.size(),
            layer.entries,
            built.manifest.digest()
        ),
    );

    // 2. An embedded registry on a loopback port.
    let t = Instant::now();
    let registry = RegistryServer::new(work.join("registry")).bind("127.0.0.1:0")?;
    let reference = format!("{}/quickstart/busybox:latest", registry.addr());
    step(
        2,
        "registry",
        t,
        format!("serving on http://{}", registry.addr()),
    );

    // 3. Push.
    let t = Instant::now();
    let from: Location = format!("oci:{}:latest", built_dir.display()).parse()?;
    let pushed = push(&from, &reference, &CopyOptions::new())?;
    step(
        3,
        "push",
        t,
        format!(
            "{reference}: {} blobs, {} bytes sent, digest {}",
            pushed.blobs.len(),
            pushed.bytes_copied(),
            pushed.top.digest()
        ),
    );

    // 4. Pull into a fresh layout.
    let t = Instant::now();
    let pulled_dir = work.join("pulled");
    let pulled = pull(&reference, &pulled_dir, Some("latest"), &CopyOptions::new())?;
    if pulled.top.digest() != pushed.top.digest() {
        return Err("the pulled manifest differs from the pushed one".into());
    }
    step(
        4,
        "pull",
        t,
        format!(
            "{}: {} bytes received, same digest {}",
            pulled_dir.display(),
            pulled.bytes_copied(),
            pulled.top.digest()
        ),
    );

    // 5. Unpack to a runtime bundle, with the seed's limits.
    let t = Instant::now();
    let bundle = work.join("bundle");
    let source = open_source(
        &format!("oci:{}:latest", pulled_dir.display()).parse()?,
        &platform,
    )?;
    let convert = ConvertOptions::new()
        .memory_limit(512 << 20)
        .cpu_quota(50_000, 100_000)
        .hostname("quickstart");
    let made = unpack_bundle(
        source.source(),
        &source.reference(),
        &platform,
        &bundle,
        &ApplyOptions::new(),
        &convert,
    )?;
    let files: u64 = made.unpacked.layers.iter().map(|(_, r)| r.files).sum();
    step(
        5,
        "unpack",
        t,
        format!(
            "{}: {} files, layers verified (digest and diff_id), config.json with 512 MiB and 0.5 CPU",
            bundle.display(),
            files
        ),
    );

    // 6. Run.
    let t = Instant::now();
    let status = run_bundle(&bundle, &RunOptions::new().state_root(work.join("state")))?;
    step(6, "run", t, format!("exited with {}", status.code()));
    registry.stop();
    Ok(status.code())
}

fn main() -> ExitCode {
    // The runtime re-executes this program as the container's init.
    ocikit::runtime::init_if_requested();
    let (work, temporary) = match std::env::args().nth(1) {
        Some(dir) => (PathBuf::from(dir), false),
        None => (
            std::env::temp_dir().join(format!("ocikit-quickstart-{}", std::process::id())),
            true,
        ),
    };
    let result = std::fs::create_dir_all(&work)
        .map_err(Into::into)
        .and_then(|()| run(&work));
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code.clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}
