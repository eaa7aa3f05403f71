//! User-space memory per idle pooled connection: connpool's HTTP
//! [`Client`](connpool::http::Client) beside hyper-util's legacy client.
//!
//! ```text
//! cargo bench -p connpool-bench --bench idle_memory
//! cargo bench -p connpool-bench --bench idle_memory -- --conns 2000
//! ```
//!
//! # What is measured
//!
//! Each client opens `--conns` (default 10 000) connections to one
//! keep-alive server and keeps them all idle in its pool. The memory it
//! holds for them, divided by their number, is the cost of one idle
//! connection, in two measures:
//!
//! * **RSS** — resident pages of the client process (`/proc/self/statm`,
//!   `resident` × page size), after `malloc_trim(0)`, which gives the
//!   kernel back every whole free page malloc holds. Free memory between
//!   live blocks still counts where it was touched; the untrimmed figure
//!   and the free bytes malloc keeps (`mallinfo2`'s `fordblks`) are
//!   printed beside it.
//! * **heap** — the bytes live in a counting global allocator (requested
//!   sizes; malloc's own 8–16 bytes per block are not in them), the number
//!   of live blocks, and the blocks added per connection by size (classes
//!   16 bytes wide), which tells what they are.
//!
//! Both are taken before and after the burst; the difference divided by
//! the number of connections is the figure per idle connection. Kernel
//! memory (socket buffers, file table) is in neither: it is the same for
//! every client.
//!
//! # Method
//!
//! * **The server is a child process** (this binary re-executed with
//!   `CONNPOOL_IDLE_SERVER` set): a tokio current_thread runtime, one task
//!   per connection, a `listen` backlog of 4096. It answers `GET /stats`
//!   with its counts (accepted, open) and every other request with a
//!   52-byte response (`Content-Length: 13`). A fresh server per client.
//! * **Each client runs in a child process of its own** (re-executed with
//!   `CONNPOOL_IDLE_CLIENT` set), on a current_thread runtime, so one
//!   client's heap does not pollute the other's RSS. It prints one line of
//!   JSON that the parent turns into the table.
//! * **Warm-up.** A throwaway client of the same kind first makes 64
//!   concurrent requests and is dropped (its connections closed), so that
//!   code pages, the runtime's and the allocator's first growth, and
//!   anything built once per process are in the "before" figure.
//! * **The burst.** A new client; `--conns` tasks each send one `GET` and,
//!   once its response head has arrived, wait at a barrier for all the
//!   others, then read the body. Every request holds its connection at the
//!   barrier, so exactly `--conns` connections are open at once (connpool
//!   caps none of them: `max_conns_per_host` and both idle caps equal
//!   `--conns`; hyper-util has no cap). Then the tasks end, and after a
//!   300 ms pause (hyper-util returns a connection to its pool from a
//!   spawned task) all the connections sit idle. Both clients keep idle
//!   connections 600 s, so none expires during the run.
//! * **Verified counts.** connpool's pool stats give the idle connections;
//!   hyper-util has no stats, so the server's count of open connections
//!   (and accepted ones: warm-up + burst) is printed for both. The live
//!   tokio tasks show what else stays behind per connection.
//! * `RLIMIT_NOFILE` is raised to its hard limit in every process; a hard
//!   limit too low for `--conns` is reported, not worked around.
//! * The bench exits with status 1 if a request failed or a client did not
//!   end up with exactly `--conns` idle connections.
//!
//! # What an idle connection costs
//!
//! The bench prints the live blocks each connection added, by size, which
//! is how the figures below were attributed (one run, 10 000 connections).
//!
//! connpool (`crates/connpool/src/http/conn.rs`) holds, per idle
//! connection, about 650 heap bytes in 2 blocks of its own:
//!
//! * its entry in the key's `VecDeque` of idle entries
//!   (`Tracked<HostKey, HttpConn>`: the key, an id, stamps, and the
//!   `HttpConn` with its `TcpStream`, an empty `BytesMut`, counters and
//!   times), about 220 bytes, ~370 per connection with the deque's
//!   power-of-two slack (16 384 slots for 10 000): the largest share;
//! * the socket's registration with tokio's I/O driver (one 256-byte block);
//! * the key's `Arc<str>` (`"127.0.0.1:port"`, one 32-byte block): each
//!   connection keeps the key of the request that opened it, a separate
//!   allocation per connection although all are equal.
//!
//! No task, channel or buffer. Until commit 915c5a2 the 8 KiB read buffer
//! (`read_buf`, a `BytesMut` made at connect) was kept while idle, with the
//! 48-byte shared header `bytes` adds once a body was split off it: about
//! 8 900 heap bytes and 9 100 RSS bytes per idle connection, the buffer
//! 92 % of it. Since then a buffer is lent from a small per-thread cache
//! only while a response is read.
//!
//! connpool's RSS per connection (~3.5 KB) is above its heap bytes: the
//! burst's transient memory (10 000 tasks and 10 000 lent read buffers
//! live at once, every response being held at the barrier) was freed, but
//! it lies between the small blocks that stay, so `malloc_trim` can give
//! back only the whole free pages in between (the `free kept` column).
//! A client that opens its connections more gradually keeps less of it.
//!
//! hyper-util holds ~26 KB in 12 blocks per idle connection; by their
//! sizes: a spawned task running hyper's dispatcher (a ~7.9 KiB block),
//! two 8 KiB blocks (its read and write buffers), and small ones (the
//! channel between the pool and the task, the pool's handle, ...).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{BoxError, Count, Counting, Heads, HyperClient, RESPONSE, ServerProcess, check};

// --------------------------------------------------------------- constants

/// Set in the environment of the server child.
const SERVER_ENV: &str = "CONNPOOL_IDLE_SERVER";
/// Set in the environment of a client child: the client's name.
const CLIENT_ENV: &str = "CONNPOOL_IDLE_CLIENT";
/// The server's address, for a client child.
const ADDR_ENV: &str = "CONNPOOL_IDLE_ADDR";
/// The connections each client keeps, for a client child.
const CONNS_ENV: &str = "CONNPOOL_IDLE_CONNS";

const DEFAULT_CONNS: usize = 10_000;
const WARMUP_CONNS: usize = 64;
/// How long idle connections may stay in either pool: longer than the run.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Time for background tasks to finish after a burst.
const SETTLE: Duration = Duration::from_millis(300);
/// A burst taking longer than this is reported as a hang.
const HANG: Duration = Duration::from_secs(25);
/// The goal of issue 5: connpool's bytes per idle connection at most this
/// fraction of hyper-util's.
const GOAL: f64 = 0.5;

const USAGE: &str = "usage: idle_memory [--conns N]";

// -------------------------------------------------------- counting allocator

/// Bytes (requested sizes) and blocks currently allocated.
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE_BLOCKS: AtomicU64 = AtomicU64::new(0);

/// Live blocks by size, in classes 16 bytes wide: class `i` holds the
/// blocks of `16 × (i − 1) + 1` to `16 × i` bytes; the last class every
/// block larger than 16 368 bytes.
const SIZE_CLASSES: usize = 1025;
static LIVE_BY_SIZE: [AtomicU64; SIZE_CLASSES] = [const { AtomicU64::new(0) }; SIZE_CLASSES];

fn size_class(size: usize) -> &'static AtomicU64 {
    &LIVE_BY_SIZE[size.div_ceil(16).min(SIZE_CLASSES - 1)]
}

/// Counts the bytes and blocks live.
struct Live;

impl Count for Live {
    fn allocated(&self, size: usize) {
        LIVE_BYTES.fetch_add(size as u64, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        size_class(size).fetch_add(1, Ordering::Relaxed);
    }

    fn reallocated(&self, old_size: usize, new_size: usize) {
        // The old block is gone, the new one live: bytes change by the
        // difference, blocks not at all.
        LIVE_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(old_size as u64, Ordering::Relaxed);
        size_class(old_size).fetch_sub(1, Ordering::Relaxed);
        size_class(new_size).fetch_add(1, Ordering::Relaxed);
    }

    fn freed(&self, size: usize) {
        LIVE_BYTES.fetch_sub(size as u64, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        size_class(size).fetch_sub(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting<Live> = Counting(Live);

// ------------------------------------------------------------ system calls

fn page_size() -> u64 {
    // SAFETY: `sysconf` reads a configuration value; no memory is passed.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Gives the allocator's free memory back to the kernel, where it can.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only rearranges glibc's own free lists; the
    // pad argument 0 keeps nothing extra at the top of the heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Free bytes the allocator keeps in its heaps (glibc's `fordblks`): freed
/// memory not given back to the kernel, resident where it was touched.
fn malloc_free_bytes() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallinfo2` takes no arguments and returns a plain struct.
        let info = unsafe { libc::mallinfo2() };
        info.fordblks as u64
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    0
}

/// Resident bytes of this process, from `/proc/self/statm` (read into a
/// stack buffer: measuring allocates nothing).
fn resident_bytes() -> u64 {
    let mut buf = [0u8; 256];
    let n = std::fs::File::open("/proc/self/statm")
        .and_then(|mut f| f.read(&mut buf))
        .expect("read /proc/self/statm");
    let pages = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u64>().ok())
        .expect("statm: resident pages");
    pages * page_size()
}

/// The memory of this process at one moment.
#[derive(Clone, Copy)]
struct Sample {
    rss_untrimmed: u64,
    rss: u64,
    live_bytes: u64,
    live_blocks: u64,
    malloc_free: u64,
}

impl Sample {
    /// The sample, and the live blocks by size class (taken without
    /// allocating).
    fn take() -> (Sample, [u64; SIZE_CLASSES]) {
        let rss_untrimmed = resident_bytes();
        trim_heap();
        let rss = resident_bytes();
        let malloc_free = malloc_free_bytes();
        let mut by_size = [0; SIZE_CLASSES];
        for (n, class) in by_size.iter_mut().zip(&LIVE_BY_SIZE) {
            *n = class.load(Ordering::Relaxed);
        }
        let sample = Sample {
            rss_untrimmed,
            rss,
            live_bytes: LIVE_BYTES.load(Ordering::Relaxed),
            live_blocks: LIVE_BLOCKS.load(Ordering::Relaxed),
            malloc_free,
        };
        (sample, by_size)
    }
}

/// The size classes whose live blocks grew (or shrank) by at least
/// `min` from `before` to `after`: (largest size in the class, change).
fn size_changes(before: &[u64], after: &[u64], min: u64) -> Vec<(u64, i64)> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .map(|(class, (b, a))| (class as u64 * 16, *a as i64 - *b as i64))
        .filter(|(_, change)| change.unsigned_abs() >= min)
        .collect()
}

// ------------------------------------------------------------------ server

/// The server child: prints its port, serves until its stdin closes.
fn serve() {
    common::raise_nofile_or_warn("server");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("server: runtime");
    rt.block_on(async {
        let listener = common::listen_local(4096);
        let port = listener.local_addr().expect("server: local addr").port();
        common::announce(&port.to_string());
        common::exit_when_stdin_closes();
        let counts = Arc::new(Counts::default());
        let mut accept_errors = 0u64;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    counts.accepted.fetch_add(1, Ordering::Relaxed);
                    counts.open.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(serve_connection(stream, counts.clone()));
                }
                Err(e) => {
                    // EMFILE and the like: say so once, back off a little.
                    accept_errors += 1;
                    if accept_errors == 1 {
                        eprintln!("server: accept: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    });
}

#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    open: AtomicU64,
}

/// Answers every request head on `stream` until the client closes; a
/// `GET /stats` gets the counts and a close.
async fn serve_connection(mut stream: tokio::net::TcpStream, counts: Arc<Counts>) {
    let _ = stream.set_nodelay(true);
    let mut heads = Heads::<1024>::new();
    'conn: loop {
        while let Some(head) = heads.next_head() {
            if head.starts_with(b"GET /stats ") {
                let body = format!(
                    "accepted {} open {}\n",
                    counts.accepted.load(Ordering::Relaxed),
                    // Not counting this connection.
                    counts.open.load(Ordering::Relaxed) - 1,
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                break 'conn;
            }
            if stream.write_all(RESPONSE).await.is_err() {
                break 'conn;
            }
        }
        let Some(spare) = heads.spare() else {
            break; // a head larger than the buffer
        };
        match stream.read(spare).await {
            Ok(0) | Err(_) => break,
            Ok(n) => heads.filled(n),
        }
    }
    counts.open.fetch_sub(1, Ordering::Relaxed);
}

/// The server's counts: connections accepted and open, asked on a
/// connection of its own that neither includes.
fn server_counts(addr: SocketAddr) -> Result<(u64, u64), BoxError> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /stats HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .ok_or("no response head")?;
    let mut words = body.split_whitespace();
    let mut field = |name: &str| -> Result<u64, BoxError> {
        if words.next() != Some(name) {
            return Err(format!("unexpected stats: {body:?}").into());
        }
        Ok(words.next().ok_or("short stats")?.parse()?)
    };
    let accepted = field("accepted")?;
    let open = field("open")?;
    // The stats connection was accepted too.
    Ok((accepted - 1, open))
}

// ------------------------------------------------------------------ clients

const CLIENTS: [&str; 2] = ["connpool", "hyper-util"];

#[derive(Clone)]
enum AnyClient {
    Connpool(connpool::http::Client),
    HyperUtil(HyperClient),
}

impl AnyClient {
    /// A client that keeps `conns` connections idle for [`IDLE_TIMEOUT`].
    /// Call inside the runtime.
    fn build(name: &str, conns: usize) -> AnyClient {
        match name {
            "connpool" => AnyClient::Connpool(
                connpool::http::Client::builder()
                    .max_conns_per_host(conns)
                    .pool_max_idle_per_host(conns)
                    .pool_max_idle_total(conns)
                    .max_waiters_per_host(conns)
                    .pool_idle_timeout(Some(IDLE_TIMEOUT))
                    .build(),
            ),
            "hyper-util" => AnyClient::HyperUtil(
                common::hyper_builder()
                    .pool_idle_timeout(IDLE_TIMEOUT)
                    .pool_max_idle_per_host(conns)
                    .pool_timer(hyper_util::rt::TokioTimer::new())
                    .build_http(),
            ),
            other => panic!("unknown client {other}"),
        }
    }

    /// One GET: the response head, then the barrier, then the body.
    async fn get(&self, url: &str, barrier: &tokio::sync::Barrier) -> Result<(), BoxError> {
        match self {
            AnyClient::Connpool(client) => {
                let resp = client.get(url).send().await;
                barrier.wait().await;
                let resp = resp?;
                let status = resp.status().as_u16();
                check(status, &resp.bytes().await?)
            }
            AnyClient::HyperUtil(client) => {
                let req = http::Request::get(url).body(Empty::<Bytes>::new())?;
                let resp = client.request(req).await;
                barrier.wait().await;
                let resp = resp?;
                let status = resp.status().as_u16();
                check(status, &resp.into_body().collect().await?.to_bytes())
            }
        }
    }

    /// connpool's idle connections; hyper-util does not say.
    fn idle(&self) -> Option<usize> {
        match self {
            AnyClient::Connpool(client) => Some(client.stats().total.idle),
            AnyClient::HyperUtil(_) => None,
        }
    }

    /// connpool's connections created.
    fn created(&self) -> Option<u64> {
        match self {
            AnyClient::Connpool(client) => Some(client.stats().counters.created),
            AnyClient::HyperUtil(_) => None,
        }
    }
}

/// `n` concurrent GETs, each holding its connection until all `n` have
/// their response head; then a pause for background tasks. Returns the
/// errors and the first one's message.
async fn burst(client: &AnyClient, url: &Arc<str>, n: usize) -> (u64, Option<String>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url, barrier) = (client.clone(), url.clone(), barrier.clone());
            tokio::spawn(async move { client.get(&url, &barrier).await })
        })
        .collect();
    let all = async {
        let (mut errors, mut first) = (0, None);
        for task in tasks {
            if let Err(e) = task.await.expect("request task panicked") {
                errors += 1;
                first.get_or_insert_with(|| e.to_string());
            }
        }
        (errors, first)
    };
    let outcome = tokio::time::timeout(HANG, all)
        .await
        .unwrap_or_else(|_| panic!("{n} requests did not complete within {HANG:?}"));
    tokio::time::sleep(SETTLE).await;
    outcome
}

/// What a client child reports.
struct Measured {
    client: String,
    conns: usize,
    before: Sample,
    after: Sample,
    /// connpool's own counts (idle, created).
    idle: Option<usize>,
    created: Option<u64>,
    /// The server's counts (accepted, open), with the clients' pool full.
    server: (u64, u64),
    tasks_alive: usize,
    /// The size classes whose live blocks changed by at least a tenth of
    /// `conns`: (largest size in the class, change).
    by_size: Vec<(u64, i64)>,
    errors: u64,
    first_error: Option<String>,
    burst_s: f64,
}

impl Measured {
    fn per_conn(&self, f: impl Fn(&Sample) -> u64) -> f64 {
        (f(&self.after) as f64 - f(&self.before) as f64) / self.conns as f64
    }

    fn json(&self) -> serde_json::Value {
        let sample = |s: &Sample| {
            serde_json::json!({
                "rss_untrimmed": s.rss_untrimmed,
                "rss": s.rss,
                "live_bytes": s.live_bytes,
                "live_blocks": s.live_blocks,
                "malloc_free": s.malloc_free,
            })
        };
        serde_json::json!({
            "client": self.client,
            "conns": self.conns,
            "before": sample(&self.before),
            "after": sample(&self.after),
            "idle": self.idle,
            "created": self.created,
            "server_accepted": self.server.0,
            "server_open": self.server.1,
            "tasks_alive": self.tasks_alive,
            "blocks_by_size": self.by_size,
            "errors": self.errors,
            "first_error": self.first_error,
            "burst_s": self.burst_s,
        })
    }

    fn from_json(v: &serde_json::Value) -> Option<Measured> {
        let sample = |s: &serde_json::Value| {
            Some(Sample {
                rss_untrimmed: s["rss_untrimmed"].as_u64()?,
                rss: s["rss"].as_u64()?,
                live_bytes: s["live_bytes"].as_u64()?,
                live_blocks: s["live_blocks"].as_u64()?,
                malloc_free: s["malloc_free"].as_u64()?,
            })
        };
        Some(Measured {
            client: v["client"].as_str()?.to_string(),
            conns: usize::try_from(v["conns"].as_u64()?).ok()?,
            before: sample(&v["before"])?,
            after: sample(&v["after"])?,
            idle: v["idle"].as_u64().and_then(|n| usize::try_from(n).ok()),
            created: v["created"].as_u64(),
            server: (v["server_accepted"].as_u64()?, v["server_open"].as_u64()?),
            tasks_alive: usize::try_from(v["tasks_alive"].as_u64()?).ok()?,
            by_size: v["blocks_by_size"]
                .as_array()?
                .iter()
                .map(|pair| Some((pair[0].as_u64()?, pair[1].as_i64()?)))
                .collect::<Option<_>>()?,
            errors: v["errors"].as_u64()?,
            first_error: v["first_error"].as_str().map(str::to_string),
            burst_s: v["burst_s"].as_f64()?,
        })
    }
}

/// The client child: warm-up, before, burst, after; prints one JSON line.
fn run_client(name: &str, addr: SocketAddr, conns: usize) {
    common::raise_nofile_or_warn(name);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let url: Arc<str> = Arc::from(format!("http://{addr}/"));

    // Warm-up on a throwaway client, dropped with its connections.
    rt.block_on(async {
        let client = AnyClient::build(name, conns);
        let (errors, first) = burst(&client, &url, WARMUP_CONNS).await;
        assert_eq!(errors, 0, "{name}: warm-up failed: {first:?}");
        drop(client);
        tokio::time::sleep(SETTLE).await;
    });

    let (before, before_by_size) = Sample::take();
    let started = Instant::now();
    let (client, (errors, first_error)) = rt.block_on(async {
        let client = AnyClient::build(name, conns);
        let outcome = burst(&client, &url, conns).await;
        (client, outcome)
    });
    let burst_s = started.elapsed().as_secs_f64() - SETTLE.as_secs_f64();
    let (after, after_by_size) = Sample::take();
    let by_size = size_changes(&before_by_size, &after_by_size, conns as u64 / 10);

    let tasks_alive = rt.metrics().num_alive_tasks();
    let server = server_counts(addr).expect("ask the server for its counts");
    let measured = Measured {
        client: name.to_string(),
        conns,
        before,
        after,
        idle: client.idle(),
        created: client.created(),
        server,
        tasks_alive,
        by_size,
        errors,
        first_error,
        burst_s,
    };
    rt.block_on(async move { drop(client) });
    println!("{}", measured.json());
}

/// Runs one client in a child process of its own, against a fresh server.
fn measure(name: &str, conns: usize) -> Result<Measured, String> {
    let server = ServerProcess::start(SERVER_ENV, "1");
    let exe = std::env::current_exe().expect("current exe");
    let output = Command::new(exe)
        .env(CLIENT_ENV, name)
        .env(ADDR_ENV, server.addr.to_string())
        .env(CONNS_ENV, conns.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("start the {name} process: {e}"))?;
    drop(server);
    if !output.status.success() {
        return Err(format!("the {name} process failed: {}", output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .ok()
        .as_ref()
        .and_then(Measured::from_json)
        .ok_or_else(|| format!("the {name} process printed {stdout:?}"))
}

// -------------------------------------------------------------------- main

fn parse_conns(args: impl Iterator<Item = String>) -> Result<usize, String> {
    let mut conns = DEFAULT_CONNS;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {} // passed by `cargo bench`
            "--conns" => {
                conns = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--conns wants a positive number")?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(conns)
}

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        serve();
        return;
    }
    if let Ok(name) = std::env::var(CLIENT_ENV) {
        let addr = std::env::var(ADDR_ENV)
            .ok()
            .and_then(|a| a.parse().ok())
            .expect("client: server address");
        let conns = std::env::var(CONNS_ENV)
            .ok()
            .and_then(|n| n.parse().ok())
            .expect("client: connection count");
        run_client(&name, addr, conns);
        return;
    }
    // `--help` is an unknown argument here: the usage, and exit status 2.
    let Some(conns) = common::options_or_usage(parse_conns(std::env::args().skip(1)), USAGE) else {
        return;
    };
    let limit = match common::raise_nofile(None) {
        Ok((limit, _)) => limit,
        Err(e) => {
            eprintln!("could not raise RLIMIT_NOFILE: {e}");
            std::process::exit(1);
        }
    };
    // The client and the server each hold `conns` sockets, plus a few.
    if limit < conns as u64 + 256 {
        eprintln!(
            "RLIMIT_NOFILE's hard limit is {limit}: too low for {conns} connections \
             (raise it, or pass --conns {})",
            limit.saturating_sub(256)
        );
        std::process::exit(1);
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    for name in CLIENTS {
        let row_started = Instant::now();
        match measure(name, conns) {
            Ok(m) => rows.push((m, row_started.elapsed())),
            Err(why) => {
                eprintln!("{why}");
                std::process::exit(1);
            }
        }
    }
    print_report(&rows, conns, limit, started.elapsed());
    let bad = rows.iter().any(|(m, _)| {
        m.errors > 0 || m.server.1 != conns as u64 || m.idle.is_some_and(|n| n != conns)
    });
    if bad {
        std::process::exit(1);
    }
}

/// One of the figures of a [`Sample`].
type Measure = fn(&Sample) -> u64;

fn print_report(rows: &[(Measured, Duration)], conns: usize, limit: u64, took: Duration) {
    println!(
        "\n== idle_memory: user-space memory per idle pooled connection, {conns} connections \
         (RLIMIT_NOFILE {limit}) ==\n"
    );
    println!(
        "{:<11} {:>6} {:>8} {:>9} {:>6} {:>10} {:>10} {:>11} {:>11} {:>10} {:>7} {:>7} {:>6}",
        "client",
        "idle",
        "srv open",
        "accepted",
        "tasks",
        "RSS B/conn",
        "heap B/conn",
        "blocks/conn",
        "RSS untrim",
        "free kept",
        "burst s",
        "run s",
        "errors",
    );
    for (m, took) in rows {
        println!(
            "{:<11} {:>6} {:>8} {:>9} {:>6} {:>10.0} {:>11.0} {:>11.2} {:>11.0} {:>10.0} {:>7.2} \
             {:>7.1} {:>6}",
            m.client,
            m.idle.map_or_else(|| "-".to_string(), |n| n.to_string()),
            m.server.1,
            m.server.0,
            m.tasks_alive,
            m.per_conn(|s| s.rss),
            m.per_conn(|s| s.live_bytes),
            m.per_conn(|s| s.live_blocks),
            m.per_conn(|s| s.rss_untrimmed),
            m.per_conn(|s| s.malloc_free),
            m.burst_s,
            took.as_secs_f64(),
            m.errors,
        );
    }
    println!(
        "\nidle: the pool's own count (hyper-util has none). srv open / accepted: the server's \
         counts\n  (accepted includes the {WARMUP_CONNS} warm-up connections, closed before). \
         tasks: tokio tasks alive\n  in the client with its pool full. RSS B/conn: resident \
         bytes added per connection\n  (after malloc_trim). heap B/conn, blocks/conn: bytes \
         (requested sizes) and blocks\n  live in the allocator, per connection. RSS untrim: \
         resident bytes before malloc_trim.\n  free kept: free bytes \
         malloc keeps in its heap after the trim (mallinfo2 fordblks),\n  per connection: \
         memory freed after the burst, between blocks still live.\n  burst s: the {conns} requests; run s: the \
         client's process and its server."
    );
    for (m, _) in rows {
        if let Some(first) = &m.first_error {
            println!("ERRORS {}: {} (first: {first})", m.client, m.errors);
        }
        if let (Some(idle), Some(created)) = (m.idle, m.created) {
            println!("{} pool: idle {idle}, created {created}", m.client);
        }
    }
    println!("\nlive blocks added per connection, by size (classes of 16 bytes):");
    for (m, _) in rows {
        let classes: Vec<_> = m
            .by_size
            .iter()
            .map(|&(size, change)| {
                let per_conn = change as f64 / m.conns as f64;
                if size as usize >= (SIZE_CLASSES - 1) * 16 {
                    format!("> 16368 B x{per_conn:.2}")
                } else {
                    format!("{}-{size} B x{per_conn:.2}", size.saturating_sub(15))
                }
            })
            .collect();
        println!("  {:<11} {}", m.client, classes.join(", "));
    }
    let find = |name: &str| rows.iter().map(|(m, _)| m).find(|m| m.client == name);
    if let (Some(cp), Some(hy)) = (find("connpool"), find("hyper-util")) {
        let measures: [(&str, Measure); 3] = [
            ("RSS", |s| s.rss),
            ("heap bytes", |s| s.live_bytes),
            ("heap blocks", |s| s.live_blocks),
        ];
        let ratios = measures.map(|(what, f)| (what, cp.per_conn(f) / hy.per_conn(f)));
        println!("\nconnpool / hyper-util per idle connection:");
        for (what, ratio) in ratios {
            println!("  {what:<11} {ratio:.2}x");
        }
        println!("\n== goals (issue 5) ==");
        for (what, ratio) in &ratios[..2] {
            println!(
                "  {} connpool {what} per idle connection <= {GOAL:.1}x hyper-util's: {ratio:.2}x",
                common::verdict(Some(*ratio <= GOAL)),
            );
        }
    }
    println!("\nthe run took {:.1} s", took.as_secs_f64());
}
