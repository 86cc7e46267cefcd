//! `ApmConfig`: from code, from the environment, validated before anything starts.

use std::net::SocketAddr;

/// The default Prometheus endpoint address.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// The OTLP transport.
///
/// # Examples
///
/// ```
/// use tta_apm::OtlpProtocol;
/// assert_eq!("grpc".parse::<OtlpProtocol>().unwrap(), OtlpProtocol::Grpc);
/// assert_eq!("http/protobuf".parse::<OtlpProtocol>().unwrap(), OtlpProtocol::HttpProtobuf);
/// assert!("carrier-pigeon".parse::<OtlpProtocol>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// `http/protobuf` (port 4318 by convention).
    #[default]
    HttpProtobuf,
    /// `grpc` (port 4317 by convention).
    Grpc,
}

impl std::str::FromStr for OtlpProtocol {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "grpc" => Ok(Self::Grpc),
            other => Err(ConfigError::invalid(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                other,
                "expected `http/protobuf` or `grpc`",
            )),
        }
    }
}

/// A rejected configuration value, naming the variable (or setting) and the value.
///
/// # Examples
///
/// ```
/// use tta_apm::ApmConfig;
///
/// let err = ApmConfig::from_lookup(|k| (k == "TTA_METRICS_ADDR").then(|| "localhost:x".to_owned()))
///     .unwrap_err();
/// assert_eq!(err.variable(), "TTA_METRICS_ADDR");
/// assert_eq!(err.value(), "localhost:x");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    variable: &'static str,
    value: String,
    reason: &'static str,
}

impl ConfigError {
    fn invalid(variable: &'static str, value: &str, reason: &'static str) -> Self {
        Self {
            variable,
            value: value.chars().take(200).collect(),
            reason,
        }
    }

    /// The environment variable, or the code setting (`ApmConfig::<setting>`), at fault.
    ///
    /// # Examples
    ///
    /// See [`ConfigError`].
    pub fn variable(&self) -> &str {
        self.variable
    }

    /// The rejected value (at most 200 characters of it).
    ///
    /// # Examples
    ///
    /// See [`ConfigError`].
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why it was rejected.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = tta_apm::ApmConfig::new("").validate().unwrap_err();
    /// assert_eq!(err.reason(), "must not be empty");
    /// ```
    pub fn reason(&self) -> &str {
        self.reason
    }
}

/// What `tta_apm::init` sets up.
///
/// Build it in code with [`ApmConfig::new`], or from the environment with
/// [`ApmConfig::from_env`]. **Code wins**: `from_env` reads the environment into a
/// config, and every setter called afterwards overrides what the environment said. The
/// one exception is `OTEL_SDK_DISABLED=true`, which `init` honours whatever the config
/// says, so an operator can always switch telemetry off.
///
/// | setting | variable | default |
/// |---|---|---|
/// | [`service_name`](Self::service_name) | `OTEL_SERVICE_NAME` (else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) | `unknown_service` |
/// | [`service_version`](Self::service_version) | `service.version` in `OTEL_RESOURCE_ATTRIBUTES` | none |
/// | [`environment`](Self::environment) | `TTA_ENVIRONMENT` | `development` |
/// | [`resource_attribute`](Self::resource_attribute) | `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-decoded) | none |
/// | [`metrics_addr`](Self::metrics_addr) | `TTA_METRICS_ADDR` | `127.0.0.1:9464` |
/// | [`prometheus`](Self::prometheus) | | on |
/// | [`console_spans`](Self::console_spans) | | on when the environment is `development` |
/// | [`otlp_endpoint`](Self::otlp_endpoint) (feature `otlp`) | `OTEL_EXPORTER_OTLP_ENDPOINT` | none (no OTLP export) |
/// | [`otlp_protocol`](Self::otlp_protocol) | `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` |
/// | [`sampling_ratio`](Self::sampling_ratio) | `OTEL_TRACES_SAMPLER_ARG` | 1.0 (parent-based) |
/// | [`sdk_disabled`](Self::sdk_disabled) | `OTEL_SDK_DISABLED` (`true`/`false`) | false |
/// | [`tracing_bridge`](Self::tracing_bridge) (feature `tracing`) | | off |
///
/// # Examples
///
/// ```
/// use tta_apm::ApmConfig;
///
/// let env = |k: &str| match k {
///     "OTEL_SERVICE_NAME" => Some("from-env".to_owned()),
///     "TTA_ENVIRONMENT" => Some("production".to_owned()),
///     _ => None,
/// };
/// let config = ApmConfig::from_lookup(env).unwrap().service_name("from-code");
/// assert_eq!(config.get_service_name(), "from-code"); // code wins
/// assert_eq!(config.get_environment(), "production");
/// assert!(!config.console_spans_enabled()); // off outside development
/// ```
#[derive(Clone, Debug)]
pub struct ApmConfig {
    pub(crate) service_name: String,
    pub(crate) service_version: Option<String>,
    pub(crate) environment: String,
    pub(crate) resource: Vec<(String, String)>,
    pub(crate) metrics_addr: Result<SocketAddr, String>,
    pub(crate) prometheus: bool,
    pub(crate) console_spans: Option<bool>,
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) otlp_protocol: OtlpProtocol,
    pub(crate) sampling_ratio: f64,
    pub(crate) sdk_disabled: bool,
    pub(crate) tracing_bridge: bool,
}

impl Default for ApmConfig {
    fn default() -> Self {
        Self::new("unknown_service")
    }
}

fn parse_bool(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(ConfigError::invalid(
            variable,
            value,
            "expected `true` or `false`",
        )),
    }
}

fn percent_decode(variable: &'static str, raw: &str) -> Result<String, ConfigError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ConfigError::invalid(variable, raw, "bad percent-encoding"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConfigError::invalid(variable, raw, "not UTF-8 once decoded"))
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by commas.
fn parse_resource(raw: &str) -> Result<Vec<(String, String)>, ConfigError> {
    const VAR: &str = "OTEL_RESOURCE_ATTRIBUTES";
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::invalid(VAR, pair, "expected key=value"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(ConfigError::invalid(VAR, pair, "empty key"));
        }
        out.push((key.to_owned(), percent_decode(VAR, value.trim())?));
    }
    Ok(out)
}

fn check_endpoint(variable: &'static str, endpoint: &str) -> Result<(), ConfigError> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| {
            ConfigError::invalid(variable, endpoint, "expected an http:// or https:// URL")
        })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(ConfigError::invalid(variable, endpoint, "no host"));
    }
    Ok(())
}

fn check_text(variable: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(ConfigError::invalid(variable, value, "must not be empty"))
    } else if value.chars().any(char::is_control) {
        Err(ConfigError::invalid(
            variable,
            value,
            "holds a control character",
        ))
    } else {
        Ok(())
    }
}

impl ApmConfig {
    /// A config in code only (the environment is not read), for `service_name`.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = tta_apm::ApmConfig::new("checkout").environment("staging");
    /// assert_eq!(config.get_service_name(), "checkout");
    /// ```
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            service_version: None,
            environment: "development".to_owned(),
            resource: Vec::new(),
            metrics_addr: Ok(SocketAddr::from(([127, 0, 0, 1], 9464))),
            prometheus: true,
            console_spans: None,
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            sampling_ratio: 1.0,
            sdk_disabled: false,
            tracing_bridge: false,
        }
    }

    /// The defaults, then the process environment (see the table on [`ApmConfig`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the first variable whose value cannot be used.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = tta_apm::ApmConfig::from_env();
    /// # let _ = config;
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The defaults, then the variables `lookup` returns: [`ApmConfig::from_env`]
    /// without touching the process environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the first variable whose value cannot be used.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_apm::ApmConfig;
    /// let err = ApmConfig::from_lookup(|k| (k == "OTEL_TRACES_SAMPLER_ARG").then(|| "1.5".into())).unwrap_err();
    /// assert_eq!(err.variable(), "OTEL_TRACES_SAMPLER_ARG");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(raw) = lookup("OTEL_RESOURCE_ATTRIBUTES") {
            for (key, value) in parse_resource(&raw)? {
                match key.as_str() {
                    "service.name" => config.service_name = value,
                    "service.version" => config.service_version = Some(value),
                    "deployment.environment.name" => config.environment = value,
                    _ => config.resource.push((key, value)),
                }
            }
        }
        if let Some(name) = lookup("OTEL_SERVICE_NAME") {
            check_text("OTEL_SERVICE_NAME", &name)?;
            config.service_name = name;
        }
        if let Some(env) = lookup("TTA_ENVIRONMENT") {
            check_text("TTA_ENVIRONMENT", &env)?;
            config.environment = env;
        }
        if let Some(addr) = lookup("TTA_METRICS_ADDR") {
            let parsed = addr.trim().parse::<SocketAddr>().map_err(|_| {
                ConfigError::invalid(
                    "TTA_METRICS_ADDR",
                    &addr,
                    "expected ip:port, e.g. 127.0.0.1:9464",
                )
            })?;
            config.metrics_addr = Ok(parsed);
        }
        if let Some(endpoint) =
            lookup("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|e| !e.trim().is_empty())
        {
            check_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.trim())?;
            config.otlp_endpoint = Some(endpoint.trim().to_owned());
        }
        if let Some(protocol) = lookup("OTEL_EXPORTER_OTLP_PROTOCOL") {
            config.otlp_protocol = protocol.parse()?;
        }
        if let Some(ratio) = lookup("OTEL_TRACES_SAMPLER_ARG") {
            let parsed: f64 = ratio.trim().parse().map_err(|_| {
                ConfigError::invalid(
                    "OTEL_TRACES_SAMPLER_ARG",
                    &ratio,
                    "expected a number from 0 to 1",
                )
            })?;
            if !(0.0..=1.0).contains(&parsed) {
                return Err(ConfigError::invalid(
                    "OTEL_TRACES_SAMPLER_ARG",
                    &ratio,
                    "expected a number from 0 to 1",
                ));
            }
            config.sampling_ratio = parsed;
        }
        if let Some(disabled) = lookup("OTEL_SDK_DISABLED") {
            config.sdk_disabled = parse_bool("OTEL_SDK_DISABLED", &disabled)?;
        }
        Ok(config)
    }

    /// Sets `service.name`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// Sets `service.version`.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// Sets `deployment.environment.name` (and whether console spans default on).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }

    /// Adds a resource attribute.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Where `/metrics` listens, as `ip:port` (port 0 picks a free port; read the bound
    /// address from [`ApmStatus::metrics_addr`](crate::ApmStatus::metrics_addr)).
    pub fn metrics_addr(mut self, addr: &str) -> Self {
        self.metrics_addr = addr.trim().parse().map_err(|_| addr.to_owned());
        self
    }

    /// Turns the Prometheus endpoint on or off.
    pub fn prometheus(mut self, on: bool) -> Self {
        self.prometheus = on;
        self
    }

    /// Turns console (stdout) span export on or off, whatever the environment.
    pub fn console_spans(mut self, on: bool) -> Self {
        self.console_spans = Some(on);
        self
    }

    /// Exports traces and metrics by OTLP to `endpoint` (feature `otlp`).
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp_endpoint = Some(endpoint.into());
        self
    }

    /// The OTLP transport.
    pub fn otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.otlp_protocol = protocol;
        self
    }

    /// The share of root traces sampled, from 0 to 1 (children follow their parent).
    pub fn sampling_ratio(mut self, ratio: f64) -> Self {
        self.sampling_ratio = ratio;
        self
    }

    /// Installs nothing when `true`: primitives then use the no-op providers.
    pub fn sdk_disabled(mut self, disabled: bool) -> Self {
        self.sdk_disabled = disabled;
        self
    }

    /// Installs a `tracing` subscriber layer that sends `tracing` spans to the same
    /// tracer provider (feature `tracing`).
    pub fn tracing_bridge(mut self, on: bool) -> Self {
        self.tracing_bridge = on;
        self
    }

    /// The service name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_apm::ApmConfig::default().get_service_name(), "unknown_service");
    /// ```
    pub fn get_service_name(&self) -> &str {
        &self.service_name
    }

    /// The deployment environment.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_apm::ApmConfig::default().get_environment(), "development");
    /// ```
    pub fn get_environment(&self) -> &str {
        &self.environment
    }

    /// The OTLP endpoint, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_apm::ApmConfig::default().get_otlp_endpoint(), None);
    /// ```
    pub fn get_otlp_endpoint(&self) -> Option<&str> {
        self.otlp_endpoint.as_deref()
    }

    /// Whether console span export is on (explicitly, or by the `development` default).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_apm::ApmConfig::default().console_spans_enabled());
    /// ```
    pub fn console_spans_enabled(&self) -> bool {
        self.console_spans
            .unwrap_or(self.environment == "development")
    }

    /// Checks every setting made in code.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the setting (`ApmConfig::<setting>`) and the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = tta_apm::ApmConfig::new("svc").sampling_ratio(2.0).validate().unwrap_err();
    /// assert_eq!(err.variable(), "ApmConfig::sampling_ratio");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_text("ApmConfig::service_name", &self.service_name)?;
        check_text("ApmConfig::environment", &self.environment)?;
        if let Some(version) = &self.service_version {
            check_text("ApmConfig::service_version", version)?;
        }
        for (key, _) in &self.resource {
            check_text("ApmConfig::resource_attribute", key)?;
        }
        if let Err(raw) = &self.metrics_addr {
            return Err(ConfigError::invalid(
                "ApmConfig::metrics_addr",
                raw,
                "expected ip:port, e.g. 127.0.0.1:9464",
            ));
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            check_endpoint("ApmConfig::otlp_endpoint", endpoint)?;
        }
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return Err(ConfigError::invalid(
                "ApmConfig::sampling_ratio",
                &self.sampling_ratio.to_string(),
                "expected a number from 0 to 1",
            ));
        }
        Ok(())
    }
}
