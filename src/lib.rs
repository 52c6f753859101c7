//! become-root: run a command as root in a new user namespace with every subordinate id
//! mapped. The binaries in `src/bin/` are thin; everything lives here.
//!
//! Pure modules (`cli`, `subid`, `idmap`, `audit`, `net::ports`) forbid `unsafe`; `sys` is the
//! only module allowed `unsafe` at all, and every block there says why it is sound.
#![deny(unsafe_code)]

pub mod audit;
pub mod cgroup;
pub mod check;
pub mod cli;
pub mod containers;
pub mod error;
pub mod identity;
pub mod idmap;
pub mod info;
pub mod json;
pub mod kernel;
pub mod launch;
pub mod mountinfo;
pub mod mounts;
pub mod net;
pub mod options;
pub mod process;
pub mod programs;
pub mod session;
pub mod subid;
pub mod subid_cmd;
pub mod sys;
pub mod userns;
pub mod writers;

use std::ffi::OsString;
use std::path::Path;

/// The programs this library implements, chosen by the name the executable runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    BecomeRoot,
    /// Inspect and audit subordinate-id allocation (`subid_cmd`).
    Subid,
}

impl Program {
    /// `subid` for the basename `subid` (a busybox-style symlink), `become-root` for any
    /// other name, so a renamed copy still works.
    pub fn from_argv0(argv0: Option<&OsString>) -> Program {
        let name = argv0.and_then(|a| Path::new(a).file_name());
        match name.and_then(|n| n.to_str()) {
            Some("subid") => Program::Subid,
            Some(_) | None => Program::BecomeRoot,
        }
    }
}

/// Dispatch on the name the executable was started under, then run it; returns the exit
/// status.
pub fn main(args: Vec<OsString>) -> i32 {
    run(Program::from_argv0(args.first()), args)
}

/// Run `program`. Before anything else (any parsing, any entry point: a run, --join,
/// --check, --list, --stop, subid): refuse to run with privilege. A set-user-ID or
/// file-capability copy would otherwise act with that privilege on files any user can write
/// (a forged session state file made --stop signal another user's process).
pub fn run(program: Program, args: Vec<OsString>) -> i32 {
    process::ignore_file_size_signal();
    if let Err(e) = userns::refuse_privileged() {
        let name = match program {
            Program::BecomeRoot => "become-root",
            Program::Subid => "subid",
        };
        error::say!("{name}: refusing to run: {e}");
        error::say!("hint: install it as a plain executable: chmod u-s,g-s FILE; setcap -r FILE");
        return match program {
            Program::BecomeRoot => error::EXIT_FAILURE,
            Program::Subid => subid_cmd::EXIT_FAILURE,
        };
    }
    match program {
        Program::BecomeRoot => become_root(args),
        Program::Subid => subid_cmd::main(args),
    }
}

/// `become-root`: parse the command line, and hand what it asks for to the layer that does it.
fn become_root(args: Vec<OsString>) -> i32 {
    // A detached session's log keeper, started again by the session (session::keep_log).
    if let Some(name) = sys::take_env_var(session::KEEPER) {
        return session::keep_log(&name);
    }
    // The plain `--join=NAME [COMMAND...]` needs no clap (joining is meant to be cheap).
    if let Some((spec, command)) = cli::plain_join(&args) {
        return session::main(session::SessionCommand::Join {
            spec,
            command,
            chdir: None,
            identity: identity::Asked::default(),
            quiet: false,
        });
    }
    // So does the plainest run, `become-root COMMAND...` (the most common command line).
    if let Some(request) = cli::plain_run(&args) {
        return launch::main(request);
    }
    match cli::Cli::parse_args(args) {
        Err(e) => cli::usage_exit(&e, "become-root"),
        Ok(cli) => match cli.into_action() {
            cli::Action::Run(request) => launch::main(request),
            cli::Action::Check(asked) => check::run(asked),
            cli::Action::Session(command) => session::main(command),
        },
    }
}
