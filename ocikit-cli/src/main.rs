//! `ocikit`: the everyday skopeo, umoci, podman and buildah commands, without a daemon.
//!
//! Each subcommand lives in the module of the peer whose job it does: [`registry`] (skopeo's
//! `copy`, `inspect`, `list-tags`, `delete`, `login`, `logout`), [`layout`] (umoci's `unpack`,
//! `gc`, and a layout `fsck`), [`store`] (podman's `pull`, `images`, `rmi`, `prune`, `run`)
//! [`serve`], [`build`], [`artifact`], [`sync`], [`trust`] (`sign`, `verify`,
//! `generate-key`) and [`work`] (buildah's working containers). Errors print as one line
//! with their causes and map to the exit codes in [`failure`].

// The doc comments of the argument types are clap's help texts, written as users read them
// (`USER[:PASSWORD]`, `[SOURCE] BUNDLE`), not rustdoc links.
#![allow(rustdoc::broken_intra_doc_links)]

mod artifact;
mod build;
mod failure;
mod layout;
mod progress;
mod registry;
mod serve;
mod store;
mod sync;
mod trust;
mod work;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use failure::Failure;

/// Container images and containers without a daemon: copy, inspect, unpack, store and run.
#[derive(Parser)]
#[command(
    name = "ocikit",
    version,
    propagate_version = true,
    after_help = "Exit codes: 0 success, 1 other failure, 2 bad arguments, 3 not found, \
                  4 credentials refused, 5 registry unreachable, 6 refused by policy or \
                  failed verification; `run` exits with the container's status (125: ocikit \
                  failed)."
)]
struct Cli {
    /// Print nothing but results and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Copy(registry::CopyArgs),
    Inspect(registry::InspectArgs),
    ListTags(registry::ListTagsArgs),
    Delete(registry::DeleteArgs),
    Login(registry::LoginArgs),
    Logout(registry::LogoutArgs),
    Sync(sync::SyncArgs),
    Unpack(layout::UnpackArgs),
    Gc(layout::GcArgs),
    Fsck(layout::FsckArgs),
    Pull(store::PullArgs),
    Images(store::ImagesArgs),
    Rmi(store::RmiArgs),
    Prune(store::PruneArgs),
    Run(store::RunArgs),
    Serve(serve::ServeArgs),
    Build(build::BuildArgs),
    Artifact(artifact::ArtifactArgs),
    Sign(trust::SignArgs),
    Verify(trust::VerifyArgs),
    GenerateKey(trust::GenerateKeyArgs),
    Work(work::WorkArgs),
    /// Print a completion script: `ocikit completion bash > /etc/bash_completion.d/ocikit`.
    #[command(after_help = "Example:\n  ocikit completion zsh > \"${fpath[1]}/_ocikit\"")]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Copy(_) => "copy",
            Command::Inspect(_) => "inspect",
            Command::ListTags(_) => "list-tags",
            Command::Delete(_) => "delete",
            Command::Login(_) => "login",
            Command::Logout(_) => "logout",
            Command::Sync(_) => "sync",
            Command::Build(_) => "build",
            Command::Artifact(_) => "artifact",
            Command::Sign(_) => "sign",
            Command::Verify(_) => "verify",
            Command::GenerateKey(_) => "generate-key",
            Command::Unpack(_) => "unpack",
            Command::Gc(_) => "gc",
            Command::Fsck(_) => "fsck",
            Command::Pull(_) => "pull",
            Command::Images(_) => "images",
            Command::Rmi(_) => "rmi",
            Command::Prune(_) => "prune",
            Command::Run(_) => "run",
            Command::Serve(_) => "serve",
            Command::Work(_) => "work",
            Command::Completion { .. } => "completion",
        }
    }
}

/// Global settings every subcommand sees.
pub(crate) struct Globals {
    /// `--quiet`.
    pub(crate) quiet: bool,
}

/// JSON as skopeo and podman print it (Go's `MarshalIndent` with four spaces), with a
/// final newline.
pub(crate) fn json_text(value: &serde_json::Value) -> Vec<u8> {
    use serde::Serialize;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser).expect("JSON values serialise");
    out.push(b'\n');
    out
}

fn dispatch(command: Command, globals: &Globals) -> Result<ExitCode, Failure> {
    match command {
        Command::Copy(a) => registry::copy(a, globals),
        Command::Inspect(a) => registry::inspect(a),
        Command::ListTags(a) => registry::list_tags(a),
        Command::Delete(a) => registry::delete(a),
        Command::Login(a) => registry::login(a),
        Command::Logout(a) => registry::logout(a),
        Command::Sync(a) => sync::sync(a, globals),
        Command::Build(a) => build::build(a, globals),
        Command::Artifact(a) => artifact::artifact(a),
        Command::Sign(a) => trust::sign(a),
        Command::Verify(a) => trust::verify(a),
        Command::GenerateKey(a) => trust::generate_key(a),
        Command::Unpack(a) => layout::unpack(a, globals),
        Command::Gc(a) => layout::gc(a),
        Command::Fsck(a) => layout::fsck(a),
        Command::Pull(a) => store::pull(a, globals),
        Command::Images(a) => store::images(a, globals),
        Command::Rmi(a) => store::rmi(a),
        Command::Prune(a) => store::prune(a),
        Command::Run(a) => store::run(a, globals),
        Command::Serve(a) => serve::serve(a),
        Command::Work(a) => work::work(a, globals),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ocikit", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    // `run` starts containers through the runtime, which executes this program again as
    // each container's init: that call must come first.
    ocikit::runtime::init_if_requested();
    let cli = Cli::parse();
    let name = cli.command.name();
    let run = match &cli.command {
        Command::Run(_) => true,
        Command::Work(a) => a.is_run(),
        _ => false,
    };
    // As an unprivileged user, what writes image files with their owners or mounts the
    // store's overlays runs in a user namespace of the user's ids (`podman unshare`'s): the
    // store's subcommands and unpack. Nothing is done for root. The kernel allows it only
    // while the process has one thread, as here, before any work.
    let needs_namespace = matches!(
        cli.command,
        Command::Pull(_)
            | Command::Images(_)
            | Command::Rmi(_)
            | Command::Prune(_)
            | Command::Run(_)
            | Command::Unpack(_)
            | Command::Work(_)
    );
    if needs_namespace && let Err(e) = ocikit::runtime::enter_user_namespace() {
        let failure = Failure::Lib(e.into());
        eprintln!("ocikit {name}: {}", failure.chain());
        return failure.exit_code(run);
    }
    let globals = Globals { quiet: cli.quiet };
    match dispatch(cli.command, &globals) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("ocikit {name}: {}", failure.chain());
            failure.exit_code(run)
        }
    }
}
