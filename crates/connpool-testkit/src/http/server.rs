//! The HTTP server: its settings, its handle, the state shared with the
//! server thread, and the accept loop.
//!
//! Same architecture as the line-echo [`FaultServer`](crate::FaultServer),
//! and the same plumbing (see `plumbing.rs`): one thread with a
//! current-thread Tokio runtime, one task per connection, and control calls
//! that go straight from the test to the connection tasks over `tokio::sync`
//! channels (so they work from any runtime).
//!
//! One difference: [`HttpServer::close_idle`] must not wait for connections
//! that are busy (a `/never` request can stay busy forever). So the registry
//! records, for each connection, whether it is idle, and commands are sent
//! only to idle ones. A connection flips its flag under the registry lock and
//! then refuses the commands already queued, so every command sent is
//! answered promptly.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::connection::Connection;
use super::stream::ServerStream;
use super::{HttpCloseCause, HttpEvent};
use crate::CloseMode;
use crate::plumbing::{Cause, Command, Hub, ServerThread, lock};
use crate::tls::{ServerTls, TlsClose, TlsFailure, TlsSession};

/// The settings of an [`HttpServer`], applied to every connection. Start
/// from [`HttpServer::builder`] (or `HttpServerBuilder::default()`), which
/// gives a well-behaved keep-alive server, and add faults.
///
/// ```
/// use std::time::Duration;
/// use connpool_testkit::CloseMode;
/// use connpool_testkit::http::HttpServer;
///
/// // Like nginx: advertises a 1 s keep-alive timeout but closes after 100 ms,
/// // and says `Connection: close` on the 100th response.
/// let server = HttpServer::builder()
///     .idle_close(Duration::from_millis(100), CloseMode::Fin)
///     .keep_alive_header(1, Some(100))
///     .max_requests(100)
///     .start()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpServerBuilder {
    pub(super) idle_close: Option<(Duration, CloseMode)>,
    pub(super) idle_408: bool,
    pub(super) close_after: Option<(u64, CloseMode)>,
    pub(super) max_requests: Option<u64>,
    pub(super) keep_alive_header: Option<(u64, Option<u32>)>,
    pub(super) response_delay: Duration,
    /// `None`: `127.0.0.1`.
    pub(super) bind_ip: Option<IpAddr>,
}

impl HttpServerBuilder {
    /// Closes a connection, in `mode`, once no request byte arrived for
    /// `after` since its last response (or since it was accepted). Nothing is
    /// written first, unless [`HttpServerBuilder::idle_408`] is set.
    ///
    /// The timer does not run while a request is partly received or being
    /// answered. A duration too large to represent as a deadline means
    /// "never".
    #[must_use]
    pub fn idle_close(mut self, after: Duration, mode: CloseMode) -> Self {
        self.idle_close = Some((after, mode));
        self
    }

    /// With `true`, an idle close in [`CloseMode::Fin`] first writes an
    /// unsolicited [`REQUEST_TIMEOUT_408`](super::REQUEST_TIMEOUT_408)
    /// response, as some servers do. (An RST close writes nothing: the
    /// kernel would discard the bytes anyway.)
    #[must_use]
    pub fn idle_408(mut self, enabled: bool) -> Self {
        self.idle_408 = enabled;
        self
    }

    /// Closes a connection, in `mode`, right after writing its
    /// `responses`-th response, although that response did not say
    /// `Connection: close` (the rude server). Requests the client already
    /// sent beyond that are not answered. `0` closes every connection right
    /// after accepting it.
    #[must_use]
    pub fn close_after(mut self, responses: u64, mode: CloseMode) -> Self {
        self.close_after = Some((responses, mode));
        self
    }

    /// Gives the `requests`-th response on a connection a
    /// `Connection: close` field, then closes the connection with a FIN (the
    /// polite server, like nginx's `keepalive_requests`). `0` acts like `1`.
    #[must_use]
    pub fn max_requests(mut self, requests: u64) -> Self {
        self.max_requests = Some(requests);
        self
    }

    /// Gives every keep-alive response (one without `Connection: close`) a
    /// `Keep-Alive: timeout=<timeout_secs>` field, with `, max=<max>` when
    /// `max` is set. Only a field: closing is governed by
    /// [`HttpServerBuilder::idle_close`] and the other settings.
    #[must_use]
    pub fn keep_alive_header(mut self, timeout_secs: u64, max: Option<u32>) -> Self {
        self.keep_alive_header = Some((timeout_secs, max));
        self
    }

    /// Waits `delay` after reading each request before writing its response
    /// (added to any wait of the route itself).
    #[must_use]
    pub fn response_delay(mut self, delay: Duration) -> Self {
        self.response_delay = delay;
        self
    }

    /// Listens on `ip` instead of `127.0.0.1` (port 0: the kernel picks
    /// one).
    ///
    /// Why: a test that puts a middlebox between client and server (see
    /// [`netns`](crate::netns)) runs the server in another network
    /// namespace, on an address the client reaches through the middlebox.
    /// [`HttpServerBuilder::start`] creates the listening socket on the
    /// calling thread, so call it from a thread inside that namespace, as
    /// [`NetChain::start_http_server`](crate::netns::NetChain::start_http_server)
    /// does. With an unspecified address (`0.0.0.0`), [`HttpServer::addr`]
    /// reports that address, not a reachable one.
    ///
    /// ```no_run
    /// use connpool_testkit::http::HttpServer;
    /// use connpool_testkit::netns::NetChain;
    ///
    /// // Needs root: network namespaces.
    /// let chain = NetChain::builder().start()?;
    /// let builder = HttpServer::builder().bind_ip(chain.server_addr());
    /// let server = chain.server().run(move || builder.start())??;
    /// assert_eq!(server.addr().ip(), chain.server_addr());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn bind_ip(mut self, ip: IpAddr) -> Self {
        self.bind_ip = Some(ip);
        self
    }

    /// Binds `127.0.0.1:0` (or the address set with
    /// [`HttpServerBuilder::bind_ip`]) and starts serving on a new thread.
    ///
    /// The listening socket is bound before this returns, so
    /// [`HttpServer::addr`] is valid at once. This is a plain (blocking)
    /// function: call it from anywhere.
    ///
    /// # Errors
    ///
    /// Fails if the socket cannot be bound, or if the runtime or the thread
    /// cannot be created.
    pub fn start(self) -> io::Result<HttpServer> {
        self.start_with(None)
    }

    /// Starts an HTTPS server: as [`HttpServerBuilder::start`], but every
    /// connection is TLS, with the certificate, client-certificate policy,
    /// ALPN protocols and close style of `tls`.
    ///
    /// Everything else is unchanged over TLS: routes, faults, commands,
    /// counters and events. The differences:
    ///
    /// * A connection is booked (counted by [`HttpServer::accepted`] and
    ///   [`HttpServer::open_connections`], announced by
    ///   [`HttpEvent::Accepted`], reached by commands) only once its TLS
    ///   handshake has completed; the [`TlsSession`] is recorded just before
    ///   (see [`HttpServer::tls_sessions`]). A failed handshake is recorded
    ///   as a [`TlsFailure`] instead ([`HttpServer::tls_failures`]), with no
    ///   event, and the socket is closed (after the TLS alert, if any).
    /// * A [`CloseMode::Fin`] close ends the TLS session as
    ///   [`ServerTls::close`] says: a `close_notify` alert then a FIN, or a
    ///   bare FIN. A [`CloseMode::Rst`] close sends no alert, only the RST.
    /// * Raw answers (`/garbage`, unsolicited bytes, the `408`) are sent as
    ///   TLS application data.
    ///
    /// (TLS is given here rather than on the builder so that the builder
    /// stays `Copy`.)
    ///
    /// ```
    /// use connpool_testkit::http::HttpServer;
    /// use connpool_testkit::tls::{ServerTls, TestCa};
    ///
    /// let ca = TestCa::new("test CA");
    /// let tls = ServerTls::from_cert(&ca.server_cert(&["localhost"]));
    /// let server = HttpServer::builder().max_requests(10).start_tls(tls)?;
    /// assert!(server.is_tls());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`HttpServerBuilder::start`]; and
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if rustls rejects the
    /// configuration (e.g. a key that does not match the certificate).
    pub fn start_tls(self, tls: ServerTls) -> io::Result<HttpServer> {
        let config = tls
            .server_config()
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        self.start_with(Some((TlsAcceptor::from(config), tls.close)))
    }

    /// Starts the server, plain or TLS.
    fn start_with(self, tls: Option<(TlsAcceptor, TlsClose)>) -> io::Result<HttpServer> {
        let shared = Arc::new(Shared {
            tls: tls.is_some(),
            ..Shared::default()
        });
        let thread_shared = Arc::clone(&shared);
        let ip = self.bind_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let server = ServerThread::start("http-fault-server", ip, move |id, peer, stream| {
            let shared = Arc::clone(&thread_shared);
            match &tls {
                None => {
                    let stream = ServerStream::Plain(stream);
                    let connection = Connection::new(id, peer, stream, shared, self);
                    tokio::spawn(connection.run());
                }
                Some((acceptor, close)) => {
                    let handshake = tls_handshake(acceptor.clone(), *close, peer, stream, shared);
                    tokio::spawn(async move {
                        if let Some((stream, shared)) = handshake.await {
                            Connection::new(id, peer, stream, shared, self).run().await;
                        }
                    });
                }
            }
        })?;
        Ok(HttpServer { server, shared })
    }
}

/// Runs the server side of the TLS handshake on `stream` and records the
/// outcome. Returns the TLS stream if it succeeded.
async fn tls_handshake(
    acceptor: TlsAcceptor,
    close: TlsClose,
    peer: SocketAddr,
    stream: TcpStream,
    shared: Arc<Shared>,
) -> Option<(ServerStream, Arc<Shared>)> {
    match acceptor.accept(stream).await {
        Ok(stream) => {
            let session = stream.get_ref().1;
            let record = TlsSession {
                peer,
                server_name: session.server_name().map(str::to_owned),
                alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                client_cert: session
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| leaf.clone().into_owned()),
                version: session.protocol_version(),
            };
            shared.tls_log.send_modify(|log| log.sessions.push(record));
            let stream = ServerStream::Tls {
                stream: Box::new(stream),
                close,
            };
            Some((stream, shared))
        }
        Err(error) => {
            // tokio-rustls has tried to send the alert; dropping the socket
            // closes it.
            let failure = TlsFailure::new(peer, &error);
            shared.tls_log.send_modify(|log| log.failures.push(failure));
            None
        }
    }
}

/// A running HTTP/1.1 fault server on `127.0.0.1` (or the address set with
/// [`HttpServerBuilder::bind_ip`]).
///
/// It answers real HTTP/1.1 requests on the routes listed in the
/// [module documentation](crate::http), keeps connections alive, injects the
/// faults set on its [`HttpServerBuilder`], counts every request (by
/// `x-request-id`, to catch duplicates), and reports every accept, request
/// and close through [`HttpServer::events`].
///
/// Dropping it stops the server thread promptly and closes the listener and
/// every connection (no events are sent for those closes).
///
/// ```
/// use std::time::Duration;
/// use connpool_testkit::CloseMode;
/// use connpool_testkit::http::{HttpCloseCause, HttpServer};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let server = HttpServer::builder()
///     .idle_close(Duration::from_millis(50), CloseMode::Fin)
///     .start()?;
/// let mut events = server.events();
///
/// let mut client = tokio::net::TcpStream::connect(server.addr()).await?;
/// client
///     .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nx-request-id: 7\r\n\r\n")
///     .await?;
/// let expected: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-request-id: 7\r\n\r\nok";
/// let mut response = vec![0; expected.len()];
/// client.read_exact(&mut response).await?;
/// assert_eq!(response, expected);
/// assert_eq!(server.processed("GET", "7"), 1);
///
/// // No sleep: the event says the server's FIN has been sent.
/// let (_peer, mode, cause) = events.next_closed().await.expect("server running");
/// assert_eq!((mode, cause), (CloseMode::Fin, HttpCloseCause::IdleTimeout));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct HttpServer {
    /// Dropping it stops the server thread.
    server: ServerThread,
    shared: Arc<Shared>,
}

impl HttpServer {
    /// A builder for a server with faults. Same as
    /// `HttpServerBuilder::default()`.
    #[must_use]
    pub fn builder() -> HttpServerBuilder {
        HttpServerBuilder::default()
    }

    /// Starts a well-behaved keep-alive server (no faults except those of
    /// the fault routes).
    ///
    /// # Errors
    ///
    /// As [`HttpServerBuilder::start`].
    pub fn start_default() -> io::Result<HttpServer> {
        Self::builder().start()
    }

    /// The address the server listens on (`127.0.0.1:<port>`, unless set
    /// with [`HttpServerBuilder::bind_ip`]).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://<addr>` (e.g. `http://127.0.0.1:<port>`), or `https://<addr>`
    /// for a server started with [`HttpServerBuilder::start_tls`], followed
    /// by `path_and_query` (which should start with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}{path_and_query}", self.addr())
    }

    /// Whether the server speaks TLS (started with
    /// [`HttpServerBuilder::start_tls`]).
    pub fn is_tls(&self) -> bool {
        self.shared.tls
    }

    /// The TLS handshakes completed so far, in order: per connection, the
    /// SNI name the client sent, the ALPN protocol, the client certificate.
    /// A session is recorded before its connection is booked, so after
    /// [`HttpEvent::Accepted`] (or a response) it is here. Empty for a plain
    /// server.
    pub fn tls_sessions(&self) -> Vec<TlsSession> {
        self.shared.tls_log.borrow().sessions.clone()
    }

    /// The TLS handshakes that failed so far, in order (see
    /// [`HttpServer::wait_tls_failures`] to wait for one). Empty for a plain
    /// server.
    pub fn tls_failures(&self) -> Vec<TlsFailure> {
        self.shared.tls_log.borrow().failures.clone()
    }

    /// Waits until at least `count` TLS handshakes have failed, and returns
    /// them all (as [`HttpServer::tls_failures`]). The server may see a
    /// handshake fail after the client did (a client that rejects the
    /// server's certificate sends its alert and moves on), so a test waits
    /// on this instead of sleeping. Waits forever if that never happens:
    /// wrap it in a timeout. Works from any async runtime.
    pub async fn wait_tls_failures(&self, count: usize) -> Vec<TlsFailure> {
        let mut log = self.shared.tls_log.subscribe();
        // The sender lives in `self.shared`, so this cannot fail.
        let ready = log.wait_for(|log| log.failures.len() >= count).await;
        ready.map(|log| log.failures.clone()).unwrap_or_default()
    }

    /// Closes every idle connection (accepted, waiting for the first byte of
    /// its next request) in `mode`, and returns how many were closed. Each
    /// one sends an [`HttpEvent::Closed`] with [`HttpCloseCause::Commanded`]
    /// before this returns, and the socket has been closed (shut down for
    /// [`CloseMode::Fin`], reset for [`CloseMode::Rst`]).
    ///
    /// A connection counts as idle from just before the last bytes of a
    /// response are written (unless the server closes it after that
    /// response, or the next request is already buffered), so a client that
    /// has read a whole response can count on reaching the connection. If
    /// that last write is still blocked (a client not reading), this waits
    /// for it.
    ///
    /// Busy connections (reading a request, delaying or writing its
    /// response, waiting in `/never`) are left alone and not counted; this
    /// does not wait for them. Only connections the server has accepted are
    /// reached: after
    /// a client's `connect` returns, wait for [`HttpEvent::Accepted`] (or
    /// complete a request) before calling this.
    ///
    /// Works from any async runtime.
    pub async fn close_idle(&self, mode: CloseMode) -> usize {
        self.shared
            .hub
            .broadcast(|ack| Command::Close { mode, ack })
            .await
    }

    /// Writes `bytes` to every idle connection without being asked (a stray
    /// `408`, garbage), and returns how many connections got them, after the
    /// writes completed. The connections stay open and their idle timers keep
    /// running. Reaches the same connections as [`HttpServer::close_idle`].
    pub async fn send_unsolicited(&self, bytes: &[u8]) -> usize {
        let bytes: Arc<[u8]> = Arc::from(bytes);
        self.shared
            .hub
            .broadcast(|ack| Command::SendUnsolicited {
                bytes: Arc::clone(&bytes),
                ack,
            })
            .await
    }

    /// A new subscriber to [`HttpEvent`]s, seeing events from now on. Events
    /// are never dropped; the stream ends when the server is dropped.
    pub fn events(&self) -> HttpEventStream {
        HttpEventStream {
            rx: self.shared.hub.subscribe(),
        }
    }

    /// Connections accepted so far. Updated before [`HttpEvent::Accepted`]
    /// is sent.
    pub fn accepted(&self) -> u64 {
        self.shared.hub.accepted()
    }

    /// Connections accepted and not yet closed. Updated before the socket is
    /// closed, so a client that observed the close sees it.
    pub fn open_connections(&self) -> usize {
        self.shared.hub.open()
    }

    /// Connections the server closed on its own initiative: causes
    /// [`IdleTimeout`](HttpCloseCause::IdleTimeout),
    /// [`AfterRequests`](HttpCloseCause::AfterRequests),
    /// [`MaxRequests`](HttpCloseCause::MaxRequests),
    /// [`Commanded`](HttpCloseCause::Commanded),
    /// [`Route`](HttpCloseCause::Route) and
    /// [`Vanished`](HttpCloseCause::Vanished). Updated before the socket is
    /// closed.
    pub fn closed_by_server(&self) -> u64 {
        self.shared.hub.closed_by_server()
    }

    /// Requests processed so far, on all connections. A request counts once
    /// it has been read completely (head and body), before any delay and
    /// before the first byte of its response: a client that read a response
    /// always sees its request counted. `/never` requests count too; a
    /// request dropped by `/vanish-once/<tag>` does not (see
    /// [`HttpServer::vanished`]).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests dropped unprocessed by `/vanish-once/<tag>`: read completely,
    /// then the connection was closed with no response byte
    /// ([`HttpCloseCause::Vanished`]). They are not counted by
    /// [`HttpServer::requests`], [`HttpServer::processed`] or
    /// [`HttpServer::duplicates`], and send no [`HttpEvent::Request`]. At
    /// most one per tag. Updated before the socket is closed.
    pub fn vanished(&self) -> u64 {
        self.shared.vanished.load(Ordering::SeqCst)
    }

    /// How many times the server processed a request with `method` and
    /// header `x-request-id: <id>` (counted as in [`HttpServer::requests`];
    /// the id is compared after trimming spaces).
    pub fn processed(&self, method: &str, id: &str) -> u64 {
        lock(&self.shared.processed)
            .get(&(method.to_owned(), id.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Every `(method, id, count)` processed more than once, sorted by
    /// method then id. Empty when no request was duplicated.
    pub fn duplicates(&self) -> Vec<(String, String, u64)> {
        let mut duplicates: Vec<_> = lock(&self.shared.processed)
            .iter()
            .filter(|&(_, &count)| count > 1)
            .map(|((method, id), &count)| (method.clone(), id.clone(), count))
            .collect();
        duplicates.sort();
        duplicates
    }
}

/// The events of one subscriber, from [`HttpServer::events`].
#[derive(Debug)]
pub struct HttpEventStream {
    rx: mpsc::UnboundedReceiver<HttpEvent>,
}

impl HttpEventStream {
    /// The next event, or `None` once the server has been dropped and every
    /// event was read.
    pub async fn next(&mut self) -> Option<HttpEvent> {
        self.rx.recv().await
    }

    /// The next [`HttpEvent::Closed`] as `(peer, mode, cause)`, skipping
    /// other events.
    pub async fn next_closed(&mut self) -> Option<(SocketAddr, CloseMode, HttpCloseCause)> {
        loop {
            if let HttpEvent::Closed {
                peer, mode, cause, ..
            } = self.next().await?
            {
                return Some((peer, mode, cause));
            }
        }
    }

    /// The peer of the next [`HttpEvent::Accepted`], skipping other events.
    pub async fn next_accepted(&mut self) -> Option<SocketAddr> {
        loop {
            if let HttpEvent::Accepted { peer } = self.next().await? {
                return Some(peer);
            }
        }
    }

    /// The next [`HttpEvent::Request`] as `(peer, method, path, id)`,
    /// skipping other events.
    pub async fn next_request(&mut self) -> Option<(SocketAddr, String, String, Option<String>)> {
        loop {
            if let HttpEvent::Request {
                peer,
                method,
                path,
                id,
            } = self.next().await?
            {
                return Some((peer, method, path, id));
            }
        }
    }
}

/// State shared by the handle, the accept loop and every connection task.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Counters, event subscribers and the registry of connections.
    pub(super) hub: Hub<HttpEvent>,
    requests: AtomicU64,
    vanished: AtomicU64,
    /// The `/vanish-once/<tag>` tags whose request already vanished.
    vanished_tags: Mutex<HashSet<String>>,
    /// `(method, x-request-id)` -> times processed.
    processed: Mutex<HashMap<(String, String), u64>>,
    /// Whether connections are TLS.
    tls: bool,
    /// The TLS handshakes, successful or not.
    tls_log: watch::Sender<TlsLog>,
}

/// What the server recorded about TLS handshakes.
#[derive(Debug, Default)]
struct TlsLog {
    sessions: Vec<TlsSession>,
    failures: Vec<TlsFailure>,
}

impl Shared {
    /// Counts a processed request (see [`HttpServer::requests`]).
    pub(super) fn count_request(&self, method: &str, id: Option<&str>) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if let Some(id) = id {
            *lock(&self.processed)
                .entry((method.to_owned(), id.to_owned()))
                .or_insert(0) += 1;
        }
    }

    /// Claims the one vanishing of `/vanish-once/<tag>`: returns `true`, and
    /// counts it (see [`HttpServer::vanished`]), only the first time for
    /// `tag`.
    pub(super) fn vanish(&self, tag: &str) -> bool {
        let first = lock(&self.vanished_tags).insert(tag.to_owned());
        if first {
            self.vanished.fetch_add(1, Ordering::SeqCst);
        }
        first
    }
}

impl Cause for HttpCloseCause {
    const CLIENT_CLOSED: Self = HttpCloseCause::ClientClosed;
    const ERROR: Self = HttpCloseCause::Error;
    const IDLE_TIMEOUT: Self = HttpCloseCause::IdleTimeout;
    const COMMANDED: Self = HttpCloseCause::Commanded;

    fn by_server(self) -> bool {
        self.is_server_initiative()
    }
}
