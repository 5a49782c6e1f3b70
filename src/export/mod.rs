//! One-call setup: the global propagator, a `tracing` subscriber (a fmt layer for logs and the
//! OpenTelemetry layer for spans) and an OTLP exporter behind a batch processor, configured by
//! OpenTelemetry's environment variables.
//!
//! ```no_run
//! # async fn run() -> Result<(), meshtrace::export::InitError> {
//! // OTEL_SERVICE_NAME=reviews OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318 ./reviews
//! let _telemetry = meshtrace::init()?; // flushes and shuts down when dropped
//! tracing::info!("ready");
//! # Ok(()) }
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OTEL_SDK_DISABLED` | `true`: logs and propagation only, no spans | `false` |
//! | `OTEL_SERVICE_NAME` | resource `service.name` | `unknown_service:<executable>` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes, `k=v,k2=v2` (percent-decoded) | none |
//! | `OTEL_PROPAGATORS` | the propagator (see [`MeshPropagator::try_from_env`]) | the Istio preset |
//! | `OTEL_TRACES_EXPORTER` | `otlp` or `none` | `otlp` |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `..._TRACES_PROTOCOL` | `grpc` or `http/protobuf` | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | collector base URL (`/v1/traces` is appended for HTTP) | `http://localhost:4318` (HTTP), `http://localhost:4317` (gRPC) |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the full traces URL, used as given | |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `..._TRACES_HEADERS` | `k=v,k2=v2` sent with every export | none |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `..._TRACES_TIMEOUT` | milliseconds per export | `10000` |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_*` | `parentbased_always_on` |
//! | `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | the batch processor: spans queued at most (more are dropped, so memory stays bounded when the collector is down), milliseconds between exports, spans per export | `2048`, `5000`, `512` |
//! | `RUST_LOG` | what the fmt layer prints (`tracing-subscriber`'s `EnvFilter`) | `info` |
//!
//! The `parentbased_*` samplers are [`MeshSampler`]s: a B3 parent that left the decision open
//! is decided by the root sampler instead of being dropped. A bad value in any variable is an
//! [`InitError`] naming the variable, never a panic.

use crate::propagation::env::{PropagatorList, PropagatorsError};
use crate::{MeshPropagator, MeshSampler};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::resource::{Resource, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{
    BatchConfig, BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, ShouldSample,
    TracerProviderBuilder,
};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;
use tracing::Dispatch;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

mod shutdown;

use shutdown::shutdown_within;

/// Sets everything up from the environment and installs it globally: the propagator, the
/// subscriber, the exporter. Keep the returned guard alive; dropping it flushes and shuts
/// the exporter down within [`TelemetryBuilder::shutdown_timeout`] (5 s by default), also
/// when the collector is unreachable.
pub fn init() -> Result<TelemetryGuard, InitError> {
    TelemetryBuilder::from_env()?.build()?.install()
}

/// An environment variable's value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// Not `true` or `false`.
    #[error("expected `true` or `false`")]
    NotABool,
    /// An OTLP protocol this crate does not speak.
    #[error("unsupported protocol (use `grpc` or `http/protobuf`)")]
    Protocol,
    /// A traces exporter other than `otlp` or `none`.
    #[error("unsupported traces exporter (use `otlp` or `none`)")]
    Exporter,
    /// Not an `http://` or `https://` URL with a host.
    #[error("not an http(s) URL with a host")]
    Url,
    /// A `key=value` list entry without `=` or with an empty key.
    #[error("expected comma-separated `key=value` pairs, got the entry {0:?}")]
    KeyValue(String),
    /// A sampler name this crate does not know.
    #[error("unknown sampler (use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio)")]
    Sampler,
    /// A sampling ratio outside `[0, 1]`.
    #[error("expected a number from 0 to 1")]
    Ratio,
    /// Not a whole number of milliseconds.
    #[error("expected a whole number of milliseconds")]
    Millis,
    /// Not a whole number above zero.
    #[error("expected a whole number above zero")]
    Positive,
    /// `OTEL_PROPAGATORS` names something unknown or unsupported.
    #[error(transparent)]
    Propagators(#[from] PropagatorsError),
    /// `RUST_LOG` is not a valid filter.
    #[error("not a valid filter: {0}")]
    Filter(String),
}

/// Why [`init`] or [`TelemetryBuilder`] could not set up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// An environment variable has a value that cannot be used.
    #[error("{var}={value:?}: {error}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        error: EnvError,
    },
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global `tracing` subscriber was installed before.
    #[error("a global tracing subscriber is already installed")]
    SubscriberAlreadySet,
    /// OTLP over gRPC was asked for outside a tokio runtime (tonic's channel lives on one).
    #[error("OTLP over gRPC needs a tokio runtime: call this inside one (#[tokio::main]), or use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")]
    NoRuntime,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318).
    HttpProtobuf,
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The transport.
    pub protocol: Protocol,
    /// The URL export requests go to (for HTTP, including `/v1/traces`).
    pub endpoint: String,
    /// Headers (gRPC metadata) sent with every export, such as an API key.
    pub headers: Vec<(String, String)>,
    /// How long one export may take.
    pub timeout: Duration,
}

/// The sampler, as `OTEL_TRACES_SAMPLER` names it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    /// Every trace.
    AlwaysOn,
    /// No trace.
    AlwaysOff,
    /// A fraction of traces, by trace id.
    TraceIdRatio(f64),
    /// Follow the parent; [`MeshSampler`] around the given root sampler.
    ParentBased(RootSampler),
}

/// The root sampler of [`SamplerConfig::ParentBased`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RootSampler {
    /// New traces are sampled.
    AlwaysOn,
    /// New traces are not sampled.
    AlwaysOff,
    /// A fraction of new traces, by trace id.
    TraceIdRatio(f64),
}

impl SamplerConfig {
    fn sampler(self) -> Box<dyn ShouldSample> {
        let plain = |root: RootSampler| match root {
            RootSampler::AlwaysOn => Sampler::AlwaysOn,
            RootSampler::AlwaysOff => Sampler::AlwaysOff,
            RootSampler::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        };
        match self {
            SamplerConfig::AlwaysOn => Box::new(Sampler::AlwaysOn),
            SamplerConfig::AlwaysOff => Box::new(Sampler::AlwaysOff),
            SamplerConfig::TraceIdRatio(r) => Box::new(Sampler::TraceIdRatioBased(r)),
            SamplerConfig::ParentBased(root) => Box::new(MeshSampler::new(plain(root))),
        }
    }
}

/// The batch processor in front of the OTLP exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Spans waiting for export at most; more are dropped. This bounds memory when the
    /// collector is slow or gone.
    pub max_queue_size: usize,
    /// Time between two exports.
    pub scheduled_delay: Duration,
    /// Spans per export request at most.
    pub max_export_batch_size: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_queue_size: 2048,
            scheduled_delay: Duration::from_secs(5),
            max_export_batch_size: 512,
        }
    }
}

impl BatchSettings {
    fn config(self) -> BatchConfig {
        BatchConfigBuilder::default()
            .with_max_queue_size(self.max_queue_size)
            .with_scheduled_delay(self.scheduled_delay)
            .with_max_export_batch_size(self.max_export_batch_size)
            .build()
    }
}

type ProviderHook = Box<dyn FnOnce(TracerProviderBuilder) -> TracerProviderBuilder>;

/// Builds the telemetry [`init`] installs; start from [`from_env`](Self::from_env) or
/// [`new`](Self::new) and override what you need.
///
/// ```no_run
/// use meshtrace::export::{OtlpConfig, Protocol, TelemetryBuilder};
/// # fn run() -> Result<(), meshtrace::export::InitError> {
/// let _guard = TelemetryBuilder::from_env()?
///     .service_name("reviews")
///     .otlp(Some(OtlpConfig {
///         protocol: Protocol::Grpc,
///         endpoint: "http://jaeger:4317".into(),
///         headers: vec![],
///         timeout: std::time::Duration::from_secs(5),
///     }))
///     .build()?
///     .install()?;
/// # Ok(()) }
/// ```
pub struct TelemetryBuilder {
    service_name: Option<String>,
    resource_attributes: Vec<(String, String)>,
    propagator: MeshPropagator,
    otlp: Option<OtlpConfig>,
    batch: BatchSettings,
    sampler: SamplerConfig,
    log_filter: String,
    logs: bool,
    disabled: bool,
    shutdown_timeout: Duration,
    hooks: Vec<ProviderHook>,
}

impl fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("service_name", &self.service_name)
            .field("resource_attributes", &self.resource_attributes)
            .field("propagator", &self.propagator)
            .field("otlp", &self.otlp)
            .field("batch", &self.batch)
            .field("sampler", &self.sampler)
            .field("log_filter", &self.log_filter)
            .field("logs", &self.logs)
            .field("disabled", &self.disabled)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("extra_exporters", &self.hooks.len())
            .finish()
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl TelemetryBuilder {
    /// The defaults, ignoring the environment: the Istio propagator, OTLP/HTTP to
    /// `http://localhost:4318/v1/traces`, parent-based sampling of everything, logs at `info`.
    pub fn new() -> Self {
        TelemetryBuilder {
            service_name: None,
            resource_attributes: Vec::new(),
            propagator: MeshPropagator::istio(),
            otlp: Some(OtlpConfig {
                protocol: Protocol::HttpProtobuf,
                endpoint: "http://localhost:4318/v1/traces".into(),
                headers: Vec::new(),
                timeout: DEFAULT_TIMEOUT,
            }),
            batch: BatchSettings::default(),
            sampler: SamplerConfig::ParentBased(RootSampler::AlwaysOn),
            log_filter: "info".into(),
            logs: true,
            disabled: false,
            shutdown_timeout: Duration::from_secs(5),
            hooks: Vec::new(),
        }
    }

    /// Configured from the process environment (see the [module](self) table).
    pub fn from_env() -> Result<Self, InitError> {
        Self::from_env_source(|var| std::env::var(var).ok())
    }

    /// Configured from `get`, which returns a variable's value: for tests and for
    /// configuration that comes from somewhere other than the process environment.
    /// An empty value counts as unset, as the OpenTelemetry specification says.
    ///
    /// opentelemetry-otlp still merges `OTEL_EXPORTER_OTLP_HEADERS` and the compression
    /// variables from the process environment into the exporter it builds, and the SDK reads
    /// `OTEL_BSP_EXPORT_TIMEOUT` and `OTEL_BSP_MAX_CONCURRENT_EXPORTS` from there.
    pub fn from_env_source(get: impl Fn(&str) -> Option<String>) -> Result<Self, InitError> {
        let get = |var: &str| get(var).filter(|v| !v.trim().is_empty());
        let mut b = Self::new();
        let bad = |var: &'static str, value: &str, error: EnvError| InitError::Env {
            var,
            value: value.to_owned(),
            error,
        };

        if let Some(v) = get("OTEL_SDK_DISABLED") {
            b.disabled = match v.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(bad("OTEL_SDK_DISABLED", &v, EnvError::NotABool)),
            };
        }
        b.service_name = get("OTEL_SERVICE_NAME").map(|v| v.trim().to_owned());
        if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
            b.resource_attributes =
                parse_key_values(&v).map_err(|e| bad("OTEL_RESOURCE_ATTRIBUTES", &v, e))?;
        }
        if let Some(v) = get("OTEL_PROPAGATORS") {
            let list: PropagatorList = v
                .parse()
                .map_err(|e: PropagatorsError| bad("OTEL_PROPAGATORS", &v, e.into()))?;
            b.propagator = list
                .into_builder()
                .build()
                .expect("the default pass-through names are valid");
        }
        if let Some(v) = get("RUST_LOG") {
            EnvFilter::try_new(&v)
                .map_err(|e| bad("RUST_LOG", &v, EnvError::Filter(e.to_string())))?;
            b.log_filter = v;
        }
        b.sampler = sampler_from(&get)?;
        b.otlp = otlp_from(&get)?;
        b.batch = batch_from(&get)?;
        Ok(b)
    }

    /// The resource's `service.name`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute (after those of `OTEL_RESOURCE_ATTRIBUTES`, so it wins).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource_attributes.push((key.into(), value.into()));
        self
    }

    /// The propagator registered globally.
    pub fn propagator(mut self, propagator: MeshPropagator) -> Self {
        self.propagator = propagator;
        self
    }

    /// Where spans are exported, or `None` for no OTLP export.
    pub fn otlp(mut self, otlp: Option<OtlpConfig>) -> Self {
        self.otlp = otlp;
        self
    }

    /// The batch processor's queue, delay and batch size.
    pub fn batch(mut self, batch: BatchSettings) -> Self {
        self.batch = batch;
        self
    }

    /// The batch settings configured.
    pub fn batch_settings(&self) -> BatchSettings {
        self.batch
    }

    /// The sampler.
    pub fn sampler(mut self, sampler: SamplerConfig) -> Self {
        self.sampler = sampler;
        self
    }

    /// Print logs with a fmt layer filtered by this `EnvFilter` directive (`RUST_LOG`'s
    /// syntax), or not at all with `None`.
    pub fn logs(mut self, filter: Option<&str>) -> Self {
        match filter {
            Some(f) => {
                self.logs = true;
                self.log_filter = f.to_owned();
            }
            None => self.logs = false,
        }
        self
    }

    /// How long the guard's shutdown may take, flushing included.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Also hand finished spans to `exporter` (through a batch processor), beside OTLP.
    pub fn with_span_exporter<E>(mut self, exporter: E) -> Self
    where
        E: opentelemetry_sdk::trace::SpanExporter + 'static,
    {
        self.hooks
            .push(Box::new(move |b| b.with_batch_exporter(exporter)));
        self
    }

    /// What is configured to be exported to, if anything.
    pub fn otlp_config(&self) -> Option<&OtlpConfig> {
        self.otlp.as_ref()
    }

    /// The sampler configured.
    pub fn sampler_config(&self) -> SamplerConfig {
        self.sampler
    }

    /// Builds the tracer provider, the exporter and the subscriber without installing
    /// anything globally. With gRPC export, call it inside a tokio runtime (tonic's channel
    /// lives on it).
    pub fn build(self) -> Result<Telemetry, InitError> {
        let filter = EnvFilter::try_new(&self.log_filter).map_err(|e| InitError::Env {
            var: "RUST_LOG",
            value: self.log_filter.clone(),
            error: EnvError::Filter(e.to_string()),
        })?;
        let fmt = self
            .logs
            .then(|| tracing_subscriber::fmt::layer().with_filter(filter));

        let provider = if self.disabled {
            None
        } else {
            let service_name = self.service_name.unwrap_or_else(default_service_name);
            let resource = Resource::builder_empty()
                .with_detector(Box::new(TelemetryResourceDetector))
                .with_attributes(
                    self.resource_attributes
                        .into_iter()
                        .map(|(k, v)| KeyValue::new(k, v)),
                )
                .with_service_name(service_name)
                .build();
            let mut builder = SdkTracerProvider::builder()
                .with_resource(resource)
                .with_sampler(self.sampler.sampler());
            // Extra exporters first: the SDK flushes processors one after another, so a
            // collector that hangs must not hold back the others.
            for hook in self.hooks {
                builder = hook(builder);
            }
            if let Some(otlp) = &self.otlp {
                let processor = BatchSpanProcessor::builder(otlp_exporter(otlp)?)
                    .with_batch_config(self.batch.config())
                    .build();
                builder = builder.with_span_processor(processor);
            }
            Some(builder.build())
        };
        // INFO and above: libraries such as hyper and h2 open TRACE-level spans of their own,
        // which would land in every trace.
        let otel = provider.as_ref().map(|p| {
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("meshtrace"))
                .with_filter(LevelFilter::INFO)
        });
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(fmt).with(otel));
        Ok(Telemetry {
            dispatch,
            provider,
            propagator: self.propagator,
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

impl Default for TelemetryBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn default_service_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    match exe {
        Some(exe) => format!("unknown_service:{exe}"),
        None => "unknown_service".into(),
    }
}

fn otlp_exporter(otlp: &OtlpConfig) -> Result<opentelemetry_otlp::SpanExporter, InitError> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match otlp.protocol {
        Protocol::Grpc => {
            // tonic would panic building its channel outside a runtime.
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(InitError::NoRuntime);
            }
            let mut metadata = tonic::metadata::MetadataMap::new();
            for (k, v) in &otlp.headers {
                if let (Ok(k), Ok(v)) = (
                    tonic::metadata::MetadataKey::from_bytes(k.as_bytes()),
                    tonic::metadata::MetadataValue::try_from(v.as_str()),
                ) {
                    metadata.insert(k, v);
                }
            }
            builder
                .with_tonic()
                .with_endpoint(otlp.endpoint.clone())
                .with_timeout(otlp.timeout)
                .with_metadata(metadata)
                .build()
        }
        Protocol::HttpProtobuf => builder
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(otlp.endpoint.clone())
            .with_timeout(otlp.timeout)
            .with_headers(otlp.headers.iter().cloned().collect::<HashMap<_, _>>())
            .build(),
    };
    Ok(exporter?)
}

fn sampler_from(get: &impl Fn(&str) -> Option<String>) -> Result<SamplerConfig, InitError> {
    const VAR: &str = "OTEL_TRACES_SAMPLER";
    const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
    let ratio = || -> Result<f64, InitError> {
        match get(ARG) {
            None => Ok(1.0),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(InitError::Env {
                    var: ARG,
                    value: v,
                    error: EnvError::Ratio,
                }),
            },
        }
    };
    let Some(v) = get(VAR) else {
        return Ok(SamplerConfig::ParentBased(RootSampler::AlwaysOn));
    };
    Ok(match v.trim().to_ascii_lowercase().as_str() {
        "always_on" => SamplerConfig::AlwaysOn,
        "always_off" => SamplerConfig::AlwaysOff,
        "traceidratio" => SamplerConfig::TraceIdRatio(ratio()?),
        "parentbased_always_on" => SamplerConfig::ParentBased(RootSampler::AlwaysOn),
        "parentbased_always_off" => SamplerConfig::ParentBased(RootSampler::AlwaysOff),
        "parentbased_traceidratio" => {
            SamplerConfig::ParentBased(RootSampler::TraceIdRatio(ratio()?))
        }
        _ => {
            return Err(InitError::Env {
                var: VAR,
                value: v,
                error: EnvError::Sampler,
            })
        }
    })
}

fn batch_from(get: &impl Fn(&str) -> Option<String>) -> Result<BatchSettings, InitError> {
    let positive = |var: &'static str| -> Result<Option<u64>, InitError> {
        match get(var) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(InitError::Env {
                    var,
                    value: v,
                    error: EnvError::Positive,
                }),
            },
        }
    };
    let mut batch = BatchSettings::default();
    if let Some(n) = positive("OTEL_BSP_MAX_QUEUE_SIZE")? {
        batch.max_queue_size = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(ms) = positive("OTEL_BSP_SCHEDULE_DELAY")? {
        batch.scheduled_delay = Duration::from_millis(ms);
    }
    if let Some(n) = positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
        batch.max_export_batch_size = usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok(batch)
}

fn otlp_from(get: &impl Fn(&str) -> Option<String>) -> Result<Option<OtlpConfig>, InitError> {
    let bad =
        |var: &'static str, value: String, error: EnvError| InitError::Env { var, value, error };
    // The traces-specific variable wins over the general one.
    let pick = |traces: &'static str, general: &'static str| {
        get(traces)
            .map(|v| (traces, v))
            .or_else(|| get(general).map(|v| (general, v)))
    };

    if let Some(v) = get("OTEL_TRACES_EXPORTER") {
        match v.trim().to_ascii_lowercase().as_str() {
            "otlp" => {}
            "none" => return Ok(None),
            _ => return Err(bad("OTEL_TRACES_EXPORTER", v, EnvError::Exporter)),
        }
    }
    let protocol = match pick(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ) {
        None => Protocol::HttpProtobuf,
        Some((var, v)) => match v.trim() {
            "grpc" => Protocol::Grpc,
            "http/protobuf" => Protocol::HttpProtobuf,
            _ => return Err(bad(var, v, EnvError::Protocol)),
        },
    };
    let endpoint = if let Some(v) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        check_url(&v).map_err(|e| bad("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v.clone(), e))?;
        v.trim().to_owned()
    } else if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        check_url(&v).map_err(|e| bad("OTEL_EXPORTER_OTLP_ENDPOINT", v.clone(), e))?;
        match protocol {
            Protocol::Grpc => v.trim().to_owned(),
            // The general endpoint is a base URL; the signal's path is appended (OTLP spec).
            Protocol::HttpProtobuf => format!("{}/v1/traces", v.trim().trim_end_matches('/')),
        }
    } else {
        match protocol {
            Protocol::Grpc => "http://localhost:4317".into(),
            Protocol::HttpProtobuf => "http://localhost:4318/v1/traces".into(),
        }
    };
    let headers = match pick(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ) {
        None => Vec::new(),
        Some((var, v)) => parse_key_values(&v).map_err(|e| bad(var, v.clone(), e))?,
    };
    let timeout = match pick(
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ) {
        None => DEFAULT_TIMEOUT,
        Some((var, v)) => Duration::from_millis(
            v.trim()
                .parse::<u64>()
                .map_err(|_| bad(var, v.clone(), EnvError::Millis))?,
        ),
    };
    Ok(Some(OtlpConfig {
        protocol,
        endpoint,
        headers,
        timeout,
    }))
}

fn check_url(v: &str) -> Result<(), EnvError> {
    let uri: http::Uri = v.trim().parse().map_err(|_| EnvError::Url)?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(()),
        _ => Err(EnvError::Url),
    }
}

/// `k=v,k2=v2` as OpenTelemetry's resource-attribute and header variables use it: entries
/// trimmed, values percent-decoded, empty entries skipped.
fn parse_key_values(v: &str) -> Result<Vec<(String, String)>, EnvError> {
    let mut out = Vec::new();
    for entry in v.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        match entry.split_once('=') {
            Some((k, val)) if !k.trim().is_empty() => {
                out.push((
                    k.trim().to_owned(),
                    crate::propagation::percent::decode(val.trim()),
                ));
            }
            _ => return Err(EnvError::KeyValue(entry.to_owned())),
        }
    }
    Ok(out)
}

/// Telemetry built by [`TelemetryBuilder::build`], not yet installed.
pub struct Telemetry {
    dispatch: Dispatch,
    provider: Option<SdkTracerProvider>,
    propagator: MeshPropagator,
    shutdown_timeout: Duration,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("provider", &self.provider)
            .field("propagator", &self.propagator)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// The subscriber, to install per thread (`tracing::dispatcher::set_default`) when
    /// several services with their own names share one process, as in the demo.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// The tracer provider (`None` when `OTEL_SDK_DISABLED=true`).
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// The propagator.
    pub fn propagator(&self) -> &MeshPropagator {
        &self.propagator
    }

    /// Installs the subscriber, the propagator ([`crate::set_global_propagator`]) and the
    /// tracer provider globally.
    pub fn install(self) -> Result<TelemetryGuard, InitError> {
        if tracing::dispatcher::set_global_default(self.dispatch.clone()).is_err() {
            // Shut the unused provider down within our timeout, not the SDK's default.
            let _ = self.into_guard().shutdown();
            return Err(InitError::SubscriberAlreadySet);
        }
        crate::set_global_propagator(self.propagator.clone());
        if let Some(provider) = &self.provider {
            opentelemetry::global::set_tracer_provider(provider.clone());
        }
        Ok(self.into_guard())
    }

    /// The guard alone, for telemetry used without installing it globally.
    pub fn into_guard(self) -> TelemetryGuard {
        TelemetryGuard {
            provider: self.provider,
            timeout: self.shutdown_timeout,
        }
    }
}

/// Flushes and shuts the exporter down when dropped, within the configured timeout.
#[derive(Debug)]
#[must_use = "dropping the guard shuts the exporter down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    timeout: Duration,
}

impl TelemetryGuard {
    /// Flushes what is queued and shuts down, within the configured timeout; says whether
    /// everything went out (an export the collector refused is an error here).
    pub fn shutdown(mut self) -> Result<(), OTelSdkError> {
        match self.provider.take() {
            Some(provider) => shutdown_within(provider, self.timeout),
            None => Ok(()),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = shutdown_within(provider, self.timeout) {
                // The subscriber may be gone by now; standard error is always there.
                eprintln!("meshtrace: telemetry shutdown: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn err(vars: &[(&str, &str)]) -> (String, String, EnvError) {
        match TelemetryBuilder::from_env_source(env(vars)) {
            Err(InitError::Env { var, value, error }) => (var.to_owned(), value, error),
            other => panic!("expected an env error for {vars:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let b = TelemetryBuilder::from_env_source(env(&[])).unwrap();
        assert_eq!(
            b.otlp_config().unwrap(),
            &OtlpConfig {
                protocol: Protocol::HttpProtobuf,
                endpoint: "http://localhost:4318/v1/traces".into(),
                headers: vec![],
                timeout: Duration::from_secs(10),
            }
        );
        assert_eq!(
            b.sampler_config(),
            SamplerConfig::ParentBased(RootSampler::AlwaysOn)
        );
        assert!(!b.disabled);
    }

    #[test]
    fn endpoints_protocols_headers_timeouts() {
        let b = TelemetryBuilder::from_env_source(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=s%3Dcret, x-tenant = blue ,",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]))
        .unwrap();
        let o = b.otlp_config().unwrap();
        assert_eq!(o.endpoint, "http://jaeger:4318/v1/traces");
        assert_eq!(
            o.headers,
            [
                ("api-key".into(), "s=cret".into()),
                ("x-tenant".into(), "blue".into())
            ]
        );
        assert_eq!(o.timeout, Duration::from_millis(2500));

        let b = TelemetryBuilder::from_env_source(env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "100"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "not used"),
        ]))
        .unwrap();
        let o = b.otlp_config().unwrap();
        assert_eq!(
            (o.protocol, o.endpoint.as_str()),
            (Protocol::Grpc, "http://collector:4317")
        );
        assert_eq!(o.timeout, Duration::from_millis(100));

        // The traces endpoint is used as given.
        let b = TelemetryBuilder::from_env_source(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://otlp.example.com/custom/path",
            ),
        ]))
        .unwrap();
        assert_eq!(
            b.otlp_config().unwrap().endpoint,
            "https://otlp.example.com/custom/path"
        );

        let b =
            TelemetryBuilder::from_env_source(env(&[("OTEL_TRACES_EXPORTER", "none")])).unwrap();
        assert_eq!(b.otlp_config(), None);
    }

    #[test]
    fn samplers() {
        for (name, arg, want) in [
            ("always_on", None, SamplerConfig::AlwaysOn),
            ("ALWAYS_OFF", None, SamplerConfig::AlwaysOff),
            (
                "traceidratio",
                Some("0.25"),
                SamplerConfig::TraceIdRatio(0.25),
            ),
            ("traceidratio", None, SamplerConfig::TraceIdRatio(1.0)),
            (
                "parentbased_always_off",
                None,
                SamplerConfig::ParentBased(RootSampler::AlwaysOff),
            ),
            (
                "parentbased_traceidratio",
                Some("0"),
                SamplerConfig::ParentBased(RootSampler::TraceIdRatio(0.0)),
            ),
        ] {
            let mut vars = vec![("OTEL_TRACES_SAMPLER", name)];
            if let Some(arg) = arg {
                vars.push(("OTEL_TRACES_SAMPLER_ARG", arg));
            }
            let b = TelemetryBuilder::from_env_source(env(&vars)).unwrap();
            assert_eq!(b.sampler_config(), want, "{name} {arg:?}");
        }
    }

    type Vars<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn every_bad_value_names_its_variable() {
        #[rustfmt::skip]
        let cases: &[(Vars, &str, EnvError)] = &[
            (&[("OTEL_SDK_DISABLED", "yes")], "OTEL_SDK_DISABLED", EnvError::NotABool),
            (&[("OTEL_RESOURCE_ATTRIBUTES", "team=a,oops")], "OTEL_RESOURCE_ATTRIBUTES", EnvError::KeyValue("oops".into())),
            (&[("OTEL_RESOURCE_ATTRIBUTES", "=x")], "OTEL_RESOURCE_ATTRIBUTES", EnvError::KeyValue("=x".into())),
            (&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")], "OTEL_EXPORTER_OTLP_PROTOCOL", EnvError::Protocol),
            (&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp")], "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", EnvError::Protocol),
            (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "jaeger:4317")], "OTEL_EXPORTER_OTLP_ENDPOINT", EnvError::Url),
            (&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x/")], "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", EnvError::Url),
            (&[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")], "OTEL_EXPORTER_OTLP_HEADERS", EnvError::KeyValue("novalue".into())),
            (&[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")], "OTEL_EXPORTER_OTLP_TIMEOUT", EnvError::Millis),
            (&[("OTEL_TRACES_SAMPLER", "jaeger_remote")], "OTEL_TRACES_SAMPLER", EnvError::Sampler),
            (&[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1.5")], "OTEL_TRACES_SAMPLER_ARG", EnvError::Ratio),
            (&[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "half")], "OTEL_TRACES_SAMPLER_ARG", EnvError::Ratio),
            (&[("OTEL_TRACES_EXPORTER", "zipkin")], "OTEL_TRACES_EXPORTER", EnvError::Exporter),
            (&[("OTEL_BSP_MAX_QUEUE_SIZE", "0")], "OTEL_BSP_MAX_QUEUE_SIZE", EnvError::Positive),
            (&[("OTEL_BSP_SCHEDULE_DELAY", "5s")], "OTEL_BSP_SCHEDULE_DELAY", EnvError::Positive),
            (&[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1")], "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", EnvError::Positive),
        ];
        for (vars, var, error) in cases {
            let (got_var, value, got) = err(vars);
            assert_eq!((got_var.as_str(), &got), (*var, error), "{vars:?}");
            let message = InitError::Env {
                var: "X",
                value: value.clone(),
                error: got,
            }
            .to_string();
            assert!(message.contains(&format!("{value:?}")), "{message}");
        }
        let (var, _, e) = err(&[("OTEL_PROPAGATORS", "tracecontext,xray")]);
        assert_eq!(var, "OTEL_PROPAGATORS");
        assert!(matches!(e, EnvError::Propagators(_)));
        let (var, _, e) = err(&[("RUST_LOG", "info,[[[")]);
        assert_eq!(var, "RUST_LOG");
        assert!(matches!(e, EnvError::Filter(_)));
    }

    #[test]
    fn resource_attributes_are_percent_decoded() {
        assert_eq!(
            parse_key_values("deployment.environment=prod,team=pay%2Cments, k = v ").unwrap(),
            [
                ("deployment.environment".into(), "prod".into()),
                ("team".into(), "pay,ments".into()),
                ("k".into(), "v".into()),
            ]
        );
    }

    #[test]
    fn grpc_outside_a_runtime_is_an_error_not_a_panic() {
        let b = TelemetryBuilder::from_env_source(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]))
            .unwrap();
        assert!(matches!(b.build(), Err(InitError::NoRuntime)));
    }

    #[test]
    fn disabled_sdk_builds_no_provider() {
        let t = TelemetryBuilder::from_env_source(env(&[("OTEL_SDK_DISABLED", "TRUE")]))
            .unwrap()
            .build()
            .unwrap();
        assert!(t.provider().is_none());
        t.into_guard().shutdown().unwrap();
    }
}
