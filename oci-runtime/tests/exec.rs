//! `exec` into a running container, through the library and the command line. Needs root.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::{Guard, TestBundle, id, runtime};
use ocikit_runtime::{CreateOptions, ExitStatus, Runtime, Signal};
use serde_json::json;

fn quiet() -> CreateOptions {
    CreateOptions::new()
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .stdout(std::fs::File::create("/dev/null").unwrap())
}

/// Runs `process` in container `name` and returns its exit status and output.
fn exec(rt: &Runtime, name: &str, process: &oci_spec::runtime::Process) -> (ExitStatus, String) {
    let (r, w) = std::io::pipe().unwrap();
    let (er, ew) = std::io::pipe().unwrap();
    let opts = quiet().stdout(w).stderr(ew);
    let pid = rt.exec(name, process, opts).unwrap();
    let status = rt.wait_process(pid).unwrap();
    let mut out = String::new();
    { r }.read_to_string(&mut out).unwrap();
    let mut err = String::new();
    { er }.read_to_string(&mut err).unwrap();
    assert!(err.is_empty(), "{err}");
    (status, out)
}

#[test]
fn exec_joins_namespaces_cgroup_and_applies_the_process() {
    let (_root, rt) = runtime();
    let mut b = TestBundle::new("echo $$ > /tmp/pid1; exec sleep 100");
    let name = id("exec");
    b.config["linux"]["cgroupsPath"] = name.clone().into();
    b.config["linux"]["resources"] = json!({"pids": {"limit": 50}});
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
    });
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=container"]);
    b.write();
    let _guard = Guard(&rt, name.clone());
    let c = rt.create(&name, b.path(), quiet()).unwrap();
    rt.start(&name).unwrap();

    let mut p = rt.process_of(&name).unwrap();
    p.set_args(Some(
        [
            "sh",
            "-c",
            "echo pid=$$; cat /proc/1/cmdline; echo; hostname; \
             grep CapEff /proc/self/status; echo foo=$FOO; \
             grep -c :pids:/.*exec- /proc/self/cgroup; id -u; exit 7",
        ]
        .map(String::from)
        .to_vec(),
    ));
    let (status, out) = exec(&rt, &name, &p);
    assert_eq!(status, ExitStatus::Exited(7), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let pid: u32 = lines[0].strip_prefix("pid=").unwrap().parse().unwrap();
    assert!(pid > 1, "{out}");
    // It sees the container's pid 1 (whose pid on the host is the container's pid).
    assert_eq!(lines[1].replace('\0', " ").trim(), "sleep 100", "{out}");
    assert_eq!(lines[2], "box");
    assert_eq!(lines[3], "CapEff:\t0000000000000020");
    assert_eq!(lines[4], "foo=container");
    assert_eq!(lines[5], "1", "in the container's cgroup: {out}");
    assert_eq!(lines[6], "0");

    // Another user and environment, overriding the container's.
    let mut user = p.user().clone();
    user.set_uid(1000);
    user.set_gid(1000);
    p.set_user(user);
    p.set_env(Some(vec!["PATH=/bin".into(), "FOO=exec".into()]));
    p.set_args(Some(
        ["sh", "-c", "id -u; echo $FOO"].map(String::from).to_vec(),
    ));
    let (status, out) = exec(&rt, &name, &p);
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(out, "1000\nexec\n");

    rt.kill(&name, Signal::SIGKILL).unwrap();
    rt.wait(&name).unwrap();
    rt.delete(&name, false).unwrap();
    let _ = c;
}

#[test]
fn exec_from_the_command_line() {
    let state = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_oci-runtime");
    let b = TestBundle::new("exec sleep 100");
    b.write();
    let name = id("cliexec");
    let cli = |args: &[&str]| {
        Command::new(bin)
            .arg("--root")
            .arg(state.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Detached: the container must not hold on to our output pipes.
    let status = Command::new(bin)
        .arg("--root")
        .arg(state.path())
        .args(["run", "-d", "--bundle", b.path().to_str().unwrap(), &name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let out = cli(&[
        "exec",
        "-e",
        "X=1",
        &name,
        "--",
        "sh",
        "-c",
        "cat /proc/1/cmdline; echo; echo x=$X; exit 3",
    ]);
    // A whole process from a file, as `runc exec --process` takes it.
    let file = state.path().join("process.json");
    std::fs::write(
        &file,
        json!({"args": ["sh", "-c", "id -u; echo $Y"], "cwd": "/tmp", "env": ["Y=2"],
               "user": {"uid": 1000, "gid": 1000}})
        .to_string(),
    )
    .unwrap();
    let from_file = cli(&["exec", "--process", file.to_str().unwrap(), &name]);
    let _ = cli(&["delete", "--force", &name]);
    assert!(from_file.status.success(), "{from_file:?}");
    assert_eq!(String::from_utf8_lossy(&from_file.stdout), "1000\n2\n");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).replace('\0', " "),
        "sleep 100 \nx=1\n"
    );
}
