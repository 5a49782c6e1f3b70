//! Table tests for B3 single and multi headers (SPECS.md section 3).

mod support;

use http::HeaderMap;
use meshtrace::propagation::b3::{
    parse_multi, parse_single, B3Context, B3Error as E, MultiHeaders, B3,
};
use meshtrace::{B3Encoding, Format, MeshContextExt, MeshPropagator, SamplingState as S};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use std::collections::HashMap;
use support::headers;

use support::headers::text_map;
use support::tables::report;

const T128: u128 = 0x80f198ee56343ba864fe8b2a57d3eff7;
const T64: u128 = 0x80f198ee56343ba8;
const SPAN: u64 = 0xe457b5a2e4d86bd1;
const PARENT: u64 = 0x05e3ac9a4f6e3b90;

const fn cx(trace_id: u128, trace_id_64bit: bool, parent_span_id: Option<u64>, sampling: S) -> B3 {
    B3::Context(B3Context {
        trace_id,
        trace_id_64bit,
        span_id: SPAN,
        parent_span_id,
        sampling,
    })
}

// ---------------------------------------------------------------------------------------------
// Single header
// ---------------------------------------------------------------------------------------------

#[rustfmt::skip]
const SINGLE: &[(&str, Result<B3, E>)] = &[
    // full forms
    ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90", Ok(cx(T128, false, Some(PARENT), S::Accept))),
    ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0-05e3ac9a4f6e3b90", Ok(cx(T128, false, Some(PARENT), S::Deny))),
    ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90", Ok(cx(T128, false, Some(PARENT), S::Debug))),
    ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",                  Ok(cx(T128, false, None, S::Accept))),
    ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0",                  Ok(cx(T128, false, None, S::Deny))),
    ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d",                  Ok(cx(T128, false, None, S::Debug))),
    // no sampling state: deferred
    ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",                    Ok(cx(T128, false, None, S::Deferred))),
    // 64-bit trace id
    ("80f198ee56343ba8-e457b5a2e4d86bd1",                                    Ok(cx(T64, true, None, S::Deferred))),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-1",                                  Ok(cx(T64, true, None, S::Accept))),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90",                 Ok(cx(T64, true, Some(PARENT), S::Debug))),
    // a 32-hex id with a zero high half stays a 128-bit id on the wire
    ("000000000000000080f198ee56343ba8-e457b5a2e4d86bd1-1",                  Ok(cx(T64, false, None, S::Accept))),
    // all-zero parent = no parent
    ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-0000000000000000", Ok(cx(T128, false, None, S::Accept))),
    // OWS around the value
    (" 80f198ee56343ba8-e457b5a2e4d86bd1-1\t",                               Ok(cx(T64, true, None, S::Accept))),
    // sampling state alone
    ("0",                                                                    Ok(B3::SamplingOnly(S::Deny))),
    ("1",                                                                    Ok(B3::SamplingOnly(S::Accept))),
    ("d",                                                                    Ok(B3::SamplingOnly(S::Debug))),
    (" 1 ",                                                                  Ok(B3::SamplingOnly(S::Accept))),
    // bad sampling-only values
    ("2",                                                                    Err(E::InvalidSampling)),
    ("D",                                                                    Err(E::InvalidSampling)),
    ("true",                                                                 Err(E::Fields)),
    ("",                                                                     Err(E::Fields)),
    ("  ",                                                                   Err(E::Fields)),
    // bad sampling state
    ("80f198ee56343ba8-e457b5a2e4d86bd1-D",                                  Err(E::InvalidSampling)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-true",                               Err(E::InvalidSampling)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-2",                                  Err(E::InvalidSampling)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-01",                                 Err(E::InvalidSampling)),
    // uppercase
    ("80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1-1",                  Err(E::InvalidTraceId)),
    ("80f198ee56343ba8-E457B5A2E4D86BD1-1",                                  Err(E::InvalidSpanId)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-1-05E3AC9A4F6E3B90",                 Err(E::InvalidParentSpanId)),
    // wrong length
    ("80f198ee56343ba-e457b5a2e4d86bd1-1",                                   Err(E::InvalidTraceId)),
    ("80f198ee56343ba80-e457b5a2e4d86bd1-1",                                 Err(E::InvalidTraceId)),
    ("80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1-1",                   Err(E::InvalidTraceId)),
    ("80f198ee56343ba864fe8b2a57d3eff70-e457b5a2e4d86bd1-1",                 Err(E::InvalidTraceId)),
    ("80f198ee56343ba864fe-e457b5a2e4d86bd1-1",                              Err(E::InvalidTraceId)),
    ("80f198ee56343ba8-e457b5a2e4d86bd-1",                                   Err(E::InvalidSpanId)),
    ("80f198ee56343ba8-e457b5a2e4d86bd10-1",                                 Err(E::InvalidSpanId)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9",                  Err(E::InvalidParentSpanId)),
    // non-hex
    ("80f198ee56343bag-e457b5a2e4d86bd1-1",                                  Err(E::InvalidTraceId)),
    ("80f198ee56343ba8-e457b5a2e4d86bz1-1",                                  Err(E::InvalidSpanId)),
    // all-zero ids
    ("0000000000000000-e457b5a2e4d86bd1-1",                                  Err(E::ZeroTraceId)),
    ("00000000000000000000000000000000-e457b5a2e4d86bd1-1",                  Err(E::ZeroTraceId)),
    ("80f198ee56343ba8-0000000000000000-1",                                  Err(E::ZeroSpanId)),
    // empty fields
    ("-e457b5a2e4d86bd1-1",                                                  Err(E::InvalidTraceId)),
    ("80f198ee56343ba8--1",                                                  Err(E::InvalidSpanId)),
    ("80f198ee56343ba8-",                                                    Err(E::InvalidSpanId)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-",                                   Err(E::InvalidSampling)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1--05e3ac9a4f6e3b90",                  Err(E::InvalidSampling)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-1-",                                 Err(E::InvalidParentSpanId)),
    // too few / too many fields
    ("80f198ee56343ba864fe8b2a57d3eff7",                                     Err(E::Fields)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-x",               Err(E::Fields)),
    ("80f198ee56343ba8-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-",                Err(E::Fields)),
];

#[test]
fn single_vectors() {
    let mut failures = Vec::new();
    for (i, (input, want)) in SINGLE.iter().enumerate() {
        let got = parse_single(input.as_bytes());
        if got != *want {
            failures.push(format!("[{i}] {input:?}: want {want:?}, got {got:?}"));
        }
    }
    report("SINGLE", failures);
}

// ---------------------------------------------------------------------------------------------
// Multi headers
// ---------------------------------------------------------------------------------------------

/// (traceid, spanid, parentspanid, sampled, flags)
type Multi = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

const TI: Option<&str> = Some("80f198ee56343ba864fe8b2a57d3eff7");
const TI64: Option<&str> = Some("80f198ee56343ba8");
const SI: Option<&str> = Some("e457b5a2e4d86bd1");
const PI: Option<&str> = Some("05e3ac9a4f6e3b90");

#[rustfmt::skip]
const MULTI: &[(Multi, Result<Option<B3>, E>)] = &[
    ((None, None, None, None, None),                       Ok(None)),
    ((TI, SI, None, None, None),                           Ok(Some(cx(T128, false, None, S::Deferred)))),
    ((TI64, SI, None, None, None),                         Ok(Some(cx(T64, true, None, S::Deferred)))),
    ((TI, SI, PI, None, None),                             Ok(Some(cx(T128, false, Some(PARENT), S::Deferred)))),
    ((TI, SI, Some("0000000000000000"), None, None),       Ok(Some(cx(T128, false, None, S::Deferred)))),
    ((TI, SI, None, Some("1"), None),                      Ok(Some(cx(T128, false, None, S::Accept)))),
    ((TI, SI, None, Some("0"), None),                      Ok(Some(cx(T128, false, None, S::Deny)))),
    // legacy true/false, any case
    ((TI, SI, None, Some("true"), None),                   Ok(Some(cx(T128, false, None, S::Accept)))),
    ((TI, SI, None, Some("TRUE"), None),                   Ok(Some(cx(T128, false, None, S::Accept)))),
    ((TI, SI, None, Some("True"), None),                   Ok(Some(cx(T128, false, None, S::Accept)))),
    ((TI, SI, None, Some("false"), None),                  Ok(Some(cx(T128, false, None, S::Deny)))),
    ((TI, SI, None, Some("FALSE"), None),                  Ok(Some(cx(T128, false, None, S::Deny)))),
    ((TI, SI, None, Some("fAlSe"), None),                  Ok(Some(cx(T128, false, None, S::Deny)))),
    // debug
    ((TI, SI, None, None, Some("1")),                      Ok(Some(cx(T128, false, None, S::Debug)))),
    ((TI, SI, None, Some("1"), Some("1")),                 Ok(Some(cx(T128, false, None, S::Debug)))),
    ((TI, SI, None, Some("0"), Some("1")),                 Ok(Some(cx(T128, false, None, S::Debug)))),
    // any other flags value is ignored
    ((TI, SI, None, Some("1"), Some("0")),                 Ok(Some(cx(T128, false, None, S::Accept)))),
    ((TI, SI, None, None, Some("2")),                      Ok(Some(cx(T128, false, None, S::Deferred)))),
    ((TI, SI, None, Some("0"), Some("true")),              Ok(Some(cx(T128, false, None, S::Deny)))),
    // any other sampled value, the empty one included, makes the set invalid (brave,
    // zipkin-go, go-contrib), also with debug and without ids
    ((TI, SI, None, Some("yes"), None),                    Err(E::InvalidSampling)),
    ((TI, SI, None, Some("hello"), None),                  Err(E::InvalidSampling)),
    ((TI, SI, None, Some("10"), None),                     Err(E::InvalidSampling)),
    ((TI, SI, None, Some("d"), None),                      Err(E::InvalidSampling)),
    ((TI, SI, None, Some("D"), None),                      Err(E::InvalidSampling)),
    ((TI, SI, None, Some("2"), None),                      Err(E::InvalidSampling)),
    ((TI, SI, None, Some("truE1"), None),                  Err(E::InvalidSampling)),
    ((TI, SI, None, Some(""), None),                       Err(E::InvalidSampling)),
    ((TI, SI, None, Some("  "), None),                     Err(E::InvalidSampling)),
    ((TI64, SI, PI, Some("yes"), Some("1")),               Err(E::InvalidSampling)),
    ((None, None, None, Some("hello"), None),              Err(E::InvalidSampling)),
    ((None, None, None, Some(""), Some("1")),              Err(E::InvalidSampling)),
    ((TI, None, None, Some("d"), None),                    Err(E::InvalidSampling)),
    // sampling decision alone, no ids
    // OWS around each value
    ((Some(" 80f198ee56343ba8\t"), Some(" e457b5a2e4d86bd1 "), Some(" 05e3ac9a4f6e3b90 "), Some(" True "), None),
                                                           Ok(Some(cx(T64, true, Some(PARENT), S::Accept)))),
    ((None, None, None, Some("1"), None),                  Ok(Some(B3::SamplingOnly(S::Accept)))),
    ((None, None, None, Some("0"), None),                  Ok(Some(B3::SamplingOnly(S::Deny)))),
    ((None, None, None, Some("True"), None),               Ok(Some(B3::SamplingOnly(S::Accept)))),
    ((None, None, None, Some("false"), None),              Ok(Some(B3::SamplingOnly(S::Deny)))),
    ((None, None, None, None, Some("1")),                  Ok(Some(B3::SamplingOnly(S::Debug)))),
    // ids come together or not at all
    ((TI, None, None, None, None),                         Err(E::IdsNotPaired)),
    ((None, SI, None, None, None),                         Err(E::IdsNotPaired)),
    ((TI, None, None, Some("1"), None),                    Err(E::IdsNotPaired)),
    ((None, SI, PI, Some("1"), None),                      Err(E::IdsNotPaired)),
    // id syntax
    ((Some("80F198EE56343BA8"), SI, None, None, None),     Err(E::InvalidTraceId)),
    ((Some(""), SI, None, None, None),                     Err(E::InvalidTraceId)),
    ((Some("80f198ee56343ba80"), SI, None, None, None),    Err(E::InvalidTraceId)),
    ((Some("0000000000000000"), SI, None, None, None),     Err(E::ZeroTraceId)),
    ((TI, Some("E457B5A2E4D86BD1"), None, None, None),     Err(E::InvalidSpanId)),
    ((TI, Some(""), None, None, None),                     Err(E::InvalidSpanId)),
    ((TI, Some("0000000000000000"), None, None, None),     Err(E::ZeroSpanId)),
    ((TI, SI, Some("05e3ac9a4f6e3b9"), None, None),        Err(E::InvalidParentSpanId)),
    ((TI, SI, Some(""), Some("1"), None),                  Err(E::InvalidParentSpanId)),
];

#[test]
fn multi_vectors() {
    let mut failures = Vec::new();
    for (i, ((t, s, p, sampled, flags), want)) in MULTI.iter().enumerate() {
        let h = MultiHeaders {
            trace_id: t.map(str::as_bytes),
            span_id: s.map(str::as_bytes),
            parent_span_id: p.map(str::as_bytes),
            sampled: sampled.map(str::as_bytes),
            flags: flags.map(str::as_bytes),
        };
        let got = parse_multi(&h);
        if got != *want {
            failures.push(format!(
                "[{i}] {:?}: want {want:?}, got {got:?}",
                (t, s, p, sampled, flags)
            ));
        }
    }
    report("MULTI", failures);
}

// ---------------------------------------------------------------------------------------------
// Extraction through MeshPropagator: single vs multi
// ---------------------------------------------------------------------------------------------

/// What extraction yields: remote (format, trace, span, sampled flag), mesh sampling state,
/// 64-bit flag, errors.
type Seen = (
    Option<(Format, String, String, bool)>,
    Option<S>,
    bool,
    Vec<String>,
);

type ExtractRow = (
    &'static [(&'static str, &'static str)],
    Option<(Format, &'static str, &'static str, bool)>,
    Option<S>,
    bool,
    &'static [&'static str],
);

const T128H: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const T64H: &str = "000000000000000080f198ee56343ba8";
const OTHER_T: &str = "0af7651916cd43dd8448eb211c80319c";
const SPANH: &str = "e457b5a2e4d86bd1";

#[rustfmt::skip]
const EXTRACT: &[ExtractRow] = &[
    (&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
        Some((Format::B3Single, T128H, SPANH, true)), Some(S::Accept), false, &[]),
    (&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-0")],
        Some((Format::B3Single, T64H, SPANH, false)), Some(S::Deny), true, &[]),
    (&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-d")],
        Some((Format::B3Single, T64H, SPANH, true)), Some(S::Debug), true, &[]),
    (&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1")],
        Some((Format::B3Single, T64H, SPANH, false)), Some(S::Deferred), true, &[]),
    (&[("B3", "80f198ee56343ba8-e457b5a2e4d86bd1-1-0000000000000000")],
        Some((Format::B3Single, T64H, SPANH, true)), Some(S::Accept), true, &[]),
    // sampling only: no remote parent, but the decision is kept
    (&[("b3", "0")],                        None, Some(S::Deny), false, &[]),
    (&[("b3", "1")],                        None, Some(S::Accept), false, &[]),
    (&[("b3", "d")],                        None, Some(S::Debug), false, &[]),
    (&[("x-b3-sampled", "1")],              None, Some(S::Accept), false, &[]),
    (&[("x-b3-sampled", "FALSE")],          None, Some(S::Deny), false, &[]),
    (&[("x-b3-flags", "1")],                None, Some(S::Debug), false, &[]),
    // multi
    (&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-sampled", "1")],
        Some((Format::B3Multi, T128H, SPANH, true)), Some(S::Accept), false, &[]),
    (&[("X-B3-TraceId", "80f198ee56343ba8"), ("X-B3-SpanId", SPANH), ("X-B3-Sampled", "true")],
        Some((Format::B3Multi, T64H, SPANH, true)), Some(S::Accept), true, &[]),
    (&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-sampled", "False")],
        Some((Format::B3Multi, T128H, SPANH, false)), Some(S::Deny), false, &[]),
    (&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-flags", "1")],
        Some((Format::B3Multi, T128H, SPANH, true)), Some(S::Debug), false, &[]),
    (&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH)],
        Some((Format::B3Multi, T128H, SPANH, false)), Some(S::Deferred), false, &[]),
    (&[("x-b3-traceid", T128H), ("x-b3-sampled", "1")],
        None, None, false, &["B3Multi(IdsNotPaired)"]),
    (&[("x-b3-spanid", SPANH)],
        None, None, false, &["B3Multi(IdsNotPaired)"]),
    // an invalid x-b3-sampled drops the multi context: no remote parent, no decision
    (&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-sampled", "hello")],
        None, None, false, &["B3Multi(InvalidSampling)"]),
    (&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-sampled", "")],
        None, None, false, &["B3Multi(InvalidSampling)"]),
    (&[("x-b3-sampled", "10")],
        None, None, false, &["B3Multi(InvalidSampling)"]),
    // ... and a valid single header still wins
    (&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
       ("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-sampled", "d")],
        Some((Format::B3Single, T128H, SPANH, true)), Some(S::Accept), false, &["B3Multi(InvalidSampling)"]),
    // single wins over multi
    (&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
       ("x-b3-traceid", OTHER_T), ("x-b3-spanid", "b7ad6b7169203331"), ("x-b3-sampled", "0")],
        Some((Format::B3Single, T128H, SPANH, true)), Some(S::Accept), false, &[]),
    (&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
       ("x-b3-traceid", T128H), ("x-b3-spanid", "b7ad6b7169203331")],
        Some((Format::B3Single, T128H, SPANH, true)), Some(S::Accept), false, &[]),
    // a single sampling decision fills in a deferred multi context
    (&[("b3", "1"), ("x-b3-traceid", T128H), ("x-b3-spanid", SPANH)],
        Some((Format::B3Multi, T128H, SPANH, true)), Some(S::Accept), false, &[]),
    (&[("b3", "d"), ("x-b3-traceid", T128H), ("x-b3-spanid", SPANH)],
        Some((Format::B3Multi, T128H, SPANH, true)), Some(S::Debug), false, &[]),
    // invalid single: fall back to multi
    (&[("b3", "80F198EE56343BA8-e457b5a2e4d86bd1-1"),
       ("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-sampled", "1")],
        Some((Format::B3Multi, T128H, SPANH, true)), Some(S::Accept), false, &["B3Single(InvalidTraceId)"]),
    (&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-x"),
       ("x-b3-traceid", "80f198ee56343ba8"), ("x-b3-spanid", SPANH), ("x-b3-flags", "1")],
        Some((Format::B3Multi, T64H, SPANH, true)), Some(S::Debug), true, &["B3Single(Fields)"]),
    (&[("b3", ""), ("x-b3-traceid", T128H), ("x-b3-spanid", SPANH)],
        Some((Format::B3Multi, T128H, SPANH, false)), Some(S::Deferred), false, &["B3Single(Fields)"]),
    (&[("b3", "0000000000000000-e457b5a2e4d86bd1")],
        None, None, false, &["B3Single(ZeroTraceId)"]),
];

fn seen(cx: &Context) -> Seen {
    let sc = cx.span().span_context().clone();
    let mesh = cx.mesh();
    let remote = mesh.and_then(|m| m.remote()).map(|r| {
        (
            r.format,
            format!("{:032x}", sc.trace_id()),
            format!("{:016x}", sc.span_id()),
            sc.is_sampled(),
        )
    });
    let narrow = mesh
        .and_then(|m| m.remote())
        .is_some_and(|r| r.b3_trace_id_64bit);
    let errors = mesh
        .map(|m| m.errors().iter().map(|e| format!("{e:?}")).collect())
        .unwrap_or_default();
    (remote, mesh.and_then(|m| m.sampling()), narrow, errors)
}

#[test]
fn extract_vectors() {
    let p = MeshPropagator::istio();
    let mut failures = Vec::new();
    for (i, (headers, remote, sampling, narrow, errors)) in EXTRACT.iter().enumerate() {
        let want: Seen = (
            remote.map(|(f, t, s, smp)| (f, t.to_owned(), s.to_owned(), smp)),
            *sampling,
            *narrow,
            errors.iter().map(|e| e.to_string()).collect(),
        );
        let cx = p.extract_from_headers(&text_map(headers));
        let got = seen(&cx);
        if got != want {
            failures.push(format!(
                "[{i}] (HeaderMap) {headers:?}:\n    want {want:?}\n    got  {got:?}"
            ));
        }
        if remote.is_some() != cx.span().span_context().is_valid() {
            failures.push(format!(
                "[{i}] {headers:?}: span context validity differs from mesh remote"
            ));
        }
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
            .collect();
        let got = seen(&p.extract(&map));
        if got != want {
            failures.push(format!(
                "[{i}] (HashMap) {headers:?}:\n    want {want:?}\n    got  {got:?}"
            ));
        }
    }
    report("EXTRACT", failures);
}

// ---------------------------------------------------------------------------------------------
// Inject after extract
// ---------------------------------------------------------------------------------------------

/// Every header B3 or W3C could write, in the order of `Out`: the B3 headers, then
/// `traceparent`. A `None` in an expectation means "absent".
fn out_names() -> impl Iterator<Item = &'static str> {
    headers::B3_HEADERS.into_iter().chain(["traceparent"])
}

type Out = [Option<&'static str>; 7];

/// (incoming headers, outgoing [b3, x-b3-traceid, x-b3-spanid, x-b3-parentspanid,
/// x-b3-sampled, x-b3-flags, traceparent]) with B3 injected as both single and multi.
#[rustfmt::skip]
const REINJECT: &[(&[(&str, &str)], Out)] = &[
    // accept, 128-bit
    (&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
        [Some("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"), Some(T128H), Some(SPANH), None,
         Some("1"), None, Some("00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01")]),
    // deny
    (&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0")],
        [Some("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0"), Some(T128H), Some(SPANH), None,
         Some("0"), None, Some("00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-00")]),
    // 64-bit id keeps 16 hex in B3, W3C gets 32
    (&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-1")],
        [Some("80f198ee56343ba8-e457b5a2e4d86bd1-1"), Some("80f198ee56343ba8"), Some(SPANH), None,
         Some("1"), None, Some("00-000000000000000080f198ee56343ba8-e457b5a2e4d86bd1-01")]),
    (&[("x-b3-traceid", "80f198ee56343ba8"), ("x-b3-spanid", SPANH), ("x-b3-sampled", "1")],
        [Some("80f198ee56343ba8-e457b5a2e4d86bd1-1"), Some("80f198ee56343ba8"), Some(SPANH), None,
         Some("1"), None, Some("00-000000000000000080f198ee56343ba8-e457b5a2e4d86bd1-01")]),
    // traceparent and a 64-bit B3 agree: B3 keeps 16 hex, W3C 32
    (&[("traceparent", "00-000000000000000080f198ee56343ba8-e457b5a2e4d86bd1-01"), ("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-1")],
        [Some("80f198ee56343ba8-e457b5a2e4d86bd1-1"), Some("80f198ee56343ba8"), Some(SPANH), None,
         Some("1"), None, Some("00-000000000000000080f198ee56343ba8-e457b5a2e4d86bd1-01")]),
    // a 32-hex id stays 32 hex even with a zero high half
    (&[("x-b3-traceid", "000000000000000080f198ee56343ba8"), ("x-b3-spanid", SPANH), ("x-b3-sampled", "1")],
        [Some("000000000000000080f198ee56343ba8-e457b5a2e4d86bd1-1"), Some("000000000000000080f198ee56343ba8"),
         Some(SPANH), None, Some("1"), None, Some("00-000000000000000080f198ee56343ba8-e457b5a2e4d86bd1-01")]),
    // debug re-propagated as debug: x-b3-flags: 1, no x-b3-sampled, single `-d`, sampled in W3C
    (&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-d")],
        [Some("80f198ee56343ba8-e457b5a2e4d86bd1-d"), Some("80f198ee56343ba8"), Some(SPANH), None,
         None, Some("1"), Some("00-000000000000000080f198ee56343ba8-e457b5a2e4d86bd1-01")]),
    (&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-flags", "1"), ("x-b3-sampled", "0")],
        [Some("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"), Some(T128H), Some(SPANH), None,
         None, Some("1"), Some("00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01")]),
    // deferred: no sampling state on the way out
    (&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")],
        [Some("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1"), Some(T128H), Some(SPANH), None,
         None, None, Some("00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-00")]),
    // parent span id read but never injected
    (&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")],
        [Some("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"), Some(T128H), Some(SPANH), None,
         Some("1"), None, Some("00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01")]),
    (&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-parentspanid", "05e3ac9a4f6e3b90"), ("x-b3-sampled", "1")],
        [Some("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"), Some(T128H), Some(SPANH), None,
         Some("1"), None, Some("00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01")]),
    // legacy true goes out as 1
    (&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-sampled", "TRUE")],
        [Some("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"), Some(T128H), Some(SPANH), None,
         Some("1"), None, Some("00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01")]),
    // sampling decision without ids: no trace header and no sampling decision goes out
    (&[("b3", "0")],                [None, None, None, None, None, None, None]),
    (&[("b3", "d")],                [None, None, None, None, None, None, None]),
    (&[("x-b3-sampled", "0")],      [None, None, None, None, None, None, None]),
    (&[("x-b3-flags", "1")],        [None, None, None, None, None, None, None]),
    // invalid: nothing goes out
    (&[("b3", "80f198ee56343ba8")], [None, None, None, None, None, None, None]),
    (&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-sampled", "whatever")],
                                    [None, None, None, None, None, None, None]),
];

fn outgoing(h: &HeaderMap) -> Vec<Option<String>> {
    out_names()
        .map(|n| h.get(n).map(|v| v.to_str().unwrap().to_owned()))
        .collect()
}

fn outgoing_map(m: &HashMap<String, String>) -> Vec<Option<String>> {
    out_names().map(|n| m.get(n).cloned()).collect()
}

#[test]
fn reinject_vectors() {
    let p = MeshPropagator::builder_istio()
        .b3_inject(B3Encoding::Both)
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for (i, (incoming, want)) in REINJECT.iter().enumerate() {
        let want: Vec<Option<String>> = want.iter().map(|o| o.map(str::to_owned)).collect();
        let cx = p.extract_from_headers(&text_map(incoming));
        let mut h = HeaderMap::new();
        p.inject_into_headers(&cx, &mut h);
        let got = outgoing(&h);
        if got != want {
            failures.push(format!(
                "[{i}] (HeaderMap) {incoming:?}:\n    want {want:?}\n    got  {got:?}"
            ));
        }
        let mut m: HashMap<String, String> = HashMap::new();
        p.inject_context(&cx, &mut m);
        let got = outgoing_map(&m);
        if got != want {
            failures.push(format!(
                "[{i}] (HashMap) {incoming:?}:\n    want {want:?}\n    got  {got:?}"
            ));
        }
    }
    report("REINJECT", failures);
}

// ---------------------------------------------------------------------------------------------
// Inject from span contexts made in this process
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Parent {
    /// No extracted context: a trace this process started.
    None,
    /// A child span of what these headers carried (same trace id, new span id).
    ChildOf(&'static [(&'static str, &'static str)]),
}

const CHILD: u64 = 0x1111222233334444;

/// Expected [b3, x-b3-traceid, x-b3-sampled, x-b3-flags].
type LocalOut = [Option<&'static str>; 4];

/// (parent, trace id of the new span, sampled, encoding, expected headers)
#[rustfmt::skip]
const LOCAL: &[(Parent, u128, bool, B3Encoding, LocalOut)] = &[
    (Parent::None, T128, true,  B3Encoding::Single,
        [Some("80f198ee56343ba864fe8b2a57d3eff7-1111222233334444-1"), None, None, None]),
    (Parent::None, T128, false, B3Encoding::Single,
        [Some("80f198ee56343ba864fe8b2a57d3eff7-1111222233334444-0"), None, None, None]),
    // no 64-bit input, so a zero high half still goes out as 32 hex
    (Parent::None, T64,  true,  B3Encoding::Multi,
        [None, Some("000000000000000080f198ee56343ba8"), Some("1"), None]),
    (Parent::None, T128, false, B3Encoding::Multi,
        [None, Some(T128H), Some("0"), None]),
    // child of a debug trace stays debug
    (Parent::ChildOf(&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-d")]), T64, true, B3Encoding::Both,
        [Some("80f198ee56343ba8-1111222233334444-d"), Some("80f198ee56343ba8"), None, Some("1")]),
    (Parent::ChildOf(&[("x-b3-traceid", T128H), ("x-b3-spanid", SPANH), ("x-b3-flags", "1")]), T128, true, B3Encoding::Multi,
        [None, Some(T128H), None, Some("1")]),
    // child of a 64-bit trace keeps 16 hex
    (Parent::ChildOf(&[("x-b3-traceid", "80f198ee56343ba8"), ("x-b3-spanid", SPANH), ("x-b3-sampled", "1")]), T64, true, B3Encoding::Both,
        [Some("80f198ee56343ba8-1111222233334444-1"), Some("80f198ee56343ba8"), Some("1"), None]),
    // deferred parent, the local sampler decided
    (Parent::ChildOf(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")]), T128, true, B3Encoding::Both,
        [Some("80f198ee56343ba864fe8b2a57d3eff7-1111222233334444-1"), Some(T128H), Some("1"), None]),
    (Parent::ChildOf(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")]), T128, false, B3Encoding::Both,
        [Some("80f198ee56343ba864fe8b2a57d3eff7-1111222233334444-0"), Some(T128H), Some("0"), None]),
    // a span of another trace does not inherit the 64-bit form or debug
    (Parent::ChildOf(&[("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-d")]), T128, true, B3Encoding::Both,
        [Some("80f198ee56343ba864fe8b2a57d3eff7-1111222233334444-1"), Some(T128H), Some("1"), None]),
];

#[test]
fn local_inject_vectors() {
    let mut failures = Vec::new();
    for (i, (parent, trace_id, sampled, enc, want)) in LOCAL.iter().enumerate() {
        let p = MeshPropagator::builder_istio()
            .b3_inject(*enc)
            .build()
            .unwrap();
        let base = match parent {
            Parent::None => Context::new(),
            Parent::ChildOf(h) => p.extract_from_headers(&text_map(h)),
        };
        let sc = SpanContext::new(
            TraceId::from(*trace_id),
            SpanId::from(CHILD),
            if *sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            TraceState::NONE,
        );
        let cx = base.with_remote_span_context(sc);
        let mut h = HeaderMap::new();
        p.inject_into_headers(&cx, &mut h);
        let got: Vec<Option<&str>> = ["b3", "x-b3-traceid", "x-b3-sampled", "x-b3-flags"]
            .iter()
            .map(|n| h.get(*n).map(|v| v.to_str().unwrap()))
            .collect();
        if got != want.to_vec() || h.contains_key("x-b3-parentspanid") {
            failures.push(format!(
                "[{i}] {parent:?} sampled {sampled} {enc:?}:\n    want {want:?}\n    got  {got:?}"
            ));
        }
    }
    report("LOCAL", failures);
}
