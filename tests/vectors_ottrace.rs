//! Table tests for OpenTracing `ot-tracer-*` and `ot-baggage-*` (SPECS.md section 7).

mod support;

use meshtrace::propagation::ottrace::{parse, OtHeaders, OtTraceError as E};
use meshtrace::{Format, Formats, SamplingState as S};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::TraceFlags;
use opentelemetry::{Context, KeyValue};
use support::headers::text_map;
use support::propagation::{check_settled, injected_both, pairs, propagator, remote_cx, Settled};
use support::tables::report;

const T128: u128 = 0x80f198ee56343ba864fe8b2a57d3eff7;
const T64: u128 = 0x80f198ee56343ba8;
const SPAN: u64 = 0xe457b5a2e4d86bd1;
const TID: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const TID64: &str = "80f198ee56343ba8";
const SID: &str = "e457b5a2e4d86bd1";

/// (trace id, span id, sampled) headers, `None` when absent.
type Row = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);
/// What a row parses to: (trace id, span id, sampling), or why it was rejected.
type Parsed = Result<Option<(u128, u64, S)>, E>;

#[rustfmt::skip]
const PARSE: &[(Row, Parsed)] = &[
    ((Some(TID), Some(SID), Some("true")),                 Ok(Some((T128, SPAN, S::Accept)))),
    ((Some(TID), Some(SID), Some("false")),                Ok(Some((T128, SPAN, S::Deny)))),
    ((Some(TID64), Some(SID), Some("1")),                  Ok(Some((T64, SPAN, S::Accept)))),
    ((Some(TID64), Some(SID), Some("0")),                  Ok(Some((T64, SPAN, S::Deny)))),
    ((Some(TID64), Some(SID), Some(" true ")),             Ok(Some((T64, SPAN, S::Accept)))),
    // no decision sent: deferred, not "not sampled"
    ((Some(TID64), Some(SID), None),                       Ok(Some((T64, SPAN, S::Deferred)))),
    // ids without their leading zeros (OpenTelemetry Python writes them so) are left-padded
    ((Some("abc"), Some("ef"), Some("true")),              Ok(Some((0xabc, 0xef, S::Accept)))),
    // nothing sent
    ((None, None, None),                                   Ok(None)),
    // not paired
    ((Some(TID), None, Some("true")),                      Err(E::IdsNotPaired)),
    ((None, Some(SID), Some("true")),                      Err(E::IdsNotPaired)),
    ((None, None, Some("true")),                           Err(E::IdsNotPaired)),
    // sampled
    ((Some(TID), Some(SID), Some("True")),                 Err(E::InvalidSampled)),
    ((Some(TID), Some(SID), Some("yes")),                  Err(E::InvalidSampled)),
    ((Some(TID), Some(SID), Some("")),                     Err(E::InvalidSampled)),
    ((Some(TID), Some(SID), Some("d")),                    Err(E::InvalidSampled)),
    // trace id
    ((Some(""), Some(SID), Some("true")),                  Err(E::InvalidTraceId)),
    ((Some("080f198ee56343ba864fe8b2a57d3eff7"), Some(SID), None), Err(E::InvalidTraceId)),
    ((Some("80F198EE56343BA8"), Some(SID), None),          Err(E::InvalidTraceId)),
    ((Some("80f198ee-6343ba8"), Some(SID), None),          Err(E::InvalidTraceId)),
    ((Some("0000000000000000"), Some(SID), None),          Err(E::ZeroTraceId)),
    // span id
    ((Some(TID), Some(""), None),                          Err(E::InvalidSpanId)),
    ((Some(TID), Some("0e457b5a2e4d86bd1"), None),         Err(E::InvalidSpanId)),
    ((Some(TID), Some("E457B5A2E4D86BD1"), None),          Err(E::InvalidSpanId)),
    ((Some(TID), Some("0000000000000000"), None),          Err(E::ZeroSpanId)),
];

#[test]
fn parse_vectors() {
    let mut failures = Vec::new();
    for (i, ((t, s, d), want)) in PARSE.iter().enumerate() {
        let h = OtHeaders {
            trace_id: t.map(str::as_bytes),
            span_id: s.map(str::as_bytes),
            sampled: d.map(str::as_bytes),
        };
        let got = parse(&h).map(|c| c.map(|c| (c.trace_id, c.span_id, c.sampling)));
        if got != *want {
            failures.push(format!("[{i}] {:?}: want {want:?}, got {got:?}", (t, s, d)));
        }
    }
    report("PARSE", failures);
}

#[test]
fn extract_vectors() {
    let all = Formats::ALL;
    #[rustfmt::skip]
    let table: Vec<(Vec<(&str, &str)>, Settled)> = vec![
        (vec![("ot-tracer-traceid", TID64), ("ot-tracer-spanid", SID), ("ot-tracer-sampled", "true")],
            (Some((Format::OtTrace, T64, SPAN, S::Accept)), vec![], vec![], vec![])),
        // a deferred OpenTracing context takes the decision of an agreeing Jaeger header
        (vec![("ot-tracer-traceid", TID), ("ot-tracer-spanid", SID), ("uber-trace-id", "80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:0")],
            (Some((Format::Jaeger, T128, SPAN, S::Deny)), vec![], vec![], vec![])),
        // its low 64 bits only (what it sends on inject) are another trace id: kept as a loser
        (vec![("ot-tracer-traceid", TID64), ("ot-tracer-spanid", SID), ("traceparent", "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01")],
            (Some((Format::TraceContext, T128, SPAN, S::Accept)), vec![Format::OtTrace], vec![], vec![])),
        // Jaeger outranks OpenTracing by default
        (vec![("ot-tracer-traceid", TID64), ("ot-tracer-spanid", SID), ("uber-trace-id", "0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331:0:1")],
            (Some((Format::Jaeger, 0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, S::Accept)), vec![Format::OtTrace], vec![], vec![])),
        // errors are reported
        (vec![("ot-tracer-traceid", TID64), ("ot-tracer-spanid", SID), ("ot-tracer-sampled", "maybe")],
            (None, vec![], vec![], vec!["OtTrace(InvalidSampled)".into()])),
        // baggage: values as sent; W3C baggage, then uberctx-*, then ot-baggage-* for a key
        (vec![("ot-baggage-user", "a b%20c"), ("ot-baggage-tier", "bronze"), ("uberctx-tier", "gold"), ("baggage", "region=eu")],
            (None, vec![], pairs(&[("region", "eu"), ("tier", "gold"), ("user", "a b%20c")]), vec![])),
    ];
    let mut failures = Vec::new();
    for (i, (headers, want)) in table.iter().enumerate() {
        let p = propagator(all, Formats::NONE);
        check_settled(&mut failures, i, &p, headers, want);
    }
    report("EXTRACT", failures);
}

#[test]
fn inject_vectors() {
    let p = propagator(Formats::ALL, Format::OtTrace.into());
    #[rustfmt::skip]
    let table: Vec<(Context, Vec<(&str, &str)>)> = vec![
        // the low 64 bits of the trace id
        (remote_cx(T128, SPAN, TraceFlags::SAMPLED),
            vec![("ot-tracer-traceid", "64fe8b2a57d3eff7"), ("ot-tracer-spanid", SID), ("ot-tracer-sampled", "true")]),
        (remote_cx(T64, 0xef, TraceFlags::default()),
            vec![("ot-tracer-traceid", TID64), ("ot-tracer-spanid", "00000000000000ef"), ("ot-tracer-sampled", "false")]),
        // a deferred decision is not written
        (propagator(Formats::ALL, Formats::NONE).extract_from_headers(&text_map(&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1")])),
            vec![("ot-tracer-traceid", TID64), ("ot-tracer-spanid", SID)]),
        // baggage: values that fit a header as they are; others stay in `baggage` only
        (remote_cx(T64, SPAN, TraceFlags::SAMPLED).with_baggage([
            KeyValue::new("user", "a b"), KeyValue::new("name", "José"), KeyValue::new("lf", "a\nb"),
            KeyValue::new("pad", " x"), KeyValue::new("Upper", "x")]),
            vec![("ot-tracer-traceid", TID64), ("ot-tracer-spanid", SID), ("ot-tracer-sampled", "true"), ("ot-baggage-user", "a b")]),
        // no span context: baggage only
        (Context::new().with_baggage([KeyValue::new("k", "v")]), vec![("ot-baggage-k", "v")]),
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
