//! The pool's bookkeeping: everything that happens under its one lock.
//!
//! This file is the pool's policy, synchronous and free of I/O, so it can be
//! read (and checked) on its own. Each key has a [`KeyState`]: an
//! [`IdleList`] (most recently used at the back), counts of checked-out and
//! connecting connections, and its [`Waiters`]. A key's *units* are its idle,
//! checked-out and connecting connections; `max_conns_per_key` bounds them.
//!
//! Every unit has exactly one owner at a time, and ownership moves only here:
//!
//! * [`State::take`] gives the caller an idle connection or the right to
//!   connect, or queues it as a waiter;
//! * when a unit is freed (a connection closed, a connect failed) it goes to
//!   the oldest live waiter as a [`Grant::Permit`]; a connection given back
//!   at a message boundary goes to the oldest live waiter as a
//!   [`Grant::Conn`], else to the idle list;
//! * anything that must happen outside the lock — emitting events, closing
//!   sockets — is collected in an [`Aftermath`].
//!
//! Invariant: a key with waiters has no idle connections and is at its cap;
//! a key with nothing idle, checked out, connecting or waiting is removed.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;
use std::hash::Hash;
use std::panic::Location;
use std::time::Duration;

use slab::Slab;
use tokio::sync::oneshot;

use super::clock::Stamp;
use super::{KeyStats, PoolConfig};
use crate::events::ConnId;
use crate::{CloseReason, Counters, EvictReason};

/// A connection with what the pool knows about it. It travels with the
/// connection: idle, checked out, or handed to a waiter.
pub(crate) struct Tracked<K, C> {
    pub conn: C,
    pub key: K,
    pub id: ConnId,
    pub created: Stamp,
    /// Checkouts so far, the current one included.
    pub uses: u64,
    /// A cap on this connection's idle timeout (from a server hint, say).
    pub idle_timeout: Option<Duration>,
    /// Its record in [`State::checkouts`] while checked out with leak
    /// detection on.
    pub checkout: Option<usize>,
}

struct IdleEntry<K, C> {
    tracked: Tracked<K, C>,
    since: Stamp,
}

/// Idle connections of one key, least recently used at the front.
///
/// Checkout takes from the back (LIFO): the most recently used connection
/// is the one least likely to have hit the server's idle timeout, and the
/// ones at the front are left to expire, which shrinks the pool after a
/// burst.
pub(crate) struct IdleList<K, C> {
    entries: VecDeque<IdleEntry<K, C>>,
}

impl<K, C> IdleList<K, C> {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn oldest_since(&self) -> Option<Stamp> {
        self.entries.front().map(|e| e.since)
    }

    fn pop_oldest(&mut self) -> Option<Tracked<K, C>> {
        self.entries.pop_front().map(|e| e.tracked)
    }

    /// Moves every expired entry into `out`.
    fn drain_expired(
        &mut self,
        config: &PoolConfig,
        now: Stamp,
        mut out: impl FnMut(Tracked<K, C>, EvictReason),
    ) {
        if !self
            .entries
            .iter()
            .any(|e| expiry(config, &e.tracked, Some(e.since), now).is_some())
        {
            return;
        }
        for entry in std::mem::take(&mut self.entries) {
            match expiry(config, &entry.tracked, Some(entry.since), now) {
                Some(reason) => out(entry.tracked, reason),
                None => self.entries.push_back(entry),
            }
        }
    }
}

/// Why `tracked` may not be (re)used now, if it may not. `idle_since` is
/// `None` for a connection that was just given back.
fn expiry<K, C>(
    config: &PoolConfig,
    tracked: &Tracked<K, C>,
    idle_since: Option<Stamp>,
    now: Stamp,
) -> Option<EvictReason> {
    if let Some(lifetime) = config.max_lifetime {
        if now.since(tracked.created) >= lifetime {
            return Some(EvictReason::MaxLifetime);
        }
    }
    let idle_timeout = match (config.idle_timeout, tracked.idle_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(timeout) = idle_timeout {
        let idle_for = idle_since.map_or(Duration::ZERO, |s| now.since(s));
        // A zero timeout means "never reuse", even when no time has passed.
        if timeout.is_zero() || idle_for >= timeout {
            return Some(EvictReason::IdleTimeout);
        }
    }
    None
}

/// What a waiter receives.
pub(crate) enum Grant<K, C> {
    /// A connection given back at a message boundary; the waiter owns its
    /// checked-out unit.
    Conn(Tracked<K, C>),
    /// The right to open a connection with this id; the waiter owns a
    /// connecting unit.
    Permit(ConnId),
    /// The wait deadline passed; the key's state at that moment.
    Expired(KeyStats),
}

struct Waiter<K, C> {
    id: u64,
    tx: oneshot::Sender<Grant<K, C>>,
    /// When its wait ends. Every waiter of a pool waits `wait_timeout`, so
    /// a queue is in deadline order and only its front needs watching.
    deadline: tokio::time::Instant,
}

/// Callers waiting for a key, oldest first.
pub(crate) struct Waiters<K, C> {
    queue: VecDeque<Waiter<K, C>>,
}

impl<K, C> Waiters<K, C> {
    /// Dequeues the oldest waiter still listening (one whose future was
    /// dropped but has not yet removed itself is skipped). The grant is
    /// sent after the lock, through an [`Aftermath`].
    fn pop_live(&mut self) -> Option<oneshot::Sender<Grant<K, C>>> {
        while let Some(waiter) = self.queue.pop_front() {
            if !waiter.tx.is_closed() {
                return Some(waiter.tx);
            }
        }
        None
    }
}

/// A grant on its way to a dequeued waiter. It is sent after the pool's
/// lock is released, because sending wakes the waiter's task, which may
/// mean waking another thread: no reason to hold every other caller up
/// meanwhile. If the waiter was cancelled in between, the send fails and
/// the grant is handed back as if unused.
pub(crate) struct Handoff<K, C> {
    pub tx: oneshot::Sender<Grant<K, C>>,
    pub grant: Grant<K, C>,
    /// The key of a [`Grant::Permit`] (a connection carries its own).
    pub key: Option<K>,
}

/// Everything the pool tracks for one key.
pub(crate) struct KeyState<K, C> {
    idle: IdleList<K, C>,
    checked_out: usize,
    connecting: usize,
    waiters: Waiters<K, C>,
}

impl<K, C> KeyState<K, C> {
    fn new() -> Self {
        KeyState {
            idle: IdleList {
                entries: VecDeque::new(),
            },
            checked_out: 0,
            connecting: 0,
            waiters: Waiters {
                queue: VecDeque::new(),
            },
        }
    }

    pub(crate) fn stats(&self) -> KeyStats {
        KeyStats {
            idle: self.idle.len(),
            checked_out: self.checked_out,
            connecting: self.connecting,
            waiters: self.waiters.queue.len(),
        }
    }

    fn is_unused(&self) -> bool {
        self.idle.len() == 0
            && self.checked_out == 0
            && self.connecting == 0
            && self.waiters.queue.is_empty()
    }
}

/// A checkout being watched for leaks.
pub(crate) struct CheckoutRecord<K> {
    pub key: K,
    pub conn: ConnId,
    pub since: Stamp,
    pub location: &'static Location<'static>,
    pub reported: bool,
}

/// What [`State::take`] gave the caller.
pub(crate) enum Take<K, C> {
    /// An idle connection, now checked out by the caller, which must still
    /// run the manager's check on it.
    Idle {
        tracked: Tracked<K, C>,
        idle_for: Duration,
    },
    /// A connecting unit: open connection `id`.
    Connect(ConnId),
    /// The key is at its cap: wait on `rx`; `id` names the wait. When
    /// `wake_timer` is set, the pool's timer task was idle and must be woken
    /// to watch the new deadline.
    Wait {
        id: u64,
        rx: oneshot::Receiver<Grant<K, C>>,
        waiters: usize,
        wake_timer: bool,
    },
    /// Too many waiters already; the key's state is attached.
    Refused(KeyStats),
}

/// Work left for after the lock is released.
pub(crate) struct Aftermath<K, C> {
    /// Connections to close, and why.
    pub closing: Vec<(Tracked<K, C>, CloseReason)>,
    /// Checkouts to report as suspected leaks: key, connection, held for,
    /// where taken.
    pub leaks: Vec<(K, ConnId, Duration, &'static Location<'static>)>,
    /// Grants to send to waiters. One operation hands over at most one in
    /// practice, so the first is kept inline: no allocation on the path
    /// where waiters take turns.
    pub handoff: Option<Handoff<K, C>>,
    pub more_handoffs: Vec<Handoff<K, C>>,
}

impl<K, C> Aftermath<K, C> {
    pub(crate) fn new() -> Self {
        Aftermath {
            closing: Vec::new(),
            leaks: Vec::new(),
            handoff: None,
            more_handoffs: Vec::new(),
        }
    }

    /// Nothing was left for after the lock.
    pub(crate) fn is_empty(&self) -> bool {
        self.handoff.is_none()
            && self.closing.is_empty()
            && self.leaks.is_empty()
            && self.more_handoffs.is_empty()
    }

    fn hand_off(&mut self, handoff: Handoff<K, C>) {
        match self.handoff {
            None => self.handoff = Some(handoff),
            Some(_) => self.more_handoffs.push(handoff),
        }
    }
}

/// Scalars kept apart from the key map so both can be borrowed at once.
struct Totals {
    idle: usize,
    next_conn_id: ConnId,
    next_waiter_id: u64,
    counters: Counters,
    /// Idle connections handed out (to callers or waiters) before their
    /// check; `reused` is this minus the ones that failed it.
    idle_taken: u64,
    failed_check: u64,
}

impl Totals {
    /// Queues `tracked` to be closed as evicted for `reason`.
    fn evict<K, C>(
        &mut self,
        tracked: Tracked<K, C>,
        reason: EvictReason,
        after: &mut Aftermath<K, C>,
    ) {
        self.counters.evicted_by_reason[reason.index()] += 1;
        self.counters.closed += 1;
        after.closing.push((tracked, CloseReason::Evicted(reason)));
    }

    fn conn_id(&mut self) -> ConnId {
        self.next_conn_id += 1;
        self.next_conn_id
    }
}

/// All of a pool's mutable state; lives behind one mutex.
pub(crate) struct State<K, C> {
    /// foldhash: a few ns per lookup instead of SipHash's ~15, and still
    /// seeded per map, since keys may come from requests (a Host header).
    keys: HashMap<K, KeyState<K, C>, RandomState>,
    totals: Totals,
    /// Open checkouts, tracked only when leak detection is on.
    checkouts: Slab<CheckoutRecord<K>>,
    /// Whether the timer task knows of a waiter deadline to watch.
    timer_armed: bool,
}

impl<K: Clone + Eq + Hash, C> State<K, C> {
    pub(crate) fn new() -> Self {
        State {
            keys: HashMap::default(),
            totals: Totals {
                idle: 0,
                next_conn_id: 0,
                next_waiter_id: 0,
                counters: Counters::default(),
                idle_taken: 0,
                failed_check: 0,
            },
            checkouts: Slab::new(),
            timer_armed: false,
        }
    }

    /// Serves a checkout. `failed` is the caller's connection that just
    /// failed the manager's check, and why: it is evicted, and the caller
    /// trades its unit for the next idle connection or a connecting unit,
    /// never waits, and so keeps its place ahead of the waiters.
    pub(crate) fn take(
        &mut self,
        config: &PoolConfig,
        key: &K,
        failed: Option<(Tracked<K, C>, EvictReason)>,
        location: &'static Location<'static>,
        now: Stamp,
        after: &mut Aftermath<K, C>,
    ) -> Take<K, C> {
        let ks = match self.keys.get_mut(key) {
            Some(ks) => ks,
            None => self.keys.entry(key.clone()).or_insert_with(KeyState::new),
        };
        let totals = &mut self.totals;
        let holding = failed.is_some();
        if let Some((mut tracked, reason)) = failed {
            untrack_checkout(&mut self.checkouts, &mut tracked);
            ks.checked_out -= 1;
            totals.failed_check += 1;
            totals.evict(tracked, reason, after);
        }
        while let Some(entry) = ks.idle.entries.pop_back() {
            totals.idle -= 1;
            if let Some(reason) = expiry(config, &entry.tracked, Some(entry.since), now) {
                totals.evict(entry.tracked, reason, after);
                continue;
            }
            ks.checked_out += 1;
            totals.idle_taken += 1;
            let mut tracked = entry.tracked;
            tracked.uses += 1;
            track_checkout(&mut self.checkouts, config, &mut tracked, location, now);
            return Take::Idle {
                tracked,
                idle_for: now.since(entry.since),
            };
        }
        let at_cap = ks.idle.len() + ks.checked_out + ks.connecting >= config.max_conns_per_key;
        if holding || (!at_cap && ks.waiters.queue.is_empty()) {
            ks.connecting += 1;
            return Take::Connect(totals.conn_id());
        }
        if ks.waiters.queue.len() >= config.max_waiters_per_key {
            totals.counters.refused += 1;
            return Take::Refused(ks.stats());
        }
        let (tx, rx) = oneshot::channel();
        totals.next_waiter_id += 1;
        let id = totals.next_waiter_id;
        let deadline = tokio::time::Instant::now() + config.wait_timeout;
        ks.waiters.queue.push_back(Waiter { id, tx, deadline });
        totals.counters.waits += 1;
        let wake_timer = !self.timer_armed;
        self.timer_armed = true;
        Take::Wait {
            id,
            rx,
            waiters: ks.waiters.queue.len(),
            wake_timer,
        }
    }

    /// A connect of `key` succeeded: its connecting unit becomes checked out.
    /// Evicts a checked-out connection and turns its unit into a connecting
    /// one, for [`Pool::reconnect`](super::Pool::reconnect).
    pub(crate) fn trade_for_connect(
        &mut self,
        mut tracked: Tracked<K, C>,
        reason: EvictReason,
        after: &mut Aftermath<K, C>,
    ) -> ConnId {
        untrack_checkout(&mut self.checkouts, &mut tracked);
        let ks = self
            .keys
            .get_mut(&tracked.key)
            .expect("a checked-out connection's key is known");
        ks.checked_out -= 1;
        ks.connecting += 1;
        self.totals.evict(tracked, reason, after);
        self.totals.conn_id()
    }

    pub(crate) fn connected(
        &mut self,
        config: &PoolConfig,
        tracked: &mut Tracked<K, C>,
        location: &'static Location<'static>,
        now: Stamp,
    ) {
        let ks = self
            .keys
            .get_mut(&tracked.key)
            .expect("connecting key is tracked");
        ks.connecting -= 1;
        ks.checked_out += 1;
        self.totals.counters.created += 1;
        track_checkout(&mut self.checkouts, config, tracked, location, now);
    }

    /// A connect of `key` failed or was cancelled: its unit is freed.
    pub(crate) fn connect_abandoned(&mut self, key: &K, failed: bool, after: &mut Aftermath<K, C>) {
        if failed {
            self.totals.counters.connect_failed += 1;
        }
        let ks = self.keys.get_mut(key).expect("connecting key is tracked");
        ks.connecting -= 1;
        self.free_unit(key, after);
    }

    /// `tracked` comes back at a message boundary: to the oldest waiter, to
    /// the idle list, or — when it may not be reused — closed.
    pub(crate) fn give_back(
        &mut self,
        config: &PoolConfig,
        mut tracked: Tracked<K, C>,
        now: Stamp,
        after: &mut Aftermath<K, C>,
    ) {
        untrack_checkout(&mut self.checkouts, &mut tracked);
        self.totals.counters.returned += 1;
        let ks = self
            .keys
            .get_mut(&tracked.key)
            .expect("checked-out key is tracked");
        if let Some(reason) = expiry(config, &tracked, None, now) {
            ks.checked_out -= 1;
            let key = tracked.key.clone();
            self.totals.evict(tracked, reason, after);
            self.free_unit(&key, after);
            return;
        }
        if let Some(tx) = ks.waiters.pop_live() {
            // The unit stays checked out: the waiter takes it over, and
            // starts its own leak record when it wakes.
            tracked.uses += 1;
            self.totals.idle_taken += 1;
            after.hand_off(Handoff {
                tx,
                grant: Grant::Conn(tracked),
                key: None,
            });
            return;
        }
        ks.checked_out -= 1;
        ks.idle.entries.push_back(IdleEntry {
            tracked,
            since: now,
        });
        self.totals.idle += 1;
        if ks.idle.len() > config.max_idle_per_key {
            let oldest = ks.idle.pop_oldest().expect("list is over its cap");
            let key = oldest.key.clone();
            self.totals.idle -= 1;
            self.totals.evict(oldest, EvictReason::PoolFull, after);
            self.forget_if_unused(&key);
        }
        if self.totals.idle > config.max_idle_total {
            self.evict_least_recently_used(after);
        }
    }

    /// A checked-out connection is closed (dropped, discarded, detached):
    /// its unit is freed.
    pub(crate) fn close_checked_out(
        &mut self,
        tracked: &mut Tracked<K, C>,
        reason: CloseReason,
        after: &mut Aftermath<K, C>,
    ) {
        untrack_checkout(&mut self.checkouts, tracked);
        if reason == CloseReason::Dropped {
            self.totals.counters.dropped += 1;
        }
        self.totals.counters.closed += 1;
        let ks = self
            .keys
            .get_mut(&tracked.key)
            .expect("checked-out key is tracked");
        ks.checked_out -= 1;
        self.free_unit(&tracked.key, after);
    }

    /// A waiter stopped waiting without its grant: its future was dropped,
    /// or (`timed_out`) it timed itself because the pool's task was not
    /// running. Returns false when it was no longer queued: a grant may be
    /// in its channel, and the caller must take it out and hand it back.
    pub(crate) fn cancel_wait(&mut self, key: &K, id: u64, timed_out: bool) -> bool {
        if timed_out {
            self.totals.counters.wait_timeouts += 1;
        }
        let Some(ks) = self.keys.get_mut(key) else {
            return false;
        };
        let Some(at) = ks.waiters.queue.iter().position(|w| w.id == id) else {
            return false;
        };
        ks.waiters.queue.remove(at);
        self.forget_if_unused(key);
        true
    }

    /// A waiter received a connection it can no longer use (its future was
    /// dropped with the grant in its channel): pass it on as if given back.
    pub(crate) fn return_unused_grant(
        &mut self,
        config: &PoolConfig,
        key: &K,
        grant: Grant<K, C>,
        now: Stamp,
        after: &mut Aftermath<K, C>,
    ) {
        match grant {
            Grant::Conn(mut tracked) => {
                // Not a use after all, nor a return by a caller.
                tracked.uses -= 1;
                self.totals.idle_taken -= 1;
                self.totals.counters.returned -= 1;
                self.give_back(config, tracked, now, after);
            }
            Grant::Permit(_) => self.connect_abandoned(key, false, after),
            Grant::Expired(_) => {}
        }
    }

    /// Ends the waits whose deadline has passed, and returns the next
    /// deadline to watch, if any waiter is left.
    pub(crate) fn expire_waiters(
        &mut self,
        now: tokio::time::Instant,
    ) -> Option<tokio::time::Instant> {
        let mut next: Option<tokio::time::Instant> = None;
        let mut expired = false;
        for ks in self.keys.values_mut() {
            while let Some(front) = ks.waiters.queue.front() {
                if front.deadline > now {
                    next = Some(next.map_or(front.deadline, |n| n.min(front.deadline)));
                    break;
                }
                let waiter = ks.waiters.queue.pop_front().expect("front exists");
                self.totals.counters.wait_timeouts += 1;
                expired = true;
                // A waiter already gone needs no answer.
                let _ = waiter.tx.send(Grant::Expired(ks.stats()));
            }
        }
        if expired {
            self.keys.retain(|_, ks| !ks.is_unused());
        }
        self.timer_armed = next.is_some();
        next
    }

    /// Starts leak tracking for a connection a waiter received.
    pub(crate) fn begin_granted_checkout(
        &mut self,
        config: &PoolConfig,
        tracked: &mut Tracked<K, C>,
        location: &'static Location<'static>,
        now: Stamp,
    ) {
        track_checkout(&mut self.checkouts, config, tracked, location, now);
    }

    /// Evicts expired idle connections, forgets unused keys and reports
    /// checkouts held past the leak threshold.
    pub(crate) fn reap(&mut self, config: &PoolConfig, now: Stamp, after: &mut Aftermath<K, C>) {
        let totals = &mut self.totals;
        for ks in self.keys.values_mut() {
            ks.idle.drain_expired(config, now, |tracked, reason| {
                totals.idle -= 1;
                totals.evict(tracked, reason, after);
            });
        }
        self.keys.retain(|_, ks| !ks.is_unused());
        if let Some(threshold) = config.leak_threshold {
            for (_, record) in self.checkouts.iter_mut() {
                let held = now.since(record.since);
                if !record.reported && held >= threshold {
                    record.reported = true;
                    self.totals.counters.leaks_reported += 1;
                    after
                        .leaks
                        .push((record.key.clone(), record.conn, held, record.location));
                }
            }
        }
    }

    /// Takes every idle connection out, for the pool's drop.
    pub(crate) fn drain_idle(&mut self) -> Vec<Tracked<K, C>> {
        let mut all = Vec::new();
        for ks in self.keys.values_mut() {
            while let Some(tracked) = ks.idle.pop_oldest() {
                all.push(tracked);
            }
        }
        self.totals.idle = 0;
        all
    }

    pub(crate) fn key_stats(&self, key: &K) -> KeyStats {
        self.keys.get(key).map(KeyState::stats).unwrap_or_default()
    }

    pub(crate) fn all_stats(&self) -> (KeyStats, HashMap<K, KeyStats>, Counters) {
        let mut total = KeyStats::default();
        let keys = self
            .keys
            .iter()
            .map(|(k, ks)| {
                let s = ks.stats();
                total.add(&s);
                (k.clone(), s)
            })
            .collect();
        let mut counters = self.totals.counters;
        counters.reused = self.totals.idle_taken - self.totals.failed_check;
        (total, keys, counters)
    }

    /// `max_idle_total` is exceeded: evict the least recently used idle
    /// connection of any key. This scans the keys that have idle
    /// connections, so it costs O(keys) — paid only when the total cap is
    /// hit, and cheaper than keeping a global LRU order on every checkout.
    fn evict_least_recently_used(&mut self, after: &mut Aftermath<K, C>) {
        let oldest_key = self
            .keys
            .iter()
            .filter_map(|(k, ks)| ks.idle.oldest_since().map(|since| (since, k)))
            .min_by_key(|(since, _)| *since)
            .map(|(_, k)| k.clone());
        let Some(key) = oldest_key else { return };
        let ks = self.keys.get_mut(&key).expect("found above");
        let tracked = ks.idle.pop_oldest().expect("has idle");
        self.totals.idle -= 1;
        self.totals.evict(tracked, EvictReason::PoolFull, after);
        self.free_unit(&key, after);
    }

    /// One unit of `key` was freed: it goes to the oldest live waiter as a
    /// permit to connect, or the key is forgotten if now unused.
    fn free_unit(&mut self, key: &K, after: &mut Aftermath<K, C>) {
        let Some(ks) = self.keys.get_mut(key) else {
            return;
        };
        if let Some(tx) = ks.waiters.pop_live() {
            ks.connecting += 1;
            after.hand_off(Handoff {
                tx,
                grant: Grant::Permit(self.totals.conn_id()),
                key: Some(key.clone()),
            });
            return;
        }
        self.forget_if_unused(key);
    }

    fn forget_if_unused(&mut self, key: &K) {
        if self.keys.get(key).is_some_and(KeyState::is_unused) {
            self.keys.remove(key);
        }
    }
}

fn track_checkout<K: Clone, C>(
    checkouts: &mut Slab<CheckoutRecord<K>>,
    config: &PoolConfig,
    tracked: &mut Tracked<K, C>,
    location: &'static Location<'static>,
    now: Stamp,
) {
    if config.leak_threshold.is_some() {
        tracked.checkout = Some(checkouts.insert(CheckoutRecord {
            key: tracked.key.clone(),
            conn: tracked.id,
            since: now,
            location,
            reported: false,
        }));
    }
}

fn untrack_checkout<K, C>(checkouts: &mut Slab<CheckoutRecord<K>>, tracked: &mut Tracked<K, C>) {
    if let Some(slot) = tracked.checkout.take() {
        checkouts.remove(slot);
    }
}
