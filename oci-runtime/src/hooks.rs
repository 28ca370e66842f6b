//! Lifecycle hooks: each is a program run with the container's state JSON on its standard
//! input, its `args` (the first one as `argv[0]`) and exactly its `env`, within its `timeout`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks, Spec};

use crate::error::{Error, Result};

/// The points of the lifecycle that have hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::Prestart => "prestart",
            Point::CreateRuntime => "createRuntime",
            Point::CreateContainer => "createContainer",
            Point::StartContainer => "startContainer",
            Point::Poststart => "poststart",
            Point::Poststop => "poststop",
        }
    }
}

/// The hooks of `spec` for `point` (none if it has none).
pub(crate) fn of(spec: &Spec, point: Point) -> Vec<Hook> {
    spec.hooks()
        .as_ref()
        .map(|h| for_point(h, point))
        .unwrap_or_default()
}

#[allow(deprecated)] // prestart: deprecated by the spec, still run as runc does.
pub(crate) fn for_point(h: &Hooks, point: Point) -> Vec<Hook> {
    let list = match point {
        Point::Prestart => h.prestart(),
        Point::CreateRuntime => h.create_runtime(),
        Point::CreateContainer => h.create_container(),
        Point::StartContainer => h.start_container(),
        Point::Poststart => h.poststart(),
        Point::Poststop => h.poststop(),
    };
    list.clone().unwrap_or_default()
}

/// Runs `hooks` in order with `state` on their standard input; the first failure (it could
/// not start, exited non-zero, or outlived its timeout and was killed) is the error.
pub(crate) fn run(point: Point, hooks: &[Hook], state: &str) -> Result<()> {
    for (i, hook) in hooks.iter().enumerate() {
        run_one(hook, state).map_err(|message| Error::HookFailed {
            hook: format!("hooks.{}[{i}] ({})", point.name(), hook.path().display()),
            message,
        })?;
    }
    Ok(())
}

/// Like [`run`], but a failure is a warning on standard error and the next hooks still run,
/// as the spec asks for `poststart` and `poststop`.
pub(crate) fn run_warn(point: Point, hooks: &[Hook], state: &str) {
    for (i, hook) in hooks.iter().enumerate() {
        if let Err(message) = run_one(hook, state) {
            eprintln!(
                "oci-runtime: warning: hooks.{}[{i}] ({}): {message}",
                point.name(),
                hook.path().display()
            );
        }
    }
}

fn run_one(hook: &Hook, state: &str) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.path());
    let args = hook.args().clone().unwrap_or_default();
    if let Some((first, rest)) = args.split_first() {
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear();
    for e in hook.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its input is fine.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("failed: {status}")),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "timed out after {} s",
                hook.timeout().unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
