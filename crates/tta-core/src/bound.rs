//! Instruments bound to a fixed label set at build time, so the hot path does no
//! attribute lookup.
//!
//! With the feature `bound-instruments` these are OpenTelemetry's bound instruments
//! (`Counter::bind`, experimental in the API). That feature must only be on when the SDK
//! implements binding too, or every bound measurement would be silently dropped; so it is
//! off by default and `tta-apm` turns it on together with the SDK's matching feature.
//! Without it, each handle keeps its label set and records through the ordinary
//! instrument: the same data, with the attribute lookup per call.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};

macro_rules! bound {
    ($(#[$doc:meta])* $name:ident, $inst:ident, $method:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name<T> {
            #[cfg(feature = "bound-instruments")]
            bound: opentelemetry::metrics::$name<T>,
            #[cfg(not(feature = "bound-instruments"))]
            unbound: ($inst<T>, Box<[KeyValue]>),
        }

        impl<T: Copy> $name<T> {
            /// Binds `instrument` to `attributes`.
            pub fn new(instrument: &$inst<T>, attributes: &[KeyValue]) -> Self {
                Self {
                    #[cfg(feature = "bound-instruments")]
                    bound: instrument.bind(attributes),
                    #[cfg(not(feature = "bound-instruments"))]
                    unbound: (instrument.clone(), attributes.into()),
                }
            }

            /// Records `value` with the bound labels.
            #[inline]
            pub fn $method(&self, value: T) {
                #[cfg(feature = "bound-instruments")]
                self.bound.$method(value);
                #[cfg(not(feature = "bound-instruments"))]
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
bound!(
    /// A histogram bound to one label set.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = opentelemetry::global::meter("m").f64_histogram("h").build();
    /// tta_core::bound::BoundHistogram::new(&h, &[]).record(0.5);
    /// ```
    BoundHistogram, Histogram, record
);
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
