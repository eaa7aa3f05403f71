//! Tests of the HTTP fault server's TLS mode and of the test certificates,
//! over real sockets on 127.0.0.1, with a plain blocking rustls client
//! (`ClientConnection` + `StreamOwned` over a std `TcpStream`) that trusts
//! the test CA.
//!
//! As in `http_server.rs`, no test sleeps: "has the server closed yet?" is
//! answered by a blocking read or a server event. Every socket has a read
//! timeout of `WAIT`, which only keeps a broken build from hanging.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use connpool_testkit::CloseMode;
use connpool_testkit::http::{HttpCloseCause, HttpServer, HttpServerBuilder};
use connpool_testkit::tls::{
    ALPN_HTTP11, IssuedCert, ServerTls, TestCa, TlsClose, TlsFailure, Validity, crypto_provider,
};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, StreamOwned};

/// Upper bound for anything that should happen "soon".
const WAIT: Duration = Duration::from_secs(5);
/// Idle timeout for the idle-close tests.
const IDLE: Duration = Duration::from_millis(100);
/// The answer to `GET /` with no server settings.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A runtime to await the server's async calls (events, commands) from
/// these blocking tests.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Blocks on `future`, failing the test if it takes longer than `WAIT`.
fn within<F: Future>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output {
    runtime
        .block_on(async { tokio::time::timeout(WAIT, future).await })
        .expect("timed out waiting")
}

/// The CA and a server certificate for `localhost` and `127.0.0.1`.
fn ca_and_cert() -> (TestCa, IssuedCert) {
    let ca = TestCa::new("connpool test CA");
    let cert = ca.server_cert(&["localhost", "127.0.0.1"]);
    (ca, cert)
}

/// A client configuration that trusts `ca`, offers ALPN `http/1.1`, and
/// presents `client_cert` if given.
fn client_config(ca: &TestCa, client_cert: Option<&IssuedCert>) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(ca.root_store());
    let mut config = match client_cert {
        Some(cert) => builder
            .with_client_auth_cert(cert.chain(), cert.key_der())
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Arc::new(config)
}

/// Connects to `server`, as `name` (SNI and verification), without
/// handshaking yet.
fn connect(server: &HttpServer, name: &str, config: Arc<ClientConfig>) -> Tls {
    let socket = TcpStream::connect(server.addr()).expect("connect");
    socket.set_read_timeout(Some(WAIT)).expect("read timeout");
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let connection = ClientConnection::new(config, name).expect("client connection");
    StreamOwned::new(connection, socket)
}

/// Completes the client's side of the handshake.
fn handshake(tls: &mut Tls) -> io::Result<()> {
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(())
}

/// Connects as `name` and handshakes, which must succeed.
fn connect_ok(server: &HttpServer, name: &str, config: Arc<ClientConfig>) -> Tls {
    let mut tls = connect(server, name, config);
    handshake(&mut tls).expect("handshake");
    tls
}

/// The rustls error inside `error`, if any.
fn rustls_error(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Sends `GET path` and reads its response (head and `Content-Length`
/// body), returned as bytes.
fn get(tls: &mut Tls, path: &str) -> Vec<u8> {
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .expect("write request");
    tls.flush().expect("flush request");
    read_response(tls)
}

/// Reads one response with a `Content-Length` body.
fn read_response(tls: &mut Tls) -> Vec<u8> {
    let mut response = Vec::new();
    let mut byte = [0; 1];
    while !response.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).expect("read response head");
        response.push(byte[0]);
    }
    let head = String::from_utf8(response.clone()).expect("ASCII head");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .expect("numeric length");
    let mut body = vec![0; length];
    tls.read_exact(&mut body).expect("read body");
    response.extend(body);
    response
}

/// Reads once more from the TLS stream, expecting no more data: returns
/// the error, or `None` on a clean end of stream (`Ok(0)`).
fn read_end(tls: &mut Tls) -> Option<io::Error> {
    let mut buf = [0; 64];
    match tls.read(&mut buf) {
        Ok(0) => None,
        Ok(n) => panic!("unexpected data: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(error) => Some(error),
    }
}

/// The client's handshake with `server` as `name` must fail verification;
/// returns the certificate error, after checking that the server recorded
/// the client's alert `alert` and booked no connection.
fn expect_rejected(server: &HttpServer, ca: &TestCa, name: &str, alert: AlertDescription) {
    let runtime = runtime();
    let mut tls = connect(server, name, client_config(ca, None));
    let error = handshake(&mut tls).expect_err("verification must fail");
    let rustls = rustls_error(&error).unwrap_or_else(|| panic!("not a TLS error: {error}"));
    let expected = match alert {
        AlertDescription::BadCertificate => matches!(
            rustls,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        AlertDescription::CertificateExpired => matches!(
            rustls,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        AlertDescription::UnknownCA => matches!(
            rustls,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        other => panic!("no expectation for {other:?}"),
    };
    assert!(expected, "client error {rustls:?} for alert {alert:?}");

    let failures = within(&runtime, server.wait_tls_failures(1));
    let [TlsFailure { peer, error, .. }] = failures.as_slice() else {
        panic!("one failure expected: {failures:?}");
    };
    assert_eq!(*peer, tls.sock.local_addr().expect("local addr"));
    assert_eq!(*error, Some(rustls::Error::AlertReceived(alert)));
    assert!(server.tls_sessions().is_empty());
    assert_eq!(server.accepted(), 0);
    assert_eq!(server.requests(), 0);
}

#[test]
fn valid_chain_handshakes_and_answers_with_sni_and_alpn() {
    let (ca, cert) = ca_and_cert();
    let server = HttpServer::builder()
        .start_tls(ServerTls::from_cert(&cert))
        .expect("start");
    assert!(server.is_tls());
    assert!(server.url("/x").starts_with("https://127.0.0.1:"));

    let mut tls = connect_ok(&server, "localhost", client_config(&ca, None));
    assert_eq!(tls.conn.alpn_protocol(), Some(ALPN_HTTP11));
    assert_eq!(get(&mut tls, "/"), OK);
    assert_eq!(get(&mut tls, "/"), OK, "keep-alive over TLS");
    assert_eq!(server.requests(), 2);
    assert_eq!(server.accepted(), 1);

    let sessions = server.tls_sessions();
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert_eq!(session.peer, tls.sock.local_addr().expect("local addr"));
    assert_eq!(session.server_name.as_deref(), Some("localhost"));
    assert_eq!(session.alpn.as_deref(), Some(ALPN_HTTP11));
    assert_eq!(session.client_cert, None);
    assert_eq!(session.version, tls.conn.protocol_version());
    assert!(server.tls_failures().is_empty());
}

#[test]
fn sni_is_recorded_per_connection_and_absent_for_ip_addresses() {
    let ca = TestCa::new("connpool test CA");
    let cert = ca.server_cert(&["a.test", "b.test", "127.0.0.1"]);
    let server = HttpServer::builder()
        .start_tls(ServerTls::from_cert(&cert))
        .expect("start");

    // No ALPN offered by this client: none agreed.
    let mut no_alpn = (*client_config(&ca, None)).clone();
    no_alpn.alpn_protocols.clear();
    let no_alpn = Arc::new(no_alpn);

    let mut a = connect_ok(&server, "a.test", client_config(&ca, None));
    let mut b = connect_ok(&server, "b.test", no_alpn);
    // Clients send no SNI for an IP address (RFC 6066).
    let mut ip = connect_ok(&server, "127.0.0.1", client_config(&ca, None));
    for tls in [&mut a, &mut b, &mut ip] {
        assert_eq!(get(tls, "/"), OK);
    }
    assert_eq!(b.conn.alpn_protocol(), None);

    let sessions = server.tls_sessions();
    let by_peer = |tls: &Tls| {
        let peer: SocketAddr = tls.sock.local_addr().expect("local addr");
        sessions
            .iter()
            .find(|session| session.peer == peer)
            .unwrap_or_else(|| panic!("no session for {peer}: {sessions:?}"))
            .clone()
    };
    assert_eq!(by_peer(&a).server_name.as_deref(), Some("a.test"));
    assert_eq!(by_peer(&a).alpn.as_deref(), Some(ALPN_HTTP11));
    assert_eq!(by_peer(&b).server_name.as_deref(), Some("b.test"));
    assert_eq!(by_peer(&b).alpn, None);
    assert_eq!(by_peer(&ip).server_name, None);
    assert_eq!(server.accepted(), 3);
}

#[test]
fn wrong_host_name_fails_verification() {
    let (ca, cert) = ca_and_cert();
    let server = HttpServer::builder()
        .start_tls(ServerTls::from_cert(&cert))
        .expect("start");
    expect_rejected(&server, &ca, "other.test", AlertDescription::BadCertificate);
}

#[test]
fn expired_certificate_fails_verification() {
    let ca = TestCa::new("connpool test CA");
    let expired = ca.server_cert_with(&["localhost"], Validity::expired());
    let server = HttpServer::builder()
        .start_tls(ServerTls::from_cert(&expired))
        .expect("start");
    expect_rejected(
        &server,
        &ca,
        "localhost",
        AlertDescription::CertificateExpired,
    );
}

#[test]
fn unknown_ca_fails_verification() {
    let trusted = TestCa::new("connpool test CA");
    // Another name: with the trusted CA's name (and another key), webpki
    // would find the trusted root and report `BadSignature` instead.
    let unknown = TestCa::new("unknown CA");
    let cert = unknown.server_cert(&["localhost"]);
    let server = HttpServer::builder()
        .start_tls(ServerTls::from_cert(&cert))
        .expect("start");
    expect_rejected(&server, &trusted, "localhost", AlertDescription::UnknownCA);
}

#[test]
fn required_client_certificate_rejects_clients_without_one_and_accepts_one() {
    let runtime = runtime();
    let (ca, cert) = ca_and_cert();
    let tls_settings = ServerTls::from_cert(&cert).require_client_cert(ca.cert_der());
    let server = HttpServer::builder()
        .start_tls(tls_settings)
        .expect("start");

    // Without a certificate. Under TLS 1.3 the client's side of the
    // handshake completes before the server has checked its (empty)
    // certificate, so the refusal arrives as an alert on the first read.
    // (The client writes nothing, so the server's close is a clean FIN.)
    let mut anonymous = connect(&server, "localhost", client_config(&ca, None));
    let error = match handshake(&mut anonymous) {
        Err(error) => error,
        Ok(()) => read_end(&mut anonymous).expect("the server must refuse"),
    };
    assert_eq!(
        rustls_error(&error),
        Some(&rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
        )),
        "{error}"
    );
    let failures = within(&runtime, server.wait_tls_failures(1));
    assert_eq!(
        failures[0].error,
        Some(rustls::Error::NoCertificatesPresented)
    );
    assert_eq!(server.accepted(), 0);

    // With a certificate from another CA.
    let stranger = TestCa::new("other CA").client_cert("stranger");
    let mut impostor = connect(&server, "localhost", client_config(&ca, Some(&stranger)));
    let _ = handshake(&mut impostor).and_then(|()| read_end(&mut impostor).map_or(Ok(()), Err));
    let failures = within(&runtime, server.wait_tls_failures(2));
    assert_eq!(
        failures[1].error,
        Some(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        ))
    );
    assert_eq!(server.accepted(), 0);

    // With the right one.
    let client = ca.client_cert("client-1");
    let mut tls = connect_ok(&server, "localhost", client_config(&ca, Some(&client)));
    assert_eq!(get(&mut tls, "/"), OK);
    let sessions = server.tls_sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].client_cert, Some(client.cert_der()));
    assert_eq!(server.accepted(), 1);
}

#[test]
fn requested_client_certificate_is_optional() {
    let (ca, cert) = ca_and_cert();
    let server = HttpServer::builder()
        .start_tls(ServerTls::from_cert(&cert).request_client_cert(ca.cert_der()))
        .expect("start");
    let mut anonymous = connect_ok(&server, "localhost", client_config(&ca, None));
    assert_eq!(get(&mut anonymous, "/"), OK);
    let client = ca.client_cert("client-1");
    let mut known = connect_ok(&server, "localhost", client_config(&ca, Some(&client)));
    assert_eq!(get(&mut known, "/"), OK);
    let certs: Vec<_> = server
        .tls_sessions()
        .into_iter()
        .map(|session| session.client_cert)
        .collect();
    assert_eq!(certs, vec![None, Some(client.cert_der())]);
}

/// Starts `builder` with TLS closing as `close`, makes one request, and
/// returns the runtime, the server, its events and the client.
fn one_request(
    builder: HttpServerBuilder,
    close: TlsClose,
) -> (
    tokio::runtime::Runtime,
    HttpServer,
    connpool_testkit::http::HttpEventStream,
    Tls,
) {
    let runtime = runtime();
    let (ca, cert) = ca_and_cert();
    let server = builder
        .start_tls(ServerTls::from_cert(&cert).close(close))
        .expect("start");
    let events = server.events();
    let mut tls = connect_ok(&server, "localhost", client_config(&ca, None));
    assert_eq!(get(&mut tls, "/"), OK);
    (runtime, server, events, tls)
}

#[test]
fn idle_close_notify_sends_the_alert_then_fin() {
    let builder = HttpServer::builder().idle_close(IDLE, CloseMode::Fin);
    let (runtime, _server, mut events, mut tls) = one_request(builder, TlsClose::CloseNotify);

    // rustls returns a clean end of stream only after a close_notify.
    assert!(read_end(&mut tls).is_none(), "expected close_notify");
    // Then the TCP FIN: end-of-file on the socket itself.
    let mut buf = [0; 16];
    assert_eq!(tls.sock.read(&mut buf).expect("read FIN"), 0);
    let (_, mode, cause) = within(&runtime, events.next_closed()).expect("closed");
    assert_eq!((mode, cause), (CloseMode::Fin, HttpCloseCause::IdleTimeout));
}

#[test]
fn idle_bare_fin_is_an_unexpected_eof() {
    let builder = HttpServer::builder().idle_close(IDLE, CloseMode::Fin);
    let (runtime, _server, mut events, mut tls) = one_request(builder, TlsClose::BareFin);

    let error = read_end(&mut tls).expect("EOF without close_notify is an error");
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
    let (_, mode, cause) = within(&runtime, events.next_closed()).expect("closed");
    assert_eq!((mode, cause), (CloseMode::Fin, HttpCloseCause::IdleTimeout));
}

#[test]
fn idle_rst_is_a_reset() {
    let builder = HttpServer::builder().idle_close(IDLE, CloseMode::Rst);
    let (runtime, _server, mut events, mut tls) = one_request(builder, TlsClose::CloseNotify);

    let error = read_end(&mut tls).expect("a reset");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    let (_, mode, cause) = within(&runtime, events.next_closed()).expect("closed");
    assert_eq!((mode, cause), (CloseMode::Rst, HttpCloseCause::IdleTimeout));
}

#[test]
fn commanded_close_reaches_tls_connections() {
    let (runtime, server, mut events, mut tls) =
        one_request(HttpServer::builder(), TlsClose::BareFin);

    assert_eq!(within(&runtime, server.close_idle(CloseMode::Fin)), 1);
    let error = read_end(&mut tls).expect("bare FIN");
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
    let (_, _, cause) = within(&runtime, events.next_closed()).expect("closed");
    assert_eq!(cause, HttpCloseCause::Commanded);
    assert_eq!(server.open_connections(), 0);
    assert_eq!(server.closed_by_server(), 1);
}

#[test]
fn close_after_works_over_tls() {
    let builder = HttpServer::builder().close_after(1, CloseMode::Fin);
    let (runtime, server, mut events, mut tls) = one_request(builder, TlsClose::CloseNotify);

    assert!(read_end(&mut tls).is_none(), "expected close_notify");
    let (_, mode, cause) = within(&runtime, events.next_closed()).expect("closed");
    assert_eq!(
        (mode, cause),
        (CloseMode::Fin, HttpCloseCause::AfterRequests)
    );
    assert_eq!(server.requests(), 1);
}

#[test]
fn vanish_once_works_over_tls() {
    let (runtime, server, mut events, mut tls) =
        one_request(HttpServer::builder(), TlsClose::CloseNotify);

    tls.write_all(b"GET /vanish-once/t?mode=rst HTTP/1.1\r\nHost: test\r\nx-request-id: 9\r\n\r\n")
        .expect("write request");
    tls.flush().expect("flush");
    let error = read_end(&mut tls).expect("a reset");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    let (_, mode, cause) = within(&runtime, events.next_closed()).expect("closed");
    assert_eq!((mode, cause), (CloseMode::Rst, HttpCloseCause::Vanished));
    assert_eq!(server.vanished(), 1);
    assert_eq!(server.processed("GET", "9"), 0);
    assert_eq!(server.requests(), 1);
}

#[test]
fn max_requests_and_keep_alive_header_work_over_tls() {
    let builder = HttpServer::builder()
        .max_requests(2)
        .keep_alive_header(5, Some(2));
    let runtime = runtime();
    let (ca, cert) = ca_and_cert();
    let server = builder
        .start_tls(ServerTls::from_cert(&cert))
        .expect("start");
    let mut events = server.events();
    let mut tls = connect_ok(&server, "localhost", client_config(&ca, None));

    assert_eq!(
        get(&mut tls, "/"),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5, max=2\r\n\r\nok"
    );
    assert_eq!(
        get(&mut tls, "/"),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    assert!(read_end(&mut tls).is_none(), "expected close_notify");
    let (_, mode, cause) = within(&runtime, events.next_closed()).expect("closed");
    assert_eq!((mode, cause), (CloseMode::Fin, HttpCloseCause::MaxRequests));
}

#[test]
fn slow_headers_work_over_tls() {
    let (_runtime, server, _events, mut tls) =
        one_request(HttpServer::builder(), TlsClose::CloseNotify);
    assert_eq!(get(&mut tls, "/slow-headers?ms=50"), OK);
    assert_eq!(server.requests(), 2);
}

#[test]
fn mismatched_key_is_rejected_at_start() {
    let ca = TestCa::new("connpool test CA");
    let one = ca.server_cert(&["localhost"]);
    let other = ca.server_cert(&["localhost"]);
    let error = HttpServer::builder()
        .start_tls(ServerTls::new(one.chain(), other.key_der()))
        .expect_err("key does not match");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}
