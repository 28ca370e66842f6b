//! Builds an image as `buildah from`, `run`, `config` and `commit` do, with a working
//! container of the image store: over IMAGE, one command writes `/built-by`, the entrypoint
//! becomes `cat /built-by`, and the change is committed as one new layer named NAME.
//!
//! ```text
//! cargo run --release --example work -- IMAGE NAME [STORE]
//! ```
//!
//! IMAGE is a name the store has or a location to pull (`docker://...`, `oci:DIR:NAME`);
//! STORE defaults to the store of `ocikit pull`. Needs root (overlay mounts, namespaces) and
//! a `/bin/sh` in the image. The whole of buildah's command line is `ocikit work`.

use std::path::PathBuf;
use std::process::ExitCode;

use ocikit::store::Store;
use ocikit::working::{
    CommitOptions, ConfigEdit, FromOptions, Network, RunInOptions, WorkingContainer,
};

fn build() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [image, name, rest @ ..] = args.as_slice() else {
        return Err("usage: work IMAGE NAME [STORE]".into());
    };
    let root = rest
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(Store::default_root);
    let store = Store::open(root)?;

    let mut container = WorkingContainer::from_image(&store, image, &FromOptions::new())?;
    let script = "echo built by ocikit > /built-by";
    let command = ["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()];
    let status = container.run(&command, &RunInOptions::new().network(Network::None))?;
    if status.code() != 0 {
        container.remove()?;
        return Err(format!("{script:?} exited with {}", status.code()).into());
    }
    let entrypoint = vec!["/bin/cat".to_owned(), "/built-by".to_owned()];
    container.configure(&ConfigEdit::new().entrypoint(entrypoint).cmd(Vec::new()))?;
    let committed = container.commit(&CommitOptions::new().name(name))?;
    container.remove()?;
    println!("{name} {}", committed.manifest.digest());
    Ok(())
}

fn main() -> ExitCode {
    // The runtime re-executes this program as the container's init: this comes first.
    ocikit::init_if_requested();
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("work: {}", ocikit::ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
