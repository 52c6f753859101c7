//! The documentation is a test (issue 20, item 6): every console example of README.md and of
//! the EXAMPLES section of man/become-root.1 runs as written, as a user with the
//! distribution's login environment, and what it prints is compared with what the document
//! shows, as trycmd and snapbox do for the Rust CLIs that use them.
//!
//! An example is a fenced block of README.md, ```` ```console ```` (`$ ` command lines, each
//! followed by the output it prints) or ```` ```sh ```` (commands that must all succeed), or an
//! `.EX` block of the man page's EXAMPLES (written by tests/docs.rs). A block runs in one bash,
//! in a directory of its own, its commands one after another as typed, so a `cd`, a variable
//! or `echo $?` carries over. A command's output, standard output and error as a terminal
//! shows them, must match the lines below it, where a line `...` stands for any number of
//! lines and `[..]` for any text within a line (trycmd's wildcards), and the documented user
//! `alice` for the one who runs it. A console command must succeed unless the next one is
//! `echo $?`, which shows its status. What bash -c prints for a command a signal ended is
//! read as the interactive bash of a terminal prints it (`Killed`).
//!
//! Each example runs where the marker before it says, invisibly: `<!-- runs: vm -->` in
//! README.md, a roff comment `.\" runs: vm` in the man page, for the VM tier (tests/vm: what
//! needs systemd, cgroup controllers, a login session or a stock system's own ids, uid 1000
//! with 100000:65536 as useradd gives them). Unmarked, an example runs here, in the hermetic
//! harness (tests/common), as the test user with Debian 13's login umask (002) and a cgroup
//! of its own, become-root and subid on its PATH. A man page example marked `.\" runs: as in
//! README.md` is word for word one of README.md's and runs as that one. An sh block whose
//! first line is `# Not run by the tests: WHY` is not run, and says why where a reader sees
//! it. With `BECOME_ROOT_EXAMPLES=vm` (the VM tier's guest) the same binary runs the vm
//! examples as the user who started it, in that user's session, and only those.
// This file has a main of its own, not the tests! macro's.
#[allow(unused_macros, unused_imports)]
mod common;

use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Need, World};

/// The documents whose examples run, relative to the crate root (or `BECOME_ROOT_DOCS`).
const DOCS: [&str; 2] = ["README.md", "man/become-root.1"];

/// How long one example may take; building a Debian image with mmdebstrap takes longest.
const TIMEOUT: Duration = Duration::from_secs(900);

/// The user the documents show; whoever runs an example stands in for alice.
const DOCUMENTED_USER: &str = "alice";

/// What bash prints after each command of a console example, with its status.
const MARK: &str = "@@become-root-example-status@@";

/// PATH as Debian gives it to a user's login shell (/etc/profile), behind become-root's own
/// directory.
const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Style {
    /// `$ COMMAND` lines, each followed by its output.
    Console,
    /// A script whose commands must all succeed.
    Script,
}

#[derive(Clone, Debug, PartialEq)]
enum Runs {
    Harness,
    Vm,
    /// The VM tier, on that Debian release and later only (`runs: vm from Debian N`): what
    /// needs a later podman, say.
    VmFrom(u32),
    /// Word for word an example of that document, which runs.
    AsIn(&'static str),
    NotRun(String),
}

#[derive(Clone, Debug)]
struct Example {
    doc: &'static str,
    /// The line of the block's first line (its fence, or `.EX`), from 1.
    line: usize,
    style: Style,
    runs: Runs,
    lines: Vec<String>,
}

/// One command of a console example and the output the document shows for it.
#[derive(Debug, PartialEq)]
struct Step {
    command: String,
    output: Vec<String>,
}

impl Example {
    /// The trial's name: where it is, and how it starts.
    fn name(&self) -> String {
        let first = self
            .lines
            .iter()
            .map(|l| l.strip_prefix("$ ").unwrap_or(l))
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .unwrap_or_default();
        let first = first
            .split_once("  #")
            .map_or(first, |(command, _)| command);
        let first: String = first.chars().take(60).collect();
        let first = first.trim_end();
        format!("{}:{}: {first}", self.doc, self.line)
    }

    /// The example as `user` runs it: alice is `user`.
    fn as_run_by(&self, user: &str) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| l.replace(DOCUMENTED_USER, user))
            .collect()
    }

    /// The bash script that runs the example as `user`. A console example's commands are
    /// each followed by a line with [`MARK`] and their status, which the next command sees
    /// as `$?`.
    fn script(&self, user: &str) -> String {
        let lines = self.as_run_by(user);
        match self.style {
            Style::Script => format!("exec 2>&1\nset -ex\n{}\n", lines.join("\n")),
            Style::Console => {
                let mut script = String::from("exec 2>&1\n");
                for step in steps(&lines).expect("checked when parsed") {
                    script.push_str(&format!(
                        "{}\n__status=$?; printf '\\n{MARK} %d\\n' $__status; (exit $__status)\n",
                        step.command
                    ));
                }
                script
            }
        }
    }

    /// Whether the run of the example as `user`, which ended with `status` and printed
    /// `output`, is what the document shows.
    fn check(&self, user: &str, status: ExitStatus, output: &str) -> Result<(), String> {
        if self.style == Style::Script {
            return match status.success() {
                true => Ok(()),
                false => Err(format!(
                    "{}: {}; it printed:\n{output}",
                    self.name(),
                    how(status)
                )),
            };
        }
        let steps = steps(&self.as_run_by(user)).expect("checked when parsed");
        let mut rest = output;
        for (i, step) in steps.iter().enumerate() {
            let Some((printed, after)) = rest.split_once(&format!("\n{MARK} ")) else {
                return Err(format!(
                    "{}: `{}` never finished ({}); it printed:\n{rest}",
                    self.name(),
                    step.command,
                    how(status)
                ));
            };
            let (code, after) = after.split_once('\n').unwrap_or((after, ""));
            rest = after;
            let got: Vec<String> = match printed {
                "" => Vec::new(),
                _ => printed
                    .lines()
                    .map(|line| at_a_terminal(line.trim_end(), &step.command))
                    .collect(),
            };
            let got: Vec<&str> = got.iter().map(String::as_str).collect();
            let want: Vec<&str> = step.output.iter().map(|l| l.trim_end()).collect();
            let shown_next = steps.get(i + 1).is_some_and(|s| s.command == "echo $?");
            if !lines_match(&want, &got) || (code != "0" && !shown_next) {
                return Err(format!(
                    "{}: `{}` exited {code}{}, printing:\n{}\nThe document shows:\n{}",
                    self.name(),
                    step.command,
                    match code {
                        "0" => "",
                        _ => " (a status other than 0 is shown by `echo $?` next)",
                    },
                    indent(&got),
                    indent(&want)
                ));
            }
        }
        Ok(())
    }
}

/// A line as a terminal shows it. The shell reports a command that a signal ended: bash -c
/// as `bash: line 4: 681 Killed    COMMAND`, the interactive bash of a terminal, where a user
/// types the example, as `Killed`.
fn at_a_terminal(line: &str, command: &str) -> String {
    let report = || {
        let rest = line.strip_prefix("bash: line ")?;
        let (number, rest) = rest.split_once(": ")?;
        let rest = rest.trim_start();
        let pid_ends = rest
            .find(|c: char| !c.is_ascii_digit())
            .filter(|&at| at > 0)?;
        let numbers = [number, &rest[..pid_ends]];
        let what = rest[pid_ends..].strip_suffix(command)?.trim();
        let all_digits = numbers
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_digit()));
        (all_digits && !what.is_empty()).then(|| what.to_string())
    };
    report().unwrap_or_else(|| line.to_string())
}

fn how(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (_, Some(signal)) => format!("killed by signal {signal}"),
        _ => format!("{status}"),
    }
}

fn indent(lines: &[&str]) -> String {
    match lines {
        [] => "    (nothing)".into(),
        _ => lines.iter().map(|l| format!("    {l}\n")).collect(),
    }
}

/// A console example's commands and their output.
fn steps(lines: &[String]) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    for line in lines {
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_string(),
                output: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.output.push(line.clone());
        } else {
            return Err(format!("output before the first `$ ` command: {line:?}"));
        }
    }
    match steps.is_empty() {
        true => Err("no `$ ` command".into()),
        false => Ok(steps),
    }
}

/// Whether `got` is what `want` shows: line by line, where a line `...` matches any number
/// of lines and `[..]` any text within a line.
fn lines_match(want: &[&str], got: &[&str]) -> bool {
    match want.split_first() {
        None => got.is_empty(),
        Some((&"...", rest)) => (0..=got.len()).any(|skip| lines_match(rest, &got[skip..])),
        Some((first, rest)) => {
            got.first().is_some_and(|line| line_matches(first, line))
                && lines_match(rest, &got[1..])
        }
    }
}

fn line_matches(want: &str, got: &str) -> bool {
    let mut parts = want.split("[..]");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = got.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Where a marker `runs: WHERE (WHY)` says, the reason being for the reader of the source.
fn runs(marker: &str) -> Result<Runs, String> {
    let place = marker.split_once(" (").map_or(marker, |(place, _)| place);
    match place.trim() {
        "vm" => Ok(Runs::Vm),
        place if place.starts_with("vm from Debian ") => place["vm from Debian ".len()..]
            .parse()
            .map(Runs::VmFrom)
            .map_err(|_| format!("runs: {place:?}: say vm from Debian N, N a release number")),
        "harness" => Ok(Runs::Harness),
        "as in README.md" => Ok(Runs::AsIn("README.md")),
        other => Err(format!(
            "runs: {other:?}: say vm, vm from Debian N, harness or as in README.md"
        )),
    }
}

/// An example of `doc` at `line` with `lines`, marked `marked` (None: unmarked).
fn example(
    doc: &'static str,
    line: usize,
    style: Style,
    marked: Option<Runs>,
    lines: Vec<String>,
) -> Result<Example, String> {
    let at = format!("{doc}:{line}");
    let not_run = lines
        .first()
        .and_then(|l| l.strip_prefix("# Not run by the tests: "))
        .map(|why| Runs::NotRun(why.trim_end_matches('.').to_string()));
    let runs = match (not_run, marked) {
        (Some(_), Some(_)) => return Err(format!("{at}: marked to run, and says it is not run")),
        (Some(not_run), None) => not_run,
        (None, marked) => marked.unwrap_or(Runs::Harness),
    };
    if style == Style::Console {
        steps(&lines).map_err(|e| format!("{at}: {e}"))?;
    }
    Ok(Example {
        doc,
        line,
        style,
        runs,
        lines,
    })
}

/// README.md's examples: its ```console and ```sh blocks. A block of another kind with `$ `
/// lines, or a marker that no such block follows, is an error: each would leave an example
/// untested.
fn markdown_examples(doc: &'static str, text: &str) -> Result<Vec<Example>, String> {
    let mut examples = Vec::new();
    let mut marked: Option<(usize, Runs)> = None;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((n, line)) = lines.next() {
        if let Some(marker) = line
            .trim()
            .strip_prefix("<!-- runs:")
            .and_then(|m| m.strip_suffix("-->"))
        {
            marked = Some((n, runs(marker).map_err(|e| format!("{doc}:{n}: {e}"))?));
            continue;
        }
        // A fence: three backticks and an info string without any (CommonMark), so that a
        // line that begins with inline code is none.
        let Some(lang) = line.strip_prefix("```").filter(|lang| !lang.contains('`')) else {
            if let Some((at, _)) = marked.as_ref().filter(|_| !line.trim().is_empty()) {
                return Err(format!(
                    "{doc}:{at}: no ```console or ```sh block follows this marker"
                ));
            }
            continue;
        };
        let body: Vec<String> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| !l.starts_with("```"))
            .map(str::to_string)
            .collect();
        let style = match lang.trim() {
            "console" => Style::Console,
            "sh" => Style::Script,
            _ if body.iter().any(|l| l.starts_with("$ ")) => {
                return Err(format!(
                    "{doc}:{n}: `$ ` commands in a ```{lang} block: make it ```console, and it runs"
                ));
            }
            _ => {
                if let Some((at, _)) = &marked {
                    return Err(format!(
                        "{doc}:{at}: the block this marker is for is ```{lang}"
                    ));
                }
                continue;
            }
        };
        let marker = marked.take().map(|(_, runs)| runs);
        examples.push(example(doc, n, style, marker, body)?);
    }
    Ok(examples)
}

/// The man page's examples: the `.EX` blocks of its EXAMPLES section, each after the roff
/// comment that says where it runs, if any.
fn man_examples(doc: &'static str, text: &str) -> Result<Vec<Example>, String> {
    let mut examples = Vec::new();
    let mut in_examples = false;
    let mut marked = None;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((n, line)) = lines.next() {
        if line.starts_with(".SH ") {
            in_examples = line == ".SH EXAMPLES";
        } else if !in_examples {
        } else if let Some(marker) = line.strip_prefix(".\\\" runs:") {
            marked = Some(runs(marker).map_err(|e| format!("{doc}:{n}: {e}"))?);
        } else if line == ".EX" {
            let body: Vec<String> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| *l != ".EE")
                .map(unroff)
                .collect();
            examples.push(example(doc, n, Style::Console, marked.take(), body)?);
        }
    }
    match examples.is_empty() {
        true => Err(format!("{doc}: no example in an EXAMPLES section")),
        false => Ok(examples),
    }
}

/// A line of roff as it reads: the escapes the roff crate writes (`\-`, `\\`, `\*(Aq`, `\&`),
/// and `\e`.
fn unroff(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at + 1..];
        let (text, len) = [
            ("*(Aq", "'"),
            ("-", "-"),
            ("\\", "\\"),
            ("e", "\\"),
            ("&", ""),
        ]
        .into_iter()
        .find(|(e, _)| escape.starts_with(e))
        .map_or(("\\", 0), |(e, text)| (text, e.len()));
        out.push_str(text);
        rest = &escape[len..];
    }
    out + rest
}

/// Where the documents are: `BECOME_ROOT_DOCS` (the VM tier shares them), else this tree.
fn docs_dir() -> PathBuf {
    std::env::var_os("BECOME_ROOT_DOCS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn all_examples(dir: &Path) -> Result<Vec<Example>, String> {
    let mut examples = Vec::new();
    for doc in DOCS {
        let text = fs::read_to_string(dir.join(doc)).map_err(|e| format!("{doc}: {e}"))?;
        examples.extend(match doc.ends_with(".md") {
            true => markdown_examples(doc, &text)?,
            false => man_examples(doc, &text)?,
        });
    }
    Ok(examples)
}

/// Run `cmd` in a process group of its own, killed after [`TIMEOUT`]: how it ended, and
/// what it printed (its standard error after its standard output).
fn run(mut cmd: Command) -> Result<(ExitStatus, String), String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let (out, timed_out) = match rx.recv_timeout(TIMEOUT) {
        Ok(out) => (out, false),
        Err(_) => {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::SIGKILL);
            (rx.recv().expect("the waiting thread sends"), true)
        }
    };
    let out = out.map_err(|e| format!("waiting for {cmd:?}: {e}"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    match timed_out {
        true => Err(format!(
            "still running after {TIMEOUT:?}; it printed:\n{text}"
        )),
        false => Ok((out.status, text)),
    }
}

/// Run `example` in a world of its own, as its test user with Debian 13's login umask and a
/// cgroup of its own, become-root and subid on its PATH; nothing of it may be left running
/// once its last command has returned.
fn in_the_harness(example: &Example) -> Result<(), String> {
    let mut w = World::new();
    w.login_umask(0o002);
    w.delegate_cgroup();
    let bin = w.dir.join("bin");
    fs::create_dir(&bin).map_err(|e| e.to_string())?;
    for name in ["become-root", "subid"] {
        std::os::unix::fs::symlink(w.bin(), bin.join(name)).map_err(|e| e.to_string())?;
    }
    w.env
        .push(("PATH".into(), format!("{}:{USER_PATH}", bin.display())));
    let (status, output) = run(w.command(&["bash", "-c", &example.script(&w.name)]))?;
    example.check(&w.name, status, &output)?;
    // Nothing left behind, the moment the last command returned.
    let left = w.leftover_processes();
    let cgroups = w.cgroups_below();
    match left.is_empty() && cgroups.is_empty() {
        true => Ok(()),
        false => Err(format!("left behind: {left:?} {cgroups:?}")),
    }
}

/// The Debian release this runs on (`VERSION_ID` of /etc/os-release), in the VM tier's guest.
fn debian_release() -> Option<u32> {
    let text = fs::read_to_string("/etc/os-release").ok()?;
    let id = text.lines().find_map(|l| l.strip_prefix("VERSION_ID="))?;
    id.trim_matches('"').parse().ok()
}

/// Run `example` as the user running this binary, in a new directory of theirs, which is
/// removed afterwards as the README says a tree built inside is.
fn as_this_user(example: &Example) -> Result<(), String> {
    let user = std::env::var("USER").map_err(|_| "USER is not set".to_string())?;
    let dir = std::env::temp_dir().join(format!(
        "become-root-example-{}-{}",
        std::process::id(),
        example.line
    ));
    fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &example.script(&user)]).current_dir(&dir);
    let result = run(cmd).and_then(|(status, output)| example.check(&user, status, &output));
    let _ = Command::new("become-root")
        .args(["rm", "-rf"])
        .arg(&dir)
        .status();
    result
}

/// The example of `doc` that `example` is word for word, which runs.
fn as_in(doc: &str, example: &Example, examples: &[Example]) -> Result<(), String> {
    match examples
        .iter()
        .find(|e| e.doc == doc && e.lines == example.lines)
    {
        Some(twin) if matches!(twin.runs, Runs::Harness | Runs::Vm | Runs::VmFrom(_)) => Ok(()),
        Some(twin) => Err(format!("{} is not run either", twin.name())),
        None => Err(format!(
            "{}: {doc} has no example word for word the same",
            example.name()
        )),
    }
}

fn main() -> ExitCode {
    let in_vm = std::env::var_os("BECOME_ROOT_EXAMPLES").is_some_and(|v| v == "vm");
    let mut trials = Vec::new();
    if !in_vm {
        trials.push(common::trial(
            "wildcards_match_as_trycmds_do",
            &[],
            wildcards_match_as_trycmds_do,
        ));
        trials.push(common::trial(
            "signal_reports_read_as_at_a_terminal",
            &[],
            signal_reports_read_as_at_a_terminal,
        ));
        trials.push(common::trial(
            "blocks_and_markers_are_read_so",
            &[],
            blocks_and_markers_are_read_so,
        ));
    }
    let examples = match all_examples(&docs_dir()) {
        Ok(examples) => examples,
        Err(e) => {
            trials.push(common::trial("the_documents_read", &[], move || Err(e)));
            return common::run_trials("examples", trials);
        }
    };
    // Each example is a trial only where it runs: in the VM tier's guest what is marked vm,
    // here the rest; one marked not run is none (its reason stands beside it in the
    // document, and blocks_and_markers_are_read_so checks that markers are read). So no
    // trial is ever skipped, in CI or anywhere.
    for example in examples.clone() {
        let name = example.name();
        trials.push(match (&example.runs, in_vm) {
            (Runs::NotRun(_), _)
            | (Runs::Vm | Runs::VmFrom(_), false)
            | (Runs::Harness | Runs::AsIn(_), true) => {
                continue;
            }
            (&Runs::VmFrom(release), true) if debian_release() < Some(release) => continue,
            (Runs::Vm | Runs::VmFrom(_), true) => {
                common::trial(name, &[], move || as_this_user(&example))
            }
            (&Runs::AsIn(doc), false) => {
                let all = examples.clone();
                common::trial(name, &[], move || as_in(doc, &example, &all))
            }
            (Runs::Harness, false) => common::trial(
                name,
                &[Need::Harness, Need::Cgroup2, Need::Tool("bash")],
                move || in_the_harness(&example),
            ),
        });
    }
    common::run_trials("examples", trials)
}

fn wildcards_match_as_trycmds_do() -> Result<(), String> {
    let rows: &[(&[&str], &[&str], bool)] = &[
        (&["a", "b"], &["a", "b"], true),
        (&["a", "b"], &["a"], false),
        (&["a"], &["a", "b"], false),
        (&[], &[], true),
        (&["..."], &[], true),
        (&["..."], &["x", "y"], true),
        (&["a", "...", "z"], &["a", "z"], true),
        (&["a", "...", "z"], &["a", "b", "c", "z"], true),
        (&["a", "...", "z"], &["a", "b", "c"], false),
        (
            &["port [..] -> 80/tcp"],
            &["port 127.0.0.1:41234 -> 80/tcp"],
            true,
        ),
        (&["port [..] -> 80/tcp"], &["port 1 -> 81/tcp"], false),
        (&["[..]"], &[""], true),
        (&["a[..]b[..]c"], &["a-b-c"], true),
        (&["a[..]b[..]c"], &["a-c-b"], false),
        (&["x[..]x"], &["x"], false),
    ];
    for (want, got, matches) in rows {
        if lines_match(want, got) != *matches {
            return Err(format!("{want:?} against {got:?}: want {matches}"));
        }
    }
    Ok(())
}

fn signal_reports_read_as_at_a_terminal() -> Result<(), String> {
    let cmd = "become-root --memory=64M python3 -c 'b = bytearray(200 << 20)'";
    let rows = [
        (
            format!("bash: line 4:   681 Killed                  {cmd}"),
            "Killed",
        ),
        (
            format!("bash: line 12: 7 Segmentation fault (core dumped) {cmd}"),
            "Segmentation fault (core dumped)",
        ),
        (format!("bash: line 4: x Killed {cmd}"), "unchanged"),
        (
            "bash: line 4:   681 Killed   other".to_string(),
            "unchanged",
        ),
        ("Killed".to_string(), "Killed"),
    ];
    for (line, want) in rows {
        let want = if want == "unchanged" {
            line.as_str()
        } else {
            want
        };
        let got = at_a_terminal(&line, cmd);
        if got != want {
            return Err(format!("{line:?}: got {got:?}, want {want:?}"));
        }
    }
    Ok(())
}

fn blocks_and_markers_are_read_so() -> Result<(), String> {
    let readme = "text\n\n```console\n$ a\nout\n$ b\n```\n<!-- runs: vm -->\n```sh\nc\n```\n\
                  ```sh\n# Not run by the tests: it needs root.\nsudo d\n```\n```make\nx:\n```\n\
                  <!-- runs: vm from Debian 12 (pods) -->\n```sh\ne\n```\n";
    let examples = markdown_examples("R", readme)?;
    let got: Vec<(usize, Style, Runs, usize)> = examples
        .iter()
        .map(|e| (e.line, e.style, e.runs.clone(), e.lines.len()))
        .collect();
    let want = vec![
        (3, Style::Console, Runs::Harness, 3),
        (9, Style::Script, Runs::Vm, 1),
        (12, Style::Script, Runs::NotRun("it needs root".into()), 2),
        (20, Style::Script, Runs::VmFrom(12), 1),
    ];
    if got != want {
        return Err(format!("read {got:?}, want {want:?}"));
    }
    let steps = steps(&examples[0].lines)?;
    if steps[0].output != ["out"] || !steps[1].output.is_empty() {
        return Err(format!("steps: {steps:?}"));
    }
    // Each of these would leave an example untested, or run it where it cannot.
    for (bad, why) in [
        ("```\n$ a\n```\n", "`$ ` in a block that is not console"),
        ("<!-- runs: vm -->\ntext\n", "a marker with no block"),
        (
            "<!-- runs: vm -->\n```make\nx:\n```\n",
            "a marker on a make block",
        ),
        ("<!-- runs: moon -->\n```sh\nx\n```\n", "an unknown place"),
        (
            "<!-- runs: vm from Debian x -->\n```sh\nx\n```\n",
            "a release not a number",
        ),
        ("```console\nout\n$ a\n```\n", "output before a command"),
        (
            "<!-- runs: vm -->\n```sh\n# Not run by the tests: x\n```\n",
            "both",
        ),
    ] {
        if markdown_examples("R", bad).is_ok() {
            return Err(format!("accepted {why}: {bad:?}"));
        }
    }
    let man = ".SH OTHER\n.EX\n$ no\n.EE\n.SH EXAMPLES\n.PP\nText.\n.\\\" runs: vm\n.EX\n\
               $ become\\-root sh \\-c \\*(Aqecho \\\\\\-\\*(Aq\n\\&.x\n.EE\n.SH \"SEE ALSO\"\n";
    let examples = man_examples("M", man)?;
    let want = ["$ become-root sh -c 'echo \\-'", ".x"];
    match examples.as_slice() {
        [e] if e.runs == Runs::Vm && e.line == 9 && e.lines == want => Ok(()),
        other => Err(format!("read {other:?}")),
    }
}
