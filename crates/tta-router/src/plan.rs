//! Planning one request: the routes' statistics, the strategy's order (or the
//! input-aware route function's), and each attempt's share of the deadline.

use std::sync::PoisonError;
use std::time::Duration;

use opentelemetry::KeyValue;
use smallvec::SmallVec;
use tokio::time::Instant;
use tta_core::{TokenUsage, Usd, WorkflowContext};

use crate::health::HealthSnapshot;
use crate::{Core, RouteStats, UnknownRoute, semconv};

/// Token usage assumed for expected costs before any call reported its usage.
const DEFAULT_USAGE: (f64, f64) = (1_000.0, 1_000.0);
/// How much the newest call weighs in the average usage.
const USAGE_ALPHA: f64 = 0.1;

/// How many routes a plan holds inline: planning a router of at most this many
/// routes allocates nothing.
const INLINE_ROUTES: usize = 4;

/// One entry per route, inline up to [`INLINE_ROUTES`].
pub(crate) type PerRoute<T> = SmallVec<[T; INLINE_ROUTES]>;

/// The routes of one request, in the order to try them, with what each looked like.
pub(crate) struct Plan {
    pub(crate) order: PerRoute<usize>,
    pub(crate) health: PerRoute<HealthSnapshot>,
    /// Routes whose breaker would let a call through now.
    pub(crate) admissible: usize,
    /// When the health was read: the first admission's instant too.
    pub(crate) at: Instant,
}

impl<I, O> Core<I, O> {
    /// Every route's statistics and health as of `now`, read once per route.
    pub(crate) fn snapshot_at(&self, now: Instant) -> (Vec<RouteStats>, PerRoute<HealthSnapshot>) {
        let usage = self.expected_usage();
        let health = self.health_at(now);
        let stats = self
            .routes
            .iter()
            .zip(&health)
            .enumerate()
            .map(|(index, (route, h))| RouteStats {
                index,
                name: route.name.to_arc(),
                latency: h.latency,
                observations: h.observations,
                consecutive_failures: h.breaker.consecutive_failures,
                cooling: h.breaker.state != tta_core::BreakerState::Closed,
                state: h.breaker.state,
                weight: route.weight,
                expected_cost: route.price.cost(Some(usage)),
                context_window: route.context_window,
            })
            .collect();
        (stats, health)
    }

    /// Every route's health as of `now`, read once per route.
    fn health_at(&self, now: Instant) -> PerRoute<HealthSnapshot> {
        self.routes
            .iter()
            .map(|r| r.health.snapshot_at(now))
            .collect()
    }

    /// The order for a request: the route function's when it has one and names only
    /// known routes, else the strategy's. Cooling routes stay in the order (the request
    /// loop skips them, and panic mode needs them).
    /// Only the routes `serves` accepts are planned (a stream needs routes that stream).
    /// The health is read as of `at`, an instant the caller read just before.
    pub(crate) fn plan_for(
        &self,
        at: Instant,
        input: &I,
        cx: &WorkflowContext,
        serves: impl Fn(usize) -> bool,
    ) -> Plan {
        if self.route_fn.is_none() && matches!(self.strategy, crate::Strategy::Ordered) {
            // The declared order needs no statistics: only the routes' health, read in
            // the same pass that lists the routes (pushes: no iterator adapters to
            // collect through).
            let mut order = PerRoute::new();
            let mut health = PerRoute::new();
            let mut admissible = 0;
            for (i, route) in self.routes.iter().enumerate() {
                let h = route.health.snapshot_at(at);
                if serves(i) {
                    order.push(i);
                    admissible += usize::from(h.breaker.admits);
                }
                health.push(h);
            }
            return Plan {
                order,
                health,
                admissible,
                at,
            };
        }
        let (stats, health) = self.snapshot_at(at);
        let chosen = self.route_fn.as_ref().and_then(|route_fn| {
            match self.resolve(route_fn, input, cx, &stats) {
                Ok(order) => Some(order),
                Err(unknown) => {
                    self.route_fn_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(span) = cx.primitive_span() {
                        span.add_event(
                            semconv::EVENT_UNKNOWN_ROUTE,
                            vec![KeyValue::new("exception.message", unknown.to_string())],
                        );
                    }
                    None
                }
            }
        });
        let mut order = PerRoute::from_vec(
            chosen.unwrap_or_else(|| self.strategy.rank(&stats, cx.remaining(), &self.rng)),
        );
        order.retain(|&mut i| serves(i));
        let admissible = order.iter().filter(|&&i| health[i].breaker.admits).count();
        Plan {
            order,
            health,
            admissible,
            at,
        }
    }

    fn resolve(
        &self,
        route_fn: &crate::RouteFn<I>,
        input: &I,
        cx: &WorkflowContext,
        stats: &[RouteStats],
    ) -> Result<Vec<usize>, UnknownRoute> {
        let mut order = Vec::with_capacity(self.routes.len());
        let mut unknown = None;
        route_fn(input, cx, stats, &mut |name: &str| match self
            .routes
            .iter()
            .position(|r| r.name.as_str() == name)
        {
            Some(i) if !order.contains(&i) => order.push(i),
            Some(_) => {}
            None => {
                unknown.get_or_insert_with(|| UnknownRoute {
                    name: name.chars().take(64).collect(),
                });
            }
        });
        match unknown {
            Some(unknown) => Err(unknown),
            None => Ok(order),
        }
    }

    /// The deadline of an attempt on a route, when it needs its own: the attempt
    /// timeout, and (without one) the caller's remaining time minus a reserve for the
    /// next candidate, so a hung route leaves time for a fallback.
    /// A route whose own latency average does not fit in what the reserve leaves gets
    /// the whole remaining time instead: it is the strategy's better bet, and cutting it
    /// short would waste both.
    pub(crate) fn attempt_deadline(
        &self,
        now: Instant,
        remaining: Option<Duration>,
        own: &HealthSnapshot,
        next: Option<&HealthSnapshot>,
    ) -> Option<Instant> {
        if let Some(limit) = self.attempt_timeout {
            return now.checked_add(limit);
        }
        let (remaining, next) = (remaining?, next?);
        let reserve = next.latency.unwrap_or(self.min_budget).max(self.min_budget);
        let share = remaining.checked_sub(reserve).filter(|s| !s.is_zero())?;
        if own.latency.is_some_and(|own| share < own) {
            return None;
        }
        now.checked_add(share)
    }

    pub(crate) fn expected_usage(&self) -> TokenUsage {
        let (input, output) = self
            .usage_average
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or(DEFAULT_USAGE);
        TokenUsage::new(input.round() as u64, output.round() as u64)
    }

    pub(crate) fn observe_usage(&self, usage: TokenUsage) {
        let mut avg = self
            .usage_average
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (i, o) = (usage.input as f64, usage.output as f64);
        *avg = Some(match *avg {
            Some((ai, ao)) => (ai + USAGE_ALPHA * (i - ai), ao + USAGE_ALPHA * (o - ao)),
            None => (i, o),
        });
    }

    /// What the savings baseline would charge for `usage`: the configured route, else
    /// the most expensive route for it.
    pub(crate) fn baseline(&self, usage: Option<TokenUsage>) -> Usd {
        match self.baseline {
            Some(i) => self.routes[i].price.cost(usage),
            None => self
                .routes
                .iter()
                .map(|r| r.price.cost(usage))
                .max()
                .unwrap_or(Usd::ZERO),
        }
    }
}
