//! Table tests of the `--map` modes and of explicit entries (`modes`): one row per rule.

use super::{Entry, Explicit, Grants, IdMap, MapError, Side};
use crate::subid::SubRange;

fn sub(start: u32, count: u32) -> SubRange {
    SubRange { start, count }
}

/// Ranges of two ids each, three apart: one extent each, whatever else is mapped.
fn pairs(n: u32) -> Vec<SubRange> {
    (0..n).map(|i| sub(2000 + 3 * i, 2)).collect()
}

/// Single ids, two apart: one extent each.
fn spaced(n: u32) -> Vec<SubRange> {
    (0..n).map(|i| sub(2000 + 2 * i, 1)).collect()
}

type Row = (
    &'static str,
    u32,
    Vec<SubRange>,
    Result<&'static str, MapError>,
);

fn check(rows: Vec<Row>, make: fn(u32, &[SubRange]) -> Result<IdMap, MapError>) {
    for (rule, caller, subs, expected) in rows {
        let got = make(caller, &subs).map(|m| m.proc_format());
        assert_eq!(got, expected.map(str::to_string), "{rule}");
    }
}

// long: a table of (input, expected) rows, one per rule
#[test]
fn keep_id_table() {
    let rows: Vec<Row> = vec![
        (
            "a single range: below the caller, the caller, above (podman's keep-id)",
            1000,
            vec![sub(100000, 65536)],
            Ok("0 100000 1000\n1000 1000 1\n1001 101000 64536\n"),
        ),
        (
            "several ranges in file order, the second above the caller",
            1000,
            vec![sub(200000, 1000), sub(300000, 5000)],
            Ok("0 200000 1000\n1000 1000 1\n1001 300000 5000\n"),
        ),
        (
            "a range cut by the caller's inside id",
            1500,
            vec![sub(200000, 1000), sub(300000, 5000)],
            Ok("0 200000 1000\n1000 300000 500\n1500 1500 1\n1501 300500 4500\n"),
        ),
        (
            "fewer ids than the caller's uid: the ids up to it stay unmapped",
            4242,
            vec![sub(200000, 1000)],
            Ok("0 200000 1000\n4242 4242 1\n"),
        ),
        (
            "the caller's uid inside a range is taken out of it",
            100005,
            vec![sub(100000, 10)],
            Ok("0 100000 5\n5 100006 4\n100005 100005 1\n"),
        ),
        (
            "a range from 0 holding the caller maps every id to itself",
            5,
            vec![sub(0, 10)],
            Ok("0 0 5\n5 5 1\n6 6 4\n"),
        ),
        (
            "duplicates and overlaps count once",
            1000,
            vec![sub(100000, 10), sub(100005, 10), sub(100000, 10)],
            Ok("0 100000 15\n1000 1000 1\n"),
        ),
        (
            "no subordinate ranges: only the caller, at itself",
            1000,
            vec![],
            Ok("1000 1000 1\n"),
        ),
        (
            "caller 0 is the full map",
            0,
            vec![sub(100000, 10)],
            Ok("0 0 1\n1 100000 10\n"),
        ),
        (
            "341 extents",
            101,
            pairs(339),
            Err(MapError::TooManyExtents(341)),
        ),
        (
            "caller 4294967295",
            u32::MAX,
            vec![],
            Err(MapError::PastEnd {
                side: Side::Inside,
                inside: u32::MAX,
                outside: u32::MAX,
                count: 1,
            }),
        ),
        (
            "a bad range",
            1000,
            vec![sub(5, 0)],
            Err(MapError::BadSubRange { start: 5, count: 0 }),
        ),
    ];
    check(rows, IdMap::keep_id);
    // 340 extents: 338 ranges, one of them cut by the caller's inside id, and the caller.
    let map = IdMap::keep_id(101, &pairs(338)).unwrap();
    assert_eq!(map.ranges().len(), 340);
    assert_eq!(map.to_outside(101), Some(101));
}

#[test]
fn subids_table() {
    let rows: Vec<Row> = vec![
        (
            "a single range and the caller, at themselves",
            1000,
            vec![sub(100000, 65536)],
            Ok("1000 1000 1\n100000 100000 65536\n"),
        ),
        (
            "several ranges, by id whatever the file order",
            1000,
            vec![sub(300000, 5000), sub(200000, 1000)],
            Ok("1000 1000 1\n200000 200000 1000\n300000 300000 5000\n"),
        ),
        (
            "adjacent ranges merge, in either order",
            1000,
            vec![sub(100010, 10), sub(100000, 10)],
            Ok("1000 1000 1\n100000 100000 20\n"),
        ),
        (
            "overlaps count once",
            1000,
            vec![sub(100000, 10), sub(100005, 10)],
            Ok("1000 1000 1\n100000 100000 15\n"),
        ),
        (
            "the caller inside a range stands alone",
            100005,
            vec![sub(100000, 10)],
            Ok("100000 100000 5\n100005 100005 1\n100006 100006 4\n"),
        ),
        (
            "a range right after the caller does not merge into it",
            1000,
            vec![sub(1001, 10)],
            Ok("1000 1000 1\n1001 1001 10\n"),
        ),
        (
            "ranges smaller and lower than the caller",
            4242,
            vec![sub(10, 5)],
            Ok("10 10 5\n4242 4242 1\n"),
        ),
        (
            "no ranges: only the caller",
            1000,
            vec![],
            Ok("1000 1000 1\n"),
        ),
        (
            "341 extents",
            1000,
            spaced(340),
            Err(MapError::TooManyExtents(341)),
        ),
    ];
    check(rows, IdMap::subids);
    let map = IdMap::subids(1000, &spaced(339)).unwrap();
    assert_eq!(map.ranges().len(), 340, "339 ranges and the caller");
}

fn entries(values: &[&str]) -> Explicit {
    Explicit::parse(values).unwrap_or_else(|e| panic!("{values:?}: {e}"))
}

fn entry(inner: u32, outer: u32, count: u32) -> Entry {
    Entry {
        inner,
        outer,
        count,
    }
}

// long: a table of (input, expected) rows, one per rule
#[test]
fn explicit_table() {
    let ranges = [sub(100000, 65536)];
    let user = Grants {
        own: Some(1000),
        ranges: &ranges,
        cut_at_ends: false,
    };
    let adjacent = [sub(1001, 10)];
    let next_to_own = Grants {
        ranges: &adjacent,
        ..user
    };
    // A nested root's grants: its parent map's inside extents.
    let parent = [sub(0, 1), sub(1, 65536)];
    let nested = Grants {
        own: None,
        ranges: &parent,
        cut_at_ends: true,
    };
    let everything = [sub(0, u32::MAX)];
    let root = Grants {
        own: None,
        ranges: &everything,
        cut_at_ends: false,
    };
    // (rule, grants, values, expected proc_format or error)
    type Row<'a> = (
        &'a str,
        Grants<'a>,
        &'a [&'a str],
        Result<&'a str, MapError>,
    );
    let rows: Vec<Row> = vec![
        (
            "exact entries, as given",
            user,
            &["0:1000:1", "1:100000:65536"],
            Ok("0 1000 1\n1 100000 65536\n"),
        ),
        (
            "entries by inside id, whatever their order",
            user,
            &["5:100005:5", "0:100000:5"],
            Ok("0 100000 5\n5 100005 5\n"),
        ),
        (
            "auto puts the caller's id at the first free inside id, the rest after",
            user,
            &["0:100000:10", "auto"],
            Ok("0 100000 10\n10 1000 1\n11 100010 65526\n"),
        ),
        (
            "the caller at 500, auto around it",
            user,
            &["500:1000:1", "auto"],
            Ok("0 100000 500\n500 1000 1\n501 100500 65036\n"),
        ),
        (
            "an entry over the caller's id and a grant is cut around the caller",
            next_to_own,
            &["0:1000:11"],
            Ok("0 1000 1\n1 1001 10\n"),
        ),
        (
            "a nested root's entries are cut where the parent's extents end",
            nested,
            &["0:0:100"],
            Ok("0 0 1\n1 1 99\n"),
        ),
        (
            "a nested root's auto keeps each parent extent apart",
            nested,
            &["1000:0:1", "auto"],
            Ok("0 1 1000\n1000 0 1\n1001 1001 64536\n"),
        ),
        (
            "real root may map any id",
            root,
            &["0:5000:10"],
            Ok("0 5000 10\n"),
        ),
        (
            "an entry outside the grants",
            user,
            &["0:300000:10"],
            Err(MapError::NotGranted {
                entry: entry(0, 300000, 10),
                first: 300000,
                last: 300009,
            }),
        ),
        (
            "an entry running past the end of a grant names the ids past it",
            user,
            &["0:165530:10"],
            Err(MapError::NotGranted {
                entry: entry(0, 165530, 10),
                first: 165536,
                last: 165539,
            }),
        ),
        (
            "an entry starting below a grant names the ids below it",
            user,
            &["0:99990:20"],
            Err(MapError::NotGranted {
                entry: entry(0, 99990, 20),
                first: 99990,
                last: 99999,
            }),
        ),
        (
            "the caller's neighbour is not the caller's",
            user,
            &["0:1000:2"],
            Err(MapError::NotGranted {
                entry: entry(0, 1000, 2),
                first: 1001,
                last: 1001,
            }),
        ),
        (
            "a nested root has only what its parent mapped",
            nested,
            &["0:65530:10"],
            Err(MapError::NotGranted {
                entry: entry(0, 65530, 10),
                first: 65537,
                last: 65539,
            }),
        ),
        (
            "two entries of one outside id",
            user,
            &["0:1000:1", "1:1000:1"],
            Err(MapError::EntriesOverlap {
                side: Side::Outside,
                first: entry(0, 1000, 1),
                second: entry(1, 1000, 1),
            }),
        ),
        (
            "two entries of one inside id",
            user,
            &["0:100000:5", "4:1000:1"],
            Err(MapError::EntriesOverlap {
                side: Side::Inside,
                first: entry(0, 100000, 5),
                second: entry(4, 1000, 1),
            }),
        ),
        ("341 entries", root, &[], Err(MapError::TooManyExtents(341))),
    ];
    let many: Vec<String> = (0..341).map(|i| format!("{i}:{}:1", 2 * i)).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    for (rule, grants, values, expected) in rows {
        let values = if values.is_empty() { &many[..] } else { values };
        let got = IdMap::explicit(&grants, &entries(values)).map(|m| m.proc_format());
        assert_eq!(got, expected.map(str::to_string), "{rule}");
    }
}

#[test]
fn explicit_auto_is_full_and_keep_id() {
    let rows: Vec<(u32, Vec<SubRange>)> = vec![
        (1000, vec![sub(100000, 65536)]),
        (1000, vec![sub(300000, 5000), sub(200000, 1000)]),
        (100005, vec![sub(100000, 10), sub(100005, 10)]),
        (1000, vec![sub(1001, 10), sub(990, 20)]),
        (4242, vec![sub(10, 5)]),
        (1000, vec![]),
    ];
    for (caller, subs) in rows {
        let grants = Grants {
            own: Some(caller),
            ranges: &subs,
            cut_at_ends: false,
        };
        let auto = IdMap::explicit(&grants, &entries(&["auto"]));
        assert_eq!(auto, IdMap::full(caller, &subs), "{caller} {subs:?}");
        let own = format!("{caller}:{caller}:1");
        let keep = IdMap::explicit(&grants, &entries(&[&own, "auto"]));
        assert_eq!(keep, IdMap::keep_id(caller, &subs), "{caller} {subs:?}");
    }
}

#[test]
fn entry_parse_table() {
    let ok = |values: &[&str], want: Explicit| assert_eq!(entries(values), want, "{values:?}");
    ok(
        &["0:1000:1"],
        Explicit {
            entries: vec![entry(0, 1000, 1)],
            auto: false,
        },
    );
    ok(
        &["auto", "1:2:3", "auto"],
        Explicit {
            entries: vec![entry(1, 2, 3)],
            auto: true,
        },
    );
    ok(
        &["4294967293:4294967293:1"],
        Explicit {
            entries: vec![entry(4294967293, 4294967293, 1)],
            auto: false,
        },
    );
    // (value, what the error says)
    let rows = [
        ("1:2", "expected INNER:OUTER:COUNT or auto"),
        ("1:2:3:4", "expected INNER:OUTER:COUNT or auto"),
        ("1000,0,1", "util-linux 2.38's OUTER,INNER,COUNT"),
        ("a:1:1", "decimal numbers"),
        ("+1:1:1", "decimal numbers"),
        (" 1:1:1", "decimal numbers"),
        ("1::1", "decimal numbers"),
        ("0x10:1:1", "decimal numbers"),
        ("4294967296:1:1", "above 4294967295"),
        ("0:0:0", "COUNT is 0"),
        ("4294967291:0:5", "INNER+COUNT runs past id 4294967294"),
        ("0:4294967295:1", "OUTER+COUNT runs past id 4294967294"),
        ("Auto", "expected INNER:OUTER:COUNT or auto"),
    ];
    for (value, why) in rows {
        let err = Explicit::parse(&[value]).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&format!("'{value}': ")), "{text}");
        assert!(text.contains(why), "{value}: {text}");
    }
}

#[test]
fn mode_error_messages() {
    let rows = [
        (
            MapError::NotGranted {
                entry: entry(0, 300000, 10),
                first: 300000,
                last: 300009,
            },
            "entry 0:300000:10 maps outside ids 300000-300009, which are neither the caller's \
             own nor granted to it",
        ),
        (
            MapError::EntriesOverlap {
                side: Side::Inside,
                first: entry(0, 1000, 1),
                second: entry(0, 100000, 5),
            },
            "entries 0:1000:1 and 0:100000:5 overlap on the inside side",
        ),
    ];
    for (err, want) in rows {
        assert_eq!(err.to_string(), want);
    }
}
