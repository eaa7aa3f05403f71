//! Responses: what a route answers, and how it is written to the socket.
//!
//! A route builds a [`Response`] with its own header fields and body; the
//! connection adds the fields that depend on the connection (`x-request-id`,
//! `Keep-Alive`, `Connection`) and writes it with [`write_response`].

use std::fmt::Write as _;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Responses are written in pieces of at most this many bytes, so that a
/// large body is never held in memory at once.
const WRITE_PIECE: usize = 64 * 1024;
/// The largest chunk `/chunked/N` writes.
pub(super) const CHUNK_LEN: usize = 1000;
/// The chunk extension on the first chunk of `/chunked/N`.
pub(super) const CHUNK_EXTENSION: &str = ";testkit=first";

/// The body of a response.
#[derive(Debug)]
pub(super) enum Body {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `n` bytes of the [`pattern_byte`] pattern, generated while writing.
    Pattern(usize),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Bytes(bytes) => bytes.len(),
            Body::Pattern(len) => *len,
        }
    }
}

/// How the body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// `Content-Length` (added here).
    Length,
    /// `Transfer-Encoding: chunked` with a `x-checksum` trailer (added here).
    Chunked,
    /// Neither: the body ends when the connection closes.
    CloseDelimited,
    /// No body and no length field (204, 304).
    NoBody,
    /// The route wrote the framing fields itself; the body is written as is.
    Verbatim,
}

/// Whether the route closes the connection after its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RouteClose {
    /// No: the usual keep-alive rules apply.
    No,
    /// Yes, and the response says `Connection: close`.
    Announced,
    /// Yes, without warning (a truncated response).
    Rude,
}

/// A response as built by a route.
#[derive(Debug)]
pub(super) struct Response {
    /// Bytes written before the response head (interim responses).
    pub(super) interim: &'static [u8],
    pub(super) status: u16,
    /// Header fields specific to the route, in order.
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Body,
    pub(super) framing: Framing,
    pub(super) close: RouteClose,
}

impl Response {
    /// A `Content-Length` response with `body`.
    pub(super) fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            interim: b"",
            status,
            headers: Vec::new(),
            body: Body::Bytes(body.into()),
            framing: Framing::Length,
            close: RouteClose::No,
        }
    }

    /// `200 OK` with body `ok`.
    pub(super) fn ok() -> Self {
        Self::new(200, "ok")
    }

    /// Adds a header field.
    pub(super) fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Whether the route set a header field called `name` (any case).
    pub(super) fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(field, _)| field.eq_ignore_ascii_case(name))
    }
}

/// The byte at position `index` of every generated body: `a` to `z`, over
/// and over.
pub(super) fn pattern_byte(index: usize) -> u8 {
    // `index % 26 < 26`, so the cast cannot truncate.
    b'a' + (index % 26) as u8
}

/// Appends bytes `start..end` of the pattern to `out`.
fn push_pattern(out: &mut Vec<u8>, start: usize, end: usize) {
    out.extend((start..end).map(pattern_byte));
}

/// The reason phrase for `status`.
pub(super) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        425 => "Too Early",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Writes `response` (interim responses, head, and unless `head_only` the
/// body), adding `extra` header fields after the route's own. Calls
/// `before_last_write` just before handing the last bytes to `writer`.
pub(super) async fn write_response<W: AsyncWrite + Unpin>(
    writer: &mut W,
    response: &Response,
    extra: &[(&str, String)],
    head_only: bool,
    before_last_write: impl FnOnce(),
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(response.interim);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        // Writing to a String cannot fail.
        let _ = write!(head, "{name}: {value}\r\n");
    }
    match response.framing {
        Framing::Length => {
            let _ = write!(head, "Content-Length: {}\r\n", response.body.len());
        }
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\nTrailer: x-checksum\r\n"),
        Framing::CloseDelimited | Framing::NoBody | Framing::Verbatim => {}
    }
    for (name, value) in extra {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());

    if !head_only && response.framing != Framing::NoBody {
        if response.framing == Framing::Chunked {
            write_chunked(writer, &mut out, &response.body).await?;
        } else {
            write_plain(writer, &mut out, &response.body).await?;
        }
    }
    before_last_write();
    writer.write_all(&out).await
}

/// Appends `body` to `out`, writing `out` whenever it grows past a piece.
async fn write_plain<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut Vec<u8>,
    body: &Body,
) -> std::io::Result<()> {
    match body {
        Body::Bytes(bytes) => out.extend_from_slice(bytes),
        Body::Pattern(len) => {
            let mut written = 0;
            while written < *len {
                let end = (written + WRITE_PIECE).min(*len);
                push_pattern(out, written, end);
                written = end;
                if out.len() >= WRITE_PIECE {
                    writer.write_all(out).await?;
                    out.clear();
                }
            }
        }
    }
    Ok(())
}

/// Appends `body` chunked to `out` (chunks of up to [`CHUNK_LEN`], the
/// first with [`CHUNK_EXTENSION`], an `x-checksum` trailer), writing `out`
/// whenever it grows past a piece.
async fn write_chunked<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut Vec<u8>,
    body: &Body,
) -> std::io::Result<()> {
    let len = body.len();
    let mut checksum: u32 = 0;
    let mut start = 0;
    while start < len {
        let end = (start + CHUNK_LEN).min(len);
        let extension = if start == 0 { CHUNK_EXTENSION } else { "" };
        out.extend_from_slice(format!("{:x}{extension}\r\n", end - start).as_bytes());
        let data_start = out.len();
        match body {
            Body::Bytes(bytes) => out.extend_from_slice(&bytes[start..end]),
            Body::Pattern(_) => push_pattern(out, start, end),
        }
        checksum = out[data_start..]
            .iter()
            .fold(checksum, |sum, &byte| sum.wrapping_add(u32::from(byte)));
        out.extend_from_slice(b"\r\n");
        start = end;
        if out.len() >= WRITE_PIECE {
            writer.write_all(out).await?;
            out.clear();
        }
    }
    // With an empty body the last chunk is also the first.
    let extension = if len == 0 { CHUNK_EXTENSION } else { "" };
    out.extend_from_slice(format!("0{extension}\r\nx-checksum: {checksum}\r\n\r\n").as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn encode(response: &Response, head_only: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let extra = [("Connection", "close".to_owned())];
        write_response(&mut out, response, &extra, head_only, || {})
            .await
            .expect("writing to a Vec");
        out
    }

    #[tokio::test]
    async fn writes_length_responses() {
        assert_eq!(
            encode(&Response::ok().header("x-a", "1"), false).await,
            b"HTTP/1.1 200 OK\r\nx-a: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
        assert_eq!(
            encode(&Response::ok(), true).await,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn writes_chunked_responses_with_extension_and_checksum() {
        let response = Response {
            body: Body::Pattern(2500),
            framing: Framing::Chunked,
            ..Response::ok()
        };
        let out = encode(&response, false).await;
        let text = String::from_utf8(out).expect("ASCII");
        let (_, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(body.starts_with("3e8;testkit=first\r\nabc"), "{body}");
        let sum: u32 = (0..2500).map(|i| u32::from(pattern_byte(i))).sum();
        assert!(
            body.ends_with(&format!(
                "\r\n1f4\r\n{}\r\n0\r\nx-checksum: {sum}\r\n\r\n",
                {
                    let tail: Vec<u8> = (2000..2500).map(pattern_byte).collect();
                    String::from_utf8(tail).expect("ASCII")
                }
            )),
            "{body}"
        );
    }
}
