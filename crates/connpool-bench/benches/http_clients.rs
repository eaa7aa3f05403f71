//! HTTP/1.1 clients side by side: connpool's [`Client`] beside hyper-util's
//! legacy client and reqwest, and two raw-socket baselines, all measured in
//! the same run against the same keep-alive server.
//!
//! ```text
//! cargo bench -p connpool-bench --bench http_clients
//! cargo bench -p connpool-bench --bench http_clients -- --quick
//! cargo bench -p connpool-bench --bench http_clients -- --only connpool,hyper-util
//! cargo bench -p connpool-bench --bench http_clients -- --requests 100000 --json
//! ```
//!
//! Options (after `--`): `--requests N` measured requests per cell
//! (default 100 000; `--quick`: 6 000), `--warmup N` requests before each
//! round (default 2 000; `--quick`: 300), `--rounds R` (default 5),
//! `--only NAME[,NAME...]` (`raw-blocking`, `raw-async`, `connpool`,
//! `hyper-util`, `reqwest`), `--json` (one JSON object instead of the table).
//!
//! # What is measured
//!
//! The server answers every `GET` with the same 52-byte response
//! (`Content-Length: 13`, body `hello, world\n`) on keep-alive
//! connections. The clients:
//!
//! * `raw-blocking` — std `TcpStream`: write the request bytes, read exactly
//!   the response's length. One thread per connection (32 at c=32). The
//!   floor for one request at a time: no parsing, no pool, no runtime.
//! * `raw-async` — the same on tokio's `TcpStream`, one task per connection.
//!   The floor for a tokio client.
//! * `connpool` — `Client::new()`; `client.get(url).send().await?.bytes().await?`.
//! * `hyper-util` — `legacy::Client::builder(TokioExecutor::new()).build_http()`
//!   with `Empty<Bytes>` bodies; the response body collected.
//! * `reqwest` — `reqwest::Client::builder().no_proxy().build()` (no TLS,
//!   no default features); `client.get(url).send().await?.bytes().await?`.
//!
//! Every client keeps its defaults; each allows the 32 connections the c=32
//! cells use (connpool: 64 per host, 32 idle; hyper-util and reqwest have
//! no cap). Every client is handed the URL as a `&str` on every request and
//! parses it, as calling code does. Each response's status and body are
//! checked; anything else counts as an error (the table's errors column,
//! warm-up included, must be 0).
//!
//! Cells: concurrency 1 and 32 (32 tasks or threads, each with its own
//! connection and its requests back to back), on a current_thread runtime
//! and on a 2-worker multi_thread runtime; `raw-blocking` runs once per
//! concurrency (runtime "threads"). Each cell's requests are split into
//! rounds; in each round every client of the same concurrency runs a
//! warm-up and then its share, and the order rotates from round to round,
//! so a burst of noise from elsewhere on the machine lands on all clients
//! alike and no client always runs first. The warm-up before each round
//! also reopens connections a pool closed while the other clients ran
//! (connpool's default idle timeout is 4 s): the pool counters printed
//! under the table show it.
//!
//! Wall and CPU figures are the median round's; allocations are averaged
//! over all rounds (they hardly vary). Per cell the table gives: wall time
//! per request (and requests/s); the mean latency (c=1: wall / requests;
//! c=32: wall × 32 / requests, each task's requests being back to back);
//! the ratio of the wall time per request to the baseline's (c=1:
//! `raw-blocking`; c=32: `raw-async` on the same runtime; `raw-blocking`
//! at c=32 against `raw-async` on current_thread, both on one CPU) and the
//! difference in µs; the client's CPU time per request (user, system,
//! total, and the total above `raw-async` in the same cell: what the
//! client adds); heap allocations and bytes allocated per request; the
//! spread of the rounds; the errors. Then the goals of issue 5 and whether
//! they hold.
//!
//! # Method and pitfalls
//!
//! * **The server runs in a child process** (this binary, re-executed with
//!   `CONNPOOL_BENCH_SERVER` set; it prints its port and serves until its
//!   stdin closes). `getrusage(RUSAGE_SELF)` then counts the client's CPU
//!   only, and the counting allocator the client's allocations only.
//! * **Pinning.** On a machine with two CPUs the scheduler may put the
//!   server and the client on the same CPU, or move them, and the latency
//!   of one request then depends on its whims. So when two CPUs are allowed
//!   the server is pinned to the second and the client (the main thread, the
//!   threads it starts and the current_thread runtime) to the first. The
//!   multi_thread runtime's two workers necessarily span both CPUs: the
//!   server stays pinned to the second, sharing it with one worker. The
//!   placement is printed.
//! * **Compare ratios within one run.** Absolute times move with the
//!   machine (frequency, other tenants, CPU idle states between requests:
//!   at c=1 each request is two cross-CPU wake-ups). Ratios between clients
//!   measured in the same rounds are what is comparable across runs. The
//!   spread column is (slowest − fastest round) / median round: a large
//!   one says the machine was busy during some round. The median round
//!   resists such bursts better than a sum would; when two clients differ
//!   by less than the spread, run again before believing the order. On a
//!   shared VM spreads of 20–50 % are common, mostly from the first round.
//! * **CPU time.** The total (user + system) comes from the scheduler's
//!   exact runtime; the user/system split is sampled at the kernel's tick
//!   (often 250 Hz: a 0.5 s round holds ~125 ticks) and is only good to a
//!   few percent of the total. The "+cpu" column (total above `raw-async`)
//!   is the better measure of what a client costs.
//! * **multi_thread at c=1** is partly a lottery: the one task's worker may
//!   run on the server's CPU, where a hand-off costs less than a cross-CPU
//!   wake-up (on a VM much less), so even `raw-async` can beat
//!   `raw-blocking` there. Its spread shows it.
//! * **Allocations** are counted by a global allocator wrapping `System`
//!   (relaxed atomics; a `realloc` counts as one allocation of its new
//!   size). It also counts, once per round, the spawning of the 32 tasks or
//!   threads (a few allocations each: noise below 0.01 per request). Its
//!   atomics cost a few ns per allocation, charged to each client in
//!   proportion to its allocations.
//! * The raw baselines parse nothing: they read exactly the known response
//!   length. They are floors, not clients.
//! * hyper-util's `HttpConnector` leaves `TCP_NODELAY` off by default (the
//!   others turn it on). That costs nothing here: each request is one
//!   write, made after the previous response acknowledged everything sent.

mod common;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use common::requests::{connect_nodelay, connpool_get, hyper_get, raw_exchange, reqwest_get};
use common::rounds::{Outcome, Totals, cpu_times};
use common::{
    BoxError, Counting, Heads, HyperClient, Placement, RESPONSE, ServerProcess, allowed_cpus,
    pin_current_thread,
};

// --------------------------------------------------------------- constants

/// Set in the environment of the child process that serves; its value is
/// the CPU to pin the server to, or `-`.
const SERVER_ENV: &str = "CONNPOOL_BENCH_SERVER";
const CONCURRENCIES: [usize; 2] = [1, 32];
const DEFAULT_REQUESTS: u64 = 100_000;
const QUICK_REQUESTS: u64 = 6_000;
const DEFAULT_WARMUP: u64 = 2_000;
const QUICK_WARMUP: u64 = 300;
const DEFAULT_ROUNDS: u64 = 5;

// -------------------------------------------------------- counting allocator

/// Counts the client's allocations and bytes (the allocs and bytes columns).
#[global_allocator]
static GLOBAL: Counting<Totals> = Counting(Totals::new());

// ------------------------------------------------------------------ server

/// The child process: pins itself, listens on 127.0.0.1, prints its port,
/// and serves one thread per connection until its stdin closes.
fn serve(cpu: &str) {
    common::pin_server(cpu);
    let listener = TcpListener::bind("127.0.0.1:0").expect("server: bind");
    let port = listener.local_addr().expect("server: local addr").port();
    common::announce(&port.to_string());
    common::exit_when_stdin_closes();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || serve_connection(stream))
            .expect("server: spawn");
    }
}

/// Answers every request head on `stream` with [`RESPONSE`] until the
/// client closes (or sends a head larger than the buffer).
fn serve_connection(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut heads = Heads::<8192>::new();
    loop {
        while heads.next_head().is_some() {
            if stream.write_all(RESPONSE).is_err() {
                return;
            }
        }
        if !heads.read_from(&mut stream) {
            return;
        }
    }
}

// ------------------------------------------------------------------ clients

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    RawBlocking,
    RawAsync,
    Connpool,
    HyperUtil,
    Reqwest,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::RawBlocking,
        Kind::RawAsync,
        Kind::Connpool,
        Kind::HyperUtil,
        Kind::Reqwest,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::RawBlocking => "raw-blocking",
            Kind::RawAsync => "raw-async",
            Kind::Connpool => "connpool",
            Kind::HyperUtil => "hyper-util",
            Kind::Reqwest => "reqwest",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rt {
    /// `raw-blocking`: the main thread, or one thread per connection.
    Threads,
    CurrentThread,
    MultiThread,
}

impl Rt {
    fn name(self) -> &'static str {
        match self {
            Rt::Threads => "threads",
            Rt::CurrentThread => "current_thread",
            Rt::MultiThread => "multi_thread",
        }
    }
}

/// What every client is pointed at, built once.
#[derive(Clone, Copy)]
struct Target {
    addr: SocketAddr,
    url: &'static str,
    /// The raw baselines' request: the request line and `host` (connpool
    /// adds its default `user-agent`, reqwest `accept: */*`).
    request: &'static [u8],
}

impl Target {
    fn new(addr: SocketAddr) -> Target {
        let url = format!("http://{addr}/");
        let request = format!("GET / HTTP/1.1\r\nhost: {addr}\r\n\r\n");
        Target {
            addr,
            url: Box::leak(url.into_boxed_str()),
            request: Box::leak(request.into_boxed_str()).as_bytes(),
        }
    }
}

/// One connection of `raw-blocking`, opened at its first request and
/// opened again after an error.
struct BlockingWorker {
    target: Target,
    stream: Option<TcpStream>,
}

impl BlockingWorker {
    fn request(&mut self) -> Result<(), BoxError> {
        let result = self.exchange();
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn exchange(&mut self) -> Result<(), BoxError> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.target.addr)?;
                stream.set_nodelay(true)?;
                self.stream.insert(stream)
            }
        };
        stream.write_all(self.target.request)?;
        let mut buf = [0u8; RESPONSE.len()];
        stream.read_exact(&mut buf)?;
        if buf != RESPONSE {
            return Err(format!("unexpected response: {:?}", String::from_utf8_lossy(&buf)).into());
        }
        Ok(())
    }

    fn run(&mut self, requests: u64) -> Outcome {
        let mut outcome = Outcome::default();
        for _ in 0..requests {
            outcome.record(self.request());
        }
        outcome
    }
}

/// One task's client on a runtime: its own connection for `raw-async`, a
/// clone of the shared client otherwise.
enum AsyncWorker {
    Raw {
        target: Target,
        stream: Option<tokio::net::TcpStream>,
    },
    Connpool(connpool::http::Client, Target),
    HyperUtil(HyperClient, Target),
    Reqwest(reqwest::Client, Target),
}

impl AsyncWorker {
    /// `n` workers of `kind`, sharing one client. Call inside the runtime.
    fn build(kind: Kind, target: Target, n: usize) -> Vec<AsyncWorker> {
        let one = || match kind {
            Kind::RawBlocking => unreachable!("raw-blocking runs on threads"),
            Kind::RawAsync => AsyncWorker::Raw {
                target,
                stream: None,
            },
            Kind::Connpool => {
                let client = connpool::http::Client::new();
                let config = client.config();
                assert!(
                    config.max_conns_per_host >= 32 && config.pool_max_idle_per_host >= 32,
                    "connpool's defaults must allow 32 connections"
                );
                AsyncWorker::Connpool(client, target)
            }
            Kind::HyperUtil => AsyncWorker::HyperUtil(common::hyper_builder().build_http(), target),
            Kind::Reqwest => AsyncWorker::Reqwest(common::reqwest_client(), target),
        };
        let first = one();
        let mut workers = Vec::with_capacity(n);
        for _ in 1..n {
            workers.push(first.share());
        }
        workers.push(first);
        workers
    }

    /// Another worker on the same client (a new connection for `raw-async`).
    fn share(&self) -> AsyncWorker {
        match self {
            AsyncWorker::Raw { target, .. } => AsyncWorker::Raw {
                target: *target,
                stream: None,
            },
            AsyncWorker::Connpool(c, t) => AsyncWorker::Connpool(c.clone(), *t),
            AsyncWorker::HyperUtil(c, t) => AsyncWorker::HyperUtil(c.clone(), *t),
            AsyncWorker::Reqwest(c, t) => AsyncWorker::Reqwest(c.clone(), *t),
        }
    }

    async fn request(&mut self) -> Result<(), BoxError> {
        match self {
            AsyncWorker::Raw { target, stream } => {
                if stream.is_none() {
                    *stream = Some(connect_nodelay(target.addr).await?);
                }
                let tcp = stream.as_mut().expect("connected");
                let result = raw_exchange(tcp, target.request, RESPONSE).await;
                if result.is_err() {
                    *stream = None;
                }
                result
            }
            AsyncWorker::Connpool(client, target) => connpool_get(client, target.url).await,
            AsyncWorker::HyperUtil(client, target) => hyper_get(client, target.url).await,
            AsyncWorker::Reqwest(client, target) => reqwest_get(client, target.url).await,
        }
    }

    async fn run(mut self, requests: u64) -> (AsyncWorker, Outcome) {
        let mut outcome = Outcome::default();
        for _ in 0..requests {
            outcome.record(self.request().await);
        }
        (self, outcome)
    }

    /// connpool's pool counters, for the integrity line.
    fn connpool_counters(&self) -> Option<connpool::Counters> {
        match self {
            AsyncWorker::Connpool(client, _) => Some(client.stats().counters),
            _ => None,
        }
    }
}

// -------------------------------------------------------------- measuring

/// Everything measured at one moment.
struct Snapshot {
    at: Instant,
    user: Duration,
    sys: Duration,
    allocs: u64,
    alloc_bytes: u64,
}

fn snapshot() -> Snapshot {
    let (user, sys) = cpu_times();
    Snapshot {
        at: Instant::now(),
        user,
        sys,
        allocs: GLOBAL.0.allocs(),
        alloc_bytes: GLOBAL.0.bytes(),
    }
}

/// One round of one cell, per request.
#[derive(Clone, Copy)]
struct RoundSample {
    wall_us: f64,
    user_us: f64,
    sys_us: f64,
}

/// One cell: its rounds, and sums over them.
#[derive(Default)]
struct Tally {
    requests: u64,
    wall: Duration,
    allocs: u64,
    alloc_bytes: u64,
    /// The errors, warm-ups included.
    outcome: Outcome,
    rounds: Vec<RoundSample>,
}

impl Tally {
    fn add_round(&mut self, before: &Snapshot, after: &Snapshot, requests: u64) {
        let wall = after.at - before.at;
        let per_request = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
        self.requests += requests;
        self.wall += wall;
        self.allocs += after.allocs - before.allocs;
        self.alloc_bytes += after.alloc_bytes - before.alloc_bytes;
        self.rounds.push(RoundSample {
            wall_us: per_request(wall),
            user_us: per_request(after.user.saturating_sub(before.user)),
            sys_us: per_request(after.sys.saturating_sub(before.sys)),
        });
    }

    /// The median over the rounds of `f`.
    fn median(&self, f: impl Fn(&RoundSample) -> f64) -> f64 {
        common::rounds::median(self.rounds.iter().map(f)).unwrap_or(f64::NAN)
    }

    /// Wall time per request (µs), the median round's.
    fn wall_us(&self) -> f64 {
        self.median(|r| r.wall_us)
    }

    fn user_us(&self) -> f64 {
        self.median(|r| r.user_us)
    }

    fn sys_us(&self) -> f64 {
        self.median(|r| r.sys_us)
    }

    fn cpu_us(&self) -> f64 {
        self.median(|r| r.user_us + r.sys_us)
    }

    fn requests_per_s(&self) -> f64 {
        1e6 / self.wall_us()
    }

    /// Over all rounds (these hardly vary from round to round).
    fn allocs_per_request(&self) -> f64 {
        self.allocs as f64 / self.requests.max(1) as f64
    }

    fn alloc_bytes_per_request(&self) -> f64 {
        self.alloc_bytes as f64 / self.requests.max(1) as f64
    }

    /// (slowest round − fastest round) / median round, of the wall time.
    fn spread(&self) -> f64 {
        common::rounds::spread(self.rounds.iter().map(|r| r.wall_us))
    }
}

/// How one client runs its requests in one cell.
enum Driver<'rt> {
    Blocking(Vec<BlockingWorker>),
    Async(&'rt Runtime, Vec<AsyncWorker>),
}

/// One cell being measured: a client, a runtime and its workers (one per
/// connection).
struct Participant<'rt> {
    kind: Kind,
    rt: Rt,
    concurrency: usize,
    driver: Driver<'rt>,
    tally: Tally,
}

impl Participant<'_> {
    /// `per_worker` requests on every worker at once.
    fn run(&mut self, per_worker: u64) -> Outcome {
        match &mut self.driver {
            Driver::Blocking(workers) if workers.len() == 1 => workers[0].run(per_worker),
            Driver::Blocking(workers) => std::thread::scope(|s| {
                let handles: Vec<_> = workers
                    .iter_mut()
                    .map(|w| s.spawn(move || w.run(per_worker)))
                    .collect();
                let mut outcome = Outcome::default();
                for h in handles {
                    outcome.merge(h.join().expect("benchmark thread panicked"));
                }
                outcome
            }),
            Driver::Async(rt, workers) => {
                common::rounds::run_workers(rt, workers, per_worker, AsyncWorker::run)
            }
        }
    }

    /// One round: the warm-up, then `per_worker` measured requests on each
    /// worker.
    fn round(&mut self, warmup_per_worker: u64, per_worker: u64) {
        let warm = self.run(warmup_per_worker);
        self.tally.outcome.merge(warm);
        let before = snapshot();
        let outcome = self.run(per_worker);
        let after = snapshot();
        self.tally
            .add_round(&before, &after, per_worker * self.concurrency as u64);
        self.tally.outcome.merge(outcome);
    }

    /// The row for the table; the clients are dropped inside their runtime.
    fn finish(self) -> Row {
        let mut connpool = None;
        match self.driver {
            Driver::Blocking(workers) => drop(workers),
            Driver::Async(rt, workers) => {
                connpool = workers.first().and_then(AsyncWorker::connpool_counters);
                let _guard = rt.enter();
                drop(workers);
            }
        }
        Row {
            kind: self.kind,
            rt: self.rt,
            concurrency: self.concurrency,
            tally: self.tally,
            connpool,
        }
    }
}

/// One line of the table.
struct Row {
    kind: Kind,
    rt: Rt,
    concurrency: usize,
    tally: Tally,
    connpool: Option<connpool::Counters>,
}

// -------------------------------------------------------------- placement

/// The placement lines of the report.
fn describe(placement: &Placement, server_pid: u32) -> Vec<String> {
    let server = match placement.server_cpu {
        Some(s) => format!("server: child process {server_pid}, its threads on CPU {s}"),
        None => format!("server: child process {server_pid}, not pinned"),
    };
    let mut lines = vec![server];
    if let Some(why) = &placement.unpinned {
        lines.push(why.clone());
    }
    if let Some((c, s)) = placement.both() {
        lines.push(format!(
            "client: raw-blocking threads and current_thread on CPU {c}; \
             multi_thread's 2 workers on CPUs {c},{s} (sharing CPU {s} with the server)"
        ));
    }
    lines
}

fn runtime(rt: Rt, placement: &Placement) -> Runtime {
    let mut builder = match rt {
        Rt::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Rt::MultiThread => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            // The multi_thread runtime's threads run on both CPUs.
            if let Some((c, s)) = placement.both() {
                let cpus = [c, s];
                b.on_thread_start(move || {
                    if let Err(e) = pin_current_thread(&cpus) {
                        eprintln!("could not pin a runtime thread to CPUs {cpus:?}: {e}");
                    }
                });
            }
            b
        }
        Rt::Threads => unreachable!("no runtime for threads"),
    };
    builder.enable_all().build().expect("tokio runtime")
}

// ------------------------------------------------------------------ the run

struct Options {
    requests: u64,
    warmup: u64,
    rounds: u64,
    only: Option<Vec<Kind>>,
    json: bool,
    quick: bool,
}

const USAGE: &str = "usage: http_clients [--quick] [--requests N] [--warmup N] [--rounds R] \
                     [--only NAME[,NAME...]] [--json]\n\
                     NAME: raw-blocking, raw-async, connpool, hyper-util, reqwest";

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let (mut requests, mut warmup, mut rounds) = (None, None, DEFAULT_ROUNDS);
        let mut options = Options {
            requests: 0,
            warmup: 0,
            rounds: 0,
            only: None,
            json: false,
            quick: false,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => {} // passed by `cargo bench`
                "--quick" => options.quick = true,
                "--json" => options.json = true,
                "--requests" => requests = Some(common::positive("--requests", args.next())?),
                "--warmup" => warmup = Some(common::positive("--warmup", args.next())?),
                "--rounds" => rounds = common::positive("--rounds", args.next())?,
                "--only" => options.only = Some(common::only(args.next(), &Kind::ALL, Kind::name)?),
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let (default_requests, default_warmup) = if options.quick {
            (QUICK_REQUESTS, QUICK_WARMUP)
        } else {
            (DEFAULT_REQUESTS, DEFAULT_WARMUP)
        };
        options.requests = requests.unwrap_or(default_requests);
        options.warmup = warmup.unwrap_or(default_warmup);
        options.rounds = rounds;
        Ok(options)
    }

    fn runs(&self, kind: Kind) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(&kind))
    }
}

/// Measures every selected client at `concurrency`, the clients'
/// rounds interleaved.
fn measure_concurrency(
    concurrency: usize,
    options: &Options,
    target: Target,
    placement: &Placement,
) -> Vec<Row> {
    let current = runtime(Rt::CurrentThread, placement);
    let multi = runtime(Rt::MultiThread, placement);
    let mut participants = Vec::new();
    let conc = concurrency as u64;
    if options.runs(Kind::RawBlocking) {
        let workers = (0..concurrency)
            .map(|_| BlockingWorker {
                target,
                stream: None,
            })
            .collect();
        participants.push(Participant {
            kind: Kind::RawBlocking,
            rt: Rt::Threads,
            concurrency,
            driver: Driver::Blocking(workers),
            tally: Tally::default(),
        });
    }
    for (rt, runtime) in [(Rt::CurrentThread, &current), (Rt::MultiThread, &multi)] {
        for kind in Kind::ALL[1..].iter().copied().filter(|&k| options.runs(k)) {
            let workers = {
                let _guard = runtime.enter();
                AsyncWorker::build(kind, target, concurrency)
            };
            participants.push(Participant {
                kind,
                rt,
                concurrency,
                driver: Driver::Async(runtime, workers),
                tally: Tally::default(),
            });
        }
    }
    let per_worker = (options.requests / (options.rounds * conc)).max(1);
    let warmup_per_worker = (options.warmup / conc).max(1);
    let n = participants.len();
    for round in 0..options.rounds as usize {
        for i in 0..n {
            participants[(i + round) % n].round(warmup_per_worker, per_worker);
        }
    }
    participants.into_iter().map(Participant::finish).collect()
}

fn main() {
    if let Ok(cpu) = std::env::var(SERVER_ENV) {
        serve(&cpu);
        return;
    }
    let Some(options) = common::options_or_usage(Options::parse(std::env::args().skip(1)), USAGE)
    else {
        return;
    };
    let cpus_allowed = allowed_cpus().len();
    let load = common::load_average();
    let mut placement = Placement::choose();
    let server = ServerProcess::start(SERVER_ENV, &common::cpu_arg(placement.server_cpu));
    placement.pin_client();
    let target = Target::new(server.addr);
    let started = Instant::now();
    let mut rows = Vec::new();
    for concurrency in CONCURRENCIES {
        rows.extend(measure_concurrency(
            concurrency,
            &options,
            target,
            &placement,
        ));
    }
    let report = Report {
        options: &options,
        rows: &rows,
        placement: describe(&placement, server.child.id()),
        took: started.elapsed(),
        cpus_allowed,
        load,
        versions: common::locked_versions(&[
            "connpool",
            "hyper",
            "hyper-util",
            "reqwest",
            "tokio",
            "http",
        ]),
    };
    if options.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    drop(server);
    if rows.iter().any(|r| r.tally.outcome.errors > 0) {
        std::process::exit(1);
    }
}

// ------------------------------------------------------------------ report

/// One goal of issue 5, checked: `None` when a client it needs was not run.
struct Goal {
    text: String,
    holds: Option<bool>,
}

struct Report<'a> {
    options: &'a Options,
    rows: &'a [Row],
    placement: Vec<String>,
    took: Duration,
    cpus_allowed: usize,
    load: String,
    versions: Vec<(&'static str, String)>,
}

impl Report<'_> {
    fn find(&self, concurrency: usize, rt: Rt, kind: Kind) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.concurrency == concurrency && r.rt == rt && r.kind == kind)
    }

    /// The row `row` is compared with.
    fn baseline(&self, row: &Row) -> Option<&Row> {
        match (row.concurrency, row.rt) {
            (1, _) => self.find(1, Rt::Threads, Kind::RawBlocking),
            (c, Rt::Threads) => self.find(c, Rt::CurrentThread, Kind::RawAsync),
            (c, rt) => self.find(c, rt, Kind::RawAsync),
        }
    }

    /// (wall ratio, +µs) against the baseline, unless `row` is one.
    fn versus_baseline(&self, row: &Row) -> Option<(f64, f64)> {
        let base = self.baseline(row)?;
        if std::ptr::eq(base, row) {
            return None;
        }
        let (w, b) = (row.tally.wall_us(), base.tally.wall_us());
        Some((w / b, w - b))
    }

    /// CPU µs per request above `raw-async` in the same cell: what the
    /// client adds to the socket calls, from the scheduler's runtime (not
    /// tick-sampled like the user/system split).
    fn cpu_over_raw_async(&self, row: &Row) -> Option<f64> {
        if row.rt == Rt::Threads || row.kind == Kind::RawAsync {
            return None;
        }
        let raw = self.find(row.concurrency, row.rt, Kind::RawAsync)?;
        Some(row.tally.cpu_us() - raw.tally.cpu_us())
    }

    fn goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        let wall = |r: &Row| r.tally.wall_us();
        for rt in [Rt::CurrentThread, Rt::MultiThread] {
            let cp1 = self.find(1, rt, Kind::Connpool);
            let raw1 = self.find(1, Rt::Threads, Kind::RawBlocking);
            goals.push(ratio_goal(
                format!("c=1 {}: connpool wall <= 1.15x raw-blocking", rt.name()),
                cp1.zip(raw1).map(|(a, b)| wall(a) / wall(b)),
                1.15,
            ));
            let hyper1 = self.find(1, rt, Kind::HyperUtil);
            goals.push(ratio_goal(
                format!(
                    "c=1 {}: connpool user CPU/request <= 40% of hyper-util's",
                    rt.name()
                ),
                cp1.zip(hyper1)
                    .map(|(a, b)| a.tally.user_us() / b.tally.user_us()),
                0.40,
            ));
        }
        for rt in [Rt::CurrentThread, Rt::MultiThread] {
            let cp = self.find(32, rt, Kind::Connpool);
            let raw = self.find(32, rt, Kind::RawAsync);
            goals.push(ratio_goal(
                format!("c=32 {}: connpool wall <= 1.25x raw-async", rt.name()),
                cp.zip(raw).map(|(a, b)| wall(a) / wall(b)),
                1.25,
            ));
        }
        for c in CONCURRENCIES {
            for rt in [Rt::CurrentThread, Rt::MultiThread] {
                let cp = self.find(c, rt, Kind::Connpool);
                for peer in [Kind::HyperUtil, Kind::Reqwest] {
                    let other = self.find(c, rt, peer);
                    goals.push(ratio_goal(
                        format!(
                            "c={c} {}: connpool wall lower than {}",
                            rt.name(),
                            peer.name()
                        ),
                        cp.zip(other).map(|(a, b)| wall(a) / wall(b)),
                        1.0,
                    ));
                }
            }
        }
        goals
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let o = self.options;
        let _ = writeln!(
            out,
            "\n== http_clients: GET of a 52-byte response on keep-alive connections, \
             ~{} requests per cell in {} rounds (+{} warm-up each) ==",
            o.requests, o.rounds, o.warmup,
        );
        let _ = writeln!(out, "{}", common::crates_line(&self.versions));
        let _ = writeln!(
            out,
            "{}",
            common::machine_line(self.cpus_allowed, &self.load)
        );
        for line in &self.placement {
            let _ = writeln!(out, "placement: {line}");
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:>3} {:<14} {:<12} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>7} {:>7} {:>7} \
             {:>7} {:>7} {:>7} {:>6} {:>6}",
            "c",
            "runtime",
            "client",
            "requests",
            "req/s",
            "µs/req",
            "lat µs",
            "x base",
            "+µs",
            "user µs",
            "sys µs",
            "cpu µs",
            "+cpu",
            "allocs",
            "bytes",
            "spread",
            "errors",
        );
        let mut last_group = None;
        for row in self.rows {
            let group = (row.concurrency, row.rt);
            if last_group.is_some_and(|g| g != group) {
                let _ = writeln!(out);
            }
            last_group = Some(group);
            let t = &row.tally;
            let (ratio, plus) = match self.versus_baseline(row) {
                Some((r, p)) => (format!("{r:.2}x"), format!("{p:+.2}")),
                None if self.baseline(row).is_some() => ("base".into(), String::new()),
                None => ("-".into(), "-".into()),
            };
            let plus_cpu = self
                .cpu_over_raw_async(row)
                .map_or_else(|| "-".to_string(), |d| format!("{d:+.2}"));
            let _ = writeln!(
                out,
                "{:>3} {:<14} {:<12} {:>8} {:>8.0} {:>8.2} {:>8.2} {:>7} {:>8} {:>7.2} {:>7.2} \
                 {:>7.2} {:>7} {:>7.1} {:>7.0} {:>5.1}% {:>6}",
                row.concurrency,
                row.rt.name(),
                row.kind.name(),
                t.requests,
                t.requests_per_s(),
                t.wall_us(),
                t.wall_us() * row.concurrency as f64,
                ratio,
                plus,
                t.user_us(),
                t.sys_us(),
                t.cpu_us(),
                plus_cpu,
                t.allocs_per_request(),
                t.alloc_bytes_per_request(),
                t.spread() * 100.0,
                t.outcome.errors,
            );
        }
        let _ = writeln!(
            out,
            "\nµs/req: wall time per request. lat µs: mean latency (c=32: wall x 32 / requests).\n\
             x base, +µs: µs/req against raw-blocking (c=1) or raw-async on the same runtime\n  \
             (c=32; raw-blocking at c=32 against raw-async current_thread).\n\
             user/sys/cpu µs: the client process's CPU per request (user/sys split tick-sampled).\n\
             +cpu: cpu µs above raw-async in the same cell: the client's own CPU, not tick-sampled.\n\
             allocs, bytes: heap allocations and bytes allocated per request.\n\
             wall and CPU: the median round; spread: (slowest - fastest round) / median round."
        );
        for row in self
            .rows
            .iter()
            .filter(|r| r.tally.outcome.first_error.is_some())
        {
            let _ = writeln!(
                out,
                "ERRORS c={} {} {}: {} (first: {})",
                row.concurrency,
                row.rt.name(),
                row.kind.name(),
                row.tally.outcome.errors,
                row.tally.outcome.first_error.as_deref().unwrap_or("")
            );
        }
        for row in self.rows {
            if let Some(c) = &row.connpool {
                let _ = writeln!(
                    out,
                    "connpool pool c={} {}: created {} reused {} returned {} closed {} evicted {} \
                     waits {}",
                    row.concurrency,
                    row.rt.name(),
                    c.created,
                    c.reused,
                    c.returned,
                    c.closed,
                    c.evicted_by_reason.iter().sum::<u64>(),
                    c.waits,
                );
            }
        }
        let _ = writeln!(out, "\n== goals (issue 5) ==");
        for goal in self.goals() {
            let _ = writeln!(out, "  {} {}", common::verdict(goal.holds), goal.text);
        }
        let _ = writeln!(out, "\nthe run took {:.1} s", self.took.as_secs_f64());
        out
    }

    fn json(&self) -> String {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|row| {
                let t = &row.tally;
                let versus = self.versus_baseline(row);
                serde_json::json!({
                    "concurrency": row.concurrency,
                    "runtime": row.rt.name(),
                    "client": row.kind.name(),
                    "requests": t.requests,
                    "wall_s": t.wall.as_secs_f64(),
                    "requests_per_s": t.requests_per_s(),
                    "wall_us_per_request": t.wall_us(),
                    "latency_mean_us": t.wall_us() * row.concurrency as f64,
                    "ratio_to_baseline": versus.map(|v| v.0),
                    "us_over_baseline": versus.map(|v| v.1),
                    "user_us_per_request": t.user_us(),
                    "sys_us_per_request": t.sys_us(),
                    "cpu_us_per_request": t.cpu_us(),
                    "cpu_us_over_raw_async": self.cpu_over_raw_async(row),
                    "allocs_per_request": t.allocs_per_request(),
                    "alloc_bytes_per_request": t.alloc_bytes_per_request(),
                    "rounds": t.rounds.iter().map(|r| serde_json::json!({
                        "wall_us_per_request": r.wall_us,
                        "user_us_per_request": r.user_us,
                        "sys_us_per_request": r.sys_us,
                    })).collect::<Vec<_>>(),
                    "errors": t.outcome.errors,
                    "first_error": t.outcome.first_error,
                })
            })
            .collect();
        let goals: Vec<_> = self
            .goals()
            .into_iter()
            .map(|g| serde_json::json!({ "goal": g.text, "holds": g.holds }))
            .collect();
        serde_json::json!({
            "bench": "http_clients",
            "rounds": self.options.rounds,
            "warmup_per_round": self.options.warmup,
            "placement": self.placement,
            "cpus_allowed": self.cpus_allowed,
            "load_average_at_start": self.load,
            "versions": common::versions_json(&self.versions),
            "took_s": self.took.as_secs_f64(),
            "rows": rows,
            "goals": goals,
        })
        .to_string()
    }
}

/// A goal "value ≤ limit" (strictly below when the limit is 1.0: "lower
/// than"), with the value in its text.
fn ratio_goal(text: String, value: Option<f64>, limit: f64) -> Goal {
    match value {
        Some(v) => Goal {
            text: format!("{text}: {v:.2} (limit {limit:.2})"),
            holds: Some(if limit == 1.0 { v < 1.0 } else { v <= limit }),
        },
        None => Goal { text, holds: None },
    }
}
