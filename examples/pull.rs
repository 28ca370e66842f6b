//! Pulls an image into the image store, like `podman pull`: each layer fetched once, verified,
//! and unpacked once into its snapshot as it is stored; layers the store has are skipped.
//!
//! ```text
//! cargo run --release --example pull -- SRC [--store DIR] [--name NAME] [--platform P]
//! ```
//!
//! SRC is any location the `copy` recipe takes (`docker://REF`, `oci:DIR[:NAME]`, archives).
//! The store is root's `/var/lib/ocikit` (another user's `~/.local/share/ocikit`) unless
//! `--store` names one; `skopeo inspect oci:STORE/layout:NAME` reads what it holds.

use std::process::ExitCode;

use ocikit::copy::Location;
use ocikit::image::parse_platform;
use ocikit::store::{PullOptions, Store};

const USAGE: &str = "usage: pull SRC [--store DIR] [--name NAME] [--platform OS/ARCH[/VARIANT]]";

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut src = None;
    let mut store = Store::default_root();
    let mut options = PullOptions::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--store" => store = value()?.into(),
            "--name" => options = options.name(value()?.parse()?),
            "--platform" => options = options.platform(parse_platform(&value()?)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ if src.is_none() => src = Some(arg),
            _ => return Err(USAGE.into()),
        }
    }
    let src: Location = src.ok_or(USAGE)?.parse()?;
    let store = Store::open(store)?;
    let started = std::time::Instant::now();
    let pulled = store.pull(&src, &options)?;
    for layer in &pulled.layers {
        let what = match (layer.fetched, layer.unpacked) {
            (true, true) => "fetched and unpacked",
            (true, false) => "fetched (already unpacked)",
            (false, true) => "unpacked (blob already stored)",
            (false, false) => "already stored",
        };
        println!(
            "layer {} {:>12} bytes: {what}",
            layer.descriptor.digest(),
            layer.descriptor.size()
        );
    }
    println!(
        "pulled {} as {} into {} in {:.2?}",
        pulled.manifest.digest(),
        pulled
            .name
            .as_ref()
            .map_or_else(|| "(no name)".to_owned(), ToString::to_string),
        store.root().display(),
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
        eprintln!("pull: {e}");
        return ExitCode::from(1);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pull: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
