//! The timeout primitive's own metrics, created once at build time.

use opentelemetry::KeyValue;
use tta_core::bound::{BoundCounter, BoundGauge, BoundHistogram};
use tta_core::{OutcomeWindow, PrimitiveName, Telemetry};

use crate::semconv;

/// How one execution ended, from the timeout's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeoutOutcome {
    /// Finished with a value before the timeout.
    Ok,
    /// Finished with a value after the timeout, within the grace.
    LateOk,
    /// Reached timeout plus grace (or the caller's deadline) and was cancelled.
    Timeout,
    /// The inner primitive failed (an inner error of kind timeout included).
    Error,
}

impl TimeoutOutcome {
    const ALL: [TimeoutOutcome; 4] = [Self::Ok, Self::LateOk, Self::Timeout, Self::Error];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::LateOk => "late_ok",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Ok => 0,
            Self::LateOk => 1,
            Self::Timeout => 2,
            Self::Error => 3,
        }
    }
}

#[derive(Debug)]
pub(crate) struct TimeoutMetrics {
    /// Per outcome: the outcomes counter and the duration histogram.
    outcomes: [(BoundCounter<u64>, BoundHistogram<f64>); 4],
    rate: BoundGauge<f64>,
    /// Fallback results: ok, error.
    fallbacks: [BoundCounter<u64>; 2],
    /// The last 128 executions: the window of `tta.timeout.rate`.
    window: OutcomeWindow<2>,
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
        let duration = meter
            .f64_histogram(semconv::EXECUTION_DURATION)
            .with_description("Duration of timeout primitive executions, by outcome.")
            .with_unit("s")
            .with_boundaries(tta_core::semconv::DURATION_BUCKETS_SECONDS.to_vec())
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
                let labels = [
                    primitive(),
                    KeyValue::new(semconv::LABEL_OUTCOME, o.as_str()),
                ];
                (
                    BoundCounter::new(&outcomes, &labels),
                    BoundHistogram::new(&duration, &labels),
                )
            }),
            rate: BoundGauge::new(&rate, &[primitive()]),
            fallbacks: ["ok", "error"].map(|r| {
                BoundCounter::new(
                    &fallbacks,
                    &[primitive(), KeyValue::new(semconv::LABEL_RESULT, r)],
                )
            }),
            window: OutcomeWindow::new(),
        }
    }

    pub(crate) fn record(&self, outcome: TimeoutOutcome, seconds: f64) {
        let (outcomes, duration) = &self.outcomes[outcome.index()];
        outcomes.add(1);
        duration.record(seconds);
        self.rate
            .record(self.window.push(outcome == TimeoutOutcome::Timeout));
    }

    pub(crate) fn record_fallback(&self, ok: bool) {
        self.fallbacks[usize::from(!ok)].add(1);
    }
}

#[cfg(test)]
mod tests {
    use tta_core::OutcomeWindow;

    #[test]
    fn the_rate_window_covers_the_last_128_executions() {
        let w = OutcomeWindow::<2>::new();
        assert_eq!(w.push(true), 1.0);
        assert_eq!(w.push(false), 0.5);
        for _ in 0..126 {
            w.push(false);
        }
        // 129 executions: the first (the timeout) slid out.
        assert_eq!(w.push(false), 0.0);
        for _ in 0..64 {
            w.push(true);
        }
        assert_eq!(w.push(false), 64.0 / 128.0);
    }
}
