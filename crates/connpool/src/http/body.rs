//! Request bodies: in memory (replayable) or streamed (sent once).

use std::fmt;
use std::pin::Pin;

use bytes::Bytes;

/// The error type a streamed body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body.
///
/// An in-memory body (from `String`, `Vec<u8>`, `Bytes`, `&'static str`)
/// is sent with `Content-Length` and can be sent again when a request is
/// retried. A streamed body ([`Body::from_stream`]) is sent with
/// `Transfer-Encoding: chunked` (or `Content-Length` when its size is
/// known exactly) and is never sent twice: once a byte of it was taken,
/// the request is not replayable.
///
/// ```
/// use connpool::http::Body;
/// assert!(Body::from("hello").is_replayable());
/// assert_eq!(Body::from(vec![1, 2, 3]).len(), Some(3));
/// assert_eq!(Body::empty().len(), Some(0));
/// ```
pub struct Body {
    pub(crate) kind: BodyKind,
}

pub(crate) enum BodyKind {
    Empty,
    Full(Bytes),
    Stream(Pin<Box<dyn http_body::Body<Data = Bytes, Error = BoxError> + Send + Sync>>),
}

impl Body {
    /// No body.
    pub fn empty() -> Body {
        Body {
            kind: BodyKind::Empty,
        }
    }

    /// A body read from any [`http_body::Body`] as it is sent.
    pub fn from_stream<B>(body: B) -> Body
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        /// Boxes the stream so the wrapper is `Unpin` whatever `B` is,
        /// and turns its error into a [`BoxError`].
        struct MapErr<B>(Pin<Box<B>>);
        impl<B> http_body::Body for MapErr<B>
        where
            B: http_body::Body<Data = Bytes>,
            B::Error: Into<BoxError>,
        {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(
                self: Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
                let inner = self.get_mut().0.as_mut();
                inner
                    .poll_frame(cx)
                    .map(|f| f.map(|r| r.map_err(Into::into)))
            }
            fn size_hint(&self) -> http_body::SizeHint {
                self.0.size_hint()
            }
            fn is_end_stream(&self) -> bool {
                self.0.is_end_stream()
            }
        }
        Body {
            kind: BodyKind::Stream(Box::pin(MapErr(Box::pin(body)))),
        }
    }

    /// True when the body can be sent again: it is in memory.
    pub fn is_replayable(&self) -> bool {
        !matches!(self.kind, BodyKind::Stream(_))
    }

    /// The exact length, when known.
    pub fn len(&self) -> Option<u64> {
        match &self.kind {
            BodyKind::Empty => Some(0),
            BodyKind::Full(bytes) => Some(bytes.len() as u64),
            BodyKind::Stream(s) => s.size_hint().exact(),
        }
    }

    /// True for a body known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BodyKind::Empty => f.write_str("Body::Empty"),
            BodyKind::Full(b) => write!(f, "Body::Full({} bytes)", b.len()),
            BodyKind::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        if bytes.is_empty() {
            Body::empty()
        } else {
            Body {
                kind: BodyKind::Full(bytes),
            }
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::from(Bytes::from(v))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::from(Bytes::from(s))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::from(Bytes::from_static(s.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Body::from(Bytes::from_static(s))
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Body {
        Body::empty()
    }
}
