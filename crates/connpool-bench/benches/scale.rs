//! A burst of 10 000 concurrent requests to one host: connpool's
//! [`Client`](connpool::http::Client) with a per-host cap of 100, beside
//! reqwest and hyper-util's legacy client (no cap), against the same
//! keep-alive server in the same run.
//!
//! ```text
//! cargo bench -p connpool-bench --bench scale
//! cargo bench -p connpool-bench --bench scale -- --requests 20000 --cap 50
//! cargo bench -p connpool-bench --bench scale -- --nofile 4096
//! ```
//!
//! Options (after `--`): `--requests N` (default 10 000), `--cap N`
//! connpool's `max_conns_per_host` (default 100), `--delay-us N` the
//! server's delay before each response (default 1 000), `--only
//! NAME[,NAME...]` (`connpool`, `reqwest`, `hyper-util`), `--nofile N` the
//! client process's soft `RLIMIT_NOFILE` (default: its hard limit; a
//! lower one shows what an uncapped client does when it runs out).
//!
//! # What is measured
//!
//! For each client in turn, on a fresh 2-worker multi_thread runtime: all
//! the requests are spawned at once, one task each, by a task on one of
//! the workers (as a server's handlers would spawn them), each a `GET`
//! whose body is read to its end and checked. A request's latency runs from
//! just before its `tokio::spawn` to the end of its body, so it includes
//! the time spent queued: in the runtime, in connpool's wait queue, in
//! the kernel's accept queue. The wall time runs from the first spawn to
//! the last body's end. Percentiles are nearest-rank over the successful
//! requests.
//!
//! * `connpool`: `max_conns_per_host(cap)`, `pool_wait_timeout(30 s)` and
//!   `max_waiters_per_host(requests)`, so the burst queues instead of
//!   being refused; its other settings are the defaults.
//! * `reqwest`: `reqwest::Client::builder().no_proxy().build()` (the
//!   default client, minus the environment's proxy settings; no TLS). No
//!   per-host cap.
//! * `hyper-util`: `legacy::Client::builder(TokioExecutor::new())
//!   .build_http()`, `Empty<Bytes>` bodies. No per-host cap.
//!
//! "Opened" is the server's count of connections it accepted during the
//! client's run; "peak" the most it held open at once. For connpool the
//! pool's own `counters.created` is printed beside it, and a task samples
//! `client.stats()` every millisecond for the largest number of
//! connections (idle + checked out + connecting) and of waiters it saw.
//!
//! Also per client: the kernel's `TcpExt ListenOverflows` during the run
//! (handshakes whose final ACK the server's kernel dropped because the
//! accept queue was full: each costs the client a SYN-ACK retransmission,
//! a second or more; the counter is the network namespace's, so another
//! program's listener could add to it), the CPU time of the client and of
//! the server process, and how long spawning the tasks took (the spawning
//! worker competes with the other for the CPU: that time is part of the
//! wall time, not of any request's latency).
//!
//! # The server
//!
//! This binary, re-executed with `CONNPOOL_SCALE_SERVER` set: a tokio
//! current_thread runtime (pinned to the second CPU when two are allowed;
//! the client's two workers then span both CPUs, one of them sharing the
//! server's), listening with the largest backlog the kernel allows
//! (`net.core.somaxconn`), one task per connection. It answers every
//! request head, after sleeping `--delay-us` (tokio's timer rounds that
//! up to its 1 ms tick), with the same 52-byte response. It prints its
//! counters whenever a line arrives on its stdin and exits when its stdin
//! closes.
//!
//! Both processes raise their soft `RLIMIT_NOFILE` to the hard limit
//! first. A request that failed with `EMFILE`/`ENFILE` anywhere in its
//! error's chain is reported as having hit the file limit: a finding
//! about the client, not a failure of the bench. The bench fails (exit
//! status 1) only when connpool's goal does not hold: opened ≤ cap and no
//! errors.
//!
//! Between clients the bench waits (up to 3 s) until the server has seen
//! every connection of the previous client closed. Each client's run is
//! cut off after 20 s; requests not finished by then count as errors of
//! kind `unfinished`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::io::AsyncWriteExt;

use common::{BODY, Heads, HyperClient, RESPONSE, ServerProcess, raise_nofile};

// --------------------------------------------------------------- constants

/// Set in the environment of the child process that serves:
/// `CPU,DELAY_US`, CPU being `-` for "not pinned".
const SERVER_ENV: &str = "CONNPOOL_SCALE_SERVER";
const DEFAULT_REQUESTS: usize = 10_000;
const DEFAULT_CAP: usize = 100;
const DEFAULT_DELAY_US: u64 = 1_000;
/// connpool's pool wait timeout: long enough for the whole burst.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// A client's run is cut off after this long.
const RUN_DEADLINE: Duration = Duration::from_secs(20);

// ------------------------------------------------------------ system calls

/// The kernel's `TcpExt ListenOverflows` counter (0 if unreadable).
fn listen_overflows() -> u64 {
    let netstat = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of this process (`None`) or of process `pid`,
/// from `/proc/PID/stat` (clock ticks; zero if unreadable).
fn process_cpu(pid: Option<u32>) -> Duration {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_string(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command name, which ends with the last ')':
    // state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // SAFETY: `sysconf` reads a configuration value and touches no memory
    // of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Duration::from_secs_f64(ticks as f64 / hz.max(1) as f64)
}

// ------------------------------------------------------------------ server

/// The server's counters, shared by its runtime and its stdin thread.
#[derive(Default)]
struct ServerCounters {
    accepted: AtomicU64,
    open: AtomicUsize,
    /// The most connections open at once since the last report.
    peak: AtomicUsize,
    accept_errors: AtomicU64,
    /// Accept errors that were `EMFILE`/`ENFILE`.
    accept_file_limit: AtomicU64,
    requests: AtomicU64,
}

/// The child process. Prints `PORT NOFILE_SOFT`, then one line of
/// counters for every line read on stdin; exits at EOF.
fn serve(spec: &str) {
    let (cpu, delay_us) = spec.split_once(',').unwrap_or((spec, "1000"));
    let delay = Duration::from_micros(delay_us.parse().unwrap_or(DEFAULT_DELAY_US));
    let nofile = common::raise_nofile_or_warn("server").unwrap_or(0);
    common::pin_server(cpu);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("server: runtime");
    let counters = Arc::new(ServerCounters::default());
    let listener = rt.block_on(async { common::listen_local(65_535) });
    let port = listener.local_addr().expect("server: local addr").port();
    common::announce(&format!("{port} {nofile}"));
    let reporter = Arc::clone(&counters);
    std::thread::spawn(move || common::report_on_request(|| stats_line(&reporter)));
    rt.block_on(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let open = counters.open.fetch_add(1, Ordering::Relaxed) + 1;
                    counters.peak.fetch_max(open, Ordering::Relaxed);
                    let counters = Arc::clone(&counters);
                    tokio::spawn(async move {
                        serve_connection(stream, delay, &counters).await;
                        counters.open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(e) => {
                    counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if is_file_limit(&e) {
                        counters.accept_file_limit.fetch_add(1, Ordering::Relaxed);
                    }
                    // Out of descriptors: give the open connections a
                    // moment to close rather than spin.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    });
}

/// The server's line of counters, for a line on its stdin (see
/// [`common::report_on_request`]): `accepted open peak accept_errors
/// accept_file_limit requests`; the peak restarts from the connections
/// open now.
fn stats_line(counters: &ServerCounters) -> String {
    let open = counters.open.load(Ordering::Relaxed);
    let peak = counters.peak.swap(open, Ordering::Relaxed).max(open);
    format!(
        "{} {open} {peak} {} {} {}",
        counters.accepted.load(Ordering::Relaxed),
        counters.accept_errors.load(Ordering::Relaxed),
        counters.accept_file_limit.load(Ordering::Relaxed),
        counters.requests.load(Ordering::Relaxed),
    )
}

/// Answers every request head on `stream`, each after `delay`, until the
/// client closes (or sends a head larger than the buffer).
async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    delay: Duration,
    counters: &ServerCounters,
) {
    let _ = stream.set_nodelay(true);
    let mut heads = Heads::<2048>::new();
    loop {
        while heads.next_head().is_some() {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if stream.write_all(RESPONSE).await.is_err() {
                return;
            }
        }
        if !heads.read_async(&mut stream).await {
            return;
        }
    }
}

/// The server's counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct ServerStats {
    accepted: u64,
    open: usize,
    peak: usize,
    accept_errors: u64,
    accept_file_limit: u64,
    requests: u64,
}

/// The server child process, stopped when dropped.
struct Server {
    process: ServerProcess,
    nofile: u64,
}

impl Server {
    fn start(cpu: Option<usize>, delay_us: u64) -> Server {
        let value = format!("{},{delay_us}", common::cpu_arg(cpu));
        let process = ServerProcess::start(SERVER_ENV, &value);
        let line = &process.first_line;
        let Some(Ok(nofile)) = line.split_whitespace().nth(1).map(str::parse::<u64>) else {
            panic!("the server printed {line:?}, not its port and file limit");
        };
        Server { process, nofile }
    }

    fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// The server's counters now; restarts its peak.
    fn stats(&mut self) -> ServerStats {
        let n = self.process.counters(b"\n", 6);
        ServerStats {
            accepted: n[0],
            open: n[1] as usize,
            peak: n[2] as usize,
            accept_errors: n[3],
            accept_file_limit: n[4],
            requests: n[5],
        }
    }

    /// Waits (up to `limit`) until the server holds no connection.
    fn wait_until_idle(&mut self, limit: Duration) -> ServerStats {
        let until = Instant::now() + limit;
        loop {
            let stats = self.stats();
            if stats.open == 0 || Instant::now() >= until {
                return stats;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ------------------------------------------------------------------ clients

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Connpool,
    Reqwest,
    HyperUtil,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Connpool, Kind::Reqwest, Kind::HyperUtil];

    fn name(self) -> &'static str {
        match self {
            Kind::Connpool => "connpool",
            Kind::Reqwest => "reqwest",
            Kind::HyperUtil => "hyper-util",
        }
    }
}

#[derive(Clone)]
enum AnyClient {
    Connpool(connpool::http::Client),
    Reqwest(reqwest::Client),
    HyperUtil(HyperClient),
}

/// Why one request failed: a short kind for the table, whether the file
/// limit was hit, and the message.
struct Failure {
    kind: String,
    file_limit: bool,
    message: String,
}

impl Failure {
    fn of(kind: impl Into<String>, err: &(dyn std::error::Error + 'static)) -> Failure {
        let mut message = err.to_string();
        let mut cause = err.source();
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        Failure {
            kind: kind.into(),
            file_limit: chain_hit_file_limit(err),
            message,
        }
    }

    fn bad_response(status: u16, body: &[u8]) -> Failure {
        Failure {
            kind: "bad_response".into(),
            file_limit: false,
            message: format!("unexpected response: {status} {body:?}"),
        }
    }
}

fn is_file_limit(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether an `EMFILE`/`ENFILE` I/O error is anywhere in `err`'s chain.
fn chain_hit_file_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(is_file_limit)
        {
            return true;
        }
        cause = c.source();
    }
    // Some layers keep only the message.
    err.to_string().contains("Too many open files")
}

/// The I/O error deepest in `err`'s chain, named: `EMFILE`, `ENFILE`, or
/// its `std::io::ErrorKind`.
fn io_cause(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut found = None;
    let mut cause = Some(err);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            found = Some(match io.raw_os_error() {
                Some(libc::EMFILE) => "EMFILE".to_string(),
                Some(libc::ENFILE) => "ENFILE".to_string(),
                _ => format!("{:?}", io.kind()),
            });
        }
        cause = c.source();
    }
    found
}

/// `base`, with the I/O error under it when there is one.
fn with_io_kind(base: &str, err: &(dyn std::error::Error + 'static)) -> String {
    match io_cause(err) {
        Some(io) => format!("{base}/{io}"),
        None => base.to_string(),
    }
}

impl AnyClient {
    fn build(kind: Kind, options: &Options) -> AnyClient {
        match kind {
            Kind::Connpool => AnyClient::Connpool(
                connpool::http::Client::builder()
                    .max_conns_per_host(options.cap)
                    .pool_wait_timeout(POOL_WAIT_TIMEOUT)
                    .max_waiters_per_host(options.requests.max(1))
                    .build(),
            ),
            Kind::Reqwest => AnyClient::Reqwest(common::reqwest_client()),
            Kind::HyperUtil => AnyClient::HyperUtil(common::hyper_builder().build_http()),
        }
    }

    async fn get(&self, url: &str) -> Result<(), Failure> {
        match self {
            AnyClient::Connpool(client) => {
                let fail =
                    |e: connpool::Error| Failure::of(with_io_kind(e.kind().as_str(), &e), &e);
                let resp = client.get(url).send().await.map_err(fail)?;
                let status = resp.status().as_u16();
                let body = resp.bytes().await.map_err(fail)?;
                check(status, &body)
            }
            AnyClient::Reqwest(client) => {
                let fail = |e: reqwest::Error| {
                    let base = if e.is_connect() {
                        "connect"
                    } else if e.is_timeout() {
                        "timeout"
                    } else if e.is_body() {
                        "body"
                    } else if e.is_request() {
                        "request"
                    } else {
                        "other"
                    };
                    Failure::of(with_io_kind(base, &e), &e)
                };
                let resp = client.get(url).send().await.map_err(fail)?;
                let status = resp.status().as_u16();
                let body = resp.bytes().await.map_err(fail)?;
                check(status, &body)
            }
            AnyClient::HyperUtil(client) => {
                let req = http::Request::get(url)
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| Failure::of("invalid_request", &e))?;
                let resp = client.request(req).await.map_err(|e| {
                    let base = if e.is_connect() { "connect" } else { "request" };
                    Failure::of(with_io_kind(base, &e), &e)
                })?;
                let status = resp.status().as_u16();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| Failure::of(with_io_kind("body", &e), &e))?
                    .to_bytes();
                check(status, &body)
            }
        }
    }
}

fn check(status: u16, body: &[u8]) -> Result<(), Failure> {
    if status != 200 || body != BODY {
        return Err(Failure::bad_response(status, body));
    }
    Ok(())
}

// ---------------------------------------------------------------- the run

/// What connpool's pool said about the run.
struct PoolView {
    counters: connpool::Counters,
    /// Largest idle + checked out + connecting seen by the sampler.
    peak_conns: usize,
    /// Largest number of waiters seen by the sampler.
    peak_waiters: usize,
}

/// One client's run.
struct Row {
    kind: Kind,
    /// Latencies of the successful requests, sorted.
    latencies: Vec<Duration>,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
    file_limit_hits: u64,
    wall: Duration,
    server: ServerStats,
    /// Connections the server accepted during the run.
    opened: u64,
    pool: Option<PoolView>,
    /// How long spawning all the tasks took.
    spawning: Duration,
    /// The kernel's `TcpExt ListenOverflows` during the run: a SYN's
    /// final ACK dropped because the server's accept queue was full.
    listen_overflows: u64,
    /// CPU time (user + system) of the client and of the server process.
    client_cpu: Duration,
    server_cpu: Duration,
}

impl Row {
    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Nearest-rank percentile `p` (0–100] of the successful requests.
    fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.latencies.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
        Some(self.latencies[rank.min(n) - 1])
    }
}

/// Samples connpool's pool every millisecond until `stop` is set.
async fn sample_pool(client: connpool::http::Client, stop: Arc<AtomicBool>) -> (usize, usize) {
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut conns, mut waiters) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let stats = client.stats();
        conns = conns.max(stats.total.idle + stats.total.checked_out + stats.total.connecting);
        waiters = waiters.max(stats.total.waiters);
    }
    (conns, waiters)
}

/// Runs `kind`'s burst on a fresh 2-worker multi_thread runtime.
fn run_client(kind: Kind, options: &Options, server: &mut Server, url: &'static str) -> Row {
    let before = server.wait_until_idle(Duration::from_secs(3));
    let overflows_before = listen_overflows();
    let cpu_before = (process_cpu(None), process_cpu(Some(server.pid())));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let n = options.requests;
    let client = {
        let _guard = rt.enter();
        AnyClient::build(kind, options)
    };
    // The burst is spawned from a task on a worker, as a server's handlers
    // would spawn it, not from the thread outside the runtime.
    let burst = rt.spawn(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = match &client {
            AnyClient::Connpool(c) => Some(tokio::spawn(sample_pool(c.clone(), Arc::clone(&stop)))),
            _ => None,
        };
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + RUN_DEADLINE);
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let client = client.clone();
            let spawned = Instant::now();
            handles.push(tokio::spawn(async move {
                let result = client.get(url).await;
                let end = Instant::now();
                (end - spawned, end, result)
            }));
        }
        let spawning = started.elapsed();
        let mut row = Row {
            kind,
            latencies: Vec::with_capacity(n),
            errors: BTreeMap::new(),
            first_error: None,
            file_limit_hits: 0,
            wall: Duration::ZERO,
            server: ServerStats::default(),
            opened: 0,
            pool: None,
            spawning,
            listen_overflows: 0,
            client_cpu: Duration::ZERO,
            server_cpu: Duration::ZERO,
        };
        let mut last_end = started;
        for mut handle in handles {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok((latency, end, result))) => {
                    last_end = last_end.max(end);
                    match result {
                        Ok(()) => row.latencies.push(latency),
                        Err(f) => {
                            *row.errors.entry(f.kind).or_default() += 1;
                            row.file_limit_hits += u64::from(f.file_limit);
                            row.first_error.get_or_insert(f.message);
                        }
                    }
                }
                Ok(Err(e)) => panic!("a request task failed: {e}"),
                Err(_) => {
                    handle.abort();
                    *row.errors.entry("unfinished".into()).or_default() += 1;
                    last_end = last_end.max(Instant::now());
                }
            }
        }
        row.wall = last_end - started;
        stop.store(true, Ordering::Relaxed);
        if let (Some(sampler), AnyClient::Connpool(c)) = (sampler, &client) {
            let (peak_conns, peak_waiters) = sampler.await.expect("sampler");
            row.pool = Some(PoolView {
                counters: c.stats().counters,
                peak_conns,
                peak_waiters,
            });
        }
        (row, client)
    });
    let (mut row, client) = rt.block_on(burst).expect("the burst task panicked");
    // Counted before the client is dropped: its connections are still open.
    row.server = server.stats();
    row.opened = row.server.accepted - before.accepted;
    row.server.accept_errors -= before.accept_errors;
    row.server.accept_file_limit -= before.accept_file_limit;
    row.server.requests -= before.requests;
    row.latencies.sort_unstable();
    {
        let _guard = rt.enter();
        drop(client);
    }
    rt.shutdown_timeout(Duration::from_secs(2)); // ends the connection tasks, closes their sockets
    // Read once the client's sockets are closed: reading /proc takes a
    // descriptor, and a client may have used them all.
    row.listen_overflows = listen_overflows().saturating_sub(overflows_before);
    row.client_cpu = process_cpu(None).saturating_sub(cpu_before.0);
    row.server_cpu = process_cpu(Some(server.pid())).saturating_sub(cpu_before.1);
    row
}

// ---------------------------------------------------------------- options

struct Options {
    requests: usize,
    cap: usize,
    delay_us: u64,
    only: Option<Vec<Kind>>,
    nofile: Option<u64>,
}

const USAGE: &str = "usage: scale [--requests N] [--cap N] [--delay-us N] \
                     [--only NAME[,NAME...]] [--nofile N]\n\
                     NAME: connpool, reqwest, hyper-util";

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            requests: DEFAULT_REQUESTS,
            cap: DEFAULT_CAP,
            delay_us: DEFAULT_DELAY_US,
            only: None,
            nofile: None,
        };
        use common::{number, positive};
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => {} // passed by `cargo bench`
                "--requests" => options.requests = positive("--requests", args.next())? as usize,
                "--cap" => options.cap = positive("--cap", args.next())? as usize,
                "--delay-us" => options.delay_us = number("--delay-us", args.next())?,
                "--nofile" => options.nofile = Some(positive("--nofile", args.next())?),
                "--only" => options.only = Some(common::only(args.next(), &Kind::ALL, Kind::name)?),
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
    }

    fn runs(&self, kind: Kind) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(&kind))
    }
}

fn main() {
    if let Ok(spec) = std::env::var(SERVER_ENV) {
        serve(&spec);
        return;
    }
    let Some(options) = common::options_or_usage(Options::parse(std::env::args().skip(1)), USAGE)
    else {
        return;
    };
    let nofile = raise_nofile(options.nofile);
    let cpus = common::allowed_cpus();
    let server_cpu = (cpus.len() >= 2).then(|| cpus[1]);
    let load = common::load_average();
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap_or_default();
    let mut server = Server::start(server_cpu, options.delay_us);
    let url: &'static str = Box::leak(format!("http://{}/", server.process.addr).into_boxed_str());
    let started = Instant::now();
    let rows: Vec<Row> = Kind::ALL
        .into_iter()
        .filter(|&k| options.runs(k))
        .map(|k| run_client(k, &options, &mut server, url))
        .collect();
    let took = started.elapsed();

    let mut out = String::new();
    let header = Header {
        options: &options,
        nofile: nofile.map_err(|e| e.to_string()),
        server_nofile: server.nofile,
        cpus: cpus.len(),
        server_cpu,
        server_pid: server.pid(),
        load,
        somaxconn: somaxconn.trim().to_string(),
    };
    header.write(&mut out);
    let holds = write_table(&mut out, &rows, &options);
    use std::fmt::Write as _;
    let _ = writeln!(out, "\nthe run took {:.1} s", took.as_secs_f64());
    print!("{out}");
    drop(server);
    if holds == Some(false) {
        std::process::exit(1);
    }
}

// ------------------------------------------------------------------ report

struct Header<'a> {
    options: &'a Options,
    nofile: Result<(u64, u64), String>,
    server_nofile: u64,
    cpus: usize,
    server_cpu: Option<usize>,
    server_pid: u32,
    load: String,
    somaxconn: String,
}

impl Header<'_> {
    fn write(&self, out: &mut String) {
        use std::fmt::Write as _;
        let o = self.options;
        let _ = writeln!(
            out,
            "\n== scale: {} concurrent GETs to one host, server delay {} µs, \
             2-worker multi_thread runtime ==",
            o.requests, o.delay_us
        );
        let versions = common::locked_versions(&["connpool", "hyper-util", "reqwest", "tokio"]);
        let _ = writeln!(out, "{}", common::crates_line(&versions));
        let _ = writeln!(
            out,
            "{}, net.core.somaxconn {}",
            common::machine_line(self.cpus, &self.load),
            self.somaxconn
        );
        let server = match self.server_cpu {
            Some(c) => format!("pinned to CPU {c}; the client's 2 workers unpinned"),
            None => "not pinned".to_string(),
        };
        let _ = writeln!(
            out,
            "placement: server child process {} (current_thread runtime) {server}",
            self.server_pid
        );
        let client = match &self.nofile {
            Ok((soft, hard)) => format!("{soft} (hard {hard})"),
            Err(e) => format!("unchanged, setrlimit failed: {e}"),
        };
        let _ = writeln!(
            out,
            "RLIMIT_NOFILE: client {client}, server {}",
            self.server_nofile
        );
        let _ = writeln!(
            out,
            "connpool: max_conns_per_host {}, pool_wait_timeout {} s, max_waiters_per_host {}",
            o.cap,
            POOL_WAIT_TIMEOUT.as_secs(),
            o.requests
        );
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_string(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e3),
    )
}

/// Writes the table, the details and the goal; returns whether the goal
/// holds (`None` when connpool did not run).
fn write_table(out: &mut String, rows: &[Row], options: &Options) -> Option<bool> {
    use std::fmt::Write as _;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<11} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}",
        "client",
        "ok",
        "errors",
        "opened",
        "created",
        "peak",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "wall ms",
        "req/s",
        "EMFILE",
        "ovfl",
        "cpu c",
        "cpu s",
    );
    for row in rows {
        let created = row
            .pool
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| p.counters.created.to_string());
        let wall_s = row.wall.as_secs_f64();
        let _ = writeln!(
            out,
            "{:<11} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8.1} {:>8.0} {:>6} {:>6} \
             {:>6.2} {:>6.2}",
            row.kind.name(),
            row.latencies.len(),
            row.error_count(),
            row.opened,
            created,
            row.server.peak,
            ms(row.percentile(50.0)),
            ms(row.percentile(90.0)),
            ms(row.percentile(99.0)),
            ms(row.latencies.last().copied()),
            wall_s * 1e3,
            row.latencies.len() as f64 / wall_s,
            if row.file_limit_hits + row.server.accept_file_limit > 0 {
                "HIT"
            } else {
                "no"
            },
            row.listen_overflows,
            row.client_cpu.as_secs_f64(),
            row.server_cpu.as_secs_f64(),
        );
    }
    let _ = writeln!(
        out,
        "\nopened: connections the server accepted during the run. created: connpool's \
         counters.created.\npeak: most connections the server held open at once. \
         latency: spawn to body end, successful requests.\nwall: first spawn to last body end. \
         EMFILE: a client request or a server accept failed for lack of file descriptors.\n\
         ovfl: the kernel's ListenOverflows during the run (handshakes dropped: accept queue full).\n\
         cpu c, cpu s: CPU seconds (user + system) of the client and of the server process,\n  \
         from before the client is built to its sockets closed."
    );
    let _ = writeln!(out, "\nlatency deciles (ms), p10 p20 ... p90:");
    for row in rows {
        let deciles: Vec<String> = (1..10)
            .map(|d| ms(row.percentile(f64::from(d) * 10.0)))
            .collect();
        let _ = writeln!(out, "  {:<11} {}", row.kind.name(), deciles.join(" "));
    }
    for row in rows {
        let kinds: Vec<String> = row
            .errors
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect();
        let errors = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        };
        let _ = writeln!(
            out,
            "\n{}: errors by kind: {errors}; {} tasks spawned in {:.1} ms",
            row.kind.name(),
            row.latencies.len() as u64 + row.error_count(),
            row.spawning.as_secs_f64() * 1e3
        );
        if let Some(first) = &row.first_error {
            let _ = writeln!(out, "  first error: {first}");
        }
        if row.file_limit_hits > 0 {
            let _ = writeln!(
                out,
                "  FINDING: {} request(s) failed for lack of file descriptors in the client",
                row.file_limit_hits
            );
        }
        let s = &row.server;
        let _ = writeln!(
            out,
            "  server: {} requests answered, {} accepted, peak {} open, {} accept errors ({} EMFILE)",
            s.requests, row.opened, s.peak, s.accept_errors, s.accept_file_limit
        );
        if let Some(p) = &row.pool {
            let c = &p.counters;
            let _ = writeln!(
                out,
                "  pool: created {} reused {} returned {} closed {} waits {} wait timeouts {} \
                 refused {} connect failures {}; sampled peaks: {} connections, {} waiters",
                c.created,
                c.reused,
                c.returned,
                c.closed,
                c.waits,
                c.wait_timeouts,
                c.refused,
                c.connect_failed,
                p.peak_conns,
                p.peak_waiters,
            );
        }
    }
    let connpool = rows.iter().find(|r| r.kind == Kind::Connpool);
    let _ = writeln!(out, "\n== goal (issue 5) ==");
    let holds = connpool.map(|r| {
        let created = r.pool.as_ref().map_or(0, |p| p.counters.created);
        r.opened <= options.cap as u64 && created <= options.cap as u64 && r.error_count() == 0
    });
    let verdict = common::verdict(holds);
    let detail = connpool.map_or_else(String::new, |r| {
        format!(
            ": opened {}, created {}, errors {}",
            r.opened,
            r.pool.as_ref().map_or(0, |p| p.counters.created),
            r.error_count()
        )
    });
    let _ = writeln!(
        out,
        "  {verdict} {} requests through connpool with max_conns_per_host {}: \
         opened <= {} and no errors{detail}",
        options.requests, options.cap, options.cap
    );
    holds
}
