//! Supervision: become-root outside every namespace while COMMAND runs, forwarding signals,
//! relaying a console, hearing pid 1's sd_notify messages, stopping a system image politely
//! and then not, and ending as COMMAND ended.

use std::io::Read;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::PollTimeout;
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Ending, Received, Terminal, console, notify, read_reports, receive, signalfd};
use crate::error::{Error, say};
use crate::sys;

/// How long a pid 1 of the caller's own (--as-pid-1) has to end after the console's escape.
const ESCAPE_GRACE: Duration = Duration::from_secs(5);

/// How a run is stopped politely, whoever asks (a kill(1) of become-root, a service manager,
/// the terminal's Ctrl-C, the console's escape): `signo` to pid 1, SIGKILL after `grace`.
#[derive(Debug, Clone, Copy)]
pub struct StopWith {
    pub signo: i32,
    pub grace: Duration,
}

/// A stop under way (see [`StopWith`]).
struct Stopping {
    with: StopWith,
    sent: bool,
    kill_at: Instant,
    killed: bool,
}

impl Stopping {
    fn new(with: StopWith) -> Stopping {
        Stopping {
            with,
            sent: false,
            kill_at: Instant::now() + with.grace,
            killed: false,
        }
    }

    /// Send the signal once pid 1 can take it, kill it once the grace is over; returns how
    /// long supervision may wait before the next step.
    fn advance(&mut self, child: Pid) -> PollTimeout {
        if self.killed {
            return PollTimeout::NONE;
        }
        // An init gets only the signals it has a handler for (or blocks), even from an
        // ancestor pid namespace (SIGKILL excepted): one sent before the image's init set its
        // handler is lost (signal(7), pid_namespaces(7)). So it is sent once /proc says it
        // is taken.
        if !self.sent && catches(child, self.with.signo) {
            self.sent = sys::kill_number(child, self.with.signo).is_ok();
        }
        let now = Instant::now();
        if now >= self.kill_at {
            let _ = kill(child, Signal::SIGKILL);
            self.killed = true;
            say!(
                "become-root: pid 1 did not end within {} s of {}: killed",
                self.with.grace.as_secs(),
                signal_name(self.with.signo)
            );
            return PollTimeout::NONE;
        }
        let wait = match self.sent {
            false => Duration::from_millis(10).min(self.kill_at - now),
            true => self.kill_at - now,
        };
        PollTimeout::from(u16::try_from(wait.as_millis() + 1).unwrap_or(u16::MAX))
    }
}

/// The sooner of two poll timeouts (NONE, waiting for ever, is the latest).
fn earliest(a: PollTimeout, b: PollTimeout) -> PollTimeout {
    match (a == PollTimeout::NONE, b == PollTimeout::NONE) {
        (true, _) => b,
        (_, true) => a,
        _ => a.min(b),
    }
}

/// Whether process `pid` takes signal `signo`: it has a handler for it, or blocks it (to read
/// it from a signalfd, as systemd does; a blocked signal is kept pending, never dropped), as
/// SigCgt and SigBlk of /proc/PID/status say.
fn catches(pid: Pid, signo: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let mask = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0)
    };
    let bit = 1u64.checked_shl(signo as u32 - 1).unwrap_or(0);
    signo >= 1 && (mask("SigCgt:") | mask("SigBlk:")) & bit != 0
}

/// "SIGTERM", or "SIGRTMIN+3" for the real-time ones.
pub fn signal_name(signo: i32) -> String {
    match Signal::try_from(signo) {
        Ok(sig) => sig.as_str().to_string(),
        Err(_) => format!("SIGRTMIN+{}", signo - nix::libc::SIGRTMIN()),
    }
}

/// What supervision watches besides signals and the namespace process (all optional).
#[derive(Default)]
pub struct Watch<'a> {
    /// The reports of an init (and of the namespace process's setup), see [`Ending`].
    pub reports: Option<std::fs::File>,
    /// A stop of COMMAND is relayed: become-root takes the terminal back and stops itself;
    /// when continued, it gives the terminal back and continues COMMAND.
    pub terminal: Option<Terminal>,
    /// Its pty is relayed (console.rs), and COMMAND, in a session of its own, gets the
    /// signals the terminal sends become-root.
    pub console: Option<&'a console::Console>,
    /// How a system image stops: SIGTERM, SIGINT, SIGHUP and SIGQUIT all ask it to.
    pub stop_with: Option<StopWith>,
    /// Messages of pid 1 (sd_notify), and how long to wait for its `READY=1`.
    pub notify: Option<(&'a notify::Listener, Option<Duration>)>,
    /// Call [`Events::tick`] this often.
    pub tick: Option<Duration>,
    /// Call [`Events::output`] when this (a pipe of COMMAND's output) is readable.
    pub output: Option<std::os::fd::BorrowedFd<'a>>,
    /// Descriptors of its own to poll (`--net=bypass`'s seccomp listener).
    pub source: Option<&'a mut dyn Source>,
}

/// Something supervision polls for, that answers what it is told at once (it never blocks):
/// its descriptors, then what poll said of them, in the same order.
pub trait Source {
    fn interest(&self) -> Vec<nix::poll::PollFd<'_>>;
    fn on_events(&mut self, revents: &[nix::poll::PollFlags]);
}

/// What supervision tells its caller as it happens.
pub trait Events {
    /// The namespace process finished its setup (its report).
    fn setup_done(&mut self) {}
    /// Some child of become-root changed state (a network helper that died, say).
    fn child_changed(&mut self) {}
    /// pid 1 said it is ready (`READY=1`), or `waited` passed first (`Some`, with the time
    /// waited).
    fn pid_1_ready(&mut self, _waited: Option<Duration>) {}
    /// A stop was asked for (`STOPPING=1` to a service manager).
    fn stopping(&mut self) {}
    /// [`Watch::tick`] has passed again.
    fn tick(&mut self) {}
    /// [`Watch::output`] is readable; false once it is at its end (it is not watched then).
    fn output(&mut self) -> bool {
        false
    }
}

/// Nothing to be told.
impl Events for () {}

/// Supervise `child` (outside every namespace): forward signals, wait for it, and return how
/// COMMAND ended: as the reports say when an init sends them, else as `child` itself ended.
/// The helpers the reports name go to `helpers`. Each turn: the timeout (a stop under way,
/// pid 1's ready deadline, the tick), one poll, then what it found, in order: output, pid
/// 1's messages, the console's escape, a report, a signal.
pub fn supervise(
    child: Pid,
    watch: Watch<'_>,
    helpers: &mut Vec<Pid>,
    events: &mut dyn Events,
) -> Result<Ending, Error> {
    let mut s = Supervisor::new(child, watch, helpers, events)?;
    let status = loop {
        let timeout = s.timeout();
        let polled = s.wait_for_events(timeout)?;
        if polled.output && !s.events.output() {
            s.output = None;
        }
        if polled.notified {
            s.hear_pid_1();
        }
        if polled.escaped {
            s.escape();
        }
        if polled.report {
            s.read_report();
        }
        if polled.signal
            && let Some(status) = s.on_signal()?
        {
            break status;
        }
    };
    Ok(s.finish(status))
}

/// Supervision's state between turns.
struct Supervisor<'a, 'e> {
    child: Pid,
    sfd: SignalFd,
    reports: Option<std::fs::File>,
    terminal: Option<Terminal>,
    relay: Option<console::Relay<'a>>,
    stop_with: Option<StopWith>,
    notify: Option<(&'a notify::Listener, Option<Duration>)>,
    tick: Option<Duration>,
    next_tick: Option<Instant>,
    output: Option<std::os::fd::BorrowedFd<'a>>,
    source: Option<&'a mut dyn Source>,
    /// How COMMAND ended, as an init reported it.
    reported: Option<Ending>,
    stopping: Option<Stopping>,
    /// Until pid 1 says READY=1, or this deadline.
    ready_by: Option<(Instant, Duration)>,
    helpers: &'e mut Vec<Pid>,
    events: &'e mut dyn Events,
}

/// What one poll found ready.
struct Polled {
    signal: bool,
    report: bool,
    notified: bool,
    /// The console's escape was typed.
    escaped: bool,
    output: bool,
}

impl<'a, 'e> Supervisor<'a, 'e> {
    fn new(
        child: Pid,
        watch: Watch<'a>,
        helpers: &'e mut Vec<Pid>,
        events: &'e mut dyn Events,
    ) -> Result<Self, Error> {
        let Watch {
            reports,
            terminal,
            console,
            stop_with,
            notify,
            tick,
            output,
            source,
        } = watch;
        Ok(Supervisor {
            child,
            next_tick: tick.map(|every| Instant::now() + every),
            sfd: signalfd()?,
            reports,
            terminal,
            relay: console.map(console::Relay::start),
            stop_with,
            ready_by: notify
                .and_then(|(_, wait)| wait)
                .map(|w| (Instant::now(), w)),
            notify,
            tick,
            output,
            source,
            reported: None,
            stopping: None,
            helpers,
            events,
        })
    }

    /// How long the next poll may wait: a stop under way takes its next step, pid 1's ready
    /// deadline and the tick are told when they pass.
    fn timeout(&mut self) -> PollTimeout {
        let mut timeout = self
            .stopping
            .as_mut()
            .map_or(PollTimeout::NONE, |s| s.advance(self.child));
        if let Some((since, wait)) = self.ready_by {
            let left = wait.saturating_sub(since.elapsed());
            if left.is_zero() {
                self.ready_by = None;
                self.events.pid_1_ready(Some(wait));
            } else {
                let ms = u16::try_from(left.as_millis() + 1).unwrap_or(u16::MAX);
                timeout = earliest(timeout, PollTimeout::from(ms));
            }
        }
        if let (Some(at), Some(every)) = (self.next_tick, self.tick) {
            let now = Instant::now();
            if now >= at {
                self.events.tick();
                self.next_tick = Some(now + every);
            }
            let left = self
                .next_tick
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
            let ms = u16::try_from(left.as_millis() + 1).unwrap_or(u16::MAX);
            timeout = earliest(timeout, PollTimeout::from(ms));
        }
        timeout
    }

    /// One poll of everything watched; the console's relay handles its own descriptors.
    fn wait_for_events(&mut self, timeout: PollTimeout) -> Result<Polled, Error> {
        use nix::poll::{PollFd, PollFlags, poll};
        use std::os::fd::AsFd;
        let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
        let report_at = self.reports.as_ref().map(|pipe| {
            fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let notify_at = self.notify.map(|(listener, _)| {
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let output_at = self.output.map(|fd| {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
            fds.len() - 1
        });
        let first_source = fds.len();
        if let Some(source) = self.source.as_ref() {
            fds.extend(source.interest());
        }
        let first_relay = fds.len();
        if let Some(relay) = self.relay.as_ref() {
            fds.extend(relay.interest());
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("waiting for events", e)),
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if let Some(source) = self.source.as_mut() {
            source.on_events(&revents[first_source..first_relay]);
        }
        let escaped = self
            .relay
            .as_mut()
            .is_some_and(|r| r.on_events(&revents[first_relay..]));
        let ready = |at: Option<usize>| at.is_some_and(|i| !revents[i].is_empty());
        Ok(Polled {
            signal: ready(Some(0)),
            report: ready(report_at),
            notified: ready(notify_at),
            escaped,
            output: ready(output_at),
        })
    }

    /// pid 1's sd_notify messages: its READY=1 ends the wait for it.
    fn hear_pid_1(&mut self) {
        let Some((listener, _)) = self.notify else {
            return;
        };
        while let Some((pid, message)) = listener.receive() {
            // Only pid 1's word counts (the socket is root's inside, but any process of
            // root's there could write to it).
            if pid == Some(self.child.as_raw())
                && notify::says(&message, "READY=1")
                && self.ready_by.take().is_some()
            {
                self.events.pid_1_ready(None);
            }
        }
    }

    /// The console's escape: stop as the run stops (SIGTERM for a pid 1 of the caller's own).
    fn escape(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let with = self.stop_with.unwrap_or(StopWith {
            signo: Signal::SIGTERM as i32,
            grace: ESCAPE_GRACE,
        });
        self.stopping = Some(Stopping::new(with));
        self.events.stopping();
    }

    /// One report of the init (or of the namespace process's setup).
    fn read_report(&mut self) {
        let Some(pipe) = self.reports.as_mut() else {
            return;
        };
        let mut msg = [0u8; 5];
        match pipe
            .read_exact(&mut msg)
            .ok()
            .and_then(|()| Ending::decode(&msg))
        {
            Some(Ending::Stopped(sig)) => suspend_like(sig, self.child, self.terminal),
            Some(Ending::Ready) => self.events.setup_done(),
            Some(Ending::Helper(pid)) => self.helpers.push(Pid::from_raw(pid)),
            Some(ending) => self.reported = Some(ending),
            None => self.reports = None, // init is gone; its own status tells the rest
        }
    }

    /// A signal: a child changed state (the status, once `child` has ended), or one to
    /// forward, relay or turn into a polite stop.
    fn on_signal(&mut self) -> Result<Option<WaitStatus>, Error> {
        let child = self.child;
        match receive(&self.sfd)? {
            // Some child of ours changed state: the namespace process, or a helper.
            Received::Child => {
                self.events.child_changed();
                match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                        return Ok(Some(status));
                    }
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(Error::sys("waiting for the namespace process", e)),
                }
            }
            Received::FromTerminal(Signal::SIGWINCH) if self.relay.is_some() => {
                if let Some(relay) = self.relay.as_ref() {
                    relay.resize();
                }
            }
            // A system image (--boot) stops on its own signal, whoever asks: a kill(1) of
            // become-root or the terminal's Ctrl-C (COMMAND is in a session of its own).
            Received::Forward(sig) | Received::FromTerminal(sig)
                if let Some(with) = self.stop_with
                    && matches!(
                        sig,
                        Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT
                    ) =>
            {
                if self.stopping.is_none() {
                    self.stopping = Some(Stopping::new(with));
                    self.events.stopping();
                }
            }
            Received::Forward(sig) => {
                if sig == Signal::SIGTERM {
                    self.events.stopping();
                }
                let _ = kill(child, sig);
            }
            // COMMAND is in a session of its own (the console's): the terminal's signals
            // reached become-root alone.
            Received::FromTerminal(sig) if self.relay.is_some() => {
                let _ = kill(child, sig);
            }
            Received::FromTerminal(_) | Received::Nothing => {}
        }
        Ok(None)
    }

    /// `child` ended with `status`: the console and the terminal are handed back, and the
    /// ending is the init's last report, else `child`'s own.
    fn finish(mut self, status: WaitStatus) -> Ending {
        if let Some(relay) = self.relay.take() {
            relay.finish();
        }
        if let Some(terminal) = self.terminal {
            terminal.take_back();
        }
        if self.reported.is_none()
            && let Some(pipe) = self.reports.as_mut()
        {
            let messages = read_reports(pipe, self.helpers);
            if messages.contains(&Ending::Ready) {
                self.events.setup_done();
            }
            self.reported = messages
                .into_iter()
                .rfind(|e| matches!(e, Ending::Exited(_) | Ending::Killed(_)));
        }
        let own = Ending::from_wait(status).expect("exited or killed");
        self.reported.unwrap_or(own)
    }
}

/// COMMAND stopped: stop become-root the same way, so that the caller's shell sees a
/// stopped job; once continued, hand the terminal back and continue COMMAND's group.
fn suspend_like(sig: Signal, child: Pid, terminal: Option<Terminal>) {
    if let Some(terminal) = terminal {
        terminal.take_back();
    }
    // SIGTSTP keeps its default action in become-root; the others stop it with SIGSTOP.
    let stop = if sig == Signal::SIGTSTP {
        Signal::SIGTSTP
    } else {
        Signal::SIGSTOP
    };
    let _ = nix::sys::signal::raise(stop);
    // Continued.
    if let Some(terminal) = terminal {
        terminal.give_to(child);
    }
    let _ = nix::sys::signal::killpg(child, Signal::SIGCONT);
}
