//! One accepted HTTP connection: read requests, answer them, inject faults,
//! obey commands.
//!
//! The task alternates between two phases:
//!
//! * **idle** (no byte of the next request received yet): wait for input, for
//!   a command from the test and for the idle timer, whichever is first. The
//!   registry marks the connection idle, so commands reach it.
//! * **busy** (reading a request, waiting, writing the response): commands
//!   are not sent to it; those queued when it became busy are refused.
//!
//! Whatever ends the connection produces an [`Ending`]; [`Connection::run`]
//! performs the close in one place, in a fixed order: update the counters,
//! close the socket, send the event, acknowledge the command.
//!
//! The idle phase and the close are shared with the line-echo server (see
//! `plumbing.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::request::{BadRequest, BodyKind, ChunkedDecoder, Request};
use super::response::{RouteClose, write_response};
use super::routes::{Action, route};
use super::server::{HttpServerBuilder, Shared};
use super::stream::ServerStream;
use super::{CONTINUE_100, HttpCloseCause, HttpEvent, REQUEST_TIMEOUT_408, request};
use crate::plumbing::{self, Command, write_flushed};

/// How much buffer space to offer each read.
const READ_CHUNK: usize = 8192;

/// Why and how a connection ends, plus the command to acknowledge (if a
/// command caused the end).
type Ending = plumbing::Ending<HttpCloseCause>;

/// A connection's state, owned by its task.
pub(super) struct Connection {
    id: u64,
    peer: SocketAddr,
    stream: ServerStream,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    settings: HttpServerBuilder,
    /// Received bytes not consumed yet. Empty when the connection is idle.
    buf: BytesMut,
    /// Requests processed on this connection.
    requests: u64,
    /// Responses written on this connection (raw answers included).
    responses: u64,
}

impl Connection {
    /// Books the accepted connection `id` (registered, counted, then
    /// [`HttpEvent::Accepted`] sent), so that it can be served.
    pub(super) fn new(
        id: u64,
        peer: SocketAddr,
        stream: ServerStream,
        shared: Arc<Shared>,
        settings: HttpServerBuilder,
    ) -> Self {
        let commands = shared.hub.register(id, HttpEvent::Accepted { peer });
        Connection {
            id,
            peer,
            stream,
            commands,
            shared,
            settings,
            buf: BytesMut::new(),
            requests: 0,
            responses: 0,
        }
    }

    /// Serves the connection until it ends, then closes it.
    pub(super) async fn run(mut self) {
        let ending = self.serve().await;

        // 1. Counters and registry first: whoever observes the close below
        //    must already see them.
        self.shared.hub.forget(self.id, ending.cause);
        // Commands still queued are dropped with `commands`, which answers
        // them "not done".
        let Connection {
            stream,
            shared,
            peer,
            requests,
            commands,
            ..
        } = self;
        drop(commands);
        // 2. The close itself, 3. the event, which promises the close
        //    already happened, 4. the acknowledgement, so `close_idle`
        //    returns after the event.
        let closed = |mode, cause| HttpEvent::Closed {
            peer,
            mode,
            cause,
            requests,
        };
        shared.hub.close(stream, ending, closed).await;
    }

    /// Answers requests until something ends the connection.
    async fn serve(&mut self) -> Ending {
        loop {
            let limit_reached = self
                .settings
                .close_after
                .filter(|&(limit, _)| self.responses >= limit);
            if let Some((_, mode)) = limit_reached {
                return Ending::new(mode, HttpCloseCause::AfterRequests);
            }
            // Pipelined bytes already buffered: not idle.
            let idle_ending = if self.buf.is_empty() {
                self.wait_while_idle().await
            } else {
                None
            };
            if let Some(ending) = idle_ending {
                return ending;
            }
            let request = match self.read_request().await {
                Ok(request) => request,
                Err(ending) => return ending,
            };

            let routed = route(&request);
            // `/vanish-once/<tag>`: on a connection that has answered before,
            // the tag's first such request is dropped unprocessed, as if the
            // server's idle close had crossed it on the wire.
            let vanishing = routed
                .vanish_once
                .as_ref()
                .filter(|vanish| self.responses > 0 && self.shared.vanish(&vanish.tag));
            if let Some(vanish) = vanishing {
                return Ending::new(vanish.mode, HttpCloseCause::Vanished);
            }

            // Counted before any delay and any response byte.
            self.requests += 1;
            let id = request.id();
            self.shared.count_request(&request.method, id.as_deref());
            self.shared.hub.emit(HttpEvent::Request {
                peer: self.peer,
                method: request.method.clone(),
                path: request.target.clone(),
                id,
            });

            let delay = self.settings.response_delay.saturating_add(routed.delay);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Some(ending) = self.answer(&request, routed.action).await {
                return ending;
            }
        }
    }

    /// Waits, while idle, until the first bytes of a request arrive (returns
    /// `None`) or the connection must end (returns the ending). Handles
    /// commands meanwhile.
    async fn wait_while_idle(&mut self) -> Option<Ending> {
        self.shared.hub.set_idle(self.id, true);
        let ending = plumbing::wait_while_idle(
            &mut self.stream,
            &mut self.buf,
            READ_CHUNK,
            &mut self.commands,
            self.settings.idle_close,
            // Some servers say `408` before an idle close.
            self.settings.idle_408.then_some(REQUEST_TIMEOUT_408),
        )
        .await;
        if ending.is_none() {
            self.become_busy();
        }
        ending
    }

    /// Leaves the idle phase: no more commands are sent to this connection,
    /// and those already queued are refused.
    fn become_busy(&mut self) {
        self.shared.hub.set_idle(self.id, false);
        while let Ok(command) = self.commands.try_recv() {
            command.refuse();
        }
    }

    /// Reads more bytes into the buffer, mid-request.
    async fn read_more(&mut self) -> Result<(), Ending> {
        self.buf.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(Ending::fin(HttpCloseCause::ClientClosed)),
            Ok(_) => Ok(()),
            Err(_) => Err(Ending::fin(HttpCloseCause::Error)),
        }
    }

    /// Reads one complete request (head and body). On a malformed request,
    /// answers `400` and returns the ending.
    async fn read_request(&mut self) -> Result<Request, Ending> {
        let head = loop {
            match request::parse_head(&mut self.buf) {
                Ok(Some(head)) => break head,
                Ok(None) => self.read_more().await?,
                Err(bad) => return Err(self.bad_request(bad).await),
            }
        };
        if head.expects_continue() && write_flushed(&mut self.stream, CONTINUE_100).await.is_err() {
            return Err(Ending::fin(HttpCloseCause::Error));
        }
        let body = match head.body {
            BodyKind::None => Vec::new(),
            BodyKind::Length(len) => {
                // `parse_head` caps `len` at `MAX_BODY_LEN`, which fits.
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                while self.buf.len() < len {
                    self.read_more().await?;
                }
                self.buf.split_to(len).to_vec()
            }
            BodyKind::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                loop {
                    match decoder.feed(&self.buf) {
                        Ok(consumed) => self.buf.advance(consumed),
                        Err(bad) => return Err(self.bad_request(bad).await),
                    }
                    if decoder.is_done() {
                        break decoder.into_body();
                    }
                    self.read_more().await?;
                }
            }
        };
        Ok(head.with_body(body))
    }

    /// Answers `400 Bad Request` with `Connection: close`; the connection
    /// then ends with a FIN.
    async fn bad_request(&mut self, BadRequest(why): BadRequest) -> Ending {
        let body = format!("bad request: {why}");
        let response = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        // Closing anyway, so a failed write changes nothing.
        let _ = write_flushed(&mut self.stream, response.as_bytes()).await;
        Ending::fin(HttpCloseCause::Error)
    }

    /// Carries out a route's action. Returns the ending if the connection
    /// must close now.
    async fn answer(&mut self, request: &Request, action: Action) -> Option<Ending> {
        let client_close = request.wants_close();
        let last_allowed = self
            .settings
            .max_requests
            .is_some_and(|max| self.responses + 1 >= max);
        let rude_limit = self
            .settings
            .close_after
            .is_some_and(|(limit, _)| self.responses + 1 >= limit);
        // A connection that will wait for another request counts as idle
        // from just before its last response bytes are written: a client
        // that has read the response can then always reach it with
        // `close_idle`. Commands sent meanwhile wait in the channel until
        // the write is done. (Pipelined bytes already buffered mean it is
        // not idle.)
        let keeps_waiting = !(client_close || last_allowed || rude_limit) && self.buf.is_empty();
        let (shared, id) = (&self.shared, self.id);
        let become_idle = |route_closes: bool| {
            move || {
                if keeps_waiting && !route_closes {
                    shared.hub.set_idle(id, true);
                }
            }
        };

        let route_close = match action {
            Action::Never => return Some(self.wait_for_client_close().await),
            Action::Raw(bytes) => {
                become_idle(false)();
                if write_flushed(&mut self.stream, bytes).await.is_err() {
                    return Some(Ending::fin(HttpCloseCause::Error));
                }
                RouteClose::No
            }
            Action::Respond(response) => {
                let announce_close =
                    response.close == RouteClose::Announced || client_close || last_allowed;
                let mut extra = Vec::new();
                if let Some(id) = request.id() {
                    extra.push(("x-request-id", id));
                }
                // The builder's hint, unless closing or the route has its own.
                let hint = self
                    .settings
                    .keep_alive_header
                    .filter(|_| !announce_close && !response.has_header("keep-alive"));
                if let Some((timeout, max)) = hint {
                    let value = match max {
                        Some(max) => format!("timeout={timeout}, max={max}"),
                        None => format!("timeout={timeout}"),
                    };
                    extra.push(("Keep-Alive", value));
                }
                if announce_close {
                    extra.push(("Connection", "close".to_owned()));
                } else if request.minor_version == 0 {
                    extra.push(("Connection", "keep-alive".to_owned()));
                }
                let head_only = request.is_head();
                let before_last_write = become_idle(response.close != RouteClose::No);
                let written = write_response(
                    &mut self.stream,
                    &response,
                    &extra,
                    head_only,
                    before_last_write,
                )
                .await;
                // Under TLS, records may still be buffered.
                let written = match written {
                    Ok(()) => self.stream.flush().await,
                    Err(error) => Err(error),
                };
                if written.is_err() {
                    return Some(Ending::fin(HttpCloseCause::Error));
                }
                response.close
            }
        };
        self.responses += 1;

        if route_close != RouteClose::No {
            Some(Ending::fin(HttpCloseCause::Route))
        } else if client_close {
            Some(Ending::fin(HttpCloseCause::ClientAskedClose))
        } else if last_allowed {
            Some(Ending::fin(HttpCloseCause::MaxRequests))
        } else {
            // `close_after` is checked at the top of the serve loop.
            None
        }
    }

    /// `/never`: discards whatever the client sends until it closes.
    async fn wait_for_client_close(&mut self) -> Ending {
        loop {
            self.buf.clear();
            self.buf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => return Ending::fin(HttpCloseCause::ClientClosed),
                Ok(_) => {}
                Err(_) => return Ending::fin(HttpCloseCause::Error),
            }
        }
    }
}
