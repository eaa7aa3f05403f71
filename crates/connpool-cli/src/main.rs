//! The `connpool` command.
//!
//! This file only parses the command line and hands over to one module per
//! subcommand:
//!
//! * [`demo`] — `connpool demo`: the keep-alive race, live on 127.0.0.1. A
//!   naive pool ([`naive`]) and connpool's TCP pool send the same requests
//!   to servers that close idle connections; [`report`] prints what
//!   happened to each.
//! * [`get`] — `connpool get URL`: a curl-like request tool that shows what
//!   the pool did for each request (which connection, new or reused, its
//!   trace and the pool's events).
//! * [`bench`](mod@bench) — `connpool bench URL`: a load generator on one client,
//!   reporting throughput, latency percentiles, status codes, connections
//!   opened and reused, errors by kind and CPU time per request. It runs on
//!   a runtime of its own (`--threads`); the other subcommands share the
//!   default one.
//! * [`probe`] — `connpool probe --path-idle URL`: measures how long the
//!   network path keeps an idle TCP flow, and what it does with one it
//!   forgot (drops it silently, or answers with an RST), and says how to
//!   configure the pool.
//!
//! [`request_args`] holds what `get` and `bench` share: the parsing of the
//! URL, `-X`, `-H` and `-d`.

mod bench;
mod demo;
mod get;
mod naive;
mod probe;
mod report;
mod request_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Connection pools that do not break: see the keep-alive race and its cure.
#[derive(Debug, Parser)]
#[command(name = "connpool", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the keep-alive race and the silent drop: naive and connpool side by side.
    ///
    /// Runs both pools against local servers (127.0.0.1 only) that close idle
    /// connections, and shows which requests fail. Then, if it can create
    /// network namespaces (as root), sends requests through a middlebox that
    /// silently drops forgotten flows: a naive client hangs, connpool finds
    /// the dead path. Takes about 11 seconds (6 without the middlebox).
    /// Exit status 1 if connpool had any failed request or missed the dead
    /// path.
    Demo(demo::DemoArgs),

    /// Send HTTP requests like curl, and show what the pool did.
    ///
    /// Sends COUNT requests one after another through one client, so later
    /// requests can reuse the pool's connections. Bodies go to stdout; with
    /// -n above 1 a line per request (connection, new or reused, time to the
    /// response head), with -v the trace of each request and the pool's
    /// events, go to stderr. Exit status 1 if any request failed.
    Get(Box<get::GetArgs>),

    /// Load a server with concurrent requests through one pool.
    ///
    /// C workers share one client (at most M connections, default C) and
    /// send requests until N were sent (default 10000) or the duration
    /// passed, whichever comes first. Prints throughput, latency
    /// percentiles, status codes, connections opened and reused, errors by
    /// kind and the process's CPU time per request; a progress bar on
    /// stderr when it is a terminal. Exit status 1 if any request failed.
    Bench(Box<bench::BenchArgs>),

    /// Measure what the path to a server does to idle connections.
    ///
    /// With --path-idle (the only mode so far): how long load balancers,
    /// NATs and firewalls on the way keep an idle TCP flow, and whether they
    /// then drop its packets silently or answer with an RST; or that the
    /// server closes idle connections first. Concurrent probes, each one
    /// connection idle for a different time, narrow the limit down to 5 %
    /// (at least 50 ms) in about twice the limit found, at most about three
    /// times --max-wait (default 60 s). Prints the result and a
    /// recommendation (--json: one JSON object); a progress line on stderr
    /// when it is a terminal. Exit status 1 if nothing could be measured
    /// (the server unreachable, no keep-alive).
    Probe(Box<probe::ProbeArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => on_default_runtime(demo::run(args)),
        Command::Get(args) => on_default_runtime(get::run(*args)),
        // `bench` builds the runtime it is told to (`--threads`).
        Command::Bench(args) => bench::run(*args),
        Command::Probe(args) => on_default_runtime(probe::run(*args)),
    }
}

/// Runs `command` on a multi-thread runtime with the default settings
/// (what `#[tokio::main]` builds).
fn on_default_runtime(command: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(command),
        Err(err) => {
            eprintln!("connpool: cannot start the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}
