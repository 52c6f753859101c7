//! Regression tests for the defects a hostile review found (issue 8), each named after what
//! it pins. They attack become-root as another local user (planted symlinks and directories),
//! as a mistaken administrator (set-user-ID and file-capability copies) and from inside the
//! namespaces (descriptors that lead back to the host).
mod common;

use std::path::{Path, PathBuf};

use common::{World, chown_tree};

common::tests! {
    [Harness, Tool("setcap")] setuid_and_setcap_copies_refuse_every_entry_point_before_anything_else;
    [Harness]
        a_planted_work_directory_link_is_refused_and_its_target_untouched,
        foreign_or_shared_overlay_directories_are_refused,
        an_upper_that_is_a_file_or_the_root_is_refused_and_nothing_is_made,
        copy_up_of_a_pseudo_filesystem_is_refused_at_once,
        stop_of_processes_that_are_not_yours_fails_at_once_and_harms_nothing,
        messages_name_what_is_wrong;
    [Harness, Tool("busybox"), Tool("slirp4netns"), Tool("fuse-overlayfs")]
        no_process_inside_holds_a_descriptor_of_the_host;
    [Harness, Tool("fuse-overlayfs")]
        a_path_cannot_inject_fuse_overlayfs_options,
        a_throwaway_fuse_overlay_stages_nothing_on_disk_even_when_killed;
    [Harness, Tool("slirp4netns"), Tool("pasta"), Tool("pkill")]
        a_killed_network_helper_is_reported_recorded_and_commands_status_kept;
    [Harness, Tool("prlimit")] a_file_size_limit_fails_detach_with_a_message_and_leaves_no_state;
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A world whose home has `lower/f` and an empty `target`, all the test user's.
fn world() -> World {
    let w = World::new();
    std::fs::create_dir_all(w.home().join("lower")).unwrap();
    std::fs::write(w.home().join("lower/f"), "base\n").unwrap();
    std::fs::create_dir_all(w.home().join("target")).unwrap();
    chown_tree(&w.home(), w.uid);
    w
}

/// A busybox root filesystem owned by the test user, with the applets the tests use.
fn busybox_rootfs(w: &World) -> PathBuf {
    let root = w.home().join("rootfs");
    let applets = [
        "sh", "ls", "cat", "echo", "readlink", "stat", "sleep", "true", "test", "[",
    ];
    common::busybox_rootfs(&root, w.uid, &applets, "");
    std::fs::create_dir(root.join("mnt")).unwrap();
    chown_tree(&root.join("mnt"), w.uid);
    root
}

// ---- 1. no privileged copy runs, whatever the entry point ---------------------------------

fn setuid_and_setcap_copies_refuse_every_entry_point_before_anything_else() {
    let mut w = World::new();
    let d = p(&w.dir);
    let err = p(&w.home().join("err"));
    // A root process the forged session names: --stop must never reach it.
    // (Its pid in a file: other tests' root processes come and go meanwhile.)
    let victim_pid = w.dir.join("victim.pid");
    w.services = vec![format!(
        "sh -c 'echo $$ > {}; touch $READY; exec sleep 300'",
        p(&victim_pid)
    )];
    let subid = env!("CARGO_BIN_EXE_subid");
    w.root_setup = format!(
        "install -m 4755 -o root {d}/become-root {d}/suid-become-root
install -m 0755 -o root {d}/become-root {d}/cap-become-root
setcap cap_kill,cap_dac_override+ep {d}/cap-become-root
install -m 4755 -o root {subid} {d}/suid-subid
install -m 0755 -o root {subid} {d}/cap-subid
setcap cap_kill,cap_dac_override+ep {d}/cap-subid
mkdir -p {d}/suid {d}/cap
ln -sf ../suid-become-root {d}/suid/subid; ln -sf ../cap-become-root {d}/cap/subid"
    );
    let entry_points: &[&str] = &[
        "true",
        "--check",
        "--list",
        "--stop=forged",
        "--join=forged true",
        "--join=1 true",
        "--name=x --detach",
        "--version",
    ];
    let mut script = String::new();
    for copy in ["suid-become-root", "cap-become-root"] {
        for args in entry_points {
            script.push_str(&format!(
                "{d}/{copy} {args} >/dev/null 2>{err}; echo \"{copy} {args}: $? $(tr '\\n' ' ' < {err})\"\n"
            ));
        }
    }
    // subid, as its own binary and as become-root under the name subid.
    for (program, args) in [
        ("suid-subid", "show"),
        ("cap-subid", "check"),
        ("suid/subid", "next"),
        ("cap/subid", "scan /nonexistent"),
    ] {
        script.push_str(&format!(
            "{d}/{program} {args} >/dev/null 2>{err}; echo \"subid {program} {args}: $? $(tr '\\n' ' ' < {err})\"\n"
        ));
    }
    // A forged state file naming a root process with its real start time.
    let forged = format!(
        "dir=$XDG_RUNTIME_DIR/become-root; mkdir -p -m 700 $dir
victim=$(cat {victim})
start=$(awk '{{print $22}}' /proc/$victim/stat)
pidns=$(stat -L -c %i /proc/self/ns/pid)
printf 'become-root session 1\\nname=forged\\nsupervisor=%s %s\\nholder=%s %s\\npid_ns=%s\\n' \\
  $victim $start $victim $start $pidns > $dir/forged.session
{script}
[ -n \"$victim\" ] && [ -d /proc/$victim ] && echo VICTIM-ALIVE",
        victim = p(&victim_pid)
    );
    w.env
        .push(("XDG_RUNTIME_DIR".into(), p(&w.home().join("run"))));
    let out = w.sh(&forged);
    let text = &out.stdout;
    assert!(
        text.contains("VICTIM-ALIVE"),
        "a root process was killed: {out:#?}"
    );
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(": ")).collect();
    assert_eq!(lines.len(), entry_points.len() * 2 + 4, "{text}");
    for line in lines {
        let (what, rest) = line.split_once(": ").unwrap();
        let code = if what.starts_with("subid ") {
            "2"
        } else {
            "125"
        };
        assert!(
            rest.starts_with(&format!("{code} ")),
            "{what}: exit status {code} wanted: {rest}"
        );
        assert!(
            rest.contains("refusing to run") && rest.contains("started with privilege"),
            "{what}: {rest}"
        );
    }
}

// ---- 2. overlay directories are never reached through links or foreign directories ---------

fn a_planted_work_directory_link_is_refused_and_its_target_untouched() {
    let w = world();
    let home = w.home();
    // The victim's precious directory, and another user's planted link where the victim's
    // overlay will want its work directory (`.up.work` beside `up`).
    let precious = home.join("precious");
    std::fs::create_dir_all(precious.join("work")).unwrap();
    std::fs::write(precious.join("work/keep"), "mine\n").unwrap();
    chown_tree(&precious, w.uid);
    let shared = w.dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    common::chmod(&shared, 0o1777);
    std::os::unix::fs::symlink(&precious, shared.join(".up.work")).unwrap();
    let out = w.run(&[
        &format!(
            "--overlay={}:{}:{}",
            p(&home.join("lower")),
            p(&home.join("target")),
            p(&shared.join("up"))
        ),
        "true",
    ]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains(".up.work"), "{}", out.stderr);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert!(out.stderr.contains("\nhint: "), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(precious.join("work/keep")).unwrap(),
        "mine\n"
    );
    assert!(
        !shared.join("up").exists(),
        "UPPER made for a refused overlay"
    );
}

fn foreign_or_shared_overlay_directories_are_refused() {
    let w = world();
    let home = w.home();
    let d = p(&w.dir);
    let lower = p(&home.join("lower"));
    let target = p(&home.join("target"));
    // Prepared by root: an UPPER owned by another user in a sticky shared directory, one of
    // the test user's that is world-writable, a work directory another user made, and a
    // parent directory everyone may write to without the sticky bit.
    std::fs::create_dir_all(w.dir.join("shared")).unwrap();
    std::fs::create_dir_all(w.dir.join("open")).unwrap();
    let mut w = w;
    w.root_setup = format!(
        "chmod 1777 {d}/shared; chmod 0777 {d}/open
mkdir -p {d}/shared/theirs {d}/shared/wide {d}/shared/mine {d}/shared/.mine.work
chmod 755 {d}/shared/theirs {d}/shared/mine {d}/shared/.mine.work; chmod 777 {d}/shared/wide
chown 4343:4343 {d}/shared/theirs {d}/shared/.mine.work; chown {uid}:{uid} {d}/shared/wide {d}/shared/mine",
        uid = w.uid
    );
    let rows = [
        (format!("{d}/shared/theirs"), "owned by uid 4343"),
        (format!("{d}/shared/wide"), "mode 0777"),
        (
            format!("{d}/shared/mine"),
            ".mine.work: is owned by uid 4343",
        ),
        (format!("{d}/open/up"), "writable by others"),
    ];
    for (upper, want) in rows {
        let out = w.run(&[&format!("--overlay={lower}:{target}:{upper}"), "true"]);
        assert_eq!(out.code(), Some(125), "{upper}: {out:#?}");
        assert!(
            out.stderr.contains(want),
            "{upper}: want {want:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("\nhint: "), "{}", out.stderr);
    }
    // Its own fresh UPPER is made 0755 whatever the umask, and works.
    let upper = home.join("fresh");
    let out = w.sh(&format!(
        "umask 000; \"$BR\" --overlay={lower}:{target}:{} sh -c 'echo x > {target}/new' && stat -c %a {} {}",
        p(&upper),
        p(&upper),
        p(&home.join(".fresh.work"))
    ));
    assert_eq!(out.ok(), "755\n755\n");
    assert_eq!(std::fs::read_to_string(upper.join("new")).unwrap(), "x\n");
}

fn an_upper_that_is_a_file_or_the_root_is_refused_and_nothing_is_made() {
    let w = world();
    let home = w.home();
    let file = home.join("file");
    std::fs::write(&file, "").unwrap();
    chown_tree(&file, w.uid);
    let (lower, target) = (p(&home.join("lower")), p(&home.join("target")));
    let out = w.run(&[&format!("--overlay={lower}:{target}:{}", p(&file)), "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("Not a directory"), "{}", out.stderr);
    assert!(
        !home.join(".file.work").exists(),
        "a work directory was made for a refused UPPER"
    );
    let out = w.run(&[&format!("--overlay={lower}:{target}:/"), "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr
            .contains("overlay upper /: names no directory of its own"),
        "{}",
        out.stderr
    );
}

// ---- 3. nothing inside holds a descriptor that leads outside --------------------------------

/// A script for inside the namespaces: every descriptor of every process in this user
/// namespace that names a path must name the same file inside (same device and inode), or it
/// is a way out. A detached session's standard output and error are its log, by design.
const FD_AUDIT: &str = r#"me=$(readlink /proc/self/ns/user); n=0
for p in /proc/[0-9]*; do
  [ "$(readlink $p/ns/user 2>/dev/null)" = "$me" ] || continue
  n=$((n+1))
  for f in $p/fd/*; do
    t=$(readlink $f 2>/dev/null) || continue
    case $t in /*) ;; *) continue ;; esac
    case "${f##*/}:$t" in [12]:*/become-root/*.log) continue ;; esac
    a=$(stat -L -c %d:%i $f 2>/dev/null); b=$(stat -c %d:%i "$t" 2>/dev/null)
    [ -n "$a" ] && [ "$a" = "$b" ] && continue
    # A tmpfs attached nowhere (a throwaway upper layer, private to the run) leads nowhere.
    dev=${a%%:*}; dev=$(( (dev >> 8 & 4095) )):$(( (dev & 255) | (dev >> 12 & 1048320) ))
    if [ "$(stat -f -L -c %T $f 2>/dev/null)" = tmpfs ] && ! grep -q " $dev " /proc/self/mountinfo; then
      continue
    fi
    echo "LEAK ${p##*/}($(cat $p/comm)) fd ${f##*/} -> $t"
  done
done
echo "AUDITED $n"
"#;

fn assert_no_leak(what: &str, out: &common::Out, at_least: usize) {
    let text = &out.stdout;
    assert!(!text.contains("LEAK"), "{what}: {out:#?}");
    let audited: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("AUDITED "))
        .unwrap_or_else(|| panic!("{what}: the audit did not run: {out:#?}"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        audited >= at_least,
        "{what}: audited {audited} processes, wanted {at_least}: {out:#?}"
    );
}

fn no_process_inside_holds_a_descriptor_of_the_host() {
    let mut w = world();
    let root = busybox_rootfs(&w);
    w.env
        .push(("XDG_RUNTIME_DIR".into(), p(&w.home().join("run"))));
    std::fs::create_dir_all(w.home().join("run")).unwrap();
    chown_tree(&w.home().join("run"), w.uid);
    std::fs::write(w.home().join("audit.sh"), FD_AUDIT).unwrap();
    std::fs::write(root.join("audit.sh"), FD_AUDIT).unwrap();
    let r = p(&root);
    let home = w.home();
    let (lower, target) = (p(&home.join("lower")), p(&home.join("target")));
    let audit = format!("/bin/sh {}", p(&home.join("audit.sh")));
    // (what, command line, processes that must be seen: COMMAND's shell at least, and init)
    let runs: Vec<(&str, String, usize)> = vec![
        (
            "a session with a pid namespace (init)",
            format!("\"$BR\" --name=e --pid --rootfs={r} /bin/sh /audit.sh"),
            2,
        ),
        (
            "--info-fd with a pid namespace",
            format!(
                "\"$BR\" --info-fd=3 --pid --rootfs={r} /bin/sh /audit.sh 3>{}/info",
                p(&home)
            ),
            2,
        ),
        (
            "a published port (the socket provider)",
            format!("\"$BR\" --net -p 0:80 -q --pid --rootfs={r} /bin/sh /audit.sh"),
            3,
        ),
        (
            "a connected network",
            format!("\"$BR\" --net=slirp4netns --pid --rootfs={r} /bin/sh /audit.sh"),
            2,
        ),
        (
            "a detached session, joined (the pause process)",
            format!(
                "\"$BR\" --name=d --detach --pid --rootfs={r} && \"$BR\" --join=d /bin/sh /audit.sh; \
                 s=$?; \"$BR\" --stop=d; exit $s"
            ),
            2,
        ),
        (
            "a detached session with COMMAND",
            format!(
                "\"$BR\" --name=c --detach --pid --rootfs={r} /bin/sleep 60 && \
                 \"$BR\" --join=c /bin/sh /audit.sh; s=$?; \"$BR\" --stop=c; exit $s"
            ),
            3,
        ),
        (
            "fuse-overlayfs",
            format!("\"$BR\" --overlay-driver=fuse --overlay={lower}:{target} --pid {audit}"),
            3,
        ),
        (
            "a persistent native overlay",
            format!(
                "\"$BR\" --overlay={lower}:{target}:{} --name=o --pid {audit}",
                p(&home.join("upper"))
            ),
            2,
        ),
    ];
    for (what, cmd, at_least) in runs {
        let out = w.sh(&cmd);
        assert!(out.status.success(), "{what}: {out:#?}");
        assert_no_leak(what, &out, at_least);
    }
}

// ---- 4. fuse-overlayfs options cannot be injected through a path ---------------------------

fn a_path_cannot_inject_fuse_overlayfs_options() {
    let w = world();
    let home = w.home();
    let odd = home.join("x,squash_to_root");
    std::fs::create_dir(&odd).unwrap();
    chown_tree(&odd, w.uid);
    let escaped = p(&odd).replace(',', "\\,");
    let out = w.run(&[
        "--overlay-driver=fuse",
        &format!("--overlay={escaped}:{}", p(&home.join("target"))),
        "true",
    ]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("holds ','"), "{}", out.stderr);
    assert!(out.stderr.contains("\nhint: "), "{}", out.stderr);
    assert!(
        w.leftover_processes().is_empty(),
        "fuse-overlayfs must not have run"
    );
}

// ---- 7. pseudo filesystems are refused as layers -------------------------------------------

fn copy_up_of_a_pseudo_filesystem_is_refused_at_once() {
    let w = world();
    for (arg, fs) in [
        ("--copy-up=/proc", "proc"),
        ("--copy-up=/sys", "sysfs"),
        ("--overlay-driver=fuse --copy-up=/proc", "proc"),
        ("--overlay=/tmp:/proc", "proc"),
    ] {
        let start = std::time::Instant::now();
        let out = w.sh(&format!("\"$BR\" {arg} true"));
        assert!(start.elapsed().as_secs() < 10, "{arg}: took too long");
        assert_eq!(out.code(), Some(125), "{arg}: {out:#?}");
        assert!(
            out.stderr
                .contains(&format!("is on {fs}, a pseudo filesystem")),
            "{arg}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("\nhint: "), "{}", out.stderr);
    }
}

// ---- 8. no staging directory is left on disk ------------------------------------------------

fn a_throwaway_fuse_overlay_stages_nothing_on_disk_even_when_killed() {
    let mut w = world();
    let run = w.home().join("run");
    std::fs::create_dir_all(&run).unwrap();
    chown_tree(&run, w.uid);
    w.env.push(("XDG_RUNTIME_DIR".into(), p(&run)));
    let home = w.home();
    let (lower, target) = (p(&home.join("lower")), p(&home.join("target")));
    // Killed at different moments of the fuse-overlayfs start, with each kind of signal (not
    // SIGINT: a background job of a non-interactive shell ignores it); then
    // one run that works. The places a staging directory could be made are listed before
    // and after (the run directory is the test's own).
    let out = w.sh(&format!(
        "list() {{ ls -A /tmp /var/tmp {run} 2>/dev/null | grep become-root-overlay; }}
         before=$(list)
         for delay in 0 0.01 0.03 0.1; do for sig in HUP TERM KILL; do
           \"$BR\" --overlay-driver=fuse --overlay={lower}:{target} sleep 30 & pid=$!
           sleep $delay; kill -$sig $pid; wait $pid
         done; done
         \"$BR\" --overlay-driver=fuse --overlay={lower}:{target} cat {target}/f
         [ \"$before\" = \"$(list)\" ] || echo \"LEFT: $(list)\"",
        run = p(&run)
    ));
    assert!(out.stdout.contains("base\n"), "{out:#?}");
    assert!(!out.stdout.contains("LEFT"), "left on disk: {out:#?}");
    assert!(w.wait_no_leftovers().is_empty());
}

// ---- 6. a dead network helper is noticed ----------------------------------------------------

fn a_killed_network_helper_is_reported_recorded_and_commands_status_kept() {
    let mut w = World::new();
    let run = w.home().join("run");
    std::fs::create_dir_all(&run).unwrap();
    chown_tree(&run, w.uid);
    w.env.push(("XDG_RUNTIME_DIR".into(), p(&run)));
    // pasta runs as passt.avx2 on Debian where the CPU has AVX2 (pasta is a link to passt).
    for (helper, comm) in [("slirp4netns", "^slirp4netns$"), ("pasta", "^pas(ta|st)")] {
        // Wait for the helper, kill it, let COMMAND finish with a status of its own.
        // The message must come while COMMAND still runs: COMMAND goes on only once it is
        // there.
        let out = w.sh(&format!(
            "\"$BR\" --net={helper} sh -c 'touch $HOME/started
               while [ ! -e $HOME/killed ]; do sleep 0.02; done; exit 7' 2>$HOME/err &
             pid=$!
             for i in $(seq 500); do [ -e $HOME/started ] && break; sleep 0.02; done
             pkill -9 -u $(id -u) '{comm}' || echo NO-HELPER
             for i in $(seq 500); do grep -q 'network:' $HOME/err && break; sleep 0.02; done
             touch $HOME/killed
             wait $pid; echo status=$?; rm $HOME/killed $HOME/started; cat $HOME/err >&2"
        ));
        assert!(out.stdout.contains("status=7"), "{helper}: {out:#?}");
        assert!(
            out.stderr.contains(&format!(
                "become-root: network: {helper} was killed by signal 9; the namespace has no \
                 network now"
            )),
            "{helper}: {}",
            out.stderr
        );
        // A detached session records it; --list shows it.
        let out = w.sh(&format!(
            "\"$BR\" --name=n --detach --net={helper} || exit 1
             pkill -9 -u $(id -u) '{comm}'
             for i in $(seq 200); do \"$BR\" --list | grep -q 'network down' && break; sleep 0.02; done
             \"$BR\" --list; \"$BR\" --list --json; \"$BR\" --stop=n"
        ));
        assert!(
            out.stdout
                .contains(&format!("network down: {helper} was killed by signal 9")),
            "{helper}: {out:#?}"
        );
        assert!(
            out.stdout
                .contains(&format!("\"net_down\":\"{helper} was killed by signal 9\"")),
            "{helper}: {out:#?}"
        );
        assert!(out.status.success(), "{helper}: --stop: {out:#?}");
    }
    assert!(w.wait_no_leftovers().is_empty());
}

// ---- 9. --stop says when it could stop nothing ----------------------------------------------

fn stop_of_processes_that_are_not_yours_fails_at_once_and_harms_nothing() {
    let mut w = World::new();
    let run = w.home().join("run");
    std::fs::create_dir_all(&run).unwrap();
    chown_tree(&run, w.uid);
    w.env.push(("XDG_RUNTIME_DIR".into(), p(&run)));
    // (Its pid in a file: other tests' root processes come and go meanwhile.)
    let victim_pid = w.dir.join("victim.pid");
    w.services = vec![format!(
        "sh -c 'echo $$ > {}; touch $READY; exec sleep 300'",
        p(&victim_pid)
    )];
    // A state file in the right format naming a root process, with its start time and this
    // pid namespace: as if forged, or copied from another user's.
    let out = w.sh(&format!(
        "victim=$(cat {victim})
         start=$(awk '{{print $22}}' /proc/$victim/stat)
         pidns=$(stat -L -c %i /proc/self/ns/pid)
         dir=$XDG_RUNTIME_DIR/become-root; mkdir -p -m 700 $dir
         printf 'become-root session 1\\nname=forged\\nsupervisor=%s %s\\nholder=%s %s\\npid_ns=%s\\ncreated=1\\nnamespaces=\\ndetached=yes\\n' \
           $victim $start $victim $start $pidns > $dir/forged.session
         t0=$(date +%s%N); \"$BR\" --stop=forged; echo status=$?; t1=$(date +%s%N)
         echo ms=$(( (t1 - t0) / 1000000 ))
         [ -d /proc/$victim ] && echo VICTIM-ALIVE",
        victim = p(&victim_pid)
    ));
    assert!(out.stdout.contains("status=125"), "{out:#?}");
    assert!(out.stdout.contains("VICTIM-ALIVE"), "{out:#?}");
    assert!(
        out.stderr
            .contains("become-root: session forged: cannot signal its process"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("\nhint: "), "{}", out.stderr);
    let ms: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ms="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ms < 2000,
        "--stop waited {ms} ms for processes it could not signal"
    );
}

// ---- 10. a file size limit is an error with a message, and leaves nothing -------------------

fn a_file_size_limit_fails_detach_with_a_message_and_leaves_no_state() {
    let mut w = World::new();
    let run = w.home().join("run");
    std::fs::create_dir_all(&run).unwrap();
    chown_tree(&run, w.uid);
    w.env.push(("XDG_RUNTIME_DIR".into(), p(&run)));
    let out = w.sh("prlimit --fsize=0 \"$BR\" --name=fs --detach; echo status=$?; ls -A $XDG_RUNTIME_DIR/become-root");
    assert!(out.stdout.starts_with("status=125\n"), "{out:#?}");
    assert_eq!(out.stdout, "status=125\n", "state left behind: {out:#?}");
    assert!(out.stderr.contains("File too large"), "{}", out.stderr);
    assert!(out.stderr.contains("ulimit -f"), "{}", out.stderr);
    assert!(w.leftover_processes().is_empty());
}

// ---- 11. messages that said the wrong thing --------------------------------------------------

fn messages_name_what_is_wrong() {
    let w = world();
    let home = w.home();
    let file = home.join("file");
    std::fs::write(&file, "").unwrap();
    chown_tree(&home, w.uid);
    // A PATH directory root (unmapped inside) keeps to itself: root inside the namespace
    // has no capability over it, as it would over one of the caller's own.
    let locked = w.dir.join("locked");
    std::fs::create_dir(&locked).unwrap();
    common::chmod(&locked, 0o700);
    let rows: Vec<(String, i32, Vec<String>)> = vec![
        (
            format!("\"$BR\" --rootfs={} true", p(&file)),
            125,
            vec![format!("--rootfs {}: Not a directory", p(&file))],
        ),
        (
            "\"$BR\" --rootfs=/ true".into(),
            125,
            vec!["--rootfs /: is the root already".into()],
        ),
        (
            "\"$BR\" --copy-up= true".into(),
            125,
            vec!["--copy-up=: empty path".into()],
        ),
        (
            "\"$BR\" --info-fd=3 true 3</dev/null".into(),
            125,
            vec!["--info-fd=3: open for reading only".into()],
        ),
        (
            format!("PATH={}:/usr/bin:/bin \"$BR\" no-such-command", p(&locked)),
            127,
            vec![format!(
                "no-such-command: command not found (PATH entry {} could not be searched)",
                p(&locked)
            )],
        ),
    ];
    for (cmd, code, wants) in rows {
        let out = w.sh(&cmd);
        assert_eq!(out.code(), Some(code), "{cmd}: {out:#?}");
        for want in wants {
            assert!(
                out.stderr.contains(&want),
                "{cmd}: want {want:?}: {}",
                out.stderr
            );
        }
        assert!(out.stderr.contains("\nhint: "), "{cmd}: {}", out.stderr);
    }
    // A command that is there still runs past an unsearchable PATH entry.
    let out = w.sh(&format!("PATH={}:/usr/bin:/bin \"$BR\" true", p(&locked)));
    assert!(out.status.success(), "{out:#?}");
}
