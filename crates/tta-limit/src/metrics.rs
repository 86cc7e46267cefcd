//! The limit's own metrics, created once at build time, every series from zero.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::KeyValue;
use tta_core::bound::BoundCounter;
use tta_core::{PrimitiveName, Telemetry};

use crate::builder::Rule;
use crate::{Resource, semconv};

tta_core::label_enum! {
    /// What a limit decided about one resource of one call: the `result` label.
    pub enum Verdict {
        /// Reserved (or, for concurrency, a slot taken).
        Allowed => "allowed",
        /// Refused with kind `limited`.
        Refused => "refused",
        /// The store could not answer; let through by policy, nothing reserved.
        FailedOpen => "failed_open",
        /// The store could not answer; refused by policy.
        FailedClosed => "failed_closed",
    }
}

tta_core::label_enum! {
    /// The store operation that failed: the `op` label of `tta.limit.store.errors`.
    pub(crate) enum StoreOp {
        Reserve => "reserve",
        Settle => "settle",
    }
}

/// What a limit has decided since it was built ([`LimitPrimitive::stats`](crate::LimitPrimitive::stats)).
/// Counts are of calls, not of resources: a call refused on one resource is one refusal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitStats {
    /// Calls let through with their reservation made.
    pub allowed: u64,
    /// Calls refused with kind `limited` by a limit.
    pub refused: u64,
    /// Calls let through because the store could not answer.
    pub failed_open: u64,
    /// Calls refused because the store could not answer.
    pub failed_closed: u64,
    /// Settlements that left a window above its cap: a call without a declared
    /// maximum that used more than was left, or a call that used more than it declared.
    pub overshoots: u64,
    /// Reservations not yet settled (calls and streams in flight).
    pub holding: u64,
}

#[derive(Debug)]
pub(crate) struct LimitMetrics {
    /// Indexed by `(resource * Verdict::COUNT + verdict) * tenants + tenant`.
    decisions: Vec<Option<BoundCounter<u64>>>,
    /// The tenant labels, sorted, when configured (then `other` is one index more).
    tenants: Option<Vec<String>>,
    /// Tenant indices per (resource, verdict): the labels and `other`, or just one.
    slots: usize,
    overshoots: [BoundCounter<u64>; Resource::COUNT],
    store_errors: [BoundCounter<u64>; StoreOp::COUNT],
    /// Per verdict, then overshoots, then holding.
    counts: [AtomicU64; Verdict::COUNT + 2],
}

const OVERSHOOTS: usize = Verdict::COUNT;
const HOLDING: usize = Verdict::COUNT + 1;

impl LimitMetrics {
    pub(crate) fn new(
        name: &PrimitiveName,
        rules: &[Rule],
        concurrency: bool,
        tenant_labels: Option<&BTreeSet<String>>,
        telemetry: &Telemetry,
    ) -> Self {
        let meter = telemetry.meter();
        let limit = || KeyValue::new(semconv::LABEL_LIMIT, name.to_arc());
        let decisions_counter = meter
            .u64_counter(semconv::DECISIONS)
            .with_description(
                "Limit decisions per call and resource (allowed, refused, failed_open, failed_closed).",
            )
            .build();
        let tenants: Option<Vec<String>> = tenant_labels.map(|t| t.iter().cloned().collect());
        let slots = tenants.as_ref().map_or(1, |t| t.len() + 1);
        let used = |r: Resource| {
            (r == Resource::Concurrency && concurrency) || rules.iter().any(|x| x.resource == r)
        };
        let mut decisions = Vec::with_capacity(Resource::COUNT * Verdict::COUNT * slots);
        for resource in Resource::ALL {
            for verdict in Verdict::ALL {
                for slot in 0..slots {
                    decisions.push(used(resource).then(|| {
                        let mut labels = vec![
                            limit(),
                            KeyValue::new(semconv::LABEL_RESOURCE, resource.as_str()),
                            KeyValue::new(semconv::LABEL_RESULT, verdict.as_str()),
                        ];
                        if let Some(tenants) = &tenants {
                            let tenant = tenants.get(slot).map_or("other", String::as_str);
                            labels.push(KeyValue::new(semconv::LABEL_TENANT, tenant.to_owned()));
                        }
                        let counter = BoundCounter::new(&decisions_counter, &labels);
                        counter.add(0);
                        counter
                    }));
                }
            }
        }
        let overshoots_counter = meter
            .u64_counter(semconv::OVERSHOOTS)
            .with_description(
                "Settlements that left a limit's window above its cap (a call without a declared maximum, or one that used more than it declared).",
            )
            .build();
        let overshoots = Resource::ALL.map(|r| {
            let c = BoundCounter::new(
                &overshoots_counter,
                &[limit(), KeyValue::new(semconv::LABEL_RESOURCE, r.as_str())],
            );
            if used(r) && r != Resource::Concurrency {
                c.add(0);
            }
            c
        });
        let errors_counter = meter
            .u64_counter(semconv::STORE_ERRORS)
            .with_description("Limit store operations that failed, by operation.")
            .build();
        let store_errors = StoreOp::ALL.map(|op| {
            let c = BoundCounter::new(
                &errors_counter,
                &[limit(), KeyValue::new(semconv::LABEL_OP, op.as_str())],
            );
            c.add(0);
            c
        });
        Self {
            decisions,
            tenants,
            slots,
            overshoots,
            store_errors,
            counts: Default::default(),
        }
    }

    fn slot(&self, tenant: &str) -> usize {
        self.tenants.as_ref().map_or(0, |tenants| {
            tenants
                .binary_search_by(|t| t.as_str().cmp(tenant))
                .unwrap_or(tenants.len())
        })
    }

    /// Records `verdict` for `resource`.
    pub(crate) fn decision(&self, resource: Resource, verdict: Verdict, tenant: &str) {
        let i =
            (resource.index() * Verdict::COUNT + verdict.index()) * self.slots + self.slot(tenant);
        if let Some(Some(counter)) = self.decisions.get(i) {
            counter.add(1);
        }
    }

    /// Counts one call's verdict in the stats.
    pub(crate) fn call(&self, verdict: Verdict) {
        self.counts[verdict.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn overshoot(&self, resource: Resource) {
        self.overshoots[resource.index()].add(1);
        self.counts[OVERSHOOTS].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn store_error(&self, op: StoreOp) {
        self.store_errors[op.index()].add(1);
    }

    pub(crate) fn hold(&self) {
        self.counts[HOLDING].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn release(&self) {
        self.counts[HOLDING].fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> LimitStats {
        let count = |i: usize| self.counts[i].load(Ordering::Relaxed);
        LimitStats {
            allowed: count(Verdict::Allowed.index()),
            refused: count(Verdict::Refused.index()),
            failed_open: count(Verdict::FailedOpen.index()),
            failed_closed: count(Verdict::FailedClosed.index()),
            overshoots: count(OVERSHOOTS),
            holding: count(HOLDING),
        }
    }
}
