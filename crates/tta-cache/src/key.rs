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
        let mut hasher = None;
        let mut writer = KeyWriter::new(&mut hasher);
        writer.prefix(&namespace, version);
        writer.push(input);
        CacheKey {
            hash: writer.finish(),
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
        // copied. It is made only when the key bytes outgrow the writer's buffer.
        let mut hasher = None;
        let mut writer = KeyWriter::new(&mut hasher);
        writer.prefix(&namespace, version);
        if !write(&mut writer) {
            return None;
        }
        Some(CacheKey {
            hash: writer.finish(),
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

/// How many key bytes a [`KeyWriter`] gathers before it hashes them.
const KEY_BUFFER: usize = 256;

/// Where a [`KeyFn`](crate::KeyFn) writes an input's key bytes: into the hash, so nothing
/// is allocated. Small writes (a serializer writes a length, then the bytes) are gathered
/// on the stack and hashed in one update: each BLAKE3 update has a fixed cost of its own,
/// about as much as hashing a short prompt.
pub struct KeyWriter<'a> {
    /// Made only when the key bytes outgrow the buffer; until then the key is hashed from
    /// the buffer in one call, which skips the incremental hasher's setup and bookkeeping.
    hasher: &'a mut Option<blake3::Hasher>,
    buffer: [u8; KEY_BUFFER],
    len: usize,
}

impl<'a> KeyWriter<'a> {
    fn new(hasher: &'a mut Option<blake3::Hasher>) -> Self {
        Self {
            hasher,
            buffer: [0; KEY_BUFFER],
            len: 0,
        }
    }

    /// Length-prefixed, so no (namespace, input) pair can collide with another by
    /// moving bytes across the boundary.
    fn prefix(&mut self, namespace: &str, version: u32) {
        self.push(&(namespace.len() as u64).to_le_bytes());
        self.push(namespace.as_bytes());
        self.push(&version.to_le_bytes());
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.buffer.get_mut(self.len..end) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.spill(bytes),
        }
    }

    /// `bytes` do not fit in what is left of the buffer.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, bytes: &[u8]) {
        self.flush_buffer();
        match self.buffer.get_mut(..bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len = bytes.len();
            }
            // Larger than the whole buffer: hashed as it is.
            None => {
                self.hasher().update(bytes);
            }
        }
    }

    /// Hashes the gathered bytes.
    fn flush_buffer(&mut self) {
        let hasher = self.hasher.get_or_insert_with(blake3::Hasher::new);
        hasher.update(&self.buffer[..self.len]);
        self.len = 0;
    }

    fn hasher(&mut self) -> &mut blake3::Hasher {
        self.hasher.get_or_insert_with(blake3::Hasher::new)
    }

    /// The hash of everything written: the same BLAKE3 either way, one-shot when the
    /// whole stream fit in the buffer. Borrowed, not consumed: moving the writer would
    /// copy its buffer.
    fn finish(&mut self) -> [u8; 32] {
        if self.hasher.is_none() {
            return *blake3::hash(&self.buffer[..self.len]).as_bytes();
        }
        self.flush_buffer();
        *self.hasher().finalize().as_bytes()
    }
}

impl std::io::Write for KeyWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
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
        for len in [
            0, 1, 31, 241, 242, 243, 256, 1009, 1010, 1011, 1024, 4096, 100_000,
        ] {
            let input: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let expected = reference("ns", 3, &input);
            assert_eq!(
                CacheKey::new("ns", 3, &input).hash(),
                &expected,
                "len {len}"
            );
            // Written in uneven pieces, some crossing a chunk boundary mid-write.
            for piece in [1, 13, 255, 256, 257, 700] {
                let key = CacheKey::hashed(Arc::from("ns"), 3, |w| {
                    input.chunks(piece).all(|c| w.write_all(c).is_ok())
                })
                .expect("keyed");
                assert_eq!(key.hash(), &expected, "len {len}, pieces of {piece}");
            }
        }
    }

    #[test]
    fn a_namespace_longer_than_the_buffer_is_hashed_whole() {
        let namespace = "n".repeat(1_000);
        let input = b"the prompt";
        let expected = reference(&namespace, 7, input);
        assert_eq!(
            CacheKey::new(namespace.as_str(), 7, input).hash(),
            &expected
        );
        let key = CacheKey::hashed(Arc::from(namespace.as_str()), 7, |w| {
            w.write_all(input).is_ok()
        })
        .expect("keyed");
        assert_eq!(key.hash(), &expected);
    }
}
