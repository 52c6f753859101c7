//! What a command line asks for: [`Cli`] turned into the values the layers below take.
#![forbid(unsafe_code)]

use super::Cli;

/// What a `become-root` command line asks for.
// Made once per run and matched at once: boxing the large variant would only add an
// allocation to the start-up path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Action {
    /// A new run (launch).
    Run(crate::launch::Request),
    /// `--check`.
    Check(crate::check::Asked),
    /// `--join`, `--list`, `--stop`.
    Session(crate::session::SessionCommand),
}

impl Cli {
    /// What the command line asks for, as the values the layers below take.
    pub fn into_action(self) -> Action {
        let identity = crate::identity::Asked {
            uid: self.uid,
            gid: self.gid,
            cap_add: self.cap_add,
            cap_drop: self.cap_drop,
            no_new_privs: self.no_new_privs,
        };
        let drop_groups = self.drop_groups;
        if self.check {
            return Action::Check(crate::check::Asked {
                map: self.map,
                map_users: self.map_users,
                map_groups: self.map_groups,
                subid_source: self.subid_source,
                network: self.net.map(|mode| {
                    let a = crate::net::Addressing::from_options(
                        self.cidr.as_deref(),
                        self.ipv6,
                        &self.dns,
                    );
                    (mode, a)
                }),
            });
        }
        if let Some(spec) = self
            .join
            .clone()
            .filter(|_| !self.publish.is_empty() || !self.unpublish.is_empty())
        {
            return Action::Session(crate::session::SessionCommand::Ports {
                name: spec,
                publish: self.publish,
                unpublish: self.unpublish,
                command: !self.command.is_empty(),
                quiet: self.quiet,
            });
        }
        if let Some(spec) = self.join {
            return Action::Session(crate::session::SessionCommand::Join {
                spec,
                command: self.command,
                chdir: self.chdir,
                identity,
            });
        }
        if self.list {
            return Action::Session(crate::session::SessionCommand::List { json: self.json });
        }
        if let Some(name) = self.logs {
            return Action::Session(crate::session::SessionCommand::Logs {
                name,
                follow: self.follow,
            });
        }
        if let Some(name) = self.stop {
            return Action::Session(crate::session::SessionCommand::Stop {
                name,
                timeout: self.stop_timeout,
            });
        }
        Action::Run(crate::launch::Request {
            map: self.map,
            map_users: self.map_users,
            map_groups: self.map_groups,
            subid_source: self.subid_source,
            mount: self.mount,
            propagation: self.propagation,
            net: self.net,
            publish: self.publish,
            port_driver: self.port_driver,
            keep_clients: !self.no_client_address,
            allow_host_loopback: self.allow_host_loopback,
            mtu: self.mtu,
            cidr: self.cidr,
            ipv6: self.ipv6,
            dns: self.dns,
            filesystem: self.filesystem,
            overlay_driver: self.overlay_driver,
            rootfs: self.rootfs,
            sysfs: self.sysfs,
            chdir: self.chdir,
            identity,
            drop_groups,
            info_fd: self.info_fd,
            verbose: self.verbose,
            quiet: self.quiet,
            pid: self.pid,
            as_pid_1: self.as_pid_1,
            boot: self.boot,
            stop_timeout: self.stop_timeout,
            notify_ready: self.notify_ready,
            uts: self.uts,
            ipc: self.ipc,
            cgroup: self.cgroup,
            limits: crate::cgroup::Limits {
                memory: self.memory,
                memory_swap: self.memory_swap,
                cpus: self.cpus,
                pids: self.pids_limit,
            },
            all: self.all,
            extras: self.extras.into_extras(),
            name: self.name,
            detach: self.detach,
            command: self.command,
        })
    }
}
