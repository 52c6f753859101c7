//! The run's world beyond its namespaces and mounts (issue 25): what `--emulate`, the time
//! namespace (`--time`, `--monotonic`, `--boottime`), `--hostname` and `--device` add to the
//! plan, and the two steps the namespace process takes for them (a time namespace entered
//! with its offsets, the host name set). The environment options are the command's
//! (process::Command::with_env), the mounts the mount plan's (mounts::extras).

use nix::sched::CloneFlags;

use crate::error::Error;
use crate::mounts::DeviceSpec;
use crate::options::Extras;

/// The offsets of a time namespace, in seconds (time_namespaces(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeOffsets {
    pub monotonic: i64,
    pub boottime: i64,
}

/// What the options add to a run.
#[derive(Debug)]
pub(super) struct Planned {
    /// Namespaces they imply (--hostname: uts).
    pub(super) namespaces: CloneFlags,
    /// They need a mount namespace (--emulate, --device).
    pub(super) mount: bool,
    pub(super) time: Option<TimeOffsets>,
    pub(super) hostname: Option<String>,
    /// binfmt_misc registrations (emulate.rs).
    pub(super) binfmt: Vec<String>,
    pub(super) devices: Vec<DeviceSpec>,
}

/// The host name's limit (HOST_NAME_MAX; sethostname(2) refuses more).
const HOST_NAME_MAX: usize = 64;

/// Check the options and decide what they add; looks up the emulators and the devices.
pub(super) fn plan(extras: &Extras) -> Result<Planned, Error> {
    let mut planned = Planned {
        namespaces: CloneFlags::empty(),
        mount: false,
        time: None,
        hostname: None,
        binfmt: Vec::new(),
        devices: Vec::new(),
    };
    if let Some(name) = &extras.hostname {
        if name.len() > HOST_NAME_MAX || name.contains('\0') {
            return Err(Error::usage(
                format!("--hostname={name}: longer than {HOST_NAME_MAX} bytes, or holds a NUL"),
                "give a name of at most 64 bytes",
            ));
        }
        planned.namespaces |= CloneFlags::CLONE_NEWUTS;
        planned.hostname = Some(name.clone());
    }
    if extras.time || extras.monotonic.is_some() || extras.boottime.is_some() {
        planned.time = Some(TimeOffsets {
            monotonic: extras.monotonic.unwrap_or(0),
            boottime: extras.boottime.unwrap_or(0),
        });
    }
    for (arch, interpreter) in crate::emulate::plan(&extras.emulate)? {
        // emulate::plan checked that the path can be registered.
        planned.binfmt.extend(arch.registration(&interpreter));
    }
    planned.devices = extras
        .devices
        .iter()
        .map(|d| crate::mounts::parse_device(d))
        .collect::<Result<_, _>>()?;
    planned.mount = !planned.binfmt.is_empty() || !planned.devices.is_empty();
    Ok(planned)
}

/// CLONE_NEWTIME (Linux 5.6), which nix does not name.
const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(nix::libc::CLONE_NEWTIME);

/// Make a time namespace with `offsets` and enter it. unshare(2) puts only the children of
/// this process in it, and its offsets can be written only until a process is in it
/// (time_namespaces(7)): so the offsets are written first (CLOCK_MONOTONIC is 1,
/// CLOCK_BOOTTIME 7), then this process enters it through /proc/self/ns/time_for_children, as
/// its children would, so that COMMAND is in it whether it is exec'd (older kernels do not
/// switch time namespaces on exec) or forked by an init, and a --join finds it there.
/// CAP_SYS_TIME over the run's user namespace, which owns the new time namespace, is what the
/// offsets need; entering needs this process to run alone (setns(2): EUSERS otherwise).
pub(super) fn enter_time_namespace(offsets: TimeOffsets) -> Result<(), Error> {
    let fail = |what: &'static str| move |errno| time_error(what, errno);
    nix::sched::unshare(CLONE_NEWTIME).map_err(fail("making a time namespace"))?;
    let text = format!("1 {} 0\n7 {} 0\n", offsets.monotonic, offsets.boottime);
    std::fs::write("/proc/self/timens_offsets", text)
        .map_err(|e| crate::sys::io_errno(&e))
        .map_err(fail("setting its clock offsets"))?;
    let ns = std::fs::File::open("/proc/self/ns/time_for_children")
        .map_err(|e| crate::sys::io_errno(&e))
        .map_err(fail("entering the time namespace"))?;
    nix::sched::setns(ns, CLONE_NEWTIME).map_err(fail("entering the time namespace"))
}

fn time_error(what: &'static str, errno: nix::Error) -> Error {
    let e = Error::sys(format!("--time: {what}"), errno);
    match errno {
        nix::Error::EINVAL => {
            e.with_hint("the kernel has no time namespaces (Linux 5.6 with CONFIG_TIME_NS)")
        }
        nix::Error::ERANGE => {
            e.with_hint("an offset takes a clock below 0 or past its limit: choose a smaller one")
        }
        _ => e,
    }
}

/// Set the host name of the run's uts namespace.
pub(super) fn set_hostname(name: &str) -> Result<(), Error> {
    nix::unistd::sethostname(name).map_err(|e| Error::sys(format!("--hostname={name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_option_adds() {
        let plan_of = |extras: Extras| plan(&extras).unwrap();
        let none = plan_of(Extras::default());
        assert_eq!(
            (none.namespaces, none.mount, none.time),
            (CloneFlags::empty(), false, None)
        );
        let named = plan_of(Extras {
            hostname: Some("box".into()),
            ..Default::default()
        });
        assert_eq!(named.namespaces, CloneFlags::CLONE_NEWUTS);
        assert_eq!(named.hostname.as_deref(), Some("box"));
        // (--time, --monotonic, --boottime) -> the offsets
        let rows = [
            ((true, None, None), Some((0, 0))),
            ((false, Some(-5), None), Some((-5, 0))),
            ((false, None, Some(86400)), Some((0, 86400))),
            ((false, None, None), None),
        ];
        for ((time, monotonic, boottime), want) in rows {
            let got = plan_of(Extras {
                time,
                monotonic,
                boottime,
                ..Default::default()
            });
            let want = want.map(|(monotonic, boottime)| TimeOffsets {
                monotonic,
                boottime,
            });
            assert_eq!(got.time, want, "{time} {monotonic:?} {boottime:?}");
        }
        let long = Extras {
            hostname: Some("x".repeat(65)),
            ..Default::default()
        };
        assert_eq!(plan(&long).unwrap_err().exit_code(), 125);
        let device = plan_of(Extras {
            devices: vec!["/dev/null:/dev/x/null".into()],
            ..Default::default()
        });
        assert!(device.mount);
        assert_eq!(device.devices[0].dst, std::path::Path::new("/dev/x/null"));
    }
}
