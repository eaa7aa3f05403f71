//! `connpool demo`: the ways connection pools fail, and their cure, in
//! about twenty seconds.
//!
//! Pool failures are easy to shrug off when read about (a retry "fixes"
//! the random `connection reset`, the leak shows only under load, the
//! burst only in production). So the demo makes each one happen on
//! purpose, on 127.0.0.1 only, with the same requests sent through a naive
//! client ([`crate::naive`]: what many hand-written pools amount to)
//! and through connpool, side by side on separate servers so that they
//! cannot disturb each other. One module per section, in the order they
//! run:
//!
//! 1. [`race`]: the keep-alive race. Servers close idle connections; a
//!    pool that reuses one unchecked fails the request.
//! 2. [`undrained`]: responses dropped with their body unread. A client
//!    that neither drains nor closes such a connection leaks it.
//! 3. [`burst`]: a burst with no cap per host exhausts the file
//!    descriptors (in a child process with a lowered limit).
//! 4. [`idle_timeout`]: a client idle timeout longer than the server's
//!    meets closed connections after every long pause; connpool learns
//!    the server's timeout, or reads its `Keep-Alive` hint, and expires
//!    first.
//! 5. [`silent_drop`]: the race one hop away, a middlebox that forgets
//!    idle flows without a word. It needs network namespaces, hence root:
//!    without them it says so and is skipped, which is not a failure
//!    (`--no-silent-drop` skips it too).
//!
//! Each section prints a table, a few lines on what it shows, and what
//! broke its promise if connpool did; at the end a summary has one line
//! per failure, naive against connpool. With `--json` nothing but one JSON
//! document goes to stdout: per section its results, whether connpool
//! kept its promise, what broke it, and the two summaries.
//!
//! The exit status is 0 only if connpool kept its promise in every section
//! that ran (each section's module says what it promises), so CI can run
//! the demo as a check. The naive client failing is the story, never a
//! failure of the demo.

mod burst;
mod idle_timeout;
mod race;
mod silent_drop;
mod undrained;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::report::{Align, Table};

/// Options of `connpool demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Requests per scenario and pool in the keep-alive race.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,

    /// Do not print the trace of connpool's events in the keep-alive race.
    #[arg(long, visible_alias = "quiet")]
    no_trace: bool,

    /// Skip the silent-drop section (a middlebox in network namespaces;
    /// it needs root and takes about 5 seconds).
    #[arg(long)]
    no_silent_drop: bool,

    /// Print the results as one JSON document on stdout, and nothing else.
    #[arg(long)]
    json: bool,

    /// Internal: the burst section's child process (see `demo/burst.rs`).
    #[arg(long, hide = true, num_args = 2, value_names = ["NAIVE", "CONNPOOL"])]
    burst_child: Option<Vec<SocketAddr>>,
}

/// What every section gives besides its table (its `Display`) and its
/// JSON (its `Serialize`).
trait Section: fmt::Display + Serialize {
    /// Where connpool broke the section's promise; empty when it kept it.
    /// The naive client is never judged.
    fn problems(&self) -> Vec<String>;
    /// What happened to the naive client, in a few words.
    fn naive_summary(&self) -> String;
    /// What happened to connpool, in a few words.
    fn connpool_summary(&self) -> String;
    /// The section could not run where the demo runs and said why (not a
    /// failure).
    fn skipped(&self) -> bool {
        false
    }
}

/// A section that ran (or could not).
#[derive(Serialize)]
struct Done {
    /// Its key in the JSON document.
    #[serde(skip)]
    key: &'static str,
    /// The failure it shows.
    title: &'static str,
    /// It could not run here and said why (not a failure).
    skipped: bool,
    kept_promise: bool,
    problems: Vec<String>,
    naive: String,
    connpool: String,
    /// The section's own results; `null` if it could not run.
    result: serde_json::Value,
    /// Why it could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The JSON document.
#[derive(Serialize)]
struct Document<'a> {
    /// connpool kept its promise in every section that ran.
    ok: bool,
    wall_ms: u64,
    /// Each section by its key, in the order they ran.
    sections: Sections<'a>,
}

/// The sections as a JSON object, in order.
struct Sections<'a>(&'a [Done]);

impl Serialize for Sections<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for done in self.0 {
            map.serialize_entry(done.key, done)?;
        }
        map.end()
    }
}

/// Runs the demo, prints its report, and returns the exit status: success
/// when connpool kept its promise in every section.
pub async fn run(args: DemoArgs) -> ExitCode {
    if let Some(addrs) = &args.burst_child {
        return burst::child(addrs[0], addrs[1]).await;
    }
    let started = Instant::now();
    let text = !args.json;
    if text {
        let then = if args.no_silent_drop {
            ""
        } else {
            "\nThen, as root, a fifth: a silent drop through a real middlebox."
        };
        println!(
            "connpool demo: four ways connection pools fail, each shown with a naive client and \
             with\nconnpool side by side, on local servers (127.0.0.1 only). The naive client is \
             a hand-written\npool: idle connections reused unchecked, a 90 s idle timeout and no cap \
             per host (Go's and\nreqwest's defaults), no retry, a dropped response's \
             connection left open (Go without Body.Close).{then}"
        );
    }

    let mut done = vec![
        section(
            text,
            1,
            ("race", "keep-alive race"),
            Some(race::intro()),
            race::run(args.requests as usize, !args.no_trace),
        )
        .await,
        section(
            text,
            2,
            ("undrained", "undrained bodies"),
            Some(undrained::intro()),
            undrained::run(),
        )
        .await,
        section(
            text,
            3,
            ("burst", "burst with no cap"),
            Some(burst::intro()),
            burst::run(),
        )
        .await,
        section(
            text,
            4,
            ("idle_timeout", "idle timeout too long"),
            Some(idle_timeout::intro()),
            idle_timeout::run(),
        )
        .await,
    ];
    if !args.no_silent_drop {
        // It says what it does itself, once it knows it can run.
        done.push(
            section(text, 5, ("silent_drop", "silent drop"), None, async {
                Ok(silent_drop::run(text).await)
            })
            .await,
        );
    }

    let ok = done.iter().all(|done| done.kept_promise);
    if text {
        print!("{}", summary(&done, started));
    } else {
        let document = Document {
            ok,
            wall_ms: started.elapsed().as_millis() as u64,
            sections: Sections(&done),
        };
        match serde_json::to_string_pretty(&document) {
            Ok(json) => println!("{json}"),
            Err(err) => {
                eprintln!("connpool demo: cannot write the JSON document: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one section: prints its heading and `intro` first, its report
/// after (in text mode), and returns what it did.
async fn section<S: Section>(
    text: bool,
    number: u32,
    (key, title): (&'static str, &'static str),
    intro: Option<String>,
    run: impl Future<Output = io::Result<S>>,
) -> Done {
    if text {
        println!("\n== {number}. {title} ==");
        if let Some(intro) = intro {
            println!("{intro}\n");
        }
    }
    match run.await {
        Ok(section) => {
            if text {
                print!("{section}");
            }
            let problems = section.problems();
            let result = serde_json::to_value(&section).unwrap_or_else(|err| {
                serde_json::Value::String(format!("cannot serialize the results: {err}"))
            });
            Done {
                key,
                title,
                skipped: section.skipped(),
                kept_promise: problems.is_empty(),
                problems,
                naive: section.naive_summary(),
                connpool: section.connpool_summary(),
                result,
                error: None,
            }
        }
        Err(err) => {
            let error = format!("could not run: {err}");
            if text {
                println!("{title}: {error}");
            }
            Done {
                key,
                title,
                skipped: false,
                kept_promise: false,
                problems: vec![error.clone()],
                naive: "-".to_string(),
                connpool: "-".to_string(),
                result: serde_json::Value::Null,
                error: Some(error),
            }
        }
    }
}

/// The closing summary: a line per section, naive against connpool, then
/// the verdict and what broke it. Ends with a newline.
fn summary(done: &[Done], started: Instant) -> String {
    let mut table = Table::new(&[
        ("failure", Align::Left),
        ("naive", Align::Left),
        ("connpool", Align::Left),
    ]);
    for section in done {
        table.row([
            section.title.to_string(),
            section.naive.clone(),
            section.connpool.clone(),
        ]);
    }
    let mut out = format!("\n== summary ==\n{table}");
    let failed: Vec<&Done> = done.iter().filter(|d| !d.kept_promise).collect();
    let skipped: Vec<&str> = done.iter().filter(|d| d.skipped).map(|d| d.title).collect();
    let took = started.elapsed().as_secs_f64();
    if failed.is_empty() && skipped.is_empty() {
        out.push_str(&format!(
            "connpool kept its promise in all {} sections ({took:.1} s).\n",
            done.len(),
        ));
    } else if failed.is_empty() {
        out.push_str(&format!(
            "connpool kept its promise in all {} sections that ran ({took:.1} s; skipped: {}).\n",
            done.len() - skipped.len(),
            skipped.join(", ")
        ));
    } else {
        out.push_str("connpool FAILED:\n");
        for section in failed {
            for problem in &section.problems {
                out.push_str(&format!("  {}: {problem}\n", section.title));
            }
        }
    }
    out
}
