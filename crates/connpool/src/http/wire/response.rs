//! Parsing a response head (RFC 9112 §4, §5) and deciding how its body is
//! delimited (RFC 9112 §6.3) and whether the connection can be reused
//! afterwards (RFC 9112 §9.3).
//!
//! The bytes are parsed by `httparse`; this module adds the limits, the
//! framing decision and the reuse decision, which is where a pool gets
//! hurt: a body delimited wrongly leaves the next response's bytes (or the
//! rest of this one) on the connection, and the next request on it reads
//! garbage, or worse, someone else's response.
//!
//! Framing, in the order of RFC 9112 §6.3:
//!
//! 1. A response to `HEAD`, and every `1xx`, `204` and `304` response, has
//!    no body: [`Framing::Empty`], whatever `Content-Length` or
//!    `Transfer-Encoding` say (they are kept in the headers, not used).
//! 2. A `2xx` response to `CONNECT` turns the connection into a tunnel:
//!    [`Framing::CloseDelimited`], never reused (a `204` keeps rule 1's
//!    `Empty` but is not reused either).
//! 3. With `Transfer-Encoding` whose last coding is `chunked`:
//!    [`Framing::Chunked`]. With any other last coding the body runs to
//!    the close: [`Framing::CloseDelimited`]. If `Content-Length` is also
//!    present, `Transfer-Encoding` wins but the connection is not reused:
//!    the message may be a smuggling attempt, and whoever sits between us
//!    and the server may have framed it the other way (RFC 9112 §6.3 ¶3).
//!    An HTTP/1.0 response with `Transfer-Encoding` is treated as having
//!    faulty framing: not reused (RFC 9112 §6.1). `chunked` applied twice
//!    is refused (RFC 9112 §6.1 forbids it).
//! 4. Else `Content-Length`: exactly one field holding exactly one plain
//!    decimal number: [`Framing::Length`]. Any repetition, even of the
//!    same value (two fields, or `5, 5`), is refused, because two parsers
//!    that resolve it differently are how responses get split.
//! 5. Else the body runs until the server closes: [`Framing::CloseDelimited`].
//!
//! Reuse (`keep_alive`): HTTP/1.1 is persistent unless `Connection` lists
//! `close`; HTTP/1.0 is not unless it lists `keep-alive` (RFC 9112 §9.3,
//! §C.2.2). A body delimited by the close is never followed by reuse.
//!
//! Leniency, decided one by one:
//!
//! * Accepted: HTTP/1.0 responses; several spaces between the status line
//!   parts; a missing reason phrase; empty lines before the status line
//!   (some servers send a stray CRLF after a body); a bare LF as line end
//!   in the head (RFC 9112 §2.2 allows recipients to accept it, and the
//!   head's end is found the same way whichever we accept).
//! * Refused: whitespace between a field name and its colon (RFC 9112
//!   §5.1: `Transfer-Encoding : chunked` is a classic smuggling vector,
//!   since an intermediary that ignores that line frames the body
//!   differently than we would); obsolete line folding (RFC 9112 §5.2
//!   lets a user agent replace it with spaces, but a folded line is far
//!   more often an injection than a 1990s server); invalid field lines
//!   (never skipped: a skipped line could have been the framing one).
//!
//! Limits: the head is parsed only within its first `max_head_bytes`
//! bytes, so a peer sending an endless head costs bounded work per call;
//! at most `max_headers` field lines.

use std::mem::MaybeUninit;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};

use super::{
    KeepAliveHint, is_digits, is_tchar, list_elements, parse_decimal, quote_bytes, trim_ows,
};
use crate::{Error, ErrorKind};

/// Bounds on a response head, which the peer controls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadLimits {
    /// Largest head accepted, status line and final empty line included.
    pub(crate) max_head_bytes: usize,
    /// Most header field lines accepted.
    pub(crate) max_headers: usize,
}

impl Default for HeadLimits {
    /// 64 KiB and 100 fields: far above what real servers send, far below
    /// what would hurt.
    fn default() -> HeadLimits {
        HeadLimits {
            max_head_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes (possibly 0).
    Length(u64),
    /// Chunked transfer coding: decode with `ChunkedDecoder`.
    Chunked,
    /// Everything until the server closes the connection.
    CloseDelimited,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    /// The status code; `1xx` heads are returned too.
    pub(crate) status: StatusCode,
    /// `HTTP_11` or `HTTP_10`.
    pub(crate) version: Version,
    /// All header fields, in order, names lowercase.
    pub(crate) headers: HeaderMap,
    /// How the body that follows is delimited.
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request once this
    /// response's body has been read to its end.
    pub(crate) keep_alive: bool,
    /// The server's `Keep-Alive` hint.
    pub(crate) hint: KeepAliveHint,
}

/// Header slots kept on the stack; more are allocated.
const STACK_HEADERS: usize = 128;
/// The shortest possible header line, `a:\n`: no head of `n` bytes holds
/// more than `n / 3` fields, so there is no point in more slots.
const MIN_FIELD_LINE: usize = 3;

/// Parses one response head at the start of `buf`.
///
/// `buf` must start where the response starts: right after the previous
/// response's body (empty lines there are skipped). Returns `Ok(None)`
/// when `buf` holds only part of a head: call again with more bytes
/// appended, from the same start. `Ok(Some((head, consumed)))` when the
/// head is complete: the body (if any) starts at `buf[consumed..]`.
///
/// Errors: [`ErrorKind::HeadersTooLarge`] when no complete head fits in
/// `max_head_bytes` (even if `buf` is still short of a complete head),
/// [`ErrorKind::TooManyHeaders`], [`ErrorKind::MalformedResponse`].
pub(crate) fn parse_head(
    buf: &[u8],
    request_method: &Method,
    limits: &HeadLimits,
) -> Result<Option<(ResponseHead, usize)>, Error> {
    // Uninitialized slots: zeroing 128 of them would cost more than
    // parsing a typical head.
    if limits.max_headers <= STACK_HEADERS {
        let mut slots = [const { MaybeUninit::uninit() }; STACK_HEADERS];
        let slots = slots.get_mut(..limits.max_headers).unwrap_or_default();
        parse_with_slots(buf, request_method, limits, slots)
    } else {
        let n = limits
            .max_headers
            .min(limits.max_head_bytes / MIN_FIELD_LINE + 1);
        let mut slots = Vec::with_capacity(n);
        parse_with_slots(buf, request_method, limits, slots.spare_capacity_mut())
    }
}

fn parser_config() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    // Harmless: the status line's parts are still unambiguous.
    config.allow_multiple_spaces_in_response_status_delimiters(true);
    // The other options stay off, see the module docs: no space before a
    // colon, no line folding, no whitespace before the first field, no
    // skipping of invalid lines.
    config
}

fn parse_with_slots<'b>(
    buf: &'b [u8],
    request_method: &Method,
    limits: &HeadLimits,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<(ResponseHead, usize)>, Error> {
    // Parsing only the first `max_head_bytes` bounds the work a peer can
    // cause, and makes "complete" imply "within the limit".
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let mut response = httparse::Response::new(&mut []);
    let parsed = parser_config().parse_response_with_uninit_headers(&mut response, window, slots);
    let consumed = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head_bytes => {
            return Err(Error::new(
                ErrorKind::HeadersTooLarge,
                format!(
                    "response head larger than {} bytes (max_head_bytes)",
                    limits.max_head_bytes
                ),
            ));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(parse_error(e, window, limits)),
    };

    let version = match response.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        other => {
            return Err(malformed(format!(
                "unsupported HTTP version 1.{}",
                other.unwrap_or_default()
            )));
        }
    };
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code)
        .map_err(|_| malformed(format!("invalid status code {code:03} in status line")))?;
    // The rules below read the parsed fields, not the map: one pass over a
    // handful of fields beats a hashed lookup per rule.
    let fields = Fields(response.headers);
    let (framing, reusable) = framing(status, version, request_method, fields)?;
    let keep_alive = reusable && connection_persists(version, fields);
    let hint = KeepAliveHint::from_values(fields.values("keep-alive"));
    let headers = header_map(response.headers)?;
    Ok(Some((
        ResponseHead {
            status,
            version,
            headers,
            framing,
            keep_alive,
            hint,
        },
        consumed,
    )))
}

/// The parsed field lines, for the framing and reuse rules.
#[derive(Clone, Copy)]
struct Fields<'a>(&'a [httparse::Header<'a>]);

impl<'a> Fields<'a> {
    /// The values of every field named `name` (lowercase), in order.
    fn values(self, name: &'static str) -> impl Iterator<Item = &'a [u8]> {
        self.0
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value)
    }

    fn contains(self, name: &'static str) -> bool {
        self.values(name).next().is_some()
    }

    /// Whether any field named `name` lists `token`, as `Connection` does
    /// (RFC 9110 §7.6.1).
    fn has_token(self, name: &'static str, token: &str) -> bool {
        self.values(name)
            .any(|value| list_elements(value).any(|e| e.eq_ignore_ascii_case(token.as_bytes())))
    }
}

fn malformed(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::MalformedResponse, message)
}

fn header_map(fields: &[httparse::Header<'_>]) -> Result<HeaderMap, Error> {
    let too_many = |_| {
        Error::new(
            ErrorKind::TooManyHeaders,
            format!(
                "response has {} header fields, more than a header map holds",
                fields.len()
            ),
        )
    };
    let mut headers = HeaderMap::try_with_capacity(fields.len()).map_err(too_many)?;
    for field in fields {
        // httparse only yields token names, so this cannot fail today;
        // it is checked anyway rather than trusted.
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| {
            malformed(format!(
                "invalid header name {}",
                quote_bytes(field.name.as_bytes())
            ))
        })?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| {
            malformed(format!(
                "invalid value {} for header {name}",
                quote_bytes(field.value)
            ))
        })?;
        headers.try_append(name, value).map_err(too_many)?;
    }
    Ok(headers)
}

/// The framing of the body, and whether that framing allows reuse.
fn framing(
    status: StatusCode,
    version: Version,
    method: &Method,
    fields: Fields<'_>,
) -> Result<(Framing, bool), Error> {
    let tunnel = *method == Method::CONNECT && status.is_success();
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || *method == Method::HEAD
    {
        return Ok((Framing::Empty, !tunnel));
    }
    if tunnel {
        return Ok((Framing::CloseDelimited, false));
    }
    if fields.contains("transfer-encoding") {
        if !last_coding_is_chunked(fields)? {
            return Ok((Framing::CloseDelimited, false));
        }
        let suspicious = fields.contains("content-length") || version == Version::HTTP_10;
        return Ok((Framing::Chunked, !suspicious));
    }
    match content_length(fields)? {
        Some(n) => Ok((Framing::Length(n), true)),
        None => Ok((Framing::CloseDelimited, false)),
    }
}

/// Whether the last transfer coding, across all `Transfer-Encoding`
/// fields, is `chunked`.
fn last_coding_is_chunked(fields: Fields<'_>) -> Result<bool, Error> {
    let mut last: Option<&[u8]> = None;
    let mut chunked = 0usize;
    for field in fields.values("transfer-encoding") {
        for coding in list_elements(field) {
            if coding.eq_ignore_ascii_case(b"chunked") {
                chunked += 1;
            }
            last = Some(coding);
        }
    }
    if chunked > 1 {
        return Err(malformed(
            "Transfer-Encoding applies chunked more than once",
        ));
    }
    Ok(last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")))
}

/// The one `Content-Length` value, if the header is present; any
/// repetition, conflict or non-number is an error.
fn content_length(fields: Fields<'_>) -> Result<Option<u64>, Error> {
    let mut first: Option<u64> = None;
    let mut count = 0usize;
    for field in fields.values("content-length") {
        // Not a list field, but senders that merge fields write `5, 5`;
        // split to say "duplicate" or "conflicting" rather than "invalid".
        for piece in field.split(|&b| b == b',') {
            let piece = trim_ows(piece);
            let Some(n) = parse_decimal(piece) else {
                return Err(malformed(if is_digits(piece) {
                    format!(
                        "Content-Length {} does not fit in 64 bits",
                        quote_bytes(piece)
                    )
                } else {
                    format!(
                        "invalid Content-Length {}: not a decimal number",
                        quote_bytes(field)
                    )
                }));
            };
            count += 1;
            match first {
                None => first = Some(n),
                Some(f) if f != n => {
                    return Err(malformed(format!(
                        "conflicting Content-Length values {f} and {n}"
                    )));
                }
                Some(_) => {}
            }
        }
    }
    if count > 1 {
        return Err(malformed(format!(
            "duplicate Content-Length ({count} values, all {})",
            first.unwrap_or_default()
        )));
    }
    Ok(first)
}

/// Whether the server intends to keep the connection open (RFC 9112 §9.3).
fn connection_persists(version: Version, fields: Fields<'_>) -> bool {
    if fields.has_token("connection", "close") {
        return false;
    }
    version == Version::HTTP_11 || fields.has_token("connection", "keep-alive")
}

/// Turns an `httparse` error into one that says which part was wrong,
/// quoting the offending line when it can be found.
fn parse_error(e: httparse::Error, window: &[u8], limits: &HeadLimits) -> Error {
    let status_line = || quote_bytes(lines(window).next().unwrap_or_default());
    match e {
        httparse::Error::TooManyHeaders => Error::new(
            ErrorKind::TooManyHeaders,
            format!(
                "response has more than {} header fields (max_headers)",
                limits.max_headers
            ),
        ),
        httparse::Error::Version => malformed(format!(
            "invalid status line {}: not an HTTP/1.x response",
            status_line()
        )),
        httparse::Error::Status => malformed(format!(
            "invalid status line {}: bad status code or separator",
            status_line()
        )),
        httparse::Error::HeaderName => match field_lines(window).find(|l| !valid_name(l)) {
            Some(line) if line.starts_with(b" ") || line.starts_with(b"\t") => malformed(format!(
                "obsolete line folding (a header line starting with whitespace, \
                 RFC 9112 §5.2) in response head: {}",
                quote_bytes(line)
            )),
            Some(line) => malformed(format!("invalid header line {}", quote_bytes(line))),
            None => malformed("invalid header name in response head"),
        },
        httparse::Error::HeaderValue => match field_lines(window).find(|l| !valid_value(l)) {
            Some(line) => malformed(format!(
                "invalid header value in line {}",
                quote_bytes(line)
            )),
            None => malformed("invalid header value in response head"),
        },
        httparse::Error::NewLine => malformed("invalid line ending in response head"),
        httparse::Error::Token => malformed("invalid token in response head"),
    }
}

/// The head's lines, without line ends, from the status line on (empty
/// lines before it skipped, as httparse does).
fn lines(window: &[u8]) -> impl Iterator<Item = &[u8]> {
    window
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .skip_while(|l| l.is_empty())
}

/// The field lines: after the status line, up to the empty line.
fn field_lines(window: &[u8]) -> impl Iterator<Item = &[u8]> {
    lines(window).skip(1).take_while(|l| !l.is_empty())
}

fn valid_name(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(colon) => line
            .get(..colon)
            .is_some_and(|name| !name.is_empty() && name.iter().all(|&b| is_tchar(b))),
        None => false,
    }
}

fn valid_value(line: &[u8]) -> bool {
    let value = line
        .iter()
        .position(|&b| b == b':')
        .and_then(|colon| line.get(colon + 1..))
        .unwrap_or_default();
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::wire::XorShift;
    use std::time::Duration;

    fn try_parse(raw: &[u8], method: &Method) -> Result<Option<(ResponseHead, usize)>, Error> {
        parse_head(raw, method, &HeadLimits::default())
    }

    /// Parses a complete head that must take all of `raw`.
    fn head_for(raw: &[u8], method: &Method) -> ResponseHead {
        let (head, consumed) = try_parse(raw, method)
            .expect("valid head")
            .expect("complete head");
        assert_eq!(consumed, raw.len());
        head
    }

    fn head(raw: &[u8]) -> ResponseHead {
        head_for(raw, &Method::GET)
    }

    fn error_for(raw: &[u8], method: &Method) -> Error {
        match try_parse(raw, method) {
            Err(e) => e,
            Ok(Some((head, _))) => panic!("expected an error, got {head:?}"),
            Ok(None) => panic!("expected an error, got incomplete"),
        }
    }

    fn malformed_msg(raw: &[u8]) -> String {
        let e = error_for(raw, &Method::GET);
        assert_eq!(e.kind(), ErrorKind::MalformedResponse, "{e}");
        e.to_string()
    }

    #[test]
    fn simple_response() {
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\n");
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.version, Version::HTTP_11);
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.hint, KeepAliveHint::default());
        let xa: Vec<_> = h.headers.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
    }

    #[test]
    fn body_bytes_are_not_consumed() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let (_, consumed) = try_parse(raw, &Method::GET).unwrap().unwrap();
        assert_eq!(&raw[consumed..], b"hello");
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n";
        for end in 0..raw.len() {
            assert!(
                try_parse(&raw[..end], &Method::GET).unwrap().is_none(),
                "prefix of {end} bytes"
            );
        }
        head(raw);
    }

    #[test]
    fn lenient_but_harmless_forms() {
        let h = head(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.status, StatusCode::OK);
        head(b"HTTP/1.1  200  OK\r\nContent-Length: 0\r\n\r\n");
        head(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n");
        // A stray CRLF left after the previous body.
        let h = head(b"\r\nHTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(h.status, StatusCode::NO_CONTENT);
        let h = head(b"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Ws:   \r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.headers["x-empty"], "");
        assert_eq!(h.headers["x-ws"], "");
        let h = head(b"HTTP/1.1 200 OK\r\nX-Obs: caf\xe9\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.headers["x-obs"].as_bytes(), b"caf\xe9");
    }

    #[test]
    fn garbage_status_lines() {
        for (raw, what) in [
            (&b"garbage\r\n\r\n"[..], "not an HTTP/1.x response"),
            (b"HTTP/2.0 200 OK\r\n\r\n", "not an HTTP/1.x response"),
            (b"HTTP/1.1 abc OK\r\n\r\n", "bad status code"),
            (b"HTTP/1.1 20 OK\r\n\r\n", "bad status code"),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status code"),
            (b"HTTP/1.1\r\n\r\n", "invalid status line"),
            (b"ICY 200 OK\r\n\r\n", "not an HTTP/1.x response"),
        ] {
            let msg = malformed_msg(raw);
            assert!(msg.contains(what), "{raw:?}: {msg}");
            assert!(msg.contains("invalid status line"), "{raw:?}: {msg}");
        }
        let msg = malformed_msg(b"HTTP/1.1 000 Zero\r\n\r\n");
        assert!(msg.contains("invalid status code 000"), "{msg}");
    }

    #[test]
    fn bad_header_lines() {
        let msg = malformed_msg(b"HTTP/1.1 200 OK\r\nNo Colon Here\r\n\r\n");
        assert!(
            msg.contains(r#"invalid header line "No Colon Here""#),
            "{msg}"
        );
        let msg = malformed_msg(b"HTTP/1.1 200 OK\r\nBad\x01Name: x\r\n\r\n");
        assert!(msg.contains("invalid header line"), "{msg}");
        let msg = malformed_msg(b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n");
        assert!(
            msg.contains(r#"invalid header value in line "X-A: a\x01b""#),
            "{msg}"
        );
        let msg = malformed_msg(b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n");
        assert!(msg.contains("invalid header value"), "{msg}");
        malformed_msg(b"HTTP/1.1 200 OK\r\nX-A: a\r\r\n\r\n");
    }

    #[test]
    fn space_before_colon_is_refused() {
        let msg = malformed_msg(b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n");
        assert!(msg.contains("Transfer-Encoding : chunked"), "{msg}");
    }

    #[test]
    fn obsolete_line_folding_is_refused() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n Content-Length: 0\r\n\r\n",
        ] {
            let msg = malformed_msg(raw);
            assert!(msg.contains("obsolete line folding"), "{msg}");
        }
    }

    #[test]
    fn http10_keep_alive() {
        let h = head(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(h.version, Version::HTTP_10);
        assert!(!h.keep_alive);
        let h = head(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n");
        assert!(h.keep_alive);
        assert_eq!(h.framing, Framing::Length(2));
        let h =
            head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\n");
        assert!(!h.keep_alive);
        // Close-delimited: reading to the end means the end of the connection.
        let h = head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(h.framing, Framing::CloseDelimited);
        assert!(!h.keep_alive);
    }

    #[test]
    fn http11_connection_close() {
        for conn in ["close", "Close", "foo, CLOSE", "x,close,y"] {
            let raw = format!("HTTP/1.1 200 OK\r\nConnection: {conn}\r\nContent-Length: 0\r\n\r\n");
            assert!(!head(raw.as_bytes()).keep_alive, "{conn}");
        }
        let h = head(
            b"HTTP/1.1 200 OK\r\nConnection: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(!h.keep_alive);
        let h = head(b"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n");
        assert!(h.keep_alive);
    }

    #[test]
    fn informational_heads_are_returned() {
        for code in [100u16, 102, 103, 101] {
            let raw = format!(
                "HTTP/1.1 {code} Whatever\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\n"
            );
            let (h, consumed) = try_parse(raw.as_bytes(), &Method::POST).unwrap().unwrap();
            assert_eq!(h.status.as_u16(), code);
            assert_eq!(h.framing, Framing::Empty);
            assert!(h.keep_alive);
            assert!(raw[consumed..].starts_with("HTTP/1.1 200 OK"));
        }
        let h = head(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade, close\r\n\r\n");
        assert!(!h.keep_alive);
    }

    #[test]
    fn bodiless_statuses_and_head_ignore_framing_headers() {
        for raw in [
            &b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"[..],
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
            // Not even validated: these fields describe the body a GET would get.
            b"HTTP/1.1 204 No Content\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            let h = head(raw);
            assert_eq!(h.framing, Framing::Empty, "{raw:?}");
            assert!(h.keep_alive);
        }
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
        ] {
            let h = head_for(raw, &Method::HEAD);
            assert_eq!(h.framing, Framing::Empty, "{raw:?}");
            assert!(h.keep_alive);
        }
        let h = head_for(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
            &Method::HEAD,
        );
        assert_eq!(h.headers[http::header::CONTENT_LENGTH], "1234");
    }

    #[test]
    fn connect_success_is_a_tunnel() {
        let h = head_for(
            b"HTTP/1.1 200 Connection Established\r\nContent-Length: 5\r\n\r\n",
            &Method::CONNECT,
        );
        assert_eq!(h.framing, Framing::CloseDelimited);
        assert!(!h.keep_alive);
        let h = head_for(b"HTTP/1.1 204 No Content\r\n\r\n", &Method::CONNECT);
        assert_eq!(h.framing, Framing::Empty);
        assert!(!h.keep_alive);
        let h = head_for(
            b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 5\r\n\r\n",
            &Method::CONNECT,
        );
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
    }

    #[test]
    fn transfer_encoding_chunked() {
        for te in [
            "chunked",
            "Chunked",
            " CHUNKED ",
            "gzip, chunked",
            "gzip,chunked",
        ] {
            let raw = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n");
            let h = head(raw.as_bytes());
            assert_eq!(h.framing, Framing::Chunked, "{te}");
            assert!(h.keep_alive, "{te}");
        }
        let h = head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.keep_alive);
    }

    #[test]
    fn transfer_encoding_not_ending_in_chunked_is_close_delimited() {
        for te in [
            &b"gzip"[..],
            b"chunked, gzip",
            b"chunked;x=1",
            b"gzip;x=\"a, chunked\"",
            b"",
            b" , ",
        ] {
            let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ".to_vec();
            raw.extend_from_slice(te);
            raw.extend_from_slice(b"\r\n\r\n");
            let h = head(&raw);
            assert_eq!(h.framing, Framing::CloseDelimited, "{te:?}");
            assert!(!h.keep_alive, "{te:?}");
        }
        let h = head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::CloseDelimited);
    }

    #[test]
    fn chunked_twice_is_refused() {
        let msg = malformed_msg(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
        assert!(msg.contains("chunked more than once"), "{msg}");
        malformed_msg(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
    }

    #[test]
    fn transfer_encoding_with_content_length_is_not_reused() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            // Even an invalid Content-Length: the chunked framing wins.
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n",
        ] {
            let h = head(raw);
            assert_eq!(h.framing, Framing::Chunked);
            assert!(!h.keep_alive);
        }
        let h = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::CloseDelimited);
        assert!(!h.keep_alive);
    }

    #[test]
    fn http10_with_transfer_encoding_is_not_reused() {
        let h = head(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.keep_alive);
    }

    #[test]
    fn content_length_values() {
        for (cl, n) in [("0", 0u64), ("5", 5), (" 7 ", 7), ("\t8", 8), ("007", 7)] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n");
            assert_eq!(head(raw.as_bytes()).framing, Framing::Length(n), "{cl:?}");
        }
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(u64::MAX));
    }

    #[test]
    fn invalid_content_length() {
        for cl in [
            "abc", "-1", "+5", "5 5", "0x10", "5.0", "", "5;", "1e3", "\"5\"",
        ] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n");
            let msg = malformed_msg(raw.as_bytes());
            assert!(msg.contains("invalid Content-Length"), "{cl:?}: {msg}");
        }
        let msg = malformed_msg(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n");
        assert!(msg.contains("does not fit in 64 bits"), "{msg}");
        let msg = malformed_msg(b"HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n");
        assert!(msg.contains("invalid Content-Length"), "{msg}");
    }

    #[test]
    fn duplicate_content_length() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5,5,5\r\n\r\n",
        ] {
            let msg = malformed_msg(raw);
            assert!(msg.contains("duplicate Content-Length"), "{msg}");
        }
    }

    #[test]
    fn conflicting_content_length() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\ncontent-length: 5, 6\r\n\r\n",
        ] {
            let msg = malformed_msg(raw);
            assert!(
                msg.contains("conflicting Content-Length values 5 and 6"),
                "{msg}"
            );
        }
    }

    #[test]
    fn no_length_means_close_delimited() {
        let h = head(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(h.framing, Framing::CloseDelimited);
        assert!(!h.keep_alive);
    }

    #[test]
    fn keep_alive_hint_is_parsed() {
        let h =
            head(b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.hint.timeout, Some(Duration::from_secs(5)));
        assert_eq!(h.hint.max, Some(100));
    }

    #[test]
    fn oversize_head_split_across_calls() {
        let limits = HeadLimits {
            max_head_bytes: 100,
            max_headers: 100,
        };
        let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
        while raw.len() < 300 {
            raw.extend_from_slice(b"X-Filler: aaaaaaaaaa\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        let mut saw_error = false;
        for end in 1..=raw.len() {
            match parse_head(&raw[..end], &Method::GET, &limits) {
                Ok(None) => assert!(end < 100, "incomplete at {end}"),
                Ok(Some(_)) => panic!("oversize head accepted at {end}"),
                Err(e) => {
                    assert!(end >= 100, "error too early at {end}: {e}");
                    assert_eq!(e.kind(), ErrorKind::HeadersTooLarge);
                    assert!(
                        e.to_string()
                            .contains("larger than 100 bytes (max_head_bytes)"),
                        "{e}"
                    );
                    saw_error = true;
                }
            }
        }
        assert!(saw_error);
        let e = parse_head(&raw, &Method::GET, &HeadLimits::default());
        assert!(e.is_ok(), "fits the default limit");
    }

    #[test]
    fn head_exactly_at_the_limit_is_accepted() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nextra";
        let head_len = raw.len() - 5;
        let limits = HeadLimits {
            max_head_bytes: head_len,
            max_headers: 10,
        };
        let (_, consumed) = parse_head(raw, &Method::GET, &limits).unwrap().unwrap();
        assert_eq!(consumed, head_len);
        let limits = HeadLimits {
            max_head_bytes: head_len - 1,
            max_headers: 10,
        };
        let e = parse_head(raw, &Method::GET, &limits).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HeadersTooLarge);
    }

    fn with_fields(n: usize) -> Vec<u8> {
        let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..n {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw
    }

    #[test]
    fn too_many_headers() {
        for max in [0usize, 1, 5, 100, 128, 129, 500] {
            let limits = HeadLimits {
                max_head_bytes: 1 << 20,
                max_headers: max,
            };
            let (h, _) = parse_head(&with_fields(max), &Method::GET, &limits)
                .unwrap()
                .unwrap();
            assert_eq!(h.headers.len(), max);
            let e = parse_head(&with_fields(max + 1), &Method::GET, &limits).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TooManyHeaders, "{max}");
            assert!(
                e.to_string()
                    .contains(&format!("more than {max} header fields (max_headers)")),
                "{e}"
            );
        }
    }

    #[test]
    fn huge_max_headers_does_not_allocate_huge() {
        let limits = HeadLimits {
            max_head_bytes: 1024,
            max_headers: usize::MAX,
        };
        let (h, _) = parse_head(&with_fields(50), &Method::GET, &limits)
            .unwrap()
            .unwrap();
        assert_eq!(h.headers.len(), 50);
    }

    #[test]
    fn limits_default() {
        let l = HeadLimits::default();
        assert_eq!(l.max_head_bytes, 65536);
        assert_eq!(l.max_headers, 100);
    }

    const VALID: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nKeep-Alive: timeout=5, max=9\r\n\r\n",
        b"HTTP/1.0 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 5, 5\r\nX: \"q\"\r\n\r\n",
    ];

    /// How a growing parse ended.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Complete,
        Incomplete,
        Failed,
    }

    /// Parses `raw` as a client would, growing the buffer piece by piece;
    /// every call must return, never panic, and once complete, the head
    /// must be what a one-shot parse says.
    fn parse_growing(raw: &[u8], rng: &mut XorShift, limits: &HeadLimits) -> Outcome {
        let oneshot = parse_head(raw, &Method::GET, limits).map(|r| r.map(|(h, n)| (h.framing, n)));
        let mut end = 0;
        for piece in rng.splits(raw.len(), 16) {
            end += piece;
            match parse_head(&raw[..end], &Method::GET, limits) {
                Ok(None) => continue,
                Ok(Some((h, n))) => {
                    assert!(n <= end);
                    let Ok(Some(one)) = &oneshot else {
                        panic!("complete prefix but one-shot says {oneshot:?}: {raw:?}");
                    };
                    assert_eq!((h.framing, n), *one, "{raw:?}");
                    return Outcome::Complete;
                }
                Err(e) => {
                    let Err(one) = &oneshot else {
                        panic!("prefix fails with {e} but one-shot says {oneshot:?}: {raw:?}");
                    };
                    assert_eq!(e.kind(), one.kind(), "{raw:?}");
                    return Outcome::Failed;
                }
            }
        }
        Outcome::Incomplete
    }

    #[test]
    fn no_panic_on_random_and_mutated_heads() {
        let mut rng = XorShift::new(0x5eed_1234);
        let limits = HeadLimits {
            max_head_bytes: 512,
            max_headers: 8,
        };
        const ALPHABET: &[u8] =
            b"HTTP/1.0 200OK\r\n:;, \tContent-Length: chunked Transfer-Encoding 5\x00\xff";
        for _ in 0..3000 {
            let len = rng.below(200);
            let raw: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(4) == 0 {
                        rng.next_u64() as u8
                    } else {
                        ALPHABET[rng.below(ALPHABET.len())]
                    }
                })
                .collect();
            parse_growing(&raw, &mut rng, &limits);
            let mut prefixed = b"HTTP/1.1 200 OK\r\n".to_vec();
            prefixed.extend_from_slice(&raw);
            parse_growing(&prefixed, &mut rng, &limits);
        }
        let mut outcomes = [0usize; 3];
        for _ in 0..3000 {
            let valid = VALID[rng.below(VALID.len())];
            let raw = rng.mutate(valid);
            parse_growing(&raw, &mut rng, &limits);
            let outcome = parse_growing(&raw, &mut rng, &HeadLimits::default());
            outcomes[outcome as usize] += 1;
        }
        // The mutations must exercise every path, or this test proves little.
        assert!(outcomes.iter().all(|&n| n > 100), "{outcomes:?}");
    }
}
