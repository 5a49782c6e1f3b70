//! Helpers shared by the test files. Each test file is its own crate and uses only some of
//! them, so unused ones are not an error here.
#![allow(dead_code)]

use opentelemetry::baggage::Baggage;

/// Fails with every collected failure at once, so one run shows all failing vectors.
pub fn report(table: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failing vector(s) in {table}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Baggage as sorted `(key, value, metadata)` triples, for comparing two baggages.
pub fn baggage_entries(b: &Baggage) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = b
        .iter()
        .map(|(k, (v, m))| {
            (
                k.as_str().to_owned(),
                v.as_str().to_owned(),
                m.as_str().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}
