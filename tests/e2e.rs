//! One request through a three-service mesh on 127.0.0.1 (axum → tonic → axum), as it
//! arrives from an Envoy sidecar: one unbroken trace, the exact parent chain, the
//! pass-through headers forwarded byte-for-byte.
#![cfg(all(
    feature = "axum",
    feature = "reqwest",
    feature = "tonic",
    feature = "sdk"
))]

mod support;

use meshtrace::server::MeshServerLayer;
use opentelemetry::trace::{SpanKind, Status, TraceId};
use opentelemetry::Value;
use support::headers::{span_id_of, trace_id_of};
use support::mesh::Mesh;
use support::relay::RelayClient;
use support::spans::{assert_chain, attr, one, s, spans_of, tree};

const REQUEST_ID: &str = "5b1f1a0e-2c3d-4e5f-8a9b-0c1d2e3f4a5b";
const OT_SPAN_CONTEXT: &str = "opaque/lightstep;ctx=Zm9vYmFy";
const BAGGAGE: &str = "user=alice,tier=gold;ttl=30";

const SERVER: SpanKind = SpanKind::Server;
const CLIENT: SpanKind = SpanKind::Client;
const INTERNAL: SpanKind = SpanKind::Internal;

/// The spans one successful request through the mesh makes, parent first.
const CHAIN: [(&str, SpanKind); 8] = [
    ("GET /front/{id}", SERVER),
    ("front_handler", INTERNAL),
    ("call_relay", INTERNAL),
    ("meshtrace.test.Relay/Forward", CLIENT),
    ("meshtrace.test.Relay/Forward", SERVER),
    ("forward", INTERNAL),
    ("GET", CLIENT),
    ("GET /back/{id}", SERVER),
];

/// The attributes the snapshots of the span tree show: none with a port, an id or a time.
const TREE_KEYS: &[&str] = &[
    "http.request.method",
    "http.route",
    "url.path",
    "http.response.status_code",
    "error.type",
    "network.protocol.version",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "rpc.grpc.status_code",
    "path",
];

/// Checks the chain; spans with the same name (the gRPC client and server) are told apart
/// by kind.
fn assert_full_chain(spans: &[opentelemetry_sdk::trace::SpanData]) {
    assert_eq!(
        spans.len(),
        CHAIN.len(),
        "{:#?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for w in CHAIN.windows(2) {
        let parent = one(spans, w[0].0, w[0].1.clone());
        let child = one(spans, w[1].0, w[1].1.clone());
        assert_eq!(
            child.parent_span_id,
            parent.span_context.span_id(),
            "{:?} is the parent of {:?}",
            w[0],
            w[1]
        );
    }
}

fn header_attr(values: &[&str]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|v| opentelemetry::StringValue::from(v.to_string()))
            .collect::<Vec<_>>()
            .into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_b3_request_makes_one_unbroken_trace() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let trace_id = "80f198ee56343ba864fe8b2a57d3eff7";
    let envoy_span = "e457b5a2e4d86bd1";
    let res = reqwest::Client::new()
        .get(format!("http://{}/front/42", mesh.front))
        .header("x-request-id", REQUEST_ID)
        .header("x-b3-traceid", trace_id)
        .header("x-b3-spanid", envoy_span)
        .header("x-b3-parentspanid", "05e3ac9a4f6e3b90")
        .header("x-b3-sampled", "1")
        .header("x-ot-span-context", OT_SPAN_CONTEXT)
        .header("x-envoy-attempt-count", "1")
        .header("baggage", BAGGAGE)
        .header("user-agent", "e2e-test/1")
        .send()
        .await
        .expect("front answers");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "back 42");

    let trace_id = TraceId::from_hex(trace_id).unwrap();
    let spans = spans_of(trace_id, CHAIN.len()).await;
    assert_full_chain(&spans);
    insta::assert_snapshot!("envoy_b3_trace", tree(&spans, TREE_KEYS));

    // The front server span's parent is Envoy's span.
    let front = one(&spans, "GET /front/{id}", SERVER);
    assert_eq!(front.parent_span_id.to_string(), envoy_span);
    assert!(front.parent_span_is_remote);
    assert_eq!(attr(front, "http.request.method"), Some(s("GET")));
    assert_eq!(attr(front, "http.route"), Some(s("/front/{id}")));
    assert_eq!(attr(front, "url.path"), Some(s("/front/42")));
    assert_eq!(attr(front, "url.scheme"), Some(s("http")));
    assert_eq!(attr(front, "server.address"), Some(s("127.0.0.1")));
    assert_eq!(
        attr(front, "server.port"),
        Some(Value::I64(i64::from(mesh.front.port())))
    );
    assert_eq!(attr(front, "network.protocol.version"), Some(s("1.1")));
    assert_eq!(attr(front, "user_agent.original"), Some(s("e2e-test/1")));
    assert_eq!(
        attr(front, "http.response.status_code"),
        Some(Value::I64(200))
    );
    assert_eq!(
        attr(front, "http.request.header.x-request-id"),
        Some(header_attr(&[REQUEST_ID]))
    );
    assert_eq!(
        attr(front, "http.request.header.x-envoy-attempt-count"),
        Some(header_attr(&["1"]))
    );
    assert_eq!(front.status, Status::Unset);

    let grpc_client = one(&spans, "meshtrace.test.Relay/Forward", CLIENT);
    let grpc_server = one(&spans, "meshtrace.test.Relay/Forward", SERVER);
    for grpc in [grpc_client, grpc_server] {
        assert_eq!(attr(grpc, "rpc.system"), Some(s("grpc")));
        assert_eq!(attr(grpc, "rpc.service"), Some(s("meshtrace.test.Relay")));
        assert_eq!(attr(grpc, "rpc.method"), Some(s("Forward")));
        assert_eq!(attr(grpc, "rpc.grpc.status_code"), Some(Value::I64(0)));
        assert_eq!(grpc.status, Status::Unset);
    }
    assert_eq!(attr(grpc_client, "server.address"), Some(s("127.0.0.1")));
    assert_eq!(
        attr(grpc_client, "server.port"),
        Some(Value::I64(i64::from(mesh.relay.port())))
    );
    assert_eq!(attr(grpc_server, "network.protocol.version"), Some(s("2")));
    // The sidecar's x-request-id reached the relay through the gRPC metadata.
    assert_eq!(
        attr(grpc_server, "http.request.header.x-request-id"),
        Some(header_attr(&[REQUEST_ID]))
    );

    let http_client = one(&spans, "GET", CLIENT);
    assert_eq!(attr(http_client, "http.request.method"), Some(s("GET")));
    assert_eq!(attr(http_client, "server.address"), Some(s("127.0.0.1")));
    assert_eq!(
        attr(http_client, "server.port"),
        Some(Value::I64(i64::from(mesh.back.port())))
    );
    assert_eq!(
        attr(http_client, "url.full"),
        Some(s(&format!("http://{}/back/42", mesh.back)))
    );
    assert_eq!(
        attr(http_client, "http.response.status_code"),
        Some(Value::I64(200))
    );

    // The last hop received the pass-through headers and baggage byte-for-byte, and its B3
    // and W3C headers name the reqwest client span.
    let seen = mesh.seen_with_request_id(REQUEST_ID);
    assert_eq!(seen.len(), 1);
    let h = &seen[0];
    assert_eq!(h["x-ot-span-context"], OT_SPAN_CONTEXT);
    assert_eq!(h["baggage"], BAGGAGE);
    let traceparent = h["traceparent"].to_str().unwrap();
    assert_eq!(trace_id_of(traceparent), trace_id);
    assert_eq!(span_id_of(traceparent), http_client.span_context.span_id());
    assert!(traceparent.ends_with("-01"), "{traceparent}");
    assert_eq!(h["x-b3-traceid"], trace_id.to_string());
    assert_eq!(
        h["x-b3-spanid"],
        http_client.span_context.span_id().to_string()
    );
    assert_eq!(h["x-b3-sampled"], "1");
    assert!(h.get("x-b3-parentspanid").is_none(), "never injected");
    let back = one(&spans, "GET /back/{id}", SERVER);
    assert_eq!(back.parent_span_id, http_client.span_context.span_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_alone_is_continued() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let res = reqwest::Client::new()
        .get(format!("http://{}/front/7", mesh.front))
        .header("traceparent", incoming)
        .header("tracestate", "congo=t61rcWkgMzE")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let trace_id = trace_id_of(incoming);
    let spans = spans_of(trace_id, CHAIN.len()).await;
    assert_full_chain(&spans);
    insta::assert_snapshot!("traceparent_trace", tree(&spans, TREE_KEYS));
    let front = one(&spans, "GET /front/{id}", SERVER);
    assert_eq!(front.parent_span_id, span_id_of(incoming));

    let back_hits: Vec<_> = mesh
        .received()
        .into_iter()
        .filter(|h| {
            h.get("traceparent")
                .is_some_and(|v| trace_id_of(v.to_str().unwrap()) == trace_id)
        })
        .collect();
    assert_eq!(back_hits.len(), 1);
    let h = &back_hits[0];
    assert_eq!(h["tracestate"], "congo=t61rcWkgMzE");
    // Nothing came in to pass through, and nothing is made up.
    assert!(h.get("x-request-id").is_none());
    assert!(h.get("x-ot-span-context").is_none());
    assert!(h.get("baggage").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_coming_in_starts_a_new_trace_with_a_generated_request_id() {
    let mesh = Mesh::start(MeshServerLayer::new().generate_request_id(true)).await;
    let res = reqwest::Client::new()
        .get(format!("http://{}/front/root", mesh.front))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Find the trace through what the back service received.
    let seen = mesh.received();
    assert_eq!(seen.len(), 1);
    let h = &seen[0];
    let traceparent = h["traceparent"].to_str().unwrap();
    let trace_id = trace_id_of(traceparent);
    let spans = spans_of(trace_id, CHAIN.len()).await;
    assert_full_chain(&spans);
    insta::assert_snapshot!("new_trace", tree(&spans, TREE_KEYS));
    let front = one(&spans, "GET /front/{id}", SERVER);
    assert_eq!(
        front.parent_span_id,
        opentelemetry::trace::SpanId::INVALID,
        "a root span"
    );

    // The generated id is a UUID v4, recorded at the front and forwarded to the last hop.
    let id = h["x-request-id"].to_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(
        attr(front, "http.request.header.x-request-id"),
        Some(header_attr(&[id]))
    );
    // A trace this process started is marked random (W3C level 2).
    assert!(traceparent.ends_with("-03"), "{traceparent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_error_marks_client_and_server_spans() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let res = reqwest::Client::new()
        .get(format!("http://{}/front/fail", mesh.front))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let spans = spans_of(TraceId::from_hex(trace_id).unwrap(), 6).await;
    insta::assert_snapshot!("grpc_error_trace", tree(&spans, TREE_KEYS));
    let client = one(&spans, "meshtrace.test.Relay/Forward", CLIENT);
    let server = one(&spans, "meshtrace.test.Relay/Forward", SERVER);
    for s in [client, server] {
        assert_eq!(attr(s, "rpc.grpc.status_code"), Some(Value::I64(13)));
        assert_eq!(s.status, Status::error("INTERNAL: relay was asked to fail"));
    }
    // The front answered 502: a gateway error is the server's failure too.
    let front = one(&spans, "GET /front/{id}", SERVER);
    assert_eq!(
        attr(front, "http.response.status_code"),
        Some(Value::I64(502))
    );
    assert!(matches!(front.status, Status::Error { .. }));
    assert_chain(
        &spans,
        &[("front_handler", INTERNAL), ("call_relay", INTERNAL)],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_503_marks_client_and_server_spans() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let trace_id = "1af7651916cd43dd8448eb211c80319c";
    let res = reqwest::Client::new()
        .get(format!("http://{}/front/unavailable", mesh.front))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let spans = spans_of(TraceId::from_hex(trace_id).unwrap(), CHAIN.len()).await;
    insta::assert_snapshot!("http_503_trace", tree(&spans, TREE_KEYS));
    let client = one(&spans, "GET", CLIENT);
    let back = one(&spans, "GET /back/{id}", SERVER);
    for sp in [client, back] {
        assert_eq!(attr(sp, "http.response.status_code"), Some(Value::I64(503)));
        assert_eq!(attr(sp, "error.type"), Some(s("503")));
        assert!(matches!(sp.status, Status::Error { .. }), "{:?}", sp.status);
    }
    // The relay turned the 503 into UNAVAILABLE, a server-side failure.
    let relay = one(&spans, "meshtrace.test.Relay/Forward", SERVER);
    assert_eq!(attr(relay, "rpc.grpc.status_code"), Some(Value::I64(14)));
    assert!(matches!(relay.status, Status::Error { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_span_ends_after_the_last_message() {
    use tracing::Instrument;
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let mut client = RelayClient::new(mesh.relay);
    let root = tracing::info_span!("streaming-test");
    let (trace_id, last_received) = async {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let trace_id = tracing::Span::current()
            .context()
            .span()
            .span_context()
            .trace_id();
        let mut stream = client.count(3, 100).await.unwrap();
        let mut got = Vec::new();
        while let Some(msg) = stream.message().await.unwrap() {
            got.push(msg.i);
        }
        assert_eq!(got, [0, 1, 2]);
        (trace_id, std::time::SystemTime::now())
    }
    .instrument(root)
    .await;
    let spans = spans_of(trace_id, 3).await;
    let client = one(&spans, "meshtrace.test.Relay/Count", CLIENT);
    let server = one(&spans, "meshtrace.test.Relay/Count", SERVER);
    assert_eq!(server.parent_span_id, client.span_context.span_id());
    for s in [client, server] {
        let took = s.end_time.duration_since(s.start_time).unwrap();
        assert!(
            took >= std::time::Duration::from_millis(300),
            "{} took {took:?}",
            s.name
        );
        assert_eq!(attr(s, "rpc.grpc.status_code"), Some(Value::I64(0)));
    }
    // The client span ended with the stream, not at the response head.
    let slack = std::time::Duration::from_millis(50);
    assert!(client.end_time + slack >= last_received);
}
