//! What the demo counts and how it prints it.
//!
//! * [`Tally`] counts the outcome of every request one pool sent in one
//!   scenario, sorted by the error kind that [`connpool::Error::from_io`]
//!   gave it: broken pipe, reset, unexpected EOF, or anything else.
//! * [`table`] lays tallies out as one aligned plain-text table.
//! * [`TraceEvent`] is one pool event with its time, printed one per line.
//!
//! Nothing here decides what is a success: it only counts what happened.

use std::fmt;
use std::time::Duration;

use connpool::events::ConnId;
use connpool::{Error, ErrorKind, EventKind};

/// The outcome of the requests one pool sent in one scenario.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests sent.
    pub requests: u64,
    /// Requests answered with the right echo.
    pub ok: u64,
    /// Requests that failed with `EPIPE`.
    pub broken_pipe: u64,
    /// Requests that failed with `ECONNRESET` (or `ECONNABORTED`).
    pub reset: u64,
    /// Requests whose reply never came: the connection ended first.
    pub unexpected_eof: u64,
    /// Requests that failed any other way (connect error, wrong reply,
    /// timeout).
    pub other: u64,
    /// Connections the pool opened.
    pub new_conns: u64,
    /// Idle connections the pool found closed by the server and evicted
    /// before handing them out; `None` for a pool that does not look.
    pub stale_caught: Option<u64>,
    /// One line per failed request: `req <n>: <error>`.
    pub failures: Vec<String>,
}

impl Tally {
    /// Counts the outcome of request number `request`.
    pub fn record(&mut self, request: usize, outcome: Result<(), Error>) {
        self.requests += 1;
        let err = match outcome {
            Ok(()) => {
                self.ok += 1;
                return;
            }
            Err(err) => err,
        };
        match err.kind() {
            ErrorKind::BrokenPipe => self.broken_pipe += 1,
            ErrorKind::ConnectionReset => self.reset += 1,
            ErrorKind::UnexpectedEof => self.unexpected_eof += 1,
            _ => self.other += 1,
        }
        self.failures.push(format!("req {request}: {err}"));
    }

    /// Requests that did not get their answer.
    pub fn failed(&self) -> u64 {
        self.requests - self.ok
    }
}

/// One row of the results table: a pool's tally in a scenario.
pub struct Row<'a> {
    /// The scenario's name.
    pub scenario: &'a str,
    /// The pool's name.
    pub pool: &'a str,
    /// What happened.
    pub tally: &'a Tally,
}

/// The results as an aligned table: text columns left-aligned, numbers
/// right-aligned, a rule under the header. Ends with a newline.
pub fn table(rows: &[Row<'_>]) -> String {
    const HEADER: [&str; 10] = [
        "scenario",
        "pool",
        "requests",
        "ok",
        "broken pipe",
        "reset",
        "unexpected EOF",
        "other",
        "new conns",
        "stale caught",
    ];
    // The first two columns hold text, the others numbers.
    const TEXT_COLUMNS: usize = 2;

    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|row| {
            let t = row.tally;
            [
                row.scenario.to_string(),
                row.pool.to_string(),
                t.requests.to_string(),
                t.ok.to_string(),
                t.broken_pipe.to_string(),
                t.reset.to_string(),
                t.unexpected_eof.to_string(),
                t.other.to_string(),
                t.new_conns.to_string(),
                t.stale_caught.map_or("-".to_string(), |n| n.to_string()),
            ]
        })
        .collect();

    let mut widths = HEADER.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }

    let line = |row: &[&str]| -> String {
        let padded: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, width))| {
                if column < TEXT_COLUMNS {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };

    let mut out = line(&HEADER);
    let rule_len = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    out.push_str(&"-".repeat(rule_len));
    out.push('\n');
    for row in &cells {
        let row: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&row));
    }
    out
}

/// A pool event and when it happened, relative to the scenario's start.
#[derive(Clone, Debug)]
pub struct TraceEvent {
    /// Time since the scenario started.
    pub at: Duration,
    /// The connection concerned, if any.
    pub conn: Option<ConnId>,
    /// What happened.
    pub kind: EventKind,
}

/// Prints as `+  12.3ms conn#2 reused after 20ms idle`.
impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+ {:>7.1}ms ", millis(self.at))?;
        if let Some(conn) = self.conn {
            write!(f, "conn#{conn} ")?;
        }
        match &self.kind {
            EventKind::Connecting => write!(f, "connecting"),
            EventKind::Connected { took } => write!(f, "connected in {:.1}ms", millis(*took)),
            EventKind::ConnectFailed { error } => write!(f, "connect failed: {error}"),
            EventKind::Reused { idle_for, .. } => {
                write!(f, "reused after {:.0}ms idle", millis(*idle_for))
            }
            EventKind::Returned => write!(f, "returned"),
            EventKind::Evicted { reason } => write!(f, "evicted: {reason}"),
            EventKind::Closed { reason } => write!(f, "closed: {reason}"),
            other => write!(f, "{other:?}"),
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
