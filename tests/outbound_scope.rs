//! Outbound scope (SPECS §9): baggage and pass-through headers are internal data. A front
//! service (axum + `MeshServerLayer`) handles a request carrying a trace, baggage,
//! `x-request-id` and `x-ot-span-context`, and calls three hosts through `MeshClientMiddleware`
//! (their names resolved to a recording back service on 127.0.0.1): two in-cluster names
//! and a third-party API. With the default scope every host gets everything; with
//! `OutboundScope::mesh()` the third party gets the trace context only; with
//! `.elsewhere(Elsewhere::Nothing)` it gets no header of ours; a predicate decides per host.
//! The same holds for gRPC calls through `MeshClientLayer`.
#![cfg(all(
    feature = "axum",
    feature = "reqwest",
    feature = "tonic",
    feature = "sdk"
))]

mod support;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use http::HeaderMap;
use meshtrace::client::reqwest::MeshClientMiddleware;
use meshtrace::client::tonic::MeshClientLayer;
use meshtrace::client::{Elsewhere, OutboundScope};
use meshtrace::server::MeshServerLayer;
use std::net::SocketAddr;
use support::relay::{
    endpoint_of, forward, grpc_client_with, relay, serve_grpc_recording, ForwardReply,
};
use support::servers::{serve, start_back, Seen};
use support::telemetry::exporter;

const IN_CLUSTER: [&str; 2] = ["ratings", "ratings.default.svc.cluster.local"];
const THIRD_PARTY: &str = "api.payments.example";
const TRACE: [&str; 4] = ["traceparent", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled"];
const INTERNAL: [&str; 3] = ["baggage", "x-request-id", "x-ot-span-context"];

#[derive(Clone)]
struct Front {
    client: reqwest_middleware::ClientWithMiddleware,
    back_port: u16,
}

/// Calls every host, each with its own tag: `<host>`.
async fn call_all(State(front): State<Front>) -> String {
    for host in IN_CLUSTER.iter().chain([&THIRD_PARTY]) {
        let res = front
            .client
            .get(format!("http://{host}:{}/back/{host}", front.back_port))
            .send()
            .await
            .expect("the back service answers");
        assert!(res.status().is_success());
    }
    "ok".into()
}

/// A front whose client has `scope`, and what its three calls carried, by host.
async fn calls_with(scope: Option<OutboundScope>) -> Vec<(String, HeaderMap)> {
    exporter();
    let (back, seen): (String, Seen) = start_back().await;
    let back_addr: SocketAddr = back.trim_start_matches("http://").parse().expect("addr");
    let mut http = reqwest::Client::builder();
    for host in IN_CLUSTER.iter().chain([&THIRD_PARTY]) {
        http = http.resolve(host, back_addr);
    }
    let mut middleware = MeshClientMiddleware::new();
    if let Some(scope) = scope {
        middleware = middleware.outbound_scope(scope);
    }
    let client = reqwest_middleware::ClientBuilder::new(http.build().expect("client"))
        .with(middleware)
        .build();
    let front = serve(
        Router::new()
            .route("/call", get(call_all))
            .with_state(Front {
                client,
                back_port: back_addr.port(),
            })
            .layer(MeshServerLayer::new()),
    )
    .await;
    let answer = reqwest::Client::new()
        .get(format!("http://{front}/call"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("baggage", "user=alice")
        .header("x-request-id", "req-1")
        .header(
            "x-ot-span-context",
            "4bf92f3577b34da6;00f067aa0ba902b7;0;cs",
        )
        .send()
        .await
        .expect("front answers");
    assert!(answer.status().is_success());
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    seen
}

fn has(h: &HeaderMap, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| h.contains_key(**n))
        .map(|n| n.to_string())
        .collect()
}

fn of<'a>(calls: &'a [(String, HeaderMap)], host: &str) -> &'a HeaderMap {
    &calls
        .iter()
        .find(|(h, _)| h == host)
        .unwrap_or_else(|| panic!("no call to {host}"))
        .1
}

#[tokio::test]
async fn by_default_every_host_gets_everything() {
    let calls = calls_with(None).await;
    for (host, h) in &calls {
        assert_eq!(has(h, &TRACE), TRACE, "{host}");
        assert_eq!(has(h, &INTERNAL), INTERNAL, "{host}");
    }
}

#[tokio::test]
async fn mesh_scope_keeps_internal_data_in_the_cluster() {
    let calls = calls_with(Some(OutboundScope::mesh())).await;
    for host in IN_CLUSTER {
        let h = of(&calls, host);
        assert_eq!(has(h, &TRACE), TRACE, "{host}");
        assert_eq!(has(h, &INTERNAL), INTERNAL, "{host}");
        assert_eq!(h["baggage"], "user=alice");
        assert_eq!(h["x-request-id"], "req-1");
    }
    let outside = of(&calls, THIRD_PARTY);
    assert_eq!(
        has(outside, &TRACE),
        TRACE,
        "the trace continues: {outside:?}"
    );
    assert_eq!(has(outside, &INTERNAL), Vec::<String>::new(), "{outside:?}");
    // The same trace as the in-cluster calls.
    let trace_id = |h: &HeaderMap| h["x-b3-traceid"].to_str().expect("ascii").to_owned();
    assert_eq!(trace_id(outside), trace_id(of(&calls, IN_CLUSTER[0])));
}

#[tokio::test]
async fn nothing_elsewhere_sends_no_header_of_ours() {
    let calls = calls_with(Some(OutboundScope::mesh().elsewhere(Elsewhere::Nothing))).await;
    let outside = of(&calls, THIRD_PARTY);
    let ours: Vec<&str> = TRACE.iter().chain(&INTERNAL).copied().collect();
    assert_eq!(has(outside, &ours), Vec::<String>::new(), "{outside:?}");
    assert_eq!(has(of(&calls, "ratings"), &INTERNAL), INTERNAL);
}

#[tokio::test]
async fn a_predicate_decides_per_host() {
    let scope = OutboundScope::predicate(|host| host == THIRD_PARTY);
    let calls = calls_with(Some(scope)).await;
    assert_eq!(has(of(&calls, THIRD_PARTY), &INTERNAL), INTERNAL);
    for host in IN_CLUSTER {
        assert_eq!(
            has(of(&calls, host), &INTERNAL),
            Vec::<String>::new(),
            "{host}"
        );
        assert_eq!(has(of(&calls, host), &TRACE), TRACE, "{host}");
    }
}

#[tokio::test]
async fn grpc_calls_respect_the_scope_too() {
    exporter();
    let seen = Seen::default();
    let addr = serve_grpc_recording(
        relay(|_| async { Ok(ForwardReply { body: "ok".into() }) }),
        seen.clone(),
    )
    .await;
    // The channel dials 127.0.0.1; the scope judges the host the layer is told.
    let endpoint = endpoint_of(addr);
    for (scope, internal) in [
        (OutboundScope::hosts([addr.ip().to_string()]), true),
        (OutboundScope::hosts(["ratings"]), false),
    ] {
        let client = grpc_client_with(
            endpoint.clone(),
            MeshClientLayer::new().outbound_scope(scope),
        );
        let app = Router::new().route(
            "/call",
            get(move || {
                let mut client = client.clone();
                async move {
                    forward(&mut client, "/x", None)
                        .await
                        .map(|r| r.body)
                        .unwrap_or_default()
                }
            }),
        );
        let front = serve(app.layer(MeshServerLayer::new())).await;
        let body = reqwest::Client::new()
            .get(format!("http://{front}/call"))
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("baggage", "user=alice")
            .header(
                "x-request-id",
                if internal { "grpc-in" } else { "grpc-out" },
            )
            .send()
            .await
            .expect("front")
            .text()
            .await
            .expect("body");
        assert_eq!(body, "ok");
        let last = seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("a call")
            .1;
        assert_eq!(has(&last, &["traceparent"]), ["traceparent"], "{last:?}");
        let want: Vec<String> = if internal {
            vec!["baggage".into(), "x-request-id".into()]
        } else {
            Vec::new()
        };
        assert_eq!(has(&last, &["baggage", "x-request-id"]), want, "{last:?}");
    }
}
