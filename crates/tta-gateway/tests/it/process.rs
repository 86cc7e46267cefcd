//! The binary: it prints where it listens, serves, and on SIGTERM stops accepting,
//! lets every stream in flight finish within the grace, and exits 0. A provider
//! process killed under open streams ends each with an error event.

use futures_util::StreamExt;
use serde_json::json;
use tta_tests::llm_server::{End, LlmServer, Reply};

use crate::{ACME_KEY, Process, body, chunks, completion, config_for, ms};

/// A stream of model `chat`, answered 200.
async fn open_stream(client: &reqwest::Client, url: &str) -> reqwest::Response {
    let response = client
        .post(url)
        .bearer_auth(ACME_KEY)
        .body(body(json!({"stream": true})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

/// Waits for a line of the process's output that starts with `prefix`, and returns it.
async fn line_starting(process: &Process, prefix: &str) -> String {
    for _ in 0..200 {
        if let Some(line) = process.logs().lines().find(|l| l.starts_with(prefix)) {
            return line.to_owned();
        }
        tokio::time::sleep(ms(25)).await;
    }
    panic!("no line starting {prefix:?} in:\n{}", process.logs());
}

/// Started under a soft open-file limit of 1,024 (systemd's default for a service), the
/// gateway raises it to the hard limit and, with `max_concurrency` left out, serves as
/// many requests at once as that limit allows; a `max_concurrency` that the limit cannot
/// serve is served as set, with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised_and_sizes_a_left_out_max_concurrency() {
    use tta_gateway::config::{max_concurrency_for, open_file_capacity};
    let server = LlmServer::start().await;
    server.respond_with(|_| Reply::json(completion("ok")));
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let soft = hard.min(1_024);

    let toml = config_for(&[server.base_url()], "", "");
    let gateway = Process::start_under("nofile", &toml, &[], Some(soft));
    let expected = max_concurrency_for(Some(hard));
    assert_eq!(
        line_starting(&gateway, "serving at most").await,
        format!(
            "serving at most {expected} requests at once (max_concurrency left out; the open-file limit is {hard})"
        )
    );
    let client = crate::http();
    let response = client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(ACME_KEY)
        .body(body(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!gateway.logs().contains("warning"), "{}", gateway.logs());

    let too_many = open_file_capacity(hard) + 1;
    let toml = config_for(
        &[server.base_url()],
        &format!("max_concurrency = {too_many}\n"),
        "",
    );
    let gateway = Process::start_under("nofile-set", &toml, &[], Some(soft));
    assert_eq!(
        line_starting(&gateway, "serving at most").await,
        format!("serving at most {too_many} requests at once (max_concurrency)")
    );
    assert!(
        gateway.logs().contains(&format!(
            "warning: max_concurrency = {too_many}, but the open-file limit ({hard}) serves about {} requests at once",
            too_many - 1
        )),
        "{}",
        gateway.logs()
    );
}

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
        let response = open_stream(&client, &url).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_under_fifty_open_streams_ends_each_with_an_error_event_and_the_next_fall_back()
 {
    // The provider that is killed is a process: a second gateway, exposing model `m`
    // over a scripted server whose streams take 5 s (100 chunks, 50 ms apart).
    let slow = LlmServer::start().await;
    let words: Vec<String> = (0..100).map(|i| format!("w{i} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    slow.serve(Reply::events(&chunks(&words), ms(50), true, End::Close));
    let long =
        |toml: String| toml.replace("attempt_timeout_ms = 300", "attempt_timeout_ms = 20000");
    let provider_toml =
        long(config_for(&[slow.base_url()], "", "")).replace("[models.chat]", "[models.m]");
    let mut provider = Process::start("killed-provider", &provider_toml, &[]);
    // The spare route answers at once.
    let spare = LlmServer::start().await;
    spare.respond_with(|r| {
        if r.body["stream"] == true {
            Reply::events(&chunks(&["spare "]), ms(0), true, End::Close)
        } else {
            Reply::json(completion("spare"))
        }
    });
    let provider_base = provider.url("/v1");
    let toml = long(config_for(
        &[provider_base.clone(), spare.base_url()],
        "",
        "",
    ))
    .replace(
        &format!("base_url = \"{provider_base}\"\n"),
        &format!("base_url = \"{provider_base}\"\napi_key_env = \"TTA_TEST_PROVIDER_KEY\"\n"),
    );
    let gateway = Process::start(
        "front",
        &toml,
        &[("TTA_TEST_PROVIDER_KEY", ACME_KEY.to_owned())],
    );
    let client = crate::http();
    let url = gateway.url("/v1/chat/completions");

    // Fifty streams, each past its first chunk.
    let open = futures_util::future::join_all((0..50).map(|_| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let mut bytes = open_stream(&client, &url).await.bytes_stream();
            let mut text = String::new();
            while !text.contains("w0 ") {
                let chunk = bytes.next().await.expect("a first chunk").unwrap();
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
            (text, bytes)
        }
    }))
    .await;
    assert_eq!(slow.requests().len(), 50);
    provider.kill();
    for (mut text, mut bytes) in open {
        while let Some(chunk) = bytes.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        assert!(!text.contains("[DONE]"), "{text}");
        assert!(!text.contains("w99 "), "{text}");
        let last = text.trim_end().lines().last().unwrap_or_default();
        let event: serde_json::Value =
            serde_json::from_str(last.strip_prefix("data: ").unwrap_or(last))
                .unwrap_or_else(|e| panic!("{e}: {last}"));
        assert_eq!(event["error"]["code"], "unavailable", "{text}");
    }
    // The next requests, calls and streams, fall back to the spare route.
    for stream in [false, true, false, true, false, true] {
        let r = client
            .post(&url)
            .bearer_auth(ACME_KEY)
            .body(body(json!({"stream": stream})))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(text.contains("spare"), "{text}");
        if stream {
            assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        }
    }
}
