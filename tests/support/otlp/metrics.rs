//! The receiver's metrics service: OTLP/gRPC `MetricsService/Export` and OTLP/HTTP
//! `POST /v1/metrics` (protobuf). Metrics exports are always stored and answered with success
//! (the fault modes are for traces); [`Receiver::metrics`] reads the histograms back.

use super::*;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::{metric, ResourceMetrics};

/// The path of OTLP/HTTP metrics exports.
pub const METRICS_PATH: &str = "/v1/metrics";

/// One histogram data point as received: its attributes (values as strings) and count.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedPoint {
    pub attrs: BTreeMap<String, String>,
    pub count: u64,
    pub bounds: Vec<f64>,
}

/// A histogram as the last export of a service carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedHistogram {
    /// The exporting service's `service.name`.
    pub service: String,
    pub name: String,
    pub unit: String,
    pub points: Vec<ReceivedPoint>,
}

impl ReceivedHistogram {
    /// The number of requests the points whose attributes include every `with` counted.
    pub fn count(&self, with: &[(&str, &str)]) -> u64 {
        self.points
            .iter()
            .filter(|p| {
                with.iter()
                    .all(|(k, v)| p.attrs.get(*k).map(String::as_str) == Some(v))
            })
            .map(|p| p.count)
            .sum()
    }
}

pub(super) fn grpc_service(shared: Arc<Shared>) -> MetricsServiceServer<GrpcMetrics> {
    MetricsServiceServer::new(GrpcMetrics(shared))
}

pub(super) struct GrpcMetrics(Arc<Shared>);

#[tonic::async_trait]
impl MetricsService for GrpcMetrics {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0
            .store()
            .resource_metrics
            .extend(request.into_inner().resource_metrics);
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

pub(super) async fn http_export_metrics(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Response {
    match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => {
            shared
                .store()
                .resource_metrics
                .extend(request.resource_metrics);
            let response = ExportMetricsServiceResponse {
                partial_success: None,
            };
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                response.encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

impl Receiver {
    /// Every metrics export received, as sent.
    pub fn resource_metrics(&self) -> Vec<ResourceMetrics> {
        self.shared.store().resource_metrics.clone()
    }

    /// Histogram `name` of service `service` as its last export carried it (exports are
    /// cumulative), if any arrived.
    pub fn histogram(&self, service: &str, name: &str) -> Option<ReceivedHistogram> {
        let mut last = None;
        for rm in self.resource_metrics() {
            let from = rm
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .map(value_text)
                .unwrap_or_default();
            if from != service {
                continue;
            }
            for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
                let (true, Some(metric::Data::Histogram(h))) = (m.name == name, &m.data) else {
                    continue;
                };
                last = Some(ReceivedHistogram {
                    service: from.clone(),
                    name: m.name.clone(),
                    unit: m.unit.clone(),
                    points: h
                        .data_points
                        .iter()
                        .map(|p| ReceivedPoint {
                            attrs: p
                                .attributes
                                .iter()
                                .map(|kv| {
                                    (
                                        kv.key.clone(),
                                        kv.value.as_ref().map(value_text).unwrap_or_default(),
                                    )
                                })
                                .collect(),
                            count: p.count,
                            bounds: p.explicit_bounds.clone(),
                        })
                        .collect(),
                });
            }
        }
        last
    }
}

/// An attribute value as text: strings as they are, numbers and booleans written out.
fn value_text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}
