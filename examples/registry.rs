//! Serves a registry whose repositories are OCI layouts, until interrupted.
//!
//! ```text
//! cargo run --release --example registry -- [--addr 127.0.0.1:5000] [--root DIR] [--htpasswd FILE]
//! ```
//!
//! Prints the address it serves on (useful with `--addr 127.0.0.1:0`). Repositories are OCI
//! layouts under `DIR/repositories/<name>/_layout` (default DIR: `./ocikit-registry`). Plain
//! HTTP only: keep it on loopback, or behind a TLS proxy. With `--htpasswd` (bcrypt entries,
//! `htpasswd -Bbn USER PASSWORD`), every request needs basic auth.
//!
//! ```text
//! skopeo copy --dest-tls-verify=false docker://busybox docker://127.0.0.1:5000/busybox
//! ```

use std::process::ExitCode;

use ocikit::distribution::{Htpasswd, RegistryServer};

const USAGE: &str = "usage: registry [--addr HOST:PORT] [--root DIR] [--htpasswd FILE]";

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr = "127.0.0.1:5000".to_owned();
    let mut root = std::path::PathBuf::from("ocikit-registry");
    let mut users = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--addr" => addr = value()?,
            "--root" => root = value()?.into(),
            "--htpasswd" => users = Some(Htpasswd::from_file(value()?)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}").into()),
        }
    }
    let mut server = RegistryServer::new(&root);
    if let Some(users) = users {
        server = server.htpasswd(users);
    }
    let handle = server.bind(addr.as_str())?;
    // The one line a script waits for (the address, with the port chosen for `:0`).
    println!("serving on {} (root {})", handle.addr(), root.display());
    handle.wait();
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registry: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
