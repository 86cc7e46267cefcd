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

/// How a stored entry decodes on a hit: whole ([`Whole`]), or a stream's chunks one at
/// a time as they are replayed ([`Chunks`]).
pub(crate) trait Decode: Sized {
    fn decode(bytes: Bytes) -> Option<(Self, FillCost)>;
}

/// A value decoded whole.
pub(crate) struct Whole<O>(pub(crate) O);

impl<O: DeserializeOwned> Decode for Whole<O> {
    fn decode(bytes: Bytes) -> Option<(Self, FillCost)> {
        decode(&bytes).map(|(value, cost)| (Whole(value), cost))
    }
}

/// The head of an entry, as [`Envelope`] encodes it before its value.
#[derive(Deserialize)]
struct Head {
    format: u8,
    input_tokens: u64,
    output_tokens: u64,
    cost_picos: u64,
}

/// A stored stream (an entry whose value is a `Vec<C>`): its first chunk decoded, the
/// others decoded as they are replayed, so a hit's first chunk does not wait for the
/// whole list. An empty list does not decode (it is no answer).
pub(crate) struct Chunks<C> {
    pub(crate) first: C,
    pub(crate) rest: Rest<C>,
}

/// The chunks after the first, each decoded when it is read; a chunk that does not
/// decode is an `Err(())`, and ends the list.
pub(crate) struct Rest<C> {
    bytes: Bytes,
    at: usize,
    left: u64,
    chunk: std::marker::PhantomData<fn() -> C>,
}

impl<C: DeserializeOwned> Decode for Chunks<C> {
    fn decode(bytes: Bytes) -> Option<(Self, FillCost)> {
        let (head, after) = postcard::take_from_bytes::<Head>(&bytes).ok()?;
        if head.format != FORMAT {
            return None;
        }
        // A sequence is its length (a varint, as postcard encodes a `usize`), then its items.
        let (len, after) = postcard::take_from_bytes::<usize>(after).ok()?;
        let (first, after) = postcard::take_from_bytes::<C>(after).ok()?;
        let at = bytes.len() - after.len();
        let chunks = Chunks {
            first,
            rest: Rest {
                bytes,
                at,
                left: (len as u64).checked_sub(1)?,
                chunk: std::marker::PhantomData,
            },
        };
        let cost = FillCost {
            usage: TokenUsage::new(head.input_tokens, head.output_tokens),
            cost: Usd::from_picos(head.cost_picos),
        };
        Some((chunks, cost))
    }
}

impl<C: DeserializeOwned> Iterator for Rest<C> {
    type Item = Result<C, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        match postcard::take_from_bytes::<C>(rest) {
            Ok((chunk, after)) => {
                self.at = self.bytes.len() - after.len();
                self.left -= 1;
                Some(Ok(chunk))
            }
            Err(_) => {
                self.left = 0;
                Some(Err(()))
            }
        }
    }
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

    #[test]
    fn stored_chunks_decode_one_at_a_time_and_a_cut_entry_ends_in_an_error() {
        let fill = FillCost {
            usage: TokenUsage::new(7, 3),
            cost: Usd::from_picos(42),
        };
        let chunks: Vec<String> = ["one", "two", "three"].map(str::to_owned).to_vec();
        let bytes = encode(&chunks, fill).unwrap();
        let (stored, cost) = Chunks::<String>::decode(bytes.clone()).expect("decodes");
        assert_eq!(cost, fill);
        assert_eq!(stored.first, "one");
        let rest: Vec<Result<String, ()>> = stored.rest.collect();
        assert_eq!(rest, [Ok("two".to_owned()), Ok("three".to_owned())]);

        // Cut inside the last chunk: the first two come, then one error, then nothing.
        let cut = bytes.slice(..bytes.len() - 2);
        let (stored, _) = Chunks::<String>::decode(cut).expect("the head decodes");
        let rest: Vec<Result<String, ()>> = stored.rest.collect();
        assert_eq!(rest, [Ok("two".to_owned()), Err(())]);

        let empty = encode(&Vec::<String>::new(), fill).unwrap();
        assert!(
            Chunks::<String>::decode(empty).is_none(),
            "an empty list is no answer"
        );
        assert!(Chunks::<String>::decode(Bytes::from_static(b"\xff junk")).is_none());
        let mut other_format = bytes.to_vec();
        other_format[0] = 2;
        assert!(Chunks::<String>::decode(Bytes::from(other_format)).is_none());
        // A whole value reads the same bytes.
        let (Whole(whole), _) = Whole::<Vec<String>>::decode(bytes).expect("decodes");
        assert_eq!(whole, chunks);
    }
}
