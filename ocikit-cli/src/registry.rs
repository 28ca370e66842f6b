//! skopeo's subcommands: `copy`, `inspect`, `list-tags`, `delete`, `login`, `logout`, with
//! skopeo's flag names.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ocikit::SystemContext;
use ocikit::copy::{BlobAction, CopyOptions, Location, copy as copy_image};
use ocikit::distribution::{ClientBuilder, Credentials, RetryPolicy};
use ocikit::image::oci_spec::image::Platform;
use ocikit::image::{Compression, Format, TagOrDigest, host_platform, parse_platform};
use ocikit::trust::TrustOptions;

use crate::Globals;
use crate::failure::Failure;

/// A location on the command line: `docker://`, `oci:`, `oci-archive:`, `docker-archive:`.
pub(crate) fn location(text: &str) -> Result<Location, Failure> {
    text.parse().map_err(Failure::Lib)
}

/// `docker://REFERENCE` → `REFERENCE`; anything else is a usage error naming the command.
fn docker_reference(text: &str, what: &str) -> Result<String, Failure> {
    match location(text)? {
        Location::Docker { reference } => Ok(reference),
        other => Err(Failure::Usage(format!(
            "{what} works on registries only (docker://HOST/NAME), not {other}"
        ))),
    }
}

/// `USER[:PASSWORD]` as skopeo's `--creds`.
fn credentials(text: &str) -> Credentials {
    let (user, password) = text.split_once(':').unwrap_or((text, ""));
    Credentials::new(user, password)
}

/// The platform skopeo's `--override-os`/`--override-arch`/`--override-variant` name (the
/// host's for what is not given).
fn platform(
    os: &Option<String>,
    arch: &Option<String>,
    variant: &Option<String>,
) -> Result<Platform, Failure> {
    let host = host_platform();
    let text = format!(
        "{}/{}{}",
        os.clone().unwrap_or_else(|| host.os().to_string()),
        arch.clone()
            .unwrap_or_else(|| host.architecture().to_string()),
        variant
            .as_ref()
            .or(host.variant().as_ref().filter(|_| arch.is_none()))
            .map(|v| format!("/{v}"))
            .unwrap_or_default()
    );
    parse_platform(&text).map_err(Failure::from)
}

/// How one side reaches its registry: skopeo's `--creds`, `--authfile`, `--tls-verify`,
/// `--cert-dir`, plus `--registries-conf`.
#[derive(Args, Clone, Default)]
pub(crate) struct RegistryFlags {
    /// Credentials for the registry, USER[:PASSWORD].
    #[arg(long, value_name = "USER[:PASSWORD]")]
    creds: Option<String>,
    /// The auth file to read credentials from (default: the containers auth files).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Require HTTPS and verify certificates (true), or allow plain HTTP and any certificate.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// A directory of *.crt, *.cert and *.key files for TLS.
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// registries.conf to read instead of the system's.
    #[arg(long, value_name = "FILE")]
    registries_conf: Option<PathBuf>,
}

impl RegistryFlags {
    /// The context these flags describe.
    pub(crate) fn context(&self) -> SystemContext {
        context(
            SystemContext::new(),
            self.creds.as_deref(),
            self.authfile.as_ref(),
            self.tls_verify,
            self.cert_dir.as_ref(),
            self.registries_conf.as_ref(),
        )
    }
}

pub(crate) fn context(
    mut c: SystemContext,
    creds: Option<&str>,
    authfile: Option<&PathBuf>,
    tls_verify: Option<bool>,
    cert_dir: Option<&PathBuf>,
    registries_conf: Option<&PathBuf>,
) -> SystemContext {
    if let Some(v) = creds {
        c = c.credentials(credentials(v));
    }
    if let Some(f) = authfile {
        c = c.auth_files(vec![f.clone()]);
    }
    if let Some(v) = tls_verify {
        c = c.tls_verify(v);
    }
    if let Some(d) = cert_dir {
        c = c.cert_dir(d);
    }
    if let Some(f) = registries_conf {
        c = c.registries_conf_files(vec![f.clone()]);
    }
    c
}

/// skopeo's flags for the two registries of a copy (`copy`, `sync`): `--src-*` and
/// `--dest-*` credentials, auth files, TLS verification and certificate directories.
#[derive(Args)]
pub(crate) struct SrcDestFlags {
    /// Credentials for the source registry, USER[:PASSWORD].
    #[arg(long, value_name = "USER[:PASSWORD]")]
    src_creds: Option<String>,
    /// Credentials for the destination registry.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    dest_creds: Option<String>,
    /// The auth file for both sides (default: the containers auth files).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// The auth file for the source.
    #[arg(long, value_name = "FILE")]
    src_authfile: Option<PathBuf>,
    /// The auth file for the destination.
    #[arg(long, value_name = "FILE")]
    dest_authfile: Option<PathBuf>,
    /// Require HTTPS and verified certificates from the source registry.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    src_tls_verify: Option<bool>,
    /// Require HTTPS and verified certificates from the destination registry.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    dest_tls_verify: Option<bool>,
    /// Certificates for the source registry (*.crt, *.cert, *.key).
    #[arg(long, value_name = "DIR")]
    src_cert_dir: Option<PathBuf>,
    /// Certificates for the destination registry.
    #[arg(long, value_name = "DIR")]
    dest_cert_dir: Option<PathBuf>,
    /// registries.conf to read instead of the system's.
    #[arg(long, value_name = "FILE")]
    registries_conf: Option<PathBuf>,
}

impl SrcDestFlags {
    /// The source's context.
    pub(crate) fn source_context(&self) -> SystemContext {
        context(
            SystemContext::new(),
            self.src_creds.as_deref(),
            self.src_authfile.as_ref().or(self.authfile.as_ref()),
            self.src_tls_verify,
            self.src_cert_dir.as_ref(),
            self.registries_conf.as_ref(),
        )
    }

    /// The destination's context.
    pub(crate) fn destination_context(&self) -> SystemContext {
        context(
            SystemContext::new(),
            self.dest_creds.as_deref(),
            self.dest_authfile.as_ref().or(self.authfile.as_ref()),
            self.dest_tls_verify,
            self.dest_cert_dir.as_ref(),
            self.registries_conf.as_ref(),
        )
    }

    /// The auth file given for the source (`--src-authfile`, else `--authfile`).
    pub(crate) fn source_authfile(&self) -> Option<&PathBuf> {
        self.src_authfile.as_ref().or(self.authfile.as_ref())
    }
}

/// skopeo's `--policy` and `--registries.d`.
#[derive(Args, Clone, Default)]
pub(crate) struct TrustFlags {
    /// The signature policy (containers-policy.json(5)); default: the user's, else
    /// /etc/containers/policy.json.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// Where simple signatures are read and written (containers-registries.d(5)).
    #[arg(long = "registries.d", value_name = "DIR")]
    pub(crate) registries_d: Option<PathBuf>,
}

impl TrustFlags {
    pub(crate) fn options(&self) -> TrustOptions {
        let mut t = TrustOptions::new();
        if let Some(p) = &self.policy {
            t = t.policy_path(p);
        }
        if let Some(d) = &self.registries_d {
            t = t.registries_d(d);
        }
        t
    }
}

/// skopeo's `--override-os`, `--override-arch`, `--override-variant`.
#[derive(Args, Clone, Default)]
pub(crate) struct PlatformFlags {
    /// Use this OS instead of the host's when choosing from a multi-platform image.
    #[arg(long, value_name = "OS")]
    override_os: Option<String>,
    /// Use this architecture instead of the host's.
    #[arg(long, value_name = "ARCH")]
    override_arch: Option<String>,
    /// Use this variant instead of the host's.
    #[arg(long, value_name = "VARIANT")]
    override_variant: Option<String>,
}

impl PlatformFlags {
    fn platform(&self) -> Result<Platform, Failure> {
        platform(
            &self.override_os,
            &self.override_arch,
            &self.override_variant,
        )
    }
}

/// Copy an image between registries, layouts and archives (skopeo copy).
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit copy docker://registry.example/app:1 oci:/srv/images:app-1\n  \
    ocikit copy --all --dest-creds me:secret oci:/srv/images:app-1 docker://mirror.example/app:1\n\n\
    Locations: docker://HOST/NAME[:TAG|@DIGEST], oci:DIR[:NAME], oci-archive:FILE[:NAME], \
    docker-archive:FILE[:REPO:TAG].")]
pub(crate) struct CopyArgs {
    /// Where the image comes from.
    source: String,
    /// Where it goes.
    destination: String,
    /// Copy every image of a multi-platform index (same as --multi-arch all).
    #[arg(short, long)]
    all: bool,
    /// system (the host's image only), all, or index-only.
    #[arg(long, value_name = "WHICH", value_parser = ["system", "all", "index-only"])]
    multi_arch: Option<String>,
    /// The manifest format to write: oci, or v2s2 (Docker).
    #[arg(short, long, value_name = "FORMAT", value_parser = ["oci", "v2s2"])]
    format: Option<String>,
    #[command(flatten)]
    sides: SrcDestFlags,
    /// Store the layers with this compression (gzip or zstd), recompressing those in another.
    #[arg(long, value_name = "FORMAT", value_parser = ["gzip", "zstd"])]
    dest_compress_format: Option<String>,
    /// Retry a failed request this many times (default 4).
    #[arg(long, value_name = "N")]
    retry_times: Option<u32>,
    #[command(flatten)]
    trust: TrustFlags,
    #[command(flatten)]
    signing: crate::trust::SigningFlags,
    #[command(flatten)]
    platform: PlatformFlags,
}

fn retry_client(times: Option<u32>) -> Option<ClientBuilder> {
    times.map(|n| {
        ClientBuilder::default().retry(RetryPolicy::new(
            n,
            Duration::from_millis(250),
            Duration::from_secs(8),
        ))
    })
}

pub(crate) fn copy(a: CopyArgs, globals: &Globals) -> Result<ExitCode, Failure> {
    let src = location(&a.source)?;
    let dst = location(&a.destination)?;
    let mut src_context = a.sides.source_context();
    let mut dest_context = a.sides.destination_context();
    if let Some(b) = retry_client(a.retry_times) {
        src_context = src_context.client(b.clone());
        dest_context = dest_context.client(b);
    }
    let trust = a.signing.apply(a.trust.options())?;
    let mut options = CopyOptions::new()
        .platform(a.platform.platform()?)
        .source_context(src_context)
        .destination_context(dest_context)
        .trust(trust);
    match (a.all, a.multi_arch.as_deref()) {
        (true, _) | (_, Some("all")) => options = options.all(true),
        (_, Some("index-only")) => options = options.index_only(true),
        _ => {}
    }
    match a.dest_compress_format.as_deref() {
        Some("gzip") => options = options.compress_layers(Some(Compression::Gzip)),
        Some("zstd") => options = options.compress_layers(Some(Compression::Zstd)),
        _ => {}
    }
    match a.format.as_deref() {
        Some("oci") => options = options.format(Some(Format::Oci)),
        Some("v2s2") => options = options.format(Some(Format::Docker)),
        _ => {}
    }
    let display = crate::progress::Display::new("copying", globals.quiet);
    if let Some(d) = &display {
        let d = d.clone();
        options = options.progress(move |e: &ocikit::progress::Event<'_>| d.event(e));
    }
    let report = copy_image(&src, &dst, &options)?;
    let copied = |action| report.blobs.iter().filter(|b| b.action == action).count();
    let summary = format!(
        "Copied {} blobs ({} bytes), {} already present, {} mounted; {} manifests written",
        copied(BlobAction::Copied),
        report.bytes_copied(),
        copied(BlobAction::Skipped),
        copied(BlobAction::Mounted),
        report.manifests.len()
    );
    if let Some(d) = &display {
        d.finish_all("copied");
    }
    if !globals.quiet {
        eprintln!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Describe an image without pulling its layers (skopeo inspect).
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit inspect docker://registry.example/app:1\n  \
    ocikit inspect --raw oci:/srv/images:app-1\n  \
    ocikit inspect --config docker://registry.example/app:1")]
pub(crate) struct InspectArgs {
    /// The image: docker://, oci:, oci-archive: or docker-archive: location.
    image: String,
    /// Print the manifest or index exactly as stored.
    #[arg(long)]
    raw: bool,
    /// Print the image's configuration (with --raw, its exact bytes).
    #[arg(long)]
    config: bool,
    /// Do not list the repository's tags.
    #[arg(short, long)]
    no_tags: bool,
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    platform: PlatformFlags,
}

pub(crate) fn inspect(a: InspectArgs) -> Result<ExitCode, Failure> {
    let location = location(&a.image)?;
    let platform = a.platform.platform()?;
    let context = a.registry.context();
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock<'_>, bytes: &[u8]| {
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(|e| Failure::io("writing to standard output", e))
    };
    if a.raw && !a.config {
        // The document as stored, without reading further.
        let opened = ocikit::copy::open_source_with(&location, &platform, &context)?;
        let top = opened.top_manifest()?;
        return write(&mut out, top.raw()).map(|()| ExitCode::SUCCESS);
    }
    let inspected = ocikit::inspect::inspect_with(&location, &platform, &context)?;
    if a.config {
        if a.raw {
            write(&mut out, inspected.config.raw())?;
        } else {
            let value: serde_json::Value = serde_json::from_slice(inspected.config.raw())
                .map_err(|e| Failure::Other("the config is not JSON".into(), Some(Box::new(e))))?;
            write(&mut out, &crate::json_text(&value))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let i = &inspected.inspection;
    let mut repo_tags = i.repo_tags.clone();
    if a.no_tags {
        repo_tags.clear();
    }
    // skopeo's fields, in skopeo's order (its `inspect` output type; `Name` only for a
    // registry, as skopeo leaves it empty and omits it elsewhere). Debian's skopeo 1.9
    // prints no `LayersData`, so neither does this.
    let mut map = serde_json::Map::new();
    if matches!(location, Location::Docker { .. }) {
        map.insert("Name".into(), i.name.clone().into());
    }
    map.insert("Digest".into(), i.digest.clone().into());
    map.insert("RepoTags".into(), serde_json::json!(repo_tags));
    if let Some(created) = &i.created {
        map.insert("Created".into(), created.clone().into());
    }
    map.insert(
        "DockerVersion".into(),
        docker_version(inspected.config.raw()).into(),
    );
    map.insert("Labels".into(), serde_json::json!(i.labels));
    map.insert("Architecture".into(), i.architecture.clone().into());
    if let Some(v) = &i.variant {
        map.insert("Variant".into(), v.clone().into());
    }
    map.insert("Os".into(), i.os.clone().into());
    map.insert("Layers".into(), serde_json::json!(i.layers));
    map.insert("Env".into(), serde_json::json!(i.env));
    write(&mut out, &crate::json_text(&serde_json::Value::Object(map)))?;
    Ok(ExitCode::SUCCESS)
}

/// The config's `docker_version` (Docker-built images carry it), else empty, as skopeo.
fn docker_version(config: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(config)
        .ok()
        .and_then(|v| v.get("docker_version")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// List a repository's tags (skopeo list-tags).
#[derive(Args)]
#[command(after_help = "Example:\n  ocikit list-tags docker://registry.example/app")]
pub(crate) struct ListTagsArgs {
    /// The repository: docker://HOST/NAME.
    repository: String,
    #[command(flatten)]
    registry: RegistryFlags,
}

pub(crate) fn list_tags(a: ListTagsArgs) -> Result<ExitCode, Failure> {
    let reference = docker_reference(&a.repository, "list-tags")?;
    let (repo, _) = a.registry.context().push_repository(&reference)?;
    let tags = repo.tags(None)?;
    let out = serde_json::json!({
        "Repository": format!("{}/{}", repo.registry(), repo.name()),
        "Tags": tags,
    });
    print!("{}", String::from_utf8_lossy(&crate::json_text(&out)));
    Ok(ExitCode::SUCCESS)
}

/// Delete an image's manifest from a registry (skopeo delete): every tag naming it goes.
#[derive(Args)]
#[command(after_help = "Example:\n  ocikit delete docker://registry.example/app:old")]
pub(crate) struct DeleteArgs {
    /// The image: docker://HOST/NAME:TAG or @DIGEST.
    image: String,
    #[command(flatten)]
    registry: RegistryFlags,
}

pub(crate) fn delete(a: DeleteArgs) -> Result<ExitCode, Failure> {
    let reference = docker_reference(&a.image, "delete")?;
    let (repo, r) = a.registry.context().push_repository(&reference)?;
    let target: TagOrDigest = match (r.digest(), r.tag()) {
        (Some(d), _) => TagOrDigest::Digest(d.clone()),
        (None, Some(t)) => TagOrDigest::Tag(t.clone()),
        (None, None) => TagOrDigest::Tag("latest".parse()?),
    };
    let descriptor = repo.head_manifest(&target)?;
    repo.delete_manifest(descriptor.digest())?;
    Ok(ExitCode::SUCCESS)
}

/// Log in to a registry, storing the credentials in the auth file skopeo and podman read.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    ocikit login -u me registry.example\n  \
    echo \"$TOKEN\" | ocikit login -u me --password-stdin registry.example:5000\n\n\
    The file is --authfile, else $REGISTRY_AUTH_FILE, else \
    $XDG_RUNTIME_DIR/containers/auth.json (containers-auth.json(5)).")]
pub(crate) struct LoginArgs {
    /// The registry, HOST[:PORT] (a docker:// prefix and a path are accepted and dropped).
    registry: String,
    /// The user name (asked for on a terminal when not given).
    #[arg(short, long)]
    username: Option<String>,
    /// The password (asked for on a terminal when not given).
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The auth file to write.
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Require HTTPS and verified certificates (true), or allow plain HTTP.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// Certificates for the registry (*.crt, *.cert, *.key).
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// Print the user name logged in to the registry, and nothing else.
    #[arg(long)]
    get_login: bool,
}

/// `docker://host/path` or `host/path` → `host`.
fn registry_host(text: &str) -> Result<String, Failure> {
    let t = text.strip_prefix("docker://").unwrap_or(text);
    let host = t.split('/').next().unwrap_or(t);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(Failure::Usage(format!("{text:?} is not a registry name")));
    }
    Ok(host.to_owned())
}

fn prompt(label: &str, secret: bool) -> Result<String, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "no {label} given: use --{label} or, for the password, --password-stdin"
        )));
    }
    let value = if secret {
        rpassword::prompt_password(format!("{}: ", capitalised(label)))
    } else {
        eprint!("{}: ", capitalised(label));
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    }
    .map_err(|e| Failure::io(format!("reading the {label}"), e))?;
    Ok(value.trim_end_matches(['\r', '\n']).to_owned())
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub(crate) fn login(a: LoginArgs) -> Result<ExitCode, Failure> {
    let host = registry_host(&a.registry)?;
    let file = a
        .authfile
        .clone()
        .unwrap_or_else(ocikit::distribution::primary_auth_file);
    if a.get_login {
        let found = ocikit::distribution::lookup_auth_file(&file, &host)?;
        return match found {
            Some(c) => {
                println!("{}", c.username());
                Ok(ExitCode::SUCCESS)
            }
            None => Err(Failure::NotFound(format!(
                "not logged into {host} (auth file {})",
                file.display()
            ))),
        };
    }
    if a.password.is_some() && a.password_stdin {
        return Err(Failure::Usage(
            "--password and --password-stdin exclude each other".into(),
        ));
    }
    let username = match a.username {
        Some(u) => u,
        None => prompt("username", false)?,
    };
    let password = match (a.password, a.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::io("reading the password from standard input", e))?;
            text.trim_end_matches(['\r', '\n']).to_owned()
        }
        (None, false) => prompt("password", true)?,
    };
    if username.is_empty() {
        return Err(Failure::Usage("the user name is empty".into()));
    }
    let creds = Credentials::new(username, password);
    // The credentials are checked before they are stored, as podman and skopeo do.
    let mut builder = ocikit::distribution::Client::builder()
        .credentials(host.clone(), creds.clone())
        .auth_files(Vec::new());
    if let Some(v) = a.tls_verify {
        builder = builder.tls_verify(v);
    }
    if let Some(d) = &a.cert_dir {
        builder = builder.cert_dir(d);
    }
    let client = builder.build()?;
    client.ping(&host)?;
    ocikit::distribution::store_auth_file_credentials(&file, &host, &creds)?;
    println!("Login Succeeded!");
    Ok(ExitCode::SUCCESS)
}

/// Remove a registry's credentials from the auth file (skopeo/podman logout).
#[derive(Args)]
#[command(after_help = "Examples:\n  ocikit logout registry.example\n  ocikit logout --all")]
pub(crate) struct LogoutArgs {
    /// The registry, HOST[:PORT].
    #[arg(required_unless_present = "all")]
    registry: Option<String>,
    /// Remove the credentials of every registry.
    #[arg(short, long)]
    all: bool,
    /// The auth file to edit.
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
}

pub(crate) fn logout(a: LogoutArgs) -> Result<ExitCode, Failure> {
    let file = a
        .authfile
        .clone()
        .unwrap_or_else(ocikit::distribution::primary_auth_file);
    if a.all {
        ocikit::distribution::remove_auth_file_credentials(&file, None)?;
        println!("Removed login credentials for all registries");
        return Ok(ExitCode::SUCCESS);
    }
    let host = registry_host(a.registry.as_deref().unwrap_or_default())?;
    let key = a
        .registry
        .as_deref()
        .map(|r| r.strip_prefix("docker://").unwrap_or(r))
        .unwrap_or(&host);
    let removed = ocikit::distribution::remove_auth_file_credentials(&file, Some(key))?;
    if removed == 0 {
        return Err(Failure::NotFound(format!(
            "not logged into {key} (auth file {})",
            file.display()
        )));
    }
    println!("Removed login credentials for {key}");
    Ok(ExitCode::SUCCESS)
}
