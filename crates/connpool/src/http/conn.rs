//! The pooled HTTP/1.1 connection and the manager that opens and checks it.
//!
//! A [`HostKey`] is what makes two connections interchangeable: scheme,
//! host (which is also the TLS server name), port, and for `https` the
//! identity of the [`TlsConfig`] (see [`crate::tls`] for why identity and
//! not equality of settings). A plain key holds nothing more than it did
//! before HTTPS, and the per-thread key cache (`last_key`) matches on the
//! scheme and TLS identity as well as the authority.
//!
//! [`HttpConn`] is a [`Stream`] (TCP, or TLS over TCP: the handshake runs
//! in [`HttpManager::connect`], within the connect timeout), a read
//! buffer, and a little history. An
//! idle connection's read buffer is always empty, and under TLS rustls
//! holds nothing unread either — a connection goes back to the pool only
//! at a message boundary with nothing left over, so any byte found on an
//! idle connection is a byte nobody asked for — and it
//! holds no allocation: buffers are lent from a per-thread cache while a
//! response is read (`spare_bufs`).
//!
//! [`HttpManager::check`] runs at every checkout: the jittered lifetime,
//! then the TCP peek (FIN, RST, stray bytes such as a server's unsolicited
//! `408`; under TLS, bytes go through rustls: see `stream.rs`). When the peek finds the server's FIN it also tells the
//! [`IdleTimeoutLearner`] when the server closed, so the next connections
//! to that host expire before the server's timer fires.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::learn::IdleTimeoutLearner;
use super::stream::{Stream, TcpIo};
use crate::tcp::{self, Target, TcpConfig, TcpManager};
use crate::tls::TlsConfig;
use crate::{Error, ErrorKind, EvictReason, Manager};

/// The pool key of the HTTP client: the origin a connection was opened to
/// and, for `https`, the TLS configuration it was opened with.
///
/// Two requests share connections exactly when their keys are equal:
///
/// * the scheme (`http` or `https`): a plain connection never serves an
///   `https` request, nor the reverse;
/// * the host, as in the URL: it is also the TLS server name (SNI, and the
///   name the certificate is verified for), so `https://localhost` and
///   `https://127.0.0.1` never share a connection even to one server;
/// * the port (80 or 443 when the URL names none);
/// * for `https`, the [`TlsConfig`]'s identity: roots, client certificate
///   and verification settings, compared as "the same built
///   configuration" (see [`crate::tls`]).
///
/// ```
/// use connpool::http::HostKey;
/// let key = HostKey::from_uri(&"http://example.com/a?b".parse().unwrap()).unwrap();
/// assert_eq!((key.host(), key.port()), ("example.com", 80));
/// assert_eq!(format!("{key:?}"), "http://example.com:80");
///
/// let tls = HostKey::from_uri(&"https://example.com/".parse().unwrap()).unwrap();
/// assert_eq!(format!("{tls:?}"), "https://example.com:443");
/// assert!(tls.is_https());
/// assert_ne!(key, tls);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey {
    /// `host:port`, in one allocation: the key compares and hashes it,
    /// the resolver reads it, the `Host` header is a slice of it.
    host_port: Arc<str>,
    host_len: usize,
    port: u16,
    /// `None` for `http`; for `https` the TLS configuration, compared and
    /// hashed by its identity. The scheme is this field: a plain key
    /// carries nothing more than before HTTPS existed.
    tls: Option<TlsConfig>,
}

impl std::hash::Hash for HostKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.host_port.hash(state);
        self.port.hash(state);
        // Plain keys hash exactly what they did before HTTPS.
        if let Some(tls) = &self.tls {
            tls.hash(state);
        }
    }
}

impl HostKey {
    /// The key for a URI: it must be absolute, `http` or `https`, with a
    /// host. An `https` URI gets the process-wide default TLS settings
    /// ([`TlsConfig::default`]); see [`HostKey::from_uri_with_tls`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUrl`] naming what is missing or unsupported.
    pub fn from_uri(uri: &http::Uri) -> Result<HostKey, Error> {
        HostKey::build(uri, None)
    }

    /// The key for a URI whose `https` connections use `tls` (an `http`
    /// URI ignores it).
    ///
    /// ```
    /// use connpool::http::HostKey;
    /// use connpool::tls::TlsConfig;
    /// let uri = "https://example.com/".parse().unwrap();
    /// let tls = TlsConfig::builder().build()?;
    /// let key = HostKey::from_uri_with_tls(&uri, &tls)?;
    /// assert_eq!(key.tls(), Some(&tls));
    /// assert_ne!(key, HostKey::from_uri(&uri)?, "another TLS configuration");
    /// # Ok::<(), connpool::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`HostKey::from_uri`].
    pub fn from_uri_with_tls(uri: &http::Uri, tls: &TlsConfig) -> Result<HostKey, Error> {
        HostKey::build(uri, Some(tls))
    }

    pub(crate) fn build(uri: &http::Uri, tls: Option<&TlsConfig>) -> Result<HostKey, Error> {
        let invalid = |what: &str| Error::new(ErrorKind::InvalidUrl, format!("{what}: {uri}"));
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(_) => return Err(invalid("only http and https URLs can be requested")),
            None => return Err(invalid("the URL has no scheme (want http://host/...)")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("the URL has no host"))?
            .as_str();
        let tls = if https {
            Some(tls.cloned().unwrap_or_default())
        } else {
            None
        };
        if let Some(key) = last_key::get(authority, tls.as_ref()) {
            return Ok(key);
        }
        let host = uri.host().ok_or_else(|| invalid("the URL has no host"))?;
        if host.is_empty() {
            return Err(invalid("the URL has an empty host"));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        // Built by hand: `format!` costs more than the rest of the key.
        let mut host_port = Vec::with_capacity(host.len() + 6);
        host_port.extend_from_slice(host.as_bytes());
        host_port.push(b':');
        super::wire::push_decimal(&mut host_port, u64::from(port));
        let host_port = String::from_utf8(host_port).expect("a host and digits are UTF-8");
        let key = HostKey {
            host_port: Arc::from(host_port),
            host_len: host.len(),
            port,
            tls,
        };
        last_key::set(&key);
        Ok(key)
    }

    /// The host, as in the URL (an IPv6 address keeps its brackets). For
    /// `https` it is also the TLS server name.
    pub fn host(&self) -> &str {
        &self.host_port[..self.host_len]
    }

    /// The port (80 for `http`, 443 for `https` when the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS configuration of an `https` key.
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    fn default_port(&self) -> u16 {
        if self.tls.is_some() { 443 } else { 80 }
    }

    /// The value of the `Host` header: the port is left out when it is
    /// the default one.
    pub(crate) fn authority(&self) -> &str {
        if self.port == self.default_port() {
            self.host()
        } else {
            &self.host_port
        }
    }
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tls {
            None => write!(f, "http://{}", self.host_port),
            Some(tls) if tls.id() == 0 => write!(f, "https://{}", self.host_port),
            Some(tls) => write!(f, "https://{} (tls #{})", self.host_port, tls.id()),
        }
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Target for HostKey {
    async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        tcp::lookup(&self.host_port).await
    }
}

/// A pooled HTTP/1.1 connection.
pub(crate) struct HttpConn {
    pub(crate) stream: Stream,
    /// Bytes read but not yet consumed. Empty whenever the connection is
    /// idle.
    pub(crate) read_buf: BytesMut,
    /// Responses completed on this connection.
    pub(crate) responses: u32,
    /// When `connect` began, and how long it took: the trace of the first
    /// request on this connection reports them.
    pub(crate) connect_started: Instant,
    pub(crate) connect_took: Duration,
    /// This connection's own lifetime: `max_lifetime` minus its jitter.
    pub(crate) lifetime: Option<Duration>,
}

/// The last key each thread built, so that a run of requests to one host
/// (the common case) shares one key instead of parsing the authority and
/// allocating a key per request: this saves about a tenth of a request's
/// user CPU. A hit needs the URL's authority to be exactly the key's
/// `Host` form (`host` for the scheme's default port, else `host:port`),
/// so a URL with userinfo or an explicit default port takes the slow path,
/// never a wrong key; and it needs the same scheme and TLS configuration
/// (`tls`: `None` for `http`), so `http://h:443` never hits a key made for
/// `https://h`, nor one TLS configuration's key another's.
mod last_key {
    use std::cell::RefCell;

    use super::HostKey;
    use crate::tls::TlsConfig;

    thread_local! {
        static LAST: RefCell<Option<HostKey>> = const { RefCell::new(None) };
    }

    /// The cached key whose `Host` form is `authority` and whose TLS
    /// configuration is `tls`, if any.
    pub(super) fn get(authority: &str, tls: Option<&TlsConfig>) -> Option<HostKey> {
        LAST.with(|last| {
            last.borrow()
                .as_ref()
                .filter(|key| key.tls.as_ref() == tls && key.authority() == authority)
                .cloned()
        })
    }

    pub(super) fn set(key: &HostKey) {
        LAST.with(|last| *last.borrow_mut() = Some(key.clone()));
    }
}

/// The read buffer's starting size: large enough for a typical response
/// head and a small body in one read.
const READ_BUF_SIZE: usize = 8 * 1024;

/// Spare read buffers kept per thread.
const SPARE_BUFS_PER_THREAD: usize = 64;

/// Read buffers are lent to connections only while a response is being
/// read. An idle connection holds none: with thousands of idle
/// connections, 8 KiB each would be most of the pool's memory. Returned
/// buffers wait in a small per-thread cache for the next response, so the
/// busy path neither allocates nor takes a lock.
mod spare_bufs {
    use std::cell::RefCell;

    use bytes::BytesMut;

    thread_local! {
        static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// How many buffers this thread's cache holds.
    #[cfg(test)]
    pub(crate) fn cached() -> usize {
        SPARE.with(|spare| spare.borrow().len())
    }

    /// A buffer with room for a response head, from the cache if it has one.
    pub(crate) fn take() -> BytesMut {
        SPARE
            .try_with(|spare| spare.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| BytesMut::with_capacity(super::READ_BUF_SIZE))
    }

    /// Keeps an emptied buffer for the next response, unless the cache is
    /// full or the buffer is too small to be worth it or grew large (a big
    /// response): those go back to the allocator.
    pub(crate) fn give_back(buf: BytesMut) {
        if !buf.is_empty()
            || buf.capacity() < super::READ_BUF_SIZE / 2
            || buf.capacity() > 8 * super::READ_BUF_SIZE
        {
            return;
        }
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < super::SPARE_BUFS_PER_THREAD {
                spare.push(buf);
            }
        });
    }
}

impl HttpConn {
    /// Makes sure the connection has a read buffer with some room.
    pub(crate) fn ensure_read_buf(&mut self) {
        if self.read_buf.capacity() == 0 {
            self.read_buf = spare_bufs::take();
        } else if self.read_buf.capacity() - self.read_buf.len() < 1024 {
            self.read_buf.reserve(READ_BUF_SIZE);
        }
    }

    /// Lends the (empty) read buffer back before the connection goes idle.
    pub(crate) fn release_read_buf(&mut self) {
        spare_bufs::give_back(std::mem::take(&mut self.read_buf));
    }

    /// How long ago the connection was opened.
    pub(crate) fn age(&self) -> Duration {
        self.connect_started.elapsed()
    }
}

/// Opens connections with the TCP manager and checks them before reuse.
pub(crate) struct HttpManager {
    pub(crate) tcp: TcpManager,
    pub(crate) learner: IdleTimeoutLearner,
    /// `max_lifetime` and its jitter fraction (0.0 to 1.0).
    pub(crate) max_lifetime: Option<(Duration, f64)>,
}

impl HttpManager {
    pub(crate) fn new(
        tcp: TcpConfig,
        learner: IdleTimeoutLearner,
        max_lifetime: Option<(Duration, f64)>,
    ) -> Self {
        HttpManager {
            tcp: TcpManager::new(tcp),
            learner,
            max_lifetime,
        }
    }

    /// The TLS handshake on a new TCP connection, within what is left of
    /// the connect timeout.
    async fn handshake(
        &self,
        key: &HostKey,
        tls: &TlsConfig,
        tcp: tokio::net::TcpStream,
        connect_started: Instant,
    ) -> Result<super::stream::TlsStream, Error> {
        let name = crate::tls::server_name(key.host())?;
        let timeout = self.tcp.config().connect_timeout;
        let left = timeout.saturating_sub(connect_started.elapsed());
        let io = TcpIo { tcp, written: 0 };
        match tokio::time::timeout(left, tls.connector().connect(name, io)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(Error::from_tls_handshake_io(e)),
            Err(_) => Err(Error::new(
                ErrorKind::ConnectTimeout,
                format!("no TLS connection within {timeout:?}"),
            )),
        }
    }

    /// A lifetime in `[max × (1 − jitter), max]`: connections opened in a
    /// burst then expire spread out instead of all at once (HikariCP's
    /// lesson), and never later than `max`.
    fn jittered_lifetime(&self) -> Option<Duration> {
        let (max, jitter) = self.max_lifetime?;
        let fraction = jitter.clamp(0.0, 1.0) * unit_random();
        Some(max.mul_f64(1.0 - fraction))
    }
}

/// A number in `[0, 1)` that differs from call to call; enough for
/// spreading expiries, not for anything that needs real randomness.
fn unit_random() -> f64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let bits = foldhash::fast::RandomState::default().hash_one(n);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

impl Manager<HostKey> for HttpManager {
    type Conn = HttpConn;

    async fn connect(&self, key: &HostKey) -> Result<HttpConn, Error> {
        let connect_started = Instant::now();
        let tcp = self.tcp.connect(key).await?;
        let stream = match &key.tls {
            None => Stream::Plain(tcp),
            Some(tls) => Stream::Tls(Box::new(
                self.handshake(key, tls, tcp, connect_started).await?,
            )),
        };
        Ok(HttpConn {
            stream,
            read_buf: BytesMut::new(),
            responses: 0,
            connect_started,
            connect_took: connect_started.elapsed(),
            lifetime: self.jittered_lifetime(),
        })
    }

    fn check(
        &self,
        key: &HostKey,
        conn: &mut HttpConn,
        idle_for: Duration,
    ) -> Result<(), EvictReason> {
        if conn.lifetime.is_some_and(|life| conn.age() >= life) {
            return Err(EvictReason::MaxLifetime);
        }
        if !conn.read_buf.is_empty() {
            return Err(EvictReason::UnexpectedData);
        }
        let result = conn.stream.check_idle();
        match result {
            Err(EvictReason::ServerClosed) => {
                self.learner.observe_fin(key, conn.stream.tcp(), idle_for)
            }
            Err(EvictReason::ServerReset) => self.learner.observe_close(key, idle_for),
            _ => {}
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> HostKey {
        HostKey::from_uri(&url.parse().unwrap()).unwrap()
    }

    #[test]
    fn host_port_and_authority() {
        for (url, host, port, authority) in [
            ("http://a.example/", "a.example", 80, "a.example"),
            (
                "http://a.example:8080/x",
                "a.example",
                8080,
                "a.example:8080",
            ),
            ("http://127.0.0.1:1", "127.0.0.1", 1, "127.0.0.1:1"),
            ("http://[::1]:65535/", "[::1]", 65535, "[::1]:65535"),
            ("http://h:0/", "h", 0, "h:0"),
        ] {
            let k = key(url);
            assert_eq!((k.host(), k.port(), k.authority()), (host, port, authority));
            assert_eq!(format!("{k:?}"), format!("http://{host}:{port}"));
        }
        assert_eq!(
            key("http://a:80/"),
            key("http://a/"),
            "the default port is the same key"
        );
        assert_ne!(key("http://a:81/"), key("http://a/"));
    }

    #[test]
    fn the_cached_key_is_shared_only_by_the_same_authority() {
        let a = key("http://a.example:8080/x");
        let again = key("http://a.example:8080/y?z");
        assert!(Arc::ptr_eq(&a.host_port, &again.host_port), "a cache hit");
        // Same key, other spelling: built again, and still equal.
        let spelled = key("http://user@a.example:8080/");
        assert_eq!(spelled, a);
        assert!(!Arc::ptr_eq(&spelled.host_port, &a.host_port));
        // Another port or host never hits the cache.
        assert_eq!(key("http://a.example:8081/").port(), 8081);
        assert_eq!(key("http://b.example:8080/").host(), "b.example");
        assert_eq!(key("http://a.example/").authority(), "a.example");
        assert_eq!(key("http://a.example:80/").authority(), "a.example");
    }

    #[test]
    fn https_keys_have_their_own_default_port_scheme_and_tls_identity() {
        let tls = key("https://a.example/");
        assert_eq!((tls.port(), tls.authority()), (443, "a.example"));
        assert_eq!(format!("{tls:?}"), "https://a.example:443");
        assert_eq!(tls, key("https://a.example:443/"));
        // Same host and port, other scheme: never the same key, and the
        // per-thread cache never hands one out for the other.
        let plain = key("http://a.example:443/");
        assert_ne!(plain, tls);
        assert!(!plain.is_https());
        assert_eq!(key("https://a.example/").tls(), Some(&TlsConfig::default()));
        let other = TlsConfig::builder().build().unwrap();
        let uri: http::Uri = "https://a.example/".parse().unwrap();
        let custom = HostKey::from_uri_with_tls(&uri, &other).unwrap();
        assert_ne!(custom, tls, "another TLS configuration");
        assert_eq!(
            format!("{custom:?}"),
            format!("https://a.example:443 (tls #{})", other.id())
        );
        assert_eq!(key("https://a.example/"), tls, "the cache keys on TLS too");
        assert_eq!(HostKey::from_uri_with_tls(&uri, &other).unwrap(), custom);
        let hash = |k: &HostKey| {
            std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), k)
        };
        assert_ne!(hash(&custom), hash(&tls));
        assert_eq!(key("https://[::1]:8443/").authority(), "[::1]:8443");
    }

    /// A manager with default TCP settings whose `https` keys trust `ca`.
    fn tls_manager() -> HttpManager {
        HttpManager::new(
            TcpConfig::default(),
            IdleTimeoutLearner::new(false, Duration::from_secs(1)),
            None,
        )
    }

    #[tokio::test]
    async fn session_tickets_waiting_on_an_idle_tls_connection_keep_it() {
        use connpool_testkit::http::HttpServer;
        use connpool_testkit::tls::{ServerTls, TestCa};
        let ca = TestCa::new("connpool test CA");
        let cert = ca.server_cert(&["localhost"]);
        let server = HttpServer::builder()
            .start_tls(ServerTls::from_cert(&cert))
            .unwrap();
        let tls = TlsConfig::builder()
            .root_store(ca.root_store())
            .build()
            .unwrap();
        let uri = format!("https://localhost:{}/", server.addr().port());
        let key = HostKey::from_uri_with_tls(&uri.parse().unwrap(), &tls).unwrap();
        let manager = tls_manager();
        let mut conn = manager.connect(&key).await.unwrap();
        // The TLS 1.3 server sends its tickets after the handshake; wait
        // until they are on the socket, unread.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(crate::sys::peek(conn.stream.tcp()), crate::sys::Peek::Data) {
            assert!(Instant::now() < deadline, "no session tickets arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(manager.check(&key, &mut conn, Duration::ZERO), Ok(()));
        // The connection still works.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        conn.stream.flush().await.unwrap();
        let mut buf = [0u8; 12];
        conn.stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        assert_eq!(server.requests(), 1);
    }

    #[test]
    fn read_buffers_are_lent_and_taken_back() {
        let before = spare_bufs::cached();
        let mut buf = spare_bufs::take();
        assert!(buf.capacity() >= READ_BUF_SIZE);
        let ptr = buf.as_ptr();
        spare_bufs::give_back(buf);
        assert_eq!(spare_bufs::cached(), before + 1);
        buf = spare_bufs::take();
        assert_eq!(buf.as_ptr(), ptr, "the same buffer comes back");
        assert_eq!(spare_bufs::cached(), before);
        buf.extend_from_slice(b"x");
        spare_bufs::give_back(buf);
        assert_eq!(
            spare_bufs::cached(),
            before,
            "a buffer holding bytes is not kept"
        );
        spare_bufs::give_back(bytes::BytesMut::with_capacity(1 << 20));
        assert_eq!(
            spare_bufs::cached(),
            before,
            "a buffer that grew large is not kept"
        );
    }

    #[test]
    fn only_http_and_https_urls_have_keys() {
        for url in ["ftp://a/", "/relative"] {
            let err = HostKey::from_uri(&url.parse().unwrap()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{url}");
        }
    }
}
