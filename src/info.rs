//! `--info-fd`: a machine-readable account of what was set up, written as one JSON object per
//! line when the namespaces are ready, and a second one when COMMAND ends. JSON is written
//! by hand (a few fields of known shape do not need a serializer dependency).

use std::io::Write as _;
use std::os::fd::{BorrowedFd, RawFd};

use nix::unistd::Pid;

use crate::idmap::IdMap;
use crate::json::json_string;
use crate::process::Ending;

/// Check that `fd` is open, and keep it from COMMAND and every helper (close-on-exec).
pub fn claim(fd: RawFd) -> Result<(), crate::error::Error> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let bad = || {
        crate::error::Error::usage(
            format!("--info-fd={fd}: not an open file descriptor"),
            format!("open it for become-root, e.g. become-root --info-fd={fd} ... {fd}>info.json"),
        )
    };
    if fd < 0 {
        return Err(bad());
    }
    // fcntl on a number that is not open fails with EBADF, which is the check.
    let borrowed = crate::sys::borrow_fd(fd);
    fcntl(borrowed, FcntlArg::F_GETFD).map_err(|_| bad())?;
    // Refused now rather than found out when the namespaces are ready, with nothing said.
    let flags = fcntl(borrowed, FcntlArg::F_GETFL).map_err(|_| bad())?;
    if flags & nix::libc::O_ACCMODE == nix::libc::O_RDONLY {
        return Err(crate::error::Error::usage(
            format!("--info-fd={fd}: open for reading only, so nothing can be written to it"),
            format!("open it for writing: {fd}>FILE, or {fd}>&1"),
        ));
    }
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|_| bad())?;
    Ok(())
}

fn map_json(map: &IdMap) -> String {
    let extents: Vec<String> = map
        .ranges()
        .iter()
        .map(|r| format!("[{},{},{}]", r.inside(), r.outside(), r.count()))
        .collect();
    format!("[{}]", extents.join(","))
}

/// The namespace inode numbers of `pid`, for the kinds named.
fn namespaces_json(pid: Pid, kinds: &[&str]) -> String {
    let fields: Vec<String> = kinds
        .iter()
        .filter_map(|kind| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
            let text = link.to_string_lossy().into_owned();
            let inode = text.rsplit_once('[')?.1.trim_end_matches(']').to_string();
            Some(format!("{}:{inode}", json_string(kind)))
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// The first IPv4 address of `pid`'s network namespace other than loopback, from
/// /proc/PID/net/fib_trie (a LOCAL /32 entry follows its address).
pub fn address_of(pid: Pid) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie")).ok()?;
    let mut last = None;
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if line.starts_with("/32 host LOCAL") {
            if let Some(addr) = last.take().filter(|a: &String| !a.starts_with("127.")) {
                return Some(addr);
            }
        } else if line.split('.').count() == 4 && !line.contains(' ') {
            last = Some(line.to_string());
        }
    }
    None
}

/// What /proc shows of the namespace process while it waits to be released: its namespaces
/// and its address. Read then, not when it reports ready: by that time COMMAND may be over
/// and its /proc entries gone (a race that lost them in 78 of 200 runs of `true`).
pub struct Observed {
    namespaces: String,
    address: Option<String>,
}

/// Read [`Observed`] of `pid`, for the namespace kinds named.
pub fn observe(pid: Pid, kinds: &[&str]) -> Observed {
    Observed {
        namespaces: namespaces_json(pid, kinds),
        address: address_of(pid),
    }
}

/// What is known once the namespaces are ready.
pub struct Ready<'a> {
    pub pid: Pid,
    pub uid_map: &'a IdMap,
    pub gid_map: &'a IdMap,
    /// How the uid and gid maps were made: "full", "keep-id", "explicit", ...
    pub how: (&'a str, &'a str),
    /// The uid and gid COMMAND runs as inside.
    pub runs_as: (u32, u32),
    /// --drop-groups: COMMAND has no supplementary groups.
    pub groups_dropped: bool,
    pub observed: &'a Observed,
    pub net_mode: Option<&'a str>,
    /// (host address, port inside, protocol) of each published port, ports chosen.
    pub ports: Vec<(String, u16, String)>,
    /// The session's name and state directory, for a named run.
    pub session: Option<(String, String)>,
    /// --cgroup: the run's cgroup.
    pub cgroup: Option<&'a crate::cgroup::Own>,
}

impl Ready<'_> {
    pub fn to_json(&self) -> String {
        let network = match self.net_mode {
            None => "null".to_string(),
            Some(mode) => {
                let address = self
                    .observed
                    .address
                    .as_ref()
                    .map(|a| json_string(a))
                    .unwrap_or_else(|| "null".into());
                let ports = ports_array(&self.ports);
                format!(
                    "{{\"mode\":{},\"address\":{address},\"ports\":{ports}}}",
                    json_string(mode),
                )
            }
        };
        let cgroup = self.cgroup.map_or("null".to_string(), cgroup_json);
        format!(
            "{{\"event\":\"ready\",\"pid\":{},\"uid_map\":{},\"gid_map\":{},\"map\":{{\"uid\":{},\"gid\":{}}},\"runs_as\":{{\"uid\":{},\"gid\":{}}},\"supplementary_groups\":{},\"namespaces\":{},\"network\":{network},\"session\":{},\"state_dir\":{},\"cgroup\":{cgroup}}}",
            self.pid,
            map_json(self.uid_map),
            map_json(self.gid_map),
            json_string(self.how.0),
            json_string(self.how.1),
            self.runs_as.0,
            self.runs_as.1,
            json_string(if self.groups_dropped {
                "dropped"
            } else {
                "kept"
            }),
            self.observed.namespaces,
            self.session
                .as_ref()
                .map_or("null".into(), |(name, _)| json_string(name)),
            self.session
                .as_ref()
                .map_or("null".into(), |(_, dir)| json_string(dir)),
        )
    }
}

/// `{"path": "/sys/fs/cgroup/...", "scope": "become-root-4242.scope" or null, "limits":
/// {"memory": "67108864", ...}}`.
pub fn cgroup_json(own: &crate::cgroup::Own) -> String {
    let scope = match &own.source {
        crate::cgroup::Source::Scope(unit) => json_string(unit),
        crate::cgroup::Source::Leaf => "null".into(),
    };
    let limits: Vec<String> = own
        .limits
        .describe()
        .iter()
        .map(|(name, value)| format!("{}:{}", json_string(name), json_string(value)))
        .collect();
    format!(
        "{{\"path\":{},\"scope\":{scope},\"limits\":{{{}}}}}",
        json_string(&own.path.to_string_lossy()),
        limits.join(",")
    )
}

/// The second object: how COMMAND ended.
pub fn ended_json(ending: Ending) -> String {
    match ending {
        Ending::Exited(code) => format!("{{\"event\":\"exited\",\"exit_status\":{code}}}"),
        Ending::Killed(sig) | Ending::Stopped(sig) => format!(
            "{{\"event\":\"killed\",\"signal\":{},\"signal_name\":{},\"exit_status\":{}}}",
            sig as i32,
            json_string(sig.as_str()),
            128 + sig as i32
        ),
        Ending::Ready | Ending::Helper(_) => "{\"event\":\"ready\"}".into(),
    }
}

/// The published ports as a JSON array of {"host", "ns_port", "proto"}.
fn ports_array(ports: &[(String, u16, String)]) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|(host, ns_port, proto)| {
            format!(
                "{{\"host\":{},\"ns_port\":{ns_port},\"proto\":{}}}",
                json_string(host),
                json_string(proto)
            )
        })
        .collect();
    format!("[{}]", ports.join(","))
}

/// The line said when a session's ports change (live ports): `{"event":"ports","ports":[...]}`.
pub fn ports_json(ports: &[(String, u16, String)]) -> String {
    format!("{{\"event\":\"ports\",\"ports\":{}}}", ports_array(ports))
}

/// Write one line to the info descriptor; a reader that went away is not an error of ours.
pub fn write_line(fd: RawFd, json: &str) {
    let borrowed: BorrowedFd<'_> = crate::sys::borrow_fd(fd);
    if let Ok(owned) = borrowed.try_clone_to_owned() {
        let mut file = std::fs::File::from(owned);
        let _ = file.write_all(format!("{json}\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::{ended_json, map_json};
    use crate::idmap::IdMap;
    use crate::process::Ending;

    #[test]
    fn ended_objects() {
        assert_eq!(
            ended_json(Ending::Exited(42)),
            "{\"event\":\"exited\",\"exit_status\":42}"
        );
        assert_eq!(
            ended_json(Ending::Killed(nix::sys::signal::Signal::SIGTERM)),
            "{\"event\":\"killed\",\"signal\":15,\"signal_name\":\"SIGTERM\",\"exit_status\":143}"
        );
    }

    #[test]
    fn maps_as_arrays() {
        let map = IdMap::full(
            4242,
            &[crate::subid::SubRange {
                start: 100000,
                count: 65536,
            }],
        )
        .unwrap();
        assert_eq!(map_json(&map), "[[0,4242,1],[1,100000,65536]]");
    }
}
