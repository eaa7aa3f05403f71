//! Response deadlines and dead-path checks without a timer per request.
//!
//! Every request waits for its response head at most
//! `response_header_timeout`, and a request that has waited
//! `dead_path_check` without a response byte is checked for a dead path
//! (see `path`). Wrapping each wait in `tokio::time::timeout` would put an
//! entry into tokio's timer wheel and take it out again: about 550
//! instructions a request on the benchmark's hot path (callgrind), some 5%
//! of what the client costs, for alarms that almost never go off.
//!
//! Instead a waiting request registers in a [`Watchdog`]'s list (one short
//! lock when it first has to wait, one when it is done) and one task per
//! client sweeps that list every tick, waking the requests whose deadline
//! or check time passed; the woken request sees which [`Alarm`] went off.
//! An alarm goes off between zero and one tick late; a tick is a tenth of
//! the shortest alarm, at most 100 ms. A request whose response is
//! already there when it is first polled never registers at all.
//!
//! The task runs only while requests wait: it ends after a second with
//! none, and the next registration starts it again on the current runtime
//! (so a task that died with its runtime is replaced too). It holds only a
//! `Weak`, so it never keeps a client alive.
//!
//! Times are read on the coarse monotonic clock, like the pool's idle
//! times: a few milliseconds of resolution is plenty here.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;
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

/// What went off for a watched request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alarm {
    /// The deadline passed.
    Deadline,
    /// Time to check the path (then [`Watch::check_again`]).
    Check,
}

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
    /// On the coarse clock, in nanoseconds; `NEVER` for none.
    deadline: u64,
    check_at: u64,
    waker: Waker,
    /// The alarm the sweep found due, not yet seen by the request.
    fired: Option<Alarm>,
}

const NEVER: u64 = u64::MAX;

impl Watchdog {
    /// Starts watching one request: a deadline `limit` from now, and a
    /// path check `check_after` from now. Nothing is registered until the
    /// request first has to wait ([`Watch::pending`]).
    pub(crate) fn watch(
        &self,
        limit: Option<Duration>,
        check_after: Option<Duration>,
    ) -> Watch<'_> {
        let shortest = match (limit, check_after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let now = if shortest.is_some() { now_nanos() } else { 0 };
        let at = |d: Option<Duration>| d.map_or(NEVER, |d| now.saturating_add(duration_nanos(d)));
        Watch {
            shared: &self.shared,
            limit,
            key: None,
            deadline: at(limit),
            check_at: at(check_after),
            tick: shortest.map(tick_for),
        }
    }

    /// How many requests wait now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.shared.lock().waiting.len()
    }
}

/// One request's place in the list; dropping it (however the request
/// ends) takes the place back.
pub(crate) struct Watch<'a> {
    shared: &'a Arc<Shared>,
    limit: Option<Duration>,
    key: Option<usize>,
    deadline: u64,
    check_at: u64,
    /// `None` when there is nothing to watch.
    tick: Option<Duration>,
}

impl Watch<'_> {
    /// The deadline's length, as given.
    pub(crate) fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// The watched operation is pending: register (once), keep the waker
    /// current, and return the alarm that went off, if one did.
    pub(crate) fn pending(&mut self, waker: &Waker) -> Option<Alarm> {
        let tick = self.tick?;
        let mut state = self.shared.lock();
        let Some(key) = self.key else {
            self.key = Some(state.waiting.insert(Waiting {
                deadline: self.deadline,
                check_at: self.check_at,
                waker: waker.clone(),
                fired: None,
            }));
            ensure_task(self.shared, &mut state, tick);
            return None;
        };
        let waiting = &mut state.waiting[key];
        if !waiting.waker.will_wake(waker) {
            waiting.waker = waker.clone();
        }
        let fired = waiting.fired.take();
        if fired == Some(Alarm::Deadline) {
            // Stays fired: a request that ignores it is told again.
            waiting.fired = fired;
        }
        fired
    }

    /// After an [`Alarm::Check`]: check again after `after`, or never.
    pub(crate) fn check_again(&mut self, after: Option<Duration>) {
        let Some(key) = self.key else { return };
        let at = after.map_or(NEVER, |d| now_nanos().saturating_add(duration_nanos(d)));
        self.shared.lock().waiting[key].check_at = at;
    }
}

impl Drop for Watch<'_> {
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

/// Starts the sweeping task unless one runs; a running task with a coarser
/// tick takes the finer one at its next sweep.
fn ensure_task(shared: &Arc<Shared>, state: &mut State, tick: Duration) {
    if state.task_running {
        state.tick = state.tick.min(tick);
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // Outside a runtime nothing could be polled to wake us either.
        return;
    };
    state.tick = tick;
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
                if waiting.fired.is_some() {
                    continue;
                }
                if waiting.deadline <= now {
                    waiting.fired = Some(Alarm::Deadline);
                } else if waiting.check_at <= now {
                    // Until the request asks for another check.
                    waiting.check_at = NEVER;
                    waiting.fired = Some(Alarm::Check);
                } else {
                    continue;
                }
                due.push(waiting.waker.clone());
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
    use std::future::{Future, poll_fn};
    use std::pin::pin;
    use std::task::Poll;

    use super::*;

    /// Runs `fut` under a watch; returns its output or the alarm.
    async fn watched<F: Future>(
        dog: &Watchdog,
        limit: Option<Duration>,
        check_after: Option<Duration>,
        fut: F,
    ) -> Result<F::Output, Alarm> {
        let mut fut = pin!(fut);
        let mut watch = dog.watch(limit, check_after);
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            match watch.pending(cx.waker()) {
                Some(alarm) => Poll::Ready(Err(alarm)),
                None => Poll::Pending,
            }
        })
        .await
    }

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[tokio::test]
    async fn a_finished_future_never_registers() {
        let dog = Watchdog::default();
        let out = watched(&dog, ms(10), ms(5), async { 7 }).await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(dog.waiting(), 0);
    }

    #[tokio::test]
    async fn nothing_to_watch_never_registers() {
        let dog = Watchdog::default();
        let out = watched(&dog, None, None, async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            7
        });
        assert_eq!(out.await.unwrap(), 7);
        assert!(!dog.shared.lock().task_running);
    }

    #[tokio::test]
    async fn a_deadline_fires_within_a_tick_and_the_place_is_freed() {
        let dog = Watchdog::default();
        let limit = Duration::from_millis(50);
        let started = std::time::Instant::now();
        let out = watched(&dog, Some(limit), None, std::future::pending::<()>()).await;
        let took = started.elapsed();
        assert_eq!(out.unwrap_err(), Alarm::Deadline);
        assert!(took >= limit - Duration::from_millis(5), "{took:?}");
        assert!(took < limit + Duration::from_millis(500), "{took:?}");
        assert_eq!(dog.waiting(), 0);
    }

    #[tokio::test]
    async fn a_check_fires_once_then_again_when_asked_and_the_deadline_still_holds() {
        let dog = Watchdog::default();
        let mut watch = dog.watch(ms(400), ms(20));
        let mut checks = 0;
        let started = std::time::Instant::now();
        let alarm = poll_fn(|cx| match watch.pending(cx.waker()) {
            Some(Alarm::Check) => {
                checks += 1;
                // Twice more, then no more checks.
                watch.check_again(if checks < 3 { ms(20) } else { None });
                Poll::Pending
            }
            Some(alarm) => Poll::Ready(alarm),
            None => Poll::Pending,
        })
        .await;
        assert_eq!(alarm, Alarm::Deadline);
        assert_eq!(checks, 3);
        assert!(started.elapsed() >= Duration::from_millis(395));
        drop(watch);
        assert_eq!(dog.waiting(), 0);
    }

    #[tokio::test]
    async fn a_future_that_finishes_in_time_is_not_cut() {
        let dog = Watchdog::default();
        let out = watched(&dog, ms(5_000), ms(5_000), async {
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
        let wait = watched(&dog, ms(5_000), None, std::future::pending::<()>());
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
                watched(&dog, ms(3_000), None, std::future::pending::<()>()).await
            })
        };
        tokio::task::yield_now().await;
        let started = std::time::Instant::now();
        let fine = (0..8).map(|_| {
            let dog = dog.clone();
            tokio::spawn(
                async move { watched(&dog, ms(30), None, std::future::pending::<()>()).await },
            )
        });
        for wait in fine.collect::<Vec<_>>() {
            assert_eq!(wait.await.unwrap().unwrap_err(), Alarm::Deadline);
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
