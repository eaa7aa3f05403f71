//! Writing a request: the head (RFC 9112 §3, §5) and chunked body pieces
//! (RFC 9112 §7.1).
//!
//! [`encode_head`] works in two passes over the headers: the first
//! validates everything and measures the output, the second writes it
//! after one `reserve`. So a request that is refused leaves the buffer
//! exactly as it was, and a request that is accepted costs one allocation
//! at most.
//!
//! The rules, and why:
//!
//! * Nothing written may inject framing. The method must be a token
//!   (RFC 9110 §9.1), the target origin-form or `*` made of visible ASCII
//!   only (RFC 9112 §3.2; anything else must be percent-encoded by the
//!   caller), the host visible ASCII without `/`, and no header value may
//!   hold CR, LF or NUL (RFC 9110 §5.5). `http::HeaderValue` already
//!   forbids those, but its `from_maybe_shared_unchecked` can bypass the
//!   check in release builds, and one scan is cheap next to a request
//!   smuggled through our pool. Header names need no check: `http` offers
//!   no way to build an invalid one.
//! * `Host` comes first (RFC 9112 §3.2 asks for it). The caller's own
//!   `Host` header, if any, replaces the one made from the URL; two of
//!   them would get the request rejected (RFC 9112 §3.2), so that is
//!   refused here.
//! * The body framing headers are written by the codec, once, from
//!   [`BodyFraming`]: `Content-Length: n` or `Transfer-Encoding: chunked`
//!   (RFC 9112 §6.2, §6.1). A caller's `Content-Length` or
//!   `Transfer-Encoding` is accepted only when it says the same thing;
//!   anything else would make the server read a different body than the
//!   one we send. Requests whose method defines a body (`POST`, `PUT`,
//!   `PATCH`) get `Content-Length: 0` when they have none (RFC 9110 §8.6).
//! * `Connection: close` is added when asked for, unless the caller's
//!   `Connection` header already lists `close` (RFC 9112 §9.6).
//!
//! Header names are written as `http` stores them, lowercase: field names
//! are case-insensitive (RFC 9110 §5.1).

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method};

use super::{is_tchar, parse_decimal, quote_bytes, trim_ows, value_has_token};
use crate::{Error, ErrorKind};

/// How the request body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body at all.
    None,
    /// A body of exactly this many bytes, sent as is.
    Length(u64),
    /// A body of unknown length, sent with [`encode_chunk`] pieces and
    /// ended by [`LAST_CHUNK`].
    Chunked,
}

/// The last chunk and the empty trailer section that end a chunked body
/// (RFC 9112 §7.1).
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

const VERSION_CRLF: &[u8] = b" HTTP/1.1\r\n";
const HOST_PREFIX: &[u8] = b"host: ";
const CONTENT_LENGTH_PREFIX: &[u8] = b"content-length: ";
const CHUNKED_LINE: &[u8] = b"transfer-encoding: chunked\r\n";
const CLOSE_LINE: &[u8] = b"connection: close\r\n";
const CRLF: &[u8] = b"\r\n";
/// The longest decimal `u64`.
const MAX_DECIMAL_DIGITS: usize = 20;

/// Appends a request head to `buf`: request line, header fields, empty
/// line.
///
/// `target` is origin-form (`/path?query`) or `*`; `host` is the authority
/// for the `Host` header, used unless `headers` has its own `Host`. `body`
/// decides the framing headers; `close` asks for `Connection: close`.
/// See the module docs for the rules. On error `buf` is left unchanged and
/// the error is [`ErrorKind::InvalidRequest`].
pub(crate) fn encode_head(
    buf: &mut Vec<u8>,
    method: &Method,
    target: &str,
    host: &str,
    headers: &HeaderMap,
    body: BodyFraming,
    close: bool,
) -> Result<(), Error> {
    let plan = HeadPlan::new(method, target, host, headers, body, close)?;
    buf.reserve(plan.len);
    plan.write(buf, method, target, host, headers);
    Ok(())
}

/// Appends one chunk of a chunked body: `{len:x}\r\n{data}\r\n`.
///
/// Empty `data` appends nothing: a zero-size chunk is the last chunk and
/// would end the body early.
pub(crate) fn encode_chunk(buf: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    buf.reserve(16 + CRLF.len() + data.len() + CRLF.len());
    push_hex(buf, data.len() as u64);
    buf.extend_from_slice(CRLF);
    buf.extend_from_slice(data);
    buf.extend_from_slice(CRLF);
}

/// The framing header the codec writes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FramingLine {
    Nothing,
    ContentLength(u64),
    Chunked,
}

/// What the validation pass learned: everything the writing pass needs to
/// write without checking anything again.
struct HeadPlan<'h> {
    /// The caller's `Host` value, which replaces `host`.
    user_host: Option<&'h HeaderValue>,
    framing: FramingLine,
    add_close: bool,
    /// Exact number of bytes the head will take.
    len: usize,
}

impl<'h> HeadPlan<'h> {
    fn new(
        method: &Method,
        target: &str,
        host: &str,
        headers: &'h HeaderMap,
        body: BodyFraming,
        close: bool,
    ) -> Result<HeadPlan<'h>, Error> {
        check_method(method)?;
        check_target(target)?;
        let mut len = method.as_str().len() + 1 + target.len() + VERSION_CRLF.len();

        let mut user_host = None;
        let mut user_length = false;
        let mut user_chunked = false;
        let mut user_close = false;
        for (name, value) in headers {
            check_value(name.as_str(), value.as_bytes())?;
            if name == HOST {
                if user_host.is_some() {
                    return Err(invalid("more than one Host header"));
                }
                user_host = Some(value);
            } else if name == CONTENT_LENGTH {
                check_user_content_length(value, body)?;
                user_length = true;
            } else if name == TRANSFER_ENCODING {
                if user_chunked {
                    return Err(invalid(
                        "more than one Transfer-Encoding header (chunked may be applied only once)",
                    ));
                }
                check_user_transfer_encoding(value, body)?;
                user_chunked = true;
            } else {
                if name == CONNECTION && value_has_token(value, "close") {
                    user_close = true;
                }
                len += name.as_str().len() + 2 + value.len() + CRLF.len();
            }
        }

        match user_host {
            Some(value) => len += HOST_PREFIX.len() + value.len() + CRLF.len(),
            None => {
                check_host(host)?;
                len += HOST_PREFIX.len() + host.len() + CRLF.len();
            }
        }

        let framing = match body {
            BodyFraming::Length(n) => FramingLine::ContentLength(n),
            BodyFraming::Chunked => FramingLine::Chunked,
            // A user `Content-Length` here was checked to be 0.
            BodyFraming::None if user_length || body_expected(method) => {
                FramingLine::ContentLength(0)
            }
            BodyFraming::None => FramingLine::Nothing,
        };
        len += match framing {
            FramingLine::Nothing => 0,
            FramingLine::ContentLength(_) => {
                CONTENT_LENGTH_PREFIX.len() + MAX_DECIMAL_DIGITS + CRLF.len()
            }
            FramingLine::Chunked => CHUNKED_LINE.len(),
        };

        let add_close = close && !user_close;
        if add_close {
            len += CLOSE_LINE.len();
        }
        len += CRLF.len();

        Ok(HeadPlan {
            user_host,
            framing,
            add_close,
            len,
        })
    }

    fn write(
        &self,
        buf: &mut Vec<u8>,
        method: &Method,
        target: &str,
        host: &str,
        headers: &HeaderMap,
    ) {
        buf.extend_from_slice(method.as_str().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(target.as_bytes());
        buf.extend_from_slice(VERSION_CRLF);

        buf.extend_from_slice(HOST_PREFIX);
        match self.user_host {
            Some(value) => buf.extend_from_slice(value.as_bytes()),
            None => buf.extend_from_slice(host.as_bytes()),
        }
        buf.extend_from_slice(CRLF);

        for (name, value) in headers {
            if name == HOST || name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
                continue;
            }
            buf.extend_from_slice(name.as_str().as_bytes());
            buf.extend_from_slice(b": ");
            buf.extend_from_slice(value.as_bytes());
            buf.extend_from_slice(CRLF);
        }

        match self.framing {
            FramingLine::Nothing => {}
            FramingLine::ContentLength(n) => {
                buf.extend_from_slice(CONTENT_LENGTH_PREFIX);
                push_decimal(buf, n);
                buf.extend_from_slice(CRLF);
            }
            FramingLine::Chunked => buf.extend_from_slice(CHUNKED_LINE),
        }
        if self.add_close {
            buf.extend_from_slice(CLOSE_LINE);
        }
        buf.extend_from_slice(CRLF);
    }
}

/// Methods whose requests are expected to carry content, so a user agent
/// should send `Content-Length: 0` rather than nothing (RFC 9110 §8.6):
/// without it some servers wait for a body, others answer `411`.
fn body_expected(method: &Method) -> bool {
    *method == Method::POST || *method == Method::PUT || *method == Method::PATCH
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidRequest, message)
}

fn check_method(method: &Method) -> Result<(), Error> {
    let m = method.as_str().as_bytes();
    if m.is_empty() || !m.iter().all(|&b| is_tchar(b)) {
        return Err(invalid(format!(
            "method {} is not an HTTP token",
            quote_bytes(m)
        )));
    }
    Ok(())
}

/// The offset and value of the first byte outside visible ASCII
/// (0x21..=0x7E), if any.
fn first_invisible(bytes: &[u8]) -> Option<(usize, u8)> {
    bytes
        .iter()
        .enumerate()
        .find(|&(_, &b)| !(0x21..=0x7e).contains(&b))
        .map(|(i, &b)| (i, b))
}

fn check_target(target: &str) -> Result<(), Error> {
    if !(target.starts_with('/') || target == "*") {
        return Err(invalid(format!(
            "request target {} must start with '/' (origin-form) or be \"*\"",
            quote_bytes(target.as_bytes())
        )));
    }
    if let Some((at, b)) = first_invisible(target.as_bytes()) {
        return Err(invalid(format!(
            "request target has byte 0x{b:02x} at offset {at}; only visible ASCII is allowed \
             (percent-encode the rest)"
        )));
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), Error> {
    if let Some((at, b)) = first_invisible(host.as_bytes()) {
        return Err(invalid(format!(
            "host {} has byte 0x{b:02x} at offset {at}; only visible ASCII is allowed",
            quote_bytes(host.as_bytes())
        )));
    }
    if host.contains('/') {
        return Err(invalid(format!(
            "host {} contains '/'",
            quote_bytes(host.as_bytes())
        )));
    }
    Ok(())
}

/// Refuses a header value holding CR, LF or NUL: written out, it would end
/// the field line early and let the rest pass for more fields, or a body.
fn check_value(name: &str, value: &[u8]) -> Result<(), Error> {
    if let Some(at) = value
        .iter()
        .position(|&b| b == b'\r' || b == b'\n' || b == 0)
    {
        return Err(invalid(format!(
            "header {name} has a CR, LF or NUL byte at offset {at} of its value, \
             which would break the request's framing"
        )));
    }
    Ok(())
}

fn check_user_content_length(value: &HeaderValue, body: BodyFraming) -> Result<(), Error> {
    let raw = value.as_bytes();
    let Some(n) = parse_decimal(trim_ows(raw)) else {
        return Err(invalid(format!(
            "Content-Length header {} is not a single decimal number",
            quote_bytes(raw)
        )));
    };
    match body {
        BodyFraming::Length(len) if n == len => Ok(()),
        BodyFraming::Length(len) => Err(invalid(format!(
            "Content-Length header says {n} but the body is {len} bytes"
        ))),
        BodyFraming::None if n == 0 => Ok(()),
        BodyFraming::None => Err(invalid(format!(
            "Content-Length header says {n} but the request has no body"
        ))),
        // RFC 9112 §6.2: a sender MUST NOT send Content-Length with
        // Transfer-Encoding; a server could pick either to frame the body.
        BodyFraming::Chunked => Err(invalid(format!(
            "Content-Length header ({n}) cannot be sent with a chunked body"
        ))),
    }
}

fn check_user_transfer_encoding(value: &HeaderValue, body: BodyFraming) -> Result<(), Error> {
    let raw = value.as_bytes();
    match body {
        BodyFraming::Chunked if trim_ows(raw).eq_ignore_ascii_case(b"chunked") => Ok(()),
        // Any other coding would have to be applied by someone, and this
        // codec only frames with chunked.
        BodyFraming::Chunked => Err(invalid(format!(
            "Transfer-Encoding header {} is not supported; only \"chunked\" is",
            quote_bytes(raw)
        ))),
        BodyFraming::Length(_) | BodyFraming::None => Err(invalid(format!(
            "Transfer-Encoding header {} set but the body is not sent chunked",
            quote_bytes(raw)
        ))),
    }
}

/// Appends `n` in decimal without going through `fmt`.
pub(crate) fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; MAX_DECIMAL_DIGITS];
    let mut start = digits.len();
    loop {
        start -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// Appends `n` in lowercase hex without going through `fmt`.
fn push_hex(buf: &mut Vec<u8>, mut n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(digits.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT, HeaderName, USER_AGENT};

    fn encode(
        method: Method,
        target: &str,
        headers: &HeaderMap,
        body: BodyFraming,
        close: bool,
    ) -> Result<String, Error> {
        let mut buf = b"previous".to_vec();
        let result = encode_head(
            &mut buf,
            &method,
            target,
            "example.com",
            headers,
            body,
            close,
        );
        match result {
            Ok(()) => {
                let head = buf.strip_prefix(b"previous").expect("buf was appended to");
                Ok(String::from_utf8(head.to_vec()).expect("ascii head"))
            }
            Err(e) => {
                assert_eq!(buf, b"previous", "a refused head must leave buf unchanged");
                Err(e)
            }
        }
    }

    fn ok(
        method: Method,
        target: &str,
        headers: &HeaderMap,
        body: BodyFraming,
        close: bool,
    ) -> String {
        encode(method, target, headers, body, close).expect("valid request")
    }

    fn refused(
        method: Method,
        target: &str,
        headers: &HeaderMap,
        body: BodyFraming,
        close: bool,
    ) -> String {
        let err = encode(method, target, headers, body, close).expect_err("invalid request");
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        err.to_string()
    }

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for &(name, value) in pairs {
            h.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        h
    }

    #[test]
    fn simple_get() {
        let h = map(&[("accept", "*/*"), ("user-agent", "t")]);
        assert_eq!(
            ok(Method::GET, "/a?b=c", &h, BodyFraming::None, false),
            "GET /a?b=c HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\nuser-agent: t\r\n\r\n"
        );
    }

    #[test]
    fn reserve_is_exact_or_generous() {
        // The measured length must cover the output, or the single
        // reserve promise breaks.
        let h = map(&[
            ("accept", "*/*"),
            ("x-a", "1"),
            ("x-a", "2"),
            ("connection", "x"),
        ]);
        for body in [
            BodyFraming::None,
            BodyFraming::Length(0),
            BodyFraming::Length(u64::MAX),
            BodyFraming::Chunked,
        ] {
            for close in [false, true] {
                let plan =
                    HeadPlan::new(&Method::POST, "/", "example.com", &h, body, close).unwrap();
                let mut buf = Vec::new();
                plan.write(&mut buf, &Method::POST, "/", "example.com", &h);
                assert!(buf.len() <= plan.len, "{body:?} {close}");
                assert!(
                    plan.len - buf.len() <= MAX_DECIMAL_DIGITS,
                    "{body:?} {close}"
                );
            }
        }
    }

    #[test]
    fn repeated_headers_are_written_each() {
        let h = map(&[("x-a", "1"), ("x-a", "2")]);
        let head = ok(Method::GET, "/", &h, BodyFraming::None, false);
        assert!(head.contains("x-a: 1\r\nx-a: 2\r\n"), "{head}");
    }

    #[test]
    fn user_host_replaces_ours_once_and_first() {
        let h = map(&[("accept", "*/*"), ("host", "other.example:8080")]);
        let head = ok(Method::GET, "/", &h, BodyFraming::None, false);
        assert_eq!(
            head,
            "GET / HTTP/1.1\r\nhost: other.example:8080\r\naccept: */*\r\n\r\n"
        );
        assert_eq!(head.matches("host:").count(), 1);
    }

    #[test]
    fn two_user_hosts_are_refused() {
        let h = map(&[("host", "a"), ("host", "b")]);
        let msg = refused(Method::GET, "/", &h, BodyFraming::None, false);
        assert!(msg.contains("more than one Host"), "{msg}");
    }

    #[test]
    fn length_body_gets_content_length() {
        let head = ok(
            Method::PUT,
            "/",
            &HeaderMap::new(),
            BodyFraming::Length(12345),
            false,
        );
        assert!(head.ends_with("content-length: 12345\r\n\r\n"), "{head}");
        let head = ok(
            Method::GET,
            "/",
            &HeaderMap::new(),
            BodyFraming::Length(0),
            false,
        );
        assert!(head.ends_with("content-length: 0\r\n\r\n"), "{head}");
        let head = ok(
            Method::POST,
            "/",
            &HeaderMap::new(),
            BodyFraming::Length(u64::MAX),
            false,
        );
        assert!(
            head.contains(&format!("content-length: {}\r\n", u64::MAX)),
            "{head}"
        );
    }

    #[test]
    fn matching_user_content_length_is_written_once() {
        let h = map(&[("content-length", "5")]);
        let head = ok(Method::POST, "/", &h, BodyFraming::Length(5), false);
        assert_eq!(head.matches("content-length").count(), 1, "{head}");
        assert!(head.contains("content-length: 5\r\n"));
        // Twice the same value is still one line on the wire.
        let h = map(&[("content-length", "5"), ("content-length", " 5 ")]);
        let head = ok(Method::POST, "/", &h, BodyFraming::Length(5), false);
        assert_eq!(head.matches("content-length").count(), 1, "{head}");
    }

    #[test]
    fn contradicting_user_content_length_is_refused() {
        let h = map(&[("content-length", "6")]);
        let msg = refused(Method::POST, "/", &h, BodyFraming::Length(5), false);
        assert!(msg.contains("says 6 but the body is 5 bytes"), "{msg}");
        let h = map(&[("content-length", "5"), ("content-length", "6")]);
        refused(Method::POST, "/", &h, BodyFraming::Length(5), false);
        for bad in ["abc", "5, 5", "+5", "-1", ""] {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_LENGTH, HeaderValue::from_static(bad));
            let msg = refused(Method::POST, "/", &h, BodyFraming::Length(5), false);
            assert!(msg.contains("not a single decimal number"), "{msg}");
        }
    }

    #[test]
    fn user_content_length_without_body() {
        let h = map(&[("content-length", "0")]);
        let head = ok(Method::GET, "/", &h, BodyFraming::None, false);
        assert_eq!(head.matches("content-length: 0\r\n").count(), 1, "{head}");
        let h = map(&[("content-length", "3")]);
        let msg = refused(Method::GET, "/", &h, BodyFraming::None, false);
        assert!(msg.contains("no body"), "{msg}");
    }

    #[test]
    fn chunked_body_gets_transfer_encoding() {
        let head = ok(
            Method::POST,
            "/",
            &HeaderMap::new(),
            BodyFraming::Chunked,
            false,
        );
        assert!(
            head.ends_with("transfer-encoding: chunked\r\n\r\n"),
            "{head}"
        );
        assert!(!head.contains("content-length"));
    }

    #[test]
    fn user_transfer_encoding_chunked_is_written_once() {
        let h = map(&[("transfer-encoding", "Chunked")]);
        let head = ok(Method::POST, "/", &h, BodyFraming::Chunked, false);
        assert_eq!(head.matches("transfer-encoding").count(), 1, "{head}");
    }

    #[test]
    fn other_user_transfer_encodings_are_refused() {
        for bad in ["gzip", "gzip, chunked", "chunked, chunked", "identity"] {
            let mut h = HeaderMap::new();
            h.insert(TRANSFER_ENCODING, HeaderValue::from_static(bad));
            let msg = refused(Method::POST, "/", &h, BodyFraming::Chunked, false);
            assert!(msg.contains("only \"chunked\""), "{msg}");
        }
        let h = map(&[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked"),
        ]);
        let msg = refused(Method::POST, "/", &h, BodyFraming::Chunked, false);
        assert!(msg.contains("more than one Transfer-Encoding"), "{msg}");
        let h = map(&[("transfer-encoding", "chunked")]);
        refused(Method::POST, "/", &h, BodyFraming::Length(3), false);
        refused(Method::POST, "/", &h, BodyFraming::None, false);
    }

    #[test]
    fn content_length_with_chunked_is_refused() {
        let h = map(&[("content-length", "5")]);
        let msg = refused(Method::POST, "/", &h, BodyFraming::Chunked, false);
        assert!(msg.contains("cannot be sent with a chunked body"), "{msg}");
    }

    #[test]
    fn bodiless_post_put_patch_send_zero_length() {
        for m in [Method::POST, Method::PUT, Method::PATCH] {
            let head = ok(m.clone(), "/", &HeaderMap::new(), BodyFraming::None, false);
            assert!(head.ends_with("content-length: 0\r\n\r\n"), "{m} {head}");
        }
        for m in [Method::GET, Method::HEAD, Method::DELETE, Method::OPTIONS] {
            let head = ok(m.clone(), "/", &HeaderMap::new(), BodyFraming::None, false);
            assert!(!head.contains("content-length"), "{m} {head}");
        }
    }

    #[test]
    fn close_adds_connection_close_once() {
        let head = ok(Method::GET, "/", &HeaderMap::new(), BodyFraming::None, true);
        assert!(head.ends_with("connection: close\r\n\r\n"), "{head}");
        let h = map(&[("connection", "Upgrade, Close")]);
        let head = ok(Method::GET, "/", &h, BodyFraming::None, true);
        assert_eq!(
            head.to_ascii_lowercase().matches("close").count(),
            1,
            "{head}"
        );
        let h = map(&[("connection", "keep-alive")]);
        let head = ok(Method::GET, "/", &h, BodyFraming::None, true);
        assert!(
            head.contains("connection: keep-alive\r\nconnection: close\r\n"),
            "{head}"
        );
        let head = ok(
            Method::GET,
            "/",
            &HeaderMap::new(),
            BodyFraming::None,
            false,
        );
        assert!(!head.contains("connection"), "{head}");
    }

    #[test]
    fn asterisk_target_is_allowed() {
        let head = ok(
            Method::OPTIONS,
            "*",
            &HeaderMap::new(),
            BodyFraming::None,
            false,
        );
        assert!(head.starts_with("OPTIONS * HTTP/1.1\r\n"));
    }

    #[test]
    fn extension_methods_are_written() {
        let m = Method::from_bytes(b"PURGE").unwrap();
        let head = ok(m, "/", &HeaderMap::new(), BodyFraming::None, false);
        assert!(head.starts_with("PURGE / HTTP/1.1\r\n"));
    }

    #[test]
    fn bad_targets_are_refused() {
        for bad in [
            "",
            "a/b",
            "http://x/",
            "/a b",
            "/a\r\nx-injected: 1",
            "/a\nb",
            "/\0",
            "/\u{7f}",
            "/caf\u{e9}",
            "**",
        ] {
            let msg = refused(
                Method::GET,
                bad,
                &HeaderMap::new(),
                BodyFraming::None,
                false,
            );
            assert!(msg.contains("request target"), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn bad_hosts_are_refused() {
        for bad in ["a b", "a\r\nx: y", "a\n", "a/b", "\0", "h\u{e9}"] {
            let mut buf = Vec::new();
            let err = encode_head(
                &mut buf,
                &Method::GET,
                "/",
                bad,
                &HeaderMap::new(),
                BodyFraming::None,
                false,
            )
            .expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidRequest);
            assert!(err.to_string().contains("host"), "{err}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn user_host_makes_the_host_argument_unused() {
        // Only what is written is validated.
        let h = map(&[("host", "good.example")]);
        let mut buf = Vec::new();
        encode_head(
            &mut buf,
            &Method::GET,
            "/",
            "bad host",
            &h,
            BodyFraming::None,
            false,
        )
        .expect("user Host wins");
        assert!(buf.starts_with(b"GET / HTTP/1.1\r\nhost: good.example\r\n"));
    }

    #[test]
    fn header_value_check_finds_cr_lf_nul() {
        // A debug build's `HeaderValue` cannot hold these (its unchecked
        // constructor asserts), so the check is tested on raw bytes here and
        // end to end in release builds below.
        assert!(check_value("x", b"ok value\t\x80").is_ok());
        for (bad, at) in [
            (&b"a\r\nx: y"[..], 1),
            (b"ab\n", 2),
            (b"\0", 0),
            (b"a\rb", 1),
        ] {
            let err = check_value("x-test", bad).expect_err("forbidden byte");
            assert_eq!(err.kind(), ErrorKind::InvalidRequest);
            let msg = err.to_string();
            assert!(
                msg.contains(&format!(
                    "header x-test has a CR, LF or NUL byte at offset {at}"
                )),
                "{msg}"
            );
        }
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn injected_header_values_are_refused() {
        for bad in [&b"a\r\nx-injected: 1"[..], b"a\nb", b"a\rb", b"a\0b"] {
            // SAFETY: not memory-unsafe; the "unchecked" contract is broken
            // on purpose to prove the codec does not trust it.
            let value =
                unsafe { HeaderValue::from_maybe_shared_unchecked(bytes::Bytes::from(bad)) };
            for name in [ACCEPT, HOST, CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION] {
                let mut h = HeaderMap::new();
                h.insert(name.clone(), value.clone());
                let msg = refused(Method::POST, "/", &h, BodyFraming::Chunked, true);
                assert!(msg.contains("CR, LF or NUL"), "{name}: {msg}");
            }
        }
    }

    #[test]
    fn names_are_lowercase_and_values_verbatim() {
        let mut h = HeaderMap::new();
        h.insert(USER_AGENT, HeaderValue::from_static("Mixed Case\tTab"));
        h.insert(ACCEPT, HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        let mut buf = Vec::new();
        encode_head(
            &mut buf,
            &Method::GET,
            "/",
            "h",
            &h,
            BodyFraming::None,
            false,
        )
        .unwrap();
        assert!(
            buf.windows(28)
                .any(|w| w == b"user-agent: Mixed Case\tTab\r\n")
        );
        assert!(buf.windows(15).any(|w| w == b"accept: caf\xc3\xa9\r\n"));
    }

    #[test]
    fn encode_chunk_frames_data() {
        let mut buf = Vec::new();
        encode_chunk(&mut buf, b"hello");
        encode_chunk(&mut buf, b"");
        encode_chunk(&mut buf, &[b'x'; 255]);
        buf.extend_from_slice(LAST_CHUNK);
        let mut want = b"5\r\nhello\r\nff\r\n".to_vec();
        want.extend_from_slice(&[b'x'; 255]);
        want.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(buf, want);
    }

    #[test]
    fn number_writers() {
        for n in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            12345,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            push_decimal(&mut buf, n);
            assert_eq!(buf, n.to_string().as_bytes());
            let mut buf = Vec::new();
            push_hex(&mut buf, n);
            assert_eq!(buf, format!("{n:x}").as_bytes());
        }
    }
}
