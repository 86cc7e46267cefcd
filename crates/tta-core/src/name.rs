//! Validated names for primitives, routes and caches: safe as metric label values.

use std::fmt;
use std::sync::Arc;

/// A primitive's name: 1 to [`PrimitiveName::MAX_LEN`] ASCII letters, digits, `_`, `-`
/// or `.`, so it is always a safe, low-cardinality label value and span attribute.
///
/// Cloning is cheap (an `Arc<str>` inside).
///
/// # Examples
///
/// ```
/// use tta_core::{InvalidName, PrimitiveName};
///
/// let name = PrimitiveName::new("llm.router-1").unwrap();
/// assert_eq!(name.as_str(), "llm.router-1");
/// assert_eq!(PrimitiveName::new(""), Err(InvalidName::Empty));
/// assert!(matches!(PrimitiveName::new("a b"), Err(InvalidName::Char { ch: ' ', index: 1 })));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrimitiveName(Arc<str>);

/// Why a name was rejected.
///
/// # Examples
///
/// ```
/// use tta_core::{InvalidName, PrimitiveName};
///
/// let long = "x".repeat(PrimitiveName::MAX_LEN + 1);
/// assert_eq!(PrimitiveName::new(&long), Err(InvalidName::TooLong { len: 65, max: 64 }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidName {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is longer than allowed.
    #[error("name is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// [`PrimitiveName::MAX_LEN`], the longest name accepted, in bytes.
        max: usize,
    },
    /// The name holds a character outside `[A-Za-z0-9_.-]`.
    #[error(
        "name has {ch:?} at byte {index}; only ASCII letters, digits, '_', '-' and '.' are allowed"
    )]
    Char {
        /// The first offending character.
        ch: char,
        /// Its byte offset.
        index: usize,
    },
}

impl PrimitiveName {
    /// The longest name accepted, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when `name` is empty, longer than [`Self::MAX_LEN`], or holds a
    /// character outside `[A-Za-z0-9_.-]`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::PrimitiveName::new("cache_v2").is_ok());
    /// assert!(tta_core::PrimitiveName::new("naïve").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        validate(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// A name known valid at compile time, for the defaults of shipped primitives.
    pub(crate) fn from_static(name: &'static str) -> Self {
        debug_assert!(validate(name).is_ok(), "invalid built-in name {name:?}");
        Self(Arc::from(name))
    }

    /// The name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::PrimitiveName::new("a").unwrap().as_str(), "a");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string, for span attributes and ledger entries without a copy.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = tta_core::PrimitiveName::new("a").unwrap();
    /// assert_eq!(&*n.to_arc(), "a");
    /// ```
    pub fn to_arc(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }
}

fn validate(name: &str) -> Result<(), InvalidName> {
    if name.is_empty() {
        return Err(InvalidName::Empty);
    }
    if let Some((index, ch)) = name
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(InvalidName::Char { ch, index });
    }
    if name.len() > PrimitiveName::MAX_LEN {
        return Err(InvalidName::TooLong {
            len: name.len(),
            max: PrimitiveName::MAX_LEN,
        });
    }
    Ok(())
}

impl TryFrom<&str> for PrimitiveName {
    type Error = InvalidName;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl AsRef<str> for PrimitiveName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PrimitiveName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PrimitiveName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}
