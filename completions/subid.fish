# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_subid_global_optspecs
    string join \n h/help V/version
end

function __fish_subid_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_subid_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_subid_using_subcommand
    set -l cmd (__fish_subid_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c subid -n "__fish_subid_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c subid -n "__fish_subid_needs_command" -s V -l version -d 'Print version'
complete -c subid -n "__fish_subid_needs_command" -f -a "show" -d 'Every subordinate uid and gid range of a user, with totals and their source'
complete -c subid -n "__fish_subid_needs_command" -f -a "check" -d 'Audit the files: overlaps, ranges over existing accounts, lines newuidmap misreads'
complete -c subid -n "__fish_subid_needs_command" -f -a "next" -d 'Propose the next range to allocate, above every range ever allocated'
complete -c subid -n "__fish_subid_needs_command" -f -a "scan" -d 'Find set-user-ID and set-group-ID files owned by subordinate ids'
complete -c subid -n "__fish_subid_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c subid -n "__fish_subid_using_subcommand show" -l subuid -d 'The subordinate uid file [default: /etc/subuid]' -r -F
complete -c subid -n "__fish_subid_using_subcommand show" -l subgid -d 'The subordinate gid file [default: /etc/subgid]' -r -F
complete -c subid -n "__fish_subid_using_subcommand show" -l passwd -d 'The account file to find USER in [default: the system\'s account database]' -r -F
complete -c subid -n "__fish_subid_using_subcommand show" -l subid-source -d 'Where ranges come from: files, getsubids (libsubid), or auto (getsubids when /etc/nsswitch.conf has a subid line); --subuid or --subgid mean files' -r -f -a "auto\t'getsubids when /etc/nsswitch.conf has a subid line, else the files'
files\t'/etc/subuid and /etc/subgid'
getsubids\t'the getsubids program (libsubid)'"
complete -c subid -n "__fish_subid_using_subcommand show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c subid -n "__fish_subid_using_subcommand check" -l subuid -d 'The subordinate uid file [default: /etc/subuid]' -r -F
complete -c subid -n "__fish_subid_using_subcommand check" -l subgid -d 'The subordinate gid file [default: /etc/subgid]' -r -F
complete -c subid -n "__fish_subid_using_subcommand check" -l passwd -d 'The account file whose uids ranges must avoid [default: /etc/passwd]' -r -F
complete -c subid -n "__fish_subid_using_subcommand check" -l group -d 'The group file whose gids ranges must avoid [default: /etc/group]' -r -F
complete -c subid -n "__fish_subid_using_subcommand check" -l json -d 'Print the findings as one JSON object'
complete -c subid -n "__fish_subid_using_subcommand check" -s h -l help -d 'Print help'
complete -c subid -n "__fish_subid_using_subcommand next" -l count -d 'How many ids the range has' -r
complete -c subid -n "__fish_subid_using_subcommand next" -l subuid -d 'The subordinate uid file [default: /etc/subuid]' -r -F
complete -c subid -n "__fish_subid_using_subcommand next" -l subgid -d 'The subordinate gid file [default: /etc/subgid]' -r -F
complete -c subid -n "__fish_subid_using_subcommand next" -l passwd -d 'The account file whose uids ranges must avoid [default: /etc/passwd]' -r -F
complete -c subid -n "__fish_subid_using_subcommand next" -l group -d 'The group file whose gids ranges must avoid [default: /etc/group]' -r -F
complete -c subid -n "__fish_subid_using_subcommand next" -s h -l help -d 'Print help'
complete -c subid -n "__fish_subid_using_subcommand scan" -l subuid -d 'The subordinate uid file [default: /etc/subuid]' -r -F
complete -c subid -n "__fish_subid_using_subcommand scan" -l subgid -d 'The subordinate gid file [default: /etc/subgid]' -r -F
complete -c subid -n "__fish_subid_using_subcommand scan" -l one-file-system -d 'Stay on the filesystem of each PATH (the default)'
complete -c subid -n "__fish_subid_using_subcommand scan" -l cross-filesystems -d 'Descend into other filesystems mounted below PATH'
complete -c subid -n "__fish_subid_using_subcommand scan" -l follow-symlinks -d 'Follow symbolic links below PATH (a PATH that is itself a link is always followed)'
complete -c subid -n "__fish_subid_using_subcommand scan" -s h -l help -d 'Print help'
complete -c subid -n "__fish_subid_using_subcommand help; and not __fish_seen_subcommand_from show check next scan help" -f -a "show" -d 'Every subordinate uid and gid range of a user, with totals and their source'
complete -c subid -n "__fish_subid_using_subcommand help; and not __fish_seen_subcommand_from show check next scan help" -f -a "check" -d 'Audit the files: overlaps, ranges over existing accounts, lines newuidmap misreads'
complete -c subid -n "__fish_subid_using_subcommand help; and not __fish_seen_subcommand_from show check next scan help" -f -a "next" -d 'Propose the next range to allocate, above every range ever allocated'
complete -c subid -n "__fish_subid_using_subcommand help; and not __fish_seen_subcommand_from show check next scan help" -f -a "scan" -d 'Find set-user-ID and set-group-ID files owned by subordinate ids'
complete -c subid -n "__fish_subid_using_subcommand help; and not __fish_seen_subcommand_from show check next scan help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
