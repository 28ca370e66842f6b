//! Layers against umoci, the peer that unpacks and repacks OCI images:
//! - a layer we build, placed in a layout, unpacked by `umoci unpack`, gives the same tree as
//!   our own `apply_layer`;
//! - layers `umoci repack` produced after creating, changing and deleting files and
//!   directories (whiteouts included) are applied by us to the same tree as umoci's own
//!   unpack.
//!
//! Needs `umoci` (installed by scripts/test.sh) and root (umoci keeps owners only as root);
//! CI has both. Trees compare path, type, mode, owner, size, content hash, link target and
//! xattrs.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use common::{image_layers, listing, umoci};
use ocikit_image::oci_spec::image::{Descriptor, MediaType};
use ocikit_image::{
    ApplyOptions, BuildOptions, Config, Manifest, apply_layer, build_layer, descriptor_of,
};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root for owners and device nodes (CI runs as root)"
    );
}

/// Lines of `listing` with owners and xattrs added.
fn tree(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .map(|line| {
            let rel = line.split(' ').next().unwrap().to_owned();
            let p = dir.join(&rel);
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mut names = vec![0u8; 4096];
            let n = rustix::fs::llistxattr(p.as_path(), &mut names[..]).unwrap_or(0);
            let mut xattrs: Vec<String> = names[..n]
                .split(|&b| b == 0)
                .filter(|x| !x.is_empty())
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect();
            xattrs.sort();
            format!("{line} {}:{} {}", m.uid(), m.gid(), xattrs.join(","))
        })
        .collect()
}

fn write_blob(layout: &Path, bytes: &[u8], media_type: MediaType) -> Descriptor {
    let d = descriptor_of(media_type, bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(d.digest().digest()), bytes).unwrap();
    d
}

/// A one-layer image in a fresh layout, tagged `t`, written by hand (ocikit-image has no layout
/// writer; that is ocikit-layout's, which depends on this crate).
fn layout_with_layer(layout: &Path, blob: &[u8], layer: &ocikit_image::BuiltLayer) {
    std::fs::create_dir_all(layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let layer_desc = write_blob(layout, blob, layer.descriptor.media_type().clone());
    assert_eq!(&layer_desc, &layer.descriptor);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
    });
    let config = Config::from_bytes(serde_json::to_vec(&config).unwrap()).unwrap();
    let config_desc = write_blob(layout, config.raw(), MediaType::ImageConfig);
    let manifest: ocikit_image::oci_spec::image::ImageManifest =
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
        }))
        .unwrap();
    let manifest = Manifest::new(manifest).unwrap();
    let mut manifest_desc = write_blob(layout, manifest.raw(), MediaType::ImageManifest);
    manifest_desc.set_annotations(Some(
        [(
            "org.opencontainers.image.ref.name".to_owned(),
            "t".to_owned(),
        )]
        .into(),
    ));
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest_desc]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

#[test]
fn umoci_unpacks_our_layer_to_the_same_tree() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc/sub")).unwrap();
    std::fs::write(src.join("etc/hostname"), b"box\n").unwrap();
    std::fs::write(src.join("etc/sub/big"), vec![9u8; 3_000_000]).unwrap();
    std::fs::write(src.join("n".repeat(160)), b"long").unwrap();
    symlink("../etc/hostname", src.join("etc/sub/rel")).unwrap();
    symlink("/etc/hostname", src.join("abs")).unwrap();
    std::fs::hard_link(src.join("etc/hostname"), src.join("hard")).unwrap();
    std::fs::write(src.join("suid"), b"#!").unwrap();
    std::fs::set_permissions(src.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::create_dir(src.join("tmp")).unwrap();
    std::fs::set_permissions(src.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::lchown(src.join("etc/hostname"), Some(1000), Some(2000)).unwrap();
    rustix::fs::setxattr(
        src.join("suid").as_path(),
        "user.note",
        b"x",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();

    let mut blob = Vec::new();
    let layer = build_layer(&src, &mut blob, &BuildOptions::new()).unwrap();
    let layout = tmp.path().join("layout");
    layout_with_layer(&layout, &blob, &layer);

    let bundle = tmp.path().join("bundle");
    umoci(&[
        "unpack",
        "--image",
        &format!("{}:t", layout.display()),
        bundle.to_str().unwrap(),
    ]);

    let ours = tmp.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    apply_layer(
        &ours,
        &blob[..],
        layer.descriptor.media_type(),
        Some(&layer.diff_id),
        &ApplyOptions::new(),
    )
    .unwrap();
    assert_eq!(tree(&bundle.join("rootfs")), tree(&ours));
    assert_eq!(tree(&ours), tree(&src));

    // The blob is a series of gzip members (one per MiB of tar): the other readers of layers
    // take it whole. `gzip -dc` and Python's gzip give the diff_id; `tar -xzf` and Go's
    // compress/gzip in oci-image-tool unpack it to the same tree.
    assert!(layer.uncompressed_size > 2 << 20, "several members");
    let file = tmp.path().join("layer.tar.gz");
    std::fs::write(&file, &blob).unwrap();
    let sh = |script: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", script, "sh", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let hex = layer.diff_id.digest().to_owned();
    assert!(sh("gzip -dc \"$1\" | sha256sum").starts_with(&hex));
    assert!(
        sh("python3 -c 'import gzip,hashlib,sys; print(hashlib.sha256(gzip.open(sys.argv[1]).read()).hexdigest())' \"$1\"")
            .starts_with(&hex)
    );
    let untarred = tmp.path().join("tar");
    std::fs::create_dir(&untarred).unwrap();
    sh(&format!(
        "tar -xzf \"$1\" --xattrs --xattrs-include='*' -C {}",
        untarred.display()
    ));
    assert_eq!(tree(&untarred), tree(&ours));
    let tool = tmp.path().join("tool");
    sh(&format!(
        "oci-image-tool unpack --ref name=t {} {}",
        layout.display(),
        tool.display()
    ));
    // oci-image-tool applies neither owners nor xattrs and masks modes with its umask: the
    // content is what it says of the decompression.
    let content = |dir: &Path| -> Vec<String> {
        tree(dir)
            .into_iter()
            .map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                let hash = f.iter().find(|w| w.starts_with("sha256:")).copied();
                format!("{} {} {}", f[0], f[1], hash.unwrap_or(""))
            })
            .collect()
    };
    assert_eq!(content(&tool), content(&ours));
}

#[test]
fn we_apply_umoci_repacked_layers_to_umocis_tree() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let image = format!("{}:t", layout.display());
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);

    // Each step unpacks the image as it stands, changes the tree, and repacks: one new layer
    // per step (umoci diffs against the unpack it made).
    let step = |n: u32, change: &dyn Fn(&Path)| {
        let bundle = tmp.path().join(format!("bundle{n}"));
        let b = bundle.to_str().unwrap().to_owned();
        umoci(&["unpack", "--image", &image, &b]);
        change(&bundle.join("rootfs"));
        umoci(&["repack", "--image", &image, &b]);
    };
    // Layer 1: a little tree.
    step(1, &|rootfs| {
        std::fs::create_dir_all(rootfs.join("etc/conf.d")).unwrap();
        std::fs::write(rootfs.join("etc/conf.d/a"), b"a").unwrap();
        std::fs::write(rootfs.join("etc/conf.d/b"), b"b").unwrap();
        std::fs::create_dir_all(rootfs.join("var/lib/app")).unwrap();
        std::fs::write(rootfs.join("var/lib/app/state"), b"1").unwrap();
        std::fs::write(rootfs.join("etc/motd"), b"hello").unwrap();
        symlink("motd", rootfs.join("etc/motd.link")).unwrap();
    });
    // Layer 2: change, delete a file and a directory, replace a link by a directory.
    step(2, &|rootfs| {
        std::fs::write(rootfs.join("etc/motd"), b"changed").unwrap();
        std::fs::remove_file(rootfs.join("etc/conf.d/a")).unwrap();
        std::fs::remove_dir_all(rootfs.join("var/lib/app")).unwrap();
        std::fs::remove_file(rootfs.join("etc/motd.link")).unwrap();
        std::fs::create_dir(rootfs.join("etc/motd.link")).unwrap();
        std::fs::write(rootfs.join("etc/motd.link/inside"), b"i").unwrap();
        std::fs::set_permissions(
            rootfs.join("etc/conf.d/b"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    });
    // Layer 3: a deleted directory comes back with other content.
    step(3, &|rootfs| {
        std::fs::create_dir_all(rootfs.join("var/lib/app")).unwrap();
        std::fs::write(rootfs.join("var/lib/app/other"), b"2").unwrap();
    });

    let layers = image_layers(&layout, "t");
    assert!(layers.len() >= 3, "umoci wrote {} layers", layers.len());
    let ours = tmp.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    let mut whiteouts = 0;
    for (layer, diff_id) in &layers {
        let blob =
            std::fs::File::open(layout.join("blobs/sha256").join(layer.digest().digest())).unwrap();
        let verified = ocikit_image::VerifyingReader::for_descriptor(blob, layer).unwrap();
        let r = apply_layer(
            &ours,
            verified,
            layer.media_type(),
            Some(diff_id),
            &ApplyOptions::new(),
        )
        .unwrap();
        whiteouts += r.whiteouts;
    }
    // conf.d/a and var/lib/app were deleted: umoci writes a whiteout for each.
    assert!(whiteouts >= 2, "umoci's layers held {whiteouts} whiteouts");

    let check = tmp.path().join("check");
    umoci(&["unpack", "--image", &image, check.to_str().unwrap()]);
    assert_eq!(tree(&ours), tree(&check.join("rootfs")));
    assert!(!ours.join("etc/conf.d/a").exists());
    assert_eq!(std::fs::read(ours.join("var/lib/app/other")).unwrap(), b"2");
    assert!(!ours.join("var/lib/app/state").exists());
}
