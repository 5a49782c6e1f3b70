//! Table tests for the composite rules (SPECS.md section 6) and pass-through headers
//! (section 4): conflicts between formats, priority, failed extraction, inject without a
//! span context, pass-through, `fields()`, `OTEL_PROPAGATORS`.

mod support;

use http::HeaderMap;
use meshtrace::propagation::env::{PropagatorList, PropagatorName as N};
use meshtrace::{
    B3Encoding, Format, Formats, MeshContextExt, MeshPropagator, MeshPropagatorBuilder,
    SamplingState as S,
};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use std::collections::{BTreeSet, HashMap};

/// Header (name, value) pairs of a table row.
type Headers = &'static [(&'static str, &'static str)];

const T1: &str = "0af7651916cd43dd8448eb211c80319c";
const T2: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const S1: &str = "b7ad6b7169203331";
const S2: &str = "e457b5a2e4d86bd1";
const S3: &str = "05e3ac9a4f6e3b90";

// ---------------------------------------------------------------------------------------------
// Conflicts between formats
// ---------------------------------------------------------------------------------------------

/// (priority given to the builder (empty = default), headers,
///  winner (format, trace, span), sampling state, losing contexts (None = not checked))
type ConflictRow = (
    &'static [Format],
    &'static [(&'static str, &'static str)],
    (Format, &'static str, &'static str),
    S,
    Option<&'static [(Format, &'static str, &'static str)]>,
);

use Format::{B3Multi as BM, B3Single as BS, TraceContext as TC};

use support::headers::{bytes_map, text_map};
use support::propagation::errors_of;
use support::tables::{report, show_pairs};

#[rustfmt::skip]
const CONFLICT: &[ConflictRow] = &[
    // agreeing formats: one context, nothing lost
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S1), ("x-b3-sampled", "1")],
        (TC, T1, S1), S::Accept, Some(&[])),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331")],
        (TC, T1, S1), S::Accept, Some(&[])),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S1)],
        (TC, T1, S1), S::Accept, Some(&[])),
    (&[], &[("traceparent", "00-000000000000000080f198ee56343ba8-e457b5a2e4d86bd1-01"),
            ("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-1")],
        (TC, "000000000000000080f198ee56343ba8", S2), S::Accept, Some(&[])),
    // agreeing formats merge their decision: debug anywhere is debug (and sampled)
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
            ("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-d")],
        (TC, T1, S1), S::Debug, Some(&[])),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S1), ("x-b3-flags", "1")],
        (TC, T1, S1), S::Debug, Some(&[])),
    // a deferred winner takes the decision of an agreeing format
    (&[], &[("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S1), ("x-b3-sampled", "1")],
        (BS, T1, S1), S::Accept, Some(&[])),
    // same trace, different span: B3 naming the traceparent's span as parent is the newer hop
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S2), ("x-b3-parentspanid", S1), ("x-b3-sampled", "1")],
        (BM, T1, S2), S::Accept, None),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "0af7651916cd43dd8448eb211c80319c-e457b5a2e4d86bd1-1-b7ad6b7169203331")],
        (BS, T1, S2), S::Accept, None),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "0af7651916cd43dd8448eb211c80319c-e457b5a2e4d86bd1-1-b7ad6b7169203331"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S3), ("x-b3-parentspanid", S1)],
        (BS, T1, S2), S::Accept, None),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "0af7651916cd43dd8448eb211c80319c-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S3), ("x-b3-parentspanid", S1), ("x-b3-sampled", "0")],
        (BM, T1, S3), S::Deny, None),
    // ... else the priority wins
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S2), ("x-b3-parentspanid", S3), ("x-b3-sampled", "0")],
        (TC, T1, S1), S::Accept, None),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S2), ("x-b3-sampled", "0")],
        (TC, T1, S1), S::Accept, None),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "0af7651916cd43dd8448eb211c80319c-e457b5a2e4d86bd1-0")],
        (TC, T1, S1), S::Accept, None),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "0af7651916cd43dd8448eb211c80319c-e457b5a2e4d86bd1-1-0000000000000000")],
        (TC, T1, S1), S::Accept, None),
    // different trace ids: priority wins, the others are kept
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
        (TC, T1, S1), S::Accept, Some(&[(BS, T2, S2)])),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-b3-traceid", T2), ("x-b3-spanid", S2), ("x-b3-sampled", "1")],
        (TC, T1, S1), S::Accept, Some(&[(BM, T2, S2)])),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("x-b3-traceid", T2), ("x-b3-spanid", S3)],
        (TC, T1, S1), S::Accept, Some(&[(BS, T2, S2), (BM, T2, S3)])),
    (&[], &[("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"),
            ("x-b3-traceid", T2), ("x-b3-spanid", S2), ("x-b3-sampled", "0")],
        (BS, T1, S1), S::Accept, Some(&[(BM, T2, S2)])),
    // a parent-id match does not count across different traces
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-b7ad6b7169203331")],
        (TC, T1, S1), S::Accept, Some(&[(BS, T2, S2)])),
    // an invalid format takes no part
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
        (BS, T2, S2), S::Accept, Some(&[])),
    (&[], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "0")],
        (TC, T1, S1), S::Accept, Some(&[])),
    // custom priority
    (&[BM, BS, TC], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-b3-traceid", T2), ("x-b3-spanid", S2), ("x-b3-sampled", "0")],
        (BM, T2, S2), S::Deny, Some(&[(TC, T1, S1)])),
    (&[BS], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
        (BS, T2, S2), S::Accept, Some(&[(TC, T1, S1)])),
    (&[BM], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("x-b3-traceid", T2), ("x-b3-spanid", S2)],
        (BM, T2, S2), S::Accept, Some(&[(TC, T1, S1)])),
    (&[BS, TC, BM], &[("b3", "80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1-1"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-b3-traceid", T2), ("x-b3-spanid", S2)],
        (TC, T1, S1), S::Accept, Some(&[(BM, T2, S2)])),
    (&[BM, BS, TC], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S1)],
        (BM, T1, S1), S::Accept, Some(&[])),
    (&[BM, BS, TC], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S2), ("x-b3-parentspanid", S3), ("x-b3-sampled", "1")],
        (BM, T1, S2), S::Accept, None),
    (&[BS, BM, TC], &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-b3-traceid", T1), ("x-b3-spanid", S2), ("x-b3-parentspanid", S1), ("x-b3-sampled", "1")],
        (BM, T1, S2), S::Accept, None),
];

type Winner = (Format, String, String, S, bool);

#[test]
fn conflict_vectors() {
    let mut failures = Vec::new();
    for (i, (priority, headers, (wf, wt, ws), sampling, losing)) in CONFLICT.iter().enumerate() {
        let mut b = MeshPropagator::builder_istio();
        if !priority.is_empty() {
            b = b.priority(priority.iter().copied());
        }
        let p = b.build().unwrap();
        let cx = p.extract_from_headers(&text_map(headers));
        let sc = cx.span().span_context().clone();
        let want: Winner = (
            *wf,
            wt.to_string(),
            ws.to_string(),
            *sampling,
            sampling.is_sampled() == Some(true),
        );
        let got: Option<Winner> = cx.mesh().and_then(|m| m.remote()).map(|r| {
            (
                r.format,
                format!("{:032x}", sc.trace_id()),
                format!("{:016x}", sc.span_id()),
                r.sampling,
                sc.is_sampled(),
            )
        });
        if got.as_ref() != Some(&want) {
            failures.push(format!(
                "[{i}] {headers:?} priority {priority:?}:\n    want {want:?}\n    got  {got:?}"
            ));
            continue;
        }
        let r = cx.mesh().unwrap().remote().unwrap();
        if (r.trace_id, r.span_id) != (sc.trace_id(), sc.span_id()) {
            failures.push(format!("[{i}]: RemoteParent and span context differ"));
        }
        if let Some(losing) = losing {
            let mut want: Vec<(Format, String, String)> = losing
                .iter()
                .map(|(f, t, s)| (*f, t.to_string(), s.to_string()))
                .collect();
            let mut got: Vec<(Format, String, String)> = cx
                .mesh()
                .unwrap()
                .losing()
                .iter()
                .map(|l| {
                    (
                        l.format,
                        format!("{:032x}", l.span_context.trace_id()),
                        format!("{:016x}", l.span_context.span_id()),
                    )
                })
                .collect();
            want.sort_by_key(|x| format!("{x:?}"));
            got.sort_by_key(|x| format!("{x:?}"));
            if got != want {
                failures.push(format!(
                    "[{i}] {headers:?}: losing\n    want {want:?}\n    got  {got:?}"
                ));
            }
        }
    }
    report("CONFLICT", failures);
}

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Step {
    Priority(&'static [Format]),
    PassThrough(&'static str),
}

#[rustfmt::skip]
const BUILD: &[(Step, Result<(), &str>)] = &[
    (Step::Priority(&[]),                               Ok(())),
    (Step::Priority(&[BM]),                             Ok(())),
    (Step::Priority(&[BM, BS, TC]),                     Ok(())),
    (Step::Priority(&[Format::Baggage]),                Err("Priority(Baggage)")),
    (Step::Priority(&[TC, Format::PassThrough]),        Err("Priority(PassThrough)")),
    (Step::Priority(&[TC, BS, TC]),                     Err("Priority(TraceContext)")),
    (Step::PassThrough("x-client-trace-id"),            Ok(())),
    (Step::PassThrough("X-Cloud-Trace-Context"),        Ok(())),
    (Step::PassThrough("traceparent"),                  Err("ReservedHeaderName(\"traceparent\")")),
    (Step::PassThrough("X-B3-Sampled"),                 Err("ReservedHeaderName(\"x-b3-sampled\")")),
    (Step::PassThrough("baggage"),                      Err("ReservedHeaderName(\"baggage\")")),
    (Step::PassThrough("b3"),                           Err("ReservedHeaderName(\"b3\")")),
    (Step::PassThrough("bad name"),                     Err("InvalidHeaderName(\"bad name\")")),
    (Step::PassThrough(""),                             Err("InvalidHeaderName(\"\")")),
];

#[test]
fn build_vectors() {
    let mut failures = Vec::new();
    for (i, (step, want)) in BUILD.iter().enumerate() {
        let b = MeshPropagator::builder_istio();
        let b = match step {
            Step::Priority(p) => b.priority(p.iter().copied()),
            Step::PassThrough(n) => b.pass_through_header(*n),
        };
        let got = b.build().map(|_| ()).map_err(|e| format!("{e:?}"));
        if got != want.map_err(str::to_owned) {
            failures.push(format!("[{i}] {step:?}: want {want:?}, got {got:?}"));
        }
    }
    report("BUILD", failures);
}

// ---------------------------------------------------------------------------------------------
// A failed extraction never replaces a valid context already in place
// ---------------------------------------------------------------------------------------------

const T9: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const S9: &str = "00f067aa0ba902b7";

/// (headers, expected (trace, span) afterwards)
#[rustfmt::skip]
const EXISTING: &[(Headers, (&str, &str))] = &[
    (&[],                                                                   (T9, S9)),
    (&[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x")], (T9, S9)),
    (&[("traceparent", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],   (T9, S9)),
    (&[("traceparent", "00-00000000000000000000000000000000-b7ad6b7169203331-01")],   (T9, S9)),
    (&[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
       ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],   (T9, S9)),
    (&[("tracestate", "a=1")],                                              (T9, S9)),
    (&[("b3", "80F198EE56343BA8-e457b5a2e4d86bd1-1")],                      (T9, S9)),
    (&[("b3", "80f198ee56343ba8-0000000000000000-1")],                      (T9, S9)),
    (&[("x-b3-traceid", T2)],                                               (T9, S9)),
    (&[("x-b3-traceid", T2), ("x-b3-spanid", "0000000000000000")],          (T9, S9)),
    (&[("b3", "0")],                                                        (T9, S9)),
    (&[("b3", "d")],                                                        (T9, S9)),
    (&[("x-b3-sampled", "1")],                                              (T9, S9)),
    (&[("baggage", "a=1")],                                                 (T9, S9)),
    (&[("x-request-id", "3e1c6d4a-5b2f-4c8e-9d7a-1f0b2c3d4e5f")],           (T9, S9)),
    // a valid one does replace it
    (&[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],   (T1, S1)),
    (&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],      (T2, S2)),
    (&[("x-b3-traceid", T2), ("x-b3-spanid", S2)],                          (T2, S2)),
];

#[test]
fn existing_context_vectors() {
    let p = MeshPropagator::istio();
    let existing = SpanContext::new(
        TraceId::from_hex(T9).unwrap(),
        SpanId::from_hex(S9).unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("x", "1")]).unwrap(),
    );
    let base = Context::new().with_remote_span_context(existing.clone());
    let mut failures = Vec::new();
    for (i, (headers, (t, s))) in EXISTING.iter().enumerate() {
        let h = text_map(headers);
        let cx = p.extract_from_headers_with_context(&base, &h);
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let unique = map.len() == headers.len();
        let cx_map = p.extract_with_context(&base, &map);
        for (path, cx) in [
            ("HeaderMap", Some(cx)),
            ("HashMap", unique.then_some(cx_map)),
        ] {
            let Some(cx) = cx else { continue };
            let sc = cx.span().span_context().clone();
            let got = (
                format!("{:032x}", sc.trace_id()),
                format!("{:016x}", sc.span_id()),
            );
            if got != (t.to_string(), s.to_string()) {
                failures.push(format!(
                    "[{i}] ({path}) {headers:?}: want {:?}, got {got:?}",
                    (t, s)
                ));
            } else if *t == T9 && sc != existing {
                failures.push(format!(
                    "[{i}] ({path}) {headers:?}: existing context altered: {sc:?}"
                ));
            }
        }
    }
    report("EXISTING", failures);
}

// ---------------------------------------------------------------------------------------------
// Inject with no valid span context
// ---------------------------------------------------------------------------------------------

/// (incoming headers, everything that goes out, sorted by name)
#[rustfmt::skip]
const NO_SPAN: &[(Headers, Headers)] = &[
    (&[],                                                       &[]),
    (&[("x-request-id", "r-1"), ("baggage", "a=1")],            &[("baggage", "a=1"), ("x-request-id", "r-1")]),
    (&[("b3", "0"), ("x-request-id", "r-1")],                   &[("x-request-id", "r-1")]),
    (&[("b3", "1")],                                            &[]),
    (&[("b3", "d"), ("baggage", "k=v;p")],                      &[("baggage", "k=v;p")]),
    (&[("x-b3-sampled", "0")],                                  &[]),
    (&[("x-b3-sampled", "1"), ("x-ot-span-context", "abc")],    &[("x-ot-span-context", "abc")]),
    (&[("x-b3-flags", "1")],                                    &[]),
    (&[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"),
       ("tracestate", "a=1"), ("baggage", "a=1")],              &[("baggage", "a=1")]),
    (&[("x-b3-traceid", T2), ("x-b3-sampled", "0"), ("x-request-id", "r-2")],
                                                                &[("x-request-id", "r-2")]),
];

fn sorted_pairs(h: &HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = h
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    v.sort();
    v
}

#[test]
fn no_span_inject_vectors() {
    let p = MeshPropagator::builder_istio()
        .b3_inject(B3Encoding::Both)
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for (i, (incoming, want)) in NO_SPAN.iter().enumerate() {
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let cx = p.extract_from_headers(&text_map(incoming));
        let mut out = HeaderMap::new();
        p.inject_into_headers(&cx, &mut out);
        let got = sorted_pairs(&out);
        if got != want {
            failures.push(format!(
                "[{i}] (HeaderMap) {incoming:?}:\n    want {want:?}\n    got  {got:?}"
            ));
        }
        let mut m: HashMap<String, String> = HashMap::new();
        p.inject_context(&cx, &mut m);
        let mut got: Vec<(String, String)> = m.into_iter().collect();
        got.sort();
        if got != want {
            failures.push(format!(
                "[{i}] (HashMap) {incoming:?}:\n    want {want:?}\n    got  {got:?}"
            ));
        }
    }
    // A context holding an invalid span context and baggage: baggage alone goes out.
    let cx = Context::new()
        .with_remote_span_context(SpanContext::empty_context())
        .with_baggage([KeyValue::new("a", "1")]);
    let mut out = HeaderMap::new();
    p.inject_into_headers(&cx, &mut out);
    assert_eq!(
        sorted_pairs(&out),
        vec![("baggage".to_owned(), "a=1".to_owned())]
    );
    report("NO_SPAN", failures);
}

// ---------------------------------------------------------------------------------------------
// Pass-through
// ---------------------------------------------------------------------------------------------

/// (incoming headers, extra pass-through names, max length, forwarded in order, errors)
type PassRow = (
    &'static [(&'static str, &'static [u8])],
    &'static [&'static str],
    Option<usize>,
    &'static [(&'static str, &'static [u8])],
    &'static [&'static str],
);

const UUID: &[u8] = b"3e1c6d4a-5b2f-4c8e-9d7a-1f0b2c3d4e5f";
const PUNCT: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~0aZ";

#[rustfmt::skip]
const PASS: &[PassRow] = &[
    (&[("x-request-id", UUID)],                      &[], None, &[("x-request-id", UUID)], &[]),
    (&[("X-Request-ID", UUID)],                      &[], None, &[("x-request-id", UUID)], &[]),
    (&[("x-ot-span-context", b"0a1b2c3d4e5f6a7b;9e8d7c6b5a4f3e2d;0000000000000000;cs")],
                                                     &[], None, &[("x-ot-span-context", b"0a1b2c3d4e5f6a7b;9e8d7c6b5a4f3e2d;0000000000000000;cs")], &[]),
    (&[("x-request-id", PUNCT)],                     &[], None, &[("x-request-id", PUNCT)], &[]),
    (&[("x-request-id", b"ABC-def")],                &[], None, &[("x-request-id", b"ABC-def")], &[]),
    // one value forwarded: the first line (SPECS.md section 8); the others are not read
    (&[("x-request-id", b"a"), ("x-request-id", b"b")],
                                                     &[], None, &[("x-request-id", b"a")], &["PassThroughRepeated(\"x-request-id\")"]),
    (&[("x-request-id", b"a"), ("x-request-id", b"b"), ("x-request-id", b"c"), ("x-ot-span-context", b"ot"), ("x-ot-span-context", b"ot2")],
                                                     &[], None, &[("x-request-id", b"a"), ("x-ot-span-context", b"ot")],
                                                     &["PassThroughRepeated(\"x-request-id\")", "PassThroughRepeated(\"x-ot-span-context\")"]),
    (&[("x-request-id", b"n\xc3\xb6"), ("x-request-id", b"ok")],
                                                     &[], None, &[], &["PassThrough(\"x-request-id\")", "PassThroughRepeated(\"x-request-id\")"]),
    (&[("x-request-id", UUID), ("x-ot-span-context", b"ot")],
                                                     &[], None, &[("x-request-id", UUID), ("x-ot-span-context", b"ot")], &[]),
    // dropped and reported: non-ASCII, oversize
    (&[("x-request-id", b"caf\xc3\xa9")],            &[], None, &[], &["PassThrough(\"x-request-id\")"]),
    (&[("x-request-id", b"\xff")],                   &[], None, &[], &["PassThrough(\"x-request-id\")"]),
    (&[("x-ot-span-context", b"\x80abc")],           &[], None, &[], &["PassThrough(\"x-ot-span-context\")"]),
    (&[("x-request-id", b"ok"), ("x-request-id", b"n\xc3\xb6")],
                                                     &[], None, &[("x-request-id", b"ok")], &["PassThroughRepeated(\"x-request-id\")"]),
    (&[("x-request-id", b"12345678")],               &[], Some(8), &[("x-request-id", b"12345678")], &[]),
    (&[("x-request-id", b"123456789")],              &[], Some(8), &[], &["PassThrough(\"x-request-id\")"]),
    // extra names: opt-in only
    (&[("x-client-trace-id", b"c-1")],               &[], None, &[], &[]),
    (&[("x-client-trace-id", b"c-1")],               &["x-client-trace-id"], None, &[("x-client-trace-id", b"c-1")], &[]),
    (&[("x-datadog-trace-id", b"123")],              &["X-Datadog-Trace-Id"], None, &[("x-datadog-trace-id", b"123")], &[]),
    (&[("grpc-trace-bin", b"AAARf5vq")],             &["grpc-trace-bin", "x-cloud-trace-context"], None, &[("grpc-trace-bin", b"AAARf5vq")], &[]),
    (&[("x-cloud-trace-context", b"105445aa7843bc8bf206b12000100000/1;o=1")],
                                                     &["x-cloud-trace-context"], None, &[("x-cloud-trace-context", b"105445aa7843bc8bf206b12000100000/1;o=1")], &[]),
    (&[("x-client-trace-id", b"\xe2\x82\xac")],      &["x-client-trace-id"], None, &[], &["PassThrough(\"x-client-trace-id\")"]),
];

fn forwarded(h: &HeaderMap, names: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for n in names {
        for v in h.get_all(*n) {
            out.push((n.to_string(), v.as_bytes().to_vec()));
        }
    }
    out
}

const PASS_NAMES: [&str; 7] = [
    "x-request-id",
    "x-ot-span-context",
    "x-client-trace-id",
    "x-datadog-trace-id",
    "grpc-trace-bin",
    "x-cloud-trace-context",
    "x-b3-parentspanid",
];

#[test]
fn pass_through_vectors() {
    let mut failures = Vec::new();
    for (i, (incoming, extras, max, want, errors)) in PASS.iter().enumerate() {
        let mut b: MeshPropagatorBuilder = MeshPropagator::builder_istio();
        for e in extras.iter() {
            b = b.pass_through_header(*e);
        }
        if let Some(m) = max {
            b = b.max_pass_through_len(*m);
        }
        let p = b.build().unwrap();
        let cx = p.extract_from_headers(&bytes_map(incoming));
        let mut out = HeaderMap::new();
        p.inject_into_headers(&cx, &mut out);
        // Compare per name, in the order received.
        let mut want_sorted: Vec<(String, Vec<u8>)> = Vec::new();
        for n in PASS_NAMES {
            for (wn, wv) in want.iter() {
                if *wn == n {
                    want_sorted.push((n.to_owned(), wv.to_vec()));
                }
            }
        }
        let got = forwarded(&out, &PASS_NAMES);
        let got_errors = errors_of(&cx);
        if got != want_sorted || got_errors != *errors {
            failures.push(format!(
                "[{i}] {} extras {extras:?} max {max:?}:\n    want {:?} {errors:?}\n    got  {:?} {got_errors:?}",
                show_pairs(incoming),
                want_sorted.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))).collect::<Vec<_>>(),
                got.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))).collect::<Vec<_>>(),
            ));
        }
    }
    report("PASS", failures);
}

/// Through the `TextMapPropagator` carriers, where CR, LF and other control bytes can arrive.
/// (value of x-request-id, forwarded?)
#[rustfmt::skip]
const PASS_TEXT_MAP: &[(&str, bool)] = &[
    ("3e1c6d4a-5b2f-4c8e-9d7a-1f0b2c3d4e5f",    true),
    ("a;b=c,d",                                 true),
    ("a\r\nb",                                  false),
    ("a\nb",                                    false),
    ("a\rb",                                    false),
    ("a\r\nx-evil: 1",                          false),
    ("\0",                                      false),
    ("a\u{7f}b",                                false),
    ("a\u{1b}[31m",                             false),
    ("caf\u{e9}",                               false),
];

#[test]
fn pass_through_text_map_vectors() {
    let p = MeshPropagator::istio();
    let mut failures = Vec::new();
    for (i, (value, kept)) in PASS_TEXT_MAP.iter().enumerate() {
        let map = HashMap::from([("x-request-id".to_owned(), value.to_string())]);
        let cx = p.extract(&map);
        let mut out: HashMap<String, String> = HashMap::new();
        p.inject_context(&cx, &mut out);
        let got = (out.get("x-request-id").cloned(), errors_of(&cx));
        let want = if *kept {
            (Some(value.to_string()), vec![])
        } else {
            (None, vec!["PassThrough(\"x-request-id\")".to_owned()])
        };
        if got != want {
            failures.push(format!("[{i}] {value:?}: want {want:?}, got {got:?}"));
        }
    }
    report("PASS_TEXT_MAP", failures);
}

// ---------------------------------------------------------------------------------------------
// fields() lists exactly what inject writes
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Cfg {
    Istio,
    IstioB3(B3Encoding),
    Inject(Formats),
    InjectExtras(Formats, &'static [&'static str]),
    Replace(&'static [&'static str]),
    Env(&'static str),
}

#[rustfmt::skip]
const FIELDS: &[(Cfg, &[&str])] = &[
    (Cfg::Istio, &["baggage", "traceparent", "tracestate", "x-b3-flags", "x-b3-sampled", "x-b3-spanid",
                   "x-b3-traceid", "x-ot-span-context", "x-request-id"]),
    (Cfg::IstioB3(B3Encoding::Single), &["b3", "baggage", "traceparent", "tracestate", "x-ot-span-context", "x-request-id"]),
    (Cfg::IstioB3(B3Encoding::Multi), &["baggage", "traceparent", "tracestate", "x-b3-flags", "x-b3-sampled",
                   "x-b3-spanid", "x-b3-traceid", "x-ot-span-context", "x-request-id"]),
    (Cfg::IstioB3(B3Encoding::Both), &["b3", "baggage", "traceparent", "tracestate", "x-b3-flags", "x-b3-sampled",
                   "x-b3-spanid", "x-b3-traceid", "x-ot-span-context", "x-request-id"]),
    (Cfg::Inject(Formats::NONE), &[]),
    (Cfg::Inject(Formats::TRACE_CONTEXT), &["traceparent", "tracestate"]),
    (Cfg::Inject(Formats::BAGGAGE), &["baggage"]),
    (Cfg::Inject(Formats::NONE.with(Format::B3Single)), &["b3"]),
    (Cfg::Inject(Formats::PASS_THROUGH), &["x-ot-span-context", "x-request-id"]),
    (Cfg::InjectExtras(Formats::PASS_THROUGH, &["x-client-trace-id"]), &["x-client-trace-id", "x-ot-span-context", "x-request-id"]),
    (Cfg::InjectExtras(Formats::TRACE_CONTEXT, &["x-client-trace-id"]), &["traceparent", "tracestate"]),
    (Cfg::Replace(&["x-cloud-trace-context"]), &["x-cloud-trace-context"]),
    (Cfg::Env("b3"), &["b3"]),
    (Cfg::Env("b3multi"), &["x-b3-flags", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]),
    (Cfg::Env("tracecontext,baggage"), &["baggage", "traceparent", "tracestate"]),
    (Cfg::Env(""), &["baggage", "traceparent", "tracestate"]),
    (Cfg::Env("none"), &[]),
    (Cfg::Env("b3,b3multi"), &["b3", "x-b3-flags", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]),
];

fn build(cfg: Cfg) -> MeshPropagator {
    match cfg {
        Cfg::Istio => MeshPropagator::istio(),
        Cfg::IstioB3(e) => MeshPropagator::builder_istio()
            .b3_inject(e)
            .build()
            .unwrap(),
        Cfg::Inject(f) => MeshPropagator::builder().inject(f).build().unwrap(),
        Cfg::InjectExtras(f, extras) => extras
            .iter()
            .fold(MeshPropagator::builder().inject(f), |b, n| {
                b.pass_through_header(*n)
            })
            .build()
            .unwrap(),
        Cfg::Replace(names) => MeshPropagator::builder()
            .inject(Formats::PASS_THROUGH)
            .pass_through_headers(names.iter().copied())
            .build()
            .unwrap(),
        Cfg::Env(v) => v
            .parse::<PropagatorList>()
            .unwrap()
            .into_builder()
            .build()
            .unwrap(),
    }
}

/// Rich incoming requests: between them they make inject write every header it can.
const RICH: [&[(&str, &str)]; 2] = [
    &[
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE"),
        (
            "b3",
            "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1-05e3ac9a4f6e3b90",
        ),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("baggage", "a=1"),
        ("x-request-id", "r-1"),
        ("x-ot-span-context", "ot"),
        ("x-client-trace-id", "c-1"),
        ("x-cloud-trace-context", "g-1"),
    ],
    &[
        ("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-d"),
        ("x-request-id", "r-1"),
    ],
];

#[test]
fn fields_vectors() {
    // Extract with everything, including the extra names, so the context carries them.
    let reader = MeshPropagator::builder_istio()
        .pass_through_header("x-client-trace-id")
        .pass_through_header("x-cloud-trace-context")
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for (i, (cfg, want)) in FIELDS.iter().enumerate() {
        let p = build(*cfg);
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let fields: Vec<String> = p.fields().map(str::to_owned).collect();
        let got: BTreeSet<String> = fields.iter().cloned().collect();
        if got != want || got.len() != fields.len() {
            failures.push(format!(
                "[{i}] {cfg:?} fields():\n    want {want:?}\n    got  {fields:?}"
            ));
        }
        let mut written = BTreeSet::new();
        for rich in RICH {
            let cx = reader.extract_from_headers(&text_map(rich));
            let mut out = HeaderMap::new();
            p.inject_into_headers(&cx, &mut out);
            written.extend(out.keys().map(|k| k.as_str().to_owned()));
            let mut m: HashMap<String, String> = HashMap::new();
            p.inject_context(&cx, &mut m);
            written.extend(m.into_keys());
        }
        if written != want {
            failures.push(format!(
                "[{i}] {cfg:?} written by inject:\n    want {want:?}\n    got  {written:?}"
            ));
        }
    }
    report("FIELDS", failures);
}

// ---------------------------------------------------------------------------------------------
// OTEL_PROPAGATORS
// ---------------------------------------------------------------------------------------------

#[rustfmt::skip]
const ENV_STRICT: &[(&str, Result<&[N], &str>)] = &[
    ("tracecontext",                    Ok(&[N::TraceContext])),
    ("tracecontext,baggage",            Ok(&[N::TraceContext, N::Baggage])),
    ("baggage,tracecontext",            Ok(&[N::Baggage, N::TraceContext])),
    ("b3",                              Ok(&[N::B3])),
    ("b3multi",                         Ok(&[N::B3Multi])),
    ("tracecontext,baggage,b3,b3multi", Ok(&[N::TraceContext, N::Baggage, N::B3, N::B3Multi])),
    // case-insensitive
    ("TRACECONTEXT,Baggage",            Ok(&[N::TraceContext, N::Baggage])),
    ("B3MULTI",                         Ok(&[N::B3Multi])),
    ("NONE",                            Ok(&[N::None])),
    // whitespace around entries
    (" tracecontext , baggage ",        Ok(&[N::TraceContext, N::Baggage])),
    ("\ttracecontext",                  Ok(&[N::TraceContext])),
    // duplicates removed, first position kept
    ("tracecontext,tracecontext",       Ok(&[N::TraceContext])),
    ("b3,baggage,B3",                   Ok(&[N::B3, N::Baggage])),
    ("TraceContext,b3multi,tracecontext", Ok(&[N::TraceContext, N::B3Multi])),
    ("none",                            Ok(&[N::None])),
    ("none,none",                       Ok(&[N::None])),
    // empty = default
    ("",                                Ok(&[N::TraceContext, N::Baggage])),
    ("   ",                             Ok(&[N::TraceContext, N::Baggage])),
    // SPECS 7: jaeger, ottrace, xray (case-insensitive like the others)
    ("jaeger",                          Ok(&[N::Jaeger])),
    ("xray",                            Ok(&[N::XRay])),
    ("ottrace",                         Ok(&[N::OtTrace])),
    ("Jaeger,XRAY,OtTrace,jaeger",      Ok(&[N::Jaeger, N::XRay, N::OtTrace])),
    ("tracecontext,xray",               Ok(&[N::TraceContext, N::XRay])),
    // unknown
    ("foo",                             Err("Unknown(\"foo\")")),
    ("tracecontext,foo",                Err("Unknown(\"foo\")")),
    ("b3 multi",                        Err("Unknown(\"b3 multi\")")),
    ("w3c",                             Err("Unknown(\"w3c\")")),
    ("tracecontext;baggage",            Err("Unknown(\"tracecontext;baggage\")")),
];

#[test]
fn env_strict_vectors() {
    let mut failures = Vec::new();
    for (i, (input, want)) in ENV_STRICT.iter().enumerate() {
        let got = input
            .parse::<PropagatorList>()
            .map(|l| l.names().to_vec())
            .map_err(|e| format!("{e:?}"));
        let want = want.map(<[N]>::to_vec).map_err(str::to_owned);
        if got != want {
            failures.push(format!("[{i}] {input:?}: want {want:?}, got {got:?}"));
        }
    }
    report("ENV_STRICT", failures);
}

/// (value, names kept, number of warnings)
#[rustfmt::skip]
const ENV_LENIENT: &[(&str, &[N], usize)] = &[
    ("",                                &[N::TraceContext, N::Baggage], 0),
    ("tracecontext,baggage",            &[N::TraceContext, N::Baggage], 0),
    ("b3,jaeger,foo",                   &[N::B3, N::Jaeger], 1),
    ("foo,baggage",                     &[N::Baggage], 1),
    ("xray",                            &[N::XRay], 0),
    ("jaeger,xray,ottrace",             &[N::Jaeger, N::XRay, N::OtTrace], 0),
    ("tracecontext,TraceContext",       &[N::TraceContext], 0),
    ("OTTRACE,b3multi,Unknown",         &[N::OtTrace, N::B3Multi], 1),
    ("b3multi, ,b3",                    &[N::B3Multi, N::B3], 1),
];

#[test]
fn env_lenient_vectors() {
    let mut failures = Vec::new();
    for (i, (input, names, warnings)) in ENV_LENIENT.iter().enumerate() {
        let (list, w) = PropagatorList::parse_lenient(input);
        if (list.names(), w.len()) != (*names, *warnings) {
            failures.push(format!(
                "[{i}] {input:?}: want {names:?} with {warnings} warning(s), got {:?} with {w:?}",
                list.names()
            ));
        }
    }
    report("ENV_LENIENT", failures);
}

/// (value, extract formats, inject formats)
#[rustfmt::skip]
const ENV_FORMATS: &[(&str, Formats, Formats)] = &[
    ("",                     Formats::TRACE_CONTEXT.with(Format::Baggage), Formats::TRACE_CONTEXT.with(Format::Baggage)),
    ("tracecontext",         Formats::TRACE_CONTEXT,                         Formats::TRACE_CONTEXT),
    ("baggage",              Formats::BAGGAGE,                               Formats::BAGGAGE),
    ("b3",                   Formats::B3,                                    Formats::NONE.with(Format::B3Single)),
    ("b3multi",              Formats::B3,                                    Formats::NONE.with(Format::B3Multi)),
    ("b3,b3multi",           Formats::B3,                                    Formats::B3),
    ("none",                 Formats::NONE,                                  Formats::NONE),
    ("tracecontext,b3",      Formats::TRACE_CONTEXT.with(Format::B3Single).with(Format::B3Multi),
                                                                             Formats::TRACE_CONTEXT.with(Format::B3Single)),
];

#[test]
fn env_formats_vectors() {
    let mut failures = Vec::new();
    for (i, (input, ex, inj)) in ENV_FORMATS.iter().enumerate() {
        let p = input
            .parse::<PropagatorList>()
            .unwrap()
            .into_builder()
            .build()
            .unwrap();
        let got = (p.extract_formats(), p.inject_formats());
        if got != (*ex, *inj) {
            failures.push(format!(
                "[{i}] {input:?}: want {:?}, got {got:?}",
                (ex, inj)
            ));
        }
    }
    report("ENV_FORMATS", failures);
}

/// The only test in this binary that touches the process environment.
#[test]
fn env_variable_vectors() {
    #[rustfmt::skip]
    let table: &[(Option<&str>, Formats, Result<(), &str>)] = &[
        (None,                   Formats::TRACE_CONTEXT.with(Format::Baggage), Ok(())),
        (Some(""),               Formats::TRACE_CONTEXT.with(Format::Baggage), Ok(())),
        (Some("b3multi"),        Formats::NONE.with(Format::B3Multi),          Ok(())),
        (Some("B3,baggage"),     Formats::BAGGAGE.with(Format::B3Single),      Ok(())),
        (Some("xray,b3"),        Formats::NONE.with(Format::XRay).with(Format::B3Single), Ok(())),
        (Some("jaeger,ottrace"), Formats::NONE.with(Format::Jaeger).with(Format::OtTrace), Ok(())),
        (Some("bogus"),          Formats::NONE,                                Err("Unknown(\"bogus\")")),
        (Some("none"),           Formats::NONE,                                Ok(())),
    ];
    let mut failures = Vec::new();
    for (i, (value, lenient_inject, strict)) in table.iter().enumerate() {
        match value {
            Some(v) => std::env::set_var("OTEL_PROPAGATORS", v),
            None => std::env::remove_var("OTEL_PROPAGATORS"),
        }
        let got_lenient = MeshPropagator::from_env().inject_formats();
        let got_strict = MeshPropagator::try_from_env()
            .map(|_| ())
            .map_err(|e| format!("{e:?}"));
        if got_lenient != *lenient_inject || got_strict != strict.map_err(str::to_owned) {
            failures.push(format!(
                "[{i}] {value:?}: want {lenient_inject:?} / {strict:?}, got {got_lenient:?} / {got_strict:?}"
            ));
        }
    }
    std::env::remove_var("OTEL_PROPAGATORS");
    report("ENV", failures);
}
