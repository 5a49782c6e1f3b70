//! Telemetry for the test binaries: a global tracing subscriber with the OpenTelemetry layer
//! over an in-memory exporter (one per test binary: tests pick their own spans out by trace
//! id), and runtimes whose threads record into a given dispatch.
//!
//! A binary calls one of [`exporter`], [`exporter_with_root_sampler`] and
//! [`foreign_exporter`], never two: each sets the global subscriber.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, TracerProviderBuilder};
use std::sync::OnceLock;
use tokio::runtime::Runtime;
use tracing::Dispatch;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

/// Sets, as the global default, a tracing subscriber with the OpenTelemetry layer exporting
/// through `provider`'s tracer `tracer_name`. INFO and up, as a service would run: hyper and
/// h2 open TRACE-level spans of their own.
pub fn set_global_otel_subscriber(provider: &SdkTracerProvider, tracer_name: &'static str) {
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer(tracer_name)));
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per binary");
}

/// A new in-memory exporter behind a simple processor of `provider`, installed with
/// [`set_global_otel_subscriber`] as tracer `tracer_name`.
fn install(provider: TracerProviderBuilder, tracer_name: &'static str) -> InMemorySpanExporter {
    let exporter = InMemorySpanExporter::default();
    let provider = provider.with_simple_exporter(exporter.clone()).build();
    set_global_otel_subscriber(&provider, tracer_name);
    exporter
}

/// The exporter every span of this test binary ends up in. Installs, once, a global
/// tracing subscriber with the OpenTelemetry layer (sampling with `MeshSampler` over
/// always-on) and registers the Istio propagator.
#[cfg(feature = "sdk")]
pub fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let sampler = meshtrace::MeshSampler::new(opentelemetry_sdk::trace::Sampler::AlwaysOn);
        let exporter = install(
            SdkTracerProvider::builder().with_sampler(sampler),
            "meshtrace-tests",
        );
        meshtrace::set_global_propagator(meshtrace::MeshPropagator::istio());
        exporter
    })
}

/// Like [`exporter`], with new traces (and B3 deferred decisions) decided by `root` under
/// `MeshSampler` instead of always-on: `Sampler::AlwaysOff` makes every request that arrives
/// without a sampled parent unsampled. The first call's `root` is the binary's.
#[cfg(feature = "sdk")]
pub fn exporter_with_root_sampler(
    root: opentelemetry_sdk::trace::Sampler,
) -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let sampler = meshtrace::MeshSampler::new(root);
        let exporter = install(
            SdkTracerProvider::builder().with_sampler(sampler),
            "meshtrace-tests",
        );
        meshtrace::set_global_propagator(meshtrace::MeshPropagator::istio());
        exporter
    })
}

/// Like [`exporter`], for a service that registered a propagator of its own: installs, once,
/// the OpenTelemetry layer with an in-memory exporter, and registers the W3C trace-context
/// propagator as opentelemetry's global propagator (meshtrace's stays unset).
pub fn foreign_exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = install(SdkTracerProvider::builder(), "foreign-tests");
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        assert!(meshtrace::global_propagator().is_none());
        exporter
    })
}

/// A multi-thread runtime whose threads, if `dispatch` is given, take it as their default for
/// their whole life.
pub fn runtime(name: &str, workers: usize, dispatch: Option<&Dispatch>) -> Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(workers)
        .thread_name(name)
        .enable_all();
    if let Some(dispatch) = dispatch.cloned() {
        builder.on_thread_start(move || {
            // Kept for the thread's whole life.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        });
    }
    builder.build().expect("runtime")
}
