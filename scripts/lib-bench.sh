# lib-bench.sh: shell code the scripts/bench-* share. Sourced, never run.
# shellcheck shell=bash
#
# A benchmark script sets BENCH_NAME (its file name) and BENCH_SUBIDS (START:COUNT for the test
# user) and, if it needs them, BENCH_FUSE=1, BENCH_TUN=1 or BENCH_CGROUP=1, before sourcing
# this file. Its life has three stages, chosen by $_BENCH_STAGE:
#   top      as whoever ran it: find (or build) the binary, make the temporary directory $dir
#            (bench_setup), then, as root, enter a private mount namespace (bench_enter); as a
#            normal user, go straight to measuring;
#   world    root in that namespace: build the hermetic world of DESIGN.md "Testing"
#            (bench_world: a throwaway overlay on /etc with a user `bench`, uid 4242, and
#            BENCH_SUBIDS; a 0666 /dev/fuse with BENCH_FUSE=1; a network namespace of its
#            own with BENCH_NETNS=1) and drop to that user (a script that must stay root,
#            bench-boot, calls bench_world_prepare and drops to the user command by command);
#   measure  as that user (or the normal user): measure.
# Nothing on the machine changes. The script and these libraries are copied into $dir, since
# the bench user may not be able to reach the build tree (/root, 0700).
#
# Benchmarks never fail because of a number: only a broken setup exits non-zero.

readonly BENCH_UID=4242
readonly BENCH_USER=bench
BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly BENCH_LIB_DIR

# What must happen when the script exits, however it exits: bench_on_exit FUNCTION adds one;
# they run last added first (stop the sessions, then remove the directory they live in).
bench_exit_hooks=()
bench_on_exit() {
    bench_exit_hooks+=("$1")
    trap bench_run_exit_hooks EXIT
}
bench_run_exit_hooks() {
    local i
    for ((i = ${#bench_exit_hooks[@]} - 1; i >= 0; i--)); do
        "${bench_exit_hooks[i]}" || true
    done
}

die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}

# A positive integer option, or die naming the option.
bench_positive() {
    [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 wants a positive number, not '$2'"
}

# A non-negative number of seconds (0, 2, 0.5), or die naming the option.
bench_seconds() {
    [[ $2 =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$1 wants a number of seconds, not '$2'"
}

# Sets `binary` to $BECOME_ROOT, else the binary `make build` makes (statically linked, as
# installed; see the Makefile), built when missing. The argument says what a failed build
# does: `required` ends the benchmark, `optional` leaves `binary` empty (the peers are
# measured alone).
bench_find_binary() {
    local root built
    root=$(cd "$BENCH_LIB_DIR/.." && pwd)
    binary=
    if [[ -n ${BECOME_ROOT:-} ]]; then
        [[ -x $BECOME_ROOT ]] || die "BECOME_ROOT=$BECOME_ROOT is not an executable file"
        binary=$(realpath "$BECOME_ROOT")
    else
        built=$(make -s -C "$root" print-built)
        binary=$root/$built/become-root
        if [[ ! -x $binary ]]; then
            echo "$BENCH_NAME: $binary missing; make build" >&2
            if ! make -s -C "$root" build >&2; then
                [[ $1 == optional ]] || die "build failed"
                echo "$BENCH_NAME: build failed; measuring the peers only" >&2
                binary=
                return 0
            fi
        fi
    fi
    # The build is not redone when present: show its age, so a stale one is noticed.
    echo "$BENCH_NAME: become-root is $binary ($(date -r "$binary" '+built %F %T'))"
}

# Makes the temporary directory `dir` (bin, home, run, data, upper, work) and copies into it
# the binary (when `binary` is set; `binary` then names the copy), the script and the libraries.
bench_setup() {
    dir=$(mktemp -d -t "$BENCH_NAME.XXXXXX")
    chmod 0755 "$dir"
    mkdir -p "$dir/bin" "$dir/data" "$dir/home" "$dir/run" "$dir/upper" "$dir/work"
    chmod 0700 "$dir/run"
    if [[ -n ${binary:-} ]]; then
        install -m 0755 "$binary" "$dir/bin/become-root"
        binary=$dir/bin/become-root
    fi
    install -m 0755 "$BENCH_LIB_DIR/$BENCH_NAME" "$dir/$BENCH_NAME"
    install -m 0644 "$BENCH_LIB_DIR/lib-bench.sh" "$BENCH_LIB_DIR/lib_bench.py" \
        "$BENCH_LIB_DIR/floor-launcher.c" "$dir/"
}

# Stage 1 as root: check the tools the world needs, then run this script's copy as stage
# `world` in a private mount namespace, with the arguments given. Not exec: the caller's EXIT
# trap must still clean up once the namespace is gone. Returns its status.
bench_enter() {
    local tool
    for tool in unshare setpriv newuidmap newgidmap mknod python3 ${BENCH_NETNS:+ip}; do
        command -v "$tool" >/dev/null || die "$tool not found (packages util-linux, uidmap," \
            "coreutils, python3${BENCH_NETNS:+, iproute2})"
    done
    chown "$BENCH_UID:$BENCH_UID" "$dir/data" "$dir/home" "$dir/run"
    echo "$BENCH_NAME: hermetic world: user $BENCH_USER (uid $BENCH_UID, subids $BENCH_SUBIDS)," \
        "/etc overlaid${BENCH_FUSE:+ and /dev/fuse 0666} in a private mount" \
        "namespace${BENCH_NETNS:+ and a network namespace of its own}"
    _BENCH_STAGE=world _BENCH_DIR=$dir _BENCH_BIN=${binary:-} \
        unshare -m ${BENCH_NETNS:+-n} --propagation private bash "$dir/$BENCH_NAME" "$@"
}

# Stage 2: root in the private mount namespace. Make /etc writable without touching the real
# one, add the bench user, make /dev/fuse usable (BENCH_FUSE=1), and exec this script's copy
# as stage `measure`, as that user, with the arguments given.
bench_world() {
    bench_world_prepare
    exec setpriv --reuid="$BENCH_UID" --regid="$BENCH_UID" --clear-groups \
        env -i "${bench_user_env[@]}" _BENCH_STAGE=measure _BENCH_DIR="$dir" \
        _BENCH_BIN="${_BENCH_BIN:-}" bash "$dir/$BENCH_NAME" "$@"
}

bench_user_env=()

# All of stage 2 but the drop to the user. With BENCH_NETNS=1, the world's network namespace
# (unshare -n) gets its loopback up.
bench_world_prepare() {
    # Only ever inside the namespace unshare just made: never the machine's own.
    [[ $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]] ||
        die "not in a mount namespace of its own; refusing to mount anything"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$dir/upper,workdir=$dir/work" /etc
    # The topmost mount on /etc must be that overlay before a byte is written there.
    awk -v want="upperdir=$dir/upper," '
        $5 == "/etc" { top = $0 }
        END { exit !(index(top, " - overlay ") && index(top, want)) }' /proc/self/mountinfo ||
        die "/etc is not the overlay on $dir/upper; refusing to write to it"
    echo "$BENCH_USER:x:$BENCH_UID:$BENCH_UID:become-root benchmark:$dir/home:/bin/sh" >>/etc/passwd
    echo "$BENCH_USER:x:$BENCH_UID:" >>/etc/group
    echo "$BENCH_USER:$BENCH_SUBIDS" >>/etc/subuid
    echo "$BENCH_USER:$BENCH_SUBIDS" >>/etc/subgid
    if [[ -n ${BENCH_FUSE:-} ]]; then
        # The machine's node is 0600; a 0666 copy bound over it in this mount namespace only.
        if [[ -c /dev/fuse ]]; then
            mknod -m 0666 "$dir/fuse" c 10 229
            mount --bind "$dir/fuse" /dev/fuse
        else
            echo "$BENCH_NAME: no /dev/fuse on this machine; fuse-overlayfs will be left out" >&2
        fi
    fi
    # BENCH_TUN=1: a 0666 /dev/net/tun (the machine's node is 0600), for slirp4netns and
    # pasta, bound over the real node in this mount namespace only, as the test harness does.
    if [[ -n ${BENCH_TUN:-} ]]; then
        if [[ -c /dev/net/tun ]]; then
            mknod -m 0666 "$dir/tun" c 10 200
            mount --bind "$dir/tun" /dev/net/tun
        else
            echo "$BENCH_NAME: no /dev/net/tun on this machine; networking will fail" >&2
        fi
    fi
    # BENCH_CGROUP=1: the bench user gets a cgroup of its own, as a delegated subtree is (the
    # directory and its cgroup.procs, subtree_control and threads are the user's), seen at
    # /sys/fs/cgroup; its path goes to $dir/cgroup for the clean-up.
    if [[ -n ${BENCH_CGROUP:-} ]]; then
        local cg2 cg
        cg2=$(findmnt -n -t cgroup2 -o TARGET,FSROOT | awk '$2 == "/" { print $1; exit }')
        if [[ -n $cg2 ]]; then
            cg=$cg2/$BENCH_NAME-$$
            mkdir "$cg"
            echo "$cg" >"$dir/cgroup"
            chown "$BENCH_UID:$BENCH_UID" "$cg" "$cg/cgroup.procs" "$cg/cgroup.subtree_control" \
                "$cg/cgroup.threads"
            echo $$ >"$cg/cgroup.procs"
            mount --bind "$cg" /sys/fs/cgroup
        else
            echo "$BENCH_NAME: no cgroup2 on this machine; --cgroup will be left out" >&2
        fi
    fi
    if [[ -n ${BENCH_NETNS:-} ]]; then
        [[ $(readlink /proc/self/ns/net) != "$(readlink /proc/1/ns/net)" ]] ||
            die "not in a network namespace of its own; refusing to configure it"
        ip link set lo up
    fi
    bench_set_user_env
}

# Sets bench_user_env: the bench user's environment, all it has after the drop.
bench_set_user_env() {
    bench_user_env=(HOME="$dir/home" USER="$BENCH_USER" LOGNAME="$BENCH_USER" SHELL=/bin/sh
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR="$dir/run"
        LANG=C.UTF-8)
}

# Prints the uid map a launcher creates, which also proves it works before it is timed; or
# says why it is left out and returns 1. Arguments: NAME LAUNCHER... (COMMAND is appended).
bench_check_tool() {
    local name=$1
    shift
    local out status=0
    out=$("$@" cat /proc/self/uid_map 2>&1) || status=$?
    if [[ $status -eq 0 ]]; then
        printf '  %-28s uid map: %s\n' "$name" \
            "$(awk '{ printf "%s%s %s %s", (NR > 1 ? ", " : ""), $1, $2, $3 }' <<<"$out")"
        return 0
    fi
    printf '  %-28s left out: "%s cat /proc/self/uid_map" exited with %s%s\n' \
        "$name" "$*" "$status" "${out:+:}"
    # shellcheck disable=SC2001 # indents every line
    [[ -z $out ]] || sed 's/^/      /' <<<"$out" | head -n 5
    return 1
}

# Runs a command once; prints ok, or why it is left out and returns 1. Arguments: NAME ARGV...
bench_check_cmd() {
    local name=$1
    shift
    local out status=0
    out=$("$@" 2>&1) || status=$?
    if [[ $status -eq 0 ]]; then
        printf '  %-28s ok\n' "$name"
        return 0
    fi
    printf '  %-28s left out: "%s" exited with %s%s\n' "$name" "$*" "$status" "${out:+: $out}"
    return 1
}

# Lines of the spec lib_bench.py reads (see there), appended to the file $spec:
#   bench_cmd KEY LABEL ARGV...      a command
#   bench_pair KEY_A KEY_B TARGET|-  a pair; added only when both of its commands were
#   bench_ref KEY                    a command timed alone; added only when it was
spec= # the script sets it
declare -A bench_have=()
bench_cmd() {
    local IFS=$'\t'
    bench_have[$1]=1
    echo "cmd${IFS}$*" >>"$spec"
}
bench_pair() {
    local IFS=$'\t'
    [[ -n ${bench_have[$1]:-} && -n ${bench_have[$2]:-} ]] || return 0
    echo "pair${IFS}$*" >>"$spec"
}
bench_ref() {
    [[ -n ${bench_have[$1]:-} ]] || return 0
    printf 'ref\t%s\n' "$1" >>"$spec"
}

# The caller's subordinate ranges in FILE (/etc/subuid or /etc/subgid), by name or uid, in
# file order, as START:COUNT[,START:COUNT]...; empty when there are none.
bench_ranges() {
    awk -F: -v name="$(id -un)" -v uid="$(id -u)" '
        ($1 == name || $1 == uid) && NF == 3 { printf "%s%s:%s", (n++ ? "," : ""), $2, $3 }
    ' "$1"
}

# Builds scripts/floor-launcher.c into $dir/bin/floor-launcher: static when the C library
# allows it, else dynamic, and writes which into $dir/bin/floor-kind; returns 1 when there is
# no compiler or it fails.
bench_build_floor() {
    local src=$dir/floor-launcher.c out=$dir/bin/floor-launcher kind
    command -v gcc >/dev/null || return 1
    if gcc -O2 -static -o "$out" "$src" 2>"$dir/floor.log"; then
        kind=static
    elif gcc -O2 -o "$out" "$src" 2>>"$dir/floor.log"; then
        kind=dynamic
    else
        sed 's/^/    /' "$dir/floor.log" | head -n 5 >&2
        return 1
    fi
    echo "$kind" >"$dir/bin/floor-kind"
}

# Sessions to join (session.rs): bench_session NAME OPTIONS... starts `become-root --name=NAME
# --detach OPTIONS...` (the names are kept for bench_stop_sessions); bench_holder NAME prints
# the pid of the process holding its namespaces (from --list --json).
bench_sessions=()
bench_session() {
    local name=$1
    shift
    bench_sessions+=("$name")
    "$binary" --name="$name" --detach "$@"
}
bench_holder() {
    "$binary" --list --json | python3 -c '
import json, sys
for s in json.load(sys.stdin)["sessions"]:
    if s["name"] == sys.argv[1]:
        print(s["pid"])' "$1"
}
bench_stop_sessions() {
    local name
    for name in "${bench_sessions[@]}"; do
        "$binary" --stop="$name" 2>/dev/null || true
    done
    bench_sessions=()
}

# Runs lib_bench.py on $spec. Arguments: RUNS ROUNDS PAUSE LOADED(0|1).
bench_measure() {
    python3 "$dir/lib_bench.py" "$spec" "$@"
}
