//! A real nginx on `127.0.0.1`, for interop tests.
//!
//! [`FaultServer`](crate::FaultServer) shows what a pool does against a server
//! that closes idle connections on command; [`Nginx`] checks the same against
//! the real thing: a private nginx process with its own configuration, its own
//! free port and its own temporary directory, stopped and cleaned up on drop.
//!
//! nginx must be installed (`apt-get install nginx`; the CI script does). When
//! it is missing, [`NginxBuilder::start`] fails with an error that says so:
//! tests that need nginx fail rather than silently skip.
//!
//! # What the server answers
//!
//! | request | answer |
//! | --- | --- |
//! | any method on `/` | `200`, body `ok\n` |
//! | any method on `/echo` (a request body is read and discarded) | `200`, body `ok\n` |
//! | `GET /bytes/N`, N one of [`Nginx::BYTES_SIZES`] | `200`, a static file of N bytes, byte `i` being `b'a' + i % 26` |
//! | anything else | `404` |
//!
//! The connection behaviour (keep-alive timeout, requests per connection) is
//! nginx's own, tuned with [`NginxBuilder`].

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many ports [`NginxBuilder::start`] tries when another process takes
/// the chosen port before nginx binds it.
const PORT_ATTEMPTS: usize = 5;
/// How long nginx may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often startup is polled.
const POLL: Duration = Duration::from_millis(10);
/// Where Debian's package installs nginx.
const DEFAULT_BINARY: &str = "/usr/sbin/nginx";
/// The advice in the error returned when nginx cannot be found.
const NOT_FOUND: &str =
    "nginx not found: install it with `apt-get install nginx` (the CI script does)";

/// Numbers the temporary directories of this process.
static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// Configures an [`Nginx`] before it starts. Made by [`Nginx::builder`].
///
/// Settings left alone keep nginx's defaults (in nginx 1.22: a keep-alive
/// timeout of 75 s and 1000 requests per connection).
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct NginxBuilder {
    keepalive_timeout: Option<Duration>,
    keepalive_requests: Option<u32>,
    extra_http_config: String,
}

impl NginxBuilder {
    /// How long nginx keeps an idle keep-alive connection open before closing
    /// it (`keepalive_timeout`, written in whole milliseconds). Zero disables
    /// keep-alive: every response then carries `Connection: close`.
    pub fn keepalive_timeout(mut self, timeout: Duration) -> Self {
        self.keepalive_timeout = Some(timeout);
        self
    }

    /// How many requests nginx answers on one connection
    /// (`keepalive_requests`); the last response carries `Connection: close`
    /// and nginx then closes the connection.
    pub fn keepalive_requests(mut self, requests: u32) -> Self {
        self.keepalive_requests = Some(requests);
        self
    }

    /// Adds raw directives to the `http { }` block, before the server block,
    /// for example `"client_header_timeout 1s;"`. Calls add up.
    pub fn extra_http_config(mut self, directives: &str) -> Self {
        self.extra_http_config.push_str(directives);
        self.extra_http_config.push('\n');
        self
    }

    /// Starts nginx and waits until it accepts connections.
    ///
    /// Blocks the calling thread (for at most about ten seconds), so call it
    /// before entering an async runtime or accept a short stall there.
    ///
    /// # Errors
    ///
    /// * [`io::ErrorKind::NotFound`] when there is no nginx binary (looked up
    ///   as the `NGINX` environment variable, then `/usr/sbin/nginx`, then
    ///   `nginx` on `PATH`).
    /// * An error quoting nginx's `error.log` when nginx exits before it
    ///   listens (a bad [`extra_http_config`](Self::extra_http_config), say),
    ///   or when five ports in a row were taken before nginx could bind them.
    /// * [`io::ErrorKind::TimedOut`] when nginx does not listen within ten
    ///   seconds.
    /// * Any error creating the temporary directory or its files.
    pub fn start(self) -> io::Result<Nginx> {
        let binary = find_binary()?;
        let dir = create_dir()?;
        match self.start_in(&binary, &dir) {
            Ok((child, addr)) => Ok(Nginx { child, dir, addr }),
            Err(err) => {
                let _ = fs::remove_dir_all(&dir);
                Err(err)
            }
        }
    }

    /// Writes the static files, then starts nginx on a fresh port until one
    /// binds.
    fn start_in(&self, binary: &Path, dir: &Path) -> io::Result<(Child, SocketAddr)> {
        write_static_files(dir)?;
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let addr = free_port()?;
            match self.try_start(binary, dir, addr)? {
                Startup::Ready(child) => return Ok((child, addr)),
                Startup::AddrInUse(log) => last_error = log,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "nginx could not bind a port in {PORT_ATTEMPTS} attempts; last error.log:\n{last_error}"
            ),
        ))
    }

    /// One attempt to run nginx listening on `addr`.
    fn try_start(&self, binary: &Path, dir: &Path, addr: SocketAddr) -> io::Result<Startup> {
        // Fresh logs, so that what an attempt reports is its own.
        for name in ["error.log", "stdout.log", "stderr.log", "nginx.pid"] {
            match fs::remove_file(dir.join(name)) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        let conf = dir.join("nginx.conf");
        fs::write(&conf, self.config(dir, addr))?;
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("stdout.log"))?)
            .stderr(File::create(dir.join("stderr.log"))?)
            .spawn()
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("cannot run nginx ({}): {err}", binary.display()),
                )
            })?;

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return exited(dir, addr, status);
            }
            // nginx writes its pid file only after it has bound its sockets,
            // so a connection made after that reaches this nginx and not some
            // other process that took the port.
            if wrote_pid(dir, child.id())
                && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            {
                return Ok(Startup::Ready(child));
            }
            let log = read_logs(dir);
            if log.contains("Address already in use") {
                // nginx retries bind() for two seconds; no need to wait.
                stop(&mut child);
                return Ok(Startup::AddrInUse(log));
            }
            if Instant::now() >= deadline {
                stop(&mut child);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nginx did not listen on {addr} within {START_TIMEOUT:?}; error.log:\n{log}"
                    ),
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The whole `nginx.conf` for a server on `addr` rooted at `dir`.
    fn config(&self, dir: &Path, addr: SocketAddr) -> String {
        let path = |name: &str| quote(&dir.join(name));
        let mut conf = String::new();
        let _ = writeln!(conf, "daemon off;");
        let _ = writeln!(conf, "master_process off;");
        let _ = writeln!(conf, "worker_processes 1;");
        let _ = writeln!(conf, "pid {};", path("nginx.pid"));
        let _ = writeln!(conf, "error_log {} info;", path("error.log"));
        let _ = writeln!(conf, "events {{ worker_connections 256; }}");
        let _ = writeln!(conf, "http {{");
        // One line per request that nginx answered: its method and its
        // `x-request-id`, so tests can count what was processed.
        let _ = writeln!(
            conf,
            "    log_format ids '$request_method $http_x_request_id';"
        );
        let _ = writeln!(conf, "    access_log {} ids;", path("requests.log"));
        let _ = writeln!(conf, "    default_type application/octet-stream;");
        for (directive, name) in [
            ("client_body_temp_path", "client_body_temp"),
            ("proxy_temp_path", "proxy_temp"),
            ("fastcgi_temp_path", "fastcgi_temp"),
            ("uwsgi_temp_path", "uwsgi_temp"),
            ("scgi_temp_path", "scgi_temp"),
        ] {
            let _ = writeln!(conf, "    {directive} {};", path(name));
        }
        if let Some(timeout) = self.keepalive_timeout {
            let _ = writeln!(conf, "    keepalive_timeout {}ms;", timeout.as_millis());
        }
        if let Some(requests) = self.keepalive_requests {
            let _ = writeln!(conf, "    keepalive_requests {requests};");
        }
        for line in self.extra_http_config.lines() {
            let _ = writeln!(conf, "    {line}");
        }
        let _ = writeln!(conf, "    server {{");
        let _ = writeln!(conf, "        listen {addr};");
        let _ = writeln!(conf, "        root {};", path("www"));
        let _ = writeln!(conf, "        location = / {{ return 200 \"ok\\n\"; }}");
        let _ = writeln!(conf, "        location = /echo {{ return 200 \"ok\\n\"; }}");
        let _ = writeln!(conf, "        location /bytes/ {{ }}");
        let _ = writeln!(conf, "        location / {{ return 404; }}");
        let _ = writeln!(conf, "    }}");
        let _ = writeln!(conf, "}}");
        conf
    }
}

/// How one start attempt ended, when it did not fail outright.
enum Startup {
    /// nginx listens.
    Ready(Child),
    /// The port was taken before nginx could bind it; the logs.
    AddrInUse(String),
}

/// A running nginx on `127.0.0.1`, configured by [`NginxBuilder`].
///
/// It runs as a child process in the foreground (`daemon off`,
/// `master_process off`: one process), with every file it writes — its
/// configuration, logs, pid file, temporary paths and the static files under
/// `/bytes/` — inside a private temporary directory. Dropping it kills the
/// process, waits for it and removes the directory.
///
/// # Example
///
/// ```no_run
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
/// use connpool_testkit::nginx::Nginx;
///
/// # fn main() -> std::io::Result<()> {
/// let nginx = Nginx::builder()
///     .keepalive_timeout(Duration::from_millis(500))
///     .keepalive_requests(10)
///     .start()?;
/// assert_eq!(nginx.url("/bytes/10"), format!("http://{}/bytes/10", nginx.addr()));
///
/// let mut client = TcpStream::connect(nginx.addr())?;
/// client.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
/// let mut response = String::new();
/// client.read_to_string(&mut response)?;
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.ends_with("\r\n\r\nok\n"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Nginx {
    /// The sizes, in bytes, of the static files served as `/bytes/N`.
    pub const BYTES_SIZES: [usize; 3] = [10, 1000, 100_000];

    /// A builder with nginx's default settings.
    pub fn builder() -> NginxBuilder {
        NginxBuilder::default()
    }

    /// The version of the nginx that [`NginxBuilder::start`] would run, as
    /// `nginx -v` prints it after the slash: `"1.22.1"` for
    /// `nginx version: nginx/1.22.1`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] when there is no nginx binary; any error
    /// running it; [`io::ErrorKind::InvalidData`] when its output is not the
    /// expected `nginx version: NAME/VERSION`.
    pub fn version() -> io::Result<String> {
        let binary = find_binary()?;
        let output = Command::new(&binary)
            .arg("-v")
            .stdin(Stdio::null())
            .output()?;
        // nginx prints its version on stderr; accept stdout too.
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        text.lines()
            .find_map(|line| line.trim().strip_prefix("nginx version:"))
            .and_then(|rest| rest.trim().split_once('/'))
            .map(|(_name, version)| version.trim().to_owned())
            .filter(|version| !version.is_empty())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected output from `{} -v`: {text:?}", binary.display()),
                )
            })
    }

    /// The address nginx listens on (`127.0.0.1` and a free port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of `path` on this server: `url("/bytes/10")` (or
    /// `url("bytes/10")`) is `http://127.0.0.1:PORT/bytes/10`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// What nginx has written to its error log so far (at level `info` and
    /// above), plus anything it printed on stderr.
    pub fn error_log(&self) -> String {
        read_logs(&self.dir)
    }

    /// The requests nginx answered so far, in order, as (method,
    /// `x-request-id`) pairs (`-` when the request had no id), read from
    /// its access log.
    pub fn answered_requests(&self) -> Vec<(String, String)> {
        fs::read_to_string(self.dir.join("requests.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (method, id) = line.split_once(' ')?;
                Some((method.to_string(), id.to_string()))
            })
            .collect()
    }

    /// The private directory holding nginx's configuration, logs and files.
    /// Removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id of nginx (one process: there is no master).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Kills `child` and reaps it.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The error for an nginx that exited during startup, unless it exited because
/// the port was taken.
fn exited(dir: &Path, addr: SocketAddr, status: ExitStatus) -> io::Result<Startup> {
    let log = read_logs(dir);
    if log.contains("Address already in use") {
        return Ok(Startup::AddrInUse(log));
    }
    Err(io::Error::other(format!(
        "nginx exited ({status}) before listening on {addr}; error.log:\n{log}"
    )))
}

/// Whether nginx has written its pid file, with `pid` in it.
fn wrote_pid(dir: &Path, pid: u32) -> bool {
    fs::read_to_string(dir.join("nginx.pid"))
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        == Some(pid)
}

/// The error log, followed by stderr when nginx printed anything there.
fn read_logs(dir: &Path) -> String {
    let mut log = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    let stderr = fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    if !stderr.trim().is_empty() {
        log.push_str("stderr:\n");
        log.push_str(&stderr);
    }
    log
}

/// The nginx binary: `$NGINX`, else `/usr/sbin/nginx`, else `nginx` on
/// `PATH`.
fn find_binary() -> io::Result<PathBuf> {
    let not_found = |detail: String| io::Error::new(io::ErrorKind::NotFound, detail);
    if let Some(value) = std::env::var_os("NGINX").filter(|value| !value.is_empty()) {
        let named = PathBuf::from(&value);
        let found = if named.components().count() > 1 {
            Some(named.clone()).filter(|path| is_executable(path))
        } else {
            search_path(&value)
        };
        return found.ok_or_else(|| {
            not_found(format!(
                "{NOT_FOUND}; NGINX is set to {}, which is not an executable file",
                named.display()
            ))
        });
    }
    let default = Path::new(DEFAULT_BINARY);
    if is_executable(default) {
        return Ok(default.to_owned());
    }
    search_path("nginx".as_ref()).ok_or_else(|| not_found(NOT_FOUND.to_owned()))
}

/// The first executable file called `name` in a directory of `PATH`.
fn search_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a file that someone may execute.
fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Creates a new, empty directory for one nginx, under the system's temporary
/// directory and named after this process and a counter.
fn create_dir() -> io::Result<PathBuf> {
    let base = std::env::temp_dir();
    loop {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("connpool-nginx-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // Left over from an earlier process with the same pid.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(io::Error::new(
                    err.kind(),
                    format!("cannot create {}: {err}", dir.display()),
                ));
            }
        }
    }
}

/// Writes `www/bytes/N` for each of [`Nginx::BYTES_SIZES`].
fn write_static_files(dir: &Path) -> io::Result<()> {
    let bytes = dir.join("www").join("bytes");
    fs::create_dir_all(&bytes)?;
    for size in Nginx::BYTES_SIZES {
        let body = crate::http::body_pattern(size);
        fs::write(bytes.join(size.to_string()), body)?;
    }
    Ok(())
}

/// A port on `127.0.0.1` that was free a moment ago.
fn free_port() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.local_addr()
}

/// `path` as a double-quoted nginx string.
fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
