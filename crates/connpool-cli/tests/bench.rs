//! Runs the built `connpool bench` against a testkit HTTP server on
//! 127.0.0.1 and checks its report, what the server saw, and the exit
//! status. Only counts are checked here; its timings are for people.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{assert_exit, server, texts, unused_port};
use serde_json::Value;

/// `connpool bench <args>`, run to its end.
fn bench(args: &[&str]) -> Output {
    common::connpool("bench", args)
}

/// The `--json` report.
fn report(output: &Output) -> Value {
    let (stdout, stderr) = texts(output);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"))
}

#[test]
fn sends_n_requests_on_at_most_c_connections() {
    let server = server();
    let output = bench(&["-n", "500", "-c", "8", &server.url("/")]);
    assert_exit(&output, 0);
    let (stdout, stderr) = texts(&output);
    assert!(
        stdout.contains("requests      500 (500 responses, 0 failed)"),
        "{stdout}"
    );
    assert!(stdout.contains("status codes  200: 500"), "{stdout}");
    assert!(stdout.contains("errors        none"), "{stdout}");
    for label in ["throughput", "latency", "connections", "cpu"] {
        assert!(stdout.contains(label), "no {label}:\n{stdout}");
    }
    // stderr is not a terminal here: no progress bar.
    assert!(stderr.is_empty(), "unexpected stderr:\n{stderr}");
    assert_eq!(server.requests(), 500);
    assert!(server.accepted() <= 8, "{} connections", server.accepted());
}

#[test]
fn json_report_has_every_field() {
    let server = server();
    let output = bench(&["--json", "-n", "500", "-c", "8", &server.url("/")]);
    assert_exit(&output, 0);
    let r = report(&output);

    assert_eq!(r["requests"], 500);
    assert_eq!(r["responses"], 500);
    assert_eq!(r["failed"], 0);
    assert_eq!(r["cancelled"], 0);
    assert_eq!(r["concurrency"], 8);
    assert_eq!(r["max_conns"], 8);
    assert_eq!(r["method"], "GET");
    assert_eq!(r["body_bytes"], 1000, "500 times `ok`");
    assert_eq!(r["status_codes"], serde_json::json!({ "200": 500 }));
    assert_eq!(r["errors"], serde_json::json!({}));
    assert!(r["wall_time_s"].as_f64().is_some_and(|s| s > 0.0), "{r}");
    assert!(r["throughput_rps"].as_f64().is_some_and(|t| t > 0.0), "{r}");

    let latency = &r["latency_us"];
    let order: Vec<u64> = ["min", "p50", "p90", "p99", "p99.9", "max"]
        .iter()
        .map(|q| latency[q].as_u64().unwrap_or_else(|| panic!("no {q}: {r}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{latency}");
    assert!(latency["mean"].as_f64().is_some(), "{latency}");

    let conns = &r["connections"];
    let opened = conns["opened"].as_u64().expect("opened");
    let reused = conns["reused"].as_u64().expect("reused");
    assert!((1..=8).contains(&opened), "{conns}");
    assert_eq!(
        opened + reused,
        500,
        "every request had one checkout: {conns}"
    );
    assert_eq!(opened, server.accepted());

    let cpu = &r["cpu"];
    for field in ["user_s", "sys_s", "per_request_us"] {
        assert!(cpu[field].as_f64().is_some(), "no cpu.{field}: {cpu}");
    }
}

#[test]
fn max_conns_caps_the_connections_below_the_workers() {
    let server = server();
    let output = bench(&[
        "--json",
        "-n",
        "200",
        "-c",
        "8",
        "--max-conns",
        "2",
        "--threads",
        "2",
        &server.url("/"),
    ]);
    assert_exit(&output, 0);
    let r = report(&output);
    assert_eq!(r["responses"], 200);
    assert_eq!(r["max_conns"], 2);
    assert_eq!(r["threads"], 2);
    assert!(server.accepted() <= 2, "{} connections", server.accepted());
}

#[test]
fn sends_the_method_headers_and_body() {
    let server = server();
    let output = bench(&[
        "--json",
        "-n",
        "50",
        "-c",
        "4",
        "-X",
        "PUT",
        "-H",
        "x-test: 1",
        "-d",
        "hello",
        &server.url("/echo"),
    ]);
    assert_exit(&output, 0);
    let r = report(&output);
    assert_eq!(r["method"], "PUT");
    assert_eq!(r["responses"], 50);
    assert_eq!(r["body_bytes"], 250, "50 echoes of `hello`");
}

#[test]
fn any_status_is_a_response_not_a_failure() {
    let server = server();
    let output = bench(&["--json", "-n", "40", "-c", "4", &server.url("/status/503")]);
    assert_exit(&output, 0);
    let r = report(&output);
    assert_eq!(r["status_codes"], serde_json::json!({ "503": 40 }));
    assert_eq!(r["failed"], 0);
}

#[test]
fn duration_stops_the_run_by_itself() {
    let server = server();
    let started = Instant::now();
    let output = bench(&["--json", "--duration", "300ms", "-c", "4", &server.url("/")]);
    let took = started.elapsed();
    assert_exit(&output, 0);
    let r = report(&output);
    let wall = r["wall_time_s"].as_f64().expect("wall_time_s");
    assert!((0.29..5.0).contains(&wall), "wall time {wall} s");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(r["responses"].as_u64().is_some_and(|n| n > 0), "{r}");
    assert_eq!(r["failed"], 0);
}

#[test]
fn duration_ends_requests_the_server_never_answers() {
    let server = server();
    let output = bench(&[
        "--json",
        "--duration",
        "300ms",
        "-c",
        "3",
        &server.url("/never"),
    ]);
    // Cancelled at the deadline is neither an answer nor a failure.
    assert_exit(&output, 0);
    let r = report(&output);
    assert_eq!(r["requests"], 0);
    assert_eq!(r["cancelled"], 3);
    assert!(r["latency_us"]["p50"].is_null(), "{r}");
    let wall = r["wall_time_s"].as_f64().expect("wall_time_s");
    assert!(wall < 5.0, "wall time {wall} s");
}

#[test]
fn an_unreachable_port_reports_errors_by_kind_and_fails() {
    let port = unused_port();
    let url = format!("http://127.0.0.1:{port}/");

    let output = bench(&["--json", "-n", "20", "-c", "2", &url]);
    assert_exit(&output, 1);
    let r = report(&output);
    assert_eq!(r["requests"], 20);
    assert_eq!(r["failed"], 20);
    assert_eq!(r["responses"], 0);
    assert_eq!(r["errors"]["connect_refused"]["count"], 20, "{r}");
    assert!(
        r["errors"]["connect_refused"]["example"]
            .as_str()
            .is_some_and(|e| e.contains("refused")),
        "{r}"
    );
    assert_eq!(r["connections"]["opened"], 0);

    let output = bench(&["-n", "20", "-c", "2", &url]);
    assert_exit(&output, 1);
    let (stdout, _) = texts(&output);
    assert!(stdout.contains("connect_refused: 20"), "{stdout}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["ftp://127.0.0.1/"][..],
        &["-c", "0", "http://127.0.0.1:1/"],
        &["--duration", "soon", "http://127.0.0.1:1/"],
    ] {
        let output = bench(args);
        assert_exit(&output, 2);
    }
}
