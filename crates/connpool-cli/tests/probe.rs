//! Runs the built `connpool probe` against real servers and paths and
//! checks what it measured.
//!
//! # `connpool probe URL`: the server
//!
//! Testkit servers with known settings (idle timeouts of 200 ms, 1 s and
//! 5 s closed with a FIN, one with an RST, one with a `408` first; a
//! polite and a rude request limit; a true and a lying `Keep-Alive`
//! header) and an nginx with a known `keepalive_timeout` and
//! `keepalive_requests`, all on 127.0.0.1. The timeouts must come out
//! within the tolerance the probe promises, `max(5 %, 50 ms)`, and the
//! request limits exactly. Wall times are asserted loosely (three times
//! the timeout plus a few seconds), since the tests run in parallel.
//!
//! # `connpool probe --path-idle URL`: the path
//!
//! The paths with a middlebox are connpool-testkit's `NetChain`: client,
//! middlebox (conntrack forgetting flows idle for its established timeout,
//! then dropping or resetting their packets) and server, each in its own
//! network namespace; this needs root, as CI runs. The binary runs *inside*
//! the client namespace: it is forked from a thread that entered it, and a
//! child inherits its parent thread's namespace.
//!
//! The tolerance asserted is the one the probe promises (see its module
//! docs): the bracket is at most `max(5 % of its lower end, 50 ms)` wide.
//! The middlebox's timeout counts from the flow's last packet, which is
//! the client's ACK of the first response, sent when the response arrives
//! or up to ~40 ms later (delayed ACK); the probe counts from when it read
//! that response. So the measured limit lies in `[T, T + 40 ms]`, and the
//! checks allow `T − 20 ms` (clock granularity) to `T + 60 ms` for it.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{assert_exit, server, texts, unused_port};
use connpool_testkit::CloseMode;
use connpool_testkit::http::{HttpServer, HttpServerBuilder};
use connpool_testkit::netns::{Forgotten, NetChain};
use connpool_testkit::nginx::Nginx;
use serde_json::Value;

/// Allowed below the middlebox's timeout: clock granularity.
const BELOW: u64 = 20;
/// Allowed above it: the delayed ACK that last refreshed the flow.
const ABOVE: u64 = 60;

fn chain(
    forgotten: Forgotten,
    established: Duration,
    server: HttpServerBuilder,
) -> (NetChain, HttpServer) {
    let chain = NetChain::builder()
        .established_timeout(established)
        .forgotten(forgotten)
        .start()
        .expect("building the namespaces needs root, ip and nft (see .ci/run)");
    let server = chain
        .start_http_server(server)
        .expect("the test server starts");
    (chain, server)
}

/// `connpool probe <args>` run inside the client namespace of `chain`,
/// and how long it took.
fn probe_in(chain: &NetChain, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = chain
        .client()
        .run(|| {
            std::process::Command::new(env!("CARGO_BIN_EXE_connpool"))
                .arg("probe")
                .args(args)
                .output()
        })
        .expect("entering the client namespace")
        .expect("the connpool binary runs");
    (output, started.elapsed())
}

/// `connpool probe --path-idle --max-wait <max_wait> --json URL` through
/// a middlebox that forgets `forgotten` flows idle for `established`, to a
/// server built by `server`, asserting exit 0: the output, the report and
/// how long the run took.
fn probe_path(
    forgotten: Forgotten,
    established: Duration,
    server: HttpServerBuilder,
    max_wait: &str,
) -> (Output, Value, Duration) {
    let (chain, server) = chain(forgotten, established, server);
    let (output, took) = probe_in(
        &chain,
        &[
            "--path-idle",
            "--max-wait",
            max_wait,
            "--json",
            &server.url("/"),
        ],
    );
    assert_exit(&output, 0);
    let r = report(&output);
    (output, r, took)
}

/// `connpool probe <args>` on this host, and how long it took.
fn probe(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = common::connpool("probe", args);
    (output, started.elapsed())
}

/// `connpool probe <args>` on this host, asserting exit status `code`:
/// stdout and stderr as text, and how long it took.
fn probe_texts(args: &[&str], code: i32) -> (String, String, Duration) {
    let (output, took) = probe(args);
    assert_exit(&output, code);
    let (stdout, stderr) = texts(&output);
    (stdout, stderr, took)
}

/// `connpool probe <args> URL` with nobody listening at the URL: it fails
/// within 2 s, with nothing on stdout and why on stderr.
fn assert_unreachable_fails_quickly(args: &[&str]) {
    let url = format!("http://127.0.0.1:{}/", unused_port());
    let mut all = args.to_vec();
    all.push(&url);
    let (stdout, stderr, took) = probe_texts(&all, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("connpool probe: cannot measure: the request to")
            && stderr.contains("connect_refused"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// The `--json` report (also printed: the test harness shows it when the
/// test fails, or with `--nocapture`).
fn report(output: &Output) -> Value {
    let (stdout, stderr) = texts(output);
    println!("{stdout}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"))
}

/// The bracket `(kept, lost)` in ms.
fn bracket(r: &Value) -> (Option<u64>, Option<u64>) {
    (
        r["bracket_ms"]["kept"].as_u64(),
        r["bracket_ms"]["lost"].as_u64(),
    )
}

/// Asserts the bracket holds `limit_ms` (with the slack the module docs
/// explain) and is within the promised tolerance.
fn assert_brackets(r: &Value, limit_ms: u64) {
    let (Some(kept), Some(lost)) = bracket(r) else {
        panic!("no bracket: {r:#}");
    };
    assert!(
        kept <= limit_ms + ABOVE && lost + BELOW >= limit_ms && kept < lost,
        "the bracket ({kept}, {lost}] misses {limit_ms} ms: {r:#}"
    );
    let tolerance = (kept / 20).max(50);
    assert!(
        lost - kept <= tolerance,
        "the bracket ({kept}, {lost}] is wider than {tolerance} ms: {r:#}"
    );
    assert_eq!(r["converged"], true, "{r:#}");
    assert_eq!(r["tolerance_ms"], tolerance, "{r:#}");
}

#[test]
fn a_middlebox_that_drops_forgotten_flows_is_measured_tightly() {
    let (output, r, took) = probe_path(
        Forgotten::Drop,
        Duration::from_secs(2),
        HttpServerBuilder::default(),
        "5s",
    );
    assert_eq!(r["behaviour"], "drop", "{r:#}");
    assert_eq!(r["mode"], "path_idle");
    assert_eq!(r["max_wait_ms"], 5000);
    assert_brackets(&r, 2000);
    // The probes between 1 s and 2 s start once 1 s was kept: the run
    // ends about one dead-path check after 1 s + 2 s, some 3 s (up to
    // about 5 s when the probe at exactly 2 s is kept). The promise is
    // 3 × max-wait plus the answers.
    assert!(took < Duration::from_secs(16), "took {took:?}: {r:#}");
    let wall = r["wall_time_s"].as_f64().expect("wall time");
    assert!(wall > 2.0 && wall <= took.as_secs_f64(), "{r:#}");
    let probes = r["probes"].as_array().expect("probes");
    assert_eq!(r["probes_run"], probes.len(), "{r:#}");
    assert!(
        probes.iter().any(|p| p["outcome"] == "drop")
            && probes.iter().any(|p| p["outcome"] == "kept"),
        "{r:#}"
    );
    assert!(
        r["summary"]
            .as_str()
            .is_some_and(|s| s.contains("forgotten flows are dropped silently")),
        "{r:#}"
    );
    let (_, stderr) = texts(&output);
    assert!(stderr.is_empty(), "unexpected stderr:\n{stderr}");
}

#[test]
fn a_middlebox_that_resets_forgotten_flows_is_reported_as_rst() {
    // 3 s is between two idle times of round 1 (2 s and 4 s): the second
    // round has to find it.
    let (_, r, took) = probe_path(
        Forgotten::Reset,
        Duration::from_secs(3),
        HttpServerBuilder::default(),
        "5s",
    );
    assert_eq!(r["behaviour"], "reset", "{r:#}");
    assert_brackets(&r, 3000);
    assert_eq!(
        r["rounds"], 1,
        "found by the probes between 2 s and 4 s: {r:#}"
    );
    assert!(
        r["summary"]
            .as_str()
            .is_some_and(|s| s.contains("forgotten flows are answered with RST")),
        "{r:#}"
    );
    // A reset answers at once: the probes between 2 s and 4 s started at
    // 2 s, so the run ends just after 2 s + 3 s.
    assert!(took < Duration::from_secs(10), "took {took:?}: {r:#}");
}

#[test]
fn a_path_without_a_limit_is_kept_for_the_whole_bound() {
    let server = server();
    let (stdout, stderr, took) =
        probe_texts(&["--path-idle", "--max-wait", "1s", &server.url("/")], 0);
    assert!(
        stdout.starts_with("the path kept an idle flow for the whole 1.00 s bound"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");

    let (output, _) = probe(&[
        "--path-idle",
        "--max-wait",
        "1s",
        "--json",
        &server.url("/"),
    ]);
    assert_exit(&output, 0);
    let r = report(&output);
    assert_eq!(r["behaviour"], "kept", "{r:#}");
    let (kept, lost) = bracket(&r);
    assert_eq!(lost, None, "{r:#}");
    assert!(kept.is_some_and(|k| k >= 1000), "{r:#}");
    assert_eq!(r["rounds"], 1, "{r:#}");
    // 250 ms, 500 ms, 1 s; the probes started in between once 250 ms (then
    // 500 ms) was kept are cancelled when the next one is kept too.
    let probes = r["probes"].as_array().expect("probes");
    let planned: Vec<u64> = probes
        .iter()
        .filter_map(|p| p["planned_idle_ms"].as_u64())
        .collect();
    assert!(
        [250, 500, 1000].iter().all(|d| planned.contains(d)),
        "{r:#}"
    );
    assert!(probes.iter().all(|p| p["outcome"] == "kept"), "{r:#}");
}

#[test]
fn a_server_that_closes_idle_connections_first_is_named() {
    let (_, r, took) = probe_path(
        Forgotten::Drop,
        Duration::from_secs(2),
        HttpServer::builder().idle_close(Duration::from_millis(800), CloseMode::Fin),
        "3s",
    );
    assert_eq!(r["behaviour"], "server_closed", "{r:#}");
    assert_brackets(&r, 800);
    // Dated by the kernel from the server's FIN.
    let close = r["server_idle_close_ms"].as_u64().expect("dated close");
    assert!((740..=860).contains(&close), "{r:#}");
    assert!(
        r["summary"]
            .as_str()
            .is_some_and(|s| s.contains("the server closed idle connections after ~")),
        "{r:#}"
    );
    // Found at checkout, no dead-path wait: about 0.5 s + 0.8 s.
    assert!(took < Duration::from_secs(6), "took {took:?}: {r:#}");
}

#[test]
fn an_unreachable_server_fails_quickly_and_clearly() {
    assert_unreachable_fails_quickly(&["--path-idle", "--max-wait", "5s"]);
}

// ---- `connpool probe URL`: the server's keep-alive behaviour ----

/// A testkit server with `builder`'s settings.
fn start(builder: HttpServerBuilder) -> HttpServer {
    builder.start().expect("the test server starts")
}

/// `connpool probe --json <args> URL` against a server, asserting exit 0;
/// the report and how long the run took.
fn probe_server(url: &str, args: &[&str]) -> (Value, Duration) {
    let mut all: Vec<&str> = vec!["--json"];
    all.extend_from_slice(args);
    all.push(url);
    let (output, took) = probe(&all);
    assert_exit(&output, 0);
    let (_, stderr) = texts(&output);
    assert!(stderr.is_empty(), "unexpected stderr:\n{stderr}");
    let r = report(&output);
    assert_eq!(r["mode"], "server", "{r:#}");
    (r, took)
}

/// Asserts the measured idle timeout is `expected_ms` within the promised
/// tolerance, `max(5 %, 50 ms)`, and the search converged.
fn assert_timeout(r: &Value, expected_ms: u64) {
    let idle = &r["idle"];
    let measured = idle["timeout_ms"].as_u64().expect("a timeout");
    let tolerance = (expected_ms / 20).max(50);
    assert!(
        measured.abs_diff(expected_ms) <= tolerance,
        "measured {measured} ms, expected {expected_ms} ± {tolerance} ms: {r:#}"
    );
    assert_eq!(idle["behaviour"], "closed", "{r:#}");
    assert_eq!(idle["converged"], true, "{r:#}");
}

/// Asserts the run took less than three times `timeout` plus `slack`.
fn assert_quick(took: Duration, timeout: Duration, slack: Duration, r: &Value) {
    assert!(
        took < timeout * 3 + slack,
        "took {took:?} for a {timeout:?} timeout: {r:#}"
    );
}

/// A FIN-closing server with an idle timeout of `after`: the probe finds
/// the FIN at checkout, the kernel dates it, the search stops there.
fn fin_timeout_is_dated(after: Duration, max_wait: &str) {
    let server = start(HttpServer::builder().idle_close(after, CloseMode::Fin));
    let (r, took) = probe_server(
        &server.url("/"),
        &["--max-wait", max_wait, "--max-requests", "200"],
    );
    let after_ms = after.as_millis() as u64;
    assert_timeout(&r, after_ms);
    let idle = &r["idle"];
    assert_eq!(idle["close_mode"], "fin", "{r:#}");
    assert_eq!(idle["dated"], true, "{r:#}");
    // Dated within a few ms, not just within the tolerance.
    let measured = idle["timeout_ms"].as_u64().expect("a timeout");
    assert!(measured.abs_diff(after_ms) <= 25, "{r:#}");
    // Stopped at the first probe past the timeout: one round, no narrowing.
    assert_eq!(r["rounds"], 1, "{r:#}");
    let summary = r["summary"][0].as_str().expect("summary");
    assert!(summary.contains("with a FIN"), "{summary}");
    // No limit below the bound: 200 requests served on one connection.
    let limit = &r["request_limit"];
    assert_eq!(limit["ended"], "not_reached", "{r:#}");
    assert_eq!(limit["at_least"], 200, "{r:#}");
    assert_eq!(limit["bounded_by"], "max_requests", "{r:#}");
    assert_eq!(r["keep_alive"]["advertised"], false, "{r:#}");
    // Just past a round value: done soon after the timeout.
    assert_quick(took, after, Duration::from_secs(3), &r);
    let wall = r["wall_time_s"].as_f64().expect("wall time");
    assert!(wall >= after.as_secs_f64(), "{r:#}");
}

#[test]
fn a_200ms_idle_timeout_closed_with_a_fin_is_dated() {
    fin_timeout_is_dated(Duration::from_millis(200), "2s");
}

#[test]
fn a_1s_idle_timeout_closed_with_a_fin_is_dated() {
    fin_timeout_is_dated(Duration::from_secs(1), "3s");
}

#[test]
fn a_5s_idle_timeout_closed_with_a_fin_is_dated() {
    fin_timeout_is_dated(Duration::from_secs(5), "10s");
}

#[test]
fn an_idle_timeout_closed_with_an_rst_is_bracketed() {
    let after = Duration::from_secs(1);
    let server = start(HttpServer::builder().idle_close(after, CloseMode::Rst));
    let (r, took) = probe_server(
        &server.url("/"),
        &["--max-wait", "3s", "--max-requests", "200"],
    );
    assert_timeout(&r, 1000);
    let idle = &r["idle"];
    assert_eq!(idle["close_mode"], "rst", "{r:#}");
    assert_eq!(idle["dated"], false, "{r:#}");
    let (Some(kept), Some(lost)) = (
        idle["bracket_ms"]["kept"].as_u64(),
        idle["bracket_ms"]["lost"].as_u64(),
    ) else {
        panic!("no bracket: {r:#}");
    };
    assert!(kept < lost && lost - kept <= (kept / 20).max(50), "{r:#}");
    assert!(
        r["summary"][0]
            .as_str()
            .is_some_and(|s| s.contains("with an RST")),
        "{r:#}"
    );
    // Not dated: about the round value under T plus T.
    assert_quick(took, after, Duration::from_secs(3), &r);
}

#[test]
fn an_unsolicited_408_before_the_close_is_named() {
    let after = Duration::from_millis(500);
    let server = start(
        HttpServer::builder()
            .idle_close(after, CloseMode::Fin)
            .idle_408(true),
    );
    let (r, took) = probe_server(
        &server.url("/"),
        &["--max-wait", "2s", "--max-requests", "100"],
    );
    assert_timeout(&r, 500);
    assert_eq!(r["idle"]["close_mode"], "unsolicited_response", "{r:#}");
    assert_quick(took, after, Duration::from_secs(3), &r);
}

#[test]
fn a_polite_request_limit_is_counted_exactly() {
    let server = start(
        HttpServer::builder()
            .idle_close(Duration::from_secs(1), CloseMode::Fin)
            .max_requests(7),
    );
    let (r, _) = probe_server(&server.url("/"), &["--max-wait", "3s"]);
    let limit = &r["request_limit"];
    assert_eq!(limit["requests"], 7, "{r:#}");
    assert_eq!(limit["said_connection_close"], true, "{r:#}");
    assert_eq!(limit["ended"], "connection_close", "{r:#}");
    assert_eq!(r["recommendation"]["max_requests_per_conn"], Value::Null);
    assert!(
        r["recommendation"]["nginx"]
            .as_str()
            .is_some_and(|s| s.contains("keepalive_requests 7;")),
        "{r:#}"
    );
    assert_timeout(&r, 1000);

    // The same in words.
    let (stdout, stderr, _) = probe_texts(&["--max-wait", "3s", &server.url("/")], 0);
    println!("{stdout}");
    assert!(
        stdout.contains(
            "request limit: 7 requests per connection; the 7th response says \
             `Connection: close`"
        ) && stdout
            .contains("idle timeout: 1.00 s: the server closes an idle connection with a FIN")
            && stdout.contains("recommendation: an idle timeout of 500 ms")
            && stdout
                .contains("Go:       &http.Transport{IdleConnTimeout: 500 * time.Millisecond}"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn a_rude_request_limit_is_counted_exactly() {
    let server = start(
        HttpServer::builder()
            .idle_close(Duration::from_secs(1), CloseMode::Fin)
            .close_after(5, CloseMode::Fin),
    );
    let (r, _) = probe_server(&server.url("/"), &["--max-wait", "3s"]);
    let limit = &r["request_limit"];
    assert_eq!(limit["requests"], 5, "{r:#}");
    assert_eq!(limit["said_connection_close"], false, "{r:#}");
    assert_eq!(limit["ended"], "closed_without_notice", "{r:#}");
    let rec = &r["recommendation"];
    assert_eq!(rec["max_requests_per_conn"], 5, "{r:#}");
    assert!(
        rec["connpool"]
            .as_str()
            .is_some_and(|s| s.contains(".max_requests_per_conn(Some(5))")),
        "{r:#}"
    );
    assert_timeout(&r, 1000);
}

#[test]
fn a_rude_request_limit_closed_with_an_rst_is_counted_exactly() {
    let server = start(
        HttpServer::builder()
            .idle_close(Duration::from_secs(1), CloseMode::Fin)
            .close_after(3, CloseMode::Rst),
    );
    let (r, _) = probe_server(&server.url("/"), &["--max-wait", "3s"]);
    let limit = &r["request_limit"];
    assert_eq!(limit["requests"], 3, "{r:#}");
    assert_eq!(limit["said_connection_close"], false, "{r:#}");
}

#[test]
fn a_true_keep_alive_header_is_confirmed() {
    let server = start(
        HttpServer::builder()
            .idle_close(Duration::from_secs(1), CloseMode::Fin)
            .keep_alive_header(1, Some(20))
            .max_requests(20),
    );
    let (r, took) = probe_server(&server.url("/"), &["--max-wait", "3s"]);
    let ka = &r["keep_alive"];
    assert_eq!(ka["advertised"], true, "{r:#}");
    assert_eq!(ka["timeout_s"], 1, "{r:#}");
    assert_eq!(ka["timeout_true"], true, "{r:#}");
    assert!(
        ka["timeout_difference_ms"]
            .as_i64()
            .is_some_and(|d| d.abs() <= 50),
        "{r:#}"
    );
    assert_eq!(ka["max"], 20, "{r:#}");
    assert_eq!(ka["max_counts_down"], false, "{r:#}");
    assert_eq!(ka["promised_requests"], 20, "{r:#}");
    assert_eq!(ka["max_true"], true, "{r:#}");
    assert_eq!(r["request_limit"]["requests"], 20, "{r:#}");
    assert_timeout(&r, 1000);
    assert_quick(took, Duration::from_secs(1), Duration::from_secs(3), &r);
}

#[test]
fn a_lying_keep_alive_header_is_caught() {
    // Advertises 5 s, closes after 1 s.
    let server = start(
        HttpServer::builder()
            .idle_close(Duration::from_secs(1), CloseMode::Fin)
            .keep_alive_header(5, None),
    );
    let (r, _) = probe_server(
        &server.url("/"),
        &["--max-wait", "8s", "--max-requests", "100"],
    );
    let ka = &r["keep_alive"];
    assert_eq!(ka["timeout_s"], 5, "{r:#}");
    assert_eq!(ka["timeout_true"], false, "{r:#}");
    assert!(
        ka["timeout_difference_ms"]
            .as_i64()
            .is_some_and(|d| (-4050..=-3950).contains(&d)),
        "{r:#}"
    );
    assert!(
        r["summary"][1]
            .as_str()
            .is_some_and(|s| s.contains("timeout=5 is FALSE")),
        "{r:#}"
    );
    assert_timeout(&r, 1000);
}

#[test]
fn a_server_that_keeps_idle_connections_is_kept_for_the_whole_bound() {
    let server = server();
    let (r, took) = probe_server(
        &server.url("/"),
        &["--max-wait", "1s", "--max-requests", "50"],
    );
    let idle = &r["idle"];
    assert_eq!(idle["behaviour"], "kept", "{r:#}");
    assert_eq!(idle["timeout_ms"], Value::Null, "{r:#}");
    assert!(
        idle["at_least_ms"].as_u64().is_some_and(|k| k >= 1000),
        "{r:#}"
    );
    assert_eq!(r["request_limit"]["at_least"], 50, "{r:#}");
    assert!(took < Duration::from_secs(4), "took {took:?}: {r:#}");
}

#[test]
fn nginx_keepalive_timeout_and_requests_are_reported() {
    let nginx = Nginx::builder()
        .keepalive_timeout(Duration::from_secs(2))
        .keepalive_requests(50)
        .start()
        .expect("nginx starts (apt-get install nginx)");
    let url = nginx.url("/");
    // JSON and words, at once.
    let words = {
        let url = url.clone();
        std::thread::spawn(move || probe(&["--max-wait", "5s", &url]))
    };
    let (r, took) = probe_server(&url, &["--max-wait", "5s"]);
    assert_timeout(&r, 2000);
    let idle = &r["idle"];
    assert_eq!(idle["close_mode"], "fin", "{r:#}");
    assert_eq!(idle["dated"], true, "{r:#}");
    let limit = &r["request_limit"];
    assert_eq!(limit["requests"], 50, "{r:#}");
    assert_eq!(limit["said_connection_close"], true, "{r:#}");
    assert_eq!(r["keep_alive"]["advertised"], false, "{r:#}");
    // T − 1 s, at least T/2, rounded down: 1 s, or 990 ms when the FIN
    // is dated a few ms early.
    let rec = &r["recommendation"];
    assert!(
        rec["idle_timeout_ms"]
            .as_u64()
            .is_some_and(|ms| (950..=1000).contains(&ms)),
        "{r:#}"
    );
    assert!(
        rec["nginx"].as_str().is_some_and(
            |s| s.contains("keepalive_timeout ") && s.contains("keepalive_requests 50;")
        ),
        "{r:#}"
    );
    assert_quick(took, Duration::from_secs(2), Duration::from_secs(3), &r);

    let (output, _) = words.join().expect("the words run");
    assert_exit(&output, 0);
    let (stdout, _) = texts(&output);
    println!("{stdout}");
    assert!(
        stdout.starts_with("idle timeout: 2.00 s: the server closes an idle connection with a FIN")
            && stdout.contains("request limit: 50 requests per connection; the 50th response says")
            && stdout.contains("keepalive_requests 50;"),
        "{stdout}"
    );
}

#[test]
fn a_server_without_keep_alive_cannot_be_measured() {
    // Polite: `Connection: close` on every response.
    let polite = start(HttpServer::builder().max_requests(1));
    let (stdout, stderr, took) = probe_texts(&["--max-wait", "2s", &polite.url("/")], 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("does not keep connections open"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // Rude: closes after every response without saying so.
    let rude = start(HttpServer::builder().close_after(1, CloseMode::Fin));
    let (_, stderr, took) = probe_texts(&["--max-wait", "2s", &rude.url("/")], 1);
    assert!(
        stderr.contains("closes every connection right after its first response"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn an_unreachable_server_fails_quickly_in_the_server_mode_too() {
    assert_unreachable_fails_quickly(&[]);
}

#[test]
fn max_requests_belongs_to_the_server_mode() {
    let (output, _) = probe(&["--path-idle", "--max-requests", "5", "http://127.0.0.1:1/"]);
    assert_exit(&output, 2);
}
