//! OCI artifacts, like `oras`: push any file, attach one to an image as a referrer (an SBOM),
//! list an image's referrers, fetch an artifact's file.
//!
//! ```text
//! cargo run --release --example artifact -- push FILE DST --type TYPE [--media-type M]
//! cargo run --release --example artifact -- attach SUBJECT FILE --type TYPE [--media-type M]
//! cargo run --release --example artifact -- list SUBJECT [--type TYPE]
//! cargo run --release --example artifact -- fetch SRC DIR
//! ```
//!
//! DST, SUBJECT and SRC are `docker://` references (`list` needs a registry; the others take
//! any location the `copy` recipe takes). `attach` stores the artifact next to the subject,
//! by digest, naming the subject; registries without the referrers API (docker-registry 2.8)
//! get the referrers tag as well.

use std::collections::HashMap;
use std::process::ExitCode;

use ocikit::artifact::push_artifact;
use ocikit::copy::{Location, open_destination, open_source};
use ocikit::image::oci_spec::image::ANNOTATION_TITLE;
use ocikit::image::{AnyManifest, host_platform};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let command = args
        .next()
        .ok_or("usage: artifact push|attach|list|fetch ...")?;
    let (mut positional, mut artifact_type, mut media_type) = (Vec::new(), None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--type" => artifact_type = Some(args.next().ok_or("--type needs a value")?),
            "--media-type" => media_type = Some(args.next().ok_or("--media-type needs a value")?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}").into()),
            _ => positional.push(arg),
        }
    }
    let media = |t: &str| media_type.clone().unwrap_or_else(|| format!("{t}.layer"));
    match (command.as_str(), positional.as_slice()) {
        ("push", [file, dst]) => {
            let t = artifact_type.ok_or("push needs --type")?;
            let destination = open_destination(&dst.parse::<Location>()?)?;
            let m = push_artifact(destination.destination(), file.as_ref(), &t, &media(&t),
                None, &HashMap::new(), None)?;
            destination.name(&AnyManifest::Manifest(m.clone()))?;
            destination.finish()?;
            println!("pushed {} ({t}) to {dst}", m.digest());
        }
        ("attach", [subject, file]) => {
            let t = artifact_type.ok_or("attach needs --type")?;
            let location: Location = subject.parse()?;
            let source = open_source(&location, &host_platform())?;
            let repo = source.repository().ok_or("attach needs a docker:// subject")?;
            let m = push_artifact(repo, file.as_ref(), &t, &media(&t), Some(source.top()),
                &HashMap::new(), None)?;
            println!("attached {} ({t}) to {}", m.digest(), source.top().digest());
        }
        ("list", [subject]) => {
            let source = open_source(&subject.parse::<Location>()?, &host_platform())?;
            let repo = source.repository().ok_or("list needs a docker:// subject")?;
            for d in repo.referrers(source.top().digest(), artifact_type.as_deref())? {
                let t = d.artifact_type().as_ref().map(ToString::to_string).unwrap_or_default();
                println!("{} {} {}", d.digest(), d.size(), t);
            }
        }
        ("fetch", [src, dir]) => {
            let source = open_source(&src.parse::<Location>()?, &host_platform())?;
            let AnyManifest::Manifest(m) = source.top_manifest()? else {
                return Err("an artifact is a manifest, not an index".into());
            };
            std::fs::create_dir_all(dir)?;
            for (i, layer) in m.layers().iter().enumerate() {
                let name = layer
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_TITLE))
                    .filter(|n| !n.contains('/') && *n != ".." && *n != ".")
                    .cloned()
                    .unwrap_or_else(|| format!("blob-{i}"));
                let path = std::path::Path::new(dir).join(&name);
                let mut out = std::fs::File::create(&path)?;
                let mut blob = source.source().open_blob(layer)?;
                std::io::copy(&mut blob, &mut out)?;
                println!("fetched {} to {}", layer.digest(), path.display());
            }
        }
        _ => return Err("usage: artifact push FILE DST --type T | attach SUBJECT FILE --type T | list SUBJECT [--type T] | fetch SRC DIR".into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("artifact: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
