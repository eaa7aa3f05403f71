//! The client's settings, as a plain struct with defaults, and the reasons
//! for each default.

use std::time::Duration;

use super::replay::ReplayPolicy;
use super::wire::HeadLimits;
use crate::tcp::{TcpKeepalive, UserTimeout};

/// Every setting of a [`Client`](super::Client). Names follow Go's
/// `http.Transport` and reqwest where they have one.
///
/// ```
/// use connpool::http::ClientConfig;
/// use std::time::Duration;
/// let config = ClientConfig {
///     max_conns_per_host: 8,
///     pool_idle_timeout: Some(Duration::from_secs(2)),
///     ..ClientConfig::default()
/// };
/// assert_eq!(config.keep_alive_margin, Duration::from_secs(1));
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// How long a connection may sit idle in the pool. Default **4 s**:
    /// under the idle timeouts of Node (5 s) and Apache (5 s) by a second
    /// of margin, and far under nginx's 75 s and the usual load balancer
    /// limits (AWS ALB 60 s, Azure LB 4 min). Go and reqwest default to
    /// 90 s, longer than most servers keep a connection: the keep-alive
    /// race by configuration. A busy client reuses a connection long
    /// before 4 s; an idle one pays one connect. The server's
    /// `Keep-Alive` hint and its learned timeout can only shorten it.
    pub pool_idle_timeout: Option<Duration>,
    /// Idle connections kept per host. Default 32.
    pub pool_max_idle_per_host: usize,
    /// Idle connections kept in all. Default 1024.
    pub pool_max_idle_total: usize,
    /// Connections per host, counting those being opened. Default **64**:
    /// a burst queues instead of exhausting file descriptors (Go and
    /// reqwest have no cap by default).
    pub max_conns_per_host: usize,
    /// How long a request waits for a connection when its host is at the
    /// cap. Default **10 s**, then [`ErrorKind::PoolWaitTimeout`](crate::ErrorKind::PoolWaitTimeout)
    /// naming the pool's state.
    pub pool_wait_timeout: Duration,
    /// Requests allowed to wait per host; one more is refused at once.
    /// Default 1024.
    pub max_waiters_per_host: usize,
    /// Connections older than this are not reused. Default none.
    pub max_lifetime: Option<Duration>,
    /// Fraction (0.0–1.0) of `max_lifetime` taken off each connection's
    /// lifetime at random, so connections opened together do not all
    /// expire together. Default 0.
    pub max_lifetime_jitter: f64,
    /// Requests per connection: the last one goes out with
    /// `Connection: close`. Default none.
    pub max_requests_per_conn: Option<u32>,
    /// Keep connections open between requests. With `false` every request
    /// says `Connection: close` and gets a new connection. Default true.
    pub keep_alive: bool,
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// How long to wait for the response head once the request is
    /// written. Default **30 s**: a server that never answers must not
    /// hang a caller forever. `None` waits as long as the request timeout
    /// allows.
    pub response_header_timeout: Option<Duration>,
    /// The whole request: waiting for a connection, connecting, writing,
    /// and reading the head and the body. Default none.
    pub timeout: Option<Duration>,
    /// Taken off a server's `Keep-Alive: timeout=N` hint (whole seconds,
    /// a timer that may fire early, a response still in flight). A hint no
    /// larger than the margin means: do not reuse. Also the largest margin
    /// taken off a learned timeout. Default **1 s** (undici takes 1 s too).
    pub keep_alive_margin: Duration,
    /// Expire idle connections by the server's `Keep-Alive: timeout=N`
    /// hint (minus [`keep_alive_margin`](Self::keep_alive_margin)), and
    /// close at once when the hint is within the margin. Default true.
    /// Turn it off for a server whose hint is known to be wrong, or to
    /// measure the server's real idle timeout (`connpool probe` does):
    /// the learned timeout and the checkout peek still apply.
    pub obey_keep_alive_hint: bool,
    /// Learn each host's idle timeout from the closes the pool sees, and
    /// expire idle connections a margin before it. Default true.
    pub learn_idle_timeout: bool,
    /// Which requests are retried after a stale-connection failure.
    pub replay: ReplayPolicy,
    /// A response body dropped before its end is read to its end in the
    /// background, so the connection can be reused, if at most this many
    /// bytes remain. Default 64 KiB.
    pub drain_max_bytes: u64,
    /// ... and if that takes at most this long. Default 1 s.
    pub drain_timeout: Duration,
    /// Response heads larger than this are refused
    /// ([`ErrorKind::HeadersTooLarge`](crate::ErrorKind::HeadersTooLarge)).
    /// Default 64 KiB.
    pub max_response_head_bytes: usize,
    /// Response heads with more fields than this are refused
    /// ([`ErrorKind::TooManyHeaders`](crate::ErrorKind::TooManyHeaders)).
    /// Default 100.
    pub max_response_headers: usize,
    /// TCP keepalive on every connection. Default
    /// [`TcpKeepalive::default()`]: a probe after 15 s idle keeps flows
    /// alive through load balancers and NATs that forget idle ones, and
    /// finds a dead flow within 30 s (see there for the figures).
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `TCP_USER_TIMEOUT`. Default `Auto`: the keepalive's give-up time
    /// (30 s), so a request written into a dead path fails within 30 s
    /// even when the dead-path check cannot prove anything, instead of
    /// the kernel's 15 minutes. See [`UserTimeout`].
    pub tcp_user_timeout: UserTimeout,
    /// How long a request waits for its first response byte before the
    /// client asks the kernel (`TCP_INFO`) whether any byte of it was
    /// acknowledged and how often it was retransmitted. When nothing was
    /// acknowledged since the request was written and the kernel has
    /// retransmitted it twice without a reply (a live peer answers a
    /// retransmission with an ACK within a round trip and its delayed-ACK
    /// time, and two retransmission timeouts are longer than that), the
    /// path is dead: the connection is closed with
    /// [`ErrorKind::DeadPath`](crate::ErrorKind::DeadPath) and a replayable
    /// request goes out again at once on a new connection. The check then
    /// repeats every retransmission timeout until an ACK arrives. Default
    /// **500 ms**, which finds a dead path about 0.6–1 s after the write
    /// on a network with a round trip under 100 ms. `None` turns it off.
    /// Requests answered sooner pay nothing for it: no timer, no syscall.
    pub dead_path_check: Option<Duration>,
    /// `TCP_NODELAY`. Default true.
    pub tcp_nodelay: bool,
    /// The `User-Agent` sent when a request has none. Default none, as in
    /// reqwest and hyper: the header is optional, and adding it to every
    /// request costs a header map per request.
    pub user_agent: Option<http::HeaderValue>,
    /// Record a [`RequestTrace`](super::RequestTrace) for every request.
    /// Default false.
    pub trace_requests: bool,
    /// The TLS settings of `https` requests. Default `None`: the
    /// process-wide [`TlsConfig::default`](crate::tls::TlsConfig::default)
    /// (Mozilla's roots, verification on), built on first use.
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            pool_idle_timeout: Some(Duration::from_secs(4)),
            pool_max_idle_per_host: 32,
            pool_max_idle_total: 1024,
            max_conns_per_host: 64,
            pool_wait_timeout: Duration::from_secs(10),
            max_waiters_per_host: 1024,
            max_lifetime: None,
            max_lifetime_jitter: 0.0,
            max_requests_per_conn: None,
            keep_alive: true,
            connect_timeout: Duration::from_secs(10),
            response_header_timeout: Some(Duration::from_secs(30)),
            timeout: None,
            keep_alive_margin: Duration::from_secs(1),
            obey_keep_alive_hint: true,
            learn_idle_timeout: true,
            replay: ReplayPolicy::default(),
            drain_max_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(1),
            max_response_head_bytes: 64 * 1024,
            max_response_headers: 100,
            tcp_keepalive: Some(TcpKeepalive::default()),
            tcp_user_timeout: UserTimeout::Auto,
            dead_path_check: Some(Duration::from_millis(500)),
            tcp_nodelay: true,
            user_agent: None,
            trace_requests: false,
            tls: None,
        }
    }
}

impl ClientConfig {
    /// The response-head limits for the wire parser.
    pub(crate) fn head_limits(&self) -> HeadLimits {
        HeadLimits {
            max_head_bytes: self.max_response_head_bytes,
            max_headers: self.max_response_headers,
        }
    }
}
