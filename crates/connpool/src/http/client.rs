//! [`Client`]: requests in, responses out, and the rules for when a failed
//! request is sent again.
//!
//! One request is a loop of at most two *attempts*:
//!
//! 1. Check out a connection (idle ones are checked first: lifetime, the
//!    TCP peek, the learned timeout).
//! 2. Write the request, counting the bytes the kernel took.
//! 3. Read the response head (skipping 1xx interim responses), within the
//!    response-header timeout.
//! 4. On failure: if the connection was *reused*, no response byte had
//!    arrived, the failure is the stale-connection kind (EOF, reset,
//!    broken pipe) and the request is replayable (see [`ReplayPolicy`]) or
//!    provably nothing of it was written, the connection is traded for a
//!    fresh one ([`Pool::reconnect`](crate::Pool::reconnect)) and the
//!    request goes again. Otherwise the error reaches the caller, saying
//!    whether the request may have been processed.
//!
//! The response's body holds the connection; see [`Response`].

use std::borrow::Cow;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Buf;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use tokio::io::AsyncWriteExt;

use super::body::{Body, BodyKind};
use super::config::ClientConfig;
use super::conn::{HostKey, HttpConn, HttpManager};
use super::learn::IdleTimeoutLearner;
use super::path::{self, Verdict};
use super::replay::ReplayPolicy;
use super::response::{Response, poll_fill, start_body};
use super::stream::Stream;
use super::trace::{TraceStep, Tracer};
use super::watch::{Alarm, Watch, Watchdog};
use super::wire::{self, BodyFraming, HeadLimits, ResponseHead};
use crate::error::{Acknowledged, Delivery, RequestFate};
use crate::tcp::TcpConfig;
use crate::{Error, ErrorKind, EvictReason, Observer, Pool, PoolStats, PooledConn};

/// The pool behind a client.
pub(crate) type HttpPool = Pool<HostKey, HttpManager>;
/// A checked-out HTTP connection.
pub(crate) type Conn = PooledConn<HostKey, HttpManager>;

/// Bodies up to this size are copied behind the head and sent in one
/// write: one syscall and one segment for the common small request.
const COALESCE_BODY: usize = 16 * 1024;

/// An HTTP/1.1 client with a keep-alive pool; see the [module docs](super).
///
/// Cloning is cheap: clones share the pool.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), connpool::Error> {
/// let client = connpool::http::Client::new();
/// let resp = client
///     .get("http://127.0.0.1:8080/items")
///     .header("accept", "application/json")
///     .send()
///     .await?;
/// println!("{} {}", resp.status(), resp.text().await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) pool: HttpPool,
    pub(crate) config: ClientConfig,
    /// The response-header deadlines of this client's requests.
    watchdog: Watchdog,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Builds a [`Client`].
///
/// ```
/// use connpool::http::Client;
/// use std::time::Duration;
/// let client = Client::builder()
///     .pool_idle_timeout(Some(Duration::from_secs(2)))
///     .max_conns_per_host(16)
///     .pool_wait_timeout(Duration::from_millis(500))
///     .response_header_timeout(Some(Duration::from_secs(5)))
///     .build();
/// # drop(client);
/// ```
pub struct ClientBuilder {
    config: ClientConfig,
    observer: Option<Arc<dyn Observer<HostKey>>>,
}

impl ClientBuilder {
    /// Replaces all settings at once.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    setters! {
        /// See [`ClientConfig::pool_idle_timeout`].
        pool_idle_timeout: Option<Duration>;
        /// See [`ClientConfig::pool_max_idle_per_host`].
        pool_max_idle_per_host: usize;
        /// See [`ClientConfig::pool_max_idle_total`].
        pool_max_idle_total: usize;
        /// See [`ClientConfig::max_conns_per_host`].
        max_conns_per_host: usize;
        /// See [`ClientConfig::pool_wait_timeout`].
        pool_wait_timeout: Duration;
        /// See [`ClientConfig::max_waiters_per_host`].
        max_waiters_per_host: usize;
        /// See [`ClientConfig::max_lifetime`].
        max_lifetime: Option<Duration>;
        /// See [`ClientConfig::max_lifetime_jitter`].
        max_lifetime_jitter: f64;
        /// See [`ClientConfig::max_requests_per_conn`].
        max_requests_per_conn: Option<u32>;
        /// See [`ClientConfig::keep_alive`].
        keep_alive: bool;
        /// See [`ClientConfig::connect_timeout`].
        connect_timeout: Duration;
        /// See [`ClientConfig::response_header_timeout`].
        response_header_timeout: Option<Duration>;
        /// See [`ClientConfig::timeout`].
        timeout: Option<Duration>;
        /// See [`ClientConfig::keep_alive_margin`].
        keep_alive_margin: Duration;
        /// See [`ClientConfig::obey_keep_alive_hint`].
        obey_keep_alive_hint: bool;
        /// See [`ClientConfig::learn_idle_timeout`].
        learn_idle_timeout: bool;
        /// See [`ClientConfig::replay`].
        replay: ReplayPolicy;
        /// See [`ClientConfig::drain_max_bytes`].
        drain_max_bytes: u64;
        /// See [`ClientConfig::drain_timeout`].
        drain_timeout: Duration;
        /// See [`ClientConfig::max_response_head_bytes`].
        max_response_head_bytes: usize;
        /// See [`ClientConfig::max_response_headers`].
        max_response_headers: usize;
        /// See [`ClientConfig::tcp_keepalive`].
        tcp_keepalive: Option<crate::tcp::TcpKeepalive>;
        /// See [`ClientConfig::tcp_user_timeout`].
        tcp_user_timeout: crate::tcp::UserTimeout;
        /// See [`ClientConfig::dead_path_check`].
        dead_path_check: Option<Duration>;
        /// See [`ClientConfig::tcp_nodelay`].
        tcp_nodelay: bool;
        /// See [`ClientConfig::user_agent`].
        user_agent: Option<HeaderValue>;
        /// See [`ClientConfig::trace_requests`].
        trace_requests: bool;
    }

    /// The TLS settings of this client's `https` requests (see
    /// [`ClientConfig::tls`]); a request can override them with
    /// [`RequestBuilder::tls`].
    ///
    /// ```
    /// use connpool::http::Client;
    /// use connpool::tls::TlsConfig;
    /// let tls = TlsConfig::builder().build()?;
    /// let client = Client::builder().tls(tls.clone()).build();
    /// assert_eq!(client.config().tls.as_ref(), Some(&tls));
    /// # Ok::<(), connpool::Error>(())
    /// ```
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Receives every pool [`Event`](crate::Event): connects, reuses,
    /// returns, evictions and closes, with the connection ids that
    /// [`RequestTrace`](super::RequestTrace)s name.
    pub fn observer(mut self, observer: impl Observer<HostKey>) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Builds the client.
    pub fn build(self) -> Client {
        let c = self.config;
        let manager = HttpManager::new(
            TcpConfig {
                connect_timeout: c.connect_timeout,
                nodelay: c.tcp_nodelay,
                keepalive: c.tcp_keepalive,
                user_timeout: c.tcp_user_timeout,
            },
            IdleTimeoutLearner::new(c.learn_idle_timeout, c.keep_alive_margin),
            c.max_lifetime.map(|max| (max, c.max_lifetime_jitter)),
        );
        let mut pool = Pool::builder(manager)
            .max_conns_per_key(c.max_conns_per_host.max(1))
            .max_idle_per_key(if c.keep_alive {
                c.pool_max_idle_per_host
            } else {
                0
            })
            .max_idle_total(c.pool_max_idle_total)
            .max_waiters_per_key(c.max_waiters_per_host)
            .wait_timeout(c.pool_wait_timeout)
            .idle_timeout(c.pool_idle_timeout)
            .max_lifetime(c.max_lifetime);
        if let Some(observer) = self.observer {
            pool = pool.observer(move |e: &crate::Event<'_, HostKey>| observer.on_event(e));
        }
        Client {
            inner: Arc::new(ClientInner {
                pool: pool.build(),
                config: c,
                watchdog: Watchdog::default(),
            }),
        }
    }
}

/// Something that can be turned into a request URL: `&str`, `String`,
/// `&String` or an [`http::Uri`].
pub trait IntoUrl {
    /// The parsed URL.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidUrl`] when it does not parse.
    fn into_uri(self) -> Result<Uri, Error>;
}

fn invalid_url(url: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidUrl, format!("{url:?}: {e}"))
}

impl IntoUrl for &str {
    fn into_uri(self) -> Result<Uri, Error> {
        self.parse().map_err(|e| invalid_url(self, e))
    }
}

impl IntoUrl for &String {
    fn into_uri(self) -> Result<Uri, Error> {
        self.as_str().into_uri()
    }
}

impl IntoUrl for String {
    fn into_uri(self) -> Result<Uri, Error> {
        self.as_str().into_uri()
    }
}

impl IntoUrl for Uri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(self)
    }
}

impl Client {
    /// A client with the default [`ClientConfig`].
    pub fn new() -> Client {
        Client::builder().build()
    }

    /// Starts building a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            config: ClientConfig::default(),
            observer: None,
        }
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The pool's counts per host and its counters.
    pub fn stats(&self) -> PoolStats<HostKey> {
        self.inner.pool.stats()
    }

    /// The idle timeout learned for the host of `url` from the closes the
    /// pool saw, if any (see [`ClientConfig::learn_idle_timeout`]).
    pub fn learned_idle_timeout(&self, url: impl IntoUrl) -> Option<Duration> {
        let key = HostKey::build(&url.into_uri().ok()?, self.inner.config.tls.as_ref()).ok()?;
        self.inner.pool.manager().learner.learned(&key)
    }

    /// Starts a request with any method.
    pub fn request_builder(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            parts: url.into_uri().map(|uri| Parts {
                method,
                uri,
                headers: HeaderMap::new(),
                body: Body::empty(),
                timeout: None,
                trace: false,
                tls: None,
            }),
        }
    }

    /// Starts a GET request.
    pub fn get(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request_builder(Method::GET, url)
    }

    /// Starts a HEAD request.
    pub fn head(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request_builder(Method::HEAD, url)
    }

    /// Starts a POST request.
    pub fn post(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request_builder(Method::POST, url)
    }

    /// Starts a PUT request.
    pub fn put(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request_builder(Method::PUT, url)
    }

    /// Starts a PATCH request.
    pub fn patch(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request_builder(Method::PATCH, url)
    }

    /// Starts a DELETE request.
    pub fn delete(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request_builder(Method::DELETE, url)
    }

    /// Sends an [`http::Request`]. Its URI must be absolute (`http://…` or
    /// `https://…`, with the client's TLS settings).
    ///
    /// # Errors
    /// See [`RequestBuilder::send`].
    pub async fn request<B: Into<Body>>(
        &self,
        request: http::Request<B>,
    ) -> Result<Response, Error> {
        let (parts, body) = request.into_parts();
        self.send(Parts {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body: body.into(),
            timeout: None,
            trace: false,
            tls: None,
        })
        .await
    }

    async fn send(&self, parts: Parts) -> Result<Response, Error> {
        let timeout = parts.timeout.or(self.inner.config.timeout);
        let trace = parts.trace || self.inner.config.trace_requests;
        // A clock read costs tens of ns; only pay it when something uses it.
        let started = (trace || timeout.is_some()).then(Instant::now);
        let mut req = self.prepare(parts)?;
        let tracer = match started {
            Some(started) if trace => Tracer::new(true, started),
            _ => Tracer::default(),
        };
        let mut progress = Progress::default();
        let (Some(timeout), Some(started)) = (timeout, started) else {
            return self.run(&mut req, &tracer, &mut progress, None).await;
        };
        let deadline = tokio::time::Instant::from_std(started) + timeout;
        // Boxed so that requests without a timeout (the default) do not
        // carry, and move, a second copy of `run`'s future and a timer.
        let run = Box::pin(self.run(&mut req, &tracer, &mut progress, Some(deadline)));
        match tokio::time::timeout_at(deadline, run).await {
            Ok(result) => result,
            Err(_elapsed) => Err(Error::new(
                ErrorKind::RequestTimeout,
                format!("the request took longer than {timeout:?}"),
            )
            .with_key(&req.key)
            .with_fate(progress.fate())),
        }
    }

    /// Validates and encodes the request once, before any connection is
    /// involved: a request that cannot be written fails with nothing sent.
    fn prepare(&self, parts: Parts) -> Result<Prepared, Error> {
        let config = &self.inner.config;
        let tls = parts.tls.as_ref().or(config.tls.as_ref());
        let key = HostKey::build(&parts.uri, tls)?;
        let mut headers = parts.headers;
        if let Some(ua) = &self.inner.config.user_agent {
            if !headers.contains_key(header::USER_AGENT) {
                headers.insert(header::USER_AGENT, ua.clone());
            }
        }
        let close = !config.keep_alive || wire::has_token(&headers, &header::CONNECTION, "close");
        let framing = match parts.body.len() {
            Some(0) => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::Chunked,
        };
        let mut wire_buf = Vec::with_capacity(256);
        wire::encode_head(
            &mut wire_buf,
            &parts.method,
            target_of(&parts.uri),
            key.authority(),
            &headers,
            framing,
            close,
        )?;
        let head_len = wire_buf.len();
        let body = match parts.body.kind {
            BodyKind::Full(bytes) if bytes.len() <= COALESCE_BODY => {
                wire_buf.extend_from_slice(&bytes);
                Body::empty()
            }
            kind => Body { kind },
        };
        Ok(Prepared {
            method: parts.method,
            key,
            uri: parts.uri,
            headers,
            framing,
            wire: wire_buf,
            head_len,
            body,
            close,
        })
    }

    async fn run(
        &self,
        req: &mut Prepared,
        tracer: &Tracer,
        progress: &mut Progress,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Response, Error> {
        let inner = &self.inner;
        tracer.record(TraceStep::GetConn);
        let mut conn = inner
            .pool
            .get(&req.key)
            .await
            .map_err(|e| e.with_fate(progress.fate()))?;
        loop {
            progress.begin_attempt(conn.is_reused());
            record_got_conn(tracer, &conn);
            let attempt = self.attempt(&mut conn, req, tracer, progress).await;
            let err = match attempt {
                Ok((head, sent_close)) => {
                    tracer.record(TraceStep::GotHeaders {
                        status: head.status.as_u16(),
                    });
                    return Ok(start_body(
                        self.inner.clone(),
                        conn,
                        head,
                        sent_close,
                        tracer.clone(),
                        deadline,
                        progress.attempts,
                    ));
                }
                Err(err) => err,
            };
            if err.kind() == ErrorKind::TlsHandshake
                && progress.attempts == 1
                && !conn.is_reused()
                && !progress.response_started
            {
                // The server refused the handshake (its verdict on the
                // client's certificate arrives after the client's side of
                // a TLS 1.3 handshake, at the first read): it reads no
                // application data before that verdict, so the request
                // was not processed. See `tls::is_handshake_alert`.
                progress.ever_written = false;
            }
            if matches!(
                err.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ) && progress.written > 0
            {
                let c: &HttpConn = &conn;
                progress.delivery = Some(path::delivery(c.stream.tcp(), progress.written_for()));
            }
            if self.should_retry(req, &err, progress) {
                let elapsed = conn.idle_for() + conn.held_for();
                let c: &HttpConn = &conn;
                if err.kind() == ErrorKind::UnexpectedEof {
                    inner
                        .pool
                        .manager()
                        .learner
                        .observe_fin(&req.key, c.stream.tcp(), elapsed);
                }
                tracer.record(TraceStep::Retry { error: err.kind() });
                let reason = match err.kind() {
                    ErrorKind::UnexpectedEof => EvictReason::ServerClosed,
                    ErrorKind::DeadPath => EvictReason::DeadPath,
                    _ => EvictReason::ServerReset,
                };
                conn = inner
                    .pool
                    .reconnect(conn, reason)
                    .await
                    .map_err(|e| e.with_fate(progress.fate()))?;
                continue;
            }
            conn.discard();
            return Err(err.with_key(&req.key).with_fate(progress.fate()));
        }
    }

    /// The retry rule; see the module docs and [`ReplayPolicy`].
    fn should_retry(&self, req: &Prepared, err: &Error, progress: &Progress) -> bool {
        let policy = &self.inner.config.replay;
        // The policy is consulted only here, on the failure path.
        let inputs = RetryInputs {
            enabled: policy.retry,
            replayable: policy.is_replayable(&req.method, &req.headers),
            body_replayable: req.body.is_replayable(),
            resend_unacknowledged: policy.resend_unacknowledged,
        };
        may_retry(inputs, err, progress)
    }

    /// One attempt on one connection: write the request, read the head.
    /// Returns the head and whether the request said `Connection: close`.
    async fn attempt(
        &self,
        conn: &mut Conn,
        req: &mut Prepared,
        tracer: &Tracer,
        progress: &mut Progress,
    ) -> Result<(ResponseHead, bool), Error> {
        let config = &self.inner.config;
        let c: &mut HttpConn = conn;
        // The last request a connection may carry says so.
        let last = config
            .max_requests_per_conn
            .is_some_and(|max| c.responses.saturating_add(1) >= max);
        let sent_close = req.close || last;
        let wire: Cow<'_, [u8]> = if last && !req.close {
            Cow::Owned(req.encode_with_close()?)
        } else {
            Cow::Borrowed(&req.wire)
        };
        progress.write_started = crate::sys::coarse_monotonic_nanos();
        write_counted(&mut c.stream, &wire, progress).await?;
        self.write_body(c, req, progress).await?;
        if c.stream.is_tls() {
            // rustls may hold the last record until flushed.
            flush_counted(&mut c.stream, progress).await?;
        }
        tracer.record(TraceStep::WroteRequest {
            bytes: progress.written,
        });
        let limits = config.head_limits();
        let timeout = config.response_header_timeout;
        let mut watch = self.inner.watchdog.watch(timeout, config.dead_path_check);
        let head = read_head(c, &req.method, &limits, tracer, progress, &mut watch).await?;
        Ok((head, sent_close))
    }

    async fn write_body(
        &self,
        c: &mut HttpConn,
        req: &mut Prepared,
        progress: &mut Progress,
    ) -> Result<(), Error> {
        match &mut req.body.kind {
            BodyKind::Empty => Ok(()),
            BodyKind::Full(bytes) => write_counted(&mut c.stream, bytes, progress).await,
            BodyKind::Stream(stream) => {
                let chunked = req.framing == BodyFraming::Chunked;
                let mut sent: u64 = 0;
                let mut frame_buf = Vec::new();
                loop {
                    progress.body_started = true;
                    let frame = std::future::poll_fn(|cx| stream.as_mut().poll_frame(cx)).await;
                    let data = match frame {
                        None => break,
                        Some(Err(e)) => {
                            return Err(Error::new(
                                ErrorKind::RequestBody,
                                "the request body failed while it was being sent",
                            )
                            .with_source(BoxedError(e)));
                        }
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => data,
                            // Trailers are not sent (HTTP/1.1 request
                            // trailers are rarely read by servers).
                            Err(_trailers) => continue,
                        },
                    };
                    sent += data.len() as u64;
                    if let BodyFraming::Length(declared) = req.framing {
                        if sent > declared {
                            return Err(Error::new(
                                ErrorKind::RequestBody,
                                format!("the body yielded more than its declared {declared} bytes"),
                            ));
                        }
                    }
                    if chunked {
                        frame_buf.clear();
                        wire::encode_chunk(&mut frame_buf, &data);
                        write_counted(&mut c.stream, &frame_buf, progress).await?;
                    } else {
                        write_counted(&mut c.stream, &data, progress).await?;
                    }
                }
                if chunked {
                    write_counted(&mut c.stream, wire::LAST_CHUNK, progress).await?;
                } else if let BodyFraming::Length(declared) = req.framing {
                    if sent != declared {
                        return Err(Error::new(
                            ErrorKind::RequestBody,
                            format!("the body ended after {sent} of its declared {declared} bytes"),
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

/// Whether a failed attempt may be made again on a new connection, once:
///
/// * the stale-connection race (a reused connection, no response byte,
///   EOF/reset/broken pipe), or a dead path (nothing acknowledged, the
///   retransmissions unanswered: the request never reached the server);
/// * and the request is replayable, or provably unsent (no byte written),
///   or unacknowledged when the policy resends those;
/// * and its body can be sent again.
fn may_retry(policy: RetryInputs, err: &Error, progress: &Progress) -> bool {
    let unacknowledged = progress
        .delivery
        .is_some_and(|d| d.acknowledged == Acknowledged::No);
    let race = progress.reused && err.is_stale();
    let dead_path = err.kind() == ErrorKind::DeadPath && unacknowledged;
    policy.enabled
        && progress.attempts == 1
        && !progress.response_started
        && (race || dead_path)
        && (policy.body_replayable || !progress.body_started)
        && (policy.replayable
            || progress.written == 0
            || (policy.resend_unacknowledged && unacknowledged))
}

/// What [`may_retry`] needs of the policy and the request.
#[derive(Clone, Copy, Debug)]
struct RetryInputs {
    enabled: bool,
    replayable: bool,
    body_replayable: bool,
    resend_unacknowledged: bool,
}

/// A request's own error type inside an [`Error`]'s source chain.
#[derive(Debug)]
struct BoxedError(super::body::BoxError);

impl std::fmt::Display for BoxedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BoxedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

fn record_got_conn(tracer: &Tracer, conn: &Conn) {
    if !tracer.is_on() {
        return;
    }
    if !conn.is_reused() {
        let c: &HttpConn = conn;
        let started = tracer.started().map_or(Duration::ZERO, |s| {
            c.connect_started.saturating_duration_since(s)
        });
        tracer.record(TraceStep::Connected {
            started,
            took: c.connect_took,
        });
    }
    tracer.record(TraceStep::GotConn {
        conn: conn.id(),
        reused: conn.is_reused(),
        idle_for: conn.idle_for(),
    });
}

/// Writes all of `bytes`, counting what the kernel accepted in `progress`
/// (the retry rule needs "nothing was written" as a count, not a guess).
///
/// Under TLS a write counts the plaintext rustls took, which may still be
/// in its buffer (counted as written: the safe side); and a write that
/// fails may have put some ciphertext on the wire first, which the
/// socket's own count ([`Stream::wire_written`]) reveals.
async fn write_counted(
    stream: &mut Stream,
    mut bytes: &[u8],
    progress: &mut Progress,
) -> Result<(), Error> {
    let wire_before = stream.wire_written();
    while !bytes.is_empty() {
        match stream.write(bytes).await {
            Ok(0) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    "the connection accepted no more bytes",
                ));
            }
            Ok(n) => {
                progress.written += n as u64;
                progress.ever_written = true;
                bytes = &bytes[n..];
            }
            Err(e) => {
                count_wire(stream, wire_before, progress);
                return Err(Error::from_io(e));
            }
        }
    }
    Ok(())
}

/// Flushes what rustls holds (TLS only), counted as [`write_counted`].
async fn flush_counted(stream: &mut Stream, progress: &mut Progress) -> Result<(), Error> {
    let wire_before = stream.wire_written();
    stream.flush().await.map_err(|e| {
        count_wire(stream, wire_before, progress);
        Error::from_io(e)
    })
}

/// Counts the bytes the socket took since `before` as written, if any.
fn count_wire(stream: &Stream, before: u64, progress: &mut Progress) {
    let sent = stream.wire_written().saturating_sub(before);
    if sent > 0 {
        progress.written += sent;
        progress.ever_written = true;
    }
}

/// Reads until a final response head is parsed; 1xx heads are skipped.
async fn read_head(
    c: &mut HttpConn,
    method: &Method,
    limits: &HeadLimits,
    tracer: &Tracer,
    progress: &mut Progress,
    watch: &mut Watch<'_>,
) -> Result<ResponseHead, Error> {
    let mut end = wire::SectionEnd::default();
    // The first look parses at once: a head nearly always arrives whole,
    // and scanning for its end first would only repeat the parser's work.
    // After a partial parse, the scan guards against a trickled head
    // costing quadratic work.
    let mut parsed_partial = false;
    loop {
        // At the size limit the parser is asked anyway: it reports the error.
        let full = c.read_buf.len() >= limits.max_head_bytes;
        let look = !c.read_buf.is_empty() && (!parsed_partial || end.may_be_in(&c.read_buf));
        if full || look {
            match wire::parse_head(&c.read_buf, method, limits)? {
                None => {
                    parsed_partial = true;
                    end.incomplete(c.read_buf.len());
                }
                Some((head, len)) => {
                    c.read_buf.advance(len);
                    end = wire::SectionEnd::default();
                    parsed_partial = false;
                    if !head.status.is_informational() {
                        return Ok(head);
                    }
                    if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
                        return Err(Error::new(
                            ErrorKind::MalformedResponse,
                            "101 Switching Protocols, but no upgrade was asked for",
                        ));
                    }
                    tracer.record(TraceStep::Interim {
                        status: head.status.as_u16(),
                    });
                    continue;
                }
            }
        }
        let n = poll_fn(|cx| {
            if let Poll::Ready(read) = poll_fill(c, cx, false) {
                return Poll::Ready(read.map_err(Error::from_io));
            }
            match watch.pending(cx.waker()) {
                None => Poll::Pending,
                Some(Alarm::Deadline) => Poll::Ready(Err(Error::new(
                    ErrorKind::ResponseHeaderTimeout,
                    format!(
                        "no response head within {:?} of writing the request",
                        watch.limit().unwrap_or_default()
                    ),
                ))),
                Some(Alarm::Check) => match path::check(c.stream.tcp(), progress.written_for()) {
                    Verdict::Dead(delivery) => {
                        progress.delivery = Some(delivery);
                        Poll::Ready(Err(Error::new(
                            ErrorKind::DeadPath,
                            "no reply and no acknowledgement of the request: \
                             the path to the server is dead",
                        )))
                    }
                    Verdict::Delivered => {
                        watch.check_again(None);
                        Poll::Pending
                    }
                    Verdict::Undecided(after) => {
                        watch.check_again(Some(after));
                        Poll::Pending
                    }
                },
            }
        })
        .await?;
        if n == 0 {
            return Err(if progress.response_started {
                Error::new(
                    ErrorKind::IncompleteResponse,
                    "the connection closed in the middle of the response head",
                )
            } else {
                Error::new(
                    ErrorKind::UnexpectedEof,
                    "the connection closed before any response byte",
                )
            });
        }
        if !progress.response_started {
            progress.response_started = true;
            tracer.record(TraceStep::FirstResponseByte);
        }
    }
}

/// What the caller gave, before validation.
pub(crate) struct Parts {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    timeout: Option<Duration>,
    trace: bool,
    /// The TLS settings of this request, instead of the client's.
    tls: Option<crate::tls::TlsConfig>,
}

/// A validated request, encoded once and ready to be written (twice, if
/// it must be retried).
struct Prepared {
    method: Method,
    key: HostKey,
    uri: Uri,
    headers: HeaderMap,
    framing: BodyFraming,
    /// The head, and the body too when it is small and in memory.
    wire: Vec<u8>,
    /// Where the head ends in `wire`.
    head_len: usize,
    /// The body when it is not in `wire`.
    body: Body,
    /// The request says `Connection: close` (the caller's header, or keep-
    /// alive is off).
    close: bool,
}

impl Prepared {
    /// The same request with `Connection: close` (the connection's last).
    fn encode_with_close(&self) -> Result<Vec<u8>, Error> {
        let mut head = Vec::with_capacity(self.wire.len() + 24);
        wire::encode_head(
            &mut head,
            &self.method,
            target_of(&self.uri),
            self.key.authority(),
            &self.headers,
            self.framing,
            true,
        )?;
        // The part of `wire` after the old head is the coalesced body.
        head.extend_from_slice(&self.wire[self.head_len..]);
        Ok(head)
    }
}

/// The request target in origin form: the path and query, `/` if empty.
fn target_of(uri: &Uri) -> &str {
    match uri.path_and_query().map(|pq| pq.as_str()) {
        None | Some("") => "/",
        Some(target) => target,
    }
}

/// What one request has done so far, kept outside the attempt so that a
/// timeout that cancels the attempt can still tell what was sent.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    attempts: u32,
    reused: bool,
    /// Bytes written on this attempt.
    written: u64,
    /// Bytes written on any attempt.
    ever_written: bool,
    /// A streamed body was polled: it cannot be sent again.
    body_started: bool,
    response_started: bool,
    /// When this attempt began to write, on the coarse clock (ns).
    write_started: u64,
    /// What the kernel saw of this attempt's bytes, when it was asked.
    delivery: Option<Delivery>,
}

impl Progress {
    fn begin_attempt(&mut self, reused: bool) {
        self.attempts += 1;
        self.reused = reused;
        self.written = 0;
        self.response_started = false;
        self.delivery = None;
    }

    /// How long ago this attempt began to write.
    fn written_for(&self) -> Duration {
        let now = crate::sys::coarse_monotonic_nanos();
        Duration::from_nanos(now.saturating_sub(self.write_started))
    }

    fn fate(&self) -> RequestFate {
        RequestFate {
            may_have_been_processed: self.ever_written,
            connection_reused: self.reused,
            attempts: self.attempts,
            delivery: self.delivery,
        }
    }
}

/// A request being built; [`send`](RequestBuilder::send) it.
///
/// Errors in the parts (a header that does not parse, a URL) are kept and
/// returned by `send`, so building reads as one chain.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), connpool::Error> {
/// let client = connpool::http::Client::new();
/// let resp = client
///     .post("http://127.0.0.1:8080/orders")
///     .header("idempotency-key", "order-17")
///     .body("{\"item\": 3}")
///     .send()
///     .await?;
/// assert!(resp.status().is_success());
/// # Ok(()) }
/// ```
pub struct RequestBuilder {
    client: Client,
    parts: Result<Parts, Error>,
}

impl RequestBuilder {
    fn with(mut self, f: impl FnOnce(&mut Parts) -> Result<(), Error>) -> Self {
        if let Ok(parts) = &mut self.parts {
            if let Err(e) = f(parts) {
                self.parts = Err(e);
            }
        }
        self
    }

    /// Adds a header (keeping earlier values of the same name).
    pub fn header<K, V>(self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: std::fmt::Display,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: std::fmt::Display,
    {
        self.with(|parts| {
            let name = HeaderName::try_from(name).map_err(|e| {
                Error::new(ErrorKind::InvalidRequest, format!("bad header name: {e}"))
            })?;
            let value = HeaderValue::try_from(value).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidRequest,
                    format!("bad value for header {name}: {e}"),
                )
            })?;
            parts.headers.append(name, value);
            Ok(())
        })
    }

    /// Adds all these headers.
    pub fn headers(self, headers: HeaderMap) -> Self {
        self.with(|parts| {
            for (name, value) in &headers {
                parts.headers.append(name.clone(), value.clone());
            }
            Ok(())
        })
    }

    /// Sets the body.
    pub fn body(self, body: impl Into<Body>) -> Self {
        self.with(|parts| {
            parts.body = body.into();
            Ok(())
        })
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Self {
        self.with(|parts| {
            let bytes = serde_json::to_vec(value).map_err(|e| {
                Error::new(ErrorKind::InvalidRequest, "the JSON body did not serialize")
                    .with_source(e)
            })?;
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            parts.body = Body::from(bytes);
            Ok(())
        })
    }

    /// A timeout for this whole request, instead of the client's.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with(|parts| {
            parts.timeout = Some(timeout);
            Ok(())
        })
    }

    /// TLS settings for this request (when its URL is `https`), instead of
    /// the client's. Its connections are pooled apart from those made
    /// with other settings ([`HostKey`]).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), connpool::Error> {
    /// use connpool::tls::TlsConfig;
    /// # let (chain, key) = (vec![], connpool::tls::rustls::pki_types::PrivateKeyDer::Pkcs8(vec![].into()));
    /// let with_cert = TlsConfig::builder().client_cert(chain, key).build()?;
    /// let client = connpool::http::Client::new();
    /// let resp = client
    ///     .get("https://mtls.example/")
    ///     .tls(with_cert)
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tls(self, tls: crate::tls::TlsConfig) -> Self {
        self.with(|parts| {
            parts.tls = Some(tls);
            Ok(())
        })
    }

    /// Records a [`RequestTrace`](super::RequestTrace) for this request.
    pub fn trace(self, on: bool) -> Self {
        self.with(|parts| {
            parts.trace = on;
            Ok(())
        })
    }

    /// Sends the request and reads the response head. The body is read
    /// from the [`Response`].
    ///
    /// # Errors
    /// Every failure has an [`ErrorKind`] and answers
    /// [`Error::may_have_been_processed`]: the URL or the request is
    /// invalid; the pool refused or timed out ([`Error::is_pool_limit`]);
    /// connecting failed ([`Error::is_connect`]); the connection broke
    /// ([`Error::is_stale`] — only when the request could not be retried,
    /// or the retry broke too); a timeout of a phase; a malformed, oversize
    /// or incomplete response head.
    pub async fn send(self) -> Result<Response, Error> {
        let parts = self.parts?;
        self.client.send(parts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reused_first_attempt() -> Progress {
        Progress {
            attempts: 1,
            reused: true,
            ..Progress::default()
        }
    }

    fn inputs(enabled: bool, replayable: bool, body_replayable: bool) -> RetryInputs {
        RetryInputs {
            enabled,
            replayable,
            body_replayable,
            resend_unacknowledged: false,
        }
    }

    fn eof() -> Error {
        Error::new(ErrorKind::UnexpectedEof, "closed")
    }

    #[test]
    fn a_post_is_retried_only_when_provably_nothing_was_written() {
        let mut progress = reused_first_attempt();
        assert!(may_retry(inputs(true, false, true), &eof(), &progress));
        progress.written = 1;
        progress.ever_written = true;
        assert!(!may_retry(inputs(true, false, true), &eof(), &progress));
        assert!(
            may_retry(inputs(true, true, true), &eof(), &progress),
            "a GET is"
        );
    }

    #[test]
    fn only_the_stale_race_on_a_reused_connection_is_retried() {
        let progress = reused_first_attempt();
        let timeout = Error::new(ErrorKind::ResponseHeaderTimeout, "slow");
        assert!(!may_retry(inputs(true, true, true), &timeout, &progress));
        let fresh = Progress {
            reused: false,
            ..reused_first_attempt()
        };
        assert!(!may_retry(inputs(true, true, true), &eof(), &fresh));
        let second = Progress {
            attempts: 2,
            ..reused_first_attempt()
        };
        assert!(!may_retry(inputs(true, true, true), &eof(), &second));
        let answered = Progress {
            response_started: true,
            ..reused_first_attempt()
        };
        assert!(!may_retry(inputs(true, true, true), &eof(), &answered));
        assert!(
            !may_retry(inputs(false, true, true), &eof(), &progress),
            "policy off"
        );
    }

    fn dead_path() -> Error {
        Error::new(ErrorKind::DeadPath, "no reply")
    }

    fn delivery(acknowledged: Acknowledged) -> Option<Delivery> {
        Some(Delivery {
            acknowledged,
            retransmits: 2,
        })
    }

    #[test]
    fn a_dead_path_is_retried_when_nothing_was_acknowledged() {
        let fresh_written = Progress {
            attempts: 1,
            written: 100,
            ever_written: true,
            delivery: delivery(Acknowledged::No),
            ..Progress::default()
        };
        // Any connection, new or reused: the request never arrived.
        assert!(may_retry(
            inputs(true, true, true),
            &dead_path(),
            &fresh_written
        ));
        // A POST only with the opt-in.
        assert!(!may_retry(
            inputs(true, false, true),
            &dead_path(),
            &fresh_written
        ));
        let resend = RetryInputs {
            resend_unacknowledged: true,
            ..inputs(true, false, true)
        };
        assert!(may_retry(resend, &dead_path(), &fresh_written));
        // Acknowledged or unknown: never.
        for ack in [Acknowledged::Yes, Acknowledged::Unknown] {
            let p = Progress {
                delivery: delivery(ack),
                ..fresh_written
            };
            assert!(
                !may_retry(inputs(true, true, true), &dead_path(), &p),
                "{ack:?}"
            );
            assert!(!may_retry(resend, &dead_path(), &p), "{ack:?}");
        }
        // Once.
        let second = Progress {
            attempts: 2,
            ..fresh_written
        };
        assert!(!may_retry(resend, &dead_path(), &second));
    }

    #[test]
    fn an_unacknowledged_reset_resends_a_post_only_with_the_opt_in() {
        let reset = Error::new(ErrorKind::ConnectionReset, "reset");
        let p = Progress {
            written: 100,
            ever_written: true,
            delivery: delivery(Acknowledged::No),
            ..reused_first_attempt()
        };
        assert!(!may_retry(inputs(true, false, true), &reset, &p));
        let resend = RetryInputs {
            resend_unacknowledged: true,
            ..inputs(true, false, true)
        };
        assert!(may_retry(resend, &reset, &p));
        let acked = Progress {
            delivery: delivery(Acknowledged::Yes),
            ..p
        };
        assert!(!may_retry(resend, &reset, &acked));
    }

    #[test]
    fn a_streamed_body_is_replayed_only_if_untouched() {
        let mut progress = reused_first_attempt();
        assert!(may_retry(inputs(true, true, false), &eof(), &progress));
        progress.body_started = true;
        assert!(!may_retry(inputs(true, true, false), &eof(), &progress));
    }

    #[test]
    fn the_error_says_what_happened_to_the_request() {
        let progress = Progress {
            ever_written: true,
            ..reused_first_attempt()
        };
        let err = eof().with_fate(progress.fate());
        assert!(err.may_have_been_processed());
        assert!(
            err.to_string()
                .contains("attempt 1 on a reused connection; the request may have been processed"),
            "{err}"
        );
    }
}
