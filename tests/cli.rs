//! Command-line tests that need no privileges and create no namespace: help, version, usage
//! errors and their exit status, the name the executable answers to.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_become-root");

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_version_exit_0() {
    let (code, out, err) = run(&["--help"]);
    assert_eq!(code, Some(0), "{err}");
    for needle in [
        "--map",
        "--subid-source",
        "--mount",
        "--net",
        "--pid",
        "--all",
        "--sysfs",
        "--drop-groups",
        "Exit status",
    ] {
        assert!(out.contains(needle), "--help mentions {needle}: {out}");
    }
    let (code, out, _) = run(&["-h"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Usage: become-root"), "{out}");
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, Some(0));
    assert_eq!(out, format!("become-root {}\n", env!("CARGO_PKG_VERSION")));
}

/// One row per kind of bad usage: all are exit 125 with the one error format and a hint.
#[test]
fn usage_errors_are_125_with_what_why_and_hint() {
    let rows: &[(&[&str], &str)] = &[
        (&["--no-such-flag"], "--no-such-flag"),
        (&["--map=partial", "true"], "partial"),
        (&["--map"], "--map"),
        (&["--net=tap", "true"], "tap"),
        (&["--subid-source=ldap", "true"], "ldap"),
        (&["--propagation=shared", "true"], "shared"),
        (&["-m", "--bogus", "true"], "--bogus"),
        (&["--join=x", "--sysfs"], "--sysfs"),
        (&["--stop=x", "--sysfs"], "--sysfs"),
        (&["--join=x", "--drop-groups"], "--drop-groups"),
        (&["--list", "--drop-groups"], "--drop-groups"),
        // Issue 23: each of these ran, the option ignored.
        (&["--json", "sh", "-c", "true"], "--json: only with --list"),
        (&["--follow", "true"], "--follow: only with --logs"),
        (
            &["--check", "--mount"],
            "'--check' cannot be used with '--mount'",
        ),
        (&["--check", "--memory=1g"], "--memory"),
        (&["--check", "--name=x"], "--name"),
        (&["--check", "--mtu=1500"], "--mtu"),
        (&["--stop=x", "--json"], "--json"),
        (
            &["--check", "true"],
            "'--check' cannot be used with 'COMMAND'",
        ),
    ];
    for (args, names) in rows {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(125), "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
        let mut lines = err.lines();
        let first = lines.next().unwrap_or_default();
        assert!(first.starts_with("become-root: usage: "), "{args:?}: {err}");
        assert!(first.contains(names), "{args:?} names the culprit: {err}");
        assert!(lines.any(|l| l.starts_with("hint: ")), "{args:?}: {err}");
    }
}

#[test]
fn net_mode_is_taken_only_with_equals() {
    // `-n none` would mean: mode none? No: `none` is the command. Check parsing directly.
    use become_root::cli::{Cli, NetMode};
    use clap::Parser;
    let cli = Cli::try_parse_from(["become-root", "-n", "bash"]).unwrap();
    assert_eq!(cli.run.net, Some(NetMode::None));
    assert_eq!(cli.run.command, ["bash"]);
    let cli = Cli::try_parse_from(["become-root", "--net=none", "bash"]).unwrap();
    assert_eq!(cli.run.net, Some(NetMode::None));
    let cli = Cli::try_parse_from(["become-root", "ls", "-n", "--pid"]).unwrap();
    assert_eq!(cli.run.net, None, "options after COMMAND belong to COMMAND");
    assert_eq!(cli.run.command, ["ls", "-n", "--pid"]);
    let cli = Cli::try_parse_from(["become-root", "--", "--pid"]).unwrap();
    assert!(!cli.run.pid);
    assert_eq!(cli.run.command, ["--pid"]);
}

#[test]
fn answers_to_any_name_but_its_siblings() {
    let dir = std::env::temp_dir().join(format!("become-root-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("br");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let out = Command::new(&link).arg("--version").output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("become-root {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// A value the parser of `arg` accepts (`None`: a flag, or --net, whose value is optional).
fn sample_value(arg: &clap::Arg) -> Option<String> {
    if !arg.get_action().takes_values() || arg.get_id() == "net" {
        return None;
    }
    if let Some(value) = arg.get_possible_values().first() {
        return Some(value.get_name().to_string());
    }
    Some(
        match arg.get_id().as_str() {
            "command" => "true",
            "mtu" => "1500",
            "memory" | "memory_swap" => "1g",
            "uid" | "gid" | "info_fd" | "stop_timeout" | "cpus" | "pids_limit" => "1",
            "publish" | "unpublish" => "8080:80",
            _ => "x",
        }
        .to_string(),
    )
}

/// Every option of the command line, in every mode: the mode table (src/cli/modes.rs) has a
/// row for it, and the check after parsing accepts it exactly in the modes its row names (the
/// usage rows above check that a command line goes through that check). Built from
/// clap's own list of arguments, so an option added without a row fails here.
#[test]
fn every_option_is_taken_exactly_by_the_modes_of_its_row() {
    use become_root::cli::Cli;
    use become_root::cli::modes::{Mode, modes_of, spelling};
    use clap::error::ErrorKind;
    // Without the requirements inside a mode (--ipv6 needs --net), which are not the
    // table's business and clap checks first.
    let command =
        Cli::command().mut_args(|a| a.requires(clap::builder::Resettable::<clap::Id>::Reset));
    let mut checked = 0;
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        let modes = modes_of(id)
            .unwrap_or_else(|| panic!("{id} has no row in the mode table (src/cli/modes.rs)"));
        let words: Vec<String> = match (arg.get_long(), sample_value(arg)) {
            (Some(long), Some(value)) => vec![format!("--{long}={value}")],
            (Some(long), None) => vec![format!("--{long}")],
            (None, value) => vec![value.expect("a positional takes a value")],
        };
        for mode in Mode::ALL {
            // A mode's own option, or one alone that selects its mode.
            let selects = Mode::ALL.iter().any(|m| m.selector() == Some(id));
            if mode.selector() == Some(id) || (mode == Mode::Run && selects) {
                continue;
            }
            let selector = match mode {
                Mode::Run => vec![],
                Mode::Check => vec!["--check".to_string()],
                Mode::List => vec!["--list".to_string()],
                Mode::Join => vec!["--join=x".to_string()],
                Mode::Logs => vec!["--logs=x".to_string()],
                Mode::Stop => vec!["--stop=x".to_string()],
            };
            let line: Vec<std::ffi::OsString> = std::iter::once("become-root".to_string())
                .chain(selector)
                .chain(words.iter().cloned())
                .map(Into::into)
                .collect();
            let result = command
                .clone()
                .try_get_matches_from(&line)
                .and_then(|matches| become_root::cli::modes::check(&matches));
            if let Err(e) = &result {
                assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{line:?}: {e}");
            }
            let refused = result.err();
            assert_eq!(
                refused.is_some(),
                !modes.contains(&mode),
                "{line:?}: {mode:?} takes {id}: {}",
                modes.contains(&mode)
            );
            if let Some(e) = &refused {
                assert!(
                    e.to_string().contains(&spelling(id)),
                    "{line:?}: the refusal names {}: {e}",
                    spelling(id)
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 250, "only {checked} option x mode cases");
}

#[test]
fn each_row_of_the_mode_table_names_an_option() {
    use become_root::cli::Cli;
    let command = Cli::command();
    for (id, _) in become_root::cli::modes::TAKES {
        assert!(
            command.get_arguments().any(|a| a.get_id() == *id),
            "the mode table names {id}, which is no option"
        );
    }
}

/// What each mode but a run takes, spelled out: a row of the table that gives a mode one more
/// option must change this too.
#[test]
fn the_other_modes_take_these_options() {
    use become_root::cli::modes::{Mode, TAKES};
    let takes = |mode: Mode| -> Vec<&str> {
        TAKES
            .iter()
            .filter(|(id, modes)| modes.contains(&mode) && mode.selector() != Some(*id))
            .map(|(id, _)| *id)
            .collect()
    };
    let output = ["verbose", "quiet"];
    let with_output =
        |ids: &[&'static str]| -> Vec<&'static str> { ids.iter().copied().chain(output).collect() };
    let mut rows = [
        (
            Mode::Check,
            with_output(&[
                "map",
                "map_users",
                "map_groups",
                "subid_source",
                "net",
                "cidr",
                "ipv6",
                "dns",
            ]),
        ),
        (
            Mode::Join,
            with_output(&[
                "publish",
                "unpublish",
                "chdir",
                "cap_add",
                "cap_drop",
                "uid",
                "gid",
                "no_new_privs",
                "command",
            ]),
        ),
        (Mode::List, with_output(&["json"])),
        (Mode::Logs, with_output(&["follow"])),
        (Mode::Stop, with_output(&["stop_timeout"])),
    ];
    for (mode, expected) in &mut rows {
        let mut got = takes(*mode);
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(&got, expected, "{mode:?}");
    }
}
