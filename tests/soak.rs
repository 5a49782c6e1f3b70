//! Soak: 100,000 requests through the server and client layers on loopback (a client → front
//! (axum + `MeshServerLayer`, calling on through `MeshClientMiddleware`) → back (axum +
//! `MeshServerLayer`)), sampled and unsampled alternating, eight at a time.
//!
//! - Resident memory stays flat: after a warm-up of 10,000 requests, the next 90,000 may add
//!   at most a quarter of what the process had then (measured against its own warm-up, from
//!   `/proc/self/statm`, not against an absolute figure).
//! - Every sampled request's three spans (front server, front client, back server) are
//!   exported exactly once, and no unsampled request exports any.
//! - No context leaks between requests: each request carries its own trace id, baggage and
//!   `x-request-id`, and the back service checks that all three arrive together.
//!
//! The exporter keeps counts only (and the span ids, in a set sized before the warm-up), so
//! that what it keeps does not grow the heap under test.
#![cfg(all(
    target_os = "linux",
    feature = "axum",
    feature = "reqwest",
    feature = "sdk"
))]

mod support;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use meshtrace::server::MeshServerLayer;
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use support::servers::{serve, traced_client};
use support::telemetry::set_global_otel_subscriber;

const REQUESTS: u64 = 100_000;
const WARM_UP: u64 = 10_000;
const IN_FLIGHT: u64 = 8;

/// Counts what it is given; remembers span ids to tell a span exported twice.
#[derive(Debug, Clone, Default)]
struct Counting {
    server: Arc<AtomicU64>,
    client: Arc<AtomicU64>,
    unsampled: Arc<AtomicU64>,
    duplicates: Arc<AtomicU64>,
    seen: Arc<Mutex<HashSet<u64>>>,
}

impl SpanExporter for Counting {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for span in batch {
            if !span.span_context.is_sampled() {
                self.unsampled.fetch_add(1, Ordering::Relaxed);
            }
            if !seen.insert(u64::from_be_bytes(span.span_context.span_id().to_bytes())) {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            match span.span_kind {
                SpanKind::Server => self.server.fetch_add(1, Ordering::Relaxed),
                SpanKind::Client => self.client.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        Ok(())
    }
}

/// The n-th request's trace id, x-request-id and baggage value.
fn ids(n: u64) -> (TraceId, String, String) {
    let trace = TraceId::from_bytes(
        (0x5eed_0000_0000_0000_0000_0000_0000_0000u128 | (u128::from(n) + 1)).to_be_bytes(),
    );
    (trace, format!("req-{n}"), format!("n{n}"))
}

/// Back: checks that the request's trace id, `x-request-id` and baggage belong together.
async fn back(State(mismatches): State<Arc<AtomicU64>>, headers: HeaderMap) -> StatusCode {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let n: Option<u64> = get("x-request-id")
        .strip_prefix("req-")
        .and_then(|n| n.parse().ok());
    let ok = n.is_some_and(|n| {
        let (trace, _, bag) = ids(n);
        get("traceparent").contains(&trace.to_string())
            && get("baggage") == format!("n={bag}")
            && get("x-b3-sampled") == if n % 2 == 0 { "1" } else { "0" }
    });
    if !ok {
        mismatches.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::OK
}

#[derive(Clone)]
struct Front {
    client: reqwest_middleware::ClientWithMiddleware,
    back: String,
}

async fn front(State(front): State<Front>) -> StatusCode {
    match front.client.get(&front.back).send().await {
        Ok(res) => res.status(),
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

/// Resident memory of this process, in bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("rss");
    pages * 4096
}

#[test]
fn a_hundred_thousand_requests_leak_nothing() {
    let exporter = Counting::default();
    exporter
        .seen
        .lock()
        .expect("lock")
        .reserve(3 * REQUESTS as usize / 2 + 1024);
    let sampler = meshtrace::MeshSampler::new(opentelemetry_sdk::trace::Sampler::AlwaysOn);
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_simple_exporter(exporter.clone())
        .build();
    set_global_otel_subscriber(&provider, "soak");
    meshtrace::set_global_propagator(meshtrace::MeshPropagator::istio());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mismatches = Arc::new(AtomicU64::new(0));
    let (front_addr, failed) = runtime.block_on(async {
        let back_addr = serve(
            Router::new()
                .route("/back", get(back))
                .with_state(mismatches.clone())
                .layer(MeshServerLayer::new()),
        )
        .await;
        let front_addr = serve(
            Router::new()
                .route("/front", get(front))
                .with_state(Front {
                    client: traced_client(),
                    back: format!("http://{back_addr}/back"),
                })
                .layer(MeshServerLayer::new()),
        )
        .await;
        (front_addr, Arc::new(AtomicU64::new(0)))
    });

    let run = |from: u64, to: u64| {
        runtime.block_on(async {
            let next = Arc::new(AtomicU64::new(from));
            let workers: Vec<_> = (0..IN_FLIGHT)
                .map(|_| {
                    let (next, failed) = (next.clone(), failed.clone());
                    tokio::spawn(async move {
                        let http = reqwest::Client::new();
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= to {
                                break;
                            }
                            let (trace, request_id, bag) = ids(n);
                            let flags = if n % 2 == 0 { "01" } else { "00" };
                            let res = http
                                .get(format!("http://{front_addr}/front"))
                                .header(
                                    "traceparent",
                                    format!("00-{trace}-00f067aa0ba902b7-{flags}"),
                                )
                                .header("baggage", format!("n={bag}"))
                                .header("x-request-id", request_id)
                                .send()
                                .await;
                            if !res.is_ok_and(|r| r.status().is_success()) {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.await.expect("worker");
            }
        })
    };

    run(0, WARM_UP);
    let after_warm_up = resident();
    run(WARM_UP, REQUESTS);
    let at_end = resident();
    provider.force_flush().expect("flush");

    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed");
    assert_eq!(
        mismatches.load(Ordering::Relaxed),
        0,
        "a request's trace, baggage and x-request-id did not arrive together"
    );
    let sampled = REQUESTS / 2;
    assert_eq!(
        exporter.server.load(Ordering::Relaxed),
        2 * sampled,
        "two server spans per sampled request"
    );
    assert_eq!(
        exporter.client.load(Ordering::Relaxed),
        sampled,
        "one client span per sampled request"
    );
    assert_eq!(
        exporter.unsampled.load(Ordering::Relaxed),
        0,
        "no unsampled span exported"
    );
    assert_eq!(
        exporter.duplicates.load(Ordering::Relaxed),
        0,
        "no span exported twice"
    );
    let growth = at_end.saturating_sub(after_warm_up);
    eprintln!(
        "resident memory: {:.1} MiB after {WARM_UP} requests, {:.1} MiB after {REQUESTS} (+{:.1} MiB)",
        after_warm_up as f64 / 1048576.0,
        at_end as f64 / 1048576.0,
        growth as f64 / 1048576.0
    );
    assert!(
        growth <= after_warm_up / 4,
        "resident memory grew by {growth} bytes over {after_warm_up} after the warm-up"
    );
}
