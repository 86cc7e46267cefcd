//! A real `redis-server` on a free loopback port, for tests: started, paused, killed,
//! restarted and stopped by the test. Installed with Debian's package when missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or deliberately stopped) `redis-server`. Dropping it kills the server.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Where an append-only file keeps the data across kills and restarts.
    persist: Option<PathBuf>,
    /// More arguments (TLS, cluster mode).
    extra: Vec<String>,
    /// With TLS: the port that speaks it (the plain `port` is the harness's own).
    tls_port: Option<u16>,
    /// A directory of the server's own (certificates), removed with it.
    files: Option<PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A rate limit's window (`requests_per_minute`).
pub const MINUTE: Duration = Duration::from_secs(60);
/// A budget's hourly window.
pub const HOUR: Duration = Duration::from_secs(3600);
/// A budget's daily window (`usd_per_day`), ending at UTC midnight.
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// How long a test waits so that the Redis store's current window of `window` still has
/// `needed` left when it starts counting: zero when it has.
///
/// The store cuts the server's clock into windows from the Unix epoch (`limit.lua`), and
/// the test's server runs on this machine's clock. A window that rolls mid-test gives
/// back what the test counted: 4 requests a minute once came out as
/// `[200, 200, 200, 200, 429, 200, 200, 200]` in CI.
///
/// # Panics
/// When `needed` is not below `window`: no wait would do.
pub fn wait_clear_of_window_edge(window: Duration, needed: Duration) -> Duration {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970");
    wait_at(since_epoch, window, needed)
}

/// Sleeps on tokio's timer for [`wait_clear_of_window_edge`]`(window, needed)`.
pub async fn clear_of_window_edge(window: Duration, needed: Duration) {
    tokio::time::sleep(wait_clear_of_window_edge(window, needed)).await;
}

fn wait_at(since_epoch: Duration, window: Duration, needed: Duration) -> Duration {
    assert!(
        needed < window,
        "{needed:?} never fits in a window of {window:?}"
    );
    let window_ns = window.as_nanos();
    let left_ns = window_ns - since_epoch.as_nanos() % window_ns;
    let left = Duration::from_nanos(u64::try_from(left_ns).expect("a window under 584 years"));
    if left >= needed {
        Duration::ZERO
    } else {
        // Past the edge, with room for the server's clock to read it too.
        left + Duration::from_millis(100)
    }
}

impl RedisServer {
    /// Starts a server on a free port, without persistence, and waits until it answers.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// A server on `port`, with no options, not started yet.
    fn unstarted(port: u16) -> Self {
        Self {
            binary: crate::tools::find_or_install("redis-server", "redis-server"),
            port,
            child: None,
            persist: None,
            extra: Vec::new(),
            tls_port: None,
            files: None,
        }
    }

    /// Starts a server on a free port that keeps its data in an append-only file synced
    /// on every write, so it survives [`Self::kill`] and [`Self::restart`] as a
    /// production Redis with `appendfsync always` does.
    pub fn start_persistent() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tta-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the append-only file");
        let mut server = Self::unstarted(port);
        server.persist = Some(dir.clone());
        server.files = Some(dir);
        server.spawn();
        server
    }

    /// A port where nothing listens (for "Redis down at start"); [`Self::start_on`] can
    /// start a server there later.
    pub fn unused_port() -> u16 {
        free_port()
    }

    /// Starts a server on `port`.
    pub fn start_on(port: u16) -> Self {
        let mut server = Self::unstarted(port);
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut args = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--protected-mode",
            "no",
        ];
        let dir = self
            .persist
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned());
        match &dir {
            Some(dir) => args.extend([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                dir,
            ]),
            None => args.extend(["--appendonly", "no"]),
        }
        args.extend(self.extra.iter().map(String::as_str));
        let child = Command::new(&self.binary)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.command(&["PING"]).is_ok_and(|r| r == "PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server did not answer on port {} within 10 s",
            self.port
        );
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://127.0.0.1:<tls port>` for a TLS server.
    pub fn url(&self) -> String {
        match self.tls_port {
            Some(tls) => format!("rediss://127.0.0.1:{tls}"),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Starts a server that clients reach over TLS only (`rediss://`, [`Self::url`]),
    /// with a certificate for `127.0.0.1` issued by a CA made for it; the CA's PEM is
    /// in the returned path, for a client to trust (for example by `SSL_CERT_FILE`).
    /// The harness's own commands use a plain port beside it.
    pub fn start_tls() -> (Self, PathBuf) {
        let (port, tls_port) = (free_port(), free_port());
        let dir =
            std::env::temp_dir().join(format!("tta-redis-tls-{}-{tls_port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the certificates");
        make_certificates(&dir);
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let extra = vec![
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            path("server.pem"),
            "--tls-key-file".to_owned(),
            path("server.key"),
            "--tls-ca-cert-file".to_owned(),
            path("ca.pem"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        let mut server = Self::unstarted(port);
        server.extra = extra;
        server.tls_port = Some(tls_port);
        server.files = Some(dir.clone());
        server.spawn();
        (server, dir.join("ca.pem"))
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let ok = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {signal} failed");
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`Self::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Sends one command (RESP) and returns a simple reply as text: a status or bulk
    /// string, an integer, `(nil)`, or `Err` with the server's error.
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        self.command_bytes(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>())
    }

    /// [`Self::command`] with binary arguments (to write junk values).
    pub fn command_bytes(&self, args: &[&[u8]]) -> Result<String, String> {
        let mut stream = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500))
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        stream.write_all(&request).map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim_end();
        match line.split_at(line.len().min(1)) {
            ("+", rest) | (":", rest) => Ok(rest.to_owned()),
            ("-", rest) => Err(rest.to_owned()),
            ("$", "-1") => Ok("(nil)".to_owned()),
            ("$", len) => {
                let len: usize = len.parse().map_err(|_| "bad bulk length".to_owned())?;
                let mut body = vec![0; len + 2];
                reader.read_exact(&mut body).map_err(|e| e.to_string())?;
                body.truncate(len);
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
            _ => Err(format!("unsupported reply {line:?}")),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        if let Some(dir) = &self.files {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A Redis Cluster on loopback: three masters, each with one replica, as `redis-cli
/// --cluster create` makes it, with a 1 s node timeout (a dead master's replica takes
/// over within about two seconds).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts six nodes, joins them, and waits until every node says `cluster_state:ok`.
    ///
    /// # Panics
    ///
    /// When a node does not start or the cluster does not form within 30 s (test support).
    pub fn start() -> Self {
        let cli = crate::tools::find_or_install("redis-cli", "redis-tools");
        let dir = std::env::temp_dir().join(format!(
            "tta-redis-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the nodes' files");
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                let port = free_port();
                let mut node = RedisServer::unstarted(port);
                node.extra = vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    dir.join(format!("nodes-{port}.conf"))
                        .to_string_lossy()
                        .into_owned(),
                    "--cluster-node-timeout".into(),
                    "1000".into(),
                    // A replica takes over however long ago it last heard from its
                    // master (with the default factor, a 1 s node timeout makes a
                    // freshly synced replica too stale to).
                    "--cluster-replica-validity-factor".into(),
                    "0".into(),
                    "--dir".into(),
                    dir.to_string_lossy().into_owned(),
                ];
                node.spawn();
                node
            })
            .collect();
        let mut create = Command::new(cli);
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes, dir };
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster
    }

    /// Waits until every live node says `cluster_state:ok` and agrees on three masters
    /// that serve every slot.
    ///
    /// # Panics
    ///
    /// When that takes longer than `within`.
    pub fn wait_until_ok(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = self.live().all(|n| {
                n.command(&["CLUSTER", "INFO"]).is_ok_and(|i| {
                    i.contains("cluster_state:ok") && i.contains("cluster_slots_assigned:16384")
                })
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster was not ok within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn live(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.child.is_some())
    }

    /// `redis-cluster://` with every node, so a client can find the cluster from any.
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port);
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            url.push_str(if i == 1 { "?" } else { "&" });
            url.push_str(&format!("node=127.0.0.1:{}", node.port));
        }
        url
    }

    /// The index of the node that is now the master of `key`'s slot.
    ///
    /// # Panics
    ///
    /// When no live node answers or none serves the slot.
    pub fn master_of(&self, key: &str) -> usize {
        let any = self.live().next().expect("a live node");
        let slot: u16 = any
            .command(&["CLUSTER", "KEYSLOT", key])
            .expect("CLUSTER KEYSLOT")
            .parse()
            .expect("a slot");
        let nodes = any.command(&["CLUSTER", "NODES"]).expect("CLUSTER NODES");
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let mut ends = range.splitn(2, '-').map(|p| p.parse::<u16>());
                match (ends.next(), ends.next()) {
                    (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
                    (Some(Ok(a)), None) => a == slot,
                    _ => false,
                }
            });
            if serves {
                let port: u16 = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .expect("a node's port");
                return self
                    .nodes
                    .iter()
                    .position(|n| n.port == port)
                    .expect("a node of this cluster");
            }
        }
        panic!("no master serves slot {slot}")
    }

    /// Kills node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes into `dir` a CA (`ca.pem`, self-signed) and a server certificate for
/// `127.0.0.1` it issued (`server.pem`, `server.key`), with the `openssl` program.
fn make_certificates(dir: &std::path::Path) {
    let openssl = crate::tools::find_or_install("openssl", "openssl");
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("san.ext");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tta test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    ];
    for args in steps {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_waits_past_a_window_edge_only_when_it_is_too_close() {
        let needed = Duration::from_secs(10);
        // 1,000 minutes and 30 s since the epoch: 30 s left, enough.
        let mid = Duration::from_secs(60_000 + 30);
        assert_eq!(wait_at(mid, MINUTE, needed), Duration::ZERO);
        // 55.5 s into a minute: 4.5 s left, so it waits them out, and 100 ms more.
        let late = Duration::from_millis(60_000 + 55_500);
        assert_eq!(wait_at(late, MINUTE, needed), Duration::from_millis(4_600));
        // At the edge itself a whole window is left.
        assert_eq!(
            wait_at(Duration::from_secs(60_000), MINUTE, needed),
            Duration::ZERO
        );
    }

    #[test]
    #[should_panic(expected = "never fits")]
    fn a_need_as_long_as_the_window_is_refused() {
        wait_at(Duration::ZERO, MINUTE, MINUTE);
    }
}
