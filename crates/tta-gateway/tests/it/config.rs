//! Configuration errors name where they are; the example config is valid; the binary's
//! `--check-config` prints them.

use tta_gateway::Config;

fn errors(toml: &str) -> Vec<String> {
    Config::parse(toml)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_error_has_its_toml_location() {
    let base = crate::config_for(&["http://127.0.0.1:1/v1".to_owned()], "", "");
    let typo = base.replace(
        "routes = [{ provider = \"p0\", model = \"m\" }]",
        "routes = [{ provider = \"p0\", model = \"m\" }, { provider = \"opneai\", model = \"m\" }, { provider = \"p0\", model = \"x\" }]",
    );
    let found = errors(&typo);
    assert!(
        found.contains(&"models.chat.routes[1]: unknown provider \"opneai\"".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(&"models.chat.routes[2]: provider \"p0\" has no model \"x\"".to_owned()),
        "{found:?}"
    );

    let bad = base
        .replace("kind = \"openai\"", "kind = \"openia\"")
        .replace("input_per_1k = 0.001", "input_per_1k = -1.0")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"nowhere\"");
    let found = errors(&bad);
    for expected in [
        "listen: not an address",
        "providers.p0.kind: unknown kind \"openia\"",
        "providers.p0.models.m.input_per_1k: must be a finite, non-negative price",
    ] {
        assert!(
            found.iter().any(|e| e.starts_with(expected)),
            "{expected} not in {found:?}"
        );
    }
    // A key with a bad digest, or for a tenant that does not exist.
    let keys = base
        .replacen(&tta_gateway::key_digest(crate::ACME_KEY), "abc", 1)
        .replace("tenant = \"tight\"", "tenant = \"nobody\"");
    let found = errors(&keys);
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("keys[0].sha256: not 64 hex digits")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e == "keys[1].tenant: unknown tenant \"nobody\""),
        "{found:?}"
    );
    // Unknown keys and wrong types are parse errors with a line.
    let found = errors(&format!("{base}\nlisten_port = 3\n"));
    assert!(found[0].starts_with("line "), "{found:?}");
    assert!(found[0].contains("unknown field"), "{found:?}");
    let found = errors(&base.replace("max_body_bytes = 65536", "max_body_bytes = \"big\""));
    assert!(found[0].starts_with("line 3:"), "{found:?}");
}

#[test]
fn the_example_config_is_valid_and_its_key_is_the_one_in_its_header() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = Config::parse(&text).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("# example key: "))
        .expect("a `# example key:` line");
    assert_eq!(config.keys[0].sha256, tta_gateway::key_digest(key.trim()));
    assert!(!text.contains(&format!("sha256 = \"{}\"", key.trim())));
}

#[test]
fn check_config_prints_each_error_and_fails() {
    let dir = std::env::temp_dir().join(format!("tta-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    let base = crate::config_for(&["http://127.0.0.1:1/v1".to_owned()], "", "");
    std::fs::write(
        &bad,
        base.replace("provider = \"p0\"", "provider = \"opneai\""),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tta-gateway"))
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("models.chat.routes[0]: unknown provider \"opneai\""),
        "{stderr}"
    );
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.example.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tta-gateway"))
        .args(["--check-config", good])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_setting_out_of_range_is_reported_at_its_path() {
    let bad = r#"
listen = "127.0.0.1:8080"
metrics_listen = "x"
max_body_bytes = 0
max_header_bytes = 100
max_concurrency = 0
body_timeout_ms = 0
[providers."bad name"]
kind = "openai"
base_url = "ftp://x"
[providers."bad name".models]
[providers.ok]
kind = "anthropic"
base_url = "http://x"
[providers.ok.models.m]
per_call = inf
context_window = 0
[models.a]
strategy = "random"
routes = []
attempt_timeout_ms = 0
failure_threshold = 0
cooldown_ms = 0
[models.b]
routes = [{ provider = "ok", model = "m", weight = -1.0 }, { provider = "ok", model = "m" }]
[cache]
store = "redis"
ttl_s = 0
[timeouts]
first_chunk_ms = 0
idle_ms = 0
total_ms = 0
[tenants."no good"]
usd_per_day = -1.0
requests_per_minute = 0
tokens_per_minute = 0
concurrency = 0
[telemetry]
tenant_labels = ["ghost"]
"#;
    let found = errors(bad);
    for expected in [
        "metrics_listen: not an address",
        "max_body_bytes: must be above zero",
        "max_header_bytes: must be at least 8192",
        "max_concurrency: must be above zero",
        "body_timeout_ms: must be above zero",
        "providers.bad name.base_url: not an http(s) URL",
        "providers.bad name.models: no model is configured",
        "providers.bad name: a provider's name",
        "providers.ok.models.m.per_call: must be a finite, non-negative price",
        "providers.ok.models.m.context_window: must be above zero",
        "models.a.strategy: unknown strategy \"random\"",
        "models.a.routes: no route",
        "models.a.attempt_timeout_ms: must be above zero",
        "models.a.failure_threshold: must be above zero",
        "models.a.cooldown_ms: must be above zero and at most 600000 (10 minutes)",
        "models.b.routes[0].weight: must be finite and non-negative",
        "models.b.routes[1]: the same route twice",
        "cache.store: redis needs a [redis] url",
        "cache.ttl_s: must be above zero",
        "timeouts.first_chunk_ms: must be above zero",
        "timeouts.idle_ms: must be above zero",
        "timeouts.total_ms: must be above zero",
        "keys: no API key",
        "tenants.no good: a tenant's name",
        "tenants.no good.usd_per_day: must be a positive number of dollars",
        "tenants.no good.requests_per_minute: must be above zero",
        "tenants.no good.tokens_per_minute: must be above zero",
        "tenants.no good.concurrency: must be above zero",
        "telemetry.tenant_labels[0]: unknown tenant \"ghost\"",
    ] {
        assert!(
            found.iter().any(|e| e.starts_with(expected)),
            "{expected} not in {found:#?}"
        );
    }
    let empty =
        errors("listen = \"127.0.0.1:1\"\n[providers]\n[models]\n[cache]\nstore = \"tape\"\n");
    for expected in [
        "providers: no provider",
        "models: no model is exposed",
        "cache.store: unknown store \"tape\"",
    ] {
        assert!(
            empty.iter().any(|e| e.starts_with(expected)),
            "{expected} not in {empty:#?}"
        );
    }
    // All of them at once, one per line, as --check-config prints them.
    let text = tta_gateway::Config::parse(bad).unwrap_err().to_string();
    assert_eq!(text.lines().count(), found.len());
}

#[test]
fn a_store_down_policy_is_fail_open_or_fail_closed() {
    let ok = crate::config_for(
        &["http://127.0.0.1:1/v1".to_owned()],
        "",
        "usd_per_day = 1.0\nbudget_on_store_down = \"fail_open\"\nrates_on_store_down = \"fail_closed\"",
    );
    assert!(Config::parse(&ok).is_ok());
    let bad = ok.replace("\"fail_open\"", "\"maybe\"");
    let found = errors(&bad).join("\n");
    assert!(
        found.contains("line ") && found.contains("unknown variant `maybe`"),
        "{found}"
    );
}
