use tta_core::{Error, InvalidName};
use tta_router::{BuildError, Price, RouterPrimitive};

use crate::{Completion, Provider, ok_after, pipeline, router};

#[test]
fn invalid_routers_are_typed_build_errors() {
    let (_tt, t) = pipeline();
    let p = |name: &'static str| Provider::new(name, ok_after(0));
    assert_eq!(
        RouterPrimitive::<String, Completion>::builder()
            .build()
            .unwrap_err(),
        BuildError::NoRoutes
    );
    assert_eq!(
        router(&t)
            .route(p("a").route())
            .route(p("a").route())
            .build()
            .unwrap_err(),
        BuildError::DuplicateRoute("a".into())
    );
    assert!(matches!(
        router(&t)
            .route(tta_router::Route::new("bad name", p("x").primitive()))
            .build()
            .unwrap_err(),
        BuildError::RouteName {
            reason: InvalidName::Char { ch: ' ', .. },
            ..
        }
    ));
    assert!(matches!(
        router(&t)
            .name("")
            .route(p("a").route())
            .build()
            .unwrap_err(),
        BuildError::Name(_)
    ));
    assert_eq!(
        router(&t)
            .route(p("a").route().fallback_to(["nope"]))
            .build()
            .unwrap_err(),
        BuildError::UnknownFallback {
            route: "a".into(),
            unknown: "nope".into()
        }
    );
    let cycle = router(&t)
        .route(p("a").route().fallback_to(["b"]))
        .route(p("b").route().fallback_to(["c"]))
        .route(p("c").route().fallback_to(["a"]))
        .build()
        .unwrap_err();
    assert_eq!(
        cycle,
        BuildError::FallbackCycle {
            cycle: vec!["a".into(), "b".into(), "c".into(), "a".into()]
        }
    );
    assert_eq!(cycle.to_string(), "fallback cycle: a -> b -> c -> a");
    assert!(matches!(
        router(&t)
            .route(p("a").route().fallback_to(["a"]))
            .build()
            .unwrap_err(),
        BuildError::FallbackCycle { .. }
    ));
    for bad in [
        Price::per_call(-0.01),
        Price::per_1k_tokens(f64::NAN, 0.0),
        Price::per_1k_tokens(0.0, f64::INFINITY),
    ] {
        assert!(matches!(
            router(&t)
                .route(p("a").route().price(bad))
                .build()
                .unwrap_err(),
            BuildError::Price { .. }
        ));
    }
    for weight in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            router(&t)
                .route(p("a").route().weight(weight))
                .build()
                .unwrap_err(),
            BuildError::Weight { .. }
        ));
    }
    let settings = [
        router(&t).route(p("a").route()).max_attempts(0),
        router(&t).route(p("a").route()).failure_threshold(0),
        router(&t)
            .route(p("a").route())
            .cooldown(std::time::Duration::ZERO),
        router(&t)
            .route(p("a").route())
            .attempt_timeout(std::time::Duration::ZERO),
        router(&t)
            .route(p("a").route())
            .idle_timeout(std::time::Duration::ZERO),
    ];
    for builder in settings {
        assert!(matches!(
            builder.build().unwrap_err(),
            BuildError::Setting(_)
        ));
    }
    let err: Error = BuildError::NoRoutes.into();
    assert!(err.is_invalid_config());
    let ok = router(&t).route(p("a").route()).build().unwrap();
    assert!(format!("{ok:?}").contains("RouterPrimitive"));
    assert!(format!("{:?}", router(&t).route(p("z").route())).contains("RouterBuilder"));
}
