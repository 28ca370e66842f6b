//! Builds one image per platform from the same tree, joins them in an index, stores it, and
//! pulls each platform back, like `docker buildx build --platform linux/amd64,linux/arm64`
//! followed by one pull per platform.
//!
//! ```text
//! cargo run --example multiarch -- DIR DST
//! ```
//!
//! DST is a location (`docker://HOST/NAME:TAG`, `oci:DIR:TAG`). (The tree is the same for
//! both platforms: a real multi-platform build puts each platform's binaries in its own tree.)

use std::process::ExitCode;

use ocikit::build::{BuildSpec, build_image, build_index};
use ocikit::copy::{CopyOptions, Location, copy, open_destination};
use ocikit::image::{AnyManifest, parse_platform, platform_to_string};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, dst] = args.as_slice() else {
        return Err("usage: multiarch DIR DST".into());
    };
    let location: Location = dst.parse()?;
    let destination = open_destination(&location)?;
    let platforms = [
        parse_platform("linux/amd64")?,
        parse_platform("linux/arm64")?,
    ];
    let mut images = Vec::new();
    for p in &platforms {
        let spec = BuildSpec::new().layer(dir).platform(p.clone());
        let built = build_image(None, destination.destination(), None, &spec)?;
        let mut d = built.manifest.descriptor();
        d.set_platform(Some(p.clone()));
        println!("built {} for {}", d.digest(), platform_to_string(p));
        images.push(d);
    }
    let index = build_index(destination.destination(), &images, None)?;
    destination.name(&AnyManifest::Index(index.clone()))?;
    destination.finish()?;
    println!("index {} at {dst}", index.digest());
    // Pull each platform back, as a client on that platform would.
    let pulled = tempfile::tempdir()?;
    for (p, d) in platforms.iter().zip(&images) {
        let to = format!("oci:{}:pulled", pulled.path().display()).parse()?;
        let report = copy(&location, &to, &CopyOptions::new().platform(p.clone()))?;
        if report.top.digest() != d.digest() {
            return Err(format!("{} came back as {}", d.digest(), report.top.digest()).into());
        }
        println!(
            "pulled {} for {}: same digest",
            d.digest(),
            platform_to_string(p)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("multiarch: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
