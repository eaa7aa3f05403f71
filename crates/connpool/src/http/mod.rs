//! An HTTP/1.1 client, over TCP or TLS (`https`), whose keep-alive pool
//! never surfaces a stale-connection error for a request that is safe to
//! send again, never sends a request twice that is not, and says of every
//! failure whether the request may have been processed.
//!
//! ```no_run
//! use connpool::http::Client;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), connpool::Error> {
//! let client = Client::new(); // cheap to clone; clones share the pool
//! let resp = client
//!     .get("http://127.0.0.1:8080/")
//!     .header("accept", "text/plain")
//!     .send()
//!     .await?;
//! println!("{}", resp.text().await?);
//!
//! match client.post("http://127.0.0.1:8080/orders").body("x").send().await {
//!     Ok(resp) => println!("{}", resp.status()),
//!     Err(e) if !e.may_have_been_processed() => { /* safe to send again */ }
//!     Err(e) => eprintln!("{e}"), // maybe processed: check before resending
//! }
//! # Ok(()) }
//! ```
//!
//! # How a stale connection is kept from the caller
//!
//! Three layers, each catching what the one before cannot:
//!
//! 1. **Expire before the server does.** Each idle connection's deadline is
//!    the smallest of the configured [`pool_idle_timeout`](ClientConfig::pool_idle_timeout)
//!    (4 s by default, under common server defaults), the server's
//!    `Keep-Alive: timeout=N` hint minus [`keep_alive_margin`](ClientConfig::keep_alive_margin),
//!    and the server's idle timeout *learned* from the closes the pool saw
//!    (`learn.rs`: the kernel dates each FIN), minus a margin.
//! 2. **Check before use.** At checkout a non-blocking `recv(MSG_PEEK)`
//!    finds a FIN, an RST, or bytes nobody asked for (a server's
//!    unsolicited `408`) on an idle connection; the pool evicts it and tries
//!    the next one.
//! 3. **Retry what is safe.** What still slips through — the server's close
//!    crossing the request on the wire — fails on a *reused* connection
//!    before any response byte. Such a request is sent again once, on a
//!    new connection, if it is replayable ([`ReplayPolicy`]) or provably
//!    nothing of it was written. Anything else reaches the caller with
//!    [`Error::may_have_been_processed`](crate::Error::may_have_been_processed).
//!
//! # HTTPS
//!
//! `https` URLs are served over TLS (rustls, `ring`), with certificates
//! verified against Mozilla's roots unless the client or the request is
//! given another [`TlsConfig`](crate::tls::TlsConfig)
//! ([`ClientBuilder::tls`], [`RequestBuilder::tls`]). The SNI name is the
//! URL's host (none for an IP address); ALPN offers `http/1.1`. The pool
//! key ([`HostKey`]) holds the scheme and the TLS configuration's identity,
//! so a connection is never reused across schemes, host names or TLS
//! settings (see [`crate::tls`]). A failed handshake is a connect error
//! ([`ErrorKind::TlsCertificate`](crate::ErrorKind::TlsCertificate) or
//! [`ErrorKind::TlsHandshake`](crate::ErrorKind::TlsHandshake)): nothing
//! was sent.
//!
//! The three layers above hold over TLS. The checkout peek still runs on
//! the TCP socket, and bytes found there go through rustls without
//! blocking: a `close_notify` and a FIN without one both mark the
//! connection stale, TLS 1.3 session tickets do not (`stream.rs`). A
//! server's close that crosses a request reads as EOF or a reset, exactly
//! as over TCP, so the same retry rule applies. The dead-path check and the
//! idle-timeout learner read `TCP_INFO` from the socket under the TLS
//! session. A body delimited by the connection's close must end with the
//! server's `close_notify`: a bare FIN there is an error (a truncation an
//! attacker could cause), not the body's end. A head or a body whose
//! framing says more is due is cut alike by either close:
//! [`ErrorKind::IncompleteResponse`](crate::ErrorKind::IncompleteResponse),
//! as over TCP.
//!
//! ```no_run
//! use connpool::http::Client;
//! use connpool::tls::{TlsConfig, rustls::RootCertStore};
//!
//! # fn my_ca() -> connpool::tls::rustls::pki_types::CertificateDer<'static> { unimplemented!() }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), connpool::Error> {
//! let mut roots = RootCertStore::empty();
//! roots.add(my_ca()).unwrap();
//! let client = Client::builder()
//!     .tls(TlsConfig::builder().root_store(roots).build()?)
//!     .build();
//! let resp = client.get("https://internal.example:8443/health").send().await?;
//! # Ok(()) }
//! ```
//!
//! # Where a connection goes after a response
//!
//! Back to the pool the moment the body's end is read, even while the
//! caller holds the [`Response`]; drained in the background within limits
//! when the body is dropped early; closed on any error, on
//! `Connection: close` from either side, and for close-delimited bodies.
//! See [`Response`].
//!
//! # What the wire code guarantees
//!
//! Requests: `Host`, `Content-Length` or chunked bodies, and no way for a
//! header value or the target to inject CR or LF. Responses (parsed with
//! `httparse`): status line, headers within size and count limits,
//! `Content-Length` (duplicates and conflicts refused), chunked with
//! trailers, close-delimited bodies, 1xx interim responses skipped,
//! HEAD/204/304 without a body.

mod body;
mod client;
mod config;
mod conn;
mod learn;
mod path;
mod replay;
mod response;
mod stream;
mod trace;
mod watch;
pub(crate) mod wire;

pub use body::{Body, BoxError};
pub use client::{Client, ClientBuilder, IntoUrl, RequestBuilder};
pub use config::ClientConfig;
pub use conn::HostKey;
pub use replay::ReplayPolicy;
pub use response::{Response, ResponseBody};
pub use trace::{RequestTrace, TraceStep};
pub use wire::KeepAliveHint;
