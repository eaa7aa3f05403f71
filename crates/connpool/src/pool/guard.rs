//! [`PooledConn`]: a checked-out connection, and the rule that it goes back
//! to the pool only at a message boundary.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use super::clock::Stamp;
use super::state::{Aftermath, Tracked};
use super::{Key, Manager, Shared};
use crate::CloseReason;
use crate::events::{ConnId, EventKind};

/// A connection checked out of a [`Pool`](crate::Pool). It dereferences to
/// the connection.
///
/// **It goes back to the pool only through [`release`](Self::release)**,
/// which the caller calls when the connection is at a message boundary
/// (the request fully written, the response fully read, no error seen).
/// Dropping the guard any other way closes the connection and frees its
/// slot: after an error, an early return or a cancelled future, nobody can
/// tell what half-message is still in flight on it, and reusing it would
/// hand the next caller someone else's bytes. The easy path is the safe one.
///
/// ```
/// # use connpool::{Error, Manager, Pool};
/// # struct M; impl Manager<u8> for M { type Conn = String; async fn connect(&self, _: &u8) -> Result<String, Error> { Ok(String::new()) } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// let pool = Pool::new(M);
/// let mut conn = pool.get(&1).await?;
/// conn.push_str("request");      // use it through DerefMut
/// conn.release();                // message boundary: back to the pool
///
/// let conn = pool.get(&1).await?;
/// drop(conn);                    // not released: closed, slot freed
/// assert_eq!(pool.stats().counters.dropped, 1);
/// # Ok(()) }
/// ```
pub struct PooledConn<K: Key, M: Manager<K>> {
    shared: Arc<Shared<K, M>>,
    /// `None` once released, discarded, detached or disarmed.
    tracked: Option<Tracked<K, M::Conn>>,
    idle_for: Duration,
    checked_out_at: Stamp,
}

impl<K: Key, M: Manager<K>> PooledConn<K, M> {
    pub(super) fn new(
        shared: Arc<Shared<K, M>>,
        tracked: Tracked<K, M::Conn>,
        idle_for: Duration,
        checked_out_at: Stamp,
    ) -> Self {
        PooledConn {
            shared,
            tracked: Some(tracked),
            idle_for,
            checked_out_at,
        }
    }

    fn tracked(&self) -> &Tracked<K, M::Conn> {
        self.tracked
            .as_ref()
            .expect("a live guard holds its connection")
    }

    /// Takes the connection out without touching the pool's counts; the
    /// caller takes over its unit.
    pub(super) fn disarm(mut self) -> Tracked<K, M::Conn> {
        self.tracked
            .take()
            .expect("a live guard holds its connection")
    }

    /// The connection's id in events.
    pub fn id(&self) -> ConnId {
        self.tracked().id
    }

    /// The key it was checked out for.
    pub fn key(&self) -> &K {
        &self.tracked().key
    }

    /// True when this connection served an earlier checkout: a failure on
    /// it may be the keep-alive race, and a retry on a fresh connection may
    /// be in order. False for a connection opened for this checkout.
    pub fn is_reused(&self) -> bool {
        self.tracked().uses > 1
    }

    /// How many checkouts this connection has served, this one included.
    pub fn uses(&self) -> u64 {
        self.tracked().uses
    }

    /// How long it sat idle before this checkout (zero for a new one, or
    /// one handed straight from another caller).
    pub fn idle_for(&self) -> Duration {
        self.idle_for
    }

    /// How long since it was opened.
    pub fn age(&self) -> Duration {
        self.shared.config.clock.now().since(self.tracked().created)
    }

    /// How long it has been checked out.
    pub fn held_for(&self) -> Duration {
        self.shared.config.clock.now().since(self.checked_out_at)
    }

    /// Caps this connection's idle timeout below the pool's, for example
    /// from a server's `Keep-Alive: timeout=N` hint. `Duration::ZERO` means
    /// it will not be reused.
    pub fn set_idle_timeout(&mut self, timeout: Duration) {
        let tracked = self
            .tracked
            .as_mut()
            .expect("a live guard holds its connection");
        tracked.idle_timeout = Some(tracked.idle_timeout.map_or(timeout, |t| t.min(timeout)));
    }

    /// Gives the connection back to the pool. Call it only at a message
    /// boundary: nothing of a request or response left in flight, no error
    /// seen. It goes to the oldest waiter, or becomes idle; it is closed
    /// instead if it may not be reused (lifetime reached, idle timeout of
    /// zero).
    pub fn release(mut self) {
        let tracked = self
            .tracked
            .take()
            .expect("a live guard holds its connection");
        let shared = &*self.shared;
        shared.emit(&tracked.key, Some(tracked.id), EventKind::Returned);
        let mut after = Aftermath::new();
        shared.lock().give_back(
            &shared.config,
            tracked,
            shared.config.clock.now(),
            &mut after,
        );
        shared.finish(after);
    }

    /// Closes the connection because the caller knows it is unusable (a
    /// protocol error, say). Same as dropping the guard, but counted as
    /// [`CloseReason::Discarded`] rather than [`CloseReason::Dropped`].
    pub fn discard(mut self) {
        self.close(CloseReason::Discarded);
    }

    /// Takes the connection out of the pool for good (for a protocol
    /// upgrade, say). Its slot is freed.
    pub fn detach(mut self) -> M::Conn {
        let mut tracked = self
            .tracked
            .take()
            .expect("a live guard holds its connection");
        let shared = &*self.shared;
        let mut after = Aftermath::new();
        shared
            .lock()
            .close_checked_out(&mut tracked, CloseReason::Detached, &mut after);
        shared.finish(after);
        shared.emit(
            &tracked.key,
            Some(tracked.id),
            EventKind::Closed {
                reason: CloseReason::Detached,
            },
        );
        tracked.conn
    }

    fn close(&mut self, reason: CloseReason) {
        let Some(mut tracked) = self.tracked.take() else {
            return;
        };
        let shared = &*self.shared;
        let mut after = Aftermath::new();
        shared
            .lock()
            .close_checked_out(&mut tracked, reason, &mut after);
        shared.finish(after);
        shared.emit(&tracked.key, Some(tracked.id), EventKind::Closed { reason });
        drop(tracked);
    }
}

impl<K: Key, M: Manager<K>> Drop for PooledConn<K, M> {
    fn drop(&mut self) {
        self.close(CloseReason::Dropped);
    }
}

impl<K: Key, M: Manager<K>> Deref for PooledConn<K, M> {
    type Target = M::Conn;
    fn deref(&self) -> &M::Conn {
        &self.tracked().conn
    }
}

impl<K: Key, M: Manager<K>> DerefMut for PooledConn<K, M> {
    fn deref_mut(&mut self) -> &mut M::Conn {
        &mut self
            .tracked
            .as_mut()
            .expect("a live guard holds its connection")
            .conn
    }
}

impl<K: Key, M: Manager<K>> fmt::Debug for PooledConn<K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tracked {
            Some(t) => f
                .debug_struct("PooledConn")
                .field("key", &t.key)
                .field("id", &t.id)
                .field("uses", &t.uses)
                .finish(),
            None => f.write_str("PooledConn(released)"),
        }
    }
}
