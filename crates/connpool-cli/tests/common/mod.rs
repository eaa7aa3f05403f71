//! What the tests of `connpool get` and `connpool bench` share: running the
//! built binary, reading its output, and the servers and ports they talk to.
// Each test crate uses some of these.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Command, Output};

use connpool_testkit::http::HttpServer;

/// `connpool <subcommand> <args>`, run to its end.
pub fn connpool(subcommand: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_connpool"))
        .arg(subcommand)
        .args(args)
        .output()
        .expect("the connpool binary runs")
}

/// Stdout and stderr as text, for assertions and their messages.
pub fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts the exit status, showing both streams if it is not `code`.
pub fn assert_exit(output: &Output, code: i32) {
    let (stdout, stderr) = texts(output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

/// A testkit HTTP server with the default routes, on 127.0.0.1.
pub fn server() -> HttpServer {
    HttpServer::start_default().expect("the test server starts")
}

/// A port on 127.0.0.1 nobody listens on: bound, then released.
pub fn unused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}
