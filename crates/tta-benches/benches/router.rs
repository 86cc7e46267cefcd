//! `router/decide/<strategy>`: ordering 10 routes for one request, for each strategy.
//! `router/call` and `router/direct`: a routed call over two `from_fn` routes against a
//! call of the first route itself, no telemetry installed (the router's own cost is
//! their difference).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tta_observability_integration::router::{Price, Route, RouterPrimitive, Strategy};
use tta_observability_integration::{Error, WorkflowContext, WorkflowPrimitive, from_fn};

fn decide(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let strategies = [
        ("ordered", Strategy::Ordered),
        ("cheapest", Strategy::Cheapest),
        ("lowest_latency", Strategy::LowestLatency),
        ("weighted", Strategy::Weighted),
        (
            "cheapest_within_latency",
            Strategy::CheapestWithinLatency(Duration::from_millis(500)),
        ),
        (
            "custom",
            Strategy::custom(|stats| {
                let mut order: Vec<usize> = stats.iter().map(|s| s.index).collect();
                order.reverse();
                order
            }),
        ),
    ];
    let mut group = c.benchmark_group("router/decide");
    for (name, strategy) in strategies {
        let mut builder = RouterPrimitive::builder().strategy(strategy).seed(7);
        for i in 0..10u32 {
            let echo = from_fn(move |x: u64, _| async move { Ok::<_, Error>(x + u64::from(i)) });
            builder = builder.route(
                Route::new(&format!("route{i}"), echo)
                    .price(Price::per_1k_tokens(0.001 * f64::from(i + 1), 0.002))
                    .weight(f64::from(i + 1)),
            );
        }
        let router = builder.build().expect("a router");
        // Warm the latency averages so every strategy has statistics to use.
        let cx = WorkflowContext::new();
        for _ in 0..50 {
            rt.block_on(router.execute(1, &cx))
                .expect("a route answers");
        }
        let cx = WorkflowContext::new().with_timeout(Duration::from_secs(60));
        group.bench_function(name, |b| {
            b.iter(|| black_box(router.plan(black_box(&1), black_box(&cx))).len())
        });
    }
    group.finish();
}

fn call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (router, direct) = tta_benches::two_routes();
    let cx = WorkflowContext::new();
    let mut group = c.benchmark_group("router");
    group.bench_function("direct", |b| {
        b.to_async(&rt).iter(|| direct.execute(black_box(7), &cx))
    });
    group.bench_function("call", |b| {
        b.to_async(&rt).iter(|| router.execute(black_box(7), &cx))
    });
    group.finish();
}

criterion_group!(benches, decide, call);
criterion_main!(benches);
