use std::time::Duration;

use tta_core::{Error, InvalidName, from_fn};
use tta_timeout::{BuildError, MAX_DURATION, TimeoutPrimitive};

fn inner() -> impl tta_core::WorkflowPrimitive<(), Output = ()> {
    from_fn(|(), _| async { Ok::<_, Error>(()) })
}

#[test]
fn every_bad_setting_is_a_typed_build_error() {
    let b = || TimeoutPrimitive::builder(inner());
    assert_eq!(b().build().unwrap_err(), BuildError::MissingTimeout);
    assert_eq!(
        b().timeout(Duration::ZERO).build().unwrap_err(),
        BuildError::Zero { setting: "timeout" }
    );
    assert_eq!(
        b().timeout_secs(0.0).build().unwrap_err(),
        BuildError::Zero { setting: "timeout" }
    );
    assert!(matches!(
        b().timeout_secs(-1.0).build().unwrap_err(),
        BuildError::NotFinite { setting: "timeout", value } if value == -1.0
    ));
    assert!(matches!(
        b().timeout_secs(f64::NAN).build().unwrap_err(),
        BuildError::NotFinite {
            setting: "timeout",
            ..
        }
    ));
    assert!(matches!(
        b().timeout(Duration::from_secs(1))
            .grace_secs(f64::INFINITY)
            .build()
            .unwrap_err(),
        BuildError::NotFinite {
            setting: "grace",
            ..
        }
    ));
    assert!(matches!(
        b().timeout(Duration::from_secs(1))
            .grace_secs(-0.5)
            .build()
            .unwrap_err(),
        BuildError::NotFinite {
            setting: "grace",
            ..
        }
    ));
    assert_eq!(
        b().timeout(MAX_DURATION + Duration::from_secs(1))
            .build()
            .unwrap_err(),
        BuildError::TooLong {
            setting: "timeout",
            value: MAX_DURATION + Duration::from_secs(1),
            max: MAX_DURATION
        }
    );
    assert!(matches!(
        b().timeout(Duration::from_secs(1))
            .grace(MAX_DURATION * 2)
            .build()
            .unwrap_err(),
        BuildError::TooLong {
            setting: "grace",
            ..
        }
    ));
    assert!(matches!(
        b().timeout_secs(1e300).build().unwrap_err(),
        BuildError::TooLong {
            setting: "timeout",
            ..
        }
    ));
    assert_eq!(
        b().timeout(Duration::from_secs(1))
            .name("bad name")
            .build()
            .unwrap_err(),
        BuildError::Name(InvalidName::Char { ch: ' ', index: 3 })
    );
    // Converts into the workflow error type as an invalid configuration.
    let err: Error = b().build().unwrap_err().into();
    assert!(err.is_invalid_config());
    assert!(err.downcast_ref::<BuildError>().is_some());
}

#[test]
fn valid_settings_build_and_are_readable() {
    let p = TimeoutPrimitive::builder(inner())
        .timeout_secs(1.5)
        .grace_secs(0.25)
        .name("ok")
        .build()
        .unwrap();
    assert_eq!(p.timeout(), Duration::from_millis(1_500));
    assert_eq!(p.grace(), Duration::from_millis(250));
    assert!(format!("{p:?}").contains("\"ok\""));
    assert!(
        TimeoutPrimitive::builder(inner())
            .timeout(MAX_DURATION)
            .grace(MAX_DURATION)
            .build()
            .is_ok()
    );
}
