//! [`Response`] and its [`ResponseBody`], which holds the connection until
//! the body's end and decides its fate there.
//!
//! The rules (DESIGN.md: a connection goes back only at a message
//! boundary):
//!
//! * The moment the body's last byte is read (by the caller, or by
//!   [`Response::bytes`] and friends) the connection goes back to the pool,
//!   even while the caller still holds the `Response`. Its idle deadline
//!   is the smallest of the pool's idle timeout, the server's
//!   `Keep-Alive: timeout` hint minus the margin, and the learned timeout;
//!   a hint no larger than the margin, `Connection: close` from either
//!   side, `Keep-Alive: max=0`, a close-delimited body, or bytes past the
//!   end of the response close it instead.
//! * A body dropped before its end is *drained* in the background (a task
//!   on the current tokio runtime) if at most `drain_max_bytes` remain and
//!   it finishes within `drain_timeout`; then the connection goes back.
//!   Otherwise it is closed. Nothing is leaked either way.
//! * Any error while reading closes the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

use super::client::{ClientInner, Conn};
use super::conn::HttpConn;
use super::stream::Stream;
use super::trace::{RequestTrace, TraceStep, Tracer};
use super::wire::{Chunk, ChunkedDecoder, Framing, KeepAliveHint, ResponseHead};
use crate::error::RequestFate;
use crate::events::ConnId;
use crate::{Error, ErrorKind};

/// A response: status and headers, and a body still on the connection.
///
/// The body holds the connection until its end:
///
/// * The moment the body's last byte is read (by the caller, or by
///   [`Response::bytes`] and friends) the connection goes back to the
///   pool, even while the caller still holds the `Response`.
/// * A body dropped before its end is drained in the background if at most
///   [`drain_max_bytes`](super::ClientConfig::drain_max_bytes) remain and it
///   ends within [`drain_timeout`](super::ClientConfig::drain_timeout);
///   then the connection goes back. Otherwise it is closed.
/// * Any error while reading closes the connection, and so do
///   `Connection: close` from either side, `Keep-Alive: max=0`, a hint no
///   larger than the margin, a close-delimited body and bytes past the
///   response's end.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), connpool::Error> {
/// let client = connpool::http::Client::new();
/// let resp = client.get("http://127.0.0.1:8080/").send().await?;
/// println!("{} via connection #{} (reused: {})",
///     resp.status(), resp.connection_id(), resp.connection_reused());
/// let body = resp.bytes().await?; // the connection is back in the pool
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Response {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: ResponseBody,
    conn_id: ConnId,
    reused: bool,
    tracer: Tracer,
}

/// The body of a [`Response`], as an [`http_body::Body`] of [`Bytes`].
///
/// Reading it to its end returns the connection to the pool; dropping it
/// early drains or closes the connection (see [`Response`]).
pub struct ResponseBody {
    /// The rest of the body, read with the head: its connection went back
    /// to the pool before the response was returned.
    ready: Option<Bytes>,
    reader: Option<Box<Reader>>,
    /// Trailers of a chunked body, kept by [`ResponseBody::chunk`] (as an
    /// `http_body::Body` they are the last frame instead).
    trailers: Option<HeaderMap>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("done", &(self.ready.is_none() && self.reader.is_none()))
            .finish()
    }
}

/// How the body's end is found.
enum Decoder {
    /// `Content-Length`: this many bytes remain.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Until the server closes.
    Close,
}

struct Reader {
    conn: Option<Conn>,
    decoder: Decoder,
    /// Why the connection cannot be reused, if it cannot.
    no_reuse: Option<&'static str>,
    hint: KeepAliveHint,
    client: Arc<ClientInner>,
    tracer: Tracer,
    /// The whole-request deadline, if the request has one.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Attached to errors: the request was sent (a response came), on a
    /// new or reused connection, after how many attempts.
    fate: RequestFate,
}

/// Builds the response for a parsed head; the body takes the connection.
pub(crate) fn start_body(
    client: Arc<ClientInner>,
    mut conn: Conn,
    head: ResponseHead,
    sent_close: bool,
    tracer: Tracer,
    deadline: Option<tokio::time::Instant>,
    attempts: u32,
) -> Response {
    let conn_id = conn.id();
    let reused = conn.is_reused();
    conn.responses = conn.responses.saturating_add(1);
    let no_reuse = if sent_close {
        Some("the request said Connection: close")
    } else if head.framing == Framing::CloseDelimited {
        Some("the body ends when the server closes")
    } else if !head.keep_alive {
        Some("the server said Connection: close")
    } else if head.hint.max == Some(0) {
        Some("the server said Keep-Alive: max=0")
    } else {
        None
    };
    let decoder = match head.framing {
        Framing::Empty => Decoder::Length(0),
        Framing::Length(n) => Decoder::Length(n),
        Framing::Chunked => {
            Decoder::Chunked(ChunkedDecoder::new(client.config.max_response_head_bytes))
        }
        Framing::CloseDelimited => Decoder::Close,
    };
    let mut reader = Reader {
        conn: Some(conn),
        decoder,
        no_reuse,
        hint: head.hint,
        client,
        tracer: tracer.clone(),
        // Armed below, only for a body that must still be read.
        deadline: None,
        fate: RequestFate {
            may_have_been_processed: true,
            connection_reused: reused,
            attempts,
            delivery: None,
        },
    };
    // A body that arrived whole with its head (most small responses) is
    // taken now and the connection goes back at once: it is free for the
    // next request before the caller reads a byte, and no reader is
    // allocated.
    let arrived = match (&reader.decoder, reader.conn.as_deref_mut()) {
        (Decoder::Length(n), Some(c)) if *n <= c.read_buf.len() as u64 => {
            Some((*n > 0).then(|| c.read_buf.split_to(*n as usize).freeze()))
        }
        _ => None,
    };
    let body = match arrived {
        Some(ready) => {
            reader.finish();
            ResponseBody {
                ready,
                reader: None,
                trailers: None,
            }
        }
        None => {
            reader.deadline = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
            ResponseBody {
                ready: None,
                reader: Some(Box::new(reader)),
                trailers: None,
            }
        }
    };
    Response {
        status: head.status,
        version: head.version,
        headers: head.headers,
        body,
        conn_id,
        reused,
        tracer,
    }
}

impl Reader {
    /// The body ended cleanly: return the connection, or close it.
    fn finish(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let config = &self.client.config;
        if let Some(why) = self.no_reuse {
            return close(conn, &self.tracer, why);
        }
        if !conn.read_buf.is_empty() || conn.stream.holds_input() {
            return close(conn, &self.tracer, "bytes past the end of the response");
        }
        let margin = config.keep_alive_margin;
        let mut deadline = None;
        if let (true, Some(hint)) = (config.obey_keep_alive_hint, self.hint.timeout) {
            if hint <= margin {
                return close(
                    conn,
                    &self.tracer,
                    "the server's Keep-Alive timeout is within the margin",
                );
            }
            deadline = Some(hint - margin);
        }
        let learner = &self.client.pool.manager().learner;
        if let Some(learned) = learner.idle_deadline(conn.key()) {
            deadline = Some(deadline.map_or(learned, |d: Duration| d.min(learned)));
        }
        if let Some(d) = deadline {
            if d.is_zero() {
                return close(
                    conn,
                    &self.tracer,
                    "the learned idle timeout is within the margin",
                );
            }
            conn.set_idle_timeout(d);
        }
        conn.release_read_buf();
        if self.tracer.is_on() {
            let idle_deadline = match (deadline, config.pool_idle_timeout) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.tracer
                .record(TraceStep::ConnReturned { idle_deadline });
        }
        conn.release();
    }

    /// Reading failed: close the connection and say where.
    fn fail(&mut self, err: Error) -> Error {
        let err = match &self.conn {
            Some(conn) => err.with_key(conn.key()),
            None => err,
        }
        .with_fate(self.fate);
        if let Some(conn) = self.conn.take() {
            close(conn, &self.tracer, "an error while reading the body");
        }
        err
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        loop {
            if let Some(deadline) = &mut self.deadline {
                if deadline.as_mut().poll(cx).is_ready() {
                    let err = Error::new(
                        ErrorKind::RequestTimeout,
                        "the request timed out while its body was being read",
                    );
                    return Poll::Ready(Some(Err(self.fail(err))));
                }
            }
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let c: &mut HttpConn = conn;
            match &mut self.decoder {
                Decoder::Length(0) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Decoder::Length(remaining) => {
                    if !c.read_buf.is_empty() {
                        let n = (*remaining).min(c.read_buf.len() as u64) as usize;
                        let data = c.read_buf.split_to(n).freeze();
                        *remaining -= n as u64;
                        if *remaining == 0 {
                            self.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Decoder::Chunked(decoder) => match decoder.decode(&mut c.read_buf) {
                    Ok(Chunk::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Chunk::End) => {
                        let trailers = decoder.take_trailers();
                        self.finish();
                        return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                    }
                    Ok(Chunk::NeedMore) => {}
                    Err(e) => return Poll::Ready(Some(Err(self.fail(e)))),
                },
                Decoder::Close => {
                    if !c.read_buf.is_empty() {
                        let data = c.read_buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            // The buffer holds nothing usable: read more.
            let close_delimited = matches!(self.decoder, Decoder::Close);
            let n = match ready!(poll_fill(c, cx, close_delimited)) {
                Ok(n) => n,
                Err(e) => return Poll::Ready(Some(Err(self.fail(Error::from_io(e))))),
            };
            if n == 0 {
                if close_delimited {
                    self.finish();
                    return Poll::Ready(None);
                }
                let err = Error::new(
                    ErrorKind::IncompleteResponse,
                    match self.decoder {
                        Decoder::Length(remaining) => {
                            format!(
                                "the connection closed with {remaining} body bytes still to come"
                            )
                        }
                        _ => "the connection closed in the middle of a chunked body".to_string(),
                    },
                );
                return Poll::Ready(Some(Err(self.fail(err))));
            }
        }
    }

    /// Reads the rest of a dropped body, within the drain limits; returns
    /// the connection if the end was reached, closes it otherwise.
    async fn drain(mut self: Box<Self>) {
        let max_bytes = self.client.config.drain_max_bytes;
        let timeout = self.client.config.drain_timeout;
        let reader = &mut *self;
        let drained = tokio::time::timeout(timeout, async {
            let mut total: u64 = 0;
            loop {
                match std::future::poll_fn(|cx| reader.poll_frame(cx)).await {
                    None => return true,
                    Some(Ok(frame)) => {
                        total += frame.data_ref().map_or(0, |d| d.len() as u64);
                        if total > max_bytes {
                            return false;
                        }
                    }
                    Some(Err(_)) => return false,
                }
            }
        })
        .await;
        if !matches!(drained, Ok(true)) {
            if let Some(conn) = self.conn.take() {
                close(
                    conn,
                    &self.tracer,
                    "the dropped body could not be drained within the limits",
                );
            }
        }
    }

    /// Whether a dropped body is worth draining.
    fn drainable(&self) -> bool {
        self.no_reuse.is_none()
            && match &self.decoder {
                Decoder::Length(remaining) => *remaining <= self.client.config.drain_max_bytes,
                Decoder::Chunked(_) => true,
                Decoder::Close => false,
            }
    }
}

fn close(conn: Conn, tracer: &Tracer, why: &'static str) {
    tracer.record(TraceStep::ConnClosed { why });
    conn.discard();
}

/// Reads what the socket has into the connection's buffer; 0 bytes at the
/// end of the stream.
///
/// Under TLS a FIN without `close_notify` (rustls's `UnexpectedEof`) is
/// the end of the stream too, as plain TCP reports any FIN: where the
/// framing says more bytes are due (a head begun, a body with a length or
/// chunked) it is the same truncation, and before a response began the
/// same stale connection. Only a `close_delimited` body needs
/// `close_notify` to tell its end from a cut: for it the bare FIN stays an
/// error.
pub(crate) fn poll_fill(
    c: &mut HttpConn,
    cx: &mut Context<'_>,
    close_delimited: bool,
) -> Poll<std::io::Result<usize>> {
    c.ensure_read_buf();
    let tls = match &mut c.stream {
        Stream::Plain(tcp) => loop {
            match tcp.try_read_buf(&mut c.read_buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    ready!(tcp.poll_read_ready(cx))?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        },
        Stream::Tls(tls) => tls,
    };
    let filled = {
        let mut buf = ReadBuf::uninit(c.read_buf.spare_capacity_mut());
        match ready!(Pin::new(&mut **tls).poll_read(cx, &mut buf)) {
            Ok(()) => {}
            // Reported once every decrypted byte was read: nothing filled.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !close_delimited => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
        buf.filled().len()
    };
    // SAFETY: `poll_read` initialized the first `filled` bytes of the
    // spare capacity (a `ReadBuf` counts only what was written into it).
    unsafe { c.read_buf.set_len(c.read_buf.len() + filled) };
    Poll::Ready(Ok(filled))
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let Some(mut reader) = self.reader.take() else {
            return;
        };
        if reader.conn.is_none() {
            return;
        }
        if reader.drainable() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(reader.drain());
                return;
            }
        }
        if let Some(conn) = reader.conn.take() {
            close(conn, &reader.tracer, "the body was dropped before its end");
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if let Some(data) = this.ready.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        let Some(reader) = this.reader.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(reader.poll_frame(cx));
        if reader.conn.is_none() {
            // Ended (or failed): nothing more to read.
            this.reader = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_none() && self.reader.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if let Some(data) = &self.ready {
            return SizeHint::with_exact(data.len() as u64);
        }
        match self.reader.as_deref().map(|r| &r.decoder) {
            None => SizeHint::with_exact(0),
            Some(Decoder::Length(n)) => SizeHint::with_exact(*n),
            Some(_) => SizeHint::default(),
        }
    }
}

impl ResponseBody {
    /// The next chunk of data, or `None` at the end. Trailers are skipped
    /// (see [`ResponseBody::trailers`]).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let frame =
                std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut *self), cx))
                    .await;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => return Ok(Some(data)),
                    Err(frame) => self.trailers = frame.into_trailers().ok(),
                },
            }
        }
    }

    /// The trailers of a chunked body, once [`chunk`](Self::chunk) has
    /// returned `None`.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// Reads the whole body.
    pub async fn collect_bytes(&mut self) -> Result<Bytes, Error> {
        let first = match self.chunk().await? {
            None => return Ok(Bytes::new()),
            Some(first) => first,
        };
        let Some(second) = self.chunk().await? else {
            return Ok(first);
        };
        let mut all = BytesMut::with_capacity(first.len() + second.len());
        all.extend_from_slice(&first);
        all.extend_from_slice(&second);
        while let Some(more) = self.chunk().await? {
            all.extend_from_slice(&more);
        }
        Ok(all.freeze())
    }
}

impl Response {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version of the response.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The pool's id of the connection that carried the response.
    pub fn connection_id(&self) -> ConnId {
        self.conn_id
    }

    /// Whether that connection had served earlier requests.
    pub fn connection_reused(&self) -> bool {
        self.reused
    }

    /// The request's trace so far, when tracing was on for it (see
    /// [`RequestTrace`]). After the body's end it includes the
    /// connection's fate.
    pub fn trace(&self) -> Option<RequestTrace> {
        self.tracer.snapshot()
    }

    /// The body, to read frame by frame.
    pub fn body_mut(&mut self) -> &mut ResponseBody {
        &mut self.body
    }

    /// The next chunk of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.body.chunk().await
    }

    /// Reads the whole body.
    pub async fn bytes(mut self) -> Result<Bytes, Error> {
        self.body.collect_bytes().await
    }

    /// Reads the whole body as text (invalid UTF-8 is replaced, as
    /// browsers and reqwest do).
    pub async fn text(self) -> Result<String, Error> {
        let bytes = self.bytes().await?;
        Ok(match String::from_utf8(bytes.to_vec()) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Reads the whole body as JSON.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] if it is not valid JSON for `T`.
    #[cfg(feature = "json")]
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                "the response body is not the expected JSON",
            )
            .with_source(e)
        })
    }

    /// Converts into an [`http::Response`] with a streaming body.
    pub fn into_http(self) -> http::Response<ResponseBody> {
        let mut resp = http::Response::new(self.body);
        *resp.status_mut() = self.status;
        *resp.version_mut() = self.version;
        *resp.headers_mut() = self.headers;
        resp
    }

    /// The body alone.
    pub fn into_body(self) -> ResponseBody {
        self.body
    }
}
