//! Histogram views: second-scale buckets for `tta.*`, the GenAI conventions' for `gen_ai.*`.

use opentelemetry_sdk::metrics::{Aggregation, Instrument, InstrumentKind, Stream};

use crate::semconv;

/// Second-scale buckets for `tta.*` histograms, GenAI buckets for `gen_ai.*` ones.
pub(crate) fn histogram_view(instrument: &Instrument) -> Option<Stream> {
    if instrument.kind() != InstrumentKind::Histogram {
        return None;
    }
    let boundaries = match instrument.name() {
        semconv::GEN_AI_OPERATION_DURATION => semconv::GEN_AI_DURATION_BUCKETS,
        semconv::GEN_AI_TOKEN_USAGE => semconv::GEN_AI_TOKEN_BUCKETS,
        name if name.starts_with("tta.") && instrument.unit() == "s" => {
            semconv::DURATION_BUCKETS_SECONDS
        }
        _ => return None,
    };
    Stream::builder()
        .with_aggregation(Aggregation::ExplicitBucketHistogram {
            boundaries: boundaries.to_vec(),
            record_min_max: true,
        })
        .build()
        .ok()
}
