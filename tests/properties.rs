//! Property tests for `MeshPropagator`:
//!
//! 1. any header set (arbitrary names, arbitrary value bytes) extracts and re-injects without
//!    panicking, and nothing injected holds CR, LF or NUL;
//! 2. the `HeaderMap` fast path and the generic `Extractor` path extract the same thing;
//! 3. extract(inject(cx)) == cx for valid span contexts, baggage and pass-through values;
//! 4. baggage limits (SPECS.md §2): up to 64 members / 8192 bytes nothing is lost, beyond
//!    that only whole members are dropped.
//! 5. W3C Level 2 (SPECS.md §1): any valid `tracestate` (Level 2 keys, duplicates, spacing,
//!    several lines) goes out unchanged as its members, first occurrences kept, and the
//!    random flag goes out on a child span the SDK gave no flags.

mod support;

use http::{HeaderMap, HeaderName, HeaderValue};
use meshtrace::{B3Encoding, Format, Formats, MeshContextExt, MeshPropagator};
use opentelemetry::baggage::{Baggage, BaggageExt, BaggageMetadata};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, Key, StringValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use proptest::prelude::*;
use std::collections::HashMap;
use support::propagation::{baggage_vec, tracestate_key};
use support::{headers, propagation};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The propagators under test: the Istio preset, everything in and out with a reversed
/// priority and an extra pass-through name, and a narrow one (W3C only, short pass-through).
fn propagators() -> Vec<MeshPropagator> {
    vec![
        MeshPropagator::istio(),
        MeshPropagator::builder()
            .extract(Formats::ALL)
            .inject(Formats::ALL)
            .b3_inject(B3Encoding::Both)
            .priority([Format::B3Multi, Format::B3Single, Format::TraceContext])
            .pass_through_header("x-client-trace-id")
            .max_pass_through_len(16)
            .build()
            .unwrap(),
        MeshPropagator::builder()
            .extract(Formats::TRACE_CONTEXT | Format::Baggage)
            .inject(Formats::TRACE_CONTEXT | Format::Baggage)
            .build()
            .unwrap(),
    ]
}

fn pass_through_of(cx: &Context) -> Vec<(String, Vec<u8>)> {
    cx.mesh()
        .map(|m| {
            m.pass_through()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

fn header_map(pairs: &[(HeaderName, HeaderValue)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(k.clone(), v.clone());
    }
    m
}

/// What `HeaderExtractor` lets a propagator see of `map`, as a `HeaderMap`: `get` is the
/// first line if it is text (else nothing), `get_all` is the text lines.
fn extractor_view(map: &HeaderMap) -> HeaderMap {
    let mut view = HeaderMap::new();
    for name in map.keys() {
        let mut values = map.get_all(name).iter();
        // The headers both paths read as single-valued (the first line): B3, Jaeger,
        // OpenTracing, and the prefixed baggage headers.
        let single = headers::B3_HEADERS.contains(&name.as_str())
            || (LEGACY_HEADERS.contains(&name.as_str()) && name.as_str() != "x-amzn-trace-id")
            || name.as_str().starts_with("uberctx-")
            || name.as_str().starts_with("ot-baggage-");
        if single {
            if let Some(first) = values.next().filter(|v| v.to_str().is_ok()) {
                view.append(name.clone(), first.clone());
            }
        } else {
            for v in values.filter(|v| v.to_str().is_ok()) {
                view.append(name.clone(), v.clone());
            }
        }
    }
    view
}

/// A value is safe to send when `HeaderValue` takes it as text and it holds no CR, LF or NUL.
fn assert_safe_value(name: &str, v: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(
        !v.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
        "injected {name}: {v:?} holds CR/LF/NUL"
    );
    prop_assert!(
        HeaderValue::from_bytes(v).is_ok_and(|h| h.to_str().is_ok()),
        "injected {name}: {v:?} is not a valid text header value"
    );
    Ok(())
}

/// Injects `cx` through every path and checks every value written.
fn inject_everywhere(p: &MeshPropagator, cx: &Context) -> Result<(), TestCaseError> {
    let mut fast = HeaderMap::new();
    p.inject_into_headers(cx, &mut fast);
    for (k, v) in &fast {
        assert_safe_value(k.as_str(), v.as_bytes())?;
    }
    let mut via_injector = HeaderMap::new();
    p.inject_context(cx, &mut HeaderInjector(&mut via_injector));
    for (k, v) in &via_injector {
        assert_safe_value(k.as_str(), v.as_bytes())?;
    }
    // A plain map sees the raw strings, before `HeaderValue` could refuse anything.
    let mut raw: HashMap<String, String> = HashMap::new();
    p.inject_context(cx, &mut raw);
    for (k, v) in &raw {
        assert_safe_value(k, v.as_bytes())?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies: arbitrary headers
// ---------------------------------------------------------------------------------------------

/// Any byte `HeaderValue::from_bytes` accepts: visible ASCII, space, tab, obs-text.
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        8 => 0x20u8..=0x7e,
        2 => 0x80u8..=0xff,
        1 => Just(b'\t'),
    ]
}

/// `s` as a header name if it is one, else its token characters behind `x`.
fn name_from(s: &str) -> HeaderName {
    HeaderName::from_bytes(s.as_bytes()).unwrap_or_else(|_| {
        let t: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(*c))
            .collect();
        HeaderName::from_bytes(format!("x{t}").as_bytes()).expect("token characters")
    })
}

/// The headers of SPECS.md section 7, with baggage headers of each prefixed format.
const LEGACY_HEADERS: [&str; 9] = [
    "uber-trace-id",
    "uberctx-user",
    "uberctx-",
    "ot-tracer-traceid",
    "ot-tracer-spanid",
    "ot-tracer-sampled",
    "ot-baggage-user",
    "ot-baggage-tier",
    "x-amzn-trace-id",
];

fn header_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        // The known names, mostly.
        6 => prop::sample::select(headers::trace_headers()).prop_map(HeaderName::from_static),
        3 => prop::sample::select(&LEGACY_HEADERS[..]).prop_map(HeaderName::from_static),
        1 => "(uberctx|ot-baggage)-[a-z0-9_-]{0,8}".prop_map(|s| HeaderName::from_bytes(s.as_bytes()).unwrap()),
        // Known names in other cases and near-misses.
        1 => prop::sample::select(headers::trace_headers())
            .prop_flat_map(|n| (Just(n), any::<u64>()))
            .prop_map(|(n, seed)| {
                let s: String = n
                    .chars()
                    .enumerate()
                    .map(|(i, c)| if seed >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                    .collect();
                HeaderName::from_bytes(s.as_bytes()).unwrap()
            }),
        1 => prop::sample::select(vec!["x-b3-", "x-b3-traceidx", "traceparent2", "b3-", "x-request-ids", "x-client-trace-id"])
            .prop_map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap()),
        // Arbitrary strings (any unicode, or ASCII with controls): taken as they are when they
        // make a valid name, else reduced to their token characters.
        2 => any::<String>().prop_map(|s| name_from(&s)),
        2 => "[\\x00-\\x7f]{1,24}".prop_map(|s| name_from(&s)),
        2 => "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,24}".prop_map(|s| HeaderName::from_bytes(s.as_bytes()).unwrap()),
    ]
}

/// Valid values of every known header, to be mutated into near-valid ones.
const TEMPLATES: &[&str] = &[
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
    "a=1, tenant@vendor=x ,,b=2",
    "key1=val1,key2=val%20two;prop=1;flag",
    "k=%E2%9C%93,j=a=b",
    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-00000000000000cd",
    "a3ce929d0e0e4736-00f067aa0ba902b7-d",
    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "a3ce929d0e0e4736",
    "00f067aa0ba902b7",
    "0000000000000000",
    "1",
    "0",
    "d",
    "true",
    "False",
    "3e1c6d4a-5b2f-4c8e-9d7a-1f0b2c3d4e5f",
    "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:3",
    "a3ce929d0e0e4736%3A00f067aa0ba902b7%3A0%3A1",
    "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1",
    "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Lineage=a87bd80c:1|68fd508a:5;Parent=00f067aa0ba902b7;Sampled=?",
    "Jos%C3%A9%20M",
    "",
];

/// A template, mutated: a byte replaced, the value cut short, something appended or inserted.
fn near_valid_value() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(TEMPLATES),
        0u8..6,
        any::<prop::sample::Index>(),
        prop::sample::select(vec![
            b'A', b'F', b'g', b'-', b',', b';', b'=', b' ', b'\t', b'0', b'%', 0x80, 0xff, b'd',
        ]),
        prop::sample::select(vec![
            "",
            "-",
            ",",
            "-01",
            " ",
            "\t",
            ",00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "-1",
            "-d-0000000000000000",
            ";p",
            "%",
            "%F",
            "%FF",
            "=",
            "\u{e9}",
        ]),
    )
        .prop_map(|(template, kind, at, byte, suffix)| {
            let mut v = template.as_bytes().to_vec();
            let i = if v.is_empty() { 0 } else { at.index(v.len()) };
            match kind {
                0 => {}
                1 if !v.is_empty() => v[i] = byte,
                2 => v.truncate(i),
                3 => v.extend_from_slice(suffix.as_bytes()),
                4 => v.insert(i, byte),
                _ => {
                    let mut out = suffix.as_bytes().to_vec();
                    out.extend_from_slice(&v);
                    v = out;
                }
            }
            v
        })
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        3 => near_valid_value(),
        2 => prop::collection::vec(header_byte(), 0..80),
    ]
    .prop_map(|bytes| HeaderValue::from_bytes(&bytes).expect("only bytes HeaderValue accepts"))
}

/// A header set biased towards the trace headers, with repeated names.
fn header_set() -> impl Strategy<Value = Vec<(HeaderName, HeaderValue)>> {
    prop::collection::vec((header_name(), header_value()), 0..12)
}

// ---------------------------------------------------------------------------------------------
// Strategies: valid contexts
// ---------------------------------------------------------------------------------------------

fn trace_state() -> impl Strategy<Value = TraceState> {
    // Values: printable ASCII without `,` and `=`, not ending in a space.
    prop::collection::vec((tracestate_key(), "[ -+--<>-~]{0,20}[!-+--<>-~]"), 0..6).prop_map(
        |kvs| {
            let mut seen = std::collections::HashSet::new();
            let kvs: Vec<_> = kvs
                .into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .collect();
            TraceState::from_key_value(kvs).expect("generated trace state is valid")
        },
    )
}

fn span_context() -> impl Strategy<Value = SpanContext> {
    (
        1u128..,
        1u64..,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        trace_state(),
    )
        .prop_map(|(t, s, sampled, random, remote, ts)| {
            let flags = u8::from(sampled) | if random { 0x02 } else { 0 };
            SpanContext::new(
                TraceId::from(t),
                SpanId::from(s),
                TraceFlags::new(flags),
                remote,
                ts,
            )
        })
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,16}"
}

fn property() -> impl Strategy<Value = String> {
    let prop = prop_oneof![
        token(),
        (token(), "[!#-+--:<-\\[\\]-~]{0,8}").prop_map(|(k, v)| format!("{k}={v}")),
    ];
    prop::collection::vec(prop, 0..3).prop_map(|ps| ps.join(";"))
}

/// Baggage members: token keys, any unicode value, optional properties (`p`, `p=v`, …).
fn baggage() -> impl Strategy<Value = Vec<(String, String, String)>> {
    prop::collection::vec((token(), any::<String>(), property()), 0..8)
}

fn build_baggage(members: &[(String, String, String)]) -> Baggage {
    let mut b = Baggage::new();
    for (k, v, props) in members {
        b.insert_with_metadata(
            Key::from(k.clone()),
            StringValue::from(v.clone()),
            BaggageMetadata::from(props.as_str()),
        );
    }
    b
}

/// Visible ASCII, as pass-through values must be.
fn pass_value() -> impl Strategy<Value = String> {
    "[!-~]{1,64}"
}

// ---------------------------------------------------------------------------------------------
// Strategies: baggage near the limits
// ---------------------------------------------------------------------------------------------

/// The `baggage-octet` set, minus `%`: what may stay unencoded in a value.
fn is_plain_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e) && b != b'%'
}

/// Percent-encodes what must be, and (when `extra` says so) some bytes that need not be,
/// with either case of hex digit.
fn encode_value(v: &str, extra: u64) -> String {
    let mut out = String::new();
    for (i, b) in v.bytes().enumerate() {
        let bit = extra >> (i % 64) & 1 == 1;
        if is_plain_octet(b) && !bit {
            out.push(b as char);
        } else if bit && i % 2 == 0 {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Members with unique keys, sized so that some sets fit the limits and some do not.
fn limit_members() -> impl Strategy<Value = Vec<(String, String, String)>> {
    let small = prop::collection::vec((token(), ".{0,12}", property()), 0..=64);
    let many = prop::collection::vec((token(), "[a-z]{0,4}", property()), 60..=80);
    let big = prop::collection::vec((token(), ".{0,400}", property()), 0..=40);
    prop_oneof![small, many, big].prop_map(|ms| {
        ms.into_iter()
            .enumerate()
            // Unique keys: a prefix that no other member has.
            .map(|(i, (k, v, p))| (format!("k{i}.{k}"), v, p))
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    // No failure persistence: a failing case is printed, not saved to a file in `tests/`.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(512)
    })]

    /// Any header set: no panic on either extract path, on inject of what was extracted, and
    /// nothing injected holds CR, LF or NUL (or anything else `HeaderValue` would refuse).
    #[test]
    fn arbitrary_headers_never_panic_or_inject_unsafe_bytes(headers in header_set()) {
        let map = header_map(&headers);
        for p in propagators() {
            let fast = p.extract_from_headers(&map);
            let generic = p.extract(&HeaderExtractor(&map));
            inject_everywhere(&p, &fast)?;
            inject_everywhere(&p, &generic)?;
        }
    }

    /// The `HeaderMap` fast path and the `Extractor` path agree on every header set.
    ///
    /// The fast path sees every value, text or not (SPECS.md §1: "extraction must see every
    /// value of the header"); `HeaderExtractor` hides values that are not text. So the
    /// property is: the generic path gives what the fast path gives on the values the
    /// extractor exposes — which, when every value is text, is the header set itself.
    #[test]
    fn fast_and_generic_extract_agree(headers in header_set()) {
        let map = header_map(&headers);
        let view = extractor_view(&map);
        for p in propagators() {
            let fast = p.extract_from_headers_with_context(&Context::new(), &view);
            let generic = p.extract_with_context(&Context::new(), &HeaderExtractor(&map));
            let (fs, gs) = (fast.span(), generic.span());
            let (fsc, gsc) = (fs.span_context(), gs.span_context());
            prop_assert_eq!(fsc, gsc, "span context, headers {:?}", map);
            prop_assert_eq!(fsc.trace_state().header(), gsc.trace_state().header());
            prop_assert_eq!(fsc.trace_flags(), gsc.trace_flags());
            prop_assert_eq!(baggage_vec(&fast), baggage_vec(&generic), "baggage, headers {:?}", map);
            prop_assert_eq!(fast.mesh(), generic.mesh(), "mesh context, headers {:?}", map);
        }
    }

    /// extract(inject(cx)) == cx with `MeshPropagator::istio()`, on the `HeaderMap` path and on
    /// the `Injector`/`Extractor` path.
    #[test]
    fn round_trip(
        sc in span_context(),
        members in baggage(),
        request_ids in prop::collection::vec(pass_value(), 0..3),
        ot_contexts in prop::collection::vec(pass_value(), 0..3),
    ) {
        let p = MeshPropagator::istio();
        let bag = build_baggage(&members);
        // Pass-through values enter by extraction.
        let seed = |one_each: bool| {
            let mut m = HeaderMap::new();
            let n = if one_each { 1 } else { usize::MAX };
            for v in request_ids.iter().take(n) {
                m.append("x-request-id", HeaderValue::from_str(v).unwrap());
            }
            for v in ot_contexts.iter().take(n) {
                m.append("x-ot-span-context", HeaderValue::from_str(v).unwrap());
            }
            m
        };
        // The span context as it must come back: a local root gains the random bit (SPECS.md
        // §1, "When this process starts a new trace … it sets the random bit") and every
        // extracted context is remote.
        let expected = SpanContext::new(
            sc.trace_id(),
            sc.span_id(),
            if sc.is_remote() { sc.trace_flags() } else { TraceFlags::new(sc.trace_flags().to_u8() | 0x02) },
            true,
            sc.trace_state().clone(),
        );

        // HeaderMap path; of several lines of one pass-through header only the first is
        // forwarded (SPECS.md section 8).
        let cx0 = p.extract_from_headers_with_context(&Context::new(), &seed(false));
        let cx = cx0.with_remote_span_context(sc.clone()).with_baggage(build_baggage(&members));
        let mut wire = HeaderMap::new();
        p.inject_into_headers(&cx, &mut wire);
        for (name, sent) in [("x-request-id", &request_ids), ("x-ot-span-context", &ot_contexts)] {
            let out: Vec<&[u8]> = wire.get_all(name).iter().map(|v| v.as_bytes()).collect();
            let first: Vec<&[u8]> = sent.iter().take(1).map(|v| v.as_bytes()).collect();
            prop_assert_eq!(out, first, "{} forwarded once, the first line", name);
        }
        let back = p.extract_from_headers_with_context(&Context::new(), &wire);
        prop_assert_eq!(back.span().span_context().clone(), expected.clone(), "HeaderMap path, wire {:?}", wire);
        prop_assert_eq!(baggage_vec(&back), propagation::baggage_entries(&bag), "HeaderMap path, wire {:?}", wire);
        prop_assert_eq!(pass_through_of(&back), pass_through_of(&cx0), "HeaderMap path, wire {:?}", wire);

        // Injector / Extractor path. An `Injector` holds one value per name, so this path is
        // seeded with at most one value per pass-through header.
        let cx0 = p.extract_with_context(&Context::new(), &HeaderExtractor(&seed(true)));
        let cx = cx0.with_remote_span_context(sc.clone()).with_baggage(build_baggage(&members));
        let mut wire = HeaderMap::new();
        p.inject_context(&cx, &mut HeaderInjector(&mut wire));
        let back = p.extract_with_context(&Context::new(), &HeaderExtractor(&wire));
        prop_assert_eq!(back.span().span_context().clone(), expected.clone(), "Injector path, wire {:?}", wire);
        prop_assert_eq!(baggage_vec(&back), propagation::baggage_entries(&bag), "Injector path, wire {:?}", wire);
        prop_assert_eq!(pass_through_of(&back), pass_through_of(&cx0), "Injector path, wire {:?}", wire);
    }

    /// SPECS.md §1: a valid `tracestate` (Level 2 keys, duplicates, whitespace and empty
    /// members, split over lines) is inherited: inject of the extracted context, and of a
    /// child span with the parent's trace state and no flags, sends its members with the
    /// first occurrence of each key, and keeps the random flag received.
    #[test]
    fn level2_tracestate_and_random_flag_inherited(
        members in prop::collection::vec(("[a-z0-9][a-z0-9_*/@-]{0,40}", "[ -+--<>-~]{0,10}[!-+--<>-~]"), 1..20),
        dup in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        split in prop::collection::vec(any::<bool>(), 20),
        ows in prop::collection::vec(prop_oneof![Just(""), Just(" "), Just("\t"), Just(" ,\t")], 20),
        flags in 0u8..4,
    ) {
        let p = MeshPropagator::istio();
        let mut all = members.clone();
        all.extend(dup.iter().map(|i| i.get(&members).clone()));
        let mut lines = vec![String::new()];
        for (i, (k, v)) in all.iter().enumerate() {
            if i > 0 && split[i % split.len()] {
                lines.push(String::new());
            }
            let line = lines.last_mut().unwrap();
            let pad = ows[i % ows.len()];
            line.push_str(&format!("{pad}{k}={v}{pad},"));
        }
        let mut first = Vec::<(String, String)>::new();
        for (k, v) in &all {
            if !first.iter().any(|(f, _)| f == k) {
                first.push((k.clone(), v.clone()));
            }
        }
        let want = first.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let mut h = HeaderMap::new();
        h.insert("traceparent", format!("00-{:032x}-{:016x}-{flags:02x}", 0xabc_u128, 0xdef_u64).parse().unwrap());
        for line in &lines {
            h.append("tracestate", line.parse().unwrap());
        }
        let cx = p.extract_from_headers(&h);
        let parent = cx.span().span_context().clone();
        let child = cx.with_remote_span_context(SpanContext::new(
            parent.trace_id(),
            SpanId::from(0x1234_u64),
            TraceFlags::default(),
            false,
            parent.trace_state().clone(),
        ));
        for (what, cx) in [("extracted", &cx), ("child", &child)] {
            let mut out = HeaderMap::new();
            p.inject_into_headers(cx, &mut out);
            prop_assert_eq!(out.get("tracestate").map(|v| v.to_str().unwrap()), Some(want.as_str()), "{} {:?}", what, lines);
            let tp = out["traceparent"].to_str().unwrap();
            let got_flags = u8::from_str_radix(&tp[53..], 16).unwrap();
            prop_assert_eq!(got_flags & 0x02, flags & 0x02, "{} {}", what, tp);
        }
    }

    /// extract(inject(cx)) == cx for each format of SPECS.md §7 alone, on both paths: the ids
    /// (OpenTracing: the low 64 bits of the trace id), the sampled flag (none of them carries
    /// W3C's random flag or tracestate) and the baggage its headers can carry as they are
    /// (lowercase token keys; OpenTracing values that fit a header unencoded).
    #[test]
    fn round_trip_legacy_formats(
        sc in span_context(),
        members in prop::collection::vec(("[a-z0-9_-]{1,12}", any::<String>(), "[ -~]{1,16}"), 0..8),
    ) {
        for format in [Format::Jaeger, Format::OtTrace, Format::XRay] {
            let p = MeshPropagator::builder().extract(format).inject(format).build().unwrap();
            let mut sent = Baggage::new();
            let mut kept = Vec::new();
            for (k, any_value, ascii_value) in &members {
                let v = match format {
                    Format::OtTrace => ascii_value.trim().to_owned(),
                    _ => any_value.clone(),
                };
                if format != Format::XRay && !v.is_empty() && sent.get(k.as_str()).is_none() {
                    sent.insert(k.clone(), v.clone());
                    kept.push((k.clone(), v, String::new()));
                }
            }
            kept.sort();
            let trace_id = match format {
                Format::OtTrace => TraceId::from(u128::from_be_bytes(sc.trace_id().to_bytes()) & u128::from(u64::MAX)),
                _ => sc.trace_id(),
            };
            let cx = Context::new().with_remote_span_context(sc.clone()).with_baggage(sent);
            let valid = trace_id != TraceId::INVALID;
            let expected = SpanContext::new(
                trace_id,
                sc.span_id(),
                TraceFlags::new(sc.trace_flags().to_u8() & 0x01),
                true,
                TraceState::NONE,
            );
            let mut fast = HeaderMap::new();
            p.inject_into_headers(&cx, &mut fast);
            let mut generic = HeaderMap::new();
            p.inject_context(&cx, &mut HeaderInjector(&mut generic));
            for (path, wire, back) in [
                ("HeaderMap", &fast, p.extract_from_headers_with_context(&Context::new(), &fast)),
                ("Injector", &generic, p.extract_with_context(&Context::new(), &HeaderExtractor(&generic))),
            ] {
                for (k, v) in wire {
                    assert_safe_value(k.as_str(), v.as_bytes())?;
                }
                if valid {
                    prop_assert_eq!(back.span().span_context().clone(), expected.clone(), "{:?} {} path, wire {:?}", format, path, wire);
                }
                prop_assert_eq!(baggage_vec(&back), kept.clone(), "{:?} {} path, wire {:?}", format, path, wire);
            }
        }
    }

    /// SPECS.md §2: "Must propagate everything up to 64 members and 8192 bytes (all baggage
    /// headers together). Beyond that, drop whole members, never part of one."
    ///
    /// The size is that of the members joined with `,` (the combined field value).
    #[test]
    fn baggage_limits(
        members in limit_members(),
        extra in any::<u64>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    ) {
        let p = MeshPropagator::istio();
        let encoded: Vec<String> = members
            .iter()
            .map(|(k, v, props)| {
                let mut m = format!("{k}={}", encode_value(v, extra));
                if !props.is_empty() {
                    m.push(';');
                    m.push_str(props);
                }
                m
            })
            .collect();
        let total = encoded.join(",").len();
        // Split the members over up to three `baggage` lines.
        let mut cut_points: Vec<usize> = cuts.iter().map(|c| c.index(encoded.len() + 1)).collect();
        cut_points.sort_unstable();
        let mut lines = Vec::new();
        let mut start = 0;
        for c in cut_points.into_iter().chain([encoded.len()]) {
            if c > start {
                lines.push(encoded[start..c].join(","));
                start = c;
            }
        }
        let mut map = HeaderMap::new();
        for l in &lines {
            map.append("baggage", HeaderValue::from_str(l).unwrap());
        }
        let mut original: Vec<(String, String, String)> = members.clone();
        original.sort();

        let fast = p.extract_from_headers_with_context(&Context::new(), &map);
        let generic = p.extract_with_context(&Context::new(), &HeaderExtractor(&map));
        let got = baggage_vec(&fast);
        prop_assert_eq!(&got, &baggage_vec(&generic));

        if members.len() <= 64 && total <= 8192 {
            prop_assert_eq!(&got, &original, "within limits ({} members, {} bytes) but lost members", members.len(), total);
        } else {
            prop_assert!(got.len() <= 64);
            for m in &got {
                prop_assert!(original.contains(m), "kept member {:?} is not an original member", m);
            }
        }

        // Inject what was extracted: it fits, so it comes back whole.
        let mut wire = HeaderMap::new();
        p.inject_into_headers(&fast, &mut wire);
        let back = p.extract_from_headers_with_context(&Context::new(), &wire);
        prop_assert_eq!(baggage_vec(&back), got);
    }

    /// Inject side of the limits: any `Baggage` (which holds at most 64 members and 8192
    /// decoded bytes) whose encoding fits goes out whole; one whose encoding does not fit
    /// loses whole members only.
    #[test]
    fn baggage_inject_limits(members in limit_members()) {
        let p = MeshPropagator::istio();
        let b = build_baggage(&members);
        let original = propagation::baggage_entries(&b);
        let cx = Context::new().with_baggage(b);
        let mut wire = HeaderMap::new();
        p.inject_into_headers(&cx, &mut wire);
        let encoded_len = wire.get("baggage").map_or(0, |v| v.len());
        prop_assert!(encoded_len <= 8192, "injected baggage is {} bytes", encoded_len);
        let back = baggage_vec(&p.extract_from_headers_with_context(&Context::new(), &wire));
        let full: usize = original
            .iter()
            .map(|(k, v, m)| {
                k.len() + 1 + encode_value(v, 0).len() + if m.is_empty() { 0 } else { m.len() + 1 }
            })
            .sum::<usize>()
            + original.len().saturating_sub(1);
        if full <= 8192 {
            prop_assert_eq!(&back, &original);
        } else {
            prop_assert!(back.len() < original.len());
            for m in &back {
                prop_assert!(original.contains(m), "member {:?} was altered", m);
            }
        }
    }
}
