//! `become-root --check`: the readiness report on ready and unready setups, through the
//! hermetic harness (tests/common), plus its command line (no privileges needed).
//!
//! The exit-status rule under test: 0 when a command could run with the --map given (so a
//! missing subordinate range FAILs its line but exits 0 under --map=auto, which falls back to
//! the single mapping), 1 when it could not (no user namespace; --map=full without ranges).

mod common;

use common::{BIN, Out, World};

common::tests! {
    [] check_takes_no_command, help_states_the_exit_status_rule;
    [Harness]
        ready_setup_is_ok_and_leaves_nothing_behind,
        overlay_verdict_matches_what_unshare_can_mount,
        missing_subid_entry_fails_its_line_but_single_mapping_still_works,
        numeric_owner_counts_as_the_caller,
        malformed_lines_of_the_caller_are_reported,
        unequal_subuid_and_subgid_warn,
        newuidmap_without_set_user_id_fails_with_the_chmod_hint,
        newuidmap_on_a_nosuid_mount_fails,
        set_user_id_newuidmap_from_newuidmap_variable_is_ok,
        no_new_privs_fails,
        unusable_tun_device_warns,
        unusable_fuse_device_warns,
        missing_programs_warn_naming_their_packages,
        helper_variables_are_reported_as_used_or_unusable;
    [Root, Tool("unshare")] max_user_namespaces_zero_fails_and_exits_1;
}

/// Every line the report prints, in order, by what it names.
const ITEMS: &[&str] = &[
    "kernel",
    "new mount API (fsopen, fsmount, move_mount)",
    "pidfd_open",
    "close_range with CLOSE_RANGE_CLOEXEC",
    "mount_setattr with AT_RECURSIVE",
    "user namespaces",
    "newuidmap",
    "newgidmap",
    "no_new_privs",
    "seccomp",
    "subuid",
    "subgid",
    "subuid/subgid",
    "id mapping",
    "map modes",
    "/proc",
    "overlayfs",
    "fuse-overlayfs",
    "/dev/fuse",
    "slirp4netns",
    "pasta",
    "/dev/net/tun",
    "--net=bypass",
    "--emulate",
    "cgroup",
];

/// The items that decide whether become-root works with the full mapping.
const CORE: &[&str] = &[
    "user namespaces",
    "newuidmap",
    "newgidmap",
    "no_new_privs",
    "subuid",
    "subgid",
    "subuid/subgid",
    "id mapping",
];

/// The line about `what`, split into its level and the rest ("found; fix: ...").
#[track_caller]
fn item<'a>(out: &'a Out, what: &str) -> (&'a str, &'a str) {
    let found: Vec<(&str, &str)> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let (level, rest) = l.split_once("  ")?;
            let rest = rest.trim_start().strip_prefix(what)?.strip_prefix(": ")?;
            Some((level.trim_end(), rest))
        })
        .collect();
    assert_eq!(found.len(), 1, "one line for {what:?} in\n{}", out.stdout);
    found[0]
}

#[track_caller]
fn assert_level(out: &Out, what: &str, level: &str, contains: &[&str]) {
    let (got, rest) = item(out, what);
    assert_eq!(got, level, "{what}: {rest}\n{}", out.stdout);
    for text in contains {
        assert!(rest.contains(text), "{what} line lacks {text:?}: {rest}");
    }
}

/// A world whose newuidmap is a copy on a tmpfs mounted with `options`, installed with `mode`.
fn world_with_newuidmap_copy(options: &str, mode: &str) -> (World, String) {
    let mut w = World::new();
    let d = w.dir.display().to_string();
    let newuidmap = common::which("newuidmap").unwrap();
    w.root_setup = format!(
        "mkdir -p {d}/helpers\nmount -t tmpfs -o {options},mode=755 tmpfs {d}/helpers\n\
         install -m {mode} {} {d}/helpers/newuidmap",
        newuidmap.display()
    );
    let copy = format!("{d}/helpers/newuidmap");
    w.env.push(("NEWUIDMAP".into(), copy.clone()));
    (w, copy)
}

// ---- command line --------------------------------------------------------------------

fn check_takes_no_command() {
    let out = common::run_with_timeout({
        let mut c = std::process::Command::new(BIN);
        c.args(["--check", "true"]);
        c
    });
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("'--check' cannot be used with"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
}

fn help_states_the_exit_status_rule() {
    let out = common::run_with_timeout({
        let mut c = std::process::Command::new(BIN);
        c.arg("--help");
        c
    });
    let help = out.ok().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("--check"), "{help}");
    assert!(
        help.contains("Exit status 0 when a command could run with the --map given"),
        "{help}"
    );
    assert!(help.contains("1 when it could not"), "{help}");
}

// ---- ready -----------------------------------------------------------------------------

fn ready_setup_is_ok_and_leaves_nothing_behind() {
    let mut w = World::new();
    // The probe's scratch tmpfs covers TMPDIR in a namespace of its own: nothing may
    // appear in the real directory.
    let tmp = w.dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    nix::unistd::chown(&tmp, Some(w.uid.into()), Some(w.gid.into())).unwrap();
    w.env.push(("TMPDIR".into(), tmp.display().to_string()));
    let start = std::time::Instant::now();
    let out = w.run(&["--check"]);
    let took = start.elapsed();
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_eq!(out.stderr, "");
    let whats: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| {
            let (level, rest) = l.split_once("  ").expect("level, two spaces, item");
            assert!(["ok", "warn", "FAIL"].contains(&level.trim_end()), "{l}");
            rest.trim_start().split(": ").next().unwrap()
        })
        .collect();
    assert_eq!(whats, ITEMS, "{}", out.stdout);
    for what in CORE {
        let (level, rest) = item(&out, what);
        assert_eq!(level, "ok", "{what}: {rest}");
        assert!(!rest.contains("; fix: "), "no fix on an ok line: {rest}");
    }
    // Linux 6.18 has seccomp user notification with ADDFD (issue 24).
    let (level, rest) = item(&out, "--net=bypass");
    assert_eq!(level, "ok", "--net=bypass: {rest}");
    // This machine's kernel has every facility; the VM tier sees the warnings of 5.10.
    let (release, _) = become_root::kernel::running();
    assert_level(&out, "kernel", "ok", &[&release, "supports 5.10 and later"]);
    for facility in become_root::kernel::FACILITIES {
        if become_root::kernel::probe(facility).is_some() {
            assert_level(&out, facility.name(), "ok", &["available (Linux "]);
        }
    }
    assert_level(
        &out,
        "subuid",
        "ok",
        &[&format!(
            "65536 ids for tuser in /etc/subuid: {}-{}",
            w.sub_start(),
            w.sub_start() + 65535
        )],
    );
    assert_level(
        &out,
        "id mapping",
        "ok",
        &["65537 uids and 65537 gids", "by newuidmap and newgidmap"],
    );
    // The harness binds usable device nodes.
    assert_level(&out, "/dev/net/tun", "ok", &[]);
    assert_level(&out, "/dev/fuse", "ok", &[]);
    assert_eq!(w.leftover_processes(), Vec::<String>::new());
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "scratch left in TMPDIR"
    );
    eprintln!("--check took {took:?} through the harness\n{}", out.stdout);
}

fn overlay_verdict_matches_what_unshare_can_mount() {
    let w = World::new();
    // The same test by util-linux's unshare, as the test user.
    let direct = w.sh(
        "unshare -Urm sh -c 'mount -t tmpfs tmpfs \"$HOME\" && cd \"$HOME\" && \
         mkdir l u w m && mount -t overlay overlay \
         -o lowerdir=l,upperdir=u,workdir=w,userxattr m' 2>&1",
    );
    let out = w.run(&["--check"]);
    let want = if direct.status.success() {
        "ok"
    } else {
        "warn"
    };
    assert_level(&out, "overlayfs", want, &[]);
    if want == "warn" {
        assert!(item(&out, "overlayfs").1.contains("fuse-overlayfs"));
    }
}

// ---- the mapping ---------------------------------------------------------------------

fn missing_subid_entry_fails_its_line_but_single_mapping_still_works() {
    let mut w = World::new();
    w.subuid = format!("other:{}:65536\n", w.sub_start());
    w.subgid = w.subuid.clone();
    let out = w.run(&["--check"]);
    assert_eq!(out.code(), Some(0), "--map=auto falls back: {out:#?}");
    for what in ["subuid", "subgid"] {
        assert_level(
            &out,
            what,
            "FAIL",
            &[
                "no entry for tuser in /etc/sub",
                "; fix: ",
                "usermod --add-subuids",
            ],
        );
    }
    assert!(!out.stdout.contains("subuid/subgid:"), "{}", out.stdout);
    assert_level(
        &out,
        "id mapping",
        "warn",
        &[&format!("only uid {} and gid {} (as 0)", w.uid, w.gid)],
    );
    assert_level(&out, "user namespaces", "ok", &[]);

    let out = w.run(&["--check", "--map=full"]);
    assert_eq!(out.code(), Some(1), "--map=full cannot work: {out:#?}");
    assert_level(
        &out,
        "id mapping",
        "FAIL",
        &["no entry for tuser in /etc/subuid"],
    );

    let out = w.run(&["--check", "--map=single"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_level(&out, "id mapping", "ok", &["--map=single"]);
}

fn numeric_owner_counts_as_the_caller() {
    let mut w = World::new();
    // A name of its own: newuidmap matches a numeric owner against getpwnam(name)'s uid, so
    // another account of the same name earlier in /etc/passwd would make it refuse.
    w.name = format!("num{}", w.uid);
    let spare = w.spare_range(1);
    w.subuid = format!("{}:{spare}:1000\n", w.uid);
    w.subgid = format!("{}:{spare}:1000\n", w.uid);
    let out = w.run(&["--check"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_level(
        &out,
        "subuid",
        "ok",
        &[
            &format!("1000 ids for {}", w.name),
            &format!("{spare}-{}", spare + 999),
        ],
    );
    assert_level(&out, "id mapping", "ok", &["1001 uids and 1001 gids"]);
}

fn malformed_lines_of_the_caller_are_reported() {
    let mut w = World::new();
    let (start, spare) = (w.sub_start(), w.spare_range(2));
    w.subuid = format!("tuser:{start}:65536\ntuser:{spare}:0\nother:1:0\n");
    w.subgid = format!("tuser:{start}:abc\n");
    let out = w.run(&["--check"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_level(
        &out,
        "subuid",
        "warn",
        &[
            "65536 ids",
            "ignoring /etc/subuid:2: count is 0",
            "fix: ask an administrator",
        ],
    );
    assert!(
        !item(&out, "subuid").1.contains(":3:"),
        "other users' lines are theirs"
    );
    assert_level(
        &out,
        "subgid",
        "FAIL",
        &["/etc/subgid:1: count is not a number"],
    );
    assert_level(&out, "id mapping", "warn", &["only uid"]);
}

fn unequal_subuid_and_subgid_warn() {
    let mut w = World::new();
    w.subgid = format!("tuser:{}:1000\n", w.sub_start());
    let out = w.run(&["--check"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_level(
        &out,
        "subuid/subgid",
        "warn",
        &["65536 subordinate uids but 1000 gids", "fix: "],
    );
    assert_level(&out, "id mapping", "ok", &["65537 uids and 1001 gids"]);
}

fn newuidmap_without_set_user_id_fails_with_the_chmod_hint() {
    let (w, copy) = world_with_newuidmap_copy("suid", "755");
    let out = w.run(&["--check"]);
    // A helper the caller named is never passed over for a single map, not even by
    // --map=auto: no command could run as asked.
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert_level(
        &out,
        "newuidmap",
        "FAIL",
        &[
            &format!("NEWUIDMAP={copy}: is neither set-user-ID root nor has file capabilities"),
            &format!("as root: chmod u+s {copy}"),
        ],
    );
    assert_level(&out, "newgidmap", "ok", &[]);
    assert_level(&out, "id mapping", "FAIL", &["--map=auto", &copy]);
}

fn newuidmap_on_a_nosuid_mount_fails() {
    let (w, copy) = world_with_newuidmap_copy("nosuid", "4755");
    let out = w.run(&["--check"]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert_level(
        &out,
        "newuidmap",
        "FAIL",
        &[
            &format!("NEWUIDMAP={copy}: is on a nosuid mount"),
            "fix: NEWUIDMAP must name a newuidmap or newgidmap on a filesystem mounted without \
             nosuid",
        ],
    );
}

fn set_user_id_newuidmap_from_newuidmap_variable_is_ok() {
    let (w, copy) = world_with_newuidmap_copy("suid", "4755");
    let out = w.run(&["--check"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_level(
        &out,
        "newuidmap",
        "ok",
        &[&format!("{copy}, set-user-ID root (from NEWUIDMAP)")],
    );
    assert_level(&out, "id mapping", "ok", &["by newuidmap and newgidmap"]);
}

fn no_new_privs_fails() {
    let w = World::new();
    let out = w.sh("exec setpriv --no-new-privs \"$BR\" --check");
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_level(
        &out,
        "no_new_privs",
        "FAIL",
        &["no_new_privs is set", "fix: "],
    );
    assert_level(&out, "newuidmap", "ok", &[]);
    assert_level(&out, "id mapping", "warn", &["only uid", "no_new_privs"]);
}

// ---- user namespaces -------------------------------------------------------------------

fn max_user_namespaces_zero_fails_and_exits_1() {
    // Lowered in a throwaway user namespace, so the machine's own value never changes.
    let script = format!("echo 0 > /proc/sys/user/max_user_namespaces && exec {BIN} --check");
    let out = common::run_with_timeout({
        let mut c = std::process::Command::new("unshare");
        c.args(["-U", "-r", "sh", "-c", &script]);
        c
    });
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert_level(
        &out,
        "user namespaces",
        "FAIL",
        &[
            "cannot create one: ENOSPC",
            "max_user_namespaces = 0",
            "fix: ",
        ],
    );
    assert_level(&out, "id mapping", "FAIL", &["not tried"]);
    assert_level(&out, "overlayfs", "warn", &["not tested"]);
}

// ---- optional features -----------------------------------------------------------------

fn unusable_tun_device_warns() {
    let mut w = World::new();
    let d = w.dir.display().to_string();
    w.root_setup =
        format!("mknod -m 600 {d}/tun600 c 10 200 && mount --bind {d}/tun600 /dev/net/tun");
    let out = w.run(&["--check"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_level(
        &out,
        "/dev/net/tun",
        "warn",
        &["Permission denied", "chmod 0666 /dev/net/tun"],
    );
    assert_level(&out, "/dev/fuse", "ok", &[]);
}

fn unusable_fuse_device_warns() {
    let mut w = World::new();
    let d = w.dir.display().to_string();
    w.root_setup =
        format!("mknod -m 600 {d}/fuse600 c 10 229 && mount --bind {d}/fuse600 /dev/fuse");
    let out = w.run(&["--check"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_level(
        &out,
        "/dev/fuse",
        "warn",
        &["Permission denied", "chmod 0666 /dev/fuse"],
    );
}

fn missing_programs_warn_naming_their_packages() {
    let mut w = World::new();
    // newuidmap and newgidmap are still found in /usr/bin, off PATH.
    w.env
        .push(("PATH".into(), w.dir.join("empty").display().to_string()));
    let out = w.run(&["--check"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    for (program, package) in [
        ("slirp4netns", "slirp4netns"),
        ("pasta", "passt"),
        ("fuse-overlayfs", "fuse-overlayfs"),
    ] {
        assert_level(
            &out,
            program,
            "warn",
            &["not found on PATH", &format!("apt install {package}")],
        );
    }
    for what in CORE {
        assert_eq!(item(&out, what).0, "ok", "{what}\n{}", out.stdout);
    }
}

fn helper_variables_are_reported_as_used_or_unusable() {
    let mut w = World::new();
    let script = w.dir.join("some-helper");
    common::write_executable(&script, "#!/bin/sh\n", 0o755);
    let script = script.display().to_string();
    w.env = vec![
        ("SLIRP4NETNS".into(), script.clone()),
        ("PASTA".into(), "/nonexistent/pasta".into()),
        ("FUSE_OVERLAYFS".into(), script.clone()),
    ];
    let out = w.run(&["--check"]);
    assert_eq!(
        out.code(),
        Some(0),
        "an optional helper decides nothing: {out:#?}"
    );
    assert_level(
        &out,
        "slirp4netns",
        "ok",
        &[&format!("{script} (from SLIRP4NETNS)")],
    );
    assert_level(
        &out,
        "fuse-overlayfs",
        "ok",
        &[&format!("{script} (from FUSE_OVERLAYFS)")],
    );
    assert_level(
        &out,
        "pasta",
        "warn",
        &[
            "PASTA=/nonexistent/pasta: no such file",
            "fix: set PASTA to the path",
        ],
    );
}
