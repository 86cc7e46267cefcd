//! Instruments bound to a fixed label set at build time, so the hot path does no
//! attribute lookup.
//!
//! OpenTelemetry's bound instruments (`Counter::bind`, experimental in the API) drop
//! every measurement when the SDK was built without its matching feature: the API
//! falls back to a no-op handle. So binding is used only when both hold: this crate's
//! feature `bound-instruments` is on (it turns on the API's), **and** the application
//! declared at run time that its SDK binds, with [`declare_sdk_binds`] (`tta_apm::init`
//! does, since it builds the SDK with the matching feature). Otherwise each handle keeps
//! its label set and records through the ordinary instrument: the same data, with the
//! attribute lookup per call. Turning the feature on alone can therefore never lose a
//! measurement.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};

static SDK_BINDS: AtomicBool = AtomicBool::new(false);

/// Declares that the installed SDK implements bound instruments (it was built with
/// `opentelemetry_sdk/experimental_metrics_bound_instruments`), so instruments made
/// from now on bind their labels. Only an application that builds its own SDK with that
/// feature calls this; `tta_apm::init` calls it for its SDK. Without the crate feature
/// `bound-instruments` it does nothing.
///
/// # Examples
///
/// ```
/// assert!(!tta_core::bound::binds() || cfg!(feature = "bound-instruments"));
/// ```
pub fn declare_sdk_binds() {
    SDK_BINDS.store(cfg!(feature = "bound-instruments"), Ordering::Release);
}

/// Whether instruments made now bind their labels (see the [module docs](self)).
pub fn binds() -> bool {
    SDK_BINDS.load(Ordering::Acquire)
}

macro_rules! bound {
    ($(#[$doc:meta])* $name:ident, $inst:ident, $method:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name<T> {
            /// Set only when binding is used (see the module docs).
            #[cfg(feature = "bound-instruments")]
            bound: Option<opentelemetry::metrics::$name<T>>,
            unbound: ($inst<T>, Box<[KeyValue]>),
        }

        impl<T: Copy> $name<T> {
            /// Binds `instrument` to `attributes` (see the [module docs](self) for when
            /// binding is used).
            pub fn new(instrument: &$inst<T>, attributes: &[KeyValue]) -> Self {
                Self {
                    #[cfg(feature = "bound-instruments")]
                    bound: binds().then(|| instrument.bind(attributes)),
                    unbound: (instrument.clone(), attributes.into()),
                }
            }

            /// Records `value` with the bound labels.
            #[inline]
            pub fn $method(&self, value: T) {
                #[cfg(feature = "bound-instruments")]
                if let Some(bound) = &self.bound {
                    return bound.$method(value);
                }
                self.unbound.0.$method(value, &self.unbound.1);
            }
        }

        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($name))
            }
        }
    };
}

bound!(
    /// A counter bound to one label set.
    ///
    /// # Examples
    ///
    /// ```
    /// use opentelemetry::KeyValue;
    /// let counter = opentelemetry::global::meter("m").u64_counter("c").build();
    /// let ok = tta_core::bound::BoundCounter::new(&counter, &[KeyValue::new("outcome", "ok")]);
    /// ok.add(1);
    /// ```
    BoundCounter, Counter, add
);
/// A histogram bound to one label set, at its first record: a histogram series bound
/// before anything is recorded is exported empty, and OTLP then carries its `min` and
/// `max` as the SDK's sentinels (`f64::MAX` and `f64::MIN`, min above max). Counters and
/// gauges bind at once, so their series start at zero.
///
/// # Examples
///
/// ```
/// let h = opentelemetry::global::meter("m").f64_histogram("h").build();
/// tta_core::bound::BoundHistogram::new(&h, &[]).record(0.5);
/// ```
#[derive(Clone)]
pub struct BoundHistogram<T> {
    /// Bound at the first record, when binding is used (see the module docs).
    #[cfg(feature = "bound-instruments")]
    bound: Option<std::sync::Arc<std::sync::OnceLock<opentelemetry::metrics::BoundHistogram<T>>>>,
    unbound: (Histogram<T>, Box<[KeyValue]>),
}

impl<T: Copy> BoundHistogram<T> {
    /// Prepares `instrument` with `attributes`, bound at the first record (see the
    /// [module docs](self) for when binding is used).
    pub fn new(instrument: &Histogram<T>, attributes: &[KeyValue]) -> Self {
        Self {
            #[cfg(feature = "bound-instruments")]
            bound: binds().then(Default::default),
            unbound: (instrument.clone(), attributes.into()),
        }
    }

    /// Records `value` with the bound labels.
    #[inline]
    pub fn record(&self, value: T) {
        #[cfg(feature = "bound-instruments")]
        if let Some(bound) = &self.bound {
            return bound
                .get_or_init(|| self.unbound.0.bind(&self.unbound.1))
                .record(value);
        }
        self.unbound.0.record(value, &self.unbound.1);
    }
}

impl<T> std::fmt::Debug for BoundHistogram<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoundHistogram")
    }
}
bound!(
    /// A gauge bound to one label set.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = opentelemetry::global::meter("m").f64_gauge("g").build();
    /// tta_core::bound::BoundGauge::new(&g, &[]).record(0.25);
    /// ```
    BoundGauge, Gauge, record
);
