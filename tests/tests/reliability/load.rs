//! A load run of the demo's stack on a real Redis: every request ends in a success or a
//! typed error, and the counters agree with the summary. (`cargo xtask soak` runs the
//! large version: 200,000 requests at concurrency 1,024.)

use tta_demo::{DemoConfig, Progress};
use tta_observability_integration::apm::{self, ApmConfig};
use tta_tests::redis::RedisServer;
use tta_tests::telemetry::sample_sum;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_requests_on_redis_are_all_accounted_for() {
    let redis = RedisServer::start();
    let guard = apm::init(
        ApmConfig::builder("load")
            .metrics_addr("127.0.0.1:0")
            .build()
            .unwrap(),
    )
    .unwrap();
    let config = DemoConfig {
        requests: 20_000,
        concurrency: 256,
        latency_scale: 0.0,
        redis: Some(redis.url()),
        ..DemoConfig::default()
    };
    let summary = tta_demo::run(&config, &Progress::default()).await.unwrap();
    assert_eq!(
        summary.succeeded + summary.failed,
        20_000,
        "no request lost"
    );
    assert_eq!(summary.cache_store, "redis");
    let addr = guard.status().metrics_addr().unwrap();
    let scrape = tokio::task::spawn_blocking(move || tta_tests::http::get(addr, "/metrics"))
        .await
        .unwrap()
        .unwrap()
        .body;
    let executions = |outcome| {
        sample_sum(
            &scrape,
            "tta_primitive_executions_total",
            &[("primitive", "request_timeout"), ("outcome", outcome)],
        )
    };
    assert_eq!(executions("ok"), summary.succeeded as f64);
    assert_eq!(
        executions("error") + executions("timeout") + executions("cancelled"),
        summary.failed as f64
    );
    assert_eq!(
        sample_sum(&scrape, "tta_cache_hits_total", &[("cache", "answers")]),
        summary.cache_hits as f64
    );
    assert_eq!(
        sample_sum(&scrape, "tta_cache_misses_total", &[("cache", "answers")])
            + summary.cache_hits as f64,
        20_000.0
    );
    let routed: u64 = summary.route_share.iter().map(|(_, n)| n).sum();
    assert_eq!(
        routed + summary.cache_hits,
        summary.succeeded,
        "every success came from the cache or a route"
    );
    let spent = sample_sum(&scrape, "tta_router_cost_usd_total", &[("router", "llm")]);
    assert!(
        (spent - summary.cost_usd).abs() < 1e-9 * summary.cost_usd.max(1.0),
        "{spent} vs {}",
        summary.cost_usd
    );
    guard.shutdown().await.unwrap();
}
