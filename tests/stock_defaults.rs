//! What a user types on a stock system works as documented (issue 20): with the umask a
//! Debian 13 login gives (002, pam_umask with user private groups), with mount points that
//! only become-root's own mounts could hold, with a --rootfs made by hand, and with
//! --copy-up the same under both overlay drivers. Each test types what the README says, in a
//! world whose defaults are the distribution's.
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{World, chown_tree};

common::tests! {
    [Harness, Tool("busybox")]
        a_login_umask_002_leaves_directories_become_root_accepts,
        a_group_writable_directory_is_refused_unless_the_group_is_the_callers_alone,
        a_rootfs_without_proc_dev_sys_tmp_gets_them_or_one_error_naming_all,
        a_destination_below_become_roots_own_tmpfs_gets_its_mount_point;
    [Harness]
        a_state_directory_of_the_private_group_is_accepted_and_others_refused,
        a_tree_built_inside_is_removed_with_become_root_rm;
    [Harness, Tool("fuse-overlayfs")]
        a_native_overlay_the_kernel_refuses_says_why_and_falls_back;
    [Harness, Tool("fuse-overlayfs"), Tool("busybox")]
        copy_up_does_what_the_readme_says_under_each_driver;
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// The applets the images below have.
const APPLETS: [&str; 10] = [
    "sh", "cat", "echo", "ls", "stat", "touch", "true", "chmod", "rm", "mv",
];

/// A world whose test user logs in with Debian 13's umask (002), with a busybox image of its
/// own at `home/image` (as if unpacked from a tarball: its own modes, 0755).
fn login_world() -> (World, PathBuf) {
    let mut w = World::new();
    w.login_umask(0o002);
    let image = w.home().join("image");
    common::busybox_rootfs(&image, w.uid, &APPLETS, "nameserver 192.0.2.53\n");
    chown_tree(&w.home(), w.uid);
    (w, image)
}

/// With umask 002 (Debian 13's login, pam_umask's usergroups), `mkdir l t u` makes 0775
/// directories of the user's private group: become-root refused them as UPPER ("is owned by
/// uid 1000 with mode 0775 ... writable by nobody else"), as the directory holding UPPER,
/// and as --rootfs, though write access for one's own private group is nobody else's.
fn a_login_umask_002_leaves_directories_become_root_accepts() {
    let (w, _) = login_world();
    let out = w.sh(
        "umask; mkdir work && cd work && mkdir l t u && echo base > l/f && \
         \"$BR\" --overlay=$PWD/l:$PWD/t:$PWD/u sh -c \"echo new > $PWD/t/g\" && cat u/g && \
         stat -c '%a %U:%G' . u && \
         mkdir u2 .u2.work && \"$BR\" --overlay=$PWD/l:$PWD/t:$PWD/u2 cat $PWD/t/f && \
         mkdir rootfs && cp -R ../image/. rootfs/ && stat -c %a rootfs && \
         \"$BR\" --rootfs=$PWD/rootfs /bin/cat /etc/resolv.conf",
    );
    assert_eq!(
        out.ok(),
        "0002\nnew\n775 tuser:tuser\n775 tuser:tuser\nbase\n775\nnameserver 192.0.2.53\n"
    );
}

/// A group-writable directory whose group is shared (another account has it as its primary
/// group, /etc/group lists another member) or is not the caller's primary group at all stays
/// refused, as UPPER and as --rootfs, and the message says who else could write.
fn a_group_writable_directory_is_refused_unless_the_group_is_the_callers_alone() {
    const OTHER_UID: u32 = 4_000_000_001;
    const STAFF: u32 = 4_000_000_002;
    struct Row {
        what: &'static str,
        passwd: String,
        group: String,
        chgrp: bool,
        why: &'static str,
    }
    let rows = |gid: u32| {
        vec![
            Row {
                what: "another account's primary group too",
                passwd: format!("tother:x:{OTHER_UID}:{gid}::/:/bin/sh\n"),
                group: String::new(),
                chgrp: false,
                why: "and it is also the primary group of tother (/etc/passwd)",
            },
            Row {
                what: "a group line listing another member",
                passwd: format!("tother:x:{OTHER_UID}:{OTHER_UID}::/:/bin/sh\n"),
                group: format!("tshared:x:{gid}:tother\n"),
                chgrp: false,
                why: "and it also has tother as a member (/etc/group)",
            },
            Row {
                what: "a group that is not the caller's primary one",
                passwd: String::new(),
                group: format!("tstaff:x:{STAFF}:tuser\n"),
                chgrp: true,
                why: "and it is not your primary group",
            },
        ]
    };
    for i in 0..3 {
        let (mut w, image) = login_world();
        let row = rows(w.gid).swap_remove(i);
        w.passwd_extra = row.passwd.clone();
        w.group_extra = row.group.clone();
        if row.chgrp {
            w.groups = vec![STAFF];
        }
        let chgrp = if row.chgrp {
            format!("chgrp {STAFF} u rootfs &&")
        } else {
            String::new()
        };
        let out = w.sh(&format!(
            "mkdir l t u rootfs && cp -R {i}/. rootfs/ && {chgrp} \
             \"$BR\" --overlay=$PWD/l:$PWD/t:$PWD/u true; echo status=$?; \
             \"$BR\" --rootfs=$PWD/rootfs /bin/true; echo status=$?; ls -A",
            i = p(&image)
        ));
        let what = row.what;
        assert_eq!(
            out.stdout, "status=125\nstatus=125\nimage\nl\nrootfs\nt\nu\n",
            "{what}: refused, nothing made: {out:#?}"
        );
        let messages: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("become-root: "))
            .collect();
        assert_eq!(messages.len(), 2, "{what}: {}", out.stderr);
        for message in messages {
            assert!(
                message.contains("mode 0775") && message.contains(row.why),
                "{what}: says who else could write: {}",
                out.stderr
            );
        }
        assert_eq!(out.stderr.matches("\nhint: ").count(), 2, "{}", out.stderr);
    }
}

/// The sessions' state directory had to be exactly 0700; one the user made with its private
/// group's access (0770) is as much its own, while one others may read stays refused.
fn a_state_directory_of_the_private_group_is_accepted_and_others_refused() {
    let mut w = World::new();
    w.login_umask(0o002);
    let runtime = w.home().join("runtime");
    w.env
        .push(("XDG_RUNTIME_DIR".into(), runtime.display().to_string()));
    let out = w.sh(
        "mkdir -p runtime/become-root && \"$BR\" --list; echo status=$?; \
         chmod 0770 runtime/become-root && \"$BR\" --name=s --detach && \
         \"$BR\" --stop=s && echo stopped",
    );
    let text = &out.stdout;
    assert!(
        text.starts_with("status=125\n"),
        "0775 is refused: {out:#?}"
    );
    assert!(
        out.stderr.contains("mode 0775") && out.stderr.contains("others"),
        "{}",
        out.stderr
    );
    assert!(text.ends_with("\nstopped\n"), "0770 is accepted: {out:#?}");
}

/// `--tmpfs=/x --bind=/data:/x/data` (the README's own example of command-line order) could
/// never work: the destination had to exist before the tmpfs that hides everything there.
/// A destination on a tmpfs or throwaway overlay become-root made in the same run, and one on
/// a --rootfs's own /tmp or /dev, is made there (a directory, or an empty file for a file),
/// and nothing is made outside, also where a throwaway overlay's lower has a link on the way.
fn a_destination_below_become_roots_own_tmpfs_gets_its_mount_point() {
    let (w, image) = login_world();
    let out = w.sh(&format!(
        "mkdir data x lower && echo base > data/f && \
         \"$BR\" --tmpfs=$PWD/x --bind=$PWD/data:$PWD/x/data --ro-bind=$PWD/data/f:$PWD/x/a/b/f \
           sh -c 'cat x/data/f x/a/b/f; ls -A x' && ls -A x && \
         \"$BR\" --overlay=$PWD/lower:$PWD/x --bind=$PWD/data:$PWD/x/data cat x/data/f && \
         ls -A x && ls -A lower && \
         \"$BR\" --rootfs={i} --bind=$PWD/data:/tmp/data --bind=$PWD/data/f:/dev/f \
           --tmpfs=/etc --bind=$PWD/data:/etc/data /bin/cat /tmp/data/f /dev/f /etc/data/f && \
         ls -A {i}/tmp && ls -A {i}/dev && ls -A {i}/etc",
        i = p(&image)
    ));
    assert_eq!(
        out.ok(),
        "base\nbase\na\ndata\nbase\nbase\nbase\nbase\nresolv.conf\n"
    );
    let out = w.sh("mkdir copied outside && ln -s $PWD/outside copied/link && \
         \"$BR\" --copy-up=$PWD/copied --bind=$PWD/data:$PWD/copied/link/x true; \
         echo status=$?; ls -A outside");
    assert_eq!(out.stdout, "status=125\n", "{out:#?}");
    assert!(
        out.stderr
            .contains("copied/link/x: its mount point would be made through link"),
        "{}",
        out.stderr
    );
}

/// A --rootfs made by hand (a directory with bin/ in it) failed on its missing /proc. Made
/// like bubblewrap does: /proc, /dev, /sys and /tmp, mode 0755, the caller's; in a root the
/// caller cannot write to, one error lists all that is missing.
fn a_rootfs_without_proc_dev_sys_tmp_gets_them_or_one_error_naming_all() {
    let (w, image) = login_world();
    for dir in ["proc", "dev", "sys", "tmp"] {
        std::fs::remove_dir(image.join(dir)).unwrap();
    }
    let out = w.sh(&format!(
        "\"$BR\" --rootfs={i} /bin/sh -c 'ls /proc/self/ >/dev/null && ls /dev/null && \
         echo x > /tmp/x && cat /tmp/x' && stat -c '%n %a %u' {i}/proc {i}/dev {i}/sys {i}/tmp",
        i = p(&image)
    ));
    let i = p(&image);
    assert_eq!(
        out.ok(),
        format!(
            "/dev/null\nx\n{i}/proc 755 {u}\n{i}/dev 755 {u}\n{i}/sys 755 {u}\n{i}/tmp 755 {u}\n",
            u = w.uid
        )
    );
    // An image owned by a subordinate id (unpacked by root inside, say): not the caller's to
    // write to from outside.
    for dir in ["proc", "dev", "sys", "tmp"] {
        std::fs::remove_dir(image.join(dir)).unwrap();
    }
    chown_tree(&image, w.sub_start());
    let out = w.run(&[&format!("--rootfs={i}"), "/bin/true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.starts_with(&format!(
            "become-root: --rootfs {i}: has no proc, dev, sys, tmp"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("\nhint: "), "{}", out.stderr);
    assert!(!image.join("proc").exists());
    assert_eq!(
        std::fs::metadata(&image).unwrap().uid(),
        w.sub_start(),
        "nothing changed"
    );
}

/// README, --copy-up: "New files and replaced ones (rename over, or remove and create) work;
/// a file owned by an id outside your map (host root's files in /etc) stays read-only in
/// place" under native overlayfs, and is a writable copy in place under fuse-overlayfs, which
/// cannot do both (see the README). What a script written for one driver does works under
/// the other, and nothing reaches the host's /etc; below a --rootfs too, where the fuse
/// helper starts fuse-overlayfs. (A documentation test: it passed before.)
fn copy_up_does_what_the_readme_says_under_each_driver() {
    let (w, image) = login_world();
    let host = std::fs::read_to_string("/etc/hostname").unwrap();
    let replace = "stat -c %u /etc/hostname && echo mine > /etc/new && rm /etc/hostname && \
                   echo own > /etc/hostname && echo over > /etc/x && mv /etc/x /etc/hosts && \
                   cat /etc/new /etc/hostname /etc/hosts";
    let in_place = "for f in /etc/issue /etc/default/x; do \
                    if echo x >> $f 2>/dev/null; then echo writable; else echo read-only; fi; done";
    let script = format!("{replace} && {in_place}");
    let replaced = "65534\nmine\nown\nover\n";
    for (driver, root) in [("native", None), ("fuse", None), ("fuse", Some(&image))] {
        let mut args = vec![
            format!("--overlay-driver={driver}"),
            "--copy-up=/etc".into(),
        ];
        args.extend(root.map(|r| format!("--rootfs={}", p(r))));
        args.extend(["/bin/sh".into(), "-c".into(), script.clone()]);
        let out = w.run(&args);
        let in_place = match driver {
            "native" => "read-only\nread-only\n",
            _ => "writable\nwritable\n",
        };
        assert_eq!(
            out.ok(),
            format!("{replaced}{in_place}"),
            "{args:?}: {out:#?}"
        );
    }
    assert_eq!(std::fs::read_to_string("/etc/hostname").unwrap(), host);
    assert!(!Path::new("/etc/new").exists() && !Path::new("/etc/default/x").exists());
}

/// A native overlay the kernel refuses (here an UPPER on an overlay, as a home directory in a
/// container's overlay root is) said only "Invalid argument". It must say what overlayfs
/// refuses and name the fallback; `auto` falls back to fuse-overlayfs, which works there.
fn a_native_overlay_the_kernel_refuses_says_why_and_falls_back() {
    let mut w = World::new();
    w.login_umask(0o002);
    // The harness's /etc is an overlay of its own (thrown away with the run): a directory of
    // the test user's there stands for a home directory on an overlay.
    w.root_setup = format!(
        "mkdir /etc/home-on-overlay && chown {0}:{0} /etc/home-on-overlay",
        w.uid
    );
    let out = w.sh("mkdir l t && echo base > l/f && \
         \"$BR\" --overlay-driver=native --overlay=$PWD/l:$PWD/t:/etc/home-on-overlay/u true; \
         echo status=$?; \"$BR\" --overlay=$PWD/l:$PWD/t:/etc/home-on-overlay/u \
         sh -c \"echo new > $PWD/t/g\" && cat /etc/home-on-overlay/u/g");
    assert_eq!(out.ok(), "status=125\nnew\n", "{out:#?}");
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("Invalid argument")
            && first.contains("/etc/home-on-overlay/u is on overlay"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: ") && out.stderr.contains("--overlay-driver=auto"),
        "{}",
        out.stderr
    );
}

/// README, "Cleaning up": a tree built inside (a Makefile's DESTDIR) with a directory given to
/// another user belongs partly to a subordinate id, so a plain `rm -rf` fails, and
/// `become-root rm -rf` removes it. (A documentation test: it passed before.)
fn a_tree_built_inside_is_removed_with_become_root_rm() {
    let mut w = World::new();
    w.login_umask(0o002);
    let out = w.sh(
        "\"$BR\" sh -c 'mkdir -p root/etc root/home/u && echo hi > root/etc/motd && \
         touch root/home/u/.profile && chown -R 1000:1000 root/home/u' && \
         { rm -rf root 2>&1 | grep -c 'Permission denied'; } && \
         \"$BR\" rm -rf root && ls -A",
    );
    assert_eq!(out.ok(), "1\n", "{out:#?}");
}
