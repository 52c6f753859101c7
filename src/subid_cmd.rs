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

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::audit::{self, Accounts, RangeIndex, Table, Which};
use crate::cli::subid::{
    AccountFiles, CheckArgs, Cli, Command, NextArgs, ScanArgs, ShowArgs, SubidFiles,
};
use crate::options::SubidSource;

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

// ---- check ----------------------------------------------------------------------------------

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

// ---- next -----------------------------------------------------------------------------------

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

// ---- show -----------------------------------------------------------------------------------

/// Who `show` is about.
struct User {
    /// The login name, or the owner text to match when USER is no account.
    name: Vec<u8>,
    uid: Option<u32>,
    /// Other login names with the same uid (newuidmap's `find_range` accepts those too).
    aliases: Vec<Vec<u8>>,
    is_account: bool,
}

fn resolve_user(arg: Option<&OsString>, accounts: &Accounts, passwd_given: bool) -> User {
    let nss_by_uid = |uid: u32| {
        if passwd_given {
            return None;
        }
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name.into_bytes())
    };
    let (name, uid) = match arg {
        None => {
            let uid = nix::unistd::getuid().as_raw();
            let name = accounts
                .name_of(uid)
                .map(<[u8]>::to_vec)
                .or_else(|| nss_by_uid(uid));
            (name, Some(uid))
        }
        Some(arg) => {
            let bytes = arg.as_bytes();
            if let Some(uid) = accounts.uid_of(bytes) {
                (Some(bytes.to_vec()), Some(uid))
            } else if let Some(user) = (!passwd_given)
                .then(|| arg.to_str())
                .flatten()
                .and_then(|n| nix::unistd::User::from_name(n).ok().flatten())
            {
                (Some(bytes.to_vec()), Some(user.uid.as_raw()))
            } else if let Some(uid) = std::str::from_utf8(bytes)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u32>().ok())
            {
                let name = accounts
                    .name_of(uid)
                    .map(<[u8]>::to_vec)
                    .or_else(|| nss_by_uid(uid));
                (name, Some(uid))
            } else {
                return User {
                    name: bytes.to_vec(),
                    uid: None,
                    aliases: Vec::new(),
                    is_account: false,
                };
            }
        }
    };
    let is_account = name.is_some();
    let name = name.unwrap_or_else(|| uid.unwrap_or_default().to_string().into_bytes());
    let aliases = match uid {
        Some(uid) if is_account => accounts
            .names_of(uid)
            .into_iter()
            .filter(|n| *n != name.as_slice())
            .map(<[u8]>::to_vec)
            .collect(),
        _ => Vec::new(),
    };
    User {
        name,
        uid,
        aliases,
        is_account,
    }
}

/// One line of `show`'s listing.
struct Shown {
    range: crate::subid::SubRange,
    at: String,
}

fn show(args: ShowArgs) -> Result<i32, Failure> {
    let files_given = args.files.subuid.is_some() || args.files.subgid.is_some();
    let use_getsubids = match args.subid_source {
        SubidSource::Getsubids if files_given => {
            return Err(Failure::new(
                "usage",
                "--subuid and --subgid name files, which --subid-source=getsubids does not read",
            )
            .hint("leave out --subid-source, or the file options"));
        }
        _ if files_given => false,
        SubidSource::Files => false,
        SubidSource::Getsubids => true,
        SubidSource::Auto => crate::userns::nsswitch_has_subid(),
    };
    let passwd = read_input(args.passwd.as_deref(), PASSWD, true)?;
    let accounts = Accounts::parse(&passwd.text, b"");
    let user = resolve_user(args.user.as_ref(), &accounts, args.passwd.is_some());
    let name = audit::show_bytes(&user.name).into_owned();

    let mut out = String::new();
    match (user.is_account, user.uid) {
        (true, Some(uid)) => out.push_str(&format!("user    {name} (uid {uid})\n")),
        _ => out.push_str(&format!(
            "user    {name} (no such account: lines are matched by their owner field)\n"
        )),
    }

    let mut lists: Vec<(&str, Vec<Shown>)> = Vec::new();
    let mut problems = Vec::new();
    if use_getsubids {
        out.push_str("source  getsubids (libsubid)\n");
        for (word, groups) in [("uid", false), ("gid", true)] {
            let ranges = getsubids(&name, groups)?;
            let shown = ranges
                .into_iter()
                .map(|range| Shown {
                    range,
                    at: "getsubids".into(),
                })
                .collect();
            lists.push((word, shown));
        }
    } else {
        let (subuid, subgid) = read_subid_files(&args.files)?;
        out.push_str(&format!(
            "source  files {} and {}\n",
            subuid.shown, subgid.shown
        ));
        let mut names: Vec<&[u8]> = vec![&user.name];
        names.extend(user.aliases.iter().map(Vec::as_slice));
        for (word, input) in [("uid", &subuid), ("gid", &subgid)] {
            let (ranges, bad) = audit::user_ranges(&input.text, &names, user.uid, &accounts);
            let shown = ranges
                .into_iter()
                .map(|r| {
                    let mut at = format!("{}:{}", input.shown, r.line);
                    if r.owner.as_bytes() != user.name.as_slice() {
                        at.push_str(&format!(" (as {})", r.owner));
                    }
                    Shown { range: r.range, at }
                })
                .collect();
            lists.push((word, shown));
            problems.extend(
                bad.into_iter()
                    .map(|p| format!("warning: {}:{}: {}", input.shown, p.line, p.what)),
            );
        }
    }

    // Columns as wide as their widest entry.
    let rows: Vec<(&str, String, String, &str)> = lists
        .iter()
        .flat_map(|(word, shown)| {
            shown.iter().map(move |s| {
                let span = audit::Span {
                    start: s.range.start.into(),
                    count: s.range.count.into(),
                };
                (
                    *word,
                    span.to_string(),
                    s.range.count.to_string(),
                    s.at.as_str(),
                )
            })
        })
        .collect();
    let range_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let count_width = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let mut totals = Vec::new();
    for (word, shown) in &lists {
        if shown.is_empty() {
            out.push_str(&format!("{word}     none\n"));
        }
        for (_, range, count, at) in rows.iter().filter(|r| r.0 == *word) {
            out.push_str(&format!(
                "{word}     {range:<range_width$}  {count:>count_width$} ids  {at}\n"
            ));
        }
        let ids: u64 = shown.iter().map(|s| u64::from(s.range.count)).sum();
        let ranges = match shown.len() {
            1 => "1 range".to_string(),
            n => format!("{n} ranges"),
        };
        totals.push(format!("{ids} {word}s in {ranges}"));
    }
    out.push_str(&format!("total   {}\n", totals.join(", ")));
    print_out(out.as_bytes())?;
    for p in &problems {
        eprintln!("{p}");
    }
    if lists.iter().any(|(_, shown)| shown.is_empty()) {
        eprintln!(
            "hint: 'subid next {name}' proposes a range no one has ever had, with the usermod \
             command that allocates it"
        );
        return Ok(EXIT_FOUND);
    }
    Ok(EXIT_OK)
}

/// `getsubids [-g] NAME` (shadow), as become-root asks it.
fn getsubids(name: &str, groups: bool) -> Result<Vec<crate::subid::SubRange>, Failure> {
    crate::userns::getsubids(name, groups).map_err(|e| {
        Failure::new("getsubids", e.to_string())
            .hint("check /etc/nsswitch.conf's subid line, or use --subid-source=files")
    })
}

// ---- scan -----------------------------------------------------------------------------------

/// The allocated ranges of one file, with the file's name for the report.
struct Ranges<'a> {
    index: RangeIndex<'a>,
    shown: &'a str,
}

impl Ranges<'_> {
    /// "range 100000-165535 of alice (/etc/subuid:1)", for each range containing `id`.
    fn describe(&self, id: u32) -> Option<String> {
        let found = self.index.containing(id);
        if found.is_empty() {
            return None;
        }
        let parts: Vec<String> = found
            .iter()
            .map(|a| {
                format!(
                    "range {}-{} of {} ({}:{})",
                    a.start,
                    a.end - 1,
                    audit::show_bytes(&a.owner),
                    self.shown,
                    a.line
                )
            })
            .collect();
        Some(parts.join(" and "))
    }
}

/// What the walk found and met.
#[derive(Default)]
struct Walk {
    out: Vec<u8>,
    found: usize,
    trouble: bool,
}

fn scan(args: ScanArgs) -> Result<i32, Failure> {
    let (subuid, subgid) = read_subid_files(&args.files)?;
    let uids = Ranges {
        index: RangeIndex::new(audit::allocated(&subuid.text)),
        shown: &subuid.shown,
    };
    let gids = Ranges {
        index: RangeIndex::new(audit::allocated(&subgid.text)),
        shown: &subgid.shown,
    };
    if uids.index.is_empty() && gids.index.is_empty() {
        eprintln!(
            "subid: scan: {} and {} allocate no ranges, so no file can be owned by one",
            subuid.shown, subgid.shown
        );
    }
    let one_fs = !args.cross_filesystems;
    let mut walk = Walk::default();
    for root in &args.paths {
        scan_root(root, one_fs, args.follow_symlinks, &uids, &gids, &mut walk);
        // Print as we go, so a long scan shows its findings early.
        print_out(&walk.out)?;
        walk.out.clear();
    }
    Ok(if walk.found > 0 {
        EXIT_FOUND
    } else if walk.trouble {
        EXIT_FAILURE
    } else {
        EXIT_OK
    })
}

fn show_path(path: &Path) -> std::borrow::Cow<'_, str> {
    audit::show_bytes(path.as_os_str().as_bytes())
}

/// Walk one PATH depth-first without recursion, in name order (as `find` lists a tree). The
/// PATH itself is followed if it is a link (it was named on purpose, as `find -H` does);
/// below it, links are followed only with --follow-symlinks, and directories on other
/// filesystems are skipped unless asked. Every directory is entered once, by (device, inode),
/// so links cannot make it loop.
fn scan_root(
    root: &Path,
    one_fs: bool,
    follow: bool,
    uids: &Ranges<'_>,
    gids: &Ranges<'_>,
    walk: &mut Walk,
) {
    let meta = match fs::metadata(root) {
        Ok(meta) => meta,
        Err(e) => {
            eprint!("{}", Failure::io(show_path(root), &e));
            walk.trouble = true;
            return;
        }
    };
    let device = meta.dev();
    let mut seen = HashSet::new();
    // What is still to visit, the next on top.
    let mut stack = vec![(root.to_path_buf(), meta)];
    while let Some((path, meta)) = stack.pop() {
        if !meta.is_dir() {
            judge(&path, &meta, uids, gids, walk);
            continue;
        }
        if (one_fs && meta.dev() != device) || !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) => {
                eprint!("{}", Failure::io(show_path(&path), &e));
                walk.trouble = true;
                continue;
            }
        };
        let mut children = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    eprint!("{}", Failure::io(show_path(&path), &e));
                    walk.trouble = true;
                    break;
                }
            };
            let child = entry.path();
            let meta = match entry.file_type() {
                Ok(t) if t.is_symlink() && !follow => continue,
                // A dangling link names no file.
                Ok(t) if t.is_symlink() => match fs::metadata(&child) {
                    Ok(meta) => meta,
                    Err(_) => continue,
                },
                _ => match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) => {
                        eprint!("{}", Failure::io(show_path(&child), &e));
                        walk.trouble = true;
                        continue;
                    }
                },
            };
            children.push((child, meta));
        }
        // Reversed, so that the first name is popped first.
        children.sort_by(|a, b| b.0.cmp(&a.0));
        stack.extend(children);
    }
}

/// Report a regular file that is set-user-ID with an owner in a subordinate uid range, or
/// set-group-ID with a group in a subordinate gid range. (A set-group-ID directory only
/// passes its group on to new files; it runs nothing, so it is not reported.)
fn judge(path: &Path, meta: &fs::Metadata, uids: &Ranges<'_>, gids: &Ranges<'_>, walk: &mut Walk) {
    if !meta.is_file() {
        return;
    }
    let mode = meta.mode();
    let checks = [
        (S_ISUID, "set-user-ID", "uid", meta.uid(), uids),
        (S_ISGID, "set-group-ID", "gid", meta.gid(), gids),
    ];
    for (bit, what, word, id, ranges) in checks {
        if mode & bit == 0 {
            continue;
        }
        if let Some(owners) = ranges.describe(id) {
            walk.found += 1;
            let _ = writeln!(
                walk.out,
                "{}: {what} file of {word} {id}, in {owners}",
                show_path(path)
            );
        }
    }
}

/// The mode bits of inode(7).
const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
