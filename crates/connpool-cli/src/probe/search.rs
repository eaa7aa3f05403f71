//! The search both probe modes share: concurrent one-connection probes at
//! chosen idle times, narrowed down to a bracket within a tolerance.
//!
//! What a mode brings (see [`path_idle`](super::path_idle) and
//! [`server`](super::server)): how one probe's client is configured, what
//! its outcomes mean and what they are called ([`Outcome`]), the idle times
//! of round 1 (the [`Plan`]'s grid), and its words. What lives here:
//!
//! * [`probe`]: one probe. A GET (which opens the connection) read to its
//!   end, so the connection goes back to the pool; `planned` idle; a second
//!   GET, which the pool sends on that same connection if it still can. The
//!   idle time reported is measured (from the end of the first response to
//!   the second request's send), not the planned one. What the pool found
//!   at checkout decides the outcome first, else how the second request
//!   ended ([`Failure`]); the mode names either.
//! * [`Bracket`]: what the probes so far say, `(longest idle kept,
//!   shortest idle lost]`, and the [`tolerance`] it must reach:
//!   `max(5 % of its lower end, 50 ms)`.
//! * [`search`]: rounds of concurrent probes.
//!
//! # The search
//!
//! Probes run concurrently, each on its own connection, so probes take as
//! long as the longest of them plus one answer, not their sum. A probe's
//! outcome at idle time `d` settles every longer idle time when the
//! connection was lost, every shorter one when it was kept, and the probes
//! still waiting for those are cancelled.
//!
//! 1. Round 1: probes at every idle time of the grid at once (up to
//!    `--max-wait`, which is probed too). When the one at `d` is kept, the
//!    limit is past `d` and may lie before the next idle time of the grid,
//!    `d'`: probes start at once at idle times evenly between `d` and
//!    `d'`, spaced under the tolerance (at most [`MAX_PROBES_PER_ROUND`]).
//!    They run while the probe at `d'` still waits; if that one is kept
//!    too, they are cancelled and the next interval is filled. With the
//!    limit T between `d` and `d'`, the fill of that interval brackets it
//!    within the tolerance about one answer after `d + T`: round 1 is
//!    usually the only one.
//! 2. Should the bracket still be wider than the tolerance (probes failed,
//!    the limit is under the grid's first idle time), narrowing rounds put
//!    probes evenly inside it, up to [`MAX_ROUNDS`] rounds in all, and a
//!    round starts only while the run stays within three times
//!    `--max-wait`.
//! 3. A mode may ask to stop at once when a probe *dates* the limit
//!    ([`Plan::stop_when_dated`]): a probe that found the server's FIN at
//!    checkout knows from the kernel when it arrived
//!    ([`Client::learned_idle_timeout`]), so the limit is known within a
//!    few milliseconds and no bracket needs narrowing.
//!
//! The price of not waiting for `d'` before looking inside (which would
//! take about `d' + T`): the fills of the intervals the probes survive, a
//! few connections of one request each per idle time of the grid.

use std::fmt::Write as _;
use std::future::Future;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connpool::http::{Client, KeepAliveHint};
use connpool::{Error, ErrorKind};
use http::Uri;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::task::{AbortHandle, JoinSet};

use super::{format_duration, ms};

/// The narrowest bracket worth measuring.
pub(super) const MIN_TOLERANCE: Duration = Duration::from_millis(50);
/// The bracket's target width, as a fraction of its lower end.
const TOLERANCE_FRACTION: f64 = 0.05;
/// Probes of one narrowing round, at most: enough to narrow a factor-of-two
/// bracket to 5 % in one round (20 needed).
pub(super) const MAX_PROBES_PER_ROUND: u32 = 24;
/// Rounds in all, round 1 included.
const MAX_ROUNDS: u32 = 3;

/// What one probe found, in a mode's own words.
pub(super) trait Outcome: Copy + Eq + std::fmt::Debug + Send + 'static {
    /// Answered on the reused connection: it survived the idle time.
    const KEPT: Self;
    /// The probe failed for another reason, and says nothing.
    const FAILED: Self;

    /// A short lowercase word for the JSON report.
    fn as_str(self) -> &'static str;

    /// What the pool found at the second request's checkout, from
    /// `client`'s evictions: the idle connection already closed (how, and
    /// when the server closed it if the pool learned that), or `None` when
    /// it was there to be used.
    fn at_checkout(client: &Client, url: &Uri) -> Option<(Self, Option<Duration>)>;

    /// The name of `failure`, the end of a second request sent on the
    /// reused connection.
    fn failed_with(failure: Failure) -> Self;

    /// The connection survived the idle time.
    fn kept(self) -> bool {
        self == Self::KEPT
    }

    /// The connection did not survive the idle time: every outcome but
    /// [`KEPT`](Self::KEPT) and [`FAILED`](Self::FAILED), which says
    /// nothing.
    fn lost(self) -> bool {
        self != Self::KEPT && self != Self::FAILED
    }
}

/// How a second request on the reused connection failed, in the terms
/// both modes share (each names them in its own words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// [`ErrorKind::DeadPath`]: nothing of the request was acknowledged
    /// and the kernel's retransmissions went unanswered.
    DeadPath,
    /// A reset, or a broken pipe, after the request was written.
    Reset,
    /// EOF before any response byte: a close crossed the request.
    Eof,
    /// No answer within the request timeout (or the kernel gave up on the
    /// unacknowledged request), without proof of a dead path.
    NoAnswer,
    /// Anything else: the probe says nothing.
    Other,
}

impl Failure {
    fn of(err: &Error) -> Failure {
        match err.kind() {
            ErrorKind::DeadPath => Failure::DeadPath,
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => Failure::Reset,
            ErrorKind::UnexpectedEof => Failure::Eof,
            ErrorKind::ResponseHeaderTimeout | ErrorKind::RequestTimeout => Failure::NoAnswer,
            ErrorKind::Io if kernel_timed_out(err) => Failure::NoAnswer,
            _ => Failure::Other,
        }
    }
}

/// One probe, done.
#[derive(Clone, Debug)]
pub(super) struct Probe<O> {
    pub(super) round: u32,
    /// The idle time it was meant to wait.
    pub(super) planned: Duration,
    /// The idle time it waited: from the end of the first response to the
    /// second request's send. Zero when the first request failed.
    pub(super) idle: Duration,
    pub(super) outcome: O,
    /// From the second request's send to its outcome.
    pub(super) answered_in: Duration,
    /// When the server's close was seen at checkout with a FIN: when the
    /// server closed, as the pool learned it (dated by the kernel).
    pub(super) server_closed_after: Option<Duration>,
    /// What failed, for failed probes and the error outcomes.
    pub(super) error: Option<String>,
}

impl<O: Outcome> Probe<O> {
    /// A probe that has not found anything yet: `outcome` until told.
    pub(super) fn new(round: u32, planned: Duration, outcome: O) -> Probe<O> {
        Probe {
            round,
            planned,
            idle: Duration::ZERO,
            outcome,
            answered_in: Duration::ZERO,
            server_closed_after: None,
            error: None,
        }
    }

    /// Whether this probe dates the limit.
    fn dated(&self) -> bool {
        self.outcome.lost() && self.server_closed_after.is_some()
    }
}

/// A GET read to its end (so its connection goes back to the pool).
/// Returns the response's `Keep-Alive` hint.
pub(super) async fn exchange(client: &Client, url: &Uri) -> Result<KeepAliveHint, Error> {
    let resp = client.get(url.clone()).send().await?;
    let hint = KeepAliveHint::from_headers(resp.headers());
    resp.bytes().await?;
    Ok(hint)
}

/// The request before the search, on `client`: can the server be
/// reached, and does it keep connections open? Returns its `Keep-Alive`
/// hint; `None` when it cannot measure, once it said why on stderr.
pub(super) async fn preflight(
    client: &Client,
    url: &Uri,
    progress: &Progress,
) -> Option<KeepAliveHint> {
    progress.message(format!("connecting to {url}"));
    let message = match exchange(client, url).await {
        Ok(hint) if client.stats().counters.returned > 0 => return Some(hint),
        Ok(_) => format!(
            "cannot measure: {url} does not keep connections open (it closed the \
             connection after the response, or said `Connection: close`), so no \
             connection ever sits idle"
        ),
        Err(err) => format!("cannot measure: the request to {url} failed: {err}"),
    };
    progress.clear();
    eprintln!("connpool probe: {message}");
    None
}

/// One probe on `client`, which holds one connection at most: a GET,
/// `planned` idle, a GET on the same connection, and what that found.
pub(super) async fn probe<O: Outcome>(
    client: &Client,
    url: &Uri,
    round: u32,
    planned: Duration,
) -> Probe<O> {
    let mut probe = Probe::new(round, planned, O::FAILED);
    let reuse = match idle_then_request(client, url, planned).await {
        Ok(reuse) => reuse,
        Err(why) => {
            probe.error = Some(why);
            return probe;
        }
    };
    probe.idle = reuse.idle;
    probe.answered_in = reuse.answered_in;
    if let Some((closed, closed_after)) = O::at_checkout(client, url) {
        // Found closed at checkout: whatever the new connection did.
        probe.outcome = closed;
        probe.server_closed_after = closed_after;
        return probe;
    }
    probe.outcome = match reuse.second {
        Ok(true) => O::KEPT,
        Ok(false) => {
            probe.error = Some("answered on a new connection, for no reason the pool saw".into());
            O::FAILED
        }
        Err(err) => {
            probe.error = Some(err.to_string());
            O::failed_with(Failure::of(&err))
        }
    };
    probe
}

/// The second request of a probe, and when.
struct Reuse {
    /// From the end of the first response to the second request's send.
    idle: Duration,
    /// From the second request's send to its outcome.
    answered_in: Duration,
    /// Whether the answer came on the reused connection, or what failed.
    second: Result<bool, Error>,
}

/// One probe's requests on `client` (one connection at most): a GET, the
/// idle time, a GET. `Err` says why the probe could not even start: the
/// first request failed, or its connection was not kept.
async fn idle_then_request(client: &Client, url: &Uri, planned: Duration) -> Result<Reuse, String> {
    if let Err(err) = exchange(client, url).await {
        return Err(format!("the first request failed: {err}"));
    }
    if client.stats().counters.returned == 0 {
        return Err("the server closed the connection after the response".into());
    }
    let idle_from = Instant::now();
    tokio::time::sleep_until((idle_from + planned).into()).await;
    let sent = Instant::now();
    let idle = sent - idle_from;

    let second = match client.get(url.clone()).send().await {
        Ok(resp) => {
            let reused = resp.connection_reused();
            // The head decided; a body that fails later changes nothing.
            let _ = resp.bytes().await;
            Ok(reused)
        }
        Err(err) => Err(err),
    };
    Ok(Reuse {
        idle,
        answered_in: sent.elapsed(),
        second,
    })
}

/// Whether `err` is the kernel giving up on unacknowledged data
/// (`ETIMEDOUT`, after the `TCP_USER_TIMEOUT`).
fn kernel_timed_out(err: &Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = cause.source();
    }
    false
}

/// What the probes so far say.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bracket<O> {
    /// The longest idle time kept, below `lost`.
    pub(super) kept: Option<Duration>,
    /// The shortest idle time lost, and how.
    pub(super) lost: Option<(Duration, O)>,
    /// Probes kept at an idle time at or past `lost`: the limit is not
    /// sharp (a middlebox that sweeps its table now and then, a server
    /// whose timer is coarse).
    pub(super) inconsistent: usize,
}

impl<O: Outcome> Bracket<O> {
    pub(super) fn of(probes: &[Probe<O>]) -> Bracket<O> {
        let lost = probes
            .iter()
            .filter(|p| p.outcome.lost())
            .min_by_key(|p| p.idle)
            .map(|p| (p.idle, p.outcome));
        let kept_below = |p: &&Probe<O>| lost.is_none_or(|(at, _)| p.idle < at);
        let kept_probes = probes.iter().filter(|p| p.outcome.kept());
        Bracket {
            kept: kept_probes.clone().filter(kept_below).map(|p| p.idle).max(),
            lost,
            inconsistent: kept_probes.filter(|p| !kept_below(p)).count(),
        }
    }

    /// The width the search aims for.
    pub(super) fn tolerance(&self) -> Duration {
        tolerance(self.kept.unwrap_or_default())
    }

    /// Whether the bracket is as narrow as it needs to be (or cannot be
    /// narrowed: nothing was lost).
    pub(super) fn converged(&self) -> bool {
        match self.lost {
            None => true,
            Some((lost, _)) => lost - self.kept.unwrap_or_default() <= self.tolerance(),
        }
    }

    /// The idle times of the next round, evenly inside the bracket; `None`
    /// when it is narrow enough.
    fn next_round(&self) -> Option<Vec<Duration>> {
        if self.converged() {
            return None;
        }
        let (lost, _) = self.lost?;
        let idles = fill(self.kept.unwrap_or_default(), lost);
        (!idles.is_empty()).then_some(idles)
    }

    /// The bracket as the JSON reports give it.
    pub(super) fn in_ms(&self) -> BracketMs {
        BracketMs {
            kept: self.kept.map(ms),
            lost: self.lost.map(|(at, _)| ms(at)),
        }
    }
}

/// The longest idle time after which the connection still worked, the
/// shortest after which it did not (`null`: none), in ms.
#[derive(Serialize)]
pub(super) struct BracketMs {
    kept: Option<u64>,
    lost: Option<u64>,
}

/// When no probe said anything (every one failed): says so on stderr,
/// with the first error met, and returns the exit status for it.
pub(super) fn every_probe_failed<O>(probes: &[Probe<O>]) -> ExitCode {
    let why = probes
        .iter()
        .find_map(|p| p.error.clone())
        .unwrap_or_else(|| "no probe finished".into());
    eprintln!("connpool probe: cannot measure: every probe failed ({why})");
    ExitCode::FAILURE
}

/// The width the search aims for when the longest idle time kept is
/// `kept`: 5 % of it, at least 50 ms.
pub(super) fn tolerance(kept: Duration) -> Duration {
    kept.mul_f64(TOLERANCE_FRACTION).max(MIN_TOLERANCE)
}

/// Idle times evenly strictly between `kept` and `lost`, spaced under the
/// tolerance (at most [`MAX_PROBES_PER_ROUND`] of them), in whole ms.
pub(super) fn fill(kept: Duration, lost: Duration) -> Vec<Duration> {
    if lost <= kept {
        return Vec::new();
    }
    let width = lost - kept;
    // `width / tolerance` steps would do if every probe waited exactly its
    // planned time; they wait a millisecond or two more, so one more probe
    // keeps the steps under the tolerance.
    let steps = (width.as_secs_f64() / tolerance(kept).as_secs_f64()).ceil() as u32;
    let k = steps.clamp(1, MAX_PROBES_PER_ROUND);
    let mut idles: Vec<Duration> = (1..=k)
        .map(|i| {
            let at = kept + width * i / (k + 1);
            Duration::from_millis(at.as_millis() as u64)
        })
        .filter(|&at| at > kept && at < lost)
        .collect();
    idles.dedup();
    idles
}

/// What a search is to do.
pub(super) struct Plan {
    /// The URL every probe requests.
    pub(super) url: Uri,
    /// Round 1's idle times, ascending; the last is `max_wait`.
    pub(super) grid: Vec<Duration>,
    /// `--max-wait`: no round starts that would end past three times it.
    pub(super) max_wait: Duration,
    /// Stop at once when a probe dates the limit (see the module docs).
    pub(super) stop_when_dated: bool,
}

/// What a search found.
pub(super) struct Searched<O> {
    /// Every probe that finished (cancelled ones are not here).
    pub(super) probes: Vec<Probe<O>>,
    pub(super) rounds: u32,
}

/// Runs the search of `plan`; `probe(url, round, planned idle)` is one
/// probe. `started` is when the run began (the three-times-`max_wait`
/// bound counts from there).
pub(super) async fn search<O, F, Fut>(
    plan: &Plan,
    started: Instant,
    probe: F,
    progress: &Progress,
) -> Searched<O>
where
    O: Outcome,
    F: Fn(Uri, u32, Duration) -> Fut,
    Fut: Future<Output = Probe<O>> + Send + 'static,
{
    // A probe runs as a task of its own, with its own copy of the URL.
    let probe = |round: u32, planned: Duration| probe(plan.url.clone(), round, planned);
    let mut probes: Vec<Probe<O>> = Vec::new();
    let mut idles = plan.grid.clone();
    let mut rounds = 0;
    loop {
        rounds += 1;
        progress.start(rounds, &idles);
        let grid: &[Duration] = if rounds == 1 { &plan.grid } else { &[] };
        let dated = run_round(
            &probe,
            rounds,
            &idles,
            grid,
            plan.stop_when_dated,
            &mut probes,
            progress,
        )
        .await;
        if dated {
            return Searched { probes, rounds };
        }
        let bracket = Bracket::of(&probes);
        let Some(next) = bracket.next_round() else {
            break;
        };
        let longest = next.iter().max().copied().unwrap_or_default();
        if rounds >= MAX_ROUNDS || started.elapsed() + longest > plan.max_wait * 3 {
            break;
        }
        idles = next;
    }
    Searched { probes, rounds }
}

/// A probe of the current round that is still waiting.
struct Running {
    planned: Duration,
    handle: AbortHandle,
    cancelled: bool,
}

/// One round of concurrent probes: those at `idles` from the start, and,
/// when `grid` is not empty, the ones filled in between two idle times of
/// the grid as soon as the shorter one was kept (round 1; see the module
/// docs). Probes are cancelled once their outcome is certain: those waiting
/// longer than an idle time found lost, shorter than one found kept. Adds
/// the finished probes to `probes`. Returns `true` when it stopped because
/// a probe dated the limit (with `stop_when_dated`); the probes still
/// running are then cancelled.
async fn run_round<O, F, Fut>(
    probe: &F,
    round: u32,
    idles: &[Duration],
    grid: &[Duration],
    stop_when_dated: bool,
    probes: &mut Vec<Probe<O>>,
    progress: &Progress,
) -> bool
where
    O: Outcome,
    F: Fn(u32, Duration) -> Fut,
    Fut: Future<Output = Probe<O>> + Send + 'static,
{
    let mut set = JoinSet::new();
    let mut running: Vec<Running> = Vec::new();
    let spawn = |set: &mut JoinSet<Probe<O>>, running: &mut Vec<Running>, planned: Duration| {
        let handle = set.spawn(probe(round, planned));
        running.push(Running {
            planned,
            handle,
            cancelled: false,
        });
    };
    for &idle in idles {
        spawn(&mut set, &mut running, idle);
    }
    // By planned idle times: what the cancelling goes by.
    let mut kept: Option<Duration> = None;
    let mut lost: Option<Duration> = None;
    let mut finished = 0;
    while let Some(joined) = set.join_next().await {
        let probe = match joined {
            Ok(probe) => probe,
            Err(err) if err.is_cancelled() => continue,
            Err(err) => {
                eprintln!("connpool probe: a probe failed: {err}");
                continue;
            }
        };
        if stop_when_dated && probe.dated() {
            probes.push(probe);
            // Dropping `set` cancels the probes still running.
            return true;
        }
        let planned = probe.planned;
        let mut cancel = |certain: &dyn Fn(Duration) -> bool| {
            for r in running.iter_mut() {
                if certain(r.planned) && !r.cancelled && !r.handle.is_finished() {
                    r.handle.abort();
                    r.cancelled = true;
                }
            }
        };
        if probe.outcome.lost() && lost.is_none_or(|l| planned < l) {
            lost = Some(planned);
            cancel(&|d| d > planned);
        } else if probe.outcome.kept() && kept.is_none_or(|k| planned > k) {
            kept = Some(planned);
            cancel(&|d| d < planned);
            // Round 1: the limit may lie before the next idle time of the
            // grid; look there now rather than after it.
            if grid.contains(&planned) {
                if let Some(&next) = grid.iter().find(|&&g| g > planned) {
                    let upper = lost.map_or(next, |l| l.min(next));
                    for idle in fill(planned, upper) {
                        spawn(&mut set, &mut running, idle);
                    }
                }
            }
        }
        finished += 1;
        probes.push(probe);
        let cancelled = running.iter().filter(|r| r.cancelled).count();
        progress.round(round, running.len(), finished, cancelled, probes);
    }
    false
}

/// The progress line on stderr, when it is a terminal: the search's
/// state, and whatever else a mode measures meanwhile (`extra`). Clones
/// share the line.
#[derive(Clone)]
pub(super) struct Progress {
    bar: ProgressBar,
    /// The search's part and the extra part of the message.
    parts: Arc<Mutex<(String, String)>>,
}

impl Progress {
    pub(super) fn new(json: bool) -> Progress {
        let parts = Arc::new(Mutex::new((String::new(), String::new())));
        if json || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                parts,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress { bar, parts }
    }

    /// Sets the search's part of the message.
    pub(super) fn message(&self, message: String) {
        self.update(|parts| parts.0 = message);
    }

    /// Sets the extra part of the message.
    pub(super) fn extra(&self, extra: String) {
        self.update(|parts| parts.1 = extra);
    }

    fn update(&self, change: impl FnOnce(&mut (String, String))) {
        if self.bar.is_hidden() {
            return;
        }
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut parts);
        let message = match (parts.0.is_empty(), parts.1.is_empty()) {
            (_, true) => parts.0.clone(),
            (true, false) => parts.1.clone(),
            (false, false) => format!("{} | {}", parts.0, parts.1),
        };
        self.bar.set_message(message);
    }

    fn start(&self, round: u32, idles: &[Duration]) {
        if self.bar.is_hidden() {
            return;
        }
        let longest = idles.iter().max().copied().unwrap_or_default();
        self.message(format!(
            "round {round}: {} {}, idle {}–{}",
            idles.len(),
            if idles.len() == 1 { "probe" } else { "probes" },
            format_duration(idles.iter().min().copied().unwrap_or_default()),
            format_duration(longest),
        ));
    }

    fn round<O: Outcome>(
        &self,
        round: u32,
        total: usize,
        finished: usize,
        cancelled: usize,
        probes: &[Probe<O>],
    ) {
        if self.bar.is_hidden() {
            return;
        }
        let b = Bracket::of(probes);
        let waiting = total.saturating_sub(finished + cancelled);
        let mut msg = format!("round {round}: {finished} done, {waiting} waiting");
        if let Some(kept) = b.kept {
            let _ = write!(msg, "; kept {}", format_duration(kept));
        }
        if let Some((lost, outcome)) = b.lost {
            let _ = write!(
                msg,
                "; lost by {} ({})",
                format_duration(lost),
                outcome.as_str()
            );
        }
        self.message(msg);
    }

    pub(super) fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Seen {
        Kept,
        Lost,
        Failed,
    }

    impl Outcome for Seen {
        const KEPT: Seen = Seen::Kept;
        const FAILED: Seen = Seen::Failed;
        fn as_str(self) -> &'static str {
            "test"
        }
        fn at_checkout(_: &Client, _: &Uri) -> Option<(Seen, Option<Duration>)> {
            None
        }
        fn failed_with(_: Failure) -> Seen {
            Seen::Lost
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn probe(idle: u64, outcome: Seen) -> Probe<Seen> {
        let mut p = Probe::new(1, ms(idle), outcome);
        p.idle = ms(idle);
        p
    }

    #[test]
    fn fills_are_spaced_under_the_tolerance() {
        for (kept, lost) in [(0, 250), (1000, 2000), (2000, 4000), (32_000, 60_000)] {
            let idles = fill(ms(kept), ms(lost));
            let mut edges = vec![ms(kept)];
            edges.extend(&idles);
            edges.push(ms(lost));
            let tolerance = tolerance(ms(kept));
            assert!(
                edges
                    .windows(2)
                    .all(|w| w[0] < w[1] && w[1] - w[0] < tolerance),
                "({kept}, {lost}]: {idles:?}"
            );
            assert!(idles.len() <= MAX_PROBES_PER_ROUND as usize);
        }
        assert_eq!(fill(ms(1000), ms(2000)).len(), 20);
        assert!(fill(ms(2000), ms(2000)).is_empty());
    }

    #[test]
    fn the_bracket_is_the_longest_kept_below_the_shortest_lost() {
        let probes = [
            probe(500, Seen::Kept),
            probe(1900, Seen::Kept),
            probe(1000, Seen::Failed),
            probe(2000, Seen::Lost),
            probe(2100, Seen::Kept),
            probe(4000, Seen::Lost),
        ];
        let b = Bracket::of(&probes);
        assert_eq!(b.kept, Some(ms(1900)));
        assert_eq!(b.lost, Some((ms(2000), Seen::Lost)));
        assert_eq!(b.inconsistent, 1);
        assert_eq!(b.tolerance(), ms(95));
        assert!(!b.converged());
        assert_eq!(b.next_round().map(|r| r.len()), Some(2));

        let kept_all = Bracket::of(&[probe(250, Seen::Kept), probe(1000, Seen::Kept)]);
        assert_eq!(kept_all.kept, Some(ms(1000)));
        assert_eq!(kept_all.lost, None);
        assert!(kept_all.converged());
        assert_eq!(kept_all.next_round(), None);
    }

    #[test]
    fn a_dated_close_is_a_lost_probe_with_a_date() {
        let mut p = probe(1200, Seen::Lost);
        assert!(!p.dated());
        p.server_closed_after = Some(ms(1001));
        assert!(p.dated());
        let mut kept = probe(900, Seen::Kept);
        kept.server_closed_after = Some(ms(1));
        assert!(!kept.dated());
    }
}
