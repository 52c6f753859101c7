//! Which kernel this is, and which of the newer kernel facilities become-root uses it has.
//!
//! become-root supports Linux [`MINIMUM`] and later. Everything it calls that is newer than
//! that has a fallback, or, where none can exist, an error that names the version needed.
//! Facilities are *probed* (an invalid call that fails with ENOSYS or EINVAL when the kernel
//! lacks it, and with something else when it has it), as util-linux does, because
//! distribution kernels backport: the version only explains a missing facility.
//!
//! The table here is the one the man page's KERNEL section and `--check` present.
#![forbid(unsafe_code)]

use std::fmt;

/// A kernel release, as the first two or three numbers of `uname -r` ("6.1.0-27-amd64").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32) -> Version {
        Version {
            major,
            minor,
            patch: 0,
        }
    }

    /// Parse the leading `MAJOR.MINOR[.PATCH]` of a release string; what follows (a local
    /// version, "-rc1", "+") is ignored.
    pub fn parse(release: &str) -> Option<Version> {
        let end = release
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(release.len());
        let mut numbers = release[..end].split('.');
        let major = numbers.next()?.parse().ok()?;
        let minor = numbers.next()?.parse().ok()?;
        let patch = match numbers.next() {
            None | Some("") => 0,
            Some(p) => p.parse().ok()?,
        };
        Some(Version {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The oldest kernel become-root supports: Debian 11's. Every scenario of the VM tier runs
/// on it (tests/vm).
pub const MINIMUM: Version = Version::new(5, 10);

/// A kernel facility newer than [`MINIMUM`], or one worth naming because a fallback depends on
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facility {
    /// fsopen/fsconfig/fsmount/move_mount/open_tree: tmpfs mounts attached nowhere
    /// (resolv.conf, a throwaway upper layer), the copy of the mount tree fuse-overlayfs runs
    /// in.
    MountApi,
    /// pidfd_open/pidfd_send_signal: signals that cannot reach a reused pid (`--stop`).
    Pidfd,
    /// close_range(2) with CLOSE_RANGE_CLOEXEC: keeping inherited descriptors from helpers.
    CloseRangeCloexec,
    /// overlayfs mounted inside a user namespace, with `userxattr`.
    OverlayInUserns,
    /// mount_setattr(2) with AT_RECURSIVE: `--ro-bind` read-only on every mount below.
    MountSetattr,
}

pub const FACILITIES: [Facility; 5] = [
    Facility::MountApi,
    Facility::Pidfd,
    Facility::CloseRangeCloexec,
    Facility::OverlayInUserns,
    Facility::MountSetattr,
];

impl Facility {
    /// The first mainline release that has it.
    pub fn since(self) -> Version {
        match self {
            Facility::MountApi => Version::new(5, 2),
            Facility::Pidfd => Version::new(5, 3),
            Facility::CloseRangeCloexec => Version::new(5, 11),
            Facility::OverlayInUserns => Version::new(5, 11),
            Facility::MountSetattr => Version::new(5, 12),
        }
    }

    /// Its name in `--check`.
    pub fn name(self) -> &'static str {
        match self {
            Facility::MountApi => "new mount API (fsopen, fsmount, move_mount)",
            Facility::Pidfd => "pidfd_open",
            Facility::CloseRangeCloexec => "close_range with CLOSE_RANGE_CLOEXEC",
            Facility::OverlayInUserns => "overlayfs in a user namespace (userxattr)",
            Facility::MountSetattr => "mount_setattr with AT_RECURSIVE",
        }
    }

    /// What become-root does without it: a fallback, or the feature that cannot work.
    pub fn without(self) -> Fallback {
        match self {
            Facility::MountApi => Fallback::Unavailable(
                "connected networks (their resolv.conf), overlays with a throwaway upper layer \
                 and fuse-overlayfs",
            ),
            Facility::Pidfd => Fallback::Unavailable(
                "--stop (it signals only through pidfds, which cannot reach a reused pid)",
            ),
            Facility::CloseRangeCloexec => Fallback::Instead(
                "descriptors are marked close-on-exec one by one before a helper runs",
            ),
            Facility::OverlayInUserns => Fallback::Instead(
                "--overlay and --copy-up use fuse-overlayfs (--overlay-driver=native fails)",
            ),
            Facility::MountSetattr => Fallback::Instead(
                "--ro-bind remounts each mount below the destination read-only, one by one",
            ),
        }
    }
}

/// What happens on a kernel without a facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Another way, which works.
    Instead(&'static str),
    /// These features fail, with an error naming the version needed.
    Unavailable(&'static str),
}

/// The running kernel's release string (`uname -r`) and its version, when it parses.
pub fn running() -> (String, Option<Version>) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let version = Version::parse(&release);
    (release, version)
}

/// Whether the running kernel has `facility`, found by trying it (see the module
/// documentation); None where only a real attempt can tell (overlayfs in a user namespace:
/// `--check` mounts one in a throwaway namespace).
pub fn probe(facility: Facility) -> Option<bool> {
    match facility {
        Facility::MountApi => Some(crate::sys::probe_mount_api()),
        Facility::Pidfd => Some(crate::sys::probe_pidfd()),
        Facility::CloseRangeCloexec => Some(crate::sys::probe_close_range_cloexec()),
        Facility::MountSetattr => Some(crate::sys::probe_mount_setattr()),
        Facility::OverlayInUserns => None,
    }
}

/// Whether the running kernel is older than `facility` (by its version; for messages that
/// explain a failure, not for choosing a path, which [`probe`] decides).
pub fn older_than(facility: Facility) -> bool {
    running().1.is_some_and(|v| v < facility.since())
}

/// The message for a feature that needs `facility` on a kernel that does not have it:
/// "needs Linux 5.12 or later (this is 5.10.0-30-amd64)".
pub fn needs(facility: Facility, release: &str) -> String {
    format!(
        "needs Linux {} or later ({}; this kernel is {release})",
        facility.since(),
        facility.name()
    )
}

#[cfg(test)]
mod tests {
    use super::{FACILITIES, Facility, Fallback, MINIMUM, Version, needs};

    #[test]
    fn version_rows() {
        let v = |major, minor, patch| {
            Some(Version {
                major,
                minor,
                patch,
            })
        };
        let rows = [
            ("6.1.0-27-amd64", v(6, 1, 0)),
            ("5.10.226-1", v(5, 10, 226)),
            ("6.12.48+deb13-amd64", v(6, 12, 48)),
            ("6.18.44-fc-v1045", v(6, 18, 44)),
            ("5.15.0-119-generic", v(5, 15, 0)),
            ("4.18.0-553.el8_10.x86_64", v(4, 18, 0)),
            ("6.9-rc1", v(6, 9, 0)),
            ("6.9", v(6, 9, 0)),
            ("6.9+", v(6, 9, 0)),
            ("6", None),
            ("6-1", None),
            ("", None),
            ("linux", None),
            ("99999999999.1", None),
        ];
        for (text, want) in rows {
            assert_eq!(Version::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn versions_order_numerically() {
        let p = |s| Version::parse(s).unwrap();
        assert!(p("5.10.0") < p("5.11.0"));
        assert!(p("5.9.0") < p("5.10.0"), "not as strings");
        assert!(p("6.1.0") >= MINIMUM);
        assert!(p("5.4.0") < MINIMUM);
    }

    #[test]
    fn every_facility_is_newer_than_the_oldest_mount_api_and_named() {
        for f in FACILITIES {
            assert!(f.since() >= Version::new(5, 2), "{f:?}");
            assert!(!f.name().is_empty());
            let (Fallback::Instead(what) | Fallback::Unavailable(what)) = f.without();
            assert!(!what.is_empty());
        }
        // Every facility newer than the minimum needs a fallback, not a failure.
        for f in FACILITIES.iter().filter(|f| f.since() > MINIMUM) {
            assert!(matches!(f.without(), Fallback::Instead(_)), "{f:?}");
        }
    }

    #[test]
    fn needs_names_the_version_and_this_kernel() {
        assert_eq!(
            needs(Facility::MountSetattr, "5.10.0-30-amd64"),
            "needs Linux 5.12 or later (mount_setattr with AT_RECURSIVE; this kernel is \
             5.10.0-30-amd64)"
        );
    }
}
