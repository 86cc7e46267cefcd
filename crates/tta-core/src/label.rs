//! Label enums: a bounded set of metric label values, each with an index into the
//! arrays of instruments a primitive binds at build time.

/// A label whose values are fixed at compile time: [`ALL`](Self::ALL) in index order,
/// each with its label value. Made by [`label_enum!`](crate::label_enum), the one way tta
/// turns a label value into the index of its pre-bound instrument.
pub trait Label: Copy + Eq + 'static {
    /// Every value, in index order.
    const ALL: &'static [Self];

    /// The label value.
    fn as_str(self) -> &'static str;

    /// The position of `self` in [`ALL`](Self::ALL).
    fn index(self) -> usize;
}

/// Declares a fieldless enum of label values: `ALL` (in declaration order), `COUNT`,
/// `as_str` and `index` (its position in `ALL`), and the [`Label`] trait.
///
/// # Examples
///
/// ```
/// tta_core::label_enum! {
///     /// How a lookup ended.
///     pub enum Lookup {
///         /// Found.
///         Hit => "hit",
///         /// Not found.
///         Miss => "miss",
///     }
/// }
///
/// // One counter per value, bound at build time, found by index on the hot path.
/// let counts: [u32; Lookup::COUNT] = [0; Lookup::COUNT];
/// assert_eq!(counts[Lookup::Miss.index()], 0);
/// assert_eq!(Lookup::ALL.map(Lookup::as_str), ["hit", "miss"]);
/// ```
#[macro_export]
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $value:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        #[allow(dead_code, reason = "not every label enum uses every helper")]
        impl $name {
            /// How many values there are.
            $vis const COUNT: usize = [$(stringify!($variant)),+].len();
            /// Every value, in index order.
            $vis const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The label value.
            $vis const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value),+
                }
            }

            /// The position of `self` in `ALL`: the declaration order, which `ALL` keeps.
            $vis const fn index(self) -> usize {
                self as usize
            }
        }

        impl $crate::Label for $name {
            const ALL: &'static [Self] = &$name::ALL;

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            fn index(self) -> usize {
                $name::index(self)
            }
        }
    };
}

/// A seed that differs between processes and between calls, for jitter and sampling
/// that must not line up across replicas. Taken from the standard library's per-process
/// random hash keys (each `RandomState` gets fresh keys), so no RNG crate is needed to
/// seed one.
///
/// # Examples
///
/// ```
/// assert_ne!(tta_core::random_seed(), tta_core::random_seed());
/// ```
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish()
}
