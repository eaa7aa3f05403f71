//! The pool's settings: a plain struct with safe defaults.

use std::time::Duration;

use super::Clock;

/// Settings of a [`Pool`](crate::Pool). Every field has a safe default;
/// change the ones you need with struct update syntax or with the
/// [`PoolBuilder`](crate::PoolBuilder) methods of the same names.
///
/// ```
/// use std::time::Duration;
/// let config = connpool::PoolConfig {
///     max_conns_per_key: 8,
///     wait_timeout: Duration::from_millis(500),
///     ..Default::default()
/// };
/// assert_eq!(config.max_idle_per_key, 32);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections per key, counting checked-out, idle *and* connecting
    /// ones (Go's `MaxConnsPerHost` counts dials too, for the same reason:
    /// a burst must not open more sockets than the cap while earlier
    /// connects are still in flight). Default 32.
    pub max_conns_per_key: usize,
    /// Idle connections kept per key; beyond it the least recently used is
    /// evicted with [`EvictReason::PoolFull`](crate::EvictReason::PoolFull).
    /// Default 32.
    pub max_idle_per_key: usize,
    /// Idle connections kept across all keys; beyond it the least recently
    /// used one of any key is evicted. Default 1024.
    pub max_idle_total: usize,
    /// Callers allowed to wait per key when it is at its cap. One more is
    /// refused at once with [`ErrorKind::TooManyWaiters`](crate::ErrorKind::TooManyWaiters):
    /// a queue that only grows stalls the whole service. Default 1024.
    pub max_waiters_per_key: usize,
    /// How long a caller waits for a connection of a key at its cap before
    /// it gets [`ErrorKind::PoolWaitTimeout`](crate::ErrorKind::PoolWaitTimeout).
    /// Default 10 s.
    pub wait_timeout: Duration,
    /// An idle connection older than this (since its return) is evicted,
    /// at checkout or by the reaper. `None` keeps idle connections forever,
    /// which only makes sense when the peer never closes them.
    ///
    /// Default 30 s: far below the idle limits of common middleboxes
    /// (AWS NLB 350 s, Azure LB 4 min), so the pool rarely holds a flow a
    /// middlebox forgot; servers with shorter timeouts are caught by the
    /// manager's check at checkout.
    pub idle_timeout: Option<Duration>,
    /// A connection older than this (since it was opened) is not reused.
    /// Default `None`.
    pub max_lifetime: Option<Duration>,
    /// A connection checked out for longer than this is reported once as a
    /// suspected leak, with the place it was checked out. Default `None`.
    pub leak_threshold: Option<Duration>,
    /// How often the background reaper looks for expired idle connections
    /// and suspected leaks. `None` derives it from the timeouts above: a
    /// quarter of the smallest, between 10 ms and 1 s.
    pub reap_interval: Option<Duration>,
    /// The clock for idle times, lifetimes and leak thresholds. Default
    /// [`Clock::Coarse`]; tests that pause tokio's clock use
    /// [`Clock::Tokio`].
    pub clock: Clock,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            max_conns_per_key: 32,
            max_idle_per_key: 32,
            max_idle_total: 1024,
            max_waiters_per_key: 1024,
            wait_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(30)),
            max_lifetime: None,
            leak_threshold: None,
            reap_interval: None,
            clock: Clock::Coarse,
        }
    }
}

impl PoolConfig {
    /// The reaper's period: `reap_interval`, or a quarter of the smallest
    /// timeout clamped to 10 ms..=1 s. `None` when there is nothing to reap.
    pub(crate) fn reaper_period(&self) -> Option<Duration> {
        if let Some(every) = self.reap_interval {
            return Some(every.max(Duration::from_millis(1)));
        }
        let smallest = [self.idle_timeout, self.max_lifetime, self.leak_threshold]
            .into_iter()
            .flatten()
            .min()?;
        Some((smallest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)))
    }
}
