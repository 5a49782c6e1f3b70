//! `init()`'s span extras: by default a span carries none of tracing-opentelemetry's code
//! location, thread and busy/idle attributes; each comes back when switched on, in code or
//! with `MESHTRACE_SPAN_EXTRAS`.
#![cfg(feature = "otlp")]

use meshtrace::export::{SpanExtras, TelemetryBuilder};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use std::collections::BTreeSet;

const EXTRAS: [(&str, &[&str]); 3] = [
    (
        "code_location",
        &["code.file.path", "code.line.number", "code.module.name"],
    ),
    ("threads", &["thread.id", "thread.name"]),
    ("busy_idle", &["busy_ns", "idle_ns"]),
];

/// The attribute keys of one span opened (and entered) under telemetry from `builder`.
fn keys_of_a_span(builder: TelemetryBuilder) -> BTreeSet<String> {
    let exporter = InMemorySpanExporter::default();
    let telemetry = builder
        .otlp(None)
        .logs(None)
        .with_span_exporter(exporter.clone())
        .build()
        .expect("telemetry");
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        let span = tracing::info_span!("work", app.order = 7);
        span.in_scope(|| {});
    });
    telemetry
        .provider()
        .expect("the SDK is enabled")
        .force_flush()
        .expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 1, "{spans:?}");
    spans[0]
        .attributes
        .iter()
        .map(|kv| kv.key.to_string())
        .collect()
}

fn extras_in(keys: &BTreeSet<String>) -> Vec<&'static str> {
    EXTRAS
        .iter()
        .flat_map(|(_, attrs)| attrs.iter().copied())
        .filter(|a| keys.contains(*a))
        .collect()
}

#[test]
fn no_extras_by_default() {
    let keys = keys_of_a_span(TelemetryBuilder::new());
    assert!(keys.contains("app.order"), "{keys:?}");
    assert_eq!(extras_in(&keys), Vec::<&str>::new(), "{keys:?}");
}

#[test]
fn each_extra_switched_on_alone() {
    for (name, attrs) in EXTRAS {
        let env = |var: &str| (var == "MESHTRACE_SPAN_EXTRAS").then(|| name.to_owned());
        let keys = keys_of_a_span(TelemetryBuilder::from_env_source(env).expect("valid"));
        assert_eq!(extras_in(&keys), attrs, "{name}: {keys:?}");
    }
}

#[test]
fn all_extras_in_code() {
    let keys = keys_of_a_span(TelemetryBuilder::new().span_extras(SpanExtras::ALL));
    let all: Vec<&str> = EXTRAS.iter().flat_map(|(_, a)| a.iter().copied()).collect();
    assert_eq!(extras_in(&keys), all, "{keys:?}");
}
