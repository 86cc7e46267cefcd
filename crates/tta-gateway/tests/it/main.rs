//! tta-gateway integration tests: a real OpenAI client (async-openai) and raw HTTP
//! against the gateway on a loopback port, over scripted and simulated providers.

mod abuse;
mod api;
mod config;
mod limits;
mod process;
mod redis_topologies;
mod telemetry;
mod wire_faults;

use std::net::SocketAddr;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tta_gateway::{Config, Gateway};

/// A key of tenant `acme`, and one of tenant `tight`.
pub(crate) const ACME_KEY: &str = "sk-test-acme";
pub(crate) const TIGHT_KEY: &str = "sk-test-tight";
pub(crate) const REVOKED_KEY: &str = "sk-test-revoked";

/// The `[[keys]]` and `[tenants]` every test config has, plus `tight`'s limits.
pub(crate) fn keys_and_tenants(tight: &str) -> String {
    format!(
        r#"
[[keys]]
sha256 = "{acme}"
tenant = "acme"

[[keys]]
sha256 = "{tight_key}"
tenant = "tight"

[[keys]]
sha256 = "{revoked}"
tenant = "acme"
revoked = true

[tenants.acme]

[tenants.tight]
{tight}
"#,
        acme = tta_gateway::key_digest(ACME_KEY),
        tight_key = tta_gateway::key_digest(TIGHT_KEY),
        revoked = tta_gateway::key_digest(REVOKED_KEY),
    )
}

/// A config with one OpenAI-compatible provider per base URL (`p0`, `p1`, ...), each with
/// model `m`, and model `chat` over them in order.
pub(crate) fn config_for(bases: &[String], extra: &str, tight: &str) -> String {
    let mut text = String::from(
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nmax_body_bytes = 65536\nbody_timeout_ms = 500\nheader_timeout_ms = 300\n",
    );
    text.push_str(extra);
    for (i, base) in bases.iter().enumerate() {
        text.push_str(&format!(
            "\n[providers.p{i}]\nkind = \"openai\"\nbase_url = \"{base}\"\n[providers.p{i}.models.m]\ninput_per_1k = 0.001\noutput_per_1k = 0.002\n"
        ));
    }
    let routes: Vec<String> = (0..bases.len())
        .map(|i| format!("{{ provider = \"p{i}\", model = \"m\" }}"))
        .collect();
    text.push_str(&format!(
        "\n[models.chat]\nattempt_timeout_ms = 300\nroutes = [{}]\n\n[cache]\nstore = \"off\"\n",
        routes.join(", ")
    ));
    text.push_str(&keys_and_tenants(tight));
    text
}

/// A gateway serving on a free loopback port until dropped.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub(crate) async fn start(toml: &str) -> Self {
        let config = Config::parse(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let gateway = Gateway::new(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(tta_gateway::serve(
            listener,
            gateway.app(),
            (&config).into(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// async-openai, pointed at the gateway with `key`.
    pub(crate) fn openai(&self, key: &str) -> async_openai::Client<OpenAIConfig> {
        async_openai::Client::with_config(
            OpenAIConfig::new()
                .with_api_base(self.url("/v1"))
                .with_api_key(key),
        )
    }

    /// A raw POST of `body` to the chat endpoint with `key`.
    pub(crate) async fn post(
        &self,
        key: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let body: reqwest::Body = body.into();
        let preview = body
            .as_bytes()
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned());
        let mut req = http()
            .post(self.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("POST {preview:?}: {e:?}"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// An OpenAI answer saying `text`.
pub(crate) fn completion(text: &str) -> Value {
    json!({
        "id": "cmpl-1", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
}

/// OpenAI stream chunks saying `words`, then the usage chunk.
pub(crate) fn chunks(words: &[&str]) -> Vec<Value> {
    let mut out: Vec<Value> = words
        .iter()
        .map(|w| json!({"id": "cmpl-2", "model": "m", "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]}))
        .collect();
    out.push(json!({"id": "cmpl-2", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
    out.push(json!({"id": "cmpl-2", "model": "m", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": words.len(), "total_tokens": 5 + words.len()}}));
    out
}

/// A chat request body for model `chat`.
pub(crate) fn body(extra: Value) -> String {
    let mut b = json!({"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16});
    if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            b.insert(k.clone(), v.clone());
        }
    }
    b.to_string()
}

/// A plain HTTP client (rustls's provider installed first, as tta-llm does). Its idle
/// connections close after 100 ms, before the test configs' 300 ms header timeout closes
/// them on the gateway's side: a request sent on a connection the gateway is closing at
/// that moment would be reset.
pub(crate) fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_millis(100))
        .build()
        .expect("a client")
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The `tta-gateway` binary, started on `toml` with `env`, until dropped (then killed).
/// Its stdout after the two address lines and its stderr are kept, for [`Self::logs`].
pub(crate) struct Process {
    pub(crate) child: std::process::Child,
    /// Where the API listens (`127.0.0.1:PORT`).
    pub(crate) addr: String,
    /// Where `/metrics` listens.
    pub(crate) metrics: SocketAddr,
    dir: std::path::PathBuf,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Process {
    pub(crate) fn start(name: &str, toml: &str, env: &[(&str, String)]) -> Self {
        Self::start_under(name, toml, env, None)
    }

    /// [`Self::start`], with the soft open-file limit set to `soft_open_files` first (by
    /// the shell that then execs the gateway, as a service manager would set it).
    pub(crate) fn start_under(
        name: &str,
        toml: &str,
        env: &[(&str, String)],
        soft_open_files: Option<u64>,
    ) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        // One directory per process started: tests run in parallel.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("tta-gateway-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        std::fs::write(&path, toml).unwrap();
        let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
        let binary = env!("CARGO_BIN_EXE_tta-gateway");
        let mut command = match soft_open_files {
            Some(soft) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -Sn {soft} && exec \"$0\" \"$@\""))
                    .arg(binary);
                sh
            }
            None => Command::new(binary),
        };
        let mut child = command
            .arg("--config")
            .arg(&path)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = lines.next().unwrap().unwrap();
        let addr = listening
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("{listening}"))
            .to_owned();
        let metrics_line = lines.next().unwrap().unwrap();
        let metrics = metrics_line
            .strip_prefix("metrics on http://")
            .and_then(|m| m.strip_suffix("/metrics"))
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("{metrics_line}"));
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let rest = std::sync::Arc::clone(&stdout);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut rest = rest.lock().unwrap();
                rest.push_str(&line);
                rest.push('\n');
            }
        });
        Self {
            child,
            addr,
            metrics,
            dir,
            stdout,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM: the gateway drains, then exits.
    pub(crate) fn terminate(&self) {
        let term = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
    }

    /// SIGKILL, as a crashed or OOM-killed process ends: no drain, every connection reset.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the process to exit.
    pub(crate) async fn wait(&mut self) -> std::process::ExitStatus {
        let id = self.child.id();
        let mut waited = None;
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                waited = Some(status);
                break;
            }
            tokio::time::sleep(ms(50)).await;
        }
        waited.unwrap_or_else(|| panic!("gateway {id} did not exit within 30 s"))
    }

    /// What the process wrote: stdout after its address lines, then stderr.
    pub(crate) fn logs(&self) -> String {
        let stderr = std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default();
        format!("{}{stderr}", self.stdout.lock().unwrap())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
