//! The reaper: one task per pool that evicts expired idle connections and
//! reports suspected leaks, so no connection needs a timer of its own.
//!
//! It holds only a `Weak` reference, upgraded for the moment of each sweep,
//! so it never keeps a pool alive; the pool's drop wakes it and it ends.

use std::sync::Arc;

use tokio::time::MissedTickBehavior;

use super::{Key, Manager, Shared};

/// Starts the reaper of `shared` once, on the current tokio runtime. A pool
/// with nothing to reap (no timeouts) has none.
pub(super) fn start<K: Key, M: Manager<K>>(shared: &Arc<Shared<K, M>>) {
    shared.reaper_started.call_once(|| {
        let Some(period) = shared.config.reaper_period() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = Arc::downgrade(shared);
        let shutdown = shared.reaper_shutdown.clone();
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = shutdown.notified() => return,
                }
                let Some(shared) = pool.upgrade() else { return };
                shared.reap();
            }
        });
    });
}
