//! The launcher: from a parsed command line to COMMAND running in its namespaces.
//!
//! Two shapes, chosen by what must live outside the namespaces (DESIGN.md, process model):
//! - exec in place: a helper child stays in the parent user namespace to write the maps while
//!   become-root itself unshares and then execs COMMAND, which keeps become-root's pid;
//! - supervise (`--pid`): become-root clones the namespace process (pid 1 of the new pid
//!   namespace), writes its maps from outside, and waits, forwarding signals.
//!
//! Inside, the steps always come in the same order: maps written, ids set to 0, mounts,
//! loopback, exec. [`Ops`] is the seam that lets a unit test check that order.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{Gid, Pid, Uid, getpid, getppid};

use crate::error::Error;
use crate::identity::Identity;
use crate::mounts::{self, MountStep};
use crate::net::ports::Publish;
use crate::net::{self, NetPlan};
use crate::options::{
    FsArg, MapMode, NetMode, OverlayDriver, PortDriver, Propagation, SubidSource,
};
use crate::process::{self, Command};
use crate::sys::{self, Forked};
use crate::userns::{self, Mapping, UsernsError, Writer};

/// Everything decided before any namespace exists.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Namespaces other than the user namespace.
    pub namespaces: CloneFlags,
    pub mounts: Vec<MountStep>,
    pub net: Option<NetMode>,
    /// A connected network: the helper become-root starts and supervises.
    pub connected: Option<NetPlan>,
    /// Ports published on the host by become-root's forwarder.
    pub publish: Vec<Publish>,
    pub mapping: Mapping,
    pub command: Command,
    /// --quiet: no warnings or notices.
    pub quiet: bool,
    /// What to tell the user once the namespace is ready (ports chosen for host port 0).
    pub notices: Vec<String>,
    /// Who COMMAND runs as inside, with which capabilities.
    pub identity: Identity,
    /// `--info-fd`: where to write what was set up, and how COMMAND ended.
    pub info_fd: Option<i32>,
    /// `--verbose`.
    pub verbose: bool,
    /// --name/--detach: a session that --join can enter (session.rs).
    pub session: Option<crate::session::Request>,
    /// The directories `mounts::check` opened for the mount steps (overlay upper layers).
    pub prepared: std::sync::Arc<mounts::Prepared>,
}

impl Plan {
    /// Whether become-root must stay outside to supervise: an init for a pid namespace, or a
    /// network helper to own.
    pub fn supervised(&self) -> bool {
        self.pid_namespace()
            || self.connected.is_some()
            || !self.publish.is_empty()
            || self.info_fd.is_some()
            || self.session.is_some()
    }

    pub fn pid_namespace(&self) -> bool {
        self.namespaces.contains(CloneFlags::CLONE_NEWPID)
    }
}

/// What a run is asked for: the command line's options for a new run, as values (`cli`
/// parses argv into them; nothing here reads argv).
#[derive(Debug, Clone)]
pub struct Request {
    pub map: MapMode,
    pub subid_source: SubidSource,
    pub mount: bool,
    pub propagation: Propagation,
    pub net: Option<NetMode>,
    pub publish: Vec<String>,
    pub port_driver: PortDriver,
    pub allow_host_loopback: bool,
    pub mtu: u32,
    /// The filesystem options in command-line order.
    pub filesystem: Vec<FsArg>,
    pub overlay_driver: OverlayDriver,
    pub rootfs: Option<String>,
    pub chdir: Option<String>,
    /// --uid, --gid, --cap-add, --cap-drop, --no-new-privs.
    pub identity: crate::identity::Asked,
    pub info_fd: Option<i32>,
    pub verbose: bool,
    pub quiet: bool,
    pub pid: bool,
    pub uts: bool,
    pub ipc: bool,
    pub cgroup: bool,
    pub all: bool,
    pub name: Option<String>,
    pub detach: bool,
    pub command: Vec<OsString>,
}

/// Run `request` and return the exit status (which is returned only on failure: on success
/// COMMAND has replaced this process, or this process ended the way COMMAND did).
pub fn main(request: Request) -> i32 {
    match run(request) {
        Ok(never) => match never {},
        Err(e) => {
            e.report();
            e.exit_code()
        }
    }
}

/// Decide everything that can be decided without side effects.
pub fn plan(cli: Request) -> Result<(Plan, Vec<userns::Warning>), Error> {
    userns::refuse_privileged()?;
    let pid = cli.pid || cli.all;
    let net = cli.net.or(cli.all.then_some(NetMode::None));
    let mut notices = Vec::new();
    let mut connected = net::plan(net, cli.mtu, cli.allow_host_loopback)?;
    let mut publish = net::ports::parse_all(&cli.publish).map_err(net::NetError::from)?;
    if cli.port_driver == PortDriver::Helper && !publish.is_empty() {
        // The network helper forwards; become-root's own forwarder has nothing to do.
        let helper = connected
            .as_mut()
            .ok_or(net::NetError::HelperDriverWithoutHelper)?;
        helper.forwards = net::helper_forwards(helper, &publish)?;
        for (asked, got) in publish.iter().zip(&helper.forwards) {
            if asked.host_port == 0 {
                let host = std::net::SocketAddr::new(got.host_ip, got.host_port);
                notices.push(format!("published {host} -> {}/{}", got.ns_port, got.proto));
            }
        }
        publish.clear();
    }
    if connected.is_some() {
        net::check_tun()?;
    }
    // A connected network needs its own resolv.conf, hence a mount namespace.
    let mount = cli.mount || pid || cli.all || connected.is_some();
    let mut namespaces = CloneFlags::empty();
    for (on, flag) in [
        (mount, CloneFlags::CLONE_NEWNS),
        (net.is_some(), CloneFlags::CLONE_NEWNET),
        (pid, CloneFlags::CLONE_NEWPID),
        (cli.uts || cli.all, CloneFlags::CLONE_NEWUTS),
        (cli.ipc || cli.all, CloneFlags::CLONE_NEWIPC),
        (cli.cgroup || cli.all, CloneFlags::CLONE_NEWCGROUP),
    ] {
        if on {
            namespaces |= flag;
        }
    }
    let caller = userns::caller()?;
    let mut warnings = Vec::new();
    let mapping = userns::plan_mapping(cli.map, cli.subid_source, &caller, &mut warnings)?;
    let identity = Identity::from_asked(&cli.identity)?;
    if let Some(fd) = cli.info_fd {
        crate::info::claim(fd)?;
    }
    for (kind, id, map) in [
        ("uid", cli.identity.uid, &mapping.uid),
        ("gid", cli.identity.gid, &mapping.gid),
    ] {
        if let Some(id) = id
            && map.to_outside(id).is_none()
        {
            return Err(Error::usage(
                format!(
                    "--{kind}={id}: not mapped in the new namespace (it maps {} ids from 0)",
                    map.len()
                ),
                "choose an id below that, or give the user subordinate ids (--map=full)",
            ));
        }
    }
    let session =
        crate::session::Request::new(cli.name.as_deref(), cli.detach, cli.command.is_empty())?;
    let command = Command::new(cli.command, userns::containers_env(&caller))?;
    let resolv_conf = connected.as_ref().map(|c| c.driver.resolv_conf());
    let filesystem = cli
        .filesystem
        .iter()
        .map(mounts::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let rootfs = match &cli.rootfs {
        None => None,
        Some(dir) => Some(std::fs::canonicalize(dir).map_err(|e| {
            mounts::mount_error(format!("--rootfs {dir}"), crate::sys::io_errno(&e))
        })?),
    };
    let options = mounts::Options {
        mount_ns: mount || !filesystem.is_empty() || rootfs.is_some() || cli.chdir.is_some(),
        pid_ns: pid,
        own_net: net.is_some(),
        propagation: Some(cli.propagation),
        resolv_conf,
        filesystem,
        rootfs,
        overlay_driver: Some(cli.overlay_driver),
        chdir: cli.chdir.as_ref().map(PathBuf::from),
        verbose: cli.verbose,
    };
    // Every path is checked before anything is mounted; the overlay directories to write to
    // are made or checked and kept open. Only a directory of the caller's own ids (outside)
    // may be one.
    let owns = |uid: u32| uid == caller.uid || mapping.uid.to_inside(uid).is_some();
    let prepared = mounts::check(&options, &owns)?;
    if let Some(root) = &options.rootfs
        && !session.as_ref().is_some_and(|s| s.pause) // (session.rs: runs no COMMAND)
        && !mounts::command_in_rootfs(root, &command.name)
    {
        let error = crate::process::ExecError::NotInRootfs(root.clone());
        return Err(crate::process::exec_error(command.name.clone(), error));
    }
    if options.mount_ns {
        namespaces |= CloneFlags::CLONE_NEWNS;
    }
    let mounts = mounts::plan(&options, &prepared);
    Ok((
        Plan {
            namespaces,
            mounts,
            net,
            connected,
            publish,
            mapping,
            command,
            quiet: cli.quiet,
            notices,
            identity,
            info_fd: cli.info_fd,
            verbose: cli.verbose,
            session,
            prepared: std::sync::Arc::new(prepared),
        },
        warnings,
    ))
}

fn run(cli: Request) -> Result<std::convert::Infallible, Error> {
    let quiet = cli.quiet;
    let (mut plan, warnings) = plan(cli)?;
    if plan.verbose {
        let show = |map: &crate::idmap::IdMap| {
            let extents: Vec<String> = map.ranges().iter().map(|r| r.to_string()).collect();
            extents.join(", ")
        };
        eprintln!("become-root: uid map: {}", show(&plan.mapping.uid));
        eprintln!("become-root: gid map: {}", show(&plan.mapping.gid));
    }
    plan.command.sigchld_ignored = sys::default_signal_was_ignored(Signal::SIGCHLD);
    if !quiet {
        for w in &warnings {
            eprint!("{w}");
        }
    }
    if plan.supervised() {
        supervise(&plan)
    } else {
        exec_in_place(&plan)
    }
}

/// What the namespace process does to the system, in order. The real implementation is
/// [`Real`]; a test records the calls.
pub trait Ops {
    /// Make the new namespaces (exec in place only; a cloned child already has them).
    fn unshare(&mut self, flags: CloneFlags) -> Result<(), Error>;
    /// Wait until the maps are written from outside.
    fn wait_for_maps(&mut self) -> Result<(), Error>;
    /// Set every id to 0 inside.
    fn become_root(&mut self) -> Result<(), Error>;
    fn mount(&mut self, step: &MountStep) -> Result<(), Error>;
    fn loopback_up(&mut self) -> Result<(), Error>;
}

/// The steps inside the namespaces, after they exist and before COMMAND runs.
pub fn setup_inside(ops: &mut impl Ops, plan: &Plan) -> Result<(), Error> {
    ops.wait_for_maps()?;
    ops.become_root()?;
    for step in &plan.mounts {
        ops.mount(step)?;
    }
    if plan.net.is_some() {
        ops.loopback_up()?;
    }
    Ok(())
}

/// Who writes the maps of the namespace process, as seen from inside it.
enum MapsFrom {
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
    Supervisor { go: std::fs::File },
}

/// The real system.
struct Real {
    maps: Option<MapsFrom>,
    /// The resolv.conf to bind instead of the plan's: the network helper become-root fell
    /// back to has another DNS forwarder.
    resolv_conf: Option<String>,
}

impl Real {
    /// The write end of the go pipe, if any: closing it unwritten tells the waiting helpers
    /// that no namespace will come.
    fn abandon(&mut self) {
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
            Some(MapsFrom::Supervisor { mut go }) => {
                let mut bytes = Vec::new();
                let _ = go.read_to_end(&mut bytes);
                match bytes.strip_prefix(b"ok") {
                    Some(b"") => Ok(()),
                    Some(b"slirp4netns") => {
                        self.resolv_conf = Some(net::Driver::Slirp4netns.resolv_conf());
                        Ok(())
                    }
                    // become-root failed to map us and reports that itself.
                    _ => sys::exit_now(crate::error::EXIT_FAILURE),
                }
            }
        }
    }

    fn become_root(&mut self) -> Result<(), Error> {
        // Our kernel ids are unchanged (the caller's ids are now mapped to 0), so this moves no
        // privilege: it only makes real, effective and saved ids read 0 inside.
        let zero_gid = Gid::from_raw(0);
        let zero_uid = Uid::from_raw(0);
        nix::unistd::setresgid(zero_gid, zero_gid, zero_gid)
            .map_err(|e| Error::sys("setting gid 0", e))?;
        nix::unistd::setresuid(zero_uid, zero_uid, zero_uid)
            .map_err(|e| Error::sys("setting uid 0", e))
    }

    fn mount(&mut self, step: &MountStep) -> Result<(), Error> {
        match (step, &self.resolv_conf) {
            (MountStep::ResolvConf { at, .. }, Some(text)) => {
                mounts::apply(&MountStep::ResolvConf {
                    at: at.clone(),
                    text: text.clone(),
                })
            }
            _ => mounts::apply(step),
        }
    }

    fn loopback_up(&mut self) -> Result<(), Error> {
        sys::loopback_up().map_err(|e| Error::sys("bringing up loopback", e))
    }
}

/// A mapping error, with AppArmor named where its user-namespace restriction is on (it makes
/// every privileged step inside fail with EPERM).
fn with_apparmor_hint(e: UsernsError) -> Error {
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

/// Exec in place: arrange for the maps to be written (by ourselves, by helpers forked ahead,
/// or by a privileged child that stays outside), unshare, set up, exec.
fn exec_in_place(plan: &Plan) -> Result<std::convert::Infallible, Error> {
    let target = getpid();
    let maps = match &plan.mapping.writer {
        Writer::SelfMap => MapsFrom::Myself(plan.mapping.clone()),
        Writer::Helpers {
            newuidmap,
            newgidmap,
        } => {
            let (go_r, go_w) = process::pipe()?;
            let mut helpers = Vec::with_capacity(2);
            for (program, map) in [
                (newuidmap, &plan.mapping.uid),
                (newgidmap, &plan.mapping.gid),
            ] {
                match userns::PendingHelper::fork(program, target, map, &go_r) {
                    Ok(helper) => helpers.push(helper),
                    Err(e) => {
                        drop(go_w);
                        helpers.into_iter().for_each(|h| drop(h.finish()));
                        return Err(e.into());
                    }
                }
            }
            MapsFrom::Helpers {
                go: Some(go_w),
                helpers,
            }
        }
        Writer::Privileged => {
            let (go_r, go_w) = process::pipe()?;
            let (report_r, report_w) = process::pipe()?;
            match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
                Forked::Child => {
                    drop((go_w, report_r));
                    map_helper(target, go_r, report_w, &plan.mapping)
                }
                Forked::Parent(helper) => MapsFrom::Parent {
                    go: Some(go_w),
                    report: report_r,
                    helper,
                },
            }
        }
    };
    let mut real = Real {
        maps: Some(maps),
        resolv_conf: None,
    };
    if let Err(e) = real
        .unshare(plan.namespaces)
        .and_then(|()| setup_inside(&mut real, plan))
    {
        real.abandon();
        return Err(e);
    }
    Err(run_command(plan))
}

/// The helper child of exec-in-place mode: wait until `target` has unshared, write its maps
/// from the parent user namespace, report, exit. Never returns.
fn map_helper(
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

/// Supervise: clone the namespace process (pid 1 of a new pid namespace, when asked), write
/// its maps and start its network helper from here, then wait, forwarding signals, and end
/// as COMMAND ended.
fn supervise(plan: &Plan) -> Result<std::convert::Infallible, Error> {
    // Sessions (session.rs): claim the name; with --detach, go on in the background.
    let net = plan.net.map(|_| {
        plan.connected
            .as_ref()
            .map_or("none", |c| c.driver.program())
    });
    let mut session = crate::session::Session::start(plan.session.as_ref(), net, plan.info_fd)?;
    // Only an init in a pid namespace needs the terminal handed over (see Terminal).
    let terminal = if plan.pid_namespace() {
        process::Terminal::foreground()
    } else {
        None
    };
    process::block_forwarded_signals()?;
    // Orphans of our children (pasta's short-lived workers, when it is stopped) come back to
    // us to be reaped, rather than lingering as zombies of the system's init.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let (go_r, go_w) = process::pipe()?;
    let (ending_r, ending_w) = process::pipe()?;
    // The channel to the socket provider that will live inside, for published ports.
    let channel = match plan.publish.is_empty() {
        true => None,
        false => Some(net::forward::provider_channel().map_err(|e| Error::sys("socketpair", e))?),
    };
    let flags = CloneFlags::CLONE_NEWUSER | plan.namespaces;
    let clone = sys::clone_process(flags).map_err(|e| Error::from(userns::diagnose_unshare(e)))?;
    let child = match clone {
        Forked::Child => {
            drop((go_w, ending_r));
            let inside = channel.map(|(_outside, inside)| inside);
            let session = session.as_ref();
            exit_with(namespace_child(
                plan, go_r, ending_w, terminal, inside, session,
            ))
        }
        Forked::Parent(child) => child,
    };
    drop((go_r, ending_w));
    let provider = channel.map(|(outside, _inside)| outside);
    let abandon = |e: Error| {
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        Err(e)
    };
    // Host ports first: they depend on nothing inside, so a port in use is an error before
    // any map is written or helper started, and leaves nothing to undo.
    let bound = match net::forward::bind(&plan.publish) {
        Ok(bound) => bound,
        Err(e) => return abandon(e.into()),
    };
    if let Err(e) = userns::write_maps(child, &plan.mapping) {
        return abandon(with_apparmor_hint(e));
    }
    // The helper that runs: pasta, or under --net=auto slirp4netns if pasta fails to start.
    let mut driver = plan.connected.as_ref().map(|net| net.driver);
    let helper = match plan
        .connected
        .as_ref()
        .map(|net| (net, start_network(net, child)))
    {
        None => None,
        Some((_, Ok(helper))) => Some(helper),
        Some((net, Err(e))) => match net.fall_back() {
            None => return abandon(e.into()),
            Some(fallback) => {
                if !plan.quiet {
                    eprintln!("become-root: warning: --net=auto: {e}; using slirp4netns instead");
                }
                match start_network(&fallback, child) {
                    Ok(helper) => {
                        driver = Some(fallback.driver);
                        Some(helper)
                    }
                    Err(e) => return abandon(e.into()),
                }
            }
        },
    };
    if let (Some(session), Some(driver)) = (session.as_mut(), driver) {
        session.network_is(driver.program());
    }
    if !plan.quiet {
        let chosen = bound.iter().filter(|b| b.publish.host_port == 0);
        let chosen = chosen.map(|b| format!("published {}", b.describe()));
        for notice in plan.notices.iter().cloned().chain(chosen) {
            eprintln!("become-root: {notice}");
        }
    }
    // "ok", or "ok" and the helper that runs instead of the one planned (its DNS forwarder,
    // hence the resolv.conf inside, differs).
    let mut word = b"ok".to_vec();
    if driver != plan.connected.as_ref().map(|net| net.driver) {
        word.extend(driver.map_or("", |d| d.program()).as_bytes());
    }
    // For --info-fd, what /proc shows of the namespace process now, while it cannot end.
    let observed = plan
        .info_fd
        .map(|_| crate::info::observe(child, &namespace_kinds(plan.namespaces)));
    let mut go = go_w;
    if let Err(e) = go.write_all(&word) {
        if let Some(helper) = helper {
            helper.stop();
        }
        return abandon(Error::sys(
            "starting the namespace process",
            crate::sys::io_errno(&e),
        ));
    }
    drop(go);
    // The published ports as the user reaches them, chosen ports included.
    let mut ports: Vec<(String, u16, String)> = bound
        .iter()
        .map(|b| {
            (
                b.local.to_string(),
                b.publish.ns_port,
                b.publish.proto.to_string(),
            )
        })
        .collect();
    if let Some(net) = &plan.connected {
        ports.extend(net.forwards.iter().map(|p| {
            let host = std::net::SocketAddr::new(p.host_ip, p.host_port).to_string();
            (host, p.ns_port, p.proto.to_string())
        }));
    }
    if let Some(provider) = provider {
        net::forward::start(
            bound,
            std::sync::Arc::new(net::forward::Provider::new(provider)),
        );
    }
    // Sessions: wait until the namespaces are ready, record them, let a --detach caller go.
    if let Some(Err(e)) = session.as_mut().map(|s| s.namespaces_ready(child)) {
        return abandon(e);
    }
    // An init reports how COMMAND ended (otherwise the child is COMMAND), and the namespace
    // process says when its setup is done, for --info-fd.
    let reports = (plan.pid_namespace() || plan.info_fd.is_some()).then_some(ending_r);
    let mut on_ready = || {
        if let (Some(fd), Some(observed)) = (plan.info_fd, observed.as_ref()) {
            let ready = crate::info::Ready {
                pid: child,
                uid_map: &plan.mapping.uid,
                gid_map: &plan.mapping.gid,
                observed,
                net_mode: plan.net.map(|_| driver.map_or("none", |d| d.program())),
                ports: ports.clone(),
                session: plan.session.as_ref().map(|request| {
                    let dir = crate::session::state_dir_location();
                    (request.name.clone(), dir.display().to_string())
                }),
            };
            crate::info::write_line(fd, &ready.to_json());
        }
    };
    // A network helper that dies leaves the namespace without a network while COMMAND runs
    // on: say so at once (in a detached session's log), and record it for --list.
    let mut helper = helper;
    let mut on_child = || {
        if let Some(down) = helper.as_mut().and_then(|h| h.ended()) {
            eprintln!("become-root: network: {down}; the namespace has no network now");
            if let Some(session) = session.as_mut() {
                session.network_down(&down);
            }
        }
    };
    let ending = process::supervise(child, reports, terminal, &mut on_ready, &mut on_child);
    on_child(); // a helper that ended just before COMMAND did
    if let (Some(fd), Ok(ending)) = (plan.info_fd, &ending) {
        crate::info::write_line(fd, &crate::info::ended_json(*ending));
    }
    if let Some(helper) = helper {
        helper.stop();
    }
    process::reap_zombies();
    drop(session); // removes the session's state
    ending?.finish()
}

/// The namespace kinds a run has, as named in /proc/PID/ns.
fn namespace_kinds(flags: CloneFlags) -> Vec<&'static str> {
    let mut kinds = vec!["user"];
    for (flag, kind) in [
        (CloneFlags::CLONE_NEWNS, "mnt"),
        (CloneFlags::CLONE_NEWNET, "net"),
        (CloneFlags::CLONE_NEWPID, "pid"),
        (CloneFlags::CLONE_NEWUTS, "uts"),
        (CloneFlags::CLONE_NEWIPC, "ipc"),
        (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
    ] {
        if flags.contains(flag) {
            kinds.push(kind);
        }
    }
    kinds
}

/// Take the identity asked for, then exec COMMAND; returns only on failure.
fn run_command(plan: &Plan) -> Error {
    match plan.identity.apply() {
        Ok(()) => plan.command.exec(),
        Err(e) => e,
    }
}

/// End a forked process with `result`: 0, or the error reported and its status.
fn exit_with(result: Result<(), Error>) -> ! {
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            e.report();
            e.exit_code()
        }
    };
    sys::exit_now(code)
}

/// Start the network helper against the namespace process and wait until it is ready.
fn start_network(net: &NetPlan, target: Pid) -> Result<net::helper::Running, net::NetError> {
    let mut helper = net::helper::start(net, target)?;
    if let Err(e) = helper.wait_ready() {
        helper.stop();
        return Err(e);
    }
    Ok(helper)
}

/// The cloned namespace process: wait for its maps (and network), set up, then exec COMMAND,
/// or, in a new pid namespace, be its init.
fn namespace_child(
    plan: &Plan,
    go: std::fs::File,
    ending: std::fs::File,
    terminal: Option<process::Terminal>,
    provider: Option<std::os::fd::OwnedFd>,
    session: Option<&crate::session::Session>,
) -> Result<(), Error> {
    // Die with become-root. No race: if become-root died before this line, `go` is at EOF
    // below and we leave; after it, the kernel delivers SIGKILL (to an init, too: it comes from
    // an ancestor pid namespace). The setting survives the exec of COMMAND.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| Error::sys("prctl", e))?;
    let mut real = Real {
        maps: Some(MapsFrom::Supervisor { go }),
        resolv_conf: None,
    };
    setup_inside(&mut real, plan)?;
    if let Some(channel) = provider {
        net::forward::spawn_provider(channel, plan.pid_namespace())?;
    }
    if plan.info_fd.is_some() {
        let _ = (&ending).write_all(&process::Ending::Ready.encode());
    }
    // From here on this process holds nothing of become-root's but the pipes it still
    // speaks on: no overlay layer, state directory or --info-fd stays in the namespaces
    // (this process may live on as init or as a pause process, visible to COMMAND). It ends
    // by exec or _exit, so the Rust owners of what is closed never run again.
    let mut keep = vec![ending.as_raw_fd()];
    if let Some(session) = session {
        keep.extend(session.fds_inside());
    }
    sys::close_own_fds_except(&keep);
    // Sessions: tell become-root the namespaces are ready (a pause process holds here).
    if let Some(session) = session {
        session.ready_inside()?;
    }
    if !plan.pid_namespace() {
        drop(ending);
        return Err(run_command(plan));
    }
    if let Some(terminal) = terminal {
        terminal.lead_inside();
    }
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            drop(ending);
            let e = run_command(plan);
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
mod tests {
    use super::*;
    use crate::idmap::IdMap;
    use crate::options::Propagation;

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
        fn become_root(&mut self) -> Result<(), Error> {
            self.0.push("root".into());
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
    }

    fn plan_with(mounts: Vec<MountStep>, net: Option<NetMode>) -> Plan {
        Plan {
            namespaces: CloneFlags::CLONE_NEWNS,
            mounts,
            net,
            connected: None,
            publish: Vec::new(),
            mapping: Mapping {
                uid: IdMap::single(1000),
                gid: IdMap::single(1000),
                writer: Writer::SelfMap,
            },
            command: Command::new(vec!["true".into()], Vec::new()).unwrap(),
            quiet: false,
            notices: Vec::new(),
            identity: Identity::default(),
            info_fd: None,
            verbose: false,
            session: None,
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
        ops.unshare(plan.namespaces).unwrap();
        setup_inside(&mut ops, &plan).unwrap();
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
}
