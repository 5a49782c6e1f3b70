//! Headers as span attributes, configurable from builder methods and from the OpenTelemetry
//! Java agent's environment variables: request and response headers on server and client
//! spans (reqwest and tonic), credentials redacted (SPECS §9). And the server's opt-in
//! `x-envoy-decorator-operation`, which names the sidecar's span by route template.
#![cfg(all(
    feature = "axum",
    feature = "reqwest",
    feature = "tonic",
    feature = "sdk"
))]

mod support;

use axum::routing::get;
use axum::Router;
use http::header::{AUTHORIZATION, CONTENT_TYPE, SET_COOKIE};
use http::HeaderName;
use meshtrace::client::reqwest::MeshClientMiddleware;
use meshtrace::client::tonic::MeshClientLayer;
use meshtrace::server::MeshServerLayer;
use opentelemetry::trace::SpanKind;
use opentelemetry::{Array, Value};
use opentelemetry_sdk::trace::SpanData;
use std::sync::OnceLock;
use support::relay::{
    endpoint_of, forward, grpc_client_with, relay, serve_grpc, serve_grpc_with, ForwardReply,
};
use support::servers::serve;
use support::spans::strings as attr;
use support::telemetry::exporter;

/// Set once, before any layer of this binary is built (every test calls this first): the
/// variables a deployment would set.
fn environment() {
    static SET: OnceLock<()> = OnceLock::new();
    SET.get_or_init(|| {
        exporter();
        // SAFETY of the test: every test waits here before building a layer, so no layer
        // reads the environment while it is written.
        std::env::set_var(
            "OTEL_INSTRUMENTATION_HTTP_SERVER_CAPTURE_REQUEST_HEADERS",
            "X-Tenant, not a header name, authorization",
        );
        std::env::set_var(
            "OTEL_INSTRUMENTATION_HTTP_SERVER_CAPTURE_RESPONSE_HEADERS",
            "x-cache",
        );
        std::env::set_var(
            "OTEL_INSTRUMENTATION_HTTP_CLIENT_CAPTURE_REQUEST_HEADERS",
            "x-tenant",
        );
    });
}

fn x(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

/// The exported span of `kind` that recorded `x-tenant: tenant` (as a request header).
fn span_of(kind: SpanKind, tenant: &str) -> SpanData {
    let want = Value::Array(Array::String(vec![tenant.to_owned().into()]));
    exporter()
        .get_finished_spans()
        .expect("spans")
        .into_iter()
        .find(|s| {
            s.span_kind == kind
                && s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "http.request.header.x-tenant" && kv.value == want)
        })
        .unwrap_or_else(|| panic!("no {kind:?} span for tenant {tenant}"))
}

fn strings(values: &[&str]) -> Option<Vec<String>> {
    Some(values.iter().map(|v| v.to_string()).collect())
}

fn app(layer: MeshServerLayer) -> Router {
    Router::new()
        .route(
            "/orders/{id}",
            get(|| async {
                (
                    [
                        (x("x-cache"), "hit"),
                        (SET_COOKIE, "session=server-secret"),
                        (CONTENT_TYPE, "text/plain"),
                    ],
                    "order",
                )
            }),
        )
        .layer(layer)
}

#[tokio::test]
async fn server_records_the_headers_the_environment_and_the_builder_ask_for() {
    environment();
    let back = serve(app(MeshServerLayer::new()
        .record_response_header(SET_COOKIE)
        .record_response_header(CONTENT_TYPE)
        .decorate_operation(true)))
    .await;
    let res = reqwest::Client::new()
        .get(format!("http://{back}/orders/1"))
        .header("x-tenant", "server-env")
        .header(AUTHORIZATION, "Bearer server-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["x-envoy-decorator-operation"],
        "GET /orders/{id}"
    );
    let span = span_of(SpanKind::Server, "server-env");
    assert_eq!(
        attr(&span, "http.request.header.authorization"),
        strings(&["[REDACTED]"])
    );
    assert_eq!(
        attr(&span, "http.response.header.x-cache"),
        strings(&["hit"])
    );
    assert_eq!(
        attr(&span, "http.response.header.set-cookie"),
        strings(&["[REDACTED]"])
    );
    assert_eq!(
        attr(&span, "http.response.header.content-type"),
        strings(&["text/plain"])
    );
    let exported = format!("{span:?}");
    assert!(!exported.contains("server-token") && !exported.contains("server-secret"));
}

#[tokio::test]
async fn decorator_only_when_asked_and_only_for_a_known_route() {
    environment();
    let off = serve(app(MeshServerLayer::new())).await;
    let res = reqwest::get(format!("http://{off}/orders/1"))
        .await
        .unwrap();
    assert!(!res.headers().contains_key("x-envoy-decorator-operation"));
    let on = serve(app(MeshServerLayer::new().decorate_operation(true))).await;
    let res = reqwest::get(format!("http://{on}/nowhere")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(
        !res.headers().contains_key("x-envoy-decorator-operation"),
        "no route, no better name than Envoy's own"
    );
    // gRPC: the service and method.
    let grpc = serve_grpc_with(
        relay(|path| async move { Ok(ForwardReply { body: path }) }),
        MeshServerLayer::new().decorate_operation(true),
    )
    .await;
    let reply = support::sidecar::grpc_call(grpc, "/meshtrace.test.Relay/Forward", &[], &[]).await;
    assert_eq!(reply.grpc_status(), Some(0));
    assert_eq!(
        reply.header("x-envoy-decorator-operation"),
        Some("meshtrace.test.Relay/Forward")
    );
}

#[tokio::test]
async fn reqwest_client_records_request_and_response_headers() {
    environment();
    let back = serve(app(MeshServerLayer::new())).await;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            MeshClientMiddleware::new()
                .record_request_header(AUTHORIZATION)
                .record_request_header(x("traceparent"))
                .record_response_header(x("x-cache"))
                .record_response_header(SET_COOKIE),
        )
        .build();
    http.get(format!("http://{back}/orders/2"))
        .header("x-tenant", "client-env")
        .header(AUTHORIZATION, "Bearer client-token")
        .send()
        .await
        .unwrap();
    let span = span_of(SpanKind::Client, "client-env");
    assert_eq!(
        attr(&span, "http.request.header.authorization"),
        strings(&["[REDACTED]"])
    );
    // The headers as sent: the injected trace context is there.
    let traceparent = attr(&span, "http.request.header.traceparent").expect("traceparent");
    assert!(traceparent[0].starts_with("00-"), "{traceparent:?}");
    assert_eq!(
        attr(&span, "http.response.header.x-cache"),
        strings(&["hit"])
    );
    assert_eq!(
        attr(&span, "http.response.header.set-cookie"),
        strings(&["[REDACTED]"])
    );
    assert!(!format!("{span:?}").contains("client-token"));
}

#[tokio::test]
async fn tonic_client_records_metadata_and_response_headers() {
    environment();
    let back = serve_grpc(relay(|path| async move { Ok(ForwardReply { body: path }) })).await;
    let mut grpc = grpc_client_with(
        endpoint_of(back),
        MeshClientLayer::new()
            .record_request_header(x("grpc-timeout"))
            .record_response_header(CONTENT_TYPE)
            .redact_header(x("grpc-timeout")),
    );
    forward(
        &mut grpc,
        "tonic-client",
        Some(std::time::Duration::from_secs(3)),
    )
    .await
    .unwrap();
    let span = exporter()
        .get_finished_spans()
        .expect("spans")
        .into_iter()
        .find(|s| {
            s.span_kind == SpanKind::Client && attr(s, "http.request.header.grpc-timeout").is_some()
        })
        .expect("the client span");
    assert_eq!(
        attr(&span, "http.request.header.grpc-timeout"),
        strings(&["[REDACTED]"])
    );
    assert_eq!(
        attr(&span, "http.response.header.content-type"),
        strings(&["application/grpc"])
    );
}
