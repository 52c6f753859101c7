//! `--check`: the namespace probe, a forked child that creates a user namespace, maps its own ids
//! in it and mounts overlayfs on a scratch tmpfs of a private mount namespace; and the lines
//! that its report decides.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, getpid};

use super::Item;
use crate::idmap::IdMap;
use crate::sys::{self, Forked};
use crate::userns::{self, Caller, Mapping, Planned, UsernsError, Writer};

/// The steps of the namespace probe, in order. The first that fails ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// unshare(CLONE_NEWUSER).
    Unshare = 1,
    /// Write the single self map (uid_map, setgroups deny, gid_map).
    Map,
    /// unshare(CLONE_NEWNS) inside.
    MountNs,
    /// Make / recursively private.
    Private,
    /// Mount the scratch tmpfs.
    Tmpfs,
    /// Make the overlay's directories on it.
    Scratch,
    /// Mount overlayfs with userxattr.
    Overlay,
}

pub(super) const STEPS: [Step; 7] = [
    Step::Unshare,
    Step::Map,
    Step::MountNs,
    Step::Private,
    Step::Tmpfs,
    Step::Scratch,
    Step::Overlay,
];

/// What the probe child reports: every step worked, or the first failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Probed {
    Done,
    Failed(Step, Errno),
    /// The probe could not be run, or its child ended without a word.
    NotRun(String),
}

/// The message on the wire: one byte (0 for done, else the failed step) and the errno.
pub(super) fn encode(result: Result<(), (Step, Errno)>) -> [u8; 5] {
    let (step, errno) = match result {
        Ok(()) => (0u8, 0i32),
        Err((step, errno)) => (step as u8, errno as i32),
    };
    let mut bytes = [0u8; 5];
    bytes[0] = step;
    bytes[1..].copy_from_slice(&errno.to_le_bytes());
    bytes
}

pub(super) fn decode(bytes: &[u8]) -> Probed {
    let Ok(bytes) = <[u8; 5]>::try_from(bytes) else {
        return Probed::NotRun("the probe process ended without a report".into());
    };
    let errno = Errno::from_raw(i32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]));
    match bytes[0] {
        0 => Probed::Done,
        n => match STEPS.iter().find(|s| **s as u8 == n) {
            Some(step) => Probed::Failed(*step, errno),
            None => Probed::NotRun(format!("the probe process sent an unknown step {n}")),
        },
    }
}

/// A forked child trying a user namespace with a single self map, then overlayfs in it.
pub(super) struct NamespaceProbe {
    child: Option<(Pid, UnixStream)>,
    error: Option<String>,
}

impl NamespaceProbe {
    pub(super) fn start(caller: &Caller) -> NamespaceProbe {
        let (uid, gid) = (caller.uid, caller.gid);
        // Any directory will do, since it is covered only inside the probe's namespace.
        let scratch = Some(std::env::temp_dir())
            .filter(|d| d.is_dir())
            .unwrap_or_else(|| "/tmp".into());
        let not_run = |why: String| NamespaceProbe {
            child: None,
            error: Some(why),
        };
        let (ours, theirs) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => return not_run(format!("cannot create a socket pair: {e}")),
        };
        match sys::fork_process() {
            Err(errno) => not_run(format!("cannot fork: {errno}")),
            Ok(Forked::Child) => {
                drop(ours);
                probe_child(theirs.into(), uid, gid, &scratch)
            }
            Ok(Forked::Parent(pid)) => {
                drop(theirs);
                NamespaceProbe {
                    child: Some((pid, ours)),
                    error: None,
                }
            }
        }
    }

    pub(super) fn finish(self) -> Probed {
        let Some((pid, mut stream)) = self.child else {
            return Probed::NotRun(self.error.unwrap_or_default());
        };
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        reap(pid);
        decode(&bytes)
    }
}

/// Wait for a probe child, retrying when a signal interrupts.
pub(super) fn reap(pid: Pid) {
    while waitpid(pid, None) == Err(Errno::EINTR) {}
}

/// The probe child: run the steps, report, leave.
pub(super) fn probe_child(report: OwnedFd, uid: u32, gid: u32, scratch: &Path) -> ! {
    // Hold no descriptor of the caller's (a pipe someone waits on, a jobserver) meanwhile.
    sys::keep_only_fd(report.as_raw_fd());
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let message = encode(probe_steps(uid, gid, scratch));
    let _ = std::fs::File::from(report).write_all(&message);
    sys::exit_now(0)
}

pub(super) fn probe_steps(uid: u32, gid: u32, scratch: &Path) -> Result<(), (Step, Errno)> {
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| (Step::Unshare, e))?;
    // The owner of a user namespace may map its own uid and gid into it without privilege
    // (once setgroups is denied); this is what --map=single does, and what AppArmor's
    // restriction of unprivileged user namespaces breaks.
    let own = Mapping {
        uid: IdMap::single(uid),
        gid: IdMap::single(gid),
        writer: Writer::SelfMap,
        how: (Planned::Single, Planned::Single),
    };
    userns::write_maps(getpid(), &own).map_err(|e| (Step::Map, errno_of(&e)))?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| (Step::MountNs, e))?;
    // A mount namespace made by an unprivileged user already receives no propagation back
    // to the host's shared mounts (mount_namespaces(7)); private makes sure of it.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| (Step::Private, e))?;
    // The scratch tmpfs hides the temporary directory in this namespace only, and
    // disappears with it: nothing is created on any disk.
    mount(
        Some("tmpfs"),
        scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700"),
    )
    .map_err(|e| (Step::Tmpfs, e))?;
    nix::unistd::chdir(scratch).map_err(|e| (Step::Scratch, e))?;
    for dir in ["lower", "upper", "work", "merged"] {
        nix::unistd::mkdir(dir, nix::sys::stat::Mode::from_bits_truncate(0o700))
            .map_err(|e| (Step::Scratch, e))?;
    }
    // Relative paths: the temporary directory's name may hold a ',' or ':' that the option
    // string cannot carry. userxattr (Linux 5.11) is what overlayfs needs in a user namespace.
    mount(
        Some("overlay"),
        "merged",
        Some("overlay"),
        MsFlags::empty(),
        Some("lowerdir=lower,upperdir=upper,workdir=work,userxattr"),
    )
    .map_err(|e| (Step::Overlay, e))
}

pub(super) fn errno_of(e: &UsernsError) -> Errno {
    match e {
        UsernsError::WriteMap { errno, .. } | UsernsError::Sys { errno, .. } => *errno,
        _ => Errno::EIO,
    }
}

/// The user namespace line: the probe got a namespace and mapped the caller's ids in it.
pub(super) fn userns_item(probed: &Probed) -> Item {
    const WHAT: &str = "user namespaces";
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    match probed {
        Probed::Done
        | Probed::Failed(
            Step::MountNs | Step::Private | Step::Tmpfs | Step::Scratch | Step::Overlay,
            _,
        ) => {
            let mut settings = vec![format!(
                "user.max_user_namespaces = {}",
                read("/proc/sys/user/max_user_namespaces").unwrap_or_else(|| "?".into())
            )];
            if let Some(v) = read("/proc/sys/kernel/unprivileged_userns_clone") {
                settings.push(format!("kernel.unprivileged_userns_clone = {v}"));
            }
            if let Some(v) = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
                settings.push(format!(
                    "kernel.apparmor_restrict_unprivileged_userns = {v}"
                ));
            }
            Item::ok(
                WHAT,
                format!(
                    "a test namespace was created and your ids mapped in it ({})",
                    settings.join(", ")
                ),
            )
        }
        Probed::Failed(Step::Unshare, errno) => {
            let hint = match userns::diagnose_unshare(*errno) {
                UsernsError::Unshare { hint, .. } => hint,
                _ => None,
            };
            Item::fail(WHAT, format!("cannot create one: {errno}"), hint)
        }
        Probed::Failed(_, errno) => {
            let fix = if userns::apparmor_restricts() {
                userns::apparmor_hint()
            } else {
                "a security module or seccomp filter refuses it; see user_namespaces(7)".into()
            };
            Item::fail(
                WHAT,
                format!("created one, but could not map your own ids in it: {errno}"),
                fix,
            )
        }
        Probed::NotRun(why) => Item::fail(WHAT, format!("could not test: {why}"), None),
    }
}

/// The overlayfs line, from the same probe.
pub(super) fn overlay_item(probed: &Probed) -> Item {
    const WHAT: &str = "overlayfs";
    let fuse = "--overlay uses fuse-overlayfs instead (Debian/Ubuntu: apt install \
                fuse-overlayfs)";
    match probed {
        Probed::Done => Item::ok(
            WHAT,
            "the kernel mounts overlayfs in a user namespace (with userxattr)",
        ),
        Probed::Failed(Step::Overlay, Errno::ENODEV) => Item::warn(
            WHAT,
            "the kernel has no overlay filesystem",
            format!("as root: modprobe overlay; or {fuse}"),
        ),
        Probed::Failed(Step::Overlay, errno) => Item::warn(
            WHAT,
            format!("the kernel refuses overlayfs in a user namespace: {errno}"),
            format!("Linux 5.11 or later mounts it there; until then {fuse}"),
        ),
        Probed::Failed(step, errno) => {
            let what = match step {
                Step::Unshare | Step::Map => "no user namespace",
                Step::MountNs => "cannot create a mount namespace",
                Step::Private => "cannot make / private",
                Step::Tmpfs => "cannot mount a tmpfs",
                Step::Scratch | Step::Overlay => "cannot make directories on a tmpfs",
            };
            Item::warn(WHAT, format!("not tested: {what}: {errno}"), None)
        }
        Probed::NotRun(why) => Item::warn(WHAT, format!("not tested: {why}"), None),
    }
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::{Probed, STEPS, decode, encode};

    #[test]
    fn probe_reports_survive_the_wire() {
        assert_eq!(decode(&encode(Ok(()))), Probed::Done);
        for step in STEPS {
            assert_eq!(
                decode(&encode(Err((step, Errno::EPERM)))),
                Probed::Failed(step, Errno::EPERM)
            );
        }
        assert!(matches!(decode(b""), Probed::NotRun(_)));
        assert!(matches!(decode(&[9, 0, 0, 0, 0]), Probed::NotRun(_)));
    }
}
