//! Table tests for AWS X-Ray `X-Amzn-Trace-Id` (SPECS.md section 7).

mod support;

use meshtrace::propagation::xray::{parse_xray, XRayError as E};
use meshtrace::{Format, Formats, SamplingState as S};
use opentelemetry::trace::TraceFlags;
use opentelemetry::Context;
use support::headers::text_map;
use support::propagation::{check_settled, injected_both, pairs, propagator, remote_cx, Settled};
use support::tables::report;

const T: u128 = 0x5759e988bd862e3fe1be46a994272793;
const SPAN: u64 = 0x53995c3f42cd8ad8;
const ROOT: &str = "Root=1-5759e988-bd862e3fe1be46a994272793";

/// What a header parses to: (trace id, span id, sampling, fields passed on), or why not.
type Parsed = Result<(u128, u64, S, &'static str), E>;

#[rustfmt::skip]
const PARSE: &[(&str, Parsed)] = &[
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", Ok((T, SPAN, S::Accept, ""))),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0", Ok((T, SPAN, S::Deny, ""))),
    // `?` and an absent flag are deferred
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?", Ok((T, SPAN, S::Deferred, ""))),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",           Ok((T, SPAN, S::Deferred, ""))),
    // any order, spaces around fields and `=`, an empty field
    ("Sampled=1; Parent = 53995c3f42cd8ad8 ;Root=1-5759e988-bd862e3fe1be46a994272793;", Ok((T, SPAN, S::Accept, ""))),
    // other fields are kept verbatim, in order
    ("Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Lineage=a87bd80c:1|68fd508a:5;Sampled=1",
        Ok((T, SPAN, S::Accept, "Self=1-67891234-12456789abcdef012345678;Lineage=a87bd80c:1|68fd508a:5"))),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;CalledFrom=Foo Bar=", Ok((T, SPAN, S::Deferred, "CalledFrom=Foo Bar="))),
    // fields
    ("",                                                                            Err(E::MissingRoot)),
    ("Parent=53995c3f42cd8ad8;Sampled=1",                                           Err(E::MissingRoot)),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",                          Err(E::MissingParent)),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;junk",       Err(E::Field)),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;X=\u{1}",    Err(E::Field)),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8", Err(E::Duplicate)),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Sampled=0", Err(E::Duplicate)),
    // keys are case-sensitive: `root` is another field
    ("root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",            Err(E::MissingRoot)),
    // root
    ("Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",            Err(E::InvalidRoot)),
    ("Root=1-5759e98-8bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",            Err(E::InvalidRoot)),
    ("Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8",             Err(E::InvalidRoot)),
    ("Root=1-5759E988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",            Err(E::InvalidRoot)),
    ("Root=5759e988bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",               Err(E::InvalidRoot)),
    ("Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",            Err(E::ZeroRoot)),
    // parent
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",             Err(E::InvalidParent)),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995C3F42CD8AD8",            Err(E::InvalidParent)),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",            Err(E::ZeroParent)),
    // sampled
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=2",  Err(E::InvalidSampled)),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=",   Err(E::InvalidSampled)),
    ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=true", Err(E::InvalidSampled)),
];

#[test]
fn parse_vectors() {
    let mut failures = Vec::new();
    for (i, (input, want)) in PARSE.iter().enumerate() {
        let got = parse_xray(input.as_bytes());
        let got = got
            .as_ref()
            .map(|c| (c.trace_id, c.span_id, c.sampling, c.other.as_str()))
            .map_err(|e| *e);
        if got != *want {
            failures.push(format!("[{i}] {input:?}: want {want:?}, got {got:?}"));
        }
    }
    report("PARSE", failures);
}

#[test]
fn other_fields_are_bounded() {
    let long = format!("{ROOT};Parent=53995c3f42cd8ad8;Lineage={}", "a".repeat(300));
    assert_eq!(parse_xray(long.as_bytes()), Err(E::OtherTooLong));
}

const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

#[test]
fn extract_vectors() {
    #[rustfmt::skip]
    let table: Vec<(Vec<(&str, &str)>, Settled)> = vec![
        (vec![("x-amzn-trace-id", XRAY)],
            (Some((Format::XRay, T, SPAN, S::Accept)), vec![], vec![], vec![])),
        // two lines: rejected, like the reference propagator does
        (vec![("x-amzn-trace-id", XRAY), ("x-amzn-trace-id", XRAY)],
            (None, vec![], vec![], vec!["XRay(Duplicate)".into()])),
        // a load balancer's header next to the caller's traceparent: traceparent wins, X-Ray is
        // kept for a link
        (vec![("x-amzn-trace-id", XRAY), ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
            (Some((Format::TraceContext, 0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, S::Accept)), vec![Format::XRay], vec![], vec![])),
        // X-Ray is last by default, after OpenTracing too
        (vec![("x-amzn-trace-id", XRAY), ("ot-tracer-traceid", "0af7651916cd43dd"), ("ot-tracer-spanid", "b7ad6b7169203331")],
            (Some((Format::OtTrace, 0x0af7651916cd43dd, 0xb7ad6b7169203331, S::Deferred)), vec![Format::XRay], vec![], vec![])),
        // agreeing: a deferred X-Ray lends nothing, takes traceparent's decision
        (vec![("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?"), ("traceparent", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00")],
            (Some((Format::TraceContext, T, SPAN, S::Deny)), vec![], vec![], vec![])),
        (vec![("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793")],
            (None, vec![], vec![], vec!["XRay(MissingParent)".into()])),
    ];
    let p = propagator(Formats::ALL, Formats::NONE);
    let mut failures = Vec::new();
    for (i, (headers, want)) in table.iter().enumerate() {
        check_settled(&mut failures, i, &p, headers, want);
    }
    report("EXTRACT", failures);
}

#[test]
fn inject_vectors() {
    let p = propagator(Formats::ALL, Format::XRay.into());
    let with_lineage = p.extract_from_headers(&text_map(&[(
        "x-amzn-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a87bd80c:1|68fd508a:5;Parent=53995c3f42cd8ad8;Sampled=1",
    )]));
    #[rustfmt::skip]
    let table: Vec<(Context, &str)> = vec![
        (remote_cx(T, SPAN, TraceFlags::SAMPLED), "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
        (remote_cx(T, SPAN, TraceFlags::default()), "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"),
        // a 64-bit id: the epoch part is zeros
        (remote_cx(0x80f198ee56343ba8, SPAN, TraceFlags::SAMPLED), "Root=1-00000000-0000000080f198ee56343ba8;Parent=53995c3f42cd8ad8;Sampled=1"),
        // the fields X-Ray does not read go on with their trace
        (with_lineage.clone(), "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5"),
        // ... and not with another trace
        (remote_cx(1, 2, TraceFlags::SAMPLED).with_value(with_lineage.get::<meshtrace::MeshContext>().unwrap().clone()),
            "Root=1-00000000-000000000000000000000001;Parent=0000000000000002;Sampled=1"),
        // deferred: no Sampled field
        (p.extract_from_headers(&text_map(&[("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8")])),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"),
    ];
    let mut failures = Vec::new();
    for (i, (cx, want)) in table.iter().enumerate() {
        let want = pairs(&[("x-amzn-trace-id", want)]);
        for (path, got) in injected_both(&p, cx) {
            if got != want {
                failures.push(format!("[{i}] {path}:\n  want {want:?}\n  got  {got:?}"));
            }
        }
    }
    // No span context: nothing.
    for (path, got) in injected_both(&p, &Context::new()) {
        if !got.is_empty() {
            failures.push(format!("no span context, {path}: got {got:?}"));
        }
    }
    report("INJECT", failures);
}
