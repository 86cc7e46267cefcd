//! The `chat` example, run as written against the scripted provider: the answer, then
//! one usage line; with no server, one line and a non-zero exit.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use tta_tests::llm_server::{End, LlmServer, Reply};

/// The example's binary, next to this test's (`cargo test` and nextest build examples).
fn chat() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile.join("examples").join("chat");
    assert!(path.exists(), "the example is built at {}", path.display());
    path
}

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(chat()).args(args).output().unwrap())
        .await
        .unwrap()
}

fn args(base_url: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--base-url".to_owned(),
        base_url.to_owned(),
        "--model".to_owned(),
        "m".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_example_prints_the_answer_and_its_usage_calling_and_streaming() {
    let server = LlmServer::start().await;
    server.push(Reply::json(json!({
        "id": "c", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2}
    })));
    let out = run(args(&server.base_url(), &["Capital of France?"])).await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "Paris.");
    assert!(
        lines[1].starts_with("usage: input=7 output=2 ttft_ms="),
        "{stdout}"
    );
    assert!(lines[1].contains(" total_ms="), "{stdout}");
    assert_eq!(
        server.requests()[0].body["messages"][0]["content"],
        "Capital of France?"
    );

    let frame = |content: &str| json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": content}}]});
    server.push(Reply::events(
        &[
            frame("Pa"),
            frame("ris."),
            json!({"id": "c", "model": "m", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}),
        ],
        Duration::from_millis(5),
        true,
        End::Close,
    ));
    let out = run(args(
        &server.base_url(),
        &["--stream", "Capital of France?"],
    ))
    .await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("Paris.\nusage: input=7 output=2 ttft_ms="),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_example_speaks_anthropic_with_its_flag() {
    let server = LlmServer::start().await;
    server.push(Reply::typed_events(
        &[
            json!({"type": "message_start", "message": {"id": "msg", "model": "m", "usage": {"input_tokens": 5, "output_tokens": 1}}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Paris."}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
            json!({"type": "message_stop"}),
        ],
        Duration::ZERO,
        End::Close,
    ));
    let out = run(args(
        &server.base_url(),
        &["--anthropic", "--stream", "Capital?"],
    ))
    .await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("Paris.\nusage: input=5 output=2 ttft_ms="),
        "{stdout}"
    );
    assert_eq!(server.requests()[0].body["max_tokens"], 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_server_the_chat_example_fails_with_one_line() {
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    for extra in [
        &["hi"][..],
        &["--stream", "hi"][..],
        &["--anthropic", "hi"][..],
    ] {
        let out = run(args(&url, extra)).await;
        assert!(!out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("chat: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = run(args("ftp://nowhere", &["hi"])).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("invalid base URL"), "{stderr}");
}
