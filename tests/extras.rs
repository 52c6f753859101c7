//! A root for every tree (issue 25), through the hermetic harness (tests/common): a foreign
//! architecture's programs under --emulate, a time namespace's clocks, --hostname, the
//! environment options, --device, and what --check says in a container or a pod.

mod common;

use std::fs;
use std::path::Path;

use common::{World, busybox_rootfs, chown_tree};

/// The arm64 busybox of Debian's busybox-static:arm64 (tests/vm/fetch-arm64 busybox, which
/// .ci/run runs).
const ARM64_BUSYBOX: &str = "BECOME_ROOT_ARM64_BUSYBOX";
const FETCH: &str = "tests/vm/fetch-arm64 busybox prints its path (.ci/run sets it)";

common::tests! {
    [Harness, File(ARM64_BUSYBOX, FETCH), Tool("qemu-aarch64-static")]
        an_arm64_busybox_runs_under_emulate_in_its_rootfs_and_not_without,
        emulation_reaches_the_user_namespaces_a_run_makes;
    [Harness]
        emulate_names_what_is_missing_or_unusable,
        hostname_is_set_in_a_uts_namespace_of_its_own,
        environment_options_apply_in_order_as_bubblewrap_does;
    [Harness, Tool("python3")]
        boottime_and_monotonic_are_shifted_inside_and_a_join_sees_them;
    [Harness, Tool("busybox")]
        a_device_node_appears_in_the_minimal_dev_of_rootfs;
    [Harness]
        check_in_a_pod_names_a_masked_proc_and_the_pod_spec_field,
        check_in_a_pod_names_no_new_privs_and_the_pod_spec_field;
    [Harness, Tool("python3")]
        check_in_a_pod_names_a_seccomp_filter_refusing_user_namespaces;
}

/// A root file system of the arm64 busybox, owned by the test user, with these applets.
fn arm64_rootfs(world: &World, applets: &[&str]) -> std::path::PathBuf {
    let root = world.home().join("arm64");
    for dir in ["bin", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    let busybox = std::env::var(ARM64_BUSYBOX).unwrap();
    common::copy_executable(Path::new(&busybox), &root.join("bin/busybox"), 0o755);
    for applet in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    chown_tree(&root, world.uid);
    root
}

fn an_arm64_busybox_runs_under_emulate_in_its_rootfs_and_not_without() {
    let world = World::new();
    let root = arm64_rootfs(&world, &["sh", "uname", "cat", "ls"]);
    let rootfs = format!("--rootfs={}", root.display());
    // Without: the kernel knows no interpreter for it (binfmt_misc is not the host's to use
    // here, and the run has none of its own).
    let out = world.run(&[rootfs.as_str(), "/bin/uname", "-m"]);
    assert_eq!(out.code(), Some(126), "{out:#?}");
    assert!(out.stderr.contains("Exec format error"), "{out:#?}");
    // With, by QEMU's name and by Debian's.
    for arch in ["aarch64", "arm64"] {
        let emulate = format!("--emulate={arch}");
        let out = world.run(&[emulate.as_str(), rootfs.as_str(), "/bin/uname", "-m"]);
        assert_eq!(out.ok(), "aarch64\n");
    }
    // argv[0] reaches the program (the P flag): busybox runs the applet it is called as, and
    // the registration is the run's own, in its /proc, as Debian's qemu-user makes it.
    let out = world.run(&[
        "--emulate=aarch64",
        "--pid",
        &rootfs,
        "/bin/sh",
        "-c",
        "exec -a cat /bin/busybox /proc/sys/fs/binfmt_misc/qemu-aarch64",
    ]);
    let text = out.ok();
    assert!(text.contains("flags: POF"), "{text}");
    assert!(
        text.contains("interpreter /usr/bin/qemu-aarch64-static"),
        "{text}"
    );
    world.assert_nothing_left();
}

/// mmdebstrap's unshare mode, podman and a nested become-root run the tree's programs in user
/// namespaces of their own, below the run's: the kernel looks up the run's binfmt_misc for
/// them too.
fn emulation_reaches_the_user_namespaces_a_run_makes() {
    let world = World::new();
    let root = arm64_rootfs(&world, &["uname"]);
    let uname = root.join("bin/uname");
    let out = world.sh(&format!(
        "$BR --emulate=arm64 $BR --map=single --pid {} -m",
        uname.display()
    ));
    assert_eq!(out.ok(), "aarch64\n");
}

fn emulate_names_what_is_missing_or_unusable() {
    let mut world = World::new();
    world
        .env
        .push(("QEMU_AARCH64_STATIC".into(), "/no/such/qemu".into()));
    let out = world.run(&["--emulate=aarch64", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr
            .contains("QEMU_AARCH64_STATIC=/no/such/qemu: no such file"),
        "{out:#?}"
    );
    // A dynamically linked emulator would find no loader inside a foreign tree.
    world.env = vec![("QEMU_AARCH64_STATIC".into(), "/bin/sh".into())];
    let out = world.run(&["--emulate=aarch64", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("is linked dynamically"), "{out:#?}");
    assert!(out.stderr.contains("hint: "), "{out:#?}");
    // This machine's own architecture, and one QEMU does not emulate.
    let own = std::env::consts::ARCH;
    for arch in [own, "sparc"] {
        let out = world.run(&[format!("--emulate={arch}").as_str(), "true"]);
        assert_eq!(out.code(), Some(125), "{arch}: {out:#?}");
        assert!(
            out.stderr.starts_with("become-root: usage: --emulate="),
            "{out:#?}"
        );
    }
}

fn hostname_is_set_in_a_uts_namespace_of_its_own() {
    let world = World::new();
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = world.sh(
        "$BR --hostname=tree-builder sh -c 'hostname; readlink /proc/self/ns/uts'; \
         readlink /proc/self/ns/uts; hostname",
    );
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "tree-builder");
    assert_ne!(lines[1], lines[2], "a uts namespace of its own");
    assert_eq!(lines[3], host.trim(), "the host's name is the host's");
    let out = world.run(&[format!("--hostname={}", "x".repeat(65)).as_str(), "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
}

fn environment_options_apply_in_order_as_bubblewrap_does() {
    let mut world = World::new();
    // A login shell exports PWD, which --clearenv keeps.
    world
        .env
        .push(("PWD".into(), world.home().display().to_string()));
    // In order: B set, everything but PWD cleared (B too), C set; HOME removed before.
    let out = world.run(&[
        "--unsetenv=HOME",
        "--setenv=B=1",
        "--clearenv",
        "--setenv=C=x=y",
        "env",
    ]);
    let mut got: Vec<&str> = out.ok().lines().collect();
    got.sort();
    let pwd = format!("PWD={}", world.home().display());
    assert_eq!(got, ["C=x=y", pwd.as_str()]);
    let out = world.run(&["--setenv=A=1", "--unsetenv=USER", "env"]);
    let text = out.ok();
    assert!(text.lines().any(|l| l == "A=1"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("USER=")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("HOME=")), "{text}");
    // COMMAND is looked up on the PATH it gets: none (the C library's /bin:/usr/bin), or
    // the one --setenv gives.
    let out = world.run(&["--clearenv", "--setenv=PATH=/nowhere", "env"]);
    assert_eq!(out.code(), Some(127), "{out:#?}");
    let out = world.run(&["--setenv=NOEQUALS", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
}

fn boottime_and_monotonic_are_shifted_inside_and_a_join_sees_them() {
    let world = World::new();
    let uptime = |text: &str| -> f64 { text.split_whitespace().next().unwrap().parse().unwrap() };
    let host = uptime(&fs::read_to_string("/proc/uptime").unwrap());
    let day = 86400.0;
    let out = world.sh(
        "$BR --boottime=86400 --monotonic=-60 sh -c 'cat /proc/uptime; \
         python3 -c \"import time; print(time.clock_gettime(time.CLOCK_MONOTONIC))\"; \
         readlink /proc/self/ns/time' && readlink /proc/self/ns/time",
    );
    let lines: Vec<&str> = out.ok().lines().collect();
    let inside = uptime(lines[0]);
    assert!(
        inside >= host + day && inside < host + day + 60.0,
        "{host} -> {inside}"
    );
    let monotonic: f64 = lines[1].parse().unwrap();
    let host_monotonic = uptime(&fs::read_to_string("/proc/uptime").unwrap());
    assert!(
        monotonic < host_monotonic - 59.0,
        "{host_monotonic} -> {monotonic}"
    );
    assert_ne!(lines[2], lines[3], "a time namespace of its own");
    // --time alone: a namespace, clocks as the host's; with --pid the init's children too.
    let out = world.run(&[
        "--time",
        "--pid",
        "sh",
        "-c",
        "cat /proc/uptime; readlink /proc/self/ns/time",
    ]);
    let lines: Vec<&str> = out.ok().lines().collect();
    assert!((uptime(lines[0]) - host).abs() < 60.0, "{lines:?}");
    // A session's time namespace is entered by --join.
    let out = world.sh(
        "$BR --name=clocks --detach --boottime=86400 && $BR --join=clocks cat /proc/uptime; \
         status=$?; $BR --stop=clocks; exit $status",
    );
    let joined = uptime(out.ok());
    assert!(joined >= host + day, "{host} -> {joined}");
    world.assert_nothing_left();
}

fn a_device_node_appears_in_the_minimal_dev_of_rootfs() {
    let world = World::new();
    let root = world.home().join("root");
    busybox_rootfs(&root, world.uid, &["sh", "stat", "test", "ls"], "");
    let rootfs = format!("--rootfs={}", root.display());
    // Not there by default: a minimal /dev.
    let out = world.run(&[
        rootfs.as_str(),
        "/bin/sh",
        "-c",
        "test -e /dev/fuse || echo none",
    ]);
    assert_eq!(out.ok(), "none\n");
    // The harness's /dev/fuse and /dev/net/tun (0666 copies, tests/common) go in, with
    // /dev/net made for the second; both open for reading and writing inside.
    let out = world.run(&[
        rootfs.as_str(),
        "--device=/dev/fuse",
        "--device=/dev/net/tun",
        "/bin/sh",
        "-c",
        "stat -c '%F %t:%T' /dev/fuse /dev/net/tun && exec 3<>/dev/fuse 4<>/dev/net/tun && echo opened",
    ]);
    assert_eq!(
        out.ok(),
        "character special file a:e5\ncharacter special file a:c8\nopened\n"
    );
    // Not a device node: refused before anything runs.
    let not_a_device = root.join("bin/busybox");
    let out = world.run(&[
        rootfs.as_str(),
        format!("--device={}:/dev/x", not_a_device.display()).as_str(),
        "true",
    ]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("is not a device node"), "{out:#?}");
    assert!(
        Path::new(&root)
            .join("dev")
            .read_dir()
            .unwrap()
            .next()
            .is_none()
    );
    world.assert_nothing_left();
}

/// `--check`'s line about `what` ("LEVEL  WHAT: FOUND; fix: FIX"), as (LEVEL, the rest).
#[track_caller]
fn check_line<'a>(out: &'a common::Out, what: &str) -> (&'a str, &'a str) {
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

/// A pod's /proc as the container runtime leaves it with procMount: Default, made in the
/// harness's mount namespace: /proc/keys and /proc/timer_list covered by /dev/null, /proc/acpi
/// by an empty read-only tmpfs (runc's masked paths), /proc/sys bound read-only over itself. --check names each and the pod-spec field; a --pid run indeed fails.
fn check_in_a_pod_names_a_masked_proc_and_the_pod_spec_field() {
    let mut world = World::new();
    world.root_setup = "mount --bind /dev/null /proc/keys\n\
                        mount --bind /dev/null /proc/timer_list\n\
                        mount -t tmpfs -o ro tmpfs /proc/acpi\n\
                        mount --bind /proc/sys /proc/sys\n\
                        mount -o remount,bind,ro /proc/sys"
        .into();
    let out = world.run(&["--check"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let (level, rest) = check_line(&out, "/proc");
    assert_eq!(level, "warn", "{rest}");
    for text in [
        "masked: /proc/keys, /proc/timer_list, /proc/acpi",
        "read-only: /proc/sys",
        "--pid, --boot and --all fail",
        "procMount: Unmasked",
        "hostUsers: false",
    ] {
        assert!(rest.contains(text), "/proc line lacks {text:?}: {rest}");
    }
    let out = world.run(&["--pid", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    world.assert_nothing_left();
}

/// no_new_privs, as a container with allowPrivilegeEscalation: false has it (setpriv sets
/// it here): neither a set-user-ID newuidmap nor one with file capabilities can work, and the
/// fix names the pod-spec field.
fn check_in_a_pod_names_no_new_privs_and_the_pod_spec_field() {
    let world = World::new();
    let out = world.sh("exec setpriv --no-new-privs \"$BR\" --check");
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let (level, rest) = check_line(&out, "no_new_privs");
    assert_eq!(level, "FAIL", "{rest}");
    for text in [
        "set-user-ID or with file capabilities",
        "allowPrivilegeEscalation: true",
    ] {
        assert!(
            rest.contains(text),
            "no_new_privs line lacks {text:?}: {rest}"
        );
    }
}

/// A seccomp filter that refuses unshare and clone with CLONE_NEWUSER, as a runtime's default
/// profile does (tests/helpers/deny-userns.py, which sets no_new_privs too, as an unprivileged
/// process must): the seccomp line says the filter refused the probe's user namespace, and
/// what to change in the pod spec; --check exits 1 (no command could run).
fn check_in_a_pod_names_a_seccomp_filter_refusing_user_namespaces() {
    let world = World::new();
    let script = format!(
        "exec python3 {} \"$BR\" --check",
        World::helper("deny-userns.py")
    );
    let out = world.sh(&script);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    let (level, rest) = check_line(&out, "seccomp");
    assert_eq!(level, "FAIL", "{rest}");
    for text in [
        "1 filter(s)",
        "unshare(CLONE_NEWUSER)",
        "Operation not permitted",
        "seccompProfile",
    ] {
        assert!(rest.contains(text), "seccomp line lacks {text:?}: {rest}");
    }
    assert_eq!(check_line(&out, "user namespaces").0, "FAIL");
    world.assert_nothing_left();
}
