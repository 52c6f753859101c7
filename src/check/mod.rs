//! `become-root --check`: can become-root work here, for this user, and if not, what fixes it.
//!
//! One line per item, `ok`, `warn` or `FAIL`, then what was found and, when it is not ok, the
//! fix. The verdicts come from trying where trying is cheap, not only from reading settings:
//! a forked child creates a user namespace, maps its own ids in it and mounts overlayfs on a
//! scratch tmpfs; another forked child gets the full mapping written by newuidmap and
//! newgidmap, exactly as a run would. The caller's own namespaces are never touched, the
//! scratch tmpfs lives only in the first child's private mount namespace and vanishes with it,
//! and both children are reaped (and die with become-root), so nothing is left behind.
//!
//! Exit status: [`EXIT_READY`] when a command could run with the `--map` given (with
//! `--map=auto` that may be only the caller's own ids, as 0), [`EXIT_NOT_READY`] when it could
//! not. `warn` never changes it: it marks an optional feature (networking, overlays) that is
//! unavailable. A `FAIL` about the full mapping changes it only under `--map=full`, because
//! `--map=auto` falls back to the single mapping.

use std::fmt;
use std::io::Write;

use nix::unistd::{AccessFlags, access};

use crate::net::{self, Driver};
use crate::options::{MapMode, SubidSource};
use crate::userns;

mod containers;
mod features;
mod kernel;
mod mapping;
mod pod;
mod probe;

use features::{bypass_item, device_item, program_item, tun_item};
use kernel::kernel_items;
use mapping::{helper_items, mapping_item, modes_item, no_new_privs_item, subid_items};
use pod::{emulate_item, proc_item, seccomp_item, settings_explain};
use probe::{NamespaceProbe, overlay_item, reap, userns_item};

/// A command could run (see the module documentation).
pub const EXIT_READY: i32 = 0;

/// No command could run: no user namespace, or the mapping asked for fails.
pub const EXIT_NOT_READY: i32 = 1;

const FUSE: &str = "/dev/fuse";

/// How an item turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// An optional feature is unavailable, or something works but is worth fixing.
    Warn,
    /// What the item names does not work.
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub level: Level,
    /// The thing checked: `newuidmap`, `/dev/net/tun`, ...
    pub what: String,
    /// What was found.
    pub found: String,
    /// How to fix it (never printed on an ok line).
    pub fix: Option<String>,
}

impl Item {
    fn ok(what: &str, found: impl Into<String>) -> Item {
        Item {
            level: Level::Ok,
            what: what.into(),
            found: found.into(),
            fix: None,
        }
    }

    fn warn(what: &str, found: impl Into<String>, fix: impl Into<Option<String>>) -> Item {
        Item {
            level: Level::Warn,
            what: what.into(),
            found: found.into(),
            fix: fix.into(),
        }
    }

    fn fail(what: &str, found: impl Into<String>, fix: impl Into<Option<String>>) -> Item {
        Item {
            level: Level::Fail,
            what: what.into(),
            found: found.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4}  {}: {}",
            self.level.label(),
            self.what,
            self.found
        )?;
        match &self.fix {
            Some(fix) if self.level != Level::Ok => write!(f, "; fix: {fix}"),
            _ => Ok(()),
        }
    }
}

/// The whole report and its verdict.
#[derive(Debug, Default)]
pub struct Report {
    pub items: Vec<Item>,
    /// Whether a command could run (the exit status).
    pub ready: bool,
}

impl Report {
    pub fn exit_status(&self) -> i32 {
        if self.ready {
            EXIT_READY
        } else {
            EXIT_NOT_READY
        }
    }
}

/// What `--check` is asked about: the mapping a run would use.
#[derive(Debug, Clone)]
pub struct Asked {
    pub map: MapMode,
    /// --map-users and --map-groups, as given.
    pub map_users: Vec<String>,
    pub map_groups: Vec<String>,
    pub subid_source: SubidSource,
    /// --net with --check: the connected mode and --cidr, --ipv6, --dns, to show as a run
    /// would set them up.
    pub network: Option<(crate::options::NetMode, Result<net::Addressing, String>)>,
}

/// `become-root --check`: print the report on stdout and return the exit status.
pub fn run(asked: Asked) -> i32 {
    let report = report(asked);
    let mut out = std::io::stdout().lock();
    for item in &report.items {
        let _ = writeln!(out, "{item}");
    }
    let _ = out.flush();
    report.exit_status()
}

/// Check everything, in the order the report prints it: the user namespace and the mapping
/// (the core), then filesystems, then networking.
/// The network a run with these options would have: the helper, addresses and resolvers.
fn network_item(
    mode: crate::options::NetMode,
    addressing: &Result<net::Addressing, String>,
) -> Item {
    let addressing = match addressing {
        Ok(a) => a.clone(),
        Err(e) => {
            let e = net::NetError::Addressing(e.clone());
            return Item::fail("network", e.to_string(), e.hint());
        }
    };
    match net::plan(Some(mode), 65520, false, addressing) {
        Ok(Some(plan)) => Item::ok("network", plan.addressing.describe(plan.driver)),
        Ok(None) => Item::ok("network", "loopback only (--net=none)".to_string()),
        Err(e) => Item::warn("network", e.to_string(), e.hint().unwrap_or_default()),
    }
}

pub fn report(cli: Asked) -> Report {
    let mut items = Vec::new();
    let mut ready = true;
    if let Err(e) = userns::refuse_privileged() {
        items.push(Item::fail("become-root", e.to_string(), None));
        ready = false;
    }
    let caller = match userns::caller() {
        Ok(caller) => caller,
        Err(e) => {
            let hint = e.hint();
            items.push(Item::fail("caller", e.to_string(), hint));
            return Report {
                items,
                ready: false,
            };
        }
    };

    // The namespace probe runs while the files are read.
    let probe = NamespaceProbe::start(&caller);
    let mut static_items = Vec::new();
    static_items.extend(helper_items(&caller));
    static_items.push(no_new_privs_item(&caller));
    static_items.extend(subid_items(cli.subid_source, &caller));
    let probed = probe.finish();

    items.extend(kernel_items());
    let userns_item = userns_item(&probed);
    let userns_ok = userns_item.level == Level::Ok;
    ready &= userns_ok;
    items.push(userns_item);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let seccomp = seccomp_item(&status, &probed, settings_explain(&probed));
    // After no_new_privs: in a container, the two come from the same securityContext.
    let at = static_items
        .iter()
        .position(|i| i.what == "no_new_privs")
        .map_or(static_items.len(), |i| i + 1);
    static_items.insert(at, seccomp);
    items.extend(static_items);
    let mapping = mapping_item(&cli, &caller, userns_ok);
    ready &= mapping.level != Level::Fail;
    items.push(mapping);
    items.push(modes_item(cli.subid_source, &caller));
    items.push(proc_item(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
    ));

    items.extend(feature_items(&probed, &cli));
    items.extend(leftover_item());
    items.extend(containers::containers_items(&caller));
    Report { items, ready }
}

/// The optional features, one item each: overlayfs, fuse-overlayfs and /dev/fuse, the network
/// helpers and /dev/net/tun, --emulate, the network asked for, and where a cgroup would come
/// from (with which controllers).
fn feature_items(probed: &probe::Probed, cli: &Asked) -> Vec<Item> {
    let mut items = vec![
        overlay_item(probed),
        program_item(
            crate::programs::FUSE_OVERLAYFS,
            "--overlay needs it when the kernel cannot mount overlayfs in a user namespace",
        ),
        device_item(
            FUSE,
            access(FUSE, AccessFlags::R_OK | AccessFlags::W_OK),
            "fuse-overlayfs needs it",
        ),
        program_item(Driver::Slirp4netns.helper(), "--net=slirp4netns needs it"),
        program_item(
            Driver::Pasta.helper(),
            "--net=pasta needs it, and --net=auto prefers it",
        ),
        tun_item(net::check_tun()),
        bypass_item(),
        emulate_item(&std::fs::read_to_string("/proc/filesystems").unwrap_or_default()),
    ];
    if let Some((mode, addressing)) = &cli.network {
        items.push(network_item(*mode, addressing));
    }
    // --cgroup and the limits: where a run's cgroup would come from, with which controllers.
    items.push(match crate::cgroup::describe_for_check() {
        Ok(found) => Item::ok("cgroup", found),
        Err((found, fix)) => Item::warn(
            "cgroup",
            found,
            fix.unwrap_or_else(|| {
                "--cgroup and the limits need a cgroup of your own: log in to a systemd user \
                 session (libpam-systemd, dbus-user-session)"
                    .to_string()
            }),
        ),
    });
    items
}

/// The cgroups the janitor of an earlier run reported it could not remove, when some are
/// still there.
fn leftover_item() -> Option<Item> {
    let (lines, file) = crate::session::leftovers();
    let last = lines.last()?;
    Some(Item::warn(
        "cgroup janitor",
        format!(
            "{} cgroup(s) of earlier runs left in place, the last: {last}",
            lines.len()
        ),
        format!(
            "remove each with `become-root find PATH -depth -type d -exec rmdir {{}} +` (root \
             inside may enter what your subordinate ids made); {} lists them",
            file.display()
        ),
    ))
}

#[cfg(test)]
mod tests {

    use super::Item;

    #[test]
    fn lines_show_level_what_found_and_fix_unless_ok() {
        let rows = [
            (
                Item::ok("pasta", "/usr/bin/pasta"),
                "ok    pasta: /usr/bin/pasta",
            ),
            (
                Item {
                    fix: Some("never shown".into()),
                    ..Item::ok("pasta", "/usr/bin/pasta")
                },
                "ok    pasta: /usr/bin/pasta",
            ),
            (
                Item::warn(
                    "pasta",
                    "not found on PATH",
                    "apt install passt".to_string(),
                ),
                "warn  pasta: not found on PATH; fix: apt install passt",
            ),
            (
                Item::fail("newuidmap", "x: not found", None),
                "FAIL  newuidmap: x: not found",
            ),
        ];
        for (item, want) in rows {
            assert_eq!(item.to_string(), want);
        }
    }
}
