//! Silent drops, for real: a client, a middlebox that forgets idle flows
//! (conntrack with a short established timeout, nftables dropping or
//! resetting packets of forgotten flows) and a server, each in its own
//! network namespace (connpool-testkit's `NetChain`; needs root, as CI
//! runs). Every client below runs with connpool's default settings unless
//! a test says otherwise.
//!
//! The waits are on conditions, bounded: the middlebox's flow table is
//! polled until the flow is gone, the server's request counter until the
//! request arrived.

use std::time::{Duration, Instant};

use connpool::http::{Client, ReplayPolicy, Response, TraceStep};
use connpool::tcp::TcpKeepalive;
use connpool::{Acknowledged, Error, ErrorKind, EvictReason};
use connpool_testkit::http::{HttpServer, HttpServerBuilder};
use connpool_testkit::netns::{Forgotten, NetChain};

mod common;
use common::warm;

/// The "done means" of the dead-path issue: within 2 s of being sent.
const WITHIN: Duration = Duration::from_secs(2);

fn chain(forgotten: Forgotten, established: Duration) -> (NetChain, HttpServer) {
    let chain = NetChain::builder()
        .established_timeout(established)
        .forgotten(forgotten)
        .start()
        .expect("building the namespaces needs root, ip and nft (see .ci/run)");
    let server = chain
        .start_http_server(HttpServerBuilder::default())
        .unwrap();
    (chain, server)
}

/// Waits (bounded) until the middlebox remembers no flow at all: its
/// established timeout passed with the connection idle.
async fn until_forgotten(chain: &NetChain) -> Duration {
    let started = Instant::now();
    while !chain.tracked_flows().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "flow never forgotten"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

async fn post(client: &Client, server: &HttpServer, id: &str) -> Result<Response, Error> {
    post_to(client, server, "/", id).await
}

async fn post_to(
    client: &Client,
    server: &HttpServer,
    path: &str,
    id: &str,
) -> Result<Response, Error> {
    client
        .post(server.url(path))
        .header("x-request-id", id)
        .body("order")
        .send()
        .await
}

/// A GET of `/` with tracing on.
async fn traced_get(client: &Client, server: &HttpServer) -> Response {
    client
        .get(server.url("/"))
        .trace(true)
        .send()
        .await
        .unwrap()
}

/// A client that resends a request the peer never acknowledged.
fn resending_client() -> Client {
    Client::builder()
        .replay(ReplayPolicy::default().resend_unacknowledged(true))
        .build()
}

/// A client with TCP keepalive `keepalive` and a 30 s pool idle timeout.
fn keepalive_client(keepalive: TcpKeepalive) -> Client {
    Client::builder()
        .tcp_keepalive(Some(keepalive))
        .pool_idle_timeout(Some(Duration::from_secs(30)))
        .build()
}

fn retries(resp: &Response) -> Vec<ErrorKind> {
    let trace = resp.trace().expect("traced");
    trace
        .steps()
        .iter()
        .filter_map(|(_, step)| match step {
            TraceStep::Retry { error } => Some(*error),
            _ => None,
        })
        .collect()
}

#[test]
fn silent_drop_a_get_reused_after_the_flow_was_forgotten_is_resent_within_2s() {
    let (chain, server) = chain(Forgotten::Drop, Duration::from_secs(2));
    chain
        .client()
        .block_on(async {
            let client = Client::new();
            warm(&client, &server).await;
            let idle = until_forgotten(&chain).await;
            assert!(
                idle < Duration::from_secs(4),
                "reused within the idle timeout"
            );

            let sent = Instant::now();
            let resp = traced_get(&client, &server).await;
            let took = sent.elapsed();
            assert_eq!(resp.status(), 200);
            assert!(!resp.connection_reused(), "answered on a new connection");
            assert_eq!(retries(&resp), vec![ErrorKind::DeadPath]);
            assert!(took < WITHIN, "took {took:?}");
            let counters = client.stats().counters;
            assert_eq!(counters.evicted(EvictReason::DeadPath), 1, "{counters:?}");
            // The dropped copy never reached the server.
            assert_eq!(server.requests(), 2);
            assert_eq!(server.accepted(), 2);
        })
        .unwrap();
}

#[test]
fn silent_drop_a_post_fails_within_2s_saying_it_was_not_acknowledged() {
    let (chain, server) = chain(Forgotten::Drop, Duration::from_secs(2));
    chain
        .client()
        .block_on(async {
            let client = Client::new();
            post(&client, &server, "warm").await.unwrap();
            until_forgotten(&chain).await;

            let sent = Instant::now();
            let err = post(&client, &server, "p1").await.unwrap_err();
            let took = sent.elapsed();
            assert_eq!(err.kind(), ErrorKind::DeadPath, "{err}");
            assert!(took < WITHIN, "took {took:?}");
            let delivery = err.delivery().expect("delivery evidence");
            assert_eq!(delivery.acknowledged, Acknowledged::No, "{err}");
            assert!(delivery.retransmits >= 2, "{err}");
            assert_eq!(err.attempts(), Some(1), "not resent by default");
            assert!(
                err.to_string().contains("acknowledged by the peer: no"),
                "{err}"
            );
            assert!(err.may_have_been_processed(), "not provable: {err}");
            assert!(
                err.to_string().contains("most likely never arrived"),
                "{err}"
            );
            assert_eq!(server.processed("POST", "p1"), 0);

            // With the opt-in the same POST is resent, and arrives once.
            let resend = resending_client();
            post(&resend, &server, "warm2").await.unwrap();
            until_forgotten(&chain).await;
            let sent = Instant::now();
            let resp = post(&resend, &server, "p2").await.unwrap();
            assert_eq!(resp.status(), 200);
            assert!(sent.elapsed() < WITHIN);
            assert_eq!(server.processed("POST", "p2"), 1);
            assert!(server.duplicates().is_empty());
        })
        .unwrap();
}

#[test]
fn reset_middlebox_a_get_is_resent_and_a_post_says_it_was_not_acknowledged() {
    let (chain, server) = chain(Forgotten::Reset, Duration::from_secs(60));
    chain
        .client()
        .block_on(async {
            let client = Client::new();
            warm(&client, &server).await;
            chain.forget_flows().unwrap();
            let sent = Instant::now();
            let resp = traced_get(&client, &server).await;
            assert!(sent.elapsed() < WITHIN);
            assert_eq!(retries(&resp), vec![ErrorKind::ConnectionReset]);
            resp.bytes().await.unwrap();

            // Idle long enough for the ACK dating to tell "before the
            // write" from "after" (tens of milliseconds).
            tokio::time::sleep(Duration::from_millis(100)).await;
            chain.forget_flows().unwrap();
            let err = post(&client, &server, "p1").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
            assert!(err.may_have_been_processed());
            let delivery = err.delivery().expect("delivery evidence");
            assert_eq!(delivery.acknowledged, Acknowledged::No, "{err}");
            assert_eq!(server.processed("POST", "p1"), 0);

            let resend = resending_client();
            post(&resend, &server, "warm").await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            chain.forget_flows().unwrap();
            let resp = post(&resend, &server, "p2").await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(server.processed("POST", "p2"), 1);
        })
        .unwrap();
}

#[test]
fn a_slow_server_that_acknowledged_is_never_declared_dead() {
    let (chain, server) = chain(Forgotten::Drop, Duration::from_secs(60));
    chain
        .client()
        .block_on(async {
            let client = Client::new();
            warm(&client, &server).await;
            // Three dead-path checks' worth of silence, with the request
            // acknowledged at once.
            let resp = client
                .post(server.url("/slow-headers?ms=1500"))
                .header("x-request-id", "slow")
                .body("order")
                .trace(true)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert!(resp.connection_reused());
            assert!(retries(&resp).is_empty());
            assert_eq!(server.processed("POST", "slow"), 1);
        })
        .unwrap();
}

#[test]
fn a_server_that_processed_and_then_went_silent_gets_no_second_post() {
    let (chain, server) = chain(Forgotten::Drop, Duration::from_secs(60));
    chain
        .client()
        .block_on(async {
            let client = Client::builder()
                .response_header_timeout(Some(Duration::from_secs(2)))
                .build();
            warm(&client, &server).await;
            let request = post_to(&client, &server, "/slow-headers?ms=1000", "gone");
            let cut = async {
                while server.processed("POST", "gone") == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // Past any delayed ACK of the request, then the path dies.
                tokio::time::sleep(Duration::from_millis(300)).await;
                chain.blackhole(true).unwrap();
            };
            let (result, ()) = tokio::join!(request, cut);
            let err = result.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ResponseHeaderTimeout, "{err}");
            assert!(err.may_have_been_processed());
            assert_eq!(err.attempts(), Some(1));
            assert_eq!(server.processed("POST", "gone"), 1);
        })
        .unwrap();
}

#[test]
fn keepalive_keeps_an_idle_flow_remembered() {
    let (chain, server) = chain(Forgotten::Drop, Duration::from_secs(2));
    chain
        .client()
        .block_on(async {
            let client = keepalive_client(TcpKeepalive {
                idle: Duration::from_secs(1),
                interval: Duration::from_secs(1),
                retries: 3,
            });
            warm(&client, &server).await;
            // Twice the middlebox's timeout, idle but for the probes.
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert!(!chain.tracked_flows().unwrap().is_empty());
            let resp = traced_get(&client, &server).await;
            assert!(resp.connection_reused());
            assert!(retries(&resp).is_empty());
        })
        .unwrap();
}

#[test]
fn keepalive_finds_a_dead_flow_before_checkout() {
    let (chain, server) = chain(Forgotten::Drop, Duration::from_secs(60));
    chain
        .client()
        .block_on(async {
            let keepalive = TcpKeepalive {
                idle: Duration::from_secs(1),
                interval: Duration::from_secs(1),
                retries: 2,
            };
            let client = keepalive_client(keepalive);
            warm(&client, &server).await;
            chain.forget_flows().unwrap();
            // The kernel fails the socket after idle + retries x interval
            // (the user timeout follows it); wait that, with a margin.
            tokio::time::sleep(keepalive.gives_up_after() + Duration::from_millis(1500)).await;
            let sent = Instant::now();
            let resp = traced_get(&client, &server).await;
            assert!(
                !resp.connection_reused(),
                "the dead one was evicted at checkout"
            );
            assert!(
                retries(&resp).is_empty(),
                "found before any request was written"
            );
            assert!(sent.elapsed() < Duration::from_millis(500));
            let counters = client.stats().counters;
            assert_eq!(counters.evicted_stale(), 1, "{counters:?}");
        })
        .unwrap();
}
