//! Namespace tests: become-root run as an unprivileged user through the hermetic harness
//! (tests/common). Each test builds its own world (test user, subid files) and throws it away.

mod common;

use common::{World, map_lines};

common::tests! {
    [Harness]
        single_range_is_mapped_whole,
        every_range_is_mapped_contiguously_including_numeric_entries,
        junk_lines_of_other_users_are_ignored,
        trailing_space_on_callers_line_is_reported,
        crlf_on_callers_line_is_reported_not_repaired,
        no_entry_auto_warns_and_maps_single_full_fails,
        range_overflowing_32_bits_is_rejected,
        missing_helper,
        helper_without_privilege_is_diagnosed,
        no_new_privs_is_diagnosed,
        newuidmap_refusal_is_reported_with_its_stderr,
        helper_on_a_nosuid_mount_is_diagnosed,
        non_utf8_arguments_pass_through,
        helpers_never_get_the_callers_descriptors,
        nested_passes_the_current_map_through,
        map_single_maps_only_the_caller,
        ids_are_zero_and_capabilities_full_inside,
        chown_lands_on_the_right_host_ids,
        each_namespace_flag_makes_exactly_its_namespace,
        mount_namespace_is_private_and_leaves_no_mount_on_the_host,
        pid_namespace_has_become_root_as_init_and_fresh_proc,
        exit_statuses_pass_through,
        death_by_signal_is_the_same_death,
        not_executable_is_126_not_found_is_127,
        usage_error_is_125,
        options_after_command_and_after_double_dash_pass_through,
        default_command_is_shell_then_bin_sh,
        stdin_and_environment_pass_through,
        file_descriptors_are_the_same_with_and_without,
        closed_standard_descriptors_are_dev_null,
        sigpipe_is_default_for_the_command,
        works_when_the_caller_ignores_sigchld_and_passes_that_on,
        fifty_parallel_runs,
        sigkill_to_exec_in_place_kills_the_command_like_any_process,
        refuses_to_run_setuid;
    [Harness, Tool("ip")] net_none_has_loopback_up_and_nothing_else;
    [Harness, Tool("ip")] sysfs_shows_the_namespaces_own_devices_and_leaves_the_host_alone;
    [Harness, Tool("ps")]
        pid_namespace_init_reaps_orphans,
        sigterm_and_sigkill_to_supervising_become_root_leave_nothing,
        a_world_starts_without_a_zombie_of_the_world_before;
    [Harness, Tool("getsubids")] getsubids_source_reads_the_same_ranges;
    [Harness, Tool("setcap")] refuses_to_run_with_file_capabilities;
    [Harness, Tool("make")]
        makefile_builds_a_tarball_with_root_and_user_owners,
        make_jobserver_reaches_the_command;
    [Harness, Tool("script")]
        ctrl_z_under_pid_stops_and_fg_resumes,
        terminal_and_job_control_under_script,
        ctrl_c_on_the_terminal_kills_the_command_once;
    [Root, Tool("unshare")] max_user_namespaces_zero_is_diagnosed;
    [Root] real_root_gets_the_identity_map;
}

fn world() -> World {
    World::new()
}

fn maps(w: &World, args: &[&str]) -> (Vec<String>, Vec<String>, common::Out) {
    let mut argv: Vec<&str> = args.to_vec();
    argv.extend([
        "sh",
        "-c",
        "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map",
    ]);
    let out = w.run(&argv);
    let text = out.stdout.clone();
    let (u, g) = text.split_once("--").unwrap_or((&text, ""));
    (map_lines(u), map_lines(g), out)
}

// ---- identity and maps ----------------------------------------------------------------

fn single_range_is_mapped_whole() {
    let w = world();
    let (uid, gid, out) = maps(&w, &[]);
    assert!(out.status.success(), "{out:#?}");
    let range = format!("1 {} 65536", w.sub_start());
    assert_eq!(uid, [format!("0 {} 1", w.uid), range.clone()]);
    assert_eq!(gid, [format!("0 {} 1", w.gid), range]);
    assert_eq!(out.stderr, "", "no warning when the full map works");
}

fn every_range_is_mapped_contiguously_including_numeric_entries() {
    let mut w = world();
    let (a, b) = (w.spare_range(1), w.spare_range(2));
    w.subuid = format!("tuser:{a}:1000\n{}:{b}:5000\n", w.uid);
    w.subgid = format!("tuser:{a}:1000\n{}:{b}:5000\n", w.gid);
    let (uid, gid, out) = maps(&w, &["--map=full"]);
    assert!(out.status.success(), "{out:#?}");
    let want = [
        format!("0 {} 1", w.uid),
        format!("1 {a} 1000"),
        format!("1001 {b} 5000"),
    ];
    assert_eq!(uid, want);
    assert_eq!(gid[1..], want[1..]);
}

fn junk_lines_of_other_users_are_ignored() {
    let mut w = world();
    let start = w.sub_start();
    let text = format!(
        "other:abc:1\nbroken line\nx:1:2:3\n\nother2:5:0 \ntuser:{start}:65536\n1000abc:1:1\n"
    );
    w.subuid = text.clone();
    w.subgid = text;
    let (uid, _, out) = maps(&w, &["--map=full"]);
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(uid[1], format!("1 {start} 65536"));
    assert_eq!(uid.len(), 2);
}

fn trailing_space_on_callers_line_is_reported() {
    let mut w = world();
    w.subuid = format!("tuser:{}:65536 \n", w.sub_start());
    let out = w.run(&["--map=full", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("/etc/subuid:1"),
        "names path:line: {}",
        out.stderr
    );
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);

    // auto: a warning naming the line, then a single mapping (it was the only range)
    let (uid, _, out) = maps(&w, &[]);
    assert!(out.status.success(), "{out:#?}");
    assert!(out.stderr.contains("/etc/subuid:1"), "{}", out.stderr);
    assert_eq!(uid, [format!("0 {} 1", w.uid)]);
}

fn crlf_on_callers_line_is_reported_not_repaired() {
    let mut w = world();
    let spare = w.spare_range(2);
    w.subuid = format!("tuser:{}:65536\r\ntuser:{spare}:10\n", w.sub_start());
    let out = w.run(&["--map=full", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("/etc/subuid:1"), "{}", out.stderr);
    // auto maps the valid line only, with one warning about the other
    let (uid, _, out) = maps(&w, &[]);
    assert!(out.status.success(), "{out:#?}");
    assert!(out.stderr.contains("/etc/subuid:1"), "{}", out.stderr);
    assert_eq!(uid, [format!("0 {} 1", w.uid), format!("1 {spare} 10")]);
}

fn no_entry_auto_warns_and_maps_single_full_fails() {
    let mut w = world();
    w.subuid = format!("someone:{}:65536\n", w.sub_start());
    let (uid, gid, out) = maps(&w, &[]);
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(uid, [format!("0 {} 1", w.uid)]);
    assert_eq!(gid, [format!("0 {} 1", w.gid)]);
    let warnings = out.stderr.matches("warning:").count();
    assert_eq!(warnings, 1, "exactly one warning: {}", out.stderr);
    assert!(
        out.stderr.contains("tuser") && out.stderr.contains("/etc/subuid"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("usermod"),
        "says how to fix: {}",
        out.stderr
    );

    let quiet = w.run(&["-q", "true"]);
    assert!(quiet.status.success());
    assert_eq!(quiet.stderr, "", "--quiet silences the warning");

    let out = w.run(&["--map=full", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.starts_with("become-root: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("no entry for tuser in /etc/subuid"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
}

fn range_overflowing_32_bits_is_rejected() {
    let mut w = world();
    w.subuid = "tuser:4294967290:100\n".into();
    let out = w.run(&["--map=full", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("/etc/subuid:1"), "{}", out.stderr);
}

fn missing_helper() {
    let mut w = world();
    w.env
        .push(("NEWUIDMAP".into(), "/nonexistent/newuidmap".into()));
    let out = w.run(&["--map=full", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("/nonexistent/newuidmap"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("uidmap"),
        "names the package: {}",
        out.stderr
    );
    // A helper the caller named is never passed over for a single map: the same error
    // under every mode that needs one, naming the variable.
    for mode in ["--map=auto", "--map=keep-id", "--map=subids"] {
        let out = w.run(&[mode, "true"]);
        assert_eq!(out.code(), Some(125), "{mode}: {out:#?}");
        assert!(
            out.stderr.starts_with(
                "become-root: id mapping: NEWUIDMAP=/nonexistent/newuidmap: no such file or \
                 directory\nhint: set NEWUIDMAP to the path of the program"
            ),
            "{mode}: {}",
            out.stderr
        );
    }
    // One that is no executable at all: not a hint to make /etc/passwd set-user-ID.
    w.env.retain(|(k, _)| k != "NEWUIDMAP");
    w.env.push(("NEWUIDMAP".into(), "/etc/passwd".into()));
    let out = w.run(&["true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr
            .contains("NEWUIDMAP=/etc/passwd: is not executable")
            && !out.stderr.contains("chmod"),
        "{}",
        out.stderr
    );
    // --verbose names the helpers and the variable that chose one.
    w.env.retain(|(k, _)| k != "NEWUIDMAP");
    let newuidmap = common::which("newuidmap").unwrap();
    w.env
        .push(("NEWUIDMAP".into(), newuidmap.display().to_string()));
    let out = w.run(&["--verbose", "true"]);
    assert!(
        out.stderr.contains(&format!(
            "become-root: maps written by {} (from NEWUIDMAP) and ",
            newuidmap.display()
        )),
        "{}",
        out.stderr
    );
}

fn helper_without_privilege_is_diagnosed() {
    let w = world();
    // A copy of newuidmap without its set-user-ID bit.
    let copy = w.dir.join("newuidmap");
    common::copy_executable(&common::which("newuidmap").unwrap(), &copy, 0o755);
    let mut w = w;
    w.env.push(("NEWUIDMAP".into(), copy.display().to_string()));
    let out = w.run(&["--map=full", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("set-user-ID"), "{}", out.stderr);
    assert!(out.stderr.contains("chmod u+s"), "{}", out.stderr);
}

fn no_new_privs_is_diagnosed() {
    let w = world();
    let out = w.sh("setpriv --no-new-privs \"$BR\" --map=full true");
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("no_new_privs"), "{}", out.stderr);
    let out = w.sh("setpriv --no-new-privs \"$BR\" id -u");
    assert_eq!(out.ok().trim(), "0", "auto falls back to a single mapping");
}

fn newuidmap_refusal_is_reported_with_its_stderr() {
    let mut w = world();
    // The caller's line says one thing, newgidmap reads another file: simulate a refusal by
    // mapping a range the subgid file does not grant (both read the same file, so give
    // become-root a different view via getsubids-free path: a range newgidmap rejects).
    let start = w.sub_start();
    w.subgid = format!("tuser:{start}:65536\n");
    w.subuid = format!("tuser:{start}:65536\n");
    // newuidmap refuses to map ids of a process that is not the caller's: point it at a
    // helper path that is a wrapper changing the range.
    let wrapper = w.dir.join("fake-newuidmap");
    common::write_executable(
        &wrapper,
        format!(
            "#!/bin/sh\necho 'newuidmap: uid range [1-65537) -> [{start}-{}) not allowed' >&2\nexit 1\n",
            start + 65536
        ),
        0o4755,
    );
    w.env
        .push(("NEWUIDMAP".into(), wrapper.display().to_string()));
    let out = w.run(&["true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("not allowed"),
        "keeps the helper's stderr: {}",
        out.stderr
    );
    assert!(out.stderr.contains("exit status: 1"), "{}", out.stderr);
    assert!(w.leftover_processes().is_empty());
}

fn helper_on_a_nosuid_mount_is_diagnosed() {
    let mut w = world();
    let dir = w.dir.join("nosuid");
    std::fs::create_dir(&dir).unwrap();
    // A set-user-ID copy of newuidmap on a nosuid tmpfs, made in the harness's namespace.
    w.root_setup = format!(
        "mount -t tmpfs -o nosuid,mode=755 none {0} && cp -p $(command -v newuidmap) {0}/",
        dir.display()
    );
    w.env.push((
        "NEWUIDMAP".into(),
        dir.join("newuidmap").display().to_string(),
    ));
    let out = w.run(&["--map=full", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("nosuid"), "{}", out.stderr);
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
}

fn getsubids_source_reads_the_same_ranges() {
    let mut w = world();
    let (a, b) = (w.spare_range(1), w.spare_range(2));
    w.subuid = format!("tuser:{a}:1000\ntuser:{b}:10\n");
    w.subgid = format!("tuser:{a}:1000\n");
    let want_uid = [
        format!("0 {} 1", w.uid),
        format!("1 {a} 1000"),
        format!("1001 {b} 10"),
    ];
    let (uid, gid, out) = maps(&w, &["--map=full", "--subid-source=getsubids"]);
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(uid, want_uid);
    assert_eq!(gid, [format!("0 {} 1", w.gid), format!("1 {a} 1000")]);
    // auto picks getsubids when nsswitch.conf has a subid line: prove it by breaking getsubids
    let mut nsswitch = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    nsswitch.push_str("subid: files\n");
    w.nsswitch = Some(nsswitch);
    w.env.push((
        "PATH".into(),
        format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", w.home().display()),
    ));
    let fake = w.home().join("getsubids");
    common::write_executable(
        &fake,
        "#!/bin/sh\necho 'getsubids: fake failure' >&2; exit 2\n",
        0o755,
    );
    let out = w.run(&["--map=full", "true"]);
    assert_eq!(out.code(), Some(125), "auto used getsubids: {out:#?}");
    assert!(out.stderr.contains("fake failure"), "{}", out.stderr);
    let out = w.run(&["--map=full", "--subid-source=files", "true"]);
    assert!(out.status.success(), "files ignores nsswitch: {out:#?}");
}

fn max_user_namespaces_zero_is_diagnosed() {
    // user.max_user_namespaces is per user namespace: lower it in a throwaway one, so the
    // machine's own value never changes.
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && exec {} true",
        common::BIN
    );
    let out = common::run_with_timeout({
        let mut c = std::process::Command::new("unshare");
        c.args(["-U", "-r", "sh", "-c", &script]);
        c
    });
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr
            .starts_with("become-root: user namespace: cannot create it: ENOSPC"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("max_user_namespaces = 0"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
}

fn non_utf8_arguments_pass_through() {
    let w = world();
    use std::os::unix::ffi::OsStrExt;
    let arg = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff");
    let out = w.run(&[
        std::ffi::OsStr::new("printf"),
        std::ffi::OsStr::new("%s"),
        arg,
    ]);
    assert!(out.status.success(), "{out:#?}");
    let mut cmd = w.command(&[
        w.bin().as_os_str(),
        std::ffi::OsStr::new("printf"),
        std::ffi::OsStr::new("%s"),
        arg,
    ]);
    let raw = cmd.output().unwrap();
    assert_eq!(raw.stdout, b"caf\xe9-\xff");
}

fn refuses_to_run_with_file_capabilities() {
    let w = world();
    let setcap = common::which("setcap").unwrap();
    let copy = w.dir.join("become-root-caps");
    common::copy_executable(&w.bin(), &copy, 0o755);
    let status = std::process::Command::new(setcap)
        .args(["cap_net_admin+ep"])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let out = w.sh(&format!("{} true", copy.display()));
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("capabilities"), "{}", out.stderr);
}

fn helpers_never_get_the_callers_descriptors() {
    let mut w = world();
    // A stand-in newuidmap that records its descriptors and refuses. The set-user-ID bit on
    // a script is ignored by the kernel but satisfies become-root's check of the helper.
    let record = w.home().join("helper-fds");
    let fake = w.dir.join("fake-newuidmap");
    common::write_executable(
        &fake,
        format!(
            "#!/bin/sh\nls /proc/self/fd > {}\nexit 1\n",
            record.display()
        ),
        0o4755,
    );
    w.env.push(("NEWUIDMAP".into(), fake.display().to_string()));
    let out = w.sh("exec 7</dev/null 9>/dev/null; \"$BR\" --map=full true");
    assert_eq!(out.code(), Some(125), "{out:#?}");
    let fds = std::fs::read_to_string(&record).unwrap();
    let fds: Vec<&str> = fds.lines().collect();
    assert!(
        !fds.contains(&"7") && !fds.contains(&"9"),
        "inherited fds reached the helper: {fds:?}"
    );
    assert!(fds.contains(&"0") && fds.contains(&"2"), "{fds:?}");
}

fn real_root_gets_the_identity_map() {
    let out = common::run_with_timeout({
        let mut c = std::process::Command::new(common::BIN);
        c.args(["cat", "/proc/self/uid_map", "/proc/self/gid_map"]);
        c
    });
    assert_eq!(map_lines(out.ok()), ["0 0 4294967295", "0 0 4294967295"]);
}

fn nested_passes_the_current_map_through() {
    let w = world();
    let out = w.sh("\"$BR\" \"$BR\" sh -c 'cat /proc/self/uid_map; id -u'");
    let lines = map_lines(out.ok());
    assert_eq!(lines, ["0 0 1", "1 1 65536", "0"], "{out:#?}");
    let out = w.sh("\"$BR\" --map=single \"$BR\" cat /proc/self/uid_map");
    assert_eq!(map_lines(out.ok()), ["0 0 1"]);
}

fn map_single_maps_only_the_caller() {
    let w = world();
    let (uid, gid, out) = maps(&w, &["--map=single"]);
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(uid, [format!("0 {} 1", w.uid)]);
    assert_eq!(gid, [format!("0 {} 1", w.gid)]);
    assert_eq!(out.stderr, "");
    let out = w.run(&["--map=single", "cat", "/proc/self/setgroups"]);
    assert_eq!(
        out.ok().trim(),
        "deny",
        "CVE-2014-8989: setgroups denied for a self-written gid map"
    );
}

fn ids_are_zero_and_capabilities_full_inside() {
    let w = world();
    let out = w.run(&["sh", "-c", "id -u; id -g; grep CapEff /proc/self/status"]);
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(lines[1], "0");
    assert!(
        lines[2].ends_with("000001ffffffffff") || lines[2].contains("ffffffff"),
        "{text}"
    );
}

fn chown_lands_on_the_right_host_ids() {
    let w = world();
    let f = w.home().join("owned");
    let out = w.run(&[
        "sh",
        "-c",
        &format!("touch {0}; chown 1000:1000 {0}", f.display()),
    ]);
    out.ok();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&f).unwrap();
    let outside = w.sub_start() + 999;
    assert_eq!(
        (meta.uid(), meta.gid()),
        (outside, outside),
        "inside 1000 is the range's start + 999 outside"
    );
    let g = w.home().join("root-owned");
    w.run(&["touch", &g.display().to_string()]).ok();
    let meta = std::fs::metadata(&g).unwrap();
    assert_eq!(meta.uid(), w.uid, "inside 0 is the caller outside");
}

// ---- namespaces ---------------------------------------------------------------------------

fn ns_inodes(w: &World, args: &[&str]) -> Vec<(String, bool)> {
    let kinds = ["mnt", "net", "pid", "uts", "ipc", "cgroup", "user"];
    let script = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}"))
        .collect::<Vec<_>>()
        .join(";");
    // Outside and inside in one harness run: each run has a mount namespace of its own.
    let out = w.sh(&format!(
        "{script}; echo --; \"$BR\" {} sh -c {}",
        args.join(" "),
        common::shell_quote(&script)
    ));
    let text = out.ok();
    let (outside, inside) = text.split_once("--\n").expect("two halves");
    kinds
        .iter()
        .zip(outside.lines().zip(inside.lines()))
        .map(|(k, (o, i))| (k.to_string(), o != i))
        .collect()
}

fn each_namespace_flag_makes_exactly_its_namespace() {
    let w = world();
    let rows: &[(&[&str], &[&str])] = &[
        (&[], &["user"]),
        (&["-m"], &["user", "mnt"]),
        (&["--mount"], &["user", "mnt"]),
        (&["-n"], &["user", "net"]),
        (&["--net=none"], &["user", "net"]),
        (&["--pid"], &["user", "pid", "mnt"]),
        (&["-u"], &["user", "uts"]),
        (&["-i"], &["user", "ipc"]),
        (
            &["-a"],
            &["user", "mnt", "net", "pid", "uts", "ipc", "cgroup"],
        ),
    ];
    for (args, want) in rows {
        let got: Vec<String> = ns_inodes(&w, args)
            .into_iter()
            .filter(|(_, new)| *new)
            .map(|(k, _)| k)
            .collect();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want, "flags {args:?}");
    }
}

fn net_none_has_loopback_up_and_nothing_else() {
    let w = world();
    let out = w.run(&["-n", "ip", "-o", "link"]);
    let text = out.ok();
    assert_eq!(text.lines().count(), 1, "only lo: {text}");
    assert!(text.contains("lo:") && text.contains(",UP"), "{text}");
    // -n does not take the next word as its mode
    let out = w.run(&["-n", "echo", "ran"]);
    assert_eq!(out.ok().trim(), "ran");
}

fn mount_namespace_is_private_and_leaves_no_mount_on_the_host() {
    let mut w = world();
    // As on a systemd host: / shared, so that private and slave differ.
    w.propagation = "shared";
    // The host's mount table, read from the test process itself (outside every namespace).
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // Through a shell that stays in the harness's namespace: if become-root were the last
    // process there, the namespace would die with its peer group and every mount would read
    // private whatever become-root did.
    let out = w.sh("\"$BR\" -m sh -c 'mount -t tmpfs none \"$HOME\" && grep -c \" $HOME \" /proc/self/mountinfo; head -1 /proc/self/mountinfo'");
    let text = out.ok();
    assert!(text.starts_with("1\n"), "the mount exists inside: {text}");
    let root = text.lines().nth(1).unwrap();
    assert!(
        !root.contains("shared:") && !root.contains("master:"),
        "/ is private: {root}"
    );
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(before, after, "no mount reached the outside");
    let out = w.sh("\"$BR\" -m --propagation=slave head -1 /proc/self/mountinfo");
    assert!(
        out.ok().contains(" master:"),
        "a slave of the outside's peer group: {out:#?}"
    );
    // the default keeps even the harness's own namespace untouched
    let out = w.sh("\"$BR\" -m mount -t tmpfs none \"$HOME\"; grep -c \" $HOME \" /proc/self/mountinfo || true");
    assert_eq!(out.ok().trim(), "0", "a mount inside did not propagate out");
}

fn ctrl_z_under_pid_stops_and_fg_resumes() {
    let w = world();
    // An interactive outer shell runs become-root --pid; ^Z must stop the whole job (the
    // outer shell regains the terminal and lists it as stopped), fg must resume it. The
    // command says when it runs, and then waits for a word on a FIFO that only the outer
    // shell writes, typed after ^Z: the outer shell reads it only once it has the terminal
    // back, the job stopped. (Typed lines wait in the terminal until a shell reads them.)
    // Once it says it runs, the command starts no process: a ^Z that reaches dash between
    // its vfork(2) and the child's exec stops the child, while the parent, waiting for that
    // exec, cannot stop (the kernel's vfork wait is killable only), so no shell's job can
    // stop then, with or without become-root (a wait-until here did, 2 in 196 runs under
    // load). The outer shell opens the FIFO read-write, which never blocks.
    let (running, go) = (w.home().join("running"), w.home().join("go"));
    let (running, go) = (running.display(), go.display());
    let until = World::until();
    let cmd = format!(
        "\"$BR\" --pid sh -c 'touch {running}; read word < {go}; echo WOKE $word $(id -u)'"
    );
    let script = format!(
        "mkfifo {go}; (echo {}; {until} test -e {running}; printf '\\032'; echo jobs; echo {}; \
         echo fg; echo 'echo OUTER-DONE'; echo exit) | script -qec 'sh -i' /dev/null",
        common::shell_quote(&cmd),
        common::shell_quote(&format!("exec 3<>{go}; echo up >&3"))
    );
    let out = w.sh(&script);
    let text = &out.stdout;
    assert!(
        text.contains("Stopped"),
        "the outer shell saw a stopped job: {out:#?}"
    );
    assert!(text.contains("WOKE up 0"), "fg resumed it: {out:#?}");
    assert!(text.contains("OUTER-DONE"), "{out:#?}");
    assert!(!text.contains("Cannot set tty"), "{out:#?}");
}

fn pid_namespace_has_become_root_as_init_and_fresh_proc() {
    let w = world();
    let out = w.run(&[
        "--pid",
        "sh",
        "-c",
        "echo $$; cat /proc/1/comm; ls /proc | grep -c '^[0-9]'",
    ]);
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "2",
        "COMMAND is pid 2 under become-root's init: {text}"
    );
    assert_eq!(lines[1], "become-root");
    let count: u32 = lines[2].parse().unwrap();
    assert!(count <= 4, "fresh /proc shows only this namespace: {text}");
}

fn pid_namespace_init_reaps_orphans() {
    let w = world();
    // A grandchild orphaned to init must not linger as a zombie: once it is gone from /proc
    // (exited and reaped), no zombie is left.
    let script = format!(
        "pid=$(sh -c 'sleep 0.1 >/dev/null & echo $!'); {} test ! -e /proc/$pid; \
         ps -eo stat= | grep -c '^Z' || true",
        World::until()
    );
    let out = w.run(&["--pid", "sh", "-c", &script]);
    assert_eq!(out.ok().trim(), "0", "{out:#?}");
}

// ---- exit statuses and signals ------------------------------------------------------------

fn exit_statuses_pass_through() {
    let w = world();
    for mode in [&[][..], &["--pid"][..]] {
        for code in [0, 1, 42, 255] {
            let mut argv = mode.to_vec();
            let script = format!("exit {code}");
            argv.extend(["sh", "-c", &script]);
            let out = w.run(&argv);
            assert_eq!(out.code(), Some(code), "{mode:?} {out:#?}");
        }
    }
}

fn death_by_signal_is_the_same_death() {
    let w = world();
    for mode in [&[][..], &["--pid"][..]] {
        for sig in ["TERM", "KILL", "INT"] {
            let mut argv = mode.to_vec();
            let script = format!("kill -{sig} $$");
            argv.extend(["sh", "-c", &script]);
            let out = w.run(&argv);
            let want = match sig {
                "TERM" => 15,
                "KILL" => 9,
                _ => 2,
            };
            assert_eq!(out.signal(), Some(want), "{mode:?} {sig}: {out:#?}");
        }
    }
}

fn not_executable_is_126_not_found_is_127() {
    let w = world();
    let file = w.home().join("not-exec");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    for mode in [&[][..], &["--pid"][..]] {
        let mut argv = mode.to_vec();
        let path = file.display().to_string();
        argv.push(&path);
        let out = w.run(&argv);
        assert_eq!(out.code(), Some(126), "{out:#?}");
        assert!(
            out.stderr.starts_with(&format!("become-root: {path}: ")),
            "{}",
            out.stderr
        );
        let mut argv = mode.to_vec();
        argv.push("no-such-command-xyz");
        let out = w.run(&argv);
        assert_eq!(out.code(), Some(127), "{out:#?}");
        assert!(
            out.stderr
                .contains("no-such-command-xyz: command not found"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    }
}

fn a_world_starts_without_a_zombie_of_the_world_before() {
    // The harness's promise (tests/common, slots): a World's test user has no process but
    // its own. A World that left an orphan behind (killed as the World goes) leaves it as a
    // zombie until the machine's init reaps it (up to 2 s later on this project's machine),
    // and a World made at once with the same ids saw it: pgrep and ps list zombies, and d18
    // counted 2 janitors under load (its own, and a zombie of the World before).
    let w = world();
    w.sh("sleep 60 >/dev/null 2>&1 & echo $! > orphan").ok();
    drop(w);
    let w = world();
    let out = w.sh("ps -o pid=,stat=,comm= -u $(id -u)");
    let zombies: Vec<&str> = out.ok().lines().filter(|l| l.contains(" Z")).collect();
    assert!(zombies.is_empty(), "{} has zombies: {zombies:?}", w.uid);
}

fn sigterm_and_sigkill_to_supervising_become_root_leave_nothing() {
    let w = world();
    // Each kill comes once the command runs (its last sleep has started, the first one is
    // forked before it); then the sleeps must go.
    let script = format!(
        r#"
"$BR" --pid sh -c 'sleep 300 & sleep 301' & pid=$!
{until} sh -c 'ps -u "$(id -u)" -o args= | grep -qx "sleep 301"'
kill -TERM $pid; wait $pid; echo term=$?
"$BR" --pid sh -c 'sleep 302 & sleep 303' & pid=$!
{until} sh -c 'ps -u "$(id -u)" -o args= | grep -qx "sleep 303"'
kill -KILL $pid; wait $pid; echo kill=$?
{until} sh -c '! ps -u "$(id -u)" -o args= | grep -q "^sleep 30[0-3]"'
ps -u "$(id -u)" -o args= | grep -c '^sleep 30[0-3]' || true
"#,
        until = World::until()
    );
    let out = w.sh(&script);
    let text = out.ok();
    assert!(
        text.contains("term=143"),
        "SIGTERM forwarded, same death: {text}"
    );
    assert!(text.contains("kill=137"), "{text}");
    assert_eq!(text.lines().last(), Some("0"), "no sleep left: {text}");
    assert!(
        w.wait_no_leftovers().is_empty(),
        "{:?}",
        w.leftover_processes()
    );
}

fn sigkill_to_exec_in_place_kills_the_command_like_any_process() {
    let w = world();
    // In exec-in-place mode COMMAND is become-root's pid: the signal reaches it directly
    // (sent once that pid is COMMAND).
    let out = w.sh(&format!(
        "\"$BR\" sleep 300 & pid=$!; {} grep -qx sleep /proc/$pid/comm; \
         kill -KILL $pid; wait $pid; echo $?",
        World::until()
    ));
    assert_eq!(out.ok().trim(), "137");
    assert!(w.wait_no_leftovers().is_empty());
}

// ---- transparency -------------------------------------------------------------------------

fn usage_error_is_125() {
    let w = world();
    let out = w.run(&["--no-such-flag", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.starts_with("become-root: usage: "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
}

fn options_after_command_and_after_double_dash_pass_through() {
    let w = world();
    let out = w.run(&["echo", "-la", "--help", "--pid"]);
    assert_eq!(out.ok(), "-la --help --pid\n");
    let out = w.run(&["--", "printf", "%s\n", "--version"]);
    assert_eq!(out.ok(), "--version\n");
    let out = w.run(&["-m", "--", "--help"]);
    assert_eq!(
        out.code(),
        Some(127),
        "'--help' after -- is the command: {out:#?}"
    );
}

fn default_command_is_shell_then_bin_sh() {
    let mut w = world();
    let shell = w.home().join("myshell");
    common::write_executable(&shell, "#!/bin/sh\necho my-shell-ran \"$#\"\n", 0o755);
    w.env.push(("SHELL".into(), shell.display().to_string()));
    assert_eq!(w.run::<&str>(&[]).ok(), "my-shell-ran 0\n");
    let out = w.sh("unset SHELL; echo 'echo from-sh $(id -u)' | \"$BR\"");
    assert_eq!(out.ok(), "from-sh 0\n");
}

fn stdin_and_environment_pass_through() {
    let mut w = world();
    w.env.push(("FOO".into(), "bar baz".into()));
    let out = w.sh("printf 'line1\\nline2\\n' | \"$BR\" cat");
    assert_eq!(out.ok(), "line1\nline2\n");
    // With a mount namespace, podman's variables too (containers.rs; tests/containers.rs
    // checks that a run without one gets none).
    let out = w.run(&["-m", "env"]);
    let env = out.ok();
    assert!(env.lines().any(|l| l == "FOO=bar baz"), "{env}");
    assert!(
        env.lines()
            .any(|l| l == "_CONTAINERS_USERNS_CONFIGURED=done"),
        "{env}"
    );
    assert!(
        env.lines()
            .any(|l| l == format!("_CONTAINERS_ROOTLESS_UID={}", w.uid)),
        "{env}"
    );
    assert!(
        env.lines()
            .any(|l| l == format!("_CONTAINERS_ROOTLESS_GID={}", w.gid)),
        "{env}"
    );
    let outside = w.sh("env | sort").ok().to_string();
    let inside: Vec<&str> = env
        .lines()
        .filter(|l| !l.starts_with("_CONTAINERS_"))
        .collect();
    let mut inside: Vec<String> = inside.iter().map(|s| s.to_string()).collect();
    inside.sort();
    let outside: Vec<String> = outside
        .lines()
        .filter(|l| !l.starts_with("_=") && !l.starts_with("PWD=") && !l.starts_with("SHLVL="))
        .map(String::from)
        .collect();
    let inside: Vec<String> = inside
        .into_iter()
        .filter(|l| !l.starts_with("_=") && !l.starts_with("PWD=") && !l.starts_with("SHLVL="))
        .collect();
    assert_eq!(inside, outside, "environment otherwise unchanged");
}

fn file_descriptors_are_the_same_with_and_without() {
    let w = world();
    for mode in ["", "--pid"] {
        let script = format!(
            "exec 5</dev/null 7>/dev/null 9<>/dev/null; \
             a=$(ls /proc/self/fd | sort | tr '\\n' ' '); \
             b=$(\"$BR\" {mode} ls /proc/self/fd | sort | tr '\\n' ' '); \
             echo \"$a\"; echo \"$b\""
        );
        let out = w.sh(&script);
        let text = out.ok();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], lines[1], "mode {mode:?}: fd sets differ");
        assert!(lines[0].contains('5') && lines[0].contains('9'), "{text}");
    }
}

/// A caller that closed 0, 1 or 2 gets /dev/null there, as Rust's runtime would give it:
/// become-root starts without that runtime (src/bin/become-root.rs), and a file it opens must
/// not take a standard descriptor's number (COMMAND would read or write it).
fn closed_standard_descriptors_are_dev_null() {
    let w = world();
    for mode in ["", "--pid"] {
        let out = w.sh(&format!(
            "\"$BR\" {mode} sh -c 'readlink /proc/self/fd/0 /proc/self/fd/2 >&3' 3>&1 <&- 2>&-"
        ));
        assert_eq!(out.ok(), "/dev/null\n/dev/null\n", "mode {mode:?}");
    }
}

fn sigpipe_is_default_for_the_command() {
    let w = world();
    for mode in ["", "--pid"] {
        let out = w.sh(&format!("\"$BR\" {mode} yes | head -1"));
        assert_eq!(out.stdout, "y\n", "{out:#?}");
        assert_eq!(out.stderr, "", "no EPIPE error: {out:#?}");
        let out = w.sh(&format!(
            "grep SigIgn /proc/self/status; \"$BR\" {mode} grep SigIgn /proc/self/status"
        ));
        let text = out.ok();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0], lines[1],
            "{mode:?}: ignored signals as the caller left them"
        );
    }
}

fn works_when_the_caller_ignores_sigchld_and_passes_that_on() {
    let w = world();
    // An ignored SIGCHLD makes the kernel reap children itself, so waitpid(2) would fail;
    // become-root must still check its helpers, and COMMAND still inherit the ignore.
    for mode in ["", "--pid"] {
        // bash passes an ignored SIGCHLD on to what it runs (dash does not)
        let out = w.sh(&format!(
            "bash -c 'trap \"\" CHLD; \"$BR\" {mode} grep SigIgn /proc/self/status'"
        ));
        let text = out.ok();
        let mask = u64::from_str_radix(text.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_ne!(
            mask & (1 << (17 - 1)),
            0,
            "{mode:?}: SIGCHLD still ignored in COMMAND: {text}"
        );
    }
    let out = w.sh("bash -c 'trap \"\" CHLD; NEWUIDMAP=/bin/false \"$BR\" --map=full true'");
    assert_eq!(
        out.code(),
        Some(125),
        "a failing helper is still caught: {out:#?}"
    );
}

fn makefile_builds_a_tarball_with_root_and_user_owners() {
    let w = world();
    let makefile = "all:\n\t+$(BR) $(MAKE) pkg\n\npkg:\n\trm -rf root && mkdir -p root/etc root/home/u\n\techo hi > root/etc/f\n\techo hi > root/home/u/g\n\tchown -R 1000:1000 root/home/u\n\ttar --numeric-owner -cf out.tar -C root .\n";
    std::fs::write(w.home().join("Makefile"), makefile).unwrap();
    nix::unistd::chown(&w.home().join("Makefile"), Some(w.uid.into()), None).unwrap();
    let out = w.sh("cd \"$HOME\" && make -s && tar --numeric-owner -tvf out.tar");
    let text = out.ok();
    let owner = |name: &str| {
        text.lines()
            .find(|l| l.ends_with(name))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
    };
    assert_eq!(owner("./etc/f").as_deref(), Some("0/0"), "{text}");
    assert_eq!(owner("./home/u/g").as_deref(), Some("1000/1000"), "{text}");
}

fn make_jobserver_reaches_the_command() {
    let w = world();
    let makefile = "all:\n\t@+$(BR) $(MAKE) sub\n\nsub: a b c d\na b c d:\n\t@sleep 0.2; echo $@\n";
    std::fs::write(w.home().join("Makefile"), makefile).unwrap();
    let out = w.sh("cd \"$HOME\" && make -j4 --no-print-directory");
    assert!(out.status.success(), "{out:#?}");
    assert!(
        !out.stderr.contains("jobserver"),
        "the jobserver fds arrived: {}",
        out.stderr
    );
    assert_eq!(out.stdout.lines().count(), 4, "{out:#?}");
}

fn fifty_parallel_runs() {
    let w = world();
    let script = "pids=; i=0; while [ $i -lt 50 ]; do \"$BR\" sh -c 'test $(id -u) = 0' & pids=\"$pids $!\"; i=$((i+1)); done; \
                  ok=0; for p in $pids; do wait $p && ok=$((ok+1)); done; echo $ok";
    let out = w.sh(script);
    assert_eq!(out.ok().trim(), "50", "{out:#?}");
    assert!(w.leftover_processes().is_empty());
}

fn refuses_to_run_setuid() {
    let w = world();
    let copy = w.dir.join("become-root-suid");
    common::copy_executable(&w.bin(), &copy, 0o755);
    // After chown, which clears the set-user-ID bit.
    nix::unistd::chown(&copy, Some(12345.into()), None).unwrap();
    common::chmod(&copy, 0o4755);
    let out = w.sh(&format!("{} true", copy.display()));
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("set-user-ID"), "{}", out.stderr);
}

// ---- terminals ----------------------------------------------------------------------------

fn terminal_and_job_control_under_script() {
    let w = world();
    for mode in ["", "--pid"] {
        // An interactive shell on a pty: it must own the terminal (job control on), run a
        // background job, list it, and bring one to the foreground.
        let input = "tty >/dev/null && echo IS-TTY; case $- in *m*) echo MONITOR-ON;; esac; \
                     sleep 0.3 & jobs; wait; (sleep 0.2; echo FG-DONE) & fg; exit 3\n";
        let script = format!(
            "printf '%s' {} | script -qec '\"$BR\" {mode} sh -i' /dev/null; echo status=$?",
            common::shell_quote(input)
        );
        let out = w.sh(&script);
        let text = &out.stdout;
        assert!(text.contains("IS-TTY"), "{mode}: {out:#?}");
        assert!(
            text.contains("MONITOR-ON"),
            "{mode}: job control on: {out:#?}"
        );
        assert!(text.contains("[1]"), "{mode}: jobs listed: {out:#?}");
        assert!(text.contains("FG-DONE"), "{mode}: fg worked: {out:#?}");
        assert!(!text.contains("no job control"), "{mode}: {out:#?}");
        assert!(text.contains("status=3"), "{mode}: {out:#?}");
    }
}

fn ctrl_c_on_the_terminal_kills_the_command_once() {
    let w = world();
    for mode in ["", "--pid"] {
        // The command counts SIGINTs; ^C from the pty, typed once the trap is set, must
        // arrive exactly once (script(1) waits for its command after its input ends).
        let ready = w.home().join(format!("ready{mode}"));
        let ready = ready.display();
        let inner = format!(
            "trap 'n=$((n+1)); echo INT$n' INT; n=0; touch {ready}; echo READY; sleep 1; sleep 1; \
             echo N=$n"
        );
        let cmd = format!("\"$BR\" {mode} sh -c {}", common::shell_quote(&inner));
        let script = format!(
            "({} test -e {ready}; printf '\\003') | script -qec {} /dev/null",
            World::until(),
            common::shell_quote(&cmd)
        );
        let out = w.sh(&script);
        assert!(
            out.stdout.contains("N=1"),
            "{mode}: exactly one SIGINT: {out:#?}"
        );
    }
}

// ---- --sysfs ------------------------------------------------------------------------------

fn sysfs_shows_the_namespaces_own_devices_and_leaves_the_host_alone() {
    let w = world();
    // What sysfs lists against what the namespace's netlink says it has, its network
    // namespace, and the topmost mount at /sys ("OPTIONS FSTYPE").
    let inside = "ls /sys/class/net | tr '\\n' ' '; echo; \
                  ip -o link show | awk -F': ' '{print $2}' | sort | tr '\\n' ' '; echo; \
                  readlink /proc/self/ns/net; \
                  awk '$5 == \"/sys\" {line = $6 \" \" $9} END {print line}' /proc/self/mountinfo";
    let out = w.sh(&format!(
        "before=$(cat /proc/self/mountinfo); readlink /proc/self/ns/net; \
         for flags in --sysfs '--sysfs --net' '--sysfs --net=none' '--sysfs --pid'; do \
           echo \"== $flags\"; \"$BR\" $flags sh -c {} || exit 1; done; \
         [ \"$before\" = \"$(cat /proc/self/mountinfo)\" ] || echo MOUNTS-CHANGED",
        common::shell_quote(inside)
    ));
    let text = out.ok();
    let mut parts = text.split("== ");
    let host_net = parts.next().unwrap().trim();
    for part in parts {
        let lines: Vec<&str> = part.lines().collect();
        let flags = lines[0];
        assert_eq!(lines.len(), 5, "{flags}: {text}");
        // A network namespace of its own (--net mode none) whose sysfs lists its devices.
        assert_eq!(lines[1], "lo ", "{flags}: {text}");
        assert_eq!(
            lines[1], lines[2],
            "{flags}: sysfs agrees with netlink: {text}"
        );
        assert!(lines[3].starts_with("net:["), "{flags}: {text}");
        assert_ne!(
            lines[3], host_net,
            "{flags}: a network namespace of its own"
        );
        // The topmost mount at /sys is the fresh one: sysfs, read-only.
        let (options, fstype) = lines[4].split_once(' ').unwrap();
        assert_eq!(fstype, "sysfs", "{flags}: {text}");
        assert!(options.split(',').any(|o| o == "ro"), "{flags}: {text}");
    }
    assert!(!text.contains("MOUNTS-CHANGED"), "{text}");
}
