//! `connpool probe URL`: the server's keep-alive behaviour, measured from
//! the client, and what to configure for it.
//!
//! A pool has to expire an idle connection before the server closes it
//! (else the keep-alive race: the client's next request crosses the
//! server's FIN), and has to stop using a connection before the server's
//! request limit if the server closes it without saying so. Nobody tells a
//! client either figure; this probe measures both, in as little wall time
//! as it can, and checks what the server advertises against them:
//!
//! * the **idle timeout** (within 5 % or 50 ms, whichever is larger), and
//!   whether the server then closes with a FIN, an RST, or an unsolicited
//!   response (a `408`, usually) followed by a close;
//! * the **`Keep-Alive` header**: whether the server sends one, and
//!   whether its `timeout` and `max` are true;
//! * the **request limit**: how many requests the server serves on one
//!   connection, and whether the last response says `Connection: close`;
//! * a **recommendation**: the idle timeout to set in connpool, Go's
//!   `http.Transport`, reqwest and an nginx `upstream` block, and a
//!   request limit per connection when the server closes without notice.
//!
//! The idle search and the request count run concurrently; the run takes
//! as long as the longer of the two.
//!
//! # The idle timeout
//!
//! The search is the one `--path-idle` uses too ([`search`]):
//! one-connection probes (a GET, an idle time, a GET on the same
//! connection) at many idle times at once, each on its own [`Client`];
//! a probe lost at `d` cancels the longer ones, a probe kept at `d` the
//! shorter ones. What differs is the probe's client, the idle times it
//! starts from, and when it stops.
//!
//! The client ([`probe_client`]) is set so that only the server decides:
//!
//! * **TCP keepalive on**, as connpool's default (a probe after 15 s
//!   idle). Keepalive packets carry no data, so they do not restart the
//!   server's idle timer, but they refresh the timers of load balancers
//!   and NATs on the way, which would otherwise forget a flow idle for
//!   minutes: what is measured is the server, not the path (that is
//!   `--path-idle`, which turns keepalive off for that reason).
//! * **The `Keep-Alive` hint is not obeyed**
//!   (`obey_keep_alive_hint(false)`): the connection must reach the second
//!   request whatever the server advertises (with connpool's 1 s margin a
//!   `timeout=1` would mean no reuse at all). The hint is reported and
//!   checked instead.
//! * **No retries, no client-side expiry** (no pool idle timeout, no
//!   lifetime): the server's close must reach the probe, not be healed.
//! * **Learning on**: when the checkout finds the server's FIN, the kernel
//!   dates it (`TCP_INFO`: the time since the last ACK received, the FIN
//!   being the peer's last packet), and the pool learns when the server
//!   closed, within a few milliseconds
//!   ([`Client::learned_idle_timeout`]).
//!
//! What a probe finds ([`Outcome`]): `kept`; `fin` (closed at checkout,
//! dated); `rst` (reset at checkout, or as the request was written);
//! `unsolicited_response` (bytes waiting at checkout that nobody asked
//! for, typically a `408`, then a close); `closed_on_request` (the close
//! crossed the second request: EOF before any response byte); `dropped`
//! and `no_answer` (the *path* forgot the flow before the server closed
//! it: reported as such, with a pointer to `--path-idle`); `failed`.
//!
//! ## Where it looks
//!
//! Server timeouts are configured in round figures (Node and Apache 5 s,
//! nginx 75 s, load balancers 60 s, a test server 2 s), so round 1
//! ([`grid`]) probes just past the values of the series 1, 1.2, 1.5, 2,
//! 2.5, 3, 4, 5, 6, 7.5 per decade, from 250 ms up to `--max-wait` (which
//! is probed too): 2 % past, at least 20 ms. "Just past" is enough: the
//! server's timer starts when it writes the response, half a round trip
//! before the client has read it, and its FIN takes the same half round
//! trip back, so the FIN reaches the client T after the client's idle time
//! began; the margin covers the server's timer slop. The advertised
//! `Keep-Alive: timeout=N`, when there is one, is probed the same way, so
//! a server that tells the truth is caught right there. Consecutive idle
//! times are at most a third apart, so the fill that starts when one is
//! kept (see the search) needs at most seven probes to reach the
//! tolerance. About 27 connections are open at once for a 90 s bound.
//!
//! ## When it stops
//!
//! * A **dated FIN** stops the search at once: the timeout is known
//!   within a few milliseconds, from the first probe past it. For a
//!   timeout of a round value that is about 1.02 T of wall time, at most
//!   about 1.36 T otherwise. (A server that sweeps idle connections on a
//!   coarse timer closes a connection somewhere between its timeout and
//!   the next sweep; the one close seen is reported, which errs on the
//!   late side by up to one sweep, and so may the recommendation: its
//!   margin of at least a second absorbs the usual sub-second sweeps.)
//! * An **RST**, an unsolicited response or a close crossing the request
//!   are not dated (nothing tells when the server acted): the bracket
//!   `(longest idle kept, shortest idle lost]` is narrowed to the
//!   tolerance, about `d + T ≤ 2T` of wall time (`d`, the round value just
//!   under T, was kept; probes between it and the next one then start).
//!   The middle of the bracket is reported, within half the tolerance.
//! * When **nothing closes** within `--max-wait`, the server keeps idle
//!   connections at least that long; that is what is reported.
//!
//! # The request limit
//!
//! Concurrently with the idle search, one more client with one connection
//! ([`limit_client`]: `max_conns_per_host(1)`, no client-side expiry, the
//! hint not obeyed) sends GETs back to back, reading each body, until the
//! server ends that connection:
//!
//! * politely: a response says `Connection: close` (nginx's
//!   `keepalive_requests`); that response is the last, and counted;
//! * rudely: the connection ends without a word after some response (the
//!   next request lands on a new connection: the pool found the close at
//!   checkout, or the request failed on the reused connection and was
//!   sent again, GET being replayable). Clients that reuse it race the
//!   server's close just like an idle timeout, every N requests.
//!
//! Bounded by `--max-requests` (default 10 000) and by `--max-wait` from
//! the start of the run: a limit not reached is reported as "at least N".
//! A server that ends every connection after its first response (without
//! saying so) keeps no connection open: exit status 1.
//!
//! # The `Keep-Alive` header
//!
//! Read on the first response. Its `timeout` is true when the measured
//! timeout is not below it, give or take `max(5 %, 50 ms)` of it (it is
//! in whole seconds); false when the server closes sooner, which is
//! dangerous: clients that trust the hint reuse connections the server
//! already closed. Its `max` is read two ways: Apache counts down the
//! requests *remaining* after the response (`max=99`, `max=98`, ...), so
//! the first response promises `1 + max` requests; a server whose `max`
//! does not change across responses promises `max` in all. True when the
//! measured limit is not below the promise.
//!
//! # The recommendation
//!
//! The idle timeout to configure is `T − max(10 % of T, 1 s)`, but at
//! least `T / 2`, rounded down to a figure people type (whole seconds from
//! 10 s, tenths from 1 s, hundredths below; with up to 10 ms of slack,
//! as a dated close comes out a kernel tick or two early). T is the dated
//! close, else the longest idle time kept (the safe end of the bracket),
//! else the `--max-wait` the server survived. Why that margin: a request
//! sent at `T − m` reaches the server at `T − m` plus half a round trip,
//! and the server's timer may fire a little early or the client's a
//! little late; one second covers the round trips and timer slop of real
//! networks (it is connpool's `keep_alive_margin` and undici's
//! threshold), and 10 % covers proportional drift and coarse server
//! timers on long timeouts.
//! Under 2 s the margin would eat the whole timeout, so the floor is half
//! of it: a client that reconnects a little more often is cheaper than one
//! that races. When the server closes connections without notice after N
//! requests, clients that can should stop at N (connpool's
//! `max_requests_per_conn`, which says `Connection: close` on the N-th).
//!
//! # Exit status
//!
//! 0 when something was measured; 1 with a message when nothing could be:
//! the server cannot be reached, it keeps no connection open, every probe
//! failed.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use connpool::EvictReason;
use connpool::http::{Client, ClientConfig, KeepAliveHint, ReplayPolicy};
use http::{HeaderMap, Uri};
use serde::Serialize;

use super::search::{
    self, Bracket, BracketMs, Failure, Outcome as _, Plan, Progress, every_probe_failed, preflight,
    tolerance,
};
use super::{
    ProbeArgs, format_duration, format_setting, ms, one_connection_config, print_report, tally,
    typed_step,
};

/// Bounds each request: connecting, writing, waiting for the head,
/// reading the body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest idle time of round 1.
const FIRST_IDLE: Duration = Duration::from_millis(250);
/// The round values of one decade, in tenths of its first value: 1, 1.2,
/// 1.5, 2, 2.5, 3, 4, 5, 6, 7.5.
const ROUND_VALUES: [u64; 10] = [10, 12, 15, 20, 25, 30, 40, 50, 60, 75];
/// How far past a round value a probe waits, as a fraction of it ...
const PAST_FRACTION: f64 = 0.02;
/// ... and at least.
const PAST_MIN: Duration = Duration::from_millis(20);
/// The recommendation's margin under the timeout, at least ...
const MARGIN_MIN: Duration = Duration::from_secs(1);
/// ... and as a fraction of it, when that is more.
const MARGIN_FRACTION: f64 = 0.1;
/// Added before the recommendation is rounded down (see [`recommended`]).
const ROUNDING_SLACK: Duration = Duration::from_millis(10);
/// How often the progress line shows the request count.
const COUNT_EVERY: u64 = 25;

/// What one probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Answered on the reused connection.
    Kept,
    /// The server's FIN was waiting at checkout.
    Fin,
    /// The server reset the idle connection (found at checkout, or as the
    /// request was written).
    Rst,
    /// Bytes nobody asked for were waiting at checkout (a `408`, usually).
    Unsolicited,
    /// The server's close crossed the request: EOF before any response
    /// byte.
    ClosedOnRequest,
    /// A dead path: the path forgot the flow and drops its packets.
    Dropped,
    /// No answer within the request timeout.
    NoAnswer,
    /// Something else failed: the probe says nothing.
    Failed,
}

impl search::Outcome for Outcome {
    const KEPT: Outcome = Outcome::Kept;
    const FAILED: Outcome = Outcome::Failed;

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Kept => "kept",
            Outcome::Fin => "fin",
            Outcome::Rst => "rst",
            Outcome::Unsolicited => "unsolicited_response",
            Outcome::ClosedOnRequest => "closed_on_request",
            Outcome::Dropped => "dropped",
            Outcome::NoAnswer => "no_answer",
            Outcome::Failed => "failed",
        }
    }

    fn at_checkout(client: &Client, url: &Uri) -> Option<(Outcome, Option<Duration>)> {
        let counters = client.stats().counters;
        let evicted = |reason| counters.evicted(reason) > 0;
        if evicted(EvictReason::ServerClosed) {
            // Dated by the kernel (unless under the learner's 100 ms floor).
            Some((Outcome::Fin, client.learned_idle_timeout(url.clone())))
        } else if evicted(EvictReason::ServerReset) {
            Some((Outcome::Rst, None))
        } else if evicted(EvictReason::UnexpectedData) {
            Some((Outcome::Unsolicited, None))
        } else if evicted(EvictReason::DeadPath) {
            Some((Outcome::Dropped, None))
        } else {
            None
        }
    }

    fn failed_with(failure: Failure) -> Outcome {
        match failure {
            Failure::DeadPath => Outcome::Dropped,
            Failure::Reset => Outcome::Rst,
            Failure::Eof => Outcome::ClosedOnRequest,
            Failure::NoAnswer => Outcome::NoAnswer,
            Failure::Other => Outcome::Failed,
        }
    }
}

impl Outcome {
    /// How the connection ended, for the report: `fin`, `rst`,
    /// `unsolicited_response`, or what the path did.
    fn close_mode(self) -> Option<&'static str> {
        match self {
            Outcome::Fin | Outcome::ClosedOnRequest => Some("fin"),
            Outcome::Rst => Some("rst"),
            Outcome::Unsolicited => Some("unsolicited_response"),
            Outcome::Dropped => Some("dropped"),
            Outcome::NoAnswer => Some("no_answer"),
            Outcome::Kept | Outcome::Failed => None,
        }
    }

    /// Whether the server (rather than the path) ended the connection.
    fn by_server(self) -> bool {
        matches!(
            self,
            Outcome::Fin | Outcome::Rst | Outcome::Unsolicited | Outcome::ClosedOnRequest
        )
    }
}

/// One probe, done.
type Probe = search::Probe<Outcome>;

/// A client for one idle probe; see the module docs for each setting.
fn probe_client() -> Client {
    Client::builder()
        .config(ClientConfig {
            learn_idle_timeout: true,
            replay: ReplayPolicy::never(),
            // TCP keepalive, the user timeout and the dead-path check stay
            // connpool's defaults.
            ..one_connection_config(REQUEST_TIMEOUT)
        })
        .build()
}

/// The client that counts requests per connection: one connection, no
/// client-side expiry, GETs sent again on a new connection when the old
/// one turns out closed (the default replay policy).
fn limit_client() -> Client {
    Client::builder()
        .config(ClientConfig {
            learn_idle_timeout: false,
            ..one_connection_config(REQUEST_TIMEOUT)
        })
        .build()
}

/// One idle probe (see [`search::probe`]), on a client of its own.
async fn probe(url: Uri, round: u32, planned: Duration) -> Probe {
    search::probe(&probe_client(), &url, round, planned).await
}

/// Just past `value`: 2 %, at least 20 ms, in whole ms.
fn past(value: Duration) -> Duration {
    let at = value + value.mul_f64(PAST_FRACTION).max(PAST_MIN);
    Duration::from_millis(at.as_millis() as u64)
}

/// Round 1's idle times: just past each round value from 250 ms on, and
/// past the advertised `Keep-Alive` timeout, below `max_wait`; then
/// `max_wait` itself.
fn grid(max_wait: Duration, advertised: Option<Duration>) -> Vec<Duration> {
    let mut idles = Vec::new();
    let mut decade = Some(Duration::from_millis(10));
    'decades: while let Some(tenth) = decade {
        for tenths in ROUND_VALUES {
            let Some(value) = tenth.checked_mul(tenths as u32) else {
                break 'decades;
            };
            if value < FIRST_IDLE {
                continue;
            }
            let at = past(value);
            if at >= max_wait {
                break 'decades;
            }
            idles.push(at);
        }
        decade = tenth.checked_mul(10);
    }
    if let Some(at) = advertised.map(past).filter(|&at| at < max_wait) {
        idles.push(at);
    }
    idles.push(max_wait);
    idles.sort();
    idles.dedup();
    idles
}

/// How the counted connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LimitEnd {
    /// The last response said `Connection: close`.
    Announced,
    /// The connection ended without a word after the last response.
    Unannounced,
    /// Still open when a bound was reached.
    NotReached,
    /// A request failed for another reason.
    Failed,
}

impl LimitEnd {
    fn as_str(self) -> &'static str {
        match self {
            LimitEnd::Announced => "connection_close",
            LimitEnd::Unannounced => "closed_without_notice",
            LimitEnd::NotReached => "not_reached",
            LimitEnd::Failed => "failed",
        }
    }
}

/// What the request count found.
#[derive(Debug)]
struct RequestLimit {
    /// Responses read on the first connection.
    served: u64,
    end: LimitEnd,
    /// For `NotReached`: `max_requests` or `max_wait`.
    bounded_by: Option<&'static str>,
    /// The `Keep-Alive: max` of the first two responses (`None`: absent).
    maxes: Vec<Option<u32>>,
    error: Option<String>,
    took: Duration,
}

impl RequestLimit {
    /// The limit, when the connection ended.
    fn exact(&self) -> Option<u64> {
        matches!(self.end, LimitEnd::Announced | LimitEnd::Unannounced).then_some(self.served)
    }
}

/// Whether the response says `Connection: close`.
fn says_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("close"))
}

/// Sends GETs back to back on one connection until the server ends it or
/// `max_requests` were served; see the module docs.
async fn count_requests(
    client: &Client,
    url: &Uri,
    max_requests: u64,
    limit: &mut RequestLimit,
    progress: &Progress,
) {
    let mut first_connection = None;
    loop {
        if limit.served >= max_requests {
            limit.end = LimitEnd::NotReached;
            limit.bounded_by = Some("max_requests");
            return;
        }
        let resp = match client.get(url.clone()).send().await {
            Ok(resp) => resp,
            Err(err) => {
                limit.end = if limit.served > 0 && err.connection_reused() == Some(true) {
                    // Ended under the request, which could not be sent again.
                    LimitEnd::Unannounced
                } else {
                    LimitEnd::Failed
                };
                limit.error = Some(err.to_string());
                return;
            }
        };
        let id = resp.connection_id();
        if *first_connection.get_or_insert(id) != id {
            limit.end = LimitEnd::Unannounced;
            return;
        }
        let close = says_close(resp.headers());
        if limit.maxes.len() < 2 {
            limit
                .maxes
                .push(KeepAliveHint::from_headers(resp.headers()).max);
        }
        if let Err(err) = resp.bytes().await {
            limit.end = LimitEnd::Failed;
            limit.error = Some(format!("reading response {}: {err}", limit.served + 1));
            return;
        }
        limit.served += 1;
        if close {
            limit.end = LimitEnd::Announced;
            return;
        }
        if limit.served % COUNT_EVERY == 0 {
            progress.extra(format!("{} requests on one connection", limit.served));
        }
    }
}

/// The request count, bounded by `max_requests` and `deadline`.
async fn request_limit(
    url: &Uri,
    max_requests: u64,
    deadline: Instant,
    progress: &Progress,
) -> RequestLimit {
    let started = Instant::now();
    let client = limit_client();
    let mut limit = RequestLimit {
        served: 0,
        end: LimitEnd::NotReached,
        bounded_by: None,
        maxes: Vec::new(),
        error: None,
        took: Duration::ZERO,
    };
    let counting = count_requests(&client, url, max_requests, &mut limit, progress);
    if tokio::time::timeout_at(deadline.into(), counting)
        .await
        .is_err()
    {
        limit.end = LimitEnd::NotReached;
        limit.bounded_by = Some("max_wait");
    }
    limit.took = started.elapsed();
    progress.extra(match limit.exact() {
        Some(n) => format!("{n} requests per connection"),
        None => format!("{} requests on one connection", limit.served),
    });
    limit
}

/// What the idle search found.
#[derive(Debug)]
struct IdleFinding {
    bracket: Bracket<Outcome>,
    /// The timeout: the dated close, or the middle of the bracket. `None`
    /// when nothing closed.
    timeout: Option<Duration>,
    /// The close: the dated probe's, else the one most seen at checkout,
    /// else the bracket's.
    close: Option<Outcome>,
    /// Whether the kernel dated the close.
    dated: bool,
    converged: bool,
}

impl IdleFinding {
    /// `None` when every probe failed.
    fn of(probes: &[Probe]) -> Option<IdleFinding> {
        let bracket = Bracket::of(probes);
        if bracket.kept.is_none() && bracket.lost.is_none() {
            return None;
        }
        let dated = probes
            .iter()
            .filter(|p| p.outcome == Outcome::Fin)
            .filter_map(|p| p.server_closed_after)
            .min();
        let lost = |o: Outcome| probes.iter().filter(|p| p.outcome == o && o.lost()).count();
        let seen_at_checkout = [Outcome::Fin, Outcome::Rst, Outcome::Unsolicited]
            .into_iter()
            .filter(|&o| lost(o) > 0)
            .max_by_key(|&o| lost(o));
        let close = if dated.is_some() {
            Some(Outcome::Fin)
        } else {
            match bracket.lost {
                // The path forgot the flow first: that is what happened.
                Some((_, o)) if !o.by_server() => Some(o),
                Some((_, o)) => seen_at_checkout.or(Some(o)),
                None => None,
            }
        };
        let timeout = dated.or_else(|| {
            let (lost, _) = bracket.lost?;
            let kept = bracket.kept.unwrap_or_default();
            Some(Duration::from_millis(((kept + lost) / 2).as_millis() as u64))
        });
        Some(IdleFinding {
            bracket,
            timeout,
            close,
            dated: dated.is_some(),
            converged: dated.is_some() || bracket.converged(),
        })
    }

    /// Whether the server closed idle connections (rather than the path,
    /// or nobody).
    fn server_closed(&self) -> bool {
        self.close.is_some_and(Outcome::by_server)
    }

    /// The figure the recommendation starts from: the dated close, the
    /// longest idle kept (the safe end of the bracket), or what was
    /// survived.
    fn safe_limit(&self, max_wait: Duration) -> Duration {
        if self.dated {
            if let Some(t) = self.timeout {
                return t;
            }
        }
        self.bracket
            .kept
            .or(self.timeout)
            .unwrap_or(max_wait)
            .max(Duration::from_millis(1))
    }

    fn tolerance(&self) -> Duration {
        match (self.dated, self.timeout) {
            (true, Some(t)) => tolerance(t),
            _ => self.bracket.tolerance(),
        }
    }
}

/// What the `Keep-Alive` header said, and whether it is true. The JSON
/// report gives the checks as they are (see [`KeepAliveReport`]).
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct KeepAliveFinding {
    #[serde(skip)]
    hint: KeepAliveHint,
    /// Whether `max` counts down the remaining requests (Apache).
    max_counts_down: Option<bool>,
    /// `null` when not advertised or not checked.
    timeout_true: Option<bool>,
    /// Measured minus advertised.
    timeout_difference_ms: Option<i64>,
    /// The requests per connection `max` promises.
    promised_requests: Option<u64>,
    max_true: Option<bool>,
    /// Measured minus promised.
    max_difference: Option<i64>,
}

fn signed_ms(a: Duration, b: Duration) -> i64 {
    let (a, b) = (ms(a) as i64, ms(b) as i64);
    a - b
}

impl KeepAliveFinding {
    fn of(hint: KeepAliveHint, idle: &IdleFinding, limit: &RequestLimit) -> KeepAliveFinding {
        let mut f = KeepAliveFinding {
            hint,
            ..KeepAliveFinding::default()
        };
        if let Some(advertised) = hint.timeout {
            let slack = tolerance(advertised);
            if idle.server_closed() {
                if let Some(t) = idle.timeout {
                    f.timeout_difference_ms = Some(signed_ms(t, advertised));
                    f.timeout_true = Some(t + slack >= advertised);
                }
            } else if idle.close.is_none() {
                // Nothing closed: kept at least this long.
                let kept = idle.bracket.kept.unwrap_or_default();
                if kept + slack >= advertised {
                    f.timeout_true = Some(true);
                }
            }
        }
        let first_max = limit.maxes.first().copied().flatten().or(hint.max);
        if let Some(max) = first_max {
            f.max_counts_down = match limit.maxes.as_slice() {
                [Some(a), Some(b)] => Some(b < a),
                _ => None,
            };
            let promised = if f.max_counts_down == Some(true) {
                1 + u64::from(max)
            } else {
                u64::from(max)
            };
            f.promised_requests = Some(promised);
            match limit.exact() {
                Some(n) => {
                    f.max_difference = Some(n as i64 - promised as i64);
                    f.max_true = Some(n >= promised);
                }
                None if limit.served >= promised => f.max_true = Some(true),
                None => {}
            }
        }
        f
    }
}

/// A value a margin under `limit` (see the module docs), rounded down to
/// a figure people type into a configuration file.
fn recommended(limit: Duration) -> Duration {
    let margin = limit.mul_f64(MARGIN_FRACTION).max(MARGIN_MIN);
    let target = limit.saturating_sub(margin).max(limit / 2);
    let unit = typed_step(target);
    // A close dated by the kernel comes out a tick or two early (4 ms at
    // 250 Hz, 10 ms at 100 Hz): without this slack, a server closing at
    // 3 s measured as 2.996 s would get 1.9 s rather than 2 s.
    // Less than half a unit, so a value already on a figure stays there;
    // none under 100 ms, where it would eat into the margin itself.
    let slack = if target >= Duration::from_millis(100) {
        ROUNDING_SLACK.min(unit / 2)
    } else {
        Duration::ZERO
    };
    let units = ((target + slack).as_nanos() / unit.as_nanos()) as u32;
    if units == 0 {
        // A timeout of a few ms: no figure to round to.
        return Duration::from_millis(target.as_millis().max(1) as u64);
    }
    unit * units
}

/// `d` written with `secs` when it is whole seconds, else with `millis`:
/// how the configuration languages below write a duration.
fn secs_or_millis(
    d: Duration,
    secs: impl FnOnce(u64) -> String,
    millis: impl FnOnce(u64) -> String,
) -> String {
    let ms = ms(d);
    if ms % 1000 == 0 {
        secs(ms / 1000)
    } else {
        millis(ms)
    }
}

/// `Duration::from_secs(4)`, `Duration::from_millis(1500)`.
fn rust_duration(d: Duration) -> String {
    secs_or_millis(
        d,
        |s| format!("Duration::from_secs({s})"),
        |ms| format!("Duration::from_millis({ms})"),
    )
}

/// `4 * time.Second`, `1500 * time.Millisecond`.
fn go_duration(d: Duration) -> String {
    secs_or_millis(
        d,
        |s| format!("{s} * time.Second"),
        |ms| format!("{ms} * time.Millisecond"),
    )
}

/// `4s`, `1500ms`.
fn nginx_duration(d: Duration) -> String {
    secs_or_millis(d, |s| format!("{s}s"), |ms| format!("{ms}ms"))
}

/// `host:port` of the URL, for an nginx `server` line.
fn upstream_server(url: &Uri) -> String {
    let host = url.host().unwrap_or("localhost");
    let port = url.port_u16().unwrap_or(80);
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The recommendation, as printed with `--json`.
#[derive(Serialize)]
struct Recommendation {
    /// The idle timeout to configure in a client.
    idle_timeout_ms: u64,
    /// The figure it was derived from.
    based_on_ms: u64,
    rule: String,
    connpool: String,
    go: String,
    reqwest: String,
    nginx: String,
    /// When the server closes connections without notice: requests per
    /// connection for clients that can stop there.
    max_requests_per_conn: Option<u64>,
    notes: Vec<String>,
}

fn recommend(
    url: &Uri,
    idle: &IdleFinding,
    keep_alive: &KeepAliveFinding,
    limit: &RequestLimit,
    max_wait: Duration,
) -> Recommendation {
    let based_on = idle.safe_limit(max_wait);
    let value = recommended(based_on);
    let based_on_words = if idle.dated {
        "the server's idle timeout"
    } else if idle.close.is_some() {
        "the longest idle time a connection survived"
    } else {
        "kept idle for the whole --max-wait"
    };
    let rule = format!(
        "T − max(10 %, 1 s), at least T/2, rounded down; T = {}, {based_on_words}",
        format_duration(based_on)
    );
    let rude_limit = (limit.end == LimitEnd::Unannounced).then_some(limit.served);
    let mut connpool = format!(
        "Client::builder().pool_idle_timeout(Some({}))",
        rust_duration(value)
    );
    if let Some(n) = rude_limit {
        let _ = write!(connpool, ".max_requests_per_conn(Some({n}))");
    }
    let mut nginx = format!(
        "upstream backend {{\n    server {};\n    keepalive 32;\n    keepalive_timeout {};\n",
        upstream_server(url),
        nginx_duration(value)
    );
    match limit.exact() {
        Some(n) => {
            let _ = writeln!(nginx, "    keepalive_requests {n};");
        }
        None => {
            let _ = writeln!(
                nginx,
                "    # keepalive_requests: the server served at least {} on one connection",
                limit.served
            );
        }
    }
    nginx.push_str(
        "}\n# and in the location: proxy_http_version 1.1; proxy_set_header Connection \"\";",
    );

    let mut notes = Vec::new();
    let default = ClientConfig::default().pool_idle_timeout;
    notes.push(match default {
        Some(d) if d <= value => format!(
            "connpool's default pool idle timeout ({}) is already under it, and connpool \
             also learns the server's timeout from the closes it sees",
            format_setting(Some(d))
        ),
        _ => format!(
            "connpool's default pool idle timeout ({}) is longer, but connpool learns the \
             server's timeout from the first closes it sees (learn_idle_timeout, on by \
             default) and then expires idle connections before it; setting it spares the \
             first races",
            format_setting(default)
        ),
    });
    if keep_alive.timeout_true == Some(false) {
        notes.push(
            "do not trust the server's Keep-Alive timeout: clients that obey it (connpool by \
             default, minus 1 s; undici) keep connections the server already closed; a pool \
             idle timeout under the real one wins, since the earliest deadline applies"
                .to_string(),
        );
    }
    if let Some(n) = rude_limit {
        notes.push(format!(
            "the server closes connections after {n} requests without saying \
             `Connection: close`: connpool's max_requests_per_conn({n}) and nginx's \
             keepalive_requests {n} stop there; Go's http.Transport and reqwest have no such \
             setting and rely on retrying idempotent requests"
        ));
    }
    Recommendation {
        idle_timeout_ms: ms(value),
        based_on_ms: ms(based_on),
        rule,
        connpool,
        go: format!("&http.Transport{{IdleConnTimeout: {}}}", go_duration(value)),
        reqwest: format!(
            "reqwest::Client::builder().pool_idle_timeout({})",
            rust_duration(value)
        ),
        nginx,
        max_requests_per_conn: rude_limit,
        notes,
    }
}

/// The result, as printed with `--json`.
#[derive(Serialize)]
struct Report {
    url: String,
    mode: &'static str,
    max_wait_ms: u64,
    max_requests: u64,
    idle: IdleReport,
    keep_alive: KeepAliveReport,
    request_limit: LimitReport,
    /// The findings in words, one line each: idle timeout, keep-alive
    /// header, request limit.
    summary: Vec<String>,
    recommendation: Recommendation,
    rounds: u32,
    probes_run: usize,
    /// Probes kept at or past the shortest idle time lost.
    inconsistent_probes: usize,
    probes: Vec<ProbeReport>,
    wall_time_s: f64,
}

#[derive(Serialize)]
struct IdleReport {
    /// `closed`: the server closes idle connections; `path`: the path
    /// forgot the idle flow before the server closed it; `kept`: nothing
    /// closed within `--max-wait`.
    behaviour: &'static str,
    /// The idle timeout: the dated close, or the middle of the bracket.
    timeout_ms: Option<u64>,
    /// When nothing closed: the longest idle time kept.
    at_least_ms: Option<u64>,
    /// `fin`, `rst`, `unsolicited_response` (then `dropped`, `no_answer`
    /// for the path).
    close_mode: Option<&'static str>,
    /// Whether the kernel dated the server's FIN.
    dated: bool,
    bracket_ms: BracketMs,
    tolerance_ms: u64,
    converged: bool,
}

#[derive(Serialize)]
struct KeepAliveReport {
    advertised: bool,
    timeout_s: Option<u64>,
    max: Option<u32>,
    /// Whether it is true.
    #[serde(flatten)]
    checked: KeepAliveFinding,
}

#[derive(Serialize)]
struct LimitReport {
    /// `connection_close`, `closed_without_notice`, `not_reached`,
    /// `failed`.
    ended: &'static str,
    /// The requests served per connection, when the connection ended.
    requests: Option<u64>,
    /// When it did not: how many were served.
    at_least: Option<u64>,
    /// Whether the last response said `Connection: close`.
    said_connection_close: Option<bool>,
    /// For `not_reached`: `max_requests` or `max_wait`.
    bounded_by: Option<&'static str>,
    took_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct ProbeReport {
    round: u32,
    planned_idle_ms: u64,
    idle_ms: u64,
    outcome: &'static str,
    answered_in_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    closed_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs `connpool probe URL` and returns its exit status.
pub async fn run(args: &ProbeArgs) -> ExitCode {
    let started = Instant::now();
    let max_wait = args.max_wait();
    let progress = Progress::new(args.json);
    let Some(hint) = preflight(&probe_client(), &args.url, &progress).await else {
        return ExitCode::FAILURE;
    };

    let plan = Plan {
        url: args.url.clone(),
        grid: grid(max_wait, hint.timeout),
        max_wait,
        stop_when_dated: true,
    };
    let idle_search = search::search(&plan, started, probe, &progress);
    let counting = request_limit(&args.url, args.max_requests, started + max_wait, &progress);
    let (searched, limit) = tokio::join!(idle_search, counting);
    progress.clear();
    let wall = started.elapsed();

    if limit.end == LimitEnd::Unannounced && limit.served <= 1 {
        eprintln!(
            "connpool probe: cannot measure: {} closes every connection right after its \
             first response (without saying `Connection: close`), so no connection ever \
             sits idle",
            args.url
        );
        return ExitCode::FAILURE;
    }
    let Some(idle) = IdleFinding::of(&searched.probes) else {
        return every_probe_failed(&searched.probes);
    };
    let keep_alive = KeepAliveFinding::of(hint, &idle, &limit);
    let report = report(
        args,
        &searched.probes,
        searched.rounds,
        &idle,
        &keep_alive,
        &limit,
        wall,
    );
    print_report(&report, args.json, || format_report(&report))
}

fn report(
    args: &ProbeArgs,
    probes: &[Probe],
    rounds: u32,
    idle: &IdleFinding,
    keep_alive: &KeepAliveFinding,
    limit: &RequestLimit,
    wall: Duration,
) -> Report {
    let max_wait = args.max_wait();
    let behaviour = match idle.close {
        None => "kept",
        Some(o) if o.by_server() => "closed",
        Some(_) => "path",
    };
    let mut sorted: Vec<&Probe> = probes.iter().collect();
    sorted.sort_by_key(|p| (p.round, p.planned));
    let summary = vec![
        idle_words(idle, max_wait),
        keep_alive_words(keep_alive, idle),
        limit_words(limit, args.max_requests),
    ];
    Report {
        url: args.url.to_string(),
        mode: "server",
        max_wait_ms: ms(max_wait),
        max_requests: args.max_requests,
        idle: IdleReport {
            behaviour,
            timeout_ms: idle.timeout.map(ms),
            at_least_ms: idle
                .close
                .is_none()
                .then_some(idle.bracket.kept)
                .flatten()
                .map(ms),
            close_mode: idle.close.and_then(Outcome::close_mode),
            dated: idle.dated,
            bracket_ms: idle.bracket.in_ms(),
            tolerance_ms: ms(idle.tolerance()),
            converged: idle.converged,
        },
        keep_alive: KeepAliveReport {
            advertised: keep_alive.hint != KeepAliveHint::default(),
            timeout_s: keep_alive.hint.timeout.map(|t| t.as_secs()),
            max: keep_alive.hint.max,
            checked: *keep_alive,
        },
        request_limit: LimitReport {
            ended: limit.end.as_str(),
            requests: limit.exact(),
            at_least: (limit.exact().is_none()).then_some(limit.served),
            said_connection_close: limit.exact().map(|_| limit.end == LimitEnd::Announced),
            bounded_by: limit.bounded_by,
            took_ms: ms(limit.took),
            error: limit.error.clone(),
        },
        summary,
        recommendation: recommend(&args.url, idle, keep_alive, limit, max_wait),
        rounds,
        probes_run: probes.len(),
        inconsistent_probes: idle.bracket.inconsistent,
        probes: sorted
            .into_iter()
            .map(|p| ProbeReport {
                round: p.round,
                planned_idle_ms: ms(p.planned),
                idle_ms: ms(p.idle),
                outcome: p.outcome.as_str(),
                answered_in_ms: ms(p.answered_in),
                closed_after_ms: p.server_closed_after.map(ms),
                error: p.error.clone(),
            })
            .collect(),
        wall_time_s: wall.as_secs_f64(),
    }
}

/// `1st`, `2nd`, `3rd`, `50th`.
fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The idle timeout in words.
fn idle_words(idle: &IdleFinding, max_wait: Duration) -> String {
    let kept = idle.bracket.kept.unwrap_or_default();
    let lost = idle.bracket.lost.map(|(at, _)| at).unwrap_or_default();
    let Some(close) = idle.close else {
        return format!(
            "idle timeout: none found: the server kept idle connections for {} (of the {} \
             --max-wait); it may keep them longer",
            format_duration(kept),
            format_duration(max_wait)
        );
    };
    let timeout = idle.timeout.unwrap_or(lost);
    let mut words = if !close.by_server() {
        let fate = if close == Outcome::Dropped {
            "dropped its packets silently"
        } else {
            "left a request unanswered"
        };
        format!(
            "idle timeout: not reached: the network path forgot an idle connection after \
             {}–{} and {fate}, before the server closed it (see `connpool probe --path-idle`)",
            format_duration(kept),
            format_duration(lost)
        )
    } else if idle.dated {
        format!(
            "idle timeout: {}: the server closes an idle connection with a FIN {} ms after \
             its last response (dated by the kernel)",
            format_duration(timeout),
            ms(timeout)
        )
    } else {
        let how = match close {
            Outcome::Rst => "with an RST",
            Outcome::Unsolicited => "after an unsolicited response (a 408, usually)",
            _ => "with a FIN",
        };
        format!(
            "idle timeout: {}: the server closes an idle connection {how} between {} and {} \
             after its last response",
            format_duration(timeout),
            format_duration(kept),
            format_duration(lost)
        )
    };
    if !idle.converged {
        let _ = write!(
            words,
            " (wider than the {} tolerance: the run's time bound)",
            format_duration(idle.tolerance())
        );
    }
    words
}

/// The `Keep-Alive` header in words.
fn keep_alive_words(k: &KeepAliveFinding, idle: &IdleFinding) -> String {
    let hint = k.hint;
    if hint == KeepAliveHint::default() {
        return "keep-alive header: none (the server does not advertise its idle timeout or \
                request limit)"
            .to_string();
    }
    let mut parts = Vec::new();
    if let Some(t) = hint.timeout {
        let words = match (k.timeout_true, k.timeout_difference_ms) {
            (Some(true), Some(d)) if d >= 0 => format!(
                "timeout={} is true (the server keeps idle connections {} longer)",
                t.as_secs(),
                format_duration(Duration::from_millis(d as u64))
            ),
            (Some(true), Some(d)) => format!(
                "timeout={} is true (within {} ms)",
                t.as_secs(),
                d.unsigned_abs()
            ),
            (Some(true), None) => format!(
                "timeout={} is true (idle connections were kept at least that long)",
                t.as_secs()
            ),
            (Some(false), Some(d)) => format!(
                "timeout={} is FALSE: the server closes idle connections {} sooner; clients \
                 that trust it reuse connections the server already closed",
                t.as_secs(),
                format_duration(Duration::from_millis(d.unsigned_abs()))
            ),
            _ if !idle.server_closed() && idle.close.is_some() => format!(
                "timeout={} not checked (the path forgot the flow first)",
                t.as_secs()
            ),
            _ => format!(
                "timeout={} not checked (--max-wait is shorter)",
                t.as_secs()
            ),
        };
        parts.push(words);
    }
    if let Some(max) = hint.max {
        let reading = match k.max_counts_down {
            Some(true) => "counts down the requests left, so promises",
            Some(false) => "promises",
            None => "promises (read as a total)",
        };
        let promised = k.promised_requests.unwrap_or(u64::from(max));
        let verdict = match (k.max_true, k.max_difference) {
            (Some(true), Some(0)) => "true".to_string(),
            (Some(true), Some(d)) => format!("true ({d} more were served)"),
            (Some(true), None) => "true (at least that many were served)".to_string(),
            (Some(false), Some(d)) => format!(
                "FALSE: the server closes the connection {} {} sooner",
                d.unsigned_abs(),
                if d.unsigned_abs() == 1 {
                    "request"
                } else {
                    "requests"
                }
            ),
            _ => "not checked".to_string(),
        };
        parts.push(format!(
            "max={max} {reading} {promised} requests per connection: {verdict}"
        ));
    }
    format!("keep-alive header: {}", parts.join("; "))
}

/// The request limit in words.
fn limit_words(limit: &RequestLimit, max_requests: u64) -> String {
    let n = limit.served;
    match limit.end {
        LimitEnd::Announced => format!(
            "request limit: {n} requests per connection; the {} response says \
             `Connection: close`",
            ordinal(n)
        ),
        LimitEnd::Unannounced => format!(
            "request limit: {n} requests per connection, and the {} response does NOT say \
             `Connection: close`: the server closes the connection without notice, so the \
             next request on it fails (a stale connection)",
            ordinal(n)
        ),
        LimitEnd::NotReached => format!(
            "request limit: none found: the server served {n} requests on one connection \
             (the {} bound)",
            if limit.bounded_by == Some("max_requests") {
                format!("--max-requests {max_requests}")
            } else {
                "--max-wait".to_string()
            }
        ),
        LimitEnd::Failed => format!(
            "request limit: unknown: after {n} requests on one connection, a request failed ({})",
            limit.error.as_deref().unwrap_or("no detail")
        ),
    }
}

/// Indents every line but the first by `indent` spaces.
fn hang(text: &str, indent: usize) -> String {
    text.replace('\n', &format!("\n{}", " ".repeat(indent)))
}

/// The human report.
fn format_report(r: &Report) -> String {
    let mut out = String::new();
    for line in &r.summary {
        let _ = writeln!(out, "{line}");
    }
    let rec = &r.recommendation;
    let _ = writeln!(
        out,
        "recommendation: an idle timeout of {} ({})",
        format_setting(Some(Duration::from_millis(rec.idle_timeout_ms))),
        rec.rule
    );
    let _ = writeln!(out, "  connpool: {}", rec.connpool);
    let _ = writeln!(out, "  Go:       {}", rec.go);
    let _ = writeln!(out, "  reqwest:  {}", rec.reqwest);
    let _ = writeln!(out, "  nginx:    {}", hang(&rec.nginx, 12));
    for note in &rec.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out.push_str(&tally(r.probes_run, r.rounds, r.wall_time_s));
    if r.inconsistent_probes > 0 {
        let _ = write!(
            out,
            "; {} probes were kept past the first close: the server's timeout is not sharp",
            r.inconsistent_probes
        );
    }
    out.push('\n');
    let failed: Vec<&ProbeReport> = r.probes.iter().filter(|p| p.outcome == "failed").collect();
    if let Some(example) = failed.iter().find_map(|p| p.error.as_deref()) {
        let _ = writeln!(
            out,
            "{} {} said nothing (e.g. {example})",
            failed.len(),
            if failed.len() == 1 { "probe" } else { "probes" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn probe(idle: u64, outcome: Outcome, closed_after: Option<u64>) -> Probe {
        let mut p = Probe::new(1, ms(idle), outcome);
        p.idle = ms(idle);
        p.server_closed_after = closed_after.map(ms);
        p
    }

    fn limit(served: u64, end: LimitEnd, maxes: &[Option<u32>]) -> RequestLimit {
        RequestLimit {
            served,
            end,
            bounded_by: None,
            maxes: maxes.to_vec(),
            error: None,
            took: Duration::ZERO,
        }
    }

    #[test]
    fn the_grid_is_just_past_round_values() {
        let idles: Vec<u64> = grid(ms(5000), None)
            .iter()
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(
            idles,
            [
                270, 320, 420, 520, 620, 770, 1020, 1224, 1530, 2040, 2550, 3060, 4080, 5000
            ]
        );
        // Steps of at most a third, so fills stay small.
        let g = grid(Duration::from_secs(90), None);
        assert!(
            g.windows(2)
                .all(|w| w[1].as_secs_f64() / w[0].as_secs_f64() <= 1.34)
        );
        assert!(g.len() <= 28, "{}", g.len());
        assert_eq!(g.last(), Some(&Duration::from_secs(90)));
        // The advertised timeout is probed just past it.
        assert!(grid(ms(20_000), Some(ms(7000))).contains(&ms(7140)));
        assert_eq!(grid(ms(100), None), [ms(100)]);
    }

    #[test]
    fn a_dated_fin_is_the_timeout() {
        let probes = [
            probe(770, Outcome::Kept, None),
            probe(1020, Outcome::Fin, Some(998)),
        ];
        let idle = IdleFinding::of(&probes).expect("found");
        assert_eq!(idle.timeout, Some(ms(998)));
        assert!(idle.dated && idle.converged && idle.server_closed());
        assert_eq!(idle.close.and_then(Outcome::close_mode), Some("fin"));
        assert_eq!(idle.safe_limit(ms(5000)), ms(998));
    }

    #[test]
    fn an_rst_is_the_middle_of_the_bracket() {
        let probes = [
            probe(978, Outcome::Kept, None),
            probe(1010, Outcome::ClosedOnRequest, None),
            probe(1020, Outcome::Rst, None),
        ];
        let idle = IdleFinding::of(&probes).expect("found");
        assert_eq!(idle.timeout, Some(ms(994)));
        assert!(!idle.dated && idle.converged);
        assert_eq!(idle.close.and_then(Outcome::close_mode), Some("rst"));
        assert_eq!(idle.safe_limit(ms(5000)), ms(978));

        let none = IdleFinding::of(&[probe(5000, Outcome::Kept, None)]).expect("found");
        assert_eq!((none.timeout, none.close), (None, None));
        assert!(IdleFinding::of(&[probe(0, Outcome::Failed, None)]).is_none());
    }

    #[test]
    fn recommendations_keep_a_margin() {
        assert_eq!(
            recommended(Duration::from_secs(60)),
            Duration::from_secs(54)
        );
        assert_eq!(
            recommended(Duration::from_secs(75)),
            Duration::from_secs(67)
        );
        assert_eq!(recommended(Duration::from_secs(5)), Duration::from_secs(4));
        assert_eq!(recommended(ms(2001)), Duration::from_secs(1));
        assert_eq!(recommended(ms(1996)), Duration::from_secs(1));
        assert_eq!(recommended(ms(2996)), Duration::from_secs(2));
        assert_eq!(recommended(ms(59_995)), Duration::from_secs(54));
        assert_eq!(recommended(ms(12)), ms(6));
        assert_eq!(recommended(ms(100)), ms(50));
        assert_eq!(recommended(ms(210)), ms(110));
        assert_eq!(recommended(ms(1500)), ms(750));
        assert_eq!(recommended(ms(200)), ms(100));
        assert_eq!(go_duration(ms(1500)), "1500 * time.Millisecond");
        assert_eq!(go_duration(Duration::from_secs(54)), "54 * time.Second");
        assert_eq!(rust_duration(ms(750)), "Duration::from_millis(750)");
        assert_eq!(nginx_duration(Duration::from_secs(4)), "4s");
    }

    #[test]
    fn keep_alive_hints_are_checked() {
        let closed = IdleFinding::of(&[probe(1020, Outcome::Fin, Some(1001))]).expect("found");
        let hint = |timeout: u64, max: Option<u32>| KeepAliveHint {
            timeout: Some(Duration::from_secs(timeout)),
            max,
        };
        let honest = KeepAliveFinding::of(
            hint(1, Some(20)),
            &closed,
            &limit(20, LimitEnd::Announced, &[Some(20), Some(20)]),
        );
        assert_eq!(honest.timeout_true, Some(true));
        assert_eq!(honest.timeout_difference_ms, Some(1));
        assert_eq!(honest.max_counts_down, Some(false));
        assert_eq!(
            (honest.max_true, honest.max_difference),
            (Some(true), Some(0))
        );

        let lying = KeepAliveFinding::of(
            hint(5, None),
            &closed,
            &limit(3, LimitEnd::NotReached, &[None, None]),
        );
        assert_eq!(lying.timeout_true, Some(false));
        assert_eq!(lying.timeout_difference_ms, Some(-3999));
        assert_eq!(lying.max_true, None);

        // Apache: max counts down; 99 left after the first of 100.
        let apache = KeepAliveFinding::of(
            hint(5, Some(99)),
            &closed,
            &limit(100, LimitEnd::Announced, &[Some(99), Some(98)]),
        );
        assert_eq!(apache.max_counts_down, Some(true));
        assert_eq!(apache.promised_requests, Some(100));
        assert_eq!(apache.max_true, Some(true));
    }

    #[test]
    fn connection_close_is_a_token() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("keep-alive, Close"));
        assert!(says_close(&headers));
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        assert!(!says_close(&headers));
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(22), "22nd");
        assert_eq!(ordinal(50), "50th");
    }
}
