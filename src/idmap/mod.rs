//! Id ranges and id maps: the `inside outside count` extents of /proc/PID/uid_map and gid_map,
//! built from the caller's id and subordinate ranges (`full`, `keep_id`, `subids`, `explicit`
//! entries, in `modes`), for one id (`single`), for real root (`host_identity`) or from a
//! parent map (`pass_through`), checked against the kernel's rules before anything is written.
//! Pure: no file I/O, no syscalls.
//!
//! Kernel rules enforced here (kernel/user_namespace.c, `map_write`): every extent maps at
//! least one id; `first + count` must not wrap 32 bits on either side, so id 4294967295
//! ((uid_t)-1) is never mapped; extents must not overlap on the inside or on the outside; at
//! most 340 extents (Linux 4.15 and later); and the whole map is written in one write(2) of
//! fewer than PAGE_SIZE bytes, which newuidmap also does.
#![forbid(unsafe_code)]

use std::fmt;

mod modes;

pub use modes::{Entry, Explicit, Grants};

/// `start + count` may be at most this: the last mappable id is 4294967294.
const ID_LIMIT: u64 = u32::MAX as u64;

/// map_write refuses a write of PAGE_SIZE bytes or more; 4096 is the smallest page size Linux
/// runs with, so a map that fits here fits everywhere.
const MAX_WRITE: usize = 4095;

/// Which side of an extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Ids as seen in the new namespace.
    Inside,
    /// Ids as seen in the parent namespace.
    Outside,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Inside => "inside",
            Side::Outside => "outside",
        })
    }
}

/// Why a range or map cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("extent '{inside} {outside} 0' maps no ids (count is 0)")]
    ZeroCount { inside: u32, outside: u32 },
    #[error(
        "extent '{inside} {outside} {count}' runs past id 4294967294 on the {side} side \
         (the kernel never maps 4294967295)"
    )]
    PastEnd {
        side: Side,
        inside: u32,
        outside: u32,
        count: u32,
    },
    #[error("subordinate range {start}+{count} is empty or runs past id 4294967294")]
    BadSubRange { start: u32, count: u32 },
    #[error("extents '{first}' and '{second}' overlap on the {side} side")]
    Overlap {
        side: Side,
        first: IdRange,
        second: IdRange,
    },
    #[error("the map needs {0} extents; the kernel accepts at most 340 (Linux 4.15 and later)")]
    TooManyExtents(usize),
    #[error("the map is {0} bytes long; the kernel takes it in one write of at most 4095 bytes")]
    TooLong(usize),
    #[error("the map would hold {0} ids; at most 4294967295 fit")]
    TooManyIds(u64),
    #[error("line {line} of the map: expected 'inside outside count', found '{text}'")]
    BadProcLine { line: usize, text: String },
    #[error("the map is empty (not written yet?)")]
    Empty,
    #[error("'{text}': {why}")]
    BadEntry { text: String, why: String },
    #[error("entries {first} and {second} overlap on the {side} side")]
    EntriesOverlap {
        side: Side,
        first: Entry,
        second: Entry,
    },
    #[error(
        "entry {entry} maps outside ids {first}-{last}, which are neither the caller's own nor \
         granted to it"
    )]
    NotGranted { entry: Entry, first: u32, last: u32 },
}

/// One extent: `count` ids starting at `inside` in the namespace are `outside` ids outside.
/// Half-open on both sides; fields are private so a valid range stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    inside: u32,
    outside: u32,
    count: u32,
}

impl IdRange {
    /// An extent the kernel accepts: `count > 0` and neither `inside + count` nor
    /// `outside + count` above 4294967295.
    pub fn new(inside: u32, outside: u32, count: u32) -> Result<IdRange, MapError> {
        if count == 0 {
            return Err(MapError::ZeroCount { inside, outside });
        }
        for (side, start) in [(Side::Inside, inside), (Side::Outside, outside)] {
            if u64::from(start) + u64::from(count) > ID_LIMIT {
                return Err(MapError::PastEnd {
                    side,
                    inside,
                    outside,
                    count,
                });
            }
        }
        Ok(IdRange {
            inside,
            outside,
            count,
        })
    }

    pub fn inside(&self) -> u32 {
        self.inside
    }

    pub fn outside(&self) -> u32 {
        self.outside
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Where `side` starts and ends (exclusive), widened so the end cannot overflow.
    fn span(&self, side: Side) -> (u64, u64) {
        let start = match side {
            Side::Inside => self.inside,
            Side::Outside => self.outside,
        };
        (u64::from(start), u64::from(start) + u64::from(self.count))
    }

    /// The id on the other side, if `id` is in this extent's `from` side.
    fn translate(&self, from: Side, id: u32) -> Option<u32> {
        let (start, end) = self.span(from);
        let id = u64::from(id);
        if id < start || id >= end {
            return None;
        }
        let to = match from {
            Side::Inside => self.outside,
            Side::Outside => self.inside,
        };
        // In range by construction: to + (id - start) < to + count <= 4294967295.
        u32::try_from(u64::from(to) + (id - start)).ok()
    }
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

/// A whole uid_map or gid_map: non-overlapping extents, at most [`IdMap::MAX_EXTENTS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    ranges: Vec<IdRange>,
}

impl IdMap {
    /// UID_GID_MAP_MAX_EXTENTS since Linux 4.15 (5 before).
    pub const MAX_EXTENTS: usize = 340;
    /// The longest map, in bytes of [`IdMap::proc_format`], written in one write on any page
    /// size.
    pub const MAX_WRITE: usize = MAX_WRITE;

    /// `0 caller 1`: the caller is root inside and nothing else is mapped, like `unshare -r`.
    ///
    /// # Panics
    ///
    /// If `caller` is 4294967295, which is (uid_t)-1 and never a process's id.
    pub fn single(caller: u32) -> IdMap {
        let range = IdRange::new(0, caller, 1).expect("(uid_t)-1 is not a process's id");
        IdMap {
            ranges: vec![range],
        }
    }

    /// `0 0 4294967295`: the initial namespace's own map, for real root.
    pub fn host_identity() -> IdMap {
        IdMap {
            ranges: vec![IdRange {
                inside: 0,
                outside: 0,
                count: u32::MAX,
            }],
        }
    }

    /// A map of these extents, in this order, checked: at least one extent, at most
    /// [`IdMap::MAX_EXTENTS`], no overlap on either side, and short enough to be written in
    /// one write on any page size.
    pub fn from_ranges(ranges: Vec<IdRange>) -> Result<IdMap, MapError> {
        let map = IdMap::checked(ranges)?;
        let bytes = map.proc_format().len();
        if bytes > MAX_WRITE {
            return Err(MapError::TooLong(bytes));
        }
        Ok(map)
    }

    /// [`IdMap::from_ranges`] without the length limit, which depends on the page size: a map
    /// the kernel already holds was short enough for this machine.
    fn checked(ranges: Vec<IdRange>) -> Result<IdMap, MapError> {
        if ranges.is_empty() {
            return Err(MapError::Empty);
        }
        if ranges.len() > Self::MAX_EXTENTS {
            return Err(MapError::TooManyExtents(ranges.len()));
        }
        for side in [Side::Inside, Side::Outside] {
            let mut sorted = ranges.clone();
            sorted.sort_by_key(|r| r.span(side));
            for pair in sorted.windows(2) {
                if pair[0].span(side).1 > pair[1].span(side).0 {
                    return Err(MapError::Overlap {
                        side,
                        first: pair[0],
                        second: pair[1],
                    });
                }
            }
        }
        Ok(IdMap { ranges })
    }

    /// Parse /proc/PID/uid_map or gid_map as the kernel prints it: one extent a line, three
    /// decimal numbers right-aligned in columns of 10 (`"%10u %10u %10u\n"`).
    pub fn parse_proc(text: &str) -> Result<IdMap, MapError> {
        let mut ranges = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let bad = || MapError::BadProcLine {
                line: i + 1,
                text: line.to_string(),
            };
            let numbers: Vec<u32> = line
                .split_ascii_whitespace()
                .map(|n| {
                    if n.bytes().all(|b| b.is_ascii_digit()) {
                        n.parse().ok()
                    } else {
                        None
                    }
                })
                .collect::<Option<_>>()
                .ok_or_else(bad)?;
            let [inside, outside, count] = numbers[..] else {
                return Err(bad());
            };
            ranges.push(IdRange::new(inside, outside, count)?);
        }
        IdMap::checked(ranges)
    }

    /// The identity over this map's inside ids (`inside inside count` for each extent,
    /// adjacent extents merged): what a process that is root in this namespace writes for a
    /// nested one, so every id it has stays the same id below it.
    pub fn pass_through(&self) -> IdMap {
        // One extent per parent extent, never merged: map_write checks each new extent's
        // outside range with map_id_range_down, which requires it to lie within a single
        // extent of the parent map, so `0 0 1` + `1 1 65536` must not become `0 0 65537`.
        let mut ranges: Vec<IdRange> = self
            .ranges
            .iter()
            .map(|r| IdRange {
                inside: r.inside,
                outside: r.inside,
                count: r.count,
            })
            .collect();
        ranges.sort_unstable_by_key(|r| r.inside);
        IdMap { ranges }
    }

    /// The text to write to /proc/PID/uid_map in one write: `inside outside count\n` each.
    pub fn proc_format(&self) -> String {
        self.ranges.iter().map(|r| format!("{r}\n")).collect()
    }

    /// The extents as newuidmap/newgidmap take them after the pid: `inside outside count`...
    pub fn helper_args(&self) -> Vec<String> {
        self.ranges
            .iter()
            .flat_map(|r| [r.inside, r.outside, r.count])
            .map(|n| n.to_string())
            .collect()
    }

    pub fn ranges(&self) -> &[IdRange] {
        &self.ranges
    }

    /// How many ids are mapped in all.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|r| u64::from(r.count)).sum()
    }

    /// Whether no id is mapped (only an unchecked map can be empty; kept for `len`).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The namespace's id for parent id `outside`, if it is mapped.
    pub fn to_inside(&self, outside: u32) -> Option<u32> {
        self.ranges
            .iter()
            .find_map(|r| r.translate(Side::Outside, outside))
    }

    /// The parent's id for namespace id `inside`, if it is mapped.
    pub fn to_outside(&self, inside: u32) -> Option<u32> {
        self.ranges
            .iter()
            .find_map(|r| r.translate(Side::Inside, inside))
    }
}

#[cfg(test)]
mod mode_tests;
#[cfg(test)]
mod tests;
