//! The server: its settings, its handle, the state shared with the server
//! thread, and the accept loop.
//!
//! Threads and tasks:
//!
//! * The caller holds a [`FaultServer`]. It owns the server thread (a
//!   `ServerThread`) and an `Arc<Shared>` (the `Hub` of counters, event
//!   subscribers and registry of connections, plus the exchange counter).
//! * The server thread runs a current-thread Tokio runtime whose main future is
//!   the accept loop. Every accepted connection becomes a task
//!   (see `connection.rs`).
//! * Control calls ([`FaultServer::close_idle`], ...) do not go through the
//!   server thread: they send a command straight to each registered
//!   connection task and await its acknowledgement. Both channels are
//!   `tokio::sync` channels, which work from any runtime (or none).
//!
//! The thread, the hub and the commands are shared with the HTTP server (see
//! `plumbing.rs`). Every line-echo connection stays registered as idle, so
//! commands reach every open connection.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::connection::Connection;
use crate::plumbing::{Cause, Command, Hub, ServerThread};
use crate::{CloseCause, CloseMode, ServerEvent};

/// The faults a [`FaultServer`] injects. Start from
/// [`FaultServer::builder`] (or `FaultServerBuilder::default()`), which gives a
/// plain echo server, and add faults.
///
/// ```
/// use std::time::Duration;
/// use connpool_testkit::{CloseMode, FaultServer};
///
/// // Like a keep-alive HTTP server: closes connections idle for 100 ms and
/// // never serves more than 10 requests on one connection.
/// let server = FaultServer::builder()
///     .idle_close(Duration::from_millis(100), CloseMode::Fin)
///     .close_after(10, CloseMode::Fin)
///     .start()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultServerBuilder {
    pub(crate) idle_close: Option<(Duration, CloseMode)>,
    pub(crate) close_after: Option<(u64, CloseMode)>,
}

impl FaultServerBuilder {
    /// Closes a connection, in `mode`, once it has been idle (waiting for the
    /// first byte of a request line) for `after`.
    ///
    /// The timer starts when the connection becomes idle: on accept, and after
    /// each answer is written. It does not run while a request line is only
    /// partly received. `Duration::ZERO` closes a connection as soon as it is
    /// idle; a duration too large to represent as a deadline means "never".
    #[must_use]
    pub fn idle_close(mut self, after: Duration, mode: CloseMode) -> Self {
        self.idle_close = Some((after, mode));
        self
    }

    /// Closes a connection, in `mode`, right after writing its `exchanges`-th
    /// answer. Request lines the client already sent beyond that are not
    /// answered. `0` closes every connection right after accepting it.
    #[must_use]
    pub fn close_after(mut self, exchanges: u64, mode: CloseMode) -> Self {
        self.close_after = Some((exchanges, mode));
        self
    }

    /// Binds `127.0.0.1:0` and starts serving on a new thread.
    ///
    /// The listening socket is bound before this returns, so
    /// [`FaultServer::addr`] is valid at once and bind errors are returned
    /// here. This is a plain (blocking) function: call it from anywhere.
    ///
    /// # Errors
    ///
    /// Fails if the socket cannot be bound, or if the runtime or the thread
    /// cannot be created.
    pub fn start(self) -> io::Result<FaultServer> {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let server = ServerThread::start(
            "fault-server",
            Ipv4Addr::LOCALHOST.into(),
            move |id, peer, stream| {
                let connection =
                    Connection::new(id, peer, stream, Arc::clone(&thread_shared), self);
                tokio::spawn(connection.run());
            },
        )?;
        Ok(FaultServer { server, shared })
    }
}

/// A running fault-injecting line-echo server on `127.0.0.1`.
///
/// Dropping it stops the server thread and closes the listener and every
/// connection (no events are sent for those closes).
///
/// ```
/// use connpool_testkit::FaultServer;
/// use std::io::{Read, Write};
///
/// let server = FaultServer::start_echo()?;
/// let mut client = std::net::TcpStream::connect(server.addr())?;
/// client.write_all(b"hello\n")?;
/// let mut answer = [0; 6];
/// client.read_exact(&mut answer)?;
/// assert_eq!(&answer, b"hello\n");
/// assert_eq!(server.exchanges(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FaultServer {
    /// Dropping it stops the server thread.
    server: ServerThread,
    shared: Arc<Shared>,
}

impl FaultServer {
    /// A builder for a server with faults. Same as
    /// `FaultServerBuilder::default()`.
    #[must_use]
    pub fn builder() -> FaultServerBuilder {
        FaultServerBuilder::default()
    }

    /// Starts a server without faults: it echoes forever.
    ///
    /// # Errors
    ///
    /// As [`FaultServerBuilder::start`].
    pub fn start_echo() -> io::Result<FaultServer> {
        Self::builder().start()
    }

    /// The address the server listens on (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Closes every idle connection in `mode` and returns how many were
    /// closed. Each one sends a [`ServerEvent::Closed`] with
    /// [`CloseCause::Commanded`] before this returns.
    ///
    /// Returns only once each socket is closed: for [`CloseMode::Fin`] after
    /// `shutdown(Write)` and drop, for [`CloseMode::Rst`] after the abortive
    /// close. (The FIN/RST may still be on its way to the client; use
    /// [`wait_peer_closed`](crate::wait_peer_closed) on the client socket to
    /// know it arrived.)
    ///
    /// Only connections the server has accepted are reached: after a client's
    /// `connect` returns, wait for [`ServerEvent::Accepted`] (or complete an
    /// exchange) before calling this. A connection in the middle of a request
    /// line is closed right after it answers that line, so this waits for the
    /// client to finish the line.
    ///
    /// Works from any async runtime; it needs no Tokio driver.
    ///
    /// ```
    /// use connpool_testkit::{CloseMode, FaultServer};
    /// use std::io::Read;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = FaultServer::start_echo()?;
    /// let mut events = server.events();
    /// let mut client = std::net::TcpStream::connect(server.addr())?;
    /// events.next_accepted().await;
    ///
    /// assert_eq!(server.close_idle(CloseMode::Fin).await, 1);
    /// assert_eq!(client.read(&mut [0; 16])?, 0); // end-of-file
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close_idle(&self, mode: CloseMode) -> usize {
        self.shared
            .hub
            .broadcast(|ack| Command::Close { mode, ack })
            .await
    }

    /// Writes `bytes` to every idle connection without being asked (like an
    /// unsolicited `408 Request Timeout`, or garbage), and returns how many
    /// connections got them. Returns after the writes completed. The
    /// connections stay open, and their idle timers keep running.
    ///
    /// Reaches the same connections as [`FaultServer::close_idle`], with the
    /// same caveats.
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

    /// A new subscriber to [`ServerEvent`]s, seeing events from now on.
    /// Events are never dropped; the stream ends when the server is dropped.
    ///
    /// ```
    /// use connpool_testkit::{FaultServer, ServerEvent};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = FaultServer::start_echo()?;
    /// let mut events = server.events();
    /// let client = tokio::net::TcpStream::connect(server.addr()).await?;
    /// let peer = events.next_accepted().await;
    /// assert_eq!(peer, Some(client.local_addr()?));
    /// # Ok(())
    /// # }
    /// ```
    pub fn events(&self) -> EventStream {
        EventStream {
            rx: self.shared.hub.subscribe(),
        }
    }

    /// Connections accepted so far. Updated before
    /// [`ServerEvent::Accepted`] is sent.
    pub fn accepted(&self) -> u64 {
        self.shared.hub.accepted()
    }

    /// Request lines answered so far, on all connections. A line is counted
    /// before its answer is written, so a client that has read an answer
    /// always sees it counted.
    pub fn exchanges(&self) -> u64 {
        self.shared.exchanges.load(Ordering::SeqCst)
    }

    /// Connections accepted and not yet closed by the server. Updated before
    /// the socket is closed, so a client that observed the close sees it.
    pub fn open_connections(&self) -> usize {
        self.shared.hub.open()
    }

    /// Connections the server closed on purpose, i.e. with
    /// [`CloseCause::IdleTimeout`], [`CloseCause::AfterExchanges`] or
    /// [`CloseCause::Commanded`]. Updated before the socket is closed.
    pub fn closed_by_server(&self) -> u64 {
        self.shared.hub.closed_by_server()
    }
}

/// The events of one subscriber, from [`FaultServer::events`].
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<ServerEvent>,
}

impl EventStream {
    /// The next event, or `None` once the server has been dropped and every
    /// event was read.
    pub async fn next(&mut self) -> Option<ServerEvent> {
        self.rx.recv().await
    }

    /// The next [`ServerEvent::Closed`] as `(peer, mode, cause)`, skipping
    /// other events. Use [`EventStream::next`] to also see the exchange count.
    pub async fn next_closed(&mut self) -> Option<(SocketAddr, CloseMode, CloseCause)> {
        loop {
            if let ServerEvent::Closed {
                peer, mode, cause, ..
            } = self.next().await?
            {
                return Some((peer, mode, cause));
            }
        }
    }

    /// The peer of the next [`ServerEvent::Accepted`], skipping other events.
    pub async fn next_accepted(&mut self) -> Option<SocketAddr> {
        loop {
            if let ServerEvent::Accepted { peer } = self.next().await? {
                return Some(peer);
            }
        }
    }
}

/// State shared by the handle, the accept loop and every connection task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Counters, event subscribers and the registry of connections.
    pub(crate) hub: Hub<ServerEvent>,
    pub(crate) exchanges: AtomicU64,
}

impl Cause for CloseCause {
    const CLIENT_CLOSED: Self = CloseCause::ClientClosed;
    const ERROR: Self = CloseCause::Error;
    const IDLE_TIMEOUT: Self = CloseCause::IdleTimeout;
    const COMMANDED: Self = CloseCause::Commanded;

    fn by_server(self) -> bool {
        matches!(
            self,
            CloseCause::IdleTimeout | CloseCause::AfterExchanges | CloseCause::Commanded
        )
    }
}
