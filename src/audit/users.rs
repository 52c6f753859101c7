//! Lookups for one user and one id: the ranges newuidmap grants a user (`subid show`, by the
//! rules of `find_range`) and the allocated ranges containing an id (`subid scan`).
#![forbid(unsafe_code)]

use crate::subid::{self, LineError};

use super::lines::{decimal, for_each_line};
use super::next::Allocated;
use super::owners::is_padded_uid;
use super::render::show_bytes;

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
    use super::super::next::allocated;
    use super::*;

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
}
