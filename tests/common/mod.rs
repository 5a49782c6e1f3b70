//! Helpers shared by the test files. Each test file is its own crate and uses only some of
//! them, so unused ones are not an error here.
#![allow(dead_code)]

use opentelemetry::baggage::Baggage;

/// Fails with every collected failure at once, so one run shows all failing vectors.
pub fn report(table: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failing vector(s) in {table}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

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
