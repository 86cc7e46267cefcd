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
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    /// Starts a server on a free port, without persistence, and waits until it answers.
    pub fn start() -> Self {
        let binary = crate::tools::find_or_install("redis-server", "redis-server");
        let mut server = Self {
            binary,
            port: free_port(),
            child: None,
            persist: None,
        };
        server.spawn();
        server
    }

    /// Starts a server on a free port that keeps its data in an append-only file synced
    /// on every write, so it survives [`Self::kill`] and [`Self::restart`] as a
    /// production Redis with `appendfsync always` does.
    pub fn start_persistent() -> Self {
        let binary = crate::tools::find_or_install("redis-server", "redis-server");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tta-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the append-only file");
        let mut server = Self {
            binary,
            port,
            child: None,
            persist: Some(dir),
        };
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
        let binary = crate::tools::find_or_install("redis-server", "redis-server");
        let mut server = Self {
            binary,
            port,
            child: None,
            persist: None,
        };
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

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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
        if let Some(dir) = &self.persist {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
