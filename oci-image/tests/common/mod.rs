//! Helpers shared by the layer tests: a tar writer that can say anything (hostile paths
//! included, which `tar::Builder` refuses to write), and tree inspection.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One tar entry as a test wants it, written verbatim.
#[derive(Clone, Debug)]
pub enum E<'a> {
    File(&'a str, &'a [u8]),
    FileMode(&'a str, &'a [u8], u32),
    Dir(&'a str),
    DirMode(&'a str, u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
    Char(&'a str, u32, u32),
    /// A file with PAX records (uid, gid, mtime, xattrs).
    Pax(&'a str, &'a [u8], Vec<(&'a str, &'a [u8])>),
}

fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let name = &mut h.as_old_mut().name;
    assert!(path.len() <= name.len(), "test paths fit the header");
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h
}

fn link_header(path: &str, target: &str, kind: tar::EntryType) -> tar::Header {
    let mut h = header(path, kind, 0, 0o777);
    let ln = &mut h.as_old_mut().linkname;
    ln[..target.len()].copy_from_slice(target.as_bytes());
    h
}

/// A plain tar of `entries`.
pub fn tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(p, data) => append(
                &mut b,
                header(p, tar::EntryType::Regular, data.len() as u64, 0o644),
                data,
            ),
            E::FileMode(p, data, mode) => append(
                &mut b,
                header(p, tar::EntryType::Regular, data.len() as u64, *mode),
                data,
            ),
            E::Dir(p) => append(&mut b, header(p, tar::EntryType::Directory, 0, 0o755), b""),
            E::DirMode(p, mode) => {
                append(&mut b, header(p, tar::EntryType::Directory, 0, *mode), b"")
            }
            E::Symlink(p, t) => append(&mut b, link_header(p, t, tar::EntryType::Symlink), b""),
            E::Hardlink(p, t) => append(&mut b, link_header(p, t, tar::EntryType::Link), b""),
            E::Fifo(p) => append(&mut b, header(p, tar::EntryType::Fifo, 0, 0o644), b""),
            E::Char(p, major, minor) => {
                let mut h = header(p, tar::EntryType::Char, 0, 0o666);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                append(&mut b, h, b"");
            }
            E::Pax(p, data, records) => {
                b.append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
                    .unwrap();
                append(
                    &mut b,
                    header(p, tar::EntryType::Regular, data.len() as u64, 0o644),
                    data,
                );
            }
        }
    }
    b.into_inner().unwrap()
}

fn append(b: &mut tar::Builder<Vec<u8>>, mut h: tar::Header, data: &[u8]) {
    h.set_cksum();
    b.append(&h, data).unwrap();
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Everything below `dir`, as sorted lines `path type mode size content-hash link`, for
/// comparing trees.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().display().to_string();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let line = if ft.is_symlink() {
            format!(
                "{rel} link -> {}",
                std::fs::read_link(&p).unwrap().display()
            )
        } else if ft.is_dir() {
            format!("{rel} dir {:o}", m.mode() & 0o7777)
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            format!(
                "{rel} file {:o} {} {}",
                m.mode() & 0o7777,
                data.len(),
                ocikit_image::sha256(&data)
            )
        } else {
            format!("{rel} special {:o}", m.mode() & 0o170000)
        };
        out.push(line);
        if ft.is_dir() {
            walk(base, &p, out);
        }
    }
}

/// Runs `umoci` with `args`, failing the test with its stderr unless it succeeds.
pub fn umoci(args: &[&str]) {
    let out = std::process::Command::new("umoci")
        .args(args)
        .output()
        .expect("umoci is installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "umoci {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The layers of the image tagged `tag` in an OCI layout, with their diff_ids (read by hand:
/// this crate has no layout reader).
pub fn image_layers(
    layout: &std::path::Path,
    tag: &str,
) -> Vec<(
    ocikit_image::oci_spec::image::Descriptor,
    ocikit_image::oci_spec::image::Digest,
)> {
    use ocikit_image::{AnyManifest, Config, Index};
    let index = Index::from_bytes(std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = index
        .manifests()
        .iter()
        .find(|d| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                .map(String::as_str)
                == Some(tag)
        })
        .unwrap()
        .clone();
    let blob = |d: &ocikit_image::oci_spec::image::Descriptor| {
        std::fs::read(layout.join("blobs/sha256").join(d.digest().digest())).unwrap()
    };
    let AnyManifest::Manifest(m) =
        AnyManifest::from_bytes(blob(&desc), Some(desc.media_type())).unwrap()
    else {
        panic!("not an image manifest");
    };
    let config = Config::from_bytes(blob(m.config())).unwrap();
    m.layers().iter().cloned().zip(config.diff_ids()).collect()
}
