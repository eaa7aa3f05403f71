//! # connpool — connection pools that do not break
//!
//! Pools fail in well-known ways: a server closes an idle connection just
//! as the client reuses it (`broken pipe`, `connection reset by peer`, a
//! bare EOF); a response not read to its end leaves a connection nobody can
//! reuse; a burst opens sockets without bound, or queues forever behind a
//! cap. This crate is built around the cures:
//!
//! * [`Pool`] — a generic keyed pool: per-key caps that count connects in
//!   flight, FIFO waiters with a deadline and a bound, idle and lifetime
//!   expiry, a check before every reuse, a guard that returns a connection
//!   only at a message boundary, leak reports, events and counters.
//! * [`tcp`] — a TCP manager and pool whose check is a non-blocking
//!   `recv(MSG_PEEK)`: a FIN, an RST or stray bytes on an idle connection
//!   are found before it is handed out.
//! * [`http`] — an HTTP/1.1 (and HTTPS) client on that pool, whose
//!   retry rules never surface the stale-connection race for a request
//!   that is safe to send again, and never send one twice that is not.
//! * [`tls`] — the TLS settings of HTTPS, and the identity that keeps
//!   connections made with one setting from serving another.
//! * [`Error`] — one error type whose [`ErrorKind`] says what failed and
//!   whether it was the stale-connection race.
//!
//! ```
//! use connpool::tcp::{TcpManager, TcpPool};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), connpool::Error> {
//! # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! # let addr = listener.local_addr().unwrap();
//! let pool = TcpPool::new(TcpManager::default());
//! let conn = pool.get(&addr).await?;   // a tokio TcpStream, checked
//! // ... write a request, read the whole response ...
//! conn.release();                      // only at a message boundary
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

/// Builder setters, one per field of the builder's `config` struct: the
/// settings are documented once, on the config struct, and the builders
/// of the pool and the HTTP client stay a list of names.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    )*};
}

mod error;
pub mod events;
pub mod http;
pub mod pool;
mod sys;
pub mod tcp;
pub mod tls;

pub use error::{Acknowledged, Delivery, Error, ErrorKind};
pub use events::{CloseReason, Event, EventKind, EvictReason, Observer, WaitOutcome};
pub use pool::{
    Clock, Counters, Key, KeyStats, Manager, Pool, PoolBuilder, PoolConfig, PoolStats, PooledConn,
};
