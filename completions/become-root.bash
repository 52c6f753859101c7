_become__root() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="become__root"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        become__root)
            opts="-m -n -p -v -u -i -a -T -q -h -V --map --map-users --map-groups --subid-source --mount --propagation --net --publish --port-driver --no-client-address --allow-host-loopback --mtu --cidr --ipv6 --dns --bind --ro-bind --tmpfs --copy-up --overlay --overlay-driver --rootfs --sysfs --chdir --cap-add --cap-drop --uid --gid --no-new-privs --drop-groups --info-fd --verbose --pid --as-pid-1 --boot --notify-ready --stop-timeout --uts --ipc --cgroup --memory --memory-swap --cpus --pids-limit --all --emulate --time --monotonic --boottime --hostname --setenv --unsetenv --clearenv --device --name --detach --containers --quiet --unpublish --join --list --json --stop --logs --follow --check --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --map)
                    COMPREPLY=($(compgen -W "auto full single keep-id subids" -- "${cur}"))
                    return 0
                    ;;
                --map-users)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --map-groups)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --subid-source)
                    COMPREPLY=($(compgen -W "auto files getsubids" -- "${cur}"))
                    return 0
                    ;;
                --propagation)
                    COMPREPLY=($(compgen -W "private slave" -- "${cur}"))
                    return 0
                    ;;
                --net)
                    COMPREPLY=($(compgen -W "none slirp4netns pasta auto bypass" -- "${cur}"))
                    return 0
                    ;;
                -n)
                    COMPREPLY=($(compgen -W "none slirp4netns pasta auto bypass" -- "${cur}"))
                    return 0
                    ;;
                --publish)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -p)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --port-driver)
                    COMPREPLY=($(compgen -W "builtin helper" -- "${cur}"))
                    return 0
                    ;;
                --mtu)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cidr)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dns)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --bind)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ro-bind)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tmpfs)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --copy-up)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --overlay)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --overlay-driver)
                    COMPREPLY=($(compgen -W "auto native fuse" -- "${cur}"))
                    return 0
                    ;;
                --rootfs)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --chdir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cap-add)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cap-drop)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --uid)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --gid)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --info-fd)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --notify-ready)
                    COMPREPLY=($(compgen -W "auto yes no" -- "${cur}"))
                    return 0
                    ;;
                --stop-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --memory)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --memory-swap)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cpus)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --pids-limit)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --emulate)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --monotonic)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --boottime)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --hostname)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --setenv)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --unsetenv)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --device)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --unpublish)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --join)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --stop)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --logs)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _become__root -o nosort -o bashdefault -o default become-root
else
    complete -F _become__root -o bashdefault -o default become-root
fi
