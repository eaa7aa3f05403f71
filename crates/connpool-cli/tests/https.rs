//! Runs the built `connpool get` and `connpool bench` against a testkit
//! HTTPS server on 127.0.0.1, with a CA made at test time and written to a
//! PEM file: `--cacert`, `-k`/`--insecure`, `--cert`/`--key`, and the
//! certificate errors named by their kind.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{assert_exit, texts};
use connpool_testkit::http::{HttpServer, body_pattern};
use connpool_testkit::tls::{IssuedCert, ServerTls, TestCa};

fn get(args: &[&str]) -> Output {
    common::connpool("get", args)
}

/// A file in Cargo's temporary directory for integration tests, named
/// after the test, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("connpool-cli-https-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write the temp file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A TLS server presenting a certificate for `localhost` and `127.0.0.1`
/// from a new CA, the CA, and the CA's certificate in a PEM file.
fn tls_server(name: &str, tls: impl FnOnce(&TestCa, &IssuedCert) -> ServerTls) -> Setup {
    let ca = TestCa::new("connpool cli test CA");
    let cert = ca.server_cert(&["localhost", "127.0.0.1"]);
    let server = HttpServer::builder()
        .start_tls(tls(&ca, &cert))
        .expect("the TLS server starts");
    let cacert = TempFile::new(&format!("{name}-ca.pem"), &ca.cert_pem());
    Setup { server, ca, cacert }
}

struct Setup {
    server: HttpServer,
    ca: TestCa,
    cacert: TempFile,
}

impl Setup {
    /// The server's URL for `path`, host `localhost` (SNI is sent).
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.server.addr().port())
    }
}

/// The one `error:` line of a failed single request.
fn error_line(output: &Output) -> String {
    let (stdout, stderr) = texts(output);
    assert!(stdout.is_empty(), "stdout:\n{stdout}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "stderr:\n{stderr}");
    errors[0].to_owned()
}

#[test]
fn cacert_trusts_the_test_ca_and_the_connection_is_reused() {
    let s = tls_server("cacert", |_, cert| ServerTls::from_cert(cert));
    let output = get(&["--cacert", s.cacert.path(), "-n", "3", &s.url("/bytes/10")]);
    assert_exit(&output, 0);
    assert_eq!(output.stdout, body_pattern(10).repeat(3));
    let (_, stderr) = texts(&output);
    assert!(
        stderr.contains("summary: 3 requests, 3 ok, 0 failed; connections: 1 opened, 2 reused"),
        "{stderr}"
    );
    assert_eq!(s.server.accepted(), 1);
    let sessions = s.server.tls_sessions();
    assert_eq!(sessions[0].server_name.as_deref(), Some("localhost"));
}

#[test]
fn without_cacert_the_certificate_error_is_named() {
    // The default roots (Mozilla's) do not know the test CA.
    let s = tls_server("default-roots", |_, cert| ServerTls::from_cert(cert));
    let output = get(&[&s.url("/")]);
    assert_exit(&output, 1);
    let line = error_line(&output);
    assert!(
        line.contains("kind=tls_certificate") && line.contains("may have been processed: no"),
        "{line}"
    );
    assert_eq!(s.server.requests(), 0);

    // Another CA's roots: refused too.
    let other = TempFile::new("other-ca.pem", &TestCa::new("another CA").cert_pem());
    let output = get(&["--cacert", other.path(), &s.url("/")]);
    assert_exit(&output, 1);
    assert!(error_line(&output).contains("kind=tls_certificate"));
    assert_eq!(s.server.requests(), 0);
}

#[test]
fn insecure_accepts_a_certificate_that_does_not_verify() {
    let unknown = TestCa::new("someone else").server_cert(&["other.example"]);
    let server = HttpServer::builder()
        .start_tls(ServerTls::from_cert(&unknown))
        .expect("the TLS server starts");
    let url = format!("https://localhost:{}/", server.addr().port());
    for flag in ["-k", "--insecure"] {
        let output = get(&[flag, &url]);
        assert_exit(&output, 0);
        assert_eq!(String::from_utf8_lossy(&output.stdout), "ok", "{flag}");
    }
    assert_eq!(server.requests(), 2);
}

#[test]
fn a_required_client_certificate_is_sent_with_cert_and_key() {
    let s = tls_server("mtls", |ca, cert| {
        ServerTls::from_cert(cert).require_client_cert(ca.cert_der())
    });
    // Without one: the server refuses the handshake.
    let output = get(&["--cacert", s.cacert.path(), &s.url("/")]);
    assert_exit(&output, 1);
    let line = error_line(&output);
    assert!(line.contains("kind=tls_handshake"), "{line}");
    assert_eq!(s.server.requests(), 0);

    let client = s.ca.client_cert("cli-client");
    let cert = TempFile::new("mtls-cert.pem", &client.cert_pem());
    let key = TempFile::new("mtls-key.pem", &client.key_pem());
    let output = get(&[
        "--cacert",
        s.cacert.path(),
        "--cert",
        cert.path(),
        "--key",
        key.path(),
        &s.url("/"),
    ]);
    assert_exit(&output, 0);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "ok");
    let sessions = s.server.tls_sessions();
    assert_eq!(
        sessions.last().unwrap().client_cert,
        Some(client.cert_der())
    );
    assert_eq!(s.server.requests(), 1);
}

#[test]
fn bad_tls_options_are_usage_errors() {
    let s = tls_server("usage", |_, cert| ServerTls::from_cert(cert));
    let client = s.ca.client_cert("cli-client");
    let cert = TempFile::new("usage-cert.pem", &client.cert_pem());
    let not_pem = TempFile::new("usage-not-pem.txt", "not a certificate\n");
    let other_key = TempFile::new("usage-other-key.pem", &s.ca.client_cert("x").key_pem());
    let url = s.url("/");
    for args in [
        // --cert needs --key, and the reverse.
        vec!["--cert", cert.path(), url.as_str()],
        vec!["--key", cert.path(), url.as_str()],
        // Files without what they should hold.
        vec!["--cacert", not_pem.path(), url.as_str()],
        vec!["--cert", cert.path(), "--key", not_pem.path(), url.as_str()],
        // A key that is not the certificate's.
        vec![
            "--cert",
            cert.path(),
            "--key",
            other_key.path(),
            url.as_str(),
        ],
    ] {
        let output = get(&args);
        assert_exit(&output, 2);
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(s.server.accepted(), 0, "nothing was sent");
}

#[test]
fn bench_speaks_https_with_cacert() {
    let s = tls_server("bench", |_, cert| ServerTls::from_cert(cert));
    let output = common::connpool(
        "bench",
        &[
            "--json",
            "-n",
            "200",
            "-c",
            "4",
            "--cacert",
            s.cacert.path(),
            &s.url("/"),
        ],
    );
    assert_exit(&output, 0);
    let (stdout, _) = texts(&output);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report["responses"], 200);
    assert_eq!(report["failed"], 0);
    assert!(report["connections"]["opened"].as_u64().unwrap() <= 4);
    assert_eq!(s.server.requests(), 200);

    // Without it: every request fails on the certificate, named in the
    // report's errors.
    let output = common::connpool("bench", &["--json", "-n", "5", "-c", "1", &s.url("/")]);
    assert_exit(&output, 1);
    let (stdout, _) = texts(&output);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report["failed"], 5);
    assert_eq!(report["errors"]["tls_certificate"]["count"], 5, "{report}");
}
