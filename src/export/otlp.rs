//! The OTLP exporter of each signal, built from its [`OtlpConfig`] the same way: one function
//! per transport for every signal's exporter builder.

use super::{InitError, OtlpConfig, Protocol};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use std::collections::HashMap;

/// The spans' exporter.
pub(super) fn span_exporter(
    otlp: &OtlpConfig,
) -> Result<opentelemetry_otlp::SpanExporter, InitError> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    Ok(match otlp.protocol {
        Protocol::Grpc => grpc(builder.with_tonic(), otlp)?.build(),
        Protocol::HttpProtobuf => http(builder.with_http(), otlp).build(),
    }?)
}

/// The request metrics' exporter.
pub(super) fn metric_exporter(
    otlp: &OtlpConfig,
) -> Result<opentelemetry_otlp::MetricExporter, InitError> {
    let builder = opentelemetry_otlp::MetricExporter::builder();
    Ok(match otlp.protocol {
        Protocol::Grpc => grpc(builder.with_tonic(), otlp)?.build(),
        Protocol::HttpProtobuf => http(builder.with_http(), otlp).build(),
    }?)
}

/// The log records' exporter.
pub(super) fn log_exporter(
    otlp: &OtlpConfig,
) -> Result<opentelemetry_otlp::LogExporter, InitError> {
    let builder = opentelemetry_otlp::LogExporter::builder();
    Ok(match otlp.protocol {
        Protocol::Grpc => grpc(builder.with_tonic(), otlp)?.build(),
        Protocol::HttpProtobuf => http(builder.with_http(), otlp).build(),
    }?)
}

fn grpc<B: WithExportConfig + WithTonicConfig>(
    builder: B,
    otlp: &OtlpConfig,
) -> Result<B, InitError> {
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
    Ok(builder
        .with_endpoint(otlp.endpoint.clone())
        .with_timeout(otlp.timeout)
        .with_metadata(metadata))
}

fn http<B: WithExportConfig + WithHttpConfig>(builder: B, otlp: &OtlpConfig) -> B {
    builder
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(otlp.endpoint.clone())
        .with_timeout(otlp.timeout)
        .with_headers(otlp.headers.iter().cloned().collect::<HashMap<_, _>>())
}
