//! The stored entry format: one compact serde codec, [postcard].
//!
//! An entry is the postcard encoding of
//! `Envelope { format: 1, input_tokens: u64, output_tokens: u64, cost_picos: u64, value: O }`:
//! the value plus the token usage and the dollars (in pico-dollars) its fill cost, so a
//! hit can record what it saved. Bytes that do not decode, or carry another `format`, are
//! treated as a miss (and counted as an error); the next fill overwrites them.
//!
//! [postcard]: https://docs.rs/postcard

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tta_core::{TokenUsage, Usd};

/// The current entry format.
const FORMAT: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format: u8,
    input_tokens: u64,
    output_tokens: u64,
    cost_picos: u64,
    value: T,
}

/// What a fill cost: stored with the value, recorded as savings on each hit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FillCost {
    pub(crate) usage: TokenUsage,
    pub(crate) cost: Usd,
}

pub(crate) fn encode<O: Serialize>(value: &O, fill: FillCost) -> Result<Bytes, postcard::Error> {
    let envelope = Envelope {
        format: FORMAT,
        input_tokens: fill.usage.input,
        output_tokens: fill.usage.output,
        cost_picos: fill.cost.picos(),
        value,
    };
    postcard::to_allocvec(&envelope).map(Bytes::from)
}

pub(crate) fn decode<O: DeserializeOwned>(bytes: &[u8]) -> Option<(O, FillCost)> {
    let envelope: Envelope<O> = postcard::from_bytes(bytes).ok()?;
    (envelope.format == FORMAT).then(|| {
        (
            envelope.value,
            FillCost {
                usage: TokenUsage::new(envelope.input_tokens, envelope.output_tokens),
                cost: Usd::from_picos(envelope.cost_picos),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_junk_or_other_formats_do_not_decode() {
        let fill = FillCost {
            usage: TokenUsage::new(120, 30),
            cost: Usd::from_picos(4_500_000),
        };
        let bytes = encode(&"an answer".to_owned(), fill).unwrap();
        assert_eq!(
            decode::<String>(&bytes),
            Some(("an answer".to_owned(), fill))
        );
        assert_eq!(decode::<String>(b"\xff\xfe junk"), None);
        assert_eq!(decode::<String>(&[]), None);
        let mut other_format = bytes.to_vec();
        other_format[0] = 2;
        assert_eq!(decode::<String>(&other_format), None);
    }
}
