//! OTLP log export (`OTEL_LOGS_EXPORTER=otlp`): every event the filter lets through becomes
//! a log record, through opentelemetry-appender-tracing's bridge and a batch processor.
//!
//! The records carry the trace context with no feature flag: the SDK's logger takes it from
//! the current OpenTelemetry context when the bridge emits, and tracing-opentelemetry makes a
//! span's context current while the span is entered (the same context the log lines' ids
//! come from).

use crate::export::otlp::log_exporter;
use crate::export::{EnvError, InitError, OtlpConfig};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The crates an export runs on (HTTP and gRPC clients, the SDK itself): their events are
/// never exported, or exporting one record would log events that are records to export, and
/// so on. Appended to the filter, so they win over `RUST_LOG`; the fmt layer still prints
/// them as `RUST_LOG` says.
pub(in crate::export) const EXPORTER_TARGETS: &str =
    "hyper=off,h2=off,tonic=off,tower=off,reqwest=off,opentelemetry=off";

/// The logger provider exporting to `otlp` through a batch processor (its settings from
/// `OTEL_BLRP_*`, as the SDK reads them).
pub(in crate::export) fn logger_provider(
    otlp: &OtlpConfig,
    resource: Resource,
) -> Result<SdkLoggerProvider, InitError> {
    Ok(SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(log_exporter(otlp)?)
        .build())
}

/// The bridge from events to `provider`'s records, filtered by `log_filter` (`RUST_LOG`'s
/// syntax) without the [`EXPORTER_TARGETS`].
pub(in crate::export) fn bridge<S>(
    provider: &SdkLoggerProvider,
    log_filter: &str,
) -> Result<impl Layer<S>, InitError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let directives = format!("{log_filter},{EXPORTER_TARGETS}");
    let filter = EnvFilter::try_new(&directives).map_err(|e| InitError::Env {
        var: "RUST_LOG",
        value: log_filter.to_owned(),
        error: EnvError::Filter(e.to_string()),
    })?;
    Ok(OpenTelemetryTracingBridge::new(provider).with_filter(filter))
}
