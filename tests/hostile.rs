//! Hostile header sets (SPECS.md section 8): no input costs much more than a limit-sized
//! one, and nothing received is forwarded in larger amounts than the limits allow.
//!
//! Costs are compared in the same test, never to an absolute time: the median of several
//! runs of a hostile set against the median of the limit-sized input, interleaved so that a
//! busy machine slows both alike, with a generous bound.

mod support;

use http::{HeaderMap, HeaderName, HeaderValue};
use meshtrace::propagation::baggage::{MAX_BYTES, MAX_MEMBERS};
use meshtrace::propagation::passthrough::{
    line_len, DEFAULT_MAX_LEN, MAX_INJECTED_BYTES, PASS_THROUGH_BUDGET,
};
use meshtrace::propagation::traceparent::{MAX_TRACESTATE_BYTES, MAX_TRACESTATE_MEMBERS};
use meshtrace::{B3Encoding, BuildError, Format, Formats, MeshContextExt, MeshPropagator};
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_http::HeaderInjector;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;
use support::headers::trace_headers;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
/// A hostile set may cost at most this many times the limit-sized input.
const BOUND: f64 = 5.0;
/// Runs per measurement; the median is compared.
const RUNS: usize = 15;
/// Lines of one header in the "many lines" sets.
const LINES: usize = 10_000;

fn propagator() -> MeshPropagator {
    MeshPropagator::builder_istio()
        .b3_inject(B3Encoding::Both)
        .build()
        .unwrap()
}

/// (name, value) lines, in order.
type Set = Vec<(String, String)>;

fn one(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// The largest input the limits let through whole: 32 tracestate members in 4095 bytes,
/// 64 baggage members in 8191 bytes (percent-encoded, with properties), every B3 header,
/// and both pass-through headers at their 512-byte bound.
fn limit_sized() -> Set {
    let tracestate = (0..MAX_TRACESTATE_MEMBERS)
        .map(|i| format!("k{i:02}={}", "v".repeat(123)))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(tracestate.len(), MAX_TRACESTATE_BYTES - 1);
    let baggage = (0..MAX_MEMBERS)
        .map(|i| format!("k{i:02}={}abcd;p=1", "a%20b".repeat(23)))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(baggage.len(), MAX_BYTES - 1);
    vec![
        one("traceparent", TRACEPARENT),
        one("tracestate", tracestate),
        one("baggage", baggage),
        one("b3", format!("{TRACE}-{SPAN}-1-00000000000000cd")),
        one("x-b3-traceid", TRACE),
        one("x-b3-spanid", SPAN),
        one("x-b3-parentspanid", "00000000000000cd"),
        one("x-b3-sampled", "1"),
        one("x-b3-flags", "1"),
        one("x-request-id", "r".repeat(DEFAULT_MAX_LEN)),
        one("x-ot-span-context", "o".repeat(DEFAULT_MAX_LEN)),
    ]
}

/// A valid value for a header we read, as one line of a many-lines set.
fn valid_line(name: &str, i: usize) -> String {
    match name {
        "traceparent" => TRACEPARENT.to_owned(),
        "tracestate" => format!("k{i}=v{i}"),
        "baggage" => format!("k{i}=v{i}"),
        "b3" => format!("{TRACE}-{SPAN}-1"),
        "x-b3-traceid" => TRACE.to_owned(),
        "x-b3-spanid" | "x-b3-parentspanid" => SPAN.to_owned(),
        "x-b3-sampled" | "x-b3-flags" => "1".to_owned(),
        _ => format!("id-{i}"),
    }
}

/// Every hostile set, named.
fn hostile_sets() -> Vec<(String, Set)> {
    let mut sets = vec![
        (
            "1 MB baggage header".to_owned(),
            vec![one("baggage", members(1 << 20))],
        ),
        (
            "90 KB percent-encoded baggage value".to_owned(),
            vec![one("baggage", format!("k={}", "%41".repeat(30_000)))],
        ),
        (
            "baggage member with 5,000 properties".to_owned(),
            vec![one(
                "baggage",
                format!(
                    "k=v;{}",
                    (0..5000)
                        .map(|i| format!("p{i}=x"))
                        .collect::<Vec<_>>()
                        .join(";")
                ),
            )],
        ),
        (
            "baggage of 8 KB members, then 1 MB of members".to_owned(),
            vec![
                one("baggage", members(8000)),
                one("baggage", members(1 << 20)),
            ],
        ),
        (
            "1 MB tracestate header".to_owned(),
            vec![
                one("traceparent", TRACEPARENT),
                one("tracestate", members(1 << 20)),
            ],
        ),
        (
            "1 MB of empty tracestate members".to_owned(),
            vec![
                one("traceparent", TRACEPARENT),
                one("tracestate", ",".repeat(1 << 20)),
            ],
        ),
    ];
    for name in trace_headers() {
        let lines: Set = (0..LINES).map(|i| one(name, valid_line(name, i))).collect();
        let mut set = lines;
        if name == "tracestate" {
            set.push(one("traceparent", TRACEPARENT));
        }
        sets.push((format!("{LINES} lines of {name}"), set));
    }
    let everything: Set = trace_headers()
        .into_iter()
        .flat_map(|name| (0..LINES).map(move |i| one(name, valid_line(name, i))))
        .collect();
    sets.push((format!("{LINES} lines of every header at once"), everything));
    sets
}

/// `k{i}=v{i}` members joined by commas, about `len` bytes.
fn members(len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("k{i}=v{i}"));
        i += 1;
    }
    out
}

fn header_map(set: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in set {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// A carrier for the generic path that costs only the lines it returns: unlike
/// `HeaderExtractor`, it does not check every byte of a value, so what is measured is the
/// propagator.
struct LinesCarrier(HashMap<String, Vec<String>>);

impl LinesCarrier {
    fn new(set: &[(String, String)]) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (n, v) in set {
            m.entry(n.clone()).or_default().push(v.clone());
        }
        LinesCarrier(m)
    }
}

impl Extractor for LinesCarrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.first()).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        self.0
            .get(key)
            .map(|v| v.iter().map(String::as_str).collect())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Medians of `base` and `hostile`, measured in turn.
fn medians(base: &mut dyn FnMut(), hostile: &mut dyn FnMut()) -> (f64, f64) {
    let (mut b, mut h) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        base();
        b.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        hostile();
        h.push(t.elapsed().as_secs_f64());
    }
    (median(b), median(h))
}

#[test]
fn hostile_sets_cost_about_a_limit_sized_input() {
    let p = propagator();
    let empty = Context::new();
    let base_map = header_map(&limit_sized());
    let base_carrier = LinesCarrier::new(&limit_sized());
    let mut failures = Vec::new();
    for (what, set) in hostile_sets() {
        let map = header_map(&set);
        let carrier = LinesCarrier::new(&set);
        let (b, h) = medians(
            &mut || {
                drop(black_box(
                    p.extract_from_headers_with_context(&empty, &base_map),
                ))
            },
            &mut || drop(black_box(p.extract_from_headers_with_context(&empty, &map))),
        );
        println!("HeaderMap  {what}: {:.2}x the limit-sized input", h / b);
        if h > BOUND * b {
            failures.push(format!("HeaderMap {what}: {:.1}x", h / b));
        }
        let (b, h) = medians(
            &mut || drop(black_box(p.extract_with_context(&empty, &base_carrier))),
            &mut || drop(black_box(p.extract_with_context(&empty, &carrier))),
        );
        println!("Extractor  {what}: {:.2}x the limit-sized input", h / b);
        if h > BOUND * b {
            failures.push(format!("Extractor {what}: {:.1}x", h / b));
        }
    }
    assert!(
        failures.is_empty(),
        "over {BOUND}x a limit-sized input: {failures:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// What goes out: at most the limits
// ---------------------------------------------------------------------------------------------

/// The injected headers as (name, value) lines, from either inject path.
fn injected(p: &MeshPropagator, cx: &Context, header_map_path: bool) -> Vec<(String, String)> {
    let mut h = HeaderMap::new();
    if header_map_path {
        p.inject_into_headers(cx, &mut h);
    } else {
        p.inject_context(cx, &mut HeaderInjector(&mut h));
    }
    h.iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

/// Checks what one inject wrote against the limits; `Err` names what passed one.
fn within_limits(out: &[(String, String)]) -> Result<usize, String> {
    let mut seen: Vec<&str> = Vec::new();
    for (n, v) in out {
        if seen.contains(&n.as_str()) {
            return Err(format!("{n} written on more than one line"));
        }
        seen.push(n);
        let members = v.split(',').filter(|m| !m.trim().is_empty()).count();
        match n.as_str() {
            "baggage" if members > MAX_MEMBERS || v.len() > MAX_BYTES => {
                return Err(format!("baggage of {members} members, {} bytes", v.len()))
            }
            "tracestate" if members > MAX_TRACESTATE_MEMBERS || v.len() > MAX_TRACESTATE_BYTES => {
                return Err(format!(
                    "tracestate of {members} members, {} bytes",
                    v.len()
                ))
            }
            _ => {}
        }
    }
    let total: usize = out.iter().map(|(n, v)| line_len(n, v.len())).sum();
    if total >= MAX_INJECTED_BYTES {
        return Err(format!("{total} bytes injected"));
    }
    Ok(total)
}

#[test]
fn extract_then_inject_forwards_at_most_the_limits() {
    let p = propagator();
    let mut sets = hostile_sets();
    sets.push(("limit-sized input".to_owned(), limit_sized()));
    for (what, set) in sets {
        let from_map = p.extract_from_headers(&header_map(&set));
        let from_carrier = p.extract(&LinesCarrier::new(&set));
        assert_eq!(
            from_map.mesh(),
            from_carrier.mesh(),
            "{what}: both paths agree"
        );
        for (path, cx) in [("HeaderMap", &from_map), ("Extractor", &from_carrier)] {
            for header_map_path in [true, false] {
                let out = injected(&p, cx, header_map_path);
                if let Err(e) = within_limits(&out) {
                    panic!("{what} ({path}, inject into HeaderMap: {header_map_path}): {e}");
                }
            }
        }
    }
}

#[test]
fn one_pass_through_line_forwarded_and_the_others_reported() {
    let p = propagator();
    let set: Set = (0..LINES)
        .map(|i| one("x-request-id", format!("id-{i}")))
        .collect();
    let cx = p.extract_from_headers(&header_map(&set));
    let mesh = cx.mesh().unwrap();
    let ids: Vec<_> = mesh.pass_through().get_all("x-request-id").collect();
    assert_eq!(ids, ["id-0"]);
    assert_eq!(
        mesh.errors()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>(),
        ["PassThroughRepeated(\"x-request-id\")"]
    );
    let mut out = HeaderMap::new();
    p.inject_into_headers(&cx, &mut out);
    assert_eq!(out.get_all("x-request-id").iter().count(), 1);
}

#[test]
fn baggage_past_the_limits_is_reported_and_not_forwarded_as_received() {
    let p = propagator();
    let cx = p.extract_from_headers(&header_map(&[one("baggage", members(1 << 20))]));
    let errors: Vec<String> = cx
        .mesh()
        .unwrap()
        .errors()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    assert_eq!(errors, ["BaggageOverLimit"]);
    assert_eq!(cx.baggage().len(), MAX_MEMBERS);
    // Spaces and empty members do not count as members, but they count as bytes: a header
    // padded past 8192 bytes is not forwarded as received.
    let padded = format!("a=1{}", " ,".repeat(10_000));
    let cx = p.extract_from_headers(&header_map(&[one("baggage", padded)]));
    let mut out = HeaderMap::new();
    p.inject_into_headers(&cx, &mut out);
    assert_eq!(out["baggage"], "a=1");
}

// ---------------------------------------------------------------------------------------------
// Under 16 KiB by construction
// ---------------------------------------------------------------------------------------------

/// Every format at its largest at once: a debug context (so `x-b3-flags`), the largest
/// tracestate and baggage received, both pass-through headers at their bound.
#[test]
fn the_largest_inject_is_under_16_kib() {
    let p = propagator();
    let cx = p.extract_from_headers(&header_map(&limit_sized()));
    assert!(cx.mesh().unwrap().errors().is_empty());
    for header_map_path in [true, false] {
        let out = injected(&p, &cx, header_map_path);
        let total = within_limits(&out).unwrap();
        assert!(total > 12_000, "the worst case is near the bound: {total}");
        println!("largest inject: {total} bytes of {MAX_INJECTED_BYTES}");
    }
}

/// Every format written at once, Jaeger's `uberctx-*` and OpenTracing's `ot-baggage-*`
/// included: they share the baggage's allotment with the `baggage` line, so the largest
/// inject stays under 16 KiB; without the `baggage` line they get all of it.
#[test]
fn every_format_at_once_stays_under_16_kib() {
    let cx = propagator().extract_from_headers(&header_map(&limit_sized()));
    for inject in [Formats::ALL, Formats::ALL.without(Format::Baggage)] {
        let p = MeshPropagator::builder_istio()
            .inject(inject)
            .b3_inject(B3Encoding::Both)
            .build()
            .unwrap();
        for header_map_path in [true, false] {
            let out = injected(&p, &cx, header_map_path);
            let total = within_limits(&out).unwrap();
            let prefixed = |prefix: &str| out.iter().filter(|(n, _)| n.starts_with(prefix)).count();
            if inject.contains(Format::Baggage) {
                assert!(out.iter().any(|(n, _)| n == "baggage"));
            } else {
                assert!(
                    prefixed("uberctx-") > 0 && prefixed("ot-baggage-") > 0,
                    "{out:?}"
                );
            }
            assert!(total > 12_000, "the worst case is near the bound: {total}");
        }
    }
}

/// A trace state and baggage built in code are held to the limits on the way out too.
#[test]
fn application_built_state_is_held_to_the_limits_on_inject() {
    let p = propagator();
    let long = "v".repeat(256);
    let ts = TraceState::from_key_value((0..32).map(|i| (format!("k{i}"), long.clone()))).unwrap();
    let sc = SpanContext::new(
        TraceId::from(1),
        SpanId::from(1),
        TraceFlags::SAMPLED,
        false,
        ts,
    );
    let mut bag = Baggage::new();
    for i in 0..64 {
        bag.insert(format!("k{i}"), "\u{e9}".repeat(60));
    }
    let cx = Context::new()
        .with_remote_span_context(sc)
        .with_baggage(bag);
    for header_map_path in [true, false] {
        let out = injected(&p, &cx, header_map_path);
        within_limits(&out).unwrap();
        assert!(
            out.iter().all(|(n, _)| n != "tracestate"),
            "over 4096 bytes: not sent"
        );
    }
}

/// The builder refuses pass-through names and lengths that could pass the budget.
#[test]
fn pass_through_budget_is_checked_by_the_builder() {
    let default =
        line_len("x-request-id", DEFAULT_MAX_LEN) + line_len("x-ot-span-context", DEFAULT_MAX_LEN);
    assert!(default <= PASS_THROUGH_BUDGET);
    // The largest bound two names allow, and one byte more.
    let fits =
        (PASS_THROUGH_BUDGET - line_len("x-request-id", 0) - line_len("x-ot-span-context", 0)) / 2;
    let build = |len: usize| {
        MeshPropagator::builder_istio()
            .max_pass_through_len(len)
            .build()
    };
    assert!(build(fits).is_ok());
    assert!(matches!(
        build(fits + 1),
        Err(BuildError::PassThroughBudget(_))
    ));
    // Not injected: no budget to keep.
    let extract_only = MeshPropagator::builder_istio()
        .inject(Format::TraceContext)
        .max_pass_through_len(1 << 20)
        .build();
    assert!(extract_only.is_ok());
    // Each extra name takes its share.
    let many = (0..8).fold(MeshPropagator::builder_istio(), |b, i| {
        b.pass_through_header(format!("x-extra-{i}"))
    });
    assert!(matches!(
        many.build(),
        Err(BuildError::PassThroughBudget(_))
    ));
}
