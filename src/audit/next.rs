//! The *allocated* view of a file (every range ever written in it, however it is read) and
//! `subid next`, which proposes a range above all of them, on useradd's grid, clear of every
//! account and group id.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt;

use super::accounts::Accounts;
use super::lines::{for_each_line, human_reads, owner_of, shadow_reads};
use super::{ID_LIMIT, NEXT_BASE, NEXT_STEP, Span};

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

#[cfg(test)]
mod tests {
    use super::super::tests::{GROUP, PASSWD, STOCK};
    use super::{Accounts, next_range};

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
}
