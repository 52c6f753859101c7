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
    /// --net=bypass: what its bypass allows (net::bypass::Policy's words), for a join's.
    pub bypass: Option<String>,
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
        if let Some(bypass) = &self.bypass {
            let _ = writeln!(out, "bypass={}", bypass.replace('\n', " "));
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
        let (mut net_down, mut bypass) = (None, None);
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
                "bypass" => bypass = Some(value.trim_end_matches('\r').to_string()),
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
            bypass,
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
pub(super) mod tests;
