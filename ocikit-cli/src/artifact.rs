//! `artifact push|attach|list|fetch`: OCI artifacts (image-spec 1.1 `artifactType`) and
//! the referrers API (distribution-spec 1.1), as `oras` does.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use ocikit::artifact::push_artifact;
use ocikit::copy::{open_destination_with, open_source_with};
use ocikit::image::oci_spec::image::ANNOTATION_TITLE;
use ocikit::image::{AnyManifest, host_platform};

use crate::failure::Failure;
use crate::registry::{RegistryFlags, location};

/// Artifacts: files stored as OCI manifests, on their own or attached to an image.
#[derive(Args)]
pub(crate) struct ArtifactArgs {
    #[command(subcommand)]
    command: ArtifactCommand,
}

/// What `push` and `attach` store: the file's types and the manifest's annotations.
#[derive(Args)]
struct ArtifactFile {
    /// The artifact type (a media type).
    #[arg(long = "type", value_name = "MEDIA_TYPE")]
    artifact_type: String,
    /// The file's media type (default: TYPE.layer).
    #[arg(long, value_name = "MEDIA_TYPE")]
    media_type: Option<String>,
    /// An annotation of the manifest, KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    annotation: Vec<String>,
    #[command(flatten)]
    registry: RegistryFlags,
}

impl ArtifactFile {
    /// The file's media type: given, else `TYPE.layer`.
    fn media_type(&self) -> String {
        self.media_type
            .clone()
            .unwrap_or_else(|| format!("{}.layer", self.artifact_type))
    }
}

#[derive(Subcommand)]
enum ArtifactCommand {
    /// Store a file as an artifact at a location.
    #[command(after_help = "Example:\n  \
        ocikit artifact push --type application/vnd.example.sbom sbom.json \
        docker://registry.example/app:sbom")]
    Push {
        /// The file.
        file: PathBuf,
        /// Where: any location.
        destination: String,
        #[command(flatten)]
        artifact: ArtifactFile,
    },
    /// Attach a file to an image in a registry (the artifact's subject is the image).
    #[command(after_help = "Example:\n  \
        ocikit artifact attach --type application/vnd.example.sbom \
        docker://registry.example/app:1 sbom.json")]
    Attach {
        /// The image: docker://HOST/NAME:TAG or @DIGEST.
        subject: String,
        /// The file.
        file: PathBuf,
        #[command(flatten)]
        artifact: ArtifactFile,
    },
    /// List what is attached to an image: digest, size, artifact type.
    #[command(after_help = "Example:\n  ocikit artifact list docker://registry.example/app:1")]
    List {
        /// The image: docker://HOST/NAME:TAG or @DIGEST.
        subject: String,
        /// Only artifacts of this type.
        #[arg(long = "type", value_name = "MEDIA_TYPE")]
        artifact_type: Option<String>,
        #[command(flatten)]
        registry: RegistryFlags,
    },
    /// Write an artifact's files into a directory, each verified against its digest.
    #[command(after_help = "Example:\n  \
        ocikit artifact fetch docker://registry.example/app@sha256:... out/")]
    Fetch {
        /// The artifact: any location.
        source: String,
        /// The directory.
        directory: PathBuf,
        #[command(flatten)]
        registry: RegistryFlags,
    },
}

fn annotations(list: &[String]) -> Result<HashMap<String, String>, Failure> {
    list.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| Failure::Usage(format!("--annotation {kv:?}: expected KEY=VALUE")))
        })
        .collect()
}

pub(crate) fn artifact(a: ArtifactArgs) -> Result<ExitCode, Failure> {
    match a.command {
        ArtifactCommand::Push {
            file,
            destination,
            artifact: a,
        } => {
            let dest = open_destination_with(&location(&destination)?, &a.registry.context())?;
            let m = push_artifact(
                dest.destination(),
                &file,
                &a.artifact_type,
                &a.media_type(),
                None,
                &annotations(&a.annotation)?,
                None,
            )?;
            dest.name(&AnyManifest::Manifest(m.clone()))?;
            dest.finish()?;
            println!("{}", m.digest());
        }
        ArtifactCommand::Attach {
            subject,
            file,
            artifact: a,
        } => {
            let source = open_source_with(
                &location(&subject)?,
                &host_platform(),
                &a.registry.context(),
            )?;
            let repo = source.repository().ok_or_else(|| {
                Failure::Usage(format!("attach needs a registry image, not {subject}"))
            })?;
            let m = push_artifact(
                repo,
                &file,
                &a.artifact_type,
                &a.media_type(),
                Some(source.top()),
                &annotations(&a.annotation)?,
                None,
            )?;
            println!("{}", m.digest());
        }
        ArtifactCommand::List {
            subject,
            artifact_type,
            registry,
        } => {
            let source =
                open_source_with(&location(&subject)?, &host_platform(), &registry.context())?;
            let repo = source.repository().ok_or_else(|| {
                Failure::Usage(format!("list needs a registry image, not {subject}"))
            })?;
            for d in repo.referrers(source.top().digest(), artifact_type.as_deref())? {
                let t = d
                    .artifact_type()
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                println!("{} {} {t}", d.digest(), d.size());
            }
        }
        ArtifactCommand::Fetch {
            source,
            directory,
            registry,
        } => {
            let source =
                open_source_with(&location(&source)?, &host_platform(), &registry.context())?;
            let AnyManifest::Manifest(m) = source.top_manifest()? else {
                return Err(Failure::msg("an artifact is a manifest, not an index"));
            };
            std::fs::create_dir_all(&directory)
                .map_err(|e| Failure::io(format!("creating {}", directory.display()), e))?;
            for (i, layer) in m.layers().iter().enumerate() {
                // The title names the file, when it is a plain name (never a path).
                let name = layer
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_TITLE))
                    .filter(|n| !n.is_empty() && !n.contains('/') && *n != ".." && *n != ".")
                    .cloned()
                    .unwrap_or_else(|| format!("blob-{i}"));
                let path = directory.join(&name);
                let mut blob = source.source().open_blob(layer)?;
                write_verified(&path, &mut blob)?;
                println!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `data` to `path` through a temporary file renamed into place once the whole
/// stream was read (and so verified): a failed fetch leaves no partial file.
fn write_verified(path: &Path, data: &mut dyn std::io::Read) -> Result<(), Failure> {
    let tmp = path.with_extension("ocikit-partial");
    let result = (|| {
        let mut out = std::fs::File::create(&tmp)?;
        std::io::copy(data, &mut out)?;
        out.flush()?;
        out.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Failure::io(format!("writing {}", path.display()), e)
    })
}
