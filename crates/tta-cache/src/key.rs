//! Cache keys: a BLAKE3 hash of the namespace, the version and the input's bytes.

use std::fmt;
use std::sync::Arc;

/// The key of one cache entry: `BLAKE3(len(namespace) ‖ namespace ‖ version ‖ input)`.
///
/// The input bytes are the postcard serialization of the input (or what the cache's key
/// function returns), taken as they are: no trimming, case folding or cleaning, so
/// distinct inputs give distinct keys. Only the hash and the namespace appear in a store
/// key, never the input.
///
/// # Examples
///
/// ```
/// use tta_cache::CacheKey;
///
/// let a = CacheKey::new("answers", 1, b"a b");
/// let b = CacheKey::new("answers", 1, b"a_b");
/// assert_ne!(a, b);
/// assert_ne!(a, CacheKey::new("answers", 2, b"a b"), "a new version is a new key");
/// assert_eq!(a.to_hex().len(), 64);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    hash: [u8; 32],
    namespace: Arc<str>,
}

impl CacheKey {
    /// Hashes `input` under `namespace` and `version`.
    ///
    /// # Examples
    ///
    /// See [`CacheKey`].
    pub fn new(namespace: impl Into<Arc<str>>, version: u32, input: &[u8]) -> Self {
        let namespace = namespace.into();
        let mut hasher = blake3::Hasher::new();
        prefix(&mut hasher, &namespace, version);
        hasher.update(input);
        CacheKey {
            hash: *hasher.finalize().as_bytes(),
            namespace,
        }
    }

    /// Hashes what `write` writes as the input bytes, without collecting them first;
    /// `None` when `write` reports that the input cannot be keyed.
    pub(crate) fn hashed(
        namespace: Arc<str>,
        version: u32,
        write: impl FnOnce(&mut KeyWriter<'_>) -> bool,
    ) -> Option<Self> {
        // The hasher stays in this frame and is only lent out: its 2 KiB state is never
        // copied.
        let mut hasher = blake3::Hasher::new();
        prefix(&mut hasher, &namespace, version);
        write(&mut KeyWriter(&mut hasher)).then(|| CacheKey {
            hash: *hasher.finalize().as_bytes(),
            namespace,
        })
    }

    /// The 32-byte hash.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_cache::CacheKey::new("n", 1, b"x").hash().len(), 32);
    /// ```
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The namespace.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_cache::CacheKey::new("n", 1, b"x").namespace(), "n");
    /// ```
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The hash as 64 lower-case hex digits.
    ///
    /// # Examples
    ///
    /// See [`CacheKey`].
    pub fn to_hex(&self) -> String {
        hex(&self.hash)
    }

    /// The first 16 hex digits, for spans and logs.
    pub(crate) fn short(&self) -> String {
        hex(&self.hash[..8])
    }
}

/// Lower-case hex, in one allocation.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Length-prefixed, so no (namespace, input) pair can collide with another by moving
/// bytes across the boundary.
fn prefix(hasher: &mut blake3::Hasher, namespace: &str, version: u32) {
    hasher.update(&(namespace.len() as u64).to_le_bytes());
    hasher.update(namespace.as_bytes());
    hasher.update(&version.to_le_bytes());
}

/// Where a [`KeyFn`](crate::KeyFn) writes an input's key bytes: straight into the hash,
/// so nothing is collected or allocated.
pub struct KeyWriter<'a>(&'a mut blake3::Hasher);

impl std::io::Write for KeyWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for KeyWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyWriter")
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({}:{})", self.namespace, self.short())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// The reference: BLAKE3 of the whole prefixed byte stream, in one call.
    fn reference(namespace: &str, version: u32, input: &[u8]) -> [u8; 32] {
        let mut all = Vec::new();
        all.extend_from_slice(&(namespace.len() as u64).to_le_bytes());
        all.extend_from_slice(namespace.as_bytes());
        all.extend_from_slice(&version.to_le_bytes());
        all.extend_from_slice(input);
        *blake3::hash(&all).as_bytes()
    }

    #[test]
    fn a_key_is_blake3_of_the_prefixed_stream_however_it_is_written() {
        // Around BLAKE3's 1 KiB chunk boundary (the prefix of "ns" is 14 bytes) and past it.
        for len in [0, 1, 31, 1009, 1010, 1011, 1024, 4096, 100_000] {
            let input: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let expected = reference("ns", 3, &input);
            assert_eq!(
                CacheKey::new("ns", 3, &input).hash(),
                &expected,
                "len {len}"
            );
            // Written in uneven pieces, some crossing a chunk boundary mid-write.
            for piece in [1, 13, 700] {
                let key = CacheKey::hashed(Arc::from("ns"), 3, |w| {
                    input.chunks(piece).all(|c| w.write_all(c).is_ok())
                })
                .expect("keyed");
                assert_eq!(key.hash(), &expected, "len {len}, pieces of {piece}");
            }
        }
    }
}
