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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::server::{FaultServerBuilder, Shared};
use crate::{CloseCause, CloseMode, MAX_LINE_LEN, ServerEvent};

/// How much buffer space to offer each read.
const READ_CHUNK: usize = 4096;

/// A request from the test to one connection. The connection answers on
/// `ack`: `true` once it has done what was asked, `false` if it could not.
/// Dropping `ack` unanswered also means "not done".
#[derive(Debug)]
pub(crate) enum Command {
    /// Close the connection (only while idle).
    Close {
        mode: CloseMode,
        ack: oneshot::Sender<bool>,
    },
    /// Write these bytes (only while idle).
    SendUnsolicited {
        bytes: Arc<[u8]>,
        ack: oneshot::Sender<bool>,
    },
}

/// Why and how a connection ends, plus the command to acknowledge (if a
/// command caused the end).
struct Ending {
    mode: CloseMode,
    cause: CloseCause,
    ack: Option<oneshot::Sender<bool>>,
}

impl Ending {
    fn new(mode: CloseMode, cause: CloseCause) -> Self {
        Ending {
            mode,
            cause,
            ack: None,
        }
    }

    /// An orderly close for `cause`: what the server does when it was not
    /// told how to close (client closed first, errors).
    fn fin(cause: CloseCause) -> Self {
        Self::new(CloseMode::Fin, cause)
    }
}

/// What woke an idle connection up.
enum IdleWake {
    Read(std::io::Result<usize>),
    Command(Option<Command>),
    IdleTimeout,
}

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
    pub(crate) fn new(
        id: u64,
        peer: SocketAddr,
        stream: TcpStream,
        commands: mpsc::UnboundedReceiver<Command>,
        shared: Arc<Shared>,
        settings: FaultServerBuilder,
    ) -> Self {
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
        self.shared.forget(self.id, ending.cause);
        // 2. The close itself.
        let Connection {
            stream,
            shared,
            peer,
            exchanges,
            ..
        } = self;
        close(stream, ending.mode).await;
        // 3. The event, which promises the close already happened.
        shared.emit(ServerEvent::Closed {
            peer,
            mode: ending.mode,
            cause: ending.cause,
            exchanges,
        });
        // 4. The acknowledgement, so `close_idle` returns after the event.
        if let Some(ack) = ending.ack {
            // The caller may have stopped waiting; nothing to do then.
            let _ = ack.send(true);
        }
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
        // One deadline for the whole idle period: unsolicited writes do not
        // restart it. A `None` deadline means "no idle timeout".
        let (deadline, idle_mode) = match self.settings.idle_close {
            Some((after, mode)) => (Instant::now().checked_add(after), mode),
            None => (None, CloseMode::Fin),
        };
        loop {
            self.buf.reserve(READ_CHUNK);
            let wake = tokio::select! {
                // Checked in this order: input that already arrived means the
                // connection is no longer idle, even if a command or the timer
                // is also ready.
                biased;
                read = self.stream.read_buf(&mut self.buf) => IdleWake::Read(read),
                command = self.commands.recv() => IdleWake::Command(command),
                () = sleep_until(deadline) => IdleWake::IdleTimeout,
            };
            match wake {
                IdleWake::Read(Ok(0)) => return Some(Ending::fin(CloseCause::ClientClosed)),
                IdleWake::Read(Ok(_)) => return None,
                IdleWake::Read(Err(_)) => return Some(Ending::fin(CloseCause::Error)),
                IdleWake::IdleTimeout => {
                    return Some(Ending::new(idle_mode, CloseCause::IdleTimeout));
                }
                IdleWake::Command(Some(Command::Close { mode, ack })) => {
                    return Some(Ending {
                        mode,
                        cause: CloseCause::Commanded,
                        ack: Some(ack),
                    });
                }
                IdleWake::Command(Some(Command::SendUnsolicited { bytes, ack })) => {
                    if self.stream.write_all(&bytes).await.is_err() {
                        // `ack` is dropped: this connection did not get them.
                        return Some(Ending::fin(CloseCause::Error));
                    }
                    let _ = ack.send(true);
                }
                IdleWake::Command(None) => {
                    // Cannot happen: the server's registry keeps our command
                    // sender until this connection has ended. Ending is the
                    // safe answer (looping would spin on `None`).
                    return Some(Ending::fin(CloseCause::Error));
                }
            }
        }
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

/// Sleeps until `deadline`, or forever if there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Closes `stream` in `mode`. Errors are ignored: the peer may already be
/// gone, and the socket is dropped (closed) in every case.
pub(crate) async fn close(mut stream: TcpStream, mode: CloseMode) {
    match mode {
        CloseMode::Fin => {
            // `shutdown` on a Tokio TcpStream is `shutdown(Write)`: sends FIN.
            let _ = stream.shutdown().await;
        }
        CloseMode::Rst => {
            // With a zero linger time, close() discards unsent data and
            // sends RST instead of FIN, immediately (it does not block).
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
    }
    drop(stream);
}
