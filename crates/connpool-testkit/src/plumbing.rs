//! The plumbing both servers (the line-echo [`FaultServer`](crate::FaultServer)
//! and the [`HttpServer`](crate::http::HttpServer)) share.
//!
//! * [`ServerThread`]: the listening socket, the server thread with its
//!   current-thread Tokio runtime, the accept loop, and the stop on drop.
//! * [`Hub`]: the state shared by a server's handle, its accept loop and its
//!   connection tasks: the counters every server has, the event subscribers,
//!   and the registry of open connections that control calls broadcast
//!   [`Command`]s to.
//! * The connection side: [`Command`], [`Ending`], [`wait_while_idle`] (the
//!   idle phase, which obeys commands) and [`Hub::close`] (the close, in its
//!   fixed order).
//!
//! Control calls do not go through the server thread: they send a command
//! straight to each registered connection task and await its
//! acknowledgement. Both channels are `tokio::sync` channels, which work from
//! any runtime (or none).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::CloseMode;

/// Locks `mutex`, ignoring poisoning: the data behind our mutexes (maps and
/// lists of senders) stays valid even if a holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A server's thread, which runs its accept loop (and, through it, every
/// connection task) on a current-thread Tokio runtime. Dropping it stops the
/// thread and closes the listener and every connection.
#[derive(Debug)]
pub(crate) struct ServerThread {
    addr: SocketAddr,
    /// Dropping or sending on this stops the accept loop.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Binds `<ip>:0` (callers pass `127.0.0.1` unless told otherwise) and
    /// starts a thread named `<name>-<addr>` that accepts connections forever and hands each one to `on_accept` with a
    /// new id (`0`, `1`, ...). `on_accept` runs in the runtime's context, so it
    /// can spawn the connection's task.
    ///
    /// The listening socket is bound before this returns, so
    /// [`ServerThread::addr`] is valid at once and bind errors are returned
    /// here.
    ///
    /// The listening socket is created by the calling thread, so it lives in
    /// the calling thread's network namespace (see the `netns` module); the
    /// server thread, spawned from the calling thread, inherits that
    /// namespace too.
    pub(crate) fn start(
        name: &str,
        ip: IpAddr,
        on_accept: impl FnMut(u64, SocketAddr, TcpStream) + Send + 'static,
    ) -> io::Result<Self> {
        let std_listener = std::net::TcpListener::bind((ip, 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Registering the listener with the runtime needs the runtime's
        // context; doing it here lets us return the error.
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(std_listener)?
        };

        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{addr}"))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        // `Err` too: the handle was dropped without sending.
                        _ = stop_rx => {}
                        () = accept_loop(listener, on_accept) => {}
                    }
                });
                // Dropping `runtime` here drops every connection task (also
                // those waiting forever, like HTTP's `/never`), which closes
                // the listener and every socket.
            })?;

        Ok(ServerThread {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address the server listens on (`<ip>:<port>`).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Fails only if the thread already ended, which is fine.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // The thread only awaits the stop signal and drops its runtime
            // (cancelling every task), so this join is short. An `Err` (a
            // panic on that thread) has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

/// Accepts connections forever, handing each one to `on_accept`.
async fn accept_loop(listener: TcpListener, mut on_accept: impl FnMut(u64, SocketAddr, TcpStream)) {
    let mut next_id: u64 = 0;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // E.g. out of file descriptors, or the client gave up during the
            // handshake. Back off a little instead of spinning, then go on.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        // Answers are small single writes: send them at once.
        let _ = stream.set_nodelay(true);

        let id = next_id;
        next_id += 1;
        on_accept(id, peer, stream);
    }
}

/// A request from the test to one idle connection. The connection answers
/// on `ack`: `true` once it has done what was asked, `false` if it could not
/// (it was no longer idle). Dropping `ack` unanswered also means "not done".
#[derive(Debug)]
pub(crate) enum Command {
    /// Close the connection.
    Close {
        mode: CloseMode,
        ack: oneshot::Sender<bool>,
    },
    /// Write these bytes.
    SendUnsolicited {
        bytes: Arc<[u8]>,
        ack: oneshot::Sender<bool>,
    },
}

impl Command {
    /// Answers "not done".
    pub(crate) fn refuse(self) {
        let (Command::Close { ack, .. } | Command::SendUnsolicited { ack, .. }) = self;
        let _ = ack.send(false);
    }
}

/// A connection in the registry.
#[derive(Debug)]
struct Entry {
    commands: mpsc::UnboundedSender<Command>,
    /// Waiting for the first byte of a request: commands are sent only then.
    idle: bool,
}

/// What a server's handle, accept loop and connection tasks share, whatever
/// the protocol: counters, the subscribers to events of type `E`, and the
/// registry of open connections.
#[derive(Debug)]
pub(crate) struct Hub<E> {
    accepted: AtomicU64,
    open: AtomicUsize,
    closed_by_server: AtomicU64,
    /// Open connections: connection id -> registry entry.
    registry: Mutex<HashMap<u64, Entry>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<E>>>,
}

impl<E> Default for Hub<E> {
    fn default() -> Self {
        Hub {
            accepted: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            closed_by_server: AtomicU64::new(0),
            registry: Mutex::default(),
            subscribers: Mutex::default(),
        }
    }
}

impl<E: Clone> Hub<E> {
    /// A new subscriber, seeing events from now on.
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<E> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.subscribers).push(tx);
        rx
    }

    /// Sends `event` to every subscriber, forgetting dropped ones.
    pub(crate) fn emit(&self, event: E) {
        lock(&self.subscribers).retain(|subscriber| subscriber.send(event.clone()).is_ok());
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections accepted and not yet closed.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections closed with a cause that is [`Cause::by_server`].
    pub(crate) fn closed_by_server(&self) -> u64 {
        self.closed_by_server.load(Ordering::SeqCst)
    }

    /// Books connection `id` as accepted: registers it (idle) and counts it,
    /// then emits `accepted`. Registered and counted before the event, so a
    /// test that saw the event can reach the connection with commands.
    /// Returns the receiver of the connection's commands.
    pub(crate) fn register(&self, id: u64, accepted: E) -> mpsc::UnboundedReceiver<Command> {
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        lock(&self.registry).insert(
            id,
            Entry {
                commands: commands_tx,
                idle: true,
            },
        );
        self.open.fetch_add(1, Ordering::SeqCst);
        self.accepted.fetch_add(1, Ordering::SeqCst);
        self.emit(accepted);
        commands_rx
    }

    /// Marks connection `id` idle (commands may be sent to it) or busy.
    pub(crate) fn set_idle(&self, id: u64, idle: bool) {
        if let Some(entry) = lock(&self.registry).get_mut(&id) {
            entry.idle = idle;
        }
    }

    /// Books connection `id` as closed for `cause`: it leaves the registry
    /// and the counters are updated. Called *before* the socket is closed,
    /// so anyone who sees the close also sees the new counters.
    pub(crate) fn forget(&self, id: u64, cause: impl Cause) {
        lock(&self.registry).remove(&id);
        self.open.fetch_sub(1, Ordering::SeqCst);
        if cause.by_server() {
            self.closed_by_server.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Sends one command (built by `make`) to every idle connection and
    /// waits for all acknowledgements; returns how many said "done".
    pub(crate) async fn broadcast(&self, make: impl Fn(oneshot::Sender<bool>) -> Command) -> usize {
        let mut acks = Vec::new();
        for entry in lock(&self.registry).values() {
            if !entry.idle {
                continue;
            }
            let (ack_tx, ack_rx) = oneshot::channel();
            // A failed send means the connection is ending: not reached.
            if entry.commands.send(make(ack_tx)).is_ok() {
                acks.push(ack_rx);
            }
        }
        // The registry lock is released before awaiting. A connection that
        // ends or becomes busy without doing the command drops the sender
        // (`Err` here) or answers `false`: "not done".
        let mut done = 0;
        for ack in acks {
            if ack.await == Ok(true) {
                done += 1;
            }
        }
        done
    }

    /// Closes a connection that [`Hub::forget`] already booked: closes
    /// `stream` in the ending's mode, then emits the event built by `closed`
    /// from the mode and cause, then acknowledges the command that caused
    /// the ending, if any.
    pub(crate) async fn close<C: Cause>(
        &self,
        stream: impl ServerSocket,
        ending: Ending<C>,
        closed: impl FnOnce(CloseMode, C) -> E,
    ) {
        // The close itself.
        stream.close(ending.mode).await;
        // The event, which promises the close already happened.
        self.emit(closed(ending.mode, ending.cause));
        // The acknowledgement, so `close_idle` returns after the event.
        if let Some(ack) = ending.ack {
            // The caller may have stopped waiting; nothing to do then.
            let _ = ack.send(true);
        }
    }
}

/// A server's reasons to close a connection, as far as the plumbing needs
/// them.
pub(crate) trait Cause: Copy {
    /// The client closed its side first.
    const CLIENT_CLOSED: Self;
    /// A read or write failed.
    const ERROR: Self;
    /// The connection stayed idle too long.
    const IDLE_TIMEOUT: Self;
    /// The test asked for it.
    const COMMANDED: Self;

    /// Whether the server closed on its own initiative (counted by
    /// [`Hub::closed_by_server`]).
    fn by_server(self) -> bool;
}

/// Why and how a connection ends, plus the command to acknowledge (if a
/// command caused the end).
pub(crate) struct Ending<C> {
    pub(crate) mode: CloseMode,
    pub(crate) cause: C,
    pub(crate) ack: Option<oneshot::Sender<bool>>,
}

impl<C: Cause> Ending<C> {
    pub(crate) fn new(mode: CloseMode, cause: C) -> Self {
        Ending {
            mode,
            cause,
            ack: None,
        }
    }

    /// An orderly close for `cause`: what the server does when it was not
    /// told how to close (client closed first, errors).
    pub(crate) fn fin(cause: C) -> Self {
        Self::new(CloseMode::Fin, cause)
    }
}

/// A read buffer that can grow before a read.
pub(crate) trait ReadBuffer: BufMut {
    /// Makes room for at least `additional` more bytes.
    fn reserve(&mut self, additional: usize);
}

impl ReadBuffer for Vec<u8> {
    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
}

impl ReadBuffer for BytesMut {
    fn reserve(&mut self, additional: usize) {
        BytesMut::reserve(self, additional);
    }
}

/// What woke an idle connection up.
enum IdleWake {
    Read(io::Result<usize>),
    Command(Option<Command>),
    IdleTimeout,
}

/// Waits, while a connection is idle (its `buf` is empty), until the first
/// bytes of a request arrive in `buf` (returns `None`) or the connection must
/// end (returns the ending). Meanwhile writes the bytes of
/// [`Command::SendUnsolicited`] and ends on [`Command::Close`].
///
/// `idle_close` is the idle timeout and its close mode; `timeout_notice`, if
/// set, is written before an idle close in [`CloseMode::Fin`]. Each read
/// offers at least `read_chunk` bytes of buffer space.
pub(crate) async fn wait_while_idle<C: Cause>(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    buf: &mut impl ReadBuffer,
    read_chunk: usize,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    idle_close: Option<(Duration, CloseMode)>,
    timeout_notice: Option<&[u8]>,
) -> Option<Ending<C>> {
    // One deadline for the whole idle period: unsolicited writes do not
    // restart it. A `None` deadline means "no idle timeout".
    let (deadline, idle_mode) = match idle_close {
        Some((after, mode)) => (Instant::now().checked_add(after), mode),
        None => (None, CloseMode::Fin),
    };
    loop {
        buf.reserve(read_chunk);
        let wake = tokio::select! {
            // Checked in this order: input that already arrived means the
            // connection is no longer idle, even if a command or the timer
            // is also ready.
            biased;
            read = stream.read_buf(buf) => IdleWake::Read(read),
            command = commands.recv() => IdleWake::Command(command),
            () = sleep_until(deadline) => IdleWake::IdleTimeout,
        };
        match wake {
            IdleWake::Read(Ok(0)) => return Some(Ending::fin(C::CLIENT_CLOSED)),
            IdleWake::Read(Ok(_)) => return None,
            IdleWake::Read(Err(_)) => return Some(Ending::fin(C::ERROR)),
            IdleWake::IdleTimeout => {
                // An RST close writes nothing: the kernel would discard the
                // bytes anyway.
                if let (CloseMode::Fin, Some(notice)) = (idle_mode, timeout_notice) {
                    // The client may be gone already; we close anyway.
                    // (The flush matters under TLS, which may buffer.)
                    let _ = write_flushed(stream, notice).await;
                }
                return Some(Ending::new(idle_mode, C::IDLE_TIMEOUT));
            }
            IdleWake::Command(Some(Command::Close { mode, ack })) => {
                return Some(Ending {
                    mode,
                    cause: C::COMMANDED,
                    ack: Some(ack),
                });
            }
            IdleWake::Command(Some(Command::SendUnsolicited { bytes, ack })) => {
                if write_flushed(stream, &bytes).await.is_err() {
                    // `ack` is dropped: this connection did not get them.
                    return Some(Ending::fin(C::ERROR));
                }
                let _ = ack.send(true);
            }
            IdleWake::Command(None) => {
                // Cannot happen: the registry keeps our command sender until
                // this connection has ended. Ending is the safe answer
                // (looping would spin on `None`).
                return Some(Ending::fin(C::ERROR));
            }
        }
    }
}

/// Sleeps until `deadline`, or forever if there is none.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Writes all of `bytes`, then flushes: a no-op on a TCP socket, but a TLS
/// stream may keep encrypted records buffered when the socket is full.
pub(crate) async fn write_flushed(
    stream: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// A connection's socket, as the plumbing reads, writes and closes it: a
/// plain [`TcpStream`], or the HTTP server's TLS stream.
pub(crate) trait ServerSocket: AsyncRead + AsyncWrite + Unpin + Send {
    /// Closes the socket in `mode` (for [`CloseMode::Fin`], everything
    /// written is flushed first). Errors are ignored: the peer may already be
    /// gone, and the socket is dropped (closed) in every case.
    fn close(self, mode: CloseMode) -> impl Future<Output = ()> + Send;
}

impl ServerSocket for TcpStream {
    async fn close(self, mode: CloseMode) {
        close_socket(self, mode).await;
    }
}

/// Closes `stream` in `mode`. Errors are ignored: the peer may already be
/// gone, and the socket is dropped (closed) in every case.
pub(crate) async fn close_socket(mut stream: TcpStream, mode: CloseMode) {
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
