//! Mounts: first a plan (plain data, decided from the options), then applied in order inside
//! the new mount namespace. Keeping the plan pure lets its order be a unit test, and lets the
//! filesystem options (bind, tmpfs, overlay, rootfs) add steps without touching the launcher.

use nix::mount::{MsFlags, mount};

use crate::cli::Propagation;
use crate::error::Error;

/// One step of the mount plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountStep {
    /// Set the propagation of every mount below / (recursively), so that nothing done in the
    /// namespace reaches the host (private), or host mounts still arrive (slave).
    SetPropagation(Propagation),
    /// A fresh proc filesystem on /proc for the new pid namespace.
    FreshProc,
    /// A generated, read-only /etc/resolv.conf with this text (naming the network helper's
    /// DNS forwarder), bound over the file the path leads to, symlinks followed.
    ResolvConf(String),
}

/// The steps for a run: `mount_ns` when a mount namespace is made, `pid_ns` when a pid
/// namespace is made (which needs its own /proc), `resolv_conf` for a connected network.
pub fn plan(
    mount_ns: bool,
    pid_ns: bool,
    propagation: Propagation,
    resolv_conf: Option<String>,
) -> Vec<MountStep> {
    let mut steps = Vec::new();
    if mount_ns {
        steps.push(MountStep::SetPropagation(propagation));
    }
    if pid_ns {
        steps.push(MountStep::FreshProc);
    }
    if let Some(text) = resolv_conf {
        steps.push(MountStep::ResolvConf(text));
    }
    steps
}

/// Carry out one step. Runs inside the new user and mount namespaces, as root there.
pub fn apply(step: &MountStep) -> Result<(), Error> {
    let fail = |what: &str| {
        let what = what.to_string();
        move |errno| Error::Mount { what, errno }
    };
    match step {
        MountStep::SetPropagation(p) => {
            // A mount namespace made together with a user namespace is "less privileged": the
            // kernel already turned shared mounts into slaves (mount_namespaces(7)). Private
            // cuts the last link to the host.
            let kind = match p {
                Propagation::Private => MsFlags::MS_PRIVATE,
                Propagation::Slave => MsFlags::MS_SLAVE,
            };
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                kind | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(fail("making / recursively private"))
        }
        MountStep::FreshProc => {
            // Allowed in a user namespace only because this process owns the new pid
            // namespace and a fully visible /proc is already mounted (mnt_already_visible in
            // fs/namespace.c); nosuid,nodev,noexec as on the host.
            mount(
                Some("proc"),
                "/proc",
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(fail("mounting a fresh /proc"))
        }
        MountStep::ResolvConf(text) => {
            crate::sys::mount_generated_file(std::path::Path::new(RESOLV_CONF), text.as_bytes())
                .map_err(fail("binding a generated /etc/resolv.conf"))
        }
    }
}

const RESOLV_CONF: &str = "/etc/resolv.conf";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_rows() {
        use MountStep::*;
        let private = Propagation::Private;
        let slave = Propagation::Slave;
        let dns = || Some("nameserver 10.0.2.3\n".to_string());
        let resolv = || ResolvConf("nameserver 10.0.2.3\n".into());
        // (mount ns, pid ns, propagation, resolv.conf) -> steps
        type Row = (bool, bool, Propagation, Option<String>, Vec<MountStep>);
        let rows: Vec<Row> = vec![
            (false, false, private, None, vec![]),
            (true, false, private, None, vec![SetPropagation(private)]),
            (true, false, slave, None, vec![SetPropagation(slave)]),
            (
                true,
                true,
                private,
                None,
                vec![SetPropagation(private), FreshProc],
            ),
            (
                true,
                false,
                private,
                dns(),
                vec![SetPropagation(private), resolv()],
            ),
            (
                true,
                true,
                private,
                dns(),
                vec![SetPropagation(private), FreshProc, resolv()],
            ),
        ];
        for (mount_ns, pid_ns, prop, text, want) in rows {
            let got = plan(mount_ns, pid_ns, prop, text.clone());
            assert_eq!(got, want, "{mount_ns} {pid_ns} {prop:?} {text:?}");
        }
    }
}
