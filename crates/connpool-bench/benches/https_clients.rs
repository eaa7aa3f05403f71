//! HTTPS clients side by side: connpool's [`Client`](connpool::http::Client)
//! beside reqwest and hyper-util (over hyper-rustls), and a raw tokio-rustls
//! floor, measured in the same run against one local TLS server: the cost
//! of a request on a reused connection, and the cost of a new connection
//! (TCP connect + TLS handshake) per request.
//!
//! ```text
//! cargo bench -p connpool-bench --bench https_clients             # ~30-40 s
//! cargo bench -p connpool-bench --bench https_clients -- --quick  # ~3-5 s
//! cargo bench -p connpool-bench --bench https_clients -- --only connpool,reqwest --json
//! ```
//!
//! Options (after `--`): `--quick` (a tenth of the requests, 3 rounds),
//! `--scale F` (multiply every cell's request count by F), `--rounds R`
//! (default 5), `--only NAME[,NAME...]` (`raw`, `connpool`, `hyper-util`,
//! `reqwest`), `--cells CELL[,CELL...]` (`tls-ka-1`, `tls-ka-32`,
//! `plain-ka-1`, `tls-new-full`, `tls-new-resumed`, `plain-new`), `--json`
//! (one JSON object instead of the tables).
//!
//! # What is measured
//!
//! The server (a child process, see below) answers every `GET` with the
//! 52-byte response of `http_clients` (`Content-Length: 13`, body
//! `hello, world\n`). It listens on five ports, one per kind of cell:
//!
//! | cell | connection | server |
//! |---|---|---|
//! | `tls keep-alive` (c=1, c=32) | reused | TLS, keeps connections open |
//! | `tls new, full` (c=1) | new per request | TLS, answers with `Connection: close` then closes (`close_notify`, FIN); no session resumption (no tickets) |
//! | `tls new, resumed` (c=1) | new per request | the same, but sends two TLS 1.3 session tickets per connection (rustls's default), so clients resume |
//! | `plain keep-alive` (c=1) | reused | plain HTTP, keeps connections open |
//! | `plain new` (c=1) | new per request | plain HTTP, `Connection: close` |
//!
//! A new connection per request is forced by the *server* closing, not by
//! client settings, so every client does exactly the same thing with its
//! defaults: read the response, see `Connection: close`, connect again for
//! the next request. (Under the hood that is `keep_alive(false)` /
//! `pool_max_idle_per_host(0)` without the differences in who closes.)
//!
//! TLS everywhere: TLS 1.3 only (the server offers nothing else), rustls
//! with its `ring` provider on both sides (so the crypto is the same code
//! for every client: X25519, AES-256-GCM, an ECDSA P-256 certificate), ALPN
//! `http/1.1` (the server counts any handshake that agreed on something
//! else, and the run fails if one did). The certificates are made at start
//! by the testkit's `TestCa` (a CA and a server certificate for
//! `127.0.0.1`); every client trusts that CA alone and verifies the
//! certificate (for the IP address: no SNI is sent).
//!
//! The clients, each built once per cell with its defaults otherwise:
//!
//! * `raw` — the floor, no HTTP client: tokio-rustls's `TlsConnector` (or a
//!   tokio `TcpStream` in the plain cells) writes the request bytes and
//!   reads exactly the response's length; in the `new` cells it connects
//!   and handshakes for each request and drops the connection after.
//! * `connpool` — `Client::builder().tls(TlsConfig::builder().root_store(ca).build()?)`;
//!   `client.get(url).send().await?.bytes().await?`.
//! * `hyper-util` — the legacy client over `hyper_rustls::HttpsConnector`
//!   made `From((HttpConnector, ClientConfig))` (ring, the CA as the only
//!   root, ALPN `http/1.1`: hyper-rustls's builder offers no ALPN for
//!   HTTP/1.1 alone); `Empty<Bytes>` bodies, the body collected.
//! * `reqwest` — `Client::builder().no_proxy().tls_certs_only([ca])`, built
//!   with `rustls-no-provider` and rustls's `ring` installed as the process
//!   default (reqwest uses it); `client.get(url).send().await?.bytes().await?`.
//!
//! All run on one current_thread runtime. Every client is handed the URL as
//! a `&str` on every request. Each response's status and body are checked;
//! anything else counts as an error (the errors column, warm-up included,
//! must be 0).
//!
//! # How to read it
//!
//! The first table: per cell and client, the wall time per request, the
//! ratio to connpool's (`x cp`: above 1 is slower than connpool), the
//! client process's CPU per request (user + system) and its ratio to
//! connpool's, the server's CPU per request, heap allocations per request,
//! new connections per request and how many of their handshakes were
//! resumptions (both counted by the server), the spread of the rounds and
//! the errors. At c=1 the wall time is a round trip: client CPU + server
//! CPU + two cross-CPU wake-ups; at c=32 it is throughput (the client's
//! CPU per request, unless the server's is higher: check `srv cpu`).
//!
//! The second table takes differences between cells of the same client:
//!
//! * `tls / request` = `tls keep-alive` − `plain keep-alive` (c=1): what
//!   encrypting one request and decrypting its response adds.
//! * `handshake, full` = `tls new, full` − `tls keep-alive` (c=1): what a
//!   new connection costs: TCP connect, a full TLS 1.3 handshake with
//!   certificate verification, and the close.
//! * `handshake, resumed` = `tls new, resumed` − `tls keep-alive`: the same
//!   with a PSK resumption (no certificate sent or verified).
//! * `tcp connect` = `plain new` − `plain keep-alive`: a new plain
//!   connection, for reference.
//!
//! Each for the wall time and for the client's CPU: the median over the
//! rounds of the difference between the two cells' same round (measured
//! seconds apart). The client CPU figures are the robust ones; wall
//! differences at c=1 include the server's share (the same for every
//! client). `tls / request` is a difference of two close numbers and only
//! good to a few µs.
//!
//! # Method and pitfalls
//!
//! * **The server is a child process** (this binary, re-executed with
//!   `CONNPOOL_BENCH_TLS_SERVER` set) on a tokio current_thread runtime,
//!   pinned to the second allowed CPU while the client is pinned to the
//!   first. `getrusage` then counts the client alone, and the counting
//!   allocator the client's allocations alone. The server reports its own
//!   CPU time and counters when asked over its stdin (between measured
//!   stretches, never during one); `srv cpu` is its CPU per request in the
//!   same rounds. It is a minimal server (no routing, no logging): at c=32
//!   its CPU per request must stay below the clients' for the cell to
//!   measure the clients.
//! * **Rounds.** Each cell's requests are split into rounds; in each round
//!   every cell in turn, and in it every client, runs a warm-up and then
//!   its share, the clients' order rotating from round to round, so noise
//!   from elsewhere on the machine lands on all clients alike. (Between two
//!   rounds of a cell, connpool's 4 s idle timeout may close its idle
//!   connections; the warm-up reopens them: see the pool counters printed
//!   under the tables.) Wall and CPU figures are the median round's; the
//!   spread is (slowest − fastest round) / median round. Compare ratios
//!   within one run; absolute times move with the machine.
//! * **CPU time** is the exact scheduler runtime (user + system); on a VM
//!   the system part of a connect includes the loopback's softirq work,
//!   charged to whichever process is running.
//! * **Session caches.** Each client is built afresh for each cell, so no
//!   ticket from one cell is offered in another; in `tls new, resumed` the
//!   first connection of the warm-up is a full handshake and every later
//!   one resumes (the `resumed` column shows the share).
//! * **TIME_WAIT.** The server closes first in the `new` cells, so the
//!   TIME_WAIT sockets are the server's and the client's ephemeral ports
//!   are not used up.
//! * **`TCP_NODELAY` is on for hyper-util**, as for the others. hyper's
//!   `HttpConnector` (and hyper-rustls's builder, which makes one) leaves
//!   it off, and then a full handshake without session tickets stalls for
//!   the delayed ACK (~40 ms on Linux): the client's `Finished` and its
//!   request are two small writes, and Nagle holds the request until the
//!   server acknowledges `Finished`, which it has no reason to do at once
//!   (a server that sends tickets acknowledges it with them). Measured on
//!   the development machine: 44 ms a request in `tls new, full`, 45x
//!   connpool's. That is worth knowing, not worth measuring every run.

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ProtocolVersion, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use common::requests::{connect_nodelay, connpool_get, hyper_get, raw_exchange, reqwest_get};
use common::rounds::{Outcome, Totals, cpu_time};
use common::{BoxError, Counting, Heads, Placement, RESPONSE, ServerProcess, allowed_cpus};

// --------------------------------------------------------------- constants

/// Set in the environment of the child process that serves; its value is
/// the CPU to pin the server to, or `-`.
const SERVER_ENV: &str = "CONNPOOL_BENCH_TLS_SERVER";
/// The response of the `new` cells' ports: the same, with `Connection: close`.
const CLOSE_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nhello, world\n";
const ALPN_HTTP11: &[u8] = b"http/1.1";
const DEFAULT_ROUNDS: u64 = 5;
const QUICK_ROUNDS: u64 = 3;
/// `--quick` runs this share of every cell's requests.
const QUICK_SCALE: f64 = 0.1;

/// The kinds of cell, one server port each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    TlsKeepAlive,
    TlsNewFull,
    TlsNewResumed,
    PlainKeepAlive,
    PlainNew,
}

impl Mode {
    const ALL: [Mode; 5] = [
        Mode::TlsKeepAlive,
        Mode::TlsNewFull,
        Mode::TlsNewResumed,
        Mode::PlainKeepAlive,
        Mode::PlainNew,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::TlsKeepAlive => "tls keep-alive",
            Mode::TlsNewFull => "tls new, full",
            Mode::TlsNewResumed => "tls new, resumed",
            Mode::PlainKeepAlive => "plain keep-alive",
            Mode::PlainNew => "plain new",
        }
    }

    fn tls(self) -> bool {
        matches!(
            self,
            Mode::TlsKeepAlive | Mode::TlsNewFull | Mode::TlsNewResumed
        )
    }

    /// Whether the server closes after each response.
    fn closes(self) -> bool {
        matches!(
            self,
            Mode::TlsNewFull | Mode::TlsNewResumed | Mode::PlainNew
        )
    }

    fn index(self) -> usize {
        Mode::ALL.iter().position(|&m| m == self).expect("a mode")
    }
}

/// One cell: a mode at a concurrency, and how many requests each client
/// makes in it (all rounds together, before `--quick`/`--scale`) and in
/// each round's warm-up.
struct CellSpec {
    /// Its name for `--cells`.
    name: &'static str,
    mode: Mode,
    concurrency: usize,
    requests: u64,
    warmup: u64,
}

impl CellSpec {
    fn name(&self) -> &'static str {
        self.name
    }
}

/// Sized so that each client's round takes ~0.1–0.5 s on the development
/// machine (a full handshake costs ~0.8 ms of wall time there, half of it
/// the server's).
const CELLS: [CellSpec; 6] = [
    CellSpec {
        name: "tls-ka-1",
        mode: Mode::TlsKeepAlive,
        concurrency: 1,
        requests: 20_000,
        warmup: 500,
    },
    CellSpec {
        name: "tls-ka-32",
        mode: Mode::TlsKeepAlive,
        concurrency: 32,
        requests: 40_000,
        warmup: 2_000,
    },
    CellSpec {
        name: "plain-ka-1",
        mode: Mode::PlainKeepAlive,
        concurrency: 1,
        requests: 20_000,
        warmup: 500,
    },
    CellSpec {
        name: "tls-new-full",
        mode: Mode::TlsNewFull,
        concurrency: 1,
        requests: 2_500,
        warmup: 50,
    },
    CellSpec {
        name: "tls-new-resumed",
        mode: Mode::TlsNewResumed,
        concurrency: 1,
        requests: 2_500,
        warmup: 50,
    },
    CellSpec {
        name: "plain-new",
        mode: Mode::PlainNew,
        concurrency: 1,
        requests: 6_000,
        warmup: 100,
    },
];

/// [`CELLS`] by reference, for `--cells`.
const CELLS_REFS: [&CellSpec; 6] = [
    &CELLS[0], &CELLS[1], &CELLS[2], &CELLS[3], &CELLS[4], &CELLS[5],
];

// -------------------------------------------------------- counting allocator

/// Counts the client's allocations (the allocs column).
#[global_allocator]
static GLOBAL: Counting<Totals> = Counting(Totals::new());

// ------------------------------------------------------------------ server

/// The server's counters, reported to the parent when asked.
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static FULL: AtomicU64 = AtomicU64::new(0);
static RESUMED: AtomicU64 = AtomicU64::new(0);
/// Handshakes that agreed on anything but TLS 1.3 and ALPN `http/1.1`.
static BAD: AtomicU64 = AtomicU64::new(0);
static TLS_FAILED: AtomicU64 = AtomicU64::new(0);

/// The child process: pins itself, makes the certificates, listens on one
/// port per [`Mode`], prints the ports and the CA certificate, and serves
/// on a current_thread runtime. Each line on its stdin asks for a line of
/// counters on its stdout; it exits when its stdin closes.
fn serve(cpu: &str) {
    common::pin_server(cpu);
    let ca = connpool_testkit::tls::TestCa::new("connpool bench CA");
    let cert = ca.server_cert(&["127.0.0.1", "localhost"]);
    let tls_config = |resumption: bool| {
        let mut config =
            rustls::ServerConfig::builder_with_provider(connpool_testkit::tls::crypto_provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("server: TLS 1.3 with ring")
                .with_no_client_auth()
                .with_single_cert(cert.chain(), cert.key_der())
                .expect("server: the certificate");
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        if !resumption {
            config.send_tls13_tickets = 0;
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        }
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("server: runtime");
    rt.block_on(async {
        let mut ports = Vec::new();
        for mode in Mode::ALL {
            let listener = common::listen_local(1024);
            ports.push(listener.local_addr().expect("server: addr").port());
            let acceptor = mode
                .tls()
                .then(|| tls_config(mode == Mode::TlsNewResumed || !mode.closes()));
            tokio::spawn(accept_loop(listener, acceptor, mode.closes()));
        }
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        common::announce(&format!(
            "{} {}",
            ports.join(" "),
            hex(ca.cert_der().as_ref())
        ));
        std::thread::spawn(|| common::report_on_request(stats_line));
        std::future::pending::<()>().await;
    });
}

/// In the server: its CPU time (ns) and counters, for the parent.
fn stats_line() -> String {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    format!(
        "{} {} {} {} {} {} {}",
        cpu_time().as_nanos(),
        load(&REQUESTS),
        load(&ACCEPTED),
        load(&FULL),
        load(&RESUMED),
        load(&BAD),
        load(&TLS_FAILED),
    )
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    close: bool,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        ACCEPTED.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(tcp, close).await,
                Some(acceptor) => {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        TLS_FAILED.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    let (_, conn) = tls.get_ref();
                    if conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                        RESUMED.fetch_add(1, Ordering::Relaxed);
                    } else {
                        FULL.fetch_add(1, Ordering::Relaxed);
                    }
                    if conn.protocol_version() != Some(ProtocolVersion::TLSv1_3)
                        || conn.alpn_protocol() != Some(ALPN_HTTP11)
                    {
                        BAD.fetch_add(1, Ordering::Relaxed);
                    }
                    serve_connection(tls, close).await;
                }
            }
        });
    }
}

/// Answers every request head on `stream` with [`RESPONSE`] until the
/// client closes; with `close`, answers the first with [`CLOSE_RESPONSE`]
/// and closes (TLS: `close_notify`, then FIN).
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, close: bool) {
    let mut heads = Heads::<8192>::new();
    loop {
        let mut answered = false;
        while heads.next_head().is_some() {
            REQUESTS.fetch_add(1, Ordering::Relaxed);
            if close {
                let _ = stream.write_all(CLOSE_RESPONSE).await;
                let _ = stream.shutdown().await;
                return;
            }
            if stream.write_all(RESPONSE).await.is_err() {
                return;
            }
            answered = true;
        }
        if answered && stream.flush().await.is_err() {
            return;
        }
        if !heads.read_async(&mut stream).await {
            return;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The server as the parent sees it: the process, its ports, the CA.
struct Server {
    process: ServerProcess,
    ports: Vec<u16>,
    ca: CertificateDer<'static>,
}

/// The server's counters at one moment.
#[derive(Clone, Copy, Default)]
struct ServerStats {
    cpu_ns: u64,
    requests: u64,
    accepted: u64,
    full: u64,
    resumed: u64,
    bad: u64,
    tls_failed: u64,
}

impl Server {
    fn start(cpu: Option<usize>) -> Server {
        let process = ServerProcess::start(SERVER_ENV, &common::cpu_arg(cpu));
        let words: Vec<&str> = process.first_line.split_whitespace().collect();
        assert_eq!(words.len(), Mode::ALL.len() + 1, "the server's first line");
        let ports = words[..Mode::ALL.len()]
            .iter()
            .map(|p| p.parse().expect("a port"))
            .collect();
        let ca = CertificateDer::from(unhex(words[Mode::ALL.len()]).expect("the CA, in hex"));
        Server { process, ports, ca }
    }

    fn addr(&self, mode: Mode) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[mode.index()]))
    }

    fn stats(&mut self) -> ServerStats {
        let n = self.process.counters(b"stats\n", 7);
        ServerStats {
            cpu_ns: n[0],
            requests: n[1],
            accepted: n[2],
            full: n[3],
            resumed: n[4],
            bad: n[5],
            tls_failed: n[6],
        }
    }
}

// ------------------------------------------------------------------ clients

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Raw,
    Connpool,
    HyperUtil,
    Reqwest,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Raw, Kind::Connpool, Kind::HyperUtil, Kind::Reqwest];

    fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Connpool => "connpool",
            Kind::HyperUtil => "hyper-util",
            Kind::Reqwest => "reqwest",
        }
    }
}

/// What a cell's clients are pointed at.
#[derive(Clone, Copy)]
struct Target {
    addr: SocketAddr,
    url: &'static str,
    /// `raw`'s request: the request line and `host`.
    request: &'static [u8],
    /// The response the server sends on this port.
    response: &'static [u8],
    mode: Mode,
}

impl Target {
    fn new(addr: SocketAddr, mode: Mode) -> Target {
        let scheme = if mode.tls() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}/");
        let request = format!("GET / HTTP/1.1\r\nhost: {addr}\r\n\r\n");
        Target {
            addr,
            url: Box::leak(url.into_boxed_str()),
            request: Box::leak(request.into_boxed_str()).as_bytes(),
            response: if mode.closes() {
                CLOSE_RESPONSE
            } else {
                RESPONSE
            },
            mode,
        }
    }
}

type HyperTlsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// A rustls client configuration as connpool builds one: ring, the safe
/// default versions (1.2 and 1.3), the CA as the only root, ALPN
/// `http/1.1`.
fn rustls_client_config(ca: &CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("the CA parses");
    let mut config =
        rustls::ClientConfig::builder_with_provider(connpool_testkit::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config
}

/// One task's client: its own connection for `raw`, a clone of the shared
/// client otherwise.
enum Worker {
    RawTls {
        connector: tokio_rustls::TlsConnector,
        target: Target,
        /// Boxed: the TLS state is large.
        stream: Option<Box<tokio_rustls::client::TlsStream<TcpStream>>>,
    },
    RawTcp {
        target: Target,
        stream: Option<TcpStream>,
    },
    Connpool(connpool::http::Client, Target),
    HyperUtil(HyperTlsClient, Target),
    Reqwest(reqwest::Client, Target),
}

impl Worker {
    /// `n` workers of `kind` sharing one client built for this cell. Call
    /// inside the runtime.
    fn build(kind: Kind, target: Target, ca: &CertificateDer<'static>, n: usize) -> Vec<Worker> {
        let first = match kind {
            Kind::Raw if target.mode.tls() => Worker::RawTls {
                connector: tokio_rustls::TlsConnector::from(Arc::new(rustls_client_config(ca))),
                target,
                stream: None,
            },
            Kind::Raw => Worker::RawTcp {
                target,
                stream: None,
            },
            Kind::Connpool => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.clone()).expect("the CA parses");
                let tls = connpool::tls::TlsConfig::builder()
                    .root_store(roots)
                    .build()
                    .expect("connpool TLS config");
                let client = connpool::http::Client::builder().tls(tls).build();
                let config = client.config();
                assert!(
                    config.max_conns_per_host >= 32 && config.pool_max_idle_per_host >= 32,
                    "connpool's defaults must allow 32 connections"
                );
                Worker::Connpool(client, target)
            }
            Kind::HyperUtil => {
                let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
                http.enforce_http(false); // as hyper-rustls's builder does
                // Off by default; see the module docs for why it is on.
                http.set_nodelay(true);
                let https = hyper_rustls::HttpsConnector::from((http, rustls_client_config(ca)));
                Worker::HyperUtil(common::hyper_builder().build(https), target)
            }
            Kind::Reqwest => {
                common::install_ring_provider();
                let ca = reqwest::Certificate::from_der(ca.as_ref()).expect("the CA parses");
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .tls_certs_only([ca])
                    .build()
                    .expect("reqwest client");
                Worker::Reqwest(client, target)
            }
        };
        let mut workers = Vec::with_capacity(n);
        for _ in 1..n {
            workers.push(first.share());
        }
        workers.push(first);
        workers
    }

    /// Another worker on the same client (its own connection for `raw`).
    fn share(&self) -> Worker {
        match self {
            Worker::RawTls {
                connector, target, ..
            } => Worker::RawTls {
                connector: connector.clone(),
                target: *target,
                stream: None,
            },
            Worker::RawTcp { target, .. } => Worker::RawTcp {
                target: *target,
                stream: None,
            },
            Worker::Connpool(c, t) => Worker::Connpool(c.clone(), *t),
            Worker::HyperUtil(c, t) => Worker::HyperUtil(c.clone(), *t),
            Worker::Reqwest(c, t) => Worker::Reqwest(c.clone(), *t),
        }
    }

    async fn request(&mut self) -> Result<(), BoxError> {
        match self {
            Worker::RawTls {
                connector,
                target,
                stream,
            } => {
                if stream.is_none() {
                    let tcp = connect_nodelay(target.addr).await?;
                    let name = ServerName::IpAddress(target.addr.ip().into());
                    *stream = Some(Box::new(connector.connect(name, tcp).await?));
                }
                let tls = stream.as_mut().expect("connected");
                let result = raw_exchange(tls, target.request, target.response).await;
                if result.is_err() || target.mode.closes() {
                    *stream = None;
                }
                result
            }
            Worker::RawTcp { target, stream } => {
                if stream.is_none() {
                    *stream = Some(connect_nodelay(target.addr).await?);
                }
                let tcp = stream.as_mut().expect("connected");
                let result = raw_exchange(tcp, target.request, target.response).await;
                if result.is_err() || target.mode.closes() {
                    *stream = None;
                }
                result
            }
            Worker::Connpool(client, target) => connpool_get(client, target.url).await,
            Worker::HyperUtil(client, target) => hyper_get(client, target.url).await,
            Worker::Reqwest(client, target) => reqwest_get(client, target.url).await,
        }
    }

    async fn run(mut self, requests: u64) -> (Worker, Outcome) {
        let mut outcome = Outcome::default();
        for _ in 0..requests {
            outcome.record(self.request().await);
        }
        (self, outcome)
    }
}

// -------------------------------------------------------------- measuring

/// One round of one cell, per request.
#[derive(Clone, Copy)]
struct RoundSample {
    wall_us: f64,
    cpu_us: f64,
    server_cpu_us: f64,
}

/// One cell of one client: its rounds, and sums over them.
#[derive(Default)]
struct Tally {
    requests: u64,
    allocs: u64,
    /// Counted by the server over the measured requests.
    server_requests: u64,
    accepted: u64,
    full: u64,
    resumed: u64,
    bad: u64,
    tls_failed: u64,
    /// The errors, warm-ups included.
    outcome: Outcome,
    rounds: Vec<RoundSample>,
}

impl Tally {
    fn median(&self, f: impl Fn(&RoundSample) -> f64) -> f64 {
        common::rounds::median(self.rounds.iter().map(f)).unwrap_or(f64::NAN)
    }

    fn wall_us(&self) -> f64 {
        self.median(|r| r.wall_us)
    }

    fn cpu_us(&self) -> f64 {
        self.median(|r| r.cpu_us)
    }

    fn server_cpu_us(&self) -> f64 {
        self.median(|r| r.server_cpu_us)
    }

    fn per_request(&self, n: u64) -> f64 {
        n as f64 / self.requests.max(1) as f64
    }

    /// The share of the measured handshakes that were resumptions.
    fn resumed_share(&self) -> Option<f64> {
        let handshakes = self.full + self.resumed;
        (handshakes > 0).then(|| self.resumed as f64 / handshakes as f64)
    }

    /// (slowest round − fastest round) / median round, of the wall time.
    fn spread(&self) -> f64 {
        common::rounds::spread(self.rounds.iter().map(|r| r.wall_us))
    }

    /// Whether anything went wrong: errors, or a handshake that was not TLS
    /// 1.3 with ALPN `http/1.1`, or one that failed.
    fn failed(&self) -> bool {
        self.outcome.errors > 0 || self.bad > 0 || self.tls_failed > 0
    }
}

/// One client in one cell.
struct Participant {
    kind: Kind,
    concurrency: usize,
    workers: Vec<Worker>,
    tally: Tally,
}

impl Participant {
    /// `per_worker` requests on every worker at once.
    fn run(&mut self, rt: &Runtime, per_worker: u64) -> Outcome {
        common::rounds::run_workers(rt, &mut self.workers, per_worker, Worker::run)
    }

    /// One round: the warm-up, then `per_worker` measured requests on each
    /// worker.
    fn round(&mut self, rt: &Runtime, server: &mut Server, warmup: u64, per_worker: u64) {
        let warm = self.run(rt, warmup);
        self.tally.outcome.merge(warm);
        let server_before = server.stats();
        let (cpu_before, allocs_before) = (cpu_time(), GLOBAL.0.allocs());
        let started = Instant::now();
        let outcome = self.run(rt, per_worker);
        let wall = started.elapsed();
        let (cpu_after, allocs_after) = (cpu_time(), GLOBAL.0.allocs());
        let server_after = server.stats();
        let requests = per_worker * self.concurrency as u64;
        let per_request = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
        let t = &mut self.tally;
        t.requests += requests;
        t.allocs += allocs_after - allocs_before;
        t.server_requests += server_after.requests - server_before.requests;
        t.accepted += server_after.accepted - server_before.accepted;
        t.full += server_after.full - server_before.full;
        t.resumed += server_after.resumed - server_before.resumed;
        t.bad += server_after.bad - server_before.bad;
        t.tls_failed += server_after.tls_failed - server_before.tls_failed;
        t.rounds.push(RoundSample {
            wall_us: per_request(wall),
            cpu_us: per_request(cpu_after.saturating_sub(cpu_before)),
            server_cpu_us: (server_after.cpu_ns - server_before.cpu_ns) as f64
                / 1e3
                / requests as f64,
        });
        t.outcome.merge(outcome);
    }
}

/// One line of the first table.
struct Row {
    mode: Mode,
    concurrency: usize,
    kind: Kind,
    tally: Tally,
    connpool: Option<connpool::Counters>,
}

/// The clients of one cell, and how many requests each worker makes per
/// round.
struct Cell<'a> {
    spec: &'a CellSpec,
    participants: Vec<Participant>,
    per_worker: u64,
    warmup_per_worker: u64,
}

impl<'a> Cell<'a> {
    /// Builds every selected client for `spec`.
    fn new(spec: &'a CellSpec, options: &Options, rt: &Runtime, server: &Server) -> Cell<'a> {
        let target = Target::new(server.addr(spec.mode), spec.mode);
        let participants = Kind::ALL
            .iter()
            .copied()
            .filter(|&k| options.runs(k))
            .map(|kind| {
                let _guard = rt.enter();
                Participant {
                    kind,
                    concurrency: spec.concurrency,
                    workers: Worker::build(kind, target, &server.ca, spec.concurrency),
                    tally: Tally::default(),
                }
            })
            .collect();
        let conc = spec.concurrency as u64;
        let requests = (spec.requests as f64 * options.scale) as u64;
        Cell {
            spec,
            participants,
            per_worker: (requests / (options.rounds * conc)).max(1),
            warmup_per_worker: ((spec.warmup as f64 * options.scale.min(1.0)) as u64 / conc).max(1),
        }
    }

    /// Round `round` of every client, starting with the `round`-th.
    fn round(&mut self, round: usize, rt: &Runtime, server: &mut Server) {
        let n = self.participants.len();
        for i in 0..n {
            self.participants[(i + round) % n].round(
                rt,
                server,
                self.warmup_per_worker,
                self.per_worker,
            );
        }
    }

    /// The rows for the table; the clients are dropped inside the runtime.
    fn finish(self, rt: &Runtime) -> Vec<Row> {
        let spec = self.spec;
        self.participants
            .into_iter()
            .map(|p| {
                let connpool = match p.workers.first() {
                    Some(Worker::Connpool(client, _)) => Some(client.stats().counters),
                    _ => None,
                };
                let _guard = rt.enter();
                drop(p.workers);
                Row {
                    mode: spec.mode,
                    concurrency: spec.concurrency,
                    kind: p.kind,
                    tally: p.tally,
                    connpool,
                }
            })
            .collect()
    }
}

/// Measures every selected client in every selected cell: in each round,
/// each cell in turn, and in each cell each client in turn (the order of
/// the clients rotating from round to round). So a cell's round and the
/// same round of the cell it is compared with (the second table) are
/// seconds apart, not the whole run.
fn measure(options: &Options, rt: &Runtime, server: &mut Server) -> Vec<Row> {
    let mut cells: Vec<Cell> = CELLS
        .iter()
        .filter(|c| options.runs_cell(c))
        .map(|spec| Cell::new(spec, options, rt, server))
        .collect();
    for round in 0..options.rounds as usize {
        for cell in &mut cells {
            cell.round(round, rt, server);
        }
    }
    cells.into_iter().flat_map(|c| c.finish(rt)).collect()
}

// ------------------------------------------------------------------ the run

struct Options {
    scale: f64,
    rounds: u64,
    only: Option<Vec<Kind>>,
    cells: Option<Vec<&'static str>>,
    json: bool,
}

const USAGE: &str = "usage: https_clients [--quick] [--scale F] [--rounds R] \
                     [--only NAME[,NAME...]] [--cells CELL[,CELL...]] [--json]\n\
                     NAME: raw, connpool, hyper-util, reqwest\n\
                     CELL: tls-ka-1, tls-ka-32, plain-ka-1, tls-new-full, tls-new-resumed, \
                     plain-new";

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let (mut quick, mut scale, mut rounds) = (false, None, None);
        let mut options = Options {
            scale: 1.0,
            rounds: DEFAULT_ROUNDS,
            only: None,
            cells: None,
            json: false,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => {} // passed by `cargo bench`
                "--quick" => quick = true,
                "--json" => options.json = true,
                "--scale" => {
                    scale = Some(
                        args.next()
                            .and_then(|s| s.parse::<f64>().ok())
                            .filter(|s| *s > 0.0 && s.is_finite())
                            .ok_or("--scale wants a positive number")?,
                    );
                }
                "--rounds" => rounds = Some(common::positive("--rounds", args.next())?),
                "--only" => options.only = Some(common::only(args.next(), &Kind::ALL, Kind::name)?),
                "--cells" => {
                    let cells: Vec<&CellSpec> =
                        common::only(args.next(), &CELLS_REFS, CellSpec::name)
                            .map_err(|e| e.replace("client", "cell"))?;
                    options.cells = Some(cells.iter().map(|c| c.name).collect());
                }
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        options.scale = scale.unwrap_or(if quick { QUICK_SCALE } else { 1.0 });
        options.rounds = rounds.unwrap_or(if quick { QUICK_ROUNDS } else { DEFAULT_ROUNDS });
        Ok(options)
    }

    fn runs(&self, kind: Kind) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(&kind))
    }

    fn runs_cell(&self, cell: &CellSpec) -> bool {
        self.cells
            .as_ref()
            .is_none_or(|cells| cells.contains(&cell.name))
    }
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
    let mut server = Server::start(placement.server_cpu);
    placement.pin_client();
    let placement = match (placement.both(), placement.unpinned) {
        (Some((c, s)), _) => format!(
            "server: child process {} on CPU {s}; client (current_thread) on CPU {c}",
            server.process.child.id()
        ),
        (None, why) => why.unwrap_or_default(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let rows = measure(&options, &rt, &mut server);
    let report = Report {
        options: &options,
        rows: &rows,
        placement,
        took: started.elapsed(),
        cpus_allowed,
        load,
        versions: common::locked_versions(&[
            "connpool",
            "rustls",
            "tokio-rustls",
            "hyper-util",
            "hyper-rustls",
            "reqwest",
            "tokio",
        ]),
    };
    if options.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    drop(server);
    if rows.iter().any(|r| r.tally.failed()) {
        std::process::exit(1);
    }
}

// ------------------------------------------------------------------ report

/// A difference between two cells of the same client (see the module docs).
struct Derived {
    name: &'static str,
    /// The cell subtracted from.
    from: Mode,
    /// The cell subtracted.
    minus: Mode,
}

const DERIVED: [Derived; 4] = [
    Derived {
        name: "tls / request",
        from: Mode::TlsKeepAlive,
        minus: Mode::PlainKeepAlive,
    },
    Derived {
        name: "handshake, full",
        from: Mode::TlsNewFull,
        minus: Mode::TlsKeepAlive,
    },
    Derived {
        name: "handshake, resumed",
        from: Mode::TlsNewResumed,
        minus: Mode::TlsKeepAlive,
    },
    Derived {
        name: "tcp connect",
        from: Mode::PlainNew,
        minus: Mode::PlainKeepAlive,
    },
];

struct Report<'a> {
    options: &'a Options,
    rows: &'a [Row],
    placement: String,
    took: Duration,
    cpus_allowed: usize,
    load: String,
    versions: Vec<(&'static str, String)>,
}

impl Report<'_> {
    fn find(&self, mode: Mode, concurrency: usize, kind: Kind) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.mode == mode && r.concurrency == concurrency && r.kind == kind)
    }

    /// (wall, CPU) ratios of `row` to connpool's in the same cell.
    fn versus_connpool(&self, row: &Row) -> Option<(f64, f64)> {
        let cp = self.find(row.mode, row.concurrency, Kind::Connpool)?;
        Some((
            row.tally.wall_us() / cp.tally.wall_us(),
            row.tally.cpu_us() / cp.tally.cpu_us(),
        ))
    }

    /// (wall µs, client CPU µs) of `derived` for `kind`, at c=1: the
    /// median over the rounds of the difference within each round.
    fn derived(&self, derived: &Derived, kind: Kind) -> Option<(f64, f64)> {
        let a = &self.find(derived.from, 1, kind)?.tally.rounds;
        let b = &self.find(derived.minus, 1, kind)?.tally.rounds;
        let median = |f: fn(&RoundSample) -> f64| {
            common::rounds::median(a.iter().zip(b).map(|(a, b)| f(a) - f(b)))
        };
        Some((median(|r| r.wall_us)?, median(|r| r.cpu_us)?))
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n== https_clients: GET of a 52-byte response over TLS 1.3 (ring, ALPN http/1.1), \
             {} rounds, request counts x{} ==",
            self.options.rounds, self.options.scale
        );
        let _ = writeln!(out, "{}", common::crates_line(&self.versions));
        let _ = writeln!(
            out,
            "{}",
            common::machine_line(self.cpus_allowed, &self.load)
        );
        let _ = writeln!(out, "placement: {}\n", self.placement);
        let _ = writeln!(
            out,
            "{:<17} {:>3} {:<11} {:>8} {:>8} {:>6} {:>8} {:>6} {:>8} {:>7} {:>6} {:>7} \
             {:>6} {:>6}",
            "cell",
            "c",
            "client",
            "requests",
            "µs/req",
            "x cp",
            "cpu µs",
            "x cp",
            "srv cpu",
            "allocs",
            "conns",
            "resumed",
            "spread",
            "errors",
        );
        let mut last = None;
        for row in self.rows {
            if last.is_some_and(|l| l != (row.mode, row.concurrency)) {
                let _ = writeln!(out);
            }
            last = Some((row.mode, row.concurrency));
            let t = &row.tally;
            let (wall_ratio, cpu_ratio) = match self.versus_connpool(row) {
                Some((w, c)) => (format!("{w:.2}x"), format!("{c:.2}x")),
                None => ("-".into(), "-".into()),
            };
            let resumed = t
                .resumed_share()
                .map_or_else(|| "-".to_string(), |s| format!("{:.0}%", s * 100.0));
            let _ = writeln!(
                out,
                "{:<17} {:>3} {:<11} {:>8} {:>8.2} {:>6} {:>8.2} {:>6} {:>8.2} {:>7.1} {:>6.2} \
                 {:>7} {:>5.1}% {:>6}",
                row.mode.name(),
                row.concurrency,
                row.kind.name(),
                t.requests,
                t.wall_us(),
                wall_ratio,
                t.cpu_us(),
                cpu_ratio,
                t.server_cpu_us(),
                t.per_request(t.allocs),
                t.per_request(t.accepted),
                resumed,
                t.spread() * 100.0,
                t.outcome.errors + t.bad + t.tls_failed,
            );
        }
        let _ = writeln!(
            out,
            "\nµs/req: wall time per request (c=32: of the 32 together); x cp: against connpool.\n\
             cpu µs: the client process's CPU (user + system) per request; srv cpu: the \
             server's.\nallocs: client heap allocations per request. conns: new connections per \
             request;\n  resumed: the share of their handshakes that resumed a session (both \
             counted by the server).\nthe median round of wall and CPU; spread: (slowest - \
             fastest round) / median round."
        );
        let kinds: Vec<Kind> = Kind::ALL
            .iter()
            .copied()
            .filter(|&k| self.options.runs(k))
            .collect();
        let _ = writeln!(
            out,
            "\n== differences between cells (c=1), per request: wall µs / client CPU µs =="
        );
        let _ = write!(out, "{:<19}", "");
        for kind in &kinds {
            let _ = write!(out, " {:>20}", kind.name());
        }
        let _ = writeln!(out);
        for derived in &DERIVED {
            let _ = write!(out, "{:<19}", derived.name);
            for &kind in &kinds {
                let cell = self.derived(derived, kind).map_or_else(
                    || "-".to_string(),
                    |(wall, cpu)| format!("{wall:.1} / {cpu:.1}"),
                );
                let _ = write!(out, " {cell:>20}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "tls / request = tls keep-alive - plain keep-alive; handshake = tls new - tls \
             keep-alive;\ntcp connect = plain new - plain keep-alive."
        );
        for row in self.rows.iter().filter(|r| r.tally.failed()) {
            let t = &row.tally;
            let _ = writeln!(
                out,
                "ERRORS {} c={} {}: {} errors (first: {}), {} handshakes not TLS 1.3 + \
                 http/1.1, {} failed handshakes",
                row.mode.name(),
                row.concurrency,
                row.kind.name(),
                t.outcome.errors,
                t.outcome.first_error.as_deref().unwrap_or("-"),
                t.bad,
                t.tls_failed,
            );
        }
        for row in self.rows {
            if let Some(c) = &row.connpool {
                let _ = writeln!(
                    out,
                    "connpool pool {} c={}: created {} reused {} returned {} closed {}",
                    row.mode.name(),
                    row.concurrency,
                    c.created,
                    c.reused,
                    c.returned,
                    c.closed,
                );
            }
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
                let versus = self.versus_connpool(row);
                serde_json::json!({
                    "cell": row.mode.name(),
                    "concurrency": row.concurrency,
                    "client": row.kind.name(),
                    "requests": t.requests,
                    "wall_us_per_request": t.wall_us(),
                    "wall_ratio_to_connpool": versus.map(|v| v.0),
                    "cpu_us_per_request": t.cpu_us(),
                    "cpu_ratio_to_connpool": versus.map(|v| v.1),
                    "server_cpu_us_per_request": t.server_cpu_us(),
                    "allocs_per_request": t.per_request(t.allocs),
                    "connections_per_request": t.per_request(t.accepted),
                    "server_requests": t.server_requests,
                    "full_handshakes": t.full,
                    "resumed_handshakes": t.resumed,
                    "bad_handshakes": t.bad,
                    "failed_handshakes": t.tls_failed,
                    "spread": t.spread(),
                    "rounds": t.rounds.iter().map(|r| serde_json::json!({
                        "wall_us_per_request": r.wall_us,
                        "cpu_us_per_request": r.cpu_us,
                        "server_cpu_us_per_request": r.server_cpu_us,
                    })).collect::<Vec<_>>(),
                    "errors": t.outcome.errors,
                    "first_error": t.outcome.first_error,
                })
            })
            .collect();
        let derived: Vec<_> = DERIVED
            .iter()
            .flat_map(|d| {
                Kind::ALL.iter().filter_map(move |&kind| {
                    let (wall, cpu) = self.derived(d, kind)?;
                    Some(serde_json::json!({
                        "name": d.name,
                        "client": kind.name(),
                        "wall_us": wall,
                        "cpu_us": cpu,
                    }))
                })
            })
            .collect();
        serde_json::json!({
            "bench": "https_clients",
            "rounds": self.options.rounds,
            "scale": self.options.scale,
            "placement": self.placement,
            "cpus_allowed": self.cpus_allowed,
            "load_average_at_start": self.load,
            "versions": common::versions_json(&self.versions),
            "took_s": self.took.as_secs_f64(),
            "rows": rows,
            "derived": derived,
        })
        .to_string()
    }
}
