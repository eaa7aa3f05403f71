//! A bounded soak: sequential GET, PUT and POST with gaps straddling the
//! idle timeout of every kind of fault server, many streams at once.
//! Statistical by nature (it is the race tests' complement, not a
//! replacement): GETs and PUTs must never fail, no POST may be processed
//! twice, and a POST that failed must say it may have been processed.
//!
//! `CONNPOOL_SOAK_REQUESTS` sets the total (default 3000).

mod common;
mod straddle;

use std::time::Duration;

use connpool::http::Client;
use connpool_testkit::CloseMode;
use connpool_testkit::http::{HttpServer, HttpServerBuilder};

const IDLE: Duration = Duration::from_millis(40);
const STREAMS: usize = 4;

async fn soak(
    label: &'static str,
    builder: HttpServerBuilder,
    n: usize,
    gaps: (Duration, Duration),
    learn: bool,
) -> String {
    let server = builder.start().unwrap();
    let url = server.url("/echo");
    let mut tasks = Vec::new();
    for s in 0..STREAMS {
        let client = Client::builder()
            .learn_idle_timeout(learn)
            .trace_requests(true)
            .build();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            straddle::stream(
                &client,
                &url,
                n,
                gaps.0,
                gaps.1,
                &format!("{label}{s}"),
                s as u64 * 7919 + label.len() as u64,
            )
            .await
        }));
    }
    let mut tally = straddle::Tally::default();
    for t in tasks {
        tally.merge(t.await.unwrap());
    }
    assert!(
        tally.replayable_errors.is_empty(),
        "{label}: {} GET/PUT errors: {:#?}",
        tally.replayable_errors.len(),
        tally.replayable_errors
    );
    let post_dups: Vec<_> = server
        .duplicates()
        .into_iter()
        .filter(|(method, _, _)| method == "POST")
        .collect();
    assert!(
        post_dups.is_empty(),
        "{label}: POSTs processed twice: {post_dups:?}"
    );
    assert_eq!(
        tally.post_errors_unsent, 0,
        "{label}: a failed POST claimed it was not sent"
    );
    assert_eq!(tally.ok + tally.post_errors, (n * STREAMS) as u64);
    format!(
        "{label:>14}: {} ok, {} reused, {} retried, {} POST errors, {} closed by server",
        tally.ok,
        tally.reused,
        tally.retried,
        tally.post_errors,
        server.closed_by_server()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn straddling_gaps_against_every_fault_server() {
    let total: usize = std::env::var("CONNPOOL_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let n = (total / 6 / STREAMS).max(3);
    let b = HttpServer::builder;
    let straddle = (
        IDLE - Duration::from_millis(10),
        IDLE + Duration::from_millis(10),
    );
    // Learning ignores closes within 100 ms of a response (request
    // limits, not idle timeouts): a longer timeout, fewer requests, and
    // gaps from well under the learned deadline to past the timeout.
    let slow = Duration::from_millis(150);
    let learning_gaps = (Duration::from_millis(60), Duration::from_millis(160));
    let fin = CloseMode::Fin;
    let rst = CloseMode::Rst;
    let reports = tokio::join!(
        soak("idle-fin", b().idle_close(IDLE, fin), n, straddle, false),
        soak("idle-rst", b().idle_close(IDLE, rst), n, straddle, false),
        soak(
            "idle-408",
            b().idle_close(IDLE, fin).idle_408(true),
            n,
            straddle,
            false
        ),
        soak("after-3-fin", b().close_after(3, fin), n, straddle, false),
        soak("after-3-rst", b().close_after(3, rst), n, straddle, false),
        soak(
            "idle-learning",
            b().idle_close(slow, fin),
            n / 3 + 3,
            learning_gaps,
            true
        ),
    );
    for report in [
        reports.0, reports.1, reports.2, reports.3, reports.4, reports.5,
    ] {
        println!("{report}");
    }
}
