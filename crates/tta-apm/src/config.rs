//! `ApmConfig`: from code, from the environment, validated before anything starts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The default Prometheus endpoint address: `127.0.0.1:9464`.
pub const DEFAULT_METRICS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

const EXPECTED_ADDR: &str = "expected ip:port, e.g. 127.0.0.1:9464";

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

/// OTLP payload compression. `zstd`, which the OpenTelemetry variables also name, is not
/// built in: asking for it is a configuration error, not a silent fallback to none.
///
/// # Examples
///
/// ```
/// use tta_apm::OtlpCompression;
/// assert_eq!("gzip".parse::<OtlpCompression>().unwrap(), OtlpCompression::Gzip);
/// assert_eq!("none".parse::<OtlpCompression>().unwrap(), OtlpCompression::None);
/// assert!("zstd".parse::<OtlpCompression>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpCompression {
    /// No compression.
    #[default]
    None,
    /// gzip (for http/protobuf and gRPC alike).
    Gzip,
}

impl std::str::FromStr for OtlpCompression {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            _ => Err(ConfigError::invalid(
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                s,
                "expected `gzip` or `none` (zstd is not built in)",
            )),
        }
    }
}

/// Spans that may wait for OTLP export by default: a burst of 20,000 requests of about
/// two spans each fits, where the SDK's default of 2,048 dropped most of them.
const DEFAULT_SPAN_QUEUE: usize = 65_536;

/// The variables that set OTLP compression: for both signals, then per signal.
const COMPRESSION_VARS: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
];

/// A rejected configuration value, naming the variable (or setting) and the value.
///
/// # Examples
///
/// ```
/// use tta_apm::ApmConfig;
///
/// let err = ApmConfig::from_lookup(|k| (k == "TTA_METRICS_ADDR").then(|| "localhost:x".to_owned()))
///     .build()
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
    /// let err = tta_apm::ApmConfig::builder("").build().unwrap_err();
    /// assert_eq!(err.reason(), "must not be empty");
    /// ```
    pub fn reason(&self) -> &str {
        self.reason
    }
}

/// A setting's value and where it came from: code (named `ApmConfig::<setting>` in
/// errors) or an environment variable (named by the variable).
#[derive(Clone, Debug)]
enum Setting<T> {
    Code(T),
    Env(&'static str, String),
}

/// Builds an [`ApmConfig`]. Setters only store; [`build`](Self::build) checks every
/// value once, naming the environment variable or the code setting at fault.
///
/// **Code wins**: [`ApmConfig::from_env`] reads the environment into a builder, and every
/// setter called afterwards overrides what the environment said. The one exception is
/// `OTEL_SDK_DISABLED=true`, which `init` honours whatever the config says, so an
/// operator can always switch telemetry off.
///
/// | setting | variable | default |
/// |---|---|---|
/// | `service_name` | `OTEL_SERVICE_NAME` (else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) | `unknown_service` |
/// | `service_version` | `service.version` in `OTEL_RESOURCE_ATTRIBUTES` | none |
/// | `environment` | `TTA_ENVIRONMENT` (else `deployment.environment.name` in `OTEL_RESOURCE_ATTRIBUTES`) | `development` |
/// | `resource_attribute` | `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-decoded) | none |
/// | `metrics_addr` | `TTA_METRICS_ADDR` | `127.0.0.1:9464` ([`DEFAULT_METRICS_ADDR`]) |
/// | `prometheus` | | on |
/// | `console_spans` | | off, unless the environment is **set** to `development` (in code or `TTA_ENVIRONMENT`) |
/// | `otlp_endpoint` (feature `otlp`) | `OTEL_EXPORTER_OTLP_ENDPOINT` | none (no OTLP export) |
/// | `otlp_protocol` | `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` |
/// | `span_queue` | `OTEL_BSP_MAX_QUEUE_SIZE` (the other `OTEL_BSP_*` variables reach the SDK's batch processor as they are) | 65,536 spans waiting for export; more are dropped and counted (`tta.apm.spans.dropped`, [`ApmStatus::spans`](crate::ApmStatus::spans)) |
/// | `otlp_compression` | `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip`, `none`; `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_COMPRESSION` must agree with it) | `none` |
/// | `sampling_ratio` | `OTEL_TRACES_SAMPLER_ARG` | 1.0 (parent-based) |
/// | `sdk_disabled` | `OTEL_SDK_DISABLED` (`true`/`false`) | false |
/// | `tracing_bridge` (feature `tracing`) | | off |
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
/// let config = ApmConfig::from_lookup(env).service_name("from-code").build()?;
/// assert_eq!(config.service_name(), "from-code"); // code wins
/// assert_eq!(config.environment(), "production");
/// assert!(!config.console_spans()); // never by default
/// # Ok::<(), tta_apm::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ApmConfigBuilder {
    service_name: Option<Setting<String>>,
    service_version: Option<Setting<String>>,
    environment: Option<Setting<String>>,
    resource_env: Option<String>,
    resource: Vec<(String, String)>,
    metrics_addr: Option<Setting<String>>,
    prometheus: bool,
    console_spans: Option<bool>,
    otlp_endpoint: Option<Setting<String>>,
    otlp_protocol: Option<Setting<OtlpProtocol>>,
    otlp_compression: Option<Setting<OtlpCompression>>,
    span_queue: Option<Setting<usize>>,
    /// The per-signal compression variables as set, checked against the general one.
    signal_compression: Vec<(&'static str, String)>,
    sampling_ratio: Option<Setting<f64>>,
    sdk_disabled: Option<Setting<bool>>,
    tracing_bridge: bool,
}

/// What `tta_apm::init` sets up: settings that were checked by
/// [`ApmConfigBuilder::build`]. Made by [`ApmConfig::builder`] (code only) or
/// [`ApmConfig::from_env`] (the environment, then code).
#[derive(Clone, Debug)]
pub struct ApmConfig {
    pub(crate) service_name: String,
    pub(crate) service_version: Option<String>,
    pub(crate) environment: String,
    pub(crate) resource: Vec<(String, String)>,
    pub(crate) metrics_addr: SocketAddr,
    pub(crate) prometheus: bool,
    pub(crate) console_spans: bool,
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) otlp_protocol: OtlpProtocol,
    pub(crate) otlp_compression: OtlpCompression,
    pub(crate) span_queue: usize,
    pub(crate) sampling_ratio: f64,
    pub(crate) sdk_disabled: bool,
    pub(crate) tracing_bridge: bool,
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
    let endpoint = endpoint.trim();
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

fn text(setting: &'static str, value: Setting<String>) -> Result<String, ConfigError> {
    let (name, value) = match value {
        Setting::Code(v) => (setting, v),
        Setting::Env(var, v) => (var, v),
    };
    check_text(name, &value)?;
    Ok(value)
}

impl ApmConfig {
    /// A builder for `service_name`, in code only (the environment is not read).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = tta_apm::ApmConfig::builder("checkout").environment("staging").build()?;
    /// assert_eq!(config.service_name(), "checkout");
    /// # Ok::<(), tta_apm::ConfigError>(())
    /// ```
    pub fn builder(service_name: impl Into<String>) -> ApmConfigBuilder {
        ApmConfigBuilder::empty().service_name(service_name)
    }

    /// A builder with the process environment read into it (see the table on
    /// [`ApmConfigBuilder`]); setters called afterwards override it.
    pub fn from_env() -> ApmConfigBuilder {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`ApmConfig::from_env`] with the variables `lookup` returns, without touching the
    /// process environment.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_apm::ApmConfig;
    /// let err = ApmConfig::from_lookup(|k| (k == "OTEL_TRACES_SAMPLER_ARG").then(|| "1.5".into()))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.variable(), "OTEL_TRACES_SAMPLER_ARG");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ApmConfigBuilder {
        let env = |var: &'static str| lookup(var).map(|v| Setting::Env(var, v));
        let mut builder = ApmConfigBuilder::empty();
        builder.resource_env = lookup("OTEL_RESOURCE_ATTRIBUTES");
        builder.service_name = env("OTEL_SERVICE_NAME");
        builder.environment = env("TTA_ENVIRONMENT");
        builder.metrics_addr = env("TTA_METRICS_ADDR");
        builder.otlp_endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT")
            .filter(|e| !matches!(e, Setting::Env(_, v) if v.trim().is_empty()));
        builder.otlp_protocol = lookup("OTEL_EXPORTER_OTLP_PROTOCOL")
            .map(|v| Setting::Env("OTEL_EXPORTER_OTLP_PROTOCOL", v));
        builder.otlp_compression =
            lookup(COMPRESSION_VARS[0]).map(|v| Setting::Env(COMPRESSION_VARS[0], v));
        builder.span_queue =
            lookup("OTEL_BSP_MAX_QUEUE_SIZE").map(|v| Setting::Env("OTEL_BSP_MAX_QUEUE_SIZE", v));
        builder.signal_compression = COMPRESSION_VARS[1..]
            .iter()
            .filter_map(|var| Some((*var, lookup(var)?)))
            .collect();
        builder.sampling_ratio =
            lookup("OTEL_TRACES_SAMPLER_ARG").map(|v| Setting::Env("OTEL_TRACES_SAMPLER_ARG", v));
        builder.sdk_disabled =
            lookup("OTEL_SDK_DISABLED").map(|v| Setting::Env("OTEL_SDK_DISABLED", v));
        builder
    }

    /// The service name.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The service version, if set.
    pub fn service_version(&self) -> Option<&str> {
        self.service_version.as_deref()
    }

    /// The deployment environment.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Where `/metrics` listens.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The OTLP endpoint, if any.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        self.otlp_endpoint.as_deref()
    }

    /// The OTLP transport.
    pub fn otlp_protocol(&self) -> OtlpProtocol {
        self.otlp_protocol
    }

    /// The OTLP payload compression.
    pub fn otlp_compression(&self) -> OtlpCompression {
        self.otlp_compression
    }

    /// How many ended spans may wait for OTLP export before more are dropped (counted).
    pub fn span_queue(&self) -> usize {
        self.span_queue
    }

    /// Whether spans are exported to the console.
    pub fn console_spans(&self) -> bool {
        self.console_spans
    }

    /// Whether the SDK is disabled (nothing is installed).
    pub fn sdk_disabled(&self) -> bool {
        self.sdk_disabled
    }
}

impl ApmConfigBuilder {
    fn empty() -> Self {
        Self {
            service_name: None,
            service_version: None,
            environment: None,
            resource_env: None,
            resource: Vec::new(),
            metrics_addr: None,
            prometheus: true,
            console_spans: None,
            otlp_endpoint: None,
            otlp_protocol: None,
            otlp_compression: None,
            span_queue: None,
            signal_compression: Vec::new(),
            sampling_ratio: None,
            sdk_disabled: None,
            tracing_bridge: false,
        }
    }

    /// `service.name`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(Setting::Code(name.into()));
        self
    }

    /// `service.version`.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(Setting::Code(version.into()));
        self
    }

    /// `deployment.environment.name`; `development` also turns console spans on unless
    /// [`console_spans`](Self::console_spans) says otherwise.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(Setting::Code(environment.into()));
        self
    }

    /// Adds a resource attribute.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Where `/metrics` listens, as `ip:port` (port 0 picks a free port; read the bound
    /// address from [`ApmStatus::metrics_addr`](crate::ApmStatus::metrics_addr)).
    pub fn metrics_addr(mut self, addr: impl Into<String>) -> Self {
        self.metrics_addr = Some(Setting::Code(addr.into()));
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
        self.otlp_endpoint = Some(Setting::Code(endpoint.into()));
        self
    }

    /// The OTLP transport.
    pub fn otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.otlp_protocol = Some(Setting::Code(protocol));
        self
    }

    /// The OTLP payload compression (for both signals).
    pub fn otlp_compression(mut self, compression: OtlpCompression) -> Self {
        self.otlp_compression = Some(Setting::Code(compression));
        self
    }

    /// How many ended spans may wait for OTLP export (at least 1; default 65,536); a span
    /// over the bound is dropped and counted.
    pub fn span_queue(mut self, spans: usize) -> Self {
        self.span_queue = Some(Setting::Code(spans));
        self
    }

    /// The share of root traces sampled, from 0 to 1 (children follow their parent).
    pub fn sampling_ratio(mut self, ratio: f64) -> Self {
        self.sampling_ratio = Some(Setting::Code(ratio));
        self
    }

    /// Installs nothing when `true`: primitives then use the no-op providers.
    pub fn sdk_disabled(mut self, disabled: bool) -> Self {
        self.sdk_disabled = Some(Setting::Code(disabled));
        self
    }

    /// Installs a `tracing` subscriber layer that sends `tracing` spans to the same
    /// tracer provider (feature `tracing`).
    pub fn tracing_bridge(mut self, on: bool) -> Self {
        self.tracing_bridge = on;
        self
    }

    /// Checks every setting, from code and from the environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the first variable (or `ApmConfig::<setting>`) whose value
    /// cannot be used.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = tta_apm::ApmConfig::builder("svc").sampling_ratio(2.0).build().unwrap_err();
    /// assert_eq!(err.variable(), "ApmConfig::sampling_ratio");
    /// ```
    pub fn build(self) -> Result<ApmConfig, ConfigError> {
        let mut from_resource = Vec::new();
        let (mut r_name, mut r_version, mut r_env) = (None, None, None);
        if let Some(raw) = &self.resource_env {
            for (key, value) in parse_resource(raw)? {
                let setting = || Setting::Env("OTEL_RESOURCE_ATTRIBUTES", value.clone());
                match key.as_str() {
                    "service.name" => r_name = Some(setting()),
                    "service.version" => r_version = Some(setting()),
                    "deployment.environment.name" => r_env = Some(setting()),
                    _ => from_resource.push((key, value)),
                }
            }
        }
        let service_name = text(
            "ApmConfig::service_name",
            self.service_name
                .or(r_name)
                .unwrap_or_else(|| Setting::Code("unknown_service".to_owned())),
        )?;
        let service_version = self
            .service_version
            .or(r_version)
            .map(|v| text("ApmConfig::service_version", v))
            .transpose()?;
        let explicit_environment = self.environment.is_some() || r_env.is_some();
        let environment = text(
            "ApmConfig::environment",
            self.environment
                .or(r_env)
                .unwrap_or_else(|| Setting::Code("development".to_owned())),
        )?;
        for (key, _) in &self.resource {
            check_text("ApmConfig::resource_attribute", key)?;
        }
        let metrics_addr = match self.metrics_addr {
            None => DEFAULT_METRICS_ADDR,
            Some(setting) => {
                let (name, raw) = match setting {
                    Setting::Code(v) => ("ApmConfig::metrics_addr", v),
                    Setting::Env(var, v) => (var, v),
                };
                raw.trim()
                    .parse()
                    .map_err(|_| ConfigError::invalid(name, &raw, EXPECTED_ADDR))?
            }
        };
        let otlp_endpoint = match self.otlp_endpoint {
            None => None,
            Some(setting) => {
                let (name, raw) = match setting {
                    Setting::Code(v) => ("ApmConfig::otlp_endpoint", v),
                    Setting::Env(var, v) => (var, v),
                };
                check_endpoint(name, &raw)?;
                Some(raw.trim().to_owned())
            }
        };
        let otlp_protocol = match self.otlp_protocol {
            None => OtlpProtocol::default(),
            Some(Setting::Code(p)) => p,
            Some(Setting::Env(_, raw)) => raw.parse()?,
        };
        let otlp_compression = match self.otlp_compression {
            None => None,
            Some(Setting::Code(c)) => Some(c),
            Some(Setting::Env(_, raw)) => Some(raw.parse()?),
        };
        // One compression for both signals: a per-signal variable must name a supported
        // one and agree with the general setting (or stand alone, the same for both).
        let mut signal: Option<OtlpCompression> = None;
        for (var, raw) in &self.signal_compression {
            let parsed: OtlpCompression = raw.parse().map_err(|_: ConfigError| {
                ConfigError::invalid(var, raw, "expected `gzip` or `none` (zstd is not built in)")
            })?;
            let agreed = otlp_compression.or(signal).unwrap_or(parsed);
            if parsed != agreed {
                return Err(ConfigError::invalid(
                    var,
                    raw,
                    "tta exports both signals with one compression: it must agree with the other compression settings",
                ));
            }
            signal = Some(parsed);
        }
        let otlp_compression = otlp_compression.or(signal).unwrap_or_default();
        let span_queue = match self.span_queue {
            None => DEFAULT_SPAN_QUEUE,
            Some(Setting::Code(n)) if n > 0 => n,
            Some(Setting::Code(n)) => {
                return Err(ConfigError::invalid(
                    "ApmConfig::span_queue",
                    &n.to_string(),
                    "expected at least 1 span",
                ));
            }
            Some(Setting::Env(var, raw)) => raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ConfigError::invalid(var, &raw, "expected a positive number of spans")
                })?,
        };
        let sampling_ratio = match self.sampling_ratio {
            None => 1.0,
            Some(setting) => {
                let (name, parsed, raw) = match setting {
                    Setting::Code(v) => ("ApmConfig::sampling_ratio", Some(v), v.to_string()),
                    Setting::Env(var, raw) => (var, raw.trim().parse::<f64>().ok(), raw),
                };
                parsed.filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| {
                    ConfigError::invalid(name, &raw, "expected a number from 0 to 1")
                })?
            }
        };
        let sdk_disabled = match self.sdk_disabled {
            None => false,
            Some(Setting::Code(v)) => v,
            Some(Setting::Env(var, raw)) => parse_bool(var, &raw)?,
        };
        let mut resource = from_resource;
        resource.extend(self.resource);
        Ok(ApmConfig {
            console_spans: self
                .console_spans
                .unwrap_or(explicit_environment && environment == "development"),
            service_name,
            service_version,
            environment,
            resource,
            metrics_addr,
            prometheus: self.prometheus,
            otlp_endpoint,
            otlp_protocol,
            otlp_compression,
            span_queue,
            sampling_ratio,
            sdk_disabled,
            tracing_bridge: self.tracing_bridge,
        })
    }
}

/// `OTEL_SDK_DISABLED` from `lookup`: the operator's kill switch that `init` honours
/// whatever the code configured.
pub(crate) fn sdk_disabled_by(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<bool, ConfigError> {
    lookup("OTEL_SDK_DISABLED").map_or(Ok(false), |v| parse_bool("OTEL_SDK_DISABLED", &v))
}
