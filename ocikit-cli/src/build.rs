//! `build`: an image from directories and diffs on a base (or on nothing), with config
//! edits, as `umoci repack` plus `umoci config`, or a Dockerfile of `FROM`, `COPY`, `ENV`,
//! `WORKDIR`, `USER`, `LABEL`, `ENTRYPOINT` and `CMD`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::{open_destination_with, open_source_with};
use ocikit::image::{AnyManifest, BuildOptions, host_platform, parse_platform};

use crate::Globals;
use crate::failure::Failure;
use crate::registry::{RegistryFlags, location};

/// Build an image: each --layer DIR (or --diff BASE CHANGED) becomes a layer on the base.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit build --from scratch --layer rootfs/ --entrypoint /bin/app oci:/srv/images:app-1\n  \
    ocikit build --from docker://registry.example/base:1 --layer overlay/ --env MODE=prod \
    --cmd serve docker://registry.example/app:2\n\n\
    SOURCE_DATE_EPOCH clamps file times and sets `created`, for reproducible builds.")]
pub(crate) struct BuildArgs {
    /// Where the image goes: any location.
    destination: String,
    /// The base image (any location), or `scratch`.
    #[arg(long, value_name = "IMAGE")]
    from: String,
    /// A directory whose tree becomes a layer (repeat: in order).
    #[arg(long, value_name = "DIR")]
    layer: Vec<PathBuf>,
    /// A layer of what changed from the tree BASE to the tree CHANGED (deletions as
    /// whiteouts), as umoci repack.
    #[arg(long, num_args = 2, value_names = ["BASE", "CHANGED"])]
    diff: Vec<PathBuf>,
    /// The entrypoint; repeat for each argument.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// The default command; repeat for each argument.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// An environment variable, NAME=VALUE.
    #[arg(long, value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// The working directory.
    #[arg(long, value_name = "DIR")]
    workdir: Option<String>,
    /// The user, USER[:GROUP].
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// A label, KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// An annotation of the manifest, KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    annotation: Vec<String>,
    /// The platform, OS/ARCH[/VARIANT] (default: the host's).
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    #[command(flatten)]
    registry: RegistryFlags,
}

fn key_value<'a>(flag: &str, kv: &'a str) -> Result<(&'a str, &'a str), Failure> {
    kv.split_once('=')
        .ok_or_else(|| Failure::Usage(format!("--{flag} {kv:?}: expected KEY=VALUE")))
}

pub(crate) fn build(a: BuildArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    let platform = match &a.platform {
        Some(p) => parse_platform(p)?,
        None => host_platform(),
    };
    let mut spec = BuildSpec::new()
        .layer_options(BuildOptions::new().source_date_epoch_from_env())
        .platform(platform.clone());
    for dir in &a.layer {
        if !dir.is_dir() {
            return Err(Failure::NotFound(format!(
                "--layer {}: not a directory",
                dir.display()
            )));
        }
        spec = spec.layer(dir);
    }
    for pair in a.diff.chunks(2) {
        spec = spec.diff_layer(&pair[0], &pair[1]);
    }
    if !a.entrypoint.is_empty() {
        spec = spec.entrypoint(a.entrypoint.clone());
    }
    if !a.cmd.is_empty() {
        spec = spec.cmd(a.cmd.clone());
    }
    for e in &a.env {
        spec = spec.env(e.clone());
    }
    if let Some(w) = &a.workdir {
        spec = spec.workdir(w.clone());
    }
    if let Some(u) = &a.user {
        spec = spec.user(u.clone());
    }
    for kv in &a.label {
        let (k, v) = key_value("label", kv)?;
        spec = spec.label(k, v);
    }
    for kv in &a.annotation {
        let (k, v) = key_value("annotation", kv)?;
        spec = spec.annotation(k, v);
    }
    let display = crate::progress::Display::new("building", globals.quiet);
    if let Some(d) = &display {
        let d = d.clone();
        spec = spec.progress(move |e: &ocikit::progress::Event<'_>| d.event(e));
    }
    let context = a.registry.context();
    let destination = open_destination_with(&location(&a.destination)?, &context)?;
    let base = match a.from.as_str() {
        "scratch" => None,
        src => Some(open_source_with(&location(src)?, &platform, &context)?),
    };
    let base_ref = base.as_ref().map(|b| b.reference());
    let report = build_image(
        base.as_ref()
            .map(|b| b.source() as &dyn ocikit::image::ImageSource)
            .zip(base_ref.as_ref()),
        destination.destination(),
        None,
        &spec,
    )?;
    destination.name(&AnyManifest::Manifest(report.manifest.clone()))?;
    destination.finish()?;
    if let Some(d) = &display {
        d.finish_all("built");
    }
    if !globals.quiet {
        eprintln!(
            "Built {} layers ({} new)",
            report.manifest.layers().len(),
            report.layers.len()
        );
    }
    println!("{}", report.manifest.digest());
    Ok(ExitCode::SUCCESS)
}
