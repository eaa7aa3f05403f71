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

mod demo;
mod get;
mod naive;
mod report;

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
    /// Show the keep-alive race: a naive pool and connpool side by side.
    ///
    /// Runs both pools against local servers (127.0.0.1 only) that close idle
    /// connections, and shows which requests fail. Takes about 6 seconds.
    /// Exit status 1 if connpool had any failed request.
    Demo(demo::DemoArgs),

    /// Send HTTP requests like curl, and show what the pool did.
    ///
    /// Sends COUNT requests one after another through one client, so later
    /// requests can reuse the pool's connections. Bodies go to stdout; with
    /// -n above 1 a line per request (connection, new or reused, time to the
    /// response head), with -v the trace of each request and the pool's
    /// events, go to stderr. Exit status 1 if any request failed.
    Get(Box<get::GetArgs>),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Get(args) => get::run(*args).await,
    }
}
