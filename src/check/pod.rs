//! `--check` in a container or a pod: a /proc with covered or read-only paths, a seccomp
//! filter that refuses user namespaces, and what to change in the pod spec or the container's
//! options for each; and whether `--emulate` can register interpreters here.
//!
//! A Kubernetes pod with `hostUsers: false` gives its containers a user namespace, but by
//! default still a masked /proc (`procMount: Default`), the runtime's default seccomp profile
//! (which refuses unshare, clone and clone3 with CLONE_NEWUSER to a process without
//! CAP_SYS_ADMIN) and, with `allowPrivilegeEscalation: false`, no_new_privs. Each makes a
//! part of become-root fail with an error about the symptom; these lines name the cause.

use nix::errno::Errno;

use super::Item;
use super::probe::{Probed, Step};

/// The pod-spec field and the container engines' option that give an unmasked /proc.
const UNMASK_FIX: &str = "in a Kubernetes pod: securityContext.procMount: Unmasked (it needs \
                          hostUsers: false); podman: --security-opt unmask=ALL; docker: \
                          --security-opt systempaths=unconfined";

/// What a run needs a /proc of its own for.
const FRESH_PROC: &str = "--pid, --boot and --all mount a /proc of their own";

/// The /proc line, from /proc/self/mountinfo's text. The kernel mounts a new proc in a user
/// namespace only where the caller sees a proc mount that is fully visible: no path below it
/// covered by another mount, except the directories that are empty for good
/// (/proc/sys/fs/binfmt_misc), and with no flag the new one would drop (mount_too_revealing,
/// fs/namespace.c). Container engines cover /proc/kcore, /proc/keys and others (masked) and
/// bind /proc/sys, /proc/bus and others read-only over themselves: both count.
pub(super) fn proc_item(mountinfo: &str) -> Item {
    const WHAT: &str = "/proc";
    let mounts: Vec<Mount> = mountinfo.lines().filter_map(Mount::parse).collect();
    let Some(proc) = mounts
        .iter()
        .rev()
        .find(|m| m.point == "/proc" && m.fstype == "proc")
    else {
        return Item::warn(
            WHAT,
            "no proc file system is mounted at /proc",
            format!("mount one (mount -t proc proc /proc); {FRESH_PROC}"),
        );
    };
    let mut masked = Vec::new();
    let mut read_only = Vec::new();
    for m in &mounts {
        let Some(below) = m.point.strip_prefix("/proc/") else {
            continue;
        };
        if below == "sys/fs/binfmt_misc" || below.starts_with("sys/fs/binfmt_misc/") {
            continue;
        }
        let list = if m.fstype == "proc" {
            &mut read_only
        } else {
            &mut masked
        };
        if !list.contains(&m.point) {
            list.push(m.point.clone());
        }
    }
    let mut found = Vec::new();
    if proc.read_only {
        found.push("mounted read-only".to_string());
    }
    if !masked.is_empty() {
        found.push(format!("masked: {}", masked.join(", ")));
    }
    if !read_only.is_empty() {
        found.push(format!("read-only: {}", read_only.join(", ")));
    }
    if found.is_empty() {
        return Item::ok(WHAT, "fully visible (no path below it covered), read-write");
    }
    let fix = if proc.read_only && masked.is_empty() && read_only.is_empty() {
        format!("mount /proc read-write; {FRESH_PROC}")
    } else {
        format!("{UNMASK_FIX}; {FRESH_PROC}")
    };
    Item::warn(
        WHAT,
        format!(
            "{}: the kernel mounts no new proc in a user namespace while paths of the one you \
             see are covered or it is read-only, so --pid, --boot and --all fail",
            found.join("; ")
        ),
        fix,
    )
}

/// One line of /proc/self/mountinfo: where, what type, and whether read-only.
struct Mount {
    point: String,
    fstype: String,
    read_only: bool,
}

impl Mount {
    /// "ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER" (proc(5)).
    fn parse(line: &str) -> Option<Mount> {
        let (left, right) = line.split_once(" - ")?;
        let mut fields = left.split(' ');
        let point = unescape_octal(fields.nth(4)?);
        let read_only = fields.next()?.split(',').any(|o| o == "ro");
        let fstype = right.split(' ').next()?.to_string();
        Some(Mount {
            point,
            fstype,
            read_only,
        })
    }
}

/// mountinfo's escapes (\040 for a space, \011, \012, \134) undone.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let text = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A field of /proc/self/status ("Seccomp", "NoNewPrivs"), as its text.
pub(super) fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim()))
}

/// The seccomp line: whether a filter is installed (the Seccomp: field of /proc/self/status,
/// 2 for filter mode) and, from the namespace probe, whether unshare(CLONE_NEWUSER) in a
/// child was refused. A refusal that a setting explains (user.max_user_namespaces = 0: ENOSPC;
/// kernel.unprivileged_userns_clone = 0: EPERM) is the user namespace line's to tell.
pub(super) fn seccomp_item(status: &str, probed: &Probed, settings_explain: bool) -> Item {
    const WHAT: &str = "seccomp";
    let filters = status_field(status, "Seccomp_filters")
        .map(|n| format!("{n} filter(s)"))
        .unwrap_or_else(|| "a filter".into());
    match status_field(status, "Seccomp") {
        None => Item::ok(WHAT, "not in this kernel"),
        Some("0") => Item::ok(WHAT, "no filter"),
        Some("2") => match probed {
            Probed::Failed(Step::Unshare, errno) if !settings_explain => Item::fail(
                WHAT,
                format!(
                    "{filters} installed, and unshare(CLONE_NEWUSER) in a child was refused \
                     ({errno}): the filter refuses user namespaces"
                ),
                "in a Kubernetes pod: securityContext.seccompProfile: {type: Unconfined}, or a \
                 Localhost profile that allows unshare, clone and clone3 with CLONE_NEWUSER \
                 (RuntimeDefault refuses them without CAP_SYS_ADMIN); docker and podman: \
                 --security-opt seccomp=unconfined"
                    .to_string(),
            ),
            Probed::NotRun(_) => Item::ok(WHAT, format!("{filters} installed (not tested)")),
            _ => Item::ok(
                WHAT,
                format!("{filters} installed, which let a child make a user namespace"),
            ),
        },
        Some(mode) => Item::ok(WHAT, format!("mode {mode}")),
    }
}

/// Whether a setting, not a filter, explains a refused unshare(CLONE_NEWUSER).
pub(super) fn settings_explain(probed: &Probed) -> bool {
    let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string());
    match probed {
        Probed::Failed(Step::Unshare, Errno::ENOSPC) => true,
        Probed::Failed(Step::Unshare, Errno::EPERM) => {
            read("/proc/sys/kernel/unprivileged_userns_clone").is_ok_and(|v| v == "0")
        }
        _ => false,
    }
}

/// The pod-spec field that keeps no_new_privs off, for the no_new_privs line's fix.
pub(super) const NO_NEW_PRIVS_FIX: &str = "in a Kubernetes pod: securityContext.\
                                    allowPrivilegeEscalation: true (false sets no_new_privs); \
                                    docker and podman: leave out --security-opt \
                                    no-new-privileges";

/// The --emulate line: whether the kernel gives a user namespace a binfmt_misc of its own
/// (Linux 6.7 and later) and has binfmt_misc at all, and which QEMU interpreters are found.
pub(super) fn emulate_item(filesystems: &str) -> Item {
    const WHAT: &str = "--emulate";
    let since = crate::kernel::BINFMT_IN_USERNS;
    let (release, version) = crate::kernel::running();
    if version.is_some_and(|v| v < since) {
        return Item::warn(
            WHAT,
            format!(
                "Linux {release} gives no user namespace a binfmt_misc of its own (Linux {since})"
            ),
            format!("Linux {since} or later"),
        );
    }
    if !filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("binfmt_misc"))
    {
        return Item::warn(
            WHAT,
            "the kernel has no binfmt_misc loaded",
            "as root: modprobe binfmt_misc".to_string(),
        );
    }
    let native = crate::emulate::native();
    let found: Vec<String> = crate::emulate::ARCHES
        .iter()
        .filter(|arch| native != Some(*arch))
        .filter_map(|arch| {
            let interpreter = arch.interpreter().ok()?;
            Some(format!("{} ({})", arch.name, interpreter.describe()))
        })
        .collect();
    if found.is_empty() {
        return Item::warn(
            WHAT,
            format!("binfmt_misc in a user namespace (Linux {since}), but no static QEMU emulator"),
            "install QEMU's static emulators (Debian 12: apt install qemu-user-static; Debian \
             13: qemu-user)"
                .to_string(),
        );
    }
    Item::ok(
        WHAT,
        format!(
            "binfmt_misc in a user namespace (Linux {since}); {}",
            found.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Level;

    /// A container's /proc as runc makes it (its masked and read-only paths), one line each.
    const MASKED: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
23 22 0:5 /null /proc/kcore rw,nosuid - devtmpfs udev rw,size=1k
24 22 0:30 / /proc/scsi ro,relatime - tmpfs tmpfs ro
25 22 0:21 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw
26 22 0:40 / /proc/sys/fs/binfmt_misc rw,relatime - binfmt_misc binfmt_misc rw
27 1 0:41 / /mnt/a\\040b rw - tmpfs tmpfs rw
";

    #[test]
    fn proc_lines() {
        let item = proc_item(MASKED);
        assert_eq!(item.level, Level::Warn);
        assert!(
            item.found
                .starts_with("masked: /proc/kcore, /proc/scsi; read-only: /proc/sys:"),
            "{}",
            item.found
        );
        assert!(item.fix.unwrap().contains("procMount: Unmasked"));
        let clean = "22 1 0:21 / /proc rw,relatime - proc proc rw\n\
                     26 22 0:40 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n";
        assert_eq!(proc_item(clean).level, Level::Ok);
        let ro = proc_item("22 1 0:21 / /proc ro,relatime - proc proc rw\n");
        assert!(ro.found.starts_with("mounted read-only:"), "{}", ro.found);
        assert_eq!(unescape_octal(r"/mnt/a\040b"), "/mnt/a b");
    }

    #[test]
    fn seccomp_lines() {
        let filtered = "Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        let refused = Probed::Failed(Step::Unshare, Errno::EPERM);
        let item = seccomp_item(filtered, &refused, false);
        assert_eq!(item.level, Level::Fail);
        assert!(item.found.contains("1 filter(s)"), "{}", item.found);
        assert!(item.fix.unwrap().contains("seccompProfile"));
        assert_eq!(seccomp_item(filtered, &refused, true).level, Level::Ok);
        assert_eq!(
            seccomp_item(filtered, &Probed::Done, false).level,
            Level::Ok
        );
        let none = "Seccomp:\t0\n";
        assert_eq!(seccomp_item(none, &refused, false).level, Level::Ok);
        assert_eq!(
            seccomp_item("", &refused, false).found,
            "not in this kernel"
        );
        assert_eq!(status_field("NoNewPrivs:\t1\n", "NoNewPrivs"), Some("1"));
    }
}
