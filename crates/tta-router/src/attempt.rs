//! One attempt on one route: its span, its call raced against its deadline, and every
//! record of its outcome (health, metrics, ledger).

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt, Tracer};
use tokio::time::Instant;
use tta_core::deadline::DeadlineReached;
use tta_core::semconv::gen_ai;
use tta_core::{
    AttemptKind, CostEntry, Error, ErrorClass, Permit, WorkflowContext, WorkflowPrimitive,
};

use crate::metrics::{AttemptOutcome, Reason};
use crate::{RouterPrimitive, semconv};

/// What the request loop decided about an attempt before starting it.
pub(crate) struct Attempt<'a> {
    pub(crate) route: usize,
    pub(crate) reason: Reason,
    /// The first attempt of the request is a route call; later ones are fallbacks.
    pub(crate) kind: AttemptKind,
    pub(crate) permit: Permit<'a>,
    /// The attempt's own deadline (attempt timeout, or the caller's time minus a
    /// reserve for the next candidate), when it has one.
    pub(crate) deadline: Option<Instant>,
}

/// Whether a failure says something about the route's health. A bad request, a refused
/// content or a prompt too long for the window would fail the same way anywhere.
fn penalizes(class: ErrorClass) -> bool {
    !matches!(
        class,
        ErrorClass::InvalidRequest | ErrorClass::ContentFilter | ErrorClass::ContextLength
    )
}

impl<I, O> RouterPrimitive<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    pub(crate) async fn attempt(
        &self,
        attempt: Attempt<'_>,
        input: I,
        cx: &WorkflowContext,
    ) -> Result<O, Error> {
        let i = attempt.route;
        let route = &self.routes[i];
        self.metrics.decision(i, attempt.reason);
        if attempt.permit.is_probe() {
            self.metrics.state(i, tta_core::BreakerState::HalfOpen);
        }
        let builder = SpanBuilder::from_name(route.span_name.clone())
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new(gen_ai::OPERATION_NAME, gen_ai::OPERATION_CHAT),
                KeyValue::new(gen_ai::PROVIDER_NAME, route.provider.clone()),
                KeyValue::new(gen_ai::REQUEST_MODEL, route.model.clone()),
                KeyValue::new(semconv::ATTR_ROUTE, route.name.to_arc()),
                KeyValue::new(semconv::ATTR_REASON, attempt.reason.as_str()),
            ]);
        let span = self
            .tracer
            .tracer()
            .build_with_context(builder, cx.otel_context());
        let spanned = cx.with_otel_context(cx.otel_context().with_span(span));
        let (attempt_cx, scope) = spanned.claim_deadline(attempt.deadline);
        let started = Instant::now();
        let result = scope
            .race(route.primitive.execute(input, &attempt_cx))
            .await
            .unwrap_or_else(|DeadlineReached| {
                Err(Error::timeout(
                    route.name.to_arc(),
                    "the attempt reached its deadline",
                ))
            });
        let took = started.elapsed();
        let span = attempt_cx.otel_context().span();
        match &result {
            Ok(output) => {
                let usage = self.usage.as_ref().and_then(|extract| extract(output));
                let cost = route.price.cost(usage);
                cx.ledger().record(CostEntry::spent(
                    attempt.kind,
                    route.name.to_arc(),
                    usage.unwrap_or_default(),
                    cost,
                ));
                self.metrics.cost(i, cost);
                self.metrics
                    .savings(self.baseline(usage).saturating_sub(cost));
                if let Some(usage) = usage {
                    self.metrics.usage(i, usage);
                    self.observe_usage(usage);
                    span.set_attributes([
                        KeyValue::new(gen_ai::USAGE_INPUT_TOKENS, usage.input as i64),
                        KeyValue::new(gen_ai::USAGE_OUTPUT_TOKENS, usage.output as i64),
                    ]);
                }
                span.set_attribute(KeyValue::new(semconv::ATTR_COST, cost.dollars()));
                self.metrics.attempt(i, AttemptOutcome::Ok, took, None);
                route.health.observe(took);
                attempt.permit.success();
            }
            Err(e) => {
                let class = e.class();
                let outcome = if e.is_timeout() {
                    AttemptOutcome::Timeout
                } else {
                    AttemptOutcome::Error
                };
                if let Some(usage) = e.billed_usage() {
                    let cost = route.price.cost(Some(usage));
                    cx.ledger().record(CostEntry::spent(
                        AttemptKind::FailedBilled,
                        route.name.to_arc(),
                        usage,
                        cost,
                    ));
                    self.metrics.cost(i, cost);
                    self.metrics.usage(i, usage);
                    span.set_attributes([
                        KeyValue::new(semconv::ATTR_COST, cost.dollars()),
                        KeyValue::new(gen_ai::USAGE_INPUT_TOKENS, usage.input as i64),
                        KeyValue::new(gen_ai::USAGE_OUTPUT_TOKENS, usage.output as i64),
                    ]);
                }
                span.set_attributes([
                    KeyValue::new(semconv::ERROR_TYPE, class.as_str()),
                    KeyValue::new(semconv::ATTR_ERROR_CLASS, class.as_str()),
                ]);
                span.set_status(Status::error(class.as_str()));
                // Neither the caller's cancellation nor the caller's deadline is the
                // route's fault: the permit goes back unsettled. The attempt's own
                // deadline (a timeout, a reserve for the fallback) is.
                let own_limit = attempt
                    .deadline
                    .is_some_and(|own| cx.deadline().is_none_or(|caller| own < caller));
                let callers_limit = e.is_cancelled()
                    || (e.is_timeout()
                        && !own_limit
                        && cx.remaining().is_some_and(|r| r.is_zero()));
                if !callers_limit {
                    self.metrics.attempt(i, outcome, took, Some(class));
                    route.health.observe(took);
                    if penalizes(class) {
                        let hold = match class {
                            ErrorClass::Auth => Some(self.auth_cooldown),
                            _ => e.retry_after(),
                        };
                        attempt.permit.failure(hold);
                    } else {
                        // No penalty, and no proof of health either: the permit goes back.
                        drop(attempt.permit);
                    }
                }
            }
        }
        self.metrics.state(i, route.health.snapshot().breaker.state);
        span.end();
        result
    }
}
