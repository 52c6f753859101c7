//! Tests of the `subid` executable, run as a user would run it: through
//! `CARGO_BIN_EXE_subid`, on crafted files under `tests/data/subid/` passed with --subuid,
//! --subgid, --passwd and --group. Nothing reads or changes the machine's /etc files, except
//! `show` with `--subid-source=getsubids`, which only reads.
//!
//! `scan` needs files owned by subordinate ids, which only root can create: run as root, those
//! tests build a tree in a temporary directory (removed at the end); otherwise the runner reports
//! them as ignored, with the reason, unless `BECOME_ROOT_MUST_WORK=1` makes that a failure
//! (tests/common, `tests!`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const SUBID: &str = env!("CARGO_BIN_EXE_subid");
const BECOME_ROOT: &str = env!("CARGO_BIN_EXE_become-root");

common::tests! {
    []
        clean_stock_files_have_no_findings,
        every_crafted_file_has_its_finding,
        each_case_has_a_kind_and_status_follows_severity,
        every_crafted_file_is_tested,
        every_kind_is_covered,
        json_is_well_formed_and_says_what_the_text_says,
        json_of_an_overlap_in_full,
        json_escapes_what_json_must,
        json::the_parser_itself,
        next_table,
        next_names_the_user_in_the_command,
        next_with_no_room_left_says_so,
        show_by_name_lists_lines_by_name_uid_and_other_login,
        show_by_uid_is_the_same,
        show_without_gids_exits_1_with_a_hint,
        show_an_owner_that_is_no_account,
        show_lists_an_ambiguous_line_for_both_accounts,
        show_defaults_to_the_caller,
        show_asks_the_name_service_through_getent,
        show_getsubids_reads_no_files,
        scan_of_a_missing_path_exits_2,
        become_root_named_subid_is_subid,
        help_and_version_exit_0,
        usage_errors_exit_2_with_what_why_and_hint,
        a_file_named_but_missing_exits_2,
        man_page_names_every_option;
    [Tool("getsubids")] show_through_getsubids;
    [Root]
        scan_finds_set_id_files_owned_by_subordinate_ids,
        scan_follows_links_only_when_asked,
        scan_of_a_clean_tree_exits_0;
    [MountNs] scan_stays_on_one_filesystem;
}

/// What a run printed and how it ended.
#[derive(Debug)]
struct Out {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/subid")
}

/// Run `program` with `args` in the test data directory, so that paths in the output are the
/// short relative ones of the tables.
fn run_with(program: &Path, args: &[&str]) -> Out {
    let out = Command::new(program)
        .args(args)
        .current_dir(data())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    Out {
        status: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn subid(args: &[&str]) -> Out {
    run_with(Path::new(SUBID), args)
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("subid-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---- check ----------------------------------------------------------------------------------

/// One crafted file with one kind of trouble (or one variant of it), and everything `check`
/// must say about it.
struct Case {
    /// A `.subuid` file is checked with the clean subgid, a `.subgid` file with the clean
    /// subuid. A `.passwd` or `.group` file of the same name replaces the clean one.
    file: &'static str,
    status: i32,
    /// Standard output, line by line.
    expected: &'static [&'static str],
}

impl Case {
    fn args(&self) -> Vec<String> {
        let (base, ext) = self.file.rsplit_once('.').unwrap();
        let or_clean = |ext: &str, clean: &str| {
            let file = format!("{base}.{ext}");
            match data().join(&file).exists() {
                true => file,
                false => clean.to_string(),
            }
        };
        let (subuid, subgid) = match ext {
            "subuid" => (self.file.to_string(), "subgid".to_string()),
            "subgid" => ("subuid".to_string(), self.file.to_string()),
            _ => panic!("{}: neither .subuid nor .subgid", self.file),
        };
        let passwd = or_clean("passwd", "passwd");
        let group = or_clean("group", "group");
        [
            "check", "--subuid", &subuid, "--subgid", &subgid, "--passwd", &passwd, "--group",
            &group,
        ]
        .map(String::from)
        .to_vec()
    }

    fn run(&self, extra: &[&str]) -> Out {
        let args = self.args();
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        subid(&args)
    }
}

const CHECK_CASES: &[Case] = &[
    Case {
        file: "bad/account-network.subuid",
        status: 1,
        expected: &[
            "bad/account-network.subuid:2: error [account] range 165536-231071 of bob contains uid 170000 of account ldapuser; its owner can map these ids and act as them (CVE-2024-56433)",
        ],
    },
    Case {
        file: "bad/account-nobody.subuid",
        status: 1,
        expected: &[
            "bad/account-nobody.subuid:1: error [account] range 65000-65999 of alice contains uid 65534 of account nobody; its owner can map these ids and act as them (CVE-2024-56433)",
            "bad/account-nobody.subuid:1: warning [low-range] alice: range 65000-65999 starts below 65536, where accounts and nobody (65534) live; an account created later may get one of these ids",
        ],
    },
    Case {
        file: "bad/account-root.subuid",
        status: 1,
        expected: &[
            "bad/account-root.subuid:1: error [account] range 0-65535 of alice contains uid 0 of account root and the uids of 8 more accounts; its owner can map these ids and act as them (CVE-2024-56433)",
            "bad/account-root.subuid:1: warning [low-range] alice: range 0-65535 starts below 65536, where accounts and nobody (65534) live; an account created later may get one of these ids",
        ],
    },
    Case {
        file: "bad/ambiguous-owner.subuid",
        status: 1,
        expected: &[
            "bad/ambiguous-owner.subuid:4: error [ambiguous-owner] 4343: newuidmap grants range 500000-565535 both to 4343 (uid 5000), by login name, and to dave (uid 4343), by uid; each can act on files the other creates in a user namespace: write dave or 5000 instead, whichever is meant",
        ],
    },
    Case {
        file: "bad/comment-parsed.subuid",
        status: 0,
        expected: &[
            "bad/comment-parsed.subuid:1: warning [comment] newuidmap has no comments: it reads this as a range of an owner named '#alice', who is no one",
        ],
    },
    Case {
        file: "bad/comment.subuid",
        status: 0,
        expected: &[
            "bad/comment.subuid:1: warning [comment] newuidmap has no comments: it ignores this line as malformed",
        ],
    },
    Case {
        file: "bad/count-zero.subuid",
        status: 0,
        expected: &[
            "bad/count-zero.subuid:1: warning [count-zero] alice: count is 0: the line grants nothing",
        ],
    },
    Case {
        file: "bad/crlf.subuid",
        status: 1,
        expected: &[
            "bad/crlf.subuid:1: error [ignored] alice: carriage return at end of line (CRLF line ending); newuidmap ignores this line, and useradd, which skips it too, may hand its ids out again",
            "bad/crlf.subuid:2: error [ignored] bob: carriage return at end of line (CRLF line ending); newuidmap ignores this line, and useradd, which skips it too, may hand its ids out again",
        ],
    },
    Case {
        file: "bad/duplicate-name-and-uid.subuid",
        status: 0,
        expected: &[
            "bad/duplicate-name-and-uid.subuid:2: warning [duplicate] range 130000-130009 of 1000 overlaps range 100000-165535 of alice (line 1), the same account; newuidmap does not mind, but one of them is redundant",
        ],
    },
    Case {
        file: "bad/duplicate.subuid",
        status: 0,
        expected: &[
            "bad/duplicate.subuid:2: warning [duplicate] range 100000-165535 of alice overlaps range 100000-165535 of alice (line 1), the same account; newuidmap does not mind, but one of them is redundant",
        ],
    },
    Case {
        file: "bad/empty-count.subuid",
        status: 1,
        expected: &[
            "bad/empty-count.subuid:1: error [ignored] alice: count is empty; newuidmap ignores this line, and useradd, which skips it too, may hand its ids out again",
        ],
    },
    Case {
        file: "bad/empty-owner.subuid",
        status: 1,
        expected: &[
            "bad/empty-owner.subuid:1: error [ignored] owner is empty; newuidmap ignores this line, and useradd, which skips it too, may hand its ids out again",
        ],
    },
    Case {
        file: "bad/extra-field.subuid",
        status: 0,
        expected: &[
            "bad/extra-field.subuid:1: warning [extra-fields] alice: 4 fields, expected 3; newuidmap reads the first three and ignores the rest",
        ],
    },
    Case {
        file: "bad/hex.subuid",
        status: 0,
        expected: &[
            "bad/hex.subuid:1: warning [not-decimal] alice: start '0x186a0' is not plain decimal; newuidmap reads it as 100000",
        ],
    },
    Case {
        file: "bad/leading-space.subuid",
        status: 0,
        expected: &[
            "bad/leading-space.subuid:1: warning [not-decimal] alice: start ' 100000' is not plain decimal; newuidmap reads it as 100000",
        ],
    },
    Case {
        file: "bad/low-range.subuid",
        status: 0,
        expected: &[
            "bad/low-range.subuid:1: warning [low-range] alice: range 60000-60999 starts below 65536, where accounts and nobody (65534) live; an account created later may get one of these ids",
        ],
    },
    Case {
        file: "bad/missing-owner-uid.subuid",
        status: 0,
        expected: &[
            "bad/missing-owner-uid.subuid:1: note [missing-owner] 4242: no account has this name or uid; keep range 100000-165535 allocated and never reassign it: files created in this owner's namespaces still carry these ids",
        ],
    },
    Case {
        file: "bad/missing-owner.subuid",
        status: 0,
        expected: &[
            "bad/missing-owner.subuid:2: note [missing-owner] dave: no account has this name or uid; keep range 165536-231071 allocated and never reassign it: files created in this owner's namespaces still carry these ids",
        ],
    },
    Case {
        file: "bad/nis.subuid",
        status: 1,
        expected: &[
            "bad/nis.subuid:1: error [ignored] +alice: line starts with '+' or '-', which newuidmap takes for a NIS entry and skips; useradd skips it too, and may hand its ids out again",
        ],
    },
    Case {
        file: "bad/no-final-newline.subuid",
        status: 0,
        expected: &[
            "bad/no-final-newline.subuid:2: warning [no-final-newline] no newline at the end of the file; newuidmap reads this line, but a line added with echo >> would be joined to it",
        ],
    },
    Case {
        file: "bad/not-a-number.subuid",
        status: 1,
        expected: &[
            "bad/not-a-number.subuid:1: error [ignored] alice: start is not a number: 'abc'; newuidmap ignores this line, and useradd, which skips it too, may hand its ids out again",
        ],
    },
    Case {
        file: "bad/not-octal.subuid",
        status: 1,
        expected: &[
            "bad/not-octal.subuid:1: error [ignored] alice: start is not a number: '0800000' (a leading 0 makes it octal); newuidmap ignores this line, and useradd, which skips it too, may hand its ids out again",
        ],
    },
    Case {
        file: "bad/nul-byte.subuid",
        status: 1,
        expected: &[
            "bad/nul-byte.subuid:2: error [nul-byte] bob: NUL byte in line (newuidmap reads the next line as part of this one); so it reads this line as 'bob:165536:65536'",
        ],
    },
    Case {
        file: "bad/nul-last-line.subuid",
        status: 1,
        expected: &[
            "bad/nul-last-line.subuid:2: error [unreadable] NUL byte on the last line: newuidmap fails to read this file and grants no one anything from it",
        ],
    },
    Case {
        file: "bad/octal-count.subuid",
        status: 1,
        expected: &[
            "bad/octal-count.subuid:1: error [octal] alice: count '0200000' has a leading 0, so newuidmap reads it as octal: 65536, not 200000",
        ],
    },
    Case {
        file: "bad/octal-start.subuid",
        status: 1,
        expected: &[
            "bad/octal-start.subuid:1: error [octal] alice: start '0400000' has a leading 0, so newuidmap reads it as octal: 131072, not 400000",
        ],
    },
    Case {
        file: "bad/out-of-range.subuid",
        status: 1,
        expected: &[
            "bad/out-of-range.subuid:1: error [ignored] alice: count is out of range: '18446744073709551616'; newuidmap ignores this line, and useradd, which skips it too, may hand its ids out again",
        ],
    },
    Case {
        file: "bad/overlap-identical.subuid",
        status: 1,
        expected: &[
            "bad/overlap-identical.subuid:2: error [overlap] range 100000-165535 of bob overlaps range 100000-165535 of alice (line 1); each of them can act on files the other creates in a user namespace",
        ],
    },
    Case {
        file: "bad/overlap-nested.subuid",
        status: 1,
        expected: &[
            "bad/overlap-nested.subuid:2: error [overlap] range 120000-120099 of bob overlaps range 100000-165535 of alice (line 1); each of them can act on files the other creates in a user namespace",
        ],
    },
    Case {
        file: "bad/overlap-numeric-owner.subuid",
        status: 1,
        expected: &[
            "bad/overlap-numeric-owner.subuid:2: error [overlap] range 150000-150009 of 1001 overlaps range 100000-165535 of alice (line 1); each of them can act on files the other creates in a user namespace",
        ],
    },
    Case {
        file: "bad/overlap-out-of-order.subuid",
        status: 1,
        expected: &[
            "bad/overlap-out-of-order.subuid:1: error [overlap] range 165536-231071 of bob overlaps range 100000-199999 of alice (line 2); each of them can act on files the other creates in a user namespace",
        ],
    },
    Case {
        file: "bad/overlap.subuid",
        status: 1,
        expected: &[
            "bad/overlap.subuid:2: error [overlap] range 150000-215535 of bob overlaps range 100000-165535 of alice (line 1); each of them can act on files the other creates in a user namespace",
        ],
    },
    Case {
        file: "bad/padded-owner.subuid",
        status: 0,
        expected: &[
            "bad/padded-owner.subuid:1: warning [padded-owner] owner '01000' has leading zeros; newuidmap matches a uid only when it is written as '1000', so this range belongs to no one",
        ],
    },
    Case {
        file: "bad/plus-sign.subuid",
        status: 0,
        expected: &[
            "bad/plus-sign.subuid:1: warning [not-decimal] alice: start '+100000' is not plain decimal; newuidmap reads it as 100000",
        ],
    },
    Case {
        file: "bad/too-high-64bit.subuid",
        status: 1,
        expected: &[
            "bad/too-high-64bit.subuid:1: error [too-high] alice: start+count exceeds 4294967295 (5000000000+1): the range reaches id 4294967295, which no map may contain; newuidmap reads the range, but the kernel refuses a map that includes that id",
        ],
    },
    Case {
        file: "bad/too-high-negative-count.subuid",
        status: 1,
        expected: &[
            "bad/too-high-negative-count.subuid:1: error [too-high] alice: start+count exceeds 4294967295 (100000+18446744073709551615): the range reaches id 4294967295, which no map may contain; newuidmap reads the range, but the kernel refuses a map that includes that id",
            "bad/too-high-negative-count.subuid:1: warning [not-decimal] alice: count '-1' is not plain decimal; newuidmap reads it as 18446744073709551615",
        ],
    },
    Case {
        file: "bad/too-high.subuid",
        status: 1,
        expected: &[
            "bad/too-high.subuid:1: error [too-high] alice: start+count exceeds 4294967295 (4294900000+100000): the range reaches id 4294967295, which no map may contain; newuidmap reads the range, but the kernel refuses a map that includes that id",
        ],
    },
    Case {
        file: "bad/too-long.subuid",
        status: 1,
        expected: &[
            "bad/too-long.subuid:1: error [ignored] aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...: line is 1033 bytes long; newuidmap ignores lines of 1024 bytes or more; useradd skips it too, and may hand its ids out again",
        ],
    },
    Case {
        file: "bad/too-many-ranges.subuid",
        status: 1,
        expected: &[
            "bad/too-many-ranges.subuid:340: error [too-many-ranges] alice: the 340 ranges granted to alice (uid 1000) in this file do not fit in one map beside the owner's own id, from this line's on: the map needs 341 extents; the kernel accepts at most 340 (Linux 4.15 and later); become-root --map=full refuses it, and --map=auto maps the owner's own id alone",
        ],
    },
    Case {
        file: "bad/too-many-ranges-long.subuid",
        status: 1,
        expected: &[
            "bad/too-many-ranges-long.subuid:182: error [too-many-ranges] alice: the 200 ranges granted to alice (uid 1000) in this file do not fit in one map beside the owner's own id, from this line's on: the map is 4551 bytes long; the kernel takes it in one write of at most 4095 bytes; become-root --map=full refuses it, and --map=auto maps the owner's own id alone",
        ],
    },
    Case {
        file: "bad/trailing-space.subuid",
        status: 1,
        expected: &[
            "bad/trailing-space.subuid:1: error [ignored] alice: trailing space after count; newuidmap ignores this line, and useradd, which skips it too, may hand its ids out again",
        ],
    },
    Case {
        file: "bad/trailing-tab.subuid",
        status: 1,
        expected: &[
            "bad/trailing-tab.subuid:1: error [ignored] alice: trailing tab after count; newuidmap ignores this line, and useradd, which skips it too, may hand its ids out again",
        ],
    },
    Case {
        file: "bad/two-fields.subuid",
        status: 1,
        expected: &[
            "bad/two-fields.subuid:1: error [ignored] alice: 2 fields, expected 3; newuidmap ignores this line, and useradd, which skips it too, may hand its ids out again",
        ],
    },
    Case {
        file: "bad/account.subgid",
        status: 1,
        expected: &[
            "bad/account.subgid:2: error [account] range 165536-231071 of bob contains gid 200000 of group shared and the gid of 1 more group; its owner can map these ids and act as them (CVE-2024-56433)",
        ],
    },
    Case {
        file: "bad/missing-owner.subgid",
        status: 0,
        expected: &[
            "bad/missing-owner.subgid:2: note [missing-owner] eve: no account has this name or uid; keep range 165536-231071 allocated and never reassign it: files created in this owner's namespaces still carry these ids",
        ],
    },
    Case {
        file: "bad/overlap.subgid",
        status: 1,
        expected: &[
            "bad/overlap.subgid:2: error [overlap] range 165000-230535 of bob overlaps range 100000-165535 of alice (line 1); each of them can act on files the other creates in a user namespace",
        ],
    },
];

fn clean_stock_files_have_no_findings() {
    let args = [
        "check", "--subuid", "subuid", "--subgid", "subgid", "--passwd", "passwd", "--group",
        "group",
    ];
    let out = subid(&args);
    assert_eq!(out.status, Some(0), "{out:#?}");
    assert_eq!(out.stdout, "", "{out:#?}");
    assert_eq!(out.stderr, "", "{out:#?}");

    let out = subid(&[&args[..], &["--json"]].concat());
    assert_eq!(out.status, Some(0), "{out:#?}");
    assert_eq!(
        out.stdout,
        "{\"files\":{\"subuid\":\"subuid\",\"subgid\":\"subgid\",\"passwd\":\"passwd\",\
         \"group\":\"group\"},\"findings\":[],\"errors\":0,\"warnings\":0,\"notes\":0}\n"
    );
}

fn every_crafted_file_has_its_finding() {
    assert!(CHECK_CASES.len() >= 30);
    let mut failures = Vec::new();
    for case in CHECK_CASES {
        let out = case.run(&[]);
        let got: Vec<&str> = out.stdout.lines().collect();
        if out.status != Some(case.status) || got != case.expected || !out.stderr.is_empty() {
            failures.push(format!(
                "{}: status {:?} (expected {}), stderr {:?}\n  got:\n    {}\n  expected:\n    {}",
                case.file,
                out.status,
                case.status,
                out.stderr,
                got.join("\n    "),
                case.expected.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each case is about one kind of trouble: its first finding names it, and the exit status
/// follows the worst severity.
fn each_case_has_a_kind_and_status_follows_severity() {
    for case in CHECK_CASES {
        let first = case
            .expected
            .first()
            .unwrap_or_else(|| panic!("{}: no finding", case.file));
        assert!(first.contains(" ["), "{}: {first}", case.file);
        let has_error = case.expected.iter().any(|l| l.contains(": error ["));
        assert_eq!(case.status, i32::from(has_error), "{}", case.file);
    }
}

/// Every crafted file is in the table, so none is forgotten.
fn every_crafted_file_is_tested() {
    let mut files: Vec<String> = fs::read_dir(data().join("bad"))
        .unwrap()
        .map(|e| format!("bad/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    files.sort();
    for file in files {
        let (base, ext) = file.rsplit_once('.').unwrap();
        let covered = match ext {
            "subuid" | "subgid" => CHECK_CASES.iter().any(|c| c.file == file),
            // An override belongs to the case of the same name.
            "passwd" | "group" => CHECK_CASES
                .iter()
                .any(|c| c.file.rsplit_once('.').unwrap().0 == base),
            _ => false,
        };
        assert!(
            covered,
            "{file} is in tests/data/subid/bad but no case uses it"
        );
    }
}

/// The kinds the man page promises all occur in the table.
fn every_kind_is_covered() {
    for kind in [
        "overlap",
        "duplicate",
        "account",
        "ambiguous-owner",
        "too-many-ranges",
        "low-range",
        "too-high",
        "ignored",
        "nul-byte",
        "unreadable",
        "extra-fields",
        "count-zero",
        "octal",
        "not-decimal",
        "no-final-newline",
        "comment",
        "padded-owner",
        "missing-owner",
    ] {
        let tag = format!(" [{kind}] ");
        assert!(
            CHECK_CASES
                .iter()
                .any(|c| c.expected.iter().any(|l| l.contains(&tag))),
            "no case shows [{kind}]"
        );
    }
}

fn json_is_well_formed_and_says_what_the_text_says() {
    for case in CHECK_CASES {
        let out = case.run(&["--json"]);
        assert_eq!(out.status, Some(case.status), "{}: {out:#?}", case.file);
        let value = json::parse(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", case.file, out.stdout));
        let findings = value
            .get("findings")
            .and_then(json::Value::as_array)
            .unwrap();
        assert_eq!(findings.len(), case.expected.len(), "{}", case.file);
        let mut errors = 0;
        for (finding, line) in findings.iter().zip(case.expected) {
            let field = |name| {
                finding
                    .get(name)
                    .unwrap_or_else(|| panic!("{}: no {name}", case.file))
            };
            let text = format!(
                "{}:{}: {} [{}] {}",
                field("file").as_str().unwrap(),
                field("line").as_number().unwrap(),
                field("severity").as_str().unwrap(),
                field("kind").as_str().unwrap(),
                field("message").as_str().unwrap()
            );
            assert_eq!(&text, line, "{}", case.file);
            errors += usize::from(field("severity").as_str() == Some("error"));
        }
        assert_eq!(
            value.get("errors").and_then(json::Value::as_number),
            Some(errors as f64),
            "{}",
            case.file
        );
    }
}

fn json_of_an_overlap_in_full() {
    let case = CHECK_CASES
        .iter()
        .find(|c| c.file == "bad/overlap.subuid")
        .unwrap();
    let out = case.run(&["--json"]);
    assert_eq!(
        out.stdout,
        concat!(
            r#"{"files":{"subuid":"bad/overlap.subuid","subgid":"subgid","passwd":"passwd","group":"group"},"findings":["#,
            "\n",
            r#"{"severity":"error","kind":"overlap","file":"bad/overlap.subuid","line":2,"owner":"bob","start":150000,"end":215535,"count":65536,"other":{"owner":"alice","line":1,"start":100000,"end":165535,"count":65536},"message":"range 150000-215535 of bob overlaps range 100000-165535 of alice (line 1); each of them can act on files the other creates in a user namespace"}"#,
            "\n",
            r#"],"errors":1,"warnings":0,"notes":0}"#,
            "\n"
        )
    );
}

fn json_escapes_what_json_must() {
    let dir = TempDir::new("json");
    let subuid = dir.0.join("subuid");
    // A quote, a backslash and a tab in an owner field; a non-UTF-8 byte in another.
    fs::write(&subuid, b"a\"b\\c\td:100000:65536\nx\xffy:200000:65536\n").unwrap();
    let subuid = subuid.to_str().unwrap();
    let out = subid(&[
        "check", "--subuid", subuid, "--subgid", "subgid", "--passwd", "passwd", "--group",
        "group", "--json",
    ]);
    let value = json::parse(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.stdout));
    let findings = value
        .get("findings")
        .and_then(json::Value::as_array)
        .unwrap();
    let owners: Vec<&str> = findings
        .iter()
        .filter_map(|f| f.get("owner")?.as_str())
        .collect();
    assert_eq!(owners, ["a\"b\\c\td", "x\\xffy"], "{}", out.stdout);
}

/// A minimal JSON parser (RFC 8259), enough to prove `--json` output well-formed and read it
/// back: no JSON crate is a dependency.
mod json {
    #[derive(Debug, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
        pub fn as_array(&self) -> Option<&[Value]> {
            match self {
                Value::Array(items) => Some(items),
                _ => None,
            }
        }
        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }
        pub fn as_number(&self) -> Option<f64> {
            match self {
                Value::Number(n) => Some(*n),
                _ => None,
            }
        }
    }

    /// One value, surrounded by nothing but whitespace.
    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let value = p.value()?;
        p.ws();
        match p.i == p.s.len() {
            true => Ok(value),
            false => Err(format!("trailing text at byte {}", p.i)),
        }
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
        }

        fn eat(&mut self, b: u8) -> Result<(), String> {
            self.ws();
            match self.s.get(self.i) {
                Some(&c) if c == b => {
                    self.i += 1;
                    Ok(())
                }
                other => Err(format!(
                    "expected '{}' at byte {}, found {other:?}",
                    b as char, self.i
                )),
            }
        }

        fn value(&mut self) -> Result<Value, String> {
            self.ws();
            match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let mut fields = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Value::Object(fields));
                    }
                    loop {
                        self.ws();
                        let key = self.string()?;
                        self.eat(b':')?;
                        fields.push((key, self.value()?));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Value::Object(fields));
                            }
                            _ => return Err(format!("expected ',' or '}}' at byte {}", self.i)),
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Value::Array(items));
                            }
                            _ => return Err(format!("expected ',' or ']' at byte {}", self.i)),
                        }
                    }
                }
                Some(b'"') => self.string().map(Value::String),
                Some(b't') => self.word("true", Value::Bool(true)),
                Some(b'f') => self.word("false", Value::Bool(false)),
                Some(b'n') => self.word("null", Value::Null),
                Some(b'-' | b'0'..=b'9') => self.number(),
                other => Err(format!("unexpected {other:?} at byte {}", self.i)),
            }
        }

        fn word(&mut self, word: &str, value: Value) -> Result<Value, String> {
            match self.s[self.i..].starts_with(word.as_bytes()) {
                true => {
                    self.i += word.len();
                    Ok(value)
                }
                false => Err(format!("bad literal at byte {}", self.i)),
            }
        }

        /// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
        fn number(&mut self) -> Result<Value, String> {
            let start = self.i;
            let digits = |p: &mut Self| {
                let from = p.i;
                while p.s.get(p.i).is_some_and(u8::is_ascii_digit) {
                    p.i += 1;
                }
                p.i - from
            };
            if self.s.get(self.i) == Some(&b'-') {
                self.i += 1;
            }
            let int_start = self.i;
            match digits(self) {
                0 => return Err(format!("no digits at byte {}", self.i)),
                n if n > 1 && self.s[int_start] == b'0' => {
                    return Err(format!("leading zero at byte {int_start}"));
                }
                _ => {}
            }
            if self.s.get(self.i) == Some(&b'.') {
                self.i += 1;
                if digits(self) == 0 {
                    return Err(format!("no digits after '.' at byte {}", self.i));
                }
            }
            if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
                self.i += 1;
                if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                    self.i += 1;
                }
                if digits(self) == 0 {
                    return Err(format!("no exponent digits at byte {}", self.i));
                }
            }
            let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
            text.parse().map(Value::Number).map_err(|e| e.to_string())
        }

        fn string(&mut self) -> Result<String, String> {
            if self.s.get(self.i) != Some(&b'"') {
                return Err(format!("expected a string at byte {}", self.i));
            }
            self.i += 1;
            let mut out = Vec::new();
            loop {
                let Some(&c) = self.s.get(self.i) else {
                    return Err("unterminated string".into());
                };
                self.i += 1;
                match c {
                    b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                    0..=0x1f => {
                        return Err(format!("raw control character at byte {}", self.i - 1));
                    }
                    b'\\' => {
                        let Some(&e) = self.s.get(self.i) else {
                            return Err("unterminated escape".into());
                        };
                        self.i += 1;
                        let simple = match e {
                            b'"' => b'"',
                            b'\\' => b'\\',
                            b'/' => b'/',
                            b'b' => 8,
                            b'f' => 12,
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'u' => {
                                let hex = self.s.get(self.i..self.i + 4).ok_or("short \\u")?;
                                let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
                                let code =
                                    u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                self.i += 4;
                                let c = char::from_u32(code).ok_or("a surrogate in \\u")?;
                                out.extend_from_slice(c.to_string().as_bytes());
                                continue;
                            }
                            _ => return Err(format!("bad escape at byte {}", self.i - 1)),
                        };
                        out.push(simple);
                    }
                    c => out.push(c),
                }
            }
        }
    }

    pub fn the_parser_itself() {
        assert!(parse(r#"{"a":[1,-2.5e3,true,null,"x\"\u00e9"]}"#).is_ok());
        for bad in [
            r#"{"a":}"#,
            "[1,]",
            "01",
            r#""a"#,
            "{\"a\":1}x",
            "\"\t\"",
            "[1 2]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

// ---- next -----------------------------------------------------------------------------------

/// `subid next` with the clean files except where a row says otherwise.
fn next(args: &[&str]) -> Out {
    let mut all = vec!["next"];
    all.extend_from_slice(args);
    for (flag, clean) in [
        ("--subuid", "subuid"),
        ("--subgid", "subgid"),
        ("--passwd", "passwd"),
        ("--group", "group"),
    ] {
        if !args.contains(&flag) {
            all.extend([flag, clean]);
        }
    }
    subid(&all)
}

fn next_table() {
    // (what the row checks, arguments, the range expected)
    let rows: &[(&str, &[&str], &str)] = &[
        ("after the stock three users", &[], "296608-362143"),
        (
            "a hole left by a removed user is never reused",
            &[
                "--subuid",
                "next/hole.subuid",
                "--subgid",
                "next/hole.subuid",
            ],
            "296608-362143",
        ),
        (
            "the hole stays closed even with one file empty",
            &["--subuid", "next/hole.subuid", "--subgid", "next/empty"],
            "296608-362143",
        ),
        (
            "above the higher of the two files, on the 100000+k*65536 grid",
            &["--subgid", "next/high.subgid"],
            "1083040-1148575",
        ),
        (
            "above a range written in octal, read either way",
            &[
                "--subuid",
                "bad/octal-start.subuid",
                "--subgid",
                "next/empty",
            ],
            "493216-558751",
        ),
        (
            "above a line newuidmap ignores (CRLF)",
            &["--subuid", "bad/crlf.subuid", "--subgid", "next/empty"],
            "231072-296607",
        ),
        (
            "above an owner that no longer exists",
            &[
                "--subuid",
                "bad/missing-owner.subuid",
                "--subgid",
                "next/empty",
            ],
            "231072-296607",
        ),
        ("--count", &["--count", "131072"], "296608-427679"),
        ("--count 1", &["--count", "1"], "296608-296608"),
        (
            "never over an account's uid",
            &["--passwd", "next/ldap.passwd"],
            "362144-427679",
        ),
        (
            "nothing allocated yet",
            &["--subuid", "next/empty", "--subgid", "next/empty"],
            "100000-165535",
        ),
    ];
    for (rule, args, range) in rows {
        let out = next(args);
        assert_eq!(out.status, Some(0), "{rule}: {out:#?}");
        assert_eq!(
            out.stdout,
            format!("{range}\nusermod --add-subuids {range} --add-subgids {range} USER\n"),
            "{rule}"
        );
        assert_eq!(out.stderr, "", "{rule}");
    }
}

fn next_names_the_user_in_the_command() {
    let out = next(&["dave"]);
    assert_eq!(
        out.stdout,
        "296608-362143\nusermod --add-subuids 296608-362143 --add-subgids 296608-362143 dave\n"
    );
}

fn next_with_no_room_left_says_so() {
    let out = next(&["--subuid", "next/full.subuid"]);
    assert_eq!(out.status, Some(1), "{out:#?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "subid: next: no room for 65536 more ids: the highest range ever allocated ends at \
         4294899999, and the last id a map may use is 4294967294\n\
         hint: a smaller --count may still fit; never hand out a range someone has had\n"
    );
}

// ---- show -----------------------------------------------------------------------------------

const SHOW_FILES: [&str; 6] = [
    "--subuid",
    "show/subuid",
    "--subgid",
    "show/subgid",
    "--passwd",
    "show/passwd",
];

fn show(user: Option<&str>) -> Out {
    let mut args = vec!["show"];
    args.extend(user);
    args.extend(SHOW_FILES);
    subid(&args)
}

const ALICE: &str = "\
user    alice (uid 1000)
source  files show/subuid and show/subgid
uid     100000-165535  65536 ids  show/subuid:1
uid     300000-304999   5000 ids  show/subuid:3 (as 1000)
uid     400000-400009     10 ids  show/subuid:4 (as toor)
gid     100000-165535  65536 ids  show/subgid:1
total   70546 uids in 3 ranges, 65536 gids in 1 range
map     full     uid 0:1000:1 1:100000:65536 65537:300000:5000
map     full     gid 0:1000:1 1:100000:65536
map     keep-id  uid 0:100000:1000 1000:1000:1 1001:101000:64536 65537:300000:5000
map     keep-id  gid 0:100000:1000 1000:1000:1 1001:101000:64536
map     subids   uid 1000:1000:1 100000:100000:65536 300000:300000:5000
map     subids   gid 1000:1000:1 100000:100000:65536
map     single   uid 0:1000:1
map     single   gid 0:1000:1
note    the maps leave out show/subuid:4 (as toor): newuidmap grants it under another login of \
the same uid; become-root asks by name and uid only
";

/// Her broken line (count 0) is reported, not listed.
const ALICE_WARNING: &str =
    "warning: show/subuid:5: count is 0; skipped (newuidmap reads it, become-root does not)\n";

fn show_by_name_lists_lines_by_name_uid_and_other_login() {
    let out = show(Some("alice"));
    assert_eq!(out.status, Some(0), "{out:#?}");
    assert_eq!(out.stdout, ALICE);
    assert_eq!(out.stderr, ALICE_WARNING);
}

fn show_by_uid_is_the_same() {
    let out = show(Some("1000"));
    assert_eq!(out.status, Some(0), "{out:#?}");
    assert_eq!(out.stdout, ALICE);
    assert_eq!(out.stderr, ALICE_WARNING);
}

fn show_without_gids_exits_1_with_a_hint() {
    let out = show(Some("bob"));
    assert_eq!(out.status, Some(1), "{out:#?}");
    assert_eq!(
        out.stdout,
        "user    bob (uid 1001)\n\
         source  files show/subuid and show/subgid\n\
         uid     165536-231071  65536 ids  show/subuid:2\n\
         gid     none\n\
         total   65536 uids in 1 range, 0 gids in 0 ranges\n\
         map     full     uid 0:1001:1 1:165536:65536\n\
         map     full     gid not possible: no subordinate gids\n\
         map     keep-id  uid 0:165536:1001 1001:1001:1 1002:166537:64535\n\
         map     keep-id  gid not possible: no subordinate gids\n\
         map     subids   uid 1001:1001:1 165536:165536:65536\n\
         map     subids   gid not possible: no subordinate gids\n\
         map     single   uid 0:1001:1\n\
         map     single   gid 0:1001:1\n"
    );
    assert_eq!(
        out.stderr,
        "hint: 'subid next bob' proposes a range no one has ever had, with the usermod command \
         that allocates it\n"
    );
}

fn show_an_owner_that_is_no_account() {
    let out = show(Some("dave"));
    assert_eq!(out.status, Some(1), "{out:#?}");
    assert_eq!(
        out.stdout,
        "user    dave (no such account: lines are matched by their owner field)\n\
         source  files show/subuid and show/subgid\n\
         uid     600000-665535  65536 ids  show/subuid:6\n\
         gid     none\n\
         total   65536 uids in 1 range, 0 gids in 0 ranges\n\
         map     none: no account, so no own uid and gid to map\n"
    );
}

/// Issue 8, item 5: a line whose owner is one account's login name and another's uid is
/// granted to both. `show` lists it for each, and says who else gets it; `check` reports the
/// line (`every_crafted_file_has_its_finding`).
fn show_lists_an_ambiguous_line_for_both_accounts() {
    let files = [
        "--subuid",
        "bad/ambiguous-owner.subuid",
        "--subgid",
        "subgid",
        "--passwd",
        "bad/ambiguous-owner.passwd",
    ];
    let rows = [
        (
            "4343",
            "user    4343 (uid 5000)\n",
            "bad/ambiguous-owner.subuid:4\n",
            "dave (uid 4343) too, by uid",
        ),
        (
            "dave",
            "user    dave (uid 4343)\n",
            "bad/ambiguous-owner.subuid:4 (as 4343)\n",
            "4343 (uid 5000) too, by login name",
        ),
    ];
    for (user, first, listed, other) in rows {
        let out = subid(&[&["show", user][..], &files].concat());
        assert!(out.stdout.starts_with(first), "{user}: {out:#?}");
        assert!(
            out.stdout
                .contains(&format!("500000-565535  65536 ids  {listed}")),
            "{user}: {out:#?}"
        );
        let warning = format!(
            "warning: bad/ambiguous-owner.subuid:4: newuidmap grants this range to {other}: \
             owner '4343' is one account's login name and another's uid\n"
        );
        assert!(out.stderr.starts_with(&warning), "{user}: {out:#?}");
    }
}

fn show_defaults_to_the_caller() {
    let uid = nix::unistd::getuid().as_raw();
    let out = show(None);
    let first = out.stdout.lines().next().unwrap_or_default();
    match uid {
        0 => assert_eq!(first, "user    root (uid 0)", "{out:#?}"),
        uid => assert!(first.contains(&uid.to_string()), "{out:#?}"),
    }
    // The crafted files give nothing to root or to whoever runs the tests.
    assert_eq!(out.status, Some(1), "{out:#?}");
}

/// An account only the name service knows (LDAP, SSSD) is resolved through getent(1), by
/// uid and by name: the programs load no NSS module themselves, so that they can be linked
/// statically (see the Makefile). A stand-in getent first on PATH plays the directory.
fn show_asks_the_name_service_through_getent() {
    let dir = TempDir::new("getent");
    let getent = dir.0.join("getent");
    common::write_executable(
        &getent,
        "#!/bin/sh\n[ \"$1\" = passwd ] && [ \"$2\" = -- ] || exit 2\n\
         case $3 in 77777|dirsvc) echo 'dirsvc:x:77777:77777::/home/dirsvc:/bin/sh' ;; \
         *) exit 2 ;; esac\n",
        0o755,
    );
    let path = format!(
        "{}:{}",
        dir.0.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for user in ["77777", "dirsvc"] {
        let out = Command::new(SUBID)
            .args([
                "show",
                user,
                "--subuid",
                "show/subuid",
                "--subgid",
                "show/subgid",
            ])
            .current_dir(data())
            .env("PATH", &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.lines().next(),
            Some("user    dirsvc (uid 77777)"),
            "{user}: {out:#?}"
        );
    }
}

fn show_getsubids_reads_no_files() {
    let out = subid(&[
        "show",
        "alice",
        "--subuid",
        "show/subuid",
        "--subid-source=getsubids",
    ]);
    assert_eq!(out.status, Some(2), "{out:#?}");
    assert_eq!(
        out.stderr,
        "subid: usage: --subuid and --subgid name files, which --subid-source=getsubids does \
         not read\nhint: leave out --subid-source, or the file options\n"
    );
}

/// Asks the machine's libsubid about root, read-only: only the shape of the answer is checked.
fn show_through_getsubids() {
    let out = subid(&["show", "root", "--subid-source=getsubids"]);
    assert!(matches!(out.status, Some(0 | 1)), "{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.get(1),
        Some(&"source  getsubids (libsubid)"),
        "{out:#?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("total   ")), "{out:#?}");
    // Root maps every id to itself, in every mode a map has.
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("map     every mode but single: 0:0:")),
        "{out:#?}"
    );
}

// ---- scan -----------------------------------------------------------------------------------

/// A tree with set-user-ID and set-group-ID files, owned by subordinate ids or not. Needs root
/// (chown).
fn scan_tree(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let make = |path: &str, uid: u32, gid: u32, mode: u32| {
        let path = dir.0.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        common::write_executable(&path, "#!/bin/sh\n", 0o755);
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        // After chown, which clears the set-ID bits.
        common::chmod(&path, mode);
    };
    make("tree/a/b/setuid", 100500, 0, 0o4755); // alice's range
    make("tree/a/setgid", 0, 165600, 0o2755); // bob's range
    make("tree/plain", 100501, 100501, 0o755); // no set-ID bit
    make("tree/root-setuid", 0, 0, 0o4755); // owned by root, no range
    make("tree/d/setuid-other", 70000, 0, 0o4755); // no one's range
    make("outside/setuid", 231100, 0, 0o4755); // carol's range, only through a link
    std::os::unix::fs::symlink(dir.0.join("outside"), dir.0.join("tree/link")).unwrap();
    dir
}

fn scan(dir: &TempDir, args: &[&str]) -> Out {
    let tree = dir.0.join("tree");
    let mut all = vec!["scan", "--subuid", "subuid", "--subgid", "subgid"];
    all.extend_from_slice(args);
    all.push(tree.to_str().unwrap());
    subid(&all)
}

fn scan_finds_set_id_files_owned_by_subordinate_ids() {
    let dir = scan_tree("find");
    let out = scan(&dir, &[]);
    let tree = dir.0.join("tree");
    let tree = tree.display();
    assert_eq!(out.status, Some(1), "{out:#?}");
    assert_eq!(
        out.stdout,
        format!(
            "{tree}/a/b/setuid: set-user-ID file of uid 100500, in range 100000-165535 of alice \
             (subuid:1)\n\
             {tree}/a/setgid: set-group-ID file of gid 165600, in range 165536-231071 of bob \
             (subgid:2)\n"
        )
    );
    assert_eq!(out.stderr, "");
}

fn scan_follows_links_only_when_asked() {
    let dir = scan_tree("links");
    let out = scan(&dir, &["--follow-symlinks"]);
    assert_eq!(out.status, Some(1), "{out:#?}");
    let through_link = format!(
        "{}/link/setuid: set-user-ID file of uid 231100, in range 231072-296607 of carol \
         (subuid:3)",
        dir.0.join("tree").display()
    );
    assert!(out.stdout.lines().any(|l| l == through_link), "{out:#?}");
    assert_eq!(out.stdout.lines().count(), 3, "{out:#?}");
}

fn scan_of_a_clean_tree_exits_0() {
    let dir = scan_tree("clean");
    let d = dir.0.join("tree/d");
    let out = subid(&[
        "scan",
        "--subuid",
        "subuid",
        "--subgid",
        "subgid",
        d.to_str().unwrap(),
    ]);
    assert_eq!(out.status, Some(0), "{out:#?}");
    assert_eq!(out.stdout, "");
}

fn scan_of_a_missing_path_exits_2() {
    let out = subid(&[
        "scan",
        "--subuid",
        "subuid",
        "--subgid",
        "subgid",
        "/nonexistent/path",
    ]);
    assert_eq!(out.status, Some(2), "{out:#?}");
    assert_eq!(
        out.stderr,
        "subid: /nonexistent/path: No such file or directory\n"
    );
}

/// A filesystem mounted inside the tree is skipped unless --cross-filesystems. The mount is
/// made in a private mount namespace (unshare -m), so it vanishes with the test.
fn scan_stays_on_one_filesystem() {
    let dir = scan_tree("xdev");
    let script = r#"
        set -e
        mkdir "$1/mnt"
        mount -t tmpfs tmpfs "$1/mnt"
        printf x > "$1/mnt/setuid"
        chown 100700:0 "$1/mnt/setuid"
        chmod 4755 "$1/mnt/setuid"
        set +e
        "$2" scan --subuid subuid --subgid subgid "$1/mnt/.." > /dev/null
        echo "one filesystem: $?"
        "$2" scan --subuid subuid --subgid subgid --cross-filesystems "$1" | grep -c /mnt/setuid
    "#;
    let tree = dir.0.join("tree");
    // (A private mount namespace is known to work here: the test needs Need::MountNs.)
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&tree)
        .arg(SUBID)
        .current_dir(data())
        .output()
        .expect("unshare");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        // 1: the tree's own files are found; the one on the tmpfs only when crossing.
        "one filesystem: 1\n1\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- the command line -----------------------------------------------------------------------

/// busybox-style: `become-root` started as `subid` is subid.
fn become_root_named_subid_is_subid() {
    let dir = TempDir::new("argv0");
    let link = dir.0.join("subid");
    std::os::unix::fs::symlink(BECOME_ROOT, &link).unwrap();
    let case = CHECK_CASES
        .iter()
        .find(|c| c.file == "bad/overlap.subuid")
        .unwrap();
    let args = case.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let via_link = run_with(&link, &args);
    let direct = subid(&args);
    assert_eq!(via_link.status, Some(1), "{via_link:#?}");
    assert_eq!(via_link.stdout, direct.stdout);
    let version = run_with(&link, &["--version"]);
    assert_eq!(
        version.stdout,
        format!("subid {}\n", env!("CARGO_PKG_VERSION"))
    );
}

fn help_and_version_exit_0() {
    let out = subid(&["--help"]);
    assert_eq!(out.status, Some(0));
    for word in ["show", "check", "next", "scan", "Exit status"] {
        assert!(
            out.stdout.contains(word),
            "--help mentions {word}: {}",
            out.stdout
        );
    }
    let out = subid(&["check", "--help"]);
    assert_eq!(out.status, Some(0));
    assert!(out.stdout.contains("--json"), "{}", out.stdout);
    let out = subid(&["--version"]);
    assert_eq!(out.stdout, format!("subid {}\n", env!("CARGO_PKG_VERSION")));
}

/// Bad usage exits 2 (as grep and most administration tools do), in the one error format.
fn usage_errors_exit_2_with_what_why_and_hint() {
    let rows: &[(&[&str], &str)] = &[
        (&["check", "--bogus"], "--bogus"),
        (&["frobnicate"], "frobnicate"),
        (&["next", "--count", "0"], "0"),
        (&["next", "--count", "x"], "x"),
        (&["scan"], "PATH"),
        (&["show", "--subid-source=ldap"], "ldap"),
    ];
    for (args, culprit) in rows {
        let out = subid(args);
        assert_eq!(out.status, Some(2), "{args:?}: {out:#?}");
        assert_eq!(out.stdout, "", "{args:?}");
        let mut lines = out.stderr.lines();
        let first = lines.next().unwrap_or_default();
        assert!(
            first.starts_with("subid: usage: "),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            first.contains(culprit),
            "{args:?} names {culprit}: {}",
            out.stderr
        );
        assert!(
            lines.any(|l| l.starts_with("hint: ")),
            "{args:?}: {}",
            out.stderr
        );
    }
    // No command at all: the help, on stderr, and status 2.
    let out = subid(&[]);
    assert_eq!(out.status, Some(2));
    assert!(out.stderr.contains("Usage: subid"), "{}", out.stderr);
}

fn a_file_named_but_missing_exits_2() {
    let out = subid(&["check", "--subuid", "no/such/file"]);
    assert_eq!(out.status, Some(2), "{out:#?}");
    assert_eq!(
        out.stderr,
        "subid: no/such/file: No such file or directory\n"
    );
}

/// The man page describes each command's options by hand (clap_mangen lists only the top
/// level's): every option of every command must be there.
fn man_page_names_every_option() {
    let man = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/subid.1"))
        .expect("man/subid.1");
    let cmd = become_root::cli::subid::Cli::command();
    for sub in cmd.get_subcommands() {
        assert!(
            man.contains(sub.get_name()),
            "man/subid.1 lacks {}",
            sub.get_name()
        );
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(
                    man.contains(&roff),
                    "man/subid.1 lacks --{long} of {}",
                    sub.get_name()
                );
            }
        }
    }
}
