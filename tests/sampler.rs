//! A deferred B3 decision is made by the local sampler, not read as "not sampled"; debug
//! and sampling-only decisions are honoured when the service starts its span.
#![cfg(feature = "sdk")]

mod support;

use http::HeaderMap;
use meshtrace::{MeshPropagator, MeshSampler};
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use support::headers::text_map;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

/// Starts a server span under what `incoming` carried and returns its context and the
/// headers the service would send on its next call.
fn serve(root: Sampler, incoming: &HeaderMap) -> (Context, HeaderMap) {
    let provider = SdkTracerProvider::builder()
        .with_sampler(MeshSampler::new(root))
        .build();
    let tracer = provider.tracer("test");
    let propagator = MeshPropagator::istio();
    let parent = propagator.extract_from_headers_with_context(&Context::new(), incoming);
    let span = tracer
        .span_builder("GET /")
        .with_kind(SpanKind::Server)
        .start_with_context(&tracer, &parent);
    let cx = parent.with_span(span);
    let mut out = HeaderMap::new();
    propagator.inject_into_headers(&cx, &mut out);
    (cx, out)
}

#[test]
fn deferred_is_decided_by_the_local_root_sampler() {
    let incoming = text_map(&[("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)]);
    let (cx, out) = serve(Sampler::AlwaysOn, &incoming);
    assert!(cx.span().span_context().is_sampled());
    assert_eq!(cx.span().span_context().trace_id().to_string(), TRACE);
    assert_eq!(out["x-b3-sampled"], "1");
    assert!(out["traceparent"].to_str().unwrap().ends_with("-01"));

    let (cx, out) = serve(Sampler::AlwaysOff, &incoming);
    assert!(!cx.span().span_context().is_sampled());
    assert_eq!(out["x-b3-sampled"], "0");
}

#[test]
fn plain_parent_based_reads_deferred_as_not_sampled() {
    // What users get today with the SDK's own sampler: the trace is silently dropped.
    let incoming = text_map(&[("b3", &format!("{TRACE}-{SPAN}"))]);
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .build();
    let tracer = provider.tracer("test");
    let parent =
        MeshPropagator::istio().extract_from_headers_with_context(&Context::new(), &incoming);
    let span = tracer.start_with_context("GET /", &parent);
    assert!(!span.span_context().is_sampled());
}

#[test]
fn debug_is_sampled_and_passed_on_as_debug() {
    let incoming = text_map(&[("b3", &format!("{TRACE}-{SPAN}-d"))]);
    let (cx, out) = serve(Sampler::AlwaysOff, &incoming);
    assert!(cx.span().span_context().is_sampled());
    assert_eq!(out["x-b3-flags"], "1");
    assert!(out.get("x-b3-sampled").is_none());
}

#[test]
fn explicit_decisions_are_followed() {
    let deny = text_map(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "0"),
    ]);
    let (cx, _) = serve(Sampler::AlwaysOn, &deny);
    assert!(!cx.span().span_context().is_sampled());
    let accept = text_map(&[("traceparent", &format!("00-{TRACE}-{SPAN}-01"))]);
    let (cx, _) = serve(Sampler::AlwaysOff, &accept);
    assert!(cx.span().span_context().is_sampled());
}

#[test]
fn sampling_only_headers_decide_the_new_trace() {
    let (cx, out) = serve(Sampler::AlwaysOff, &text_map(&[("b3", "1")]));
    assert!(cx.span().span_context().is_sampled());
    assert_ne!(cx.span().span_context().trace_id().to_string(), TRACE);
    assert_eq!(out["x-b3-sampled"], "1");
    // A trace this process started carries the W3C random flag.
    assert!(out["traceparent"].to_str().unwrap().ends_with("-03"));

    let (cx, _) = serve(Sampler::AlwaysOn, &text_map(&[("b3", "0")]));
    assert!(!cx.span().span_context().is_sampled());
    let (cx, _) = serve(Sampler::AlwaysOff, &text_map(&[("x-b3-flags", "1")]));
    assert!(cx.span().span_context().is_sampled());
    let (cx, _) = serve(Sampler::AlwaysOff, &HeaderMap::new());
    assert!(!cx.span().span_context().is_sampled());
}

#[test]
fn sixty_four_bit_trace_ids_keep_their_width_through_a_local_span() {
    let incoming = text_map(&[
        ("x-b3-traceid", "a3ce929d0e0e4736"),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "1"),
    ]);
    let (cx, out) = serve(Sampler::AlwaysOn, &incoming);
    assert_eq!(out["x-b3-traceid"], "a3ce929d0e0e4736");
    assert_eq!(
        out["traceparent"],
        format!(
            "00-0000000000000000a3ce929d0e0e4736-{}-01",
            cx.span().span_context().span_id()
        )
    );
}
