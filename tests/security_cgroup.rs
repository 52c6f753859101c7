//! Regression tests for the cgroup part of the hostile review of become-root (issue 8): the
//! janitor that removes a run's cgroup after become-root (D18), the caller's descriptors that
//! what become-root leaves running would hold (D19), and the scope path, where the systemd
//! user manager is asked for a cgroup (D22). The scope path needs systemd, which the VM tier
//! has (tests/vm/guest/scenarios, `cgroup_scope_bounds`); here a fake busctl on PATH stands
//! in for the user manager, answering, failing or never answering.
mod common;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use common::{World, chown_tree};

common::tests! {
    [Harness, Cgroup2]
        d18_the_janitor_sleeps_while_a_leftover_keeps_the_cgroup_populated,
        d18_a_cgroup_tree_deeper_than_path_max_is_removed,
        d18_an_unreadable_sub_cgroup_is_removed_or_reported_and_the_janitor_ends;
    [Harness, Cgroup2, Tool("busybox"), Tool("slirp4netns"), Tool("pasta"), Tool("fuse-overlayfs"), Tool("pkill")]
        d19_nothing_become_root_leaves_running_holds_the_callers_stdout_or_stderr;
    [Harness]
        d22_a_signal_while_the_user_manager_is_asked_for_a_scope_ends_the_run_at_once,
        d22_check_asks_the_user_manager_before_it_says_ok;
}

/// A world with a cgroup of the test user's own and a state directory in its home
/// (`$XDG_RUNTIME_DIR/become-root`, where the janitor reports).
fn world() -> World {
    let mut w = World::new();
    w.delegate_cgroup();
    let xdg = w.home().join("run");
    std::fs::create_dir(&xdg).unwrap();
    common::chmod(&xdg, 0o700);
    chown_tree(&xdg, w.uid);
    w.env
        .push(("XDG_RUNTIME_DIR".into(), xdg.display().to_string()));
    w
}

/// The janitor's report file.
fn janitor_log(w: &World) -> PathBuf {
    w.home().join("run/become-root/janitor.log")
}

/// Remove cgroup `dir` and everything below it, as root, descriptor-relative (a tree deeper
/// than PATH_MAX cannot be removed by path): what a failed test leaves must not outlive it.
fn remove_cgroup_tree(dir: &Path) {
    use nix::fcntl::{AT_FDCWD, OFlag, openat};
    use nix::sys::stat::Mode;
    use nix::unistd::{UnlinkatFlags, unlinkat};
    fn below(fd: std::os::fd::BorrowedFd<'_>) {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let Ok(listing) = nix::dir::Dir::openat(fd, ".", flags, Mode::empty()) else {
            return;
        };
        let names: Vec<std::ffi::CString> = listing
            .into_iter()
            .flatten()
            .filter(|e| e.file_type() == Some(nix::dir::Type::Directory))
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        for name in names {
            let _ = nix::sys::stat::fchmodat(
                fd,
                name.as_c_str(),
                Mode::S_IRWXU,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            );
            if let Ok(child) = openat(fd, name.as_c_str(), flags, Mode::empty()) {
                below(child.as_fd());
            }
            let _ = unlinkat(fd, name.as_c_str(), UnlinkatFlags::RemoveDir);
        }
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if let Ok(fd) = openat(AT_FDCWD, dir, flags, Mode::empty()) {
        below(fd.as_fd());
    }
}

// ---- D18: the janitor --------------------------------------------------------------------

fn d18_the_janitor_sleeps_while_a_leftover_keeps_the_cgroup_populated() {
    // COMMAND leaves a daemon behind: become-root returns, its janitor waits for the cgroup to
    // empty. It measured a whole core (it polled cgroup.events through a descriptor it never
    // read, which the kernel reports as changed on every poll): here its CPU time over 3 s.
    let w = world();
    let out = w.sh(&format!(
        "\"$BR\" --cgroup sh -c 'sleep 60 </dev/null >/dev/null 2>&1 & echo $! > leftover' \
         >/dev/null 2>&1; echo status $?; \
         janitor=$(pgrep -u $(id -u) -x become-root); echo janitors $(echo $janitor | wc -w); \
         ps -o pid,ppid,stat,etimes,comm -u $(id -u) >&2; \
         ticks() {{ awk '{{print $14 + $15}}' /proc/$janitor/stat; }}; \
         before=$(ticks); sleep 3; after=$(ticks); \
         echo cpu $((after - before)) of $((3 * $(getconf CLK_TCK))); \
         kill $(cat leftover); \
         {until} sh -c '! ls -d /sys/fs/cgroup/become-root-* >/dev/null 2>&1' && echo leaf-gone",
        until = World::until()
    ));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["status 0", "janitors 1"], "{out:#?}");
    let cpu: Vec<u64> = lines[2]
        .trim_start_matches("cpu ")
        .split(" of ")
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(cpu.len(), 2, "{out:#?}");
    eprintln!(
        "the janitor used {} of {} clock ticks in 3 s",
        cpu[0], cpu[1]
    );
    // Asleep: a few ticks at most (the scheduler's accounting), not 300 of 300.
    assert!(
        cpu[0] * 50 < cpu[1],
        "the janitor used {} of {} ticks: {out:#?}",
        cpu[0],
        cpu[1]
    );
    assert_eq!(lines.get(3), Some(&"leaf-gone"), "{out:#?}");
    w.assert_nothing_left();
}

fn d18_a_cgroup_tree_deeper_than_path_max_is_removed() {
    // 24 levels of 200-character names: 4824 bytes below the run's cgroup, more than
    // PATH_MAX (4096). Removing by path failed with ENAMETOOLONG and left the tree.
    let w = world();
    let out = w.sh(
        "\"$BR\" --cgroup sh -c 'cd /sys/fs/cgroup && n=$(printf %0200d 0) && \
         for i in $(seq 24); do mkdir $n && cd -P $n || exit 1; done; echo deep' 2>&1; \
         echo status $?",
    );
    let left = w.cgroups_below();
    let running = w.wait_no_leftovers();
    if let Some(cg) = &w.cgroup {
        remove_cgroup_tree(cg);
    }
    assert_eq!(out.stdout, "deep\nstatus 0\n", "{out:#?}");
    assert!(left.is_empty(), "left behind: {} cgroups", left.len());
    assert!(running.is_empty(), "left running: {running:?}");
}

fn d18_an_unreadable_sub_cgroup_is_removed_or_reported_and_the_janitor_ends() {
    // Root inside makes a sub-cgroup nobody may search. Owned by the caller (root inside is
    // the caller outside), the janitor may give itself access back and remove it; owned by a
    // subordinate id, it cannot, and must say so and end: it spun on it forever, at 100% of
    // a core.
    let w = world();
    let out = w.sh(
        "\"$BR\" --cgroup sh -c 'mkdir -p /sys/fs/cgroup/a/b && chmod 000 /sys/fs/cgroup/a' \
         >/dev/null 2>&1; echo status $?",
    );
    let left = w.cgroups_below();
    let running = w.wait_no_leftovers();
    if let Some(cg) = &w.cgroup {
        remove_cgroup_tree(cg);
    }
    assert_eq!(out.stdout, "status 0\n", "{out:#?}");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(running.is_empty(), "left running: {running:?}");

    let out = w.sh(
        "\"$BR\" --cgroup sh -c 'mkdir -p /sys/fs/cgroup/a/b && chown 1000 /sys/fs/cgroup/a && \
         chmod 000 /sys/fs/cgroup/a' >/dev/null 2>&1; echo status $?",
    );
    // The janitor gives up at once (nothing will change by waiting) and reports; --check
    // shows it with the fix, which works as written.
    let running = w.wait_no_leftovers();
    let left = w.cgroups_below();
    let report = std::fs::read_to_string(janitor_log(&w)).unwrap_or_default();
    let check_line = |w: &World| {
        let out = w.run(&["--check"]);
        let line = out.stdout.lines().find(|l| l.contains(" cgroup janitor: "));
        line.unwrap_or_default().to_string()
    };
    let check = check_line(&w);
    let leaf_dir = left.first().and_then(|p| p.file_name());
    let leaf_dir = Path::new("/sys/fs/cgroup").join(leaf_dir.unwrap_or_default());
    let fix = w.sh(&format!(
        "\"$BR\" find {} -depth -type d -exec rmdir {{}} +",
        leaf_dir.display()
    ));
    let after_fix = (w.cgroups_below(), check_line(&w));
    if let Some(cg) = &w.cgroup {
        remove_cgroup_tree(cg);
    }
    assert_eq!(out.stdout, "status 0\n", "{out:#?}");
    assert!(running.is_empty(), "left running: {running:?}");
    let leaf = left
        .first()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(leaf.starts_with("become-root-"), "{left:?}");
    // One line: when, which cgroup is left, what could not be removed and why.
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 1, "{report}");
    assert!(
        lines[0].contains(&format!(
            "/{leaf}: left in place: {leaf}/a: Permission denied"
        )),
        "{report}"
    );
    assert!(
        check.starts_with(
            "warn  cgroup janitor: 1 cgroup(s) of earlier runs left in place, the last: "
        ) && check.contains(
            "; fix: remove each with `become-root find PATH -depth -type d -exec rmdir {} +`"
        ),
        "{check}"
    );
    assert!(fix.status.success(), "{fix:#?}");
    assert_eq!(after_fix, (Vec::new(), String::new()), "after the fix");
}

// ---- D19: nothing left running holds the caller's descriptors ------------------------------

/// A busybox image whose /sbin/init says it is up on the console and waits.
fn boot_image(w: &World) -> PathBuf {
    let root = w.home().join("image");
    common::busybox_rootfs(&root, w.uid, &["sh", "sleep"], "");
    for dir in ["sbin", "run"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let init = root.join("sbin/init");
    common::write_executable(
        &init,
        "#!/bin/sh\necho up\nwhile :; do sleep 1; done\n",
        0o755,
    );
    chown_tree(&root, w.uid);
    root
}

fn d19_nothing_become_root_leaves_running_holds_the_callers_stdout_or_stderr() {
    // `become-root --name=x --detach --cgroup sleep 100 2>&1 | cat` did not return until
    // --stop: the janitor, forked before the session let go of the caller's stderr, kept it.
    // Each run here is piped to cat, as `$(...)`, ssh and CI runners capture output; cat
    // must see the end of the pipe as soon as become-root has returned.
    let mut w = world();
    w.own_network = true; // pasta copies the uplink: the harness's own
    let image = boot_image(&w);
    for dir in ["lower", "target"] {
        std::fs::create_dir_all(w.home().join(dir)).unwrap();
    }
    chown_tree(&w.home(), w.uid);
    let cases: &[(&str, &str)] = &[
        ("detached, --cgroup", "--name=s --detach --cgroup sleep 100"),
        (
            "detached, slirp4netns and a port",
            "--name=s --detach --net=slirp4netns -p 127.0.0.1:0:80 sleep 100",
        ),
        ("detached, pasta", "--name=s --detach --net=pasta sleep 100"),
        (
            "detached, fuse-overlayfs",
            "--name=s --detach --overlay-driver=fuse --overlay=lower:target sleep 100",
        ),
        (
            "detached, no command, --pid --cgroup",
            "--name=s --detach --pid --cgroup",
        ),
        (
            "detached, --boot",
            &format!("--name=s --detach --boot --rootfs={}", image.display()),
        ),
        (
            "a daemon left in the cgroup",
            "--cgroup sh -c 'sleep 100 </dev/null >/dev/null 2>&1 &'",
        ),
    ];
    let mut got = Vec::new();
    for (name, args) in cases {
        // Whether cat saw the end of the pipe within 10 s of become-root's start (it returns
        // in well under a second); then the session is stopped, the daemon killed, and every
        // process of the run is gone before the next case.
        let out = w.sh(&format!(
            "timeout -s KILL 10 sh -c '{{ \"$BR\" {args} 2>&1; echo $? > returned; }} | \
             cat >/dev/null'; echo \"$? (become-root: $(cat returned))\"; \
             \"$BR\" --stop=s >/dev/null 2>&1; pkill -u $(id -u) -x sleep; \
             {until} sh -c 'for p in {ours}; do pgrep -u $(id -u) -x $p >/dev/null && exit 1; \
             done; exit 0'",
            args = args.replace('\'', r"'\''"),
            until = World::until(),
            ours = "become-root sleep cat init slirp4netns pasta fuse-overlayfs",
        ));
        got.push(format!("{name}: {}", out.stdout.trim_end()));
    }
    let want: Vec<String> = cases
        .iter()
        .map(|(name, _)| format!("{name}: 0 (become-root: 0)"))
        .collect();
    assert_eq!(got, want);
    w.assert_nothing_left();
}

// ---- D22: the scope path ----------------------------------------------------------------

/// A world without a cgroup of its own, whose PATH finds a fake busctl first (its body is
/// `script`) and whose session bus seems to be there: --cgroup takes the scope path.
fn scope_world(script: &str) -> World {
    let mut w = World::new();
    let bin = w.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let busctl = bin.join("busctl");
    common::write_executable(
        &busctl,
        format!("#!/bin/sh\necho \"$*\" >> $HOME/busctl.calls\n{script}\n"),
        0o755,
    );
    chown_tree(&w.home(), w.uid);
    w.env.push((
        "PATH".into(),
        format!(
            "{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            bin.display()
        ),
    ));
    w.env.push((
        "DBUS_SESSION_BUS_ADDRESS".into(),
        "unix:path=/nonexistent/bus".into(),
    ));
    w
}

fn d22_a_signal_while_the_user_manager_is_asked_for_a_scope_ends_the_run_at_once() {
    // A user manager that never answers: SIGTERM or SIGINT (a service manager's stop, kill(1),
    // Ctrl-C) during the request was held until busctl gave up, plus 10 s (29 s measured).
    // It must end the run at once: busctl killed, nothing left, death by the same signal.
    let w = scope_world("touch $HOME/busctl.started; exec sleep 20");
    let mut script = String::new();
    for sig in ["TERM", "INT"] {
        script.push_str(&format!(
            "rm -f busctl.started; env --default-signal \"$BR\" --cgroup true 2>err & pid=$!; \
             {until} test -e busctl.started || exit 1; \
             start=$(date +%s%N); kill -{sig} $pid; wait $pid; status=$?; \
             echo \"{sig}: status $status in $(( ($(date +%s%N) - start) / 100000000 )) tenths\"; \
             cat err\n",
            until = World::until(),
        ));
    }
    let out = w.sh(&script);
    let lines: Vec<&str> = out.stdout.lines().collect();
    for (line, (sig, status)) in lines.iter().zip([("TERM", 143), ("INT", 130)]) {
        let tenths: u64 = line
            .strip_prefix(&format!("{sig}: status {status} in "))
            .and_then(|rest| rest.strip_suffix(" tenths"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{sig}: {out:#?}"));
        // At once: well under a second, not when busctl gives up.
        assert!(tenths < 10, "{sig}: {out:#?}");
        eprintln!("SIG{sig} ended the run {tenths} tenths of a second after it was sent");
    }
    // Died of the signal, as a program without handlers does: no message.
    assert_eq!(lines.len(), 2, "{out:#?}");
    let calls = std::fs::read_to_string(w.home().join("busctl.calls")).unwrap_or_default();
    assert_eq!(
        calls.matches("StartTransientUnit").count(),
        2,
        "busctl was asked for a scope each time: {calls}"
    );
    w.assert_nothing_left();
}

fn d22_check_asks_the_user_manager_before_it_says_ok() {
    // --check said "ok" for the scope path when busctl was on PATH and a bus address was set,
    // without asking anything: a run then failed. It must ask (a cheap call, bounded in
    // time), and say what failed and the fix.
    let cgroup_line = |w: &World| {
        let started = std::time::Instant::now();
        let out = w.run(&["--check"]);
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(" cgroup: "))
            .unwrap_or_default()
            .to_string();
        (line, started.elapsed(), out)
    };
    // Answers, as systemd does (a Properties.Get of the manager's Version; busctl prints no
    // answer with --quiet).
    let w = scope_world(
        "case \" $* \" in *' --quiet '*) exit 0 ;; esac; echo 'v s \"252.30-1~deb12u2\"'",
    );
    let (line, _, out) = cgroup_line(&w);
    assert!(
        line.starts_with(
            "ok    cgroup: a scope of your systemd user manager (systemd 252.30-1~deb12u2"
        ),
        "{out:#?}"
    );
    let calls = std::fs::read_to_string(w.home().join("busctl.calls")).unwrap_or_default();
    assert!(
        calls.contains("--user") && calls.contains("Version"),
        "{calls}"
    );
    // No user manager on the bus.
    let w = scope_world("echo 'Failed to connect to bus: No such file or directory' >&2; exit 1");
    let (line, _, out) = cgroup_line(&w);
    assert!(
        line.starts_with("warn  cgroup: your systemd user manager does not answer: Failed to connect to bus: No such file or directory; fix: "),
        "{out:#?}"
    );
    // A user manager that never answers: --check says so within its bound.
    let w = scope_world("exec sleep 60");
    let (line, took, out) = cgroup_line(&w);
    assert!(
        line.starts_with(
            "warn  cgroup: your systemd user manager does not answer: no answer within 3 s; fix: "
        ),
        "{out:#?}"
    );
    assert!(took.as_secs() < 10, "--check took {took:?}");
    eprintln!("--check with a user manager that never answers took {took:?}");
    w.assert_nothing_left();
}
