//! Whether the ranges granted to one account fit in one id map (too-many-ranges). become-root
//! --map=full, like podman, maps a user's own id alone (`0 ID 1`), then every range in file
//! order, the inside ids following on, and the kernel takes a map of at most 340 extents
//! written in one write of less than a page (`IdMap::full`). With ids of six digits and more
//! the write fills first: about 180 ranges of useradd's default 65536 ids are already too
//! long, so counting to 340 alone would miss most of the maps that fail.
//!
//! Laid out as `IdMap::full` lays them out, one extent a range, ranges that follow on from the
//! one before merged; not modelled are the pieces a range loses to an earlier overlapping one
//! of the same owner (a duplicate finding) or to the owner's own id (an account finding). A
//! test holds the layout to `IdMap::full` itself. The account's uid stands for its own id in
//! both files: in the gid map it is the primary gid, which useradd makes the same unless told
//! otherwise, and which changes the length by a few bytes at most.
//!
//! Linear: `owners` counts each account's ranges as lines are read, and only accounts with
//! [`MAY_NOT_FIT`] ranges or more are laid out, in one more pass. Owners that are no account
//! are not counted (see `Owners::count`).
#![forbid(unsafe_code)]

use super::accounts::{Accounts, FastMap};
use super::overlaps::Granted;
use super::owners::{OwnerKey, Owners};
use super::{Finding, ID_LIMIT, Kind, Span, Which};
use crate::idmap::{IdMap, MapError};

/// The longest line of a map, `4294967294 4294967294 4294967294\n`, and the longest first line,
/// `0 4294967294 1\n`.
const LONGEST_EXTENT: usize = 33;
const LONGEST_OWN: usize = 15;

/// The fewest ranges whose map may not fit: fewer, one extent each, make fewer than 340
/// extents and at most 15 + 33 * 123 = 4074 bytes.
pub(super) const MAY_NOT_FIT: u8 = FEWEST_THAT_MAY_NOT_FIT as u8;
const FEWEST_THAT_MAY_NOT_FIT: usize =
    (IdMap::MAX_WRITE + 1 - LONGEST_OWN).div_ceil(LONGEST_EXTENT);
// `owners` counts ranges in a byte.
const _: () = assert!(FEWEST_THAT_MAY_NOT_FIT < u8::MAX as usize);

/// One owner's map so far.
#[derive(Debug, Clone, Default)]
struct Layout {
    /// Extents after the owner's own.
    extents: usize,
    /// Of the whole map, the first line included.
    bytes: usize,
    /// The next inside id.
    inside: u64,
    /// The end (exclusive) and count of the last extent, for merging.
    last: Option<(u64, u64)>,
    ranges: u32,
    /// Where in `granted` the map stopped fitting.
    over_at: Option<usize>,
}

impl Layout {
    fn new(own: u32) -> Layout {
        Layout {
            bytes: digits(0) + digits(own.into()) + digits(1) + 3,
            inside: 1,
            ..Layout::default()
        }
    }

    /// Add `count` ids from `start`, the range at `at` in `granted`.
    fn add(&mut self, start: u64, count: u64, at: usize) {
        match &mut self.last {
            // Outside ids follow on from the last extent, and inside ids always do: one extent.
            Some((end, last_count)) if *end == start => {
                self.bytes = self.bytes - digits(*last_count) + digits(*last_count + count);
                *end += count;
                *last_count += count;
            }
            _ => {
                self.extents += 1;
                self.bytes += digits(self.inside) + digits(start) + digits(count) + 3;
                self.last = Some((start + count, count));
            }
        }
        self.inside += count;
        self.ranges += 1;
        if self.over_at.is_none() && self.error().is_some() {
            self.over_at = Some(at);
        }
    }

    /// Why the map does not fit, checked in the order `IdMap::from_ranges` checks.
    fn error(&self) -> Option<MapError> {
        let extents = self.extents + 1;
        if extents > IdMap::MAX_EXTENTS {
            Some(MapError::TooManyExtents(extents))
        } else if self.bytes > IdMap::MAX_WRITE {
            Some(MapError::TooLong(self.bytes))
        } else {
            None
        }
    }
}

/// Decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Lay out the ranges of every owner that may not fit, and report the owners whose map does
/// not, on the line of the first range past the limit. `granted` is in file order.
pub(super) fn check_maps<'a>(
    which: Which,
    granted: &[Granted<'a>],
    owners: &Owners<'a, '_>,
    accounts: &Accounts,
    out: &mut Vec<Finding<'a>>,
) {
    if !owners.crowded {
        return;
    }
    let mut layouts: FastMap<OwnerKey, Layout> = FastMap::default();
    let mut shared = owners.shared.iter().peekable();
    for (at, g) in granted.iter().enumerate() {
        let mut second = None;
        if let Some(&(_, key)) = shared.next_if(|&&(i, _)| i == at) {
            second = Some(key);
        }
        // A range reaching 4294967295 is in no map (a too-high finding).
        if g.start
            .checked_add(g.count)
            .is_none_or(|end| end > ID_LIMIT)
        {
            continue;
        }
        let mut lay_out = |key| {
            if let OwnerKey::Account(i) = key
                && owners.may_not_fit(key)
            {
                let own = accounts.users[i as usize].id;
                layouts
                    .entry(key)
                    .or_insert_with(|| Layout::new(own))
                    .add(g.start, g.count, at);
            }
        };
        lay_out(g.key);
        second.map(lay_out);
    }
    let mut over: Vec<(OwnerKey, Layout)> = layouts
        .into_iter()
        .filter(|(_, l)| l.over_at.is_some())
        .collect();
    // Hash order is no order: by line, and by owner within a line (a shared line may be the
    // first past the limit of both its accounts).
    over.sort_by_key(|(key, l)| (l.over_at, *key));
    for (key, layout) in over {
        let (Some(at), Some(error)) = (layout.over_at, layout.error()) else {
            continue;
        };
        let g = &granted[at];
        let OwnerKey::Account(i) = key else {
            continue;
        };
        let who = accounts.describe(i as usize);
        out.push(Finding {
            kind: Kind::TooManyRanges,
            file: which,
            line: g.line,
            owner: Some(g.owner.clone()).filter(|o| !o.is_empty()),
            range: Some(Span {
                start: g.start,
                count: g.count,
            }),
            other: None,
            account: None,
            detail: Some(
                format!(
                    "the {} ranges granted to {who} in this file do not fit in one map beside \
                     the owner's own id, from this line's on: {error}; become-root --map=full \
                     refuses it, and --map=auto maps the owner's own id alone",
                    layout.ranges
                )
                .into(),
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{PASSWD, kinds_with};
    use super::{ID_LIMIT, LONGEST_EXTENT, LONGEST_OWN, Layout, MAY_NOT_FIT};
    use crate::idmap::{IdMap, MapError};
    use crate::subid::SubRange;

    /// The layout is `IdMap::full`'s: for ranges that neither overlap nor contain the owner's
    /// id, in any order, adjacent or not, and of every length of number, both stop fitting at
    /// the same range and for the same reason.
    #[test]
    fn layout_agrees_with_idmap_full() {
        // A small linear congruential generator: the same cases on every run.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |below: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % below
        };
        for case in 0..60 {
            let stride = [2, 10, 1000, 65536, 2_000_000][case % 5];
            let n = 100 + next(300);
            let own = [1000, 0, 99_999, 4_294_967_294][case % 4];
            let base = if own > 100_000 { 0 } else { 100_000 };
            // Disjoint slots of `stride` ids; a range fills its slot (and so touches the next
            // one) half the time.
            let mut slots: Vec<u64> = (0..n).collect();
            for i in (1..slots.len()).rev() {
                slots.swap(i, next(i as u64 + 1) as usize);
            }
            if case % 3 == 0 {
                // In order, so that touching ranges follow one another and merge.
                slots.sort_unstable();
            }
            let ranges: Vec<SubRange> = slots
                .iter()
                .map(|&slot| {
                    let count = if next(2) == 0 {
                        stride
                    } else {
                        1 + next(stride)
                    };
                    let start = base + slot * stride;
                    SubRange {
                        start: u32::try_from(start).unwrap(),
                        count: u32::try_from(count).unwrap(),
                    }
                })
                .filter(|r| u64::from(r.start) + u64::from(r.count) <= ID_LIMIT)
                .filter(|r| !(r.start..r.start + r.count).contains(&own))
                .collect();

            let mut layout = Layout::new(own);
            for (at, r) in ranges.iter().enumerate() {
                layout.add(r.start.into(), r.count.into(), at);
            }
            let fails = |p: usize| match IdMap::full(own, &ranges[..p]) {
                Ok(_) => None,
                Err(e @ (MapError::TooManyExtents(_) | MapError::TooLong(_))) => Some(e),
                Err(e) => panic!("case {case}: {e}"),
            };
            // A map that fails fails with every range more: search the prefixes by halves.
            let first_failing = match fails(ranges.len()) {
                None => None,
                Some(_) => {
                    let (mut fits, mut fails_at) = (0, ranges.len());
                    while fails_at - fits > 1 {
                        let mid = (fits + fails_at) / 2;
                        match fails(mid) {
                            Some(_) => fails_at = mid,
                            None => fits = mid,
                        }
                    }
                    Some(fails_at)
                }
            };
            assert_eq!(
                layout.over_at.map(|at| at + 1),
                first_failing,
                "case {case}"
            );
            assert_eq!(layout.error(), fails(ranges.len()), "case {case}");
        }
    }

    #[test]
    fn may_not_fit_is_the_fewest_ranges_that_can_fail() {
        assert_eq!(LONGEST_OWN, "0 4294967294 1\n".len());
        assert_eq!(LONGEST_EXTENT, "4294967294 4294967294 4294967294\n".len());
        let longest = |extents: usize| LONGEST_OWN + extents * LONGEST_EXTENT;
        let fewest = MAY_NOT_FIT as usize;
        assert!(longest(fewest - 1) <= IdMap::MAX_WRITE);
        assert!(longest(fewest) > IdMap::MAX_WRITE);
        assert!(fewest < IdMap::MAX_EXTENTS);
    }

    /// `n` ranges of one id each, with gaps, for `owner`.
    fn spaced(owner: &str, base: u64, n: u64) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("{owner}:{}:1\n", base + 2 * i).into_bytes())
            .collect()
    }

    /// Issue 8, item 5: one owner's ranges must fit in one map beside its own id, as
    /// become-root --map=full writes it. Short ids, so that the 340-extent limit is reached
    /// before the 4095-byte one.
    #[test]
    fn too_many_ranges_counts_every_name_of_an_uid() {
        // toor is another login of alice's uid; the account named 1001 is not bob (uid 1001).
        let passwd = [
            PASSWD,
            b"toor:x:1000:1000::/:/bin/sh\n1001:x:5000:5000::/:/bin/sh\n".as_slice(),
        ]
        .concat();
        type Row = (&'static str, Vec<u8>, Vec<(usize, &'static str)>);
        let rows: Vec<Row> = vec![
            ("339 ranges fit", spaced("alice", 70000, 339), vec![]),
            (
                "the 340th does not",
                spaced("alice", 70000, 340),
                vec![(340, "too-many-ranges")],
            ),
            (
                "reported once, however many more",
                spaced("alice", 70000, 400),
                vec![(340, "too-many-ranges")],
            ),
            (
                "name, uid and another login of the uid count together",
                [
                    spaced("alice", 70000, 113),
                    spaced("1000", 80000, 113),
                    spaced("toor", 90000, 114),
                ]
                .concat(),
                vec![(340, "too-many-ranges")],
            ),
            (
                "a line granted to two accounts counts for both",
                [spaced("bob", 70000, 339), spaced("1001", 80000, 1)].concat(),
                vec![(340, "ambiguous-owner"), (340, "too-many-ranges")],
            ),
            (
                "an owner that is no account asks for no map (a uid)",
                spaced("4242", 70000, 340),
                (1..=340).map(|line| (line, "missing-owner")).collect(),
            ),
            (
                "an owner that is no account asks for no map (a name)",
                spaced("eve", 70000, 340),
                (1..=340).map(|line| (line, "missing-owner")).collect(),
            ),
            (
                "a range reaching 4294967295 is in no map",
                [
                    spaced("alice", 70000, 339),
                    b"alice:4294967290:10\n".to_vec(),
                ]
                .concat(),
                vec![(340, "too-high")],
            ),
            (
                "different owners do not",
                [spaced("alice", 70000, 300), spaced("bob", 80000, 300)].concat(),
                vec![],
            ),
            (
                "ranges that follow one another merge into one extent",
                (0..400)
                    .flat_map(|i| format!("alice:{}:1\n", 70000 + i).into_bytes())
                    .collect(),
                vec![],
            ),
        ];
        for (rule, subuid, expected) in rows {
            assert_eq!(kinds_with(&passwd, &subuid), expected, "{rule}");
        }
    }
}
