//! Differential tests: meshtrace against the reference propagators of the OpenTelemetry
//! Rust project (`opentelemetry_sdk`'s `TraceContextPropagator` and `BaggagePropagator`,
//! `opentelemetry-propagator-b3`'s `Propagator`).
//!
//! For every input on which the rules of `SPECS.md` and the reference implementation agree,
//! meshtrace (configured to the same single format) must extract the same span context /
//! baggage and inject the same header values. Where meshtrace deliberately differs, an
//! `intentional_difference_*` test pins BOTH behaviours and cites the rule; the table at the
//! end of the file lists them all.

mod support;

use http::HeaderMap;
use meshtrace::{Format, Formats, MeshContextExt, MeshPropagator, SamplingState};
use opentelemetry::baggage::{Baggage, BaggageExt, BaggageMetadata};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, Key, StringValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_propagator_b3::{B3Encoding as CrateEncoding, Propagator as B3Crate};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use proptest::prelude::*;
use support::headers::text_map;
use support::propagation::{baggage_vec, tracestate_key};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACE_ID: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;
const SPAN: &str = "00f067aa0ba902b7";
const SPAN_ID: u64 = 0x00f0_67aa_0ba9_02b7;
const PARENT: &str = "00000000000000cd";

fn ours(extract: impl Into<Formats>, inject: impl Into<Formats>) -> MeshPropagator {
    MeshPropagator::builder()
        .extract(extract)
        .inject(inject)
        .build()
        .unwrap()
}

fn ours_tc() -> MeshPropagator {
    ours(Format::TraceContext, Format::TraceContext)
}

fn ours_baggage() -> MeshPropagator {
    ours(Format::Baggage, Format::Baggage)
}

/// All B3 encodings of the reference crate, with the meshtrace configuration that matches it.
/// The crate always extracts single first and falls back to multi, whatever its encoding, so
/// meshtrace extracts both B3 formats; only the inject side follows the encoding.
fn b3_pairs() -> Vec<(&'static str, MeshPropagator, B3Crate)> {
    vec![
        (
            "single",
            ours(Formats::B3, Format::B3Single),
            B3Crate::with_encoding(CrateEncoding::SingleHeader),
        ),
        (
            "multi",
            ours(Formats::B3, Format::B3Multi),
            B3Crate::with_encoding(CrateEncoding::MultipleHeader),
        ),
        (
            "single+multi",
            ours(Formats::B3, Formats::B3),
            B3Crate::with_encoding(CrateEncoding::SingleAndMultiHeader),
        ),
    ]
}

fn b3_pair(encoding: &str) -> (MeshPropagator, B3Crate) {
    b3_pairs()
        .into_iter()
        .find(|(name, _, _)| *name == encoding)
        .map(|(_, o, t)| (o, t))
        .unwrap()
}

/// Extracts with meshtrace on both paths (HeaderMap fast path and `Extractor` path), checks
/// they agree, and returns the context.
fn extract_ours(p: &MeshPropagator, m: &HeaderMap) -> Context {
    let fast = p.extract_from_headers_with_context(&Context::new(), m);
    let generic = p.extract_with_context(&Context::new(), &HeaderExtractor(m));
    assert_eq!(
        fast.span().span_context(),
        generic.span().span_context(),
        "fast and generic paths disagree on {m:?}"
    );
    assert_eq!(baggage_vec(&fast), baggage_vec(&generic));
    generic
}

fn extract_theirs(p: &dyn TextMapPropagator, m: &HeaderMap) -> Context {
    p.extract_with_context(&Context::new(), &HeaderExtractor(m))
}

/// Injects with meshtrace through the `Injector` path and checks the `HeaderMap` path writes
/// the same thing.
fn inject_ours(p: &MeshPropagator, cx: &Context) -> HeaderMap {
    let mut generic = HeaderMap::new();
    p.inject_context(cx, &mut HeaderInjector(&mut generic));
    let mut fast = HeaderMap::new();
    p.inject_into_headers(cx, &mut fast);
    assert_eq!(fast, generic, "fast and generic inject disagree");
    generic
}

fn inject_theirs(p: &dyn TextMapPropagator, cx: &Context) -> HeaderMap {
    let mut m = HeaderMap::new();
    p.inject_context(cx, &mut HeaderInjector(&mut m));
    m
}

/// The parts of a span context both implementations must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sc {
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
    remote: bool,
}

/// `None` when the context carries no valid span context.
fn sc(cx: &Context) -> Option<Sc> {
    let span = cx.span();
    let s = span.span_context();
    s.is_valid().then(|| Sc {
        trace_id: s.trace_id(),
        span_id: s.span_id(),
        sampled: s.is_sampled(),
        remote: s.is_remote(),
    })
}

fn flags(cx: &Context) -> u8 {
    cx.span().span_context().trace_flags().to_u8()
}

fn trace_state(cx: &Context) -> String {
    cx.span().span_context().trace_state().header()
}

fn sorted_headers(m: &HeaderMap) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<_> = m
        .keys()
        .map(|k| {
            (
                k.as_str().to_owned(),
                m.get_all(k)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The headers of `m` that `p` writes (its `fields()`), sorted.
fn restricted(m: &HeaderMap, p: &MeshPropagator) -> Vec<(String, Vec<String>)> {
    let fields: Vec<String> = p.fields().map(str::to_owned).collect();
    sorted_headers(m)
        .into_iter()
        .filter(|(k, _)| fields.contains(k))
        .collect()
}

fn header(m: &HeaderMap, name: &str) -> Option<String> {
    m.get(name).map(|v| v.to_str().unwrap().to_owned())
}

fn remote_cx(trace_id: u128, span_id: u64, flags: u8, ts: TraceState) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags),
        true,
        ts,
    ))
}

fn baggage_cx(members: &[(&str, &str, &str)]) -> Context {
    let mut b = Baggage::new();
    for (k, v, m) in members {
        b.insert_with_metadata(
            Key::from(k.to_string()),
            StringValue::from(v.to_string()),
            BaggageMetadata::from(*m),
        );
    }
    Context::new().with_baggage(b)
}

fn tp(flags: &str) -> String {
    format!("00-{TRACE}-{SPAN}-{flags}")
}

// ---------------------------------------------------------------------------------------------
// W3C traceparent / tracestate: agreement
// ---------------------------------------------------------------------------------------------

/// Header sets on which SPECS.md section 1 and `TraceContextPropagator` agree.
fn tc_agreeing_corpus() -> Vec<Vec<(String, String)>> {
    let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let long_ts = (0..32)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        // Valid.
        s(&[("traceparent", &tp("01"))]),
        s(&[("traceparent", &tp("00"))]),
        s(&[("traceparent", &tp("09"))]), // unknown bit 0x08: ignored, sampled
        s(&[("traceparent", &tp("08"))]),
        s(&[("traceparent", &format!(" \t{} \t", tp("01")))]),
        s(&[("traceparent", &format!("01-{TRACE}-{SPAN}-01"))]),
        s(&[(
            "traceparent",
            &format!("cc-{TRACE}-{SPAN}-01-what-the-future-holds"),
        )]),
        s(&[("traceparent", &format!("fe-{TRACE}-{SPAN}-00-"))]),
        s(&[("traceparent", &tp("01")), ("tracestate", "foo=bar")]),
        s(&[
            ("traceparent", &tp("01")),
            ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ]),
        s(&[
            ("traceparent", &tp("01")),
            ("tracestate", " , a=1 ,\t, b=2 ,"),
        ]),
        s(&[
            ("traceparent", &tp("01")),
            ("tracestate", "a=b c,d=~!@#$%^&*()"),
        ]),
        s(&[
            ("traceparent", &tp("01")),
            ("tracestate", "tenant@vendor=x,0a-_*/=y"),
        ]),
        s(&[("traceparent", &tp("01")), ("tracestate", &long_ts)]),
        s(&[("traceparent", &tp("01")), ("tracestate", "")]),
        // Invalid tracestate, valid trace: both keep the trace and drop the whole list.
        s(&[("traceparent", &tp("01")), ("tracestate", "foo")]),
        s(&[("traceparent", &tp("01")), ("tracestate", "a=1,FOO=bar")]),
        s(&[("traceparent", &tp("01")), ("tracestate", "a=1,_x=bar")]),
        s(&[("traceparent", &tp("01")), ("tracestate", "a=1,b=c,d")]),
        // A Level 2 key neither `TraceState` can hold: the SpanContexts agree (meshtrace still
        // forwards the list: see intentional_difference_tracestate_level2_keys_forwarded).
        s(&[("traceparent", &tp("01")), ("tracestate", "a@b@c=1")]),
        s(&[
            ("traceparent", &tp("01")),
            ("tracestate", &format!("a={}", "x".repeat(257))),
        ]),
        // Invalid traceparent: no context, tracestate ignored.
        s(&[("traceparent", "")]),
        s(&[("traceparent", "garbage")]),
        s(&[("traceparent", &format!("ff-{TRACE}-{SPAN}-01"))]),
        s(&[("traceparent", &format!("00-{}-{SPAN}-01", "0".repeat(32)))]),
        s(&[("traceparent", &format!("00-{TRACE}-{}-01", "0".repeat(16)))]),
        s(&[(
            "traceparent",
            &format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
        )]),
        s(&[(
            "traceparent",
            &format!("00-{TRACE}-{}-01", SPAN.to_uppercase()),
        )]),
        s(&[("traceparent", &tp("0A"))]),
        s(&[("traceparent", &tp("0g"))]),
        s(&[("traceparent", &format!("00-{TRACE}-{SPAN}"))]),
        s(&[("traceparent", &format!("00-{TRACE}-{SPAN}-01-extra"))]),
        s(&[("traceparent", &format!("00-{TRACE}-{SPAN}-01.extra"))]),
        s(&[("traceparent", &format!("cc-{TRACE}-{SPAN}-01.extra"))]),
        s(&[("traceparent", &format!("00-{TRACE}-{SPAN}-01,{}", tp("01")))]),
        s(&[("traceparent", &format!("00-{TRACE}x-{SPAN}-01"))]),
        s(&[
            ("traceparent", "00-zz-00f067aa0ba902b7-01"),
            ("tracestate", "a=1"),
        ]),
        s(&[("tracestate", "a=1")]),
        s(&[]),
    ]
}

#[test]
fn traceparent_extract_agrees_on_corpus() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    for case in tc_agreeing_corpus() {
        let pairs: Vec<(&str, &str)> = case.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let m = text_map(&pairs);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        assert_eq!(sc(&a), sc(&b), "span context differs on {pairs:?}");
        assert_eq!(
            trace_state(&a),
            trace_state(&b),
            "tracestate differs on {pairs:?}"
        );
        // Both keep only the sampled bit of these inputs (0x02 is never set here).
        assert_eq!(flags(&a), flags(&b), "flags differ on {pairs:?}");
    }
}

#[test]
fn traceparent_inject_agrees() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let ts = TraceState::from_key_value([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")])
        .unwrap();
    for flags in [0u8, 1] {
        // A non-empty trace state: both write the same two headers.
        let cx = remote_cx(TRACE_ID, SPAN_ID, flags, ts.clone());
        assert_eq!(inject_ours(&o, &cx), inject_theirs(&t, &cx));
        // An empty trace state: the same traceparent (tracestate: see the intentional difference).
        let cx = remote_cx(TRACE_ID, SPAN_ID, flags, TraceState::NONE);
        assert_eq!(
            header(&inject_ours(&o, &cx), "traceparent"),
            header(&inject_theirs(&t, &cx), "traceparent")
        );
    }
    // No valid span context: neither writes anything.
    let cx = Context::new();
    assert!(inject_ours(&o, &cx).is_empty());
    assert!(inject_theirs(&t, &cx).is_empty());
}

// ---------------------------------------------------------------------------------------------
// W3C traceparent / tracestate: intentional differences
// ---------------------------------------------------------------------------------------------

/// SPECS.md §1: "Flags: `0x01` sampled, `0x02` random (Level 2). A received random bit is
/// re-injected as received." The SDK implements Level 1 and clears every bit but `sampled`.
#[test]
fn intentional_difference_random_flag_kept() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    for (f, sampled) in [("03", true), ("02", false)] {
        let m = text_map(&[("traceparent", &tp(f))]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        assert_eq!(sc(&a), sc(&b));
        assert_eq!(sc(&a).unwrap().sampled, sampled);
        // Ours keeps 0x02, theirs clears it.
        assert_eq!(flags(&a), u8::from(sampled) | 0x02);
        assert_eq!(flags(&b), u8::from(sampled));
        // And each re-injects what it kept.
        assert_eq!(header(&inject_ours(&o, &a), "traceparent").unwrap(), tp(f));
        assert_eq!(
            header(&inject_theirs(&t, &b), "traceparent").unwrap(),
            tp(if sampled { "01" } else { "00" })
        );
        // Given the very same context, the SDK still drops the bit on inject.
        assert_eq!(
            header(&inject_theirs(&t, &a), "traceparent").unwrap(),
            tp(if sampled { "01" } else { "00" })
        );
    }
}

/// SPECS.md §1: "When this process starts a new trace its trace-id is random, so it sets the
/// random bit." A local (non-remote) span context with no remote parent is a trace this
/// process started; the SDK has no notion of the random bit.
#[test]
fn intentional_difference_random_flag_set_on_local_root() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let cx = Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(TRACE_ID),
        SpanId::from(SPAN_ID),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    ));
    assert_eq!(
        header(&inject_ours(&o, &cx), "traceparent").unwrap(),
        tp("03")
    );
    assert_eq!(
        header(&inject_theirs(&t, &cx), "traceparent").unwrap(),
        tp("01")
    );
    // Opting out of random ids restores the SDK's output.
    let plain = MeshPropagator::builder()
        .extract(Format::TraceContext)
        .inject(Format::TraceContext)
        .random_trace_ids(false)
        .build()
        .unwrap();
    assert_eq!(
        header(&inject_ours(&plain, &cx), "traceparent").unwrap(),
        tp("01")
    );
}

/// SPECS.md §1: "Never inject an empty `tracestate` header." The SDK always writes
/// `tracestate`, empty when the trace state is.
#[test]
fn intentional_difference_no_empty_tracestate() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let cx = remote_cx(TRACE_ID, SPAN_ID, 1, TraceState::NONE);
    let (a, b) = (inject_ours(&o, &cx), inject_theirs(&t, &cx));
    assert_eq!(header(&a, "tracestate"), None);
    assert_eq!(header(&b, "tracestate").as_deref(), Some(""));
}

/// SPECS.md §1: "Version `00` must be exactly 55 characters: anything after the flags
/// (`…-01.` or `…-01-extra`) makes it invalid." The SDK splits with `split_terminator('-')`,
/// which swallows one trailing `-`.
#[test]
fn intentional_difference_traceparent_v00_trailing_dash() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let m = text_map(&[("traceparent", &format!("{}-", tp("01")))]);
    assert_eq!(sc(&extract_ours(&o, &m)), None);
    assert_eq!(
        sc(&extract_theirs(&t, &m)),
        Some(Sc {
            trace_id: TraceId::from(TRACE_ID),
            span_id: SpanId::from(SPAN_ID),
            sampled: true,
            remote: true
        })
    );
}

/// SPECS.md §1: `traceparent: VV-TTTT…(32)-PPPP…(16)-FF`, "lowercase hex only", version 00
/// "exactly 55 characters". The SDK does not check field lengths and parses the fields with
/// `from_str_radix`, which also takes a leading `+`.
#[test]
fn intentional_difference_traceparent_field_syntax() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let cases = [
        // Short fields.
        (
            "00-4bf92f35-00f067aa-01",
            0x4bf9_2f35u128,
            0x00f0_67aau64,
            true,
        ),
        // Uppercase version (only the ids and flags are checked for case).
        (
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            TRACE_ID,
            SPAN_ID,
            true,
        ),
        ("0-1-2-1", 1, 2, true),
        // A sign where a hex digit belongs (same length as a valid value).
        (
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            0x0bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            SPAN_ID,
            true,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-+1",
            TRACE_ID,
            0x0f0_67aa_0ba9_02b7,
            true,
        ),
    ];
    for (value, trace_id, span_id, sampled) in cases {
        let m = text_map(&[("traceparent", value)]);
        assert_eq!(sc(&extract_ours(&o, &m)), None, "{value}");
        assert_eq!(
            sc(&extract_theirs(&t, &m)),
            Some(Sc {
                trace_id: TraceId::from(trace_id),
                span_id: SpanId::from(span_id),
                sampled,
                remote: true
            }),
            "{value}"
        );
    }
}

/// SPECS.md §1: "Two `traceparent` headers (or one header with a comma list) is invalid:
/// extraction must see every value of the header, not only the first." The SDK reads only
/// the first line.
#[test]
fn intentional_difference_duplicate_traceparent() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    for second in [
        tp("00"),
        tp("01"),
        format!("00-{}-{SPAN}-01", "1".repeat(32)),
    ] {
        let m = text_map(&[("traceparent", &tp("01")), ("traceparent", &second)]);
        assert_eq!(sc(&extract_ours(&o, &m)), None);
        let theirs = sc(&extract_theirs(&t, &m)).unwrap();
        assert_eq!(theirs.trace_id, TraceId::from(TRACE_ID));
        assert!(theirs.sampled);
    }
}

/// SPECS.md §1: "`tracestate`: list of `key=value`, combined across all header lines in
/// order." The SDK reads only the first line.
#[test]
fn intentional_difference_tracestate_lines_combined() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let m = text_map(&[
        ("traceparent", &tp("01")),
        ("tracestate", "a=1,b=2"),
        ("tracestate", "c=3"),
    ]);
    assert_eq!(trace_state(&extract_ours(&o, &m)), "a=1,b=2,c=3");
    assert_eq!(trace_state(&extract_theirs(&t, &m)), "a=1,b=2");
    // An invalid second line discards everything for us; the SDK never looks at it.
    let m = text_map(&[
        ("traceparent", &tp("01")),
        ("tracestate", "a=1"),
        ("tracestate", "BAD"),
    ]);
    assert_eq!(trace_state(&extract_ours(&o, &m)), "");
    assert_eq!(trace_state(&extract_theirs(&t, &m)), "a=1");
}

/// SPECS.md §1: "More than 32 members, or any invalid member, discards the whole tracestate."
/// The SDK keeps the first 32 members and ignores the rest unchecked.
#[test]
fn intentional_difference_tracestate_over_32_members() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let ts = (0..33)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let m = text_map(&[("traceparent", &tp("01")), ("tracestate", &ts)]);
    let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
    assert_eq!(sc(&a), sc(&b));
    assert_eq!(trace_state(&a), "");
    assert_eq!(
        trace_state(&b),
        (0..32)
            .map(|i| format!("k{i}=v{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
}

/// SPECS.md §8: "no input may cost much more than a limit-sized one": a `tracestate` over
/// 4096 bytes (all lines together) is discarded unread, the trace kept (W3C asks every vendor
/// to propagate at least 512). The SDK keeps up to 32 members of any size.
#[test]
fn intentional_difference_tracestate_over_4096_bytes() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let ts = (0..20)
        .map(|i| format!("k{i}={}", "v".repeat(250)))
        .collect::<Vec<_>>()
        .join(",");
    assert!(ts.len() > 4096);
    let m = text_map(&[("traceparent", &tp("01")), ("tracestate", &ts)]);
    let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
    assert_eq!(sc(&a), sc(&b));
    assert_eq!(trace_state(&a), "");
    assert_eq!(trace_state(&b), ts);
}

/// SPECS.md §1: "Values: 0..256 printable ASCII without `,` and `=`, not ending in a space
/// … any invalid member, discards the whole tracestate." Note: the W3C Level 2 grammar (the
/// primary source) is `value = 0*255(chr) nblk-chr`, i.e. at least one character, which is
/// what meshtrace implements; SPECS.md's "0..256" reads as if an empty value were allowed.
/// The SDK only checks a value for `,`, `=` and length, strips the run of `=` after the key,
/// and does not look for duplicate keys.
#[test]
fn intentional_difference_tracestate_member_validation() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let cases = [
        ("a=1,k==v", "a=1,k=v"), // `=` inside the value: SDK strips the leading `=` run
        ("a=1,k=", "a=1,k="),    // empty value
        ("a=1,k=x\ty", "a=1,k=x\ty"), // tab (not printable ASCII) inside the value
    ];
    for (ts, theirs) in cases {
        let m = text_map(&[("traceparent", &tp("01")), ("tracestate", ts)]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        assert_eq!(sc(&a), sc(&b), "{ts}");
        assert_eq!(trace_state(&a), "", "{ts}");
        assert_eq!(trace_state(&b), theirs, "{ts}");
    }
}

/// SPECS.md §1: "Duplicate keys: keep the list; the first occurrence of a key stays, later
/// ones are dropped." The SDK keeps every occurrence.
#[test]
fn intentional_difference_tracestate_duplicate_keys() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let m = text_map(&[("traceparent", &tp("01")), ("tracestate", "a=1,b=2,a=3")]);
    let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
    assert_eq!(sc(&a), sc(&b));
    assert_eq!(trace_state(&a), "a=1,b=2");
    assert_eq!(trace_state(&b), "a=1,b=2,a=3");
}

/// SPECS.md §1: Level 2 keys "are valid, though opentelemetry's `TraceState` … cannot hold
/// them. Such a list is still inherited: when the application did not change the trace
/// state, it goes out as received". The SDK drops the whole list.
#[test]
fn intentional_difference_tracestate_level2_keys_forwarded() {
    let (o, t) = (ours_tc(), TraceContextPropagator::new());
    let m = text_map(&[
        ("traceparent", &tp("01")),
        ("tracestate", "foo@@bar=1,bar=2"),
    ]);
    let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
    assert_eq!(sc(&a), sc(&b));
    assert_eq!(trace_state(&a), "bar=2");
    assert_eq!(trace_state(&b), "");
    assert_eq!(
        header(&inject_ours(&o, &a), "tracestate").as_deref(),
        Some("foo@@bar=1,bar=2")
    );
    assert_eq!(
        header(&inject_theirs(&t, &b), "tracestate").as_deref(),
        Some("")
    );
}

// ---------------------------------------------------------------------------------------------
// W3C baggage: agreement
// ---------------------------------------------------------------------------------------------

fn baggage_agreeing_corpus() -> Vec<&'static str> {
    vec![
        "key1=val1,key2=val2",
        "key1 =   val1,  key2 =val2   ",
        "key1=val1,key2=val2;prop1;prop2=x",
        "k=v;p=1;q",
        "user=a%20b",
        "k=%E2%9C%93%20ok",
        "k=%2C%3B%25",
        "a=1,bad,b=2",
        "a=1,a=2",
        "a=1,,,b=2,",
        "k=",
        "=v,k=1",
        "a b=1,k=1",
        "a(b=1,k=1",
        "k=!#$&'()*+-./:<>?@[]^_`{|}~",
        "",
        ",",
    ]
}

#[test]
fn baggage_extract_agrees_on_corpus() {
    let (o, t) = (ours_baggage(), BaggagePropagator::new());
    for value in baggage_agreeing_corpus() {
        let m = text_map(&[("baggage", value)]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        assert_eq!(
            baggage_vec(&a),
            baggage_vec(&b),
            "baggage differs on {value:?}"
        );
        assert_eq!(sc(&a), None);
    }
    // Exactly 64 members: both keep all of them.
    let many = (0..64)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let m = text_map(&[("baggage", &many)]);
    let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
    assert_eq!(baggage_vec(&a).len(), 64);
    assert_eq!(baggage_vec(&a), baggage_vec(&b));
    // 65 members: both keep 64 (the SDK the first 64; so do we).
    let many = (0..65)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let m = text_map(&[("baggage", &many)]);
    let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
    assert_eq!(baggage_vec(&a).len(), 64);
    assert_eq!(baggage_vec(&a), baggage_vec(&b));
}

#[test]
fn baggage_inject_agrees() {
    let (o, t) = (ours_baggage(), BaggagePropagator::new());
    let cases: Vec<Vec<(&str, &str, &str)>> = vec![
        vec![("k", "v", "")],
        vec![("k", "a b,c;d\"e", "")],
        vec![("k", "ünïcødé ✓", "p;q=1")],
        vec![("a", "1", ""), ("b", "2", "ttl=3"), ("c", "", "")],
        vec![("k", "!#$&'()*+-./:<>?@[]^_`{|}~", "")],
    ];
    // The same members, encoded the same way; we write them in key order (so that one
    // baggage always gives the same bytes), the SDK in its hash map's order.
    let members_of = |line: Option<String>| {
        let mut m: Vec<String> = line
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        m.sort();
        m
    };
    for members in cases {
        let cx = baggage_cx(&members);
        let ours = header(&inject_ours(&o, &cx), "baggage");
        assert_eq!(
            members_of(ours.clone()),
            members_of(header(&inject_theirs(&t, &cx), "baggage")),
            "{members:?}"
        );
        let sorted = members_of(ours.clone()).join(",");
        assert_eq!(ours, Some(sorted), "in key order");
    }
    // Empty baggage: neither writes the header.
    assert!(inject_ours(&o, &Context::new()).is_empty());
    assert!(inject_theirs(&t, &Context::new()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// W3C baggage: intentional differences
// ---------------------------------------------------------------------------------------------

/// SPECS.md §2: "`baggage: …` combined across all header lines." The SDK reads only the
/// first line.
#[test]
fn intentional_difference_baggage_lines_combined() {
    let (o, t) = (ours_baggage(), BaggagePropagator::new());
    let m = text_map(&[("baggage", "a=1"), ("baggage", "b=2,a=3")]);
    assert_eq!(
        baggage_vec(&extract_ours(&o, &m)),
        vec![
            ("a".into(), "3".into(), "".into()),
            ("b".into(), "2".into(), "".into())
        ]
    );
    assert_eq!(
        baggage_vec(&extract_theirs(&t, &m)),
        vec![("a".into(), "1".into(), "".into())]
    );
}

/// SPECS.md §2: "a value may contain `=`". The SDK splits the member on every `=` and keeps
/// only the text up to the second one.
#[test]
fn intentional_difference_baggage_value_with_equals() {
    let (o, t) = (ours_baggage(), BaggagePropagator::new());
    let m = text_map(&[("baggage", "k=a=b,j=x%3Dy")]);
    assert_eq!(
        baggage_vec(&extract_ours(&o, &m)),
        vec![
            ("j".into(), "x=y".into(), "".into()),
            ("k".into(), "a=b".into(), "".into())
        ]
    );
    assert_eq!(
        baggage_vec(&extract_theirs(&t, &m)),
        vec![
            ("j".into(), "x=y".into(), "".into()),
            ("k".into(), "a".into(), "".into())
        ]
    );
}

/// SPECS.md §2: "Keys are HTTP tokens; values are percent-encoded" (only values). The SDK
/// percent-decodes keys too, so `a%41` (a valid token) becomes the key `aA`.
#[test]
fn intentional_difference_baggage_key_not_percent_decoded() {
    let (o, t) = (ours_baggage(), BaggagePropagator::new());
    let m = text_map(&[("baggage", "a%41=1")]);
    assert_eq!(
        baggage_vec(&extract_ours(&o, &m)),
        vec![("a%41".into(), "1".into(), "".into())]
    );
    assert_eq!(
        baggage_vec(&extract_theirs(&t, &m)),
        vec![("aA".into(), "1".into(), "".into())]
    );
}

/// SPECS.md §2: "An invalid member is dropped on its own; the valid members around it are
/// kept." A raw space, `"` or `\` inside a value is not a `baggage-octet`, so the member is
/// invalid; the SDK does not validate values and keeps it.
#[test]
fn intentional_difference_baggage_invalid_value_octets() {
    let (o, t) = (ours_baggage(), BaggagePropagator::new());
    for (raw, value) in [("k=a b", "a b"), ("k=a\"b", "a\"b"), ("k=a\\b", "a\\b")] {
        let m = text_map(&[("baggage", &format!("x=1,{raw},y=2"))]);
        let ok = |k: &str, v: &str| (k.to_string(), v.to_string(), String::new());
        assert_eq!(
            baggage_vec(&extract_ours(&o, &m)),
            vec![ok("x", "1"), ok("y", "2")]
        );
        assert_eq!(
            baggage_vec(&extract_theirs(&t, &m)),
            vec![ok("k", value), ok("x", "1"), ok("y", "2")]
        );
    }
}

/// SPECS.md §2: "decoding yields UTF-8 (invalid sequences become U+FFFD)". The SDK drops the
/// member.
#[test]
fn intentional_difference_baggage_invalid_utf8_replaced() {
    let (o, t) = (ours_baggage(), BaggagePropagator::new());
    let m = text_map(&[("baggage", "k=a%FFb,j=1")]);
    assert_eq!(
        baggage_vec(&extract_ours(&o, &m)),
        vec![
            ("j".into(), "1".into(), "".into()),
            ("k".into(), "a\u{FFFD}b".into(), "".into())
        ]
    );
    assert_eq!(
        baggage_vec(&extract_theirs(&t, &m)),
        vec![("j".into(), "1".into(), "".into())]
    );
}

/// SPECS.md §2: "Must propagate everything up to 64 members and 8192 bytes … Beyond that,
/// drop whole members, never part of one." The SDK drops the whole header when it is longer
/// than 8192 bytes.
#[test]
fn intentional_difference_baggage_oversize_header() {
    let (o, t) = (ours_baggage(), BaggagePropagator::new());
    // 9 members of 1000 bytes each ("kN=" + value): 9026 bytes in all.
    let members: Vec<String> = (0..9)
        .map(|i| format!("k{i}={}", "x".repeat(997)))
        .collect();
    let value = members.join(",");
    assert!(value.len() > 8192);
    let m = text_map(&[("baggage", &value)]);
    let a = baggage_vec(&extract_ours(&o, &m));
    // Ours: the first 8 whole members (8007 bytes), the 9th does not fit.
    assert_eq!(a.len(), 8);
    assert!(a.iter().all(|(_, v, _)| v.len() == 997));
    // Theirs: nothing at all.
    assert!(baggage_vec(&extract_theirs(&t, &m)).is_empty());
}

/// SPECS.md §2: "Properties after `;` are kept." We keep them verbatim (trimmed); the SDK
/// percent-decodes each property and re-joins them trimmed.
#[test]
fn intentional_difference_baggage_properties_verbatim() {
    let (o, t) = (ours_baggage(), BaggagePropagator::new());
    let m = text_map(&[("baggage", "k=v;p=%41;q")]);
    assert_eq!(
        baggage_vec(&extract_ours(&o, &m)),
        vec![("k".into(), "v".into(), "p=%41;q".into())]
    );
    assert_eq!(
        baggage_vec(&extract_theirs(&t, &m)),
        vec![("k".into(), "v".into(), "p=A;q".into())]
    );
}

/// SPECS.md §2: "values are percent-encoded (`%` itself is encoded)" and "On inject, encode
/// what needs encoding, so that extract(inject(b)) == b." The SDK does not encode `%` or `\`,
/// encodes `=` (which needs no encoding), and trims values; its own round trip loses data.
#[test]
fn intentional_difference_baggage_inject_encoding() {
    let (o, t) = (ours_baggage(), BaggagePropagator::new());
    let cases = [
        ("50%", "k=50%25", "k=50%"),
        ("%41", "k=%2541", "k=%41"),
        ("a\\b", "k=a%5Cb", "k=a\\b"),
        ("a=b", "k=a=b", "k=a%3Db"),
        (" x ", "k=%20x%20", "k=x"),
    ];
    for (value, our_header, their_header) in cases {
        let cx = baggage_cx(&[("k", value, "")]);
        let (a, b) = (inject_ours(&o, &cx), inject_theirs(&t, &cx));
        assert_eq!(header(&a, "baggage").unwrap(), our_header);
        assert_eq!(header(&b, "baggage").unwrap(), their_header);
        // Our round trip is exact.
        assert_eq!(
            extract_ours(&o, &a)
                .baggage()
                .get("k")
                .map(|v| v.as_str().to_owned()),
            Some(value.to_owned())
        );
    }
    // The SDK's own round trip of `%41` gives `A`.
    let cx = baggage_cx(&[("k", "%41", "")]);
    let b = inject_theirs(&t, &cx);
    assert_eq!(
        extract_theirs(&t, &b)
            .baggage()
            .get("k")
            .map(|v| v.as_str().to_owned()),
        Some("A".to_owned())
    );
}

// ---------------------------------------------------------------------------------------------
// B3: agreement
// ---------------------------------------------------------------------------------------------

fn b3_agreeing_corpus() -> Vec<Vec<(String, String)>> {
    let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let t64 = &TRACE[16..];
    vec![
        // Single: valid.
        s(&[("b3", &format!("{TRACE}-{SPAN}-1"))]),
        s(&[("b3", &format!("{TRACE}-{SPAN}-0"))]),
        s(&[("b3", &format!("{TRACE}-{SPAN}"))]), // deferred: not sampled (yet) for both
        s(&[("b3", &format!("{TRACE}-{SPAN}-1-{PARENT}"))]),
        s(&[("b3", &format!("{TRACE}-{SPAN}-0-0000000000000000"))]),
        s(&[("b3", &format!("{t64}-{SPAN}-1"))]),
        // Single: invalid (and no multi to fall back to).
        s(&[("b3", "")]),
        s(&[("b3", "0")]),
        s(&[("b3", "1")]),
        s(&[("b3", "-")]),
        s(&[("b3", &format!("{}-{SPAN}-1", TRACE.to_uppercase()))]),
        s(&[("b3", &format!("{TRACE}-{}-1", SPAN.to_uppercase()))]),
        s(&[("b3", &format!("{}-{SPAN}-1", "0".repeat(32)))]),
        s(&[("b3", &format!("{TRACE}-{}-1", "0".repeat(16)))]),
        s(&[("b3", &format!("{TRACE}a-{SPAN}-1"))]),
        s(&[("b3", &format!("{}-{SPAN}-1", &TRACE[..20]))]),
        s(&[("b3", &format!("{TRACE}-{SPAN}-2"))]),
        s(&[("b3", &format!("{TRACE}-{SPAN}-1-{PARENT}-x"))]),
        s(&[("b3", &format!("{TRACE}-{SPAN}-1-cd"))]),
        s(&[("b3", &format!("{TRACE}-{SPAN}-1-{}", PARENT.to_uppercase()))]),
        s(&[("b3", &format!("{TRACE}-{SPAN}-1x"))]),
        // Multi: valid.
        s(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]),
        s(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
        ]),
        s(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "false"),
        ]),
        s(&[("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)]),
        s(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-flags", "1"),
        ]),
        s(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-flags", "1"),
            ("x-b3-sampled", "0"),
        ]),
        s(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-parentspanid", PARENT),
            ("x-b3-sampled", "1"),
        ]),
        s(&[
            ("x-b3-traceid", t64),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]),
        // Multi: invalid.
        s(&[("x-b3-traceid", TRACE), ("x-b3-sampled", "1")]),
        s(&[("x-b3-spanid", SPAN), ("x-b3-sampled", "1")]),
        s(&[("x-b3-sampled", "1")]),
        s(&[("x-b3-sampled", "0")]),
        s(&[("x-b3-flags", "1")]),
        s(&[
            ("x-b3-traceid", &TRACE.to_uppercase()),
            ("x-b3-spanid", SPAN),
        ]),
        s(&[("x-b3-traceid", TRACE), ("x-b3-spanid", &SPAN[1..])]),
        s(&[("x-b3-traceid", &"0".repeat(32)), ("x-b3-spanid", SPAN)]),
        s(&[("x-b3-traceid", TRACE), ("x-b3-spanid", &"0".repeat(16))]),
        // Both: the single header wins; an invalid single header falls back to multi.
        s(&[
            ("b3", &format!("{TRACE}-{SPAN}-1")),
            ("x-b3-traceid", &"1".repeat(32)),
            ("x-b3-spanid", &"2".repeat(16)),
            ("x-b3-sampled", "0"),
        ]),
        s(&[
            ("b3", "garbage"),
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]),
        s(&[
            ("b3", &format!("{TRACE}-{SPAN}-1")),
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]),
        s(&[]),
    ]
}

#[test]
fn b3_extract_agrees_on_corpus() {
    for (encoding, o, t) in b3_pairs() {
        for case in b3_agreeing_corpus() {
            let pairs: Vec<(&str, &str)> =
                case.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let m = text_map(&pairs);
            let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
            assert_eq!(
                sc(&a),
                sc(&b),
                "[{encoding}] span context differs on {pairs:?}"
            );
        }
    }
}

/// The B3 crate's single-header encoding also writes the multi headers (see
/// `intentional_difference_b3_single_encoding_writes_only_b3`), so the crate's output is
/// compared on the headers our configuration writes.
#[test]
fn b3_inject_agrees() {
    for (encoding, o, t) in b3_pairs() {
        for (trace_id, flags) in [(TRACE_ID, 1u8), (TRACE_ID, 0), (0x1234u128, 1)] {
            let cx = remote_cx(trace_id, SPAN_ID, flags, TraceState::NONE);
            assert_eq!(
                sorted_headers(&inject_ours(&o, &cx)),
                restricted(&inject_theirs(&t, &cx), &o),
                "[{encoding}] trace {trace_id:x} flags {flags}"
            );
        }
        // Extract-then-inject of agreeing 128-bit inputs gives the same headers.
        for v in [
            format!("{TRACE}-{SPAN}-1"),
            format!("{TRACE}-{SPAN}-0"),
            format!("{TRACE}-{SPAN}-1-{PARENT}"),
        ] {
            let m = text_map(&[("b3", &v)]);
            let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
            assert_eq!(
                sorted_headers(&inject_ours(&o, &a)),
                restricted(&inject_theirs(&t, &b), &o),
                "[{encoding}] {v}"
            );
        }
        // Debug from the multi headers: `x-b3-flags: 1` / `-d`, never `x-b3-sampled`.
        let m = text_map(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-flags", "1"),
        ]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        assert_eq!(
            sorted_headers(&inject_ours(&o, &a)),
            restricted(&inject_theirs(&t, &b), &o),
            "[{encoding}] debug"
        );
        // Deferred: no sampling state is written by either.
        let m = text_map(&[("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        assert_eq!(
            sorted_headers(&inject_ours(&o, &a)),
            restricted(&inject_theirs(&t, &b), &o),
            "[{encoding}] deferred"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// B3: intentional differences
// ---------------------------------------------------------------------------------------------

/// SPECS.md §6: "With no valid span context it writes no trace header and no sampling
/// decision (an injected `x-b3-sampled: 0` would switch tracing off downstream)." The B3
/// crate writes `b3: 0` / `x-b3-sampled: 0`.
#[test]
fn intentional_difference_b3_nothing_injected_without_context() {
    for (encoding, o, t) in b3_pairs() {
        let cx = Context::new();
        assert!(inject_ours(&o, &cx).is_empty(), "[{encoding}]");
        let theirs = inject_theirs(&t, &cx);
        // (The crate's single encoding writes the multi header too.)
        let expected: Vec<(String, Vec<String>)> = match encoding {
            "multi" => vec![("x-b3-sampled".into(), vec!["0".into()])],
            _ => vec![
                ("b3".into(), vec!["0".into()]),
                ("x-b3-sampled".into(), vec!["0".into()]),
            ],
        };
        assert_eq!(sorted_headers(&theirs), expected, "[{encoding}]");
    }
}

/// SPECS.md §3: "OTEL's default B3 inject encoding is single; Istio's docs list the multi
/// headers" — the two encodings are distinct choices. The B3 crate's `SingleHeader` encoding
/// writes the `x-b3-*` headers as well as `b3` (its `support(UnSpecified)` test is always
/// true); meshtrace configured for `B3Single` writes only `b3`.
#[test]
fn intentional_difference_b3_single_encoding_writes_only_b3() {
    let (o, t) = b3_pair("single");
    let cx = remote_cx(TRACE_ID, SPAN_ID, 1, TraceState::NONE);
    assert_eq!(
        sorted_headers(&inject_ours(&o, &cx)),
        vec![("b3".to_owned(), vec![format!("{TRACE}-{SPAN}-1")])]
    );
    assert_eq!(
        sorted_headers(&inject_theirs(&t, &cx)),
        vec![
            ("b3".to_owned(), vec![format!("{TRACE}-{SPAN}-1")]),
            ("x-b3-sampled".to_owned(), vec!["1".to_owned()]),
            ("x-b3-spanid".to_owned(), vec![SPAN.to_owned()]),
            ("x-b3-traceid".to_owned(), vec![TRACE.to_owned()]),
        ]
    );
}

/// SPECS.md §3: "SamplingState: `1` accept, `0` deny, `d` debug" for `b3`; the legacy
/// `true`/`false` belong to `x-b3-sampled` only. The B3 crate shares one parser: it accepts
/// `b3: …-false` always and `b3: …-true` when its encoding is multi-only.
#[test]
fn intentional_difference_b3_single_legacy_sampling_state() {
    for (encoding, o, t) in b3_pairs() {
        for (state, theirs_accepts) in [("false", true), ("true", encoding == "multi")] {
            let m = text_map(&[("b3", &format!("{TRACE}-{SPAN}-{state}"))]);
            let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
            assert_eq!(sc(&a), None, "[{encoding}] {state}");
            assert_eq!(sc(&b).is_some(), theirs_accepts, "[{encoding}] {state}");
            if let Some(theirs) = sc(&b) {
                assert_eq!(theirs.sampled, state == "true");
            }
        }
    }
}

/// SPECS.md §3: "A 64-bit trace id that came in as 16 hex goes out as 16 hex in B3 headers
/// (W3C always gets 32)." The B3 crate pads to 32 on inject.
#[test]
fn intentional_difference_b3_64bit_trace_id_kept_narrow() {
    let t64 = &TRACE[16..];
    for (encoding, o, t) in b3_pairs() {
        for m in [
            text_map(&[("b3", &format!("{t64}-{SPAN}-1"))]),
            text_map(&[
                ("x-b3-traceid", t64),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1"),
            ]),
        ] {
            let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
            // Same (left-padded) trace id on extract.
            assert_eq!(sc(&a), sc(&b));
            let (ia, ib) = (inject_ours(&o, &a), inject_theirs(&t, &b));
            let padded = format!("{}{t64}", "0".repeat(16));
            if encoding != "multi" {
                assert_eq!(header(&ia, "b3").unwrap(), format!("{t64}-{SPAN}-1"));
                assert_eq!(header(&ib, "b3").unwrap(), format!("{padded}-{SPAN}-1"));
            }
            if encoding != "single" {
                assert_eq!(header(&ia, "x-b3-traceid").unwrap(), t64);
                assert_eq!(header(&ib, "x-b3-traceid").unwrap(), padded);
            }
        }
    }
}

/// SPECS.md §3: "Debug must be kept, re-propagated as debug, and must set sampled." The B3
/// crate reads `b3: …-d` as its private flag 0x04 WITHOUT the sampled bit (and rejects `d`
/// outright when its encoding is multi-only); it re-injects debug only from that private bit.
/// We keep debug in the `MeshContext` and set sampled.
#[test]
fn intentional_difference_b3_single_debug() {
    let m = text_map(&[("b3", &format!("{TRACE}-{SPAN}-d"))]);
    for (encoding, o, t) in b3_pairs() {
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        let ours_sc = sc(&a).unwrap();
        assert!(ours_sc.sampled, "[{encoding}]");
        assert!(a.mesh().unwrap().is_debug());
        let ia = inject_ours(&o, &a);
        if encoding != "multi" {
            assert_eq!(header(&ia, "b3").unwrap(), format!("{TRACE}-{SPAN}-d"));
        }
        if encoding != "single" {
            assert_eq!(header(&ia, "x-b3-flags").as_deref(), Some("1"));
            assert_eq!(header(&ia, "x-b3-sampled"), None);
        }
        match encoding {
            "multi" => assert_eq!(sc(&b), None, "[{encoding}] crate rejects `d`"),
            _ => {
                let theirs = sc(&b).unwrap();
                assert_eq!(theirs.trace_id, ours_sc.trace_id);
                assert!(!theirs.sampled, "[{encoding}] crate: debug without sampled");
                assert_eq!(flags(&b), 0x04);
                let ib = inject_theirs(&t, &b);
                assert_eq!(header(&ib, "b3").unwrap(), format!("{TRACE}-{SPAN}-d"));
            }
        }
    }
}

/// SPECS.md §3: "no state = deferred (the receiver decides)" and "A deferred decision must not
/// silently become 'not sampled'"; SPECS.md §1: "`0x02` random (Level 2)". The B3 crate marks
/// a deferred context with trace flag 0x02, which is the W3C random bit: any context carrying
/// the random bit (e.g. from `traceparent …-02`/`-03`) is injected by the crate as deferred,
/// losing the sampling decision. We keep deferral in the `MeshContext` and leave 0x02 to mean
/// random.
#[test]
fn intentional_difference_b3_deferred_vs_random_flag() {
    for (encoding, o, t) in b3_pairs() {
        // Deferred extract: both "not sampled" in the span context; the flags differ.
        let m = text_map(&[("b3", &format!("{TRACE}-{SPAN}"))]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        assert_eq!(sc(&a), sc(&b));
        assert_eq!(flags(&a), 0x00, "[{encoding}]");
        assert_eq!(flags(&b), 0x02, "[{encoding}]");
        assert!(a.mesh().unwrap().is_deferred());
        // A sampled context with the W3C random bit (flags 0x03).
        let cx = remote_cx(TRACE_ID, SPAN_ID, 0x03, TraceState::NONE);
        let (ia, ib) = (inject_ours(&o, &cx), inject_theirs(&t, &cx));
        if encoding != "multi" {
            assert_eq!(header(&ia, "b3").unwrap(), format!("{TRACE}-{SPAN}-1"));
            assert_eq!(header(&ib, "b3").unwrap(), format!("{TRACE}-{SPAN}"));
        }
        if encoding != "single" {
            assert_eq!(header(&ia, "x-b3-sampled").as_deref(), Some("1"));
            assert_eq!(header(&ib, "x-b3-sampled"), None);
        }
    }
}

/// SPECS.md §3: "`x-b3-sampled` (`1`/`0`; legacy `true`/`false`, any case, accepted on
/// extract)". The B3 crate accepts `false` always, `true` only when its inject encoding is
/// multi-only, and no other spelling; a sampled value it refuses drops the whole context.
#[test]
fn intentional_difference_b3_legacy_sampled_values() {
    for (encoding, o, t) in b3_pairs() {
        for (v, sampled) in [
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("False", false),
        ] {
            let m = text_map(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", v),
            ]);
            let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
            assert_eq!(sc(&a).unwrap().sampled, sampled, "[{encoding}] {v}");
            let theirs_accepts = v == "true" && encoding == "multi";
            assert_eq!(sc(&b).is_some(), theirs_accepts, "[{encoding}] {v}");
            if theirs_accepts {
                assert_eq!(sc(&a), sc(&b));
            }
        }
    }
}

/// SPECS.md §3: "Any other `x-b3-sampled` value, the empty one included, makes the
/// multi-header context invalid". The B3 crate agrees on `yes`, `hello`, `10` and the empty
/// value: both drop the context. Only `d` still differs: the crate, when its inject encoding
/// includes the single header, reads `x-b3-sampled: d` as its private debug flag (not
/// sampled); we reject it as brave, zipkin-go and go-contrib do.
#[test]
fn intentional_difference_b3_unknown_sampled_value() {
    for (encoding, o, t) in b3_pairs() {
        for v in ["yes", "hello", "10", "", "d"] {
            let m = text_map(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", v),
            ]);
            let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
            assert_eq!(sc(&a), None, "[{encoding}] {v:?}");
            assert!(a.mesh().unwrap().remote().is_none(), "[{encoding}] {v:?}");
            let theirs_keeps = v == "d" && encoding != "multi";
            assert_eq!(sc(&b).is_some(), theirs_keeps, "[{encoding}] {v:?}");
            if theirs_keeps {
                assert!(!sc(&b).unwrap().sampled, "[{encoding}] {v:?}");
            }
        }
    }
}

/// SPECS.md §3: "`x-b3-flags: 1` = debug (any other value ignored)". The B3 crate reads
/// `x-b3-flags: 0` as an explicit "not sampled" that overrides `x-b3-sampled: 1`.
#[test]
fn intentional_difference_b3_flags_zero_ignored() {
    for (encoding, o, t) in b3_pairs() {
        let m = text_map(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
            ("x-b3-flags", "0"),
        ]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        assert!(sc(&a).unwrap().sampled, "[{encoding}]");
        assert!(!sc(&b).unwrap().sampled, "[{encoding}]");
    }
}

/// SPECS.md §3: "SpanId / ParentSpanId: 16 lowercase hex … Uppercase, wrong length, non-hex,
/// empty fields …: invalid." The B3 crate validates `x-b3-parentspanid` but ignores the
/// result.
#[test]
fn intentional_difference_b3_invalid_multi_parent() {
    for (encoding, o, t) in b3_pairs() {
        for parent in ["cd", "XYZ", "", &PARENT.to_uppercase()] {
            let m = text_map(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-parentspanid", parent),
                ("x-b3-sampled", "1"),
            ]);
            let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
            assert_eq!(sc(&a), None, "[{encoding}] {parent:?}");
            assert_eq!(sc(&b).unwrap().trace_id, TraceId::from(TRACE_ID));
        }
    }
}

/// SPECS.md §3: "Uppercase, wrong length, non-hex, empty fields, more than 4 fields: invalid."
/// The B3 crate splits with `split_terminator('-')` (a trailing `-`, i.e. an empty last field,
/// is swallowed) and parses ids with `from_str_radix` (a leading `+` passes as a digit).
#[test]
fn intentional_difference_b3_single_field_syntax() {
    let cases = [
        format!("{TRACE}-{SPAN}-"),
        format!("{TRACE}-{SPAN}-1-"),
        format!("{TRACE}-{SPAN}-1-{PARENT}-"),
        format!("+{}-{SPAN}-1", &TRACE[1..]),
        format!("{TRACE}-+{}-1", &SPAN[1..]),
    ];
    for (encoding, o, t) in b3_pairs() {
        for v in &cases {
            let m = text_map(&[("b3", v)]);
            let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
            assert_eq!(sc(&a), None, "[{encoding}] {v}");
            assert!(sc(&b).is_some(), "[{encoding}] {v}");
        }
    }
}

/// SPECS.md §1 ("Spaces and tabs around the whole value are allowed", which we apply to B3
/// as RFC 9110 §5.5 does to every field value). The B3 crate does not trim, so padded ids
/// have the wrong length.
#[test]
fn intentional_difference_b3_ows_trimmed() {
    for (encoding, o, t) in b3_pairs() {
        for m in [
            text_map(&[("b3", &format!(" {TRACE}-{SPAN}-1\t"))]),
            text_map(&[
                ("x-b3-traceid", &format!(" {TRACE}")),
                ("x-b3-spanid", SPAN),
            ]),
        ] {
            let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
            assert_eq!(
                sc(&a).unwrap().trace_id,
                TraceId::from(TRACE_ID),
                "[{encoding}]"
            );
            assert_eq!(sc(&b), None, "[{encoding}]");
        }
    }
}

/// SPECS.md §3: "a sampling state alone: `b3: 0`, `b3: 1`, `b3: d`" and "no state =
/// deferred (the receiver decides)". When the only ids are deferred, we take the decision
/// the request did carry (a sampling-only `b3`, or an agreeing format); the B3 crate stays
/// deferred (not sampled).
#[test]
fn intentional_difference_b3_deferred_resolved_by_other_header() {
    for (encoding, o, t) in b3_pairs() {
        // `b3: 1` (sampling only) + deferred multi ids.
        let m = text_map(&[("b3", "1"), ("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        assert!(sc(&a).unwrap().sampled, "[{encoding}]");
        assert_eq!(a.mesh().unwrap().sampling(), Some(SamplingState::Accept));
        assert!(!sc(&b).unwrap().sampled, "[{encoding}]");
        assert_eq!(flags(&b), 0x02);
        // Deferred single + the same ids in multi with a decision.
        let m = text_map(&[
            ("b3", &format!("{TRACE}-{SPAN}")),
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        assert!(sc(&a).unwrap().sampled, "[{encoding}]");
        assert!(!sc(&b).unwrap().sampled, "[{encoding}]");
    }
}

// ---------------------------------------------------------------------------------------------
// Generated valid inputs
// ---------------------------------------------------------------------------------------------

fn tracestate_value() -> impl Strategy<Value = String> {
    // Printable ASCII without `,` and `=`, not ending in a space, at least one character.
    "[ -+--<>-~]{0,30}[!-+--<>-~]"
}

fn tracestate() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((tracestate_key(), tracestate_value()), 0..8).prop_map(|kvs| {
        let mut seen = std::collections::HashSet::new();
        kvs.into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect()
    })
}

/// An HTTP token without `%` (the SDK percent-decodes keys: see the intentional difference).
fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9!#$&'*+.^_`|~-]{1,12}"
}

/// A baggage value both implementations decode the same way and inject the same way: no
/// `=`, `%` or `\` (see the intentional differences), no whitespace at the ends.
fn common_baggage_value() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| {
        s.chars()
            .filter(|c| !matches!(c, '=' | '%' | '\\'))
            .collect::<String>()
            .trim()
            .to_owned()
    })
}

fn encode_value(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn property() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z]{1,5}",
        "[a-z]{1,5}=[a-z0-9]{1,5}",
        "[a-z]{1,5};[a-z]{1,5}=[a-z0-9]{1,5}",
    ]
}

proptest! {
    // No failure persistence: a failing case is printed, not saved to a file in `tests/`.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    })]

    #[test]
    fn generated_traceparent_agrees(
        trace_id in 1u128..,
        span_id in 1u64..,
        sampled in any::<bool>(),
        ts in tracestate(),
        version in prop_oneof![Just(0u8), 1u8..=0xfe],
    ) {
        let (o, t) = (ours_tc(), TraceContextPropagator::new());
        let value = format!("{version:02x}-{trace_id:032x}-{span_id:016x}-{:02x}", u8::from(sampled));
        let ts_header = ts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let m = text_map(&[("traceparent", &value), ("tracestate", &ts_header)]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        prop_assert_eq!(sc(&a), sc(&b));
        prop_assert_eq!(flags(&a), flags(&b));
        prop_assert_eq!(trace_state(&a), trace_state(&b));
        prop_assert_eq!(trace_state(&a), ts_header.clone());
        // Inject of the same context: same traceparent, same non-empty tracestate.
        let (ia, ib) = (inject_ours(&o, &a), inject_theirs(&t, &a));
        prop_assert_eq!(header(&ia, "traceparent"), header(&ib, "traceparent"));
        if !ts.is_empty() {
            prop_assert_eq!(header(&ia, "tracestate"), header(&ib, "tracestate"));
        }
    }

    #[test]
    fn generated_baggage_agrees(
        members in prop::collection::vec((token(), common_baggage_value(), property()), 0..10),
        ows in any::<bool>(),
    ) {
        let (o, t) = (ours_baggage(), BaggagePropagator::new());
        let sep = if ows { " , " } else { "," };
        let value = members
            .iter()
            .map(|(k, v, p)| {
                let p = if p.is_empty() { String::new() } else { format!(";{p}") };
                format!("{k}={}{p}", encode_value(v))
            })
            .collect::<Vec<_>>()
            .join(sep);
        prop_assume!(value.len() <= 8192);
        let m = text_map(&[("baggage", &value)]);
        let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
        prop_assert_eq!(baggage_vec(&a), baggage_vec(&b));
        let (ia, ib) = (inject_ours(&o, &a), inject_theirs(&t, &a));
        // Intentional difference: ours forwards unchanged baggage as it came (order, spaces
        // and all); the SDK re-encodes it in hash order. Both carry the same members.
        if !members.is_empty() {
            prop_assert_eq!(header(&ia, "baggage"), Some(value.clone()));
        }
        let reread = |h: Option<String>| {
            baggage_vec(&extract_ours(&o, &text_map(&[("baggage", h.as_deref().unwrap_or(""))])))
        };
        prop_assert_eq!(reread(header(&ia, "baggage")), reread(header(&ib, "baggage")));
    }

    #[test]
    fn generated_b3_agrees(
        trace_id in 1u128..,
        narrow in any::<bool>(),
        span_id in 1u64..,
        parent in prop::option::of(any::<u64>()),
        state in prop::sample::select(vec!["0", "1", ""]),
        single in any::<bool>(),
    ) {
        let trace = if narrow {
            let id = (trace_id as u64).max(1);
            format!("{id:016x}")
        } else {
            format!("{trace_id:032x}")
        };
        let span = format!("{span_id:016x}");
        let m = if single {
            let mut v = format!("{trace}-{span}");
            if !state.is_empty() {
                v.push_str(&format!("-{state}"));
                if let Some(p) = parent {
                    v.push_str(&format!("-{p:016x}"));
                }
            }
            text_map(&[("b3", &v)])
        } else {
            let mut pairs = vec![("x-b3-traceid", trace.clone()), ("x-b3-spanid", span.clone())];
            if !state.is_empty() {
                pairs.push(("x-b3-sampled", state.to_owned()));
            }
            if let Some(p) = parent {
                pairs.push(("x-b3-parentspanid", format!("{p:016x}")));
            }
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (*a, b.as_str())).collect();
            text_map(&pairs)
        };
        for (encoding, o, t) in b3_pairs() {
            let (a, b) = (extract_ours(&o, &m), extract_theirs(&t, &m));
            prop_assert_eq!(sc(&a), sc(&b), "[{}] {:?}", encoding, m);
            // Re-inject: identical for 128-bit ids (64-bit ids: see the intentional difference).
            if !narrow {
                prop_assert_eq!(
                    sorted_headers(&inject_ours(&o, &a)),
                    restricted(&inject_theirs(&t, &b), &o),
                    "[{}] {:?}", encoding, m
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Summary of intentional differences (each one verified by the test named in the first column)
// ---------------------------------------------------------------------------------------------
//
// SDK = opentelemetry_sdk 0.33 TraceContextPropagator / BaggagePropagator;
// B3 crate = opentelemetry-propagator-b3 0.33 Propagator.
//
// | intentional_difference_…          | meshtrace                                   | reference                                        | SPECS.md line |
// |-----------------------------------|---------------------------------------------|--------------------------------------------------|---------------|
// | random_flag_kept                  | keeps flag 0x02 on extract and inject       | SDK clears every bit but 0x01                    | §1 "Flags: `0x01` sampled, `0x02` random (Level 2). A received random bit is re-injected as received." |
// | random_flag_set_on_local_root     | local root span goes out with 0x02          | SDK never sets 0x02                              | §1 "When this process starts a new trace its trace-id is random, so it sets the random bit." |
// | no_empty_tracestate               | no `tracestate` when the state is empty     | SDK writes `tracestate: ""`                      | §1 "Never inject an empty `tracestate` header." |
// | traceparent_v00_trailing_dash     | `00-…-01-` rejected                         | SDK accepts (split_terminator)                   | §1 "Version `00` must be exactly 55 characters: anything after the flags … makes it invalid." |
// | traceparent_field_syntax          | short fields, `+` sign, uppercase version   | SDK accepts all three                            | §1 "lowercase hex only"; "Version `00` must be exactly 55 characters" |
// |                                   | rejected                                    |                                                  |               |
// | duplicate_traceparent             | two lines = invalid, no context             | SDK reads the first line                         | §1 "Two `traceparent` headers … is invalid" |
// | tracestate_lines_combined         | all `tracestate` lines combined             | SDK reads the first line                         | §1 "combined across all header lines in order" |
// | tracestate_over_32_members        | whole tracestate discarded                  | SDK keeps the first 32                           | §1 "More than 32 members, or any invalid member, discards the whole tracestate" |
// | tracestate_over_4096_bytes        | whole tracestate discarded unread           | SDK keeps it (32 members of any size)            | §8 "no input may cost much more than a limit-sized one" (W3C: propagate at least 512) |
// | tracestate_member_validation      | `k==v`, `k=`, tab in value:                 | SDK accepts (`k==v` read as `k=v`)               | §1 "Values: 0..256 printable ASCII without `,` and `=` …" (W3C: 1..256) |
// |                                   | whole tracestate discarded                  |                                                  |               |
// | tracestate_duplicate_keys         | list kept, later duplicates dropped         | SDK keeps every occurrence                       | §1 "Duplicate keys: keep the list; the first occurrence of a key stays" |
// | tracestate_level2_keys_forwarded  | unchanged list with `foo@@bar` goes out     | SDK drops the whole list                         | §1 "Such a list is still inherited … it goes out as received" |
// |                                   | whole; SpanContext holds the rest           |                                                  |               |
// | baggage_lines_combined            | all `baggage` lines combined                | SDK reads the first line                         | §2 "combined across all header lines" |
// | baggage_value_with_equals         | `k=a=b` -> `a=b`                            | SDK -> `a`                                       | §2 "a value may contain `=`" |
// | baggage_key_not_percent_decoded   | key `a%41` kept as is                       | SDK decodes the key to `aA`                      | §2 "Keys are HTTP tokens; values are percent-encoded" |
// | baggage_invalid_value_octets      | raw space/`"`/`\` in a value: member dropped| SDK keeps the member                             | §2 "An invalid member is dropped on its own" |
// | baggage_invalid_utf8_replaced     | `%FF` -> U+FFFD                             | SDK drops the member                             | §2 "decoding yields UTF-8 (invalid sequences become U+FFFD)" |
// | baggage_oversize_header           | header > 8192 B: whole members kept up to   | SDK drops the whole header                       | §2 "Must propagate everything up to 64 members and 8192 bytes … drop whole members" |
// |                                   | the limit                                   |                                                  |               |
// | baggage_properties_verbatim       | properties kept verbatim (`p=%41`)          | SDK percent-decodes them (`p=A`)                 | §2 "Properties after `;` are kept." |
// | baggage_inject_encoding           | encodes `%` and `\`, leaves `=`, no trim    | SDK leaves `%`/`\`, encodes `=`, trims values    | §2 "(`%` itself is encoded)"; "On inject … extract(inject(b)) == b" |
// | b3_single_encoding_writes_only_b3 | `B3Single` writes only `b3`                 | crate `SingleHeader` also writes `x-b3-*`        | §3 "OTEL's default B3 inject encoding is single; Istio's docs list the multi headers." |
// | b3_single_legacy_sampling_state   | `b3: …-true` / `…-false` rejected           | crate accepts `-false`, and `-true` when multi   | §3 "SamplingState: `1` accept, `0` deny, `d` debug" |
// | b3_nothing_injected_without_context | nothing written                           | crate writes `b3: 0` / `x-b3-sampled: 0`         | §6 "With no valid span context it writes no trace header and no sampling decision" |
// | b3_64bit_trace_id_kept_narrow     | 16-hex trace id re-injected as 16 hex       | crate pads to 32                                 | §3 "A 64-bit trace id that came in as 16 hex goes out as 16 hex in B3 headers" |
// | b3_single_debug                   | `-d`: sampled + debug, re-injected as debug | crate: private flag 0x04 WITHOUT sampled;        | §3 "Debug must be kept, re-propagated as debug, and must set sampled." |
// |                                   |                                             | multi-only encoding rejects `d`                  |               |
// | b3_deferred_vs_random_flag        | deferred kept in MeshContext (flags 0x00);  | crate marks deferred with 0x02 (= W3C random),   | §3 "A deferred decision must not silently become 'not sampled'"; §1 "`0x02` random" |
// |                                   | 0x02 means random, sampled still written    | so a random+sampled context goes out deferred    |               |
// | b3_legacy_sampled_values          | `x-b3-sampled` true/false in any case       | crate: `true` only for multi-only encoding, no   | §3 "legacy `true`/`false`, any case, accepted on extract" |
// |                                   |                                             | other case; refusal drops the whole context      |               |
// | b3_unknown_sampled_value          | any other `x-b3-sampled` (`yes`, `10`, ``,  | crate agrees except on `d`, which it reads as    | §3 "Any other `x-b3-sampled` value, the empty one included, makes the multi-header |
// |                                   | `d`): multi context invalid                 | its private debug flag (single/both encodings)   | context invalid" |
// | b3_flags_zero_ignored             | `x-b3-flags: 0` ignored                     | crate: 0 = not sampled, overriding sampled 1     | §3 "`x-b3-flags: 1` = debug (any other value ignored)" |
// | b3_invalid_multi_parent           | bad `x-b3-parentspanid`: multi rejected     | crate checks it and ignores the result           | §3 "SpanId / ParentSpanId: 16 lowercase hex … invalid" |
// | b3_single_field_syntax            | trailing `-` (empty field), `+` sign rejected | crate accepts (split_terminator, from_str_radix) | §3 "Uppercase, wrong length, non-hex, empty fields, more than 4 fields: invalid." |
// | b3_ows_trimmed                    | spaces/tabs around B3 values trimmed        | crate rejects                                    | no §3 line; §1 "Spaces and tabs around the whole value are allowed" (traceparent) and RFC 9110 §5.5 |
// | b3_deferred_resolved_by_other_header | deferred ids take the decision of `b3: 1` | crate stays deferred (not sampled)               | §3 "a sampling state alone: `b3: 0`, `b3: 1`, `b3: d`"; §6 "Several formats present and |
// |                                   | or of agreeing ids in the other B3 format   |                                                  | agreeing: one context." |
