//! Redis as users outgrow one node: two gateway processes sharing a TLS server
//! (`rediss://`, a CA made by the test, trusted through `SSL_CERT_FILE`) or a
//! three-master cluster (`redis-cluster://`). On each: a cached answer is a hit in the
//! other process, identical requests in both processes make one provider call, the
//! budget's script and the rate limits hold across both; on the cluster, a master
//! killed mid-run fails over to its replica and every call is still answered.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tta_tests::llm_server::{LlmServer, Reply};
use tta_tests::redis::{DAY, MINUTE, RedisCluster, RedisServer, clear_of_window_edge};

use crate::{ACME_KEY, Process, TIGHT_KEY, body, completion, config_for, ms};

/// A key of tenant `rated`: 4 requests a minute.
const RATED_KEY: &str = "sk-test-rated";

/// `tight` may spend $0.0002 a day: at most 22 calls at $0.000009 (5 + 2 tokens).
const MOST_BUDGETED: usize = 22;

/// Two gateways on `url`, over `provider` (each call 200 ms), with `env`.
fn two_gateways(url: &str, provider: &LlmServer, env: &[(&str, String)]) -> [Process; 2] {
    // A cluster's masters have a replica each: each reservation waits for it.
    let wait = if url.starts_with("redis-cluster") {
        1
    } else {
        0
    };
    let toml = config_for(
        &[provider.base_url()],
        &format!("[redis]\nurl = \"{url}\"\nwait_for_replicas = {wait}\n"),
        "usd_per_day = 0.0002",
    )
    .replace("store = \"off\"", "store = \"redis\"")
    .replace("attempt_timeout_ms = 300", "attempt_timeout_ms = 5000")
        + &format!(
            "\n[[keys]]\nsha256 = \"{}\"\ntenant = \"rated\"\n\n[tenants.rated]\nrequests_per_minute = 4\n",
            tta_gateway::key_digest(RATED_KEY)
        );
    [
        Process::start("shared-a", &toml, env),
        Process::start("shared-b", &toml, env),
    ]
}

struct Client {
    http: reqwest::Client,
    urls: [String; 2],
    spends: usize,
}

impl Client {
    fn new(gateways: &[Process; 2]) -> Self {
        Self {
            http: crate::http(),
            urls: [
                gateways[0].url("/v1/chat/completions"),
                gateways[1].url("/v1/chat/completions"),
            ],
            spends: 0,
        }
    }

    async fn post(&self, to: usize, key: &str, body: String) -> (u16, Value) {
        let r = self
            .http
            .post(&self.urls[to % 2])
            .bearer_auth(key)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// A call of `tight` that misses the cache (a new prompt each time).
    async fn spend(&mut self, to: usize) -> (u16, Value) {
        self.spends += 1;
        let prompt = format!("spend {}", self.spends);
        self.post(
            to,
            TIGHT_KEY,
            body(json!({"messages": [{"role": "user", "content": prompt}]})),
        )
        .await
    }
}

/// The cache, its single flight, the rate limits and the budget, across both
/// processes. Returns the budgeted calls made.
async fn shared_state_holds(c: &mut Client, provider: &LlmServer) -> usize {
    // Ten identical requests at once, five in each process: one provider call.
    let same = body(json!({"messages": [{"role": "user", "content": "the same question"}]}));
    let answers =
        futures_util::future::join_all((0..10).map(|i| c.post(i, ACME_KEY, same.clone()))).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(
        provider.requests().len(),
        1,
        "single flight across two processes"
    );
    // Later, a hit in either.
    for i in 0..2 {
        assert_eq!(c.post(i, ACME_KEY, same.clone()).await.0, 200);
    }
    assert_eq!(provider.requests().len(), 1, "hits in both processes");
    // Four requests a minute, whichever process takes them, all in one minute.
    clear_of_window_edge(MINUTE, Duration::from_secs(20)).await;
    let mut rated = Vec::new();
    for i in 0..8 {
        rated.push(c.post(i, RATED_KEY, body(json!({}))).await.0);
    }
    assert_eq!(rated, [200, 200, 200, 200, 429, 429, 429, 429]);
    // Spend half the budget.
    for i in 0..10 {
        assert_eq!(c.spend(i).await.0, 200);
    }
    10
}

/// Spends the rest of the budget: it binds, never overspent. Returns the calls made.
async fn spend_the_rest(c: &mut Client, mut budgeted: usize) -> usize {
    loop {
        let (status, e) = c.spend(budgeted).await;
        if status == 200 {
            budgeted += 1;
            assert!(budgeted <= MOST_BUDGETED, "overspent: {budgeted} calls");
            continue;
        }
        assert_eq!(status, 429, "{e}");
        assert_eq!(e["error"]["code"], "insufficient_quota");
        return budgeted;
    }
}

/// A provider whose every answer takes 200 ms (long enough for single flight to matter).
async fn slow_provider() -> LlmServer {
    let provider = LlmServer::start().await;
    provider.serve(Reply::After(
        ms(200),
        Box::new(Reply::json(completion("hi"))),
    ));
    provider
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_two_processes_share_the_cache_single_flight_budget_and_rates() {
    // The budget's day is Redis's clock's: the whole test in one.
    clear_of_window_edge(DAY, Duration::from_secs(180)).await;
    let (redis, ca) = RedisServer::start_tls();
    assert!(redis.url().starts_with("rediss://"));
    let provider = slow_provider().await;
    let env = [("SSL_CERT_FILE", ca.to_string_lossy().into_owned())];
    let gateways = two_gateways(&redis.url(), &provider, &env);
    let mut c = Client::new(&gateways);
    let budgeted = shared_state_holds(&mut c, &provider).await;
    let budgeted = spend_the_rest(&mut c, budgeted).await;
    assert!(budgeted > 8, "the budget refused early: {budgeted}");
    // The entries are in the TLS server (read over its plain admin port).
    let keys = redis.command(&["DBSIZE"]).unwrap();
    assert!(keys.parse::<u64>().unwrap() > 0, "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_two_processes_share_state_and_a_killed_master_fails_over() {
    // The budget's day is Redis's clock's: the whole test in one.
    clear_of_window_edge(DAY, Duration::from_secs(180)).await;
    let mut cluster = RedisCluster::start();
    let provider = slow_provider().await;
    let gateways = two_gateways(&cluster.url(), &provider, &[]);
    let mut c = Client::new(&gateways);
    let budgeted = shared_state_holds(&mut c, &provider).await;

    // Kill the master that holds `tight`'s budget (its keys share one hash tag).
    let master = cluster.master_of("{tenant_limit:tight}");
    cluster.kill(master);
    let killed = Instant::now();
    let cached = body(json!({"messages": [{"role": "user", "content": "the same question"}]}));
    let mut budgeted = budgeted;
    let mut refused = 0;
    let recovered = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no failover within 60 s"
        );
        // Every call of a tenant without a budget is answered, the cache bypassed.
        let (status, e) = c.post(budgeted + refused, ACME_KEY, cached.clone()).await;
        assert_eq!(status, 200, "{e}");
        let (status, e) = c.spend(budgeted + refused).await;
        if status == 200 {
            budgeted += 1;
            break killed.elapsed();
        }
        // Until the replica has taken over, the budget fails closed.
        assert_eq!(status, 503, "{e}");
        assert_eq!(e["error"]["code"], "budget_unavailable");
        refused += 1;
        tokio::time::sleep(ms(50)).await;
    };
    assert_ne!(
        cluster.master_of("{tenant_limit:tight}"),
        master,
        "a replica took over"
    );
    let budgeted = spend_the_rest(&mut c, budgeted).await;
    assert!(budgeted > 8, "the budget refused early: {budgeted}");
    println!(
        "cluster failover: budget calls refused for {recovered:?} ({refused} refused), then {budgeted} budgeted calls in all (at most {MOST_BUDGETED})"
    );
}
