//! Helpers for the test files that run services on 127.0.0.1 (axum, reqwest, tokio): binding
//! and serving, a client with meshtrace's reqwest middleware, a back service that records
//! what it received, and reading spans back from an in-memory exporter.
//!
//! Nothing here installs telemetry: each test binary sets up its own subscriber, exporter and
//! global propagator (or none). Each test file is its own crate and uses only some of these
//! helpers, so unused ones are not an error here.
#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use meshtrace::client::reqwest::MeshClientMiddleware;
use opentelemetry::trace::{SpanKind, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use reqwest_middleware::{ClientWithMiddleware, RequestBuilder};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

// ---------------------------------------------------------------- serving and calling

/// A listener on a free port of 127.0.0.1, and its address.
pub async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// Serves `app` on a free port of 127.0.0.1 in the background; returns its address.
pub async fn serve(app: Router) -> SocketAddr {
    let (listener, addr) = listen().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A reqwest client through reqwest-middleware with `MeshClientMiddleware`.
pub fn traced_client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(MeshClientMiddleware::new())
        .build()
}

/// How a front service reaches its back service: a traced client and the back service's
/// base URL.
#[derive(Clone)]
pub struct Caller {
    pub client: ClientWithMiddleware,
    pub back: String,
}

impl Caller {
    /// A `traced_client` for the back service at `back`.
    pub fn new(back: String) -> Caller {
        Caller {
            client: traced_client(),
            back,
        }
    }

    /// `GET /back/{tag}` on the back service, ready to send.
    pub fn get(&self, tag: &str) -> RequestBuilder {
        self.client.get(format!("{}/back/{tag}", self.back))
    }

    /// Sends `GET /back/{tag}`: `Ok` if the back service answered with a success, else the
    /// 502 a front service answers with.
    pub async fn call(&self, tag: &str) -> Result<(), (StatusCode, String)> {
        match self.get(tag).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err((StatusCode::BAD_GATEWAY, r.status().to_string())),
            Err(e) => Err((StatusCode::BAD_GATEWAY, e.to_string())),
        }
    }
}

/// Waits (up to 5 s) until another request is at `barrier` too, so that both are in their
/// handlers at once; a lone request gets a 500 answer instead of hanging.
pub async fn wait_for_partner(barrier: &Barrier) -> Result<(), (StatusCode, String)> {
    match tokio::time::timeout(Duration::from_secs(5), barrier.wait()).await {
        Ok(_) => Ok(()),
        Err(_) => Err((StatusCode::INTERNAL_SERVER_ERROR, "no partner".into())),
    }
}

// ---------------------------------------------------------------- a recording back service

/// What a back service received: the `{id}` of each request's path and its headers, in
/// arrival order.
pub type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// A back service answering `GET /back/{id}` with `back {id}` (`/back/unavailable` answers
/// 503) that records every request in `seen`. It has no layer of its own.
pub fn recording_back(seen: Seen) -> Router {
    Router::new()
        .route("/back/{id}", get(record))
        .with_state(seen)
}

async fn record(
    State(seen): State<Seen>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    seen.lock().expect("lock").push((id.clone(), headers));
    if id == "unavailable" {
        (StatusCode::SERVICE_UNAVAILABLE, "no capacity".into())
    } else {
        (StatusCode::OK, format!("back {id}"))
    }
}

/// Starts a `recording_back` (no layer: it only records); returns its base URL and what it
/// records.
pub async fn start_back() -> (String, Seen) {
    let seen = Seen::default();
    let addr = serve(recording_back(seen.clone())).await;
    (format!("http://{addr}"), seen)
}

/// The headers of the one back request to `/back/{id}`.
pub fn seen_for(seen: &Seen, id: &str) -> HeaderMap {
    let hits: Vec<HeaderMap> = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|(t, _)| t == id)
        .map(|(_, h)| h.clone())
        .collect();
    assert_eq!(hits.len(), 1, "one back request tagged {id:?}");
    hits.into_iter().next().expect("one")
}

/// The headers of every back request, in arrival order.
pub fn all_seen(seen: &Seen) -> Vec<HeaderMap> {
    seen.lock()
        .expect("lock")
        .iter()
        .map(|(_, h)| h.clone())
        .collect()
}

// ---------------------------------------------------------------- spans

/// Sets, as the global default, a tracing subscriber with the OpenTelemetry layer exporting
/// through `provider`'s tracer `tracer_name`. INFO and up, as a service would run: hyper and
/// h2 open TRACE-level spans of their own.
pub fn set_global_otel_subscriber(provider: &SdkTracerProvider, tracer_name: &'static str) {
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer(tracer_name)));
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per binary");
}

/// The finished spans of one trace in `exporter`, right now (no waiting).
pub fn finished_spans(exporter: &InMemorySpanExporter, trace_id: TraceId) -> Vec<SpanData> {
    exporter
        .get_finished_spans()
        .expect("in-memory exporter")
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .collect()
}

/// The finished spans of one trace in `exporter`, waiting (up to 10 s) until there are at
/// least `want`: spans end when their response bodies end, a little after the caller has its
/// answer.
pub async fn wait_for_spans(
    exporter: &InMemorySpanExporter,
    trace_id: TraceId,
    want: usize,
) -> Vec<SpanData> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let spans = finished_spans(exporter, trace_id);
        if spans.len() >= want || tokio::time::Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The one span among `spans` with this name and kind.
pub fn one<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> &'a SpanData {
    let found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == name && s.span_kind == kind)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {kind:?} span named {name:?} in {:?}",
        spans
            .iter()
            .map(|s| (&s.name, &s.span_kind))
            .collect::<Vec<_>>()
    );
    found[0]
}
