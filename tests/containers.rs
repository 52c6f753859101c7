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
        podman_and_buildah_by_name_get_a_mount_namespace;
    [Harness, Tool("podman"), Tool("crun"), Tool("busybox"), Tool("slirp4netns")]
        podman_run_shows_the_full_map_with_no_flag,
        hybrid_cgroups_are_named_with_the_fix_and_the_fix_works;
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
    for applet in ["sh", "cat", "id", "ls", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
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
    assert_no_leftovers(&w);
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
    assert_no_leftovers(&w);
}

/// On a hybrid host, podman, buildah or crun as COMMAND get a warning naming the layout and
/// the fixes (crun's own error does not say what to do); --quiet silences it; and the fix it
/// names, --tmpfs=/sys/fs/cgroup, makes podman run work.
fn hybrid_cgroups_are_named_with_the_fix_and_the_fix_works() {
    let w = world(HYBRID);
    busybox_tarball(&w);
    let out = w.sh("$BR podman import -q img.tar localhost/bb");
    assert!(out.status.success(), "{out:#?}");
    let warning = "become-root: warning: podman: this host mounts cgroup v1 and v2 side by side";
    assert!(out.stderr.contains(warning), "{out:#?}");
    assert!(
        out.stderr.contains("\nhint: add --tmpfs=/sys/fs/cgroup")
            && out.stderr.contains("systemd.unified_cgroup_hierarchy=1"),
        "{out:#?}"
    );
    let out = w.sh("$BR crun --version >/dev/null");
    assert!(
        out.stderr.starts_with("become-root: warning: crun: "),
        "{out:#?}"
    );
    let out = w.sh("$BR -q podman images -q >/dev/null; $BR sh -c true");
    assert_eq!(
        out.stderr, "",
        "--quiet, and a command that is none of them: {out:#?}"
    );
    let out =
        w.sh("$BR --tmpfs=/sys/fs/cgroup podman run --rm localhost/bb cat /proc/self/uid_map");
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(map_in(&out), full_map(&w), "{out:#?}");
    assert!(
        !out.stderr.contains("become-root:"),
        "no warning with the fix: {out:#?}"
    );
    assert_no_leftovers(&w);
}
