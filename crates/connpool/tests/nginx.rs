//! Interop with a real nginx (installed by `.ci/run`): gaps between
//! requests straddle nginx's `keepalive_timeout`, so nginx closes idle
//! connections just before, during and just after the client reuses them.
//! GETs and PUTs must never fail; POSTs must never be answered twice.

mod common;
mod straddle;

use std::collections::HashMap;
use std::time::Duration;

use connpool::http::Client;
use connpool_testkit::nginx::Nginx;

/// Runs `streams` sequential streams at once, each with its own client
/// (its own pool), so a connection's idle time is the stream's gap.
/// Returns the tally and the clients.
async fn run_streams(
    label: &'static str,
    make_client: impl Fn() -> Client,
    url: &str,
    streams: usize,
    n: usize,
    gaps: std::ops::RangeInclusive<Duration>,
    seed: u64,
) -> (straddle::Tally, Vec<Client>) {
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    for s in 0..streams {
        let client = make_client();
        clients.push(client.clone());
        let url = url.to_string();
        let (lo, hi) = (*gaps.start(), *gaps.end());
        tasks.push(tokio::spawn(async move {
            straddle::stream(
                &client,
                &url,
                n,
                lo,
                hi,
                &format!("{label}{s}"),
                seed + s as u64,
            )
            .await
        }));
    }
    let mut tally = straddle::Tally::default();
    for t in tasks {
        tally.merge(t.await.unwrap());
    }
    (tally, clients)
}

fn check(nginx: &Nginx, tally: &straddle::Tally, label: &str) {
    assert!(
        tally.replayable_errors.is_empty(),
        "{label}: {} GET/PUT errors: {:#?}",
        tally.replayable_errors.len(),
        tally.replayable_errors
    );
    let answered = nginx.answered_requests();
    let dups = duplicates(&answered);
    let post_dups: Vec<_> = dups.iter().filter(|(m, _, _)| m == "POST").collect();
    assert!(
        post_dups.is_empty(),
        "{label}: POSTs answered twice: {post_dups:?}"
    );
    // A POST the client said was never sent was indeed never answered.
    println!(
        "{label}: {} ok, {} reused, {} retried, {} POST errors, {} answered by nginx",
        tally.ok,
        tally.reused,
        tally.retried,
        tally.post_errors,
        answered.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_straddling_a_one_second_keepalive_timeout() {
    let nginx = tokio::task::spawn_blocking(|| {
        Nginx::builder()
            .keepalive_timeout(Duration::from_secs(1))
            .start()
    })
    .await
    .unwrap()
    .expect("nginx must be installed (see .ci/run)");
    let url = nginx.url("/echo");
    // Learning off: every straddle is met by the peek or the retry.
    let naive = || {
        Client::builder()
            .pool_idle_timeout(Some(Duration::from_secs(30)))
            .learn_idle_timeout(false)
            .trace_requests(true)
            .build()
    };
    // Learning on: learns nginx's timeout from its first close.
    let learning = || {
        Client::builder()
            .pool_idle_timeout(Some(Duration::from_secs(30)))
            .trace_requests(true)
            .build()
    };
    let lo = Duration::from_millis(900);
    let hi = Duration::from_millis(1100);
    let ((a, _), (b, learners)) = tokio::join!(
        run_streams("a", naive, &url, 4, 10, lo..=hi, 1),
        run_streams("b", learning, &url, 4, 10, lo..=hi, 100),
    );
    check(&nginx, &a, "peek and retry");
    check(&nginx, &b, "learning");
    assert!(a.reused > 0, "some gaps are under the timeout: {a:?}");
    let learned = learners[0].learned_idle_timeout(url.as_str());
    println!("learned nginx's keepalive_timeout as {learned:?}");
    let learned = learned.expect("nginx's closes were seen");
    assert!(
        learned >= Duration::from_millis(900) && learned <= Duration::from_millis(1150),
        "learned {learned:?} for keepalive_timeout 1s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_soak_against_nginx_with_a_short_keepalive_timeout() {
    let nginx = tokio::task::spawn_blocking(|| {
        Nginx::builder()
            .keepalive_timeout(Duration::from_millis(100))
            .keepalive_requests(7)
            .start()
    })
    .await
    .unwrap()
    .expect("nginx must be installed (see .ci/run)");
    let url = nginx.url("/echo");
    let client = || {
        Client::builder()
            .learn_idle_timeout(false)
            .trace_requests(true)
            .build()
    };
    let n = soak_requests() / 8;
    let (tally, _) = run_streams(
        "soak",
        client,
        &url,
        8,
        n,
        Duration::from_millis(80)..=Duration::from_millis(120),
        7,
    )
    .await;
    check(&nginx, &tally, "nginx soak");
    assert_eq!(tally.ok + tally.post_errors, (n * 8) as u64);
}

fn soak_requests() -> usize {
    std::env::var("CONNPOOL_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2400)
}

/// Requests answered more than once, from a server's (method, id) list.
pub fn duplicates(answered: &[(String, String)]) -> Vec<(String, String, usize)> {
    let mut counts: HashMap<&(String, String), usize> = HashMap::new();
    for pair in answered {
        *counts.entry(pair).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((m, id), n)| (m.clone(), id.clone(), n))
        .collect()
}
