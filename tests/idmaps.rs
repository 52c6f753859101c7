//! Id maps beyond the default (issue 12): `--map=keep-id`, `--map=subids`, `--map-users` and
//! `--map-groups`, read back from inside and from the host through the hermetic harness
//! (tests/common), with what `--verbose`, `--info-fd` and `--check` say of them.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{World, map_lines};

common::tests! {
    [Harness]
        keep_id_runs_the_command_as_the_caller,
        keep_id_keeps_the_owner_of_the_callers_files,
        keep_id_uid_0_is_root_and_chown_lands_on_granted_ids,
        keep_id_gives_only_added_capabilities_and_keeps_groups,
        keep_id_with_fewer_ids_than_the_callers_uid,
        subids_maps_host_ids_to_themselves,
        nesting_gets_identity_maps_of_the_ranges_it_has,
        explicit_maps_are_written_as_asked,
        explicit_map_out_of_the_grants_exits_125_naming_the_range,
        explicit_map_errors_are_reported_before_anything_runs,
        explicit_map_of_only_the_callers_ids_needs_no_helper,
        verbose_and_info_fd_say_which_maps_and_who_runs,
        check_tries_the_asked_maps_and_lists_the_possible_ones,
        a_subids_session_is_joined_as_the_caller;
}

/// Run `args` then `sh -c script`; the output's lines.
fn lines(w: &World, args: &[&str], script: &str) -> (Vec<String>, common::Out) {
    let mut argv = args.to_vec();
    argv.extend(["sh", "-c", script]);
    let out = w.run(&argv);
    (map_lines(&out.stdout), out)
}

const MAPS: &str = "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map";

/// The uid map and the gid map a run with `args` gets.
fn maps(w: &World, args: &[&str]) -> (Vec<String>, Vec<String>) {
    let (all, out) = lines(w, args, MAPS);
    assert!(out.status.success(), "{args:?}: {out:#?}");
    let at = all.iter().position(|l| l == "--").expect("both maps");
    (all[..at].to_vec(), all[at + 1..].to_vec())
}

fn keep_id_runs_the_command_as_the_caller() {
    let w = World::new();
    let out = w.run(&["--map=keep-id", "id", "-u"]);
    assert_eq!(out.ok(), format!("{}\n", w.uid), "{out:#?}");
    assert_eq!(out.stderr, "");
    let (uid, gid) = maps(&w, &["--map=keep-id"]);
    let s = w.sub_start();
    // The test user's uid is above its 65536 subordinate ids: they all fit below it.
    assert_eq!(uid, [format!("0 {s} 65536"), format!("{0} {0} 1", w.uid)]);
    assert_eq!(gid, [format!("0 {s} 65536"), format!("{0} {0} 1", w.gid)]);
    let (ids, out) = lines(&w, &["--map=keep-id"], "id -u; id -g; id -un");
    assert_eq!(
        ids,
        [w.uid.to_string(), w.gid.to_string(), w.name.clone()],
        "{out:#?}"
    );
}

fn keep_id_keeps_the_owner_of_the_callers_files() {
    let w = World::new();
    let file = w.home().join("notes");
    std::fs::write(&file, "mine\n").unwrap();
    nix::unistd::chown(&file, Some(w.uid.into()), Some(w.gid.into())).unwrap();
    let script = format!(
        "stat -c %u:%g {f} . \"$HOME\" && echo more >> {f} && touch new && stat -c %u:%g new",
        f = file.display()
    );
    let (got, out) = lines(&w, &["--map=keep-id"], &script);
    let own = format!("{}:{}", w.uid, w.gid);
    assert_eq!(got, [own.as_str(); 4], "{out:#?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine\nmore\n");
    let meta = std::fs::metadata(w.home().join("new")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (w.uid, w.gid),
        "made as the caller"
    );
    // The default map, for contrast: the same file is root's inside.
    let (got, _) = lines(&w, &[], &format!("stat -c %u {}", file.display()));
    assert_eq!(got, ["0"]);
}

fn keep_id_uid_0_is_root_and_chown_lands_on_granted_ids() {
    let w = World::new();
    let (f, g) = (w.home().join("f"), w.home().join("g"));
    let script = format!(
        "id -u; touch {f} {g} && chown 0:0 {f} && chown 1000:1000 {g} && stat -c %u . && \
         grep CapEff /proc/self/status",
        f = f.display(),
        g = g.display()
    );
    let (got, out) = lines(&w, &["--map=keep-id", "--uid=0", "--gid=0"], &script);
    assert_eq!(got[0], "0", "{out:#?}");
    assert_eq!(
        got[1],
        w.uid.to_string(),
        "the caller's directory is still the caller's"
    );
    assert!(
        !got[2].ends_with(" 0000000000000000"),
        "root has capabilities: {got:?}"
    );
    let s = w.sub_start();
    let owner = |p: &std::path::Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner(&f), (s, s), "inside 0 is the first subordinate id");
    assert_eq!(owner(&g), (s + 1000, s + 1000));
    let out = w.run(&["--map=keep-id", "--uid=0", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        map_lines(out.ok()),
        [format!("0 {s} 65536"), format!("{0} {0} 1", w.uid)],
        "the caller still maps to itself"
    );
}

/// The capability sets and groups of COMMAND, from /proc/self/status.
fn status(w: &World, args: &[&str]) -> std::collections::HashMap<String, String> {
    let (got, out) = lines(w, args, "grep -E '^(Cap|Groups|Uid|Gid)' /proc/self/status");
    assert!(out.status.success(), "{out:#?}");
    got.iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn keep_id_gives_only_added_capabilities_and_keeps_groups() {
    let w = World::new();
    let s = status(&w, &["--map=keep-id"]);
    let id = w.uid.to_string();
    assert_eq!(s["Uid"], [id.as_str(); 4].join(" "), "{s:?}");
    for set in ["CapEff", "CapPrm", "CapAmb", "CapBnd"] {
        assert_eq!(s[set], "0000000000000000", "{set}: {s:?}");
    }
    // The caller's supplementary groups are the caller's (none here: the harness clears
    // them); --uid makes COMMAND someone else, whose groups are its gid alone.
    assert_eq!(s["Groups"], "", "{s:?}");
    let s = status(&w, &["--map=keep-id", "--uid", &id, "--gid", &id]);
    assert_eq!(s["Groups"], id, "{s:?}");
    let s = status(&w, &["--map=keep-id", "--cap-add=net_bind_service"]);
    for set in ["CapEff", "CapPrm", "CapAmb"] {
        assert_eq!(s[set], "0000000000000400", "{set}: {s:?}");
    }
}

fn keep_id_with_fewer_ids_than_the_callers_uid() {
    let mut w = World::new();
    let (a, b) = (w.spare_range(1), w.spare_range(2));
    w.subuid = format!("tuser:{a}:1000\ntuser:{b}:500\n");
    w.subgid = w.subuid.clone();
    let (uid, _) = maps(&w, &["--map=keep-id"]);
    assert_eq!(
        uid,
        [
            format!("0 {a} 1000"),
            format!("1000 {b} 500"),
            format!("{0} {0} 1", w.uid)
        ]
    );
    let out = w.run(&["--map=keep-id", "--uid=1600", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains(&format!(
            "--uid=1600: not mapped in the new namespace (it maps 1501 ids: 0-1499, {})",
            w.uid
        )),
        "{}",
        out.stderr
    );
    // No subordinate ids: keep-id fails as --map=full does.
    w.subuid = String::new();
    let out = w.run(&["--map=keep-id", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("no entry for tuser in /etc/subuid"),
        "{}",
        out.stderr
    );
}

fn subids_maps_host_ids_to_themselves() {
    let w = World::new();
    let s = w.sub_start();
    let (uid, gid) = maps(&w, &["--map=subids"]);
    // By id: the test user's uid is below its subordinate ids.
    assert_eq!(uid, [format!("{0} {0} 1", w.uid), format!("{s} {s} 65536")]);
    assert_eq!(gid, [format!("{0} {0} 1", w.gid), format!("{s} {s} 65536")]);
    // A host id is the same number inside: chown to it, and both sides read it back.
    let f = w.home().join("f");
    let id = s + 5;
    let script = format!(
        "id -u; touch {f} && chown {id}:{id} {f} && stat -c %u:%g {f}",
        f = f.display()
    );
    let (got, out) = lines(&w, &["--map=subids", "--cap-add=chown"], &script);
    assert_eq!(got, [w.uid.to_string(), format!("{id}:{id}")], "{out:#?}");
    let meta = std::fs::metadata(&f).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (id, id));
}

fn nesting_gets_identity_maps_of_the_ranges_it_has() {
    let w = World::new();
    // Root in a full map, then subids: the ranges it has, as themselves.
    let out = w.sh("\"$BR\" \"$BR\" --map=subids sh -c 'cat /proc/self/uid_map; id -u'");
    assert_eq!(map_lines(out.ok()), ["0 0 1", "1 1 65536", "0"], "{out:#?}");
    // Root in a keep-id map, then subids and keep-id: its extents, as themselves.
    for inner in ["--map=subids", "--map=keep-id"] {
        let out = w.sh(&format!(
            "\"$BR\" --map=keep-id --uid=0 \"$BR\" {inner} cat /proc/self/uid_map"
        ));
        assert_eq!(
            map_lines(out.ok()),
            ["0 0 65536".to_string(), format!("{0} {0} 1", w.uid)],
            "{inner}: {out:#?}"
        );
    }
    // As the caller inside keep-id, a nested run cannot use newuidmap, and says why.
    let out = w.sh("\"$BR\" --map=keep-id \"$BR\" --map=full true");
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr
            .contains("newuidmap: its owner is not mapped in this user namespace")
            && out.stderr.contains("--uid=0"),
        "{}",
        out.stderr
    );
    // Explicit entries below a nested root: within what it has, cut where its extents end.
    let out =
        w.sh("\"$BR\" \"$BR\" --map-users=0:0:10 --map-users=1000:100:5 cat /proc/self/uid_map");
    assert_eq!(
        map_lines(out.ok()),
        ["0 0 1", "1 1 9", "1000 100 5"],
        "{out:#?}"
    );
    let out = w.sh("\"$BR\" \"$BR\" --map-users=0:70000:1 true");
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr
            .contains("--map-users=0:70000:1: uid 70000 is not mapped in this user namespace"),
        "{}",
        out.stderr
    );
}

fn explicit_maps_are_written_as_asked() {
    let w = World::new();
    let (u, s) = (w.uid, w.sub_start());
    // Exact uids; the gids are --map's (full).
    let (uid, gid) = maps(
        &w,
        &[
            &format!("--map-users=0:{u}:1"),
            &format!("--map-users=1:{s}:1000"),
        ],
    );
    assert_eq!(uid, [format!("0 {u} 1"), format!("1 {s} 1000")]);
    assert_eq!(gid, [format!("0 {} 1", w.gid), format!("1 {s} 65536")]);
    // The caller at 1000, auto around it; COMMAND is root (0 is mapped).
    let (got, out) = lines(
        &w,
        &[&format!("--map-users=1000:{u}:1"), "--map-users=auto"],
        "id -u; cat /proc/self/uid_map",
    );
    assert_eq!(
        got,
        [
            "0".to_string(),
            format!("0 {s} 1000"),
            format!("1000 {u} 1"),
            format!("1001 {} 64536", s + 1000)
        ],
        "{out:#?}"
    );
    // keep-id by hand is keep-id, with keep-id's gids beside it.
    let (uid, gid) = maps(
        &w,
        &[
            "--map=keep-id",
            &format!("--map-users={u}:{u}:1"),
            "--map-users=auto",
        ],
    );
    assert_eq!((uid, gid.clone()), maps(&w, &["--map=keep-id"]));
    assert_eq!(gid[1], format!("{0} {0} 1", w.gid));
}

fn explicit_map_out_of_the_grants_exits_125_naming_the_range() {
    let w = World::new();
    let s = w.sub_start();
    let out = w.run(&["--map-users=0:300000:10", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert_eq!(
        out.stderr.lines().next().unwrap_or_default(),
        format!(
            "become-root: id map: --map-users=0:300000:10: host uids 300000-300009 are neither \
             yours (uid {}) nor granted to you (/etc/subuid:1 grants {s}-{})",
            w.uid,
            s + 65535
        ),
        "{out:#?}"
    );
    assert!(
        out.stderr.contains("hint: map only your own id"),
        "{}",
        out.stderr
    );
    // One id past the end of the grant: the error names that one.
    let out = w.run(&[&format!("--map-groups=0:{}:2", s + 65535), "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains(&format!(
            "--map-groups=0:{}:2: host gid {} is neither yours (gid {})",
            s + 65535,
            s + 65536,
            w.gid
        )),
        "{}",
        out.stderr
    );
}

fn explicit_map_errors_are_reported_before_anything_runs() {
    let w = World::new();
    let (u, s) = (w.uid, w.sub_start());
    let marker = w.home().join("ran");
    let run = |args: &[&str]| {
        let mut argv = args.to_vec();
        let touch = format!("touch {}", marker.display());
        argv.extend(["sh", "-c", &touch]);
        let out = w.run(&argv);
        assert_eq!(out.code(), Some(125), "{args:?}: {out:#?}");
        assert!(!marker.exists(), "{args:?}: COMMAND ran");
        out.stderr
    };
    let err = run(&[
        &format!("--map-users=0:{u}:1"),
        &format!("--map-users=1:{u}:1"),
    ]);
    assert!(
        err.contains(&format!(
            "--map-users: entries 0:{u}:1 and 1:{u}:1 overlap on the outside side"
        )),
        "{err}"
    );
    let err = run(&[
        &format!("--map-users=0:{s}:10"),
        &format!("--map-users=5:{u}:1"),
    ]);
    assert!(err.contains("overlap on the inside side"), "{err}");
    let err = run(&[&format!("--map-users={u},0,1")]);
    assert!(err.contains("util-linux 2.38's OUTER,INNER,COUNT"), "{err}");
    assert!(err.contains("hint: write INNER:OUTER:COUNT"), "{err}");
    // 0 and the caller both left out: COMMAND would have no uid.
    let err = run(&[&format!("--map-users=1:{s}:10")]);
    assert!(err.contains("COMMAND has no uid inside"), "{err}");
}

fn explicit_map_of_only_the_callers_ids_needs_no_helper() {
    let mut w = World::new();
    // No subordinate ids and no newuidmap: the caller's own ids still map to themselves.
    w.subuid = String::new();
    w.subgid = String::new();
    w.env
        .push(("NEWUIDMAP".into(), "/nonexistent/newuidmap".into()));
    let (u, g) = (w.uid, w.gid);
    let (got, out) = lines(
        &w,
        &[
            &format!("--map-users={u}:{u}:1"),
            &format!("--map-groups={g}:{g}:1"),
        ],
        "id -u; id -g; cat /proc/self/uid_map /proc/self/setgroups",
    );
    assert_eq!(
        got,
        [
            u.to_string(),
            g.to_string(),
            format!("{u} {u} 1"),
            "deny".into()
        ],
        "as unshare -c: {out:#?}"
    );
}

fn verbose_and_info_fd_say_which_maps_and_who_runs() {
    let w = World::new();
    let out = w.run(&["-v", "--map=keep-id", "true"]);
    assert!(out.status.success(), "{out:#?}");
    assert!(
        out.stderr.contains(&format!(
            "become-root: maps: keep-id; COMMAND runs as uid {0} and gid {0} inside, with no \
             capabilities",
            w.uid
        )),
        "{}",
        out.stderr
    );
    let out = w.run(&["-v", &format!("--map-users=0:{}:1", w.uid), "true"]);
    assert!(
        out.stderr.contains("maps: explicit uids, full gids; COMMAND runs as uid 0 and gid 0 inside, with every capability"),
        "{}",
        out.stderr
    );
    let info = w.home().join("info.json");
    let out = w.sh(&format!(
        "\"$BR\" --info-fd=7 --map=keep-id true 7>{}",
        info.display()
    ));
    assert!(out.status.success(), "{out:#?}");
    let text = std::fs::read_to_string(&info).unwrap();
    let s = w.sub_start();
    for part in [
        format!("\"uid_map\":[[0,{s},65536],[{0},{0},1]]", w.uid),
        "\"map\":{\"uid\":\"keep-id\",\"gid\":\"keep-id\"}".to_string(),
        format!("\"runs_as\":{{\"uid\":{0},\"gid\":{0}}}", w.uid),
    ] {
        assert!(text.contains(&part), "{part} in {text}");
    }
}

fn check_tries_the_asked_maps_and_lists_the_possible_ones() {
    let w = World::new();
    let line = |out: &common::Out, what: &str| {
        out.stdout
            .lines()
            .find(|l| {
                l.split_once("  ")
                    .is_some_and(|(_, r)| r.trim_start().starts_with(&format!("{what}: ")))
            })
            .unwrap_or_else(|| panic!("no {what} line: {out:#?}"))
            .to_string()
    };
    let out = w.run(&["--check", "--map=keep-id"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let mapping = line(&out, "id mapping");
    let s = w.sub_start();
    for part in [
        "ok    id mapping: 65537 uids and 65537 gids mapped in a test namespace".to_string(),
        format!("--map=keep-id: uid map 0:{s}:65536 {0}:{0}:1", w.uid),
        format!("COMMAND runs as uid {0} and gid {0} inside", w.uid),
    ] {
        assert!(mapping.contains(&part), "{part} in {mapping}");
    }
    assert_eq!(
        line(&out, "map modes"),
        "ok    map modes: possible: full (65537 uids, 65537 gids), keep-id (65537 uids, 65537 \
         gids), subids (65537 uids, 65537 gids), single (1 uid, 1 gid)"
    );
    let out = w.run(&["--check", "--map-users=0:300000:1"]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(
        line(&out, "id mapping").starts_with(
            "FAIL  id mapping: --map-users=0:300000:1: host uid 300000 is neither yours"
        ),
        "{}",
        out.stdout
    );
    // No subordinate uids: only single is possible, and the line says why not the others.
    let mut w = World::new();
    w.subuid = String::new();
    let out = w.run(&["--check"]);
    assert_eq!(
        line(&out, "map modes"),
        "warn  map modes: possible: single (1 uid, 1 gid); not possible: full: no entry for \
         tuser in /etc/subuid; keep-id: no entry for tuser in /etc/subuid; subids: no entry for \
         tuser in /etc/subuid; fix: fix the FAIL lines above; 'subid show' prints the map each \
         mode makes"
    );
}

fn a_subids_session_is_joined_as_the_caller() {
    let mut w = World::new();
    let runtime = w.home().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    common::chmod(&runtime, 0o700);
    nix::unistd::chown(&runtime, Some(w.uid.into()), Some(w.gid.into())).unwrap();
    w.env
        .push(("XDG_RUNTIME_DIR".into(), runtime.display().to_string()));
    let out = w.sh(
        "\"$BR\" --name=ids --detach --map=subids && \"$BR\" --join=ids sh -c 'id -u; cat /proc/self/uid_map'; s=$?; \"$BR\" --stop=ids; exit $s",
    );
    let s = w.sub_start();
    assert_eq!(
        map_lines(out.ok()),
        [
            w.uid.to_string(),
            format!("{0} {0} 1", w.uid),
            format!("{s} {s} 65536")
        ],
        "{out:#?}"
    );
}
