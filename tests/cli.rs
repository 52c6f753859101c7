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
