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
    [Harness, Cgroup2, Tool("busybox")]
        boot_gives_init_the_container_interface_and_stops_it_with_sigrtmin_3,
        a_booted_session_is_joined_and_stopped_with_sigrtmin_3,
        boot_without_init_in_the_rootfs_is_an_error;
}

/// SIGRTMIN+3 with glibc's SIGRTMIN (34), as busybox's trap takes it.
const RTMIN_3: i32 = 37;

fn image(w: &World) -> PathBuf {
    let root = w.home().join("image");
    common::busybox_rootfs(
        &root,
        w.uid,
        &[
            "sh", "echo", "grep", "head", "touch", "sleep", "cat", "hostname",
        ],
        "",
    );
    for dir in ["sbin", "run"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let init = format!(
        "#!/bin/sh\n\
         say() {{ echo \"init: $*\" > /dev/console; }}\n\
         say pid $$\n\
         say container=$container\n\
         [ -c /dev/console ] && say console is a terminal\n\
         grep -q ' /run tmpfs ' /proc/mounts && say run is a tmpfs\n\
         grep -q ' /sys sysfs ' /proc/mounts && say sys is sysfs\n\
         say $(grep ^0:: /proc/self/cgroup)\n\
         touch /run/booted\n\
         trap 'say halting; exit 0' {RTMIN_3}\n\
         say up\n\
         while :; do sleep 0.1; done\n"
    );
    let path = root.join("sbin/init");
    std::fs::write(&path, init).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    common::chown_tree(&root, w.uid);
    root
}

fn world() -> World {
    let mut w = World::new();
    w.delegate_cgroup();
    w
}

/// The script's lines that wait until `file` holds `text` (up to 10 s).
fn wait_for(file: &Path, text: &str) -> String {
    format!(
        "for i in $(seq 200); do grep -q '{text}' {f} 2>/dev/null && break; sleep 0.05; done; ",
        f = file.display()
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
    let root = image(&w);
    let err = w.home().join("console");
    // SIGTERM to become-root, as a service manager or kill(1) sends it, becomes SIGRTMIN+3 for
    // pid 1 (which ignores SIGTERM, having no handler: the script would never end).
    let script = format!(
        "\"$BR\" --boot --rootfs={root} 2>{err} & pid=$!; {wait}kill -TERM $pid; wait $pid; \
         echo status $?",
        root = root.display(),
        err = err.display(),
        wait = wait_for(&err, "init: up"),
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
    let root = image(&w);
    let log = w.home().join("run/become-root/sys.log");
    let script = format!(
        "export XDG_RUNTIME_DIR=$HOME/run; mkdir -p -m 700 $XDG_RUNTIME_DIR; \
         \"$BR\" --name=sys --detach --boot --rootfs={root} || exit 1; {wait}\
         \"$BR\" --join=sys cat /proc/1/cmdline | tr '\\0' ' '; echo; \
         \"$BR\" --join=sys sh -c 'test -e /run/booted && echo booted'; \
         start=$(date +%s); \"$BR\" --stop=sys; echo stopped $? in $(( $(date +%s) - start )) s; \
         cat {log} 2>/dev/null | tail -n 1",
        root = root.display(),
        wait = wait_for(&log, "init: up"),
        log = log.display(),
    );
    let out = w.sh(&script);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"/bin/sh /sbin/init "), "{out:#?}");
    assert_eq!(lines.get(1), Some(&"booted"), "{out:#?}");
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
         timeout 120 \"$BR\" --join=deb sh -c 'until test -S /run/systemd/private; do sleep 0.1; done'; \
         timeout 120 \"$BR\" --join=deb systemctl is-system-running --wait; \
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
