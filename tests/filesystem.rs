//! Filesystem tests: bind, ro-bind, tmpfs, copy-up, overlay (native and fuse), rootfs and
//! chdir through the hermetic harness, as an unprivileged user.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{World, chown_tree};

common::tests! {
    [Harness]
        bind_and_tmpfs_and_chdir,
        ro_bind_is_read_only_recursively,
        copy_up_etc_keeps_changes_inside,
        order_of_options_is_the_command_lines,
        overlay_throwaway_and_persistent_with_ownership_on_disk,
        overlay_with_several_lowers_top_first_and_escaped_paths;
    [Harness, Tool("fuse-overlayfs")]
        fuse_overlayfs_driver_works_and_leaves_nothing,
        fuse_overlayfs_is_gone_when_become_root_returns,
        fuse_overlayfs_variable_names_the_program_that_runs,
        fuse_overlayfs_beside_a_mount_point_that_is_not_utf8;
    [Harness, Tool("fuse-overlayfs"), Tool("ps")]
        killing_become_root_leaves_no_mount_and_no_fuse_process;
    [Harness, Tool("busybox")]
        rootfs_with_pid_runs_busybox_in_a_minimal_system,
        errors_come_before_anything_is_mounted;
    [Harness, Tool("busybox"), Tool("slirp4netns")]
        rootfs_owned_by_a_subordinate_uid_and_with_network_resolv_conf;
}

/// A world with a directory tree of the test user's: `data/` holding `f` ("base").
fn world() -> (World, PathBuf) {
    let w = World::new();
    let data = w.home().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("f"), "base\n").unwrap();
    std::fs::create_dir_all(w.home().join("target")).unwrap();
    chown_tree(&w.home(), w.uid);
    (w, data)
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Run `script` in a shell that stays in the harness's mount namespace around become-root, and
/// check that the namespace's mount table is the same before and after.
fn sh_keeping_mounts(w: &World, script: &str) -> common::Out {
    let full = format!(
        "before=$(cat /proc/self/mountinfo); {script}; status=$?; \
         [ \"$before\" = \"$(cat /proc/self/mountinfo)\" ] || {{ echo MOUNTS-CHANGED >&2; exit 99; }}; \
         exit $status"
    );
    let out = w.sh(&full);
    assert!(
        !out.stderr.contains("MOUNTS-CHANGED"),
        "a mount reached the outside: {out:#?}"
    );
    out
}

fn bind_and_tmpfs_and_chdir() {
    let (w, data) = world();
    let target = w.home().join("target");
    let out = sh_keeping_mounts(
        &w,
        &format!(
            "\"$BR\" --bind={d}:{t} --chdir={t} sh -c 'pwd; cat f; echo more > g' && cat {d}/g && \
             \"$BR\" --tmpfs={t} sh -c 'ls -A {t} | wc -l; touch {t}/x; ls {t}' && ls {t}",
            d = p(&data),
            t = p(&target)
        ),
    );
    assert_eq!(out.ok(), format!("{}\nbase\nmore\n0\nx\n", p(&target)));
}

fn ro_bind_is_read_only_recursively() {
    let (mut w, data) = world();
    // A submount below the source, made in the harness's namespace: it must be read-only too.
    w.root_setup = format!("mount -t tmpfs -o mode=777 none {}", p(&data.join("sub")));
    let t = w.home().join("target");
    let out = w.sh(&format!(
        "touch {d}/sub/writable-outside && \"$BR\" --ro-bind={d}:{t} sh -c \
         'cat {t}/f; touch {t}/x 2>&1; touch {t}/sub/y 2>&1; echo done'",
        d = p(&data),
        t = p(&t)
    ));
    let text = out.ok();
    assert!(text.starts_with("base\n"), "{text}");
    assert_eq!(
        text.matches("Read-only file system").count(),
        2,
        "top and submount: {text}"
    );
}

fn copy_up_etc_keeps_changes_inside() {
    let (w, _) = world();
    let out = sh_keeping_mounts(
        &w,
        "\"$BR\" --copy-up=/etc sh -c 'echo inside > /etc/become-root-test && cat /etc/become-root-test && \
         rm /etc/hostname && mv /etc/become-root-test /etc/issue && head -1 /etc/issue' && \
         { ls /etc/become-root-test 2>/dev/null || echo not-outside; test -e /etc/hostname && echo hostname-kept; }",
    );
    assert_eq!(out.ok(), "inside\ninside\nnot-outside\nhostname-kept\n");
}

fn order_of_options_is_the_command_lines() {
    let (w, data) = world();
    let t = w.home().join("target");
    // A tmpfs, then a bind into it: the bind is visible.
    let out = w.sh(&format!(
        "mkdir -p {d}/inner && \"$BR\" --tmpfs={t} --bind={d}:{t} cat {t}/f",
        d = p(&data),
        t = p(&t)
    ));
    assert_eq!(out.ok(), "base\n");
    // A bind, then a tmpfs over it: the tmpfs hides it.
    let out = w.sh(&format!(
        "\"$BR\" --bind={d}:{t} --tmpfs={t} sh -c 'ls -A {t} | wc -l'",
        d = p(&data),
        t = p(&t)
    ));
    assert_eq!(out.ok().trim(), "0");
}

fn overlay_throwaway_and_persistent_with_ownership_on_disk() {
    let (w, data) = world();
    let t = w.home().join("target");
    let upper = w.home().join("upper");
    // Throwaway: changes are gone afterwards, the lower is untouched.
    let out = sh_keeping_mounts(
        &w,
        &format!(
            "\"$BR\" --overlay-driver=native --overlay={d}:{t} sh -c 'echo changed > {t}/f; touch {t}/new; cat {t}/f' && \
             cat {d}/f && ls {t} | wc -l",
            d = p(&data),
            t = p(&t)
        ),
    );
    assert_eq!(out.ok(), "changed\nbase\n0\n");
    // Persistent: files created as 0 and as 1000 inside land on disk as the caller and the
    // range's start + 999. Native overlayfs on purpose: a silent fallback to fuse-overlayfs
    // would hide an upper layer the kernel refused (as a descriptor from the caller's mount
    // namespace once was).
    let out = sh_keeping_mounts(
        &w,
        &format!(
            "\"$BR\" --overlay-driver=native --overlay={d}:{t}:{u} sh -c 'touch {t}/by-root; touch {t}/by-user; \
             chown 1000:1000 {t}/by-user; echo changed > {t}/f'",
            d = p(&data),
            t = p(&t),
            u = p(&upper)
        ),
    );
    out.ok();
    let owner = |name: &str| {
        let m = std::fs::metadata(upper.join(name)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("by-root"), (w.uid, w.gid));
    let outside = w.sub_start() + 999;
    assert_eq!(owner("by-user"), (outside, outside));
    assert_eq!(
        std::fs::read_to_string(upper.join("f")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("f")).unwrap(),
        "base\n",
        "lower untouched"
    );
    assert!(
        w.home().join(".upper.work").is_dir(),
        "work directory beside the upper"
    );
    // A second run sees the first one's changes.
    let out = w.run(&[
        &format!("--overlay={}:{}:{}", p(&data), p(&t), p(&upper)),
        "cat",
        &p(&t.join("f")),
    ]);
    assert_eq!(out.ok(), "changed\n");
}

fn overlay_with_several_lowers_top_first_and_escaped_paths() {
    let (w, data) = world();
    let top = w.home().join("top:most");
    std::fs::create_dir(&top).unwrap();
    std::fs::write(top.join("f"), "top\n").unwrap();
    std::fs::write(top.join("only-top"), "t\n").unwrap();
    chown_tree(&top, w.uid);
    let t = w.home().join("target");
    let spec = format!("{}\\:most,{}:{}", p(&w.home().join("top")), p(&data), p(&t));
    let out = w.run(&[
        &format!("--overlay={spec}"),
        "sh",
        "-c",
        &format!("cat {0}/f; ls {0}", p(&t)),
    ]);
    assert_eq!(out.ok(), "top\nf\nonly-top\nsub\n");
}

fn fuse_overlayfs_variable_names_the_program_that_runs() {
    let (mut w, data) = world();
    let t = w.home().join("target");
    let log = w.home().join("fuse-ran");
    let real = common::which("fuse-overlayfs").unwrap();
    let wrapper = w.dir.join("wrapped-fuse-overlayfs");
    common::write_executable(
        &wrapper,
        format!(
            "#!/bin/sh\necho fuse-overlayfs >> {}\nexec {} \"$@\"\n",
            p(&log),
            p(&real)
        ),
        0o755,
    );
    let overlay = format!("--overlay={}:{}", p(&data), p(&t));
    w.env = vec![("FUSE_OVERLAYFS".into(), p(&wrapper))];
    let out = w.run(&[
        "--overlay-driver=fuse",
        "--verbose",
        &overlay,
        "cat",
        &p(&t.join("f")),
    ]);
    assert_eq!(out.ok(), "base\n");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "fuse-overlayfs\n");
    assert!(
        out.stderr.contains(&format!(
            "overlay on {}: fuse-overlayfs {} (from FUSE_OVERLAYFS)",
            p(&t),
            p(&wrapper)
        )),
        "{}",
        out.stderr
    );
    w.env = vec![(
        "FUSE_OVERLAYFS".into(),
        "/nonexistent/fuse-overlayfs".into(),
    )];
    let out = w.run(&["--overlay-driver=fuse", &overlay, "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.starts_with(&format!(
            "become-root: overlay on {}: FUSE_OVERLAYFS=/nonexistent/fuse-overlayfs: no such \
             file\n",
            p(&t)
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: set FUSE_OVERLAYFS to the path"),
        "{}",
        out.stderr
    );
    assert!(w.leftover_processes().is_empty());
}

fn fuse_overlayfs_driver_works_and_leaves_nothing() {
    let (w, data) = world();
    let t = w.home().join("target");
    let upper = w.home().join("fuse-upper");
    let out = sh_keeping_mounts(
        &w,
        &format!(
            "\"$BR\" --overlay-driver=fuse --overlay={d}:{t} sh -c \
             'grep -c \"fuse.fuse-overlayfs\" /proc/self/mountinfo; echo x > {t}/g; cat {t}/f' && \
             ls {t} | wc -l && \
             \"$BR\" --overlay-driver=fuse --overlay={d}:{t}:{u} sh -c 'echo kept > {t}/k' && cat {u}/k",
            d = p(&data),
            t = p(&t),
            u = p(&upper)
        ),
    );
    assert_eq!(out.ok(), "1\nbase\n0\nkept\n");
    let left = w.leftover_processes();
    assert!(left.is_empty(), "fuse-overlayfs outlived the run: {left:?}");
    // This world's staging directories: become-root makes them as the test user, and tests
    // running alongside have users of their own.
    let staging: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("become-root-overlay.")
                && e.metadata().is_ok_and(|m| m.uid() == w.uid)
        })
        .collect();
    assert!(staging.is_empty(), "staging directory left: {staging:?}");
}

/// Regression: run in place, become-root was gone when COMMAND ended, and fuse-overlayfs,
/// ended by its parent-death signal, some milliseconds later (still there in 6 of 30 runs,
/// looked for at once). Now become-root supervises a fuse-overlayfs run and returns once it
/// has reaped it. Looked for with shell builtins only, so that the look is quick.
fn fuse_overlayfs_is_gone_when_become_root_returns() {
    let (w, data) = world();
    let t = w.home().join("target");
    let script = format!(
        "n=0; i=0; \
         while [ $i -lt 30 ]; do \
           \"$BR\" --overlay-driver=fuse --overlay={d}:{t} true || exit 1; \
           for p in /proc/[0-9]*; do \
             read -r c < \"$p/comm\" 2>/dev/null || continue; \
             [ \"$c\" = fuse-overlayfs ] && [ -O \"$p\" ] || continue; \
             read -r line < \"$p/stat\" 2>/dev/null || continue; \
             state=${{line##*) }}; state=${{state%% *}}; \
             [ \"$state\" = Z ] || n=$((n + 1)); \
           done; \
           i=$((i + 1)); \
         done; \
         echo \"$n of $i\"",
        d = p(&data),
        t = p(&t),
    );
    let out = sh_keeping_mounts(&w, &script);
    assert_eq!(out.ok(), "0 of 30\n", "fuse-overlayfs outlived become-root");
    w.assert_nothing_left();
}

/// Regression: /proc/self/mountinfo was read as UTF-8, so one mount point anywhere that is not
/// (here a Latin-1 "café") hid every mount from become-root, and a fuse-overlayfs that had
/// mounted looked as if it never did: "did not mount within 10 s".
fn fuse_overlayfs_beside_a_mount_point_that_is_not_utf8() {
    let (mut w, data) = world();
    let latin1 = format!("{}/caf$(printf '\\351')", p(&w.home()));
    w.root_setup = format!("mkdir -p {latin1} && mount -t tmpfs none {latin1}");
    let t = w.home().join("target");
    let out = w.sh(&format!(
        "\"$BR\" --overlay-driver=fuse --overlay={d}:{t} cat {t}/f",
        d = p(&data),
        t = p(&t)
    ));
    assert_eq!(out.ok(), "base\n");
}

/// A busybox root filesystem owned by `uid`.
fn busybox_rootfs(w: &World, uid: u32) -> PathBuf {
    let root = w.home().join("rootfs");
    let applets = [
        "sh", "ls", "cat", "id", "echo", "touch", "head", "wc", "stat", "readlink", "grep",
    ];
    common::busybox_rootfs(&root, uid, &applets, "nameserver 192.0.2.53\n");
    root
}

fn rootfs_with_pid_runs_busybox_in_a_minimal_system() {
    let (w, _) = world();
    let root = busybox_rootfs(&w, w.uid);
    let script = "ls /; cat /proc/1/comm; ls /dev; id -u; echo x > /tmp/t && cat /tmp/t; \
                  echo y > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; pwd; \
                  ls /sys | head -1; grep -c . /proc/mounts";
    let out = sh_keeping_mounts(
        &w,
        &format!("\"$BR\" --rootfs={} --pid /bin/sh -c '{script}'", p(&root)),
    );
    let text = out.ok().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[..6],
        ["bin", "dev", "etc", "proc", "sys", "tmp"],
        "{text}"
    );
    assert_eq!(lines[6], "become-root", "init of the pid namespace: {text}");
    for node in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
    ] {
        assert!(lines.contains(&node), "/dev/{node}: {text}");
    }
    assert!(text.contains("\n0\nx\nnull-ok\n4\n/\n"), "{text}");
    // nothing of the old root stays visible
    let out = w.run(&[&format!("--rootfs={}", p(&root)), "/bin/ls", &p(&w.home())]);
    assert_ne!(out.code(), Some(0), "the old root is gone: {out:#?}");
}

fn rootfs_owned_by_a_subordinate_uid_and_with_network_resolv_conf() {
    let (w, _) = world();
    // As an unpacked image would be: owned by root inside, i.e. the caller... and by
    // subordinate ids for the rest.
    let root = busybox_rootfs(&w, w.sub_start());
    common::chmod(&root, 0o755);
    let out = w.run(&[
        &format!("--rootfs={}", p(&root)),
        "/bin/stat",
        "-c",
        "%u",
        "/bin/busybox",
    ]);
    assert_eq!(
        out.ok(),
        "1\n",
        "owned by inside uid 1 (the first subordinate id)"
    );
    let out = w.run(&[
        &format!("--rootfs={}", p(&root)),
        "--net=slirp4netns",
        "/bin/cat",
        "/etc/resolv.conf",
    ]);
    assert!(out.ok().contains("nameserver 10.0.2.3"), "{out:#?}");
}

fn errors_come_before_anything_is_mounted() {
    let (mut w, data) = world();
    let t = w.home().join("target");
    let missing = w.home().join("missing");
    let file = data.join("f");
    let mounted_upper = w.home().join("mounted-upper");
    std::fs::create_dir(&mounted_upper).unwrap();
    chown_tree(&mounted_upper, w.uid);
    // An upper that is a mount point of its own (the user's, mode 0755): the work directory
    // beside it is elsewhere.
    w.root_setup = format!(
        "mount -t tmpfs -o mode=755,uid={},gid={} none {}",
        w.uid,
        w.gid,
        p(&mounted_upper)
    );
    let root = busybox_rootfs(&w, w.uid);
    let marker = w.home().join("ran");
    let touch = format!("touch {}", p(&marker));
    let mut rows: Vec<(String, i32, String)> = vec![
        (
            format!("--bind={}:{}", p(&missing), p(&t)),
            125,
            format!("bind source {}", p(&missing)),
        ),
        (
            format!("--bind={}:{}", p(&data), p(&missing)),
            125,
            format!("bind destination {}", p(&missing)),
        ),
        (
            format!("--tmpfs={}", p(&missing)),
            125,
            "tmpfs directory".into(),
        ),
        (
            format!("--overlay={}:{}", p(&file), p(&t)),
            125,
            format!("overlay lower {}: Not a directory", p(&file)),
        ),
        (
            format!("--overlay={}:{}", p(&missing), p(&t)),
            125,
            "overlay lower".into(),
        ),
        (
            format!("--overlay={}:{}", p(&data), p(&missing)),
            125,
            "overlay target".into(),
        ),
        (
            format!("--overlay={}:{}:{}", p(&data), p(&t), p(&mounted_upper)),
            125,
            "on another filesystem".into(),
        ),
        (
            format!("--copy-up={}", p(&missing)),
            125,
            "overlay lower".into(),
        ),
        (format!("--rootfs={}", p(&missing)), 125, "--rootfs".into()),
        (
            "--overlay=/only-one".to_string(),
            125,
            "expected LOWER[,LOWER...]:TARGET[:UPPER]".into(),
        ),
        (
            "--bind=/a:/b:/c".to_string(),
            125,
            "expected SRC or SRC:DST".into(),
        ),
        (
            format!("'--bind={}\\'", p(&data)),
            125,
            "escapes nothing".into(),
        ),
        (
            format!("--rootfs={} --tmpfs=/tmp/../../etc", p(&root)),
            125,
            "climbs out of the new root".into(),
        ),
    ];
    rows.push((
        format!("--rootfs={}", p(&root)),
        127,
        "not found in the new root".into(),
    ));
    for (arg, code, want) in rows {
        let command: &str = if code == 127 {
            "/usr/bin/no-such-thing"
        } else {
            "sh"
        };
        let out = sh_keeping_mounts(&w, &format!("\"$BR\" {arg} {command} -c '{touch}'"));
        assert_eq!(out.code(), Some(code), "{arg}: {out:#?}");
        assert!(
            out.stderr.starts_with("become-root: "),
            "{arg}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(&want), "{arg}: {}", out.stderr);
        assert!(
            out.stderr.contains("\nhint: "),
            "{arg}: says how to fix it: {}",
            out.stderr
        );
        assert!(!marker.exists(), "{arg}: the command ran");
    }
}

fn killing_become_root_leaves_no_mount_and_no_fuse_process() {
    let (w, data) = world();
    let t = w.home().join("target");
    for extra in ["", "--pid", "--overlay-driver=fuse"] {
        // Killed once COMMAND runs, every mount made.
        let script = format!(
            "\"$BR\" {extra} --overlay={d}:{t} --tmpfs={h} sleep 300 & pid=$!; \
             {until} sh -c 'ps -u \"$(id -u)\" -o args= | grep -qx \"sleep 300\"'; \
             kill -KILL $pid; wait $pid; echo status=$?",
            d = p(&data),
            t = p(&t),
            h = p(&data.join("sub")),
            until = World::until()
        );
        let out = sh_keeping_mounts(&w, &script);
        assert!(out.ok().contains("status=137"), "{extra}: {out:#?}");
        let left = w.wait_no_leftovers();
        // exec in place: SIGKILL reaches COMMAND itself; nothing else may remain
        assert!(left.is_empty(), "{extra}: left {left:?}");
    }
}
