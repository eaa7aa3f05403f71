//! What the demo counts and how it prints it.
//!
//! * [`Tally`] counts the outcome of every request one pool sent in one
//!   scenario, sorted by the error kind that [`connpool::Error::from_io`]
//!   gave it: broken pipe, reset, unexpected EOF, or anything else.
//! * [`table`] lays tallies out as one aligned plain-text table.
//! * [`Table`] is any table of text cells, aligned the same way: every
//!   section of the demo prints its results with it.
//! * [`TraceEvent`] is one pool event with its time, printed one per line.
//!
//! Nothing here decides what is a success: it only counts what happened.

use std::fmt;
use std::time::Duration;

use connpool::events::ConnId;
use connpool::{Error, ErrorKind, EventKind};
use serde::Serialize;

/// The outcome of the requests one pool sent in one scenario.
#[derive(Debug, Default, Serialize)]
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
    use Align::{Left, Right};
    let mut table = Table::new(&[
        ("scenario", Left),
        ("pool", Left),
        ("requests", Right),
        ("ok", Right),
        ("broken pipe", Right),
        ("reset", Right),
        ("unexpected EOF", Right),
        ("other", Right),
        ("new conns", Right),
        ("stale caught", Right),
    ]);
    for row in rows {
        let t = row.tally;
        table.row([
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
        ]);
    }
    table.to_string()
}

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A plain-text table of text cells: columns two spaces apart, each as
/// wide as its widest cell and aligned as told, a rule under the header.
/// When the last column is left-aligned (free text, such as an error) the
/// rule stops at its header, so one long cell does not stretch it.
/// Displays with a newline at the end of every line.
///
/// ```text
/// client    requests  outcome
/// ---------------------------
/// naive           20  3 failed
/// ```
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table {
            header: columns.iter().map(|&(name, _)| name).collect(),
            align: columns.iter().map(|&(_, align)| align).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row. Missing cells are blank; extra ones are ignored.
    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        let mut cells: Vec<String> = cells.into_iter().take(self.header.len()).collect();
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = |cell: &str| cell.chars().count();
        let mut widths: Vec<usize> = self.header.iter().map(|name| width(name)).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                widths[column] = widths[column].max(width(cell));
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &mut dyn Iterator<Item = &str>| {
            let padded: Vec<String> = cells
                .zip(&widths)
                .zip(&self.align)
                .map(|((cell, &width), align)| match align {
                    Align::Left => format!("{cell:<width$}"),
                    Align::Right => format!("{cell:>width$}"),
                })
                .collect();
            writeln!(f, "{}", padded.join("  ").trim_end())
        };
        let Some(last) = widths.len().checked_sub(1) else {
            return Ok(());
        };
        line(f, &mut self.header.iter().copied())?;
        let rule_len = widths[..last].iter().map(|w| w + 2).sum::<usize>()
            + if self.align[last] == Align::Left {
                width(self.header[last])
            } else {
                widths[last]
            };
        writeln!(f, "{}", "-".repeat(rule_len))?;
        for row in &self.rows {
            line(f, &mut row.iter().map(String::as_str))?;
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_and_its_rule_stops_at_a_text_column() {
        let mut table = Table::new(&[("client", Align::Left), ("n", Align::Right)]);
        table.row(["naive".to_string(), "120".to_string()]);
        table.row(["connpool".to_string(), "0".to_string()]);
        assert_eq!(
            table.to_string(),
            "client      n\n\
             -------------\n\
             naive     120\n\
             connpool    0\n"
        );

        let mut table = Table::new(&[("n", Align::Right), ("outcome", Align::Left)]);
        table.row(["1".to_string(), "failed: a long — error".to_string()]);
        table.row(["2".to_string()]);
        assert_eq!(
            table.to_string(),
            "n  outcome\n\
             ----------\n\
             1  failed: a long — error\n\
             2\n"
        );
    }
}
