//! The meter provider [`init`](crate::init) builds for the layers' request metrics: exported
//! over OTLP every interval, or scraped by Prometheus (feature `prometheus`).

use super::{InitError, OtlpConfig};
use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use std::time::Duration;

/// Where request metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricsExporter {
    /// Pushed over OTLP every export interval (`OTEL_METRIC_EXPORT_INTERVAL`).
    Otlp(OtlpConfig),
    /// Served for Prometheus to scrape (`GET /metrics`), as Istio's metrics merging expects.
    #[cfg(feature = "prometheus")]
    Prometheus(PrometheusConfig),
}

/// Where the Prometheus scrape endpoint listens: `OTEL_EXPORTER_PROMETHEUS_HOST` and
/// `OTEL_EXPORTER_PROMETHEUS_PORT`, `localhost:9464` by default. Istio's metrics merging
/// (`prometheus.io/port` and `prometheus.io/path` annotations) scrapes the app from inside the
/// pod, so `localhost` is enough there and keeps the endpoint off the pod's network.
#[cfg(feature = "prometheus")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrometheusConfig {
    /// The host (name or address) to listen on.
    pub host: String,
    /// The port; 0 picks a free one ([`Telemetry::prometheus_addr`](super::Telemetry::prometheus_addr) says which).
    pub port: u16,
}

#[cfg(feature = "prometheus")]
impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            host: "localhost".into(),
            port: 9464,
        }
    }
}

/// What [`build`] made: the provider, and the scrape endpoint when there is one.
pub(super) struct Built {
    pub(super) provider: SdkMeterProvider,
    #[cfg(feature = "prometheus")]
    pub(super) prometheus: Option<super::prometheus::ScrapeEndpoint>,
}

/// An extra reader added by [`TelemetryBuilder::with_metric_exporter`](super::TelemetryBuilder::with_metric_exporter).
pub(super) type ReaderHook =
    Box<dyn FnOnce(MeterProviderBuilder, Duration) -> MeterProviderBuilder>;

/// The meter provider exporting through `exporter` (if any) and the `hooks`' exporters, with
/// the traces' resource; `None` when there is nothing to export to.
pub(super) fn build(
    exporter: Option<&MetricsExporter>,
    hooks: Vec<ReaderHook>,
    interval: Duration,
    resource: Resource,
) -> Result<Option<Built>, InitError> {
    if exporter.is_none() && hooks.is_empty() {
        return Ok(None);
    }
    let mut builder = SdkMeterProvider::builder().with_resource(resource);
    for hook in hooks {
        builder = hook(builder, interval);
    }
    match exporter {
        None => Ok(Some(Built {
            provider: builder.build(),
            #[cfg(feature = "prometheus")]
            prometheus: None,
        })),
        Some(MetricsExporter::Otlp(otlp)) => {
            let reader = PeriodicReader::builder(super::otlp::metric_exporter(otlp)?)
                .with_interval(interval)
                .build();
            Ok(Some(Built {
                provider: builder.with_reader(reader).build(),
                #[cfg(feature = "prometheus")]
                prometheus: None,
            }))
        }
        #[cfg(feature = "prometheus")]
        Some(MetricsExporter::Prometheus(config)) => {
            let (reader, endpoint) = super::prometheus::start(config)?;
            Ok(Some(Built {
                provider: builder.with_reader(reader).build(),
                prometheus: Some(endpoint),
            }))
        }
    }
}
