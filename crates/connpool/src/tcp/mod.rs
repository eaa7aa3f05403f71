//! TCP connections for the pool: a [`TcpManager`] that connects with a
//! timeout and sets socket options, and checks an idle connection before
//! reuse with one non-blocking `recv(MSG_PEEK)`.
//!
//! The check is what makes the keep-alive race rare instead of routine. A
//! server that closed an idle connection has sent a FIN (or an RST); once
//! it has reached our kernel, the peek sees it, and the pool evicts the
//! connection instead of handing it out:
//!
//! | peek result           | meaning                              | eviction reason |
//! |-----------------------|--------------------------------------|-----------------|
//! | `EAGAIN`              | nothing to read: alive               | —               |
//! | 0 bytes               | the peer's FIN                       | [`EvictReason::ServerClosed`] |
//! | an error (`ECONNRESET`, …) | the peer's RST, or a dead path  | [`EvictReason::ServerReset`] |
//! | 1 byte or more        | bytes nobody asked for (a `408`, …)  | [`EvictReason::UnexpectedData`] |
//!
//! What the peek cannot see is a close still in flight, or a path that died
//! silently; the HTTP layer's retry rules and TCP keepalive cover those.
//!
//! ```
//! use connpool::tcp::{TcpConfig, TcpManager, TcpPool};
//! use std::time::Duration;
//!
//! let pool: TcpPool = TcpPool::builder(TcpManager::new(TcpConfig {
//!     connect_timeout: Duration::from_secs(2),
//!     ..Default::default()
//! }))
//! .max_conns_per_key(16)
//! .build();
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::sys;
use crate::{Error, ErrorKind, EvictReason, Key, Manager, Pool};

/// A pool of TCP connections keyed by target (a `SocketAddr` by default).
pub type TcpPool<K = SocketAddr> = Pool<K, TcpManager>;

/// TCP keepalive timings; see [`TcpConfig::keepalive`].
///
/// The default (15 s idle, then a probe every 5 s, 3 unanswered probes)
/// does two jobs. A probe every 15 s keeps a flow alive through every
/// common middlebox that forgets idle flows: Azure Load Balancer forgets
/// after 4 min, AWS NAT gateways and Network Load Balancers after 350 s,
/// Google Cloud NAT after 30 s for some protocols, stateful firewalls
/// after a minute or more. And when the flow is already gone, the probes
/// go unanswered and the kernel fails the socket after 15 + 3 × 5 = 30 s,
/// so an idle connection whose path died is found by the peek at checkout
/// instead of by a request. Go's `net.Dialer` uses 15 s for the same
/// reasons. A probe is a 52-byte segment: cheap even for thousands of
/// connections.
///
/// ```
/// use connpool::tcp::TcpKeepalive;
/// let k = TcpKeepalive::default();
/// assert_eq!(k.gives_up_after(), std::time::Duration::from_secs(30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the kernel fails the connection.
    pub retries: u32,
}

impl Default for TcpKeepalive {
    fn default() -> Self {
        TcpKeepalive {
            idle: Duration::from_secs(15),
            interval: Duration::from_secs(5),
            retries: 3,
        }
    }
}

impl TcpKeepalive {
    /// How long an idle connection on a dead path lives: the idle time
    /// plus every probe interval.
    pub fn gives_up_after(&self) -> Duration {
        self.idle + self.interval * self.retries
    }
}

/// Settings of a [`TcpManager`].
///
/// ```
/// let config = connpool::tcp::TcpConfig::default();
/// assert!(config.nodelay);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Limit on resolving and connecting, for all addresses of a target
    /// together. Default 10 s.
    pub connect_timeout: Duration,
    /// Set `TCP_NODELAY`. Default true.
    pub nodelay: bool,
    /// TCP keepalive. Default [`TcpKeepalive::default()`] (15 s, 5 s, 3):
    /// see there for why.
    pub keepalive: Option<TcpKeepalive>,
    /// `TCP_USER_TIMEOUT`: how long written data may stay unacknowledged
    /// before the kernel fails the connection. Without it Linux retries a
    /// dead path for about 15 minutes (`tcp_retries2`), and a request
    /// written into it hangs that long. Default: `Auto`, the keepalive's
    /// [`gives_up_after`](TcpKeepalive::gives_up_after) (30 s): when the
    /// user timeout is set Linux ignores the keepalive probe count and
    /// fails an idle socket only after the user timeout, so a longer one
    /// would also slow keepalive down.
    pub user_timeout: UserTimeout,
}

/// The `TCP_USER_TIMEOUT` setting; see [`TcpConfig::user_timeout`].
///
/// ```
/// use connpool::tcp::{TcpConfig, UserTimeout};
/// use std::time::Duration;
///
/// let fixed = TcpConfig { user_timeout: UserTimeout::After(Duration::from_secs(5)), ..Default::default() };
/// assert_eq!(fixed.effective_user_timeout(), Some(Duration::from_secs(5)));
/// let off = TcpConfig { user_timeout: UserTimeout::Off, ..Default::default() };
/// assert_eq!(off.effective_user_timeout(), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserTimeout {
    /// The keepalive's give-up time, or none when keepalive is off.
    #[default]
    Auto,
    /// Leave the kernel's default (retransmissions for about 15 minutes).
    Off,
    /// This long.
    After(Duration),
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            connect_timeout: Duration::from_secs(10),
            nodelay: true,
            keepalive: Some(TcpKeepalive::default()),
            user_timeout: UserTimeout::Auto,
        }
    }
}

impl TcpConfig {
    /// The `TCP_USER_TIMEOUT` to set, if any.
    ///
    /// ```
    /// use connpool::tcp::TcpConfig;
    /// // `Auto` follows keepalive: 15 s idle + 3 probes x 5 s.
    /// let config = TcpConfig::default();
    /// assert_eq!(config.effective_user_timeout(), Some(std::time::Duration::from_secs(30)));
    /// ```
    pub fn effective_user_timeout(&self) -> Option<Duration> {
        match self.user_timeout {
            UserTimeout::Auto => self.keepalive.map(|k| k.gives_up_after()),
            UserTimeout::Off => None,
            UserTimeout::After(d) => Some(d),
        }
    }
}

/// Something a TCP connection can be opened to: a pool key that resolves
/// to socket addresses. Implemented for `SocketAddr`, and for `String`,
/// `Arc<str>` and `&'static str` in `host:port` form.
pub trait Target: Key {
    /// The addresses to try, in order.
    fn resolve(&self) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send;
}

impl Target for SocketAddr {
    async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(vec![*self])
    }
}

pub(crate) async fn lookup(host_port: &str) -> io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = host_port.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    Ok(tokio::net::lookup_host(host_port).await?.collect())
}

impl Target for String {
    fn resolve(&self) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send {
        lookup(self)
    }
}

impl Target for Arc<str> {
    fn resolve(&self) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send {
        lookup(self)
    }
}

impl Target for &'static str {
    fn resolve(&self) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send {
        lookup(self)
    }
}

/// Opens TCP connections and checks idle ones with a peek; the
/// [`Manager`] of a [`TcpPool`].
#[derive(Clone, Debug, Default)]
pub struct TcpManager {
    config: TcpConfig,
}

impl TcpManager {
    /// A manager with these settings.
    pub fn new(config: TcpConfig) -> Self {
        TcpManager { config }
    }

    /// Its settings.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    async fn open(&self, target: &impl Target) -> Result<TcpStream, Error> {
        let addrs = target
            .resolve()
            .await
            .map_err(|e| Error::new(ErrorKind::Resolve, "could not resolve").with_source(e))?;
        if addrs.is_empty() {
            return Err(Error::new(ErrorKind::Resolve, "no addresses"));
        }
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    self.configure(&stream).map_err(Error::from_connect_io)?;
                    return Ok(stream);
                }
                Err(e) => last = Some(Error::from_connect_io(e).with_message(addr.to_string())),
            }
        }
        Err(last.expect("at least one address was tried"))
    }

    fn configure(&self, stream: &TcpStream) -> io::Result<()> {
        if self.config.nodelay {
            sys::set_nodelay(stream, true)?;
        }
        if let Some(k) = self.config.keepalive {
            sys::set_keepalive(stream, k.idle, k.interval, k.retries)?;
        }
        if let Some(timeout) = self.config.effective_user_timeout() {
            sys::set_user_timeout(stream, timeout)?;
        }
        Ok(())
    }
}

impl<K: Target> Manager<K> for TcpManager {
    type Conn = TcpStream;

    async fn connect(&self, key: &K) -> Result<TcpStream, Error> {
        let timeout = self.config.connect_timeout;
        match tokio::time::timeout(timeout, self.open(key)).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::ConnectTimeout,
                format!("no connection within {timeout:?}"),
            )),
        }
    }

    fn check(
        &self,
        _key: &K,
        conn: &mut TcpStream,
        _idle_for: Duration,
    ) -> Result<(), EvictReason> {
        check_idle(conn)
    }
}

/// The liveness check of an idle connection, for managers that wrap a TCP
/// socket of their own: `Ok` when nothing is waiting on it, else the
/// eviction reason of the table above.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
/// assert!(connpool::tcp::check_idle(&client).is_ok());
/// # Ok(()) }
/// ```
pub fn check_idle(socket: &impl std::os::fd::AsFd) -> Result<(), EvictReason> {
    judge_peek(sys::peek(socket))
}

/// The verdict of the table above on one peek's result. (A peek that
/// reports an error clears it: peek once, judge once.)
pub(crate) fn judge_peek(peek: sys::Peek) -> Result<(), EvictReason> {
    match peek {
        sys::Peek::Empty => Ok(()),
        sys::Peek::Eof => Err(EvictReason::ServerClosed),
        sys::Peek::Data => Err(EvictReason::UnexpectedData),
        sys::Peek::Error(e) => Err(judge_error(&e)),
    }
}

/// The eviction reason of an error found on an idle connection: a reset,
/// a dead path (the kernel gave up retransmitting), or anything else.
pub(crate) fn judge_error(e: &io::Error) -> EvictReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => EvictReason::ServerReset,
        io::ErrorKind::TimedOut => EvictReason::DeadPath,
        _ => EvictReason::Unhealthy,
    }
}
