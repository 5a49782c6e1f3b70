//! The request metrics `meshtrace::export` sends: over OTLP/gRPC and OTLP/HTTP to the receiver
//! on 127.0.0.1, configured by OpenTelemetry's environment variables, flushed by the guard at
//! shutdown (the export interval is the default 60 s, so nothing goes out before), and, with
//! the `prometheus` feature, scraped from the endpoint init() serves.
#![cfg(all(feature = "otlp", feature = "axum", feature = "reqwest"))]

mod support;

use axum::routing::get;
use axum::Router;
use meshtrace::server::MeshServerLayer;
use opentelemetry::metrics::MeterProvider as _;
use std::net::SocketAddr;
use std::time::Duration;
use support::otlp::service::{builder, collector, env, Service};
use support::otlp::{Mode, Transport};

const SERVICE: &str = "orders";
const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

/// The orders app behind `layer`.
fn orders_app(layer: MeshServerLayer) -> Router {
    Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(layer)
}

/// `GET /orders/{id}` for each id, with `traceparent` if given; each must answer 200.
async fn get_orders(addr: SocketAddr, ids: std::ops::Range<u32>, traceparent: Option<&str>) {
    let http = reqwest::Client::new();
    for id in ids {
        let mut req = http.get(format!("http://{addr}/orders/{id}"));
        if let Some(traceparent) = traceparent {
            req = req.header("traceparent", traceparent);
        }
        assert_eq!(req.send().await.unwrap().status(), 200);
    }
}

/// The orders service, its layer measuring with the telemetry's own meter provider.
fn launch(env: &support::otlp::service::Env) -> Service<SocketAddr> {
    launch_with(builder(env))
}

fn launch_with(telemetry: meshtrace::export::TelemetryBuilder) -> Service<SocketAddr> {
    Service::launch_measured(SERVICE, telemetry, |meters| async move {
        let meter = meters.expect("a meter provider").meter("meshtrace");
        support::servers::serve(orders_app(MeshServerLayer::new().meter(meter))).await
    })
}

fn metrics_reach_the_collector_at_shutdown(transport: Transport) {
    let (_collector, receiver) = collector(transport);
    let mut env = env(SERVICE, transport, receiver.endpoint());
    env.insert("OTEL_METRICS_EXPORTER", "otlp".into());
    let mut service = launch(&env);
    let addr = service.app;
    service.block_on(async {
        get_orders(addr, 0..3, None).await;
        get_orders(addr, 3..5, Some(UNSAMPLED)).await;
    });
    assert!(
        receiver
            .histogram(SERVICE, "http.server.request.duration")
            .is_none(),
        "nothing before the interval or the shutdown"
    );
    let (result, _) = service.shutdown();
    result.expect("shutdown");

    let h = receiver
        .histogram(SERVICE, "http.server.request.duration")
        .expect("the metrics, flushed at shutdown");
    assert_eq!(h.unit, "s");
    let route = [
        ("http.route", "/orders/{id}"),
        ("http.request.method", "GET"),
        ("http.response.status_code", "200"),
    ];
    assert_eq!(h.count(&route), 5, "sampled and unsampled alike: {h:#?}");
    assert!(h
        .points
        .iter()
        .all(|p| p.bounds.len() == 14 && p.bounds[0] == 0.005));
    // The three sampled requests' spans went out too; the unsampled ones' did not.
    assert_eq!(receiver.spans().len(), 3);
}

#[test]
fn metrics_over_otlp_grpc() {
    metrics_reach_the_collector_at_shutdown(Transport::Grpc);
}

#[test]
fn metrics_over_otlp_http_protobuf() {
    metrics_reach_the_collector_at_shutdown(Transport::Http);
}

/// A metrics collector that hangs at shutdown holds back neither the spans nor the guard: each
/// provider flushes on its own, within the one shutdown timeout, and the guard says what did
/// not go out.
#[test]
fn a_hanging_metrics_collector_holds_back_no_span() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let (_traces_rt, traces) = collector(Transport::Http);
    let (_metrics_rt, metrics) = collector(Transport::Http);
    metrics.set_mode(Mode::Hang);
    let mut env = env(SERVICE, Transport::Http, traces.endpoint());
    env.insert("OTEL_METRICS_EXPORTER", "otlp".into());
    // The metrics' own endpoint, used as given; the exporter's timeout (10 s) is longer than
    // the shutdown's.
    env.insert(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        format!("{}/v1/metrics", metrics.endpoint()),
    );
    let mut service = launch_with(builder(&env).shutdown_timeout(TIMEOUT));
    let addr = service.app;
    service.block_on(get_orders(addr, 0..3, None));
    let (result, took) = service.shutdown();
    assert!(
        took < TIMEOUT + Duration::from_secs(1),
        "shutdown took {took:?}, timeout {TIMEOUT:?}"
    );
    assert!(
        result.is_err(),
        "the metrics did not go out, and the guard must say so"
    );
    assert_eq!(
        traces.spans().len(),
        3,
        "every span went out beside the hanging metrics"
    );
    assert_eq!(
        metrics.held(),
        1,
        "the metrics export was made, and is still held"
    );
    assert!(metrics.resource_metrics().is_empty());
}

#[test]
fn no_metrics_unless_asked_for() {
    let (_collector, receiver) = collector(Transport::Http);
    for exporter in [None, Some("none")] {
        let mut env = env(SERVICE, Transport::Http, receiver.endpoint());
        if let Some(exporter) = exporter {
            env.insert("OTEL_METRICS_EXPORTER", exporter.into());
        }
        let telemetry = builder(&env).build().expect("build");
        assert!(telemetry.meter_provider().is_none(), "{exporter:?}");
        telemetry.into_guard().shutdown().expect("shutdown");
    }
    assert!(receiver.resource_metrics().is_empty());
}

#[cfg(feature = "prometheus")]
#[test]
fn prometheus_scrapes_the_request_metrics() {
    let mut env = env(SERVICE, Transport::Http, "http://127.0.0.1:9".into());
    env.insert("OTEL_TRACES_EXPORTER", "none".into());
    env.insert("OTEL_METRICS_EXPORTER", "prometheus".into());
    env.insert("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1".into());
    env.insert("OTEL_EXPORTER_PROMETHEUS_PORT", "0".into());
    let telemetry = builder(&env).build().expect("build");
    let scrape = telemetry.prometheus_addr().expect("a scrape endpoint");
    assert!(scrape.ip().is_loopback());
    let meter = telemetry
        .meter_provider()
        .expect("meters")
        .meter("meshtrace");
    let runtime = support::telemetry::runtime("prometheus", 2, Some(telemetry.dispatch()));
    let text = runtime.block_on(async {
        let addr = support::servers::serve(orders_app(MeshServerLayer::new().meter(meter))).await;
        get_orders(addr, 0..4, None).await;
        let http = reqwest::Client::new();
        let res = http
            .get(format!("http://{scrape}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let missing = http
            .get(format!("http://{scrape}/other"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        res.text().await.unwrap()
    });
    // Prometheus's names: dots become underscores, the unit a suffix.
    let count = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_count{")
                && l.contains(r#"http_route="/orders/{id}""#)
                && l.contains(r#"http_response_status_code="200""#)
        })
        .unwrap_or_else(|| panic!("no request count in the scrape:\n{text}"));
    assert!(count.ends_with(" 4"), "{count}");
    assert!(text.contains(r#"http_server_request_duration_seconds_bucket{"#));
    assert!(text.contains(r#"le="0.005""#));
    assert!(
        text.contains(&format!(r#"service_name="{SERVICE}""#)),
        "{text}"
    );
    drop(runtime);
    telemetry.into_guard().shutdown().expect("shutdown");
    // The guard stopped the endpoint.
    assert!(std::net::TcpStream::connect(scrape).is_err());
}

/// The one global install of this binary: `init()`'s path. Layers given no meter take the
/// meter provider `install()` registered, at their first request.
#[test]
fn installed_telemetry_feeds_the_layers_default_meter() {
    let (_collector, receiver) = collector(Transport::Http);
    let mut env = env(SERVICE, Transport::Http, receiver.endpoint());
    env.insert("OTEL_METRICS_EXPORTER", "otlp".into());
    let guard = builder(&env)
        .build()
        .expect("build")
        .install()
        .expect("install");
    let runtime = support::telemetry::runtime("installed", 2, None);
    runtime.block_on(async {
        let addr = support::servers::serve(orders_app(MeshServerLayer::new())).await;
        get_orders(addr, 0..2, None).await;
    });
    drop(runtime);
    guard.shutdown().expect("shutdown");
    let h = receiver
        .histogram(SERVICE, "http.server.request.duration")
        .expect("the global meter provider's metrics");
    assert_eq!(h.count(&[("http.route", "/orders/{id}")]), 2, "{h:#?}");
}
