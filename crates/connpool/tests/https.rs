//! The HTTP client over TLS against real servers on 127.0.0.1 (testkit's
//! `HttpServer` in TLS mode), with certificates made at test time: the
//! verification failures, client certificates, SNI and ALPN, the
//! stale-connection rules through TLS, and one test per field of the pool
//! key that keeps connections made with one setting from serving another.

use std::time::Duration;

use connpool::http::{Client, HostKey, TraceStep};
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

// ---- HTTPS works, verification on -------------------------------------

#[tokio::test]
async fn a_valid_chain_serves_requests_and_the_connection_is_reused() {
    let (ca, cert) = ca_and_cert();
    let server = start(HttpServer::builder(), ServerTls::from_cert(&cert));
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
    let client = Client::builder().tls(trusting(&ca)).build();
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
    let (ca, cert) = ca_and_cert();
    let server = start(
        HttpServer::builder(),
        ServerTls::from_cert(&cert).close(tls_close),
    );
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
    let (ca, cert) = ca_and_cert();
    let server = start(HttpServer::builder(), ServerTls::from_cert(&cert));
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    get_ok(&client, &localhost(&server, "/"))
        .await
        .bytes()
        .await
        .unwrap();
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
        let (ca, cert) = ca_and_cert();
        let server = start(
            HttpServer::builder(),
            ServerTls::from_cert(&cert).close(tls_close),
        );
        let client = Client::builder()
            .tls(trusting(&ca))
            .trace_requests(true)
            .build();
        get_ok(&client, &localhost(&server, "/"))
            .await
            .bytes()
            .await
            .unwrap();
        let id = format!("{tls_close:?}-{mode}");
        let resp = client
            .get(localhost(&server, &format!("/vanish-once/g?mode={mode}")))
            .header("x-request-id", id.as_str())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(resp.status(), 200);
        assert!(!resp.connection_reused(), "{id}: the retry used a new one");
        let trace = resp.trace().unwrap();
        assert!(
            trace.contains(|s| matches!(s, TraceStep::Retry { .. })),
            "{id}: {trace}"
        );
        resp.bytes().await.unwrap();
        assert_eq!(server.vanished(), 1, "{id}");
        assert_eq!(server.processed("GET", &id), 1, "{id}");
    }
}

#[tokio::test]
async fn a_post_that_hits_the_race_over_tls_is_not_sent_twice_and_says_so() {
    for (tls_close, mode, kind) in [
        (TlsClose::CloseNotify, "fin", ErrorKind::UnexpectedEof),
        (TlsClose::BareFin, "fin", ErrorKind::UnexpectedEof),
        (TlsClose::CloseNotify, "rst", ErrorKind::ConnectionReset),
    ] {
        let (ca, cert) = ca_and_cert();
        let server = start(
            HttpServer::builder(),
            ServerTls::from_cert(&cert).close(tls_close),
        );
        let client = Client::builder().tls(trusting(&ca)).build();
        get_ok(&client, &localhost(&server, "/"))
            .await
            .bytes()
            .await
            .unwrap();
        let err = client
            .post(localhost(&server, &format!("/vanish-once/p?mode={mode}")))
            .header("x-request-id", "order-1")
            .body("pay 10")
            .send()
            .await
            .unwrap_err();
        let what = format!("{tls_close:?} {mode}");
        assert_eq!(err.kind(), kind, "{what}: {err}");
        assert!(err.is_stale(), "{what}");
        assert!(err.may_have_been_processed(), "{what}: bytes were written");
        assert_eq!(err.connection_reused(), Some(true), "{what}");
        assert_eq!(err.attempts(), Some(1), "{what}: not retried");
        assert_eq!(server.vanished(), 1, "{what}");
        assert_eq!(server.processed("POST", "order-1"), 0, "{what}");
        assert_eq!(server.accepted(), 1, "{what}");
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
    let (ca, cert) = ca_and_cert();
    let server = start(HttpServer::builder(), ServerTls::from_cert(&cert));
    let client = Client::builder().tls(trusting(&ca)).build();
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
    let (ca, cert) = ca_and_cert();
    let server = start(HttpServer::builder(), ServerTls::from_cert(&cert));
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
    let (ca, cert) = ca_and_cert();
    let server = start(HttpServer::builder(), ServerTls::from_cert(&cert));
    let events = Events::default();
    let client = client_trusting(&ca, &events);
    for _ in 0..2 {
        get_ok(&client, &localhost(&server, "/"))
            .await
            .bytes()
            .await
            .unwrap();
        get_ok(&client, &server.url("/"))
            .await
            .bytes()
            .await
            .unwrap();
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
        let (ca, cert) = ca_and_cert();
        let server = start(
            HttpServer::builder(),
            ServerTls::from_cert(&cert).close(tls_close),
        );
        let client = Client::builder().tls(trusting(&ca)).build();
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
