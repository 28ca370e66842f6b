//! The same bundles under `runc` and under `oci-runtime` give the same observable output.

mod common;

use common::{TestBundle, run_with};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_oci-runtime");

fn compare(bundle: &TestBundle) {
    bundle.write();
    let ours = run_with(BIN, bundle);
    let theirs = run_with("runc", bundle);
    assert_eq!(ours, theirs, "oci-runtime (left) and runc (right) differ");
}

/// Everything a container can observe about its setup, in a stable order.
const PROBE: &str = "hostname; echo pid=$$; id; pwd; echo foo=$FOO home=$HOME; umask; \
    ls /proc/self/fd | wc -l; ls -a /dev | sort | grep -v core; \
    awk '{print $5, $6, $9}' /proc/self/mountinfo; \
    echo /proc/[0-9]*; cat /etc/secret; ls /masked; \
    touch /probe 2>&1; echo > /etc/ro/f 2>&1; exit 3";

fn probe_bundle() -> TestBundle {
    let mut b = TestBundle::new(PROBE);
    std::fs::write(b.rootfs().join("etc/secret"), "TOPSECRET").unwrap();
    std::fs::create_dir_all(b.rootfs().join("masked")).unwrap();
    std::fs::write(b.rootfs().join("masked/file"), "x").unwrap();
    std::fs::create_dir_all(b.rootfs().join("etc/ro")).unwrap();
    b.config["hostname"] = "compared".into();
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
    b.config["linux"]["maskedPaths"] = json!(["/etc/secret", "/masked", "/proc/kcore"]);
    b.config["linux"]["readonlyPaths"] = json!(["/etc/ro", "/proc/sys"]);
    b.config["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
               "options": ["size=1m", "mode=750", "nodev", "nosuid"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
    ]);
    b
}

#[test]
fn same_output_as_runc_as_root_with_readonly_root() {
    let mut b = probe_bundle();
    b.config["root"]["readonly"] = true.into();
    compare(&b);
}

#[test]
fn same_output_as_runc_as_a_user() {
    let mut b = probe_bundle();
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 63});
    b.config["process"]["cwd"] = "/tmp".into();
    compare(&b);
}
