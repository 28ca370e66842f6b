//! The tour, on one machine without network: build an image of a static busybox, push it
//! to an embedded registry, pull it into an image store (each layer stored and unpacked
//! once), and run a container of it on an overlay of the stored layers, with limits.
//!
//! ```text
//! bash scripts/quickstart.sh                  # installs busybox-static, runs this as root
//! cargo run --example quickstart -- [WORKDIR] # default: a temporary directory
//! ```

use std::path::Path;
use std::process::ExitCode;

use ocikit::build::{BuildSpec, build_image};
use ocikit::convert::ConvertOptions;
use ocikit::copy::{CopyOptions, push};
use ocikit::distribution::RegistryServer;
use ocikit::run::{RunOptions, run_bundle};
use ocikit::store::{PullOptions, RootfsOptions, Store};

fn tour(work: &Path) -> Result<i32, Box<dyn std::error::Error>> {
    // 1. Build one layer (busybox and some of its applets) from scratch into a layout.
    let userland = work.join("userland");
    let bin = userland.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy("/bin/busybox", bin.join("busybox")).map_err(|e| format!("/bin/busybox: {e}"))?;
    for applet in ["sh", "echo", "hostname", "id"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    let script = "echo hello from a container; echo \"hostname $(hostname), pid $$, $(id)\"";
    let entrypoint = vec!["/bin/sh".into(), "-c".into(), script.into()];
    let spec = BuildSpec::new().layer(&userland).entrypoint(entrypoint);
    let layout = ocikit::layout::Layout::create(work.join("built"))?;
    let built = build_image(None, &layout, Some(&"latest".parse()?), &spec)?;
    println!("[1/5] build   {}", built.manifest.digest());

    // 2. Push it to an embedded registry on a loopback port.
    let registry = RegistryServer::new(work.join("registry")).bind("127.0.0.1:0")?;
    let reference = format!("{}/quickstart/busybox:latest", registry.addr());
    let from = format!("oci:{}:latest", layout.root().display()).parse()?;
    let pushed = push(&from, &reference, &CopyOptions::new())?;
    println!("[2/5] push    {reference}: {} bytes", pushed.bytes_copied());

    // 3. Pull into an image store: each layer fetched, verified, stored and unpacked once.
    let store = Store::open(work.join("store"))?;
    let source = format!("docker://{reference}").parse()?;
    let pulled = store.pull(&source, &PullOptions::new())?;
    println!("[3/5] pull    {} into the store", pulled.manifest.digest());

    // 4. A container: an overlay of the stored layers (nothing copied) and a config.json.
    let limits = ConvertOptions::new()
        .memory_limit(512 << 20)
        .cpu_quota(50_000, 100_000)
        .hostname("quickstart");
    let id = &format!("quickstart-{}", std::process::id());
    let name = pulled.name.ok_or("no name")?.to_string();
    let bundle = store.create_bundle(&name, id, &limits, &RootfsOptions::new())?;
    std::fs::copy(bundle.join("config.json"), work.join("config.json"))?;
    println!("[4/5] rootfs  {}, 512 MiB, 0.5 CPU", bundle.display());

    // 5. Run it, then remove the container (its root filesystem, with what it wrote).
    let options = RunOptions::new().id(id).state_root(work.join("state"));
    let ran = run_bundle(&bundle, &options);
    store.remove_container(id)?;
    let code = ran?.status.code();
    println!("[5/5] run     exited with {code}");
    Ok(code)
}

fn main() -> ExitCode {
    // The runtime re-executes this program as the container's init.
    ocikit::init_if_requested();
    let temporary = tempfile::tempdir().expect("a temporary directory");
    let work = std::env::args().nth(1);
    match tour(work.as_ref().map_or(temporary.path(), Path::new)) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("quickstart: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
