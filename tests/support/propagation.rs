//! What a propagator extracted, in forms two contexts can be compared by, and generators
//! of valid propagation values for the property tests.

use http::HeaderMap;
use meshtrace::{Format, Formats, MeshContextExt, MeshPropagator, SamplingState};
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_http::HeaderExtractor;
use proptest::prelude::*;
use std::collections::HashMap;

/// Baggage as sorted `(key, value, metadata)` triples, for comparing two baggages.
pub fn baggage_entries(b: &Baggage) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = b
        .iter()
        .map(|(k, (v, m))| {
            (
                k.as_str().to_owned(),
                v.as_str().to_owned(),
                m.as_str().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The baggage of `cx` as [`baggage_entries`].
pub fn baggage_vec(cx: &Context) -> Vec<(String, String, String)> {
    baggage_entries(cx.baggage())
}

/// The extraction errors meshtrace recorded in `cx`, as their `Debug` text.
pub fn errors_of(cx: &Context) -> Vec<String> {
    cx.mesh()
        .map(|m| m.errors().iter().map(|e| format!("{e:?}")).collect())
        .unwrap_or_default()
}

/// A valid `tracestate` key: simple or multi-tenant (`tenant@system`).
pub fn tracestate_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9_*/-]{0,20}",
        "[a-z0-9][a-z0-9_*/-]{0,10}@[a-z0-9][a-z0-9_*/-]{0,12}",
    ]
}

/// What extraction settled, for the table tests of the formats: the remote parent (format,
/// trace id, span id, sampling), the losing formats, baggage `(key, value)`, errors.
pub type Settled = (
    Option<(Format, u128, u64, SamplingState)>,
    Vec<Format>,
    Vec<(String, String)>,
    Vec<String>,
);

/// [`Settled`] of an extracted context.
pub fn settled(cx: &Context) -> Settled {
    let mesh = cx.mesh();
    let remote = mesh.and_then(|m| m.remote()).map(|r| {
        (
            r.format,
            u128::from_be_bytes(r.trace_id.to_bytes()),
            u64::from_be_bytes(r.span_id.to_bytes()),
            r.sampling,
        )
    });
    let losing = mesh
        .map(|m| m.losing().iter().map(|l| l.format).collect())
        .unwrap_or_default();
    let baggage = baggage_vec(cx)
        .into_iter()
        .map(|(k, v, _)| (k, v))
        .collect();
    (remote, losing, baggage, errors_of(cx))
}

/// [`Settled`] of `headers` extracted through the `HeaderMap` path and the `Extractor` path.
pub fn settled_both(p: &MeshPropagator, headers: &HeaderMap) -> [(&'static str, Settled); 2] {
    [
        (
            "HeaderMap",
            settled(&p.extract_from_headers_with_context(&Context::new(), headers)),
        ),
        (
            "Extractor",
            settled(&p.extract_with_context(&Context::new(), &HeaderExtractor(headers))),
        ),
    ]
}

/// A propagator of exactly these formats, with no pass-through names beyond the defaults.
pub fn propagator(extract: Formats, inject: Formats) -> MeshPropagator {
    MeshPropagator::builder()
        .extract(extract)
        .inject(inject)
        .build()
        .unwrap()
}

/// Adds to `failures` each extraction path on which `p` does not settle `headers` as `want`
/// (row `i` of a table).
pub fn check_settled(
    failures: &mut Vec<String>,
    i: usize,
    p: &MeshPropagator,
    headers: &[(&str, &str)],
    want: &Settled,
) {
    for (path, got) in settled_both(p, &crate::support::headers::text_map(headers)) {
        if got != *want {
            failures.push(format!(
                "[{i}] {path} {headers:?}:\n  want {want:?}\n  got  {got:?}"
            ));
        }
    }
}

/// The sorted `(name, value)` pairs `p` injects for `cx`, into a `HeaderMap` and into an
/// `Injector` (a `HashMap`).
pub fn injected_both(
    p: &MeshPropagator,
    cx: &Context,
) -> [(&'static str, Vec<(String, String)>); 2] {
    let mut h = HeaderMap::new();
    p.inject_into_headers(cx, &mut h);
    let mut fast: Vec<(String, String)> = h
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().expect("text").to_owned()))
        .collect();
    fast.sort();
    let mut m = HashMap::new();
    p.inject_context(cx, &mut m);
    let mut generic: Vec<(String, String)> = m.into_iter().collect();
    generic.sort();
    [("HeaderMap", fast), ("Injector", generic)]
}

/// Owned, sorted `(key, value)` pairs.
pub fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.sort();
    out
}

/// A context holding only a remote span context with these ids and flags.
pub fn remote_cx(trace_id: u128, span_id: u64, flags: TraceFlags) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        flags,
        true,
        TraceState::NONE,
    ))
}
