//! Property tests: the properties the fuzz targets in `fuzz/` check (written once, in
//! `properties/props.rs`), here over a bounded number of cases from a fixed-seed PRNG, so
//! that the normal suite on stable Rust checks them too. The committed seed corpus of every
//! fuzz target runs here as well.
//!
//! A failure names its input. `BECOME_ROOT_PROPERTY_CASES=N` runs N cases a property
//! instead of the default, and `BECOME_ROOT_PROPERTY_SEED=S` starts from another seed.

use std::path::Path;

use nix::libc;

#[path = "properties/props.rs"]
mod props;

use props::Source;

/// xorshift64* (Vigna): deterministic, and plenty for choosing test cases.
struct Rng(u64);

impl Source for Rng {
    fn byte(&mut self) -> u8 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Run `f` over `n` cases (or `BECOME_ROOT_PROPERTY_CASES`), each property from its own
/// seed so that adding one does not change the others' cases.
fn cases(property: &str, n: u64, mut f: impl FnMut(&mut Rng)) {
    let n = env_number("BECOME_ROOT_PROPERTY_CASES").unwrap_or(n);
    let base = env_number("BECOME_ROOT_PROPERTY_SEED").unwrap_or(0x5eed);
    let seed = property.bytes().fold(base, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = Rng(seed | 1);
    for _ in 0..n {
        f(&mut rng);
    }
}

#[test]
fn subid_files() {
    cases("subid files", 3000, |rng| {
        let text = props::soup(rng, props::subid::TOKENS, 40);
        let &(name, uid) = rng.pick(props::subid::CALLERS);
        props::subid::check_file(&text, name, uid);
    });
}

#[test]
fn subid_lines_read_back_however_spelled() {
    cases("subid lines", 3000, |rng| {
        let newline = rng.coin();
        let (owner, range, line) = props::subid::gen_line(rng, newline);
        props::subid::check_line(&owner, range, &line);
    });
}

#[test]
fn subid_numbers_read_as_glibc_strtoul_reads_them() {
    cases("subid numbers", 5000, |rng| {
        let field = props::soup(rng, props::subid::NUMBER_TOKENS, 5);
        props::subid::check_number(&field);
    });
}

#[test]
fn subid_audit_show_next_scan() {
    cases("subid audit", 1000, |rng| {
        let file = |rng: &mut Rng| props::soup(rng, props::audit::TOKENS, 30);
        let (subuid, subgid, passwd, group) = (file(rng), file(rng), file(rng), file(rng));
        props::audit::check(&subuid, &subgid, &passwd, &group);
        let s = rng.string(
            &['a', '"', '\\', '\n', '\u{1}', '\u{7f}', 'ä', '\u{2028}'],
            8,
        );
        props::audit::check_json_string(&s);
    });
}

#[test]
fn getsubids_output() {
    cases("getsubids", 3000, |rng| {
        let text = props::soup_str(rng, props::getsubids::TOKENS, 20);
        let name = *rng.pick(props::getsubids::NAMES);
        props::getsubids::check_text(&text, name);
        let (name, pairs) = props::getsubids::gen_output(rng);
        props::getsubids::check_rendered(&name, &pairs);
    });
}

#[test]
fn full_maps() {
    cases("full maps", 1000, |rng| {
        let (caller, subs) = props::idmap::gen_full(rng);
        props::idmap::check_full(caller, &subs);
    });
}

#[test]
fn map_modes_and_explicit_entries() {
    cases("map modes", 1000, |rng| {
        let (caller, subs) = props::idmap::gen_full(rng);
        props::idmap::check_modes(caller, &subs);
    });
    cases("explicit maps", 3000, |rng| {
        let (own, ranges, cut_at_ends, explicit) = props::idmap::gen_explicit(rng);
        let grants = become_root::idmap::Grants {
            own,
            ranges: &ranges,
            cut_at_ends,
        };
        props::idmap::check_explicit(&grants, &explicit);
    });
}

#[test]
fn proc_maps_and_extents() {
    cases("proc maps", 3000, |rng| {
        let text = props::soup_str(rng, props::idmap::PROC_TOKENS, 24);
        props::idmap::check_proc_text(&text);
        props::idmap::check_from_ranges(&props::idmap::gen_triples(rng));
    });
}

#[test]
fn publish_specs() {
    cases("publish specs", 3000, |rng| {
        props::ports::check_spec(&props::soup_str(rng, props::ports::TOKENS, 8));
        props::ports::check_publish(props::ports::gen_publish(rng));
        props::ports::check_all(&props::ports::gen_all(rng));
    });
}

#[test]
fn mount_specs_and_plans() {
    use become_root::cli::FsArg;
    cases("mount specs", 3000, |rng| {
        let text = props::soup_str(rng, props::mounts::TOKENS, 10);
        let arg = match rng.below(5) {
            0 => FsArg::Bind(text.clone()),
            1 => FsArg::RoBind(text.clone()),
            2 => FsArg::Tmpfs(text.clone()),
            3 => FsArg::CopyUp(text.clone()),
            _ => FsArg::Overlay(text.clone()),
        };
        props::mounts::check_arg(&arg);
        props::mounts::check_split_text(&text, *rng.pick(&[':', ',']));
        let kind = rng.byte();
        props::mounts::check_fields(kind, &props::mounts::gen_fields(rng));
        props::mounts::check_plan(&props::mounts::gen_options(rng));
    });
}

#[test]
fn session_records_and_names() {
    cases("session records", 3000, |rng| {
        props::session::check_text(&props::soup_str(rng, props::session::TOKENS, 16));
        props::session::check_record(&props::session::gen_record(rng));
        let name = rng.string(&['a', 'Z', '0', '9', '_', '.', '-', '/', ' ', 'ä'], 66);
        props::session::check_session_name(&name);
    });
}

#[test]
fn proc_stat() {
    cases("proc stat", 3000, |rng| {
        let (pid, comm, state, fields, start) = props::session::gen_stat(rng);
        props::session::check_stat(pid, &comm, state, &fields, start);
    });
}

#[test]
fn mountinfo() {
    cases("mountinfo", 3000, |rng| {
        props::mountinfo::check_mounts(&props::mountinfo::gen_mounts(rng));
        let text = rng.text(b"0123 /-:\\\n\t\xe9", 60);
        props::mountinfo::check_text(&text);
    });
}

#[test]
fn kernel_versions() {
    cases("kernel versions", 3000, |rng| {
        let (v, form, suffix) = props::kernel::gen_version(rng);
        props::kernel::check_version(v, form, &suffix);
        props::kernel::check_release(&rng.string(&['0', '1', '9', '.', '-', 'r', 'c'], 10));
    });
}

/// The fuzz targets' committed seeds, through the same checks.
#[test]
fn seed_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, check) in props::TARGETS {
        let dir = corpus.join(name);
        let seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!seeds.is_empty(), "{name} has no seeds");
        for seed in seeds {
            let data = std::fs::read(&seed).unwrap();
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(result.is_ok(), "{name}: seed {} fails", seed.display());
        }
    }
}

/// Every target in `props::TARGETS` is a cargo-fuzz target with a seed corpus, and nothing
/// else is.
#[test]
fn fuzz_targets_match_the_properties() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<String> = std::fs::read_dir(fuzz.join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = props::TARGETS
        .iter()
        .map(|(name, _)| format!("{name}.rs"))
        .collect();
    want.sort();
    assert_eq!(files, want, "fuzz/fuzz_targets/ and props::TARGETS");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    for (name, _) in props::TARGETS {
        let entry = format!("name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"");
        assert!(
            manifest.contains(&entry),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        let source = std::fs::read_to_string(fuzz.join(format!("fuzz_targets/{name}.rs"))).unwrap();
        let body = format!("run(\"{name}\", data)");
        assert!(
            source.contains(&body),
            "fuzz_targets/{name}.rs does not {body}"
        );
    }
}
