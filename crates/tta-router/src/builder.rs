//! Configuration of the router, validated once in `build`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tta_core::{Error, InvalidName, PrimitiveName, Telemetry, TokenUsage, WorkflowContext};

use crate::health::RouteHealth;
use crate::metrics::{RouteIdentity, RouterMetrics};
use crate::{
    BuiltRoute, Core, FallbackFn, Route, RouteFn, RouteStats, RouterPrimitive, Strategy, UsageFn,
};

/// Why a router could not be built.
///
/// # Examples
///
/// ```
/// use tta_router::{BuildError, RouterPrimitive};
/// let err = RouterPrimitive::<String, String>::builder().build().unwrap_err();
/// assert_eq!(err, BuildError::NoRoutes);
/// ```
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The router has no route.
    #[error("a router needs at least one route")]
    NoRoutes,
    /// The router's name is invalid.
    #[error("invalid router name: {0}")]
    Name(InvalidName),
    /// A route's name is invalid.
    #[error("invalid route name {name:?}: {reason}")]
    RouteName {
        /// The name, escaped.
        name: String,
        /// The rule of [`PrimitiveName`] it breaks.
        reason: InvalidName,
    },
    /// Two routes share a name.
    #[error("two routes are named {0:?}")]
    DuplicateRoute(String),
    /// A route declares a fallback to a route that does not exist.
    #[error("route {route:?} falls back to unknown route {unknown:?}")]
    UnknownFallback {
        /// The route's name, as given.
        route: String,
        /// The name it falls back to, which no route has.
        unknown: String,
    },
    /// The savings baseline names a route the router does not have.
    #[error("savings_baseline names unknown route {0:?}")]
    UnknownBaseline(String),
    /// Declared fallbacks form a cycle.
    #[error("fallback cycle: {}", cycle.join(" -> "))]
    FallbackCycle {
        /// The routes of the cycle, in order, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// A price is negative, NaN or infinite.
    #[error(
        "route {route:?}: {what} must be a finite, non-negative number of dollars, got {value}"
    )]
    Price {
        /// The route's name, as given.
        route: String,
        /// Which price (`input_per_1k`, `output_per_1k` or `per_call`).
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// A weight is not positive and finite.
    #[error("route {route:?}: weight must be positive and finite, got {value}")]
    Weight {
        /// The route's name, as given.
        route: String,
        /// The weight given.
        value: f64,
    },
    /// A router setting is out of range.
    #[error("invalid router setting: {0}")]
    Setting(&'static str),
}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        Error::invalid_config(e)
    }
}

/// Builds a [`RouterPrimitive`]; made by [`RouterPrimitive::builder`].
///
/// | setting | default |
/// |---|---|
/// | `strategy` | [`Strategy::Ordered`] |
/// | `route_by` | none: an input-aware order replaces the strategy's for the requests it names known routes for |
/// | `max_attempts` | the number of routes (each route is tried at most once per request) |
/// | `fallback_on` | by class: all but `invalid_request` and `content_filter` (and `cancelled`, `invalid_config` kinds) |
/// | `failure_threshold` / `cooldown` / `max_cooldown` | 3 consecutive failures / 30 s, doubling per failed probe / 10 min |
/// | `panic_mode` | on: with every route cooling, try the one that recovers first |
/// | `min_budget` | 10 ms: no attempt starts with less time left, and the reserve for a fallback when its latency is unknown |
/// | `attempt_timeout` | none: an attempt gets the remaining time minus a reserve for the next candidate |
/// | `idle_timeout` | none: a streamed attempt may wait for its next chunk as long as its caller waits |
/// | `usage` | none: calls are priced per call |
/// | `seed` | random (set it for reproducible weighted routing) |
#[must_use]
pub struct RouterBuilder<I, O> {
    name: String,
    routes: Vec<Route<I, O>>,
    strategy: Strategy,
    max_attempts: Option<usize>,
    route_fn: Option<RouteFn<I>>,
    fallback_on: Option<FallbackFn>,
    failure_threshold: u32,
    cooldown: Duration,
    max_cooldown: Duration,
    panic_mode: bool,
    min_budget: Duration,
    attempt_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    usage: Option<UsageFn<O>>,
    seed: Option<u64>,
    baseline: Option<String>,
    telemetry: Option<Telemetry>,
}

impl<I, O> std::fmt::Debug for RouterBuilder<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("name", &self.name)
            .field("routes", &self.routes)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl<I, O> Default for RouterBuilder<I, O> {
    fn default() -> Self {
        Self {
            name: "router".to_owned(),
            routes: Vec::new(),
            strategy: Strategy::Ordered,
            max_attempts: None,
            route_fn: None,
            fallback_on: None,
            failure_threshold: 3,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
            panic_mode: true,
            min_budget: Duration::from_millis(10),
            attempt_timeout: None,
            idle_timeout: None,
            usage: None,
            seed: None,
            baseline: None,
            telemetry: None,
        }
    }
}

impl<I, O> RouterBuilder<I, O> {
    /// The router's name (the `router` label).
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// Adds a route.
    pub fn route(mut self, route: Route<I, O>) -> Self {
        self.routes.push(route);
        self
    }

    /// How routes are ordered.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The most attempts per request (at least 1).
    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Orders the routes of each request from its input, its context (a tenant or tier
    /// in the metadata, say) and the routes' statistics: `f` returns route names, best
    /// first; routes it leaves out are not tried. A name that is not a route is an
    /// [`UnknownRoute`](crate::UnknownRoute) error, counted, and that request uses the
    /// strategy's order.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_sync_fn, WorkflowContext};
    /// use tta_router::{Route, RouterPrimitive};
    ///
    /// let echo = || from_sync_fn(|q: String, _| Ok(q));
    /// let router = RouterPrimitive::builder()
    ///     .route(Route::new("premium", echo()))
    ///     .route(Route::new("budget", echo()))
    ///     .route_by(|q: &String, cx: &WorkflowContext, _stats| {
    ///         if cx.metadata("tier") == Some("pro") || q.len() > 1_000 {
    ///             vec!["premium", "budget"]
    ///         } else {
    ///             vec!["budget"]
    ///         }
    ///     })
    ///     .build()?;
    /// let pro = WorkflowContext::builder().metadata("tier", "pro").build()?;
    /// assert_eq!(router.plan(&"hi".to_owned(), &pro), ["premium", "budget"]);
    /// assert_eq!(router.plan(&"hi".to_owned(), &WorkflowContext::new()), ["budget"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn route_by<F, R>(mut self, f: F) -> Self
    where
        F: Fn(&I, &WorkflowContext, &[RouteStats]) -> R + Send + Sync + 'static,
        R: IntoIterator,
        R::Item: AsRef<str>,
    {
        self.route_fn = Some(Arc::new(move |input, cx, stats, sink| {
            for name in f(input, cx, stats) {
                sink(name.as_ref());
            }
        }));
        self
    }

    /// Which errors fall back to the next route (others are returned at once), instead
    /// of the default by [`ErrorClass`](tta_core::ErrorClass). Health is still judged by
    /// class: an invalid request never counts against a route.
    pub fn fallback_on(
        mut self,
        predicate: impl Fn(&Error) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.fallback_on = Some(Arc::new(predicate));
        self
    }

    /// The longest a route cools while its probes keep failing (each failed probe
    /// doubles the cooldown), and how long an `auth` error cools it.
    pub fn max_cooldown(mut self, cooldown: Duration) -> Self {
        self.max_cooldown = cooldown;
        self
    }

    /// Whether a request with every route cooling tries the one whose cooldown ends
    /// first (on by default) or fails with `NoRoute` and the earliest retry-after.
    pub fn panic_mode(mut self, on: bool) -> Self {
        self.panic_mode = on;
        self
    }

    /// Consecutive failures that cool a route down (at least 1).
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// How long a failing route is skipped before one probe is let through.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// No attempt starts with less than this left before the context's deadline.
    pub fn min_budget(mut self, budget: Duration) -> Self {
        self.min_budget = budget;
        self
    }

    /// Bounds each attempt (besides the context's deadline); an attempt that runs out
    /// fails with kind timeout and falls back.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Bounds the wait for each next chunk of a streamed attempt: a stream that stalls
    /// longer ends with an error item of kind timeout, and counts as its route's failure
    /// (so a route that stalls opens its breaker). Set it at or below the idle limit of a
    /// timeout around the router: a caller's limit that fires first drops the body, and
    /// the route is not told.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Reads a call's token usage from its output, to price it.
    pub fn usage(
        mut self,
        extract: impl Fn(&O) -> Option<TokenUsage> + Send + Sync + 'static,
    ) -> Self {
        self.usage = Some(Arc::new(extract));
        self
    }

    /// Reads token usage through the output's [`ReportsUsage`](tta_core::ReportsUsage) impl.
    pub fn usage_reported(self) -> Self
    where
        O: tta_core::ReportsUsage,
    {
        self.usage(|o: &O| o.token_usage())
    }

    /// The route whose price the savings are counted against (`tta.router.cost.savings.usd`,
    /// [`RouterTotals::savings`](crate::RouterTotals)): what the call would have cost on it,
    /// minus what it cost. By default the most expensive route for each call's usage; name
    /// the route you would use without the router (a flat-priced route that is dear for
    /// short answers would otherwise set the baseline for them).
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_sync_fn, WorkflowContext};
    /// use tta_router::{BuildError, Price, Route, RouterPrimitive};
    /// let echo = || from_sync_fn(|x: u8, _| Ok(x));
    /// let r = RouterPrimitive::builder()
    ///     .route(Route::new("cheap", echo()).price(Price::per_call(0.001)))
    ///     .route(Route::new("usual", echo()).price(Price::per_call(0.005)))
    ///     .route(Route::new("dear", echo()).price(Price::per_call(0.02)))
    ///     .savings_baseline("usual")
    ///     .build()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// r.execute(1, &WorkflowContext::new()).await.unwrap();
    /// # });
    /// assert_eq!(r.totals().savings.dollars(), 0.004, "against the usual route, not the dearest");
    /// let unknown = RouterPrimitive::builder().route(Route::new("a", echo())).savings_baseline("b").build();
    /// assert!(matches!(unknown, Err(BuildError::UnknownBaseline(_))));
    /// # Ok::<(), BuildError>(())
    /// ```
    pub fn savings_baseline(mut self, route: &str) -> Self {
        self.baseline = Some(route.to_owned());
        self
    }

    /// Seeds the generator of [`Strategy::Weighted`], for reproducible runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Uses explicit telemetry providers instead of the global ones.
    pub fn telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.telemetry = Some(telemetry.clone());
        self
    }

    /// Validates everything and builds the router.
    ///
    /// # Errors
    ///
    /// [`BuildError`]: no route, an invalid or duplicate name, an unknown or cyclic
    /// fallback reference, a bad price or weight, or a setting out of range.
    pub fn build(self) -> Result<RouterPrimitive<I, O>, BuildError> {
        let name = PrimitiveName::new(&self.name).map_err(BuildError::Name)?;
        if self.routes.is_empty() {
            return Err(BuildError::NoRoutes);
        }
        let max_attempts = self.max_attempts.unwrap_or(self.routes.len());
        if max_attempts == 0 {
            return Err(BuildError::Setting("max_attempts must be at least 1"));
        }
        if self.failure_threshold == 0 {
            return Err(BuildError::Setting("failure_threshold must be at least 1"));
        }
        if self.cooldown.is_zero() {
            return Err(BuildError::Setting("cooldown must be greater than zero"));
        }
        if self.max_cooldown < self.cooldown {
            return Err(BuildError::Setting(
                "max_cooldown must be at least cooldown",
            ));
        }
        if self.attempt_timeout.is_some_and(|t| t.is_zero()) {
            return Err(BuildError::Setting(
                "attempt_timeout must be greater than zero",
            ));
        }
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(BuildError::Setting(
                "idle_timeout must be greater than zero",
            ));
        }
        let mut index = HashMap::new();
        let mut names = Vec::with_capacity(self.routes.len());
        for (i, route) in self.routes.iter().enumerate() {
            let name = PrimitiveName::new(&route.name).map_err(|reason| BuildError::RouteName {
                name: route.name.escape_debug().to_string(),
                reason,
            })?;
            if index.insert(route.name.clone(), i).is_some() {
                return Err(BuildError::DuplicateRoute(route.name.clone()));
            }
            names.push(name);
        }
        let mut fallbacks = Vec::with_capacity(self.routes.len());
        for route in &self.routes {
            let resolved = route
                .fallbacks
                .iter()
                .map(|f| {
                    index
                        .get(f)
                        .copied()
                        .ok_or_else(|| BuildError::UnknownFallback {
                            route: route.name.clone(),
                            unknown: f.clone(),
                        })
                })
                .collect::<Result<Vec<usize>, _>>()?;
            fallbacks.push(resolved);
        }
        if let Some(cycle) = find_cycle(&fallbacks) {
            return Err(BuildError::FallbackCycle {
                cycle: cycle
                    .into_iter()
                    .map(|i| self.routes[i].name.clone())
                    .collect(),
            });
        }
        let telemetry = self.telemetry.unwrap_or_default();
        let mut routes = Vec::with_capacity(self.routes.len());
        for ((route, fallbacks), route_name) in self.routes.into_iter().zip(fallbacks).zip(names) {
            let price = route
                .price
                .validate()
                .map_err(|(what, value)| BuildError::Price {
                    route: route.name.clone(),
                    what,
                    value,
                })?;
            if !(route.weight.is_finite() && route.weight > 0.0) {
                return Err(BuildError::Weight {
                    route: route.name.clone(),
                    value: route.weight,
                });
            }
            let provider = route.provider.unwrap_or_else(|| route.name.clone());
            let model = route.model.unwrap_or_else(|| route.name.clone());
            routes.push(BuiltRoute {
                span_name: format!("chat {model}"),
                name: route_name,
                primitive: route.primitive,
                price,
                provider,
                model,
                weight: route.weight,
                fallbacks,
                context_window: route.context_window,
                stream: route.stream,
                health: Arc::new(RouteHealth::new(
                    self.failure_threshold,
                    self.cooldown,
                    self.max_cooldown,
                )),
            });
        }
        let identities: Vec<RouteIdentity<'_>> = routes
            .iter()
            .map(|r| RouteIdentity {
                name: &r.name,
                provider: &r.provider,
                model: &r.model,
            })
            .collect();
        let baseline = match &self.baseline {
            None => None,
            Some(route) => Some(
                *index
                    .get(route)
                    .ok_or_else(|| BuildError::UnknownBaseline(route.clone()))?,
            ),
        };
        let metrics = Arc::new(RouterMetrics::new(&name, &identities, &telemetry).initialize());
        let seed = self.seed.unwrap_or_else(tta_core::random_seed);
        Ok(RouterPrimitive::from_core(Core {
            tracer: telemetry.clone(),
            inst: tta_core::Instrumentation::new("router", name, &telemetry),
            metrics,
            routes,
            strategy: self.strategy,
            route_fn: self.route_fn,
            route_fn_errors: std::sync::atomic::AtomicU64::new(0),
            max_attempts,
            fallback_on: self.fallback_on,
            auth_cooldown: self.max_cooldown,
            panic_mode: self.panic_mode,
            min_budget: self.min_budget,
            attempt_timeout: self.attempt_timeout,
            idle_timeout: self.idle_timeout,
            usage: self.usage,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            usage_average: Mutex::new(None),
            baseline,
        }))
    }
}

/// A cycle in the declared fallback graph, as route indices with the first repeated.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        node: usize,
        edges: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[node] = Mark::OnPath;
        path.push(node);
        for &next in &edges[node] {
            match marks[next] {
                Mark::OnPath => {
                    let start = path.iter().position(|&n| n == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, edges, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[node] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut path = Vec::new();
    (0..edges.len()).find_map(|n| {
        (marks[n] == Mark::New)
            .then(|| visit(n, edges, &mut marks, &mut path))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::find_cycle;

    #[test]
    fn cycles_are_found_and_dags_are_not() {
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![]]), None);
        assert_eq!(find_cycle(&[vec![1, 2], vec![2], vec![]]), None);
        assert_eq!(
            find_cycle(&[vec![1], vec![2], vec![0]]),
            Some(vec![0, 1, 2, 0])
        );
        assert_eq!(find_cycle(&[vec![], vec![1]]), Some(vec![1, 1]));
    }
}
