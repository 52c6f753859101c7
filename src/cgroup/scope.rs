//! A transient scope of the caller's systemd user manager, asked for over the session bus
//! ([`super::bus`]: bounded in time, and ended at once by SIGTERM, SIGINT, SIGHUP or SIGQUIT,
//! which then end the run: [`Error::interrupted`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::bus::{self, BusError, Interrupts};
use super::janitor::Report;
use super::{
    Limits, Own, Source, cgroup_of, directory_of, missing_controllers_error, words, write_file,
    write_limits,
};
use crate::error::Error;
use crate::sys;

/// A transient scope of the caller's systemd user manager, with Delegate=yes and the limits
/// as its properties. systemd moves `child` and a keeper (see [`super::janitor::start`]) into it
/// (from a login session's scope, which is root's, only systemd can); become-root then lays
/// out the delegated subtree as the no-internal-processes rule wants it: the keeper in
/// SCOPE/keeper, the namespace process in SCOPE/payload, the controllers enabled for both.
pub(super) fn make(
    busctl: &Path,
    child: Pid,
    limits: &Limits,
    report: Report,
) -> Result<Own, Error> {
    let unit = format!("become-root-{child}.scope");
    let (keeper, pipe) = super::janitor::start(None, report)?;
    let mut own = Own {
        path: PathBuf::new(),
        source: Source::Scope(unit.clone()),
        limits: limits.clone(),
        janitor: Some((keeper, pipe)),
        leaf: None,
    };
    let interrupts = Interrupts::watch();
    ask_for_scope(busctl, &unit, &[child, keeper], limits, &interrupts)?;
    let scope = wait_for_scope(&unit, child, keeper, &interrupts)?;
    make_leaves(&scope, keeper, child)?;
    own.path = scope.join("payload");
    enable_controllers(&scope, limits)?;
    // The limits on the payload too, as on a leaf: COMMAND sees them at /sys/fs/cgroup
    // (memory.max, cpu.stat's throttling), as a container sees its own.
    write_limits(&own.path, limits)?;
    Ok(own)
}

/// Ask the user manager for scope `unit` holding `pids`, delegated, with the limits; a
/// systemd that does not know OOMPolicy for a scope (before 253) is asked again without it.
fn ask_for_scope(
    busctl: &Path,
    unit: &str,
    pids: &[Pid],
    limits: &Limits,
    interrupts: &Interrupts,
) -> Result<(), Error> {
    let mut props: Vec<(&str, &str, String)> = vec![
        ("Description", "s", "become-root --cgroup".into()),
        ("Delegate", "b", "true".into()),
        ("CollectMode", "s", "inactive-or-failed".into()),
        // An OOM kill ends COMMAND, as a kernel's would, not the whole scope; become-root
        // reports it. (Scopes have the setting from systemd 253 on, and need it less before:
        // older ones do not act on OOM kills in a scope.)
        ("OOMPolicy", "s", "continue".into()),
    ];
    props.extend(limits.properties());
    let ask = |props: &[(&str, &str, String)]| {
        start_transient_unit(busctl, unit, pids, props, interrupts)
    };
    let mut asked = ask(&props);
    if matches!(&asked, Err(BusError::Failed(said)) if said.contains("OOMPolicy")) {
        props.retain(|(name, _, _)| *name != "OOMPolicy");
        asked = ask(&props);
    }
    asked.map(drop).map_err(|e| match e {
        BusError::Interrupted(sig) => Error::interrupted(sig as i32),
        e => Error::new(
            "--cgroup: asking your systemd user manager for a scope",
            e.to_string(),
        )
        .with_hint("systemctl --user status shows whether the user manager runs"),
    })
}

/// The scope's directory, once both processes are in it: the job runs asynchronously.
fn wait_for_scope(
    unit: &str,
    child: Pid,
    keeper: Pid,
    interrupts: &Interrupts,
) -> Result<PathBuf, Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let in_scope = |pid: Pid| cgroup_of(Some(pid)).filter(|p| p.ends_with(unit));
    loop {
        if let (Some(path), Some(_)) = (in_scope(child), in_scope(keeper)) {
            return directory_of(&path).ok_or_else(|| {
                Error::new(
                    "--cgroup",
                    format!("the scope {} is not visible here", path.display()),
                )
            });
        }
        if Instant::now() > deadline {
            return Err(Error::new(
                "--cgroup",
                format!("the scope {unit} did not take the namespace process within 10 s"),
            )
            .with_hint(format!("journalctl --user -u {unit} says why")));
        }
        if let Err(BusError::Interrupted(sig)) = interrupts.pause(Duration::from_millis(2)) {
            return Err(Error::interrupted(sig as i32));
        }
    }
}

/// The delegated subtree as the no-internal-processes rule wants it: the keeper in
/// SCOPE/keeper, the namespace process in SCOPE/payload.
fn make_leaves(scope: &Path, keeper: Pid, child: Pid) -> Result<(), Error> {
    for (leaf, pid) in [("keeper", keeper), ("payload", child)] {
        let dir = scope.join(leaf);
        std::fs::create_dir(&dir).map_err(io_fail(format!("making {}", dir.display())))?;
        let procs = dir.join("cgroup.procs");
        write_file(&procs, &pid.to_string()).map_err(io_fail(format!(
            "moving process {pid} to {}",
            procs.display()
        )))?;
    }
    Ok(())
}

fn io_fail(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::sys(what, sys::io_errno(&e))
}

/// Every controller the scope has, enabled for its leaves (for COMMAND's own use too:
/// podman, systemd inside); a limit whose controller the scope lacks is an error.
fn enable_controllers(scope: &Path, limits: &Limits) -> Result<(), Error> {
    let fail = io_fail;
    let offered = words(&scope.join("cgroup.controllers"));
    let enable: Vec<String> = offered.iter().map(|c| format!("+{c}")).collect();
    let control = scope.join("cgroup.subtree_control");
    if !enable.is_empty() {
        write_file(&control, &enable.join(" ")).map_err(fail(format!(
            "enabling controllers in {}",
            control.display()
        )))?;
    }
    let missing: Vec<&str> = limits
        .controllers()
        .into_iter()
        .filter(|c| !offered.iter().any(|o| o == c))
        .collect();
    if !missing.is_empty() {
        return Err(missing_controllers_error(scope, &missing, limits));
    }
    Ok(())
}

/// busctl's StartTransientUnit of `unit` (mode "fail": an existing unit of the name is an
/// error) holding `pids`, with `props`, within [`CALL_LIMIT`].
fn start_transient_unit(
    busctl: &Path,
    unit: &str,
    pids: &[Pid],
    props: &[(&str, &str, String)],
    interrupts: &Interrupts,
) -> Result<String, BusError> {
    let count = (props.len() + 1).to_string();
    let pid_count = pids.len().to_string();
    let pid_words: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    let mut args: Vec<&str> = vec![
        "call",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "StartTransientUnit",
        "ssa(sv)a(sa(sv))",
        unit,
        "fail",
        &count,
        "PIDs",
        "au",
        &pid_count,
    ];
    args.extend(pid_words.iter().map(String::as_str));
    for (name, signature, value) in props {
        args.extend([*name, *signature, value.as_str()]);
    }
    args.push("0");
    bus::call(busctl, &args, CALL_LIMIT, interrupts)
}

/// How long the user manager has to answer a request for a scope.
const CALL_LIMIT: Duration = Duration::from_secs(15);
