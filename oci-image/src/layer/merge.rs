//! The image-level view: an image's layers merged into the filesystem they make, in memory
//! (names and metadata, never contents), with contents streamed from the layers on demand.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::read::{EntryKind, EntryMeta, LayerReader, LayerSummary, clean_path, join};
use crate::{Config, Error, ImageSource, Manifest, Result};

/// How many symlinks one resolution may pass through, as the kernel's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

/// An image's final filesystem: what is visible once its layers are applied in order, every
/// whiteout and opaque directory honoured, without writing anything to disk.
///
/// Built one layer at a time, base first, with [`add_layer`](Self::add_layer) (or all at once
/// from a source with [`from_image`](Self::from_image)): each layer is streamed once, its
/// entries read through [`LayerReader`] (so verified, and with the same format rules as
/// [`apply_layer`](crate::apply_layer)), and the tree of names kept in memory. Memory is
/// bounded by the number of paths and their metadata, never by file contents.
///
/// The merge follows what [`apply_layer`](crate::apply_layer) does on disk:
/// - an entry replaces what is at its path (a directory over a directory keeps the lower
///   one's children and takes the new owner, mode, time and xattrs; anything else replaces
///   the whole subtree);
/// - a whiteout removes the path it names and everything below, and an opaque marker every
///   entry below its directory, but never what the same layer put there (`layer.md`: "Files
///   that are present in the same layer as a whiteout file can only be hidden by whiteout
///   files in subsequent layers");
/// - parents are resolved through symlinks, inside the root (an entry `lib/x` over a link
///   `lib -> usr/lib` lands at `usr/lib/x`); a parent the layers never listed is a directory
///   with mode 0755, owner 0:0 and time 0 (apply makes it with the caller's owner and the
///   current time);
/// - a hard link is the file it names: same kind, mode, owner, size, xattrs and content, with
///   [`FsEntry::hardlink`] naming the first path (in byte order) of the file.
///
/// Contents are read in a second streaming pass over the layers that hold visible files:
/// [`read_contents`](Self::read_contents) for one layer,
/// [`read_image_contents`](Self::read_image_contents) for all.
#[derive(Clone, Debug)]
pub struct ImageFs {
    nodes: BTreeMap<Vec<u8>, Node>,
    root: EntryMeta,
    layers: usize,
    next_inode: u64,
}

#[derive(Clone, Debug)]
struct Node {
    meta: EntryMeta,
    /// Which file this is: hard links share it.
    inode: u64,
    /// The layer that put the entry there.
    layer: usize,
    /// For a regular file: the layer and the index of the entry (in [`LayerReader`] order)
    /// that holds its content.
    origin: Option<(usize, u64)>,
}

fn dir_meta(path: &[u8]) -> EntryMeta {
    EntryMeta {
        components: Vec::new(),
        path: if path.is_empty() {
            PathBuf::from(".")
        } else {
            PathBuf::from(OsStr::from_bytes(path))
        },
        kind: EntryKind::Directory,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        size: 0,
        link: None,
        device: None,
        xattrs: Vec::new(),
    }
}

fn child(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// The keys strictly below `path` (`path/...`, all of them for the root ``): they sort
/// between `path/` and `path0`.
fn keys_below(nodes: &BTreeMap<Vec<u8>, Node>, path: &[u8]) -> Vec<Vec<u8>> {
    if path.is_empty() {
        return nodes.keys().cloned().collect();
    }
    let mut lo = path.to_vec();
    lo.push(b'/');
    let mut hi = path.to_vec();
    hi.push(b'/' + 1);
    nodes.range(lo..hi).map(|(k, _)| k.clone()).collect()
}

fn resolve_err(path: &[OsString], kind: io::ErrorKind, what: &str) -> Error {
    Error::Apply {
        path: String::from_utf8_lossy(&join(path)).into_owned(),
        op: "resolve",
        source: io::Error::new(kind, what.to_owned()),
    }
}

impl Default for ImageFs {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageFs {
    /// An empty filesystem, before the first layer.
    pub fn new() -> Self {
        ImageFs {
            nodes: BTreeMap::new(),
            root: dir_meta(b""),
            layers: 0,
            next_inode: 0,
        }
    }

    /// Merges the layers of `manifest` from `source`, base first, each blob verified against
    /// its descriptor and each uncompressed stream against `config`'s diff_ids.
    pub fn from_image(
        source: &dyn ImageSource,
        manifest: &Manifest,
        config: &Config,
    ) -> Result<Self> {
        let mut fs = ImageFs::new();
        for (layer, diff_id) in image_layers(manifest, config)? {
            let blob = source.open_blob(layer)?;
            fs.add_layer(LayerReader::new(blob, layer.media_type())?.expect_diff_id(diff_id))?;
        }
        Ok(fs)
    }

    /// Merges the next layer (the first call takes the base layer), reading it to its end.
    /// On an error (the layer did not verify, or holds an entry that cannot be applied) the
    /// view must not be used.
    pub fn add_layer<R: Read>(&mut self, mut reader: LayerReader<R>) -> Result<LayerSummary> {
        let layer = self.layers;
        let mut touched = HashSet::new();
        for (ordinal, entry) in reader.entries()?.enumerate() {
            let meta = entry?.into_meta();
            self.merge(layer, ordinal as u64, meta, &mut touched)?;
        }
        self.layers += 1;
        reader
            .summary()
            .cloned()
            .ok_or_else(|| Error::Io(io::Error::other("the layer was not verified")))
    }

    /// How many layers are merged.
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// The root directory's metadata (from a `./` entry of the layers, else mode 0755 and
    /// owner 0:0).
    pub fn root(&self) -> &EntryMeta {
        &self.root
    }

    /// How many paths are visible (the root not counted).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when nothing but the root is visible.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The visible entry at `path` (relative to the root, as [`EntryMeta::path`] gives it;
    /// symlinks are not followed).
    pub fn get(&self, path: impl AsRef<Path>) -> Option<FsEntry<'_>> {
        let key = path.as_ref().as_os_str().as_bytes();
        let (key, node) = self.nodes.get_key_value(key)?;
        let primary = self.primaries();
        Some(self.entry(key, node, &primary))
    }

    /// Every visible entry but the root, in byte order of their paths (a directory before
    /// what it holds).
    pub fn entries(&self) -> impl Iterator<Item = FsEntry<'_>> {
        let primary = self.primaries();
        self.nodes
            .iter()
            .map(move |(key, node)| self.entry(key, node, &primary))
    }

    fn entry<'a>(
        &'a self,
        key: &'a [u8],
        node: &'a Node,
        primary: &HashMap<u64, &'a [u8]>,
    ) -> FsEntry<'a> {
        FsEntry {
            node,
            hardlink: primary
                .get(&node.inode)
                .copied()
                .filter(|first| *first != key),
        }
    }

    /// The first path of every file with more than one.
    fn primaries(&self) -> HashMap<u64, &[u8]> {
        let mut seen: HashMap<u64, (&[u8], bool)> = HashMap::new();
        for (key, node) in &self.nodes {
            seen.entry(node.inode)
                .and_modify(|(_, shared)| *shared = true)
                .or_insert((key.as_slice(), false));
        }
        seen.into_iter()
            .filter(|(_, (_, shared))| *shared)
            .map(|(inode, (key, _))| (inode, key))
            .collect()
    }

    /// Streams layer number `layer` (0 for the base) again and calls `f` with each visible
    /// regular file whose content it holds and a reader of that content: once per file, at
    /// its first path (the other paths of a hard-linked file name it in
    /// [`FsEntry::hardlink`]). The layer is read to its end and verified before this returns;
    /// until then what `f` read is not trusted, and an error of `f` stops the reading.
    pub fn read_contents<R: Read>(
        &self,
        layer: usize,
        mut reader: LayerReader<R>,
        mut f: impl FnMut(&FsEntry<'_>, &mut dyn Read) -> Result<()>,
    ) -> Result<LayerSummary> {
        let primary = self.primaries();
        let mut wanted = HashMap::new();
        for (key, node) in &self.nodes {
            if let Some((l, ordinal)) = node.origin
                && l == layer
            {
                let entry = self.entry(key, node, &primary);
                if entry.hardlink.is_none() {
                    wanted.insert(ordinal, entry);
                }
            }
        }
        for (ordinal, entry) in reader.entries()?.enumerate() {
            let mut entry = entry?;
            if let Some(fs_entry) = wanted.get(&(ordinal as u64)) {
                f(fs_entry, &mut entry)?;
            }
        }
        reader
            .summary()
            .cloned()
            .ok_or_else(|| Error::Io(io::Error::other("the layer was not verified")))
    }

    /// [`read_contents`](Self::read_contents) for every layer of `manifest` that holds a
    /// visible file, base first, each verified as in [`from_image`](Self::from_image).
    pub fn read_image_contents(
        &self,
        source: &dyn ImageSource,
        manifest: &Manifest,
        config: &Config,
        mut f: impl FnMut(&FsEntry<'_>, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let holding: HashSet<usize> = self
            .nodes
            .values()
            .filter_map(|n| n.origin.map(|(l, _)| l))
            .collect();
        for (i, (layer, diff_id)) in image_layers(manifest, config)?.into_iter().enumerate() {
            if !holding.contains(&i) {
                continue;
            }
            let blob = source.open_blob(layer)?;
            let reader = LayerReader::new(blob, layer.media_type())?.expect_diff_id(diff_id);
            self.read_contents(i, reader, &mut f)?;
        }
        Ok(())
    }

    /// The directory `components` resolves to (its key; empty for the root), following
    /// symlinks inside the root; `None` when it does not exist. With `create`, missing
    /// directories named by `components` themselves are made, as apply does; one reached
    /// through a symlink's target is an error.
    fn resolve(&mut self, components: &[OsString], create: bool) -> Result<Option<Vec<u8>>> {
        let mut queue: VecDeque<(Vec<u8>, bool)> = components
            .iter()
            .map(|c| (c.as_bytes().to_vec(), true))
            .collect();
        let mut current: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        while let Some((c, literal)) = queue.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(c);
            let key = current.join(&b'/');
            match self
                .nodes
                .get(&key)
                .map(|n| (n.meta.kind, n.meta.link.clone()))
            {
                None if create && literal => {
                    let inode = self.inode();
                    self.nodes.insert(
                        key.clone(),
                        Node {
                            meta: dir_meta(&key),
                            inode,
                            layer: self.layers,
                            origin: None,
                        },
                    );
                }
                None if create => {
                    return Err(resolve_err(
                        components,
                        io::ErrorKind::NotFound,
                        "a parent is a symlink to nothing",
                    ));
                }
                None => return Ok(None),
                Some((EntryKind::Directory, _)) => {}
                Some((EntryKind::Symlink, target)) => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(Error::Apply {
                            path: String::from_utf8_lossy(&join(components)).into_owned(),
                            op: "resolve",
                            source: rustix::io::Errno::LOOP.into(),
                        });
                    }
                    current.pop();
                    let target = target.unwrap_or_default();
                    let target = target.as_os_str().as_bytes();
                    if target.starts_with(b"/") {
                        current.clear();
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        queue.push_front((part.to_vec(), false));
                    }
                }
                Some(_) => {
                    return Err(resolve_err(
                        components,
                        io::ErrorKind::NotADirectory,
                        "a parent is not a directory",
                    ));
                }
            }
        }
        Ok(Some(current.join(&b'/')))
    }

    fn inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.next_inode
    }

    /// Removes `key` and everything below it.
    fn remove_tree(&mut self, key: &[u8]) {
        self.nodes.remove(key);
        for k in keys_below(&self.nodes, key) {
            self.nodes.remove(&k);
        }
    }

    fn merge(
        &mut self,
        layer: usize,
        ordinal: u64,
        mut meta: EntryMeta,
        touched: &mut HashSet<Vec<u8>>,
    ) -> Result<()> {
        let components = std::mem::take(&mut meta.components);
        let lexical = join(&components);
        match meta.kind {
            EntryKind::Whiteout => {
                // "Whiteout files MUST only apply to resources in lower/parent layers".
                if touched.contains(&lexical) {
                    return Ok(());
                }
                let (name, parent) = components.split_last().expect("whiteouts have a name");
                if let Some(dir) = self.resolve(parent, false)? {
                    self.remove_tree(&child(&dir, name.as_bytes()));
                }
                return Ok(());
            }
            EntryKind::Opaque => {
                // "all siblings are hidden in the lower layer": what this layer put there stays.
                if let Some(dir) = self.resolve(&components, false)? {
                    // `touched` holds the parents of what it holds: checking every path
                    // below is checking each directory's children, as apply walks them.
                    let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
                    for k in keys_below(&self.nodes, &dir) {
                        if !touched.contains(&child(&lexical, &k[skip..])) {
                            self.nodes.remove(&k);
                        }
                    }
                }
                return Ok(());
            }
            _ => {}
        }
        let Some((name, parent)) = components.split_last() else {
            // The root's own entry: its metadata only.
            update_dir(&mut self.root, meta);
            return Ok(());
        };
        let dir = self.resolve(parent, true)?.expect("made");
        let key = child(&dir, name.as_bytes());
        meta.path = PathBuf::from(OsStr::from_bytes(&key));
        match meta.kind {
            EntryKind::Directory => match self.nodes.get_mut(&key) {
                Some(node) if node.meta.kind == EntryKind::Directory => {
                    update_dir(&mut node.meta, meta);
                    node.layer = layer;
                }
                _ => {
                    self.remove_tree(&key);
                    let inode = self.inode();
                    self.nodes.insert(
                        key,
                        Node {
                            meta,
                            inode,
                            layer,
                            origin: None,
                        },
                    );
                }
            },
            EntryKind::Hardlink => {
                let source = meta.link.clone().unwrap_or_default();
                let source = clean_path(source.as_os_str().as_bytes())?;
                let not_found = || {
                    resolve_err(
                        &components,
                        io::ErrorKind::NotFound,
                        "the link's source is not there",
                    )
                };
                let (source_name, source_parent) = source.split_last().ok_or_else(not_found)?;
                let source_dir = self.resolve(source_parent, false)?.ok_or_else(not_found)?;
                let source_key = child(&source_dir, source_name.as_bytes());
                let source_node = self.nodes.get(&source_key).ok_or_else(not_found)?.clone();
                if source_node.meta.kind == EntryKind::Directory {
                    return Err(Error::UnsafeEntry {
                        path: String::from_utf8_lossy(&lexical).into_owned(),
                        reason: "a hard link to a directory".into(),
                    });
                }
                if self.nodes.get(&key).map(|n| n.inode) != Some(source_node.inode) {
                    self.remove_tree(&key);
                    let mut node = source_node;
                    node.meta.path = meta.path;
                    node.layer = layer;
                    self.nodes.insert(key, node);
                }
            }
            kind => {
                self.remove_tree(&key);
                let inode = self.inode();
                self.nodes.insert(
                    key,
                    Node {
                        meta,
                        inode,
                        layer,
                        origin: (kind == EntryKind::File).then_some((layer, ordinal)),
                    },
                );
            }
        }
        touch(touched, &lexical);
        Ok(())
    }
}

/// A directory entry over an existing directory: the children stay, the metadata changes;
/// xattrs are set over the old ones, as `apply_layer` sets them.
fn update_dir(dir: &mut EntryMeta, new: EntryMeta) {
    let mut xattrs = std::mem::take(&mut dir.xattrs);
    for (name, value) in new.xattrs {
        match xattrs.iter_mut().find(|(n, _)| *n == name) {
            Some(old) => old.1 = value,
            None => xattrs.push((name, value)),
        }
    }
    let path = std::mem::take(&mut dir.path);
    *dir = EntryMeta {
        path,
        xattrs,
        ..new
    };
}

/// Records `path` and its parents as made by this layer.
fn touch(touched: &mut HashSet<Vec<u8>>, path: &[u8]) {
    let mut path = path.to_vec();
    loop {
        if !touched.insert(path.clone()) {
            break;
        }
        match path.iter().rposition(|&b| b == b'/') {
            Some(i) => path.truncate(i),
            None => break,
        }
    }
}

/// The manifest's layers with the config's diff_ids, which must be as many.
fn image_layers<'m>(
    manifest: &'m Manifest,
    config: &Config,
) -> Result<Vec<(&'m oci_spec::image::Descriptor, oci_spec::image::Digest)>> {
    let layers = manifest.layers();
    let diff_ids = config.diff_ids();
    if layers.len() != diff_ids.len() {
        return Err(Error::invalid(
            crate::DocumentKind::Config,
            "rootfs.diff_ids",
            format!(
                "{} diff_ids for {} layers in the manifest",
                diff_ids.len(),
                layers.len()
            ),
        ));
    }
    Ok(layers.iter().zip(diff_ids).collect())
}

/// One visible entry of an [`ImageFs`].
#[derive(Clone, Copy, Debug)]
pub struct FsEntry<'a> {
    node: &'a Node,
    hardlink: Option<&'a [u8]>,
}

impl<'a> FsEntry<'a> {
    /// Its metadata: path, kind (never a hard link, whiteout or opaque marker here), mode,
    /// owner, size, link target, device, xattrs.
    pub fn meta(&self) -> &'a EntryMeta {
        &self.node.meta
    }

    /// Its path, relative to the root.
    pub fn path(&self) -> &'a Path {
        &self.node.meta.path
    }

    /// For a file with several paths (hard links), the first of them in byte order, when
    /// this is another one; `None` for the first path and for files with one path.
    pub fn hardlink(&self) -> Option<&'a Path> {
        self.hardlink.map(|p| Path::new(OsStr::from_bytes(p)))
    }

    /// The layer (0 for the base) whose entry put this path there.
    pub fn layer(&self) -> usize {
        self.node.layer
    }

    /// For a regular file, the layer whose stream holds its content (a hard link's may be
    /// a lower one).
    pub fn content_layer(&self) -> Option<usize> {
        self.node.origin.map(|(l, _)| l)
    }
}
