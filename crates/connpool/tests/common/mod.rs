//! Shared pieces of the pool tests: an in-memory manager whose connections
//! count their own lives, and an observer that records events.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use connpool::{Error, ErrorKind, Event, EventKind, EvictReason, Manager};
use tokio::sync::Semaphore;

/// Counts shared by a manager and all its connections.
#[derive(Default)]
pub struct Lives {
    pub connects: AtomicU64,
    pub alive: AtomicUsize,
}

/// A connection that knows whether someone is in the middle of using it.
pub struct MemConn {
    pub serial: u64,
    /// Set by a test while a "request" is in flight; a pool must never
    /// hand out a connection with this set.
    pub dirty: bool,
    /// When set, the manager's check rejects it.
    pub broken: Arc<AtomicBool>,
    lives: Arc<Lives>,
}

impl Drop for MemConn {
    fn drop(&mut self) {
        self.lives.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An in-memory manager. Connects can be made to fail, or to wait on a
/// semaphore so a test holds them "in flight".
#[derive(Clone, Default)]
pub struct MemManager {
    pub lives: Arc<Lives>,
    pub fail_connects: Arc<AtomicBool>,
    pub gate: Option<Arc<Semaphore>>,
    /// Connects take this long (tokio time, so paused clocks work).
    pub connect_delay: std::time::Duration,
}

impl MemManager {
    pub fn gated() -> (MemManager, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        (
            MemManager {
                gate: Some(gate.clone()),
                ..Default::default()
            },
            gate,
        )
    }
}

impl<K: connpool::Key> Manager<K> for MemManager {
    type Conn = MemConn;

    async fn connect(&self, _key: &K) -> Result<MemConn, Error> {
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        if !self.connect_delay.is_zero() {
            tokio::time::sleep(self.connect_delay).await;
        }
        if self.fail_connects.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::ConnectRefused, "test refuses"));
        }
        let serial = self.lives.connects.fetch_add(1, Ordering::SeqCst) + 1;
        self.lives.alive.fetch_add(1, Ordering::SeqCst);
        Ok(MemConn {
            serial,
            dirty: false,
            broken: Arc::new(AtomicBool::new(false)),
            lives: self.lives.clone(),
        })
    }

    fn check(
        &self,
        _key: &K,
        conn: &mut MemConn,
        _idle_for: std::time::Duration,
    ) -> Result<(), EvictReason> {
        if conn.broken.load(Ordering::SeqCst) {
            Err(EvictReason::ServerClosed)
        } else {
            Ok(())
        }
    }
}

/// One recorded event: key, connection id, kind.
pub type Recorded<K> = (K, Option<u64>, EventKind);

/// Records every event.
#[derive(Clone)]
pub struct Recorder<K> {
    pub events: Arc<Mutex<Vec<Recorded<K>>>>,
}

impl<K> Default for Recorder<K> {
    fn default() -> Self {
        Recorder {
            events: Arc::default(),
        }
    }
}

impl<K: Clone + Send + Sync + 'static> Recorder<K> {
    pub fn observer(&self) -> impl Fn(&Event<'_, K>) + Send + Sync + 'static {
        let events = self.events.clone();
        move |e: &Event<'_, K>| {
            events
                .lock()
                .unwrap()
                .push((e.key.clone(), e.conn, e.kind.clone()))
        }
    }

    pub fn kinds(&self) -> Vec<EventKind> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, k)| k.clone())
            .collect()
    }

    /// How many recorded events match.
    pub fn count(&self, f: impl Fn(&EventKind) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, k)| f(k))
            .count()
    }

    pub fn evicted(&self, reason: connpool::EvictReason) -> usize {
        self.count(|k| *k == EventKind::Evicted { reason })
    }

    pub fn returned(&self) -> usize {
        self.count(|k| *k == EventKind::Returned)
    }

    pub fn closed(&self, reason: connpool::CloseReason) -> usize {
        self.count(|k| *k == EventKind::Closed { reason })
    }

    pub fn take(&self) -> Vec<EventKind> {
        let kinds = self.kinds();
        self.events.lock().unwrap().clear();
        kinds
    }
}

/// Event kinds with their durations zeroed, for exact comparison.
pub fn normalized(kinds: Vec<EventKind>) -> Vec<EventKind> {
    use std::time::Duration;
    kinds
        .into_iter()
        .map(|k| match k {
            EventKind::Connected { .. } => EventKind::Connected {
                took: Duration::ZERO,
            },
            EventKind::Reused { previous_uses, .. } => EventKind::Reused {
                idle_for: Duration::ZERO,
                previous_uses,
            },
            EventKind::WaitEnded { outcome, .. } => EventKind::WaitEnded {
                waited: Duration::ZERO,
                outcome,
            },
            other => other,
        })
        .collect()
}

/// A small deterministic generator (xorshift64*), so a failing case can be
/// replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Warms one HTTP connection, so the next request to `server` goes out on
/// a reused one.
pub async fn warm(client: &connpool::http::Client, server: &connpool_testkit::http::HttpServer) {
    let resp = client.get(server.url("/")).send().await.unwrap();
    resp.bytes().await.unwrap();
}

/// A GET with tracing on, its body read to the end: the whole trace,
/// including what became of the connection.
pub async fn traced_get(
    client: &connpool::http::Client,
    url: &str,
) -> connpool::http::RequestTrace {
    let mut resp = client.get(url).trace(true).send().await.unwrap();
    while resp.chunk().await.unwrap().is_some() {}
    resp.trace().unwrap()
}

/// The `Keep-Alive` hints through `server`'s `/keep-alive-hint` route:
/// `timeout=1` is within the 1 s margin, so the connection is closed;
/// `timeout=3` returns it with an idle deadline of 2 s.
pub async fn assert_keep_alive_hint_deadlines(
    client: &connpool::http::Client,
    server: &connpool_testkit::http::HttpServer,
) {
    use connpool::http::TraceStep;
    // timeout=1 is within the 1 s margin: not reused.
    let trace = traced_get(client, &server.url("/keep-alive-hint?timeout=1")).await;
    assert!(
        trace.contains(|s| matches!(s, TraceStep::ConnClosed { .. })),
        "{trace}"
    );
    // timeout=3: reused, with a deadline of 2 s.
    let trace = traced_get(client, &server.url("/keep-alive-hint?timeout=3")).await;
    assert!(
        trace.contains(|s| *s
            == TraceStep::ConnReturned {
                idle_deadline: Some(std::time::Duration::from_secs(2))
            }),
        "{trace}"
    );
}

/// A POST (`x-request-id: order-1`) to `url`, a `/vanish-once/p` route on
/// a warmed connection to `server`: the server drops it unanswered. It
/// must fail with `kind`, saying it may have been processed, and must not
/// be sent again. `what` names the case in the messages.
pub async fn a_post_that_hits_the_race_is_not_resent(
    client: &connpool::http::Client,
    url: String,
    server: &connpool_testkit::http::HttpServer,
    kind: ErrorKind,
    what: &str,
) {
    let err = client
        .post(url)
        .header("x-request-id", "order-1")
        .body("pay 10")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), kind, "{what}: {err}");
    assert!(err.is_stale(), "{what}");
    assert!(err.may_have_been_processed(), "{what}: bytes were written");
    assert_eq!(err.connection_reused(), Some(true), "{what}");
    assert_eq!(err.attempts(), Some(1), "{what}: not retried");
    assert_eq!(server.vanished(), 1, "{what}");
    assert_eq!(server.processed("POST", "order-1"), 0, "{what}");
    // One arrival only: accepted connections = the warm one.
    assert_eq!(server.accepted(), 1, "{what}");
}

/// `resp` answered a replayable request (`x-request-id: id`) that hit the
/// stale-connection race: it was retried once, on a new connection, and
/// the server processed it once.
pub async fn assert_retried_once_on_a_new_connection(
    resp: connpool::http::Response,
    server: &connpool_testkit::http::HttpServer,
    method: &str,
    id: &str,
) {
    assert_eq!(resp.status(), 200);
    assert!(
        !resp.connection_reused(),
        "{id}: the retry used a new connection"
    );
    let trace = resp.trace().unwrap();
    assert!(
        trace.contains(|s| matches!(s, connpool::http::TraceStep::Retry { .. })),
        "{id}: {trace}"
    );
    resp.bytes().await.unwrap();
    assert_eq!(server.processed(method, id), 1, "{id}");
}
