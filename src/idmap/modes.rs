//! The maps of each `--map` mode and of explicit `--map-users`/`--map-groups` entries, from
//! the caller's own id and the ranges granted to it. Pure: no file I/O, no syscalls.
//!
//! Every mode is the same two steps. Some extents are fixed (the caller at 0 for `full`, the
//! caller at itself for `keep-id` and `subids`, the entries as given for explicit maps); then
//! the granted ids nothing fixed took, each id once and in file order, are laid onto the inside
//! ids from 0 upwards that the fixed extents left free (`full`, `keep-id`, `auto` entries), or
//! onto themselves (`subids`). Two rules of newuidmap and the kernel shape the extents:
//! newuidmap lets a user map their own id only as an extent of exactly one id (newuidmap.c,
//! `verify_range`), so the caller's id always stands alone; and a namespace's map is checked
//! extent by extent against its parent's, each within one parent extent (`map_id_range_down`),
//! so a nested root's explicit entries are cut where the parent's extents end.

use std::fmt;

use super::{ID_LIMIT, IdMap, IdRange, MapError, Side};
use crate::subid::SubRange;

/// A half-open span of ids, widened so that its end cannot overflow.
type Span = (u64, u64);

/// One `--map-users` or `--map-groups` entry, `INNER:OUTER:COUNT` as util-linux 2.39 writes
/// it: `count` ids from `outer` in the parent namespace appear from `inner` inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub inner: u32,
    pub outer: u32,
    pub count: u32,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.inner, self.outer, self.count)
    }
}

impl Entry {
    fn span(&self, side: Side) -> Span {
        let start = match side {
            Side::Inside => self.inner,
            Side::Outside => self.outer,
        };
        (u64::from(start), u64::from(start) + u64::from(self.count))
    }
}

/// Everything one of `--map-users` and `--map-groups` asks, all its values together: exact
/// entries, and whether `auto` fills what they leave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explicit {
    pub entries: Vec<Entry>,
    pub auto: bool,
}

impl Explicit {
    /// Parse the values of one option, in order: each is `auto` or `INNER:OUTER:COUNT` in
    /// decimal, with a count of at least 1 and neither side reaching id 4294967295. `auto`
    /// may be given more than once; it means the same each time.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Explicit, MapError> {
        let mut explicit = Explicit::default();
        for value in values {
            let value = value.as_ref();
            if value == "auto" {
                explicit.auto = true;
                continue;
            }
            explicit.entries.push(parse_entry(value)?);
        }
        Ok(explicit)
    }
}

fn parse_entry(text: &str) -> Result<Entry, MapError> {
    let bad = |why: &str| MapError::BadEntry {
        text: text.to_string(),
        why: why.to_string(),
    };
    let fields: Vec<&str> = text.split(':').collect();
    if fields.len() != 3 {
        return Err(bad(if text.contains(',') {
            "expected INNER:OUTER:COUNT; util-linux 2.38's OUTER,INNER,COUNT (other order, \
             commas) is not accepted"
        } else {
            "expected INNER:OUTER:COUNT or auto"
        }));
    }
    let mut numbers = [0u32; 3];
    for (n, field) in numbers.iter_mut().zip(&fields) {
        if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("INNER, OUTER and COUNT are decimal numbers"));
        }
        *n = field
            .parse()
            .map_err(|_| bad("a number is above 4294967295"))?;
    }
    let [inner, outer, count] = numbers;
    if count == 0 {
        return Err(bad("COUNT is 0, which maps nothing"));
    }
    for (side, start) in [("INNER", inner), ("OUTER", outer)] {
        if u64::from(start) + u64::from(count) > ID_LIMIT {
            return Err(bad(&format!(
                "{side}+COUNT runs past id 4294967294 (the kernel never maps 4294967295)"
            )));
        }
    }
    Ok(Entry {
        inner,
        outer,
        count,
    })
}

/// What a caller may map: its own id, and the ids granted to it.
#[derive(Debug, Clone, Copy)]
pub struct Grants<'a> {
    /// The caller's own id, which newuidmap maps only as an extent of one id; `None` when the
    /// caller writes the map itself with privilege (real root, a nested root).
    pub own: Option<u32>,
    /// The ranges granted (subordinate ranges in file order, or a privileged caller's whole
    /// map), each valid: a count of at least 1, ending at 4294967295 at most.
    pub ranges: &'a [SubRange],
    /// Cut every extent where a granted range ends: a nested root's grants are its parent
    /// map's extents, and the kernel takes each new extent within one of them.
    pub cut_at_ends: bool,
}

impl Grants<'_> {
    fn spans(&self) -> impl Iterator<Item = Span> + '_ {
        self.ranges.iter().map(|r| {
            let start = u64::from(r.start);
            (start, start + u64::from(r.count))
        })
    }

    /// Every id the caller may map: its own and the granted, merged.
    fn allowed(&self) -> Vec<Span> {
        let mut set = Vec::new();
        for span in self.own.map(own_span).into_iter().chain(self.spans()) {
            insert_interval(&mut set, span);
        }
        set
    }
}

fn own_span(own: u32) -> Span {
    (u64::from(own), u64::from(own) + 1)
}

impl IdMap {
    /// `--map=full`: the caller at 0, then the subordinate ranges in file order at 1, 2, ...
    /// with no gaps inside (ranges of 1000 and 5000 ids give `0 uid 1`, `1 200000 1000`,
    /// `1001 300000 5000`).
    ///
    /// The kernel rejects overlap on either side, so each range contributes only the ids no
    /// earlier range (and not the caller's own id) already took, possibly in several pieces.
    /// Pieces contiguous on both sides merge into one extent, except into the caller's
    /// `0 caller 1` (see the module documentation). An empty `subordinate` gives the single
    /// map. Fails on a bad subordinate range, on more than 340 extents, and on a map too long
    /// for one write (about 300 extents of 6-digit ids already are).
    pub fn full(caller: u32, subordinate: &[SubRange]) -> Result<IdMap, MapError> {
        IdMap::own_then_granted(IdRange::new(0, caller, 1)?, subordinate)
    }

    /// `--map=keep-id`: the caller at its own id inside (`uid uid 1`), and the subordinate
    /// ranges in file order on the other inside ids from 0 upwards, around the caller's, as
    /// podman's `--userns=keep-id` lays them out (uid 1000 with `100000:65536` gives
    /// `0 100000 1000`, `1000 1000 1`, `1001 101000 64536`). With fewer subordinate ids than
    /// the caller's uid, the ids between the last of them and the caller's stay unmapped.
    /// Fails as [`IdMap::full`] does; the split around the caller costs one extent more.
    pub fn keep_id(caller: u32, subordinate: &[SubRange]) -> Result<IdMap, MapError> {
        IdMap::own_then_granted(IdRange::new(caller, caller, 1)?, subordinate)
    }

    /// `--map=subids`: every subordinate id and the caller at themselves (`id id count`): a
    /// namespace that sees host ids, for nesting and for tools that must see them. Extents
    /// follow each other by id, maximal, the caller's alone. Fails as [`IdMap::full`] does.
    pub fn subids(caller: u32, subordinate: &[SubRange]) -> Result<IdMap, MapError> {
        let own = IdRange::new(caller, caller, 1)?;
        let mut taken = vec![own.span(Side::Outside)];
        let mut pieces = unused_pieces(&checked_spans(subordinate)?, &mut taken);
        pieces.sort_unstable();
        let mut extents: Vec<(u64, u64, u64)> = Vec::new();
        for (start, end) in pieces {
            match extents.last_mut() {
                Some(last) if last.0 + last.2 == start => last.2 += end - start,
                _ => extents.push((start, start, end - start)),
            }
        }
        IdMap::assemble(vec![own], extents)
    }

    /// Exact maps (`--map-users`, `--map-groups`): the entries as given, then with `auto`
    /// every id of `grants` no entry took (the caller's own first, then the granted ranges
    /// in file order) on the inside ids from 0 upwards no entry took. So `auto` alone is
    /// [`IdMap::full`], and `UID:UID:1` with `auto` is [`IdMap::keep_id`].
    ///
    /// Checked before anything is written: entries may overlap neither inside nor outside,
    /// and every outside id must be the caller's own or granted. An entry over the caller's
    /// own id is cut around it, and with [`Grants::cut_at_ends`] where a grant ends; the
    /// caller's own id never shares an extent.
    pub fn explicit(grants: &Grants, explicit: &Explicit) -> Result<IdMap, MapError> {
        let entries = &explicit.entries;
        if entries.is_empty() && !explicit.auto {
            return Err(MapError::Empty);
        }
        for side in [Side::Inside, Side::Outside] {
            let mut sorted = entries.clone();
            sorted.sort_by_key(|e| e.span(side));
            if let Some(pair) = sorted
                .windows(2)
                .find(|p| p[0].span(side).1 > p[1].span(side).0)
            {
                return Err(MapError::EntriesOverlap {
                    side,
                    first: pair[0],
                    second: pair[1],
                });
            }
        }
        let allowed = grants.allowed();
        for entry in entries {
            if let Some((start, end)) = first_gap(entry.span(Side::Outside), &allowed) {
                return Err(MapError::NotGranted {
                    entry: *entry,
                    first: narrow(start)?,
                    last: narrow(end - 1)?,
                });
            }
        }

        // Where an entry must be cut: around the caller's id, and where grants end.
        let mut cuts: Vec<u64> = Vec::new();
        if let Some(own) = grants.own {
            cuts.extend([u64::from(own), u64::from(own) + 1]);
        }
        if grants.cut_at_ends {
            cuts.extend(grants.spans().flat_map(|(s, e)| [s, e]));
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut fixed = Vec::new();
        for entry in entries {
            let (start, end) = entry.span(Side::Outside);
            let mut from = start;
            for &cut in cuts.iter().filter(|&&c| c > start && c < end) {
                fixed.push(cut_entry(entry, from, cut)?);
                from = cut;
            }
            fixed.push(cut_entry(entry, from, end)?);
        }
        if !explicit.auto {
            return IdMap::assemble(fixed, Vec::new());
        }

        let mut taken: Vec<Span> = Vec::new();
        for entry in entries {
            insert_interval(&mut taken, entry.span(Side::Outside));
        }
        let mut used: Vec<Span> = Vec::new();
        for entry in entries {
            insert_interval(&mut used, entry.span(Side::Inside));
        }
        // The caller's own id, if no entry took it, at the first free inside id, alone.
        if let Some(own) = grants.own
            && first_gap(own_span(own), &taken).is_some()
        {
            let inside = lay_out(&[own_span(own)], &used, false)?;
            let (at, _, _) = inside[0];
            fixed.push(IdRange::new(narrow(at)?, own, 1)?);
            insert_interval(&mut taken, own_span(own));
            insert_interval(&mut used, (at, at + 1));
        }
        let pieces = unused_pieces(&grants.spans().collect::<Vec<_>>(), &mut taken);
        IdMap::assemble(fixed, lay_out(&pieces, &used, !grants.cut_at_ends)?)
    }

    /// `own`, then the subordinate ids it did not take, laid out from inside id 0 around it.
    fn own_then_granted(own: IdRange, subordinate: &[SubRange]) -> Result<IdMap, MapError> {
        let mut taken = vec![own.span(Side::Outside)];
        let pieces = unused_pieces(&checked_spans(subordinate)?, &mut taken);
        let extents = lay_out(&pieces, &[own.span(Side::Inside)], true)?;
        IdMap::assemble(vec![own], extents)
    }

    /// The map of `fixed` extents and `(inside, outside, count)` ones, by inside id, checked.
    fn assemble(fixed: Vec<IdRange>, extents: Vec<(u64, u64, u64)>) -> Result<IdMap, MapError> {
        let mut ranges = fixed;
        for (inside, outside, count) in extents {
            ranges.push(IdRange::new(
                narrow(inside)?,
                narrow(outside)?,
                narrow(count)?,
            )?);
        }
        ranges.sort_by_key(|r| r.inside());
        IdMap::from_ranges(ranges)
    }
}

/// The subordinate ranges as spans, or the first that is empty or reaches id 4294967295.
fn checked_spans(subordinate: &[SubRange]) -> Result<Vec<Span>, MapError> {
    subordinate
        .iter()
        .map(|sub| {
            let (start, end) = (
                u64::from(sub.start),
                u64::from(sub.start) + u64::from(sub.count),
            );
            if sub.count == 0 || end > ID_LIMIT {
                return Err(MapError::BadSubRange {
                    start: sub.start,
                    count: sub.count,
                });
            }
            Ok((start, end))
        })
        .collect()
}

/// An id known to be below 2^32 (the spans here never end past 4294967295).
fn narrow(n: u64) -> Result<u32, MapError> {
    u32::try_from(n).map_err(|_| MapError::TooManyIds(n))
}

/// The part `[from, to)` (outside ids) of `entry`, at the inside ids that go with it.
fn cut_entry(entry: &Entry, from: u64, to: u64) -> Result<IdRange, MapError> {
    let inside = u64::from(entry.inner) + (from - u64::from(entry.outer));
    IdRange::new(narrow(inside)?, narrow(from)?, narrow(to - from)?)
}

/// The first run of ids of `span` outside `set` (sorted, disjoint), if there is one.
fn first_gap(span: Span, set: &[Span]) -> Option<Span> {
    let (mut cursor, end) = span;
    for &(s, e) in set {
        if e <= cursor {
            continue;
        }
        if s > cursor {
            return Some((cursor, s.min(end)));
        }
        cursor = e;
        if cursor >= end {
            return None;
        }
    }
    (cursor < end).then_some((cursor, end))
}

/// The ids of `sources` (outside spans), in order and each once, that `taken` (sorted,
/// disjoint) does not hold, as pieces in the order met; `taken` grows by every source.
fn unused_pieces(sources: &[Span], taken: &mut Vec<Span>) -> Vec<Span> {
    let mut pieces = Vec::new();
    for &(start, end) in sources {
        let mut cursor = start;
        for &(t_start, t_end) in taken.iter() {
            if t_end <= cursor {
                continue;
            }
            if t_start >= end {
                break;
            }
            if t_start > cursor {
                pieces.push((cursor, t_start));
            }
            cursor = cursor.max(t_end);
        }
        if cursor < end {
            pieces.push((cursor, end));
        }
        insert_interval(taken, (start, end));
    }
    pieces
}

/// Lay `pieces` (outside spans) in order onto the inside ids from 0 upwards that `used`
/// (sorted, disjoint) leaves free, as `(inside, outside, count)` extents: a piece is cut where
/// a used span interrupts it, and with `merge` extents contiguous on both sides become one.
/// Fails when the free inside ids below 4294967295 run out.
fn lay_out(pieces: &[Span], used: &[Span], merge: bool) -> Result<Vec<(u64, u64, u64)>, MapError> {
    let mut extents: Vec<(u64, u64, u64)> = Vec::new();
    let mut inside: u64 = 0;
    let mut holes = used.iter().copied().peekable();
    for &(mut start, end) in pieces {
        while start < end {
            while let Some(&(h_start, h_end)) = holes.peek() {
                if h_start > inside {
                    break;
                }
                inside = inside.max(h_end);
                holes.next();
            }
            let room = holes
                .peek()
                .map_or(ID_LIMIT, |h| h.0)
                .saturating_sub(inside);
            if room == 0 {
                let wanted = pieces.iter().map(|(s, e)| e - s).sum::<u64>()
                    + used.iter().map(|(s, e)| e - s).sum::<u64>();
                return Err(MapError::TooManyIds(wanted));
            }
            let count = (end - start).min(room);
            match extents.last_mut() {
                Some(last) if merge && last.0 + last.2 == inside && last.1 + last.2 == start => {
                    last.2 += count
                }
                _ => extents.push((inside, start, count)),
            }
            inside += count;
            start += count;
        }
    }
    Ok(extents)
}

/// Add `new` to sorted disjoint `set`, merging what it overlaps or touches.
pub(super) fn insert_interval(set: &mut Vec<Span>, new: Span) {
    let (mut start, mut end) = new;
    set.retain(|&(s, e)| {
        if e < start || s > end {
            true
        } else {
            start = start.min(s);
            end = end.max(e);
            false
        }
    });
    let at = set.partition_point(|&(s, _)| s < start);
    set.insert(at, (start, end));
}
