//! The crate's structure, as the README's "Hacking" section states it: every module is in its
//! table, a module uses only modules of its own layer or below, there is no cycle between
//! modules, no source file is longer than 600 lines, and no
//! test file with its own runner holds a `#[test]` that would never run. And a rule of the
//! tests' own: the executables they make are written by a child process
//! (tests/common/executables.rs).

#[path = "common/executables.rs"]
#[allow(dead_code)]
mod executables;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const TOP: &str = env!("CARGO_MANIFEST_DIR");
const LAYERS: [&str; 4] = ["core", "mechanism", "top", "main"];
const MAX_LINES: usize = 600;

/// The table of the README: module -> layer index.
fn readme_layers() -> BTreeMap<String, usize> {
    let readme = std::fs::read_to_string(Path::new(TOP).join("README.md")).unwrap();
    let section = readme
        .split("## Hacking")
        .nth(1)
        .expect("a Hacking section")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let layer = LAYERS.iter().position(|l| cells.get(1) == Some(l))?;
            let module = cells.get(2)?.trim_matches('`').to_string();
            Some((module, layer))
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each top-level module of the library and the modules its code (not its tests) uses.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(TOP).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let mut uses = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                group
                    .split('}')
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap())
                    .collect()
            } else {
                vec![
                    rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .next()
                        .unwrap(),
                ]
            };
            uses.extend(
                names
                    .into_iter()
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
            );
        }
        uses.remove(&top);
        graph.entry(top).or_default().extend(uses);
    }
    graph
}

#[test]
fn every_module_is_in_the_readme_and_uses_only_its_layer_or_below() {
    let layers = readme_layers();
    let graph = module_graph();
    let modules: BTreeSet<&String> = graph.keys().collect();
    let listed: BTreeSet<&String> = layers.keys().collect();
    assert_eq!(modules, listed, "the README's module table and src/ differ");
    for (module, uses) in &graph {
        for used in uses {
            assert!(
                layers[used] <= layers[module],
                "{module} ({}) uses {used} ({}), a higher layer",
                LAYERS[layers[module]],
                LAYERS[layers[used]]
            );
        }
    }
}

#[test]
fn no_module_cycle() {
    let graph = module_graph();
    // Depth-first search; a module met again while on the path closes a cycle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| *p == m) {
            panic!("a cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m);
        for used in graph.get(m).into_iter().flatten() {
            visit(used, graph, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let mut files = Vec::new();
    rust_files(&Path::new(TOP).join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{}: {n}", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

/// A test file with its own runner (`harness = false` in Cargo.toml) never runs a `#[test]`
/// function: libtest does not build one, and the function is dead code that looks like a
/// test. Such a file registers its tests in `common::tests!` instead.
#[test]
fn no_test_attribute_in_a_file_with_its_own_runner() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut own_runner = Vec::new();
    let mut name = None;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            name = None;
        }
        if let Some(value) = line.strip_prefix("name = ") {
            name = Some(value.trim_matches('"').to_string());
        }
        if line == "harness = false"
            && let Some(name) = &name
        {
            own_runner.push(name.clone());
        }
    }
    assert!(
        !own_runner.is_empty(),
        "no harness = false test found in Cargo.toml"
    );
    let offenders: Vec<String> = own_runner
        .iter()
        .filter(|name| {
            fs::read_to_string(root.join("tests").join(format!("{name}.rs")))
                .is_ok_and(|text| text.lines().any(|l| l.trim() == "#[test]"))
        })
        .cloned()
        .collect();
    assert!(
        offenders.is_empty(),
        "#[test] in a harness = false file never runs: {offenders:?}"
    );
}

/// Every `.rs` file of tests/ but the harness's own (tests/common), which holds the helpers,
/// and this one, which holds the rule.
fn test_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(Path::new(TOP).join("tests"))
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        if path.is_file()
            && path.extension().is_some_and(|e| e == "rs")
            && !path.ends_with("structure.rs")
        {
            files.push(path);
        }
    }
    files
}

/// Whether a line of a test makes a file executable itself: `set_permissions`, `from_mode`,
/// `fs::copy` (the copy keeps the source's mode), or an `OpenOptions` mode with an execute
/// bit.
fn makes_an_executable(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    let executable_mode = code.match_indices(".mode(0o").any(|(i, m)| {
        let digits: String = code[i + m.len()..]
            .chars()
            .take_while(|c| c.is_digit(8))
            .collect();
        u32::from_str_radix(&digits, 8).is_ok_and(|mode| mode & 0o111 != 0)
    });
    executable_mode
        || ["set_permissions(", "from_mode(", "fs::copy("]
            .iter()
            .any(|call| code.contains(call))
}

#[test]
fn tests_make_executables_only_through_the_harness() {
    // A file the test process wrote and then runs is busy (ETXTBSY) while a child that
    // another test thread forked meanwhile has not exec'd: World::new's copy of become-root
    // failed so under load (issue 26). common::write_executable, copy_executable and chmod.
    let mut found = Vec::new();
    for file in test_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if makes_an_executable(line) {
                let name = file.file_name().unwrap().to_string_lossy();
                found.push(format!("tests/{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "use common::write_executable, common::copy_executable or common::chmod:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rule_on_executables_sees_each_way_to_make_one() {
    for (line, makes) in [
        (
            "std::fs::set_permissions(&p, Permissions::from_mode(0o755)).unwrap();",
            true,
        ),
        (
            "fs::copy(&busybox, root.join(\"bin/busybox\")).unwrap();",
            true,
        ),
        ("let perm = std::fs::Permissions::from_mode(0o700);", true),
        ("OpenOptions::new().create(true).mode(0o755).open(&p)", true),
        (
            "OpenOptions::new().create(true).mode(0o644).open(&p)",
            false,
        ),
        ("common::write_executable(&path, script, 0o755);", false),
        ("std::fs::write(&path, text).unwrap();", false),
        ("// fs::copy( in a comment", false),
    ] {
        assert_eq!(makes_an_executable(line), makes, "{line}");
    }
}

#[test]
fn an_executable_written_while_other_threads_fork_runs_at_once() {
    // Two threads fork without pause, and each child holds whatever this process had open at
    // its fork for 2 ms before it execs (as a fork does under load): an executable this
    // process wrote itself would be busy. Written by common::write_executable, each runs.
    use std::os::unix::process::CommandExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = std::env::temp_dir().join(format!("become-root-etxtbsy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let forkers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut children = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let mut cmd = std::process::Command::new("true");
                    // SAFETY: the closure only sleeps (nanosleep(2) is async-signal-safe).
                    unsafe {
                        cmd.pre_exec(|| {
                            std::thread::sleep(std::time::Duration::from_millis(2));
                            Ok(())
                        })
                    };
                    children.extend(cmd.spawn());
                    if children.len() >= 32 {
                        children.drain(..).for_each(|mut c| drop(c.wait()));
                    }
                }
                children.into_iter().for_each(|mut c| drop(c.wait()));
            })
        })
        .collect();
    let mut failed = Vec::new();
    for i in 0..300 {
        let path = dir.join(format!("script-{i}"));
        executables::write_executable(&path, "#!/bin/sh\nexit 0\n", 0o755);
        match std::process::Command::new(&path).status() {
            Ok(status) if status.success() => {}
            other => failed.push(format!("{}: {other:?}", path.display())),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for forker in forkers {
        forker.join().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failed.is_empty(),
        "{} of 300 failed: {failed:?}",
        failed.len()
    );
}

/// The longest a function of src/ may be, in lines from `fn` to its closing brace.
const MAX_FN_LINES: usize = 80;

/// `text` with comments, string literals and character literals blanked out (newlines kept),
/// so that only the code's own braces are left to count.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, s: &str| {
        out.extend(s.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
    };
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let ident_before = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let end = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if let Some(comment) = rest.strip_prefix("/*") {
            comment.find("*/").map_or(rest.len(), |e| e + 4)
        } else if let Some(hashes) = (!ident_before).then(|| raw_string_hashes(rest)).flatten() {
            let open = rest.find('"').unwrap() + 1;
            let close = format!("\"{}", "#".repeat(hashes));
            rest[open..]
                .find(&close)
                .map_or(rest.len(), |e| open + e + close.len())
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() && rest.as_bytes()[j] != b'"' {
                j += if rest.as_bytes()[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(rest.len())
        } else if let Some(escape) = rest.strip_prefix("'\\") {
            escape.find('\'').map_or(rest.len(), |e| e + 3)
        } else if rest.starts_with('\'') && rest.chars().nth(2) == Some('\'') {
            rest.char_indices().nth(3).map_or(rest.len(), |(e, _)| e)
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
            continue;
        };
        blank(&mut out, &rest[..end]);
        i += end;
    }
    out
}

/// The number of `#` of a raw string literal that starts `s` (`r"`, `r#"`, `br"`...).
fn raw_string_hashes(s: &str) -> Option<usize> {
    let s = s.strip_prefix('b').unwrap_or(s).strip_prefix('r')?;
    let hashes = s.len() - s.trim_start_matches('#').len();
    s[hashes..].starts_with('"').then_some(hashes)
}

/// The name of the function a line of code declares, if it declares one.
fn declared_fn(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.next() {
        match word {
            "fn" => {
                let name = words.next()?;
                return name.split(['(', '<']).next();
            }
            w if w == "pub" || w.starts_with("pub(") => {}
            "const" | "async" | "unsafe" | "extern" | "\"C\"" => {}
            _ => return None,
        }
    }
    None
}

/// Every function of `text` longer than [`MAX_FN_LINES`] without a comment line saying
/// "long:" and why just above its `fn` (or above its attributes): `(line, name, length)`.
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let code = code_only(text);
    let lines: Vec<&str> = code.lines().collect();
    let raw: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(name) = declared_fn(line) else {
            continue;
        };
        // The body: from the first '{' after `fn` (a ';' first: a declaration without one)
        // to the brace that closes it.
        let mut depth = 0;
        let mut end = None;
        'lines: for (n, l) in lines.iter().enumerate().skip(at) {
            let from = if n == at { l.find("fn ").unwrap() } else { 0 };
            for c in l[from..].chars() {
                match c {
                    ';' if depth == 0 => break 'lines,
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(n);
                            break 'lines;
                        }
                    }
                    _ => {}
                }
            }
        }
        let Some(end) = end else { continue };
        let length = end - at + 1;
        // The reason: a comment line just above `fn`, or above its attributes.
        let above = raw[..at]
            .iter()
            .rev()
            .find(|l| !l.trim_start().starts_with("#["));
        let reason = above.is_some_and(|l| l.trim_start().starts_with("//") && l.contains("long:"));
        if length > MAX_FN_LINES && !reason {
            found.push((at + 1, name.to_string(), length));
        }
    }
    found
}

#[test]
fn no_function_is_longer_than_80_lines_without_a_reason() {
    let mut files = Vec::new();
    rust_files(&Path::new(TOP).join("src"), &mut files);
    files.sort();
    let mut long = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (line, name, length) in long_functions(&text) {
            let rel = file.strip_prefix(TOP).unwrap().display().to_string();
            long.push(format!("{rel}:{line}: {name}: {length} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "split into named steps, or say why on the line before `fn` (// long: REASON):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_function_length_rule_counts_what_it_should() {
    let body = |n: usize| "    let x = 1;\n".repeat(n);
    for (text, long) in [
        // 80 lines in all: the `fn` line, 78 of body, the closing brace.
        (format!("fn short() {{\n{}}}\n", body(78)), vec![]),
        (
            format!("pub(crate) fn long() {{\n{}}}\n", body(79)),
            vec![(1, "long".to_string(), 81)],
        ),
        (
            format!("// long: a table\nfn table() {{\n{}}}\n", body(90)),
            vec![],
        ),
        (
            format!("// long: a table\n#[test]\nfn table() {{\n{}}}\n", body(90)),
            vec![],
        ),
        // A reason further up is not this function's.
        (
            format!(
                "// long: a table\nlet x = 1;\nfn table() {{\n{}}}\n",
                body(90)
            ),
            vec![(3, "table".to_string(), 92)],
        ),
        // Braces in strings, characters and comments do not close the body.
        (
            format!(
                "fn tricky<T>() {{\n let a = \"}}\"; let b = '}}'; // }}\n let c = r#\"}}\"#;\n{}}}\n",
                body(80)
            ),
            vec![(1, "tricky".to_string(), 84)],
        ),
        ("trait T { fn declared(&self); }\n".to_string(), vec![]),
    ] {
        assert_eq!(long_functions(&text), long, "{text}");
    }
}
