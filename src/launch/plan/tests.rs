//! The steps of the plan (steps.rs), each alone: one row per rule.
use std::ffi::OsStr;
use std::path::Path;

use nix::sched::CloneFlags;

use super::steps::{Asked, READY_WAIT, asked, implied_net, namespaces, ready_wait};
use crate::launch::Request;
use crate::options::{NetMode, NotifyReady};

/// A run's request with every default, then `set`'s changes (as the options would make them:
/// the command line is the cli module's, a layer above).
fn request(set: impl FnOnce(&mut Request)) -> Request {
    let mut request = Request {
        command: vec!["true".into()],
        ..Request::default()
    };
    set(&mut request);
    request
}

#[test]
fn sysfs_and_all_imply_net_none_unless_net_says_otherwise() {
    let off = NetMode::None;
    // (--net, --all, --sysfs) -> the network namespace's mode
    let rows = [
        ((None, false, false), None),
        ((None, true, false), Some(off)),
        ((None, false, true), Some(off)),
        ((None, true, true), Some(off)),
        (
            (Some(NetMode::Slirp4netns), false, true),
            Some(NetMode::Slirp4netns),
        ),
        ((Some(NetMode::Pasta), true, true), Some(NetMode::Pasta)),
        ((Some(NetMode::Auto), false, false), Some(NetMode::Auto)),
    ];
    for ((net, all, sysfs), want) in rows {
        assert_eq!(
            implied_net(net, all, sysfs),
            want,
            "--net={net:?} --all={all} --sysfs={sysfs}"
        );
    }
}

#[test]
fn what_the_options_imply() {
    let row = |as_pid_1, pid, net, own_cgroup| Asked {
        as_pid_1,
        pid,
        net,
        own_cgroup,
    };
    let none = Some(NetMode::None);
    for (words, cli, want) in [
        ("", request(|_| {}), row(false, false, None, false)),
        (
            "--pid",
            request(|r| r.pid = true),
            row(false, true, None, false),
        ),
        (
            "--as-pid-1",
            request(|r| r.as_pid_1 = true),
            row(true, true, None, false),
        ),
        (
            "--all",
            request(|r| r.all = true),
            row(false, true, none, false),
        ),
        (
            "--boot",
            request(|r| r.boot = true),
            row(true, true, none, true),
        ),
        (
            "--memory=1g",
            request(|r| r.limits.memory = Some(1 << 30)),
            row(false, false, None, true),
        ),
        (
            "--sysfs --cgroup",
            request(|r| (r.sysfs, r.cgroup) = (true, true)),
            row(false, false, none, true),
        ),
    ] {
        assert_eq!(asked(&cli), want, "{words}");
    }
}

#[test]
fn which_namespaces_a_run_gets() {
    use CloneFlags as F;
    let (ns, net, pid, uts, ipc, cg) = (
        F::CLONE_NEWNS,
        F::CLONE_NEWNET,
        F::CLONE_NEWPID,
        F::CLONE_NEWUTS,
        F::CLONE_NEWIPC,
        F::CLONE_NEWCGROUP,
    );
    // (options, connected network) -> (namespaces, a mount namespace)
    let slirp = Some(NetMode::Slirp4netns);
    let all = ns | net | pid | uts | ipc | cg;
    for (words, cli, connected, want, mount) in [
        ("", request(|_| {}), false, F::empty(), false),
        ("-m", request(|r| r.mount = true), false, ns, true),
        (
            "-n",
            request(|r| r.net = Some(NetMode::None)),
            false,
            net,
            false,
        ),
        (
            "--net=slirp4netns",
            request(|r| r.net = slirp),
            true,
            ns | net,
            true,
        ),
        ("--pid", request(|r| r.pid = true), false, ns | pid, true),
        (
            "-u -i",
            request(|r| (r.uts, r.ipc) = (true, true)),
            false,
            uts | ipc,
            false,
        ),
        (
            "--cgroup",
            request(|r| r.cgroup = true),
            false,
            ns | cg,
            true,
        ),
        ("--all", request(|r| r.all = true), false, all, true),
        (
            "podman ps",
            request(|r| r.command = vec!["podman".into(), "ps".into()]),
            false,
            ns,
            true,
        ),
    ] {
        let got = namespaces(&cli, &asked(&cli), connected);
        assert_eq!(got, (want, mount), "{words}");
    }
}

#[test]
fn a_booted_image_is_waited_for_when_it_will_say_it_is_ready() {
    let sbin_init = OsStr::new("/sbin/init");
    let root = Some(Path::new("/nonexistent-rootfs"));
    for (boot, notify, want) in [
        (false, NotifyReady::Yes, None),
        (true, NotifyReady::No, None),
        (true, NotifyReady::Yes, Some(READY_WAIT)),
        // Auto: only when the init is systemd, which an empty root has not.
        (true, NotifyReady::Auto, None),
    ] {
        assert_eq!(
            ready_wait(boot, notify, root, sbin_init),
            want,
            "{boot} {notify:?}"
        );
    }
}
