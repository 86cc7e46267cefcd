use std::error::Error as _;
use std::fmt;

use tta_core::{AttemptError, BoxError, Error, ErrorKind, InvalidName, PrimitiveName, TokenUsage};

#[derive(Debug, PartialEq)]
struct RateLimited {
    retry_after_s: u32,
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited, retry after {}s", self.retry_after_s)
    }
}

impl std::error::Error for RateLimited {}

#[derive(Debug)]
struct Wrapper(RateLimited);

impl fmt::Display for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("call failed")
    }
}

impl std::error::Error for Wrapper {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn each_kind_has_its_predicate_and_label() {
    let cases = [
        (Error::timeout("t", "late"), ErrorKind::Timeout, "timeout"),
        (Error::cancelled(), ErrorKind::Cancelled, "cancelled"),
        (Error::no_route("cooling"), ErrorKind::NoRoute, "no_route"),
        (
            Error::all_routes_failed(vec![]),
            ErrorKind::AllRoutesFailed,
            "all_routes_failed",
        ),
        (
            Error::backend(std::fmt::Error),
            ErrorKind::Backend,
            "backend",
        ),
        (
            Error::invalid_config(std::fmt::Error),
            ErrorKind::InvalidConfig,
            "invalid_config",
        ),
        (Error::msg("x"), ErrorKind::Inner, "inner"),
    ];
    for (err, kind, label) in cases {
        assert_eq!(err.kind(), kind);
        assert_eq!(err.kind().as_str(), label);
        let preds = [
            err.is_timeout(),
            err.is_cancelled(),
            err.is_no_route(),
            err.is_all_routes_failed(),
            err.is_backend(),
            err.is_invalid_config(),
            err.is_inner(),
        ];
        assert_eq!(preds.iter().filter(|p| **p).count(), 1, "{kind:?}");
    }
}

#[test]
fn user_errors_keep_their_type_through_the_source_chain() {
    let err = Error::inner(Wrapper(RateLimited { retry_after_s: 30 }));
    assert_eq!(
        err.downcast_ref::<RateLimited>(),
        Some(&RateLimited { retry_after_s: 30 })
    );
    assert!(err.downcast_ref::<Wrapper>().is_some());
    let source = err.source().unwrap();
    assert_eq!(source.to_string(), "call failed");
    assert_eq!(
        source.source().unwrap().to_string(),
        "rate limited, retry after 30s"
    );
    // Clones share the same source.
    assert!(err.clone().downcast_ref::<RateLimited>().is_some());
}

#[test]
fn boxed_tta_errors_are_not_nested() {
    let original = Error::timeout("llm", "slow").with_billed_usage(TokenUsage::new(10, 0));
    let boxed: BoxError = Box::new(original);
    let back = Error::from_boxed(boxed);
    assert!(back.is_timeout());
    assert_eq!(back.primitive(), Some("llm"));
    assert_eq!(back.billed_usage(), Some(TokenUsage::new(10, 0)));
    let wrapped_twice = Error::inner(Error::cancelled());
    assert!(wrapped_twice.is_cancelled());
}

#[test]
fn all_routes_failed_keeps_every_attempt_in_order() {
    let err = Error::all_routes_failed(vec![
        AttemptError::new("primary", Error::msg("503")),
        AttemptError::new("secondary", Error::timeout("secondary", "slow")),
    ]);
    let routes: Vec<_> = err.attempts().iter().map(|a| a.route()).collect();
    assert_eq!(routes, ["primary", "secondary"]);
    assert!(err.attempts()[1].error().is_timeout());
    assert_eq!(
        err.to_string(),
        "all_routes_failed: all 2 attempted routes failed; primary (other): 503; secondary (unavailable): slow"
    );
}

#[test]
fn names_are_validated() {
    assert!(PrimitiveName::new("router.v2_primary-1").is_ok());
    assert_eq!(PrimitiveName::new(""), Err(InvalidName::Empty));
    assert_eq!(
        PrimitiveName::new("café"),
        Err(InvalidName::Char { ch: 'é', index: 3 })
    );
    assert!(matches!(
        PrimitiveName::new("a{b=\"c\"}"),
        Err(InvalidName::Char { ch: '{', .. })
    ));
    assert_eq!(
        PrimitiveName::new(&"n".repeat(65)),
        Err(InvalidName::TooLong { len: 65, max: 64 })
    );
    assert!(PrimitiveName::new(&"n".repeat(64)).is_ok());
    let err = tta_core::FnPrimitive::builder(|(): (), _| async { Ok::<(), Error>(()) })
        .name("new\nline")
        .build()
        .unwrap_err();
    assert_eq!(err, InvalidName::Char { ch: '\n', index: 3 });
}

#[test]
fn classes_are_set_by_users_and_by_http_status() {
    use std::time::Duration;
    use tta_core::{ErrorClass, Label};

    let limited = Error::msg("slow down").with_class(ErrorClass::RateLimited {
        retry_after: Some(Duration::from_secs(7)),
    });
    assert_eq!(
        limited.class(),
        ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
    // A later hint is the class's hint too: one place holds it.
    let later = limited.with_retry_after(Duration::from_secs(9));
    assert_eq!(
        later.class(),
        ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(9))
        }
    );
    for (status, class) in [
        (429, "rate_limited"),
        (500, "unavailable"),
        (503, "unavailable"),
        (408, "unavailable"),
        (400, "invalid_request"),
        (404, "invalid_request"),
        (422, "invalid_request"),
        (401, "auth"),
        (403, "auth"),
        (418, "other"),
    ] {
        assert_eq!(
            ErrorClass::from_http_status(status).as_str(),
            class,
            "{status}"
        );
    }
    let labels: Vec<_> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        labels,
        [
            "rate_limited",
            "unavailable",
            "invalid_request",
            "context_length",
            "content_filter",
            "auth",
            "other"
        ]
    );
    for (i, class) in ErrorClass::ALL.iter().enumerate() {
        assert_eq!(class.index(), i);
    }
    assert!(!ErrorClass::ContextLength.is_retryable() && ErrorClass::Unavailable.is_retryable());
}

#[test]
fn all_routes_failed_names_each_route_and_its_own_bounded_message() {
    use std::error::Error as _;
    use tta_core::{AttemptError, ErrorClass};

    let long = "x".repeat(5_000);
    let err = Error::all_routes_failed(vec![
        AttemptError::new(
            "openai",
            Error::msg("upstream said 503: overloaded").with_class(ErrorClass::Unavailable),
        ),
        AttemptError::new("anthropic", Error::msg(long).with_class(ErrorClass::Other)),
    ]);
    let shown = err.to_string();
    assert!(
        shown.contains("openai (unavailable): upstream said 503: overloaded"),
        "{shown}"
    );
    assert!(shown.contains("anthropic (other): xxx"), "{shown}");
    assert!(shown.len() < 1_000, "bounded: {} bytes", shown.len());
    assert!(shown.contains("..."), "a cut message says so");
    let source = err
        .source()
        .expect("the last attempt's error is the source");
    assert!(source.to_string().starts_with("inner: xxx"));
}
