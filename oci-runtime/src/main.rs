//! `oci-runtime`: a runc-compatible command line over the `ocikit_runtime` library.
//!
//! `oci-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND [OPTIONS] ARGS`
//! with the commands `create`, `exec`, `start`, `state`, `kill`, `delete`, `run`, `list`,
//! `pause`, `resume`, `update`, `ps`, `events`, `spec` and `features`, taking the same
//! arguments as runc's.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use ocikit_runtime::{CreateOptions, Error, Runtime, parse_signal};

const USAGE: &str = "usage: oci-runtime [--root DIR] [--log FILE] [--log-format text|json]
       [--rootless true|false|auto] COMMAND
commands:
  create [--bundle DIR] [--pid-file F] [--console-socket S] [--preserve-fds N] [--no-pivot] ID
  exec [--process FILE] [--detach] [--pid-file F] [--tty] [--console-socket S] [--env K=V]
       [--cwd DIR] [--user UID[:GID]] [--preserve-fds N] ID [-- CMD [ARG...]]
  start ID
  events [--stats] [--interval DURATION (5s)] ID
  pause ID
  resume ID
  update [--memory N] [--memory-swap N] [--memory-reservation N] [--cpu-quota N]
         [--cpu-period N] [--cpu-shares N] [--cpu-rt-period N] [--cpu-rt-runtime N]
         [--cpuset-cpus LIST] [--cpuset-mems LIST] [--pids-limit N] [--blkio-weight N]
         [-r|--resources FILE|-] ID
  ps [--format table|json] ID [PS-OPTIONS (-ef)]
  state ID
  kill [--all] ID [SIGNAL]
  delete [--force] ID
  run [--bundle DIR] [--pid-file F] [--console-socket S] [--detach] [--keep] [--preserve-fds N] [--no-pivot] ID
  list [--format table|json] [--quiet]
  spec [--bundle DIR] [--rootless]
  features";

/// Parsed flags and positional arguments of one command.
struct Args {
    flags: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Args {
    /// Splits `args`; `valued` lists the flags that take a value (`--x V` or `--x=V`).
    fn parse(args: &[String], valued: &[&str]) -> Result<Args, String> {
        let mut flags = Vec::new();
        let mut positional = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--" {
                positional.extend(it.by_ref().cloned());
                break;
            }
            if a.len() > 1 && a.starts_with('-') {
                let name = a.trim_start_matches('-');
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (name.to_string(), None),
                };
                if valued.contains(&name.as_str()) {
                    let v = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .cloned()
                            .ok_or_else(|| format!("flag --{name} needs a value"))?,
                    };
                    flags.push((name, Some(v)));
                } else {
                    flags.push((name, inline));
                }
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Args { flags, positional })
    }

    fn value(&self, names: &[&str]) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| names.contains(&n.as_str()))
            .and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, names: &[&str]) -> bool {
        self.flags
            .iter()
            .any(|(n, v)| names.contains(&n.as_str()) && v.as_deref().is_none_or(|v| v != "false"))
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self
            .flags
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()))
        {
            Some((n, _)) => Err(format!("unknown flag --{n}")),
            None => Ok(()),
        }
    }

    fn id(&self) -> Result<&str, String> {
        match self.positional.first() {
            Some(id) => Ok(id),
            None => Err("a container id is required".into()),
        }
    }
}

/// Where errors are logged besides stderr.
struct Log {
    file: Option<PathBuf>,
    json: bool,
}

impl Log {
    fn error(&self, msg: &str) {
        let _ = writeln!(std::io::stderr(), "oci-runtime: {msg}");
        let Some(path) = &self.file else { return };
        let line = if self.json {
            serde_json::json!({"level": "error", "msg": msg, "time": now()}).to_string()
        } else {
            format!("time=\"{}\" level=error msg={:?}", now(), msg)
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

enum Failure {
    Usage(String),
    Runtime(Error),
    Other(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Usage(e)
    }
}

fn main() -> ExitCode {
    ocikit_runtime::init_if_requested();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // Global options come before the command.
    let mut root = None;
    let mut rootless = None;
    let mut log = Log {
        file: None,
        json: false,
    };
    let mut i = 0;
    while i < argv.len() && argv[i].starts_with('-') {
        let a = argv[i].trim_start_matches('-');
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (a, None),
        };
        let takes_value = matches!(
            name,
            "root" | "log" | "log-format" | "criu" | "rootless" | "systemd-cgroup"
        ) && !(name == "systemd-cgroup" && inline.is_none());
        let value = if takes_value && inline.is_none() {
            i += 1;
            argv.get(i).cloned()
        } else {
            inline
        };
        match (name, value) {
            ("root", Some(v)) => root = Some(PathBuf::from(v)),
            // runc: "ignore cgroup permission errors ('true', 'false', or 'auto')".
            ("rootless", Some(v)) => match v.as_str() {
                "true" => rootless = Some(true),
                "false" => rootless = Some(false),
                "auto" => rootless = None,
                other => {
                    log.error(&format!(
                        "--rootless {other}: must be true, false or auto\n{USAGE}"
                    ));
                    return ExitCode::from(1);
                }
            },
            ("rootless", None) => {
                log.error(&format!("flag --rootless needs a value\n{USAGE}"));
                return ExitCode::from(1);
            }
            ("systemd-cgroup", v) if v.as_deref().is_none_or(|v| v != "false") => {
                log.error(
                    "not supported: --systemd-cgroup (the systemd cgroup driver); \
                     oci-runtime manages cgroups through the cgroup file system only",
                );
                return ExitCode::from(1);
            }
            ("log", Some(v)) => log.file = Some(PathBuf::from(v)),
            ("log-format", Some(v)) => log.json = v == "json",
            ("debug" | "systemd-cgroup" | "criu", _) => {}
            ("v" | "version", _) => {
                println!(
                    "oci-runtime version {}\nspec: 1.2.0",
                    env!("CARGO_PKG_VERSION")
                );
                return ExitCode::SUCCESS;
            }
            ("h" | "help", _) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            (other, _) => {
                log.error(&format!("unknown global flag --{other}\n{USAGE}"));
                return ExitCode::from(1);
            }
        }
        i += 1;
    }
    let Some(command) = argv.get(i) else {
        log.error(USAGE);
        return ExitCode::from(1);
    };
    let rest = &argv[i + 1..];
    // As runc: /run/ocikit for root, $XDG_RUNTIME_DIR/ocikit for anyone else. Commands
    // that touch no state (spec, features) need neither.
    let root = match root.map(Ok).unwrap_or_else(ocikit_runtime::default_root) {
        Ok(root) => root,
        Err(_) if matches!(command.as_str(), "spec" | "features") => {
            PathBuf::from(ocikit_runtime::DEFAULT_ROOT)
        }
        Err(e) => {
            log.error(&e.to_string());
            return ExitCode::from(1);
        }
    };
    let mut rt = Runtime::new(root);
    if let Some(yes) = rootless {
        rt = rt.rootless(yes);
    }
    match dispatch(&rt, command, rest) {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Usage(m)) => {
            log.error(&format!("{m}\n{USAGE}"));
            ExitCode::from(1)
        }
        Err(Failure::Runtime(e)) => {
            // The error and its causes on one line, as runc prints them.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            log.error(&text);
            ExitCode::from(1)
        }
        Err(Failure::Other(m)) => {
            log.error(&m);
            ExitCode::from(1)
        }
    }
}

fn create_options(a: &Args) -> Result<CreateOptions, Failure> {
    let n = match a.value(&["preserve-fds"]) {
        Some(v) => v
            .parse()
            .map_err(|_| Failure::Usage(format!("--preserve-fds {v}: not a number")))?,
        None => 0,
    };
    let mut opts = CreateOptions::new()
        .preserve_fds(n)
        .no_pivot(a.has(&["no-pivot"]));
    if let Some(s) = a.value(&["console-socket"]) {
        opts = opts.console_socket(s);
    }
    Ok(opts)
}

fn write_pid_file(a: &Args, pid: i32) -> Result<(), Failure> {
    if let Some(path) = a.value(&["pid-file"]) {
        // Atomically, as runc does, so a watcher never reads a partial pid.
        let path = PathBuf::from(path);
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
        ));
        std::fs::write(&tmp, pid.to_string())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Failure::Other(format!("writing pid file {}: {e}", path.display())))?;
    }
    Ok(())
}

const CREATE_FLAGS: &[&str] = &[
    "bundle",
    "b",
    "pid-file",
    "console-socket",
    "preserve-fds",
    "no-pivot",
    "no-new-keyring",
    "detach",
    "d",
    "keep",
    "no-subreaper",
];
const CREATE_VALUED: &[&str] = &["bundle", "b", "pid-file", "console-socket", "preserve-fds"];

fn dispatch(rt: &Runtime, command: &str, rest: &[String]) -> Result<u8, Failure> {
    match command {
        "create" => {
            let a = Args::parse(rest, CREATE_VALUED)?;
            a.check_known(CREATE_FLAGS)?;
            let bundle = a.value(&["bundle", "b"]).unwrap_or(".");
            let c = rt.create(a.id()?, bundle, create_options(&a)?)?;
            write_pid_file(&a, c.pid())?;
            Ok(0)
        }
        "run" => {
            let a = Args::parse(rest, CREATE_VALUED)?;
            a.check_known(CREATE_FLAGS)?;
            let id = a.id()?;
            let bundle = a.value(&["bundle", "b"]).unwrap_or(".");
            let mut opts = create_options(&a)?;
            // A terminal in the foreground without a console socket: relay it, as runc does.
            let wants_tty = ocikit_runtime::Bundle::load(bundle)?
                .spec()
                .process()
                .as_ref()
                .and_then(|p| p.terminal())
                == Some(true);
            let mut relay = None;
            if wants_tty && a.value(&["console-socket"]).is_none() && !a.has(&["detach", "d"]) {
                let dir = tempfile_dir(rt.root())?;
                let path = dir.join("console.sock");
                let listener = std::os::unix::net::UnixListener::bind(&path)
                    .map_err(|e| Failure::Other(format!("console socket: {e}")))?;
                opts = opts.console_socket(&path);
                relay = Some((
                    dir,
                    std::thread::spawn(move || ocikit_runtime::receive_pty(&listener)),
                ));
            }
            let created = rt.create(id, bundle, opts);
            let relay = match relay {
                Some((dir, t)) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    match (&created, t.join()) {
                        (Ok(_), Ok(Ok((_, master)))) => Some(master),
                        _ => None,
                    }
                }
                None => None,
            };
            let c = created?;
            write_pid_file(&a, c.pid())?;
            if let Some(master) = &relay {
                // Our terminal's size now, and on every SIGWINCH, as runc does.
                ocikit_runtime::relay_window_size(master)
                    .map_err(|e| Failure::Other(format!("relaying the terminal size: {e}")))?;
            }
            let relay = relay.map(start_relay);
            if let Err(e) = rt.start(id) {
                let _ = rt.delete(id, true);
                return Err(e.into());
            }
            if a.has(&["detach", "d"]) {
                return Ok(0);
            }
            ocikit_runtime::forward_signals(c.pid());
            let status = rt.wait(id);
            if let Some(r) = relay {
                // Until the terminal's output is drained (EIO once the container closed it).
                let _ = r.join();
            }
            if !a.has(&["keep"]) {
                rt.delete(id, true)?;
            }
            Ok(status?.code() as u8)
        }
        "exec" => {
            let valued = [
                "process",
                "p",
                "pid-file",
                "console-socket",
                "env",
                "e",
                "cwd",
                "user",
                "u",
                "preserve-fds",
            ];
            let a = Args::parse(rest, &valued)?;
            let mut known = valued.to_vec();
            known.extend(["detach", "d", "tty", "t", "no-new-privs"]);
            a.check_known(&known)?;
            let id = a.id()?;
            let mut process = match a.value(&["process", "p"]) {
                Some(f) => {
                    let bytes = std::fs::read(f)
                        .map_err(|e| Failure::Other(format!("reading {f}: {e}")))?;
                    serde_json::from_slice(&bytes)
                        .map_err(|e| Failure::Other(format!("parsing {f}: {e}")))?
                }
                None => {
                    let mut p = rt.process_of(id)?;
                    let args = a.positional[1..].to_vec();
                    if args.is_empty() {
                        return Err(Failure::Usage("exec needs a command (or --process)".into()));
                    }
                    p.set_args(Some(args));
                    p.set_terminal(Some(a.has(&["tty", "t"])));
                    p.set_console_size(None);
                    p
                }
            };
            let extra: Vec<String> = a
                .flags
                .iter()
                .filter(|(n, _)| n == "env" || n == "e")
                .filter_map(|(_, v)| v.clone())
                .collect();
            if !extra.is_empty() {
                let mut env = process.env().clone().unwrap_or_default();
                for e in extra {
                    let key = e.split('=').next().unwrap_or_default().to_string();
                    env.retain(|x| x.split('=').next() != Some(key.as_str()));
                    env.push(e);
                }
                process.set_env(Some(env));
            }
            if let Some(cwd) = a.value(&["cwd"]) {
                process.set_cwd(cwd.into());
            }
            if let Some(u) = a.value(&["user", "u"]) {
                let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
                let bad = || Failure::Usage(format!("--user {u}: not UID[:GID]"));
                let mut user = process.user().clone();
                user.set_uid(uid.parse().map_err(|_| bad())?);
                user.set_gid(gid.parse().map_err(|_| bad())?);
                process.set_user(user);
            }
            if a.has(&["no-new-privs"]) {
                process.set_no_new_privileges(Some(true));
            }
            let pid = rt.exec(id, &process, create_options(&a)?)?;
            write_pid_file(&a, pid)?;
            if a.has(&["detach", "d"]) {
                return Ok(0);
            }
            ocikit_runtime::forward_signals(pid);
            Ok(rt.wait_process(pid)?.code() as u8)
        }
        "events" => {
            let a = Args::parse(rest, &["interval"])?;
            a.check_known(&["stats", "interval"])?;
            let id = a.id()?;
            if a.has(&["stats"]) {
                println!("{}", stats_event(id, &rt.stats(id)?));
                return Ok(0);
            }
            let interval = match a.value(&["interval"]) {
                Some(v) => parse_duration(v)
                    .ok_or_else(|| Failure::Usage(format!("--interval {v}: not a duration")))?,
                None => std::time::Duration::from_secs(5),
            };
            let mut out = std::io::stdout();
            rt.events(id, interval, |e| {
                let line = match e {
                    ocikit_runtime::Event::Stats(s) => stats_event(id, &s),
                    ocikit_runtime::Event::Oom => serde_json::json!({"type": "oom", "id": id}),
                    _ => return true,
                };
                writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
            })?;
            Ok(0)
        }
        "pause" | "resume" => {
            let a = Args::parse(rest, &[])?;
            a.check_known(&[])?;
            if command == "pause" {
                rt.pause(a.id()?)?;
            } else {
                rt.resume(a.id()?)?;
            }
            Ok(0)
        }
        "update" => {
            let a = Args::parse(rest, UPDATE_VALUED)?;
            a.check_known(UPDATE_VALUED)?;
            let id = a.id()?;
            let res = update_resources(&a)?;
            rt.update(id, &res)?;
            Ok(0)
        }
        "ps" => {
            // Everything after the id goes to ps(1), as with runc.
            let mut i = 0;
            while i < rest.len() && rest[i].starts_with('-') {
                i += if matches!(rest[i].as_str(), "--format" | "-f" | "-format") {
                    2
                } else {
                    1
                };
            }
            let split = (i + 1).min(rest.len());
            let (flags, ps_args) = rest.split_at(split);
            let a = Args::parse(flags, &["format", "f"])?;
            a.check_known(&["format", "f"])?;
            let pids = rt.pids(a.id()?)?;
            match a.value(&["format", "f"]).unwrap_or("table") {
                "json" => println!("{}", serde_json::json!(pids)),
                "table" => print!("{}", ps_table(&pids, ps_args)?),
                other => {
                    return Err(Failure::Usage(format!(
                        "--format {other}: not table or json"
                    )));
                }
            }
            Ok(0)
        }
        "start" => {
            let a = Args::parse(rest, &[])?;
            a.check_known(&[])?;
            rt.start(a.id()?)?;
            Ok(0)
        }
        "state" => {
            let a = Args::parse(rest, &[])?;
            a.check_known(&[])?;
            let c = rt.state(a.id()?)?;
            let out = serde_json::to_string_pretty(&c.to_json()).expect("json");
            println!("{out}");
            Ok(0)
        }
        "kill" => {
            let a = Args::parse(rest, &[])?;
            a.check_known(&["all", "a"])?;
            let sig = parse_signal(a.positional.get(1).map_or("SIGTERM", String::as_str))?;
            if a.has(&["all", "a"]) {
                rt.kill_all(a.id()?, sig)?;
            } else {
                rt.kill(a.id()?, sig)?;
            }
            Ok(0)
        }
        "delete" => {
            let a = Args::parse(rest, &[])?;
            a.check_known(&["force", "f"])?;
            let id = a.id()?;
            let force = a.has(&["force", "f"]);
            match rt.delete(id, force) {
                // Like runc: a directory left by an aborted create is removed either way, and
                // --force makes a missing container a success.
                Err(Error::ContainerNotFound { .. }) => {
                    let _ = std::fs::remove_dir_all(rt.root().join(id));
                    if force {
                        Ok(0)
                    } else {
                        Err(Error::ContainerNotFound { id: id.into() }.into())
                    }
                }
                other => other.map(|()| 0).map_err(Failure::from),
            }
        }
        "list" => {
            let a = Args::parse(rest, &["format", "f"])?;
            a.check_known(&["format", "f", "quiet", "q"])?;
            let all = rt.list()?;
            if a.has(&["quiet", "q"]) {
                for c in &all {
                    println!("{}", c.id());
                }
            } else if a.value(&["format", "f"]) == Some("json") {
                let v: Vec<_> = all
                    .iter()
                    .map(|c| {
                        let mut v = c.to_json();
                        v["owner"] = owner(rt, c.id()).into();
                        v
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let mut rows = vec![[
                    "ID".to_string(),
                    "PID".into(),
                    "STATUS".into(),
                    "BUNDLE".into(),
                    "CREATED".into(),
                    "OWNER".into(),
                ]];
                for c in &all {
                    rows.push([
                        c.id().to_string(),
                        c.pid().to_string(),
                        c.status_name(),
                        c.state().bundle().display().to_string(),
                        c.created().to_string(),
                        owner(rt, c.id()),
                    ]);
                }
                let widths: Vec<usize> = (0..6)
                    .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
                    .collect();
                for r in rows {
                    let line: Vec<String> = r
                        .iter()
                        .zip(&widths)
                        .map(|(c, w)| format!("{c:<w$}"))
                        .collect();
                    println!("{}", line.join("   ").trim_end());
                }
            }
            Ok(0)
        }
        "spec" => {
            let a = Args::parse(rest, &["bundle", "b"])?;
            a.check_known(&["bundle", "b", "rootless"])?;
            let dir = PathBuf::from(a.value(&["bundle", "b"]).unwrap_or("."));
            let path = dir.join("config.json");
            if path.exists() {
                return Err(Failure::Other(
                    "File config.json exists. Remove it first".into(),
                ));
            }
            // runc spec --rootless: "generate a configuration for a rootless container".
            let spec = if a.has(&["rootless"]) {
                ocikit_runtime::rootless_spec()
            } else {
                ocikit_runtime::default_spec()
            };
            let text = serde_json::to_string_pretty(&spec).expect("json");
            std::fs::write(&path, text)
                .map_err(|e| Failure::Other(format!("writing {}: {e}", path.display())))?;
            Ok(0)
        }
        "features" => {
            println!(
                "{}",
                serde_json::to_string_pretty(&ocikit_runtime::features()).expect("json")
            );
            Ok(0)
        }
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
}

/// runc's `events` JSON for a stats sample, plus the OOM kill count.
fn stats_event(id: &str, s: &ocikit_runtime::Stats) -> serde_json::Value {
    serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": {
                "usage": {"total": s.cpu_usage_ns},
                "throttling": {
                    "periods": s.cpu_periods,
                    "throttledPeriods": s.cpu_throttled_periods,
                    "throttledTime": s.cpu_throttled_ns
                }
            },
            "memory": {
                "usage": {
                    "usage": s.memory_usage,
                    "max": s.memory_max_usage,
                    "failcnt": s.memory_limit_hits
                },
                "oomKills": s.oom_kills
            },
            "pids": {"current": s.pids}
        }
    })
}

/// A Go duration as runc's `--interval` takes it: `5s`, `100ms`, `1m30s`, `1.5s`.
fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
    }
    (total > 0.0).then(|| std::time::Duration::from_secs_f64(total))
}

const UPDATE_VALUED: &[&str] = &[
    "memory",
    "memory-swap",
    "memory-reservation",
    "kernel-memory-tcp",
    "cpu-quota",
    "cpu-period",
    "cpu-shares",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "cpuset-cpus",
    "cpuset-mems",
    "pids-limit",
    "blkio-weight",
    "resources",
    "r",
];

/// A size as runc's update takes it (`units.RAMInBytes`): bytes, or with a `k`, `m`, `g`,
/// `t` suffix (powers of 1024, an optional `b`/`ib`); `-1` for no limit.
fn parse_bytes(v: &str) -> Option<i64> {
    let lower = v.trim().to_ascii_lowercase();
    let t = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (num, shift) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 10),
        'm' => (&t[..t.len() - 1], 20),
        'g' => (&t[..t.len() - 1], 30),
        't' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: i64 = num.parse().ok()?;
    if n < 0 {
        return (n == -1).then_some(-1);
    }
    n.checked_mul(1i64 << shift)
}

/// The resources of `update`: `-r FILE` (a runtime-spec `linux.resources` JSON, `-` for
/// standard input) first, then each flag over it, as runc does.
fn update_resources(
    a: &Args,
) -> Result<ocikit_runtime::oci_spec::runtime::LinuxResources, Failure> {
    use ocikit_runtime::oci_spec::runtime::{LinuxPids, LinuxResources};
    let mut res: LinuxResources = match a.value(&["resources", "r"]) {
        Some(f) => {
            let bytes = if f == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                    .map_err(|e| Failure::Other(format!("reading standard input: {e}")))?;
                b
            } else {
                std::fs::read(f).map_err(|e| Failure::Other(format!("reading {f}: {e}")))?
            };
            serde_json::from_slice(&bytes)
                .map_err(|e| Failure::Other(format!("parsing {f} as linux.resources: {e}")))?
        }
        None => LinuxResources::default(),
    };
    let bad = |flag: &str, v: &str| Failure::Usage(format!("--{flag} {v}: not a valid value"));
    let bytes = |flag: &str| -> Result<Option<i64>, Failure> {
        a.value(&[flag])
            .map(|v| parse_bytes(v).ok_or_else(|| bad(flag, v)))
            .transpose()
    };
    fn num<T: std::str::FromStr>(a: &Args, flag: &str) -> Result<Option<T>, Failure> {
        a.value(&[flag])
            .map(|v| {
                v.parse()
                    .map_err(|_| Failure::Usage(format!("--{flag} {v}: not a number")))
            })
            .transpose()
    }
    let (limit, swap, reservation, tcp) = (
        bytes("memory")?,
        bytes("memory-swap")?,
        bytes("memory-reservation")?,
        bytes("kernel-memory-tcp")?,
    );
    if limit.or(swap).or(reservation).or(tcp).is_some() {
        let mut m = res.memory().unwrap_or_default();
        if limit.is_some() {
            m.set_limit(limit);
        }
        if swap.is_some() {
            m.set_swap(swap);
        }
        if reservation.is_some() {
            m.set_reservation(reservation);
        }
        if tcp.is_some() {
            m.set_kernel_tcp(tcp);
        }
        res.set_memory(Some(m));
    }
    let quota: Option<i64> = num(a, "cpu-quota")?;
    let period: Option<u64> = num(a, "cpu-period")?;
    let shares: Option<u64> = num(a, "cpu-shares")?;
    let rt_period: Option<u64> = num(a, "cpu-rt-period")?;
    let rt_runtime: Option<i64> = num(a, "cpu-rt-runtime")?;
    let cpus = a.value(&["cpuset-cpus"]);
    let mems = a.value(&["cpuset-mems"]);
    if quota.is_some()
        || period.is_some()
        || shares.is_some()
        || rt_period.is_some()
        || rt_runtime.is_some()
        || cpus.is_some()
        || mems.is_some()
    {
        let mut c = res.cpu().clone().unwrap_or_default();
        if quota.is_some() {
            c.set_quota(quota);
        }
        if period.is_some() {
            c.set_period(period);
        }
        if shares.is_some() {
            c.set_shares(shares);
        }
        if rt_period.is_some() {
            c.set_realtime_period(rt_period);
        }
        if rt_runtime.is_some() {
            c.set_realtime_runtime(rt_runtime);
        }
        if let Some(v) = cpus {
            c.set_cpus(Some(v.to_string()));
        }
        if let Some(v) = mems {
            c.set_mems(Some(v.to_string()));
        }
        res.set_cpu(Some(c));
    }
    if let Some(n) = num::<i64>(a, "pids-limit")? {
        let mut p = LinuxPids::default();
        p.set_limit(n);
        res.set_pids(Some(p));
    }
    if let Some(w) = num::<u16>(a, "blkio-weight")? {
        let mut b = res.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        res.set_block_io(Some(b));
    }
    Ok(res)
}

/// `ps` output (`ps ARGS`, `-ef` by default) restricted to `pids`, as `runc ps` prints it:
/// the header, then the lines whose PID column is one of them.
fn ps_table(pids: &[i32], args: &[String]) -> Result<String, Failure> {
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Failure::Other(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(Failure::Other(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| Failure::Other("ps printed no PID column".into()))?;
    let mut table = format!("{header}\n");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            table.push_str(l);
            table.push('\n');
        }
    }
    Ok(table)
}

/// A private directory for a console socket under the state root.
fn tempfile_dir(root: &std::path::Path) -> Result<PathBuf, Failure> {
    let dir = root.join(format!(".console-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Other(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Copies our stdin to the terminal and the terminal to our stdout (our terminal, if any,
/// in raw mode meanwhile); returns the output side, which ends when the container closes its
/// terminal.
fn start_relay(master: std::os::fd::OwnedFd) -> std::thread::JoinHandle<()> {
    use nix::sys::termios;
    let mut input = std::fs::File::from(master.try_clone().expect("dup of the pty master"));
    let mut output = std::fs::File::from(master);
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw);
    }
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut input);
    });
    std::thread::spawn(move || {
        let mut out = std::io::stdout();
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut output, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                        break;
                    }
                }
            }
        }
        if let Some(t) = saved {
            let _ = termios::tcsetattr(std::io::stdin(), termios::SetArg::TCSANOW, &t);
        }
    })
}

/// `list`'s OWNER: as runc's, the name of the user owning the container's state directory,
/// `#UID` when the password database has no such user (`state` prints `owner` as "").
fn owner(rt: &Runtime, id: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(rt.root().join(id)) else {
        return String::new();
    };
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid())) {
        Ok(Some(user)) => user.name,
        _ => format!("#{}", meta.uid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str], valued: &[&str]) -> Args {
        let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        Args::parse(&v, valued).unwrap()
    }

    #[test]
    fn parses_runc_shapes() {
        let a = args(
            &["--bundle", "/b", "--pid-file=/p", "-d", "id1"],
            CREATE_VALUED,
        );
        assert_eq!(a.value(&["bundle", "b"]), Some("/b"));
        assert_eq!(a.value(&["pid-file"]), Some("/p"));
        assert!(a.has(&["detach", "d"]));
        assert_eq!(a.id().unwrap(), "id1");
        a.check_known(CREATE_FLAGS).unwrap();

        // Flags after the id, and a signal as a second positional.
        let a = args(&["id2", "KILL", "--all"], &[]);
        assert_eq!(a.positional, ["id2", "KILL"]);
        assert!(a.has(&["all", "a"]));
        assert!(a.check_known(&["force"]).is_err());

        let a = args(&["--force=false", "x"], &[]);
        assert!(!a.has(&["force"]));
        assert_eq!(
            parse_duration("5s"),
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            parse_duration("1m30s"),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        for bad in ["", "5", "5x", "-1s", "0s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("64m"), Some(64 << 20));
        assert_eq!(parse_bytes("2G"), Some(2 << 30));
        assert_eq!(parse_bytes("1KiB"), Some(1024));
        assert_eq!(parse_bytes("-1"), Some(-1));
        assert_eq!(parse_bytes("-2"), None);
        assert_eq!(parse_bytes("lots"), None);
        let a = args(
            &[
                "--memory",
                "32m",
                "--cpu-quota=20000",
                "--pids-limit",
                "9",
                "x",
            ],
            UPDATE_VALUED,
        );
        let r = update_resources(&a).ok().unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(32 << 20));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(20000));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 9);
        assert!(r.block_io().is_none());
        let v: Vec<String> = vec!["--bundle".into()];
        assert!(Args::parse(&v, CREATE_VALUED).is_err());
        assert!(args(&[], &[]).id().is_err());
    }
}
