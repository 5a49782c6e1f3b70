//! B3 single and multi (SPECS §3): any header values give a context or a typed error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshtrace::propagation::b3::{parse_multi, parse_single, MultiHeaders};

fuzz_target!(|data: &[u8]| {
    let _ = parse_single(data);
    // The five multi headers, separated by 0xff (which no header value holds).
    let mut parts = data.split(|b| *b == 0xff);
    let mut next = || parts.next().filter(|p| !p.is_empty());
    let h = MultiHeaders {
        trace_id: next(),
        span_id: next(),
        parent_span_id: next(),
        sampled: next(),
        flags: next(),
    };
    let _ = parse_multi(&h);
});
