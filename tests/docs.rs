//! The committed man pages and shell completions, checked against the clap definitions.
//!
//! `man/` and `completions/` are generated from `src/cli.rs` and committed, so that packagers
//! need no Rust toolchain to install them and so that a change to a flag shows up in review as
//! a change to the docs. This test renders everything again and fails when a committed file
//! differs; with `BECOME_ROOT_REGENERATE=1` it writes the files instead.
//!
//! Each executable is one row of [`PAGES`]. A row names the clap command, the man page, the
//! completion files and the hand-written man sections clap cannot know about (exit status,
//! environment, files, security).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

/// Set to `1` to write the generated files instead of comparing them.
const REGENERATE_VAR: &str = "BECOME_ROOT_REGENERATE";

/// One executable's generated documentation.
struct Page {
    /// The clap command, exactly as the binary parses with it.
    command: fn() -> clap::Command,
    /// The man page, relative to the crate root.
    man: &'static str,
    /// Completion scripts, relative to the crate root, one per shell.
    completions: &'static [(Shell, &'static str)],
    /// Man sections after OPTIONS, in order.
    sections: &'static [Section],
}

/// A man section clap has no field for.
struct Section {
    title: &'static str,
    body: &'static [Block],
}

enum Block {
    /// A paragraph of plain text.
    Para(&'static str),
    /// A tagged paragraph: the tag in bold on its own line, the text indented below it.
    Item(&'static str, &'static str),
    /// An example, as typed and as it prints: `$ ` command lines, each followed by its output
    /// (.EX/.EE, as man-pages(7) asks). tests/examples.rs runs it as written, where
    /// [`Runs`] says; the marker is a roff comment, which no reader sees.
    Example(Runs, &'static str),
}

/// Where tests/examples.rs runs an example (the README marks its own the same way).
enum Runs {
    /// In the hermetic harness, on the host (no marker).
    Harness,
    /// In the VM tier, as a user made by useradd (uid 1000, 100000:65536) in a login session.
    Vm,
    /// Word for word an example of README.md, which runs there.
    AsInReadme,
}

use Block::{Example, Item, Para};

/// Every executable that has a man page and completions.
const PAGES: &[Page] = &[
    Page {
        command: become_root::cli::Cli::command,
        man: "man/become-root.1",
        completions: &[
            (Shell::Bash, "completions/become-root.bash"),
            (Shell::Zsh, "completions/_become-root"),
            (Shell::Fish, "completions/become-root.fish"),
        ],
        sections: BECOME_ROOT_SECTIONS,
    },
    Page {
        command: become_root::cli::subid::Cli::command,
        man: "man/subid.1",
        completions: &[
            (Shell::Bash, "completions/subid.bash"),
            (Shell::Zsh, "completions/_subid"),
            (Shell::Fish, "completions/subid.fish"),
        ],
        sections: SUBID_SECTIONS,
    },
];

const BECOME_ROOT_SECTIONS: &[Section] = &[
    Section {
        title: "ID MAPS",
        body: &[
            Para(
                "With --map=full (and auto, when it can), the caller is uid and gid 0 inside and \
                 every subordinate range of the caller follows at 1, 2, ... in file order, \
                 contiguously: ranges of 1000 and 5000 ids give the maps 0 UID 1, 1 200000 1000, \
                 1001 300000 5000. Lines naming the caller by login name or by numeric uid both \
                 count. Overlapping or repeated ranges are merged, a range containing the \
                 caller's own id is split around it, and more than 340 extents (the kernel's \
                 limit) is an error. The caller's lines are parsed as newuidmap parses them; \
                 a malformed line (a trailing space, a CRLF line ending, count 0, a range past \
                 4294967295) is reported with its file and line number and never repaired: \
                 --map=full fails, --map=auto warns and maps the valid ranges, or only the \
                 caller when none is left.",
            ),
            Para(
                "--map=auto falls back to a single mapping, with one warning that says why and \
                 how to fix it, when the caller has no subordinate ids, newuidmap or newgidmap \
                 is missing, not set-user-ID, on a nosuid mount, or no_new_privs is set. \
                 --map=full makes each of these an error (status 125); --quiet silences the \
                 warning. A single mapping denies setgroups(2) inside, as the kernel requires \
                 (CVE-2014-8989).",
            ),
            Para(
                "Real root (uid 0 in the initial user namespace) gets the identity map \
                 0 0 4294967295, written directly. Root inside a user namespace (become-root \
                 run by become-root) passes the current map through as identity, one extent \
                 per extent of the current map. Supplementary groups are kept; those not \
                 mapped show as the overflow group (nogroup) inside, as with unshare and podman. \
                 --drop-groups sets them to none (setgroups(2)) right after the ids become 0, \
                 before the mounts. Where setgroups is denied, which the kernel requires when \
                 only the caller's own gid is mapped (--map=single, --map=auto's fallback, or a \
                 --map-groups map of only your gid), --drop-groups is an error (status 125) \
                 before COMMAND runs: the groups cannot be dropped there, and keeping them \
                 quietly would not be what was asked.",
            ),
            Para(
                "Three more ways to map, for working on your own files while other ids exist \
                 too. The examples are for alice, uid and gid 1000, with the line \
                 alice:100000:65536 in /etc/subuid and /etc/subgid; subid show prints the maps \
                 each mode makes for a user. Each is checked before newuidmap runs, and a map \
                 past the kernel's 340 extents or 4095 bytes is an error (status 125).",
            ),
            Item(
                "--map=keep-id",
                "You map to yourself (1000 -> 1000) and your subordinate ranges fill the other \
                 ids from 0, in file order, around yours, as podman's --userns=keep-id lays \
                 them out: become-root --map=keep-id cat /proc/self/uid_map prints 0 100000 1000, \
                 1000 1000 1, 1001 101000 64536. COMMAND runs as uid 1000 and gid 1000, with no \
                 capabilities except those --cap-add gives (as ambient ones), and with your \
                 supplementary groups. Your files, $HOME and the current directory are yours \
                 inside (ls -l names you) and stay writable, and what COMMAND makes is yours on \
                 the host. --map=keep-id --uid=0 makes COMMAND root with the same map, so that \
                 tools needing other ids (apt's _apt, podman, test suites that chown) have them \
                 while your files stay yours: chown 0 f there makes f 100000's on the host, \
                 chown 33 f 100033's. Mounts are made as root inside (100000), before COMMAND \
                 becomes you. With fewer subordinate ids than your uid, the ids between the last \
                 of them and yours stay unmapped. Without subordinate ids, or without newuidmap or \
                 newgidmap, it fails as --map=full does. A become-root run inside by COMMAND as \
                 you gains nothing (newuidmap's owner, root, is not mapped, so its set-user-ID \
                 bit is ignored); run it as --uid=0, where it passes the map through.",
            ),
            Item(
                "--map=subids",
                "You and every subordinate id map to themselves: become-root --map=subids cat \
                 /proc/self/uid_map prints 1000 1000 1 and 100000 100000 65536, so ids inside are \
                 host ids (become-root --map=subids --cap-add=chown chown 100005 f shows 100005 \
                 on both sides). For tools that must see host ids, and for nesting: a \
                 become-root run as root in a namespace (become-root become-root --map=subids) \
                 gets identity maps of the ranges that namespace has. 0 is not mapped, so \
                 COMMAND runs as you, with only --cap-add capabilities; the setup runs as you too, \
                 with the capabilities a new namespace gives its creator. --join into such a \
                 session runs as you as well.",
            ),
            Item(
                "--map-users=INNER:OUTER:COUNT, --map-groups=INNER:OUTER:COUNT",
                "Exact maps, util-linux 2.39's syntax (its 2.38 form OUTER,INNER,COUNT is \
                 refused): COUNT host ids from OUTER appear from INNER inside. Repeatable; each \
                 replaces its side's map, and the side not given is --map's. Every OUTER id must \
                 be your own or granted to you; the error names the entry, the ids at fault and \
                 your grants as file:line (become-root: id map: --map-users=0:300000:10: host uids \
                 300000-300009 are neither yours (uid 1000) nor granted to you (/etc/subuid:1 \
                 grants 100000-165535)). Entries overlapping inside or outside are errors. An \
                 entry over your own id is cut around it, which newuidmap maps only as an extent \
                 of its own. The value auto adds every id of yours the entries leave (yours \
                 first, then the ranges in file order) on the inside ids they leave, from 0: so \
                 --map-users=auto alone is --map=full, and --map-users=1000:1000:1 \
                 --map-users=auto is keep-id's uid map. --map-users=33:1000:1 --map-users=auto \
                 puts you at 33 (www-data on Debian): 0 100000 33, 33 1000 1, 34 100033 65503. \
                 COMMAND runs as 0 when 0 is mapped, else as your own id, else --uid must say. \
                 Mapping only your own ids (--map-users=1000:1000:1 --map-groups=1000:1000:1) \
                 needs no helper and denies setgroups, as unshare -c. As real root any id may be \
                 mapped; as root in a user namespace, any id it has, cut where its extents end.",
            ),
        ],
    },
    Section {
        title: "PROCESSES AND SIGNALS",
        body: &[
            Para(
                "Without --pid, COMMAND replaces become-root (exec in place): it keeps \
                 become-root's process id, so signals, terminal job control and the exit \
                 status are COMMAND's own and no process sits in between. The maps are \
                 written by newuidmap and newgidmap, run concurrently from short-lived \
                 children that are gone before COMMAND starts. become-root stays outside \
                 and supervises, as with --pid, when something must live beside COMMAND: a \
                 network helper, published ports, --info-fd, a session (--name), --cgroup, \
                 or an overlay served by fuse-overlayfs (which ends with COMMAND, and \
                 become-root returns once it has).",
            ),
            Para(
                "With --pid, become-root stays outside and supervises. The namespace's init \
                 (pid 1, named become-root) reaps orphans and runs COMMAND as pid 2. Signals \
                 sent to become-root with kill(1) are forwarded to COMMAND once; signals the \
                 terminal sends to the whole foreground process group (Ctrl-C, Ctrl-\\, \
                 window size) are not forwarded again. When become-root owns the terminal, \
                 init takes a process group of its own so that shells inside find a valid \
                 group to hand the terminal back to; Ctrl-Z stops COMMAND and then \
                 become-root, so the caller's shell sees a stopped job, and fg resumes both. \
                 become-root never calls setsid(2). If become-root is killed, even with \
                 SIGKILL, init and with it everything in the namespace are killed too.",
            ),
            Para(
                "COMMAND starts with every signal unblocked and SIGPIPE at its default \
                 action (so become-root yes | head -1 ends quietly); other ignored signals \
                 are passed on as the caller left them. Descriptors inherited by become-root, \
                 such as a make jobserver's, reach COMMAND unchanged; become-root's own are \
                 close-on-exec, and the helpers get none of the inherited ones.",
            ),
            Para(
                "If the network helper (slirp4netns or pasta) dies while COMMAND runs, \
                 become-root says so at once on standard error (become-root: network: \
                 slirp4netns was killed by signal 9; the namespace has no network now; in a \
                 detached session, in its log), records it for --list (STATUS network down) \
                 and lets COMMAND run on; the exit status is still COMMAND's.",
            ),
        ],
    },
    Section {
        title: "SESSIONS",
        body: &[
            Para(
                "--name gives a run a name. With --detach, become-root returns (status 0) as soon \
                 as the namespaces are ready: maps written, mounts made, network and published \
                 ports up, state written. A background become-root keeps supervising, with \
                 standard input from /dev/null and its output in NAME.log in the state \
                 directory; without COMMAND a pause process holds the namespaces until --stop.",
            ),
            Para(
                "--join=NAME|PID runs COMMAND (default $SHELL) in that session's namespaces: the \
                 user namespace and those the session made, all entered at once (see SECURITY, \
                 the join rule), as uid 0 there, in the current directory when it exists \
                 inside. No map is written and no helper runs. With a pid namespace become-root \
                 forks, so that COMMAND is inside it, and supervises. A session with a cgroup \
                 of its own (--cgroup, a limit, --boot) takes COMMAND into that cgroup before \
                 its cgroup namespace, so that the session's limits cover it and it reads 0::/ \
                 in /proc/self/cgroup, as runc and crun exec do; where that cgroup may hold no \
                 process (once controllers are enabled below it, as a booted image's systemd \
                 does), COMMAND goes where the session's process is (init.scope of a booted \
                 image), as they do too. A scope's cgroup is entered through the systemd user \
                 manager, as the session's was. become-root itself, waiting outside a pid \
                 namespace, stays in its own cgroup. A join by PID, or of a session without a \
                 cgroup of its own, moves no process, as nsenter(1) does not. --list (--json) \
                 shows the sessions, their published ports and their status (starting, \
                 running, network down with how the helper ended, or ended with its exit \
                 status or signal); --stop=NAME sends SIGTERM to everything in the session (a \
                 booted image gets SIGRTMIN+3), SIGKILL after 5 seconds (30 for a booted image; \
                 --stop-timeout sets either), says what it had to kill, removes its state and \
                 returns once everything in it is gone. When it can signal none of the \
                 session's processes (EPERM: the state file names processes that are not the \
                 caller's) or some survive SIGKILL, --stop says so and exits 125.",
            ),
            Para(
                "A detached session that ends keeps its state and log, as podman ps -a and \
                 podman logs show a container that exited: --list shows it as ended (exited N, \
                 or killed by a signal), --logs=NAME prints its output (a booted image's \
                 console, to its last line), --join refuses it, and --stop=NAME removes it, as \
                 does a new session that takes the name. --logs=NAME --follow prints what a \
                 running session writes until it ends. COMMAND's output reaches the log \
                 through a pipe that become-root copies from, so nothing is lost on the way; \
                 a process COMMAND leaves behind writes on into it after the session ended. A \
                 log keeps at most 8 MiB: before a write would take it past that, it moves to \
                 NAME.log.1 (replacing the one before) and starts again, so 8 to 16 MiB of the \
                 latest output are kept. A session killed with SIGKILL cannot record its end: \
                 its state is removed as stale, with its log.",
            ),
            Para(
                "State lives in $XDG_RUNTIME_DIR/become-root/, else /tmp/become-root-UID/: a \
                 directory that must be the caller's own, mode 0700 (or 0770 with the caller's \
                 user private group), not a symbolic link. A \
                 session whose processes are gone, or whose pid was reused, is detected and its \
                 state removed.",
            ),
        ],
    },
    Section {
        title: "CGROUPS AND SYSTEM IMAGES",
        body: &[
            Para(
                "--cgroup gives the run a cgroup v2 of its own, moves the namespace process into \
                 it before COMMAND starts, makes the cgroup namespace there (so /proc/self/cgroup \
                 reads 0::/ inside) and mounts a writable cgroup2 at /sys/fs/cgroup (in the new \
                 root with --rootfs), which podman, systemd and anything else that manages \
                 cgroups can use. It implies --mount, and become-root supervises. The cgroup is \
                 the first of: a leaf become-root-PID of your current cgroup, when that cgroup is \
                 yours (you own it and may write its cgroup.procs: a delegated subtree) and \
                 passes down the controllers the limits need; a transient scope \
                 become-root-PID.scope of your systemd user manager with Delegate=yes, asked for \
                 over your session bus with busctl (as systemd-run --user --scope and podman \
                 do), the limits as its properties; else an error (status 125) naming what is \
                 missing. --check says which it would be and which controllers it has.",
            ),
            Para(
                "A leaf is removed when the run ends, with the cgroups COMMAND made below it. If \
                 become-root is killed, or COMMAND left a process behind, a janitor process it \
                 left outside (holding none of your descriptors, ignoring the terminal's \
                 signals) removes the leaf once its last process is gone, and ends (see \
                 SECURITY for its bounds). A scope is removed by systemd once empty. Each request \
                 to the user manager is bounded in time (15 s for a scope, 3 s for --check's), \
                 and SIGTERM, SIGINT, SIGHUP or SIGQUIT during it ends the run at once: busctl \
                 is killed, what was made is undone, and become-root dies of the signal. \
                 --check asks the user manager for its version before it says a scope is \
                 possible. --all makes only a cgroup namespace (in become-root's cgroup), not a \
                 cgroup of the run's own.",
            ),
            Para(
                "Limits, with podman's spellings and units, each implying --cgroup and applied \
                 before COMMAND starts: --memory=SIZE (memory.max; SIZE is bytes or a number \
                 with b, k, m, g or t, 1024-based), --memory-swap=SIZE (memory and swap \
                 together, as podman; -1 for no limit on swap; needs --memory; without it swap \
                 is limited to as much as --memory), --cpus=N (cpu.max, N CPUs' worth of time \
                 per 100 ms period, fractions allowed), --pids-limit=N (pids.max; -1 for no \
                 limit). A controller that is not delegated is an error naming it and the fix \
                 (systemctl edit user@.service, Delegate=cpu memory pids). A COMMAND that the \
                 memory limit kills ends with status 137, and become-root says so (become-root: \
                 COMMAND was killed by the memory limit (--memory=64M)). --info-fd reports the \
                 cgroup's path, its scope and the limits.",
            ),
            Para(
                "--as-pid-1 (implies --pid) makes COMMAND itself pid 1 of the new pid namespace, \
                 as bubblewrap's option does: no init of become-root's runs inside, COMMAND \
                 reaps orphans, and as pid 1 it receives only the signals it has a handler for. \
                 become-root still supervises from outside, passes signals on and ends as \
                 COMMAND ended. Where standard input, output or error is a terminal, COMMAND \
                 gets a pty of become-root's in its place, in a session of its own (SECURITY, \
                 the terminal rule), relayed as --boot's console is.",
            ),
            Para(
                "--boot boots a system image: become-root --boot --rootfs=DIR runs DIR's \
                 /sbin/init (or COMMAND) as pid 1 with --pid --as-pid-1 --uts --ipc --cgroup and \
                 a network namespace (--net=none unless --net says), and what systemd's \
                 container interface asks for: a fresh read-only /sys, tmpfs /run and /tmp, \
                 container=become-root in the environment, the run's own writable cgroup2 at \
                 /sys/fs/cgroup, and a /dev/console that is a pty of become-root's: pid 1 has it \
                 as standard input, output and error and as its controlling terminal, in a \
                 session of its own. The caller's own terminal is never the console (SECURITY, \
                 the terminal rule). When become-root's standard input and output are the \
                 terminal of the foreground job, the console is interactive, as with \
                 systemd-nspawn: the terminal is in raw mode while the image runs (put back on \
                 every way out), what is typed reaches the image as typed (Ctrl-C included), \
                 the window size follows, and the image's getty shows a login prompt; Ctrl-] \
                 three times within a second halts the image. Otherwise the console's output \
                 goes to standard error (a detached session's log). Everything the image wrote \
                 to it is copied out before become-root returns. SIGTERM, SIGINT, SIGHUP and \
                 SIGQUIT to become-root become SIGRTMIN+3 for pid 1, systemd's signal to halt \
                 a container, sent once pid 1 handles it (an init drops the signals it has no \
                 handler for, so one sent in the first moments of a boot would be lost); what \
                 has not ended --stop-timeout seconds later (30 by default) is killed, and \
                 become-root says so. --stop of a --boot session asks become-root to halt the \
                 image that way and returns once the session is gone. pid 1 gets \
                 NOTIFY_SOCKET=/run/host/notify (a socket only root inside may write to) as \
                 under systemd-nspawn, and says there when it is ready: systemd sends READY=1 \
                 once its boot is done. --detach returns then (--notify-ready=yes, and auto \
                 when the image's init is systemd), or as soon as the init has started \
                 (--notify-ready=no, and auto for other inits); only pid 1's word counts, and \
                 the wait ends after 90 seconds with a warning saying what was waited for. \
                 After --detach returns, become-root --join=NAME systemctl \
                 is-system-running --wait answers at once. A reboot from inside boots the \
                 image again (EXIT STATUS). --boot \
                 drops CAP_SYS_RAWIO and CAP_SYS_MODULE (as systemd-nspawn and podman do; \
                 --cap-add keeps them), so that systemd skips the debugfs and tracefs mounts \
                 and the module loading a user namespace refuses. A Debian image for it: \
                 become-root --net=auto --pid mmdebstrap --variant=minbase \
                 --include=systemd-sysv,dbus bookworm DIR (as root inside, so the files belong \
                 to your subordinate ids; mmdebstrap mounts /proc and /sys in DIR, which takes \
                 a pid and a network namespace of the run's own; debootstrap would need mknod, \
                 which a user namespace refuses). EXAMPLES builds and boots one.",
            ),
        ],
    },
    Section {
        title: "FOREIGN ARCHITECTURES",
        body: &[
            Para(
                "--emulate=ARCH mounts a binfmt_misc of the run's own at /proc/sys/fs/binfmt_misc \
                 (Linux 6.7 and later give a user namespace that mounts it an instance that only \
                 it and the user namespaces below it consult) and registers QEMU's user-mode \
                 emulator for ARCH there as qemu-ARCH, with Debian's magic and mask and the \
                 flags P (argv[0] preserved; QEMU 6.0 or later), O and F (the kernel opens the \
                 emulator when it is registered, so it runs inside --rootfs and chroots). No C \
                 flag: a set-user-ID program inside runs without its privilege, as under \
                 Debian's own registration. The host's binfmt_misc is neither read nor written; \
                 the registration ends with the run. On an older kernel --emulate fails \
                 (status 125) naming the version it needs. The emulator (see ENVIRONMENT) must \
                 be linked statically, or it could not start inside another architecture's \
                 tree; --emulate naming this machine's own architecture is refused.",
            ),
            Para(
                "mmdebstrap builds a foreign tree this way without root (it needs arch-test, and \
                 sees the F flag, so it copies no emulator into the tree): become-root \
                 --emulate=arm64 --net=auto --pid mmdebstrap --variant=minbase \
                 --architectures=arm64 trixie arm64-tree, then become-root tar --numeric-owner \
                 -C arm64-tree -cf arm64.tar . writes its files with the tree's own owners. \
                 mmdebstrap's unshare mode, podman and a nested become-root run in user \
                 namespaces below the run's, where the kernel finds the same registration.",
            ),
        ],
    },
    Section {
        title: "PODMAN AND BUILDAH",
        body: &[
            Para(
                "podman(1) and buildah(1) work inside with no option, across calls: \
                 become-root podman run -d --name web -p 8080:80 IMAGE, then become-root podman \
                 ps, logs, exec, stop and rm, each a call of its own, as rootless podman's \
                 own calls are. They run in one user and mount namespace per user and map mode, \
                 the containers namespace, as rootless podman keeps one for all its calls (its \
                 pause process): the first become-root podman or become-root buildah makes it \
                 (a detached session held by a pause process, as --name=NAME --detach --mount \
                 makes one), and every later one joins it, with no map written. NAME is podman \
                 for the default map (auto and full: rootless podman's own map, and the \
                 caller's storage, ~/.local/share/containers), podman-keep-id, podman-single \
                 or podman-subids for the others, so that no two maps share one. --list shows \
                 it (running (containers)); --stop=NAME ends it and everything in it (its \
                 containers, conmon, slirp4netns, pasta, rootlessport), as podman system \
                 migrate ends podman's own; --check reports it, and says so when /etc/subuid \
                 or /etc/subgid grant other ids than it maps, which --stop=NAME renews.",
            ),
            Para(
                "podman's runtime state (libpod, containers, crun, runc and netns in the \
                 runtime directory, $XDG_RUNTIME_DIR else /run/user/UID, and /dev/shm) is on \
                 tmpfs mounts of the namespace's own: a namespace that ends is to podman what a \
                 reboot is, and the next call starts afresh, with the containers that ran \
                 stopped. Under --map=keep-id podman runs as root inside (a subordinate id \
                 outside) and its containers get the keep-id map: the whole runtime directory \
                 is a tmpfs of root's there, and podman has a home of its own, \
                 $XDG_DATA_HOME/become-root/NAME (by default ~/.local/share/become-root/NAME; \
                 HOME, XDG_CONFIG_HOME and XDG_DATA_HOME point there, with its own storage), \
                 whose containers.conf chooses the cgroupfs manager and file logs and events. \
                 podman-single and podman-subids have a home of their own too.",
            ),
            Para(
                "Plain podman shares the default map's namespace: become-root names its pause \
                 process in podman's pause file ($XDG_RUNTIME_DIR/libpod/tmp/pause.pid, \
                 removed when it ends), which plain podman joins; and where plain podman's own \
                 namespace runs, become-root podman joins it instead of making one beside it, \
                 since two over one storage would each reset the containers the other runs.",
            ),
            Para(
                "--containers [COMMAND] runs COMMAND (default $SHELL) in the containers \
                 namespace of --map's mode, made if need be: a shell, a script or make that runs \
                 podman (become-root --containers sh -c 'podman build .'); --join=NAME does \
                 too once it exists. Filesystem options given with podman, buildah or \
                 --containers apply when the namespace is made: a later call without them uses \
                 it as it is, one with others is refused (status 125). Any other option \
                 (--net, --pid, --name, --uid, a cgroup, ...) makes podman's run one of its \
                 own, as any run: podman acts in that run's namespaces, and its containers end \
                 with it; --containers refuses those options. So does real root's become-root \
                 podman (rootful podman keeps no namespace), and --containers is refused there.",
            ),
            Para(
                "The namespace has a mount namespace, and COMMAND gets \
                 _CONTAINERS_USERNS_CONFIGURED and the caller's ids (ENVIRONMENT), so that \
                 podman and buildah make no user namespace of their own and mount at once. A run \
                 of its own sets them when it has a mount namespace, however it came to have \
                 one, and not otherwise: podman would take the namespaces as made for it, and \
                 its first mount would fail (mount --make-rshared ... operation not \
                 permitted); without them podman sees uid 0 and acts as the system's root \
                 (/var/lib/containers). Other runs get no mount namespace unless an option asks \
                 for one, because it costs start-up time: become-root --mount true takes 1.12 \
                 times as long as become-root true (scripts/bench-startup, median of 5 rounds, \
                 1.05 to 1.14).",
            ),
            Para(
                "On a host with systemd's hybrid cgroup layout (a tmpfs of cgroup v1 \
                 hierarchies at /sys/fs/cgroup, cgroup v2 at /sys/fs/cgroup/unified), crun \
                 refuses to run a container (\"cgroups in hybrid mode not supported\"). There \
                 become-root warns (unless --quiet) where a container runs: podman run, create, \
                 start, restart, build, pod create, start and clone, kube play, buildah bud, \
                 build and run, crun run and create, as COMMAND or in the -c script of a shell \
                 with a mount namespace; never for images, import or ps, nor where \
                 /sys/fs/cgroup is covered already. It names the fixes: the host's cgroups \
                 hidden by --tmpfs=/sys/fs/cgroup (for the containers namespace, when it is \
                 made: become-root --stop=podman, then become-root --tmpfs=/sys/fs/cgroup \
                 podman ...), and containers then run without cgroup limits; or boot the host \
                 with systemd.unified_cgroup_hierarchy=1, for cgroup v2 alone.",
            ),
        ],
    },
    Section {
        title: "EXIT STATUS",
        body: &[
            Item(
                "the status of COMMAND",
                "COMMAND ran and exited; become-root exits with the same status.",
            ),
            Item(
                "128+N",
                "COMMAND was killed by signal N. Either COMMAND runs in become-root's place \
                 (same process), or become-root supervises it (with --pid, for example) and \
                 then kills itself with the same signal: either way the caller sees the same \
                 death, which a shell reports as 128+N.",
            ),
            Item(
                "125",
                "become-root itself failed, bad usage included. It prints one line \
                 \"become-root: WHAT: WHY\" and, where a fix is known, a second line \
                 \"hint: FIX\". An option the mode does not take is bad usage, never ignored: \
                 --check takes only --map, --map-users, --map-groups, --subid-source, --net, \
                 --cidr, --ipv6 and --dns; --list only --json; --logs only --follow; --stop \
                 only --stop-timeout; --join only --publish, --unpublish, --chdir, the \
                 identity options (--uid, --gid, --cap-add, --cap-drop, --no-new-privs) and \
                 COMMAND; --json, --follow and --unpublish only those modes; -q and -v every \
                 mode.",
            ),
            Item(
                "126",
                "COMMAND was found but could not be executed (for example, it is not \
                 executable, or not a format the kernel can run).",
            ),
            Item("127", "COMMAND was not found."),
            Para(
                "COMMAND may itself exit with 125, 126 or 127; only the message on standard \
                 error tells those apart from become-root's own failures.",
            ),
            Para(
                "A booted image (--boot) ends as systemd-nspawn's do: 0 when it halted or \
                 powered off, from inside (systemctl poweroff; reboot(2) in a pid namespace \
                 ends its init with SIGINT) or when asked from outside (SIGTERM, SIGINT, \
                 SIGHUP or SIGQUIT to become-root, Ctrl-C, the console's escape, --stop); N \
                 when its init exits with N (systemctl exit N); 137 when it had not ended \
                 --stop-timeout seconds after SIGRTMIN+3 and was killed. A reboot (systemctl \
                 reboot; reboot(2) ends the init with SIGHUP) boots the image again, in new \
                 namespaces, in the same process and the same session, with its published \
                 ports, cgroup limits and log.",
            ),
        ],
    },
    Section {
        title: "ENVIRONMENT",
        body: &[
            Item(
                "SHELL",
                "The command run when no COMMAND is given; /bin/sh when SHELL is unset or empty.",
            ),
            Item(
                "NEWUIDMAP",
                "Path of the program to run instead of newuidmap(1) (for tests, or a helper \
                 installed elsewhere). It can write the uid map only with privilege of its own: \
                 become-root lends it none.",
            ),
            Item("NEWGIDMAP", "The same, for newgidmap(1)."),
            Item(
                "SLIRP4NETNS",
                "Path of the slirp4netns(1) to run for --net=slirp4netns (and for --net=auto \
                 when it falls back to slirp4netns) instead of the one on PATH.",
            ),
            Item(
                "PASTA",
                "Path of the pasta(1) to run for --net=pasta and --net=auto instead of the one \
                 on PATH.",
            ),
            Item(
                "FUSE_OVERLAYFS",
                "Path of the fuse-overlayfs(1) to run for --overlay and --copy-up when they use \
                 fuse-overlayfs, instead of the one on PATH.",
            ),
            Item(
                "QEMU_AARCH64_STATIC, QEMU_ARM_STATIC, ...",
                "Path of the emulator --emulate registers for that architecture (QEMU's name, \
                 upper case, '-' as '_': QEMU_X86_64_STATIC), instead of qemu-ARCH-static or \
                 qemu-ARCH on PATH. It must be linked statically.",
            ),
            Item(
                "BECOME_ROOT_PORT_IDLE_TIMEOUT",
                "Seconds a TCP connection to a published port may stay idle (no byte either \
                 way) before both its ends are reset; 0 for never. Unset or empty: 7200 (two \
                 hours, as pasta does for its TCP connections). Anything but a whole number of \
                 seconds is an error (status 125) before anything runs. See SECURITY.",
            ),
            Para(
                "An empty variable counts as unset. A set one is used as it is, never passed \
                 over: when it names no executable file (or, for NEWUIDMAP and NEWGIDMAP, one \
                 without the privilege to write maps), a run that needs the program fails \
                 (status 125) with an error naming the variable, under every --map mode \
                 (--map=auto does not fall back to a single map then), and --check says so. \
                 --check and --verbose show which path is used and say when a variable \
                 named it.",
            ),
            Item(
                "_CONTAINERS_USERNS_CONFIGURED",
                "Set to done in the environment of COMMAND when the run has a mount namespace, \
                 so that podman(1) and buildah(1) inside know that their user and mount \
                 namespaces are made and create neither (see PODMAN AND BUILDAH). Not set \
                 without a mount namespace, where it would be false, nor for real root. --join \
                 sets it when the session has a mount namespace.",
            ),
            Item(
                "_CONTAINERS_ROOTLESS_UID",
                "Set with _CONTAINERS_USERNS_CONFIGURED, to the caller's uid outside the \
                 namespace: the rootless user podman and buildah act for.",
            ),
            Item(
                "_CONTAINERS_ROOTLESS_GID",
                "Set with _CONTAINERS_USERNS_CONFIGURED, to the caller's gid outside the \
                 namespace.",
            ),
            Item(
                "HOME, XDG_CONFIG_HOME, XDG_DATA_HOME",
                "In a containers namespace under a map other than rootless podman's own \
                 (--map=keep-id, single, subids), set for COMMAND to podman's home there and \
                 its .config and .local/share (PODMAN AND BUILDAH, FILES), so that its storage \
                 and configuration are never the default map's.",
            ),
            Item(
                "NOTIFY_SOCKET",
                "The service manager's socket when become-root runs as the main process of a \
                 Type=notify unit (sd_notify(3)). become-root takes it out of the environment \
                 (COMMAND does not get it) and sends READY=1 when the run is ready: as COMMAND \
                 starts, or, for a booted image, once its init says so (--notify-ready); and \
                 STOPPING=1 when it is asked to stop. A booted image's pid 1 gets a \
                 NOTIFY_SOCKET of its own, /run/host/notify.",
            ),
            Item(
                "container",
                "Set to become-root for a booted image's pid 1 (systemd's container interface).",
            ),
            Para(
                "Apart from these variables, COMMAND gets become-root's environment unchanged, \
                 but for --setenv, --unsetenv and --clearenv. They apply in command-line order, \
                 as bubblewrap's options of these names do, to the environment COMMAND would \
                 get, the _CONTAINERS_ variables included; a booted image's container and \
                 NOTIFY_SOCKET are set after them. --clearenv keeps PWD alone: PATH and TERM go \
                 too, and COMMAND is then looked up on the PATH a later --setenv gives, else in \
                 /bin and /usr/bin, as execvp(3) does without one.",
            ),
        ],
    },
    Section {
        title: "FILES",
        body: &[
            Item(
                "/etc/subuid",
                "The subordinate uid ranges of each user (subuid(5)). newuidmap(1) reads it too, \
                 and refuses to map any range not granted there.",
            ),
            Item(
                "/etc/subgid",
                "The subordinate gid ranges of each user (subgid(5)), checked by newgidmap(1) \
                 in the same way.",
            ),
            Item(
                "/etc/nsswitch.conf",
                "With --subid-source=auto, a subid: line here makes become-root ask \
                 getsubids(1) (libsubid, for example SSSD or LDAP) instead of reading the files.",
            ),
            Item(
                "$XDG_RUNTIME_DIR/become-root/ (else /tmp/become-root-UID/)",
                "The sessions' state: NAME.session and NAME.log, and containers.lock, which a \
                 become-root making a containers namespace holds.",
            ),
            Item(
                "$XDG_DATA_HOME/become-root/NAME/ (else ~/.local/share/become-root/NAME/)",
                "The home of podman in containers namespace NAME under a map other than \
                 rootless podman's own (PODMAN AND BUILDAH): its storage and its \
                 containers.conf, root's inside.",
            ),
            Item(
                "$XDG_RUNTIME_DIR/libpod/tmp/pause.pid",
                "podman's pause file: become-root names the containers namespace podman's \
                 process there while it runs, and joins the process it names otherwise (plain \
                 podman's own namespace).",
            ),
        ],
    },
    Section {
        title: "KERNEL",
        body: &[
            Para(
                "become-root supports Linux 5.10 and later (the kernel of Debian 11). Its \
                 real-machine test tier boots Debian 11 (5.10), Debian 12 (6.1) and Debian 13 \
                 (6.12) and runs every scenario on each. Facilities newer than that are probed \
                 when they are needed (distributions backport, so the version alone decides \
                 nothing), and each has a fallback:",
            ),
            Item(
                "close_range with CLOSE_RANGE_CLOEXEC (Linux 5.11)",
                "Keeps inherited descriptors from the helpers. Without it, become-root marks \
                 them close-on-exec one by one.",
            ),
            Item(
                "overlayfs in a user namespace (userxattr) (Linux 5.11)",
                "Native --overlay and --copy-up. Without it, --overlay-driver=auto uses \
                 fuse-overlayfs, and --overlay-driver=native fails with an error naming the \
                 version it needs. Where a newer kernel refuses the layers themselves (Invalid \
                 argument: an UPPER on overlayfs, FUSE or a network file system), the error \
                 names the layer and its file system when it can tell, and auto falls back to \
                 fuse-overlayfs. Under fuse-overlayfs a file owned by an id outside the map is \
                 a writable copy in place, where native overlayfs keeps it read-only; both let \
                 it be removed and replaced (README, Filesystems).",
            ),
            Item(
                "mount_setattr with AT_RECURSIVE (Linux 5.12)",
                "Makes --ro-bind read-only on every mount below its destination in one call. \
                 Without it, become-root remounts each mount that a path below the destination \
                 reaches read-only, keeping the flags the namespace locks.",
            ),
            Para(
                "The new mount API (fsopen, fsmount, move_mount; Linux 5.2) and pidfd_open \
                 (Linux 5.3) are older than any supported kernel; without them connected \
                 networks, throwaway overlays, fuse-overlayfs and --stop fail with an error \
                 naming the version. \
                 A tmpfs of become-root's own (the generated resolv.conf, a throwaway upper \
                 layer) is attached inside the new mount namespace for the moment of the bind or \
                 the overlay mount, because kernels before 6.15 bind only from mounts of the \
                 caller's namespace; it is stacked over /, where no path reaches it, and \
                 detached again at once. become-root --check prints the kernel's version and \
                 each of these facilities as ok or warn.",
            ),
            Para(
                "Two facilities have no fallback. A binfmt_misc of a user namespace's own \
                 (Linux 6.7) is the only way to run another architecture's programs without \
                 root: --emulate fails before 6.7, naming the version, and --check says \
                 whether this kernel can and which emulators it finds. Time namespaces (Linux \
                 5.6, CONFIG_TIME_NS) are older than any supported kernel; where one is built \
                 without them, --time, its offsets and --all fail saying so.",
            ),
            Para(
                "In a container or a Kubernetes pod (hostUsers: false), --check names what the \
                 container's settings take away, with the pod-spec field that gives it back: \
                 a /proc with masked or read-only paths, where the kernel mounts no new proc \
                 in a user namespace, so --pid, --boot and --all fail (procMount: Unmasked); a \
                 seccomp filter (the Seccomp: field of /proc/self/status) that refused the \
                 probe's unshare(CLONE_NEWUSER) (seccompProfile: Unconfined, or a Localhost \
                 profile that allows it); no_new_privs, under which neither a set-user-ID \
                 newuidmap nor one with file capabilities gains privilege \
                 (allowPrivilegeEscalation: true).",
            ),
        ],
    },
    Section {
        title: "SECURITY",
        body: &[
            Para(
                "become-root is never installed setuid and needs no file capabilities; it has \
                 no privilege of its own. The only privileged step is writing the id maps, done \
                 by the setuid helpers newuidmap(1) and newgidmap(1), which map exactly the \
                 ranges the administrator granted to the caller in /etc/subuid and /etc/subgid. \
                 Root inside the new user namespace is root only over that namespace's resources \
                 and over files owned by mapped ids; it gains nothing over the rest of the system.",
            ),
            Item(
                "Privileged copies are refused",
                "At every entry point (a run, --join, --check, --list, --stop, subid under \
                 either name), before anything else, become-root refuses to run when the kernel \
                 started it with privilege: set-user-ID, set-group-ID or file capabilities \
                 (AT_SECURE). Status 125 (2 for subid).",
            ),
            Item(
                "The terminal rule",
                "The caller's terminal never reaches a process the caller did not start: the \
                 image's init and everything it starts (--boot), a pid 1 of the caller's \
                 choosing (--as-pid-1), and what runs beside a booted image (--join of its \
                 session, whose COMMAND gets a pty of the image's own devpts, as \
                 machinectl shell gives one). Such a process could push input into the terminal with \
                 TIOCSTI, which the caller's shell would read and run outside every namespace \
                 once become-root returns (CVE-2017-5226; TIOCSTI works on the caller's \
                 controlling terminal). It gets a pty of become-root's instead, in a session of \
                 its own whose controlling terminal is that pty, in place of every standard \
                 descriptor that was a terminal; become-root relays between the two. A plain \
                 run, and COMMAND under become-root's own init (--pid), keep the caller's \
                 terminal with job control: COMMAND is the caller's own.",
            ),
            Item(
                "Paths are opened without following symbolic links",
                "The directories become-root writes to, an overlay's UPPER and its work \
                 directory .UPPER.work, are made and opened relative to a descriptor of their \
                 parent with O_NOFOLLOW, and refused unless they belong to the caller (or to one \
                 of its subordinate ids) and nobody else can write to them; their parent must \
                 not let others rename them (the caller's, a subordinate id's or root's, and not \
                 writable by others, or sticky, as /tmp). The overlay is then given these \
                 descriptors, not the paths. --rootfs must be a directory that only its owner \
                 (the caller, a subordinate id, or root) can write to. Write access for the \
                 caller's user private group counts as the caller's own: its primary group, \
                 when no other account has it as its primary group in /etc/passwd and its \
                 /etc/group line names no other member (as useradd makes them, and as Debian \
                 13's umask 002 leaves every new directory group-writable); any other group's is \
                 refused, naming who else is in it. Only /etc/passwd and /etc/group are read, \
                 never NSS. The session state directory must be the caller's, mode 0700 (0770 \
                 with its private group), and is opened without following a link. Bind sources follow symbolic links, as \
                 mount --bind does: they are the caller's own choice and nothing is written there.",
            ),
            Item(
                "The in-root path rule",
                "Below --rootfs, every place become-root mounts on or makes a file in (the new \
                 root's /proc, /dev and the nodes in it, /dev/pts, /dev/console, /sys, \
                 /sys/fs/cgroup, /tmp, /run, /etc/resolv.conf, and the destinations of --bind, \
                 --tmpfs and --overlay) is opened in the new root with openat2(2) and \
                 RESOLVE_IN_ROOT, magic links refused, and the kernel is given the descriptor, \
                 never the path: the image's symbolic links resolve with the new root as /, as \
                 COMMAND will see them, so an absolute link, .. or /proc/self/cwd cannot lead a \
                 mount or a made file out of the image. The new root's own mount points (proc, \
                 dev, sys, tmp, run) must be directories of the image; a link there is an error \
                 that names it, and missing ones are made (mode 0755, by the caller, before \
                 any namespace exists) only when the caller owns the new root and may write to \
                 it. A destination below a tmpfs or throwaway overlay of the same run (or the \
                 new root's /dev, /tmp, /run) is made in that mount, one component at a time \
                 from its root with openat2(2) and RESOLVE_NO_SYMLINKS and RESOLVE_NO_XDEV: \
                 never through a link, never on another mount. The generated resolv.conf of a connected network goes over the \
                 regular file /etc/resolv.conf leads to in the new root, or, where it leads to \
                 none (systemd-resolved's stub link dangles in most images; an absolute link \
                 may name a file of the host), over the entry itself, which is then covered, \
                 not followed; a missing one is made empty in the image as the mount point.",
            ),
            Item(
                "No descriptor crosses into the namespaces",
                "Every descriptor become-root opens is close-on-exec, and the namespace process \
                 closes all of them but its pipes to become-root before it becomes the \
                 namespace's init or a session's pause process: no process inside holds the \
                 state directory, an overlay layer or --info-fd, which would lead out of \
                 --rootfs through /proc/PID/fd (the pattern of CVE-2024-21626). The one \
                 process that must hold an overlay's layers, fuse-overlayfs, is kept out of \
                 reach by the helper-visibility rule below. Descriptors the caller passed on (a \
                 make jobserver) reach COMMAND as they are.",
            ),
            Item(
                "The helper-visibility rule",
                "No helper process that holds a descriptor or a root outside the new root is \
                 visible and ptraceable from inside: root inside the user namespace may read \
                 /proc/PID/fd, /proc/PID/root and /proc/PID/cwd of every process of that \
                 namespace (it has CAP_SYS_PTRACE over it), and without --pid the new root's \
                 /proc is the host's. become-root itself, slirp4netns, pasta and newuidmap \
                 run in the caller's user namespace. fuse-overlayfs, for an overlay below \
                 --rootfs, is started by a fuse helper that become-root forks before the \
                 namespace process sets up, in a user namespace of its own with the run's maps \
                 (a second newuidmap and newgidmap): a sibling of the run's, over which root \
                 inside has no capability, so the kernel refuses it their /proc/PID/fd, root \
                 and cwd, and with --pid it does not see them at all. The namespace process \
                 mounts the FUSE file system itself and hands its /dev/fuse descriptor to the \
                 helper; fuse-overlayfs serves it chrooted to a copy of the run's mount tree, \
                 and owns files as a native overlay would (the maps are the same). It ends \
                 with the run's mount namespace, and become-root returns once it is gone. \
                 Without --rootfs, fuse-overlayfs is the namespace process's child, as COMMAND's \
                 root is the caller's anyway; in a run that execs in place, --overlay-driver=auto \
                 falling back to it below --rootfs is an error that names \
                 --overlay-driver=fuse.",
            ),
            Item(
                "Nothing become-root leaves running holds the caller's descriptors",
                "What outlives become-root's return holds none of your standard input, output \
                 or error: the cgroup janitor and a scope's keeper have /dev/null and nothing \
                 but their pipe (and the leaf's directory); a detached session's supervisor, \
                 its COMMAND, network helpers, the port provider and fuse-overlayfs have \
                 /dev/null or the session's log. So a pipe (become-root --name=x --detach \
                 --cgroup sleep 100 2>&1 | cat), a $(...) capture, ssh or a CI runner sees its \
                 end when become-root returns. A detached session keeps --info-fd, which you \
                 hand over by number, to report how it ended; what COMMAND itself starts in \
                 the background keeps what COMMAND gave it, as in any shell.",
            ),
            Item(
                "The cgroup janitor's bounds",
                "The janitor waits, asleep in poll(2) on the leaf's cgroup.events, for as long \
                 as a process of the run is left (a daemon of COMMAND's). It then removes the \
                 tree deepest first, relative to a descriptor of the directory that holds the \
                 leaf (openat with O_NOFOLLOW on the cgroup2 file system, two descriptors \
                 whatever the depth: a tree deeper than PATH_MAX is removed too), within 10 s, \
                 giving back the owner's rwx to a cgroup of yours that root inside made \
                 unreadable. What it cannot remove (a cgroup a subordinate id made unreadable) \
                 it reports, with the time, in janitor.log in the session state directory, and \
                 ends; --check shows what is still there and the fix (become-root find PATH \
                 -depth -type d -exec rmdir {} +).",
            ),
            Item(
                "The join rule",
                "--join enters a session from the host without handing it anything of the \
                 host. From its first step until it executes COMMAND (a join of a --net=bypass \
                 session: until a moment before, once it is wholly inside and holds nothing of \
                 the host's; see below) the joining process is not dumpable \
                 (PR_SET_DUMPABLE 0), so its /proc/PID/root, cwd, fd and exe are denied \
                 to every process without CAP_SYS_PTRACE over the host's user namespace, root \
                 inside the session included: before the fix a process inside a session \
                 without --pid, whose /proc is the host's, could open /proc/PID/root of a \
                 joiner that was in the session's user namespace but not yet in its mount \
                 namespace, and write to the host's / (5 to 35 of 300 joins with a racing \
                 reader). It enters every namespace with one setns(2) on a pidfd of the \
                 session's process (Linux 5.8), which cannot be a process that reused its pid, \
                 so that root and working directory move with the credentials. It closes what \
                 it opened (the pidfd, /proc/PID, the state directory) before COMMAND, and \
                 looks its working directory up again by name inside. COMMAND is dumpable again \
                 once executed, inside, as any process of the session.",
            ),
            Item(
                "What --net=bypass sockets reach",
                "With --net=bypass, a seccomp filter installed in the namespace just before \
                 COMMAND stops connect(2), listen(2), and sendto(2), sendmsg(2) and sendmmsg(2) \
                 with a destination; become-root, outside in your own network namespace, \
                 answers them. A TCP or UDP socket that nothing bound, going to an address \
                 that is neither loopback, link-local, multicast nor the helper's own network, \
                 is replaced by a socket become-root makes as you, on your network, with the \
                 options the program set, bound to the device its destination is routed \
                 through: it reaches exactly what you reach outside, as slirp4netns's and \
                 pasta's sockets do, never the host's loopback (the device binding keeps \
                 127.0.0.0/8 and ::1 out of reach even of a datagram sent on again, and \
                 cannot be undone without CAP_NET_RAW over your network), unless \
                 --allow-host-loopback, which sends a connection to the gateway to the host's \
                 127.0.0.1. No privilege is gained: become-root has none, and acts on no \
                 address a program could change after it was read (it connects its own copy, \
                 read once from the program's memory and checked against the live \
                 notification). listen(2) and bind(2) stay inside, so a server inside is \
                 reached from outside only through --publish; a bypassed socket whose connect \
                 failed may not listen (EOPNOTSUPP). What become-root cannot decide (another \
                 family, a 32-bit program, a process it cannot read) continues in the \
                 namespace, through the helper: it fails closed. io_uring fails with ENOSYS \
                 there, since its operations pass no filter. A --join=NAME of such a session is filtered alike, and answered by \
                 the joining become-root, which stays outside until COMMAND ends (it lets its \
                 own pidfd_getfd(2) of the listener through by being dumpable for the moment \
                 before execve(2)); a join by pid is not filtered: its sockets are the \
                 namespace's. A blocking connect keeps the program's SO_SNDTIMEO.",
            ),
            Item(
                "Hostile input",
                "fuse-overlayfs is given no path holding ',', ':' or '\\', which its option \
                 string would read as separators; pseudo filesystems (proc, sysfs, devpts, \
                 cgroup) are refused as overlay layers and targets; a file size limit makes \
                 state writes fail with a message (EFBIG) and leaves no state file. become-root \
                 ignores SIGXFSZ, so that over a file size limit its own failure ends with \
                 status 125 even when its message cannot be written; COMMAND gets SIGXFSZ as \
                 the caller left it.",
            ),
            Item(
                "Nothing outlives become-root",
                "Every process become-root leaves in the namespaces dies with it, however it \
                 ends (SIGKILL included): the namespace process, which becomes COMMAND or the \
                 pid namespace's init, has a parent-death signal (SIGKILL). The kernel clears \
                 that signal whenever the process's ids change (--map=keep-id, a map that puts \
                 a subordinate id at 0, --uid, --gid), so it is set again after each change, \
                 and the process leaves at once if become-root died meanwhile. With --pid, the \
                 kernel ends every process of the namespace with its init. Without it, \
                 fuse-overlayfs has a warden, root inside, that ends it when COMMAND ends \
                 (COMMAND as an unprivileged id may not signal it, and the kernel drops a \
                 parent-death signal it could not send). The kernel clears the signal too \
                 when COMMAND executes a set-user-ID, set-group-ID or file-capability program \
                 inside; without --pid, such a program can outlive a killed become-root.",
            ),
            Item(
                "Published ports",
                "The forwarder serves them from become-root's own process, within its \
                 open-files limit (raised to 65536 where the hard limit allows): an idle TCP \
                 connection holds two descriptors, and bytes in flight a pipe, or a buffer \
                 when no descriptor is left for one. One client address may hold 1024 \
                 connections at once over all the ports; its next ones are reset at once, and \
                 the log (stderr, a detached session's log) says so at most once a minute. This \
                 bounds what one host can hold of a port published to the network; a local \
                 user can connect from any address of 127.0.0.0/8 and is bounded by the \
                 open-files limit alone. A connection idle for two hours \
                 (BECOME_ROOT_PORT_IDLE_TIMEOUT) is reset; UDP flows close after a minute \
                 without a datagram. COMMAND may kill the socket provider, the process in the \
                 namespaces that makes the connections inside: become-root then says so at \
                 once, --list shows it (network down), and the TCP ports refuse connections \
                 while keeping their host ports bound. A server inside sees a TCP client's own \
                 address: the provider binds the connecting socket to it (IP_TRANSPARENT, \
                 needing CAP_NET_ADMIN in the namespace's user namespace, which it has as root \
                 there) and marks it; only marked sockets' replies are routed back to the \
                 namespace's loopback (tcp_fwmark_accept, fwmark_reflect, a rule and a table \
                 of the namespace's own), so the rest of its traffic is untouched and nothing \
                 of the host changes. --no-client-address turns it off. A running session's \
                 ports change through NAME.ports in its state directory (0700, the user's \
                 own); the session also checks that the sender's uid is its own, and takes a \
                 host port only as a socket the joining become-root bound, as any process of \
                 the user could.",
            ),
            Item(
                "The AppArmor profile is opt-in",
                "Ubuntu 23.10 and later deny programs AppArmor does not confine every \
                 capability in the user namespaces they create \
                 (kernel.apparmor_restrict_unprivileged_userns=1), and become-root then fails, \
                 saying so. The Debian package ships a profile that lifts this for \
                 /usr/bin/become-root (unconfined, userns) in /usr/share/become-root/apparmor/ \
                 and does not load it: loaded, it lets every local user run any program with \
                 every capability over a user namespace of its own, which is what the \
                 restriction prevents. Ubuntu's own profiles for bwrap and unshare deny \
                 every capability to the programs those tools start, which would leave \
                 COMMAND root without root's powers. /usr/share/doc/become-root/README.apparmor \
                 says how to enable it (AppArmor 4), to limit it to a group of users, and to \
                 disable it.",
            ),
            Para(
                "overlayfs leaves a directory work with mode 000 in .UPPER.work, owned by the \
                 caller (uid 0 inside). Remove the work directory with become-root rm -rf \
                 .UPPER.work, or chmod -R u+rwx .UPPER.work first.",
            ),
        ],
    },
    Section {
        title: "EXAMPLES",
        body: &[
            Para(
                "Each example is typed as shown, each $ line a command, followed by what it \
                 prints ([..] for text left out, ... for lines). They are for alice, uid and gid 1000, with \
                 the line alice:100000:65536 in /etc/subuid and /etc/subgid, as useradd(8) \
                 writes it for the first user.",
            ),
            Para(
                "Root inside, with every subordinate id mapped; a file given to uid 1000 \
                 inside belongs to subordinate id 100999 on the host:",
            ),
            Example(
                Runs::Vm,
                "$ become-root id -u\n\
                 0\n\
                 $ become-root cat /proc/self/uid_map\n\
                 \x20        0       1000          1\n\
                 \x20        1     100000      65536\n\
                 $ become-root sh -c 'touch f && chown 1000:1000 f' && stat -c '%u:%g' f\n\
                 100999:100999",
            ),
            Para("The other maps (ID MAPS), and a map of ids that are not yours:"),
            Example(
                Runs::Vm,
                "$ become-root --map=keep-id sh -c 'id -un; cat /proc/self/uid_map'\n\
                 alice\n\
                 \x20        0     100000       1000\n\
                 \x20     1000       1000          1\n\
                 \x20     1001     101000      64536\n\
                 $ become-root --map=subids cat /proc/self/uid_map\n\
                 \x20     1000       1000          1\n\
                 \x20   100000     100000      65536\n\
                 $ become-root --map-users=33:1000:1 --map-users=auto cat /proc/self/uid_map\n\
                 \x20        0     100000         33\n\
                 \x20       33       1000          1\n\
                 \x20       34     100033      65503\n\
                 $ become-root --map-users=0:300000:10 true\n\
                 become-root: id map: --map-users=0:300000:10: host uids 300000-300009 are \
                 neither yours (uid 1000) nor granted to you (/etc/subuid:1 grants \
                 100000-165535)\n\
                 hint: map only your own id and the ids granted to you ('subid show' lists them, \
                 and the map each --map mode makes); an administrator grants more with usermod \
                 --add-subuids/--add-subgids\n\
                 $ echo $?\n\
                 125",
            ),
            Para(
                "Filesystem options apply in command-line order, so a bind below a fresh \
                 tmpfs lands on it; --copy-up's changes stay inside:",
            ),
            Example(
                Runs::Harness,
                "$ mkdir data && echo hello > data/greeting\n\
                 $ become-root --tmpfs=/mnt --bind=$PWD/data:/mnt/data cat /mnt/data/greeting\n\
                 hello\n\
                 $ become-root --copy-up=/etc sh -c 'echo inside > /etc/example && cat /etc/example'\n\
                 inside\n\
                 $ cat /etc/example\n\
                 cat: /etc/example: No such file or directory\n\
                 $ echo $?\n\
                 1",
            ),
            Para(
                "A published port needs a network namespace, of any mode, none included; port \
                 0 lets the kernel pick one:",
            ),
            Example(
                Runs::Harness,
                "$ become-root --net=none -p 127.0.0.1:0:80 true\n\
                 become-root: published 127.0.0.1:[..] -> 80/tcp\n\
                 $ become-root -p 8080:80 true\n\
                 become-root: network: --publish needs a network namespace of the run's own\n\
                 hint: add --net (any mode: --net=none publishes too), or --boot, --all or \
                 --sysfs, which make one\n\
                 $ echo $?\n\
                 125",
            ),
            Para("A helper named by the environment must be there:"),
            Example(
                Runs::Harness,
                "$ NEWUIDMAP=/opt/no/newuidmap become-root true\n\
                 become-root: id mapping: NEWUIDMAP=/opt/no/newuidmap: no such file or \
                 directory\n\
                 hint: set NEWUIDMAP to the path of the program ([..]), or unset it to use the \
                 one on PATH\n\
                 $ echo $?\n\
                 125",
            ),
            Para(
                "A session: set up once, then joined (here its pid namespace's init, become-root, \
                 is pid 1), listed and stopped:",
            ),
            Example(
                Runs::Harness,
                "$ become-root --name=box --detach --pid\n\
                 $ become-root --join=box cat /proc/1/comm\n\
                 become-root\n\
                 $ become-root --list\n\
                 NAME  PID[..]STATUS\n\
                 box   [..]user,pid,mnt[..]running\n\
                 $ become-root --stop=box",
            ),
            Para(
                "A Debian image, built as root inside from the package registry and booted; \
                 --detach returns once its systemd is ready:",
            ),
            Example(
                Runs::AsInReadme,
                "$ become-root --net=auto --pid mmdebstrap --variant=minbase \
                 --include=systemd-sysv,dbus bookworm img\n\
                 ...\n\
                 $ become-root --name=sys --detach --boot --net=auto --rootfs=img\n\
                 $ become-root --join=sys systemctl is-system-running --wait\n\
                 running\n\
                 $ become-root --join=sys apt-get update\n\
                 ...\n\
                 $ become-root --join=sys apt-get install -y less\n\
                 ...\n\
                 $ become-root --stop=sys\n\
                 $ become-root rm -rf img",
            ),
            Para("A cgroup of the run's own, and a memory limit:"),
            Example(
                Runs::AsInReadme,
                "$ become-root --cgroup sh -c 'cat /proc/self/cgroup; mkdir /sys/fs/cgroup/inner \
                 && echo ok'\n\
                 0::/\n\
                 ok\n\
                 $ become-root --memory=64M python3 -c 'b = bytearray(200 << 20)'\n\
                 become-root: COMMAND was killed by the memory limit (--memory=64M)\n\
                 Killed\n\
                 $ echo $?\n\
                 137",
            ),
        ],
    },
    Section {
        title: "SEE ALSO",
        body: &[Para(
            "unshare(1), newuidmap(1), newgidmap(1), subuid(5), subgid(5), \
             user_namespaces(7)",
        )],
    },
];

const SUBID_SECTIONS: &[Section] = &[
    Section {
        title: "COMMANDS",
        body: &[
            Item(
                "subid show [USER] [--subuid FILE] [--subgid FILE] [--passwd FILE] \
                 [--subid-source SOURCE]",
                "Every subordinate uid and gid range of USER (a login name or a uid; default: \
                 the caller), one per line with its size and where it comes from, then the \
                 totals. A line counts when its owner field is the login name, the uid in plain \
                 decimal, or another login name with the same uid, as newuidmap matches them; in \
                 /etc/subgid too the owner is the user, not a group. Lines of the user that \
                 newuidmap ignores or reads differently are reported on standard error, and so \
                 are lines it grants to another account too (see ambiguous-owner). A USER \
                 that is no account is matched by the owner field alone, so the ranges of a \
                 removed user can still be listed. USER is looked up in the system's account \
                 database, or only in the --passwd file when one is given. --subid-source is \
                 files, getsubids (the getsubids program of libsubid, for SSSD or LDAP) or auto, \
                 the default: getsubids when /etc/nsswitch.conf has a subid: line, as \
                 become-root decides; --subuid or --subgid mean files.",
            ),
            Item(
                "subid check [--subuid FILE] [--subgid FILE] [--passwd FILE] [--group FILE] \
                 [--json]",
                "Audit the two files against each other and against the accounts, one finding \
                 per line: FILE:LINE: SEVERITY [KIND] MESSAGE, sorted by file and line. The \
                 message names the owner or owners, the ranges (START-END, both ends included) \
                 and, for an overlap, the line of the other range. The findings and their KIND \
                 are listed under FINDINGS. With --json the report is one JSON object, \
                 {\"files\":{...},\"findings\":[...],\"errors\":N,\"warnings\":N,\"notes\":N}, \
                 one finding per line; each finding has severity, kind, file, line, owner, \
                 start, end and count (null when the line has no range newuidmap reads), \
                 message, and for an overlap other (owner, line, start, end, count), for an \
                 account finding account (id, name, more). Only the passwd and group files are \
                 read, not LDAP or SSSD: to check against network accounts too, which is what \
                 CVE-2024-56433 is about, give --passwd <(getent passwd) --group <(getent \
                 group). Overlaps and account ids are found by sorting the ranges and sweeping \
                 once, never by comparing pairs. Files of a million lines each take well under \
                 a second when owners come in the order of the passwd file, as useradd and \
                 newusers write them, and a few seconds in random order; memory grows with the \
                 size of the subordinate id files (the account files are read a line at a \
                 time).",
            ),
            Item(
                "subid next [USER] [--count N] [--subuid FILE] [--subgid FILE] [--passwd FILE] \
                 [--group FILE]",
                "The next range to allocate, printed as START-END, then the usermod command \
                 that allocates it for both files (USER in that command is the word USER when \
                 no USER is given). START is the first point of the grid 100000 + k*65536 (the \
                 ranges useradd allocates with its defaults SUB_UID_MIN=100000 and \
                 SUB_UID_COUNT=65536) at or above the end of every range ever written in either \
                 file: a hole left by a removed user is never offered, nor the range of an \
                 owner that no longer exists, nor one on a line newuidmap ignores (a range on \
                 such a line is read the way a person reads it too, so 0400000 counts as both \
                 131072 and 400000). If the range would contain the uid of an account or the \
                 gid of a group, START moves to the grid point past that id. --count N sets \
                 the size (default 65536). When no such range ends below 4294967295, nothing \
                 is printed and the status is 1.",
            ),
            Item(
                "subid scan [--subuid FILE] [--subgid FILE] [--one-file-system] \
                 [--cross-filesystems] [--follow-symlinks] PATH...",
                "Walk each PATH and report every regular file that is set-user-ID with an owner \
                 in a subordinate uid range, or set-group-ID with a group in a subordinate gid \
                 range, one per line: the file, which bit, its id, and the range with its owner, \
                 file and line. The ranges are every range written in the files, as for next. \
                 Files are listed in name order, depth first. Symbolic links below PATH are not \
                 followed unless --follow-symlinks is given (a PATH that is itself a link is \
                 followed, as find -H does); directories on another filesystem than their PATH \
                 are not entered unless --cross-filesystems is given (--one-file-system, the \
                 default, undoes it). A directory is never entered twice, so links cannot make \
                 the walk loop. Directories that cannot be read are reported on standard error \
                 and the walk goes on.",
            ),
        ],
    },
    Section {
        title: "FINDINGS",
        body: &[
            Para(
                "Each line is read as newuidmap of shadow 4.13 reads it: what a finding says \
                 newuidmap does is what the kernel is finally asked to map. An error makes \
                 check exit with status 1; warnings and notes do not.",
            ),
            Item(
                "overlap (error)",
                "A range shares ids with a range of another owner (owners are the same when \
                 they name the same uid, by login name or by number). Each can reach files the \
                 other creates inside a user namespace. Every range that overlaps an \
                 earlier-starting range of another owner is reported once, naming the one that \
                 reaches furthest.",
            ),
            Item(
                "duplicate (warning)",
                "A range overlaps another range of the same owner: harmless, but redundant.",
            ),
            Item(
                "account (error)",
                "A subuid range contains the uid of an account in the passwd file, or a subgid \
                 range the gid of a group in the group file: its owner can map that id and act \
                 as that account on its files (CVE-2024-56433). The lowest such id is named, \
                 with how many more there are.",
            ),
            Item(
                "ambiguous-owner (error)",
                "The owner field is the login name of one account and, in plain decimal, the uid \
                 of another (a user named 4343, and another user with uid 4343). newuidmap \
                 matches a line by login name or by uid, so it grants the range to both, and \
                 show lists it for both: each can act on files the other creates inside a user \
                 namespace. Write the login name or the uid of the one account meant, whichever \
                 is no other account's. For overlap and duplicate the line is the login name's; \
                 for too-many-ranges it counts for both.",
            ),
            Item(
                "too-many-ranges (error)",
                "The ranges granted to one account in one file (by every login name of its uid, \
                 and by the uid) do not fit in one id map beside the account's own id, laid out \
                 as become-root --map=full lays them out: 0 ID 1, then each range in file \
                 order, one extent each, merged with the one before when it follows on from it. \
                 The kernel takes at most 340 extents (Linux 4.15 and later), written in one \
                 write of at most 4095 bytes; with ids of six digits and more the write fills \
                 first, at about 180 ranges of 65536 ids. become-root --map=full refuses such a \
                 map and --map=auto maps the caller's own id alone, so the owner has the use of \
                 none of its ranges: an error. Reported once per owner and file, on the line of \
                 the first range that does not fit, with the number of ranges and what the \
                 whole map would need; the uid stands for the account's own id in the subgid \
                 file too. Owners that are no account (missing-owner) are not checked. Fewer, \
                 larger ranges fix it.",
            ),
            Item(
                "low-range (warning)",
                "A range starts below 65536, among the ids of system and login accounts \
                 (login.defs' UID_MAX is 60000 by default) and nobody (65534): an account \
                 created later may get one of its ids. If one already has, that is an account \
                 finding too.",
            ),
            Item(
                "too-high (error)",
                "start+count exceeds 4294967295, so the range reaches the id the kernel never \
                 maps (or passes 32 bits): newuidmap reads the range, and the kernel refuses a \
                 map that includes that id. become-root uses none of such a range.",
            ),
            Item(
                "ignored (error)",
                "newuidmap ignores the line: a CRLF line ending, a trailing space or tab, fewer \
                 than three fields, an empty field, a number it cannot read (abc, 08, a number \
                 past 64 bits), a line starting with + or - (taken for NIS), a line of 1024 \
                 bytes or more. The owner gets nothing from it, and useradd, which skips it \
                 too, may allocate those ids again: an error, though no id is exposed yet.",
            ),
            Item(
                "nul-byte (error)",
                "A NUL byte makes newuidmap join the next line to this one; the message shows \
                 what it reads.",
            ),
            Item(
                "unreadable (error)",
                "A NUL byte on the last line makes newuidmap fail to read the whole file.",
            ),
            Item(
                "octal (error)",
                "A number with a leading 0 is octal to newuidmap: 0100000 is 32768, not \
                 100000. The ranges of the other findings are the ones newuidmap reads.",
            ),
            Item(
                "not-decimal (warning)",
                "A number newuidmap reads, but not in plain decimal: hexadecimal (0x186a0), a \
                 sign, leading blanks, or an octal number that means the same in decimal (07). \
                 The message says the value read.",
            ),
            Item(
                "extra-fields (warning)",
                "More than three fields: newuidmap reads the first three.",
            ),
            Item(
                "count-zero (warning)",
                "count is 0: the line grants nothing.",
            ),
            Item(
                "no-final-newline (warning)",
                "The last line has no newline: newuidmap reads it, but a line appended with \
                 echo >> would be joined to it.",
            ),
            Item(
                "comment (warning)",
                "A line starting with #: these files have no comments. newuidmap ignores the \
                 line, or, when it has three fields, reads a range of an owner named #...",
            ),
            Item(
                "padded-owner (warning)",
                "A numeric owner with leading zeros (01000) that is no login name: newuidmap \
                 matches uids only in plain decimal, so the range belongs to no one.",
            ),
            Item(
                "missing-owner (note)",
                "The owner is no account: keep the range, and never give it to anyone else \
                 (see NEVER REUSE A RANGE).",
            ),
        ],
    },
    Section {
        title: "NEVER REUSE A RANGE",
        body: &[Para(
            "Treat a subordinate range as allocated for good, even after its user is \
                 removed. Inside a user namespace the user can create files, set-user-ID \
                 programs included, owned by any id of the range, and on disk they keep the \
                 host id. Whoever gets the range next owns those files and can run those \
                 programs as themselves; scan finds such files. For the same reason ranges of \
                 different users must never overlap, and no range may contain the id of a real \
                 account or group: CVE-2024-56433 is shadow's default ranges (100000 and up) \
                 meeting network accounts (LDAP, NIS) with uids in that space. useradd picks \
                 the first free gap, which can be a removed user's range; next never does, and \
                 check shows removed owners as notes so their ranges are not forgotten.",
        )],
    },
    Section {
        title: "EXIT STATUS",
        body: &[
            Item(
                "0",
                "All is well: no error found, no file found, a range proposed.",
            ),
            Item(
                "1",
                "The answer is no: check found a finding of severity error; scan found a file; \
                 show found no uid range or no gid range; next found no room.",
            ),
            Item(
                "2",
                "subid itself failed, bad usage included: it prints \"subid: WHAT: WHY\" and, \
                 where a fix is known, \"hint: FIX\". (subid runs no command, so unlike \
                 become-root it needs no status apart from a command's, and uses 2 as grep and \
                 most administration tools do.) When scan found a file, the status is 1 even if \
                 some directory could not be read.",
            ),
        ],
    },
    Section {
        title: "FILES",
        body: &[
            Item(
                "/etc/subuid, /etc/subgid",
                "The subordinate uid and gid ranges (subuid(5), subgid(5)); --subuid and \
                 --subgid name other files. A missing default file is an empty one, as it is to \
                 newuidmap; a missing file named on the command line is an error.",
            ),
            Item(
                "/etc/passwd, /etc/group",
                "The accounts and groups ranges must not contain, for check and next; --passwd \
                 and --group name other files (a pipe such as <(getent passwd) works). show \
                 uses the passwd file for other login names with the same uid.",
            ),
            Item(
                "/etc/nsswitch.conf",
                "A subid: line here makes show --subid-source=auto ask getsubids(1).",
            ),
        ],
    },
    Section {
        title: "EXAMPLES",
        body: &[
            Para("subid show alice"),
            Para("subid check --passwd <(getent passwd) --group <(getent group)"),
            Para("subid next carol"),
            Para("subid scan /home /srv /var/tmp"),
        ],
    },
    Section {
        title: "SEE ALSO",
        body: &[Para(
            "become-root(1), newuidmap(1), newgidmap(1), getsubids(1), usermod(8), \
             useradd(8), subuid(5), subgid(5), user_namespaces(7)",
        )],
    },
];

#[test]
fn committed_docs_match_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let regenerate = std::env::var_os(REGENERATE_VAR).is_some_and(|v| v == "1");

    let mut drifted = Vec::new();
    for (path, generated) in PAGES.iter().flat_map(render_page) {
        let full = root.join(&path);
        let committed = fs::read(&full).ok();
        if committed.as_deref() == Some(generated.as_slice()) {
            continue;
        }
        if regenerate {
            write(&full, &generated);
            eprintln!("docs: wrote {}", path.display());
        } else {
            drifted.push(path);
        }
    }

    assert!(
        drifted.is_empty(),
        "these committed files are missing or differ from what the clap definition \
         generates:\n{}\nrun `{REGENERATE_VAR}=1 cargo test --test docs` and commit the result",
        drifted
            .iter()
            .map(|p| format!("  {}", p.display()))
            .collect::<Vec<_>>()
            .join("\n"),
    );
}

/// The hand-written sections are where the man page keeps its promises: check they are there,
/// so a careless edit of the table cannot drop one and regenerate quietly.
#[test]
fn man_page_names_every_kernel_facility_with_its_version() {
    use become_root::kernel::{FACILITIES, MINIMUM};
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/become-root.1"),
    )
    .unwrap()
    .replace("\\-", "-");
    assert!(
        page.contains(&format!("Linux {MINIMUM} and later")),
        "no minimum"
    );
    for facility in FACILITIES {
        let name = facility.name().split(" (").next().unwrap();
        assert!(page.contains(name), "the KERNEL section misses {name}");
        assert!(
            page.contains(&format!("Linux {}", facility.since())),
            "the KERNEL section misses Linux {} for {name}",
            facility.since()
        );
    }
}

#[test]
fn become_root_man_page_has_the_contract_sections() {
    let page = &PAGES[0];
    let man = render_man(page);
    let man = String::from_utf8(man).expect("man page is UTF-8");
    for heading in [
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "KERNEL",
        "SECURITY",
        "EXAMPLES",
    ] {
        assert!(
            man.contains(&format!(".SH \"{heading}\""))
                || man.contains(&format!(".SH {heading}\n")),
            "{}: no {heading} section",
            page.man
        );
    }
    for word in [
        "125",
        "126",
        "127",
        "128+N",
        "NEWUIDMAP",
        "NEWGIDMAP",
        "SLIRP4NETNS",
        "PASTA",
        "FUSE_OVERLAYFS",
        "BECOME_ROOT_PORT_IDLE_TIMEOUT",
        "_CONTAINERS_USERNS_CONFIGURED",
        "_CONTAINERS_ROOTLESS_UID",
        "_CONTAINERS_ROOTLESS_GID",
        "/etc/subuid",
        "/etc/subgid",
        "setuid",
    ] {
        // roff writes '-' as '\-'.
        assert!(
            man.contains(&word.replace('-', "\\-")),
            "{}: {word} is not mentioned",
            page.man
        );
    }
}

/// A heading appears once: the page's own section about a group of options (SESSIONS) is
/// that group's, not a second section of the same name (there were two SESSIONS and two
/// CGROUPS AND SYSTEM IMAGES).
#[test]
fn no_man_page_has_a_section_twice() {
    for page in PAGES {
        let man = String::from_utf8(render_man(page)).expect("man page is UTF-8");
        let mut seen = std::collections::BTreeSet::new();
        for heading in man.lines().filter(|l| l.starts_with(".SH ")) {
            assert!(seen.insert(heading), "{}: {heading} twice", page.man);
        }
    }
}

/// The same for `subid`: its exit statuses, its files, and the rule it exists for.
#[test]
fn subid_man_page_has_the_contract_sections() {
    let page = &PAGES[1];
    let man = String::from_utf8(render_man(page)).expect("man page is UTF-8");
    for heading in [
        "COMMANDS",
        "FINDINGS",
        "NEVER REUSE A RANGE",
        "EXIT STATUS",
        "FILES",
    ] {
        assert!(
            man.contains(&format!(".SH \"{heading}\""))
                || man.contains(&format!(".SH {heading}\n")),
            "{}: no {heading} section",
            page.man
        );
    }
    for word in [
        "CVE-2024-56433",
        "never give it to anyone else",
        "/etc/subuid",
        "/etc/subgid",
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
        "--json",
        "--follow-symlinks",
        "--cross-filesystems",
    ] {
        assert!(
            man.contains(&word.replace('-', "\\-")),
            "{}: {word} is not mentioned",
            page.man
        );
    }
}

/// Every file of one page, as (path relative to the crate root, contents).
fn render_page(page: &Page) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = vec![(PathBuf::from(page.man), render_man(page))];
    for &(shell, path) in page.completions {
        let mut cmd = (page.command)();
        let name = cmd.get_name().to_owned();
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, name, &mut out);
        files.push((PathBuf::from(path), out));
    }
    files
}

/// The man page: clap_mangen's sections, then the page's own, then VERSION.
///
/// `Man::render` cannot take extra sections, so the page is assembled from its section
/// renderers. Each of them writes the roff apostrophe preamble, which must appear only once.
/// The after-help text is left out: it is the terminal's summary of EXIT STATUS, which the
/// man page gives in full. A section of the page's own whose title is that of a group of
/// options (SESSIONS) goes at the end of that group, so that no heading appears twice.
fn render_man(page: &Page) -> Vec<u8> {
    let cmd = (page.command)();
    let has_args = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_version = cmd.get_version().is_some() || cmd.get_long_version().is_some();
    let man = Man::new(cmd).manual("User Commands");

    let preamble = Roff::new().render();
    let mut out = format!(
        ".\\\" Generated by tests/docs.rs from src/cli.rs; do not edit.\n\
         .\\\" Regenerate with: {REGENERATE_VAR}=1 cargo test --test docs\n{preamble}"
    );
    let rendered = |render: &dyn Fn(&mut Vec<u8>) -> io::Result<()>| {
        let mut part = Vec::new();
        render(&mut part).expect("rendering into memory cannot fail");
        let part = String::from_utf8(part).expect("roff is UTF-8");
        part.strip_prefix(&preamble)
            .expect("every roff rendering starts with the preamble")
            .to_string()
    };

    out += &rendered(&|w| man.render_title(w));
    out += &rendered(&|w| man.render_name_section(w));
    out += &rendered(&|w| man.render_synopsis_section(w));
    out += &rendered(&|w| man.render_description_section(w));
    let mut options = String::new();
    if has_args {
        options = rendered(&|w| man.render_options_section(w));
    }
    let mut own = Vec::new();
    for section in page.sections {
        let heading = rendered(&|w| Roff::new().control("SH", [section.title]).to_writer(w));
        let Some(at) = options.find(&heading) else {
            own.push(section);
            continue;
        };
        let after = at + heading.len();
        let end = options[after..]
            .find("\n.SH ")
            .map_or(options.len(), |i| after + i + 1);
        let body = rendered(&|w| render_blocks(&mut Roff::new(), section.body).to_writer(w));
        options.insert_str(end, &body);
    }
    out += &options;
    // No render_subcommands_section: it refers to a page per subcommand (subid-show(1)),
    // which is not generated; a page with subcommands describes them in a section of its own.
    out += &rendered(&|w| render_sections(&own).to_writer(w));
    if has_version {
        out += &rendered(&|w| man.render_version_section(w));
    }
    out.into_bytes()
}

fn render_sections(sections: &[&Section]) -> Roff {
    let mut roff = Roff::new();
    for section in sections {
        roff.control("SH", [section.title]);
        render_blocks(&mut roff, section.body);
    }
    roff
}

fn render_blocks<'a>(roff: &'a mut Roff, blocks: &[Block]) -> &'a mut Roff {
    for block in blocks {
        match block {
            Para(text) => {
                roff.control("PP", []).text([roman(*text)]);
            }
            Item(tag, text) => {
                roff.control("TP", [])
                    .text([bold(*tag)])
                    .text([roman(*text)]);
            }
            Example(runs, text) => {
                // Indented, in no-fill mode, as man-pages(7) sets examples.
                match runs {
                    Runs::Harness => {}
                    Runs::Vm => {
                        roff.control("\\\"", ["runs:", "vm"]);
                    }
                    Runs::AsInReadme => {
                        roff.control("\\\"", ["runs:", "as", "in", "README.md"]);
                    }
                }
                roff.control("PP", [])
                    .control("in", ["+4n"])
                    .control("EX", [])
                    .text([roman(*text)])
                    .control("EE", [])
                    .control("in", []);
            }
        }
    }
    roff
}

fn write(path: &Path, contents: &[u8]) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    }
    fs::File::create(path)
        .and_then(|mut f| f.write_all(contents))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
