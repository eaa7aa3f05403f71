//! Decoding a chunked body (RFC 9112 §7.1), incrementally and zero-copy.
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! last-chunk   = 1*"0" [ chunk-ext ] CRLF
//! ```
//!
//! The decoder is a small state machine fed from the front of the
//! caller's read buffer. It consumes only what it has fully understood: a
//! size line or the trailer section is consumed once it is complete, and
//! left in the buffer until then, so the caller just appends what it reads
//! next and calls again. That makes the decoder indifferent to how the
//! input is split, which the tests check by feeding every example byte by
//! byte and in random pieces. Chunk data is handed out as it arrives, as a
//! zero-copy split of the buffer.
//!
//! The rules, and why:
//!
//! * A chunk size is hex digits, at most 16 significant ones (it must fit
//!   in a `u64`); `0x`, signs and empty sizes are refused.
//! * Chunk extensions (`;name=value`) are ignored, as RFC 9112 §7.1.1
//!   allows, but a size line (extensions included) longer than 4096 bytes
//!   is refused, so a peer cannot make us buffer without end. Whitespace
//!   is accepted after the size (the `BWS` before `;`, and trailing), but
//!   no control byte anywhere in the line.
//! * Lines end with CRLF; a bare LF is refused. RFC 9112 §2.2 lets
//!   recipients accept one elsewhere, but inside a chunked body a parser
//!   that accepts a bare LF and one that does not find different chunk
//!   boundaries: that disagreement is a known request-smuggling vector
//!   ("chunk extension / line terminator" smuggling), so we do not take
//!   part in it.
//! * Chunk data must be followed by CRLF, or the framing is broken.
//! * The trailer section is parsed as header fields and bounded by
//!   `max_trailer_bytes` (not counting the final CRLF) and 64 fields.
//!   Trailers are returned apart from the head's headers: RFC 9110 §6.5.1
//!   forbids merging them blindly.
//!
//! After [`Chunk::End`] the bytes left in the buffer belong to whatever
//! follows the body on the connection; the decoder never touches them.

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

use super::{SectionEnd, quote_bytes};
use crate::{Error, ErrorKind};

/// The longest size line accepted, CRLF included.
const MAX_SIZE_LINE: usize = 4096;
/// The most trailer fields accepted.
const MAX_TRAILER_FIELDS: usize = 64;

/// One step of decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Body bytes (never empty), split off the front of the buffer.
    Data(Bytes),
    /// The buffer does not hold enough to make progress: read more,
    /// append it, call again.
    NeedMore,
    /// The body is complete: last chunk, trailers and final CRLF consumed.
    End,
}

/// Where the decoder is in the chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, with this many bytes still to come.
    Data { remaining: u64 },
    /// Expecting the CRLF that follows chunk data.
    DataEnd,
    /// After the last chunk: expecting the trailer section and final CRLF.
    Trailers,
    /// The body is complete.
    Done,
    /// An error was returned; the stream cannot be resynchronised.
    Failed,
}

/// An incremental decoder of one chunked body.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    max_trailer_bytes: usize,
    trailers: Option<HeaderMap>,
    /// Where the trailer section's end may be: a trailer section trickled
    /// in is scanned once, not re-parsed after every read.
    trailers_end: SectionEnd,
}

impl ChunkedDecoder {
    /// A decoder that accepts at most `max_trailer_bytes` of trailer
    /// fields.
    pub(crate) fn new(max_trailer_bytes: usize) -> Self {
        ChunkedDecoder {
            state: State::Size,
            max_trailer_bytes,
            trailers: None,
            trailers_end: SectionEnd::default(),
        }
    }

    /// Decodes from the front of `buf`, consuming what it used.
    ///
    /// Returns [`Chunk::Data`] with as much of the current chunk as `buf`
    /// holds (never more than the chunk's remaining size),
    /// [`Chunk::NeedMore`] when `buf` lacks the bytes to make progress (it
    /// may then be empty or hold a partial line, which must stay at its
    /// front), and [`Chunk::End`] once the body is complete, and on every
    /// call after that. Errors are [`ErrorKind::MalformedResponse`],
    /// [`ErrorKind::HeadersTooLarge`] or [`ErrorKind::TooManyHeaders`] for
    /// the trailers; after one, every call fails.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Chunk, Error> {
        let result = self.step(buf);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Trailer fields, once [`Chunk::End`] was returned (`None` if there
    /// were none). Takes them: a second call returns `None`.
    pub(crate) fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    /// True once [`Chunk::End`] was returned.
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Chunk, Error> {
        loop {
            match self.state {
                State::Size => match parse_size_line(buf)? {
                    None => return Ok(Chunk::NeedMore),
                    Some((line_len, size)) => {
                        buf.advance(line_len);
                        self.state = match size {
                            0 => State::Trailers,
                            remaining => State::Data { remaining },
                        };
                    }
                },
                State::Data { remaining } => {
                    if buf.is_empty() {
                        return Ok(Chunk::NeedMore);
                    }
                    let n = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                    let data = buf.split_to(n).freeze();
                    // `n` <= `remaining`, so this cannot underflow.
                    let left = remaining - n as u64;
                    self.state = match left {
                        0 => State::DataEnd,
                        remaining => State::Data { remaining },
                    };
                    return Ok(Chunk::Data(data));
                }
                State::DataEnd => match buf.get(..2) {
                    Some(b"\r\n") => {
                        buf.advance(2);
                        self.state = State::Size;
                    }
                    Some(_) => return Err(missing_crlf(buf)),
                    None if buf.first().is_some_and(|&b| b != b'\r') => {
                        return Err(missing_crlf(buf));
                    }
                    None => return Ok(Chunk::NeedMore),
                },
                State::Trailers => {
                    // Past the limit the parser is asked anyway: it reports it.
                    let full = buf.len() >= self.max_trailer_bytes.saturating_add(2);
                    if !full && !self.trailers_end.may_be_in(buf) {
                        return Ok(Chunk::NeedMore);
                    }
                    match self.parse_trailers(buf)? {
                        None => {
                            self.trailers_end.incomplete(buf.len());
                            return Ok(Chunk::NeedMore);
                        }
                        Some(consumed) => {
                            buf.advance(consumed);
                            self.state = State::Done;
                            return Ok(Chunk::End);
                        }
                    }
                }
                State::Done => return Ok(Chunk::End),
                State::Failed => {
                    return Err(malformed(
                        "chunked body already failed to decode; the connection must be closed",
                    ));
                }
            }
        }
    }

    /// Parses the trailer section and final CRLF at the front of `buf`:
    /// `Ok(Some(consumed))` once complete, `Ok(None)` while incomplete.
    fn parse_trailers(&mut self, buf: &[u8]) -> Result<Option<usize>, Error> {
        // Two more bytes for the final CRLF, which the limit does not count.
        let limit = self.max_trailer_bytes.saturating_add(2);
        let window = buf.get(..limit).unwrap_or(buf);
        let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
        let (consumed, fields) = match httparse::parse_headers(window, &mut slots) {
            Ok(httparse::Status::Complete(done)) => done,
            Ok(httparse::Status::Partial) if buf.len() >= limit => {
                return Err(Error::new(
                    ErrorKind::HeadersTooLarge,
                    format!(
                        "chunked trailer section larger than {} bytes (max_trailer_bytes)",
                        self.max_trailer_bytes
                    ),
                ));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::new(
                    ErrorKind::TooManyHeaders,
                    format!("chunked trailer section has more than {MAX_TRAILER_FIELDS} fields"),
                ));
            }
            Err(e) => return Err(malformed(format!("invalid chunked trailer section: {e}"))),
        };
        // httparse accepts bare LF line ends; inside a chunked body we do
        // not (see the module docs).
        let section = window.get(..consumed).unwrap_or_default();
        if has_bare_lf(section) {
            return Err(malformed(
                "bare LF in chunked trailer section (CRLF required)",
            ));
        }
        if !fields.is_empty() {
            let mut trailers = HeaderMap::with_capacity(fields.len());
            for field in fields {
                let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| {
                    malformed(format!(
                        "invalid trailer name {}",
                        quote_bytes(field.name.as_bytes())
                    ))
                })?;
                let value = HeaderValue::from_bytes(field.value).map_err(|_| {
                    malformed(format!(
                        "invalid value {} for trailer {name}",
                        quote_bytes(field.value)
                    ))
                })?;
                trailers.append(name, value);
            }
            self.trailers = Some(trailers);
        }
        Ok(Some(consumed))
    }
}

fn malformed(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::MalformedResponse, message)
}

fn missing_crlf(buf: &[u8]) -> Error {
    malformed(format!(
        "chunk data not followed by CRLF (found {})",
        quote_bytes(buf.get(..2).unwrap_or(buf))
    ))
}

fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'\n')
        || bytes
            .windows(2)
            .any(|w| matches!(w, [a, b'\n'] if *a != b'\r'))
}

/// Parses the chunk-size line at the front of `buf`: `Ok(Some((line
/// length with CRLF, size)))` once the whole line is there, `Ok(None)`
/// while it is not.
fn parse_size_line(buf: &[u8]) -> Result<Option<(usize, u64)>, Error> {
    let window = buf.get(..MAX_SIZE_LINE).unwrap_or(buf);
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() >= MAX_SIZE_LINE {
            return Err(malformed(format!(
                "chunk size line longer than {MAX_SIZE_LINE} bytes"
            )));
        }
        // Fail early on garbage rather than wait for a line end that a
        // confused peer may never send.
        if buf.first().is_some_and(|b| !b.is_ascii_hexdigit()) {
            return Err(bad_size_line(buf));
        }
        return Ok(None);
    };
    let line = window.get(..lf).unwrap_or_default();
    let Some(line) = line.strip_suffix(b"\r") else {
        return Err(malformed(format!(
            "chunk size line {} ends with a bare LF (CRLF required)",
            quote_bytes(line)
        )));
    };
    let size = parse_size(line)?;
    Ok(Some((lf + 1, size)))
}

/// Parses `chunk-size [ chunk-ext ]`, the line without its CRLF.
fn parse_size(line: &[u8]) -> Result<u64, Error> {
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 {
        return Err(bad_size_line(line));
    }
    let (hex, rest) = line.split_at(digits);
    let mut size: u64 = 0;
    for &b in hex {
        if size >> 60 != 0 {
            return Err(malformed(format!(
                "chunk size {} overflows 64 bits",
                quote_bytes(hex)
            )));
        }
        // `b` is a hex digit, so `to_digit` succeeds.
        let digit = char::from(b).to_digit(16).unwrap_or_default();
        size = (size << 4) | u64::from(digit);
    }
    let rest = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .and_then(|i| rest.get(i..))
        .unwrap_or_default();
    match rest.first() {
        None => Ok(size),
        Some(b';')
            if rest
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80) =>
        {
            Ok(size)
        }
        Some(b';') => Err(malformed(format!(
            "control byte in chunk extension {}",
            quote_bytes(rest)
        ))),
        Some(_) => Err(bad_size_line(line)),
    }
}

fn bad_size_line(line: &[u8]) -> Error {
    malformed(format!(
        "invalid chunk size line {}: expected hex digits",
        quote_bytes(line)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::wire::XorShift;

    const MAX_TRAILERS: usize = 1024;

    /// What decoding a whole input produced.
    #[derive(Debug, PartialEq, Eq)]
    struct Decoded {
        body: Vec<u8>,
        trailers: Option<HeaderMap>,
        /// Bytes after the body: left in the buffer after `End`, or not fed.
        rest: Vec<u8>,
    }

    /// Feeds `raw` in pieces of the given lengths, as a client reading a
    /// socket would: append, decode until `NeedMore`, repeat.
    fn decode_in_pieces(raw: &[u8], pieces: &[usize]) -> Result<Decoded, Error> {
        let mut decoder = ChunkedDecoder::new(MAX_TRAILERS);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        let mut pieces = pieces.iter();
        loop {
            match decoder.decode(&mut buf)? {
                Chunk::Data(data) => {
                    assert!(!data.is_empty(), "Data is never empty");
                    body.extend_from_slice(&data);
                }
                Chunk::End => {
                    assert!(decoder.is_done());
                    assert_eq!(decoder.decode(&mut buf)?, Chunk::End, "End is sticky");
                    let trailers = decoder.take_trailers();
                    // What follows the body: in the buffer, or not read yet.
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&raw[fed..]);
                    return Ok(Decoded {
                        body,
                        trailers,
                        rest,
                    });
                }
                Chunk::NeedMore => {
                    assert!(!decoder.is_done());
                    let Some(&n) = pieces.next() else {
                        return Err(Error::new(ErrorKind::IncompleteResponse, "input ended"));
                    };
                    buf.extend_from_slice(&raw[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    fn decode_all(raw: &[u8]) -> Result<Decoded, Error> {
        decode_in_pieces(raw, &[raw.len()])
    }

    /// Whether two decodes agree: the same output, or errors of the same
    /// kind (a split input may fail earlier, with a shorter quote).
    fn agree(a: &Result<Decoded, Error>, b: &Result<Decoded, Error>) -> bool {
        match (a, b) {
            (Ok(a), Ok(b)) => a == b,
            (Err(a), Err(b)) => a.kind() == b.kind(),
            _ => false,
        }
    }

    /// Decodes `raw` whole, byte by byte, and in random splits, and checks
    /// that all of them agree.
    fn decode_every_way(raw: &[u8]) -> Result<Decoded, Error> {
        let whole = decode_all(raw);
        let bytewise = decode_in_pieces(raw, &vec![1; raw.len()]);
        assert!(
            agree(&whole, &bytewise),
            "byte by byte: {bytewise:?}, whole: {whole:?}, input {raw:?}"
        );
        let mut rng = XorShift::new(raw.len() as u64 ^ 0x9e37_79b9);
        for _ in 0..20 {
            let pieces = rng.splits(raw.len(), 8);
            let split = decode_in_pieces(raw, &pieces);
            assert!(
                agree(&whole, &split),
                "split {pieces:?}: {split:?}, whole: {whole:?}, input {raw:?}"
            );
        }
        whole
    }

    fn body_of(raw: &[u8]) -> Vec<u8> {
        decode_every_way(raw).expect("valid chunked body").body
    }

    fn malformed_msg(raw: &[u8]) -> String {
        let e = decode_every_way(raw).expect_err("invalid chunked body");
        assert_eq!(e.kind(), ErrorKind::MalformedResponse, "{e}");
        e.to_string()
    }

    #[test]
    fn simple_body() {
        assert_eq!(
            body_of(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
    }

    #[test]
    fn empty_body() {
        let d = decode_every_way(b"0\r\n\r\n").unwrap();
        assert!(d.body.is_empty());
        assert_eq!(d.trailers, None);
        assert_eq!(body_of(b"000\r\n\r\n"), b"");
    }

    #[test]
    fn hex_sizes() {
        let mut raw = b"1A\r\n".to_vec();
        raw.extend_from_slice(&[b'x'; 26]);
        raw.extend_from_slice(b"\r\n00a\r\n0123456789\r\n0\r\n\r\n");
        let body = body_of(&raw);
        assert_eq!(body.len(), 36);
    }

    #[test]
    fn bytes_after_the_body_are_left_alone() {
        let d = decode_every_way(b"3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n").unwrap();
        assert_eq!(d.body, b"abc");
        assert_eq!(d.rest, b"HTTP/1.1 200 OK\r\n");
    }

    #[test]
    fn data_is_split_zero_copy_and_bounded_by_the_chunk() {
        let mut decoder = ChunkedDecoder::new(0);
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"[..]);
        let start = buf.as_ptr();
        let Chunk::Data(first) = decoder.decode(&mut buf).unwrap() else {
            panic!("data expected")
        };
        assert_eq!(first, "abc");
        // The same memory: split, not copied.
        assert_eq!(first.as_ptr(), start.wrapping_add(3));
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Chunk::Data(Bytes::from_static(b"de"))
        );
        assert_eq!(decoder.decode(&mut buf).unwrap(), Chunk::End);
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_chunk_data_is_handed_out() {
        let mut decoder = ChunkedDecoder::new(0);
        let mut buf = BytesMut::from(&b"a\r\nhel"[..]);
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Chunk::Data(Bytes::from_static(b"hel"))
        );
        assert_eq!(decoder.decode(&mut buf).unwrap(), Chunk::NeedMore);
        assert!(buf.is_empty());
        buf.extend_from_slice(b"lo worl");
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Chunk::Data(Bytes::from_static(b"lo worl"))
        );
        buf.extend_from_slice(b"\r");
        assert_eq!(decoder.decode(&mut buf).unwrap(), Chunk::NeedMore);
        assert_eq!(&buf[..], b"\r", "a partial line stays in the buffer");
    }

    #[test]
    fn need_more_keeps_partial_size_line() {
        let mut decoder = ChunkedDecoder::new(0);
        let mut buf = BytesMut::from(&b"1f;ext=1\r"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), Chunk::NeedMore);
        assert_eq!(&buf[..], b"1f;ext=1\r");
        let mut empty = BytesMut::new();
        assert_eq!(
            ChunkedDecoder::new(0).decode(&mut empty).unwrap(),
            Chunk::NeedMore
        );
    }

    #[test]
    fn extensions_are_ignored() {
        for raw in [
            &b"5;name=value\r\nhello\r\n0\r\n\r\n"[..],
            b"5;a;b=\"q;u\\\"oted\"\r\nhello\r\n0;last\r\n\r\n",
            b"5 ;a\r\nhello\r\n0\r\n\r\n",
            b"5\t; a = b \r\nhello\r\n0\r\n\r\n",
            b"5  \r\nhello\r\n0\r\n\r\n",
        ] {
            assert_eq!(body_of(raw), b"hello", "{raw:?}");
        }
    }

    #[test]
    fn long_size_line_is_refused() {
        let mut raw = b"5;".to_vec();
        raw.extend_from_slice(&[b'x'; MAX_SIZE_LINE]);
        raw.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        let msg = malformed_msg(&raw);
        assert!(msg.contains("longer than 4096 bytes"), "{msg}");
        // Just at the limit is fine.
        let mut raw = b"5;".to_vec();
        raw.extend_from_slice(&[b'x'; MAX_SIZE_LINE - 4]);
        raw.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(body_of(&raw), b"hello");
    }

    #[test]
    fn control_bytes_in_extensions_are_refused() {
        let msg = malformed_msg(b"5;a\rb\r\nhello\r\n0\r\n\r\n");
        assert!(msg.contains("control byte in chunk extension"), "{msg}");
        malformed_msg(b"5;a\0\r\nhello\r\n0\r\n\r\n");
    }

    #[test]
    fn bad_sizes_are_refused() {
        for raw in [
            &b"x\r\n"[..],
            b"\r\n",
            b";ext\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 5\r\nhello\r\n0\r\n\r\n",
            b"5g\r\nhello\r\n0\r\n\r\n",
        ] {
            let msg = malformed_msg(raw);
            assert!(msg.contains("invalid chunk size line"), "{raw:?}: {msg}");
        }
    }

    #[test]
    fn overflowing_sizes_are_refused() {
        let msg = malformed_msg(b"10000000000000000\r\n");
        assert!(msg.contains("overflows 64 bits"), "{msg}");
        malformed_msg(b"FFFFFFFFFFFFFFFFF\r\n");
        // Sixteen significant digits fit, leading zeros do not count.
        let mut decoder = ChunkedDecoder::new(0);
        let mut buf = BytesMut::from(&b"0000ffffffffffffffff\r\nabc"[..]);
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Chunk::Data(Bytes::from_static(b"abc"))
        );
        assert_eq!(
            decoder.state,
            State::Data {
                remaining: u64::MAX - 3
            }
        );
    }

    #[test]
    fn bare_lf_is_refused() {
        for raw in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5;ext\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5\r\nhello\r\n0\r\nX: y\n\r\n",
            b"5\r\nhello\r\n0\r\nX: y\r\n\n",
        ] {
            let msg = malformed_msg(raw);
            assert!(msg.contains("bare LF"), "{raw:?}: {msg}");
        }
        let msg = malformed_msg(b"5\r\nhello\n0\r\n\r\n");
        assert!(msg.contains("not followed by CRLF"), "{msg}");
    }

    #[test]
    fn missing_crlf_after_data_is_refused() {
        for raw in [
            &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
            b"5\r\nhello0\r\n\r\n",
            b"5\r\nhello\rX0\r\n\r\n",
            b"3\r\nhello\r\n0\r\n\r\n",
        ] {
            let msg = malformed_msg(raw);
            assert!(
                msg.contains("chunk data not followed by CRLF"),
                "{raw:?}: {msg}"
            );
        }
    }

    #[test]
    fn truncated_bodies_need_more() {
        let raw = b"5;x=y\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n";
        for end in 0..raw.len() {
            let e = decode_in_pieces(&raw[..end], &[end]).expect_err("truncated");
            assert_eq!(e.kind(), ErrorKind::IncompleteResponse, "at {end}: {e}");
        }
        assert!(decode_all(raw).is_ok());
    }

    #[test]
    fn trailers_are_returned() {
        let d = decode_every_way(
            b"3\r\nabc\r\n0\r\nX-Checksum: 42\r\nX-Other: a b\r\nX-Checksum: 43\r\n\r\n",
        )
        .unwrap();
        assert_eq!(d.body, b"abc");
        let t = d.trailers.expect("trailers");
        let sums: Vec<_> = t.get_all("x-checksum").iter().collect();
        assert_eq!(sums, ["42", "43"]);
        assert_eq!(t["x-other"], "a b");
        assert!(d.rest.is_empty());
    }

    #[test]
    fn take_trailers_is_none_before_end_and_after_taking() {
        let mut decoder = ChunkedDecoder::new(100);
        let mut buf = BytesMut::from(&b"0\r\nX: 1\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), Chunk::NeedMore);
        assert_eq!(decoder.take_trailers(), None);
        buf.extend_from_slice(b"\r\n");
        assert_eq!(decoder.decode(&mut buf).unwrap(), Chunk::End);
        assert!(decoder.take_trailers().is_some());
        assert_eq!(decoder.take_trailers(), None);
    }

    #[test]
    fn bad_trailers_are_refused() {
        let msg = malformed_msg(b"0\r\nNo colon\r\n\r\n");
        assert!(msg.contains("invalid chunked trailer section"), "{msg}");
        malformed_msg(b"0\r\nX: a\r\n folded\r\n\r\n");
        malformed_msg(b"0\r\nX : a\r\n\r\n");
        malformed_msg(b"0\r\nX: a\x01\r\n\r\n");
        malformed_msg(b"0\r\r\n");
    }

    #[test]
    fn oversize_trailers_are_refused() {
        let mut decoder = ChunkedDecoder::new(20);
        let mut buf = BytesMut::from(&b"0\r\nX-Long: 0123456789012345678901234567890\r\n\r\n"[..]);
        let e = decoder.decode(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HeadersTooLarge);
        assert!(
            e.to_string()
                .contains("larger than 20 bytes (max_trailer_bytes)"),
            "{e}"
        );
        assert!(decoder.decode(&mut buf).is_err(), "failure is sticky");

        // Fed a byte at a time, the error comes as soon as the limit is passed.
        let raw = b"0\r\nX-Long: 0123456789012345678901234567890\r\n\r\n";
        let mut decoder = ChunkedDecoder::new(20);
        let mut buf = BytesMut::new();
        let mut failed_at = None;
        for (i, &b) in raw.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            if decoder.decode(&mut buf).is_err() {
                failed_at = Some(i + 1);
                break;
            }
        }
        assert_eq!(failed_at, Some(3 + 22));

        // Exactly at the limit is fine: 20 bytes of fields plus the final CRLF.
        let mut decoder = ChunkedDecoder::new(20);
        let mut buf = BytesMut::from(&b"0\r\nX-Exact: 012345678\r\n\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), Chunk::End);
        // No trailers is always fine, even with a zero limit.
        let mut decoder = ChunkedDecoder::new(0);
        let mut buf = BytesMut::from(&b"0\r\n\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), Chunk::End);
    }

    #[test]
    fn too_many_trailers_are_refused() {
        let mut raw = b"0\r\n".to_vec();
        for i in 0..=MAX_TRAILER_FIELDS {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let e = decode_all(&raw).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooManyHeaders, "{e}");
    }

    /// A valid chunked encoding of `body`, cut into chunks at random, with
    /// random extensions and trailers.
    fn encode_randomly(body: &[u8], rng: &mut XorShift) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        for n in rng.splits(body.len(), 40) {
            out.extend_from_slice(format!("{n:x}").as_bytes());
            if rng.below(3) == 0 {
                out.extend_from_slice(b";ext=\"v\"");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body[at..at + n]);
            out.extend_from_slice(b"\r\n");
            at += n;
        }
        out.extend_from_slice(b"0\r\n");
        if rng.below(2) == 0 {
            out.extend_from_slice(b"X-Trailer: yes\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    #[test]
    fn random_valid_bodies_decode_whatever_the_split() {
        let mut rng = XorShift::new(7);
        for _ in 0..200 {
            let body: Vec<u8> = (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect();
            let raw = encode_randomly(&body, &mut rng);
            assert_eq!(body_of(&raw), body);
        }
    }

    #[test]
    fn no_panic_on_random_and_mutated_bodies() {
        let mut rng = XorShift::new(0xc0ffee);
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF;=\" \t\r\n\r\nX-T: v";
        let valid: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                let body: Vec<u8> = (0..i * 7).map(|j| b'a' + (j % 26) as u8).collect();
                encode_randomly(&body, &mut rng)
            })
            .collect();
        let (mut decoded, mut failed) = (0, 0);
        for round in 0..4000 {
            let raw = if round % 2 == 0 {
                let len = rng.below(120);
                (0..len)
                    .map(|_| {
                        if rng.below(5) == 0 {
                            rng.next_u64() as u8
                        } else {
                            ALPHABET[rng.below(ALPHABET.len())]
                        }
                    })
                    .collect()
            } else {
                let pick = rng.below(valid.len());
                rng.mutate(&valid[pick])
            };
            let pieces = rng.splits(raw.len(), 10);
            let whole = decode_all(&raw);
            let split = decode_in_pieces(&raw, &pieces);
            match &whole {
                Ok(_) => decoded += 1,
                Err(e) if e.kind() != ErrorKind::IncompleteResponse => failed += 1,
                Err(_) => {}
            }
            // Splitting never changes the outcome.
            assert!(
                agree(&whole, &split),
                "split {pieces:?}: {split:?}, whole: {whole:?}, input {raw:?}"
            );
        }
        // The mutations must exercise both outcomes, or this test proves little.
        assert!(
            decoded > 100 && failed > 100,
            "{decoded} decoded, {failed} failed"
        );
    }
}
