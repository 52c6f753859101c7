//! The namespace process's side: the steps inside the new namespaces, from the maps to
//! COMMAND, in the same order in both shapes of a run ([`setup_inside`] through the [`Ops`]
//! seam), the map helper of exec-in-place mode, and the cloned process of a supervised run
//! (`namespace_child`).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{Gid, Pid, Uid, getpid, getppid};

use super::Plan;
use super::plan::Root;
use crate::error::Error;
use crate::mounts::{self, MountStep};
use crate::net;
use crate::process;
use crate::sys::{self, Forked};
use crate::userns::{self, Mapping, UsernsError};

/// What the namespace process does to the system, in order. The real implementation is
/// `Real`; a test records the calls.
pub trait Ops {
    /// Make the new namespaces (exec in place only; a cloned child already has them).
    fn unshare(&mut self, flags: CloneFlags) -> Result<(), Error>;
    /// Wait until the maps are written from outside.
    fn wait_for_maps(&mut self) -> Result<(), Error>;
    /// Set the ids to 0 inside, each kind whose 0 is mapped.
    fn become_root(&mut self, root: Root) -> Result<(), Error>;
    /// Make the cgroup namespace, now that become-root has moved this process into the run's
    /// own cgroup (--cgroup): rooted there, it shows COMMAND only the run's subtree. Say so
    /// to become-root, which waits for it to read the namespace for --info-fd (D14).
    fn enter_cgroup_namespace(&mut self) -> Result<(), Error>;
    /// After the cgroup namespace, wait for the rest of become-root's word to go (the network
    /// helper is up).
    fn wait_for_release(&mut self) -> Result<(), Error>;
    /// Set the supplementary groups to none (--drop-groups).
    fn drop_groups(&mut self) -> Result<(), Error>;
    /// Make the run's time namespace with its clock offsets, and enter it (--time).
    fn enter_time_namespace(&mut self, offsets: super::TimeOffsets) -> Result<(), Error>;
    /// Set the host name of the run's uts namespace (--hostname).
    fn set_hostname(&mut self, name: &str) -> Result<(), Error>;
    fn mount(&mut self, step: &MountStep) -> Result<(), Error>;
    fn loopback_up(&mut self) -> Result<(), Error>;
    /// What the network helper leaves to the namespace (net::configure_inside).
    fn configure_network(&mut self, net: &net::NetPlan) -> Result<(), Error>;
}

/// Exec in place: make the namespaces, then the steps inside them.
pub fn unshare_and_set_up(ops: &mut impl Ops, plan: &Plan) -> Result<(), Error> {
    ops.unshare(plan.namespaces)?;
    setup_inside(ops, plan)
}

/// The steps inside the namespaces, after they exist and before COMMAND runs.
pub fn setup_inside(ops: &mut impl Ops, plan: &Plan) -> Result<(), Error> {
    ops.wait_for_maps()?;
    if plan.cgroup.is_some() {
        ops.enter_cgroup_namespace()?;
        ops.wait_for_release()?;
    }
    let root = plan.root();
    if root.uid || root.gid {
        ops.become_root(root)?;
    }
    if plan.drop_groups {
        ops.drop_groups()?;
    }
    if let Some(offsets) = plan.time {
        ops.enter_time_namespace(offsets)?;
    }
    if let Some(name) = &plan.hostname {
        ops.set_hostname(name)?;
    }
    for step in &plan.mounts {
        ops.mount(step)?;
    }
    if plan.net.is_some() {
        ops.loopback_up()?;
    }
    if let Some(net) = &plan.connected {
        ops.configure_network(net)?;
    }
    Ok(())
}

/// Who writes the maps of the namespace process, as seen from inside it.
pub(super) enum MapsFrom {
    /// The namespace process itself, right after unshare (a single self map).
    Myself(Mapping),
    /// newuidmap and newgidmap, forked ahead and waiting on `go`.
    Helpers {
        go: Option<std::fs::File>,
        helpers: Vec<userns::PendingHelper>,
    },
    /// A privileged helper child in the parent namespace, reporting on `report`.
    Parent {
        go: Option<std::fs::File>,
        report: std::fs::File,
        helper: Pid,
    },
    /// become-root, supervising from outside; `go` carries its word that the maps are written.
    /// With --cgroup, first one byte (maps written, and in its cgroup), answered on
    /// `cgroup_made` once the cgroup namespace is made; then the rest, when the network is up.
    Supervisor {
        go: std::fs::File,
        cgroup_made: Option<std::fs::File>,
    },
}

/// The real system.
pub(super) struct Real {
    maps: Option<MapsFrom>,
    /// The resolv.conf to bind instead of the plan's: the network helper become-root fell
    /// back to has another DNS forwarder.
    resolv_conf: Option<String>,
    /// The helper that runs, when become-root fell back to another than the plan's.
    fell_back_to: Option<net::Driver>,
    /// Carries out the mount steps.
    mounts: mounts::Applier,
    /// --cgroup: where to say that the cgroup namespace is made, and the rest of the word to
    /// go, still to read.
    cgroup_made: Option<std::fs::File>,
    release: Option<std::fs::File>,
}

impl Real {
    /// `fuse`: the channel to become-root's fuse helper, when an overlay below --rootfs may
    /// be fuse-overlayfs's (mounts::fuse).
    pub(super) fn new(maps: MapsFrom, fuse: Option<std::os::fd::OwnedFd>) -> Real {
        Real {
            maps: Some(maps),
            resolv_conf: None,
            fell_back_to: None,
            mounts: mounts::Applier::new(fuse),
            cgroup_made: None,
            release: None,
        }
    }

    /// become-root's word to go: "ok", or "ok" and the network helper that runs instead of
    /// the planned one (its DNS forwarder differs).
    fn read_word(&mut self, mut go: std::fs::File) -> Result<(), Error> {
        let mut bytes = Vec::new();
        let _ = go.read_to_end(&mut bytes);
        match bytes.strip_prefix(b"ok") {
            Some(b"") => Ok(()),
            // The fallback's resolv.conf follows its name, made by become-root from the
            // run's --cidr, --ipv6 and --dns.
            Some(rest) if rest.starts_with(b"slirp4netns") => {
                self.fell_back_to = Some(net::Driver::Slirp4netns);
                let text = rest.strip_prefix(b"slirp4netns\n").unwrap_or_default();
                self.resolv_conf = Some(match std::str::from_utf8(text) {
                    Ok(text) if !text.is_empty() => text.to_string(),
                    _ => net::Driver::Slirp4netns.resolv_conf(),
                });
                Ok(())
            }
            // become-root failed to map us and reports that itself.
            _ => sys::exit_now(crate::error::EXIT_FAILURE),
        }
    }

    /// The write end of the go pipe, if any: closing it unwritten tells the waiting helpers
    /// that no namespace will come.
    pub(super) fn abandon(&mut self) {
        match self.maps.take() {
            Some(MapsFrom::Helpers { go, helpers }) => {
                drop(go);
                for helper in helpers {
                    let _ = helper.finish();
                }
            }
            Some(MapsFrom::Parent { go, helper, .. }) => {
                drop(go);
                let _ = waitpid(helper, None);
            }
            _ => {}
        }
    }
}

impl Ops for Real {
    fn unshare(&mut self, flags: CloneFlags) -> Result<(), Error> {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | flags)
            .map_err(|e| Error::from(userns::diagnose_unshare(e)))?;
        // Tell the waiting helpers the namespace exists: one byte each.
        let go = match &mut self.maps {
            Some(MapsFrom::Helpers { go, helpers }) => go.take().map(|g| (g, helpers.len())),
            Some(MapsFrom::Parent { go, .. }) => go.take().map(|g| (g, 1)),
            _ => None,
        };
        if let Some((mut go, n)) = go {
            go.write_all(&vec![b'1'; n])
                .map_err(|e| Error::sys("signalling the map helpers", crate::sys::io_errno(&e)))?;
        }
        Ok(())
    }

    fn wait_for_maps(&mut self) -> Result<(), Error> {
        match self.maps.take() {
            None => Ok(()),
            Some(MapsFrom::Myself(mapping)) => {
                userns::write_maps(getpid(), &mapping).map_err(with_apparmor_hint)
            }
            Some(MapsFrom::Helpers { helpers, .. }) => {
                // Both ran concurrently; collect both, report the first failure.
                let results: Vec<_> = helpers.into_iter().map(|h| h.finish()).collect();
                results
                    .into_iter()
                    .collect::<Result<(), _>>()
                    .map_err(with_apparmor_hint)
            }
            Some(MapsFrom::Parent {
                mut report, helper, ..
            }) => {
                let mut bytes = Vec::new();
                let _ = report.read_to_end(&mut bytes);
                let _ = waitpid(helper, None);
                decode_report(&bytes)
            }
            Some(MapsFrom::Supervisor {
                mut go,
                cgroup_made: Some(made),
            }) => {
                // The first part of the word; EOF: become-root failed, and reports that.
                let mut byte = [0u8; 1];
                if !matches!(go.read(&mut byte), Ok(1)) {
                    sys::exit_now(crate::error::EXIT_FAILURE);
                }
                self.cgroup_made = Some(made);
                self.release = Some(go);
                Ok(())
            }
            Some(MapsFrom::Supervisor {
                go,
                cgroup_made: None,
            }) => self.read_word(go),
        }
    }

    fn become_root(&mut self, root: Root) -> Result<(), Error> {
        // With the default maps our kernel ids are unchanged (the caller's ids are now mapped
        // to 0), so this moves no privilege: it only makes real, effective and saved ids read
        // 0 inside. Under keep-id, 0 is a subordinate id the caller was granted, which the
        // mounts then act as, until the identity step makes COMMAND the caller again.
        if root.gid {
            let zero_gid = Gid::from_raw(0);
            nix::unistd::setresgid(zero_gid, zero_gid, zero_gid)
                .map_err(|e| Error::sys("setting gid 0", e))?;
        }
        if root.uid {
            let zero_uid = Uid::from_raw(0);
            nix::unistd::setresuid(zero_uid, zero_uid, zero_uid)
                .map_err(|e| Error::sys("setting uid 0", e))?;
        }
        Ok(())
    }

    fn enter_cgroup_namespace(&mut self) -> Result<(), Error> {
        // CAP_SYS_ADMIN over our own user namespace is what unshare(CLONE_NEWCGROUP) needs
        // (cgroup_namespaces(7)); the namespace confines the view, it grants nothing.
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| Error::sys("making the cgroup namespace", e))?;
        if let Some(mut made) = self.cgroup_made.take() {
            made.write_all(b"1")
                .map_err(|e| Error::sys("making the cgroup namespace", sys::io_errno(&e)))?;
        }
        Ok(())
    }

    fn wait_for_release(&mut self) -> Result<(), Error> {
        match self.release.take() {
            Some(go) => self.read_word(go),
            None => Ok(()),
        }
    }

    fn drop_groups(&mut self) -> Result<(), Error> {
        match nix::unistd::setgroups(&[]) {
            Ok(()) => Ok(()),
            // Denied here though the plan allowed it: a gid map of newgidmap's that holds no
            // subordinate gid, or a parent namespace that denies it already.
            Err(nix::Error::EPERM) => Err(super::plan::drop_groups_denied()),
            Err(e) => Err(Error::sys("--drop-groups: setgroups", e)),
        }
    }

    fn enter_time_namespace(&mut self, offsets: super::TimeOffsets) -> Result<(), Error> {
        super::extras::enter_time_namespace(offsets)
    }

    fn set_hostname(&mut self, name: &str) -> Result<(), Error> {
        super::extras::set_hostname(name)
    }

    fn mount(&mut self, step: &MountStep) -> Result<(), Error> {
        match (step, &self.resolv_conf) {
            (MountStep::ResolvConf { at, .. }, Some(text)) => {
                self.mounts.apply(&MountStep::ResolvConf {
                    at: at.clone(),
                    text: text.clone(),
                })
            }
            _ => self.mounts.apply(step),
        }
    }

    fn loopback_up(&mut self) -> Result<(), Error> {
        sys::loopback_up().map_err(|e| Error::sys("bringing up loopback", e))
    }

    fn configure_network(&mut self, plan: &net::NetPlan) -> Result<(), Error> {
        let driver = self.fell_back_to.unwrap_or(plan.driver);
        Ok(net::configure_inside(driver, &plan.addressing)?)
    }
}

/// A mapping error, with AppArmor named where its user-namespace restriction is on (it makes
/// every privileged step inside fail with EPERM).
pub(super) fn with_apparmor_hint(e: UsernsError) -> Error {
    let e = Error::from(e);
    match e.hint() {
        None if userns::apparmor_restricts() => {
            Error::new(e.what(), e.why()).with_hint(userns::apparmor_hint())
        }
        _ => e,
    }
}

/// Encode the helper's result for the pipe: empty means the helper died, `ok` success,
/// otherwise `what \0 why \0 hint`.
fn encode_report(result: &Result<(), UsernsError>) -> Vec<u8> {
    match result {
        Ok(()) => b"ok".to_vec(),
        Err(e) => {
            let e = Error::from(e.clone());
            let mut hint = e.hint().map(str::to_string).unwrap_or_default();
            if hint.is_empty() && userns::apparmor_restricts() {
                hint = userns::apparmor_hint();
            }
            [e.what(), e.why(), &hint].join("\0").into_bytes()
        }
    }
}

fn decode_report(report: &[u8]) -> Result<(), Error> {
    if report == b"ok" {
        return Ok(());
    }
    if report.is_empty() {
        return Err(Error::new(
            "id mapping",
            "the map helper process died before writing the maps",
        ));
    }
    let text = String::from_utf8_lossy(report);
    let mut parts = text.splitn(3, '\0');
    let what = parts.next().unwrap_or_default().to_string();
    let why = parts.next().unwrap_or_default().to_string();
    let hint = parts.next().filter(|h| !h.is_empty()).map(str::to_string);
    Err(Error::new(what, why).with_hint_maybe(hint))
}

/// The helper child of exec-in-place mode: wait until `target` has unshared, write its maps
/// from the parent user namespace, report, exit. Never returns.
pub(super) fn map_helper(
    target: Pid,
    mut go: std::fs::File,
    mut report: std::fs::File,
    mapping: &Mapping,
) -> ! {
    // If become-root dies, so does the helper, and it never writes maps for a stranger: the
    // parent-death signal is checked against a race by comparing the parent pid afterwards.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || getppid() != target {
        sys::exit_now(1);
    }
    let mut byte = [0u8; 1];
    if !matches!(go.read(&mut byte), Ok(1)) {
        sys::exit_now(0); // become-root failed to unshare and reports that itself
    }
    let result = userns::write_maps(target, mapping);
    let _ = report.write_all(&encode_report(&result));
    sys::exit_now(0)
}

/// Take the identity asked for, then exec COMMAND; returns only on failure. `alive`, in a
/// supervised run: the pipe that tells whether become-root is still there, to die with it
/// (the change of ids cleared the parent-death signal: process::die_with_become_root).
pub(super) fn run_command(plan: &Plan, alive: Option<&std::fs::File>) -> Error {
    match plan.identity.apply() {
        Ok(()) => {
            if let Some(alive) = alive {
                process::die_with_become_root(alive);
            }
            plan.command.exec()
        }
        Err(e) => e,
    }
}

/// End a forked process with `result`: 0, or the error reported and its status.
pub(super) fn exit_with(result: Result<(), Error>) -> ! {
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            e.report();
            e.exit_code()
        }
    };
    sys::exit_now(code)
}

/// The namespace process's ends of what connects it to become-root.
pub(super) struct Channels {
    /// become-root's word to go (maps written, network up).
    pub(super) go: std::fs::File,
    /// Its reports: setup done, helpers left, how COMMAND ended (an init's).
    pub(super) ending: std::fs::File,
    /// To the socket provider it starts inside (published ports).
    pub(super) provider: Option<std::os::fd::OwnedFd>,
    /// To become-root's fuse helper, when an overlay below a new root may need
    /// fuse-overlayfs.
    pub(super) fuse: Option<std::os::fd::OwnedFd>,
    /// --cgroup: where it says it made its cgroup namespace.
    pub(super) cgroup_made: Option<std::fs::File>,
    /// --net=bypass: where it sends its seccomp listener.
    pub(super) bypass: Option<std::os::fd::OwnedFd>,
}

/// The cloned namespace process: wait for its maps (and network), set up, then exec COMMAND,
/// or, in a new pid namespace, be its init.
pub(super) fn namespace_child(
    plan: &Plan,
    channels: Channels,
    terminal: Option<process::Terminal>,
    session: Option<&crate::session::Session>,
) -> Result<(), Error> {
    let Channels {
        go,
        ending,
        provider,
        fuse,
        cgroup_made,
        bypass,
    } = channels;
    // Die with become-root. No race: if become-root died before this line, `go` is at EOF
    // below and we leave; after it, the kernel delivers SIGKILL (to an init, too: it comes from
    // an ancestor pid namespace). The setting survives the exec of COMMAND; a change of ids
    // clears it, so it is armed again after each (process::die_with_become_root).
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| Error::sys("prctl", e))?;
    let mut real = Real::new(MapsFrom::Supervisor { go, cgroup_made }, fuse);
    setup_inside(&mut real, plan)?;
    // A booted image's pid 1 says on this socket when it is ready (in its new root's /run).
    if let Some(listener) = &plan.notify {
        listener.bind_inside()?;
    }
    // The mounts are done: closing the channel to the fuse helper tells it so (and nothing
    // it owns is closed again below, with the rest, behind its back).
    drop(real);
    // Its ids may have changed (keep-id, a subordinate id at 0), and the parent-death signal
    // with them.
    process::die_with_become_root(&ending);
    // The terminal rule (process::console): pid 1 gets the console in a session of its own,
    // before the descriptors below are closed (the console's own among them).
    if let Some(console) = &plan.console {
        console.attach()?;
    }
    // From here on this process holds nothing of become-root's but the pipes it still
    // speaks on: no overlay layer, state directory, --info-fd, host port or channel to the
    // fuse helper (whose end tells the helper that the mounts are done) stays in the
    // namespaces (this process may live on as init or as a pause process, visible to
    // COMMAND). It ends by exec or _exit, so the Rust owners of what is closed never run
    // again. Before the socket provider is forked: a provider that held become-root's host
    // ports until it ran its own close would keep them bound after become-root returned
    // (seen under load: the next run's -p of the same port failed).
    let channels = [provider.as_ref(), bypass.as_ref()];
    close_all_but(&ending, channels.into_iter().flatten(), session);
    if let Some(channel) = provider {
        net::forward::spawn_provider(channel, plan.pid_namespace(), plan.keep_clients)?;
    }
    if plan.info_fd.is_some() {
        let _ = (&ending).write_all(&process::Ending::Ready.encode());
    }
    // Sessions: tell become-root the namespaces are ready (a pause process holds here).
    if let Some(session) = session {
        session.ready_inside(plan.new_root())?;
    }
    // Last before COMMAND (or its init), after the socket provider was forked: the filter
    // stops the calls of this process and of every process it starts, and of no helper.
    if let Some(channel) = bypass {
        net::bypass::install_inside(channel)?;
    }
    if !plan.has_init() {
        return Err(command_in_place(plan, terminal, &ending));
    }
    if let Some(terminal) = terminal {
        terminal.lead_inside();
    }
    init_with_command(plan, ending)
}

/// Close every descriptor but the pipe to become-root (`ending`), the channel to the socket
/// provider and to become-root for --net=bypass, and the session's own.
fn close_all_but<'a>(
    ending: &std::fs::File,
    channels: impl Iterator<Item = &'a std::os::fd::OwnedFd>,
    session: Option<&crate::session::Session>,
) {
    let mut keep = vec![ending.as_raw_fd()];
    keep.extend(channels.map(|c| c.as_raw_fd()));
    if let Some(session) = session {
        keep.extend(session.fds_inside());
    }
    sys::close_own_fds_except(&keep);
}

/// Without an init of become-root's: COMMAND replaces this process (the error if it could
/// not).
fn command_in_place(
    plan: &Plan,
    terminal: Option<process::Terminal>,
    ending: &std::fs::File,
) -> Error {
    // Without a console (no terminal, or none given to a pid 1): as it was given, leading
    // the terminal's foreground.
    if let (true, Some(terminal)) = (plan.as_pid_1, terminal) {
        terminal.lead_inside();
    }
    // The fuse-overlayfs processes this process started for COMMAND (without a new root:
    // with one, become-root's fuse helper did), for become-root to wait for at the end
    // (their pids are its pids only without a pid namespace; with one, the kernel ends
    // them before pid 1's end is reported, zap_pid_ns_processes).
    if !plan.pid_namespace() {
        let helpers = crate::mounts::fuse_started_here();
        for &pid in &helpers {
            let _ = (&*ending).write_all(&process::Ending::Helper(pid).encode());
        }
        // COMMAND may not be allowed to signal them (warden.rs).
        super::warden::start(&helpers, ending);
    }
    run_command(plan, Some(ending))
}

/// In a new pid namespace: this process is its init, and COMMAND its child.
fn init_with_command(plan: &Plan, ending: std::fs::File) -> Result<(), Error> {
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            drop(ending);
            // (No parent-death signal: when init dies, the kernel ends its pid namespace.)
            let e = run_command(plan, None);
            e.report();
            sys::exit_now(e.exit_code())
        }
        Forked::Parent(main) => {
            // init lives as long as the namespace: it keeps the pipe to become-root only.
            sys::close_own_fds_except(&[ending.as_raw_fd()]);
            process::init(main, ending)
        }
    }
}

#[cfg(test)]
mod tests;
