//! The steps of the plan (steps.rs), each alone: one row per rule.
use std::ffi::OsStr;
use std::path::Path;

use nix::sched::CloneFlags;

use super::steps::{Asked, READY_WAIT, asked, implied_net, namespaces, ready_wait};
use crate::cli::Cli;
use crate::launch::Request;
use crate::options::{NetMode, NotifyReady};

/// The request a command line makes.
fn request(words: &[&str]) -> Request {
    let args = std::iter::once("become-root").chain(words.iter().copied());
    match Cli::parse_args(args.map(Into::into).collect())
        .unwrap()
        .into_action()
    {
        crate::cli::Action::Run(request) => request,
        other => panic!("{words:?}: {other:?}"),
    }
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
    for (words, want) in [
        (&[][..], row(false, false, None, false)),
        (&["--pid"][..], row(false, true, None, false)),
        (&["--as-pid-1"][..], row(true, true, None, false)),
        (&["--all"][..], row(false, true, none, false)),
        (&["--boot", "--rootfs=/"][..], row(true, true, none, true)),
        (&["--memory=1g"][..], row(false, false, None, true)),
        (&["--sysfs", "--cgroup"][..], row(false, false, none, true)),
    ] {
        assert_eq!(asked(&request(words)), want, "{words:?}");
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
    // (command line, connected network) -> (namespaces, a mount namespace)
    for (words, connected, want, mount) in [
        (&["true"][..], false, F::empty(), false),
        (&["-m", "true"][..], false, ns, true),
        (&["-n", "true"][..], false, net, false),
        (&["--net=slirp4netns", "true"][..], true, ns | net, true),
        (&["--pid", "true"][..], false, ns | pid, true),
        (&["-u", "-i", "true"][..], false, uts | ipc, false),
        (&["--cgroup", "true"][..], false, ns | cg, true),
        (&["--all"][..], false, ns | net | pid | uts | ipc | cg, true),
        (&["podman", "ps"][..], false, ns, true),
    ] {
        let cli = request(words);
        let got = namespaces(&cli, &asked(&cli), connected);
        assert_eq!(got, (want, mount), "{words:?}");
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
