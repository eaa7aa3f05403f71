//! The routes: which answer (or fault) each request path gets.
//!
//! The list, with the exact bytes of the fault routes, is in the module
//! documentation of [`crate::http`]; keep both in step.

use std::time::Duration;

use super::request::Request;
use super::response::{Body, Framing, Response, RouteClose, pattern_byte};
use crate::CloseMode;

/// How long `/slow-headers` waits when the request has no `ms` parameter.
const SLOW_HEADERS_DEFAULT: Duration = Duration::from_secs(10);
/// How many header bytes `/oversize-headers` writes without parameters.
const OVERSIZE_DEFAULT_BYTES: usize = 64 * 1024;
/// The length of each `x-filler-K` line `/oversize-headers?bytes=N` writes
/// (CRLF included), except the last one.
const FILLER_LINE_LEN: usize = 100;
/// The most header fields `/oversize-headers?count=K` writes.
const OVERSIZE_MAX_COUNT: usize = 1_000_000;

/// The interim responses `/interim` sends before its final response.
pub(super) const INTERIM: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n";
/// What `/garbage` answers.
pub(super) const GARBAGE: &[u8] = b"garbage\r\n\r\n";
/// What `/garbage-status` answers.
pub(super) const GARBAGE_STATUS: &[u8] = b"HTTP/1.1 abc OK\r\n\r\n";

/// What the connection does with a request.
#[derive(Debug)]
pub(super) enum Action {
    /// Write this response (the connection adds its own header fields).
    Respond(Response),
    /// Write these bytes exactly, then go on as after any response.
    Raw(&'static [u8]),
    /// Never answer; wait until the client closes.
    Never,
}

/// `/vanish-once/<tag>`: close without answering, if the connection decides
/// this request is the one (see `Connection::serve`).
#[derive(Debug)]
pub(super) struct VanishOnce {
    /// The tag: everything after `/vanish-once/` in the path.
    pub(super) tag: String,
    /// How to close.
    pub(super) mode: CloseMode,
}

/// A route's answer and how long to wait before giving it.
#[derive(Debug)]
pub(super) struct Routed {
    pub(super) delay: Duration,
    pub(super) action: Action,
    /// Set by `/vanish-once/<tag>`: the connection may close instead of
    /// processing the request; otherwise it carries out `action`.
    pub(super) vanish_once: Option<VanishOnce>,
}

impl From<Response> for Routed {
    fn from(response: Response) -> Self {
        Action::Respond(response).into()
    }
}

impl From<Action> for Routed {
    fn from(action: Action) -> Self {
        Routed {
            delay: Duration::ZERO,
            action,
            vanish_once: None,
        }
    }
}

/// A `400` for a route parameter that does not parse (the connection stays
/// open: the request itself was valid HTTP).
fn bad_parameter(what: &str) -> Routed {
    Response::new(400, format!("bad parameter: {what}")).into()
}

/// Parses a decimal number, or `None`.
fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Picks the answer for `request`.
pub(super) fn route(request: &Request) -> Routed {
    let path = request.path();
    let (first, rest) = match path.strip_prefix('/') {
        Some(tail) => tail.split_once('/').unwrap_or((tail, "")),
        None => (path, ""),
    };
    match (first, rest) {
        ("bytes", n) => match number(n) {
            Some(len) => Response {
                body: Body::Pattern(len),
                ..Response::ok()
            }
            .into(),
            None => bad_parameter("/bytes/N"),
        },
        ("chunked", n) => match number(n) {
            Some(len) => Response {
                body: Body::Pattern(len),
                framing: Framing::Chunked,
                ..Response::ok()
            }
            .into(),
            None => bad_parameter("/chunked/N"),
        },
        ("close-delimited", n) => match number(n) {
            Some(len) => Response {
                body: Body::Pattern(len),
                framing: Framing::CloseDelimited,
                close: RouteClose::Announced,
                ..Response::ok()
            }
            .into(),
            None => bad_parameter("/close-delimited/N"),
        },
        ("status", code) => match number::<u16>(code) {
            Some(status @ (204 | 304)) => Response {
                body: Body::Bytes(Vec::new()),
                framing: Framing::NoBody,
                ..Response::new(status, "")
            }
            .into(),
            Some(status @ 200..=999) => Response::new(status, "ok").into(),
            _ => bad_parameter("/status/CODE needs a code from 200 to 999"),
        },
        ("echo", "") => Response::new(200, request.body.clone()).into(),
        ("interim", "") => Response {
            interim: INTERIM,
            ..Response::ok()
        }
        .into(),
        ("close-mid-body", "") => Response {
            body: Body::Bytes((0..100).map(pattern_byte).collect()),
            framing: Framing::Verbatim,
            close: RouteClose::Rude,
            ..Response::ok()
        }
        .header("Content-Length", "1000")
        .into(),
        ("truncated-chunked", "") => {
            let mut body = b"64\r\n".to_vec();
            body.extend((0..100).map(pattern_byte));
            body.extend_from_slice(b"\r\n64\r\n");
            body.extend((100..110).map(pattern_byte));
            Response {
                body: Body::Bytes(body),
                framing: Framing::Verbatim,
                close: RouteClose::Rude,
                ..Response::ok()
            }
            .header("Transfer-Encoding", "chunked")
            .into()
        }
        ("slow-headers", "") => {
            let delay = match request.query("ms") {
                Some(ms) => match number(ms) {
                    Some(ms) => Duration::from_millis(ms),
                    None => return bad_parameter("/slow-headers?ms=N"),
                },
                None => SLOW_HEADERS_DEFAULT,
            };
            Routed {
                delay,
                ..Response::ok().into()
            }
        }
        ("oversize-headers", "") => oversize_headers(request),
        ("garbage", "") => Action::Raw(GARBAGE).into(),
        ("garbage-status", "") => Action::Raw(GARBAGE_STATUS).into(),
        ("never", "") => Action::Never.into(),
        ("conflicting-length", "") => Response {
            body: Body::Bytes(b"hello!".to_vec()),
            framing: Framing::Verbatim,
            ..Response::ok()
        }
        .header("Content-Length", "5")
        .header("Content-Length", "6")
        .into(),
        ("duplicate-length", "") => Response {
            framing: Framing::Verbatim,
            ..Response::ok()
        }
        .header("Content-Length", "2")
        .header("Content-Length", "2")
        .into(),
        ("keep-alive-hint", "") => {
            let timeout = match request.query("timeout").map(number::<u64>) {
                None => 5,
                Some(Some(timeout)) => timeout,
                Some(None) => return bad_parameter("/keep-alive-hint?timeout=N"),
            };
            let value = match request.query("max").map(number::<u32>) {
                None => format!("timeout={timeout}"),
                Some(Some(max)) => format!("timeout={timeout}, max={max}"),
                Some(None) => return bad_parameter("/keep-alive-hint?max=M"),
            };
            Response::ok().header("Keep-Alive", value).into()
        }
        ("vanish-once", tag) => {
            if tag.is_empty() {
                return bad_parameter("/vanish-once/<tag> needs a tag");
            }
            let mode = match request.query("mode") {
                None | Some("fin") => CloseMode::Fin,
                Some("rst") => CloseMode::Rst,
                Some(_) => return bad_parameter("/vanish-once/<tag>?mode=fin|rst"),
            };
            // When it does not vanish, it is answered like `/`.
            Routed {
                vanish_once: Some(VanishOnce {
                    tag: tag.to_owned(),
                    mode,
                }),
                ..Response::ok().into()
            }
        }
        _ => Response::ok().into(),
    }
}

/// `/oversize-headers?bytes=N` or `?count=K`.
fn oversize_headers(request: &Request) -> Routed {
    let mut response = Response::ok();
    if let Some(count) = request.query("count") {
        let Some(count) = number::<usize>(count).filter(|&count| count <= OVERSIZE_MAX_COUNT)
        else {
            return bad_parameter("/oversize-headers?count=K");
        };
        for index in 0..count {
            response = response.header(format!("x-filler-{index}"), "x");
        }
        return response.into();
    }
    let total = match request.query("bytes") {
        Some(bytes) => match number::<usize>(bytes) {
            Some(bytes) if bytes <= OVERSIZE_MAX_COUNT * FILLER_LINE_LEN => bytes,
            _ => return bad_parameter("/oversize-headers?bytes=N"),
        },
        None => OVERSIZE_DEFAULT_BYTES,
    };
    let mut remaining = total;
    let mut index = 0;
    loop {
        let name = format!("x-filler-{index}");
        // A line is `name: value\r\n`; the value has at least one byte.
        let overhead = name.len() + 4;
        let line_len = if remaining >= 2 * FILLER_LINE_LEN {
            FILLER_LINE_LEN
        } else {
            // The last line takes what is left (at least a minimal line).
            remaining.max(overhead + 1)
        };
        response = response.header(name, "v".repeat(line_len - overhead));
        index += 1;
        if line_len >= remaining {
            return response.into();
        }
        remaining -= line_len;
    }
}
