//! What a propagator extracted, in forms two contexts can be compared by, and generators
//! of valid propagation values for the property tests.

use meshtrace::MeshContextExt;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::Context;
use proptest::prelude::*;

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

/// The baggage of `cx` as [`baggage_entries`].
pub fn baggage_vec(cx: &Context) -> Vec<(String, String, String)> {
    baggage_entries(cx.baggage())
}

/// The extraction errors meshtrace recorded in `cx`, as their `Debug` text.
pub fn errors_of(cx: &Context) -> Vec<String> {
    cx.mesh()
        .map(|m| m.errors().iter().map(|e| format!("{e:?}")).collect())
        .unwrap_or_default()
}

/// A valid `tracestate` key: simple or multi-tenant (`tenant@system`).
pub fn tracestate_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9_*/-]{0,20}",
        "[a-z0-9][a-z0-9_*/-]{0,10}@[a-z0-9][a-z0-9_*/-]{0,12}",
    ]
}
