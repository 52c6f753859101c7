//! The `subid` executable: reads the files (or asks getsubids), walks directories for `scan`,
//! and prints what `audit` concludes. Every judgement is made in `audit`; this module owns
//! the side effects and the exit status.
//!
//! Exit status (a contract, in the man page): 0 when all is well; 1 when the answer is "no":
//! `check` found an error, `scan` found a file, `show` found no uid or no gid range, `next`
//! found no room; 2 when subid itself failed, bad usage included. subid runs no command, so
//! there is no command status to keep apart (become-root's reason for 125), and 2 is what
//! grep, diff and most administration tools use.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;
use std::{fmt, fs};

use crate::audit::{self, Accounts, Table, Which};
use crate::cli::subid::{AccountFiles, CheckArgs, Cli, Command, NextArgs, SubidFiles};

mod scan;
mod show;

use scan::scan;
use show::show;

/// All is well.
pub const EXIT_OK: i32 = 0;

/// The answer is no: errors found, files found, no ranges, no room.
pub const EXIT_FOUND: i32 = 1;

/// subid itself failed, bad usage included.
pub const EXIT_FAILURE: i32 = 2;

const SUBUID: &str = "/etc/subuid";

const SUBGID: &str = "/etc/subgid";

const PASSWD: &str = "/etc/passwd";

const GROUP: &str = "/etc/group";

/// subid's own failure, printed as `subid: <what>: <why>` and `hint: <fix>`.
#[derive(Debug)]
pub struct Failure {
    what: String,
    why: String,
    hint: Option<String>,
}

impl Failure {
    fn new(what: impl Into<String>, why: impl Into<String>) -> Self {
        Failure {
            what: what.into(),
            why: why.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn io(what: impl Into<String>, e: &io::Error) -> Self {
        Failure::new(what, io_why(e))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "subid: {}: {}", self.what, self.why)?;
        if let Some(hint) = &self.hint {
            writeln!(f, "hint: {hint}")?;
        }
        Ok(())
    }
}

/// The errno text without Rust's " (os error N)".
fn io_why(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// The entry point of `subid` (and of `become-root` run under the name `subid`): parse, run,
/// and return the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    let cli = match <Cli as clap::Parser>::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.command {
        Command::Show(args) => show(args),
        Command::Check(args) => check(args),
        Command::Next(args) => next(args),
        Command::Scan(args) => scan(args),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprint!("{failure}");
            EXIT_FAILURE
        }
    }
}

fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return EXIT_OK;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return EXIT_FAILURE;
        }
        _ => {}
    }
    let (why, hint) = crate::cli::clap_usage(&e, "subid");
    eprint!("{}", Failure::new("usage", why).hint(hint));
    EXIT_FAILURE
}

/// A file subid reads: given on the command line, or the system's.
struct Input {
    shown: String,
    text: Vec<u8>,
}

/// Read `given`, or `default` when not given. A missing default subuid or subgid file is an
/// empty one, as it is to newuidmap; a missing file named on the command line is an error.
fn read_input(
    given: Option<&Path>,
    default: &str,
    missing_is_empty: bool,
) -> Result<Input, Failure> {
    let path = given.unwrap_or(Path::new(default));
    let shown = path.display().to_string();
    match fs::read(path) {
        Ok(text) => Ok(Input { shown, text }),
        Err(e) if e.kind() == io::ErrorKind::NotFound && given.is_none() && missing_is_empty => {
            Ok(Input {
                shown,
                text: Vec::new(),
            })
        }
        Err(e) => Err(Failure::io(shown, &e)),
    }
}

/// The account files, read a line at a time (see [`Accounts::read`]); returns them with the
/// names to show for them.
fn read_accounts(files: &AccountFiles) -> Result<(Accounts, String, String), Failure> {
    let passwd = files.passwd.as_deref().unwrap_or(Path::new(PASSWD));
    let group = files.group.as_deref().unwrap_or(Path::new(GROUP));
    let open = |path: &Path| {
        fs::File::open(path)
            .map(|f| io::BufReader::with_capacity(1 << 16, f))
            .map_err(|e| Failure::io(path.display().to_string(), &e))
    };
    let accounts = Accounts::read(open(passwd)?, open(group)?).map_err(|(table, e)| {
        let path = match table {
            Table::Passwd => passwd,
            Table::Group => group,
        };
        Failure::io(path.display().to_string(), &e)
    })?;
    Ok((
        accounts,
        passwd.display().to_string(),
        group.display().to_string(),
    ))
}

fn read_subid_files(files: &SubidFiles) -> Result<(Input, Input), Failure> {
    Ok((
        read_input(files.subuid.as_deref(), SUBUID, true)?,
        read_input(files.subgid.as_deref(), SUBGID, true)?,
    ))
}

/// Write `text` to stdout.
fn print_out(text: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(text)
        .and_then(|()| out.flush())
        .or_else(output_error)
}

/// A closed pipe (`subid check | head`) is not a failure: the reader has what it wanted.
fn output_error(e: io::Error) -> Result<(), Failure> {
    match e.kind() {
        io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(Failure::io("writing to standard output", &e)),
    }
}

fn check(args: CheckArgs) -> Result<i32, Failure> {
    let (subuid, subgid) = read_subid_files(&args.files)?;
    let (accounts, passwd, group) = read_accounts(&args.accounts)?;
    let findings = audit::check(&subuid.text, &subgid.text, &accounts);

    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = if args.json {
        let paths = audit::Paths {
            subuid: &subuid.shown,
            subgid: &subgid.shown,
            passwd: &passwd,
            group: &group,
        };
        audit::render_json(&findings, &paths, &mut out)
    } else {
        findings.iter().try_for_each(|f| {
            let path = match f.file {
                Which::Subuid => &subuid.shown,
                Which::Subgid => &subgid.shown,
            };
            audit::render_text(f, path, &mut out)
        })
    };
    written.and_then(|()| out.flush()).or_else(output_error)?;
    let [errors, ..] = audit::counts(&findings);
    Ok(if errors > 0 { EXIT_FOUND } else { EXIT_OK })
}

fn next(args: NextArgs) -> Result<i32, Failure> {
    let (subuid, subgid) = read_subid_files(&args.files)?;
    let (accounts, _, _) = read_accounts(&args.accounts)?;
    match audit::next_range(&subuid.text, &subgid.text, &accounts, args.count) {
        Ok(span) => {
            let user = args.user.as_deref().unwrap_or("USER");
            print_out(
                format!("{span}\nusermod --add-subuids {span} --add-subgids {span} {user}\n")
                    .as_bytes(),
            )?;
            Ok(EXIT_OK)
        }
        Err(no_room) => {
            eprint!(
                "{}",
                Failure::new("next", no_room.to_string()).hint(
                    "a smaller --count may still fit; never hand out a range someone has had"
                )
            );
            Ok(EXIT_FOUND)
        }
    }
}
