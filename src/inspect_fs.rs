//! An image's final filesystem, read without unpacking it: what a program listing or
//! searching an image's files needs, from any location [`copy`](crate::copy) reads.
//!
//! [`image_fs`] merges the layers (every whiteout and opaque directory honoured) into an
//! [`ImageFs`](ocikit_image::ImageFs), in memory, bounded by the number of paths, nothing
//! written to disk; [`Filesystem::read_contents`] streams the files' contents. A single
//! layer's entries are read with [`LayerReader`](ocikit_image::LayerReader).
//!
//! ```no_run
//! use ocikit::copy::Location;
//! use ocikit::image::host_platform;
//!
//! let location: Location = "oci:/var/lib/images:alpine".parse()?;
//! let fs = ocikit::inspect_fs::image_fs(&location, &host_platform())?;
//! for entry in fs.view().entries() {
//!     let m = entry.meta();
//!     println!("{:?} {:o} {}:{} {} {}", m.kind(), m.mode(), m.uid(), m.gid(), m.size(),
//!              entry.path().display());
//! }
//! # Ok::<_, ocikit::Error>(())
//! ```

use std::io::Read;

use ocikit_image::oci_spec::image::Platform;
use ocikit_image::{AnyManifest, Config, FsEntry, ImageFs, Manifest, select_manifest};

use crate::copy::{Location, OpenedSource, open_source_with};
use crate::{Error, SystemContext};

/// An image's final filesystem with the source it came from, to stream contents again.
pub struct Filesystem {
    fs: ImageFs,
    source: OpenedSource,
    manifest: Manifest,
    config: Config,
}

impl std::fmt::Debug for Filesystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filesystem")
            .field("manifest", &self.manifest.digest())
            .field("paths", &self.fs.len())
            .finish_non_exhaustive()
    }
}

impl Filesystem {
    /// The merged view: [`ImageFs::entries`], [`ImageFs::get`] and the rest.
    pub fn view(&self) -> &ImageFs {
        &self.fs
    }

    /// The image manifest read.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Streams every layer holding a visible file again (verified again) and calls `f` with
    /// each visible regular file and its content, once per file: see
    /// [`ImageFs::read_image_contents`].
    pub fn read_contents(
        &self,
        f: impl FnMut(&FsEntry<'_>, &mut dyn Read) -> ocikit_image::Result<()>,
    ) -> Result<(), Error> {
        self.fs
            .read_image_contents(self.source.source(), &self.manifest, &self.config, f)?;
        Ok(())
    }
}

/// The final filesystem of the image `location` names (for `platform` when it names an
/// index), its layers streamed once each and verified; a `docker://` location is reached as
/// the system's files say ([`SystemContext::new`]).
pub fn image_fs(location: &Location, platform: &Platform) -> Result<Filesystem, Error> {
    image_fs_with(location, platform, &SystemContext::new())
}

/// [`image_fs`], reaching a `docker://` location as `context` says.
pub fn image_fs_with(
    location: &Location,
    platform: &Platform,
    context: &SystemContext,
) -> Result<Filesystem, Error> {
    let source = open_source_with(location, platform, context)?;
    let mut current = source.top_manifest()?;
    let mut depth = 0;
    let manifest = loop {
        match current {
            AnyManifest::Manifest(m) => break m,
            AnyManifest::Index(index) if depth < ocikit_image::MAX_INDEX_DEPTH => {
                let child = select_manifest(&index, platform)?.clone();
                current = source.source().fetch_manifest(&child)?;
                depth += 1;
            }
            AnyManifest::Index(_) => {
                return Err(ocikit_image::Error::Invalid {
                    kind: ocikit_image::DocumentKind::Index,
                    field: "manifests".into(),
                    reason: "indexes nested too deep".into(),
                }
                .into());
            }
        }
    };
    let config = source.source().fetch_config(&manifest)?;
    let fs = ImageFs::from_image(source.source(), &manifest, &config)?;
    Ok(Filesystem {
        fs,
        source,
        manifest,
        config,
    })
}
