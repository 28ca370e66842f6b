//! buildah's working containers, as `ocikit work`: `from`, `run`, `copy`, `config`,
//! `commit`, `push`, `containers`, `rm`, with buildah's flag names, on the image store of the
//! store subcommands (`--root`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Subcommand};
use ocikit::copy::CopyOptions;
use ocikit::image::{Compression, Format, parse_platform};
use ocikit::store::{PullOptions, Store};
use ocikit::working::{
    CommitOptions, ConfigEdit, CopyInOptions, FromOptions, Network, PushOptions, RunInOptions,
    WorkingContainer, push,
};

use crate::Globals;
use crate::failure::Failure;
use crate::registry::{RegistryFlags, TrustFlags};

/// Build images as buildah does: a working container over an image, commands run in it,
/// files copied in, its configuration edited, and the change committed as one layer.
#[derive(Args)]
#[command(after_help = "Example:\n  \
    c=$(ocikit work from docker://registry.example/base:1)\n  \
    ocikit work run \"$c\" -- sh -c 'apk add curl'\n  \
    ocikit work config --entrypoint '[\"/usr/bin/curl\"]' \"$c\"\n  \
    ocikit work commit --rm \"$c\" app:1\n  \
    ocikit work push app:1 docker://registry.example/app:1")]
pub(crate) struct WorkArgs {
    /// The image store (default: /var/lib/ocikit for root, else $XDG_DATA_HOME/ocikit or
    /// ~/.local/share/ocikit), as the store subcommands take it.
    #[arg(long, value_name = "DIR", global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: WorkCommand,
}

#[derive(Subcommand)]
enum WorkCommand {
    From(FromArgs),
    Run(RunArgs),
    Copy(CopyArgs),
    Config(ConfigArgs),
    Commit(CommitArgs),
    Push(PushArgs),
    Containers(ContainersArgs),
    Rm(RmArgs),
}

impl WorkArgs {
    /// `work run`, whose own failures exit 125 as `run`'s do (its other codes are the
    /// command's).
    pub(crate) fn is_run(&self) -> bool {
        matches!(self.command, WorkCommand::Run(_))
    }
}

/// Make a working container over an image of the store, pulled first if missing (buildah
/// from); prints its name.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit work from --name app docker://registry.example/base:1\n  \
    ocikit work from scratch")]
struct FromArgs {
    /// A stored name or digest, HOST/NAME[:TAG|@DIGEST], a location (docker://, oci:, ...),
    /// or `scratch` for an empty root filesystem.
    image: String,
    /// The container's name (default: IMAGE-working-container, working-container from
    /// scratch, with -2, -3... when taken).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The platform to pull from a multi-platform image, OS/ARCH[/VARIANT].
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    trust: TrustFlags,
}

/// Run a command in a working container: what it writes changes the container (buildah
/// run). Exits with the command's exit code (125: ocikit failed).
#[derive(Args)]
#[command(after_help = "Example:\n  \
    ocikit work run --network none -e MODE=build app -- /bin/sh -c 'make install'")]
struct RunArgs {
    /// The working container.
    container: String,
    /// The command and its arguments (after `--` when they start with a dash).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// host (the host's network, its /etc/resolv.conf and /etc/hosts), or none.
    #[arg(long, alias = "net", value_name = "MODE", value_parser = ["host", "none"],
          default_value = "host")]
    network: String,
    /// Set an environment variable for the command, NAME=VALUE.
    #[arg(short, long, value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// The user the command runs as (default: the configuration's).
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// The directory the command runs in (default: the configuration's).
    #[arg(long, value_name = "DIR")]
    workingdir: Option<String>,
}

/// Copy host files and directories into a working container (buildah copy).
#[derive(Args)]
#[command(after_help = "Example:\n  \
    ocikit work copy --chown 1000:1000 --chmod 640 app ./config.toml ./static /srv/app/\n\n\
    A directory's contents go into DEST; a file goes to DEST, or into it when DEST ends with \
    / or is a directory or several sources are given.")]
struct CopyArgs {
    /// The working container.
    container: String,
    /// The host files and directories to copy.
    #[arg(required = true, value_name = "SRC")]
    sources: Vec<PathBuf>,
    /// Where they go in the container (relative: to its working directory).
    #[arg(value_name = "DEST")]
    dest: String,
    /// The owner of what is copied, UID[:GID] (default 0:0).
    #[arg(long, value_name = "UID:GID")]
    chown: Option<String>,
    /// The mode of the copied files, in octal (default: the source's).
    #[arg(long, value_name = "MODE")]
    chmod: Option<String>,
}

/// Edit the image configuration a working container commits (buildah config).
#[derive(Args)]
#[command(after_help = "Example:\n  \
    ocikit work config --entrypoint '[\"/app\"]' --cmd '[]' --env MODE=prod --env DEBUG- \
    --label version=1 --port 8080 app\n\n\
    --entrypoint and --cmd take a JSON array, or a command run by /bin/sh -c.")]
struct ConfigArgs {
    /// The working container.
    container: String,
    /// The entrypoint: a JSON array, or a shell command.
    #[arg(long, value_name = "COMMAND", allow_hyphen_values = true)]
    entrypoint: Option<String>,
    /// The default command: a JSON array, or a shell command.
    #[arg(long, value_name = "COMMAND", allow_hyphen_values = true)]
    cmd: Option<String>,
    /// Set an environment variable, NAME=VALUE, or remove one, NAME-.
    #[arg(short, long, value_name = "NAME=VALUE|NAME-")]
    env: Vec<String>,
    /// The working directory.
    #[arg(long, value_name = "DIR")]
    workingdir: Option<String>,
    /// The user.
    #[arg(short, long, value_name = "USER")]
    user: Option<String>,
    /// A label, KEY=VALUE.
    #[arg(short, long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// A manifest annotation, KEY=VALUE.
    #[arg(short, long, value_name = "KEY=VALUE")]
    annotation: Vec<String>,
    /// An exposed port, PORT[/PROTOCOL].
    #[arg(short, long, value_name = "PORT")]
    port: Vec<String>,
    /// A volume, a path in the container.
    #[arg(short, long, value_name = "PATH")]
    volume: Vec<String>,
    /// The signal that stops the container.
    #[arg(long, value_name = "SIGNAL")]
    stop_signal: Option<String>,
    /// The image's author.
    #[arg(long, value_name = "AUTHOR")]
    author: Option<String>,
}

/// Commit what changed in a working container as one layer on its image (buildah commit);
/// prints the new image's manifest digest.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit work commit app app:1\n  \
    ocikit work commit --timestamp 0 --rm app app:reproducible")]
struct CommitArgs {
    /// The working container.
    container: String,
    /// The name the image gets in the store (default: none, stored by digest).
    image: Option<String>,
    /// Date the image and clamp the layer's times to this Unix time, for a reproducible
    /// image.
    #[arg(long, value_name = "EPOCH")]
    timestamp: Option<i64>,
    /// Commit an empty layer when nothing changed (default: a history entry only).
    #[arg(long)]
    empty_layer: bool,
    /// Remove the working container after the commit.
    #[arg(long)]
    rm: bool,
}

/// The destination's registry flags: buildah push's names (`--creds`, `--tls-verify`...),
/// with `ocikit copy`'s `--dest-*` names as aliases.
struct DestFlags(RegistryFlags);

const DEST_ALIASES: [(&str, &str); 4] = [
    ("creds", "dest-creds"),
    ("authfile", "dest-authfile"),
    ("tls_verify", "dest-tls-verify"),
    ("cert_dir", "dest-cert-dir"),
];

impl clap::FromArgMatches for DestFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        RegistryFlags::from_arg_matches(matches).map(DestFlags)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl clap::Args for DestFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        DEST_ALIASES
            .iter()
            .fold(RegistryFlags::augment_args(cmd), |c, (id, alias)| {
                c.mut_arg(id, |a| a.visible_alias(alias))
            })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Push an image of the store, its uncompressed layers compressed on the way (buildah push);
/// prints the pushed manifest's digest.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit work push app:1 docker://registry.example/app:1\n  \
    ocikit work push --dest-tls-verify=false app:1 localhost:5000/app:1\n  \
    ocikit work push --compression-format zstd app:1 oci:/srv/images:app-1")]
struct PushArgs {
    /// A stored name or digest.
    image: String,
    /// Where it goes: a location (docker://, oci:, oci-archive:, docker-archive:) or
    /// HOST/NAME[:TAG] (default: IMAGE, as a registry image).
    destination: Option<String>,
    /// The manifest format to write: oci, or v2s2 (Docker).
    #[arg(short, long, value_name = "FORMAT", value_parser = ["oci", "v2s2"])]
    format: Option<String>,
    /// How uncompressed layers are compressed: gzip (default) or zstd.
    #[arg(long, value_name = "FORMAT", value_parser = ["gzip", "zstd"])]
    compression_format: Option<String>,
    /// Send uncompressed layers as they are.
    #[arg(short = 'D', long, conflicts_with = "compression_format")]
    disable_compression: bool,
    /// Write the pushed manifest's digest to this file.
    #[arg(long, value_name = "FILE")]
    digestfile: Option<PathBuf>,
    #[command(flatten)]
    registry: DestFlags,
    #[command(flatten)]
    trust: TrustFlags,
    #[command(flatten)]
    signing: crate::trust::SigningFlags,
}

/// List the working containers (buildah containers); with --quiet, only their names.
#[derive(Args)]
#[command(after_help = "Example:\n  ocikit work containers --noheading")]
struct ContainersArgs {
    /// Print no header line.
    #[arg(short, long)]
    noheading: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Remove working containers, and what they changed (buildah rm).
#[derive(Args)]
#[command(after_help = "Examples:\n  ocikit work rm app\n  ocikit work rm --all")]
struct RmArgs {
    /// The working containers.
    #[arg(required_unless_present = "all")]
    containers: Vec<String>,
    /// Remove every working container.
    #[arg(short, long, conflicts_with = "containers")]
    all: bool,
}

pub(crate) fn work(a: WorkArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    // The store as the store subcommands open it (`--root`, podman's and buildah's name).
    let store = Store::open(a.root.unwrap_or_else(Store::default_root))?;
    match a.command {
        WorkCommand::From(a) => from(&store, a, globals),
        WorkCommand::Run(a) => run(&store, a),
        WorkCommand::Copy(a) => copy(&store, a),
        WorkCommand::Config(a) => config(&store, a),
        WorkCommand::Commit(a) => commit(&store, a),
        WorkCommand::Push(a) => push_image(&store, a, globals),
        WorkCommand::Containers(a) => containers(&store, a, globals),
        WorkCommand::Rm(a) => rm(&store, a),
    }
}

fn from(store: &Store, a: FromArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    let mut options = FromOptions::new();
    if let Some(n) = &a.name {
        options = options.name(n);
    }
    if a.image == "scratch" {
        println!(
            "{}",
            WorkingContainer::from_scratch(store, &options)?.name()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut pull = PullOptions::new()
        .context(a.registry.context())
        .trust(a.trust.options());
    if let Some(p) = &a.platform {
        pull = pull.platform(parse_platform(p)?);
    }
    let display = crate::progress::Display::new("pulling", globals.quiet);
    let pulled = Arc::new(AtomicBool::new(false));
    if let Some(d) = &display {
        let (d, pulled) = (d.clone(), pulled.clone());
        pull = pull.progress(move |e: &ocikit::progress::Event<'_>| {
            pulled.store(true, Ordering::Relaxed);
            d.event(e)
        });
    }
    // A bare HOST/NAME the store lacks is a registry image, as buildah from takes it.
    let image =
        if store.image(&a.image).is_ok() || a.image.parse::<ocikit::copy::Location>().is_ok() {
            a.image.clone()
        } else {
            crate::store::pull_location(&a.image)?.to_string()
        };
    let c = WorkingContainer::from_image(store, &image, &options.pull(pull))?;
    if let Some(d) = &display
        && pulled.load(Ordering::Relaxed)
    {
        d.finish_all("pulled");
    }
    println!("{}", c.name());
    Ok(ExitCode::SUCCESS)
}

fn run(store: &Store, a: RunArgs) -> Result<ExitCode, Failure> {
    let mut options = RunInOptions::new().network(match a.network.as_str() {
        "none" => Network::None,
        _ => Network::Host,
    });
    for e in &a.env {
        options = options.env(e);
    }
    if let Some(u) = &a.user {
        options = options.user(u);
    }
    if let Some(w) = &a.workingdir {
        options = options.workdir(w);
    }
    let status = WorkingContainer::open(store, &a.container)?.run(&a.command, &options)?;
    Ok(ExitCode::from(status.code().clamp(0, 255) as u8))
}

fn copy(store: &Store, a: CopyArgs) -> Result<ExitCode, Failure> {
    let mut options = CopyInOptions::new();
    if let Some(owner) = &a.chown {
        let id = |s: &str| {
            s.parse::<u32>().map_err(|_| {
                Failure::Usage(format!("--chown {owner:?}: numeric UID[:GID] expected"))
            })
        };
        let (uid, gid) = owner.split_once(':').unwrap_or((owner, owner));
        options = options.owner(id(uid)?, id(gid)?);
    }
    if let Some(mode) = &a.chmod {
        let m = u32::from_str_radix(mode, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| Failure::Usage(format!("--chmod {mode:?}: an octal mode expected")))?;
        options = options.mode(m);
    }
    WorkingContainer::open(store, &a.container)?.copy_in(&a.sources, &a.dest, &options)?;
    Ok(ExitCode::SUCCESS)
}

/// A JSON array, or a shell command run by `/bin/sh -c` (buildah's two forms).
fn command(flag: &str, text: &str) -> Result<Vec<String>, Failure> {
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text).map_err(|e| {
            Failure::Usage(format!("{flag} {text:?}: not a JSON array of strings: {e}"))
        });
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), text.into()])
}

fn key_value<'a>(flag: &str, text: &'a str) -> Result<(&'a str, &'a str), Failure> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| Failure::Usage(format!("{flag} {text:?}: KEY=VALUE expected")))
}

fn config(store: &Store, a: ConfigArgs) -> Result<ExitCode, Failure> {
    let mut edit = ConfigEdit::new();
    if let Some(e) = &a.entrypoint {
        edit = edit.entrypoint(command("--entrypoint", e)?);
    }
    if let Some(c) = &a.cmd {
        edit = edit.cmd(command("--cmd", c)?);
    }
    for e in &a.env {
        // buildah config: "--env KEY-" removes KEY.
        edit = match e.strip_suffix('-') {
            Some(key) if !e.contains('=') => edit.unset_env(key),
            _ if e.contains('=') => edit.env(e),
            _ => {
                return Err(Failure::Usage(format!(
                    "--env {e:?}: NAME=VALUE or NAME- expected"
                )));
            }
        };
    }
    if let Some(w) = &a.workingdir {
        edit = edit.workdir(w);
    }
    if let Some(u) = &a.user {
        edit = edit.user(u);
    }
    for l in &a.label {
        let (k, v) = key_value("--label", l)?;
        edit = edit.label(k, v);
    }
    for l in &a.annotation {
        let (k, v) = key_value("--annotation", l)?;
        edit = edit.annotation(k, v);
    }
    for p in &a.port {
        edit = edit.port(p);
    }
    for v in &a.volume {
        edit = edit.volume(v);
    }
    if let Some(s) = &a.stop_signal {
        edit = edit.stop_signal(s);
    }
    if let Some(author) = &a.author {
        edit = edit.author(author);
    }
    WorkingContainer::open(store, &a.container)?.configure(&edit)?;
    Ok(ExitCode::SUCCESS)
}

fn commit(store: &Store, a: CommitArgs) -> Result<ExitCode, Failure> {
    let mut options = CommitOptions::new()
        .source_date_epoch(a.timestamp)
        .empty_layer(a.empty_layer);
    if let Some(image) = &a.image {
        options = options.name(image);
    }
    let mut c = WorkingContainer::open(store, &a.container)?;
    let committed = c.commit(&options)?;
    if a.rm {
        c.remove()?;
    }
    println!("{}", committed.manifest.digest());
    Ok(ExitCode::SUCCESS)
}

fn push_image(store: &Store, a: PushArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    let destination = crate::store::pull_location(a.destination.as_deref().unwrap_or(&a.image))?;
    let trust = a.signing.apply(a.trust.options())?;
    let mut copy = CopyOptions::new()
        .destination_context(a.registry.0.context())
        .trust(trust);
    match a.format.as_deref() {
        Some("oci") => copy = copy.format(Some(Format::Oci)),
        Some("v2s2") => copy = copy.format(Some(Format::Docker)),
        _ => {}
    }
    let display = crate::progress::Display::new("pushing", globals.quiet);
    if let Some(d) = &display {
        let d = d.clone();
        copy = copy.progress(move |e: &ocikit::progress::Event<'_>| d.event(e));
    }
    let compression = match (a.disable_compression, a.compression_format.as_deref()) {
        (true, _) => Compression::None,
        (false, Some("zstd")) => Compression::Zstd,
        _ => Compression::Gzip,
    };
    let options = PushOptions::new().compression(compression).copy(copy);
    let pushed = push(store, &a.image, &destination, &options)?;
    if let Some(d) = &display {
        d.finish_all("pushed");
    }
    if let Some(file) = &a.digestfile {
        std::fs::write(file, pushed.digest().to_string())
            .map_err(|e| Failure::io(format!("writing {}", file.display()), e))?;
    }
    println!("{}", pushed.digest());
    Ok(ExitCode::SUCCESS)
}

fn containers(store: &Store, a: ContainersArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    let list = WorkingContainer::list(store)?;
    if globals.quiet {
        for c in &list {
            println!("{}", c.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.json {
        let list: Vec<_> = list
            .iter()
            .map(|c| {
                serde_json::json!({
                    "containername": c.name,
                    "imagename": c.image_name,
                    "imageid": c.image.as_ref().map(|d| d.to_string()),
                    "mountpoint": c.rootfs,
                })
            })
            .collect();
        print!(
            "{}",
            String::from_utf8_lossy(&crate::json_text(&serde_json::json!(list)))
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !a.noheading {
        println!(
            "{:<32} {:<14} {:<40} MOUNTPOINT",
            "CONTAINER NAME", "IMAGE ID", "IMAGE NAME"
        );
    }
    for c in &list {
        let id = c.image.as_ref().map(|d| &d.digest()[..12]).unwrap_or("-");
        let image = c.image_name.as_deref().unwrap_or("scratch");
        println!(
            "{:<32} {:<14} {:<40} {}",
            c.name,
            id,
            image,
            c.rootfs.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(store: &Store, a: RmArgs) -> Result<ExitCode, Failure> {
    let names = if a.all {
        WorkingContainer::list(store)?
            .into_iter()
            .map(|c| c.name)
            .collect()
    } else {
        a.containers
    };
    for name in &names {
        WorkingContainer::open(store, name)?.remove()?;
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}
