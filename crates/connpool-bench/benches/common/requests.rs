//! One request as each client of `http_clients` and `https_clients` makes
//! it: a `GET` of the URL (handed over as a `&str`, as calling code does),
//! the body read to its end and checked; and the raw floors' exchange.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::Connect;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BoxError, check};

/// `client.get(url).send().await?.bytes().await?`.
pub async fn connpool_get(client: &connpool::http::Client, url: &str) -> Result<(), BoxError> {
    let resp = client.get(url).send().await?;
    let status = resp.status().as_u16();
    check(status, &resp.bytes().await?)
}

/// hyper-util's legacy client with an `Empty<Bytes>` body; the response
/// body collected.
pub async fn hyper_get<C>(
    client: &hyper_util::client::legacy::Client<C, Empty<Bytes>>,
    url: &str,
) -> Result<(), BoxError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let req = http::Request::get(url).body(Empty::<Bytes>::new())?;
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    check(status, &resp.into_body().collect().await?.to_bytes())
}

/// `client.get(url).send().await?.bytes().await?`.
pub async fn reqwest_get(client: &reqwest::Client, url: &str) -> Result<(), BoxError> {
    let resp = client.get(url).send().await?;
    let status = resp.status().as_u16();
    check(status, &resp.bytes().await?)
}

/// A raw floor's new connection: TCP, `TCP_NODELAY` on.
pub async fn connect_nodelay(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A raw floor's request: writes `request`, reads exactly the length of
/// `response` (at most 128 bytes) and checks that it is `response`.
pub async fn raw_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
    response: &[u8],
) -> Result<(), BoxError> {
    stream.write_all(request).await?;
    let mut buf = [0u8; 128];
    let buf = &mut buf[..response.len()];
    stream.read_exact(buf).await?;
    if buf != response {
        return Err(format!("unexpected response: {:?}", String::from_utf8_lossy(buf)).into());
    }
    Ok(())
}
