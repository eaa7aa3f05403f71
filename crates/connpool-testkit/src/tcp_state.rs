//! Client-side helpers: ask the kernel whether the server's close has arrived,
//! and whether what the client sent is stuck (retransmitted, unacknowledged).

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::sys;

/// The kernel's TCP state of a socket (`tcpi_state` from
/// `getsockopt(TCP_INFO)`; see `tcp(7)`).
///
/// After the server closes, the client socket moves to [`TcpState::CloseWait`]
/// (a FIN arrived) or [`TcpState::Close`] (an RST arrived).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    /// `TCP_ESTABLISHED`: connected, nothing closed.
    Established,
    /// `TCP_SYN_SENT`: connecting.
    SynSent,
    /// `TCP_SYN_RECV`: handshake half done (server side).
    SynRecv,
    /// `TCP_FIN_WAIT1`: we closed, our FIN is not acknowledged yet.
    FinWait1,
    /// `TCP_FIN_WAIT2`: we closed, waiting for the peer's FIN.
    FinWait2,
    /// `TCP_TIME_WAIT`: both sides closed, we closed first.
    TimeWait,
    /// `TCP_CLOSE`: no connection (e.g. after an RST, or never connected).
    Close,
    /// `TCP_CLOSE_WAIT`: the peer closed (its FIN arrived); we have not.
    CloseWait,
    /// `TCP_LAST_ACK`: the peer closed, then we did; waiting for the last ACK.
    LastAck,
    /// `TCP_LISTEN`: a listening socket.
    Listen,
    /// `TCP_CLOSING`: both sides closed at the same time.
    Closing,
    /// Any other value the kernel reports.
    Unknown(u8),
}

impl TcpState {
    /// Maps the kernel's `tcpi_state` number (`include/net/tcp_states.h`).
    fn from_raw(raw: u8) -> Self {
        match raw {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 => TcpState::SynRecv,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Close,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            other => TcpState::Unknown(other),
        }
    }

    /// Whether this state shows that the peer's FIN or RST has arrived.
    fn peer_has_closed(self) -> bool {
        matches!(
            self,
            TcpState::CloseWait
                | TcpState::Close
                | TcpState::LastAck
                | TcpState::TimeWait
                | TcpState::Closing
        )
    }
}

/// The TCP state of `socket`, as the kernel sees it right now. Works with
/// `std::net::TcpStream`, `tokio::net::TcpStream`, `socket2::Socket`, ...
///
/// ```
/// use connpool_testkit::{FaultServer, TcpState, tcp_state};
///
/// let server = FaultServer::start_echo()?;
/// let client = std::net::TcpStream::connect(server.addr())?;
/// assert_eq!(tcp_state(&client)?, TcpState::Established);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// Fails if `socket` is not a TCP socket, or (with
/// [`io::ErrorKind::Unsupported`]) on systems other than Linux.
pub fn tcp_state(socket: &impl AsFd) -> io::Result<TcpState> {
    sys::tcp_state_raw(socket.as_fd()).map(TcpState::from_raw)
}

/// What the kernel knows about a TCP socket: its state and the counters
/// that show whether sent data is getting through (from
/// `getsockopt(TCP_INFO)`; see `tcp(7)` and `struct tcp_info` in
/// `linux/tcp.h`).
///
/// Why: a silently dropped connection looks healthy from user space (the
/// state stays [`TcpState::Established`], writes succeed); only these
/// counters show that the bytes written are retransmitted and never
/// acknowledged. Tests read them to tell "the middlebox dropped my request"
/// from "the server is slow".
///
/// ```
/// use connpool_testkit::{FaultServer, TcpState, tcp_info};
///
/// let server = FaultServer::start_echo()?;
/// let client = std::net::TcpStream::connect(server.addr())?;
/// let info = tcp_info(&client)?;
/// assert_eq!(info.state, TcpState::Established);
/// assert_eq!(info.unacked, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpInfo {
    /// The TCP state (`tcpi_state`).
    pub state: TcpState,
    /// Retransmission timeouts in a row for the oldest unacknowledged
    /// segment (`tcpi_retransmits`); back to 0 once it is acknowledged.
    pub retransmits: u8,
    /// Segments retransmitted over the connection's life
    /// (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Segments sent and not yet acknowledged (`tcpi_unacked`).
    pub unacked: u32,
    /// Keepalive (or zero-window) probes sent without an answer
    /// (`tcpi_probes`).
    pub probes: u8,
    /// How many times the retransmission timeout was doubled
    /// (`tcpi_backoff`).
    pub backoff: u8,
    /// The current retransmission timeout (`tcpi_rto`).
    pub rto: Duration,
    /// Time since data was last sent (`tcpi_last_data_sent`).
    pub last_data_sent: Duration,
    /// Time since data was last received (`tcpi_last_data_recv`).
    pub last_data_recv: Duration,
}

/// The kernel's [`TcpInfo`] for `socket` right now. Works with
/// `std::net::TcpStream`, `tokio::net::TcpStream`, `socket2::Socket`, ...
///
/// # Errors
///
/// Fails if `socket` is not a TCP socket, or (with
/// [`io::ErrorKind::Unsupported`]) on systems other than Linux.
pub fn tcp_info(socket: &impl AsFd) -> io::Result<TcpInfo> {
    let raw = sys::tcp_info_raw(socket.as_fd())?;
    Ok(TcpInfo {
        state: TcpState::from_raw(raw.state),
        retransmits: raw.retransmits,
        total_retrans: raw.total_retrans,
        unacked: raw.unacked,
        probes: raw.probes,
        backoff: raw.backoff,
        rto: Duration::from_micros(u64::from(raw.rto_us)),
        last_data_sent: Duration::from_millis(u64::from(raw.last_data_sent_ms)),
        last_data_recv: Duration::from_millis(u64::from(raw.last_data_recv_ms)),
    })
}

/// Waits until the peer's FIN or RST has reached `socket`, and returns the
/// state that shows it ([`TcpState::CloseWait`] after a FIN,
/// [`TcpState::Close`] after an RST; `LastAck`, `TimeWait` or `Closing` if
/// the client had closed too).
///
/// This waits on a condition, not on a guess: it polls [`tcp_state`] every
/// millisecond and returns as soon as the state changes. Nothing is read from
/// the socket.
///
/// Must run inside a Tokio runtime with the time driver enabled (as
/// `#[tokio::test]` and `#[tokio::main]` provide).
///
/// ```
/// use std::time::Duration;
/// use connpool_testkit::{CloseMode, FaultServer, TcpState, wait_peer_closed};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let server = FaultServer::builder().close_after(0, CloseMode::Rst).start()?;
/// // Works with std and Tokio sockets alike.
/// let client = std::net::TcpStream::connect(server.addr())?;
/// let state = wait_peer_closed(&client, Duration::from_secs(5)).await?;
/// assert_eq!(state, TcpState::Close);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`io::ErrorKind::TimedOut`] if `timeout` passes first; otherwise the
/// errors of [`tcp_state`].
pub async fn wait_peer_closed(socket: &impl AsFd, timeout: Duration) -> io::Result<TcpState> {
    const POLL_INTERVAL: Duration = Duration::from_millis(1);
    let started = Instant::now();
    loop {
        let state = tcp_state(socket)?;
        if state.peer_has_closed() {
            return Ok(state);
        }
        if started.elapsed() >= timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("peer did not close within {timeout:?} (state: {state:?})"),
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
