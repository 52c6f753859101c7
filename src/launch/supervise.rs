//! A supervised run, as a pipeline of named steps over one value, [`Run`], that holds what
//! the run owns so far:
//!
//! ```text
//! claim the session -> bind the host ports -> clone the namespace process -> write its maps
//!   -> start the fuse helper -> move it into its own cgroup -> start the network helper
//!   -> release it -> take its bypass listener -> forward the ports -> ready -> supervise
//! ```
//!
//! Each step is a method that calls into the module of its concern (session, net::forward,
//! userns, net::helper, process) and records what it made. A step that fails returns its error
//! and the run is dropped: [`Drop`] undoes what the steps before it made, in reverse order, in
//! one place (the namespace process is killed and reaped, the helper stopped, the host ports
//! closed, the session's state removed). After supervision, [`Run::finish`] ends the same way
//! and returns how COMMAND ended.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::Plan;
use super::inside::{Channels, exit_with, namespace_child, with_apparmor_hint};
use crate::error::{Error, say};
use crate::net::{self, Driver};
use crate::process::{self, Ending, Terminal};
use crate::session::Session;
use crate::sys::{self, Forked};

mod events;
mod network;

pub(super) use events::REBOOTED;
use events::{Observer, Shutdown, notice_dead_helper};

/// How long become-root waits at the end for fuse-overlayfs to be gone (ended by its
/// parent-death signal; or, started by the fuse helper, with the run's mount namespace, the
/// helper then), before it kills what is left.
const HELPERS_END: std::time::Duration = std::time::Duration::from_secs(2);

/// What a supervised run owns, step by step.
struct Run<'p> {
    plan: &'p Plan,
    /// Claimed first, removed last (its Drop removes the state).
    session: Option<Session>,
    /// Only an init in a pid namespace needs the terminal handed over (see Terminal).
    terminal: Option<Terminal>,
    /// The host ports, bound; handed to the forwarder once the namespace process runs.
    bound: Vec<net::forward::Bound>,
    /// The namespace process, while it has not been reaped.
    child: Option<Pid>,
    /// Our ends of its pipes: the word to go, and the reports of an init.
    go: Option<std::fs::File>,
    ending: Option<std::fs::File>,
    /// --cgroup: its word that it made its cgroup namespace.
    cgroup_made: Option<std::fs::File>,
    /// Helpers to wait for at the end, then to kill: the fuse helper, and the fuse-overlayfs
    /// processes the namespace process left running (without a new root).
    helpers: Vec<Pid>,
    /// Our end of the channel to the socket provider inside (published ports), then the
    /// forwarder's view of it, until its death is said.
    provider: Option<OwnedFd>,
    /// The fuse helper's end of its channel to the namespace process, until it is forked.
    fuse: Option<OwnedFd>,
    forwarding: Option<std::sync::Arc<net::forward::Provider>>,
    /// How long a forwarded TCP connection may be idle.
    idle: Option<std::time::Duration>,
    helper: Option<net::helper::Running>,
    /// --cgroup: the run's own cgroup, holding the namespace process.
    cgroup: Option<crate::cgroup::Own>,
    /// The network helper that runs: the planned one, or slirp4netns when --net=auto fell
    /// back from pasta.
    driver: Option<Driver>,
    /// --info-fd: what /proc showed of the namespace process while it could not end, and
    /// the published ports as the user reaches them.
    observed: Option<crate::info::Observed>,
    ports: Vec<(String, u16, String)>,
    /// --net=bypass: our end of the channel the namespace process sends its seccomp listener
    /// on, then the answerer that holds it.
    bypass_channel: Option<OwnedFd>,
    bypass: Option<net::bypass::Supervisor>,
    /// --net=bypass: the helper was started but not yet waited for (see start_network).
    helper_starting: bool,
}

/// Supervise: run the steps, then wait for COMMAND, forwarding signals, and end as it ended.
pub fn supervise(plan: &Plan) -> Result<std::convert::Infallible, Error> {
    let mut run = Run::new(plan);
    run.claim_session()?;
    run.bind_ports()?;
    run.clone_namespaces()?;
    run.write_maps()?;
    run.start_fuse_helper()?;
    run.own_cgroup()?;
    run.start_network()?;
    run.release()?;
    run.take_bypass()?;
    run.forward_ports();
    run.ready()?;
    let ending = run.supervise();
    run.finish(ending)
}

impl<'p> Run<'p> {
    fn new(plan: &'p Plan) -> Run<'p> {
        Run {
            plan,
            session: None,
            terminal: None,
            bound: Vec::new(),
            child: None,
            go: None,
            ending: None,
            cgroup_made: None,
            helpers: Vec::new(),
            provider: None,
            fuse: None,
            forwarding: None,
            idle: None,
            helper: None,
            cgroup: None,
            driver: plan.connected.as_ref().map(|net| net.driver),
            observed: None,
            ports: Vec::new(),
            bypass_channel: None,
            helper_starting: false,
            bypass: None,
        }
    }

    /// Sessions: claim the name; with --detach, go on in the background (only the background
    /// process returns from here).
    fn claim_session(&mut self) -> Result<(), Error> {
        let plan = self.plan;
        let net = plan
            .net
            .map(|_| self.driver.map_or("none", Driver::program));
        let mut keep = plan.prepared.raw_fds();
        keep.extend(plan.info_fd);
        keep.extend(plan.console.iter().flat_map(|c| c.raw_fds()));
        keep.extend(plan.notify.as_ref().map(|n| n.raw_fd()));
        self.session = Session::start(plan.session.as_ref(), net, &keep, plan.again)?;
        if let Some(session) = self.session.as_mut() {
            session.stops_with(plan.boot, plan.stop_timeout);
        }
        Ok(())
    }

    /// Host ports first: they depend on nothing inside, so a port in use is an error before
    /// any namespace exists.
    fn bind_ports(&mut self) -> Result<(), Error> {
        if !self.plan.publish.is_empty() {
            self.idle = net::forward::idle_timeout_from_env()?;
        }
        self.bound = net::forward::bind(&self.plan.publish)?;
        Ok(())
    }

    /// Clone the namespace process (pid 1 of a new pid namespace, when asked). It waits for
    /// the word to go; become-root supervises from here on, its signals blocked (they are read
    /// from a signalfd) and as a child subreaper (orphans of its children, pasta's short-lived
    /// workers, come back to be reaped rather than lingering as zombies of the system's init).
    fn clone_namespaces(&mut self) -> Result<(), Error> {
        let plan = self.plan;
        // A pid 1 with a console (a booted image's, or --as-pid-1's at a terminal) is in a
        // session of its own; the terminal stays become-root's.
        if plan.pid_namespace() && plan.console.is_none() {
            self.terminal = Terminal::foreground();
        }
        process::block_forwarded_signals()?;
        let _ = nix::sys::prctl::set_child_subreaper(true);
        let (go_r, go_w) = process::pipe()?;
        let (ending_r, ending_w) = process::pipe()?;
        let channel = match plan.publish.is_empty() && !plan.live_ports {
            true => None,
            false => {
                Some(net::forward::provider_channel().map_err(|e| Error::sys("socketpair", e))?)
            }
        };
        let fuse = match plan.fuse_helper() {
            true => Some(
                crate::mounts::fuse_helper::channel().map_err(|e| Error::sys("socketpair", e))?,
            ),
            false => None,
        };
        let bypass = match plan.connected.as_ref().is_some_and(|n| n.bypass) {
            true => Some(net::bypass::channel().map_err(|e| Error::sys("socketpair", e))?),
            false => None,
        };
        let mut flags = CloneFlags::CLONE_NEWUSER | plan.namespaces;
        let mut cgroup_made = None;
        if plan.cgroup.is_some() {
            // Its cgroup namespace is made inside, once the process is in its own cgroup.
            flags.remove(CloneFlags::CLONE_NEWCGROUP);
            cgroup_made = Some(process::pipe()?);
        }
        match sys::clone_process(flags)
            .map_err(|e| Error::from(crate::userns::diagnose_unshare(e)))?
        {
            Forked::Child => {
                drop((go_w, ending_r));
                let inside = channel.map(|(_outside, inside)| inside);
                let fuse = fuse.map(|(inside, _helper)| inside);
                let channels = Channels {
                    go: go_r,
                    ending: ending_w,
                    provider: inside,
                    fuse,
                    cgroup_made: cgroup_made.map(|(_r, w)| w),
                    bypass: bypass.map(|(_outside, inside)| inside),
                };
                exit_with(namespace_child(
                    plan,
                    channels,
                    self.terminal,
                    self.session.as_ref(),
                ))
            }
            Forked::Parent(child) => {
                if let Some(session) = &self.session {
                    session.cloned();
                }
                self.child = Some(child);
                self.go = Some(go_w);
                self.ending = Some(ending_r);
                self.cgroup_made = cgroup_made.map(|(r, _w)| r);
                self.provider = channel.map(|(outside, _inside)| outside);
                self.fuse = fuse.map(|(_inside, helper)| helper);
                self.bypass_channel = bypass.map(|(outside, _inside)| outside);
                Ok(())
            }
        }
    }

    fn child(&self) -> Pid {
        self.child.expect("the namespace process was cloned")
    }

    /// newuidmap and newgidmap (or become-root itself) write the namespace process's maps.
    fn write_maps(&mut self) -> Result<(), Error> {
        crate::userns::write_maps(self.child(), &self.plan.mapping).map_err(with_apparmor_hint)
    }

    /// fuse-overlayfs's helper (mounts::fuse_helper), when an overlay below a new root may
    /// need it: forked now, in a user namespace of its own whose maps are the run's, before
    /// the namespace process mounts anything. Its fuse-overlayfs processes are then out of
    /// COMMAND's reach.
    fn start_fuse_helper(&mut self) -> Result<(), Error> {
        let Some(channel) = self.fuse.take() else {
            return Ok(());
        };
        let (mapping, root) = (&self.plan.mapping, self.plan.root());
        let helper =
            crate::mounts::fuse_helper::start_helper(channel, (root.uid, root.gid), |pid| {
                crate::userns::write_maps(pid, mapping).map_err(with_apparmor_hint)
            })?;
        self.helpers.push(helper);
        Ok(())
    }

    /// --cgroup: make the run's cgroup, with its limits, and move the namespace process into
    /// it while it waits to go (the cgroup module); then let it make its cgroup namespace, rooted
    /// there, and wait until it has: what --info-fd and the session's record read of it
    /// afterwards is that namespace, not the caller's (D14). Its janitor reports what it
    /// cannot remove to the state directory (it runs after become-root has returned).
    fn own_cgroup(&mut self) -> Result<(), Error> {
        if let Some(limits) = &self.plan.cgroup {
            let own = crate::cgroup::make(self.child(), limits, crate::session::report_leftover)?;
            if let Some(session) = self.session.as_mut() {
                let described: Vec<String> = own
                    .limits
                    .describe()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                session.cgroup_is(&own.path, described.join(" "));
            }
            self.cgroup = Some(own);
            let go = self.go.as_mut().expect("not released yet");
            let mut made = [0u8; 1];
            let said = go.write_all(b"c").is_ok()
                && self
                    .cgroup_made
                    .take()
                    .is_some_and(|mut pipe| matches!(pipe.read(&mut made), Ok(1)));
            if !said {
                return Err(Error::new(
                    "--cgroup",
                    "the namespace process ended before it made its cgroup namespace",
                ));
            }
        }
        Ok(())
    }

    /// Tell the user what was chosen for them (ports for host port 0), note what --info-fd
    /// reports of the namespace process while it cannot end, then let it go: "ok", or "ok"
    /// and the helper that runs instead of the planned one (its DNS forwarder, hence the
    /// resolv.conf inside, differs).
    fn release(&mut self) -> Result<(), Error> {
        let plan = self.plan;
        if !plan.quiet {
            let chosen = self.bound.iter().filter(|b| b.publish.host_port == 0);
            let chosen = chosen.map(|b| format!("published {}", b.describe()));
            for notice in plan.notices.iter().cloned().chain(chosen) {
                say!("become-root: {notice}");
            }
        }
        let mut word = b"ok".to_vec();
        if let (Some(driver), Some(net)) = (self.driver, plan.connected.as_ref())
            && driver != net.driver
        {
            word.extend(driver.program().as_bytes());
            word.push(b'\n');
            word.extend(net.addressing.resolv_conf(driver).as_bytes());
        }
        if plan.info_fd.is_some() {
            let kinds = super::namespace_kinds(plan.namespaces);
            self.observed = Some(crate::info::observe(self.child(), &kinds));
        }
        self.ports = self.published();
        if let Some(session) = self.session.as_mut() {
            let shown = self.ports.iter();
            session.ports_are(
                shown
                    .map(|(host, port, proto)| format!("{host}->{port}/{proto}"))
                    .collect(),
            );
        }
        let mut go = self.go.take().expect("released once");
        go.write_all(&word)
            .map_err(|e| Error::sys("starting the namespace process", sys::io_errno(&e)))
    }

    /// become-root's own forwarder takes the host ports (the provider inside answers once the
    /// namespace process has set itself up).
    fn forward_ports(&mut self) {
        if let Some(provider) = self.provider.take() {
            let provider = std::sync::Arc::new(net::forward::Provider::new(provider));
            self.forwarding = Some(provider.clone());
            let keep = self.plan.keep_clients;
            let control = self.live_ports(self.plan.live_ports);
            let bound = std::mem::take(&mut self.bound);
            net::forward::start(bound, provider, self.idle, keep, control);
        } else if let (Some(api), Some(net)) = (
            self.helper.as_ref().and_then(|h| h.api_socket()),
            self.plan.connected.as_ref(),
        ) {
            // --port-driver=helper with slirp4netns (perhaps --net=auto's fallback to it).
            let net = net::NetPlan {
                driver: Driver::Slirp4netns,
                ..net.clone()
            };
            if let Some(control) = self.live_ports(true) {
                net::forward::serve_helper(control, &net, api);
            }
        }
    }

    /// A session's live ports (--join=NAME --publish): its control socket, and what a change
    /// updates: the session's record (--list) and --info-fd (a "ports" event). A socket that
    /// cannot be made leaves the session without live ports, and says so.
    fn live_ports(&self, wanted: bool) -> Option<net::forward::Control> {
        let session = self.session.as_ref().filter(|_| wanted)?;
        let (path, record) = session.ports_socket();
        let listener = match net::forward::listen_at(&path) {
            Ok(listener) => listener,
            Err(e) => {
                say!("become-root: live ports: {}: {e}", path.display());
                return None;
            }
        };
        let info_fd = self.plan.info_fd;
        let changed = move |ports: &[(String, u16, String)]| {
            let shown = ports
                .iter()
                .map(|(h, p, proto)| format!("{h}->{p}/{proto}"));
            record.set(shown.collect());
            if let Some(fd) = info_fd {
                crate::info::write_line(fd, &crate::info::ports_json(ports));
            }
        };
        Some(net::forward::Control {
            listener,
            changed: Box::new(changed),
        })
    }

    /// Sessions: wait until the namespaces are ready, record them, let a --detach caller go,
    /// unless the run waits for its pid 1 to say it is ready (a booted image); a service
    /// manager above become-root hears READY=1 at the same moment.
    fn ready(&mut self) -> Result<(), Error> {
        let waits = self.plan.ready_wait.is_some();
        if let (Some(session), Some(child)) = (self.session.as_mut(), self.child) {
            session.namespaces_ready(child, !waits)?;
        }
        if let (Some(notifier), false) = (&self.plan.notifier, waits) {
            notifier.send("READY=1");
        }
        Ok(())
    }

    /// Wait for COMMAND, forwarding signals. An init reports how COMMAND ended (otherwise the
    /// child is COMMAND), and the namespace process says when its setup is done, for
    /// --info-fd. A network helper that dies meanwhile leaves the namespace without a
    /// network while COMMAND runs on, and the socket provider's death leaves the published
    /// ports without a way in: each is said at once (in a detached session's log) and
    /// recorded for --list.
    fn supervise(&mut self) -> Result<Ending, Error> {
        let plan = self.plan;
        let child = self.child();
        let reports = (plan.has_init() || plan.info_fd.is_some())
            .then(|| self.ending.take())
            .flatten();
        let output = self.session.as_ref().and_then(Session::output_to_poll);
        let watch = process::Watch {
            reports,
            terminal: self.terminal,
            console: plan.console.as_deref(),
            stop_with: plan.stop_with(),
            notify: plan.notify.as_deref().map(|l| (l, plan.ready_wait)),
            // A detached session's log is kept bounded (session::LOG_MAX).
            tick: self
                .session
                .as_ref()
                .is_some_and(Session::has_log)
                .then_some(std::time::Duration::from_secs(1)),
            output: output.as_ref().map(|fd| fd.as_fd()),
            source: self.bypass.as_mut().map(|b| b as &mut dyn process::Source),
        };
        let mut observer = Observer {
            plan,
            child,
            observed: self.observed.as_ref(),
            driver: self.driver,
            ports: &self.ports,
            cgroup: self.cgroup.as_ref(),
            helper: &mut self.helper,
            session: &mut self.session,
            forwarding: &mut self.forwarding,
            stopping: false,
        };
        let mut helpers = Vec::new();
        let ending = process::supervise(child, watch, &mut helpers, &mut observer);
        // All COMMAND wrote is in its log before the session says it ended.
        if let Some(session) = self.session.as_mut() {
            session.finish_output();
        }
        // Reaped by process::supervise: nothing of it is left to undo.
        self.child = None;
        // What the namespace process said of helpers before it became COMMAND, if no one
        // read the pipe meanwhile (without blocking: a process still holding its end, a
        // session's, must not hold this up).
        if let Some(mut pipe) = self.ending.take() {
            let _ = nix::fcntl::fcntl(
                &pipe,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            process::read_reports(&mut pipe, &mut helpers);
        }
        // Added to the helpers started before supervision (the fuse helper, which waits for
        // its fuse-overlayfs), not in their place: Drop waits for each before returning.
        self.helpers.extend(helpers);
        notice_dead_helper(&mut self.helper, &mut self.session); // ended just before COMMAND
        ending
    }

    /// The published ports as the user reaches them, chosen ports included (for --info-fd).
    fn published(&self) -> Vec<(String, u16, String)> {
        let mut ports: Vec<(String, u16, String)> = self
            .bound
            .iter()
            .map(|b| {
                let proto = b.publish.proto.to_string();
                (b.local.to_string(), b.publish.ns_port, proto)
            })
            .collect();
        if let Some(net) = &self.plan.connected {
            ports.extend(net.forwards.iter().map(|p| {
                let host = std::net::SocketAddr::new(p.host_ip, p.host_port).to_string();
                (host, p.ns_port, p.proto.to_string())
            }));
        }
        ports
    }

    /// After supervision: report the ending on --info-fd, undo everything (Drop), and end
    /// as COMMAND ended; a booted image that halted ends with 0, one that rebooted boots
    /// again.
    fn finish(mut self, ending: Result<Ending, Error>) -> Result<std::convert::Infallible, Error> {
        let ending = match (self.plan.boot, ending) {
            (true, Ok(ending)) => match Shutdown::of(ending) {
                Shutdown::Halt => Ok(Ending::Exited(0)),
                Shutdown::Reboot => return Err(self.boot_again()),
                Shutdown::Other(ending) => Ok(ending),
            },
            (_, ending) => ending,
        };
        if let (Some(own), Ok(Ending::Killed(Signal::SIGKILL))) = (&self.cgroup, &ending)
            && own.oom_kills() > 0
        {
            let memory = own.limits.memory.map(crate::cgroup::size_text);
            say!(
                "become-root: COMMAND was killed by the memory limit{}",
                memory.map_or(String::new(), |size| format!(" (--memory={size})"))
            );
        }
        if let (Some(fd), Ok(ending)) = (self.plan.info_fd, &ending) {
            crate::info::write_line(fd, &crate::info::ended_json(*ending));
        }
        if let (Some(session), Ok(ending)) = (self.session.as_mut(), &ending) {
            session.ended(ending.describe());
        }
        drop(self);
        ending?.finish()
    }
}

impl Drop for Run<'_> {
    /// Undo, newest first: the namespace process (killed and reaped, unless supervision
    /// reaped it), its cgroup, the network helper, the host ports, the session's state.
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
        }
        // fuse-overlayfs ends with COMMAND (its parent-death signal), or, started by the fuse
        // helper, with the run's mount namespace, and the helper then; that takes a few ms:
        // become-root returns once they are gone. Something else that keeps the namespace
        // (a process COMMAND left behind) keeps the helper only until HELPERS_END.
        for pid in wait_for_helpers(&self.helpers, HELPERS_END) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(cgroup) = self.cgroup.take() {
            cgroup.remove();
        }
        if let Some(helper) = self.helper.take() {
            helper.stop();
        }
        process::reap_zombies();
        self.bound.clear();
        self.session.take(); // removes the session's state
    }
}

/// Wait for `helpers` (children of become-root) to be gone, at most `limit` in all; returns
/// those still running then. A helper that is not become-root's child is not waited for.
fn wait_for_helpers(helpers: &[Pid], limit: std::time::Duration) -> Vec<Pid> {
    let deadline = std::time::Instant::now() + limit;
    let mut left = Vec::new();
    for &pid in helpers {
        // Until it is reaped, or is not ours (ECHILD).
        while let Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) =
            waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
        {
            if std::time::Instant::now() > deadline {
                left.push(pid);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    left
}
