//! Real, fault-injecting TCP servers for connpool's tests, benchmarks and demo.
//!
//! A connection pool's hardest bugs live in the gap between "the server closed
//! this idle connection" and "the pool noticed". Mocks cannot reproduce that
//! gap, so this crate runs **real** line-echo servers on `127.0.0.1` that close
//! idle connections the way real servers do, and that *tell the test* when they
//! have done so. Race tests then wait on facts instead of on sleeps.
//!
//! # The protocol
//!
//! Line echo: the client writes a request line ending in `\n` (one
//! *exchange*), and the server writes the same bytes back, `\n` included.
//! A line may be at most [`MAX_LINE_LEN`] bytes long; a longer one makes the
//! server close the connection. A connection is *idle* while the server waits
//! for the first byte of the next request line.
//!
//! # The pieces
//!
//! * [`FaultServer`] is the server. Configure faults with
//!   [`FaultServer::builder`] ([`FaultServerBuilder::idle_close`],
//!   [`FaultServerBuilder::close_after`]) or start a plain echo server with
//!   [`FaultServer::start_echo`]. While it runs, the test can close idle
//!   connections on command ([`FaultServer::close_idle`]), push unsolicited
//!   bytes ([`FaultServer::send_unsolicited`]), read exact counters, and follow
//!   every accept and close through [`FaultServer::events`].
//! * [`http::HttpServer`] is the same idea one protocol up: a real HTTP/1.1
//!   keep-alive server whose builder sets idle closes (FIN, RST, optionally
//!   after an unsolicited `408`), rude and polite closes after N requests and
//!   `Keep-Alive` hints, whose routes inject response faults (truncated and
//!   close-delimited bodies, garbage, conflicting lengths, requests never
//!   answered), and which counts requests by `x-request-id` to catch
//!   duplicates. See the [`http`] module.
//! * [`tls`] makes certificates at test time (a [`tls::TestCa`] issues
//!   valid, expired, wrong-name and client certificates), and
//!   [`http::HttpServerBuilder::start_tls`] runs the same HTTP server, with
//!   every fault, over TLS: optional client certificates, ALPN `http/1.1`,
//!   closes with or without `close_notify`, and a record of each handshake
//!   (SNI name, ALPN, client certificate, or why it failed).
//! * Each server runs on its own thread with its own Tokio runtime, so it
//!   works whatever runtime the caller uses (or none), and it keeps running
//!   while the test's runtime is blocked.
//! * On the client side, [`tcp_state`] asks the kernel for a socket's TCP state
//!   and [`wait_peer_closed`] waits until the server's FIN or RST has actually
//!   *reached* the client socket; [`tcp_info`] shows whether what it sent is
//!   being retransmitted and never acknowledged.
//! * [`netns`] (Linux, root) puts a real middlebox between client and server:
//!   three network namespaces, with conntrack and nftables in the middle one,
//!   that forget idle flows and then drop (or reset) their packets, the way
//!   load balancers, NAT gateways and firewalls do.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use connpool_testkit::{CloseCause, CloseMode, FaultServer, TcpState, wait_peer_closed};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = FaultServer::builder()
//!     .idle_close(Duration::from_millis(50), CloseMode::Fin)
//!     .start()?;
//! let mut events = server.events();
//!
//! let mut client = tokio::net::TcpStream::connect(server.addr()).await?;
//! client.write_all(b"ping\n").await?;
//! let mut answer = [0; 5];
//! client.read_exact(&mut answer).await?;
//! assert_eq!(&answer, b"ping\n");
//!
//! // No sleep: wait until the server's FIN has arrived at our socket.
//! let state = wait_peer_closed(&client, Duration::from_secs(5)).await?;
//! assert_eq!(state, TcpState::CloseWait);
//!
//! let (_peer, mode, cause) = events.next_closed().await.expect("server still running");
//! assert_eq!((mode, cause), (CloseMode::Fin, CloseCause::IdleTimeout));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod connection;
pub mod http;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod nginx;
mod plumbing;
mod server;
mod sys;
mod tcp_state;
pub mod tls;

use std::net::SocketAddr;

pub use server::{EventStream, FaultServer, FaultServerBuilder};
pub use tcp_state::{TcpInfo, TcpState, tcp_info, tcp_state, wait_peer_closed};

/// The longest request line the server accepts, in bytes, counting the
/// final `\n`. A longer line makes the server close the connection with
/// [`CloseCause::Error`].
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// How the server ends a connection.
///
/// ```
/// use connpool_testkit::CloseMode;
/// // Most servers close politely; crashed or overloaded ones reset.
/// let modes = [CloseMode::Fin, CloseMode::Rst];
/// assert_ne!(modes[0], modes[1]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// Orderly close: `shutdown(Write)` (sends a FIN), then the socket is
    /// dropped. The client reads end-of-file.
    ///
    /// As with any real server, if request bytes had arrived that the server
    /// had not read yet, the kernel answers them with an RST.
    Fin,
    /// Abortive close: `SO_LINGER` is set to zero, then the socket is dropped,
    /// so the kernel sends an RST. The client's read fails with
    /// [`std::io::ErrorKind::ConnectionReset`].
    Rst,
}

/// Why the server closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCause {
    /// The connection stayed idle for the time set with
    /// [`FaultServerBuilder::idle_close`].
    IdleTimeout,
    /// The connection answered the number of exchanges set with
    /// [`FaultServerBuilder::close_after`].
    AfterExchanges,
    /// The test asked for it with [`FaultServer::close_idle`].
    Commanded,
    /// The client closed its side first (the server read end-of-file), and
    /// the server then dropped its socket.
    ClientClosed,
    /// A read or write failed, or a request line was longer than
    /// [`MAX_LINE_LEN`].
    Error,
}

/// Something that happened on a [`FaultServer`], as seen by
/// [`FaultServer::events`].
#[derive(Clone, Debug)]
pub enum ServerEvent {
    /// The server accepted a connection from `peer` (the client's local
    /// address). From this point [`FaultServer::close_idle`] and
    /// [`FaultServer::send_unsolicited`] reach the connection.
    Accepted {
        /// The client's address.
        peer: SocketAddr,
    },
    /// The server closed the connection from `peer`.
    ///
    /// Sent *after* the close was performed: the FIN or RST has left the
    /// server's socket and the socket has been dropped.
    Closed {
        /// The client's address.
        peer: SocketAddr,
        /// How the socket was closed. Always [`CloseMode::Fin`] for
        /// [`CloseCause::ClientClosed`] and [`CloseCause::Error`].
        mode: CloseMode,
        /// Why the socket was closed.
        cause: CloseCause,
        /// How many exchanges this connection answered.
        exchanges: u64,
    },
}
