//! The socket calls the TCP layer needs, in one place, through `socket2`.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// What a non-blocking peek found on an idle socket.
#[derive(Debug)]
pub(crate) enum Peek {
    /// Nothing to read: as far as the kernel knows, the peer is there.
    Empty,
    /// End of stream: the peer sent its FIN.
    Eof,
    /// Bytes are waiting that nobody asked for.
    Data,
    /// The socket holds an error (an RST arrived, keepalive gave up, …).
    /// Reading it clears it, which is fine: the socket is being discarded.
    Error(io::Error),
}

/// One `recv(fd, buf, 1, MSG_PEEK | MSG_DONTWAIT)`: costs about a
/// microsecond and consumes nothing.
pub(crate) fn peek(socket: &impl AsFd) -> Peek {
    let socket = SockRef::from(socket);
    let mut byte = [MaybeUninit::<u8>::uninit()];
    loop {
        return match socket.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
            Ok(0) => Peek::Eof,
            Ok(_) => Peek::Data,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Peek::Empty,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Peek::Error(e),
        };
    }
}

/// Sets `TCP_NODELAY`: a pool's connections carry small request/response
/// messages, where Nagle's algorithm only adds latency.
pub(crate) fn set_nodelay(socket: &impl AsFd, on: bool) -> io::Result<()> {
    SockRef::from(socket).set_tcp_nodelay(on)
}

/// Turns TCP keepalive on with the given timings.
pub(crate) fn set_keepalive(
    socket: &impl AsFd,
    idle: Duration,
    interval: Duration,
    retries: u32,
) -> io::Result<()> {
    let keepalive = TcpKeepalive::new()
        .with_time(idle)
        .with_interval(interval)
        .with_retries(retries);
    SockRef::from(socket).set_tcp_keepalive(&keepalive)
}
