//! Tests of the nginx harness, against a real nginx over raw TCP.
//!
//! These tests need nginx installed (`apt-get install nginx`; `.ci/run` does
//! it). Without it they fail with that advice: they never skip silently.

use std::path::Path;
use std::time::{Duration, Instant};

use connpool_testkit::nginx::{Nginx, NginxBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for anything that should happen "soon". Never reached when the
/// code works.
const WAIT: Duration = Duration::from_secs(5);

/// Starts nginx, failing the test (never skipping it) when that fails.
fn start(builder: NginxBuilder) -> Nginx {
    builder
        .start()
        .unwrap_or_else(|err| panic!("cannot start nginx: {err}"))
}

/// One parsed HTTP/1.1 response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// The value of header `name`, if present.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A client connection that keeps bytes read past the end of a response.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(nginx: &Nginx) -> Client {
        let stream = within(TcpStream::connect(nginx.addr()))
            .await
            .expect("connect to nginx");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends `method path` with `body` (if any) and reads the response.
    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Response {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n").into_bytes();
        if !body.is_empty() {
            request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        self.stream
            .write_all(&request)
            .await
            .expect("write request");
        within(self.read_response()).await
    }

    async fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, b"").await
    }

    /// Reads more bytes into the buffer; panics on end-of-file.
    async fn fill(&mut self) {
        let mut chunk = [0; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.expect("read response");
        assert!(n > 0, "nginx closed mid-response; got {:?}", self.buf);
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Reads one response with a `Content-Length` body.
    async fn read_response(&mut self) -> Response {
        let head_len = loop {
            if let Some(pos) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8(self.buf[..head_len].to_vec()).expect("ASCII head");
        let mut lines = head.split("\r\n").filter(|line| !line.is_empty());
        let status_line = lines.next().expect("status line");
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (key, value) = line.split_once(':').expect("header line");
                (key.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = response
            .header("Content-Length")
            .expect("Content-Length")
            .parse()
            .expect("numeric Content-Length");
        while self.buf.len() < head_len + len {
            self.fill().await;
        }
        response.body = self.buf[head_len..head_len + len].to_vec();
        self.buf.drain(..head_len + len);
        response
    }

    /// Waits for nginx to close the connection: the next read returns 0.
    async fn read_eof(&mut self) {
        let mut byte = [0; 1];
        let n = within(self.stream.read(&mut byte))
            .await
            .expect("read until close");
        assert_eq!(n, 0, "expected end-of-file, got data");
    }
}

/// Awaits `future`, failing the test if it takes longer than `WAIT`.
async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("timed out waiting")
}

/// The content of the file served as `/bytes/N`.
fn expected_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn version_is_reported() {
    let version = Nginx::version().unwrap_or_else(|err| panic!("nginx -v: {err}"));
    let first = version.split('.').next().unwrap_or_default();
    assert!(
        first.parse::<u32>().is_ok(),
        "version {version:?} does not start with a number"
    );
}

#[tokio::test]
async fn answers_get_root_with_ok() {
    let nginx = start(Nginx::builder());
    assert_eq!(nginx.addr().ip().to_string(), "127.0.0.1");
    assert_eq!(
        nginx.url("/bytes/10"),
        format!("http://127.0.0.1:{}/bytes/10", nginx.addr().port())
    );
    assert_eq!(nginx.url("bytes/10"), nginx.url("/bytes/10"));

    let mut client = Client::connect(&nginx).await;
    let response = client.get("/").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok\n");
    assert_eq!(response.header("Connection"), Some("keep-alive"));

    let response = client.get("/no/such/path").await;
    assert_eq!(response.status, 404);
}

#[tokio::test]
async fn serves_static_bytes() {
    let nginx = start(Nginx::builder());
    let mut client = Client::connect(&nginx).await;
    for size in Nginx::BYTES_SIZES {
        let response = client.get(&format!("/bytes/{size}")).await;
        assert_eq!(response.status, 200, "/bytes/{size}");
        assert_eq!(response.body.len(), size, "/bytes/{size}");
        assert_eq!(response.body, expected_bytes(size), "/bytes/{size}");
    }
    assert_eq!(Nginx::BYTES_SIZES[1], 1000);
}

#[tokio::test]
async fn echo_accepts_bodies_and_keeps_the_connection() {
    let nginx = start(Nginx::builder());
    let mut client = Client::connect(&nginx).await;
    for method in ["POST", "PUT"] {
        let response = client.request(method, "/echo", &[b'x'; 5000]).await;
        assert_eq!(response.status, 200, "{method} /echo");
        assert_eq!(response.body, b"ok\n");
    }
    let response = client.request("POST", "/", b"hello").await;
    assert_eq!(response.status, 200);
    // The bodies were consumed: the same connection still works.
    let response = client.get("/bytes/10").await;
    assert_eq!(response.body, expected_bytes(10));
}

#[tokio::test]
async fn keepalive_timeout_closes_idle_connections() {
    let nginx = start(Nginx::builder().keepalive_timeout(Duration::from_millis(300)));
    let mut client = Client::connect(&nginx).await;
    let response = client.get("/").await;
    assert_eq!(response.status, 200);
    let idle_since = Instant::now();
    client.read_eof().await;
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(250),
        "closed after only {idle:?}"
    );
    assert!(idle < Duration::from_secs(2), "closed after {idle:?}");
}

#[tokio::test]
async fn keepalive_requests_closes_after_the_last() {
    let nginx = start(Nginx::builder().keepalive_requests(3));
    let mut client = Client::connect(&nginx).await;
    for _ in 0..2 {
        let response = client.get("/").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("Connection"), Some("keep-alive"));
    }
    let third = client.get("/").await;
    assert_eq!(third.status, 200);
    assert_eq!(third.header("Connection"), Some("close"));
    client.read_eof().await;
}

#[tokio::test]
async fn two_instances_run_side_by_side() {
    let first = start(Nginx::builder());
    let second = start(Nginx::builder().keepalive_requests(1));
    assert_ne!(first.addr(), second.addr());
    assert_ne!(first.dir(), second.dir());
    assert_ne!(first.pid(), second.pid());

    let mut one = Client::connect(&first).await;
    let mut two = Client::connect(&second).await;
    let a = one.get("/").await;
    let b = two.get("/").await;
    assert_eq!((a.status, b.status), (200, 200));
    // Each runs its own configuration.
    assert_eq!(a.header("Connection"), Some("keep-alive"));
    assert_eq!(b.header("Connection"), Some("close"));
}

#[tokio::test]
async fn drop_stops_nginx_and_removes_its_directory() {
    let nginx = start(Nginx::builder());
    let dir = nginx.dir().to_owned();
    let pid = nginx.pid();
    let addr = nginx.addr();
    let proc_entry = format!("/proc/{pid}");
    assert!(dir.join("nginx.conf").is_file());
    assert!(Path::new(&proc_entry).exists());

    drop(nginx);
    assert!(!dir.exists(), "{} still exists", dir.display());
    // The child was reaped, so not even a zombie is left.
    assert!(
        !Path::new(&proc_entry).exists(),
        "nginx {pid} still running"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "something still listens on {addr}"
    );
}

#[test]
fn a_bad_config_fails_with_the_error_log() {
    let err = Nginx::builder()
        .extra_http_config("no_such_directive on;")
        .start()
        .expect_err("nginx accepted an unknown directive");
    let message = err.to_string();
    assert!(
        message.contains("no_such_directive"),
        "error does not quote error.log: {message}"
    );
}

#[test]
fn a_taken_port_is_retried_then_reported() {
    // A second server on a port that stays taken makes every attempt fail
    // to bind, whichever port the harness picks for the main server.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("local addr").port();
    let started = Instant::now();
    let err = Nginx::builder()
        .extra_http_config(&format!("server {{ listen 127.0.0.1:{port}; }}"))
        .start()
        .expect_err("nginx bound a port that is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains("Address already in use"), "{err}");
    // nginx itself would retry bind() for seconds on each attempt; the
    // harness gives up on an attempt as soon as the error log says why.
    assert!(started.elapsed() < WAIT, "took {:?}", started.elapsed());
}
