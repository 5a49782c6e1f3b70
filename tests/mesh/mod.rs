//! A small mesh on 127.0.0.1 for the integration tests, built from meshtrace's layers:
//!
//! ```text
//! client ──HTTP──▶ front (axum) ──gRPC──▶ relay (tonic) ──HTTP──▶ back (axum)
//! ```
//!
//! - front `GET /front/{id}`: `front_handler` (`#[instrument]`) spawns `call_relay`
//!   (`#[instrument]`, `.in_current_span()`), which calls `Relay/Forward` through
//!   `MeshClientLayer` with `path = /back/{id}`; `id = fail` asks the relay for an error.
//! - relay `Relay/Forward`: `forward` (`#[instrument]`) calls the back service through
//!   reqwest-middleware with `MeshClientMiddleware`. `Relay/Count` streams `n` messages `gap_ms` apart.
//! - back `GET /back/{id}`: records the headers it received; `/back/unavailable` answers 503.
//!
//! Spans go to opentelemetry_sdk's in-memory exporter through tracing-opentelemetry, one
//! exporter per test binary; tests pick their own spans out by trace id.
//!
//! Built on `support`: a test file that declares `mod mesh;` declares `mod support;` too.
#![allow(dead_code)]

use crate::support::{self, Seen};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use futures_util::future::BoxFuture;
use meshtrace::client::tonic::MeshClientLayer;
use meshtrace::server::MeshServerLayer;
use meshtrace::MeshPropagator;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use reqwest_middleware::ClientWithMiddleware;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_prost::ProstCodec;
use tower::ServiceBuilder;
use tracing::Instrument;

// ---------------------------------------------------------------- telemetry

/// The exporter every span of this test binary ends up in. Installs, once, a global
/// tracing subscriber with the OpenTelemetry layer and registers the Istio propagator.
pub fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .with_sampler(meshtrace::MeshSampler::new(
                opentelemetry_sdk::trace::Sampler::AlwaysOn,
            ))
            .build();
        support::set_global_otel_subscriber(&provider, "meshtrace-tests");
        meshtrace::set_global_propagator(MeshPropagator::istio());
        exporter
    })
}

/// The finished spans of one trace, waiting (up to 10 s) until there are at least `want`:
/// spans end when their response bodies end, a little after the caller has its answer.
pub async fn spans_of(trace_id: TraceId, want: usize) -> Vec<SpanData> {
    support::wait_for_spans(exporter(), trace_id, want).await
}

/// The one span named `name` among `spans`.
pub fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one span named {name:?} in {:#?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

/// The value of attribute `key` on `span`.
pub fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_owned()))
        .map(|kv| kv.value.clone())
}

/// Asserts that `chain` names spans each of which is the parent of the next, with these kinds.
pub fn assert_chain(spans: &[SpanData], chain: &[(&str, SpanKind)]) {
    for window in chain.windows(2) {
        let parent = span(spans, window[0].0);
        let child = span(spans, window[1].0);
        assert_eq!(
            child.parent_span_id,
            parent.span_context.span_id(),
            "{:?} is the parent of {:?}",
            window[0].0,
            window[1].0
        );
    }
    for (name, kind) in chain {
        assert_eq!(span(spans, name).span_kind, *kind, "kind of {name:?}");
    }
}

// ---------------------------------------------------------------- gRPC messages and service

#[derive(Clone, PartialEq, prost::Message)]
pub struct ForwardRequest {
    #[prost(string, tag = "1")]
    pub path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ForwardReply {
    #[prost(string, tag = "1")]
    pub body: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CountRequest {
    #[prost(uint32, tag = "1")]
    pub n: u32,
    #[prost(uint64, tag = "2")]
    pub gap_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CountReply {
    #[prost(uint32, tag = "1")]
    pub i: u32,
}

pub const FORWARD: &str = "/meshtrace.test.Relay/Forward";
pub const COUNT: &str = "/meshtrace.test.Relay/Count";

/// The relay gRPC service, written the way tonic's generated code is (no protoc here).
#[derive(Clone)]
pub struct Relay {
    back: String,
    http: ClientWithMiddleware,
}

impl Relay {
    #[tracing::instrument(skip(self))]
    async fn forward(&self, path: String) -> Result<tonic::Response<ForwardReply>, tonic::Status> {
        if path == "/back/fail" {
            return Err(tonic::Status::internal("relay was asked to fail"));
        }
        let res = self
            .http
            .get(format!("{}{path}", self.back))
            .send()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        if !res.status().is_success() {
            return Err(tonic::Status::unavailable(format!(
                "back answered {}",
                res.status()
            )));
        }
        let body = res
            .text()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(tonic::Response::new(ForwardReply { body }))
    }
}

struct ForwardSvc(Relay);

impl tonic::server::UnaryService<ForwardRequest> for ForwardSvc {
    type Response = ForwardReply;
    type Future = BoxFuture<'static, Result<tonic::Response<ForwardReply>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<ForwardRequest>) -> Self::Future {
        let relay = self.0.clone();
        Box::pin(async move { relay.forward(req.into_inner().path).await })
    }
}

struct CountSvc;

impl tonic::server::ServerStreamingService<CountRequest> for CountSvc {
    type Response = CountReply;
    type ResponseStream = BoxStream<Result<CountReply, tonic::Status>>;
    type Future = BoxFuture<'static, Result<tonic::Response<Self::ResponseStream>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<CountRequest>) -> Self::Future {
        let CountRequest { n, gap_ms } = req.into_inner();
        let stream = futures_util::stream::unfold(0, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(gap_ms)).await;
            Some((Ok(CountReply { i }), i + 1))
        });
        Box::pin(async move {
            Ok(tonic::Response::new(
                Box::pin(stream) as Self::ResponseStream
            ))
        })
    }
}

type BoxStream<T> = std::pin::Pin<Box<dyn futures_util::Stream<Item = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Relay {
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
        let relay = self.clone();
        match req.uri().path() {
            FORWARD => Box::pin(async move {
                let mut grpc =
                    tonic::server::Grpc::new(ProstCodec::<ForwardReply, ForwardRequest>::default());
                Ok(grpc.unary(ForwardSvc(relay), req).await)
            }),
            COUNT => Box::pin(async move {
                let mut grpc =
                    tonic::server::Grpc::new(ProstCodec::<CountReply, CountRequest>::default());
                Ok(grpc.server_streaming(CountSvc, req).await)
            }),
            _ => Box::pin(
                async move { Ok(tonic::Status::unimplemented("no such method").into_http()) },
            ),
        }
    }
}

impl tonic::server::NamedService for Relay {
    const NAME: &'static str = "meshtrace.test.Relay";
}

/// A gRPC client for the relay, through `MeshClientLayer`.
#[derive(Clone)]
pub struct RelayClient {
    grpc: tonic::client::Grpc<meshtrace::client::tonic::MeshClient<tonic::transport::Channel>>,
}

impl RelayClient {
    pub fn new(addr: SocketAddr) -> Self {
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("uri");
        let channel = endpoint.connect_lazy();
        let svc = ServiceBuilder::new()
            .layer(MeshClientLayer::new().server_uri(endpoint.uri()))
            .service(channel);
        RelayClient {
            grpc: tonic::client::Grpc::new(svc),
        }
    }

    /// Waits until the channel can take a call.
    async fn ready(&mut self) -> Result<(), tonic::Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))
    }

    pub async fn forward(&mut self, path: String) -> Result<ForwardReply, tonic::Status> {
        self.ready().await?;
        let res = self
            .grpc
            .unary(
                tonic::Request::new(ForwardRequest { path }),
                PathAndQuery::from_static(FORWARD),
                ProstCodec::default(),
            )
            .await?;
        Ok(res.into_inner())
    }

    pub async fn count(
        &mut self,
        n: u32,
        gap_ms: u64,
    ) -> Result<tonic::Streaming<CountReply>, tonic::Status> {
        self.ready().await?;
        let res = self
            .grpc
            .server_streaming(
                tonic::Request::new(CountRequest { n, gap_ms }),
                PathAndQuery::from_static(COUNT),
                ProstCodec::default(),
            )
            .await?;
        Ok(res.into_inner())
    }
}

// ---------------------------------------------------------------- the mesh

pub struct Mesh {
    pub front: SocketAddr,
    pub relay: SocketAddr,
    pub back: SocketAddr,
    pub seen: Seen,
}

#[derive(Clone)]
struct Front {
    relay: RelayClient,
}

#[tracing::instrument(skip(front))]
async fn front_handler(State(front): State<Front>, Path(id): Path<String>) -> (StatusCode, String) {
    let relay = front.relay.clone();
    // A spawned task keeps the request's trace only through `.in_current_span()`.
    let handle = tokio::spawn(call_relay(relay, format!("/back/{id}")).in_current_span());
    match handle.await {
        Ok(Ok(reply)) => (StatusCode::OK, reply.body),
        Ok(Err(status)) => (StatusCode::BAD_GATEWAY, status.message().to_owned()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[tracing::instrument(skip(relay))]
async fn call_relay(mut relay: RelayClient, path: String) -> Result<ForwardReply, tonic::Status> {
    relay.forward(path).await
}

impl Mesh {
    /// Starts the three services; `front_layer` is the front service's server layer (the
    /// tests vary its options).
    pub async fn start(front_layer: MeshServerLayer) -> Mesh {
        exporter();
        let seen = Seen::default();

        let back_app = support::recording_back(seen.clone()).layer(MeshServerLayer::new());
        let back = support::serve(back_app).await;

        let (relay_listener, relay) = support::listen().await;
        let relay_svc = Relay {
            back: format!("http://{back}"),
            http: support::traced_client(),
        };
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .layer(MeshServerLayer::new())
                .add_service(relay_svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                    relay_listener,
                ))
                .await
        });

        let front_app = Router::new()
            .route("/front/{id}", get(front_handler))
            .with_state(Front {
                relay: RelayClient::new(relay),
            })
            .layer(front_layer);
        let front = support::serve(front_app).await;

        Mesh {
            front,
            relay,
            back,
            seen,
        }
    }

    /// The headers of every back request, in arrival order.
    pub fn received(&self) -> Vec<HeaderMap> {
        support::all_seen(&self.seen)
    }

    /// The headers of the back request that carried `x-request-id: id`.
    pub fn seen_with_request_id(&self, id: &str) -> Vec<HeaderMap> {
        self.received()
            .into_iter()
            .filter(|h| h.get("x-request-id").is_some_and(|v| v == id))
            .collect()
    }
}

/// The trace id a `traceparent` value names.
pub fn trace_id_of(traceparent: &str) -> TraceId {
    TraceId::from_hex(traceparent.split('-').nth(1).expect("trace id")).expect("hex")
}

/// The span id a `traceparent` value names.
pub fn span_id_of(traceparent: &str) -> SpanId {
    SpanId::from_hex(traceparent.split('-').nth(2).expect("span id")).expect("hex")
}
