//! Layer application against hostile tars: entries generated from a vocabulary of escapes
//! (`..`, absolute paths, symlinks out, hardlinks out, whiteouts of parents) are applied to a
//! root next to a sentinel directory, in remove or overlay form; whatever happens, nothing
//! outside the root changes.
#![no_main]
use std::io::Write;
use std::path::Path;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Kind {
    File(u8),
    Dir,
    Symlink(u8),
    Hardlink(u8),
    Fifo,
}

#[derive(Arbitrary, Debug)]
struct Entry {
    path: u8,
    extra: Option<u8>,
    kind: Kind,
    mode: u16,
}

/// Path pieces that reach for the outside.
const PARTS: &[&str] = &[
    "a", "b", "..", ".", "/", "a/..", "../outside", "/outside", "link", "link/x", ".wh.a",
    ".wh..wh..opq", "a/.wh.b", ".wh..", "a/b/c", "OUT", "/../..", "link/..", "dir/",
];

fn target(n: u8, outside: &str) -> String {
    match n % 6 {
        0 => outside.to_owned(),
        1 => "../../..".into(),
        2 => "/".into(),
        3 => format!("{outside}/sentinel"),
        4 => "a".into(),
        _ => PARTS[n as usize % PARTS.len()].replace("OUT", outside),
    }
}

fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let name = &mut h.as_old_mut().name;
    let p = path.as_bytes();
    let n = p.len().min(name.len());
    name[..n].copy_from_slice(&p[..n]);
    if let Some(link) = link {
        let ln = &mut h.as_old_mut().linkname;
        let l = link.as_bytes();
        let n = l.len().min(ln.len());
        ln[..n].copy_from_slice(&l[..n]);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_cksum();
    h
}

fn snapshot(dir: &Path, out: &mut Vec<String>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() { std::fs::read(&p).unwrap() } else { Vec::new() };
            out.push(format!("{} {:?} {:?}", p.display(), m.file_type(), content));
            if m.is_dir() {
                snapshot(&p, out);
            }
        }
    }
}

fuzz_target!(|entries: Vec<Entry>| {
    let base = std::env::temp_dir().join(format!("ocikit-fuzz-apply-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("sentinel"), b"untouched").unwrap();
    let outside_s = outside.display().to_string();

    let mut b = tar::Builder::new(Vec::new());
    for e in entries.iter().take(32) {
        let mut path = PARTS[e.path as usize % PARTS.len()].replace("OUT", &outside_s);
        if let Some(x) = e.extra {
            path = format!("{path}/{}", PARTS[x as usize % PARTS.len()]);
        }
        let mode = u32::from(e.mode) & 0o7777;
        let (h, data): (tar::Header, Vec<u8>) = match &e.kind {
            Kind::File(n) => {
                let data = vec![*n; *n as usize % 7];
                (header(&path, tar::EntryType::Regular, data.len() as u64, mode, None), data)
            }
            Kind::Dir => (header(&path, tar::EntryType::Directory, 0, mode | 0o700, None), vec![]),
            Kind::Symlink(n) => {
                let t = target(*n, &outside_s);
                (header(&path, tar::EntryType::Symlink, 0, 0o777, Some(&t)), vec![])
            }
            Kind::Hardlink(n) => {
                let t = target(*n, &outside_s);
                (header(&path, tar::EntryType::Link, 0, 0o644, Some(&t)), vec![])
            }
            Kind::Fifo => (header(&path, tar::EntryType::Fifo, 0, mode, None), vec![]),
        };
        b.append(&h, &data[..]).unwrap();
    }
    let layer = b.into_inner().unwrap();
    let mut before = Vec::new();
    snapshot(&outside, &mut before);
    // The first entry's mode bit 15 (not a permission bit) picks overlay form, where
    // whiteouts become devices and opaque markers xattrs in the (empty) root.
    let whiteouts = match entries.first() {
        Some(e) if e.mode & 0x8000 != 0 => {
            ocikit_image::Whiteouts::Overlay(ocikit_image::OverlayXattrs::Trusted)
        }
        _ => ocikit_image::Whiteouts::Remove,
    };
    let _ = ocikit_image::apply_layer(
        &root,
        &layer[..],
        &ocikit_image::oci_spec::image::MediaType::ImageLayer,
        None,
        &ocikit_image::ApplyOptions::new().whiteouts(whiteouts),
    );
    let mut after = Vec::new();
    snapshot(&outside, &mut after);
    assert_eq!(before, after, "something outside the root changed");
    assert_eq!(
        std::fs::metadata(outside.join("sentinel")).unwrap().len(),
        9,
        "the sentinel changed"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(outside.join("sentinel")).unwrap().nlink(),
        1,
        "the sentinel gained a hard link"
    );
    // Nothing new next to root and outside.
    let names: Vec<_> = std::fs::read_dir(&base).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let _ = std::io::stderr().flush();
});
