//! The command line's values turned into what it asks for: the filesystem options in the
//! order given, then a run, `--check` or a session command ([`Action`]).

use std::ffi::OsString;

use super::{Cli, FsArg};

impl Cli {
    /// Parse like `Parser::try_parse_from`, and also record the filesystem options in the
    /// order they were given (later mounts may build on earlier ones).
    pub fn parse_args(args: Vec<OsString>) -> Result<Cli, clap::Error> {
        use clap::FromArgMatches;
        let mut matches = Self::command().try_get_matches_from(args)?;
        // Indices first: from_arg_matches_mut takes the values out (no copy of the matches).
        let index = |id: &str| matches.indices_of(id).map(|i| i.collect::<Vec<usize>>());
        let indices: Vec<Option<Vec<usize>>> = ["bind", "ro_bind", "tmpfs", "copy_up", "overlay"]
            .iter()
            .map(|id| index(id))
            .collect();
        let mut cli = Cli::from_arg_matches_mut(&mut matches)?;
        let mut ordered: Vec<(usize, FsArg)> = Vec::new();
        type Kind<'a> = (&'a str, &'a Vec<String>, fn(String) -> FsArg);
        let kinds: [Kind; 5] = [
            ("bind", &cli.bind, FsArg::Bind),
            ("ro_bind", &cli.ro_bind, FsArg::RoBind),
            ("tmpfs", &cli.tmpfs, FsArg::Tmpfs),
            ("copy_up", &cli.copy_up, FsArg::CopyUp),
            ("overlay", &cli.overlay, FsArg::Overlay),
        ];
        for ((_, values, make), indices) in kinds.into_iter().zip(indices) {
            if let Some(indices) = indices {
                ordered.extend(indices.into_iter().zip(values.iter().cloned().map(make)));
            }
        }
        ordered.sort_by_key(|(index, _)| *index);
        cli.filesystem = ordered.into_iter().map(|(_, arg)| arg).collect();
        Ok(cli)
    }

    /// The clap command, for generating man pages and completions.
    pub fn command() -> clap::Command {
        <Self as clap::CommandFactory>::command()
    }

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
            });
        }
        if let Some(spec) = self.join {
            return Action::Session(crate::session::SessionCommand::Join {
                spec,
                command: self.command,
                chdir: self.chdir,
                identity,
                quiet: self.quiet,
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
            allow_host_loopback: self.allow_host_loopback,
            mtu: self.mtu,
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
            name: self.name,
            detach: self.detach,
            containers: self.containers,
            command: self.command,
        })
    }
}

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
