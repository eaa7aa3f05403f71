//! The socket of one HTTP connection: plain TCP, or TLS over TCP.
//!
//! The connection code reads and writes a [`ServerStream`] without knowing
//! which one it is; only the close differs. Under TLS, [`CloseMode::Fin`]
//! ends the session the way [`TlsClose`] says (a `close_notify` alert then a
//! FIN, or a bare FIN), and [`CloseMode::Rst`] resets the TCP connection
//! without any alert, exactly as in plain mode.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::CloseMode;
use crate::plumbing::{ServerSocket, close_socket};
use crate::tls::TlsClose;

/// A connection's socket.
pub(super) enum ServerStream {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS: a TLS session whose handshake is complete.
    Tls {
        /// Boxed: a TLS stream is much larger than a socket.
        stream: Box<TlsStream<TcpStream>>,
        /// How a [`CloseMode::Fin`] close ends the session.
        close: TlsClose,
    },
}

impl ServerSocket for ServerStream {
    async fn close(self, mode: CloseMode) {
        match self {
            ServerStream::Plain(stream) => close_socket(stream, mode).await,
            ServerStream::Tls { mut stream, close } => match (mode, close) {
                (CloseMode::Fin, TlsClose::CloseNotify) => {
                    // tokio-rustls's shutdown queues a close_notify alert,
                    // writes it (with anything still buffered), then shuts
                    // the socket down for writing: the FIN.
                    let _ = stream.shutdown().await;
                }
                (CloseMode::Fin, TlsClose::BareFin) => {
                    // What was written must still arrive, but no alert: the
                    // records buffered so far, then the FIN on the socket.
                    let _ = stream.flush().await;
                    let _ = stream.get_mut().0.shutdown().await;
                }
                (CloseMode::Rst, _) => {
                    // No alert: an RST discards unsent bytes anyway. The
                    // socket is closed with a zero linger time, like in plain
                    // mode (dropping a TLS stream writes nothing).
                    let (socket, _session) = stream.into_inner();
                    close_socket(socket, CloseMode::Rst).await;
                }
            },
        }
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            ServerStream::Tls { stream, .. } => Pin::new(&mut **stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            ServerStream::Tls { stream, .. } => Pin::new(&mut **stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            ServerStream::Tls { stream, .. } => Pin::new(&mut **stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            ServerStream::Tls { stream, .. } => Pin::new(&mut **stream).poll_shutdown(cx),
        }
    }
}
