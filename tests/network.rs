//! Network tests: the connected modes (slirp4netns, pasta, auto) through the hermetic harness,
//! as an unprivileged user. Tests that need "the host's" loopback or resolver give the
//! harness a network namespace of its own, so every packet stays inside namespaces the test
//! made.

mod common;

use common::{Out, World};

common::tests! {
    [Harness, Tool("slirp4netns"), Tool("pasta"), Tool("python3"), Tool("ip")]
        each_mode_has_an_address_a_default_route_and_its_resolv_conf,
        resolv_conf_is_replaced_through_a_symlink_and_only_inside,
        dns_works_through_the_helpers_forwarder_when_the_host_uses_127_0_0_53,
        host_loopback_is_refused_by_default_and_reachable_with_the_flag,
        allow_host_loopback_needs_net,
        missing_helper_names_it_and_its_package,
        a_failing_helper_is_reported_with_its_stderr_and_nothing_is_left,
        a_helper_that_never_gets_ready_times_out_and_is_killed,
        an_inaccessible_tun_device_is_named,
        exit_status_signals_and_descriptors_are_unchanged_in_supervise_mode,
        published_tcp_and_udp_ports_serve_requests_in_every_mode,
        published_port_on_ipv6_and_to_a_server_on_ipv6_inside,
        host_port_0_picks_a_free_port_and_reports_it,
        port_errors_come_before_the_command_runs,
        helper_port_driver_serves_tcp_and_udp_with_each_helper,
        helper_port_driver_errors,
        network_helpers_get_only_their_own_descriptors,
        slirp4netns_and_pasta_variables_name_the_helper_that_runs,
        sysfs_shows_the_connected_modes_interface,
        a_helper_variable_naming_nothing_is_an_error_naming_it,
        i22_cidr_ipv6_and_dns_set_the_addresses_routes_and_resolvers_inside,
        i22_bad_cidr_and_dns_values_are_refused_before_anything_starts,
        i22_a_tcp_server_inside_sees_the_clients_own_address_unless_told_not_to,
        i22_ports_are_published_and_unpublished_while_a_session_runs_and_list_shows_them,
        i22_live_port_errors_change_nothing,
        i22_live_ports_through_slirp4netns_s_api_and_a_clear_refusal_from_pasta;
    [Harness, Tool("slirp4netns"), Tool("pasta"), Tool("python3"), Tool("ip"), Tool("ps")]
        sigterm_and_sigkill_to_become_root_leave_no_helper;
    [Harness, Tool("slirp4netns"), Tool("pasta"), Tool("ps")]
        no_helper_outlives_a_run_and_a_port_is_free_for_the_next_at_once;
    [Harness, Tool("slirp4netns"), Tool("pasta"), Tool("python3"), Tool("ip"), Tool("ps"), Tool("script")]
        ctrl_c_ends_the_run_and_leaves_no_helper_and_job_control_works;
    [Harness, Tool("python3")]
        connections_at_once_each_get_their_own_answer_and_the_half_close,
        connections_beyond_the_open_files_limit_wait_their_turn,
        a_stuck_or_deaf_server_inside_holds_up_no_other_connection,
        udp_clients_at_once_each_get_their_own_echoes_and_a_first_burst_arrives,
        sigkill_while_connections_are_being_made_inside_leaves_no_provider,
        a_client_reset_ends_its_connection_while_the_server_does_not_read;
}

/// The connected modes, with the gateway address through which the host is reached.
const MODES: &[(&str, &str)] = &[("slirp4netns", "10.0.2.2"), ("pasta", "192.0.2.1")];

fn world() -> World {
    World::new()
}

/// A world with a network namespace of its own, a resolver on 127.0.0.53 answering every
/// name with 10.9.8.7, and a TCP server on 127.0.0.1:8999.
fn world_with_host_services() -> World {
    let mut w = world();
    w.own_network = true;
    w.root_setup = "echo 'nameserver 127.0.0.53' > /etc/resolv.conf".into();
    w.services.push(format!(
        "python3 {} 127.0.0.53 60",
        World::helper("fake-dns.py")
    ));
    w.services.push(format!(
        "python3 {} 127.0.0.1 8999 60",
        World::helper("tcp-echo.py")
    ));
    w
}

fn each_mode_has_an_address_a_default_route_and_its_resolv_conf() {
    let mut w = world();
    w.own_network = true; // pasta copies the uplink; give it the harness's dummy one
    for (mode, forwarder) in [
        ("slirp4netns", "10.0.2.3"),
        ("pasta", "169.254.1.1"),
        ("auto", "169.254.1.1"),
    ] {
        let out = w.run(&[
            &format!("--net={mode}"),
            "sh",
            "-c",
            // (/sys/class/net shows the host's interfaces: sysfs was mounted outside)
            "ip -o -4 addr show scope global; ip route show default; cat /etc/resolv.conf; \
             ip -o link | grep -v ' lo:' | grep -o 'mtu [0-9]*'",
        ]);
        let text = out.ok();
        assert!(text.contains("inet "), "{mode}: an address: {text}");
        assert!(
            text.contains("default via"),
            "{mode}: a default route: {text}"
        );
        assert!(
            text.contains(&format!("nameserver {forwarder}\n")),
            "{mode}: {text}"
        );
        assert!(
            text.trim_end().ends_with("mtu 65520"),
            "{mode}: MTU 65520 by default: {text}"
        );
    }
    for (mode, _) in MODES {
        let out = w.run(&[
            &format!("--net={mode}"),
            "--mtu=1500",
            "sh",
            "-c",
            "ip -o link | grep -v ' lo:'",
        ]);
        assert!(out.ok().contains("mtu 1500"), "{mode}: {out:#?}");
    }
}

fn resolv_conf_is_replaced_through_a_symlink_and_only_inside() {
    let mut w = world();
    w.own_network = true;
    let stub = w.dir.join("stub-resolv.conf");
    std::fs::write(&stub, "nameserver 127.0.0.53\n").unwrap();
    // As with systemd-resolved: /etc/resolv.conf is a symlink to the stub file.
    w.root_setup = format!("ln -sf {} /etc/resolv.conf", stub.display());
    for (mode, _) in MODES {
        let out = w.run(&[&format!("--net={mode}"), "cat", "/etc/resolv.conf"]);
        let text = out.ok();
        assert!(text.contains("generated by become-root"), "{mode}: {text}");
        assert!(!text.contains("127.0.0.53"), "{mode}: {text}");
        // Read-only, and the tmpfs it came from is attached nowhere (it was, over /, only
        // for the moment of the bind that old kernels need): one mount at /, and one tmpfs
        // mount for the file, the bind itself.
        let script = "echo x >> /etc/resolv.conf 2>/dev/null && echo WRITABLE; \
                      awk '$5 == \"/\"' /proc/self/mountinfo | wc -l; \
                      grep -c resolv.conf /proc/self/mountinfo";
        let out = w.run(&[&format!("--net={mode}"), "sh", "-c", script]);
        assert_eq!(out.ok(), "1\n1\n", "{mode}: {out:#?}");
    }
    assert_eq!(
        std::fs::read_to_string(&stub).unwrap(),
        "nameserver 127.0.0.53\n"
    );
}

fn dns_works_through_the_helpers_forwarder_when_the_host_uses_127_0_0_53() {
    let w = world_with_host_services();
    for (mode, _) in MODES {
        let out = w.run(&[&format!("--net={mode}"), "getent", "hosts", "example.test"]);
        assert!(out.ok().starts_with("10.9.8.7"), "{mode}: {out:#?}");
    }
}

fn host_loopback_is_refused_by_default_and_reachable_with_the_flag() {
    let w = world_with_host_services();
    for (mode, gateway) in MODES {
        let connect = format!("timeout 5 bash -c 'cat < /dev/tcp/{gateway}/8999'");
        let closed = w.run(&[&format!("--net={mode}"), "sh", "-c", &connect]);
        assert!(
            !closed.status.success(),
            "{mode}: host loopback reachable by default: {closed:#?}"
        );
        assert!(!closed.stdout.contains("hello"), "{mode}: {closed:#?}");
        let open = w.run(&[
            &format!("--net={mode}"),
            "--allow-host-loopback",
            "sh",
            "-c",
            &connect,
        ]);
        assert_eq!(open.ok(), "hello from 127.0.0.1\n", "{mode}");
    }
}

fn allow_host_loopback_needs_net() {
    let w = world();
    let out = w.run(&["--allow-host-loopback", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("--net"), "{}", out.stderr);
}

/// A world whose PATH has only a directory of stand-ins (`bin` in the user's home).
fn world_with_path(stand_ins: &[(&str, &str)]) -> World {
    let mut w = world();
    let bin = w.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, script) in stand_ins {
        let path = bin.join(name);
        common::write_executable(&path, format!("#!/bin/sh\n{script}\n"), 0o755);
    }
    w.env.push(("PATH".into(), bin.display().to_string()));
    w
}

fn missing_helper_names_it_and_its_package() {
    let w = world_with_path(&[]);
    for (mode, program, package) in [
        ("slirp4netns", "slirp4netns", "slirp4netns"),
        ("pasta", "pasta", "passt"),
        ("auto", "pasta nor slirp4netns", "passt"),
    ] {
        let out = w.run(&[&format!("--net={mode}"), "/bin/true"]);
        assert_eq!(out.code(), Some(125), "{mode}: {out:#?}");
        assert!(
            out.stderr.starts_with("become-root: network: "),
            "{mode}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(program), "{mode}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("apt install {package}")),
            "{mode}: {}",
            out.stderr
        );
    }
}

/// Issue 22: --cidr moves the namespace off 10.0.2.0/24 (which clashes with networks users
/// are on), --ipv6 gives slirp4netns's namespace its IPv6 address and route before COMMAND
/// starts, --dns names the resolver; --verbose says what was set up.
fn i22_cidr_ipv6_and_dns_set_the_addresses_routes_and_resolvers_inside() {
    let mut w = world();
    w.own_network = true; // pasta copies the uplink; give it the harness's dummy one
    let show = "ip -o addr show scope global | awk '{print $4}'; ip route show default; \
                ip -6 route show default | cut -d' ' -f1-5; grep nameserver /etc/resolv.conf";
    for (mode, extra, expected) in [
        (
            "slirp4netns",
            "--ipv6",
            "10.42.0.100/24\nfd00::100/64\ndefault via 10.42.0.2 dev tap0 \n\
             default via fd00::2 dev tap0\nnameserver 10.42.0.3\nnameserver fd00::3\n",
        ),
        (
            "pasta",
            "--dns=192.0.2.53",
            "10.42.0.100/24\ndefault via 10.42.0.2 dev uplink0 \nnameserver 192.0.2.53\n",
        ),
    ] {
        let out = w.run(&[
            &format!("--net={mode}"),
            "--cidr=10.42.0.0/24",
            extra,
            "--verbose",
            "sh",
            "-c",
            show,
        ]);
        assert_eq!(out.ok(), expected, "{mode}: {out:#?}");
        assert!(
            out.stderr.contains(&format!(
                "become-root: network: {mode} 10.42.0.100/24 via 10.42.0.2"
            )),
            "{mode}: {}",
            out.stderr
        );
    }
    // And nothing of it without the options: slirp4netns's 10.0.2.0/24, IPv4 only.
    let out = w.run(&["--net=slirp4netns", "sh", "-c", show]);
    assert_eq!(
        out.ok(),
        "10.0.2.100/24\ndefault via 10.0.2.2 dev tap0 \nnameserver 10.0.2.3\n"
    );
    // --check shows them as a run would set them up.
    let out = w.run(&[
        "--check",
        "--net=slirp4netns",
        "--cidr=10.42.0.0/24",
        "--ipv6",
    ]);
    assert!(
        out.stdout.contains(
            "ok    network: slirp4netns 10.42.0.100/24 via 10.42.0.2, IPv6 fd00::100/64, \
             DNS 10.42.0.3 fd00::3\n"
        ),
        "{out:#?}"
    );
    no_helper_left(&w, "after --cidr");
}

fn i22_bad_cidr_and_dns_values_are_refused_before_anything_starts() {
    let w = world();
    for (args, says) in [
        (
            &["--net=slirp4netns", "--cidr=10.42.0.1/24"][..],
            "host bits are set",
        ),
        (&["--net=slirp4netns", "--cidr=10.42.0.0/26"][..], "1 to 25"),
        (
            &["--net=pasta", "--cidr=127.0.0.0/8"][..],
            "not a unicast network",
        ),
        (
            &["--net=slirp4netns", "--dns=resolver"][..],
            "not an IP address",
        ),
        (
            &["--net=none", "--ipv6"][..],
            "need --net=slirp4netns, pasta or auto",
        ),
    ] {
        let mut argv = args.to_vec();
        argv.push("true");
        let out = w.run(&argv);
        assert_eq!(out.code(), Some(125), "{args:?}: {out:#?}");
        assert!(
            out.stderr.starts_with("become-root: network: ") && out.stderr.contains(says),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("\nhint: "), "{args:?}: {}", out.stderr);
    }
    let out = w.run(&["--cidr=10.42.0.0/24", "true"]);
    assert_eq!(out.code(), Some(125), "--cidr without --net: {out:#?}");
}

fn sysfs_shows_the_connected_modes_interface() {
    let mut w = world();
    w.own_network = true; // pasta copies the uplink; give it the harness's dummy one
    for (mode, devices) in [("slirp4netns", "lo\ntap0\n"), ("pasta", "lo\nuplink0\n")] {
        let out = w.run(&["--sysfs", &format!("--net={mode}"), "ls", "/sys/class/net"]);
        assert_eq!(out.ok(), devices, "{mode}");
    }
    assert!(w.wait_no_leftovers().is_empty());
}

/// A wrapper for `program` in the world's directory: it appends its name to `log` (in the test
/// user's home), then execs the real program with its arguments and descriptors.
fn recording_wrapper(w: &World, program: &str, log: &std::path::Path) -> String {
    let real = common::which(program).unwrap();
    let path = w.dir.join(format!("wrapped-{program}"));
    common::write_executable(
        &path,
        format!(
            "#!/bin/sh\necho {program} >> {}\nexec {} \"$@\"\n",
            log.display(),
            real.display()
        ),
        0o755,
    );
    path.display().to_string()
}

fn slirp4netns_and_pasta_variables_name_the_helper_that_runs() {
    let mut w = world();
    w.own_network = true; // pasta copies the uplink; give it the harness's dummy one
    let log = w.home().join("helpers-run");
    for (var, program) in [("SLIRP4NETNS", "slirp4netns"), ("PASTA", "pasta")] {
        let _ = std::fs::remove_file(&log);
        w.env = vec![(var.into(), recording_wrapper(&w, program, &log))];
        let out = w.run(&[
            &format!("--net={program}"),
            "--verbose",
            "sh",
            "-c",
            "ip -o -4 addr show scope global",
        ]);
        assert!(out.ok().contains("inet "), "{program}: connected: {out:#?}");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap_or_default(),
            format!("{program}\n"),
            "{var}'s program ran, once"
        );
        assert!(
            out.stderr
                .contains(&format!("wrapped-{program} (from {var})")),
            "--verbose says which program and why: {}",
            out.stderr
        );
    }
    // --net=auto looks for pasta through PASTA too.
    let _ = std::fs::remove_file(&log);
    w.env = vec![("PASTA".into(), recording_wrapper(&w, "pasta", &log))];
    w.run(&["--net=auto", "true"]).ok();
    assert_eq!(std::fs::read_to_string(&log).unwrap_or_default(), "pasta\n");
    assert!(w.wait_no_leftovers().is_empty());
}

fn a_helper_variable_naming_nothing_is_an_error_naming_it() {
    let mut w = world();
    let not_executable = w.dir.join("plain-file");
    std::fs::write(&not_executable, "").unwrap();
    let not_executable = not_executable.display().to_string();
    for (var, mode, value, why) in [
        (
            "SLIRP4NETNS",
            "slirp4netns",
            "/nonexistent/slirp4netns",
            "no such file",
        ),
        ("PASTA", "pasta", "/nonexistent/pasta", "no such file"),
        ("PASTA", "auto", "/nonexistent/pasta", "no such file"),
        ("SLIRP4NETNS", "slirp4netns", "/", "not a regular file"),
        ("PASTA", "pasta", not_executable.as_str(), "not executable"),
    ] {
        w.env = vec![(var.into(), value.into())];
        let out = w.run(&[&format!("--net={mode}"), "true"]);
        assert_eq!(out.code(), Some(125), "{var} {mode}: {out:#?}");
        assert!(
            out.stderr
                .starts_with(&format!("become-root: network: {var}={value}: {why}\n")),
            "{var} {mode}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("hint: set {var} to the path")),
            "{var} {mode}: {}",
            out.stderr
        );
    }
    // Set but not needed: nothing looks at it.
    w.env = vec![("SLIRP4NETNS".into(), "/nonexistent/slirp4netns".into())];
    assert_eq!(w.run(&["--net", "true"]).code(), Some(0));
}

fn a_failing_helper_is_reported_with_its_stderr_and_nothing_is_left() {
    let w = world_with_path(&[
        ("slirp4netns", "echo 'cannot open tap: boom' >&2; exit 3"),
        ("pasta", "echo 'pasta: boom' >&2; exit 4"),
    ]);
    for (mode, status) in [("slirp4netns", "3"), ("pasta", "4")] {
        let out = w.run(&[&format!("--net={mode}"), "/bin/true"]);
        assert_eq!(out.code(), Some(125), "{mode}: {out:#?}");
        assert!(
            out.stderr.contains("boom"),
            "{mode}: keeps stderr: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("exit status: {status}")),
            "{mode}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("hint: "), "{mode}: {}", out.stderr);
    }
    // --net=bypass lets the namespace process set itself up while its helper starts: COMMAND
    // still never runs without the helper.
    let out = w.run(&["--net=bypass", "sh", "-c", "echo ran > ran"]);
    assert_eq!(out.code(), Some(125), "bypass: {out:#?}");
    assert!(out.stderr.contains("exit status: 3"), "{}", out.stderr);
    assert!(!w.home().join("ran").exists(), "COMMAND ran: {out:#?}");
    assert!(
        w.wait_no_leftovers().is_empty(),
        "{:?}",
        w.leftover_processes()
    );
}

fn a_helper_that_never_gets_ready_times_out_and_is_killed() {
    let w = world_with_path(&[("slirp4netns", "exec /bin/sleep 300")]);
    for mode in ["slirp4netns", "bypass"] {
        let out = w.run(&[&format!("--net={mode}"), "sh", "-c", "echo ran > ran"]);
        assert_eq!(out.code(), Some(125), "{mode}: {out:#?}");
        assert!(
            out.stderr.contains("not ready after 10 s"),
            "{mode}: {}",
            out.stderr
        );
        assert!(!w.home().join("ran").exists(), "{mode}: COMMAND ran");
    }
    assert!(
        w.wait_no_leftovers().is_empty(),
        "{:?}",
        w.leftover_processes()
    );
}

fn an_inaccessible_tun_device_is_named() {
    let mut w = world();
    // A 0600 root-owned copy over the usable one, as on this machine before the harness.
    w.root_setup = format!(
        "mknod -m 600 {0}/tun600 c 10 200 && mount --bind {0}/tun600 /dev/net/tun",
        w.dir.display()
    );
    let out = w.run(&["--net=slirp4netns", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("/dev/net/tun: Permission denied"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("chmod 0666 /dev/net/tun"),
        "{}",
        out.stderr
    );
}

fn no_helper_left(w: &World, text: &str) {
    let left = w.wait_no_leftovers();
    assert!(left.is_empty(), "left behind: {left:?}; {text}");
}

fn exit_status_signals_and_descriptors_are_unchanged_in_supervise_mode() {
    let mut w = world();
    w.own_network = true;
    for (mode, _) in MODES {
        let net = format!("--net={mode}");
        for code in [0, 1, 42, 255] {
            let out = w.run(&[&net, "sh", "-c", &format!("exit {code}")]);
            assert_eq!(out.code(), Some(code), "{mode}: {out:#?}");
        }
        let out = w.run(&[&net, "sh", "-c", "kill -TERM $$"]);
        assert_eq!(out.signal(), Some(15), "{mode}: same death: {out:#?}");
        let out = w.run(&[&net, "no-such-command-xyz"]);
        assert_eq!(out.code(), Some(127), "{mode}: {out:#?}");
        let script = format!(
            "exec 5</dev/null 9<>/dev/null; a=$(ls /proc/self/fd | sort | tr '\\n' ' '); \
             b=$(\"$BR\" {net} ls /proc/self/fd | sort | tr '\\n' ' '); echo \"$a\"; echo \"$b\""
        );
        let out = w.sh(&script);
        let lines: Vec<&str> = out.ok().lines().collect();
        assert_eq!(lines[0], lines[1], "{mode}: fd sets differ");
        no_helper_left(&w, mode);
    }
}

fn sigterm_and_sigkill_to_become_root_leave_no_helper() {
    let mut w = world();
    w.own_network = true;
    for (mode, _) in MODES {
        // Each kill comes once COMMAND runs, the network set up.
        let script = format!(
            r#""$BR" --net={mode} sleep 300 & pid=$!
{until} sh -c 'ps -u "$(id -u)" -o args= | grep -qx "sleep 300"'
kill -TERM $pid; wait $pid; echo term=$?
"$BR" --net={mode} sleep 301 & pid=$!
{until} sh -c 'ps -u "$(id -u)" -o args= | grep -qx "sleep 301"'
kill -KILL $pid; wait $pid; echo kill=$?"#,
            until = World::until()
        );
        let out = w.sh(&script);
        let text = out.ok();
        assert!(text.contains("term=143"), "{mode}: {text}");
        assert!(text.contains("kill=137"), "{mode}: {text}");
        no_helper_left(&w, mode);
    }
}

fn script_run(w: &World, input_script: &str) -> Out {
    w.sh(&format!("{input_script} | script -qec \"$CMD\" /dev/null"))
}

fn ctrl_c_ends_the_run_and_leaves_no_helper_and_job_control_works() {
    let mut w = world();
    w.own_network = true;
    // Input is typed once what it is for runs: ^C once the command sleeps, the lines once the
    // interactive shell inside has started (script(1) waits for its command after its input
    // ends).
    let until = World::until();
    for (mode, _) in MODES {
        w.env.retain(|(k, _)| k != "CMD");
        w.env.push((
            "CMD".into(),
            format!("\"$BR\" --net={mode} sh -c 'echo READY; sleep 300'"),
        ));
        let out = script_run(
            &w,
            &format!(
                "({until} sh -c 'ps -u \"$(id -u)\" -o args= | grep -qx \"sleep 300\"'; \
                 printf '\\003')"
            ),
        );
        assert!(out.stdout.contains("READY"), "{mode}: {out:#?}");
        no_helper_left(&w, mode);

        // An interactive shell on the terminal keeps job control.
        w.env.retain(|(k, _)| k != "CMD");
        w.env
            .push(("CMD".into(), format!("\"$BR\" --net={mode} sh -i")));
        let input = "case $- in *m*) echo MONITOR-ON;; esac; sleep 0.3 & jobs; wait; \
                     (sleep 0.2; echo FG-DONE) & fg; exit 3";
        let out = script_run(
            &w,
            &format!(
                "({until} sh -c 'ps -u \"$(id -u)\" -o args= | grep -qx \"sh -i\"'; echo {})",
                common::shell_quote(input)
            ),
        );
        let text = &out.stdout;
        assert!(text.contains("MONITOR-ON"), "{mode}: {out:#?}");
        assert!(text.contains("[1]"), "{mode}: {out:#?}");
        assert!(text.contains("FG-DONE"), "{mode}: {out:#?}");
        assert!(!text.contains("no job control"), "{mode}: {out:#?}");
        no_helper_left(&w, mode);
    }
}

// ---- published ports ------------------------------------------------------------------------

/// Run a server inside become-root with `args`, then `client` from outside (the test user's
/// side), and return what the client printed and become-root's stderr.
fn publish_and_call(w: &World, args: &str, server: &str, client: &str) -> (Out, String) {
    let err = w.home().join("become-root.err");
    let script = format!(
        "\"$BR\" {args} {server} 2>{err} & pid=$!; {client}; status=$?; \
         kill -TERM $pid; wait $pid; exit $status",
        err = err.display()
    );
    let out = w.sh(&script);
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    (out, stderr)
}

fn helper(name: &str) -> String {
    format!("python3 {}", World::helper(name))
}

/// Start session `name` in `mode` with -p 18080:8000, serving TCP on 8000 and 9000 and UDP on
/// 5300 inside for `lifetime` seconds, its --info-fd to ~/NAME.info.
fn live_session_script(name: &str, mode: &str, lifetime: u32) -> String {
    format!(
        "\"$BR\" --name={name} --detach --net={mode} -p 18080:8000 --info-fd=3 sh -c '\
         {peer} 127.0.0.1 8000 {lifetime} & {peer} 127.0.0.1 9000 {lifetime} & \
         {udp} 127.0.0.1 5300 {lifetime} & wait' 3>\"$HOME/{name}.info\" || exit 1\n",
        peer = helper("tcp-peer.py"),
        udp = helper("udp-echo.py"),
    )
}

/// One attempt to connect, no retry: "refused" or "connected".
const CONNECT_ONCE: &str = "python3 -c 'import socket,sys\n\
     try: socket.create_connection((\"127.0.0.1\", int(sys.argv[1])), timeout=3); print(\"connected\")\n\
     except ConnectionRefusedError: print(\"refused\")'";

/// Issue 22 (podman #29727, rootlesskit #14): a running session's ports are fixed at start
/// on main (--join takes no --publish there: "cannot be used with"). Now --join=NAME
/// --publish adds ports while the servers inside run, --unpublish closes them (the host port is
/// free at once), --list, --list --json and --info-fd show them as they are, in both helpers.
fn i22_ports_are_published_and_unpublished_while_a_session_runs_and_list_shows_them() {
    let mut w = world();
    w.own_network = true;
    let client = helper("client.py");
    for mode in ["slirp4netns", "pasta"] {
        let script = format!(
            "{start}\
             {client} tcp 127.0.0.1 18080 || exit 1\n\
             \"$BR\" --join=web --publish=18090:9000 --publish=18091:5300/udp || exit 1\n\
             \"$BR\" --list | awk 'NR > 1 {{print $6}}'\n\
             {client} tcp 127.0.0.1 18090 && {client} udp 127.0.0.1 18091 live && echo\n\
             \"$BR\" --join=web --unpublish=18090:9000 || exit 1\n\
             {once} 18090\n\
             \"$BR\" --list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"sessions\"][0][\"ports\"])'\n\
             {client} tcp 127.0.0.1 18080\n\
             \"$BR\" --join=web --publish=18090:9000 && {client} tcp 127.0.0.1 18090\n\
             \"$BR\" --stop=web\n\
             grep '\"event\":\"ports\"' \"$HOME/web.info\" | tail -n 1\n",
            start = live_session_script("web", mode, 60),
            once = CONNECT_ONCE,
        );
        let out = w.sh(&script);
        assert_eq!(
            out.ok(),
            "peer 127.0.0.1\n\
             127.0.0.1:18080->8000/tcp,127.0.0.1:18090->9000/tcp,127.0.0.1:18091->5300/udp\n\
             peer 127.0.0.1\necho: live\n\
             refused\n\
             ['127.0.0.1:18080->8000/tcp', '127.0.0.1:18091->5300/udp']\n\
             peer 127.0.0.1\n\
             peer 127.0.0.1\n\
             {\"event\":\"ports\",\"ports\":[\
             {\"host\":\"127.0.0.1:18080\",\"ns_port\":8000,\"proto\":\"tcp\"},\
             {\"host\":\"127.0.0.1:18091\",\"ns_port\":5300,\"proto\":\"udp\"},\
             {\"host\":\"127.0.0.1:18090\",\"ns_port\":9000,\"proto\":\"tcp\"}]}\n",
            "{mode}"
        );
        assert!(out.stderr.is_empty(), "{mode}: {}", out.stderr);
    }
    no_helper_left(&w, "after live ports");
}

/// Bad specs, a port in use, a port not published, a COMMAND given too, a session without a
/// network namespace, one that does not exist: each a clear error (125), and the session's
/// ports are as they were.
fn i22_live_port_errors_change_nothing() {
    let mut w = world();
    w.own_network = true;
    let script = format!(
        "{start}\
         \"$BR\" --name=plain --detach || exit 1\n\
         for args in --publish=bad --publish=18080:9000 --unpublish=18099:9000 \
                     --unpublish=0:8000 '--publish=18090:9000 true'; do\n\
             \"$BR\" --join=web $args 2>&1; echo \"status $?\"\n\
         done\n\
         \"$BR\" --join=plain --publish=18090:9000 2>&1; echo \"status $?\"\n\
         \"$BR\" --join=nosuch --publish=18090:9000 2>&1; echo \"status $?\"\n\
         \"$BR\" --list | awk '$1 == \"web\" {{print $6}}'\n\
         {once} 18090\n\
         \"$BR\" --stop=web; \"$BR\" --stop=plain\n",
        start = live_session_script("web", "slirp4netns", 60),
        once = CONNECT_ONCE,
    );
    let out = w.sh(&script);
    let text = out.ok();
    for says in [
        "become-root: network: --publish bad: expected [HOST_IP:]HOST_PORT:NS_PORT",
        "become-root: network: --publish 127.0.0.1:18080:9000/tcp: the port is already in use \
         on the host",
        "become-root: session web: --unpublish=127.0.0.1:18099:9000/tcp: 127.0.0.1:18099:9000/tcp \
         is not published here (the session's ports: 127.0.0.1:18080->8000/tcp)",
        "become-root: session web: --unpublish=127.0.0.1:0:8000/tcp: name the host port it has",
        "become-root: usage: --join with --publish or --unpublish takes no COMMAND",
        "become-root: session plain: it has no network namespace of its own",
        "become-root: session nosuch: no such session",
    ] {
        assert!(text.contains(says), "{says:?} in {text}");
    }
    assert_eq!(text.matches("status 125\n").count(), 7, "{text}");
    assert!(
        text.ends_with("127.0.0.1:18080->8000/tcp\nrefused\n"),
        "{text}"
    );
    no_helper_left(&w, "after live port errors");
}

/// --port-driver=helper: slirp4netns takes live ports through its API socket (add_hostfwd,
/// remove_hostfwd), with a new run's refusals (UDP while the host's loopback is closed);
/// Debian 12's pasta has no port API, which the refusal says. A session started without -p
/// takes them too.
fn i22_live_ports_through_slirp4netns_s_api_and_a_clear_refusal_from_pasta() {
    let mut w = world();
    w.own_network = true;
    let client = helper("client.py");
    let script = format!(
        "\"$BR\" --name=h --detach --net=slirp4netns --port-driver=helper -p 18080:8000 \
             sh -c '{peer} 0.0.0.0 8000 60 & {peer} 0.0.0.0 9000 60 & wait' || exit 1\n\
         \"$BR\" --join=h --publish=18090:9000 || exit 1\n\
         {client} tcp 127.0.0.1 18090\n\
         \"$BR\" --join=h --publish=18091:5300/udp 2>&1; echo \"status $?\"\n\
         \"$BR\" --join=h --unpublish=18080:8000 || exit 1\n\
         {once} 18080\n\
         \"$BR\" --list | awk '$1 == \"h\" {{print $6}}'\n\
         \"$BR\" --stop=h\n\
         \"$BR\" --name=h0 --detach --net=slirp4netns --port-driver=helper \
             {peer} 0.0.0.0 9000 60 || exit 1\n\
         \"$BR\" --join=h0 --publish=18092:9000 && {client} tcp 127.0.0.1 18092\n\
         \"$BR\" --stop=h0\n\
         \"$BR\" --name=p --detach --net=pasta --port-driver=helper -p 18080:8000 sleep 60\n\
         \"$BR\" --join=p --publish=18090:9000 2>&1; echo \"status $?\"\n\
         \"$BR\" --stop=p\n",
        peer = helper("tcp-peer.py"),
        once = CONNECT_ONCE,
    );
    let out = w.sh(&script);
    assert_eq!(
        out.ok(),
        // slirp4netns forwards to the namespace's address: the server sees its gateway.
        "peer 10.0.2.2\n\
         become-root: session h: --publish 127.0.0.1:18091:5300/udp: slirp4netns drops the \
         replies of forwarded UDP while the host's loopback is closed; use \
         --port-driver=builtin, or add --allow-host-loopback\n\
         status 125\n\
         refused\n\
         127.0.0.1:18090->9000/tcp\n\
         peer 10.0.2.2\n\
         become-root: session p: its ports are forwarded by pasta (--port-driver=helper), \
         which takes no ports while it runs (this pasta has no port API)\n\
         hint: publish ports when starting it (-p), with the builtin port driver (the \
         default); or stop it (--stop=p) and start it again\n\
         status 125\n"
    );
    no_helper_left(&w, "after live ports through the helper");
}

/// Issue 22 (rootlesskit #155, #558): the builtin forwarder showed every client to the server
/// inside as 127.0.0.1. Now a client on another address of the host (192.0.2.3, a second
/// address of the harness's own network namespace) is seen as itself, in every mode, also
/// through the provider (a server on ::1 only: the IPv4 connection is refused at once and the
/// provider goes on to ::1, where an IPv4 address cannot be kept); --no-client-address gives
/// the old behaviour.
fn i22_a_tcp_server_inside_sees_the_clients_own_address_unless_told_not_to() {
    let mut w = world();
    w.own_network = true;
    w.root_setup = "ip addr add 192.0.2.3/24 dev uplink0".into();
    let client = helper("client.py");
    for mode in ["none", "slirp4netns", "pasta"] {
        for (option, server, from_3, from_local) in [
            ("", "127.0.0.1", "peer 192.0.2.3", "peer 127.0.0.1"),
            (
                "--no-client-address",
                "127.0.0.1",
                "peer 127.0.0.1",
                "peer 127.0.0.1",
            ),
            ("", "::1", "peer ::1", "peer ::1"),
        ] {
            let (out, err) = publish_and_call(
                &w,
                &format!("--net={mode} {option} -p 192.0.2.2:18080:8000 -p 18081:8000"),
                &format!("{} {server} 8000 8", helper("tcp-peer.py")),
                &format!(
                    "{client} tcp 192.0.2.2 18080 --from 192.0.2.3 && \
                     {client} tcp 127.0.0.1 18081"
                ),
            );
            assert_eq!(
                out.stdout,
                format!("{from_3}\n{from_local}\n"),
                "{mode} {option} server on {server}: {out:#?} {err}"
            );
        }
    }
    no_helper_left(&w, "after keeping client addresses");
}

fn published_tcp_and_udp_ports_serve_requests_in_every_mode() {
    let mut w = world();
    w.own_network = true;
    for mode in ["none", "slirp4netns", "pasta"] {
        let tcp = format!("{} 127.0.0.1 8000 8", helper("tcp-echo.py"));
        let (out, err) = publish_and_call(
            &w,
            &format!("--net={mode} -p 18080:8000"),
            &tcp,
            &format!("{} tcp 127.0.0.1 18080", helper("client.py")),
        );
        assert_eq!(
            out.stdout, "hello from 127.0.0.1\n",
            "{mode}/tcp: {out:#?} {err}"
        );

        let udp = format!("{} 127.0.0.1 5300 8", helper("udp-echo.py"));
        let (out, err) = publish_and_call(
            &w,
            &format!("--net={mode} -p 15300:5300/udp"),
            &udp,
            &format!("{} udp 127.0.0.1 15300 hi-{mode}", helper("client.py")),
        );
        assert_eq!(
            out.stdout,
            format!("echo: hi-{mode}"),
            "{mode}/udp: {out:#?} {err}"
        );
    }
    no_helper_left(&w, "after publishing");
}

fn published_port_on_ipv6_and_to_a_server_on_ipv6_inside() {
    let mut w = world();
    // "The host's" [::1]:18086 is the harness's own, not the machine's, which other tests
    // (another checkout's) may be using.
    w.own_network = true;
    let tcp = format!("{} ::1 8000 8", helper("tcp-echo.py"));
    let (out, err) = publish_and_call(
        &w,
        "-n -p [::1]:18086:8000",
        &tcp,
        &format!("{} tcp ::1 18086", helper("client.py")),
    );
    assert_eq!(out.stdout, "hello from ::1\n", "{out:#?} {err}");
}

fn host_port_0_picks_a_free_port_and_reports_it() {
    let w = world();
    let err = w.home().join("err");
    let script = format!(
        "\"$BR\" -n -p 0:8000 {server} 2>{err} & pid=$!; \
         {until} grep -q published {err}; \
         port=$(sed -n 's/.*published 127.0.0.1:\\([0-9]*\\) -> 8000\\/tcp$/\\1/p' {err}); \
         echo port=$port; {client} tcp 127.0.0.1 $port; wait $pid",
        server = format_args!("{} 127.0.0.1 8000 5", helper("tcp-echo.py")),
        client = helper("client.py"),
        err = err.display(),
        until = World::until(),
    );
    let out = w.sh(&script);
    let text = out.ok();
    let port: u16 = text
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("port=")
        .parse()
        .expect(text);
    assert!(port > 0);
    assert!(text.ends_with("hello from 127.0.0.1\n"), "{text}");
    // --quiet keeps it to itself
    let out = w.run(&["-q", "-n", "-p", "0:8000", "true"]);
    assert_eq!(out.stderr, "", "{out:#?}");
}

fn port_errors_come_before_the_command_runs() {
    let mut w = world();
    // Something already listens on 127.0.0.1:18081 (as root, in the harness's namespace).
    w.own_network = true;
    w.services.push(format!(
        "python3 {} 127.0.0.1 18081 30",
        World::helper("tcp-echo.py")
    ));
    let marker = w.home().join("command-ran");
    let touch = format!("touch {}", marker.display());
    let rows: &[(&str, &str)] = &[
        ("18081:80", "18081:80/tcp: the port is already in use"),
        ("80:80", "ports below 1024 need privilege"),
        ("abc", "abc: expected [HOST_IP:]HOST_PORT:NS_PORT"),
        ("8080:0", "cannot be 0"),
        ("8080:65536", "'65536' is not a port number"),
        ("8080:80/sctp", "unknown protocol 'sctp'"),
        ("::1:8080:80", "must be in brackets"),
        ("192.0.2.77:8080:80", "no such address"),
    ];
    for (spec, want) in rows {
        let out = w.run(&["-n", "-p", spec, "sh", "-c", &touch]);
        assert_eq!(out.code(), Some(125), "{spec}: {out:#?}");
        assert!(
            out.stderr.starts_with("become-root: network: --publish "),
            "{spec}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(want), "{spec}: {}", out.stderr);
        assert!(out.stderr.contains("hint: "), "{spec}: {}", out.stderr);
        assert!(!marker.exists(), "{spec}: the command ran");
    }
    let out = w.run(&["-n", "-p", "8080:80", "-p", "8080:81", "sh", "-c", &touch]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(out.stderr.contains("twice"), "{}", out.stderr);
    let out = w.run(&["-p", "8080:80", "sh", "-c", &touch]);
    assert_eq!(out.code(), Some(125), "needs --net: {out:#?}");
    assert!(out.stderr.contains("--net"), "{}", out.stderr);
    assert!(!marker.exists());
    no_helper_left(&w, "after port errors");
}

fn helper_port_driver_serves_tcp_and_udp_with_each_helper() {
    let mut w = world();
    w.own_network = true;
    // slirp4netns's API socket goes in a private directory here, which must be empty after.
    let runtime = w.home().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    nix::unistd::chown(&runtime, Some(w.uid.into()), Some(w.gid.into())).unwrap();
    w.env
        .push(("XDG_RUNTIME_DIR".into(), runtime.display().to_string()));
    let err = w.home().join("err");
    for mode in ["slirp4netns", "pasta"] {
        // The helpers forward to the namespace's interface: the servers listen on 0.0.0.0.
        let servers = format!(
            "sh -c '{tcp} 0.0.0.0 8000 20 & {udp} 0.0.0.0 5300 20; wait'",
            tcp = helper("tcp-echo.py"),
            udp = helper("udp-echo.py")
        );
        // (slirp4netns answers forwarded UDP only with host loopback open, pasta not at all;
        // see the errors test)
        let udp = if mode == "slirp4netns" {
            "-p 0:5300/udp"
        } else {
            ""
        };
        let script = format!(
            "\"$BR\" --pid --net={mode} --allow-host-loopback --port-driver=helper -p 18089:8000 \
             {udp} {servers} \
             2>{err} & pid=$!; \
             {until} grep -q published {err}; \
             port=$(sed -n 's/.*published 127.0.0.1:\\([0-9]*\\) -> 5300\\/udp$/\\1/p' {err}); \
             {client} tcp 127.0.0.1 18089; [ -z \"$port\" ] || {client} udp 127.0.0.1 $port via-{mode}; \
             kill -TERM $pid; wait $pid",
            err = err.display(),
            client = helper("client.py"),
            until = World::until(),
        );
        let out = w.sh(&script);
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        let want = match mode {
            "slirp4netns" => "hello from 0.0.0.0\necho: via-slirp4netns",
            _ => "hello from 0.0.0.0\n",
        };
        assert_eq!(out.stdout, want, "{mode}: {out:#?} {stderr}");
        let left: Vec<_> = std::fs::read_dir(&runtime).unwrap().collect();
        assert!(left.is_empty(), "{mode}: API socket left behind: {left:?}");
    }
    no_helper_left(&w, "helper driver");
}

fn helper_port_driver_errors() {
    let mut w = world();
    w.own_network = true;
    w.services.push(format!(
        "python3 {} 127.0.0.1 18082 30",
        World::helper("tcp-echo.py")
    ));
    let out = w.run(&["-n", "--port-driver=helper", "-p", "8080:80", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr
            .contains("--port-driver=helper needs --net=slirp4netns, pasta or auto"),
        "{}",
        out.stderr
    );
    for mode in ["slirp4netns", "pasta"] {
        let out = w.run(&[
            &format!("--net={mode}"),
            "--port-driver=helper",
            "-p",
            "18082:80",
            "true",
        ]);
        assert_eq!(out.code(), Some(125), "{mode}: {out:#?}");
        assert!(
            out.stderr.contains("already in use"),
            "{mode}: {}",
            out.stderr
        );
    }
    let out = w.run(&[
        "--net=slirp4netns",
        "--port-driver=helper",
        "-p",
        "0:53/udp",
        "true",
    ]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("drops the replies of forwarded UDP"),
        "{}",
        out.stderr
    );
    let out = w.run(&[
        "--net=pasta",
        "--port-driver=helper",
        "-p",
        "0:53/udp",
        "true",
    ]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("--port-driver=builtin"),
        "{}",
        out.stderr
    );
    let out = w.run(&[
        "--net=slirp4netns",
        "--port-driver=helper",
        "-p",
        "[::1]:18083:80",
        "true",
    ]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("IPv4 host addresses only"),
        "{}",
        out.stderr
    );
    no_helper_left(&w, "helper driver errors");
}

fn network_helpers_get_only_their_own_descriptors() {
    // A stand-in helper records its descriptors, then fails. The caller's 7 and 9 (say, a make
    // jobserver) must not be there; slirp4netns gets exactly its ready (3) and exit (4) pipes,
    // and pasta none (its readiness is a pid file it opens by path).
    let record = "/proc/self/fd";
    let w = world_with_path(&[
        (
            "slirp4netns",
            &format!("/bin/ls {record} > \"$HOME/slirp4netns-fds\"; exit 1"),
        ),
        (
            "pasta",
            &format!("/bin/ls {record} > \"$HOME/pasta-fds\"; exit 1"),
        ),
    ]);
    for mode in ["slirp4netns", "pasta"] {
        let out = w.sh(&format!(
            "exec 7</dev/null 9>/dev/null; \"$BR\" --net={mode} /bin/true"
        ));
        assert_eq!(out.code(), Some(125), "{mode}: {out:#?}");
        let fds = std::fs::read_to_string(w.home().join(format!("{mode}-fds"))).unwrap();
        let mut fds: Vec<u32> = fds.lines().map(|l| l.parse().unwrap()).collect();
        fds.sort();
        // (ls opens one more for the directory it lists)
        let want: &[u32] = if mode == "slirp4netns" {
            &[0, 1, 2, 3, 4, 5]
        } else {
            &[0, 1, 2, 3]
        };
        assert_eq!(fds, want, "{mode}: descriptors of the helper");
    }
}

// ---- the forwarder under load (one event loop for every connection, requests pipelined) ----

/// `tests/helpers/forward-load.py serve`: an echo server on 8000 (reads to the client's
/// half-close, answers with the length and SHA-256, echoes), one on 8001 that never reads and
/// one on 8002 that never accepts.
fn load_server() -> String {
    format!(
        "{} serve 127.0.0.1 8000 8001 8002 30",
        helper("forward-load.py")
    )
}

fn connections_at_once_each_get_their_own_answer_and_the_half_close() {
    // Replies of the provider are matched to requests by id: a mix-up would hand a client
    // another's server. 200 connections at once, then a few of 4 MiB each way: every byte
    // arrives, to its own client, and each client's end reaches the server as its end.
    let w = world();
    let load = helper("forward-load.py");
    let (out, err) = publish_and_call(
        &w,
        "--net=none -p 18090:8000",
        &load_server(),
        &format!(
            "{load} clients 127.0.0.1 18090 200 2000 && {load} clients 127.0.0.1 18090 3 4194304"
        ),
    );
    assert_eq!(out.stdout, "ok 200\nok 3\n", "{out:#?} {err}");
    no_helper_left(&w, "connections at once");
}

fn connections_beyond_the_open_files_limit_wait_their_turn() {
    // With a hard limit of 128 open files (the forwarder cannot raise it), 100 connections at
    // once need more descriptors than become-root may have: the forwarder accepts as many as
    // its descriptors allow and the rest wait in the listener's backlog; none fails.
    let w = world();
    let load = helper("forward-load.py");
    let err = w.home().join("become-root.err");
    let script = format!(
        "(ulimit -n 128 && exec \"$BR\" --net=none -p 18098:8000 {server}) 2>{err} & pid=$!; \
         {load} clients 127.0.0.1 18098 100 2000; status=$?; kill -TERM $pid; wait $pid; \
         exit $status",
        server = load_server(),
        err = err.display()
    );
    let out = w.sh(&script);
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(out.stdout, "ok 100\n", "{out:#?} {stderr}");
    no_helper_left(&w, "connections beyond the open-files limit");
}

fn a_stuck_or_deaf_server_inside_holds_up_no_other_connection() {
    // One thread serves every connection: a destination that never reads must not block it,
    // and neither may connections inside that never complete (the provider's connect waits 5 s
    // for each; one request at a time, five of them would hold up the next for 25 s).
    let w = world();
    let (out, err) = publish_and_call(
        &w,
        "--net=none -p 18091:8000 -p 18092:8001 -p 18093:8002",
        &load_server(),
        &format!(
            "{} stuck 127.0.0.1 18091 18092 18093",
            helper("forward-load.py")
        ),
    );
    assert!(out.stdout.starts_with("ok answered"), "{out:#?} {err}");
    no_helper_left(&w, "stuck and deaf servers");
}

fn a_client_reset_ends_its_connection_while_the_server_does_not_read() {
    // The direction client -> server waits for the server to read, so it does not look at
    // the client's socket: its reset must still end the connection (and reach the server),
    // not leave both sockets and a full pipe behind until the server closes.
    let w = world();
    let script = format!(
        "\"$BR\" --net=none -p 18096:8000 -p 18097:8001 {server} & pid=$!; \
         {load} reset 127.0.0.1 18096 18097 $pid; status=$?; kill -TERM $pid; wait $pid; \
         exit $status",
        server = load_server(),
        load = helper("forward-load.py"),
    );
    let out = w.sh(&script);
    assert_eq!(out.stdout, "ok\n", "{out:#?}");
    no_helper_left(&w, "after a client's reset");
}

fn udp_clients_at_once_each_get_their_own_echoes_and_a_first_burst_arrives() {
    // 16 clients send 8 datagrams each at once: the datagrams that come while a client's
    // socket inside is on its way are held, not lost, and every echo goes to its own client.
    let w = world();
    let (out, err) = publish_and_call(
        &w,
        "--net=none -p 15301:5300/udp",
        &format!("{} 127.0.0.1 5300 20", helper("udp-echo.py")),
        &format!("{} udp 127.0.0.1 15301 16 8", helper("forward-load.py")),
    );
    assert_eq!(out.stdout, "ok 16x8\n", "{out:#?} {err}");
    no_helper_left(&w, "UDP clients at once");
}

fn sigkill_while_connections_are_being_made_inside_leaves_no_provider() {
    // The provider has connections inside in flight (to a server that never accepts) and
    // answers still to send when become-root dies: it leaves all the same, when its channel
    // closes.
    let w = world();
    let (err, said) = (w.home().join("err"), w.home().join("client"));
    let script = format!(
        "\"$BR\" --net=none -p 18094:8000 -p 18095:8002 {server} 2>{err} & pid=$!; \
         {load} deaf 127.0.0.1 18094 18095 >{said} & client=$!; \
         {until} grep -q ok {said}; \
         kill -KILL $pid; wait $pid; echo killed=$?; wait $client; cat {said}",
        server = load_server(),
        load = helper("forward-load.py"),
        err = err.display(),
        said = said.display(),
        until = World::until(),
    );
    let out = w.sh(&script);
    assert_eq!(out.stdout, "killed=137\nok\n", "{out:#?}");
    no_helper_left(&w, "after SIGKILL with connections in flight");
}

fn no_helper_outlives_a_run_and_a_port_is_free_for_the_next_at_once() {
    let mut w = world();
    w.own_network = true;
    // As the README promises and a script finds: the moment become-root returns, its helper
    // is gone (ps right after it, no wait; a zombie is dead already), and the next run
    // publishes the same port.
    for mode in ["slirp4netns", "pasta"] {
        let out = w.sh(&format!(
            "\"$BR\" --net={mode} true; ps -o pid=,ppid=,stat=,comm= -u {uid} >ps.out; \
             awk '$3 !~ /^Z/ && $4 == \"{mode}\"' ps.out | wc -l; cat ps.out >&2",
            uid = w.uid
        ));
        assert_eq!(out.stdout, "0\n", "{mode} outlived the run: {out:#?}");
    }
    for (net, driver) in [
        ("none", "builtin"),
        ("slirp4netns", "builtin"),
        ("pasta", "builtin"),
        ("slirp4netns", "helper"),
        ("pasta", "helper"),
    ] {
        let out = w.sh(&format!(
            "for i in $(seq 10); do \"$BR\" --net={net} --port-driver={driver} -p 18095:80 true \
               || echo \"run $i failed\"; done"
        ));
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("", ""),
            "--net={net} --port-driver={driver}: {out:#?}"
        );
    }
}
