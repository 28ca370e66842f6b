//! `serve`: the embedded registry (a distribution-spec v1.1 registry over an image layout).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ocikit::distribution::{Htpasswd, RegistryServer};

use crate::failure::Failure;

/// Serve a registry from a directory, as docker-registry does.
#[derive(Args)]
#[command(after_help = "Example:\n  \
    ocikit serve --addr 127.0.0.1:5000 --root /srv/registry --htpasswd /srv/htpasswd")]
pub(crate) struct ServeArgs {
    /// The address to listen on (port 0: any free port; the line printed names it).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5000")]
    addr: String,
    /// Where the registry keeps its repositories.
    #[arg(long, value_name = "DIR", default_value = "ocikit-registry")]
    root: PathBuf,
    /// Require these users (bcrypt htpasswd file, as docker-registry's).
    #[arg(long, value_name = "FILE")]
    htpasswd: Option<PathBuf>,
}

pub(crate) fn serve(a: ServeArgs) -> Result<ExitCode, Failure> {
    let mut server = RegistryServer::new(&a.root);
    if let Some(file) = &a.htpasswd {
        server = server.htpasswd(Htpasswd::from_file(file)?);
    }
    let handle = server.bind(a.addr.as_str())?;
    // The one line a script waits for (the address, with the port chosen for `:0`).
    println!("serving on {} (root {})", handle.addr(), a.root.display());
    handle.wait();
    Ok(ExitCode::SUCCESS)
}
