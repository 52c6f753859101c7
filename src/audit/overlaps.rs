//! The sort-and-sweep over the ranges newuidmap grants in one file: ranges sharing ids
//! (overlap, duplicate) and ranges containing the id of an account or group (account,
//! CVE-2024-56433). One sort by start, then forward passes: nothing compares pairs.
#![forbid(unsafe_code)]

use std::borrow::Cow;

use super::accounts::Accounts;
use super::owners::OwnerKey;
use super::{AccountHit, Finding, Kind, Other, Span, Which};

/// A granted range, for the sweeps.
#[derive(Debug, Clone)]
pub(super) struct Granted<'b> {
    pub(super) start: u64,
    /// Exclusive; clamped to 2^32, past which nothing can be mapped or owned.
    pub(super) end: u64,
    pub(super) count: u64,
    pub(super) key: OwnerKey,
    pub(super) owner: Cow<'b, [u8]>,
    pub(super) line: usize,
}

/// Sort by start and sweep once, remembering the range that reaches furthest and the one that
/// reaches furthest among other owners. A range overlapping any earlier-starting range of
/// another owner is reported (naming the one that reaches furthest), so every overlapping pair
/// shows up at least once, in O(n log n) time and without comparing pairs.
pub(super) fn sweep_overlaps<'a>(
    which: Which,
    granted: &mut [Granted<'a>],
    out: &mut Vec<Finding<'a>>,
) {
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
pub(super) fn sweep_accounts<'a>(
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

#[cfg(test)]
mod tests {
    use super::super::tests::{Row, check_rows, kinds};
    use super::gallop;

    #[test]
    fn overlap_table() {
        let rows: Vec<Row> = vec![
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
        ];
        check_rows(rows);
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
    fn gallop_agrees_with_partition_point() {
        let list: Vec<u32> = (0..200).map(|i| i * 3).collect();
        for from in [0, 1, 5, 50, 199, 200] {
            for x in [0, 1, 2, 3, 4, 30, 31, 300, 597, 598, 1000] {
                let want = list.partition_point(|&v| v < x).max(from);
                assert_eq!(gallop(&list, from, |&v| v < x), want, "from {from}, x {x}");
            }
        }
    }
}
