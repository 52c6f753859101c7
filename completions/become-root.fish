complete -c become-root -l map -d 'How ids are mapped: full (you as 0, then every subordinate range), single (only you, like unshare -r), auto (full when possible, else single with a warning), keep-id (you as yourself and COMMAND runs as you, the subordinate ranges on the other ids, like podman\'s keep-id), subids (you and every subordinate id as themselves)' -r -f -a "auto\t'full when possible, else single with a warning that says why'
full\t'the caller as 0, then every subordinate range; an error when that cannot be done'
single\t'only the caller, as 0'
keep-id\t'the caller as itself, the subordinate ranges on the other ids; COMMAND runs as the caller'
subids\t'the caller and every subordinate id as themselves; COMMAND runs as the caller'"
complete -c become-root -l map-users -d 'Map COUNT host uids from OUTER to INNER inside (repeatable; util-linux\'s order). OUTER must be your uid or granted to you in /etc/subuid; \'auto\' adds every uid of yours the entries leave, on the inside ids they leave. Replaces --map\'s uid map' -r
complete -c become-root -l map-groups -d 'As --map-users, for gids (/etc/subgid)' -r
complete -c become-root -l subid-source -d 'Where subordinate ranges come from: files (/etc/subuid, /etc/subgid), getsubids (libsubid, e.g. SSSD or LDAP), auto (getsubids when /etc/nsswitch.conf has a subid line)' -r -f -a "auto\t'getsubids when /etc/nsswitch.conf has a subid line, else the files'
files\t'/etc/subuid and /etc/subgid'
getsubids\t'the getsubids program (libsubid)'"
complete -c become-root -l propagation -d 'Mount propagation of / in the new mount namespace: private, or slave to keep receiving mounts made on the host' -r -f -a "private\t'no mount events in either direction'
slave\t'receive mounts made on the host, send none back'"
complete -c become-root -s n -l net -d 'New network namespace. MODE (taken only with \'=\', so -n bash runs bash): none (loopback only, the default), slirp4netns, pasta, auto (pasta when installed, else slirp4netns), or bypass (outbound TCP and UDP sockets become sockets of the host, at its own speed, and slirp4netns, else pasta, carries the rest: see SECURITY). A connected mode implies --mount and binds a resolv.conf naming the helper\'s DNS forwarder over /etc/resolv.conf' -r -f -a "none\t'loopback only'
slirp4netns\t'user-mode networking by slirp4netns (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3)'
pasta\t'user-mode networking by pasta (the host\'s own addresses and routes)'
auto\t'pasta when installed, else slirp4netns'
bypass\t'the namespace\'s outbound TCP and UDP sockets become sockets of the host (seccomp user notification), at the host\'s own speed; slirp4netns (pasta when it is not installed) for the rest'"
complete -c become-root -s p -l publish -d 'Publish a port of the namespace on the host: [HOST_IP:]HOST_PORT:NS_PORT[/tcp|/udp] (repeatable; HOST_IP defaults to 127.0.0.1, an IPv6 one goes in brackets; HOST_PORT 0 picks a free port and reports it). Connections reach NS_PORT on the namespace\'s loopback. Needs a network namespace: --net (any mode), --boot, --all or --sysfs' -r
complete -c become-root -l port-driver -d 'Who forwards published ports: builtin (become-root\'s own splice forwarder, any --net mode) or helper (slirp4netns\'s API or pasta\'s own forwarding; needs slirp4netns or pasta, and a server inside listening on all addresses)' -r -f -a "builtin\t'become-root\'s own forwarder: splice(2) between a host socket and one made inside'
helper\t'the network helper\'s own forwarding (slirp4netns add_hostfwd, pasta -t/-u)'"
complete -c become-root -l mtu -d 'MTU of the connected interface' -r
complete -c become-root -l cidr -d 'The IPv4 network of the connected interface (default: 10.0.2.0/24 with slirp4netns, the host\'s own with pasta): the namespace is NET+100, the gateway NET+2, slirp4netns\'s DNS forwarder NET+3. PREFIX 1 to 25' -r
complete -c become-root -l dns -d 'Name IP as the resolver in the generated resolv.conf, instead of the helper\'s DNS forwarder (repeatable)' -r
complete -c become-root -l bind -d 'Bind SRC (a host path) to DST (default: the same path; inside --rootfs when given), recursively. Filesystem options apply in command-line order; a DST below a tmpfs (or throwaway overlay) of an earlier option is made there. Write \'\\:\' for a \':\' in a path' -r
complete -c become-root -l ro-bind -d 'As --bind, read-only, enforced recursively on every mount below DST' -r
complete -c become-root -l tmpfs -d 'A fresh tmpfs on DIR' -r
complete -c become-root -l copy-up -d 'DIR becomes a writable copy whose changes stay inside (an overlay with a throwaway upper layer). New and replaced files work; files owned by ids outside the map stay read-only in place, as on the host (under fuse-overlayfs they are writable copies)' -r
complete -c become-root -l overlay -d 'Overlay LOWER directories (top first, separated by \',\') on TARGET; changes go to UPPER (created if missing; become-root keeps its work directory beside it) or, without UPPER, to a tmpfs and are thrown away. Write \'\\:\' and \'\\,\' for those characters' -r
complete -c become-root -l overlay-driver -d 'How --overlay and --copy-up are mounted: native overlayfs in the user namespace (Linux 5.11+), fuse-overlayfs, or auto (native, else fuse-overlayfs)' -r -f -a "auto\t'native overlayfs, else fuse-overlayfs'
native\t'overlayfs in the user namespace'
fuse\t'fuse-overlayfs'"
complete -c become-root -l rootfs -d 'Make DIR the root (pivot_root) with /proc, a minimal /dev, /sys, /tmp and, with a connected network, /etc/resolv.conf (missing proc, dev, sys, tmp are made in a DIR of yours); DSTs of the other options are inside it' -r
complete -c become-root -l chdir -d 'Run COMMAND in DIR (inside --rootfs when given; default: the current directory, or / with --rootfs)' -r
complete -c become-root -l cap-add -d 'Give COMMAND capability CAP over the namespace (repeatable; NET_ADMIN, net_admin and CAP_NET_ADMIN are the same). With --uid, the only capabilities COMMAND gets' -r
complete -c become-root -l cap-drop -d 'Take capability CAP away from COMMAND, or ALL (repeatable; --cap-add wins). Dropped from the bounding set too, so no exec inside can regain it' -r
complete -c become-root -l uid -d 'Run COMMAND as uid N inside (a mapped id) instead of 0, after every mount is made' -r
complete -c become-root -l gid -d 'Run COMMAND as gid N inside (a mapped id) instead of 0' -r
complete -c become-root -l info-fd -d 'When the namespaces are ready, write one JSON object to file descriptor FD (pid, id maps, namespace inodes, network, published ports); when COMMAND ends, a second one with how it ended. FD is not passed to COMMAND' -r
complete -c become-root -l notify-ready -d 'With --boot, when the image counts as ready, for --detach to return and for a service manager above become-root (READY=1): when its init says so on NOTIFY_SOCKET (/run/host/notify inside), or as soon as it has started' -r -f -a "auto\t'yes when the image\'s init is systemd, else no'
yes\t'when its init says READY=1 on NOTIFY_SOCKET (sd_notify(3)), waiting 90 s at most'
no\t'as soon as its init has started'"
complete -c become-root -l stop-timeout -d 'How long a stop may take before what is left is killed (SIGKILL): with --boot, after SIGRTMIN+3, whoever asks for the stop (default 30); with --stop, overrides what the session was started with (default 30 for --boot, else 5)' -r
complete -c become-root -l memory -d 'Memory limit (memory.max): bytes, or with a unit b, k, m, g (64M, 1.5g), as podman. Implies --cgroup; a COMMAND the limit kills ends with status 137' -r
complete -c become-root -l memory-swap -d 'Memory and swap together (podman\'s meaning; -1: no limit on swap). Needs --memory; without it swap is limited to as much as --memory' -r
complete -c become-root -l cpus -d 'CPU time limit in CPUs, fractions allowed (cpu.max; 0.5 is half of one CPU). Implies --cgroup' -r
complete -c become-root -l pids-limit -d 'Most tasks (processes and threads) at once (pids.max; -1: no limit). Implies --cgroup' -r
complete -c become-root -l emulate -d 'Run programs built for ARCH through QEMU\'s user-mode emulator: a binfmt_misc of the run\'s own (Linux 6.7 and later) at /proc/sys/fs/binfmt_misc, with qemu-ARCH-static (found on PATH, else qemu-ARCH; or named by QEMU_ARCH_STATIC, as QEMU_AARCH64_STATIC) registered as Debian registers it, with the F flag, so that it works inside --rootfs and chroots. ARCH: aarch64, arm, riscv64, ppc64le, s390x, mips64el, loongarch64, i386, x86_64, or Debian\'s arm64, armhf, armel, ppc64el, loong64, amd64 (repeatable, or several with \',\'). Implies --mount' -r
complete -c become-root -l monotonic -d 'Add SECONDS (negative too) to CLOCK_MONOTONIC inside; implies --time' -r
complete -c become-root -l boottime -d 'Add SECONDS (negative too) to CLOCK_BOOTTIME inside, which uptime and /proc/uptime show; implies --time' -r
complete -c become-root -l hostname -d 'Set the host name inside to NAME (at most 64 bytes); implies --uts' -r
complete -c become-root -l setenv -d 'Set VAR to VALUE in COMMAND\'s environment (repeatable). The environment options apply in command-line order, to the environment COMMAND would get' -r
complete -c become-root -l unsetenv -d 'Remove VAR from COMMAND\'s environment (repeatable)' -r
complete -c become-root -l device -d 'Bind the device node PATH at DST (default: PATH; below /dev) inside: with --rootfs, into its minimal /dev, made there (/dev/fuse for fuse-overlayfs or sshfs, /dev/net/tun for pasta or a VPN, /dev/dri/renderD128 for a GPU); without, over an existing DST. Refused for a path that is not a device node (repeatable)' -r
complete -c become-root -l name -d 'Give this run a NAME, making it a session that --join can enter while it runs (letters, digits, \'_\', \'.\' and \'-\', starting with a letter or digit, not all digits). Its state is kept under $XDG_RUNTIME_DIR/become-root/ (else /tmp/become-root-UID/) until it ends' -r
complete -c become-root -l unpublish -d 'With --join=NAME: stop publishing SPEC ([HOST_IP:]HOST_PORT:NS_PORT[/tcp|/udp], as --list shows it) in running session NAME (repeatable); with --publish and no COMMAND, --join=NAME adds ports to it' -r
complete -c become-root -l join -d 'Run COMMAND (default: $SHELL, else /bin/sh) as root in the namespaces of session NAME, or of process PID: its user namespace first, then the others it made. No map is written and no helper runs. The working directory is --chdir, else the current one; --uid, --gid and the capability options apply as in a new run' -r
complete -c become-root -l stop -d 'End session NAME and everything in it (SIGTERM, or SIGRTMIN+3 to a booted image\'s pid 1, then SIGKILL after --stop-timeout) and remove its state; returns once all of it is gone' -r
complete -c become-root -l logs -d 'Print the output of detached session NAME (a booted image\'s console), while it runs or after it ended; the last 8 to 16 MiB are kept' -r
complete -c become-root -s m -l mount -d 'New mount namespace; / is made recursively private (see --propagation)'
complete -c become-root -l no-client-address -d 'The servers inside see every client of a published TCP port as 127.0.0.1 (by default they see the client\'s own address and port, through become-root\'s forwarder)'
complete -c become-root -l allow-host-loopback -d 'Let the namespace reach the host\'s loopback (127.0.0.1) through the gateway (10.0.2.2 with slirp4netns, the host\'s gateway address with pasta; with --net=bypass, a connection to the gateway becomes one to the host\'s 127.0.0.1). Off by default: the host\'s loopback services stay out of reach'
complete -c become-root -l ipv6 -d 'IPv6 inside too: fd00::100/64 with slirp4netns (pasta has IPv6 whenever the host has it)'
complete -c become-root -l sysfs -d 'A fresh sysfs, read-only, at /sys on the current root, showing the new network namespace\'s devices (the kernel lets a user namespace mount sysfs only there). Implies --net (mode none) unless --net=MODE is given. Mounts below the host\'s /sys (cgroup, ...) are not carried over. With --rootfs, its /sys is fresh anyway'
complete -c become-root -l no-new-privs -d 'Set no_new_privs for COMMAND: no exec inside gains privilege (set-user-ID bits and file capabilities are ignored)'
complete -c become-root -l drop-groups -d 'Drop the supplementary groups (setgroups(2) to none) before the mounts; by default they are kept, those not mapped showing as nogroup. An error (status 125) where setgroups is denied: with only your own gid mapped (--map=single, --map=auto\'s fallback)'
complete -c become-root -s v -l verbose -d 'Say what become-root chose (id maps, overlay driver) on standard error'
complete -c become-root -l pid -d 'New pid namespace with become-root as its init and a fresh /proc (implies --mount)'
complete -c become-root -l as-pid-1 -d 'With --pid (implied), COMMAND itself is pid 1 of the new pid namespace: no init of become-root\'s inside, which still supervises from outside'
complete -c become-root -l boot -d 'Boot a system image: --pid --as-pid-1 --uts --ipc --cgroup and a network namespace (--net=none unless --net says), with a fresh /sys, tmpfs /run, /dev/console, container=become-root, and SIGRTMIN+3 as the stop signal. Needs --rootfs; COMMAND defaults to /sbin/init there'
complete -c become-root -s u -l uts -d 'New uts namespace (hostname and domain name)'
complete -c become-root -s i -l ipc -d 'New ipc namespace (System V IPC, POSIX message queues)'
complete -c become-root -l cgroup -d 'A cgroup v2 of the run\'s own (a leaf of your cgroup when it is yours, else a scope of your systemd user manager with Delegate=yes), a cgroup namespace rooted there and a writable cgroup2 at /sys/fs/cgroup inside (implies --mount); removed when the run\'s last process is gone'
complete -c become-root -s a -l all -d 'Every namespace: mount, net (mode none), pid, uts, ipc and cgroup (a cgroup namespace only: --cgroup makes the run\'s own cgroup too)'
complete -c become-root -s T -l time -d 'New time namespace: CLOCK_MONOTONIC and CLOCK_BOOTTIME of its own, offset by --monotonic and --boottime (as unshare -T)'
complete -c become-root -l clearenv -d 'Remove every variable but PWD from COMMAND\'s environment, PATH and TERM included (as bubblewrap\'s --clearenv); COMMAND is then looked up in /bin and /usr/bin unless a later --setenv=PATH=... says where'
complete -c become-root -l detach -d 'Return once the namespaces are ready (maps written, mounts done, network up) and keep the session in the background: without COMMAND a pause process holds it until --stop, with COMMAND it lasts as long as COMMAND, whose output goes to NAME.log in the state directory. Needs --name'
complete -c become-root -l containers -d 'Run COMMAND (default: $SHELL, else /bin/sh) in the containers namespace of --map\'s mode, where podman and buildah always run (one per user and map, made on first use): for a shell, a script or make that runs podman. Filesystem options apply when it is made'
complete -c become-root -s q -l quiet -d 'Print no warnings (errors are still printed)'
complete -c become-root -l list -d 'List the running sessions: name, pid, creation time, namespaces, network, state file'
complete -c become-root -l json -d 'With --list: print one JSON object {"state_dir": ..., "sessions": [...]}'
complete -c become-root -l follow -d 'With --logs: go on printing what the session writes until it ends'
complete -c become-root -l check -d 'Report whether become-root can work here, one line per item: ok, warn (an optional feature is unavailable) or FAIL, each with its fix. Exit status 0 when a command could run with the --map given (--map=auto may map only your own ids), 1 when it could not'
complete -c become-root -s h -l help -d 'Print help (see more with \'--help\')'
complete -c become-root -s V -l version -d 'Print version'
