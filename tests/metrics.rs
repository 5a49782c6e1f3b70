//! Request metrics from the server and client layers, read back through the SDK's in-memory
//! exporter: names, units, buckets, attributes, counts per route and status, who answered
//! (the upstream or the sidecar), Envoy's attempt numbers from the sidecar stand-in's
//! retries, unsampled requests counted, filtered requests not.
#![cfg(all(feature = "axum", feature = "reqwest", feature = "tonic"))]

mod support;

use axum::{routing::get, Router};
use http::StatusCode;
use meshtrace::client::reqwest::MeshClientMiddleware;
use meshtrace::client::tonic::MeshClientLayer;
use meshtrace::server::MeshServerLayer;
use support::metrics::Meters;
use support::relay::{
    endpoint_of, forward, grpc_client_with, relay, serve_grpc_with, ForwardReply,
};
use support::servers::serve;
use support::sidecar::{LocalReply, Sidecar, SidecarConfig};

/// The semantic conventions' advised boundaries for request durations, in seconds.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// An app with a route template, a route that answers its own 503, and a health check.
fn app(layer: MeshServerLayer) -> Router {
    Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route(
            "/flaky",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "db down") }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .layer(layer)
}

fn client(layer: MeshClientMiddleware) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .build()
}

#[tokio::test]
async fn http_requests_behind_a_sidecar_are_measured_on_both_sides() {
    support::telemetry::exporter();
    let (server_meters, client_meters) = (Meters::new(), Meters::new());
    let back = serve(app(MeshServerLayer::new()
        .meter(server_meters.meter())
        .filter(|req| req.uri.path() != "/healthz")))
    .await;
    let sidecar = Sidecar::start(back, SidecarConfig::default().with_retries(2)).await;
    let http = client(MeshClientMiddleware::new().meter(client_meters.meter()));
    let url = sidecar.url();

    for id in 1..=3 {
        let res = http.get(format!("{url}/orders/{id}")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    // The app's own 503: the sidecar retries it twice, then passes it on.
    let res = http.get(format!("{url}/flaky")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    // Not traced, so not measured either.
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The sidecar answers by itself: the app never sees the request.
    sidecar.set_reply(Some(LocalReply::NoHealthyUpstream));
    let res = http.get(format!("{url}/orders/9")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    sidecar.set_reply(None);
    // Two requests whose caller decided not to sample them, straight to the app: no span,
    // but measured all the same.
    for _ in 0..2 {
        let res = reqwest::Client::new()
            .get(format!("http://{back}/orders/7"))
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    let server = server_meters
        .histogram("http.server.request.duration")
        .await;
    assert_eq!(server.unit, "s");
    assert!(
        server.points.iter().all(|p| p.bounds == BUCKETS),
        "{server:#?}"
    );
    let base = [
        ("http.request.method", "GET"),
        ("url.scheme", "http"),
        ("network.protocol.version", "1.1"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        base.iter().chain(extra).copied().collect()
    };
    let orders = with(&[
        ("http.route", "/orders/{id}"),
        ("http.response.status_code", "200"),
    ]);
    let through_sidecar: Vec<_> = orders
        .iter()
        .copied()
        .chain([("meshtrace.envoy.attempt_count", "1")])
        .collect();
    assert_eq!(server.exactly(&through_sidecar).count, 3);
    assert_eq!(server.exactly(&orders).count, 2, "the unsampled requests");
    for attempt in ["1", "2", "3"] {
        let flaky = with(&[
            ("http.route", "/flaky"),
            ("http.response.status_code", "503"),
            ("error.type", "503"),
            ("meshtrace.envoy.attempt_count", attempt),
        ]);
        assert_eq!(server.exactly(&flaky).count, 1, "attempt {attempt}");
    }
    assert_eq!(server.count(&[("http.route", "/healthz")]), 0);
    assert_eq!(server.count(&[]), 8, "{server:#?}");

    let client = client_meters
        .histogram("http.client.request.duration")
        .await;
    assert_eq!(client.unit, "s");
    assert!(client.points.iter().all(|p| p.bounds == BUCKETS));
    let port = sidecar.addr().port().to_string();
    let to = |status: &'static str, origin: &'static str| {
        let mut attrs = vec![
            ("http.request.method", "GET"),
            ("server.address", "127.0.0.1"),
            ("server.port", port.as_str()),
            ("http.response.status_code", status),
            ("meshtrace.reply.origin", origin),
        ];
        if status != "200" {
            attrs.push(("error.type", status));
        }
        client.exactly(&attrs).count
    };
    // The health check is measured on the client: its filter is the server's.
    assert_eq!(to("200", "upstream"), 4);
    assert_eq!(to("503", "upstream"), 1, "the app's own 503");
    assert_eq!(to("503", "envoy"), 1, "the sidecar's no healthy upstream");
    assert_eq!(client.count(&[]), 6);
}

#[tokio::test]
async fn grpc_calls_are_measured_with_the_current_rpc_conventions() {
    support::telemetry::exporter();
    let (server_meters, client_meters) = (Meters::new(), Meters::new());
    let back = serve_grpc_with(
        relay(|path| async move {
            match path.as_str() {
                "fail" => Err(tonic::Status::unavailable("db down")),
                _ => Ok(ForwardReply { body: path }),
            }
        }),
        MeshServerLayer::new().meter(server_meters.meter()),
    )
    .await;
    let sidecar = Sidecar::start(back, SidecarConfig::default()).await;
    let mut grpc = grpc_client_with(
        endpoint_of(sidecar.addr()),
        MeshClientLayer::new().meter(client_meters.meter()),
    );
    for _ in 0..2 {
        forward(&mut grpc, "ok", None).await.unwrap();
    }
    let status = forward(&mut grpc, "fail", None).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    // A method the server does not have: its name came from the caller.
    let status = unknown_method(&mut grpc).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    sidecar.set_reply(Some(LocalReply::NoHealthyUpstream));
    let status = forward(&mut grpc, "ok", None).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);

    let server = server_meters.histogram("rpc.server.call.duration").await;
    assert_eq!(server.unit, "s");
    assert!(server.points.iter().all(|p| p.bounds == BUCKETS));
    let forward_method = ("rpc.method", "meshtrace.test.Relay/Forward");
    let system = ("rpc.system.name", "grpc");
    let attempt = ("meshtrace.envoy.attempt_count", "1");
    assert_eq!(
        server
            .exactly(&[
                system,
                forward_method,
                ("rpc.response.status_code", "OK"),
                attempt
            ])
            .count,
        2
    );
    let unavailable = [
        system,
        forward_method,
        ("rpc.response.status_code", "UNAVAILABLE"),
        ("error.type", "UNAVAILABLE"),
        attempt,
    ];
    assert_eq!(server.exactly(&unavailable).count, 1);
    // The method's name came from the caller, and the server has no such method: _OTHER,
    // so that made-up names cannot grow the series.
    let other = [
        system,
        ("rpc.method", "_OTHER"),
        ("rpc.response.status_code", "UNIMPLEMENTED"),
        ("error.type", "UNIMPLEMENTED"),
        attempt,
    ];
    assert_eq!(server.exactly(&other).count, 1);
    assert_eq!(server.count(&[]), 4);
    assert!(
        server.points.iter().all(|p| p.attr("http.route").is_none()),
        "gRPC calls are not HTTP requests"
    );
    assert!(server_meters
        .read("http.server.request.duration")
        .points
        .is_empty());

    let client = client_meters.histogram("rpc.client.call.duration").await;
    let port = sidecar.addr().port().to_string();
    let call = |method: &'static str, code: &'static str, origin: &'static str| {
        let mut attrs = vec![
            system,
            ("rpc.method", method),
            ("rpc.response.status_code", code),
            ("server.address", "127.0.0.1"),
            ("server.port", port.as_str()),
            ("meshtrace.reply.origin", origin),
        ];
        if code != "OK" {
            attrs.push(("error.type", code));
        }
        client.exactly(&attrs).count
    };
    let forward = "meshtrace.test.Relay/Forward";
    assert_eq!(call(forward, "OK", "upstream"), 2);
    assert_eq!(call(forward, "UNAVAILABLE", "upstream"), 1, "the app's own");
    assert_eq!(call(forward, "UNAVAILABLE", "envoy"), 1, "the sidecar's");
    assert_eq!(
        call("meshtrace.test.Relay/Nope", "UNIMPLEMENTED", "upstream"),
        1
    );
}

/// `Relay/Nope`, which the relay does not have.
async fn unknown_method(
    grpc: &mut support::relay::GrpcClient,
) -> Result<ForwardReply, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(support::relay::ForwardRequest { path: "x".into() }),
        http::uri::PathAndQuery::from_static("/meshtrace.test.Relay/Nope"),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn layers_with_metrics_off_record_none() {
    support::telemetry::exporter();
    let meters = Meters::new();
    let back = serve(app(MeshServerLayer::new()
        .meter(meters.meter())
        .metrics(false)))
    .await;
    let http = client(
        MeshClientMiddleware::new()
            .meter(meters.meter())
            .metrics(false),
    );
    http.get(format!("http://{back}/orders/1"))
        .send()
        .await
        .unwrap();
    assert!(meters
        .histogram("http.server.request.duration")
        .await
        .points
        .is_empty());
    assert!(meters
        .read("http.client.request.duration")
        .points
        .is_empty());
}
