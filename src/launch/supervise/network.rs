//! The run's network: its helper, started and waited for (under --net=bypass, once the
//! namespace process is on its way), and --net=bypass's listener, taken from the namespace
//! process and polled by supervision.

use nix::unistd::Pid;

use super::Run;
use crate::error::{Error, say};
use crate::net;
use crate::process;

impl Run<'_> {
    /// Start the network helper against the namespace process and wait until it is ready
    /// (under --net=bypass, perhaps later: below).
    pub(super) fn start_network(&mut self) -> Result<(), Error> {
        let Some(planned) = self.plan.connected.as_ref() else {
            return Ok(());
        };
        let child = self.child();
        // --net=bypass with nothing to fall back to: the namespace process is let go while
        // the helper starts, and COMMAND only once it is ready (take_bypass waits for it
        // before it lets the namespace process go on from installing its filter), so that
        // the namespace process sets itself up during the helper's start-up, not after it.
        if planned.bypass && planned.fall_back().is_none() && planned.forwards.is_empty() {
            self.helper = Some(net::helper::start(planned, child)?);
            self.helper_starting = true;
        } else {
            self.helper = Some(self.start_ready_helper(planned, child)?);
        }
        if let (Some(session), Some(driver)) = (self.session.as_mut(), self.driver) {
            session.network_is(driver.program());
            if planned.bypass {
                session.bypass_is(policy_of(planned).describe());
            }
        }
        Ok(())
    }

    /// The helper for `planned`, ready: pasta, or under --net=auto slirp4netns if pasta fails
    /// to start (self.driver then says so).
    fn start_ready_helper(
        &mut self,
        planned: &net::NetPlan,
        child: Pid,
    ) -> Result<net::helper::Running, Error> {
        Ok(match net::helper::start_ready(planned, child) {
            Ok(helper) => helper,
            Err(e) => {
                let fallback = planned.fall_back().ok_or(e.clone())?;
                if !self.plan.quiet {
                    say!("become-root: warning: --net=auto: {e}; using slirp4netns instead");
                }
                let helper = net::helper::start_ready(&fallback, child)?;
                self.driver = Some(fallback.driver);
                helper
            }
        })
    }

    /// --net=bypass: the namespace process sends its seccomp listener just before COMMAND
    /// runs; a namespace process that ended first failed, and its status says so. A helper
    /// started without waiting (start_network) is waited for first: COMMAND does not start
    /// before the network it was promised.
    pub(super) fn take_bypass(&mut self) -> Result<(), Error> {
        if std::mem::take(&mut self.helper_starting)
            && let Some(mut helper) = self.helper.take()
        {
            if let Err(e) = helper.wait_ready() {
                helper.stop();
                return Err(e.into());
            }
            self.helper = Some(helper);
        }
        if let (Some(channel), Some(net)) = (self.bypass_channel.take(), &self.plan.connected) {
            self.bypass = net::bypass::receive(channel, Some(self.child()), policy_of(net))?;
        }
        Ok(())
    }
}

/// --net=bypass's answerer, polled by supervision.
impl process::Source for net::bypass::Supervisor {
    fn interest(&self) -> Vec<nix::poll::PollFd<'_>> {
        net::bypass::Supervisor::interest(self)
    }

    fn on_events(&mut self, revents: &[nix::poll::PollFlags]) {
        net::bypass::Supervisor::on_events(self, revents)
    }
}

/// What the bypass of a run with network `net` allows.
fn policy_of(net: &net::NetPlan) -> net::bypass::Policy {
    net::bypass::Policy {
        cidr: net.addressing.cidr.unwrap_or(net::addressing::DEFAULT_CIDR),
        ipv6: net.addressing.ipv6,
        allow_host_loopback: net.allow_host_loopback,
    }
}
