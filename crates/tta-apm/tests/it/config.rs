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
    .unwrap();
    assert_eq!(config.get_service_name(), "checkout");
    assert_eq!(config.get_environment(), "production");
    assert_eq!(config.get_otlp_endpoint(), Some("http://collector:4317"));
    assert!(!config.console_spans_enabled());
    let dbg = format!("{config:?}");
    for part in ["2.0", "pay ments", "region", "0.0.0.0:9999", "Grpc", "0.25"] {
        assert!(dbg.contains(part), "{part} not in {dbg}");
    }
    config.validate().unwrap();
}

#[test]
fn code_wins_over_the_environment() {
    let config = ApmConfig::from_lookup(env(&[
        ("OTEL_SERVICE_NAME", "from-env"),
        ("TTA_ENVIRONMENT", "production"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]))
    .unwrap()
    .service_name("from-code")
    .environment("staging")
    .otlp_protocol(OtlpProtocol::HttpProtobuf)
    .console_spans(true);
    assert_eq!(config.get_service_name(), "from-code");
    assert_eq!(config.get_environment(), "staging");
    assert!(config.console_spans_enabled());
    assert!(format!("{config:?}").contains("HttpProtobuf"));
}

#[test]
fn otel_service_name_beats_service_name_in_resource_attributes() {
    let both = ApmConfig::from_lookup(env(&[
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=attr-name"),
        ("OTEL_SERVICE_NAME", "var-name"),
    ]))
    .unwrap();
    assert_eq!(both.get_service_name(), "var-name");
    let attr_only = ApmConfig::from_lookup(env(&[(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=attr-name",
    )]))
    .unwrap();
    assert_eq!(attr_only.get_service_name(), "attr-name");
    assert_eq!(
        ApmConfig::from_lookup(env(&[])).unwrap().get_service_name(),
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
        let err = ApmConfig::from_lookup(env(&[(var, value)])).unwrap_err();
        assert_eq!(err.variable(), var, "{var}={value:?}: {err}");
        assert!(err.to_string().contains(var), "{err}");
        assert!(!err.reason().is_empty());
    }
}

#[test]
fn bad_code_values_name_the_setting() {
    let cases = [
        (ApmConfig::new(""), "ApmConfig::service_name"),
        (
            ApmConfig::new("s").environment(""),
            "ApmConfig::environment",
        ),
        (
            ApmConfig::new("s").service_version("\u{0}"),
            "ApmConfig::service_version",
        ),
        (
            ApmConfig::new("s").metrics_addr("nope"),
            "ApmConfig::metrics_addr",
        ),
        (
            ApmConfig::new("s").otlp_endpoint("grpc://x"),
            "ApmConfig::otlp_endpoint",
        ),
        (
            ApmConfig::new("s").sampling_ratio(2.0),
            "ApmConfig::sampling_ratio",
        ),
        (
            ApmConfig::new("s").sampling_ratio(f64::NAN),
            "ApmConfig::sampling_ratio",
        ),
        (
            ApmConfig::new("s").resource_attribute("", "v"),
            "ApmConfig::resource_attribute",
        ),
    ];
    for (config, setting) in cases {
        let err = config.validate().unwrap_err();
        assert_eq!(err.variable(), setting);
        // init refuses it before starting anything.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _serial = crate::serial();
        let init = rt.block_on(async { tta_apm::init(config.clone()) });
        assert!(matches!(init, Err(tta_apm::InitError::Config(_))));
    }
    assert_eq!(
        ApmConfig::new("s")
            .metrics_addr("nope")
            .validate()
            .unwrap_err()
            .value(),
        "nope"
    );
}
