//! The server side of a request's telemetry: a span per request (OpenTelemetry's HTTP
//! conventions) that parents the primitives' spans, continuing the client's W3C
//! `traceparent`, and `http.server.request.duration`.

use std::time::Instant;

use axum::http::HeaderMap;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use tta_core::Telemetry;

/// The route every request of the chat endpoint is labelled with.
pub(crate) const CHAT_ROUTE: &str = "/v1/chat/completions";
/// Its server span's name (method and route, per the HTTP conventions).
const CHAT_SPAN: &str = "POST /v1/chat/completions";

/// The client's trace context from a W3C `traceparent` header (`00-TRACE-SPAN-FLAGS`);
/// an absent or malformed header starts a new trace.
pub(crate) fn remote_parent(headers: &HeaderMap) -> Context {
    let parsed = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let mut parts = v.trim().split('-');
            let (version, trace, span, flags) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 {
                return None;
            }
            let trace = TraceId::from_hex(trace).ok()?;
            let span = SpanId::from_hex(span).ok()?;
            let flags = u8::from_str_radix(flags.get(..2)?, 16).ok()?;
            (trace != TraceId::INVALID && span != SpanId::INVALID).then(|| {
                SpanContext::new(trace, span, TraceFlags::new(flags), true, TraceState::NONE)
            })
        });
    match parsed {
        Some(remote) => Context::new().with_remote_span_context(remote),
        None => Context::new(),
    }
}

/// One request's server span and duration, ended with its status when dropped (for a
/// stream: when its body has been sent, or the client went away).
pub(crate) struct ServerRequest {
    cx: Context,
    started: Instant,
    status: u16,
    duration: opentelemetry::metrics::Histogram<f64>,
}

impl ServerRequest {
    pub(crate) fn start(
        telemetry: &Telemetry,
        duration: &opentelemetry::metrics::Histogram<f64>,
        headers: &HeaderMap,
    ) -> Self {
        let parent = remote_parent(headers);
        let span = telemetry
            .tracer()
            .span_builder(CHAT_SPAN)
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", CHAT_ROUTE),
                KeyValue::new("url.path", CHAT_ROUTE),
            ])
            .start_with_context(telemetry.tracer(), &parent);
        Self {
            cx: parent.with_span(span),
            started: Instant::now(),
            status: 200,
            duration: duration.clone(),
        }
    }

    /// The context the primitives' spans are children of.
    pub(crate) fn context(&self) -> &Context {
        &self.cx
    }

    /// The response's status.
    pub(crate) fn status(&mut self, status: u16) {
        self.status = status;
    }
}

impl Drop for ServerRequest {
    fn drop(&mut self) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(self.status),
        ));
        if self.status >= 500 {
            span.set_status(Status::error(self.status.to_string()));
        }
        span.end();
        self.duration.record(
            self.started.elapsed().as_secs_f64(),
            &[
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", CHAT_ROUTE),
                KeyValue::new("http.response.status_code", i64::from(self.status)),
            ],
        );
    }
}

/// `http.server.request.duration`, in seconds.
pub(crate) fn duration_histogram(telemetry: &Telemetry) -> opentelemetry::metrics::Histogram<f64> {
    telemetry
        .meter()
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .with_description("Duration of HTTP server requests (a stream's: until its body was sent).")
        .with_boundaries(tta_core::semconv::DURATION_BUCKETS_SECONDS.to_vec())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_continued_and_a_bad_one_ignored() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let cx = remote_parent(&h);
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_remote() && sc.is_sampled());
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-xyz-00f067aa0ba902b7-01",
            "garbage",
        ] {
            h.insert("traceparent", bad.parse().unwrap());
            assert!(!remote_parent(&h).span().span_context().is_valid(), "{bad}");
        }
    }
}
