//! The binary: it prints where it listens, serves, and on SIGTERM stops accepting,
//! lets every stream in flight finish within the grace, and exits 0.

use serde_json::json;
use tta_tests::llm_server::{End, LlmServer, Reply};

use crate::{ACME_KEY, Process, body, chunks, config_for, ms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_fifty_open_streams_then_exits_zero() {
    let server = LlmServer::start().await;
    let words: Vec<String> = (0..20).map(|i| format!("w{i} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    // Each stream takes about a second: 20 chunks, 50 ms apart.
    server.serve(Reply::events(&chunks(&words), ms(50), true, End::Close));
    let toml = config_for(&[server.base_url()], "shutdown_grace_ms = 10000\n", "")
        .replace("attempt_timeout_ms = 300", "attempt_timeout_ms = 5000");
    let mut gateway = Process::start("term", &toml, &[]);
    let client = crate::http();
    let url = gateway.url("/v1/chat/completions");
    let mut streams = Vec::new();
    for _ in 0..50 {
        let response = client
            .post(&url)
            .bearer_auth(ACME_KEY)
            .body(body(json!({"stream": true})))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        streams.push(tokio::spawn(async move { response.text().await }));
    }
    gateway.terminate();
    for stream in streams {
        let text = stream.await.unwrap().unwrap();
        assert!(
            text.contains("w19 ") && text.trim_end().ends_with("data: [DONE]"),
            "{text}"
        );
    }
    let status = gateway.wait().await;
    assert!(status.success(), "{status}");
    // It stopped accepting: nothing listens there any more.
    assert!(
        client
            .post(&url)
            .bearer_auth(ACME_KEY)
            .body(body(json!({})))
            .send()
            .await
            .is_err()
    );
}
