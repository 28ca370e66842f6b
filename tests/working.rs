//! Working containers, as buildah makes them: from an image of the store, commands run
//! inside, files copied in, the configuration edited, and the change committed as one layer;
//! compared with buildah itself and with `umoci unpack`.
//!
//! The `ocikit work` command does the same with buildah's flags, and is compared with buildah
//! too; the `work` recipe's image is checked.
//!
//! Needs root (overlay mounts, namespaces), the registry of scripts/test.sh
//! (`OCIKIT_TEST_REGISTRY`), busybox-static, umoci and buildah (scripts/test.sh installs them),
//! the `ocikit` command and the recipes built (`cargo build --workspace --examples`); fails
//! without them.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use ocikit::build::{BuildSpec, build_image};
use ocikit::copy::{CopyOptions, Location, copy};
use ocikit::image::{Compression, ImageSource, MediaTypeExt};
use ocikit::layout::Layout;
use ocikit::store::{RootfsOptions, Store, StoreError};
use ocikit::unpack::{UnpackOptions, unpack_image};
use ocikit::working::{
    CommitOptions, ConfigEdit, CopyInOptions, FromOptions, Network, PushOptions, RunInOptions,
    WorkingContainer, push,
};

mod common;
use common::{busybox_tree, example_binary, registry, run, workspace_binary};

fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "overlay mounts and namespaces need root (CI runs as root)"
    );
}

/// The runtime re-executes a helper as each container's init: the `ocikit` command, which
/// calls `init_if_requested` first (a test binary cannot).
fn runtime() -> ocikit::run::RunOptions {
    ocikit::run::RunOptions::new().helper(workspace_binary("ocikit"))
}

/// `ocikit work --root STORE ARGS...`, which must succeed; its standard output, trimmed.
fn work(store: &Path, args: &[&str]) -> String {
    run(Command::new(workspace_binary("ocikit"))
        .arg("work")
        .arg("--root")
        .arg(store)
        .args(args))
    .trim()
    .to_owned()
}

fn run_in() -> RunInOptions {
    RunInOptions::new().runtime(runtime())
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// A busybox image in `dir/src` named `base`, with the mount points a runtime needs (so that
/// buildah, which commits the ones it makes, and ocikit, which removes them, agree) and data
/// to delete and replace.
fn base_image(dir: &Path) -> Location {
    let tree = dir.join("tree");
    busybox_tree(&tree);
    for applet in ["rm", "mkdir", "ln", "touch", "chmod"] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(applet)).unwrap();
    }
    for d in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "data/dir/sub",
        "swap/old",
    ] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        std::fs::write(tree.join(f), "").unwrap();
        std::fs::set_permissions(
            tree.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    std::fs::write(
        tree.join("data/dir/sub/file"),
        "in a directory deleted later\n",
    )
    .unwrap();
    std::fs::write(tree.join("data/keep"), "kept\n").unwrap();
    std::fs::write(tree.join("swap/old/file"), "replaced\n").unwrap();
    let layout_dir = dir.join("src");
    let layout = Layout::create(&layout_dir).unwrap();
    let spec = BuildSpec::new().layer(&tree).cmd(vec!["/bin/sh".into()]);
    build_image(None, &layout, Some(&"base".parse().unwrap()), &spec).unwrap();
    format!("oci:{}:base", layout_dir.display())
        .parse()
        .unwrap()
}

/// Path → (type, mode, owner, content or link target) of every entry under `root`.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let m = std::fs::symlink_metadata(&path).unwrap();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                "dir".to_owned()
            } else if ft.is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if ft.is_file() {
                format!(
                    "file {:?}",
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap())
                )
            } else if ft.is_char_device() {
                format!("char {}", m.rdev())
            } else {
                "other".to_owned()
            };
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            out.insert(
                rel,
                format!(
                    "{what} mode {:o} owner {}:{}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid()
                ),
            );
            if ft.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// What the root filesystem of `image` in the layout `layout` holds, unpacked by ocikit.
fn unpacked(layout: &Path, image: &str, into: &Path) -> BTreeMap<String, String> {
    let layout = Layout::open(layout).unwrap();
    let platform = ocikit::image::host_platform();
    let source: &dyn ImageSource = &layout;
    let reference = image.parse().unwrap();
    let image = source.fetch_image(&reference, &platform).unwrap();
    unpack_image(source, &image, into, &UnpackOptions::new()).unwrap();
    tree(into)
}

/// The seed's scenario: from a busybox image, a command that installs a file and deletes one
/// of the image's, an entrypoint, a commit, a push to the registry; then the image pulled into
/// a fresh store and run: the new file is there, the deleted one is not, the entrypoint runs.
#[test]
fn built_image_is_pushed_pulled_and_runs() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    let store = Store::open(dir.path().join("store")).unwrap();
    let mut c =
        WorkingContainer::from_image(&store, &base.to_string(), &FromOptions::new()).unwrap();
    assert_eq!(c.name(), "base-working-container");
    let status = c
        .run(
            &sh("echo installed > /installed && rm /data/keep"),
            &run_in().network(Network::None),
        )
        .unwrap();
    assert_eq!(status.code(), 0);
    // The entrypoint alone: the image's Cmd would become its arguments.
    c.configure(
        &ConfigEdit::new()
            .entrypoint(vec!["/bin/cat".into(), "/installed".into()])
            .cmd(vec![]),
    )
    .unwrap();
    let committed = c.commit(&CommitOptions::new().name("built:v1")).unwrap();
    assert_eq!(committed.manifest.layers().len(), 2);
    let history = &committed.config.value().history().clone().unwrap();
    assert!(
        history
            .last()
            .and_then(|h| h.created_by().clone())
            .is_some_and(|c| c.contains("echo installed")),
        "{history:?}"
    );

    let reference = format!(
        "{}/ocikit-test/working-{}:v1",
        registry(),
        std::process::id()
    );
    // The commit stored its layer uncompressed, as buildah's does; the push gzips it.
    let new_layer = &committed.manifest.layers()[1];
    assert_eq!(
        new_layer.media_type().compression(),
        Some(Compression::None)
    );
    let dest: Location = format!("docker://{reference}").parse().unwrap();
    let pushed = push(&store, "built:v1", &dest, &PushOptions::new()).unwrap();
    assert_eq!(
        pushed.layers()[1].media_type().compression(),
        Some(Compression::Gzip)
    );
    assert_eq!(pushed.layers()[0], committed.manifest.layers()[0]);

    let fresh = dir.path().join("fresh");
    let out = run(Command::new(workspace_binary("ocikit"))
        .args(["run", "--rm", "--tls-verify=false", "--root"])
        .arg(&fresh)
        .arg(format!("docker://{reference}")));
    assert_eq!(out, "installed\n");
    let fresh = Store::open(&fresh).unwrap();
    let rootfs = fresh
        .mount_rootfs(&reference, "check", &RootfsOptions::new())
        .unwrap();
    assert!(rootfs.join("installed").is_file());
    assert!(!rootfs.join("data/keep").exists());
    assert!(rootfs.join("bin/busybox").is_file());
    fresh.remove_container("check").unwrap();
    c.remove().unwrap();
    assert!(WorkingContainer::list(&store).unwrap().is_empty());
    // A name with a colon is a name, not a digest of algorithm `built`.
    store.remove_image("built:v1").unwrap();
    assert!(matches!(
        store.image("built:v1"),
        Err(ocikit::Error::Store(StoreError::ImageNotFound { .. }))
    ));
}

/// A directory deleted, a directory deleted and made again (opaque), a hard link and a
/// symbolic link, all made by a run, survive the commit and an unpack; `umoci unpack` of the
/// committed image gives the tree ocikit's unpack gives.
#[test]
fn commit_keeps_whiteouts_opaque_directories_and_links_as_umoci_reads_them() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    let store = Store::open(dir.path().join("store")).unwrap();
    let mut c =
        WorkingContainer::from_image(&store, &base.to_string(), &FromOptions::new().name("links"))
            .unwrap();
    let script = "rm -rf /data/dir && rm -rf /swap && mkdir /swap && echo new > /swap/new \
                  && echo linked > /linked && ln /linked /data/hard && ln -s ../linked /data/soft \
                  && chmod 0750 /data";
    assert_eq!(c.run(&sh(script), &run_in()).unwrap().code(), 0);
    // What the run left in the upper directory is the change and nothing more: the mount
    // points the runtime used exist in the image, so none was made.
    c.commit(&CommitOptions::new().name("links")).unwrap();

    let ours = unpacked(store.layout().root(), "links", &dir.path().join("ours"));
    assert!(
        !ours.contains_key("data/dir"),
        "the deleted directory is gone"
    );
    assert!(
        !ours.contains_key("swap/old"),
        "the opaque directory hides the old content"
    );
    assert!(ours["swap/new"].starts_with("file \"new\\n\""));
    assert!(ours["data/soft"].starts_with("link -> ../linked"));
    assert!(ours["data"].contains("mode 750"));
    let hard = std::fs::metadata(dir.path().join("ours/data/hard")).unwrap();
    let linked = std::fs::metadata(dir.path().join("ours/linked")).unwrap();
    assert_eq!(hard.ino(), linked.ino(), "the hard link is one file");

    let bundle = dir.path().join("umoci");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:links", store.layout().root().display()),
        bundle.to_str().unwrap(),
    ]));
    assert_eq!(tree(&bundle.join("rootfs")), ours);
    c.remove().unwrap();
}

/// buildah with a private configuration and storage under `dir` (nothing of the machine's
/// own is read or changed).
struct Buildah {
    conf: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl Buildah {
    fn new(dir: &Path) -> Buildah {
        let conf = dir.join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\"]\n[engine]\nruntime = \"runc\"\n\
                 cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \"{}\"\n",
                conf.join("events.log").display()
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        let root = dir.join("bh");
        std::fs::write(
            conf.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                root.join("run").display(),
                root.join("root").display()
            ),
        )
        .unwrap();
        Buildah { conf, root }
    }

    /// `buildah ARGS...`, which must succeed; its standard output, trimmed.
    fn run(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("buildah");
        cmd.env("CONTAINERS_CONF", self.conf.join("containers.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.conf.join("registries.conf"),
            )
            .env("CONTAINERS_STORAGE_CONF", self.conf.join("storage.conf"))
            .arg("--root")
            .arg(self.root.join("root"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args(["--storage-driver", "overlay"])
            .args(args);
        run(&mut cmd).trim().to_owned()
    }
}

/// `base` copied to the test registry as `NAME-<pid>:v1`; its reference. buildah names an
/// `oci:` image after its path, which a temporary directory's capitals make invalid: it
/// takes the base from the registry.
fn base_in_registry(base: &Location, name: &str) -> String {
    let reference = format!(
        "{}/ocikit-test/{name}-{}:v1",
        registry(),
        std::process::id()
    );
    copy(
        base,
        &format!("docker://{reference}").parse().unwrap(),
        &CopyOptions::new(),
    )
    .unwrap();
    reference
}

/// buildah and ocikit, the same steps on the same image: the committed images unpack to the
/// same tree (path, type, mode, owner, content, link target).
#[test]
fn same_steps_as_buildah_give_the_same_tree() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    let script = "echo hi > /hello && rm /bin/ls && rm -rf /data/dir && mkdir -p /a/b \
                  && ln -s /hello /a/link && rm -rf /swap && mkdir /swap && echo x > /swap/x";

    let store = Store::open(dir.path().join("store")).unwrap();
    let mut c =
        WorkingContainer::from_image(&store, &base.to_string(), &FromOptions::new()).unwrap();
    assert_eq!(c.run(&sh(script), &run_in()).unwrap().code(), 0);
    c.configure(&ConfigEdit::new().entrypoint(vec!["/bin/cat".into(), "/hello".into()]))
        .unwrap();
    c.commit(&CommitOptions::new().name("ours")).unwrap();
    c.remove().unwrap();

    let buildah = Buildah::new(dir.path());
    let buildah = |args: &[&str]| buildah.run(args);
    let base_ref = base_in_registry(&base, "working-base");
    let bc = buildah(&[
        "from",
        "--tls-verify=false",
        &format!("docker://{base_ref}"),
    ]);
    buildah(&[
        "run",
        "--network",
        "host",
        &bc,
        "--",
        "/bin/sh",
        "-c",
        script,
    ]);
    buildah(&["config", "--entrypoint", "[\"/bin/cat\",\"/hello\"]", &bc]);
    buildah(&["commit", &bc, "theirs"]);
    let theirs_layout = dir.path().join("theirs");
    buildah(&[
        "push",
        "theirs",
        &format!("oci:{}:theirs", theirs_layout.display()),
    ]);
    buildah(&["rm", &bc]);
    buildah(&["rmi", "-a"]);

    let ours = unpacked(store.layout().root(), "ours", &dir.path().join("u-ours"));
    let theirs = unpacked(&theirs_layout, "theirs", &dir.path().join("u-theirs"));
    assert!(ours.contains_key("hello") && !ours.contains_key("bin/ls"));
    assert_eq!(ours, theirs);
}

/// Files copied in as `buildah copy` places them, owners and modes as asked, never through
/// a link of the container to the host.
#[test]
fn copy_in_places_files_as_buildah_copy_does_and_never_leaves_the_root() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let mut c = WorkingContainer::from_scratch(&store, &FromOptions::new()).unwrap();
    assert_eq!(c.name(), "working-container");
    let host = dir.path().join("host");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/a"), "a").unwrap();
    std::os::unix::fs::symlink("sub/a", host.join("tree/link")).unwrap();
    std::fs::write(host.join("file"), "file").unwrap();

    // A directory's contents into DEST; a file into an existing directory; a file renamed.
    c.copy_in(&[host.join("tree")], "/opt/app", &CopyInOptions::new())
        .unwrap();
    c.copy_in(
        &[host.join("file")],
        "/opt/app",
        &CopyInOptions::new().owner(7, 8).mode(0o600),
    )
    .unwrap();
    c.copy_in(&[host.join("file")], "/renamed", &CopyInOptions::new())
        .unwrap();
    let rootfs = c.rootfs().unwrap();
    let t = tree(&rootfs);
    assert!(t["opt/app/sub/a"].starts_with("file \"a\""), "{t:?}");
    assert!(t["opt/app/sub/a"].ends_with("owner 0:0"));
    assert!(t["opt/app/link"].starts_with("link -> sub/a"));
    assert_eq!(t["opt/app/file"], "file \"file\" mode 600 owner 7:8");
    assert!(t["renamed"].starts_with("file \"file\""));

    // A link in the container naming a host directory leads inside the root: where the
    // container has no such directory, the copy fails; where it has one, the file goes there.
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, rootfs.join("escape")).unwrap();
    let err = c
        .copy_in(&[host.join("file")], "/escape/", &CopyInOptions::new())
        .unwrap_err();
    assert!(matches!(err, ocikit::Error::Image(_)), "{err:?}");
    assert!(
        !outside.join("file").exists(),
        "copied outside the container"
    );
    let inside = rootfs.join(outside.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    c.copy_in(&[host.join("file")], "/escape/", &CopyInOptions::new())
        .unwrap();
    assert!(
        !outside.join("file").exists(),
        "copied outside the container"
    );
    assert!(inside.join("file").is_file());

    // From scratch, committed: one layer with what was copied.
    let committed = c.commit(&CommitOptions::new().name("scratch")).unwrap();
    assert_eq!(committed.manifest.layers().len(), 1);
    c.remove().unwrap();
}

/// Bad input: typed errors, and nothing changed in the store.
#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    let store = Store::open(dir.path().join("store")).unwrap();
    let err = WorkingContainer::open(&store, "nobody").unwrap_err();
    assert!(
        matches!(
            err,
            ocikit::Error::Store(StoreError::ContainerNotFound { .. })
        ),
        "{err:?}"
    );
    let err =
        WorkingContainer::from_image(&store, "not-in-the-store", &FromOptions::new()).unwrap_err();
    assert!(
        matches!(err, ocikit::Error::Store(StoreError::ImageNotFound { .. })),
        "{err:?}"
    );

    let mut c =
        WorkingContainer::from_image(&store, &base.to_string(), &FromOptions::new()).unwrap();
    let upper = store.root().join("containers").join(c.name()).join("upper");
    let before = tree(&upper);
    let images = store.images().unwrap().len();
    let err = c
        .copy_in(
            &[
                dir.path().join("tree/etc/passwd"),
                dir.path().join("missing"),
            ],
            "/x/",
            &CopyInOptions::new(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, ocikit::Error::Store(StoreError::CopySource { path, .. }) if path.ends_with("missing")),
        "{err:?}"
    );
    assert_eq!(tree(&upper), before, "nothing was copied");

    // Another handle removes it: this one's run and commit find no container.
    WorkingContainer::open(&store, c.name())
        .unwrap()
        .remove()
        .unwrap();
    let err = c.run(&sh("true"), &run_in()).unwrap_err();
    assert!(
        matches!(
            err,
            ocikit::Error::Store(StoreError::ContainerNotFound { .. })
        ),
        "{err:?}"
    );
    let err = c.commit(&CommitOptions::new().name("never")).unwrap_err();
    assert!(
        matches!(
            err,
            ocikit::Error::Store(StoreError::ContainerNotFound { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        store.images().unwrap().len(),
        images,
        "no image was written"
    );
    assert!(store.check().unwrap().is_ok());
    // A container of `run` is not a working container.
    store
        .mount_rootfs("base", "plain", &RootfsOptions::new())
        .unwrap();
    let err = WorkingContainer::open(&store, "plain").unwrap_err();
    assert!(
        matches!(
            err,
            ocikit::Error::Store(StoreError::NotWorkingContainer { .. })
        ),
        "{err:?}"
    );
    store.remove_container("plain").unwrap();
}

/// A working container outlives its handle and its mount: opened again, and mounted again
/// after an unmount, it still holds what was written. An unchanged container commits no layer
/// unless asked, and the configuration edits land in the image.
#[test]
fn containers_persist_and_unchanged_commits_add_a_layer_only_when_asked() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    let store = Store::open(dir.path().join("store")).unwrap();
    let name = {
        let mut c =
            WorkingContainer::from_image(&store, &base.to_string(), &FromOptions::new()).unwrap();
        assert_eq!(
            c.run(&sh("echo kept > /kept"), &run_in()).unwrap().code(),
            0
        );
        c.name().to_owned()
    };
    let second =
        WorkingContainer::from_image(&store, &base.to_string(), &FromOptions::new()).unwrap();
    assert_eq!(second.name(), "base-working-container-2");
    second.remove().unwrap();

    let mut c = WorkingContainer::open(&store, &name).unwrap();
    let rootfs = c.rootfs().unwrap();
    ocikit::runtime::unmount(&rootfs).unwrap();
    assert!(!rootfs.join("kept").exists());
    let rootfs = c.rootfs().unwrap();
    assert_eq!(
        std::fs::read_to_string(rootfs.join("kept")).unwrap(),
        "kept\n"
    );

    let first = c.commit(&CommitOptions::new().name("one")).unwrap();
    assert!(first.layer.is_some());
    // The upper directory still holds /kept: the same change again is the same layer.
    c.configure(
        &ConfigEdit::new()
            .env("A=1")
            .label("l", "v")
            .port("8080")
            .volume("/data")
            .workdir("/srv")
            .user("0:0")
            .stop_signal("SIGINT")
            .annotation("org.example", "x"),
    )
    .unwrap();
    let mut fresh =
        WorkingContainer::from_image(&store, "one", &FromOptions::new().name("fresh")).unwrap();
    let unchanged = fresh.commit(&CommitOptions::new()).unwrap();
    assert!(unchanged.layer.is_none());
    assert_eq!(
        unchanged.manifest.layers().len(),
        first.manifest.layers().len()
    );
    let history = unchanged.config.value().history().clone().unwrap();
    assert_eq!(history.last().unwrap().empty_layer(), Some(true));
    let empty = fresh
        .commit(&CommitOptions::new().empty_layer(true))
        .unwrap();
    assert_eq!(empty.layer.as_ref().map(|l| l.entries), Some(0));
    assert_eq!(
        empty.manifest.layers().len(),
        first.manifest.layers().len() + 1
    );
    fresh.remove().unwrap();

    let edited = c
        .commit(&CommitOptions::new().source_date_epoch(Some(1_700_000_000)))
        .unwrap();
    let config = edited.config.value().config().clone().unwrap();
    assert!(config.env().clone().unwrap().contains(&"A=1".to_owned()));
    assert_eq!(config.labels().clone().unwrap()["l"], "v");
    assert!(
        config
            .exposed_ports()
            .clone()
            .unwrap()
            .contains(&"8080/tcp".to_owned())
    );
    assert!(
        config
            .volumes()
            .clone()
            .unwrap()
            .contains(&"/data".to_owned())
    );
    assert_eq!(config.working_dir().as_deref(), Some("/srv"));
    assert_eq!(config.user().as_deref(), Some("0:0"));
    assert_eq!(config.stop_signal().as_deref(), Some("SIGINT"));
    assert_eq!(
        edited.manifest.value().annotations().clone().unwrap()["org.example"],
        "x"
    );
    assert_eq!(
        edited.config.value().created().as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    c.remove().unwrap();
}

/// Every `trusted.*` xattr under `root`, by path.
fn trusted_xattrs(root: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for path in tree(root).keys() {
        let full = root.join(path);
        let mut buf = vec![0u8; 4096];
        let n = rustix::fs::llistxattr(&full, &mut buf[..]).unwrap_or(0);
        let names: Vec<String> = buf[..n]
            .split(|&b| b == 0)
            .filter(|n| n.starts_with(b"trusted."))
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        if !names.is_empty() {
            out.insert(path.clone(), names);
        }
    }
    out
}

/// A commit makes the new layer's snapshot of the container's upper directory itself (no
/// unpack): what it holds is what a pull of the committed image unpacks, overlayfs'
/// bookkeeping gone; the container goes on over the new image, and a later commit adds a
/// layer on top of it.
#[test]
fn a_commits_snapshot_is_what_a_pull_of_the_image_unpacks() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    let store = Store::open(dir.path().join("store")).unwrap();
    let mut c =
        WorkingContainer::from_image(&store, &base.to_string(), &FromOptions::new()).unwrap();
    // Copy-ups of lower directories give them overlay.origin and overlay.impure in the upper
    // directory; a removed and remade directory is opaque.
    let script = "rm -rf /data/dir && rm -rf /swap && mkdir /swap && echo new > /swap/new \
                  && echo linked > /linked && ln /linked /data/hard && ln -s ../linked /data/soft \
                  && chmod 0750 /data && echo changed > /etc/hostname && rm /bin/ls";
    assert_eq!(c.run(&sh(script), &run_in()).unwrap().code(), 0);
    let committed = c.commit(&CommitOptions::new().name("r")).unwrap();
    let upper = store.root().join("containers").join(c.name()).join("upper");
    assert_eq!(
        std::fs::read_dir(&upper).unwrap().count(),
        0,
        "the upper is the snapshot now"
    );
    let rootfs = c.rootfs().unwrap();
    assert_eq!(
        std::fs::read_to_string(rootfs.join("swap/new")).unwrap(),
        "new\n"
    );
    assert!(!rootfs.join("swap/old").exists() && !rootfs.join("data/dir").exists());

    let other = Store::open(dir.path().join("other")).unwrap();
    let location = Location::Oci {
        dir: store.layout().root().to_owned(),
        name: Some("r".into()),
    };
    other
        .pull(&location, &ocikit::store::PullOptions::new())
        .unwrap();
    let ours = store
        .image("r")
        .unwrap()
        .snapshots
        .last()
        .unwrap()
        .join("diff");
    let pulled = other
        .image("r")
        .unwrap()
        .snapshots
        .last()
        .unwrap()
        .join("diff");
    assert_eq!(tree(&ours), tree(&pulled));
    assert_eq!(trusted_xattrs(&ours), trusted_xattrs(&pulled));
    assert_eq!(
        trusted_xattrs(&ours).get("swap"),
        Some(&vec!["trusted.overlay.opaque".to_owned()])
    );
    assert!(store.check().unwrap().is_ok());

    // On top of it.
    assert_eq!(
        c.run(&sh("echo more > /more"), &run_in()).unwrap().code(),
        0
    );
    let second = c.commit(&CommitOptions::new().name("r2")).unwrap();
    assert_eq!(
        second.manifest.layers().len(),
        committed.manifest.layers().len() + 1
    );
    let all = unpacked(store.layout().root(), "r2", &dir.path().join("u-r2"));
    assert!(all.contains_key("more") && all.contains_key("swap/new"));
    assert!(!all.contains_key("bin/ls") && !all.contains_key("swap/old"));
    // The image it stood on is in use now.
    assert!(matches!(
        store.remove_image("r2"),
        Err(ocikit::Error::Store(StoreError::InUse { .. }))
    ));
    c.remove().unwrap();
    store.remove_image("r2").unwrap();
    assert!(store.check().unwrap().is_ok());
}

/// The `ocikit work` command, subcommand by subcommand with buildah's flags: from, run, copy,
/// config, commit, containers, push, rm; `run` exits with the command's code, and its own
/// failures exit 125 with one line.
#[test]
fn the_work_command_builds_as_buildah_does() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    let store = dir.path().join("store");
    let work = |args: &[&str]| work(&store, args);
    let c = work(&["from", "--name", "recipe", &base.to_string()]);
    assert_eq!(c, "recipe");
    work(&[
        "run",
        "--network",
        "none",
        "-e",
        "X=1",
        &c,
        "--",
        "/bin/sh",
        "-c",
        "echo $X > /x",
    ]);
    std::fs::write(dir.path().join("added"), "added\n").unwrap();
    work(&[
        "copy",
        "--chown",
        "5:6",
        "--chmod",
        "640",
        &c,
        dir.path().join("added").to_str().unwrap(),
        "/srv/",
    ]);
    work(&[
        "config",
        "--entrypoint",
        "[\"/bin/cat\",\"/x\",\"/srv/added\"]",
        "--cmd",
        "[]",
        "--label",
        "a=b",
        &c,
    ]);
    assert!(work(&["containers", "--noheading"]).starts_with("recipe "));
    assert_eq!(work(&["--quiet", "containers"]), "recipe");
    let digest = work(&["commit", &c, "recipe:v1"]);
    assert!(digest.starts_with("sha256:"));
    let out = dir.path().join("out");
    let pushed = work(&[
        "push",
        "recipe:v1",
        &format!("oci:{}:pushed", out.display()),
    ]);
    assert!(
        pushed.starts_with("sha256:") && pushed != digest,
        "{pushed}"
    );
    let tree = unpacked(&out, "pushed", &dir.path().join("u"));
    assert_eq!(tree["x"], "file \"1\\n\" mode 644 owner 0:0");
    assert_eq!(tree["srv/added"], "file \"added\\n\" mode 640 owner 5:6");

    // To the registry: as buildah names it (HOST/NAME, --tls-verify) and as `ocikit copy`
    // does (docker://, --dest-tls-verify); skopeo reads what was pushed.
    let reference = format!("{}/ocikit-test/work-cli-{}", registry(), std::process::id());
    let digestfile = dir.path().join("digest");
    let first = work(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap(),
        "recipe:v1",
        &format!("{reference}:v1"),
    ]);
    assert_eq!(std::fs::read_to_string(&digestfile).unwrap(), first);
    let second = work(&[
        "push",
        "--dest-tls-verify=false",
        "recipe:v1",
        &format!("docker://{reference}:v2"),
    ]);
    assert_eq!(first, second);
    let inspected: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{reference}:v2"),
    ])))
    .unwrap();
    assert_eq!(inspected["Digest"], first.as_str());
    assert_eq!(inspected["Labels"]["a"], "b");
    // And back, into another store, from a bare HOST/NAME as buildah from takes it.
    let other = dir.path().join("other");
    let pulled = run(Command::new(workspace_binary("ocikit"))
        .args(["work", "--root"])
        .arg(&other)
        .args(["from", "--tls-verify=false", &format!("{reference}:v1")]));
    assert_eq!(
        pulled.trim(),
        format!("work-cli-{}-working-container", std::process::id())
    );

    // The command's exit code is run's.
    let status = Command::new(workspace_binary("ocikit"))
        .args(["work", "--root"])
        .arg(&store)
        .args(["run", &c, "--", "/bin/sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));
    work(&["rm", &c]);
    assert_eq!(work(&["containers", "--noheading"]), "");
    let ocikit = |args: &[&str]| {
        Command::new(workspace_binary("ocikit"))
            .args(["work", "--root"])
            .arg(&store)
            .args(args)
            .output()
            .unwrap()
    };
    let failed = ocikit(&["run", "nobody", "--", "true"]);
    assert_eq!(failed.status.code(), Some(125));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("no container \"nobody\""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Elsewhere, a missing container is "not found" (3), a bad flag value a usage error (2).
    assert_eq!(ocikit(&["rm", "nobody"]).status.code(), Some(3));
    let c = work(&["from", &base.to_string()]);
    let bad = ocikit(&["config", "--entrypoint", "[\"unclosed\"", &c]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--entrypoint"),
        "{bad:?}"
    );
    work(&["rm", "--all"]);
}

/// The `work` recipe: from the base image, one command, an entrypoint, a commit to a name;
/// the image it committed has the file the command wrote and runs it.
#[test]
fn the_work_recipe_commits_what_its_command_wrote() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    let root = dir.path().join("store");
    let out = run(Command::new(example_binary("work"))
        .arg(base.to_string())
        .arg("built")
        .arg(&root));
    let store = Store::open(&root).unwrap();
    let image = store.image("built").unwrap();
    assert_eq!(out.trim(), format!("built {}", image.manifest.digest()));
    assert_eq!(image.manifest.layers().len(), 2, "one layer on the base's");
    let config = image.config.value().config().clone().unwrap();
    assert_eq!(
        config.entrypoint().clone().unwrap(),
        ["/bin/cat", "/built-by"]
    );
    let tree = unpacked(store.layout().root(), "built", &dir.path().join("u"));
    assert_eq!(
        tree["built-by"],
        "file \"built by ocikit\\n\" mode 644 owner 0:0"
    );
    assert!(
        WorkingContainer::list(&store).unwrap().is_empty(),
        "removed"
    );
    let ran = run(Command::new(workspace_binary("ocikit"))
        .args(["run", "--rm", "--root"])
        .arg(&root)
        .arg("built"));
    assert_eq!(ran, "built by ocikit\n");
}

/// Path → (type, mode, owner, content or link target) of every entry of the last layer of
/// `image` in the layout `dir`, and the image's configuration.
fn last_layer_and_config(dir: &Path, image: &str) -> (BTreeMap<String, String>, serde_json::Value) {
    let layout = Layout::open(dir).unwrap();
    let source: &dyn ImageSource = &layout;
    let resolved = source
        .fetch_image(&image.parse().unwrap(), &ocikit::image::host_platform())
        .unwrap();
    let layer = resolved.manifest.layers().last().unwrap().clone();
    let blob = layout.open_blob(&layer).unwrap();
    let reader: Box<dyn std::io::Read> = match layer.media_type().compression() {
        Some(Compression::Gzip) => Box::new(flate2::read::GzDecoder::new(blob)),
        Some(Compression::None) => Box::new(blob),
        other => panic!("layer compression {other:?}"),
    };
    let mut entries = BTreeMap::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let path = entry.path().unwrap().display().to_string();
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        let what = match h.entry_type() {
            tar::EntryType::Directory => "dir".to_owned(),
            tar::EntryType::Symlink => {
                format!("link -> {}", h.link_name().unwrap().unwrap().display())
            }
            tar::EntryType::Link => {
                format!("hard link -> {}", h.link_name().unwrap().unwrap().display())
            }
            tar::EntryType::Regular => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                format!("file {text:?}")
            }
            other => format!("{other:?}"),
        };
        // Owners as written: a number, or nothing (`None`).
        let line = format!(
            "{what} mode {:o} owner {:?}:{:?}",
            h.mode().unwrap() & 0o7777,
            h.uid().ok(),
            h.gid().ok()
        );
        entries.insert(path, line);
    }
    let config = serde_json::from_slice(resolved.config.raw()).unwrap();
    (entries, config)
}

/// `ocikit work` and buildah, the same from, run, config and commit on the same image, with
/// the same flags: the committed layers hold the same entries (path, type, mode, owner,
/// content, link), and the configurations the same fields.
#[test]
fn ocikit_work_and_buildah_commit_the_same_layer_and_config() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    let script = "echo hi > /hello && rm /bin/ls && rm -rf /data/dir && mkdir -p /a/b \
                  && ln -s /hello /a/link && echo linked > /linked && ln /linked /data/hard \
                  && rm -rf /swap && mkdir /swap && echo x > /swap/x && chmod 0750 /data";
    let config_flags = [
        "--entrypoint",
        "[\"/bin/cat\",\"/hello\"]",
        "--env",
        "A=1",
        "--label",
        "l=v",
        // buildah 1.28 keeps `--port 8080` as "8080", ocikit writes "8080/tcp": "port with
        // the default protocol being tcp if not specified" (image-spec, config.md), the same.
        "--port",
        "8080/tcp",
        "--volume",
        "/data",
        "--workingdir",
        "/srv",
        "--user",
        "0:0",
        "--stop-signal",
        "SIGINT",
        "--author",
        "someone",
    ];

    let store = dir.path().join("store");
    let c = work(&store, &["from", &base.to_string()]);
    // buildah run's capabilities (podman's default set; none effective for another user).
    let caps = ["--", "/bin/busybox", "grep", "Cap", "/proc/self/status"];
    let our_caps = [
        work(&store, &[&["run", &c][..], &caps].concat()),
        work(
            &store,
            &[&["run", "--user", "1000", &c][..], &caps].concat(),
        ),
    ];
    work(
        &store,
        &[
            "run",
            "--network",
            "host",
            &c,
            "--",
            "/bin/sh",
            "-c",
            script,
        ],
    );
    work(&store, &[&["config"][..], &config_flags, &[&c]].concat());
    work(&store, &["commit", "--rm", &c, "ours"]);
    let ours_layout = dir.path().join("ours");
    work(
        &store,
        &[
            "push",
            "ours",
            &format!("oci:{}:ours", ours_layout.display()),
        ],
    );

    let buildah = Buildah::new(dir.path());
    let base_ref = base_in_registry(&base, "working-cli-base");
    let bc = buildah.run(&[
        "from",
        "--tls-verify=false",
        &format!("docker://{base_ref}"),
    ]);
    let their_caps = [
        buildah.run(&[&["run", &bc][..], &caps].concat()),
        buildah.run(&[&["run", "--user", "1000", &bc][..], &caps].concat()),
    ];
    assert_eq!(
        our_caps.clone().map(|s| s.trim().to_owned()),
        their_caps.map(|s| s.trim().to_owned())
    );
    assert!(
        our_caps[0].contains("CapEff:\t00000000a80425fb"),
        "{our_caps:?}"
    );
    buildah.run(&[
        "run",
        "--network",
        "host",
        &bc,
        "--",
        "/bin/sh",
        "-c",
        script,
    ]);
    buildah.run(&[&["config"][..], &config_flags, &[&bc]].concat());
    buildah.run(&["commit", "--rm", &bc, "theirs"]);
    let theirs_layout = dir.path().join("theirs");
    buildah.run(&[
        "push",
        "theirs",
        &format!("oci:{}:theirs", theirs_layout.display()),
    ]);
    buildah.run(&["rmi", "-a"]);

    let (mut ours, our_config) = last_layer_and_config(&ours_layout, "ours");
    let (mut theirs, their_config) = last_layer_and_config(&theirs_layout, "theirs");
    assert!(
        ours.contains_key("hello") && ours.contains_key("bin/.wh.ls"),
        "{ours:#?}"
    );
    // "A whiteout file is an empty file with a special filename that signifies a path should
    // be deleted" (image-spec, layer.md): its name is its meaning, its mode and owner none
    // (buildah writes mode 0 or 755 and owner 0, ocikit mode 644 and empty owner fields).
    for entries in [&mut ours, &mut theirs] {
        for (path, what) in entries.iter_mut() {
            if path
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(".wh."))
            {
                assert!(what.starts_with("file \"\" "), "{path}: {what}");
                *what = "whiteout".to_owned();
            }
        }
    }
    // buildah's diff also lists the base's `/run`, with nothing new under it: its run makes
    // mount points there (`/run/.containerenv`...) and removes them.
    assert_eq!(
        theirs.remove("run").as_deref(),
        Some("dir mode 755 owner Some(0):Some(0)")
    );
    assert_eq!(ours, theirs);
    for field in [
        "Entrypoint",
        "Cmd",
        "Env",
        "ExposedPorts",
        "Volumes",
        "WorkingDir",
        "User",
        "StopSignal",
    ] {
        assert_eq!(
            our_config["config"][field], their_config["config"][field],
            "config.{field}"
        );
    }
    // buildah adds its own version label.
    let mut their_labels = their_config["config"]["Labels"].clone();
    their_labels
        .as_object_mut()
        .unwrap()
        .remove("io.buildah.version");
    assert_eq!(our_config["config"]["Labels"], their_labels);
    assert_eq!(our_config["author"], their_config["author"]);
    assert_eq!(our_config["config"]["Labels"]["l"], "v");
}
