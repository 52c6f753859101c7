//! The properties of every parser and planner that reads user input, written once for two
//! drivers: `tests/properties.rs` checks them over a bounded number of generated cases in the
//! normal test suite (stable Rust), and the cargo-fuzz targets in `fuzz/` check them over what
//! libFuzzer finds (nightly). Each `check_*` function panics, naming the input, when a
//! property fails; each `gen_*` function builds an input from a [`Source`] of bytes, which is
//! a deterministic PRNG in the tests and the fuzzer's input in the targets; each module's
//! `fuzz` function is one fuzz target's body.
//!
//! Where the library has no renderer (subid lines, getsubids output, escaped mount specs,
//! mountinfo lines, /proc/PID/stat), a small one here writes the text the way its real
//! producer does, so that a parse can be checked against what was written.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Mappable ids end below this: (uid_t)-1 is never mapped.
const ID_LIMIT: u64 = u32::MAX as u64;

/// Bytes to build inputs from.
pub trait Source {
    fn byte(&mut self) -> u8;

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    /// 0 to `n - 1`; `n` must not be 0. Few bytes for small `n`, so that a fuzzer's
    /// mutations stay meaningful.
    fn below(&mut self, n: u64) -> u64 {
        match n {
            0..=256 => u64::from(self.byte()) % n,
            257..=65536 => u64::from(self.u16()) % n,
            _ => self.u64() % n,
        }
    }

    fn coin(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An id, biased towards the edges of the id space and the usual allocations.
    fn id(&mut self) -> u32 {
        match self.below(8) {
            0 => 0,
            1 => u32::MAX - self.below(3) as u32,
            2 => self.below(1 << 16) as u32,
            3 => 100_000 + 65_536 * self.below(8) as u32 + self.below(3) as u32,
            _ => self.u32(),
        }
    }

    /// Bytes from `alphabet`, at most `max` of them.
    fn text(&mut self, alphabet: &[u8], max: u64) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| *self.pick(alphabet)).collect()
    }

    /// A string of chars from `alphabet`, at most `max` of them.
    fn string(&mut self, alphabet: &[char], max: u64) -> String {
        let n = self.below(max + 1);
        (0..n).map(|_| *self.pick(alphabet)).collect()
    }
}

/// A fuzzer's input as a [`Source`]: its bytes in order, then zeros.
pub struct Bytes<'a>(pub &'a [u8]);

impl Source for Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
}

/// Up to `max` tokens, or now and then any byte: input for a parser that reads arbitrary
/// text, with enough of its syntax in it that the tests' random cases reach past the first
/// check (libFuzzer finds the tokens by itself).
pub fn soup(src: &mut impl Source, tokens: &[&[u8]], max: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..src.below(max + 1) {
        if src.below(8) == 0 {
            out.push(src.byte());
        } else {
            let token: &&[u8] = src.pick(tokens);
            out.extend_from_slice(token);
        }
    }
    out
}

/// [`soup`] as text (any invalid UTF-8 replaced).
pub fn soup_str(src: &mut impl Source, tokens: &[&[u8]], max: u64) -> String {
    String::from_utf8_lossy(&soup(src, tokens, max)).into_owned()
}

/// Lines of `text` as `\n` splits them; a final `\n` ends the last line rather than starting
/// an empty one.
fn physical_lines(text: &[u8]) -> Vec<&[u8]> {
    if text.is_empty() {
        return Vec::new();
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    body.split(|&b| b == b'\n').collect()
}

/// Sorted, disjoint, merged half-open intervals covering the same ids.
fn union(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.retain(|(s, e)| s < e);
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Whether sorted-by-start half-open intervals are disjoint.
fn disjoint(mut spans: Vec<(u64, u64)>) -> bool {
    spans.sort_unstable();
    spans.windows(2).all(|w| w[0].1 <= w[1].0)
}

/// /etc/subuid and /etc/subgid lines (`become_root::subid`), and the strtoul they mirror.
pub mod subid {
    use super::*;
    use become_root::subid::{self as lib, Field, LineError, SubRange};

    pub const TOKENS: &[&[u8]] = &[
        b"alice",
        b"bob",
        b"1000",
        b"01000",
        b"0",
        b"1",
        b"7",
        b":",
        b":",
        b":",
        b"\n",
        b"\n",
        b"\n",
        b"\0",
        b"\r",
        b" ",
        b"\t",
        b"+",
        b"-",
        b"0x",
        b"0X",
        b"fF",
        b"08",
        b"65536",
        b"100000",
        b"4294967294",
        b"4294967295",
        b"18446744073709551615",
        b"18446744073709551616",
        b"#",
        b"\xff",
    ];

    /// Callers a file is read for: (login name, uid).
    pub const CALLERS: &[(&str, u32)] = &[
        ("alice", 1000),
        ("bob", 0),
        ("1000", 1000),
        ("0", 7),
        ("", 4294967294),
    ];

    fn valid(r: &SubRange) -> bool {
        r.count > 0 && u64::from(r.start) + u64::from(r.count) <= ID_LIMIT
    }

    /// `owner:start:count` in plain decimal, as `usermod --add-subuids` writes it.
    pub fn render_line(owner: &[u8], range: SubRange) -> Vec<u8> {
        let mut line = owner.to_vec();
        line.extend_from_slice(format!(":{}:{}", range.start, range.count).as_bytes());
        line
    }

    /// A whole file, read for `name` and `uid`: every range is mappable, every error names a
    /// line of the file (in order, at most one a line), every line of the caller's is either
    /// a range or an error, never both, and nothing else is; the lines are the file's.
    pub fn check_file(text: &[u8], name: &str, uid: u32) {
        let show = || text.escape_ascii().to_string();
        let path = Path::new("/etc/subuid");
        let parsed = lib::caller_ranges(text, path, name, uid);
        let physical = physical_lines(text);
        for r in &parsed.ranges {
            assert!(valid(r), "range {r:?} from {}", show());
        }
        let mut last = 0;
        for e in &parsed.errors {
            assert_eq!(e.path, path);
            assert!(
                e.line > last && e.line <= physical.len(),
                "error on line {} after {last}, of {}: {}",
                e.line,
                physical.len(),
                show()
            );
            last = e.line;
            assert!(
                e.to_string()
                    .starts_with(&format!("/etc/subuid:{}: ", e.line))
            );
            assert!(!e.what.is_empty());
        }

        let split = lib::split_lines(text);
        let mut previous = 0;
        for line in &split.lines {
            assert!(line.number > previous && line.number <= physical.len());
            previous = line.number;
            let raw = physical[line.number - 1];
            assert!(!line.text.contains(&0) && !line.text.contains(&b'\n'));
            if line.spliced {
                let before_nul = raw.split(|&b| b == 0).next().unwrap_or(raw);
                assert!(
                    raw.contains(&0) && line.text.starts_with(before_nul),
                    "{}",
                    show()
                );
            } else {
                assert_eq!(
                    &line.text[..],
                    raw,
                    "an ordinary line is the file's: {}",
                    show()
                );
            }
        }
        if let Some(at) = split.unreadable_at {
            assert!(physical[at - 1].contains(&0));
            assert!(
                parsed.ranges.is_empty(),
                "an unreadable file grants nothing"
            );
            assert_eq!(parsed.errors.len(), 1);
            assert_eq!(parsed.errors[0].line, at);
            return;
        }

        let uid_text = uid.to_string();
        let is_callers = |owner: &[u8]| {
            !owner.is_empty() && (owner == name.as_bytes() || owner == uid_text.as_bytes())
        };
        let mut ranges = Vec::new();
        let mut range_lines = Vec::new();
        let mut error_lines = Vec::new();
        for line in &split.lines {
            let result = if line.spliced {
                Err(LineError::NulByte)
            } else {
                lib::parse_line(&line.text)
            };
            if let Ok(entry) = &result {
                assert_eq!(entry.owner, lib::owner_field(&line.text));
                assert!(valid(&entry.range));
                let again = render_line(entry.owner, entry.range);
                assert_eq!(
                    lib::parse_line(&again).map(|e| e.range),
                    Ok(entry.range),
                    "the plain rendering reads back: {}",
                    again.escape_ascii()
                );
            }
            match result {
                Ok(entry) if is_callers(entry.owner) => {
                    ranges.push(entry.range);
                    range_lines.push(line.number);
                }
                Err(e) if is_callers(lib::owner_field(&line.text)) => {
                    assert!(!e.to_string().is_empty());
                    error_lines.push(line.number);
                }
                _ => {}
            }
        }
        assert_eq!(
            parsed.ranges,
            ranges,
            "the caller's ranges, in file order: {}",
            show()
        );
        assert_eq!(
            parsed.lines,
            range_lines,
            "each range names its line: {}",
            show()
        );
        let caller_errors: Vec<usize> = parsed
            .errors
            .iter()
            .map(|e| e.line)
            .filter(|n| error_lines.contains(n))
            .collect();
        assert_eq!(
            caller_errors,
            error_lines,
            "every broken line of the caller's: {}",
            show()
        );
        for e in parsed
            .errors
            .iter()
            .filter(|e| !error_lines.contains(&e.line))
        {
            // The only error about another owner's line: the caller's uid, zero-padded (in
            // the line as shadow reads it, spliced or not).
            let line = split
                .lines
                .iter()
                .find(|l| l.number == e.line)
                .expect("a line");
            let owner = lib::owner_field(&line.text);
            let digits = owner.iter().all(u8::is_ascii_digit);
            let value = std::str::from_utf8(owner)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            assert!(
                owner.first() == Some(&b'0') && digits && value == Some(u64::from(uid)),
                "{e} for owner {}",
                owner.escape_ascii()
            );
        }
    }

    /// How a number may be spelled so that strtoul(s, &end, 0) reads `n` (64-bit).
    pub fn spell(src: &mut impl Source, n: u64, newline: bool) -> Vec<u8> {
        let spaces: &[u8] = if newline {
            b" \t\n\x0b\x0c\r"
        } else {
            b" \t\x0b\x0c\r"
        };
        let mut out = src.text(spaces, 2);
        let digits = match src.below(6) {
            0 => format!("0{n:o}"),
            1 => format!("0{}{n:x}", if src.coin() { 'x' } else { 'X' }),
            2 => format!("0X{n:X}"),
            // "-" negates modulo 2^64, so -(2^64 - n) is n.
            3 if n > 0 => format!("-{}", n.wrapping_neg()),
            4 => format!("+{n}"),
            _ => n.to_string(),
        };
        out.extend_from_slice(digits.as_bytes());
        out
    }

    /// A well-formed line, spelled any way shadow reads it: (owner, range, line).
    pub fn gen_line(src: &mut impl Source, newline: bool) -> (Vec<u8>, SubRange, Vec<u8>) {
        let mut owner = match src.below(3) {
            0 => src.pick(&[&b"alice"[..], b"1000", b"root", b"0"]).to_vec(),
            _ => src.text(b"abz09_.-+ \r\t\xc3\xa4\xff#", 12),
        };
        if owner.is_empty() || matches!(owner[0], b'+' | b'-') {
            owner.insert(0, b'u');
        }
        let start = src.id();
        let room = ID_LIMIT - u64::from(start);
        let count = if room == 0 {
            return gen_line(src, newline);
        } else {
            match src.below(4) {
                0 => room,
                1 => 1,
                _ => 1 + src.below(room.min(1 << 20)),
            }
        };
        let range = SubRange {
            start,
            count: u32::try_from(count).expect("below 2^32"),
        };
        let mut line = owner.clone();
        line.push(b':');
        line.extend(spell(src, u64::from(start), newline));
        line.push(b':');
        line.extend(spell(src, count, newline));
        (owner, range, line)
    }

    /// A well-formed line reads back as what was written, alone and as a file.
    pub fn check_line(owner: &[u8], range: SubRange, line: &[u8]) {
        let entry = lib::parse_line(line)
            .unwrap_or_else(|e| panic!("{}: {e}", line.escape_ascii()))
            .to_owned();
        assert_eq!(
            (entry.owner, entry.range),
            (owner, range),
            "{}",
            line.escape_ascii()
        );
        if line.contains(&b'\n') {
            return;
        }
        if let Ok(name) = std::str::from_utf8(owner) {
            let mut file = line.to_vec();
            file.push(b'\n');
            let parsed = lib::caller_ranges(&file, Path::new("f"), name, 4242);
            assert_eq!(parsed.ranges, [range], "{}", line.escape_ascii());
        }
    }

    /// What shadow's `getulong` (lib/getulong.c) gets from glibc's strtoul for a field: the
    /// value, or `None` when it refuses the field.
    pub fn getulong(field: &[u8]) -> Option<u64> {
        use crate::libc;
        let c = std::ffi::CString::new(field).ok()?;
        let mut end: *mut libc::c_char = std::ptr::null_mut();
        // SAFETY: `c` is NUL-terminated and outlives the call; strtoul sets `end` to a place
        // in it; errno is this thread's own.
        let (value, errno, rest) = unsafe {
            *libc::__errno_location() = 0;
            let value = libc::strtoul(c.as_ptr(), &mut end, 0);
            (value, *libc::__errno_location(), *end)
        };
        // c_ulong is 32 bits on 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        let value = value as u64;
        (!field.is_empty() && rest == 0 && errno != libc::ERANGE).then_some(value)
    }

    pub const NUMBER_TOKENS: &[&[u8]] = &[
        b"0",
        b"1",
        b"7",
        b"8",
        b"9",
        b"a",
        b"f",
        b"F",
        b"x",
        b"X",
        b"0x",
        b"+",
        b"-",
        b" ",
        b"\t",
        b"\n",
        b"\x0b",
        b"\x0c",
        b"\r",
        b"65536",
        b"4294967295",
        b"18446744073709551615",
        b"18446744073709551616",
        b"\xff",
    ];

    /// A start or count field reads as glibc's strtoul reads it, which is what newuidmap
    /// finally uses: a differential check of `subid`'s own strtoul.
    pub fn check_number(field: &[u8]) {
        if field.contains(&b':') || field.contains(&0) || field.len() > 900 {
            return;
        }
        let show = field.escape_ascii();
        let glibc = getulong(field);
        let start_line = [b"o:", field, b":1"].concat();
        let got = lib::parse_line(&start_line).map(|e| e.range);
        match glibc {
            _ if field.is_empty() => assert_eq!(got, Err(LineError::EmptyField(Field::Start))),
            None => assert!(
                matches!(&got, Err(LineError::BadNumber { field: Field::Start, text, .. }) if text == field),
                "start '{show}': glibc refuses it, subid gives {got:?}"
            ),
            Some(v) if v < ID_LIMIT => assert_eq!(
                got,
                Ok(SubRange {
                    start: v as u32,
                    count: 1
                }),
                "start '{show}'"
            ),
            Some(v) => assert_eq!(
                got,
                Err(LineError::TooHigh { start: v, count: 1 }),
                "start '{show}'"
            ),
        }
        let count_line = [b"o:5:", field].concat();
        let got = lib::parse_line(&count_line).map(|e| e.range);
        match glibc {
            _ if field.is_empty() => assert_eq!(got, Err(LineError::EmptyField(Field::Count))),
            _ if field.ends_with(b"\r") => assert_eq!(got, Err(LineError::CarriageReturn)),
            None => assert!(
                matches!(
                    &got,
                    Err(LineError::BadNumber {
                        field: Field::Count,
                        ..
                    })
                ),
                "count '{show}': glibc refuses it, subid gives {got:?}"
            ),
            Some(0) => assert_eq!(got, Err(LineError::CountZero)),
            Some(v) if v <= ID_LIMIT - 5 => assert_eq!(
                got,
                Ok(SubRange {
                    start: 5,
                    count: v as u32
                }),
                "count '{show}'"
            ),
            Some(v) => assert_eq!(
                got,
                Err(LineError::TooHigh { start: 5, count: v }),
                "count '{show}'"
            ),
        }
    }

    /// Target `subid_file`: the first byte picks the caller, the rest is the file.
    pub fn fuzz_file(data: &[u8]) {
        let Some((&pick, text)) = data.split_first() else {
            return;
        };
        let (name, uid) = CALLERS[usize::from(pick) % CALLERS.len()];
        check_file(text, name, uid);
    }

    /// Target `subid_line`: the input as a number field, then as the bytes a well-formed
    /// line is generated from.
    pub fn fuzz_line(data: &[u8]) {
        check_number(data);
        let (owner, range, line) = gen_line(&mut Bytes(data), true);
        check_line(&owner, range, &line);
    }
}

/// What `getsubids` prints (`become_root::subid::parse_getsubids`).
pub mod getsubids {
    use super::*;
    use become_root::subid::{SubRange, parse_getsubids};

    pub const NAMES: &[&str] = &["alice", "bob", "a b", "1000", ""];

    pub const TOKENS: &[&[u8]] = &[
        b"0: ",
        b"1: ",
        b"2: ",
        b"alice",
        b"bob",
        b" ",
        b" ",
        b"\n",
        b"\n",
        b"0",
        b"1",
        b"100000",
        b"65536",
        b"4294967295",
        b"99999999999999999999",
        b"-",
        b"+",
        b"\r",
        b":",
    ];

    /// `printf("%d: %s %lu %lu\n", i, owner, start, count)`, as shadow's getsubids does.
    pub fn render(name: &str, ranges: &[(u64, u64)]) -> String {
        ranges
            .iter()
            .enumerate()
            .map(|(i, (start, count))| format!("{i}: {name} {start} {count}\n"))
            .collect()
    }

    /// Any output: ranges are mappable, one a line, and print back to themselves; an error
    /// names one of the lines.
    pub fn check_text(text: &str, name: &str) {
        // Lines as getsubids ends them: each with a newline, and no output for no ranges.
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines = if body.is_empty() {
            0
        } else {
            body.split('\n').count()
        };
        match parse_getsubids(text, name) {
            Ok(ranges) => {
                assert_eq!(ranges.len(), lines, "{text:?}");
                for r in &ranges {
                    assert!(r.count > 0 && u64::from(r.start) + u64::from(r.count) <= ID_LIMIT);
                }
                let pairs: Vec<(u64, u64)> = ranges
                    .iter()
                    .map(|r| (r.start.into(), r.count.into()))
                    .collect();
                assert_eq!(parse_getsubids(&render(name, &pairs), name), Ok(ranges));
            }
            Err(e) => {
                let n: usize = e
                    .strip_prefix("line ")
                    .and_then(|rest| rest.split_once(": "))
                    .and_then(|(n, _)| n.parse().ok())
                    .unwrap_or_else(|| panic!("error without a line: {e}"));
                assert!(n >= 1 && n <= lines, "{e} of {lines} lines: {text:?}");
            }
        }
    }

    /// What getsubids printed reads back: the ranges, or an error naming the first line
    /// whose range is not mappable.
    pub fn check_rendered(name: &str, pairs: &[(u64, u64)]) {
        let text = render(name, pairs);
        let bad = pairs
            .iter()
            .position(|&(s, c)| c == 0 || s.checked_add(c).is_none_or(|e| e > ID_LIMIT));
        let got = parse_getsubids(&text, name);
        match bad {
            None => {
                let want: Vec<SubRange> = pairs
                    .iter()
                    .map(|&(start, count)| SubRange {
                        start: start as u32,
                        count: count as u32,
                    })
                    .collect();
                assert_eq!(got, Ok(want), "{text:?}");
            }
            Some(i) => {
                let e = got.expect_err(&text);
                assert!(e.starts_with(&format!("line {}: ", i + 1)), "{e}: {text:?}");
            }
        }
    }

    pub fn gen_output(src: &mut impl Source) -> (String, Vec<(u64, u64)>) {
        let name = match src.below(3) {
            0 => src.string(&['a', 'z', '0', ' ', '.', '-', '_', 'ä', ':'], 8),
            _ => src.pick(NAMES).to_string(),
        };
        let pairs = (0..src.below(6))
            .map(|_| {
                let start = u64::from(src.id());
                let count = match src.below(8) {
                    0 => 0,
                    1 => ID_LIMIT - start,
                    2 => u64::from(src.u32()),
                    _ => 1 + src.below(1 << 17),
                };
                (start, count)
            })
            .collect();
        (name, pairs)
    }

    /// Target `getsubids`: the first byte picks the user, the rest is the output; then the
    /// input as the bytes output is generated from.
    pub fn fuzz(data: &[u8]) {
        if let Some((&pick, rest)) = data.split_first() {
            // getsubids' caller reads its stdout lossily too.
            check_text(
                &String::from_utf8_lossy(rest),
                NAMES[usize::from(pick) % NAMES.len()],
            );
        }
        let (name, pairs) = gen_output(&mut Bytes(data));
        check_rendered(&name, &pairs);
    }
}

/// Map planning (`become_root::idmap`): the full map from the caller's id and subordinate
/// ranges, and maps read from /proc.
pub mod idmap {
    use super::*;
    use become_root::idmap::{Entry, Explicit, Grants, IdMap, IdRange, MapError, Side};
    use become_root::subid::SubRange;

    /// The kernel's own rendering, `"%10u %10u %10u\n"` (kernel/user_namespace.c).
    pub fn kernel_format(map: &IdMap) -> String {
        map.ranges()
            .iter()
            .map(|r| format!("{:10} {:10} {:10}\n", r.inside(), r.outside(), r.count()))
            .collect()
    }

    fn outside(r: &IdRange) -> (u64, u64) {
        let s = u64::from(r.outside());
        (s, s + u64::from(r.count()))
    }

    fn inside(r: &IdRange) -> (u64, u64) {
        let s = u64::from(r.inside());
        (s, s + u64::from(r.count()))
    }

    /// What every map the kernel accepts is, and what its renderings and lookups give.
    pub fn check_map(map: &IdMap) {
        let r = map.ranges();
        assert!(!r.is_empty() && r.len() <= IdMap::MAX_EXTENTS, "{map:?}");
        for x in r {
            assert!(x.count() > 0);
            assert!(inside(x).1 <= ID_LIMIT && outside(x).1 <= ID_LIMIT, "{x}");
        }
        assert!(
            disjoint(r.iter().map(inside).collect()),
            "inside overlap: {map:?}"
        );
        assert!(
            disjoint(r.iter().map(outside).collect()),
            "outside overlap: {map:?}"
        );
        assert_eq!(IdMap::parse_proc(&map.proc_format()).as_ref(), Ok(map));
        assert_eq!(IdMap::parse_proc(&kernel_format(map)).as_ref(), Ok(map));
        let args = map.helper_args();
        let numbers: Vec<String> = map
            .proc_format()
            .split_ascii_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(args, numbers);
        assert_eq!(
            map.len(),
            r.iter().map(|x| u64::from(x.count())).sum::<u64>()
        );
        // Lookups are linear: a sample of extents keeps a 340-extent map cheap.
        for x in r.iter().step_by(1 + r.len() / 8).chain(r.last()) {
            let last = x.count() - 1;
            for (i, o) in [
                (x.inside(), x.outside()),
                (x.inside() + last, x.outside() + last),
            ] {
                assert_eq!(map.to_outside(i), Some(o), "{x}");
                assert_eq!(map.to_inside(o), Some(i), "{x}");
            }
        }
        // A nested namespace's map keeps every id: identity over the inside ids.
        let through = map.pass_through();
        let t = through.ranges();
        assert!(t.iter().all(|x| x.inside() == x.outside()));
        assert!(t.windows(2).all(|w| w[0].inside() < w[1].inside()));
        let mut spans: Vec<(u64, u64)> = r.iter().map(inside).collect();
        spans.sort_unstable();
        assert_eq!(t.iter().map(inside).collect::<Vec<_>>(), spans);
        assert_eq!(
            IdMap::parse_proc(&through.proc_format()),
            Ok(through.clone())
        );
    }

    /// The map `full` must make, id by id (small inputs only): the caller at 0, then each
    /// subordinate id no earlier range (nor the caller) took, in file order; an extent for
    /// each run contiguous on both sides, the caller's alone.
    fn oracle(caller: u32, subs: &[SubRange]) -> Result<Vec<(u32, u32, u32)>, MapError> {
        let mut seen = HashSet::from([caller]);
        let mut extents = vec![(0u32, caller, 1u32)];
        let mut next_inside = 1u32;
        for s in subs {
            for id in s.start..s.start + s.count {
                if !seen.insert(id) {
                    continue;
                }
                // The caller's extent is the first; it never grows.
                let grows = extents.len() > 1;
                match extents.last_mut() {
                    Some(last) if grows && last.1 + last.2 == id => last.2 += 1,
                    _ => extents.push((next_inside, id, 1)),
                }
                next_inside += 1;
            }
        }
        if extents.len() > IdMap::MAX_EXTENTS {
            return Err(MapError::TooManyExtents(extents.len()));
        }
        let text: String = extents
            .iter()
            .map(|(i, o, c)| format!("{i} {o} {c}\n"))
            .collect();
        if text.len() > 4095 {
            return Err(MapError::TooLong(text.len()));
        }
        Ok(extents)
    }

    /// `IdMap::full`: fails exactly on a bad caller, a bad range, more than 340 extents or a
    /// map too long for one write; otherwise the caller is 0, the extents never overlap
    /// inside or outside, cover exactly the caller and the granted ids, are maximal, and
    /// (for small inputs) are exactly the id-by-id oracle's.
    pub fn check_full(caller: u32, subs: &[SubRange]) {
        let got = IdMap::full(caller, subs);
        let show = || format!("caller {caller}, {} ranges {subs:?}", subs.len());
        if caller == u32::MAX {
            assert_eq!(
                got,
                Err(MapError::PastEnd {
                    side: Side::Outside,
                    inside: 0,
                    outside: caller,
                    count: 1
                })
            );
            return;
        }
        let bad = subs
            .iter()
            .find(|s| s.count == 0 || u64::from(s.start) + u64::from(s.count) > ID_LIMIT);
        if let Some(s) = bad {
            let want = MapError::BadSubRange {
                start: s.start,
                count: s.count,
            };
            assert_eq!(got, Err(want), "{}", show());
            return;
        }
        let ids: u64 = subs.iter().map(|s| u64::from(s.count)).sum();
        if ids <= 20_000 {
            let want = oracle(caller, subs);
            let got = got.as_ref().map(|m| {
                m.ranges()
                    .iter()
                    .map(|r| (r.inside(), r.outside(), r.count()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want.as_ref().cloned(), "{}", show());
        }
        let map = match got {
            Ok(map) => map,
            Err(MapError::TooManyExtents(n)) => {
                assert!(n > IdMap::MAX_EXTENTS, "{}", show());
                return;
            }
            Err(MapError::TooLong(n)) => {
                assert!(n > 4095, "{}", show());
                return;
            }
            Err(e) => panic!("{e}: {}", show()),
        };
        check_map(&map);
        let r = map.ranges();
        assert_eq!(r[0], IdRange::new(0, caller, 1).unwrap(), "the caller is 0");
        assert_eq!(map.to_inside(caller), Some(0));
        assert!(map.proc_format().len() <= 4095);
        let mut next = 0u64;
        for x in r {
            assert_eq!(u64::from(x.inside()), next, "no gaps inside: {}", show());
            next += u64::from(x.count());
        }
        let grants = union(
            subs.iter()
                .map(|s| (u64::from(s.start), u64::from(s.start) + u64::from(s.count)))
                .collect(),
        );
        for x in &r[1..] {
            let (s, e) = outside(x);
            // The last merged grant starting at or below s must hold the whole extent.
            let i = grants.partition_point(|&(gs, _)| gs <= s);
            assert!(
                i > 0 && e <= grants[i - 1].1,
                "{x} is not granted: {}",
                show()
            );
            assert!(
                !(s..e).contains(&u64::from(caller)),
                "the caller twice: {}",
                show()
            );
        }
        let granted: u64 = grants.iter().map(|(s, e)| e - s).sum();
        let caller_granted = grants
            .iter()
            .any(|&(s, e)| (s..e).contains(&u64::from(caller)));
        assert_eq!(
            map.len(),
            1 + granted - u64::from(caller_granted),
            "every granted id is mapped: {}",
            show()
        );
        for w in r[1..].windows(2) {
            assert_ne!(outside(&w[0]).1, outside(&w[1]).0, "not merged: {}", show());
        }
    }

    /// Subordinate ranges in the shapes that matter: small and overlapping, many separate
    /// ones around the 340-extent limit, long ids around the 4095-byte limit, wide ones, and
    /// anything at all.
    pub fn gen_full(src: &mut impl Source) -> (u32, Vec<SubRange>) {
        let r = |start, count| SubRange { start, count };
        match src.below(7) {
            0 | 1 => {
                let caller = src.below(300) as u32;
                let n = src.below(12);
                let subs = (0..n)
                    .map(|_| {
                        let (start, count) = (src.below(256) as u32, src.below(41) as u32);
                        // Mostly valid: a count of 0 is an error for the whole map.
                        r(start, if count == 0 && src.coin() { 1 } else { count })
                    })
                    .collect();
                (caller, subs)
            }
            2 => {
                // Separate single ids: one extent each. Short ids reach the extent limit,
                // 10-digit ones the write limit first.
                let base: u32 = if src.coin() { 2000 } else { 4_000_000_000 };
                let n = if base == 2000 {
                    330 + src.below(20)
                } else {
                    270 + src.below(80)
                };
                let mut subs: Vec<SubRange> = (0..n as u32).map(|i| r(base + 2 * i, 1)).collect();
                for _ in 0..src.below(6) {
                    let (a, b) = (src.below(n), src.below(n));
                    subs.swap(a as usize, b as usize);
                }
                for _ in 0..src.below(4) {
                    let at = src.below(n) as usize;
                    subs[at].count = 1 + src.below(3) as u32;
                }
                let caller = match src.below(3) {
                    0 => base + 2 * src.below(n) as u32,
                    1 => base + 2 * src.below(n) as u32 + 1,
                    _ => 1000,
                };
                (caller, subs)
            }
            3 => {
                let caller = src.id();
                let subs = (0..src.below(5))
                    .map(|_| {
                        let start = src.id();
                        let room = ID_LIMIT - u64::from(start);
                        let count = match src.below(4) {
                            0 => room,
                            1 => room + 1,
                            _ => src.below(room.max(1)) + 1,
                        };
                        r(start, count.min(u64::from(u32::MAX)) as u32)
                    })
                    .collect();
                (caller, subs)
            }
            4 => {
                let caller = *src.pick(&[0, 1, u32::MAX, u32::MAX - 1, 65534]);
                let subs = (0..src.below(4))
                    .map(|_| r(src.id(), src.below(5_000) as u32))
                    .collect();
                (caller, subs)
            }
            _ => {
                let caller = src.u32();
                let subs = (0..src.below(8)).map(|_| r(src.u32(), src.u32())).collect();
                (caller, subs)
            }
        }
    }

    /// Extents as anyone may write them: `from_ranges` accepts exactly the valid ones.
    pub fn check_from_ranges(triples: &[(u32, u32, u32)]) {
        let ranges: Result<Vec<IdRange>, MapError> = triples
            .iter()
            .map(|&(i, o, c)| IdRange::new(i, o, c))
            .collect();
        for &(i, o, c) in triples {
            let ok = c > 0
                && u64::from(i) + u64::from(c) <= ID_LIMIT
                && u64::from(o) + u64::from(c) <= ID_LIMIT;
            assert_eq!(IdRange::new(i, o, c).is_ok(), ok, "{i} {o} {c}");
        }
        let Ok(ranges) = ranges else { return };
        let valid = !ranges.is_empty()
            && ranges.len() <= IdMap::MAX_EXTENTS
            && disjoint(ranges.iter().map(inside).collect())
            && disjoint(ranges.iter().map(outside).collect());
        let text: String = ranges.iter().map(|x| format!("{x}\n")).collect();
        let got = IdMap::from_ranges(ranges.clone());
        assert_eq!(got.is_ok(), valid && text.len() <= 4095, "{text}: {got:?}");
        // A map the kernel already holds has no length limit (pages may be bigger).
        assert_eq!(IdMap::parse_proc(&text).is_ok(), valid, "{text}");
        if let Ok(map) = got {
            assert_eq!(map.ranges(), &ranges[..]);
            check_map(&map);
        }
    }

    pub fn gen_triples(src: &mut impl Source) -> Vec<(u32, u32, u32)> {
        (0..src.below(6))
            .map(|_| match src.below(3) {
                0 => (
                    src.below(64) as u32,
                    src.below(64) as u32,
                    src.below(16) as u32,
                ),
                1 => (src.id(), src.id(), src.below(1 << 16) as u32),
                _ => (src.u32(), src.u32(), src.u32()),
            })
            .collect()
    }

    pub const PROC_TOKENS: &[&[u8]] = &[
        b"0",
        b"1",
        b"1000",
        b"100000",
        b"65536",
        b"4294967295",
        b"4294967296",
        b" ",
        b"  ",
        b"         ",
        b"\t",
        b"\n",
        b"\n",
        b"+",
        b"-",
        b"x",
    ];

    /// Any text read as /proc/PID/uid_map: a map it gives has every property of a kernel
    /// map, and the session code's own reading of uid 0 agrees with it; an error about a
    /// line names a line that is there.
    pub fn check_proc_text(text: &str) {
        match IdMap::parse_proc(text) {
            Ok(map) => {
                check_map(&map);
                assert_eq!(
                    become_root::session::outside_uid_of_root(text),
                    map.to_outside(0),
                    "{text:?}"
                );
            }
            Err(MapError::BadProcLine { line, text: shown }) => {
                let lines: Vec<&str> = text.lines().collect();
                assert!(line >= 1 && line <= lines.len(), "{line} in {text:?}");
                assert_eq!(lines[line - 1], shown);
            }
            Err(_) => {}
        }
    }

    /// Every outside id of `map` is `own` or in `grants`, `own` only as an extent of its
    /// own (newuidmap's rule), and the map has every property of a kernel map.
    fn check_granted(
        map: &IdMap,
        own: Option<u32>,
        grants: &[(u64, u64)],
        show: &dyn Fn() -> String,
    ) {
        check_map(map);
        for x in map.ranges() {
            let (s, e) = outside(x);
            if own.is_some_and(|o| (s..e).contains(&u64::from(o))) {
                assert_eq!(x.count(), 1, "the caller's id shares an extent: {}", show());
                continue;
            }
            let i = grants.partition_point(|&(gs, _)| gs <= s);
            assert!(
                i > 0 && e <= grants[i - 1].1,
                "{x} is not granted: {}",
                show()
            );
        }
    }

    /// `keep_id` and `subids` beside `full` for the same caller and ranges: they fail
    /// exactly where `full` does, or on one extent more (keep-id's cut around the caller);
    /// otherwise the caller is itself inside, every granted id is mapped once, keep-id's
    /// inside ids run from 0 with only the caller's own apart, subids' are the outside ids,
    /// and `explicit` with `auto` (and the caller's own entry) makes the same maps.
    pub fn check_modes(caller: u32, subs: &[SubRange]) {
        let show = || format!("caller {caller}, {} ranges {subs:?}", subs.len());
        let full = IdMap::full(caller, subs);
        let keep = IdMap::keep_id(caller, subs);
        let ident = IdMap::subids(caller, subs);
        let grants = union(
            subs.iter()
                .map(|s| (u64::from(s.start), u64::from(s.start) + u64::from(s.count)))
                .collect(),
        );
        let bad_input =
            |e: &MapError| matches!(e, MapError::BadSubRange { .. } | MapError::PastEnd { .. });
        for (mode, got) in [("keep-id", &keep), ("subids", &ident)] {
            match (got, &full) {
                (Err(e), Err(f)) if bad_input(e) || bad_input(f) => {
                    assert!(
                        bad_input(e) && bad_input(f),
                        "{mode}: {e} but full: {f}: {}",
                        show()
                    );
                    continue;
                }
                (Err(MapError::TooManyExtents(n)), _) => {
                    assert!(*n > IdMap::MAX_EXTENTS, "{}", show());
                    continue;
                }
                (Err(MapError::TooLong(n)), _) => {
                    assert!(*n > 4095, "{}", show());
                    continue;
                }
                (Err(e), _) => panic!("{mode}: {e}: {}", show()),
                (Ok(map), full) => {
                    if let Ok(full) = full {
                        assert_eq!(
                            map.len(),
                            full.len(),
                            "{mode}: as many ids as full: {}",
                            show()
                        );
                    }
                    check_granted(map, Some(caller), &grants, &show);
                    assert_eq!(map.to_outside(caller), Some(caller), "{mode}: {}", show());
                }
            }
        }
        if let Ok(map) = &keep {
            let mut insides: Vec<(u64, u64)> = map
                .ranges()
                .iter()
                .filter(|x| x.outside() != caller)
                .map(inside)
                .collect();
            insides.sort_unstable();
            let mut next = 0u64;
            for (s, e) in insides {
                if next == u64::from(caller) {
                    next += 1;
                }
                assert_eq!(
                    s,
                    next,
                    "keep-id leaves no gap but the caller's: {}",
                    show()
                );
                next = e;
            }
        }
        if let Ok(map) = &ident {
            assert!(
                map.ranges().iter().all(|x| x.inside() == x.outside()),
                "{}",
                show()
            );
            if let Ok(full) = &full {
                let outsides = |m: &IdMap| union(m.ranges().iter().map(outside).collect());
                assert_eq!(
                    outsides(map),
                    outsides(full),
                    "the same ids as full: {}",
                    show()
                );
            }
        }
        if subs
            .iter()
            .any(|s| s.count == 0 || u64::from(s.start) + u64::from(s.count) > ID_LIMIT)
        {
            return;
        }
        let g = Grants {
            own: Some(caller),
            ranges: subs,
            cut_at_ends: false,
        };
        let auto = Explicit {
            entries: Vec::new(),
            auto: true,
        };
        if caller != u32::MAX {
            assert_eq!(IdMap::explicit(&g, &auto), full, "auto is full: {}", show());
        }
        if caller < u32::MAX - 1 {
            let own = Explicit {
                entries: vec![Entry {
                    inner: caller,
                    outer: caller,
                    count: 1,
                }],
                auto: true,
            };
            assert_eq!(
                IdMap::explicit(&g, &own),
                keep,
                "own + auto is keep-id: {}",
                show()
            );
        }
    }

    /// Explicit entries against grants: they map exactly when no two overlap on either side
    /// and every outside id is allowed (and the kernel's limits hold); an error names what is
    /// really wrong; a map maps every entry's ids as asked, only allowed ids, the caller's
    /// own alone, and with `auto` every allowed id.
    pub fn check_explicit(grants: &Grants, explicit: &Explicit) {
        let show = || format!("{grants:?} {explicit:?}");
        let allowed = union(
            grants
                .own
                .map(|o| (u64::from(o), u64::from(o) + 1))
                .into_iter()
                .chain(
                    grants
                        .ranges
                        .iter()
                        .map(|r| (u64::from(r.start), u64::from(r.start) + u64::from(r.count))),
                )
                .collect(),
        );
        let span = |e: &Entry, side: Side| {
            let s = u64::from(match side {
                Side::Inside => e.inner,
                Side::Outside => e.outer,
            });
            (s, s + u64::from(e.count))
        };
        let within = |(s, e): (u64, u64)| {
            let i = allowed.partition_point(|&(gs, _)| gs <= s);
            i > 0 && e <= allowed[i - 1].1
        };
        let entries = &explicit.entries;
        let overlap = |side| !disjoint(entries.iter().map(|e| span(e, side)).collect());
        let valid = !(entries.is_empty() && (!explicit.auto || allowed.is_empty()))
            && !overlap(Side::Inside)
            && !overlap(Side::Outside)
            && entries.iter().all(|e| within(span(e, Side::Outside)));
        let got = IdMap::explicit(grants, explicit);
        let map = match got {
            Ok(map) => {
                assert!(valid, "an invalid ask was mapped: {}", show());
                map
            }
            Err(MapError::TooManyExtents(n)) if valid => {
                assert!(n > IdMap::MAX_EXTENTS, "{}", show());
                return;
            }
            Err(MapError::TooLong(n)) if valid => {
                assert!(n > 4095, "{}", show());
                return;
            }
            Err(MapError::NotGranted { entry, first, last }) => {
                assert!(entries.contains(&entry), "{}", show());
                let (s, e) = span(&entry, Side::Outside);
                assert!(s <= u64::from(first) && u64::from(last) < e && first <= last);
                for id in [first, last] {
                    assert!(
                        !within((u64::from(id), u64::from(id) + 1)),
                        "{id}: {}",
                        show()
                    );
                }
                return;
            }
            Err(MapError::EntriesOverlap {
                side,
                first,
                second,
            }) => {
                let (a, b) = (span(&first, side), span(&second, side));
                assert!(a.0 < b.1 && b.0 < a.1, "{}", show());
                return;
            }
            Err(MapError::Empty) => {
                let nothing = !explicit.auto || allowed.is_empty();
                assert!(entries.is_empty() && nothing, "{}", show());
                return;
            }
            Err(e) => panic!("{e}: {}", show()),
        };
        let outsides: Vec<(u64, u64)> = map.ranges().iter().map(outside).collect();
        check_granted(&map, grants.own, &allowed, &show);
        assert!(outsides.iter().all(|&o| within(o)), "{}", show());
        for e in entries {
            for k in [0, e.count - 1] {
                assert_eq!(
                    map.to_outside(e.inner + k),
                    Some(e.outer + k),
                    "{e}: {}",
                    show()
                );
            }
        }
        let allowed_ids: u64 = allowed.iter().map(|(s, e)| e - s).sum();
        if explicit.auto {
            assert_eq!(
                map.len(),
                allowed_ids,
                "auto maps every allowed id: {}",
                show()
            );
        } else {
            assert_eq!(
                map.len(),
                entries.iter().map(|e| u64::from(e.count)).sum::<u64>()
            );
        }
        if grants.cut_at_ends {
            for x in map.ranges() {
                let (s, e) = outside(x);
                assert!(
                    grants
                        .ranges
                        .iter()
                        .any(|r| u64::from(r.start) <= s
                            && e <= u64::from(r.start) + u64::from(r.count)),
                    "{x} spans two grants: {}",
                    show()
                );
            }
        }
    }

    /// A caller, grants, and entries drawn mostly from them: within, across their edges,
    /// over the caller, overlapping each other, or anywhere.
    pub fn gen_explicit(src: &mut impl Source) -> (Option<u32>, Vec<SubRange>, bool, Explicit) {
        let own = if src.below(4) == 0 {
            None
        } else {
            Some(src.below(300) as u32)
        };
        let ranges: Vec<SubRange> = (0..src.below(5))
            .map(|_| SubRange {
                start: src.below(400) as u32,
                count: 1 + src.below(60) as u32,
            })
            .collect();
        let cut = own.is_none() && src.coin();
        let mut entries = Vec::new();
        for _ in 0..src.below(6) {
            let count = 1 + src.below(20) as u32;
            let outer = match (src.below(4), ranges.is_empty()) {
                (0, false) => {
                    let r = *src.pick(&ranges);
                    r.start + src.below(u64::from(r.count)) as u32
                }
                (1, _) if own.is_some() => own.unwrap().saturating_sub(src.below(3) as u32),
                _ => src.below(500) as u32,
            };
            let count = if src.coin() { 1 } else { count };
            entries.push(Entry {
                inner: src.below(400) as u32,
                outer,
                count,
            });
        }
        let auto = src.coin();
        (own, ranges, cut, Explicit { entries, auto })
    }

    /// Target `idmap_modes`: the modes beside `full`, and explicit entries.
    pub fn fuzz_modes(data: &[u8]) {
        let mut src = Bytes(data);
        let (caller, subs) = gen_full(&mut src);
        check_modes(caller, &subs);
        let (own, ranges, cut_at_ends, explicit) = gen_explicit(&mut src);
        let grants = Grants {
            own,
            ranges: &ranges,
            cut_at_ends,
        };
        check_explicit(&grants, &explicit);
    }

    /// Target `idmap_full`.
    pub fn fuzz_full(data: &[u8]) {
        let (caller, subs) = gen_full(&mut Bytes(data));
        check_full(caller, &subs);
    }

    /// Target `idmap_proc`: the input as /proc/PID/uid_map text, then as extents.
    pub fn fuzz_proc(data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data) {
            check_proc_text(text);
        }
        check_from_ranges(&gen_triples(&mut Bytes(data)));
    }
}

/// `-p/--publish` specs (`become_root::net::ports`).
pub mod ports {
    use super::*;
    use become_root::net::ports::{Proto, Publish, SpecError, parse, parse_all};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    pub const TOKENS: &[&[u8]] = &[
        b"8080",
        b"80",
        b"0",
        b"1",
        b"65535",
        b"65536",
        b"00",
        b":",
        b":",
        b":",
        b"::",
        b"[",
        b"]",
        b"]:",
        b"::1",
        b"127.0.0.1",
        b"0.0.0.0",
        b"192.0.2.1",
        b"ffff",
        b".",
        b"/tcp",
        b"/udp",
        b"/",
        b"tcp",
        b"%",
        b"-",
        b"+",
        b" ",
    ];

    /// Any spec: an accepted one prints back to itself (and its port inside is not 0); a
    /// refused one is named at the start of its message.
    pub fn check_spec(spec: &str) {
        match parse(spec) {
            Ok(p) => {
                assert_ne!(p.ns_port, 0);
                assert_eq!(parse(&p.to_string()), Ok(p), "{spec:?} printed as {p}");
            }
            Err(e) => {
                assert!(e.to_string().starts_with(&format!("{spec}: ")), "{e}");
            }
        }
    }

    /// A spec printed in full, and in its short forms, reads back.
    pub fn check_publish(p: Publish) {
        let full = p.to_string();
        assert_eq!(parse(&full), Ok(p), "{full}");
        let proto = if p.proto == Proto::Udp { "/udp" } else { "" };
        let ports = format!("{}:{}{proto}", p.host_port, p.ns_port);
        let short = match p.host_ip {
            IpAddr::V4(ip) if ip == Ipv4Addr::LOCALHOST => ports,
            IpAddr::V4(ip) => format!("{ip}:{ports}"),
            IpAddr::V6(ip) => format!("[{ip}]:{ports}"),
        };
        assert_eq!(parse(&short), Ok(p), "{short}");
    }

    pub fn gen_publish(src: &mut impl Source) -> Publish {
        let host_ip = match src.below(5) {
            0 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            1 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            2 => IpAddr::V4(Ipv4Addr::from(src.u32())),
            3 => {
                let mapped = Ipv4Addr::from(src.u32()).to_ipv6_mapped();
                IpAddr::V6(*src.pick(&[Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED, mapped]))
            }
            _ => IpAddr::V6(Ipv6Addr::from(
                (u128::from(src.u64()) << 64) | u128::from(src.u64()),
            )),
        };
        let host_port = if src.below(3) == 0 { 0 } else { src.u16() };
        let ns_port = src.u16().max(1);
        let proto = if src.coin() { Proto::Udp } else { Proto::Tcp };
        Publish {
            host_ip,
            host_port,
            ns_port,
            proto,
        }
    }

    /// Several specs: accepted exactly when each is and no two claim the same host port and
    /// protocol on the same or a wildcard address (port 0 never clashes); else the error is
    /// the first spec's that is refused or clashes.
    pub fn check_all(specs: &[String]) {
        let got = parse_all(specs);
        let mut seen: Vec<Publish> = Vec::new();
        for spec in specs {
            let p = match parse(spec) {
                Ok(p) => p,
                Err(e) => {
                    assert_eq!(got, Err(e), "{specs:?}");
                    return;
                }
            };
            let clash = seen.iter().any(|q| {
                p.host_port != 0
                    && p.host_port == q.host_port
                    && p.proto == q.proto
                    && (p.host_ip == q.host_ip
                        || p.host_ip.is_unspecified()
                        || q.host_ip.is_unspecified())
            });
            if clash {
                assert!(
                    matches!(&got, Err(SpecError::Duplicate { spec: s, .. }) if s == spec),
                    "{specs:?}: {got:?}"
                );
                return;
            }
            seen.push(p);
        }
        assert_eq!(got, Ok(seen), "{specs:?}");
    }

    pub fn gen_all(src: &mut impl Source) -> Vec<String> {
        (0..src.below(5))
            .map(|_| {
                let mut p = gen_publish(src);
                if src.coin() {
                    // Few ports and addresses, so that some clash.
                    p.host_port = src.below(3) as u16;
                    p.host_ip = *src.pick(&[
                        IpAddr::V4(Ipv4Addr::LOCALHOST),
                        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    ]);
                }
                if src.below(8) == 0 {
                    format!("{p}x")
                } else {
                    p.to_string()
                }
            })
            .collect()
    }

    /// Target `ports`: the input as a spec, then as the bytes specs are generated from.
    pub fn fuzz(data: &[u8]) {
        if let Ok(spec) = std::str::from_utf8(data) {
            check_spec(spec);
            let specs: Vec<String> = spec.split(',').map(String::from).collect();
            check_all(&specs);
        }
        check_publish(gen_publish(&mut Bytes(data)));
        check_all(&gen_all(&mut Bytes(data)));
    }
}

/// `--bind`, `--ro-bind`, `--tmpfs`, `--copy-up` and `--overlay` specs, with their `\:`
/// `\,` `\\` escapes, and the mount plan made of them (`become_root::mounts`).
pub mod mounts {
    use super::*;
    use become_root::mounts::{FsSpec, MountStep, Options, Prepared, parse, plan, split_escaped};
    use become_root::options::{FsArg, OverlayDriver, Propagation};

    /// `\` before every `\` and every one of `seps`: how a user writes a field.
    pub fn escape(field: &str, seps: &[char]) -> String {
        let mut out = String::new();
        for c in field.chars() {
            if c == '\\' || seps.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    /// A spec as a user writes it for what `parse` made of it.
    pub fn render(spec: &FsSpec) -> FsArg {
        let s = |p: &PathBuf| p.to_str().expect("from a String").to_string();
        match spec {
            FsSpec::Bind { src, dst, readonly } => {
                let text = format!("{}:{}", escape(&s(src), &[':']), escape(&s(dst), &[':']));
                if *readonly {
                    FsArg::RoBind(text)
                } else {
                    FsArg::Bind(text)
                }
            }
            FsSpec::Tmpfs { dir } => FsArg::Tmpfs(s(dir)),
            FsSpec::Overlay {
                lowers,
                target,
                upper,
            } => {
                let lowers: Vec<String> =
                    lowers.iter().map(|l| escape(&s(l), &[':', ','])).collect();
                let mut text = format!("{}:{}", lowers.join(","), escape(&s(target), &[':']));
                if let Some(upper) = upper {
                    text.push(':');
                    text.push_str(&escape(&s(upper), &[':']));
                }
                FsArg::Overlay(text)
            }
        }
    }

    const CHARS: &[char] = &['/', 'a', 'b', ':', ',', '\\', ' ', '.', 'ä', '-'];

    pub const TOKENS: &[&[u8]] = &[
        b"/",
        b"/a",
        b"b",
        b":",
        b":",
        b",",
        b",",
        b"\\",
        b"\\:",
        b"\\,",
        b"\\\\",
        b" ",
        b"\xc3\xa4",
    ];

    /// Fields joined with escapes split back into the same fields.
    pub fn check_split(fields: &[String], sep: char) {
        let joined: Vec<String> = fields.iter().map(|f| escape(f, &[sep])).collect();
        let joined = joined.join(&sep.to_string());
        assert_eq!(split_escaped(&joined, sep), fields, "{joined:?}");
    }

    /// Any text split on a separator: as many fields as unescaped separators plus one, and
    /// splitting the fields' escaped join gives them back.
    pub fn check_split_text(text: &str, sep: char) {
        let fields = split_escaped(text, sep);
        let mut seps = 0;
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                c if c == sep => seps += 1,
                _ => {}
            }
        }
        assert_eq!(fields.len(), seps + 1, "{text:?}");
        check_split(&fields, sep);
    }

    /// Any option value: what parse accepts has no empty path, and writing it back with
    /// escapes gives the same spec.
    pub fn check_arg(arg: &FsArg) {
        let Ok(spec) = parse(arg) else { return };
        let empty = |p: &PathBuf| p.as_os_str().is_empty();
        match &spec {
            FsSpec::Bind { src, dst, readonly } => {
                assert!(!empty(src) && !empty(dst), "{arg:?}");
                assert_eq!(*readonly, matches!(arg, FsArg::RoBind(_)));
            }
            FsSpec::Tmpfs { dir } => assert!(!empty(dir)),
            FsSpec::Overlay {
                lowers,
                target,
                upper,
            } => {
                assert!(!lowers.is_empty() && !lowers.iter().any(empty), "{arg:?}");
                assert!(
                    !empty(target) && !upper.as_ref().is_some_and(empty),
                    "{arg:?}"
                );
            }
        }
        let again = render(&spec);
        assert_eq!(
            parse(&again).ok(),
            Some(spec),
            "{arg:?} written back as {again:?}"
        );
    }

    /// Fields written with escapes parse to exactly those paths, or are refused for an empty
    /// one.
    pub fn check_fields(kind: u8, fields: &[String]) {
        let p = |s: &String| PathBuf::from(s);
        let nonempty = |fs: &[String]| fs.iter().all(|f| !f.is_empty());
        match (kind % 3, fields) {
            (0, [src]) | (0, [src, _]) => {
                let dst = fields.get(1).unwrap_or(src);
                let text = if fields.len() == 1 {
                    escape(src, &[':'])
                } else {
                    format!("{}:{}", escape(src, &[':']), escape(dst, &[':']))
                };
                let want = FsSpec::Bind {
                    src: p(src),
                    dst: p(dst),
                    readonly: true,
                };
                let got = parse(&FsArg::RoBind(text.clone())).ok();
                assert_eq!(got, nonempty(fields).then_some(want), "{text:?}");
            }
            (1, [target, lowers @ ..]) if !lowers.is_empty() => {
                let (lowers, upper) = if lowers.len() > 1 && target.len() % 2 == 0 {
                    (&lowers[..lowers.len() - 1], lowers.last())
                } else {
                    (lowers, None)
                };
                let lowers_text: Vec<String> =
                    lowers.iter().map(|l| escape(l, &[':', ','])).collect();
                let mut text = lowers_text.join(",");
                text.push(':');
                text.push_str(&escape(target, &[':']));
                if let Some(u) = upper {
                    text.push(':');
                    text.push_str(&escape(u, &[':']));
                }
                let ok =
                    nonempty(lowers) && !target.is_empty() && upper.is_none_or(|u| !u.is_empty());
                let want = FsSpec::Overlay {
                    lowers: lowers.iter().map(p).collect(),
                    target: p(target),
                    upper: upper.map(p),
                };
                let got = parse(&FsArg::Overlay(text.clone())).ok();
                assert_eq!(got, ok.then_some(want), "{text:?}");
            }
            _ => {
                for sep in [':', ','] {
                    check_split(fields, sep);
                }
            }
        }
    }

    pub fn gen_fields(src: &mut impl Source) -> Vec<String> {
        (0..1 + src.below(4))
            .map(|_| src.string(CHARS, 6))
            .collect()
    }

    /// The plan keeps the documented order: propagation first, the new root's own mounts,
    /// every filesystem option in command-line order (destinations inside the new root),
    /// pivot_root after them, the chdir last.
    pub fn check_plan(o: &Options) {
        let uppers: Vec<PathBuf> = o
            .filesystem
            .iter()
            .filter_map(|spec| match spec {
                FsSpec::Overlay { upper, .. } => upper.clone(),
                _ => None,
            })
            .collect();
        let steps = plan(o, &Prepared::naming(&uppers));
        let mut at = 0;
        let mut next = |what: &str| -> &MountStep {
            let step = steps
                .get(at)
                .unwrap_or_else(|| panic!("no {what}: {steps:?}"));
            at += 1;
            step
        };
        if o.mount_ns {
            let want = MountStep::SetPropagation(o.propagation.unwrap_or(Propagation::Private));
            assert_eq!(next("propagation"), &want);
        }
        let resolv = |at: PathBuf| {
            o.resolv_conf.as_ref().map(|text| MountStep::ResolvConf {
                at,
                text: text.clone(),
            })
        };
        // --emulate's binfmt_misc and --device's nodes, once /proc and /dev are in place.
        let extras = |at: PathBuf| -> Vec<MountStep> {
            let binfmt = (!o.binfmt.is_empty()).then(|| MountStep::Binfmt {
                at,
                entries: o.binfmt.clone(),
            });
            let devices = o.devices.iter().map(|device| MountStep::Device {
                src: device.src.clone(),
                dst: device.dst.clone(),
            });
            binfmt.into_iter().chain(devices).collect()
        };
        match &o.rootfs {
            None => {
                if o.pid_ns {
                    let want = MountStep::FreshProc { at: "/proc".into() };
                    assert_eq!(next("proc"), &want);
                }
                for want in extras("/proc/sys/fs/binfmt_misc".into()) {
                    assert_eq!(next("binfmt_misc or device"), &want);
                }
                if o.sysfs {
                    let want = MountStep::FreshSys { at: "/sys".into() };
                    assert_eq!(next("sys"), &want);
                }
                if let Some(want) = resolv("/etc/resolv.conf".into()) {
                    assert_eq!(next("resolv.conf"), &want);
                }
            }
            Some(root) => {
                assert_eq!(
                    next("self bind"),
                    &MountStep::RootfsSelfBind { dir: root.clone() }
                );
                let proc = MountStep::RootfsProc {
                    dir: root.clone(),
                    fresh: o.pid_ns,
                };
                assert_eq!(next("proc"), &proc);
                assert_eq!(next("dev"), &MountStep::RootfsDev { dir: root.clone() });
                for want in extras(root.join("proc/sys/fs/binfmt_misc")) {
                    assert_eq!(next("binfmt_misc or device"), &want);
                }
                if let Some(tty) = &o.console {
                    let console = MountStep::Console {
                        at: root.join("dev/console"),
                        tty: tty.clone(),
                    };
                    assert_eq!(next("console"), &console);
                }
                let sys = MountStep::RootfsSys {
                    dir: root.clone(),
                    fresh: o.own_net,
                };
                assert_eq!(next("sys"), &sys);
                let tmpfs = |name, mode| MountStep::RootfsTmpfs {
                    dir: root.clone(),
                    name,
                    mode,
                };
                assert_eq!(next("tmp"), &tmpfs("tmp", 0o1777));
                if o.boot {
                    assert_eq!(next("run"), &tmpfs("run", 0o755));
                }
                if let Some(want) = resolv(root.join("etc/resolv.conf")) {
                    assert_eq!(next("resolv.conf"), &want);
                }
            }
        }
        // The run's cgroup2, before the user's own mounts (which may cover it).
        if o.cgroup2 {
            let at = match &o.rootfs {
                Some(root) => root.join("sys/fs/cgroup"),
                None => "/sys/fs/cgroup".into(),
            };
            assert_eq!(next("cgroup2"), &MountStep::Cgroup2 { at });
        }
        // Inside the new root as paths go: a destination with ".." components still leaves
        // it when the kernel resolves it before pivot_root ("/../etc" becomes "DIR/../etc"),
        // which this does not check.
        let moved = |dst: &Path, got: &Path| match &o.rootfs {
            None => assert_eq!(got, dst),
            Some(root) => {
                assert!(got.starts_with(root), "{got:?} is not inside {root:?}");
                assert_eq!(got, root.join(dst.strip_prefix("/").unwrap_or(dst)));
            }
        };
        for spec in &o.filesystem {
            // A mount point made first (below a fresh mount of the run) is the destination's
            // own, made for the kind of thing the option mounts.
            let mut step = next("filesystem option");
            if let MountStep::MountPoint {
                base,
                rest,
                source,
                what,
            } = step
            {
                assert!(rest.components().next().is_some(), "{step:?}");
                moved(spec.target(), &base.join(rest));
                match spec {
                    FsSpec::Bind { src, .. } => {
                        assert_eq!((source.as_ref(), *what), (Some(src), "bind destination"))
                    }
                    _ => assert_eq!(source, &None),
                }
                step = next("filesystem option after its mount point");
            }
            match (spec, step) {
                (
                    FsSpec::Bind { src, dst, readonly },
                    MountStep::Bind {
                        src: s,
                        dst: d,
                        readonly: r,
                    },
                ) => {
                    assert_eq!((src, readonly), (s, r));
                    moved(dst, d);
                }
                (FsSpec::Tmpfs { dir }, MountStep::Tmpfs { dir: d, mode }) => {
                    assert_eq!(*mode, 0o755);
                    moved(dir, d);
                }
                (
                    FsSpec::Overlay {
                        lowers,
                        target,
                        upper,
                    },
                    MountStep::Overlay {
                        lowers: l,
                        target: t,
                        upper: u,
                        driver,
                        report,
                    },
                ) => {
                    assert_eq!(lowers, l);
                    assert_eq!(upper.as_ref(), u.as_ref().map(|u| &u.path));
                    assert_eq!(*driver, o.overlay_driver.unwrap_or(OverlayDriver::Auto));
                    assert_eq!(*report, o.verbose);
                    moved(target, t);
                }
                (spec, step) => panic!("{spec:?} planned as {step:?}"),
            }
        }
        if let Some(root) = &o.rootfs {
            assert_eq!(
                next("pivot_root"),
                &MountStep::PivotRoot { dir: root.clone() }
            );
        }
        let chdir = o.chdir.clone().or(o.rootfs.as_ref().map(|_| "/".into()));
        if let Some(dir) = chdir {
            assert_eq!(next("chdir"), &MountStep::Chdir { dir });
        }
        assert_eq!(at, steps.len(), "nothing else: {steps:?}");
    }

    pub fn gen_options(src: &mut impl Source) -> Options {
        let filesystem = (0..src.below(5))
            .map(|_| match src.below(3) {
                0 => FsSpec::Bind {
                    src: gen_path(src),
                    dst: gen_path(src),
                    readonly: src.coin(),
                },
                1 => FsSpec::Tmpfs { dir: gen_path(src) },
                _ => FsSpec::Overlay {
                    lowers: (0..1 + src.below(3)).map(|_| gen_path(src)).collect(),
                    target: gen_path(src),
                    upper: src.coin().then(|| gen_path(src)),
                },
            })
            .collect();
        Options {
            mount_ns: src.coin(),
            pid_ns: src.coin(),
            own_net: src.coin(),
            propagation: *src.pick(&[None, Some(Propagation::Private), Some(Propagation::Slave)]),
            resolv_conf: src.coin().then(|| "nameserver 10.0.2.3\n".to_string()),
            filesystem,
            rootfs: src.coin().then(|| gen_path(src)),
            sysfs: src.coin(),
            overlay_driver: *src.pick(&[
                None,
                Some(OverlayDriver::Auto),
                Some(OverlayDriver::Native),
                Some(OverlayDriver::Fuse),
            ]),
            chdir: src.coin().then(|| gen_path(src)),
            verbose: src.coin(),
            cgroup2: src.coin(),
            boot: src.coin(),
            console: src.coin().then(|| "/dev/pts/7".into()),
            binfmt: match src.coin() {
                true => vec![":qemu-aarch64:M::\\x7fELF:\\xff\\xff\\xff\\xff:/q:POF".into()],
                false => Vec::new(),
            },
            devices: match src.coin() {
                true => vec![become_root::mounts::DeviceSpec {
                    src: "/dev/fuse".into(),
                    dst: gen_path(src),
                }],
                false => Vec::new(),
            },
        }
    }

    fn gen_path(src: &mut impl Source) -> PathBuf {
        let mut s = String::new();
        if src.below(4) != 0 {
            s.push('/');
        }
        s.push_str(&src.string(&['a', 'b', '/', '.', ' '], 8));
        if s.is_empty() {
            s.push('x');
        }
        PathBuf::from(s)
    }

    /// Target `mount_spec`: the input as each kind of option value and as text to split,
    /// then as the bytes fields and a plan are generated from.
    pub fn fuzz(data: &[u8]) {
        if let Some((&kind, rest)) = data.split_first()
            && let Ok(text) = std::str::from_utf8(rest)
        {
            let t = text.to_string();
            let arg = match kind % 5 {
                0 => FsArg::Bind(t),
                1 => FsArg::RoBind(t),
                2 => FsArg::Tmpfs(t),
                3 => FsArg::CopyUp(t),
                _ => FsArg::Overlay(t),
            };
            check_arg(&arg);
            check_split_text(text, if kind & 8 == 0 { ':' } else { ',' });
        }
        let mut src = Bytes(data);
        let kind = src.byte();
        check_fields(kind, &gen_fields(&mut src));
        check_plan(&gen_options(&mut Bytes(data)));
    }
}

/// Session state files, session names and /proc/PID/stat (`become_root::session`).
pub mod session {
    use super::*;
    use become_root::session::{
        Containers, Proc, Record, check_name, parse_stat, render_json, render_table,
    };

    /// The namespace kinds a session records.
    const KINDS: &[&str] = &["user", "mnt", "pid", "net", "uts", "ipc", "cgroup"];
    const NAME_CHARS: &[char] = &['a', 'Z', '0', '9', '_', '.', '-', '/', ' ', 'ä', '\n'];

    /// A session name is one that is safe as a file name in the state directory, and only
    /// such: 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit, not all digits.
    pub fn check_session_name(name: &str) {
        let b = name.as_bytes();
        let allowed = (1..=64).contains(&b.len())
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
            && !b.iter().all(u8::is_ascii_digit);
        assert_eq!(check_name(name).is_ok(), allowed, "{name:?}");
        if allowed {
            assert!(!name.contains('/') && name != "." && name != "..");
            assert!(!name.starts_with('-') && !name.starts_with('.'));
        }
    }

    /// A record become-root writes reads back as itself, and `--list` shows it (its
    /// `--json` is JSON).
    pub fn check_record(r: &Record) {
        let text = r.render();
        assert_eq!(Record::parse(&text).as_ref(), Ok(r), "{text}");
        let dir = Path::new("/run/user/1000/become-root");
        let list = render_json(dir, std::slice::from_ref(r));
        json::check(&list).unwrap_or_else(|e| panic!("{e}: {list}"));
        assert_eq!(render_table(std::slice::from_ref(r)).lines().count(), 2);
    }

    pub fn gen_record(src: &mut impl Source) -> Record {
        let mut name = src.string(&['a', 'Z', '0', '_', '.', '-'], 64);
        if check_name(&name).is_err() {
            name = format!("s{}", name.get(..name.len().min(63)).unwrap_or(""));
        }
        let supervisor = Proc {
            pid: src.u32() as i32,
            start: src.u64(),
        };
        let holder = src.coin().then(|| Proc {
            pid: src.u32() as i32,
            start: src.u64(),
        });
        let namespaces = (0..src.below(8))
            .map(|_| {
                let kind = if src.below(4) == 0 {
                    src.string(&['x', '=', '_', '[', ']', 'ä'], 4)
                } else {
                    src.pick(KINDS).to_string()
                };
                (kind, src.u64())
            })
            .collect();
        let net = match src.below(4) {
            0 => None,
            1 => Some(src.string(&['a', ' ', '=', ':', 'ä', '\t'], 6)),
            _ => Some(src.pick(&["none", "slirp4netns", "pasta"]).to_string()),
        };
        Record {
            name,
            supervisor,
            holder,
            pid_ns: src.u64(),
            created: src.u64(),
            namespaces,
            net,
            net_down: src
                .coin()
                .then(|| src.string(&['a', ' ', '=', ':', 'ä', '9'], 12)),
            bypass: src
                .coin()
                .then(|| src.string(&['1', '0', '.', '/', ' ', 'i', 'p', '6', '='], 16)),
            cgroup: src
                .coin()
                .then(|| src.string(&['/', ' ', '=', 'b', 'ä', '9'], 12)),
            limits: src.coin().then(|| src.string(&['m', ' ', '=', '9'], 12)),
            boot: src.coin(),
            stop_timeout: src.coin().then(|| src.u64()),
            ports: (0..src.below(3))
                .map(|_| src.string(&['1', '.', ':', '-', '>', '/', 't'], 10))
                .filter(|p| !p.is_empty())
                .collect(),
            ended: src
                .coin()
                .then(|| src.string(&['a', ' ', '=', '3', 'ä'], 12)),
            detached: src.coin(),
            containers: src.coin().then(|| Containers {
                map: src.pick(&["auto", "keep-id", "single"]).to_string(),
                home: src
                    .coin()
                    .then(|| src.string(&['/', ' ', '=', 'h', 'ä', '.'], 12)),
                made_with: src.string(&['-', ' ', '=', '/', 't', 'ä', ':'], 16),
            }),
        }
    }

    pub const TOKENS: &[&[u8]] = &[
        b"become-root session 1\n",
        b"become-root session 1\n",
        b"name=",
        b"supervisor=",
        b"holder=",
        b"pid_ns=",
        b"created=",
        b"namespaces=",
        b"net=",
        b"net_down=",
        b"detached=",
        b"containers=",
        b"containers_home=",
        b"containers_made_with=",
        b"yes",
        b"build",
        b"user:4026532001",
        b"mnt:",
        b"=",
        b" ",
        b"\n",
        b"\n",
        b"\r",
        b"-",
        b"+",
        b"10",
        b"4294967295",
        b"18446744073709551616",
    ];

    /// Any state file text: a record it gives renders to a file that reads back the same,
    /// unless a name or net value ends in a carriage return on the last line (which `lines`
    /// would drop once written with a newline; become-root never writes one).
    pub fn check_text(text: &str) {
        let Ok(r) = Record::parse(text) else { return };
        let first = r.render();
        assert_eq!(
            text.lines().next(),
            first.lines().next(),
            "the first line names the format"
        );
        let representable =
            !r.name.ends_with('\r') && !r.net.as_ref().is_some_and(|n| n.ends_with('\r'));
        if representable {
            check_record(&r);
        }
    }

    /// /proc/PID/stat as the kernel writes it (fs/proc/array.c, `do_task_stat`): pid, the
    /// command name in parentheses, unescaped, then the numeric fields; field 22 is the
    /// start time.
    pub fn render_stat(pid: i32, comm: &[u8], state: char, fields: &[i64], start: u64) -> Vec<u8> {
        let mut out = format!("{pid} (").into_bytes();
        out.extend_from_slice(comm);
        out.extend_from_slice(format!(") {state}").as_bytes());
        for (i, f) in fields.iter().enumerate() {
            out.extend_from_slice(format!(" {f}").as_bytes());
            if i == 17 {
                out.extend_from_slice(format!(" {start}").as_bytes());
            }
        }
        out.push(b'\n');
        out
    }

    /// Whatever the command name holds (spaces, parentheses, newlines, bytes that are not
    /// UTF-8), the state and the start time are read.
    pub fn check_stat(pid: i32, comm: &[u8], state: char, fields: &[i64], start: u64) {
        let stat = render_stat(pid, comm, state, fields, start);
        assert_eq!(
            parse_stat(&stat),
            Some((state, start)),
            "{}",
            stat.escape_ascii()
        );
        // Without the start time (the fields up to 21 only): nothing, never another field.
        let mut cut = format!("{pid} (").into_bytes();
        cut.extend_from_slice(comm);
        cut.extend_from_slice(format!(") {state}").as_bytes());
        for f in &fields[..18] {
            cut.extend_from_slice(format!(" {f}").as_bytes());
        }
        assert_eq!(parse_stat(&cut), None, "{}", cut.escape_ascii());
    }

    pub fn gen_stat(src: &mut impl Source) -> (i32, Vec<u8>, char, Vec<i64>, u64) {
        let pid = 1 + src.below(4_194_304) as i32;
        let comm = src.text(b"ab )(\n\t\xc3\xa4\xff:-", 16);
        let state = *src.pick(&['R', 'S', 'D', 'Z', 'T', 't', 'X', 'I', 'P', 'W', 'K']);
        let fields = (0..18 + 1 + src.below(34))
            .map(|_| match src.below(4) {
                0 => -1,
                1 => -(src.below(100) as i64),
                _ => src.u32() as i64,
            })
            .collect();
        (pid, comm, state, fields, src.u64())
    }

    /// Target `session_record`: the input as a state file, then as the bytes a record and a
    /// session name are generated from.
    pub fn fuzz_record(data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data) {
            check_text(text);
            check_session_name(text);
        }
        check_record(&gen_record(&mut Bytes(data)));
        let mut src = Bytes(data);
        check_session_name(&src.string(NAME_CHARS, 70));
    }

    /// Target `proc_stat`: the input as /proc/PID/stat, then as the bytes one is generated
    /// from.
    pub fn fuzz_stat(data: &[u8]) {
        if parse_stat(data).is_some() {
            assert!(data.contains(&b')'), "the fields follow the command name");
        }
        let (pid, comm, state, fields, start) = gen_stat(&mut Bytes(data));
        check_stat(pid, &comm, state, &fields, start);
    }
}

/// /proc/PID/mountinfo (`become_root::mountinfo`).
pub mod mountinfo {
    use super::*;
    use become_root::mountinfo::{Entry, at_or_below, parse, top_at, unescape};
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    /// How the kernel writes a path in mountinfo (`seq_path` with " \t\n\\"): those four as
    /// `\` and three octal digits, every other byte as it is.
    pub fn escape(path: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(path.len());
        for &b in path {
            if b" \t\n\\".contains(&b) {
                out.extend_from_slice(format!("\\{b:03o}").as_bytes());
            } else {
                out.push(b);
            }
        }
        out
    }

    /// One mount as the kernel lists it (`show_mountinfo`).
    #[derive(Debug, Clone)]
    pub struct Mount {
        pub id: u64,
        pub parent: u64,
        pub root: Vec<u8>,
        pub point: Vec<u8>,
        pub options: String,
        pub optional: Vec<String>,
        pub fs_type: String,
        pub source: Vec<u8>,
    }

    pub fn render_line(m: &Mount) -> Vec<u8> {
        let mut out = format!("{} {} 0:{} ", m.id, m.parent, m.id % 256).into_bytes();
        out.extend(escape(&m.root));
        out.push(b' ');
        out.extend(escape(&m.point));
        out.extend_from_slice(format!(" {}", m.options).as_bytes());
        for f in &m.optional {
            out.extend_from_slice(format!(" {f}").as_bytes());
        }
        out.extend_from_slice(format!(" - {} ", m.fs_type).as_bytes());
        out.extend(escape(&m.source));
        out.extend_from_slice(b" rw,seclabel");
        out
    }

    /// Mounts listed as the kernel lists them read back as they are, mount points byte for
    /// byte whatever they hold; the lookups by path agree with the list.
    pub fn check_mounts(mounts: &[Mount]) {
        let mut text = Vec::new();
        for m in mounts {
            text.extend(render_line(m));
            text.push(b'\n');
        }
        let want: Vec<Entry> = mounts
            .iter()
            .map(|m| Entry {
                id: m.id,
                parent: m.parent,
                root: PathBuf::from(OsString::from_vec(m.root.clone())),
                mount_point: PathBuf::from(OsString::from_vec(m.point.clone())),
                options: m.options.clone(),
                fs_type: m.fs_type.clone(),
            })
            .collect();
        let entries = parse(&text);
        assert_eq!(entries, want, "{}", text.escape_ascii());
        for e in &entries {
            let last = entries
                .iter()
                .rev()
                .find(|x| x.mount_point == e.mount_point);
            assert_eq!(top_at(&entries, &e.mount_point), last.map(|x| x.id));
            assert!(at_or_below(&entries, &e.mount_point).contains(&e));
            let flags: Vec<&str> = e.options.split(',').collect();
            assert!(flags.iter().all(|f| e.has(f)));
        }
    }

    pub fn gen_mounts(src: &mut impl Source) -> Vec<Mount> {
        fn path(src: &mut impl Source) -> Vec<u8> {
            let mut p = vec![b'/'];
            p.extend(src.text(b"a/ \t\n\\04\xe9\xff-", 12));
            p
        }
        (0..src.below(6))
            .map(|_| {
                let options: Vec<&str> = (0..1 + src.below(4))
                    .map(|_| *src.pick(&["rw", "ro", "nosuid", "nodev", "noexec", "relatime"]))
                    .collect();
                let optional = (0..src.below(3))
                    .map(|_| {
                        let f = *src.pick(&["shared:", "master:", "propagate_from:", "unbindable"]);
                        if f.ends_with(':') {
                            format!("{f}{}", 1 + src.below(99))
                        } else {
                            f.to_string()
                        }
                    })
                    .collect();
                Mount {
                    id: src.u32().into(),
                    parent: src.u32().into(),
                    root: path(src),
                    point: path(src),
                    options: options.join(","),
                    optional,
                    fs_type: src
                        .pick(&["ext4", "tmpfs", "fuse.fuse-overlayfs", "overlay"])
                        .to_string(),
                    source: path(src),
                }
            })
            .collect()
    }

    /// Any text: every entry has an absolute mount point, no more entries than lines; the
    /// kernel's escaping of any bytes unescapes back to them.
    pub fn check_text(text: &[u8]) {
        let entries = parse(text);
        let lines = text.split(|&b| b == b'\n').count();
        assert!(entries.len() <= lines);
        for e in &entries {
            assert!(
                e.mount_point.as_os_str().as_bytes().starts_with(b"/"),
                "{e:?}"
            );
        }
        assert_eq!(unescape(&escape(text)), text);
    }

    /// Target `mountinfo`: the input as mountinfo text, then as the bytes mounts are
    /// generated from.
    pub fn fuzz(data: &[u8]) {
        check_text(data);
        check_mounts(&gen_mounts(&mut Bytes(data)));
    }
}

/// Kernel releases (`become_root::kernel::Version`).
pub mod kernel {
    use super::*;
    use become_root::kernel::Version;

    /// Any release string: a version it gives is what its leading numbers say, prints as
    /// MAJOR.MINOR, and reads back from MAJOR.MINOR.PATCH.
    pub fn check_release(text: &str) {
        let Some(v) = Version::parse(text) else {
            return;
        };
        assert!(text.starts_with(|c: char| c.is_ascii_digit()), "{text:?}");
        assert_eq!(v.to_string(), format!("{}.{}", v.major, v.minor));
        let full = format!("{}.{}.{}", v.major, v.minor, v.patch);
        assert_eq!(Version::parse(&full), Some(v), "{text:?}");
    }

    /// `uname -r` as kernels print it: MAJOR.MINOR[.PATCH] then anything that does not
    /// continue the number ("-27-amd64", "+", "-rc1").
    pub fn check_version(v: Version, form: u8, suffix: &str) {
        let (text, want) = match form % 3 {
            0 => (format!("{}.{}.{}{suffix}", v.major, v.minor, v.patch), v),
            1 => (
                format!("{}.{}{suffix}", v.major, v.minor),
                Version { patch: 0, ..v },
            ),
            _ => (
                format!("{}.{}.{suffix}", v.major, v.minor),
                Version { patch: 0, ..v },
            ),
        };
        assert_eq!(Version::parse(&text), Some(want), "{text:?}");
        let order = (v.major, v.minor, v.patch).cmp(&(want.major, want.minor, want.patch));
        assert_eq!(v.cmp(&want), order);
    }

    pub fn gen_version(src: &mut impl Source) -> (Version, u8, String) {
        fn number(src: &mut impl Source) -> u32 {
            match src.below(3) {
                0 => src.below(20) as u32,
                1 => src.below(1000) as u32,
                _ => src.u32(),
            }
        }
        let v = Version {
            major: number(src),
            minor: number(src),
            patch: number(src),
        };
        let form = src.byte();
        let mut suffix = src.string(&['-', '+', 'r', 'c', '1', '.', '_', 'ä', ' '], 10);
        if suffix.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            suffix.insert(0, '-');
        }
        (v, form, suffix)
    }

    /// Target `kernel_version`.
    pub fn fuzz(data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data) {
            check_release(text);
        }
        let (v, form, suffix) = gen_version(&mut Bytes(data));
        check_version(v, form, &suffix);
    }
}

/// A JSON checker, for the `--json` outputs: accepts one JSON value (RFC 8259) and nothing
/// else.
pub mod json {
    pub fn check(text: &str) -> Result<(), String> {
        let mut at = 0;
        value(text, &mut at)?;
        ws(text, &mut at);
        if at == text.len() {
            Ok(())
        } else {
            Err(format!("junk at {at}"))
        }
    }

    fn peek(text: &str, at: usize) -> Option<u8> {
        text.as_bytes().get(at).copied()
    }

    fn ws(text: &str, at: &mut usize) {
        while peek(text, *at).is_some_and(|c| b" \t\n\r".contains(&c)) {
            *at += 1;
        }
    }

    fn eat(text: &str, at: &mut usize, c: u8) -> Result<(), String> {
        ws(text, at);
        if peek(text, *at) == Some(c) {
            *at += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at {at}", c as char))
        }
    }

    /// The elements of an object or array, after its opening bracket.
    fn elements(
        text: &str,
        at: &mut usize,
        close: u8,
        mut element: impl FnMut(&str, &mut usize) -> Result<(), String>,
    ) -> Result<(), String> {
        ws(text, at);
        if peek(text, *at) == Some(close) {
            *at += 1;
            return Ok(());
        }
        loop {
            ws(text, at);
            element(text, at)?;
            ws(text, at);
            match peek(text, *at) {
                Some(b',') => *at += 1,
                Some(c) if c == close => {
                    *at += 1;
                    return Ok(());
                }
                _ => return Err(format!("expected ',' or '{}' at {at}", close as char)),
            }
        }
    }

    fn value(text: &str, at: &mut usize) -> Result<(), String> {
        ws(text, at);
        match peek(text, *at) {
            Some(b'{') => {
                *at += 1;
                elements(text, at, b'}', |text, at| {
                    string(text, at)?;
                    eat(text, at, b':')?;
                    value(text, at)
                })
            }
            Some(b'[') => {
                *at += 1;
                elements(text, at, b']', value)
            }
            Some(b'"') => string(text, at).map(drop),
            Some(b't' | b'f' | b'n') => {
                for word in ["true", "false", "null"] {
                    if text[*at..].starts_with(word) {
                        *at += word.len();
                        return Ok(());
                    }
                }
                Err(format!("bad word at {at}"))
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = *at;
                *at += 1;
                while peek(text, *at).is_some_and(|c| b"0123456789.eE+-".contains(&c)) {
                    *at += 1;
                }
                let n = &text[start..*at];
                let digits = n.strip_prefix('-').unwrap_or(n);
                let leading_zero = digits.len() > 1
                    && digits.starts_with('0')
                    && !digits[1..].starts_with(['.', 'e', 'E']);
                if leading_zero || n.parse::<f64>().is_err() {
                    return Err(format!("bad number {n}"));
                }
                Ok(())
            }
            _ => Err(format!("no value at {at}")),
        }
    }

    /// A string at `at`; returns what it says.
    pub fn string(text: &str, at: &mut usize) -> Result<String, String> {
        if peek(text, *at) != Some(b'"') {
            return Err(format!("no string at {at}"));
        }
        *at += 1;
        let mut out = String::new();
        let mut chars = text[*at..].chars();
        while let Some(c) = chars.next() {
            *at += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = chars.next().ok_or("bad escape")?;
                    *at += 1;
                    match e {
                        '"' | '\\' | '/' => out.push(e),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'u' => {
                            let hex = text.get(*at..*at + 4).ok_or("short \\u")?;
                            let n = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            out.push(char::from_u32(n).ok_or("a lone surrogate")?);
                            *at += 4;
                            chars = text[*at..].chars();
                        }
                        _ => return Err(format!("bad escape at {at}")),
                    }
                }
                c if (c as u32) < 0x20 => return Err(format!("raw control character at {at}")),
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }
}

/// `subid check`, `show`, `next` and `scan` (`become_root::audit`) over any files.
pub mod audit {
    use super::*;
    use become_root::audit::{self as lib, Accounts, RangeIndex, Which};
    use become_root::subid as subid_lib;

    pub const TOKENS: &[&[u8]] = &[
        b"alice",
        b"bob",
        b"root",
        b"1000",
        b"01000",
        b"0",
        b"1",
        b":",
        b":",
        b":",
        b":x:",
        b"\n",
        b"\n",
        b"\n",
        b"\0",
        b"\r",
        b" ",
        b"+",
        b"-",
        b"0x",
        b"100000",
        b"165536",
        b"65536",
        b"4294967295",
        b"9999999999999999999",
        b"18446744073709551616",
        b"\xfe",
    ];

    /// (name, id) of each passwd or group line, as `Accounts` documents it reads them.
    fn account_lines(text: &[u8]) -> Vec<(&[u8], u32)> {
        text.split(|&b| b == b'\n')
            .filter_map(|line| {
                let mut fields = line.splitn(4, |&b| b == b':');
                let name = fields.next()?;
                fields.next()?;
                let id = fields.next()?;
                // Digits only, any number of leading zeros (as glibc's strtoul reads them).
                let plain = !id.is_empty() && id.iter().all(u8::is_ascii_digit);
                if name.is_empty() || matches!(name[0], b'+' | b'-') || !plain {
                    return None;
                }
                let id: u64 = std::str::from_utf8(id).ok()?.parse().ok()?;
                Some((name, u32::try_from(id).ok()?))
            })
            .collect()
    }

    fn check_accounts(passwd: &[u8], group: &[u8], accounts: &Accounts) {
        let users = account_lines(passwd);
        for &(name, uid) in &users {
            let first = users.iter().find(|(n, _)| *n == name).map(|&(_, u)| u);
            assert_eq!(accounts.uid_of(name), first, "{}", name.escape_ascii());
            let names: Vec<&[u8]> = users
                .iter()
                .filter(|(_, u)| *u == uid)
                .map(|(n, _)| *n)
                .collect();
            assert_eq!(accounts.names_of(uid), names, "uid {uid}");
        }
        assert_eq!(accounts.uid_of(b"\xffno one\xff"), None);
        let _ = group;
    }

    /// Every allocated range is inside the id space and on a line of the file.
    fn check_allocated(text: &[u8]) -> Vec<lib::Allocated<'_>> {
        let lines = physical_lines(text).len();
        let ranges = lib::allocated(text);
        for a in &ranges {
            assert!(a.start < a.end && a.end <= ID_LIMIT + 1, "{a:?}");
            assert!(a.line >= 1 && a.line <= lines, "{a:?}");
        }
        ranges
    }

    /// The next range is on useradd's grid, above everything ever allocated in either file,
    /// inside the id space, and holds no account's id; no room means no slot of the grid
    /// above the highest allocation is free of accounts.
    fn check_next(subuid: &[u8], subgid: &[u8], passwd: &[u8], group: &[u8], count: u64) {
        let accounts = Accounts::parse(passwd, group);
        let highest = lib::allocated(subuid)
            .iter()
            .chain(&lib::allocated(subgid))
            .map(|a| a.end)
            .max()
            .unwrap_or(0);
        let ids: Vec<u64> = account_lines(passwd)
            .iter()
            .chain(&account_lines(group))
            .map(|&(_, id)| u64::from(id))
            .collect();
        let free = |start: u64| !ids.iter().any(|&id| (start..start + count).contains(&id));
        match lib::next_range(subuid, subgid, &accounts, count) {
            Ok(span) => {
                assert_eq!(span.count, count);
                assert!(span.start >= lib::NEXT_BASE);
                assert_eq!((span.start - lib::NEXT_BASE) % lib::NEXT_STEP, 0);
                assert!(span.start >= highest, "{span} below {highest}");
                assert!(span.start + count <= ID_LIMIT);
                assert!(free(span.start), "{span} holds an account's id");
            }
            Err(no) => {
                assert_eq!((no.highest, no.count), (highest, count));
                // The first slot of the grid at or above the highest allocation.
                let above = highest.saturating_sub(lib::NEXT_BASE);
                let mut start = lib::NEXT_BASE + above.div_ceil(lib::NEXT_STEP) * lib::NEXT_STEP;
                while start + count <= ID_LIMIT {
                    assert!(!free(start), "{start}+{count} was free: {no}");
                    start += lib::NEXT_STEP;
                }
            }
        }
    }

    /// `subid show`'s reading of a user's lines and become-root's are the same reading.
    fn check_show(text: &[u8], name: &str, uid: u32) {
        // No other accounts: a line granted to another account too (ambiguous-owner, which
        // newuidmap's reading does not see) cannot come up.
        let accounts = lib::Accounts::parse(b"", b"");
        let (ranges, problems) = lib::user_ranges(text, &[name.as_bytes()], Some(uid), &accounts);
        let parsed = subid_lib::caller_ranges(text, Path::new("f"), name, uid);
        let ranges: Vec<_> = ranges.iter().map(|r| r.range).collect();
        assert_eq!(ranges, parsed.ranges, "{}", text.escape_ascii());
        let problem_lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        let error_lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
        if subid_lib::split_lines(text).unreadable_at.is_some() {
            assert_eq!(problem_lines.last(), error_lines.last());
        } else {
            assert_eq!(problem_lines, error_lines, "{}", text.escape_ascii());
        }
    }

    pub fn check(subuid: &[u8], subgid: &[u8], passwd: &[u8], group: &[u8]) {
        for text in [subuid, subgid] {
            let mut lines = Vec::new();
            let unreadable = lib::for_each_line(text, |n, line, spliced| {
                lines.push((n, line.into_owned(), spliced));
            });
            let split = subid_lib::split_lines(text);
            let want: Vec<_> = split
                .lines
                .iter()
                .map(|l| (l.number, l.text.to_vec(), l.spliced))
                .collect();
            assert_eq!(
                lines,
                want,
                "for_each_line is split_lines: {}",
                text.escape_ascii()
            );
            assert_eq!(unreadable, split.unreadable_at);
        }
        let accounts = Accounts::parse(passwd, group);
        check_accounts(passwd, group, &accounts);

        let findings = lib::check(subuid, subgid, &accounts);
        for f in &findings {
            let text = match f.file {
                Which::Subuid => subuid,
                Which::Subgid => subgid,
            };
            assert!(f.line >= 1 && f.line <= physical_lines(text).len(), "{f:?}");
            let mut out = Vec::new();
            lib::render_text(f, "/etc/subuid", &mut out).unwrap();
            assert!(out.ends_with(b"\n"));
        }
        let mut out = Vec::new();
        let paths = lib::Paths {
            subuid: "/etc/subuid",
            subgid: "/etc/sub\"gid\n",
            passwd: "/etc/passwd",
            group: "/etc/group",
        };
        lib::render_json(&findings, &paths, &mut out).unwrap();
        let out = String::from_utf8(out).expect("JSON is UTF-8");
        json::check(&out).unwrap_or_else(|e| panic!("{e}: {out}"));

        let mut all = check_allocated(subuid);
        all.extend(check_allocated(subgid));
        let index = RangeIndex::new(all.clone());
        assert_eq!(index.is_empty(), all.is_empty());
        let mut probes = vec![0, u32::MAX - 1, u32::MAX];
        for a in &all {
            for id in [a.start, a.end - 1, a.end] {
                probes.extend(u32::try_from(id));
            }
        }
        for id in probes {
            let key = |a: &lib::Allocated<'_>| (a.line, a.start, a.end, a.owner.to_vec());
            let mut got: Vec<_> = index.containing(id).into_iter().map(key).collect();
            let mut want: Vec<_> = all
                .iter()
                .filter(|a| a.start <= u64::from(id) && u64::from(id) < a.end)
                .map(key)
                .collect();
            assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "by line");
            got.sort();
            want.sort();
            assert_eq!(got, want, "ranges containing {id}");
        }
        for count in [1, lib::NEXT_STEP, 1 << 31] {
            check_next(subuid, subgid, passwd, group, count);
        }
        for &(name, uid) in subid::CALLERS {
            check_show(subuid, name, uid);
        }
    }

    /// The json_string escaping reads back as the string.
    pub fn check_json_string(s: &str) {
        let quoted = lib::json_string(s);
        let mut at = 0;
        assert_eq!(json::string(&quoted, &mut at).as_deref(), Ok(s), "{quoted}");
        assert_eq!(at, quoted.len());
    }

    /// Target `subid_audit`: the input as subuid, subgid, passwd and group text, split at
    /// 0xfe bytes.
    pub fn fuzz(data: &[u8]) {
        let mut parts = data.splitn(4, |&b| b == 0xfe);
        let mut next = || parts.next().unwrap_or(b"");
        let (subuid, subgid, passwd, group) = (next(), next(), next(), next());
        check(subuid, subgid, passwd, group);
        check_json_string(&String::from_utf8_lossy(data));
    }
}

/// A fuzz target: its name (`fuzz/fuzz_targets/NAME.rs`, `fuzz/corpus/NAME/`) and body.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    ("subid_file", subid::fuzz_file),
    ("subid_line", subid::fuzz_line),
    ("subid_audit", audit::fuzz),
    ("getsubids", getsubids::fuzz),
    ("idmap_full", idmap::fuzz_full),
    ("idmap_proc", idmap::fuzz_proc),
    ("idmap_modes", idmap::fuzz_modes),
    ("ports", ports::fuzz),
    ("mount_spec", mounts::fuzz),
    ("session_record", session::fuzz_record),
    ("proc_stat", session::fuzz_stat),
    ("mountinfo", mountinfo::fuzz),
    ("kernel_version", kernel::fuzz),
];
