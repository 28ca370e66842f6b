//! A program that embeds the runtime but forgets to call `ocikit_runtime::init_if_requested()`
//! first thing in `main`. Its first act is a visible side effect: a line appended to
//! `forgot_init.marker` in the working directory, naming its pid and arguments.
//!
//! `forgot_init STATE_ROOT BUNDLE ID [HELPER]` then creates container `ID` from `BUNDLE`
//! (with `HELPER` as the init helper if given, else this program) and prints the error on
//! standard error. The runtime must refuse without ever running this `main` in a child: the
//! marker then has one line, the parent's (tests/embedding.rs checks it).

use std::io::Write;
use std::process::ExitCode;

use ocikit_runtime::{CreateOptions, Runtime};

fn main() -> ExitCode {
    // The side effect, before anything else (and no `init_if_requested()` call: that is the
    // mistake this program makes).
    let args: Vec<String> = std::env::args().collect();
    let line = format!("pid {} args {:?}\n", std::process::id(), args);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("forgot_init.marker")
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .expect("writing forgot_init.marker");

    let [_, root, bundle, id, rest @ ..] = args.as_slice() else {
        eprintln!("usage: forgot_init STATE_ROOT BUNDLE ID [HELPER]");
        return ExitCode::from(2);
    };
    let mut rt = Runtime::new(root);
    if let Some(helper) = rest.first() {
        rt = rt.with_helper(helper);
    }
    match rt.create(id, bundle, CreateOptions::new()) {
        Ok(c) => {
            println!("created {} (pid {})", c.id(), c.pid());
            let _ = rt.delete(id, true);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("forgot_init: {e}");
            ExitCode::from(1)
        }
    }
}
