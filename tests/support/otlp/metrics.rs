//! The receiver's metrics service: OTLP/gRPC `MetricsService/Export` and OTLP/HTTP
//! `POST /v1/metrics` (protobuf), answered as the receiver's [`Mode`] says, like traces;
//! [`Receiver::histogram`] reads the histograms back.

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
        if self.0.verdict().await != Outcome::Stored {
            return Err(tonic::Status::unavailable("test receiver refuses exports"));
        }
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
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    http_accept::<ExportMetricsServiceRequest, ExportMetricsServiceResponse>(
        &shared,
        &headers,
        body,
        |r| shared.store().resource_metrics.extend(r.resource_metrics),
    )
    .await
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
            let (_, from) = resource_of(rm.resource.as_ref());
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
                            attrs: attribute_map(&p.attributes)
                                .into_iter()
                                .map(|(k, v)| (k, v.to_string()))
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
