//! The whole extract from an arbitrary header set (SPECS §6, §8): lines `name: value`, any
//! that `http` accepts. The `HeaderMap` fast path and the generic `Extractor` path must settle
//! on the same context, inject the same headers from it, and what goes out stays within the
//! inject budget. Every format is on.
//!
//! The two paths are compared only when every value is visible ASCII: an `Extractor` (as
//! `opentelemetry-http`'s `HeaderExtractor` does) gives `&str`s, so the generic path cannot
//! see a line that is not, while the fast path sees every line. (Two `traceparent` lines of
//! which one is not text are invalid to the fast path, one valid line to the generic path.)
#![no_main]
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use meshtrace::{Formats, MeshPropagator};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use std::sync::OnceLock;

/// The generic path, through a plain `Extractor` over the same map.
struct Generic<'a>(&'a HeaderMap);

impl Extractor for Generic<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<&str> = self.0.get_all(key).iter().filter_map(|v| v.to_str().ok()).collect();
        (!all.is_empty()).then_some(all)
    }
}

fn propagator() -> &'static MeshPropagator {
    static P: OnceLock<MeshPropagator> = OnceLock::new();
    P.get_or_init(|| {
        MeshPropagator::builder()
            .extract(Formats::ALL)
            .inject(Formats::ALL)
            .build()
            .expect("every format")
    })
}

fn summary(cx: &Context) -> String {
    let span = cx.span();
    let sc = span.span_context();
    let mut baggage: Vec<String> = cx
        .baggage()
        .iter()
        .map(|(k, (v, m))| format!("{k}={v};{}", m.as_str()))
        .collect();
    baggage.sort();
    format!(
        "{} {} {:?} {} {} {baggage:?}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags(),
        sc.is_remote(),
        sc.trace_state().header()
    )
}

/// The injected headers, each re-encoded `baggage` line as its sorted members: baggage the
/// application changed (here: invalid members dropped) is written from opentelemetry's
/// `Baggage`, a hash map whose order is its own.
fn canonical(out: &HeaderMap) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = out
        .iter()
        .map(|(n, value)| {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let parts = if n == "baggage" {
                let mut members: Vec<String> = text.split(',').map(str::to_owned).collect();
                members.sort();
                members
            } else {
                vec![text]
            };
            (n.as_str().to_owned(), parts)
        })
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    let p = propagator();
    let fast = p.extract_from_headers(&headers);
    let generic = p.extract(&Generic(&headers));
    let (mut out_fast, mut out_generic) = (HeaderMap::new(), HeaderMap::new());
    p.inject_into_headers(&fast, &mut out_fast);
    p.inject_into_headers(&generic, &mut out_generic);
    for out in [&out_fast, &out_generic] {
        let size: usize = out.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        assert!(size <= 16 * 1024, "{size} bytes injected from {headers:?}");
    }
    if headers.values().all(|v| v.to_str().is_ok()) {
        assert_eq!(summary(&fast), summary(&generic), "{headers:?}");
        assert_eq!(canonical(&out_fast), canonical(&out_generic), "{headers:?}");
    }
});
