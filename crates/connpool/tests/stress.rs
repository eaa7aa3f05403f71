//! Cancellation and concurrency, hammered: thousands of randomized cases
//! where waiters time out, tasks are aborted mid-connect or mid-use, and
//! guards are dropped instead of released. Afterwards no slot may be
//! lost, no connection leaked, and no dirty connection ever handed out.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{MemManager, Rng};
use connpool::{ErrorKind, Pool};

const KEYS: [u8; 2] = [b'a', b'b'];

/// Counts holders of each key, and the most ever seen at once.
#[derive(Default)]
struct Holders {
    now: [AtomicUsize; 2],
    max: [AtomicUsize; 2],
}

impl Holders {
    /// Counts a holder of key `k` until the returned guard drops (also
    /// when the task holding it is aborted).
    fn enter(self: &Arc<Self>, k: usize) -> Holding {
        let n = self.now[k].fetch_add(1, Ordering::SeqCst) + 1;
        self.max[k].fetch_max(n, Ordering::SeqCst);
        Holding(self.clone(), k)
    }
}

struct Holding(Arc<Holders>, usize);

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.now[self.1].fetch_sub(1, Ordering::SeqCst);
    }
}

/// One randomized case on a paused clock: deterministic for its seed.
async fn run_case(seed: u64) {
    let mut rng = Rng::new(seed);
    let cap = 1 + rng.below(3) as usize;
    let manager = MemManager {
        connect_delay: Duration::from_millis(rng.below(3)),
        ..Default::default()
    };
    let pool = Pool::builder(manager.clone())
        .clock(connpool::Clock::Tokio)
        .max_conns_per_key(cap)
        .max_idle_per_key(1 + rng.below(3) as usize)
        .max_idle_total(1 + rng.below(4) as usize)
        .wait_timeout(Duration::from_millis(1 + rng.below(4)))
        .idle_timeout(Some(Duration::from_millis(2 + rng.below(10))))
        .build();
    let holders = Arc::new(Holders::default());
    let mut tasks = Vec::new();
    for _ in 0..2 + rng.below(10) {
        let pool = pool.clone();
        let holders = holders.clone();
        let mut rng = Rng::new(rng.next());
        tasks.push(tokio::spawn(async move {
            for _ in 0..1 + rng.below(6) {
                let k = rng.below(2) as usize;
                let limit = Duration::from_millis(rng.below(4));
                let Ok(got) = tokio::time::timeout(limit, pool.get(&KEYS[k])).await else {
                    continue; // cancelled while waiting or connecting
                };
                let mut conn = match got {
                    Ok(conn) => conn,
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::PoolWaitTimeout, "{e}");
                        continue;
                    }
                };
                assert!(
                    !conn.dirty,
                    "seed {seed}: a dirty connection was handed out"
                );
                let holding = holders.enter(k);
                conn.dirty = true; // a request is in flight
                if rng.below(2) == 0 {
                    tokio::time::sleep(Duration::from_millis(rng.below(3))).await;
                }
                drop(holding);
                match rng.below(4) {
                    0 => drop(conn), // mid-message: must be closed
                    1 => conn.discard(),
                    _ => {
                        conn.dirty = false; // message boundary
                        conn.release();
                    }
                }
            }
        }));
    }
    // Abort some tasks wherever they are.
    for task in &tasks {
        if rng.below(4) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.below(3))).await;
            task.abort();
        }
    }
    for task in tasks {
        if let Err(e) = task.await {
            assert!(e.is_cancelled(), "seed {seed}: task panicked: {e}");
        }
    }

    let stats = pool.stats();
    let t = stats.total;
    assert_eq!(
        (t.checked_out, t.connecting, t.waiters),
        (0, 0, 0),
        "seed {seed}: units leaked: {stats:?}"
    );
    assert_eq!(
        manager.lives.alive.load(Ordering::SeqCst),
        t.idle,
        "seed {seed}: connections alive outside the pool"
    );
    for (k, key) in KEYS.iter().enumerate() {
        assert!(
            holders.max[k].load(Ordering::SeqCst) <= cap,
            "seed {seed}: cap exceeded"
        );
        // Every slot is still usable: `cap` checkouts succeed at once.
        let mut held = Vec::new();
        for _ in 0..cap {
            held.push(
                pool.get(key)
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}")),
            );
        }
        assert!(held.iter().all(|c| !c.dirty));
    }
    let c = stats.counters;
    assert_eq!(
        c.created,
        c.closed + t.idle as u64,
        "seed {seed}: every created connection is idle or closed: {c:?}"
    );
}

#[test]
fn randomized_cancellation_never_leaks_or_hands_out_dirty_connections() {
    let cases: u64 = std::env::var("CONNPOOL_STRESS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    for seed in 0..cases {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run_case(seed));
    }
}

#[test]
fn limits_hold_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cap = 5;
        let manager = MemManager::default();
        let pool = Pool::builder(manager.clone())
            .clock(connpool::Clock::Tokio)
            .max_conns_per_key(cap)
            .wait_timeout(Duration::from_secs(30))
            .build();
        let holders = Arc::new(Holders::default());
        let mut tasks = Vec::new();
        for t in 0..200usize {
            let pool = pool.clone();
            let holders = holders.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(t as u64);
                for _ in 0..50 {
                    let k = rng.below(2) as usize;
                    let mut conn = pool.get(&KEYS[k]).await.unwrap();
                    assert!(!conn.dirty);
                    let holding = holders.enter(k);
                    conn.dirty = true;
                    tokio::task::yield_now().await;
                    drop(holding);
                    if rng.below(10) == 0 {
                        drop(conn);
                    } else {
                        conn.dirty = false;
                        conn.release();
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        for max in &holders.max {
            let max = max.load(Ordering::SeqCst);
            assert!(max <= cap, "{max} holders of one key at once, cap {cap}");
        }
        let stats = pool.stats();
        assert!(stats.keys.values().all(|s| s.total() <= cap));
        assert_eq!(stats.total.checked_out + stats.total.waiters, 0);
        assert_eq!(
            stats.counters.created,
            stats.counters.closed + stats.total.idle as u64
        );
        assert_eq!(manager.lives.alive.load(Ordering::SeqCst), stats.total.idle);
    });
}
