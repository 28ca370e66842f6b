//! CVE-2022-29162 (runc) and CVE-2022-27650 (crun): capabilities in the inheritable and
//! ambient sets of the default configuration reach a process run as a user.

use std::collections::BTreeSet;
use std::io::Read;

use ocikit_runtime::{CreateOptions, ExitStatus};
use serde_json::{Value, json};

use crate::kit::*;

const CAPS: &str = "grep ^Cap /proc/self/status";

fn masks(out: &str) -> Vec<(String, u64)> {
    cap_masks(out)
}

fn mask(out: &str, set: &str) -> u64 {
    masks(out)
        .into_iter()
        .find(|(k, _)| k == set)
        .unwrap_or_else(|| panic!("no {set} in {out}"))
        .1
}

/// A capability set of a generated configuration (missing means empty).
fn set(spec: &Value, name: &str) -> BTreeSet<String> {
    spec["process"]["capabilities"][name]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// CVE-2022-29162: the configuration `oci-runtime spec` writes, run as uid 1000, gives the
/// process no capability at all (CapInh, CapPrm, CapEff, CapAmb are 0), exactly as `runc
/// spec`'s configuration run by runc does; and the two generated configurations give the
/// same capabilities.
#[test]
fn cve_2022_29162_default_spec_gives_a_user_no_capabilities_like_runc() {
    let mut ours = spec_bundle(CAPS);
    ours.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    ours.write();
    let mut theirs = spec_bundle(CAPS);
    theirs.config = generated_spec("runc");
    theirs.config["process"]["args"] = json!(["sh", "-c", CAPS]);
    theirs.config["process"]["env"] = json!(["PATH=/bin"]);
    theirs.config["process"]["terminal"] = false.into();
    theirs.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    theirs.write();
    let a = run_with(BIN, &ours);
    let b = run_with("runc", &theirs);
    assert_eq!(a.0, Some(0), "{a:?}");
    for s in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(mask(&a.1, s), 0, "{s} of uid 1000: {}", a.1);
    }
    assert_eq!(
        masks(&a.1),
        masks(&b.1),
        "oci-runtime (left) and runc (right) differ"
    );
    let (ours, runc) = (generated_spec(BIN), generated_spec("runc"));
    for name in ["bounding", "effective", "permitted", "inheritable"] {
        assert_eq!(set(&ours, name), set(&runc, name), "capabilities.{name}");
    }
    // An ambient capability can only be raised if it is also inheritable (runc's `spec`
    // still lists ambient ones, which therefore do nothing).
    let raisable = |spec: &Value| -> BTreeSet<String> {
        let inheritable = set(spec, "inheritable");
        set(spec, "ambient")
            .intersection(&inheritable)
            .cloned()
            .collect()
    };
    assert_eq!(
        raisable(&ours),
        raisable(&runc),
        "raisable ambient capabilities"
    );
    assert!(raisable(&ours).is_empty());
}

/// CVE-2022-29162's consequences: in a container of the default configuration running a
/// root process, a process `exec`ed as uid 1000 can neither kill it (`CAP_KILL`) nor bind
/// port 80 (`CAP_NET_BIND_SERVICE`).
#[test]
fn cve_2022_29162_a_user_cannot_kill_root_or_bind_port_80() {
    let (_root, rt) = runtime();
    // The victim is pid 2 (a namespace's init ignores SIGKILL from inside anyway); pid 1
    // does not reap it, so a killed victim stays visible as a zombie.
    let b = spec_bundle("sleep 1000 & exec sleep 1001");
    applets(&b, &["nc", "timeout"]);
    b.write();
    let name = id("caps");
    let _guard = Guard(&rt, name.clone());
    let quiet = || {
        CreateOptions::new()
            .stdin(std::fs::File::open("/dev/null").unwrap())
            .stdout(std::fs::File::create("/dev/null").unwrap())
    };
    rt.create(&name, b.path(), quiet()).unwrap();
    rt.start(&name).unwrap();
    let mut p = rt.process_of(&name).unwrap();
    let mut user = p.user().clone();
    user.set_uid(1000);
    user.set_gid(1000);
    p.set_user(user);
    p.set_args(Some(
        [
            "sh",
            "-c",
            "grep ^CapEff /proc/self/status; kill -9 2 2>/dev/null; echo kill=$?; \
             timeout 1 nc -l -p 80 2>/dev/null; echo bind=$?; \
             echo victim=$(awk '{print $3}' /proc/2/stat)",
        ]
        .map(String::from)
        .to_vec(),
    ));
    let (r, w) = std::io::pipe().unwrap();
    let pid = rt.exec(&name, &p, quiet().stdout(w)).unwrap();
    assert_eq!(rt.wait_process(pid).unwrap(), ExitStatus::Exited(0));
    let mut out = String::new();
    { r }.read_to_string(&mut out).unwrap();
    assert_eq!(out, "CapEff:\t0000000000000000\nkill=1\nbind=1\nvictim=S\n");
}
