//! What the client spans say when a call fails before any application answered: a refused
//! connection, and a proxy's reply to a gRPC call, both as a bare HTTP 503 (no `grpc-status`,
//! which gRPC's HTTP mapping makes UNAVAILABLE) and as Envoy's gRPC local reply (a
//! trailers-only response with `grpc-status: 14`).
#![cfg(all(
    feature = "axum",
    feature = "reqwest",
    feature = "tonic",
    feature = "sdk"
))]

mod support;

use axum::http::StatusCode;
use axum::Router;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::Value;
use support::relay::RelayClient;
use support::servers::{closed_port, serve, traced_client};
use support::spans::{attr, in_root, one, spans_of};

fn is_error(status: &Status) -> bool {
    matches!(status, Status::Error { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_http_connection_is_recorded_on_the_client_span() {
    let addr = closed_port().await;
    let client = traced_client();
    let (result, trace_id) = in_root(client.get(format!("http://{addr}/x")).send()).await;
    assert!(result.is_err(), "nothing listens there");

    let spans = spans_of(trace_id, 2).await;
    let span = one(&spans, "GET", SpanKind::Client);
    assert_eq!(attr(span, "error.type"), Some(Value::from("connect")));
    assert!(is_error(&span.status), "{:?}", span.status);
    assert_eq!(attr(span, "http.response.status_code"), None);
    let exception = span
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("an exception event");
    let message = exception
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "exception.message")
        .map(|kv| kv.value.to_string())
        .expect("exception.message");
    assert!(!message.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_grpc_connection_is_recorded_on_the_client_span() {
    let addr = closed_port().await;
    let mut client = RelayClient::new(addr);
    let (result, trace_id) = in_root(client.forward("/back/x".into())).await;
    assert!(result.is_err());

    let spans = spans_of(trace_id, 2).await;
    let span = one(&spans, "meshtrace.test.Relay/Forward", SpanKind::Client);
    assert_eq!(attr(span, "error.type"), Some(Value::from("transport")));
    assert!(is_error(&span.status), "{:?}", span.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_503_to_a_grpc_call_is_unavailable() {
    // A proxy answering a gRPC call in plain HTTP: status 503, no gRPC status, no body.
    let proxy = Router::new().fallback(|| async { StatusCode::SERVICE_UNAVAILABLE });
    let mut client = RelayClient::new(serve(proxy).await);
    let (result, trace_id) = in_root(client.forward("/back/x".into())).await;
    assert_eq!(result.expect_err("503").code(), tonic::Code::Unavailable);

    let spans = spans_of(trace_id, 2).await;
    let span = one(&spans, "meshtrace.test.Relay/Forward", SpanKind::Client);
    assert_eq!(
        attr(span, "http.response.status_code"),
        Some(Value::I64(503))
    );
    assert_eq!(attr(span, "rpc.grpc.status_code"), Some(Value::I64(14)));
    assert_eq!(attr(span, "error.type"), Some(Value::from("UNAVAILABLE")));
    assert!(is_error(&span.status), "{:?}", span.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_grpc_local_reply_is_read_from_the_head() {
    // Envoy turns its local replies to gRPC calls into trailers-only gRPC responses.
    let envoy = Router::new().fallback(|| async {
        (
            [
                ("content-type", "application/grpc"),
                ("grpc-status", "14"),
                ("grpc-message", "no%20healthy%20upstream"),
            ],
            "",
        )
    });
    let mut client = RelayClient::new(serve(envoy).await);
    let (result, trace_id) = in_root(client.forward("/back/x".into())).await;
    let status = result.expect_err("UNAVAILABLE");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "no healthy upstream");

    let spans = spans_of(trace_id, 2).await;
    let span = one(&spans, "meshtrace.test.Relay/Forward", SpanKind::Client);
    assert_eq!(attr(span, "rpc.grpc.status_code"), Some(Value::I64(14)));
    assert_eq!(
        span.status,
        Status::error("UNAVAILABLE: no healthy upstream")
    );
}
