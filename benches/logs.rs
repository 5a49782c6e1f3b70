//! What the ids cost a log line: one `info!` with a field, inside an entered server-like span
//! whose parent was extracted from `traceparent` and `x-request-id`, written to `io::sink`,
//! three ways in the same run:
//!
//! - `logs/plain_fmt`: tracing-subscriber's default fmt layer (what `init()` installed before);
//! - `logs/text` and `logs/json`: the fmt layer `TelemetryBuilder::build` installs, with the
//!   ids, in either format.
//!
//! Each subscriber has the same tracing-opentelemetry layer over an SDK tracer provider with
//! no exporter, and an INFO filter on the fmt layer; `logs/filtered_*` measure a `debug!` the
//! filter drops. After the report, a counting allocator gives the heap allocations per line
//! of each (the thread's own, outside any timing).

use criterion::Criterion;
use meshtrace::export::{LogFormat, TelemetryBuilder};
use meshtrace::MeshPropagator;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tracing::Dispatch;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// The system allocator, counting the allocations of the thread that asks.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`; the counter is a thread-local cell
// with no destructor, so counting never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn plain_fmt() -> Dispatch {
    let provider = SdkTracerProvider::builder().build();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::sink)
        .with_ansi(false)
        .with_filter(LevelFilter::INFO);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("meshtrace"))
        .with_filter(LevelFilter::INFO);
    Dispatch::new(tracing_subscriber::registry().with(fmt).with(otel))
}

fn meshtrace(format: LogFormat) -> Dispatch {
    TelemetryBuilder::new()
        .otlp(None)
        .logs(Some("info"))
        .log_format(format)
        .log_writer(std::io::sink)
        .build()
        .expect("telemetry")
        .dispatch()
        .clone()
}

/// Runs `f` in `dispatch`, inside an entered span whose parent came from the sidecar.
fn in_request(dispatch: &Dispatch, f: impl FnOnce()) {
    tracing::dispatcher::with_default(dispatch, || {
        let headers = http::HeaderMap::from_iter([
            (
                http::HeaderName::from_static("traceparent"),
                http::HeaderValue::from_static(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            ),
            (
                http::HeaderName::from_static("x-request-id"),
                http::HeaderValue::from_static("2f0c7d1e-8a3b-4c5d-9e6f-7a8b9c0d1e2f"),
            ),
        ]);
        let cx = MeshPropagator::istio().extract(&opentelemetry_http::HeaderExtractor(&headers));
        let span = tracing::info_span!("server", otel.name = "GET /orders/{id}");
        let _ = span.set_parent(cx);
        span.in_scope(f);
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let subscribers = [
        ("plain_fmt", plain_fmt()),
        ("text", meshtrace(LogFormat::Text)),
        ("json", meshtrace(LogFormat::Json)),
    ];
    let mut group = c.benchmark_group("logs");
    for (name, dispatch) in &subscribers {
        in_request(dispatch, || {
            group.bench_function(*name, |b| b.iter(|| tracing::info!(order = 7, "loaded")));
            group.bench_function(format!("filtered_{name}"), |b| {
                b.iter(|| tracing::debug!(order = 7, "loaded"))
            });
        });
    }
    group.finish();

    const LINES: u64 = 10_000;
    println!("\n| subscriber | allocations per line |\n|---|---|");
    for (name, dispatch) in &subscribers {
        in_request(dispatch, || {
            tracing::info!(order = 7, "warm-up: the fmt layer's buffer grows once");
            let before = ALLOCATIONS.with(Cell::get);
            for _ in 0..LINES {
                tracing::info!(order = 7, "loaded");
            }
            let after = ALLOCATIONS.with(Cell::get);
            println!("| {name} | {:.2} |", (after - before) as f64 / LINES as f64);
        });
    }
}
