//! What `subid` knows about subordinate-id allocation, as plain functions over file contents:
//! the findings of `subid check`, the ranges of one user for `subid show`, the next range for
//! `subid next`, and the range lookup of `subid scan`. No file I/O, no syscalls; the `subid`
//! executable (`subid_cmd`) reads the files and prints.
//!
//! Lines are read as shadow 4.13's newuidmap reads them (`crate::subid`): a finding says what
//! newuidmap makes of a line, because that is what the kernel finally maps. Two views of a file
//! are used:
//! - *granted*: the ranges newuidmap reads (for `check`'s overlap and account sweeps);
//! - *allocated*: every range written in the file, as newuidmap reads it and as a person reads
//!   it (for `next` and `scan`). A line newuidmap ignores (a CRLF ending, a trailing space) still
//!   records that someone was given those ids, and a file created inside that person's
//!   namespaces still carries them on disk.
//!
//! Everything is linear after one sort: overlaps are found by sorting ranges by start and
//! sweeping once, account ids by merging them, sorted, with the sorted ranges. Nothing compares
//! every pair: a million lines in each file take about a third of a second when owners come in
//! passwd order (see `Owners::resolve`), and memory is the subid files plus 64 bytes a range
//! (scripts/bench-subid measures it).
//!
//! The parts, each owning one concern:
//! - this module: the finding types ([`Finding`], [`Kind`], [`Severity`]) and the order of
//!   `check`'s steps for each file;
//! - `accounts`: the passwd and group tables ([`Accounts`]);
//! - `lines`: how newuidmap reads a line, and the findings about one line's text;
//! - `owners`: whom a line grants ids to, and the findings about its owner;
//! - `maps`: whether each owner's ranges fit in one id map;
//! - `overlaps`: the sort-and-sweep over granted ranges (overlaps, account ids);
//! - `render`: the text and JSON reports;
//! - `next`: the allocated view and `subid next`;
//! - `users`: the ranges of one user (`subid show`) and of one id (`subid scan`).
#![forbid(unsafe_code)]

mod accounts;
mod lines;
mod maps;
mod next;
mod overlaps;
mod owners;
mod render;
mod users;

use std::borrow::Cow;
use std::fmt;

pub use crate::json::json_string;
pub use accounts::{Accounts, Table};
pub use lines::{for_each_line, shadow_reads};
pub use next::{Allocated, NoRoom, allocated, next_range};
pub use render::{Paths, counts, render_json, render_text, show_bytes};
pub use users::{RangeIndex, UserProblem, UserRange, user_ranges};

use lines::check_line;
use maps::check_maps;
use overlaps::{Granted, sweep_accounts, sweep_overlaps};
use owners::Owners;

/// Ids at and above this are beyond what a range may reach: (uid_t)-1 is never mapped.
pub const ID_LIMIT: u64 = u32::MAX as u64;
/// Ranges starting below this share the space of system and login accounts (login.defs'
/// UID_MAX is 60000 by default) and of nobody (65534).
pub const LOW_LIMIT: u64 = 65536;
/// Where `next` starts its grid: useradd's default SUB_UID_MIN and SUB_GID_MIN.
pub const NEXT_BASE: u64 = 100_000;
/// The grid step of `next` and its default count: useradd's SUB_UID_COUNT and SUB_GID_COUNT.
pub const NEXT_STEP: u64 = 65536;

/// How bad a finding is. `subid check` exits 1 when there is an [`Severity::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// Which of the two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Which {
    Subuid,
    Subgid,
}

impl Which {
    /// "uid" or "gid".
    pub fn id_word(self) -> &'static str {
        match self {
            Which::Subuid => "uid",
            Which::Subgid => "gid",
        }
    }
}

/// What a finding is about. The name ([`Kind::as_str`]) is stable: scripts may match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Ranges of different owners share ids.
    Overlap,
    /// Ranges of one owner share ids.
    Duplicate,
    /// A range contains the id of an account or group (CVE-2024-56433).
    Account,
    /// The owner is one account's login name and another's uid: both are granted the range.
    AmbiguousOwner,
    /// One owner's ranges do not fit in one id map beside its own id.
    TooManyRanges,
    /// A range starts below 65536.
    LowRange,
    /// start+count > 4294967295.
    TooHigh,
    /// newuidmap ignores the line.
    Ignored,
    /// A NUL byte makes newuidmap join lines.
    NulByte,
    /// A NUL byte on the last terminated line: newuidmap reads nothing from the file.
    Unreadable,
    /// More than three fields: newuidmap reads the first three.
    ExtraFields,
    /// count is 0.
    CountZero,
    /// A number with a leading 0 that newuidmap reads as octal, to a different value.
    Octal,
    /// A number newuidmap reads, but not written in plain decimal (hex, sign, spaces).
    NotDecimal,
    /// The last line has no '\n'.
    NoFinalNewline,
    /// A line starting with '#': subuid(5) has no comments.
    Comment,
    /// A numeric owner with leading zeros, which newuidmap never matches.
    PaddedOwner,
    /// The owner is no account.
    MissingOwner,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Overlap => "overlap",
            Kind::Duplicate => "duplicate",
            Kind::Account => "account",
            Kind::AmbiguousOwner => "ambiguous-owner",
            Kind::TooManyRanges => "too-many-ranges",
            Kind::LowRange => "low-range",
            Kind::TooHigh => "too-high",
            Kind::Ignored => "ignored",
            Kind::NulByte => "nul-byte",
            Kind::Unreadable => "unreadable",
            Kind::ExtraFields => "extra-fields",
            Kind::CountZero => "count-zero",
            Kind::Octal => "octal",
            Kind::NotDecimal => "not-decimal",
            Kind::NoFinalNewline => "no-final-newline",
            Kind::Comment => "comment",
            Kind::PaddedOwner => "padded-owner",
            Kind::MissingOwner => "missing-owner",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Kind::Overlap
            | Kind::Account
            | Kind::AmbiguousOwner
            | Kind::TooManyRanges
            | Kind::TooHigh
            | Kind::Ignored
            | Kind::NulByte
            | Kind::Unreadable
            | Kind::Octal => Severity::Error,
            Kind::Duplicate
            | Kind::LowRange
            | Kind::ExtraFields
            | Kind::CountZero
            | Kind::NotDecimal
            | Kind::NoFinalNewline
            | Kind::Comment
            | Kind::PaddedOwner => Severity::Warning,
            Kind::MissingOwner => Severity::Note,
        }
    }
}

/// `[start, start + count)`, 64-bit because shadow reads 64-bit numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub count: u64,
}

impl Span {
    /// The last id, as `usermod --add-subuids START-END` writes it (128 bits: a range shadow
    /// reads may end past 2^64).
    pub fn last(self) -> u128 {
        u128::from(self.start) + u128::from(self.count) - 1
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.last())
    }
}

/// The other range of an overlap; always in the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Other<'a> {
    pub owner: Cow<'a, [u8]>,
    pub line: usize,
    pub range: Span,
}

/// The accounts a range contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountHit<'a> {
    /// The lowest such id, and its account or group name.
    pub id: u32,
    pub name: &'a [u8],
    /// How many more accounts (or groups) have ids in the range.
    pub more: usize,
}

/// One line of `subid check`'s report. It borrows from the files it is about and builds its
/// sentence only when printed ([`Finding::message`]), so a file with a million findings costs
/// little more than the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding<'a> {
    pub kind: Kind,
    pub file: Which,
    /// 1-based.
    pub line: usize,
    /// The owner field as written, when the line has one.
    pub owner: Option<Cow<'a, [u8]>>,
    /// The range as newuidmap reads it, when it reads one.
    pub range: Option<Span>,
    pub other: Option<Box<Other<'a>>>,
    pub account: Option<Box<AccountHit<'a>>>,
    /// What is wrong with the line, for the kinds about one line's text.
    detail: Option<Box<str>>,
}

impl Finding<'_> {
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

/// Every finding about the two files, sorted by file, line and kind.
pub fn check<'a>(subuid: &'a [u8], subgid: &'a [u8], accounts: &'a Accounts) -> Vec<Finding<'a>> {
    let mut findings = Vec::new();
    for (which, text) in [(Which::Subuid, subuid), (Which::Subgid, subgid)] {
        check_file(which, text, accounts, &mut findings);
    }
    findings.sort_by_key(|f| (f.file, f.line, f.kind));
    findings
}

/// What [`check_line`] works with.
struct FileCheck<'a, 'r> {
    which: Which,
    owners: Owners<'a, 'r>,
    granted: Vec<Granted<'a>>,
    out: &'r mut Vec<Finding<'a>>,
}

/// One file's steps: each line's own checks and its owner's (`lines`, `owners`), the findings
/// about the whole file, then the passes over what the lines grant (`maps`, `overlaps`).
fn check_file<'a>(
    which: Which,
    text: &'a [u8],
    accounts: &'a Accounts,
    out: &mut Vec<Finding<'a>>,
) {
    let mut state = FileCheck {
        which,
        owners: Owners::new(accounts),
        granted: Vec::new(),
        out,
    };
    let mut last_line = 0;
    let unreadable = for_each_line(text, |number, line, spliced| {
        last_line = number;
        check_line(&mut state, number, line, spliced);
    });
    let FileCheck {
        mut granted,
        owners,
        out,
        ..
    } = state;
    let whole_file = |line, kind| Finding {
        kind,
        file: which,
        line,
        owner: None,
        range: None,
        other: None,
        account: None,
        detail: None,
    };
    if let Some(line) = unreadable {
        out.push(whole_file(line, Kind::Unreadable));
    }
    if !text.is_empty() && !text.ends_with(b"\n") {
        out.push(whole_file(last_line, Kind::NoFinalNewline));
    }
    // Before the sweeps sort `granted`: a map takes ranges in file order.
    check_maps(which, &granted, &owners, accounts, out);
    sweep_overlaps(which, &mut granted, out);
    sweep_accounts(which, &granted, accounts, out);
}

/// Fixtures shared by the unit tables of every part of `audit`.
#[cfg(test)]
mod tests {
    use super::{Accounts, check};

    pub(super) const PASSWD: &[u8] = b"root:x:0:0::/root:/bin/sh\n\
        daemon:x:1:1::/:/usr/sbin/nologin\n\
        alice:x:1000:1000::/home/alice:/bin/sh\n\
        bob:x:1001:1001::/home/bob:/bin/sh\n\
        carol:x:1002:1002::/home/carol:/bin/sh\n\
        nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n";
    pub(super) const GROUP: &[u8] = b"root:x:0:\nusers:x:100:\nalice:x:1000:\nbob:x:1001:\n\
        carol:x:1002:\nnogroup:x:65534:\n";
    pub(super) const STOCK: &[u8] = b"alice:100000:65536\nbob:165536:65536\ncarol:231072:65536\n";

    /// The (line, kind) of each finding about `subuid`, checked with the clean STOCK subgid.
    pub(super) fn kinds(subuid: &[u8]) -> Vec<(usize, &'static str)> {
        kinds_with(PASSWD, subuid)
    }

    /// [`kinds`] with another passwd file.
    pub(super) fn kinds_with(passwd: &[u8], subuid: &[u8]) -> Vec<(usize, &'static str)> {
        let accounts = Accounts::parse(passwd, GROUP);
        check(subuid, STOCK, &accounts)
            .iter()
            .map(|f| (f.line, f.kind.as_str()))
            .collect()
    }

    /// (what the row checks, subuid text, expected (line, kind) findings).
    pub(super) type Row = (&'static str, &'static [u8], Vec<(usize, &'static str)>);

    pub(super) fn check_rows(rows: Vec<Row>) {
        for (rule, text, expected) in rows {
            assert_eq!(kinds(text), expected, "{rule}");
        }
    }

    #[test]
    fn check_table() {
        check_rows(vec![
            ("stock file is clean", STOCK, vec![]),
            ("empty file is clean", b"", vec![]),
            (
                "empty lines are harmless",
                b"\nalice:100000:65536\n\n",
                vec![],
            ),
        ]);
    }
}
