//! podman's daemonless subset, on the image store: `pull`, `images`, `rmi`, `prune`, `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ocikit::copy::Location;
use ocikit::image::parse_platform;
use ocikit::store::{PullOptions, Store, StoreError, default_name};

use crate::Globals;
use crate::failure::Failure;
use crate::registry::{RegistryFlags, TrustFlags};

/// `--root`: the store (podman's flag name).
#[derive(Args, Clone)]
pub(crate) struct StoreFlags {
    /// The image store (default: /var/lib/ocikit for root, else
    /// $XDG_DATA_HOME/ocikit or ~/.local/share/ocikit).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

impl StoreFlags {
    fn open(&self) -> Result<Store, Failure> {
        Ok(Store::open(
            self.root.clone().unwrap_or_else(Store::default_root),
        )?)
    }
}

/// What podman accepts as an image to pull: a location with its transport, or a bare
/// `HOST/NAME[:TAG|@DIGEST]`, which is a registry image.
pub(crate) fn pull_location(text: &str) -> Result<Location, Failure> {
    const TRANSPORTS: [&str; 4] = ["docker://", "oci:", "oci-archive:", "docker-archive:"];
    if TRANSPORTS.iter().any(|t| text.starts_with(t)) {
        crate::registry::location(text)
    } else {
        crate::registry::location(&format!("docker://{text}"))
    }
}

/// Pull an image into the store, each layer unpacked once (podman pull).
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit pull registry.example/app:1\n  \
    ocikit pull --root /srv/store oci:/srv/images:app-1")]
pub(crate) struct PullArgs {
    /// The image: HOST/NAME[:TAG|@DIGEST], or a location (docker://, oci:, ...).
    image: String,
    /// The platform to choose from a multi-platform image, OS/ARCH[/VARIANT].
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    #[command(flatten)]
    store: StoreFlags,
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    trust: TrustFlags,
}

fn pull_options(
    platform: &Option<String>,
    registry: &RegistryFlags,
    trust: &TrustFlags,
) -> Result<PullOptions, Failure> {
    let mut options = PullOptions::new()
        .context(registry.context())
        .trust(trust.options());
    if let Some(p) = platform {
        options = options.platform(parse_platform(p)?);
    }
    Ok(options)
}

/// A store pull drawing its progress (a line per blob on a terminal, unless `quiet`).
fn pull_with_progress(
    store: &Store,
    location: &ocikit::copy::Location,
    mut options: ocikit::store::PullOptions,
    quiet: bool,
) -> Result<ocikit::store::PulledImage, Failure> {
    let display = crate::progress::Display::new("pulling", quiet);
    if let Some(d) = &display {
        let d = d.clone();
        options = options.progress(move |e: &ocikit::progress::Event<'_>| d.event(e));
    }
    let pulled = store.pull(location, &options)?;
    if let Some(d) = &display {
        d.finish_all("pulled");
    }
    Ok(pulled)
}

pub(crate) fn pull(a: PullArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    let location = pull_location(&a.image)?;
    let store = a.store.open()?;
    let options = pull_options(&a.platform, &a.registry, &a.trust)?;
    let pulled = pull_with_progress(&store, &location, options, globals.quiet)?;
    if !globals.quiet {
        let fetched = pulled.layers.iter().filter(|l| l.fetched).count();
        let unpacked = pulled.layers.iter().filter(|l| l.unpacked).count();
        eprintln!(
            "Pulled {} layers ({} fetched, {} already stored; {} unpacked)",
            pulled.layers.len(),
            fetched,
            pulled.layers.len() - fetched,
            unpacked
        );
    }
    println!("{}", pulled.manifest.digest());
    Ok(ExitCode::SUCCESS)
}

/// List the store's images (podman images).
#[derive(Args)]
#[command(after_help = "Example:\n  ocikit images --root /srv/store")]
pub(crate) struct ImagesArgs {
    /// json, or table (default).
    #[arg(long, value_name = "FORMAT", value_parser = ["table", "json"], default_value = "table")]
    format: String,
    #[command(flatten)]
    store: StoreFlags,
}

fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.3} {}", units[unit])
}

/// With `--quiet`, only the digests, as `podman images -q` prints only the ids.
pub(crate) fn images(a: ImagesArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    let images = a.store.open()?.images()?;
    if globals.quiet {
        for image in &images {
            println!("{}", image.digest);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.format == "json" {
        let list: Vec<_> = images
            .iter()
            .map(|i| {
                serde_json::json!({
                    "Names": i.names,
                    "Digest": i.digest.to_string(),
                    "Created": i.created,
                    "Size": i.size,
                })
            })
            .collect();
        print!(
            "{}",
            String::from_utf8_lossy(&crate::json_text(&serde_json::json!(list)))
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<16} {:<14} {:<22} {:>12}",
        "REPOSITORY", "TAG", "DIGEST", "CREATED", "SIZE"
    );
    for image in &images {
        let names = if image.names.is_empty() {
            vec!["<none>:<none>".to_owned()]
        } else {
            image.names.clone()
        };
        for name in names {
            let (repo, tag) = split_name(&name);
            println!(
                "{:<40} {:<16} {:<14} {:<22} {:>12}",
                repo,
                tag,
                &image.digest.digest()[..12],
                image.created.as_deref().unwrap_or("-"),
                human(image.size)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `host:5000/app:1` → (`host:5000/app`, `1`); a name without a tag has `<none>`.
fn split_name(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "<none>"),
    }
}

/// Remove images from the store, with the layers no other image uses (podman rmi).
#[derive(Args)]
#[command(after_help = "Example:\n  ocikit rmi registry.example/app:1")]
pub(crate) struct RmiArgs {
    /// Names or digests of stored images.
    #[arg(required = true)]
    images: Vec<String>,
    #[command(flatten)]
    store: StoreFlags,
}

pub(crate) fn rmi(a: RmiArgs) -> Result<ExitCode, Failure> {
    let store = a.store.open()?;
    for reference in &a.images {
        let name = stored_name(&store, reference)?;
        store.remove_image(&name)?;
        println!("Untagged: {reference}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The store's name for what the user typed: as stored, or as `pull` names a location.
fn stored_name(store: &Store, typed: &str) -> Result<String, Failure> {
    if store.image(typed).is_ok() {
        return Ok(typed.to_owned());
    }
    if let Ok(location) = pull_location(typed)
        && let Some(name) = default_name(&location)?
    {
        let name = name.to_string();
        if store.image(&name).is_ok() {
            return Ok(name);
        }
    }
    Ok(typed.to_owned())
}

/// Remove what no image or container uses, and check the store (podman image prune).
#[derive(Args)]
#[command(after_help = "Example:\n  ocikit prune --root /srv/store")]
pub(crate) struct PruneArgs {
    /// Only check the store; remove nothing.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    store: StoreFlags,
}

pub(crate) fn prune(a: PruneArgs) -> Result<ExitCode, Failure> {
    let store = a.store.open()?;
    if !a.check {
        let freed = store.prune()?;
        println!(
            "pruned {} snapshots, {} blobs and {} temporary files: {} bytes freed",
            freed.snapshots.len(),
            freed.blobs,
            freed.temporaries,
            freed.bytes
        );
    }
    let report = store.check()?;
    for (path, problem) in &report.problems {
        println!("{}: {problem}", path.display());
    }
    if report.is_ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::Corrupt(format!(
            "{}: {} problems",
            store.root().display(),
            report.problems.len()
        )))
    }
}

/// Run a command in a container of a stored image, pulling it first if the store lacks it
/// (podman run).
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit run --rm registry.example/app:1\n  \
    ocikit run --rm -m 256m --pids-limit 100 -e MODE=test registry.example/app:1 sh -c 'echo $MODE'")]
pub(crate) struct RunArgs {
    /// The image: a stored name or digest, HOST/NAME[:TAG|@DIGEST], or a location.
    image: String,
    /// The command and its arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// Remove the container when it exits (always done: ocikit keeps no stopped containers).
    #[arg(long)]
    rm: bool,
    /// Memory limit: bytes, or with a k, m or g suffix.
    #[arg(short, long, value_name = "SIZE")]
    memory: Option<String>,
    /// CPU limit, in CPUs (1.5 = one and a half).
    #[arg(long, value_name = "N")]
    cpus: Option<f64>,
    /// Most processes the container may have.
    #[arg(long, value_name = "N")]
    pids_limit: Option<i64>,
    /// Set an environment variable, NAME=VALUE.
    #[arg(short, long, value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Override the image's entrypoint.
    #[arg(long, value_name = "COMMAND")]
    entrypoint: Option<String>,
    /// The container's host name.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// The user the command runs as: NAME, UID, NAME:GROUP or UID:GID (with podman's groups:
    /// its own, and those /etc/group lists it in unless a GROUP is given).
    #[arg(short, long, value_name = "USER")]
    user: Option<String>,
    /// The working directory of the command.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// Add capabilities to podman's default set (CAP_NET_ADMIN, net_admin; a
    /// comma-separated list or the flag repeated). A user other than root gets only these.
    #[arg(long, value_name = "CAPABILITY", value_delimiter = ',')]
    cap_add: Vec<String>,
    /// Drop capabilities from the set (`all` drops every one but those added).
    #[arg(long, value_name = "CAPABILITY", value_delimiter = ',')]
    cap_drop: Vec<String>,
    /// A bind mount, HOST-DIR:CONTAINER-DIR[:ro|rw].
    #[arg(short, long, value_name = "HOST:CONTAINER[:ro]")]
    volume: Vec<String>,
    /// Keep standard input open (else the container reads /dev/null).
    #[arg(short, long)]
    interactive: bool,
    /// Give the container a terminal.
    #[arg(short, long)]
    tty: bool,
    /// The platform to pull when the store lacks the image, OS/ARCH[/VARIANT].
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    #[command(flatten)]
    store: StoreFlags,
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    trust: TrustFlags,
}

/// The capabilities of `run`, as podman merges them: its default set plus `--cap-add`, minus
/// `--cap-drop` (`all` keeps only the added ones); and the added ones, which a user other
/// than root gets alone. Names are compared as `CAP_X`.
fn capabilities(add: &[String], drop: &[String]) -> Result<(Vec<String>, Vec<String>), Failure> {
    let canonical = |name: &str| {
        let upper = name.trim().to_ascii_uppercase();
        if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        }
    };
    let added: Vec<String> = add.iter().map(|n| canonical(n)).collect();
    if added.iter().any(|n| n == "CAP_ALL") {
        return Err(Failure::Usage(
            "--cap-add all: not supported; name the capabilities".into(),
        ));
    }
    let dropped: Vec<String> = drop.iter().map(|n| canonical(n)).collect();
    if let Some(both) = added.iter().find(|n| dropped.contains(n)) {
        return Err(Failure::Usage(format!(
            "{both}: both added (--cap-add) and dropped (--cap-drop)"
        )));
    }
    let mut set: Vec<String> = if dropped.iter().any(|n| n == "CAP_ALL") {
        Vec::new()
    } else {
        ocikit::convert::DEFAULT_CAPABILITIES
            .iter()
            .map(|n| n.to_string())
            .filter(|n| !dropped.contains(n))
            .collect()
    };
    for n in &added {
        if !set.contains(n) {
            set.push(n.clone());
        }
    }
    Ok((set, added))
}

/// `512m`, `1g`, `1048576` (podman's units: powers of 1024, an optional `b`).
pub(crate) fn parse_size(s: &str) -> Result<i64, Failure> {
    let lower = s.trim().to_ascii_lowercase();
    let t = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| Failure::Usage(format!("{s:?} is not a size (bytes, or k, m, g)")))?;
    if !(n.is_finite() && n > 0.0) {
        return Err(Failure::Usage(format!("{s:?} is not a positive size")));
    }
    Ok((n * (1u64 << shift) as f64) as i64)
}

/// `-v HOST:CONTAINER[:ro|rw]` as a bind mount (the host path made absolute).
fn volume(spec: &str) -> Result<ocikit::oci_spec::runtime::Mount, Failure> {
    let usage = || {
        Failure::Usage(format!(
            "-v {spec:?}: expected HOST-DIR:CONTAINER-DIR[:ro|rw]"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, "rw"),
        [h, c, m] if matches!(*m, "ro" | "rw") => (*h, *c, *m),
        _ => return Err(usage()),
    };
    if !container.starts_with('/') || host.is_empty() {
        return Err(usage());
    }
    if !host.starts_with('/') && !host.starts_with('.') {
        return Err(Failure::Usage(format!(
            "-v {spec:?}: named volumes are not supported; give a host directory"
        )));
    }
    let source =
        std::fs::canonicalize(host).map_err(|e| Failure::io(format!("-v {spec:?}: {host}"), e))?;
    ocikit::oci_spec::runtime::MountBuilder::default()
        .destination(container)
        .typ("bind")
        .source(source)
        .options(vec!["rbind".to_owned(), mode.to_owned()])
        .build()
        .map_err(|e| Failure::Usage(format!("-v {spec:?}: {e}")))
}

pub(crate) fn run(a: RunArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    use ocikit::run::{RunOptions, Stdio, run_stored};
    // As a user (in the user namespace `main` entered), a configuration runc's rootless
    // one: the user namespace's mappings, no devices to create. The user's groups are
    // podman's (its primary group among them: `id` prints what `podman run` prints), not
    // image-spec conversion.md's: ConvertOptions::podman_groups quotes both rules.
    let mut convert = ocikit::convert::ConvertOptions::new()
        .terminal(a.tty)
        .rootless(ocikit::runtime::is_rootless())
        .podman_groups(true)
        .podman_passwd(true);
    if let Some(m) = &a.memory {
        convert = convert.memory_limit(parse_size(m)?);
    }
    if let Some(c) = a.cpus {
        if !(c.is_finite() && c > 0.0) {
            return Err(Failure::Usage(format!("--cpus {c}: not a positive number")));
        }
        convert = convert.cpu_quota((c * 100_000.0) as i64, 100_000);
    }
    if let Some(p) = a.pids_limit {
        convert = convert.pids_limit(p);
    }
    for e in &a.env {
        convert = convert.env(e.clone());
    }
    if let Some(h) = &a.hostname {
        convert = convert.hostname(h.clone());
    }
    if let Some(u) = &a.user {
        convert = convert.user(u.clone());
    }
    if let Some(w) = &a.workdir {
        convert = convert.workdir(w.clone());
    }
    for v in &a.volume {
        convert = convert.mount(volume(v)?);
    }
    let (caps, added) = capabilities(&a.cap_add, &a.cap_drop)?;
    convert = convert.capabilities(caps).non_root_capabilities(added);
    match (&a.entrypoint, a.command.is_empty()) {
        (Some(e), _) => {
            convert = convert.entrypoint(vec![e.clone()]).cmd(a.command.clone());
        }
        (None, false) => convert = convert.cmd(a.command.clone()),
        (None, true) => {}
    }
    let store = a.store.open()?;
    let name = stored_name(&store, &a.image)?;
    let digest = match store.image(&name) {
        Ok(image) => image.manifest.digest().to_string(),
        Err(ocikit::Error::Store(StoreError::ImageNotFound { .. })) => {
            let location = pull_location(&a.image)?;
            let options = pull_options(&a.platform, &a.registry, &a.trust)?;
            let pulled = pull_with_progress(&store, &location, options, globals.quiet)?;
            pulled.manifest.digest().to_string()
        }
        Err(e) => return Err(e.into()),
    };
    // podman attaches standard input only with -i.
    let stdin = if a.interactive || a.tty {
        Stdio::Inherit
    } else {
        Stdio::Null
    };
    let options = RunOptions::new()
        .id(format!("ocikit-run-{}", std::process::id()))
        .convert(convert)
        .stdin(stdin);
    let output = run_stored(&store, &digest, &options)?;
    Ok(ExitCode::from(output.status.code().clamp(0, 255) as u8))
}
