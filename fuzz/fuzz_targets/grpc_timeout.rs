//! `grpc-timeout` and `x-envoy-expected-rq-timeout-ms`: any value gives a duration or a
//! typed error, and a parsed gRPC timeout written back parses again, no longer than it was.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshtrace::mesh::deadline::{format_grpc_timeout, parse_expected_rq_timeout_ms, parse_grpc_timeout};

fuzz_target!(|data: &[u8]| {
    let _ = parse_expected_rq_timeout_ms(data);
    if let Ok(d) = parse_grpc_timeout(data) {
        let written = format_grpc_timeout(d);
        let again = parse_grpc_timeout(written.as_bytes()).expect("what we write parses");
        assert!(again <= d || again - d < std::time::Duration::from_secs(1), "{d:?} -> {written} -> {again:?}");
    }
});
