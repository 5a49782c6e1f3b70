//! An unsampled request is forwarded whole and exports nothing.
//!
//! ```text
//! client ──HTTP──▶ front (axum, MeshServerLayer)
//!                    front_handler (#[instrument])
//!                      ├─ outer → nested (#[instrument]) ── reqwest ──▶ back  /back/{tag}-nested
//!                      ├─ tonic (MeshClientLayer) ──▶ relay ── reqwest ──▶ back /back/{tag}-direct
//!                      └─ tokio::spawn(spawned().in_current_span())
//!                           ├─ reqwest ──▶ back /back/{tag}-spawned
//!                           └─ tonic ──▶ relay ── reqwest ──▶ back /back/{tag}-relayed
//! ```
//!
//! The relay (tonic, MeshServerLayer) records the headers of each gRPC call it receives, the
//! back service those of each HTTP call. New traces are not sampled here (`MeshSampler` over
//! `AlwaysOff`), a caller's decision is followed. Every outgoing call of an unsampled request
//! carries its trace with flags `00` (`x-b3-sampled: 0`), its baggage and its pass-through
//! headers, and no span reaches the exporter; a sampled request exports its whole tree.
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
use meshtrace::server::MeshServerLayer;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SpanData};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;
use support::headers::{header, span_id_of, trace_id_of};
use support::relay::{self, ForwardReply, RelayClient};
use support::servers::{self, Caller, Seen};
use support::spans::{attr, one, s, wait_for_spans};
use tracing::Instrument;

fn exporter() -> &'static InMemorySpanExporter {
    support::telemetry::exporter_with_root_sampler(Sampler::AlwaysOff)
}

// ---------------------------------------------------------------- the services

#[derive(Clone)]
struct Front {
    http: Caller,
    relay: RelayClient,
}

#[tracing::instrument(skip(front))]
async fn front_handler(
    State(front): State<Front>,
    Path(tag): Path<String>,
) -> (StatusCode, String) {
    let nested = outer(&front.http, &tag).await;
    let mut relay = front.relay.clone();
    let direct = relay.forward(format!("/back/{tag}-direct")).await;
    // A spawned task keeps the request's trace only through `.in_current_span()`.
    let spawned = tokio::spawn(spawned(front.clone(), tag.clone()).in_current_span())
        .await
        .expect("task");
    match (nested, direct, spawned) {
        (Ok(()), Ok(_), Ok(())) => (StatusCode::OK, "ok".into()),
        other => (StatusCode::BAD_GATEWAY, format!("{other:?}")),
    }
}

#[tracing::instrument(skip_all)]
async fn outer(http: &Caller, tag: &str) -> Result<(), (StatusCode, String)> {
    nested(http, tag).await
}

#[tracing::instrument(skip_all)]
async fn nested(http: &Caller, tag: &str) -> Result<(), (StatusCode, String)> {
    http.call(&format!("{tag}-nested")).await
}

#[tracing::instrument(skip_all)]
async fn spawned(front: Front, tag: String) -> Result<(), String> {
    front
        .http
        .call(&format!("{tag}-spawned"))
        .await
        .map_err(|e| e.1)?;
    let mut relay = front.relay.clone();
    relay
        .forward(format!("/back/{tag}-relayed"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The relay's `Forward`: calls the back service with `path`.
#[tracing::instrument(skip(back))]
async fn forward(back: Caller, path: String) -> Result<ForwardReply, tonic::Status> {
    let res = back
        .client
        .get(format!("{}{path}", back.back))
        .send()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    if !res.status().is_success() {
        return Err(tonic::Status::unavailable(res.status().to_string()));
    }
    Ok(ForwardReply {
        body: res.text().await.unwrap_or_default(),
    })
}

struct Services {
    front: SocketAddr,
    /// HTTP calls received by the back service.
    back_seen: Seen,
    /// gRPC calls received by the relay.
    relay_seen: Seen,
}

async fn start() -> Services {
    exporter();
    let (back, back_seen) = servers::start_back().await;
    let relay_seen = Seen::default();
    let back_caller = Caller::new(back.clone());
    let relay = relay::serve_grpc_recording(
        relay::relay(move |path| forward(back_caller.clone(), path)),
        relay_seen.clone(),
    )
    .await;
    let front_app = Router::new()
        .route("/front/{tag}", get(front_handler))
        .with_state(Front {
            http: Caller::new(back),
            relay: RelayClient::new(relay),
        })
        .layer(MeshServerLayer::new());
    let front = servers::serve(front_app).await;
    Services {
        front,
        back_seen,
        relay_seen,
    }
}

// ---------------------------------------------------------------- a request and what it sent

const BAGGAGE: &str = "tenant=acme,user=42";
const OT_SPAN_CONTEXT: &str = "opaque-lightstep-context";

/// Sends `GET /front/{tag}` with `x-request-id: {tag}`, the baggage, `x-ot-span-context`
/// and `trace` headers; returns the headers of every call made while handling it (4 HTTP
/// calls reaching the back service, 2 gRPC calls reaching the relay).
async fn request(services: &Services, tag: &str, trace: &[(&str, &str)]) -> Vec<HeaderMap> {
    let mut req = reqwest::Client::new()
        .get(format!("http://{}/front/{tag}", services.front))
        .header("x-request-id", tag)
        .header("baggage", BAGGAGE)
        .header("x-ot-span-context", OT_SPAN_CONTEXT);
    for (name, value) in trace {
        req = req.header(*name, *value);
    }
    let res = req.send().await.expect("front answers");
    let status = res.status();
    assert_eq!(
        status,
        200,
        "{tag}: {}",
        res.text().await.unwrap_or_default()
    );
    let mut sent: Vec<HeaderMap> = Vec::new();
    for suffix in ["nested", "direct", "spawned", "relayed"] {
        sent.push(servers::seen_for(
            &services.back_seen,
            &format!("{tag}-{suffix}"),
        ));
    }
    let grpc: Vec<HeaderMap> = servers::all_seen(&services.relay_seen)
        .into_iter()
        .filter(|h| h.get("x-request-id").is_some_and(|v| v == tag))
        .collect();
    assert_eq!(grpc.len(), 2, "{tag}: two gRPC calls reached the relay");
    sent.extend(grpc);
    sent
}

/// Every call carried trace `trace_id`, not sampled, and the request's baggage and
/// pass-through headers.
fn assert_forwarded_unsampled(tag: &str, sent: &[HeaderMap], trace_id: TraceId) {
    for h in sent {
        let traceparent = header(h, "traceparent");
        assert_eq!(trace_id_of(traceparent), trace_id, "{tag}: {h:?}");
        assert!(
            traceparent.ends_with("-00") || traceparent.ends_with("-02"),
            "{tag}: not sampled, {traceparent}"
        );
        assert_eq!(
            TraceId::from_hex(header(h, "x-b3-traceid")).expect("hex"),
            trace_id,
            "{tag}: {h:?}"
        );
        assert_eq!(header(h, "x-b3-sampled"), "0", "{tag}: {h:?}");
        assert_eq!(
            span_id_of(traceparent).to_string(),
            header(h, "x-b3-spanid"),
            "{tag}: one span context in every format"
        );
        assert_eq!(header(h, "x-request-id"), tag, "{tag}");
        assert_eq!(header(h, "baggage"), BAGGAGE, "{tag}");
        assert_eq!(header(h, "x-ot-span-context"), OT_SPAN_CONTEXT, "{tag}");
    }
}

/// Every span the exporter holds now, after the services had time to end theirs.
async fn exported_after_a_while() -> Vec<SpanData> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    exporter().get_finished_spans().expect("in-memory exporter")
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

/// The test's requests run one after another (one test function): the exporter's content
/// then belongs to the request just made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_requests_forward_everything_and_export_nothing() {
    let services = start().await;
    let trace_id = TraceId::from_hex(TRACE).expect("hex");

    // 1. The caller says no in B3.
    exporter().reset();
    let sent = request(
        &services,
        "b3-unsampled",
        &[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
        ],
    )
    .await;
    assert_forwarded_unsampled("b3-unsampled", &sent, trace_id);
    let exported = exported_after_a_while().await;
    assert!(exported.is_empty(), "b3-unsampled exported {exported:#?}");

    // 2. The caller says no in W3C trace context.
    let w3c_trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex");
    let sent = request(
        &services,
        "w3c-unsampled",
        &[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        )],
    )
    .await;
    assert_forwarded_unsampled("w3c-unsampled", &sent, w3c_trace);
    let exported = exported_after_a_while().await;
    assert!(exported.is_empty(), "w3c-unsampled exported {exported:#?}");

    // 3. No incoming trace, and the root sampler says no: the new trace goes out unsampled.
    let sent = request(&services, "root-unsampled", &[]).await;
    let new_trace = trace_id_of(header(&sent[0], "traceparent"));
    assert_ne!(new_trace, TraceId::INVALID);
    assert_ne!(new_trace, trace_id);
    assert_forwarded_unsampled("root-unsampled", &sent, new_trace);
    let exported = exported_after_a_while().await;
    assert!(exported.is_empty(), "root-unsampled exported {exported:#?}");

    // 4. A sampled caller: the whole tree is exported, with its attributes, as before.
    let sent = request(
        &services,
        "sampled",
        &[("traceparent", &format!("00-{TRACE}-{SPAN}-01"))],
    )
    .await;
    for h in &sent {
        assert!(header(h, "traceparent").ends_with("-01"), "{h:?}");
        assert_eq!(header(h, "x-b3-sampled"), "1");
        assert_eq!(header(h, "x-request-id"), "sampled");
        assert_eq!(header(h, "baggage"), BAGGAGE);
    }
    assert_sampled_tree(&sent, trace_id).await;
}

/// The sampled request's spans: front server span under the caller, the handler's functions,
/// four client spans, the relay's two server spans each with its `forward` and client span.
async fn assert_sampled_tree(sent: &[HeaderMap], trace_id: TraceId) {
    const SPANS: usize = 15;
    let spans = wait_for_spans(exporter(), trace_id, SPANS).await;
    let exported = exported_after_a_while().await;
    assert!(
        exported
            .iter()
            .all(|s| s.span_context.trace_id() == trace_id),
        "only the sampled trace is exported: {:?}",
        exported
            .iter()
            .map(|s| (&s.name, s.span_context.trace_id()))
            .collect::<Vec<_>>()
    );
    let names: Vec<(&str, SpanKind)> = spans
        .iter()
        .map(|s| (s.name.as_ref(), s.span_kind.clone()))
        .collect();
    assert_eq!(spans.len(), SPANS, "{names:?}");

    let server = one(&spans, "GET /front/{tag}", SpanKind::Server);
    assert_eq!(server.parent_span_id, SpanId::from_hex(SPAN).expect("hex"));
    assert_eq!(attr(server, "url.path"), Some(s("/front/sampled")));
    assert_eq!(attr(server, "http.route"), Some(s("/front/{tag}")));
    assert_eq!(
        attr(server, "http.response.status_code"),
        Some(opentelemetry::Value::I64(200))
    );
    for name in ["front_handler", "outer", "nested", "spawned"] {
        one(&spans, name, SpanKind::Internal);
    }
    let clients: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(clients.len(), 6, "{names:?}");
    for client in &clients {
        assert!(attr(client, "server.address").is_some(), "{client:?}");
    }
    let relay_servers = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server && s.name == "meshtrace.test.Relay/Forward")
        .count();
    assert_eq!(relay_servers, 2, "{names:?}");

    // Every span but the front's has its parent among them, and every call went out from
    // its own client span.
    let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    for span in &spans {
        if span.span_context.span_id() != server.span_context.span_id() {
            assert!(
                ids.contains(&span.parent_span_id),
                "{:?} has its parent in the trace",
                span.name
            );
        }
    }
    let client_ids: HashSet<String> = clients
        .iter()
        .map(|s| s.span_context.span_id().to_string())
        .collect();
    for h in sent {
        let id = span_id_of(header(h, "traceparent")).to_string();
        assert!(client_ids.contains(&id), "sent from a client span: {h:?}");
    }
}
