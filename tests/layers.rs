//! The options of the server and client layers, as a service uses them: the server layer's
//! filter and request-id generation, per-call options on reqwest-middleware, the plain
//! reqwest helper, the tonic interceptor, links to the contexts that lost a conflict, no
//! context leaking between concurrent requests, and a property test of a whole hop
//! (server layer in, interceptor out) over arbitrary header bytes.
//!
//! Servers and clients run on 127.0.0.1; spans go to the in-memory exporter of `support::telemetry`
//! (OpenTelemetry layer installed, `MeshPropagator::istio()` registered globally).
#![cfg(all(
    feature = "axum",
    feature = "reqwest",
    feature = "tonic",
    feature = "sdk"
))]

mod support;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use meshtrace::client::reqwest::RequestBuilderExt;
use meshtrace::client::tonic::MeshClientInterceptor;
use meshtrace::client::{DisablePropagation, SpanName};
use meshtrace::server::MeshServerLayer;
use meshtrace::MeshPropagator;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, Key, Value};
use opentelemetry_sdk::trace::SpanData;
use reqwest_middleware::RequestBuilder;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use support::headers::{header, span_id_of, trace_id_of};
use support::servers::{seen_for, serve, start_back, wait_for_partner, Caller};
use support::spans::{attr, one, s, spans_of};
use support::{headers, spans, telemetry};
use tonic::service::Interceptor;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The trace id of the current span, as a handler sees it.
fn current_trace_id() -> TraceId {
    Span::current().context().span().span_context().trace_id()
}

/// Finished spans of `trace_id`, right now (no waiting).
fn finished_now(trace_id: TraceId) -> Vec<SpanData> {
    spans::finished_spans(telemetry::exporter(), trace_id)
}

// ---------------------------------------------------------------------------------------------
// 1. Server filter
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_requests_get_no_span_and_no_extraction() {
    telemetry::exporter();
    // Each handler answers with the trace id it runs in.
    let handler = || async { current_trace_id().to_string() };
    let app = Router::new()
        .route("/healthz", get(handler))
        .route("/work", get(handler))
        .layer(MeshServerLayer::new().filter(|p| p.uri.path() != "/healthz"));
    let addr = serve(app).await;
    let client = reqwest::Client::new();

    let healthz_trace = "a1000000000000000000000000000001";
    let work_trace = "a1000000000000000000000000000002";
    let res = client
        .get(format!("http://{addr}/healthz"))
        .header(
            "traceparent",
            format!("00-{healthz_trace}-b100000000000001-01"),
        )
        .header("x-request-id", "filtered-request")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // No server span around the handler, and the incoming trace was not extracted.
    assert_eq!(res.text().await.unwrap(), TraceId::INVALID.to_string());

    let res = client
        .get(format!("http://{addr}/work"))
        .header(
            "traceparent",
            format!("00-{work_trace}-b100000000000002-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), work_trace);

    let work = spans_of(TraceId::from_hex(work_trace).unwrap(), 1).await;
    let server = one(&work, "GET /work", SpanKind::Server);
    assert_eq!(server.parent_span_id.to_string(), "b100000000000002");
    assert_eq!(attr(server, "url.path"), Some(s("/work")));

    // The health check finished before /work was sent, so its span (had there been one)
    // would be exported by now.
    let healthz = finished_now(TraceId::from_hex(healthz_trace).unwrap());
    assert!(
        healthz.is_empty(),
        "filtered request made spans: {:?}",
        healthz.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. generate_request_id
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_request_id_only_when_missing_and_only_when_asked() {
    telemetry::exporter();
    // The handler answers with the x-request-id it sees, or `-` for none.
    let handler = |headers: HeaderMap| async move {
        headers
            .get_all("x-request-id")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join("|")
    };
    let generating = Router::new()
        .route("/id", get(handler))
        .layer(MeshServerLayer::new().generate_request_id(true));
    let default = Router::new()
        .route("/id", get(handler))
        .layer(MeshServerLayer::new());
    let generating_addr = serve(generating).await;
    let default_addr = serve(default).await;
    let client = reqwest::Client::new();
    let get_id = |addr: SocketAddr, id: Option<&'static str>| {
        let mut req = client.get(format!("http://{addr}/id"));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.text().await.unwrap()
        }
    };

    // An id that came in is kept as it is, even one that is not a UUID.
    let theirs = "edge-7f3a/42 keep me";
    assert_eq!(get_id(generating_addr, Some(theirs)).await, theirs);

    // None came in: a fresh UUID v4 each time.
    let first = get_id(generating_addr, None).await;
    let second = get_id(generating_addr, None).await;
    for id in [&first, &second] {
        let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id:?}: {e}"));
        assert_eq!(uuid.get_version_num(), 4, "{id}");
        assert_eq!(id.len(), 36, "hyphenated form: {id}");
    }
    assert_ne!(first, second);

    // Off by default: nothing invented, what came in untouched.
    assert_eq!(get_id(default_addr, None).await, "");
    assert_eq!(get_id(default_addr, Some(theirs)).await, theirs);
}

// ---------------------------------------------------------------------------------------------
// 3. Per-call options on reqwest-middleware
// ---------------------------------------------------------------------------------------------

/// Sends `req` and answers with the back service's status and body.
async fn relay(req: RequestBuilder) -> (StatusCode, String) {
    match req.send().await {
        Ok(r) => (r.status(), r.text().await.unwrap_or_default()),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn call_disabled(State(c): State<Caller>) -> (StatusCode, String) {
    relay(c.get("disabled").with_extension(DisablePropagation)).await
}

async fn call_named(State(c): State<Caller>) -> (StatusCode, String) {
    relay(c.get("named").with_extension(SpanName::new("charge card"))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_call_options_disable_propagation_and_name_the_span() {
    telemetry::exporter();
    let (back, seen) = start_back().await;
    let app = Router::new()
        .route("/disabled", get(call_disabled))
        .route("/named", get(call_named))
        .with_state(Caller::new(back))
        .layer(MeshServerLayer::new());
    let addr = serve(app).await;
    let client = reqwest::Client::new();

    // A fully traced request: W3C and B3 agreeing, baggage and pass-through headers.
    let incoming = |trace: &str, span: &str, id: &str| {
        client
            .get(format!("http://{addr}/{id}"))
            .header("traceparent", format!("00-{trace}-{span}-01"))
            .header("tracestate", "congo=t61rcWkgMzE")
            .header("x-b3-traceid", trace)
            .header("x-b3-spanid", span)
            .header("x-b3-sampled", "1")
            .header("baggage", "user=alice")
            .header("x-request-id", format!("req-{id}"))
            .header("x-ot-span-context", "opaque")
    };

    let disabled_trace = "a3000000000000000000000000000001";
    let res = incoming(disabled_trace, "b300000000000001", "disabled")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = seen_for(&seen, "disabled");
    for name in headers::trace_headers() {
        assert!(
            h.get(name).is_none(),
            "DisablePropagation still sent {name}: {:?}",
            h.get(name)
        );
    }
    // The client span is still recorded, in the caller's trace.
    let spans = spans_of(TraceId::from_hex(disabled_trace).unwrap(), 2).await;
    let server = one(&spans, "GET /disabled", SpanKind::Server);
    let client_span = one(&spans, "GET", SpanKind::Client);
    assert_eq!(client_span.parent_span_id, server.span_context.span_id());
    assert_eq!(
        attr(client_span, "http.response.status_code"),
        Some(Value::I64(200))
    );

    let named_trace = "a3000000000000000000000000000002";
    let res = incoming(named_trace, "b300000000000002", "named")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let spans = spans_of(TraceId::from_hex(named_trace).unwrap(), 2).await;
    let server = one(&spans, "GET /named", SpanKind::Server);
    let named = one(&spans, "charge card", SpanKind::Client);
    assert_eq!(named.parent_span_id, server.span_context.span_id());
    assert_eq!(attr(named, "http.request.method"), Some(s("GET")));
    // A renamed call still propagates, from the renamed span.
    let h = seen_for(&seen, "named");
    let tp = header(&h, "traceparent");
    assert_eq!(trace_id_of(tp), TraceId::from_hex(named_trace).unwrap());
    assert_eq!(span_id_of(tp), named.span_context.span_id());
    assert_eq!(header(&h, "x-request-id"), "req-named");
}

// ---------------------------------------------------------------------------------------------
// 4. Plain reqwest: RequestBuilderExt
// ---------------------------------------------------------------------------------------------

/// Makes the request `send` sends (a plain reqwest call, which must answer 200) inside `root`;
/// returns the root span's trace and span ids.
async fn send_in<F>(root: Span, send: impl FnOnce() -> F) -> (TraceId, SpanId)
where
    F: Future<Output = reqwest::Result<reqwest::Response>>,
{
    let (trace_id, root_id) = async {
        let sc = Span::current().context().span().span_context().clone();
        let res = send().await.unwrap();
        assert_eq!(res.status(), 200);
        (sc.trace_id(), sc.span_id())
    }
    .instrument(root)
    .await;
    assert_ne!(trace_id, TraceId::INVALID);
    (trace_id, root_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_reqwest_send_traced_makes_a_client_span() {
    telemetry::exporter();
    let (back, seen) = start_back().await;
    let root = tracing::info_span!("plain-reqwest-root");
    let (trace_id, root_id) = send_in(root, || {
        reqwest::Client::new()
            .get(format!("{back}/back/send-traced"))
            .send_traced()
    })
    .await;

    let spans = spans_of(trace_id, 2).await;
    let client = one(&spans, "GET", SpanKind::Client);
    assert_eq!(client.parent_span_id, root_id);
    assert_eq!(
        attr(client, "http.response.status_code"),
        Some(Value::I64(200))
    );
    assert_eq!(
        attr(client, "url.full"),
        Some(s(&format!("{back}/back/send-traced")))
    );
    let h = seen_for(&seen, "send-traced");
    let tp = header(&h, "traceparent");
    assert_eq!(trace_id_of(tp), trace_id);
    assert_eq!(span_id_of(tp), client.span_context.span_id());
    assert_eq!(
        header(&h, "x-b3-spanid"),
        client.span_context.span_id().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_reqwest_inject_context_names_the_current_span() {
    telemetry::exporter();
    let (back, seen) = start_back().await;
    let root = tracing::info_span!("inject-context-root");
    let (trace_id, root_id) = send_in(root, || {
        reqwest::Client::new()
            .get(format!("{back}/back/inject-context"))
            .inject_context()
            .send()
    })
    .await;

    let h = seen_for(&seen, "inject-context");
    let tp = header(&h, "traceparent");
    assert_eq!(trace_id_of(tp), trace_id);
    assert_eq!(span_id_of(tp), root_id, "names the current span");
    assert_eq!(header(&h, "x-b3-spanid"), root_id.to_string());
    // The root span ended when the instrumented future was dropped: it is the last span of
    // this trace to end, so any client span would be exported by now.
    let spans = spans_of(trace_id, 1).await;
    assert_eq!(
        spans.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>(),
        ["inject-context-root"],
        "inject_context opens no span"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. MeshClientInterceptor
// ---------------------------------------------------------------------------------------------

const INTERCEPT_TRACE: &str = "a5000000000000000000000000000001";
const INTERCEPT_ENVOY_SPAN: &str = "b500000000000001";
const INTERCEPT_REQUEST_ID: &str = "2d4b7e1f-3c5a-4f6e-8b9d-0a1b2c3d4e5f";

/// A handler span whose parent was extracted from Envoy's B3 headers and x-request-id.
fn span_with_istio_parent() -> Span {
    let mut incoming = http::HeaderMap::new();
    incoming.insert("x-b3-traceid", INTERCEPT_TRACE.parse().unwrap());
    incoming.insert("x-b3-spanid", INTERCEPT_ENVOY_SPAN.parse().unwrap());
    incoming.insert("x-b3-sampled", "1".parse().unwrap());
    incoming.insert("x-request-id", INTERCEPT_REQUEST_ID.parse().unwrap());
    incoming.insert("baggage", "tenant=acme".parse().unwrap());
    let cx = MeshPropagator::istio().extract_from_headers_with_context(&Context::new(), &incoming);
    assert!(cx.span().span_context().is_valid());
    let span = tracing::info_span!("grpc-caller");
    span.set_parent(cx).expect("OpenTelemetry layer installed");
    span
}

fn grpc_request() -> tonic::Request<()> {
    let mut req = tonic::Request::new(());
    req.metadata_mut()
        .insert("x-app-header", "kept".parse().unwrap());
    req
}

#[test]
fn interceptor_injects_the_current_span_and_pass_through() {
    telemetry::exporter();
    let span = span_with_istio_parent();
    let _entered = span.enter();
    let current = Span::current().context().span().span_context().clone();
    assert_eq!(current.trace_id().to_string(), INTERCEPT_TRACE);
    assert_ne!(current.span_id().to_string(), INTERCEPT_ENVOY_SPAN);

    let req = MeshClientInterceptor::new()
        .call(grpc_request())
        .expect("ok");
    let md = req.metadata();
    let get = |name: &str| -> &str {
        md.get(name)
            .unwrap_or_else(|| panic!("{name} missing from {md:?}"))
            .to_str()
            .unwrap()
    };
    assert_eq!(
        get("traceparent"),
        format!("00-{INTERCEPT_TRACE}-{}-01", current.span_id())
    );
    assert_eq!(get("x-b3-traceid"), INTERCEPT_TRACE);
    assert_eq!(get("x-b3-spanid"), current.span_id().to_string());
    assert_eq!(get("x-b3-sampled"), "1");
    assert_eq!(get("x-request-id"), INTERCEPT_REQUEST_ID);
    assert_eq!(get("baggage"), "tenant=acme");
    // The application's own metadata survives.
    assert_eq!(get("x-app-header"), "kept");
}

#[test]
fn interceptor_with_disable_propagation_adds_nothing() {
    telemetry::exporter();
    let span = span_with_istio_parent();
    let _entered = span.enter();
    let mut req = grpc_request();
    req.extensions_mut().insert(DisablePropagation);
    let req = MeshClientInterceptor::new().call(req).expect("ok");
    let headers = req.metadata().clone().into_headers();
    assert_eq!(
        headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["x-app-header"],
        "only the application's own metadata"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Links to the contexts that lost a conflict
// ---------------------------------------------------------------------------------------------

fn link_format(link: &opentelemetry::trace::Link) -> Option<Value> {
    link.attributes
        .iter()
        .find(|kv| kv.key == Key::from_static_str("meshtrace.link.format"))
        .map(|kv| kv.value.clone())
}

fn link_ids(span: &SpanData) -> Vec<(String, String, Option<Value>)> {
    span.links
        .iter()
        .map(|l| {
            (
                l.span_context.trace_id().to_string(),
                l.span_context.span_id().to_string(),
                link_format(l),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_span_links_to_losing_contexts() {
    telemetry::exporter();
    let app = Router::new()
        .route("/linked", get(|| async { "ok" }))
        .layer(MeshServerLayer::new());
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let send = |headers: Vec<(&'static str, String)>| {
        let mut req = client.get(format!("http://{addr}/linked"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
        }
    };
    let server_of = |spans: Vec<SpanData>| {
        assert_eq!(spans.len(), 1, "{spans:#?}");
        spans.into_iter().next().unwrap()
    };

    // traceparent against B3 multi, different traces: traceparent wins by default.
    let (w3c, b3) = (
        "a6000000000000000000000000000001",
        "c6000000000000000000000000000001",
    );
    send(vec![
        ("traceparent", format!("00-{w3c}-b600000000000001-01")),
        ("x-b3-traceid", b3.into()),
        ("x-b3-spanid", "d600000000000001".into()),
        ("x-b3-sampled", "1".into()),
    ])
    .await;
    let server = server_of(spans_of(TraceId::from_hex(w3c).unwrap(), 1).await);
    assert_eq!(server.parent_span_id.to_string(), "b600000000000001");
    assert_eq!(
        link_ids(&server),
        [(b3.into(), "d600000000000001".into(), Some(s("b3multi")))]
    );
    assert!(server.links[0].span_context.is_remote());
    assert!(server.links[0].span_context.is_sampled());

    // traceparent against the single b3 header.
    let (w3c, b3) = (
        "a6000000000000000000000000000002",
        "c6000000000000000000000000000002",
    );
    send(vec![
        ("traceparent", format!("00-{w3c}-b600000000000002-01")),
        ("b3", format!("{b3}-d600000000000002-1")),
    ])
    .await;
    let server = server_of(spans_of(TraceId::from_hex(w3c).unwrap(), 1).await);
    assert_eq!(
        link_ids(&server),
        [(b3.into(), "d600000000000002".into(), Some(s("b3")))]
    );

    // Three formats, three traces: one link per loser.
    let w3c = "a6000000000000000000000000000003";
    send(vec![
        ("traceparent", format!("00-{w3c}-b600000000000003-01")),
        (
            "b3",
            "c6000000000000000000000000000003-d600000000000003-1".into(),
        ),
        ("x-b3-traceid", "e6000000000000000000000000000003".into()),
        ("x-b3-spanid", "f600000000000003".into()),
        ("x-b3-sampled", "0".into()),
    ])
    .await;
    let server = server_of(spans_of(TraceId::from_hex(w3c).unwrap(), 1).await);
    let mut links = link_ids(&server);
    links.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        links,
        [
            (
                "c6000000000000000000000000000003".into(),
                "d600000000000003".into(),
                Some(s("b3"))
            ),
            (
                "e6000000000000000000000000000003".into(),
                "f600000000000003".into(),
                Some(s("b3multi"))
            ),
        ]
    );

    // Formats that agree on the trace make no link.
    let w3c = "a6000000000000000000000000000004";
    send(vec![
        ("traceparent", format!("00-{w3c}-b600000000000004-01")),
        ("x-b3-traceid", w3c.into()),
        ("x-b3-spanid", "b600000000000004".into()),
        ("x-b3-sampled", "1".into()),
    ])
    .await;
    let server = server_of(spans_of(TraceId::from_hex(w3c).unwrap(), 1).await);
    assert!(server.links.is_empty(), "{:?}", link_ids(&server));

    // Nor do formats that name the same trace with different spans: only another trace is
    // worth a link.
    let w3c = "a6000000000000000000000000000005";
    send(vec![
        ("traceparent", format!("00-{w3c}-b600000000000005-01")),
        ("x-b3-traceid", w3c.into()),
        ("x-b3-spanid", "d600000000000005".into()),
        ("x-b3-sampled", "1".into()),
    ])
    .await;
    let server = server_of(spans_of(TraceId::from_hex(w3c).unwrap(), 1).await);
    assert_eq!(server.parent_span_id.to_string(), "b600000000000005");
    assert!(server.links.is_empty(), "{:?}", link_ids(&server));
}

// ---------------------------------------------------------------------------------------------
// 7. No context leaks between concurrent requests
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Together {
    caller: Caller,
    barrier: Arc<tokio::sync::Barrier>,
}

async fn together(State(t): State<Together>, Path(tag): Path<String>) -> (StatusCode, String) {
    // Both requests are in their handlers at once before either calls out.
    if let Err(answer) = wait_for_partner(&t.barrier).await {
        return answer;
    }
    let trace_in_handler = current_trace_id();
    match t.caller.call(&tag).await {
        Ok(()) => (StatusCode::OK, trace_in_handler.to_string()),
        Err(answer) => answer,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_keep_their_own_context() {
    telemetry::exporter();
    let (back, seen) = start_back().await;
    let app = Router::new()
        .route("/together/{tag}", get(together))
        .with_state(Together {
            caller: Caller::new(back),
            barrier: Arc::new(tokio::sync::Barrier::new(2)),
        })
        .layer(MeshServerLayer::new());
    let addr = serve(app).await;
    let client = reqwest::Client::new();

    for round in 0..3 {
        let requests = (0..2).map(|i| {
            let tag = format!("r{round}-{i}");
            let trace = format!("a7{:030}", round * 10 + i);
            let req = client
                .get(format!("http://{addr}/together/{tag}"))
                .header("traceparent", format!("00-{trace}-b7{:014}-01", i + 1))
                .header("x-request-id", format!("id-{tag}"))
                .header("baggage", format!("who={tag}"));
            async move {
                let res = req.send().await.unwrap();
                assert_eq!(res.status(), 200);
                assert_eq!(res.text().await.unwrap(), trace, "handler's own trace");
                (tag, trace)
            }
        });
        let done = futures_util::future::join_all(requests).await;
        for (tag, trace) in done {
            let h = seen_for(&seen, &tag);
            assert_eq!(header(&h, "x-request-id"), format!("id-{tag}"));
            assert_eq!(header(&h, "baggage"), format!("who={tag}"));
            let tp = header(&h, "traceparent");
            let trace_id = TraceId::from_hex(&trace).unwrap();
            assert_eq!(trace_id_of(tp), trace_id, "{tag}");
            assert_eq!(header(&h, "x-b3-traceid"), trace);
            // The back request came from this request's own client span.
            let spans = spans_of(trace_id, 2).await;
            let server = one(&spans, "GET /together/{tag}", SpanKind::Server);
            let client_span = one(&spans, "GET", SpanKind::Client);
            assert_eq!(client_span.parent_span_id, server.span_context.span_id());
            assert_eq!(span_id_of(tp), client_span.span_context.span_id());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Property: a whole hop over arbitrary headers
// ---------------------------------------------------------------------------------------------

mod hop {
    use super::*;
    use proptest::prelude::*;
    use std::convert::Infallible;
    use tower::{Layer, ServiceExt};

    /// Valid values of the known headers (trace ids of their own, not shared with the
    /// other tests of this file).
    const TEMPLATES: &[&str] = &[
        "00-a8f92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-a8f92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        "00-a8f92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        "user=alice,tier=gold;ttl=30",
        "a8f92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b8-1-00000000000000cd",
        "a3ce929d0e0e4738-00f067aa0ba902b9-d",
        "a8f92f3577b34da6a3ce929d0e0e4739",
        "a3ce929d0e0e473a",
        "00f067aa0ba902ba",
        "0000000000000000",
        "1",
        "0",
        "d",
        "true",
        "3e1c6d4a-5b2f-4c8e-9d7a-1f0b2c3d4e5f",
        "opaque/lightstep;ctx=Zm9vYmFy",
        "",
    ];

    /// Bytes that break parsers: CR, LF, NUL, other controls, DEL, non-ASCII, separators.
    const NASTY: &[u8] = &[
        b'\r', b'\n', 0, 0x01, 0x1f, 0x7f, 0x80, 0xc3, 0xa9, 0xff, b'\t', b' ', b',', b';', b'=',
        b'-', b'%',
    ];

    fn name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => prop::sample::select(headers::trace_headers()).prop_map(|n| n.as_bytes().to_vec()),
            1 => (prop::sample::select(headers::trace_headers()), any::<u64>()).prop_map(|(n, seed)| {
                n.bytes()
                    .enumerate()
                    .map(|(i, b)| if seed >> (i % 64) & 1 == 1 { b.to_ascii_uppercase() } else { b })
                    .collect()
            }),
            1 => "[a-z0-9-]{1,20}".prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..12),
        ]
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(TEMPLATES).prop_map(|t| t.as_bytes().to_vec()),
            3 => (
                prop::sample::select(TEMPLATES),
                any::<prop::sample::Index>(),
                prop::sample::select(NASTY),
                0u8..3,
            )
                .prop_map(|(t, at, byte, how)| {
                    let mut v = t.as_bytes().to_vec();
                    let i = if v.is_empty() { 0 } else { at.index(v.len()) };
                    match how {
                        0 if !v.is_empty() => v[i] = byte,
                        1 => v.truncate(i),
                        _ => v.insert(i, byte),
                    }
                    v
                }),
            2 => prop::collection::vec(any::<u8>(), 0..64),
            2 => prop::collection::vec(prop::sample::select(NASTY), 0..16),
            // Longer than any pass-through bound.
            1 => ("[!-~]", 500usize..3000).prop_map(|(c, n)| c.repeat(n).into_bytes()),
        ]
    }

    /// What the handler saw and sent on.
    #[derive(Clone)]
    struct Outgoing {
        current: SpanContext,
        headers: http::HeaderMap,
    }

    fn is_lower_hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// `00-<32 hex>-<16 hex>-0[0-3]`, with non-zero ids.
    fn well_formed_traceparent(tp: &str) -> bool {
        let parts: Vec<&str> = tp.split('-').collect();
        parts.len() == 4
            && parts[0] == "00"
            && is_lower_hex(parts[1], 32)
            && parts[1] != "0".repeat(32)
            && is_lower_hex(parts[2], 16)
            && parts[2] != "0".repeat(16)
            && matches!(parts[3], "00" | "01" | "02" | "03")
    }

    /// One hop: `MeshServerLayer` around a handler that calls out through `MeshClientInterceptor`.
    fn hop(headers: http::HeaderMap) -> Outgoing {
        let handler = tower::service_fn(|_req: http::Request<()>| async {
            let current = Span::current().context().span().span_context().clone();
            let out = MeshClientInterceptor::new()
                .call(tonic::Request::new(()))
                .expect("the interceptor never refuses");
            let headers = out.metadata().clone().into_headers();
            Ok::<_, Infallible>(
                http::Response::builder()
                    .extension(Outgoing { current, headers })
                    .body(())
                    .expect("response"),
            )
        });
        let svc = MeshServerLayer::new().layer(handler);
        let mut req = http::Request::new(());
        *req.headers_mut() = headers;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let res = rt.block_on(svc.oneshot(req)).expect("infallible");
        let out = res
            .extensions()
            .get::<Outgoing>()
            .expect("handler ran")
            .clone();
        // Dropping the response (and its body) ends the server span.
        drop(res);
        out
    }

    proptest! {
        // No failure persistence: a failing case is printed, not saved to a file in `tests/`.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::with_cases(64)
        })]

        #[test]
        fn any_headers_through_a_hop(pairs in prop::collection::vec((name(), value()), 0..12)) {
            telemetry::exporter();
            let mut headers = http::HeaderMap::new();
            for (n, v) in &pairs {
                // Skip what http itself refuses (CR, LF, NUL, other controls in values; bad names).
                if let (Ok(n), Ok(v)) = (
                    http::HeaderName::from_bytes(n),
                    http::HeaderValue::from_bytes(v),
                ) {
                    headers.append(n, v);
                }
            }
            let expected = MeshPropagator::istio()
                .extract_from_headers_with_context(&Context::new(), &headers);
            let expected = expected.span().span_context().clone();

            let out = hop(headers.clone());

            // Nothing unsafe goes out.
            for (k, v) in &out.headers {
                prop_assert!(
                    !v.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
                    "{k}: {v:?} holds CR/LF/NUL"
                );
            }
            // Pass-through values go out byte-for-byte as one of the values received.
            for name in headers::PASS_THROUGH_HEADERS {
                let received: Vec<&[u8]> =
                    headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
                for v in out.headers.get_all(name) {
                    prop_assert!(
                        received.contains(&v.as_bytes()),
                        "{name}: sent {v:?}, received {received:?}"
                    );
                }
            }
            // A trace always goes on: the incoming one, or a new root.
            let tps: Vec<&http::HeaderValue> = out.headers.get_all("traceparent").iter().collect();
            prop_assert_eq!(tps.len(), 1, "one traceparent in {:?}", out.headers);
            let tp = tps[0].to_str().expect("text");
            prop_assert!(well_formed_traceparent(tp), "malformed traceparent {:?}", tp);
            prop_assert_eq!(span_id_of(tp), out.current.span_id(), "names the server span");
            prop_assert_eq!(trace_id_of(tp), out.current.trace_id());
            if expected.is_valid() {
                prop_assert_eq!(trace_id_of(tp), expected.trace_id(), "continues the incoming trace");
            }
            // B3 says the same as traceparent.
            let b3_trace = out.headers.get("x-b3-traceid").map(|v| v.to_str().unwrap_or_default());
            prop_assert!(
                b3_trace.is_some_and(|t| out.current.trace_id().to_string().ends_with(t)),
                "x-b3-traceid {:?} vs {}", b3_trace, tp
            );
            prop_assert_eq!(
                out.headers.get("x-b3-spanid").map(|v| v.as_bytes().to_vec()),
                Some(out.current.span_id().to_string().into_bytes())
            );

            // The server span as exported (when sampled): a child of the incoming context, or a root.
            if out.current.is_sampled() {
                let server: Vec<SpanData> = finished_now(out.current.trace_id())
                    .into_iter()
                    .filter(|s| s.span_context.span_id() == out.current.span_id())
                    .collect();
                prop_assert_eq!(server.len(), 1, "the server span was exported");
                prop_assert_eq!(&server[0].span_kind, &SpanKind::Server);
                let want_parent = if expected.is_valid() { expected.span_id() } else { SpanId::INVALID };
                prop_assert_eq!(server[0].parent_span_id, want_parent);
            }
        }
    }
}
