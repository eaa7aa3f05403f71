//! The HTTP/1.1 wire codec: pure functions over byte buffers, no I/O.
//!
//! The client owns the socket and the buffers; this module only turns a
//! request into bytes and bytes into a response. Keeping the codec pure
//! means every framing rule can be tested exhaustively with plain byte
//! strings, split at every possible point, without a socket in sight.
//!
//! * [`request`] writes a request head and chunked body pieces
//!   (RFC 9112 §3, §6, §7.1). It refuses anything that could inject
//!   framing (a CR or LF in a target, host or header value), and refuses a
//!   `Content-Length` or `Transfer-Encoding` header that contradicts the
//!   body it is told about.
//! * [`response`] parses a response head with `httparse` and decides how
//!   its body is delimited (RFC 9112 §6.3) and whether the connection may
//!   be reused afterwards (RFC 9112 §9.3). Every ambiguity that could be a
//!   request-smuggling or response-splitting attempt either fails the
//!   response or forbids reuse of the connection.
//! * [`chunked`] decodes a chunked body incrementally (RFC 9112 §7.1),
//!   zero-copy, whatever way the input is split across reads.
//! * [`keep_alive`] reads the server's `Keep-Alive: timeout=N, max=M` hint,
//!   which lets the pool expire a connection before the server does.
//!
//! The rule everywhere: never panic on any input, and bound every buffer
//! the peer controls (head size, header count, chunk-size line, trailers).

mod chunked;
mod keep_alive;
mod request;
mod response;

pub(crate) use chunked::{Chunk, ChunkedDecoder};
pub use keep_alive::KeepAliveHint;
pub(crate) use request::{BodyFraming, LAST_CHUNK, encode_chunk, encode_head, push_decimal};
pub(crate) use response::{Framing, HeadLimits, ResponseHead, parse_head};

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

/// Strips optional whitespace (SP and HTAB, RFC 9110 §5.6.3) from both
/// ends.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// Splits a field value on `sep`, except inside a quoted-string
/// (RFC 9110 §5.6.4), and yields each piece with its whitespace trimmed.
///
/// Quote-awareness matters even for fields whose valid values never quote:
/// `Transfer-Encoding: gzip;x="a, chunked"` must not look as if its last
/// coding were `chunked`. An unterminated quote runs to the end of the
/// value. Empty pieces are yielded too; callers that follow the list rule
/// of RFC 9110 §5.6.1 skip them, strict callers (`Content-Length`) reject
/// them.
struct SplitQuoted<'a> {
    rest: Option<&'a [u8]>,
    sep: u8,
}

fn split_quoted(value: &[u8], sep: u8) -> SplitQuoted<'_> {
    SplitQuoted {
        rest: Some(value),
        sep,
    }
}

impl<'a> Iterator for SplitQuoted<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, &b) in rest.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if in_quotes {
                match b {
                    b'\\' => escaped = true,
                    b'"' => in_quotes = false,
                    _ => {}
                }
            } else if b == b'"' {
                in_quotes = true;
            } else if b == self.sep {
                let (piece, tail) = rest.split_at(i);
                self.rest = tail.get(1..);
                return Some(trim_ows(piece));
            }
        }
        self.rest = None;
        Some(trim_ows(rest))
    }
}

/// The non-empty elements of a comma-separated list field value
/// (RFC 9110 §5.6.1: recipients ignore empty elements).
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    split_quoted(value, b',').filter(|e| !e.is_empty())
}

/// Whether any field line named `name` lists `token` (ASCII
/// case-insensitive), across comma lists and repeated field lines, as
/// `Connection` does (RFC 9110 §7.6.1).
pub(crate) fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|value| value_has_token(value, token))
}

/// Whether one field value lists `token` (ASCII case-insensitive).
fn value_has_token(value: &HeaderValue, token: &str) -> bool {
    list_elements(value.as_bytes()).any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// Watches a header section (a response head, a chunked trailer section)
/// arrive, so that it is parsed only once its end may be there.
///
/// Re-parsing a whole buffer after every read would make a peer that
/// trickles a 64 KiB section byte by byte cost quadratic CPU; this scans
/// each byte about once. A section ends with an empty line: `\n\r\n` or
/// `\n\n` after a line, or CRLF at the very start (an empty trailer
/// section; for a head, blank lines the parser skips).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SectionEnd {
    /// Bytes at the front of the buffer known to hold no end.
    scanned: usize,
}

impl SectionEnd {
    /// Whether `buf` may hold the section's end. When it cannot, its bytes
    /// are remembered as scanned.
    pub(crate) fn may_be_in(&mut self, buf: &[u8]) -> bool {
        // Step back so an empty line split across two reads is seen.
        let from = self.scanned.saturating_sub(2).min(buf.len());
        if from == 0 && (buf.starts_with(b"\r\n") || buf.starts_with(b"\n")) {
            return true;
        }
        let rest = &buf[from..];
        let found = rest.iter().enumerate().any(|(i, &b)| {
            b == b'\n'
                && match rest.get(i + 1) {
                    Some(b'\n') => true,
                    Some(b'\r') => rest.get(i + 2) == Some(&b'\n'),
                    _ => false,
                }
        });
        if !found {
            self.scanned = buf.len();
        }
        found
    }

    /// The parser found the section incomplete after all (only blank
    /// lines so far): do not look at these `len` bytes again.
    pub(crate) fn incomplete(&mut self, len: usize) {
        self.scanned = len;
    }
}

/// `tchar` of RFC 9110 §5.6.2: the bytes of a token (method, field name).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `bytes` is one or more ASCII digits and nothing else.
fn is_digits(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit)
}

/// Parses `1*DIGIT` as a `u64`: no sign, no whitespace, no overflow.
/// `str::parse` would accept a leading `+`, which no HTTP number allows.
fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    if !is_digits(bytes) {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Renders peer-controlled bytes for an error message: escaped, quoted,
/// and cut to a length that cannot flood a log.
fn quote_bytes(bytes: &[u8]) -> String {
    const MAX_SHOWN: usize = 64;
    let shown = bytes.get(..MAX_SHOWN).unwrap_or(bytes);
    let mut out = String::with_capacity(shown.len() + 8);
    out.push('"');
    out.extend(shown.escape_ascii().map(char::from));
    out.push('"');
    if shown.len() < bytes.len() {
        out.push_str("...");
    }
    out
}

/// A tiny seeded xorshift generator for the no-panic tests: reproducible,
/// and no dependency.
#[cfg(test)]
pub(crate) struct XorShift(u64);

#[cfg(test)]
impl XorShift {
    pub(crate) fn new(seed: u64) -> XorShift {
        // Zero is xorshift's fixed point.
        XorShift(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Cuts `len` bytes into consecutive random piece lengths.
    pub(crate) fn splits(&mut self, len: usize, max_piece: usize) -> Vec<usize> {
        let mut pieces = Vec::new();
        let mut left = len;
        while left > 0 {
            let n = 1 + self.below(max_piece.min(left));
            pieces.push(n);
            left -= n;
        }
        pieces
    }

    /// A random mutation of `valid`: a byte flipped, inserted, removed or
    /// duplicated, or a cut, applied a few times.
    pub(crate) fn mutate(&mut self, valid: &[u8]) -> Vec<u8> {
        const INTERESTING: &[u8] = b"\r\n\t :;,=\"0123456789abcdefxHTP/.\0\x7f\xff";
        let mut out = valid.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            let byte = if self.below(2) == 0 {
                INTERESTING[self.below(INTERESTING.len())]
            } else {
                self.next_u64() as u8
            };
            match self.below(5) {
                0 if at < out.len() => out[at] = byte,
                1 => out.insert(at, byte),
                2 if at < out.len() => {
                    out.remove(at);
                }
                3 if at < out.len() => {
                    let b = out[at];
                    out.insert(at, b);
                }
                _ => out.truncate(at),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::CONNECTION;

    fn pieces(value: &[u8], sep: u8) -> Vec<&[u8]> {
        split_quoted(value, sep).collect()
    }

    #[test]
    fn trim_ows_strips_spaces_and_tabs_only() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\r5\r"), b"\r5\r");
    }

    #[test]
    fn split_quoted_respects_quotes_and_escapes() {
        assert_eq!(pieces(b"a, b ,c", b','), vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(
            pieces(br#"gzip;x="a, chunked""#, b','),
            vec![&br#"gzip;x="a, chunked""#[..]]
        );
        assert_eq!(
            pieces(br#"a="x\", y", b"#, b','),
            vec![&br#"a="x\", y""#[..], b"b"]
        );
        assert_eq!(pieces(b"a,,b,", b','), vec![&b"a"[..], b"", b"b", b""]);
        assert_eq!(pieces(br#"a="unterminated, b"#, b',').len(), 1);
        assert_eq!(pieces(b"", b','), vec![&b""[..]]);
    }

    #[test]
    fn list_elements_skips_empty_elements() {
        let v: Vec<&[u8]> = list_elements(b" , a,, b ,").collect();
        assert_eq!(v, vec![&b"a"[..], b"b"]);
    }

    #[test]
    fn a_section_end_is_looked_for_once_per_byte() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut end = SectionEnd::default();
        for len in 1..head.len() {
            assert!(!end.may_be_in(&head[..len]), "after {len} bytes");
            assert_eq!(end.scanned, len);
        }
        assert!(end.may_be_in(head));
        assert!(SectionEnd::default().may_be_in(b"HTTP/1.1 200 OK\n\n"));
        assert!(
            SectionEnd::default().may_be_in(b"\r\n"),
            "an empty trailer section"
        );
        let mut end = SectionEnd::default();
        assert!(end.may_be_in(b"\r\nHTTP/1.1"), "a leading blank line");
        end.incomplete(10);
        assert!(!end.may_be_in(b"\r\nHTTP/1.1 2"), "not looked at again");
    }

    #[test]
    fn has_token_looks_across_lines_and_lists() {
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("upgrade"));
        assert!(!has_token(&h, &CONNECTION, "close"));
        h.append(CONNECTION, HeaderValue::from_static("foo, CLOSE"));
        assert!(has_token(&h, &CONNECTION, "close"));
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("closed, xclose"));
        assert!(!has_token(&h, &CONNECTION, "close"));
    }

    #[test]
    fn parse_decimal_is_strict() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"007"), Some(7));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        for bad in [&b""[..], b"+5", b"-5", b" 5", b"5 ", b"5a", b"0x5", b"5.0"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn quote_bytes_escapes_and_truncates() {
        assert_eq!(quote_bytes(b"a\r\n\"b"), r#""a\r\n\"b""#);
        let long = quote_bytes(&[b'x'; 200]);
        assert!(long.ends_with("\"..."));
        assert!(long.len() < 80);
    }
}
