//! Builds images as buildah does, with working containers of the image store:
//!
//! ```text
//! cargo run --release --example work -- [--store DIR] SUBCOMMAND ...
//!   from [--name NAME] IMAGE|scratch        a working container over IMAGE (pulled if missing)
//!   run [--network host|none] [-e K=V] [--user U] [--workingdir D] CONTAINER -- CMD...
//!   copy [--chown UID:GID] [--chmod MODE] CONTAINER SRC... DEST
//!   config [--entrypoint E] [--cmd C] [--env K=V|K-] [--workingdir D] [--user U]
//!          [--label K=V] [--annotation K=V] [--port P] [--volume V] [--stop-signal S]
//!          [--author A] CONTAINER            (E, C: a JSON array, or a shell command)
//!   commit [--timestamp EPOCH] [--empty-layer] CONTAINER [IMAGE]
//!   push IMAGE DEST                          (DEST as the copy recipe takes it)
//!   containers | rm CONTAINER...
//! ```
//!
//! Needs root (overlay mounts, namespaces). Flags have buildah's names. `run` exits with the
//! command's exit code.

use std::process::ExitCode;

use ocikit::store::Store;
use ocikit::working::{
    CommitOptions, ConfigEdit, CopyInOptions, FromOptions, Network, PushOptions, RunInOptions,
    WorkingContainer, push,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A JSON array, or a shell command run by `/bin/sh -c` (buildah's two forms).
fn command(text: &str) -> Result<Vec<String>> {
    if text.trim_start().starts_with('[') {
        return Ok(serde_json::from_str(text)?);
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), text.into()])
}

fn key_value(text: &str) -> Result<(String, String)> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: KEY=VALUE expected"))?;
    Ok((k.into(), v.into()))
}

fn work() -> Result<ExitCode> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut root = Store::default_root();
    if args.first().map(String::as_str) == Some("--store") && args.len() > 1 {
        root = args.remove(1).into();
        args.remove(0);
    }
    let store = Store::open(root)?;
    if args.is_empty() {
        return Err(
            "a subcommand is needed: from, run, copy, config, commit, push, containers, rm".into(),
        );
    }
    let sub = args.remove(0);
    // Flags (with a value unless listed in `switches`) first, then the operands.
    let (mut flags, mut operands, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--" => rest.extend(it.by_ref()),
            "--empty-layer" => flags.push((a, String::new())),
            _ if a.starts_with('-') && operands.is_empty() => {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                flags.push((a, v));
            }
            _ => operands.push(a),
        }
    }
    let container = |operands: &[String]| -> Result<WorkingContainer> {
        let name = operands.first().ok_or("a container name is needed")?;
        Ok(WorkingContainer::open(&store, name)?)
    };
    match sub.as_str() {
        "from" => {
            let mut options = FromOptions::new();
            for (f, v) in &flags {
                match f.as_str() {
                    "--name" => options = options.name(v),
                    _ => return Err(format!("from: unknown flag {f}").into()),
                }
            }
            let image = operands.first().ok_or("from: an image is needed")?;
            let c = if image == "scratch" {
                WorkingContainer::from_scratch(&store, &options)?
            } else {
                WorkingContainer::from_image(&store, image, &options)?
            };
            println!("{}", c.name());
        }
        "run" => {
            let mut options = RunInOptions::new();
            for (f, v) in &flags {
                options = match f.as_str() {
                    "--network" | "--net" => match v.as_str() {
                        "host" => options.network(Network::Host),
                        "none" => options.network(Network::None),
                        _ => return Err(format!("run: --network host or none, not {v}").into()),
                    },
                    "-e" | "--env" => options.env(v),
                    "--user" => options.user(v),
                    "--workingdir" => options.workdir(v),
                    _ => return Err(format!("run: unknown flag {f}").into()),
                };
            }
            let cmd = if rest.is_empty() {
                operands[1.min(operands.len())..].to_vec()
            } else {
                rest
            };
            let status = container(&operands)?.run(&cmd, &options)?;
            return Ok(ExitCode::from(status.code().clamp(0, 255) as u8));
        }
        "copy" => {
            let mut options = CopyInOptions::new();
            for (f, v) in &flags {
                options = match f.as_str() {
                    "--chown" => {
                        let (u, g) = v.split_once(':').unwrap_or((v, v));
                        options.owner(u.parse()?, g.parse()?)
                    }
                    "--chmod" => options.mode(u32::from_str_radix(v, 8)?),
                    _ => return Err(format!("copy: unknown flag {f}").into()),
                };
            }
            if operands.len() < 3 {
                return Err("copy: CONTAINER SRC... DEST".into());
            }
            let sources: Vec<_> = operands[1..operands.len() - 1]
                .iter()
                .map(Into::into)
                .collect();
            container(&operands)?.copy_in(&sources, &operands[operands.len() - 1], &options)?;
        }
        "config" => {
            let mut edit = ConfigEdit::new();
            for (f, v) in &flags {
                edit = match f.as_str() {
                    "--entrypoint" => edit.entrypoint(command(v)?),
                    "--cmd" => edit.cmd(command(v)?),
                    "--env" | "-e" => match v.strip_suffix('-') {
                        Some(key) if !v.contains('=') => edit.unset_env(key),
                        _ => edit.env(v),
                    },
                    "--workingdir" => edit.workdir(v),
                    "--user" | "-u" => edit.user(v),
                    "--label" | "-l" => key_value(v).map(|(k, v)| edit.label(k, v))?,
                    "--annotation" | "-a" => key_value(v).map(|(k, v)| edit.annotation(k, v))?,
                    "--port" | "-p" => edit.port(v),
                    "--volume" | "-v" => edit.volume(v),
                    "--stop-signal" => edit.stop_signal(v),
                    "--author" => edit.author(v),
                    _ => return Err(format!("config: unknown flag {f}").into()),
                };
            }
            container(&operands)?.configure(&edit)?;
        }
        "commit" => {
            let mut options = CommitOptions::new();
            for (f, v) in &flags {
                options = match f.as_str() {
                    "--timestamp" => options.source_date_epoch(Some(v.parse()?)),
                    "--empty-layer" => options.empty_layer(true),
                    _ => return Err(format!("commit: unknown flag {f}").into()),
                };
            }
            if let Some(image) = operands.get(1) {
                options = options.name(image);
            }
            let committed = container(&operands)?.commit(&options)?;
            println!("{}", committed.manifest.digest());
        }
        "push" => {
            let [image, dest] = &operands[..] else {
                return Err("push: IMAGE DEST".into());
            };
            // Layers a commit stored uncompressed are gzipped on the way, as buildah pushes.
            let pushed = push(&store, image, &dest.parse()?, &PushOptions::new())?;
            println!("{}", pushed.digest());
        }
        "containers" => {
            for c in WorkingContainer::list(&store)? {
                let image = c.image_name.as_deref().unwrap_or("scratch");
                println!("{}\t{}\t{}", c.name, image, c.rootfs.display());
            }
        }
        "rm" => {
            for name in &operands {
                WorkingContainer::open(&store, name)?.remove()?;
            }
        }
        _ => return Err(format!("unknown subcommand {sub}").into()),
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // The runtime re-executes this program as each container's init.
    ocikit::init_if_requested();
    match work() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("work: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::from(125)
        }
    }
}
