//! `connpool bench URL`: a load generator on one [`connpool::http::Client`].
//!
//! `-c C` workers — tasks on a multi-thread tokio runtime of `--threads T`
//! threads — share one client whose per-host cap is `--max-conns M`
//! (default `C`, so no worker waits for a connection). Each worker sends a
//! request, reads its response to the end (so the connection goes back to
//! the pool), and starts the next, until `-n N` requests were sent in all
//! or `--duration D` has passed, whichever comes first. `N` defaults to
//! 10,000 when no duration is given; with a duration alone there is no
//! request limit.
//!
//! # What it measures, and how
//!
//! * **Latency**: from the call to `send` to the last byte of the body,
//!   of every response (whatever its status), in microseconds. Each worker
//!   has its own [`hdrhistogram`] (3 significant digits, resized as
//!   needed), as well as its own status and error counts; they are merged
//!   once at the end, so the request path shares nothing but two relaxed
//!   atomic counters (the requests claimed, for `-n`, and the requests
//!   done, for the progress bar).
//! * **Throughput**: requests finished (responses and failures) divided by
//!   the wall time from the first worker's start to the last one's end.
//! * **Connections**: opened and reused, from the pool's
//!   [`Counters`](connpool::Counters).
//! * **Errors** by [`ErrorKind`](connpool::ErrorKind), with one message of
//!   each kind. They do not stop the run; the exit status is 1 if any
//!   request failed.
//! * **CPU time per request**: the whole process's user and system time
//!   (`getrusage(RUSAGE_SELF)`: every runtime thread and the progress bar)
//!   spent during the run, divided by the requests finished.
//!
//! At the deadline of `--duration`, requests still in flight are dropped
//! (a dropped request closes its connection, see the library's
//! cancellation rule); they are reported as *cancelled*, neither answered
//! nor failed, so a server that never answers cannot make the run
//! outlast its duration.
//!
//! The progress bar goes to stderr, and only when stderr is a terminal
//! and neither `--json` nor `--quiet` was given. The report goes to
//! stdout: an aligned table, or with `--json` one JSON object.
//!
//! # CPU per request, against wrk and oha
//!
//! Measured on the project's 2-core machine (other sessions' builds ran on
//! it too, hence the spread), against nginx 1.22 on 127.0.0.1: one worker
//! process pinned to CPU 0 (`worker_cpu_affinity 01`), `keepalive_timeout
//! 75s`, `keepalive_requests 1000000`, `access_log off`, `return 200 "ok"`.
//! Each client ran pinned to CPU 1 (`taskset -c 1`) with one thread, under
//! `/usr/bin/time -f '%U %S'`, after waiting for the machine to be 90 %
//! idle; its user + system time divided by the requests it completed
//! (all `200`, no errors) is its CPU per request. The tools took turns,
//! round after round: `wrk 4.1.0 -t1 -c C -d 4s` (wrk has no request
//! count), `oha 1.16.0 --no-tui -n N -c C --worker-threads 1`,
//! `connpool bench -n N -c C --threads 1` (release build), with
//! N = 150,000 (c=32) and 100,000 (c=8).
//!
//! | client | c=32: median (min–max) of 7 | c=8: median (min–max) of 5 | syscalls per request (c=32) |
//! |---|---|---|---|
//! | wrk | 10.5 µs (9.0–12.6) | 10.3 µs (8.9–10.7) | 4.2: `write`, `read`, 2 × `epoll_ctl` |
//! | oha | 13.3 µs (12.4–16.5) | 15.8 µs (13.4–17.0) | 2.1: `writev`, `recvfrom` |
//! | connpool bench | 12.9 µs (11.3–16.9) | 13.6 µs (11.5–20.2) | 3.0: `sendto`, `recvfrom`, and the checkout's `recv(MSG_PEEK)` |
//!
//! Every client kept its core busy (CPU time ≈ wall time), so CPU per
//! request is also the inverse of its throughput (about 60–90 k req/s
//! for connpool and oha, 90–110 k for wrk). System time is most of it:
//! per request about 4 µs user + 9 µs system for connpool, 5 + 8 for oha,
//! 1 + 9 for wrk (whose user time is one hand-written event loop).
//! Syscalls were counted with `perf stat -e raw_syscalls:sys_enter`.
//! The report's own `getrusage` figure agreed with `/usr/bin/time` within
//! 1 %: start-up costs next to nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use connpool::http::{Client, ClientConfig};
use connpool::tls::TlsConfig;
use hdrhistogram::Histogram;
use http::header::HeaderMap;
use http::{Method, Uri};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::request_args::{
    HeaderField, header_map, method_or_default, parse_duration, parse_header, parse_method,
    parse_url,
};
use crate::tls_args::TlsArgs;

/// Requests sent when neither `-n` nor `--duration` is given.
const DEFAULT_REQUESTS: u64 = 10_000;

/// Options of `connpool bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The URL to request (`http[s]://host[:port]/path?query`).
    #[arg(value_parser = parse_url)]
    url: Uri,

    /// Requests to send in all. Default: 10000, or no limit with
    /// --duration.
    #[arg(short = 'n', long = "requests", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,

    /// Concurrent workers, each with one request in flight.
    #[arg(short = 'c', long = "concurrency", value_name = "C", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,

    /// Connections per host, counting those being opened (default: C).
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
    max_conns: Option<u32>,

    /// Stop after this long (`10s`, `500ms`, `2m`; a bare number is
    /// seconds). With -n too, whichever comes first.
    #[arg(short = 'z', long, value_name = "D", value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Runtime threads (default: the available parallelism).
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,

    /// The request method. Default: GET, or POST with -d.
    #[arg(short = 'X', long = "request", value_name = "METHOD", value_parser = parse_method)]
    method: Option<Method>,

    /// A request header field, `Name: value`. Repeat for more.
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header)]
    headers: Vec<HeaderField>,

    /// The request body, sent as is with every request (no Content-Type
    /// is added; use -H).
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    data: Option<String>,

    /// Print the report as one JSON object (and no progress bar).
    #[arg(long)]
    json: bool,

    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,

    // `--cacert`, `-k`, `--cert`, `--key`.
    #[command(flatten)]
    tls: TlsArgs,
}

/// What every worker shares: the request to send and two counters.
struct Shared {
    client: Client,
    method: Method,
    url: Uri,
    headers: HeaderMap,
    body: Option<Bytes>,
    /// Requests to send in all (`u64::MAX`: no limit).
    limit: u64,
    /// Requests claimed by a worker so far; may overshoot `limit` by the
    /// number of workers (each claims once more before it stops).
    claimed: AtomicU64,
    /// Requests finished, for the progress bar.
    done: AtomicU64,
}

/// The first error of one kind, and how many there were.
struct ErrorTally {
    count: u64,
    example: String,
}

/// What one worker saw. Merged with the others' at the end.
struct WorkerTally {
    /// Latency of every response, in microseconds.
    latency: Histogram<u64>,
    responses: u64,
    failed: u64,
    /// Requests dropped at the deadline (0 or 1).
    cancelled: u64,
    body_bytes: u64,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<&'static str, ErrorTally>,
    in_flight: bool,
}

impl WorkerTally {
    fn new() -> WorkerTally {
        WorkerTally {
            // Auto-resizing, so a worker's histogram is only as large as
            // its slowest response needs (a few tens of KiB).
            latency: Histogram::new(3).expect("3 significant digits are valid"),
            responses: 0,
            failed: 0,
            cancelled: 0,
            body_bytes: 0,
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            in_flight: false,
        }
    }

    fn merge(&mut self, other: WorkerTally) {
        // Both histograms resize themselves, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.responses += other.responses;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        self.body_bytes += other.body_bytes;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        for (kind, tally) in other.errors {
            self.errors
                .entry(kind)
                .and_modify(|mine| mine.count += tally.count)
                .or_insert(tally);
        }
    }
}

/// One worker: requests one after another until the limit is reached.
/// Everything it learns goes into `tally`, which outlives the future, so
/// nothing is lost when the deadline drops it.
async fn work(shared: &Shared, tally: &mut WorkerTally) {
    while shared.claimed.fetch_add(1, Ordering::Relaxed) < shared.limit {
        tally.in_flight = true;
        let started = Instant::now();
        let outcome = one_request(shared).await;
        let took = started.elapsed();
        tally.in_flight = false;
        match outcome {
            Ok((status, bytes)) => {
                tally.responses += 1;
                tally.body_bytes += bytes;
                *tally.statuses.entry(status).or_default() += 1;
                let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                // The histogram resizes itself: only a value past what it
                // can ever track (over u64::MAX / 2 µs) is refused.
                let _ = tally.latency.record(micros);
            }
            Err(err) => {
                tally.failed += 1;
                tally
                    .errors
                    .entry(err.kind().as_str())
                    .and_modify(|e| e.count += 1)
                    .or_insert_with(|| ErrorTally {
                        count: 1,
                        example: err.to_string(),
                    });
            }
        }
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends the request and reads the body to its end (so the connection
/// goes back to the pool). Returns the status and the body's length.
async fn one_request(shared: &Shared) -> Result<(u16, u64), connpool::Error> {
    let mut request = shared
        .client
        .request_builder(shared.method.clone(), shared.url.clone());
    if !shared.headers.is_empty() {
        request = request.headers(shared.headers.clone());
    }
    if let Some(body) = &shared.body {
        request = request.body(body.clone());
    }
    let mut resp = request.send().await?;
    let status = resp.status().as_u16();
    let mut bytes = 0;
    while let Some(chunk) = resp.chunk().await? {
        bytes += chunk.len() as u64;
    }
    Ok((status, bytes))
}

/// User and system CPU time of the whole process so far.
fn process_cpu_time() -> (Duration, Duration) {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory the size of a `rusage`,
    // which getrusage fills on success; a zeroed `rusage` (plain integers)
    // is valid too, so it is initialized whatever getrusage does.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    (time(usage.ru_utime), time(usage.ru_stime))
}

/// The report, as printed with `--json`.
#[derive(Serialize)]
struct Report {
    url: String,
    method: String,
    concurrency: u32,
    threads: usize,
    max_conns: u32,
    /// Requests finished: `responses + failed`.
    requests: u64,
    /// Complete responses, whatever their status.
    responses: u64,
    failed: u64,
    /// Requests in flight at the `--duration` deadline, dropped.
    cancelled: u64,
    wall_time_s: f64,
    throughput_rps: f64,
    body_bytes: u64,
    latency_us: Latency,
    status_codes: BTreeMap<String, u64>,
    connections: Connections,
    errors: BTreeMap<String, ErrorReport>,
    cpu: Cpu,
}

/// Latency percentiles in microseconds; all `null` without responses.
#[derive(Serialize)]
struct Latency {
    min: Option<u64>,
    mean: Option<f64>,
    p50: Option<u64>,
    p90: Option<u64>,
    p99: Option<u64>,
    #[serde(rename = "p99.9")]
    p99_9: Option<u64>,
    max: Option<u64>,
}

#[derive(Serialize)]
struct Connections {
    opened: u64,
    reused: u64,
    connect_failed: u64,
    /// Idle connections found closed by the server before reuse.
    stale_evicted: u64,
}

#[derive(Serialize)]
struct ErrorReport {
    count: u64,
    example: String,
}

#[derive(Serialize)]
struct Cpu {
    user_s: f64,
    sys_s: f64,
    /// `(user + sys) / requests`, in microseconds; `null` with no request.
    per_request_us: Option<f64>,
}

/// Runs `connpool bench` on a runtime of its own and returns its exit
/// status.
pub fn run(args: BenchArgs) -> ExitCode {
    let tls = match args.tls.config() {
        Ok(tls) => tls,
        Err(err) => {
            eprintln!("connpool bench: bad TLS options: {err}");
            return ExitCode::from(2);
        }
    };
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |t| t as usize,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("connpool bench: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(bench(&args, threads, tls));
    // Do not wait for connections the pool is still closing.
    runtime.shutdown_background();

    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(err) => {
                eprintln!("connpool bench: cannot write the report: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", format_table(&report));
    }
    if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn bench(args: &BenchArgs, threads: usize, tls: Option<TlsConfig>) -> Report {
    let concurrency = args.concurrency;
    let max_conns = args.max_conns.unwrap_or(concurrency);
    let defaults = ClientConfig::default();
    let client = Client::builder()
        .config(ClientConfig {
            max_conns_per_host: max_conns as usize,
            // Keep every connection between two requests: a cap of idle
            // connections under M would close and reopen them.
            pool_max_idle_per_host: max_conns as usize,
            pool_max_idle_total: defaults.pool_max_idle_total.max(max_conns as usize),
            // At most C requests are ever waiting: none is refused.
            max_waiters_per_host: defaults.max_waiters_per_host.max(concurrency as usize),
            tls,
            ..defaults
        })
        .build();

    let body = args.data.as_ref().map(|d| Bytes::from(d.clone()));
    let method = method_or_default(args.method.as_ref(), body.is_some());
    let headers = header_map(&args.headers);
    let limit = match (args.requests, args.duration) {
        (Some(n), _) => n,
        (None, Some(_)) => u64::MAX,
        (None, None) => DEFAULT_REQUESTS,
    };
    let shared = Arc::new(Shared {
        client: client.clone(),
        method: method.clone(),
        url: args.url.clone(),
        headers,
        body,
        limit,
        claimed: AtomicU64::new(0),
        done: AtomicU64::new(0),
    });

    let progress = progress_bar(args, limit);
    let cpu_before = process_cpu_time();
    let started = Instant::now();
    let deadline = args
        .duration
        .map(|d| tokio::time::Instant::from_std(started + d));
    let ticker = (!progress.is_hidden())
        .then(|| tokio::spawn(tick(progress.clone(), Arc::clone(&shared), started)));

    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let mut tally = WorkerTally::new();
                match deadline {
                    None => work(&shared, &mut tally).await,
                    Some(deadline) => {
                        let run = work(&shared, &mut tally);
                        if tokio::time::timeout_at(deadline, run).await.is_err() && tally.in_flight
                        {
                            tally.cancelled = 1;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = WorkerTally::new();
    for worker in workers {
        match worker.await {
            Ok(tally) => total.merge(tally),
            // A worker only panics on a bug; say so and count the rest.
            Err(err) => eprintln!("connpool bench: a worker failed: {err}"),
        }
    }
    let wall = started.elapsed();
    let cpu_after = process_cpu_time();
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    progress.finish_and_clear();

    let counters = client.stats().counters;
    let stale = counters.evicted_stale();
    let requests = total.responses + total.failed;
    let user = cpu_after.0.saturating_sub(cpu_before.0);
    let sys = cpu_after.1.saturating_sub(cpu_before.1);
    let h = &total.latency;
    let some = |v: u64| (total.responses > 0).then_some(v);
    Report {
        url: args.url.to_string(),
        method: method.to_string(),
        concurrency,
        threads,
        max_conns,
        requests,
        responses: total.responses,
        failed: total.failed,
        cancelled: total.cancelled,
        wall_time_s: wall.as_secs_f64(),
        throughput_rps: requests as f64 / wall.as_secs_f64().max(1e-9),
        body_bytes: total.body_bytes,
        latency_us: Latency {
            min: some(h.min()),
            mean: (total.responses > 0).then(|| h.mean()),
            p50: some(h.value_at_quantile(0.50)),
            p90: some(h.value_at_quantile(0.90)),
            p99: some(h.value_at_quantile(0.99)),
            p99_9: some(h.value_at_quantile(0.999)),
            max: some(h.max()),
        },
        status_codes: total
            .statuses
            .iter()
            .map(|(status, count)| (status.to_string(), *count))
            .collect(),
        connections: Connections {
            opened: counters.created,
            reused: counters.reused,
            connect_failed: counters.connect_failed,
            stale_evicted: stale,
        },
        errors: total
            .errors
            .into_iter()
            .map(|(kind, e)| {
                let report = ErrorReport {
                    count: e.count,
                    example: e.example,
                };
                (kind.to_string(), report)
            })
            .collect(),
        cpu: Cpu {
            user_s: user.as_secs_f64(),
            sys_s: sys.as_secs_f64(),
            per_request_us: (requests > 0)
                .then(|| (user + sys).as_secs_f64() * 1e6 / requests as f64),
        },
    }
}

/// A bar on stderr: requests done out of `limit`, or time out of the
/// duration when there is no request limit. Hidden unless stderr is a
/// terminal and neither `--json` nor `--quiet` was given.
fn progress_bar(args: &BenchArgs, limit: u64) -> ProgressBar {
    if args.json || args.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (length, template) = match args.duration {
        Some(duration) if limit == u64::MAX => (
            u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            "{elapsed:>4} {bar:40} {msg}",
        ),
        _ => (limit, "{elapsed:>4} {bar:40} {pos}/{len} {msg}"),
    };
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Moves the bar ten times a second, from the shared counter (workers
/// never touch the bar, whose state sits behind a lock).
async fn tick(bar: ProgressBar, shared: Arc<Shared>, started: Instant) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        let done = shared.done.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
        if shared.limit == u64::MAX {
            bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
            bar.set_message(format!("{done} requests  {rate:.0} req/s"));
        } else {
            bar.set_position(done);
            bar.set_message(format!("{rate:.0} req/s"));
        }
    }
}

/// The report as an aligned table.
fn format_table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}  ({} workers on {} {}, at most {} {})",
        r.method,
        r.url,
        r.concurrency,
        r.threads,
        plural(r.threads as u64, "thread", "threads"),
        r.max_conns,
        plural(u64::from(r.max_conns), "connection", "connections"),
    );
    let _ = writeln!(out);
    let mut requests = format!(
        "{} ({} {}, {} failed",
        r.requests,
        r.responses,
        plural(r.responses, "response", "responses"),
        r.failed
    );
    if r.cancelled > 0 {
        let _ = write!(requests, "; {} cancelled at the deadline", r.cancelled);
    }
    requests.push(')');
    row(&mut out, "requests", &requests);
    row(&mut out, "wall time", &format!("{:.3} s", r.wall_time_s));
    row(
        &mut out,
        "throughput",
        &format!("{:.0} req/s", r.throughput_rps),
    );
    row(&mut out, "body bytes", &r.body_bytes.to_string());

    let l = &r.latency_us;
    let columns = [
        ("min", l.min),
        ("p50", l.p50),
        ("p90", l.p90),
        ("p99", l.p99),
        ("p99.9", l.p99_9),
        ("max", l.max),
    ];
    if r.responses > 0 {
        let mut names = String::new();
        let mut values = String::new();
        for (name, value) in columns {
            let _ = write!(names, "{name:>10}");
            let _ = write!(values, "{:>10}", format_micros(value.unwrap_or(0)));
        }
        row(&mut out, "latency", &names);
        row(&mut out, "", &values);
    } else {
        row(&mut out, "latency", "no responses");
    }

    let statuses: Vec<String> = r
        .status_codes
        .iter()
        .map(|(status, count)| format!("{status}: {count}"))
        .collect();
    row(
        &mut out,
        "status codes",
        &if statuses.is_empty() {
            "none".to_string()
        } else {
            statuses.join(", ")
        },
    );

    let c = &r.connections;
    let mut conns = format!("{} opened, {} reused", c.opened, c.reused);
    if c.connect_failed > 0 {
        let _ = write!(conns, ", {} connects failed", c.connect_failed);
    }
    if c.stale_evicted > 0 {
        let _ = write!(conns, ", {} found closed before reuse", c.stale_evicted);
    }
    row(&mut out, "connections", &conns);

    if r.errors.is_empty() {
        row(&mut out, "errors", "none");
    } else {
        let mut label = "errors";
        for (kind, e) in &r.errors {
            row(
                &mut out,
                label,
                &format!("{kind}: {}  (e.g. {})", e.count, e.example),
            );
            label = "";
        }
    }

    let per_request = r
        .cpu
        .per_request_us
        .map_or_else(|| "-".to_string(), |us| format!("{us:.1} µs"));
    row(
        &mut out,
        "cpu",
        &format!(
            "{per_request} per request  ({:.3} s user + {:.3} s sys)",
            r.cpu.user_s, r.cpu.sys_s
        ),
    );
    out
}

fn row(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "  {label:<14}{value}");
}

/// `41 µs`, `1.23 ms`, `2.50 s`.
fn format_micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_are_shown_in_a_readable_unit() {
        assert_eq!(format_micros(41), "41 µs");
        assert_eq!(format_micros(1_234), "1.23 ms");
        assert_eq!(format_micros(2_500_000), "2.50 s");
    }
}
