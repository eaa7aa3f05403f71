//! The demo's first section: the keep-alive race, at the TCP level.
//!
//! Servers close idle connections. A pool that reuses one the server has
//! just closed hands its caller a dead socket: the request fails with
//! `broken pipe`, `connection reset` or a bare EOF, and a retry "fixes" it,
//! which is why the failure is so often shrugged off. The cure is to look
//! before reusing: the server's FIN (or RST) has usually long arrived when
//! the connection is taken from the pool, and one non-blocking
//! `recv(MSG_PEEK)` finds it for about a microsecond.
//!
//! This section makes the race happen on purpose, on 127.0.0.1 only:
//!
//! 1. For each [`Scenario`] it starts two identical fault servers from
//!    `connpool-testkit` (line echo: a request is `req <n>\n`, the answer
//!    the same line), one per pool, so the pools cannot disturb each other.
//! 2. It sends the same request schedule, concurrently, through
//!    * the [`NaivePool`]: idle sockets reused unchecked, and
//!    * connpool's [`TcpPool`], which peeks at every idle socket before
//!      reusing it. Its idle timeout is set *longer* than the servers', so
//!      it is the peek, not the timeout, that saves it (the HTTP client's
//!      timeouts get their own section, [`idle_timeout`](super::idle_timeout)).
//! 3. Neither pool retries. A failed request is counted under the kind
//!    [`connpool::Error::from_io`] gives it, and its connection is dropped.
//!
//! It reports one table of outcomes, the first events of connpool in the
//! first scenario, and a verdict. connpool keeps its promise when none of
//! its requests failed.
//!
//! The peek cannot close one tiny window: a server that closes *between*
//! the peek and the write. The schedule keeps clear of it (requests come
//! well before or well after the servers' idle timeout), but if it ever
//! happens, the failure is counted and printed like any other (the HTTP
//! client would retry such a request; this raw pool does not).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connpool::tcp::{TcpManager, TcpPool};
use connpool::{Error, ErrorKind, Event, EvictReason, Pool};
use connpool_testkit::{CloseMode, FaultServer};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Section;
use crate::naive::NaivePool;
use crate::report::{self, Row, Tally, TraceEvent};

/// How long the servers of the idle-close scenarios let a connection sit
/// idle before closing it.
const SERVER_IDLE_TIMEOUT: Duration = Duration::from_millis(150);

/// Pauses between requests in the idle-close scenarios, in milliseconds,
/// used in turn. The short ones stay under [`SERVER_IDLE_TIMEOUT`], the
/// long ones straddle it by 100 ms or more, so the server's FIN or RST has
/// long arrived when the next request is sent.
const IDLE_CLOSE_GAPS_MS: [u64; 4] = [20, 250, 60, 300];

/// Exchanges a server of the close-after scenario answers per connection.
const CLOSE_AFTER_EXCHANGES: u64 = 3;

/// Pause between requests in the close-after scenario: enough for the FIN
/// sent after the last allowed answer to arrive on loopback.
const CLOSE_AFTER_GAP: Duration = Duration::from_millis(10);

/// connpool's idle timeout: far longer than the servers', on purpose.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A request with no answer after this long counts as failed (it never
/// happens on loopback, but the demo must not hang in CI if it does).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How many of connpool's events the trace shows.
const TRACE_LEN: usize = 12;

/// A fault the servers inject, and the request schedule that meets it.
struct Scenario {
    /// Its name in the table.
    name: &'static str,
    /// How its servers misbehave.
    server: connpool_testkit::FaultServerBuilder,
    /// The pause before request `n` (for `n >= 1`).
    gap: fn(usize) -> Duration,
}

impl Scenario {
    /// The three scenarios of the demo, in the order they run.
    fn all() -> [Scenario; 3] {
        let idle_gap = |n: usize| {
            Duration::from_millis(IDLE_CLOSE_GAPS_MS[(n - 1) % IDLE_CLOSE_GAPS_MS.len()])
        };
        [
            Scenario {
                name: "idle close, FIN",
                server: FaultServer::builder().idle_close(SERVER_IDLE_TIMEOUT, CloseMode::Fin),
                gap: idle_gap,
            },
            Scenario {
                name: "idle close, RST",
                server: FaultServer::builder().idle_close(SERVER_IDLE_TIMEOUT, CloseMode::Rst),
                gap: idle_gap,
            },
            Scenario {
                name: "close after 3",
                server: FaultServer::builder().close_after(CLOSE_AFTER_EXCHANGES, CloseMode::Fin),
                gap: |_| CLOSE_AFTER_GAP,
            },
        ]
    }
}

/// What one scenario produced.
#[derive(Serialize)]
struct Outcome {
    name: &'static str,
    naive: Tally,
    connpool: Tally,
    /// Every event of connpool's pool, in order.
    #[serde(skip)]
    trace: Vec<TraceEvent>,
}

/// What the section produced: one [`Outcome`] per scenario.
#[derive(Serialize)]
pub struct Race {
    scenarios: Vec<Outcome>,
    /// Requests that failed, over all scenarios.
    naive_failed: u64,
    connpool_failed: u64,
    /// Idle connections connpool found closed and evicted before use.
    connpool_stale_caught: u64,
    /// connpool's first events in the first scenario, as printed; empty
    /// with `--no-trace`.
    trace: Vec<String>,
}

/// The section's introduction, printed before it runs.
pub fn intro() -> String {
    format!(
        "The same requests go through a naive pool, which reuses idle connections unchecked,\n\
         and connpool's TCP pool, which peeks at each one before reuse. Local servers close\n\
         connections idle for {} ms (with FIN, then RST) or after {} requests; neither pool\n\
         retries.",
        SERVER_IDLE_TIMEOUT.as_millis(),
        CLOSE_AFTER_EXCHANGES,
    )
}

/// Runs the three scenarios one after another; `requests` per scenario and
/// pool. Keeps connpool's first events when `with_trace`.
pub async fn run(requests: usize, with_trace: bool) -> io::Result<Race> {
    let mut scenarios = Vec::new();
    for scenario in Scenario::all() {
        scenarios.push(run_scenario(&scenario, requests).await?);
    }
    let trace = match (with_trace, scenarios.first()) {
        (true, Some(first)) => first
            .trace
            .iter()
            .take(TRACE_LEN)
            .map(ToString::to_string)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Race {
        naive_failed: scenarios.iter().map(|o| o.naive.failed()).sum(),
        connpool_failed: scenarios.iter().map(|o| o.connpool.failed()).sum(),
        connpool_stale_caught: scenarios
            .iter()
            .filter_map(|o| o.connpool.stale_caught)
            .sum(),
        scenarios,
        trace,
    })
}

/// Runs one scenario: two fresh servers, the two pools side by side.
async fn run_scenario(scenario: &Scenario, requests: usize) -> io::Result<Outcome> {
    let naive_server = scenario.server.start()?;
    let connpool_server = scenario.server.start()?;
    let start = Instant::now();
    let (naive, (connpool, trace)) = tokio::join!(
        run_naive(naive_server.addr(), scenario.gap, requests),
        run_connpool(connpool_server.addr(), scenario.gap, requests, start),
    );
    Ok(Outcome {
        name: scenario.name,
        naive,
        connpool,
        trace,
    })
}

/// Sends the schedule through a [`NaivePool`].
async fn run_naive(addr: SocketAddr, gap: fn(usize) -> Duration, requests: usize) -> Tally {
    let pool = NaivePool::new(addr);
    let mut tally = Tally::default();
    for n in 0..requests {
        if n > 0 {
            tokio::time::sleep(gap(n)).await;
        }
        let outcome = match pool.get().await {
            Ok(mut stream) => match send_request(&mut stream, n).await {
                Ok(()) => {
                    pool.put(stream);
                    Ok(())
                }
                // The stream is dropped, hence closed: no retry.
                Err(err) => Err(err),
            },
            Err(err) => Err(Error::from_connect_io(err)),
        };
        tally.record(n, outcome);
    }
    tally.new_conns = pool.created();
    tally
}

/// Sends the schedule through connpool's [`TcpPool`], recording its events
/// with their time since `start`.
async fn run_connpool(
    addr: SocketAddr,
    gap: fn(usize) -> Duration,
    requests: usize,
    start: Instant,
) -> (Tally, Vec<TraceEvent>) {
    let trace = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&trace);
    let pool: TcpPool = Pool::builder(TcpManager::default())
        .idle_timeout(Some(POOL_IDLE_TIMEOUT))
        .observer(move |event: &Event<'_, SocketAddr>| {
            recorder.lock().unwrap().push(TraceEvent {
                at: start.elapsed(),
                conn: event.conn,
                kind: event.kind.clone(),
            });
        })
        .build();

    let mut tally = Tally::default();
    for n in 0..requests {
        if n > 0 {
            tokio::time::sleep(gap(n)).await;
        }
        let outcome = match pool.get(&addr).await {
            Ok(mut conn) => match send_request(&mut conn, n).await {
                Ok(()) => {
                    // A full exchange is a message boundary: back to the pool.
                    conn.release();
                    Ok(())
                }
                // Dropping the guard closes the connection: no retry.
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        tally.record(n, outcome);
    }

    let counters = pool.stats().counters;
    tally.new_conns = counters.created;
    tally.stale_caught = Some(
        EvictReason::ALL
            .into_iter()
            .filter(|reason| reason.is_stale())
            .map(|reason| counters.evicted(reason))
            .sum(),
    );
    drop(pool);
    let trace = std::mem::take(&mut *trace.lock().unwrap());
    (tally, trace)
}

/// One request: writes `req <n>\n` and reads the echoed line.
///
/// Write and read errors are classified by [`Error::from_io`]; a connection
/// that ends before the whole line came back is [`ErrorKind::UnexpectedEof`].
async fn send_request(stream: &mut TcpStream, n: usize) -> Result<(), Error> {
    let request = format!("req {n}\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        // The server sends nothing but the echo, so reading until `\n`
        // never takes bytes of a later answer.
        let mut reply = Vec::with_capacity(request.len());
        let mut chunk = [0u8; 64];
        while !reply.ends_with(b"\n") {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            reply.extend_from_slice(&chunk[..read]);
        }
        Ok(reply)
    };
    let reply = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(err)) => return Err(Error::from_io(err)),
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Io,
                format!("no answer within {REQUEST_TIMEOUT:?}"),
            ));
        }
    };
    if reply != request.as_bytes() {
        return Err(Error::new(
            ErrorKind::Io,
            format!("wrong answer {:?}", String::from_utf8_lossy(&reply)),
        ));
    }
    Ok(())
}

/// The table, connpool's failures if any, the trace of the first scenario
/// (if kept), and the verdict.
impl fmt::Display for Race {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<Row<'_>> = self
            .scenarios
            .iter()
            .flat_map(|o| {
                [
                    Row {
                        scenario: o.name,
                        pool: "naive",
                        tally: &o.naive,
                    },
                    Row {
                        scenario: o.name,
                        pool: "connpool",
                        tally: &o.connpool,
                    },
                ]
            })
            .collect();
        f.write_str(&report::table(&rows))?;
        writeln!(
            f,
            "stale caught = idle connections found closed by the server and evicted before use\n\
             (the naive pool does not look)."
        )?;

        for outcome in &self.scenarios {
            for failure in &outcome.connpool.failures {
                writeln!(f, "connpool failure in {}: {failure}", outcome.name)?;
            }
        }

        if let (false, Some(first)) = (self.trace.is_empty(), self.scenarios.first()) {
            writeln!(
                f,
                "\nconnpool's first {TRACE_LEN} events in {:?} (time since the scenario started):",
                first.name
            )?;
            for event in &self.trace {
                writeln!(f, "  {event}")?;
            }
        }

        writeln!(
            f,
            "\nnaive pool: {} failed requests; connpool: {}",
            self.naive_failed, self.connpool_failed
        )
    }
}

impl Section for Race {
    fn problems(&self) -> Vec<String> {
        if self.connpool_failed == 0 {
            Vec::new()
        } else {
            vec![format!(
                "{} of connpool's requests failed",
                self.connpool_failed
            )]
        }
    }

    fn naive_summary(&self) -> String {
        format!(
            "{} of {} requests failed",
            self.naive_failed,
            self.requests()
        )
    }

    fn connpool_summary(&self) -> String {
        format!(
            "{} of {} failed; {} stale connections caught before use",
            self.connpool_failed,
            self.requests(),
            self.connpool_stale_caught
        )
    }
}

impl Race {
    /// Requests each pool sent, over all scenarios.
    fn requests(&self) -> u64 {
        self.scenarios.iter().map(|o| o.naive.requests).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_failed_connpool_request_breaks_the_promise() {
        let mut race = Race {
            scenarios: Vec::new(),
            naive_failed: 23,
            connpool_failed: 0,
            connpool_stale_caught: 24,
            trace: Vec::new(),
        };
        assert!(race.problems().is_empty());
        race.connpool_failed = 1;
        assert_eq!(race.problems().len(), 1);
        assert!(
            race.to_string()
                .contains("naive pool: 23 failed requests; connpool: 1")
        );
    }
}
