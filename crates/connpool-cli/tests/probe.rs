//! Runs the built `connpool probe --path-idle` against real paths and
//! checks what it measured.
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

/// `connpool probe <args>` on this host, and how long it took.
fn probe(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = common::connpool("probe", args);
    (output, started.elapsed())
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
    let (chain, server) = chain(
        Forgotten::Drop,
        Duration::from_secs(2),
        HttpServerBuilder::default(),
    );
    let (output, took) = probe_in(
        &chain,
        &[
            "--path-idle",
            "--max-wait",
            "5s",
            "--json",
            &server.url("/"),
        ],
    );
    assert_exit(&output, 0);
    let r = report(&output);
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
    let (chain, server) = chain(
        Forgotten::Reset,
        Duration::from_secs(3),
        HttpServerBuilder::default(),
    );
    let (output, took) = probe_in(
        &chain,
        &[
            "--path-idle",
            "--max-wait",
            "5s",
            "--json",
            &server.url("/"),
        ],
    );
    assert_exit(&output, 0);
    let r = report(&output);
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
    let (output, took) = probe(&["--path-idle", "--max-wait", "1s", &server.url("/")]);
    assert_exit(&output, 0);
    let (stdout, stderr) = texts(&output);
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
    let (chain, server) = chain(
        Forgotten::Drop,
        Duration::from_secs(2),
        HttpServer::builder().idle_close(Duration::from_millis(800), CloseMode::Fin),
    );
    let (output, took) = probe_in(
        &chain,
        &[
            "--path-idle",
            "--max-wait",
            "3s",
            "--json",
            &server.url("/"),
        ],
    );
    assert_exit(&output, 0);
    let r = report(&output);
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
    let url = format!("http://127.0.0.1:{}/", unused_port());
    let (output, took) = probe(&["--path-idle", "--max-wait", "5s", &url]);
    assert_exit(&output, 1);
    let (stdout, stderr) = texts(&output);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("connpool probe: cannot measure: the request to")
            && stderr.contains("connect_refused"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn without_path_idle_it_says_what_exists() {
    let server = server();
    let (output, _) = probe(&[&server.url("/")]);
    assert_exit(&output, 2);
    let (_, stderr) = texts(&output);
    assert!(
        stderr.contains("only --path-idle is implemented yet"),
        "{stderr}"
    );
    assert_eq!(server.requests(), 0);
}
