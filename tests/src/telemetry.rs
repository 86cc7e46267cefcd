//! An in-memory OpenTelemetry pipeline: real SDK providers, in-memory exporters.

use std::collections::BTreeMap;

use opentelemetry::Value;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

/// Real SDK tracer and meter providers exporting to memory.
#[derive(Debug)]
pub struct TestTelemetry {
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
}

/// One exported data point, flattened for assertions.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Instrument name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Attributes, as strings.
    pub attrs: BTreeMap<String, String>,
    /// The value.
    pub value: PointValue,
}

/// The value of a [`Point`].
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    /// A sum (counter) value.
    Sum(f64),
    /// A gauge value.
    Gauge(f64),
    /// A histogram.
    Histogram {
        /// Recorded values.
        count: u64,
        /// Their sum.
        sum: f64,
        /// Explicit bucket boundaries.
        bounds: Vec<f64>,
        /// Per-bucket counts (one more than `bounds`).
        buckets: Vec<u64>,
    },
}

impl Default for TestTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTelemetry {
    /// A fresh pipeline, not installed globally.
    pub fn new() -> Self {
        let spans = InMemorySpanExporter::default();
        let metrics = InMemoryMetricExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        Self {
            spans,
            metrics,
            tracer_provider,
            meter_provider,
        }
    }

    /// The tracer provider.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// The meter provider.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// Every finished span so far.
    pub fn spans(&self) -> Vec<SpanData> {
        let _ = self.tracer_provider.force_flush();
        self.spans.get_finished_spans().unwrap_or_default()
    }

    /// The finished spans named `name`.
    pub fn spans_named(&self, name: &str) -> Vec<SpanData> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }

    /// Collects and returns every data point of the latest collection.
    pub fn points(&self) -> Vec<Point> {
        self.metrics.reset();
        let _ = self.meter_provider.force_flush();
        let exported = self.metrics.get_finished_metrics().unwrap_or_default();
        let mut points = Vec::new();
        let Some(last) = exported.last() else {
            return points;
        };
        for scope in last.scope_metrics() {
            for metric in scope.metrics() {
                let name = metric.name().to_owned();
                let unit = metric.unit().to_owned();
                let mut push = |attrs: BTreeMap<String, String>, value| {
                    points.push(Point {
                        name: name.clone(),
                        unit: unit.clone(),
                        attrs,
                        value,
                    });
                };
                match metric.data() {
                    AggregatedMetrics::F64(data) => flatten(data, |v| v, &mut push),
                    AggregatedMetrics::U64(data) => flatten(data, |v| v as f64, &mut push),
                    AggregatedMetrics::I64(data) => flatten(data, |v| v as f64, &mut push),
                }
            }
        }
        points
    }

    /// The points of instrument `name` whose attributes include every pair of `attrs`.
    pub fn points_matching(&self, name: &str, attrs: &[(&str, &str)]) -> Vec<Point> {
        self.points()
            .into_iter()
            .filter(|p| p.name == name && has_attrs(&p.attrs, attrs))
            .collect()
    }

    /// The sum of a counter's points matching `attrs` (0 when there are none).
    pub fn counter(&self, name: &str, attrs: &[(&str, &str)]) -> f64 {
        self.points_matching(name, attrs)
            .iter()
            .map(|p| match p.value {
                PointValue::Sum(v) | PointValue::Gauge(v) => v,
                PointValue::Histogram { count, .. } => count as f64,
            })
            .sum()
    }

    /// The single histogram point matching `attrs`, if any.
    pub fn histogram(&self, name: &str, attrs: &[(&str, &str)]) -> Option<PointValue> {
        self.points_matching(name, attrs)
            .into_iter()
            .map(|p| p.value)
            .find(|v| matches!(v, PointValue::Histogram { .. }))
    }
}

fn has_attrs(have: &BTreeMap<String, String>, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v))
}

fn attrs<'a>(kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> BTreeMap<String, String> {
    kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect()
}

fn flatten<T: Copy>(
    data: &MetricData<T>,
    to_f64: impl Fn(T) -> f64,
    push: &mut impl FnMut(BTreeMap<String, String>, PointValue),
) {
    match data {
        MetricData::Sum(sum) => {
            for p in sum.data_points() {
                push(attrs(p.attributes()), PointValue::Sum(to_f64(p.value())));
            }
        }
        MetricData::Gauge(gauge) => {
            for p in gauge.data_points() {
                push(attrs(p.attributes()), PointValue::Gauge(to_f64(p.value())));
            }
        }
        MetricData::Histogram(hist) => {
            for p in hist.data_points() {
                push(
                    attrs(p.attributes()),
                    PointValue::Histogram {
                        count: p.count(),
                        sum: to_f64(p.sum()),
                        bounds: p.bounds().collect(),
                        buckets: p.bucket_counts().collect(),
                    },
                );
            }
        }
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// A span's attribute as a string.
pub fn span_attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            Value::String(s) => s.as_str().to_owned(),
            other => other.to_string(),
        })
}

/// The span whose span id is `parent_span_id` of `child`, among `spans`.
pub fn parent_of<'a>(spans: &'a [SpanData], child: &SpanData) -> Option<&'a SpanData> {
    if child.parent_span_id == SpanId::INVALID {
        return None;
    }
    spans
        .iter()
        .find(|s| s.span_context.span_id() == child.parent_span_id)
}

/// A real Prometheus pipeline: an SDK meter provider read by the Prometheus exporter, and
/// the registry's text exposition, as `/metrics` serves it.
#[derive(Debug)]
pub struct PromTelemetry {
    registry: prometheus::Registry,
    meter_provider: SdkMeterProvider,
    tracer_provider: SdkTracerProvider,
}

impl Default for PromTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl PromTelemetry {
    /// A fresh pipeline, not installed globally.
    pub fn new() -> Self {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .expect("a Prometheus exporter on a fresh registry");
        Self {
            registry,
            meter_provider: SdkMeterProvider::builder().with_reader(exporter).build(),
            tracer_provider: SdkTracerProvider::builder().build(),
        }
    }

    /// The meter provider.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// A tracer provider with no exporter (spans are recorded, then dropped).
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// The text exposition.
    pub fn scrape(&self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The sum of the samples of `name` whose labels include every pair of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sample_sum(&self.scrape(), name, labels)
    }
}

/// The sum of the samples named `name` in a text exposition whose labels include every
/// pair of `labels`.
pub fn sample_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}
