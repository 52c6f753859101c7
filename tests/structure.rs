//! The crate's structure, as the README's "Hacking" section states it: every module is in its
//! table, a module uses only modules of its own layer or below, there is no cycle between
//! modules, no source file is longer than 600 lines, and no
//! test file with its own runner holds a `#[test]` that would never run.

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
