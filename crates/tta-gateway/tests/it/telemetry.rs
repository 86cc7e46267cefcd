//! A server span per request continues the client's `traceparent` and parents the
//! primitives' spans; `http.server.request.duration` counts each request by status.

use serde_json::json;
use tta_tests::llm_server::{LlmServer, Reply};
use tta_tests::telemetry::{TestTelemetry, parent_of, span_attr};

use crate::{ACME_KEY, Running, body, completion, config_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_span_continues_the_traceparent_and_parents_every_primitive() {
    // Installed globally (the gateway takes the global providers when it is built);
    // other tests' spans may land here too, so this one reads its own trace only.
    let tt = TestTelemetry::new();
    opentelemetry::global::set_tracer_provider(tt.tracer_provider().clone());
    opentelemetry::global::set_meter_provider(tt.meter_provider().clone());
    let server = LlmServer::start().await;
    server.serve(Reply::json(completion("hi")));
    let gw = Running::start(&config_for(
        &[server.base_url()],
        "",
        "requests_per_minute = 100",
    ))
    .await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = crate::http()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(crate::TIGHT_KEY)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .body(body(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = gw.post(Some(ACME_KEY), b"{".to_vec()).await;
    tt.tracer_provider().force_flush().unwrap();
    let spans: Vec<_> = tt
        .spans()
        .into_iter()
        .filter(|s| s.span_context.trace_id().to_string() == trace)
        .collect();
    let root = spans
        .iter()
        .find(|s| s.name == "POST /v1/chat/completions")
        .expect("a server span");
    assert_eq!(root.span_kind, opentelemetry::trace::SpanKind::Server);
    assert_eq!(root.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(
        span_attr(root, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        span_attr(root, "http.route").as_deref(),
        Some("/v1/chat/completions")
    );
    // limit > timeout > router > attempt > client, all under the server span.
    for kind in ["limit", "timeout", "router", "llm"] {
        let span = spans
            .iter()
            .find(|s| s.name == kind)
            .unwrap_or_else(|| panic!("no {kind} span"));
        let mut up = parent_of(&spans, span);
        while let Some(p) = up {
            if p.span_context.span_id() == root.span_context.span_id() {
                break;
            }
            up = parent_of(&spans, p);
        }
        assert!(up.is_some(), "{kind} is not under the server span");
    }
    assert_eq!(
        parent_of(&spans, spans.iter().find(|s| s.name == "limit").unwrap())
            .map(|p| p.span_context.span_id()),
        Some(root.span_context.span_id())
    );
    tt.meter_provider().force_flush().unwrap();
    let ok = tt.histogram(
        "http.server.request.duration",
        &[
            ("http.route", "/v1/chat/completions"),
            ("http.response.status_code", "200"),
        ],
    );
    assert!(ok.is_some(), "the duration of the 200");
    let bad = tt.histogram(
        "http.server.request.duration",
        &[("http.response.status_code", "400")],
    );
    assert!(bad.is_some(), "the duration of the 400");
    // The tenant is not a label of the gateway's metrics unless listed.
    assert!(
        tt.points()
            .iter()
            .filter(|p| p.name.starts_with("tta.limit") || p.name.starts_with("http."))
            .all(|p| !p.attrs.contains_key("tenant")),
    );
}
