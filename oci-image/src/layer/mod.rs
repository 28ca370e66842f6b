//! Layers: building a layer from a directory (or the difference of two), reading a layer's
//! entries, merging an image's layers into its final filesystem, and applying a layer's tar
//! stream to a root filesystem, or alone to an empty directory in overlayfs form.
//!
//! See [`build_layer`], [`build_diff_layer`], [`LayerReader`], [`ImageFs`] and [`apply_layer`]
//! (its Overlay form and Security sections). The format rules (compression, diff_id,
//! whiteouts, opaque markers, hard links, paths) live in `read`, which the others use.

mod apply;
mod build;
mod merge;
mod pgzip;
mod read;
mod root;

pub use apply::{
    ApplyOptions, ApplyReport, Devices, IdMap, IdRange, OverlayXattrs, Ownership, Whiteouts,
    apply_layer,
};
pub use build::{
    BuildOptions, BuiltLayer, build_diff_layer, build_layer, build_overlay_layer, compress_layer,
};
pub use merge::{FsEntry, ImageFs};
pub use read::{
    Decompressed, EntryKind, EntryMeta, LayerEntries, LayerEntry, LayerReader, LayerSummary,
    MAX_PATH_DEPTH,
};

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// Reads the regular file at `path` inside `root` (an unpacked root filesystem), resolving
/// every symlink on the way inside `root` as the container would see it, never on the host:
/// an image whose `/etc/passwd` links to `/etc/shadow` reads the image's own file, or nothing.
/// `Ok(None)` when there is no such file; a file longer than `limit` bytes is an error.
///
/// ```
/// let root = tempfile::tempdir()?;
/// std::fs::create_dir(root.path().join("etc"))?;
/// std::fs::write(root.path().join("etc/hostname"), "box\n")?;
/// std::os::unix::fs::symlink("/etc/hostname", root.path().join("name"))?;
/// let got = ocikit_image::read_in_root(root.path(), "/name", 1024)?;
/// assert_eq!(got.as_deref(), Some(&b"box\n"[..]));
/// assert_eq!(ocikit_image::read_in_root(root.path(), "/missing", 1024)?, None);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn read_in_root(root: &Path, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
    let file = match open_in_root(root, path) {
        Ok(f) => f,
        Err(Error::Apply { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let err = |source: std::io::Error| Error::Apply {
        path: path.to_owned(),
        op: "read",
        source,
    };
    let mut data = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(err)?;
    if data.len() as u64 > limit {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than {limit} bytes"),
        )));
    }
    Ok(Some(data))
}

/// Opens, read-only, the regular file at `path` inside `root`, resolved as
/// [`read_in_root`] resolves it (every link inside `root`, never on the host). A caller that
/// must write the file reopens this descriptor (`/proc/self/fd/N`), which names the file
/// found and nothing else.
pub fn open_in_root(root: &Path, path: &str) -> Result<std::fs::File> {
    let components = read::clean_path(path.as_bytes())?;
    let err = |source: std::io::Error| Error::Apply {
        path: path.to_owned(),
        op: "open",
        source,
    };
    let root = root::Root::open(root).map_err(err)?;
    root.open_file(&components).map_err(err)
}
