//! Learning a server's idle timeout from the closes the pool sees.
//!
//! Nobody tells a client how long a server keeps an idle connection open
//! (a `Keep-Alive: timeout=N` hint is rare, and sometimes wrong). But the
//! pool watches servers close idle connections, and every close is a
//! measurement:
//!
//! * When the checkout peek finds a server's FIN, the kernel knows when it
//!   arrived: nothing comes from the peer after its FIN, so `TCP_INFO`'s
//!   "time since the last ACK received" dates the FIN. The server closed
//!   the connection `idle_for − since_fin` after the client returned it:
//!   that is (within a few ms) the server's idle timeout.
//! * An RST, or a close seen without that evidence, only tells that the
//!   server closes idle connections *no later than* `idle_for`.
//!
//! Either way each observation is an upper bound of the server's timeout,
//! never below it, so the smallest observation is the best estimate, and
//! it can only err on the early side. The client then expires that host's
//! idle connections a margin before it, and the keep-alive race (the
//! server's FIN crossing the client's next request) stops happening.
//!
//! Two guards keep a wrong lesson from costing much:
//! * A close that came less than [`MIN_IDLE_TO_LEARN`] after the response
//!   is a server ending the connection after a response (a request limit,
//!   an error), not an idle timeout: it is not learned.
//! * A lesson is forgotten after [`LESSON_TTL`]: a server restart that
//!   closed every connection at once lowers the estimate for a while, then
//!   the pool measures again.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::conn::HostKey;
use crate::sys;

/// Closes sooner than this after a response are not idle timeouts.
pub(crate) const MIN_IDLE_TO_LEARN: Duration = Duration::from_millis(100);

/// How long a learned timeout is trusted.
pub(crate) const LESSON_TTL: Duration = Duration::from_secs(600);

/// The smallest margin taken off a learned timeout: the clocks involved
/// (the coarse clock, the kernel's jiffies, the server's timer wheel) are
/// each a few milliseconds coarse.
const MIN_MARGIN: Duration = Duration::from_millis(50);

/// What the client learned per host.
pub(crate) struct IdleTimeoutLearner {
    enabled: bool,
    /// The largest margin taken off a learned timeout (the client's
    /// `keep_alive_margin`); a tenth of the timeout when that is less.
    max_margin: Duration,
    /// Fast path: no lookup at all until something was learned.
    any: AtomicBool,
    lessons: Mutex<HashMap<HostKey, Lesson>>,
}

#[derive(Clone, Copy, Debug)]
struct Lesson {
    /// The server closed idle connections after at most this long.
    timeout: Duration,
    learned_at: Instant,
}

impl IdleTimeoutLearner {
    pub(crate) fn new(enabled: bool, max_margin: Duration) -> Self {
        IdleTimeoutLearner {
            enabled,
            max_margin,
            any: AtomicBool::new(false),
            lessons: Mutex::new(HashMap::new()),
        }
    }

    /// The server closed a connection of `key` that had been idle for
    /// `idle_for`, and its FIN is on `socket`: date the FIN with
    /// `TCP_INFO` and learn when the server closed.
    pub(crate) fn observe_fin(&self, key: &HostKey, socket: &impl AsFd, idle_for: Duration) {
        if !self.enabled {
            return;
        }
        let closed_after = match sys::tcp_info(socket) {
            Ok(info) => idle_for.saturating_sub(info.since_last_ack_recv),
            Err(_) => idle_for,
        };
        self.observe_close(key, closed_after);
    }

    /// The server closed a connection of `key` at most `closed_after` after
    /// the client returned it to the pool.
    pub(crate) fn observe_close(&self, key: &HostKey, closed_after: Duration) {
        if !self.enabled || closed_after < MIN_IDLE_TO_LEARN {
            return;
        }
        let now = Instant::now();
        let mut lessons = self.lessons.lock().unwrap_or_else(|e| e.into_inner());
        let lesson = lessons.entry(key.clone()).or_insert(Lesson {
            timeout: closed_after,
            learned_at: now,
        });
        if closed_after <= lesson.timeout || now.duration_since(lesson.learned_at) > LESSON_TTL {
            *lesson = Lesson {
                timeout: closed_after,
                learned_at: now,
            };
        }
        let timeout = lesson.timeout;
        drop(lessons);
        self.any.store(true, Ordering::Release);
        tracing::debug!(
            target: "connpool::http",
            key = ?key,
            closed_after_ms = closed_after.as_millis() as u64,
            learned_ms = timeout.as_millis() as u64,
            "learned the server's idle timeout"
        );
    }

    /// The server's learned idle timeout for `key`, if any.
    pub(crate) fn learned(&self, key: &HostKey) -> Option<Duration> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut lessons = self.lessons.lock().unwrap_or_else(|e| e.into_inner());
        let lesson = *lessons.get(key)?;
        if lesson.learned_at.elapsed() > LESSON_TTL {
            lessons.remove(key);
            return None;
        }
        Some(lesson.timeout)
    }

    /// How long an idle connection to `key` may be kept, from what was
    /// learned: the learned timeout minus a margin of a tenth of it (at
    /// least [`MIN_MARGIN`], at most `keep_alive_margin`).
    pub(crate) fn idle_deadline(&self, key: &HostKey) -> Option<Duration> {
        let timeout = self.learned(key)?;
        let margin = (timeout / 10).clamp(MIN_MARGIN, self.max_margin.max(MIN_MARGIN));
        Some(timeout.saturating_sub(margin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> HostKey {
        HostKey::from_uri(&"http://127.0.0.1:1/".parse().unwrap()).unwrap()
    }

    #[test]
    fn the_smallest_close_wins_and_short_ones_are_ignored() {
        let learner = IdleTimeoutLearner::new(true, Duration::from_secs(1));
        assert_eq!(learner.learned(&key()), None);
        learner.observe_close(&key(), Duration::from_millis(5)); // after a response
        assert_eq!(learner.learned(&key()), None);
        learner.observe_close(&key(), Duration::from_millis(1500));
        learner.observe_close(&key(), Duration::from_millis(1020));
        learner.observe_close(&key(), Duration::from_millis(1300));
        assert_eq!(learner.learned(&key()), Some(Duration::from_millis(1020)));
        // A tenth off: 918 ms.
        assert_eq!(
            learner.idle_deadline(&key()),
            Some(Duration::from_millis(918))
        );
    }

    #[test]
    fn margins_are_bounded() {
        let learner = IdleTimeoutLearner::new(true, Duration::from_secs(1));
        learner.observe_close(&key(), Duration::from_secs(75));
        assert_eq!(learner.idle_deadline(&key()), Some(Duration::from_secs(74)));
        let learner = IdleTimeoutLearner::new(true, Duration::from_secs(1));
        learner.observe_close(&key(), Duration::from_millis(200));
        assert_eq!(
            learner.idle_deadline(&key()),
            Some(Duration::from_millis(150))
        );
    }

    #[test]
    fn a_disabled_learner_learns_nothing() {
        let learner = IdleTimeoutLearner::new(false, Duration::from_secs(1));
        learner.observe_close(&key(), Duration::from_secs(3));
        assert_eq!(learner.learned(&key()), None);
    }
}
