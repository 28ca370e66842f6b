//! Layer reading: any bytes, under any layer media type, read by `LayerReader` and merged by
//! `ImageFs` never panic; and layers made of a small vocabulary of entries (whiteouts,
//! opaque markers, hard links, symlinked parents, replacements) give the same tree in the
//! merged view as `apply_layer` makes on disk, whenever both accept them.
#![no_main]
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ocikit_image::oci_spec::image::MediaType;
use ocikit_image::{ApplyOptions, EntryKind, ImageFs, LayerReader, apply_layer, sha256};

#[derive(Arbitrary, Debug)]
enum Kind {
    File(u8),
    Dir(u8),
    Symlink(u8),
    Hardlink(u8),
    Fifo,
}

#[derive(Arbitrary, Debug)]
struct Entry {
    path: u8,
    extra: Option<u8>,
    kind: Kind,
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// Raw bytes as a layer, and the media type they come under.
    Raw(u8, Vec<u8>),
    /// Layers of entries, applied and merged.
    Layers(Vec<Vec<Entry>>),
}

/// Names that meet: whiteouts of each other, opaque markers, links between them.
const PARTS: &[&str] = &[
    "a", "b", "c", "a/b", "b/c", ".wh.a", ".wh.b", "a/.wh.b", ".wh..wh..opq", "a/.wh..wh..opq",
    "l", "l/x", "./", "d/e/f", ".wh.l", ".wh..wh.plnk",
];

const TARGETS: &[&str] = &["a", "b", "a/b", "c", "l", "/a", "../b", "b/c", "x", "/"];

fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let name = &mut h.as_old_mut().name;
    name[..path.len()].copy_from_slice(path.as_bytes());
    if let Some(link) = link {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    h
}

fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries.iter().take(16) {
        let mut path = PARTS[e.path as usize % PARTS.len()].to_owned();
        if let Some(x) = e.extra {
            path = format!("{path}/{}", PARTS[x as usize % PARTS.len()]);
        }
        let (h, data) = match &e.kind {
            Kind::File(n) => {
                let data = vec![*n; *n as usize % 5];
                (header(&path, tar::EntryType::Regular, data.len() as u64, 0o644, None), data)
            }
            Kind::Dir(m) => (header(&path, tar::EntryType::Directory, 0, 0o700 | u32::from(*m & 0o77), None), vec![]),
            Kind::Symlink(n) => {
                let t = TARGETS[*n as usize % TARGETS.len()];
                (header(&path, tar::EntryType::Symlink, 0, 0o777, Some(t)), vec![])
            }
            Kind::Hardlink(n) => {
                let t = TARGETS[*n as usize % TARGETS.len()];
                (header(&path, tar::EntryType::Link, 0, 0o644, Some(t)), vec![])
            }
            Kind::Fifo => (header(&path, tar::EntryType::Fifo, 0, 0o600, None), vec![]),
        };
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// `path kind mode size content` of a tree on disk.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let t = m.file_type();
        let line = if t.is_symlink() {
            format!("{rel} l {}", std::fs::read_link(&p).unwrap().display())
        } else if t.is_dir() {
            format!("{rel} d {:o}", m.mode() & 0o7777)
        } else if t.is_file() {
            format!("{rel} f {:o} {}", m.mode() & 0o7777, sha256(&std::fs::read(&p).unwrap()))
        } else {
            format!("{rel} p")
        };
        out.push(line);
        if t.is_dir() {
            walk(root, &p, out);
        }
    }
}

fn view(layers: &[Vec<u8>]) -> Option<Vec<String>> {
    let mut fs = ImageFs::new();
    for l in layers {
        fs.add_layer(LayerReader::new(&l[..], &MediaType::ImageLayer).ok()?).ok()?;
    }
    let mut hashes = HashMap::new();
    for (i, l) in layers.iter().enumerate() {
        let reader = LayerReader::new(&l[..], &MediaType::ImageLayer).unwrap();
        fs.read_contents(i, reader, |e, content| {
            let mut data = Vec::new();
            content.read_to_end(&mut data)?;
            assert!(hashes.insert(e.path().to_owned(), sha256(&data)).is_none());
            Ok(())
        })
        .expect("a layer merged once reads again");
    }
    Some(
        fs.entries()
            .map(|e| {
                let m = e.meta();
                let rel = e.path().display();
                match m.kind() {
                    EntryKind::Symlink => format!("{rel} l {}", m.link_target().unwrap().display()),
                    EntryKind::Directory => format!("{rel} d {:o}", m.mode()),
                    EntryKind::File => {
                        format!("{rel} f {:o} {}", m.mode(), hashes[e.hardlink().unwrap_or(e.path())])
                    }
                    _ => format!("{rel} p"),
                }
            })
            .collect(),
    )
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(mt, bytes) => {
            let mt = match mt % 4 {
                0 => MediaType::ImageLayer,
                1 => MediaType::ImageLayerGzip,
                2 => MediaType::ImageLayerZstd,
                _ => MediaType::Other("application/x-anything".into()),
            };
            if let Ok(mut reader) = LayerReader::new(&bytes[..], &mt) {
                if let Ok(entries) = reader.entries() {
                    for entry in entries {
                        let Ok(mut entry) = entry else { break };
                        let _ = entry.read_to_end(&mut Vec::new());
                    }
                }
            }
            let mut fs = ImageFs::new();
            for _ in 0..2 {
                if let Ok(reader) = LayerReader::new(&bytes[..], &mt) {
                    let _ = fs.add_layer(reader);
                }
            }
            let _ = fs.entries().count();
        }
        Input::Layers(layers) => {
            let layers: Vec<Vec<u8>> = layers.iter().take(3).map(|l| layer(l)).collect();
            let dir = std::env::temp_dir().join(format!("ocikit-fuzz-read-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let applied = layers.iter().all(|l| {
                apply_layer(&dir, &l[..], &MediaType::ImageLayer, None, &ApplyOptions::new()).is_ok()
            });
            let merged = view(&layers);
            if applied && let Some(mut merged) = merged {
                let mut on_disk = Vec::new();
                walk(&dir, &dir, &mut on_disk);
                on_disk.sort();
                merged.sort();
                assert_eq!(merged, on_disk, "the merged view differs from apply");
            }
        }
    }
});
