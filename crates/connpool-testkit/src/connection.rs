//! One accepted connection: echo request lines, inject faults, obey commands.
//!
//! The task alternates between two phases:
//!
//! * **idle** (no byte of the next request line received yet): wait for input,
//!   for a command from the test, and for the idle timer, whichever is first;
//! * **mid-request** (part of a line received): wait for more input only.
//!   Commands sent meanwhile wait in the channel until the connection is idle
//!   again.
//!
//! Whatever ends the connection produces an [`Ending`]; [`Connection::run`]
//! then performs the close in one place, in a fixed order: update the
//! counters, close the socket, send the event, acknowledge the command.
//!
//! The idle phase and the close are shared with the HTTP server (see
//! `plumbing.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::plumbing::{self, Command};
use crate::server::{FaultServerBuilder, Shared};
use crate::{CloseCause, CloseMode, MAX_LINE_LEN, ServerEvent};

/// How much buffer space to offer each read.
const READ_CHUNK: usize = 4096;

/// Why and how a connection ends, plus the command to acknowledge (if a
/// command caused the end).
type Ending = plumbing::Ending<CloseCause>;

/// A connection's state, owned by its task.
pub(crate) struct Connection {
    id: u64,
    peer: SocketAddr,
    stream: TcpStream,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    settings: FaultServerBuilder,
    /// Received bytes not answered yet. Empty exactly when the connection is
    /// idle.
    buf: Vec<u8>,
    /// Request lines answered on this connection.
    exchanges: u64,
}

impl Connection {
    /// Books the accepted connection `id` (registered, counted, then
    /// [`ServerEvent::Accepted`] sent), so that it can be served.
    pub(crate) fn new(
        id: u64,
        peer: SocketAddr,
        stream: TcpStream,
        shared: Arc<Shared>,
        settings: FaultServerBuilder,
    ) -> Self {
        let commands = shared.hub.register(id, ServerEvent::Accepted { peer });
        Connection {
            id,
            peer,
            stream,
            commands,
            shared,
            settings,
            buf: Vec::new(),
            exchanges: 0,
        }
    }

    /// Serves the connection until it ends, then closes it.
    pub(crate) async fn run(mut self) {
        let ending = self.serve().await;

        // 1. Counters and registry first: whoever observes the close below
        //    must already see them.
        self.shared.hub.forget(self.id, ending.cause);
        // 2. The close itself, 3. the event, which promises the close
        //    already happened, 4. the acknowledgement, so `close_idle`
        //    returns after the event.
        let Connection {
            stream,
            shared,
            peer,
            exchanges,
            ..
        } = self;
        let closed = |mode, cause| ServerEvent::Closed {
            peer,
            mode,
            cause,
            exchanges,
        };
        shared.hub.close(stream, ending, closed).await;
    }

    /// Echoes request lines until something ends the connection.
    async fn serve(&mut self) -> Ending {
        loop {
            if let Some(mode) = self.exchange_limit_reached() {
                return Ending::new(mode, CloseCause::AfterExchanges);
            }

            // Answer a complete line if one is buffered (clients may send
            // several lines at once).
            match take_line(&mut self.buf) {
                Ok(Some(line)) => {
                    // Counted before writing: see `FaultServer::exchanges`.
                    self.exchanges += 1;
                    self.shared
                        .exchanges
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if self.stream.write_all(&line).await.is_err() {
                        return Ending::fin(CloseCause::Error);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(LineTooLong) => return Ending::fin(CloseCause::Error),
            }

            // No complete line: get more bytes.
            if self.buf.is_empty() {
                if let Some(ending) = self.wait_while_idle().await {
                    return ending;
                }
            } else {
                self.buf.reserve(READ_CHUNK);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => return Ending::fin(CloseCause::ClientClosed),
                    Ok(_) => {}
                    Err(_) => return Ending::fin(CloseCause::Error),
                }
            }
        }
    }

    /// The close mode, if `close_after` is set and this connection has
    /// answered that many exchanges.
    fn exchange_limit_reached(&self) -> Option<CloseMode> {
        let (limit, mode) = self.settings.close_after?;
        (self.exchanges >= limit).then_some(mode)
    }

    /// Waits, while idle, until the first bytes of a request arrive (returns
    /// `None`) or the connection must end (returns the ending). Handles
    /// commands meanwhile.
    async fn wait_while_idle(&mut self) -> Option<Ending> {
        plumbing::wait_while_idle(
            &mut self.stream,
            &mut self.buf,
            READ_CHUNK,
            &mut self.commands,
            self.settings.idle_close,
            None,
        )
        .await
    }
}

/// A request line longer than [`MAX_LINE_LEN`].
struct LineTooLong;

/// Removes the first complete line (with its `\n`) from `buf`, if there is
/// one.
fn take_line(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, LineTooLong> {
    match buf.iter().position(|&byte| byte == b'\n') {
        Some(newline) if newline < MAX_LINE_LEN => Ok(Some(buf.drain(..=newline).collect())),
        Some(_) => Err(LineTooLong),
        // Already MAX_LINE_LEN bytes and no `\n`: the line will be too long.
        None if buf.len() >= MAX_LINE_LEN => Err(LineTooLong),
        None => Ok(None),
    }
}
