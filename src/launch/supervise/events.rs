//! What supervision tells a supervised run as it happens ([`Observer`], process::Events),
//! and how a booted image's ending is read (a halt, or a reboot that starts the run again).

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{Plan, Run};
use crate::error::{Error, say};
use crate::net::{self, Driver};
use crate::process::{self, Ending};
use crate::session::Session;
use crate::sys;

/// How a booted image's pid 1 ended, as systemd-nspawn reads it: reboot(2) in a pid namespace
/// other than the first does not restart the machine, it ends the namespace's init with
/// SIGINT for a halt or power-off and with SIGHUP for a restart (reboot(2),
/// pid_namespaces(7)). become-root sends pid 1 neither (it stops it with SIGRTMIN+3), and an
/// init gets no signal it has no handler for from inside its namespace.
pub(super) enum Shutdown {
    Halt,
    Reboot,
    Other(Ending),
}

impl Shutdown {
    pub(super) fn of(ending: Ending) -> Shutdown {
        match ending {
            Ending::Killed(Signal::SIGINT) => Shutdown::Halt,
            Ending::Killed(Signal::SIGHUP) => Shutdown::Reboot,
            ending => Shutdown::Other(ending),
        }
    }
}

/// In the environment of become-root started again by a reboot (Run::boot_again).
pub(in crate::launch) const REBOOTED: &str = "BECOME_ROOT_REBOOTED";

impl Run<'_> {
    /// The image rebooted: undo the run as at its end, except the session, and start again
    /// from the top (exec of this program with its arguments), in this same process: new
    /// namespaces, cgroup and network, the same session, ports and limits, as systemd-nspawn
    /// boots an image again. Every descriptor of this run is close-on-exec; the session's
    /// state stays, and the new run takes it over (Session::start).
    pub(super) fn boot_again(mut self) -> Error {
        if !self.plan.quiet {
            say!("become-root: the image rebooted; booting it again");
        }
        let mut session = self.session.take();
        if let Some(session) = session.as_mut() {
            session.rebooting();
        }
        let again = session
            .as_ref()
            .map(Session::again)
            .unwrap_or_default()
            .render();
        let self_notifier = self.plan.notifier.clone();
        drop(self);
        // Not dropped: that would remove the state the run after the exec takes over.
        std::mem::forget(session);
        // The service manager's socket too, which the first run took out of the environment.
        let mut extra = vec![(REBOOTED, std::ffi::OsStr::new(&again))];
        extra.extend(
            self_notifier
                .as_ref()
                .map(|n| ("NOTIFY_SOCKET", n.value.as_os_str())),
        );
        let e = sys::exec_again(&extra);
        Error::sys("booting the image again: exec", e)
    }
}

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
    /// The forwarder's view of the socket provider, until its death is said.
    pub(super) forwarding: &'r mut Option<std::sync::Arc<net::forward::Provider>>,
    /// A stop was asked for: the provider's end is no news then.
    pub(super) stopping: bool,
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
        if !self.stopping {
            notice_dead_provider(self.forwarding, self.child, self.session);
        }
    }

    /// A booted image said READY=1 (or did not within the wait): a --detach caller goes,
    /// and a service manager hears it.
    fn pid_1_ready(&mut self, waited: Option<std::time::Duration>) {
        if let Some(waited) = waited
            && !self.plan.quiet
        {
            say!(
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
        self.stopping = true;
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
        say!("become-root: network: {down}; the namespace has no network now");
        if let Some(session) = session.as_mut() {
            session.network_down(&down);
        }
    }
}

/// If the socket provider is gone while the namespace process runs on, say so once, and
/// record it in the session. At the end of a run with a pid namespace the provider goes with
/// pid 1, which is exiting by then: that is no news.
fn notice_dead_provider(
    forwarding: &mut Option<std::sync::Arc<net::forward::Provider>>,
    child: Pid,
    session: &mut Option<Session>,
) {
    if !forwarding.as_ref().is_some_and(|p| p.gone()) || exiting(child) {
        return;
    }
    *forwarding = None; // said once
    say!(
        "become-root: published ports: their socket provider in the namespace is gone; they \
         refuse connections now"
    );
    if let Some(session) = session.as_mut() {
        session.network_down("published ports: their socket provider is gone");
    }
}

/// Whether `pid` is on its way out: PF_EXITING (0x4, include/linux/sched.h) in the flags
/// of /proc/PID/stat (proc(5), field 9), set before the kernel ends the rest of a pid
/// namespace with its pid 1 (zap_pid_ns_processes); gone counts too.
fn exiting(pid: Pid) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // After the command name in parentheses (which may hold anything): the state, ppid,
    // pgrp, session, tty_nr, tpgid, then the flags.
    let flags = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6))
        .and_then(|f| f.parse::<u64>().ok());
    flags.is_none_or(|f| f & PF_EXITING != 0)
}
