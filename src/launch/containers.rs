//! The launcher's side of the containers namespace (containers::namespace): which runs go
//! there, making it on first use, and joining it.
//!
//! A run goes there when it asks (`--containers`), or when COMMAND is podman or buildah and
//! no option asks for namespaces of the run's own (`--net`, `--pid`, a cgroup, `--rootfs`,
//! `--name`...: such a run is one of its own, as before, and its containers end with it).
//! The first such run makes the namespace as `become-root --name=NAME --detach --mount`
//! would (a pause process holds it; a background become-root supervises it), with podman's
//! runtime state on tmpfs mounts of its own, then joins it; every later run joins it at
//! once: no map is written, no subordinate id read. A lock in the state directory makes two
//! first runs at once make one namespace: the second waits and joins it.

use std::convert::Infallible;
use std::os::unix::fs::DirBuilderExt;

use nix::sys::wait::{WaitStatus, waitpid};

use super::{Request, launch, plan, status_of};
use crate::containers::{self, Places, Setup};
use crate::error::Error;
use crate::mounts::MountStep;
use crate::options::{FsArg, OverlayDriver, PortDriver, Propagation, SubidSource};
use crate::session::containers::{Standing, join_containers, making_lock, standing};
use crate::session::{Containers, SessionError};
use crate::sys::{self, Forked};

/// Whether `r` runs in the containers namespace. Never for real root, whose podman is
/// rootful and keeps no namespace of its own: such a run stays one of its own, as before.
pub(super) fn route(r: &Request) -> Result<bool, Error> {
    decide(r, real_root())
}

/// [`route`] for a caller who is real root or not.
fn decide(r: &Request, real_root: bool) -> Result<bool, Error> {
    if !r.containers && !containers::needs_mount_ns(&r.command) {
        return Ok(false);
    }
    if real_root {
        return match r.containers {
            true => Err(Error::usage(
                "--containers: you are root on the host, where podman is rootful and runs in \
                 no user namespace of its own",
                "run podman and buildah as they are, or as a user with subordinate ids",
            )),
            false => Ok(false),
        };
    }
    Ok(r.containers || options_of_its_own(r).is_empty())
}

/// uid 0 in the initial user namespace (its map is the identity of every id).
fn real_root() -> bool {
    nix::unistd::Uid::current().is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|map| map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

/// The options of `r` that ask for more than a containers namespace is: anything beyond
/// --map's mode, the filesystem options (applied when it is made), -m, --chdir, -q and -v.
/// (clap refuses them with --containers.)
fn options_of_its_own(r: &Request) -> Vec<&'static str> {
    let i = &r.identity;
    let identity = i.uid.is_some()
        || i.gid.is_some()
        || !i.cap_add.is_empty()
        || !i.cap_drop.is_empty()
        || i.no_new_privs;
    let flags = [
        (
            !r.map_users.is_empty() || !r.map_groups.is_empty(),
            "--map-users",
        ),
        (r.subid_source != SubidSource::Auto, "--subid-source"),
        (r.propagation != Propagation::Private, "--propagation"),
        (r.net.is_some() || !r.publish.is_empty(), "--net"),
        (r.port_driver != PortDriver::Builtin, "--port-driver"),
        (r.allow_host_loopback, "--allow-host-loopback"),
        (r.mtu != crate::options::Mtu::default(), "--mtu"),
        (r.overlay_driver != OverlayDriver::Auto, "--overlay-driver"),
        (r.rootfs.is_some() || r.sysfs || r.boot, "--rootfs"),
        (identity || r.drop_groups, "--uid"),
        (r.info_fd.is_some(), "--info-fd"),
        (r.pid || r.as_pid_1 || r.uts || r.ipc || r.all, "--pid"),
        (r.cgroup || r.limits.any(), "--cgroup"),
        (r.stop_timeout.is_some(), "--stop-timeout"),
        (r.name.is_some() || r.detach, "--name"),
    ];
    flags
        .into_iter()
        .filter_map(|(given, name)| given.then_some(name))
        .collect()
}

/// The filesystem options as the command line spells them, for the session's record.
fn made_with(filesystem: &[FsArg]) -> String {
    let words: Vec<String> = filesystem
        .iter()
        .map(|arg| match arg {
            FsArg::Bind(v) => format!("--bind={v}"),
            FsArg::RoBind(v) => format!("--ro-bind={v}"),
            FsArg::Tmpfs(v) => format!("--tmpfs={v}"),
            FsArg::CopyUp(v) => format!("--copy-up={v}"),
            FsArg::Overlay(v) => format!("--overlay={v}"),
        })
        .collect();
    words.join(" ")
}

/// Run `r`'s COMMAND in the containers namespace of its map, made first when there is none.
pub(super) fn run(r: Request) -> Result<Infallible, Error> {
    let name = containers::namespace_name(r.map);
    let asked = made_with(&r.filesystem);
    let mut lock = None;
    let mut made = false;
    loop {
        match standing(name)? {
            Standing::Ready(c) => {
                if !asked.is_empty() && asked != c.made_with {
                    return Err(made_otherwise(name, &c.made_with, &asked));
                }
                drop(lock);
                let warn_in = (!r.quiet).then_some(name);
                return join_containers(name, r.command, r.chdir.as_deref(), warn_in);
            }
            // Made just now, yet gone already (killed): say so rather than make it again.
            _ if made => {
                return Err(SessionError::Ended {
                    name: name.into(),
                    how: "it ended as soon as it was made".into(),
                }
                .into());
            }
            // Another become-root may be making it: its lock says when it is done.
            _ if lock.is_none() => lock = Some(making_lock()?),
            Standing::Starting => return Err(SessionError::NotReady { name: name.into() }.into()),
            Standing::Absent => {
                let places = Places::of_caller(caller_uid());
                // Plain podman's own namespace runs: its calls and these share it.
                if let Some(pid) = podmans_own(r.map, &places) {
                    drop(lock);
                    let pid = pid.to_string();
                    return join_containers(&pid, r.command, r.chdir.as_deref(), None);
                }
                make(&r, containers::setup(r.map, &places), &asked)?;
                made = true;
            }
        }
    }
}

fn caller_uid() -> u32 {
    nix::unistd::Uid::current().as_raw()
}

/// The pause process of plain podman's own namespace, for podman's own map: one namespace
/// holds podman's containers, whichever made it (two beside each other over one storage
/// would each reset the containers the other runs, as podman does after a reboot).
fn podmans_own(map: crate::options::MapMode, places: &Places) -> Option<i32> {
    if !containers::shared_with_podman(map) {
        return None;
    }
    containers::podman_pause(&containers::pause_file(places)?, caller_uid())
}

/// The namespace was made with other filesystem options than these.
fn made_otherwise(name: &str, made: &str, asked: &str) -> Error {
    let made = if made.is_empty() {
        "no filesystem option"
    } else {
        made
    };
    Error::new(
        format!("containers namespace {name}"),
        format!("it was made with {made}, not {asked}"),
    )
    .with_hint(format!(
        "filesystem options apply when it is made, and a call without them uses it as it is; \
         to make it again with {asked}: become-root --stop={name} (it ends the containers in \
         it), then run this again"
    ))
}

/// Make the containers namespace `setup` describes, for `r`'s map and filesystem options: as
/// `become-root --name=NAME --detach --mount` in a child, which returns once it is ready (or
/// has reported why not, whose status this run then ends with).
fn make(r: &Request, setup: Setup, made_with: &str) -> Result<(), Error> {
    for dir in &setup.make {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir)
            .map_err(|e| Error::sys(format!("making {}", dir.display()), sys::io_errno(&e)))?;
    }
    // `r` asks for nothing else (route): its other options are the defaults.
    let creation = Request {
        mount: true,
        chdir: None,
        name: Some(setup.name.into()),
        detach: true,
        containers: false,
        command: Vec::new(),
        ..r.clone()
    };
    let record = Containers {
        map: r.map.name().into(),
        home: setup.home.as_ref().map(|h| h.display().to_string()),
        made_with: made_with.into(),
    };
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => sys::exit_now(status_of(make_here(creation, &setup, record))),
        Forked::Parent(child) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            // It said why; this run ends as it did.
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => sys::die_of(sig),
            other => Err(Error::new(
                format!("containers namespace {}", setup.name),
                format!("making it ended unexpectedly ({other:?})"),
            )),
        },
    }
}

/// In the child of [`make`]: plan the session, add the namespace's own tmpfs mounts and its
/// record, and start it (`--detach`: the caller's end returns once it is ready).
fn make_here(creation: Request, setup: &Setup, record: Containers) -> Result<Infallible, Error> {
    let quiet = creation.quiet;
    let (mut plan, warnings) = plan(creation)?;
    for (dir, mode) in &setup.private {
        plan.mounts.push(MountStep::Tmpfs {
            dir: dir.clone(),
            mode: *mode,
        });
    }
    if let Some(session) = plan.session.as_mut() {
        session.containers = Some(record);
    }
    launch(plan, &warnings, quiet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(words: &[&str]) -> Request {
        let args: Vec<std::ffi::OsString> = std::iter::once("become-root")
            .chain(words.iter().copied())
            .map(Into::into)
            .collect();
        match crate::cli::Cli::parse_args(args).unwrap().into_action() {
            crate::cli::Action::Run(r) => r,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    #[test]
    fn which_runs_go_to_the_containers_namespace() {
        // Root on the host: podman by name stays a run of its own, --containers is refused.
        assert!(!decide(&request(&["podman", "ps"]), true).unwrap());
        assert!(decide(&request(&["--containers"]), true).is_err());
        let rows: &[(&[&str], bool)] = &[
            (&["podman", "ps"], true),
            (&["/usr/bin/buildah", "from", "scratch"], true),
            (&["--map=keep-id", "podman", "images"], true),
            (&["-m", "podman", "ps"], true),
            (&["--tmpfs=/sys/fs/cgroup", "podman", "run", "img"], true),
            (&["-q", "-v", "--chdir=/tmp", "podman", "ps"], true),
            (&["--containers", "sh", "-c", "podman ps"], true),
            (&["--containers"], true),
            (&["sh", "-c", "podman ps"], false),
            (&["-m", "sh", "-c", "podman ps"], false),
            (&["--net=slirp4netns", "podman", "run", "img"], false),
            (&["--pid", "podman", "ps"], false),
            (&["--uid=0", "--map=keep-id", "podman", "ps"], false),
            (&["--cgroup", "podman", "ps"], false),
            (&["--name=x", "podman", "ps"], false),
            (&["--map-users=0:1000:1", "podman", "ps"], false),
            (&["crun", "run"], false),
            (&["true"], false),
        ];
        for (words, want) in rows {
            assert_eq!(decide(&request(words), false).unwrap(), *want, "{words:?}");
        }
        assert_eq!(
            options_of_its_own(&request(&["--pid", "--net", "podman"])),
            ["--net", "--pid"]
        );
    }

    #[test]
    fn containers_refuses_options_of_a_run_of_its_own() {
        for option in [
            "--net", "--pid", "--name=x", "--uid=0", "--cgroup", "--join=x",
        ] {
            let args: Vec<std::ffi::OsString> = ["become-root", "--containers", option, "sh"]
                .into_iter()
                .map(Into::into)
                .collect();
            assert!(crate::cli::Cli::parse_args(args).is_err(), "{option}");
        }
    }

    #[test]
    fn filesystem_options_as_recorded() {
        let r = request(&["--tmpfs=/sys/fs/cgroup", "--bind=/a:/b", "podman", "ps"]);
        assert_eq!(
            made_with(&r.filesystem),
            "--tmpfs=/sys/fs/cgroup --bind=/a:/b"
        );
        assert_eq!(made_with(&[]), "");
        let e = made_otherwise("podman", "", "--tmpfs=/srv");
        assert_eq!(
            e.why(),
            "it was made with no filesystem option, not --tmpfs=/srv"
        );
        assert!(e.hint().unwrap().contains("become-root --stop=podman"));
    }
}
