//! Interoperability with the peers CI installs: oci-image-tool, umoci and skopeo read what we
//! write; we read what umoci and skopeo write.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::run;
use ocikit_layout::ocikit_image::{AnyManifest, ImageSource, ResolvedImage, parse_platform};
use ocikit_layout::{DockerArchive, Layout, OciArchive};

fn amd64() -> ocikit_layout::oci_spec::image::Platform {
    parse_platform("linux/amd64").unwrap()
}

/// Reads every blob of an image, verified.
fn read_image(src: &dyn ImageSource, img: &ResolvedImage) {
    for layer in img.manifest.layers() {
        let mut r = src.open_blob(layer).unwrap();
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
    }
}

/// A layout made by umoci: a busybox rootfs repacked into image `t`.
fn umoci_layout(dir: &Path) -> std::path::PathBuf {
    let layout = dir.join("umoci");
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci")
        .args(["new", "--image"])
        .arg(format!("{}:t", layout.display())));
    let bundle = dir.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(&bundle));
    std::fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    std::fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox")).unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(&bundle));
    layout
}

/// `oci-image-tool validate --type image --ref name=NAME` on the layout. oci-image-tool
/// 1.0.0-rc1 reports "not unique" for any name once index.json has three entries or more (a
/// bug of its own), so each entry of `name` is validated in a copy of the layout whose
/// index.json lists that entry alone, byte for byte as we wrote it.
fn validate(l: &Layout, name: &str) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(l.index_path()).unwrap()).unwrap();
    let entries: Vec<&serde_json::Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
        .collect();
    assert!(!entries.is_empty(), "no entry {name}");
    for entry in entries {
        let copy = tempfile::tempdir().unwrap();
        run(Command::new("cp")
            .arg("-a")
            .arg(l.root().join("blobs"))
            .arg(l.root().join("oci-layout"))
            .arg(copy.path()));
        let mut one = index.clone();
        one["manifests"] = serde_json::json!([entry]);
        std::fs::write(copy.path().join("index.json"), one.to_string()).unwrap();
        run(Command::new("oci-image-tool")
            .args(["validate", "--type", "image", "--ref"])
            .arg(format!("name={name}"))
            .arg(copy.path()));
    }
    if l.refs().unwrap().len() <= 2 {
        run(Command::new("oci-image-tool")
            .args(["validate", "--type", "image", "--ref"])
            .arg(format!("name={name}"))
            .arg(l.root()));
    }
}

#[test]
fn peers_accept_layouts_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let root = dir.join("ours");
    let l = Layout::create(&root).unwrap();
    let (m, d) = common::image(&l, "amd64", b"hello from ocikit");
    let (_, arm) = common::image(&l, "arm64", b"arm");
    l.set_ref(&"v1".parse().unwrap(), &d).unwrap();
    validate(&l, "v1");
    l.set_ref(&"library/x:1.0".parse().unwrap(), &d).unwrap();
    l.add_ref(&"both".parse().unwrap(), &d).unwrap();
    l.add_ref(&"both".parse().unwrap(), &arm).unwrap();
    for name in ["v1", "library/x:1.0", "both"] {
        validate(&l, name);
    }
    common::check_schemas(&l);
    // oci-image-tool 1.0.0-rc1 does not know the index media type (it counts an index entry
    // as a match of every `--ref`): the index is checked by skopeo below instead.
    let index = common::index(&l, &[d.clone(), arm]);
    l.set_ref(&"multi".parse().unwrap(), &index.descriptor())
        .unwrap();
    common::check_schemas(&l);
    // oci-image-tool's own (older) schemas, document by document.
    run(Command::new("oci-image-tool")
        .args(["validate", "--type", "imageIndex"])
        .arg(l.index_path()));
    run(Command::new("oci-image-tool")
        .args(["validate", "--type", "imageIndex"])
        .arg(l.blob_path(index.digest())));
    run(Command::new("oci-image-tool")
        .args(["validate", "--type", "manifest"])
        .arg(l.blob_path(d.digest())));

    let bundle = dir.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:v1", root.display()))
        .arg(&bundle));
    assert_eq!(
        std::fs::read(bundle.join("rootfs/hello.txt")).unwrap(),
        b"hello from ocikit"
    );

    let archive = dir.join("sk.tar");
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:v1", root.display()))
        .arg(format!("oci-archive:{}:v1", archive.display())));
    // skopeo kept our manifest byte for byte.
    let a = OciArchive::open(&archive).unwrap();
    let img = a.fetch_image(&"v1".parse().unwrap(), &amd64()).unwrap();
    assert_eq!(img.manifest.raw(), m.raw());
    let inspect = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:multi", root.display())));
    assert!(inspect.contains("manifests"));
}

#[test]
fn we_read_what_umoci_and_skopeo_write() {
    let dir = tempfile::tempdir().unwrap();
    let umoci = umoci_layout(dir.path());
    let l = Layout::open(&umoci).unwrap();
    assert!(l.fsck().unwrap().is_ok());
    let img = l.fetch_image(&"t".parse().unwrap(), &amd64()).unwrap();
    read_image(&l, &img);
    assert_eq!(img.manifest.layers().len(), 1);

    // skopeo: layout, OCI archive, docker archive.
    let sk = dir.path().join("skopeo");
    let oa = dir.path().join("o.tar");
    let da = dir.path().join("d.tar");
    for dst in [
        format!("oci:{}:s", sk.display()),
        format!("oci-archive:{}:s", oa.display()),
        format!("docker-archive:{}:example/s:v1", da.display()),
    ] {
        run(Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:t", umoci.display()))
            .arg(dst));
    }
    let sl = Layout::open(&sk).unwrap();
    assert!(sl.fsck().unwrap().is_ok());
    let simg = sl.fetch_image(&"s".parse().unwrap(), &amd64()).unwrap();
    assert_eq!(simg.manifest.raw(), img.manifest.raw());

    let a = OciArchive::open(&oa).unwrap();
    let aimg = a.fetch_image(&"s".parse().unwrap(), &amd64()).unwrap();
    read_image(&a, &aimg);
    assert_eq!(aimg.config.raw(), img.config.raw());

    // skopeo's docker archive has decompressed layers (legacy `<id>/layer.tar` links too).
    let d = DockerArchive::open(&da).unwrap();
    let di = d.find(Some("example/s:v1")).unwrap();
    assert_eq!(di.repo_tags, ["docker.io/example/s:v1"]);
    let dimg = d.fetch_image(&"v1".parse().unwrap(), &amd64()).unwrap();
    assert_eq!(dimg.config.raw(), img.config.raw());
    read_image(&d, &dimg);
    // The layer is the uncompressed tar, whose digest is the diff-id.
    assert_eq!(
        dimg.manifest.layers()[0].digest(),
        &img.config.diff_ids()[0]
    );
    let mut tar = Vec::new();
    d.open_blob(&dimg.manifest.layers()[0])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    assert!(tar.len() > 1_000_000);
    let _ = AnyManifest::Manifest(dimg.manifest);
}

#[test]
fn skopeo_reads_docker_archives_we_write() {
    use ocikit_layout::DockerArchiveFormat;
    use ocikit_layout::ocikit_image::ImageDestination;
    for format in [DockerArchiveFormat::Oci, DockerArchiveFormat::Legacy] {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path().join("l")).unwrap();
        let (m, d) = common::image(&l, "amd64", b"docker");
        let path = dir.path().join("d.tar");
        let w = ocikit_layout::DockerArchiveWriter::with_format(&path, Some("example/app"), format)
            .unwrap();
        for blob in std::iter::once(m.config()).chain(m.layers()) {
            w.copy_blob_from(&l, blob).unwrap();
        }
        w.tag(&"v1".parse().unwrap(), &l.fetch_manifest(&d).unwrap())
            .unwrap();
        w.finish().unwrap();
        let out = dir.path().join("back");
        run(Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("docker-archive:{}:example/app:v1", path.display()))
            .arg(format!("oci:{}:b", out.display())));
        let back = Layout::open(&out).unwrap();
        let img = back.fetch_image(&"b".parse().unwrap(), &amd64()).unwrap();
        // skopeo keeps the config bytes.
        let mut config = Vec::new();
        l.open_blob(m.config())
            .unwrap()
            .read_to_end(&mut config)
            .unwrap();
        assert_eq!(img.config.raw(), config, "{format:?}");
    }
}
