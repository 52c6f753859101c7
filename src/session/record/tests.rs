//! record.rs tested: the state file round trip and what is read of /proc.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{
    Containers, MAGIC, Proc, Record, outside_uid_of_root, parse_ns_link, parse_stat, state_dir_for,
    utc,
};

#[test]
fn stat_fields() {
    let line = |comm: &str| {
        format!(
            "4242 ({comm}) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
             1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        )
    };
    for comm in ["sleep", "a b", "x) S 1 2 (y", ")"] {
        let stat = line(comm);
        assert_eq!(parse_stat(stat.as_bytes()), Some(('S', 987654)), "{comm:?}");
    }
    // An executable named "ääääääää" is cut at 15 bytes, in the middle of the last "ä".
    let empty = line("");
    let (open, rest) = empty.split_at("4242 (".len());
    let cut = [
        open.as_bytes(),
        &"ääääääää".as_bytes()[..15],
        rest.as_bytes(),
    ]
    .concat();
    assert_eq!(parse_stat(&cut), Some(('S', 987654)), "not UTF-8");
    assert_eq!(parse_stat(b"12 (zombie) Z 1"), None, "too short");
    assert_eq!(parse_stat(b"no parenthesis"), None);
    let me = std::fs::read("/proc/self/stat").unwrap();
    let start = parse_stat(&me).map(|(_, start)| start);
    assert!(start.is_some_and(|s| s > 0), "{}", me.escape_ascii());
}

/// Regression: /proc/PID/stat was read as UTF-8, so a process whose command name is not
/// (an executable named "ääääääää" is cut at 15 bytes, in the middle of an "ä") looked
/// dead: --list and --join removed its live session's state file.
#[test]
fn a_command_name_that_is_not_utf8_is_alive() {
    let dir = std::env::temp_dir().join(format!("become-root-stat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("ääääääää");
    let _ = std::fs::remove_file(&program);
    std::os::unix::fs::symlink("/bin/sleep", &program).unwrap();
    let mut child = std::process::Command::new(&program)
        .arg("30")
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    // The kernel names the process once the exec is done.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stat_path = format!("/proc/{pid}/stat");
    let named = |s: &[u8]| s.windows(2).any(|w| w == b"(\xc3");
    while std::fs::read(&stat_path).is_ok_and(|s| !named(&s)) {
        assert!(Instant::now() < deadline, "the child never ran the program");
        std::thread::sleep(Duration::from_millis(5));
    }
    let stat = std::fs::read(&stat_path).unwrap();
    let alive = Proc::of(pid);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        std::str::from_utf8(&stat).is_err(),
        "the name is cut inside a character"
    );
    assert!(alive.is_some(), "{}", stat.escape_ascii());
}

#[test]
fn ns_links() {
    let table: &[(&[u8], Option<u64>)] = &[
        (b"user:[4026531837]", Some(4026531837)),
        (b"mnt:[1]", Some(1)),
        (b"user:4026531837", None),
        (b"user:[x]", None),
        (b"", None),
    ];
    for (link, want) in table {
        assert_eq!(parse_ns_link(link), *want, "{link:?}");
    }
}

pub(in crate::session) fn record() -> Record {
    Record {
        name: "build".into(),
        supervisor: Proc {
            pid: 10,
            start: 1000,
        },
        holder: Some(Proc {
            pid: 11,
            start: 1001,
        }),
        pid_ns: 4026531836,
        created: 1_700_000_000,
        namespaces: vec![("user".into(), 4026532001), ("mnt".into(), 4026532002)],
        net: Some("slirp4netns".into()),
        net_down: None,
        bypass: None,
        cgroup: None,
        limits: None,
        boot: false,
        stop_timeout: None,
        ports: vec!["127.0.0.1:8080->80/tcp".into()],
        ended: None,
        detached: true,
        containers: None,
    }
}

#[test]
fn record_round_trip() {
    let r = record();
    assert_eq!(Record::parse(&r.render()), Ok(r.clone()));
    let starting = Record {
        holder: None,
        created: 0,
        namespaces: Vec::new(),
        net: None,
        detached: false,
        ..r.clone()
    };
    assert_eq!(Record::parse(&starting.render()), Ok(starting.clone()));
    let bypass = Record {
        bypass: Some("10.42.0.0/24 ipv6 host-loopback".into()),
        ..r
    };
    assert_eq!(Record::parse(&bypass.render()), Ok(bypass));
    for home in [
        None,
        Some("/home/u/.local/share/become-root/podman-keep-id".into()),
    ] {
        let containers = Record {
            containers: Some(Containers {
                map: "keep-id".into(),
                home,
                made_with: "--tmpfs=/sys/fs/cgroup --bind=/a b:/c".into(),
            }),
            ..starting.clone()
        };
        assert_eq!(Record::parse(&containers.render()), Ok(containers));
    }
}

#[test]
fn record_parse_rules() {
    let good = record().render();
    let table: &[(&str, bool)] = &[
        (&good, true),
        (&format!("{good}future=key\n"), true),
        (&good.replace(MAGIC, "become-root session 2"), false),
        (&good.replace("supervisor=10 1000", "supervisor=10"), false),
        (&good.replace("holder=11 1001", "holder=x 1001"), false),
        (&good.replace("pid_ns=4026531836\n", ""), false),
        (&good.replace("name=build\n", ""), false),
        ("", false),
    ];
    for (text, ok) in table {
        assert_eq!(Record::parse(text).is_ok(), *ok, "{text}");
    }
}

#[test]
fn state_dir_location() {
    let table: &[(Option<&str>, &str)] = &[
        (Some("/run/user/1000"), "/run/user/1000/become-root"),
        (None, "/tmp/become-root-1000"),
        (Some(""), "/tmp/become-root-1000"),
        (Some("relative/dir"), "/tmp/become-root-1000"),
    ];
    for (xdg, want) in table {
        let got = state_dir_for(xdg.map(std::ffi::OsStr::new), 1000);
        assert_eq!(got, PathBuf::from(want), "{xdg:?}");
    }
}

#[test]
fn root_outside() {
    let table: &[(&str, Option<u32>)] = &[
        (
            "         0       4242          1\n         1     100000      65536\n",
            Some(4242),
        ),
        ("         0          0 4294967295\n", Some(0)),
        ("      1000       1000          1\n", None),
        ("", None),
    ];
    for (map, want) in table {
        assert_eq!(outside_uid_of_root(map), *want, "{map:?}");
    }
}

#[test]
fn utc_times() {
    let table: &[(u64, &str)] = &[
        (0, "1970-01-01T00:00:00Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (1_700_000_000, "2023-11-14T22:13:20Z"),
        (4_102_444_799, "2099-12-31T23:59:59Z"),
    ];
    for (secs, want) in table {
        assert_eq!(utc(*secs), *want);
    }
}

#[test]
fn this_process_is_alive_and_a_reused_pid_is_not() {
    let me = Proc::current().unwrap();
    assert!(me.alive());
    let reused = Proc {
        start: me.start + 1,
        ..me
    };
    assert!(!reused.alive(), "another start time: another process");
    assert!(
        !Proc {
            pid: i32::MAX,
            start: 1
        }
        .alive()
    );
}
