//! `cargo xtask bench`: runs the criterion benches and prints each ratio against its
//! target (not part of `ci`: timings are not gates on a shared machine).

use xshell::{Shell, cmd};

/// The median estimate, in nanoseconds, of a criterion benchmark id.
fn median_ns(sh: &Shell, id: &str) -> Option<f64> {
    let text = sh
        .read_file(format!("target/criterion/{id}/new/estimates.json"))
        .ok()?;
    let median = &text[text.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    value.split([',', '}']).next()?.trim().parse().ok()
}

pub(crate) fn run(sh: &Shell, flags: &[String]) -> anyhow::Result<()> {
    if flags.iter().any(|f| f == "--table") {
        table(sh);
        return Ok(());
    }
    crate::tools::ensure_system_programs(sh)?;
    // The Redis group may not run (no redis-server): its table row must then say so, not
    // show an earlier run's estimates.
    sh.remove_path("target/criterion/redis")?;
    sh.remove_path("target/criterion/limit/allow_redis")?;
    cmd!(
        sh,
        "cargo bench --locked -p tta-benches --benches -- --warm-up-time 2 --measurement-time 5"
    )
    .run()?;
    cmd!(
        sh,
        "cargo run --release --locked -p tta-benches --bin store_rss"
    )
    .run()?;
    table(sh);
    Ok(())
}

/// Prints each `floor/*` part with how many times a hit pays it, and returns their sum
/// (NaN when one did not run).
fn priced(parts: &[(&str, f64, Option<f64>)]) -> f64 {
    let mut sum = 0.0;
    for &(part, times, ns) in parts {
        match ns {
            Some(ns) => {
                sum += ns * times;
                println!("| floor/{part} | {ns:.1} ns (x{times}) | report | |");
            }
            None => sum = f64::NAN,
        }
    }
    sum
}

/// The table of each ratio against its target, from criterion's last estimates.
pub(crate) fn table(sh: &Shell) {
    let m = |id: &str| median_ns(sh, id);
    println!("\n| measure | value | target | verdict |\n|---|---|---|---|");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if let (Some(bare), Some(inst)) = (m("overhead/bare_call"), m("overhead/instrumented_call")) {
        let over = inst - bare;
        println!(
            "| instrumented_call - bare_call | {over:.1} ns | <= 100 ns | {} |",
            verdict(over <= 100.0)
        );
    }
    if let (Some(stack), Some(tower)) =
        (m("overhead/stack_memory_hit"), m("overhead/tower_moka_hit"))
    {
        let ratio = stack / tower;
        println!(
            "| stack_memory_hit / tower_moka_hit | {ratio:.2}x ({stack:.0} ns / {tower:.0} ns) | <= 1.5x | {} |",
            verdict(ratio <= 1.5)
        );
    }
    if let (Some(stack), Some(peer)) = (
        m("overhead/stack_memory_hit"),
        m("overhead/tower_moka_otel_hit"),
    ) {
        let ratio = stack / peer;
        println!(
            "| stack_memory_hit / tower_moka_otel_hit | {ratio:.2}x ({stack:.0} ns / {peer:.0} ns) | <= 1.0x | {} |",
            verdict(ratio <= 1.0)
        );
    }
    if let (Some(call), Some(direct)) = (m("router/call"), m("router/direct")) {
        let own = call - direct;
        println!(
            "| router/call - router/direct (the router's own cost, 2 routes, no telemetry) | {own:.0} ns ({call:.0} ns - {direct:.0} ns) | <= 300 ns | {} |",
            verdict(own <= 300.0)
        );
    }
    match (m("redis/cache_hit"), m("redis/raw_fred_get")) {
        (Some(hit), Some(raw)) => {
            let ratio = hit / raw;
            println!(
                "| redis/cache_hit / redis/raw_fred_get | {ratio:.2}x ({:.1} us / {:.1} us) | <= 1.10x | {} |",
                hit / 1e3,
                raw / 1e3,
                verdict(ratio <= 1.10)
            );
        }
        _ => println!("| redis group | did not run | | |"),
    }
    // What one telemetered hit cannot avoid, priced part by part (see
    // docs/performance.md): 4 clock reads (start and end of the timeout and of the cache;
    // the entry's TTL is checked against the cache's start; a memory store is not timed),
    // 2 histogram records
    // (`tta.primitive.duration` of each), 5 counter adds (gauges not counted), one key
    // and one read of the store's table (quick_cache; `floor/moka_get` is printed beside
    // it, the peer's cache).
    let records = [
        ("clock_read", 4.0, m("floor/clock_read")),
        ("histogram_record", 2.0, m("floor/histogram_record")),
        ("counter_add", 5.0, m("floor/counter_add")),
        ("cache_key", 1.0, m("floor/cache_key")),
        ("quick_cache_get", 1.0, m("floor/quick_cache_get")),
    ];
    if let Some(ns) = m("floor/moka_get") {
        println!("| floor/moka_get (the peer's cache, not in the floor) | {ns:.1} ns | report | |");
    }
    let floor = priced(&records);
    let tower = m("overhead/tower_moka_hit");
    if let Some(tower) = tower {
        println!(
            "| floor of a telemetered hit / tower_moka_hit | {:.2}x ({floor:.0} ns / {tower:.0} ns) | report | |",
            floor / tower
        );
    }
    // What the cache's execution runs besides its records (a budget unit and a
    // cancellation check, both required: see docs/performance.md; the timeout around it
    // runs neither on a hit), and what a hit does with its entry (a ledger entry of its
    // savings, the decode). `floor/budget_unit` is measured in criterion's async loop,
    // whose own cost is `overhead/bare_call`.
    let budget = m("floor/budget_unit")
        .zip(m("overhead/bare_call"))
        .map(|(unit, bare)| unit - bare);
    let machinery = [
        ("cancel_check", 1.0, m("floor/cancel_check")),
        ("budget_unit - bare_call", 1.0, budget),
        ("ledger_record", 1.0, m("floor/ledger_record")),
        ("entry_decode", 1.0, m("floor/entry_decode")),
    ];
    let whole = floor + priced(&machinery);
    if let Some(tower) = tower {
        println!(
            "| floor of a hit with its machinery / tower_moka_hit | {:.2}x ({whole:.0} ns / {tower:.0} ns) | report | |",
            whole / tower
        );
    }
    // The same parts run one after another, as a hit runs them: more than their sum (a
    // clock read waits for what came before it; a histogram's bucket search for the
    // clock read it files).
    if let (Some(sequence), Some(tower)) = (m("floor/hit_sequence"), tower) {
        println!(
            "| floor/hit_sequence / tower_moka_hit (a hit's parts in the order it runs them) | {:.2}x ({sequence:.0} ns / {tower:.0} ns) | report | |",
            sequence / tower
        );
    }
    // `instrumented_call - bare_call`: 2 clock reads, 1 histogram record, 1 counter add,
    // 1 cancellation check and 1 budget unit.
    let one = [
        m("floor/clock_read").map(|ns| 2.0 * ns),
        m("floor/histogram_record"),
        m("floor/counter_add"),
        m("floor/cancel_check"),
        budget,
    ];
    if let Some(sum) = one.into_iter().sum::<Option<f64>>() {
        println!(
            "| floor of instrumented_call - bare_call (2 clock reads, a histogram record, a counter add, a cancellation check, a budget unit) | {sum:.0} ns | report | |"
        );
    }
    // With the context a `from_fn` closure is handed, in the order a call runs them.
    if let (Some(sequence), Some(bare)) =
        (m("floor/instrumented_sequence"), m("overhead/bare_call"))
    {
        println!(
            "| floor/instrumented_sequence - bare_call (those parts and the closure's context, in the order a call runs them) | {:.1} ns | report | |",
            sequence - bare
        );
    }
    // `stream/*` measure 256 chunks each.
    if let (Some(stack), Some(bare)) = (m("stream/stack_miss"), m("stream/bare_iter")) {
        let added = (stack - bare) / 256.0;
        println!(
            "| stream/stack_miss - stream/bare_iter, per chunk | {added:.0} ns | <= 1000 ns | {} |",
            verdict(added <= 1000.0)
        );
    }
    match (m("stream_first_chunk/hit"), m("overhead/stack_memory_hit")) {
        (Some(hit), Some(call)) => println!(
            "| stream_first_chunk/hit / stack_memory_hit (a stream hit's first chunk against a call hit) | {:.2}x ({:.2} us / {:.2} us) | <= 2x | {} |",
            hit / call,
            hit / 1e3,
            call / 1e3,
            verdict(hit / call <= 2.0)
        ),
        (Some(hit), None) => println!(
            "| stream_first_chunk/hit | {:.1} us | report | |",
            hit / 1e3
        ),
        _ => {}
    }
    if let (Some(tta), Some(tokio)) = (m("timeout/tta"), m("timeout/tokio")) {
        println!(
            "| timeout/tta vs timeout/tokio | {tta:.0} ns vs {tokio:.0} ns ({:.1}x) | report | |",
            tta / tokio
        );
    }
    let ratio = |id: &str, base: &str| Some((m(id)?, m(base)?));
    if let Some((tta, raw)) = ratio("llm/openai_complete", "llm/reqwest_raw") {
        println!(
            "| llm/openai_complete / llm/reqwest_raw | {:.3}x ({:.1} us / {:.1} us) | <= 1.05x | {} |",
            tta / raw,
            tta / 1e3,
            raw / 1e3,
            verdict(tta / raw <= 1.05)
        );
    }
    for (id, base) in [
        ("llm/async_openai_complete", "llm/reqwest_raw"),
        ("llm/openai_stream", "llm/reqwest_raw_stream"),
        ("llm/async_openai_stream", "llm/reqwest_raw_stream"),
        ("llm/openai_ttft", "llm/reqwest_raw_ttft"),
        ("llm/async_openai_ttft", "llm/reqwest_raw_ttft"),
    ] {
        if let Some((peer, raw)) = ratio(id, base) {
            println!(
                "| {id} / {base} | {:.3}x ({:.1} us / {:.1} us) | report | |",
                peer / raw,
                peer / 1e3,
                raw / 1e3
            );
        }
    }
    if let Some((limit, bare)) = ratio("limit/allow_memory", "limit/bare_call") {
        println!(
            "| limit/allow_memory - limit/bare_call (reserve + settle) | {:.0} ns | report | |",
            limit - bare
        );
    }
    match ratio("limit/allow_redis", "limit/raw_fred_get") {
        Some((limit, get)) => println!(
            "| limit/allow_redis / limit/raw_fred_get (two script runs vs one GET) | {:.2}x ({:.1} us / {:.1} us) | report | |",
            limit / get,
            limit / 1e3,
            get / 1e3
        ),
        None => println!("| limit/allow_redis | did not run | | |"),
    }
    for strategy in [
        "ordered",
        "cheapest",
        "lowest_latency",
        "weighted",
        "cheapest_within_latency",
        "custom",
    ] {
        if let Some(ns) = m(&format!("router_decide/{strategy}")) {
            println!("| router/decide/{strategy} (10 routes) | {ns:.0} ns | report | |");
        }
    }
}
