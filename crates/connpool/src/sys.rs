//! The system calls connpool makes, in one place: socket calls through
//! `socket2`, and the coarse clock through `libc`.

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

/// Sets `TCP_USER_TIMEOUT` (Linux): written data unacknowledged for this
/// long fails the connection.
#[cfg(target_os = "linux")]
pub(crate) fn set_user_timeout(socket: &impl AsFd, timeout: Duration) -> io::Result<()> {
    SockRef::from(socket).set_tcp_user_timeout(Some(timeout))
}

/// `TCP_USER_TIMEOUT` is Linux-specific; elsewhere it is not set.
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_user_timeout(_socket: &impl AsFd, _timeout: Duration) -> io::Result<()> {
    Ok(())
}

/// Nanoseconds on `CLOCK_MONOTONIC_COARSE`: the time of the last timer
/// tick (resolution 1–4 ms), read from the vDSO without a hardware clock
/// read. About a third of the cost of `Instant::now()`, and precise enough
/// for idle and lifetime decisions measured in seconds.
#[cfg(target_os = "linux")]
pub(crate) fn coarse_monotonic_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable, properly aligned `timespec` that
    // lives across the call; clock_gettime writes exactly one `timespec`
    // through the pointer and keeps no reference to it. The clock id is
    // supported since Linux 2.6.32; should the call fail anyway, `now`
    // stays zeroed (initialised above), which only makes idle times read
    // as zero: connections are then expired by the reaper's timing
    // instead, never reused past a deadline we could compute.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now);
    }
    (now.tv_sec as u64) * 1_000_000_000 + now.tv_nsec as u64
}

/// Elsewhere: nanoseconds of the standard monotonic clock since the first
/// call.
#[cfg(not(target_os = "linux"))]
pub(crate) fn coarse_monotonic_nanos() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// What the kernel's `TCP_INFO` says about a connection, in the fields
/// connpool reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpInfo {
    /// Time since the last ACK-bearing segment from the peer arrived. On a
    /// connection the peer closed with a FIN, nothing arrives after the
    /// FIN, so this is how long ago the peer closed. (An RST is processed
    /// before its ACK field and does not update it.)
    pub(crate) since_last_ack_recv: Duration,
    /// Segments sent and not yet acknowledged.
    pub(crate) unacked: u32,
    /// Consecutive retransmission timeouts of the oldest unacknowledged
    /// segment (reset by an ACK that moves the window).
    pub(crate) retransmits: u8,
    /// The current retransmission timeout.
    pub(crate) rto: Duration,
}

/// Reads `getsockopt(TCP_INFO)`.
#[cfg(target_os = "linux")]
pub(crate) fn tcp_info(socket: &impl AsFd) -> io::Result<TcpInfo> {
    use std::os::fd::AsRawFd;

    let fd = socket.as_fd();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `libc::tcp_info` is a C struct of integers, valid when
    // all-zero, so `zeroed()` is sound and every byte stays initialised
    // even if the kernel fills only a shorter prefix (older kernels).
    // `info` is a live, aligned value on our stack and `len` holds its
    // exact size, so the pointer/length pair describes writable memory the
    // kernel writes at most `len` bytes into. The fd is borrowed for the
    // whole call; neither pointer is kept after it.
    let (result, info) = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let result = libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast::<libc::c_void>(),
            &raw mut len,
        );
        (result, info)
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpInfo {
        since_last_ack_recv: Duration::from_millis(u64::from(info.tcpi_last_ack_recv)),
        unacked: info.tcpi_unacked,
        retransmits: info.tcpi_retransmits,
        rto: Duration::from_micros(u64::from(info.tcpi_rto)),
    })
}

/// `TCP_INFO` is Linux-specific.
#[cfg(not(target_os = "linux"))]
pub(crate) fn tcp_info(_socket: &impl AsFd) -> io::Result<TcpInfo> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "TCP_INFO needs Linux",
    ))
}
