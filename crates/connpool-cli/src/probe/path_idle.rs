//! `connpool probe --path-idle URL`: how long the network path keeps an
//! idle TCP flow, and what it does with a flow it forgot.
//!
//! Load balancers, NAT gateways and stateful firewalls keep a table of the
//! flows they forward and forget a flow that stayed idle for some time T
//! (AWS NLB: 350 s, many NATs: minutes, some firewalls: less). From then on
//! they drop the flow's packets without a word, or answer them with an RST.
//! Neither end is told, so a pooled connection that sat idle longer than T
//! looks fine until a request is written into it. This probe measures T
//! from the client side.
//!
//! # One probe
//!
//! A probe is one [`Client`] with one connection. It sends a GET (which
//! opens the connection), reads the response to its end (the connection
//! goes back to the pool), stays idle for `d`, then sends a second GET,
//! which the pool sends on that same connection. What happens tells what
//! the path did with a flow idle for `d`:
//!
//! * answered on the reused connection: the path (and the server) kept
//!   the flow — `kept`;
//! * [`ErrorKind::DeadPath`](connpool::ErrorKind::DeadPath): nothing of the request was acknowledged and
//!   the kernel's retransmissions went unanswered — the path forgot the
//!   flow and drops its packets silently (`drop`); the client's dead-path
//!   check finds that about 0.6–1 s after the write on a network with a
//!   round trip under 100 ms;
//! * a reset (or broken pipe) on the reused connection after the write:
//!   the path forgot the flow and answers with an RST (`reset`), or the
//!   server reset it;
//! * the pool found the idle connection closed by the server at checkout
//!   (a FIN, an RST, or an unsolicited response waiting), or the reused
//!   connection ended in EOF: the *server* closed it before the path forgot
//!   it (`server_closed`). That bounds what can be measured: the path's
//!   timeout is longer than the server's, and the server's is reported
//!   instead (dated by the kernel when the pool saw a FIN, see
//!   [`Client::learned_idle_timeout`]);
//! * no answer within the request timeout, without proof of a dead path
//!   (`no_answer`): something forgot the flow but acknowledged the request
//!   (a proxy terminating TCP), or `TCP_INFO` is unavailable.
//!
//! The probe's client is configured so that nothing but the path and the
//! server decides:
//!
//! * **TCP keepalive off.** A keepalive probe is a packet of the flow: it
//!   refreshes the middlebox's timer (connpool's default sends one after
//!   15 s idle), so the flow would never be forgotten and T would hide.
//!   `TCP_USER_TIMEOUT` follows keepalive by default (`Auto`), which means
//!   none without it, leaving a dead path to the kernel's 15 minutes: the
//!   probe sets it to its request timeout instead. The dead-path check (on
//!   by default, 500 ms) decides long before; the bound still stops the
//!   kernel retransmitting into a dead path for a connection the probe
//!   has closed.
//! * **No retries** ([`ReplayPolicy::never`]): the failure of the second
//!   request must reach the probe, not be healed by a silent resend.
//! * **No client-side expiry**: no pool idle timeout, no lifetime, and the
//!   server's `Keep-Alive: timeout=N` hint is not obeyed (it is reported):
//!   the connection must reach the second request, whatever its idle time.
//!   Learning the server's idle timeout stays on: a probe's client makes
//!   one checkout of an idle connection, so what it learns there changes
//!   nothing, and it dates a server's close precisely.
//! * Every request is bounded by [`REQUEST_TIMEOUT`].
//!
//! # The search
//!
//! The search is the one both modes share ([`search`]):
//! probes run concurrently, each on its own connection (its own flow), so
//! probes take as long as the longest of them plus one answer, not their
//! sum. A probe's outcome at idle time `d` settles every longer idle time
//! when the flow was lost, every shorter one when it was kept, and the
//! probes still waiting for those are cancelled. Here:
//!
//! 1. One request first, to fail fast and clearly when the server cannot
//!    be reached or does not keep connections open.
//! 2. Round 1: probes at idle times doubling from 250 ms up to
//!    `--max-wait` (which is probed too). When the one at `d` is kept, T is
//!    past `d` and may lie before the next one, `2d`: probes start at once
//!    at idle times evenly between `d` and `2d`, spaced under the
//!    tolerance (at most
//!    [`MAX_PROBES_PER_ROUND`](super::search::MAX_PROBES_PER_ROUND)). They
//!    run while the probe at `2d` still waits; if that one is kept too,
//!    they are cancelled and the next interval is filled. With T between
//!    `d` and `2d`, the fill of that interval brackets it within the
//!    tolerance about one answer after `d + T`: round 1 is usually the
//!    only one.
//! 3. Should the bracket (longest idle kept, shortest idle lost] still be
//!    wider than the tolerance (probes failed, T under 250 ms), narrowing
//!    rounds put probes evenly inside it, up to three rounds in all, and a
//!    round starts only while the run stays within three times
//!    `--max-wait`.
//!
//! So the run takes about `d + T ≤ 2T` plus one answer (for a silent
//! drop, about 0.6–1 s), at most about three times `--max-wait` plus the
//! answers; with no limit on the path, `--max-wait` plus one round trip.
//! The price of not waiting for `2d` before looking inside (which would
//! take about `3T`): some 30 probes open at a time at most, and about 20
//! connections of one request each per doubling of the idle time that the
//! path survived (some 160 in all for T around a minute).
//!
//! # Tolerance
//!
//! The search stops when the bracket is at most `max(5 % of its lower end,
//! 50 ms)` wide ([`tolerance`](super::search::tolerance)). Below 50 ms the
//! clocks involved (the middlebox's timer, the scheduling of the probe's
//! timers, a delayed ACK that refreshes the flow up to 40 ms after the
//! response) make the figures noise. The idle times reported are measured
//! (from the end of the first response to the second request's send), not
//! the planned ones. The flow was last refreshed by the client's ACK of the
//! first response, which the kernel may delay up to ~40 ms: a measured T
//! can come out that much above the middlebox's setting, never below it.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use connpool::EvictReason;
use connpool::http::{Client, ClientConfig, KeepAliveHint, ReplayPolicy};
use connpool::tcp::UserTimeout;
use http::Uri;
use serde::Serialize;

use super::search::{
    self, Bracket, BracketMs, Failure, Outcome as _, Plan, Progress, every_probe_failed, preflight,
};
use super::{
    ProbeArgs, format_duration, format_setting, ms, one_connection_config, print_report, tally,
    typed_step,
};

/// Bounds each request of a probe: connecting, writing, waiting for the
/// head (also the `TCP_USER_TIMEOUT`), reading the body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest idle time of round 1.
const FIRST_IDLE: Duration = Duration::from_millis(250);
/// How much of the last idle time kept the recommendation suggests.
const SAFETY_FACTOR: f64 = 0.8;

/// What one probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Answered on the reused connection.
    Kept,
    /// A dead path: the path forgot the flow and drops its packets.
    Dropped,
    /// Reset on the reused connection after the request was written.
    Reset,
    /// The server closed the idle connection first.
    ServerClosed,
    /// No answer within the request timeout, no dead path proven.
    NoAnswer,
    /// Something else failed: the probe says nothing about the path.
    Failed,
}

impl search::Outcome for Outcome {
    const KEPT: Outcome = Outcome::Kept;
    const FAILED: Outcome = Outcome::Failed;

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Kept => "kept",
            Outcome::Dropped => "drop",
            Outcome::Reset => "reset",
            Outcome::ServerClosed => "server_closed",
            Outcome::NoAnswer => "no_answer",
            Outcome::Failed => "failed",
        }
    }

    /// Any close by the server found at checkout, dated when the pool
    /// learned when it came.
    fn at_checkout(client: &Client, url: &Uri) -> Option<(Outcome, Option<Duration>)> {
        if closed_by_server(client) == 0 {
            return None;
        }
        Some((
            Outcome::ServerClosed,
            client.learned_idle_timeout(url.clone()),
        ))
    }

    fn failed_with(failure: Failure) -> Outcome {
        match failure {
            Failure::DeadPath => Outcome::Dropped,
            Failure::Reset => Outcome::Reset,
            // The server closed it as the request arrived.
            Failure::Eof => Outcome::ServerClosed,
            Failure::NoAnswer => Outcome::NoAnswer,
            Failure::Other => Outcome::Failed,
        }
    }
}

/// One probe, done.
type Probe = search::Probe<Outcome>;

/// A client for one probe; see the module docs for each setting.
fn probe_client() -> Client {
    Client::builder()
        .config(ClientConfig {
            learn_idle_timeout: true,
            replay: ReplayPolicy::never(),
            tcp_keepalive: None,
            tcp_user_timeout: UserTimeout::After(REQUEST_TIMEOUT),
            dead_path_check: ClientConfig::default().dead_path_check,
            ..one_connection_config(REQUEST_TIMEOUT)
        })
        .build()
}

/// Evictions that mean the server ended the idle connection.
fn closed_by_server(client: &Client) -> u64 {
    let counters = client.stats().counters;
    [
        EvictReason::ServerClosed,
        EvictReason::ServerReset,
        EvictReason::UnexpectedData,
    ]
    .into_iter()
    .map(|reason| counters.evicted(reason))
    .sum()
}

/// One probe (see [`search::probe`]), on a client of its own.
async fn probe(url: Uri, round: u32, planned: Duration) -> Probe {
    search::probe(&probe_client(), &url, round, planned).await
}

/// Round 1's idle times: 250 ms doubling, then `max_wait` itself.
fn doubling(max_wait: Duration) -> Vec<Duration> {
    let mut idles = Vec::new();
    let mut at = FIRST_IDLE;
    while at < max_wait {
        idles.push(at);
        at *= 2;
    }
    idles.push(max_wait);
    idles
}

/// The result, as printed with `--json`.
#[derive(Serialize)]
struct Report {
    url: String,
    mode: &'static str,
    max_wait_ms: u64,
    /// `drop`, `reset`, `no_answer`: the path forgot the flow, and this is
    /// what it did with its packets; `server_closed`: the server closed the
    /// idle connection first; `kept`: kept for the whole bound.
    behaviour: &'static str,
    bracket_ms: BracketMs,
    tolerance_ms: u64,
    /// Whether the bracket is within the tolerance.
    converged: bool,
    /// For `server_closed`: the server's idle timeout, as dated by the
    /// kernel (`null` when it could not be).
    server_idle_close_ms: Option<u64>,
    /// The server's `Keep-Alive: timeout=N`, if it sends one.
    keep_alive_hint_s: Option<u64>,
    summary: String,
    recommendation: String,
    rounds: u32,
    probes_run: usize,
    /// Probes kept at or past the shortest idle time lost.
    inconsistent_probes: usize,
    probes: Vec<ProbeReport>,
    wall_time_s: f64,
}

#[derive(Serialize)]
struct ProbeReport {
    round: u32,
    planned_idle_ms: u64,
    idle_ms: u64,
    outcome: &'static str,
    answered_in_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs `connpool probe --path-idle` and returns its exit status.
pub async fn run(args: &ProbeArgs) -> ExitCode {
    let started = Instant::now();
    let max_wait = args.max_wait();
    let progress = Progress::new(args.json);
    let Some(hint) = preflight(&probe_client(), &args.url, &progress).await else {
        return ExitCode::FAILURE;
    };

    let plan = Plan {
        url: args.url.clone(),
        grid: doubling(max_wait),
        max_wait,
        stop_when_dated: false,
    };
    let searched = search::search(&plan, started, probe, &progress).await;
    progress.clear();
    let wall = started.elapsed();
    let (probes, rounds) = (searched.probes, searched.rounds);
    let bracket = Bracket::of(&probes);
    if bracket.kept.is_none() && bracket.lost.is_none() {
        return every_probe_failed(&probes);
    }
    let report = report(args, &probes, bracket, hint, rounds, wall);
    print_report(&report, args.json, || format_report(&report, &probes))
}

fn report(
    args: &ProbeArgs,
    probes: &[Probe],
    bracket: Bracket<Outcome>,
    hint: KeepAliveHint,
    rounds: u32,
    wall: Duration,
) -> Report {
    let max_wait = args.max_wait();
    let server_close = probes.iter().filter_map(|p| p.server_closed_after).min();
    let behaviour = bracket.lost.map_or("kept", |(_, outcome)| outcome.as_str());
    let (summary, recommendation) = words(bracket, server_close, max_wait);
    let mut sorted: Vec<&Probe> = probes.iter().collect();
    sorted.sort_by_key(|p| (p.round, p.planned));
    Report {
        url: args.url.to_string(),
        mode: "path_idle",
        max_wait_ms: ms(max_wait),
        behaviour,
        bracket_ms: bracket.in_ms(),
        tolerance_ms: ms(bracket.tolerance()),
        converged: bracket.converged(),
        server_idle_close_ms: (behaviour == "server_closed")
            .then_some(server_close)
            .flatten()
            .map(ms),
        keep_alive_hint_s: hint.timeout.map(|t| t.as_secs()),
        summary,
        recommendation,
        rounds,
        probes_run: probes.len(),
        inconsistent_probes: bracket.inconsistent,
        probes: sorted
            .into_iter()
            .map(|p| ProbeReport {
                round: p.round,
                planned_idle_ms: ms(p.planned),
                idle_ms: ms(p.idle),
                outcome: p.outcome.as_str(),
                answered_in_ms: ms(p.answered_in),
                error: p.error.clone(),
            })
            .collect(),
        wall_time_s: wall.as_secs_f64(),
    }
}

/// A value a little under `limit`, rounded down to a figure people type
/// into a configuration file.
fn suggestion(limit: Duration) -> Duration {
    let target = limit.mul_f64(SAFETY_FACTOR);
    let unit = typed_step(target);
    let units = (target.as_nanos() / unit.as_nanos()).max(1) as u32;
    unit * units
}

/// The one-line summary and the recommendation.
fn words(
    bracket: Bracket<Outcome>,
    server_close: Option<Duration>,
    max_wait: Duration,
) -> (String, String) {
    let Some((lost, outcome)) = bracket.lost else {
        let kept = bracket.kept.unwrap_or_default();
        let summary = if kept >= max_wait {
            format!(
                "the path kept an idle flow for the whole {} bound",
                format_duration(max_wait)
            )
        } else {
            // The longest probes failed for other reasons.
            format!(
                "the path kept an idle flow for {}, the longest idle time that could be \
                 probed (of the {} bound)",
                format_duration(kept),
                format_duration(max_wait)
            )
        };
        return (
            summary,
            format!(
                "no idle limit on this path up to {}; to look further, run again with a \
                 larger --max-wait",
                format_duration(max_wait)
            ),
        );
    };
    if outcome == Outcome::ServerClosed {
        let around = server_close.unwrap_or(lost);
        let summary = match bracket.kept {
            Some(kept) => format!(
                "the server closed idle connections after ~{} (kept {}, closed by {}) \
                 before the path forgot them; the path kept idle flows for at least {}",
                format_duration(around),
                format_duration(kept),
                format_duration(lost),
                format_duration(kept),
            ),
            None => format!(
                "the server closed idle connections after ~{} (by {}) before the path \
                 forgot them",
                format_duration(around),
                format_duration(lost),
            ),
        };
        let limit = bracket.kept.unwrap_or(around).min(around);
        let pool_default = match ClientConfig::default().pool_idle_timeout {
            Some(d) if d < limit => format!(
                "connpool's default ({}) is under it, and connpool learns the server's \
                 timeout from the closes it sees",
                format_setting(Some(d))
            ),
            default => format!(
                "connpool's default ({}) is not, but connpool learns the server's timeout \
                 from the closes it sees",
                format_setting(default)
            ),
        };
        return (
            summary,
            format!(
                "keep the pool idle timeout under the server's: {} or less; {pool_default}",
                format_setting(Some(suggestion(limit)))
            ),
        );
    }
    let fate = match outcome {
        Outcome::Dropped => "forgotten flows are dropped silently".to_string(),
        Outcome::Reset => "forgotten flows are answered with RST".to_string(),
        _ => format!(
            "a request on a forgotten flow got no answer within {}",
            format_duration(REQUEST_TIMEOUT)
        ),
    };
    let summary = match bracket.kept {
        Some(kept) => format!(
            "the path kept an idle flow for {} and forgot it by {}; {fate}",
            format_duration(kept),
            format_duration(lost)
        ),
        None => format!(
            "the path forgot an idle flow within {}; {fate}",
            format_duration(lost)
        ),
    };
    let limit = bracket.kept.unwrap_or(lost);
    let advice = suggestion(limit);
    let config = ClientConfig::default();
    let pool = config.pool_idle_timeout;
    let keepalive = config.tcp_keepalive.map(|k| k.idle);
    let under = |d: Option<Duration>| d.is_some_and(|d| d < limit);
    let (pool_words, keepalive_words) = (
        format!("a pool idle timeout of {}", format_setting(pool)),
        format!("keepalive after {} idle", format_setting(keepalive)),
    );
    let defaults = match (under(pool), under(keepalive)) {
        (true, true) => {
            format!("connpool's defaults ({pool_words}, {keepalive_words}) are both under it")
        }
        (true, false) => format!(
            "connpool's default {pool_words} is under it, but not its {keepalive_words}, \
             which matters for requests that wait that long for their response: lower \
             ClientConfig::tcp_keepalive"
        ),
        (false, true) => format!(
            "connpool's default {keepalive_words} is under it, but not its {pool_words}: \
             lower ClientConfig::pool_idle_timeout"
        ),
        (false, false) => format!(
            "connpool's defaults ({pool_words}, {keepalive_words}) are both too long for \
             this path"
        ),
    };
    (
        summary,
        format!(
            "keep connections from idling that long: a pool idle timeout of {} or less, \
             or TCP keepalive probes after {} idle; {defaults}",
            format_setting(Some(advice)),
            format_setting(Some(advice))
        ),
    )
}

/// The human report.
fn format_report(r: &Report, probes: &[Probe]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", r.summary);
    let _ = writeln!(out, "recommendation: {}", r.recommendation);
    if let Some(hint) = r.keep_alive_hint_s {
        let _ = writeln!(
            out,
            "the server advertises Keep-Alive: timeout={hint} (not obeyed while probing)"
        );
    }
    out.push_str(&tally(r.probes_run, r.rounds, r.wall_time_s));
    if !r.converged {
        let _ = write!(
            out,
            "; the bracket is wider than the {} ms tolerance (the run's time bound)",
            r.tolerance_ms
        );
    }
    if r.inconsistent_probes > 0 {
        let _ = write!(
            out,
            "; {} probes were kept past the first loss: the path's timeout is not sharp",
            r.inconsistent_probes
        );
    }
    out.push('\n');
    let failed = probes
        .iter()
        .filter(|p| p.outcome == Outcome::Failed)
        .count();
    if failed > 0 {
        let example = probes
            .iter()
            .filter(|p| p.outcome == Outcome::Failed)
            .find_map(|p| p.error.as_deref())
            .unwrap_or("");
        let _ = writeln!(
            out,
            "{failed} {} said nothing about the path (e.g. {example})",
            if failed == 1 { "probe" } else { "probes" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn round_one_doubles_up_to_the_bound() {
        let idles: Vec<u64> = doubling(ms(5000))
            .iter()
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(idles, [250, 500, 1000, 2000, 4000, 5000]);
        assert_eq!(doubling(ms(100)), [ms(100)]);
        assert_eq!(doubling(ms(1000)), [ms(250), ms(500), ms(1000)]);
    }

    #[test]
    fn suggestions_are_round_and_under_the_limit() {
        assert_eq!(suggestion(ms(1953)), ms(1500));
        assert_eq!(suggestion(ms(350_000)), Duration::from_secs(280));
        assert_eq!(suggestion(ms(500)), ms(400));
        assert_eq!(format_setting(Some(ms(1500))), "1.5 s");
        assert_eq!(format_setting(Some(Duration::from_secs(15))), "15 s");
        assert_eq!(format_setting(Some(ms(400))), "400 ms");
        assert_eq!(format_setting(None), "none");
    }
}
