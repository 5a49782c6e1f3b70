//! One-call setup: the global propagator, a `tracing` subscriber (a fmt layer for logs whose
//! lines carry `trace_id`, `span_id` and `x_request_id` inside a request, and the
//! OpenTelemetry layer for spans), an OTLP exporter behind a batch processor (spans; log
//! records too when asked), and, when asked for, the meter provider of the layers' request
//! metrics, configured by OpenTelemetry's environment variables.
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
//! | `OTEL_LOGS_EXPORTER` | `otlp`: export every log event the filter lets through as an OTLP log record, with its trace context; `none` | `none` (the specification says `otlp`; the lines already go to standard output) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `..._TRACES_PROTOCOL`, `..._LOGS_PROTOCOL` | `grpc` or `http/protobuf` | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | collector base URL (`/v1/traces` and `/v1/logs` are appended for HTTP) | `http://localhost:4318` (HTTP), `http://localhost:4317` (gRPC) |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._LOGS_ENDPOINT` | the full traces (logs) URL, used as given | |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `..._TRACES_HEADERS`, `..._LOGS_HEADERS` | `k=v,k2=v2` sent with every export | none |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `..._TRACES_TIMEOUT`, `..._LOGS_TIMEOUT` | milliseconds per export | `10000` |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_*` | `parentbased_always_on` |
//! | `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | the batch processor: spans queued at most (more are dropped, so memory stays bounded when the collector is down), milliseconds between exports, spans per export | `2048`, `5000`, `512` |
//! | `RUST_LOG` | what the fmt layer prints and the log export sends (`tracing-subscriber`'s `EnvFilter`; the crates an export runs on, hyper, h2, tonic, tower, reqwest and opentelemetry, are never exported) | `info` |
//! | `MESHTRACE_LOG_FORMAT` | `text` (tracing-subscriber's line, the ids at its end) or `json` (one object per line), see [`LogFormat`] | `text` |
//! | `MESHTRACE_SPAN_EXTRAS` | tracing-opentelemetry's per-span extras ([`SpanExtras`]): `code_location`, `threads`, `busy_idle`, `all`, `none` | `none` |
//! | `OTEL_METRICS_EXPORTER` | the layers' request metrics ([`MetricsExporter`]): `otlp`, `prometheus` (feature `prometheus`) or `none` | `none`: a mesh's trace backend (Jaeger) takes no metrics |
//! | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `..._METRICS_PROTOCOL`, `..._METRICS_HEADERS`, `..._METRICS_TIMEOUT` | the metrics' OTLP exporter, as for traces (`/v1/metrics` appended to the general endpoint for HTTP) | the general `OTEL_EXPORTER_OTLP_*` |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | milliseconds between OTLP metric exports | `60000` |
//! | `OTEL_EXPORTER_PROMETHEUS_HOST`, `OTEL_EXPORTER_PROMETHEUS_PORT` | the scrape endpoint (`GET /metrics`) | `localhost`, `9464` |
//! | `OTEL_INSTRUMENTATION_HTTP_{SERVER,CLIENT}_CAPTURE_{REQUEST,RESPONSE}_HEADERS` | header names the layers record on spans (read by the layers; checked here) | none |
//!
//! The specific `_TRACES_` and `_LOGS_` variables win over the general ones, each for its own
//! signal. `OTEL_BLRP_*` (the log batch processor) are read by the SDK itself.
//!
//! The `parentbased_*` samplers are [`MeshSampler`]s: a B3 parent that left the decision open
//! is decided by the root sampler instead of being dropped. A bad value in any variable is an
//! [`InitError`] naming the variable, never a panic.
//!
//! [`MeshSampler`]: crate::MeshSampler

use crate::MeshPropagator;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::fmt;
use std::time::Duration;
use tracing::Dispatch;

mod builder;
mod env;
mod logs;
mod metrics;
mod otlp;
#[cfg(feature = "prometheus")]
mod prometheus;
mod shutdown;
mod signal;

pub use builder::{
    BatchSettings, OtlpConfig, Protocol, RootSampler, SamplerConfig, SpanExtras, TelemetryBuilder,
};
pub use env::EnvError;
pub use logs::LogFormat;
pub use metrics::MetricsExporter;
#[cfg(feature = "prometheus")]
pub use metrics::PrometheusConfig;
pub use signal::shutdown_signal;

use opentelemetry_sdk::metrics::SdkMeterProvider;
use shutdown::{shutdown_within, Provider};

/// Sets everything up from the environment and installs it globally: the propagator, the
/// subscriber, the exporter. Keep the returned guard alive; dropping it flushes and shuts
/// the exporter down within [`TelemetryBuilder::shutdown_timeout`] (5 s by default), also
/// when the collector is unreachable.
pub fn init() -> Result<TelemetryGuard, InitError> {
    TelemetryBuilder::from_env()?.build()?.install()
}

/// Why [`init`] or [`TelemetryBuilder`] could not set up telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The Prometheus scrape endpoint could not listen.
    #[cfg(feature = "prometheus")]
    #[error("Prometheus scrape endpoint on {addr}: {error}")]
    Prometheus {
        /// Where it tried to listen.
        addr: String,
        /// Why it could not.
        error: std::io::Error,
    },
    /// A global `tracing` subscriber was installed before.
    #[error("a global tracing subscriber is already installed")]
    SubscriberAlreadySet,
    /// OTLP over gRPC was asked for outside a tokio runtime (tonic's channel lives on one).
    #[error("OTLP over gRPC needs a tokio runtime: call this inside one (#[tokio::main]), or use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")]
    NoRuntime,
}

/// Telemetry built by [`TelemetryBuilder::build`], not yet installed.
pub struct Telemetry {
    dispatch: Dispatch,
    provider: Option<SdkTracerProvider>,
    meters: Option<metrics::Built>,
    logger_provider: Option<SdkLoggerProvider>,
    propagator: MeshPropagator,
    shutdown_timeout: Duration,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("provider", &self.provider)
            .field("meter_provider", &self.meter_provider())
            .field("logger_provider", &self.logger_provider)
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

    /// The logger provider behind the OTLP log export (`None` unless `OTEL_LOGS_EXPORTER=otlp`
    /// or [`TelemetryBuilder::otlp_logs`] asked for it, and the SDK is enabled).
    pub fn logger_provider(&self) -> Option<&SdkLoggerProvider> {
        self.logger_provider.as_ref()
    }

    /// The propagator.
    pub fn propagator(&self) -> &MeshPropagator {
        &self.propagator
    }

    /// The meter provider of the request metrics (`None` when `OTEL_SDK_DISABLED=true` or
    /// `OTEL_METRICS_EXPORTER=none`).
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.meters.as_ref().map(|m| &m.provider)
    }

    /// Where the Prometheus scrape endpoint listens, when `OTEL_METRICS_EXPORTER=prometheus`.
    #[cfg(feature = "prometheus")]
    pub fn prometheus_addr(&self) -> Option<std::net::SocketAddr> {
        self.meters
            .as_ref()
            .and_then(|m| m.prometheus.as_ref())
            .map(|p| p.addr())
    }

    /// Installs the subscriber, the propagator ([`crate::set_global_propagator`]), the
    /// tracer provider and the meter provider globally.
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
        if let Some(meters) = self.meter_provider() {
            opentelemetry::global::set_meter_provider(meters.clone());
        }
        Ok(self.into_guard())
    }

    /// The guard alone, for telemetry used without installing it globally.
    pub fn into_guard(self) -> TelemetryGuard {
        let mut providers: Vec<Box<dyn Provider>> = Vec::new();
        if let Some(provider) = self.provider {
            providers.push(Box::new(provider));
        }
        #[cfg(feature = "prometheus")]
        let mut scrape = None;
        if let Some(meters) = self.meters {
            providers.push(Box::new(meters.provider));
            #[cfg(feature = "prometheus")]
            {
                scrape = meters.prometheus;
            }
        }
        if let Some(provider) = self.logger_provider {
            providers.push(Box::new(provider));
        }
        TelemetryGuard {
            providers,
            timeout: self.shutdown_timeout,
            #[cfg(feature = "prometheus")]
            _scrape: scrape,
        }
    }
}

/// Flushes and shuts the exporters down when dropped (spans, metrics and log records, each on
/// its own), within the configured timeout.
#[must_use = "dropping the guard shuts the exporter down"]
pub struct TelemetryGuard {
    providers: Vec<Box<dyn Provider>>,
    timeout: Duration,
    /// Stops serving scrapes when the guard goes, after the last flush.
    #[cfg(feature = "prometheus")]
    _scrape: Option<prometheus::ScrapeEndpoint>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("providers", &self.providers.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// Flushes what is queued and shuts down, spans, metrics and log records at once, within the
    /// configured timeout; says whether everything went out (an export the collector refused
    /// is an error here).
    pub fn shutdown(mut self) -> Result<(), OTelSdkError> {
        shutdown_within(std::mem::take(&mut self.providers), self.timeout)
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if self.providers.is_empty() {
            return;
        }
        if let Err(e) = shutdown_within(std::mem::take(&mut self.providers), self.timeout) {
            // The subscriber may be gone by now; standard error is always there.
            eprintln!("meshtrace: telemetry shutdown: {e}");
        }
    }
}
