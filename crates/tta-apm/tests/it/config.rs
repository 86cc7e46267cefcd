use std::collections::HashMap;

use tta_apm::{ApmConfig, OtlpProtocol};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn the_environment_fills_the_config() {
    let config = ApmConfig::from_lookup(env(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.version=2.0,team=pay%20ments, region = eu",
        ),
        ("TTA_ENVIRONMENT", "production"),
        ("TTA_METRICS_ADDR", "0.0.0.0:9999"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ("OTEL_SDK_DISABLED", "false"),
    ]))
    .build()
    .unwrap();
    assert_eq!(config.service_name(), "checkout");
    assert_eq!(config.service_version(), Some("2.0"));
    assert_eq!(config.environment(), "production");
    assert_eq!(config.metrics_addr(), "0.0.0.0:9999".parse().unwrap());
    assert_eq!(config.otlp_endpoint(), Some("http://collector:4317"));
    assert_eq!(config.otlp_protocol(), OtlpProtocol::Grpc);
    assert!(!config.console_spans());
    assert!(!config.sdk_disabled());
    let dbg = format!("{config:?}");
    for part in ["pay ments", "region", "0.25"] {
        assert!(dbg.contains(part), "{part} not in {dbg}");
    }
}

#[test]
fn code_wins_over_the_environment() {
    let config = ApmConfig::from_lookup(env(&[
        ("OTEL_SERVICE_NAME", "from-env"),
        ("TTA_ENVIRONMENT", "production"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        // Invalid in the environment, but the code's value replaces it.
        ("TTA_METRICS_ADDR", "not-an-address"),
    ]))
    .service_name("from-code")
    .environment("staging")
    .otlp_protocol(OtlpProtocol::HttpProtobuf)
    .metrics_addr("127.0.0.1:0")
    .console_spans(true)
    .build()
    .unwrap();
    assert_eq!(config.service_name(), "from-code");
    assert_eq!(config.environment(), "staging");
    assert_eq!(config.otlp_protocol(), OtlpProtocol::HttpProtobuf);
    assert!(config.console_spans());
}

#[test]
fn console_spans_only_when_asked_for() {
    let on = |pairs: &[(&str, &str)]| {
        ApmConfig::from_lookup(env(pairs))
            .build()
            .unwrap()
            .console_spans()
    };
    // The default environment is `development`, but a default never floods stdout.
    assert!(!on(&[]));
    assert!(!ApmConfig::builder("s").build().unwrap().console_spans());
    assert!(on(&[("TTA_ENVIRONMENT", "development")]));
    assert!(!on(&[("TTA_ENVIRONMENT", "production")]));
    assert!(
        ApmConfig::builder("s")
            .environment("development")
            .build()
            .unwrap()
            .console_spans()
    );
    assert!(
        !ApmConfig::builder("s")
            .environment("development")
            .console_spans(false)
            .build()
            .unwrap()
            .console_spans()
    );
}

#[test]
fn otel_service_name_beats_service_name_in_resource_attributes() {
    let both = ApmConfig::from_lookup(env(&[
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=attr-name"),
        ("OTEL_SERVICE_NAME", "var-name"),
    ]))
    .build()
    .unwrap();
    assert_eq!(both.service_name(), "var-name");
    let attr_only = ApmConfig::from_lookup(env(&[(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=attr-name",
    )]))
    .build()
    .unwrap();
    assert_eq!(attr_only.service_name(), "attr-name");
    assert_eq!(
        ApmConfig::from_lookup(env(&[]))
            .build()
            .unwrap()
            .service_name(),
        "unknown_service"
    );
}

#[test]
fn bad_environment_values_name_the_variable_and_the_value() {
    for (var, value) in [
        ("TTA_METRICS_ADDR", "localhost:metrics"),
        ("TTA_METRICS_ADDR", "127.0.0.1"),
        ("OTEL_SERVICE_NAME", ""),
        ("OTEL_SERVICE_NAME", "   "),
        ("TTA_ENVIRONMENT", "prod\nuction"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ("OTEL_TRACES_SAMPLER_ARG", "-0.1"),
        ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ("OTEL_TRACES_SAMPLER_ARG", "NaN"),
        ("OTEL_SDK_DISABLED", "maybe"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team"),
        ("OTEL_RESOURCE_ATTRIBUTES", "=value"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=%zz"),
    ] {
        let err = ApmConfig::from_lookup(env(&[(var, value)]))
            .build()
            .unwrap_err();
        assert_eq!(err.variable(), var, "{var}={value:?}: {err}");
        assert!(err.to_string().contains(var), "{err}");
        assert!(!err.reason().is_empty());
    }
}

#[test]
fn bad_code_values_name_the_setting_at_build() {
    let cases = [
        (ApmConfig::builder(""), "ApmConfig::service_name"),
        (
            ApmConfig::builder("s").environment(""),
            "ApmConfig::environment",
        ),
        (
            ApmConfig::builder("s").service_version("\u{0}"),
            "ApmConfig::service_version",
        ),
        (
            ApmConfig::builder("s").metrics_addr("nope"),
            "ApmConfig::metrics_addr",
        ),
        (
            ApmConfig::builder("s").otlp_endpoint("grpc://x"),
            "ApmConfig::otlp_endpoint",
        ),
        (
            ApmConfig::builder("s").sampling_ratio(2.0),
            "ApmConfig::sampling_ratio",
        ),
        (
            ApmConfig::builder("s").sampling_ratio(f64::NAN),
            "ApmConfig::sampling_ratio",
        ),
        (
            ApmConfig::builder("s").resource_attribute("", "v"),
            "ApmConfig::resource_attribute",
        ),
    ];
    for (builder, setting) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.variable(), setting);
    }
    assert_eq!(
        ApmConfig::builder("s")
            .metrics_addr("nope")
            .build()
            .unwrap_err()
            .value(),
        "nope"
    );
}

#[test]
fn otlp_compression_is_gzip_or_none_and_the_rest_is_a_loud_error() {
    let from = |pairs: &'static [(&'static str, &'static str)]| {
        ApmConfig::from_lookup(move |k| {
            pairs
                .iter()
                .find(|(var, _)| *var == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .build()
    };
    assert_eq!(
        from(&[]).unwrap().otlp_compression(),
        tta_apm::OtlpCompression::None
    );
    assert_eq!(
        from(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP")])
            .unwrap()
            .otlp_compression(),
        tta_apm::OtlpCompression::Gzip
    );
    assert_eq!(
        from(&[
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip")
        ])
        .unwrap()
        .otlp_compression(),
        tta_apm::OtlpCompression::Gzip,
        "per-signal variables that agree"
    );
    let zstd = from(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]).unwrap_err();
    assert_eq!(zstd.variable(), "OTEL_EXPORTER_OTLP_COMPRESSION");
    assert!(zstd.to_string().contains("zstd is not built in"), "{zstd}");
    let signal = from(&[("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "zstd")]).unwrap_err();
    assert_eq!(signal.variable(), "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION");
    let disagree = from(&[
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
    ])
    .unwrap_err();
    assert_eq!(disagree.variable(), "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION");
}
