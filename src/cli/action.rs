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
    /// What the command line asks for, as the values the layers below take: a run takes its
    /// options as they were defined ([`crate::launch::Request`]); --check, --join, --list,
    /// --logs and --stop read what they take of them.
    pub fn into_action(self) -> Action {
        let run = self.run;
        if self.check {
            return Action::Check(crate::check::Asked {
                map: run.map,
                map_users: run.map_users,
                map_groups: run.map_groups,
                subid_source: run.subid_source,
                network: run.net.map(|mode| {
                    let a = crate::net::Addressing::from_options(
                        run.cidr.as_deref(),
                        run.ipv6,
                        &run.dns,
                    );
                    (mode, a)
                }),
            });
        }
        if let Some(spec) = self
            .join
            .clone()
            .filter(|_| !run.publish.is_empty() || !self.unpublish.is_empty())
        {
            return Action::Session(crate::session::SessionCommand::Ports {
                name: spec,
                publish: run.publish,
                unpublish: self.unpublish,
                command: !run.command.is_empty(),
                quiet: run.quiet,
            });
        }
        if let Some(spec) = self.join {
            return Action::Session(crate::session::SessionCommand::Join {
                spec,
                command: run.command,
                chdir: run.chdir,
                identity: run.identity,
                quiet: run.quiet,
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
                timeout: run.stop_timeout,
            });
        }
        Action::Run(run)
    }
}
