//! Which options each mode of `become-root` takes: one table, [`TAKES`], checked once after
//! parsing by [`check`]. An option given to a mode that does not take it is a usage error
//! (status 125), never silently ignored (`--json` without `--list` ran COMMAND, `--check`
//! accepted and ignored `--mount`, `--memory`, `--name`). Requirements inside a mode
//! (`--detach` needs `--name`, `--ipv6` needs `--net`) stay with each option's definition.
#![forbid(unsafe_code)]

use clap::ArgMatches;
use clap::error::ErrorKind;
use clap::parser::ValueSource;

/// What a command line asks for, as chosen by its mode option (none: a new run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new run: no mode option.
    Run,
    /// `--check`.
    Check,
    /// `--list`.
    List,
    /// `--stop=NAME`.
    Stop,
    /// `--join=NAME|PID`, with or without `--publish`/`--unpublish`.
    Join,
    /// `--logs=NAME`.
    Logs,
}

use Mode::{Check, Join, List, Logs, Run, Stop};

impl Mode {
    /// Every mode, the run first, then the others in the order [`mode`] tries them.
    pub const ALL: [Mode; 6] = [Run, Check, Join, List, Logs, Stop];

    /// The id of the option that selects the mode (`None` for a run).
    pub fn selector(self) -> Option<&'static str> {
        match self {
            Run => None,
            Check => Some("check"),
            List => Some("list"),
            Stop => Some("stop"),
            Join => Some("join"),
            Logs => Some("logs"),
        }
    }
}

/// Output options: every mode takes them.
const EVERY: &[Mode] = &Mode::ALL;
/// What a new run takes and nothing else does.
const RUN: &[Mode] = &[Run];
/// The mapping and the network a run would set up, which `--check` reports on.
const RUN_CHECK: &[Mode] = &[Run, Check];
/// What a command started in a new run or in a session takes (its directory, its identity).
const RUN_JOIN: &[Mode] = &[Run, Join];

/// Every option of `become-root` (clap's id: the field of `Cli`) and the modes that take it.
/// A new option gets its row here; tests/cli.rs fails for an option without one, and checks
/// each row in every mode.
pub const TAKES: &[(&str, &[Mode])] = &[
    // Identity and id maps.
    ("map", RUN_CHECK),
    ("map_users", RUN_CHECK),
    ("map_groups", RUN_CHECK),
    ("subid_source", RUN_CHECK),
    // Namespaces and network.
    ("mount", RUN),
    ("propagation", RUN),
    ("net", RUN_CHECK),
    ("publish", RUN_JOIN),
    ("unpublish", &[Join]),
    ("port_driver", RUN),
    ("no_client_address", RUN),
    ("allow_host_loopback", RUN),
    ("mtu", RUN),
    ("cidr", RUN_CHECK),
    ("ipv6", RUN_CHECK),
    ("dns", RUN_CHECK),
    ("pid", RUN),
    ("uts", RUN),
    ("ipc", RUN),
    ("all", RUN),
    // Filesystem.
    ("bind", RUN),
    ("ro_bind", RUN),
    ("tmpfs", RUN),
    ("copy_up", RUN),
    ("overlay", RUN),
    ("overlay_driver", RUN),
    ("rootfs", RUN),
    ("sysfs", RUN),
    ("chdir", RUN_JOIN),
    // Identity inside.
    ("cap_add", RUN_JOIN),
    ("cap_drop", RUN_JOIN),
    ("uid", RUN_JOIN),
    ("gid", RUN_JOIN),
    ("drop_groups", RUN),
    ("no_new_privs", RUN_JOIN),
    // Cgroups and system images.
    ("as_pid_1", RUN),
    ("boot", RUN),
    ("notify_ready", RUN),
    ("cgroup", RUN),
    ("memory", RUN),
    ("memory_swap", RUN),
    ("cpus", RUN),
    ("pids_limit", RUN),
    // Sessions.
    ("info_fd", RUN),
    ("name", RUN),
    ("detach", RUN),
    ("containers", RUN),
    ("stop_timeout", &[Run, Stop]),
    ("join", &[Join]),
    ("list", &[List]),
    ("json", &[List]),
    ("stop", &[Stop]),
    ("logs", &[Logs]),
    ("follow", &[Logs]),
    ("check", &[Check]),
    // Output.
    ("verbose", EVERY),
    ("quiet", EVERY),
    ("command", RUN_JOIN),
];

/// The modes that take option `id`, `None` for an id the table lacks.
pub fn modes_of(id: &str) -> Option<&'static [Mode]> {
    TAKES
        .iter()
        .find(|(name, _)| *name == id)
        .map(|(_, modes)| *modes)
}

/// The mode a command line selects: the first mode option given, in [`Mode::ALL`]'s order
/// (that of `Cli::into_action`); a run without one.
pub fn mode(matches: &ArgMatches) -> Mode {
    Mode::ALL
        .into_iter()
        .find(|m| m.selector().is_some_and(|id| given(matches, id)))
        .unwrap_or(Run)
}

/// Whether option `id` was typed on the command line (a default value is not).
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches.try_contains_id(id).unwrap_or(false)
        && matches.value_source(id) == Some(ValueSource::CommandLine)
}

/// How the command line spells option `id`: `--map-users`, `COMMAND`.
pub fn spelling(id: &str) -> String {
    match id {
        "command" => "COMMAND".into(),
        _ => format!("--{}", id.replace('_', "-")),
    }
}

/// Refuse an option the command line's mode does not take, as clap refuses a conflict (the
/// caller reports it as a usage error, status 125); otherwise the mode.
pub fn check(matches: &ArgMatches) -> Result<Mode, clap::Error> {
    let mode = mode(matches);
    let refused = TAKES
        .iter()
        .find(|(id, modes)| !modes.contains(&mode) && given(matches, id));
    let Some((id, modes)) = refused else {
        return Ok(mode);
    };
    Err(clap::Error::raw(
        ErrorKind::ArgumentConflict,
        refusal(mode, id, modes),
    ))
}

/// The message for option `id` given in `mode`, which does not take it: the first line is the
/// why, the `tip: ` line becomes the hint.
fn refusal(mode: Mode, id: &str, modes: &[Mode]) -> String {
    let option = spelling(id);
    let Some(selector) = mode.selector().map(spelling) else {
        // A run: the option belongs to other modes only.
        let with: Vec<String> = modes
            .iter()
            .filter_map(|m| m.selector())
            .map(spelling)
            .collect();
        return format!(
            "{option}: only with {}\ntip: add {}, or leave out {option}\n",
            with.join(" or "),
            with.join(" or ")
        );
    };
    let takes: Vec<String> = TAKES
        .iter()
        .filter(|(other, modes)| modes.contains(&mode) && Some(*other) != mode.selector())
        .map(|(other, _)| spelling(other))
        .collect();
    format!(
        "'{selector}' cannot be used with '{option}'\ntip: {selector} takes only {}\n",
        takes.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::{Mode, TAKES, refusal};

    #[test]
    fn each_option_has_one_row_and_each_mode_its_selector() {
        let mut ids: Vec<&str> = TAKES.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "an option with two rows");
        for mode in Mode::ALL.into_iter().filter(|m| *m != Mode::Run) {
            let id = mode.selector().unwrap();
            assert_eq!(super::modes_of(id), Some(&[mode][..]), "{id}");
        }
    }

    #[test]
    fn refusals_name_the_option_and_what_the_mode_takes() {
        for (mode, id, modes, message) in [
            (
                Mode::Run,
                "json",
                &[Mode::List][..],
                "--json: only with --list\ntip: add --list, or leave out --json\n",
            ),
            (
                Mode::Logs,
                "memory",
                &[Mode::Run][..],
                "'--logs' cannot be used with '--memory'\n\
                 tip: --logs takes only --follow, --verbose, --quiet\n",
            ),
        ] {
            assert_eq!(refusal(mode, id, modes), message);
        }
    }
}
