//! Tests of the fault servers, over real sockets on 127.0.0.1.
//!
//! No test sleeps to line up a race: every "has the close happened yet?" is
//! answered by a server event, a blocking read, or `wait_peer_closed`. The
//! `WAIT` bound below only keeps a broken build from hanging forever.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use connpool_testkit::{
    CloseCause, CloseMode, EventStream, FaultServer, MAX_LINE_LEN, ServerEvent, TcpState,
    tcp_state, wait_peer_closed,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for anything that should happen "soon". Never reached when the
/// code works.
const WAIT: Duration = Duration::from_secs(5);
/// Idle timeout for the idle-close tests: short, to keep the suite fast.
const IDLE: Duration = Duration::from_millis(100);

/// Writes `line` and reads the echo back.
async fn exchange(client: &mut TcpStream, line: &[u8]) -> Vec<u8> {
    client.write_all(line).await.expect("write request");
    let mut answer = vec![0; line.len()];
    client.read_exact(&mut answer).await.expect("read answer");
    answer
}

/// Connects and waits until the server has accepted this very connection.
async fn connect(server: &FaultServer, events: &mut EventStream) -> TcpStream {
    let client = TcpStream::connect(server.addr()).await.expect("connect");
    let peer = within(events.next_accepted()).await;
    assert_eq!(peer, Some(client.local_addr().expect("local addr")));
    client
}

/// Awaits `future`, failing the test if it takes longer than `WAIT`.
async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("timed out waiting")
}

/// The next `Closed` event, with all its fields.
async fn next_closed_event(events: &mut EventStream) -> (SocketAddr, CloseMode, CloseCause, u64) {
    loop {
        match within(events.next()).await.expect("server stopped") {
            ServerEvent::Closed {
                peer,
                mode,
                cause,
                exchanges,
            } => return (peer, mode, cause, exchanges),
            ServerEvent::Accepted { .. } => {}
        }
    }
}

/// Reads once and expects end-of-file.
async fn expect_eof(client: &mut TcpStream) {
    let mut buf = [0; 64];
    let read = within(client.read(&mut buf)).await;
    assert_eq!(read.expect("read after FIN"), 0, "expected end-of-file");
}

/// Reads once and expects the connection to have been reset.
async fn expect_reset(client: &mut TcpStream) {
    let mut buf = [0; 64];
    let read = within(client.read(&mut buf)).await;
    let error = read.expect_err("read after RST must fail");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn echoes_many_exchanges_on_one_connection() {
    let server = FaultServer::start_echo().expect("start");
    let mut client = TcpStream::connect(server.addr()).await.expect("connect");

    for i in 0..200 {
        let line = format!("request number {i}\n");
        assert_eq!(
            exchange(&mut client, line.as_bytes()).await,
            line.as_bytes()
        );
    }
    // A long line, and an empty one.
    let mut long = vec![b'x'; 20_000];
    long.push(b'\n');
    assert_eq!(exchange(&mut client, &long).await, long);
    assert_eq!(exchange(&mut client, b"\n").await, b"\n");
    // Several lines in one write are answered in order.
    let pipelined = b"one\ntwo\nthree\n";
    assert_eq!(exchange(&mut client, pipelined).await, pipelined);

    assert_eq!(server.exchanges(), 200 + 2 + 3);
    assert_eq!(tcp_state(&client).expect("state"), TcpState::Established);
}

#[tokio::test]
async fn line_of_max_length_is_echoed_and_longer_line_closes() {
    let server = FaultServer::start_echo().expect("start");
    let mut events = server.events();

    let mut client = connect(&server, &mut events).await;
    let mut longest = vec![b'a'; MAX_LINE_LEN - 1];
    longest.push(b'\n');
    assert_eq!(exchange(&mut client, &longest).await, longest);

    let mut client = connect(&server, &mut events).await;
    let too_long = vec![b'b'; MAX_LINE_LEN + 1];
    // The server may close before reading everything; the write may fail.
    let _ = client.write_all(&too_long).await;
    let (peer, mode, cause, exchanges) = next_closed_event(&mut events).await;
    assert_eq!(peer, client.local_addr().expect("local addr"));
    assert_eq!(
        (mode, cause, exchanges),
        (CloseMode::Fin, CloseCause::Error, 0)
    );
    within(wait_peer_closed(&client, WAIT))
        .await
        .expect("closed");
    assert_eq!(
        server.closed_by_server(),
        0,
        "errors are not deliberate faults"
    );
}

#[tokio::test]
async fn idle_close_fin_sends_eof_and_event() {
    let server = FaultServer::builder()
        .idle_close(IDLE, CloseMode::Fin)
        .start()
        .expect("start");
    let mut events = server.events();
    let mut client = connect(&server, &mut events).await;
    // The idle timer starts after the server writes the answer, so after this.
    let before_request = Instant::now();
    assert_eq!(exchange(&mut client, b"hello\n").await, b"hello\n");

    let state = wait_peer_closed(&client, WAIT).await.expect("FIN arrives");
    assert_eq!(state, TcpState::CloseWait);
    assert!(
        before_request.elapsed() >= IDLE,
        "closed before the idle time"
    );
    expect_eof(&mut client).await;

    let (peer, mode, cause, exchanges) = next_closed_event(&mut events).await;
    assert_eq!(peer, client.local_addr().expect("local addr"));
    assert_eq!(
        (mode, cause, exchanges),
        (CloseMode::Fin, CloseCause::IdleTimeout, 1)
    );
    assert_eq!(server.closed_by_server(), 1);
    assert_eq!(server.open_connections(), 0);
}

#[tokio::test]
async fn idle_close_rst_resets_the_client() {
    let server = FaultServer::builder()
        .idle_close(IDLE, CloseMode::Rst)
        .start()
        .expect("start");
    let mut events = server.events();
    let mut client = connect(&server, &mut events).await;

    // Also works on a connection that never sent anything.
    let state = wait_peer_closed(&client, WAIT).await.expect("RST arrives");
    assert_eq!(state, TcpState::Close);
    expect_reset(&mut client).await;

    let (peer, mode, cause, exchanges) = next_closed_event(&mut events).await;
    assert_eq!(peer, client.local_addr().expect("local addr"));
    assert_eq!(
        (mode, cause, exchanges),
        (CloseMode::Rst, CloseCause::IdleTimeout, 0)
    );
}

#[tokio::test]
async fn idle_timer_does_not_run_during_a_partial_request() {
    let idle = Duration::from_millis(50);
    let server = FaultServer::builder()
        .idle_close(idle, CloseMode::Fin)
        .start()
        .expect("start");
    let mut client = TcpStream::connect(server.addr()).await.expect("connect");
    client.write_all(b"par").await.expect("write");
    // This sleep does not line up a race: it gives the server several idle
    // periods in which it must NOT close the connection.
    tokio::time::sleep(idle * 4).await;
    assert_eq!(tcp_state(&client).expect("state"), TcpState::Established);
    client.write_all(b"tial\n").await.expect("write");
    let mut answer = [0; 8];
    client.read_exact(&mut answer).await.expect("answer");
    assert_eq!(&answer, b"partial\n");
    // Idle again: now the timer runs.
    let state = wait_peer_closed(&client, WAIT).await.expect("FIN arrives");
    assert_eq!(state, TcpState::CloseWait);
}

#[tokio::test]
async fn close_after_three_exchanges() {
    let server = FaultServer::builder()
        .close_after(3, CloseMode::Fin)
        .start()
        .expect("start");
    let mut events = server.events();
    let mut client = connect(&server, &mut events).await;

    for line in [&b"a\n"[..], b"b\n", b"c\n"] {
        assert_eq!(exchange(&mut client, line).await, line);
    }
    // We send nothing more: the server closes on its own after answer 3.
    let state = wait_peer_closed(&client, WAIT).await.expect("FIN arrives");
    assert_eq!(state, TcpState::CloseWait);
    expect_eof(&mut client).await;

    let (peer, mode, cause, exchanges) = next_closed_event(&mut events).await;
    assert_eq!(peer, client.local_addr().expect("local addr"));
    assert_eq!(
        (mode, cause, exchanges),
        (CloseMode::Fin, CloseCause::AfterExchanges, 3)
    );
    assert_eq!(server.exchanges(), 3);
}

#[tokio::test]
async fn close_after_zero_closes_on_accept_with_rst() {
    let server = FaultServer::builder()
        .close_after(0, CloseMode::Rst)
        .start()
        .expect("start");
    let mut events = server.events();
    // A blocking connect returns once the handshake is done. (Tokio's
    // connect may instead report the RST itself, if it arrives first.)
    let mut client = std::net::TcpStream::connect(server.addr()).expect("connect");
    let state = wait_peer_closed(&client, WAIT).await.expect("RST arrives");
    assert_eq!(state, TcpState::Close);
    let error = client.read(&mut [0; 8]).expect_err("read after RST");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    let (_, mode, cause, exchanges) = next_closed_event(&mut events).await;
    assert_eq!(
        (mode, cause, exchanges),
        (CloseMode::Rst, CloseCause::AfterExchanges, 0)
    );
}

#[tokio::test]
async fn close_idle_fin_closes_every_idle_connection() {
    let server = FaultServer::start_echo().expect("start");
    let mut events = server.events();
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut client = connect(&server, &mut events).await;
        let line = format!("client {i}\n");
        assert_eq!(
            exchange(&mut client, line.as_bytes()).await,
            line.as_bytes()
        );
        clients.push(client);
    }

    assert_eq!(within(server.close_idle(CloseMode::Fin)).await, 3);
    // `close_idle` returned after the closes, and after their events.
    let mut closed_peers = Vec::new();
    for _ in 0..3 {
        let (peer, mode, cause) = within(events.next_closed()).await.expect("event");
        assert_eq!((mode, cause), (CloseMode::Fin, CloseCause::Commanded));
        closed_peers.push(peer);
    }
    for client in &mut clients {
        assert!(closed_peers.contains(&client.local_addr().expect("local addr")));
        let state = wait_peer_closed(&*client, WAIT).await.expect("FIN arrives");
        assert_eq!(state, TcpState::CloseWait);
        expect_eof(client).await;
    }
    assert_eq!(server.closed_by_server(), 3);
    assert_eq!(server.open_connections(), 0);
    // Nothing left to close.
    assert_eq!(within(server.close_idle(CloseMode::Fin)).await, 0);
}

#[tokio::test]
async fn close_idle_rst_resets_every_idle_connection() {
    let server = FaultServer::start_echo().expect("start");
    let mut events = server.events();
    let mut first = connect(&server, &mut events).await;
    let mut second = connect(&server, &mut events).await;

    assert_eq!(within(server.close_idle(CloseMode::Rst)).await, 2);
    for _ in 0..2 {
        let (_, mode, cause) = within(events.next_closed()).await.expect("event");
        assert_eq!((mode, cause), (CloseMode::Rst, CloseCause::Commanded));
    }
    for client in [&mut first, &mut second] {
        let state = wait_peer_closed(&*client, WAIT).await.expect("RST arrives");
        assert_eq!(state, TcpState::Close);
        expect_reset(client).await;
    }
}

/// `close_idle` talks to the server thread through runtime-agnostic channels:
/// it works even on a runtime with no I/O or time driver, with a blocking
/// std client.
#[test]
fn close_idle_needs_no_tokio_drivers() {
    let server = FaultServer::start_echo().expect("start");
    let mut client = std::net::TcpStream::connect(server.addr()).expect("connect");
    client.write_all(b"hi\n").expect("write");
    let mut answer = [0; 3];
    client.read_exact(&mut answer).expect("read");
    assert_eq!(&answer, b"hi\n");

    let bare_runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let closed = bare_runtime.block_on(server.close_idle(CloseMode::Fin));
    assert_eq!(closed, 1);
    client
        .set_read_timeout(Some(WAIT))
        .expect("set read timeout");
    assert_eq!(client.read(&mut answer).expect("read EOF"), 0);
    assert_eq!(tcp_state(&client).expect("state"), TcpState::CloseWait);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_unsolicited_reaches_idle_clients_that_sent_nothing() {
    let server = FaultServer::start_echo().expect("start");
    let mut events = server.events();
    let mut first = connect(&server, &mut events).await;
    let mut second = connect(&server, &mut events).await;

    let unsolicited = b"HTTP/1.1 408 Request Timeout\r\n\r\n";
    assert_eq!(within(server.send_unsolicited(unsolicited)).await, 2);
    for client in [&mut first, &mut second] {
        let mut got = vec![0; unsolicited.len()];
        within(client.read_exact(&mut got)).await.expect("read");
        assert_eq!(got, unsolicited);
    }
    // The connections stay usable.
    assert_eq!(exchange(&mut first, b"still here\n").await, b"still here\n");
    assert_eq!(server.open_connections(), 2);
    assert_eq!(server.closed_by_server(), 0);
}

#[tokio::test]
async fn counters_are_exact() {
    let server = FaultServer::start_echo().expect("start");
    let mut events = server.events();
    assert_eq!(
        (
            server.accepted(),
            server.exchanges(),
            server.open_connections()
        ),
        (0, 0, 0)
    );

    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&server, &mut events).await);
    }
    assert_eq!(server.accepted(), 3);
    assert_eq!(server.open_connections(), 3);

    for client in &mut clients {
        exchange(client, b"one\n").await;
        exchange(client, b"two\n").await;
    }
    assert_eq!(server.exchanges(), 6);

    // The client closes one connection: open drops, closed_by_server doesn't.
    let gone = clients.pop().expect("three clients");
    let gone_addr = gone.local_addr().expect("local addr");
    drop(gone);
    let (peer, _, cause) = within(events.next_closed()).await.expect("event");
    assert_eq!((peer, cause), (gone_addr, CloseCause::ClientClosed));
    assert_eq!(server.open_connections(), 2);
    assert_eq!(server.closed_by_server(), 0);

    assert_eq!(within(server.close_idle(CloseMode::Fin)).await, 2);
    assert_eq!(server.open_connections(), 0);
    assert_eq!(server.closed_by_server(), 2);
    assert_eq!(server.accepted(), 3);
    assert_eq!(server.exchanges(), 6);
}

#[tokio::test]
async fn dropping_the_server_stops_it_promptly() {
    let server = FaultServer::start_echo().expect("start");
    let addr = server.addr();
    let mut events = server.events();
    let mut client = connect(&server, &mut events).await;
    exchange(&mut client, b"bye\n").await;

    // Drop on a blocking thread so a hang shows up as a timeout, not a
    // stuck test.
    let dropping = tokio::task::spawn_blocking(move || drop(server));
    within(dropping).await.expect("drop did not panic");

    // Open connections were closed, the event stream ended...
    within(wait_peer_closed(&client, WAIT))
        .await
        .expect("closed");
    expect_eof(&mut client).await;
    assert!(within(events.next()).await.is_none());
    // ...and nobody listens on the port any more.
    let refused = TcpStream::connect(addr).await.expect_err("port closed");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn wait_peer_closed_times_out_on_an_open_connection() {
    let server = FaultServer::start_echo().expect("start");
    let client = TcpStream::connect(server.addr()).await.expect("connect");
    let error = wait_peer_closed(&client, Duration::from_millis(20))
        .await
        .expect_err("nobody closed");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
}
