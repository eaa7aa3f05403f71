//! `connpool demo`: the keep-alive race and the silent drop, and their
//! cure, in a few seconds.
//!
//! Servers close idle connections. A pool that reuses one the server has
//! just closed hands its caller a dead socket: the request fails with
//! `broken pipe`, `connection reset` or a bare EOF, and a retry "fixes" it.
//! This demo makes that happen on purpose, on 127.0.0.1 only:
//!
//! 1. For each [`Scenario`] it starts two identical fault servers from
//!    `connpool-testkit` (line echo: a request is `req <n>\n`, the answer
//!    the same line), one per pool, so the pools cannot disturb each other.
//! 2. It sends the same request schedule, concurrently, through
//!    * the [`NaivePool`]: idle sockets reused unchecked, and
//!    * connpool's [`TcpPool`], which peeks at every idle socket before
//!      reusing it (`recv(MSG_PEEK)`: a FIN or RST waiting there means the
//!      server closed it). Its idle timeout is set *longer* than the
//!      servers', so it is the peek, not the timeout, that saves it.
//! 3. Neither pool retries. A failed request is counted under the kind
//!    [`connpool::Error::from_io`] gives it, and its connection is dropped.
//!
//! It prints one table of outcomes, the first events of connpool in the
//! first scenario, and a verdict.
//!
//! Then comes the same failure one hop away, the [`silent_drop`] section: a
//! middlebox that forgets idle flows and drops their packets without a
//! word, so a naive client's request hangs while connpool finds the dead
//! path and resends a `GET`, or fails a `POST` saying it was never
//! acknowledged. It needs network namespaces, hence root: without them it
//! says so and is skipped, which is not a failure (`--no-silent-drop`
//! skips it too).
//!
//! The exit status is 0 only if connpool had no failed request and, when
//! the silent-drop section ran, kept its promise there, so CI can run the
//! demo as a check.
//!
//! The peek cannot close one tiny window: a server that closes *between*
//! the peek and the write. The schedule keeps clear of it (requests come
//! well before or well after the servers' idle timeout), but if it ever
//! happens, the failure is counted and printed like any other.

mod silent_drop;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use connpool::tcp::{TcpManager, TcpPool};
use connpool::{Error, ErrorKind, Event, EvictReason, Pool};
use connpool_testkit::{CloseMode, FaultServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// Options of `connpool demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Requests per scenario and pool.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,

    /// Do not print the trace of connpool's events.
    #[arg(long, visible_alias = "quiet")]
    no_trace: bool,

    /// Skip the silent-drop section (a middlebox in network namespaces;
    /// it needs root and takes about 6 seconds).
    #[arg(long)]
    no_silent_drop: bool,
}

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
struct Outcome {
    name: &'static str,
    naive: Tally,
    connpool: Tally,
    /// Every event of connpool's pool, in order.
    trace: Vec<TraceEvent>,
}

/// Runs the demo, prints its report, and returns the exit status: success
/// when connpool had no failed request.
pub async fn run(args: DemoArgs) -> ExitCode {
    let then = if args.no_silent_drop {
        ""
    } else {
        "\nThen, if it can create network namespaces (as root): a middlebox that silently drops\n\
         forgotten flows, a naive client against connpool's HTTP client.\n"
    };
    println!(
        "connpool demo: the same requests go through a naive pool, which reuses idle connections\n\
         unchecked, and connpool's TCP pool, which peeks at each one before reuse. Local servers\n\
         close connections idle for {} ms (with FIN, then RST) or after {} requests; neither pool\n\
         retries.\n{then}",
        SERVER_IDLE_TIMEOUT.as_millis(),
        CLOSE_AFTER_EXCHANGES,
    );

    let mut outcomes = Vec::new();
    for scenario in Scenario::all() {
        match run_scenario(&scenario, args.requests as usize).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(err) => {
                eprintln!("connpool demo: could not start a test server: {err}");
                return ExitCode::FAILURE;
            }
        }
    }

    print_report(&outcomes, !args.no_trace);

    let connpool_failed: u64 = outcomes.iter().map(|o| o.connpool.failed()).sum();
    let mut failed = connpool_failed > 0;
    if !args.no_silent_drop {
        println!();
        let section = silent_drop::run().await;
        print!("{section}");
        failed |= section.failed();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
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
    let mut pool = NaivePool::new(addr);
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

/// Prints the table, connpool's failures if any, the trace of the first
/// scenario (if asked), and the verdict.
fn print_report(outcomes: &[Outcome], with_trace: bool) {
    let rows: Vec<Row<'_>> = outcomes
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
    print!("{}", report::table(&rows));
    println!(
        "stale caught = idle connections found closed by the server and evicted before use\n\
         (the naive pool does not look)."
    );

    for outcome in outcomes {
        for failure in &outcome.connpool.failures {
            println!("connpool failure in {}: {failure}", outcome.name);
        }
    }

    if let (true, Some(first)) = (with_trace, outcomes.first()) {
        println!(
            "\nconnpool's first {TRACE_LEN} events in {:?} (time since the scenario started):",
            first.name
        );
        for event in first.trace.iter().take(TRACE_LEN) {
            println!("  {event}");
        }
    }

    let naive_failed: u64 = outcomes.iter().map(|o| o.naive.failed()).sum();
    let connpool_failed: u64 = outcomes.iter().map(|o| o.connpool.failed()).sum();
    println!("\nnaive pool: {naive_failed} failed requests; connpool: {connpool_failed}");
}
