//! umoci's subcommands: `unpack` (an image into a runtime bundle), `gc` and `fsck` of an
//! image layout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ocikit::convert::ConvertOptions;
use ocikit::copy::open_source_with;
use ocikit::image::{ApplyOptions, host_platform, parse_platform};
use ocikit::layout::Layout;
use ocikit::unpack::{UnpackOptions, unpack_bundle};

use crate::Globals;
use crate::failure::Failure;
use crate::registry::{RegistryFlags, TrustFlags, location};

/// Unpack an image into a runtime bundle: rootfs/ and config.json (umoci unpack).
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit unpack --image /srv/images:app-1 bundle\n  \
    ocikit unpack --rootless docker://registry.example/app:1 bundle\n  \
    runc run -b bundle app")]
pub(crate) struct UnpackArgs {
    /// The image as umoci names it: LAYOUT[:TAG].
    #[arg(long, value_name = "LAYOUT[:TAG]")]
    image: Option<String>,
    /// [SOURCE] BUNDLE: the image as any location (docker://, oci:, oci-archive:,
    /// docker-archive:) unless --image names it, and the bundle directory to make (missing
    /// or empty).
    #[arg(value_name = "[SOURCE] BUNDLE", num_args = 1..=2, required = true)]
    paths: Vec<String>,
    /// A configuration an unprivileged user can run (user namespace, mappings of the caller).
    #[arg(long)]
    rootless: bool,
    /// Do not give the container a terminal (umoci gives one by default).
    #[arg(long)]
    no_terminal: bool,
    /// The platform to choose from a multi-platform image, OS/ARCH[/VARIANT].
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    trust: TrustFlags,
}

pub(crate) fn unpack(a: UnpackArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    let (text, bundle) = match (&a.image, a.paths.as_slice()) {
        (Some(image), [bundle]) => (format!("oci:{image}"), bundle),
        (None, [source, bundle]) => (source.clone(), bundle),
        (Some(_), _) => {
            return Err(Failure::Usage(
                "with --image, give only the bundle directory".into(),
            ));
        }
        (None, _) => {
            return Err(Failure::Usage(
                "give the image (or --image LAYOUT[:TAG]) and the bundle directory".into(),
            ));
        }
    };
    let bundle = PathBuf::from(bundle);
    let location = location(&text)?;
    let platform = match &a.platform {
        Some(p) => parse_platform(p)?,
        None => host_platform(),
    };
    let source = open_source_with(&location, &platform, &a.registry.context())?;
    ocikit::trust::check_opened(&location, &source, &a.trust.options())?;
    let mut options = UnpackOptions::new().apply(ApplyOptions::new()).convert(
        ConvertOptions::new()
            .rootless(a.rootless || ocikit::runtime::is_rootless())
            .terminal(!a.no_terminal)
            .default_args(vec!["sh".into()]),
    );
    let display = crate::progress::Display::new("unpacking", globals.quiet);
    if let Some(d) = &display {
        let d = d.clone();
        options = options.progress(move |e: &ocikit::progress::Event<'_>| d.event(e));
    }
    let made = unpack_bundle(source.source(), &source.image()?, &bundle, &options)?;
    if let Some(d) = &display {
        d.finish_all("unpacked");
    }
    if !globals.quiet {
        eprintln!(
            "Unpacked {} ({} layers) into {}",
            made.unpacked.manifest.digest(),
            made.unpacked.layers.len(),
            bundle.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Remove what no reference of an image layout reaches (umoci gc).
#[derive(Args)]
#[command(after_help = "Example:\n  ocikit gc --layout /srv/images")]
pub(crate) struct GcArgs {
    /// The image layout.
    #[arg(long, value_name = "DIR")]
    layout: PathBuf,
    /// Keep temporary files younger than this many seconds (a copy may be writing them).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    min_age: u64,
}

pub(crate) fn gc(a: GcArgs) -> Result<ExitCode, Failure> {
    let layout = Layout::open(&a.layout)?;
    let report = layout.gc(Duration::from_secs(a.min_age))?;
    println!(
        "removed {} blobs and {} temporary files, {} bytes freed",
        report.blobs_removed, report.temp_files_removed, report.bytes_freed
    );
    Ok(ExitCode::SUCCESS)
}

/// Check an image layout: every blob's digest, every reference reachable.
#[derive(Args)]
#[command(after_help = "Example:\n  ocikit fsck --layout /srv/images")]
pub(crate) struct FsckArgs {
    /// The image layout.
    #[arg(long, value_name = "DIR")]
    layout: PathBuf,
}

pub(crate) fn fsck(a: FsckArgs) -> Result<ExitCode, Failure> {
    let layout = Layout::open(&a.layout)?;
    let report = layout.fsck()?;
    for problem in &report.problems {
        println!("{problem}");
    }
    if report.is_ok() {
        println!(
            "{}: {} blobs checked, no problem",
            a.layout.display(),
            report.blobs_checked
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::Corrupt(format!(
            "{}: {} problems in {} blobs",
            a.layout.display(),
            report.problems.len(),
            report.blobs_checked
        )))
    }
}
