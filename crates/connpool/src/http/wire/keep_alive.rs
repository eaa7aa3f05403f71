//! The server's `Keep-Alive` hint: `Keep-Alive: timeout=5, max=100`.
//!
//! `timeout` is how long (in seconds) the server keeps an idle connection
//! open; `max` how many more requests it will serve on it. The header is
//! not part of HTTP/1.1 (RFC 9112 mentions it only in §C.2.2, as the
//! HTTP/1.0 keep-alive mechanism), but Apache, nginx (with
//! `keepalive_timeout N N`), Node.js and many others send it, and it is
//! the only way a client learns the server's idle timeout before racing
//! it. The pool uses `timeout` to expire a connection before the server
//! does.
//!
//! Parsing is forgiving because a hint is only a hint: a value we cannot
//! read is ignored, never an error. The rules:
//!
//! * parameters are separated by commas (the list syntax of RFC 9110
//!   §5.6.1); semicolons are accepted too, since some servers send them;
//! * names are case-insensitive, whitespace around `=` is allowed, values
//!   may be quoted-strings (RFC 9110 §5.6.4);
//! * a value that is not a plain decimal number in range leaves that
//!   parameter unknown (`None`); unknown parameters are ignored;
//! * when the field is repeated, or a parameter is, the smallest value
//!   wins: the most cautious reading of the server's intent.

use std::borrow::Cow;
use std::time::Duration;

use super::{parse_decimal, split_quoted, trim_ows};

/// What a server said about its keep-alive policy, if anything: the
/// `Keep-Alive: timeout=N, max=M` field of a response.
///
/// The client reads it on every response (see
/// [`ClientConfig::obey_keep_alive_hint`](crate::http::ClientConfig::obey_keep_alive_hint));
/// it is public so tools can report what a server advertises.
///
/// ```
/// use connpool::http::KeepAliveHint;
/// use std::time::Duration;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("keep-alive", "timeout=5, max=100".parse().unwrap());
/// let hint = KeepAliveHint::from_headers(&headers);
/// assert_eq!(hint.timeout, Some(Duration::from_secs(5)));
/// assert_eq!(hint.max, Some(100));
/// assert_eq!(KeepAliveHint::from_headers(&http::HeaderMap::new()), KeepAliveHint::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeepAliveHint {
    /// The server's idle timeout (`timeout=N`, seconds).
    pub timeout: Option<Duration>,
    /// How many more requests the server will serve on this connection
    /// (`max=N`).
    pub max: Option<u32>,
}

impl KeepAliveHint {
    /// The hint in a response's header fields (every `Keep-Alive` line).
    pub fn from_headers(headers: &http::HeaderMap) -> KeepAliveHint {
        KeepAliveHint::from_values(headers.get_all("keep-alive").iter().map(|v| v.as_bytes()))
    }

    /// The hint from the values of every `Keep-Alive` field line.
    pub(crate) fn from_values<'a>(values: impl Iterator<Item = &'a [u8]>) -> KeepAliveHint {
        let mut hint = KeepAliveHint::default();
        for value in values {
            for element in split_quoted(value, b',') {
                for param in split_quoted(element, b';') {
                    hint.merge_param(param);
                }
            }
        }
        hint
    }

    fn merge_param(&mut self, param: &[u8]) {
        let Some(eq) = param.iter().position(|&b| b == b'=') else {
            return;
        };
        let (name, value) = param.split_at(eq);
        let name = trim_ows(name);
        let value = unquote(trim_ows(value.get(1..).unwrap_or_default()));
        let Some(n) = value.as_deref().and_then(parse_decimal) else {
            return;
        };
        if name.eq_ignore_ascii_case(b"timeout") {
            let timeout = Duration::from_secs(n);
            self.timeout = Some(self.timeout.map_or(timeout, |t| t.min(timeout)));
        } else if name.eq_ignore_ascii_case(b"max") {
            if let Ok(max) = u32::try_from(n) {
                self.max = Some(self.max.map_or(max, |m| m.min(max)));
            }
        }
    }
}

/// The content of a quoted-string with its escapes resolved, or a token
/// as is (borrowed: the common case costs nothing). `None` for an
/// unterminated quote.
fn unquote(value: &[u8]) -> Option<Cow<'_, [u8]>> {
    let Some(inner) = value.strip_prefix(b"\"") else {
        return Some(Cow::Borrowed(value));
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut escaped = false;
    for (i, &b) in inner.iter().enumerate() {
        if escaped {
            out.push(b);
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            // Anything after the closing quote makes the value invalid.
            return (i + 1 == inner.len()).then_some(Cow::Owned(out));
        } else {
            out.push(b);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(values: &[&'static str]) -> KeepAliveHint {
        KeepAliveHint::from_values(values.iter().map(|v| v.as_bytes()))
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    #[test]
    fn absent_header_is_no_hint() {
        assert_eq!(hint(&[]), KeepAliveHint::default());
        assert_eq!(hint(&[""]), KeepAliveHint::default());
    }

    #[test]
    fn typical_header() {
        let h = hint(&["timeout=5, max=100"]);
        assert_eq!(h.timeout, secs(5));
        assert_eq!(h.max, Some(100));
    }

    #[test]
    fn case_spaces_quotes_and_semicolons() {
        assert_eq!(hint(&["TimeOut = 7"]).timeout, secs(7));
        assert_eq!(
            hint(&["timeout=\"9\", MAX=\"3\""]),
            KeepAliveHint {
                timeout: secs(9),
                max: Some(3),
            }
        );
        assert_eq!(
            hint(&["timeout=4; max=2"]),
            KeepAliveHint {
                timeout: secs(4),
                max: Some(2),
            }
        );
        assert_eq!(hint(&["\ttimeout=1\t,max=1 "]).timeout, secs(1));
    }

    #[test]
    fn unknown_params_are_ignored() {
        let h = hint(&["foo=\"a, timeout=1\", bar, timeout=30, baz=x"]);
        assert_eq!(h.timeout, secs(30));
        assert_eq!(h.max, None);
    }

    #[test]
    fn invalid_numbers_are_ignored() {
        for v in [
            "timeout=-1",
            "timeout=+5",
            "timeout=5s",
            "timeout=",
            "timeout",
            "timeout=1.5",
            "timeout=\"5",
            "timeout=\"5\"x",
            "timeout=99999999999999999999",
        ] {
            assert_eq!(hint(&[v]).timeout, None, "{v}");
        }
        assert_eq!(hint(&["max=4294967296"]).max, None);
        assert_eq!(hint(&["max=4294967295"]).max, Some(u32::MAX));
        let h = hint(&["timeout=abc, max=10"]);
        assert_eq!(h.timeout, None);
        assert_eq!(h.max, Some(10));
    }

    #[test]
    fn smallest_value_wins() {
        let h = hint(&["timeout=10, max=50", "timeout=3", "max=80, timeout=20"]);
        assert_eq!(h.timeout, secs(3));
        assert_eq!(h.max, Some(50));
        assert_eq!(hint(&["timeout=9, timeout=2"]).timeout, secs(2));
    }

    #[test]
    fn zero_is_kept() {
        // `timeout=0` means "I close at once": the pool must not reuse.
        assert_eq!(hint(&["timeout=0"]).timeout, secs(0));
    }

    #[test]
    fn escapes_in_quoted_values() {
        assert_eq!(unquote(br#""a\"b""#).as_deref(), Some(&b"a\"b"[..]));
        assert_eq!(unquote(br#""1\0""#).as_deref(), Some(&b"10"[..]));
        assert_eq!(unquote(b"plain").as_deref(), Some(&b"plain"[..]));
        assert_eq!(unquote(br#""open"#), None);
        assert_eq!(unquote(br#""trailing\"#), None);
        assert_eq!(hint(&[r#"timeout="1\2""#]).timeout, secs(12));
    }
}
