//! Budgets and rate limits per tenant over HTTP, and two replicas sharing a real
//! `redis-server` that enforce one limit.

use serde_json::{Value, json};
use std::time::Duration;
use tta_tests::llm_server::{LlmServer, Reply};
use tta_tests::redis::{DAY, MINUTE, RedisServer, clear_of_window_edge};

use crate::{ACME_KEY, Running, TIGHT_KEY, body, completion, config_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_rate_limit_answers_429_with_retry_after_and_spares_other_tenants() {
    let server = LlmServer::start().await;
    server.serve(Reply::json(completion("hi")));
    let gw = Running::start(&config_for(
        &[server.base_url()],
        "",
        "requests_per_minute = 2",
    ))
    .await;
    for _ in 0..2 {
        assert_eq!(
            gw.post(Some(TIGHT_KEY), body(json!({}))).await.status(),
            200
        );
    }
    let refused = gw.post(Some(TIGHT_KEY), body(json!({}))).await;
    assert_eq!(refused.status(), 429);
    let after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after), "{after}");
    let e: Value = refused.json().await.unwrap();
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    // Another tenant is not limited.
    for _ in 0..5 {
        assert_eq!(gw.post(Some(ACME_KEY), body(json!({}))).await.status(), 200);
    }
    assert_eq!(server.requests().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_answers_insufficient_quota_and_never_overshoots() {
    let server = LlmServer::start().await;
    server.serve(Reply::json(completion("hi")));
    // Each call reserves at most 5 + 16 tokens' worth... the bound is $0.000037 a call
    // at these prices; $0.0001 a day allows two.
    let gw = Running::start(&config_for(
        &[server.base_url()],
        "",
        "usd_per_day = 0.0001",
    ))
    .await;
    let mut ok = 0;
    loop {
        let r = gw.post(Some(TIGHT_KEY), body(json!({}))).await;
        if r.status() == 200 {
            ok += 1;
            assert!(ok < 100, "the budget never bound");
            continue;
        }
        assert_eq!(r.status(), 429);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "insufficient_quota");
        break;
    }
    // 5 prompt + 2 completion tokens at $0.001 / $0.002 per 1k: $0.000009 a call.
    let spent = ok as f64 * 0.000_009;
    assert!(spent <= 0.0001, "{ok} calls spent {spent}");
    assert!(ok >= 2, "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_redis_enforce_one_limit() {
    let redis = RedisServer::start();
    let server = LlmServer::start().await;
    server.serve(Reply::json(completion("hi")));
    let extra = format!("[redis]\nurl = \"{}\"\n", redis.url());
    let toml = config_for(&[server.base_url()], &extra, "requests_per_minute = 3");
    let (a, b) = (Running::start(&toml).await, Running::start(&toml).await);
    // Redis's minutes are the clock's: all six requests in one.
    clear_of_window_edge(MINUTE, Duration::from_secs(10)).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let gw = if i % 2 == 0 { &a } else { &b };
        statuses.push(
            gw.post(Some(TIGHT_KEY), body(json!({})))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_two_replicas_fails_no_call_overspends_nothing_and_recovers()
 {
    use std::time::Instant;
    // The budget's day is Redis's clock's: the whole test in one.
    clear_of_window_edge(DAY, Duration::from_secs(120)).await;
    let mut redis = RedisServer::start_persistent();
    let server = LlmServer::start().await;
    server.serve(Reply::json(completion("hi")));
    let extra = format!("[redis]\nurl = \"{}\"\n", redis.url());
    // `tight` may spend $0.0002 a day: at most 22 calls at $0.000009 (5 + 2 tokens).
    let toml = config_for(&[server.base_url()], &extra, "usd_per_day = 0.0002")
        .replace("store = \"off\"", "store = \"redis\"");
    let replicas = [Running::start(&toml).await, Running::start(&toml).await];
    let http = crate::http();
    let post = |i: usize, key: &str, body: String| {
        http.post(replicas[i % 2].url("/v1/chat/completions"))
            .bearer_auth(key)
            .body(body)
            .send()
    };
    let cached = body(json!({}));
    let mut spends = 0;
    let mut spend = || {
        spends += 1;
        body(json!({"messages": [{"role": "user", "content": format!("spend {spends}")}]}))
    };
    let mut budgeted = 0;

    // Up: the answer one replica cached is a hit on the other.
    assert_eq!(
        post(0, ACME_KEY, cached.clone()).await.unwrap().status(),
        200
    );
    let calls = server.requests().len();
    assert_eq!(
        post(1, ACME_KEY, cached.clone()).await.unwrap().status(),
        200
    );
    assert_eq!(server.requests().len(), calls, "a hit across replicas");
    for i in 0..6 {
        assert_eq!(post(i, TIGHT_KEY, spend()).await.unwrap().status(), 200);
        budgeted += 1;
    }

    // Down: every call of a tenant without a budget is answered (the cache bypassed);
    // the budget fails closed, with 503 and Retry-After, never with a spent budget's 429.
    redis.kill();
    let mut down = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let r = post(i, ACME_KEY, cached.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "a call failed because Redis is down");
        r.bytes().await.unwrap();
        let r = post(i, TIGHT_KEY, spend()).await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "budget_unavailable");
        down.push(started.elapsed());
    }

    // Restarted, its data kept in the append-only file: each replica finds the cached
    // answer and the budget again by itself.
    redis.restart();
    let restarted = Instant::now();
    let mut recovered = Vec::new();
    for i in 0..2 {
        loop {
            assert!(
                restarted.elapsed() < Duration::from_secs(60),
                "no recovery in 60 s"
            );
            let before = server.requests().len();
            assert_eq!(
                post(i, ACME_KEY, cached.clone()).await.unwrap().status(),
                200
            );
            let hit = server.requests().len() == before;
            let r = post(i, TIGHT_KEY, spend()).await.unwrap();
            if r.status() == 200 {
                budgeted += 1;
            } else {
                assert_eq!(r.status(), 503);
            }
            if hit && r.status() == 200 {
                recovered.push(restarted.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The budget binds as it would have without the outage: never overspent.
    loop {
        let r = post(budgeted, TIGHT_KEY, spend()).await.unwrap();
        if r.status() == 200 {
            budgeted += 1;
            assert!(budgeted <= 22, "the budget was overspent: {budgeted} calls");
            continue;
        }
        assert_eq!(r.status(), 429);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "insufficient_quota");
        break;
    }
    assert!(budgeted > 8, "the budget refused early: {budgeted} calls");
    down.sort();
    println!(
        "Redis down: a call and a refused call, p50 {:?}, max {:?}; each replica recovered after {recovered:?}; {budgeted} budgeted calls of at most 22",
        down[down.len() / 2],
        down[down.len() - 1],
    );
}
