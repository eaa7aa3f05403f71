//! The byte stream under an HTTP connection: a TCP socket, or TLS over
//! one.
//!
//! [`Stream`] is an enum, not a trait object: the plain path costs one
//! match per read or write, and the socket-level code (the checkout peek,
//! `TCP_INFO` for the dead-path check and the idle-timeout learner, socket
//! options) reaches the TCP socket with [`Stream::tcp`] either way.
//!
//! Under TLS, [`TcpIo`] counts the bytes the kernel took: tokio-rustls
//! accepts plaintext into its buffer and may fail while flushing it, so
//! the count of plaintext bytes "written" can be 0 while some ciphertext
//! reached the wire. The retry rule needs the truth ("provably nothing
//! was written"), and the count supplies it.
//!
//! # Checking an idle TLS connection
//!
//! The raw peek decides most cases without touching TLS: nothing pending
//! means healthy (the common case, as fast as plain TCP), a FIN or an
//! error means stale. Bytes pending are not necessarily a problem: a TLS
//! 1.3 server sends `NewSessionTicket` messages after the handshake, and
//! they may sit unread on an idle connection. So the bytes go through
//! rustls in a non-blocking read (a no-op waker):
//!
//! | rustls read             | meaning                                | eviction reason |
//! |-------------------------|----------------------------------------|-----------------|
//! | pending                 | handshake messages only (tickets)      | — (healthy)     |
//! | end of stream (`Ok(0)`) | the server's `close_notify`            | [`EvictReason::ServerClosed`] |
//! | `UnexpectedEof`         | a FIN without `close_notify`           | [`EvictReason::ServerClosed`] |
//! | reset, broken pipe      | the server's RST                       | [`EvictReason::ServerReset`] |
//! | data                    | bytes nobody asked for (a `408`, …)    | [`EvictReason::UnexpectedData`] |
//! | another error           | a broken TLS session                   | [`EvictReason::Unhealthy`] |

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::EvictReason;
use crate::sys;

/// A TLS session over TCP.
pub(crate) type TlsStream = tokio_rustls::client::TlsStream<TcpIo>;

/// The stream of an HTTP connection.
pub(crate) enum Stream {
    Plain(TcpStream),
    /// Boxed: a rustls session is over a kilobyte, and plain connections
    /// should not carry that size.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The TCP socket, for socket-level work.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.get_ref().0.tcp,
        }
    }

    /// Bytes the kernel has taken on this connection's socket, counted
    /// only under TLS (0 for plain TCP, whose writes report it directly).
    pub(crate) fn wire_written(&self) -> u64 {
        match self {
            Stream::Plain(_) => 0,
            Stream::Tls(tls) => tls.get_ref().0.written,
        }
    }

    /// Whether rustls already holds input nobody has read: decrypted bytes
    /// (one TLS record can carry the end of a response and bytes past it,
    /// more than the read buffer took), the server's `close_notify`, or
    /// the TCP FIN. Taken off the socket, they are invisible to the
    /// checkout's peek, so a connection holding any never goes back to the
    /// pool. No system call; always false for plain TCP, whose unread
    /// bytes stay in the kernel.
    pub(crate) fn holds_input(&mut self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(tls) => match tls.get_mut().1.reader().into_first_chunk() {
                Ok(_) => true,
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            },
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Whether an idle connection may be handed out (see the module docs).
    pub(crate) fn check_idle(&mut self) -> Result<(), EvictReason> {
        match self {
            Stream::Plain(tcp) => crate::tcp::check_idle(tcp),
            Stream::Tls(tls) => check_idle_tls(tls),
        }
    }
}

fn check_idle_tls(tls: &mut TlsStream) -> Result<(), EvictReason> {
    match sys::peek(&tls.get_ref().0.tcp) {
        sys::Peek::Data => {}
        // Nothing pending, a FIN, an error: as for plain TCP. (Judged from
        // this peek: one that reports an error clears it.)
        other => return crate::tcp::judge_peek(other),
    }
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(tls).poll_read(&mut cx, &mut buf) {
        Poll::Pending => Ok(()),
        Poll::Ready(Ok(())) if buf.filled().is_empty() => Err(EvictReason::ServerClosed),
        Poll::Ready(Ok(())) => Err(EvictReason::UnexpectedData),
        // A FIN without `close_notify`; else as for plain TCP.
        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(EvictReason::ServerClosed)
        }
        Poll::Ready(Err(e)) => Err(crate::tcp::judge_error(&e)),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}

/// The TCP socket under a TLS session, counting the bytes the kernel took.
pub(crate) struct TcpIo {
    pub(crate) tcp: TcpStream,
    pub(crate) written: u64,
}

impl AsyncRead for TcpIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for TcpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.written += n as u64;
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            this.written += n as u64;
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
