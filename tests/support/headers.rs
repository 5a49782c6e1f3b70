//! Header names and header maps: the trace headers meshtrace reads and writes, header maps
//! built from table rows, and the ids a `traceparent` names.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{SpanId, TraceId};

/// The W3C trace-context headers.
pub const W3C_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// The B3 headers: the single `b3` header, then the multi-header set.
pub const B3_HEADERS: [&str; 6] = [
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

/// The headers the Istio preset passes through as they came.
pub const PASS_THROUGH_HEADERS: [&str; 2] = ["x-request-id", "x-ot-span-context"];

/// Every trace, baggage and pass-through header the Istio preset reads or writes: every
/// header name a format of meshtrace reads.
pub fn trace_headers() -> Vec<&'static str> {
    [
        &W3C_HEADERS[..],
        &["baggage"],
        &B3_HEADERS,
        &PASS_THROUGH_HEADERS,
    ]
    .concat()
}

/// A header map from (name, value bytes) pairs, in order; repeated names become several
/// lines.
pub fn bytes_map(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    h
}

/// A header map from (name, text value) pairs, in order; repeated names become several lines.
pub fn text_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let bytes: Vec<(&str, &[u8])> = pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    bytes_map(&bytes)
}

/// The value of header `name` as text; panics if it is missing.
pub fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("{name} missing from {h:?}"))
        .to_str()
        .expect("text")
}

/// The trace id a `traceparent` value names.
pub fn trace_id_of(traceparent: &str) -> TraceId {
    TraceId::from_hex(traceparent.split('-').nth(1).expect("trace id")).expect("hex")
}

/// The span id a `traceparent` value names.
pub fn span_id_of(traceparent: &str) -> SpanId {
    SpanId::from_hex(traceparent.split('-').nth(2).expect("span id")).expect("hex")
}
