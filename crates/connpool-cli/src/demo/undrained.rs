//! The demo's second section: responses dropped with their body unread.
//!
//! A keep-alive connection can carry the next request only once the
//! previous response has been read to its end: until then the rest of the
//! body sits between the client and the next response. Callers drop
//! responses early all the time (they only wanted the status, an error
//! path returned first, a timeout fired). A client that neither drains nor
//! closes such a connection cannot reuse it and does not free it either:
//! Go's transport when a caller forgets `resp.Body.Close()` keeps the
//! socket and its read loop forever, and a service leaks a socket per
//! request until it runs out of file descriptors.
//!
//! The cure is to decide the connection's fate when the body is dropped:
//! a short remainder is read to its end in the background and the
//! connection goes back to the pool; a long one is not worth reading and
//! the connection is closed. Either way nothing is left behind. connpool's
//! [`Client`] does this with its defaults (`drain_max_bytes`, 64 KiB, and
//! `drain_timeout`, 1 s); a body that arrived whole with its head costs
//! nothing at all, its connection went back before the response was
//! returned.
//!
//! The section sends [`REQUESTS`] `GET`s at a steady pace and drops each
//! response after reading its status, through the [`NaiveHttp`] client and
//! connpool's, for two body sizes: one under `drain_max_bytes`, one over.
//! Each of the four runs has its own server, whose count of open
//! connections is sampled as the run goes: that count is the truth, seen
//! from the other end. connpool keeps its promise when every request
//! succeeded and at most [`CONNPOOL_MAX_OPEN`] connections were open at
//! once, and at most one at the end.

use std::fmt;
use std::io;
use std::time::Duration;

use connpool::http::{Client, ClientConfig};
use connpool_testkit::http::HttpServer;
use serde::Serialize;
use tokio::time::{Instant, sleep_until};

use super::Section;
use crate::naive::NaiveHttp;
use crate::report::{Align, Table};

/// Requests per run.
pub const REQUESTS: u32 = 30;

/// Time between two requests' starts.
const PACE: Duration = Duration::from_millis(80);

/// How long each run is watched, from its first request: the requests,
/// then time for connpool's background drains and closes to finish.
const WATCHED: Duration = Duration::from_millis(3000);

/// How often the server's open connections are counted (for the peak).
const SAMPLE_EVERY: Duration = Duration::from_millis(25);

/// How often a count is shown in the table's time series.
const SHOW_EVERY: Duration = Duration::from_millis(500);

/// A body connpool drains: under its default `drain_max_bytes`.
const SMALL_BODY: u64 = 16 * 1024;

/// A body connpool closes instead of draining: over `drain_max_bytes`.
const LARGE_BODY: u64 = 1024 * 1024;

/// connpool's promise: never more connections open at once than this (one
/// in use, and one the server has not yet seen closed).
const CONNPOOL_MAX_OPEN: usize = 2;

/// What the section produced.
#[derive(Debug, Serialize)]
pub struct Undrained {
    /// connpool's `drain_max_bytes`.
    drain_max_bytes: u64,
    /// The interval of `open_over_time`, in milliseconds.
    show_every_ms: u64,
    runs: Vec<Run>,
}

/// One client, one body size.
#[derive(Debug, Serialize)]
struct Run {
    /// `naive` or `connpool`.
    client: &'static str,
    body_bytes: u64,
    requests: u64,
    /// Requests answered `200` (the body then dropped unread).
    ok: u64,
    /// One line per failed request.
    failures: Vec<String>,
    /// Connections the server accepted.
    sockets_opened: u64,
    /// Requests served on a connection opened before.
    reused: u64,
    /// Naive client only: connections it holds parked at the end (open,
    /// never to be reused).
    parked: Option<usize>,
    /// The most connections open at the server at once.
    peak_open: usize,
    /// Connections open at the server when the watch ended.
    open_at_end: usize,
    /// Connections open at the server every `show_every_ms`, from the
    /// first request (the last one is `open_at_end`).
    open_over_time: Vec<usize>,
}

/// The section's introduction, printed before it runs.
pub fn intro() -> String {
    format!(
        "A caller reads each response's status and drops the response, body unread: {REQUESTS} \
         requests,\none every {} ms, for a body of {} (under connpool's drain_max_bytes) and \
         one of {}.\nEach client has its own server, which counts its open connections.",
        PACE.as_millis(),
        size(SMALL_BODY),
        size(LARGE_BODY),
    )
}

/// Runs the four runs side by side.
pub async fn run() -> io::Result<Undrained> {
    let (naive_small, connpool_small, naive_large, connpool_large) = tokio::join!(
        run_one(Who::naive, SMALL_BODY),
        run_one(Who::connpool, SMALL_BODY),
        run_one(Who::naive, LARGE_BODY),
        run_one(Who::connpool, LARGE_BODY),
    );
    Ok(Undrained {
        drain_max_bytes: ClientConfig::default().drain_max_bytes,
        show_every_ms: SHOW_EVERY.as_millis() as u64,
        runs: vec![naive_small?, connpool_small?, naive_large?, connpool_large?],
    })
}

/// A client under test.
enum Who {
    Naive(NaiveHttp),
    Connpool(Client),
}

impl Who {
    fn naive(server: &HttpServer) -> Who {
        Who::Naive(NaiveHttp::new(server.addr()))
    }

    fn connpool(_server: &HttpServer) -> Who {
        Who::Connpool(Client::new())
    }

    fn name(&self) -> &'static str {
        match self {
            Who::Naive(_) => "naive",
            Who::Connpool(_) => "connpool",
        }
    }

    /// Sends `GET <path>`, reads the status and drops the response.
    async fn get_and_drop(&self, server: &HttpServer, path: &str, id: &str) -> Result<(), String> {
        let status = match self {
            Who::Naive(client) => client
                .get(path, id)
                .await
                .map_err(|err| connpool::Error::from_io(err).to_string())?
                .status(),
            Who::Connpool(client) => client
                .get(server.url(path))
                .header("x-request-id", id)
                .send()
                .await
                .map_err(|err| err.to_string())?
                .status()
                .as_u16(),
        };
        // The response is dropped here, its body unread.
        if status == 200 {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    }

    /// Connections parked, for the naive client.
    fn parked(&self) -> Option<usize> {
        match self {
            Who::Naive(client) => Some(client.parked()),
            Who::Connpool(_) => None,
        }
    }

    /// Connections opened so far.
    fn created(&self) -> u64 {
        match self {
            Who::Naive(client) => client.created(),
            Who::Connpool(client) => client.stats().counters.created,
        }
    }
}

/// One run: a fresh server, [`REQUESTS`] requests at [`PACE`], the
/// server's open connections counted every [`SAMPLE_EVERY`] until
/// [`WATCHED`] has passed. The client lives until then, so whatever it
/// left open is still open at the last count.
async fn run_one(make: fn(&HttpServer) -> Who, body: u64) -> io::Result<Run> {
    let server = HttpServer::start_default()?;
    let who = make(&server);
    let path = format!("/bytes/{body}");
    let start = Instant::now();

    let send = async {
        let mut failures = Vec::new();
        for n in 0..REQUESTS {
            sleep_until(start + PACE * n).await;
            if let Err(err) = who.get_and_drop(&server, &path, &format!("{n}")).await {
                failures.push(format!("req {n}: {err}"));
            }
        }
        failures
    };
    let watch = async {
        let samples = (WATCHED.as_millis() / SAMPLE_EVERY.as_millis()) as u32;
        let show = (SHOW_EVERY.as_millis() / SAMPLE_EVERY.as_millis()) as u32;
        let mut peak = 0;
        let mut shown = Vec::new();
        let mut open = 0;
        for i in 1..=samples {
            sleep_until(start + SAMPLE_EVERY * i).await;
            open = server.open_connections();
            peak = peak.max(open);
            if i % show == 0 {
                shown.push(open);
            }
        }
        (peak, open, shown)
    };
    let (failures, (peak_open, open_at_end, open_over_time)) = tokio::join!(send, watch);

    let requests = u64::from(REQUESTS);
    Ok(Run {
        client: who.name(),
        body_bytes: body,
        requests,
        ok: requests - failures.len() as u64,
        failures,
        sockets_opened: server.accepted(),
        reused: requests.saturating_sub(who.created()),
        parked: who.parked(),
        peak_open,
        open_at_end,
        open_over_time,
    })
}

/// `16 KiB`, `1 MiB`.
fn size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

impl Undrained {
    fn runs_of<'a>(&'a self, client: &'a str) -> impl Iterator<Item = &'a Run> + 'a {
        self.runs.iter().filter(move |run| run.client == client)
    }
}

impl fmt::Display for Undrained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Align::{Left, Right};
        let mut table = Table::new(&[
            ("client", Left),
            ("body", Right),
            ("requests", Right),
            ("ok", Right),
            ("sockets opened", Right),
            ("conns reused", Right),
            ("peak open", Right),
            ("open at end", Right),
            ("open sockets every 0.5 s", Left),
        ]);
        for run in &self.runs {
            let series: Vec<String> = run.open_over_time.iter().map(usize::to_string).collect();
            table.row([
                run.client.to_string(),
                size(run.body_bytes),
                run.requests.to_string(),
                run.ok.to_string(),
                run.sockets_opened.to_string(),
                run.reused.to_string(),
                run.peak_open.to_string(),
                run.open_at_end.to_string(),
                series.join(" "),
            ]);
        }
        write!(f, "{table}")?;
        for run in self.runs_of("connpool") {
            for failure in &run.failures {
                writeln!(f, "connpool failure ({}): {failure}", size(run.body_bytes))?;
            }
        }
        writeln!(
            f,
            "The naive client parks a connection whose body was dropped (Go's transport without\n\
             resp.Body.Close()): open, never reused, so the next request opens another. connpool\n\
             reuses the connection when the rest of a dropped body is at most {} (already\n\
             in its buffer, or drained in the background) and closes one with more to read:\n\
             nothing is left open.",
            size(self.drain_max_bytes)
        )
    }
}

impl Section for Undrained {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for run in self.runs_of("connpool") {
            let body = size(run.body_bytes);
            if run.ok < run.requests {
                problems.push(format!(
                    "{} of connpool's requests ({body} bodies) failed",
                    run.requests - run.ok
                ));
            }
            if run.peak_open > CONNPOOL_MAX_OPEN {
                problems.push(format!(
                    "connpool had {} connections open at once ({body} bodies), more than \
                     {CONNPOOL_MAX_OPEN}",
                    run.peak_open
                ));
            }
            if run.open_at_end > 1 {
                problems.push(format!(
                    "connpool left {} connections open ({body} bodies)",
                    run.open_at_end
                ));
            }
        }
        problems
    }

    fn naive_summary(&self) -> String {
        let left: usize = self.runs_of("naive").map(|run| run.open_at_end).sum();
        let requests: u64 = self.runs_of("naive").map(|run| run.requests).sum();
        format!("{left} sockets left open by {requests} dropped responses")
    }

    fn connpool_summary(&self) -> String {
        let peak = self
            .runs_of("connpool")
            .map(|run| run.peak_open)
            .max()
            .unwrap_or(0);
        let reused: u64 = self.runs_of("connpool").map(|run| run.reused).sum();
        format!("at most {peak} open at once; {reused} reused after a dropped body")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(client: &'static str, body_bytes: u64, peak_open: usize, open_at_end: usize) -> Run {
        Run {
            client,
            body_bytes,
            requests: 30,
            ok: 30,
            failures: Vec::new(),
            sockets_opened: 30,
            reused: 0,
            parked: None,
            peak_open,
            open_at_end,
            open_over_time: vec![open_at_end],
        }
    }

    fn section(connpool: Run) -> Undrained {
        Undrained {
            drain_max_bytes: 64 * 1024,
            show_every_ms: 500,
            runs: vec![run("naive", LARGE_BODY, 30, 30), connpool],
        }
    }

    #[test]
    fn connpool_is_judged_on_what_it_left_open_and_the_naive_client_never() {
        assert!(
            section(run("connpool", LARGE_BODY, 2, 1))
                .problems()
                .is_empty()
        );
        assert_eq!(
            section(run("connpool", LARGE_BODY, 3, 0)).problems().len(),
            1
        );
        assert_eq!(
            section(run("connpool", SMALL_BODY, 1, 2)).problems().len(),
            1
        );
        let mut failed = run("connpool", SMALL_BODY, 1, 1);
        failed.ok = 29;
        assert_eq!(section(failed).problems().len(), 1);
        let printed = section(run("connpool", LARGE_BODY, 1, 0)).to_string();
        assert!(printed.contains("naive     1 MiB"), "{printed}");
    }
}
