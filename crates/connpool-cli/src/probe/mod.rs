//! `connpool probe URL`: measures what a client's pool has to live with on
//! the way to a server, and says how to configure it.
//!
//! Two modes:
//!
//! * [`server`] — the default: the server's keep-alive behaviour. How long
//!   it keeps an idle connection (within 5 % or 50 ms), whether it then
//!   closes it with a FIN, an RST or an unsolicited response, whether its
//!   `Keep-Alive` header tells the truth, how many requests it serves on
//!   one connection and whether it says `Connection: close` on the last;
//!   and the idle timeout to configure in connpool, Go, reqwest and an
//!   nginx upstream block.
//! * [`path_idle`] — `--path-idle`: how long the network path (load
//!   balancers, NAT gateways, stateful firewalls) keeps a TCP flow that
//!   stays idle, and what it does with the packets of a flow it forgot
//!   (drops them silently, or answers with an RST).
//!
//! Both measure an idle limit the same way, with the concurrent search of
//! [`search`]: one-connection probes at many idle times at once, then
//! narrowing. They differ in their clients (the path probe turns TCP
//! keepalive off, since keepalive packets would refresh the middlebox's
//! timer; the server probe keeps it on, so that what it measures is the
//! server), in the idle times they start from, and in their words.
//! [`ProbeArgs`] holds the options of every mode, [`run`] picks one.

mod path_idle;
mod search;
mod server;

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use connpool::http::ClientConfig;
use http::{HeaderValue, Uri};
use serde::Serialize;

use crate::request_args::{parse_duration, parse_url};

/// `--max-wait` unless given, in the server mode: covers nginx's default
/// `keepalive_timeout` (75 s) and the load balancers' usual 60 s.
const SERVER_MAX_WAIT: Duration = Duration::from_secs(90);
/// `--max-wait` unless given, with `--path-idle`.
const PATH_MAX_WAIT: Duration = Duration::from_secs(60);

/// Options of `connpool probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The URL to request (`http://host[:port]/path?query`); it is sent
    /// GET requests, and any status will do.
    #[arg(value_parser = parse_url)]
    url: Uri,

    /// Measure the network path instead of the server: how long it keeps
    /// an idle TCP flow, and what it does with a flow it forgot.
    #[arg(long)]
    path_idle: bool,

    /// The longest idle time to try (`10s`, `500ms`, `2m`; a bare number
    /// is seconds). Default 90 s, which covers nginx's default 75 s; with
    /// --path-idle 60 s, which covers most load balancers (AWS ALB: 60 s;
    /// NAT gateways and AWS NLB, 350 s, need more). A server that closes
    /// idle connections is usually measured in about 1.1 times its timeout
    /// (twice with an RST); the run takes up to about three times this,
    /// plus a few seconds.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    max_wait: Option<Duration>,

    /// The most requests sent on one connection to find how many the
    /// server serves before it closes the connection (not with
    /// --path-idle). --max-wait bounds them too.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..),
          conflicts_with = "path_idle")]
    max_requests: u64,

    /// Print the result as one JSON object (and no progress line).
    #[arg(long)]
    json: bool,
}

impl ProbeArgs {
    /// `--max-wait`, or the mode's default.
    fn max_wait(&self) -> Duration {
        self.max_wait.unwrap_or(if self.path_idle {
            PATH_MAX_WAIT
        } else {
            SERVER_MAX_WAIT
        })
    }
}

/// Runs `connpool probe` and returns its exit status: 0 when a
/// measurement was made, 1 when it could not be (the server unreachable,
/// no keep-alive).
pub async fn run(args: ProbeArgs) -> ExitCode {
    if args.path_idle {
        path_idle::run(&args).await
    } else {
        server::run(&args).await
    }
}

/// What every client of the probe starts from: one connection; no
/// client-side expiry (no pool idle timeout, no lifetime, the server's
/// `Keep-Alive` hint not obeyed), so that only the server and the path end
/// a connection; every request bounded by `request_timeout`; the probe's
/// user agent. Each client sets the rest (see the modes' docs).
fn one_connection_config(request_timeout: Duration) -> ClientConfig {
    ClientConfig {
        pool_idle_timeout: None,
        max_lifetime: None,
        max_conns_per_host: 1,
        connect_timeout: request_timeout,
        response_header_timeout: Some(request_timeout),
        timeout: Some(request_timeout),
        obey_keep_alive_hint: false,
        user_agent: Some(HeaderValue::from_static(concat!(
            "connpool-probe/",
            env!("CARGO_PKG_VERSION")
        ))),
        ..ClientConfig::default()
    }
}

/// Prints a mode's report: `report` as JSON with `--json`, else `words()`
/// (the human report). Returns the exit status.
fn print_report(report: &impl Serialize, json: bool, words: impl FnOnce() -> String) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(json) => println!("{json}"),
            Err(err) => {
                eprintln!("connpool probe: cannot write the report: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", words());
    }
    ExitCode::SUCCESS
}

/// `12 probes in 1 round, 2.1 s`: what the run took, for the human
/// reports.
fn tally(probes: usize, rounds: u32, wall_s: f64) -> String {
    format!(
        "{probes} {} in {rounds} {}, {wall_s:.1} s",
        if probes == 1 { "probe" } else { "probes" },
        if rounds == 1 { "round" } else { "rounds" },
    )
}

/// The step of the figures people type into a configuration file near
/// `d`: whole seconds from 10 s, tenths from 1 s, hundredths below.
fn typed_step(d: Duration) -> Duration {
    if d >= Duration::from_secs(10) {
        Duration::from_secs(1)
    } else if d >= Duration::from_secs(1) {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(10)
    }
}

/// Whole milliseconds, for the JSON reports.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A setting as people write it: `4 s`, `1.5 s`, `750 ms`, `none`.
fn format_setting(value: Option<Duration>) -> String {
    let Some(d) = value else {
        return "none".to_string();
    };
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

/// `850 ms`, `1.95 s`, `12.3 s`, `350 s`: as many digits as the
/// measurement deserves.
fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 10_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms < 100_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{:.0} s", ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_with_sensible_digits() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(format_duration(Duration::from_millis(1950)), "1.95 s");
        assert_eq!(format_duration(Duration::from_millis(12_345)), "12.3 s");
        assert_eq!(format_duration(Duration::from_secs(350)), "350 s");
    }
}
