//! Tests of the HTTP/1.1 fault server, over real sockets on 127.0.0.1, with
//! raw bytes as the client.
//!
//! No test sleeps to line up a race: "has the close happened yet?" is
//! answered by a server event or a blocking read. The `WAIT` bound only keeps
//! a broken build from hanging forever.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use connpool_testkit::CloseMode;
use connpool_testkit::http::{
    CONTINUE_100, GARBAGE, GARBAGE_STATUS, HttpCloseCause, HttpEvent, HttpEventStream, HttpServer,
    INTERIM_RESPONSES, REQUEST_TIMEOUT_408, body_pattern, checksum,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for anything that should happen "soon".
const WAIT: Duration = Duration::from_secs(5);
/// Idle timeout for the idle-close tests: short, to keep the suite fast.
const IDLE: Duration = Duration::from_millis(100);

/// Awaits `future`, failing the test if it takes longer than `WAIT`.
async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("timed out waiting")
}

/// A parsed response, as the test client saw it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

impl Response {
    /// The values of header `name` (any case).
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The only value of header `name`, if any.
    fn header(&self, name: &str) -> Option<&str> {
        let values = self.all(name);
        assert!(values.len() <= 1, "several {name} fields: {values:?}");
        values.first().copied()
    }
}

/// A raw-bytes HTTP/1.1 client on one connection.
struct Client {
    stream: TcpStream,
    /// Bytes read and not consumed yet.
    buf: Vec<u8>,
}

impl Client {
    /// Connects and waits until the server has accepted this connection.
    async fn connect(server: &HttpServer, events: &mut HttpEventStream) -> Client {
        let stream = TcpStream::connect(server.addr()).await.expect("connect");
        let peer = within(events.next_accepted()).await;
        assert_eq!(peer, Some(stream.local_addr().expect("local addr")));
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects without waiting for the server.
    async fn connect_plain(server: &HttpServer) -> Client {
        let stream = TcpStream::connect(server.addr()).await.expect("connect");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    async fn send(&mut self, bytes: &[u8]) {
        within(self.stream.write_all(bytes))
            .await
            .expect("write request");
    }

    /// Sends `GET path` with the given extra header lines.
    async fn get(&mut self, path: &str, extra: &str) {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n").as_bytes())
            .await;
    }

    /// Reads more bytes; returns how many (0 at end-of-file).
    async fn fill(&mut self) -> usize {
        let mut chunk = [0; 8192];
        let read = within(self.stream.read(&mut chunk))
            .await
            .expect("read from server");
        self.buf.extend_from_slice(&chunk[..read]);
        read
    }

    /// Reads exactly `len` bytes.
    async fn take(&mut self, len: usize) -> Vec<u8> {
        while self.buf.len() < len {
            assert_ne!(self.fill().await, 0, "end-of-file before {len} bytes");
        }
        self.buf.drain(..len).collect()
    }

    /// Reads up to and including the next CRLF, returned without it.
    async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|pair| pair == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
                return String::from_utf8(line).expect("ASCII line");
            }
            assert_ne!(self.fill().await, 0, "end-of-file in a line");
        }
    }

    /// Reads a head: the status and the header fields.
    async fn head(&mut self) -> (u16, Vec<(String, String)>) {
        let status_line = self.line().await;
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        (status, self.fields().await)
    }

    /// Reads header (or trailer) fields up to the empty line.
    async fn fields(&mut self) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                return fields;
            }
            let (name, value) = line.split_once(':').expect("a field line");
            fields.push((name.to_owned(), value.trim().to_owned()));
        }
    }

    /// Reads until end-of-file.
    async fn rest(&mut self) -> Vec<u8> {
        while self.fill().await != 0 {}
        std::mem::take(&mut self.buf)
    }

    /// Reads one final response to a request with `method`, skipping interim
    /// responses.
    async fn response_to(&mut self, method: &str) -> Response {
        let (status, headers) = loop {
            let (status, headers) = self.head().await;
            if status >= 200 {
                break (status, headers);
            }
        };
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        if method == "HEAD" || status == 204 || status == 304 {
            return response;
        }
        if response.header("transfer-encoding") == Some("chunked") {
            loop {
                let size_line = self.line().await;
                let size = size_line.split(';').next().expect("size");
                let size = usize::from_str_radix(size, 16).expect("hex size");
                if size == 0 {
                    response.trailers = self.fields().await;
                    return response;
                }
                response.body.extend(self.take(size).await);
                assert_eq!(self.take(2).await, b"\r\n");
            }
        }
        match response.header("content-length") {
            Some(len) => {
                let len = len.parse().expect("numeric length");
                response.body = self.take(len).await;
            }
            None => response.body = self.rest().await,
        }
        response
    }

    /// Reads one final response to a `GET`.
    async fn response(&mut self) -> Response {
        self.response_to("GET").await
    }

    /// Sends `GET path` and reads the response.
    async fn fetch(&mut self, path: &str) -> Response {
        self.get(path, "").await;
        self.response().await
    }

    /// Expects end-of-file with nothing more to read.
    async fn expect_eof(&mut self) {
        let rest = self.rest().await;
        assert!(
            rest.is_empty(),
            "unexpected bytes before end-of-file: {rest:?}"
        );
    }

    /// Expects the next read to fail with a reset.
    async fn expect_reset(&mut self) {
        let mut chunk = [0; 64];
        let error = within(self.stream.read(&mut chunk))
            .await
            .expect_err("read after RST must fail");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    }

    /// Expects no byte to arrive for `quiet`.
    async fn expect_silence(&mut self, quiet: Duration) {
        let mut chunk = [0; 64];
        let read = tokio::time::timeout(quiet, self.stream.read(&mut chunk)).await;
        assert!(read.is_err(), "expected silence, got {read:?}");
    }
}

/// The next `Closed` event, with all its fields.
async fn next_closed(events: &mut HttpEventStream) -> (SocketAddr, CloseMode, HttpCloseCause, u64) {
    loop {
        if let HttpEvent::Closed {
            peer,
            mode,
            cause,
            requests,
        } = within(events.next()).await.expect("server running")
        {
            return (peer, mode, cause, requests);
        }
    }
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;

    client.get("/", "").await;
    let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(client.take(expected.len()).await, expected);
    for _ in 0..4 {
        let response = client.fetch("/some/unknown/path?x=1").await;
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"ok"[..])
        );
        assert_eq!(response.header("connection"), None);
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.requests(), 5);
    assert_eq!(server.open_connections(), 1);
    client.expect_silence(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;
    client
        .send(b"GET /bytes/3 HTTP/1.1\r\n\r\nGET /bytes/5 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        .await;
    assert_eq!(client.response().await.body, b"abc");
    assert_eq!(client.response().await.body, b"abcde");
    assert_eq!(client.response().await.body, b"ok");
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn bytes_route_sends_the_pattern() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;
    let response = client.fetch("/bytes/200000").await;
    assert_eq!(response.header("content-length"), Some("200000"));
    assert_eq!(response.body, body_pattern(200_000));
    let empty = client.fetch("/bytes/0").await;
    assert_eq!((empty.status, empty.body.len()), (200, 0));
    let bad = client.fetch("/bytes/lots").await;
    assert_eq!(bad.status, 400);
    // A bad parameter is not a bad request: the connection stays open.
    assert_eq!(client.fetch("/").await.status, 200);
}

#[tokio::test]
async fn chunked_route_has_an_extension_and_a_checksum_trailer() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;

    client.get("/chunked/2500", "").await;
    let (status, headers) = client.head().await;
    assert_eq!(status, 200);
    assert!(headers.contains(&("Transfer-Encoding".into(), "chunked".into())));
    assert!(headers.iter().all(|(name, _)| name != "Content-Length"));
    assert_eq!(client.line().await, "3e8;testkit=first");
    assert_eq!(client.take(1002).await[..1000], body_pattern(1000)[..]);
    assert_eq!(client.line().await, "3e8");
    client.take(1002).await;
    assert_eq!(client.line().await, "1f4");
    client.take(502).await;
    assert_eq!(client.line().await, "0");
    let sum = checksum(&body_pattern(2500));
    assert_eq!(client.line().await, format!("x-checksum: {sum}"));
    assert_eq!(client.line().await, "");

    let response = client.fetch("/chunked/12345").await;
    assert_eq!(response.body, body_pattern(12345));
    let sum = checksum(&body_pattern(12345)).to_string();
    assert_eq!(response.trailers, vec![("x-checksum".to_owned(), sum)]);

    client.get("/chunked/0", "").await;
    client.head().await;
    let expected = b"0;testkit=first\r\nx-checksum: 0\r\n\r\n";
    assert_eq!(client.take(expected.len()).await, expected);
}

#[tokio::test]
async fn close_delimited_route_ends_the_body_with_fin() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    let response = client.fetch("/close-delimited/5000").await;
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.header("content-length"), None);
    assert_eq!(response.header("transfer-encoding"), None);
    assert_eq!(response.body, body_pattern(5000));
    let (peer, mode, cause, requests) = next_closed(&mut events).await;
    assert_eq!(peer, client.local_addr());
    assert_eq!(
        (mode, cause, requests),
        (CloseMode::Fin, HttpCloseCause::Route, 1)
    );
    assert_eq!(server.closed_by_server(), 1);
}

#[tokio::test]
async fn status_route_answers_any_code() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;
    client.get("/status/503", "").await;
    let expected = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(client.take(expected.len()).await, expected);

    client.get("/status/204", "").await;
    let expected = b"HTTP/1.1 204 No Content\r\n\r\n";
    assert_eq!(client.take(expected.len()).await, expected);
    client.get("/status/304", "").await;
    let expected = b"HTTP/1.1 304 Not Modified\r\n\r\n";
    assert_eq!(client.take(expected.len()).await, expected);

    let unusual = client.fetch("/status/599").await;
    assert_eq!((unusual.status, unusual.body.as_slice()), (599, &b"ok"[..]));
    assert_eq!(client.fetch("/status/100").await.status, 400);
    assert_eq!(client.fetch("/status/404").await.status, 404);
}

#[tokio::test]
async fn head_requests_get_the_head_only() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;
    client.send(b"HEAD /bytes/10 HTTP/1.1\r\n\r\n").await;
    let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    assert_eq!(client.take(expected.len()).await, expected);

    client.send(b"HEAD /chunked/10 HTTP/1.1\r\n\r\n").await;
    let response = client.response_to("HEAD").await;
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));

    // Nothing else was sent: the next response follows at once.
    assert_eq!(client.fetch("/bytes/4").await.body, b"abcd");
}

#[tokio::test]
async fn echo_returns_length_and_chunked_request_bodies() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;

    client
        .send(b"POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world")
        .await;
    let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";
    assert_eq!(client.take(expected.len()).await, expected);

    // A chunked body in awkward pieces, with an extension and a trailer.
    for piece in [
        &b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel"[..],
        b"lo\r\n",
        b"6\r\n world\r",
        b"\n0\r\nx-trailer: 1\r\n",
        b"\r\n",
    ] {
        client.send(piece).await;
        // Give each piece a chance to arrive on its own.
        tokio::task::yield_now().await;
    }
    assert_eq!(client.response().await.body, b"hello world");

    let empty = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    client.send(empty).await;
    assert_eq!(client.response().await.header("content-length"), Some("0"));
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn expect_100_continue_gets_continue_before_the_body() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;
    client
        .send(b"PUT /echo HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        .await;
    assert_eq!(client.take(CONTINUE_100.len()).await, CONTINUE_100);
    client.send(b"abc").await;
    assert_eq!(client.response().await.body, b"abc");
}

#[tokio::test]
async fn interim_route_sends_100_and_103_first() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;
    client.get("/interim", "").await;
    assert_eq!(
        client.take(INTERIM_RESPONSES.len()).await,
        b"HTTP/1.1 100 Continue\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
    );
    let response = client.response().await;
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"ok"[..])
    );
}

#[tokio::test]
async fn close_mid_body_sends_100_of_1000_bytes_then_fin() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    client.get("/close-mid-body", "").await;
    let (status, headers) = client.head().await;
    assert_eq!(status, 200);
    assert_eq!(
        headers,
        vec![("Content-Length".to_owned(), "1000".to_owned())]
    );
    assert_eq!(client.rest().await, body_pattern(100));
    let (_, mode, cause, _) = next_closed(&mut events).await;
    assert_eq!((mode, cause), (CloseMode::Fin, HttpCloseCause::Route));
}

#[tokio::test]
async fn truncated_chunked_stops_inside_the_second_chunk() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;
    client.get("/truncated-chunked", "").await;
    let (_, headers) = client.head().await;
    assert_eq!(
        headers,
        vec![("Transfer-Encoding".to_owned(), "chunked".to_owned())]
    );
    let mut expected = b"64\r\n".to_vec();
    expected.extend(body_pattern(100));
    expected.extend_from_slice(b"\r\n64\r\nwxyzabcdef");
    assert_eq!(client.rest().await, expected);
}

#[tokio::test]
async fn slow_headers_waits_before_the_first_byte() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;
    let start = Instant::now();
    let response = client.fetch("/slow-headers?ms=150").await;
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(response.body, b"ok");
}

#[tokio::test]
async fn response_delay_applies_to_every_response() {
    let server = HttpServer::builder()
        .response_delay(Duration::from_millis(60))
        .start()
        .expect("start");
    let mut client = Client::connect_plain(&server).await;
    let start = Instant::now();
    client.fetch("/").await;
    client.fetch("/bytes/1").await;
    assert!(start.elapsed() >= Duration::from_millis(120));
}

#[tokio::test]
async fn oversize_headers_by_bytes_or_count() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;

    for total in [10_000, 12_345, 150, 5] {
        let response = client
            .fetch(&format!("/oversize-headers?bytes={total}"))
            .await;
        let filler: usize = response
            .headers
            .iter()
            .filter(|(name, _)| name.starts_with("x-filler-"))
            .map(|(name, value)| name.len() + 2 + value.len() + 2)
            .sum();
        assert_eq!(filler, total.max(15), "bytes={total}");
        assert_eq!(response.body, b"ok");
    }

    let response = client.fetch("/oversize-headers?count=500").await;
    assert_eq!(response.headers.len(), 501); // and Content-Length
    assert_eq!(response.header("x-filler-499"), Some("x"));

    let default = client.fetch("/oversize-headers").await;
    assert!(default.headers.len() > 600);
}

#[tokio::test]
async fn garbage_routes_write_raw_bytes_and_keep_the_connection() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;
    client.get("/garbage", "").await;
    assert_eq!(client.take(GARBAGE.len()).await, b"garbage\r\n\r\n");
    client.get("/garbage-status", "").await;
    assert_eq!(
        client.take(GARBAGE_STATUS.len()).await,
        b"HTTP/1.1 abc OK\r\n\r\n"
    );
    assert_eq!(client.fetch("/").await.body, b"ok");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn never_route_stays_silent_until_the_client_closes() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut idle = Client::connect(&server, &mut events).await;
    let mut client = Client::connect(&server, &mut events).await;
    client.get("/never", "x-request-id: n1\r\n").await;
    let (peer, method, path, id) = within(events.next_request()).await.expect("running");
    assert_eq!(peer, client.local_addr());
    assert_eq!((method.as_str(), path.as_str()), ("GET", "/never"));
    assert_eq!(id.as_deref(), Some("n1"));
    assert_eq!(server.processed("GET", "n1"), 1);
    client.expect_silence(Duration::from_millis(50)).await;

    // Busy connections are not idle: close_idle skips them without waiting.
    assert_eq!(within(server.close_idle(CloseMode::Fin)).await, 1);
    idle.expect_eof().await;
    let (peer, _, cause, _) = next_closed(&mut events).await;
    assert_eq!(
        (peer, cause),
        (idle.local_addr(), HttpCloseCause::Commanded)
    );

    let peer = client.local_addr();
    drop(client);
    let (closed, mode, cause, requests) = next_closed(&mut events).await;
    assert_eq!(closed, peer);
    assert_eq!(
        (mode, cause, requests),
        (CloseMode::Fin, HttpCloseCause::ClientClosed, 1)
    );
    assert_eq!(server.open_connections(), 0);
    assert_eq!(server.closed_by_server(), 1);
}

#[tokio::test]
async fn length_fault_routes() {
    let server = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&server).await;
    client.get("/conflicting-length", "").await;
    let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    assert_eq!(client.take(expected.len()).await, expected);
    client.get("/duplicate-length", "").await;
    let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(client.take(expected.len()).await, expected);
}

#[tokio::test]
async fn keep_alive_hint_route_and_header_setting() {
    let server = HttpServer::builder()
        .keep_alive_header(5, Some(100))
        .start()
        .expect("start");
    let mut client = Client::connect_plain(&server).await;
    client.get("/", "").await;
    let expected =
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5, max=100\r\n\r\nok";
    assert_eq!(client.take(expected.len()).await, expected);

    // The route's hint replaces the builder's.
    let hinted = client.fetch("/keep-alive-hint?timeout=2&max=9").await;
    assert_eq!(hinted.all("keep-alive"), vec!["timeout=2, max=9"]);
    let hinted = client.fetch("/keep-alive-hint?timeout=3").await;
    assert_eq!(hinted.all("keep-alive"), vec!["timeout=3"]);

    // A closing response carries no hint.
    client.get("/", "Connection: close\r\n").await;
    let closing = client.response().await;
    assert_eq!(closing.header("keep-alive"), None);
    assert_eq!(closing.header("connection"), Some("close"));

    let plain = HttpServer::builder()
        .keep_alive_header(7, None)
        .start()
        .expect("start");
    let mut client = Client::connect_plain(&plain).await;
    assert_eq!(
        client.fetch("/").await.header("keep-alive"),
        Some("timeout=7")
    );
    let default = HttpServer::start_default().expect("start");
    let mut client = Client::connect_plain(&default).await;
    assert_eq!(client.fetch("/").await.header("keep-alive"), None);
}

#[tokio::test]
async fn idle_close_with_fin() {
    let server = HttpServer::builder()
        .idle_close(IDLE, CloseMode::Fin)
        .start()
        .expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    let sent = Instant::now();
    client.fetch("/").await;

    // The idle timer starts after the response, so after `sent`.
    let (peer, mode, cause, requests) = next_closed(&mut events).await;
    assert!(sent.elapsed() >= IDLE);
    assert_eq!(peer, client.local_addr());
    assert_eq!(
        (mode, cause, requests),
        (CloseMode::Fin, HttpCloseCause::IdleTimeout, 1)
    );
    client.expect_eof().await;
    assert_eq!(server.closed_by_server(), 1);
    assert_eq!(server.open_connections(), 0);
}

#[tokio::test]
async fn idle_close_with_rst() {
    let server = HttpServer::builder()
        .idle_close(IDLE, CloseMode::Rst)
        .idle_408(true) // ignored for RST
        .start()
        .expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    client.fetch("/").await;
    let (_, mode, cause, _) = next_closed(&mut events).await;
    assert_eq!((mode, cause), (CloseMode::Rst, HttpCloseCause::IdleTimeout));
    client.expect_reset().await;
}

#[tokio::test]
async fn idle_close_of_a_fresh_connection() {
    let server = HttpServer::builder()
        .idle_close(Duration::from_millis(50), CloseMode::Fin)
        .start()
        .expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    let (_, _, cause, requests) = next_closed(&mut events).await;
    assert_eq!((cause, requests), (HttpCloseCause::IdleTimeout, 0));
    client.expect_eof().await;
}

#[tokio::test]
async fn idle_408_is_written_before_the_fin() {
    let server = HttpServer::builder()
        .idle_close(IDLE, CloseMode::Fin)
        .idle_408(true)
        .start()
        .expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    client.fetch("/").await;
    let (_, mode, cause, _) = next_closed(&mut events).await;
    assert_eq!((mode, cause), (CloseMode::Fin, HttpCloseCause::IdleTimeout));
    assert_eq!(
        client.rest().await,
        b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[tokio::test]
async fn close_after_closes_without_warning() {
    let server = HttpServer::builder()
        .close_after(2, CloseMode::Fin)
        .keep_alive_header(60, None)
        .start()
        .expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    for _ in 0..2 {
        let response = client.fetch("/").await;
        assert_eq!(response.header("connection"), None);
        assert_eq!(response.header("keep-alive"), Some("timeout=60"));
    }
    let (_, mode, cause, requests) = next_closed(&mut events).await;
    assert_eq!(
        (mode, cause, requests),
        (CloseMode::Fin, HttpCloseCause::AfterRequests, 2)
    );
    client.expect_eof().await;
    assert_eq!(server.closed_by_server(), 1);
}

#[tokio::test]
async fn close_after_with_rst() {
    let server = HttpServer::builder()
        .close_after(1, CloseMode::Rst)
        .start()
        .expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    client.get("/", "").await;
    let (_, mode, cause, _) = next_closed(&mut events).await;
    assert_eq!(
        (mode, cause),
        (CloseMode::Rst, HttpCloseCause::AfterRequests)
    );
    // The reset may or may not destroy the unread response first; either
    // way, the connection ends in a reset.
    let mut chunk = [0; 256];
    loop {
        match within(client.stream.read(&mut chunk)).await {
            Ok(0) => panic!("end-of-file instead of a reset"),
            Ok(_) => {}
            Err(error) => {
                assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
                break;
            }
        }
    }
}

#[tokio::test]
async fn max_requests_announces_the_close() {
    let server = HttpServer::builder()
        .max_requests(3)
        .start()
        .expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    for _ in 0..2 {
        assert_eq!(client.fetch("/").await.header("connection"), None);
    }
    client.get("/", "").await;
    let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    assert_eq!(client.rest().await, expected);
    let (_, mode, cause, requests) = next_closed(&mut events).await;
    assert_eq!(
        (mode, cause, requests),
        (CloseMode::Fin, HttpCloseCause::MaxRequests, 3)
    );
}

#[tokio::test]
async fn client_asked_close_and_http_1_0() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();

    let mut client = Client::connect(&server, &mut events).await;
    client.get("/", "Connection: close\r\n").await;
    let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    assert_eq!(client.rest().await, expected);
    let (_, mode, cause, _) = next_closed(&mut events).await;
    assert_eq!(
        (mode, cause),
        (CloseMode::Fin, HttpCloseCause::ClientAskedClose)
    );

    let mut old = Client::connect(&server, &mut events).await;
    old.send(b"GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(old.rest().await, expected);
    let (_, _, cause, _) = next_closed(&mut events).await;
    assert_eq!(cause, HttpCloseCause::ClientAskedClose);

    let mut kept = Client::connect(&server, &mut events).await;
    for _ in 0..2 {
        kept.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await;
        let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";
        assert_eq!(kept.take(expected.len()).await, expected);
    }
    assert_eq!(server.open_connections(), 1);
    // Closes the client asked for are not the server's initiative.
    assert_eq!(server.closed_by_server(), 0);
}

#[tokio::test]
async fn bad_requests_get_400_and_fin() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    for bad in [
        &b"NOT AN HTTP REQUEST\r\n\r\n"[..],
        b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
    ] {
        let mut client = Client::connect(&server, &mut events).await;
        client.send(bad).await;
        let response = client.response().await;
        assert_eq!(response.status, 400);
        assert_eq!(response.header("connection"), Some("close"));
        assert!(response.body.starts_with(b"bad request: "));
        let (_, mode, cause, requests) = next_closed(&mut events).await;
        assert_eq!(
            (mode, cause, requests),
            (CloseMode::Fin, HttpCloseCause::Error, 0)
        );
    }
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn vanish_once_closes_a_reused_connection_with_fin_and_no_answer() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    assert_eq!(client.fetch("/").await.body, b"ok");
    client.get("/vanish-once/a", "x-request-id: v1\r\n").await;
    // No response byte, just the FIN.
    client.expect_eof().await;

    // The server never acted on it: only the first request was processed.
    let (peer, method, path, _) = within(events.next_request()).await.expect("running");
    assert_eq!(peer, client.local_addr());
    assert_eq!((method.as_str(), path.as_str()), ("GET", "/"));
    let (peer, mode, cause, requests) = next_closed(&mut events).await;
    assert_eq!(peer, client.local_addr());
    assert_eq!(
        (mode, cause, requests),
        (CloseMode::Fin, HttpCloseCause::Vanished, 1)
    );
    assert_eq!(server.requests(), 1);
    assert_eq!(server.processed("GET", "v1"), 0);
    assert!(server.duplicates().is_empty());
    assert_eq!(server.vanished(), 1);
    assert_eq!(server.closed_by_server(), 1);
    assert_eq!(server.open_connections(), 0);

    // Once per tag: the same tag on another reused connection is answered.
    let mut again = Client::connect(&server, &mut events).await;
    again.fetch("/").await;
    again.get("/vanish-once/a", "x-request-id: v1\r\n").await;
    let response = again.response().await;
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"ok"[..])
    );
    assert_eq!(response.header("x-request-id"), Some("v1"));
    assert_eq!(server.processed("GET", "v1"), 1);
    assert_eq!(server.vanished(), 1);
    assert_eq!(server.requests(), 3);
    assert_eq!(again.fetch("/vanish-once/a").await.status, 200);
}

#[tokio::test]
async fn vanish_once_with_rst_resets_without_answering() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    client.fetch("/bytes/3").await;
    client.get("/vanish-once/r?mode=rst", "").await;
    let (_, mode, cause, requests) = next_closed(&mut events).await;
    assert_eq!(
        (mode, cause, requests),
        (CloseMode::Rst, HttpCloseCause::Vanished, 1)
    );
    let mut chunk = [0; 64];
    match within(client.stream.read(&mut chunk)).await {
        Ok(read) => assert_eq!(read, 0, "response bytes: {:?}", &chunk[..read]),
        Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
    }
    assert_eq!(server.requests(), 1);
    assert_eq!(server.vanished(), 1);
    assert_eq!(server.closed_by_server(), 1);
}

#[tokio::test]
async fn vanish_once_answers_on_a_fresh_connection_and_reads_bodies() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    // The first request on a fresh connection is answered, like `/`...
    let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    client.get("/vanish-once/b", "").await;
    assert_eq!(client.take(expected.len()).await, expected);
    assert_eq!((server.requests(), server.vanished()), (1, 0));
    // ...and does not use the tag up: now that the connection has answered,
    // it vanishes, whatever the method (the body is read first).
    client
        .send(b"POST /vanish-once/b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    client.expect_eof().await;
    let (_, mode, cause, requests) = next_closed(&mut events).await;
    assert_eq!(
        (mode, cause, requests),
        (CloseMode::Fin, HttpCloseCause::Vanished, 1)
    );
    assert_eq!((server.requests(), server.vanished()), (1, 1));

    // Bad parameters get `400` on a connection that stays open.
    let mut bad = Client::connect_plain(&server).await;
    bad.fetch("/").await;
    assert_eq!(bad.fetch("/vanish-once/").await.status, 400);
    assert_eq!(bad.fetch("/vanish-once").await.status, 400);
    assert_eq!(bad.fetch("/vanish-once/c?mode=later").await.status, 400);
    assert_eq!(bad.fetch("/").await.status, 200);
    assert_eq!(server.vanished(), 1);
}

#[tokio::test]
async fn request_ids_are_counted_and_duplicates_reported() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    for (method, id) in [("POST", "a"), ("GET", "a"), ("POST", "a"), ("GET", "b")] {
        let request =
            format!("{method} /echo HTTP/1.1\r\nx-request-id: {id}\r\ncontent-length: 0\r\n\r\n");
        client.send(request.as_bytes()).await;
        let response = client.response().await;
        assert_eq!(response.header("x-request-id"), Some(id));
    }
    client.fetch("/").await; // no id: counted in requests() only

    assert_eq!(server.requests(), 5);
    assert_eq!(server.processed("POST", "a"), 2);
    assert_eq!(server.processed("GET", "a"), 1);
    assert_eq!(server.processed("GET", "b"), 1);
    assert_eq!(server.processed("PUT", "a"), 0);
    assert_eq!(
        server.duplicates(),
        vec![("POST".to_owned(), "a".to_owned(), 2)]
    );

    let mut seen = Vec::new();
    for _ in 0..5 {
        let (peer, method, path, id) = within(events.next_request()).await.expect("running");
        assert_eq!(peer, client.local_addr());
        seen.push((method, path, id));
    }
    assert_eq!(seen[0], ("POST".into(), "/echo".into(), Some("a".into())));
    assert_eq!(seen[4], ("GET".into(), "/".into(), None));
}

#[tokio::test]
async fn close_idle_closes_only_idle_connections() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut first = Client::connect(&server, &mut events).await;
    let mut second = Client::connect(&server, &mut events).await;
    let mut busy = Client::connect(&server, &mut events).await;
    first.fetch("/").await;
    busy.get("/slow-headers?ms=300", "").await;
    within(events.next_request()).await;

    assert_eq!(within(server.close_idle(CloseMode::Fin)).await, 2);
    // Returned after the closes: the counters and events are there already.
    assert_eq!(server.open_connections(), 1);
    assert_eq!(server.closed_by_server(), 2);
    let mut closed = vec![
        next_closed(&mut events).await,
        next_closed(&mut events).await,
    ];
    closed.sort_by_key(|(peer, ..)| *peer);
    let mut expected = vec![
        (
            first.local_addr(),
            CloseMode::Fin,
            HttpCloseCause::Commanded,
            1,
        ),
        (
            second.local_addr(),
            CloseMode::Fin,
            HttpCloseCause::Commanded,
            0,
        ),
    ];
    expected.sort_by_key(|(peer, ..)| *peer);
    assert_eq!(closed, expected);
    first.expect_eof().await;
    second.expect_eof().await;

    // The busy one answers, becomes idle, and can then be reset.
    assert_eq!(busy.response().await.body, b"ok");
    assert_eq!(within(server.close_idle(CloseMode::Rst)).await, 1);
    busy.expect_reset().await;
    assert_eq!(within(server.close_idle(CloseMode::Fin)).await, 0);
}

#[tokio::test]
async fn send_unsolicited_reaches_idle_connections() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut client = Client::connect(&server, &mut events).await;
    assert_eq!(server.send_unsolicited(REQUEST_TIMEOUT_408).await, 1);
    assert_eq!(
        client.take(REQUEST_TIMEOUT_408.len()).await,
        REQUEST_TIMEOUT_408
    );
    assert_eq!(client.fetch("/").await.body, b"ok");
}

#[tokio::test]
async fn drop_does_not_hang_on_busy_connections() {
    let server = HttpServer::start_default().expect("start");
    let mut events = server.events();
    let mut never = Client::connect(&server, &mut events).await;
    let mut slow = Client::connect(&server, &mut events).await;
    let mut partial = Client::connect(&server, &mut events).await;
    never.get("/never", "").await;
    slow.get("/slow-headers", "").await; // 10 s by default
    partial.send(b"GET / HTTP/1.1\r\nHost:").await;
    within(events.next_request()).await;
    within(events.next_request()).await;

    let start = Instant::now();
    drop(server);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "drop took {:?}",
        start.elapsed()
    );
    // The stream ends, with no close events for the dropped connections.
    assert!(within(events.next()).await.is_none());
    for client in [&mut never, &mut slow, &mut partial] {
        let mut chunk = [0; 16];
        let read = within(client.stream.read(&mut chunk)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

#[test]
fn url_names_the_server() {
    let server = HttpServer::start_default().expect("start");
    assert_eq!(
        server.url("/bytes/3"),
        format!("http://127.0.0.1:{}/bytes/3", server.addr().port())
    );
}
