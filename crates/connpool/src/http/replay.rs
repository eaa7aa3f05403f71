//! Which requests may be sent a second time.
//!
//! A request that fails on a *reused* connection before any byte of a
//! response arrived most likely hit the keep-alive race: the server closed
//! the idle connection while the request was on its way. The cure is to
//! send the request again on a fresh connection, but only when a second
//! copy cannot do harm:
//!
//! * its method is idempotent: RFC 9110 §9.2.2 names GET, HEAD, OPTIONS,
//!   TRACE, PUT and DELETE (Go's `net/http` leaves PUT and DELETE out;
//!   [`ReplayPolicy::safe_methods_only`] does the same); or
//! * it carries an `Idempotency-Key` header, the caller's promise that the
//!   server deduplicates; or
//! * provably no byte of it was written: counted, not guessed.
//!
//! And its body can be sent again (an in-memory body can; a stream that
//! was read from cannot). A request is retried at most once, and never
//! after a failure on a fresh connection: a fresh connection that fails is
//! a real failure, not the race.
//!
//! A request on a *dead path* (no acknowledgement since it was written,
//! retransmissions unanswered; see [`ErrorKind::DeadPath`]) is retried the
//! same way, on any connection: the evidence says it never arrived.
//!
//! ## Resending what was never acknowledged
//!
//! [`ReplayPolicy::resend_unacknowledged`] (off by default) also resends a
//! *non*-replayable request, such as a POST, when the kernel says no byte
//! of it was acknowledged by the server's TCP (a dead path, or a reset or
//! broken pipe with no ACK since the write; see [`Delivery`]). That is
//! safe because a server application can only read bytes its TCP has
//! received, and a TCP acknowledges what it receives: every ACK, even
//! one delayed by up to 200 ms, arrives before the next retransmission
//! has gone unanswered. Where it is **not** safe:
//!
//! * a server (or a proxy in front of it) that reads the request and then
//!   aborts the connection with an RST (`SO_LINGER` 0) before its delayed
//!   ACK went out: the RST is processed before its ACK field, so the
//!   request looks unacknowledged although it was read, and possibly
//!   processed;
//! * a path that dies within one round trip after delivery: the ACK is
//!   lost on the way back, the retransmissions go unanswered, and the
//!   server has the request;
//! * a proxy or load balancer that acknowledges the bytes itself: then the
//!   evidence is about the proxy, and `acknowledged: yes` is what stops a
//!   resend, as it should.
//!
//! Use it only where a duplicate is tolerable in those rare cases.
//!
//! [`ErrorKind::DeadPath`]: crate::ErrorKind::DeadPath
//! [`Delivery`]: crate::Delivery

use http::header::HeaderName;
use http::{HeaderMap, Method};

/// The rules that decide whether a request is *replayable*: safe to send
/// again after it failed on a reused connection before any response byte.
///
/// ```
/// use connpool::http::ReplayPolicy;
/// use http::{HeaderMap, Method};
///
/// let policy = ReplayPolicy::default();
/// assert!(policy.is_replayable(&Method::PUT, &HeaderMap::new()));
/// assert!(!policy.is_replayable(&Method::POST, &HeaderMap::new()));
///
/// let mut headers = HeaderMap::new();
/// headers.insert("idempotency-key", "order-17".parse().unwrap());
/// assert!(policy.is_replayable(&Method::POST, &headers));
///
/// let go = ReplayPolicy::safe_methods_only();
/// assert!(!go.is_replayable(&Method::PUT, &HeaderMap::new()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayPolicy {
    /// Methods replayed without further evidence.
    pub methods: Vec<Method>,
    /// A header whose presence makes any request replayable; `None` turns
    /// that rule off. Default: `idempotency-key`.
    pub idempotency_header: Option<HeaderName>,
    /// Whether stale-connection failures are retried at all. With `false`
    /// every failure reaches the caller (with
    /// [`Error::may_have_been_processed`](crate::Error::may_have_been_processed)).
    pub retry: bool,
    /// Also resend a non-replayable request whose bytes the server's TCP
    /// provably never acknowledged. Off by default: see the module docs
    /// for when the evidence misleads.
    pub resend_unacknowledged: bool,
}

impl Default for ReplayPolicy {
    /// The idempotent methods of RFC 9110 and the `Idempotency-Key` header.
    fn default() -> Self {
        ReplayPolicy {
            methods: vec![
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::TRACE,
                Method::PUT,
                Method::DELETE,
            ],
            idempotency_header: Some(HeaderName::from_static("idempotency-key")),
            retry: true,
            resend_unacknowledged: false,
        }
    }
}

impl ReplayPolicy {
    /// Go's choice: only the safe methods GET, HEAD, OPTIONS and TRACE, and
    /// the `Idempotency-Key` header.
    pub fn safe_methods_only() -> Self {
        ReplayPolicy {
            methods: vec![Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE],
            ..ReplayPolicy::default()
        }
    }

    /// The default policy, plus resending requests that were provably
    /// never acknowledged (see the module docs for the caveats).
    ///
    /// ```
    /// let policy = connpool::http::ReplayPolicy::default().resend_unacknowledged(true);
    /// assert!(policy.resend_unacknowledged);
    /// ```
    #[must_use]
    pub fn resend_unacknowledged(mut self, on: bool) -> Self {
        self.resend_unacknowledged = on;
        self
    }

    /// Never retry anything.
    pub fn never() -> Self {
        ReplayPolicy {
            retry: false,
            ..ReplayPolicy::default()
        }
    }

    /// Whether a request with this method and these headers may be sent
    /// twice (the body's replayability is checked separately).
    pub fn is_replayable(&self, method: &Method, headers: &HeaderMap) -> bool {
        self.methods.contains(method)
            || self
                .idempotency_header
                .as_ref()
                .is_some_and(|name| headers.contains_key(name))
    }
}
