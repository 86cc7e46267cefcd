//! How a router orders its routes for one request.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use tta_core::Usd;

/// A route as a strategy sees it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RouteStats {
    /// Its position in the router (declaration order).
    pub index: usize,
    /// Its name.
    pub name: Arc<str>,
    /// The moving average of its observed latency (`None` before its first call).
    pub latency: Option<Duration>,
    /// Calls observed.
    pub observations: u64,
    /// Failures since its last success.
    pub consecutive_failures: u32,
    /// Whether it is cooling down (it is skipped unless it is probed).
    pub cooling: bool,
    /// Its breaker's state.
    pub state: tta_core::BreakerState,
    /// Its declared context window, in tokens.
    pub context_window: Option<u64>,
    /// Its weight.
    pub weight: f64,
    /// What a typical call would cost on it (the router's average usage times its price).
    pub expected_cost: Usd,
}

/// A user ranking: route indices, best first. Unknown and repeated indices are ignored;
/// routes left out are not tried.
pub type RankFn = Arc<dyn Fn(&[RouteStats]) -> Vec<usize> + Send + Sync>;

/// How routes are ordered for a request. The router tries them in that order (with
/// declared fallbacks first after a failure), skipping cooling routes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_router::Strategy;
///
/// assert_eq!(Strategy::Cheapest.as_str(), "cheapest");
/// assert_eq!(Strategy::CheapestWithinLatency(Duration::from_secs(2)).as_str(), "cheapest_within_latency");
/// let by_name = Strategy::custom(|stats| {
///     let mut order: Vec<_> = stats.iter().map(|s| s.index).collect();
///     order.sort_by_key(|&i| stats[i].name.clone());
///     order
/// });
/// assert_eq!(by_name.as_str(), "custom");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum Strategy {
    /// Declaration order.
    Ordered,
    /// Lowest expected cost first; ties in declaration order.
    Cheapest,
    /// Lowest latency (moving average) first; routes with fewer than
    /// [`Strategy::COLD_OBSERVATIONS`] observations are explored first, the least
    /// observed first.
    LowestLatency,
    /// Random, proportional to the routes' weights, from the router's seeded generator.
    Weighted,
    /// The cheapest route whose average latency fits within the target **and** the
    /// request's remaining deadline (routes with no observations count as fitting);
    /// then the others, fastest first.
    CheapestWithinLatency(Duration),
    /// A user function ranking the routes from their statistics.
    Custom(RankFn),
}

impl Strategy {
    /// Observations under which [`Strategy::LowestLatency`] still explores a route.
    pub const COLD_OBSERVATIONS: u64 = 3;

    /// A [`Strategy::Custom`] from a closure.
    ///
    /// # Examples
    ///
    /// See [`Strategy`].
    pub fn custom(f: impl Fn(&[RouteStats]) -> Vec<usize> + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }

    /// A stable name for span attributes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_router::Strategy::Ordered.as_str(), "ordered");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::Ordered => "ordered",
            Strategy::Cheapest => "cheapest",
            Strategy::LowestLatency => "lowest_latency",
            Strategy::Weighted => "weighted",
            Strategy::CheapestWithinLatency(_) => "cheapest_within_latency",
            Strategy::Custom(_) => "custom",
        }
    }

    /// Orders `stats` for one request. `remaining` is the request's remaining deadline.
    pub(crate) fn rank(
        &self,
        stats: &[RouteStats],
        remaining: Option<Duration>,
        rng: &Mutex<StdRng>,
    ) -> Vec<usize> {
        let mut order: Vec<usize> = (0..stats.len()).collect();
        match self {
            Strategy::Ordered => {}
            Strategy::Cheapest => order.sort_by_key(|&i| stats[i].expected_cost),
            // Cold routes first, least observed first (exploration); then the fastest.
            Strategy::LowestLatency => order.sort_by_key(|&i| {
                let s = &stats[i];
                if s.observations < Self::COLD_OBSERVATIONS {
                    (false, s.observations, std::time::Duration::ZERO)
                } else {
                    (true, 0, s.latency.unwrap_or_default())
                }
            }),
            Strategy::Weighted => {
                let mut rng = rng.lock().unwrap_or_else(PoisonError::into_inner);
                let mut pool: Vec<usize> = order;
                order = Vec::with_capacity(pool.len());
                while !pool.is_empty() {
                    let total: f64 = pool.iter().map(|&i| stats[i].weight).sum();
                    let mut pick = rng.random::<f64>() * total;
                    let mut chosen = pool.len() - 1;
                    for (slot, &i) in pool.iter().enumerate() {
                        if pick < stats[i].weight {
                            chosen = slot;
                            break;
                        }
                        pick -= stats[i].weight;
                    }
                    order.push(pool.remove(chosen));
                }
            }
            Strategy::CheapestWithinLatency(target) => {
                let limit = remaining.map_or(*target, |r| r.min(*target));
                let fits = |s: &RouteStats| s.latency.is_none_or(|l| l <= limit);
                order.sort_by(|&a, &b| {
                    let (sa, sb) = (&stats[a], &stats[b]);
                    match (fits(sa), fits(sb)) {
                        (true, true) => sa.expected_cost.cmp(&sb.expected_cost),
                        (true, false) => std::cmp::Ordering::Less,
                        (false, true) => std::cmp::Ordering::Greater,
                        (false, false) => sa.latency.cmp(&sb.latency),
                    }
                });
            }
            Strategy::Custom(rank) => {
                let mut seen = vec![false; stats.len()];
                order = rank(stats)
                    .into_iter()
                    .filter(|&i| i < stats.len() && !std::mem::replace(&mut seen[i], true))
                    .collect();
            }
        }
        order
    }
}

impl fmt::Debug for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::CheapestWithinLatency(target) => {
                write!(f, "CheapestWithinLatency({target:?})")
            }
            other => f.write_str(other.as_str()),
        }
    }
}
