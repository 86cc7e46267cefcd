//! API keys: only their SHA-256 digests are kept; a presented key is hashed and compared
//! with every digest in constant time, so neither the key nor which digest it matched
//! leaks through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A key's digest.
pub(crate) type KeyDigest = [u8; 32];

/// The digest in `hex` (64 hex digits), if it is one.
pub(crate) fn digest_from_hex(hex: &str) -> Option<KeyDigest> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// The SHA-256 of `key`, in hex: what a config stores for it.
///
/// # Examples
///
/// ```
/// assert_eq!(
///     tta_gateway::key_digest("secret"),
///     "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
/// );
/// ```
pub fn key_digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The keys a gateway accepts, each with its tenant.
#[derive(Debug)]
pub(crate) struct Keys {
    entries: Vec<(KeyDigest, usize)>,
}

impl Keys {
    /// `entries`: each digest with the index of its tenant.
    pub(crate) fn new(entries: Vec<(KeyDigest, usize)>) -> Self {
        Self { entries }
    }

    /// The tenant of `presented`, if it is a valid key. Every digest is compared, all in
    /// constant time.
    pub(crate) fn tenant(&self, presented: &str) -> Option<usize> {
        let digest: KeyDigest = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (known, tenant) in &self.entries {
            if bool::from(known.ct_eq(&digest)) {
                found = Some(*tenant);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_and_bad_hex_is_refused() {
        let hex = key_digest("k");
        let keys = Keys::new(vec![(digest_from_hex(&hex).unwrap(), 3)]);
        assert_eq!(keys.tenant("k"), Some(3));
        assert_eq!(keys.tenant("K"), None);
        assert_eq!(keys.tenant(""), None);
        assert!(digest_from_hex(&hex.to_uppercase()).is_some());
        assert!(digest_from_hex("zz").is_none());
        assert!(digest_from_hex(&"g".repeat(64)).is_none());
    }
}
