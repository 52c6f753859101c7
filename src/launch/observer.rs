//! What supervision tells a supervised run as it happens ([`process::Events`]): --info-fd's
//! report once the namespace process is set up, a network helper that died, a booted image's
//! READY=1 and STOPPING=1 for a service manager, and a detached session's log kept bounded.

use super::Plan;
use crate::net::{self, Driver};
use crate::process;
use crate::session::Session;

/// What supervision tells a run as it happens (process::Events).
pub(super) struct Observer<'r> {
    pub(super) plan: &'r Plan,
    pub(super) child: nix::unistd::Pid,
    pub(super) observed: Option<&'r crate::info::Observed>,
    pub(super) driver: Option<Driver>,
    pub(super) ports: &'r [(String, u16, String)],
    pub(super) cgroup: Option<&'r crate::cgroup::Own>,
    pub(super) helper: &'r mut Option<net::helper::Running>,
    pub(super) session: &'r mut Option<Session>,
}

impl process::Events for Observer<'_> {
    /// --info-fd: what was set up, once the namespace process says its setup is done.
    fn setup_done(&mut self) {
        let plan = self.plan;
        if let (Some(fd), Some(observed)) = (plan.info_fd, self.observed) {
            let ready = crate::info::Ready {
                pid: self.child,
                uid_map: &plan.mapping.uid,
                gid_map: &plan.mapping.gid,
                how: (plan.mapping.how.0.name(), plan.mapping.how.1.name()),
                runs_as: (
                    plan.identity.uid.unwrap_or(0),
                    plan.identity.gid.unwrap_or(0),
                ),
                groups_dropped: plan.drop_groups,
                observed,
                net_mode: plan
                    .net
                    .map(|_| self.driver.map_or("none", Driver::program)),
                ports: self.ports.to_vec(),
                session: plan.session.as_ref().map(|request| {
                    let dir = crate::session::state_dir_location();
                    (request.name.clone(), dir.display().to_string())
                }),
                cgroup: self.cgroup,
            };
            crate::info::write_line(fd, &ready.to_json());
        }
    }

    fn child_changed(&mut self) {
        notice_dead_helper(self.helper, self.session);
    }

    /// A booted image said READY=1 (or did not within the wait): a --detach caller goes,
    /// and a service manager hears it.
    fn pid_1_ready(&mut self, waited: Option<std::time::Duration>) {
        if let Some(waited) = waited
            && !self.plan.quiet
        {
            eprintln!(
                "become-root: the image did not say it was ready (READY=1 on {}) within {} s; \
                 going on",
                process::notify::INSIDE,
                waited.as_secs()
            );
        }
        if let Some(session) = self.session.as_mut()
            && let Err(e) = session.release_caller()
        {
            e.report();
        }
        if let Some(notifier) = &self.plan.notifier {
            notifier.send("READY=1");
        }
    }

    fn stopping(&mut self) {
        if let Some(notifier) = &self.plan.notifier {
            notifier.send("STOPPING=1");
        }
    }

    fn tick(&mut self) {
        if let Some(session) = self.session.as_mut() {
            session.bound_log();
        }
    }

    fn output(&mut self) -> bool {
        self.session.as_mut().is_some_and(Session::copy_output)
    }
}

/// If the network helper has ended, say so on stderr and record it in the session.
pub(super) fn notice_dead_helper(
    helper: &mut Option<net::helper::Running>,
    session: &mut Option<Session>,
) {
    if let Some(down) = helper.as_mut().and_then(|h| h.ended()) {
        eprintln!("become-root: network: {down}; the namespace has no network now");
        if let Some(session) = session.as_mut() {
            session.network_down(&down);
        }
    }
}
