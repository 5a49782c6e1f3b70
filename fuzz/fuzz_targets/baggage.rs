//! `baggage` (SPECS §2): any lines parse within the limits, and what parses is encoded back
//! into a header that parses to the same entries.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshtrace::propagation::baggage::{encode_baggage, parse_baggage};

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let parsed = parse_baggage(&lines);
    if let Some(encoded) = encode_baggage(&parsed.baggage) {
        assert!(!encoded.contains(['\r', '\n']), "{encoded:?}");
        let again = parse_baggage(&[encoded.as_bytes()]);
        let entries = |b: &opentelemetry::baggage::Baggage| {
            let mut v: Vec<(String, String)> = b
                .iter()
                .map(|(k, (v, _))| (k.to_string(), v.to_string()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(entries(&again.baggage), entries(&parsed.baggage), "{encoded:?}");
    }
});
