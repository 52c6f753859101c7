//! podman, buildah and crun inside a run: the `_CONTAINERS_*` variables that tell podman and
//! buildah they are already in a user namespace someone else configured, the COMMANDs that
//! get a mount namespace without asking for one, and the warning for a host whose cgroup
//! layout crun refuses.
//!
//! podman and buildah (containers/storage's `unshare` package, podman's `rootless` package)
//! take `_CONTAINERS_USERNS_CONFIGURED` to mean "the user and mount namespaces are made": they
//! then neither re-exec into namespaces of their own nor ask whether they may mount. Without
//! a mount namespace of the run's that is false, and their first mount fails (`mount
//! --make-rshared .../netns failed: operation not permitted`, `failed to mount shm tmpfs`). So
//! the variables are set only when the run has a mount namespace, and a COMMAND that is podman
//! or buildah gets one by default, as `podman unshare` always has one. Every other run stays
//! without: a mount namespace costs start-up time (README, "Benchmark").

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::mountinfo;
use crate::userns::{Caller, Warning};

/// The programs that read `_CONTAINERS_USERNS_CONFIGURED` and mount as soon as they run
/// anything: a COMMAND by one of these names gets a mount namespace.
const NEED_MOUNT_NS: [&str; 2] = ["podman", "buildah"];

/// The programs that end in crun (or runc), which refuses a hybrid cgroup layout.
const RUN_CONTAINERS: [&str; 3] = ["podman", "buildah", "crun"];

/// The basename of COMMAND's program, as podman would be named: `/usr/bin/podman` is
/// `podman`.
fn program(command: &[OsString]) -> Option<&OsStr> {
    command.first().and_then(|p| Path::new(p).file_name())
}

/// Which of `names` COMMAND's program is.
fn named(command: &[OsString], names: &[&'static str]) -> Option<&'static str> {
    let name = program(command)?;
    names.iter().copied().find(|n| OsStr::new(n) == name)
}

/// Whether COMMAND is podman or buildah, which need a mount namespace of the run's.
pub fn needs_mount_ns(command: &[OsString]) -> bool {
    named(command, &NEED_MOUNT_NS).is_some()
}

/// The `_CONTAINERS_*` variables for a run by `caller`: none for real root (podman is rootful
/// there, rightly), none without a mount namespace (see the module's comment), else
/// `_CONTAINERS_USERNS_CONFIGURED=done` and the caller's uid and gid outside, which podman
/// uses as the rootless user (its runtime directory, D-Bus authentication to the user's
/// systemd).
pub fn env(caller: &Caller, mount_ns: bool) -> Vec<(OsString, OsString)> {
    if caller.uid == 0 || !mount_ns {
        return Vec::new();
    }
    vec![
        ("_CONTAINERS_USERNS_CONFIGURED".into(), "done".into()),
        (
            "_CONTAINERS_ROOTLESS_UID".into(),
            caller.uid.to_string().into(),
        ),
        (
            "_CONTAINERS_ROOTLESS_GID".into(),
            caller.gid.to_string().into(),
        ),
    ]
}

/// How the host mounts cgroups at /sys/fs/cgroup, as crun tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup2 at /sys/fs/cgroup.
    Unified,
    /// A tmpfs of v1 hierarchies, and a cgroup2 below it (systemd's "hybrid": /sys/fs/cgroup/unified).
    Hybrid { v2: std::path::PathBuf },
    /// v1 only, or nothing mounted there.
    Other,
}

/// The layout that `entries` (a mountinfo) show at /sys/fs/cgroup: what a lookup of the path
/// reaches, and what is mounted below it.
pub fn cgroup_layout(entries: &[mountinfo::Entry]) -> CgroupLayout {
    let root = Path::new("/sys/fs/cgroup");
    let Some(top) = entries.iter().rev().find(|e| e.mount_point == root) else {
        return CgroupLayout::Other;
    };
    if top.fs_type == "cgroup2" {
        return CgroupLayout::Unified;
    }
    if top.fs_type != "tmpfs" {
        return CgroupLayout::Other;
    }
    // Only what is mounted on top of that tmpfs counts (a v2 under a tmpfs that covers it
    // is out of reach).
    let v2 = entries
        .iter()
        .find(|e| e.parent == top.id && e.fs_type == "cgroup2" && e.mount_point.starts_with(root));
    match v2 {
        Some(e) => CgroupLayout::Hybrid {
            v2: e.mount_point.clone(),
        },
        None => CgroupLayout::Other,
    }
}

/// Whether a filesystem option puts something of its own at /sys/fs/cgroup (or over /sys
/// or /sys/fs), so that COMMAND does not see the host's layout.
pub fn covers_cgroup_dir(targets: &[&Path]) -> bool {
    let cgroup = Path::new("/sys/fs/cgroup");
    targets
        .iter()
        .any(|t| cgroup.starts_with(t) && t.starts_with("/sys"))
}

/// The warning for podman, buildah or crun as COMMAND on a hybrid host: crun fails there
/// with "cgroups in hybrid mode not supported, drop all controllers from cgroupv2", which
/// does not say what to do.
pub fn cgroup_warning(
    command: &[OsString],
    layout: &CgroupLayout,
    covered: bool,
) -> Option<Warning> {
    let name = named(command, &RUN_CONTAINERS)?;
    let CgroupLayout::Hybrid { v2 } = layout else {
        return None;
    };
    if covered {
        return None;
    }
    Some(Warning {
        why: format!(
            "{name}: this host mounts cgroup v1 and v2 side by side (a tmpfs of v1 hierarchies \
             at /sys/fs/cgroup, v2 at {}), and crun refuses to run containers there \
             (\"cgroups in hybrid mode not supported\")",
            v2.display()
        ),
        hint: Some(
            "add --tmpfs=/sys/fs/cgroup to hide the host's cgroups from COMMAND (containers \
             then run without cgroup limits), or boot the host with \
             systemd.unified_cgroup_hierarchy=1 (cgroup v2 only)"
                .into(),
        ),
    })
}

/// The warning for a run of `command`, reading this process's mountinfo (only when COMMAND
/// is one of the programs concerned, so that other runs pay nothing).
pub fn warning_for(command: &[OsString], targets: &[&Path]) -> Option<Warning> {
    named(command, &RUN_CONTAINERS)?;
    let text = std::fs::read("/proc/self/mountinfo").ok()?;
    let layout = cgroup_layout(&mountinfo::parse(&text));
    cgroup_warning(command, &layout, covers_cgroup_dir(targets))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::Path;

    use super::{
        CgroupLayout, cgroup_layout, cgroup_warning, covers_cgroup_dir, env, needs_mount_ns,
    };
    use crate::mountinfo;
    use crate::userns::Caller;

    fn words(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn which_commands_get_a_mount_namespace() {
        let rows = [
            (&["podman", "run", "img"][..], true),
            (&["/usr/bin/podman"], true),
            (&["buildah", "from", "scratch"], true),
            (&["./bin/buildah"], true),
            (&["crun", "run"], false),
            (&["podman-remote"], false),
            (&["sh", "-c", "podman run img"], false),
            (&["true"], false),
            (&[], false),
        ];
        for (command, want) in rows {
            assert_eq!(needs_mount_ns(&words(command)), want, "{command:?}");
        }
    }

    #[test]
    fn variables_only_with_a_mount_namespace_and_not_for_real_root() {
        let user = Caller {
            uid: 1000,
            gid: 100,
            name: None,
            nested: None,
        };
        let root = Caller {
            uid: 0,
            ..user.clone()
        };
        let names = |env: Vec<(OsString, OsString)>| {
            env.into_iter()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(env(&user, true)),
            [
                "_CONTAINERS_USERNS_CONFIGURED=done",
                "_CONTAINERS_ROOTLESS_UID=1000",
                "_CONTAINERS_ROOTLESS_GID=100"
            ]
        );
        assert!(env(&user, false).is_empty(), "no mount namespace");
        assert!(env(&root, true).is_empty(), "real root: podman is rootful");
    }

    const UNIFIED: &str = "\
22 1 254:0 / / rw - ext4 /dev/vda rw
24 22 0:22 / /sys rw - sysfs sysfs rw
26 24 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
";
    const HYBRID: &str = "\
22 1 254:0 / / rw - ext4 /dev/vda rw
24 22 0:22 / /sys rw - sysfs sysfs rw
31 24 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
    const LEGACY: &str = "\
22 1 254:0 / / rw - ext4 /dev/vda rw
31 22 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
    /// HYBRID with a tmpfs over /sys/fs/cgroup (what --tmpfs=/sys/fs/cgroup makes).
    const HYBRID_COVERED: &str = "\
22 1 254:0 / / rw - ext4 /dev/vda rw
31 22 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
50 31 0:50 / /sys/fs/cgroup rw - tmpfs tmpfs rw
";

    #[test]
    fn cgroup_layouts() {
        let hybrid = CgroupLayout::Hybrid {
            v2: "/sys/fs/cgroup/unified".into(),
        };
        let rows = [
            (UNIFIED, CgroupLayout::Unified),
            (HYBRID, hybrid),
            (LEGACY, CgroupLayout::Other),
            (HYBRID_COVERED, CgroupLayout::Other),
            (
                "22 1 254:0 / / rw - ext4 /dev/vda rw\n",
                CgroupLayout::Other,
            ),
        ];
        for (text, want) in rows {
            assert_eq!(
                cgroup_layout(&mountinfo::parse(text.as_bytes())),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn which_targets_cover_the_cgroup_directory() {
        let rows = [
            (&["/sys/fs/cgroup"][..], true),
            (&["/sys/fs"], true),
            (&["/sys"], true),
            (&["/sys/fs/cgroup/unified"], false),
            (&["/tmp", "/sys/fs/cgroupx"], false),
            (&["/"], false),
            (&[], false),
        ];
        for (targets, want) in rows {
            let paths: Vec<&Path> = targets.iter().map(Path::new).collect();
            assert_eq!(covers_cgroup_dir(&paths), want, "{targets:?}");
        }
    }

    #[test]
    fn warning_names_the_program_the_layout_and_the_fixes() {
        let hybrid = cgroup_layout(&mountinfo::parse(HYBRID.as_bytes()));
        let w = cgroup_warning(&words(&["/usr/bin/podman", "run"]), &hybrid, false).unwrap();
        assert!(
            w.why.starts_with("podman: this host mounts cgroup v1"),
            "{}",
            w.why
        );
        assert!(w.why.contains("/sys/fs/cgroup/unified"), "{}", w.why);
        let hint = w.hint.unwrap();
        assert!(hint.contains("--tmpfs=/sys/fs/cgroup"), "{hint}");
        assert!(
            hint.contains("systemd.unified_cgroup_hierarchy=1"),
            "{hint}"
        );
        for name in ["buildah", "crun"] {
            let w = cgroup_warning(&words(&[name]), &hybrid, false).unwrap();
            assert!(w.why.starts_with(&format!("{name}: ")), "{}", w.why);
        }
        let rows = [
            (
                &["podman"][..],
                &hybrid,
                true,
                "covered by a filesystem option",
            ),
            (&["sh"], &hybrid, false, "not a container program"),
            (&["podman"], &CgroupLayout::Unified, false, "cgroup v2 only"),
            (&["podman"], &CgroupLayout::Other, false, "v1 only"),
        ];
        for (command, layout, covered, why) in rows {
            assert_eq!(
                cgroup_warning(&words(command), layout, covered),
                None,
                "{why}"
            );
        }
    }
}
