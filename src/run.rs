//! Running bundles with `oci-runtime`: the last step of pull, unpack, run.
//!
//! The runtime starts each container's init by re-executing a program: by default the running
//! one (`/proc/self/exe`), which must then call [`ocikit_runtime::init_if_requested`] first thing
//! in `main` (the examples do); or a path given with [`RunOptions::helper`], such as the
//! `oci-runtime` binary.

use std::path::{Path, PathBuf};

use ocikit_runtime::{CreateOptions, ExitStatus, Runtime};

/// How [`run_bundle`] runs a container, set with chained setters on [`RunOptions::new`].
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    id: Option<String>,
    state_root: Option<PathBuf>,
    helper: Option<PathBuf>,
}

impl RunOptions {
    /// Defaults: see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The container id (default: `ocikit-<pid>-<n>`, unique in this process).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Where container state lives (default [`ocikit_runtime::default_root`]: `/run/ocikit`,
    /// or `$XDG_RUNTIME_DIR/ocikit` for any user but root).
    pub fn state_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.state_root = Some(root.into());
        self
    }

    /// The program re-executed as each container's init (default: this program, which must
    /// call [`ocikit_runtime::init_if_requested`] first in `main`).
    pub fn helper(mut self, helper: impl Into<PathBuf>) -> Self {
        self.helper = Some(helper.into());
        self
    }
}

/// Creates, starts and waits for the container of `bundle`, deletes it, and returns how its
/// process ended, like `runc run`. Standard input, output and error are the caller's.
pub fn run_bundle(bundle: &Path, options: &RunOptions) -> Result<ExitStatus, crate::Error> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let id = options.id.clone().unwrap_or_else(|| {
        format!(
            "ocikit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    });
    // /run/ocikit for root, $XDG_RUNTIME_DIR/ocikit for anyone else (as runc).
    let root = match options.state_root.clone() {
        Some(root) => root,
        None => ocikit_runtime::default_root()?,
    };
    let mut runtime = Runtime::new(root);
    if let Some(helper) = &options.helper {
        runtime = runtime.with_helper(helper);
    }
    Ok(runtime.run(&id, bundle, CreateOptions::new())?)
}
