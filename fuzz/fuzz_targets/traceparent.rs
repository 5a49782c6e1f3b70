//! `traceparent` and `tracestate` (SPECS §1): any bytes give a value or a typed error, never
//! a panic, within the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshtrace::propagation::traceparent::{parse_traceparent, parse_tracestate};

fuzz_target!(|data: &[u8]| {
    let _ = parse_traceparent(data);
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let _ = parse_tracestate(&lines);
});
