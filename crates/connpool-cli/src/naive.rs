//! A naive connection pool: the baseline the demo compares connpool with.
//!
//! It is what many hand-written pools amount to: a LIFO stack of idle
//! sockets, reused without any check. It trusts that a connection which
//! worked a moment ago still works — which is false as soon as the server
//! has closed it while it sat idle. The caller finds out only when its
//! request fails (`broken pipe`, `connection reset`, a bare EOF).
//!
//! It never retries and never learns; that is the point.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpStream;

/// A LIFO pool of TCP connections to one address, reused unchecked.
#[derive(Debug)]
pub struct NaivePool {
    addr: SocketAddr,
    /// Idle connections; the most recently returned one is reused first.
    idle: Vec<TcpStream>,
    /// Connections opened so far.
    created: u64,
}

impl NaivePool {
    /// An empty pool for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        NaivePool {
            addr,
            idle: Vec::new(),
            created: 0,
        }
    }

    /// The most recently returned idle connection, as is, or a new one.
    pub async fn get(&mut self) -> io::Result<TcpStream> {
        if let Some(stream) = self.idle.pop() {
            return Ok(stream);
        }
        let stream = TcpStream::connect(self.addr).await?;
        // Same socket option as connpool's TcpManager, for a fair comparison.
        stream.set_nodelay(true)?;
        self.created += 1;
        Ok(stream)
    }

    /// Gives a connection back after a successful request.
    pub fn put(&mut self, stream: TcpStream) {
        self.idle.push(stream);
    }

    /// How many connections this pool has opened.
    pub fn created(&self) -> u64 {
        self.created
    }
}
