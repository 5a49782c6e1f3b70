//! An OTLP trace receiver on 127.0.0.1 for the tests that check what meshtrace exports: a
//! stand-in for an OpenTelemetry Collector or Jaeger, neither of which is on the test machines.
//!
//! [`Receiver::start_grpc`] serves OTLP/gRPC (`TraceService/Export`, the generated server of
//! `opentelemetry-proto`); [`Receiver::start_http`] serves OTLP/HTTP with protobuf bodies
//! (`POST /v1/traces`, `content-type: application/x-protobuf`). Either one keeps every
//! `ResourceSpans` it accepted and the headers (gRPC: the request metadata) of every export
//! request, and reads them back flattened into [`ReceivedSpan`]s.
//!
//! For fault-tolerance tests it can be switched at run time, while an exporter is using it:
//! [`Mode::Error`] refuses every export, [`Mode::Hang`] holds every export unanswered, and
//! [`Receiver::stop`] / [`Receiver::restart`] take the collector down and bring it back on the
//! same port.
//!
//! [`service`] runs an instrumented service exporting to it, for the tests built with
//! meshtrace's `otlp` feature.
//!
//! Every test file is its own crate and uses only some of these helpers, so unused ones are
//! not an error here.
#![allow(dead_code)]

#[cfg(feature = "otlp")]
pub mod service;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The span kind as OTLP carries it.
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
/// The span status code as OTLP carries it.
pub use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatusCode;

/// The path of OTLP/HTTP trace exports.
pub const TRACES_PATH: &str = "/v1/traces";

/// How often the `wait_for_*` helpers look again.
const POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------- modes and transports

/// How the receiver answers export requests. Switch with [`Receiver::set_mode`] at any time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Store the spans and answer success.
    Healthy,
    /// Store nothing and answer an error: gRPC `UNAVAILABLE`, HTTP `503 Service Unavailable`
    /// (no `Retry-After`, so an exporter retries on its own backoff).
    Error,
    /// Accept the request and never answer it. A held request is released when the mode
    /// changes or the receiver stops; it is then answered with the `Error` answer and its
    /// spans are not stored (the exporter has given up on it long before).
    Hang,
}

/// Which OTLP transport a receiver serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC (HTTP/2, `opentelemetry.proto.collector.trace.v1.TraceService/Export`).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`POST /v1/traces`), over HTTP/1.1 or HTTP/2.
    Http,
}

/// What became of one export request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still being handled: held by [`Mode::Hang`].
    Pending,
    /// Its spans were stored and success was answered.
    Stored,
    /// Refused by [`Mode::Error`]; nothing stored.
    Refused,
    /// Held by [`Mode::Hang`], then released by a mode change or a stop; nothing stored.
    Released,
}

/// One export request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    /// The request's headers; for gRPC, its metadata (including `content-type`, `te`, ...).
    pub headers: HeaderMap,
    /// The number of spans the request carried.
    pub spans: usize,
    /// What the receiver did with it.
    pub outcome: Outcome,
}

// ---------------------------------------------------------------- received spans

/// An OTLP attribute value, kept as its type: an `int_value` stays [`Value::Int`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(BTreeMap<String, Value>),
    /// An `AnyValue` with no value set.
    Empty,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn from_proto(value: Option<&AnyValue>) -> Value {
        use any_value::Value as V;
        match value.and_then(|v| v.value.as_ref()) {
            Some(V::StringValue(s)) => Value::Str(s.clone()),
            Some(V::BoolValue(b)) => Value::Bool(*b),
            Some(V::IntValue(i)) => Value::Int(*i),
            Some(V::DoubleValue(d)) => Value::Double(*d),
            Some(V::BytesValue(b)) => Value::Bytes(b.clone()),
            Some(V::ArrayValue(a)) => Value::Array(
                a.values
                    .iter()
                    .map(|v| Value::from_proto(Some(v)))
                    .collect(),
            ),
            Some(V::KvlistValue(kv)) => Value::Map(attribute_map(&kv.values)),
            // Only meaningful for profiles; a trace receiver treats it as absent.
            Some(V::StringValueStrindex(_)) | None => Value::Empty,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{d}"),
            Value::Bytes(b) => f.write_str(&hex(b)),
            Value::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
            Value::Empty => Ok(()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}

/// An event of a received span.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedEvent {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: BTreeMap<String, Value>,
}

/// A link of a received span.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedLink {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: String,
    pub attributes: BTreeMap<String, Value>,
}

/// One received span, flattened with its resource and scope. Ids are lowercase hex.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// The resource's `service.name` (empty when it has none).
    pub service_name: String,
    /// All resource attributes.
    pub resource: BTreeMap<String, Value>,
    /// The instrumentation scope (the tracer's name) and its version.
    pub scope_name: String,
    pub scope_version: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, or empty for a root span.
    pub parent_span_id: String,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: BTreeMap<String, Value>,
    pub status_code: SpanStatusCode,
    pub status_message: String,
    pub events: Vec<ReceivedEvent>,
    pub links: Vec<ReceivedLink>,
}

impl ReceivedSpan {
    /// The attribute `key`, if the span has it.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }

    /// Whether the span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// The names of the span's events, in order.
    pub fn event_names(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.name.as_str()).collect()
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute_map(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), Value::from_proto(kv.value.as_ref())))
        .collect()
}

/// Flattens `ResourceSpans` into one [`ReceivedSpan`] per span, in the order received.
pub fn flatten(resource_spans: &[ResourceSpans]) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for rs in resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attribute_map(&r.attributes))
            .unwrap_or_default();
        let service_name = resource
            .get("service.name")
            .map(Value::to_string)
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            let (scope_name, scope_version) = ss
                .scope
                .as_ref()
                .map(|s| (s.name.clone(), s.version.clone()))
                .unwrap_or_default();
            for span in &ss.spans {
                let status = span.status.clone().unwrap_or_default();
                out.push(ReceivedSpan {
                    service_name: service_name.clone(),
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    trace_state: span.trace_state.clone(),
                    flags: span.flags,
                    name: span.name.clone(),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    start_time_unix_nano: span.start_time_unix_nano,
                    end_time_unix_nano: span.end_time_unix_nano,
                    attributes: attribute_map(&span.attributes),
                    status_code: SpanStatusCode::try_from(status.code)
                        .unwrap_or(SpanStatusCode::Unset),
                    status_message: status.message,
                    events: span
                        .events
                        .iter()
                        .map(|e| ReceivedEvent {
                            name: e.name.clone(),
                            time_unix_nano: e.time_unix_nano,
                            attributes: attribute_map(&e.attributes),
                        })
                        .collect(),
                    links: span
                        .links
                        .iter()
                        .map(|l| ReceivedLink {
                            trace_id: hex(&l.trace_id),
                            span_id: hex(&l.span_id),
                            trace_state: l.trace_state.clone(),
                            attributes: attribute_map(&l.attributes),
                        })
                        .collect(),
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------- shared state

/// What the handlers watch: the mode, and a stop counter whose change releases held requests.
#[derive(Clone, Copy, Debug)]
struct Control {
    mode: Mode,
    stops: u64,
}

#[derive(Default)]
struct Store {
    resource_spans: Vec<ResourceSpans>,
    requests: Vec<ExportRequest>,
}

struct Shared {
    store: Mutex<Store>,
    control: watch::Sender<Control>,
    held: AtomicUsize,
}

/// Counts a held request for as long as it is held, even if its task is dropped.
struct HeldGuard<'a>(&'a AtomicUsize);

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an export request, answers it according to the mode (waiting while it is
    /// `Hang`), and stores its spans if the answer is success. `true` means success.
    async fn handle(&self, headers: HeaderMap, resource_spans: Vec<ResourceSpans>) -> bool {
        let spans = resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        let mut control = self.control.subscribe();
        let mode = control.borrow_and_update().mode;
        let index = {
            let mut store = self.store();
            store.requests.push(ExportRequest {
                headers,
                spans,
                outcome: Outcome::Pending,
            });
            store.requests.len() - 1
        };
        let outcome = match mode {
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
        };
        let mut store = self.store();
        store.requests[index].outcome = outcome;
        if outcome == Outcome::Stored {
            store.resource_spans.extend(resource_spans);
        }
        outcome == Outcome::Stored
    }
}

// ---------------------------------------------------------------- gRPC and HTTP front ends

struct GrpcTraces(Arc<Shared>);

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

async fn http_export(
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

// ---------------------------------------------------------------- serving

/// A running accept loop: `stop` ends it, and it closes the listener and every connection.
struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A listener on `addr` with SO_REUSEADDR, so a restart can take the same port at once.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// [`bind`], retried every 50 ms for up to `patience`; panics if it still fails.
async fn bind_within(addr: SocketAddr, patience: Duration) -> TcpListener {
    let deadline = Instant::now() + patience;
    loop {
        match bind(addr) {
            Ok(listener) => return listener,
            Err(e) if Instant::now() < deadline => {
                eprintln!("otlp receiver: binding {addr} failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("otlp receiver: cannot listen on {addr}: {e}"),
        }
    }
}

/// Accepts connections until `stop`, serving each with `service` (HTTP/1.1 or HTTP/2, as the
/// client speaks); then closes the listener and aborts every connection.
async fn accept_loop<S, B>(listener: TcpListener, service: S, mut stop: oneshot::Receiver<()>)
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let service = TowerToHyperService::new(service.clone());
                connections.spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Dropping a connection's task drops its socket: the client sees the connection close.
    connections.shutdown().await;
}

/// An OTLP trace receiver on 127.0.0.1. See the module documentation.
pub struct Receiver {
    transport: Transport,
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<Server>>,
}

impl Receiver {
    /// An OTLP/gRPC receiver on a free port of 127.0.0.1, healthy.
    pub async fn start_grpc() -> Receiver {
        Receiver::start(Transport::Grpc).await
    }

    /// An OTLP/HTTP (protobuf) receiver on a free port of 127.0.0.1, healthy.
    pub async fn start_http() -> Receiver {
        Receiver::start(Transport::Http).await
    }

    /// A receiver for `transport` on a free port of 127.0.0.1, healthy.
    pub async fn start(transport: Transport) -> Receiver {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind 127.0.0.1:0");
        Receiver::with_listener(transport, listener)
    }

    /// A receiver for `transport` on `addr`, healthy: for an exporter that was aimed at the
    /// address before any collector listened there. Panics if `addr` cannot be bound within
    /// 5 s.
    pub async fn start_on(transport: Transport, addr: SocketAddr) -> Receiver {
        Receiver::with_listener(transport, bind_within(addr, Duration::from_secs(5)).await)
    }

    fn with_listener(transport: Transport, listener: TcpListener) -> Receiver {
        let addr = listener.local_addr().expect("local addr");
        let (control, _) = watch::channel(Control {
            mode: Mode::Healthy,
            stops: 0,
        });
        let receiver = Receiver {
            transport,
            addr,
            shared: Arc::new(Shared {
                store: Mutex::default(),
                control,
                held: AtomicUsize::new(0),
            }),
            server: Mutex::new(None),
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel();
        let task = match self.transport {
            Transport::Grpc => {
                let service =
                    TraceServiceServer::from_arc(Arc::new(GrpcTraces(self.shared.clone())));
                tokio::spawn(accept_loop(listener, service, stopped))
            }
            Transport::Http => {
                let service = Router::new()
                    .route(TRACES_PATH, post(http_export))
                    .with_state(self.shared.clone());
                tokio::spawn(accept_loop(listener, service, stopped))
            }
        };
        *self.server() = Some(Server { stop, task });
    }

    fn server(&self) -> MutexGuard<'_, Option<Server>> {
        self.server.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The receiver's address (the same across stop and restart).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The URL to give an exporter: `http://127.0.0.1:PORT`. For OTLP/HTTP this is the base
    /// URL (what `OTEL_EXPORTER_OTLP_ENDPOINT` takes; the exporter appends `/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1/traces`: the full OTLP/HTTP traces URL, which is what
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and opentelemetry-otlp's `with_endpoint` on the
    /// HTTP exporter take (both use it as it is).
    pub fn traces_url(&self) -> String {
        format!("{}{TRACES_PATH}", self.endpoint())
    }

    // ------------------------------------------------------------ faults

    /// Switches how export requests are answered from now on; requests held by
    /// [`Mode::Hang`] are released (answered with an error) when the mode changes.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.control.send_if_modified(|c| {
            let changed = c.mode != mode;
            c.mode = mode;
            changed
        });
    }

    pub fn mode(&self) -> Mode {
        self.shared.control.borrow().mode
    }

    /// The number of export requests held unanswered right now by [`Mode::Hang`].
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Whether the receiver is listening (not stopped).
    pub fn is_running(&self) -> bool {
        self.server().is_some()
    }

    /// Closes the listener and every open connection and releases held requests; from then on
    /// connections to the port are refused. Stored data and the mode are kept. Does nothing if
    /// already stopped.
    pub async fn stop(&self) {
        let server = self.server().take();
        let Some(Server { stop, task }) = server else {
            return;
        };
        let _ = stop.send(());
        let _ = task.await;
        // Held requests on HTTP/2 run in tasks of their own, apart from their connection's.
        self.shared.control.send_modify(|c| c.stops += 1);
    }

    /// Listens again on the same port, in the current mode. Does nothing if running.
    pub async fn restart(&self) {
        if self.is_running() {
            return;
        }
        let listener = bind_within(self.addr, Duration::from_secs(5)).await;
        self.serve(listener);
    }

    // ------------------------------------------------------------ what was received

    /// Every `ResourceSpans` of every stored export, in the order received.
    pub fn resource_spans(&self) -> Vec<ResourceSpans> {
        self.shared.store().resource_spans.clone()
    }

    /// Every stored span, flattened, in the order received.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        flatten(&self.shared.store().resource_spans)
    }

    /// The stored spans named `name`.
    pub fn spans_named(&self, name: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }

    /// Waits until at least `n` spans are stored or `timeout` passes, then returns the stored
    /// spans: check the length, it is short of `n` on a timeout.
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The number of export requests received, whatever their outcome (retries included).
    pub fn requests(&self) -> usize {
        self.shared.store().requests.len()
    }

    /// Every export request received, in order.
    pub fn request_log(&self) -> Vec<ExportRequest> {
        self.shared.store().requests.clone()
    }

    /// The headers of every export request received, in order (gRPC: the request metadata).
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.shared
            .store()
            .requests
            .iter()
            .map(|r| r.headers.clone())
            .collect()
    }

    /// Waits until at least `n` export requests were received or `timeout` passes; returns
    /// how many were.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.requests();
            if count >= n || Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Forgets every stored span and request.
    pub fn clear(&self) {
        *self.shared.store() = Store::default();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server().take() {
            let _ = server.stop.send(());
        }
        // Releases held requests; the accept loop closes everything once it sees the stop.
        self.shared.control.send_modify(|c| c.stops += 1);
    }
}
