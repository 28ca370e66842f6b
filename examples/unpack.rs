//! Unpacks an image into a runtime bundle, as `umoci unpack` does: the layers go to
//! `BUNDLE/rootfs`, each verified as it streams (its digest, then its diff_id), and the
//! image's configuration becomes `BUNDLE/config.json`, so that `runc run -b BUNDLE ID` (or
//! `oci-runtime run`) runs it.
//!
//! ```text
//! cargo run --example unpack -- SRC BUNDLE
//! ```
//!
//! SRC is a location (`oci:DIR:TAG`, `oci-archive:FILE`, `docker-archive:FILE`,
//! `docker://REF`). BUNDLE may exist, but without a `config.json` or a non-empty `rootfs`; a
//! failed unpack leaves it as it was. An image with neither `Entrypoint` nor `Cmd` runs
//! `sh`. The `ocikit unpack` command does the same with umoci's flags (`--rootless`,
//! `--no-terminal`, `--platform`) and unpacks as an unprivileged user too.

use std::process::ExitCode;

use ocikit::convert::ConvertOptions;
use ocikit::copy::{Location, open_source};
use ocikit::image::host_platform;
use ocikit::unpack::{UnpackOptions, unpack_bundle};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, bundle] = args.as_slice() else {
        return Err("usage: unpack SRC BUNDLE".into());
    };
    let source = open_source(&src.parse::<Location>()?, &host_platform())?;
    let options =
        UnpackOptions::new().convert(ConvertOptions::new().default_args(vec!["sh".into()]));
    let made = unpack_bundle(source.source(), &source.image()?, bundle.as_ref(), &options)?;
    for (layer, applied) in &made.unpacked.layers {
        println!(
            "layer {} -> diff_id {} ({} entries, {} whiteouts)",
            layer.digest(),
            applied.diff_id,
            applied.entries,
            applied.whiteouts
        );
    }
    let digest = made.unpacked.manifest.digest();
    println!("unpacked {digest} into {bundle}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unpack: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
