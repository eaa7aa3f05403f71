//! One error type for the whole crate, with a [`ErrorKind`] that says what
//! went wrong and helpers that answer the questions a caller actually has:
//! "was this the stale-connection race?" ([`Error::is_stale`]), "did I hit a
//! pool bound?" ([`Error::is_pool_limit`]), "for which key?" ([`Error::key`]).
//!
//! Errors are boxed so that `Result<T, Error>` stays one word wide on the hot
//! path; building one is the cold path.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::pool::KeyStats;

/// What went wrong.
///
/// The kinds are stable words for dashboards and retry decisions; the
/// message of [`Error`] carries the detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A write found the peer gone (`EPIPE`): the connection was closed by
    /// the server, typically while it sat idle in a pool.
    BrokenPipe,
    /// The peer reset the connection (`ECONNRESET`, `ECONNABORTED`).
    ConnectionReset,
    /// The peer closed the connection (EOF) before a complete message.
    UnexpectedEof,
    /// Nobody listens at the address (`ECONNREFUSED`).
    ConnectRefused,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// Connecting failed for another reason (unreachable network, …).
    Connect,
    /// The key's host name did not resolve to any address.
    Resolve,
    /// A caller waited for a free connection longer than the pool's
    /// `wait_timeout`.
    PoolWaitTimeout,
    /// The key already had `max_waiters_per_key` callers waiting, so this
    /// caller was refused at once rather than queued.
    TooManyWaiters,
    /// No response header arrived within the response-header timeout
    /// (counted from the moment the request was written).
    ResponseHeaderTimeout,
    /// The whole request (checkout, connect, write, response head and
    /// body) took longer than the request timeout.
    RequestTimeout,
    /// The response broke HTTP/1.1 framing: a garbage status line, a bad
    /// header, a bad chunk, duplicate or conflicting `Content-Length`.
    MalformedResponse,
    /// The response head was larger than the header size limit.
    HeadersTooLarge,
    /// The response had more header fields than the header count limit.
    TooManyHeaders,
    /// The connection ended after the response began but before it was
    /// complete: in the head, or before the body's declared end.
    IncompleteResponse,
    /// The URL cannot be requested: not `http` or `https`, no host, a bad
    /// port, a host that is not a valid TLS server name.
    InvalidUrl,
    /// The request cannot be written: a header or target that would break
    /// framing (CR, LF, NUL), or a body whose length contradicts its header.
    InvalidRequest,
    /// The request body's own stream failed while it was being sent.
    RequestBody,
    /// The response body could not be decoded (not UTF-8, not JSON).
    Decode,
    /// The request got no reply on a path that is dead: nothing was
    /// acknowledged since it was written and the kernel's retransmissions
    /// went unanswered (a middlebox that forgot the flow and drops its
    /// packets, a peer that vanished). See [`Error::delivery`].
    DeadPath,
    /// TLS: the server's certificate was refused (unknown issuer, expired,
    /// not valid for the host name, …). A connect error: nothing was sent.
    TlsCertificate,
    /// TLS: the handshake failed for another reason: an alert from the
    /// server (a client certificate it requires and did not get, or
    /// refused), no protocol version or cipher suite in common, a server
    /// that does not speak TLS. A connect error: nothing was sent.
    TlsHandshake,
    /// TLS: an error after the handshake: a bad record, a decryption
    /// failure, an unexpected message.
    TlsProtocol,
    /// TLS: the settings could not be built (no root to trust, a client
    /// certificate or key rustls refuses).
    TlsConfig,
    /// Any other I/O error.
    Io,
}

impl ErrorKind {
    /// A short lowercase name, stable for logs and metrics
    /// (`"broken_pipe"`, `"pool_wait_timeout"`, …).
    ///
    /// ```
    /// assert_eq!(connpool::ErrorKind::BrokenPipe.as_str(), "broken_pipe");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BrokenPipe => "broken_pipe",
            ErrorKind::ConnectionReset => "connection_reset",
            ErrorKind::UnexpectedEof => "unexpected_eof",
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Resolve => "resolve",
            ErrorKind::PoolWaitTimeout => "pool_wait_timeout",
            ErrorKind::TooManyWaiters => "too_many_waiters",
            ErrorKind::ResponseHeaderTimeout => "response_header_timeout",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::MalformedResponse => "malformed_response",
            ErrorKind::HeadersTooLarge => "headers_too_large",
            ErrorKind::TooManyHeaders => "too_many_headers",
            ErrorKind::IncompleteResponse => "incomplete_response",
            ErrorKind::InvalidUrl => "invalid_url",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::RequestBody => "request_body",
            ErrorKind::Decode => "decode",
            ErrorKind::DeadPath => "dead_path",
            ErrorKind::TlsCertificate => "tls_certificate",
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::TlsProtocol => "tls_protocol",
            ErrorKind::TlsConfig => "tls_config",
            ErrorKind::Io => "io",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible connpool operation.
///
/// ```
/// use connpool::{Error, ErrorKind};
/// use std::io;
///
/// let err = Error::from_io(io::Error::from(io::ErrorKind::BrokenPipe));
/// assert_eq!(err.kind(), ErrorKind::BrokenPipe);
/// assert!(err.is_stale());
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    /// `Debug` of the pool key, so the error names where it happened
    /// without making `Error` generic.
    key: Option<String>,
    /// For pool-bound errors: the key's state when the bound was hit.
    state: Option<LimitState>,
    message: Option<String>,
    source: Option<Box<dyn StdError + Send + Sync>>,
    /// For errors of an HTTP request: what happened to the request.
    fate: Option<RequestFate>,
}

/// What an HTTP client knows about a failed request's delivery, recorded
/// as the error is built so the caller can decide what to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestFate {
    /// Some request byte was written, and no evidence says the server
    /// never read it.
    pub(crate) may_have_been_processed: bool,
    /// The failing attempt ran on a connection that had served before.
    pub(crate) connection_reused: bool,
    /// How many attempts were made, the failing one included.
    pub(crate) attempts: u32,
    /// What the kernel saw of the failing attempt's bytes, when asked.
    pub(crate) delivery: Option<Delivery>,
}

/// What the kernel's TCP saw of a failed request's bytes (`TCP_INFO`,
/// read when the request failed on a reset, a broken pipe or a dead path).
///
/// `acknowledged: No` means no byte of the request drew an ACK from the
/// peer's TCP, so the server's application cannot have read it: the
/// evidence a client needs to send a non-replayable request again (see
/// [`ReplayPolicy::resend_unacknowledged`](crate::http::ReplayPolicy::resend_unacknowledged)
/// for where that evidence can mislead).
///
/// ```
/// use connpool::{Acknowledged, Delivery};
/// let d = Delivery { acknowledged: Acknowledged::No, retransmits: 2 };
/// assert_eq!(d.to_string(), "acknowledged by the peer: no, 2 retransmissions");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Whether the peer's TCP acknowledged any byte of the request.
    pub acknowledged: Acknowledged,
    /// Retransmission timeouts of the request's oldest unacknowledged
    /// segment, without a reply.
    pub retransmits: u32,
}

/// Whether a request's bytes were acknowledged; see [`Delivery`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acknowledged {
    /// An ACK arrived after the request was written.
    Yes,
    /// No ACK arrived since the request was written.
    No,
    /// The kernel's record cannot tell (the last ACK arrived within its
    /// clock's resolution of the write, or `TCP_INFO` is unavailable).
    Unknown,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let acknowledged = match self.acknowledged {
            Acknowledged::Yes => "yes",
            Acknowledged::No => "no",
            Acknowledged::Unknown => "unknown",
        };
        write!(
            f,
            "acknowledged by the peer: {acknowledged}, {} retransmission{}",
            self.retransmits,
            if self.retransmits == 1 { "" } else { "s" }
        )
    }
}

/// The bound that was hit and the key's state at that moment.
#[derive(Clone, Copy, Debug)]
struct LimitState {
    bound: &'static str,
    limit: usize,
    waited: Option<Duration>,
    stats: KeyStats,
}

impl Error {
    /// A new error of `kind` with a message.
    ///
    /// ```
    /// let err = connpool::Error::new(connpool::ErrorKind::Connect, "no route");
    /// assert_eq!(err.to_string(), "connect: no route");
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::bare(kind).with_message(message)
    }

    fn bare(kind: ErrorKind) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                key: None,
                state: None,
                message: None,
                source: None,
                fate: None,
            }),
        }
    }

    /// Classifies an I/O error from an established connection: `EPIPE`
    /// becomes [`ErrorKind::BrokenPipe`], `ECONNRESET`/`ECONNABORTED`
    /// [`ErrorKind::ConnectionReset`], EOF [`ErrorKind::UnexpectedEof`]
    /// (under TLS too: a server's `close_notify` or a FIN without one), a
    /// TLS error after the handshake [`ErrorKind::TlsProtocol`] (or
    /// [`ErrorKind::TlsHandshake`] for a server's late refusal of the
    /// client's certificate).
    ///
    /// ```
    /// use std::io;
    /// let err = connpool::Error::from_io(io::Error::from(io::ErrorKind::ConnectionReset));
    /// assert_eq!(err.kind(), connpool::ErrorKind::ConnectionReset);
    /// ```
    pub fn from_io(err: io::Error) -> Error {
        if let Some(tls) = crate::tls::rustls_error(&err) {
            return Error::bare(crate::tls::classify(tls, false)).with_source(err);
        }
        let kind = match err.kind() {
            io::ErrorKind::BrokenPipe => ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                ErrorKind::ConnectionReset
            }
            io::ErrorKind::UnexpectedEof => ErrorKind::UnexpectedEof,
            _ => ErrorKind::Io,
        };
        Error::bare(kind).with_source(err)
    }

    /// Classifies an I/O error from `connect(2)`: refused, timed out, or
    /// another connect failure.
    ///
    /// ```
    /// use std::io;
    /// let err = connpool::Error::from_connect_io(io::Error::from(io::ErrorKind::ConnectionRefused));
    /// assert_eq!(err.kind(), connpool::ErrorKind::ConnectRefused);
    /// assert!(err.is_connect());
    /// ```
    pub fn from_connect_io(err: io::Error) -> Error {
        let kind = match err.kind() {
            io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
            io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
            _ => ErrorKind::Connect,
        };
        Error::bare(kind).with_source(err)
    }

    /// Classifies an I/O error of a TLS handshake: a refused certificate
    /// is [`ErrorKind::TlsCertificate`], anything else
    /// [`ErrorKind::TlsHandshake`] (a connect error either way).
    pub(crate) fn from_tls_handshake_io(err: io::Error) -> Error {
        let kind = match crate::tls::rustls_error(&err) {
            Some(tls) => crate::tls::classify(tls, true),
            None => ErrorKind::TlsHandshake,
        };
        Error::bare(kind)
            .with_message("the TLS handshake failed")
            .with_source(err)
    }

    pub(crate) fn limit(
        kind: ErrorKind,
        bound: &'static str,
        limit: usize,
        waited: Option<Duration>,
        stats: KeyStats,
    ) -> Error {
        let mut err = Error::bare(kind);
        err.inner.state = Some(LimitState {
            bound,
            limit,
            waited,
            stats,
        });
        err
    }

    /// Adds a human-readable detail to the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Error {
        self.inner.message = Some(message.into());
        self
    }

    /// Records the underlying cause, returned by [`std::error::Error::source`].
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Error {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// Records the pool key the error happened for (its `Debug` form).
    /// The pool does this for every error it returns.
    pub fn with_key(mut self, key: &impl fmt::Debug) -> Error {
        self.inner.key = Some(format!("{key:?}"));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The `Debug` form of the key this error happened for, if known.
    pub fn key(&self) -> Option<&str> {
        self.inner.key.as_deref()
    }

    /// Whether the request this error ended may have reached the server
    /// and been acted on. `false` is a promise: no byte of the request was
    /// written (it failed in the pool, while connecting, or before the
    /// first write), so sending it again cannot make it happen twice.
    /// `true` means "maybe": bytes were written, the server may have
    /// processed them even though no (complete) response came back.
    ///
    /// Errors that did not come from an HTTP request answer by kind: pool,
    /// connect, URL and request-validation errors `false`, others `true`.
    ///
    /// ```
    /// use connpool::{Error, ErrorKind};
    /// let err = Error::new(ErrorKind::ConnectRefused, "nobody listens");
    /// assert!(!err.may_have_been_processed());
    /// ```
    pub fn may_have_been_processed(&self) -> bool {
        match self.inner.fate {
            Some(fate) => fate.may_have_been_processed,
            None => {
                !(self.is_connect()
                    || self.is_pool_limit()
                    || matches!(
                        self.kind(),
                        ErrorKind::InvalidUrl | ErrorKind::InvalidRequest
                    ))
            }
        }
    }

    /// For errors of an HTTP request: whether the failing attempt ran on a
    /// reused (pooled) connection. `None` when no connection was involved
    /// or the error did not come from a request.
    pub fn connection_reused(&self) -> Option<bool> {
        self.inner
            .fate
            .filter(|f| f.attempts > 0)
            .map(|f| f.connection_reused)
    }

    /// For errors of an HTTP request: how many attempts to send it on a
    /// connection were made, the failing one included (2 when a
    /// stale-connection failure was retried once and the retry failed too;
    /// 0 when it failed before it had a connection: in the pool or while
    /// connecting). `None` for other errors.
    pub fn attempts(&self) -> Option<u32> {
        self.inner.fate.map(|f| f.attempts)
    }

    /// For a failed HTTP request that ended on a reset, a broken pipe or
    /// a dead path: what the kernel saw of its bytes.
    ///
    /// ```
    /// let err = connpool::Error::new(connpool::ErrorKind::Io, "x");
    /// assert!(err.delivery().is_none());
    /// ```
    pub fn delivery(&self) -> Option<Delivery> {
        self.inner.fate.and_then(|f| f.delivery)
    }

    pub(crate) fn with_fate(mut self, fate: RequestFate) -> Error {
        self.inner.fate = Some(fate);
        self
    }

    /// For [`ErrorKind::PoolWaitTimeout`] and [`ErrorKind::TooManyWaiters`]:
    /// the key's idle, checked-out, connecting and waiting counts when the
    /// bound was hit.
    pub fn pool_state(&self) -> Option<KeyStats> {
        self.inner.state.map(|s| s.stats)
    }

    /// True for the failures of the keep-alive race: the peer had closed
    /// or reset the connection (broken pipe, reset, unexpected EOF).
    pub fn is_stale(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
        )
    }

    /// True when no connection could be opened (refused, timed out,
    /// unresolvable, other connect failure, a failed TLS handshake).
    ///
    /// ```
    /// let err = connpool::Error::new(connpool::ErrorKind::TlsCertificate, "expired");
    /// assert!(err.is_connect() && !err.may_have_been_processed());
    /// ```
    pub fn is_connect(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::ConnectRefused
                | ErrorKind::ConnectTimeout
                | ErrorKind::Connect
                | ErrorKind::Resolve
                | ErrorKind::TlsCertificate
                | ErrorKind::TlsHandshake
        )
    }

    /// True when a pool bound refused or timed out the caller.
    pub fn is_pool_limit(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::PoolWaitTimeout | ErrorKind::TooManyWaiters
        )
    }

    /// True for every kind of timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::ConnectTimeout
                | ErrorKind::PoolWaitTimeout
                | ErrorKind::ResponseHeaderTimeout
                | ErrorKind::RequestTimeout
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        match inner.kind {
            ErrorKind::PoolWaitTimeout => {
                f.write_str("timed out waiting for a pooled connection")?
            }
            ErrorKind::TooManyWaiters => {
                f.write_str("too many callers waiting for a pooled connection")?
            }
            kind => f.write_str(kind.as_str())?,
        }
        if let Some(key) = &inner.key {
            write!(f, " (key {key})")?;
        }
        if let Some(s) = &inner.state {
            if let Some(waited) = s.waited {
                write!(f, " after {waited:?}")?;
            }
            let k = s.stats;
            write!(
                f,
                ": {}={} reached; {} checked out, {} idle, {} connecting, {} waiting",
                s.bound, s.limit, k.checked_out, k.idle, k.connecting, k.waiters
            )?;
        }
        if let Some(message) = &inner.message {
            write!(f, ": {message}")?;
        }
        if let Some(source) = &inner.source {
            write!(f, ": {source}")?;
        }
        if let Some(fate) = &inner.fate {
            let conn = if fate.connection_reused {
                "a reused connection"
            } else {
                "a new connection"
            };
            let unacknowledged = fate
                .delivery
                .is_some_and(|d| d.acknowledged == Acknowledged::No);
            let processed = match (fate.may_have_been_processed, unacknowledged) {
                (false, _) => "the request was not sent",
                // Still "may": the peer may have received it and only its
                // acknowledgements were lost. The caller decides.
                (true, true) => "the request most likely never arrived, but that is not proven",
                (true, false) => "the request may have been processed",
            };
            if fate.attempts == 0 {
                write!(f, " ({processed})")?;
            } else {
                write!(f, " (attempt {} on {conn}; {processed}", fate.attempts)?;
                if let Some(delivery) = fate.delivery {
                    write!(f, "; {delivery}")?;
                }
                f.write_str(")")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.inner.kind)
            .field("key", &self.inner.key)
            .field("fate", &self.inner.fate)
            .field("message", &self.to_string())
            .finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        Error::from_io(err)
    }
}
