//! Sessions: the processes a session is made of, and its state file (`NAME.session`) as
//! text: pure, apart from reading /proc.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::stat;
use nix::unistd::{Uid, getpid};

use super::{KINDS, MAGIC};

// ---- processes ------------------------------------------------------------------------------

/// A process, identified beyond its pid by its start time (clock ticks after boot, field 22
/// of /proc/PID/stat), which a new process reusing the pid cannot share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
}

impl Proc {
    /// The calling process.
    pub fn current() -> Option<Proc> {
        let pid = getpid().as_raw();
        let (_, start) = read_stat(pid)?;
        Some(Proc { pid, start })
    }

    /// `pid`, if it is alive (a zombie is not).
    pub fn of(pid: i32) -> Option<Proc> {
        match read_stat(pid)? {
            ('Z' | 'X', _) => None,
            (_, start) => Some(Proc { pid, start }),
        }
    }

    /// Still the same process, and not a zombie.
    pub fn alive(&self) -> bool {
        Proc::of(self.pid) == Some(*self)
    }
}

pub(super) fn read_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// The state (field 3) and start time (field 22) from /proc/PID/stat. The command name
/// (field 2) is in parentheses and may itself contain spaces and parentheses, so the fields
/// are counted after the last ')'. It is bytes, not text: any 15 bytes a process chose with
/// PR_SET_NAME, or its executable's name cut at 15 bytes, which can split a UTF-8 character.
pub fn parse_stat(stat: &[u8]) -> Option<(char, u64)> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // fields 4..=21 come between
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The inode of the calling process's namespace of `kind`.
pub(super) fn own_namespace(kind: &str) -> Option<u64> {
    stat(format!("/proc/self/ns/{kind}").as_str())
        .ok()
        .map(|st| st.st_ino)
}

/// The inode named by a namespace link's text, `user:[4026531837]`.
pub(super) fn parse_ns_link(link: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(link).ok()?;
    text.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// The namespaces of `pid` that differ from the caller's, as (kind, inode).
pub(super) fn namespaces_of(pid: i32) -> Vec<(String, u64)> {
    KINDS
        .iter()
        .filter_map(|(kind, _)| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
            let ino = parse_ns_link(link.as_os_str().as_bytes())?;
            (Some(ino) != own_namespace(kind)).then(|| (kind.to_string(), ino))
        })
        .collect()
}

// ---- the state file -----------------------------------------------------------------------

/// What a state file says about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    /// become-root's own process, supervising from outside.
    pub supervisor: Proc,
    /// The process a join enters the namespaces of (COMMAND, the pause process, or the pid
    /// namespace's init); `None` while the session is still being set up.
    pub holder: Option<Proc>,
    /// The pid namespace in which both pids mean these processes.
    pub pid_ns: u64,
    /// Seconds since the epoch, when the session became ready.
    pub created: u64,
    /// The namespaces the session has (those that differ from its creator's): kind, inode.
    pub namespaces: Vec<(String, u64)>,
    /// `none`, `slirp4netns` or `pasta`, with a network namespace.
    pub net: Option<String>,
    /// How the network helper ended, if it died while the session ran.
    pub net_down: Option<String>,
    /// --cgroup: the run's cgroup, and its limits as `memory=67108864 pids=20`.
    pub cgroup: Option<String>,
    pub limits: Option<String>,
    /// --boot: --stop has the supervisor halt the image with SIGRTMIN+3, and waits longer.
    pub boot: bool,
    /// --stop-timeout: how long --stop waits before SIGKILL, when the run was given one.
    pub stop_timeout: Option<u64>,
    /// The published ports as the user reaches them: `127.0.0.1:8080->80/tcp`.
    pub ports: Vec<String>,
    /// How a detached session ended (`exited 3`, `killed by SIGTERM`): its state and log are
    /// kept for --list and --logs until --stop removes them or a new session takes the name.
    pub ended: Option<String>,
    pub detached: bool,
    /// A containers namespace (containers::namespace), made by a `become-root podman ...`.
    pub containers: Option<Containers>,
}

/// What a containers namespace's record says beyond a session's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containers {
    /// The map mode it was made for (`auto`, `keep-id`...).
    pub map: String,
    /// podman's own home there, for a map other than rootless podman's own.
    pub home: Option<String>,
    /// The filesystem options it was made with, as given (`--tmpfs=/sys/fs/cgroup`).
    pub made_with: String,
}

impl Record {
    /// The text of the state file: `key=value` lines after a first line naming the format.
    pub fn render(&self) -> String {
        let proc = |p: &Proc| format!("{} {}", p.pid, p.start);
        let mut out = format!("{MAGIC}\nname={}\n", self.name);
        let _ = writeln!(out, "supervisor={}", proc(&self.supervisor));
        if let Some(holder) = &self.holder {
            let _ = writeln!(out, "holder={}", proc(holder));
        }
        let _ = writeln!(out, "pid_ns={}", self.pid_ns);
        let _ = writeln!(out, "created={}", self.created);
        let ns: Vec<String> = self
            .namespaces
            .iter()
            .map(|(kind, ino)| format!("{kind}:{ino}"))
            .collect();
        let _ = writeln!(out, "namespaces={}", ns.join(" "));
        if let Some(net) = &self.net {
            let _ = writeln!(out, "net={net}");
        }
        if let Some(down) = &self.net_down {
            let _ = writeln!(out, "net_down={}", down.replace('\n', " "));
        }
        if let Some(cgroup) = &self.cgroup {
            let _ = writeln!(out, "cgroup={}", cgroup.replace('\n', " "));
        }
        if let Some(limits) = &self.limits {
            let _ = writeln!(out, "limits={limits}");
        }
        if self.boot {
            let _ = writeln!(out, "boot=yes");
        }
        if let Some(seconds) = self.stop_timeout {
            let _ = writeln!(out, "stop_timeout={seconds}");
        }
        if !self.ports.is_empty() {
            let _ = writeln!(out, "ports={}", self.ports.join(" "));
        }
        if let Some(ended) = &self.ended {
            let _ = writeln!(out, "ended={}", ended.replace('\n', " "));
        }
        let _ = writeln!(out, "detached={}", if self.detached { "yes" } else { "no" });
        if let Some(c) = &self.containers {
            let _ = writeln!(out, "containers={}", c.map);
            if let Some(home) = &c.home {
                let _ = writeln!(out, "containers_home={}", home.replace('\n', " "));
            }
            let _ = writeln!(
                out,
                "containers_made_with={}",
                c.made_with.replace('\n', " ")
            );
        }
        out
    }

    /// Parse a state file; unknown keys are ignored (a newer become-root may add some).
    // long: one match arm per key of the state file, each a line
    pub fn parse(text: &str) -> Result<Record, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("the first line is not {MAGIC:?}"));
        }
        let proc = |v: &str| -> Result<Proc, String> {
            let (pid, start) = v.split_once(' ').ok_or("a pid and a start time")?;
            Ok(Proc {
                pid: pid.parse().map_err(|_| format!("bad pid {pid:?}"))?,
                start: start.parse().map_err(|_| format!("bad start {start:?}"))?,
            })
        };
        let number = |k: &str, v: &str| v.parse::<u64>().map_err(|_| format!("bad {k} {v:?}"));
        let (mut name, mut supervisor, mut holder, mut pid_ns, mut created) =
            (None, None, None, None, None);
        let mut namespaces = Vec::new();
        let mut net = None;
        let mut net_down = None;
        let (mut cgroup, mut limits) = (None, None);
        let mut detached = false;
        let mut boot = false;
        let mut stop_timeout = None;
        let mut ports = Vec::new();
        let mut ended = None;
        let mut containers = None;
        let (mut home, mut made_with) = (None, String::new());
        for line in lines {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "name" => name = Some(value.to_string()),
                "supervisor" => supervisor = Some(proc(value)?),
                "holder" => holder = Some(proc(value)?),
                "pid_ns" => pid_ns = Some(number(key, value)?),
                "created" => created = Some(number(key, value)?),
                "namespaces" => {
                    for item in value.split_whitespace() {
                        let (kind, ino) = item.split_once(':').ok_or("bad namespace")?;
                        namespaces.push((kind.to_string(), number(kind, ino)?));
                    }
                }
                "net" => net = Some(value.to_string()),
                "net_down" => net_down = Some(value.to_string()),
                "cgroup" => cgroup = Some(value.to_string()),
                "limits" => limits = Some(value.to_string()),
                "detached" => detached = value == "yes",
                "boot" => boot = value == "yes",
                "stop_timeout" => stop_timeout = Some(number(key, value)?),
                "ports" => ports = value.split_whitespace().map(str::to_string).collect(),
                "ended" => ended = Some(value.to_string()),
                // (A carriage return that ends the file's last line is not part of a value
                // become-root wrote.)
                "containers" => containers = Some(value.trim_end_matches('\r').to_string()),
                "containers_home" => home = Some(value.trim_end_matches('\r').to_string()),
                "containers_made_with" => made_with = value.trim_end_matches('\r').to_string(),
                _ => {}
            }
        }
        Ok(Record {
            name: name.ok_or("no name")?,
            supervisor: supervisor.ok_or("no supervisor")?,
            holder,
            pid_ns: pid_ns.ok_or("no pid_ns")?,
            created: created.unwrap_or(0),
            namespaces,
            net,
            net_down,
            cgroup,
            limits,
            boot,
            stop_timeout,
            ports,
            ended,
            detached,
            containers: containers.map(|map| Containers {
                map,
                home,
                made_with,
            }),
        })
    }

    /// What --list says of the session: starting, running, that its network is down, or how
    /// it ended. A containers namespace says so.
    pub fn status(&self) -> String {
        let status = match (&self.ended, &self.net_down, self.created) {
            (Some(ended), _, _) => format!("ended: {ended}"),
            (None, Some(down), _) => format!("network down: {down}"),
            (None, None, 0) => "starting".into(),
            (None, None, _) => "running".into(),
        };
        match self.containers {
            Some(_) => format!("{status} (containers)"),
            None => status,
        }
    }

    /// Whether the session still runs: its holder lives, or its supervisor does (setting it
    /// up, booting its image again, or about to record how it ended: a reader that took the
    /// record for stale in that moment would remove what the supervisor keeps). An ended
    /// session does not.
    pub fn alive(&self) -> bool {
        if self.ended.is_some() {
            return false;
        }
        self.holder.as_ref().is_some_and(Proc::alive) || self.supervisor.alive()
    }

    /// Whether more of its output may still reach its log: it has not ended, and its holder
    /// or its supervisor lives (the supervisor copies COMMAND's last output into the log after
    /// COMMAND is gone, and then records the end).
    pub fn writing(&self) -> bool {
        self.ended.is_none() && (self.holder.is_some_and(|h| h.alive()) || self.supervisor.alive())
    }

    pub(super) fn namespace(&self, kind: &str) -> Option<u64> {
        self.namespaces
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, ino)| *ino)
    }
}

/// Where the state lives: `$XDG_RUNTIME_DIR/become-root` when XDG_RUNTIME_DIR is an absolute
/// path, else `/tmp/become-root-UID`.
pub fn state_dir_for(xdg_runtime_dir: Option<&std::ffi::OsStr>, uid: u32) -> PathBuf {
    match xdg_runtime_dir.map(Path::new) {
        Some(dir) if dir.is_absolute() => dir.join("become-root"),
        _ => PathBuf::from(format!("/tmp/become-root-{uid}")),
    }
}

/// Where the state lives for the caller. As root in a user namespace (inside a session, say)
/// the fallback is named after the uid outside, so that a nested become-root finds the same
/// directory as its caller (which it sees owned by uid 0).
pub fn state_dir_location() -> PathBuf {
    let mut uid = Uid::current().as_raw();
    if uid == 0
        && let Ok(map) = std::fs::read_to_string("/proc/self/uid_map")
    {
        uid = outside_uid_of_root(&map).unwrap_or(0);
    }
    state_dir_for(std::env::var_os("XDG_RUNTIME_DIR").as_deref(), uid)
}

/// The id that uid 0 maps to, from the text of /proc/self/uid_map.
pub fn outside_uid_of_root(uid_map: &str) -> Option<u32> {
    uid_map.lines().find_map(|line| {
        let mut fields = line.split_whitespace().map(str::parse::<u32>);
        match (fields.next(), fields.next()) {
            (Some(Ok(0)), Some(Ok(outside))) => Some(outside),
            _ => None,
        }
    })
}

/// Seconds since the epoch as an ISO 8601 UTC time, `2023-11-14T22:13:20Z` (days to civil
/// date after Howard Hinnant's `civil_from_days`).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::{
        Containers, MAGIC, Proc, Record, outside_uid_of_root, parse_ns_link, parse_stat,
        state_dir_for, utc,
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
            ..r
        };
        assert_eq!(Record::parse(&starting.render()), Ok(starting.clone()));
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
}
