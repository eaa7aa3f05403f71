//! The pool's one task: it evicts expired idle connections, reports
//! suspected leaks, and ends waits whose deadline passed — so neither a
//! connection nor a waiter needs a timer of its own.
//!
//! Waiter deadlines are cheap to watch: every waiter of a pool waits the
//! same `wait_timeout`, so each key's FIFO queue is in deadline order and
//! the task sleeps until the earliest front. It is woken only when a
//! waiter arrives while it watches none.
//!
//! The task holds only a `Weak` reference, upgraded for the moment of each
//! sweep, so it never keeps a pool alive; the pool's drop wakes it and it
//! ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Key, Manager, Shared};

/// What the pool and its task share, apart from the pool itself.
#[derive(Default)]
pub(super) struct Signals {
    /// A waiter arrived while the task watched no deadline.
    pub(super) wake_timer: Notify,
    /// The pool was dropped.
    pub(super) shutdown: Notify,
    /// The task runs; without it waiters time themselves.
    pub(super) timer_running: AtomicBool,
}

/// Starts the task of `shared` on the current tokio runtime unless it runs.
/// A task ends with its runtime; the next checkout on a live runtime starts
/// a new one, so waiters never lose their deadlines.
pub(super) fn start<K: Key, M: Manager<K>>(shared: &Arc<Shared<K, M>>) {
    let signals = &shared.signals;
    if signals.timer_running.load(Ordering::Acquire) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if signals
        .timer_running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return; // another caller started it
    }
    let running = Running(signals.clone());
    let pool = Arc::downgrade(shared);
    let period = shared.config.reaper_period();
    // `running` moves into the task and is dropped when the task ends.
    runtime.spawn(async move { run(pool, period, &running.0).await });
}

/// Clears `timer_running` when the task ends, however it ends: the pool
/// was dropped, or its runtime shut down and dropped the task.
struct Running(Arc<Signals>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.timer_running.store(false, Ordering::Release);
    }
}

async fn run<K: Key, M: Manager<K>>(
    pool: Weak<Shared<K, M>>,
    reap_every: Option<Duration>,
    signals: &Signals,
) {
    let mut next_reap = reap_every.map(|every| Instant::now() + every);
    loop {
        let next_expiry = {
            let Some(shared) = pool.upgrade() else { return };
            let now = Instant::now();
            if next_reap.is_some_and(|at| at <= now) {
                shared.reap();
                next_reap = reap_every.map(|every| now + every);
            }
            shared.expire_waiters(now)
        };
        let wake_at = next_reap.into_iter().chain(next_expiry).min();
        let sleep = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = signals.wake_timer.notified() => {}
            _ = signals.shutdown.notified() => return,
        }
    }
}
