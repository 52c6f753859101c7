//! The command line of `subid`, as clap definitions and nothing else. `subid_cmd` runs what
//! is parsed here; `tests/docs.rs` generates `man/subid.1` and the completions from it.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueHint};

use super::SubidSource;

const AFTER_HELP: &str = "\
Exit status: 0 when all is well; 1 when check finds an error-level finding, scan finds a
file, show finds no uid or no gid range, or next finds no room; 2 when subid itself failed,
bad usage included.";

/// Inspect and audit subordinate-id allocation.
#[derive(Debug, Parser)]
#[command(
    name = "subid",
    version,
    about = "Inspect and audit subordinate-id allocation (/etc/subuid, /etc/subgid)",
    long_about = "Inspect and audit the subordinate uid and gid ranges that /etc/subuid and \
/etc/subgid grant to users, and that newuidmap and newgidmap map into user namespaces. \
Every line is read the way newuidmap of shadow 4.13 reads it, so what subid reports is what \
the kernel would be asked to map.",
    after_help = AFTER_HELP,
    subcommand_required = true,
    arg_required_else_help = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every subordinate uid and gid range of a user, with totals and their source
    Show(ShowArgs),
    /// Audit the files: overlaps, ranges over existing accounts, lines newuidmap misreads
    Check(CheckArgs),
    /// Propose the next range to allocate, above every range ever allocated
    Next(NextArgs),
    /// Find set-user-ID and set-group-ID files owned by subordinate ids
    Scan(ScanArgs),
}

/// The subordinate id files.
#[derive(Debug, Clone, Default, Args)]
pub struct SubidFiles {
    /// The subordinate uid file [default: /etc/subuid]
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub subuid: Option<PathBuf>,

    /// The subordinate gid file [default: /etc/subgid]
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub subgid: Option<PathBuf>,
}

/// The account files.
#[derive(Debug, Clone, Default, Args)]
pub struct AccountFiles {
    /// The account file whose uids ranges must avoid [default: /etc/passwd]
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub passwd: Option<PathBuf>,

    /// The group file whose gids ranges must avoid [default: /etc/group]
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub group: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A login name or a uid [default: the caller]
    #[arg(value_name = "USER", value_parser = clap::value_parser!(OsString))]
    pub user: Option<OsString>,

    #[command(flatten)]
    pub files: SubidFiles,

    /// The account file to find USER in [default: the system's account database]
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub passwd: Option<PathBuf>,

    /// Where ranges come from: files, getsubids (libsubid), or auto (getsubids when
    /// /etc/nsswitch.conf has a subid line); --subuid or --subgid mean files
    #[arg(long, value_enum, default_value_t = SubidSource::Auto, value_name = "SOURCE")]
    pub subid_source: SubidSource,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub files: SubidFiles,

    #[command(flatten)]
    pub accounts: AccountFiles,

    /// Print the findings as one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NextArgs {
    /// The login name to put in the usermod command [default: USER]
    #[arg(value_name = "USER")]
    pub user: Option<String>,

    /// How many ids the range has
    #[arg(
        long,
        value_name = "N",
        default_value_t = 65536,
        value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX))
    )]
    pub count: u64,

    #[command(flatten)]
    pub files: SubidFiles,

    #[command(flatten)]
    pub accounts: AccountFiles,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Directories or files to scan
    #[arg(
        value_name = "PATH",
        required = true,
        num_args = 1..,
        value_hint = ValueHint::AnyPath,
        value_parser = clap::value_parser!(PathBuf)
    )]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub files: SubidFiles,

    /// Stay on the filesystem of each PATH (the default)
    #[arg(long, overrides_with = "cross_filesystems")]
    pub one_file_system: bool,

    /// Descend into other filesystems mounted below PATH
    #[arg(long, overrides_with = "one_file_system")]
    pub cross_filesystems: bool,

    /// Follow symbolic links below PATH (a PATH that is itself a link is always followed)
    #[arg(long)]
    pub follow_symlinks: bool,
}

impl Cli {
    /// The clap command, for generating man pages and completions.
    pub fn command() -> clap::Command {
        <Self as clap::CommandFactory>::command()
    }
}
