//! Parsing of /etc/subuid and /etc/subgid text, and of `getsubids` output: which subordinate
//! id ranges belong to the caller, and which of the caller's lines are broken (reported as
//! `path:line: what`, never repaired). Pure: no file I/O, no syscalls.
//!
//! Acceptance mirrors what newuidmap/newgidmap of shadow 4.13 (Debian 12) accept, because they
//! are the programs that finally judge every range we ask for: `commonio_open` (lib/commonio.c)
//! assembles lines, `subordinate_parse` (lib/subordinateio.c) splits the fields, `getulong`
//! (lib/getulong.c) reads the numbers, and `find_range` matches owners by name or by uid. Where
//! become-root is stricter than shadow (extra fields, count 0, ranges reaching id 4294967295,
//! NUL bytes), the line is reported, so become-root never asks newuidmap for what it refuses.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// The highest id the kernel can map is 4294967294: (uid_t)-1 is the invalid id, so an extent
/// must satisfy `start + count <= 4294967295` (kernel/user_namespace.c, `map_write`).
const ID_LIMIT: u64 = u32::MAX as u64;

/// `subordinate_parse` copies each line into a 1024-byte buffer and rejects any line of
/// 1024 bytes or more.
const MAX_LINE: usize = 1024;

/// A range of outside ids, `[start, start + count)`. Ranges returned by this module always
/// have `count > 0` and `start + count <= 4294967295`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    pub start: u32,
    pub count: u32,
}

/// A broken line that belongs to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {what}", path.display())]
pub struct SubidError {
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    pub what: String,
}

/// What [`caller_ranges`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The caller's valid ranges, in file order (overlaps are left to `idmap`).
    pub ranges: Vec<SubRange>,
    /// The line (1-based) of each of `ranges`, for messages that name the grant (`path:line`).
    pub lines: Vec<usize>,
    /// The caller's broken lines, in file order.
    pub errors: Vec<SubidError>,
}

/// One well-formed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The owner field: a login name or a uid, not necessarily UTF-8.
    pub owner: &'a [u8],
    pub range: SubRange,
}

/// Which numeric field a number error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Owner,
    Start,
    Count,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Owner => "owner",
            Field::Start => "start",
            Field::Count => "count",
        })
    }
}

/// Why a number field is not a number to `strtoul(s, &end, 0)` with nothing after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumError {
    /// No digits at all (after optional leading whitespace and sign).
    NoDigits,
    /// Digits followed by spaces only.
    TrailingSpace,
    /// Digits followed by tabs only.
    TrailingTab,
    /// Digits followed by other or mixed whitespace.
    TrailingWhitespace,
    /// A leading 0 made it octal and an 8 or 9 followed.
    NotOctal,
    /// Digits followed by something else.
    Junk,
    /// More than 18446744073709551615 (strtoul sets ERANGE).
    OutOfRange,
}

/// Why a line is not a usable `owner:start:count` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line has a NUL byte. shadow's `commonio_open` then splices the next line onto
    /// this one (its `strrchr(buf, '\n')` stops at the NUL), so what it parses is neither line.
    NulByte,
    /// The line starts with '+' or '-': `commonio_open` takes it for a NIS entry and never
    /// parses it.
    Nis,
    /// 1024 bytes or more: `subordinate_parse` rejects it.
    TooLong(usize),
    /// Not exactly three ':'-separated fields. shadow rejects fewer than three but ignores
    /// everything after the third field; become-root rejects both.
    FieldCount(usize),
    /// The line ends with '\r' (a CRLF file): strtoul stops at the '\r', so shadow rejects it.
    CarriageReturn,
    /// An empty owner, start or count.
    EmptyField(Field),
    /// start or count is not a number as shadow reads it.
    BadNumber {
        field: Field,
        text: Vec<u8>,
        why: NumError,
    },
    /// count is 0 (shadow parses it but it grants nothing).
    CountZero,
    /// start+count > 4294967295: the range reaches id 4294967295, which the kernel never
    /// maps, or beyond 32 bits (shadow reads the numbers as 64-bit `unsigned long`).
    TooHigh { start: u64, count: u64 },
}

impl LineError {
    /// Whether shadow 4.13's `subordinate_parse` still accepts the line (become-root is
    /// stricter). For `subid check`: such a line is wrong, but newuidmap reads something
    /// from it.
    pub fn newuidmap_parses(&self) -> bool {
        match self {
            // Checks run in shadow's order, so a FieldCount above 3 means the first three
            // fields were fine.
            LineError::FieldCount(n) => *n > 3,
            LineError::CountZero | LineError::TooHigh { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NulByte => {
                f.write_str("NUL byte in line (newuidmap reads the next line as part of this one)")
            }
            LineError::Nis => f.write_str(
                "line starts with '+' or '-', which newuidmap takes for a NIS entry and skips",
            ),
            LineError::TooLong(n) => write!(
                f,
                "line is {n} bytes long; newuidmap ignores lines of {MAX_LINE} bytes or more"
            ),
            LineError::FieldCount(1) => f.write_str("1 field, expected 3"),
            LineError::FieldCount(n) => write!(f, "{n} fields, expected 3"),
            LineError::CarriageReturn => {
                f.write_str("carriage return at end of line (CRLF line ending)")
            }
            LineError::EmptyField(field) => write!(f, "{field} is empty"),
            LineError::BadNumber { field, text, why } => {
                let text = text.escape_ascii();
                match why {
                    NumError::TrailingSpace => write!(f, "trailing space after {field}"),
                    NumError::TrailingTab => write!(f, "trailing tab after {field}"),
                    NumError::TrailingWhitespace => write!(f, "trailing whitespace after {field}"),
                    NumError::NotOctal => write!(
                        f,
                        "{field} is not a number: '{text}' (a leading 0 makes it octal)"
                    ),
                    NumError::OutOfRange => write!(f, "{field} is out of range: '{text}'"),
                    NumError::NoDigits | NumError::Junk => {
                        write!(f, "{field} is not a number: '{text}'")
                    }
                }
            }
            LineError::CountZero => f.write_str("count is 0"),
            LineError::TooHigh { start, count } => {
                write!(f, "start+count exceeds {ID_LIMIT} ({start}+{count})")
            }
        }
    }
}

impl std::error::Error for LineError {}

/// One line as shadow's `commonio_open` hands it to the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based number of the (first) physical line.
    pub number: usize,
    /// The bytes shadow parses, without the '\n'.
    pub text: Cow<'a, [u8]>,
    /// A NUL byte made shadow splice following line(s) into this one; `text` is the
    /// spliced result.
    pub spliced: bool,
}

/// The lines of a file as shadow reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines<'a> {
    pub lines: Vec<Line<'a>>,
    /// A '\n'-terminated line with a NUL byte is the last line: `commonio_open`'s fgets then
    /// hits end of file while looking for the rest of the line and fails, so newuidmap reads
    /// nothing at all from the file. Holds that line's number.
    pub unreadable_at: Option<usize>,
}

/// Split `text` into lines the way shadow 4.13's `commonio_open` does: on '\n', a missing '\n'
/// at the end of the file is fine, and a NUL byte ends the C string so the next physical line
/// is appended at the NUL (see [`Lines::unreadable_at`] for when that fails).
pub fn split_lines(text: &[u8]) -> Lines<'_> {
    // (bytes, terminated by '\n'); fgets returns nothing for the empty tail after a final '\n'.
    let mut raw: Vec<(&[u8], bool)> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                raw.push((&rest[..i], true));
                rest = &rest[i + 1..];
            }
            None => {
                raw.push((rest, false));
                rest = &[];
            }
        }
    }

    let c_string =
        |bytes: &[u8]| -> usize { bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len()) };
    let mut lines = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let (bytes, _) = raw[i];
        if !bytes.contains(&0) {
            lines.push(Line {
                number: i + 1,
                text: Cow::Borrowed(bytes),
                spliced: false,
            });
            i += 1;
            continue;
        }
        let mut joined = bytes[..c_string(bytes)].to_vec();
        let mut j = i;
        // fgets keeps reading at strlen(buf) until strrchr finds a '\n' before a NUL, or
        // until end of file.
        loop {
            let (current, terminated) = raw[j];
            if !terminated || (j > i && !current.contains(&0)) {
                break;
            }
            j += 1;
            let Some(&(next, _)) = raw.get(j) else {
                return Lines {
                    lines,
                    unreadable_at: Some(i + 1),
                };
            };
            joined.extend_from_slice(&next[..c_string(next)]);
        }
        lines.push(Line {
            number: i + 1,
            text: Cow::Owned(joined),
            spliced: true,
        });
        i = j + 1;
    }
    Lines {
        lines,
        unreadable_at: None,
    }
}

/// The owner field of a line: everything before the first ':'.
pub fn owner_field(line: &[u8]) -> &[u8] {
    line.split(|&b| b == b':').next().unwrap_or(line)
}

/// Parse one line (without its '\n') as `owner:start:count`.
///
/// Checks run in shadow 4.13's order (`commonio_open`, then `subordinate_parse`), then
/// become-root's own: exactly three fields, count > 0, start+count <= 4294967295.
pub fn parse_line(line: &[u8]) -> Result<Entry<'_>, LineError> {
    if line.contains(&0) {
        return Err(LineError::NulByte);
    }
    if matches!(line.first(), Some(b'+' | b'-')) {
        return Err(LineError::Nis);
    }
    if line.len() >= MAX_LINE {
        return Err(LineError::TooLong(line.len()));
    }
    let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
    if fields.len() < 3 {
        return Err(LineError::FieldCount(fields.len()));
    }
    // With more than three fields the '\r' sits in a field shadow never looks at.
    if fields.len() == 3 && line.ends_with(b"\r") {
        return Err(LineError::CarriageReturn);
    }
    for (text, field) in fields
        .iter()
        .zip([Field::Owner, Field::Start, Field::Count])
    {
        if text.is_empty() {
            return Err(LineError::EmptyField(field));
        }
    }
    let number = |field: Field, text: &[u8]| {
        strtoul0(text).map_err(|why| LineError::BadNumber {
            field,
            text: text.to_vec(),
            why,
        })
    };
    let start = number(Field::Start, fields[1])?;
    let count = number(Field::Count, fields[2])?;
    // Everything below is accepted by shadow's parser.
    if fields.len() > 3 {
        return Err(LineError::FieldCount(fields.len()));
    }
    let range = checked_range(start, count)?;
    Ok(Entry {
        owner: fields[0],
        range,
    })
}

/// become-root's rule on top of shadow's: a non-empty range that the kernel can map.
fn checked_range(start: u64, count: u64) -> Result<SubRange, LineError> {
    if count == 0 {
        return Err(LineError::CountZero);
    }
    let too_high = LineError::TooHigh { start, count };
    match start.checked_add(count) {
        Some(end) if end <= ID_LIMIT => Ok(SubRange {
            start: u32::try_from(start).map_err(|_| too_high.clone())?,
            count: u32::try_from(count).map_err(|_| too_high)?,
        }),
        _ => Err(too_high),
    }
}

/// Mirror of shadow 4.13's `getulong` (lib/getulong.c): `strtoul(s, &end, 0)` on a 64-bit
/// `unsigned long`, failing on an empty string, on anything left after the number, and on
/// ERANGE. So, as glibc 2.36's strtoul in Debian 12 does: leading C-locale whitespace
/// (" \t\n\v\f\r") is skipped; one '+' or '-' may follow ('-' negates modulo 2^64, so "-1" is
/// 18446744073709551615); "0x"/"0X" then a hex digit means hex, another leading '0' means
/// octal ("0100" is 64, "08" is an error), else decimal; no "0b" binary (that needs glibc 2.38
/// in C2x mode). Checked against Debian 12's getsubids and newuidmap.
fn strtoul0(text: &[u8]) -> Result<u64, NumError> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut i = text.iter().take_while(|&&b| is_space(b)).count();
    let negative = match text.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let at = |k: usize| text.get(k).copied();
    let radix: u32 = if at(i) == Some(b'0')
        && matches!(at(i + 1), Some(b'x' | b'X'))
        && at(i + 2).is_some_and(|b| b.is_ascii_hexdigit())
    {
        i += 2;
        16
    } else if at(i) == Some(b'0') {
        8
    } else {
        10
    };

    let mut value: u64 = 0;
    let mut overflow = false;
    let first_digit = i;
    while let Some(digit) = at(i).and_then(|b| (b as char).to_digit(radix)) {
        match value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == first_digit {
        // strtoul sets end back to the start of the string, which is not its end.
        return Err(NumError::NoDigits);
    }
    let rest = &text[i..];
    if !rest.is_empty() {
        return Err(if rest.iter().all(|&b| b == b' ') {
            NumError::TrailingSpace
        } else if rest.iter().all(|&b| b == b'\t') {
            NumError::TrailingTab
        } else if rest.iter().all(|&b| is_space(b)) {
            NumError::TrailingWhitespace
        } else if radix == 8 && matches!(rest[0], b'8' | b'9') {
            NumError::NotOctal
        } else {
            NumError::Junk
        });
    }
    if overflow {
        return Err(NumError::OutOfRange);
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// The caller's ranges in a subuid or subgid file.
///
/// A line is the caller's when its owner field is `name` exactly, or `uid` written the way
/// shadow 4.13's `find_range` compares it: `sprintf("%lu")`, so "1000" matches uid 1000 but
/// "01000", "+1000" and "1000abc" do not, and no name ever stands for uid 0. In /etc/subgid
/// too a numeric owner is the user's uid, not a gid: pass the uid for both files. (shadow also
/// accepts a line naming another login that has the same uid; that needs the passwd database
/// and is not done here.)
///
/// Other users' lines are ignored, broken or not. A broken line of the caller's is an error;
/// so is an owner that spells the caller's uid with leading zeros, which newuidmap never
/// matches. If a NUL byte makes the whole file unreadable to newuidmap, no range is returned.
pub fn caller_ranges(text: &[u8], path: &Path, name: &str, uid: u32) -> Parsed {
    let uid_text = uid.to_string();
    let is_callers = |owner: &[u8]| {
        !owner.is_empty() && (owner == name.as_bytes() || owner == uid_text.as_bytes())
    };
    let error = |line: usize, what: String| SubidError {
        path: path.to_path_buf(),
        line,
        what,
    };

    let split = split_lines(text);
    if let Some(line) = split.unreadable_at {
        return Parsed {
            ranges: Vec::new(),
            lines: Vec::new(),
            errors: vec![error(
                line,
                "NUL byte with no line after it: newuidmap cannot read this file at all"
                    .to_string(),
            )],
        };
    }

    let mut parsed = Parsed::default();
    for line in &split.lines {
        let owner = owner_field(&line.text);
        let result = if line.spliced {
            Err(LineError::NulByte)
        } else {
            parse_line(&line.text)
        };
        match result {
            Ok(entry) if is_callers(entry.owner) => {
                parsed.ranges.push(entry.range);
                parsed.lines.push(line.number);
            }
            Err(e) if is_callers(owner) => parsed.errors.push(error(line.number, e.to_string())),
            _ if is_padded_uid(owner, uid) => parsed.errors.push(error(
                line.number,
                format!(
                    "owner '{}' has leading zeros; newuidmap only matches uid {uid} written as '{uid}'",
                    owner.escape_ascii()
                ),
            )),
            _ => {}
        }
    }
    parsed
}

/// "0001000" for uid 1000: digits only, a leading zero, same value.
fn is_padded_uid(owner: &[u8], uid: u32) -> bool {
    owner.len() > 1
        && owner[0] == b'0'
        && owner.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(owner)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            == Some(u64::from(uid))
}

/// Parse what `getsubids NAME` (or `getsubids -g NAME`) of shadow 4.13 prints on stdout: one
/// line per range, `printf("%d: %s %lu %lu\n", i, owner, start, count)` with i counting from 0
/// and owner the argument as given (src/getsubids.c). No ranges means no output (and exit
/// status 1, "Error fetching ranges" on stderr, which is the caller's business).
///
/// Ranges get the same checks as file lines: count 0 or start+count > 4294967295 is an error.
pub fn parse_getsubids(text: &str, name: &str) -> Result<Vec<SubRange>, String> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let decimal = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    body.split('\n')
        .enumerate()
        .map(|(i, line)| {
            let prefix = format!("{i}: {name} ");
            let numbers = line
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once(' '))
                .and_then(|(start, count)| Some((decimal(start)?, decimal(count)?)));
            let Some((start, count)) = numbers else {
                return Err(format!(
                    "line {}: expected '{prefix}START COUNT', found '{}'",
                    i + 1,
                    line.escape_debug()
                ));
            };
            checked_range(start, count).map_err(|e| format!("line {}: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests;
