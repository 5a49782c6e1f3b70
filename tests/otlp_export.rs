//! What `meshtrace::export` sends to a collector: OTLP over gRPC and over HTTP/protobuf to a
//! receiver on 127.0.0.1 (`tests/support/otlp`), configured the way a deployment configures it,
//! through OpenTelemetry's environment variables. After one request through the layers and a flush,
//! the receiver holds every span with the right resource, parents, kinds and attributes.
//!
//! Every setup but one is an instrumented service of `tests/support/otlp/service.rs`, with its
//! telemetry from an explicit environment and used without installing it. The one global install
//! this binary may do is `install_once_then_plain_tracing_spans_are_exported`.
#![cfg(all(feature = "otlp", feature = "axum", feature = "reqwest"))]

mod support;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use meshtrace::export::InitError;
use meshtrace::server::MeshServerLayer;
use opentelemetry::trace::TraceContextExt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::otlp::service::{builder, collector, flush_until, shutdown, Env, Service};
use support::otlp::{one, ReceivedSpan, Receiver, SpanKind, Transport, Value};
use support::servers::{Caller, Seen};
use support::{otlp, servers};
use tracing_opentelemetry::OpenTelemetrySpanExt;

const SERVICE: &str = "checkout";
const RESOURCE_ATTRIBUTES: &str = "deployment.environment=test,team=payments";
const API_KEY: &str = "secret";
const REQUEST_ID: &str = "2f0c7d1e-8a3b-4c5d-9e6f-7a8b9c0d1e2f";
/// The attributes the snapshot of the exported tree shows: none with a port, an id or a time.
const TREE_KEYS: &[&str] = &[
    "http.request.method",
    "http.route",
    "url.path",
    "http.response.status_code",
    "http.request.header.x-request-id",
];
/// How long a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- set-up

/// The environment a deployment would give the service, aimed at `receiver`, with `extra`
/// variables. For HTTP the endpoint is the base URL: the receiver serves only `/v1/traces`,
/// so a span arriving proves the exporter appended it.
fn otel_env(receiver: &Receiver, extra: &[(&'static str, &str)]) -> Env {
    let mut env = otlp::service::env(SERVICE, receiver.transport(), receiver.endpoint());
    env.insert("OTEL_RESOURCE_ATTRIBUTES", RESOURCE_ATTRIBUTES.into());
    env.insert("OTEL_EXPORTER_OTLP_HEADERS", format!("x-api-key={API_KEY}"));
    env.extend(extra.iter().map(|&(var, value)| (var, value.to_owned())));
    env
}

/// A front service (`GET /front/{id}`) calling a back service (`GET /back/{id}`) through
/// `MeshClientMiddleware`, both behind `MeshServerLayer`.
struct Mesh {
    front: SocketAddr,
    back: SocketAddr,
    seen: Seen,
}

impl Mesh {
    /// The mesh, on a runtime whose threads record into telemetry configured by `env`.
    fn start(env: &Env) -> Service<Mesh> {
        Service::launch("mesh", builder(env), async {
            let seen = Seen::default();
            let back =
                servers::serve(servers::recording_back(seen.clone()).layer(MeshServerLayer::new()))
                    .await;
            let front_app = Router::new()
                .route("/front/{id}", get(front))
                .with_state(Caller::new(format!("http://{back}")))
                .layer(MeshServerLayer::new());
            let front = servers::serve(front_app).await;
            Mesh { front, back, seen }
        })
    }
}

impl Service<Mesh> {
    /// `GET /front/{id}` as an Envoy sidecar forwards it: B3 multi headers and
    /// `x-request-id`. Expects a 200.
    async fn send_from_envoy(&self, id: &str, trace_id: &str, span_id: &str) {
        let response = reqwest::Client::new()
            .get(format!("http://{}/front/{id}", self.app.front))
            .header("x-request-id", REQUEST_ID)
            .header("x-b3-traceid", trace_id)
            .header("x-b3-spanid", span_id)
            .header("x-b3-sampled", "1")
            .send()
            .await
            .expect("the front service answers");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, format!("front {id}"));
    }
}

async fn front(
    State(caller): State<Caller>,
    Path(id): Path<String>,
) -> Result<String, (StatusCode, String)> {
    caller.call(&id).await?;
    Ok(format!("front {id}"))
}

/// The resource a span carries: the service name and the resource attributes from the
/// environment, and the SDK's own `telemetry.sdk.*`.
fn assert_resource(span: &ReceivedSpan) {
    let r = &span.resource;
    assert_eq!(span.service_name, SERVICE, "{}", span.name);
    assert_eq!(r.get("service.name"), Some(&Value::from(SERVICE)));
    assert_eq!(r.get("deployment.environment"), Some(&Value::from("test")));
    assert_eq!(r.get("team"), Some(&Value::from("payments")));
    assert_eq!(
        r.get("telemetry.sdk.language"),
        Some(&Value::from("rust")),
        "{r:?}"
    );
    assert_eq!(
        r.get("telemetry.sdk.name"),
        Some(&Value::from("opentelemetry")),
        "{r:?}"
    );
    assert!(
        r.get("telemetry.sdk.version")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty()),
        "{r:?}"
    );
}

// ---------------------------------------------------------------- a request through the layers

fn export_through_the_layers(transport: Transport) {
    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const ENVOY_SPAN: &str = "e457b5a2e4d86bd1";
    // Each protocol its own trace, in case both ever share a receiver.
    let trace = match transport {
        Transport::Grpc => TRACE.replacen("80", "81", 1),
        Transport::Http => TRACE.to_owned(),
    };

    let (collector, receiver) = collector(transport);
    let mut mesh = Mesh::start(&otel_env(&receiver, &[]));
    let provider = mesh.provider.clone().expect("the SDK is enabled");
    let guard = mesh.guard.take().expect("a guard");

    let spans = mesh.block_on(async {
        mesh.send_from_envoy("order-7", &trace, ENVOY_SPAN).await;
        let spans = flush_until(&provider, &receiver, &trace, 3).await;
        let (shutdown, took) = shutdown(guard).await;
        shutdown.expect("shutdown after a successful flush");
        assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
        spans
    });

    assert_eq!(
        spans.len(),
        3,
        "{:?}",
        spans.iter().map(|s| (&s.name, s.kind)).collect::<Vec<_>>()
    );
    // Nothing else was exported: no library's span joined the trace or made its own.
    assert_eq!(receiver.spans().len(), 3);
    // The same tree over either transport.
    insta::assert_snapshot!("exported_tree", otlp::tree(&spans, TREE_KEYS));

    let front = one(&spans, "GET /front/{id}", SpanKind::Server);
    let client = one(&spans, "GET", SpanKind::Client);
    let back = one(&spans, "GET /back/{id}", SpanKind::Server);

    // One trace, Envoy's, chained server → client → server under Envoy's span.
    assert_eq!(front.parent_span_id, ENVOY_SPAN);
    assert_eq!(client.parent_span_id, front.span_id);
    assert_eq!(back.parent_span_id, client.span_id);
    let ids: std::collections::BTreeSet<_> = [&front.span_id, &client.span_id, &back.span_id]
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 3, "three distinct span ids: {ids:?}");

    for span in [front, client, back] {
        assert_eq!(span.trace_id, trace);
        assert_resource(span);
        assert_eq!(span.scope_name, "meshtrace");
        assert_eq!(
            span.attr("http.request.method"),
            Some(&Value::from("GET")),
            "{}",
            span.name
        );
        // An int, not its string rendering.
        assert_eq!(
            span.attr("http.response.status_code"),
            Some(&Value::Int(200)),
            "{}",
            span.name
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
    assert_eq!(front.attr("http.route"), Some(&Value::from("/front/{id}")));
    assert_eq!(front.attr("url.path"), Some(&Value::from("/front/order-7")));
    // The sidecar's request id, recorded on both server spans (forwarded by the client).
    for server in [front, back] {
        assert_eq!(
            server.attr("http.request.header.x-request-id"),
            Some(&Value::Array(vec![Value::from(REQUEST_ID)])),
            "{}",
            server.name
        );
    }
    assert_eq!(back.attr("http.route"), Some(&Value::from("/back/{id}")));
    assert_eq!(
        client.attr("url.full"),
        Some(&Value::from(format!(
            "http://{}/back/order-7",
            mesh.app.back
        )))
    );
    assert_eq!(
        client.attr("server.port"),
        Some(&Value::Int(i64::from(mesh.app.back.port())))
    );
    // The back service got the client span as its parent, in the headers it received.
    let at_back = servers::seen_for(&mesh.app.seen, "order-7");
    assert_eq!(at_back["x-b3-traceid"], trace.as_str());
    assert_eq!(at_back["x-b3-spanid"], client.span_id.as_str());
    assert_eq!(at_back["x-request-id"], REQUEST_ID);

    // Every export request carried the API key (gRPC: as metadata).
    let headers = receiver.headers();
    assert!(!headers.is_empty());
    for h in &headers {
        assert_eq!(
            h.get("x-api-key").map(|v| v.as_bytes()),
            Some(API_KEY.as_bytes()),
            "{h:?}"
        );
    }
    drop(mesh);
    drop(collector);
}

#[test]
fn grpc_export_through_the_layers() {
    export_through_the_layers(Transport::Grpc);
}

#[test]
fn http_protobuf_export_through_the_layers() {
    export_through_the_layers(Transport::Http);
}

// ---------------------------------------------------------------- OTEL_BSP_*

/// `OTEL_BSP_SCHEDULE_DELAY` from the same source: with 100 ms, the spans of a request go out
/// without a flush (less than a batch: only the timer sends them), where the default 5 s would
/// keep them well past the wait below.
#[test]
fn schedule_delay_from_the_environment() {
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let (collector, receiver) = collector(Transport::Http);
    let mut mesh = Mesh::start(&otel_env(&receiver, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]));
    let guard = mesh.guard.take().expect("a guard");

    mesh.block_on(async {
        mesh.send_from_envoy("timer", TRACE, "b7ad6b7169203331")
            .await;
        let deadline = Instant::now() + Duration::from_secs(3);
        while receiver.spans_of_trace(TRACE).len() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let spans = receiver.spans_of_trace(TRACE);
        assert_eq!(spans.len(), 3, "without a flush, within 3 s: {spans:?}");
        let (shutdown, _) = shutdown(guard).await;
        shutdown.expect("shutdown");
    });
    drop(mesh);
    drop(collector);
}

/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` from the same source: no export request carries more
/// spans than it says.
#[test]
fn export_batch_size_from_the_environment() {
    const TRACE: &str = "5b8aa5a2d2c872e8321cf37308d69df2";
    let (collector, receiver) = collector(Transport::Http);
    let mut mesh = Mesh::start(&otel_env(
        &receiver,
        &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")],
    ));
    let provider = mesh.provider.clone().expect("the SDK is enabled");
    let guard = mesh.guard.take().expect("a guard");

    mesh.block_on(async {
        mesh.send_from_envoy("batched", TRACE, "051581bf3cb55c13")
            .await;
        let spans = flush_until(&provider, &receiver, TRACE, 3).await;
        assert_eq!(spans.len(), 3, "{spans:?}");
        let (shutdown, _) = shutdown(guard).await;
        shutdown.expect("shutdown");
    });
    let log = receiver.request_log();
    assert!(log.len() >= 2, "3 spans in batches of 2: {log:?}");
    assert!(log.iter().all(|r| r.spans <= 2), "{log:?}");
    drop(mesh);
    drop(collector);
}

// ---------------------------------------------------------------- OTEL_SDK_DISABLED

#[test]
fn disabled_sdk_exports_nothing_and_still_propagates() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const ENVOY_SPAN: &str = "00f067aa0ba902b7";
    let (collector, receiver) = collector(Transport::Http);
    let mut mesh = Mesh::start(&otel_env(&receiver, &[("OTEL_SDK_DISABLED", "true")]));
    assert!(mesh.provider.is_none(), "no tracer provider when disabled");
    let guard = mesh.guard.take().expect("a guard");

    mesh.block_on(async {
        mesh.send_from_envoy("disabled", TRACE, ENVOY_SPAN).await;
        let (shutdown, _) = shutdown(guard).await;
        shutdown.expect("shutting down nothing succeeds");
        // Anything that was going to be sent had every chance to be by now.
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    assert_eq!(receiver.requests(), 0, "{:?}", receiver.request_log());

    // No span was made, so the incoming trace went on as it came: same trace, same span.
    let at_back = servers::seen_for(&mesh.app.seen, "disabled");
    assert_eq!(at_back["x-b3-traceid"], TRACE);
    assert_eq!(at_back["x-b3-spanid"], ENVOY_SPAN);
    assert_eq!(
        at_back["traceparent"],
        format!("00-{TRACE}-{ENVOY_SPAN}-01").as_str()
    );
    assert_eq!(at_back["x-request-id"], REQUEST_ID);
    drop(mesh);
    drop(collector);
}

// ---------------------------------------------------------------- the global install

/// This binary's one global install: `install` hands back a guard, a second one is refused,
/// and spans made with plain `tracing` macros (no layer involved) reach the collector.
#[test]
fn install_once_then_plain_tracing_spans_are_exported() {
    let (collector, receiver) = collector(Transport::Http);
    let env = otel_env(&receiver, &[]);
    // OTLP/HTTP needs no runtime: built and installed on the test thread.
    let guard = builder(&env)
        .build()
        .expect("build")
        .install()
        .expect("the first install");
    let again = builder(&env).build().expect("build").install();
    assert!(
        matches!(again, Err(InitError::SubscriberAlreadySet)),
        "{again:?}"
    );

    // No thread default here: these go to the global subscriber just installed.
    let (trace_id, outer_id) = {
        let outer = tracing::info_span!("reserve_stock", order.id = 42_i64);
        let _entered = outer.enter();
        tracing::info_span!("check_warehouse", warehouse = "east").in_scope(|| {});
        let cx = outer.context();
        let sc = cx.span().span_context().clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    };
    // Both spans have ended: the guard's shutdown flushes them.
    guard
        .shutdown()
        .expect("shutdown flushes to a healthy receiver");

    let spans = collector.block_on(receiver.wait_for_spans(2, WAIT));
    let spans: Vec<_> = spans
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let outer = one(&spans, "reserve_stock", SpanKind::Internal);
    let inner = one(&spans, "check_warehouse", SpanKind::Internal);
    assert_eq!(outer.span_id, outer_id);
    assert!(outer.is_root(), "{:?}", outer.parent_span_id);
    assert_eq!(inner.parent_span_id, outer.span_id);
    assert_eq!(outer.attr("order.id"), Some(&Value::Int(42)));
    assert_eq!(inner.attr("warehouse"), Some(&Value::from("east")));
    for span in &spans {
        assert_resource(span);
    }
    assert!(receiver
        .headers()
        .iter()
        .all(|h| h.get("x-api-key").map(|v| v.as_bytes()) == Some(API_KEY.as_bytes())));
}
