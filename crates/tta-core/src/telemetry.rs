//! Where primitives get their meter and tracer.

use std::sync::Arc;

use opentelemetry::InstrumentationScope;
use opentelemetry::global::{self, BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry::trace::{Span as _, SpanBuilder, TraceContextExt, Tracer};

/// The instrumentation scope name of every tta meter and tracer.
pub const SCOPE_NAME: &str = "tta";

/// Where primitives get their meter and tracer.
///
/// [`Telemetry::global`] (what builders use unless told otherwise) reads the global
/// providers **when the primitive is built**, so install them (for example with
/// `tta_apm::init`) before building primitives. Tests and multi-tenant programs can
/// hand explicit providers to [`Telemetry::new`] instead.
///
/// # Examples
///
/// A primitive built with explicit providers reports to them, whatever is global:
///
/// ```
/// use opentelemetry::trace::noop::NoopTracerProvider;
/// use opentelemetry::metrics::noop::NoopMeterProvider;
/// use tta_core::{FnPrimitive, Telemetry, WorkflowPrimitive};
///
/// let quiet = Telemetry::new(&NoopMeterProvider::new(), &NoopTracerProvider::new());
/// let step = FnPrimitive::sync_builder(|x: u8, _| Ok(x)).telemetry(&quiet).build()?;
/// assert_eq!(step.name(), "fn");
/// # Ok::<(), tta_core::InvalidName>(())
/// ```
#[derive(Clone)]
pub struct Telemetry {
    meter: Meter,
    pub(crate) tracer: Arc<BoxedTracer>,
    /// Whether the tracer makes spans of its own; see [`Telemetry::starts_spans`].
    pub(crate) spans: bool,
}

/// Whether `tracer` makes spans of its own, or only hands back its parent's span context
/// (the no-op tracer of an unset global provider). Asked with a context whose telemetry
/// is suppressed, so an SDK tracer records and exports nothing for the question.
fn starts_spans(tracer: &BoxedTracer) -> bool {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let parent = SpanContext::new(
        TraceId::from(0x7474_6120_7072_6f62_u128),
        SpanId::from(0x7474_6120_7072_6f62_u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = opentelemetry::Context::new()
        .with_remote_span_context(parent.clone())
        .with_telemetry_suppressed();
    let probe = tracer.build_with_context(SpanBuilder::from_name("tta.probe"), &cx);
    probe.span_context() != &parent
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

impl Telemetry {
    /// The globally installed meter and tracer providers, as they are now (with none
    /// installed, the no-op ones: nothing is recorded, and no span is started).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!tta_core::Telemetry::global().starts_spans(), "no tracer provider installed");
    /// ```
    pub fn global() -> Self {
        let tracer = global::tracer_with_scope(scope());
        Self {
            meter: global::meter_with_scope(scope()),
            spans: starts_spans(&tracer),
            tracer: Arc::new(tracer),
        }
    }

    /// Explicit providers, for tests or for programs with several pipelines.
    ///
    /// # Examples
    ///
    /// See [`Telemetry`].
    pub fn new<M, T>(meter_provider: &M, tracer_provider: &T) -> Self
    where
        M: MeterProvider + ?Sized,
        T: ObjectSafeTracerProvider + ?Sized,
    {
        let tracer = BoxedTracer::new(tracer_provider.boxed_tracer(scope()));
        Self {
            meter: meter_provider.meter_with_scope(scope()),
            spans: starts_spans(&tracer),
            tracer: Arc::new(tracer),
        }
    }

    /// The meter, for a primitive's own instruments.
    ///
    /// # Examples
    ///
    /// ```
    /// let counter = tta_core::Telemetry::global().meter().u64_counter("my.counter").build();
    /// counter.add(1, &[]);
    /// ```
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// The tracer, for a primitive's own child spans.
    ///
    /// # Examples
    ///
    /// ```
    /// use opentelemetry::trace::{Span, Tracer};
    /// let mut span = tta_core::Telemetry::global().tracer().start("work");
    /// span.end();
    /// ```
    pub fn tracer(&self) -> &BoxedTracer {
        &self.tracer
    }

    /// Whether the tracer makes spans of its own. It does not when no tracer provider is
    /// installed: the global no-op tracer only hands back its parent's span context. Then
    /// primitives skip span work altogether, and a child context carries its parent's
    /// span, exactly what the no-op span would have carried.
    ///
    /// # Examples
    ///
    /// ```
    /// use opentelemetry::trace::noop::NoopTracerProvider;
    /// use opentelemetry::metrics::noop::NoopMeterProvider;
    ///
    /// let t = tta_core::Telemetry::new(&NoopMeterProvider::new(), &NoopTracerProvider::new());
    /// assert!(!t.starts_spans());
    /// ```
    pub fn starts_spans(&self) -> bool {
        self.spans
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::global()
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}
