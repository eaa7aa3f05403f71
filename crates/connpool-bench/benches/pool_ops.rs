//! Checkout + return of a trivial in-memory connection: connpool against
//! two peers, deadpool (`managed::Pool`) and bb8, and a floor, the smallest
//! pool that works (`semaphore`), on the same connection type
//! (`Trivial(u64)`) in the same run.
//!
//! The floor: a `tokio::sync::Semaphore` with one permit per connection and
//! a `std::sync::Mutex<Vec<Trivial>>` of idle connections. Checkout
//! acquires a permit, then pops an idle connection or creates one; return
//! pushes it back and drops the permit. No keys, no stats, no checks, no
//! timeouts: what any pool must at least do (a wait queue and a lock).
//!
//! Every manager is trivial: connect/create returns `Trivial(0)` at once,
//! and the checks before reuse (connpool's `check`, deadpool's `recycle`,
//! bb8's `is_valid`/`has_broken`) always pass. Each library keeps its
//! default settings except the size (and, for connpool, `max_idle_per_key`
//! raised to the size so that a 64-connection pool may keep all 64 idle).
//! Every pool is pre-warmed (all its connections opened) before it is
//! measured, so what is timed is reuse, not connect.
//!
//! Cases (one criterion group each, ids `connpool`, `deadpool`, `bb8`,
//! `semaphore`):
//!
//! * `single_task` — one task on a current_thread runtime, a loop of
//!   get + return on a pool of 8.
//! * `contended_64x8` — 64 tasks on a 2-worker multi_thread runtime share a
//!   pool capped at 8. For `iters` iterations each task does `iters / 64`
//!   (at least 1) get + `yield_now` while holding + return; the wall time
//!   (spawning included) is scaled to `iters` checkouts, so the figure is
//!   time per checkout.
//! * `uncontended_64x64` — the same with a pool of 64, one connection per
//!   task.
//!
//! After criterion finishes, a table gives each peer's mean time per
//! checkout (criterion's `target/criterion/<group>/<id>/new/estimates.json`,
//! `mean.point_estimate`) and its ratio to connpool, connpool's ratio to the
//! semaphore floor, and says per case whether connpool is at least as fast
//! as the faster peer. Then the goals of issue 5: connpool ahead of
//! deadpool and bb8 in all three cases, and `single_task` connpool at most
//! 2x the floor. An integrity line per pool checks that no checkout was
//! lost and no pool grew past its cap.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -p connpool-bench --bench pool_ops
//! ```
//!
//! Criterion's usual arguments work (a name filter, `--sample-size`, ...);
//! a benchmark left out by a filter shows as "not run" in the table.

use std::convert::Infallible;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use connpool::{Error, Manager, Pool};
use criterion::Criterion;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The connection every library pools.
struct Trivial(u64);

/// The benchmark's groups, in run order: (name, pool size, tasks).
/// `tasks == 0` means the single-task loop.
const CASES: [(&str, usize, u64); 3] = [
    ("single_task", 8, 0),
    ("contended_64x8", 8, 64),
    ("uncontended_64x64", 64, 64),
];
const PEERS: [&str; 4] = ["connpool", "deadpool", "bb8", "semaphore"];
/// The peers connpool is to be ahead of (the last of `PEERS` is the floor).
const RIVALS: [&str; 2] = ["deadpool", "bb8"];
/// Goal: `single_task` connpool at most this many times the floor.
const FLOOR_GOAL: f64 = 2.0;
const TASKS: u64 = 64;
/// Any single measurement taking longer than this is reported as a hang.
const HANG: Duration = Duration::from_secs(60);
const KEY: u8 = 0;

// ---------------------------------------------------------------- managers

struct CpManager;
impl Manager<u8> for CpManager {
    type Conn = Trivial;
    async fn connect(&self, _key: &u8) -> Result<Trivial, Error> {
        Ok(Trivial(0))
    }
}
type CpPool = Pool<u8, CpManager>;

struct DpManager;
impl deadpool::managed::Manager for DpManager {
    type Type = Trivial;
    type Error = Infallible;
    async fn create(&self) -> Result<Trivial, Infallible> {
        Ok(Trivial(0))
    }
    async fn recycle(
        &self,
        _conn: &mut Trivial,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}
type DpPool = deadpool::managed::Pool<DpManager>;

struct Bb8Manager;
impl bb8::ManageConnection for Bb8Manager {
    type Connection = Trivial;
    type Error = Infallible;
    async fn connect(&self) -> Result<Trivial, Infallible> {
        Ok(Trivial(0))
    }
    async fn is_valid(&self, _conn: &mut Trivial) -> Result<(), Infallible> {
        Ok(())
    }
    fn has_broken(&self, _conn: &mut Trivial) -> bool {
        false
    }
}
type Bb8Pool = bb8::Pool<Bb8Manager>;

/// The floor: a semaphore (one permit per connection) and a mutex-guarded
/// stack of idle connections.
struct SemPool {
    permits: Semaphore,
    idle: Mutex<Vec<Trivial>>,
    /// Connections created (for the integrity line).
    created: AtomicU64,
}

/// A checked-out connection of [`SemPool`]: pushed back on drop, then its
/// permit released (fields drop after `Drop::drop`).
struct SemConn<'a> {
    pool: &'a SemPool,
    conn: Option<Trivial>,
    _permit: SemaphorePermit<'a>,
}

impl SemPool {
    fn new(size: usize) -> SemPool {
        SemPool {
            permits: Semaphore::new(size),
            idle: Mutex::new(Vec::with_capacity(size)),
            created: AtomicU64::new(0),
        }
    }

    async fn get(&self) -> SemConn<'_> {
        let permit = self.permits.acquire().await.expect("semaphore closed");
        let idle = self.idle.lock().expect("idle list poisoned").pop();
        let conn = idle.unwrap_or_else(|| {
            self.created.fetch_add(1, Ordering::Relaxed);
            Trivial(0)
        });
        SemConn {
            pool: self,
            conn: Some(conn),
            _permit: permit,
        }
    }
}

impl std::ops::Deref for SemConn<'_> {
    type Target = Trivial;
    fn deref(&self) -> &Trivial {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl Drop for SemConn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A poisoned list drops the connection; its permit still goes.
            if let Ok(mut idle) = self.pool.idle.lock() {
                idle.push(conn);
            }
        }
    }
}

// ------------------------------------------------------------------- peers

/// One pool of one library, with the count of checkouts this benchmark made
/// on it (to check against the pool's own counters afterwards).
#[derive(Clone)]
enum Peer {
    Connpool(CpPool, Arc<AtomicU64>),
    Deadpool(DpPool, Arc<AtomicU64>),
    Bb8(Bb8Pool, Arc<AtomicU64>),
    Semaphore(Arc<SemPool>, Arc<AtomicU64>),
}

impl Peer {
    /// Builds the pool named `name` with `size` connections on the current
    /// runtime and opens all of them.
    async fn warmed(name: &str, size: usize) -> Peer {
        let peer = match name {
            "connpool" => Peer::Connpool(
                Pool::builder(CpManager)
                    .max_conns_per_key(size)
                    .max_idle_per_key(size)
                    .build(),
                Arc::default(),
            ),
            "deadpool" => Peer::Deadpool(
                DpPool::builder(DpManager)
                    .max_size(size)
                    .build()
                    .expect("deadpool builds"),
                Arc::default(),
            ),
            "bb8" => Peer::Bb8(
                bb8::Pool::builder()
                    .max_size(u32::try_from(size).expect("small size"))
                    .build(Bb8Manager)
                    .await
                    .expect("bb8 builds"),
                Arc::default(),
            ),
            "semaphore" => Peer::Semaphore(Arc::new(SemPool::new(size)), Arc::default()),
            other => unreachable!("unknown peer {other}"),
        };
        // Hold `size` connections at once so that all are opened, then give
        // them all back.
        match &peer {
            Peer::Connpool(pool, _) => {
                let mut held = Vec::with_capacity(size);
                for _ in 0..size {
                    held.push(pool.get(&KEY).await.expect("connpool warm-up get"));
                }
                held.into_iter().for_each(|c| c.release());
            }
            Peer::Deadpool(pool, _) => {
                let mut held = Vec::with_capacity(size);
                for _ in 0..size {
                    held.push(pool.get().await.expect("deadpool warm-up get"));
                }
            }
            Peer::Bb8(pool, _) => {
                let mut held = Vec::with_capacity(size);
                for _ in 0..size {
                    held.push(pool.get().await.expect("bb8 warm-up get"));
                }
            }
            Peer::Semaphore(pool, _) => {
                let mut held = Vec::with_capacity(size);
                for _ in 0..size {
                    held.push(pool.get().await);
                }
            }
        }
        peer
    }

    /// One checkout and return, holding the connection across a
    /// `yield_now` when `yield_while_held`.
    async fn checkout(&self, yield_while_held: bool) {
        match self {
            Peer::Connpool(pool, _) => {
                let conn = pool.get(&KEY).await.expect("connpool get");
                black_box(conn.0);
                if yield_while_held {
                    tokio::task::yield_now().await;
                }
                conn.release();
            }
            Peer::Deadpool(pool, _) => {
                let conn = pool.get().await.expect("deadpool get");
                black_box(conn.0);
                if yield_while_held {
                    tokio::task::yield_now().await;
                }
                drop(conn);
            }
            Peer::Bb8(pool, _) => {
                let conn = pool.get().await.expect("bb8 get");
                black_box(conn.0);
                if yield_while_held {
                    tokio::task::yield_now().await;
                }
                drop(conn);
            }
            Peer::Semaphore(pool, _) => {
                let conn = pool.get().await;
                black_box(conn.0);
                if yield_while_held {
                    tokio::task::yield_now().await;
                }
                drop(conn);
            }
        }
    }

    fn count(&self, n: u64) {
        let (Peer::Connpool(_, c) | Peer::Deadpool(_, c) | Peer::Bb8(_, c) | Peer::Semaphore(_, c)) =
            self;
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Checks the pool after the run: nothing checked out or waiting, every
    /// connection idle, none opened beyond the warm-up, and (for connpool)
    /// its counters agree with the checkouts made. Returns a one-line
    /// summary, prefixed with "PROBLEM" if anything is off.
    fn integrity(&self, size: usize) -> String {
        match self {
            Peer::Connpool(pool, made) => {
                let made = made.load(Ordering::Relaxed);
                let stats = pool.stats();
                let (t, c) = (stats.total, stats.counters);
                // Warm-up: `size` creates. Every later checkout is a reuse.
                let ok = t.idle == size
                    && t.checked_out == 0
                    && t.connecting == 0
                    && t.waiters == 0
                    && c.created == size as u64
                    && c.reused == made
                    && c.returned == made + size as u64
                    && c.closed == 0
                    && c.dropped == 0
                    && c.wait_timeouts == 0
                    && c.refused == 0;
                format!(
                    "{}connpool: {made} checkouts; idle {} out {} connecting {} waiters {}; \
                     created {} reused {} returned {} closed {} dropped {} waits {} \
                     timeouts {} refused {}",
                    if ok { "" } else { "PROBLEM " },
                    t.idle,
                    t.checked_out,
                    t.connecting,
                    t.waiters,
                    c.created,
                    c.reused,
                    c.returned,
                    c.closed,
                    c.dropped,
                    c.waits,
                    c.wait_timeouts,
                    c.refused,
                )
            }
            Peer::Deadpool(pool, made) => {
                let s = pool.status();
                let ok = s.size == size && s.available == size && s.waiting == 0;
                format!(
                    "{}deadpool: {} checkouts; size {} available {} waiting {}",
                    if ok { "" } else { "PROBLEM " },
                    made.load(Ordering::Relaxed),
                    s.size,
                    s.available,
                    s.waiting,
                )
            }
            Peer::Bb8(pool, made) => {
                let s = pool.state();
                let ok = s.connections as usize == size && s.idle_connections as usize == size;
                format!(
                    "{}bb8: {} checkouts; connections {} idle {}; created {} closed_broken {} \
                     closed_invalid {}",
                    if ok { "" } else { "PROBLEM " },
                    made.load(Ordering::Relaxed),
                    s.connections,
                    s.idle_connections,
                    s.statistics.connections_created,
                    s.statistics.connections_closed_broken,
                    s.statistics.connections_closed_invalid,
                )
            }
            Peer::Semaphore(pool, made) => {
                let permits = pool.permits.available_permits();
                let idle = pool.idle.lock().map_or(usize::MAX, |idle| idle.len());
                let created = pool.created.load(Ordering::Relaxed);
                let ok = permits == size && idle == size && created == size as u64;
                format!(
                    "{}semaphore: {} checkouts; permits {permits} idle {idle} created {created}",
                    if ok { "" } else { "PROBLEM " },
                    made.load(Ordering::Relaxed),
                )
            }
        }
    }
}

/// `iters` checkouts spread over `TASKS` tasks (each doing `iters / TASKS`,
/// at least one), yielding while holding; returns the wall time scaled to
/// exactly `iters` checkouts.
async fn many_tasks(peer: &Peer, iters: u64) -> Duration {
    let per_task = (iters / TASKS).max(1);
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let peer = peer.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    peer.checkout(true).await;
                }
                per_task
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += tokio::time::timeout(HANG, task)
            .await
            .unwrap_or_else(|_| panic!("a task did not finish its checkouts within {HANG:?}"))
            .expect("benchmark task panicked");
    }
    let elapsed = start.elapsed();
    assert_eq!(done, per_task * TASKS, "checkouts lost");
    peer.count(done);
    elapsed.mul_f64(iters as f64 / done as f64)
}

// ------------------------------------------------------------------ groups

fn runtime(tasks: u64) -> Runtime {
    let mut builder = if tasks == 0 {
        Builder::new_current_thread()
    } else {
        let mut b = Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// Runs every case; returns the integrity line of each pool.
fn run_groups(c: &mut Criterion) -> Vec<String> {
    let mut checks = Vec::new();
    for (case, size, tasks) in CASES {
        let rt = runtime(tasks);
        let mut group = c.benchmark_group(case);
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(50);
        for name in PEERS {
            // Pools are built on the runtime they are used on (connpool's
            // reaper and bb8's are spawned there).
            let peer = rt.block_on(Peer::warmed(name, size));
            group.bench_function(name, |b| {
                if tasks == 0 {
                    b.to_async(&rt).iter_custom(|iters| {
                        let peer = &peer;
                        async move {
                            let start = Instant::now();
                            for _ in 0..iters {
                                peer.checkout(false).await;
                            }
                            let elapsed = start.elapsed();
                            peer.count(iters);
                            elapsed
                        }
                    });
                } else {
                    b.to_async(&rt)
                        .iter_custom(|iters| many_tasks(&peer, iters));
                }
            });
            checks.push(format!("{case}: {}", peer.integrity(size)));
            rt.block_on(async move { drop(peer) });
        }
        group.finish();
    }
    checks
}

// ------------------------------------------------------------------- table

/// Where criterion writes its reports, found as criterion finds it:
/// `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the
/// workspace's `target/criterion` (walking up from the current directory,
/// which `cargo bench` sets to the package's).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let cwd = std::env::current_dir().expect("current dir");
    let mut fallback = None;
    for dir in cwd.ancestors() {
        let manifest = dir.join("Cargo.toml");
        let is_workspace = std::fs::read_to_string(&manifest)
            .map(|s| s.lines().any(|l| l.trim() == "[workspace]"))
            .unwrap_or(false);
        if is_workspace {
            return dir.join("target").join("criterion");
        }
        if fallback.is_none() && dir.join("target").join("criterion").is_dir() {
            fallback = Some(dir.join("target").join("criterion"));
        }
    }
    fallback.unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// The mean (ns) of one benchmark from this run, or why there is none.
fn mean_ns(dir: &Path, group: &str, id: &str, since: SystemTime) -> Result<f64, String> {
    let path = dir.join(group).join(id).join("new").join("estimates.json");
    let meta = std::fs::metadata(&path).map_err(|_| "not run".to_string())?;
    if meta.modified().map(|m| m < since).unwrap_or(true) {
        return Err("not run".into());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("unreadable: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("bad json: {e}"))?;
    json["mean"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| "no mean.point_estimate".into())
}

fn print_table(since: SystemTime) {
    let dir = criterion_dir();
    println!();
    println!(
        "== pool_ops: mean time per checkout + return (from {}) ==",
        dir.display()
    );
    let mut goals = Vec::new();
    for (case, _, _) in CASES {
        println!();
        println!("{case}");
        let means: Vec<_> = PEERS
            .iter()
            .map(|peer| (*peer, mean_ns(&dir, case, peer, since)))
            .collect();
        let mean = |name: &str| {
            means
                .iter()
                .find(|(peer, _)| *peer == name)
                .and_then(|(_, m)| m.as_ref().ok().copied())
        };
        let base = mean("connpool");
        for (peer, ns) in &means {
            let ns = match ns {
                Ok(ns) => *ns,
                Err(why) => {
                    println!("  {peer:<9} {why}");
                    continue;
                }
            };
            match base {
                Some(base) if *peer == "semaphore" => println!(
                    "  {peer:<9} {ns:>10.1} ns   connpool/{peer} = {:.2}x  (the floor)",
                    base / ns
                ),
                Some(base) if *peer != "connpool" => println!(
                    "  {peer:<9} {ns:>10.1} ns   {peer}/connpool = {:.2}x",
                    ns / base
                ),
                _ => println!("  {peer:<9} {ns:>10.1} ns"),
            }
        }
        let faster_rival = RIVALS
            .iter()
            .filter_map(|peer| mean(peer).map(|ns| (*peer, ns)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match (base, faster_rival) {
            (Some(base), Some((peer, ns))) => println!(
                "  => connpool {} at least as fast as the faster peer ({peer}): {:.2}x its time",
                if base <= ns { "IS" } else { "is NOT" },
                base / ns,
            ),
            _ => println!("  => no comparison: connpool or both peers not run"),
        }
        for rival in RIVALS {
            let ratio = base.zip(mean(rival)).map(|(b, r)| b / r);
            goals.push((
                format!("{case}: connpool faster than {rival}"),
                ratio,
                ratio.map(|r| r < 1.0),
            ));
        }
        if case == "single_task" {
            let ratio = base.zip(mean("semaphore")).map(|(b, f)| b / f);
            goals.push((
                format!("{case}: connpool <= {FLOOR_GOAL:.0}x the semaphore floor"),
                ratio,
                ratio.map(|r| r <= FLOOR_GOAL),
            ));
        }
    }
    println!();
    println!("== goals (issue 5) ==");
    for (text, ratio, holds) in goals {
        let verdict = match holds {
            Some(true) => "holds     ",
            Some(false) => "DOES NOT  ",
            None => "not run   ",
        };
        match ratio {
            Some(r) => println!("  {verdict} {text}: connpool/other = {r:.2}x"),
            None => println!("  {verdict} {text}"),
        }
    }
}

fn main() {
    let since = SystemTime::now() - Duration::from_secs(1);
    let mut criterion = Criterion::default().configure_from_args();
    let checks = run_groups(&mut criterion);
    criterion.final_summary();
    print_table(since);
    println!();
    println!("== pool state after each run ==");
    for line in checks {
        println!("  {line}");
    }
}
