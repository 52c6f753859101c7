//! Lookups for one user and one id: the ranges newuidmap grants a user (`subid show`, by the
//! rules of `find_range`) and the allocated ranges containing an id (`subid scan`).
#![forbid(unsafe_code)]

use super::accounts::Accounts;
use super::lines::{decimal, for_each_line};
use super::next::Allocated;
use super::owners::{is_padded_uid, second_grantee};
use super::render::show_bytes;
use crate::subid::{self, LineError};

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
/// problems, and so is a uid written with leading zeros (which newuidmap never matches,
/// unless it is a login name in `accounts`), and so is a line granted to another account too
/// (an owner that is one account's login name and another's uid; `check`'s ambiguous-owner).
pub fn user_ranges(
    text: &[u8],
    names: &[&[u8]],
    uid: Option<u32>,
    accounts: &Accounts,
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
            Ok(e) if is_users(e.owner) => {
                ranges.push(UserRange {
                    line: number,
                    owner: show_bytes(e.owner).into_owned(),
                    range: e.range,
                });
                if let Some(other) = also_granted(accounts, e.owner, uid) {
                    problems.push(UserProblem {
                        line: number,
                        what: format!(
                            "newuidmap grants this range to {other}: owner '{}' is one \
                             account's login name and another's uid",
                            show_bytes(e.owner)
                        ),
                    });
                }
            }
            Err(e) if is_users(owner) => problems.push(UserProblem {
                line: number,
                what: if e.newuidmap_parses() {
                    format!("{e}; skipped (newuidmap reads it, become-root does not)")
                } else {
                    format!("{e}; newuidmap ignores this line")
                },
            }),
            _ if uid.is_some()
                && is_padded_uid(owner)
                && decimal(owner) == uid.map(u64::from)
                && accounts.index_of(owner).is_none() =>
            {
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

/// The other account a line of `owner` is granted to, besides the user with `uid`, as
/// `name (uid N) too, by login name` or `... too, by uid`: see [`second_grantee`].
fn also_granted(accounts: &Accounts, owner: &[u8], uid: Option<u32>) -> Option<String> {
    let named = accounts.index_of(owner)?;
    let named_uid = accounts.users[named].id;
    let numbered = second_grantee(accounts, owner, named_uid)?;
    Some(match uid == Some(named_uid) {
        true => format!("{} too, by uid", accounts.describe(numbered)),
        false => format!("{} too, by login name", accounts.describe(named)),
    })
}

/// The allocated ranges of both files, for looking up who an id belongs to (`subid scan`).
pub struct RangeIndex<'a> {
    /// Sorted by start.
    ranges: Vec<Allocated<'a>>,
    /// `reach[i]`: the largest end among `ranges[..=i]`.
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
    use super::{Accounts, RangeIndex, for_each_line, user_ranges};
    use crate::subid;

    #[test]
    fn user_ranges_by_name_uid_and_alias() {
        let text =
            b"alice:100000:65536\n1000:300000:10\ntoor:400000:5\nbob:1:1\n01000:5:5\nalice:1:0\n";
        let (ranges, problems) =
            user_ranges(text, &[b"alice", b"toor"], Some(1000), &Accounts::default());
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
        let (ranges, problems) = user_ranges(text, &[b"alice"], Some(1000), &Accounts::default());
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

    /// Issue 8, item 5: `show` and `check` agree on whom each line is granted to. For every
    /// uid, the lines `user_ranges` lists are the lines `Owners::resolve` grants to it.
    #[test]
    fn show_and_check_grant_each_line_to_the_same_accounts() {
        use super::super::owners::{OwnerKey, Owners};

        let passwd = b"root:x:0:0::/:/bin/sh\n\
            alice:x:1000:1000::/:/bin/sh\n\
            toor:x:1000:1000::/:/bin/sh\n\
            4343:x:5000:5000::/:/bin/sh\n\
            dave:x:4343:4343::/:/bin/sh\n\
            1000:x:6000:6000::/:/bin/sh\n\
            0100:x:7000:7000::/:/bin/sh\n\
            erin:x:100:100::/:/bin/sh\n\
            7:x:7:7::/:/bin/sh\n";
        let accounts = Accounts::parse(passwd, b"");
        // Every way to name an owner: login names, aliases, uids, numeric names that are
        // another's uid or their own, a padded uid that is a login name, missing owners.
        let owners = [
            "alice", "1000", "toor", "4343", "dave", "5000", "6000", "0100", "100", "0", "root",
            "7", "nobody", "4242", "01000", "7000",
        ];
        let text: Vec<u8> = (0..)
            .zip(owners)
            .flat_map(|(i, o)| format!("{o}:{}:10\n", 100_000 + 100 * i).into_bytes())
            .collect();
        let mut uids: Vec<u32> = [0, 7, 100, 1000, 4343, 5000, 6000, 7000].into();
        uids.dedup();
        for uid in uids {
            let names = accounts.names_of(uid);
            let (ranges, _) = user_ranges(&text, &names, Some(uid), &accounts);
            let shown: Vec<usize> = ranges.iter().map(|r| r.line).collect();

            let mut resolver = Owners::new(&accounts);
            let uid_of = |key| match key {
                OwnerKey::Account(i) => Some(accounts.users[i as usize].id),
                OwnerKey::Uid(n) => Some(n),
                OwnerKey::Text(_) => None,
            };
            let mut granted = Vec::new();
            for_each_line(&text, |number, line, _| {
                let owner = subid::owner_field(&line).to_vec();
                let resolved = resolver.resolve(owner.into());
                let keys = [Some(resolved.key), resolved.also];
                if keys.into_iter().flatten().any(|k| uid_of(k) == Some(uid)) {
                    granted.push(number);
                }
            });
            assert_eq!(shown, granted, "uid {uid}");
        }
    }
}
