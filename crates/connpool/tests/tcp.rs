//! The TCP pool on real loopback sockets against the testkit's fault
//! servers. Races are arranged by signalling, not by sleeps: the server
//! closes and says so, the test waits until the client's kernel shows the
//! FIN or RST arrived, and only then checks out.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Recorder;
use connpool::tcp::{TcpConfig, TcpKeepalive, TcpManager, TcpPool};
use connpool::{CloseReason, Error, ErrorKind, EventKind, EvictReason, Manager, Pool};
use connpool_testkit::{CloseCause, CloseMode, FaultServer, TcpState, wait_peer_closed};
use socket2::{SockRef, Socket};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const LONG: Duration = Duration::from_secs(5);

/// A TCP manager that keeps a duplicate of each socket it opens, so the
/// test can ask the kernel about a connection while it sits in the pool.
/// (The duplicate keeps the file open, which only delays our own FIN on
/// connections the server has already closed.)
#[derive(Clone, Default)]
struct Watching {
    tcp: TcpManager,
    sockets: Arc<Mutex<Vec<Socket>>>,
}

impl Watching {
    fn last_socket(&self) -> Socket {
        let sockets = self.sockets.lock().unwrap();
        sockets
            .last()
            .expect("a connection was opened")
            .try_clone()
            .unwrap()
    }
}

impl Manager<SocketAddr> for Watching {
    type Conn = TcpStream;

    async fn connect(&self, key: &SocketAddr) -> Result<TcpStream, Error> {
        let stream = self.tcp.connect(key).await?;
        let dup = SockRef::from(&stream).try_clone().map_err(Error::from_io)?;
        self.sockets.lock().unwrap().push(dup);
        Ok(stream)
    }

    fn check(
        &self,
        key: &SocketAddr,
        conn: &mut TcpStream,
        idle_for: std::time::Duration,
    ) -> Result<(), EvictReason> {
        self.tcp.check(key, conn, idle_for)
    }
}

/// One request/response on the line-echo protocol.
async fn exchange(stream: &mut TcpStream, text: &str) -> std::io::Result<()> {
    stream.write_all(format!("{text}\n").as_bytes()).await?;
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    reader.read_line(&mut line).await?;
    if line.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    assert_eq!(line, format!("{text}\n"));
    Ok(())
}

fn watched_pool(recorder: &Recorder<SocketAddr>) -> (Pool<SocketAddr, Watching>, Watching) {
    let manager = Watching::default();
    let pool = Pool::builder(manager.clone())
        .idle_timeout(Some(Duration::from_secs(60)))
        .observer(recorder.observer())
        .build();
    (pool, manager)
}

/// Server closes the idle connection (FIN or RST), the close reaches the
/// client, then the pool is asked for a connection: it must never hand out
/// the closed one — over many rounds.
async fn closed_idle_connection_is_never_handed_out(mode: CloseMode) {
    let server = FaultServer::start_echo().unwrap();
    let addr = server.addr();
    let recorder = Recorder::default();
    let (pool, manager) = watched_pool(&recorder);
    let rounds = 200;
    for round in 0..rounds {
        let mut conn = pool.get(&addr).await.unwrap();
        assert!(
            !conn.is_reused(),
            "round {round}: got the closed connection"
        );
        exchange(&mut conn, &format!("round {round}"))
            .await
            .unwrap();
        conn.release();

        assert_eq!(server.close_idle(mode).await, 1);
        let state = wait_peer_closed(&manager.last_socket(), LONG)
            .await
            .unwrap();
        let expected = match mode {
            CloseMode::Fin => TcpState::CloseWait,
            CloseMode::Rst => TcpState::Close,
        };
        assert_eq!(state, expected);
    }
    let reason = match mode {
        CloseMode::Fin => EvictReason::ServerClosed,
        CloseMode::Rst => EvictReason::ServerReset,
    };
    let stats = pool.stats();
    // Every round but the first found the previous connection stale.
    assert_eq!(stats.counters.evicted(reason), rounds - 1);
    assert_eq!(stats.counters.reused, 0);
    assert_eq!(stats.counters.created, rounds);
    let evicted = recorder
        .kinds()
        .iter()
        .filter(|k| **k == EventKind::Evicted { reason })
        .count();
    assert_eq!(evicted as u64, rounds - 1);
}

#[tokio::test]
async fn fin_closed_idle_connections_are_never_handed_out() {
    closed_idle_connection_is_never_handed_out(CloseMode::Fin).await;
}

#[tokio::test]
async fn reset_idle_connections_are_never_handed_out() {
    closed_idle_connection_is_never_handed_out(CloseMode::Rst).await;
}

#[tokio::test]
async fn a_live_idle_connection_is_reused() {
    let server = FaultServer::start_echo().unwrap();
    let pool: TcpPool = TcpPool::new(TcpManager::default());
    for i in 0..50 {
        let mut conn = pool.get(&server.addr()).await.unwrap();
        assert_eq!(conn.is_reused(), i > 0);
        exchange(&mut conn, "hello").await.unwrap();
        conn.release();
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(pool.stats().counters.reused, 49);
}

#[tokio::test]
async fn unsolicited_bytes_make_a_connection_stale() {
    let server = FaultServer::start_echo().unwrap();
    let addr = server.addr();
    let recorder = Recorder::default();
    let (pool, manager) = watched_pool(&recorder);
    let mut conn = pool.get(&addr).await.unwrap();
    exchange(&mut conn, "one").await.unwrap();
    conn.release();
    // Like a server's unsolicited "408 Request Timeout" before it closes.
    assert_eq!(
        server
            .send_unsolicited(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .await,
        1
    );
    // Wait for the bytes to arrive: a blocking peek on the duplicate
    // consumes nothing.
    let dup = manager.last_socket();
    dup.set_read_timeout(Some(LONG)).unwrap();
    let mut byte = [std::mem::MaybeUninit::new(0u8)];
    assert_eq!(dup.peek(&mut byte).unwrap(), 1);

    let mut conn = pool.get(&addr).await.unwrap();
    assert!(!conn.is_reused());
    exchange(&mut conn, "two").await.unwrap();
    assert_eq!(
        pool.stats().counters.evicted(EvictReason::UnexpectedData),
        1
    );
}

#[tokio::test]
async fn a_server_that_closes_after_n_exchanges_is_followed() {
    let server = FaultServer::builder()
        .close_after(3, CloseMode::Fin)
        .start()
        .unwrap();
    let addr = server.addr();
    let mut server_events = server.events();
    let recorder = Recorder::default();
    let (pool, manager) = watched_pool(&recorder);
    for i in 0..9 {
        let mut conn = pool.get(&addr).await.unwrap();
        assert_eq!(conn.is_reused(), i % 3 != 0, "request {i}");
        exchange(&mut conn, &format!("r{i}")).await.unwrap();
        conn.release();
        if i % 3 == 2 {
            let (_, mode, cause) = server_events.next_closed().await.unwrap();
            assert_eq!((mode, cause), (CloseMode::Fin, CloseCause::AfterExchanges));
            wait_peer_closed(&manager.last_socket(), LONG)
                .await
                .unwrap();
        }
    }
    let stats = pool.stats();
    assert_eq!(stats.counters.created, 3);
    assert_eq!(stats.counters.evicted(EvictReason::ServerClosed), 2);
    assert_eq!(server.exchanges(), 9);
}

#[tokio::test]
async fn a_server_idle_timeout_is_detected_before_reuse() {
    let server = FaultServer::builder()
        .idle_close(Duration::from_millis(50), CloseMode::Rst)
        .start()
        .unwrap();
    let addr = server.addr();
    let mut server_events = server.events();
    let recorder = Recorder::default();
    let (pool, manager) = watched_pool(&recorder);
    let mut conn = pool.get(&addr).await.unwrap();
    exchange(&mut conn, "a").await.unwrap();
    conn.release();
    let (_, _, cause) = server_events.next_closed().await.unwrap();
    assert_eq!(cause, CloseCause::IdleTimeout);
    wait_peer_closed(&manager.last_socket(), LONG)
        .await
        .unwrap();
    let mut conn = pool.get(&addr).await.unwrap();
    exchange(&mut conn, "b").await.unwrap();
    let kinds = recorder.kinds();
    assert!(kinds.contains(&EventKind::Closed {
        reason: CloseReason::Evicted(EvictReason::ServerReset)
    }));
}

/// Without the check, the same close surfaces as the errors users know —
/// and they are classified as stale.
#[tokio::test]
async fn the_failures_are_real_and_classified_without_the_check() {
    let server = FaultServer::start_echo().unwrap();
    let mut events = server.events();

    // FIN: the write succeeds, the read finds EOF.
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    events.next_accepted().await.unwrap();
    server.close_idle(CloseMode::Fin).await;
    wait_peer_closed(&stream, LONG).await.unwrap();
    stream.write_all(b"late\n").await.unwrap();
    let mut buf = [0u8; 16];
    let n = stream.read(&mut buf).await;
    let err = match n {
        Ok(0) => Error::from_io(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(_) => panic!("no answer expected"),
        Err(e) => Error::from_io(e),
    };
    assert!(err.is_stale(), "{err}");
    assert!(matches!(
        err.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
    ));

    // RST: the write fails with reset, the next with broken pipe.
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    events.next_accepted().await.unwrap();
    server.close_idle(CloseMode::Rst).await;
    wait_peer_closed(&stream, LONG).await.unwrap();
    let first = Error::from_io(stream.write_all(b"late\n").await.unwrap_err());
    assert_eq!(first.kind(), ErrorKind::ConnectionReset, "{first}");
    let second = Error::from_io(stream.write_all(b"later\n").await.unwrap_err());
    assert_eq!(second.kind(), ErrorKind::BrokenPipe, "{second}");
    assert!(first.is_stale() && second.is_stale());
}

#[tokio::test]
async fn connect_refused_is_classified_with_the_key() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }; // closed: nobody listens there now
    let pool: TcpPool = TcpPool::new(TcpManager::default());
    let err = pool.get(&addr).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectRefused, "{err}");
    assert!(err.is_connect());
    assert_eq!(err.key(), Some(addr.to_string().as_str()));
    assert!(pool.stats().keys.is_empty());
}

#[tokio::test]
async fn connect_timeout_is_classified() {
    // A listener whose accept queue is full drops further SYNs, so a
    // connect to it hangs: a server that never answers.
    let listener = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            fillers.push(s);
        }
    }
    let pool: TcpPool = TcpPool::new(TcpManager::new(TcpConfig {
        connect_timeout: Duration::from_millis(200),
        ..Default::default()
    }));
    let started = std::time::Instant::now();
    let err = pool.get(&addr).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectTimeout, "{err}");
    assert!(err.is_timeout() && err.is_connect());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn socket_options_are_applied() {
    let server = FaultServer::start_echo().unwrap();
    let keepalive = TcpKeepalive {
        idle: Duration::from_secs(7),
        interval: Duration::from_secs(3),
        retries: 4,
    };
    let pool: TcpPool = TcpPool::new(TcpManager::new(TcpConfig {
        keepalive: Some(keepalive),
        ..Default::default()
    }));
    let conn = pool.get(&server.addr()).await.unwrap();
    let socket = SockRef::from(&*conn);
    assert!(socket.tcp_nodelay().unwrap());
    assert!(socket.keepalive().unwrap());
    assert_eq!(socket.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
    assert_eq!(
        socket.tcp_keepalive_interval().unwrap(),
        Duration::from_secs(3)
    );
    assert_eq!(socket.tcp_keepalive_retries().unwrap(), 4);
    // The user timeout follows keepalive's give-up time: 7 + 4 x 3 s.
    assert_eq!(
        socket.tcp_user_timeout().unwrap(),
        Some(Duration::from_secs(19))
    );
}

#[tokio::test]
async fn keepalive_and_a_matching_user_timeout_are_on_by_default() {
    let server = FaultServer::start_echo().unwrap();
    let pool: TcpPool = TcpPool::new(TcpManager::default());
    let conn = pool.get(&server.addr()).await.unwrap();
    let socket = SockRef::from(&*conn);
    assert!(socket.keepalive().unwrap());
    assert_eq!(
        socket.tcp_keepalive_time().unwrap(),
        Duration::from_secs(15)
    );
    assert_eq!(
        socket.tcp_keepalive_interval().unwrap(),
        Duration::from_secs(5)
    );
    assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);
    assert_eq!(
        socket.tcp_user_timeout().unwrap(),
        Some(Duration::from_secs(30))
    );

    let off: TcpPool = TcpPool::new(TcpManager::new(TcpConfig {
        keepalive: None,
        user_timeout: connpool::tcp::UserTimeout::Auto,
        ..Default::default()
    }));
    let conn = off.get(&server.addr()).await.unwrap();
    let socket = SockRef::from(&*conn);
    assert!(!socket.keepalive().unwrap());
    assert_eq!(
        socket.tcp_user_timeout().unwrap(),
        None,
        "Auto follows keepalive"
    );
}

#[tokio::test]
async fn host_name_keys_resolve() {
    let server = FaultServer::start_echo().unwrap();
    let key = format!("localhost:{}", server.addr().port());
    let pool: TcpPool<String> = TcpPool::new(TcpManager::default());
    let mut conn = pool.get(&key).await.unwrap();
    exchange(&mut conn, "by name").await.unwrap();
    conn.release();

    let err = pool
        .get(&"no-such-host.invalid:80".to_string())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Resolve, "{err}");
}
