//! OTLP log export does not feed on itself: the events of the crates an export runs on (h2,
//! tonic, hyper, reqwest, tower, opentelemetry) are printed as `RUST_LOG` says, but never
//! become records, or each export would log records to export. Installed globally, as
//! `init()` does, so that every thread logs to the subscriber (the exporter's included): the
//! one global install of this binary.
#![cfg(feature = "otlp")]

mod support;

use support::logs::Captured;
use support::otlp::service::{builder, collector, env};
use support::otlp::Transport;
use support::telemetry::runtime;

/// The crates an export runs on.
const EXPORTER_CRATES: [&str; 6] = ["hyper", "h2", "tonic", "tower", "reqwest", "opentelemetry"];

fn of_exporter_crates(target: &str) -> bool {
    EXPORTER_CRATES.iter().any(|c| {
        target.strip_prefix(c).is_some_and(|rest| {
            rest.is_empty()
                || rest.starts_with("::")
                || rest.starts_with('_')
                || rest.starts_with('-')
        })
    })
}

#[test]
fn the_exporters_own_events_are_printed_but_never_exported() {
    let (_collector, receiver) = collector(Transport::Grpc);
    let mut env = env("orders", Transport::Grpc, receiver.endpoint());
    env.insert("OTEL_LOGS_EXPORTER", "otlp".into());
    let logs = Captured::default();
    // The gRPC exporter's channel lives on this runtime; its threads log to the global
    // subscriber.
    let app = runtime("app", 2, None);
    let telemetry = {
        let _entered = app.enter();
        builder(&env)
            .logs(Some("trace"))
            .log_writer(logs.clone())
            .build()
            .expect("build")
    };
    let logger = telemetry.logger_provider().cloned().expect("logs exported");
    let guard = telemetry.install().expect("the one install of this binary");

    tracing::info_span!("job").in_scope(|| tracing::info!("first batch"));
    // The first export logs its frames; were they exported, the second export would carry
    // them.
    logger.force_flush().expect("first export");
    tracing::info_span!("job").in_scope(|| tracing::info!("second batch"));
    guard.shutdown().expect("second export");

    let records = receiver.logs();
    let bodies: Vec<_> = records.iter().filter_map(|r| r.body.as_str()).collect();
    assert!(
        bodies.contains(&"first batch") && bodies.contains(&"second batch"),
        "{bodies:?}"
    );
    let leaked: Vec<_> = records
        .iter()
        .filter(|r| of_exporter_crates(&r.scope_name))
        .collect();
    assert!(
        leaked.is_empty(),
        "the exporter's own events exported: {leaked:#?}"
    );
    // They were there to leak: tonic's HTTP/2 client logs the frames it sends.
    let lines = logs.lines();
    assert!(lines.iter().any(|l| l.contains(" h2::")), "{lines:#?}");
}

#[test]
fn exporter_crates_are_told_by_their_targets() {
    for target in [
        "h2",
        "h2::codec",
        "hyper_util::client",
        "opentelemetry_sdk",
        "opentelemetry-otlp",
    ] {
        assert!(of_exporter_crates(target), "{target}");
    }
    for target in ["h2o", "orders", "meshtrace::server", "towers"] {
        assert!(!of_exporter_crates(target), "{target}");
    }
}
