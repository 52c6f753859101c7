//! Sessions (--name, --detach, --join, --list, --stop) through the hermetic harness, as an
//! unprivileged user. Every test keeps its state in a directory of the test user's
//! (XDG_RUNTIME_DIR in the world's home); the World kills whatever of that user is still
//! running when it ends, so a failing test leaves no pause process behind.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Out, World};

common::tests! {
    [Harness]
        detach_returns_promptly_and_leaves_a_holder,
        two_joins_see_the_same_mounts_and_the_host_does_not,
        join_runs_as_root_in_the_callers_directory_and_returns_the_status,
        join_enters_the_pid_namespace,
        stop_ends_everything_inside_and_removes_the_state,
        a_session_with_a_command_ends_with_it_and_logs_its_output,
        a_detached_log_is_bounded,
        a_process_left_behind_writes_on_to_the_log_after_the_session_ended,
        a_named_run_in_the_foreground_is_listed_while_it_runs,
        a_live_name_cannot_be_taken_twice,
        stale_state_is_detected_and_cleaned,
        the_state_directory_must_be_private_and_the_callers,
        without_xdg_runtime_dir_state_lives_in_a_checked_directory_in_tmp,
        bad_usage_is_refused_before_anything_starts;
    [Harness, Tool("python3")] list_shows_the_sessions_and_its_json_parses;
    [Harness, Tool("slirp4netns"), Tool("python3"), Tool("ip")]
        joining_a_slirp4netns_session_keeps_its_network_and_published_ports;
    [Harness, Tool("busybox")]
        a_rootfs_session_needs_no_shell_inside_and_joins_start_in_its_directory;
}

/// A world whose user keeps session state in `home/xdg/become-root`.
struct Sessions {
    w: World,
}

impl Sessions {
    fn new() -> Sessions {
        let mut w = World::new();
        let xdg = w.home().join("xdg");
        fs::create_dir(&xdg).unwrap();
        common::chmod(&xdg, 0o700);
        nix::unistd::chown(&xdg, Some(w.uid.into()), Some(w.gid.into())).unwrap();
        w.env
            .push(("XDG_RUNTIME_DIR".into(), xdg.display().to_string()));
        Sessions { w }
    }

    fn state_dir(&self) -> PathBuf {
        self.w.home().join("xdg/become-root")
    }

    /// The files in the state directory, sorted.
    fn state_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.state_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The pid a session's state file names as its holder.
    fn holder(&self, name: &str) -> i32 {
        let text = fs::read_to_string(self.state_dir().join(format!("{name}.session"))).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("holder="))
            .unwrap();
        line.split(' ').next().unwrap().parse().unwrap()
    }

    fn detach(&self, name: &str, args: &[&str]) -> Out {
        let mut argv = vec![format!("--name={name}"), "--detach".into()];
        argv.extend(args.iter().map(|a| a.to_string()));
        self.w.run(&argv)
    }
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
}

/// The pid namespace of this test process: the one the harness and the test user share.
fn own_pid_ns() -> u64 {
    fs::metadata("/proc/self/ns/pid").unwrap().ino()
}

fn detach_returns_promptly_and_leaves_a_holder() {
    let s = Sessions::new();
    let started = Instant::now();
    let out = s.detach("hold", &["--mount"]);
    let took = started.elapsed();
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    // w.run returns only when every copy of its stdout and stderr is closed: the background
    // part let go of the caller's terminal.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(s.state_files(), ["hold.log", "hold.session"]);
    let holder = s.holder("hold");
    assert!(alive(holder), "the pause process holds the namespaces");
    let status = fs::read_to_string(format!("/proc/{holder}/status")).unwrap();
    assert!(
        status.contains(&format!("Uid:\t{}", s.w.uid)),
        "the holder is the caller's: {status}"
    );
    // Descriptors the caller handed over (here the harness's own stdout and stderr pipes as 5
    // and 6) are not kept by the session: the capture ends when become-root returns, not
    // when the session does (the harness would time out).
    let started = Instant::now();
    let out = s.w.sh("$BR --name=fds --detach 5>&1 6>&2 && echo returned");
    assert_eq!(out.ok(), "returned\n");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.w.run(&["--stop=fds"]).code(), Some(0));
    let stat = fs::metadata("/proc/self/ns/user").unwrap().ino();
    let held = fs::metadata(format!("/proc/{holder}/ns/user"))
        .unwrap()
        .ino();
    assert_ne!(stat, held, "in a user namespace of its own");
    assert_eq!(s.w.run(&["--stop=hold"]).code(), Some(0));
}

fn two_joins_see_the_same_mounts_and_the_host_does_not() {
    let s = Sessions::new();
    let scratch = s.w.home().join("scratch");
    fs::create_dir(&scratch).unwrap();
    nix::unistd::chown(&scratch, Some(s.w.uid.into()), None).unwrap();
    let tmpfs = format!("--tmpfs={}", scratch.display());
    s.detach("mnt", &[&tmpfs]).ok();
    let script = format!(
        "echo first > {d}/file && mkdir {d}/sub && mount -t tmpfs none {d}/sub && \
         echo deeper > {d}/sub/file",
        d = scratch.display()
    );
    s.w.run(&["--join=mnt", "sh", "-c", &script]).ok();
    let out = s.w.run(&[
        "--join=mnt",
        "sh",
        "-c",
        &format!("cat {d}/file {d}/sub/file", d = scratch.display()),
    ]);
    assert_eq!(out.ok(), "first\ndeeper\n");
    assert!(
        fs::read_dir(&scratch).unwrap().next().is_none(),
        "the session's tmpfs never reaches the host"
    );
    assert_eq!(s.w.run(&["--stop=mnt"]).code(), Some(0));
}

fn join_runs_as_root_in_the_callers_directory_and_returns_the_status() {
    let s = Sessions::new();
    s.detach("id", &["--mount", "--uts"]).ok();
    let out = s.w.sh("mkdir -p here && cd here && $BR --join=id sh -c \
         'id -u; id -g; pwd; hostname inside; cat /proc/self/uid_map; exit 7'");
    assert_eq!(out.code(), Some(7), "{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["0", "0"]);
    assert_eq!(lines[2], s.w.home().join("here").display().to_string());
    let map = common::map_lines(&lines[3..].join("\n"));
    assert_eq!(
        map,
        [
            format!("0 {} 1", s.w.uid),
            format!("1 {} 65536", s.w.sub_start())
        ]
    );
    // The uts namespace is the session's: the hostname set by one join is seen by the next.
    let out = s.w.run(&["--join=id", "hostname"]);
    assert_eq!(out.ok(), "inside\n");
    // By pid too, as nsenter -t would.
    let pid = s.holder("id").to_string();
    let out = s.w.run(&[&format!("--join={pid}"), "hostname"]);
    assert_eq!(out.ok(), "inside\n");
    // --chdir and --uid apply to the joined command.
    let out = s.w.run(&[
        "--join=id",
        "--chdir=/",
        "--uid=1000",
        "sh",
        "-c",
        "pwd; id -u",
    ]);
    assert_eq!(out.ok(), "/\n1000\n");
    // Death by signal is the command's own.
    let out = s.w.run(&["--join=id", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.signal(), Some(nix::libc::SIGTERM), "{out:#?}");
    assert_eq!(s.w.run(&["--stop=id"]).code(), Some(0));
}

fn join_enters_the_pid_namespace() {
    let s = Sessions::new();
    s.detach("pid", &["--pid"]).ok();
    let out = s.w.run(&[
        "--join=pid",
        "sh",
        "-c",
        "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; exit 3",
    ]);
    assert_eq!(out.code(), Some(3), "{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let pid: i32 = lines[0].parse().unwrap();
    assert!(
        pid > 1 && pid < 100,
        "a pid of the session's namespace: {pid}"
    );
    assert!(
        lines[1].contains("become-root"),
        "pid 1 is the pause process: {}",
        lines[1]
    );
    let out = s.w.run(&["--join=pid", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.signal(), Some(nix::libc::SIGKILL), "{out:#?}");
    assert_eq!(s.w.run(&["--stop=pid"]).code(), Some(0));
    assert!(
        s.w.leftover_processes().is_empty(),
        "{:?}",
        s.w.leftover_processes()
    );
}

fn list_shows_the_sessions_and_its_json_parses() {
    let s = Sessions::new();
    assert_eq!(
        s.w.run(&["--list"]).ok(),
        "NAME  PID  CREATED  NAMESPACES  NET  PORTS  STATUS\n"
    );
    s.detach("one", &["--net"]).ok();
    s.detach("two", &["--mount", "--pid"]).ok();
    let text = s.w.run(&["--list"]).ok().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("NAME "), "{text}");
    assert!(
        lines[1].starts_with("one ") && lines[1].contains(" user,net "),
        "{text}"
    );
    assert!(lines[1].contains(" none "), "{text}");
    assert!(
        lines[2].starts_with("two ") && lines[2].contains("user,pid,mnt"),
        "{text}"
    );
    let check = format!(
        r#"
import json, re, sys
d = json.load(sys.stdin)
assert d["state_dir"] == "{dir}", d
one, two = d["sessions"]
assert one["name"] == "one" and two["name"] == "two", d
assert isinstance(one["pid"], int) and one["pid"] > 1, one
assert sorted(one["namespaces"]) == ["net", "user"], one
assert sorted(two["namespaces"]) == ["mnt", "pid", "user"], two
assert one["net"] == "none" and two["net"] is None, d
assert re.fullmatch(r"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ", one["created"]), one
assert one["state_file"] == "{dir}/one.session" and one["log"] == "{dir}/one.log", one
assert one["status"] == "running" and one["net_down"] is None, one
assert one["detached"] is True
print(one["pid"], two["pid"])
"#,
        dir = s.state_dir().display()
    );
    let out = s.w.sh(&format!(
        "$BR --list --json | python3 -c {}",
        common::shell_quote(&check)
    ));
    let pids = out.ok().trim().to_string();
    assert_eq!(pids, format!("{} {}", s.holder("one"), s.holder("two")));
    for name in ["one", "two"] {
        assert_eq!(s.w.run(&[&format!("--stop={name}")]).code(), Some(0));
    }
    assert_eq!(
        s.w.run(&["--list", "--json"]).ok(),
        format!(
            "{{\"state_dir\":\"{}\",\"sessions\":[]}}\n",
            s.state_dir().display()
        )
    );
}

fn stop_ends_everything_inside_and_removes_the_state() {
    let s = Sessions::new();
    // Without a pid namespace, what a join started lives on its own: --stop finds it by
    // its user namespace, nested ones included.
    s.detach("stop", &["--mount"]).ok();
    s.w.run(&[
        "--join=stop",
        "sh",
        "-c",
        "setsid sleep 1000 >/dev/null 2>&1 &",
    ])
    .ok();
    s.w.run(&[
        "--join=stop",
        "sh",
        "-c",
        "setsid unshare -U sleep 1000 >/dev/null 2>&1 &",
    ])
    .ok();
    // A process that ignores SIGTERM gets SIGKILL after the grace period.
    s.w.run(&[
        "--join=stop",
        "sh",
        "-c",
        "setsid sh -c 'trap \"\" TERM; sleep 1000' >/dev/null 2>&1 &",
    ])
    .ok();
    let before = s.w.leftover_processes();
    assert!(before.len() >= 5, "pause, 3 sleeps, sh: {before:?}");
    let started = Instant::now();
    let out = s.w.run(&["--stop=stop"]);
    // It says what it had to kill: the shell that ignores SIGTERM and its sleep.
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(
        out.stderr.starts_with(
            "become-root: session stop: still running 5 s after SIGTERM: killed (pid "
        ) && out.stderr.lines().count() == 1,
        "{out:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert!(
        s.w.leftover_processes().is_empty(),
        "{:?}",
        s.w.leftover_processes()
    );
    assert!(s.state_files().is_empty(), "{:?}", s.state_files());
    // Then the name is gone: joining and stopping it are errors that name it.
    let out = s.w.run(&["--join=stop", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert_eq!(
        out.stderr,
        "become-root: session stop: no such session\n\
         hint: 'become-root --list' shows the sessions\n"
    );
    let out = s.w.run(&["--stop=stop"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr
            .starts_with("become-root: session stop: no such session\n")
    );
}

fn a_session_with_a_command_ends_with_it_and_logs_its_output() {
    let s = Sessions::new();
    let out = s.detach(
        "cmd",
        &["sh", "-c", "echo out; echo err >&2; read line; exit 3"],
    );
    assert_eq!((out.code(), out.stdout.as_str()), (Some(0), ""), "{out:#?}");
    let log = s.state_dir().join("cmd.log");
    assert_eq!(fs::metadata(&log).unwrap().mode() & 0o777, 0o600);
    // COMMAND waits on its standard input (/dev/null: at once at its end), so the session
    // ends by itself; --logs --follow prints its output until then.
    let out = s.w.run(&["--logs=cmd", "--follow"]);
    assert_eq!(out.ok(), "out\nerr\n", "{out:#?}");
    assert!(
        s.w.wait_no_leftovers().is_empty(),
        "{:?}",
        s.w.leftover_processes()
    );
    // The ended session keeps its status and log (as podman ps -a and podman logs) ...
    let out = s.w.run(&["--list"]);
    let row = out.ok().lines().nth(1).unwrap_or_default().to_string();
    assert!(
        row.starts_with("cmd ") && row.ends_with("ended: exited 3"),
        "{out:#?}"
    );
    assert_eq!(s.w.run(&["--logs=cmd"]).ok(), "out\nerr\n");
    // ... cannot be joined ...
    let out = s.w.run(&["--join=cmd", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("session cmd: it has ended (exited 3)"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("hint: "), "{out:#?}");
    // ... and goes with --stop, or when a new session takes its name.
    let out = s.w.run(&["--stop=cmd"]);
    assert_eq!((out.code(), out.stderr.as_str()), (Some(0), ""), "{out:#?}");
    assert!(s.state_files().is_empty(), "{:?}", s.state_files());
    let out = s.detach("again", &["true"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    s.w.run(&["--logs=again", "--follow"]).ok();
    let out = s.detach("again", &["sh", "-c", "echo second"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_eq!(s.w.run(&["--logs=again", "--follow"]).ok(), "second\n");
    // A COMMAND that cannot be found: the session is ready, then COMMAND's error is logged
    // and its status kept.
    let out = s.detach("missing", &["no-such-command-here"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let out = s.w.run(&["--logs=missing", "--follow"]);
    assert!(
        out.ok().contains("no-such-command-here: command not found"),
        "{out:#?}"
    );
    let out = s.w.run(&["--list", "--json"]);
    assert!(out.ok().contains("\"ended\":\"exited 127\""), "{out:#?}");
    // A run in the foreground has no log to keep.
    let out = s.w.run(&["--name=fg", "true"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let out = s.w.run(&["--logs=fg"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        s.w.wait_no_leftovers().is_empty(),
        "{:?}",
        s.w.leftover_processes()
    );
}

fn a_detached_log_is_bounded() {
    let s = Sessions::new();
    // 24 MiB in 1 MiB lines, a tenth of a second apart: the log keeps the last 8 to 16 MiB
    // (session::LOG_MAX, looked at every second), and its last line.
    let script = "for i in $(seq 24); do head -c 1048575 /dev/zero | tr '\\0' x; echo; \
                  sleep 0.1; done; echo END";
    let out = s.detach("big", &["sh", "-c", script]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    // Followed as it is written, all of it is seen (a rotation's bytes come from NAME.log.1).
    let out = s.w.run(&["--logs=big", "--follow"]);
    assert_eq!(out.code(), Some(0));
    assert_eq!(out.stdout.len(), 24 * (1 << 20) + 4, "all of it, followed");
    assert!(out.stdout.ends_with("x\nEND\n"), "{}", out.stdout.len());
    let out = s.w.run(&["--logs=big"]);
    let kept: u64 = ["big.log", "big.log.1"]
        .iter()
        .filter_map(|f| fs::metadata(s.state_dir().join(f)).ok())
        .map(|m| m.len())
        .sum();
    assert!(
        (8 << 20..=(16 << 20) + (2 << 20)).contains(&kept),
        "kept {kept} bytes"
    );
    assert_eq!(out.stdout.len() as u64, kept, "--logs prints what is kept");
    s.w.run(&["--stop=big"]).ok();
    assert!(s.state_files().is_empty(), "{:?}", s.state_files());
}

fn a_process_left_behind_writes_on_to_the_log_after_the_session_ended() {
    // COMMAND's output reaches its log through become-root, which copies it from a pipe (so
    // that starting the log again loses nothing). A process COMMAND leaves behind (no --pid)
    // writes on after the session ended, and that reaches the log too, as when COMMAND wrote
    // to the file itself: a keeper copies it until the last writer is gone. It writes once the
    // test, having seen the session end, gives it a word on a FIFO.
    let s = Sessions::new();
    let fifo = s.w.home().join("later");
    let script = format!(
        "mkfifo {f}; \"$BR\" --name=left --detach sh -c '(read w < {f}; echo LATE $w) & \
         echo EARLY' || exit 1; \
         {until} sh -c '\"$BR\" --list | grep -q \"ended: exited 0\"'; echo now > {f}; \
         {until} sh -c '\"$BR\" --logs=left | grep -q LATE'; \"$BR\" --logs=left",
        f = fifo.display(),
        until = World::until()
    );
    let out = s.w.sh(&script);
    assert_eq!(out.ok(), "EARLY\nLATE now\n", "{out:#?}");
    assert!(
        s.w.wait_no_leftovers().is_empty(),
        "the keeper ends with the last writer: {:?}",
        s.w.leftover_processes()
    );
    let out = s.w.run(&["--stop=left"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert!(s.state_files().is_empty(), "{:?}", s.state_files());
}

fn a_named_run_in_the_foreground_is_listed_while_it_runs() {
    let s = Sessions::new();
    let out =
        s.w.run(&["--name=fg", "sh", "-c", "$BR --list; $BR --join=fg id -u"]);
    let text = out.ok();
    assert!(
        text.lines().nth(1).is_some_and(|l| l.starts_with("fg ")),
        "{text}"
    );
    assert!(text.ends_with("\n0\n"), "joined from inside: {text}");
    assert!(
        s.state_files().is_empty(),
        "removed when the run ends: {:?}",
        s.state_files()
    );
}

fn a_live_name_cannot_be_taken_twice() {
    let s = Sessions::new();
    s.detach("dup", &[]).ok();
    let holder = s.holder("dup");
    for args in [vec!["--name=dup", "--detach"], vec!["--name=dup", "true"]] {
        let out = s.w.run(&args);
        assert_eq!(out.code(), Some(125), "{args:?}: {out:#?}");
        assert_eq!(
            out.stderr,
            format!(
                "become-root: session dup: already exists (pid {holder})\n\
                 hint: join it (--join=dup), end it (--stop=dup), or choose another --name\n"
            )
        );
    }
    assert_eq!(s.holder("dup"), holder, "the first session is untouched");
    s.w.run(&["--join=dup", "true"]).ok();
    assert_eq!(s.w.run(&["--stop=dup"]).code(), Some(0));
    // Once stopped, the name is free again.
    s.detach("dup", &[]).ok();
    assert_eq!(s.w.run(&["--stop=dup"]).code(), Some(0));
}

fn stale_state_is_detected_and_cleaned() {
    let s = Sessions::new();
    let dir = s.state_dir();
    fs::create_dir(&dir).unwrap();
    common::chmod(&dir, 0o700);
    nix::unistd::chown(&dir, Some(s.w.uid.into()), None).unwrap();
    // A pid that is gone, and pid 1 with another start time: a reused pid.
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    };
    let stale = |name: &str, pid: u32, start: u64| {
        let text = format!(
            "become-root session 1\nname={name}\nsupervisor={pid} {start}\n\
             holder={pid} {start}\npid_ns={}\ncreated=1700000000\nnamespaces=user:1\n\
             detached=yes\n",
            own_pid_ns()
        );
        fs::write(dir.join(format!("{name}.session")), text).unwrap();
        fs::write(dir.join(format!("{name}.log")), "old\n").unwrap();
    };
    for name in ["listed", "joined", "stopped", "reused"] {
        stale(name, dead, 12345);
    }
    stale("pid1", 1, 1);
    fs::write(dir.join("garbage.session"), "not a state file\n").unwrap();
    fs::write(dir.join("orphan.log"), "").unwrap();
    let out = s.w.run(&["--list"]);
    assert_eq!(out.ok().lines().count(), 1, "only the header: {out:#?}");
    assert!(s.state_files().is_empty(), "{:?}", s.state_files());

    stale("joined", dead, 12345);
    let out = s.w.run(&["--join=joined", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr
            .starts_with("become-root: session joined: no such session\n")
    );
    stale("stopped", dead, 12345);
    let out = s.w.run(&["--stop=stopped"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    stale("reused", 1, 1);
    let out = s.detach("reused", &[]);
    assert_eq!(out.code(), Some(0), "a stale name is taken over: {out:#?}");
    assert_eq!(s.w.run(&["--join=reused", "true"]).code(), Some(0));
    assert_eq!(s.w.run(&["--stop=reused"]).code(), Some(0));
    assert!(s.state_files().is_empty(), "{:?}", s.state_files());
}

fn the_state_directory_must_be_private_and_the_callers() {
    let s = Sessions::new();
    let dir = s.state_dir();
    fs::create_dir(&dir).unwrap();
    nix::unistd::chown(&dir, Some(s.w.uid.into()), None).unwrap();
    common::chmod(&dir, 0o755);
    let out = s.w.run(&["--name=x", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("has mode 0755; it must be 0700"),
        "{}",
        out.stderr
    );
    common::chmod(&dir, 0o700);
    nix::unistd::chown(&dir, Some(0.into()), None).unwrap();
    let out = s.w.run(&["--list"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("is owned by uid 0, not by you"),
        "{}",
        out.stderr
    );
    fs::remove_dir(&dir).unwrap();
    std::os::unix::fs::symlink(s.w.home(), &dir).unwrap();
    let out = s.w.run(&["--name=x", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("a symlink is refused"),
        "{}",
        out.stderr
    );
    fs::remove_file(&dir).unwrap();
    // Created when missing, mode 0700.
    s.w.run(&["--name=x", "true"]).ok();
    assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
}

fn without_xdg_runtime_dir_state_lives_in_a_checked_directory_in_tmp() {
    let mut s = Sessions::new();
    s.w.env.retain(|(k, _)| k != "XDG_RUNTIME_DIR");
    let dir = PathBuf::from(format!("/tmp/become-root-{}", s.w.uid));
    // The uid is this World's own (see World::new), so the name is too.
    let _ = fs::remove_dir_all(&dir);
    let out = s.w.run(&["--name=tmp", "sh", "-c", "$BR --list --json"]);
    let text = out.ok().to_string();
    let meta = fs::metadata(&dir);
    let _ = fs::remove_dir_all(&dir);
    assert!(
        text.starts_with(&format!("{{\"state_dir\":\"{}\",", dir.display())),
        "{text}"
    );
    assert!(text.contains("\"name\":\"tmp\""), "{text}");
    let meta = meta.unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (s.w.uid, 0o700));
}

fn bad_usage_is_refused_before_anything_starts() {
    let s = Sessions::new();
    for args in [
        vec!["--detach", "true"],
        vec!["--join=x", "--net"],
        vec!["--join=x", "--tmpfs=/tmp"],
        vec!["--list", "true"],
        vec!["--stop=x", "--pid"],
        vec!["--json"],
        vec!["--name=12", "true"],
        vec!["--name=-x", "true"],
        vec!["--name=a/b", "true"],
        vec!["--join=../x", "true"],
    ] {
        let out = s.w.run(&args);
        assert_eq!(out.code(), Some(125), "{args:?}: {out:#?}");
        assert!(
            out.stderr.starts_with("become-root: "),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(s.state_files().is_empty(), "{:?}", s.state_files());
}

fn joining_a_slirp4netns_session_keeps_its_network_and_published_ports() {
    let mut s = Sessions::new();
    s.w.own_network = true;
    s.w.services.push(format!(
        "python3 {} 192.0.2.2 8999 60",
        World::helper("tcp-echo.py")
    ));
    // One harness run: the services above live as long as it does.
    let out = s.w.sh(&format!(
        "set -e
$BR --name=net --detach --net=slirp4netns -p 18080:8080
$BR --join=net sh -c 'ip -o -4 addr show tap0; ip route show default; cat /etc/resolv.conf'
$BR --join=net python3 {client} tcp 192.0.2.2 8999
$BR --join=net python3 {echo} 127.0.0.1 8080 20 &
python3 {client} tcp 127.0.0.1 18080
$BR --stop=net
wait",
        client = World::helper("client.py"),
        echo = World::helper("tcp-echo.py"),
    ));
    let text = out.ok();
    assert!(text.contains("inet 10.0.2.100/24"), "{text}");
    assert!(text.contains("default via 10.0.2.2"), "{text}");
    assert!(text.contains("nameserver 10.0.2.3\n"), "{text}");
    assert!(text.contains("hello from 192.0.2.2\n"), "outbound: {text}");
    assert!(
        text.ends_with("hello from 127.0.0.1\n"),
        "published port: {text}"
    );
    assert!(
        s.w.wait_no_leftovers().is_empty(),
        "{:?}",
        s.w.leftover_processes()
    );
    assert!(s.state_files().is_empty(), "{:?}", s.state_files());
}

fn a_rootfs_session_needs_no_shell_inside_and_joins_start_in_its_directory() {
    let s = Sessions::new();
    let busybox = common::which("busybox").unwrap();
    let root = s.w.home().join("rootfs");
    for dir in ["bin", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    let rootfs = format!("--rootfs={}", root.display());
    // Nothing to run inside yet: a session without COMMAND runs none.
    s.detach("rfs", &[&rootfs, "--pid"]).ok();
    // The rootfs is bound, not copied: what arrives later is seen inside.
    common::copy_executable(&busybox, &root.join("bin/busybox"), 0o755);
    let out = s.w.run(&[
        "--join=rfs",
        "/bin/busybox",
        "sh",
        "-c",
        "cat /proc/1/comm; pwd; /bin/busybox ls /",
    ]);
    // The caller's directory does not exist in the new root: the session's own is used.
    assert_eq!(out.ok(), "become-root\n/\nbin\ndev\nproc\nsys\ntmp\n");
    assert_eq!(s.w.run(&["--stop=rfs"]).code(), Some(0));
}
