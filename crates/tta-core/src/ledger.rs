//! Token and dollar accounting for one workflow: what was spent, what a cache saved.
//!
//! Amounts are integers of pico-dollars ([`Usd`]), so concurrent records add up exactly
//! whatever their order; floating point only appears when a value is exported.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::sync::{Arc, Mutex, PoisonError};

use smallvec::SmallVec;

/// Input and output tokens of one model call.
///
/// # Examples
///
/// ```
/// use tta_core::TokenUsage;
///
/// let total = TokenUsage::new(100, 20) + TokenUsage::new(5, 1);
/// assert_eq!(total, TokenUsage::new(105, 21));
/// assert_eq!(total.total(), 126);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
}

impl TokenUsage {
    /// Usage of `input` prompt and `output` completion tokens.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::TokenUsage::new(3, 4).output, 4);
    /// ```
    pub const fn new(input: u64, output: u64) -> Self {
        Self { input, output }
    }

    /// Input plus output tokens.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::TokenUsage::new(3, 4).total(), 7);
    /// ```
    pub const fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

impl Add for TokenUsage {
    type Output = TokenUsage;
    fn add(self, rhs: Self) -> Self {
        Self {
            input: self.input.saturating_add(rhs.input),
            output: self.output.saturating_add(rhs.output),
        }
    }
}

impl AddAssign for TokenUsage {
    fn add_assign(&mut self, rhs: Self) {
        *self = *self + rhs;
    }
}

/// Implemented by outputs that know the token usage of the call that produced them.
///
/// Routers read it to price an attempt; caches store it with a value to count savings.
///
/// # Examples
///
/// ```
/// use tta_core::{ReportsUsage, TokenUsage};
///
/// struct Completion { usage: TokenUsage }
/// impl ReportsUsage for Completion {
///     fn token_usage(&self) -> Option<TokenUsage> { Some(self.usage) }
/// }
///
/// let c = Completion { usage: TokenUsage::new(10, 2) };
/// assert_eq!(c.token_usage(), Some(TokenUsage::new(10, 2)));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not report token usage",
    label = "needs `ReportsUsage` to be priced by its tokens",
    note = "implement `tta_core::ReportsUsage` (`fn token_usage(&self) -> Option<TokenUsage>`), or give the router a `usage` function"
)]
pub trait ReportsUsage {
    /// The usage of the call that produced `self`, if known. For a chunk of a stream:
    /// the usage the provider reported with it (usually on the final chunk only).
    fn token_usage(&self) -> Option<TokenUsage>;

    /// For a chunk of a stream: the output tokens it carries, to estimate the cost of a
    /// stream cut before its provider reported usage. One token per chunk unless the
    /// chunk knows better.
    fn estimated_output_tokens(&self) -> u64 {
        1
    }
}

/// Plain text reports no usage: a router bills a stream of strings by its estimate (one
/// output token per chunk) and a string answer at its route's per-call price.
impl ReportsUsage for String {
    fn token_usage(&self) -> Option<TokenUsage> {
        None
    }
}

/// An amount of US dollars, held as whole pico-dollars (10^-12 USD) so that sums are exact.
///
/// The range is 0 to about 18.4 million dollars; arithmetic saturates instead of wrapping.
///
/// # Examples
///
/// ```
/// use tta_core::Usd;
///
/// let price = Usd::from_dollars(0.0025).unwrap();
/// assert_eq!(price.picos(), 2_500_000_000);
/// assert_eq!((price + price).dollars(), 0.005);
/// assert!(Usd::from_dollars(-1.0).is_none());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u64);

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd(0);
    const PICOS_PER_DOLLAR: f64 = 1e12;

    /// An amount of whole pico-dollars.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::Usd::from_picos(1_000_000_000_000).dollars(), 1.0);
    /// ```
    pub const fn from_picos(picos: u64) -> Self {
        Self(picos)
    }

    /// Converts dollars, rounding to the nearest pico-dollar. `None` for a negative,
    /// non-finite or too large amount.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Usd::from_dollars(f64::NAN).is_none());
    /// assert_eq!(tta_core::Usd::from_dollars(0.0).unwrap(), tta_core::Usd::ZERO);
    /// ```
    pub fn from_dollars(dollars: f64) -> Option<Self> {
        let picos = (dollars * Self::PICOS_PER_DOLLAR).round();
        // `u64::MAX as f64` rounds up to 2^64, so a strict comparison keeps the cast exact.
        (dollars.is_finite() && picos >= 0.0 && picos < u64::MAX as f64)
            .then_some(Self(picos as u64))
    }

    /// Whole pico-dollars.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::Usd::from_picos(7).picos(), 7);
    /// ```
    pub const fn picos(self) -> u64 {
        self.0
    }

    /// The amount in dollars, for export.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::Usd::from_picos(500_000_000_000).dollars(), 0.5);
    /// ```
    pub fn dollars(self) -> f64 {
        self.0 as f64 / Self::PICOS_PER_DOLLAR
    }

    /// The price of `units` at `self` per `per` units, rounded down to a pico-dollar:
    /// `price_per_1k.per_units(tokens, 1000)`. Computed in 128 bits, then saturated.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::Usd;
    ///
    /// let per_1k = Usd::from_dollars(0.03).unwrap();
    /// assert_eq!(per_1k.per_units(1500, 1000), Usd::from_dollars(0.045).unwrap());
    /// ```
    pub fn per_units(self, units: u64, per: u64) -> Usd {
        let per = u128::from(per.max(1));
        let picos = u128::from(self.0) * u128::from(units) / per;
        Usd(u64::try_from(picos).unwrap_or(u64::MAX))
    }

    /// `self - rhs`, or zero when `rhs` is larger.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::Usd;
    /// assert_eq!(Usd::from_picos(3).saturating_sub(Usd::from_picos(5)), Usd::ZERO);
    /// ```
    pub const fn saturating_sub(self, rhs: Usd) -> Usd {
        Usd(self.0.saturating_sub(rhs.0))
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, rhs: Usd) -> Usd {
        Usd(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Usd {
    fn add_assign(&mut self, rhs: Usd) {
        *self = *self + rhs;
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.6}", self.dollars())
    }
}

/// Why an entry was recorded.
///
/// # Examples
///
/// ```
/// assert_eq!(tta_core::AttemptKind::CacheHit.as_str(), "cache_hit");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttemptKind {
    /// A route's first attempt in a request.
    RouteCall,
    /// An attempt made after an earlier route failed.
    Fallback,
    /// A cached answer replaced a call; the entry counts what was saved.
    CacheHit,
    /// A call that failed but was still billed.
    FailedBilled,
    /// A stream that failed, or was dropped, after its first chunk: billed for what was
    /// produced (reported usage, else an estimate: see [`CostEntry::estimated`]).
    InterruptedStream,
}

impl AttemptKind {
    /// A stable, low-cardinality name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::AttemptKind::FailedBilled.as_str(), "failed_billed");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptKind::RouteCall => "route_call",
            AttemptKind::Fallback => "fallback",
            AttemptKind::CacheHit => "cache_hit",
            AttemptKind::FailedBilled => "failed_billed",
            AttemptKind::InterruptedStream => "interrupted_stream",
        }
    }
}

/// One record of the ledger: an attempt's usage and cost, or a cache hit's savings.
///
/// # Examples
///
/// ```
/// use tta_core::{AttemptKind, CostEntry, TokenUsage, Usd};
///
/// let spent = CostEntry::spent(AttemptKind::RouteCall, "gpt", TokenUsage::new(10, 5), Usd::from_picos(9));
/// let saved = CostEntry::saved("answers", TokenUsage::new(10, 5), Usd::from_picos(9));
/// assert_eq!(spent.spent, saved.saved);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CostEntry {
    /// Why it was recorded.
    pub kind: AttemptKind,
    /// The route or cache that recorded it (a validated, bounded name).
    pub source: Arc<str>,
    /// Tokens billed.
    pub usage: TokenUsage,
    /// Dollars billed.
    pub spent: Usd,
    /// Tokens that a cache hit did not have to buy.
    pub saved_usage: TokenUsage,
    /// Dollars that a cache hit did not have to spend.
    pub saved: Usd,
    /// The usage is an estimate (a stream cut before its provider reported usage), not
    /// the provider's count.
    pub estimated: bool,
}

impl CostEntry {
    /// A billed attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{AttemptKind, CostEntry, TokenUsage, Usd};
    /// let e = CostEntry::spent(AttemptKind::Fallback, "b", TokenUsage::new(1, 1), Usd::ZERO);
    /// assert_eq!(e.kind, AttemptKind::Fallback);
    /// ```
    pub fn spent(
        kind: AttemptKind,
        source: impl Into<Arc<str>>,
        usage: TokenUsage,
        spent: Usd,
    ) -> Self {
        Self {
            kind,
            source: source.into(),
            usage,
            spent,
            saved_usage: TokenUsage::default(),
            saved: Usd::ZERO,
            estimated: false,
        }
    }

    /// Marks the usage as an estimate rather than the provider's report.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{AttemptKind, CostEntry, TokenUsage, Usd};
    /// let e = CostEntry::spent(AttemptKind::InterruptedStream, "r", TokenUsage::new(900, 12), Usd::ZERO).estimated();
    /// assert!(e.estimated);
    /// ```
    pub fn estimated(mut self) -> Self {
        self.estimated = true;
        self
    }

    /// A cache hit that saved `usage` tokens worth `saved`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{AttemptKind, CostEntry, TokenUsage, Usd};
    /// let e = CostEntry::saved("cache", TokenUsage::new(1, 1), Usd::from_picos(2));
    /// assert_eq!(e.kind, AttemptKind::CacheHit);
    /// assert_eq!(e.spent, Usd::ZERO);
    /// ```
    pub fn saved(source: impl Into<Arc<str>>, usage: TokenUsage, saved: Usd) -> Self {
        Self {
            kind: AttemptKind::CacheHit,
            source: source.into(),
            usage: TokenUsage::default(),
            spent: Usd::ZERO,
            saved_usage: usage,
            saved,
            estimated: false,
        }
    }
}

/// The running totals of a [`CostLedger`].
///
/// # Examples
///
/// ```
/// let totals = tta_core::CostLedger::new().totals();
/// assert_eq!(totals.entries, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CostTotals {
    /// Entries recorded, including those no longer kept in the list.
    pub entries: u64,
    /// Tokens billed.
    pub usage: TokenUsage,
    /// Dollars billed.
    pub spent: Usd,
    /// Tokens saved by cache hits.
    pub saved_usage: TokenUsage,
    /// Dollars saved by cache hits.
    pub saved: Usd,
}

/// The shared, exact cost ledger of one workflow.
///
/// Every [`WorkflowContext`](crate::WorkflowContext) derived from one root shares it.
/// Totals are exact under any concurrency. The per-entry list keeps the first
/// [`CostLedger::DEFAULT_CAPACITY`] (or the chosen capacity) entries; later ones still
/// count in the totals and in [`CostLedger::overflowed`], so memory stays bounded.
///
/// # Examples
///
/// ```
/// use tta_core::{AttemptKind, CostEntry, CostLedger, TokenUsage, Usd};
///
/// let ledger = CostLedger::with_capacity(1);
/// for _ in 0..3 {
///     ledger.record(CostEntry::spent(AttemptKind::RouteCall, "a", TokenUsage::new(10, 1), Usd::from_picos(5)));
/// }
/// assert_eq!(ledger.totals().spent, Usd::from_picos(15));
/// assert_eq!(ledger.entries().len(), 1);
/// assert_eq!(ledger.overflowed(), 2);
/// ```
#[derive(Debug)]
pub struct CostLedger {
    capacity: usize,
    state: Mutex<LedgerState>,
    parent: Option<Arc<CostLedger>>,
}

#[derive(Debug, Default)]
struct LedgerState {
    totals: CostTotals,
    /// Inline up to two: a request's ledger (one answer, or a failure and its fallback)
    /// allocates nothing for its entries.
    entries: SmallVec<[CostEntry; 2]>,
    overflowed: u64,
}

impl Default for CostLedger {
    fn default() -> Self {
        Self::new()
    }
}

impl CostLedger {
    /// How many entries a ledger keeps by default.
    pub const DEFAULT_CAPACITY: usize = 256;

    /// A ledger keeping up to [`Self::DEFAULT_CAPACITY`] entries.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::CostLedger::new().entries().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A ledger keeping up to `capacity` entries (totals are always complete).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::CostLedger::with_capacity(4).capacity(), 4);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(LedgerState::default()),
            parent: None,
        }
    }

    /// A ledger that records into itself **and** into `parent`: a scope whose totals say
    /// what one part of a workflow cost (a cache fill, say), while the workflow's ledger
    /// still sees every entry. It keeps no entries of its own, only totals.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tta_core::{AttemptKind, CostEntry, CostLedger, TokenUsage, Usd};
    ///
    /// let workflow = Arc::new(CostLedger::new());
    /// let fill = CostLedger::scoped(Arc::clone(&workflow));
    /// fill.record(CostEntry::spent(AttemptKind::RouteCall, "r", TokenUsage::new(5, 5), Usd::from_picos(10)));
    /// assert_eq!(fill.totals().spent, Usd::from_picos(10));
    /// assert_eq!(workflow.totals().spent, Usd::from_picos(10));
    /// assert_eq!(workflow.entries().len(), 1);
    /// ```
    pub fn scoped(parent: Arc<CostLedger>) -> Self {
        Self {
            capacity: 0,
            state: Mutex::new(LedgerState::default()),
            parent: Some(parent),
        }
    }

    /// The most entries this ledger keeps.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::CostLedger::new().capacity(), 256);
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        // A panic elsewhere while holding the lock cannot leave the totals half-written
        // (each update is a few integer additions), so the data is still good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an entry to the totals, and to the list while it has room.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{CostEntry, CostLedger, TokenUsage, Usd};
    /// let ledger = CostLedger::new();
    /// ledger.record(CostEntry::saved("c", TokenUsage::new(4, 2), Usd::from_picos(6)));
    /// assert_eq!(ledger.totals().saved_usage, TokenUsage::new(4, 2));
    /// ```
    pub fn record(&self, entry: CostEntry) {
        {
            let mut state = self.state();
            let totals = &mut state.totals;
            totals.entries += 1;
            totals.usage += entry.usage;
            totals.spent += entry.spent;
            totals.saved_usage += entry.saved_usage;
            totals.saved += entry.saved;
            if state.entries.len() >= self.capacity {
                state.overflowed += 1;
            } else if self.parent.is_none() {
                // Kept here and nowhere else: moved, not copied.
                state.entries.push(entry);
                return;
            } else {
                state.entries.push(entry.clone());
            }
        }
        if let Some(parent) = &self.parent {
            parent.record(entry);
        }
    }

    /// The totals so far.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::CostLedger::new().totals().spent, tta_core::Usd::ZERO);
    /// ```
    pub fn totals(&self) -> CostTotals {
        self.state().totals
    }

    /// A copy of the kept entries, in recording order.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::CostLedger::new().entries().is_empty());
    /// ```
    pub fn entries(&self) -> Vec<CostEntry> {
        self.state().entries.to_vec()
    }

    /// Entries counted in the totals but not kept in the list.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::CostLedger::new().overflowed(), 0);
    /// ```
    pub fn overflowed(&self) -> u64 {
        self.state().overflowed
    }
}
