//! Tests of the middlebox chain (`connpool_testkit::netns`): real network
//! namespaces, real conntrack, real nftables. They need Linux and root, and
//! fail (never skip) without them.
//!
//! No sleep has to "line up": forgetting a flow is observed in the
//! middlebox's conntrack table ([`NetChain::wait_forgotten`]), the server's
//! processing in its request counter. The only fixed waits are the "no
//! answer within SILENCE" checks, whose point is that nothing happens, and
//! the keepalive test's idle period, whose point is its length.
#![cfg(target_os = "linux")]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use connpool_testkit::http::{HttpServer, HttpServerBuilder};
use connpool_testkit::netns::{Forgotten, NetChain};
use connpool_testkit::{TcpState, tcp_info, tcp_state};

/// A request and the server's exact answer to it.
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
/// How long "no answer" must last to count as silence. The first
/// retransmission happens after at least 200 ms (the kernel's minimum RTO).
const SILENCE: Duration = Duration::from_millis(1500);
/// Upper bound for anything that should happen "soon".
const WAIT: Duration = Duration::from_secs(10);

/// A chain with `timeout` and `forgotten`, its HTTP server, and a client
/// connection that has completed one exchange.
fn chain_with_connection(
    timeout: Duration,
    forgotten: Forgotten,
) -> (NetChain, HttpServer, TcpStream) {
    let chain = NetChain::builder()
        .established_timeout(timeout)
        .forgotten(forgotten)
        .start()
        .expect("building the namespace chain (needs root, ip, nft)");
    let server = chain
        .start_http_server(HttpServerBuilder::default())
        .expect("server in the server namespace");
    let mut client = chain
        .connect_from_client(server.addr())
        .expect("connecting through the middlebox");
    exchange(&mut client);
    assert_eq!(server.requests(), 1);
    (chain, server, client)
}

/// Writes [`GET`] and reads exactly [`OK`], within [`WAIT`].
fn exchange(client: &mut TcpStream) {
    client.set_read_timeout(Some(WAIT)).unwrap();
    client.write_all(GET).unwrap();
    let mut response = vec![0; OK.len()];
    client.read_exact(&mut response).unwrap();
    assert_eq!(response, OK, "{}", String::from_utf8_lossy(&response));
}

/// Reads once, waiting at most `wait`; returns the outcome and how long it
/// took.
///
/// A read with a timeout (`SO_RCVTIMEO`) can fail with `EINTR` when a child
/// process exits, even with no `SIGCHLD` handler: the `ip` and `nft`
/// processes that chains in parallel tests run do that. So `Interrupted`
/// means "read again, for the time left" (see the `netns` module docs).
fn read_within(client: &mut TcpStream, wait: Duration) -> (io::Result<usize>, Duration) {
    let mut buf = [0; 256];
    let started = Instant::now();
    loop {
        let left = wait.saturating_sub(started.elapsed());
        if left.is_zero() {
            let timed_out = io::Error::new(io::ErrorKind::TimedOut, "nothing to read");
            return (Err(timed_out), started.elapsed());
        }
        client.set_read_timeout(Some(left)).unwrap();
        match client.read(&mut buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => return (result, started.elapsed()),
        }
    }
}

/// Whether a read error means "nothing arrived in time".
fn timed_out(result: &io::Result<usize>) -> bool {
    matches!(result, Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Waits (bounded by [`WAIT`]) until `condition` holds.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < WAIT, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The names `ip netns list` shows.
fn listed_namespaces() -> String {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("running `ip netns list`");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn is_listed(listing: &str, name: &str) -> bool {
    // Lines look like `cp-1-0-m (id: 3)` or just `cp-1-0-m`.
    listing
        .lines()
        .any(|line| line.split_whitespace().next() == Some(name))
}

/// 1. The chain forwards: a raw GET from the client namespace reaches the
///    server namespace through the middlebox, which tracks the flow, and
///    the server sees the client's own address (no NAT).
#[test]
fn a_request_goes_through_the_middlebox() {
    let (chain, server, client) = chain_with_connection(Duration::from_secs(60), Forgotten::Drop);
    let local = client.local_addr().unwrap();
    assert_eq!(local.ip(), chain.client_addr());
    assert_eq!(server.addr().ip(), chain.server_addr());

    let flows = chain.tracked_flows().unwrap();
    let flow = flows
        .iter()
        .find(|flow| flow.client == local)
        .unwrap_or_else(|| panic!("flow from {local} not tracked: {flows:?}"));
    assert_eq!(flow.server, server.addr());
    assert_eq!(flow.state, "ESTABLISHED");
    assert!(flow.expires_in <= Duration::from_secs(60));
    assert!(chain.conntrack_count().unwrap() >= 1);
}

/// 2. Drop mode: once the middlebox forgot the idle flow, a request written
///    into the connection vanishes. The client's socket still says
///    ESTABLISHED, nothing comes back, the kernel retransmits unacknowledged
///    data, and the server never sees the request. The retransmissions do
///    not re-create the flow (`nf_conntrack_tcp_loose=0`).
#[test]
fn drop_mode_a_forgotten_flow_goes_silent() {
    let (chain, server, mut client) =
        chain_with_connection(Duration::from_secs(1), Forgotten::Drop);
    let local = client.local_addr().unwrap();

    let forgotten_after = chain.wait_forgotten(local, WAIT).unwrap();
    eprintln!("drop mode: flow forgotten {forgotten_after:?} after the exchange");
    assert_eq!(tcp_state(&client).unwrap(), TcpState::Established);

    client.write_all(GET).unwrap();
    let (result, waited) = read_within(&mut client, SILENCE);
    assert!(timed_out(&result), "expected silence, got {result:?}");

    let info = tcp_info(&client).unwrap();
    eprintln!("drop mode: after {waited:?} of silence: {info:?}");
    assert_eq!(info.state, TcpState::Established);
    assert!(info.unacked > 0, "{info:?}");
    assert!(info.total_retrans > 0, "{info:?}");
    assert_eq!(
        server.requests(),
        1,
        "the request must not reach the server"
    );
    assert!(
        !chain.tracks(local).unwrap(),
        "retransmissions re-created the flow"
    );
}

/// 3. Reset mode: the same, but the middlebox answers the request with an
///    RST, so the client's read fails at once with ECONNRESET; the server
///    still never sees the request.
#[test]
fn reset_mode_a_forgotten_flow_is_reset() {
    let (chain, server, mut client) =
        chain_with_connection(Duration::from_secs(1), Forgotten::Reset);
    let local = client.local_addr().unwrap();

    let forgotten_after = chain.wait_forgotten(local, WAIT).unwrap();
    eprintln!("reset mode: flow forgotten {forgotten_after:?} after the exchange");

    client.write_all(GET).unwrap();
    let (result, waited) = read_within(&mut client, WAIT);
    eprintln!("reset mode: read ended after {waited:?}: {result:?}");
    match result {
        Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}"),
        Ok(n) => panic!("expected a reset, read {n} bytes"),
    }
    assert!(waited < Duration::from_secs(1), "the reset took {waited:?}");
    assert_eq!(tcp_state(&client).unwrap(), TcpState::Close);
    assert_eq!(
        server.requests(),
        1,
        "the request must not reach the server"
    );
    // The server was not told: its side of the connection is still open.
    assert_eq!(server.open_connections(), 1);
}

/// 4. Blackhole: the server processes a request, then the path goes silent
///    before its (delayed) response gets through. No answer arrives while
///    the blackhole is on; once it is off, the server's retransmission
///    delivers the response, and the connection works again.
#[test]
fn blackhole_silences_the_path_until_lifted() {
    let (chain, server, mut client) =
        chain_with_connection(Duration::from_secs(60), Forgotten::Drop);

    // The server counts the request as soon as it has read it, then waits
    // 1 s before answering: the blackhole goes on in between.
    client
        .write_all(b"GET /slow-headers?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    wait_until("the server processed the request", || {
        server.requests() == 2
    });
    let started = Instant::now();
    chain.blackhole(true).unwrap();
    let blackhole_took = started.elapsed();
    assert!(
        blackhole_took < Duration::from_millis(900),
        "turning the blackhole on took {blackhole_took:?}: the response may have got out first"
    );

    let (result, _) = read_within(&mut client, SILENCE);
    assert!(timed_out(&result), "expected silence, got {result:?}");
    assert_eq!(server.requests(), 2);

    chain.blackhole(false).unwrap();
    chain.blackhole(false).unwrap(); // idempotent
    let lifted = Instant::now();
    client.set_read_timeout(Some(WAIT)).unwrap();
    let mut response = vec![0; OK.len()];
    client
        .read_exact(&mut response)
        .expect("the response, retransmitted by the server");
    assert_eq!(response, OK, "{}", String::from_utf8_lossy(&response));
    eprintln!(
        "blackhole: response arrived {:?} after lifting, {:?} after the blackhole went on",
        lifted.elapsed(),
        started.elapsed()
    );
    exchange(&mut client);
    assert_eq!(server.requests(), 3);
}

/// 5. Dropping the chain deletes its namespaces, also when the test panics.
#[test]
fn namespaces_are_deleted_on_drop_even_after_a_panic() {
    let chain = NetChain::builder().start().unwrap();
    let names: Vec<String> = [chain.client(), chain.middle(), chain.server()]
        .iter()
        .map(|namespace| namespace.name().to_owned())
        .collect();
    let pid = std::process::id().to_string();
    for name in &names {
        assert!(name.starts_with("cp-") && name.contains(&pid), "{name}");
    }
    let listing = listed_namespaces();
    for name in &names {
        assert!(is_listed(&listing, name), "{name} not in:\n{listing}");
    }
    drop(chain);
    let listing = listed_namespaces();
    for name in &names {
        assert!(!is_listed(&listing, name), "{name} still in:\n{listing}");
    }

    let (names_tx, names_rx) = std::sync::mpsc::channel();
    let panicked = std::panic::catch_unwind(move || {
        let chain = NetChain::builder().start().unwrap();
        names_tx.send(chain.middle().name().to_owned()).unwrap();
        panic!("a failing test");
    });
    assert!(panicked.is_err());
    let name = names_rx.recv().unwrap();
    assert!(
        !is_listed(&listed_namespaces(), &name),
        "{name} survived a panic"
    );
}

/// 6. TCP keepalive probes keep the flow alive in the middlebox: with
///    probes every 1 s and an established timeout of 2 s, the flow stays
///    tracked through 5 s of idleness, and a request then succeeds.
#[test]
fn keepalive_probes_keep_the_flow_remembered() {
    let chain = NetChain::builder()
        .established_timeout(Duration::from_secs(2))
        .forgotten(Forgotten::Drop)
        .start()
        .unwrap();
    let server = chain.start_http_server(HttpServer::builder()).unwrap();
    let addr = server.addr();
    let mut client: TcpStream = chain
        .client()
        .run(move || {
            let socket = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_keepalive(true)?;
            socket.set_tcp_keepalive(
                &socket2::TcpKeepalive::new()
                    .with_time(Duration::from_secs(1))
                    .with_interval(Duration::from_secs(1)),
            )?;
            socket.connect(&addr.into())?;
            io::Result::Ok(socket.into())
        })
        .unwrap()
        .unwrap();
    exchange(&mut client);
    let local = client.local_addr().unwrap();

    let idle = Duration::from_secs(5);
    let started = Instant::now();
    let mut lowest_expiry = Duration::MAX;
    while started.elapsed() < idle {
        let flows = chain.tracked_flows().unwrap();
        let flow = flows
            .iter()
            .find(|flow| flow.client == local)
            .unwrap_or_else(|| panic!("flow forgotten after {:?}", started.elapsed()));
        lowest_expiry = lowest_expiry.min(flow.expires_in);
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("keepalive: lowest remaining conntrack lifetime seen: {lowest_expiry:?}");
    exchange(&mut client);
    assert_eq!(server.requests(), 2);
}

/// 7. `forget_flows` empties the conntrack table at once; the next packet
///    of the connection is then treated as a forgotten flow's (here: reset).
#[test]
fn forget_flows_forgets_at_once() {
    let (chain, server, mut client) =
        chain_with_connection(Duration::from_secs(60), Forgotten::Reset);
    let local = client.local_addr().unwrap();
    assert!(chain.tracks(local).unwrap());

    chain.forget_flows().unwrap();
    assert!(!chain.tracks(local).unwrap());
    assert_eq!(chain.conntrack_count().unwrap(), 0);

    client.write_all(GET).unwrap();
    let (result, _) = read_within(&mut client, WAIT);
    match result {
        Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}"),
        Ok(n) => panic!("expected a reset, read {n} bytes"),
    }
    assert_eq!(server.requests(), 1);

    // New connections are new flows, and work.
    let mut fresh = chain.connect_from_client(server.addr()).unwrap();
    exchange(&mut fresh);
    assert_eq!(server.requests(), 2);
}

/// The network namespace of the calling thread, as an inode number.
fn current_netns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
}

/// 8. Code given to `run`, `spawn` and `block_on` runs inside the namespace,
///    and so do threads it spawns; the caller's namespace does not change;
///    the middlebox's sysctls are set in its namespace.
#[test]
fn code_runs_inside_the_namespace_and_its_threads_inherit_it() {
    use std::os::unix::fs::MetadataExt;

    let chain = NetChain::builder()
        .established_timeout(Duration::from_millis(2500))
        .start()
        .unwrap();
    assert_eq!(chain.established_timeout(), Duration::from_secs(3));
    let outside = current_netns();
    let server_ns = std::fs::metadata(format!("/var/run/netns/{}", chain.server().name()))
        .unwrap()
        .ino();
    assert_ne!(outside, server_ns);

    let (inside, child) = chain
        .server()
        .run(|| {
            let child = std::thread::spawn(current_netns).join().unwrap();
            (current_netns(), child)
        })
        .unwrap();
    assert_eq!((inside, child), (server_ns, server_ns));
    assert_eq!(
        chain.server().spawn(current_netns).unwrap().join().unwrap(),
        server_ns
    );
    assert_eq!(
        chain.server().block_on(async { current_netns() }).unwrap(),
        server_ns
    );
    assert_eq!(current_netns(), outside);

    // A multi-thread runtime whose workers enter the namespace.
    let server = chain.server().clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || server.enter_current_thread().unwrap())
        .build()
        .unwrap();
    let on_worker = runtime.block_on(runtime.spawn(async { current_netns() }));
    assert_eq!(on_worker.unwrap(), server_ns);
    drop(runtime);
    assert_eq!(current_netns(), outside);

    let sysctls = chain
        .middle()
        .run(|| {
            [
                "net/ipv4/ip_forward",
                "net/netfilter/nf_conntrack_tcp_loose",
                "net/netfilter/nf_conntrack_tcp_timeout_established",
            ]
            .map(|key| {
                std::fs::read_to_string(format!("/proc/sys/{key}"))
                    .unwrap()
                    .trim()
                    .to_owned()
            })
        })
        .unwrap();
    assert_eq!(sysctls, ["1", "0", "3"]);

    // The HTTP server's thread, spawned by `start_http_server` from a thread
    // inside the server namespace, runs there too.
    let _server = chain.start_http_server(HttpServer::builder()).unwrap();
    // (A new thread sets its own name once it runs: poll.)
    let server_threads_inside = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(Result::ok)
            .map(|task| task.path())
            .filter(|task| {
                std::fs::read_to_string(task.join("comm"))
                    .is_ok_and(|comm| comm.starts_with("http-fault"))
            })
            .filter(|task| {
                std::fs::metadata(task.join("ns/net")).is_ok_and(|ns| ns.ino() == server_ns)
            })
            .count()
    };
    wait_until("the server thread shows up in the server namespace", || {
        server_threads_inside() == 1
    });

    // A panic inside continues on the caller's thread.
    let panicked = std::panic::catch_unwind(|| chain.client().run(|| panic!("inside")));
    assert!(panicked.is_err());

    // The client reaches the server only through the middlebox: there is no
    // route to anything else.
    let unreachable: SocketAddr = "203.0.113.1:80".parse().unwrap();
    let error = chain.connect_from_client(unreachable).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NetworkUnreachable, "{error}");
}

/// A process that died without dropping its chain (killed, Ctrl-C) leaves
/// its namespaces behind; the next chain built deletes them, and leaves a
/// live process's alone.
#[test]
fn namespaces_of_a_dead_process_are_removed_by_the_next_chain() {
    // A pid that surely belongs to no process any more: a child that ran
    // and was reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let orphan = format!("cp-{dead}-0-c");
    let alive = format!("cp-{}-999999-c", std::process::id());
    for name in [&orphan, &alive] {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap();
        assert!(status.success(), "ip netns add {name}");
    }
    let exists = |name: &str| std::path::Path::new("/var/run/netns").join(name).exists();
    assert!(exists(&orphan) && exists(&alive));

    let chain = NetChain::builder().start().unwrap();
    let orphan_left = exists(&orphan);
    let alive_left = exists(&alive);
    let _ = Command::new("ip").args(["netns", "del", &alive]).status();
    let _ = Command::new("ip").args(["netns", "del", &orphan]).status();
    drop(chain);
    assert!(!orphan_left, "the dead process's namespace is still there");
    assert!(alive_left, "a live process's namespace was deleted");
}
