//! podman, buildah and crun inside: the `_CONTAINERS_*` variables that tell podman and
//! buildah they are already in a user namespace someone else configured, the COMMANDs that
//! get a mount namespace without asking for one, the containers namespace they run in across
//! calls (`namespace`), which command lines run a container (`commands`), and the warning
//! for a host whose cgroup layout crun refuses (`cgroups`).
//!
//! podman and buildah (containers/storage's `unshare` package, podman's `rootless` package)
//! take `_CONTAINERS_USERNS_CONFIGURED` to mean "the user and mount namespaces are made": they
//! then neither re-exec into namespaces of their own nor ask whether they may mount. Without
//! a mount namespace of the run's that is false, and their first mount fails (`mount
//! --make-rshared .../netns failed: operation not permitted`, `failed to mount shm tmpfs`). So
//! the variables are set only when the run has a mount namespace, and a COMMAND that is podman
//! or buildah runs in the containers namespace, which has one, as `podman unshare` does.
//! Every other run stays without: a mount namespace costs start-up time (README,
//! "Benchmark").

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::userns::Caller;

mod cgroups;
mod commands;
mod namespace;

pub use cgroups::{CgroupLayout, cgroup_layout, cgroup_warning, covers_cgroup_dir, warning_for};
pub use commands::runs_containers;
pub use namespace::{
    CONTAINERS_CONF, Places, Setup, home_env, namespace_name, pause_file, podman_pause,
    prepare_home, register, setup, shared_with_podman, unregister,
};

/// The programs that read `_CONTAINERS_USERNS_CONFIGURED` and mount as soon as they run
/// anything: a COMMAND by one of these names gets a mount namespace.
const NEED_MOUNT_NS: [&str; 2] = ["podman", "buildah"];

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
