//! `--as-pid-1` and `--boot` (issue 10, item 4) through the hermetic harness. A booted image
//! here is a busybox root whose /sbin/init is a script that reports what systemd's container
//! interface promises (pid 1, $container, /dev/console, tmpfs /run, a fresh /sys, its own
//! cgroup) on its console and halts on SIGRTMIN+3; systemd itself boots in the VM tier.

mod common;

use std::path::{Path, PathBuf};

use common::World;

common::tests! {
    [Harness]
        as_pid_1_makes_command_pid_1_and_ends_as_it_ends,
        boot_needs_a_rootfs;
    [Harness, Cgroup2, File("BECOME_ROOT_BOOT_IMAGE", "tests/vm/build-bootimage bookworm makes one (.ci/run does)")]
        systemd_boots_a_debian_image_and_stops_cleanly;
    [Harness, Tool("gcc"), Tool("python3"), Tool("bash")]
        d20_a_pid_1_of_as_pid_1_cannot_type_into_the_callers_terminal;
    [Harness, Cgroup2, Tool("busybox"), Tool("gcc"), Tool("python3"), Tool("bash")]
        d20_a_booted_image_cannot_type_into_the_callers_terminal,
        d20_a_join_of_a_booted_session_gets_a_terminal_of_the_images;
    [Harness, Cgroup2, Tool("busybox"), Tool("python3")]
        the_boot_console_is_interactive_at_a_terminal,
        the_console_escape_halts_the_image;
    [Harness, Tool("python3")] as_pid_1_at_a_terminal_gets_a_terminal_of_its_own;
    [Harness, Cgroup2, Tool("busybox"), Tool("gcc")]
        detach_of_a_notifying_image_returns_once_it_is_ready,
        a_booted_session_is_joined_and_stopped_with_sigrtmin_3,
        a_rebooted_session_lives_on_with_its_name;
    [Harness, Cgroup2, Tool("busybox"), Tool("gcc"), Tool("python3")]
        a_service_manager_hears_ready_when_the_image_is_and_stopping;
    [Harness, Tool("python3")] a_service_manager_hears_ready_and_command_gets_no_notify_socket;
    [Harness, Cgroup2, File("BECOME_ROOT_BOOT_IMAGE", "tests/vm/build-bootimage bookworm makes one (.ci/run does)")]
        the_readme_boot_recipe_runs_as_a_script_ten_times;
    [Harness, Cgroup2, Tool("python3"), File("BECOME_ROOT_BOOT_IMAGE", "tests/vm/build-bootimage bookworm makes one (.ci/run does)")]
        a_systemd_image_at_a_terminal_shows_a_login_prompt;
    [Harness, Cgroup2, File("BECOME_ROOT_BOOT_IMAGE", "tests/vm/build-bootimage bookworm makes one (.ci/run does)")]
        a_systemd_image_with_a_published_port_stops_as_quickly_as_without;
    [Harness, Cgroup2, Tool("busybox"), Tool("gcc"), Tool("curl")]
        a_booted_image_publishes_ports_without_net;
    [Harness, Cgroup2, Tool("busybox")]
        the_console_of_a_boot_that_failed_is_kept,
        a_halted_or_powered_off_image_ends_with_0_and_exit_n_with_n,
        a_rebooted_image_boots_again_in_new_namespaces;
    [Harness, Cgroup2, Tool("busybox"), Tool("python3")]
        d21_a_stop_in_the_first_moments_of_a_boot_is_not_lost,
        d21_an_image_that_ignores_sigrtmin_3_is_killed_after_the_stop_timeout,
        the_console_is_copied_to_its_last_line_before_become_root_returns;
    [Harness, Cgroup2, Tool("busybox"), Tool("gcc"), Tool("python3")]
        boot_gives_init_the_container_interface_and_stops_it_with_sigrtmin_3;
    [Harness, Cgroup2, Tool("busybox")]
        stop_of_a_session_at_once_after_detach_returns_once_the_image_is_gone,
        boot_without_init_in_the_rootfs_is_an_error;
}

/// SIGRTMIN+3 with glibc's SIGRTMIN (34), as busybox's trap takes it.
const RTMIN_3: i32 = 37;

fn image(w: &World) -> PathBuf {
    image_with(w, "image", &image_init(""))
}

/// The init of [`image`], with `ready` (a command) once it is up.
fn image_init(ready: &str) -> String {
    format!(
        "say pid $$\n\
         say container=$container\n\
         [ -c /dev/console ] && say console is a terminal\n\
         grep -q ' /run tmpfs ' /proc/mounts && say run is a tmpfs\n\
         grep -q ' /sys sysfs ' /proc/mounts && say sys is sysfs\n\
         say $(grep ^0:: /proc/self/cgroup)\n\
         touch /run/booted\n\
         trap 'say halting; exit 0' {RTMIN_3}\n\
         say up\n\
         {ready}\n\
         while :; do sleep 0.1; done\n"
    )
}

/// A busybox image in `name` whose /sbin/init is a shell script with `say` (a line on the
/// console) and then `body`.
fn image_with(w: &World, name: &str, body: &str) -> PathBuf {
    let root = w.home().join(name);
    common::busybox_rootfs(
        &root,
        w.uid,
        &[
            "sh", "echo", "grep", "head", "touch", "sleep", "cat", "hostname", "stty", "tty",
            "poweroff", "reboot", "halt", "httpd", "mkdir",
        ],
        "",
    );
    for dir in ["sbin", "run"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let init = format!(
        "#!/bin/sh\n\
         say() {{ echo \"init: $*\" > /dev/console; }}\n\
         {body}"
    );
    let path = root.join("sbin/init");
    common::write_executable(&path, init, 0o755);
    common::chown_tree(&root, w.uid);
    root
}

fn world() -> World {
    let mut w = World::new();
    w.delegate_cgroup();
    w
}

/// The script's lines that start `become-root ARGS` in the background as a service manager
/// starts a Type=notify unit, its standard error in `console`, and wait, as the manager
/// does, for its READY=1 (tests/helpers/notify-listen.py: the messages go to
/// $HOME/messages). Then `$pid` is become-root's, and the unit may be stopped: a stop asked
/// for before pid 1 handles it is held until it does (D21). Not a wait for the image's
/// console to say something, which no user has.
fn started_as_a_unit(args: &str, console: &Path) -> String {
    format!(
        "python3 {listen} $HOME/notify $HOME/none > $HOME/messages & listener=$!; \
         {until} test -S $HOME/notify; \
         NOTIFY_SOCKET=$HOME/notify \"$BR\" {args} 2>{c} & pid=$!; \
         {until} grep -q READY=1 $HOME/messages; ",
        listen = World::helper("notify-listen.py"),
        until = World::until(),
        c = console.display(),
    )
}

fn as_pid_1_makes_command_pid_1_and_ends_as_it_ends() {
    let w = World::new();
    let out = w.run(&["--as-pid-1", "sh", "-c", "echo $$; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{out:#?}");
    assert_eq!(out.stdout, "1\n", "{out:#?}");
    // No init of become-root's inside (COMMAND is pid 1, above), and a signal become-root
    // gets reaches it (pid 1 gets only the signals it handles).
    let out = w.sh(
        "\"$BR\" --as-pid-1 sh -c 'trap \"echo got TERM; exit 3\" TERM; \
         touch ready; while :; do sleep 0.1; done' & pid=$!; \
         for i in $(seq 200); do [ -e ready ] && break; sleep 0.05; done; \
         kill -TERM $pid; wait $pid; echo status $?",
    );
    assert_eq!(out.stdout, "got TERM\nstatus 3\n", "{out:#?}");
    assert!(
        w.wait_no_leftovers().is_empty(),
        "{:?}",
        w.leftover_processes()
    );
}

fn boot_needs_a_rootfs() {
    let w = World::new();
    let out = w.run(&["--boot"]);
    assert_eq!(out.status.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("--rootfs"), "{out:#?}");
    assert!(out.stderr.contains("hint: "), "{out:#?}");
}

fn boot_gives_init_the_container_interface_and_stops_it_with_sigrtmin_3() {
    let w = world();
    // An init that says READY=1 once it is up, so that the console is the same every time.
    let root = image_with(&w, "image", &image_init("sd-notify READY=1"));
    sd_notify_in(&w, &root);
    let err = w.home().join("console");
    // SIGTERM to become-root, as a service manager or kill(1) sends it, becomes SIGRTMIN+3 for
    // pid 1 (which ignores SIGTERM, having no handler: the script would never end).
    let script = format!(
        "{start}kill -TERM $pid; wait $pid; echo status $?; wait $listener",
        start = started_as_a_unit(
            &format!("--boot --notify-ready=yes --rootfs={}", root.display()),
            &err
        ),
    );
    let out = w.sh(&script);
    let console = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(out.stdout, "status 0\n", "{out:#?} {console}");
    assert_eq!(
        console,
        "init: pid 1\ninit: container=become-root\ninit: console is a terminal\n\
         init: run is a tmpfs\ninit: sys is sysfs\ninit: 0::/\ninit: up\ninit: halting\n",
        "{out:#?}"
    );
    w.assert_nothing_left();
}

fn a_booted_session_is_joined_and_stopped_with_sigrtmin_3() {
    let w = world();
    // An init that says when it is ready (sd_notify), so that --detach returns then and the
    // session is used at once, as a script would.
    let root = notifying_image(&w);
    let script = format!(
        "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR; \
         \"$BR\" --name=sys --detach --boot --notify-ready=yes --rootfs={root} || exit 1; \
         \"$BR\" --join=sys cat /proc/1/cmdline | tr '\\0' ' '; echo; \
         \"$BR\" --join=sys sh -c 'test -e /run/ready && echo ready'; \
         \"$BR\" --logs=sys | head -n 1; \
         start=$(date +%s); \"$BR\" --stop=sys; echo stopped $? in $(( $(date +%s) - start )) s",
        root = root.display(),
    );
    let out = w.sh(&script);
    // The console goes to the session's log from the first line, never to the caller.
    assert_eq!(out.stderr, "", "{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"/bin/sh /sbin/init "), "{out:#?}");
    assert_eq!(lines.get(1), Some(&"ready"), "{out:#?}");
    assert_eq!(
        lines.get(2),
        Some(&"init: notify at /run/host/notify"),
        "{out:#?}"
    );
    let lines = &lines[1..];
    // Stopped by its own signal, not by SIGKILL after the 30 s a booted image gets.
    let stopped = lines.get(2).copied().unwrap_or_default();
    assert!(
        stopped.starts_with("stopped 0 in ")
            && stopped.trim_end_matches(" s").ends_with(['0', '1', '2']),
        "{out:#?}"
    );
    w.assert_nothing_left();
}

fn systemd_boots_a_debian_image_and_stops_cleanly() {
    // The VM tier's image (minbase, systemd, D-Bus), unpacked as root inside, so that its files
    // belong to the user's subordinate ids; its device nodes are left out (a user namespace
    // may not make them; --rootfs mounts a /dev of its own).
    let w = world();
    let tar = std::env::var("BECOME_ROOT_BOOT_IMAGE").unwrap();
    let img = w.home().join("img");
    let log = w.home().join("run/become-root/deb.log");
    let script = format!(
        "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR {img}; \
         \"$BR\" tar -xf {tar} -C {img} --exclude='./dev/*' || exit 1; \
         \"$BR\" --name=deb --detach --boot --rootfs={img} || exit 2; \
         \"$BR\" --join=deb systemctl is-system-running --wait; \
         \"$BR\" --join=deb systemctl --failed --no-legend --plain | cut -d' ' -f1 | sort | tr '\\n' ' '; echo; \
         \"$BR\" --join=deb cat /proc/1/comm; \
         start=$(date +%s); \"$BR\" --stop=deb; echo stopped $? in $(( $(date +%s) - start )) s",
        img = img.display(),
    );
    let out = w.sh(&script);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = out.stdout.lines().collect();
    // systemd sees a user namespace (a map that is not the identity) and skips the units
    // that mount what the kernel refuses there (debugfs, tracefs, hugetlbfs, fusectl).
    assert_eq!(lines.first(), Some(&"running"), "{out:#?} {log_text}");
    assert_eq!(lines.get(1), Some(&""), "failed units: {out:#?}");
    assert_eq!(lines.get(2), Some(&"systemd"), "{out:#?}");
    let stopped = lines.get(3).copied().unwrap_or_default();
    assert!(stopped.starts_with("stopped 0 in "), "{out:#?}");
    let seconds: u64 = stopped
        .trim_start_matches("stopped 0 in ")
        .trim_end_matches(" s")
        .parse()
        .unwrap_or(99);
    assert!(
        seconds < 20,
        "a clean shutdown, not SIGKILL after 30 s: {out:#?}"
    );
    w.assert_nothing_left();
}

fn boot_without_init_in_the_rootfs_is_an_error() {
    let w = world();
    let root = image(&w);
    std::fs::remove_file(root.join("sbin/init")).unwrap();
    let out = w.run(&["--boot", &format!("--rootfs={}", root.display())]);
    assert_eq!(out.status.code(), Some(127), "{out:#?}");
    assert!(out.stderr.contains("/sbin/init"), "{out:#?}");
    assert!(
        w.cgroups_below().is_empty(),
        "left behind: {:?}",
        w.cgroups_below()
    );
}

// ---- the terminal rule (issue 18, D20) ------------------------------------------------------

/// The command that runs `script` (sh) on a terminal of its own, as at a login
/// (tests/helpers/on-a-terminal.py).
fn on_a_terminal(script: &str) -> String {
    format!(
        "python3 {} -- sh -c {}",
        World::helper("on-a-terminal.py"),
        common::shell_quote(script)
    )
}

/// tests/helpers/tiocsti.c, built static at `to` (an image has no C library of the host's):
/// it pushes `echo INJECTED > ~/INJECTED` into the terminal of each standard descriptor
/// and of /dev/tty with TIOCSTI, as a hostile init would.
fn tiocsti_at(w: &World, to: &Path) {
    let source = format!("{}/tests/helpers/tiocsti.c", env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("gcc")
        .args(["-static", "-O", "-o"])
        .arg(to)
        .arg(source)
        .status()
        .unwrap();
    assert!(status.success(), "gcc tiocsti.c");
    common::chmod(to, 0o755);
    common::chown_tree(to, w.uid);
}

/// After `run` (become-root running `tiocsti PAYLOAD` as pid 1, on a terminal) returns, the
/// caller's shell reads a line from its terminal for two seconds and runs it, as an
/// interactive shell would: nothing must be there. As a control, the same program run
/// directly does inject.
fn assert_nothing_typed_into_the_caller(w: &World, run: impl Fn(&str) -> String) {
    let payload = common::shell_quote(&format!("echo INJECTED > {}/INJECTED", w.home().display()));
    let after = common::shell_quote(
        "if read -t 2 line; then echo \"shell read: $line\"; eval \"$line\"; fi; echo done",
    );
    let direct = format!("{} {payload}", w.home().join("tiocsti").display());
    let control = w.sh(&on_a_terminal(&format!("{direct}; bash -c {after}")));
    assert!(
        control.stdout.contains("shell read: echo INJECTED") && w.home().join("INJECTED").exists(),
        "control: TIOCSTI works on this machine's terminals: {control:#?}"
    );
    std::fs::remove_file(w.home().join("INJECTED")).unwrap();
    let out = w.sh(&on_a_terminal(&format!(
        "{}; echo status $?; bash -c {after}",
        run(&payload)
    )));
    assert!(
        out.stdout.contains("status 0") && out.stdout.contains("done"),
        "{out:#?}"
    );
    assert!(
        !out.stdout.contains("shell read:") && !w.home().join("INJECTED").exists(),
        "pid 1 typed into the caller's terminal: {out:#?}"
    );
}

fn d20_a_booted_image_cannot_type_into_the_callers_terminal() {
    let w = world();
    let root = image(&w);
    tiocsti_at(&w, &w.home().join("tiocsti"));
    tiocsti_at(&w, &root.join("sbin/init"));
    assert_nothing_typed_into_the_caller(&w, |payload| {
        format!(
            "\"$BR\" --boot --rootfs={} /sbin/init {payload}",
            root.display()
        )
    });
    w.assert_nothing_left();
}

fn d20_a_pid_1_of_as_pid_1_cannot_type_into_the_callers_terminal() {
    let w = World::new();
    let tiocsti = w.home().join("tiocsti");
    tiocsti_at(&w, &tiocsti);
    assert_nothing_typed_into_the_caller(&w, |payload| {
        format!("\"$BR\" --as-pid-1 {} {payload}", tiocsti.display())
    });
    w.assert_nothing_left();
}

// ---- stopping (issue 18, D21; issue 26) -----------------------------------------------------

/// An image whose init takes a second to set its SIGRTMIN+3 handler, as systemd does in the
/// first moments of its start, and says so.
fn slow_image(w: &World) -> PathBuf {
    image_with(
        w,
        "slow",
        &format!(
            "say started\n\
             sleep 1\n\
             trap 'say halting; exit 0' {RTMIN_3}\n\
             say up\n\
             while :; do sleep 0.1; done\n"
        ),
    )
}

fn d21_a_stop_in_the_first_moments_of_a_boot_is_not_lost() {
    let w = world();
    let root = slow_image(&w);
    // SIGTERM as soon as init runs, before it handles SIGRTMIN+3: the image still halts
    // (the signal is sent once init handles it), three times in a row.
    let console = w.home().join("console");
    // Stopped once become-root says it is ready, which for an init that is not systemd is
    // as soon as it has started (--notify-ready=auto).
    let script = format!(
        "for i in 1 2 3; do rm -f {c}; {start}kill -TERM $pid; wait $pid; echo status $?; \
         wait $listener; tail -n 1 {c}; done",
        c = console.display(),
        start = started_as_a_unit(&format!("--boot --rootfs={}", root.display()), &console),
    );
    let out = w.sh(&script);
    assert_eq!(
        out.stdout,
        "status 0\ninit: halting\n".repeat(3),
        "{out:#?}"
    );
    w.assert_nothing_left();
}

fn d21_an_image_that_ignores_sigrtmin_3_is_killed_after_the_stop_timeout() {
    let w = world();
    let root = image_with(&w, "deaf", "say up\nwhile :; do sleep 0.1; done\n");
    let console = w.home().join("console");
    let script = format!(
        "{start}start=$(date +%s); kill -TERM $pid; wait $pid; echo status $?; \
         echo took $(( $(date +%s) - start )); wait $listener; cat {c}",
        c = console.display(),
        start = started_as_a_unit(
            &format!("--boot --stop-timeout=2 --rootfs={}", root.display()),
            &console
        ),
    );
    let out = w.sh(&script);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"status 137"), "killed: {out:#?}");
    assert!(
        matches!(lines.get(1), Some(&("took 2" | "took 3"))),
        "after the stop timeout: {out:#?}"
    );
    assert!(
        out.stdout
            .contains("become-root: pid 1 did not end within 2 s of SIGRTMIN+3: killed"),
        "says so: {out:#?}"
    );
    w.assert_nothing_left();
}

fn stop_of_a_session_at_once_after_detach_returns_once_the_image_is_gone() {
    let w = world();
    let root = slow_image(&w);
    // As a user types it: detach, then stop at once, while init is not yet handling its
    // stop signal. --stop returns 0 only when nothing of the session is left (ps lists the
    // user's processes but this shell, ps itself and zombies).
    let script = format!(
        "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR; \
         \"$BR\" --name=s --detach --boot --rootfs={root} || exit 1; \
         \"$BR\" --stop=s; echo stopped $?; \
         ps -o pid=,stat=,comm= -u {uid},{sub} >ps.out; \
         awk -v me=$$ '$1 != me && $2 !~ /^Z/ && $3 != \"ps\"' ps.out; \"$BR\" --list",
        root = root.display(),
        uid = w.uid,
        sub = w.sub_start(),
    );
    let out = w.sh(&script);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"stopped 0"), "{out:#?}");
    // No process, and --list shows its header alone.
    assert_eq!(
        lines.len(),
        2,
        "nothing left once --stop returned: {out:#?}"
    );
    assert!(lines[1].starts_with("NAME "), "{out:#?}");
    w.assert_nothing_left();
}

fn the_console_is_copied_to_its_last_line_before_become_root_returns() {
    let w = world();
    // A halt that writes 300 lines to the console and ends at once: every one reaches
    // become-root's standard error before it returns.
    let root = image_with(
        &w,
        "chatty",
        &format!(
            "trap 'i=0; while [ $i -lt 300 ]; do say line $i; i=$((i+1)); done; \
             say halting; exit 0' {RTMIN_3}\n\
             say up\n\
             while :; do sleep 0.1; done\n"
        ),
    );
    let console = w.home().join("console");
    let script = format!(
        "for i in 1 2 3 4 5; do rm -f {c}; {start}kill -TERM $pid; wait $pid; \
         echo status $? $(grep -c '^init: line' {c}) $(tail -n 1 {c}); wait $listener; done",
        c = console.display(),
        start = started_as_a_unit(&format!("--boot --rootfs={}", root.display()), &console),
    );
    let out = w.sh(&script);
    assert_eq!(
        out.stdout,
        "status 0 300 init: halting\n".repeat(5),
        "{out:#?}"
    );
    w.assert_nothing_left();
}

// ---- the console at a terminal (issue 19, item 5) -----------------------------------------

/// tests/helpers/on-a-terminal.py with these steps (-w MARKER, -t TEXT, -r ROWSxCOLS), then
/// `script` in sh.
fn typed(steps: &[(&str, &str)], script: &str) -> String {
    let steps: Vec<String> = steps
        .iter()
        .map(|(flag, value)| format!("{flag} {}", common::shell_quote(value)))
        .collect();
    format!(
        "python3 {} {} -- sh -c {}",
        World::helper("on-a-terminal.py"),
        steps.join(" "),
        common::shell_quote(script)
    )
}

/// Run `command` on a terminal, typing as `steps` say, and report its status and whether the
/// terminal's settings were put back afterwards.
fn at_a_terminal(w: &World, steps: &[(&str, &str)], command: &str) -> common::Out {
    w.sh(&typed(
        steps,
        &format!(
            "before=$(stty -g); {command}; echo \"status $?\"; \
             [ \"$(stty -g)\" = \"$before\" ] && echo restored"
        ),
    ))
}

fn the_boot_console_is_interactive_at_a_terminal() {
    let w = world();
    let root = image(&w);
    // /bin/sh as the image's pid 1: typed commands reach it, the window size follows a
    // resize, and its exit status is become-root's.
    let out = at_a_terminal(
        &w,
        &[
            ("-w", "# "),
            ("-t", "echo pid $$ size $(stty size); tty\n"),
            ("-w", "pid 1 size 24 80"),
            ("-r", "30x100"),
            ("-t", "echo now $(stty size)\n"),
            ("-w", "now 30 100"),
            ("-t", "exit 3\n"),
        ],
        &format!("\"$BR\" --boot --rootfs={} /bin/sh", root.display()),
    );
    assert!(out.stdout.contains("pid 1 size 24 80"), "{out:#?}");
    assert!(out.stdout.contains("/dev/console"), "{out:#?}");
    assert!(out.stdout.contains("status 3"), "{out:#?}");
    assert!(
        out.stdout.contains("restored"),
        "the terminal's settings: {out:#?}"
    );
    w.assert_nothing_left();
}

fn the_console_escape_halts_the_image() {
    let w = world();
    let root = image(&w);
    let out = at_a_terminal(
        &w,
        &[("-w", "init: up"), ("-t", "\\x1d\\x1d\\x1d")],
        &format!("\"$BR\" --boot --rootfs={}", root.display()),
    );
    assert!(out.stdout.contains("init: halting"), "{out:#?}");
    assert!(out.stdout.contains("status 0"), "{out:#?}");
    assert!(out.stdout.contains("restored"), "{out:#?}");
    w.assert_nothing_left();
}

fn as_pid_1_at_a_terminal_gets_a_terminal_of_its_own() {
    let w = World::new();
    // An interactive shell as pid 1, on become-root's pty, with job control.
    let out = at_a_terminal(
        &w,
        &[
            ("-w", "# "),
            (
                "-t",
                "echo pid $$; case $- in *m*) echo MONITOR-ON;; esac\n",
            ),
            ("-w", "MONITOR-ON"),
            ("-t", "exit 4\n"),
        ],
        "\"$BR\" --as-pid-1 sh -i",
    );
    assert!(out.stdout.contains("pid 1"), "{out:#?}");
    assert!(out.stdout.contains("status 4"), "{out:#?}");
    assert!(out.stdout.contains("restored"), "{out:#?}");
    w.assert_nothing_left();
}

// ---- exit statuses and reboot (issue 19, item 4) ------------------------------------------

fn a_halted_or_powered_off_image_ends_with_0_and_exit_n_with_n() {
    let w = world();
    // reboot(2) in a pid namespace ends its init with SIGINT for a halt or a power-off:
    // become-root then ends with 0, as systemd-nspawn does; an init's own exit status is
    // become-root's.
    for (name, body, want) in [
        ("poweroff", "say up; poweroff -f\n", 0),
        ("halt", "say up; halt -f\n", 0),
        ("exit", "say up; exit 5\n", 5),
    ] {
        let root = image_with(&w, name, body);
        let out = w.run(&["--boot", &format!("--rootfs={}", root.display())]);
        assert_eq!(out.code(), Some(want), "{name}: {out:#?}");
        assert_eq!(out.stderr, "init: up\n", "{name}: {out:#?}");
    }
    w.assert_nothing_left();
}

/// An image that counts its boots in a file of its own (its root is the caller's tree, kept
/// across boots), says whether /run still holds the last boot's mark, reboots after its
/// first boot, and then runs until halted or exits with 7.
fn rebooting_image(w: &World, then: &str) -> PathBuf {
    image_with(
        w,
        "rebooting",
        &format!(
            "n=$(cat /boots 2>/dev/null || echo 0); n=$((n+1)); echo $n > /boots\n\
             say boot $n pid $$\n\
             [ -e /run/mark ] && say /run kept\n\
             touch /run/mark\n\
             [ $n -lt 2 ] && reboot -f\n\
             {then}"
        ),
    )
}

fn a_rebooted_image_boots_again_in_new_namespaces() {
    let w = world();
    let root = rebooting_image(&w, "exit 7\n");
    let out = w.run(&["--boot", &format!("--rootfs={}", root.display())]);
    assert_eq!(out.code(), Some(7), "{out:#?}");
    assert_eq!(
        out.stderr,
        "init: boot 1 pid 1\nbecome-root: the image rebooted; booting it again\n\
         init: boot 2 pid 1\n",
        "a fresh /run the second time: {out:#?}"
    );
    w.assert_nothing_left();
}

fn a_rebooted_session_lives_on_with_its_name() {
    let w = world();
    // The image reboots before it is ready the first time: --detach returns once the second
    // boot says it is.
    let root = rebooting_image(
        &w,
        &format!(
            "trap 'say halting; exit 0' {RTMIN_3}\nsd-notify READY=1\nsay up\n\
             while :; do sleep 0.1; done\n"
        ),
    );
    sd_notify_in(&w, &root);
    let script = format!(
        "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR; \
         \"$BR\" --name=sys --detach --boot --notify-ready=yes --rootfs={root} || exit 1; \
         \"$BR\" --join=sys cat /boots; \"$BR\" --list | awk 'NR > 1 {{ print $1, $NF }}'; \
         \"$BR\" --stop=sys; echo stopped $?",
        root = root.display(),
    );
    let out = w.sh(&script);
    assert_eq!(out.stdout, "2\nsys running\nstopped 0\n", "{out:#?}");
    w.assert_nothing_left();
}

// ---- readiness (issue 19, items 1 and 2) ------------------------------------------------------

/// tests/helpers/sd-notify.c, built static into `root`'s /bin.
fn sd_notify_in(w: &World, root: &Path) {
    let to = root.join("bin/sd-notify");
    let source = format!("{}/tests/helpers/sd-notify.c", env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("gcc")
        .args(["-static", "-O", "-o"])
        .arg(&to)
        .arg(source)
        .status()
        .unwrap();
    assert!(status.success(), "gcc sd-notify.c");
    common::chown_tree(&to, w.uid);
}

/// An image whose init takes half a second to be ready, marks it in /run and in its root
/// (/marker, which the host sees), then says READY=1 on $NOTIFY_SOCKET.
fn notifying_image(w: &World) -> PathBuf {
    notifying_image_halting_with(w, "")
}

/// [`notifying_image`], running `halting` (shell lines) first when told to stop.
fn notifying_image_halting_with(w: &World, halting: &str) -> PathBuf {
    let root = image_with(
        w,
        "notifying",
        &format!(
            "say notify at $NOTIFY_SOCKET\n\
             trap 'say halting; {halting} rm -f /marker; exit 0' {RTMIN_3}\n\
             sleep 0.5\n\
             touch /run/ready /marker\n\
             sd-notify READY=1 || say sd-notify failed\n\
             say up\n\
             while :; do sleep 0.1; done\n"
        ),
    );
    sd_notify_in(w, &root);
    root
}

fn detach_of_a_notifying_image_returns_once_it_is_ready() {
    let w = world();
    let root = notifying_image(&w);
    // As a script types it, ten times: detach, then use the image at once.
    let script = format!(
        "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR; \
         for i in $(seq 10); do \
           \"$BR\" --name=s --detach --boot --notify-ready=yes --rootfs={root} || exit 1; \
           \"$BR\" --join=s sh -c 'test -e /run/ready && echo ready'; \
           \"$BR\" --stop=s || exit 2; \
         done",
        root = root.display(),
    );
    let out = w.sh(&script);
    assert_eq!(out.stdout, "ready\n".repeat(10), "{out:#?}");
    w.assert_nothing_left();
}

fn a_service_manager_hears_ready_when_the_image_is_and_stopping() {
    let w = world();
    // STOPPING=1 must come while the image still runs, before it halts. The listener looks
    // for /marker when it reads a message, and under load it read STOPPING=1 after the image
    // had halted (1 in 10 runs of the suite beside busy loops): so the image, told to stop,
    // first waits (up to 20 s) until the listener has heard STOPPING=1 (it makes
    // /stopping-heard in the image), and only then removes /marker. Sent only after the
    // image's end, STOPPING=1 would find no marker still.
    let root = notifying_image_halting_with(
        &w,
        "i=0; until [ -e /stopping-heard ] || [ $i -ge 200 ]; do sleep 0.1; i=$((i+1)); done;",
    );
    let console = w.home().join("console");
    // become-root as a Type=notify unit's main process: READY=1 once the image said so
    // (its /marker exists by then), STOPPING=1 when asked to stop; the image's init has a
    // NOTIFY_SOCKET of its own.
    let script = format!(
        "python3 {listen} $HOME/notify {root}/marker {root}/stopping-heard > messages & \
         listener=$!; \
         {until} test -S $HOME/notify; \
         NOTIFY_SOCKET=$HOME/notify \"$BR\" --boot --notify-ready=yes --rootfs={root} 2>{c} & \
         pid=$!; {until} grep -q READY=1 messages; kill -TERM $pid; wait $pid; echo status $?; \
         wait $listener; cat messages; head -n 1 {c}",
        listen = World::helper("notify-listen.py"),
        until = World::until(),
        root = root.display(),
        c = console.display(),
    );
    let out = w.sh(&script);
    assert_eq!(
        out.stdout,
        "status 0\nREADY=1 (marker exists)\nSTOPPING=1 (marker exists)\n\
         init: notify at /run/host/notify\n",
        "{out:#?}"
    );
    w.assert_nothing_left();
}

fn a_service_manager_hears_ready_and_command_gets_no_notify_socket() {
    let w = World::new();
    for mode in ["", "--pid"] {
        let script = format!(
            "python3 {listen} $HOME/notify $HOME/none > messages & listener=$!; \
             {until} test -S $HOME/notify; \
             NOTIFY_SOCKET=$HOME/notify \"$BR\" {mode} sh -c 'echo \"[$NOTIFY_SOCKET]\"'; \
             NOTIFY_SOCKET=$HOME/notify python3 -c 'import os, socket; \
             socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b\"STOPPING=1\", \
             os.environ[\"NOTIFY_SOCKET\"])'; wait $listener; cat messages",
            listen = World::helper("notify-listen.py"),
            until = World::until(),
        );
        let out = w.sh(&script);
        assert_eq!(out.stdout, "[]\nREADY=1\nSTOPPING=1\n", "{mode}: {out:#?}");
    }
}

fn the_readme_boot_recipe_runs_as_a_script_ten_times() {
    // The README's sequence as a script types it, with no wait in between: detach returns
    // once systemd inside says it is ready, so the next command can use the system at once.
    let w = world();
    let tar = std::env::var("BECOME_ROOT_BOOT_IMAGE").unwrap();
    let img = w.home().join("img");
    let script = format!(
        "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR {img}; \
         \"$BR\" tar -xf {tar} -C {img} --exclude='./dev/*' || exit 1; \
         for i in $(seq 10); do \
           \"$BR\" --name=sys --detach --boot --rootfs={img} || exit 2; \
           \"$BR\" --join=sys systemctl is-system-running --wait; \
           \"$BR\" --stop=sys || exit 3; \
         done",
        img = img.display(),
    );
    let out = w.sh(&script);
    assert_eq!(out.stdout, "running\n".repeat(10), "{out:#?}");
    w.assert_nothing_left();
}

fn a_systemd_image_at_a_terminal_shows_a_login_prompt() {
    let w = world();
    let tar = std::env::var("BECOME_ROOT_BOOT_IMAGE").unwrap();
    let img = w.home().join("img");
    let out = w.sh(&format!(
        "mkdir -p {img}; \"$BR\" tar -xf {tar} -C {img} --exclude='./dev/*' || exit 1; {}",
        typed(
            &[("-w", "login: "), ("-t", "\\x1d\\x1d\\x1d")],
            &format!(
                "\"$BR\" --boot --rootfs={}; echo \"status $?\"",
                img.display()
            ),
        ),
        img = img.display(),
    ));
    assert!(out.stdout.contains("login: "), "{out:#?}");
    assert!(
        out.stdout.contains("status 0"),
        "halted by the escape: {out:#?}"
    );
    w.assert_nothing_left();
}

// ---- ports (issue 19, items 3 and 7) --------------------------------------------------------

fn a_booted_image_publishes_ports_without_net() {
    let mut w = world();
    w.own_network = true;
    // --boot makes a network namespace, so -p needs no --net; the server inside answers
    // through become-root's forwarder.
    let root = image_with(
        &w,
        "web",
        &format!(
            "mkdir -p /www; echo hello from the image > /www/index.html\n\
             httpd -p 8080 -h /www\n\
             trap 'say halting; exit 0' {RTMIN_3}\n\
             sd-notify READY=1\n\
             while :; do sleep 0.1; done\n"
        ),
    );
    sd_notify_in(&w, &root);
    let script = format!(
        "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR; \
         \"$BR\" --name=web --detach --boot --notify-ready=yes -p 18080:8080 --rootfs={root} \
           || exit 1; \
         curl -sS http://127.0.0.1:18080/; \"$BR\" --stop=web; echo stopped $?",
        root = root.display(),
    );
    let out = w.sh(&script);
    assert_eq!(out.stdout, "hello from the image\nstopped 0\n", "{out:#?}");
    w.assert_nothing_left();
}

fn a_systemd_image_with_a_published_port_stops_as_quickly_as_without() {
    let mut w = world();
    w.own_network = true;
    let tar = std::env::var("BECOME_ROOT_BOOT_IMAGE").unwrap();
    let img = w.home().join("img");
    // Nothing of become-root's in the image may hold its shutdown up (the forwarder's socket
    // provider is a process there): --stop under 2 s with -p as without.
    let script = format!(
        "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR {img}; \
         \"$BR\" tar -xf {tar} -C {img} --exclude='./dev/*' || exit 1; \
         for p in '' '-p 18080:80'; do \
           \"$BR\" --name=sys --detach --boot $p --rootfs={img} || exit 2; \
           start=$(date +%s%N); \"$BR\" --stop=sys; status=$?; \
           echo \"stopped $status in $(( ($(date +%s%N) - start) / 100000000 )) tenths\"; \
         done",
        img = img.display(),
    );
    let out = w.sh(&script);
    let tenths: Vec<u64> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("stopped 0 in "))
        .filter_map(|l| l.strip_suffix(" tenths")?.parse().ok())
        .collect();
    assert_eq!(tenths.len(), 2, "{out:#?}");
    assert!(tenths.iter().all(|t| *t < 20), "under 2 s: {out:#?}");
    w.assert_nothing_left();
}

// ---- sessions that end (issue 19, item 6) -----------------------------------------------------

fn the_console_of_a_boot_that_failed_is_kept() {
    let w = world();
    let root = image_with(&w, "failing", "say cannot mount /data\nexit 4\n");
    let script = format!(
        "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR; \
         \"$BR\" --name=b --detach --boot --rootfs={root} || exit 1; \
         \"$BR\" --logs=b --follow; \"$BR\" --list | awk 'NR > 1 {{ print $1, $2, $(NF-2), $(NF-1), $NF }}'; \
         \"$BR\" --stop=b; echo stopped $?; \"$BR\" --list | wc -l",
        root = root.display(),
    );
    let out = w.sh(&script);
    assert_eq!(
        out.stdout, "init: cannot mount /data\nb - ended: exited 4\nstopped 0\n1\n",
        "{out:#?}"
    );
    w.assert_nothing_left();
}

fn d20_a_join_of_a_booted_session_gets_a_terminal_of_the_images() {
    let w = world();
    let root = notifying_image(&w);
    tiocsti_at(&w, &w.home().join("tiocsti"));
    tiocsti_at(&w, &root.join("bin/tiocsti"));
    // What runs in a booted image's session is the image's: a join brings the caller's
    // terminal no closer to it than --boot does.
    assert_nothing_typed_into_the_caller(&w, |payload| {
        format!(
            "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR; \
             \"$BR\" --name=sys --detach --boot --notify-ready=yes --rootfs={} && \
             \"$BR\" --join=sys /bin/tiocsti {payload}; status=$?; \"$BR\" --stop=sys; \
             (exit $status)",
            root.display()
        )
    });
    // And it is a terminal all the same: an interactive shell there has job control.
    let out = at_a_terminal(
        &w,
        &[
            ("-w", "# "),
            ("-t", "tty; case $- in *m*) echo MONITOR-ON;; esac\n"),
            ("-w", "MONITOR-ON"),
            ("-t", "exit 4\n"),
        ],
        &format!(
            "export XDG_RUNTIME_DIR=$HOME/run; \"$BR\" --name=sys --detach --boot \
             --notify-ready=yes --rootfs={} && \"$BR\" --join=sys sh -i; status=$?; \
             \"$BR\" --stop=sys; (exit $status)",
            root.display()
        ),
    );
    assert!(out.stdout.contains("/dev/pts/"), "{out:#?}");
    assert!(out.stdout.contains("status 4"), "{out:#?}");
    assert!(out.stdout.contains("restored"), "{out:#?}");
    w.assert_nothing_left();
}
