//! Services that install no tracing-opentelemetry layer: the server layer can record no span,
//! but the headers that came in must still go out on every call (unchanged, since no span
//! was made), and a request with nothing valid to propagate must produce no trace header.
//!
//! Each setup runs on its own runtime, with its subscriber set as the default of the
//! runtime's threads and of the test thread (never globally), so the setups can run side by
//! side in this binary:
//! - no tracing subscriber at all: the server span is disabled;
//! - a plain `tracing_subscriber::registry()`: the span exists, no OpenTelemetry layer;
//! - an OpenTelemetry layer whose per-layer filter leaves meshtrace's spans out while a log
//!   layer keeps them (a common setup: only the application's own spans exported). For
//!   meshtrace this is the same situation: no OpenTelemetry layer tracks the server span.
//!   (tracing-opentelemetry's `set_parent` returns `Ok(())` for such a span, so the layer
//!   checks that the span really has an OpenTelemetry context.)
#![cfg(all(feature = "axum", feature = "reqwest"))]

mod support;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use meshtrace::server::MeshServerLayer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use support::servers::{Caller, Seen};
use support::{headers, servers, telemetry};
use tracing::Span;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    /// No subscriber: every span is disabled.
    NoSubscriber,
    /// `tracing_subscriber::registry()` alone: spans exist, no OpenTelemetry layer.
    PlainRegistry,
    /// An OpenTelemetry layer that does not track meshtrace's spans: its per-layer filter
    /// leaves the `meshtrace` targets out, while another layer (as a log layer would) keeps
    /// them. The server span exists, but no OpenTelemetry layer tracks it.
    OtelLayerFiltersMeshtraceOut,
}

/// Stands for a log layer (`fmt`): wants every INFO span, records nothing.
struct LogLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLayer {}

fn dispatch(setup: Setup) -> tracing::Dispatch {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer as _;
    match setup {
        Setup::NoSubscriber | Setup::PlainRegistry => {
            tracing::Dispatch::new(tracing_subscriber::registry())
        }
        Setup::OtelLayerFiltersMeshtraceOut => {
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
            let otel = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("app"))
                .with_filter(
                    Targets::new()
                        .with_default(LevelFilter::INFO)
                        .with_target("meshtrace", LevelFilter::OFF),
                );
            tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(LogLayer.with_filter(LevelFilter::INFO))
                    .with(otel),
            )
        }
    }
}

/// Runs `test(setup)` on a two-worker runtime with `setup` as the subscriber of every thread.
fn run<F: Future<Output = ()>>(setup: Setup, test: impl FnOnce(Setup) -> F) {
    let dispatch = dispatch(setup);
    let (runtime, _guard) = match setup {
        Setup::NoSubscriber => (telemetry::runtime("setup", 2, None), None),
        Setup::PlainRegistry | Setup::OtelLayerFiltersMeshtraceOut => (
            telemetry::runtime("setup", 2, Some(&dispatch)),
            Some(tracing::dispatcher::set_default(&dispatch)),
        ),
    };
    runtime.block_on(test(setup));
}

#[derive(Clone)]
struct Front {
    caller: Caller,
    barrier: Arc<tokio::sync::Barrier>,
}

/// Calls the back service with the same tag; answers whether the handler ran inside a
/// (subscriber-tracked) span, so each test can check its setup is the one it claims.
async fn front_handler(State(f): State<Front>, Path(tag): Path<String>) -> (StatusCode, String) {
    let in_span = !Span::current().is_none();
    match f.caller.call(&tag).await {
        Ok(()) => (StatusCode::OK, in_span.to_string()),
        Err(answer) => answer,
    }
}

/// Like `front_handler`, after waiting (bounded) until another request is in here too.
async fn together_handler(State(f): State<Front>, Path(tag): Path<String>) -> (StatusCode, String) {
    if let Err(answer) = servers::wait_for_partner(&f.barrier).await {
        return answer;
    }
    front_handler(State(f), Path(tag)).await
}

struct Services {
    front: SocketAddr,
    seen: Seen,
}

impl Services {
    /// A recording back service, and a front one with `MeshServerLayer` that calls it
    /// through reqwest-middleware with `MeshClientMiddleware`.
    async fn start() -> Services {
        let (back, seen) = servers::start_back().await;
        let front_app = Router::new()
            .route("/front/{tag}", get(front_handler))
            .route("/together/{tag}", get(together_handler))
            .with_state(Front {
                caller: Caller::new(back),
                barrier: Arc::new(tokio::sync::Barrier::new(2)),
            })
            .layer(MeshServerLayer::new());
        let front = servers::serve(front_app).await;
        Services { front, seen }
    }

    /// Sends `GET /{route}/{tag}` with `headers`, expects 200, returns the handler's answer.
    async fn send(&self, route: &str, tag: &str, headers: &[(&str, &str)]) -> String {
        let mut req = reqwest::Client::new().get(format!("http://{}/{route}/{tag}", self.front));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("front answers");
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        assert_eq!(status, 200, "{tag}: {body}");
        body
    }

    /// The headers of the one back request tagged `tag`.
    fn seen(&self, tag: &str) -> HeaderMap {
        servers::seen_for(&self.seen, tag)
    }
}

fn assert_in_span(setup: Setup, answer: &str) {
    let want = match setup {
        Setup::NoSubscriber => "false",
        Setup::PlainRegistry | Setup::OtelLayerFiltersMeshtraceOut => "true",
    };
    assert_eq!(answer, want, "{setup:?}: handler ran in a span?");
}

/// Exactly one `name` header, byte-for-byte `want`.
fn assert_header(h: &HeaderMap, name: &str, want: &str) {
    let all: Vec<String> = h
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    assert_eq!(
        all,
        [want],
        "{name} as received downstream; all headers: {h:?}"
    );
}

const REQUEST_ID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const BAGGAGE: &str = "user=alice,tier=gold;ttl=30";
const OT_SPAN_CONTEXT: &str = "opaque/lightstep;ctx=Zm9vYmFy";

async fn incoming_headers_are_forwarded_unchanged(setup: Setup) {
    let svc = Services::start().await;

    // What an Envoy sidecar sends: B3 multi, x-request-id, baggage.
    let trace = "80f198ee56343ba864fe8b2a57d3eff7";
    let span = "e457b5a2e4d86bd1";
    let answer = svc
        .send(
            "front",
            "envoy",
            &[
                ("x-b3-traceid", trace),
                ("x-b3-spanid", span),
                ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
                ("x-b3-sampled", "1"),
                ("x-request-id", REQUEST_ID),
                ("baggage", BAGGAGE),
                ("x-ot-span-context", OT_SPAN_CONTEXT),
            ],
        )
        .await;
    assert_in_span(setup, &answer);
    let h = svc.seen("envoy");
    assert!(
        headers::trace_headers().iter().any(|n| h.contains_key(*n)),
        "{setup:?}: not one trace, baggage or pass-through header reached the next hop: {h:?}"
    );
    // No span was made here: the same trace and the same span go on.
    assert_header(&h, "x-b3-traceid", trace);
    assert_header(&h, "x-b3-spanid", span);
    assert_header(&h, "x-b3-sampled", "1");
    assert_header(&h, "traceparent", &format!("00-{trace}-{span}-01"));
    assert_header(&h, "x-request-id", REQUEST_ID);
    assert_header(&h, "baggage", BAGGAGE);
    assert_header(&h, "x-ot-span-context", OT_SPAN_CONTEXT);
    for name in ["b3", "x-b3-flags", "tracestate"] {
        assert!(h.get(name).is_none(), "{name}: {:?}", h.get(name));
    }

    // A 64-bit B3 trace id keeps its width in B3.
    let answer = svc
        .send(
            "front",
            "envoy-64",
            &[
                ("x-b3-traceid", "a3ce929d0e0e4736"),
                ("x-b3-spanid", span),
                ("x-b3-sampled", "0"),
            ],
        )
        .await;
    assert_in_span(setup, &answer);
    let h = svc.seen("envoy-64");
    assert_header(&h, "x-b3-traceid", "a3ce929d0e0e4736");
    assert_header(&h, "x-b3-spanid", span);
    assert_header(&h, "x-b3-sampled", "0");
    assert_header(
        &h,
        "traceparent",
        &format!("00-0000000000000000a3ce929d0e0e4736-{span}-00"),
    );

    // W3C in, W3C out byte-for-byte (and B3 from the same context).
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = svc
        .send(
            "front",
            "w3c",
            &[
                ("traceparent", traceparent),
                ("tracestate", "congo=t61rcWkgMzE"),
            ],
        )
        .await;
    assert_in_span(setup, &answer);
    let h = svc.seen("w3c");
    assert_header(&h, "traceparent", traceparent);
    assert_header(&h, "tracestate", "congo=t61rcWkgMzE");
    assert_header(&h, "x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_header(&h, "x-b3-spanid", "00f067aa0ba902b7");
    for name in ["x-request-id", "baggage", "x-ot-span-context"] {
        assert!(h.get(name).is_none(), "nothing to pass through: {name}");
    }
}

async fn nothing_valid_in_means_no_trace_headers_out(setup: Setup) {
    let svc = Services::start().await;
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("bare", &[]),
        (
            "garbage",
            &[
                ("traceparent", "00-zzzz-00f067aa0ba902b7-01"),
                ("tracestate", "congo=t61rcWkgMzE"),
                ("b3", "not-a-b3-header"),
                ("x-b3-traceid", "00000000000000000000000000000000"),
                ("x-b3-spanid", "00f067aa0ba902b7"),
            ],
        ),
        // A B3 decision without ids is no trace to continue.
        ("sampled-only", &[("x-b3-sampled", "1")]),
        ("b3-decision-only", &[("b3", "d")]),
    ];
    for (tag, headers) in cases {
        let answer = svc.send("front", tag, headers).await;
        assert_in_span(setup, &answer);
        let h = svc.seen(tag);
        for name in headers::trace_headers() {
            assert!(
                h.get(name).is_none(),
                "{setup:?} {tag}: {name} sent with nothing valid to propagate: {:?}",
                h.get(name)
            );
        }
    }
}

async fn concurrent_requests_forward_their_own_headers(setup: Setup) {
    let svc = Services::start().await;
    for round in 0..3 {
        let requests = (0..2u32).map(|i| {
            let svc = &svc;
            async move {
                let tag = format!("r{round}-{i}");
                let trace = format!("c0{:030}", round * 10 + i);
                let span = format!("d0{:014}", i + 1);
                let id = format!("id-{tag}");
                let baggage = format!("who={tag}");
                let answer = svc
                    .send(
                        "together",
                        &tag,
                        &[
                            ("x-b3-traceid", &trace),
                            ("x-b3-spanid", &span),
                            ("x-b3-sampled", "1"),
                            ("x-request-id", &id),
                            ("baggage", &baggage),
                        ],
                    )
                    .await;
                assert_in_span(setup, &answer);
                let h = svc.seen(&tag);
                assert_header(&h, "x-b3-traceid", &trace);
                assert_header(&h, "x-b3-spanid", &span);
                assert_header(&h, "traceparent", &format!("00-{trace}-{span}-01"));
                assert_header(&h, "x-request-id", &id);
                assert_header(&h, "baggage", &baggage);
            }
        });
        futures_util::future::join_all(requests).await;
    }
}

#[test]
fn no_subscriber_forwards_incoming_headers_unchanged() {
    run(
        Setup::NoSubscriber,
        incoming_headers_are_forwarded_unchanged,
    );
}

#[test]
fn plain_registry_forwards_incoming_headers_unchanged() {
    run(
        Setup::PlainRegistry,
        incoming_headers_are_forwarded_unchanged,
    );
}

#[test]
fn no_subscriber_sends_no_trace_headers_when_nothing_valid_came_in() {
    run(
        Setup::NoSubscriber,
        nothing_valid_in_means_no_trace_headers_out,
    );
}

#[test]
fn plain_registry_sends_no_trace_headers_when_nothing_valid_came_in() {
    run(
        Setup::PlainRegistry,
        nothing_valid_in_means_no_trace_headers_out,
    );
}

#[test]
fn no_subscriber_concurrent_requests_keep_their_own_headers() {
    run(
        Setup::NoSubscriber,
        concurrent_requests_forward_their_own_headers,
    );
}

#[test]
fn plain_registry_concurrent_requests_keep_their_own_headers() {
    run(
        Setup::PlainRegistry,
        concurrent_requests_forward_their_own_headers,
    );
}

#[test]
fn otel_layer_filtering_meshtrace_out_forwards_incoming_headers_unchanged() {
    run(
        Setup::OtelLayerFiltersMeshtraceOut,
        incoming_headers_are_forwarded_unchanged,
    );
}

#[test]
fn otel_layer_filtering_meshtrace_out_sends_no_trace_headers_when_nothing_valid_came_in() {
    run(
        Setup::OtelLayerFiltersMeshtraceOut,
        nothing_valid_in_means_no_trace_headers_out,
    );
}

#[test]
fn otel_layer_filtering_meshtrace_out_concurrent_requests_keep_their_own_headers() {
    run(
        Setup::OtelLayerFiltersMeshtraceOut,
        concurrent_requests_forward_their_own_headers,
    );
}
