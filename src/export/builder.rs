//! [`TelemetryBuilder`] and what it configures: the OTLP exporter, the batch processor, the
//! sampler, the resource and the subscriber it builds from them.

use super::logs::{self, LogOutput, Subscriber};
use super::otlp;
use super::{EnvError, InitError, LogFormat, MetricsExporter, Telemetry};
use crate::{MeshPropagator, MeshSampler};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::resource::{Resource, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{
    BatchConfig, BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, ShouldSample,
    TracerProviderBuilder,
};
use std::fmt;
use std::time::Duration;
use tracing::Dispatch;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP/gRPC (port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318).
    HttpProtobuf,
}

/// Where and how spans (or log records) are exported. Start from [`OtlpConfig::new`] and set
/// the fields you need; more will come (compression, other signals), so it cannot be built as
/// a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// The transport.
    pub protocol: Protocol,
    /// The URL export requests go to (for HTTP, including the signal's path: `/v1/traces`,
    /// `/v1/logs`).
    pub endpoint: String,
    /// Headers (gRPC metadata) sent with every export, such as an API key.
    pub headers: Vec<(String, String)>,
    /// How long one export may take.
    pub timeout: Duration,
}

impl OtlpConfig {
    /// Export to `endpoint` over `protocol`, with no extra headers and the default timeout of
    /// 10 s (`OTEL_EXPORTER_OTLP_TIMEOUT`'s default).
    ///
    /// ```
    /// use meshtrace::export::{OtlpConfig, Protocol};
    /// let mut otlp = OtlpConfig::new(Protocol::Grpc, "http://jaeger:4317");
    /// otlp.headers.push(("x-api-key".into(), "secret".into()));
    /// assert_eq!(otlp.timeout, std::time::Duration::from_secs(10));
    /// ```
    pub fn new(protocol: Protocol, endpoint: impl Into<String>) -> Self {
        OtlpConfig {
            protocol,
            endpoint: endpoint.into(),
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The sampler, as `OTEL_TRACES_SAMPLER` names it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
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
#[non_exhaustive]
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

/// The batch processor in front of the OTLP exporter. Start from
/// [`BatchSettings::default`] and set the fields you need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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

/// tracing-opentelemetry's extras, each a set of attributes on every span. A mesh service
/// rarely needs them (the code location of meshtrace's own spans is always the same file), and
/// each costs work and bytes on every span, so all are off unless switched on here or with
/// `MESHTRACE_SPAN_EXTRAS` (`code_location`, `threads`, `busy_idle`, `all` or `none`,
/// comma-separated).
///
/// ```
/// use meshtrace::export::{SpanExtras, TelemetryBuilder};
/// let builder = TelemetryBuilder::new().span_extras(SpanExtras {
///     code_location: true,
///     ..SpanExtras::NONE
/// });
/// assert!(builder.span_extras_config().code_location);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpanExtras {
    /// `code.file.path`, `code.line.number` and `code.module.name`: where the span was opened.
    pub code_location: bool,
    /// `thread.id` and `thread.name` of the thread that opened the span.
    pub threads: bool,
    /// `busy_ns` and `idle_ns`: how long the span was entered and not (tracked on every enter
    /// and exit).
    pub busy_idle: bool,
}

impl SpanExtras {
    /// None of them (the default).
    pub const NONE: SpanExtras = SpanExtras {
        code_location: false,
        threads: false,
        busy_idle: false,
    };
    /// All of them, as tracing-opentelemetry's own defaults have it.
    pub const ALL: SpanExtras = SpanExtras {
        code_location: true,
        threads: true,
        busy_idle: true,
    };
}

/// Builds the telemetry [`init`](crate::init) installs; start from
/// [`from_env`](Self::from_env) or [`new`](Self::new) and override what you need.
///
/// ```no_run
/// use meshtrace::export::{OtlpConfig, Protocol, TelemetryBuilder};
/// # fn run() -> Result<(), meshtrace::export::InitError> {
/// let mut otlp = OtlpConfig::new(Protocol::Grpc, "http://jaeger:4317");
/// otlp.timeout = std::time::Duration::from_secs(5);
/// let _guard = TelemetryBuilder::from_env()?
///     .service_name("reviews")
///     .otlp(Some(otlp))
///     .build()?
///     .install()?;
/// # Ok(()) }
/// ```
pub struct TelemetryBuilder {
    pub(super) service_name: Option<String>,
    pub(super) resource_attributes: Vec<(String, String)>,
    pub(super) propagator: MeshPropagator,
    pub(super) otlp: Option<OtlpConfig>,
    pub(super) otlp_logs: Option<OtlpConfig>,
    pub(super) batch: BatchSettings,
    pub(super) sampler: SamplerConfig,
    pub(super) log_filter: String,
    pub(super) logs: bool,
    pub(super) log_format: LogFormat,
    pub(super) log_output: Option<LogOutput>,
    pub(super) disabled: bool,
    pub(super) shutdown_timeout: Duration,
    pub(super) hooks: Vec<ProviderHook>,
    pub(super) span_extras: SpanExtras,
    pub(super) metrics: Option<MetricsExporter>,
    pub(super) metric_interval: Duration,
    pub(super) metric_hooks: Vec<super::metrics::ReaderHook>,
}

impl fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("service_name", &self.service_name)
            .field("resource_attributes", &self.resource_attributes)
            .field("propagator", &self.propagator)
            .field("otlp", &self.otlp)
            .field("otlp_logs", &self.otlp_logs)
            .field("batch", &self.batch)
            .field("sampler", &self.sampler)
            .field("log_filter", &self.log_filter)
            .field("logs", &self.logs)
            .field("log_format", &self.log_format)
            .field(
                "log_output",
                &if self.log_output.is_some() {
                    "writer"
                } else {
                    "stdout"
                },
            )
            .field("disabled", &self.disabled)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("extra_exporters", &self.hooks.len())
            .field("span_extras", &self.span_extras)
            .field("metrics", &self.metrics)
            .field("metric_interval", &self.metric_interval)
            .field("extra_metric_exporters", &self.metric_hooks.len())
            .finish()
    }
}

pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// `OTEL_METRIC_EXPORT_INTERVAL`'s default.
pub(super) const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(60);

impl TelemetryBuilder {
    /// The defaults, ignoring the environment: the Istio propagator, OTLP/HTTP to
    /// `http://localhost:4318/v1/traces`, parent-based sampling of everything, logs at `info`,
    /// no [`SpanExtras`], no metrics export.
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
            otlp_logs: None,
            batch: BatchSettings::default(),
            sampler: SamplerConfig::ParentBased(RootSampler::AlwaysOn),
            log_filter: "info".into(),
            logs: true,
            log_format: LogFormat::Text,
            log_output: None,
            disabled: false,
            shutdown_timeout: Duration::from_secs(5),
            hooks: Vec::new(),
            span_extras: SpanExtras::NONE,
            metrics: None,
            metric_interval: DEFAULT_METRIC_INTERVAL,
            metric_hooks: Vec::new(),
        }
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

    /// Where log records are exported (`OTEL_LOGS_EXPORTER=otlp`), or `None` (the default)
    /// for no export: every event the log filter lets through, except those of the crates the
    /// exporters run on (hyper, h2, tonic, tower, reqwest, opentelemetry), with the trace
    /// context of the span it happened in.
    ///
    /// ```
    /// use meshtrace::export::{OtlpConfig, Protocol, TelemetryBuilder};
    /// let builder = TelemetryBuilder::new().otlp_logs(Some(OtlpConfig::new(
    ///     Protocol::HttpProtobuf,
    ///     "http://collector:4318/v1/logs",
    /// )));
    /// assert!(builder.otlp_logs_config().is_some());
    /// ```
    pub fn otlp_logs(mut self, otlp: Option<OtlpConfig>) -> Self {
        self.otlp_logs = otlp;
        self
    }

    /// Where log records are configured to be exported to, if anywhere.
    pub fn otlp_logs_config(&self) -> Option<&OtlpConfig> {
        self.otlp_logs.as_ref()
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

    /// How log lines are written (`MESHTRACE_LOG_FORMAT`): text, or one JSON object per
    /// line. Either way a line inside a request carries `trace_id`, `span_id` and
    /// `x_request_id` (see [`LogFormat`]).
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    /// The log format configured.
    pub fn log_format_config(&self) -> LogFormat {
        self.log_format
    }

    /// Write log lines to `writer` instead of standard output, without colours: a file, a
    /// non-blocking writer, or a buffer in a test.
    ///
    /// ```
    /// use meshtrace::export::TelemetryBuilder;
    /// let builder = TelemetryBuilder::new().log_writer(std::io::stderr);
    /// # drop(builder);
    /// ```
    pub fn log_writer<W>(mut self, writer: W) -> Self
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.log_output = Some(LogOutput::writer(writer));
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

    /// Which of tracing-opentelemetry's per-span extras every span carries (none by default).
    pub fn span_extras(mut self, extras: SpanExtras) -> Self {
        self.span_extras = extras;
        self
    }

    /// The span extras configured.
    pub fn span_extras_config(&self) -> SpanExtras {
        self.span_extras
    }

    /// Where the layers' request metrics go, or `None` for no meter provider at all (the
    /// layers' instruments are then no-ops, costing next to nothing).
    pub fn metrics(mut self, exporter: Option<MetricsExporter>) -> Self {
        self.metrics = exporter;
        self
    }

    /// How often metrics are pushed over OTLP (60 s by default, as
    /// `OTEL_METRIC_EXPORT_INTERVAL`'s).
    pub fn metric_export_interval(mut self, interval: Duration) -> Self {
        self.metric_interval = interval;
        self
    }

    /// Also hand the request metrics to `exporter` every export interval and at shutdown,
    /// beside the configured exporter (also when that is `None`).
    pub fn with_metric_exporter<E>(mut self, exporter: E) -> Self
    where
        E: opentelemetry_sdk::metrics::exporter::PushMetricExporter + 'static,
    {
        self.metric_hooks.push(Box::new(move |b, interval| {
            b.with_reader(
                opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
                    .with_interval(interval)
                    .build(),
            )
        }));
        self
    }

    /// The metrics exporter and export interval configured.
    pub fn metrics_config(&self) -> (Option<&MetricsExporter>, Duration) {
        (self.metrics.as_ref(), self.metric_interval)
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
        let subscriber = Subscriber::default();
        let fmt = self.logs.then(|| {
            self.log_output.unwrap_or_else(LogOutput::stdout).layer(
                self.log_format,
                filter,
                subscriber.clone(),
            )
        });

        let resource = (!self.disabled).then(|| {
            let service_name = self.service_name.unwrap_or_else(default_service_name);
            Resource::builder_empty()
                .with_detector(Box::new(TelemetryResourceDetector))
                .with_attributes(
                    self.resource_attributes
                        .into_iter()
                        .map(|(k, v)| KeyValue::new(k, v)),
                )
                .with_service_name(service_name)
                .build()
        });
        let provider = match &resource {
            None => None,
            Some(resource) => {
                let mut builder = SdkTracerProvider::builder()
                    .with_resource(resource.clone())
                    .with_sampler(self.sampler.sampler());
                // Extra exporters first: the SDK flushes processors one after another, so a
                // collector that hangs must not hold back the others.
                for hook in self.hooks {
                    builder = hook(builder);
                }
                if let Some(otlp) = &self.otlp {
                    let processor = BatchSpanProcessor::builder(otlp::span_exporter(otlp)?)
                        .with_batch_config(self.batch.config())
                        .build();
                    builder = builder.with_span_processor(processor);
                }
                Some(builder.build())
            }
        };
        let logger_provider = match (&resource, &self.otlp_logs) {
            (Some(resource), Some(otlp)) => Some(logs::logger_provider(otlp, resource.clone())?),
            _ => None,
        };
        let meters = match resource {
            None => None,
            Some(resource) => super::metrics::build(
                self.metrics.as_ref(),
                self.metric_hooks,
                self.metric_interval,
                resource,
            )?,
        };
        // INFO and above: libraries such as hyper and h2 open TRACE-level spans of their own,
        // which would land in every trace.
        let otel = provider.as_ref().map(|p| {
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("meshtrace"))
                .with_location(self.span_extras.code_location)
                .with_threads(self.span_extras.threads)
                .with_tracked_inactivity(self.span_extras.busy_idle)
                .with_filter(LevelFilter::INFO)
        });
        let otel_logs = logger_provider
            .as_ref()
            .map(|p| logs::bridge(p, &self.log_filter, subscriber.clone()))
            .transpose()?;
        let dispatch = Dispatch::new(
            tracing_subscriber::registry()
                .with(fmt)
                .with(otel)
                .with(otel_logs),
        );
        subscriber.set(&dispatch);
        Ok(Telemetry {
            dispatch,
            provider,
            meters,
            logger_provider,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::env::tests::env;

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
