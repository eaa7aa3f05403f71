//! A real middlebox between client and server: three network namespaces,
//! with conntrack and nftables in the middle one.
//!
//! Load balancers, NAT gateways and stateful firewalls keep a table of the
//! TCP flows they forward and forget a flow that stayed idle for some time
//! (AWS NLB: 350 s, many NATs: 5 minutes or less). A packet of a forgotten
//! flow is then dropped without a word, or answered with an RST. Neither end
//! is told: the client's idle pooled connection still looks established, and
//! a request written into it is retransmitted into the void until the kernel
//! gives up (about 15 minutes by default). Loopback tests cannot show this;
//! [`NetChain`] builds the real thing with the kernel's own connection
//! tracking, the same code that runs in many of those middleboxes:
//!
//! ```text
//!  client ns               middle ns (forwards, conntrack, nftables)              server ns
//!  192.0.2.2  ---veth---  192.0.2.1 | 198.51.100.1  ---veth---  198.51.100.2
//! ```
//!
//! Addresses come from the documentation ranges (RFC 5737) and the only
//! routes are the two subnets via the middlebox: no default route, nothing
//! reaches the outside world. The middle namespace sets
//! `net.netfilter.nf_conntrack_tcp_timeout_established` (how long an idle
//! flow is remembered), sets `net.netfilter.nf_conntrack_tcp_loose=0` (so a
//! mid-flow packet of a forgotten flow is *not* adopted as a new flow, as a
//! real middlebox would not), and forwards with this nftables policy:
//!
//! ```text
//! ct state established,related accept
//! tcp flags & (syn | ack) == syn ct state new accept
//! <everything else: drop, or reject with tcp reset; see Forgotten>
//! ```
//!
//! The rules use `ct state`, which turns conntrack on in that namespace.
//!
//! # Running code in a namespace
//!
//! A socket belongs to the network namespace of the thread that created it,
//! for its whole life, whichever thread uses it later. [`Namespace::run`]
//! runs a closure on a new thread that has entered the namespace (threads it
//! spawns inherit it), so sockets created there live in that namespace.
//! [`Namespace::block_on`] does the same for a future, on a current-thread
//! Tokio runtime. The test's own thread never changes namespace.
//!
//! # A pitfall: `EINTR` on blocking reads with a timeout
//!
//! [`NetChainBuilder::start`] and [`NetChain::blackhole`] run `ip` and `nft`
//! as child processes. A child's exit can interrupt a socket read that
//! another thread of the process is blocked in, although no `SIGCHLD`
//! handler is installed: a read with a timeout (`SO_RCVTIMEO`, i.e.
//! `set_read_timeout`) then fails with [`io::ErrorKind::Interrupted`]. With
//! tests running in parallel (one building a chain while another reads) this
//! happens; it was seen on Linux 6.18. `read_exact` and `write_all` retry
//! on it; a test that calls `read` itself must too. Async sockets (Tokio)
//! are not affected.
//!
//! # Requirements
//!
//! Linux, root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`), `ip` (Debian package
//! `iproute2`) and `nft` (package `nftables`). Without them
//! [`NetChainBuilder::start`] fails with an error that names the failing
//! command and its output; it never skips silently.
//!
//! # Example
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use connpool_testkit::http::HttpServer;
//! use connpool_testkit::netns::{Forgotten, NetChain};
//!
//! // Needs root.
//! let chain = NetChain::builder()
//!     .established_timeout(Duration::from_secs(1))
//!     .forgotten(Forgotten::Drop)
//!     .start()?;
//! let server = chain.start_http_server(HttpServer::builder())?;
//! let mut client = chain.connect_from_client(server.addr())?;
//!
//! client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
//! let mut response = [0; 40];
//! client.read_exact(&mut response)?;
//!
//! // Stay idle until the middlebox has forgotten the flow: from now on it
//! // drops every packet of this connection.
//! chain.wait_forgotten(client.local_addr()?, Duration::from_secs(5))?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::{HttpServer, HttpServerBuilder};

/// The client's address, on the client–middlebox link (192.0.2.0/24,
/// TEST-NET-1).
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The middlebox's address on the client side.
pub const MIDDLE_CLIENT_SIDE_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The middlebox's address on the server side.
pub const MIDDLE_SERVER_SIDE_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The server's address, on the middlebox–server link (198.51.100.0/24,
/// TEST-NET-2).
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// The nftables table the middlebox's rules live in.
const TABLE: &str = "connpool_middlebox";
/// Where `ip netns` keeps the namespaces' handles.
const NETNS_DIR: &str = "/var/run/netns";
/// How often [`NetChain::wait_forgotten`] looks at the conntrack table.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Used by [`NetChain::wait_forgotten`] when the kernel has no
/// `/proc/net/nf_conntrack`: how long past the established timeout the flow
/// is assumed gone.
const NO_PROCFS_MARGIN: Duration = Duration::from_millis(1500);

/// Makes the namespace names of one process unique.
static NEXT_CHAIN: AtomicU64 = AtomicU64::new(0);

/// What the middlebox does with a packet of a flow it does not know (any
/// packet but a connection-opening SYN): a flow it forgot after
/// [`NetChainBuilder::established_timeout`], or one forgotten on command
/// with [`NetChain::forget_flows`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Forgotten {
    /// Drops it silently (`drop`), like most cloud load balancers and NAT
    /// gateways: the sender retransmits until it gives up.
    #[default]
    Drop,
    /// Answers a TCP packet with an RST in the name of its destination
    /// (`reject with tcp reset`), like some firewalls: the sender's next read
    /// or write fails with `ECONNRESET`. The other end is not told.
    Reset,
}

/// The settings of a [`NetChain`]. Start from [`NetChain::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use connpool_testkit::netns::{Forgotten, NetChain};
///
/// // A firewall that forgets flows idle for 2 s and then resets them.
/// let chain = NetChain::builder()
///     .established_timeout(Duration::from_secs(2))
///     .forgotten(Forgotten::Reset)
///     .start()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct NetChainBuilder {
    established_timeout: Duration,
    forgotten: Forgotten,
}

impl Default for NetChainBuilder {
    /// An established timeout of 60 s, and [`Forgotten::Drop`].
    fn default() -> Self {
        NetChainBuilder {
            established_timeout: Duration::from_secs(60),
            forgotten: Forgotten::Drop,
        }
    }
}

impl NetChainBuilder {
    /// How long the middlebox remembers an established TCP flow that sees no
    /// packet (`net.netfilter.nf_conntrack_tcp_timeout_established`). Any
    /// packet of the flow, in either direction, starts it again. Rounded up
    /// to whole seconds, at least 1 s (the sysctl's unit). Default: 60 s.
    ///
    /// The kernel counts it from the last packet, and may keep an expired
    /// entry in its table for a while; use [`NetChain::wait_forgotten`]
    /// rather than sleeping.
    #[must_use]
    pub fn established_timeout(mut self, timeout: Duration) -> Self {
        self.established_timeout = timeout;
        self
    }

    /// What happens to packets of flows the middlebox does not know. Default:
    /// [`Forgotten::Drop`].
    #[must_use]
    pub fn forgotten(mut self, forgotten: Forgotten) -> Self {
        self.forgotten = forgotten;
        self
    }

    /// Creates the three namespaces, links and configures them, and loads
    /// the middlebox's rules. Takes a few tens of milliseconds.
    ///
    /// # Errors
    ///
    /// Fails, naming the command and quoting its output, if a tool is
    /// missing (`ip`, `nft`), if the process is not root, or if the kernel
    /// lacks a feature (network namespaces, veth, conntrack, nftables).
    /// Whatever was created is removed again.
    pub fn start(self) -> io::Result<NetChain> {
        let ip = find_tool("ip", "iproute2")?;
        let nft = find_tool("nft", "nftables")?;
        let timeout_secs = whole_seconds(self.established_timeout);
        remove_orphans(&ip);
        let id = format!(
            "cp-{}-{}",
            std::process::id(),
            NEXT_CHAIN.fetch_add(1, Ordering::Relaxed)
        );
        let mut chain = NetChain {
            client: Namespace::new(format!("{id}-c")),
            middle: Namespace::new(format!("{id}-m")),
            server: Namespace::new(format!("{id}-s")),
            established_timeout: Duration::from_secs(timeout_secs),
            forgotten: self.forgotten,
            ip,
            nft,
            created: Vec::new(),
        };
        // On error, dropping `chain` deletes the namespaces created so far.
        chain.set_up(timeout_secs)?;
        Ok(chain)
    }
}

/// A live client — middlebox — server chain of network namespaces (see the
/// [module documentation](self)).
///
/// Dropping it deletes the three namespaces (also when a test panics: drop
/// runs while unwinding). A namespace lives on, nameless, while something
/// still uses it (a socket created in it, a thread inside it), so drop
/// servers and sockets first if the test relies on the network being gone.
///
/// Several chains can exist at once, in one process or several (test
/// binaries run in parallel): namespace names contain the process id and a
/// counter, and interface names live inside the namespaces.
#[derive(Debug)]
pub struct NetChain {
    client: Namespace,
    middle: Namespace,
    server: Namespace,
    /// As applied: whole seconds.
    established_timeout: Duration,
    forgotten: Forgotten,
    ip: PathBuf,
    nft: PathBuf,
    /// The namespaces created so far, deleted on drop.
    created: Vec<String>,
}

impl NetChain {
    /// A builder, with the defaults of [`NetChainBuilder::default`].
    #[must_use]
    pub fn builder() -> NetChainBuilder {
        NetChainBuilder::default()
    }

    /// The client's namespace: create client sockets here.
    pub fn client(&self) -> &Namespace {
        &self.client
    }

    /// The middlebox's namespace, where conntrack and nftables run. Tests
    /// rarely need it directly: [`NetChain::blackhole`],
    /// [`NetChain::forget_flows`] and [`NetChain::tracked_flows`] act on it.
    pub fn middle(&self) -> &Namespace {
        &self.middle
    }

    /// The server's namespace: start servers here (see
    /// [`NetChain::start_http_server`]).
    pub fn server(&self) -> &Namespace {
        &self.server
    }

    /// The client's address, [`CLIENT_ADDR`] (`192.0.2.2`).
    pub fn client_addr(&self) -> IpAddr {
        IpAddr::V4(CLIENT_ADDR)
    }

    /// The server's address, [`SERVER_ADDR`] (`198.51.100.2`), reachable
    /// from the client namespace through the middlebox.
    pub fn server_addr(&self) -> IpAddr {
        IpAddr::V4(SERVER_ADDR)
    }

    /// The established timeout in force (whole seconds, at least 1 s).
    pub fn established_timeout(&self) -> Duration {
        self.established_timeout
    }

    /// What the middlebox does with packets of flows it does not know.
    pub fn forgotten(&self) -> Forgotten {
        self.forgotten
    }

    /// Starts an [`HttpServer`] from `builder` in the server namespace,
    /// listening on [`NetChain::server_addr`] (overriding any
    /// [`HttpServerBuilder::bind_ip`]). Its thread stays in that namespace.
    ///
    /// ```no_run
    /// use connpool_testkit::http::HttpServer;
    /// use connpool_testkit::netns::NetChain;
    ///
    /// let chain = NetChain::builder().start()?;
    /// let server = chain.start_http_server(HttpServer::builder())?;
    /// assert_eq!(server.addr().ip(), chain.server_addr());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Namespace::run`] and [`HttpServerBuilder::start`].
    pub fn start_http_server(&self, builder: HttpServerBuilder) -> io::Result<HttpServer> {
        let builder = builder.bind_ip(self.server_addr());
        self.server.run(move || builder.start())?
    }

    /// Connects a blocking `std` TCP stream from the client namespace to
    /// `addr` (usually a server's address in the server namespace). The
    /// stream stays in the client namespace; use it from any thread.
    ///
    /// # Errors
    ///
    /// As [`Namespace::run`] and [`TcpStream::connect`].
    pub fn connect_from_client(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        self.client.run(move || TcpStream::connect(addr))?
    }

    /// With `true`, the middlebox drops every packet it would forward, in
    /// both directions, whatever flow it belongs to; with `false`, it
    /// forwards normally again. Idempotent.
    ///
    /// Why: the path going silent at a chosen moment, e.g. right after the
    /// server processed a request and before its response gets through.
    /// Conntrack still sees the dropped packets (it runs before the filter),
    /// so they keep their flows remembered.
    ///
    /// ```no_run
    /// use connpool_testkit::netns::NetChain;
    ///
    /// let chain = NetChain::builder().start()?;
    /// chain.blackhole(true)?;
    /// // ... the server's response never arrives ...
    /// chain.blackhole(false)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Fails if `nft` fails.
    pub fn blackhole(&self, on: bool) -> io::Result<()> {
        let mut rules = format!("flush chain inet {TABLE} blackhole\n");
        if on {
            let _ = writeln!(rules, "add rule inet {TABLE} blackhole drop");
        }
        // One `nft -f` run is one transaction: never half applied.
        self.nft(&rules)
    }

    /// Makes the middlebox forget every flow it tracks, now (what
    /// `conntrack -F` does, without needing that tool: one ctnetlink
    /// message). From then on the packets of those connections are dropped
    /// or reset, as [`NetChain::forgotten`] says.
    ///
    /// Why: a test of what happens after the middlebox forgot a flow need not
    /// wait for the established timeout.
    ///
    /// # Errors
    ///
    /// Fails if the kernel refuses (no `CONFIG_NF_CT_NETLINK`, not root).
    pub fn forget_flows(&self) -> io::Result<()> {
        self.middle.run(flush_conntrack)?
    }

    /// The number of flows the middlebox's conntrack table holds
    /// (`net.netfilter.nf_conntrack_count` of the middle namespace). It may
    /// include expired entries the kernel has not collected yet; use
    /// [`NetChain::tracked_flows`] to see live ones.
    ///
    /// # Errors
    ///
    /// Fails if the count cannot be read.
    pub fn conntrack_count(&self) -> io::Result<u64> {
        let text = self
            .middle
            .run(|| read_to_string("/proc/sys/net/netfilter/nf_conntrack_count"))??;
        text.trim()
            .parse()
            .map_err(|error| io::Error::other(format!("nf_conntrack_count {text:?}: {error}")))
    }

    /// The TCP flows the middlebox remembers right now, read from
    /// `/proc/net/nf_conntrack` in the middle namespace (expired entries are
    /// left out).
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if the kernel does not provide that file
    /// (`CONFIG_NF_CONNTRACK_PROCFS` off); other errors if it cannot be read
    /// or parsed.
    pub fn tracked_flows(&self) -> io::Result<Vec<TrackedFlow>> {
        // `/proc/net` is the namespace of the process's main thread;
        // `/proc/thread-self/net` is the one of the thread reading it.
        let text = self
            .middle
            .run(|| read_to_string("/proc/thread-self/net/nf_conntrack"))??;
        let mut flows = Vec::new();
        for line in text.lines() {
            if let Some(flow) = TrackedFlow::parse(line)? {
                flows.push(flow);
            }
        }
        Ok(flows)
    }

    /// Whether the middlebox remembers the TCP flow whose client end is
    /// `client` (the client socket's `local_addr()`).
    ///
    /// # Errors
    ///
    /// As [`NetChain::tracked_flows`].
    pub fn tracks(&self, client: SocketAddr) -> io::Result<bool> {
        Ok(self
            .tracked_flows()?
            .iter()
            .any(|flow| flow.client == client))
    }

    /// Waits until the middlebox has forgotten the TCP flow whose client end
    /// is `client` (the client socket's `local_addr()`), and returns how long
    /// that took. Polls [`NetChain::tracked_flows`] every 20 ms.
    ///
    /// The flow must stay idle meanwhile: any packet refreshes it.
    ///
    /// Without `/proc/net/nf_conntrack` (see [`NetChain::tracked_flows`]),
    /// this cannot look, and sleeps the established timeout plus 1.5 s
    /// instead (which is enough only if the flow was already idle when this
    /// was called).
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::TimedOut`] if the flow is still tracked after
    /// `timeout`; otherwise as [`NetChain::tracked_flows`].
    pub fn wait_forgotten(&self, client: SocketAddr, timeout: Duration) -> io::Result<Duration> {
        let started = Instant::now();
        loop {
            match self.tracks(client) {
                Ok(false) => return Ok(started.elapsed()),
                Ok(true) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    std::thread::sleep(self.established_timeout + NO_PROCFS_MARGIN);
                    return Ok(started.elapsed());
                }
                Err(error) => return Err(error),
            }
            if started.elapsed() >= timeout {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the middlebox still tracks the flow from {client} after {timeout:?} \
                         (established timeout {:?}): something kept it busy",
                        self.established_timeout
                    ),
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Builds the chain in the namespaces named in `self`.
    fn set_up(&mut self, timeout_secs: u64) -> io::Result<()> {
        for name in [
            self.client.name.clone(),
            self.middle.name.clone(),
            self.server.name.clone(),
        ] {
            self.ip(None, &["netns", "add", &name])?;
            self.created.push(name);
        }
        let (c, m, s) = (
            self.client.name.as_str(),
            self.middle.name.as_str(),
            self.server.name.as_str(),
        );
        // Each veth pair is created in the middle namespace with its peer
        // moved to the end namespace at once, so no interface name ever
        // exists in the caller's namespace (and names cannot collide).
        let client_cidr = format!("{CLIENT_ADDR}/24");
        let server_cidr = format!("{SERVER_ADDR}/24");
        let middle_client_cidr = format!("{MIDDLE_CLIENT_SIDE_ADDR}/24");
        let middle_server_cidr = format!("{MIDDLE_SERVER_SIDE_ADDR}/24");
        let client_net = format!("{}/24", Ipv4Addr::new(192, 0, 2, 0));
        let server_net = format!("{}/24", Ipv4Addr::new(198, 51, 100, 0));
        let client_gateway = MIDDLE_CLIENT_SIDE_ADDR.to_string();
        let server_gateway = MIDDLE_SERVER_SIDE_ADDR.to_string();
        let steps: [(&str, &[&str]); 15] = [
            (
                m,
                &[
                    "link",
                    "add",
                    "to-client",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "mbox",
                    "netns",
                    c,
                ],
            ),
            (
                m,
                &[
                    "link",
                    "add",
                    "to-server",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "mbox",
                    "netns",
                    s,
                ],
            ),
            (m, &["addr", "add", &middle_client_cidr, "dev", "to-client"]),
            (m, &["addr", "add", &middle_server_cidr, "dev", "to-server"]),
            (c, &["addr", "add", &client_cidr, "dev", "mbox"]),
            (s, &["addr", "add", &server_cidr, "dev", "mbox"]),
            (c, &["link", "set", "lo", "up"]),
            (m, &["link", "set", "lo", "up"]),
            (s, &["link", "set", "lo", "up"]),
            (c, &["link", "set", "mbox", "up"]),
            (s, &["link", "set", "mbox", "up"]),
            (m, &["link", "set", "to-client", "up"]),
            (m, &["link", "set", "to-server", "up"]),
            (c, &["route", "add", &server_net, "via", &client_gateway]),
            (s, &["route", "add", &client_net, "via", &server_gateway]),
        ];
        for (namespace, args) in steps {
            self.ip(Some(namespace), args)?;
        }

        // The rules first: `ct state` turns conntrack on in the namespace
        // (and loads the module if needed, which creates its sysctls).
        let reject = match self.forgotten {
            Forgotten::Drop => "",
            Forgotten::Reset => "        meta l4proto tcp reject with tcp reset\n",
        };
        let rules = format!(
            "table inet {TABLE} {{\n\
             \x20   chain blackhole {{\n\
             \x20       type filter hook forward priority -10; policy accept;\n\
             \x20   }}\n\
             \x20   chain forward {{\n\
             \x20       type filter hook forward priority 0; policy drop;\n\
             \x20       ct state established,related accept\n\
             \x20       tcp flags & (syn | ack) == syn ct state new accept\n\
             {reject}\
             \x20       drop\n\
             \x20   }}\n\
             }}\n"
        );
        self.nft(&rules)?;

        let timeout = timeout_secs.to_string();
        let sysctls = [
            ("net/ipv4/ip_forward", "1"),
            ("net/netfilter/nf_conntrack_tcp_loose", "0"),
            (
                "net/netfilter/nf_conntrack_tcp_timeout_established",
                timeout.as_str(),
            ),
        ];
        self.middle.run(move || {
            for (key, value) in sysctls {
                write_sysctl(key, value)?;
            }
            Ok::<(), io::Error>(())
        })??;
        Ok(())
    }

    /// Runs `ip [-n <namespace>] <args>`.
    fn ip(&self, namespace: Option<&str>, args: &[&str]) -> io::Result<()> {
        let mut command = Command::new(&self.ip);
        if let Some(namespace) = namespace {
            command.args(["-n", namespace]);
        }
        command.args(args);
        run_command(command, None)
    }

    /// Loads `rules` with `nft -f -` in the middle namespace.
    fn nft(&self, rules: &str) -> io::Result<()> {
        let mut command = Command::new(&self.ip);
        command
            .args(["netns", "exec", &self.middle.name])
            .arg(&self.nft)
            .args(["-f", "-"]);
        run_command(command, Some(rules))
    }
}

impl Drop for NetChain {
    fn drop(&mut self) {
        for name in self.created.drain(..).rev() {
            let mut command = Command::new(&self.ip);
            command.args(["netns", "del", &name]);
            if let Err(error) = run_command(command, None) {
                // Nothing else to do from a destructor; say so loudly.
                eprintln!("connpool-testkit: could not delete network namespace {name}: {error}");
            }
        }
    }
}

/// Deletes the namespaces of chains whose process is gone.
///
/// A chain's namespaces are deleted when it is dropped, but a process that
/// dies without unwinding (killed, Ctrl-C in `connpool demo`, `abort`)
/// leaves them behind, and they would pile up run after run. Their names
/// say which process made them (`cp-<pid>-<n>-<c|m|s>`): one whose process
/// no longer exists is an orphan. A pid reused by another process since
/// keeps its namespaces until that process ends too (never a live chain's).
/// Failures are ignored: cleaning up is a courtesy, not the job.
fn remove_orphans(ip: &Path) {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if orphan_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let mut command = Command::new(ip);
            command.args(["netns", "del", name]);
            let _ = run_command(command, None);
        }
    }
}

/// The process id in a chain's namespace name, `cp-<pid>-<n>-<c|m|s>`.
fn orphan_pid(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix("cp-")?.split('-');
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    matches!(parts.next()?, "c" | "m" | "s").then_some(())?;
    parts.next().is_none().then_some(pid)
}

/// A flow in the middlebox's conntrack table (one line of
/// `/proc/net/nf_conntrack`), from [`NetChain::tracked_flows`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackedFlow {
    /// The end that opened the flow (the original direction's source).
    pub client: SocketAddr,
    /// The end it connected to (the original direction's destination).
    pub server: SocketAddr,
    /// Conntrack's TCP state: `ESTABLISHED`, `SYN_SENT`, `TIME_WAIT`, ...
    pub state: String,
    /// Time left before the flow is forgotten, unless a packet comes.
    pub expires_in: Duration,
}

impl TrackedFlow {
    /// Parses one line such as
    /// `ipv4 2 tcp 6 299 ESTABLISHED src=192.0.2.2 dst=198.51.100.2
    /// sport=40000 dport=8080 src=... [ASSURED] mark=0 use=2`. Returns `None`
    /// for flows other than TCP.
    fn parse(line: &str) -> io::Result<Option<TrackedFlow>> {
        let bad = || io::Error::other(format!("unexpected nf_conntrack line: {line:?}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(2) != Some(&"tcp") {
            return Ok(None);
        }
        let expires_in = fields
            .get(4)
            .and_then(|secs| secs.parse().ok())
            .map(Duration::from_secs)
            .ok_or_else(bad)?;
        let state = (*fields.get(5).ok_or_else(bad)?).to_owned();
        // The first `key=value` of each name is the original direction.
        let value = |key: &str| {
            fields
                .iter()
                .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
                .ok_or_else(bad)
        };
        let ip = |key: &str| value(key)?.parse::<IpAddr>().map_err(|_| bad());
        let port = |key: &str| value(key)?.parse::<u16>().map_err(|_| bad());
        Ok(Some(TrackedFlow {
            client: SocketAddr::new(ip("src")?, port("sport")?),
            server: SocketAddr::new(ip("dst")?, port("dport")?),
            state,
            expires_in,
        }))
    }
}

/// One of the chain's network namespaces; get it from [`NetChain::client`],
/// [`NetChain::middle`] or [`NetChain::server`].
///
/// A socket lives in the namespace of the thread that created it, so this
/// runs code on threads that have entered the namespace. A clone names the
/// same namespace (it does not keep it alive: once the chain is dropped,
/// entering fails).
#[derive(Clone, Debug)]
pub struct Namespace {
    name: String,
    /// `/var/run/netns/<name>`, the handle `ip netns add` created.
    path: PathBuf,
}

impl Namespace {
    fn new(name: String) -> Self {
        let path = Path::new(NETNS_DIR).join(&name);
        Namespace { name, path }
    }

    /// The namespace's name, as `ip netns list` shows it (`cp-<pid>-<n>-c`,
    /// `-m` or `-s`). Use it with `ip netns exec <name> ...` to look around
    /// while debugging a test.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a new thread inside this namespace, waits for it, and
    /// returns its result. Sockets `f` creates live in this namespace (and
    /// keep working from any thread afterwards); threads `f` spawns start in
    /// it too. The calling thread's namespace does not change.
    ///
    /// ```no_run
    /// use std::net::{SocketAddr, TcpStream};
    /// use connpool_testkit::netns::NetChain;
    ///
    /// let chain = NetChain::builder().start()?;
    /// let listener = chain.server().run(|| std::net::TcpListener::bind("198.51.100.2:0"))??;
    /// let addr = listener.local_addr()?;
    /// let client = chain.client().run(move || TcpStream::connect(addr))??;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Fails if the thread cannot be created or cannot enter the namespace
    /// (then `f` does not run).
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic continues on the calling thread.
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let handle = self.open()?;
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name(format!("netns {}", self.name))
                .spawn_scoped(scope, move || {
                    enter(&handle)?;
                    drop(handle);
                    Ok(f())
                })?;
            match thread.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Like [`Namespace::run`], but returns at once with the thread's
    /// handle, once the thread has entered the namespace.
    ///
    /// # Errors
    ///
    /// Fails if the thread cannot be created or cannot enter the namespace
    /// (then `f` does not run).
    pub fn spawn<T, F>(&self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let handle = self.open()?;
        let (entered_tx, entered_rx) = mpsc::sync_channel::<io::Result<()>>(1);
        let thread = std::thread::Builder::new()
            .name(format!("netns {}", self.name))
            .spawn(move || {
                let entered = enter(&handle);
                drop(handle);
                let failed = entered.is_err();
                // The receiver waits for this; it cannot be gone.
                let _ = entered_tx.send(entered);
                if failed {
                    // `f` must not run outside the namespace, and there is
                    // no `T` to return: end the thread by unwinding,
                    // without the panic hook's message (`spawn` reports the
                    // error and reaps this thread).
                    std::panic::resume_unwind(Box::new("could not enter the namespace"));
                }
                f()
            })?;
        match entered_rx.recv() {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other(format!(
                    "the thread for namespace {} ended before entering it",
                    self.name
                )))
            }
        }
    }

    /// Runs `future` to completion on a current-thread Tokio runtime, on a
    /// new thread inside this namespace (see [`Namespace::run`]), and
    /// returns its output. Sockets the future creates (e.g. a pool's
    /// connections) live in this namespace; so do threads it spawns (e.g.
    /// `spawn_blocking` for DNS).
    ///
    /// ```no_run
    /// use connpool_testkit::http::HttpServer;
    /// use connpool_testkit::netns::NetChain;
    /// use tokio::io::AsyncWriteExt;
    ///
    /// let chain = NetChain::builder().start()?;
    /// let server = chain.start_http_server(HttpServer::builder())?;
    /// let addr = server.addr();
    /// chain.client().block_on(async move {
    ///     let mut client = tokio::net::TcpStream::connect(addr).await?;
    ///     client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await
    /// })??;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Namespace::run`], or if the runtime cannot be built.
    pub fn block_on<F>(&self, future: F) -> io::Result<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        self.run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(runtime.block_on(future))
        })?
    }

    /// Moves the calling thread into this namespace, for good: sockets it
    /// creates from now on, and threads it spawns, are in this namespace,
    /// even after the [`NetChain`] is dropped.
    ///
    /// Why: for threads that someone else creates, e.g. the workers of a
    /// multi-thread Tokio runtime (`on_thread_start`). Prefer
    /// [`Namespace::run`] or [`Namespace::block_on`] otherwise; never call
    /// this on a thread that outlives the test.
    ///
    /// ```no_run
    /// use connpool_testkit::netns::NetChain;
    ///
    /// let chain = NetChain::builder().start()?;
    /// let client = chain.client().clone();
    /// let runtime = tokio::runtime::Builder::new_multi_thread()
    ///     .enable_all()
    ///     .on_thread_start(move || {
    ///         client.enter_current_thread().expect("enter the client namespace");
    ///     })
    ///     .build()?;
    /// // Tasks run on the workers, so their sockets are in the client
    /// // namespace. (Not `runtime.block_on`'s own future: it runs on the
    /// // calling thread.)
    /// let connect = runtime.spawn(tokio::net::TcpStream::connect("198.51.100.2:80"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Fails if the namespace is gone or cannot be entered.
    pub fn enter_current_thread(&self) -> io::Result<()> {
        enter(&self.open()?)
    }

    /// Opens the namespace's handle.
    fn open(&self) -> io::Result<File> {
        File::open(&self.path).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot open network namespace handle {}: {error}",
                    self.path.display()
                ),
            )
        })
    }
}

/// Moves the calling thread into the network namespace `handle` refers to.
fn enter(handle: &File) -> io::Result<()> {
    // SAFETY: `setns` takes a file descriptor and a flag and touches none of
    // our memory. The descriptor comes from `handle`, a `File` borrowed for
    // the whole call, so it is open and ours. `CLONE_NEWNET` changes only
    // the calling thread's network namespace (which sockets it creates
    // next); memory safety does not depend on it.
    let result = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
    if result == 0 {
        Ok(())
    } else {
        let error = io::Error::last_os_error();
        Err(io::Error::new(
            error.kind(),
            format!("setns(CLONE_NEWNET) failed (needs root): {error}"),
        ))
    }
}

/// Rounds `timeout` up to whole seconds, at least 1.
fn whole_seconds(timeout: Duration) -> u64 {
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    secs.max(1)
}

/// Finds `name` on `PATH` or in the usual system directories (`ip` and `nft`
/// live in `/usr/sbin`, which a non-root `PATH` often lacks).
fn find_tool(name: &str, package: &str) -> io::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let system = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(system)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "`{name}` not found on PATH or in /usr/sbin: install it (Debian package \
                     `{package}`); connpool-testkit's netns module needs it"
                ),
            )
        })
}

/// Runs `command` with `stdin` as its standard input; an error names the
/// command line and quotes its output.
fn run_command(mut command: Command, stdin: Option<&str>) -> io::Result<()> {
    let line = {
        let program = command.get_program().to_string_lossy().into_owned();
        command
            .get_args()
            .map(OsStr::to_string_lossy)
            .fold(program, |line, arg| line + " " + &arg)
    };
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|error| io::Error::new(error.kind(), format!("`{line}`: {error}")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A failed write shows up as the command's failure below.
        let _ = pipe.write_all(text.as_bytes());
    }
    let output = child.wait_with_output()?;
    if output.status.success() {
        return Ok(());
    }
    let mut message = format!("`{line}` failed ({})", output.status);
    for stream in [&output.stderr, &output.stdout] {
        let text = String::from_utf8_lossy(stream);
        if !text.trim().is_empty() {
            let _ = write!(message, ": {}", text.trim());
        }
    }
    if let Some(text) = stdin {
        let _ = write!(message, "\ninput:\n{text}");
    }
    let text = String::from_utf8_lossy(&output.stderr);
    if text.contains("Operation not permitted") || text.contains("Permission denied") {
        message.push_str("\n(network namespaces need root: CAP_SYS_ADMIN and CAP_NET_ADMIN)");
    }
    Err(io::Error::other(message))
}

/// Reads a whole file, naming it in errors (keeping the error's kind).
fn read_to_string(path: &str) -> io::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|error| io::Error::new(error.kind(), format!("reading {path}: {error}")))
}

/// Sets `/proc/sys/<key>` to `value` in the calling thread's network
/// namespace (network sysctls belong to the namespace of the thread that
/// opens them), and checks it took.
fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{key}");
    let annotate = |error: io::Error| {
        io::Error::new(error.kind(), format!("writing {value} to {path}: {error}"))
    };
    std::fs::write(&path, value).map_err(annotate)?;
    let now = read_to_string(&path)?;
    if now.trim() != value {
        return Err(io::Error::other(format!(
            "{path} is {:?} after writing {value}",
            now.trim()
        )));
    }
    Ok(())
}

/// `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE` (`linux/netfilter/
/// nfnetlink.h`, `nfnetlink_conntrack.h`): delete conntrack entries; with no
/// tuple attribute, all of them.
const CT_DELETE: u16 = (1 << 8) | 2;

/// Flushes the conntrack table of the calling thread's network namespace
/// with one ctnetlink message, as `conntrack -F` does, and waits for the
/// kernel's acknowledgement.
fn flush_conntrack() -> io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};

    let annotate = |error: io::Error| {
        io::Error::new(
            error.kind(),
            format!("flushing conntrack over netlink (NETLINK_NETFILTER): {error}"),
        )
    };
    let socket = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::RAW,
        Some(Protocol::from(libc::NETLINK_NETFILTER)),
    )
    .map_err(annotate)?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(annotate)?;

    // struct nlmsghdr (16 bytes, native byte order), then struct nfgenmsg.
    let sequence: u32 = 1;
    let flags = u16::try_from(libc::NLM_F_REQUEST | libc::NLM_F_ACK).map_err(io::Error::other)?;
    let mut message = Vec::with_capacity(20);
    message.extend_from_slice(&20_u32.to_ne_bytes()); // nlmsg_len
    message.extend_from_slice(&CT_DELETE.to_ne_bytes()); // nlmsg_type
    message.extend_from_slice(&flags.to_ne_bytes()); // nlmsg_flags
    message.extend_from_slice(&sequence.to_ne_bytes()); // nlmsg_seq
    message.extend_from_slice(&0_u32.to_ne_bytes()); // nlmsg_pid: the kernel assigns
    // nfgen_family (with version 0 the kernel flushes every family),
    // version, res_id (big endian).
    message.extend_from_slice(&[libc::AF_INET as u8, libc::NFNETLINK_V0 as u8, 0, 0]);
    // An unconnected netlink socket sends to the kernel.
    (&socket).write_all(&message).map_err(annotate)?;

    // The answer: an NLMSG_ERROR message whose error field is 0 on success
    // or a negative errno.
    let mut answer = [0_u8; 512];
    let len = (&socket).read(&mut answer).map_err(annotate)?;
    let answer = &answer[..len];
    let u16_at = |at: usize| {
        answer
            .get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let i32_at = |at: usize| {
        answer
            .get(at..at + 4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    match (u16_at(4), i32_at(16)) {
        (Some(kind), Some(0)) if i32::from(kind) == libc::NLMSG_ERROR => Ok(()),
        (Some(kind), Some(errno)) if i32::from(kind) == libc::NLMSG_ERROR => {
            Err(annotate(io::Error::from_raw_os_error(-errno)))
        }
        _ => Err(annotate(io::Error::other(format!(
            "unexpected answer from the kernel: {answer:?}"
        )))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_chain_namespace_names_name_a_process() {
        assert_eq!(orphan_pid("cp-4122-0-c"), Some(4122));
        assert_eq!(orphan_pid("cp-4122-17-s"), Some(4122));
        assert_eq!(orphan_pid("cp-4122-0-x"), None);
        assert_eq!(orphan_pid("cp-4122-c"), None);
        assert_eq!(orphan_pid("cp-4122-0-c-d"), None);
        assert_eq!(orphan_pid("blue"), None);
        assert_eq!(orphan_pid("cp-me-0-c"), None);
    }

    use super::*;

    #[test]
    fn parses_a_conntrack_line() {
        let line = "ipv4     2 tcp      6 2 ESTABLISHED src=192.0.2.2 dst=198.51.100.2 \
                    sport=44976 dport=8080 src=198.51.100.2 dst=192.0.2.2 sport=8080 \
                    dport=44976 [ASSURED] mark=0 zone=0 use=2";
        let flow = TrackedFlow::parse(line).unwrap().unwrap();
        assert_eq!(flow.client, "192.0.2.2:44976".parse().unwrap());
        assert_eq!(flow.server, "198.51.100.2:8080".parse().unwrap());
        assert_eq!(flow.state, "ESTABLISHED");
        assert_eq!(flow.expires_in, Duration::from_secs(2));

        let udp = "ipv4     2 udp      17 29 src=192.0.2.2 dst=198.51.100.2 sport=1 dport=2 \
                   [UNREPLIED] src=198.51.100.2 dst=192.0.2.2 sport=2 dport=1 mark=0 use=1";
        assert_eq!(TrackedFlow::parse(udp).unwrap(), None);
        assert!(TrackedFlow::parse("ipv4 2 tcp 6 x").is_err());
    }

    #[test]
    fn a_missing_tool_is_named_with_its_package() {
        let error = find_tool("connpool-no-such-tool", "some-package").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        let message = error.to_string();
        assert!(
            message.contains("`connpool-no-such-tool` not found"),
            "{message}"
        );
        assert!(message.contains("`some-package`"), "{message}");
    }

    #[test]
    fn timeouts_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
    }
}
