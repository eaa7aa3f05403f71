//! The system calls this crate makes itself: `getsockopt(TCP_INFO)` here,
//! and `setns` in `netns.rs`.

use std::io;
use std::os::fd::BorrowedFd;

/// Returns `tcpi_state`, the kernel's TCP state number for `socket`.
pub(crate) fn tcp_state_raw(socket: BorrowedFd<'_>) -> io::Result<u8> {
    tcp_info_raw(socket).map(|info| info.state)
}

/// The fields of the kernel's `struct tcp_info` the crate reports (see
/// [`TcpInfo`](crate::TcpInfo) for their meaning).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawTcpInfo {
    pub(crate) state: u8,
    pub(crate) retransmits: u8,
    pub(crate) probes: u8,
    pub(crate) backoff: u8,
    pub(crate) rto_us: u32,
    pub(crate) unacked: u32,
    pub(crate) last_data_sent_ms: u32,
    pub(crate) last_data_recv_ms: u32,
    pub(crate) total_retrans: u32,
}

/// Returns the kernel's `TCP_INFO` for `socket`.
#[cfg(target_os = "linux")]
pub(crate) fn tcp_info_raw(socket: BorrowedFd<'_>) -> io::Result<RawTcpInfo> {
    use std::os::fd::AsRawFd;

    let expected_len = std::mem::size_of::<libc::tcp_info>();
    let mut len = libc::socklen_t::try_from(expected_len)
        .map_err(|_| io::Error::other("tcp_info does not fit in socklen_t"))?;

    // SAFETY:
    // * `libc::tcp_info` is a plain C struct of integers, for which the
    //   all-zero bit pattern is a valid value, so `zeroed()` is sound. Zeroing
    //   also means every byte is initialised even where the kernel writes
    //   fewer bytes than the struct has (older kernels fill a shorter prefix).
    // * `info` is a live, properly aligned `tcp_info` on our stack, and `len`
    //   holds exactly its size, so the pointer/length pair passed to
    //   getsockopt describes valid, writable memory; the kernel writes at most
    //   `len` bytes and stores the number written back into `len`.
    // * The fd comes from a `BorrowedFd`, so it stays open for this whole call.
    // * Both pointers are only used during the call; nothing is retained.
    let (result, info) = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let result = libc::getsockopt(
            socket.as_raw_fd(),
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
    if len == 0 {
        // `tcpi_state` is the first byte; the kernel did not write it.
        return Err(io::Error::other("getsockopt(TCP_INFO) returned no data"));
    }
    // Fields past what the kernel wrote stay zero (see the SAFETY comment).
    Ok(RawTcpInfo {
        state: info.tcpi_state,
        retransmits: info.tcpi_retransmits,
        probes: info.tcpi_probes,
        backoff: info.tcpi_backoff,
        rto_us: info.tcpi_rto,
        unacked: info.tcpi_unacked,
        last_data_sent_ms: info.tcpi_last_data_sent,
        last_data_recv_ms: info.tcpi_last_data_recv,
        total_retrans: info.tcpi_total_retrans,
    })
}

/// `TCP_INFO` and its state numbers are Linux-specific.
#[cfg(not(target_os = "linux"))]
pub(crate) fn tcp_info_raw(_socket: BorrowedFd<'_>) -> io::Result<RawTcpInfo> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "reading TCP_INFO (the TCP state and counters) needs Linux",
    ))
}
