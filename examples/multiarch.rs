//! Builds one image per platform from the same tree, joins them in an index, stores it, and
//! pulls each platform back, like `docker buildx build --platform linux/amd64,linux/arm64`
//! followed by `crane index` and one pull per platform.
//!
//! ```text
//! cargo run --release --example multiarch -- --layer DIR DST [--platform P ...]
//! ```
//!
//! DST is any location the `copy` recipe takes (`docker://HOST/NAME:TAG`, `oci:DIR:NAME`);
//! the platforms default to linux/amd64 and linux/arm64. (The tree is the same for every
//! platform: a real multi-platform build puts each platform's binaries in its own tree.)

use std::process::ExitCode;

use ocikit::build::{BuildSpec, build_image, build_index};
use ocikit::copy::{CopyOptions, Location, copy, open_destination};
use ocikit::image::{AnyManifest, parse_platform, platform_to_string};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut layer, mut dst, mut platforms) = (None, None, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--layer" => layer = Some(args.next().ok_or("--layer needs a value")?),
            "--platform" => platforms.push(parse_platform(
                &args.next().ok_or("--platform needs a value")?,
            )?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => dst = Some(arg),
        }
    }
    let (Some(layer), Some(dst)) = (layer, dst) else {
        return Err("usage: multiarch --layer DIR DST [--platform P ...]".into());
    };
    if platforms.is_empty() {
        platforms = vec![
            parse_platform("linux/amd64")?,
            parse_platform("linux/arm64")?,
        ];
    }
    let location: Location = dst.parse()?;
    let destination = open_destination(&location)?;
    let mut images = Vec::new();
    for p in &platforms {
        let spec = BuildSpec::new().layer(&layer).platform(p.clone());
        let built = build_image(None, destination.destination(), None, &spec)?;
        let mut d = built.manifest.descriptor();
        d.set_platform(Some(p.clone()));
        println!("built {} for {}", d.digest(), platform_to_string(p));
        images.push(d);
    }
    let index = build_index(destination.destination(), &images, None)?;
    destination.name(&AnyManifest::Index(index.clone()))?;
    destination.finish()?;
    println!(
        "index {} with {} images at {dst}",
        index.digest(),
        images.len()
    );
    // Pull each platform back, as a client on that platform would.
    for (p, d) in platforms.iter().zip(&images) {
        let out = std::env::temp_dir().join(format!(
            "ocikit-multiarch-{}-{}",
            std::process::id(),
            platform_to_string(p).replace('/', "-")
        ));
        let report = copy(
            &location,
            &format!("oci:{}:pulled", out.display()).parse()?,
            &CopyOptions::new().platform(p.clone()),
        )?;
        let ok = report.top.digest() == d.digest();
        println!(
            "pulled {} for {}: {}",
            report.top.digest(),
            platform_to_string(p),
            if ok {
                "same digest"
            } else {
                "DIFFERENT digest"
            }
        );
        let _ = std::fs::remove_dir_all(&out);
        if !ok {
            return Err("a platform came back with another manifest".into());
        }
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
