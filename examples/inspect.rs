//! Inspects an image in a registry without pulling its layers, like `skopeo inspect`.
//!
//! ```text
//! cargo run --release --example inspect -- [docker://]REF [--raw | --config] [--platform P] [--plain-http]
//! ```
//!
//! Without options it prints JSON: name, digest, tags, created, architecture, os, layers,
//! environment and labels of the image for the platform (the host's by default). `--raw`
//! prints the manifest (or index) bytes exactly as the registry stores them; `--config` the
//! configuration blob of the image for the platform. Credentials come from the docker and
//! containers auth files; loopback registries are reached over plain HTTP, other hosts only
//! with `--plain-http`.

use std::io::Write;
use std::process::ExitCode;

use ocikit::distribution::{Client, Reference};
use ocikit::image::{AnyManifest, ImageSource, host_platform, parse_platform, select_manifest};
use ocikit::oci_spec::image::Platform;

const USAGE: &str = "usage: inspect [docker://]REF [--raw | --config] [--platform OS/ARCH[/VARIANT]] [--plain-http]";

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn js_list<'a>(items: impl IntoIterator<Item = &'a str>, indent: &str) -> String {
    let items: Vec<String> = items.into_iter().map(js).collect();
    if items.is_empty() {
        return "[]".into();
    }
    format!(
        "[\n{indent}    {}\n{indent}]",
        items.join(&format!(",\n{indent}    "))
    )
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut reference = None;
    let (mut raw, mut config, mut plain) = (false, false, false);
    let mut platform: Option<Platform> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--raw" => raw = true,
            "--config" => config = true,
            "--plain-http" => plain = true,
            "--platform" => {
                platform = Some(parse_platform(
                    &args.next().ok_or("--platform needs a value")?,
                )?)
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if arg.starts_with("--") => {
                return Err(format!("unknown option {arg}\n{USAGE}").into());
            }
            _ if reference.is_none() => reference = Some(arg),
            _ => return Err(USAGE.into()),
        }
    }
    if raw && config {
        return Err("--raw and --config exclude each other".into());
    }
    let text = reference.ok_or(USAGE)?;
    let reference: Reference = text.strip_prefix("docker://").unwrap_or(&text).parse()?;
    let mut builder = Client::builder();
    if plain {
        builder = builder.plain_http(reference.registry_host());
    }
    let client = builder.build()?;
    let repo = client.repository(&reference);
    let out = std::io::stdout();
    let mut out = out.lock();

    let top = repo.get_manifest_raw(reference.target())?;
    if raw {
        out.write_all(&top.bytes)?;
        return Ok(());
    }
    let platform = platform.unwrap_or_else(host_platform);
    let manifest =
        match AnyManifest::from_bytes(top.bytes.clone(), Some(top.descriptor.media_type()))? {
            AnyManifest::Manifest(m) => m,
            AnyManifest::Index(index) => {
                let child = select_manifest(&index, &platform)?.clone();
                match repo.fetch_manifest(&child)? {
                    AnyManifest::Manifest(m) => m,
                    AnyManifest::Index(_) => return Err("nested indexes are not inspected".into()),
                }
            }
        };
    let cfg = repo.fetch_config(&manifest)?;
    if config {
        out.write_all(cfg.raw())?;
        return Ok(());
    }
    let tags = repo.tags(None).unwrap_or_default();
    let env = cfg
        .config()
        .as_ref()
        .and_then(|c| c.env().clone())
        .unwrap_or_default();
    let labels = cfg
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default();
    let mut labels: Vec<_> = labels.into_iter().collect();
    labels.sort();
    let layers: Vec<String> = manifest
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    let layers_data: Vec<String> = manifest
        .layers()
        .iter()
        .map(|l| {
            format!(
                "{{\n            \"MIMEType\": {},\n            \"Digest\": {},\n            \"Size\": {}\n        }}",
                js(l.media_type().as_ref()),
                js(l.digest().as_ref()),
                l.size()
            )
        })
        .collect();
    let mut fields = vec![
        format!(
            "\"Name\": {}",
            js(&format!(
                "{}/{}",
                reference.registry(),
                reference.repository()
            ))
        ),
        format!("\"Digest\": {}", js(top.descriptor.digest().as_ref())),
        format!("\"ManifestDigest\": {}", js(manifest.digest().as_ref())),
        format!(
            "\"RepoTags\": {}",
            js_list(tags.iter().map(String::as_str), "    ")
        ),
        format!(
            "\"Created\": {}",
            cfg.created().as_deref().map(js).unwrap_or("null".into())
        ),
        format!("\"Architecture\": {}", js(&cfg.architecture().to_string())),
        format!("\"Os\": {}", js(&cfg.os().to_string())),
    ];
    if let Some(v) = cfg.variant() {
        fields.push(format!("\"Variant\": {}", js(v)));
    }
    fields.push(format!(
        "\"Labels\": {{{}}}",
        labels
            .iter()
            .map(|(k, v)| format!("{}: {}", js(k), js(v)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    fields.push(format!(
        "\"Layers\": {}",
        js_list(layers.iter().map(String::as_str), "    ")
    ));
    fields.push(format!(
        "\"LayersData\": [{}]",
        if layers_data.is_empty() {
            String::new()
        } else {
            format!("\n        {}\n    ", layers_data.join(",\n        "))
        }
    ));
    fields.push(format!(
        "\"Env\": {}",
        js_list(env.iter().map(String::as_str), "    ")
    ));
    writeln!(out, "{{\n    {}\n}}", fields.join(",\n    "))?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inspect: {e}");
            ExitCode::FAILURE
        }
    }
}
