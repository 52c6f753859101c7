//! Which command lines run a container: podman, buildah or crun with a subcommand that starts
//! one (`podman run`, `buildah bud`, `crun create`...), as COMMAND or as a command of a shell's
//! `-c` script (`sh -c 'cd app && podman build .'`). Pure: words in, a program's name out.
//!
//! The hybrid-cgroup warning (cgroups.rs) is for these only: crun refuses the layout when it
//! makes a container's cgroup, and `podman images` or `podman import` never get that far.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// A program that runs containers, with the subcommands that do and its global options that
/// take a value as the next word (`podman --root DIR run`).
struct Runner {
    name: &'static str,
    /// A subcommand that runs a container, or that has subcommands which do (`pod`: `pod
    /// create` starts nothing yet but makes the infra container crun will start, as `pod
    /// start` and `pod clone` do; the list below says which).
    runs: &'static [(&'static str, &'static [&'static str])],
    value_options: &'static [&'static str],
}

/// Any subcommand of the group.
const ANY: &[&str] = &[];

const RUNNERS: [Runner; 3] = [
    Runner {
        name: "podman",
        runs: &[
            ("run", ANY),
            ("create", ANY),
            ("start", ANY),
            ("restart", ANY),
            ("build", ANY),
            ("pod", &["create", "start", "restart", "clone"]),
            ("container", &["run", "create", "start", "restart", "clone"]),
            ("image", &["build"]),
            ("play", &["kube"]),
            ("kube", &["play"]),
            ("system", &["service"]),
        ],
        value_options: &[
            "--cdi-spec-dir",
            "--cgroup-manager",
            "--conmon",
            "--config",
            "--connection",
            "-c",
            "--db-backend",
            "--events-backend",
            "--hooks-dir",
            "--identity",
            "--imagestore",
            "--log-level",
            "--module",
            "--network-cmd-path",
            "--network-config-dir",
            "--out",
            "--registries-conf",
            "--root",
            "--runroot",
            "--runtime",
            "--runtime-flag",
            "--ssh",
            "--storage-driver",
            "--storage-opt",
            "--tmpdir",
            "--url",
            "--volumepath",
        ],
    },
    Runner {
        name: "buildah",
        runs: &[
            ("bud", ANY),
            ("build", ANY),
            ("build-using-dockerfile", ANY),
            ("run", ANY),
        ],
        value_options: &[
            "--cgroup-manager",
            "--cpu-profile",
            "--default-mounts-file",
            "--log-level",
            "--memory-profile",
            "--registries-conf",
            "--registries-conf-dir",
            "--root",
            "--runroot",
            "--short-name-alias-conf",
            "--storage-driver",
            "--storage-opt",
            "--userns-gid-map",
            "--userns-gid-map-group",
            "--userns-uid-map",
            "--userns-uid-map-user",
        ],
    },
    Runner {
        name: "crun",
        runs: &[("run", ANY), ("create", ANY)],
        value_options: &[
            "--root",
            "--log",
            "--log-format",
            "--log-level",
            "--cgroup-manager",
        ],
    },
];

/// The shells whose `-c SCRIPT` is looked into.
const SHELLS: [&str; 6] = ["sh", "bash", "dash", "zsh", "ksh", "ash"];

/// podman, buildah or crun, when `command` runs a container: as COMMAND itself, or as a
/// command of the script of `sh -c SCRIPT` (any of `SHELLS`).
pub fn runs_containers(command: &[OsString]) -> Option<&'static str> {
    let (program, args) = command.split_first()?;
    let name = basename(program)?;
    if let Some(runner) = RUNNERS.iter().find(|r| r.name == name) {
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("")).collect();
        return runs(runner, &args).then_some(runner.name);
    }
    if SHELLS.contains(&name) {
        return script_of(args).and_then(script_runs_containers);
    }
    None
}

fn basename(program: &OsStr) -> Option<&str> {
    Path::new(program).file_name()?.to_str()
}

/// Whether `args` (the words after the program's name) ask `runner` to run a container: the
/// global options skipped, the subcommand (and its own subcommand) looked up.
fn runs(runner: &Runner, args: &[&str]) -> bool {
    let mut words = args.iter().copied();
    let Some(sub) = subcommand(runner, &mut words) else {
        return false;
    };
    match runner.runs.iter().find(|(name, _)| *name == sub) {
        Some((_, ANY)) => true,
        Some((_, subs)) => subcommand(runner, &mut words).is_some_and(|s| subs.contains(&s)),
        None => false,
    }
}

/// The next word that is not an option (nor an option's value).
fn subcommand<'a>(runner: &Runner, words: &mut impl Iterator<Item = &'a str>) -> Option<&'a str> {
    while let Some(word) = words.next() {
        if word == "--" {
            return words.next();
        }
        if !word.starts_with('-') {
            return Some(word);
        }
        if runner.value_options.contains(&word) {
            words.next();
        }
    }
    None
}

/// The script of `sh [OPTIONS] -c SCRIPT ...` (`-c` alone or among other letters, `-ec`).
fn script_of(args: &[OsString]) -> Option<&str> {
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let word = word.to_str()?;
        match word.strip_prefix('-') {
            Some(letters) if !letters.starts_with('-') && letters.contains('c') => {
                return words.next()?.to_str();
            }
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

/// Whether a command of `script` runs a container: the script cut into simple commands at
/// `;`, `&`, `|`, `(`, `)`, newlines, `{` and `}`, and each read as a command line (after
/// variable assignments and `exec`, `command`, `env` or `time` before the program).
fn script_runs_containers(script: &str) -> Option<&'static str> {
    let commands = script.split([';', '&', '|', '(', ')', '\n', '{', '}']);
    for command in commands {
        let words: Vec<&str> = command
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
            .collect();
        let start = words.iter().position(|w| {
            !w.contains('=') && !matches!(*w, "exec" | "command" | "env" | "time" | "then" | "do")
        });
        let Some(start) = start else { continue };
        let words: Vec<OsString> = words[start..].iter().map(OsString::from).collect();
        // Only the programs themselves: a shell within the script is not looked into again.
        if words
            .first()
            .and_then(|p| basename(p))
            .is_some_and(|name| RUNNERS.iter().any(|r| r.name == name))
            && let Some(name) = runs_containers(&words)
        {
            return Some(name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_command_lines_run_a_container() {
        let rows: &[(&[&str], Option<&str>)] = &[
            (&["podman", "run", "--rm", "img", "true"], Some("podman")),
            (&["/usr/bin/podman", "create", "img"], Some("podman")),
            (&["podman", "start", "web"], Some("podman")),
            (&["podman", "build", "-t", "app", "."], Some("podman")),
            (&["podman", "pod", "create", "--name", "p"], Some("podman")),
            (&["podman", "pod", "rm", "-f", "p"], None),
            (&["podman", "pod", "ps"], None),
            (&["podman", "container", "run", "img"], Some("podman")),
            (&["podman", "container", "ls"], None),
            (&["podman", "image", "build", "."], Some("podman")),
            (&["podman", "kube", "play", "x.yaml"], Some("podman")),
            (&["podman", "system", "service"], Some("podman")),
            (&["podman", "system", "migrate"], None),
            (&["podman", "images"], None),
            (&["podman", "import", "img.tar", "x"], None),
            (&["podman", "ps"], None),
            (&["podman", "exec", "web", "true"], None),
            (&["podman", "--root", "/s", "run", "img"], Some("podman")),
            (&["podman", "--root", "run", "images"], None),
            (
                &["podman", "--root=/s", "--log-level", "debug", "run"],
                Some("podman"),
            ),
            (&["podman", "--remote", "images"], None),
            (&["podman"], None),
            (&["buildah", "bud", "."], Some("buildah")),
            (&["buildah", "build", "."], Some("buildah")),
            (&["buildah", "run", "c", "true"], Some("buildah")),
            (&["buildah", "from", "scratch"], None),
            (&["buildah", "--storage-driver", "vfs", "images"], None),
            (&["crun", "run", "c"], Some("crun")),
            (&["crun", "--version"], None),
            (&["crun", "--root", "/r", "create", "c"], Some("crun")),
            (&["podman-remote", "run", "img"], None),
            (&["make", "run"], None),
            (&[], None),
        ];
        for (words, want) in rows {
            let command: Vec<OsString> = words.iter().map(OsString::from).collect();
            assert_eq!(runs_containers(&command), *want, "{words:?}");
        }
    }

    #[test]
    fn shell_scripts_that_run_a_container() {
        let rows: &[(&[&str], Option<&str>)] = &[
            (&["sh", "-c", "podman build -t app ."], Some("podman")),
            (&["bash", "-ec", "cd ctx && podman build ."], Some("podman")),
            (
                &["/bin/sh", "-c", "podman images; buildah bud ."],
                Some("buildah"),
            ),
            (
                &["sh", "-c", "X=1 exec podman run --rm img"],
                Some("podman"),
            ),
            (
                &["sh", "-c", "if true; then podman start web; fi"],
                Some("podman"),
            ),
            (&["sh", "-c", "(podman pod create)"], Some("podman")),
            (&["sh", "-c", "podman images -q | wc -l"], None),
            (&["sh", "-c", "podman save app >app.tar"], None),
            (&["sh", "-c", "echo podman run"], None),
            (&["sh", "-c", "'podman' 'run' img"], Some("podman")),
            (&["sh", "-x", "script.sh"], None),
            (&["sh", "script.sh", "-c", "podman run"], None),
            (&["sh"], None),
            (&["python3", "-c", "podman run"], None),
        ];
        for (words, want) in rows {
            let command: Vec<OsString> = words.iter().map(OsString::from).collect();
            assert_eq!(runs_containers(&command), *want, "{words:?}");
        }
    }
}
