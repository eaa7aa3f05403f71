//! Snapshots of a pool's state and counters.

use std::collections::HashMap;

use crate::EvictReason;

/// The state of one key (or of the whole pool) at one moment.
///
/// ```
/// let s = connpool::KeyStats::default();
/// assert_eq!(s.total(), 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyStats {
    /// Connections in the pool, unused.
    pub idle: usize,
    /// Connections handed out and not yet back.
    pub checked_out: usize,
    /// Connections being opened.
    pub connecting: usize,
    /// Callers waiting for a connection.
    pub waiters: usize,
}

impl KeyStats {
    /// Connections counted against `max_conns_per_key`: idle, checked out
    /// and connecting.
    pub fn total(&self) -> usize {
        self.idle + self.checked_out + self.connecting
    }

    pub(crate) fn add(&mut self, other: &KeyStats) {
        self.idle += other.idle;
        self.checked_out += other.checked_out;
        self.connecting += other.connecting;
        self.waiters += other.waiters;
    }
}

/// Counts of what a pool has done since it was built. They only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections opened.
    pub created: u64,
    /// Connect attempts that failed.
    pub connect_failed: u64,
    /// Checkouts served by an existing connection.
    pub reused: u64,
    /// Connections given back at a message boundary.
    pub returned: u64,
    /// Evictions, indexed like [`EvictReason::ALL`]; see
    /// [`Counters::evicted`].
    pub evicted_by_reason: [u64; EvictReason::ALL.len()],
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Checked-out connections dropped without being released (closed
    /// because they were not known to be at a message boundary).
    pub dropped: u64,
    /// Callers that had to wait.
    pub waits: u64,
    /// Waits that ended in [`ErrorKind::PoolWaitTimeout`](crate::ErrorKind::PoolWaitTimeout).
    pub wait_timeouts: u64,
    /// Callers refused because too many were waiting.
    pub refused: u64,
    /// Suspected leaks reported.
    pub leaks_reported: u64,
}

impl Counters {
    /// Evictions for one reason.
    ///
    /// ```
    /// let c = connpool::Counters::default();
    /// assert_eq!(c.evicted(connpool::EvictReason::ServerClosed), 0);
    /// ```
    pub fn evicted(&self, reason: EvictReason) -> u64 {
        self.evicted_by_reason[reason.index()]
    }

    /// Evictions for every reason together.
    pub fn evicted_total(&self) -> u64 {
        self.evicted_by_reason.iter().sum()
    }

    /// Idle connections found *stale* (closed by the peer, reset, or with
    /// bytes nobody asked for) and evicted instead of handed out: the
    /// keep-alive races the check prevented.
    ///
    /// ```
    /// let c = connpool::Counters::default();
    /// assert_eq!(c.evicted_stale(), 0);
    /// ```
    pub fn evicted_stale(&self) -> u64 {
        EvictReason::ALL
            .into_iter()
            .filter(|reason| reason.is_stale())
            .map(|reason| self.evicted(reason))
            .sum()
    }
}

/// A snapshot of a whole pool, from [`Pool::stats`](crate::Pool::stats).
#[derive(Clone, Debug)]
pub struct PoolStats<K> {
    /// Sums over all keys.
    pub total: KeyStats,
    /// Each key the pool currently tracks. Keys with nothing idle, checked
    /// out, connecting or waiting are forgotten, so this does not grow with
    /// the number of keys ever seen.
    pub keys: HashMap<K, KeyStats>,
    /// What the pool has done so far.
    pub counters: Counters,
}
