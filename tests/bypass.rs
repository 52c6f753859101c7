//! `--net=bypass` (issue 24): the namespace's outbound TCP and UDP sockets become sockets of
//! the host, answered by become-root's seccomp supervisor. The harness's own network
//! namespace is "the host": servers on its address 192.0.2.2 (the host's own non-loopback
//! address) and on its loopback; nothing leaves the machine. A bypassed socket shows the
//! host's address as its own (getsockname), where one carried by slirp4netns shows
//! 10.0.2.100: that is how each test tells that its connection was bypassed.

mod common;

use common::World;

common::tests! {
    [Harness, Tool("slirp4netns"), Tool("python3"), Tool("ip")]
        i24_tcp_connects_become_host_sockets_and_50_mb_arrive_intact,
        i24_udp_datagrams_and_connected_udp_are_answered_from_the_host,
        i24_connects_from_many_threads_at_once_are_each_bypassed,
        i24_the_host_loopback_stays_closed_unless_allowed,
        i24_a_server_inside_is_reached_only_through_publish,
        i24_a_thread_rewriting_the_address_never_reaches_the_host_loopback,
        i24_dns_goes_through_the_helper_s_forwarder,
        i24_exit_status_is_the_command_s,
        i24_a_join_of_a_bypass_session_is_bypassed_as_the_session_is,
        i24_a_blocking_connect_keeps_its_send_timeout,
        i24_ipv6_connects_and_datagrams_are_bypassed_and_the_v6_loopback_stays_inside,
        i24_bypass_where_a_filter_has_a_listener_already_fails_naming_why;
    [Harness, Tool("slirp4netns"), Tool("python3"), Tool("ip"), Tool("ps")]
        i24_sigkill_of_become_root_leaves_nothing;
}

/// The host's own address in the harness's network namespace.
const HOST: &str = "192.0.2.2";

/// A world with a network namespace of its own and servers on the host's address
/// (tcp-sha256.py on 9100, tcp-echo.py on 9101, udp-echo.py on 9102) and on its loopback
/// (tcp-echo.py on 127.0.0.1:8999, udp-echo.py on 127.0.0.1:8998), and a resolver on
/// 127.0.0.53 answering every name with 10.9.8.7.
fn world() -> World {
    let mut w = World::new();
    w.own_network = true;
    w.env
        .push(("BYPASS_CLIENT".into(), World::helper("bypass-client.py")));
    w.root_setup = "echo 'nameserver 127.0.0.53' > /etc/resolv.conf".into();
    for (script, address, port) in [
        ("tcp-sha256.py", HOST, 9100),
        ("tcp-echo.py", HOST, 9101),
        ("udp-echo.py", HOST, 9102),
        ("tcp-echo.py", "127.0.0.1", 8999),
        ("udp-echo.py", "127.0.0.1", 8998),
        ("fake-dns.py", "127.0.0.53", 53),
    ] {
        let args = match script {
            "fake-dns.py" => format!("{address} 120"),
            _ => format!("{address} {port} 120"),
        };
        w.services
            .push(format!("python3 {} {args}", World::helper(script)));
    }
    w
}

/// The host's own IPv6 address, on the same uplink (a documentation prefix, RFC 3849).
const HOST6: &str = "2001:db8::2";

/// [`world`] with IPv6 too: HOST6 on the uplink, a TCP and a UDP echo server there (9103,
/// 9104) and a TCP one on the host's ::1 (8997).
fn world6() -> World {
    let mut w = world();
    w.root_setup
        .push_str(&format!("\nip -6 addr add {HOST6}/64 dev uplink0 nodad"));
    for (script, address, port) in [
        ("tcp-echo.py", HOST6, 9103),
        ("udp-echo.py", HOST6, 9104),
        ("tcp-echo.py", "::1", 8997),
    ] {
        w.services.push(format!(
            "python3 {} {address} {port} 120",
            World::helper(script)
        ));
    }
    w
}

/// Run the client inside `--net=bypass` (and `extra` options) and return its output.
fn client(w: &World, extra: &[&str], args: &str) -> String {
    let mut argv = vec!["--net=bypass"];
    argv.extend(extra);
    let script = format!("python3 \"$BYPASS_CLIENT\" {args}");
    argv.extend(["sh", "-c", &script]);
    w.run(&argv).ok().to_string()
}

fn i24_tcp_connects_become_host_sockets_and_50_mb_arrive_intact() {
    let w = world();
    let text = client(&w, &[], &format!("sum {HOST} 9100 50"));
    assert!(
        text.contains(&format!("local {HOST}\n")),
        "bypassed: {text}"
    );
    assert!(text.contains("intact\n"), "{text}");
    // The same client through slirp4netns: carried by the helper, not bypassed.
    let out = w.run(&[
        "--net=slirp4netns",
        "sh",
        "-c",
        &format!("python3 \"$BYPASS_CLIENT\" sum {HOST} 9100 1"),
    ]);
    assert!(out.ok().contains("local 10.0.2.100\n"), "{out:#?}");
    w.assert_nothing_left();
}

fn i24_udp_datagrams_and_connected_udp_are_answered_from_the_host() {
    let w = world();
    let text = client(&w, &[], &format!("udp {HOST} 9102"));
    assert!(text.contains("answer echo: one\n"), "sendto: {text}");
    assert!(text.contains("answer echo: two\n"), "connected: {text}");
    assert!(
        text.contains(&format!("local {HOST}\n")),
        "bypassed: {text}"
    );
    // sendmsg(2) with a destination: the socket was replaced by one bound to the uplink.
    assert!(text.contains("answer echo: three\n"), "sendmsg: {text}");
    assert!(text.contains("sent by uplink0\n"), "bypassed: {text}");
}

fn i24_connects_from_many_threads_at_once_are_each_bypassed() {
    let w = world();
    let text = client(&w, &[], &format!("many {HOST} 9100 64"));
    assert!(text.contains("answers 64\n"), "{text}");
    assert!(text.contains(&format!("locals {HOST}\n")), "{text}");
}

fn i24_the_host_loopback_stays_closed_unless_allowed() {
    let w = world();
    // 127.0.0.1 is the namespace's own loopback, where nothing listens; the gateway is the
    // host's loopback only when allowed.
    for (extra, to, want) in [
        (&[][..], "127.0.0.1 8999", "error ECONNREFUSED"),
        (&[][..], "10.0.2.2 8999", "error "),
        (
            &["--allow-host-loopback"][..],
            "10.0.2.2 8999",
            "answer hello from 127.0.0.1",
        ),
        (
            &["--allow-host-loopback"][..],
            "127.0.0.1 8999",
            "error ECONNREFUSED",
        ),
    ] {
        let text = client(&w, extra, &format!("tcp {to}"));
        assert!(text.starts_with(want), "{extra:?} {to}: {text}");
    }
    // A bypassed UDP socket, sent on again to 127.0.0.1: the kernel carries that datagram
    // (sendto continues on the host's socket), and the socket's device keeps it off the
    // host's loopback.
    let text = client(&w, &[], &format!("udp-after {HOST} 9102 127.0.0.1 8998"));
    assert!(text.contains("answer echo: one\n"), "{text}");
    assert!(
        text.contains("silent\n"),
        "the host's loopback answered: {text}"
    );
}

fn i24_ipv6_connects_and_datagrams_are_bypassed_and_the_v6_loopback_stays_inside() {
    let w = world6();
    let text = client(&w, &[], &format!("tcp {HOST6} 9103"));
    assert!(
        text.contains(&format!("answer hello from {HOST6}\nlocal {HOST6}\n")),
        "bypassed: {text}"
    );
    let text = client(&w, &[], &format!("udp {HOST6} 9104"));
    for line in [
        "answer echo: one\n",
        "answer echo: two\n",
        "answer echo: three\n",
        "sent by uplink0\n",
        &format!("local {HOST6}\n"),
    ] {
        assert!(text.contains(line), "{line:?}: {text}");
    }
    // ::1 and an IPv4-mapped loopback are the namespace's own, where nothing listens: the
    // host's servers on them are not reached.
    for to in ["::1 8997", "::ffff:127.0.0.1 8999"] {
        let text = client(&w, &[], &format!("tcp {to}"));
        assert!(text.starts_with("error ECONNREFUSED"), "{to}: {text}");
    }
    w.assert_nothing_left();
}

fn i24_a_join_of_a_bypass_session_is_bypassed_as_the_session_is() {
    let w = world();
    // Without and with a pid namespace: the join execs COMMAND itself, or forks it there.
    for (name, extra) in [("plain", None), ("pid", Some("--pid"))] {
        let mut argv = vec![format!("--name={name}"), "--detach".into()];
        argv.extend(
            ["--net=bypass".to_string()]
                .into_iter()
                .chain(extra.map(String::from)),
        );
        let out = w.run(&argv);
        assert_eq!(out.code(), Some(0), "{name}: {out:#?}");
        let join = format!("--join={name}");
        let text = w
            .run(&[
                join.as_str(),
                "sh",
                "-c",
                &format!("python3 \"$BYPASS_CLIENT\" tcp {HOST} 9101"),
            ])
            .ok()
            .to_string();
        assert!(
            text.contains(&format!("answer hello from {HOST}\nlocal {HOST}\n")),
            "{name}: bypassed: {text}"
        );
        // The session's policy holds for the join: its loopback is its own.
        let text = w
            .run(&[
                join.as_str(),
                "sh",
                "-c",
                "python3 \"$BYPASS_CLIENT\" tcp 127.0.0.1 8999",
            ])
            .ok()
            .to_string();
        assert!(text.starts_with("error ECONNREFUSED"), "{name}: {text}");
        let out = w.run(&[join.as_str(), "sh", "-c", "exit 7"]);
        assert_eq!(out.code(), Some(7), "{name}: {out:#?}");
        assert_eq!(w.run(&[&format!("--stop={name}")]).code(), Some(0));
    }
    w.assert_nothing_left();
}

fn i24_a_blocking_connect_keeps_its_send_timeout() {
    let w = world();
    // Nothing holds 192.0.2.77 on the uplink: the connect waits for an ARP answer that never
    // comes (EHOSTUNREACH after about 3 s). With SO_SNDTIMEO at 1 s, the kernel's blocking
    // connect returns EINPROGRESS first, the connection going on, and so must a bypassed one.
    let text = client(&w, &[], "connect-timeout 192.0.2.77 80 1");
    assert!(text.contains("connect EINPROGRESS\n"), "{text}");
    assert!(
        text.contains(&format!("local {HOST}\n")),
        "bypassed: {text}"
    );
}

fn i24_a_server_inside_is_reached_only_through_publish() {
    let w = world();
    // A server inside on 0.0.0.0: listen(2) stays inside, so the host reaches it only
    // through -p. (--pid: the server ends with the run.)
    // Without -p: nothing on the host's address or loopback at 8000; with -p 18080:8000,
    // the host's 127.0.0.1:18080 reaches it.
    for (publish, port, want) in [
        ("", 8000, "error ECONNREFUSED"),
        ("-p 18080:8000", 18080, "answer hello from 0.0.0.0"),
    ] {
        let script = format!(
            r#""$BR" --net=bypass --pid {publish} sh -c 'python3 {echo} 0.0.0.0 8000 30 & {until} sh -c "python3 \"\$BYPASS_CLIENT\" tcp 127.0.0.1 8000 | grep -q answer" && echo serving > {ready}; wait' &
run=$!
{until} test -s {ready}
python3 "$BYPASS_CLIENT" tcp {HOST} 8000
python3 "$BYPASS_CLIENT" tcp 127.0.0.1 {port}
kill $run; wait"#,
            echo = World::helper("tcp-echo.py"),
            until = World::until(),
            ready = w.home().join(format!("ready-{port}")).display(),
        );
        let out = w.sh(&script);
        let text = out.ok();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.first(),
            Some(&"error ECONNREFUSED"),
            "{publish}: {text}"
        );
        assert_eq!(lines.get(1).copied(), Some(want), "{publish}: {text}");
    }
    // A bypassed socket whose connect failed does not become a server on the host.
    let text = client(&w, &[], &format!("listen-after-refused {HOST} 1"));
    assert!(text.contains("connect ECONNREFUSED\n"), "{text}");
    // (EOPNOTSUPP, which Python names by its other name, ENOTSUP.)
    assert!(text.contains("listen error ENOTSUP"), "{text}");
}

fn i24_a_thread_rewriting_the_address_never_reaches_the_host_loopback() {
    let w = world();
    // connect(2) to the host's 9100 while a thread rewrites the address to 127.0.0.1:8999
    // and back: become-root connects its own copy (tcp-sha256.py answers the digest of
    // nothing), or lets the call continue in the namespace (whose 127.0.0.1:8999 refuses).
    // The host's loopback server ("hello from 127.0.0.1") must never answer.
    let text = client(&w, &[], &format!("race {HOST} 9100 127.0.0.1 8999 400"));
    let nothing = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0";
    assert!(text.contains(nothing), "{text}");
    assert!(!text.contains("hello from 127.0.0.1"), "{text}");
}

fn i24_dns_goes_through_the_helper_s_forwarder() {
    let w = world();
    let out = w.run(&["--net=bypass", "getent", "hosts", "example.com"]);
    assert!(out.ok().starts_with("10.9.8.7"), "{out:#?}");
}

fn i24_exit_status_is_the_command_s() {
    // No services: the harness then execs become-root, whose death by a signal it shows as is.
    let mut w = World::new();
    w.own_network = true;
    for code in [0, 3] {
        let out = w.run(&["--net=bypass", "sh", "-c", &format!("exit {code}")]);
        assert_eq!(out.code(), Some(code), "{out:#?}");
    }
    let out = w.run(&["--net=bypass", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.signal(), Some(15), "{out:#?}");
    w.assert_nothing_left();
}

fn i24_sigkill_of_become_root_leaves_nothing() {
    let w = world();
    // Killed while COMMAND holds a bypassed connection and waits in another connect.
    let script = format!(
        r#""$BR" --net=bypass sh -c 'python3 "$BYPASS_CLIENT" many {HOST} 9100 4; exec sleep 300' & pid=$!
{until} sh -c 'ps -u "$(id -u)" -o args= | grep -qx "sleep 300"'
kill -KILL $pid; wait $pid; echo kill=$?"#,
        until = World::until()
    );
    let out = w.sh(&script);
    assert!(out.ok().contains("kill=137"), "{out:#?}");
    let left = w.wait_no_leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
    // A join of a bypass session (no pid namespace, so nothing of the session's would end
    // its COMMAND): its COMMAND dies with the become-root that answers for it.
    let out = w.run(&["--name=kj", "--detach", "--net=bypass"]);
    assert_eq!(out.code(), Some(0), "{out:#?}");
    let script = format!(
        r#""$BR" --join=kj sh -c 'exec sleep 301' & pid=$!
{until} sh -c 'ps -u "$(id -u)" -o args= | grep -qx "sleep 301"'
kill -KILL $pid; wait $pid; echo kill=$?"#,
        until = World::until()
    );
    let out = w.sh(&script);
    assert!(out.ok().contains("kill=137"), "{out:#?}");
    assert_eq!(w.run(&["--stop=kj"]).code(), Some(0));
    let left = w.wait_no_leftovers();
    assert!(left.is_empty(), "left behind by the join: {left:?}");
}

fn i24_bypass_where_a_filter_has_a_listener_already_fails_naming_why() {
    // The kernel allows one listener in a process's chain of filters: a --net=bypass run
    // inside another is refused before anything starts, with status 125 and why.
    let mut w = World::new();
    w.own_network = true;
    let inner = w.bin().display().to_string();
    let out = w.run(&["--net=bypass", &inner, "--net=bypass", "true"]);
    assert_eq!(out.code(), Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("become-root: network: --net=bypass: a seccomp filter with a listener is refused here: a filter above this process has a listener already"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("hint: "), "{out:#?}");
}
