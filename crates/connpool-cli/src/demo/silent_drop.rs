//! `connpool demo`'s last section: a silent drop, through a real middlebox.
//!
//! Load balancers, NAT gateways and stateful firewalls forget a TCP flow
//! that stayed idle too long, and from then on drop its packets without a
//! FIN or an RST. Neither end is told. A pooled connection that sat idle
//! through it still looks established, so a request written into it is
//! retransmitted into the void and its caller waits until the kernel gives
//! up: about 15 minutes with default settings. Loopback cannot show this
//! (nothing sits between the two ends), so this section builds the real
//! thing with connpool-testkit's [`NetChain`]: a client, a middlebox (the
//! kernel's own conntrack and nftables, forgetting flows idle for
//! [`MIDDLEBOX_IDLE`]) and a server, each in its own network namespace.
//!
//! Three clients, side by side, each send one request, stay idle until the
//! middlebox has forgotten their connections (its flow table is polled, not
//! guessed), then send a second request on the same connection, at once:
//!
//! * the demo's [`NaiveHttp`] client, kernel defaults, a `GET` written by
//!   hand. It waits; the section gives up on it after [`PATIENCE`] rather
//!   than the kernel's quarter of an hour.
//! * connpool's [`Client`], default settings, sending a `GET`. While it
//!   waits for the answer it reads the socket's `TCP_INFO`: nothing
//!   acknowledged since the write, and the retransmissions unanswered, mean
//!   the path is dead and the request never reached the server. A `GET` is
//!   replayable, so it is resent at once on a fresh connection.
//! * another such client sending a `POST`, which is not replayable: it fails
//!   fast with [`ErrorKind::DeadPath`], and the error says no byte was
//!   acknowledged, so its caller knows the server never saw it.
//!
//! The server counts what it processed (by method and `x-request-id`), so
//! the table can say which second requests reached it.
//!
//! Namespaces need root and the `ip` and `nft` tools. Without them the
//! section is skipped and says why: the demo's exit status does not depend
//! on the privileges it was given. When the section runs, connpool must
//! keep its promise (the `GET` answered on a fresh connection, the `POST`
//! failed as a dead path, unacknowledged and never processed, each within
//! [`PROMISE`]) or the demo fails, as it does when connpool fails in the
//! race scenarios. The naive client hanging is the story, not a failure.

use std::fmt::{self, Write as _};
use std::io;
use std::time::{Duration, Instant};

use connpool::http::{Client, Response, TraceStep};
use connpool::{Acknowledged, Error, ErrorKind};
use connpool_testkit::http::{HttpServer, HttpServerBuilder};
use connpool_testkit::netns::{Forgotten, NetChain};
use serde::Serialize;

use super::Section;
use crate::naive::NaiveHttp;
use crate::report::{Align, Table};

/// How long the middlebox remembers an idle flow: short, so the demo need
/// not wait the minutes real middleboxes do (AWS NLB: 350 s).
const MIDDLEBOX_IDLE: Duration = Duration::from_secs(1);

/// How long each second request may take before the section stops waiting
/// for it. Twice [`PROMISE`]: long enough to show the naive client is not
/// merely slow, short enough to keep the section under ten seconds.
const PATIENCE: Duration = Duration::from_secs(4);

/// What connpool promises on a dead path: the `GET` answered, the `POST`
/// failed, within this long of being sent.
const PROMISE: Duration = Duration::from_secs(2);

/// How long the section waits for the middlebox to forget the idle flows
/// before it calls the run broken (something kept them busy).
const FORGET_LIMIT: Duration = Duration::from_secs(6);

/// How often the middlebox's flow table is read while waiting.
const FORGET_POLL: Duration = Duration::from_millis(20);

/// Without `/proc/net/nf_conntrack` the flow table cannot be read: the
/// section then waits [`MIDDLEBOX_IDLE`] plus this (as the testkit's
/// `NetChain::wait_forgotten` does).
const NO_PROCFS_MARGIN: Duration = Duration::from_millis(1500);

/// What the section did.
#[derive(Debug)]
pub enum Outcome {
    /// The namespaces could not be built (not root, no `ip` or `nft`, a
    /// kernel without them): nothing ran. Not a failure.
    Skipped {
        /// Why, as the testkit said it.
        reason: String,
    },
    /// The namespaces were built, but the section could not tell its story
    /// (the server did not start, a warm-up request failed, the middlebox
    /// never forgot the flows). A failure: the demo did not show what it
    /// claims.
    Broken {
        /// What went wrong.
        error: String,
    },
    /// The three clients ran; see [`Story`].
    Ran(Box<Story>),
}

/// What the three clients saw of their second request, in the order
/// naive, connpool `GET`, connpool `POST`.
#[derive(Debug)]
pub struct Story {
    /// How long the clients stayed idle until the middlebox had forgotten
    /// every flow.
    forgotten_after: Duration,
    clients: [ClientRun; 3],
}

/// One client's second request.
#[derive(Debug)]
struct ClientRun {
    role: Role,
    fate: Fate,
    /// How many times the server processed this request (its
    /// `x-request-id`).
    processed: u64,
}

/// Which client, hence what it sent and what it must achieve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Naive,
    ConnpoolGet,
    ConnpoolPost,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Naive => "naive",
            Role::ConnpoolGet => "connpool GET",
            Role::ConnpoolPost => "connpool POST",
        }
    }

    fn sent(self) -> &'static str {
        match self {
            Role::Naive | Role::ConnpoolGet => "GET /",
            Role::ConnpoolPost => "POST / (a body)",
        }
    }

    /// The `x-request-id` of its request number `n` (1: warm-up, 2: after
    /// the middlebox forgot the flow).
    fn request_id(self, n: u32) -> String {
        let name = match self {
            Role::Naive => "naive",
            Role::ConnpoolGet => "get",
            Role::ConnpoolPost => "post",
        };
        format!("{name}-{n}")
    }

    fn method(self) -> &'static str {
        match self {
            Role::Naive | Role::ConnpoolGet => "GET",
            Role::ConnpoolPost => "POST",
        }
    }
}

/// How a second request ended.
#[derive(Debug)]
enum Fate {
    /// A response arrived, whole.
    Answered {
        after: Duration,
        status: u16,
        /// On a new connection rather than the idle one.
        fresh: bool,
        /// Why the request was resent, once per retry (from its trace).
        retried_after: Vec<ErrorKind>,
    },
    /// The request failed with an error.
    Failed {
        after: Duration,
        kind: ErrorKind,
        /// The kernel's evidence, when connpool gave it.
        acknowledged: Option<Acknowledged>,
        /// The whole error, as its caller would log it.
        message: String,
    },
    /// Nothing came back within [`PATIENCE`]; the section stopped waiting.
    NoAnswer,
}

impl Fate {
    fn failed(after: Duration, err: &Error) -> Fate {
        Fate::Failed {
            after,
            kind: err.kind(),
            acknowledged: err.delivery().map(|d| d.acknowledged),
            message: err.to_string(),
        }
    }
}

/// Runs the section and returns what happened. With `announce`, says on
/// stdout what is about to happen once the namespaces are built (the
/// clients then wait a few seconds in silence). Building namespaces and
/// running code inside them blocks the calling thread, so it all runs on a
/// blocking thread of the demo's runtime.
pub async fn run(announce: bool) -> Outcome {
    let section = tokio::task::spawn_blocking(move || {
        let chain = NetChain::builder()
            .established_timeout(MIDDLEBOX_IDLE)
            .forgotten(Forgotten::Drop)
            .start();
        with_chain(chain, announce)
    });
    match section.await {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Broken {
            error: format!("the section did not finish: {err}"),
        },
    }
}

/// The section, given the result of building the namespaces: skipped if
/// they could not be built, else the story.
fn with_chain(chain: io::Result<NetChain>, announce: bool) -> Outcome {
    let chain = match chain {
        Ok(chain) => chain,
        Err(err) => {
            return Outcome::Skipped {
                reason: err.to_string(),
            };
        }
    };
    // Said before the clients run, so the reader knows what the next
    // seconds of silence are.
    if announce {
        println!(
            "silent drop: a middlebox (conntrack and nftables, in network namespaces) forgets \
             flows\nidle for {} s and then drops their packets without FIN or RST. Three \
             clients each send a\nrequest, stay idle until the middlebox has forgotten their \
             connections, and send another\non the same connection; nobody retries by hand.",
            MIDDLEBOX_IDLE.as_secs()
        );
    }
    let story = chain
        .start_http_server(HttpServerBuilder::default())
        .and_then(|server| chain.client().block_on(tell(&chain, &server))?);
    match story {
        Ok(story) => Outcome::Ran(Box::new(story)),
        Err(err) => Outcome::Broken {
            error: err.to_string(),
        },
    }
}

/// Runs the three clients in the client namespace (the caller's thread is
/// there): warm-up, the wait for the middlebox to forget, the second
/// requests side by side.
async fn tell(chain: &NetChain, server: &HttpServer) -> io::Result<Story> {
    let url = server.url("/");
    let naive = NaiveHttp::new(server.addr());
    let get_client = Client::new();
    let post_client = Client::new();

    // One request each; every connection goes back to its pool, idle.
    // Bounded: a path broken from the start must not hang the demo.
    let warm = async {
        naive
            .get("/", &Role::Naive.request_id(1))
            .await?
            .bytes()
            .await?;
        let connpool = async {
            get(&get_client, &url, &Role::ConnpoolGet.request_id(1))
                .await?
                .bytes()
                .await?;
            post(&post_client, &url, &Role::ConnpoolPost.request_id(1))
                .await?
                .bytes()
                .await
        };
        connpool.await.map_err(io::Error::other)?;
        Ok::<_, io::Error>(())
    };
    match tokio::time::timeout(PATIENCE, warm).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            return Err(io::Error::other(format!("a warm-up request failed: {err}")));
        }
        Err(_) => {
            return Err(io::Error::other(format!(
                "a warm-up request got no answer within {PATIENCE:?}"
            )));
        }
    }

    let forgotten_after = until_forgotten(chain).await?;

    let (naive_fate, get_fate, post_fate) = tokio::join!(
        second_naive(&naive),
        second_get(&get_client, &url),
        second_post(&post_client, &url),
    );
    let run = |role: Role, fate: Fate| ClientRun {
        role,
        fate,
        processed: server.processed(role.method(), &role.request_id(2)),
    };
    Ok(Story {
        forgotten_after,
        clients: [
            run(Role::Naive, naive_fate),
            run(Role::ConnpoolGet, get_fate),
            run(Role::ConnpoolPost, post_fate),
        ],
    })
}

/// Waits until the middlebox tracks no flow at all (every client is idle),
/// and returns how long that took.
async fn until_forgotten(chain: &NetChain) -> io::Result<Duration> {
    let started = Instant::now();
    loop {
        match chain.tracked_flows() {
            Ok(flows) if flows.is_empty() => return Ok(started.elapsed()),
            Ok(flows) if started.elapsed() >= FORGET_LIMIT => {
                return Err(io::Error::other(format!(
                    "the middlebox still tracked {} flow(s) after {FORGET_LIMIT:?} idle \
                     (its timeout is {MIDDLEBOX_IDLE:?}): something kept them busy",
                    flows.len()
                )));
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                tokio::time::sleep(chain.established_timeout() + NO_PROCFS_MARGIN).await;
                return Ok(started.elapsed());
            }
            Err(err) => return Err(err),
        }
        tokio::time::sleep(FORGET_POLL).await;
    }
}

/// What a second request that was answered tells: its status, whether
/// it came on a new connection, and why it was resent (once per retry).
type Answer = (u16, bool, Vec<ErrorKind>);

/// The fate of a second request, `exchange` (sent now, read to its end):
/// timed from now, given up on after [`PATIENCE`].
async fn fate(exchange: impl Future<Output = Result<Answer, Error>>) -> Fate {
    let sent = Instant::now();
    match tokio::time::timeout(PATIENCE, exchange).await {
        Ok(Ok((status, fresh, retried_after))) => Fate::Answered {
            after: sent.elapsed(),
            status,
            fresh,
            retried_after,
        },
        Ok(Err(err)) => Fate::failed(sent.elapsed(), &err),
        Err(_) => Fate::NoAnswer,
    }
}

/// The naive client's second request, on its idle connection.
async fn second_naive(client: &NaiveHttp) -> Fate {
    fate(async {
        let resp = client
            .get("/", &Role::Naive.request_id(2))
            .await
            .map_err(Error::from_io)?;
        let status = resp.status();
        resp.bytes().await.map_err(Error::from_io)?;
        Ok((status, client.created() > 1, Vec::new()))
    })
    .await
}

/// connpool's second `GET`, traced to show why it was resent.
async fn second_get(client: &Client, url: &str) -> Fate {
    let request = client
        .get(url)
        .header("x-request-id", Role::ConnpoolGet.request_id(2))
        .trace(true)
        .send();
    fate(connpool_exchange(request)).await
}

/// connpool's second `POST`.
async fn second_post(client: &Client, url: &str) -> Fate {
    let id = Role::ConnpoolPost.request_id(2);
    fate(connpool_exchange(post(client, url, &id))).await
}

/// A connpool request, read to its end. Why it was resent is known only
/// when it was traced (empty otherwise).
async fn connpool_exchange(
    request: impl Future<Output = Result<Response, Error>>,
) -> Result<Answer, Error> {
    let resp = request.await?;
    let status = resp.status().as_u16();
    let fresh = !resp.connection_reused();
    let retried_after = retries(&resp);
    resp.bytes().await?;
    Ok((status, fresh, retried_after))
}

async fn get(client: &Client, url: &str, id: &str) -> Result<Response, Error> {
    client.get(url).header("x-request-id", id).send().await
}

async fn post(client: &Client, url: &str, id: &str) -> Result<Response, Error> {
    client
        .post(url)
        .header("x-request-id", id)
        .body("order")
        .send()
        .await
}

/// Why the request was resent, once per retry, from its trace.
fn retries(resp: &Response) -> Vec<ErrorKind> {
    resp.trace()
        .map(|trace| {
            trace
                .steps()
                .iter()
                .filter_map(|(_, step)| match step {
                    TraceStep::Retry { error } => Some(*error),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Story {
    /// Where connpool broke its promise; empty when it kept it. The naive
    /// client is not judged: hanging is what it does.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for run in &self.clients {
            match (run.role, &run.fate) {
                (Role::Naive, _) => {}
                (
                    Role::ConnpoolGet,
                    Fate::Answered {
                        after,
                        fresh: true,
                        retried_after,
                        ..
                    },
                ) if *after <= PROMISE && retried_after.contains(&ErrorKind::DeadPath) => {}
                (Role::ConnpoolGet, fate) => problems.push(format!(
                    "the GET was not answered on a fresh connection within {} s after finding \
                     the dead path: {}",
                    PROMISE.as_secs(),
                    describe(fate)
                )),
                (
                    Role::ConnpoolPost,
                    Fate::Failed {
                        after,
                        kind: ErrorKind::DeadPath,
                        acknowledged: Some(Acknowledged::No),
                        ..
                    },
                ) if *after <= PROMISE => {}
                (Role::ConnpoolPost, fate) => problems.push(format!(
                    "the POST did not fail within {} s as a dead path with its bytes \
                     unacknowledged: {}",
                    PROMISE.as_secs(),
                    describe(fate)
                )),
            }
            if run.role == Role::ConnpoolPost && run.processed > 0 {
                problems.push(format!(
                    "the server processed the POST's second copy {} time(s)",
                    run.processed
                ));
            }
        }
        problems
    }
}

/// A second request's fate, in words, with its time.
fn describe(fate: &Fate) -> String {
    match fate {
        Fate::Answered {
            after,
            status,
            fresh,
            retried_after,
        } => {
            let mut text = format!("ok ({status}) after {} ms", after.as_millis());
            text.push_str(if *fresh {
                " on a fresh connection"
            } else {
                " on the same connection"
            });
            if !retried_after.is_empty() {
                let reasons: Vec<&str> = retried_after.iter().map(|k| k.as_str()).collect();
                let _ = write!(text, " (resent after {})", reasons.join(", "));
            }
            text
        }
        Fate::Failed { after, message, .. } => {
            format!("failed after {} ms: {message}", after.as_millis())
        }
        Fate::NoAnswer => format!("no answer after {} s", PATIENCE.as_secs()),
    }
}

/// What the server did with a request it may have seen.
fn processed(count: u64) -> String {
    match count {
        0 => "no".to_string(),
        1 => "once".to_string(),
        n => format!("{n} times"),
    }
}

/// Prints the section: the skip reason, the error, or the table of the
/// second requests, an explanation and the verdict. Ends with a newline.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Skipped { reason } => writeln!(
                f,
                "silent drop: skipped — it needs network namespaces (run as root with ip and nft \
                 installed): {}",
                // The testkit's errors can span lines (a command's output).
                reason.trim_end().replace('\n', "\n  ")
            ),
            Outcome::Broken { error } => writeln!(
                f,
                "silent drop: could not run: {}",
                error.trim_end().replace('\n', "\n  ")
            ),
            Outcome::Ran(story) => story.fmt(f),
        }
    }
}

impl fmt::Display for Story {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nthe second requests, sent when the middlebox had forgotten the flows ({} ms idle):",
            self.forgotten_after.as_millis()
        )?;
        let mut table = Table::new(&[
            ("client", Align::Left),
            ("sent", Align::Left),
            ("reached the server", Align::Left),
            ("outcome", Align::Left),
        ]);
        for run in &self.clients {
            let mut outcome = describe(&run.fate);
            if run.role == Role::Naive && matches!(run.fate, Fate::NoAnswer) {
                outcome.push_str(" (the kernel would keep retransmitting for about 15 minutes)");
            }
            table.row([
                run.role.name().to_string(),
                run.role.sent().to_string(),
                processed(run.processed),
                outcome,
            ]);
        }
        write!(f, "{table}")?;
        writeln!(
            f,
            "connpool reads TCP_INFO while it waits: no byte acknowledged and the retransmissions\n\
             unanswered mean the path is dead and the request never arrived, so it resends a GET\n\
             on a fresh connection and fails a POST at once, with that evidence. The naive client\n\
             can only wait for the kernel to give up.\n"
        )?;
        let problems = self.problems();
        if problems.is_empty() {
            writeln!(
                f,
                "silent drop: connpool found the dead path within {} s (GET resent on a fresh \
                 connection, POST failed unacknowledged).",
                PROMISE.as_secs()
            )
        } else {
            writeln!(f, "silent drop: connpool FAILED:")?;
            for problem in problems {
                writeln!(f, "  {problem}")?;
            }
            Ok(())
        }
    }
}

/// The section as JSON: `status` (`skipped`, `broken` or `ran`), the
/// reason or error, and when it ran each client's second request.
impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut view = View {
            status: "ran",
            reason: None,
            error: None,
            forgotten_after_ms: None,
            promise_ms: PROMISE.as_millis() as u64,
            clients: Vec::new(),
        };
        match self {
            Outcome::Skipped { reason } => {
                view.status = "skipped";
                view.reason = Some(reason);
            }
            Outcome::Broken { error } => {
                view.status = "broken";
                view.error = Some(error);
            }
            Outcome::Ran(story) => {
                view.forgotten_after_ms = Some(story.forgotten_after.as_millis() as u64);
                view.clients = story.clients.iter().map(ClientRun::view).collect();
            }
        }
        view.serialize(serializer)
    }
}

/// [`Outcome`] as JSON.
#[derive(Serialize)]
struct View<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forgotten_after_ms: Option<u64>,
    /// [`PROMISE`], in milliseconds.
    promise_ms: u64,
    clients: Vec<ClientView<'a>>,
}

/// A [`ClientRun`] as JSON.
#[derive(Serialize)]
struct ClientView<'a> {
    client: &'static str,
    sent: &'static str,
    /// Times the server processed the second request.
    processed: u64,
    /// `answered`, `failed` or `no_answer`.
    outcome: &'static str,
    after_ms: Option<u64>,
    status: Option<u16>,
    fresh: Option<bool>,
    retried_after: Vec<&'static str>,
    error_kind: Option<&'static str>,
    /// `yes`, `no` or `unknown`.
    acknowledged: Option<&'static str>,
    message: Option<&'a str>,
}

impl ClientRun {
    fn view(&self) -> ClientView<'_> {
        let mut view = ClientView {
            client: self.role.name(),
            sent: self.role.sent(),
            processed: self.processed,
            outcome: "no_answer",
            after_ms: None,
            status: None,
            fresh: None,
            retried_after: Vec::new(),
            error_kind: None,
            acknowledged: None,
            message: None,
        };
        match &self.fate {
            Fate::Answered {
                after,
                status,
                fresh,
                retried_after,
            } => {
                view.outcome = "answered";
                view.after_ms = Some(after.as_millis() as u64);
                view.status = Some(*status);
                view.fresh = Some(*fresh);
                view.retried_after = retried_after.iter().map(|k| k.as_str()).collect();
            }
            Fate::Failed {
                after,
                kind,
                acknowledged,
                message,
            } => {
                view.outcome = "failed";
                view.after_ms = Some(after.as_millis() as u64);
                view.error_kind = Some(kind.as_str());
                view.acknowledged = acknowledged.map(|ack| match ack {
                    Acknowledged::Yes => "yes",
                    Acknowledged::No => "no",
                    Acknowledged::Unknown => "unknown",
                });
                view.message = Some(message);
            }
            Fate::NoAnswer => {}
        }
        view
    }
}

impl Section for Outcome {
    fn problems(&self) -> Vec<String> {
        match self {
            Outcome::Skipped { .. } => Vec::new(),
            Outcome::Broken { error } => vec![format!("could not run: {error}")],
            Outcome::Ran(story) => story.problems(),
        }
    }

    fn skipped(&self) -> bool {
        matches!(self, Outcome::Skipped { .. })
    }

    fn naive_summary(&self) -> String {
        match self {
            Outcome::Ran(story) => story.clients[0].summary(),
            Outcome::Skipped { .. } => "skipped (needs root)".to_string(),
            Outcome::Broken { .. } => "-".to_string(),
        }
    }

    fn connpool_summary(&self) -> String {
        match self {
            Outcome::Ran(story) => format!(
                "GET {}; POST {}",
                story.clients[1].summary(),
                story.clients[2].summary()
            ),
            Outcome::Skipped { .. } => "skipped (needs root)".to_string(),
            Outcome::Broken { .. } => "-".to_string(),
        }
    }
}

impl ClientRun {
    /// Its second request's fate, in a few words.
    fn summary(&self) -> String {
        match &self.fate {
            Fate::Answered {
                after,
                retried_after,
                ..
            } => {
                let resent = if retried_after.is_empty() {
                    ""
                } else {
                    "resent, "
                };
                format!("{resent}ok in {} ms", after.as_millis())
            }
            Fate::Failed {
                after,
                kind,
                acknowledged,
                ..
            } => {
                let unacknowledged = if *acknowledged == Some(Acknowledged::No) {
                    ", unacknowledged"
                } else {
                    ""
                };
                format!(
                    "failed in {} ms ({kind}{unacknowledged})",
                    after.as_millis()
                )
            }
            Fate::NoAnswer => format!("no answer after {} s", PATIENCE.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn story(get: Fate, post: Fate, post_processed: u64) -> Story {
        Story {
            forgotten_after: Duration::from_millis(1100),
            clients: [
                ClientRun {
                    role: Role::Naive,
                    fate: Fate::NoAnswer,
                    processed: 0,
                },
                ClientRun {
                    role: Role::ConnpoolGet,
                    fate: get,
                    processed: 1,
                },
                ClientRun {
                    role: Role::ConnpoolPost,
                    fate: post,
                    processed: post_processed,
                },
            ],
        }
    }

    fn resent_get(after_ms: u64) -> Fate {
        Fate::Answered {
            after: Duration::from_millis(after_ms),
            status: 200,
            fresh: true,
            retried_after: vec![ErrorKind::DeadPath],
        }
    }

    fn failed_post(after_ms: u64, acknowledged: Acknowledged) -> Fate {
        Fate::Failed {
            after: Duration::from_millis(after_ms),
            kind: ErrorKind::DeadPath,
            acknowledged: Some(acknowledged),
            message: "dead_path: no reply (acknowledged by the peer: no)".to_string(),
        }
    }

    #[test]
    fn a_chain_that_cannot_be_built_skips_with_its_reason_and_does_not_fail() {
        let reason = "`ip netns add cp-1-0-c` failed (exit status: 1): Permission denied\n\
                      (network namespaces need root: CAP_SYS_ADMIN and CAP_NET_ADMIN)";
        let outcome = with_chain(Err(io::Error::other(reason)), true);
        assert!(matches!(outcome, Outcome::Skipped { .. }), "{outcome:?}");
        assert!(outcome.problems().is_empty());
        let printed = outcome.to_string();
        assert!(
            printed.starts_with(
                "silent drop: skipped — it needs network namespaces (run as root with ip and nft \
                 installed): `ip netns add cp-1-0-c` failed"
            ),
            "{printed}"
        );
        assert!(
            printed.contains("\n  (network namespaces need root"),
            "{printed}"
        );
    }

    #[test]
    fn a_broken_section_fails() {
        let outcome = Outcome::Broken {
            error: "the middlebox still tracked 1 flow(s)".to_string(),
        };
        assert!(!outcome.problems().is_empty());
        assert!(
            outcome
                .to_string()
                .starts_with("silent drop: could not run: ")
        );
    }

    #[test]
    fn connpool_keeping_its_promise_passes_whatever_the_naive_client_did() {
        let outcome = Outcome::Ran(Box::new(story(
            resent_get(700),
            failed_post(650, Acknowledged::No),
            0,
        )));
        assert!(outcome.problems().is_empty());
        let printed = outcome.to_string();
        assert!(
            printed.contains(
                "no answer after 4 s (the kernel would keep retransmitting for about 15 minutes)"
            ),
            "{printed}"
        );
        assert!(
            printed
                .contains("ok (200) after 700 ms on a fresh connection (resent after dead_path)"),
            "{printed}"
        );
        assert!(printed.contains("silent drop: connpool found the dead path"));
    }

    #[test]
    fn connpool_breaking_its_promise_fails() {
        let slow_get = story(resent_get(2500), failed_post(650, Acknowledged::No), 0);
        let reused_get = story(
            Fate::Answered {
                after: Duration::from_millis(10),
                status: 200,
                fresh: false,
                retried_after: Vec::new(),
            },
            failed_post(650, Acknowledged::No),
            0,
        );
        let unknown_post = story(resent_get(700), failed_post(650, Acknowledged::Unknown), 0);
        let hung_post = story(resent_get(700), Fate::NoAnswer, 0);
        let duplicated_post = story(resent_get(700), failed_post(650, Acknowledged::No), 1);
        for story in [
            slow_get,
            reused_get,
            unknown_post,
            hung_post,
            duplicated_post,
        ] {
            assert_eq!(story.problems().len(), 1, "{story:?}");
            let outcome = Outcome::Ran(Box::new(story));
            assert!(!outcome.problems().is_empty(), "{outcome:?}");
            assert!(
                outcome
                    .to_string()
                    .contains("silent drop: connpool FAILED:")
            );
        }
    }
}
