//! What the round-based client benches (`http_clients`, `https_clients`)
//! measure with: the allocation and CPU-time counters, the errors of a
//! batch of requests, running every worker of a client at once, and the
//! statistics over the rounds.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::runtime::Runtime;

use super::{BoxError, Count};

// ------------------------------------------------------------- allocations

/// Counts allocations and the bytes asked for (a `realloc` as one
/// allocation of its new size): the [`Count`] of a
/// [`Counting`](super::Counting) global allocator.
pub struct Totals {
    allocs: AtomicU64,
    bytes: AtomicU64,
}

impl Totals {
    pub const fn new() -> Totals {
        Totals {
            allocs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// Allocations so far.
    pub fn allocs(&self) -> u64 {
        self.allocs.load(Ordering::Relaxed)
    }

    /// Bytes allocated so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn count(&self, size: usize) {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size as u64, Ordering::Relaxed);
    }
}

impl Count for Totals {
    fn allocated(&self, size: usize) {
        self.count(size);
    }

    fn reallocated(&self, _old_size: usize, new_size: usize) {
        self.count(new_size);
    }

    fn freed(&self, _size: usize) {}
}

// ---------------------------------------------------------------- CPU time

/// User and system CPU time of this whole process so far.
pub fn cpu_times() -> (Duration, Duration) {
    fn duration(t: libc::timeval) -> Duration {
        Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
    }
    // SAFETY: `rusage` is plain data for which all zeroes is valid;
    // `getrusage` fills the struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let rc = libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        assert_eq!(rc, 0, "getrusage failed");
        usage
    };
    (duration(usage.ru_utime), duration(usage.ru_stime))
}

/// User + system CPU time of this whole process so far.
pub fn cpu_time() -> Duration {
    let (user, sys) = cpu_times();
    user + sys
}

// ------------------------------------------------------------------ errors

/// Errors of a batch of requests, and the first one's message.
#[derive(Default)]
pub struct Outcome {
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn record(&mut self, result: Result<(), BoxError>) {
        if let Err(e) = result {
            self.errors += 1;
            self.first_error.get_or_insert_with(|| e.to_string());
        }
    }

    pub fn merge(&mut self, other: Outcome) {
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

// ----------------------------------------------------------------- running

/// Runs `run(worker, per_worker)` for every worker at once, each as a task
/// on `rt`, and puts the workers back in `workers` (the tasks own them
/// while they run).
pub fn run_workers<W, F, Fut>(
    rt: &Runtime,
    workers: &mut Vec<W>,
    per_worker: u64,
    run: F,
) -> Outcome
where
    W: Send + 'static,
    F: Fn(W, u64) -> Fut,
    Fut: Future<Output = (W, Outcome)> + Send + 'static,
{
    let taken = std::mem::take(workers);
    let (back, outcome) = rt.block_on(async move {
        let handles: Vec<_> = taken
            .into_iter()
            .map(|w| tokio::spawn(run(w, per_worker)))
            .collect();
        let mut back = Vec::with_capacity(handles.len());
        let mut outcome = Outcome::default();
        for h in handles {
            let (w, o) = h.await.expect("benchmark task panicked");
            back.push(w);
            outcome.merge(o);
        }
        (back, outcome)
    });
    *workers = back;
    outcome
}

// -------------------------------------------------------------- statistics

/// The median of `values` (the upper one of an even count); `None` when
/// there are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// (largest − smallest) / median of `values`: of the rounds' wall times,
/// the spread column.
pub fn spread(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NAN, f64::max);
    let min = values.clone().fold(f64::NAN, f64::min);
    (max - min) / median(values).unwrap_or(f64::NAN)
}
