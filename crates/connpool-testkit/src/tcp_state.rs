//! Client-side helpers: ask the kernel whether the server's close has arrived.

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
