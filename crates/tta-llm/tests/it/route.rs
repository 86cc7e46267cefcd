//! `Route::client`: a router over real clients, named, priced and sized by the clients'
//! own settings, falling back over the wire and billing each attempt at its route's price.

use serde_json::json;
use tta_core::{AttemptKind, Price, Usd, WorkflowContext};
use tta_llm::{Anthropic, BuildError, OpenAiCompatible};
use tta_router::{Route, RouterPrimitive};
use tta_tests::llm_server::{LlmServer, Reply};
use tta_tests::telemetry::span_attr;

use crate::calls::completion;
use crate::{pipeline, request};

#[tokio::test]
async fn a_router_of_clients_takes_their_names_prices_and_windows() {
    let (openai_server, anthropic_server) = (LlmServer::start().await, LlmServer::start().await);
    let (tt, t) = pipeline();
    let small = OpenAiCompatible::builder(openai_server.base_url())
        .model("gpt-small")
        .price(Price::per_1k_tokens(0.001, 0.002))
        .context_window(8_000)
        .telemetry(&t)
        .build()
        .unwrap();
    let large = Anthropic::builder(anthropic_server.base_url())
        .model("claude-large")
        .price(Price::per_1k_tokens(0.003, 0.015))
        .context_window(200_000)
        .telemetry(&t)
        .build()
        .unwrap();
    let router = RouterPrimitive::builder()
        .route(Route::client("small", small))
        .route(Route::client("large", large))
        .usage_reported()
        .telemetry(&t)
        .build()
        .unwrap();

    // The small model's context is too short, and the error was billed by nobody: the
    // router falls back to the larger window.
    openai_server.push(Reply::status(
        400,
        &[],
        &json!({"error": {"code": "context_length_exceeded", "message": "too long"}}).to_string(),
    ));
    anthropic_server.push(Reply::json(json!({
        "id": "msg_1", "model": "claude-large", "content": [{"type": "text", "text": "Yes."}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1000, "output_tokens": 100}
    })));
    let cx = WorkflowContext::new();
    let answer = router.execute(request(), &cx).await.unwrap();
    assert_eq!(answer.content, "Yes.");
    let entries = cx.ledger().entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].kind, AttemptKind::Fallback);
    assert_eq!(&*entries[0].source, "large");
    // 1,000 x $0.003/1k + 100 x $0.015/1k
    assert_eq!(entries[0].spent, Usd::from_dollars(0.0045).unwrap());

    openai_server.push(Reply::json(completion("stop")));
    let cx = WorkflowContext::new();
    router.execute(request(), &cx).await.unwrap();
    // 12 x $0.001/1k + 3 x $0.002/1k
    assert_eq!(
        cx.ledger().totals().spent,
        Usd::from_dollars(0.000_018).unwrap()
    );

    let attempts: Vec<_> = tt
        .spans()
        .into_iter()
        .filter(|s| s.name.starts_with("chat "))
        .collect();
    let described: Vec<_> = attempts
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                span_attr(s, "gen_ai.provider.name").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("chat gpt-small".to_owned(), "openai".to_owned()),
            ("chat claude-large".to_owned(), "anthropic".to_owned()),
            ("chat gpt-small".to_owned(), "openai".to_owned()),
        ]
    );
}

#[test]
fn a_bad_price_or_window_is_a_build_error() {
    let bad = OpenAiCompatible::builder("http://127.0.0.1:1/v1")
        .price(Price::per_1k_tokens(-0.5, 0.0))
        .build()
        .unwrap_err();
    assert!(
        matches!(bad, BuildError::Price { value, .. } if value == -0.5),
        "{bad}"
    );
    let nan = Anthropic::builder("http://127.0.0.1:1/v1")
        .price(Price::per_call(f64::NAN))
        .build()
        .unwrap_err();
    assert!(matches!(nan, BuildError::Price { .. }), "{nan}");
    let zero = OpenAiCompatible::builder("http://127.0.0.1:1/v1")
        .context_window(0)
        .build()
        .unwrap_err();
    assert_eq!(zero, BuildError::ContextWindow);
}
