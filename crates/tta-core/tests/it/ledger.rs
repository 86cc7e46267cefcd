use std::sync::Arc;

use tta_core::{AttemptKind, CostEntry, CostLedger, TokenUsage, Usd, WorkflowContext};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_totals_are_exact_under_concurrency() {
    let cx = WorkflowContext::new();
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            let cx = cx.clone();
            tokio::spawn(async move {
                for i in 0..1_000u64 {
                    let usage = TokenUsage::new(t + 1, i % 7);
                    // Dollar amounts with no exact binary representation.
                    let spent = Usd::from_dollars(0.000_013 * (t + 1) as f64).unwrap();
                    cx.ledger()
                        .record(CostEntry::spent(AttemptKind::RouteCall, "r", usage, spent));
                    if i % 10 == 0 {
                        cx.ledger()
                            .record(CostEntry::saved("c", usage, Usd::from_picos(3)));
                    }
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let totals = cx.ledger().totals();
    let expected_spent: u64 = (0..64u64)
        .map(|t| {
            Usd::from_dollars(0.000_013 * (t + 1) as f64)
                .unwrap()
                .picos()
                * 1_000
        })
        .sum();
    let expected_input: u64 = (1..=64u64).map(|t| t * 1_000).sum();
    let expected_output: u64 = 64 * (0..1_000u64).map(|i| i % 7).sum::<u64>();
    assert_eq!(totals.entries, 64 * 1_000 + 64 * 100);
    assert_eq!(totals.spent.picos(), expected_spent);
    assert_eq!(
        totals.usage,
        TokenUsage::new(expected_input, expected_output)
    );
    assert_eq!(totals.saved, Usd::from_picos(3 * 64 * 100));
    // The kept list is bounded; the rest is only counted.
    assert_eq!(cx.ledger().entries().len(), CostLedger::DEFAULT_CAPACITY);
    assert_eq!(
        cx.ledger().overflowed(),
        totals.entries - CostLedger::DEFAULT_CAPACITY as u64
    );
}

#[test]
fn kept_entries_sum_to_the_totals_while_under_capacity() {
    let ledger = Arc::new(CostLedger::with_capacity(100));
    for i in 0..100u64 {
        ledger.record(CostEntry::spent(
            if i % 2 == 0 {
                AttemptKind::RouteCall
            } else {
                AttemptKind::Fallback
            },
            "a",
            TokenUsage::new(i, 1),
            Usd::from_picos(i * 11),
        ));
    }
    let entries = ledger.entries();
    let sum: u64 = entries.iter().map(|e| e.spent.picos()).sum();
    assert_eq!(Usd::from_picos(sum), ledger.totals().spent);
    assert_eq!(ledger.overflowed(), 0);
    assert_eq!(entries[1].kind, AttemptKind::Fallback);
}

#[test]
fn usd_arithmetic_is_exact_and_rejects_bad_amounts() {
    let per_1k_in = Usd::from_dollars(0.0025).unwrap();
    let per_1k_out = Usd::from_dollars(0.01).unwrap();
    let cost = per_1k_in.per_units(1_234, 1_000) + per_1k_out.per_units(567, 1_000);
    // 1234 * 0.0025 / 1000 + 567 * 0.01 / 1000 = 0.003085 + 0.00567
    assert_eq!(cost, Usd::from_dollars(0.008_755).unwrap());
    assert_eq!(cost.to_string(), "$0.008755");
    for bad in [-0.01, f64::NAN, f64::INFINITY, 1e12] {
        assert!(Usd::from_dollars(bad).is_none(), "{bad}");
    }
    assert_eq!(
        Usd::from_picos(u64::MAX) + Usd::from_picos(1),
        Usd::from_picos(u64::MAX)
    );
    assert_eq!(
        Usd::from_picos(u64::MAX).per_units(10, 1),
        Usd::from_picos(u64::MAX)
    );
}
