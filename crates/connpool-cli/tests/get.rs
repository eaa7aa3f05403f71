//! Runs the built `connpool get` against a testkit HTTP server on
//! 127.0.0.1 and checks what it prints, what the server saw, and the exit
//! status.

mod common;

use std::process::Output;

use common::{assert_exit, server, texts, unused_port};
use connpool_testkit::CloseMode;
use connpool_testkit::http::{HttpServer, body_pattern};

/// `connpool get <args>`, run to its end.
fn get(args: &[&str]) -> Output {
    common::connpool("get", args)
}

#[test]
fn get_prints_the_body() {
    let server = server();
    let output = get(&[&server.url("/bytes/10")]);
    assert_exit(&output, 0);
    assert_eq!(output.stdout, body_pattern(10));
    // One request: no per-request line, no summary.
    let (_, stderr) = texts(&output);
    assert!(stderr.is_empty(), "unexpected stderr:\n{stderr}");
    assert_eq!(server.requests(), 1);
}

#[test]
fn include_prints_the_head_first() {
    let server = server();
    let output = get(&["-i", &server.url("/")]);
    assert_exit(&output, 0);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    );
}

#[test]
fn count_reuses_one_connection_and_says_so() {
    let server = server();
    let output = get(&["-n", "3", &server.url("/bytes/4")]);
    assert_exit(&output, 0);
    assert_eq!(output.stdout, body_pattern(4).repeat(3));
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.requests(), 3);

    let (_, stderr) = texts(&output);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("#1 200 OK  conn #1 new  ")
            && lines[1].starts_with("#2 200 OK  conn #1 reused  ")
            && lines[2].starts_with("#3 200 OK  conn #1 reused  ")
            && lines.iter().take(3).all(|line| line.ends_with(" ms")),
        "per-request lines:\n{stderr}"
    );
    assert!(
        stderr.contains("summary: 3 requests, 3 ok, 0 failed; connections: 1 opened, 2 reused"),
        "summary:\n{stderr}"
    );
}

#[test]
fn put_with_data_sends_the_body() {
    let server = server();
    let output = get(&[
        "-X",
        "PUT",
        "-d",
        "hello, pool",
        "-H",
        "x-request-id: put-1",
        &server.url("/echo"),
    ]);
    assert_exit(&output, 0);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello, pool");
    assert_eq!(server.processed("PUT", "put-1"), 1);
}

#[test]
fn data_without_method_is_a_post() {
    let server = server();
    let output = get(&[
        "-d",
        "x",
        "-H",
        "x-request-id: post-1",
        &server.url("/echo"),
    ]);
    assert_exit(&output, 0);
    assert_eq!(server.processed("POST", "post-1"), 1);
}

#[test]
fn header_is_sent() {
    let server = server();
    let output = get(&["-H", "x-request-id: abc", &server.url("/")]);
    assert_exit(&output, 0);
    assert_eq!(server.processed("GET", "abc"), 1);
}

#[test]
fn verbose_prints_the_trace_and_the_pool_events() {
    let server = server();
    let output = get(&["-v", &server.url("/chunked/30")]);
    assert_exit(&output, 0);
    assert_eq!(output.stdout, body_pattern(30));

    let (_, stderr) = texts(&output);
    let has = |needle: &str| {
        stderr
            .lines()
            .any(|l| l.starts_with('*') && l.contains(needle))
    };
    // The trace, read after the body: it ends with the connection's return.
    assert!(has("got connection #1: new"), "trace:\n{stderr}");
    assert!(has("connection returned to the pool"), "trace:\n{stderr}");
    // The pool's events of the request.
    assert!(has("pool: conn #1 connecting"), "events:\n{stderr}");
    assert!(has("pool: conn #1 returned"), "events:\n{stderr}");
    // The response head, curl-style.
    assert!(stderr.contains("< HTTP/1.1 200 OK"), "head:\n{stderr}");
    assert!(
        stderr.contains("summary: 1 request, 1 ok"),
        "summary:\n{stderr}"
    );
}

#[test]
fn refused_connection_fails_with_exit_1() {
    let port = unused_port();
    let output = get(&["-n", "2", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(output.status.code(), Some(1));
    let (stdout, stderr) = texts(&output);
    assert!(stdout.is_empty(), "stdout:\n{stdout}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error:")).collect();
    // The run goes on after a failure: both requests are tried.
    assert_eq!(errors.len(), 2, "stderr:\n{stderr}");
    assert!(
        errors.iter().all(
            |l| l.contains("kind=connect_refused") && l.contains("may have been processed: no")
        ),
        "stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("summary: 2 requests, 0 ok, 2 failed"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn a_failure_does_not_stop_the_run() {
    let server = server();
    // The body is cut short: each request fails after its head.
    let output = get(&["-n", "2", &server.url("/close-mid-body")]);
    assert_eq!(output.status.code(), Some(1));
    let (_, stderr) = texts(&output);
    assert!(
        stderr.contains("#2 error: ") && stderr.contains("kind=incomplete_response"),
        "stderr:\n{stderr}"
    );
    assert_eq!(server.requests(), 2);
}

#[test]
fn invalid_arguments_exit_2() {
    for args in [
        vec!["-H", "no colon", "http://127.0.0.1:1/"],
        vec!["-n", "0", "http://127.0.0.1:1/"],
        vec!["-X", "BAD METHOD", "http://127.0.0.1:1/"],
        vec![
            "-d",
            "x",
            "--data-file",
            "/nonexistent",
            "http://127.0.0.1:1/",
        ],
        vec!["ftp://example.com/"],
        vec!["--cacert", "/nonexistent/ca.pem", "https://127.0.0.1:1/"],
        vec!["--cert", "/nonexistent/cert.pem", "https://127.0.0.1:1/"],
        vec!["not a url"],
    ] {
        let output = get(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            texts(&output).1
        );
    }
}

#[test]
fn a_connection_the_server_closed_is_not_reused() {
    let server = HttpServer::builder()
        .close_after(1, CloseMode::Fin)
        .start()
        .expect("the test server starts");
    // The gap lets the server's FIN arrive before the second request: the
    // pool's check finds it and opens a new connection instead.
    let output = get(&["-n", "2", "--gap-ms", "50", &server.url("/")]);
    assert_exit(&output, 0);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "okok");
    assert_eq!(server.accepted(), 2);
    let (_, stderr) = texts(&output);
    assert!(
        stderr.contains("#2 200 OK  conn #2 new")
            && stderr.contains(
                "connections: 2 opened, 0 reused, 1 found closed by the server before reuse"
            ),
        "stderr:\n{stderr}"
    );
}
