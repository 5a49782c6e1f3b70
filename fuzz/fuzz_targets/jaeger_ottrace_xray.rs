//! `uber-trace-id`, the OpenTracing headers and `x-amzn-trace-id` (SPECS §7): any values
//! give a context or a typed error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshtrace::propagation::jaeger::parse_uber_trace_id;
use meshtrace::propagation::ottrace::{parse, OtHeaders};
use meshtrace::propagation::xray::parse_xray;

fuzz_target!(|data: &[u8]| {
    let _ = parse_uber_trace_id(data);
    let _ = parse_xray(data);
    let mut parts = data.split(|b| *b == 0xff);
    let mut next = || parts.next().filter(|p| !p.is_empty());
    let h = OtHeaders {
        trace_id: next(),
        span_id: next(),
        sampled: next(),
    };
    let _ = parse(&h);
});
