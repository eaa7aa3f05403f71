//! The demo's fourth section: a client idle timeout longer than the
//! server's.
//!
//! A server closes a keep-alive connection that stayed idle past its own
//! timeout (Node and Apache: 5 s, nginx 75 s, many services far less). A
//! client that keeps idle connections longer than that (Go and reqwest: 90
//! s) reuses connections the server has closed, after every pause longer
//! than the server's timeout: the keep-alive race, by configuration, and
//! nothing in HTTP/1.1 obliges the server to say what its timeout is.
//!
//! The cure is to expire idle connections *before* the server does, which
//! takes knowing its timeout. connpool's [`Client`] uses the smallest of
//! its own `pool_idle_timeout`, the server's `Keep-Alive: timeout=N` hint
//! minus `keep_alive_margin` when the server sends one, and the timeout it
//! *learned*: the first time its checkout peek finds a server's FIN on an
//! idle connection, the kernel tells when that FIN arrived (`TCP_INFO`),
//! hence how long the server let the connection idle. From then on it
//! expires that server's idle connections a margin before the server would.
//!
//! Two servers, each with a naive client and a connpool client side by
//! side (four runs at once, each with its own server):
//!
//! * one closes connections idle for [`LEARN_SERVER_IDLE`] and says
//!   nothing; requests come after pauses on both sides of it. connpool
//!   should catch one stale connection at checkout (the lesson) and expire
//!   the later ones itself.
//! * one closes after [`HINT_SERVER_IDLE`] and advertises it in a
//!   `Keep-Alive` field; connpool expires at the hint minus its 1 s margin
//!   and never meets a closed connection.
//!
//! The naive client checks nothing and retries nothing: its requests after
//! the long pauses fail. connpool keeps its promise when none of its
//! requests failed.

use std::fmt;
use std::io;
use std::time::Duration;

use connpool::EvictReason;
use connpool::http::{Client, TraceStep};
use connpool_testkit::CloseMode;
use connpool_testkit::http::{HttpServer, HttpServerBuilder};
use serde::Serialize;

use super::Section;
use crate::naive::{NAIVE_IDLE_TIMEOUT, NaiveHttp};
use crate::report::{Align, Table, Tally};

/// How long the first server lets a connection idle before closing it.
const LEARN_SERVER_IDLE: Duration = Duration::from_millis(500);

/// Pauses before each request after the first, against the first server:
/// under and over its timeout in turn, each at least 100 ms away from it
/// and from the timeout connpool learns (a tenth less), so neither side
/// of the race is a matter of luck.
const LEARN_GAPS_MS: [u64; 8] = [300, 700, 250, 900, 350, 750, 200, 800];

/// How long the second server lets a connection idle before closing it.
const HINT_SERVER_IDLE: Duration = Duration::from_secs(2);

/// What the second server's `Keep-Alive: timeout=N` says: the truth.
const HINT_SECS: u64 = 2;

/// Pauses before each request after the first, against the second server:
/// a long one after each request that succeeded (a failed request costs
/// the naive client its connection, so the next one starts afresh), and
/// one short one to show the connection reused within the hint.
const HINT_GAPS_MS: [u64; 3] = [2200, 300, 2200];

/// What the section produced.
#[derive(Debug, Serialize)]
pub struct IdleTimeout {
    /// The naive client's idle timeout, in milliseconds.
    naive_idle_timeout_ms: u64,
    runs: Vec<Run>,
}

/// One client against one server.
#[derive(Debug, Serialize)]
struct Run {
    /// `learned` or `advertised`.
    server: &'static str,
    /// The server's idle timeout, in milliseconds.
    server_idle_timeout_ms: u64,
    /// Its `Keep-Alive: timeout=N`, if it sends one.
    keep_alive_hint_secs: Option<u64>,
    /// `naive` or `connpool`.
    client: &'static str,
    /// The pauses before each request after the first.
    gaps_ms: Vec<u64>,
    /// Requests, outcomes by error kind, connections opened, stale
    /// connections caught at checkout (`null` for the naive client).
    #[serde(flatten)]
    tally: Tally,
    /// Requests that failed.
    failed: u64,
    /// Idle connections connpool expired itself before the server closed
    /// them ([`EvictReason::IdleTimeout`]).
    expired_first: Option<u64>,
    /// Requests connpool sent again after a stale connection failed them.
    retried: Option<u64>,
    /// What connpool learned of the server's idle timeout, in
    /// milliseconds.
    learned_idle_timeout_ms: Option<u64>,
}

/// The section's introduction, printed before it runs.
pub fn intro() -> String {
    format!(
        "The naive client keeps idle connections for {} s, like Go and reqwest. One server \
         closes\nconnections idle for {} ms and says nothing; another closes after {} s and \
         sends\nKeep-Alive: timeout={HINT_SECS}. Requests come after pauses shorter and longer \
         than that.",
        NAIVE_IDLE_TIMEOUT.as_secs(),
        LEARN_SERVER_IDLE.as_millis(),
        HINT_SERVER_IDLE.as_secs(),
    )
}

/// Runs the four runs side by side.
pub async fn run() -> io::Result<IdleTimeout> {
    let learn = HttpServer::builder().idle_close(LEARN_SERVER_IDLE, CloseMode::Fin);
    let hint = HttpServer::builder()
        .idle_close(HINT_SERVER_IDLE, CloseMode::Fin)
        .keep_alive_header(HINT_SECS, None);
    let (naive_learn, connpool_learn, naive_hint, connpool_hint) = tokio::join!(
        run_naive(learn, &LEARN_GAPS_MS),
        run_connpool(learn, &LEARN_GAPS_MS),
        run_naive(hint, &HINT_GAPS_MS),
        run_connpool(hint, &HINT_GAPS_MS),
    );
    let runs = [
        ("learned", None, LEARN_SERVER_IDLE, naive_learn?),
        ("learned", None, LEARN_SERVER_IDLE, connpool_learn?),
        ("advertised", Some(HINT_SECS), HINT_SERVER_IDLE, naive_hint?),
        (
            "advertised",
            Some(HINT_SECS),
            HINT_SERVER_IDLE,
            connpool_hint?,
        ),
    ];
    Ok(IdleTimeout {
        naive_idle_timeout_ms: NAIVE_IDLE_TIMEOUT.as_millis() as u64,
        runs: runs
            .into_iter()
            .map(|(server, hint, idle, mut run)| {
                run.server = server;
                run.keep_alive_hint_secs = hint;
                run.server_idle_timeout_ms = idle.as_millis() as u64;
                run
            })
            .collect(),
    })
}

/// A run with the fields [`run`] fills in left blank.
fn blank(client: &'static str, gaps: &[u64]) -> Run {
    Run {
        server: "",
        server_idle_timeout_ms: 0,
        keep_alive_hint_secs: None,
        client,
        gaps_ms: gaps.to_vec(),
        tally: Tally::default(),
        failed: 0,
        expired_first: None,
        retried: None,
        learned_idle_timeout_ms: None,
    }
}

/// The naive client against a fresh server started from `server`.
async fn run_naive(server: HttpServerBuilder, gaps: &[u64]) -> io::Result<Run> {
    let server = server.start()?;
    let client = NaiveHttp::new(server.addr());
    let mut run = blank("naive", gaps);
    for n in 0..=gaps.len() {
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(gaps[n - 1])).await;
        }
        let outcome = async {
            let resp = client.get("/", &n.to_string()).await?;
            resp.bytes().await
        }
        .await;
        run.tally
            .record(n, outcome.map(drop).map_err(connpool::Error::from_io));
    }
    run.tally.new_conns = client.created();
    run.failed = run.tally.failed();
    Ok(run)
}

/// connpool's client, default settings, against a fresh server started
/// from `server`.
async fn run_connpool(server: HttpServerBuilder, gaps: &[u64]) -> io::Result<Run> {
    let server = server.start()?;
    let client = Client::new();
    let url = server.url("/");
    let mut run = blank("connpool", gaps);
    let mut retried = 0;
    for n in 0..=gaps.len() {
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(gaps[n - 1])).await;
        }
        let outcome = async {
            let resp = client
                .get(&url)
                .header("x-request-id", n.to_string())
                .trace(true)
                .send()
                .await?;
            if let Some(trace) = resp.trace() {
                retried += trace
                    .steps()
                    .iter()
                    .filter(|(_, step)| matches!(step, TraceStep::Retry { .. }))
                    .count() as u64;
            }
            resp.bytes().await.map(drop)
        }
        .await;
        run.tally.record(n, outcome);
    }
    let counters = client.stats().counters;
    run.tally.new_conns = counters.created;
    run.tally.stale_caught = Some(counters.evicted_stale());
    run.expired_first = Some(counters.evicted(EvictReason::IdleTimeout));
    run.retried = Some(retried);
    run.failed = run.tally.failed();
    run.learned_idle_timeout_ms = client
        .learned_idle_timeout(&url)
        .map(|learned| learned.as_millis() as u64);
    Ok(run)
}

/// `4 unexpected EOF`, `1 reset, 2 unexpected EOF`, or `-`.
fn errors(tally: &Tally) -> String {
    let kinds = [
        (tally.broken_pipe, "broken pipe"),
        (tally.reset, "reset"),
        (tally.unexpected_eof, "unexpected EOF"),
        (tally.other, "other"),
    ];
    let named: Vec<String> = kinds
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, name)| format!("{count} {name}"))
        .collect();
    if named.is_empty() {
        "-".to_string()
    } else {
        named.join(", ")
    }
}

/// A number, or `-` for a client that does not have it.
fn count(value: Option<u64>) -> String {
    value.map_or("-".to_string(), |n| n.to_string())
}

impl IdleTimeout {
    fn runs_of<'a>(&'a self, client: &'a str) -> impl Iterator<Item = &'a Run> + 'a {
        self.runs.iter().filter(move |run| run.client == client)
    }
}

impl Run {
    /// How the table names its server.
    fn server_label(&self) -> String {
        match self.keep_alive_hint_secs {
            None => format!(
                "closes idle after {} ms, no hint",
                self.server_idle_timeout_ms
            ),
            Some(hint) => format!(
                "closes idle after {} s, Keep-Alive: timeout={hint}",
                self.server_idle_timeout_ms / 1000
            ),
        }
    }
}

impl fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Align::{Left, Right};
        let mut table = Table::new(&[
            ("server", Left),
            ("client", Left),
            ("requests", Right),
            ("ok", Right),
            ("failed", Right),
            ("new conns", Right),
            ("stale caught", Right),
            ("expired first", Right),
            ("retried", Right),
            ("learned", Right),
            ("errors", Left),
        ]);
        let mut last_server = String::new();
        for run in &self.runs {
            let label = run.server_label();
            let server = if label == last_server {
                String::new()
            } else {
                label.clone()
            };
            last_server = label;
            table.row([
                server,
                run.client.to_string(),
                run.tally.requests.to_string(),
                run.tally.ok.to_string(),
                run.tally.failed().to_string(),
                run.tally.new_conns.to_string(),
                count(run.tally.stale_caught),
                count(run.expired_first),
                count(run.retried),
                run.learned_idle_timeout_ms
                    .map_or("-".to_string(), |ms| format!("{ms} ms")),
                errors(&run.tally),
            ]);
        }
        write!(f, "{table}")?;
        for run in self.runs_of("connpool") {
            for failure in &run.tally.failures {
                writeln!(f, "connpool failure ({}): {failure}", run.server_label())?;
            }
        }
        writeln!(
            f,
            "stale caught = found closed at checkout (the peek saw the FIN); expired first = \
             evicted by\nconnpool before the server's timeout. Against the silent server \
             connpool learns the timeout\nfrom the first FIN it catches and from then on expires \
             idle connections a tenth sooner;\nagainst the other it expires them at the hint \
             minus keep_alive_margin (1 s). The naive client\nreuses whatever it kept, and \
             fails."
        )
    }
}

impl Section for IdleTimeout {
    fn problems(&self) -> Vec<String> {
        self.runs_of("connpool")
            .filter(|run| run.tally.failed() > 0)
            .map(|run| {
                format!(
                    "{} of connpool's requests failed ({})",
                    run.tally.failed(),
                    run.server_label()
                )
            })
            .collect()
    }

    fn naive_summary(&self) -> String {
        let failed: u64 = self.runs_of("naive").map(|run| run.tally.failed()).sum();
        let requests: u64 = self.runs_of("naive").map(|run| run.tally.requests).sum();
        format!("{failed} of {requests} requests failed")
    }

    fn connpool_summary(&self) -> String {
        let failed: u64 = self.runs_of("connpool").map(|run| run.tally.failed()).sum();
        let requests: u64 = self.runs_of("connpool").map(|run| run.tally.requests).sum();
        let stale: u64 = self
            .runs_of("connpool")
            .filter_map(|run| run.tally.stale_caught)
            .sum();
        let expired: u64 = self
            .runs_of("connpool")
            .filter_map(|run| run.expired_first)
            .sum();
        let learned = self
            .runs_of("connpool")
            .find_map(|run| run.learned_idle_timeout_ms)
            .map_or("nothing learned".to_string(), |ms| {
                format!("learned {ms} ms")
            });
        format!(
            "{failed} of {requests} failed; {learned}; {stale} stale caught, {expired} expired \
             first"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connpool_must_not_fail_and_the_naive_client_is_not_judged() {
        let mut naive = blank("naive", &LEARN_GAPS_MS);
        naive.tally.requests = 9;
        naive.tally.ok = 5;
        naive.tally.unexpected_eof = 4;
        naive.failed = 4;
        let mut connpool = blank("connpool", &LEARN_GAPS_MS);
        connpool.tally.requests = 9;
        connpool.tally.ok = 9;
        let mut section = IdleTimeout {
            naive_idle_timeout_ms: 90_000,
            runs: vec![naive, connpool],
        };
        assert!(section.problems().is_empty());
        assert_eq!(errors(&section.runs[0].tally), "4 unexpected EOF");
        section.runs[1].tally.ok = 8;
        section.runs[1].tally.reset = 1;
        assert_eq!(section.problems().len(), 1);
    }
}
