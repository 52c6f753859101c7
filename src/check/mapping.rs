//! `--check`: newuidmap and newgidmap, no_new_privs, the subordinate ranges, and the full mapping
//! tried in a throwaway namespace, exactly as a run would.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};

use super::{Asked, Item, reap};
use crate::idmap::IdMap;
use crate::options::{MapMode, SubidSource};
use crate::subid::{self, SubRange};
use crate::sys::{self, Forked};
use crate::userns::{self, Caller, Mapping, Planned, UsernsError, Writer};

/// newuidmap and newgidmap: present, privileged, not on a nosuid mount.
pub(super) fn helper_items(caller: &Caller) -> Vec<Item> {
    [("NEWUIDMAP", "newuidmap"), ("NEWGIDMAP", "newgidmap")]
        .into_iter()
        .map(|(env, name)| {
            if caller.uid == 0 {
                return Item::ok(
                    name,
                    "not needed: as root, become-root writes the maps itself",
                );
            }
            match userns::find_helper(env, name) {
                Ok(path) => Item::ok(name, describe_helper(&path, env)),
                Err(e) => {
                    let hint = e.hint();
                    Item::fail(name, e.to_string(), hint)
                }
            }
        })
        .collect()
}

pub(super) fn describe_helper(path: &Path, env: &str) -> String {
    let setuid_root =
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o4000 != 0 && m.uid() == 0);
    let how = if setuid_root {
        "set-user-ID root"
    } else {
        "with file capabilities"
    };
    let from = if std::env::var_os(env).is_some_and(|v| !v.is_empty()) {
        format!(" (from {env})")
    } else {
        String::new()
    };
    format!("{}, {how}{from}", path.display())
}

pub(super) fn no_new_privs_item(caller: &Caller) -> Item {
    const WHAT: &str = "no_new_privs";
    match nix::sys::prctl::get_no_new_privs() {
        Ok(false) => Item::ok(WHAT, "not set"),
        Ok(true) if caller.uid == 0 => Item::ok(WHAT, "set, which does not matter to root"),
        Ok(true) => {
            let e = UsernsError::NoNewPrivs;
            let hint = e.hint();
            Item::fail(WHAT, e.to_string(), hint)
        }
        Err(errno) => Item::warn(WHAT, format!("cannot read it: {errno}"), None),
    }
}

/// The caller's subordinate ranges in /etc/subuid and /etc/subgid (or from getsubids), and
/// whether the two grant as many ids.
pub(super) fn subid_items(source: SubidSource, caller: &Caller) -> Vec<Item> {
    if caller.uid == 0 {
        return ["subuid", "subgid"]
            .into_iter()
            .map(|what| Item::ok(what, "not needed: root maps every id"))
            .collect();
    }
    let getsubids = match source {
        SubidSource::Files => false,
        SubidSource::Getsubids => true,
        SubidSource::Auto => userns::nsswitch_has_subid(),
    };
    let name = caller.display_name();
    let mut items = Vec::new();
    let mut totals = Vec::new();
    for (what, path) in [("subuid", userns::SUBUID), ("subgid", userns::SUBGID)] {
        let found = if getsubids {
            match userns::getsubids(&name, what == "subgid") {
                Ok(ranges) => Found::Ranges(ranges, Vec::new()),
                Err(e) => Found::Unreadable(e.to_string()),
            }
        } else {
            match std::fs::read(path) {
                Ok(text) => {
                    let parsed = subid::caller_ranges(&text, Path::new(path), &name, caller.uid);
                    let errors = parsed.errors.iter().map(ToString::to_string).collect();
                    Found::Ranges(parsed.ranges, errors)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Found::Ranges(Vec::new(), Vec::new())
                }
                Err(e) => Found::Unreadable(format!("reading {path}: {e}")),
            }
        };
        let origin = if getsubids { "getsubids" } else { path };
        let (item, total) = subid_item(what, origin, &name, found);
        items.push(item);
        totals.push(total);
    }
    if let [Some(uids), Some(gids)] = totals[..] {
        items.push(consistency_item(uids, gids));
    }
    items
}

/// What was found for the caller in one subid source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Found {
    /// Valid ranges and the caller's malformed lines (as `path:line: what`).
    Ranges(Vec<SubRange>, Vec<String>),
    Unreadable(String),
}

/// The line for one source, and the number of ids it grants (None when it grants none).
pub(super) fn subid_item(
    what: &str,
    origin: &str,
    user: &str,
    found: Found,
) -> (Item, Option<u64>) {
    let correct = "ask an administrator to correct the line (newuidmap ignores it as it is)";
    let (ranges, errors) = match found {
        Found::Unreadable(why) => {
            let fix = "check that the file is readable (it is 0644 on most systems), or for \
                       getsubids /etc/nsswitch.conf's subid line";
            return (Item::fail(what, why, fix.to_string()), None);
        }
        Found::Ranges(ranges, errors) => (ranges, errors),
    };
    if ranges.is_empty() {
        let item = if errors.is_empty() {
            let e = UsernsError::NoSubordinateIds {
                user: user.into(),
                path: origin.into(),
            };
            let hint = e.hint();
            Item::fail(what, e.to_string(), hint)
        } else {
            Item::fail(what, errors.join("; "), correct.to_string())
        };
        return (item, None);
    }
    let total: u64 = ranges.iter().map(|r| u64::from(r.count)).sum();
    let spans: Vec<String> = ranges
        .iter()
        .map(|r| {
            format!(
                "{}-{}",
                r.start,
                u64::from(r.start) + u64::from(r.count) - 1
            )
        })
        .collect();
    let found = format!("{total} ids for {user} in {origin}: {}", spans.join(", "));
    let item = if errors.is_empty() {
        Item::ok(what, found)
    } else {
        Item::warn(
            what,
            format!("{found}; ignoring {}, as newuidmap does", errors.join("; ")),
            correct.to_string(),
        )
    };
    (item, Some(total))
}

pub(super) fn consistency_item(uids: u64, gids: u64) -> Item {
    const WHAT: &str = "subuid/subgid";
    if uids == gids {
        return Item::ok(WHAT, format!("both grant {uids} ids"));
    }
    let (more, fewer) = if uids > gids {
        ("uid", "gid")
    } else {
        ("gid", "uid")
    };
    Item::warn(
        WHAT,
        format!(
            "{uids} subordinate uids but {gids} gids: inside, {more}s above {} have no {fewer} \
             of the same number",
            uids.min(gids)
        ),
        "ask an administrator to allocate the same number of ids in /etc/subuid and \
         /etc/subgid"
            .to_string(),
    )
}

/// The mapping a run would get with `--map`, `--map-users`, `--map-groups` and
/// `--subid-source` as given, tried for real when anything beyond the single map is asked.
pub(super) fn mapping_item(cli: &Asked, caller: &Caller, userns_ok: bool) -> Item {
    const WHAT: &str = "id mapping";
    if !userns_ok {
        return Item::fail(
            WHAT,
            "not tried: no user namespace can be made",
            "see the user namespaces line".to_string(),
        );
    }
    let single = format!(
        "only uid {} and gid {} (as 0), nothing else",
        caller.uid, caller.gid
    );
    let explicit = !cli.map_users.is_empty() || !cli.map_groups.is_empty();
    if cli.map == MapMode::Single && !explicit {
        return Item::ok(WHAT, format!("{single} (--map=single)"));
    }
    let ask = userns::Ask {
        mode: cli.map,
        users: &cli.map_users,
        groups: &cli.map_groups,
    };
    let asked = asked_text(cli);
    let mut warnings = Vec::new();
    let mapping = match userns::plan_mapping(&ask, cli.subid_source, caller, &mut warnings) {
        Ok(mapping) => mapping,
        Err(e) => {
            let hint = e.hint();
            // An entry's error names its option; anything else names what was asked.
            let found = match e {
                UsernsError::Entries { .. } | UsernsError::NotGranted { .. } => e.to_string(),
                _ => format!("{asked}: {e}"),
            };
            return Item::fail(WHAT, found, hint);
        }
    };
    if mapping.how.0 == Planned::Single && mapping.how.1 == Planned::Single {
        // --map=auto fell back; --map=full says why.
        let full = userns::Ask::mode(MapMode::Full);
        let why = match userns::plan_mapping(&full, cli.subid_source, caller, &mut Vec::new()) {
            Err(e) => e.to_string(),
            Ok(_) => "see the lines above".into(),
        };
        return Item::warn(
            WHAT,
            format!("{single}: the full mapping is not possible ({why})"),
            "fix the FAIL lines above; until then become-root maps only your own ids".to_string(),
        );
    }
    match try_mapping(&mapping) {
        Ok(()) => Item::ok(WHAT, mapped_text(&mapping, caller, &asked)),
        Err(e) => {
            let mut hint = e.hint();
            if userns::apparmor_restricts() {
                hint = Some(userns::apparmor_hint());
            }
            Item::fail(WHAT, e.to_string(), hint)
        }
    }
}

/// What a mapping that worked maps, who wrote it, and who COMMAND runs as.
fn mapped_text(mapping: &Mapping, caller: &Caller, asked: &str) -> String {
    let by = match mapping.writer {
        Writer::Helpers { .. } => "by newuidmap and newgidmap",
        Writer::SelfMap => "by become-root itself (only your own ids)",
        Writer::Privileged => "directly, as root",
    };
    let (uid, gid) = mapping.command_ids(caller);
    let show = |id: Option<u32>| id.map_or("unmapped".to_string(), |id| id.to_string());
    let runs_as = if (uid, gid) == (Some(0), Some(0)) {
        String::new()
    } else {
        format!(
            "; COMMAND runs as uid {} and gid {} inside",
            show(uid),
            show(gid)
        )
    };
    format!(
        "{} uids and {} gids mapped in a test namespace, {by} ({asked}: uid map {}; gid map \
         {}){runs_as}",
        mapping.uid.len(),
        mapping.gid.len(),
        extents_text(&mapping.uid),
        extents_text(&mapping.gid),
    )
}

/// The options that ask for the mapping, as given: `--map=keep-id`, `--map-users=...`.
fn asked_text(cli: &Asked) -> String {
    let mut words = vec![format!("--map={}", cli.map.name())];
    words.extend(cli.map_users.iter().map(|v| format!("--map-users={v}")));
    words.extend(cli.map_groups.iter().map(|v| format!("--map-groups={v}")));
    words.join(" ")
}

/// A map as `INNER:OUTER:COUNT` entries, the first few and how many more.
pub(super) fn extents_text(map: &IdMap) -> String {
    const SHOWN: usize = 4;
    let ranges = map.ranges();
    let mut parts: Vec<String> = ranges
        .iter()
        .take(SHOWN)
        .map(|r| format!("{}:{}:{}", r.inside(), r.outside(), r.count()))
        .collect();
    if ranges.len() > SHOWN {
        parts.push(format!("and {} more", ranges.len() - SHOWN));
    }
    parts.join(" ")
}

/// Which `--map` modes a run could use here, each planned as a run would plan it (helpers,
/// subordinate ranges, the kernel's limits) but not tried.
pub(super) fn modes_item(source: SubidSource, caller: &Caller) -> Item {
    const WHAT: &str = "map modes";
    let mut possible = Vec::new();
    let mut impossible = Vec::new();
    for mode in [MapMode::Full, MapMode::KeepId, MapMode::Subids] {
        let ask = userns::Ask::mode(mode);
        match userns::plan_mapping(&ask, source, caller, &mut Vec::new()) {
            Ok(m) => possible.push(format!(
                "{} ({} uids, {} gids)",
                mode.name(),
                m.uid.len(),
                m.gid.len()
            )),
            Err(e) => impossible.push(format!("{}: {e}", mode.name())),
        }
    }
    possible.push("single (1 uid, 1 gid)".to_string());
    let found = format!("possible: {}", possible.join(", "));
    if impossible.is_empty() {
        return Item::ok(WHAT, found);
    }
    Item::warn(
        WHAT,
        format!("{found}; not possible: {}", impossible.join("; ")),
        "fix the FAIL lines above; 'subid show' prints the map each mode makes".to_string(),
    )
}

/// Have `mapping` written to a fresh user namespace held by a forked child, the way a run
/// writes it.
pub(super) fn try_mapping(mapping: &Mapping) -> Result<(), UsernsError> {
    let sys_err = |what: &str, errno| UsernsError::Sys {
        what: what.into(),
        errno,
    };
    let (mut ours, theirs) = UnixStream::pair()
        .map_err(|e| sys_err("create a socket pair", crate::sys::io_errno(&e)))?;
    let pid = match sys::fork_process().map_err(|e| sys_err("fork", e))? {
        Forked::Child => {
            drop(ours);
            mapping_child(theirs.into())
        }
        Forked::Parent(pid) => pid,
    };
    drop(theirs);
    let mut word = [0u8; 4];
    let result = match ours.read_exact(&mut word) {
        Ok(()) => match i32::from_le_bytes(word) {
            0 => userns::write_maps(pid, mapping),
            errno => Err(userns::diagnose_unshare(Errno::from_raw(errno))),
        },
        Err(e) => Err(sys_err(
            "hear from the test namespace",
            crate::sys::io_errno(&e),
        )),
    };
    // End of file on the socket lets the child go.
    drop(ours);
    reap(pid);
    result
}

/// The child holding the test namespace: unshare, say how it went, wait to be let go.
pub(super) fn mapping_child(stream: OwnedFd) -> ! {
    sys::keep_only_fd(stream.as_raw_fd());
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let errno = match unshare(CloneFlags::CLONE_NEWUSER) {
        Ok(()) => 0,
        Err(errno) => errno as i32,
    };
    let mut stream = UnixStream::from(stream);
    let _ = stream.write_all(&errno.to_le_bytes());
    let _ = stream.read_to_end(&mut Vec::new());
    sys::exit_now(0)
}

#[cfg(test)]
mod tests {
    use super::{Found, consistency_item, subid_item};
    use crate::check::Level;
    use crate::subid::SubRange;

    #[test]
    fn subid_lines() {
        let range = |start, count| SubRange { start, count };
        let rows: [(Found, Level, Option<u64>, &str); 5] = [
            (
                Found::Ranges(vec![range(100000, 65536)], vec![]),
                Level::Ok,
                Some(65536),
                "65536 ids for u in /etc/subuid: 100000-165535",
            ),
            (
                Found::Ranges(vec![range(200000, 1000), range(300000, 5000)], vec![]),
                Level::Ok,
                Some(6000),
                "6000 ids for u in /etc/subuid: 200000-200999, 300000-304999",
            ),
            (
                Found::Ranges(
                    vec![range(100000, 65536)],
                    vec!["/etc/subuid:2: count is 0".into()],
                ),
                Level::Warn,
                Some(65536),
                "ignoring /etc/subuid:2: count is 0, as newuidmap does",
            ),
            (
                Found::Ranges(vec![], vec!["/etc/subuid:2: count is 0".into()]),
                Level::Fail,
                None,
                "/etc/subuid:2: count is 0",
            ),
            (
                Found::Ranges(vec![], vec![]),
                Level::Fail,
                None,
                "no entry for u in /etc/subuid",
            ),
        ];
        for (found, level, total, text) in rows {
            let (item, got) = subid_item("subuid", "/etc/subuid", "u", found.clone());
            assert_eq!((item.level, got), (level, total), "{found:?}");
            assert!(item.found.contains(text), "{item}");
            assert_eq!(item.fix.is_some(), level != Level::Ok, "{item}");
        }
    }

    #[test]
    fn unequal_subid_totals_warn() {
        assert_eq!(consistency_item(65536, 65536).level, Level::Ok);
        let item = consistency_item(65536, 1000);
        assert_eq!(item.level, Level::Warn);
        assert!(item.found.contains("uids above 1000 have no gid"), "{item}");
        let item = consistency_item(10, 20);
        assert!(item.found.contains("gids above 10 have no uid"), "{item}");
    }
}
