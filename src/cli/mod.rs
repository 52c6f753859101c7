//! The command lines, as clap definitions and nothing else: `become-root` here, `subid` in
//! `subid.rs`.
//!
//! Each option is defined once. Those of a new run are fields of [`crate::launch::Request`]
//! (with [`crate::identity::Asked`] and [`crate::cgroup::Limits`] flattened into it), which
//! [`Cli`] flattens, and which --join, --stop and --check read what they take of; [`Cli`]
//! adds only the options of the other modes. The launcher never reads argv:
//! `bin/become-root.rs` parses into [`Cli`] and hands the result over. The same definition
//! generates `man/` and `completions/` (see `tests/docs.rs`), so help, man page and
//! completions cannot drift apart. Which options each mode (a run, --check, --list, --stop,
//! --join, --logs) takes is the table of `modes.rs`, checked once after parsing.
#![forbid(unsafe_code)]
// The help texts are the doc comments: "[HOST_IP:]PORT" is a command line's optional part there,
// not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::ffi::OsString;

use clap::Parser;

use crate::launch::Request;

pub use crate::options::{
    FsArg, MapMode, NetMode, NotifyReady, OverlayDriver, PortDriver, Propagation, SubidSource,
};

mod action;
mod fast;
pub mod modes;
pub mod subid;
mod usage;

pub use action::Action;
pub use fast::{plain_join, plain_run};
pub use usage::{clap_usage, usage_exit};

const AFTER_HELP: &str = "\
Exit status: the command's own; 128+N when it was killed by signal N (become-root dies
of the same signal); 125 when become-root itself failed; 126 when COMMAND could not be
executed; 127 when COMMAND was not found.";

/// Run a command as root in a new user namespace with all subordinate ids mapped.
#[derive(Debug, Parser)]
#[command(
    name = "become-root",
    version,
    about = "Run a command as root in a new user namespace with all subordinate ids mapped",
    long_about = "Run COMMAND (default: $SHELL, else /bin/sh) as uid 0 in a new user namespace \
in which the caller and all of the caller's subordinate ids from /etc/subuid and /etc/subgid \
are mapped, optionally in new mount, network, pid, uts, ipc and cgroup namespaces. \
become-root is not setuid: the id maps are written by the setuid helpers newuidmap and \
newgidmap, which the administrator configures through /etc/subuid and /etc/subgid.",
    after_help = AFTER_HELP,
    max_term_width = 100
)]
pub struct Cli {
    /// The options of a new run, which --join, --stop and --check read some of.
    #[command(flatten)]
    pub run: Request,

    /// With --join=NAME: stop publishing SPEC ([HOST_IP:]HOST_PORT:NS_PORT[/tcp|/udp], as
    /// --list shows it) in running session NAME (repeatable); with --publish and no COMMAND,
    /// --join=NAME adds ports to it
    #[arg(long, value_name = "SPEC")]
    pub unpublish: Vec<String>,

    /// Run COMMAND (default: $SHELL, else /bin/sh) as root in the namespaces of session NAME,
    /// or of process PID: its user namespace first, then the others it made. No map is
    /// written and no helper runs. The working directory is --chdir, else the current one;
    /// --uid, --gid and the capability options apply as in a new run
    #[arg(long, value_name = "NAME|PID", help_heading = "Sessions")]
    pub join: Option<String>,

    /// List the running sessions: name, pid, creation time, namespaces, network, state file
    #[arg(long, help_heading = "Sessions")]
    pub list: bool,

    /// With --list: print one JSON object {"state_dir": ..., "sessions": [...]}
    #[arg(long, help_heading = "Sessions")]
    pub json: bool,

    /// End session NAME and everything in it (SIGTERM, or SIGRTMIN+3 to a booted image's pid
    /// 1, then SIGKILL after --stop-timeout) and remove its state; returns once all of it is
    /// gone
    #[arg(long, value_name = "NAME", help_heading = "Sessions")]
    pub stop: Option<String>,

    /// Print the output of detached session NAME (a booted image's console), while it runs
    /// or after it ended; the last 8 to 16 MiB are kept
    #[arg(long, value_name = "NAME", help_heading = "Sessions")]
    pub logs: Option<String>,

    /// With --logs: go on printing what the session writes until it ends
    #[arg(long, help_heading = "Sessions")]
    pub follow: bool,

    /// Report whether become-root can work here, one line per item: ok, warn (an optional
    /// feature is unavailable) or FAIL, each with its fix. Exit status 0 when a command could
    /// run with the --map given (--map=auto may map only your own ids), 1 when it could not
    #[arg(long)]
    pub check: bool,
}

impl Cli {
    /// Parse like `Parser::try_parse_from`, and also record the filesystem options in the
    /// order they were given (later mounts may build on earlier ones).
    pub fn parse_args(args: Vec<OsString>) -> Result<Cli, clap::Error> {
        use clap::FromArgMatches;
        let mut matches = Self::command().try_get_matches_from(args)?;
        // Which options each mode takes: one table, checked here once (cli/modes.rs).
        modes::check(&matches)?;
        // Indices first: from_arg_matches_mut takes the values out (no copy of the matches).
        let index = |id: &str| matches.indices_of(id).map(|i| i.collect::<Vec<usize>>());
        let indices: Vec<Option<Vec<usize>>> = ["bind", "ro_bind", "tmpfs", "copy_up", "overlay"]
            .iter()
            .map(|id| index(id))
            .collect();
        let mut cli = Cli::from_arg_matches_mut(&mut matches)?;
        let mut ordered: Vec<(usize, FsArg)> = Vec::new();
        type Kind<'a> = (&'a str, &'a Vec<String>, fn(String) -> FsArg);
        let kinds: [Kind; 5] = [
            ("bind", &cli.run.bind, FsArg::Bind),
            ("ro_bind", &cli.run.ro_bind, FsArg::RoBind),
            ("tmpfs", &cli.run.tmpfs, FsArg::Tmpfs),
            ("copy_up", &cli.run.copy_up, FsArg::CopyUp),
            ("overlay", &cli.run.overlay, FsArg::Overlay),
        ];
        for ((_, values, make), indices) in kinds.into_iter().zip(indices) {
            if let Some(indices) = indices {
                ordered.extend(indices.into_iter().zip(values.iter().cloned().map(make)));
            }
        }
        ordered.sort_by_key(|(index, _)| *index);
        cli.run.filesystem = ordered.into_iter().map(|(_, arg)| arg).collect();
        Ok(cli)
    }

    /// The clap command, for generating man pages and completions.
    pub fn command() -> clap::Command {
        <Self as clap::CommandFactory>::command()
    }
}
