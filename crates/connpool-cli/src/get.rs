//! `connpool get URL`: a curl-like request tool that shows what the pool did.
//!
//! It sends `COUNT` requests one after another through one
//! [`connpool::http::Client`], so from the second request on the pool has a
//! connection to offer, and tells for each one which connection served it,
//! whether that connection was new or reused, and how long the response
//! head took:
//!
//! * stdout gets the response bodies (with `-i`, each preceded by its status
//!   line and header fields), byte for byte;
//! * stderr gets everything else: with `-n` above 1 one line per request
//!   (`#3 200 OK  conn #1 reused  1.23 ms`); with `-v` curl-style `<` lines
//!   for the response head and `*` lines for the request's
//!   [`RequestTrace`](connpool::http::RequestTrace) (read after the body, so
//!   it ends with the connection going back to the pool or being closed)
//!   and the pool's events during that request; with `-v` or `-n` above 1
//!   a summary from the pool's counters at the end.
//!
//! `https` URLs take curl's TLS options (`--cacert`, `-k`, `--cert` and
//! `--key`, see [`TlsArgs`]); a TLS failure is reported like any other,
//! with its kind (`tls_certificate`, `tls_handshake`, …).
//!
//! A failed request prints `error: …` with its kind, whether it may have
//! reached the server, and how many attempts the client made; the run goes
//! on with the next request. The exit status is 1 if any request failed.
//!
//! Tracing is turned on for every request, not only with `-v`: it is cheap,
//! and it is the only place that says whether a request was retried after a
//! stale connection, which the per-request line and the summary report.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use connpool::events::ConnId;
use connpool::http::{Client, HostKey, Response, TraceStep};
use connpool::{Error, Event, EventKind};
use http::{Method, Uri};

use crate::request_args::{
    HeaderField, header_map, method_or_default, parse_header, parse_method, parse_url,
};
use crate::tls_args::TlsArgs;

/// Options of `connpool get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The URL to request (`http[s]://host[:port]/path?query`).
    #[arg(value_parser = parse_url)]
    url: Uri,

    /// The request method. Default: GET, or POST with -d/--data-file.
    #[arg(short = 'X', long = "request", value_name = "METHOD", value_parser = parse_method)]
    method: Option<Method>,

    /// A request header field, `Name: value`. Repeat for more.
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header)]
    headers: Vec<HeaderField>,

    /// The request body, sent as is (no Content-Type is added; use -H).
    #[arg(
        short = 'd',
        long = "data",
        value_name = "DATA",
        conflicts_with = "data_file"
    )]
    data: Option<String>,

    /// The request body, read from a file.
    #[arg(long, value_name = "PATH", value_parser = read_data_file)]
    data_file: Option<FileData>,

    /// How many times to send the request, one after another, on one pool.
    #[arg(short = 'n', long = "count", value_name = "COUNT", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,

    /// Pause between two requests, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    gap_ms: u64,

    /// Show the response heads, each request's trace and the pool's events
    /// (on stderr), and a summary at the end.
    #[arg(short, long)]
    verbose: bool,

    /// Print the status line and header fields before each body (on stdout).
    #[arg(short, long)]
    include: bool,

    /// Give up on a request (waiting for a connection, connecting, writing,
    /// reading the head and the body) after this many milliseconds.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: Option<u64>,

    /// How long a connection may sit idle in the pool, in milliseconds
    /// (default: the client's, 4 s). 0 means never reuse one.
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,

    /// Connections per host, counting those being opened (default: the
    /// client's, 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_conns: Option<u32>,

    // `--cacert`, `-k`, `--cert`, `--key`.
    #[command(flatten)]
    tls: TlsArgs,
}

/// The contents of the `--data-file` file, read while parsing arguments so
/// a missing file is a usage error like any other.
#[derive(Clone, Debug)]
struct FileData(Bytes);

fn read_data_file(path: &str) -> Result<FileData, String> {
    std::fs::read(PathBuf::from(path))
        .map(|data| FileData(Bytes::from(data)))
        .map_err(|e| format!("cannot read {path}: {e}"))
}

/// A pool event as the observer saw it.
struct SeenEvent {
    at: Instant,
    conn: Option<ConnId>,
    kind: EventKind,
}

/// The pool events seen since they were last printed.
type EventLog = Arc<Mutex<Vec<SeenEvent>>>;

/// What the run counted.
#[derive(Default)]
struct Tally {
    requests: u64,
    ok: u64,
    failed: u64,
    /// Requests sent again after a stale connection (from their traces).
    retried: u64,
}

/// Runs `connpool get` and returns its exit status.
pub async fn run(args: GetArgs) -> ExitCode {
    let verbose = args.verbose;
    let many = args.count > 1;

    let events: EventLog = Arc::default();
    let mut builder = Client::builder().observer({
        let events = Arc::clone(&events);
        move |event: &Event<'_, HostKey>| {
            let seen = SeenEvent {
                at: Instant::now(),
                conn: event.conn,
                kind: event.kind.clone(),
            };
            events.lock().unwrap_or_else(|e| e.into_inner()).push(seen);
        }
    });
    if let Some(ms) = args.timeout_ms {
        builder = builder.timeout(Some(Duration::from_millis(ms)));
    }
    if let Some(ms) = args.idle_timeout_ms {
        builder = builder.pool_idle_timeout(Some(Duration::from_millis(ms)));
    }
    if let Some(n) = args.max_conns {
        builder = builder.max_conns_per_host(n as usize);
    }
    match args.tls.config() {
        Ok(Some(tls)) => builder = builder.tls(tls),
        Ok(None) => {}
        Err(err) => {
            eprintln!("connpool get: bad TLS options: {err}");
            return ExitCode::from(2);
        }
    }
    let client = builder.build();

    let body = match (&args.data, &args.data_file) {
        (Some(data), _) => Some(Bytes::from(data.clone())),
        (None, Some(FileData(data))) => Some(data.clone()),
        (None, None) => None,
    };
    let method = method_or_default(args.method.as_ref(), body.is_some());
    let headers = header_map(&args.headers);

    let mut tally = Tally::default();
    for n in 1..=args.count {
        if n > 1 && args.gap_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
        }
        let mut request = client
            .request_builder(method.clone(), args.url.clone())
            .headers(headers.clone())
            .trace(true);
        if let Some(body) = &body {
            request = request.body(body.clone());
        }

        tally.requests += 1;
        if verbose {
            eprintln!("* request #{n}: {method} {}", args.url);
        }
        let started = Instant::now();
        let outcome = match request.send().await {
            Ok(resp) => receive(resp, n, started, &args, &mut tally).await,
            Err(err) => Err(Failure::Request(err)),
        };
        match outcome {
            Ok(()) => tally.ok += 1,
            Err(Failure::Request(err)) => {
                tally.failed += 1;
                let prefix = if many {
                    format!("#{n} ")
                } else {
                    String::new()
                };
                eprintln!("{prefix}{}", describe_error(&err));
            }
            Err(Failure::Stdout(err)) => {
                // Nobody reads what we print (`connpool get … | head`):
                // stop quietly, like curl, but say it failed.
                if err.kind() != io::ErrorKind::BrokenPipe {
                    eprintln!("connpool get: cannot write the body: {err}");
                }
                return ExitCode::FAILURE;
            }
        }
        if verbose {
            print_events(&events, started);
        }
    }

    if verbose || many {
        let counters = client.stats().counters;
        let stale = counters.evicted_stale();
        let mut line = format!(
            "summary: {} {}, {} ok, {} failed; connections: {} opened, {} reused",
            tally.requests,
            plural(tally.requests, "request", "requests"),
            tally.ok,
            tally.failed,
            counters.created,
            counters.reused
        );
        if stale > 0 {
            let _ = write!(line, ", {stale} found closed by the server before reuse");
        }
        if tally.retried > 0 {
            let _ = write!(
                line,
                "; {} {} retried after a stale connection",
                tally.retried,
                plural(tally.retried, "request", "requests"),
            );
        }
        if verbose {
            // What happens to the idle connections when the client goes.
            let dropped = Instant::now();
            drop(client);
            print_events(&events, dropped);
        }
        eprintln!("{line}");
    }

    if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Why a request did not end well.
enum Failure {
    /// The request or its response failed.
    Request(Error),
    /// The body could not be written to stdout.
    Stdout(io::Error),
}

/// Prints what `-n`, `-v` and `-i` ask for about `resp`, then its body,
/// then (with `-v`) its trace.
async fn receive(
    mut resp: Response,
    n: u32,
    started: Instant,
    args: &GetArgs,
    tally: &mut Tally,
) -> Result<(), Failure> {
    let head_took = started.elapsed();
    let retried = resp
        .trace()
        .is_some_and(|t| t.contains(|s| matches!(s, TraceStep::Retry { .. })));
    if retried {
        tally.retried += 1;
    }
    if args.count > 1 {
        eprintln!(
            "#{n} {}  conn #{} {}  {:.2} ms{}",
            resp.status(),
            resp.connection_id(),
            if resp.connection_reused() {
                "reused"
            } else {
                "new"
            },
            head_took.as_secs_f64() * 1000.0,
            if retried {
                "  (retried after a stale connection)"
            } else {
                ""
            },
        );
    }
    let head = format_head(&resp);
    if args.verbose {
        for line in head.lines() {
            eprintln!("< {line}");
        }
    }

    let mut stdout = io::stdout();
    if args.include {
        stdout
            .write_all(head.replace('\n', "\r\n").as_bytes())
            .and_then(|()| stdout.write_all(b"\r\n"))
            .map_err(Failure::Stdout)?;
    }
    let read = loop {
        match resp.chunk().await {
            Ok(Some(data)) => stdout.write_all(&data).map_err(Failure::Stdout)?,
            Ok(None) => break Ok(()),
            Err(err) => break Err(Failure::Request(err)),
        }
    };
    if let (true, Some(trailers)) = (args.verbose, resp.body_mut().trailers()) {
        for (name, value) in trailers {
            eprintln!(
                "< {name}: {} (trailer)",
                String::from_utf8_lossy(value.as_bytes())
            );
        }
    }
    stdout.flush().map_err(Failure::Stdout)?;

    let trace = if args.verbose { resp.trace() } else { None };
    if let Some(trace) = trace {
        for line in trace.to_string().lines() {
            eprintln!("* {line}");
        }
    }
    read
}

/// The status line and header fields, one per line, `\n`-terminated.
fn format_head(resp: &Response) -> String {
    let mut head = format!("{:?} {}\n", resp.version(), resp.status());
    for (name, value) in resp.headers() {
        let _ = writeln!(
            head,
            "{name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    head
}

/// `error: <what> (kind=…, may have been processed: yes/no, attempts: N)`.
fn describe_error(err: &Error) -> String {
    let mut line = format!(
        "error: {err} (kind={}, may have been processed: {}",
        err.kind(),
        if err.may_have_been_processed() {
            "yes"
        } else {
            "no"
        },
    );
    // The client reports a failed checkout or connect with 0 attempts and
    // `connection_reused: Some(false)`: no connection was involved then.
    if let (Some(reused), Some(1..)) = (err.connection_reused(), err.attempts()) {
        let _ = write!(
            line,
            ", on a {} connection",
            if reused { "reused" } else { "new" }
        );
    }
    if let Some(attempts) = err.attempts() {
        let _ = write!(line, ", attempts: {attempts}");
    }
    line.push(')');
    line
}

/// Prints (with `*`, times since `since`) and forgets the pool events seen
/// so far.
fn print_events(events: &EventLog, since: Instant) {
    let seen = std::mem::take(&mut *events.lock().unwrap_or_else(|e| e.into_inner()));
    for event in seen {
        let at = event.at.saturating_duration_since(since);
        let mut line = format!("* {:>9.3} ms  pool: ", millis(at));
        if let Some(conn) = event.conn {
            let _ = write!(line, "conn #{conn} ");
        }
        describe_event(&mut line, &event.kind);
        eprintln!("{line}");
    }
}

/// Appends a few words about `kind` to `out`.
fn describe_event(out: &mut String, kind: &EventKind) {
    let _ = match kind {
        EventKind::Connecting => write!(out, "connecting"),
        EventKind::Connected { took } => write!(out, "connected in {:.3} ms", millis(*took)),
        EventKind::ConnectFailed { error } => write!(out, "connect failed ({error})"),
        EventKind::Reused {
            idle_for,
            previous_uses,
        } => write!(
            out,
            "reused after {:.0} ms idle ({} earlier {})",
            millis(*idle_for),
            previous_uses,
            plural(*previous_uses, "use", "uses"),
        ),
        EventKind::Returned => write!(out, "returned to the pool"),
        EventKind::Evicted { reason } => write!(out, "evicted: {reason}"),
        EventKind::Closed { reason } => write!(out, "closed: {reason}"),
        EventKind::WaitStarted { waiters } => {
            write!(out, "waiting for a connection ({waiters} waiting)")
        }
        EventKind::WaitEnded { waited, outcome } => write!(
            out,
            "wait ended after {:.3} ms: {outcome:?}",
            millis(*waited)
        ),
        EventKind::Refused { waiters } => write!(out, "refused: {waiters} already waiting"),
        other => write!(out, "{other:?}"),
    };
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
