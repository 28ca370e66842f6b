//! Serves a registry whose repositories are OCI layouts, until interrupted.
//!
//! ```text
//! cargo run --example registry -- [HOST:PORT] [DIR]
//! skopeo copy --dest-tls-verify=false docker://busybox docker://127.0.0.1:5000/busybox
//! ```
//!
//! Listens on HOST:PORT (default `127.0.0.1:5000`; port 0 picks a free one) and prints the
//! address. Repositories are OCI layouts under `DIR/repositories/<name>/_layout` (default DIR:
//! `./ocikit-registry`). Plain HTTP only: keep it on loopback, or behind a TLS proxy. The
//! `ocikit serve` command does the same, and can require users (`--htpasswd`).

use std::process::ExitCode;

use ocikit::distribution::RegistryServer;

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5000".into());
    let root = args.next().unwrap_or_else(|| "ocikit-registry".into());
    if args.next().is_some() {
        return Err("usage: registry [HOST:PORT] [DIR]".into());
    }
    let server = RegistryServer::new(&root).bind(addr.as_str())?;
    // The one line a script waits for (the address, with the port chosen for `:0`).
    println!("serving on {} (root {root})", server.addr());
    server.wait();
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
