//! podman, buildah and crun inside: the host's cgroup layout, and the warning for the one crun
//! refuses.

use std::ffi::OsString;
use std::path::Path;

use crate::mountinfo;
use crate::userns::Warning;

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

/// The warning for `program` (podman, buildah or crun) about to run a container on a hybrid
/// host: crun fails there with "cgroups in hybrid mode not supported, drop all controllers
/// from cgroupv2", which does not say what to do. `namespace`: the containers namespace the
/// command runs in, whose mounts are made once, when it is made.
pub fn cgroup_warning(
    program: &str,
    layout: &CgroupLayout,
    covered: bool,
    namespace: Option<&str>,
) -> Option<Warning> {
    let CgroupLayout::Hybrid { v2 } = layout else {
        return None;
    };
    if covered {
        return None;
    }
    let fix = match namespace {
        None => "add --tmpfs=/sys/fs/cgroup to hide the host's cgroups from COMMAND".to_string(),
        Some(name) => format!(
            "make the containers namespace again with the host's cgroups hidden: become-root \
             --stop={name} (it ends the containers in it), then become-root \
             --tmpfs=/sys/fs/cgroup {program} ..."
        ),
    };
    Some(Warning {
        why: format!(
            "{program}: this host mounts cgroup v1 and v2 side by side (a tmpfs of v1 \
             hierarchies at /sys/fs/cgroup, v2 at {}), and crun refuses to run containers there \
             (\"cgroups in hybrid mode not supported\")",
            v2.display()
        ),
        hint: Some(format!(
            "{fix} (containers then run without cgroup limits), or boot the host with \
             systemd.unified_cgroup_hierarchy=1 (cgroup v2 only)"
        )),
    })
}

/// The warning for a run of `command`, reading this process's mountinfo, when `command` runs
/// a container (commands.rs; so that other runs pay nothing): podman, buildah or crun as
/// COMMAND, or in a shell's script when the run has a mount namespace (without one podman
/// would not get that far). `targets`: the run's filesystem options.
pub fn warning_for(
    command: &[OsString],
    targets: &[&Path],
    mount_ns: bool,
    namespace: Option<&str>,
) -> Option<Warning> {
    let program = super::runs_containers(command)?;
    let direct = command
        .first()
        .and_then(|p| Path::new(p).file_name())
        .is_some_and(|name| name == program);
    if !direct && !mount_ns {
        return None;
    }
    let text = std::fs::read("/proc/self/mountinfo").ok()?;
    let layout = cgroup_layout(&mountinfo::parse(&text));
    cgroup_warning(program, &layout, covers_cgroup_dir(targets), namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let w = cgroup_warning("podman", &hybrid, false, None).unwrap();
        assert!(
            w.why.starts_with("podman: this host mounts cgroup v1"),
            "{}",
            w.why
        );
        assert!(w.why.contains("/sys/fs/cgroup/unified"), "{}", w.why);
        let hint = w.hint.unwrap();
        assert!(hint.starts_with("add --tmpfs=/sys/fs/cgroup"), "{hint}");
        assert!(
            hint.contains("systemd.unified_cgroup_hierarchy=1"),
            "{hint}"
        );
        let w = cgroup_warning("buildah", &hybrid, false, Some("podman-keep-id")).unwrap();
        assert!(w.why.starts_with("buildah: "), "{}", w.why);
        let hint = w.hint.unwrap();
        assert!(
            hint.contains("become-root --stop=podman-keep-id")
                && hint.contains("become-root --tmpfs=/sys/fs/cgroup buildah ..."),
            "{hint}"
        );
        let rows = [
            (&hybrid, true, "covered by a filesystem option"),
            (&CgroupLayout::Unified, false, "cgroup v2 only"),
            (&CgroupLayout::Other, false, "v1 only"),
        ];
        for (layout, covered, why) in rows {
            assert_eq!(
                cgroup_warning("podman", layout, covered, None),
                None,
                "{why}"
            );
        }
    }
}
