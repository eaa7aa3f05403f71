//! Lifecycle events: every connection's life, told as it happens.
//!
//! A pool reports each step of every connection — connecting, connected,
//! reused after N ms idle, returned, evicted and why, closed and why — plus
//! the life of every waiter and every suspected leak. Two ways to listen:
//!
//! * an [`Observer`] set with
//!   [`PoolBuilder::observer`](crate::PoolBuilder::observer), called
//!   synchronously, outside the pool's lock, in the order things happened
//!   for that connection;
//! * `tracing` events under the target `connpool` (`debug` level for the
//!   ordinary life, `warn` for suspected leaks), which cost one relaxed
//!   atomic load when nobody subscribes.
//!
//! The rule for reading a trace: every connection that was created ends with
//! exactly one [`EventKind::Closed`]. When the pool decided to remove it, an
//! [`EventKind::Evicted`] with the reason comes just before.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

/// The id the pool gave a connection when it was created; unique within a
/// pool, starting at 1.
pub type ConnId = u64;

/// One thing that happened in a pool.
#[derive(Debug)]
pub struct Event<'a, K> {
    /// The key the event concerns.
    pub key: &'a K,
    /// The connection it concerns, if any (waiter events have none).
    pub conn: Option<ConnId>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened; see [`Event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// The pool started opening a new connection.
    Connecting,
    /// A new connection is open and checked out; `took` is the connect time.
    Connected {
        /// How long connecting took.
        took: Duration,
    },
    /// Opening a connection failed.
    ConnectFailed {
        /// The error's kind.
        error: crate::ErrorKind,
    },
    /// An idle connection passed its checks and was checked out again.
    Reused {
        /// How long it sat idle before this checkout.
        idle_for: Duration,
        /// How many times it had been checked out before this one.
        previous_uses: u64,
    },
    /// A checked-out connection came back at a message boundary.
    Returned,
    /// The pool removed a connection; [`EventKind::Closed`] follows.
    Evicted {
        /// Why.
        reason: EvictReason,
    },
    /// A connection is gone for good.
    Closed {
        /// Why.
        reason: CloseReason,
    },
    /// A caller found the key at its connection cap and started waiting.
    WaitStarted {
        /// Callers waiting for this key, this one included.
        waiters: usize,
    },
    /// A waiting caller stopped waiting.
    WaitEnded {
        /// How long it waited.
        waited: Duration,
        /// How the wait ended.
        outcome: WaitOutcome,
    },
    /// A caller was refused at once because `max_waiters_per_key` callers
    /// were already waiting.
    Refused {
        /// Callers waiting for this key.
        waiters: usize,
    },
    /// A connection has been checked out longer than the leak threshold.
    /// Reported once per checkout.
    LeakSuspected {
        /// How long it has been held so far.
        held_for: Duration,
        /// Where it was checked out.
        checked_out_at: &'static Location<'static>,
    },
}

/// Why the pool removed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvictReason {
    /// It sat idle past its idle timeout.
    IdleTimeout,
    /// It lived past the pool's maximum lifetime.
    MaxLifetime,
    /// The peer closed it (a FIN was waiting at checkout).
    ServerClosed,
    /// The peer reset it, or the socket holds an error.
    ServerReset,
    /// Bytes nobody asked for were waiting on an idle connection (a
    /// server's unsolicited `408`, garbage): reusing it would misread them
    /// as the next response.
    UnexpectedData,
    /// The idle list was full (`max_idle_per_key` or `max_idle_total`), so
    /// the least recently used connection made room.
    PoolFull,
    /// The manager's check rejected it for a reason of its own.
    Unhealthy,
    /// The path to the peer died (a middlebox forgot the flow, the peer
    /// vanished): the kernel gave up on the idle socket (`ETIMEDOUT` after
    /// unanswered keepalive probes), or a request written into it drew no
    /// acknowledgement (the HTTP client's dead-path check).
    DeadPath,
}

impl EvictReason {
    /// Every reason, in a fixed order (the order of the counters in
    /// [`PoolStats`](crate::PoolStats)).
    pub const ALL: [EvictReason; 8] = [
        EvictReason::IdleTimeout,
        EvictReason::MaxLifetime,
        EvictReason::ServerClosed,
        EvictReason::ServerReset,
        EvictReason::UnexpectedData,
        EvictReason::PoolFull,
        EvictReason::Unhealthy,
        EvictReason::DeadPath,
    ];

    /// True when the peer ended the connection while it was idle: the
    /// connection was *stale*.
    ///
    /// ```
    /// assert!(connpool::EvictReason::ServerClosed.is_stale());
    /// assert!(!connpool::EvictReason::IdleTimeout.is_stale());
    /// ```
    pub fn is_stale(self) -> bool {
        matches!(
            self,
            EvictReason::ServerClosed
                | EvictReason::ServerReset
                | EvictReason::UnexpectedData
                | EvictReason::DeadPath
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// A short lowercase name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EvictReason::IdleTimeout => "idle_timeout",
            EvictReason::MaxLifetime => "max_lifetime",
            EvictReason::ServerClosed => "server_closed",
            EvictReason::ServerReset => "server_reset",
            EvictReason::UnexpectedData => "unexpected_data",
            EvictReason::PoolFull => "pool_full",
            EvictReason::Unhealthy => "unhealthy",
            EvictReason::DeadPath => "dead_path",
        }
    }
}

impl fmt::Display for EvictReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a connection was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The pool evicted it.
    Evicted(EvictReason),
    /// Its guard was dropped without
    /// [`release`](crate::PooledConn::release): it was not known to be at a
    /// message boundary, so it could not be reused.
    Dropped,
    /// The caller discarded it explicitly with
    /// [`discard`](crate::PooledConn::discard).
    Discarded,
    /// The caller took it out of the pool with
    /// [`detach`](crate::PooledConn::detach); it is no longer the pool's.
    Detached,
    /// The pool itself was dropped while the connection was idle.
    PoolDropped,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Evicted(reason) => write!(f, "evicted ({reason})"),
            CloseReason::Dropped => f.write_str("dropped before release"),
            CloseReason::Discarded => f.write_str("discarded"),
            CloseReason::Detached => f.write_str("detached"),
            CloseReason::PoolDropped => f.write_str("pool dropped"),
        }
    }
}

/// How a wait for a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitOutcome {
    /// A returned connection, or room to open one, was handed over.
    Granted,
    /// `wait_timeout` passed first.
    TimedOut,
    /// The caller's future was dropped while it waited.
    Cancelled,
}

/// Receives a pool's events.
///
/// Called synchronously on the task that caused the event, never while
/// the pool's lock is held, so an observer may call back into the pool
/// (for example [`Pool::stats`](crate::Pool::stats)). Keep it cheap: it
/// runs on the request path.
///
/// Any `Fn(&Event<K>)` closure is an observer:
///
/// ```
/// use connpool::{Event, EventKind};
/// let observer = |event: &Event<'_, String>| {
///     if let EventKind::Evicted { reason } = &event.kind {
///         eprintln!("{:?}: evicted ({reason})", event.key);
///     }
/// };
/// # fn takes<K>(_: impl connpool::Observer<K>) {}
/// # takes(observer);
/// ```
pub trait Observer<K>: Send + Sync + 'static {
    /// Called once per event.
    fn on_event(&self, event: &Event<'_, K>);
}

impl<K, F> Observer<K> for F
where
    F: Fn(&Event<'_, K>) + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event<'_, K>) {
        self(event)
    }
}

/// Whether a `tracing` subscriber could want this event: one atomic load,
/// so a pool nobody listens to skips building events on the hot path.
#[inline]
pub(crate) fn traced(kind: &EventKind) -> bool {
    use tracing::level_filters::LevelFilter;
    let level = match kind {
        EventKind::LeakSuspected { .. } => LevelFilter::WARN,
        _ => LevelFilter::DEBUG,
    };
    LevelFilter::current() >= level
}

/// Writes `event` as a `tracing` event under the target `connpool`.
pub(crate) fn trace<K: fmt::Debug>(event: &Event<'_, K>) {
    let key = event.key;
    let conn = event.conn.unwrap_or(0);
    match &event.kind {
        EventKind::LeakSuspected {
            held_for,
            checked_out_at,
        } => tracing::warn!(
            target: "connpool",
            ?key,
            conn,
            held_ms = held_for.as_millis() as u64,
            checked_out_at = %checked_out_at,
            "connection checked out for {held_for:?}, longer than the leak threshold"
        ),
        kind => tracing::debug!(target: "connpool", ?key, conn, event = ?kind),
    }
}
