//! The cost of one instrumented hop, measured end to end on loopback, against what a Rust
//! team writes today without meshtrace.
//!
//! One hello-world `GET` over HTTP/1.1 (kept-alive connection, one request at a time) from a
//! reqwest-middleware client to an axum server, five ways in the same run:
//!
//! - `hop/baseline`: plain client to plain server, no instrumentation anywhere;
//! - `hop/meshtrace`: a client with [`MeshClientMiddleware`] to a server with
//!   [`MeshServerLayer`], both given `MeshPropagator::istio()`;
//! - `hop/usual`: "the usual stack": tower-http's `TraceLayer` whose `make_span_with` opens an
//!   `info_span!` with the same attributes as meshtrace's server span, extracts the parent
//!   with opentelemetry's *global* propagator (the SDK's `TraceContextPropagator` +
//!   `BaggagePropagator` + `opentelemetry-propagator-b3` multi-header in a
//!   `TextMapCompositePropagator`) and calls `set_parent`, plus a small reqwest-middleware
//!   [`Middleware`] that opens a client span with meshtrace's client attributes and injects
//!   from its context with the global propagator;
//! - `hop/meshtrace_unsampled` and `hop/usual_unsampled`: the same two stacks, the request
//!   sent inside a caller span whose (remote) parent is not sampled (flags `00`), so with the
//!   `ParentBased(AlwaysOn)` sampler the client span, the injected headers and the server side
//!   are all unsampled.
//!
//! Every request is sent inside a long-lived `caller` span (one per path, so that each path's
//! check finds its own trace; the baseline has one too, so that entering it is not counted as
//! the hop's cost). Sampled spans go through opentelemetry_sdk's `BatchSpanProcessor` to an
//! exporter that discards them. All paths share the global tracing subscriber (registry, an
//! INFO level filter as a service would run with, one tracing-opentelemetry layer over one SDK
//! tracer provider). meshtrace's layers carry their propagator, so opentelemetry's global
//! propagator is the usual stack's alone. The servers run on a multi-thread tokio runtime
//! with two workers, the clients on a current-thread runtime on the bench thread.
//!
//! Before measuring, a `/check` route on each server confirms, untimed, that every path does
//! what it claims: sampled, the server sees `traceparent` and B3 naming the client span, its
//! handler runs in the caller's trace, and the exporter receives a client span child of the
//! caller and a server span child of the client span; unsampled, the trace id still reaches
//! the server (traceparent flags `00`, `x-b3-sampled: 0`, the handler in the caller's trace)
//! and no span of that trace reaches the exporter; plain, no trace at all.
//!
//! After the criterion report it measures all five paths in alternating rounds (same system
//! state for each path of a round, the order rotated every round) and takes the median of the
//! per-round differences to the baseline, a steadier estimate of the added time than the
//! difference of separately measured medians. Then, outside any timing, it counts heap
//! allocations per request on each path with a counting global allocator (client and server
//! are in this process, so one counter sees both) and, for the propagation and the usual
//! stack's spans, per stage. Last, one markdown table: the added time and allocations per
//! hop, and the ratios meshtrace / usual stack.
//!
//! Environment: `HOP_ROUNDS` (default 50) and `HOP_ROUND_REQUESTS` (default 200) size the
//! alternating rounds; `HOP_ALLOC_REQUESTS` (default 2000) the allocation count.
//!
//! Needs `--features axum,reqwest` (or `--all-features`).

mod common;
use common::median_ns;

use axum::extract::MatchedPath;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use criterion::Criterion;
use http::{HeaderValue, Request};
use meshtrace::client::reqwest::MeshClientMiddleware;
use meshtrace::server::MeshServerLayer;
use meshtrace::MeshPropagator;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::{SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_propagator_b3::{B3Encoding, Propagator as B3Propagator};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tower_http::trace::TraceLayer;
use tracing::{field, Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

/// What Envoy puts on every request; sent on every path.
const REQUEST_ID: &str = "6f3a2c1e-9b8d-4e7f-a1c2-3d4e5f6a7b8c";

// ---------------------------------------------------------------------------------------
// Counting allocator

/// The system allocator, counting allocations (and reallocations) and the bytes asked for.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations and bytes so far, process-wide.
fn allocated() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::Relaxed),
        ALLOCATED_BYTES.load(Ordering::Relaxed),
    )
}

/// Allocations per call of `f`, over `n` calls on this thread (the rest of the process idle).
fn allocations_per_call(n: u64, mut f: impl FnMut()) -> f64 {
    f();
    let (before, _) = allocated();
    for _ in 0..n {
        f();
    }
    let (after, _) = allocated();
    (after - before) as f64 / n as f64
}

// ---------------------------------------------------------------------------------------
// The paths

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Mesh,
    MeshUnsampled,
    Usual,
    UsualUnsampled,
    MeshMetered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Plain,
    /// meshtrace's layers, request metrics off: the spans alone, as the usual stack has them.
    Mesh,
    Usual,
    /// meshtrace's layers recording request metrics into an SDK meter provider.
    MeshMetered,
}

impl Variant {
    const ALL: [Variant; 6] = [
        Variant::Plain,
        Variant::Mesh,
        Variant::MeshUnsampled,
        Variant::Usual,
        Variant::UsualUnsampled,
        Variant::MeshMetered,
    ];

    /// The criterion id, `hop/<id>`.
    fn id(self) -> &'static str {
        match self {
            Variant::Plain => "baseline",
            Variant::Mesh => "meshtrace",
            Variant::MeshUnsampled => "meshtrace_unsampled",
            Variant::Usual => "usual",
            Variant::UsualUnsampled => "usual_unsampled",
            Variant::MeshMetered => "meshtrace_metrics",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Plain => "plain (baseline)",
            Variant::Mesh => "meshtrace, sampled",
            Variant::MeshUnsampled => "meshtrace, unsampled",
            Variant::Usual => "usual stack, sampled",
            Variant::UsualUnsampled => "usual stack, unsampled",
            Variant::MeshMetered => "meshtrace, sampled, request metrics on",
        }
    }

    fn stack(self) -> Stack {
        match self {
            Variant::Plain => Stack::Plain,
            Variant::Mesh | Variant::MeshUnsampled => Stack::Mesh,
            Variant::Usual | Variant::UsualUnsampled => Stack::Usual,
            Variant::MeshMetered => Stack::MeshMetered,
        }
    }

    /// Whether the caller's trace is sampled.
    fn sampled(self) -> bool {
        !matches!(self, Variant::MeshUnsampled | Variant::UsualUnsampled)
    }
}

/// The SDK composite a team registers globally today: W3C trace context, W3C baggage, B3
/// multi-header.
fn sdk_composite() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
        Box::new(B3Propagator::with_encoding(B3Encoding::MultipleHeader)),
    ])
}

// ---------------------------------------------------------------------------------------
// The usual stack

/// The usual stack's server span: meshtrace's server attributes, as tracing fields.
fn usual_server_span<B>(req: &Request<B>) -> Span {
    let method = req.method().as_str();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let (host, port) = match req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        Some(h) => match h.rsplit_once(':') {
            Some((host, port)) => (Some(host), port.parse::<i64>().ok()),
            None => (Some(h), None),
        },
        None => (None, None),
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let version = match req.version() {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        _ => "1.1",
    };
    tracing::info_span!(
        "HTTP request",
        otel.name = name,
        otel.kind = "server",
        http.request.method = method,
        url.path = req.uri().path(),
        url.scheme = req.uri().scheme_str().unwrap_or("http"),
        http.route = route,
        server.address = host,
        server.port = port,
        network.protocol.version = version,
        user_agent.original = header("user-agent"),
        "http.request.header.x-request-id" = header("x-request-id"),
        http.response.status_code = field::Empty,
    )
}

/// The usual stack's parent: extracted with opentelemetry's global propagator.
fn usual_extract(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

fn usual_make_span<B>(req: &Request<B>) -> Span {
    let span = usual_server_span(req);
    let _ = span.set_parent(usual_extract(req.headers()));
    span
}

/// The usual stack's client span: meshtrace's client attributes, as tracing fields.
fn usual_client_span(req: &reqwest::Request) -> Span {
    let url = req.url();
    let method = req.method().as_str();
    tracing::info_span!(
        "HTTP request",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        server.address = url.host_str(),
        server.port = url.port_or_known_default().map(i64::from),
        url.full = url.as_str(),
        http.response.status_code = field::Empty,
    )
}

/// The usual stack's inject: from the client span's context, with the global propagator.
fn usual_inject(cx: &Context, headers: &mut HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(cx, &mut HeaderInjector(headers))
    });
}

type UsualMakeSpan = fn(&Request<axum::body::Body>) -> Span;
type UsualOnResponse = fn(&http::Response<axum::body::Body>, Duration, &Span);
type UsualLayer = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    UsualMakeSpan,
    tower_http::trace::DefaultOnRequest,
    UsualOnResponse,
>;

/// The usual stack's server layer: tower-http's defaults but for the span and the status.
fn usual_layer() -> UsualLayer {
    TraceLayer::new_for_http()
        .make_span_with(usual_make_span as UsualMakeSpan)
        .on_response(usual_on_response as UsualOnResponse)
}

fn usual_on_response<B>(res: &http::Response<B>, _latency: Duration, span: &Span) {
    span.record(
        "http.response.status_code",
        i64::from(res.status().as_u16()),
    );
}

/// The client middleware a team writes for itself.
struct UsualClientMiddleware;

#[async_trait::async_trait]
impl Middleware for UsualClientMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let span = usual_client_span(&req);
        usual_inject(&span.context(), req.headers_mut());
        let result = next.run(req, extensions).instrument(span.clone()).await;
        if let Ok(res) = &result {
            span.record(
                "http.response.status_code",
                i64::from(res.status().as_u16()),
            );
        }
        result
    }
}

// ---------------------------------------------------------------------------------------
// Servers, clients, exporter

/// A batch exporter that counts the spans it is given and drops them, except while a check
/// runs, when it keeps them for inspection.
#[derive(Debug, Clone, Default)]
struct DiscardExporter {
    spans: Arc<AtomicU64>,
    kept: Arc<Mutex<Option<Vec<SpanData>>>>,
}

impl SpanExporter for DiscardExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(kept) = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            kept.extend(batch);
        }
        Ok(())
    }
}

/// What the server saw: `traceparent`, `x-b3-traceid`, `x-b3-sampled` (`-` when absent) and
/// the trace id of the span the handler runs in (all zeros when there is none), separated by
/// spaces.
async fn check(headers: HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let server_trace = Span::current().context().span().span_context().trace_id();
    format!(
        "{} {} {} {}",
        header("traceparent"),
        header("x-b3-traceid"),
        header("x-b3-sampled"),
        server_trace
    )
}

fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/check", get(check))
}

/// Serves `router` on an ephemeral loopback port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    format!("http://{addr}")
}

fn client(stack: Stack, mesh: &MeshPropagator, meter: &Meter) -> ClientWithMiddleware {
    let inner = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let builder = ClientBuilder::new(inner);
    match stack {
        Stack::Plain => builder.build(),
        Stack::Mesh => builder
            .with(
                MeshClientMiddleware::new()
                    .propagator(mesh.clone())
                    .metrics(false),
            )
            .build(),
        Stack::MeshMetered => builder
            .with(
                MeshClientMiddleware::new()
                    .propagator(mesh.clone())
                    .meter(meter.clone()),
            )
            .build(),
        Stack::Usual => builder.with(UsualClientMiddleware).build(),
    }
}

/// One request, body read to the end so that the connection goes back to the pool.
async fn get_body(client: &ClientWithMiddleware, url: &str) -> String {
    let res = client
        .get(url)
        .header("x-request-id", REQUEST_ID)
        .send()
        .await
        .expect("request");
    assert!(res.status().is_success(), "{url}: {}", res.status());
    res.text().await.expect("response body")
}

/// The context of a request this process is handling whose upstream did not sample it
/// (traceparent flags `00`), as an upstream at 1–10% sampling sends for most requests,
/// extracted by the stack under test (meshtrace's propagator, or the global SDK composite).
fn unsampled_parent(stack: Stack, mesh: &MeshPropagator, trace: u128) -> Context {
    let mut headers = HeaderMap::new();
    let traceparent = format!("00-{}-00f067aa0ba902b7-00", TraceId::from(trace));
    headers.insert(
        "traceparent",
        HeaderValue::from_str(&traceparent).expect("traceparent"),
    );
    headers.insert("x-request-id", HeaderValue::from_static(REQUEST_ID));
    let cx = match stack {
        Stack::Mesh | Stack::MeshMetered => mesh.extract_from_headers(&headers),
        _ => usual_extract(&headers),
    };
    let sc = cx.span().span_context().clone();
    assert!(
        sc.is_valid() && sc.is_remote() && !sc.is_sampled(),
        "{traceparent}: {sc:?}"
    );
    cx
}

/// One path: its client, its server's base URL, the span its requests are sent from.
struct Path {
    client: ClientWithMiddleware,
    base: String,
    caller: Span,
}

struct Setup {
    /// The servers' runtime: multi-thread, two workers.
    servers: tokio::runtime::Runtime,
    /// The clients' runtime: the bench thread itself, as a separate process's client would
    /// be, so that a request crosses threads only where it crosses the socket.
    rt: tokio::runtime::Runtime,
    provider: SdkTracerProvider,
    exporter: DiscardExporter,
    /// Where the metered path's request metrics go (read every 60 s and at the end).
    meters: SdkMeterProvider,
    mesh: MeshPropagator,
    /// Indexed by `Variant as usize`.
    paths: Vec<Path>,
    /// Spans that should reach the exporter: two per request on a sampled instrumented
    /// path, those of the per-stage counts, and the sampled callers'.
    expected_spans: AtomicU64,
}

impl Setup {
    fn new() -> Setup {
        let exporter = DiscardExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter.clone())
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .build();
        // INFO, as a service would run: without a level filter the TRACE events of hyper-util's
        // connection pool, emitted inside the client span, become span events.
        // One tracing-opentelemetry layer for every path. By default it is configured as
        // `meshtrace::init()` configures it (no code location, thread or busy/idle attributes
        // on spans); `HOP_SPAN_EXTRAS=1` gives it tracing-opentelemetry's own defaults (all
        // three), which cost both stacks the same per span.
        let extras = std::env::var("HOP_SPAN_EXTRAS").is_ok_and(|v| v == "1");
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("bench"))
            .with_location(extras)
            .with_threads(extras)
            .with_tracked_inactivity(extras);
        println!(
            "tracing-opentelemetry layer: {} (HOP_SPAN_EXTRAS={})",
            if extras {
                "its own defaults, with code location, threads and busy/idle times"
            } else {
                "as meshtrace::init() sets it up, without the per-span extras"
            },
            u8::from(extras)
        );
        let subscriber = tracing_subscriber::registry()
            .with(LevelFilter::INFO)
            .with(otel);
        tracing::subscriber::set_global_default(subscriber).expect("first global subscriber");
        // opentelemetry's global propagator is the usual stack's; meshtrace's layers are
        // given theirs, so that neither path uses the other's.
        opentelemetry::global::set_text_map_propagator(sdk_composite());
        let mesh = MeshPropagator::istio();

        let servers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let meters = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
            .build();
        let meter = meters.meter("meshtrace");
        let (plain, meshed, usual, metered) = servers.block_on(async {
            (
                serve(app()).await,
                serve(
                    app().layer(
                        MeshServerLayer::new()
                            .propagator(mesh.clone())
                            .metrics(false),
                    ),
                )
                .await,
                serve(app().layer(usual_layer())).await,
                serve(
                    app().layer(
                        MeshServerLayer::new()
                            .propagator(mesh.clone())
                            .meter(meter.clone()),
                    ),
                )
                .await,
            )
        });
        let paths = Variant::ALL
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let caller = tracing::info_span!("caller", variant = v.id());
                if !v.sampled() {
                    let _ = caller.set_parent(unsampled_parent(
                        v.stack(),
                        &mesh,
                        0x5eed_0000_0000_0000 + i as u128,
                    ));
                }
                let base = match v.stack() {
                    Stack::Plain => plain.clone(),
                    Stack::Mesh => meshed.clone(),
                    Stack::Usual => usual.clone(),
                    Stack::MeshMetered => metered.clone(),
                };
                Path {
                    client: client(v.stack(), &mesh, &meter),
                    base,
                    caller,
                }
            })
            .collect();
        Setup {
            servers,
            rt,
            provider,
            exporter,
            meters,
            mesh,
            paths,
            expected_spans: AtomicU64::new(0),
        }
    }

    fn path(&self, v: Variant) -> &Path {
        &self.paths[v as usize]
    }

    fn url(&self, v: Variant, route: &str) -> String {
        format!("{}/{route}", self.path(v).base)
    }

    /// Untimed: every path does what it claims.
    fn check(&self) {
        let mut keys = Vec::new();
        for v in Variant::ALL {
            keys.push(self.check_one(v));
        }
        // The comparison is fair: the usual stack's spans carry the attributes meshtrace's
        // do (but meshtrace's own `meshtrace.*`), no fewer, no more.
        let [_, Some(mesh), _, Some(usual), _, Some(metered)] = &keys[..] else {
            panic!("sampled checks return their spans' attribute keys")
        };
        assert_eq!(
            mesh, usual,
            "attribute keys (client, server): meshtrace's vs the usual stack's"
        );
        assert_eq!(mesh, metered, "metrics change nothing on the spans");
    }

    /// Checks one path; for a sampled instrumented one, returns the attribute keys of its
    /// client and server spans (without meshtrace's own `meshtrace.*` and the per-span
    /// extras of tracing-opentelemetry that differ by call site).
    fn check_one(&self, v: Variant) -> Option<[Vec<String>; 2]> {
        let path = self.path(v);
        let caller = path.caller.context().span().span_context().clone();
        let caller_trace = caller.trace_id();
        assert_ne!(caller_trace, TraceId::INVALID, "{v:?}: no caller trace");
        assert_eq!(
            caller.is_sampled(),
            v.sampled(),
            "{v:?}: caller span sampling"
        );
        self.keep_exported(true);
        let reply = self.rt.block_on(
            get_body(&path.client, &self.url(v, "check")).instrument(path.caller.clone()),
        );
        self.expect_spans(v, 2);
        let fields: Vec<&str> = reply.split(' ').collect();
        let [traceparent, b3_trace, b3_sampled, server_trace] = fields[..] else {
            panic!("{v:?}: bad /check reply {reply:?}")
        };
        if v == Variant::Plain {
            assert_eq!(
                [traceparent, b3_trace, b3_sampled, server_trace],
                ["-", "-", "-", &TraceId::INVALID.to_string()],
                "plain request: no trace headers, no server span"
            );
            self.keep_exported(false);
            println!("check: plain hop carries no trace");
            return None;
        }
        let caller_hex = caller_trace.to_string();
        let flags = traceparent.rsplit('-').next().unwrap_or("");
        let flag_bits = u8::from_str_radix(flags, 16).unwrap_or(0xff);
        assert!(
            traceparent.starts_with(&format!("00-{caller_hex}-")),
            "{v:?}: traceparent {traceparent:?}, caller trace {caller_hex}"
        );
        assert_eq!(b3_trace, caller_hex, "{v:?}: x-b3-traceid");
        assert_eq!(
            server_trace, caller_hex,
            "{v:?}: the server's span is not in the caller's trace"
        );
        if !v.sampled() {
            assert_eq!(flags, "00", "{v:?}: traceparent {traceparent}");
            assert_eq!(b3_sampled, "0", "{v:?}: x-b3-sampled");
            // The server ends its span as the body ends, a little after the client read it.
            std::thread::sleep(Duration::from_millis(200));
            self.provider.force_flush().expect("flush");
            let leaked: Vec<String> = self
                .exported_so_far()
                .iter()
                .filter(|s| s.span_context.trace_id() == caller_trace)
                .map(|s| s.name.to_string())
                .collect();
            self.keep_exported(false);
            assert!(
                leaked.is_empty(),
                "{v:?}: unsampled request exported spans {leaked:?}"
            );
            println!(
                "check: {} hop carries {traceparent}, x-b3-sampled {b3_sampled}, the server \
                 handler in the caller's trace; no span exported",
                v.label()
            );
            return None;
        }
        // The flags carry `sampled`, and `random` (0x02) when this process started the trace.
        assert_eq!(flag_bits & 0x01, 0x01, "{v:?}: traceparent {traceparent}");
        assert_eq!(b3_sampled, "1", "{v:?}: x-b3-sampled");

        // A client span under the caller, named in the traceparent, and a server span under
        // it. The server ends its span as the body ends, which may be a little after the
        // client has read it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let (client, server) = loop {
            self.provider.force_flush().expect("flush");
            let spans = self.exported_so_far();
            let kind = |k: SpanKind| {
                spans
                    .iter()
                    .find(|s| s.span_kind == k && s.span_context.trace_id() == caller_trace)
                    .cloned()
            };
            match (kind(SpanKind::Client), kind(SpanKind::Server)) {
                (Some(c), Some(s)) => break (c, s),
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                found => panic!("{v:?}: exported client and server spans {found:?}"),
            }
        };
        self.keep_exported(false);
        assert_eq!(
            client.parent_span_id,
            caller.span_id(),
            "{v:?}: client span parent"
        );
        assert!(
            traceparent.contains(&format!("-{}-", client.span_context.span_id())),
            "{v:?}: traceparent {traceparent} does not name the client span"
        );
        assert_eq!(
            server.parent_span_id,
            client.span_context.span_id(),
            "{v:?}: server span parent"
        );
        assert!(
            server.parent_span_is_remote,
            "{v:?}: server span parent is remote"
        );
        let attrs = |s: &SpanData| s.attributes.len();
        println!(
            "check: {} hop carries {traceparent}; spans exported: {:?} ({} attributes, \
             client) -> {:?} ({} attributes, server)",
            v.label(),
            client.name,
            attrs(&client),
            server.name,
            attrs(&server)
        );
        let keys = |s: &SpanData| {
            let mut k: Vec<String> = s
                .attributes
                .iter()
                .map(|kv| kv.key.to_string())
                .filter(|k| {
                    !k.starts_with("meshtrace.") && !k.starts_with("code.") && k != "target"
                })
                .collect();
            k.sort();
            k
        };
        Some([keys(&client), keys(&server)])
    }

    fn keep_exported(&self, keep: bool) {
        *self
            .exporter
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = keep.then(Vec::new);
    }

    fn exported_so_far(&self) -> Vec<SpanData> {
        self.exporter
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default()
    }

    /// `spans` more spans exported if `v` is a sampled instrumented path.
    fn expect_spans(&self, v: Variant, spans: u64) {
        if v.sampled() && v != Variant::Plain {
            self.expected_spans.fetch_add(spans, Ordering::Relaxed);
        }
    }

    /// `n` requests on one path, from inside its caller span; the time they took.
    fn run(&self, v: Variant, n: u64, url: &str) -> Duration {
        self.expect_spans(v, 2 * n);
        let path = self.path(v);
        self.rt.block_on(
            async {
                let start = Instant::now();
                for _ in 0..n {
                    black_box(get_body(&path.client, black_box(url)).await);
                }
                start.elapsed()
            }
            .instrument(path.caller.clone()),
        )
    }

    fn bench(&self, c: &mut Criterion) {
        let mut g = c.benchmark_group("hop");
        for v in Variant::ALL {
            let url = self.url(v, "hello");
            g.bench_function(v.id(), |b| b.iter_custom(|iters| self.run(v, iters, &url)));
        }
        g.finish();
    }

    /// All paths in alternating rounds, the order rotated (and reversed every other round);
    /// per path, the medians (ns per request) of its time and of its difference to the
    /// baseline in the same round, and the quartiles of that difference.
    fn paired(&self, rounds: usize, n: u64) -> Vec<Rounds> {
        let urls: Vec<String> = Variant::ALL.iter().map(|&v| self.url(v, "hello")).collect();
        let k = Variant::ALL.len();
        let mut times = vec![Vec::with_capacity(rounds); k];
        let mut added = vec![Vec::with_capacity(rounds); k];
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..k).map(|i| (i + round / 2) % k).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            let mut this = vec![0.0; k];
            for i in order {
                let d = self.run(Variant::ALL[i], n, &urls[i]);
                this[i] = d.as_nanos() as f64 / n as f64;
            }
            for i in 0..k {
                times[i].push(this[i]);
                added[i].push(this[i] - this[0]);
            }
        }
        times
            .into_iter()
            .zip(added)
            .map(|(t, a)| {
                let [q1, q3] = quartiles(a.clone());
                Rounds {
                    time: median(t),
                    added: median(a),
                    q1,
                    q3,
                }
            })
            .collect()
    }

    /// Allocations and bytes per request on each path, over `n` requests each.
    fn allocations(&self, n: u64) -> Vec<(f64, f64)> {
        Variant::ALL
            .iter()
            .map(|&v| {
                let url = self.url(v, "hello");
                self.run(v, 100, &url);
                // Let the last server span end, then count.
                std::thread::sleep(Duration::from_millis(20));
                let (a0, b0) = allocated();
                self.run(v, n, &url);
                std::thread::sleep(Duration::from_millis(20));
                let (a1, b1) = allocated();
                ((a1 - a0) as f64 / n as f64, (b1 - b0) as f64 / n as f64)
            })
            .collect()
    }

    /// Allocations per hop by stage, each stage run alone on this thread (the servers
    /// idle), `n` times, minus the same run without instrumentation: the client side
    /// (reqwest-middleware with the stack's middleware, the response canned by a last
    /// middleware instead of sent), and within it the inject alone; the server side (the
    /// axum router with the stack's layer, called in process with the headers its client
    /// sends, the body read to its end), and within it the extract alone.
    fn stages(&self, n: u64) -> Vec<Stage> {
        let plain_client = ClientBuilder::new(reqwest::Client::new())
            .with(Canned)
            .build();
        let plain_router = app();
        let mut out = Vec::new();
        // The metered path's stages are the sampled path's, and a measurement's cost shows in
        // the whole hop.
        let staged = |v: &Variant| !matches!(v, Variant::Plain | Variant::MeshMetered);
        for v in Variant::ALL.into_iter().filter(staged) {
            let stack = v.stack();
            let caller = self.path(v).caller.clone();
            // The client side.
            let canned = {
                let builder = ClientBuilder::new(reqwest::Client::new());
                match stack {
                    Stack::Mesh => builder.with(
                        MeshClientMiddleware::new()
                            .propagator(self.mesh.clone())
                            .metrics(false),
                    ),
                    _ => builder.with(UsualClientMiddleware),
                }
                .with(Canned)
                .build()
            };
            let url = self.url(v, "hello");
            let client_side = |client: &ClientWithMiddleware| {
                self.rt.block_on(
                    async {
                        black_box(get_body(client, &url).await);
                        let (before, _) = allocated();
                        for _ in 0..n {
                            black_box(get_body(client, black_box(&url)).await);
                        }
                        let (after, _) = allocated();
                        (after - before) as f64 / n as f64
                    }
                    .instrument(caller.clone()),
                )
            };
            let client_side = client_side(&canned) - client_side(&plain_client);

            // The inject, from a client span's context, into the headers of the request.
            let mut request = HeaderMap::new();
            request.insert("x-request-id", HeaderValue::from_static(REQUEST_ID));
            let client_cx = {
                let _entered = caller.enter();
                tracing::info_span!("client", otel.kind = "client").context()
            };
            let inject = |cx: &Context, h: &mut HeaderMap| match stack {
                Stack::Mesh => self.mesh.inject_into_headers(cx, h),
                _ => usual_inject(cx, h),
            };
            let mut maps: Vec<HeaderMap> = (0..=n).map(|_| request.clone()).collect();
            let inject_allocs = allocations_per_call(n, || {
                inject(&client_cx, &mut maps.pop().expect("one map per call"))
            });

            // reqwest keeps a copy of the request's headers (for redirects): the first copy
            // of freshly injected ones, as a real hop makes it.
            let mut copied = 0;
            for _ in 0..n {
                let mut h = request.clone();
                inject(&client_cx, &mut h);
                let (before, _) = allocated();
                let copy = black_box(h.clone());
                let (after, _) = allocated();
                drop(copy);
                copied += after - before;
            }
            let first_copy = copied as f64 / n as f64 - {
                let h = request.clone();
                allocations_per_call(1, || {
                    let _ = h.clone();
                })
            };

            // What the server receives.
            let mut received = request.clone();
            received.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
            received.insert("accept", HeaderValue::from_static("*/*"));
            inject(&client_cx, &mut received);
            let extract_allocs = allocations_per_call(n, || match stack {
                Stack::Mesh => drop(black_box(self.mesh.extract_from_headers(&received))),
                _ => drop(black_box(usual_extract(&received))),
            });

            // The server side.
            let router = match stack {
                Stack::Mesh => app().layer(
                    MeshServerLayer::new()
                        .propagator(self.mesh.clone())
                        .metrics(false),
                ),
                _ => app().layer(usual_layer()),
            };
            let server_side = |router: &Router| {
                self.rt.block_on(async {
                    use tower::ServiceExt as _;
                    let call = || async {
                        let mut req = Request::get("/hello")
                            .body(axum::body::Body::empty())
                            .expect("request");
                        *req.headers_mut() = received.clone();
                        let res = router.clone().oneshot(req).await.expect("infallible");
                        black_box(
                            axum::body::to_bytes(res.into_body(), 64)
                                .await
                                .expect("body"),
                        );
                    };
                    call().await;
                    let (before, _) = allocated();
                    for _ in 0..n {
                        call().await;
                    }
                    let (after, _) = allocated();
                    (after - before) as f64 / n as f64
                })
            };
            let server_side = server_side(&router) - server_side(&plain_router);
            // A client span per call on the client side, a server span per call on the
            // server side, and the client span of the inject.
            self.expect_spans(v, 2 * (n + 1) + 1);
            // Let the batch processor take the spans of the stages away.
            std::thread::sleep(Duration::from_millis(20));
            out.push(Stage {
                variant: v,
                client_side,
                inject: inject_allocs,
                first_copy,
                server_side,
                extract: extract_allocs,
            });
        }
        out
    }

    /// Flushes the exporter; returns (spans exported, spans expected).
    fn finish(self) -> (u64, u64) {
        for v in Variant::ALL {
            // The callers' spans end here; the plain path's caller is sampled too.
            if v.sampled() {
                self.expected_spans.fetch_add(1, Ordering::Relaxed);
            }
        }
        let exported = self.exporter.spans.clone();
        drop(self.paths);
        // Let the servers end the spans of the last responses.
        std::thread::sleep(Duration::from_millis(100));
        if let Err(e) = self.provider.force_flush() {
            eprintln!("force_flush: {e}");
        }
        let exported = exported.load(Ordering::Relaxed);
        let _ = self.provider.shutdown();
        let _ = self.meters.shutdown();
        self.rt.shutdown_background();
        self.servers.shutdown_background();
        (exported, self.expected_spans.load(Ordering::Relaxed))
    }
}

/// Allocations per hop in one stage ([`Setup::stages`]), over the plain path's.
struct Stage {
    variant: Variant,
    client_side: f64,
    inject: f64,
    /// The first copy of the headers after inject, over a copy of the same headers without.
    first_copy: f64,
    server_side: f64,
    extract: f64,
}

/// The last middleware of the client-side count: answers every request itself.
struct Canned;

#[async_trait::async_trait]
impl Middleware for Canned {
    async fn handle(
        &self,
        _req: reqwest::Request,
        _extensions: &mut http::Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Ok(reqwest::Response::from(http::Response::new("hello")))
    }
}

/// One path in the alternating rounds, ns per request.
struct Rounds {
    /// Median time.
    time: f64,
    /// Median difference to the baseline of the same round, and its quartiles.
    added: f64,
    q1: f64,
    q3: f64,
}

/// First and third quartiles (nearest rank).
fn quartiles(mut v: Vec<f64>) -> [f64; 2] {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return [f64::NAN; 2];
    }
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    [at(0.25), at(0.75)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn us(ns: f64) -> String {
    format!("{:.1} µs", ns / 1e3)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "n/a".to_owned()
    }
}

struct Measured {
    criterion: Vec<f64>,
    paired: Vec<Rounds>,
    rounds: usize,
    round_requests: u64,
    allocs: Vec<(f64, f64)>,
    alloc_requests: u64,
    stages: Vec<Stage>,
}

fn report(m: &Measured, exported: u64, expected: u64) {
    let base = 0;
    println!(
        "\n| path (per request, median) | criterion | added | {} alternating rounds of {}: \
         time | added (quartiles) | allocations | added | bytes allocated | added |",
        m.rounds, m.round_requests
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, v) in Variant::ALL.iter().enumerate() {
        let r = &m.paired[i];
        let (n, b) = m.allocs[i];
        println!(
            "| {} | {} | {} | {} | {} ({:.1}–{:.1}) | {:.1} | {:.1} | {:.0} B | {:.0} B |",
            v.label(),
            us(m.criterion[i]),
            us(m.criterion[i] - m.criterion[base]),
            us(r.time),
            us(r.added),
            r.q1 / 1e3,
            r.q3 / 1e3,
            n,
            n - m.allocs[base].0,
            b,
            b - m.allocs[base].1,
        );
    }

    let added_criterion = |v: Variant| m.criterion[v as usize] - m.criterion[base];
    let added_paired = |v: Variant| m.paired[v as usize].added;
    let added_allocs = |v: Variant| m.allocs[v as usize].0 - m.allocs[base].0;
    println!(
        "\nOne hop (client span + inject + extract + server span) over a plain \
         reqwest → axum hop of {} ({} allocations per request); meshtrace against the usual \
         stack (tower-http `TraceLayer` + SDK composite propagator + a reqwest-middleware \
         middleware), same tracing-opentelemetry layer and SDK, same run:\n",
        us(m.paired[base].time),
        m.allocs[base].0.round()
    );
    println!("| added per hop | meshtrace | usual stack | meshtrace / usual | target |");
    println!("|---|---|---|---|---|");
    for (what, mesh, usual, time_target) in [
        ("sampled", Variant::Mesh, Variant::Usual, "≤ 0.8×"),
        (
            "unsampled",
            Variant::MeshUnsampled,
            Variant::UsualUnsampled,
            "≤ 0.5×",
        ),
    ] {
        let rows: [(&str, f64, f64, &str, bool); 3] = [
            (
                "time, criterion medians",
                added_criterion(mesh),
                added_criterion(usual),
                time_target,
                true,
            ),
            (
                "time, alternating rounds",
                added_paired(mesh),
                added_paired(usual),
                time_target,
                true,
            ),
            (
                "allocations",
                added_allocs(mesh),
                added_allocs(usual),
                "≤ 0.4×",
                false,
            ),
        ];
        for (row, a, b, target, time) in rows {
            let show = |x: f64| if time { us(x) } else { format!("{x:.1}") };
            println!(
                "| {what}: {row} | {} | {} | {} | {target} |",
                show(a),
                show(b),
                ratio(a, b)
            );
        }
    }
    println!(
        "\n(allocations counted over {} requests per path, client and server in this \
         process; times from criterion's medians and from the median of per-round \
         differences to the baseline)",
        m.alloc_requests
    );
    let (metered, spans_only) = (Variant::MeshMetered, Variant::Mesh);
    println!(
        "\nRequest metrics (http.client.request.duration and http.server.request.duration, \
         one measurement on each side, into an SDK meter provider) add per hop, over \
         meshtrace's spans alone: {} (criterion), {} (alternating rounds), {:.1} allocations \
         ({:.2}× the sampled hop's time added over plain)",
        us(added_criterion(metered) - added_criterion(spans_only)),
        us(added_paired(metered) - added_paired(spans_only)),
        added_allocs(metered) - added_allocs(spans_only),
        added_paired(metered) / added_paired(spans_only),
    );

    println!(
        "\n| added allocations per hop, by stage | client side (span + inject) | of which \
         inject | server side (span + extract) | of which extract | rest (total − both \
         sides) | of which reqwest's copy of the injected headers |"
    );
    println!("|---|---|---|---|---|---|---|");
    // Each side is counted in process (no socket): the rest is what only a real hop does,
    // such as reqwest cloning the request's headers (each owned, not yet shared `Bytes` of
    // a header name or value allocates when first cloned) and hyper parsing the extra
    // header names on the server.
    for s in &m.stages {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            s.variant.label(),
            s.client_side,
            s.inject,
            s.server_side,
            s.extract,
            added_allocs(s.variant) - s.client_side - s.server_side,
            s.first_copy,
        );
    }
    // The criterion benches run seconds apart; if the machine changed state in between
    // (another process started, the CPUs went idle), their differences are noise. The
    // rounds compare the paths under the same conditions.
    let (worst, drift) = Variant::ALL[1..]
        .iter()
        .map(|&v| (v, (added_criterion(v) - added_paired(v)).abs()))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("instrumented paths");
    if drift > 0.25 * m.criterion[base].min(m.paired[base].time) {
        println!(
            "\nwarning: the criterion differences and the alternating rounds disagree by up \
             to {:.1} µs ({}): loopback latency changed during the run (other load on the \
             machine?). The rounds are the steadier estimate; rerun on a quiet machine to \
             trust the criterion rows.",
            drift / 1e3,
            worst.label()
        );
    }
    println!(
        "\nspans exported (and discarded): {exported} of {expected} expected (two per sampled \
         request, the per-stage counts' and the callers'; none for unsampled requests){}",
        match expected.checked_sub(exported) {
            Some(0) => String::new(),
            Some(missing) =>
                format!("; {missing} dropped, as the batch processor does when its queue is full"),
            None => format!("; {} MORE than expected", exported - expected),
        }
    );
}

fn main() {
    let since = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    let setup = Setup::new();
    setup.check();
    setup.bench(&mut criterion);
    criterion.final_summary();
    let measured: Option<Vec<f64>> = Variant::ALL
        .iter()
        .map(|v| median_ns("hop", v.id(), since))
        .collect();
    // Only after a real measurement of all paths (not under `cargo test --benches`, `--list`,
    // or a filter that leaves one out).
    let Some(criterion_medians) = measured else {
        let (exported, expected) = setup.finish();
        println!(
            "(hop paths not all measured in this run: no comparison; {exported} spans exported \
             of {expected} expected)"
        );
        return;
    };
    let rounds = env_or("HOP_ROUNDS", 50) as usize;
    let round_requests = env_or("HOP_ROUND_REQUESTS", 200);
    let alloc_requests = env_or("HOP_ALLOC_REQUESTS", 2000);
    let paired = setup.paired(rounds, round_requests);
    let allocs = setup.allocations(alloc_requests);
    let stages = setup.stages(alloc_requests);
    let (exported, expected) = setup.finish();
    report(
        &Measured {
            criterion: criterion_medians,
            paired,
            rounds,
            round_requests,
            allocs,
            alloc_requests,
            stages,
        },
        exported,
        expected,
    );
}
