//! The whole story on one machine with no network: build a small image from a static
//! userland, push it to an embedded registry, pull it into an image store (each layer stored
//! and unpacked once), give a container an overlay root filesystem of it, and run it with a
//! memory and CPU limit, printing what happened at each step.
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
use ocikit::copy::{CopyOptions, Location, push};
use ocikit::distribution::RegistryServer;
use ocikit::image::{host_platform, platform_to_string};
use ocikit::layout::Layout;
use ocikit::run::{RunOptions, run_bundle};
use ocikit::store::{PullOptions, RootfsOptions, Store};

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

    // 4. Pull into an image store: each layer fetched once, verified, stored and unpacked.
    let t = Instant::now();
    let store = Store::open(work.join("store"))?;
    let pulled = store.pull(
        &format!("docker://{reference}").parse()?,
        &PullOptions::new(),
    )?;
    if pulled.manifest.digest() != pushed.top.digest() {
        return Err("the pulled manifest differs from the pushed one".into());
    }
    step(
        4,
        "pull",
        t,
        format!(
            "{}: {} layer(s) fetched and unpacked once, same digest {}",
            store.root().display(),
            pulled.layers.iter().filter(|l| l.unpacked).count(),
            pulled.manifest.digest()
        ),
    );

    // 5. A container's bundle from the store: an overlay root filesystem over the stored
    // layers (nothing copied) and config.json with the seed's limits.
    let t = Instant::now();
    let convert = ConvertOptions::new()
        .memory_limit(512 << 20)
        .cpu_quota(50_000, 100_000)
        .hostname("quickstart");
    let id = format!("quickstart-{}", std::process::id());
    let name = pulled
        .name
        .as_ref()
        .map(ToString::to_string)
        .ok_or("no name")?;
    let bundle = store.create_bundle(&name, &id, &convert, &RootfsOptions::new())?;
    step(
        5,
        "rootfs",
        t,
        format!(
            "{}: overlay of the stored layers, config.json with 512 MiB and 0.5 CPU",
            bundle.display()
        ),
    );

    // 6. Run, then remove the container's root filesystem with what it wrote.
    let t = Instant::now();
    let status = run_bundle(
        &bundle,
        &RunOptions::new().id(&id).state_root(work.join("state")),
    )
    .map(|out| out.status);
    std::fs::copy(bundle.join("config.json"), work.join("config.json"))?;
    let removed = store.remove_container(&id);
    let status = status?;
    removed?;
    step(6, "run", t, format!("exited with {}", status.code()));
    registry.stop();
    Ok(status.code())
}

fn main() -> ExitCode {
    // The runtime re-executes this program as the container's init.
    ocikit::init_if_requested();
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
            eprintln!("quickstart: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
