//! Sessions: creating one (hooks in the launcher): claim the name, go to the background
//! with --detach, say when the namespaces are ready, remove the state when the run ends.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, getpid};

use super::{Proc, Record, Request, SessionError, StateDir, namespaces_of};
use crate::error::Error;
use crate::process;
use crate::sys::{self, Forked};

// ---- creating a session (hooks in launch::supervise) --------------------------------------

/// A session being created or running, owned by become-root's supervising process: it holds
/// the name, tells the caller of `--detach` when the namespaces are ready, and removes the
/// state when the run ends (on drop).
pub struct Session {
    request: Request,
    dir: Arc<StateDir>,
    /// The process that owns the state (copies in forked children never remove it).
    owner: Pid,
    /// The record and the state file as this run last wrote it, shared with the thread that
    /// changes the ports while the session runs ([`PortsRecord`]).
    shared: Arc<Mutex<Shared>>,
    /// The namespace process says "ready" on this pipe once its setup is done.
    ready_r: File,
    ready_w: Option<File>,
    /// `--detach`: the caller, waiting in the foreground for the word "ready".
    caller: Option<File>,
    /// `--detach`: the session's output, on its way from COMMAND's pipe to its log.
    output: Option<super::logs::Output>,
    /// The session ended and its state stays ([`Session::ended`]).
    keep: bool,
    /// The namespace process, ready, while the session waits for its pid 1 to say so too.
    pending: Option<Pid>,
}

impl Session {
    /// Called first thing in supervise mode, before anything is cloned: claim the name and,
    /// with --detach, continue in the background (only the background process returns).
    /// `net` is what the run's network is (`none`, `slirp4netns`, `pasta`), when it has a
    /// network namespace; `keep` the descriptors the run has opened already (--info-fd, the
    /// overlay layers, --boot's console), to keep across --detach.
    ///
    /// `again`: this process is the same session's supervisor, started again by a reboot of
    /// its image (launch::supervise): it takes its own state over, already in the background.
    pub fn start(
        request: Option<&Request>,
        net: Option<&str>,
        keep: &[i32],
        again: Option<Again>,
    ) -> Result<Option<Session>, Error> {
        let Some(request) = request.cloned() else {
            return Ok(None);
        };
        let dir = StateDir::open(true)?
            .ok_or(Errno::ENOENT)
            .map_err(|e| Error::sys("opening the session state directory", e))?;
        let caller = if request.detach && again.is_none() {
            // Kept: the state directory and the run's own; every other one was inherited.
            let mut keep = keep.to_vec();
            keep.push(dir.fd.as_raw_fd());
            Some(go_to_background(&keep)?)
        } else {
            None
        };
        let supervisor =
            Proc::current().ok_or_else(|| Error::sys("reading /proc/self/stat", Errno::ENOENT))?;
        let net = net.map(str::to_string);
        let record = Record {
            name: request.name.clone(),
            supervisor,
            holder: None,
            pid_ns: dir.pid_ns,
            created: 0,
            namespaces: Vec::new(),
            net,
            net_down: None,
            bypass: None,
            cgroup: None,
            limits: None,
            boot: false,
            stop_timeout: None,
            ports: Vec::new(),
            ended: None,
            detached: request.detach,
            containers: request.containers.clone(),
        };
        let (written, caller) = match again {
            Some(again) => match dir.take_over(&record)? {
                // Ours indeed: a --detach caller still waiting for "ready" waits on.
                (written, true) => (
                    written,
                    again.caller.and_then(sys::adopt_pipe).map(File::from),
                ),
                (written, false) => (written, None),
            },
            None => (dir.reserve(&record)?, caller),
        };
        let (ready_r, ready_w) = process::pipe()?;
        let mut session = Session {
            dir: Arc::new(dir),
            owner: getpid(),
            shared: Arc::new(Mutex::new(Shared { record, written })),
            ready_r,
            ready_w: Some(ready_w),
            caller,
            output: None,
            keep: false,
            pending: None,
            request,
        };
        if session.request.detach {
            session.output_to_log(again.is_some())?;
        }
        Ok(Some(session))
    }

    /// A detached session's: COMMAND's stdin is /dev/null and its stdout the pipe to the log
    /// (logs.rs) from the start, become-root's own until the namespace process is cloned
    /// ([`Session::cloned`]); stderr stays the caller's until the namespaces are ready, so
    /// that a failed setup is reported where the caller sees it.
    fn output_to_log(&mut self, again: bool) -> Result<(), Error> {
        let log = self.open_log(again)?;
        let (pipe_r, pipe_w) = process::pipe()?;
        let null = File::open("/dev/null")
            .map_err(|e| Error::sys("opening /dev/null", crate::sys::io_errno(&e)))?;
        nix::unistd::dup2_stdin(&null).map_err(|e| Error::sys("redirecting stdin", e))?;
        nix::unistd::dup2_stdout(&pipe_w).map_err(|e| Error::sys("redirecting stdout", e))?;
        self.output = Some(super::logs::Output::new(pipe_r, log));
        Ok(())
    }

    /// The session's log: a new one, or (`again`, after a reboot) the one it has.
    fn open_log(&self, again: bool) -> Result<File, Error> {
        let file = StateDir::log_file(&self.request.name);
        let mut flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_APPEND
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        if !again {
            flags |= OFlag::O_TRUNC;
        }
        openat(
            &self.dir.fd,
            file.as_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map(File::from)
        .map_err(|e| self.dir.error(&file, "create", e).into())
    }

    /// Record which network helper runs (`--net=auto` may fall back to another).
    pub fn network_is(&mut self, program: &str) {
        self.shared().record.net = Some(program.to_string());
    }

    /// Record what a --net=bypass session's bypass allows (its joins are bypassed alike).
    pub fn bypass_is(&mut self, policy: String) {
        self.shared().record.bypass = Some(policy);
    }

    /// Record how --stop ends the session: a booted image (--boot) halts with SIGRTMIN+3 to
    /// its pid 1, sent by the supervisor; `timeout` is --stop-timeout's, if given.
    pub fn stops_with(&mut self, boot: bool, timeout: Option<std::time::Duration>) {
        let mut shared = self.shared();
        shared.record.boot = boot;
        shared.record.stop_timeout = timeout.map(|t| t.as_secs());
    }

    /// Keep a detached session's log under its bound (logs::LOG_MAX) as become-root writes to
    /// it itself (a booted image's console); called every second or so while the session runs.
    pub fn bound_log(&mut self) {
        if let Some(output) = self.output.as_mut() {
            output.bound(&self.dir, &self.request.name);
        }
    }

    /// Whether the session has a log to keep bounded.
    pub fn has_log(&self) -> bool {
        self.output.is_some()
    }

    /// The namespace process is cloned, with COMMAND's pipe as its stdout: become-root's own
    /// stdout is the log from here on (it must never wait for room in a pipe only it empties).
    pub fn cloned(&self) {
        if let Some(output) = &self.output {
            let _ = nix::unistd::dup2_stdout(output.log());
        }
    }

    /// The pipe of COMMAND's output, to poll (supervision calls [`Session::copy_output`]
    /// when it is readable).
    pub fn output_to_poll(&self) -> Option<OwnedFd> {
        self.output
            .as_ref()
            .and_then(super::logs::Output::pipe_to_poll)
    }

    /// Copy COMMAND's output into the log; false once the pipe is at its end.
    pub fn copy_output(&mut self) -> bool {
        let name = &self.request.name;
        self.output
            .as_mut()
            .is_some_and(|o| o.copy(&self.dir, name, Some(16)) == super::logs::Copied::Now)
    }

    /// COMMAND has ended: all it wrote goes to the log before the session says it ended (a
    /// keeper copies what processes it left behind write later).
    pub fn finish_output(&mut self) {
        if let Some(output) = self.output.take() {
            output.finish(&self.dir, &self.request.name);
        }
    }

    /// Record the published ports as the user reaches them, for --list.
    pub fn ports_are(&mut self, ports: Vec<String>) {
        self.shared().record.ports = ports;
    }

    /// The run is over: a detached session keeps its state, with `how` it ended, and its log,
    /// for --list and --logs (until --stop removes them or a new session takes the name);
    /// another's state goes when the session is dropped.
    pub fn ended(&mut self, how: String) {
        self.leave_podman();
        if !self.request.detach {
            return;
        }
        self.shared().record.ended = Some(how);
        self.unlink_ports_socket();
        if self.write().is_ok() {
            self.keep = true;
        }
    }

    /// The image reboots: its pid 1 is gone, the supervisor is not (it starts again and takes
    /// the session over), which --list and --join must not take for a stale session.
    pub fn rebooting(&mut self) {
        {
            let mut shared = self.shared();
            shared.record.holder = None;
            shared.record.created = 0;
        }
        let _ = self.write();
    }

    /// Record the run's cgroup and its limits (--cgroup), for --list.
    pub fn cgroup_is(&mut self, path: &std::path::Path, limits: String) {
        let mut shared = self.shared();
        shared.record.cgroup = Some(path.display().to_string());
        shared.record.limits = Some(limits).filter(|l| !l.is_empty());
    }

    /// Record that the network helper ended (`why`: which and how), for --list. A failure to
    /// write it is not worth ending the session for; the message on stderr stands.
    pub fn network_down(&mut self, why: &str) {
        self.shared().record.net_down = Some(why.to_string());
        let _ = self.write();
    }

    /// The descriptors the namespace process still needs for [`Session::ready_inside`].
    pub fn fds_inside(&self) -> Vec<i32> {
        self.ready_w
            .as_ref()
            .map(|f| f.as_raw_fd())
            .into_iter()
            .collect()
    }

    /// In the namespace process, once setup is done (maps, ids, mounts, loopback, port
    /// provider) and before COMMAND: say so. A detached session's output (stderr too, from
    /// here on) goes to the pipe to its log, stdout already. Without COMMAND (`--detach`
    /// alone) this process becomes the pause process that holds the namespaces, and never
    /// returns. `new_root`: the run pivoted into a root of its own (--rootfs, --boot).
    pub fn ready_inside(&self, new_root: bool) -> Result<(), Error> {
        if self.output.is_some() {
            nix::unistd::dup2_stderr(sys::std_fd(1))
                .map_err(|e| Error::sys("redirecting stderr", e))?;
        }
        // A join reads the pause process's /proc/PID/ns (ptrace access, ptrace(2)), which the
        // kernel denies while it is not dumpable. It is not when setting up changed its ids
        // outside (--map=keep-id, --map=subids: uid 0 inside is a subordinate id), as any
        // change of credentials makes a process (commit_creds): every join of such a session
        // failed with EACCES. An exec'd COMMAND is dumpable again, so this makes the pause no
        // more reachable than COMMAND would be. Before "ready": a join may come the moment
        // the caller hears it (it did, on Debian 11's slower guest). Nothing else runs in the
        // namespaces before then, so nothing can reach the descriptors it still holds for a
        // moment. Not below a new root: its /proc/PID/exe is become-root's binary outside that
        // root, which no process inside may open (COMMAND's own executable is inside).
        if self.request.pause && !new_root {
            let _ = nix::sys::prctl::set_dumpable(true);
        }
        if let Some(mut ready) = self.ready_w.as_ref() {
            ready
                .write_all(b"r")
                .map_err(|e| Error::sys("reporting readiness", crate::sys::io_errno(&e)))?;
        }
        if self.request.pause {
            // The pause process holds the namespaces and nothing else: not even the pipe it
            // just used (its stdout and stderr are the pipe to the log already).
            sys::close_own_fds_except(&[]);
            hold();
        }
        Ok(())
    }

    /// In become-root, after the namespace process was told its maps are written: wait until
    /// it is ready, record the session, and let the caller of `--detach` go. If the namespace
    /// process fails instead, it reports why and ends; the supervision that follows returns
    /// its status.
    /// With `release` false, the caller waits on until [`Session::release_caller`].
    pub fn namespaces_ready(&mut self, child: Pid, release: bool) -> Result<(), Error> {
        drop(self.ready_w.take());
        let mut byte = [0u8; 1];
        if !matches!(self.ready_r.read(&mut byte), Ok(1)) {
            return Ok(());
        }
        match release {
            true => {
                self.record_ready(child)?;
                self.release_caller()
            }
            // A booted image is ready once its init says so: until then the session is
            // starting, for --list and --join too (systemctl inside would find no bus yet).
            false => {
                self.pending = Some(child);
                Ok(())
            }
        }
    }

    /// Record the session as ready, held by `child`. COMMAND may already be over
    /// (`become-root --name=x true`): then there is no session to record, but it was ready,
    /// and the caller of --detach hears so.
    fn record_ready(&mut self, child: Pid) -> Result<(), Error> {
        if let Some(holder) = Proc::of(child.as_raw()) {
            {
                let mut shared = self.shared();
                shared.record.holder = Some(holder);
                shared.record.namespaces = namespaces_of(holder.pid);
                shared.record.created = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
            }
            self.write()?;
            // A containers namespace of podman's own map is podman's too: plain `podman`
            // calls join it (containers::namespace). Best effort: without it they make
            // their own, as before.
            if let Some(file) = self.podman_pause_file() {
                let _ = crate::containers::register(&file, holder.pid);
            }
        }
        Ok(())
    }

    /// podman's pause file, for a containers namespace of podman's own map.
    fn podman_pause_file(&self) -> Option<PathBuf> {
        let containers = self.shared().record.containers.clone()?;
        let map = <crate::options::MapMode as clap::ValueEnum>::from_str(&containers.map, false);
        if !crate::containers::shared_with_podman(map.ok()?) {
            return None;
        }
        let places = crate::containers::Places::of_caller(nix::unistd::Uid::current().as_raw());
        crate::containers::pause_file(&places)
    }

    /// The namespace ended: podman's pause file no longer names it.
    fn leave_podman(&self) {
        let holder = self.shared().record.holder;
        if let (Some(file), Some(holder)) = (self.podman_pause_file(), holder) {
            crate::containers::unregister(&file, holder.pid);
        }
    }

    /// The session is ready (a booted image said so): record it and let the caller of
    /// `--detach` go.
    pub fn release_caller(&mut self) -> Result<(), Error> {
        if let Some(child) = self.pending.take() {
            self.record_ready(child)?;
        }
        if let Some(mut caller) = self.caller.take() {
            if let Some(output) = &self.output {
                let _ = nix::unistd::dup2_stderr(output.log());
            }
            // The caller left (interrupted) before hearing "ready": the session is cancelled.
            caller.write_all(b"r").map_err(|_| {
                SessionError::Detach("the caller went away before the session was ready".into())
            })?;
        }
        Ok(())
    }
}

/// What a supervisor started again by its image's reboot brings of its session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Again {
    /// The pipe to a --detach caller still waiting for "ready", by number.
    pub caller: Option<i32>,
}

impl Again {
    /// As the environment variable carries it: `1`, or `caller=FD`.
    pub fn parse(value: &std::ffi::OsStr) -> Again {
        let caller = value
            .to_str()
            .and_then(|v| v.strip_prefix("caller="))
            .and_then(|fd| fd.parse().ok());
        Again { caller }
    }

    pub fn render(&self) -> String {
        match self.caller {
            Some(fd) => format!("caller={fd}"),
            None => "1".into(),
        }
    }
}

impl Session {
    /// Before the supervisor starts itself again (a reboot): the pipe to a --detach caller
    /// still waiting, left open across the exec.
    pub fn again(&self) -> Again {
        let caller = self.caller.as_ref().and_then(|c| {
            nix::fcntl::fcntl(
                c,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )
            .ok()
            .map(|_| c.as_raw_fd())
        });
        Again { caller }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if getpid() == self.owner {
            self.leave_podman();
            self.unlink_ports_socket();
            if !self.keep {
                let written = self.shared().written.clone();
                let _ = self.dir.remove_if_unchanged(&self.request.name, &written);
            }
        }
    }
}

/// What the session's process and its live-ports thread share.
struct Shared {
    record: Record,
    /// The state file as this run last wrote it.
    written: String,
}

/// The session's record of its published ports, for the thread that changes them (live
/// ports): each change is written to the state file at once, for --list.
pub struct PortsRecord {
    dir: Arc<StateDir>,
    shared: Arc<Mutex<Shared>>,
}

impl PortsRecord {
    pub fn set(&self, ports: Vec<String>) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.record.ports = ports;
        if let Ok(written) = self.dir.replace(&shared.record) {
            shared.written = written;
        }
    }
}

impl Session {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the record to the state file.
    fn write(&self) -> Result<(), SessionError> {
        let mut shared = self.shared();
        shared.written = self.dir.replace(&shared.record)?;
        Ok(())
    }

    /// The path of the session's live-ports socket (NAME.ports in its state directory),
    /// reached through the directory's descriptor, and the record its changes go to.
    pub fn ports_socket(&self) -> (PathBuf, PortsRecord) {
        let path = self
            .dir
            .path_of(&StateDir::ports_socket(&self.request.name));
        let record = PortsRecord {
            dir: self.dir.clone(),
            shared: self.shared.clone(),
        };
        (path, record)
    }

    fn unlink_ports_socket(&self) {
        self.dir.unlink(&StateDir::ports_socket(&self.request.name));
    }
}

/// `--detach`: fork. The parent waits until the child says the namespaces are ready and exits
/// 0, or exits with the child's status if it fails first; the child leaves the caller's
/// session and process group (setsid, so the terminal's hangup and Ctrl-C never reach the
/// session), closes the descriptors it inherited but those in `keep`, and returns the pipe on
/// which to say "ready".
pub(super) fn go_to_background(keep: &[i32]) -> Result<File, Error> {
    let (mut ready_r, ready_w) = process::pipe()?;
    match sys::fork_process().map_err(|e| Error::sys("fork", e))? {
        Forked::Parent(background) => {
            drop(ready_w);
            let mut byte = [0u8; 1];
            if matches!(ready_r.read(&mut byte), Ok(1)) {
                std::process::exit(0);
            }
            // The background process failed and reported why on our stderr, unless a signal
            // ended it before it could.
            let code = match waitpid(background, None) {
                Ok(WaitStatus::Exited(_, code)) => code,
                other => {
                    let how = match other {
                        Ok(WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
                        Ok(status) => format!("{status:?}"),
                        Err(e) => e.desc().to_string(),
                    };
                    let e = SessionError::Detach(format!(
                        "the background process ended before the session was ready ({how})"
                    ));
                    Error::from(e).report();
                    crate::error::EXIT_FAILURE
                }
            };
            std::process::exit(code)
        }
        Forked::Child => {
            drop(ready_r);
            nix::unistd::setsid().map_err(|e| Error::sys("setsid", e))?;
            let mut keep = keep.to_vec();
            keep.push(ready_w.as_raw_fd());
            sys::close_fds_except(&keep);
            Ok(ready_w)
        }
    }
}

/// The pause process of a session without COMMAND: hold the namespaces until told to end
/// (SIGTERM, SIGINT or SIGHUP), reaping whatever is left to it (as pid 1 of a pid namespace,
/// the orphans of joined commands). Uses sigwait, so that it works as init too, which the
/// kernel shields from signals without a handler.
pub(super) fn hold() -> ! {
    let signals = process::forwarded_signals();
    let _ = signals.thread_block();
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => process::reap_zombies(),
            Ok(sig @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP)) => sys::die_of(sig),
            _ => {}
        }
    }
}
