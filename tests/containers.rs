//! podman, buildah and crun inside become-root (issue 10, item 1), through the hermetic
//! harness, as an unprivileged user: the real programs from Debian's packages, with an image
//! imported from a busybox-static tarball (no registry is reachable).
//!
//! The harness's mount namespace gets the cgroup layout a test is about, whatever the
//! machine's: cgroup v2 alone (`mount -t cgroup2` over /sys/fs/cgroup, as on a current
//! systemd host) or systemd's hybrid layout (a tmpfs with a cgroup2 at `unified`). Both are
//! mounts of the harness's namespace, gone with it. /dev/shm is a tmpfs of its own too, where
//! podman keeps its lock file (`libpod_rootless_lock_UID`), so nothing is left on the
//! machine.

mod common;

use std::fs;

use common::{Out, World};

common::tests! {
    [Harness]
        container_variables_only_with_a_mount_namespace,
        podman_and_buildah_by_name_get_a_mount_namespace,
        i21_a_keep_id_session_without_command_can_be_joined;
    [Harness, Tool("podman"), Tool("crun"), Tool("busybox"), Tool("slirp4netns")]
        podman_run_shows_the_full_map_with_no_flag,
        i21_a_detached_container_is_seen_and_managed_by_the_next_calls,
        i21_stop_ends_the_namespace_and_its_containers_and_the_next_call_starts_afresh,
        i21_two_users_at_once_see_only_their_own,
        i21_keep_id_across_calls_never_mixes_with_the_default_map,
        i21_a_changed_subuid_is_reported_by_check_with_how_to_renew,
        i21_an_indirect_podman_runs_in_the_same_namespace,
        i21_plain_podman_and_become_root_podman_share_one_namespace,
        i21_the_hybrid_warning_only_where_a_container_runs_and_the_fix_works;
    [Harness, Tool("podman"), Tool("crun"), Tool("busybox"), Tool("slirp4netns"), Tool("catatonit")]
        i21_a_pod_and_its_published_port_across_calls_leave_nothing_behind;
    [Harness, Tool("buildah"), Tool("crun"), Tool("busybox")]
        buildah_from_scratch_copy_run_commit_with_no_flag;
}

/// cgroup v2 alone at /sys/fs/cgroup.
const UNIFIED: &str = "mount -t cgroup2 none /sys/fs/cgroup";
/// systemd's hybrid layout: v1 hierarchies on a tmpfs, v2 at /sys/fs/cgroup/unified (this
/// project's machine boots so; crun refuses it).
const HYBRID: &str = "mount -t tmpfs -o mode=755 none /sys/fs/cgroup
mkdir /sys/fs/cgroup/unified
mount -t cgroup2 none /sys/fs/cgroup/unified";

/// A world whose user has a runtime directory and a TMPDIR in its home, a /dev/shm of its
/// own, and the cgroup layout `cgroups` (shell lines run as root).
fn world(cgroups: &str) -> World {
    let mut w = World::new();
    for (var, dir, mode) in [("XDG_RUNTIME_DIR", "run", 0o700), ("TMPDIR", "tmp", 0o755)] {
        let path = w.home().join(dir);
        fs::create_dir(&path).unwrap();
        common::chmod(&path, mode);
        nix::unistd::chown(&path, Some(w.uid.into()), Some(w.gid.into())).unwrap();
        w.env.push((var.into(), path.display().to_string()));
    }
    w.root_setup = format!("mount -t tmpfs -o mode=1777 none /dev/shm\n{cgroups}");
    w
}

/// A root filesystem tarball `img.tar` in the test user's home: busybox and a few of its
/// applets in /bin, owned by uid 0.
fn busybox_tarball(w: &World) {
    let root = w.home().join("rootfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    let busybox = common::which("busybox").unwrap();
    common::copy_executable(&busybox, &root.join("bin/busybox"), 0o755);
    for applet in ["sh", "cat", "id", "ls", "true", "sleep", "echo", "httpd"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    // What the published-port tests serve (busybox httpd -h /www).
    fs::create_dir_all(root.join("www")).unwrap();
    fs::write(root.join("www/index.html"), "hello from the container\n").unwrap();
    let status = std::process::Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(w.home().join("img.tar"))
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    nix::unistd::chown(&w.home().join("img.tar"), Some(w.uid.into()), None).unwrap();
}

/// The full map of the world's user: itself as 0, its range at 1.
fn full_map(w: &World) -> Vec<String> {
    vec![
        format!("0 {} 1", w.uid),
        format!("1 {} {}", w.sub_start(), common::SUB_COUNT),
    ]
}

/// The lines of `out`'s stdout that look like map lines (three numbers).
fn map_in(out: &Out) -> Vec<String> {
    common::map_lines(&out.stdout)
        .into_iter()
        .filter(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.len() == 3 && f.iter().all(|n| n.parse::<u64>().is_ok())
        })
        .collect()
}

#[track_caller]
fn assert_no_leftovers(w: &World) {
    let left = w.wait_no_leftovers();
    assert!(left.is_empty(), "left running: {left:?}");
}

/// Regression (issue 10): `_CONTAINERS_USERNS_CONFIGURED=done` was exported without a mount
/// namespace, so podman took the namespaces as made and its first mount failed.
fn container_variables_only_with_a_mount_namespace() {
    let w = world("");
    let vars = "env | grep ^_CONTAINERS_ | sort";
    let out = w.sh(&format!(
        "$BR sh -c '{vars}'; echo --; $BR -m sh -c '{vars}'; echo --; \
         $BR --tmpfs=/tmp sh -c '{vars}'; echo --; \
         $BR --name=plain --detach && $BR --join=plain sh -c '{vars}'; echo --; \
         $BR --name=mnt --detach --mount && $BR --join=mnt sh -c '{vars}'; \
         $BR --stop=plain; $BR --stop=mnt"
    ));
    let set = format!(
        "_CONTAINERS_ROOTLESS_GID={}\n_CONTAINERS_ROOTLESS_UID={}\n\
         _CONTAINERS_USERNS_CONFIGURED=done\n",
        w.gid, w.uid
    );
    let parts: Vec<&str> = out.ok().split("--\n").collect();
    assert_eq!(
        parts,
        ["", &set, &set, "", &set],
        "without a mount namespace (a run, a join of a session without one) none is set: \
         {out:#?}"
    );
    assert_no_leftovers(&w);
}

/// Regression (issue 21, under `--map=keep-id podman`): a session without COMMAND under
/// keep-id could not be joined, `become-root: session k: cannot enter its user namespace:
/// EACCES`: its pause process had changed ids outside (root inside is a subordinate id), which
/// makes a process not dumpable, and the kernel then denies /proc/PID/ns to the joiner.
fn i21_a_keep_id_session_without_command_can_be_joined() {
    let w = world("");
    let out = w.sh("$BR --name=k --detach --map=keep-id && $BR --join=k id -u; $BR --stop=k");
    assert_eq!(out.ok(), "0\n", "{out:#?}");
    assert_no_leftovers(&w);
}

/// podman and buildah get a mount namespace without asking (`podman unshare` always has
/// one); other commands do not. The programs here are stand-ins named so.
fn podman_and_buildah_by_name_get_a_mount_namespace() {
    let w = world("");
    let bin = w.home().join("bin");
    fs::create_dir(&bin).unwrap();
    for name in ["podman", "buildah", "other"] {
        let path = bin.join(name);
        common::write_executable(
            &path,
            "#!/bin/sh\necho \"$(readlink /proc/self/ns/mnt) ${_CONTAINERS_USERNS_CONFIGURED:-unset}\"\n",
            0o755,
        );
    }
    let b = bin.display();
    let out = w.sh(&format!(
        "readlink /proc/self/ns/mnt; $BR {b}/podman; $BR {b}/buildah; $BR {b}/other; \
         PATH={b}:$PATH $BR podman"
    ));
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{out:#?}");
    let outside = lines[0];
    for (line, what) in [
        (lines[1], "podman"),
        (lines[2], "buildah"),
        (lines[4], "podman on PATH"),
    ] {
        let (ns, var) = line.split_once(' ').unwrap();
        assert_ne!(ns, outside, "{what}: no mount namespace of its own: {text}");
        assert_eq!(var, "done", "{what}: {text}");
    }
    assert_eq!(
        lines[3],
        format!("{outside} unset"),
        "other commands: {text}"
    );
}

/// `become-root podman run --rm IMG cat /proc/self/uid_map` on a cgroup v2 host, with no
/// flag: the container is in become-root's user namespace (podman makes none of its own:
/// the variables say it is configured), so it shows become-root's full map.
fn podman_run_shows_the_full_map_with_no_flag() {
    let w = world(UNIFIED);
    busybox_tarball(&w);
    let out = w.sh("$BR podman import -q img.tar localhost/bb >/dev/null && \
         $BR podman run --rm localhost/bb cat /proc/self/uid_map /proc/self/gid_map");
    assert!(out.status.success(), "{out:#?}");
    let want = [full_map(&w), full_map(&w)].concat();
    assert_eq!(map_in(&out), want, "{out:#?}");
    assert!(!out.stderr.contains("become-root:"), "no warning: {out:#?}");
    stop_and_assert_nothing_left(&w, "podman");
}

/// buildah from scratch, copy, run and commit, then a container from the committed image,
/// each a plain `become-root buildah ...` on a cgroup v2 host.
fn buildah_from_scratch_copy_run_commit_with_no_flag() {
    let w = world(UNIFIED);
    busybox_tarball(&w);
    fs::write(w.home().join("hello"), "hello from the host\n").unwrap();
    let out = w.sh("set -e
        c=$($BR buildah from scratch)
        tar -xf img.tar ./bin/busybox
        $BR buildah copy -q \"$c\" bin/busybox /bin/busybox >/dev/null
        $BR buildah copy -q \"$c\" hello /hello >/dev/null
        $BR buildah run \"$c\" /bin/busybox cat /proc/self/uid_map
        $BR buildah commit -q \"$c\" localhost/built >/dev/null
        $BR buildah rm \"$c\" >/dev/null
        d=$($BR buildah from localhost/built)
        $BR buildah run \"$d\" /bin/busybox cat /hello
        $BR buildah rm \"$d\" >/dev/null");
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(map_in(&out), full_map(&w), "{out:#?}");
    assert!(
        out.stdout.ends_with("hello from the host\n"),
        "the committed image has the copied file: {out:#?}"
    );
    stop_and_assert_nothing_left(&w, "podman");
}

// ---- issue 21: one namespace for podman and buildah across calls ----------------------------

/// The names of the helpers podman starts around a container, which must end with it.
const HELPERS: [&str; 6] = [
    "conmon",
    "catatonit",
    "slirp4netns",
    "pasta",
    "pasta.avx2",
    "rootlessport",
];

/// The processes of `w`'s user that are podman's helpers, once they have had up to
/// [`common::DEADLINE`] to end (a container's conmon exits after its container, and podman
/// waits for neither).
fn helpers_left(w: &World) -> Vec<String> {
    let deadline = std::time::Instant::now() + common::DEADLINE;
    loop {
        let left: Vec<String> = w
            .leftover_processes()
            .into_iter()
            .filter(|p| HELPERS.iter().any(|h| p.ends_with(&format!(": {h}"))))
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `--stop=NAME` of the containers namespace, then nothing of the user's may be left.
#[track_caller]
fn stop_and_assert_nothing_left(w: &World, name: &str) {
    let out = w.sh(&format!("$BR --stop={name}"));
    assert!(out.status.success(), "--stop={name}: {out:#?}");
    assert_no_leftovers(w);
}

/// A world on cgroup v2 with the busybox image imported as localhost/bb by
/// `become-root podman import`.
fn world_with_image() -> World {
    let w = world(UNIFIED);
    busybox_tarball(&w);
    let out = w.sh("$BR podman import -q img.tar localhost/bb");
    assert!(out.status.success(), "import: {out:#?}");
    w
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The README's detached life of a container, one `become-root podman` call each, as a user
/// types them: on main each call made a user and mount namespace of its own, and podman's
/// state pointed into the first one: `ps` failed with status 125 (`joining network namespace
/// of container ...: unknown FS magic on ".../netns/netns-...": ef53`), `exec` with 126.
fn i21_a_detached_container_is_seen_and_managed_by_the_next_calls() {
    let w = world_with_image();
    let calls = [
        (
            "$BR podman run -d --name web localhost/bb sh -c 'echo started; exec sleep 1000'",
            None,
        ),
        (
            "$BR podman ps --format '{{.Names}} {{.Status}}'",
            Some("web Up"),
        ),
        ("$BR podman exec web id -u", Some("0\n")),
        ("$BR podman logs web", Some("started\n")),
        ("$BR podman stop -t 0 web", Some("web\n")),
        (
            "$BR podman ps -a --format '{{.Names}} {{.Status}}'",
            Some("web Exited"),
        ),
        ("$BR podman rm web", Some("web\n")),
        ("$BR podman ps -a --format '{{.Names}}'", Some("")),
    ];
    for (call, want) in calls {
        // Each call is a new login's (the harness's namespace is made again for each).
        let out = w.sh(call);
        assert!(out.status.success(), "{call}: {out:#?}");
        if let Some(want) = want {
            assert!(
                out.stdout.starts_with(want),
                "{call}: want {want:?}: {out:#?}"
            );
        }
    }
    assert_eq!(helpers_left(&w), Vec::<String>::new(), "after podman rm");
    // The namespace itself is there until --stop, and --list marks it.
    let out = w.sh("$BR --list");
    let row = out.ok().lines().find(|l| l.starts_with("podman "));
    assert!(
        row.is_some_and(|r| r.ends_with("running (containers)")),
        "{out:#?}"
    );
    stop_and_assert_nothing_left(&w, "podman");
}

/// `--stop=podman` ends the namespace and the containers in it (conmon and its helpers
/// too), and the next call starts afresh, as podman does after a reboot: the container that
/// ran is there, stopped, and can be started again or removed.
fn i21_stop_ends_the_namespace_and_its_containers_and_the_next_call_starts_afresh() {
    let w = world_with_image();
    let out = w.sh("$BR podman run -d --name web localhost/bb sleep 1000");
    assert!(out.status.success(), "{out:#?}");
    stop_and_assert_nothing_left(&w, "podman");
    let out = w.sh("$BR podman ps -a --format '{{.Names}} {{.Status}}'");
    assert!(out.ok().starts_with("web "), "{out:#?}");
    assert!(
        !out.stdout.contains(" Up "),
        "not running any more: {out:#?}"
    );
    assert!(!out.stderr.contains("level=error"), "{out:#?}");
    let out = w.sh("$BR podman start web && $BR podman ps --format '{{.Names}} {{.Status}}'");
    assert!(out.ok().contains("web Up"), "started again: {out:#?}");
    let out = w.sh("$BR podman rm -f -t 0 web");
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(helpers_left(&w), Vec::<String>::new(), "after podman rm");
    stop_and_assert_nothing_left(&w, "podman");
}

/// A pod with a published port, a container in it, the port reached from the host, then
/// `pod rm -f`: on main the later calls failed with 125 and conmon, catatonit, slirp4netns
/// and rootlessport kept running.
fn i21_a_pod_and_its_published_port_across_calls_leave_nothing_behind() {
    let w = world_with_image();
    let port = free_port();
    for call in [
        format!("$BR podman pod create --name p1 -p 127.0.0.1:{port}:8080"),
        "$BR podman run -d --pod p1 --name web localhost/bb httpd -f -p 8080 -h /www".into(),
    ] {
        let out = w.sh(&call);
        assert!(out.status.success(), "{call}: {out:#?}");
    }
    // httpd serves once it has started, which `run -d` does not wait for.
    let out = w.sh(&format!(
        "{} busybox wget -q -O /dev/null http://127.0.0.1:{port}/ && \
         busybox wget -q -O - http://127.0.0.1:{port}/",
        World::until()
    ));
    assert_eq!(out.ok(), "hello from the container\n", "{out:#?}");
    let out = w.sh("$BR podman pod ps --format '{{.Name}} {{.Status}}'");
    assert_eq!(out.ok(), "p1 Running\n", "{out:#?}");
    let out = w.sh("$BR podman pod rm -f p1");
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(helpers_left(&w), Vec::<String>::new(), "after pod rm -f");
    let out = w.sh(&format!("busybox wget -q -O - http://127.0.0.1:{port}/"));
    assert!(!out.status.success(), "the port is closed: {out:#?}");
    stop_and_assert_nothing_left(&w, "podman");
}

/// Two users, each with a container running: each sees only its own, in its own namespace.
fn i21_two_users_at_once_see_only_their_own() {
    let (a, b) = (world_with_image(), world_with_image());
    for (w, name) in [(&a, "web-a"), (&b, "web-b")] {
        let out = w.sh(&format!(
            "$BR podman run -d --name {name} localhost/bb sleep 1000"
        ));
        assert!(out.status.success(), "{out:#?}");
    }
    for (w, name) in [(&a, "web-a"), (&b, "web-b")] {
        let out = w.sh("$BR podman ps --format '{{.Names}}'; $BR --list");
        let text = out.ok();
        assert!(text.starts_with(&format!("{name}\nNAME ")), "{out:#?}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("podman ")).count(),
            1,
            "{out:#?}"
        );
    }
    stop_and_assert_nothing_left(&a, "podman");
    let out = b.sh("$BR podman ps --format '{{.Names}}'");
    assert_eq!(
        out.ok(),
        "web-b\n",
        "the other user's is untouched: {out:#?}"
    );
    stop_and_assert_nothing_left(&b, "podman");
}

/// `--map=keep-id` across calls: on main `become-root --map=keep-id podman images` panicked
/// (podman found no usable runtime directory). Its namespace is one of its own, with its own
/// storage: what runs in it is never seen by the default map's podman, nor the reverse.
fn i21_keep_id_across_calls_never_mixes_with_the_default_map() {
    let w = world_with_image();
    let out = w.sh("$BR --map=keep-id podman images --format '{{.Repository}}'");
    assert!(out.status.success(), "{out:#?}");
    assert!(!out.stderr.contains("panic"), "{out:#?}");
    assert_eq!(
        out.stdout, "",
        "the default map's image is not there: {out:#?}"
    );
    for call in [
        "$BR --map=keep-id podman import -q img.tar localhost/kb",
        "$BR --map=keep-id podman run -d --name kid localhost/kb sleep 1000",
        "$BR podman run -d --name def localhost/bb sleep 1000",
    ] {
        let out = w.sh(call);
        assert!(out.status.success(), "{call}: {out:#?}");
    }
    let out = w.sh("$BR --map=keep-id podman exec kid cat /proc/self/uid_map");
    let s = w.sub_start();
    assert_eq!(
        map_in(&out),
        [format!("0 {s} 65536"), format!("{0} {0} 1", w.uid)],
        "the container has the keep-id map: {out:#?}"
    );
    for (args, want) in [("--map=keep-id ", "kid\n"), ("", "def\n")] {
        let out = w.sh(&format!("$BR {args}podman ps -a --format '{{{{.Names}}}}'"));
        assert_eq!(out.ok(), want, "{args}: {out:#?}");
    }
    let out = w.sh("$BR --list");
    let names: Vec<&str> = out
        .ok()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(names, ["podman", "podman-keep-id"], "{out:#?}");
    let out = w.sh("$BR --map=keep-id podman rm -f -t 0 kid && $BR podman rm -f -t 0 def");
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(helpers_left(&w), Vec::<String>::new(), "after rm");
    let out = w.sh("$BR --stop=podman-keep-id");
    assert!(out.status.success(), "{out:#?}");
    stop_and_assert_nothing_left(&w, "podman");
}

/// `--check` reports the containers namespace; once /etc/subuid grants other ids than when
/// it was made, it says so and how to renew it (as `podman system migrate` does), and after
/// the renewal the namespace has the new ids.
fn i21_a_changed_subuid_is_reported_by_check_with_how_to_renew() {
    let mut w = world(UNIFIED);
    let out = w.sh("$BR podman images -q && $BR --check");
    let line = out
        .ok()
        .lines()
        .find(|l| l.contains("containers namespace podman"))
        .map(str::to_string);
    assert!(
        line.as_deref().is_some_and(|l| l.starts_with("ok ")),
        "{out:#?}"
    );
    let spare = w.spare_range(1);
    w.subuid = format!("tuser:{spare}:{}\n", common::SUB_COUNT);
    let out = w.sh("$BR --check");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("containers namespace podman"))
        .unwrap_or_default();
    assert!(line.starts_with("warn "), "{out:#?}");
    assert!(
        line.contains("/etc/subuid") && line.contains(&spare.to_string()),
        "says what changed: {line}"
    );
    assert!(
        line.contains("become-root --stop=podman"),
        "how to renew: {line}"
    );
    let out = w.sh("$BR --stop=podman && $BR podman unshare cat /proc/self/uid_map");
    assert_eq!(
        map_in(&out),
        [
            format!("0 {} 1", w.uid),
            format!("1 {spare} {}", common::SUB_COUNT)
        ],
        "renewed: {out:#?}"
    );
    let out = w.sh("$BR --check");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("ok ") && l.contains("containers namespace podman")),
        "{out:#?}"
    );
    stop_and_assert_nothing_left(&w, "podman");
}

/// podman run by a shell or make (`become-root --containers COMMAND`) is in the same
/// namespace as `become-root podman`: one namespace, whichever comes first.
fn i21_an_indirect_podman_runs_in_the_same_namespace() {
    let w = world_with_image();
    let out = w.sh("$BR --containers sh -c 'podman run -d --name web localhost/bb sleep 1000'");
    assert!(out.status.success(), "{out:#?}");
    let out = w.sh("$BR podman ps --format '{{.Names}}'; \
         $BR --containers sh -c 'podman ps --format {{.Names}}; readlink /proc/self/ns/user'; \
         $BR --join=podman readlink /proc/self/ns/user");
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["web", "web"], "{out:#?}");
    assert_eq!(lines[2], lines[3], "one user namespace: {out:#?}");
    let out = w.sh("$BR --list");
    assert_eq!(out.ok().lines().count(), 2, "one session: {out:#?}");
    let out = w.sh("$BR podman rm -f -t 0 web");
    assert!(out.status.success(), "{out:#?}");
    stop_and_assert_nothing_left(&w, "podman");
}

/// On a hybrid host the warning comes where a container runs (run, create, start, build,
/// buildah bud, pod ...), for podman run by a shell in a mount namespace too, and never for
/// `images` or `import` (on main it came for those, and not for `sh -c 'podman build'`). The
/// fix it names works, and the containers namespace made with it keeps it.
fn i21_the_hybrid_warning_only_where_a_container_runs_and_the_fix_works() {
    let w = world(HYBRID);
    busybox_tarball(&w);
    fs::create_dir(w.home().join("ctx")).unwrap();
    fs::write(
        w.home().join("ctx/Containerfile"),
        "FROM localhost/bb\nRUN true\n",
    )
    .unwrap();
    let warning = "become-root: warning: podman: this host mounts cgroup v1 and v2 side by side";
    let quiet = [
        "$BR podman import -q img.tar localhost/bb",
        "$BR podman images -q",
        "$BR buildah images -q",
        "$BR crun --version",
        "$BR -m sh -c 'podman images -q'",
    ];
    for call in quiet {
        let out = w.sh(call);
        assert!(out.status.success(), "{call}: {out:#?}");
        assert!(!out.stderr.contains("become-root:"), "{call}: {out:#?}");
    }
    let warned = [
        ("$BR podman run --rm localhost/bb true", "podman"),
        (
            "$BR podman --log-level error create localhost/bb true",
            "podman",
        ),
        ("$BR podman pod create", "podman"),
        ("$BR podman build -q ctx", "podman"),
        ("$BR buildah bud -q ctx", "buildah"),
        ("$BR -m sh -c 'cd ctx && podman build -q .'", "podman"),
        (
            "$BR --containers sh -c 'podman run --rm localhost/bb true'",
            "podman",
        ),
    ];
    for (call, program) in warned {
        let out = w.sh(call);
        let want = warning.replace("podman:", &format!("{program}:"));
        assert!(out.stderr.contains(&want), "{call}: {out:#?}");
        assert!(
            out.stderr.contains("--tmpfs=/sys/fs/cgroup")
                && out.stderr.contains("systemd.unified_cgroup_hierarchy=1"),
            "{call}: {out:#?}"
        );
    }
    let out = w.sh("$BR -q podman run --rm localhost/bb true");
    assert!(!out.stderr.contains("become-root:"), "--quiet: {out:#?}");
    // The fix: the namespace made again with the host's cgroups hidden. Later calls need not
    // repeat the option; one that asks for another is refused, saying how.
    let out = w.sh("$BR --stop=podman && \
         $BR --tmpfs=/sys/fs/cgroup podman run --rm localhost/bb cat /proc/self/uid_map && \
         $BR podman run --rm localhost/bb cat /proc/self/uid_map");
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(
        map_in(&out),
        [full_map(&w), full_map(&w)].concat(),
        "{out:#?}"
    );
    assert!(
        !out.stderr.contains("become-root:"),
        "no warning with the fix: {out:#?}"
    );
    let out = w.sh("$BR --tmpfs=/srv podman ps");
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("--tmpfs=/sys/fs/cgroup"), "{out:#?}");
    assert!(out.stderr.contains("hint: "), "{out:#?}");
    let out = w.sh("$BR podman pod rm -a -f && $BR podman rm -a -f");
    assert!(out.status.success(), "{out:#?}");
    stop_and_assert_nothing_left(&w, "podman");
}

/// Plain `podman` and `become-root podman` share one namespace, whichever made it: plain
/// podman joins become-root's (it names it in podman's pause file), and become-root joins
/// plain podman's pause process when that runs. Two beside each other over one storage would
/// each reset what the other runs (found while fixing issue 21: a plain `podman ps` showed a
/// container running in become-root's namespace as "Created", and lost track of it).
fn i21_plain_podman_and_become_root_podman_share_one_namespace() {
    let w = world_with_image();
    let names = "--format '{{.Names}} {{.Status}}'";
    let out = w.sh(&format!(
        "$BR podman run -d --name a localhost/bb sleep 1000 >/dev/null && podman ps {names} && \
         podman exec a id -u"
    ));
    let text = out.ok();
    assert!(
        text.starts_with("a Up") && text.ends_with("\n0\n"),
        "{out:#?}"
    );
    stop_and_assert_nothing_left(&w, "podman");
    // Plain podman goes on alone, in a namespace of its own; become-root podman joins it.
    let out = w.sh(&format!(
        "podman ps -a {names} && podman run -d --name b localhost/bb sleep 1000 >/dev/null && \
         $BR podman ps {names} && $BR --list"
    ));
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("a ") && !lines[0].contains(" Up "),
        "{out:#?}"
    );
    assert!(lines[1].starts_with("b Up"), "{out:#?}");
    assert_eq!(lines.len(), 3, "no namespace of become-root's: {out:#?}");
    let out = w.sh("$BR podman rm -f -t 0 a b && podman system migrate");
    assert!(out.status.success(), "{out:#?}");
    assert_no_leftovers(&w);
}
