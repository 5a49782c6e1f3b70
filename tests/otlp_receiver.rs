//! Tests of the OTLP receiver fixture in `tests/support/otlp`, so that the tests built on it can
//! trust what it reports: spans exported by opentelemetry-otlp over gRPC and over HTTP/protobuf
//! arrive intact, and each fault mode does to an exporter what a failing collector would.
//!
//! The exporters run behind the SDK's batch processor, whose `force_flush` hands back the
//! export's result (the simple processor only logs it). `force_flush` blocks, so it runs on
//! the blocking pool: called on a runtime thread it would starve the tonic channel's tasks.

mod support;

use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use prost::Message;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::otlp;
use support::otlp::{Mode, Outcome, ReceivedSpan, Receiver, SpanStatusCode, Transport, Value};

const SERVICE: &str = "otlp-receiver-test";
const SCOPE: &str = "otlp-receiver-test-scope";
const TENANT_HEADER: &str = "x-tenant";
const TENANT: &str = "tenant-7";
const LINKED_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const LINKED_SPAN: &str = "00f067aa0ba902b7";

/// How long a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(5);
/// The exporter timeout of the fault tests: it bounds each export, retries included.
const SHORT: Duration = Duration::from_secs(1);
/// Well under the batch processor's own 5 s `force_flush` limit: a flush that returns within
/// this returned because of the exporter's timeout, not the processor's.
const BOUNDED: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------- exporter side

/// An OTLP exporter aimed at `receiver`, sending the tenant header (gRPC: as metadata).
/// Built on a runtime thread: the tonic exporter spawns its channel's task there.
fn exporter(receiver: &Receiver, timeout: Duration) -> SpanExporter {
    match receiver.transport() {
        Transport::Grpc => {
            let mut metadata = MetadataMap::new();
            metadata.insert(TENANT_HEADER, TENANT.parse().expect("metadata value"));
            SpanExporter::builder()
                .with_tonic()
                .with_endpoint(receiver.endpoint())
                .with_timeout(timeout)
                .with_metadata(metadata)
                .build()
        }
        // `with_endpoint` on the HTTP exporter is the full URL: nothing is appended to it.
        Transport::Http => SpanExporter::builder()
            .with_http()
            .with_endpoint(receiver.traces_url())
            .with_timeout(timeout)
            .with_headers(HashMap::from([(TENANT_HEADER.into(), TENANT.into())]))
            .build(),
    }
    .expect("build the OTLP exporter")
}

fn provider(exporter: SpanExporter) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(Resource::builder_empty().with_service_name(SERVICE).build())
        .with_batch_exporter(exporter)
        .build()
}

/// `force_flush` on the blocking pool; its result and how long it took.
async fn flush(provider: &SdkTracerProvider) -> (OTelSdkResult, Duration) {
    let provider = provider.clone();
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let result = provider.force_flush();
        (result, start.elapsed())
    })
    .await
    .expect("flush task")
}

async fn shutdown(provider: SdkTracerProvider) {
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .expect("shutdown task")
        .expect("shutdown");
}

/// Ids of the spans [`emit_pair`] made, in hex.
struct Emitted {
    trace_id: String,
    parent: String,
    child: String,
}

/// Ends a server span `{prefix}-parent` and its client child `{prefix}-child`, with
/// attributes of both kinds, an event, a link and an error status on the child.
fn emit_pair(provider: &SdkTracerProvider, prefix: &str) -> Emitted {
    let tracer = provider.tracer(SCOPE);
    let parent = tracer
        .span_builder(format!("{prefix}-parent"))
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.response.status_code", 200_i64),
            KeyValue::new("test.label", "alpha"),
        ])
        .start(&tracer);
    let cx = Context::current_with_span(parent);
    let linked = SpanContext::new(
        TraceId::from_hex(LINKED_TRACE).expect("trace id"),
        SpanId::from_hex(LINKED_SPAN).expect("span id"),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let mut child = tracer
        .span_builder(format!("{prefix}-child"))
        .with_kind(SpanKind::Client)
        .with_attributes([KeyValue::new("retry.count", 2_i64)])
        .with_links(vec![Link::with_context(linked)])
        .start_with_context(&tracer, &cx);
    child.add_event("retrying", vec![KeyValue::new("attempt", 2_i64)]);
    child.set_status(Status::error("upstream reset"));
    let emitted = Emitted {
        trace_id: child.span_context().trace_id().to_string(),
        parent: cx.span().span_context().span_id().to_string(),
        child: child.span_context().span_id().to_string(),
    };
    child.end();
    cx.span().end();
    emitted
}

fn find<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} among {:?}", names(spans)))
}

fn names(spans: &[ReceivedSpan]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

/// Asserts that no stored span's name starts with `prefix`.
fn assert_none_stored(receiver: &Receiver, prefix: &str) {
    let spans = receiver.spans();
    assert!(
        spans.iter().all(|s| !s.name.starts_with(prefix)),
        "spans of a failed export were stored: {:?}",
        names(&spans)
    );
}

/// Exports a fresh pair and asserts it arrives.
async fn assert_export_works(receiver: &Receiver, provider: &SdkTracerProvider, prefix: &str) {
    let before = receiver.spans().len();
    emit_pair(provider, prefix);
    let (result, _) = flush(provider).await;
    result.unwrap_or_else(|e| panic!("flush of {prefix} against a healthy receiver: {e:?}"));
    let spans = receiver.wait_for_spans(before + 2, WAIT).await;
    find(&spans, &format!("{prefix}-parent"));
    find(&spans, &format!("{prefix}-child"));
}

/// Exports a fresh pair and asserts the flush reports an error within [`BOUNDED`].
async fn assert_export_fails(provider: &SdkTracerProvider, prefix: &str, why: &str) {
    emit_pair(provider, prefix);
    let (result, took) = flush(provider).await;
    assert!(result.is_err(), "flush succeeded though {why}");
    assert!(
        took < BOUNDED,
        "flush took {took:?} though {why}: {result:?}"
    );
}

// ---------------------------------------------------------------- round trips

async fn round_trip(transport: Transport) {
    let receiver = Receiver::start(transport).await;
    let provider = provider(exporter(&receiver, WAIT));
    let ids = emit_pair(&provider, "rt");
    let (result, _) = flush(&provider).await;
    result.expect("flush");

    let spans = receiver.wait_for_spans(2, WAIT).await;
    assert_eq!(spans.len(), 2, "received {:?}", names(&spans));
    let parent = find(&spans, "rt-parent");
    let child = find(&spans, "rt-child");

    for span in [parent, child] {
        assert_eq!(span.service_name, SERVICE);
        assert_eq!(
            span.resource.get("service.name"),
            Some(&Value::from(SERVICE))
        );
        assert_eq!(span.scope_name, SCOPE);
        assert_eq!(span.trace_id, ids.trace_id);
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }

    assert_eq!(parent.span_id, ids.parent);
    assert!(parent.is_root(), "parent id {:?}", parent.parent_span_id);
    assert_eq!(parent.kind, otlp::SpanKind::Server);
    // An int attribute arrives as an int, not as its string rendering.
    assert_eq!(
        parent.attr("http.response.status_code"),
        Some(&Value::Int(200))
    );
    assert_eq!(parent.attr("test.label"), Some(&Value::from("alpha")));
    assert_eq!(parent.status_code, SpanStatusCode::Unset);

    assert_eq!(child.span_id, ids.child);
    assert_eq!(child.parent_span_id, parent.span_id);
    assert_eq!(child.kind, otlp::SpanKind::Client);
    assert_eq!(child.attr("retry.count").and_then(Value::as_i64), Some(2));
    assert_eq!(child.status_code, SpanStatusCode::Error);
    assert_eq!(child.status_message, "upstream reset");
    assert_eq!(child.event_names(), ["retrying"]);
    assert_eq!(
        child.events[0].attributes.get("attempt"),
        Some(&Value::Int(2))
    );
    assert_eq!(child.links.len(), 1);
    assert_eq!(child.links[0].trace_id, LINKED_TRACE);
    assert_eq!(child.links[0].span_id, LINKED_SPAN);

    // Every export request carried the custom header (gRPC: as metadata) and the exporter's
    // own headers.
    let log = receiver.request_log();
    assert!(!log.is_empty());
    assert_eq!(receiver.requests(), log.len());
    for request in &log {
        assert_eq!(request.outcome, Outcome::Stored);
        assert_eq!(
            request.headers.get(TENANT_HEADER).map(|v| v.as_bytes()),
            Some(TENANT.as_bytes()),
            "headers {:?}",
            request.headers
        );
        let user_agent = request.headers.get("user-agent").expect("user-agent");
        assert!(
            user_agent
                .to_str()
                .unwrap()
                .contains("OTel-OTLP-Exporter-Rust"),
            "user-agent {user_agent:?}"
        );
        let content_type = request.headers.get("content-type").expect("content-type");
        let expected = match transport {
            Transport::Grpc => "application/grpc",
            Transport::Http => "application/x-protobuf",
        };
        assert!(
            content_type.to_str().unwrap().starts_with(expected),
            "content-type {content_type:?}"
        );
    }
    assert_eq!(receiver.resource_spans().len(), log.len());
    assert_eq!(log.iter().map(|r| r.spans).sum::<usize>(), 2);

    receiver.clear();
    assert!(receiver.spans().is_empty());
    assert_eq!(receiver.requests(), 0);
    shutdown(provider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exports_arrive_intact() {
    round_trip(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_exports_arrive_intact() {
    round_trip(Transport::Http).await;
}

// ---------------------------------------------------------------- faults, through an exporter

async fn fault_modes(transport: Transport) {
    let receiver = Receiver::start(transport).await;
    let provider = provider(exporter(&receiver, SHORT));
    assert_export_works(&receiver, &provider, "ok1").await;

    // Error: refused, nothing stored; the exporter's retries land here too.
    receiver.set_mode(Mode::Error);
    assert_eq!(receiver.mode(), Mode::Error);
    let before = receiver.requests();
    assert_export_fails(&provider, "err", "the receiver refuses exports").await;
    let refused = &receiver.request_log()[before..];
    assert!(!refused.is_empty(), "the refused export never arrived");
    assert!(refused.iter().all(|r| r.outcome == Outcome::Refused));
    assert_none_stored(&receiver, "err");

    receiver.set_mode(Mode::Healthy);
    assert_export_works(&receiver, &provider, "ok2").await;
    assert_none_stored(&receiver, "err");

    // Stop: the port refuses connections, the exporter's open connection is gone.
    receiver.stop().await;
    assert!(!receiver.is_running());
    assert!(tokio::net::TcpStream::connect(receiver.addr())
        .await
        .is_err());
    assert_export_fails(&provider, "down", "the receiver is down").await;
    receiver.restart().await;
    assert!(receiver.is_running());
    assert_export_works(&receiver, &provider, "ok3").await;
    assert_none_stored(&receiver, "down");

    // Hang: the exporter's timeout ends the flush, not the processor's.
    receiver.set_mode(Mode::Hang);
    let before = receiver.requests();
    assert_export_fails(&provider, "hang", "the receiver never answers").await;
    assert!(
        receiver.requests() > before,
        "the hung export never arrived"
    );
    receiver.set_mode(Mode::Healthy);
    let held = &receiver.request_log()[before..];
    assert!(
        held.iter()
            .all(|r| matches!(r.outcome, Outcome::Pending | Outcome::Released)),
        "{held:?}"
    );
    assert_export_works(&receiver, &provider, "ok4").await;
    assert_none_stored(&receiver, "hang");
    assert_eq!(receiver.spans().len(), 8);

    shutdown(provider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_fault_modes() {
    fault_modes(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_fault_modes() {
    fault_modes(Transport::Http).await;
}

// ---------------------------------------------------------------- the fixture directly

/// One span in one `ResourceSpans`, as a hand-made export request.
fn request_with_one_span(name: &str) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![opentelemetry_proto::tonic::trace::v1::Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: name.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A raw export with no client timeout: `Ok(())` on success, `Err` with what went wrong.
async fn raw_export(receiver: &Receiver, name: &str) -> Result<(), String> {
    let request = request_with_one_span(name);
    match receiver.transport() {
        Transport::Grpc => {
            let mut client = TraceServiceClient::connect(receiver.endpoint())
                .await
                .map_err(|e| format!("connect: {e}"))?;
            client
                .export(request)
                .await
                .map(|_| ())
                .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
        }
        Transport::Http => {
            let response = reqwest::Client::new()
                .post(receiver.traces_url())
                .header("content-type", "application/x-protobuf")
                .body(request.encode_to_vec())
                .send()
                .await
                .map_err(|e| format!("send: {e}"))?;
            let status = response.status();
            let content_type = response.headers().get("content-type").cloned();
            let body = response.bytes().await.map_err(|e| format!("body: {e}"))?;
            if !status.is_success() {
                return Err(format!("status {status}"));
            }
            assert_eq!(
                content_type.as_ref().map(|v| v.as_bytes()),
                Some(&b"application/x-protobuf"[..])
            );
            ExportTraceServiceResponse::decode(body).map_err(|e| format!("decode: {e}"))?;
            Ok(())
        }
    }
}

async fn wait_until_held(receiver: &Receiver, n: usize) {
    let deadline = Instant::now() + WAIT;
    while receiver.held() != n {
        assert!(
            Instant::now() < deadline,
            "held {} not {n}",
            receiver.held()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Requests held by `Hang` are answered with an error when the mode changes, and dropped when
/// the receiver stops; neither is stored.
async fn held_requests_are_released(transport: Transport) {
    let receiver = std::sync::Arc::new(Receiver::start(transport).await);
    raw_export(&receiver, "plain")
        .await
        .expect("healthy export");
    assert_eq!(receiver.spans()[0].trace_id, "01".repeat(16));

    receiver.set_mode(Mode::Hang);
    let r = receiver.clone();
    let pending = tokio::spawn(async move { raw_export(&r, "held-1").await });
    wait_until_held(&receiver, 1).await;
    assert!(!pending.is_finished());
    receiver.set_mode(Mode::Healthy);
    let answer = tokio::time::timeout(WAIT, pending).await.expect("released");
    let error = answer
        .expect("task")
        .expect_err("a released request is refused");
    match transport {
        Transport::Grpc => assert!(error.starts_with("Unavailable"), "{error}"),
        Transport::Http => assert_eq!(error, "status 503 Service Unavailable"),
    }
    assert_eq!(receiver.held(), 0);
    assert_eq!(receiver.request_log()[1].outcome, Outcome::Released);

    receiver.set_mode(Mode::Hang);
    let r = receiver.clone();
    let pending = tokio::spawn(async move { raw_export(&r, "held-2").await });
    wait_until_held(&receiver, 1).await;
    receiver.stop().await;
    let answer = tokio::time::timeout(WAIT, pending).await.expect("released");
    answer.expect("task").expect_err("the receiver stopped");
    wait_until_held(&receiver, 0).await;

    receiver.set_mode(Mode::Healthy);
    receiver.restart().await;
    raw_export(&receiver, "after")
        .await
        .expect("export after restart");
    assert_eq!(names(&receiver.spans()), ["plain", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_held_requests_are_released() {
    held_requests_are_released(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_held_requests_are_released() {
    held_requests_are_released(Transport::Http).await;
}

#[tokio::test]
async fn error_mode_answers_errors_over_raw_clients() {
    for transport in [Transport::Grpc, Transport::Http] {
        let receiver = Receiver::start(transport).await;
        receiver.set_mode(Mode::Error);
        let error = raw_export(&receiver, "refused").await.expect_err("refused");
        match transport {
            Transport::Grpc => assert!(error.starts_with("Unavailable"), "{error}"),
            Transport::Http => assert_eq!(error, "status 503 Service Unavailable"),
        }
        assert!(receiver.spans().is_empty());
        assert_eq!(receiver.requests(), 1);
    }
}

#[tokio::test]
async fn stop_closes_open_connections_and_restart_takes_the_same_port() {
    use tokio::io::AsyncReadExt;
    let receiver = Receiver::start_http().await;
    let port = receiver.port();
    let mut open = tokio::net::TcpStream::connect(receiver.addr())
        .await
        .expect("connect");
    receiver.stop().await;
    receiver.stop().await; // a second stop does nothing
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, open.read(&mut buf))
        .await
        .expect("the open connection is closed, not left idle");
    assert!(matches!(read, Ok(0) | Err(_)), "read {read:?}");
    let refused = tokio::net::TcpStream::connect(receiver.addr()).await;
    assert_eq!(
        refused.expect_err("refused").kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    receiver.restart().await;
    receiver.restart().await; // a second restart does nothing
    assert_eq!(receiver.port(), port);
    assert_eq!(receiver.endpoint(), format!("http://127.0.0.1:{port}"));
    assert_eq!(
        receiver.traces_url(),
        format!("http://127.0.0.1:{port}/v1/traces")
    );
    raw_export(&receiver, "back")
        .await
        .expect("export after restart");
}

#[tokio::test]
async fn http_takes_only_protobuf_on_v1_traces() {
    let receiver = Receiver::start_http().await;
    let client = reqwest::Client::new();
    let body = request_with_one_span("x").encode_to_vec();

    let json = client
        .post(receiver.traces_url())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(json.status(), 415);

    let gzip = client
        .post(receiver.traces_url())
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(gzip.status(), 415);

    let garbage = client
        .post(receiver.traces_url())
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .expect("send");
    assert_eq!(garbage.status(), 400);

    let elsewhere = client
        .post(format!("{}/v1/profiles", receiver.endpoint()))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(elsewhere.status(), 404);

    assert_eq!(receiver.requests(), 0);
    assert!(receiver.spans().is_empty());
}

/// From a thread that is not a runtime's: the HTTP exporter needs no runtime at all; the gRPC
/// exporter must be built inside one (`Runtime::enter`) that outlives it, and can then be
/// used from any thread.
#[test]
fn exporters_work_from_a_plain_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let http = runtime.block_on(Receiver::start_http());
    let grpc = runtime.block_on(Receiver::start_grpc());

    let http_provider = provider(exporter(&http, WAIT));
    let grpc_exporter = {
        let _entered = runtime.enter();
        exporter(&grpc, WAIT)
    };
    let grpc_provider = provider(grpc_exporter);
    for (receiver, provider) in [(&http, &http_provider), (&grpc, &grpc_provider)] {
        emit_pair(provider, "plain");
        provider.force_flush().expect("flush from a plain thread");
        let spans = runtime.block_on(receiver.wait_for_spans(2, WAIT));
        assert_eq!(names(&spans).len(), 2, "{:?}", names(&spans));
        provider.shutdown().expect("shutdown");
    }
}
