//! Runs the built `connpool demo` as CI would, and checks its story holds:
//! the naive pool hits the keep-alive race, connpool never does, and the exit
//! status says so.
//!
//! The demo talks only to its own servers on 127.0.0.1 and takes a few
//! seconds.

use std::process::Command;

/// Parses `naive pool: <n> failed requests; connpool: <m>` into `(n, m)`.
fn parse_verdict(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("naive pool: ")?;
    let (naive, rest) = rest.split_once(" failed requests; connpool: ")?;
    let connpool = rest.split_whitespace().next()?;
    Some((naive.parse().ok()?, connpool.parse().ok()?))
}

#[test]
fn demo_shows_the_race_and_connpool_avoids_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_connpool"))
        .arg("demo")
        .output()
        .expect("the connpool binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );

    assert!(
        stdout.contains("scenario")
            && stdout.contains("broken pipe")
            && stdout.contains("stale caught"),
        "no table header in:\n{stdout}"
    );

    let verdict = stdout
        .lines()
        .find_map(parse_verdict)
        .unwrap_or_else(|| panic!("no verdict line in:\n{stdout}"));
    let (naive_failed, connpool_failed) = verdict;
    assert!(naive_failed > 0, "the naive pool never failed:\n{stdout}");
    assert_eq!(connpool_failed, 0, "connpool failed:\n{stdout}");
}

#[test]
fn verdict_line_parses() {
    assert_eq!(
        parse_verdict("naive pool: 23 failed requests; connpool: 0"),
        Some((23, 0))
    );
    assert_eq!(parse_verdict("something else"), None);
}
