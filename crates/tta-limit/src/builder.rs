//! The limit's settings, validated once in `build` into a [`LimitLayer`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tta_core::{CostBound, InvalidName, Layer, PrimitiveName, Telemetry, Usd};

use crate::metrics::LimitMetrics;
use crate::store::{LimitStore, MemoryStore};
use crate::{LimitPrimitive, Shared};

tta_core::label_enum! {
    /// What a limit counts: the `resource` label of `tta.limit.decisions`.
    pub enum Resource {
        /// Calls per window.
        Requests => "requests",
        /// Tokens (input and output) per window, settled from the calls' usage.
        Tokens => "tokens",
        /// Dollars per window, settled from the cost ledger (counted in pico-dollars).
        Usd => "usd",
        /// Calls running at once (in this process).
        Concurrency => "concurrency",
    }
}

/// What a limit does when its store cannot answer (Redis down or its breaker open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStoreDown {
    /// Let the call through, count it (`result="failed_open"`), reserve nothing.
    FailOpen,
    /// Refuse the call with kind `limited` (`result="failed_closed"`).
    FailClosed,
}

/// One limit on a resource per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) resource: Resource,
    pub(crate) cap: u64,
    pub(crate) window: Duration,
}

/// Why a [`LimitLayer`] could not be built.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_limit::{BuildError, LimitLayer};
///
/// let err = LimitLayer::builder().usd_per(0.05, Duration::from_secs(60)).build().unwrap_err();
/// assert_eq!(err, BuildError::NoCostBound);
/// ```
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No limit was configured.
    #[error("no limit was set; call `.requests_per`, `.tokens_per`, `.usd_per` or `.concurrency`")]
    NoLimit,
    /// A USD budget needs to know the most a call can cost.
    #[error(
        "a USD budget needs `.cost_bound(..)` (a router's `cost_bound()`, say) to reserve before each call"
    )]
    NoCostBound,
    /// A cap is zero, or a USD cap negative, NaN or infinite.
    #[error("the {resource} limit must be above zero, got {value}")]
    BadCap {
        /// `requests`, `tokens`, `usd` or `concurrency`.
        resource: &'static str,
        /// The value given.
        value: f64,
    },
    /// A window is zero or longer than [`MAX_WINDOW`](crate::MAX_WINDOW).
    #[error("the {resource} window must be above zero and at most 366 days, got {value:?}")]
    BadWindow {
        /// `requests`, `tokens` or `usd`.
        resource: &'static str,
        /// The value given.
        value: Duration,
    },
    /// The same resource and window were limited twice.
    #[error("the {resource} limit per {window:?} is set twice")]
    Duplicate {
        /// The resource.
        resource: &'static str,
        /// The window.
        window: Duration,
    },
    /// The hold is zero or above [`MAX_WINDOW`](crate::MAX_WINDOW).
    #[error("the hold must be above zero and at most 366 days, got {0:?}")]
    BadHold(Duration),
    /// The tenant metadata key is empty.
    #[error("the tenant metadata key must not be empty")]
    EmptyTenantKey,
    /// Tenant labels were listed without a tenant key, or one is empty or too long.
    #[error("tenant labels: {0}")]
    BadTenantLabels(&'static str),
    /// The name is not a valid primitive name.
    #[error(transparent)]
    Name(#[from] InvalidName),
}

/// Configures a [`LimitLayer`]. Setters only store; [`build`](Self::build) validates.
///
/// | setting | default | rule |
/// |---|---|---|
/// | `requests_per(n, window)` | none | `n` > 0; window 0 < w <= 366 days |
/// | `tokens_per(n, window)` | none | as above |
/// | `usd_per(usd, window)` | none | finite, > 0; needs `cost_bound` |
/// | `concurrency(n)` | none | `n` > 0; per process |
/// | `cost_bound` | none | the most a call can be billed (a router's `cost_bound()`) |
/// | `tenant_from(key)` | one global key | a context metadata key, not empty |
/// | `tenant_labels([..])` | none: no tenant label | up to 64 names, each 1 to 64 bytes |
/// | `store` | a new [`MemoryStore`] | |
/// | `on_store_down(resource, policy)` | fail closed for USD, fail open for rates | |
/// | `hold` | 15 min | how long a store keeps a reservation whose call never settles |
/// | `name` | `limit` | a valid primitive name (the `limit` label) |
/// | `telemetry` | [`Telemetry::global`] | |
#[must_use]
#[derive(Debug)]
pub struct LimitBuilder {
    name: String,
    rules: Vec<(Resource, Result<u64, f64>, Duration)>,
    concurrency: Option<usize>,
    cost_bound: Option<CostBound>,
    tenant_key: Option<String>,
    tenant_labels: Option<Vec<String>>,
    store: Option<Arc<dyn LimitStore>>,
    on_down: [Option<OnStoreDown>; Resource::COUNT],
    hold: Duration,
    telemetry: Option<Telemetry>,
}

/// The longest window, and the longest hold: 366 days.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// The most tenants that may be metric labels.
const MAX_TENANT_LABELS: usize = 64;

impl LimitBuilder {
    pub(crate) fn new() -> Self {
        Self {
            name: "limit".to_owned(),
            rules: Vec::new(),
            concurrency: None,
            cost_bound: None,
            tenant_key: None,
            tenant_labels: None,
            store: None,
            on_down: [None; Resource::COUNT],
            hold: Duration::from_secs(15 * 60),
            telemetry: None,
        }
    }

    /// The limit's name: the `limit` label, and what separates its counters from other
    /// limits' in a shared store.
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// At most `n` calls per `window` per key.
    pub fn requests_per(mut self, n: u64, window: Duration) -> Self {
        self.rules.push((Resource::Requests, Ok(n), window));
        self
    }

    /// At most `n` tokens (input plus output) per `window` per key. Each call reserves
    /// its input's [`MaxUsage`](tta_core::MaxUsage) and settles to its usage.
    pub fn tokens_per(mut self, n: u64, window: Duration) -> Self {
        self.rules.push((Resource::Tokens, Ok(n), window));
        self
    }

    /// At most `usd` dollars per `window` per key. Each call reserves the most it can
    /// cost ([`cost_bound`](Self::cost_bound) of its input's maximum) and settles to
    /// what the cost ledger recorded.
    pub fn usd_per(mut self, usd: f64, window: Duration) -> Self {
        let cap = Usd::from_dollars(usd)
            .filter(|_| usd > 0.0)
            .map(Usd::picos)
            .ok_or(usd);
        self.rules.push((Resource::Usd, cap, window));
        self
    }

    /// At most `n` calls running at once per key, in this process. A call over it is
    /// refused at once (no queue).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// The most one call can be billed, per token of its maximum: a router's
    /// `cost_bound()`, or a client's price for one attempt. Required with `usd_per`.
    pub fn cost_bound(mut self, bound: CostBound) -> Self {
        self.cost_bound = Some(bound);
        self
    }

    /// Reads the key from this context metadata entry (a tenant id): each value has
    /// its own counters. Calls without the entry share the key `-`. Without this
    /// setting every call shares one global key.
    pub fn tenant_from(mut self, metadata_key: &str) -> Self {
        self.tenant_key = Some(metadata_key.to_owned());
        self
    }

    /// Tenants that may appear as the `tenant` label of `tta.limit.decisions` (others
    /// are `other`). Without it there is no tenant label: tenants are unbounded, labels
    /// must not be.
    pub fn tenant_labels<S: AsRef<str>>(mut self, tenants: impl IntoIterator<Item = S>) -> Self {
        self.tenant_labels = Some(tenants.into_iter().map(|t| t.as_ref().to_owned()).collect());
        self
    }

    /// Where the counters live (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: impl LimitStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// What to do about `resource` when the store cannot answer.
    pub fn on_store_down(mut self, resource: Resource, policy: OnStoreDown) -> Self {
        self.on_down[resource.index()] = Some(policy);
        self
    }

    /// How long a store keeps the reservation of a call that never settles (its
    /// process died mid-call) before it lapses (default 15 minutes). Settled or
    /// dropped calls give theirs back at once.
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    /// Where metrics and spans go (default: the global providers).
    pub fn telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.telemetry = Some(telemetry.clone());
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the first bad setting.
    pub fn build(self) -> Result<LimitLayer, BuildError> {
        let name = PrimitiveName::new(&self.name)?;
        let mut rules: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for (resource, cap, window) in self.rules {
            let cap = match cap {
                Ok(0) => {
                    return Err(BuildError::BadCap {
                        resource: resource.as_str(),
                        value: 0.0,
                    });
                }
                Ok(cap) => cap,
                Err(value) => {
                    return Err(BuildError::BadCap {
                        resource: resource.as_str(),
                        value,
                    });
                }
            };
            if window.is_zero() || window > MAX_WINDOW {
                return Err(BuildError::BadWindow {
                    resource: resource.as_str(),
                    value: window,
                });
            }
            if rules
                .iter()
                .any(|r| r.resource == resource && r.window == window)
            {
                return Err(BuildError::Duplicate {
                    resource: resource.as_str(),
                    window,
                });
            }
            rules.push(Rule {
                resource,
                cap,
                window,
            });
        }
        if self.concurrency == Some(0) {
            return Err(BuildError::BadCap {
                resource: "concurrency",
                value: 0.0,
            });
        }
        if rules.is_empty() && self.concurrency.is_none() {
            return Err(BuildError::NoLimit);
        }
        let has_usd = rules.iter().any(|r| r.resource == Resource::Usd);
        if has_usd && self.cost_bound.is_none() {
            return Err(BuildError::NoCostBound);
        }
        if self.hold.is_zero() || self.hold > MAX_WINDOW {
            return Err(BuildError::BadHold(self.hold));
        }
        if self.tenant_key.as_deref() == Some("") {
            return Err(BuildError::EmptyTenantKey);
        }
        let labels = match self.tenant_labels {
            None => None,
            Some(_) if self.tenant_key.is_none() => {
                return Err(BuildError::BadTenantLabels("listed without `tenant_from`"));
            }
            Some(list) if list.len() > MAX_TENANT_LABELS => {
                return Err(BuildError::BadTenantLabels("more than 64 tenants"));
            }
            Some(list) if list.iter().any(|t| t.is_empty() || t.len() > 64) => {
                return Err(BuildError::BadTenantLabels(
                    "each tenant must be 1 to 64 bytes",
                ));
            }
            Some(list) => Some(list.into_iter().collect::<BTreeSet<_>>()),
        };
        let on_down = Resource::ALL.map(|r| {
            self.on_down[r.index()].unwrap_or(match r {
                Resource::Usd => OnStoreDown::FailClosed,
                _ => OnStoreDown::FailOpen,
            })
        });
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::new()) as Arc<dyn LimitStore>);
        let metrics = LimitMetrics::new(
            &name,
            &rules,
            self.concurrency.is_some(),
            labels.as_ref(),
            &telemetry,
        );
        Ok(LimitLayer {
            shared: Arc::new(Shared::new(
                name,
                rules,
                self.concurrency,
                self.cost_bound,
                self.tenant_key,
                store,
                on_down,
                self.hold,
                metrics,
                telemetry,
            )),
        })
    }
}

/// A limit's validated settings and its [`Layer`]: per key, requests, tokens and
/// dollars per window, and calls at once. Every primitive it wraps shares its counters
/// (one budget across them), and clones share them too.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_core::{from_sync_fn, Layer, WorkflowContext};
/// use tta_limit::LimitLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limit = LimitLayer::builder()
///     .name("per_tenant")
///     .tenant_from("tenant")
///     .requests_per(1, Duration::from_secs(60))
///     .build()?;
/// let echo = limit.layer(from_sync_fn(|q: String, _| Ok(q)));
/// let acme = WorkflowContext::builder().metadata("tenant", "acme").build()?;
/// assert_eq!(echo.execute("hi".into(), &acme).await?, "hi");
/// let refused = echo.execute("again".into(), &acme).await.unwrap_err();
/// assert!(refused.is_limited());
/// assert!(refused.retry_after().is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LimitLayer {
    pub(crate) shared: Arc<Shared>,
}

impl LimitLayer {
    /// Starts configuring a limit.
    ///
    /// # Examples
    ///
    /// See [`LimitLayer`].
    pub fn builder() -> LimitBuilder {
        LimitBuilder::new()
    }
}

impl<P> Layer<P> for LimitLayer {
    type Primitive = LimitPrimitive<P>;

    fn layer(&self, inner: P) -> LimitPrimitive<P> {
        LimitPrimitive {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}
