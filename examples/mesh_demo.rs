//! A small Istio-bookinfo-like mesh on 127.0.0.1, traced end to end by meshtrace:
//!
//! ```text
//! "Envoy" ──HTTP──▶ productpage (axum) ──gRPC──▶ reviews (tonic) ──HTTP──▶ ratings (axum)
//! ```
//!
//! The driver plays the Envoys in front of productpage: it sends a few requests with the
//! headers Envoy adds (B3 multi headers, `x-request-id`, `x-envoy-attempt-count`, once
//! `baggage`, once `x-ot-span-context`; product 13 makes ratings answer 503), and reports
//! the spans Istio's proxies would: the ingress gateway's client span (`istio-ingressgateway`,
//! the root of every trace) and productpage's sidecar's inbound span (`productpage.default`),
//! the remote parent productpage receives. So a trace in Jaeger is whole, with no missing
//! parent, as it is in a real mesh. Every service
//! has its own service name and its own tracer provider; their spans are collected in memory
//! and printed as one tree per trace. With `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set they are also exported there, to Jaeger say.
//!
//! When the driver is done (or on SIGTERM or Ctrl-C: `meshtrace::shutdown_signal`), each
//! server stops the way a service should, with axum's and tonic's graceful shutdown, and then
//! each service's telemetry guard flushes.
//!
//! `cargo run --example mesh_demo`
//!
//! Three services with three service names in one process cannot share a global subscriber:
//! each one runs on its own tokio runtime whose threads use that service's subscriber as
//! their default (`Telemetry::dispatch`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use futures_util::future::BoxFuture;
use meshtrace::client::reqwest::MeshClientMiddleware;
use meshtrace::client::tonic::{MeshClient, MeshClientLayer};
use meshtrace::client::SpanName;
use meshtrace::export::{Protocol, Telemetry, TelemetryBuilder, TelemetryGuard};
use meshtrace::server::MeshServerLayer;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::{
    SpanId, SpanKind, Status, TraceContextExt, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Array, Context, Key, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::resource::Resource;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider, SpanData,
};
use reqwest_middleware::ClientWithMiddleware;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_prost::ProstCodec;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The product whose rating lookup fails: ratings 503 → reviews UNAVAILABLE → productpage 502.
const FAILING_PRODUCT: u32 = 13;

// ---------------------------------------------------------------- span collection

/// A span exporter that keeps every span, with the `service.name` of the provider it
/// belongs to (`SpanData` has no resource; the provider hands its resource to the exporter).
#[derive(Debug, Clone, Default)]
struct Collector {
    service: String,
    spans: Arc<Mutex<Vec<(String, SpanData)>>>,
}

impl opentelemetry_sdk::trace::SpanExporter for Collector {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut spans = self.spans.lock().unwrap_or_else(|e| e.into_inner());
        spans.extend(batch.into_iter().map(|s| (self.service.clone(), s)));
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(name) = resource.get(&Key::from_static_str("service.name")) {
            self.service = name.to_string();
        }
    }
}

impl Collector {
    fn take(&self) -> Vec<(String, SpanData)> {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

// ---------------------------------------------------------------- metrics collection

/// A metric exporter that keeps each service's last (cumulative) export of the request
/// metrics, as printable rows.
#[derive(Debug, Clone, Default)]
struct Meters {
    rows: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for Meters {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let service = metrics
            .resource()
            .get(&Key::from_static_str("service.name"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        let mut rows = Vec::new();
        for metric in metrics.scope_metrics().flat_map(|s| s.metrics()) {
            let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data() else {
                continue;
            };
            for point in h.data_points() {
                let attr = |key: &str| {
                    point
                        .attributes()
                        .find(|kv| kv.key.as_str() == key)
                        .map(|kv| kv.value.to_string())
                };
                let what: Vec<String> = [
                    "http.request.method",
                    "http.route",
                    "rpc.method",
                    "server.address",
                    "http.response.status_code",
                    "rpc.response.status_code",
                    "meshtrace.reply.origin",
                    "meshtrace.envoy.attempt_count",
                ]
                .iter()
                .filter_map(|k| {
                    attr(k).map(|v| match *k {
                        "meshtrace.reply.origin" => format!("from {v}"),
                        "meshtrace.envoy.attempt_count" => format!("attempt {v}"),
                        "server.address" => format!("→ {v}"),
                        _ => v,
                    })
                })
                .collect();
                let mean_ms = point.sum() * 1000.0 / point.count().max(1) as f64;
                rows.push(format!(
                    "{:<29} {:<50} ×{:<3} mean {mean_ms:.1} ms",
                    metric.name(),
                    what.join(" "),
                    point.count()
                ));
            }
        }
        rows.sort();
        self.rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service, rows);
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        opentelemetry_sdk::metrics::Temporality::Cumulative
    }
}

impl Meters {
    /// Each service's request metrics, as the guards flushed them at shutdown.
    fn print(&self) {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        for service in ["productpage", "reviews", "ratings"] {
            println!("request metrics of {service} (flushed at shutdown):");
            match rows.get(service) {
                Some(rows) if !rows.is_empty() => {
                    rows.iter().for_each(|r| println!("  {r}"));
                }
                _ => println!("  (none)"),
            }
        }
        println!();
    }
}

/// `layer` measuring with `meter` when the service has a meter provider.
fn measured_server(meter: &Option<Meter>) -> MeshServerLayer {
    match meter {
        Some(meter) => MeshServerLayer::new().meter(meter.clone()),
        None => MeshServerLayer::new(),
    }
}

// ---------------------------------------------------------------- reviews: gRPC, by hand

// What tonic-build would generate from
//   service Reviews { rpc Get(ReviewsRequest) returns (ReviewsReply); }
// (no protoc here, so written out).

#[derive(Clone, PartialEq, prost::Message)]
struct ReviewsRequest {
    #[prost(uint32, tag = "1")]
    product_id: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ReviewsReply {
    #[prost(string, repeated, tag = "1")]
    reviews: Vec<String>,
    #[prost(uint32, tag = "2")]
    stars: u32,
}

const REVIEWS_GET: &str = "/reviews.Reviews/Get";

/// The reviews service: looks up the product's rating on the ratings service.
#[derive(Clone)]
struct Reviews {
    ratings: String,
    http: ClientWithMiddleware,
}

impl Reviews {
    #[tracing::instrument(name = "get_reviews", skip_all, fields(product.id = product_id))]
    async fn get(&self, product_id: u32) -> Result<ReviewsReply, tonic::Status> {
        let stars = self.stars(product_id).await.inspect_err(mark_failed)?;
        Ok(ReviewsReply {
            reviews: vec![
                "An extremely entertaining play by Shakespeare.".into(),
                "Absolutely fun and entertaining.".into(),
            ],
            stars,
        })
    }

    async fn stars(&self, product_id: u32) -> Result<u32, tonic::Status> {
        let res = self
            .http
            .get(format!("{}/ratings/{product_id}", self.ratings))
            .with_extension(SpanName::new("GET /ratings/{id}"))
            .send()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("ratings: {e}")))?;
        if !res.status().is_success() {
            return Err(tonic::Status::unavailable(format!(
                "ratings answered {}",
                res.status()
            )));
        }
        let body = res
            .text()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("ratings: {e}")))?;
        body.trim()
            .parse()
            .map_err(|_| tonic::Status::internal(format!("ratings sent {body:?}")))
    }
}

/// Marks the current span as failed, without a log line.
fn mark_failed(status: &tonic::Status) {
    tracing::Span::current().set_status(Status::error(format!(
        "{:?}: {}",
        status.code(),
        status.message()
    )));
}

struct GetSvc(Reviews);

impl tonic::server::UnaryService<ReviewsRequest> for GetSvc {
    type Response = ReviewsReply;
    type Future = BoxFuture<'static, Result<tonic::Response<ReviewsReply>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<ReviewsRequest>) -> Self::Future {
        let reviews = self.0.clone();
        Box::pin(async move {
            let reply = reviews.get(req.into_inner().product_id).await?;
            Ok(tonic::Response::new(reply))
        })
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Reviews {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let reviews = self.clone();
        Box::pin(async move {
            if req.uri().path() != REVIEWS_GET {
                return Ok(tonic::Status::unimplemented("no such method").into_http());
            }
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<ReviewsReply, ReviewsRequest>::default());
            Ok(grpc.unary(GetSvc(reviews), req).await)
        })
    }
}

impl tonic::server::NamedService for Reviews {
    const NAME: &'static str = "reviews.Reviews";
}

/// The reviews client, on a channel wrapped in `MeshClientLayer`.
#[derive(Clone)]
struct ReviewsClient(tonic::client::Grpc<MeshClient<tonic::transport::Channel>>);

impl ReviewsClient {
    /// Must be called inside a tokio runtime (the channel's worker is spawned on it).
    fn new(addr: SocketAddr, meter: &Option<Meter>) -> Result<Self, tonic::transport::Error> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?;
        let mut layer = MeshClientLayer::new().server_uri(endpoint.uri());
        if let Some(meter) = meter {
            layer = layer.meter(meter.clone());
        }
        let channel = tower::ServiceBuilder::new()
            .layer(layer)
            .service(endpoint.connect_lazy());
        Ok(ReviewsClient(tonic::client::Grpc::new(channel)))
    }

    async fn get(&mut self, product_id: u32) -> Result<ReviewsReply, tonic::Status> {
        self.0
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let res = self
            .0
            .unary(
                tonic::Request::new(ReviewsRequest { product_id }),
                PathAndQuery::from_static(REVIEWS_GET),
                ProstCodec::default(),
            )
            .await?;
        Ok(res.into_inner())
    }
}

// ---------------------------------------------------------------- the HTTP services

#[tracing::instrument(skip_all, fields(product.id = id))]
async fn product_page(
    State(mut reviews): State<ReviewsClient>,
    Path(id): Path<u32>,
) -> (StatusCode, String) {
    match reviews.get(id).await {
        Ok(r) => (
            StatusCode::OK,
            format!(
                "product {id}: {} reviews, {} stars",
                r.reviews.len(),
                r.stars
            ),
        ),
        Err(status) => {
            mark_failed(&status);
            (
                StatusCode::BAD_GATEWAY,
                format!("product {id}: reviews unavailable ({})", status.message()),
            )
        }
    }
}

#[tracing::instrument(skip_all, fields(product.id = id, baggage.user = tracing::field::Empty))]
async fn rating(Path(id): Path<u32>, headers: HeaderMap) -> (StatusCode, String) {
    // Baggage and pass-through headers set at the edge arrive here two hops later, through
    // gRPC and HTTP.
    let span = tracing::Span::current();
    if let Some(user) = span.context().baggage().get("user") {
        span.record("baggage.user", tracing::field::display(user));
    }
    if let Some(Ok(v)) = headers.get("x-ot-span-context").map(|v| v.to_str()) {
        span.set_attribute("http.request.header.x-ot-span-context", v.to_owned());
    }
    if id == FAILING_PRODUCT {
        span.set_status(Status::error("ratings database unavailable"));
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "ratings database unavailable".into(),
        );
    }
    (StatusCode::OK, (1 + id % 5).to_string())
}

// ---------------------------------------------------------------- one service, one runtime

/// A service's telemetry and the runtime its tasks run on.
struct Service {
    name: &'static str,
    runtime: Runtime,
    provider: Option<SdkTracerProvider>,
    /// The request metrics' meter (none with `OTEL_SDK_DISABLED=true`).
    meter: Option<Meter>,
    guard: TelemetryGuard,
}

impl Service {
    /// A runtime whose threads (workers and blocking threads alike) have this service's
    /// subscriber as their default, so every span its tasks open belongs to the service.
    fn new(name: &'static str, telemetry: Telemetry) -> std::io::Result<Service> {
        let dispatch = telemetry.dispatch().clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .on_thread_start(move || {
                // Kept for the thread's whole life.
                std::mem::forget(tracing::dispatcher::set_default(&dispatch));
            })
            .build()?;
        Ok(Service {
            name,
            runtime,
            provider: telemetry.provider().cloned(),
            meter: telemetry.meter_provider().map(|p| p.meter("meshtrace")),
            guard: telemetry.into_guard(),
        })
    }
}

/// A listener on a free port of 127.0.0.1 (bound here, so a failure stops the demo at once).
fn bind() -> std::io::Result<(std::net::TcpListener, SocketAddr)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A service's server task; it ends when the server fails or after a graceful shutdown.
type Server = tokio::task::JoinHandle<std::io::Result<()>>;

/// Tells the servers to stop: sent when the driver is done.
type Stop = tokio::sync::watch::Receiver<bool>;

/// What each server's graceful shutdown waits for, as a service's would: SIGTERM or Ctrl-C
/// (`meshtrace::shutdown_signal`), or here also the driver being done.
async fn stopped(mut stop: Stop) {
    tokio::select! {
        _ = stop.wait_for(|stop| *stop) => {}
        () = meshtrace::shutdown_signal() => {}
    }
}

fn start_ratings(service: &Service, listener: std::net::TcpListener, stop: Stop) -> Server {
    let meter = service.meter.clone();
    service.runtime.spawn(async move {
        let app = Router::new()
            .route("/ratings/{id}", get(rating))
            .layer(measured_server(&meter));
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped(stop))
            .await
    })
}

fn start_reviews(
    service: &Service,
    listener: std::net::TcpListener,
    ratings: SocketAddr,
    stop: Stop,
) -> Server {
    let meter = service.meter.clone();
    service.runtime.spawn(async move {
        let client = match &meter {
            Some(meter) => MeshClientMiddleware::new().meter(meter.clone()),
            None => MeshClientMiddleware::new(),
        };
        let reviews = Reviews {
            ratings: format!("http://{ratings}"),
            http: reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(client)
                .build(),
        };
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tonic::transport::Server::builder()
            .layer(measured_server(&meter))
            .add_service(reviews)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stopped(stop),
            )
            .await
            .map_err(std::io::Error::other)
    })
}

fn start_productpage(
    service: &Service,
    listener: std::net::TcpListener,
    reviews: SocketAddr,
    stop: Stop,
) -> Server {
    let meter = service.meter.clone();
    service.runtime.spawn(async move {
        let client = ReviewsClient::new(reviews, &meter).map_err(std::io::Error::other)?;
        let app = Router::new()
            .route("/productpage/{id}", get(product_page))
            .with_state(client)
            .layer(measured_server(&meter));
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped(stop))
            .await
    })
}

// ---------------------------------------------------------------- the driver ("Envoy")

/// The authority productpage is called by inside the mesh.
const PRODUCTPAGE_HOST: &str = "productpage.default.svc.cluster.local:9080";

/// The tracers of the two proxies in front of productpage: the ingress gateway's and
/// productpage's sidecar's.
struct Envoy {
    gateway: SdkTracer,
    sidecar: SdkTracer,
}

/// The proxies' spans of one request (each the active span of its context), ended when the
/// answer is in.
struct ProxySpans {
    gateway: Context,
    sidecar: Context,
}

impl Envoy {
    /// The gateway's client span (a new trace) and the sidecar's inbound server span under
    /// it, with the tags Envoy gives its spans.
    fn start(&self, path: &str, request_id: &str) -> ProxySpans {
        let name = format!("{PRODUCTPAGE_HOST}/*");
        let tags = |cluster: &str| {
            vec![
                KeyValue::new("component", "proxy"),
                KeyValue::new("http.method", "GET"),
                KeyValue::new("http.url", format!("http://{PRODUCTPAGE_HOST}{path}")),
                KeyValue::new("guid:x-request-id", request_id.to_owned()),
                KeyValue::new("upstream_cluster", cluster.to_owned()),
            ]
        };
        let gateway = self
            .gateway
            .span_builder(name.clone())
            .with_kind(SpanKind::Client)
            .with_attributes(tags("outbound|9080||productpage.default.svc.cluster.local"))
            .start_with_context(&self.gateway, &Context::new());
        let gateway = Context::new().with_span(gateway);
        let sidecar = self
            .sidecar
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(tags("inbound|9080||"))
            .start_with_context(&self.sidecar, &gateway);
        ProxySpans {
            sidecar: Context::new().with_span(sidecar),
            gateway,
        }
    }
}

impl ProxySpans {
    fn trace_id(&self) -> TraceId {
        self.gateway.span().span_context().trace_id()
    }

    fn gateway_id(&self) -> SpanId {
        self.gateway.span().span_context().span_id()
    }

    fn sidecar_id(&self) -> SpanId {
        self.sidecar.span().span_context().span_id()
    }

    /// Ends both spans with the answer's status code (Envoy marks 5xx answers as errors).
    fn end(self, answer: Option<StatusCode>) {
        for cx in [&self.sidecar, &self.gateway] {
            let span = cx.span();
            match answer {
                Some(status) => {
                    span.set_attribute(KeyValue::new(
                        "http.status_code",
                        i64::from(status.as_u16()),
                    ));
                    if status.is_server_error() {
                        span.set_status(Status::error(status.to_string()));
                    }
                }
                None => span.set_status(Status::error("no answer")),
            }
            span.end();
        }
    }
}

/// One request as productpage's sidecar forwards it, and what came back.
struct Sent {
    path: String,
    trace_id: TraceId,
    envoy_span: SpanId,
    request_id: String,
    answer: Option<StatusCode>,
}

/// Sends the requests; `envoy` reports the proxies' spans (`None` when the SDK is disabled:
/// the driver then makes up the ids the proxies would have sent).
async fn drive(productpage: SocketAddr, envoy: Option<&Envoy>) -> Vec<Sent> {
    let ids = RandomIdGenerator::default();
    let client = reqwest::Client::new();
    // (product, extra headers)
    let requests: [(u32, &[&str]); 4] = [
        (1, &[]),
        (2, &["baggage"]),
        (3, &["x-ot-span-context"]),
        (FAILING_PRODUCT, &[]),
    ];
    let mut sent = Vec::new();
    for (product, extra) in requests {
        let path = format!("/productpage/{product}");
        let request_id = uuid::Builder::from_random_bytes(ids.new_trace_id().to_bytes())
            .into_uuid()
            .to_string();
        let proxies = envoy.map(|e| e.start(&path, &request_id));
        let (trace_id, envoy_span, gateway_span) = match &proxies {
            Some(p) => (p.trace_id(), p.sidecar_id(), p.gateway_id()),
            None => (ids.new_trace_id(), ids.new_span_id(), ids.new_span_id()),
        };
        let mut headers = vec![
            ("x-request-id", request_id.clone()),
            ("x-b3-traceid", trace_id.to_string()),
            ("x-b3-spanid", envoy_span.to_string()),
            ("x-b3-parentspanid", gateway_span.to_string()),
            ("x-b3-sampled", "1".to_owned()),
            ("x-envoy-attempt-count", "1".to_owned()),
        ];
        for name in extra {
            let value = match *name {
                "baggage" => "user=jason".to_owned(),
                _ => format!("{trace_id};{envoy_span};{gateway_span};cs"),
            };
            headers.push((name, value));
        }
        println!("→ GET {path}");
        let mut req = client.get(format!("http://{productpage}{path}"));
        for (name, value) in &headers {
            println!("    {name}: {value}");
            req = req.header(*name, value);
        }
        let answer = match req.send().await {
            Ok(res) => {
                let status = res.status();
                let body = res.text().await.unwrap_or_default();
                println!("← {status}  {body}");
                Some(status)
            }
            Err(e) => {
                println!("← no answer: {e}");
                None
            }
        };
        if let Some(p) = proxies {
            p.end(answer);
        }
        println!();
        sent.push(Sent {
            path,
            trace_id,
            envoy_span,
            request_id,
            answer,
        });
    }
    sent
}

// ---------------------------------------------------------------- printing traces

/// The attributes worth a glance, in this order.
const KEY_ATTRIBUTES: [&str; 7] = [
    "http.request.header.x-request-id",
    "http.response.status_code",
    "rpc.grpc.status_code",
    "error.type",
    "product.id",
    "baggage.user",
    "http.request.header.x-ot-span-context",
];

/// The attribute `key` of `span` as text; string arrays (request headers) as their values
/// joined by commas.
fn attr(span: &SpanData, key: &str) -> Option<String> {
    let value = &span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)?
        .value;
    Some(match value {
        Value::Array(Array::String(values)) => values
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    })
}

/// One printed line: `<tree> <service>  <name> (<kind>)  <ms> ms  <OK|ERROR>  <attributes>`,
/// fields separated by two spaces or more.
struct Line {
    label: String,
    rest: String,
}

fn span_lines(spans: &[&(String, SpanData)], sent: &Sent) -> Vec<Line> {
    let ids: HashSet<SpanId> = spans
        .iter()
        .map(|(_, s)| s.span_context.span_id())
        .collect();
    let mut children: HashMap<SpanId, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, (_, s)) in spans.iter().enumerate() {
        // A span whose parent is not here (the Envoy span that sent the request) is a root.
        if ids.contains(&s.parent_span_id) {
            children.entry(s.parent_span_id).or_default().push(i);
        } else {
            roots.push(i);
        }
    }
    let by_start = |v: &mut Vec<usize>| v.sort_by_key(|&i| spans[i].1.start_time);
    by_start(&mut roots);
    children.values_mut().for_each(by_start);

    let mut lines = Vec::new();
    // (span, prefix of its own line, prefix of its children's lines)
    let mut stack: Vec<(usize, String, String)> = Vec::new();
    for (n, &root) in roots.iter().enumerate().rev() {
        let last = n == roots.len() - 1;
        stack.push((root, branch(last).into(), indent(last).into()));
    }
    while let Some((i, prefix, child_prefix)) = stack.pop() {
        let (service, span) = spans[i];
        lines.push(line(&prefix, service, span, sent));
        let kids = children
            .get(&span.span_context.span_id())
            .map_or(&[][..], Vec::as_slice);
        for (n, &kid) in kids.iter().enumerate().rev() {
            let last = n == kids.len() - 1;
            stack.push((
                kid,
                format!("{child_prefix}{}", branch(last)),
                format!("{child_prefix}{}", indent(last)),
            ));
        }
    }
    lines
}

fn branch(last: bool) -> &'static str {
    if last {
        "└─ "
    } else {
        "├─ "
    }
}

fn indent(last: bool) -> &'static str {
    if last {
        "   "
    } else {
        "│  "
    }
}

fn line(prefix: &str, service: &str, span: &SpanData, sent: &Sent) -> Line {
    let kind = match span.span_kind {
        SpanKind::Server => " (server)",
        SpanKind::Client => " (client)",
        SpanKind::Producer => " (producer)",
        SpanKind::Consumer => " (consumer)",
        SpanKind::Internal => "",
    };
    let ms = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default()
        .as_secs_f64()
        * 1e3;
    // Unset counts as OK, as Jaeger shows it.
    let (status, why) = match &span.status {
        Status::Error { description } => {
            // One space at most inside the free text: fields are split by two spaces.
            let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
            ("ERROR", format!("  \"{description}\""))
        }
        Status::Ok | Status::Unset => ("OK", String::new()),
    };
    let is_root = span.parent_span_id == sent.envoy_span;
    let attrs: Vec<String> = KEY_ATTRIBUTES
        .iter()
        .filter(|k| is_root || **k != "http.request.header.x-request-id")
        .filter_map(|k| attr(span, k).map(|v| format!("{k}={v}")))
        .collect();
    let label = format!("{prefix}{service}  {}{kind}", span.name);
    let rest = format!("{ms:>7.2} ms  {status:<5}  {}{why}", attrs.join(" "));
    Line {
        label,
        rest: rest.trim_end().to_owned(),
    }
}

fn print_traces(sent: &[Sent], spans: &[(String, SpanData)]) -> usize {
    let mut blocks = Vec::new();
    let mut width = 0;
    for (n, s) in sent.iter().enumerate() {
        let mut of_trace: Vec<&(String, SpanData)> = spans
            .iter()
            .filter(|(_, span)| span.span_context.trace_id() == s.trace_id)
            .collect();
        of_trace.sort_by_key(|(_, span)| span.start_time);
        let lines = span_lines(&of_trace, s);
        width = lines
            .iter()
            .map(|l| l.label.chars().count())
            .fold(width, usize::max);
        blocks.push((n, s, of_trace, lines));
    }
    let mut printed = 0;
    for (n, s, of_trace, lines) in blocks {
        let services: BTreeSet<&str> = of_trace.iter().map(|(svc, _)| svc.as_str()).collect();
        println!(
            "trace {}  request {}: GET {}  (from Envoy span {}; {} spans, {} services)",
            s.trace_id,
            n + 1,
            s.path,
            s.envoy_span,
            of_trace.len(),
            services.len()
        );
        let mut carried: Vec<&str> = of_trace
            .iter()
            .filter(|(_, span)| span.span_kind == SpanKind::Server)
            .filter(|(_, span)| {
                attr(span, "http.request.header.x-request-id").as_deref()
                    == Some(s.request_id.as_str())
            })
            .map(|(svc, _)| svc.as_str())
            .collect();
        carried.dedup();
        println!(
            "  x-request-id {} reached: {}",
            s.request_id,
            if carried.is_empty() {
                "none".to_owned()
            } else {
                carried.join(", ")
            }
        );
        if lines.is_empty() {
            println!("  (no spans)");
        }
        for l in lines {
            let pad = width - l.label.chars().count();
            println!("{}{:pad$}  {}", l.label, "", l.rest);
        }
        println!();
        printed += usize::from(!of_trace.is_empty());
    }
    printed
}

// ---------------------------------------------------------------- main

fn otlp_requested() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()))
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mesh_demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn Error>> {
    let started = Instant::now();
    let export = otlp_requested();
    let log_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let collector = Collector::default();
    let meters = Meters::default();
    // The driver's runtime; OTLP/gRPC exporters live on it too (no subscriber on its threads).
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;

    let mut exported_to = None;
    let mut telemetry = |name: &str| -> Result<Telemetry, Box<dyn Error>> {
        let mut builder = TelemetryBuilder::from_env()?
            .service_name(name)
            .logs(Some(&log_filter))
            .shutdown_timeout(Duration::from_secs(2))
            .with_span_exporter(collector.clone())
            .with_metric_exporter(meters.clone());
        if !export {
            builder = builder.otlp(None).metrics(None);
        }
        let grpc = builder
            .otlp_config()
            .is_some_and(|o| o.protocol == Protocol::Grpc);
        if let Some(o) = builder.otlp_config() {
            let protocol = if grpc { "grpc" } else { "http/protobuf" };
            exported_to = Some(format!("{} (OTLP {protocol})", o.endpoint));
        }
        let _in_runtime = grpc.then(|| background.enter());
        Ok(builder.build()?)
    };
    let mut services = Vec::new();
    for name in ["productpage", "reviews", "ratings"] {
        let telemetry = telemetry(name)?;
        if services.is_empty() {
            meshtrace::set_global_propagator(telemetry.propagator().clone());
        }
        services.push(Service::new(name, telemetry)?);
    }
    // The proxies report their spans as Envoy does: with the OpenTelemetry API, not tracing.
    let mut proxies = Vec::new();
    for name in ["istio-ingressgateway", "productpage.default"] {
        let telemetry = telemetry(name)?;
        proxies.push((name, telemetry.provider().cloned(), telemetry.into_guard()));
    }
    let envoy = match &proxies[..] {
        [(_, Some(gateway), _), (_, Some(sidecar), _)] => Some(Envoy {
            gateway: gateway.tracer("envoy"),
            sidecar: sidecar.tracer("envoy"),
        }),
        _ => None,
    };
    let recording = services.iter().any(|s| s.provider.is_some());
    let [productpage, reviews, ratings] = &services[..] else {
        unreachable!("three services")
    };

    let (ratings_listener, ratings_addr) = bind()?;
    let (reviews_listener, reviews_addr) = bind()?;
    let (productpage_listener, productpage_addr) = bind()?;
    let (stop_servers, stop) = tokio::sync::watch::channel(false);
    let servers = [
        (
            ratings.name,
            start_ratings(ratings, ratings_listener, stop.clone()),
        ),
        (
            reviews.name,
            start_reviews(reviews, reviews_listener, ratings_addr, stop.clone()),
        ),
        (
            productpage.name,
            start_productpage(productpage, productpage_listener, reviews_addr, stop),
        ),
    ];
    println!(
        "mesh on 127.0.0.1: productpage (HTTP) {productpage_addr} → reviews (gRPC) {reviews_addr} → ratings (HTTP) {ratings_addr}\n"
    );

    let sent = background.block_on(drive(productpage_addr, envoy.as_ref()));
    let mut servers_failed = false;
    for (name, server) in &servers {
        if server.is_finished() {
            servers_failed = true;
            eprintln!("mesh_demo: {name} stopped serving before the driver was done");
        }
    }

    // Spans end when response bodies end, a moment after the caller has its answer: flush
    // until every trace has its root span (the one whose parent is the Envoy span).
    let mut export_errors: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let spans = loop {
        std::thread::sleep(Duration::from_millis(100));
        let providers = services
            .iter()
            .map(|s| (s.name, s.provider.as_ref()))
            .chain(proxies.iter().map(|(name, p, _)| (*name, p.as_ref())));
        for e in flush(providers) {
            if !export_errors.contains(&e) {
                export_errors.push(e);
            }
        }
        let spans = collector.take();
        let complete = sent.iter().all(|s| {
            spans
                .iter()
                .any(|(_, span)| span.parent_span_id == s.envoy_span)
        });
        if complete || !recording || Instant::now() > deadline {
            break spans;
        }
    };

    let traces = print_traces(&sent, &spans);
    let services_seen: BTreeSet<&str> = spans.iter().map(|(s, _)| s.as_str()).collect();
    println!(
        "{} requests, {traces} traces, {} spans from {} services ({})",
        sent.len(),
        spans.len(),
        services_seen.len(),
        services_seen.into_iter().collect::<Vec<_>>().join(", ")
    );
    match &exported_to {
        Some(to) => {
            println!("also exported to {to}; in Jaeger: http://localhost:16686 (service productpage)");
            for e in &export_errors {
                println!("  export failed: {e}");
            }
        }
        None => println!(
            "OTEL_EXPORTER_OTLP_ENDPOINT is not set: traces only printed (set it, e.g. to http://localhost:4318, to send them to Jaeger too)"
        ),
    }

    if !recording {
        println!("OTEL_SDK_DISABLED=true: no spans were recorded");
    }

    // Stop the servers gracefully (what SIGTERM would do to a service), then shut each
    // exporter down (bounded by its shutdown timeout).
    let _ = stop_servers.send(true);
    for (name, server) in servers {
        let stopped = background
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await });
        match stopped {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                servers_failed = true;
                eprintln!("mesh_demo: {name} failed: {e}");
            }
            Ok(Err(e)) => {
                servers_failed = true;
                eprintln!("mesh_demo: {name} failed: {e}");
            }
            Err(_) => {
                servers_failed = true;
                eprintln!("mesh_demo: {name} did not stop within 5 s");
            }
        }
    }
    let mut guards = Vec::new();
    for s in services {
        s.runtime.shutdown_timeout(Duration::from_millis(500));
        guards.push((s.name, s.guard));
    }
    guards.extend(proxies.into_iter().map(|(name, _, guard)| (name, guard)));
    std::thread::scope(|scope| {
        for (name, guard) in guards {
            scope.spawn(move || {
                if let Err(e) = guard.shutdown() {
                    println!("{name}: telemetry shutdown: {e}");
                }
            });
        }
    });
    background.shutdown_timeout(Duration::from_millis(500));
    if recording {
        meters.print();
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());

    let answered = sent.iter().all(|s| s.answer.is_some());
    Ok(
        if answered && !servers_failed && (traces == sent.len() || !recording) {
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "mesh_demo: {}",
                if servers_failed {
                    "a service failed"
                } else {
                    "some requests got no answer or left no trace"
                }
            );
            ExitCode::FAILURE
        },
    )
}

/// Flushes every service's spans into the collector (and to OTLP, if configured), all at
/// once; returns the failures.
fn flush<'a>(
    providers: impl Iterator<Item = (&'static str, Option<&'a SdkTracerProvider>)>,
) -> Vec<String> {
    let providers: Vec<_> = providers
        .filter_map(|(name, p)| p.map(|p| (name, p)))
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = providers
            .into_iter()
            .map(|(name, p)| scope.spawn(move || (name, p.force_flush())))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok((_, Ok(()))) => None,
                Ok((name, Err(e))) => Some(format!("{name}: {e}")),
                Err(_) => Some("flush panicked".into()),
            })
            .collect()
    })
}
