//! `timeout/tta` vs `timeout/tokio`: the per-call cost of the two-phase timeout over
//! `tokio::time::timeout`, both around a future that is ready at once.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tta_observability_integration::timeout::TimeoutPrimitive;
use tta_observability_integration::{Error, WorkflowContext, from_fn};

fn timeout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group("timeout");

    group.bench_function("tokio", |b| {
        b.to_async(&rt).iter(|| async {
            tokio::time::timeout(
                Duration::from_secs(1),
                std::future::ready(Ok::<_, Error>(1u64)),
            )
            .await
            .expect("ready in time")
        });
    });

    // The same ready work, as the inner primitive of a timeout with the global (no-op)
    // telemetry; the instrumented cost with a real SDK is measured in `overhead`.
    let ready = from_fn(|x: u64, _| std::future::ready(Ok::<_, Error>(x)));
    let guarded = TimeoutPrimitive::builder(ready)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("valid timeout");
    let cx = WorkflowContext::new();
    group.bench_function("tta", |b| {
        b.to_async(&rt).iter(|| guarded.execute(1, &cx));
    });
    group.finish();
}

criterion_group!(benches, timeout);
criterion_main!(benches);
