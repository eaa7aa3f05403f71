//! The demo's third section: a burst, with and without a cap per host.
//!
//! A pool with no cap per host opens a connection for every concurrent
//! request that finds none idle. A burst of a few thousand requests (a
//! retry storm, a cache stampede, a fan-out) then opens a few thousand
//! sockets at once: the process hits its file-descriptor limit and
//! requests fail with `Too many open files`, together with everything else
//! in the process that needs a descriptor (log files, the next `accept`),
//! and the server takes the whole burst in one go. Go's `net/http` and
//! reqwest have no cap by default.
//!
//! The cure is a cap per host that counts connections being opened, and a
//! queue in front of it with a deadline: past the cap a request waits for a
//! connection to come back instead of opening one, and fails with an error
//! naming the bound if it waited too long (a bounded wait queue, never a
//! hang). connpool's [`Client`] defaults to 64 connections per host and
//! waits up to 10 s (`max_conns_per_host`, `pool_wait_timeout`).
//!
//! The section fires [`BURST`] concurrent `GET`s at a server that takes
//! [`RESPONSE_DELAY`] to answer each, through the [`NaiveHttp`] client,
//! then through connpool's. A descriptor limit of a few hundred is enough
//! to show the exhaustion, and lowering this process's limit would starve
//! the demo's own servers, so the clients run in a child process (this
//! binary again, with the hidden `demo --burst-child`) whose soft
//! `RLIMIT_NOFILE` is [`CHILD_NOFILE`]; the servers stay in the parent,
//! whose soft limit is raised to its hard limit. The child prints what its
//! clients saw as JSON; the parent adds what the servers saw (connections
//! accepted, the most open at once). connpool keeps its promise when every
//! request succeeded and it never opened more connections than its cap.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use connpool::http::{Client, ClientConfig};
use connpool_testkit::http::HttpServer;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::Section;
use crate::naive::NaiveHttp;
use crate::report::{Align, Table};

/// Concurrent requests in the burst.
pub const BURST: u64 = 500;

/// How long the server takes to answer each request, so the requests
/// overlap.
const RESPONSE_DELAY: Duration = Duration::from_millis(50);

/// The child's soft `RLIMIT_NOFILE`: a quarter of the common default of
/// 1024, so a burst of [`BURST`] overflows it.
const CHILD_NOFILE: u64 = 256;

/// How often the parent counts the servers' open connections.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// The child must finish within this long; it is killed after it.
const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// What the section produced.
#[derive(Debug, Serialize)]
pub struct Burst {
    /// Concurrent requests.
    burst: u64,
    response_delay_ms: u64,
    /// The clients' soft `RLIMIT_NOFILE`.
    nofile_limit: u64,
    /// connpool's cap per host.
    max_conns_per_host: usize,
    /// connpool's wait deadline, in milliseconds.
    pool_wait_timeout_ms: u64,
    runs: Vec<Run>,
}

/// One client's burst, as the child and the server saw it.
#[derive(Debug, Serialize)]
struct Run {
    /// `naive` or `connpool`.
    client: &'static str,
    requests: u64,
    ok: u64,
    failed: u64,
    /// Each distinct error, most frequent first.
    errors: Vec<ErrorCount>,
    /// Connections the server accepted.
    sockets_opened: u64,
    /// The most connections open at the server at once.
    peak_open: usize,
    /// From the first request sent to the last one finished.
    wall_ms: f64,
}

/// How many requests failed with one error.
#[derive(Debug, Serialize, Deserialize)]
struct ErrorCount {
    error: String,
    count: u64,
}

/// What the child prints.
#[derive(Debug, Serialize, Deserialize)]
struct ChildReport {
    /// Its soft `RLIMIT_NOFILE` while the clients ran.
    nofile_limit: u64,
    naive: ChildRun,
    connpool: ChildRun,
}

/// One client's burst, as the child saw it.
#[derive(Debug, Serialize, Deserialize)]
struct ChildRun {
    requests: u64,
    ok: u64,
    errors: Vec<ErrorCount>,
    wall_ms: f64,
}

/// The section's introduction, printed before it runs.
pub fn intro() -> String {
    let config = ClientConfig::default();
    format!(
        "{BURST} concurrent requests to a server that takes {} ms to answer each, from a process\n\
         limited to {CHILD_NOFILE} open files. The naive client opens a connection per request; \
         connpool opens\nat most {} (max_conns_per_host) and queues the rest (pool_wait_timeout \
         {} s).",
        RESPONSE_DELAY.as_millis(),
        config.max_conns_per_host,
        config.pool_wait_timeout.as_secs(),
    )
}

/// Runs the section: the servers here, the clients in a child process.
pub async fn run() -> io::Result<Burst> {
    // The servers need a descriptor per connection the naive client opens,
    // on top of the demo's own.
    set_nofile_soft(None)?;
    let server = HttpServer::builder().response_delay(RESPONSE_DELAY);
    let naive_server = server.start()?;
    let connpool_server = server.start()?;

    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command.args([
        "demo".to_string(),
        "--burst-child".to_string(),
        naive_server.addr().to_string(),
        connpool_server.addr().to_string(),
    ]);
    let done = Arc::new(AtomicBool::new(false));
    let child = tokio::task::spawn_blocking({
        let done = Arc::clone(&done);
        move || {
            let output = run_child(command);
            done.store(true, Ordering::SeqCst);
            output
        }
    });

    // Count the open connections of both servers while the child runs.
    let mut peaks = (0, 0);
    while !done.load(Ordering::SeqCst) {
        peaks.0 = peaks.0.max(naive_server.open_connections());
        peaks.1 = peaks.1.max(connpool_server.open_connections());
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    let stdout = child.await.map_err(io::Error::other)??;
    let report: ChildReport = serde_json::from_slice(&stdout).map_err(|err| {
        io::Error::other(format!(
            "the burst's child process printed no report ({err}): {:?}",
            String::from_utf8_lossy(&stdout)
        ))
    })?;

    let config = ClientConfig::default();
    let run = |client, run: ChildRun, server: &HttpServer, peak_open| Run {
        client,
        requests: run.requests,
        ok: run.ok,
        failed: run.requests - run.ok,
        errors: run.errors,
        sockets_opened: server.accepted(),
        peak_open,
        wall_ms: run.wall_ms,
    };
    Ok(Burst {
        burst: BURST,
        response_delay_ms: RESPONSE_DELAY.as_millis() as u64,
        nofile_limit: report.nofile_limit,
        max_conns_per_host: config.max_conns_per_host,
        pool_wait_timeout_ms: config.pool_wait_timeout.as_millis() as u64,
        runs: vec![
            run("naive", report.naive, &naive_server, peaks.0),
            run("connpool", report.connpool, &connpool_server, peaks.1),
        ],
    })
}

/// Runs the child to its end (killed after [`CHILD_LIMIT`]) and returns
/// its stdout; an error if it failed.
fn run_child(mut command: Command) -> io::Result<Vec<u8>> {
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    // Its output is small (a few hundred bytes), so it cannot fill a pipe
    // and block while it is polled.
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > CHILD_LIMIT {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "the burst's child process did not finish within {CHILD_LIMIT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = child.wait_with_output()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "the burst's child process failed ({status}): {}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        )));
    }
    Ok(output.stdout)
}

/// The child (`connpool demo --burst-child NAIVE CONNPOOL`): lowers its
/// descriptor limit, fires the burst at the naive server with the naive
/// client, then at the other with connpool, and prints a [`ChildReport`]
/// as JSON on stdout.
pub async fn child(naive: SocketAddr, connpool: SocketAddr) -> ExitCode {
    let nofile_limit = match set_nofile_soft(Some(CHILD_NOFILE)) {
        Ok((soft, _)) => soft,
        Err(err) => {
            eprintln!("connpool demo --burst-child: cannot set RLIMIT_NOFILE: {err}");
            return ExitCode::FAILURE;
        }
    };
    // One after the other: they share the descriptor limit.
    let naive_run = naive_burst(naive).await;
    let connpool_run = connpool_burst(connpool).await;
    let report = ChildReport {
        nofile_limit,
        naive: naive_run,
        connpool: connpool_run,
    };
    match serde_json::to_string(&report) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("connpool demo --burst-child: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The burst through the [`NaiveHttp`] client. Its connections are all
/// closed when it returns (the client is dropped).
async fn naive_burst(addr: SocketAddr) -> ChildRun {
    let client = NaiveHttp::new(addr);
    fire(move |n| {
        let client = client.clone();
        async move {
            let resp = client.get("/", &n.to_string()).await?;
            resp.bytes().await.map(drop)
        }
    })
    .await
}

/// The burst through connpool's [`Client`], default settings.
async fn connpool_burst(addr: SocketAddr) -> ChildRun {
    let client = Client::new();
    let url = format!("http://{addr}/");
    fire(move |n| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let resp = client
                .get(url)
                .header("x-request-id", n.to_string())
                .send()
                .await?;
            resp.bytes().await.map(drop)
        }
    })
    .await
}

/// Starts [`BURST`] requests at once, each `request(n)`, and counts how
/// they ended.
async fn fire<F, Fut, E>(request: F) -> ChildRun
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display,
{
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for n in 0..BURST {
        let request = request(n);
        tasks.spawn(async move { request.await.map_err(|err| err.to_string()) });
    }
    let mut ok = 0;
    let mut errors = BTreeMap::<String, u64>::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => ok += 1,
            Ok(Err(err)) => *errors.entry(err).or_default() += 1,
            Err(err) => *errors.entry(format!("task failed: {err}")).or_default() += 1,
        }
    }
    // To a tenth of a millisecond: more would be noise.
    let wall_ms = (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
    let mut errors: Vec<ErrorCount> = errors
        .into_iter()
        .map(|(error, count)| ErrorCount { error, count })
        .collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.count));
    ChildRun {
        requests: BURST,
        ok,
        errors,
        wall_ms,
    }
}

/// Sets this process's soft `RLIMIT_NOFILE` to `soft` (at most the hard
/// limit), or to the hard limit; returns the (soft, hard) limits now in
/// force.
fn set_nofile_soft(soft: Option<u64>) -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through the pointer, which
    // points to a live, writable `rlimit` we own; `RLIMIT_NOFILE` is a
    // valid resource. Nothing else is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    limit.rlim_cur = soft.map_or(limit.rlim_max, |soft| soft.min(limit.rlim_max));
    // SAFETY: `setrlimit` only reads the `rlimit` the pointer points to,
    // which is live and initialised. A soft limit within the hard one is
    // always allowed, and only affects descriptors opened later (those
    // already open stay valid), so no memory or descriptor we hold is
    // invalidated.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// `12 ms`, `1.3 s`.
fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// The most frequent error, with how many more kinds there were.
fn main_error(run: &Run) -> String {
    match run.errors.first() {
        None => "-".to_string(),
        Some(first) if run.errors.len() == 1 => format!("{} × {}", first.count, first.error),
        Some(first) => format!(
            "{} × {} (and {} other errors)",
            first.count,
            first.error,
            run.errors.len() - 1
        ),
    }
}

impl Burst {
    fn run_of(&self, client: &str) -> Option<&Run> {
        self.runs.iter().find(|run| run.client == client)
    }
}

impl fmt::Display for Burst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Align::{Left, Right};
        let mut table = Table::new(&[
            ("client", Left),
            ("requests", Right),
            ("ok", Right),
            ("failed", Right),
            ("sockets opened", Right),
            ("peak open", Right),
            ("wall time", Right),
            ("errors", Left),
        ]);
        for run in &self.runs {
            table.row([
                run.client.to_string(),
                run.requests.to_string(),
                run.ok.to_string(),
                run.failed.to_string(),
                run.sockets_opened.to_string(),
                run.peak_open.to_string(),
                duration(run.wall_ms),
                main_error(run),
            ]);
        }
        write!(f, "{table}")?;
        writeln!(
            f,
            "Without a cap, every request that finds no idle connection opens one: past {} \
             descriptors\nthe rest fail before reaching the server. connpool opens at most {} \
             and the others wait\nfor one to come back: slower to finish, but every request \
             succeeds.",
            self.nofile_limit, self.max_conns_per_host
        )
    }
}

impl Section for Burst {
    fn problems(&self) -> Vec<String> {
        let Some(run) = self.run_of("connpool") else {
            return vec!["connpool's burst did not run".to_string()];
        };
        let mut problems = Vec::new();
        if run.failed > 0 {
            problems.push(format!(
                "{} of connpool's requests failed: {}",
                run.failed,
                main_error(run)
            ));
        }
        if run.sockets_opened > self.max_conns_per_host as u64 {
            problems.push(format!(
                "connpool opened {} connections, more than its cap of {}",
                run.sockets_opened, self.max_conns_per_host
            ));
        }
        problems
    }

    fn naive_summary(&self) -> String {
        match self.run_of("naive") {
            Some(run) => {
                let error = run.errors.first().map_or(String::new(), |e| {
                    format!(" ({})", e.error.trim_end_matches(" (os error 24)"))
                });
                format!(
                    "{} of {} failed{error}; {} sockets",
                    run.failed, run.requests, run.sockets_opened
                )
            }
            None => "-".to_string(),
        }
    }

    fn connpool_summary(&self) -> String {
        match self.run_of("connpool") {
            Some(run) => format!(
                "{} of {} failed; {} sockets (cap {})",
                run.failed, run.requests, run.sockets_opened, self.max_conns_per_host
            ),
            None => "-".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(client: &'static str, ok: u64, sockets_opened: u64) -> Run {
        Run {
            client,
            requests: BURST,
            ok,
            failed: BURST - ok,
            errors: if ok < BURST {
                vec![ErrorCount {
                    error: "Too many open files (os error 24)".to_string(),
                    count: BURST - ok,
                }]
            } else {
                Vec::new()
            },
            sockets_opened,
            peak_open: sockets_opened as usize,
            wall_ms: 100.0,
        }
    }

    fn section(connpool: Run) -> Burst {
        Burst {
            burst: BURST,
            response_delay_ms: 50,
            nofile_limit: CHILD_NOFILE,
            max_conns_per_host: 64,
            pool_wait_timeout_ms: 10_000,
            runs: vec![run("naive", 248, 248), connpool],
        }
    }

    #[test]
    fn connpool_must_answer_everything_within_its_cap() {
        assert!(section(run("connpool", BURST, 64)).problems().is_empty());
        assert_eq!(section(run("connpool", BURST, 65)).problems().len(), 1);
        assert_eq!(section(run("connpool", BURST - 1, 64)).problems().len(), 1);
        let good = section(run("connpool", BURST, 64));
        assert_eq!(
            good.naive_summary(),
            "252 of 500 failed (Too many open files); 248 sockets"
        );
        assert!(good.to_string().contains("252 × Too many open files"));
    }

    /// The child's report survives the trip through JSON.
    #[test]
    fn the_child_report_round_trips() {
        let report = ChildReport {
            nofile_limit: 256,
            naive: ChildRun {
                requests: 2,
                ok: 1,
                errors: vec![ErrorCount {
                    error: "e".to_string(),
                    count: 1,
                }],
                wall_ms: 1.5,
            },
            connpool: ChildRun {
                requests: 2,
                ok: 2,
                errors: Vec::new(),
                wall_ms: 3.0,
            },
        };
        let json = serde_json::to_string(&report).unwrap();
        let back: ChildReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.naive.errors[0].error, "e");
        assert_eq!(back.connpool.ok, 2);
    }
}
