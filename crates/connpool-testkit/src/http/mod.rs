//! An HTTP/1.1 fault server: real requests, real keep-alive, real faults.
//!
//! [`HttpServer`] reads real HTTP/1.1 requests on `127.0.0.1` (heads parsed
//! with `httparse`; bodies delimited by `Content-Length` or chunked), keeps
//! connections alive, and closes them the ways real servers do: idle timeouts
//! with FIN or RST (optionally after an unsolicited `408`), a rude close after
//! N responses, a polite `Connection: close` on the last allowed request.
//! Its routes inject the response-side faults (truncated bodies, garbage,
//! conflicting lengths, requests never answered). Like the line-echo
//! [`FaultServer`](crate::FaultServer), it runs on its own thread, counts
//! everything, and *tells the test* what it did through
//! [`HttpServer::events`], so tests wait on facts instead of sleeping.
//!
//! # Connection handling
//!
//! * Keep-alive by default. A request with `Connection: close` gets a response
//!   with `Connection: close`, then the server closes with a FIN
//!   ([`HttpCloseCause::ClientAskedClose`]). An HTTP/1.0 request is treated
//!   the same way unless it says `Connection: keep-alive` (its response then
//!   says `Connection: keep-alive` too). Responses are always `HTTP/1.1`.
//! * A malformed request (bad head, head over 64 KiB, conflicting
//!   `Content-Length`s, `Content-Length` with `Transfer-Encoding`, a coding
//!   other than `chunked`, a bad chunk, a body over 64 MiB) gets
//!   `400 Bad Request` with `Connection: close` and body
//!   `bad request: <why>`, then a FIN ([`HttpCloseCause::Error`]).
//! * A request with `Expect: 100-continue` and a body always gets
//!   [`CONTINUE_100`] before the server reads the body.
//! * A response echoes the request's `x-request-id` field, if any. The
//!   fields the connection adds come after the route's own and its length
//!   field, in this order: `x-request-id`, `Keep-Alive`, `Connection`.
//! * Pipelined requests are answered in order.
//!
//! So `GET / HTTP/1.1` with no other settings is answered with exactly
//! `HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`.
//!
//! # Routes
//!
//! By path; unknown paths are `/`. `N` is a decimal byte count. Generated
//! bodies follow [`body_pattern`] (`abc…xyzabc…`). A bad parameter gets
//! `400` with body `bad parameter: …`, on a connection that stays open.
//!
//! | Route | Answer |
//! |---|---|
//! | `/` | `200`, `Content-Length: 2`, body `ok` |
//! | `/bytes/N` | `200`, `Content-Length: N`, `N` pattern bytes |
//! | `/chunked/N` | `200`, `Transfer-Encoding: chunked`, `Trailer: x-checksum`; chunks of up to 1000 bytes (size in lowercase hex), the first with extension `;testkit=first`; last chunk `0`, then trailer `x-checksum: <`[`checksum`]`>` |
//! | `/close-delimited/N` | `200` with no length and `Connection: close`, `N` bytes, then FIN ([`HttpCloseCause::Route`]) |
//! | `/status/CODE` | that status (200–999) with body `ok`; `204` and `304` with no length field and no body |
//! | `/echo` | `200` with the request body |
//! | `/interim` | [`INTERIM_RESPONSES`] (`100`, then `103` with a `Link` field), then `200` `ok` |
//! | `/close-mid-body` | `HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n…\r\n\r\n` and 100 pattern bytes, then FIN ([`HttpCloseCause::Route`]) |
//! | `/truncated-chunked` | `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n…\r\n\r\n` then `64\r\n` + 100 pattern bytes + `\r\n64\r\n` + pattern bytes 100..110 (`wxyzabcdef`), then FIN ([`HttpCloseCause::Route`]) |
//! | `/slow-headers?ms=N` | waits `N` ms (default 10000) before writing anything, then `200` `ok` |
//! | `/oversize-headers?bytes=N` | `200` `ok` whose head has `x-filler-0`, `x-filler-1`, … lines of 100 bytes totalling exactly `N` bytes (default 65536; at least one line) |
//! | `/oversize-headers?count=K` | `200` `ok` with `K` fields `x-filler-<i>: x` |
//! | `/garbage` | exactly [`GARBAGE`] (`garbage\r\n\r\n`); the connection stays open |
//! | `/garbage-status` | exactly [`GARBAGE_STATUS`] (`HTTP/1.1 abc OK\r\n\r\n`); the connection stays open |
//! | `/never` | nothing, ever; the server discards input until the client closes ([`HttpCloseCause::ClientClosed`]) or the server stops |
//! | `/conflicting-length` | `200`, `Content-Length: 5` and `Content-Length: 6`, body `hello!` (6 bytes) |
//! | `/duplicate-length` | `200`, `Content-Length: 2` twice, body `ok` |
//! | `/keep-alive-hint?timeout=N&max=M` | `200` `ok` with `Keep-Alive: timeout=N, max=M` (`timeout=N` alone without `max`; `N` defaults to 5), whatever the builder says |
//! | `/vanish-once/<tag>?mode=fin` or `?mode=rst` | the keep-alive race (see below): the first such request for `<tag>` (any method, server-wide) that arrives on a connection which has already answered a response is read completely and never answered; the connection is closed with a FIN (`fin`, the default) or an RST (`rst`) ([`HttpCloseCause::Vanished`]). Any other request for `<tag>` gets `200` `ok`, like `/` |
//!
//! `/vanish-once/<tag>` models, deterministically, the race every pooling
//! client must survive: the server closes a keep-alive connection it finds
//! idle at the very moment the client reuses it, so the close crosses the
//! request on the wire. The client sees its request written, then
//! end-of-file (or a reset) where the response should be, and *the request
//! was never processed*: it is not counted by [`HttpServer::requests`],
//! [`HttpServer::processed`] or [`HttpServer::duplicates`], and sends no
//! [`HttpEvent::Request`]; it is counted by [`HttpServer::vanished`]
//! instead, so a test can check that a retry was safe. `<tag>` is the rest
//! of the path (it must not be empty; `mode` must be `fin` or `rst`, else
//! `400`). Each tag vanishes at most once: later requests for it, on any
//! connection, are answered. A request for it on a fresh connection (one
//! that has answered nothing, as after a retry on a new connection) is
//! answered and does not use the tag up.
//!
//! `HEAD` on any route gets the same head and no body (the fault routes
//! still close afterwards). The raw answers of `/garbage` and
//! `/garbage-status` count as responses for
//! [`close_after`](HttpServerBuilder::close_after) and
//! [`max_requests`](HttpServerBuilder::max_requests), and the connection
//! still closes after them if the request asked for it.
//!
//! # Counting and events
//!
//! A request is *processed* once it has been read completely, before any
//! delay and before its first response byte ([`HttpServer::requests`],
//! [`HttpServer::processed`] and [`HttpServer::duplicates`] by method and
//! `x-request-id`, and an [`HttpEvent::Request`]), unless
//! `/vanish-once/<tag>` drops it ([`HttpServer::vanished`]).
//! [`HttpEvent::Closed`] is sent only after the close was performed.
//!
//! # TLS
//!
//! [`HttpServerBuilder::start_tls`] starts the same server speaking HTTPS,
//! with the certificate and settings of a [`ServerTls`](crate::tls::ServerTls)
//! (see the [`tls`](crate::tls) module for certificates made at test time).
//! Routes, faults, commands, counters and events work unchanged; a
//! connection is booked once its handshake completes, each handshake is
//! recorded ([`HttpServer::tls_sessions`], [`HttpServer::tls_failures`]), and
//! a FIN close sends a `close_notify` alert first or not, as
//! [`TlsClose`](crate::tls::TlsClose) says.
//!
//! # Example
//!
//! ```
//! use connpool_testkit::CloseMode;
//! use connpool_testkit::http::{HttpCloseCause, HttpServer};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // The polite server: the second response says `Connection: close`.
//! let server = HttpServer::builder().max_requests(2).start()?;
//! let mut events = server.events();
//! let mut client = tokio::net::TcpStream::connect(server.addr()).await?;
//!
//! client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
//! let mut first = [0; 40];
//! client.read_exact(&mut first).await?;
//! assert_eq!(&first, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
//!
//! client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
//! let mut second = Vec::new();
//! client.read_to_end(&mut second).await?; // up to the server's FIN
//! assert_eq!(
//!     second,
//!     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
//! );
//!
//! let (_peer, mode, cause) = events.next_closed().await.expect("server running");
//! assert_eq!((mode, cause), (CloseMode::Fin, HttpCloseCause::MaxRequests));
//! assert_eq!(server.requests(), 2);
//! # Ok(())
//! # }
//! ```

mod connection;
mod request;
mod response;
mod routes;
mod server;
mod stream;

use std::net::SocketAddr;

use crate::CloseMode;

pub use server::{HttpEventStream, HttpServer, HttpServerBuilder};

/// The unsolicited response written before an idle close when
/// [`HttpServerBuilder::idle_408`] is set.
pub const REQUEST_TIMEOUT_408: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The interim response written before reading a body announced with
/// `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The interim responses `/interim` writes before its `200`.
pub const INTERIM_RESPONSES: &[u8] = routes::INTERIM;

/// The whole answer of `/garbage` (not HTTP).
pub const GARBAGE: &[u8] = routes::GARBAGE;

/// The whole answer of `/garbage-status` (a status line with a bad code).
pub const GARBAGE_STATUS: &[u8] = routes::GARBAGE_STATUS;

/// The first `len` bytes of the pattern every generated body follows:
/// byte `i` is `b'a' + i % 26`.
///
/// ```
/// assert_eq!(connpool_testkit::http::body_pattern(28), b"abcdefghijklmnopqrstuvwxyzab");
/// ```
pub fn body_pattern(len: usize) -> Vec<u8> {
    (0..len).map(response::pattern_byte).collect()
}

/// The `x-checksum` trailer value of `/chunked/N` for body `bytes`: the sum
/// of the bytes modulo 2³².
///
/// ```
/// use connpool_testkit::http::{body_pattern, checksum};
/// assert_eq!(checksum(&body_pattern(3)), 97 + 98 + 99);
/// ```
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |sum, &byte| sum.wrapping_add(u32::from(byte)))
}

/// Why an [`HttpServer`] closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpCloseCause {
    /// No request byte arrived for the time set with
    /// [`HttpServerBuilder::idle_close`].
    IdleTimeout,
    /// The connection wrote the number of responses set with
    /// [`HttpServerBuilder::close_after`] (no `Connection: close` was said).
    AfterRequests,
    /// The response announced `Connection: close` because of
    /// [`HttpServerBuilder::max_requests`].
    MaxRequests,
    /// The request asked for it (`Connection: close`, or HTTP/1.0 without
    /// keep-alive), and the response said `Connection: close`.
    ClientAskedClose,
    /// The test asked for it with [`HttpServer::close_idle`].
    Commanded,
    /// The client closed its side first (the server read end-of-file), and
    /// the server then closed its socket.
    ClientClosed,
    /// A fault route closed it (`/close-delimited/N`, `/close-mid-body`,
    /// `/truncated-chunked`).
    Route,
    /// `/vanish-once/<tag>` closed it without answering the request it had
    /// just read, which was not processed (see [`HttpServer::vanished`]):
    /// what a client sees when the server's idle close crosses its request.
    /// The mode is the one the route asked for.
    Vanished,
    /// A malformed request (answered with `400`), or a failed read or write.
    Error,
}

impl HttpCloseCause {
    /// Whether the server closed on its own initiative (see
    /// [`HttpServer::closed_by_server`]).
    fn is_server_initiative(self) -> bool {
        matches!(
            self,
            HttpCloseCause::IdleTimeout
                | HttpCloseCause::AfterRequests
                | HttpCloseCause::MaxRequests
                | HttpCloseCause::Commanded
                | HttpCloseCause::Route
                | HttpCloseCause::Vanished
        )
    }
}

/// Something that happened on an [`HttpServer`], as seen by
/// [`HttpServer::events`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpEvent {
    /// The server accepted a connection from `peer`. From this point
    /// [`HttpServer::close_idle`] reaches it.
    Accepted {
        /// The client's address (its local address).
        peer: SocketAddr,
    },
    /// The server processed a request: read it completely, and is about to
    /// answer it (after any delay). Sent before the first response byte.
    Request {
        /// The client's address.
        peer: SocketAddr,
        /// The method, e.g. `GET`.
        method: String,
        /// The request target as sent: path and query.
        path: String,
        /// The `x-request-id` field, trimmed, if any.
        id: Option<String>,
    },
    /// The server closed the connection from `peer`.
    ///
    /// Sent *after* the close was performed: the FIN or RST has left the
    /// server's socket and the socket has been dropped.
    Closed {
        /// The client's address.
        peer: SocketAddr,
        /// How the socket was closed. Always [`CloseMode::Fin`] except for
        /// [`HttpCloseCause::IdleTimeout`], [`HttpCloseCause::AfterRequests`],
        /// [`HttpCloseCause::Commanded`] and [`HttpCloseCause::Vanished`],
        /// which use the mode asked for.
        mode: CloseMode,
        /// Why the socket was closed.
        cause: HttpCloseCause,
        /// How many requests this connection processed (a vanished request
        /// is not one).
        requests: u64,
    },
}
