//! The receiver's logs service: OTLP/gRPC `LogsService/Export` beside the trace service, and
//! OTLP/HTTP `POST /v1/logs`, answered as the receiver's [`Mode`] says, like traces; every
//! stored `ResourceLogs` is read back flattened into [`ReceivedLog`]s.

use super::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;

/// The path of OTLP/HTTP log exports.
pub const LOGS_PATH: &str = "/v1/logs";

/// One received log record, flattened with its resource and scope. Ids are lowercase hex,
/// empty when the record has none.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedLog {
    pub service_name: String,
    /// The instrumentation scope: the event's target, as the tracing bridge sets it.
    pub scope_name: String,
    pub severity_text: String,
    pub body: Value,
    pub attributes: BTreeMap<String, Value>,
    pub trace_id: String,
    pub span_id: String,
}

/// `trace_svc` with the logs service beside it, on one gRPC server.
pub(super) fn grpc_with_logs<S>(trace_svc: S, shared: &Arc<Shared>) -> tonic::service::Routes
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    tonic::service::Routes::new(trace_svc).add_service(LogsServiceServer::from_arc(Arc::new(
        GrpcLogs(shared.clone()),
    )))
}

/// `router` with `POST /v1/logs`.
pub(super) fn http_with_logs(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router.route(LOGS_PATH, post(http_export_logs))
}

struct GrpcLogs(Arc<Shared>);

#[tonic::async_trait]
impl LogsService for GrpcLogs {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        if self.0.verdict().await != Outcome::Stored {
            return Err(tonic::Status::unavailable("test receiver refuses exports"));
        }
        let resource_logs = request.into_inner().resource_logs;
        self.0.store().resource_logs.extend(resource_logs);
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

async fn http_export_logs(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    http_accept::<ExportLogsServiceRequest, ExportLogsServiceResponse>(
        &shared,
        &headers,
        body,
        |r| shared.store().resource_logs.extend(r.resource_logs),
    )
    .await
}

impl Receiver {
    /// Every stored log record, flattened, in the order received.
    pub fn logs(&self) -> Vec<ReceivedLog> {
        flatten_logs(&self.shared.store().resource_logs)
    }

    /// `http://127.0.0.1:PORT/v1/logs`: the full OTLP/HTTP logs URL.
    pub fn logs_url(&self) -> String {
        format!("{}{LOGS_PATH}", self.endpoint())
    }
}

fn flatten_logs(resource_logs: &[ResourceLogs]) -> Vec<ReceivedLog> {
    let mut out = Vec::new();
    for rl in resource_logs {
        let (_, service_name) = resource_of(rl.resource.as_ref());
        for sl in &rl.scope_logs {
            let scope_name = sl
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for record in &sl.log_records {
                out.push(ReceivedLog {
                    service_name: service_name.clone(),
                    scope_name: scope_name.clone(),
                    severity_text: record.severity_text.clone(),
                    body: Value::from_proto(record.body.as_ref()),
                    attributes: attribute_map(&record.attributes),
                    trace_id: hex(&record.trace_id),
                    span_id: hex(&record.span_id),
                });
            }
        }
    }
    out
}
