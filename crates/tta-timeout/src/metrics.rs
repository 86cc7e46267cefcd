//! The timeout primitive's own metrics, created once at build time.

use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::KeyValue;
use tta_core::bound::{BoundCounter, BoundGauge};
use tta_core::{OutcomeWindow, PrimitiveName, Telemetry};

use crate::semconv;

tta_core::label_enum! {
    /// How one execution ended, from the timeout's point of view.
    pub(crate) enum TimeoutOutcome {
        /// Finished with a value before the timeout.
        Ok => "ok",
        /// Finished with a value after the timeout, within the grace.
        LateOk => "late_ok",
        /// Reached timeout plus grace (or the caller's deadline) and was cancelled.
        Timeout => "timeout",
        /// The inner primitive failed (an inner error of kind timeout included).
        Error => "error",
    }
}

#[derive(Debug)]
pub(crate) struct TimeoutMetrics {
    /// Per outcome: the outcomes counter. (Durations are the generic
    /// `tta.primitive.duration{kind="timeout"}`.)
    outcomes: [BoundCounter<u64>; 4],
    rate: BoundGauge<f64>,
    /// Fallback results: ok, error.
    fallbacks: [BoundCounter<u64>; 2],
    /// The last 128 executions: the window of `tta.timeout.rate`.
    window: OutcomeWindow<2>,
    /// Per outcome, then per fallback result: what [`TimeoutStats`] reads.
    counts: [AtomicU64; TimeoutOutcome::COUNT + FallbackResult::COUNT],
}

tta_core::label_enum! {
    /// How a fallback ended: the `result` label of `tta.timeout.fallbacks`.
    pub(crate) enum FallbackResult {
        /// The fallback returned a value.
        Ok => "ok",
        /// The fallback failed too.
        Error => "error",
    }
}

/// What a timeout primitive has seen since it was built: [`TimeoutPrimitive::stats`](crate::TimeoutPrimitive::stats).
/// Executions cancelled by their caller are in none of the counts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct TimeoutStats {
    /// Finished with a value before the timeout.
    pub ok: u64,
    /// Finished with a value in the grace period.
    pub late_ok: u64,
    /// Reached the hard limit (with or without a fallback).
    pub timeouts: u64,
    /// The inner primitive failed first.
    pub errors: u64,
    /// Fallbacks that returned a value.
    pub fallbacks_ok: u64,
    /// Fallbacks that failed.
    pub fallbacks_failed: u64,
    /// The share of timeouts among the last 128 executions (the `tta.timeout.rate` gauge).
    pub timeout_rate: f64,
}

impl TimeoutMetrics {
    pub(crate) fn new(name: &PrimitiveName, telemetry: &Telemetry) -> Self {
        let meter = telemetry.meter();
        let primitive = || KeyValue::new(semconv::LABEL_PRIMITIVE, name.to_arc());
        let outcomes = meter
            .u64_counter(semconv::OUTCOMES)
            .with_description(
                "Timeout primitive executions by outcome (ok, late_ok, timeout, error).",
            )
            .build();
        let rate = meter
            .f64_gauge(semconv::RATE)
            .with_description(
                "Share of the last 128 executions of a timeout primitive that timed out (0 to 1).",
            )
            // No unit: a unit of "1" would make the Prometheus name `tta_timeout_rate_ratio`.
            .build();
        let fallbacks = meter
            .u64_counter(semconv::FALLBACKS)
            .with_description("Fallbacks run by timeout primitives after a timeout, by result.")
            .build();
        Self {
            outcomes: TimeoutOutcome::ALL.map(|o| {
                BoundCounter::new(
                    &outcomes,
                    &[
                        primitive(),
                        KeyValue::new(semconv::LABEL_OUTCOME, o.as_str()),
                    ],
                )
            }),
            rate: BoundGauge::new(&rate, &[primitive()]),
            fallbacks: FallbackResult::ALL.map(|r| {
                BoundCounter::new(
                    &fallbacks,
                    &[
                        primitive(),
                        KeyValue::new(semconv::LABEL_RESULT, r.as_str()),
                    ],
                )
            }),
            window: OutcomeWindow::new(),
            counts: Default::default(),
        }
    }

    pub(crate) fn record(&self, outcome: TimeoutOutcome) {
        self.outcomes[outcome.index()].add(1);
        self.counts[outcome.index()].fetch_add(1, Ordering::Relaxed);
        self.rate
            .record(self.window.push(outcome == TimeoutOutcome::Timeout));
    }

    pub(crate) fn record_fallback(&self, result: FallbackResult) {
        self.fallbacks[result.index()].add(1);
        self.counts[TimeoutOutcome::COUNT + result.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> TimeoutStats {
        let count = |i: usize| self.counts[i].load(Ordering::Relaxed);
        let fallback = |r: FallbackResult| count(TimeoutOutcome::COUNT + r.index());
        TimeoutStats {
            ok: count(TimeoutOutcome::Ok.index()),
            late_ok: count(TimeoutOutcome::LateOk.index()),
            timeouts: count(TimeoutOutcome::Timeout.index()),
            errors: count(TimeoutOutcome::Error.index()),
            fallbacks_ok: fallback(FallbackResult::Ok),
            fallbacks_failed: fallback(FallbackResult::Error),
            timeout_rate: self.window.share(),
        }
    }
}
