//! Table tests of `subid`: one row per rule.

use std::path::Path;

use super::{
    Entry, Field, LineError, NumError, Parsed, SubRange, caller_ranges, parse_getsubids,
    parse_line, split_lines,
};

const NAME: &str = "alice";
const UID: u32 = 1000;

fn run(text: &[u8]) -> Parsed {
    caller_ranges(text, Path::new("/etc/subuid"), NAME, UID)
}

fn r(start: u32, count: u32) -> SubRange {
    SubRange { start, count }
}

/// (what the row checks, file text, expected ranges, expected errors as "line: what").
type Row = (
    &'static str,
    &'static [u8],
    Vec<SubRange>,
    Vec<&'static str>,
);

// long: a table of (input, expected) rows, one per rule
#[test]
fn caller_ranges_table() {
    let rows: Vec<Row> = vec![
        (
            "name match",
            b"alice:100000:65536\n",
            vec![r(100000, 65536)],
            vec![],
        ),
        (
            "numeric uid match",
            b"1000:100000:65536\n",
            vec![r(100000, 65536)],
            vec![],
        ),
        (
            "uid with junk never matches",
            b"1000abc:100000:65536\n",
            vec![],
            vec![],
        ),
        (
            "uid with a sign never matches",
            b"+1000:1:1\n 1000:2:1\n",
            vec![],
            vec![],
        ),
        (
            "uid with leading zeros never matches, and says so",
            b"01000:100000:65536\n",
            vec![],
            vec![
                "1: owner '01000' has leading zeros; newuidmap only matches uid 1000 written as '1000'",
            ],
        ),
        ("another user's line", b"bob:100000:65536\n", vec![], vec![]),
        (
            "other users' junk is ignored",
            b"bob:1:2 \nbob\nbob:x:y\n:1:2\n#comment\n",
            vec![],
            vec![],
        ),
        (
            "empty lines are ignored",
            b"\n\nalice:1:2\n\n",
            vec![r(1, 2)],
            vec![],
        ),
        (
            "missing newline at EOF is fine",
            b"alice:1:2",
            vec![r(1, 2)],
            vec![],
        ),
        ("empty file", b"", vec![], vec![]),
        (
            "multiple ranges in file order",
            b"alice:300000:5000\nbob:1:1\n1000:200000:1000\nalice:300000:5000\n",
            vec![r(300000, 5000), r(200000, 1000), r(300000, 5000)],
            vec![],
        ),
        (
            "trailing space",
            b"alice:100000:65536 \n",
            vec![],
            vec!["1: trailing space after count"],
        ),
        (
            "trailing space after start",
            b"alice:100000 :65536\n",
            vec![],
            vec!["1: trailing space after start"],
        ),
        (
            "CRLF",
            b"alice:1:2\r\nalice:3:4\r\n",
            vec![],
            vec![
                "1: carriage return at end of line (CRLF line ending)",
                "2: carriage return at end of line (CRLF line ending)",
            ],
        ),
        (
            "trailing tab",
            b"alice:1:2\t\n",
            vec![],
            vec!["1: trailing tab after count"],
        ),
        (
            "leading tab and space are skipped, as strtoul does",
            b"alice:\t1: 2\n",
            vec![r(1, 2)],
            vec![],
        ),
        (
            "leading \\v \\f \\r are skipped too",
            b"alice:\x0b\x0c\r 7:1\n",
            vec![r(7, 1)],
            vec![],
        ),
        (
            "1 field",
            b"alice\n",
            vec![],
            vec!["1: 1 field, expected 3"],
        ),
        (
            "2 fields",
            b"alice:100000\n",
            vec![],
            vec!["1: 2 fields, expected 3"],
        ),
        (
            "4 fields (shadow ignores the 4th; we do not)",
            b"alice:1:2:3\n",
            vec![],
            vec!["1: 4 fields, expected 3"],
        ),
        (
            "trailing colon",
            b"alice:1:2:\n",
            vec![],
            vec!["1: 4 fields, expected 3"],
        ),
        (
            "empty start",
            b"alice::2\n",
            vec![],
            vec!["1: start is empty"],
        ),
        (
            "empty count",
            b"alice:1:\n",
            vec![],
            vec!["1: count is empty"],
        ),
        ("empty owner is nobody's", b":1:2\n", vec![], vec![]),
        (
            "count 0",
            b"alice:100000:0\n",
            vec![],
            vec!["1: count is 0"],
        ),
        (
            "count -0 is 0",
            b"alice:1:-0\n",
            vec![],
            vec!["1: count is 0"],
        ),
        (
            "start+count over 2^32-1",
            b"alice:4294967290:6\n",
            vec![],
            vec!["1: start+count exceeds 4294967295 (4294967290+6)"],
        ),
        (
            "start+count exactly 2^32-1 is fine",
            b"alice:4294967290:5\n",
            vec![r(4294967290, 5)],
            vec![],
        ),
        (
            "start 4294967295",
            b"alice:4294967295:1\n",
            vec![],
            vec!["1: start+count exceeds 4294967295 (4294967295+1)"],
        ),
        (
            "beyond 32 bits (shadow reads 64-bit numbers)",
            b"alice:5000000000:1\n",
            vec![],
            vec!["1: start+count exceeds 4294967295 (5000000000+1)"],
        ),
        (
            "leading '+' is accepted",
            b"alice:+5:+6\n",
            vec![r(5, 6)],
            vec![],
        ),
        ("'-0' start is 0", b"alice:-0:6\n", vec![r(0, 6)], vec![]),
        (
            "'-1' wraps to 2^64-1, as strtoul does",
            b"alice:5:-1\n",
            vec![],
            vec!["1: start+count exceeds 4294967295 (5+18446744073709551615)"],
        ),
        (
            "sign then space is not a number",
            b"alice:+ 5:6\n",
            vec![],
            vec!["1: start is not a number: '+ 5'"],
        ),
        ("octal", b"alice:0100:010\n", vec![r(64, 8)], vec![]),
        ("hex", b"alice:0x10:0X1f\n", vec![r(16, 31)], vec![]),
        (
            "zero",
            b"alice:0:1\nalice:00:1\n",
            vec![r(0, 1), r(0, 1)],
            vec![],
        ),
        (
            "08 is not octal",
            b"alice:08:1\n",
            vec![],
            vec!["1: start is not a number: '08' (a leading 0 makes it octal)"],
        ),
        (
            "0x without digits",
            b"alice:0x:1\n",
            vec![],
            vec!["1: start is not a number: '0x'"],
        ),
        (
            "no binary prefix in glibc 2.36",
            b"alice:0b1:1\n",
            vec![],
            vec!["1: start is not a number: '0b1'"],
        ),
        (
            "not a number",
            b"alice:abc:1\n",
            vec![],
            vec!["1: start is not a number: 'abc'"],
        ),
        (
            "2^64 is out of range",
            b"alice:1:18446744073709551616\n",
            vec![],
            vec!["1: count is out of range: '18446744073709551616'"],
        ),
        (
            "non-UTF-8 owner never matches",
            b"al\xffice:1:2\n\xff:junk\nalice:3:4\n",
            vec![r(3, 4)],
            vec![],
        ),
        (
            "non-UTF-8 number is escaped in the message",
            b"alice:1\xff:2\n",
            vec![],
            vec!["1: start is not a number: '1\\xff'"],
        ),
        ("'root' is not uid 0", b"root:1:2\n", vec![], vec![]),
        (
            "NIS-style line is never parsed",
            b"-alice:1:2\n+alice:3:4\n",
            vec![],
            vec![],
        ),
        (
            "NUL byte: reported, and the spliced next line is lost too",
            b"alice:1:1\nalice:4:1\0junk\nalice:99:1\nalice:100:1\n",
            vec![r(1, 1), r(100, 1)],
            vec!["2: NUL byte in line (newuidmap reads the next line as part of this one)"],
        ),
        (
            "NUL byte in an unterminated last line",
            b"alice:1:1\nalice:4:1\0junk",
            vec![r(1, 1)],
            vec!["2: NUL byte in line (newuidmap reads the next line as part of this one)"],
        ),
        (
            "NUL byte in a terminated last line: newuidmap reads nothing",
            b"alice:1:1\nalice:4:1\0junk\n",
            vec![],
            vec!["2: NUL byte with no line after it: newuidmap cannot read this file at all"],
        ),
        (
            "errors name their line",
            b"alice:1:1\nbob:2:2\nalice:x:1\nalice:5:5\n",
            vec![r(1, 1), r(5, 5)],
            vec!["3: start is not a number: 'x'"],
        ),
    ];
    for (rule, text, ranges, errors) in rows {
        let parsed = run(text);
        assert_eq!(parsed.ranges, ranges, "{rule}: ranges");
        let got: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.line, e.what))
            .collect();
        assert_eq!(got, errors, "{rule}: errors");
    }
}

#[test]
fn line_length_limit() {
    // shadow copies a line into a 1024-byte buffer: 1023 bytes fit, 1024 do not.
    let line = |len: usize, last: char| format!("alice:{}{last}:1\n", "0".repeat(len - 9));
    let text = line(1023, '5') + &line(1024, '6');
    assert_eq!(text.len(), 1023 + 1024 + 2);
    let p = run(text.as_bytes());
    assert_eq!(p.ranges, vec![r(5, 1)]);
    let what: Vec<_> = p.errors.iter().map(|e| (e.line, e.what.as_str())).collect();
    assert_eq!(
        what,
        vec![(
            2,
            "line is 1024 bytes long; newuidmap ignores lines of 1024 bytes or more"
        )]
    );
}

#[test]
fn name_vs_uid_zero() {
    // A name is never read as a number, so it never stands for uid 0.
    let p = caller_ranges(b"root:1:1\nalice:2:2\n0:3:3\n", Path::new("f"), "nobody", 0);
    assert_eq!(p.ranges, vec![r(3, 3)]);
    let p = caller_ranges(b"root:1:1\n", Path::new("f"), "root", 0);
    assert_eq!(p.ranges, vec![r(1, 1)]);
}

#[test]
fn error_display_names_path_and_line() {
    let p = caller_ranges(b"\nalice:1:0\n", Path::new("/etc/subgid"), NAME, UID);
    assert_eq!(p.errors[0].to_string(), "/etc/subgid:2: count is 0");
}

#[test]
fn parse_line_table() {
    let ok = |owner: &'static [u8], start, count| {
        Ok(Entry {
            owner,
            range: r(start, count),
        })
    };
    let bad = |field, text: &[u8], why| {
        Err(LineError::BadNumber {
            field,
            text: text.to_vec(),
            why,
        })
    };
    let rows: Vec<(&[u8], Result<Entry<'_>, LineError>)> = vec![
        (b"alice:1:2", ok(b"alice", 1, 2)),
        (b"alice:1:2:3", Err(LineError::FieldCount(4))),
        (b"alice:1:2:\r", Err(LineError::FieldCount(4))),
        (b"alice:1", Err(LineError::FieldCount(2))),
        (b"alice:1:2\r", Err(LineError::CarriageReturn)),
        (
            b"alice:1:2 ",
            bad(Field::Count, b"2 ", NumError::TrailingSpace),
        ),
        (
            b"alice:1:2\t",
            bad(Field::Count, b"2\t", NumError::TrailingTab),
        ),
        (
            b"alice:1:2 \t",
            bad(Field::Count, b"2 \t", NumError::TrailingWhitespace),
        ),
        (b"alice:1:2x", bad(Field::Count, b"2x", NumError::Junk)),
        (b"alice:09:2", bad(Field::Start, b"09", NumError::NotOctal)),
        (b"alice: :2", bad(Field::Start, b" ", NumError::NoDigits)),
        (b"alice:-:2", bad(Field::Start, b"-", NumError::NoDigits)),
        (b":1:2", Err(LineError::EmptyField(Field::Owner))),
        (b"+alice:1:2", Err(LineError::Nis)),
        (b"alice:1\0:2", Err(LineError::NulByte)),
        (b"alice:1:0", Err(LineError::CountZero)),
        (
            b"alice:0xffffffff:1",
            Err(LineError::TooHigh {
                start: 4294967295,
                count: 1,
            }),
        ),
        (b"alice:-18446744073709551615:1", ok(b"alice", 1, 1)),
        (
            b"alice:-18446744073709551616:1",
            bad(Field::Start, b"-18446744073709551616", NumError::OutOfRange),
        ),
    ];
    for (line, expected) in rows {
        assert_eq!(parse_line(line), expected, "{}", line.escape_ascii());
    }
}

#[test]
fn newuidmap_parses_only_what_shadow_accepts() {
    let shadow_accepts = [
        &b"alice:1:2:3"[..],
        b"alice:1:0",
        b"alice:4294967295:1",
        b"alice:1:-1",
    ];
    let shadow_rejects = [
        &b"alice:1"[..],
        b"alice:1:2\r",
        b"alice:1:x",
        b"+a:1:2",
        b"alice::1",
        b"alice:x:2:3",
    ];
    for line in shadow_accepts {
        assert!(
            parse_line(line).unwrap_err().newuidmap_parses(),
            "{}",
            line.escape_ascii()
        );
    }
    for line in shadow_rejects {
        assert!(
            !parse_line(line).unwrap_err().newuidmap_parses(),
            "{}",
            line.escape_ascii()
        );
    }
}

#[test]
fn split_lines_splices_after_nul_like_commonio() {
    // What Debian 12's getsubids read from this file: "bob:4:5:1" (three physical lines).
    let split = split_lines(b"bob:1:1\nbob:4\0x\n:\0y\n5:1\nbob:9:1\n");
    let texts: Vec<(usize, &[u8], bool)> = split
        .lines
        .iter()
        .map(|l| (l.number, &l.text[..], l.spliced))
        .collect();
    assert_eq!(
        texts,
        vec![
            (1, &b"bob:1:1"[..], false),
            (2, b"bob:4:5:1", true),
            (5, b"bob:9:1", false)
        ]
    );
    assert_eq!(split.unreadable_at, None);
    assert_eq!(split_lines(b"a\n\0\n").unreadable_at, Some(2));
}

#[test]
fn getsubids_table() {
    let rows: Vec<(&str, Result<Vec<SubRange>, String>)> = vec![
        ("", Ok(vec![])),
        ("0: alice 100000 65536\n", Ok(vec![r(100000, 65536)])),
        ("0: alice 100000 65536", Ok(vec![r(100000, 65536)])),
        (
            "0: alice 100000 65536\n1: alice 300000 5000\n",
            Ok(vec![r(100000, 65536), r(300000, 5000)]),
        ),
        (
            "0: bob 100000 65536\n",
            Err("line 1: expected '0: alice START COUNT', found '0: bob 100000 65536'".into()),
        ),
        (
            "1: alice 100000 65536\n",
            Err("line 1: expected '0: alice START COUNT', found '1: alice 100000 65536'".into()),
        ),
        (
            "0: alice 100000 65536 \n",
            Err("line 1: expected '0: alice START COUNT', found '0: alice 100000 65536 '".into()),
        ),
        (
            "0: alice 100000 65536\r\n",
            Err("line 1: expected '0: alice START COUNT', found '0: alice 100000 65536\\r'".into()),
        ),
        ("0: alice 100000 0\n", Err("line 1: count is 0".into())),
        (
            "0: alice 18446744073709551615 1\n",
            Err("line 1: start+count exceeds 4294967295 (18446744073709551615+1)".into()),
        ),
    ];
    for (text, expected) in rows {
        assert_eq!(parse_getsubids(text, NAME), expected, "{text:?}");
    }
}

#[test]
fn each_range_names_its_line() {
    // Blank, other users' and broken lines count: the number is the file's.
    let p = run(b"\nbob:1:1\nalice:100:10\nalice:0:0\n1000:300:5\n");
    assert_eq!(p.ranges, [r(100, 10), r(300, 5)]);
    assert_eq!(p.lines, [3, 5]);
    assert_eq!(p.errors.len(), 1);
}
