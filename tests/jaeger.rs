//! Proof in a real Jaeger (v2, built from its Go module: `tests/support/jaeger.rs`), across a
//! mesh of Rust and Go services: every trace is read back from Jaeger's query API and checked
//! as a user sees it in Jaeger's UI.
//!
//! - The demo's services (`cargo run --example mesh_demo`) export over OTLP/gRPC and over
//!   OTLP/HTTP with protobuf: every request is one whole trace (one root, every parent in the
//!   trace, no warnings from Jaeger) across `productpage`, `reviews` and `ratings` and the
//!   proxies in front, with the span kinds, the error status of the failing request and the
//!   `x-request-id` attribute.
//! - Unsampled requests leave nothing in Jaeger, yet their headers reach the last service.
//! - Rust → Go (otelgrpc, `OTEL_PROPAGATORS=tracecontext,baggage,b3multi`) → Rust, and Rust →
//!   Go (forwarding the Istio header list by hand, no spans) → Rust, each with B3 multi and
//!   with W3C input: the trace is whole across languages, baggage and `x-request-id` reach the
//!   last Rust service, and through the hand-forwarding service the last span's parent is the
//!   first service's client span.
//!
//! Without Jaeger (or Go, for the Go peers) each test says why in one line and passes;
//! `.ci/run` builds them and sets `MESHTRACE_REQUIRE_PEERS=1`, which makes them required.
#![cfg(all(
    feature = "otlp",
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
use meshtrace::server::MeshServerLayer;
use meshtrace::{Format, MeshPropagator};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanId, SpanKind, TraceContextExt, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderInjector;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use reqwest_middleware::ClientWithMiddleware;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use support::demo::{run_demo, PROXIES, SERVICES};
use support::go_peer::{GoPeer, Mode};
use support::jaeger::{Jaeger, JaegerSpan, JaegerTrace};
use support::otlp::service::{builder, env, Service};
use support::otlp::Transport;
use support::relay::{relay, ForwardReply, RelayClient};
use support::servers::{listen, traced_client};
use support::telemetry::runtime;
use tracing_opentelemetry::OpenTelemetrySpanExt;

// ---------------------------------------------------------------- the demo, in Jaeger

/// One request of the demo as it printed it.
#[derive(Debug)]
struct Printed {
    trace_id: TraceId,
    path: String,
    spans: usize,
    request_id: String,
}

/// The traces the demo printed: `trace <id>  request <n>: GET <path>  (…; <n> spans, …)`
/// followed by `  x-request-id <id> reached: …`.
fn printed(stdout: &str) -> Vec<Printed> {
    let mut out: Vec<Printed> = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("trace ") {
            let id = rest.split_whitespace().next().expect("trace id");
            let path = rest
                .split_once("GET ")
                .and_then(|(_, r)| r.split_whitespace().next())
                .expect("path");
            let spans = rest
                .split_once("; ")
                .and_then(|(_, r)| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .expect("span count");
            out.push(Printed {
                trace_id: TraceId::from_hex(id).expect("hex trace id"),
                path: path.to_owned(),
                spans,
                request_id: String::new(),
            });
        } else if let Some(rest) = line.trim_start().strip_prefix("x-request-id ") {
            let id = rest.split_whitespace().next().expect("request id");
            out.last_mut().expect("after a trace line").request_id = id.to_owned();
        }
    }
    out
}

/// The values of a string-array attribute (request headers) as Jaeger shows it: a JSON array
/// in text.
fn header_values(span: &JaegerSpan, header: &str) -> Vec<String> {
    let key = format!("http.request.header.{header}");
    let Some(text) = span.tag(&key) else {
        return Vec::new();
    };
    serde_json::from_str(text).unwrap_or_else(|_| vec![text.to_owned()])
}

/// Runs the demo exporting with `protocol` to a fresh Jaeger and checks every trace there.
fn demo_in_jaeger(test: &str, protocol: &str) {
    let driver = runtime("driver", 1, None);
    let Some(jaeger) = driver.block_on(Jaeger::start(test)) else {
        return;
    };
    let endpoint = match protocol {
        "grpc" => jaeger.grpc_endpoint(),
        _ => jaeger.http_endpoint(),
    };
    let run = run_demo(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
    ]);
    let out = &run.stdout;
    assert!(run.success, "mesh_demo failed\n{out}\n{}", run.stderr);
    let exported = out
        .lines()
        .find_map(|l| l.strip_prefix("also exported to "))
        .unwrap_or_else(|| panic!("the demo says where it exported: {out}"));
    assert!(exported.starts_with(&endpoint), "{exported}");
    assert!(
        exported.contains(&format!("(OTLP {protocol})")),
        "{exported}"
    );
    assert!(!out.contains("export failed"), "{out}");
    let requests = printed(out);
    assert_eq!(requests.len(), 4, "{out}");

    let all: BTreeSet<&str> = SERVICES.into_iter().chain(PROXIES).collect();
    let mut failed = 0;
    for r in &requests {
        let trace = driver.block_on(jaeger.wait_for_trace(r.trace_id, r.spans));
        assert_eq!(
            trace.spans.len(),
            r.spans,
            "as many spans as the demo printed: {trace}"
        );
        trace.assert_whole();
        assert_eq!(trace.services(), all, "{trace}");

        // The proxies first, then each hop's client span and the next service's server span.
        let gateway = trace.span(
            PROXIES[0],
            "productpage.default.svc.cluster.local:9080/*",
            "client",
        );
        assert!(
            gateway.parents.is_empty(),
            "the gateway's span is the root: {trace}"
        );
        let sidecar = trace.span(PROXIES[1], &gateway.operation, "server");
        trace.assert_child_of(sidecar, gateway);
        let productpage = trace.span("productpage", "GET /productpage/{id}", "server");
        trace.assert_child_of(productpage, sidecar);
        let reviews_call = trace.span("productpage", "reviews.Reviews/Get", "client");
        let reviews = trace.span("reviews", "reviews.Reviews/Get", "server");
        trace.assert_child_of(reviews, reviews_call);
        let ratings_call = trace.span("reviews", "GET /ratings/{id}", "client");
        let ratings = trace.span("ratings", "GET /ratings/{id}", "server");
        trace.assert_child_of(ratings, ratings_call);

        // x-request-id, recorded by every server span, is the one the edge sent.
        for server in [productpage, reviews, ratings] {
            assert_eq!(
                header_values(server, "x-request-id"),
                [r.request_id.as_str()],
                "{} in {trace}",
                server.service
            );
        }
        assert_eq!(
            gateway.tag("guid:x-request-id"),
            Some(r.request_id.as_str())
        );

        // The failing product fails on the way back up, and only there.
        if r.path.ends_with("/13") {
            failed += 1;
            for span in [
                ratings,
                ratings_call,
                reviews,
                reviews_call,
                productpage,
                sidecar,
                gateway,
            ] {
                assert!(
                    span.is_error(),
                    "{} {} is an error in {trace}",
                    span.service,
                    span.operation
                );
            }
            assert_eq!(ratings.tag("http.response.status_code"), Some("503"));
            assert_eq!(productpage.tag("http.response.status_code"), Some("502"));
            assert_eq!(reviews.tag("rpc.grpc.status_code"), Some("14"));
        } else {
            let errors: Vec<&JaegerSpan> = trace.spans.iter().filter(|s| s.is_error()).collect();
            assert!(errors.is_empty(), "no error in {trace}");
        }
    }
    assert_eq!(failed, 1, "{out}");
    let services = driver.block_on(jaeger.services());
    assert!(
        services.iter().map(String::as_str).collect::<BTreeSet<_>>() == all,
        "{services:?}"
    );
}

#[test]
fn demo_traces_are_whole_in_jaeger_over_otlp_grpc() {
    demo_in_jaeger("demo_traces_are_whole_in_jaeger_over_otlp_grpc", "grpc");
}

#[test]
fn demo_traces_are_whole_in_jaeger_over_otlp_http_protobuf() {
    demo_in_jaeger(
        "demo_traces_are_whole_in_jaeger_over_otlp_http_protobuf",
        "http/protobuf",
    );
}

// ---------------------------------------------------------------- a mesh of our own

/// What the last service received: each request's headers.
type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// The headers of the one request with this `x-request-id` that reached the last service.
fn seen(seen: &Seen, request_id: &str) -> HeaderMap {
    let seen = seen.lock().expect("lock");
    let hits: Vec<&HeaderMap> = seen
        .iter()
        .filter(|h| h.get("x-request-id").is_some_and(|v| v == request_id))
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "one request with x-request-id {request_id} reached the last service: {seen:?}"
    );
    hits[0].clone()
}

/// Where the first service sends its requests.
#[derive(Clone)]
enum Next {
    /// `GET {base}/hop/{tag}` through `MeshClientMiddleware`.
    Http(ClientWithMiddleware, String),
    /// `Relay/Forward` with `/hop/{tag}` through `MeshClientLayer`.
    Grpc(Box<RelayClient>),
}

/// The first service: `GET /front/{tag}` calls `next`.
async fn front(State(next): State<Next>, Path(tag): Path<String>) -> (StatusCode, String) {
    match next {
        Next::Http(client, base) => match client.get(format!("{base}/hop/{tag}")).send().await {
            Ok(res) => {
                let status = res.status();
                (status, res.text().await.unwrap_or_default())
            }
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
        },
        Next::Grpc(mut client) => match client.forward(format!("/hop/{tag}")).await {
            Ok(reply) => (StatusCode::OK, reply.body),
            Err(status) => (StatusCode::BAD_GATEWAY, status.to_string()),
        },
    }
}

/// The last service's handler, as a user writes it: plain `#[instrument]`, reading the
/// baggage of its context.
#[tracing::instrument(skip_all, fields(hop.tag = %tag, baggage.user = tracing::field::Empty))]
fn answer(tag: &str) -> String {
    let span = tracing::Span::current();
    let user = span
        .context()
        .baggage()
        .get("user")
        .map(|v| v.to_string())
        .unwrap_or_default();
    span.record("baggage.user", user.as_str());
    format!("{tag}: user={user}")
}

async fn last_http(
    State(seen): State<Seen>,
    Path(tag): Path<String>,
    headers: HeaderMap,
) -> String {
    seen.lock().expect("lock").push(headers);
    answer(&tag)
}

/// The last service over HTTP (axum, `MeshServerLayer`): `GET /hop/{tag}`.
async fn serve_last_http(seen: Seen) -> SocketAddr {
    let app = Router::new()
        .route("/hop/{tag}", get(last_http))
        .with_state(seen)
        .layer(MeshServerLayer::new());
    let (listener, addr) = listen().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The last service over gRPC (tonic, `MeshServerLayer`): `Relay/Forward` with `/hop/{tag}`,
/// recording the request's metadata.
async fn serve_last_grpc(seen: Seen) -> SocketAddr {
    let service = relay(|path: String| async move {
        let tag = path.trim_start_matches("/hop/").to_owned();
        Ok(ForwardReply { body: answer(&tag) })
    });
    let record = tower::util::MapRequestLayer::new(move |req: http::Request<tonic::body::Body>| {
        seen.lock().expect("lock").push(req.headers().clone());
        req
    });
    let (listener, addr) = listen().await;
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(MeshServerLayer::new())
            .layer(record)
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    addr
}

/// A Rust service exporting to `jaeger` over OTLP/gRPC.
fn service<A>(
    jaeger: &Jaeger,
    name: &str,
    app: impl std::future::Future<Output = A>,
) -> Service<A> {
    let env = env(name, Transport::Grpc, jaeger.grpc_endpoint());
    Service::launch(name, builder(&env), app)
}

/// The edge's trace formats: what a caller in front of the first service sends.
#[derive(Clone, Copy, Debug)]
enum Input {
    B3Multi,
    W3c,
}

/// The edge: a proxy reporting its own span (a new trace) to Jaeger, sending the request
/// with its context in `input`'s format, baggage `user=alice` and an `x-request-id`.
struct Edge {
    service: Service<()>,
}

/// One request the edge sent.
struct Request {
    trace_id: TraceId,
    edge_span: SpanId,
    request_id: String,
}

impl Edge {
    fn new(jaeger: &Jaeger) -> Edge {
        Edge {
            service: service(jaeger, PROXIES[0], async {}),
        }
    }

    /// `GET http://{front}/front/{tag}`; the answer's status and body.
    fn send(&self, front: SocketAddr, tag: &str, input: Input) -> (Request, StatusCode, String) {
        let provider = self.service.provider.as_ref().expect("the SDK is enabled");
        let tracer = provider.tracer("edge");
        let span = tracer
            .span_builder(format!("GET /front/{tag}"))
            .with_kind(SpanKind::Client)
            .with_attributes([KeyValue::new("edge.input", format!("{input:?}"))])
            .start_with_context(&tracer, &Context::new());
        let cx = Context::new()
            .with_span(span)
            .with_baggage([KeyValue::new("user", "alice")]);
        let formats = match input {
            Input::B3Multi => Format::B3Multi | Format::Baggage,
            Input::W3c => Format::TraceContext | Format::Baggage,
        };
        let propagator = MeshPropagator::builder()
            .inject(formats)
            .build()
            .expect("propagator");
        let mut headers = HeaderMap::new();
        propagator.inject_context(&cx, &mut HeaderInjector(&mut headers));
        let request_id =
            uuid::Uuid::from_bytes(cx.span().span_context().trace_id().to_bytes()).to_string();
        headers.insert("x-request-id", request_id.parse().expect("header value"));
        let request = Request {
            trace_id: cx.span().span_context().trace_id(),
            edge_span: cx.span().span_context().span_id(),
            request_id,
        };
        let (status, body) = self.service.block_on(async {
            let res = reqwest::Client::new()
                .get(format!("http://{front}/front/{tag}"))
                .headers(headers)
                .send()
                .await
                .expect("the front service answers");
            (res.status(), res.text().await.unwrap_or_default())
        });
        cx.span().end();
        (request, status, body)
    }
}

/// Flushes every service, so Jaeger has their spans.
fn flush_all(services: &[&dyn Fn() -> opentelemetry_sdk::error::OTelSdkResult]) {
    for flush in services {
        flush().expect("flush to Jaeger");
    }
}

#[test]
fn unsampled_requests_leave_nothing_in_jaeger_but_forward_their_headers() {
    let test = "unsampled_requests_leave_nothing_in_jaeger_but_forward_their_headers";
    let driver = runtime("driver", 1, None);
    let Some(jaeger) = driver.block_on(Jaeger::start(test)) else {
        return;
    };
    let received = Seen::default();
    let last = service(&jaeger, "backend", serve_last_http(received.clone()));
    let back = format!("http://{}", last.app);
    let first = service(&jaeger, "frontend", async move {
        let app = Router::new()
            .route("/front/{tag}", get(front))
            .with_state(Next::Http(traced_client(), back))
            .layer(MeshServerLayer::new());
        let (listener, addr) = listen().await;
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let edge = Edge::new(&jaeger);

    // An unsampled request, as Envoy sends one when the mesh's sampling said no.
    let unsampled =
        TraceId::from_bytes(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128.to_be_bytes());
    let answer = driver.block_on(async {
        reqwest::Client::new()
            .get(format!("http://{}/front/unsampled", first.app))
            .header("x-b3-traceid", unsampled.to_string())
            .header("x-b3-spanid", "00f067aa0ba902b7")
            .header("x-b3-sampled", "0")
            .header("baggage", "user=bob")
            .header("x-request-id", "unsampled-request")
            .send()
            .await
            .expect("answer")
            .text()
            .await
            .expect("body")
    });
    assert_eq!(answer, "unsampled: user=bob");
    // Then a sampled one, so that once it is in Jaeger, everything before it was flushed.
    let (sampled, status, _) = edge.send(first.app, "sampled", Input::B3Multi);
    assert_eq!(status, StatusCode::OK);
    flush_all(&[&|| edge.service.flush(), &|| first.flush(), &|| {
        last.flush()
    }]);

    let trace = driver.block_on(jaeger.wait_for_trace(sampled.trace_id, 5));
    trace.assert_whole();
    assert_eq!(trace.spans.len(), 5, "{trace}");
    assert!(
        driver.block_on(jaeger.trace(unsampled)).is_none(),
        "the unsampled trace is in Jaeger"
    );

    // Its headers still reached the last service: the trace, not sampled, its baggage and
    // its x-request-id.
    let h = seen(&received, "unsampled-request");
    let traceparent = h["traceparent"].to_str().expect("ascii");
    assert!(
        traceparent.starts_with(&format!("00-{unsampled}-")),
        "{traceparent}"
    );
    assert!(traceparent.ends_with("-00"), "{traceparent}");
    assert_eq!(h["x-b3-traceid"], unsampled.to_string().as_str());
    assert_eq!(h["x-b3-sampled"], "0");
    assert_eq!(h["baggage"], "user=bob");
    assert_eq!(h["x-request-id"], "unsampled-request");
}

// ---------------------------------------------------------------- Rust → Go → Rust

/// The spans of one request through Rust → Go (`mode`) → Rust, in Jaeger.
fn through_go(test: &str, mode: Mode, input: Input) {
    let driver = runtime("driver", 1, None);
    let Some(jaeger) = driver.block_on(Jaeger::start(test)) else {
        return;
    };
    let received = Seen::default();
    let last = match mode {
        Mode::Grpc => service(&jaeger, "backend", serve_last_grpc(received.clone())),
        Mode::Http => service(&jaeger, "backend", serve_last_http(received.clone())),
    };
    let go_env = vec![
        ("OTEL_SERVICE_NAME", "go-grpc".to_owned()),
        (
            "OTEL_PROPAGATORS",
            "tracecontext,baggage,b3multi".to_owned(),
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let Some(mut go) = GoPeer::start(test, mode, last.app, &go_env) else {
        return;
    };
    let go_addr = go.addr;
    let first = service(&jaeger, "frontend", async move {
        let next = match mode {
            Mode::Grpc => Next::Grpc(Box::new(RelayClient::new(go_addr))),
            Mode::Http => Next::Http(traced_client(), format!("http://{go_addr}")),
        };
        let app = Router::new()
            .route("/front/{tag}", get(front))
            .with_state(next)
            .layer(MeshServerLayer::new());
        let (listener, addr) = listen().await;
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let edge = Edge::new(&jaeger);

    // First an unsampled request, written by hand in `input`'s format.
    let ids = RandomIdGenerator::default();
    let (unsampled, parent) = (ids.new_trace_id(), ids.new_span_id());
    let unsampled_id = format!("unsampled-{unsampled}");
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, value.parse().expect("header value"));
    };
    match input {
        Input::B3Multi => {
            set("x-b3-traceid", unsampled.to_string());
            set("x-b3-spanid", parent.to_string());
            set("x-b3-sampled", "0".into());
        }
        Input::W3c => set("traceparent", format!("00-{unsampled}-{parent}-00")),
    }
    set("baggage", "user=bob".into());
    set("x-request-id", unsampled_id.clone());
    let body = driver.block_on(async {
        let res = reqwest::Client::new()
            .get(format!("http://{}/front/u1", first.app))
            .headers(headers)
            .send()
            .await
            .expect("answer");
        res.text().await.expect("body")
    });
    assert_eq!(body, "u1: user=bob");

    // Then a sampled one from the edge.
    let (request, status, body) = edge.send(first.app, "t1", input);
    assert_eq!((status, body.as_str()), (StatusCode::OK, "t1: user=alice"));
    flush_all(&[&|| edge.service.flush(), &|| first.flush(), &|| {
        last.flush()
    }]);
    // The Go peer exports what it has when it stops.
    go.stop();

    // edge 1, frontend 2 (server, client), Go 2 (otelgrpc server, client) or none,
    // backend 2 (server, handler).
    let expected = match mode {
        Mode::Grpc => 7,
        Mode::Http => 5,
    };
    let trace = driver.block_on(jaeger.wait_for_trace(request.trace_id, expected));
    assert_eq!(trace.spans.len(), expected, "{trace}");
    trace.assert_whole();
    check_chain(&trace, &request, mode);

    // What the last Rust service received, header by header.
    let h = seen(&received, &request.request_id);
    assert!(
        h["baggage"].to_str().expect("ascii").contains("user=alice"),
        "{h:?}"
    );

    // The unsampled request left nothing in Jaeger, from either language (everything the Go
    // peer had is exported by now: it stopped), but its trace, unsampled, and its baggage
    // reached the last Rust service.
    assert!(
        driver.block_on(jaeger.trace(unsampled)).is_none(),
        "the unsampled trace {unsampled} is in Jaeger"
    );
    let h = seen(&received, &unsampled_id);
    let traceparent = h["traceparent"].to_str().expect("ascii");
    assert!(
        traceparent.starts_with(&format!("00-{unsampled}-")),
        "{h:?}"
    );
    assert!(traceparent.ends_with("-00"), "{h:?}");
    assert!(
        h["baggage"].to_str().expect("ascii").contains("user=bob"),
        "{h:?}"
    );
}

/// The trace through the Go peer, as Jaeger shows it.
fn check_chain(trace: &JaegerTrace, request: &Request, mode: Mode) {
    let edge = trace.by_id(request.edge_span).expect("the edge's span");
    assert!(edge.parents.is_empty(), "{trace}");
    let front = trace.span("frontend", "GET /front/{tag}", "server");
    trace.assert_child_of(front, edge);
    let back_server = trace
        .spans
        .iter()
        .find(|s| s.service == "backend" && s.kind() == "server")
        .unwrap_or_else(|| panic!("backend's server span in {trace}"));
    let handler = trace.span("backend", "answer", "internal");
    trace.assert_child_of(handler, back_server);
    assert_eq!(handler.tag("baggage.user"), Some("alice"), "{trace}");
    assert_eq!(
        header_values(back_server, "x-request-id"),
        [request.request_id.as_str()],
        "{trace}"
    );
    match mode {
        Mode::Grpc => {
            let services: BTreeSet<&str> = [PROXIES[0], "frontend", "go-grpc", "backend"]
                .into_iter()
                .collect();
            assert_eq!(trace.services(), services, "{trace}");
            let call = trace.span("frontend", "meshtrace.test.Relay/Forward", "client");
            trace.assert_child_of(call, front);
            let go_server = trace.span("go-grpc", "meshtrace.test.Relay/Forward", "server");
            trace.assert_child_of(go_server, call);
            let go_client = trace.span("go-grpc", "meshtrace.test.Relay/Forward", "client");
            trace.assert_child_of(go_client, go_server);
            trace.assert_child_of(back_server, go_client);
        }
        Mode::Http => {
            let services: BTreeSet<&str> =
                [PROXIES[0], "frontend", "backend"].into_iter().collect();
            assert_eq!(trace.services(), services, "{trace}");
            let call = trace
                .spans
                .iter()
                .find(|s| s.service == "frontend" && s.kind() == "client")
                .unwrap_or_else(|| panic!("frontend's client span in {trace}"));
            trace.assert_child_of(call, front);
            // No span in between: the Go service forwarded the headers as it got them.
            trace.assert_child_of(back_server, call);
        }
    }
}

#[test]
fn through_go_otelgrpc_with_b3_multi_input() {
    through_go(
        "through_go_otelgrpc_with_b3_multi_input",
        Mode::Grpc,
        Input::B3Multi,
    );
}

#[test]
fn through_go_otelgrpc_with_w3c_input() {
    through_go("through_go_otelgrpc_with_w3c_input", Mode::Grpc, Input::W3c);
}

#[test]
fn through_go_hand_forwarding_with_b3_multi_input() {
    through_go(
        "through_go_hand_forwarding_with_b3_multi_input",
        Mode::Http,
        Input::B3Multi,
    );
}

#[test]
fn through_go_hand_forwarding_with_w3c_input() {
    through_go(
        "through_go_hand_forwarding_with_w3c_input",
        Mode::Http,
        Input::W3c,
    );
}
