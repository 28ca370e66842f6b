//! `sync`: every image of a repository, a layout or a YAML list, between registries and
//! directories (skopeo sync). Directories hold one OCI image layout per repository, the tags
//! as reference names, where skopeo writes its `dir:` format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use ocikit::SystemContext;
use ocikit::copy::{CopyOptions, Location, copy};
use ocikit::distribution::Credentials;
use ocikit::layout::Layout;

use crate::Globals;
use crate::failure::Failure;
use crate::registry::{SrcDestFlags, TrustFlags};

/// Copy every image of a source to a destination: a registry repository (all its tags, or
/// the one named), an OCI layout, or a YAML list of images as skopeo's.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit sync --src docker --dest oci registry.example/team/app /media/usb\n  \
    ocikit sync --src oci --dest docker /media/usb/app mirror.example:5000/team\n  \
    ocikit sync --src yaml --dest docker images.yaml mirror.example:5000\n\n\
    Images go to DESTINATION/NAME:TAG, NAME being the last part of the source repository \
    (with --scoped, the whole source reference). A YAML source is skopeo's format: per \
    registry, `images` (a list of tags per repository; empty for all), \
    `images-by-tag-regex`, `credentials`, `tls-verify`, `cert-dir`.")]
pub(crate) struct SyncArgs {
    /// The source: HOST/REPOSITORY[:TAG], a layout directory, or a YAML file.
    source: String,
    /// The destination: HOST[/PATH] of a registry, or a directory.
    destination: String,
    /// What the source is: docker, oci or yaml.
    #[arg(long, value_parser = ["docker", "oci", "yaml"])]
    src: String,
    /// What the destination is: docker or oci.
    #[arg(long, value_parser = ["docker", "oci"])]
    dest: String,
    /// Name images at the destination by their whole source reference (host included).
    #[arg(long)]
    scoped: bool,
    /// Copy every image of multi-platform indexes.
    #[arg(short, long)]
    all: bool,
    #[command(flatten)]
    sides: SrcDestFlags,
    #[command(flatten)]
    trust: TrustFlags,
}

/// One registry's entry of skopeo's YAML source.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct YamlRegistry {
    #[serde(default)]
    images: BTreeMap<String, Vec<String>>,
    #[serde(default, rename = "images-by-tag-regex")]
    images_by_tag_regex: BTreeMap<String, String>,
    #[serde(default)]
    credentials: Option<YamlCredentials>,
    #[serde(default, rename = "tls-verify")]
    tls_verify: Option<bool>,
    #[serde(default, rename = "cert-dir")]
    cert_dir: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlCredentials {
    username: String,
    password: String,
}

/// An image to copy: its source, the context to reach it, and its name at the destination
/// (`NAME:TAG`).
struct Item {
    source: Location,
    context: SystemContext,
    name: String,
    tag: String,
}

/// `host/a/b` → `b`, or all of it with `--scoped`.
fn dest_name(repository: &str, scoped: bool) -> String {
    if scoped {
        repository.to_owned()
    } else {
        repository
            .rsplit('/')
            .next()
            .unwrap_or(repository)
            .to_owned()
    }
}

/// Every tag of `repository` (`HOST/NAME`), or the one given.
fn registry_items(
    reference: &str,
    context: &SystemContext,
    scoped: bool,
    filter: &dyn Fn(&str) -> bool,
) -> Result<Vec<Item>, Failure> {
    let (repo, r) = context.push_repository(reference)?;
    let full = format!("{}/{}", repo.registry(), repo.name());
    let tags = match (r.tag(), r.digest()) {
        (Some(t), _) if reference_has_tag(reference) => vec![t.to_string()],
        (_, Some(d)) => {
            return Ok(vec![Item {
                source: Location::Docker {
                    reference: format!("{full}@{d}"),
                },
                context: context.clone(),
                name: dest_name(&full, scoped),
                // A digest has no tag: skopeo names the copy by the digest's hex.
                tag: d.digest().to_owned(),
            }]);
        }
        _ => repo
            .tags(None)?
            .into_iter()
            .map(|t| t.to_string())
            .filter(|t| filter(t))
            .collect(),
    };
    Ok(tags
        .into_iter()
        .map(|tag| Item {
            source: Location::Docker {
                reference: format!("{full}:{tag}"),
            },
            context: context.clone(),
            name: dest_name(&full, scoped),
            tag,
        })
        .collect())
}

/// Whether the text names a tag (a `:` after the last `/`).
fn reference_has_tag(reference: &str) -> bool {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.contains(':') && !reference.contains('@')
}

fn yaml_items(path: &Path, scoped: bool, authfile: Option<&PathBuf>) -> Result<Vec<Item>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::io(format!("reading {}", path.display()), e))?;
    let registries: BTreeMap<String, YamlRegistry> = serde_norway::from_str(&text)
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    let mut items = Vec::new();
    for (registry, entry) in registries {
        let mut context = crate::registry::context(
            SystemContext::new(),
            None,
            authfile,
            entry.tls_verify,
            entry.cert_dir.as_ref(),
            None,
        );
        if let Some(c) = &entry.credentials {
            context = context.credentials(Credentials::new(&c.username, &c.password));
        }
        for (name, tags) in &entry.images {
            let repository = format!("{registry}/{name}");
            if tags.is_empty() {
                items.extend(registry_items(&repository, &context, scoped, &|_| true)?);
            }
            for tag in tags {
                let sep = if tag.starts_with("sha256:") { "@" } else { ":" };
                items.extend(registry_items(
                    &format!("{repository}{sep}{tag}"),
                    &context,
                    scoped,
                    &|_| true,
                )?);
            }
        }
        for (name, pattern) in &entry.images_by_tag_regex {
            let re = regex::Regex::new(pattern).map_err(|e| {
                Failure::Usage(format!(
                    "{}: images-by-tag-regex of {registry}/{name}: {e}",
                    path.display()
                ))
            })?;
            items.extend(registry_items(
                &format!("{registry}/{name}"),
                &context,
                scoped,
                &|t| re.is_match(t),
            )?);
        }
    }
    Ok(items)
}

fn layout_items(dir: &Path, scoped: bool) -> Result<Vec<Item>, Failure> {
    let layout = Layout::open(dir)?;
    let name = if scoped {
        dir.display().to_string().trim_start_matches('/').to_owned()
    } else {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Failure::Usage(format!("{}: no directory name", dir.display())))?
    };
    let mut seen = std::collections::BTreeSet::new();
    Ok(layout
        .refs()?
        .into_iter()
        .filter(|(r, _)| seen.insert(r.to_string()))
        .map(|(r, _)| Item {
            source: Location::Oci {
                dir: dir.to_owned(),
                name: Some(r.to_string()),
            },
            context: SystemContext::new(),
            name: name.clone(),
            tag: r.to_string(),
        })
        .collect())
}

pub(crate) fn sync(a: SyncArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    let src_context = a.sides.source_context();
    let dest_context = a.sides.destination_context();
    let items = match a.src.as_str() {
        "docker" => registry_items(&a.source, &src_context, a.scoped, &|_| true)?,
        "oci" => layout_items(Path::new(&a.source), a.scoped)?,
        _ => yaml_items(Path::new(&a.source), a.scoped, a.sides.source_authfile())?,
    };
    if items.is_empty() {
        return Err(Failure::NotFound(format!("{}: no image to copy", a.source)));
    }
    let destination = a.destination.trim_end_matches('/');
    for item in &items {
        let dst = match a.dest.as_str() {
            "docker" => Location::Docker {
                reference: format!("{destination}/{}:{}", item.name, item.tag),
            },
            _ => Location::Oci {
                dir: Path::new(destination).join(&item.name),
                name: Some(item.tag.clone()),
            },
        };
        let options = CopyOptions::new()
            .all(a.all)
            .source_context(item.context.clone())
            .destination_context(dest_context.clone())
            .trust(a.trust.options());
        copy(&item.source, &dst, &options)?;
        if !globals.quiet {
            eprintln!("Copied {} to {dst}", item.source);
        }
    }
    if !globals.quiet {
        eprintln!("Synced {} images", items.len());
    }
    Ok(ExitCode::SUCCESS)
}
