//! The keyed pool's rules, on an in-memory connection type: reuse order,
//! caps, waiters, expiry, eviction, events and counters. (Socket-level
//! behaviour is in `tcp.rs`.)

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{MemManager, Recorder, normalized};
use connpool::{
    Clock, CloseReason, ErrorKind, EventKind, EvictReason, Pool, PoolConfig, WaitOutcome,
};

fn pool_with(config: PoolConfig) -> (Pool<&'static str, MemManager>, MemManager) {
    let manager = MemManager::default();
    (
        Pool::builder(manager.clone())
            .config(PoolConfig {
                clock: Clock::Tokio,
                ..config
            })
            .build(),
        manager,
    )
}

#[tokio::test]
async fn reuses_most_recently_returned_first() {
    let (pool, _) = pool_with(PoolConfig::default());
    let a = pool.get(&"k").await.unwrap();
    let b = pool.get(&"k").await.unwrap();
    let (sa, sb) = (a.serial, b.serial);
    assert!(!a.is_reused());
    a.release();
    b.release();
    let c = pool.get(&"k").await.unwrap();
    assert_eq!(c.serial, sb, "LIFO: the last returned comes out first");
    assert!(c.is_reused());
    assert_eq!(c.uses(), 2);
    let d = pool.get(&"k").await.unwrap();
    assert_eq!(d.serial, sa);
    let stats = pool.stats();
    assert_eq!(stats.counters.created, 2);
    assert_eq!(stats.counters.reused, 2);
    assert_eq!(stats.counters.returned, 2);
    assert_eq!(stats.total.checked_out, 2);
}

#[tokio::test]
async fn dropping_a_guard_closes_instead_of_returning() {
    let (pool, manager) = pool_with(PoolConfig::default());
    let mut conn = pool.get(&"k").await.unwrap();
    conn.dirty = true; // a request is half-written...
    drop(conn); // ...and the caller bails out
    let stats = pool.stats();
    assert_eq!(stats.total.idle, 0, "a dropped guard must not be pooled");
    assert_eq!(stats.counters.dropped, 1);
    assert_eq!(stats.counters.closed, 1);
    assert_eq!(manager.lives.alive.load(Ordering::SeqCst), 0);
    assert!(stats.keys.is_empty(), "the unused key is forgotten");
    let fresh = pool.get(&"k").await.unwrap();
    assert!(!fresh.dirty && !fresh.is_reused());
}

#[tokio::test]
async fn discard_and_detach_free_the_slot() {
    let (pool, manager) = pool_with(PoolConfig {
        max_conns_per_key: 1,
        ..Default::default()
    });
    pool.get(&"k").await.unwrap().discard();
    let conn = pool.get(&"k").await.unwrap().detach();
    assert_eq!(pool.key_stats(&"k").total(), 0);
    assert_eq!(
        manager.lives.alive.load(Ordering::SeqCst),
        1,
        "detached conn is the caller's"
    );
    drop(conn);
    assert_eq!(pool.stats().counters.closed, 2);
    assert!(pool.get(&"k").await.is_ok(), "the cap of 1 is free again");
}

#[tokio::test]
async fn cap_counts_connects_in_flight() {
    let (manager, gate) = MemManager::gated();
    let pool = Pool::builder(manager)
        .clock(connpool::Clock::Tokio)
        .max_conns_per_key(2)
        .build();
    let p1 = pool.clone();
    let p2 = pool.clone();
    let p3 = pool.clone();
    let t1 = tokio::spawn(async move { p1.get(&"k").await.map(|c| c.release()) });
    let t2 = tokio::spawn(async move { p2.get(&"k").await.map(|c| c.release()) });
    while pool.key_stats(&"k").connecting < 2 {
        tokio::task::yield_now().await;
    }
    let t3 = tokio::spawn(async move { p3.get(&"k").await.map(|c| c.release()) });
    while pool.key_stats(&"k").waiters < 1 {
        tokio::task::yield_now().await;
    }
    let s = pool.key_stats(&"k");
    assert_eq!((s.connecting, s.waiters, s.checked_out), (2, 1, 0));
    gate.add_permits(2);
    t1.await.unwrap().unwrap();
    t2.await.unwrap().unwrap();
    t3.await.unwrap().unwrap();
    assert_eq!(pool.stats().counters.created, 2, "the waiter reused one");
}

#[tokio::test]
async fn waiters_are_served_first_come_first_served() {
    let (pool, _) = pool_with(PoolConfig {
        max_conns_per_key: 1,
        ..Default::default()
    });
    let held = pool.get(&"k").await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (pool2, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let conn = pool2.get(&"k").await.unwrap();
            order.lock().unwrap().push(i);
            conn.release();
        }));
        // Queue them in a known order.
        while pool.key_stats(&"k").waiters < i + 1 {
            tokio::task::yield_now().await;
        }
    }
    held.release();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
    assert_eq!(pool.stats().counters.created, 1);
}

#[tokio::test(start_paused = true)]
async fn wait_timeout_names_the_bound_and_state() {
    let (pool, _) = pool_with(PoolConfig {
        max_conns_per_key: 1,
        wait_timeout: Duration::from_millis(250),
        ..Default::default()
    });
    let _held = pool.get(&"k").await.unwrap();
    let started = tokio::time::Instant::now();
    let err = pool.get(&"k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PoolWaitTimeout);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(err.is_pool_limit() && err.is_timeout());
    assert_eq!(err.key(), Some("\"k\""));
    let state = err.pool_state().unwrap();
    assert_eq!((state.checked_out, state.waiters), (1, 0));
    let text = err.to_string();
    assert!(text.contains("max_conns_per_key=1"), "{text}");
    assert_eq!(pool.stats().counters.wait_timeouts, 1);
    assert_eq!(pool.key_stats(&"k").waiters, 0);
}

#[tokio::test]
async fn too_many_waiters_are_refused_at_once() {
    let (pool, _) = pool_with(PoolConfig {
        max_conns_per_key: 1,
        max_waiters_per_key: 2,
        ..Default::default()
    });
    let held = pool.get(&"k").await.unwrap();
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let p = pool.clone();
        waiting.push(tokio::spawn(async move {
            p.get(&"k").await.map(|c| c.release())
        }));
    }
    while pool.key_stats(&"k").waiters < 2 {
        tokio::task::yield_now().await;
    }
    let err = pool.get(&"k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyWaiters);
    assert!(err.to_string().contains("max_waiters_per_key=2"), "{err}");
    assert_eq!(err.pool_state().unwrap().waiters, 2);
    assert_eq!(pool.stats().counters.refused, 1);
    held.release();
    for w in waiting {
        w.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_cancelled_waiter_never_takes_the_slot() {
    let (pool, _) = pool_with(PoolConfig {
        max_conns_per_key: 1,
        ..Default::default()
    });
    let held = pool.get(&"k").await.unwrap();
    let p = pool.clone();
    let first = tokio::spawn(async move { p.get(&"k").await.map(|c| c.release()) });
    while pool.key_stats(&"k").waiters < 1 {
        tokio::task::yield_now().await;
    }
    let p = pool.clone();
    let second = tokio::spawn(async move { p.get(&"k").await.map(|c| c.serial) });
    while pool.key_stats(&"k").waiters < 2 {
        tokio::task::yield_now().await;
    }
    first.abort();
    let _ = first.await;
    assert_eq!(pool.key_stats(&"k").waiters, 1);
    let serial = held.serial;
    held.release();
    assert_eq!(second.await.unwrap().unwrap(), serial);
}

#[tokio::test]
async fn a_grant_to_a_waiter_dropped_after_it_was_sent_is_passed_on() {
    // A waiter is dequeued and sent a connection, then dropped before it
    // runs: the connection must go back (here: to the next waiter).
    let (pool, _) = pool_with(PoolConfig {
        max_conns_per_key: 1,
        ..Default::default()
    });
    let held = pool.get(&"k").await.unwrap();
    let mut first = Box::pin(pool.get(&"k"));
    assert!(futures_poll_once(first.as_mut()).await.is_none());
    let p = pool.clone();
    let second = tokio::spawn(async move { p.get(&"k").await.map(|c| c.release()) });
    while pool.key_stats(&"k").waiters < 2 {
        tokio::task::yield_now().await;
    }
    held.release(); // sent to `first`, which is never polled again
    drop(first);
    second.await.unwrap().unwrap();
    let stats = pool.stats();
    assert_eq!(stats.total.idle, 1);
    assert_eq!(stats.counters.created, 1);
    assert_eq!(stats.total.checked_out + stats.total.waiters, 0);
}

/// Polls a future once; `Some` if it finished.
async fn futures_poll_once<F: std::future::Future>(
    fut: std::pin::Pin<&mut F>,
) -> Option<F::Output> {
    let mut fut = Some(fut);
    std::future::poll_fn(move |cx| {
        let f = fut.take().unwrap();
        std::task::Poll::Ready(match f.poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test]
async fn a_cancelled_connect_frees_its_slot() {
    let (manager, gate) = MemManager::gated();
    let pool = Pool::builder(manager)
        .clock(connpool::Clock::Tokio)
        .max_conns_per_key(1)
        .build();
    let p = pool.clone();
    let connecting = tokio::spawn(async move { p.get(&"k").await.map(|c| c.release()) });
    while pool.key_stats(&"k").connecting < 1 {
        tokio::task::yield_now().await;
    }
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.get(&"k").await.map(|c| c.release()) });
    while pool.key_stats(&"k").waiters < 1 {
        tokio::task::yield_now().await;
    }
    connecting.abort();
    let _ = connecting.await;
    gate.add_permits(1);
    waiter.await.unwrap().unwrap();
    assert_eq!(pool.stats().counters.created, 1);
}

#[tokio::test]
async fn connect_errors_carry_the_key_and_free_the_slot() {
    let (pool, manager) = pool_with(PoolConfig {
        max_conns_per_key: 1,
        ..Default::default()
    });
    manager.fail_connects.store(true, Ordering::SeqCst);
    let err = pool.get(&"db").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectRefused);
    assert!(err.is_connect());
    assert_eq!(err.key(), Some("\"db\""));
    assert_eq!(pool.stats().counters.connect_failed, 1);
    assert!(pool.stats().keys.is_empty());
    manager.fail_connects.store(false, Ordering::SeqCst);
    assert!(pool.get(&"db").await.is_ok());
}

#[tokio::test]
async fn a_connection_failing_its_check_is_evicted_and_the_next_tried() {
    let recorder = Recorder::default();
    let manager = MemManager::default();
    let pool = Pool::builder(manager.clone())
        .clock(connpool::Clock::Tokio)
        .observer(recorder.observer())
        .build();
    let a = pool.get(&"k").await.unwrap();
    let b = pool.get(&"k").await.unwrap();
    let (a_serial, broken_b) = (a.serial, b.broken.clone());
    a.release();
    b.release(); // b is most recent, so tried first
    broken_b.store(true, Ordering::SeqCst);
    recorder.take();
    let conn = pool.get(&"k").await.unwrap();
    assert_eq!(conn.serial, a_serial);
    assert_eq!(
        normalized(recorder.take()),
        vec![
            EventKind::Evicted {
                reason: EvictReason::ServerClosed
            },
            EventKind::Closed {
                reason: CloseReason::Evicted(EvictReason::ServerClosed)
            },
            EventKind::Reused {
                idle_for: Duration::ZERO,
                previous_uses: 1
            },
        ]
    );
    let stats = pool.stats();
    assert_eq!(stats.counters.evicted(EvictReason::ServerClosed), 1);
    assert_eq!(stats.counters.reused, 1, "the evicted one was not a reuse");
    assert_eq!(manager.lives.alive.load(Ordering::SeqCst), 1);
    // All idle ones stale: a new one is opened with the same slot.
    conn.broken.store(true, Ordering::SeqCst);
    conn.release();
    let fresh = pool.get(&"k").await.unwrap();
    assert!(!fresh.is_reused());
    assert_ne!(fresh.serial, a_serial);
    let stats = pool.stats();
    assert_eq!(stats.counters.evicted(EvictReason::ServerClosed), 2);
    assert_eq!(stats.total.total(), 1, "the stale one's slot was reused");
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_is_enforced_at_checkout_and_by_the_reaper() {
    let recorder = Recorder::default();
    let pool = Pool::builder(MemManager::default())
        .clock(connpool::Clock::Tokio)
        .idle_timeout(Some(Duration::from_secs(5)))
        .reap_interval(Some(Duration::from_secs(60)))
        .observer(recorder.observer())
        .build();
    pool.get(&"a").await.unwrap().release();
    tokio::time::advance(Duration::from_secs(5)).await;
    let fresh = pool.get(&"a").await.unwrap();
    assert!(!fresh.is_reused(), "expired at checkout");
    fresh.release();
    assert_eq!(pool.stats().counters.evicted(EvictReason::IdleTimeout), 1);

    // Now leave it to the reaper (which runs every 60 s here).
    tokio::time::sleep(Duration::from_secs(61)).await;
    let stats = pool.stats();
    assert_eq!(stats.total.idle, 0, "reaped");
    assert!(stats.keys.is_empty(), "empty keys are forgotten");
    assert_eq!(stats.counters.evicted(EvictReason::IdleTimeout), 2);
    assert_eq!(stats.counters.closed, 2);
}

#[tokio::test(start_paused = true)]
async fn per_connection_idle_timeout_caps_the_pools() {
    let (pool, _) = pool_with(PoolConfig::default());
    let mut conn = pool.get(&"k").await.unwrap();
    conn.set_idle_timeout(Duration::from_secs(2)); // e.g. Keep-Alive: timeout=3 minus a margin
    conn.release();
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(!pool.get(&"k").await.unwrap().is_reused());

    let mut conn = pool.get(&"k").await.unwrap();
    conn.set_idle_timeout(Duration::ZERO); // "do not reuse"
    conn.release();
    assert_eq!(pool.key_stats(&"k").idle, 0);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_stops_reuse() {
    let (pool, _) = pool_with(PoolConfig {
        max_lifetime: Some(Duration::from_secs(10)),
        idle_timeout: None,
        ..Default::default()
    });
    let conn = pool.get(&"k").await.unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    conn.release(); // too old: closed on return
    let stats = pool.stats();
    assert_eq!(stats.total.idle, 0);
    assert_eq!(stats.counters.evicted(EvictReason::MaxLifetime), 1);
}

#[tokio::test]
async fn idle_caps_evict_the_least_recently_used() {
    let (pool, manager) = pool_with(PoolConfig {
        max_idle_per_key: 2,
        max_idle_total: 3,
        ..Default::default()
    });
    let conns: Vec<_> = futures_join(&pool, "a", 3).await;
    let serials: Vec<u64> = conns.iter().map(|c| c.serial).collect();
    for c in conns {
        c.release();
    }
    let s = pool.key_stats(&"a");
    assert_eq!(s.idle, 2, "max_idle_per_key");
    assert_eq!(pool.stats().counters.evicted(EvictReason::PoolFull), 1);
    // The oldest return (serials[0]) was the one evicted.
    let x = pool.get(&"a").await.unwrap();
    let y = pool.get(&"a").await.unwrap();
    assert_eq!((x.serial, y.serial), (serials[2], serials[1]));
    x.release();
    y.release();

    // Two more keys: the total cap of 3 evicts "a"'s oldest, then the next.
    pool.get(&"b").await.unwrap().release();
    assert_eq!(pool.stats().total.idle, 3);
    pool.get(&"c").await.unwrap().release();
    let stats = pool.stats();
    assert_eq!(stats.total.idle, 3);
    assert_eq!(stats.keys[&"a"].idle, 1);
    assert_eq!(stats.counters.evicted(EvictReason::PoolFull), 2);
    assert_eq!(manager.lives.alive.load(Ordering::SeqCst), 3);
}

async fn futures_join(
    pool: &Pool<&'static str, MemManager>,
    key: &'static str,
    n: usize,
) -> Vec<connpool::PooledConn<&'static str, MemManager>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(pool.get(&key).await.unwrap());
    }
    out
}

#[tokio::test]
async fn keys_are_forgotten_when_unused() {
    let (pool, _) = pool_with(PoolConfig {
        max_idle_per_key: 0,
        ..Default::default()
    });
    let keys: Vec<&'static str> = (0..1000)
        .map(|i| &*Box::leak(format!("host-{i}").into_boxed_str()))
        .collect();
    for key in &keys {
        pool.get(key).await.unwrap().release();
    }
    let stats = pool.stats();
    assert!(stats.keys.is_empty(), "{} keys left", stats.keys.len());
    assert_eq!(stats.counters.evicted(EvictReason::PoolFull), 1000);
}

#[tokio::test(start_paused = true)]
async fn leaks_are_reported_once_with_the_checkout_site() {
    let recorder = Recorder::default();
    let pool = Pool::builder(MemManager::default())
        .clock(connpool::Clock::Tokio)
        .leak_threshold(Some(Duration::from_secs(30)))
        .reap_interval(Some(Duration::from_secs(1)))
        .observer(recorder.observer())
        .build();
    let line = line!() + 1;
    let held = pool.get(&"k").await.unwrap();
    let quick = pool.get(&"k").await.unwrap();
    quick.release();
    tokio::time::sleep(Duration::from_secs(45)).await;
    let leaks: Vec<_> = recorder
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::LeakSuspected {
                held_for,
                checked_out_at,
            } => Some((held_for, checked_out_at)),
            _ => None,
        })
        .collect();
    assert_eq!(leaks.len(), 1, "reported once, and only the one held");
    let (held_for, at) = leaks[0];
    assert!(held_for >= Duration::from_secs(30) && held_for < Duration::from_secs(32));
    assert_eq!(at.file(), file!());
    assert_eq!(at.line(), line);
    assert_eq!(pool.stats().counters.leaks_reported, 1);
    drop(held);
}

#[tokio::test]
async fn the_event_trace_of_a_connections_life_is_exact() {
    let recorder = Recorder::default();
    let pool = Pool::builder(MemManager::default())
        .clock(connpool::Clock::Tokio)
        .max_conns_per_key(1)
        .observer(recorder.observer())
        .build();
    let conn = pool.get(&"k").await.unwrap();
    let id = conn.id();
    let p = pool.clone();
    let waiter = tokio::spawn(async move {
        let c = p.get(&"k").await.unwrap();
        drop(c); // not at a message boundary
    });
    while pool.key_stats(&"k").waiters < 1 {
        tokio::task::yield_now().await;
    }
    conn.release();
    waiter.await.unwrap();
    use EventKind::*;
    assert_eq!(
        normalized(recorder.kinds()),
        vec![
            Connecting,
            Connected {
                took: Duration::ZERO
            },
            WaitStarted { waiters: 1 },
            Returned,
            WaitEnded {
                waited: Duration::ZERO,
                outcome: WaitOutcome::Granted
            },
            Reused {
                idle_for: Duration::ZERO,
                previous_uses: 1
            },
            Closed {
                reason: CloseReason::Dropped
            },
        ]
    );
    let ids: Vec<_> = recorder
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(
        ids,
        vec![Some(id), Some(id), None, Some(id), None, Some(id), Some(id)]
    );
    let c = pool.stats().counters;
    assert_eq!(
        (
            c.created, c.reused, c.returned, c.closed, c.dropped, c.waits
        ),
        (1, 1, 1, 1, 1, 1)
    );
}

#[test]
fn dropping_the_pool_closes_idle_connections_and_ends_the_reaper() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let manager = MemManager::default();
    let recorder = Recorder::default();
    rt.block_on(async {
        let pool = Pool::builder(manager.clone())
            .clock(connpool::Clock::Tokio)
            .observer(recorder.observer())
            .build();
        pool.get(&"k").await.unwrap().release();
        assert_eq!(rt.metrics().num_alive_tasks(), 1, "the reaper");
        drop(pool);
        // The reaper notices at once (it is woken, not polled).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(rt.metrics().num_alive_tasks(), 0);
    assert_eq!(manager.lives.alive.load(Ordering::SeqCst), 0);
    assert_eq!(
        recorder.kinds().last(),
        Some(&EventKind::Closed {
            reason: CloseReason::PoolDropped
        })
    );
}

#[tokio::test]
async fn the_default_coarse_clock_expires_idle_connections() {
    // Real time: the coarse clock lags by at most one tick (≤ 4 ms), so
    // sleeping the timeout plus 10 ms guarantees expiry; nothing here can
    // expire early.
    let pool = Pool::builder(MemManager::default())
        .idle_timeout(Some(Duration::from_millis(30)))
        .reap_interval(Some(Duration::from_secs(3600)))
        .build();
    assert_eq!(pool.config().clock, Clock::Coarse);
    pool.get(&"k").await.unwrap().release();
    let again = pool.get(&"k").await.unwrap();
    assert!(again.is_reused(), "well within the timeout");
    again.release();
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(!pool.get(&"k").await.unwrap().is_reused());
    assert_eq!(pool.stats().counters.evicted(EvictReason::IdleTimeout), 1);
}

#[test]
fn waits_still_time_out_after_the_runtime_that_started_the_pool_task_is_gone() {
    let pool = Pool::builder(MemManager::default())
        .max_conns_per_key(1)
        .wait_timeout(Duration::from_millis(200))
        .build();
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The first checkout starts the pool's task on this runtime...
    let held = first.block_on(pool.get(&"k")).unwrap();
    drop(first); // ...which ends with it.

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let outcome = second
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), pool.get(&"k")).await });
    let err = outcome.expect("the wait must end by itself").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PoolWaitTimeout);
    assert_eq!(pool.stats().counters.wait_timeouts, 1);
    drop(held);
}

#[tokio::test]
async fn reconnect_trades_the_slot_for_a_new_connection_without_waiting() {
    let (pool, manager) = pool_with(PoolConfig {
        max_conns_per_key: 1,
        wait_timeout: Duration::from_millis(50),
        ..PoolConfig::default()
    });
    pool.get(&"k").await.unwrap().release();
    let reused = pool.get(&"k").await.unwrap();
    assert!(reused.is_reused());
    let old = reused.serial;
    // At the cap, with the only slot held: a plain `get` would wait; the
    // trade does not, and never hands out an idle connection.
    let fresh = pool
        .reconnect(reused, EvictReason::ServerClosed)
        .await
        .unwrap();
    assert!(!fresh.is_reused());
    assert_ne!(fresh.serial, old);
    let stats = pool.stats();
    assert_eq!(stats.total.checked_out, 1);
    assert_eq!(stats.total.connecting, 0);
    assert_eq!(stats.counters.evicted(EvictReason::ServerClosed), 1);
    assert_eq!(
        manager.lives.alive.load(Ordering::SeqCst),
        1,
        "the old one is closed"
    );
    // A failed reconnect frees the slot.
    manager.fail_connects.store(true, Ordering::SeqCst);
    assert!(
        pool.reconnect(fresh, EvictReason::ServerReset)
            .await
            .is_err()
    );
    let stats = pool.stats();
    assert_eq!((stats.total.checked_out, stats.total.connecting), (0, 0));
    manager.fail_connects.store(false, Ordering::SeqCst);
    pool.get(&"k").await.unwrap();
}
