//! Exec in place: nothing must live outside the namespaces, so become-root itself becomes
//! COMMAND. newuidmap and newgidmap are forked ahead (or, for real root's identity map, a
//! privileged child; for a single map, nobody), become-root unshares, they write the maps the
//! moment the namespace exists, it sets itself up and execs COMMAND, keeping its pid.

use nix::unistd::getpid;

use super::Plan;
use super::inside::{MapsFrom, Real, map_helper, run_command, unshare_and_set_up};
use crate::error::Error;
use crate::process;
use crate::sys::{self, Forked};
use crate::userns::{self, Writer};

/// Exec in place: arrange for the maps to be written (by ourselves, by helpers forked ahead,
/// or by a privileged child that stays outside), unshare, set up, exec.
pub(super) fn exec_in_place(plan: &Plan) -> Result<std::convert::Infallible, Error> {
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
    let mut real = Real::new(maps, None);
    if let Err(e) = unshare_and_set_up(&mut real, plan) {
        real.abandon();
        return Err(e);
    }
    // A service manager above become-root: the run is ready as COMMAND starts.
    if let Some(notifier) = &plan.notifier {
        notifier.send("READY=1");
    }
    Err(run_command(plan, None))
}
