//! A caller that says "not sampled", with a sampler that is not parent-based
//! (`Sampler::AlwaysOn`): the server layer's early decision path finds the span recording
//! after all, and the span is named and described as usual, its client call too.
#![cfg(all(feature = "axum", feature = "reqwest", feature = "sdk"))]

mod support;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use meshtrace::server::MeshServerLayer;
use meshtrace::MeshPropagator;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};
use support::headers::{header, trace_id_of};
use support::servers::{self, Caller};
use support::spans::{attr, one, s, wait_for_spans};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

async fn handler(State(back): State<Caller>) -> (StatusCode, String) {
    match back.call("recorded").await {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampler_that_ignores_the_caller_gets_named_described_spans() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_simple_exporter(exporter.clone())
        .build();
    support::telemetry::set_global_otel_subscriber(&provider, "always-on");
    meshtrace::set_global_propagator(MeshPropagator::istio());

    let (back, seen) = servers::start_back().await;
    let app = Router::new()
        .route("/orders/{id}", get(handler))
        .with_state(Caller::new(back))
        .layer(MeshServerLayer::new());
    let front = servers::serve(app).await;
    let res = reqwest::Client::new()
        .get(format!("http://{front}/orders/7"))
        .header("traceparent", format!("00-{TRACE}-{SPAN}-00"))
        .header("x-request-id", "always-on")
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status(), 200);

    let trace_id = TraceId::from_hex(TRACE).expect("hex");
    let spans = wait_for_spans(&exporter, trace_id, 2).await;
    let server = one(&spans, "GET /orders/{id}", SpanKind::Server);
    assert_eq!(server.parent_span_id, SpanId::from_hex(SPAN).expect("hex"));
    assert_eq!(attr(server, "url.path"), Some(s("/orders/7")));
    assert_eq!(attr(server, "http.route"), Some(s("/orders/{id}")));
    assert_eq!(attr(server, "http.request.method"), Some(s("GET")));
    assert_eq!(
        attr(server, "http.response.status_code"),
        Some(Value::I64(200))
    );
    assert_eq!(
        attr(server, "http.request.header.x-request-id"),
        Some(Value::Array(
            vec![opentelemetry::StringValue::from("always-on")].into()
        ))
    );
    let client = one(&spans, "GET", SpanKind::Client);
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert_eq!(
        attr(client, "http.response.status_code"),
        Some(Value::I64(200))
    );

    // The call went out from the client span, sampled as the sampler decided.
    let sent = servers::seen_for(&seen, "recorded");
    let traceparent = header(&sent, "traceparent");
    assert_eq!(trace_id_of(traceparent), trace_id);
    assert_eq!(
        traceparent,
        format!("00-{TRACE}-{}-01", client.span_context.span_id())
    );
}
