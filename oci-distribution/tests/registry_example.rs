//! Runs `examples/registry.rs` (of the `ocikit` package, built by `scripts/test.sh` before the
//! tests) on a free port, pushes to it and pulls from it with our client and skopeo, then
//! interrupts it.

mod support;

use std::process::Command;

use support::{any, client, example_binary, push_image, run, spawn_until_first_line};

#[test]
fn registry_example_serves_until_stopped() {
    let bin = example_binary("registry");
    let root = tempfile::tempdir().unwrap();
    let (mut child, line) =
        spawn_until_first_line(Command::new(bin).arg("127.0.0.1:0").arg(root.path()));
    let addr = line
        .strip_prefix("serving on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let result = std::panic::catch_unwind(|| {
        let repo = client().repository_at(&addr, "example/app").unwrap();
        let m = push_image(&repo, "amd64", 61, &[4096]);
        repo.put_manifest(&any(&m), Some(&"v1".parse().unwrap()))
            .unwrap();
        let digest = run(Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{addr}/example/app:v1")));
        assert_eq!(digest.trim(), m.digest().to_string());
        // Its storage is an OCI layout per repository.
        let layout =
            ocikit_layout::Layout::open(root.path().join("repositories/example/app/_layout"))
                .unwrap();
        assert_eq!(layout.refs().unwrap()[0].0.as_str(), "v1");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
