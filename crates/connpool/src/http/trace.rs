//! Per-request traces, in the spirit of Go's `httptrace`: what the pool
//! did for one request, step by step, with times.
//!
//! Tracing is off by default and then costs nothing. Turn it on for a
//! client ([`ClientBuilder::trace_requests`](super::ClientBuilder::trace_requests))
//! or one request ([`RequestBuilder::trace`](super::RequestBuilder::trace));
//! [`Response::trace`](super::Response::trace) then returns the steps so
//! far, including the connection's fate once the body has ended. Every step
//! is also a `tracing` event (target `connpool::http`, level debug), and
//! the connection ids are the ones the pool's [`Observer`](crate::Observer)
//! sees, so a trace and the pool's events can be joined.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ErrorKind;
use crate::events::ConnId;

/// One step of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceStep {
    /// The request asked the pool for a connection.
    GetConn,
    /// A new connection was opened for the request: the dial began at
    /// `started` (time since the request began) and took `took`.
    Connected {
        /// When the connect began, from the start of the request.
        started: Duration,
        /// How long the connect took.
        took: Duration,
    },
    /// The request got a connection.
    GotConn {
        /// The pool's id of the connection.
        conn: ConnId,
        /// Whether it served requests before.
        reused: bool,
        /// How long it had been idle (zero for a new connection).
        idle_for: Duration,
    },
    /// The request (head and body) was written: `bytes` in all.
    WroteRequest {
        /// Bytes written on this attempt.
        bytes: u64,
    },
    /// The first byte of the response arrived.
    FirstResponseByte,
    /// An interim (1xx) response was read and skipped.
    Interim {
        /// Its status code.
        status: u16,
    },
    /// The response head was read.
    GotHeaders {
        /// The status code.
        status: u16,
    },
    /// The attempt failed on a reused connection before any response byte
    /// and the request was replayable: it is sent again on a new
    /// connection.
    Retry {
        /// What the failed attempt saw.
        error: ErrorKind,
    },
    /// The response ended and the connection went back to the pool.
    ConnReturned {
        /// Its idle deadline: the smallest of the configured idle
        /// timeout, the server's hint and the learned timeout.
        idle_deadline: Option<Duration>,
    },
    /// The connection was closed after (or instead of) the response.
    ConnClosed {
        /// Why, in words (`"server said Connection: close"`, …).
        why: &'static str,
    },
}

/// The steps of one request, each with its time since the request began.
///
/// ```
/// use connpool::http::{RequestTrace, TraceStep};
/// let trace = RequestTrace::default();
/// assert!(trace.steps().is_empty());
/// assert!(!trace.contains(|s| matches!(s, TraceStep::Retry { .. })));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestTrace {
    steps: Vec<(Duration, TraceStep)>,
}

impl RequestTrace {
    /// The steps in order, each with the time since the request began.
    pub fn steps(&self) -> &[(Duration, TraceStep)] {
        &self.steps
    }

    /// Whether any step matches.
    pub fn contains(&self, f: impl Fn(&TraceStep) -> bool) -> bool {
        self.steps.iter().any(|(_, s)| f(s))
    }
}

impl fmt::Display for RequestTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, step) in &self.steps {
            writeln!(
                f,
                "{:>9.3} ms  {}",
                at.as_secs_f64() * 1000.0,
                Describe(step)
            )?;
        }
        Ok(())
    }
}

struct Describe<'a>(&'a TraceStep);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TraceStep::GetConn => f.write_str("get connection"),
            TraceStep::Connected { started, took } => write!(
                f,
                "connected (dial began at {:.3} ms, took {:.3} ms)",
                started.as_secs_f64() * 1000.0,
                took.as_secs_f64() * 1000.0
            ),
            TraceStep::GotConn {
                conn,
                reused,
                idle_for,
            } => {
                if *reused {
                    write!(f, "got connection #{conn}: reused, idle for {idle_for:?}")
                } else {
                    write!(f, "got connection #{conn}: new")
                }
            }
            TraceStep::WroteRequest { bytes } => write!(f, "wrote request ({bytes} bytes)"),
            TraceStep::FirstResponseByte => f.write_str("first response byte"),
            TraceStep::Interim { status } => write!(f, "interim response {status}"),
            TraceStep::GotHeaders { status } => write!(f, "response headers: {status}"),
            TraceStep::Retry { error } => write!(
                f,
                "stale connection ({error}) before any response byte: retrying on a new connection"
            ),
            TraceStep::ConnReturned { idle_deadline } => match idle_deadline {
                Some(d) => write!(f, "connection returned to the pool (idle deadline {d:?})"),
                None => f.write_str("connection returned to the pool"),
            },
            TraceStep::ConnClosed { why } => write!(f, "connection closed: {why}"),
        }
    }
}

/// The recording side, shared by the request and its response body.
/// `None` when tracing is off: every `record` is then one branch.
#[derive(Clone, Default)]
pub(crate) struct Tracer {
    shared: Option<Arc<(Instant, Mutex<RequestTrace>)>>,
}

impl Tracer {
    pub(crate) fn new(on: bool, started: Instant) -> Tracer {
        Tracer {
            shared: on.then(|| Arc::new((started, Mutex::new(RequestTrace::default())))),
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.shared.is_some()
    }

    pub(crate) fn started(&self) -> Option<Instant> {
        self.shared.as_ref().map(|s| s.0)
    }

    pub(crate) fn record(&self, step: TraceStep) {
        if let Some(shared) = &self.shared {
            let at = shared.0.elapsed();
            tracing::debug!(target: "connpool::http", at_us = at.as_micros() as u64, "{}", Describe(&step));
            shared
                .1
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .steps
                .push((at, step));
        }
    }

    pub(crate) fn snapshot(&self) -> Option<RequestTrace> {
        self.shared
            .as_ref()
            .map(|s| s.1.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_on() {
            "Tracer(on)"
        } else {
            "Tracer(off)"
        })
    }
}
