//! The HTTP client over TLS against real servers on 127.0.0.1 (testkit's
//! `HttpServer` in TLS mode), with certificates made at test time: the
//! verification failures, client certificates, SNI and ALPN, the
//! stale-connection rules through TLS, and one test per field of the pool
//! key that keeps connections made with one setting from serving another.

use std::time::Duration;

use connpool::http::{Client, HostKey};
use connpool::tls::TlsConfig;
use connpool::{ErrorKind, EvictReason};
use connpool_testkit::CloseMode;
use connpool_testkit::http::{HttpServer, HttpServerBuilder};
use connpool_testkit::tls::{IssuedCert, ServerTls, TestCa, TlsClose, Validity};

mod common;

/// The pool events a client's observer saw.
type Events = common::Recorder<HostKey>;

/// A CA and a valid server certificate for `localhost` and `127.0.0.1`.
fn ca_and_cert() -> (TestCa, IssuedCert) {
    let ca = TestCa::new("connpool test CA");
    let cert = ca.server_cert(&["localhost", "127.0.0.1"]);
    (ca, cert)
}

/// TLS settings that trust `ca` only.
fn trusting(ca: &TestCa) -> TlsConfig {
    TlsConfig::builder()
        .root_store(ca.root_store())
        .build()
        .unwrap()
}

/// A client whose `https` requests trust `ca`, recording its events.
fn client_trusting(ca: &TestCa, events: &Events) -> Client {
    Client::builder()
        .tls(trusting(ca))
        .observer(events.observer())
        .build()
}

/// A TLS server with `builder`'s settings presenting `tls`.
fn start(builder: HttpServerBuilder, tls: ServerTls) -> HttpServer {
    builder.start_tls(tls).unwrap()
}

/// The server's URL for `path` with host `localhost` (SNI is sent).
fn localhost(server: &HttpServer, path: &str) -> String {
    format!("https://localhost:{}{path}", server.addr().port())
}

async fn get_ok(client: &Client, url: &str) -> connpool::http::Response {
    let resp = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200);
    resp
}

/// [`get_ok`], its body read to the end.
async fn get_ok_read(client: &Client, url: &str) {
    get_ok(client, url).await.bytes().await.unwrap();
}

// ---- HTTPS works, verification on -------------------------------------

#[tokio::test]
async fn a_valid_chain_serves_requests_and_the_connection_is_reused() {
    let (server, ca) = tls_server(HttpServer::builder());
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    for i in 0..3 {
        let resp = get_ok(&client, &localhost(&server, "/")).await;
        assert_eq!(resp.connection_reused(), i > 0);
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    let body = client
        .post(localhost(&server, "/echo"))
        .body("hello over tls")
        .send()
        .await
        .unwrap();
    assert!(body.connection_reused());
    body.bytes().await.unwrap();
    assert_eq!(server.accepted(), 1);
    let sessions = server.tls_sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].server_name.as_deref(), Some("localhost"), "SNI");
    assert_eq!(sessions[0].alpn.as_deref(), Some(&b"http/1.1"[..]), "ALPN");
    assert!(sessions[0].client_cert.is_none());
    let stats = client.stats();
    assert_eq!(stats.counters.created, 1);
    let key = format!("{:?}", stats.keys.keys().next().unwrap());
    assert!(key.starts_with("https://localhost:"), "{key}");
}

#[tokio::test]
async fn verification_is_on_by_default() {
    // `Client::new()` trusts Mozilla's roots, not the test CA.
    let (_ca, cert) = ca_and_cert();
    let server = start(HttpServer::builder(), ServerTls::from_cert(&cert));
    let err = Client::new()
        .get(localhost(&server, "/"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TlsCertificate, "{err}");
    assert!(err.is_connect());
    assert!(!err.may_have_been_processed());
    assert_eq!(server.requests(), 0);
}

/// A request to `server` as `localhost` that must fail verification.
async fn expect_certificate_error(server: &HttpServer, ca: &TestCa, what: &str) {
    let client = Client::builder().tls(trusting(ca)).build();
    let err = client.get(localhost(server, "/")).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TlsCertificate, "{what}: {err}");
    assert_eq!(err.kind().as_str(), "tls_certificate");
    assert!(err.is_connect(), "{what}");
    assert!(!err.may_have_been_processed(), "{what}");
    assert_eq!(
        err.attempts(),
        Some(0),
        "{what}: no attempt had a connection"
    );
    assert!(server.tls_sessions().is_empty(), "{what}");
    assert_eq!(server.requests(), 0, "{what}");
}

#[tokio::test]
async fn a_wrong_host_name_an_expired_certificate_and_an_unknown_ca_are_refused() {
    let ca = TestCa::new("connpool test CA");
    let wrong_name = ca.server_cert(&["other.example"]);
    let server = start(HttpServer::builder(), ServerTls::from_cert(&wrong_name));
    expect_certificate_error(&server, &ca, "wrong name").await;

    let expired = ca.server_cert_with(&["localhost"], Validity::expired());
    let server = start(HttpServer::builder(), ServerTls::from_cert(&expired));
    expect_certificate_error(&server, &ca, "expired").await;

    let unknown = TestCa::new("someone else").server_cert(&["localhost"]);
    let server = start(HttpServer::builder(), ServerTls::from_cert(&unknown));
    expect_certificate_error(&server, &ca, "unknown CA").await;
}

#[tokio::test]
async fn danger_accept_invalid_certs_accepts_an_unknown_ca() {
    let unknown = TestCa::new("someone else").server_cert(&["other.example"]);
    let server = start(HttpServer::builder(), ServerTls::from_cert(&unknown));
    let tls = TlsConfig::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    assert!(!tls.verifies_certificates());
    let client = Client::builder().tls(tls).build();
    let resp = get_ok(&client, &localhost(&server, "/")).await;
    assert_eq!(resp.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn a_required_client_certificate_is_presented_when_configured() {
    let (ca, cert) = ca_and_cert();
    let server = start(
        HttpServer::builder(),
        ServerTls::from_cert(&cert).require_client_cert(ca.cert_der()),
    );
    // Without one: the server refuses the handshake. Under TLS 1.3 the
    // refusal comes at the first read, after the request was written; it
    // was not processed all the same.
    let client = tls_client(&ca).build();
    let err = client
        .post(localhost(&server, "/echo"))
        .body("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TlsHandshake, "{err}");
    assert!(err.is_connect());
    assert!(!err.may_have_been_processed(), "{err}");
    assert_eq!(server.requests(), 0);

    // With one: accepted, and the server saw it.
    let client_cert = ca.client_cert("client-1");
    let tls = TlsConfig::builder()
        .root_store(ca.root_store())
        .client_cert(client_cert.chain(), client_cert.key_der())
        .build()
        .unwrap();
    let client = Client::builder().tls(tls).build();
    let resp = get_ok(&client, &localhost(&server, "/")).await;
    resp.bytes().await.unwrap();
    let sessions = server.tls_sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].client_cert, Some(client_cert.cert_der()));
}

// ---- Stale connections through TLS ------------------------------------

/// `rounds` times: a request, then the server closes the idle connection
/// with `mode`; the next request must get a new connection, never an
/// error, and the pool must have evicted every closed one for `reason`.
async fn idle_closes_are_never_seen(tls_close: TlsClose, mode: CloseMode, reason: EvictReason) {
    let (server, ca) = tls_server_closing(HttpServer::builder(), tls_close);
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    let rounds = 10;
    for round in 0..rounds {
        let resp = get_ok(&client, &localhost(&server, "/")).await;
        assert!(!resp.connection_reused(), "round {round}");
        assert_eq!(resp.text().await.unwrap(), "ok");
        assert_eq!(server.close_idle(mode).await, 1, "round {round}");
    }
    let resp = get_ok(&client, &localhost(&server, "/")).await;
    assert!(!resp.connection_reused());
    assert_eq!(
        events.evicted(reason),
        rounds,
        "{tls_close:?} {mode:?}: {:?}",
        events.kinds()
    );
    assert_eq!(server.accepted(), rounds as u64 + 1);
}

#[tokio::test]
async fn an_idle_close_with_close_notify_is_found_at_checkout() {
    idle_closes_are_never_seen(
        TlsClose::CloseNotify,
        CloseMode::Fin,
        EvictReason::ServerClosed,
    )
    .await;
}

#[tokio::test]
async fn an_idle_close_with_a_bare_fin_is_found_at_checkout() {
    idle_closes_are_never_seen(TlsClose::BareFin, CloseMode::Fin, EvictReason::ServerClosed).await;
}

#[tokio::test]
async fn an_idle_reset_is_found_at_checkout() {
    idle_closes_are_never_seen(
        TlsClose::CloseNotify,
        CloseMode::Rst,
        EvictReason::ServerReset,
    )
    .await;
}

#[tokio::test]
async fn session_tickets_do_not_make_an_idle_connection_stale() {
    // TLS 1.3 servers send session tickets after the handshake; they may
    // wait unread on an idle connection. The check reads them through TLS
    // and keeps the connection.
    let (server, ca) = tls_server(HttpServer::builder());
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    get_ok_read(&client, &localhost(&server, "/")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let resp = get_ok(&client, &localhost(&server, "/")).await;
    assert!(resp.connection_reused());
    assert_eq!(
        server.tls_sessions()[0]
            .version
            .map(|v| format!("{v:?}"))
            .as_deref(),
        Some("TLSv1_3")
    );
    assert_eq!(
        events.count(|k| matches!(k, connpool::EventKind::Evicted { .. })),
        0
    );
}

#[tokio::test]
async fn a_replayable_request_that_hits_the_race_over_tls_is_retried_once() {
    for (tls_close, mode) in [
        (TlsClose::CloseNotify, "fin"),
        (TlsClose::BareFin, "fin"),
        (TlsClose::CloseNotify, "rst"),
    ] {
        let (server, ca) = tls_server_closing(HttpServer::builder(), tls_close);
        let client = Client::builder()
            .tls(trusting(&ca))
            .trace_requests(true)
            .build();
        get_ok_read(&client, &localhost(&server, "/")).await;
        let id = format!("{tls_close:?}-{mode}");
        let resp = client
            .get(localhost(&server, &format!("/vanish-once/g?mode={mode}")))
            .header("x-request-id", id.as_str())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        common::assert_retried_once_on_a_new_connection(resp, &server, "GET", &id).await;
        assert_eq!(server.vanished(), 1, "{id}");
    }
}

#[tokio::test]
async fn a_post_that_hits_the_race_over_tls_is_not_sent_twice_and_says_so() {
    for (tls_close, mode, kind) in [
        (TlsClose::CloseNotify, "fin", ErrorKind::UnexpectedEof),
        (TlsClose::BareFin, "fin", ErrorKind::UnexpectedEof),
        (TlsClose::CloseNotify, "rst", ErrorKind::ConnectionReset),
    ] {
        let (server, ca) = tls_server_closing(HttpServer::builder(), tls_close);
        let client = tls_client(&ca).build();
        get_ok_read(&client, &localhost(&server, "/")).await;
        let url = localhost(&server, &format!("/vanish-once/p?mode={mode}"));
        let what = format!("{tls_close:?} {mode}");
        common::a_post_that_hits_the_race_is_not_resent(&client, url, &server, kind, &what).await;
    }
}

// ---- The pool key: one test per field ---------------------------------
//
// Each test fails if the key loses the field: the second request would be
// handed the first one's connection.

#[tokio::test]
async fn key_scheme_plain_and_tls_never_share_a_connection() {
    // http then https to one plain server: if the keys were equal, the
    // https request would be written in clear on the pooled plain
    // connection, and succeed.
    let plain = HttpServer::start_default().unwrap();
    let client = Client::new();
    let http_url = plain.url("/");
    let https_url = http_url.replacen("http://", "https://", 1);
    let http_key = HostKey::from_uri(&http_url.parse().unwrap()).unwrap();
    let https_key = HostKey::from_uri(&https_url.parse().unwrap()).unwrap();
    assert_ne!(http_key, https_key);
    get_ok(&client, &http_url).await.bytes().await.unwrap();
    let err = client.get(&https_url).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TlsHandshake, "{err}");
    assert_eq!(plain.accepted(), 2, "a new connection for https");
    assert_eq!(plain.requests(), 1);

    // https then http to one TLS server: the plain request must not ride
    // the TLS connection either.
    let (server, ca) = tls_server(HttpServer::builder());
    let client = tls_client(&ca).build();
    let https_url = server.url("/");
    get_ok(&client, &https_url).await.bytes().await.unwrap();
    let http_url = https_url.replacen("https://", "http://", 1);
    let result = client.get(&http_url).send().await;
    assert!(result.is_err(), "plain HTTP to a TLS server must fail");
    // The server books a connection once its handshake is done: the plain
    // one shows as a failed handshake.
    assert_eq!(
        wait_failures(&server, 1).await,
        1,
        "a new connection for http"
    );
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn key_tls_identity_another_root_store_never_reuses_a_connection() {
    // The first request trusts the server's CA; the second trusts another
    // CA only and must fail verification on a new connection, not reuse
    // the first one's (CVE-2021-22924).
    let (server, ca) = tls_server(HttpServer::builder());
    let client = Client::new();
    let url = localhost(&server, "/");
    get_ok_with(&client, &url, trusting(&ca)).await;
    let other = trusting(&TestCa::new("another CA"));
    let err = client.get(&url).tls(other).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TlsCertificate, "{err}");
    assert_eq!(wait_failures(&server, 1).await, 1, "a new connection");
    assert_eq!(server.requests(), 1);
}

/// Waits (within 5 s) until the server saw `count` failed handshakes.
async fn wait_failures(server: &HttpServer, count: usize) -> usize {
    tokio::time::timeout(Duration::from_secs(5), server.wait_tls_failures(count))
        .await
        .expect("the server saw the failed handshakes")
        .len()
}

async fn get_ok_with(client: &Client, url: &str, tls: TlsConfig) {
    let resp = client.get(url).tls(tls).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
}

#[tokio::test]
async fn key_tls_identity_a_client_certificate_gets_its_own_handshake() {
    // The server asks for a client certificate but does not require one.
    // A request configured with a certificate must present it in a fresh
    // handshake, not ride a connection made without it (CVE-2022-22576's
    // class), and the reverse.
    let (ca, cert) = ca_and_cert();
    let server = start(
        HttpServer::builder(),
        ServerTls::from_cert(&cert).request_client_cert(ca.cert_der()),
    );
    let client_cert = ca.client_cert("client-1");
    let with_cert = TlsConfig::builder()
        .root_store(ca.root_store())
        .client_cert(client_cert.chain(), client_cert.key_der())
        .build()
        .unwrap();
    let without = trusting(&ca);
    let client = Client::new();
    let url = localhost(&server, "/");
    get_ok_with(&client, &url, without.clone()).await;
    get_ok_with(&client, &url, with_cert.clone()).await;
    get_ok_with(&client, &url, without).await;
    get_ok_with(&client, &url, with_cert).await;
    let sessions = server.tls_sessions();
    assert_eq!(sessions.len(), 2, "one handshake per configuration");
    assert_eq!(sessions[0].client_cert, None);
    assert_eq!(sessions[1].client_cert, Some(client_cert.cert_der()));
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn key_tls_identity_verification_off_never_serves_a_verifying_request() {
    // A connection made without verification, to a server whose
    // certificate would not verify, must not serve a request that
    // verifies (CVE-2022-27782's class).
    let unknown = TestCa::new("someone else").server_cert(&["localhost"]);
    let server = start(HttpServer::builder(), ServerTls::from_cert(&unknown));
    let danger = TlsConfig::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let client = Client::new();
    let url = localhost(&server, "/");
    get_ok_with(&client, &url, danger).await;
    let err = client.get(&url).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TlsCertificate, "{err}");
    assert_eq!(wait_failures(&server, 1).await, 1, "a new connection");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn key_host_each_sni_name_gets_its_own_connection() {
    // One server, reached as `localhost` and as `127.0.0.1`: two
    // handshakes, one with SNI `localhost`, one without SNI (an IP).
    let (server, ca) = tls_server(HttpServer::builder());
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    for _ in 0..2 {
        get_ok_read(&client, &localhost(&server, "/")).await;
        get_ok_read(&client, &server.url("/")).await;
    }
    let mut names: Vec<_> = server
        .tls_sessions()
        .into_iter()
        .map(|s| s.server_name)
        .collect();
    names.sort();
    assert_eq!(names, vec![None, Some("localhost".to_owned())]);
    assert_eq!(server.accepted(), 2);
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn a_close_delimited_body_needs_close_notify_to_end() {
    // With `close_notify` the close is the body's end; a bare FIN could be
    // a truncation and is an error.
    for (tls_close, complete) in [(TlsClose::CloseNotify, true), (TlsClose::BareFin, false)] {
        let (server, ca) = tls_server_closing(HttpServer::builder(), tls_close);
        let client = tls_client(&ca).build();
        let resp = get_ok(&client, &localhost(&server, "/close-delimited/5000")).await;
        let body = resp.bytes().await;
        match body {
            Ok(body) => {
                assert!(complete, "{tls_close:?}: a bare FIN ended the body");
                assert_eq!(body.len(), 5000);
            }
            Err(err) => {
                assert!(!complete, "{tls_close:?}: {err}");
                assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
            }
        }
    }
}

// ---- The HTTP fault modes over TLS ------------------------------------
//
// The faults of tests/http.rs, through TLS: the same server routes and
// settings, the server's FIN closes ending the session as `TlsClose` says.

/// Every way the server can end a connection: `close_notify` then FIN, a
/// bare FIN, an RST.
const CLOSES: [(TlsClose, CloseMode); 3] = [
    (TlsClose::CloseNotify, CloseMode::Fin),
    (TlsClose::BareFin, CloseMode::Fin),
    (TlsClose::CloseNotify, CloseMode::Rst),
];

/// A TLS server with `builder`'s faults, ending its sessions as `close`
/// says, with a certificate for `localhost` and `127.0.0.1` from the
/// returned CA.
fn tls_server_closing(builder: HttpServerBuilder, close: TlsClose) -> (HttpServer, TestCa) {
    let (ca, cert) = ca_and_cert();
    let server = start(builder, ServerTls::from_cert(&cert).close(close));
    (server, ca)
}

/// [`tls_server_closing`] with `close_notify` closes.
fn tls_server(builder: HttpServerBuilder) -> (HttpServer, TestCa) {
    tls_server_closing(builder, TlsClose::CloseNotify)
}

/// A client builder whose `https` requests trust `ca` only.
fn tls_client(ca: &TestCa) -> connpool::http::ClientBuilder {
    Client::builder().tls(trusting(ca))
}

/// Waits (within 5 s) until `count` matches, polling: the drain of a
/// dropped body runs on a task of its own.
async fn wait_until(what: &str, count: impl Fn() -> usize, expected: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while count() != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} instead of {expected}",
            count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn close_after_n_without_connection_close_never_surfaces_over_tls() {
    for (tls_close, mode) in CLOSES {
        let (server, ca) =
            tls_server_closing(HttpServer::builder().close_after(3, mode), tls_close);
        let client = tls_client(&ca).build();
        for i in 0..30 {
            let resp = client
                .get(server.url("/"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{tls_close:?} {mode:?}, request {i}: {e}"));
            assert!(
                resp.connection_reused() == (i % 3 != 0),
                "{tls_close:?} {mode:?}, request {i}: three per connection"
            );
            assert_eq!(resp.text().await.unwrap(), "ok");
        }
        assert_eq!(server.requests(), 30, "{tls_close:?} {mode:?}");
        assert_eq!(server.accepted(), 10, "{tls_close:?} {mode:?}");
        assert!(server.duplicates().is_empty());
    }
}

#[tokio::test]
async fn max_requests_with_connection_close_is_honoured_over_tls() {
    let (server, ca) = tls_server(HttpServer::builder().max_requests(2));
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    for i in 0..6 {
        let resp = get_ok(&client, &server.url("/")).await;
        assert_eq!(resp.connection_reused(), i % 2 == 1, "request {i}");
        resp.bytes().await.unwrap();
    }
    assert_eq!(server.accepted(), 3);
    assert_eq!(events.closed(connpool::CloseReason::Discarded), 3);
    assert_eq!(
        events.count(|k| matches!(k, connpool::EventKind::Evicted { .. })),
        0,
        "closed on `Connection: close`, never pooled then found stale"
    );
}

#[tokio::test]
async fn keep_alive_hints_shorten_the_idle_deadline_over_tls() {
    let (server, ca) = tls_server(HttpServer::builder());
    let client = tls_client(&ca).build();
    common::assert_keep_alive_hint_deadlines(&client, &server).await;
    let resp = get_ok(&client, &server.url("/")).await;
    assert!(resp.connection_reused());
    resp.bytes().await.unwrap();
    // max=0: not reused.
    get_ok_read(&client, &server.url("/keep-alive-hint?timeout=30&max=0")).await;
    let resp = get_ok(&client, &server.url("/")).await;
    assert!(!resp.connection_reused());
    assert_eq!(server.accepted(), 3);
}

#[tokio::test]
async fn the_learned_idle_timeout_is_dated_by_the_tcp_socket_under_tls() {
    // The checkout finds the close (`close_notify` read through rustls, or
    // the bare FIN seen by the peek) and dates the FIN with `TCP_INFO` on
    // the TCP socket under the session.
    for tls_close in [TlsClose::CloseNotify, TlsClose::BareFin] {
        let (server, ca) = tls_server_closing(
            HttpServer::builder().idle_close(Duration::from_millis(300), CloseMode::Fin),
            tls_close,
        );
        let mut server_events = server.events();
        let events = Events::default();
        let client = client_trusting(&ca, &events);
        common::warm(&client, &server).await;
        server_events.next_closed().await.unwrap();
        // Dated by the FIN, not by when the checkout found it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let resp = get_ok(&client, &server.url("/")).await;
        assert!(!resp.connection_reused(), "{tls_close:?}");
        resp.bytes().await.unwrap();
        assert_eq!(
            events.evicted(EvictReason::ServerClosed),
            1,
            "{tls_close:?}: {:?}",
            events.kinds()
        );
        let learned = client
            .learned_idle_timeout(server.url("/"))
            .unwrap_or_else(|| panic!("{tls_close:?}: learned from the FIN"));
        assert!(
            learned >= Duration::from_millis(250) && learned <= Duration::from_millis(400),
            "{tls_close:?}: learned {learned:?} for a 300 ms server"
        );
    }
}

#[tokio::test]
async fn an_unsolicited_408_makes_the_idle_connection_stale_over_tls() {
    // The `408` arrives as TLS application data: read through rustls at
    // checkout, it is data nobody asked for, not a session ticket.
    let (server, ca) = tls_server(
        HttpServer::builder()
            .idle_close(Duration::from_millis(100), CloseMode::Fin)
            .idle_408(true),
    );
    let mut server_events = server.events();
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    common::warm(&client, &server).await;
    server_events.next_closed().await.unwrap();
    let resp = get_ok(&client, &server.url("/")).await;
    assert!(
        !resp.connection_reused(),
        "the 408 is not taken for the answer"
    );
    assert_eq!(
        events.evicted(EvictReason::UnexpectedData),
        1,
        "{:?}",
        events.kinds()
    );
}

#[tokio::test]
async fn a_body_closed_midway_over_tls_is_an_incomplete_response() {
    // With or without `close_notify`, a body shorter than its framing is
    // incomplete, and its connection is not reused.
    for tls_close in [TlsClose::CloseNotify, TlsClose::BareFin] {
        let (server, ca) = tls_server_closing(HttpServer::builder(), tls_close);
        let events = Events::default();
        let client = client_trusting(&ca, &events);
        for path in ["/close-mid-body", "/truncated-chunked"] {
            let what = format!("{tls_close:?} {path}");
            let resp = get_ok(&client, &server.url(path)).await;
            let err = resp.bytes().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::IncompleteResponse, "{what}: {err}");
            assert!(err.may_have_been_processed(), "{what}");
            assert_eq!(
                (err.attempts(), err.connection_reused()),
                (Some(1), Some(false)),
                "{what}"
            );
        }
        assert_eq!(events.returned(), 0, "{tls_close:?}: a broken one pooled");
        let resp = get_ok(&client, &server.url("/")).await;
        assert!(!resp.connection_reused(), "{tls_close:?}");
        assert_eq!(server.accepted(), 3, "{tls_close:?}");
    }
}

/// A one-shot TLS server presenting `cert`: reads a request head, writes
/// `partial` (the start of a response head), then ends the session with
/// `close_notify` or not, as `tls_close` says. Returns its URL.
async fn cut_head_server(cert: &IssuedCert, tls_close: TlsClose, partial: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = connpool::tls::rustls::ServerConfig::builder_with_provider(
        connpool_testkit::tls::crypto_provider(),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(cert.chain(), cert.key_der())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        tls.write_all(partial).await.unwrap();
        tls.flush().await.unwrap();
        if tls_close == TlsClose::CloseNotify {
            tls.shutdown().await.unwrap();
        }
        // Dropped: the FIN, after `close_notify` or bare.
    });
    url
}

#[tokio::test]
async fn a_head_cut_short_over_tls_is_an_incomplete_response() {
    // Before any response byte the close is the stale-connection race's
    // `unexpected_eof`; once the head has begun it is a truncation, with
    // or without `close_notify`, as over plain TCP.
    let (ca, cert) = ca_and_cert();
    for tls_close in [TlsClose::CloseNotify, TlsClose::BareFin] {
        for (partial, kind) in [
            (&b""[..], ErrorKind::UnexpectedEof),
            (
                &b"HTTP/1.1 200 OK\r\nContent-Le"[..],
                ErrorKind::IncompleteResponse,
            ),
        ] {
            let url = cut_head_server(&cert, tls_close, partial).await;
            let client = tls_client(&ca).build();
            let err = client.get(&url).send().await.unwrap_err();
            let what = format!("{tls_close:?} after {} bytes", partial.len());
            assert_eq!(err.kind(), kind, "{what}: {err}");
            assert!(err.may_have_been_processed(), "{what}");
            assert_eq!(
                err.attempts(),
                Some(1),
                "{what}: a new connection, no retry"
            );
        }
    }
}

#[tokio::test]
async fn slow_headers_hit_the_response_header_timeout_over_tls() {
    let (server, ca) = tls_server(HttpServer::builder());
    let client = tls_client(&ca)
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
    assert_eq!(client.stats().total.idle, 0);
}

#[tokio::test]
async fn malformed_responses_over_tls_get_clear_errors() {
    let (server, ca) = tls_server(HttpServer::builder());
    let client = tls_client(&ca).build();
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
        assert_eq!(err.attempts(), Some(1), "{path}");
    }
    assert_eq!(client.stats().total.idle, 0, "a broken connection pooled");
    assert_eq!(server.accepted(), 5, "one connection per broken response");
    let client = tls_client(&ca).max_response_headers(5000).build();
    let err = client
        .get(server.url("/oversize-headers?bytes=100000"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HeadersTooLarge, "{err}");
}

#[tokio::test]
async fn a_dropped_body_is_drained_through_tls_and_the_connection_reused() {
    let (server, ca) = tls_server(HttpServer::builder());
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    // Larger than a TLS record (16 KiB), within the drain's limit (64 KiB):
    // the drain reads several records through rustls.
    let resp = get_ok(&client, &server.url("/bytes/30000")).await;
    drop(resp);
    wait_until("returned", || events.returned(), 1).await;
    let resp = get_ok(&client, &server.url("/")).await;
    assert!(resp.connection_reused());
    assert_eq!(resp.text().await.unwrap(), "ok");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn a_dropped_body_whose_drain_fails_over_tls_is_closed_never_returned() {
    let (server, ca) = tls_server(HttpServer::builder());
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    for path in ["/truncated-chunked", "/close-mid-body"] {
        drop(get_ok(&client, &server.url(path)).await);
    }
    let discarded = || events.closed(connpool::CloseReason::Discarded);
    wait_until("discarded", discarded, 2).await;
    assert_eq!(events.returned(), 0, "a dirty connection went back");
    assert_eq!(client.stats().total.idle, 0);
}

#[tokio::test]
async fn the_per_host_cap_queues_and_the_wait_deadline_is_kept_over_tls() {
    let (server, ca) = tls_server(HttpServer::builder());
    let client = tls_client(&ca)
        .max_conns_per_host(1)
        .pool_wait_timeout(Duration::from_millis(100))
        .response_header_timeout(Some(Duration::from_secs(5)))
        .build();
    // Far larger than what arrives with the head: the connection stays
    // checked out until the body is read.
    let held = get_ok(&client, &server.url("/bytes/1000000")).await;
    let err = client.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PoolWaitTimeout, "{err}");
    assert!(!err.may_have_been_processed());
    assert_eq!(held.bytes().await.unwrap().len(), 1_000_000);
    let resp = get_ok(&client, &server.url("/")).await;
    assert!(resp.connection_reused());
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.tls_sessions().len(), 1);
}

/// A TLS server presenting `cert` that answers every request with a
/// `total`-byte `200` followed, in the same write (one TLS record), by
/// `stray` bytes nobody asked for, then keeps the connection open.
async fn stray_after_response_server(
    cert: &IssuedCert,
    total: usize,
    stray: &'static [u8],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = connpool::tls::rustls::ServerConfig::builder_with_provider(
        connpool_testkit::tls::crypto_provider(),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(cert.chain(), cert.key_der())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let mut head = String::new();
    for _ in 0..2 {
        head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            total - head.len()
        );
    }
    let mut message = head.clone().into_bytes();
    message.resize(total, b'x');
    message.extend_from_slice(stray);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let message = message.clone();
            tokio::spawn(async move {
                let mut tls = acceptor.accept(tcp).await.unwrap();
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if tls.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                tls.write_all(&message).await.unwrap();
                tls.flush().await.unwrap();
                let mut rest = [0u8; 1024];
                while matches!(tls.read(&mut rest).await, Ok(n) if n > 0) {}
            });
        }
    });
    url
}

#[tokio::test]
async fn bytes_past_the_response_held_inside_rustls_never_reach_the_next_request() {
    // The stray bytes share a TLS record with the response, and the
    // response fills the client's 8 KiB read buffer exactly: rustls has
    // taken them off the socket (the checkout's peek would see nothing)
    // and holds them decrypted. They are bytes past the end of the
    // response, as if in the read buffer: the connection is closed, never
    // returned. (Over plain TCP they would still be on the socket, found
    // by the checkout's peek.)
    let (ca, cert) = ca_and_cert();
    let stray = b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n";
    let url = stray_after_response_server(&cert, 8192, stray).await;
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    let body = get_ok(&client, &url).await.bytes().await.unwrap();
    assert!(body.iter().all(|&b| b == b'x'));
    assert_eq!(events.returned(), 0, "a dirty connection went back");
    assert_eq!(events.closed(connpool::CloseReason::Discarded), 1);
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the stray bytes taken for the answer");
    assert!(!resp.connection_reused());
}
