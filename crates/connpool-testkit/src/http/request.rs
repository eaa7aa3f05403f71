//! Reading requests: the head (parsed with `httparse`) and the body
//! (`Content-Length` or chunked).
//!
//! Everything here is synchronous and works on the connection's buffer; the
//! connection task (`connection.rs`) does the reading and calls these
//! functions each time more bytes arrived.

use bytes::{Buf, BytesMut};

/// The longest request head accepted, in bytes. A longer one is a bad request.
pub(super) const MAX_HEAD_LEN: usize = 64 * 1024;
/// The most header fields a request head may have.
const MAX_HEADERS: usize = 128;
/// The largest request body accepted, in bytes (bodies are kept in memory).
pub(super) const MAX_BODY_LEN: u64 = 64 * 1024 * 1024;
/// The longest chunk-size line (extensions included) or trailer section.
const MAX_CHUNK_LINE_LEN: usize = 4096;

/// Why a request was rejected with `400 Bad Request`. The text goes into the
/// response body.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadRequest(pub(super) &'static str);

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyKind {
    /// No body (no `Content-Length`, no `Transfer-Encoding`).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head, before its body was read.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) method: String,
    pub(super) target: String,
    /// `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub(super) minor_version: u8,
    /// Header fields in order, names lowercased.
    pub(super) headers: Vec<(String, Vec<u8>)>,
    pub(super) body: BodyKind,
}

impl Head {
    /// Whether the client asked for `100 Continue` before it sends a body.
    pub(super) fn expects_continue(&self) -> bool {
        let has_body = match self.body {
            BodyKind::None | BodyKind::Length(0) => false,
            BodyKind::Length(_) | BodyKind::Chunked => true,
        };
        has_body
            && self.minor_version == 1
            && values(&self.headers, "expect")
                .any(|value| value.eq_ignore_ascii_case(b"100-continue"))
    }

    /// The full request, once its body was read.
    pub(super) fn with_body(self, body: Vec<u8>) -> Request {
        Request {
            method: self.method,
            target: self.target,
            minor_version: self.minor_version,
            headers: self.headers,
            body,
        }
    }
}

/// A fully read request.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: String,
    /// The request target as sent (path and query).
    pub(super) target: String,
    /// `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub(super) minor_version: u8,
    /// Header fields in order, names lowercased.
    pub(super) headers: Vec<(String, Vec<u8>)>,
    pub(super) body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (lowercase), as text.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        values(&self.headers, name).find_map(|value| std::str::from_utf8(value).ok())
    }

    /// The `x-request-id` header, trimmed.
    pub(super) fn id(&self) -> Option<String> {
        self.header("x-request-id").map(|id| id.trim().to_owned())
    }

    /// Whether this is a `HEAD` request (no response body).
    pub(super) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The path: the target without its query.
    pub(super) fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The value of query parameter `key` (no percent-decoding).
    pub(super) fn query(&self, key: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == key).then_some(value)
        })
    }

    /// Whether the connection must close after the response: HTTP/1.1 with a
    /// `close` connection option, or HTTP/1.0 without `keep-alive`.
    pub(super) fn wants_close(&self) -> bool {
        let mut close = false;
        let mut keep_alive = false;
        for value in values(&self.headers, "connection") {
            for token in value.split(|&byte| byte == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        close || (self.minor_version == 0 && !keep_alive)
    }
}

/// The values of every header field called `name` (lowercase).
fn values<'h, 'n>(
    headers: &'h [(String, Vec<u8>)],
    name: &'n str,
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
    headers
        .iter()
        .filter(move |(field, _)| field == name)
        .map(|(_, value)| value.as_slice())
}

/// Parses a request head at the start of `buf` and removes it from `buf`.
/// `Ok(None)`: the head is not complete yet (read more and call again).
pub(super) fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, BadRequest> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_LEN => {
            return Err(BadRequest("request head too long"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(BadRequest("too many header fields")),
        Err(_) => return Err(BadRequest("malformed request head")),
    };
    if head_len > MAX_HEAD_LEN {
        return Err(BadRequest("request head too long"));
    }
    // All three are always set once parsing completed.
    let (Some(method), Some(target), Some(minor_version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Err(BadRequest("malformed request line"));
    };
    let headers: Vec<(String, Vec<u8>)> = parsed
        .headers
        .iter()
        .map(|field| (field.name.to_ascii_lowercase(), field.value.to_vec()))
        .collect();
    let body = body_kind(&headers, minor_version)?;
    let head = Head {
        method: method.to_owned(),
        target: target.to_owned(),
        minor_version,
        headers,
        body,
    };
    buf.advance(head_len);
    Ok(Some(head))
}

/// Works out how the body is delimited (RFC 9112, section 6.3), rejecting
/// the ambiguous cases a careful server rejects.
fn body_kind(headers: &[(String, Vec<u8>)], minor_version: u8) -> Result<BodyKind, BadRequest> {
    let mut codings = Vec::new();
    for value in values(headers, "transfer-encoding") {
        for coding in value.split(|&byte| byte == b',') {
            codings.push(coding.trim_ascii().to_ascii_lowercase());
        }
    }
    let mut length: Option<u64> = None;
    for value in values(headers, "content-length") {
        for item in value.split(|&byte| byte == b',') {
            let item = item.trim_ascii();
            let parsed = std::str::from_utf8(item)
                .ok()
                .filter(|text| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or(BadRequest("invalid content-length"))?;
            if length.is_some_and(|previous| previous != parsed) {
                return Err(BadRequest("conflicting content-length"));
            }
            length = Some(parsed);
        }
    }

    if !codings.is_empty() {
        if length.is_some() {
            return Err(BadRequest("both transfer-encoding and content-length"));
        }
        if minor_version == 0 {
            return Err(BadRequest("transfer-encoding in an HTTP/1.0 request"));
        }
        if codings.len() != 1 || codings[0] != b"chunked" {
            return Err(BadRequest("unsupported transfer-encoding"));
        }
        return Ok(BodyKind::Chunked);
    }
    match length {
        Some(length) if length > MAX_BODY_LEN => Err(BadRequest("request body too large")),
        Some(length) => Ok(BodyKind::Length(length)),
        None => Ok(BodyKind::None),
    }
}

/// Where a [`ChunkedDecoder`] is in the chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes still to come.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: expecting trailer fields and the final CRLF.
    Trailers,
    /// The whole body was read.
    Done,
}

/// Decodes a chunked request body incrementally, as bytes arrive.
#[derive(Debug)]
pub(super) struct ChunkedDecoder {
    state: ChunkState,
    body: Vec<u8>,
}

impl ChunkedDecoder {
    pub(super) fn new() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            body: Vec::new(),
        }
    }

    /// Whether the last chunk and the trailer section were read.
    pub(super) fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// The decoded body.
    pub(super) fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// Decodes as much of `input` as possible and returns how many bytes it
    /// consumed (the caller removes them). Stops at the end of the body.
    pub(super) fn feed(&mut self, input: &[u8]) -> Result<usize, BadRequest> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                ChunkState::Done => return Ok(pos),
                ChunkState::Size => {
                    // httparse reads an empty size as zero: reject it here.
                    if rest.first().is_some_and(|byte| !byte.is_ascii_hexdigit()) {
                        return Err(BadRequest("invalid chunk size"));
                    }
                    match httparse::parse_chunk_size(rest) {
                        Ok(httparse::Status::Complete((len, 0))) => {
                            pos += len;
                            self.state = ChunkState::Trailers;
                        }
                        Ok(httparse::Status::Complete((len, size))) => {
                            let total = (self.body.len() as u64).saturating_add(size);
                            if total > MAX_BODY_LEN {
                                return Err(BadRequest("request body too large"));
                            }
                            pos += len;
                            self.state = ChunkState::Data(size);
                        }
                        Ok(httparse::Status::Partial) if rest.len() > MAX_CHUNK_LINE_LEN => {
                            return Err(BadRequest("chunk size line too long"));
                        }
                        Ok(httparse::Status::Partial) => return Ok(pos),
                        Err(_) => return Err(BadRequest("invalid chunk size")),
                    }
                }
                ChunkState::Data(remaining) => {
                    let available = u64::try_from(rest.len()).unwrap_or(u64::MAX);
                    let take = remaining.min(available);
                    // `take <= rest.len()`, so it fits in usize.
                    let take_len = usize::try_from(take).unwrap_or(rest.len());
                    self.body.extend_from_slice(&rest[..take_len]);
                    pos += take_len;
                    if take == remaining {
                        self.state = ChunkState::DataEnd;
                    } else {
                        self.state = ChunkState::Data(remaining - take);
                        return Ok(pos);
                    }
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(BadRequest("chunk data not followed by CRLF"));
                    }
                    pos += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(rest, &mut fields) {
                        Ok(httparse::Status::Complete((len, _))) => {
                            pos += len;
                            self.state = ChunkState::Done;
                        }
                        Ok(httparse::Status::Partial) if rest.len() > MAX_CHUNK_LINE_LEN => {
                            return Err(BadRequest("trailer section too long"));
                        }
                        Ok(httparse::Status::Partial) => return Ok(pos),
                        Err(_) => return Err(BadRequest("malformed trailer section")),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, as a slow client would send
    /// it, and returns the body and the bytes left over.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), BadRequest> {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = Vec::new();
        let mut sent = 0;
        while !decoder.is_done() {
            assert!(sent < input.len(), "input ended before the body did");
            let end = (sent + step).min(input.len());
            buf.extend_from_slice(&input[sent..end]);
            sent = end;
            let consumed = decoder.feed(&buf)?;
            buf.drain(..consumed);
        }
        buf.extend_from_slice(&input[sent..]);
        Ok((decoder.into_body(), buf))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers_in_any_split() {
        let input = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 1\r\n\r\nNEXT";
        for step in 1..=input.len() {
            let (body, rest) = decode_in_steps(input, step).expect("valid body");
            assert_eq!(body, b"hello world", "step {step}");
            assert_eq!(rest, b"NEXT", "step {step}");
        }
    }

    #[test]
    fn decodes_an_empty_body_without_trailers() {
        let (body, rest) = decode_in_steps(b"0\r\n\r\n", 1).expect("valid body");
        assert!(body.is_empty());
        assert!(rest.is_empty());
    }

    #[test]
    fn rejects_bad_chunks() {
        for input in [
            &b"\r\nhello\r\n0\r\n\r\n"[..],
            b"zz\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(decode_in_steps(input, input.len()).is_err(), "{input:?}");
        }
    }

    fn head(text: &str) -> Result<Option<Head>, BadRequest> {
        parse_head(&mut BytesMut::from(text.as_bytes()))
    }

    #[test]
    fn works_out_body_framing() {
        let kind = |text: &str| head(text).map(|head| head.expect("complete").body);
        assert_eq!(kind("GET / HTTP/1.1\r\n\r\n"), Ok(BodyKind::None));
        assert_eq!(
            kind("POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\n"),
            Ok(BodyKind::Length(7))
        );
        assert_eq!(
            kind("POST / HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7, 7\r\n\r\n"),
            Ok(BodyKind::Length(7))
        );
        assert_eq!(
            kind("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(BodyKind::Chunked)
        );
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +7\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(head("GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None)));
    }

    #[test]
    fn reads_connection_options_and_query() {
        let request = |text: &str| {
            head(text)
                .expect("valid")
                .expect("complete")
                .with_body(Vec::new())
        };
        assert!(!request("GET / HTTP/1.1\r\n\r\n").wants_close());
        assert!(request("GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").wants_close());
        assert!(request("GET / HTTP/1.0\r\n\r\n").wants_close());
        assert!(!request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").wants_close());

        let hint = request("GET /keep-alive-hint?timeout=5&max=7 HTTP/1.1\r\n\r\n");
        assert_eq!(hint.path(), "/keep-alive-hint");
        assert_eq!(hint.query("timeout"), Some("5"));
        assert_eq!(hint.query("max"), Some("7"));
        assert_eq!(hint.query("other"), None);
    }
}
