//! The deadline budget: read where a request comes in (`grpc-timeout`,
//! `x-envoy-expected-rq-timeout-ms`), carried to every call made while handling it, each call
//! capped at what is left, and a call with nothing left failing at once without being sent.
#![cfg(all(
    feature = "axum",
    feature = "reqwest",
    feature = "tonic",
    feature = "sdk"
))]

mod support;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use meshtrace::mesh::deadline::{BudgetExhausted, Deadline, DeadlineExt, DeadlineSource};
use meshtrace::server::MeshServerLayer;
use opentelemetry::trace::{SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, Value};
use std::time::{Duration, Instant};
use support::mesh::Mesh;
use support::relay::RelayClient;
use support::servers::{serve, Caller, Seen};
use support::spans::{attr, int, one, spans_of};
use support::{servers, telemetry};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `GET /call/{sleep_ms}/{tag}`: waits, reports what `deadline::current()` says, then calls
/// the back service; a call refused for lack of budget answers 504.
async fn call_after(
    State(caller): State<Caller>,
    Path((sleep_ms, tag)): Path<(u64, String)>,
) -> (StatusCode, String) {
    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    let left = meshtrace::mesh::deadline::current().map(|d| d.remaining());
    match caller.get(&tag).send().await {
        Ok(r) => (r.status(), format!("left {left:?}")),
        Err(reqwest_middleware::Error::Middleware(e))
            if e.downcast_ref::<BudgetExhausted>().is_some() =>
        {
            (
                StatusCode::GATEWAY_TIMEOUT,
                format!("budget exhausted: {e}"),
            )
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn front(seen: &Seen) -> (String, String) {
    let back = serve(servers::recording_back(seen.clone()).layer(MeshServerLayer::new())).await;
    let back = format!("http://{back}");
    let app = Router::new()
        .route("/call/{sleep_ms}/{tag}", get(call_after))
        .with_state(Caller::new(back.clone()))
        .layer(MeshServerLayer::new());
    (format!("http://{}", serve(app).await), back)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_timeout_caps_the_calls_made_while_handling() {
    telemetry::exporter();
    let seen = Seen::default();
    let (front, _) = front(&seen).await;
    let trace = "5a1f0000000000000000000000000001";
    let res = reqwest::Client::new()
        .get(format!("{front}/call/0/capped"))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .header("x-envoy-expected-rq-timeout-ms", "400")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(
        body.starts_with("left Some("),
        "the handler can read the time left: {body}"
    );

    let spans = spans_of(TraceId::from_hex(trace).unwrap(), 3).await;
    let server = spans
        .iter()
        .find(|s| s.name == "GET /call/{sleep_ms}/{tag}")
        .expect("front server span");
    let arrived_with = int(attr(server, "meshtrace.deadline.remaining_ms"));
    assert!((390..=400).contains(&arrived_with), "{arrived_with}");
    let client = one(&spans, "GET", SpanKind::Client);
    let budget = int(attr(client, "meshtrace.deadline.budget_ms"));
    assert!(
        (300..=395).contains(&budget),
        "400 ms less the time spent and the 5 ms margin: {budget}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_no_budget_left_is_not_sent() {
    telemetry::exporter();
    let seen = Seen::default();
    let (front, _) = front(&seen).await;
    let trace = "5a1f0000000000000000000000000002";
    let res = reqwest::Client::new()
        .get(format!("{front}/call/60/late"))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .header("grpc-timeout", "20m")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    assert!(res.text().await.unwrap().contains("budget exhausted"));
    assert!(
        seen.lock().unwrap().iter().all(|(tag, _)| tag != "late"),
        "the back service never saw the call"
    );
    let spans = spans_of(TraceId::from_hex(trace).unwrap(), 2).await;
    let client = one(&spans, "GET", SpanKind::Client);
    assert_eq!(
        attr(client, "error.type"),
        Some(Value::from("budget_exhausted"))
    );
    assert_eq!(int(attr(client, "meshtrace.deadline.budget_ms")), 0);
}

/// Runs `f` inside a root span whose context carries a deadline `budget` from now, as the
/// server layer would have set it; returns its output and the trace id.
async fn with_deadline<F: std::future::Future>(budget: Duration, f: F) -> (F::Output, TraceId) {
    telemetry::exporter();
    let deadline = Deadline::new(Instant::now() + budget, DeadlineSource::GrpcTimeout);
    let root = {
        let _attached = Context::current().with_deadline(deadline).attach();
        tracing::info_span!("handler")
    };
    let trace_id = root.context().span().span_context().trace_id();
    (f.instrument(root).await, trace_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_shrinks_hop_by_hop() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let mut relay = RelayClient::new(mesh.relay);
    let (reply, trace_id) =
        with_deadline(Duration::from_millis(800), relay.forward("/back/7".into())).await;
    assert_eq!(reply.unwrap().body, "back 7");

    let spans = spans_of(trace_id, 5).await;
    let grpc_client = one(&spans, "meshtrace.test.Relay/Forward", SpanKind::Client);
    let grpc_server = one(&spans, "meshtrace.test.Relay/Forward", SpanKind::Server);
    let http_client = one(&spans, "GET", SpanKind::Client);
    let back_server = one(&spans, "GET /back/{id}", SpanKind::Server);
    let sent = int(attr(grpc_client, "meshtrace.deadline.budget_ms"));
    let relay_had = int(attr(grpc_server, "meshtrace.deadline.remaining_ms"));
    let relay_sent = int(attr(http_client, "meshtrace.deadline.budget_ms"));
    assert!(
        sent <= 795,
        "the gRPC call carries 800 ms less the margin: {sent}"
    );
    assert!(
        relay_had <= sent,
        "the relay got what was sent: {relay_had} <= {sent}"
    );
    assert!(
        relay_sent < relay_had,
        "and passed on less: {relay_sent} < {relay_had}"
    );
    assert!(relay_sent > 500, "{relay_sent}");
    // The back service is reached over HTTP through reqwest: the cap is a client-side
    // timeout there, not a header, so it records no budget of its own.
    assert_eq!(attr(back_server, "meshtrace.deadline.remaining_ms"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_call_with_no_budget_fails_fast_with_a_typed_error() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let mut relay = RelayClient::new(mesh.relay);
    let started = Instant::now();
    let (reply, trace_id) = with_deadline(Duration::ZERO, relay.forward("/back/8".into())).await;
    let status = reply.expect_err("no budget");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    let source = std::error::Error::source(&status).expect("a source");
    assert!(
        source.downcast_ref::<BudgetExhausted>().is_some(),
        "{source}"
    );

    let spans = spans_of(trace_id, 2).await;
    assert!(
        spans.iter().all(|s| s.span_kind != SpanKind::Server),
        "the relay was never called"
    );
    let client = one(&spans, "meshtrace.test.Relay/Forward", SpanKind::Client);
    assert_eq!(
        attr(client, "error.type"),
        Some(Value::from("budget_exhausted"))
    );
    assert!(mesh.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interceptor_holds_the_budget_too() {
    use tonic::service::Interceptor;
    let mut interceptor = meshtrace::client::tonic::MeshClientInterceptor::new();

    let (request, _) = with_deadline(Duration::from_millis(500), async {
        interceptor.call(tonic::Request::new(()))
    })
    .await;
    let request = request.expect("time is left");
    let sent = request
        .metadata()
        .get("grpc-timeout")
        .expect("grpc-timeout set");
    let sent = meshtrace::mesh::deadline::parse_grpc_timeout(sent.as_bytes()).unwrap();
    assert!(
        sent <= Duration::from_millis(495) && sent > Duration::from_millis(300),
        "{sent:?}"
    );
    assert!(request.metadata().get("traceparent").is_some());

    let (refused, _) = with_deadline(Duration::ZERO, async {
        interceptor.call(tonic::Request::new(()))
    })
    .await;
    let status = refused.expect_err("nothing left");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    let source = std::error::Error::source(&status).expect("a source");
    assert!(source.downcast_ref::<BudgetExhausted>().is_some());
}

/// How a span records a call refused for lack of budget: `error.type`, the budget, the span
/// status and the `exception` event.
fn budget_recording(
    span: &opentelemetry_sdk::trace::SpanData,
) -> (Option<Value>, i64, String, Vec<String>) {
    let status = match &span.status {
        opentelemetry::trace::Status::Error { description } => description.to_string(),
        other => panic!("expected an error status, got {other:?}"),
    };
    let events = span
        .events
        .iter()
        .map(|e| {
            let attrs: Vec<String> = e
                .attributes
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            format!("{} {}", e.name, attrs.join(" "))
        })
        .collect();
    (
        attr(span, "error.type"),
        int(attr(span, "meshtrace.deadline.budget_ms")),
        status,
        events,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interceptor_records_a_refused_call_on_the_span_as_the_layer_does() {
    use tonic::service::Interceptor;
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let mut relay = RelayClient::new(mesh.relay);
    let (reply, layer_trace) = with_deadline(Duration::ZERO, relay.forward("/back/9".into())).await;
    reply.expect_err("no budget");
    let mut interceptor = meshtrace::client::tonic::MeshClientInterceptor::new();
    let (refused, interceptor_trace) = with_deadline(Duration::ZERO, async {
        interceptor.call(tonic::Request::new(()))
    })
    .await;
    refused.expect_err("nothing left");

    let spans = spans_of(layer_trace, 2).await;
    let layer = budget_recording(one(
        &spans,
        "meshtrace.test.Relay/Forward",
        SpanKind::Client,
    ));
    // The interceptor opens no span of its own: the call is recorded on the current one.
    let spans = spans_of(interceptor_trace, 1).await;
    let interceptor = budget_recording(one(&spans, "handler", SpanKind::Internal));
    assert_eq!(layer.0, Some(Value::from("budget_exhausted")));
    assert_eq!(layer.1, 0);
    assert!(layer.2.contains("grpc-timeout"), "{}", layer.2);
    assert_eq!(layer.3.len(), 1, "one exception event: {:?}", layer.3);
    assert!(layer.3[0].starts_with("exception "), "{:?}", layer.3);
    assert_eq!(interceptor, layer);
}
