//! Whether a layer can be unpacked in overlay form before the layers below it are: a look at
//! its tar headers only.
//!
//! ocikit-image's `apply_layer` reads the layers below ([`ApplyOptions::lower_layers`]) for two
//! things only: a directory the layer needs but has not listed (yet), which takes the lower
//! directory's attributes, and a hard link whose source is not in the layer, which copies the
//! lower file. A layer that lists every directory before what it holds and links only to its
//! own files unpacks the same with or without them, so the store unpacks it at once, while the
//! layers below are still being unpacked. Every doubt counts as "needs them": the layer then
//! waits for the layers below, as before.
//!
//! [`ApplyOptions::lower_layers`]: ocikit_image::ApplyOptions::lower_layers

use std::collections::HashSet;
use std::io::{self, Read};

/// The prefix of a whiteout's name (image-spec `layer.md`).
const WHITEOUT_PREFIX: &str = ".wh.";
const BLOCK: usize = 512;

/// Watches the headers of a plain tar stream as it passes ([`Watch::push`]) and tells whether
/// the layer stands alone: every directory listed before what it holds, hard links only to
/// its own files, nothing it made replaced or whited out. Anything it does not read plainly
/// (PAX and GNU long-name headers, base-256 sizes, an unknown entry type, `..`, names that
/// are not UTF-8) counts as "needs the layers below".
#[derive(Debug, Default)]
pub(crate) struct Watch {
    header: Vec<u8>,
    /// Bytes of entry data (with padding) still to pass before the next header.
    skip: u64,
    needs_lowers: bool,
    ended: bool,
    dirs: HashSet<Vec<String>>,
    files: HashSet<Vec<String>>,
}

impl Watch {
    /// True once the layer is known to need the layers below.
    pub(crate) fn needs_lowers(&self) -> bool {
        self.needs_lowers
    }

    /// True when the whole archive was seen (its end-of-archive block) and it stands alone.
    pub(crate) fn stands_alone(&self) -> bool {
        self.ended && !self.needs_lowers
    }

    /// The next bytes of the tar stream.
    pub(crate) fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.ended && !self.needs_lowers {
            if self.skip > 0 {
                let n = (self.skip.min(data.len() as u64)) as usize;
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (BLOCK - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() == BLOCK {
                let header = std::mem::take(&mut self.header);
                if !self.entry(&header) {
                    self.needs_lowers = true;
                }
            }
        }
    }

    /// One header block; false when the layer needs the layers below (or is not plain).
    fn entry(&mut self, h: &[u8]) -> bool {
        if h.iter().all(|&b| b == 0) {
            self.ended = true;
            return true;
        }
        let posix = &h[257..263] == b"ustar\0";
        let gnu = &h[257..265] == b"ustar  \0";
        if !posix && !gnu {
            return false;
        }
        let Some(size) = octal(&h[124..136]) else {
            return false;
        };
        self.skip = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let mut path = Vec::new();
        if posix && h[345] != 0 {
            path.extend_from_slice(field(&h[345..500]));
            path.push(b'/');
        }
        path.extend_from_slice(field(&h[..100]));
        let Some(path) = components(&path) else {
            return false;
        };
        let Some((name, parents)) = path.split_last() else {
            return true; // the root itself: it is there
        };
        // Every directory above the entry must be one this layer listed already.
        if (1..=parents.len()).any(|end| !self.dirs.contains(&parents[..end])) {
            return false;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            // A whiteout (or an opaque marker) of what this layer made: what follows is no
            // longer plain.
            let mut target = parents.to_vec();
            target.push(hidden.to_owned());
            return !self
                .dirs
                .iter()
                .chain(&self.files)
                .any(|p| p.starts_with(&target));
        }
        let kind = h[156];
        // An entry over something this layer made replaces it: keep it simple, wait.
        if self.dirs.contains(&path) && kind != b'5' || self.files.contains(&path) {
            return false;
        }
        match kind {
            b'5' => {
                self.dirs.insert(path);
            }
            b'0' | b'\0' | b'7' => {
                self.files.insert(path);
            }
            b'1' => {
                let source = components(field(&h[157..257])).unwrap_or_default();
                return self.files.contains(&source);
            }
            b'2' | b'3' | b'4' | b'6' => {}
            _ => return false, // PAX, GNU long names, and the rest
        }
        true
    }
}

/// A plain tar stream passed on to whoever reads it, its headers shown to a [`Watch`]. With
/// `stop_early`, reading fails as soon as the layer needs the layers below.
pub(crate) struct Watched<R> {
    pub(crate) inner: R,
    pub(crate) watch: Watch,
    pub(crate) stop_early: bool,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop_early && self.watch.needs_lowers() {
            return Err(io::Error::other("the layer needs the layers below it"));
        }
        let n = self.inner.read(buf)?;
        self.watch.push(&buf[..n]);
        Ok(n)
    }
}

/// A NUL-terminated header field.
fn field(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// An octal header number (spaces and NULs around it); `None` for base-256 or garbage.
fn octal(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field(bytes)).ok()?.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The names of a path in a layer, without `.` and empty ones; `None` for `..` or a name
/// that is not UTF-8 (both rare: let `apply_layer` deal with them, after the layers below).
fn components(path: &[u8]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(String::from_utf8(c.to_vec()).ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stands_alone(bytes: &[u8]) -> bool {
        // In pieces of odd sizes, as reads come.
        let mut w = Watch::default();
        for piece in bytes.chunks(333) {
            w.push(piece);
        }
        w.stands_alone()
    }

    fn layer(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(0);
            h.set_mode(0o755);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            b.append_data(&mut h, path, io::empty()).unwrap();
        }
        b.into_inner().unwrap()
    }

    use tar::EntryType::{Directory as D, Link as L, Regular as F, Symlink as S};

    #[test]
    fn a_layer_that_lists_its_directories_and_links_its_own_files_stands_alone() {
        let t = layer(&[
            ("./", D, ""),
            ("usr/", D, ""),
            ("usr/bin/", D, ""),
            ("usr/bin/a", F, ""),
            ("usr/bin/b", L, "usr/bin/a"),
            ("usr/bin/c", S, "a"),
            ("usr/bin/.wh.old", F, ""),
        ]);
        assert!(stands_alone(&t));
        // A long name (a GNU or PAX header before it) is not read: it waits.
        let long = format!("usr/{}", "x".repeat(150));
        assert!(!stands_alone(&layer(&[("usr/", D, ""), (&long, F, "")])));
    }

    #[test]
    fn a_layer_that_needs_the_layers_below_waits_for_them() {
        // A directory it does not list.
        assert!(!stands_alone(&layer(&[("usr/bin/a", F, "")])));
        // Listed after what it holds.
        assert!(!stands_alone(&layer(&[("usr/a", F, ""), ("usr/", D, "")])));
        // A hard link to a file of a lower layer.
        assert!(!stands_alone(&layer(&[
            ("etc/", D, ""),
            ("etc/b", L, "etc/a")
        ])));
        // A whiteout of what it made, then an entry below it.
        assert!(!stands_alone(&layer(&[
            ("d/", D, ""),
            ("d/e/", D, ""),
            ("d/.wh.e", F, ""),
            ("d/e/x", F, "")
        ])));
        // A file replacing a directory it made.
        assert!(!stands_alone(&layer(&[("d/", D, ""), ("d", F, "")])));
        // `..`, and what is not a tar at all.
        let mut dotdot = layer(&[("a/", D, ""), ("a/x/b", F, "")]);
        dotdot[512..518].copy_from_slice(b"a/../b"); // the tar crate refuses to write it
        let mut h = tar::Header::from_byte_slice(&dotdot[512..1024]).clone();
        h.set_cksum();
        dotdot[512..1024].copy_from_slice(h.as_bytes());
        assert!(!stands_alone(&dotdot));
        assert!(!stands_alone(&[0x28; 1024]));
        // Cut short: not known to stand alone.
        let t = layer(&[("usr/", D, "")]);
        assert!(!stands_alone(&t[..512]));
    }
}
