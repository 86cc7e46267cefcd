//! Property runs that double as time-boxed fuzzing.
//!
//! [`check`] runs a property over `cases` generated inputs, as `proptest!` does, so the
//! property runs in every `cargo test`. With `TTA_FUZZ_SECONDS` set (as `cargo xtask
//! fuzz` sets it), it keeps generating fresh inputs in rounds until that many seconds
//! have passed, then prints how many it tried. A failing input is shrunk and named in
//! the panic.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseResult, TestError, TestRunner};

/// The variable that turns a property run into a time-boxed fuzz run: a number of
/// seconds.
pub const SECONDS_VAR: &str = "TTA_FUZZ_SECONDS";

/// How many inputs one fuzz round tries before it looks at the clock.
const ROUND: u32 = 2_000;

/// Runs `property` over inputs of `strategy`: `cases` of them, or under
/// [`SECONDS_VAR`] as many as fit in its seconds. Panics with the shrunk input when the
/// property fails or panics.
pub fn check<S>(name: &str, cases: u32, strategy: S, property: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let seconds = std::env::var(SECONDS_VAR)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let config = |cases| Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let Some(seconds) = seconds else {
        report(
            name,
            TestRunner::new(config(cases)).run(&strategy, &property),
        );
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tried: u64 = 0;
    while Instant::now() < deadline {
        report(
            name,
            TestRunner::new(config(ROUND)).run(&strategy, &property),
        );
        tried += u64::from(ROUND);
    }
    println!("fuzz {name}: {tried} inputs in {seconds} s, no failure");
}

fn report<T: Debug>(name: &str, result: Result<(), TestError<T>>) {
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, input)) => {
            panic!("{name}: {reason}\nthe smallest failing input: {input:#?}")
        }
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
}
