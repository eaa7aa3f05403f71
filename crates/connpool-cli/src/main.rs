//! The `connpool` command.
//!
//! This file only parses the command line and hands over to one module per
//! subcommand:
//!
//! * [`demo`] — `connpool demo`: four ways connection pools fail (the
//!   keep-alive race, undrained bodies, a burst with no cap, an idle
//!   timeout longer than the server's), live on 127.0.0.1, then a silent
//!   drop through a middlebox. A naive client ([`naive`]) and connpool
//!   side by side; [`report`] holds the tables that show what happened.
//! * [`get`] — `connpool get URL`: a curl-like request tool that shows what
//!   the pool did for each request (which connection, new or reused, its
//!   trace and the pool's events).
//! * [`bench`](mod@bench) — `connpool bench URL`: a load generator on one client,
//!   reporting throughput, latency percentiles, status codes, connections
//!   opened and reused, errors by kind and CPU time per request. It runs on
//!   a runtime of its own (`--threads`); the other subcommands share the
//!   default one.
//! * [`probe`] — `connpool probe URL`: measures the server's keep-alive
//!   behaviour (its idle timeout and how it closes, whether its
//!   `Keep-Alive` header is true, its requests per connection) and says
//!   what idle timeout to configure in connpool, Go, reqwest and nginx;
//!   with `--path-idle`, how long the network path keeps an idle TCP flow
//!   and what it does with one it forgot (drops it silently, or answers
//!   with an RST).
//!
//! [`request_args`] holds what `get` and `bench` share: the parsing of the
//! URL, `-X`, `-H` and `-d`; [`tls_args`] their TLS options (`--cacert`,
//! `-k`, `--cert`, `--key`).

mod bench;
mod demo;
mod get;
mod naive;
mod probe;
mod report;
mod request_args;
mod tls_args;

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
    /// Show how connection pools fail: a naive client and connpool side by side.
    ///
    /// Four failures, each on local servers (127.0.0.1 only), through a
    /// naive client (a hand-written pool that reuses idle connections unchecked) and
    /// connpool: the keep-alive race, responses dropped with their body
    /// unread, a burst with no cap per host (the clients in a child process
    /// with a lowered file limit), and a client idle timeout longer than
    /// the server's. Then, if it can create network namespaces (as root), a
    /// middlebox that silently drops forgotten flows: a naive client hangs,
    /// connpool finds the dead path. Prints a table per failure and a
    /// summary (--json: one JSON document instead). Takes about 20 seconds
    /// (15 without the middlebox). Exit status 1 if connpool broke its
    /// promise in any section.
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

    /// Measure what a server (or the path to it) does to idle connections.
    ///
    /// By default, the server's keep-alive behaviour: its idle timeout
    /// (within 5 %, at least 50 ms) and whether it then closes with a FIN,
    /// an RST or an unsolicited response; whether its Keep-Alive header is
    /// true; how many requests it serves per connection, and whether it
    /// says `Connection: close` on the last. Concurrent probes, each one
    /// connection idle for a different time, find a FIN-closing server's
    /// timeout (dated by the kernel) in about 1.1 times it, twice for an
    /// RST; meanwhile one connection counts requests (--max-requests,
    /// default 10000). Both are bounded by --max-wait (default 90 s).
    /// Prints the findings and the idle timeout to set in connpool, Go's
    /// http.Transport, reqwest and an nginx upstream block.
    ///
    /// With --path-idle: how long load balancers, NATs and firewalls on the
    /// way keep an idle TCP flow, and whether they then drop its packets
    /// silently or answer with an RST; or that the server closes idle
    /// connections first. It narrows the limit down to 5 % (at least 50 ms)
    /// in about twice the limit found, at most about three times --max-wait
    /// (default 60 s).
    ///
    /// --json: one JSON object; otherwise a progress line on stderr when it
    /// is a terminal. Exit status 1 if nothing could be measured (the
    /// server unreachable, no keep-alive).
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
