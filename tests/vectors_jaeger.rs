//! Table tests for Jaeger `uber-trace-id` and `uberctx-*` baggage (SPECS.md section 7).

mod support;

use meshtrace::propagation::jaeger::{parse_uber_trace_id, JaegerError as E};
use meshtrace::{Format, Formats, SamplingState as S};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceFlags;
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderExtractor;
use support::headers::text_map;
use support::propagation::{
    check_settled, errors_of, injected_both, pairs, propagator, remote_cx, Settled,
};
use support::tables::report;

const T128: u128 = 0x80f198ee56343ba864fe8b2a57d3eff7;
const T64: u128 = 0x80f198ee56343ba8;
const SPAN: u64 = 0xe457b5a2e4d86bd1;

/// What a header parses to: (trace id, span id, sampling), or why not.
type Parsed = Result<(u128, u64, S), E>;

/// A row of the extract table: formats extracted, headers, what was settled.
type ExtractRow = (Formats, Vec<(&'static str, &'static str)>, Settled);

#[rustfmt::skip]
const PARSE: &[(&str, Parsed)] = &[
    ("80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1",                Ok((T128, SPAN, S::Accept))),
    ("80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:05e3ac9a4f6e3b90:0", Ok((T128, SPAN, S::Deny))),
    ("80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:01",               Ok((T128, SPAN, S::Accept))),
    // debug (0x2) implies sampled, with or without 0x1
    ("80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:3",                Ok((T128, SPAN, S::Debug))),
    ("80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:02",               Ok((T128, SPAN, S::Debug))),
    // other flag bits are ignored
    ("80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:4",                Ok((T128, SPAN, S::Deny))),
    ("80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:ff",               Ok((T128, SPAN, S::Debug))),
    // 64-bit and shorter ids are left-padded
    ("80f198ee56343ba8:e457b5a2e4d86bd1:0:1",                                Ok((T64, SPAN, S::Accept))),
    ("1:2:0:1",                                                              Ok((1, 2, S::Accept))),
    // URL-encoded separators, either case
    ("80f198ee56343ba8%3Ae457b5a2e4d86bd1%3A0%3A1",                          Ok((T64, SPAN, S::Accept))),
    ("80f198ee56343ba8%3ae457b5a2e4d86bd1:0%3a1",                            Ok((T64, SPAN, S::Accept))),
    // the parent is ignored, whatever it holds
    ("80f198ee56343ba8:e457b5a2e4d86bd1::1",                                 Ok((T64, SPAN, S::Accept))),
    // OWS around the value
    (" 80f198ee56343ba8:e457b5a2e4d86bd1:0:1\t",                             Ok((T64, SPAN, S::Accept))),
    // fields
    ("",                                                                     Err(E::Fields)),
    ("80f198ee56343ba8:e457b5a2e4d86bd1:0",                                  Err(E::Fields)),
    ("80f198ee56343ba8:e457b5a2e4d86bd1:0:1:",                               Err(E::Fields)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-0-1",                                Err(E::Fields)),
    ("80f198ee56343ba8%3Be457b5a2e4d86bd1%3A0%3A1",                          Err(E::Fields)),
    // trace id
    (":e457b5a2e4d86bd1:0:1",                                                Err(E::InvalidTraceId)),
    ("080f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1",               Err(E::InvalidTraceId)),
    ("80F198EE56343BA8:e457b5a2e4d86bd1:0:1",                                Err(E::InvalidTraceId)),
    ("80f198ee56343bag:e457b5a2e4d86bd1:0:1",                                Err(E::InvalidTraceId)),
    ("00000000000000000000000000000000:e457b5a2e4d86bd1:0:1",                Err(E::ZeroTraceId)),
    // span id
    ("80f198ee56343ba8::0:1",                                                Err(E::InvalidSpanId)),
    ("80f198ee56343ba8:0e457b5a2e4d86bd1:0:1",                               Err(E::InvalidSpanId)),
    ("80f198ee56343ba8:E457B5A2E4D86BD1:0:1",                                Err(E::InvalidSpanId)),
    ("80f198ee56343ba8:0000000000000000:0:1",                                Err(E::ZeroSpanId)),
    // flags
    ("80f198ee56343ba8:e457b5a2e4d86bd1:0:",                                 Err(E::InvalidFlags)),
    ("80f198ee56343ba8:e457b5a2e4d86bd1:0:001",                              Err(E::InvalidFlags)),
    ("80f198ee56343ba8:e457b5a2e4d86bd1:0:x",                                Err(E::InvalidFlags)),
    ("80f198ee56343ba8:e457b5a2e4d86bd1:0:1 1",                              Err(E::InvalidFlags)),
];

#[test]
fn parse_vectors() {
    let mut failures = Vec::new();
    for (i, (input, want)) in PARSE.iter().enumerate() {
        let got =
            parse_uber_trace_id(input.as_bytes()).map(|c| (c.trace_id, c.span_id, c.sampling));
        if got != *want {
            failures.push(format!("[{i}] {input:?}: want {want:?}, got {got:?}"));
        }
    }
    report("PARSE", failures);
}

const TP: &str = "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01";
const OTHER_TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const UBER: &str = "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1";

#[test]
fn extract_vectors() {
    let all = Formats::ALL;
    #[rustfmt::skip]
    let table: Vec<ExtractRow> = vec![
        // alone
        (all, vec![("uber-trace-id", UBER)],
            (Some((Format::Jaeger, T128, SPAN, S::Accept)), vec![], vec![], vec![])),
        // not extracted unless configured
        (Formats::ISTIO_EXTRACT, vec![("uber-trace-id", UBER), ("uberctx-user", "x")],
            (None, vec![], vec![], vec![])),
        // agreeing with traceparent: one context, Jaeger's debug lent to it
        (all, vec![("traceparent", TP), ("uber-trace-id", "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:3")],
            (Some((Format::TraceContext, T128, SPAN, S::Debug)), vec![], vec![], vec![])),
        // another trace: traceparent wins on priority, Jaeger is kept for a link
        (all, vec![("traceparent", OTHER_TP), ("uber-trace-id", UBER)],
            (Some((Format::TraceContext, 0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, S::Accept)), vec![Format::Jaeger], vec![], vec![])),
        // B3 multi outranks Jaeger by default
        (all, vec![("x-b3-traceid", "0af7651916cd43dd8448eb211c80319c"), ("x-b3-spanid", "b7ad6b7169203331"), ("uber-trace-id", UBER)],
            (Some((Format::B3Multi, 0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, S::Deferred)), vec![Format::Jaeger], vec![], vec![])),
        // a broken header is reported, a valid traceparent still wins
        (all, vec![("traceparent", TP), ("uber-trace-id", "x:y:0:1")],
            (Some((Format::TraceContext, T128, SPAN, S::Accept)), vec![], vec![], vec!["Jaeger(InvalidTraceId)".into()])),
        // baggage: URL-decoded, merged with W3C baggage, which wins on the same key
        (all, vec![("uber-trace-id", UBER), ("uberctx-user", "Jos%C3%A9%20M"), ("uberctx-tier", "gold"), ("baggage", "tier=silver")],
            (Some((Format::Jaeger, T128, SPAN, S::Accept)), vec![], pairs(&[("tier", "silver"), ("user", "José M")]), vec![])),
        // baggage without a trace context is still read
        (all, vec![("uberctx-k", "v")],
            (None, vec![], pairs(&[("k", "v")]), vec![])),
        // `%FF` decodes to U+FFFD, as in W3C baggage (SPECS 2)
        (all, vec![("uberctx-k", "v"), ("uberctx-bad", "%FF")],
            (None, vec![], pairs(&[("bad", "\u{FFFD}"), ("k", "v")]), vec![])),
    ];
    let mut failures = Vec::new();
    for (i, (formats, headers, want)) in table.iter().enumerate() {
        let p = propagator(*formats, Formats::NONE);
        check_settled(&mut failures, i, &p, headers, want);
    }
    report("EXTRACT", failures);
}

#[test]
fn many_uberctx_headers_are_bounded() {
    let p = propagator(Formats::ALL, Formats::NONE);
    let pairs: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("uberctx-k{i}"), "v".into()))
        .collect();
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let h = text_map(&refs);
    for cx in [
        p.extract_from_headers_with_context(&Context::new(), &h),
        p.extract_with_context(&Context::new(), &HeaderExtractor(&h)),
    ] {
        assert_eq!(cx.baggage().len(), 64);
        assert_eq!(errors_of(&cx), vec!["Baggage(936)".to_owned()]);
    }
}

#[test]
fn inject_vectors() {
    let p = propagator(Formats::ALL, Format::Jaeger.into());
    #[rustfmt::skip]
    let table: Vec<(Context, Vec<(&str, &str)>)> = vec![
        (remote_cx(T128, SPAN, TraceFlags::SAMPLED), vec![("uber-trace-id", "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1")]),
        (remote_cx(T128, SPAN, TraceFlags::default()), vec![("uber-trace-id", "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:0")]),
        // a 64-bit id goes out as 32 digits
        (remote_cx(T64, SPAN, TraceFlags::SAMPLED), vec![("uber-trace-id", "000000000000000080f198ee56343ba8:e457b5a2e4d86bd1:0:1")]),
        // debug stays debug
        (p.extract_from_headers(&text_map(&[("uber-trace-id", "80f198ee56343ba8:e457b5a2e4d86bd1:0:2")])),
            vec![("uber-trace-id", "000000000000000080f198ee56343ba8:e457b5a2e4d86bd1:0:3")]),
        // a deferred decision (B3 without a state) goes out as not sampled: Jaeger has no word for it
        (propagator(Formats::ALL, Formats::NONE).extract_from_headers(&text_map(&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1")])),
            vec![("uber-trace-id", "000000000000000080f198ee56343ba8:e457b5a2e4d86bd1:0:0")]),
        // baggage: URL-encoded; keys that are not lowercase header names stay in `baggage` only
        (remote_cx(T128, SPAN, TraceFlags::SAMPLED).with_baggage([KeyValue::new("user", "José M/1"), KeyValue::new("Upper", "x"), KeyValue::new("a b", "x")]),
            vec![("uber-trace-id", "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1"), ("uberctx-user", "Jos%C3%A9%20M%2F1")]),
        // no span context: no trace header, baggage still goes out
        (Context::new().with_baggage([KeyValue::new("k", "v")]), vec![("uberctx-k", "v")]),
    ];
    let mut failures = Vec::new();
    for (i, (cx, want)) in table.iter().enumerate() {
        let want = pairs(want);
        for (path, got) in injected_both(&p, cx) {
            if got != want {
                failures.push(format!("[{i}] {path}:\n  want {want:?}\n  got  {got:?}"));
            }
        }
    }
    report("INJECT", failures);
}
