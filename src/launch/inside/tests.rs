//! The namespace process's steps in order, through the Ops seam, and the map helper's report.
use nix::sched::CloneFlags;

use super::{Ops, Plan, Root, decode_report, encode_report, setup_inside, unshare_and_set_up};
use crate::error::Error;
use crate::identity::Identity;
use crate::idmap::IdMap;
use crate::mounts::MountStep;
use crate::options::{NetMode, Propagation};
use crate::process::Command;
use crate::userns::{Mapping, Planned, UsernsError, Writer};

#[derive(Default)]
struct Recorder(Vec<String>);

impl Ops for Recorder {
    fn unshare(&mut self, flags: CloneFlags) -> Result<(), Error> {
        self.0.push(format!(
            "unshare {:?}",
            flags.contains(CloneFlags::CLONE_NEWNS)
        ));
        Ok(())
    }
    fn wait_for_maps(&mut self) -> Result<(), Error> {
        self.0.push("maps".into());
        Ok(())
    }
    fn become_root(&mut self, root: Root) -> Result<(), Error> {
        self.0.push(match (root.uid, root.gid) {
            (true, true) => "root".into(),
            (uid, gid) => format!("root uid {uid} gid {gid}"),
        });
        Ok(())
    }
    fn enter_cgroup_namespace(&mut self) -> Result<(), Error> {
        self.0.push("cgroupns".into());
        Ok(())
    }
    fn wait_for_release(&mut self) -> Result<(), Error> {
        self.0.push("release".into());
        Ok(())
    }
    fn drop_groups(&mut self) -> Result<(), Error> {
        self.0.push("drop groups".into());
        Ok(())
    }
    fn mount(&mut self, step: &MountStep) -> Result<(), Error> {
        self.0.push(format!("mount {step:?}"));
        Ok(())
    }
    fn loopback_up(&mut self) -> Result<(), Error> {
        self.0.push("lo".into());
        Ok(())
    }
    fn configure_network(&mut self, net: &crate::net::NetPlan) -> Result<(), Error> {
        self.0.push(format!("configure {}", net.driver.program()));
        Ok(())
    }
}

fn plan_with(mounts: Vec<MountStep>, net: Option<NetMode>) -> Plan {
    Plan {
        namespaces: CloneFlags::CLONE_NEWNS,
        mounts,
        net,
        connected: None,
        publish: Vec::new(),
        keep_clients: true,
        live_ports: false,
        mapping: Mapping {
            uid: IdMap::single(1000),
            gid: IdMap::single(1000),
            writer: Writer::SelfMap,
            how: (Planned::Single, Planned::Single),
        },
        command: Command::new(vec!["true".into()], Vec::new()).unwrap(),
        quiet: false,
        notices: Vec::new(),
        identity: Identity::default(),
        drop_groups: false,
        info_fd: None,
        verbose: false,
        session: None,
        cgroup: None,
        as_pid_1: false,
        boot: false,
        stop_timeout: None,
        again: None,
        notify: None,
        ready_wait: None,
        notifier: None,
        console: None,
        prepared: Default::default(),
    }
}

#[test]
fn inside_steps_in_order() {
    let steps = vec![
        MountStep::SetPropagation(Propagation::Private),
        MountStep::FreshProc { at: "/proc".into() },
    ];
    let plan = plan_with(steps, Some(NetMode::None));
    let mut ops = Recorder::default();
    unshare_and_set_up(&mut ops, &plan).unwrap();
    assert_eq!(
        ops.0,
        [
            "unshare true",
            "maps",
            "root",
            "mount SetPropagation(Private)",
            "mount FreshProc { at: \"/proc\" }",
            "lo"
        ]
    );
}

#[test]
fn the_cgroup_namespace_comes_after_the_maps_and_before_the_mounts() {
    let steps = vec![MountStep::Cgroup2 {
        at: "/sys/fs/cgroup".into(),
    }];
    let mut plan = plan_with(steps, None);
    plan.cgroup = Some(Default::default());
    let mut ops = Recorder::default();
    setup_inside(&mut ops, &plan).unwrap();
    assert_eq!(
        ops.0,
        [
            "maps",
            "cgroupns",
            "release",
            "root",
            "mount Cgroup2 { at: \"/sys/fs/cgroup\" }"
        ]
    );
}

#[test]
fn groups_are_dropped_as_root_before_the_mounts() {
    let steps = vec![MountStep::SetPropagation(Propagation::Private)];
    let plan = Plan {
        drop_groups: true,
        ..plan_with(steps, None)
    };
    let mut ops = Recorder::default();
    setup_inside(&mut ops, &plan).unwrap();
    assert_eq!(
        ops.0,
        [
            "maps",
            "root",
            "drop groups",
            "mount SetPropagation(Private)"
        ]
    );
}

#[test]
fn no_loopback_without_net() {
    let mut ops = Recorder::default();
    setup_inside(&mut ops, &plan_with(Vec::new(), None)).unwrap();
    assert_eq!(ops.0, ["maps", "root"]);
}

#[test]
fn report_round_trip() {
    assert!(decode_report(&encode_report(&Ok(()))).is_ok());
    let err = UsernsError::HelperFailed {
        program: "newuidmap 1 0 1000 1".into(),
        status: "exit status: 1".into(),
        stderr: "newuidmap: uid range not allowed".into(),
    };
    let got = decode_report(&encode_report(&Err(err))).unwrap_err();
    assert!(got.why().contains("uid range not allowed"), "{got}");
    assert!(got.hint().is_some());
    assert!(decode_report(b"").is_err(), "a dead helper is an error");
}
