//! The HTTP client against real servers on 127.0.0.1 (testkit's
//! `HttpServer`): keep-alive reuse, the stale-connection rules, every
//! response fault, timeouts, and the body's return-or-close rules.

use std::time::Duration;

use connpool::http::{Client, HostKey, TraceStep};
use connpool::{CloseReason, ErrorKind, EvictReason};
use connpool_testkit::CloseMode;
use connpool_testkit::http::{HttpCloseCause, HttpServer};

mod common;
use common::{traced_get, warm};

/// The pool events a client's observer saw.
type Events = common::Recorder<HostKey>;

fn client_with(events: &Events) -> Client {
    Client::builder().observer(events.observer()).build()
}

/// A GET of `path` on `server`, sent (its body not read).
async fn send_get(client: &Client, server: &HttpServer, path: &str) -> connpool::http::Response {
    client.get(server.url(path)).send().await.unwrap()
}

/// A default server and a default client.
fn server_and_client() -> (HttpServer, Client) {
    (HttpServer::start_default().unwrap(), Client::new())
}

/// A default server and a client whose pool events are recorded.
fn server_and_recorded_client() -> (HttpServer, Events, Client) {
    let events = Events::default();
    let client = client_with(&events);
    (HttpServer::start_default().unwrap(), events, client)
}

/// Polls (up to 200 times, 5 ms apart) until `count` gives `expected`:
/// the drain of a dropped body runs on a task of its own. The caller
/// asserts the final count.
async fn settle(count: impl Fn() -> usize, expected: usize) {
    for _ in 0..200 {
        if count() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// 50 times: a GET answered `ok`, then the server closes the idle
/// connection with `mode` (and says it closed one).
async fn close_idle_after_each_get(client: &Client, server: &HttpServer, mode: CloseMode) {
    for round in 0..50 {
        let resp = send_get(client, server, "/").await;
        assert_eq!(resp.text().await.unwrap(), "ok");
        // The server closes the idle connection and tells us it did.
        assert_eq!(server.close_idle(mode).await, 1, "round {round}");
    }
}

/// An error after the request went out on the first attempt, on a new
/// connection: it may have been processed.
fn assert_processed_on_a_fresh_first_attempt(err: &connpool::Error) {
    assert!(err.may_have_been_processed());
    assert_eq!(
        (err.attempts(), err.connection_reused()),
        (Some(1), Some(false))
    );
}

#[tokio::test]
async fn get_reuses_one_connection() {
    let (server, client) = server_and_client();
    for i in 0..5 {
        let resp = send_get(&client, &server, "/").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.connection_reused(), i > 0);
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.requests(), 5);
    let stats = client.stats();
    assert_eq!(stats.counters.created, 1);
}

#[tokio::test]
async fn the_connection_goes_back_at_the_end_of_the_body_while_the_response_is_held() {
    let (server, events, client) = server_and_recorded_client();
    let mut resp = send_get(&client, &server, "/bytes/100000").await;
    let mut total = 0;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        total += chunk.len();
    }
    assert_eq!(total, 100_000);
    // Still holding `resp`: the connection is already idle in the pool.
    assert_eq!(events.returned(), 1);
    let again = send_get(&client, &server, "/").await;
    assert!(again.connection_reused());
    drop(resp);
}

#[tokio::test]
async fn chunked_bodies_and_trailers() {
    let (server, client) = server_and_client();
    let mut resp = send_get(&client, &server, "/chunked/2500").await;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, connpool_testkit::http::body_pattern(2500));
    let trailers = resp.body_mut().trailers().expect("trailers");
    assert_eq!(
        trailers["x-checksum"].to_str().unwrap(),
        connpool_testkit::http::checksum(&body).to_string()
    );
    let again = send_get(&client, &server, "/").await;
    assert!(
        again.connection_reused(),
        "chunked end is a message boundary"
    );
}

#[tokio::test]
async fn head_204_304_and_interim_responses_have_no_body_and_keep_the_connection() {
    let (server, client) = server_and_client();
    let resp = client.head(server.url("/bytes/1000")).send().await.unwrap();
    assert_eq!(resp.headers()["content-length"], "1000");
    assert!(resp.bytes().await.unwrap().is_empty());
    for code in [204, 304] {
        let resp = send_get(&client, &server, &format!("/status/{code}")).await;
        assert_eq!(resp.status().as_u16(), code);
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    let resp = client
        .get(server.url("/interim"))
        .trace(true)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let trace = resp.trace().unwrap();
    assert!(trace.contains(|s| *s == TraceStep::Interim { status: 100 }));
    assert!(trace.contains(|s| *s == TraceStep::Interim { status: 103 }));
    assert_eq!(resp.text().await.unwrap(), "ok");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn close_delimited_bodies_are_read_to_the_close_and_not_reused() {
    let (server, client) = server_and_client();
    let resp = send_get(&client, &server, "/close-delimited/5000").await;
    assert_eq!(resp.bytes().await.unwrap().len(), 5000);
    let again = send_get(&client, &server, "/").await;
    assert!(!again.connection_reused());
}

#[tokio::test]
async fn request_bodies_fixed_and_streamed() {
    let (server, client) = server_and_client();
    let big = vec![b'x'; 100_000];
    let resp = client
        .put(server.url("/echo"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().len(), 100_000);
    let resp = client
        .post(server.url("/echo"))
        .body("small")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "small");
}

#[tokio::test]
async fn a_fin_on_an_idle_connection_is_never_seen_by_the_caller() {
    let (server, events, client) = server_and_recorded_client();
    close_idle_after_each_get(&client, &server, CloseMode::Fin).await;
    let resp = send_get(&client, &server, "/").await;
    assert!(!resp.connection_reused());
    // Every close was found before reuse (peek) or retried; none surfaced.
    let retried_or_evicted = events.evicted(EvictReason::ServerClosed);
    assert_eq!(retried_or_evicted, 50);
    assert_eq!(server.accepted(), 51);
}

#[tokio::test]
async fn an_rst_on_an_idle_connection_is_never_seen_by_the_caller() {
    let (server, events, client) = server_and_recorded_client();
    close_idle_after_each_get(&client, &server, CloseMode::Rst).await;
    send_get(&client, &server, "/").await;
    assert_eq!(events.evicted(EvictReason::ServerReset), 50);
}

#[tokio::test]
async fn an_unsolicited_408_makes_the_idle_connection_stale() {
    let server = HttpServer::builder()
        .idle_close(Duration::from_millis(100), CloseMode::Fin)
        .idle_408(true)
        .start()
        .unwrap();
    let mut server_events = server.events();
    let events = Events::default();
    let client = client_with(&events);
    warm(&client, &server).await;
    let (_, _, cause) = server_events.next_closed().await.unwrap();
    assert_eq!(cause, HttpCloseCause::IdleTimeout);
    let resp = send_get(&client, &server, "/").await;
    assert_eq!(resp.status(), 200, "the 408 is not taken for the answer");
    assert!(!resp.connection_reused());
    assert_eq!(events.evicted(EvictReason::UnexpectedData), 1);
}

#[tokio::test]
async fn the_learned_idle_timeout_expires_connections_before_the_server_does() {
    let server = HttpServer::builder()
        .idle_close(Duration::from_millis(300), CloseMode::Fin)
        .start()
        .unwrap();
    let mut server_events = server.events();
    let client = Client::new();
    warm(&client, &server).await;
    server_events.next_closed().await.unwrap();
    // The checkout finds the FIN and dates it with TCP_INFO.
    warm(&client, &server).await;
    let learned = client
        .learned_idle_timeout(server.url("/"))
        .expect("learned from the FIN");
    assert!(
        learned >= Duration::from_millis(250) && learned <= Duration::from_millis(400),
        "learned {learned:?} for a 300 ms server"
    );
}

#[tokio::test]
async fn keep_alive_hints_shorten_the_idle_deadline() {
    let (server, client) = server_and_client();
    common::assert_keep_alive_hint_deadlines(&client, &server).await;
    // max=0: not reused.
    let resp = send_get(&client, &server, "/keep-alive-hint?timeout=30&max=0").await;
    resp.bytes().await.unwrap();
    let resp = send_get(&client, &server, "/").await;
    assert!(!resp.connection_reused());
}

#[tokio::test]
async fn a_client_told_to_ignore_keep_alive_hints_keeps_its_own_deadline() {
    let server = HttpServer::start_default().unwrap();
    let client = Client::builder().obey_keep_alive_hint(false).build();
    // timeout=1 would close the connection at once; ignored, it is kept
    // under the client's own idle timeout.
    let trace = traced_get(&client, &server.url("/keep-alive-hint?timeout=1")).await;
    assert!(
        trace.contains(|s| *s
            == TraceStep::ConnReturned {
                idle_deadline: client.config().pool_idle_timeout
            }),
        "{trace}"
    );
    let resp = send_get(&client, &server, "/").await;
    assert!(resp.connection_reused());
}

#[tokio::test]
async fn close_after_n_without_connection_close_never_surfaces() {
    let server = HttpServer::builder()
        .close_after(3, CloseMode::Fin)
        .start()
        .unwrap();
    let client = Client::new();
    for i in 0..30 {
        let resp = client
            .get(server.url("/"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    assert_eq!(server.requests(), 30);
}

#[tokio::test]
async fn max_requests_with_connection_close_is_honoured() {
    let server = HttpServer::builder().max_requests(2).start().unwrap();
    let events = Events::default();
    let client = client_with(&events);
    for _ in 0..6 {
        warm(&client, &server).await;
    }
    assert_eq!(server.accepted(), 3);
    assert_eq!(events.closed(CloseReason::Discarded), 3);
}

#[tokio::test]
async fn max_requests_per_conn_sends_connection_close_on_the_last() {
    let server = HttpServer::start_default().unwrap();
    let client = Client::builder().max_requests_per_conn(Some(3)).build();
    for _ in 0..9 {
        warm(&client, &server).await;
    }
    assert_eq!(server.accepted(), 3);
}

#[tokio::test]
async fn keep_alive_off_uses_a_connection_per_request() {
    let server = HttpServer::start_default().unwrap();
    let client = Client::builder().keep_alive(false).build();
    for _ in 0..3 {
        warm(&client, &server).await;
    }
    assert_eq!(server.accepted(), 3);
}

#[tokio::test]
async fn a_body_closed_midway_is_an_incomplete_response() {
    let (server, client) = server_and_client();
    let resp = send_get(&client, &server, "/close-mid-body").await;
    let err = resp.bytes().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IncompleteResponse, "{err}");
    assert_processed_on_a_fresh_first_attempt(&err);
    let resp = send_get(&client, &server, "/truncated-chunked").await;
    let err = resp.bytes().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IncompleteResponse, "{err}");
    // The client still works, on new connections.
    let resp = send_get(&client, &server, "/").await;
    assert!(!resp.connection_reused());
}

#[tokio::test]
async fn malformed_responses_get_clear_errors() {
    let (server, client) = server_and_client();
    for (path, kind) in [
        ("/garbage", ErrorKind::MalformedResponse),
        ("/garbage-status", ErrorKind::MalformedResponse),
        ("/conflicting-length", ErrorKind::MalformedResponse),
        ("/duplicate-length", ErrorKind::MalformedResponse),
        ("/oversize-headers?count=150", ErrorKind::TooManyHeaders),
    ] {
        let err = client.get(server.url(path)).send().await.unwrap_err();
        assert_eq!(err.kind(), kind, "{path}: {err}");
        assert!(err.may_have_been_processed(), "{path}");
        assert_eq!(err.attempts(), Some(1));
    }
    assert_eq!(
        client.stats().total.idle,
        0,
        "no broken connection was pooled"
    );
    // 100-byte fields: the size limit needs a field limit above it.
    let client = Client::builder().max_response_headers(5000).build();
    let err = client
        .get(server.url("/oversize-headers?bytes=100000"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HeadersTooLarge, "{err}");
}

#[tokio::test]
async fn slow_headers_hit_the_response_header_timeout() {
    let server = HttpServer::start_default().unwrap();
    let client = Client::builder()
        .response_header_timeout(Some(Duration::from_millis(100)))
        .build();
    let err = client
        .get(server.url("/slow-headers?ms=5000"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResponseHeaderTimeout, "{err}");
    assert!(err.is_timeout());
    assert!(err.may_have_been_processed());
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_request_timeout() {
    let server = HttpServer::start_default().unwrap();
    let client = Client::builder()
        .response_header_timeout(None)
        .timeout(Some(Duration::from_millis(150)))
        .build();
    let err = client.get(server.url("/never")).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RequestTimeout, "{err}");
    assert!(err.may_have_been_processed());
    assert_eq!(client.stats().total.checked_out, 0);
}

#[tokio::test]
async fn unreachable_hosts_and_bad_urls_say_nothing_was_sent() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::new();
    let err = client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectRefused, "{err}");
    assert!(!err.may_have_been_processed());
    assert_eq!((err.attempts(), err.connection_reused()), (Some(0), None));
    for url in ["not a url", "ftp://127.0.0.1/", "/relative"] {
        let err = client.get(url).send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{url}: {err}");
        assert!(!err.may_have_been_processed());
    }
}

#[tokio::test]
async fn header_injection_is_refused_before_anything_is_sent() {
    let (server, client) = server_and_client();
    let err = client
        .get(server.url("/"))
        .header("x-evil", "a\r\nx-injected: 1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
    assert!(!err.may_have_been_processed());
    assert_eq!(server.accepted(), 0);
}

#[tokio::test]
async fn a_dropped_body_is_drained_and_the_connection_reused() {
    let (server, events, client) = server_and_recorded_client();
    let resp = send_get(&client, &server, "/bytes/30000").await;
    drop(resp);
    // The drain runs on a task; wait for its verdict through the events.
    settle(|| events.returned(), 1).await;
    assert_eq!(events.returned(), 1);
    let resp = send_get(&client, &server, "/").await;
    assert!(resp.connection_reused());
}

#[tokio::test]
async fn a_dropped_body_too_large_to_drain_is_closed() {
    let server = HttpServer::start_default().unwrap();
    let events = Events::default();
    let client = Client::builder()
        .observer(events.observer())
        .drain_max_bytes(1000)
        .build();
    let resp = send_get(&client, &server, "/bytes/100000").await;
    drop(resp);
    assert_eq!(events.closed(CloseReason::Discarded), 1);
    assert_eq!(client.stats().total.checked_out, 0);
    let resp = send_get(&client, &server, "/").await;
    assert!(!resp.connection_reused());
}

#[tokio::test]
async fn the_per_host_cap_queues_and_the_wait_deadline_is_kept() {
    let server = HttpServer::start_default().unwrap();
    let client = Client::builder()
        .max_conns_per_host(1)
        .pool_wait_timeout(Duration::from_millis(100))
        .response_header_timeout(Some(Duration::from_secs(5)))
        .build();
    // A body larger than one read: its connection stays checked out until
    // the body is read (a small body that arrives whole with its head
    // gives its connection back at once).
    let held = send_get(&client, &server, "/bytes/1000000").await;
    let err = client.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PoolWaitTimeout, "{err}");
    assert!(!err.may_have_been_processed());
    held.bytes().await.unwrap();
    send_get(&client, &server, "/").await;
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn a_body_that_arrived_with_its_head_frees_the_connection_before_it_is_read() {
    let server = HttpServer::start_default().unwrap();
    let client = Client::builder().max_conns_per_host(1).build();
    let held = send_get(&client, &server, "/bytes/10").await;
    assert_eq!(client.stats().total.checked_out, 0, "already returned");
    // The one connection serves the next request while `held` is unread.
    let next = send_get(&client, &server, "/bytes/3").await;
    assert!(next.connection_reused());
    assert_eq!(next.bytes().await.unwrap().len(), 3);
    let body = held.bytes().await.unwrap();
    assert_eq!(body.len(), 10);
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn a_trace_tells_the_whole_story() {
    let server = HttpServer::start_default().unwrap();
    let client = Client::builder().trace_requests(true).build();
    let resp = send_get(&client, &server, "/").await;
    resp.bytes().await.unwrap();
    // No `.trace(true)`: the client's `trace_requests` turns it on.
    let mut resp = send_get(&client, &server, "/").await;
    while resp.chunk().await.unwrap().is_some() {}
    let trace = resp.trace().unwrap();
    let steps: Vec<&TraceStep> = trace.steps().iter().map(|(_, s)| s).collect();
    assert!(matches!(steps[0], TraceStep::GetConn));
    assert!(matches!(steps[1], TraceStep::GotConn { reused: true, .. }));
    assert!(matches!(steps[2], TraceStep::WroteRequest { .. }));
    assert!(matches!(steps[3], TraceStep::FirstResponseByte));
    assert!(matches!(steps[4], TraceStep::GotHeaders { status: 200 }));
    assert!(matches!(steps[5], TraceStep::ConnReturned { .. }));
    let text = trace.to_string();
    assert!(text.contains("reused"), "{text}");
}

#[tokio::test]
async fn a_replayable_request_that_hits_the_race_is_retried_once_on_a_new_connection() {
    for mode in ["fin", "rst"] {
        let server = HttpServer::start_default().unwrap();
        let client = Client::builder().trace_requests(true).build();
        for (i, method) in ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"]
            .iter()
            .enumerate()
        {
            warm(&client, &server).await;
            let id = format!("{method}-{mode}");
            let resp = client
                .request_builder(
                    method.parse().unwrap(),
                    server.url(&format!("/vanish-once/{i}?mode={mode}")),
                )
                .header("x-request-id", id.as_str())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {mode}: {e}"));
            common::assert_retried_once_on_a_new_connection(resp, &server, method, &id).await;
        }
        assert_eq!(server.vanished(), 5);
        assert!(server.duplicates().is_empty());
    }
}

#[tokio::test]
async fn a_post_that_hits_the_race_is_not_sent_twice_and_says_so() {
    for (mode, kind) in [
        ("fin", ErrorKind::UnexpectedEof),
        ("rst", ErrorKind::ConnectionReset),
    ] {
        let server = HttpServer::start_default().unwrap();
        let client = Client::new();
        warm(&client, &server).await;
        let url = server.url(&format!("/vanish-once/p?mode={mode}"));
        common::a_post_that_hits_the_race_is_not_resent(&client, url, &server, kind, mode).await;
    }
}

#[tokio::test]
async fn an_idempotency_key_makes_a_post_replayable() {
    let (server, client) = server_and_client();
    warm(&client, &server).await;
    let resp = client
        .post(server.url("/vanish-once/k"))
        .header("idempotency-key", "k-1")
        .header("x-request-id", "k-1")
        .body("pay 10")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.processed("POST", "k-1"), 1);
}

#[tokio::test]
async fn the_replay_policy_is_configurable() {
    let server = HttpServer::start_default().unwrap();
    let client = Client::builder()
        .replay(connpool::http::ReplayPolicy::safe_methods_only())
        .build();
    warm(&client, &server).await;
    let err = client
        .put(server.url("/vanish-once/put"))
        .body("x")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_stale(), "{err}");
    let client = Client::builder()
        .replay(connpool::http::ReplayPolicy::never())
        .build();
    warm(&client, &server).await;
    let err = client
        .get(server.url("/vanish-once/get"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_stale(), "{err}");
    assert_eq!(err.attempts(), Some(1));
}

#[tokio::test]
async fn a_streamed_body_is_never_sent_twice() {
    let (server, client) = server_and_client();
    warm(&client, &server).await;
    let body =
        connpool::http::Body::from_stream(OneChunk(Some(bytes::Bytes::from_static(b"streamed"))));
    let err = client
        .put(server.url("/vanish-once/s"))
        .body(body)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_stale(), "{err}");
    assert_eq!(err.attempts(), Some(1));
    // A streamed body on a fresh connection goes out chunked.
    let body =
        connpool::http::Body::from_stream(OneChunk(Some(bytes::Bytes::from_static(b"streamed"))));
    let resp = client
        .post(server.url("/echo"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "streamed");
}

/// A one-chunk streamed body of unknown length.
struct OneChunk(Option<bytes::Bytes>);

impl http_body::Body for OneChunk {
    type Data = bytes::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[tokio::test]
async fn a_failure_on_a_fresh_connection_is_not_retried() {
    let (server, client) = server_and_client();
    // First request on a fresh connection: /close-mid-body fails after
    // response bytes; /never on a fresh connection with a short timeout.
    let client_short = Client::builder()
        .response_header_timeout(Some(Duration::from_millis(50)))
        .build();
    let err = client_short
        .get(server.url("/never"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResponseHeaderTimeout);
    assert_eq!(err.connection_reused(), Some(false));
    assert_eq!(err.attempts(), Some(1));
    let resp = send_get(&client, &server, "/close-mid-body").await;
    assert!(resp.bytes().await.is_err());
}

#[tokio::test]
async fn a_request_saying_connection_close_is_not_reused() {
    let (server, client) = server_and_client();
    let resp = client
        .get(server.url("/"))
        .header("connection", "close")
        .send()
        .await
        .unwrap();
    resp.bytes().await.unwrap();
    let resp = send_get(&client, &server, "/").await;
    assert!(!resp.connection_reused());
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn http_request_values_and_json() {
    let (server, client) = server_and_client();
    let request = http::Request::builder()
        .method("POST")
        .uri(server.url("/echo"))
        .header("content-type", "application/json")
        .body(r#"{"n": 7, "name": "seven"}"#)
        .unwrap();
    let resp = client.request(request).await.unwrap();
    #[derive(serde::Deserialize)]
    struct Answer {
        n: u32,
        name: String,
    }
    let answer: Answer = resp.json().await.unwrap();
    assert_eq!((answer.n, answer.name.as_str()), (7, "seven"));
    let resp = client
        .post(server.url("/echo"))
        .json(&[1, 2, 3])
        .send()
        .await
        .unwrap();
    let err = resp.json::<String>().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
}

#[tokio::test]
async fn connections_past_their_lifetime_are_not_reused() {
    let server = HttpServer::start_default().unwrap();
    let events = Events::default();
    let client = Client::builder()
        .observer(events.observer())
        .max_lifetime(Some(Duration::from_millis(60)))
        .max_lifetime_jitter(0.5)
        .build();
    warm(&client, &server).await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    let resp = send_get(&client, &server, "/").await;
    assert!(!resp.connection_reused());
    assert_eq!(events.evicted(EvictReason::MaxLifetime), 1);
}

#[tokio::test]
async fn a_connect_nobody_answers_hits_the_connect_timeout() {
    // A listener that never accepts, with its queue full: the kernel
    // drops further SYNs, so a connect neither succeeds nor fails.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    let client = Client::builder()
        .connect_timeout(Duration::from_millis(200))
        .build();
    let err = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectTimeout, "{err}");
    assert!(err.is_timeout() && err.is_connect());
    assert!(!err.may_have_been_processed());
}

#[tokio::test]
async fn a_write_into_a_connection_the_server_reset_is_a_broken_pipe_or_reset() {
    // The server refuses a body over 64 MiB after reading only the head,
    // and closes with the rest unread: its kernel answers our remaining
    // bytes with an RST, and our next writes fail.
    let (server, client) = server_and_client();
    let err = client
        .post(server.url("/echo"))
        .body(vec![b'x'; 80 << 20])
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "{err}"
    );
    assert!(err.is_stale());
    assert_processed_on_a_fresh_first_attempt(&err);
}

#[tokio::test]
async fn the_last_request_of_a_connection_keeps_its_body_when_it_gains_connection_close() {
    let server = HttpServer::start_default().unwrap();
    let client = Client::builder().max_requests_per_conn(Some(2)).build();
    for body in [
        "first",
        "second (the last: re-encoded with Connection: close)",
    ] {
        let resp = client
            .post(server.url("/echo"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap(), body);
    }
    warm(&client, &server).await;
    assert_eq!(
        server.accepted(),
        2,
        "the second request closed the first connection"
    );
}

#[tokio::test]
async fn a_dropped_body_whose_drain_fails_is_closed_never_returned() {
    let (server, events, client) = server_and_recorded_client();
    for path in ["/truncated-chunked", "/close-mid-body"] {
        let resp = send_get(&client, &server, path).await;
        drop(resp); // the drain task meets the truncation
    }
    // Wait for the drain tasks' verdicts through the events.
    settle(|| events.closed(CloseReason::Discarded), 2).await;
    assert_eq!(events.closed(CloseReason::Discarded), 2);
    assert_eq!(
        events.returned(),
        0,
        "a dirty connection went back to the pool"
    );
    assert_eq!(client.stats().total.idle, 0);
}

/// Accepts one connection, reads one request head, answers `200` with an
/// empty body, and returns the head it read.
fn capture_one_head() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        String::from_utf8(head).unwrap()
    });
    (url, handle)
}

#[tokio::test]
async fn the_configured_user_agent_is_sent_unless_the_request_has_one() {
    let client = Client::builder()
        .user_agent(Some(http::HeaderValue::from_static("connpool-test/1")))
        .build();
    let (url, server) = capture_one_head();
    client.get(url).send().await.unwrap();
    let head = server.join().unwrap();
    assert!(head.contains("user-agent: connpool-test/1\r\n"), "{head}");

    let (url, server) = capture_one_head();
    client
        .get(url)
        .header("user-agent", "mine")
        .send()
        .await
        .unwrap();
    let head = server.join().unwrap();
    assert!(head.contains("user-agent: mine\r\n"), "{head}");
    assert!(!head.contains("connpool-test"), "{head}");

    let (url, server) = capture_one_head();
    Client::new().get(url).send().await.unwrap();
    let head = server.join().unwrap();
    assert!(!head.contains("user-agent"), "none by default: {head}");
}
