//! OTLP log export (`OTEL_LOGS_EXPORTER=otlp`): every event the filter lets through becomes
//! a log record, through opentelemetry-appender-tracing's bridge and a batch processor.
//!
//! The records carry the trace context with no feature flag: the SDK's logger takes it from
//! the current OpenTelemetry context when the bridge emits, and tracing-opentelemetry makes a
//! span's context current while the span is entered (the same context the log lines' ids
//! come from). The bridge looks no further, so an event with an explicit parent (from a task
//! that is not in the request's span) would go without; [`ExplicitParent`] makes the parent's
//! context current around it, as the log lines look it up.

use super::Subscriber as Ids;
use crate::export::otlp::log_exporter;
use crate::export::{EnvError, InitError, OtlpConfig};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::Resource;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::Context;
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
/// syntax) without the [`EXPORTER_TARGETS`]; `ids` is to be set to the subscriber it goes
/// into.
pub(in crate::export) fn bridge<S>(
    provider: &SdkLoggerProvider,
    log_filter: &str,
    ids: Ids,
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
    Ok(ExplicitParent {
        bridge: OpenTelemetryTracingBridge::new(provider),
        ids,
    }
    .with_filter(filter))
}

/// The bridge, with an explicit parent's context current while it emits the event's record.
///
/// Only `on_event` is passed on: it is all the bridge implements (its span-attribute methods
/// are behind a feature this crate does not enable).
struct ExplicitParent<B> {
    bridge: B,
    ids: Ids,
}

impl<S, B> Layer<S> for ExplicitParent<B>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    B: Layer<S>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let parent = match event.parent() {
            Some(id) if !event.is_contextual() => self.ids.context_of(id),
            _ => None,
        };
        let _attached = parent.map(opentelemetry::Context::attach);
        self.bridge.on_event(event, ctx);
    }
}
