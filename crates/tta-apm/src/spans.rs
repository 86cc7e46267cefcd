//! Span export that loses nothing silently: a bound on the spans waiting for export,
//! counted where they enter and where their export ends, so every span that ended is
//! exported, waiting, or counted as dropped (`tta.apm.spans.dropped`, and the status).
#![cfg_attr(
    not(feature = "otlp"),
    allow(
        dead_code,
        unused_imports,
        reason = "the bounded processor and the counting exporter serve OTLP export only"
    )
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

/// What happened to the spans handed to one exporter.
#[derive(Debug, Default)]
pub(crate) struct SpanLedger {
    /// Waiting in the queue or in an export that has not returned.
    waiting: AtomicU64,
    exported: AtomicU64,
    /// Refused because `max_queue` spans were already waiting.
    dropped_queue_full: AtomicU64,
    /// In a batch whose export failed (the collector refused it, or did not answer).
    dropped_export_failed: AtomicU64,
}

/// The span export's figures since `init`: [`ApmStatus::spans`](crate::ApmStatus::spans).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpanExportStats {
    /// Spans the exporter delivered.
    pub exported: u64,
    /// Spans waiting for export (queued, or in an export in progress).
    pub waiting: u64,
    /// Spans dropped because the queue was full (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub dropped_queue_full: u64,
    /// Spans dropped because their batch's export failed.
    pub dropped_export_failed: u64,
}

impl SpanExportStats {
    /// Every span dropped, for whatever reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_export_failed
    }
}

impl SpanLedger {
    pub(crate) fn stats(&self) -> SpanExportStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SpanExportStats {
            exported: load(&self.exported),
            waiting: load(&self.waiting),
            dropped_queue_full: load(&self.dropped_queue_full),
            dropped_export_failed: load(&self.dropped_export_failed),
        }
    }
}

/// A span processor (the SDK's batch processor) behind a bound of `max_queue` waiting
/// spans: a span over the bound is counted as dropped instead of vanishing in the
/// batch processor's own full queue.
#[derive(Debug)]
pub(crate) struct Bounded<P> {
    pub(crate) inner: P,
    pub(crate) ledger: Arc<SpanLedger>,
    pub(crate) max_queue: u64,
}

impl<P: SpanProcessor> SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let ledger = &self.ledger;
        if ledger.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
            ledger.waiting.fetch_sub(1, Ordering::Relaxed);
            ledger.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// An exporter that tells the ledger how each batch ended.
#[derive(Debug)]
pub(crate) struct Counted<E> {
    pub(crate) inner: E,
    pub(crate) ledger: Arc<SpanLedger>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let ledger = &self.ledger;
        ledger.waiting.fetch_sub(n, Ordering::Relaxed);
        match result {
            Ok(()) => ledger.exported.fetch_add(n, Ordering::Relaxed),
            Err(_) => ledger.dropped_export_failed.fetch_add(n, Ordering::Relaxed),
        };
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// `tta.apm.spans.dropped{reason}` (`queue_full`, `export_failed`): read from the ledger
/// at each collection, from zero.
pub(crate) fn register_metric(
    provider: &opentelemetry_sdk::metrics::SdkMeterProvider,
    ledger: &Arc<SpanLedger>,
) {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider;

    let ledger = Arc::clone(ledger);
    let _counter = provider
        .meter(tta_core::SCOPE_NAME)
        .u64_observable_counter(crate::semconv::SPANS_DROPPED)
        .with_description(
            "Spans dropped before OTLP export: the queue was full, or their batch's export failed.",
        )
        .with_callback(move |observer| {
            let stats = ledger.stats();
            observer.observe(
                stats.dropped_queue_full,
                &[KeyValue::new("reason", "queue_full")],
            );
            observer.observe(
                stats.dropped_export_failed,
                &[KeyValue::new("reason", "export_failed")],
            );
        })
        .build();
}
