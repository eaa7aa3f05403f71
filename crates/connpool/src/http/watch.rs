//! Response deadlines without a timer per request.
//!
//! Every request waits for its response head at most
//! `response_header_timeout`. Wrapping each wait in `tokio::time::timeout`
//! puts an entry into tokio's timer wheel and takes it out again: about
//! 550 instructions a request on the benchmark's hot path, a sixth of what
//! the client itself costs, for a deadline that almost never fires.
//!
//! Instead a waiting request registers in a [`Watchdog`]'s list (one short
//! lock when it first has to wait, one when it is done) and one task per
//! client sweeps that list every tick, waking the requests whose deadline
//! passed. A deadline fires between zero and one tick late; a tick is a
//! tenth of the timeout, at most 100 ms, so the default 30 s timeout fires
//! within 30.0–30.1 s. A request whose response is already there when it
//! is first polled never registers at all.
//!
//! The task runs only while requests wait: it ends after a second with
//! none, and the next registration starts it again on the current runtime
//! (so a task that died with its runtime is replaced too). It holds only a
//! `Weak`, so it never keeps a client alive.
//!
//! Deadlines are read on the coarse monotonic clock, like the pool's idle
//! times: a few milliseconds of resolution is plenty here.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use slab::Slab;

/// The shortest sweep period: below this the sweeps would cost more than
/// the timers they replace.
const MIN_TICK: Duration = Duration::from_millis(1);
/// The longest sweep period, and so the most a deadline fires late.
const MAX_TICK: Duration = Duration::from_millis(100);
/// The task ends after this long with no waiting request.
const IDLE_END: Duration = Duration::from_secs(1);

/// Watches the deadlines of the requests of one client.
#[derive(Debug, Default)]
pub(crate) struct Watchdog {
    shared: Arc<Shared>,
}

/// The deadline passed before the watched future finished.
#[derive(Debug)]
pub(crate) struct Elapsed;

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    waiting: Slab<Waiting>,
    /// A sweeping task runs. Read and written under the lock, so a
    /// registration never misses a task that is about to end.
    task_running: bool,
    /// The sweep period of the running task.
    tick: Duration,
}

#[derive(Debug)]
struct Waiting {
    /// On the coarse clock, in nanoseconds.
    deadline: u64,
    waker: Waker,
    /// The sweep found the deadline passed and woke the request.
    fired: bool,
}

impl Watchdog {
    /// Runs `fut` until it finishes or `limit` has passed, whichever comes
    /// first. Dropping the returned future drops `fut` and forgets the
    /// deadline.
    pub(crate) async fn within<F: Future>(
        &self,
        limit: Duration,
        fut: F,
    ) -> Result<F::Output, Elapsed> {
        let mut fut = pin!(fut);
        let deadline = now_nanos().saturating_add(duration_nanos(limit));
        let mut registration = Registration {
            shared: &self.shared,
            key: None,
        };
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            registration
                .pending(cx.waker(), deadline, limit)
                .map(|fired| fired.map(|never| match never {}))
        })
        .await
    }

    /// How many requests wait now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.shared.lock().waiting.len()
    }
}

/// One request's place in the list; leaving it (however the request
/// ends) takes the place back.
struct Registration<'a> {
    shared: &'a Arc<Shared>,
    key: Option<usize>,
}

impl Registration<'_> {
    /// The watched future is pending: register (once), keep the waker
    /// current, and say whether the deadline fired.
    fn pending(
        &mut self,
        waker: &Waker,
        deadline: u64,
        limit: Duration,
    ) -> Poll<Result<Never, Elapsed>> {
        let mut state = self.shared.lock();
        match self.key {
            None => {
                self.key = Some(state.waiting.insert(Waiting {
                    deadline,
                    waker: waker.clone(),
                    fired: false,
                }));
                ensure_task(self.shared, &mut state, tick_for(limit));
            }
            Some(key) => {
                let waiting = &mut state.waiting[key];
                if waiting.fired {
                    return Poll::Ready(Err(Elapsed));
                }
                if !waiting.waker.will_wake(waker) {
                    waiting.waker = waker.clone();
                }
            }
        }
        Poll::Pending
    }
}

/// A type with no values: [`Registration::pending`] never returns `Ok`.
enum Never {}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // Dropped outside the lock: a waker's drop may run arbitrary code.
            let _waiting = self.shared.lock().waiting.remove(key);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (every change is one
        // assignment), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Starts the sweeping task unless one runs with a tick at least as fine.
fn ensure_task(shared: &Arc<Shared>, state: &mut State, tick: Duration) {
    if state.task_running && state.tick <= tick {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // Outside a runtime nothing could be polled to wake us either.
        return;
    };
    // A running task with a coarser tick notices the finer one at its
    // next sweep.
    state.tick = if state.task_running {
        state.tick.min(tick)
    } else {
        tick
    };
    if state.task_running {
        return;
    }
    state.task_running = true;
    let running = Running {
        shared: Arc::downgrade(shared),
        armed: true,
    };
    runtime.spawn(async move { sweep_until_idle(running).await });
}

/// Clears `task_running` when the task ends, however it ends: the client
/// was dropped, or the runtime shut down and dropped the task. (A task
/// that ends because no request waits clears it itself, under the lock of
/// its last sweep, and disarms this.)
struct Running {
    shared: Weak<Shared>,
    armed: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(shared) = self.shared.upgrade() {
            shared.lock().task_running = false;
        }
    }
}

async fn sweep_until_idle(mut running: Running) {
    let mut idle_for = Duration::ZERO;
    let mut due = Vec::new();
    loop {
        let tick = match running.shared.upgrade() {
            Some(shared) => shared.lock().tick,
            None => return,
        };
        tokio::time::sleep(tick).await;
        let Some(shared) = running.shared.upgrade() else {
            return;
        };
        let now = now_nanos();
        {
            let mut state = shared.lock();
            if state.waiting.is_empty() {
                idle_for += tick;
                if idle_for >= IDLE_END {
                    // Under the lock, so that a registration either sees
                    // the task gone or is swept by it.
                    state.task_running = false;
                    running.armed = false;
                    return;
                }
                continue;
            }
            idle_for = Duration::ZERO;
            for (_, waiting) in state.waiting.iter_mut() {
                if !waiting.fired && waiting.deadline <= now {
                    waiting.fired = true;
                    due.push(waiting.waker.clone());
                }
            }
        }
        // Woken outside the lock: the woken task may poll at once.
        for waker in due.drain(..) {
            waker.wake();
        }
    }
}

fn tick_for(limit: Duration) -> Duration {
    (limit / 10).clamp(MIN_TICK, MAX_TICK)
}

fn now_nanos() -> u64 {
    crate::sys::coarse_monotonic_nanos()
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_finished_future_never_registers() {
        let dog = Watchdog::default();
        let out = dog.within(Duration::from_millis(10), async { 7 }).await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(dog.waiting(), 0);
    }

    #[tokio::test]
    async fn a_deadline_fires_within_a_tick_and_the_place_is_freed() {
        let dog = Watchdog::default();
        let limit = Duration::from_millis(50);
        let started = std::time::Instant::now();
        let out = dog.within(limit, std::future::pending::<()>()).await;
        let took = started.elapsed();
        assert!(out.is_err());
        assert!(took >= limit - Duration::from_millis(5), "{took:?}");
        assert!(took < limit + Duration::from_millis(500), "{took:?}");
        assert_eq!(dog.waiting(), 0);
    }

    #[tokio::test]
    async fn a_future_that_finishes_in_time_is_not_cut() {
        let dog = Watchdog::default();
        let out = dog
            .within(Duration::from_secs(5), async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                "done"
            })
            .await;
        assert_eq!(out.unwrap(), "done");
        assert_eq!(dog.waiting(), 0, "deregistered when done");
    }

    #[tokio::test]
    async fn a_dropped_wait_frees_its_place() {
        let dog = Watchdog::default();
        let wait = dog.within(Duration::from_secs(5), std::future::pending::<()>());
        let cut = tokio::time::timeout(Duration::from_millis(20), wait).await;
        assert!(cut.is_err());
        assert_eq!(dog.waiting(), 0);
    }

    #[tokio::test]
    async fn many_waits_each_fire_and_a_finer_tick_is_honoured() {
        let dog = Arc::new(Watchdog::default());
        // A coarse wait first starts the task with a 100 ms tick; the fine
        // ones must still fire close to 30 ms, not 100 ms late.
        let coarse = {
            let dog = dog.clone();
            tokio::spawn(async move {
                dog.within(Duration::from_secs(3), std::future::pending::<()>())
                    .await
            })
        };
        tokio::task::yield_now().await;
        let started = std::time::Instant::now();
        let fine = (0..8).map(|_| {
            let dog = dog.clone();
            tokio::spawn(async move {
                dog.within(Duration::from_millis(30), std::future::pending::<()>())
                    .await
            })
        });
        for wait in fine.collect::<Vec<_>>() {
            assert!(wait.await.unwrap().is_err());
        }
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        coarse.abort();
        let _ = coarse.await;
        assert_eq!(dog.waiting(), 0);
    }
}
