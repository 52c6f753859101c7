//! `--check`: the optional features: the helper programs and the devices they need.

use nix::errno::Errno;

use super::Item;
use crate::net::{self, NetError};
use crate::programs::Program;

/// A helper program: where it is (named by its variable, else on PATH), or why not.
pub(super) fn program_item(program: Program, needed_by: &str) -> Item {
    match program.find() {
        Ok(Some(found)) => Item::ok(program.name, found.describe()),
        Ok(None) => Item::warn(
            program.name,
            "not found on PATH",
            format!(
                "install it (Debian/Ubuntu: apt install {}) or set {} to its path; {needed_by}",
                program.package, program.env
            ),
        ),
        Err(e) => {
            let hint = e.hint();
            Item::warn(program.name, e.to_string(), format!("{hint}; {needed_by}"))
        }
    }
}

pub(super) fn device_item(device: &str, access: nix::Result<()>, needed_by: &str) -> Item {
    match access {
        Ok(()) => Item::ok(device, "readable and writable"),
        Err(Errno::ENOENT) => Item::warn(
            device,
            "does not exist",
            format!("as root: modprobe fuse; {needed_by}"),
        ),
        Err(errno) => Item::warn(
            device,
            format!("not readable and writable by you: {errno}"),
            format!("as root: chmod 0666 {device} (its usual mode); {needed_by}"),
        ),
    }
}

pub(super) fn tun_item(result: Result<(), NetError>) -> Item {
    match result {
        Ok(()) => Item::ok(net::TUN, "readable and writable"),
        Err(e) => {
            let found = match &e {
                NetError::Device { why, .. } => why.clone(),
                other => other.to_string(),
            };
            let fix = e
                .hint()
                .map(|h| format!("{h}; slirp4netns and pasta need it"));
            Item::warn(net::TUN, found, fix)
        }
    }
}

/// Whether --net=bypass can work: seccomp user notification with ADDFD, probed.
pub(super) fn bypass_item() -> Item {
    match net::bypass::available() {
        Ok(()) => Item::ok(
            "--net=bypass",
            "seccomp user notification with SECCOMP_IOCTL_NOTIF_ADDFD: outbound sockets can \
             become the host's",
        ),
        Err(e) => Item::warn("--net=bypass", e.to_string(), e.hint()),
    }
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::{device_item, program_item};
    use crate::check::{FUSE, Level};
    use crate::programs::Program;

    #[test]
    fn devices_and_programs() {
        assert_eq!(device_item(FUSE, Ok(()), "x").level, Level::Ok);
        let item = device_item(FUSE, Err(Errno::EACCES), "fuse-overlayfs needs it");
        assert_eq!(item.level, Level::Warn);
        assert!(item.fix.unwrap().contains("chmod 0666 /dev/fuse"));
        let missing = Program {
            name: "no-such-program-here",
            env: "BECOME_ROOT_TEST_NO_SUCH_VARIABLE",
            package: "some-package",
        };
        let item = program_item(missing, "x");
        assert_eq!(item.level, Level::Warn);
        assert!(item.fix.unwrap().contains("apt install some-package"));
    }
}
