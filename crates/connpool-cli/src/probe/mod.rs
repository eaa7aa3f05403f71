//! `connpool probe URL`: measures what a client's pool has to live with on
//! the way to a server, and says how to configure it.
//!
//! One mode exists so far:
//!
//! * [`path_idle`] — `--path-idle`: how long the network path (load
//!   balancers, NAT gateways, stateful firewalls) keeps a TCP flow that
//!   stays idle, and what it does with the packets of a flow it forgot
//!   (drops them silently, or answers with an RST). Bounded by
//!   `--max-wait`.
//!
//! The probe of the server's own keep-alive behaviour (its idle timeout,
//! its request limit) comes later as a second mode; until then `probe`
//! without `--path-idle` is a usage error (exit status 2) that says so.
//! [`ProbeArgs`] holds the options of every mode, [`run`] picks one.

mod path_idle;

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use http::Uri;

use crate::request_args::{parse_duration, parse_url};

/// Options of `connpool probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The URL to request (`http://host[:port]/path?query`); it is sent
    /// GET requests, and any status will do.
    #[arg(value_parser = parse_url)]
    url: Uri,

    /// Measure how long the network path keeps an idle TCP flow, and what
    /// it does with a flow it forgot (the only mode so far).
    #[arg(long)]
    path_idle: bool,

    /// The longest idle time to try (`10s`, `500ms`, `2m`; a bare number
    /// is seconds). The run takes up to about three times this, plus a
    /// few seconds. The default minute covers most load balancers (AWS
    /// ALB: 60 s); NAT gateways and AWS NLB (350 s) need more.
    #[arg(long, value_name = "D", value_parser = parse_duration,
          default_value = "60s")]
    max_wait: Duration,

    /// Print the result as one JSON object (and no progress line).
    #[arg(long)]
    json: bool,
}

/// Runs `connpool probe` and returns its exit status: 0 when a
/// measurement was made, 1 when it could not be (the server unreachable,
/// no keep-alive), 2 for a mode that does not exist yet.
pub async fn run(args: ProbeArgs) -> ExitCode {
    if args.path_idle {
        return path_idle::run(&args).await;
    }
    eprintln!(
        "connpool probe: only --path-idle is implemented yet (the probe of the \
         server's own idle timeout comes later); try `connpool probe --path-idle {}`",
        args.url
    );
    ExitCode::from(2)
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
