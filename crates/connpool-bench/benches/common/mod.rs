//! What the custom-harness benches (`http_clients`, `scale`, `idle_memory`)
//! share: the server child process's plumbing and its request-head
//! buffer, the system calls (CPU affinity, `RLIMIT_NOFILE`), the shell of
//! a counting global allocator, the peers' default clients, where the
//! client and the server run, and small helpers for options and reports.
//! [`rounds`] and [`requests`] hold what the round-based client benches
//! (`http_clients`, `https_clients`) measure with and the requests they
//! make.
//!
//! Each bench compiles its own copy of this module (`mod common;`) and
//! uses a part of it; every item is used by at least two of them.
#![allow(dead_code)] // what one bench leaves unused here, another uses

pub mod requests;
pub mod rounds;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

use bytes::Bytes;
use http_body_util::Empty;

// --------------------------------------------------------------- constants

/// The servers' one response.
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n";
/// Its body.
pub const BODY: &[u8] = b"hello, world\n";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether a response is the servers' one.
pub fn check(status: u16, body: &[u8]) -> Result<(), BoxError> {
    if status != 200 || body != BODY {
        return Err(format!("unexpected response: {status} {body:?}").into());
    }
    Ok(())
}

// ------------------------------------------------------------------ peers

pub type HyperClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

/// hyper-util's legacy client builder on tokio, its defaults untouched.
pub fn hyper_builder() -> hyper_util::client::legacy::Builder {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
}

/// reqwest's default client, minus the environment's proxy settings (no
/// default features; plain HTTP here).
pub fn reqwest_client() -> reqwest::Client {
    install_ring_provider();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// Installs rustls's `ring` provider as the process default, once: reqwest
/// is built with `rustls-no-provider` (no aws-lc-rs) and panics when it
/// builds a client without one, even for plain HTTP. connpool picks `ring`
/// explicitly and needs none.
pub fn install_ring_provider() {
    // An error means a provider is installed already: the same one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// -------------------------------------------------------- counting allocator

/// What a [`Counting`] allocator records. Called after `System` allocated
/// (never for a failed allocation) and before it frees; must not allocate.
pub trait Count {
    fn allocated(&self, size: usize);
    fn reallocated(&self, old_size: usize, new_size: usize);
    fn freed(&self, size: usize);
}

/// `System`, telling `C` of every block.
pub struct Counting<C>(pub C);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; counting touches only
// atomics and never allocates.
unsafe impl<C: Count> GlobalAlloc for Counting<C> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            self.0.allocated(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.0.allocated(layout.size());
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            self.0.reallocated(layout.size(), new_size);
        }
        new
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.0.freed(layout.size());
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
}

// ------------------------------------------------------------ system calls

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data for which all zeroes is the empty
    // set; `sched_getaffinity` writes at most `size_of::<cpu_set_t>()`
    // bytes into the set we own; `CPU_ISSET` reads inside it for indexes
    // below `CPU_SETSIZE`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpus`; threads it starts later inherit the
/// set.
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: as in `allowed_cpus`; `CPU_SET` writes inside the set we own
    // for indexes below `CPU_SETSIZE` (checked), and `sched_setaffinity`
    // only reads it; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            assert!(cpu < libc::CPU_SETSIZE as usize, "CPU {cpu} out of range");
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets this process's soft `RLIMIT_NOFILE` to `soft` (at most the hard
/// limit), or to the hard limit; returns the (soft, hard) limits now in
/// force.
pub fn raise_nofile(soft: Option<u64>) -> std::io::Result<(u64, u64)> {
    // SAFETY: `rlimit` is plain data; `getrlimit` fills the struct we own
    // and `setrlimit` only reads it; `RLIMIT_NOFILE` is a valid resource.
    // Changing the soft limit within the hard one affects nothing but
    // later `open`/`socket`/`accept` calls.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim.rlim_cur = soft.map_or(lim.rlim_max, |s| s.min(lim.rlim_max));
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((lim.rlim_cur, lim.rlim_max))
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns it; on
/// failure says so on stderr, as `who`.
pub fn raise_nofile_or_warn(who: &str) -> Option<u64> {
    match raise_nofile(None) {
        Ok((soft, _)) => Some(soft),
        Err(e) => {
            eprintln!("{who}: could not raise RLIMIT_NOFILE: {e}");
            None
        }
    }
}

// -------------------------------------------------------------- placement

/// Where the client and the server run: the first two allowed CPUs, the
/// client's and the server's, when there are two.
pub struct Placement {
    pub client_cpu: Option<usize>,
    pub server_cpu: Option<usize>,
    /// Why nothing is pinned, if nothing is.
    pub unpinned: Option<String>,
}

impl Placement {
    /// The first two allowed CPUs: the client's and the server's.
    pub fn choose() -> Placement {
        let cpus = allowed_cpus();
        if cpus.len() < 2 {
            return Placement {
                client_cpu: None,
                server_cpu: None,
                unpinned: Some(format!("{} CPU(s) allowed: nothing pinned", cpus.len())),
            };
        }
        Placement {
            client_cpu: Some(cpus[0]),
            server_cpu: Some(cpus[1]),
            unpinned: None,
        }
    }

    /// Pins the calling (main) thread to the client's CPU; the threads it
    /// starts inherit it.
    pub fn pin_client(&mut self) {
        let Some(cpu) = self.client_cpu else { return };
        if let Err(e) = pin_current_thread(&[cpu]) {
            self.client_cpu = None;
            self.unpinned = Some(format!(
                "pinning the client failed ({e}): client not pinned"
            ));
        }
    }

    /// Both CPUs, the client's and the server's, when both are pinned.
    pub fn both(&self) -> Option<(usize, usize)> {
        Some((self.client_cpu?, self.server_cpu?))
    }
}

// ------------------------------------------------------------------ server

/// How the parent tells the server child which CPU to pin itself to.
pub fn cpu_arg(cpu: Option<usize>) -> String {
    cpu.map_or("-".to_string(), |c| c.to_string())
}

/// In the server child: pins the process to `cpu`, unless it is `-` (see
/// [`cpu_arg`]); a failure is said on stderr.
pub fn pin_server(cpu: &str) {
    let pinned = cpu.parse::<usize>().map(|c| (c, pin_current_thread(&[c])));
    if let Ok((cpu, Err(e))) = pinned {
        eprintln!("server: could not pin to CPU {cpu}: {e}");
    }
}

/// In the server child: a listener on 127.0.0.1 (port chosen by the
/// kernel). Call inside a tokio runtime.
pub fn listen_local(backlog: u32) -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().expect("server: socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("server: bind");
    // The kernel caps the backlog at net.core.somaxconn.
    socket.listen(backlog).expect("server: listen")
}

/// In the server child: prints `line` (the port first) for the parent.
pub fn announce(line: &str) {
    println!("{line}");
    std::io::stdout().flush().expect("server: stdout");
}

/// In the server child: ends the process once the parent closes its stdin.
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        // The parent holds our stdin: EOF means it is gone.
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
}

/// In the server child: for every line on stdin, prints `report()` as one
/// line on stdout; ends the process once the parent closes its stdin.
pub fn report_on_request(report: impl Fn() -> String) {
    let mut out = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        let _ = writeln!(out, "{}", report());
        let _ = out.flush();
    }
    std::process::exit(0);
}

/// A connection's read buffer of `N` bytes, cut into request heads (up to
/// the blank line: the servers ignore bodies, the requests are GETs).
pub struct Heads<const N: usize> {
    buf: [u8; N],
    start: usize,
    end: usize,
}

impl<const N: usize> Heads<N> {
    pub fn new() -> Self {
        Heads {
            buf: [0; N],
            start: 0,
            end: 0,
        }
    }

    /// The next complete head in the buffer, taken out of it.
    pub fn next_head(&mut self) -> Option<&[u8]> {
        let from = self.start;
        let at = find_head_end(&self.buf[from..self.end])?;
        self.start += at;
        Some(&self.buf[from..from + at])
    }

    /// Where to read more, once the complete heads are taken; `None` when
    /// what is left is a head larger than the buffer.
    pub fn spare(&mut self) -> Option<&mut [u8]> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == N {
            if self.start == 0 {
                return None;
            }
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        Some(&mut self.buf[self.end..])
    }

    /// Counts `n` bytes read into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Reads more of `stream` into the buffer; `false` when the client
    /// closed, the read failed, or what is left is a head larger than the
    /// buffer: the connection is done.
    pub fn read_from(&mut self, stream: &mut impl std::io::Read) -> bool {
        let Some(spare) = self.spare() else {
            return false; // a head larger than the buffer
        };
        match stream.read(spare) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.filled(n);
                true
            }
        }
    }

    /// [`read_from`](Self::read_from) on a tokio stream.
    pub async fn read_async(&mut self, stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> bool {
        use tokio::io::AsyncReadExt as _;
        let Some(spare) = self.spare() else {
            return false; // a head larger than the buffer
        };
        match stream.read(spare).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.filled(n);
                true
            }
        }
    }
}

/// The length of the first request head in `bytes`, blank line included.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The server child process (this binary, re-executed with an environment
/// variable set), stopped when dropped: it exits when its stdin closes.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// The first line it printed: its port, then what else it says.
    pub first_line: String,
    /// What it prints after that line.
    pub stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Starts the server with `env` set to `value` and reads its port.
    pub fn start(env: &str, value: &str) -> ServerProcess {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(exe)
            .env(env, value)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server process");
        let mut stdout = BufReader::new(child.stdout.take().expect("server stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the server's port");
        let port: u16 = line
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the server printed {line:?}, not a port"));
        ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            first_line: line,
            stdout,
        }
    }
}

impl ServerProcess {
    /// Sends `ask` (a line) to the server and reads the line of `n`
    /// counters it answers with.
    pub fn counters(&mut self, ask: &[u8], n: usize) -> Vec<u64> {
        let stdin = self.child.stdin.as_mut().expect("server stdin");
        stdin
            .write_all(ask)
            .and_then(|()| stdin.flush())
            .expect("ask the server for its counters");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read the server's counters");
        let counters: Vec<u64> = line
            .split_whitespace()
            .map(|w| w.parse().expect("a counter"))
            .collect();
        assert_eq!(counters.len(), n, "the server's counters: {line:?}");
        counters
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the server exits at EOF
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- options

/// A number argument of `flag` (`_` allowed between digits).
pub fn number(flag: &str, value: Option<String>) -> Result<u64, String> {
    value
        .and_then(|v| v.replace('_', "").parse().ok())
        .ok_or_else(|| format!("{flag} wants a number"))
}

/// A positive number argument of `flag` (`_` allowed between digits).
pub fn positive(flag: &str, value: Option<String>) -> Result<u64, String> {
    number(flag, value)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{flag} wants a positive number"))
}

/// The argument of `--only NAME[,NAME...]`: the clients named, out of `all`.
pub fn only<K: Copy>(
    value: Option<String>,
    all: &[K],
    name: impl Fn(K) -> &'static str,
) -> Result<Vec<K>, String> {
    let names = value.ok_or("--only wants a client name")?;
    names
        .split(',')
        .map(|n| {
            all.iter()
                .copied()
                .find(|&k| name(k) == n.trim())
                .ok_or_else(|| format!("unknown client {n:?}"))
        })
        .collect()
}

/// The options parsed, or `None` after printing the usage for `--help`
/// (an empty error); any other error is printed with the usage, and the
/// process exits with status 2.
pub fn options_or_usage<T>(parsed: Result<T, String>, usage: &str) -> Option<T> {
    match parsed {
        Ok(options) => Some(options),
        Err(why) if why.is_empty() => {
            println!("{usage}"); // --help
            None
        }
        Err(why) => {
            eprintln!("{why}\n{usage}");
            std::process::exit(2);
        }
    }
}

// ------------------------------------------------------------------ report

/// The three figures of `/proc/loadavg` (empty if unreadable).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The versions of `crates` in the workspace's `Cargo.lock`, in the order
/// of `crates`.
pub fn locked_versions(crates: &[&'static str]) -> Vec<(&'static str, String)> {
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|p| p.exists())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let mut found = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("name = \"")
            .and_then(|s| s.strip_suffix('"'))
        else {
            continue;
        };
        let Some(krate) = crates.iter().find(|c| **c == name) else {
            continue;
        };
        let version = lines
            .next()
            .and_then(|l| l.strip_prefix("version = \""))
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or("?");
        found.push((*krate, version.to_string()));
    }
    found.sort_by_key(|(name, _)| crates.iter().position(|c| c == name));
    found
}

/// The `crates:` line: `versions` as `name version`, in order.
pub fn crates_line(versions: &[(&'static str, String)]) -> String {
    let versions: Vec<_> = versions.iter().map(|(n, v)| format!("{n} {v}")).collect();
    format!("crates: {}", versions.join(", "))
}

/// The `machine:` line.
pub fn machine_line(cpus_allowed: usize, load: &str) -> String {
    format!("machine: {cpus_allowed} CPU(s) allowed, load average at start {load}")
}

/// `versions` as a JSON object, name to version.
pub fn versions_json(
    versions: &[(&'static str, String)],
) -> serde_json::Map<String, serde_json::Value> {
    versions
        .iter()
        .map(|(n, v)| (n.to_string(), serde_json::Value::from(v.as_str())))
        .collect()
}

/// A goal's verdict, padded for the goals list: `None` when not run.
pub fn verdict(holds: Option<bool>) -> &'static str {
    match holds {
        Some(true) => "holds     ",
        Some(false) => "DOES NOT  ",
        None => "not run   ",
    }
}
