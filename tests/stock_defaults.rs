//! What a user types on a stock system works as documented (issue 20): with the umask a
//! Debian 13 login gives (002, pam_umask with user private groups), with mount points that
//! only become-root's own mounts could hold, with a --rootfs made by hand, and with
//! --copy-up the same under both overlay drivers. Each test types what the README says, in a
//! world whose defaults are the distribution's.
mod common;

use std::path::{Path, PathBuf};

use common::{World, chown_tree};

common::tests! {
    [Harness, Tool("busybox")]
        a_login_umask_002_leaves_directories_become_root_accepts,
        a_group_writable_directory_is_refused_unless_the_group_is_the_callers_alone;
    [Harness]
        a_state_directory_of_the_private_group_is_accepted_and_others_refused;
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
