//! What the receiver keeps, and its gRPC and HTTP export handlers.

use super::*;

/// What the handlers watch: the mode, and a stop counter whose change releases held requests.
#[derive(Clone, Copy, Debug)]
pub(super) struct Control {
    pub(super) mode: Mode,
    pub(super) stops: u64,
}

#[derive(Default)]
pub(super) struct Store {
    pub(super) resource_spans: Vec<ResourceSpans>,
    pub(super) resource_metrics: Vec<opentelemetry_proto::tonic::metrics::v1::ResourceMetrics>,
    pub(super) resource_logs: Vec<opentelemetry_proto::tonic::logs::v1::ResourceLogs>,
    pub(super) requests: Vec<ExportRequest>,
}

pub(super) struct Shared {
    pub(super) store: Mutex<Store>,
    pub(super) control: watch::Sender<Control>,
    pub(super) held: AtomicUsize,
}

/// Counts a held request for as long as it is held, even if its task is dropped.
pub(super) struct HeldGuard<'a>(pub(super) &'a AtomicUsize);

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    pub(super) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the mode makes of an export arriving now, any signal's: stored, refused, or held
    /// until the mode changes or the receiver stops, then released.
    pub(super) async fn verdict(&self) -> Outcome {
        let mut control = self.control.subscribe();
        let mode = control.borrow_and_update().mode;
        match mode {
            Mode::Healthy => Outcome::Stored,
            Mode::Error => Outcome::Refused,
            Mode::Hang => {
                self.held.fetch_add(1, Ordering::SeqCst);
                let _held = HeldGuard(&self.held);
                // Any change (another mode, or a stop) releases the request; so does the
                // receiver going away (the sender dropped).
                let _ = control.changed().await;
                Outcome::Released
            }
        }
    }

    /// Records an export request, answers it according to the mode (waiting while it is
    /// `Hang`), and stores its spans if the answer is success. `true` means success.
    pub(super) async fn handle(
        &self,
        headers: HeaderMap,
        resource_spans: Vec<ResourceSpans>,
    ) -> bool {
        let spans = resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        let index = {
            let mut store = self.store();
            store.requests.push(ExportRequest {
                headers,
                spans,
                outcome: Outcome::Pending,
            });
            store.requests.len() - 1
        };
        let outcome = self.verdict().await;
        let mut store = self.store();
        store.requests[index].outcome = outcome;
        if outcome == Outcome::Stored {
            store.resource_spans.extend(resource_spans);
        }
        outcome == Outcome::Stored
    }
}

// ---------------------------------------------------------------- gRPC and HTTP front ends

pub(super) struct GrpcTraces(pub(super) Arc<Shared>);

#[tonic::async_trait]
impl TraceService for GrpcTraces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let (metadata, _, message) = request.into_parts();
        if self
            .0
            .handle(metadata.into_headers(), message.resource_spans)
            .await
        {
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        } else {
            Err(tonic::Status::unavailable("test receiver refuses exports"))
        }
    }
}

pub(super) async fn http_export(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("this receiver takes application/x-protobuf, not {content_type:?}"),
        )
            .into_response();
    }
    match headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None | Some(b"identity") => {}
        Some(other) => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "this receiver takes no content-encoding, not {:?}",
                    String::from_utf8_lossy(other)
                ),
            )
                .into_response()
        }
    }
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) => request,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    if shared.handle(headers, request.resource_spans).await {
        let response = ExportTraceServiceResponse {
            partial_success: None,
        };
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

/// An OTLP/HTTP export of metrics or logs: 415 for another content type, 400 for a body that
/// does not decode; then, as the mode says ([`Shared::verdict`]), the protobuf `Req` handed to
/// `keep` and an empty (successful) `Res` answered, or 503.
pub(super) async fn http_accept<Req, Res>(
    shared: &Shared,
    headers: &HeaderMap,
    body: Bytes,
    keep: impl FnOnce(Req),
) -> Response
where
    Req: Message + Default,
    Res: Message + Default,
{
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    match Req::decode(body) {
        Ok(_) if shared.verdict().await != Outcome::Stored => {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Ok(request) => {
            keep(request);
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                Res::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
