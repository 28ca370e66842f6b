//! Unpacks an image into a runtime bundle, like `umoci unpack --image SRC BUNDLE`: the layers
//! go to `BUNDLE/rootfs`, each verified twice as it streams (compressed digest, then
//! diff_id), and the image configuration becomes `BUNDLE/config.json`, so that
//! `runc run -b BUNDLE ID` (or `oci-runtime run`) runs it.
//!
//! ```text
//! cargo run --release --example unpack -- SRC BUNDLE [--rootless] [--no-terminal] [--platform OS/ARCH[/VARIANT]]
//! ```
//!
//! SRC is any location the `copy` recipe takes (`oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]`,
//! `docker-archive:FILE[:REPO:TAG]`, `docker://REF`). `BUNDLE` may exist, but without a
//! `config.json` or a non-empty `rootfs`. `--rootless` writes a configuration an
//! unprivileged user can run (a user namespace mapping the caller to root and its
//! subordinate ranges to ids 1 and up), as `umoci unpack --rootless` does. Run by a user
//! with `/etc/subuid` and `/etc/subgid` ranges, the unpack happens in a user namespace of
//! those ids, so files keep the image's owners as that configuration's container sees them. Like umoci's (and `runc spec`'s), the configuration gives
//! the process a terminal, which runc opens from its caller's; `--no-terminal` writes one
//! that runs from scripts and pipes (and with `runc run -d`). An image with neither `Entrypoint` nor `Cmd` gets `sh`, as
//! with umoci. A failed unpack removes what it wrote and leaves `BUNDLE` as it was.

use std::process::ExitCode;

use ocikit::convert::ConvertOptions;
use ocikit::copy::{Location, open_source};
use ocikit::image::{host_platform, parse_platform, platform_to_string};
use ocikit::unpack::{UnpackOptions, unpack_bundle};

const USAGE: &str =
    "usage: unpack SRC BUNDLE [--rootless] [--no-terminal] [--platform OS/ARCH[/VARIANT]]";

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut platform = host_platform();
    let mut rootless = false;
    let mut terminal = true;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--platform" => {
                platform = parse_platform(&args.next().ok_or("--platform needs a value")?)?
            }
            "--rootless" => rootless = true,
            "--no-terminal" => terminal = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(arg),
        }
    }
    let [src, bundle] = positional.as_slice() else {
        return Err(USAGE.into());
    };
    let location: Location = src.parse()?;
    let source = open_source(&location, &platform)?;
    let bundle = std::path::Path::new(bundle);
    let started = std::time::Instant::now();
    let made = unpack_bundle(
        source.source(),
        &source.image()?,
        bundle,
        &UnpackOptions::new().convert(
            ConvertOptions::new()
                .rootless(rootless)
                .terminal(terminal)
                .default_args(vec!["sh".into()]),
        ),
    )?;
    let report = &made.unpacked;
    for (layer, applied) in &report.layers {
        println!(
            "layer {} {:>12} bytes -> diff_id {} ({} entries, {} files, {} whiteouts)",
            layer.digest(),
            layer.size(),
            applied.diff_id,
            applied.entries,
            applied.files,
            applied.whiteouts
        );
    }
    println!(
        "unpacked {} ({}, {} layers) into {} in {:.2?}",
        report.manifest.digest(),
        platform_to_string(&report.config.platform()),
        report.layers.len(),
        bundle.display(),
        started.elapsed()
    );
    Ok(())
}

fn main() -> ExitCode {
    // The id mapper of enter_user_namespace is a re-execution of this program.
    ocikit::runtime::init_if_requested();
    // Unprivileged: root in a user namespace of this user's ids (itself, then its
    // /etc/subuid and /etc/subgid ranges), as podman does, so that layers keep their owners
    // and overlay mounts can be made. Before any thread starts.
    if let Err(e) = ocikit::runtime::enter_user_namespace() {
        eprintln!("unpack: {e}");
        return ExitCode::from(1);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unpack: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
