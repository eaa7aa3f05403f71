//! An HTTP/1.1 client whose keep-alive pool never surfaces a
//! stale-connection error for a request that is safe to send again.
//!
//! ```no_run
//! use connpool::http::Client;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), connpool::Error> {
//! let client = Client::new();
//! let text = client.get("http://127.0.0.1:8080/").send().await?.text().await?;
//! # Ok(()) }
//! ```

mod body;
mod client;
mod config;
mod conn;
mod learn;
mod replay;
mod response;
mod trace;
pub(crate) mod wire;

pub use body::{Body, BoxError};
pub use client::{Client, ClientBuilder, IntoUrl, RequestBuilder};
pub use config::ClientConfig;
pub use conn::HostKey;
pub use replay::ReplayPolicy;
pub use response::{Response, ResponseBody};
pub use trace::{RequestTrace, TraceStep};
