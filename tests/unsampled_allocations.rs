//! An unsampled request pays for propagation, not for spans: counted in allocations. And
//! the request metrics allocate nothing beyond what the SDK's histograms need.
//!
//! One request through `MeshServerLayer`, whose handler calls a nested `#[instrument]`
//! function making a reqwest call through `MeshClientMiddleware`, and spawns (with
//! `.in_current_span()`) a task making a gRPC call through `MeshClientLayer`. Both calls end
//! in canned answers in the same process (a last reqwest middleware, a tower service behind
//! the tonic layer), so what is counted is the layers, tracing, tracing-opentelemetry and
//! the SDK, not sockets.
//!
//! A global allocator counts the allocations of the test's thread (the runtime is a
//! current-thread one, the simple span processor exports on the ending thread), so the
//! count is the same on every run whatever the machine's load. The test prints the counts
//! per request and asserts that an unsampled request allocates clearly less than a sampled
//! one measured the same way in the same run.
#![cfg(all(feature = "reqwest", feature = "tonic", feature = "sdk"))]

mod support;

use http::{HeaderMap, Request, Response};
use meshtrace::client::reqwest::MeshClientMiddleware;
use meshtrace::client::tonic::{MeshClient, MeshClientLayer};
use meshtrace::server::MeshServerLayer;
use meshtrace::{MeshPropagator, MeshSampler};
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use support::headers::text_map;
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

// ---------------------------------------------------------------- counting

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// ---------------------------------------------------------------- the services

/// Answers every reqwest call with `200 ok`, without a network.
struct Canned;

#[async_trait::async_trait]
impl Middleware for Canned {
    async fn handle(
        &self,
        _req: reqwest::Request,
        _extensions: &mut http::Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Ok(reqwest::Response::from(
            Response::builder()
                .status(200)
                .body("ok")
                .expect("response"),
        ))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The gRPC channel as the handler sees it: through `MeshClientLayer` or not.
type Grpc = tower::util::BoxCloneSyncService<Request<String>, Response<()>, BoxError>;

/// What the handler calls out with.
#[derive(Clone)]
struct Clients {
    http: ClientWithMiddleware,
    grpc: Grpc,
    /// Whether the server layer and the client layers are in the path (else the floor: the
    /// same handler and calls without meshtrace).
    layered: bool,
    /// The trace headers each outgoing call carried, in order, while `keep` is set (off
    /// while counting: the test's own bookkeeping is not the layers' cost).
    sent: Sent,
    /// The server layer, built once as a service builds it.
    server: MeshServerLayer,
}

/// How the layers record request metrics.
#[derive(Clone)]
enum Metrics {
    /// As a user gets them: from the global meter provider (none here: no-op instruments).
    Global,
    Off,
    With(Meter),
}

impl Metrics {
    fn server(&self, layer: MeshServerLayer) -> MeshServerLayer {
        match self {
            Metrics::Global => layer,
            Metrics::Off => layer.metrics(false),
            Metrics::With(meter) => layer.meter(meter.clone()),
        }
    }
    fn reqwest(&self, layer: MeshClientMiddleware) -> MeshClientMiddleware {
        match self {
            Metrics::Global => layer,
            Metrics::Off => layer.metrics(false),
            Metrics::With(meter) => layer.meter(meter.clone()),
        }
    }
    fn tonic(&self, layer: MeshClientLayer) -> MeshClientLayer {
        match self {
            Metrics::Global => layer,
            Metrics::Off => layer.metrics(false),
            Metrics::With(meter) => layer.meter(meter.clone()),
        }
    }
}

#[derive(Clone, Default)]
struct Sent {
    keep: Arc<AtomicBool>,
    lines: Arc<Mutex<Vec<String>>>,
}

fn clients(layered: bool, metrics: Metrics) -> Clients {
    let sent = Sent::default();
    let grpc_sent = sent.clone();
    let channel = tower::service_fn(move |req: Request<String>| {
        record(&grpc_sent, req.headers());
        async {
            // A trailers-only reply: the status in the head.
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "0")
                    .body(String::new())
                    .expect("response"),
            )
        }
    });
    let channel = tower::util::BoxCloneSyncService::new(channel);
    let grpc = if layered {
        let traced: MeshClient<_> = metrics
            .tonic(MeshClientLayer::new())
            .server_uri(&http::Uri::from_static("http://relay:50051"))
            .layer(channel);
        Grpc::new(traced.map_response(|res| res.map(drop)))
    } else {
        Grpc::new(
            channel
                .map_response(|res| res.map(drop))
                .map_err(BoxError::from),
        )
    };
    let mut http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new());
    if layered {
        http = http.with(metrics.reqwest(MeshClientMiddleware::new()));
    }
    let http = http.with(Recording(sent.clone())).with(Canned).build();
    Clients {
        http,
        grpc,
        layered,
        sent,
        server: metrics.server(MeshServerLayer::new()),
    }
}

fn record(sent: &Sent, headers: &HeaderMap) {
    if !sent.keep.load(Ordering::Relaxed) {
        return;
    }
    let mut line = String::new();
    for name in ["traceparent", "x-b3-sampled", "x-request-id", "baggage"] {
        let value = headers.get(name).map_or("-", |v| v.to_str().unwrap_or("?"));
        line.push_str(&format!("{name}={value} "));
    }
    sent.lines.lock().expect("lock").push(line);
}

/// Records what each reqwest call carries, before the canned answer.
struct Recording(Sent);

#[async_trait::async_trait]
impl Middleware for Recording {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        record(&self.0, req.headers());
        next.run(req, extensions).await
    }
}

#[tracing::instrument(skip_all)]
async fn load_reviews(http: &ClientWithMiddleware) -> u16 {
    let res = http
        .get("http://reviews:9080/reviews/7")
        .send()
        .await
        .expect("canned");
    res.status().as_u16()
}

#[tracing::instrument(skip_all)]
async fn rate(mut grpc: Grpc) -> u16 {
    let req = Request::builder()
        .uri("/meshtrace.test.Relay/Forward")
        .header("content-type", "application/grpc")
        .body(String::new())
        .expect("request");
    let res = grpc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("canned");
    res.status().as_u16()
}

async fn handler(clients: Clients, _req: Request<String>) -> Result<Response<String>, Infallible> {
    let status = load_reviews(&clients.http).await;
    let task = tokio::spawn(rate(clients.grpc.clone()).in_current_span());
    let grpc_status = task.await.expect("task");
    Ok(Response::new(format!("{status} {grpc_status}")))
}

/// Serves one request through the server layer (or, for the floor, straight to the
/// handler) and reads its body to the end (where the server span ends).
async fn serve_one(clients: &Clients, incoming: &[(&str, &str)]) {
    let mut req = Request::builder()
        .uri("/orders/7")
        .header("host", "orders:8080")
        .header("user-agent", "istio-envoy")
        .header("x-envoy-attempt-count", "1")
        .body(String::new())
        .expect("request");
    for (name, value) in text_map(incoming).iter() {
        req.headers_mut().append(name, value.clone());
    }
    if !clients.layered {
        let res = handler(clients.clone(), req).await.expect("answer");
        read_to_end(res.into_body()).await;
        return;
    }
    let for_handler = clients.clone();
    let service = clients.server.clone().layer(tower::service_fn(move |req| {
        handler(for_handler.clone(), req)
    }));
    let res = service.oneshot(req).await.expect("answer");
    read_to_end(res.into_body()).await;
}

async fn read_to_end<B: http_body::Body + Unpin>(mut body: B)
where
    B::Error: std::fmt::Debug,
{
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        frame.expect("frame");
    }
}

// ---------------------------------------------------------------- the measurement

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
const REQUEST_ID: &str = "6f3a2c1e-9b8d-4e7f-a1c2-3d4e5f6a7b8c";
const BAGGAGE: &str = "tenant=acme,user=42";

/// Requests per kind; the count of the cheapest is the one reported (the first of a kind
/// warms caches up).
const ROUNDS: usize = 20;

fn sampled() -> Vec<(&'static str, String)> {
    vec![
        ("traceparent", format!("00-{TRACE}-{SPAN}-01")),
        ("x-request-id", REQUEST_ID.into()),
        ("baggage", BAGGAGE.into()),
    ]
}

fn unsampled_w3c() -> Vec<(&'static str, String)> {
    vec![
        ("traceparent", format!("00-{TRACE}-{SPAN}-00")),
        ("x-request-id", REQUEST_ID.into()),
        ("baggage", BAGGAGE.into()),
    ]
}

fn unsampled_b3() -> Vec<(&'static str, String)> {
    vec![
        ("x-b3-traceid", TRACE.into()),
        ("x-b3-spanid", SPAN.into()),
        ("x-b3-sampled", "0".into()),
        ("x-request-id", REQUEST_ID.into()),
        ("baggage", BAGGAGE.into()),
    ]
}

fn root() -> Vec<(&'static str, String)> {
    vec![
        ("x-request-id", REQUEST_ID.into()),
        ("baggage", BAGGAGE.into()),
    ]
}

struct Measured {
    allocations: u64,
    exported: usize,
    sent: Vec<String>,
}

async fn measure(
    clients: &Clients,
    exporter: &InMemorySpanExporter,
    incoming: &[(&'static str, String)],
) -> Measured {
    let pairs: Vec<(&str, &str)> = incoming.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut fewest = u64::MAX;
    for _ in 0..ROUNDS {
        let before = allocations();
        serve_one(clients, &pairs).await;
        let after = allocations();
        fewest = fewest.min(after - before);
    }
    // Once more, uncounted, keeping what went out and what was exported.
    exporter.reset();
    clients.sent.lines.lock().expect("lock").clear();
    clients.sent.keep.store(true, Ordering::Relaxed);
    serve_one(clients, &pairs).await;
    clients.sent.keep.store(false, Ordering::Relaxed);
    let exported = exporter.get_finished_spans().expect("spans").len();
    let sent = clients.sent.lines.lock().expect("lock").clone();
    Measured {
        allocations: fewest,
        exported,
        sent,
    }
}

/// One test at a time: both reset and read the one exporter.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The binary's exporter, behind the global subscriber (installed once, for both tests).
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            // New traces are not sampled; a caller's decision is followed.
            .with_sampler(MeshSampler::new(Sampler::TraceIdRatioBased(0.0)))
            .with_simple_exporter(exporter.clone())
            .build();
        support::telemetry::set_global_otel_subscriber(&provider, "allocations");
        meshtrace::set_global_propagator(MeshPropagator::istio());
        exporter
    })
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn request_metrics_allocate_nothing_beyond_the_sdks_own_recording() {
    let _alone = one_at_a_time();
    let exporter = exporter();
    let metrics = InMemoryMetricExporter::default();
    let meters = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    let meter = meters.meter("meshtrace");
    // What the SDK needs to record one value on a series it already has, with as many
    // attributes as a request's: the floor of any instrumentation.
    let histogram = meter.f64_histogram("baseline").build();
    let attrs: Vec<KeyValue> = (0..7)
        .map(|i| KeyValue::new(format!("k{i}"), "v"))
        .collect();
    let sdk_record = (0..ROUNDS)
        .map(|_| {
            let before = allocations();
            histogram.record(0.001, &attrs);
            allocations() - before
        })
        .min()
        .expect("rounds");
    current_thread().block_on(async {
        let off = measure(&clients(true, Metrics::Off), exporter, &sampled()).await;
        let on = measure(&clients(true, Metrics::With(meter)), exporter, &sampled()).await;
        let unsampled_off = measure(&clients(true, Metrics::Off), exporter, &unsampled_w3c()).await;
        let unsampled_on = measure(
            &clients(true, Metrics::With(meters.meter("meshtrace"))),
            exporter,
            &unsampled_w3c(),
        )
        .await;
        // Three measurements per request: the server's, the reqwest call's, the gRPC call's.
        for (name, off, on) in [
            ("sampled", &off, &on),
            ("unsampled", &unsampled_off, &unsampled_on),
        ] {
            let added = on.allocations.saturating_sub(off.allocations);
            println!(
                "{name:10} metrics off {:4}, on {:4} allocations per request: {added} added for \
                 3 measurements (the SDK's own record: {sdk_record} each)",
                off.allocations, on.allocations
            );
            assert!(
                added <= 3 * sdk_record,
                "{name}: metrics added {added} allocations per request, the SDK's three \
                 records need {}",
                3 * sdk_record
            );
        }
    });
    // The measurements were made: the three durations, with every request counted.
    meters.force_flush().expect("flush");
    let exports = metrics.get_finished_metrics().expect("metrics");
    let last = exports.last().expect("an export");
    let mut names: Vec<&str> = last
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .map(|m| m.name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "baseline",
            "http.client.request.duration",
            "http.server.request.duration",
            "rpc.client.call.duration"
        ]
    );
}

#[test]
fn an_unsampled_request_allocates_much_less_than_a_sampled_one() {
    let _alone = one_at_a_time();
    let exporter = exporter();
    current_thread().block_on(async {
        // The same handler and calls without meshtrace's layers (its two #[instrument] spans
        // still made, as roots the sampler declines): what meshtrace adds is the difference.
        let floor = measure(&clients(false, Metrics::Global), exporter, &sampled()).await;
        let clients = clients(true, Metrics::Global);
        let sampled = measure(&clients, exporter, &sampled()).await;
        let w3c = measure(&clients, exporter, &unsampled_w3c()).await;
        let b3 = measure(&clients, exporter, &unsampled_b3()).await;
        let root = measure(&clients, exporter, &root()).await;
        println!(
            "{:28} {:4} allocations per request",
            "without meshtrace (floor)", floor.allocations
        );
        let added = |m: &Measured| m.allocations.saturating_sub(floor.allocations);
        for (name, m) in [
            ("sampled", &sampled),
            ("unsampled (traceparent -00)", &w3c),
            ("unsampled (x-b3-sampled: 0)", &b3),
            ("root, sampler says no", &root),
        ] {
            println!(
                "{name:28} {:4} allocations per request ({:.2}x sampled), {:4} added by meshtrace \
                 ({:.2}x sampled), {} spans exported",
                m.allocations,
                m.allocations as f64 / sampled.allocations as f64,
                added(m),
                added(m) as f64 / added(&sampled) as f64,
                m.exported
            );
        }

        // The sampled request exports its spans: server, the two nested functions, two clients.
        assert_eq!(sampled.exported, 5, "{:?}", exporter.get_finished_spans());
        for m in [&sampled, &w3c, &b3, &root] {
            assert_eq!(m.sent.len(), 2, "both calls went out: {:?}", m.sent);
            for line in &m.sent {
                assert!(
                    line.contains(&format!("x-request-id={REQUEST_ID} ")),
                    "{line}"
                );
                assert!(line.contains(&format!("baggage={BAGGAGE} ")), "{line}");
            }
        }
        for m in [&w3c, &b3] {
            assert_eq!(m.exported, 0);
            for line in &m.sent {
                assert!(line.contains(&format!("traceparent=00-{TRACE}-")), "{line}");
                assert!(line.contains("-00 x-b3-sampled=0 "), "{line}");
            }
        }
        assert_eq!(root.exported, 0);
        for line in &root.sent {
            assert!(
                line.contains("-00 x-b3-sampled=0 ") || line.contains("-02 x-b3-sampled=0 "),
                "{line}"
            );
        }

        for (name, m) in [("traceparent -00", &w3c), ("x-b3-sampled: 0", &b3)] {
            assert!(
                m.allocations * 10 <= sampled.allocations * 7,
                "unsampled ({name}) {} allocations, sampled {}: want at most 0.7x",
                m.allocations,
                sampled.allocations
            );
        }
    });
}
