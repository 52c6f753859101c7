//! Identity inside: --cap-add, --cap-drop, --uid, --gid, --no-new-privs, read back from
//! /proc/self/status of COMMAND, through the hermetic harness.

mod common;

use common::World;

common::tests! {
    [Harness]
        drop_all_then_add_one_leaves_exactly_that_one_in_every_set,
        a_dropped_capability_is_really_gone,
        no_new_privs_is_set,
        identity_errors,
        info_fd_must_be_open,
        supplementary_groups_are_kept_by_default_and_dropped_with_drop_groups,
        drop_groups_where_setgroups_is_denied_is_an_error;
    [Harness, Tool("python3")] another_uid_gets_only_added_capabilities_as_ambient;
    [Harness, Tool("python3"), Tool("slirp4netns")] info_fd_reports_the_setup_and_the_ending;
    [Harness, Tool("fuse-overlayfs")] verbose_says_what_was_chosen;
}

/// The capability sets and ids of COMMAND, as /proc/self/status shows them.
fn status(w: &World, args: &[&str]) -> std::collections::HashMap<String, String> {
    let mut argv = args.to_vec();
    argv.extend([
        "grep",
        "-E",
        "^(Cap|Uid|Gid|Groups|NoNewPrivs)",
        "/proc/self/status",
    ]);
    let out = w.run(&argv);
    out.ok()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

fn bits(caps: &[u32]) -> String {
    format!("{:016x}", caps.iter().fold(0u64, |acc, c| acc | (1 << c)))
}

const NET_BIND_SERVICE: u32 = 10;
const NET_ADMIN: u32 = 12;

fn drop_all_then_add_one_leaves_exactly_that_one_in_every_set() {
    let w = World::new();
    for mode in [&[][..], &["--pid"][..]] {
        let mut args = mode.to_vec();
        args.extend(["--cap-drop=ALL", "--cap-add=net_admin"]);
        let s = status(&w, &args);
        let want = bits(&[NET_ADMIN]);
        for set in ["CapEff", "CapPrm", "CapBnd", "CapInh"] {
            assert_eq!(s[set], want, "{mode:?} {set}: {s:?}");
        }
        assert_eq!(s["CapAmb"], bits(&[]), "root needs no ambient set");
        assert_eq!(s["Uid"], "0 0 0 0");
    }
}

fn a_dropped_capability_is_really_gone() {
    let w = World::new();
    let f = w.home().join("f");
    let cmd = format!("touch {0} && chown 1000 {0} && echo chowned", f.display());
    let out = w.run(&["sh", "-c", &cmd]);
    assert_eq!(out.ok(), "chowned\n");
    let out = w.run(&["--cap-drop=chown", "sh", "-c", &cmd]);
    assert!(!out.status.success(), "{out:#?}");
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
}

fn another_uid_gets_only_added_capabilities_as_ambient() {
    let w = World::new();
    let s = status(
        &w,
        &["--uid=1000", "--gid=1000", "--cap-add=NET_BIND_SERVICE"],
    );
    assert_eq!(s["Uid"], "1000 1000 1000 1000", "{s:?}");
    assert_eq!(s["Gid"], "1000 1000 1000 1000", "{s:?}");
    assert_eq!(
        s["Groups"], "1000",
        "supplementary groups left behind: {s:?}"
    );
    let want = bits(&[NET_BIND_SERVICE]);
    for set in ["CapEff", "CapPrm", "CapAmb", "CapBnd"] {
        assert_eq!(s[set], want, "{set}: {s:?}");
    }
    let s = status(&w, &["--uid=1000"]);
    assert_eq!(s["CapEff"], bits(&[]), "no capability unless added: {s:?}");
    assert_eq!(s["CapBnd"], bits(&[]), "{s:?}");
    // the added capability works: bind a port below 1024 as uid 1000
    let out = w.run(&[
        "-n",
        "--uid=1000",
        "--cap-add=net_bind_service",
        "python3",
        "-c",
        "import socket; socket.socket().bind(('127.0.0.1', 80)); print('bound')",
    ]);
    assert_eq!(out.ok(), "bound\n");
}

fn no_new_privs_is_set() {
    let w = World::new();
    assert_eq!(status(&w, &[])["NoNewPrivs"], "0");
    assert_eq!(status(&w, &["--no-new-privs"])["NoNewPrivs"], "1");
}

fn identity_errors() {
    let w = World::new();
    let out = w.run(&["--cap-add=net_adm", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("unknown capability 'net_adm'"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("net_admin"),
        "lists the valid ones: {}",
        out.stderr
    );
    let out = w.run(&["--uid=70000", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("--uid=70000: not mapped"),
        "{}",
        out.stderr
    );
    let out = w.run(&["--map=single", "--gid=1", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("--gid=1: not mapped"), "{}", out.stderr);
}

// ---- --info-fd and --verbose ----------------------------------------------------------------

/// Run become-root with `args` and --info-fd=7 pointed at a file; return its JSON lines,
/// checked and summarized by python3's json module.
fn info(w: &World, args: &str) -> (common::Out, Vec<String>) {
    let file = w.home().join("info.json");
    let out = w.sh(&format!(
        "\"$BR\" --info-fd=7 {args} 7>{f}; s=$?; echo; echo status=$s; \
         python3 -c 'import json,sys; [print(json.dumps(json.loads(l), sort_keys=True)) for l in open(sys.argv[1])]' {f}",
        f = file.display()
    ));
    let lines = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("status="))
        .skip(1)
        .map(String::from)
        .collect();
    (out, lines)
}

fn info_fd_reports_the_setup_and_the_ending() {
    let mut w = World::new();
    // Session state goes in the world, not in a /tmp fallback that would outlive the test.
    let runtime = w.home().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    common::chmod(&runtime, 0o700);
    nix::unistd::chown(&runtime, Some(w.uid.into()), Some(w.gid.into())).unwrap();
    w.env
        .push(("XDG_RUNTIME_DIR".into(), runtime.display().to_string()));
    let (out, lines) = info(
        &w,
        "-n -p 0:8000 sh -c 'ls /proc/self/fd | tr \"\\n\" \" \"; exit 7'",
    );
    assert!(out.stdout.contains("status=7"), "{out:#?}");
    let fds: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(
        !fds.contains(&"7"),
        "the info fd never reaches COMMAND: {fds:?}"
    );
    assert_eq!(lines.len(), 2, "{out:#?}");
    let ready = &lines[0];
    assert!(ready.contains("\"event\": \"ready\""), "{ready}");
    assert!(
        ready.contains(&format!(
            "\"uid_map\": [[0, {}, 1], [1, {}, 65536]]",
            w.uid,
            w.sub_start()
        )),
        "{ready}"
    );
    assert!(ready.contains("\"mode\": \"none\""), "{ready}");
    assert!(ready.contains("\"ns_port\": 8000"), "{ready}");
    assert!(
        ready.contains("\"host\": \"127.0.0.1:"),
        "the chosen port: {ready}"
    );
    for kind in ["\"user\": ", "\"net\": "] {
        assert!(ready.contains(kind), "{kind}: {ready}");
    }
    assert!(ready.contains("\"pid\": "), "{ready}");
    assert_eq!(lines[1], "{\"event\": \"exited\", \"exit_status\": 7}");

    assert!(ready.contains("\"session\": null"), "{ready}");

    // A named run says its name and where its state lives.
    let (out, lines) = info(&w, "--name=info-test sh -c 'exit 0'");
    assert!(out.stdout.contains("status=0"), "{out:#?}");
    assert!(lines[0].contains("\"session\": \"info-test\""), "{lines:?}");
    let state = runtime.join("become-root");
    assert!(
        lines[0].contains(&format!("\"state_dir\": \"{}\"", state.display())),
        "{lines:?}"
    );

    let (out, lines) = info(&w, "--pid --net=slirp4netns sh -c 'kill -TERM $$'");
    assert!(out.stdout.contains("status=143"), "{out:#?}");
    assert!(
        lines[0].contains("\"address\": \"10.0.2.100\""),
        "{lines:?}"
    );
    assert!(lines[0].contains("\"pid\": "), "{lines:?}");
    assert_eq!(
        lines[1],
        "{\"event\": \"killed\", \"exit_status\": 143, \"signal\": 15, \"signal_name\": \"SIGTERM\"}"
    );
}

fn info_fd_must_be_open() {
    let w = World::new();
    let out = w.run(&["--info-fd=9", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr
            .contains("--info-fd=9: not an open file descriptor"),
        "{}",
        out.stderr
    );
}

fn verbose_says_what_was_chosen() {
    let w = World::new();
    let lower = w.home().join("lower");
    let target = w.home().join("target");
    std::fs::create_dir_all(&lower).unwrap();
    std::fs::create_dir_all(&target).unwrap();
    let out = w.run(&[
        "-v",
        &format!("--overlay={}:{}", lower.display(), target.display()),
        "true",
    ]);
    assert!(out.status.success(), "{out:#?}");
    assert!(
        out.stderr.contains(&format!(
            "uid map: 0 {} 1, 1 {} 65536",
            w.uid,
            w.sub_start()
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("native overlayfs"), "{}", out.stderr);
    let out = w.run(&[
        "-v",
        "--overlay-driver=fuse",
        &format!("--overlay={}:{}", lower.display(), target.display()),
        "true",
    ]);
    assert!(out.stderr.contains(": fuse-overlayfs"), "{}", out.stderr);
}

/// `id -G` inside, as a sorted list.
fn groups(out: &common::Out) -> Vec<u32> {
    let mut ids: Vec<u32> = out
        .ok()
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

fn supplementary_groups_are_kept_by_default_and_dropped_with_drop_groups() {
    let mut w = World::new();
    // One group the full map maps (the 10th subordinate gid is 10 inside), one it does not.
    w.groups = vec![w.sub_start() + 9, 100];
    assert_eq!(
        groups(&w.run(&["id", "-G"])),
        [0, 10, 65534],
        "kept, the unmapped one as nogroup"
    );
    assert_eq!(groups(&w.run(&["--drop-groups", "id", "-G"])), [0]);
    // Supervised too (a pid namespace: COMMAND is init's child), and in /proc/self/status.
    let out = w.run(&[
        "--drop-groups",
        "--pid",
        "grep",
        "^Groups:",
        "/proc/self/status",
    ]);
    assert_eq!(out.ok().split_whitespace().collect::<Vec<_>>(), ["Groups:"]);
    let out = w.sh(
        "\"$BR\" --verbose --drop-groups --info-fd=3 true 3>\"$HOME/info\" && cat \"$HOME/info\"",
    );
    assert!(
        out.ok().contains("\"supplementary_groups\":\"dropped\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("become-root: supplementary groups: dropped"),
        "{}",
        out.stderr
    );
    let out = w.sh("\"$BR\" --info-fd=3 true 3>\"$HOME/info\" && cat \"$HOME/info\"");
    assert!(
        out.ok().contains("\"supplementary_groups\":\"kept\""),
        "{}",
        out.stdout
    );
}

fn drop_groups_where_setgroups_is_denied_is_an_error() {
    let mut w = World::new();
    w.groups = vec![100];
    let denied = |out: &common::Out, what: &str| {
        assert_eq!(out.code(), Some(125), "{what}: {out:#?}");
        assert!(
            out.stderr.contains(
                "become-root: --drop-groups: setgroups(2) is denied in a user namespace that \
                 maps only your own gid"
            ),
            "{what}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("\nhint: map subordinate gids"),
            "{what}: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{what}: COMMAND never ran");
    };
    denied(
        &w.run(&["--map=single", "--drop-groups", "id", "-G"]),
        "--map=single",
    );
    // newgidmap denies setgroups itself when the gid map holds no subordinate gid.
    let own = format!("--map-groups=0:{}:1", w.gid);
    denied(
        &w.run(&[own.as_str(), "--drop-groups", "id", "-G"]),
        "own gid only",
    );
    // --map=auto's fallback to a single map (no subordinate gids).
    w.subgid = String::new();
    denied(&w.run(&["--drop-groups", "id", "-G"]), "auto's fallback");
    // Without --drop-groups the groups stay, as nogroup.
    assert_eq!(groups(&w.run(&["id", "-G"])), [0, 65534]);
}
