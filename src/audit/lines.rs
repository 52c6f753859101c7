//! How newuidmap reads one line, and the findings about one line's text: newuidmap's reading
//! of numbers (octal, hex, 64 bits), lines it ignores (CRLF, a trailing space, NIS), NUL
//! bytes, extra fields, comments, count 0 and ranges reaching 4294967295. A line it reads is
//! handed on to `owners::grant`.
#![forbid(unsafe_code)]

use std::borrow::Cow;

use super::owners::grant;
use super::render::{show_bytes, show_owner};
use super::{FileCheck, Finding, ID_LIMIT, Kind, Span};
use crate::subid::{self, LineError};

/// "123": digits only, no sign, no spaces; any number of leading zeros, as `str::parse` and
/// `subid`'s padded-uid check read them. At most 19 digits after those, so the value fits.
pub(super) fn decimal(text: &[u8]) -> Option<u64> {
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
pub(super) fn canonical_decimal(text: &[u8]) -> Option<u64> {
    if text.len() > 1 && text[0] == b'0' {
        return None;
    }
    decimal(text)
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
pub(super) fn owner_of<'a>(line: &Cow<'a, [u8]>) -> Cow<'a, [u8]> {
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
pub(super) fn human_reads(field: &[u8]) -> Option<u64> {
    let trimmed = field.trim_ascii();
    let digits = trimmed.strip_prefix(b"+").unwrap_or(trimmed);
    decimal(digits)
}

pub(super) fn check_line<'a>(
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
        spliced_line(line, read.is_some(), &mut push);
    } else if comment {
        comment_line(&owner, read.is_some(), &mut push);
    } else if let Err(e) = &parsed {
        malformed_line(line, e, &mut push);
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

/// A line with a NUL byte, which newuidmap reads only up to it.
fn spliced_line(line: &[u8], read: bool, push: &mut impl FnMut(Kind, String)) {
    let what = match read {
        true => "reads",
        false => "reads, and ignores,",
    };
    push(
        Kind::NulByte,
        format!(
            "{}; so it {what} this line as '{}'",
            LineError::NulByte,
            show_bytes(line)
        ),
    );
}

/// A line that starts with '#', which newuidmap does not take for a comment.
fn comment_line(owner: &[u8], read: bool, push: &mut impl FnMut(Kind, String)) {
    let what = match read {
        true => format!(
            "newuidmap has no comments: it reads this as a range of an owner named '{}', \
             who is no one",
            show_owner(owner)
        ),
        false => "newuidmap has no comments: it ignores this line as malformed".into(),
    };
    push(Kind::Comment, what);
}

/// A line subid's parser refuses (`e`): what newuidmap and useradd make of it.
fn malformed_line(line: &[u8], e: &LineError, push: &mut impl FnMut(Kind, String)) {
    match e {
        LineError::FieldCount(_) if e.newuidmap_parses() => {
            push(
                Kind::ExtraFields,
                format!("{e}; newuidmap reads the first three and ignores the rest"),
            );
            let prefix = &line[..third_colon(line).unwrap_or(line.len())];
            if let Err(e) = subid::parse_line(prefix) {
                range_problem(&e, push);
            }
        }
        e if e.newuidmap_parses() => range_problem(e, push),
        // These two say already that newuidmap skips the line.
        LineError::Nis | LineError::TooLong(_) => push(
            Kind::Ignored,
            format!("{e}; useradd skips it too, and may hand its ids out again"),
        ),
        e => push(
            Kind::Ignored,
            format!(
                "{e}; newuidmap ignores this line, and useradd, which skips it too, may hand \
                 its ids out again"
            ),
        ),
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

#[cfg(test)]
mod tests {
    use super::super::tests::{Row, check_rows};
    use super::for_each_line;
    use crate::subid;

    #[test]
    fn line_table() {
        let rows: Vec<Row> = vec![
            (
                "reaches the top",
                b"alice:4294967295:1\n",
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
        check_rows(rows);
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
}
