//! A generic keyed connection pool.
//!
//! A [`Pool`] keeps connections per *key* (a host, a shard, a database)
//! and hands them out through a [`Manager`] that knows how to open one and
//! how to check one cheaply before reuse. Everything else is the pool's:
//!
//! * **Bounds.** `max_conns_per_key` counts idle, checked-out *and*
//!   connecting connections; a caller over it waits, first come first
//!   served, for at most `wait_timeout`, and one more than
//!   `max_waiters_per_key` is refused at once. Idle connections are bounded
//!   per key and in total.
//! * **Check before use.** At checkout an idle connection is rejected if
//!   it is past its idle timeout or lifetime, or if the manager's
//!   [`check`](Manager::check) fails (for TCP: a non-blocking peek shows
//!   the peer's FIN, an RST, or bytes nobody asked for). The next idle
//!   connection, or a new one, is tried instead, so the caller never sees
//!   the stale one.
//! * **Return only at a message boundary.** A checked-out connection is a
//!   [`PooledConn`] guard. Only [`PooledConn::release`] puts it back; a
//!   guard dropped any other way — an early `return`, a `?`, a cancelled
//!   future, a panic — closes the connection and frees its slot, because
//!   nobody can know what half-written request or half-read response it
//!   still carries. The safe thing is the thing that happens by default.
//! * **Cancellation safety.** Every unit of capacity is owned by exactly one
//!   guard at a time (see `state.rs`); dropping a waiting or connecting
//!   `get` future hands its unit on to the next waiter. Nothing leaks.
//! * **Expiry without a task per connection.** One reaper task per pool
//!   evicts expired idle connections and reports suspected leaks; it holds
//!   only a weak reference and ends when the pool is dropped.
//! * **Observability.** Every step is an [`Event`] and a
//!   `tracing` event; [`Pool::stats`] gives counts per key and counters.
//!
//! ```
//! use connpool::{Error, Manager, Pool};
//!
//! struct Numbers;
//! impl Manager<&'static str> for Numbers {
//!     type Conn = u32;
//!     async fn connect(&self, _key: &&'static str) -> Result<u32, Error> {
//!         Ok(7)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let pool = Pool::builder(Numbers).max_conns_per_key(4).build();
//! let conn = pool.get(&"db-1").await?;
//! assert_eq!(*conn, 7);
//! conn.release(); // at a message boundary: back to the pool
//! let again = pool.get(&"db-1").await?;
//! assert!(again.is_reused());
//! # Ok(()) }
//! ```

mod clock;
mod config;
mod guard;
mod reaper;
mod state;
mod stats;

pub use clock::Clock;
pub use config::PoolConfig;
pub use guard::PooledConn;
pub use stats::{Counters, KeyStats, PoolStats};

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Instant;

use crate::events::{self, ConnId, Event, EventKind, Observer, WaitOutcome};
use crate::{CloseReason, Error, ErrorKind, EvictReason};
use state::{Aftermath, Grant, Handoff, State, Take, Tracked};

/// What a pool key must be: cheap to clone (it is cloned once per new
/// connection and once per new key), hashable, printable for errors and
/// events. `SocketAddr`, `Arc<str>`, `&'static str` and small tuples are
/// good keys. Implemented for every such type.
pub trait Key: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static {}
impl<T: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static> Key for T {}

/// Opens and checks connections for a pool.
///
/// ```
/// use connpool::{Error, EvictReason, Manager};
/// use std::time::Duration;
///
/// struct Counter;
/// impl Manager<u8> for Counter {
///     type Conn = Vec<u8>;
///     async fn connect(&self, key: &u8) -> Result<Vec<u8>, Error> {
///         Ok(vec![*key])
///     }
///     fn check(&self, _key: &u8, conn: &mut Vec<u8>, _idle_for: Duration) -> Result<(), EvictReason> {
///         if conn.len() > 100 { Err(EvictReason::Unhealthy) } else { Ok(()) }
///     }
/// }
/// ```
pub trait Manager<K>: Send + Sync + 'static {
    /// The connection type.
    type Conn: Send + 'static;

    /// Opens a new connection for `key`. The pool adds the key to the
    /// error. Timeouts are the manager's business (the TCP manager has a
    /// connect timeout).
    fn connect(&self, key: &K) -> impl Future<Output = Result<Self::Conn, Error>> + Send;

    /// Checks an idle connection just before it is handed out. It runs on
    /// every reuse, so it must be cheap and must not block (the TCP
    /// manager's is one non-blocking `recv(MSG_PEEK)`). A connection that
    /// fails is evicted with the returned reason and the next one is tried.
    ///
    /// `idle_for` is how long the connection sat idle: a manager that sees
    /// the server closed it can learn the server's idle timeout from it
    /// (the HTTP client does).
    fn check(
        &self,
        key: &K,
        conn: &mut Self::Conn,
        idle_for: std::time::Duration,
    ) -> Result<(), EvictReason> {
        let _ = (key, conn, idle_for);
        Ok(())
    }
}

/// A keyed connection pool; see the [module docs](crate::pool). Cloning is cheap
/// and clones share the pool.
pub struct Pool<K: Key, M: Manager<K>> {
    shared: Arc<Shared<K, M>>,
}

impl<K: Key, M: Manager<K>> Clone for Pool<K, M> {
    fn clone(&self) -> Self {
        Pool {
            shared: self.shared.clone(),
        }
    }
}

/// What a pool and its guards share.
pub(crate) struct Shared<K: Key, M: Manager<K>> {
    pub(crate) manager: M,
    pub(crate) config: PoolConfig,
    observer: Option<Arc<dyn Observer<K>>>,
    state: Mutex<State<K, M::Conn>>,
    /// How the pool talks to its task; the task holds these, not the pool.
    signals: Arc<reaper::Signals>,
}

/// Builds a [`Pool`]: the settings of [`PoolConfig`] plus an observer.
///
/// ```
/// # use connpool::{Error, Manager, Pool};
/// # struct M; impl Manager<u8> for M { type Conn = (); async fn connect(&self, _: &u8) -> Result<(), Error> { Ok(()) } }
/// use std::time::Duration;
/// let pool = Pool::builder(M)
///     .max_conns_per_key(8)
///     .wait_timeout(Duration::from_millis(200))
///     .idle_timeout(Some(Duration::from_secs(4)))
///     .observer(|e: &connpool::Event<'_, u8>| println!("{:?}", e.kind))
///     .build();
/// ```
pub struct PoolBuilder<K: Key, M: Manager<K>> {
    manager: M,
    config: PoolConfig,
    observer: Option<Arc<dyn Observer<K>>>,
}

impl<K: Key, M: Manager<K>> PoolBuilder<K, M> {
    /// Replaces all settings at once.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    setters! {
        /// See [`PoolConfig::max_conns_per_key`].
        max_conns_per_key: usize;
        /// See [`PoolConfig::max_idle_per_key`].
        max_idle_per_key: usize;
        /// See [`PoolConfig::max_idle_total`].
        max_idle_total: usize;
        /// See [`PoolConfig::max_waiters_per_key`].
        max_waiters_per_key: usize;
        /// See [`PoolConfig::wait_timeout`].
        wait_timeout: std::time::Duration;
        /// See [`PoolConfig::idle_timeout`].
        idle_timeout: Option<std::time::Duration>;
        /// See [`PoolConfig::max_lifetime`].
        max_lifetime: Option<std::time::Duration>;
        /// See [`PoolConfig::leak_threshold`].
        leak_threshold: Option<std::time::Duration>;
        /// See [`PoolConfig::reap_interval`].
        reap_interval: Option<std::time::Duration>;
        /// See [`PoolConfig::clock`].
        clock: Clock;
    }

    /// Sets the observer that receives every [`Event`].
    pub fn observer(mut self, observer: impl Observer<K>) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Builds the pool. Its reaper task starts on the tokio runtime of the
    /// first checkout.
    pub fn build(self) -> Pool<K, M> {
        Pool {
            shared: Arc::new(Shared {
                manager: self.manager,
                config: self.config,
                observer: self.observer,
                state: Mutex::new(State::new()),
                signals: Arc::default(),
            }),
        }
    }
}

impl<K: Key, M: Manager<K>> Pool<K, M> {
    /// A pool with default settings.
    pub fn new(manager: M) -> Self {
        Pool::builder(manager).build()
    }

    /// Starts building a pool.
    pub fn builder(manager: M) -> PoolBuilder<K, M> {
        PoolBuilder {
            manager,
            config: PoolConfig::default(),
            observer: None,
        }
    }

    /// The pool's settings.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    /// Checks out a connection for `key`: a checked idle one if there is
    /// one, else a new one if the key is under its cap, else the first one
    /// freed, waiting at most `wait_timeout`.
    ///
    /// The place this is called from is remembered for leak reports.
    ///
    /// # Errors
    /// The manager's connect error (with the key), or
    /// [`ErrorKind::PoolWaitTimeout`] / [`ErrorKind::TooManyWaiters`] with
    /// the key's state.
    ///
    /// # Cancellation
    /// Dropping the future at any point frees whatever it held: a waiting
    /// place, a connect in progress, or a connection handed to it.
    #[track_caller]
    pub fn get<'a>(
        &'a self,
        key: &'a K,
    ) -> impl Future<Output = Result<PooledConn<K, M>, Error>> + Send + 'a {
        let location = Location::caller();
        self.checkout(key, location)
    }

    async fn checkout(
        &self,
        key: &K,
        location: &'static Location<'static>,
    ) -> Result<PooledConn<K, M>, Error> {
        reaper::start(&self.shared);
        match self.turn(key, None, location) {
            Turn::Done(result) => result,
            // Boxed: a future that can connect or wait is several times
            // the size of one that takes an idle connection, and every
            // caller's future would carry (and move) that size on every
            // request. A connect or a wait costs far more than the box.
            slow => Box::pin(self.checkout_slow(key, slow, location)).await,
        }
    }

    /// One turn at the pool's state, without waiting: an idle connection
    /// that passes its check (the connections that fail are evicted and
    /// the next one tried), or what must be awaited instead. Most
    /// checkouts end here.
    fn turn(
        &self,
        key: &K,
        mut failed: Option<Evicted<K, M>>,
        location: &'static Location<'static>,
    ) -> Turn<K, M> {
        let shared = &*self.shared;
        loop {
            let mut after = Aftermath::new();
            let now = shared.config.clock.now();
            let take = shared.lock().take(
                &shared.config,
                key,
                failed.take(),
                location,
                now,
                &mut after,
            );
            shared.finish(after);
            match take {
                Take::Idle { tracked, idle_for } => match self.checked(key, tracked, idle_for, now)
                {
                    Ok(conn) => return Turn::Done(Ok(conn)),
                    // Keep the unit: the next `take` trades it for another try.
                    Err(evicted) => failed = Some(evicted),
                },
                Take::Connect(id) => return Turn::Connect(id),
                Take::Wait {
                    id,
                    rx,
                    waiters,
                    wake_timer,
                } => {
                    if wake_timer {
                        shared.signals.wake_timer.notify_one();
                    }
                    return Turn::Wait { id, rx, waiters };
                }
                Take::Refused(stats) => {
                    shared.emit(
                        key,
                        None,
                        EventKind::Refused {
                            waiters: stats.waiters,
                        },
                    );
                    return Turn::Done(Err(Error::limit(
                        ErrorKind::TooManyWaiters,
                        "max_waiters_per_key",
                        shared.config.max_waiters_per_key,
                        None,
                        stats,
                    )
                    .with_key(key)));
                }
            }
        }
    }

    /// The rest of a checkout whose first turn must connect or wait.
    async fn checkout_slow(
        &self,
        key: &K,
        mut turn: Turn<K, M>,
        location: &'static Location<'static>,
    ) -> Result<PooledConn<K, M>, Error> {
        loop {
            let (id, rx, waiters) = match turn {
                Turn::Done(result) => return result,
                Turn::Connect(id) => return self.connect(key, id, location).await,
                Turn::Wait { id, rx, waiters } => (id, rx, waiters),
            };
            match self.wait(key, id, rx, waiters, location).await? {
                Grant::Conn(tracked) => {
                    let now = self.shared.config.clock.now();
                    match self.checked(key, tracked, std::time::Duration::ZERO, now) {
                        Ok(conn) => return Ok(conn),
                        Err(evicted) => turn = self.turn(key, Some(evicted), location),
                    }
                }
                Grant::Permit(id) => return self.connect(key, id, location).await,
                Grant::Expired(_) => unreachable!("wait() turns Expired into an error"),
            }
        }
    }

    /// Runs the manager's check on a connection just taken: the connection
    /// to hand out, or the connection (still holding its unit) and why it
    /// must be evicted.
    fn checked(
        &self,
        key: &K,
        tracked: Tracked<K, M::Conn>,
        idle_for: std::time::Duration,
        now: clock::Stamp,
    ) -> Result<PooledConn<K, M>, Evicted<K, M>> {
        let shared = &*self.shared;
        let mut conn = PooledConn::new(self.shared.clone(), tracked, idle_for, now);
        match shared.manager.check(key, &mut conn, idle_for) {
            Ok(()) => {
                shared.emit(
                    key,
                    Some(conn.id()),
                    EventKind::Reused {
                        idle_for,
                        previous_uses: conn.uses() - 1,
                    },
                );
                Ok(conn)
            }
            Err(reason) => Err((conn.disarm(), reason)),
        }
    }

    /// Closes `conn` (evicted with `reason`) and opens a new connection for
    /// the same key in its place: the slot passes from the old connection
    /// to the new one, so this never waits and never hands out an idle
    /// connection. For retrying a request that failed on a reused
    /// connection: the retry must go to a connection that is surely fresh.
    ///
    /// # Errors
    /// The manager's connect error; the slot is freed then.
    ///
    /// ```
    /// # use connpool::{Error, EvictReason, Manager, Pool};
    /// # struct M; impl Manager<u8> for M { type Conn = (); async fn connect(&self, _: &u8) -> Result<(), Error> { Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let pool = Pool::new(M);
    /// pool.get(&1).await?.release();
    /// let reused = pool.get(&1).await?;
    /// assert!(reused.is_reused());
    /// let fresh = pool.reconnect(reused, EvictReason::ServerClosed).await?;
    /// assert!(!fresh.is_reused());
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn reconnect(
        &self,
        conn: PooledConn<K, M>,
        reason: EvictReason,
    ) -> impl Future<Output = Result<PooledConn<K, M>, Error>> + Send + '_ {
        let location = Location::caller();
        let tracked = conn.disarm();
        let key = tracked.key.clone();
        let mut after = Aftermath::new();
        let id = self
            .shared
            .lock()
            .trade_for_connect(tracked, reason, &mut after);
        self.shared.finish(after);
        async move { Box::pin(self.connect(&key, id, location)).await }
    }

    /// Waits for a grant. The deadline is watched by the pool's timer task,
    /// which answers with [`Grant::Expired`]: no waiter arms a timer of its
    /// own. On cancellation the waiting place is given up, and a grant that
    /// raced in is handed on.
    async fn wait(
        &self,
        key: &K,
        id: u64,
        rx: tokio::sync::oneshot::Receiver<Grant<K, M::Conn>>,
        waiters: usize,
        location: &'static Location<'static>,
    ) -> Result<Grant<K, M::Conn>, Error> {
        let shared = &*self.shared;
        shared.emit(key, None, EventKind::WaitStarted { waiters });
        // Timing the wait costs a clock read; only pay it for a listener.
        let started = shared.listening().then(Instant::now);
        let mut wait = WaitGuard {
            shared,
            key,
            id,
            rx: Some(rx),
            started,
        };
        let rx = wait.rx.as_mut().expect("set above");
        let answer = if shared.signals.timer_running.load(Ordering::Acquire) {
            Ok(rx.await)
        } else {
            // No timer task (no tokio runtime when the pool first ran):
            // fall back to a timer of our own.
            tokio::time::timeout(shared.config.wait_timeout, rx).await
        };
        let grant = match answer {
            Ok(Ok(grant)) => grant,
            // Senders live in the pool's state, which outlives this borrow,
            // and are only dropped after sending; kept as an error anyway.
            Ok(Err(_closed)) => {
                wait.rx = None;
                return Err(Error::new(ErrorKind::Io, "the pool dropped a waiter").with_key(key));
            }
            Err(_elapsed) => {
                let stats = wait.give_up(true);
                wait.ended(WaitOutcome::TimedOut);
                return Err(wait_timeout_error(shared, key, stats));
            }
        };
        wait.rx = None;
        let outcome = match grant {
            Grant::Expired(_) => WaitOutcome::TimedOut,
            _ => WaitOutcome::Granted,
        };
        wait.ended(outcome);
        match grant {
            Grant::Expired(stats) => Err(wait_timeout_error(shared, key, stats)),
            mut grant => {
                if let (Grant::Conn(tracked), Some(_)) = (&mut grant, shared.config.leak_threshold)
                {
                    shared.lock().begin_granted_checkout(
                        &shared.config,
                        tracked,
                        location,
                        shared.config.clock.now(),
                    );
                }
                Ok(grant)
            }
        }
    }

    /// Opens connection `id` with a connecting unit already owned.
    async fn connect(
        &self,
        key: &K,
        id: ConnId,
        location: &'static Location<'static>,
    ) -> Result<PooledConn<K, M>, Error> {
        let shared = &*self.shared;
        let unit = ConnectGuard {
            shared,
            key,
            armed: true,
        };
        shared.emit(key, Some(id), EventKind::Connecting);
        let started = Instant::now();
        match shared.manager.connect(key).await {
            Ok(conn) => {
                let took = started.elapsed();
                let now = shared.config.clock.now();
                let mut tracked = Tracked {
                    conn,
                    key: key.clone(),
                    id,
                    created: now,
                    uses: 1,
                    idle_timeout: None,
                    checkout: None,
                };
                shared
                    .lock()
                    .connected(&shared.config, &mut tracked, location, now);
                unit.disarm();
                shared.emit(key, Some(id), EventKind::Connected { took });
                Ok(PooledConn::new(
                    self.shared.clone(),
                    tracked,
                    std::time::Duration::ZERO,
                    now,
                ))
            }
            Err(err) => {
                let err = err.with_key(key);
                unit.disarm();
                let mut after = Aftermath::new();
                shared.lock().connect_abandoned(key, true, &mut after);
                shared.finish(after);
                shared.emit(
                    key,
                    Some(id),
                    EventKind::ConnectFailed { error: err.kind() },
                );
                Err(err)
            }
        }
    }

    /// The state of one key now.
    pub fn key_stats(&self, key: &K) -> KeyStats {
        self.shared.lock().key_stats(key)
    }

    /// A snapshot of every key and of the counters.
    pub fn stats(&self) -> PoolStats<K> {
        let (total, keys, counters) = self.shared.lock().all_stats();
        PoolStats {
            total,
            keys,
            counters,
        }
    }

    /// Evicts expired idle connections and reports suspected leaks now,
    /// as the reaper does periodically.
    pub fn reap_now(&self) {
        self.shared.reap();
    }
}

impl<K: Key, M: Manager<K>> fmt::Debug for Pool<K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.shared.config)
            .field("total", &self.stats().total)
            .finish()
    }
}

impl<K: Key, M: Manager<K>> Shared<K, M> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<K, M::Conn>> {
        // No code panics while holding the lock, but if some did, the
        // counts are still the best information there is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    pub(crate) fn emit(&self, key: &K, conn: Option<ConnId>, kind: EventKind) {
        if self.observer.is_none() && !events::traced(&kind) {
            return;
        }
        let event = Event { key, conn, kind };
        if let Some(observer) = &self.observer {
            observer.on_event(&event);
        }
        events::trace(&event);
    }

    /// Does what was left for after the lock: emits events and closes
    /// connections.
    #[inline]
    pub(crate) fn finish(&self, after: Aftermath<K, M::Conn>) {
        // Most operations leave nothing to do: skip the iterator set-up.
        if !after.is_empty() {
            self.finish_slow(after);
        }
    }

    #[inline(never)]
    fn finish_slow(&self, after: Aftermath<K, M::Conn>) {
        for handoff in after.handoff.into_iter().chain(after.more_handoffs) {
            self.hand_off(handoff);
        }
        for (tracked, reason) in after.closing {
            if let CloseReason::Evicted(reason) = reason {
                self.emit(
                    &tracked.key,
                    Some(tracked.id),
                    EventKind::Evicted { reason },
                );
            }
            self.emit(&tracked.key, Some(tracked.id), EventKind::Closed { reason });
            drop(tracked);
        }
        for (key, conn, held_for, checked_out_at) in after.leaks {
            self.emit(
                &key,
                Some(conn),
                EventKind::LeakSuspected {
                    held_for,
                    checked_out_at,
                },
            );
        }
    }

    /// Sends a grant to its waiter; if the waiter was cancelled meanwhile,
    /// the grant comes back to the pool as if unused.
    fn hand_off(&self, handoff: Handoff<K, M::Conn>) {
        let Handoff { tx, grant, key } = handoff;
        if let Err(grant) = tx.send(grant) {
            let key = match &grant {
                Grant::Conn(tracked) => tracked.key.clone(),
                _ => key.expect("a permit travels with its key"),
            };
            let mut after = Aftermath::new();
            let now = self.config.clock.now();
            self.lock()
                .return_unused_grant(&self.config, &key, grant, now, &mut after);
            self.finish(after);
        }
    }

    /// Whether anyone listens to events (an observer, or `tracing`).
    fn listening(&self) -> bool {
        self.observer.is_some() || events::traced(&EventKind::Returned)
    }

    /// Ends expired waits; returns the next deadline to watch.
    fn expire_waiters(&self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        self.lock().expire_waiters(now)
    }

    fn reap(&self) {
        let mut after = Aftermath::new();
        self.lock()
            .reap(&self.config, self.config.clock.now(), &mut after);
        self.finish(after);
    }
}

impl<K: Key, M: Manager<K>> Drop for Shared<K, M> {
    fn drop(&mut self) {
        self.signals.shutdown.notify_one();
        let idle = self.lock().drain_idle();
        for tracked in idle {
            self.emit(
                &tracked.key,
                Some(tracked.id),
                EventKind::Closed {
                    reason: CloseReason::PoolDropped,
                },
            );
        }
    }
}

/// Owns a connecting unit until the connect resolves; dropped early (the
/// `get` future was cancelled mid-connect) it frees the unit.
struct ConnectGuard<'a, K: Key, M: Manager<K>> {
    shared: &'a Shared<K, M>,
    key: &'a K,
    armed: bool,
}

impl<K: Key, M: Manager<K>> ConnectGuard<'_, K, M> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<K: Key, M: Manager<K>> Drop for ConnectGuard<'_, K, M> {
    fn drop(&mut self) {
        if self.armed {
            let mut after = Aftermath::new();
            self.shared
                .lock()
                .connect_abandoned(self.key, false, &mut after);
            self.shared.finish(after);
        }
    }
}

/// Owns a waiting place; dropped before a grant was taken (cancellation)
/// it leaves the queue and hands on any grant that raced in.
struct WaitGuard<'a, K: Key, M: Manager<K>> {
    shared: &'a Shared<K, M>,
    key: &'a K,
    id: u64,
    rx: Option<tokio::sync::oneshot::Receiver<Grant<K, M::Conn>>>,
    started: Option<Instant>,
}

impl<K: Key, M: Manager<K>> WaitGuard<'_, K, M> {
    /// Leaves the queue (counted as a timeout when `timed_out`); returns
    /// the key's state afterwards.
    fn give_up(&mut self, timed_out: bool) -> KeyStats {
        let Some(mut rx) = self.rx.take() else {
            return KeyStats::default();
        };
        let shared = self.shared;
        let mut after = Aftermath::new();
        let stats = {
            let mut state = shared.lock();
            if !state.cancel_wait(self.key, self.id, timed_out) {
                // Already dequeued: the grant is in the channel, or on its
                // way, and then its send fails once we close, and the
                // sender hands it back.
                rx.close();
                if let Ok(grant) = rx.try_recv() {
                    state.return_unused_grant(
                        &shared.config,
                        self.key,
                        grant,
                        shared.config.clock.now(),
                        &mut after,
                    );
                }
            }
            state.key_stats(self.key)
        };
        shared.finish(after);
        stats
    }

    fn ended(&self, outcome: WaitOutcome) {
        if let Some(started) = self.started {
            self.shared.emit(
                self.key,
                None,
                EventKind::WaitEnded {
                    waited: started.elapsed(),
                    outcome,
                },
            );
        }
    }
}

impl<K: Key, M: Manager<K>> Drop for WaitGuard<'_, K, M> {
    fn drop(&mut self) {
        if self.rx.is_some() {
            self.give_up(false);
            self.ended(WaitOutcome::Cancelled);
        }
    }
}

fn wait_timeout_error<K: Key, M: Manager<K>>(
    shared: &Shared<K, M>,
    key: &K,
    stats: KeyStats,
) -> Error {
    Error::limit(
        ErrorKind::PoolWaitTimeout,
        "max_conns_per_key",
        shared.config.max_conns_per_key,
        Some(shared.config.wait_timeout),
        stats,
    )
    .with_key(key)
}
/// A connection that failed its check, still holding its unit, and why.
type Evicted<K, M> = (Tracked<K, <M as Manager<K>>::Conn>, EvictReason);

/// What a checkout's turn at the pool's state left to do.
enum Turn<K: Key, M: Manager<K>> {
    /// Finished: a checked connection, or the refusal.
    Done(Result<PooledConn<K, M>, Error>),
    /// Open connection `id` (a connecting unit is held).
    Connect(ConnId),
    /// Wait for a grant on `rx`.
    Wait {
        id: u64,
        rx: tokio::sync::oneshot::Receiver<Grant<K, M::Conn>>,
        waiters: usize,
    },
}
