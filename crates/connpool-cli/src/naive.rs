//! The naive clients: the baseline the demo compares connpool with.
//!
//! They are what many hand-written pools amount to. They share some
//! defaults with Go's `net/http` transport and reqwest (the 90 s idle
//! timeout, no cap per host), but not everything: both of those notice a
//! close that arrives while a connection sits idle (a background read),
//! and retry an idempotent request that failed on a reused connection.
//! What the naive clients do:
//!
//! * **Idle connections are reused unchecked** (a LIFO stack): a connection
//!   that worked a moment ago is trusted to work now, which is false as
//!   soon as the server has closed it while it sat idle. The caller finds
//!   out when its request fails (`broken pipe`, `connection reset`, a bare
//!   EOF).
//! * **A 90 s idle timeout**, Go's `IdleConnTimeout` and reqwest's
//!   `pool_idle_timeout`: longer than most servers keep a connection
//!   (nginx 75 s, Node and Apache 5 s).
//! * **No cap per host**: every concurrent request that finds no idle
//!   connection opens one (Go's `MaxConnsPerHost` and reqwest default to
//!   no limit).
//! * **No retry**, and nothing learned from a failure.
//! * ([`NaiveHttp`] only) **A response dropped with its body unread keeps
//!   its connection**: neither drained nor closed, it stays open and out of
//!   the pool for good. That is Go's transport when a caller forgets
//!   `resp.Body.Close()`: the connection's read loop waits for a reader
//!   that never comes.
//!
//! [`NaivePool`] is the pool of raw TCP connections (the keep-alive race
//! speaks a line protocol over it); [`NaiveHttp`] puts just enough
//! HTTP/1.1 on top for the testkit's server. Both are small on purpose: a
//! model of those real clients, not a client anyone should use.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long an idle connection may wait for reuse: Go's default
/// `IdleConnTimeout` (and reqwest's `pool_idle_timeout`).
pub const NAIVE_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The longest response head [`NaiveHttp`] reads.
const MAX_HEAD: usize = 64 * 1024;

/// A LIFO pool of TCP connections to one address, reused unchecked, with
/// no cap. Its methods take `&self`, so concurrent callers can share it.
#[derive(Debug)]
pub struct NaivePool {
    addr: SocketAddr,
    /// Idle connections and when each went idle; the most recently
    /// returned one is reused first.
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    /// Connections opened so far.
    created: AtomicU64,
}

impl NaivePool {
    /// An empty pool for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        NaivePool {
            addr,
            idle: Mutex::new(Vec::new()),
            created: AtomicU64::new(0),
        }
    }

    /// The most recently returned idle connection, as is, or a new one.
    /// Connections idle for [`NAIVE_IDLE_TIMEOUT`] or more are closed
    /// instead (the only check it makes: a clock, not the socket).
    pub async fn get(&self) -> io::Result<TcpStream> {
        {
            let mut idle = lock(&self.idle);
            while let Some((stream, since)) = idle.pop() {
                if since.elapsed() < NAIVE_IDLE_TIMEOUT {
                    return Ok(stream);
                }
            }
        }
        let stream = TcpStream::connect(self.addr).await?;
        // Same socket option as connpool's TcpManager, for a fair comparison.
        stream.set_nodelay(true)?;
        self.created.fetch_add(1, Ordering::Relaxed);
        Ok(stream)
    }

    /// Gives a connection back after a successful request.
    pub fn put(&self, stream: TcpStream) {
        lock(&self.idle).push((stream, Instant::now()));
    }

    /// How many connections this pool has opened.
    pub fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }
}

/// A naive HTTP/1.1 client for one server: [`NaivePool`]'s connections,
/// `GET` requests written by hand, responses framed by `Content-Length`
/// (the testkit's server always sends one). Cheap to clone; clones share
/// the pool.
///
/// A response whose body is read with [`NaiveResponse::bytes`] gives its
/// connection back to the pool. A response dropped before that *parks* its
/// connection: open, never reused, never closed until the client is
/// dropped (see the [module documentation](self)). Any error closes the
/// connection, and nothing is retried.
#[derive(Clone, Debug)]
pub struct NaiveHttp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: NaivePool,
    /// Connections of responses dropped unread.
    parked: Mutex<Vec<TcpStream>>,
}

impl NaiveHttp {
    /// A client for the server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        NaiveHttp {
            inner: Arc::new(Inner {
                pool: NaivePool::new(addr),
                parked: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sends `GET <path>` with header `x-request-id: <id>` (the server
    /// counts requests by it) and reads the response head.
    pub async fn get(&self, path: &str, id: &str) -> io::Result<NaiveResponse> {
        let pool = &self.inner.pool;
        let mut stream = pool.get().await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nx-request-id: {id}\r\n\r\n",
            pool.addr
        );
        stream.write_all(request.as_bytes()).await?;

        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_len = loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if received.len() > MAX_HEAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response head too long",
                ));
            }
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            received.extend_from_slice(&chunk[..read]);
        };
        let (status, body_len) = parse_head(&received[..head_len])?;
        received.drain(..head_len);
        Ok(NaiveResponse {
            status,
            body_len,
            body: received,
            stream: Some(stream),
            client: Arc::clone(&self.inner),
        })
    }

    /// How many connections this client has opened.
    pub fn created(&self) -> u64 {
        self.inner.pool.created()
    }

    /// How many connections are parked: left open by responses dropped
    /// with their body unread.
    pub fn parked(&self) -> usize {
        lock(&self.inner.parked).len()
    }
}

/// A response of [`NaiveHttp`]: its status, and a body still on the
/// connection.
#[derive(Debug)]
pub struct NaiveResponse {
    status: u16,
    /// The body's length, from `Content-Length`.
    body_len: usize,
    /// Body bytes read so far (those that came with the head).
    body: Vec<u8>,
    /// `None` once the body was read and the connection given back.
    stream: Option<TcpStream>,
    client: Arc<Inner>,
}

impl NaiveResponse {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Reads the body to its end and gives the connection back to the
    /// pool.
    pub async fn bytes(mut self) -> io::Result<Vec<u8>> {
        let Some(mut stream) = self.stream.take() else {
            return Ok(std::mem::take(&mut self.body));
        };
        let mut chunk = [0u8; 16 * 1024];
        while self.body.len() < self.body_len {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            self.body.extend_from_slice(&chunk[..read]);
        }
        if self.body.len() > self.body_len {
            // The server sends nothing unasked; more bytes mean broken
            // framing. The stream is dropped, hence closed.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bytes after the response's end",
            ));
        }
        self.client.pool.put(stream);
        Ok(std::mem::take(&mut self.body))
    }
}

/// A response dropped before its body was read parks its connection.
impl Drop for NaiveResponse {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            lock(&self.client.parked).push(stream);
        }
    }
}

/// The status code and `Content-Length` of a response head (status line
/// and fields, with or without the blank line). Just enough HTTP for the
/// testkit's server, which always sends a length.
fn parse_head(head: &[u8]) -> io::Result<(u16, usize)> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{what} in response head {:?}",
                String::from_utf8_lossy(head)
            ),
        )
    };
    let text = std::str::from_utf8(head).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no HTTP/1.1 status line"))?;
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.trim().parse().map_err(|_| bad("bad Content-Length")))
        .ok_or_else(|| bad("no Content-Length"))??;
    Ok((status, length))
}

/// Locks `mutex`, ignoring poisoning: the data (sockets in a list) stays
/// consistent whatever panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use connpool_testkit::http::HttpServer;

    #[test]
    fn parses_just_enough_of_a_response_head() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-LENGTH:  2 \r\nx-request-id: a\r\n\r\n";
        assert_eq!(parse_head(head).unwrap(), (200, 2));
        let no_length = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap_err();
        assert!(no_length.to_string().contains("no Content-Length"));
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    /// Real sockets on 127.0.0.1: a body read to its end gives the
    /// connection back, so the next request reuses it.
    #[tokio::test]
    async fn a_read_body_gives_the_connection_back() {
        let server = HttpServer::start_default().unwrap();
        let client = NaiveHttp::new(server.addr());
        for n in 1..=2 {
            let resp = client.get("/", &format!("n-{n}")).await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.bytes().await.unwrap(), b"ok");
        }
        assert_eq!(client.created(), 1);
        assert_eq!(client.parked(), 0);
        assert_eq!(server.accepted(), 1);
        assert_eq!(server.processed("GET", "n-2"), 1);
    }

    /// A response dropped unread parks its connection: still open at the
    /// server, and the next request needs a new one.
    #[tokio::test]
    async fn a_dropped_body_parks_the_connection() {
        let server = HttpServer::start_default().unwrap();
        let client = NaiveHttp::new(server.addr());
        for n in 1..=3 {
            let resp = client
                .get("/bytes/100000", &format!("n-{n}"))
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
        assert_eq!(client.created(), 3);
        assert_eq!(client.parked(), 3);
        assert_eq!(server.open_connections(), 3);
        drop(client);
        for _ in 0..200 {
            if server.open_connections() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("dropping the client did not close its parked connections");
    }
}
