//! A service that registered a propagator of its own (opentelemetry_sdk's W3C
//! `TraceContextPropagator`) and never called `meshtrace::set_global_propagator`: the layers
//! must use that propagator, not meshtrace's Istio preset. Incoming `traceparent` is
//! continued, B3 is not read, and only `traceparent`/`tracestate` go out — no B3 headers and
//! no pass-through.
//!
//! This binary has a setup of its own, `telemetry::foreign_exporter()` (the OpenTelemetry
//! layer and an in-memory exporter), not `telemetry::exporter()`, which would register the
//! Istio propagator.
#![cfg(all(feature = "axum", feature = "reqwest", feature = "tonic"))]

mod support;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use meshtrace::client::tonic::MeshClientInterceptor;
use meshtrace::server::MeshServerLayer;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use std::net::SocketAddr;
use support::servers::{seen_for, Caller, Seen};
use support::spans::one;
use support::{headers, servers, spans, telemetry};
use tonic::service::Interceptor;

/// Headers no W3C-only propagator writes: all the Istio preset's but `traceparent` and
/// `tracestate` (B3, baggage, pass-through).
fn not_w3c() -> Vec<&'static str> {
    let mut names = headers::trace_headers();
    names.retain(|n| !headers::W3C_HEADERS.contains(n));
    names
}

/// Calls the back service through reqwest-middleware, and answers with the header names
/// `MeshClientInterceptor` would put on a gRPC call made here.
async fn front_handler(State(c): State<Caller>, Path(tag): Path<String>) -> (StatusCode, String) {
    let grpc = MeshClientInterceptor::new()
        .call(tonic::Request::new(()))
        .expect("the interceptor never refuses");
    let mut grpc_names: Vec<String> = grpc
        .metadata()
        .clone()
        .into_headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .collect();
    grpc_names.sort();
    match c.call(&tag).await {
        Ok(()) => (StatusCode::OK, grpc_names.join(",")),
        Err(answer) => answer,
    }
}

/// A recording back service and a front service (`MeshServerLayer`, reqwest `MeshClientMiddleware`).
async fn start() -> (SocketAddr, Seen) {
    telemetry::foreign_exporter();
    let (back, seen) = servers::start_back().await;
    let front_app = Router::new()
        .route("/front/{tag}", get(front_handler))
        .with_state(Caller::new(back))
        .layer(MeshServerLayer::new());
    (servers::serve(front_app).await, seen)
}

fn traceparent_of(h: &HeaderMap) -> (TraceId, SpanId, String) {
    let tp = h
        .get("traceparent")
        .unwrap_or_else(|| panic!("no traceparent in {h:?}"))
        .to_str()
        .expect("text")
        .to_owned();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    (
        TraceId::from_hex(parts[1]).expect("hex"),
        SpanId::from_hex(parts[2]).expect("hex"),
        parts[3].to_owned(),
    )
}

fn assert_only_w3c(h: &HeaderMap) {
    for name in not_w3c() {
        assert!(
            h.get(name).is_none(),
            "a W3C-only propagator does not write {name}: {:?}",
            h.get(name)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_propagator_continues_traceparent_ignores_b3_injects_only_w3c() {
    let (front, seen) = start().await;
    let trace = "f1000000000000000000000000000001";
    let parent = "e100000000000001";
    let b3_trace = "f2000000000000000000000000000002";
    let res = reqwest::Client::new()
        .get(format!("http://{front}/front/w3c-and-b3"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .header("tracestate", "congo=t61rcWkgMzE")
        .header("x-b3-traceid", b3_trace)
        .header("x-b3-spanid", "e200000000000002")
        .header("x-b3-sampled", "1")
        .header("x-request-id", "3e1c6d4a-5b2f-4c8e-9d7a-1f0b2c3d4e5f")
        .header("x-ot-span-context", "opaque")
        .header("baggage", "user=alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A gRPC call from the handler would carry only the W3C headers too.
    assert_eq!(res.text().await.unwrap(), "traceparent,tracestate");

    let trace_id = TraceId::from_hex(trace).unwrap();
    let spans = spans::wait_for_spans(telemetry::foreign_exporter(), trace_id, 2).await;
    let server = one(&spans, "GET /front/{tag}", SpanKind::Server);
    let client = one(&spans, "GET", SpanKind::Client);
    // The incoming traceparent is the parent; B3 was never read, so nothing links to it.
    assert_eq!(server.parent_span_id.to_string(), parent);
    assert!(server.parent_span_is_remote);
    assert!(
        server.links.is_empty(),
        "B3 is not extracted by a W3C-only propagator: {:?}",
        server.links.links
    );
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert!(spans::wait_for_spans(
        telemetry::foreign_exporter(),
        TraceId::from_hex(b3_trace).unwrap(),
        0
    )
    .await
    .is_empty());

    let h = seen_for(&seen, "w3c-and-b3");
    let (out_trace, out_span, flags) = traceparent_of(&h);
    assert_eq!(out_trace, trace_id);
    assert_eq!(out_span, client.span_context.span_id());
    assert_eq!(flags, "01");
    assert_eq!(h["tracestate"], "congo=t61rcWkgMzE");
    assert_only_w3c(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_propagator_starts_a_new_trace_when_only_b3_came_in() {
    let (front, seen) = start().await;
    let b3_trace = "f3000000000000000000000000000003";
    let res = reqwest::Client::new()
        .get(format!("http://{front}/front/b3-only"))
        .header("x-b3-traceid", b3_trace)
        .header("x-b3-spanid", "e300000000000003")
        .header("x-b3-sampled", "1")
        .header("x-request-id", "only-b3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The SDK's propagator always writes `tracestate`, empty for a trace of our own.
    assert_eq!(res.text().await.unwrap(), "traceparent,tracestate");

    let h = seen_for(&seen, "b3-only");
    let (out_trace, out_span, _) = traceparent_of(&h);
    assert_ne!(
        out_trace,
        TraceId::from_hex(b3_trace).unwrap(),
        "B3 ignored"
    );
    assert_only_w3c(&h);
    assert!(h.get("tracestate").is_none_or(|v| v.is_empty()));

    let spans = spans::wait_for_spans(telemetry::foreign_exporter(), out_trace, 2).await;
    let server = one(&spans, "GET /front/{tag}", SpanKind::Server);
    let client = one(&spans, "GET", SpanKind::Client);
    assert_eq!(server.parent_span_id, SpanId::INVALID, "a new root");
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert_eq!(out_span, client.span_context.span_id());
}
