//! Regression tests for the defects of the hostile review (issue 8) in what outlives a run and
//! what serves its published ports: the parent-death rule across changes of ids (D17), the
//! exit status under a file size limit (D10), a killed socket provider (D23) and the
//! forwarder's limits per client and on idle connections (D24). Each is named after the
//! defect it pins.
mod common;

use std::path::Path;

use common::{World, chown_tree};

common::tests! {
    [Harness, Tool("ps"), Tool("fuse-overlayfs")]
        d17_sigkill_of_become_root_leaves_nothing_whatever_the_id_map;
    [Harness, Tool("prlimit")]
        d10_over_the_file_size_limit_become_root_ends_125_and_command_gets_sigxfsz_as_it_was;
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

// ---- D17. the parent-death signal survives every change of ids ------------------------------

fn d17_sigkill_of_become_root_leaves_nothing_whatever_the_id_map() {
    // The kernel clears a process's parent-death signal when its effective or filesystem ids
    // change (commit_creds). Under keep-id, or a map that puts a subordinate id at 0, the
    // namespace process changes them twice (to 0 inside, then to COMMAND's identity), so the
    // signal that was to end it with become-root was gone: init, or COMMAND itself, lived on
    // (--uid changes them once). And COMMAND as an unprivileged id inside may not signal
    // fuse-overlayfs, so its parent-death signal was refused when COMMAND died.
    let w = World::new();
    let home = w.home();
    std::fs::create_dir_all(home.join("lower")).unwrap();
    std::fs::create_dir_all(home.join("target")).unwrap();
    chown_tree(&home, w.uid);
    let (uid, sub) = (w.uid, w.sub_start());
    let maps = [
        ("the default map", String::new()),
        ("--map=keep-id", "--map=keep-id".to_string()),
        (
            "a subordinate id at 0",
            format!("--map-users=0:{sub}:1000 --map-users=1000:{uid}:1"),
        ),
        ("COMMAND as another id", "--uid=1000 --gid=1000".to_string()),
    ];
    let overlay = format!(
        "--overlay-driver=fuse --overlay={}:{}",
        p(&home.join("lower")),
        p(&home.join("target"))
    );
    let shapes = [
        ("--pid", "--pid".to_string()),
        (
            "--pid and a published port",
            "--pid --net -p 0:80 -q".into(),
        ),
        (
            "a published port (no pid namespace)",
            "--net -p 0:80 -q".into(),
        ),
        ("fuse-overlayfs (no pid namespace)", overlay),
    ];
    let (mut n, mut failed) = (0, Vec::new());
    for (map_what, map) in &maps {
        for (shape_what, shape) in &shapes {
            // A sleep of its own length, to be told from every other process: SIGKILL comes
            // once it runs (the ids are changed by then), and nothing may be left after.
            n += 1;
            let sleep = format!("sleep {}", 3170 + n);
            // (Its output goes to a file: a process left behind would hold a pipe open.)
            let out = w.sh(&format!(
                "\"$BR\" {map} {shape} {sleep} >$HOME/out 2>&1 & pid=$!
                 {until} sh -c 'ps -e -o args= | grep -qx \"{sleep}\"'
                 kill -KILL $pid; wait $pid; echo kill=$?",
                until = World::until()
            ));
            let what = format!("{map_what}, {shape_what}");
            let said = std::fs::read_to_string(home.join("out")).unwrap_or_default();
            assert!(out.stdout.contains("kill=137"), "{what}: {out:#?} {said}");
            let left = w.wait_no_leftovers();
            if !left.is_empty() {
                failed.push(format!("{what}: left running: {left:?}"));
                kill_all(&left);
            }
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// SIGKILL the processes a run left (as [`World::leftover_processes`] lists them), so that
/// the next case of a test starts clean and every failing case is reported.
fn kill_all(left: &[String]) {
    for line in left {
        if let Some(pid) = line.split(':').next().and_then(|p| p.parse().ok()) {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

// ---- D10. a file size limit never turns become-root's own failure into SIGXFSZ --------------

fn d10_over_the_file_size_limit_become_root_ends_125_and_command_gets_sigxfsz_as_it_was() {
    // With stderr a file that may not grow, become-root's message was what exceeded the limit:
    // SIGXFSZ killed it (status 153) with no message. Its failures end 125, whatever it could
    // write of the message; COMMAND still gets SIGXFSZ as the caller left it.
    let mut w = World::new();
    let run = w.home().join("run");
    std::fs::create_dir_all(&run).unwrap();
    chown_tree(&run, w.uid);
    w.env.push(("XDG_RUNTIME_DIR".into(), p(&run)));
    let failures = [
        "--no-such-option true",
        "--name=fs --detach",
        "--name=fs --pid --net -p 0:80 true",
        "--rootfs=/nonexistent true",
    ];
    for limit in [0, 20] {
        for args in failures {
            let out = w.sh(&format!(
                "prlimit --fsize={limit} \"$BR\" {args} 2>$HOME/err; echo status=$?
                 stat -c %s $HOME/err"
            ));
            let what = format!("--fsize={limit} {args}");
            assert!(out.stdout.starts_with("status=125\n"), "{what}: {out:#?}");
            let size: u64 = out.stdout.lines().nth(1).unwrap().parse().unwrap();
            assert!(size <= limit, "{what}: {size} bytes written: {out:#?}");
        }
    }
    let text = std::fs::read_to_string(w.home().join("err")).unwrap();
    assert!(
        "become-root: ".starts_with(&text[..text.len().min(13)]),
        "{text:?}"
    );
    // COMMAND exceeding the limit dies of SIGXFSZ as it would without become-root, or, when
    // the caller ignores it, sees its write fail.
    for mode in ["", "--pid"] {
        let out = w.sh(&format!(
            "prlimit --fsize=0 \"$BR\" {mode} sh -c 'echo x > $HOME/big; echo wrote'
             echo status=$?
             trap '' XFSZ
             prlimit --fsize=0 \"$BR\" {mode} sh -c 'echo x > $HOME/big || echo refused'
             echo status=$?"
        ));
        assert_eq!(
            out.stdout, "status=153\nrefused\nstatus=0\n",
            "{mode}: {out:#?}"
        );
    }
    assert!(w.wait_no_leftovers().is_empty());
}
