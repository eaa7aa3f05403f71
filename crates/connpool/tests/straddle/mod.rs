//! Sequential requests with gaps that straddle a server's idle timeout:
//! the workload behind the interop and soak tests.

use std::time::Duration;

use connpool::Error;
use connpool::http::Client;

use super::common::Rng;

/// What one stream of requests saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    /// Failures of GET and PUT: must stay zero.
    pub replayable_errors: Vec<String>,
    /// POSTs that failed, all with `may_have_been_processed()`.
    pub post_errors: u64,
    /// POST failures claiming nothing was sent (must match the server).
    pub post_errors_unsent: u64,
    pub reused: u64,
    pub retried: u64,
    /// (method, id) of every request sent.
    pub sent: Vec<(String, String)>,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.replayable_errors.extend(other.replayable_errors);
        self.post_errors += other.post_errors;
        self.post_errors_unsent += other.post_errors_unsent;
        self.reused += other.reused;
        self.retried += other.retried;
        self.sent.extend(other.sent);
    }
}

/// A gap drawn uniformly from `[lo, hi]`.
fn gap(rng: &mut Rng, lo: Duration, hi: Duration) -> Duration {
    let span = (hi - lo).as_micros() as u64 + 1;
    lo + Duration::from_micros(rng.below(span))
}

/// Sends `n` requests one after another (GET, PUT, POST in turn) to
/// `base` + `path`, sleeping a gap drawn from `[lo, hi]` before each.
pub async fn stream(
    client: &Client,
    url: &str,
    n: usize,
    lo: Duration,
    hi: Duration,
    stream_id: &str,
    seed: u64,
) -> Tally {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    for i in 0..n {
        tokio::time::sleep(gap(&mut rng, lo, hi)).await;
        let method = ["GET", "PUT", "POST"][i % 3];
        let id = format!("s{stream_id}-r{i}");
        tally.sent.push((method.to_string(), id.clone()));
        let mut builder = client
            .request_builder(method.parse().unwrap(), url)
            .header("x-request-id", id.as_str());
        if method != "GET" {
            builder = builder.body(format!("body of {id}"));
        }
        let result = match builder.send().await {
            Ok(resp) => {
                if resp.connection_reused() {
                    tally.reused += 1;
                }
                if resp.trace().is_some_and(|t| {
                    t.contains(|s| matches!(s, connpool::http::TraceStep::Retry { .. }))
                }) {
                    tally.retried += 1;
                }
                resp.bytes().await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => tally.ok += 1,
            Err(e) if method == "POST" => record_post_error(&mut tally, &e),
            Err(e) => tally
                .replayable_errors
                .push(format!("{method} {id} (seed {seed}): {e}")),
        }
    }
    tally
}

fn record_post_error(tally: &mut Tally, e: &Error) {
    tally.post_errors += 1;
    if !e.may_have_been_processed() {
        tally.post_errors_unsent += 1;
    }
}
