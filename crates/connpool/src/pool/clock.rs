//! The pool's clock: what idle times, lifetimes and leak thresholds are
//! measured with.
//!
//! Every checkout and every return reads the clock, so its cost is on the
//! hot path: `Instant::now()` costs about 30 ns here, the coarse clock
//! about 10 ns, with a resolution of a few milliseconds — plenty for
//! timeouts measured in seconds. Tests that pause tokio's clock choose
//! [`Clock::Tokio`] so the pool follows `tokio::time::advance`.

use std::sync::OnceLock;
use std::time::Duration;

/// Which clock a pool reads; see [`PoolConfig::clock`](crate::PoolConfig::clock).
///
/// ```
/// assert_eq!(connpool::Clock::default(), connpool::Clock::Coarse);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`):
    /// 1–4 ms resolution, the cheapest read. Idle and lifetime expiry may
    /// fire up to one tick late.
    #[default]
    Coarse,
    /// tokio's clock, which follows `tokio::time::pause()` and `advance()`:
    /// for tests of code that uses the pool.
    Tokio,
}

/// A point in time on a pool's clock, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub(crate) fn since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Clock {
    /// Now, on this clock.
    #[inline]
    pub(crate) fn now(self) -> Stamp {
        match self {
            Clock::Coarse => Stamp(crate::sys::coarse_monotonic_nanos()),
            Clock::Tokio => {
                // Stamps count from an hour before the first reading, so a
                // paused runtime started earlier still reads as positive.
                static BASE: OnceLock<tokio::time::Instant> = OnceLock::new();
                let now = tokio::time::Instant::now();
                let base =
                    BASE.get_or_init(|| now.checked_sub(Duration::from_secs(3600)).unwrap_or(now));
                Stamp(now.saturating_duration_since(*base).as_nanos() as u64)
            }
        }
    }
}
