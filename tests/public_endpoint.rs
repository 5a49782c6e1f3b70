//! Public endpoint mode (SPECS §9): a front service with `MeshServerLayer::public_endpoint`
//! receives requests "from the internet" carrying a sampled or unsampled `traceparent`, B3
//! debug, baggage and `x-ot-span-context`, and calls a recording back service. Its server
//! span starts a new trace (no parent) linked to the incoming context, sampled by the local
//! sampler whatever the caller said, and the back service gets the new trace, only the
//! allowed baggage, no `x-ot-span-context`, and the `x-request-id` kept or regenerated. With
//! a per-request decision, internal requests keep their parent.
#![cfg(all(feature = "axum", feature = "reqwest", feature = "sdk"))]

mod support;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use http::HeaderMap;
use meshtrace::server::{MeshServerLayer, PublicEndpoint};
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::SpanData;
use support::servers::{seen_for, serve, start_back, Caller, Seen};
use support::telemetry::exporter;

const INCOMING_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const INCOMING_SPAN: &str = "00f067aa0ba902b7";

async fn front(State(caller): State<Caller>, Path(tag): Path<String>) -> String {
    caller
        .call(&tag)
        .await
        .map(|()| "ok".to_owned())
        .unwrap_or_else(|e| e.1)
}

/// A front with `public` in front of a recording back service.
async fn start(public: PublicEndpoint) -> (std::net::SocketAddr, Seen) {
    exporter();
    let (back, seen) = start_back().await;
    let app = Router::new()
        .route("/front/{tag}", get(front))
        .with_state(Caller::new(back))
        .layer(MeshServerLayer::new().public_endpoint(public));
    (serve(app).await, seen)
}

async fn send(front: std::net::SocketAddr, tag: &str, flags: &str, extra: &[(&str, &str)]) {
    let mut req = reqwest::Client::new()
        .get(format!("http://{front}/front/{tag}"))
        .header(
            "traceparent",
            format!("00-{INCOMING_TRACE}-{INCOMING_SPAN}-{flags}"),
        )
        .header("x-b3-traceid", INCOMING_TRACE)
        .header("x-b3-spanid", INCOMING_SPAN)
        .header("x-b3-flags", "1")
        .header("baggage", "tenant=acme,user=mallory,role=admin")
        .header(
            "x-ot-span-context",
            format!("{INCOMING_TRACE};{INCOMING_SPAN};0;cs"),
        )
        .header("x-request-id", format!("outside-{tag}"));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("front answers");
    assert_eq!(res.text().await.expect("body"), "ok");
}

/// The exported server span of the front for `tag`.
fn front_span(tag: &str) -> SpanData {
    exporter()
        .get_finished_spans()
        .expect("spans")
        .into_iter()
        .find(|s| {
            s.span_kind == SpanKind::Server
                && s.attributes.iter().any(|kv| {
                    kv.key.as_str() == "http.request.header.x-request-id"
                        && format!("{:?}", kv.value).contains(&format!("outside-{tag}"))
                })
        })
        .unwrap_or_else(|| panic!("no server span for {tag}"))
}

fn trace_of(h: &HeaderMap) -> String {
    let tp = h["traceparent"].to_str().expect("ascii");
    tp.split('-').nth(1).expect("trace id").to_owned()
}

#[tokio::test]
async fn a_public_endpoint_starts_a_new_trace_linked_to_the_incoming_one() {
    let (front, seen) = start(PublicEndpoint::on().allow_baggage(["tenant"])).await;
    // Unsampled from outside, with B3 debug on: both ignored, the local sampler decides.
    send(front, "p1", "00", &[]).await;

    let span = front_span("p1");
    let incoming = TraceId::from_hex(INCOMING_TRACE).expect("hex");
    assert_ne!(span.span_context.trace_id(), incoming, "a new trace");
    assert_eq!(span.parent_span_id, SpanId::INVALID, "no parent");
    assert!(span.span_context.is_sampled(), "the local sampler decided");
    let links: Vec<_> = span.links.iter().collect();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].span_context.trace_id(), incoming);
    assert_eq!(
        links[0].span_context.span_id(),
        SpanId::from_hex(INCOMING_SPAN).expect("hex")
    );
    assert!(links[0]
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "meshtrace.link.reason"
            && kv.value.as_str() == "public_endpoint"));

    let h = seen_for(&seen, "p1");
    assert_eq!(trace_of(&h), span.span_context.trace_id().to_string());
    assert_eq!(
        h["x-b3-traceid"],
        span.span_context.trace_id().to_string().as_str()
    );
    assert!(
        !h.contains_key("x-b3-flags"),
        "no debug flag forwarded: {h:?}"
    );
    assert_eq!(h["x-b3-sampled"], "1");
    assert_eq!(h["baggage"], "tenant=acme", "only the allowed entry");
    assert!(!h.contains_key("x-ot-span-context"), "{h:?}");
    assert_eq!(h["x-request-id"], "outside-p1", "kept by default");
}

#[tokio::test]
async fn regenerated_request_ids_and_no_baggage_by_default() {
    let (front, seen) = start(PublicEndpoint::on().regenerate_request_id(true)).await;
    send(front, "p2", "01", &[]).await;
    let h = seen_for(&seen, "p2");
    assert!(!h.contains_key("baggage"), "no baggage allowed: {h:?}");
    let id = h["x-request-id"].to_str().expect("ascii");
    assert_ne!(id, "outside-p2");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "a UUID: {id}");
    assert_ne!(trace_of(&h), INCOMING_TRACE);
}

#[tokio::test]
async fn a_per_request_decision_keeps_internal_callers_as_parents() {
    let public = PublicEndpoint::per_request(|req| !req.headers.contains_key("x-internal"));
    let (front, seen) = start(public).await;
    send(front, "outside", "01", &[]).await;
    send(front, "inside", "01", &[("x-internal", "1")]).await;

    assert_ne!(trace_of(&seen_for(&seen, "outside")), INCOMING_TRACE);
    let inside = seen_for(&seen, "inside");
    assert_eq!(
        trace_of(&inside),
        INCOMING_TRACE,
        "the caller stays the parent"
    );
    assert!(inside["baggage"]
        .to_str()
        .expect("ascii")
        .contains("user=mallory"));
    assert!(inside.contains_key("x-ot-span-context"));
    let span = front_span("inside");
    assert_eq!(
        span.parent_span_id,
        SpanId::from_hex(INCOMING_SPAN).expect("hex")
    );
    assert!(span.links.is_empty());
}

#[tokio::test]
async fn off_by_default() {
    let (front, seen) = start(PublicEndpoint::default()).await;
    send(front, "d1", "01", &[]).await;
    assert_eq!(trace_of(&seen_for(&seen, "d1")), INCOMING_TRACE);
}
