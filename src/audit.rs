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
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;

use crate::subid::{self, LineError};

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

    /// The sentence after `[kind]`.
    pub fn message(&self) -> String {
        let owner = self.owner.as_deref().map(show_owner).unwrap_or_default();
        let range = self.range.map(|r| r.to_string()).unwrap_or_default();
        match self.kind {
            Kind::Overlap | Kind::Duplicate => {
                let Some(o) = &self.other else {
                    return String::new();
                };
                let tail = if self.kind == Kind::Overlap {
                    "; each of them can act on files the other creates in a user namespace"
                } else {
                    ", the same account; newuidmap does not mind, but one of them is redundant"
                };
                format!(
                    "range {range} of {owner} overlaps range {} of {} (line {}){tail}",
                    o.range,
                    show_owner(&o.owner),
                    o.line
                )
            }
            Kind::Account => {
                let Some(a) = &self.account else {
                    return String::new();
                };
                let (word, what) = match self.file {
                    Which::Subuid => ("uid", "account"),
                    Which::Subgid => ("gid", "group"),
                };
                let others = match a.more {
                    0 => String::new(),
                    1 => format!(" and the {word} of 1 more {what}"),
                    n => format!(" and the {word}s of {n} more {what}s"),
                };
                format!(
                    "range {range} of {owner} contains {word} {} of {what} {}{others}; its \
                     owner can map these ids and act as them (CVE-2024-56433)",
                    a.id,
                    show_bytes(a.name)
                )
            }
            Kind::LowRange => format!(
                "{owner}: range {range} starts below {LOW_LIMIT}, where accounts and nobody \
                 (65534) live; an account created later may get one of these ids"
            ),
            Kind::MissingOwner => format!(
                "{owner}: no account has this name or uid; keep range {range} allocated and \
                 never reassign it: files created in this owner's namespaces still carry \
                 these ids"
            ),
            Kind::Unreadable => "NUL byte on the last line: newuidmap fails to read this file \
                 and grants no one anything from it"
                .into(),
            Kind::NoFinalNewline => "no newline at the end of the file; newuidmap reads this \
                 line, but a line added with echo >> would be joined to it"
                .into(),
            _ => {
                // A comment has no owner, and padded-owner names it itself.
                let detail = self.detail.as_deref().unwrap_or_default();
                match owner.is_empty() || matches!(self.kind, Kind::Comment | Kind::PaddedOwner) {
                    true => detail.to_string(),
                    false => format!("{owner}: {detail}"),
                }
            }
        }
    }
}

/// FxHash's multiply-rotate, then a finalizer: the name tables hold a line per account, so a million-line passwd
/// is hashed a million times, and an administrator's own files need no protection from keys
/// chosen to collide (which is what the standard library's SipHash pays for).
#[derive(Debug, Default, Clone, Copy)]
struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(last));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    /// murmur3's fmix64: the multiply leaves the low bits depending on the low bytes only,
    /// and the table picks buckets by the low bits ("user1234" and "user1299" would share
    /// one).
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Account and group names and ids, from passwd(5) and group(5) text. Only the name and the id
/// field of each line are kept (lines that have no number there, and NIS `+`/`-` lines, are
/// skipped), in one buffer of names and 12 bytes per account: a passwd of a million accounts
/// takes about a third of its own size.
#[derive(Debug, Default)]
pub struct Accounts {
    /// Every name, one after the other.
    names: Vec<u8>,
    /// Each passwd line's account, in file order.
    users: Vec<Account>,
    /// Each group line's group, in file order.
    groups: Vec<Account>,
    /// (uid, index in `users`), sorted.
    uids: Vec<(u32, u32)>,
    /// (gid, index in `groups`), sorted.
    gids: Vec<(u32, u32)>,
    /// Login name to index in `users`. Built on first use: see [`Owners::resolve`] for why it
    /// is often never needed.
    by_name: OnceCell<NameTable>,
}

/// Which account file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Passwd,
    Group,
}

/// A name (in [`Accounts::names`]) and an id.
#[derive(Debug, Clone, Copy)]
struct Account {
    at: u32,
    len: u32,
    id: u32,
}

impl Accounts {
    /// From passwd and group text in memory.
    pub fn parse(passwd: &[u8], group: &[u8]) -> Accounts {
        Accounts::read(passwd, group).expect("reading from memory cannot fail")
    }

    /// From passwd and group files, a line at a time, so that neither is ever held whole.
    /// An error says which of the two could not be read.
    pub fn read(
        passwd: impl io::BufRead,
        group: impl io::BufRead,
    ) -> Result<Accounts, (Table, io::Error)> {
        let mut accounts = Accounts::default();
        accounts
            .read_table(passwd, Table::Passwd)
            .map_err(|e| (Table::Passwd, e))?;
        accounts
            .read_table(group, Table::Group)
            .map_err(|e| (Table::Group, e))?;
        let sorted = |list: &[Account]| {
            let mut ids: Vec<(u32, u32)> = (0..).zip(list).map(|(i, a)| (a.id, i)).collect();
            ids.sort_unstable();
            ids
        };
        accounts.uids = sorted(&accounts.users);
        accounts.gids = sorted(&accounts.groups);
        Ok(accounts)
    }

    fn read_table(&mut self, mut reader: impl io::BufRead, table: Table) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let Some((name, id)) = id_line(line.strip_suffix(b"\n").unwrap_or(&line)) else {
                continue;
            };
            let (Ok(at), Ok(len)) = (u32::try_from(self.names.len()), u32::try_from(name.len()))
            else {
                return Err(io::Error::other("more than 4 GiB of names"));
            };
            self.names.extend_from_slice(name);
            let list = match table {
                Table::Passwd => &mut self.users,
                Table::Group => &mut self.groups,
            };
            list.push(Account { at, len, id });
        }
    }

    fn name(&self, account: Account) -> &[u8] {
        &self.names[account.at as usize..][..account.len as usize]
    }

    /// Index in `users` of login `name`: the first line of that name, as getpwnam(3) finds.
    fn index_of(&self, name: &[u8]) -> Option<usize> {
        self.by_name
            .get_or_init(|| NameTable::new(self))
            .find(self, name)
    }

    /// The uid of login `name`.
    pub fn uid_of(&self, name: &[u8]) -> Option<u32> {
        self.index_of(name).map(|i| self.users[i].id)
    }

    /// The login names with uid `uid`, in file order.
    pub fn names_of(&self, uid: u32) -> Vec<&[u8]> {
        let i = self.uids.partition_point(|&(u, _)| u < uid);
        let mut found: Vec<u32> = self.uids[i..]
            .iter()
            .take_while(|&&(u, _)| u == uid)
            .map(|&(_, index)| index)
            .collect();
        found.sort_unstable();
        found
            .iter()
            .map(|&i| self.name(self.users[i as usize]))
            .collect()
    }

    /// The first login name with uid `uid`.
    pub fn name_of(&self, uid: u32) -> Option<&[u8]> {
        self.names_of(uid).first().copied()
    }

    fn has_uid(&self, uid: u32) -> bool {
        let i = self.uids.partition_point(|&(u, _)| u < uid);
        self.uids.get(i).is_some_and(|&(u, _)| u == uid)
    }

    /// The sorted uids (for the subuid file) or gids (subgid), with the accounts they index.
    fn ids(&self, which: Which) -> (&[(u32, u32)], &[Account]) {
        match which {
            Which::Subuid => (&self.uids, &self.users),
            Which::Subgid => (&self.gids, &self.groups),
        }
    }

    /// Every uid and gid, sorted (with repeats).
    fn all_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.uids.iter().chain(&self.gids).map(|p| p.0).collect();
        ids.sort_unstable();
        ids
    }
}

/// An open-addressing table from login name to index in [`Accounts::users`]: half the slots
/// empty, each slot 8 bytes holding the index and 32 bits of the name's hash, so a probe reads
/// a name (a cache miss, for a million accounts) only when the hash bits match. Smaller than a
/// `HashMap` of slices, which would also borrow from the struct that owns it.
#[derive(Debug)]
struct NameTable {
    /// (high 32 bits of the hash) << 32 | (index + 1); 0 for an empty slot.
    slots: Vec<u64>,
}

impl NameTable {
    fn new(accounts: &Accounts) -> NameTable {
        let size = (accounts.users.len() * 2).next_power_of_two().max(16);
        let mut table = NameTable {
            slots: vec![0; size],
        };
        for (index, &account) in (1..).zip(&accounts.users) {
            let name = accounts.name(account);
            let (slot, tag) = table.probe(accounts, name);
            // The first line of a name wins.
            if table.slots[slot] == 0 {
                table.slots[slot] = tag | index;
            }
        }
        table
    }

    /// The slot holding `name`, or the empty slot where it would go; and the name's tag.
    fn probe(&self, accounts: &Accounts, name: &[u8]) -> (usize, u64) {
        let mask = self.slots.len() - 1;
        let mut hasher = FastHasher::default();
        hasher.write(name);
        let hash = hasher.finish();
        let tag = hash & 0xffff_ffff_0000_0000;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots[slot] {
                0 => return (slot, tag),
                entry
                    if entry & 0xffff_ffff_0000_0000 == tag
                        && accounts.name(accounts.users[(entry as u32 - 1) as usize]) == name =>
                {
                    return (slot, tag);
                }
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    fn find(&self, accounts: &Accounts, name: &[u8]) -> Option<usize> {
        match self.slots[self.probe(accounts, name).0] {
            0 => None,
            entry => Some((entry as u32 - 1) as usize),
        }
    }
}

/// (name, id) of a `name:x:id:...` line.
fn id_line(line: &[u8]) -> Option<(&[u8], u32)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || matches!(name[0], b'+' | b'-') {
        return None;
    }
    let rest = &line[colon + 1..];
    let rest = &rest[rest.iter().position(|&b| b == b':')? + 1..];
    let end = rest.iter().position(|&b| b == b':').unwrap_or(rest.len());
    let id = decimal(&rest[..end])?;
    Some((name, u32::try_from(id).ok()?))
}

/// "123": digits only, no sign, no spaces; any number of leading zeros, as `str::parse` and
/// `subid`'s padded-uid check read them. At most 19 digits after those, so the value fits.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let digits = &text[text.iter().take_while(|&&b| b == b'0').count()..];
    if digits.len() > 19 {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

/// Plain decimal as a person and `sprintf("%lu")` write it: "0", or digits without a leading 0.
fn canonical_decimal(text: &[u8]) -> Option<u64> {
    if text.len() > 1 && text[0] == b'0' {
        return None;
    }
    decimal(text)
}

/// Text for messages: as is when it is printable UTF-8, else with escapes.
pub fn show_bytes(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => Cow::Borrowed(s),
        _ => Cow::Owned(bytes.escape_ascii().to_string()),
    }
}

/// An owner field for a message: [`show_bytes`], cut short past 64 characters (a line of 1024
/// bytes would otherwise fill the screen). `--json` has the whole field.
fn show_owner(owner: &[u8]) -> Cow<'_, str> {
    let shown = show_bytes(owner);
    match shown.char_indices().nth(60) {
        Some((cut, _)) if shown.chars().count() > 64 => Cow::Owned(format!("{}...", &shown[..cut])),
        _ => shown,
    }
}

/// Call `f(number, text, spliced)` for each line as newuidmap's `commonio_open` delivers it;
/// returns [`subid::Lines::unreadable_at`]. Without a NUL byte this is the same as
/// [`subid::split_lines`] but builds no vector, which matters for a file of a million lines.
pub fn for_each_line<'a>(
    text: &'a [u8],
    mut f: impl FnMut(usize, Cow<'a, [u8]>, bool),
) -> Option<usize> {
    if text.contains(&0) {
        let split = subid::split_lines(text);
        for line in split.lines {
            f(line.number, line.text, line.spliced);
        }
        return split.unreadable_at;
    }
    if text.is_empty() {
        return None;
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        f(i + 1, Cow::Borrowed(line), false);
    }
    None
}

/// The owner field of a line, borrowed from the file when the line is.
fn owner_of<'a>(line: &Cow<'a, [u8]>) -> Cow<'a, [u8]> {
    match line {
        Cow::Borrowed(b) => Cow::Borrowed(subid::owner_field(b)),
        Cow::Owned(v) => Cow::Owned(subid::owner_field(v).to_vec()),
    }
}

/// `owner:start:count` in plain decimal, count > 0, inside the id space, no NUL byte, shorter
/// than shadow's limit: a line with nothing to report, the usual case. Returns what
/// [`subid::parse_line`] returns for it, without its allocations (checked in debug builds).
fn plain_line(line: &[u8]) -> Option<(u64, u64)> {
    if line.len() >= 1024 || matches!(line.first(), None | Some(b'+' | b'-' | b'#' | b':')) {
        return None;
    }
    let first = line.iter().position(|&b| b == b':')?;
    let rest = &line[first + 1..];
    let second = rest.iter().position(|&b| b == b':')?;
    let start = canonical_decimal(&rest[..second])?;
    let count = canonical_decimal(&rest[second + 1..])?;
    // Each number may have 19 digits, so the sum may pass 2^64.
    if count == 0 || start.checked_add(count).is_none_or(|end| end > ID_LIMIT) {
        return None;
    }
    debug_assert!(
        matches!(subid::parse_line(line), Ok(e) if (u64::from(e.range.start), u64::from(e.range.count)) == (start, count)),
        "{}",
        line.escape_ascii()
    );
    Some((start, count))
}

/// What newuidmap reads from a line: owner, start, count. `None` when it ignores the line.
/// Count may be 0 and start+count may pass 4294967295: shadow reads both.
pub fn shadow_reads(line: &[u8]) -> Option<(&[u8], u64, u64)> {
    let (start, count) = shadow_view(line, &subid::parse_line(line))?;
    Some((subid::owner_field(line), start, count))
}

/// [`shadow_reads`] for a line already parsed.
fn shadow_view(line: &[u8], parsed: &Result<subid::Entry<'_>, LineError>) -> Option<(u64, u64)> {
    match parsed {
        Ok(e) => Some((e.range.start.into(), e.range.count.into())),
        Err(e) if !e.newuidmap_parses() => None,
        Err(LineError::FieldCount(_)) => {
            // shadow looks at the first three fields only.
            let prefix = &line[..third_colon(line)?];
            shadow_view(prefix, &subid::parse_line(prefix))
        }
        Err(LineError::TooHigh { start, count }) => Some((*start, *count)),
        Err(LineError::CountZero) => {
            let start = line.split(|&b| b == b':').nth(1).and_then(strtoul_value)?;
            Some((start, 0))
        }
        Err(_) => None,
    }
}

fn third_colon(line: &[u8]) -> Option<usize> {
    line.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b':')
        .nth(2)
        .map(|(i, _)| i)
}

/// The value newuidmap reads from one number field, through the shared parser.
fn strtoul_value(field: &[u8]) -> Option<u64> {
    let mut line = b"x:".to_vec();
    line.extend_from_slice(field);
    line.extend_from_slice(b":1");
    match subid::parse_line(&line) {
        Ok(e) => Some(e.range.start.into()),
        Err(LineError::TooHigh { start, .. }) => Some(start),
        _ => None,
    }
}

/// The number a person reads in a field: decimal digits, maybe between spaces or after '+'
/// ("0100000" is 100000 here, whatever newuidmap makes of it).
fn human_reads(field: &[u8]) -> Option<u64> {
    let trimmed = field.trim_ascii();
    let digits = trimmed.strip_prefix(b"+").unwrap_or(trimmed);
    decimal(digits)
}

/// How one account's identity is compared: two owner fields are the same owner when both
/// name (or number) the same uid, as newuidmap's `find_range` matches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OwnerKey {
    Uid(u32),
    /// An owner field that is no login name and no uid: compared as text (by its index in an
    /// interning table).
    Text(u32),
}

/// Resolves owner fields to [`OwnerKey`]s, interning the ones that are not accounts.
struct Owners<'a, 'r> {
    accounts: &'r Accounts,
    /// Where in passwd order the next owner is expected.
    cursor: usize,
    texts: FastMap<Cow<'a, [u8]>, u32>,
}

impl<'a, 'r> Owners<'a, 'r> {
    fn new(accounts: &'r Accounts) -> Self {
        Owners {
            accounts,
            cursor: 0,
            texts: FastMap::default(),
        }
    }

    /// The owner's key and whether it is an account.
    ///
    /// useradd and newusers append to passwd and to subuid/subgid together, so owners mostly
    /// come in passwd order: the passwd line after the last match is tried first, a sequential
    /// read. Only an owner found elsewhere costs a lookup in the name table (built then), which
    /// for a million accounts is a cache miss or three, several times slower than the rest of
    /// the line's checks together. (A name that passwd lists twice, which pwck(8) reports,
    /// may then resolve to its later line.)
    fn resolve(&mut self, owner: Cow<'a, [u8]>) -> (OwnerKey, bool) {
        let accounts = self.accounts;
        if let Some(&account) = accounts.users.get(self.cursor)
            && accounts.name(account) == &owner[..]
        {
            self.cursor += 1;
            return (OwnerKey::Uid(account.id), true);
        }
        if let Some(i) = accounts.index_of(&owner) {
            self.cursor = i + 1;
            return (OwnerKey::Uid(accounts.users[i].id), true);
        }
        if let Some(uid) = canonical_decimal(&owner).and_then(|n| u32::try_from(n).ok()) {
            return (OwnerKey::Uid(uid), self.accounts.has_uid(uid));
        }
        if let Some(&index) = self.texts.get(&owner[..]) {
            return (OwnerKey::Text(index), false);
        }
        let index = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
        self.texts.insert(owner, index);
        (OwnerKey::Text(index), false)
    }
}

/// A granted range, for the sweeps.
#[derive(Debug, Clone)]
struct Granted<'b> {
    start: u64,
    /// Exclusive; clamped to 2^32, past which nothing can be mapped or owned.
    end: u64,
    count: u64,
    key: OwnerKey,
    owner: Cow<'b, [u8]>,
    line: usize,
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
        mut granted, out, ..
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
    sweep_overlaps(which, &mut granted, out);
    sweep_accounts(which, &granted, accounts, out);
}

fn check_line<'a>(
    state: &mut FileCheck<'a, '_>,
    number: usize,
    text: Cow<'a, [u8]>,
    spliced: bool,
) {
    if text.is_empty() {
        // newuidmap skips empty lines (they are not entries), and they do no harm.
        return;
    }
    if !spliced && let Some((start, count)) = plain_line(&text) {
        grant(state, number, owner_of(&text), start, count);
        return;
    }

    let line = &text[..];
    let owner = owner_of(&text);
    let parsed = subid::parse_line(line);
    let read = shadow_view(line, &parsed);
    let which = state.which;
    let mut push = |kind: Kind, detail: String| {
        state.out.push(Finding {
            kind,
            file: which,
            line: number,
            owner: Some(owner.clone()).filter(|o| !o.is_empty()),
            range: read
                .map(|(start, count)| Span { start, count })
                .filter(|s| s.count > 0),
            other: None,
            account: None,
            detail: Some(detail.into()),
        })
    };

    let comment = line.starts_with(b"#");
    if spliced {
        let what = match read {
            Some(_) => "reads",
            None => "reads, and ignores,",
        };
        push(
            Kind::NulByte,
            format!(
                "{}; so it {what} this line as '{}'",
                LineError::NulByte,
                show_bytes(line)
            ),
        );
    } else if comment {
        let what = match read {
            Some(_) => format!(
                "newuidmap has no comments: it reads this as a range of an owner named '{}', \
                 who is no one",
                show_owner(&owner)
            ),
            None => "newuidmap has no comments: it ignores this line as malformed".into(),
        };
        push(Kind::Comment, what);
    } else {
        match &parsed {
            Ok(_) => {}
            Err(e @ LineError::FieldCount(_)) if e.newuidmap_parses() => {
                push(
                    Kind::ExtraFields,
                    format!("{e}; newuidmap reads the first three and ignores the rest"),
                );
                let prefix = &line[..third_colon(line).unwrap_or(line.len())];
                if let Err(e) = subid::parse_line(prefix) {
                    range_problem(&e, &mut push);
                }
            }
            Err(e) if e.newuidmap_parses() => range_problem(e, &mut push),
            // These two say already that newuidmap skips the line.
            Err(e @ (LineError::Nis | LineError::TooLong(_))) => push(
                Kind::Ignored,
                format!("{e}; useradd skips it too, and may hand its ids out again"),
            ),
            Err(e) => push(
                Kind::Ignored,
                format!(
                    "{e}; newuidmap ignores this line, and useradd, which skips it too, may \
                     hand its ids out again"
                ),
            ),
        }
    }

    let Some((start, count)) = read else {
        return;
    };
    if !spliced {
        check_numbers(line, &mut push);
    }
    if !comment {
        grant(state, number, owner, start, count);
    }
}

/// A line shadow reads but that grants nothing usable: count 0, or a range reaching id
/// 4294967295.
fn range_problem(e: &LineError, push: &mut impl FnMut(Kind, String)) {
    match e {
        LineError::TooHigh { .. } => push(
            Kind::TooHigh,
            format!(
                "{e}: the range reaches id {ID_LIMIT}, which no map may contain; newuidmap \
                 reads the range, but the kernel refuses a map that includes that id"
            ),
        ),
        LineError::CountZero => push(Kind::CountZero, format!("{e}: the line grants nothing")),
        _ => {}
    }
}

/// The checks on a range newuidmap reads: its owner, where it starts; then keep it for the
/// sweeps.
fn grant<'a>(
    state: &mut FileCheck<'a, '_>,
    number: usize,
    owner: Cow<'a, [u8]>,
    start: u64,
    count: u64,
) {
    if count == 0 {
        return;
    }
    let (key, exists) = state.owners.resolve(owner.clone());
    let range = Some(Span { start, count });
    let mut push = |kind: Kind, detail: Option<String>| {
        state.out.push(Finding {
            kind,
            file: state.which,
            line: number,
            owner: Some(owner.clone()).filter(|o| !o.is_empty()),
            range,
            other: None,
            account: None,
            detail: detail.map(String::into_boxed_str),
        })
    };
    if is_padded_uid(&owner) {
        push(
            Kind::PaddedOwner,
            Some(format!(
                "owner '{}' has leading zeros; newuidmap matches a uid only when it is written \
                 as '{}', so this range belongs to no one",
                show_bytes(&owner),
                decimal(&owner).unwrap_or(0)
            )),
        );
    } else if !exists {
        push(Kind::MissingOwner, None);
    }
    if start < LOW_LIMIT {
        push(Kind::LowRange, None);
    }
    state.granted.push(Granted {
        start: start.min(ID_LIMIT + 1),
        end: start.saturating_add(count).min(ID_LIMIT + 1),
        count,
        key,
        owner,
        line: number,
    });
}

/// Octal and other numbers that are not plain decimal, in the start and count fields of a
/// line newuidmap reads.
fn check_numbers(line: &[u8], push: &mut impl FnMut(Kind, String)) {
    let mut fields = line.split(|&b| b == b':').skip(1);
    for name in ["start", "count"] {
        let Some(field) = fields.next() else { return };
        if canonical_decimal(field).is_some() {
            continue;
        }
        let Some(value) = strtoul_value(field) else {
            continue;
        };
        let text = show_bytes(field);
        let trimmed = field.trim_ascii_start();
        let octal = trimmed.len() > 1
            && trimmed[0] == b'0'
            && trimmed[1..].iter().all(|b| (b'0'..=b'7').contains(b));
        match human_reads(field) {
            Some(human) if octal && human != value => push(
                Kind::Octal,
                format!(
                    "{name} '{text}' has a leading 0, so newuidmap reads it as octal: {value}, \
                     not {human}"
                ),
            ),
            _ => push(
                Kind::NotDecimal,
                format!("{name} '{text}' is not plain decimal; newuidmap reads it as {value}"),
            ),
        }
    }
}

/// "01000": digits with a leading zero. newuidmap compares owners to `sprintf("%lu", uid)`.
fn is_padded_uid(owner: &[u8]) -> bool {
    owner.len() > 1 && owner[0] == b'0' && decimal(owner).is_some()
}

/// Sort by start and sweep once, remembering the range that reaches furthest and the one that
/// reaches furthest among other owners. A range overlapping any earlier-starting range of
/// another owner is reported (naming the one that reaches furthest), so every overlapping pair
/// shows up at least once, in O(n log n) time and without comparing pairs.
fn sweep_overlaps<'a>(which: Which, granted: &mut [Granted<'a>], out: &mut Vec<Finding<'a>>) {
    granted.sort_unstable_by_key(|g| (g.start, g.line));
    // The furthest reaching so far, and the furthest reaching among owners other than its.
    let mut best: Option<usize> = None;
    let mut second: Option<usize> = None;
    for i in 0..granted.len() {
        let g = &granted[i];
        let other_owner = match best {
            Some(b) if granted[b].key != g.key => Some(b),
            _ => second,
        };
        let hit = match (other_owner, best) {
            (Some(o), _) if granted[o].end > g.start => Some((Kind::Overlap, o)),
            (_, Some(b)) if granted[b].key == g.key && granted[b].end > g.start => {
                Some((Kind::Duplicate, b))
            }
            _ => None,
        };
        if let Some((kind, o)) = hit {
            let o = &granted[o];
            out.push(Finding {
                kind,
                file: which,
                line: g.line,
                owner: Some(g.owner.clone()),
                range: Some(Span {
                    start: g.start,
                    count: g.count,
                }),
                other: Some(Box::new(Other {
                    owner: o.owner.clone(),
                    line: o.line,
                    range: Span {
                        start: o.start,
                        count: o.count,
                    },
                })),
                account: None,
                detail: None,
            });
        }
        match best {
            None => best = Some(i),
            Some(b) if granted[b].key == g.key => {
                if g.end > granted[b].end {
                    best = Some(i);
                }
            }
            Some(b) if g.end > granted[b].end => {
                second = Some(b);
                best = Some(i);
            }
            Some(_) => {
                if second.is_none_or(|s| g.end > granted[s].end) {
                    second = Some(i);
                }
            }
        }
    }
}

/// CVE-2024-56433: a subordinate range that contains the uid of an account (or the gid of a
/// group) lets its owner map that id in a user namespace and act as that account on its files
/// (an NFS home directory, for one).
fn sweep_accounts<'a>(
    which: Which,
    granted: &[Granted<'a>],
    accounts: &'a Accounts,
    out: &mut Vec<Finding<'a>>,
) {
    let (ids, list) = accounts.ids(which);
    // `granted` is sorted by start (sweep_overlaps), so the first id at or above each start
    // only moves forward: one pass over the ids, plus a search only where a range has some.
    let mut first = 0;
    for g in granted {
        first = gallop(ids, first, |&(id, _)| u64::from(id) < g.start);
        if ids.get(first).is_none_or(|&(id, _)| u64::from(id) >= g.end) {
            continue;
        }
        let end = first + ids[first..].partition_point(|&(id, _)| u64::from(id) < g.end);
        let (id, index) = ids[first];
        let name = accounts.name(list[index as usize]);
        out.push(Finding {
            kind: Kind::Account,
            file: which,
            line: g.line,
            owner: Some(g.owner.clone()),
            range: Some(Span {
                start: g.start,
                count: g.count,
            }),
            other: None,
            account: Some(Box::new(AccountHit {
                id,
                name,
                more: end - first - 1,
            })),
            detail: None,
        });
    }
}

/// The first index at or after `from` where `below` turns false (`below` holds on a prefix of
/// `list`), found by doubling steps then bisecting: O(log distance), reading memory near
/// `from` first, which is what a forward sweep needs.
fn gallop<T>(list: &[T], from: usize, below: impl Fn(&T) -> bool) -> usize {
    let mut step = 1;
    let mut low = from;
    while low < list.len() && below(&list[low]) {
        let high = (low + step).min(list.len());
        if high == list.len() || !below(&list[high]) {
            return low + 1 + list[low + 1..high].partition_point(&below);
        }
        low = high;
        step *= 2;
    }
    low
}

/// How many findings of each severity.
pub fn counts(findings: &[Finding<'_>]) -> [usize; 3] {
    let mut n = [0; 3];
    for f in findings {
        n[f.severity() as usize] += 1;
    }
    n
}

/// One finding as a line of text: `FILE:LINE: SEVERITY [KIND] MESSAGE`.
pub fn render_text(f: &Finding<'_>, path: &str, out: &mut impl io::Write) -> io::Result<()> {
    writeln!(
        out,
        "{path}:{}: {} [{}] {}",
        f.line,
        f.severity().as_str(),
        f.kind.as_str(),
        f.message()
    )
}

/// The paths the report names, for [`render_json`].
pub struct Paths<'a> {
    pub subuid: &'a str,
    pub subgid: &'a str,
    pub passwd: &'a str,
    pub group: &'a str,
}

impl Paths<'_> {
    fn of(&self, which: Which) -> &str {
        match which {
            Which::Subuid => self.subuid,
            Which::Subgid => self.subgid,
        }
    }
}

/// The whole report as one JSON object, one finding per line:
/// `{"files":{...},"findings":[...],"errors":N,"warnings":N,"notes":N}`. Written by hand (no
/// JSON crate is a dependency); strings are escaped by [`json_string`].
pub fn render_json(
    findings: &[Finding<'_>],
    paths: &Paths<'_>,
    out: &mut impl io::Write,
) -> io::Result<()> {
    write!(
        out,
        "{{\"files\":{{\"subuid\":{},\"subgid\":{},\"passwd\":{},\"group\":{}}},\"findings\":[",
        json_string(paths.subuid),
        json_string(paths.subgid),
        json_string(paths.passwd),
        json_string(paths.group)
    )?;
    for (i, f) in findings.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        json_finding(f, paths.of(f.file), out)?;
    }
    if !findings.is_empty() {
        out.write_all(b"\n")?;
    }
    let [errors, warnings, notes] = counts(findings);
    writeln!(
        out,
        "],\"errors\":{errors},\"warnings\":{warnings},\"notes\":{notes}}}"
    )
}

fn json_finding(f: &Finding<'_>, path: &str, out: &mut impl io::Write) -> io::Result<()> {
    let owner = match &f.owner {
        Some(o) => json_string(&json_text(o)),
        None => "null".into(),
    };
    write!(
        out,
        "{{\"severity\":\"{}\",\"kind\":\"{}\",\"file\":{},\"line\":{},\"owner\":{owner},{}",
        f.severity().as_str(),
        f.kind.as_str(),
        json_string(path),
        f.line,
        json_span(f.range)
    )?;
    if let Some(o) = &f.other {
        write!(
            out,
            ",\"other\":{{\"owner\":{},\"line\":{},{}}}",
            json_string(&json_text(&o.owner)),
            o.line,
            json_span(Some(o.range))
        )?;
    }
    if let Some(a) = &f.account {
        write!(
            out,
            ",\"account\":{{\"id\":{},\"name\":{},\"more\":{}}}",
            a.id,
            json_string(&json_text(a.name)),
            a.more
        )?;
    }
    write!(out, ",\"message\":{}}}", json_string(&f.message()))
}

fn json_span(span: Option<Span>) -> String {
    match span {
        Some(s) => format!(
            "\"start\":{},\"end\":{},\"count\":{}",
            s.start,
            s.last(),
            s.count
        ),
        None => "\"start\":null,\"end\":null,\"count\":null".into(),
    }
}

/// Bytes for a JSON string: as they are when UTF-8 (JSON escapes control characters itself),
/// else with `\xNN` escapes, as in the text output.
fn json_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes.escape_ascii().to_string()),
    }
}

/// A JSON string literal (RFC 8259): quotes and backslashes escaped, control characters as
/// `\n`, `\t`, ... or `\u00XX`. Everything else, non-ASCII included, is written as is (the
/// input is a `str`, so the output is valid UTF-8).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A range written in a file, as newuidmap or a person reads it (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated<'a> {
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    pub owner: Cow<'a, [u8]>,
    pub line: usize,
}

/// Every range ever written in a file: the one newuidmap reads from each line, and, where a
/// person reads the numbers differently (a leading 0, a trailing space, a CRLF ending, an extra
/// field), that one too. A line whose count cannot be read counts for its start id alone.
pub fn allocated(text: &[u8]) -> Vec<Allocated<'_>> {
    fn push<'a>(
        ranges: &mut Vec<Allocated<'a>>,
        owner: Cow<'a, [u8]>,
        span: (u64, u64),
        line: usize,
    ) {
        let (start, count) = span;
        if count > 0 && start <= ID_LIMIT {
            ranges.push(Allocated {
                start,
                end: start.saturating_add(count).min(ID_LIMIT + 1),
                owner,
                line,
            });
        }
    }
    let mut ranges = Vec::new();
    for_each_line(text, |number, text, _| {
        let owner = owner_of(&text);
        let line = &text[..];
        let shadow = shadow_reads(line).map(|(_, s, c)| (s, c));
        if let Some(span) = shadow {
            push(&mut ranges, owner.clone(), span, number);
        }
        // A person's reading, of the line up to a NUL byte.
        let physical = line.split(|&b| b == 0).next().unwrap_or(line);
        let mut fields = physical.split(|&b| b == b':').skip(1);
        let Some(start) = fields.next().and_then(human_reads) else {
            return;
        };
        let count = fields
            .next()
            .and_then(human_reads)
            .filter(|&c| c > 0)
            .unwrap_or(1);
        if shadow != Some((start, count)) {
            push(&mut ranges, owner, (start, count), number);
        }
    });
    ranges
}

/// Why there is no next range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoom {
    /// The end (exclusive) of the highest range ever allocated; 0 when there is none.
    pub highest: u64,
    pub count: u64,
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = ID_LIMIT - 1;
        match self.highest {
            0 => write!(
                f,
                "no room for {} ids between {NEXT_BASE} and {last}",
                self.count
            ),
            end => write!(
                f,
                "no room for {} more ids: the highest range ever allocated ends at {}, and the \
                 last id a map may use is {last}",
                self.count,
                end - 1
            ),
        }
    }
}

/// The next range to allocate: above every range ever allocated in either file (never a hole
/// left by a removed user), on the grid `100000 + k*65536` that useradd fills with its
/// defaults, and containing no account's uid and no group's gid.
pub fn next_range(
    subuid: &[u8],
    subgid: &[u8],
    accounts: &Accounts,
    count: u64,
) -> Result<Span, NoRoom> {
    let highest = allocated(subuid)
        .iter()
        .chain(&allocated(subgid))
        .map(|a| a.end)
        .max()
        .unwrap_or(0);
    let grid = |at: u64| match at.checked_sub(NEXT_BASE) {
        None | Some(0) => NEXT_BASE,
        Some(above) => NEXT_BASE + above.div_ceil(NEXT_STEP) * NEXT_STEP,
    };
    let ids = accounts.all_ids();
    let mut start = grid(highest);
    let mut i = ids.partition_point(|&id| u64::from(id) < start);
    loop {
        if start.saturating_add(count) > ID_LIMIT {
            return Err(NoRoom { highest, count });
        }
        match ids.get(i) {
            Some(&id) if u64::from(id) < start + count => {
                start = grid(u64::from(id) + 1);
                i = ids.partition_point(|&id| u64::from(id) < start);
            }
            _ => return Ok(Span { start, count }),
        }
    }
}

/// One range of a user, for `subid show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRange {
    pub line: usize,
    /// The owner field as written (the user's name, uid, or another name of the same uid).
    pub owner: String,
    pub range: subid::SubRange,
}

/// One broken line of a user, for `subid show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProblem {
    pub line: usize,
    pub what: String,
}

/// The ranges newuidmap grants a user, by `find_range`'s rules: lines whose owner is one of
/// `names` (the login name, and other login names with the same uid) or `uid` written in
/// plain decimal. Lines of the user that newuidmap or become-root refuses are returned as
/// problems, and so is a uid written with leading zeros (which newuidmap never matches).
pub fn user_ranges(
    text: &[u8],
    names: &[&[u8]],
    uid: Option<u32>,
) -> (Vec<UserRange>, Vec<UserProblem>) {
    let uid_text = uid.map(|u| u.to_string());
    let is_users = |owner: &[u8]| {
        !owner.is_empty()
            && (names.contains(&owner)
                || uid_text.as_deref().is_some_and(|u| u.as_bytes() == owner))
    };
    let mut ranges = Vec::new();
    let mut problems = Vec::new();
    let unreadable = for_each_line(text, |number, line, spliced| {
        let line = &line[..];
        let owner = subid::owner_field(line);
        let parsed = if spliced {
            Err(LineError::NulByte)
        } else {
            subid::parse_line(line)
        };
        match parsed {
            Ok(e) if is_users(e.owner) => ranges.push(UserRange {
                line: number,
                owner: show_bytes(e.owner).into_owned(),
                range: e.range,
            }),
            Err(e) if is_users(owner) => problems.push(UserProblem {
                line: number,
                what: if e.newuidmap_parses() {
                    format!("{e}; skipped (newuidmap reads it, become-root does not)")
                } else {
                    format!("{e}; newuidmap ignores this line")
                },
            }),
            _ if uid.is_some() && is_padded_uid(owner) && decimal(owner) == uid.map(u64::from) => {
                problems.push(UserProblem {
                    line: number,
                    what: format!(
                        "owner '{}' has leading zeros; newuidmap only matches '{}'",
                        show_bytes(owner),
                        uid.unwrap_or_default()
                    ),
                })
            }
            _ => {}
        }
    });
    if let Some(line) = unreadable {
        ranges.clear();
        problems.push(UserProblem {
            line,
            what: "NUL byte on the last line: newuidmap cannot read this file at all".into(),
        });
    }
    (ranges, problems)
}

/// The allocated ranges of both files, for looking up who an id belongs to (`subid scan`).
pub struct RangeIndex<'a> {
    /// Sorted by start.
    ranges: Vec<Allocated<'a>>,
    /// reach[i]: the largest end among ranges[..=i].
    reach: Vec<u64>,
}

impl<'a> RangeIndex<'a> {
    pub fn new(mut ranges: Vec<Allocated<'a>>) -> Self {
        ranges.sort_unstable_by_key(|r| (r.start, r.line));
        let mut furthest = 0;
        let reach = ranges
            .iter()
            .map(|r| {
                furthest = furthest.max(r.end);
                furthest
            })
            .collect();
        RangeIndex { ranges, reach }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Every range containing `id`, by file line. Walks back from the last range starting at
    /// or below `id` only while an earlier range still reaches `id`: one step for files
    /// without overlaps.
    pub fn containing(&self, id: u32) -> Vec<&Allocated<'a>> {
        let id = u64::from(id);
        let mut found = Vec::new();
        let mut i = self.ranges.partition_point(|r| r.start <= id);
        while i > 0 && self.reach[i - 1] > id {
            i -= 1;
            if self.ranges[i].end > id {
                found.push(&self.ranges[i]);
            }
        }
        found.sort_by_key(|r| r.line);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0::/root:/bin/sh\n\
        daemon:x:1:1::/:/usr/sbin/nologin\n\
        alice:x:1000:1000::/home/alice:/bin/sh\n\
        bob:x:1001:1001::/home/bob:/bin/sh\n\
        carol:x:1002:1002::/home/carol:/bin/sh\n\
        nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &[u8] = b"root:x:0:\nusers:x:100:\nalice:x:1000:\nbob:x:1001:\n\
        carol:x:1002:\nnogroup:x:65534:\n";
    const STOCK: &[u8] = b"alice:100000:65536\nbob:165536:65536\ncarol:231072:65536\n";

    fn kinds(subuid: &[u8]) -> Vec<(usize, &'static str)> {
        let accounts = Accounts::parse(PASSWD, GROUP);
        check(subuid, STOCK, &accounts)
            .iter()
            .map(|f| (f.line, f.kind.as_str()))
            .collect()
    }

    /// (what the row checks, subuid text, expected (line, kind) findings).
    #[test]
    fn check_table() {
        type Row = (&'static str, &'static [u8], Vec<(usize, &'static str)>);
        let rows: Vec<Row> = vec![
            ("stock file is clean", STOCK, vec![]),
            ("empty file is clean", b"", vec![]),
            (
                "empty lines are harmless",
                b"\nalice:100000:65536\n\n",
                vec![],
            ),
            (
                "overlap of two owners",
                b"alice:100000:65536\nbob:165535:10\n",
                vec![(2, "overlap")],
            ),
            (
                "adjacent ranges do not overlap",
                b"alice:100000:65536\nbob:165536:10\n",
                vec![],
            ),
            (
                "overlap found past a same-owner range that reaches further",
                b"alice:100000:1000000\nbob:200000:10\nalice:200005:10\n",
                vec![(2, "overlap"), (3, "overlap")],
            ),
            (
                "the same owner twice is a duplicate",
                b"alice:100000:65536\nalice:100000:65536\n",
                vec![(2, "duplicate")],
            ),
            (
                "name and uid are one owner",
                b"alice:100000:65536\n1000:100000:10\n",
                vec![(2, "duplicate")],
            ),
            (
                "contains account ids",
                b"alice:0:65536\n",
                vec![(1, "account"), (1, "low-range")],
            ),
            (
                "reaches the top",
                b"alice:4294967295:1\n",
                vec![(1, "too-high")],
            ),
            (
                // Regression: plain_line added start and count unchecked, so this panicked
                // in debug builds and, in release, wrapped to 0 and passed as a plain range.
                "start+count past 2^64 is too high, not a sum that wraps",
                b"alice:9999999999999999999:8446744073709551617\n",
                vec![(1, "too-high")],
            ),
            (
                "ends just below the top",
                b"alice:4294901759:65536\n",
                vec![],
            ),
            ("crlf", b"alice:100000:65536\r\n", vec![(1, "ignored")]),
            (
                "no final newline",
                b"alice:100000:65536",
                vec![(1, "no-final-newline")],
            ),
            ("octal start", b"alice:0400000:65536\n", vec![(1, "octal")]),
            (
                "01 is the same in octal",
                b"alice:100000:01\n",
                vec![(1, "not-decimal")],
            ),
            ("hex", b"alice:0x186a0:65536\n", vec![(1, "not-decimal")]),
            ("count 0", b"alice:100000:0\n", vec![(1, "count-zero")]),
            (
                "extra field",
                b"alice:100000:65536:x\n",
                vec![(1, "extra-fields")],
            ),
            (
                "extra field and count 0",
                b"alice:100000:0:x\n",
                vec![(1, "extra-fields"), (1, "count-zero")],
            ),
            ("comment", b"# alice:100000:65536\n", vec![(1, "comment")]),
            (
                "missing owner",
                b"dave:100000:65536\n4242:165536:10\n",
                vec![(1, "missing-owner"), (2, "missing-owner")],
            ),
            (
                "padded owner",
                b"01000:100000:65536\n",
                vec![(1, "padded-owner")],
            ),
            (
                // Regression: decimal() refused more than 19 digits, zeros included, so this
                // was a missing owner here while become-root called it a padded uid.
                "padded owner of more than 19 digits",
                b"00000000000000000001000:100000:65536\n",
                vec![(1, "padded-owner")],
            ),
            (
                "nul byte splices",
                b"alice:100000:65536\nbob:200000\0x\n:65536\n",
                vec![(2, "nul-byte")],
            ),
            (
                "nul byte on the last line",
                b"alice:100000:65536\nbob:1\0\n",
                vec![(2, "unreadable")],
            ),
        ];
        for (rule, text, expected) in rows {
            assert_eq!(kinds(text), expected, "{rule}");
        }
    }

    #[test]
    fn every_overlapping_range_is_reported_once() {
        use std::io::Write;
        // A chain: each range overlaps the next; each but the first is reported.
        let mut text = Vec::new();
        for i in 0..100u64 {
            let owner = if i % 2 == 0 { "alice" } else { "bob" };
            writeln!(text, "{owner}:{}:20", 100_000 + i * 10).unwrap();
        }
        let found = kinds(&text);
        assert_eq!(found.len(), 99);
        assert!(found.iter().all(|&(_, k)| k == "overlap"));
    }

    #[test]
    fn for_each_line_matches_split_lines() {
        for text in [
            &b""[..],
            b"\n",
            b"a",
            b"a\n",
            b"a\n\nb",
            b"a\n\nb\n\n",
            b"a\0b\nc\n",
        ] {
            let mut got = Vec::new();
            let unreadable = for_each_line(text, |n, l, s| got.push((n, l.into_owned(), s)));
            let split = subid::split_lines(text);
            let want: Vec<_> = split
                .lines
                .iter()
                .map(|l| (l.number, l.text.to_vec(), l.spliced))
                .collect();
            assert_eq!(got, want, "{}", text.escape_ascii());
            assert_eq!(unreadable, split.unreadable_at);
        }
    }

    #[test]
    fn next_range_table() {
        let accounts = Accounts::parse(PASSWD, GROUP);
        type Row<'a> = (&'a str, &'a [u8], &'a [u8], u64, Result<(u64, u64), ()>);
        let rows: Vec<Row<'_>> = vec![
            ("empty files", b"", b"", 65536, Ok((100000, 65536))),
            (
                "after the stock three",
                STOCK,
                STOCK,
                65536,
                Ok((296608, 65536)),
            ),
            (
                "a hole is never reused",
                b"alice:100000:65536\ncarol:231072:65536\n",
                b"",
                65536,
                Ok((296608, 65536)),
            ),
            (
                "the higher of the two files",
                b"alice:100000:65536\n",
                b"alice:500000:10\n",
                65536,
                Ok((558752, 65536)),
            ),
            (
                "a line newuidmap ignores still counts",
                b"alice:100000:65536\nbob:400000:65536\r\n",
                b"",
                65536,
                Ok((493216, 65536)),
            ),
            (
                "octal: the larger reading counts",
                b"alice:0400000:65536\n",
                b"",
                65536,
                Ok((493216, 65536)),
            ),
            ("count", STOCK, b"", 1000, Ok((296608, 1000))),
            (
                "no room at the top",
                b"alice:4294000000:900000\n",
                b"",
                65536,
                Err(()),
            ),
        ];
        for (rule, subuid, subgid, count, want) in rows {
            let got = next_range(subuid, subgid, &accounts, count)
                .map(|s| (s.start, s.count))
                .map_err(|_| ());
            assert_eq!(got, want, "{rule}");
        }
    }

    #[test]
    fn next_range_skips_accounts() {
        let passwd = b"ldap:x:300000:300000::/:/bin/sh\n";
        let accounts = Accounts::parse(passwd, b"");
        let span = next_range(STOCK, STOCK, &accounts, 65536).unwrap();
        assert_eq!(span.start, 362144);
    }

    #[test]
    fn user_ranges_by_name_uid_and_alias() {
        let text =
            b"alice:100000:65536\n1000:300000:10\ntoor:400000:5\nbob:1:1\n01000:5:5\nalice:1:0\n";
        let (ranges, problems) = user_ranges(text, &[b"alice", b"toor"], Some(1000));
        let got: Vec<_> = ranges.iter().map(|r| (r.line, r.range.start)).collect();
        assert_eq!(got, vec![(1, 100000), (2, 300000), (3, 400000)]);
        let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![5, 6]);
    }

    /// Regression (found by the subid_audit fuzz target): `subid show` said nothing of a uid
    /// padded to more than 19 digits, which become-root reports as a padded uid.
    #[test]
    fn user_ranges_report_a_long_padded_uid() {
        let text = b"0000000000000000000000000000001000:100000:65536\n";
        let (ranges, problems) = user_ranges(text, &[b"alice"], Some(1000));
        assert!(ranges.is_empty());
        let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![1], "{problems:?}");
    }

    #[test]
    fn range_index_finds_every_owner() {
        let text = b"alice:100000:65536\nbob:100500:10\ncarol:231072:65536\n";
        let index = RangeIndex::new(allocated(text));
        let owners =
            |id| -> Vec<&[u8]> { index.containing(id).iter().map(|a| &a.owner[..]).collect() };
        assert_eq!(owners(100505), vec![&b"alice"[..], b"bob"]);
        assert_eq!(owners(100000), vec![&b"alice"[..]]);
        assert_eq!(owners(165536), Vec::<&[u8]>::new());
        assert_eq!(owners(231072), vec![&b"carol"[..]]);
        assert_eq!(owners(99999), Vec::<&[u8]>::new());
    }

    #[test]
    fn gallop_agrees_with_partition_point() {
        let list: Vec<u32> = (0..200).map(|i| i * 3).collect();
        for from in [0, 1, 5, 50, 199, 200] {
            for x in [0, 1, 2, 3, 4, 30, 31, 300, 597, 598, 1000] {
                let want = list.partition_point(|&v| v < x).max(from);
                assert_eq!(gallop(&list, from, |&v| v < x), want, "from {from}, x {x}");
            }
        }
    }

    #[test]
    fn json_string_escapes() {
        assert_eq!(
            json_string("a\"b\\c\n\t\u{1}é"),
            "\"a\\\"b\\\\c\\n\\t\\u0001é\""
        );
    }
}
