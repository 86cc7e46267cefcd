//! Bad input and abuse at the binary: each attack gets its 4xx (or its connection cut),
//! never a 500; a well-behaved client is answered throughout, its latency measured
//! during each attack; nothing of a key or a prompt reaches the logs, the exported
//! spans or `/metrics`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tta_tests::llm_server::{LlmServer, Reply};
use tta_tests::otlp::OtlpReceiver;

use crate::{ACME_KEY, Process, completion, config_for, ms};

/// What every attack's body says, so the logs can be searched for it.
const PROMPT: &str = "the-secret-prompt-7f3a";
/// A key no tenant has.
const FORGED: &str = "sk-forged-91c2";
/// The well-behaved client's requests must each take less than this: below the
/// gateway's header timeout (300 ms), so none of them waited for an attacker's cut.
const NO_WAIT: Duration = Duration::from_millis(250);

/// Runs `attack` while a well-behaved client calls in a loop (at least 10 calls);
/// every one of its calls must succeed. Returns the attack's output and the client's
/// latencies, sorted.
async fn during<F: Future>(url: &str, attack: F) -> (F::Output, Vec<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = Arc::clone(&stop);
        let url = url.to_owned();
        tokio::spawn(async move {
            let http = crate::http();
            let body = json!({"model": "chat", "messages": [{"role": "user", "content": "hello"}]})
                .to_string();
            let mut took = Vec::new();
            while !stop.load(Ordering::Relaxed) || took.len() < 10 {
                let started = Instant::now();
                let r = http
                    .post(&url)
                    .bearer_auth(ACME_KEY)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("the well-behaved client's call");
                assert_eq!(r.status(), 200, "the well-behaved client was refused");
                r.bytes().await.unwrap();
                took.push(started.elapsed());
                tokio::time::sleep(ms(5)).await;
            }
            took
        })
    };
    let out = attack.await;
    stop.store(true, Ordering::Relaxed);
    let mut took = client.await.unwrap();
    took.sort();
    (out, took)
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99).div_ceil(100).saturating_sub(1)]
}

/// A raw request on a fresh connection; the answer's text (empty when the connection
/// was closed without one).
async fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The gateway may answer and close before it has read everything (a 413, a 431).
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(ms(5_000), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn post_head(key: &str, extra: &str, length: usize) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\n{extra}content-length: {length}\r\nconnection: close\r\n\r\n"
    )
}

/// The body of a chat request for `model` with `extra` fields, saying [`PROMPT`].
fn chat(model: &str, extra: &Value) -> String {
    let mut b = json!({"model": model, "messages": [{"role": "user", "content": PROMPT}]});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.to_string()
}

/// Raises the open-file limit to its hard limit, and says how many idle connections
/// fit: 10,000, or fewer when the hard limit is lower (both processes hold one
/// descriptor per connection, within the same limit).
fn idle_connections() -> usize {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    usize::try_from(soft.saturating_sub(1_000))
        .unwrap_or(usize::MAX)
        .min(10_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_gets_its_4xx_a_good_client_is_served_and_nothing_secret_is_logged() {
    let idle = idle_connections();
    let server = LlmServer::start().await;
    server.serve(Reply::json(completion("hi")));
    let otlp = OtlpReceiver::start().await;
    let toml = config_for(&[server.base_url()], "max_header_bytes = 16384\n", "");
    let mut gateway = Process::start(
        "abuse",
        &toml,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none".to_owned()),
        ],
    );
    let url = gateway.url("/v1/chat/completions");
    let addr = gateway.addr.clone();
    let http = crate::http();
    let mut report = Vec::new();

    // Bodies: each a 4xx with OpenAI's error object and its code.
    let deep = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
    /// An attack's name, body, key, and the status and code it must get.
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            format!("{{\"model\": \"chat\" \"messages\": \"{PROMPT}\"").into_bytes(),
            Some(ACME_KEY),
            400,
            "invalid_json",
        ),
        (
            "truncated JSON",
            chat("chat", &json!({})).as_bytes()[..40].to_vec(),
            Some(ACME_KEY),
            400,
            "invalid_json",
        ),
        (
            "wrong types",
            json!({"model": "chat", "messages": PROMPT})
                .to_string()
                .into_bytes(),
            Some(ACME_KEY),
            400,
            "invalid_value",
        ),
        (
            "nested 20,000 deep",
            deep.into_bytes(),
            Some(ACME_KEY),
            400,
            "invalid_json",
        ),
        (
            "invalid UTF-8",
            [
                b"{\"model\": \"chat\", \"x\": \"".as_slice(),
                b"\xff\xfe\xfd",
                PROMPT.as_bytes(),
                b"\"}",
            ]
            .concat(),
            Some(ACME_KEY),
            400,
            "invalid_json",
        ),
        (
            "negative max_tokens",
            chat("chat", &json!({"max_tokens": -1})).into_bytes(),
            Some(ACME_KEY),
            400,
            "invalid_value",
        ),
        (
            "zero max_tokens",
            chat("chat", &json!({"max_tokens": 0})).into_bytes(),
            Some(ACME_KEY),
            400,
            "invalid_value",
        ),
        (
            "huge max_tokens",
            chat("chat", &json!({"max_tokens": 1e30})).into_bytes(),
            Some(ACME_KEY),
            400,
            "invalid_value",
        ),
        (
            "max_tokens past u32",
            chat("chat", &json!({"max_tokens": 1_u64 << 40})).into_bytes(),
            Some(ACME_KEY),
            400,
            "invalid_value",
        ),
        (
            "missing key",
            chat("chat", &json!({})).into_bytes(),
            None,
            401,
            "invalid_api_key",
        ),
        (
            "forged key",
            chat("chat", &json!({})).into_bytes(),
            Some(FORGED),
            401,
            "invalid_api_key",
        ),
    ];
    for (name, payload, key, status, code) in cases {
        let (answer, took) = during(&url, async {
            let mut req = http
                .post(&url)
                .header("content-type", "application/json")
                .body(payload);
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
        .await;
        assert_eq!(answer.0, status, "{name}: {}", answer.1);
        assert_eq!(answer.1["error"]["code"], code, "{name}");
        report.push((name.to_owned(), took));
    }

    // The key in the query string is not a key: 401, and it is not logged either.
    let (status, took) = during(&url, async {
        let r = http
            .post(format!("{url}?api_key={ACME_KEY}&key={ACME_KEY}"))
            .body(chat("chat", &json!({})))
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    })
    .await;
    assert_eq!(status, 401);
    report.push(("a key in the query string".into(), took));

    // 200 unknown model names: each a 404, and none of them a metric label.
    let (statuses, took) = during(&url, async {
        let mut statuses = Vec::new();
        for i in 0..200 {
            let r = http
                .post(&url)
                .bearer_auth(ACME_KEY)
                .body(chat(&format!("ghost-model-{i}"), &json!({})))
                .send()
                .await
                .unwrap();
            statuses.push(r.status().as_u16());
        }
        statuses
    })
    .await;
    assert!(statuses.iter().all(|&s| s == 404), "{statuses:?}");
    report.push(("200 unknown model names".into(), took));

    // A 10 MiB body: 413 from its declared length, before it is read.
    let (answer, took) = during(&url, async {
        let mut request = post_head(ACME_KEY, "", 10 * 1024 * 1024).into_bytes();
        request.extend(std::iter::repeat_n(b' ', 10 * 1024 * 1024));
        raw(&addr, &request).await
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request_too_large"), "{answer}");
    report.push(("a 10 MiB body".into(), took));

    // Headers of 64 KiB: 431, from hyper, before any handler runs.
    let (answer, took) = during(&url, async {
        let big = format!("x-big: {}\r\n", "a".repeat(64 * 1024));
        let body = chat("chat", &json!({}));
        let request = format!("{}{body}", post_head(ACME_KEY, &big, body.len()));
        raw(&addr, request.as_bytes()).await
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    report.push(("headers of 64 KiB".into(), took));

    // Twenty slowloris clients, each sending a header byte every 50 ms: each is cut at
    // the header timeout (300 ms), however long it keeps trickling.
    let (cut_after, took) = during(&url, async {
        let clients = (0..20).map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut s = TcpStream::connect(&addr).await.unwrap();
                let started = Instant::now();
                let _ = s
                    .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nx-slow: ")
                    .await;
                while started.elapsed() < ms(5_000) {
                    if s.write_all(b"a").await.is_err() {
                        break;
                    }
                    let mut byte = [0u8; 1];
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(ms(50), s.read(&mut byte)).await
                    {
                        break;
                    }
                }
                started.elapsed()
            })
        });
        let mut cut_after = Vec::new();
        for c in futures_util::future::join_all(clients).await {
            cut_after.push(c.unwrap());
        }
        cut_after
    })
    .await;
    assert!(cut_after.iter().all(|&d| d < ms(2_000)), "{cut_after:?}");
    report.push(("20 slowloris clients".into(), took));

    // Idle connections (10,000 where the open-file limit allows): the client is served
    // while they are open, and the gateway closes each at the header timeout.
    let (closed, took) = during(&url, async {
        let mut open = Vec::with_capacity(idle);
        for _ in 0..idle {
            open.push(TcpStream::connect(&addr).await.unwrap());
        }
        let reads = open.into_iter().map(|mut s| {
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                matches!(
                    tokio::time::timeout(ms(10_000), s.read(&mut byte)).await,
                    Ok(Ok(0) | Err(_))
                )
            })
        });
        let mut closed = 0;
        for r in futures_util::future::join_all(reads).await {
            closed += usize::from(r.unwrap());
        }
        closed
    })
    .await;
    assert_eq!(closed, idle, "connections the gateway closed");
    report.push((format!("{idle} idle connections"), took));

    // The gateway still serves, then drains and exits.
    let ok = http
        .post(&url)
        .bearer_auth(ACME_KEY)
        .body(chat("chat", &json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let metrics = tta_tests::http::get(gateway.metrics, "/metrics")
        .unwrap()
        .body;
    gateway.terminate();
    assert!(gateway.wait().await.success());

    // Nothing of a key or the prompt anywhere the gateway writes.
    let spans: Vec<u8> = otlp
        .exports()
        .into_iter()
        .filter(|e| e.path == "/v1/traces")
        .flat_map(|e| e.body)
        .collect();
    assert!(!spans.is_empty(), "the gateway exported its spans");
    let spans = String::from_utf8_lossy(&spans).into_owned();
    for (what, text) in [
        ("logs", gateway.logs()),
        ("spans", spans),
        ("/metrics", metrics.clone()),
    ] {
        for secret in [ACME_KEY, FORGED, PROMPT, "ghost-model"] {
            assert!(!text.contains(secret), "{secret:?} in the {what}");
        }
    }
    assert!(
        metrics.contains("http_server_request_duration"),
        "{metrics}"
    );

    let mut table = String::from(
        "| attack | client calls | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|\n",
    );
    for (name, took) in &report {
        table.push_str(&format!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} |\n",
            took.len(),
            took[took.len() / 2].as_secs_f64() * 1e3,
            p99(took).as_secs_f64() * 1e3,
            took[took.len() - 1].as_secs_f64() * 1e3,
        ));
    }
    println!("{table}");
    for (name, took) in &report {
        assert!(
            p99(took) < NO_WAIT,
            "{name}: the client's p99 {:?}\n{table}",
            p99(took)
        );
    }
}
