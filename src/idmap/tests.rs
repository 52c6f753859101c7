//! Table tests of `idmap`: one row per rule.

use super::{IdMap, IdRange, MapError, Side};
use crate::subid::SubRange;

fn sub(start: u32, count: u32) -> SubRange {
    SubRange { start, count }
}

fn text(map: &IdMap) -> String {
    map.proc_format()
}

// long: a table of (input, expected) rows, one per rule
#[test]
fn full_table() {
    // (rule, caller, subordinate ranges, expected proc_format)
    let rows: Vec<(&str, u32, Vec<SubRange>, &str)> = vec![
        (
            "DESIGN.md example",
            4242,
            vec![sub(200000, 1000), sub(300000, 5000)],
            "0 4242 1\n1 200000 1000\n1001 300000 5000\n",
        ),
        (
            "no subordinate ranges is the single map",
            4242,
            vec![],
            "0 4242 1\n",
        ),
        (
            "file order, not sorted",
            1000,
            vec![sub(300000, 5000), sub(200000, 1000)],
            "0 1000 1\n1 300000 5000\n5001 200000 1000\n",
        ),
        (
            "duplicates count once",
            1000,
            vec![sub(100000, 65536), sub(100000, 65536)],
            "0 1000 1\n1 100000 65536\n",
        ),
        (
            "overlap keeps only the new ids, which continue the extent",
            1000,
            vec![sub(100000, 10), sub(100005, 10)],
            "0 1000 1\n1 100000 15\n",
        ),
        (
            "overlap at the start of an earlier range",
            1000,
            vec![sub(100005, 10), sub(100000, 10)],
            "0 1000 1\n1 100005 10\n11 100000 5\n",
        ),
        (
            "contained range adds nothing",
            1000,
            vec![sub(100000, 100), sub(100010, 10)],
            "0 1000 1\n1 100000 100\n",
        ),
        (
            "containing range splits around the earlier one",
            1000,
            vec![sub(100010, 10), sub(100000, 100)],
            "0 1000 1\n1 100010 10\n11 100000 10\n21 100020 80\n",
        ),
        (
            "caller inside a range: split around it",
            100005,
            vec![sub(100000, 10)],
            "0 100005 1\n1 100000 5\n6 100006 4\n",
        ),
        (
            "caller at the start of a range",
            100000,
            vec![sub(100000, 10)],
            "0 100000 1\n1 100001 9\n",
        ),
        (
            "range right after the caller does not merge into 0 caller 1",
            1000,
            vec![sub(1001, 10)],
            "0 1000 1\n1 1001 10\n",
        ),
        (
            "range that is only the caller adds nothing",
            1000,
            vec![sub(1000, 1)],
            "0 1000 1\n",
        ),
        (
            "adjacent ranges merge",
            1000,
            vec![sub(100000, 10), sub(100010, 10), sub(100020, 5)],
            "0 1000 1\n1 100000 25\n",
        ),
        (
            "adjacent outside but in reverse order do not merge",
            1000,
            vec![sub(100010, 10), sub(100000, 10)],
            "0 1000 1\n1 100010 10\n11 100000 10\n",
        ),
        (
            "the last mappable id",
            1000,
            vec![sub(4294967290, 5)],
            "0 1000 1\n1 4294967290 5\n",
        ),
        (
            "every id: the inside total is exactly 4294967295",
            4294967294,
            vec![sub(0, 4294967295)],
            "0 4294967294 1\n1 0 4294967294\n",
        ),
    ];
    for (rule, caller, subs, expected) in rows {
        let map = IdMap::full(caller, &subs).unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(text(&map), expected, "{rule}");
    }
}

#[test]
fn full_errors() {
    // 339 separated ranges plus the caller's extent make 340; one more is too many. Short
    // ids, so that 340 extents fit in the 4095 bytes of one write.
    let spaced = |n: u32| -> Vec<SubRange> { (0..n).map(|i| sub(2000 + 2 * i, 1)).collect() };
    // (rule, caller, subordinate ranges, number of extents or the error)
    type Row = (&'static str, u32, Vec<SubRange>, Result<usize, MapError>);
    let rows: Vec<Row> = vec![
        ("340 extents", 1000, spaced(339), Ok(340)),
        (
            "341 extents",
            1000,
            spaced(340),
            Err(MapError::TooManyExtents(341)),
        ),
        (
            "zero count",
            1000,
            vec![sub(5, 0)],
            Err(MapError::BadSubRange { start: 5, count: 0 }),
        ),
        (
            "range reaching 4294967295",
            1000,
            vec![sub(4294967290, 6)],
            Err(MapError::BadSubRange {
                start: 4294967290,
                count: 6,
            }),
        ),
        (
            "caller 4294967295",
            u32::MAX,
            vec![],
            Err(MapError::PastEnd {
                side: Side::Outside,
                inside: 0,
                outside: u32::MAX,
                count: 1,
            }),
        ),
        (
            "too long for one write: 300 extents of 10-digit ids",
            1000,
            (0..299).map(|i| sub(4000000000 + 2 * i, 1)).collect(),
            // 9 bytes for "0 1000 1\n", then 14 + digits(inside) for each.
            Err(MapError::TooLong(4984)),
        ),
    ];
    for (rule, caller, subs, expected) in rows {
        let got = IdMap::full(caller, &subs).map(|m| m.ranges().len());
        assert_eq!(got, expected, "{rule}");
    }
}

#[test]
fn id_range_new_table() {
    let rows: Vec<(u32, u32, u32, Result<(), MapError>)> = vec![
        (0, 1000, 1, Ok(())),
        (0, 0, u32::MAX, Ok(())),
        (1, 4294967290, 5, Ok(())),
        (
            0,
            1000,
            0,
            Err(MapError::ZeroCount {
                inside: 0,
                outside: 1000,
            }),
        ),
        (
            4294967290,
            0,
            6,
            Err(MapError::PastEnd {
                side: Side::Inside,
                inside: 4294967290,
                outside: 0,
                count: 6,
            }),
        ),
        (
            0,
            4294967295,
            1,
            Err(MapError::PastEnd {
                side: Side::Outside,
                inside: 0,
                outside: 4294967295,
                count: 1,
            }),
        ),
        (
            1,
            0,
            u32::MAX,
            Err(MapError::PastEnd {
                side: Side::Inside,
                inside: 1,
                outside: 0,
                count: u32::MAX,
            }),
        ),
    ];
    for (inside, outside, count, expected) in rows {
        let got = IdRange::new(inside, outside, count).map(|r| {
            assert_eq!(
                (r.inside(), r.outside(), r.count()),
                (inside, outside, count)
            );
        });
        assert_eq!(got, expected, "{inside} {outside} {count}");
    }
}

#[test]
fn error_messages() {
    let r = |i, o, c| IdRange::new(i, o, c).unwrap();
    let rows: Vec<(MapError, &str)> = vec![
        (
            IdRange::new(0, 1000, 0).unwrap_err(),
            "extent '0 1000 0' maps no ids (count is 0)",
        ),
        (
            IdRange::new(0, 4294967295, 1).unwrap_err(),
            "extent '0 4294967295 1' runs past id 4294967294 on the outside side \
             (the kernel never maps 4294967295)",
        ),
        (
            MapError::Overlap {
                side: Side::Inside,
                first: r(0, 1000, 10),
                second: r(5, 2000, 10),
            },
            "extents '0 1000 10' and '5 2000 10' overlap on the inside side",
        ),
        (
            MapError::TooManyExtents(341),
            "the map needs 341 extents; the kernel accepts at most 340 (Linux 4.15 and later)",
        ),
    ];
    for (error, message) in rows {
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn parse_proc_table() {
    let rows: Vec<(&str, &str, Result<&str, MapError>)> = vec![
        (
            "kernel column padding",
            "         0       1000          1\n         1     100000      65536\n",
            Ok("0 1000 1\n1 100000 65536\n"),
        ),
        (
            "host identity",
            "         0          0 4294967295\n",
            Ok("0 0 4294967295\n"),
        ),
        ("no final newline", "0 1000 1", Ok("0 1000 1\n")),
        ("empty map (not written yet)", "", Err(MapError::Empty)),
        (
            "two numbers",
            "0 1000\n",
            Err(MapError::BadProcLine {
                line: 1,
                text: "0 1000".into(),
            }),
        ),
        (
            "a sign",
            "0 +1000 1\n",
            Err(MapError::BadProcLine {
                line: 1,
                text: "0 +1000 1".into(),
            }),
        ),
        (
            "not a number on line 2",
            "0 1000 1\n1 x 1\n",
            Err(MapError::BadProcLine {
                line: 2,
                text: "1 x 1".into(),
            }),
        ),
        (
            "overlap inside",
            "0 1000 10\n5 2000 10\n",
            Err(MapError::Overlap {
                side: Side::Inside,
                first: IdRange::new(0, 1000, 10).unwrap(),
                second: IdRange::new(5, 2000, 10).unwrap(),
            }),
        ),
        (
            "overlap outside",
            "0 1000 10\n100 1009 10\n",
            Err(MapError::Overlap {
                side: Side::Outside,
                first: IdRange::new(0, 1000, 10).unwrap(),
                second: IdRange::new(100, 1009, 10).unwrap(),
            }),
        ),
        (
            "zero count",
            "0 1000 0\n",
            Err(MapError::ZeroCount {
                inside: 0,
                outside: 1000,
            }),
        ),
    ];
    for (rule, input, expected) in rows {
        let got = IdMap::parse_proc(input);
        assert_eq!(got.map(|m| text(&m)), expected.map(String::from), "{rule}");
    }
}

#[test]
fn write_length_limit_applies_to_new_maps_only() {
    // 300 extents of 10-digit ids: too long for one 4 KiB write (EINVAL on x86_64), but a
    // map the kernel already holds (bigger pages) is still read.
    let ranges: Vec<IdRange> = (0..300)
        .map(|i| IdRange::new(i, 4000000000 + 2 * i, 1).unwrap())
        .collect();
    let long: String = ranges.iter().map(|r| format!("{r}\n")).collect();
    assert_eq!(
        IdMap::from_ranges(ranges),
        Err(MapError::TooLong(long.len()))
    );
    assert_eq!(IdMap::parse_proc(&long).map(|m| m.ranges().len()), Ok(300));
}

#[test]
fn pass_through_table() {
    let rows: Vec<(&str, &str, &str)> = vec![
        (
            "one identity extent per parent extent (map_id_range_down)",
            "0 1000 1\n1 100000 65536\n",
            "0 0 1\n1 1 65536\n",
        ),
        ("single", "0 1000 1\n", "0 0 1\n"),
        ("host identity", "0 0 4294967295\n", "0 0 4294967295\n"),
        (
            "gaps inside stay gaps, out-of-order extents are sorted",
            "10 200000 5\n0 1000 1\n",
            "0 0 1\n10 10 5\n",
        ),
        (
            "adjacent extents never merge: each must fit one parent extent",
            "0 1000 1\n1 100000 10\n11 300000 10\n40 400000 1\n",
            "0 0 1\n1 1 10\n11 11 10\n40 40 1\n",
        ),
    ];
    for (rule, input, expected) in rows {
        let map = IdMap::parse_proc(input).unwrap();
        assert_eq!(text(&map.pass_through()), expected, "{rule}");
    }
}

#[test]
fn output_formats_and_lookups() {
    let map = IdMap::full(4242, &[sub(200000, 1000), sub(300000, 5000)]).unwrap();
    assert_eq!(
        map.proc_format(),
        "0 4242 1\n1 200000 1000\n1001 300000 5000\n"
    );
    assert_eq!(
        map.helper_args(),
        [
            "0", "4242", "1", "1", "200000", "1000", "1001", "300000", "5000"
        ]
    );
    assert_eq!(map.len(), 6001);
    assert!(!map.is_empty());
    assert_eq!(IdMap::single(4242).proc_format(), "0 4242 1\n");
    assert_eq!(IdMap::host_identity().proc_format(), "0 0 4294967295\n");
    assert_eq!(IdMap::host_identity().len(), 4294967295);

    let rows: Vec<(u32, Option<u32>)> = vec![
        (4242, Some(0)),
        (200000, Some(1)),
        (200999, Some(1000)),
        (201000, None),
        (300000, Some(1001)),
        (304999, Some(6000)),
        (305000, None),
        (0, None),
    ];
    for (outside, inside) in rows {
        assert_eq!(map.to_inside(outside), inside, "to_inside({outside})");
        if let Some(inside) = inside {
            assert_eq!(
                map.to_outside(inside),
                Some(outside),
                "to_outside({inside})"
            );
        }
    }
    assert_eq!(map.to_outside(6001), None);
    assert_eq!(
        IdMap::host_identity().to_inside(4294967294),
        Some(4294967294)
    );
    assert_eq!(IdMap::host_identity().to_inside(4294967295), None);
}
