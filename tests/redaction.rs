//! Credentials never recorded (SPECS §9): a server with `MeshServerLayer` told to record
//! `authorization`, `cookie` and two custom headers, one of them redacted by name, receives
//! real requests carrying secrets; the exported server span records the custom header's
//! value, shows the credentials and the redacted header as `[REDACTED]` (once per header
//! line), and no secret appears anywhere in what was exported. A default layer records no
//! credential at all.
#![cfg(all(feature = "axum", feature = "sdk"))]

mod support;

use axum::routing::get;
use axum::Router;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::HeaderName;
use meshtrace::server::MeshServerLayer;
use opentelemetry::trace::SpanKind;
use opentelemetry::{Array, Value};
use opentelemetry_sdk::trace::SpanData;
use support::servers::serve;
use support::spans::strings as attr;
use support::telemetry::exporter;

const SECRETS: [&str; 4] = [
    "Bearer eyJhbGciOi-secret-token",
    "session=s3cr3t-cookie",
    "Basic cHJveHk6c2VjcmV0",
    "key-9f8e7d-secret",
];

fn x(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

/// The exported server span of the request with this `x-request-id`.
fn server_span(request_id: &str) -> SpanData {
    let spans = exporter().get_finished_spans().expect("spans");
    let want = Value::Array(Array::String(vec![request_id.to_owned().into()]));
    spans
        .into_iter()
        .find(|s| {
            s.span_kind == SpanKind::Server
                && s.attributes.iter().any(|kv| {
                    kv.key.as_str() == "http.request.header.x-request-id" && kv.value == want
                })
        })
        .unwrap_or_else(|| panic!("no server span for {request_id}"))
}

/// Everything exported, as text, to look for secrets in.
fn everything_exported() -> String {
    format!("{:?}", exporter().get_finished_spans().expect("spans"))
}

async fn send(addr: std::net::SocketAddr, request_id: &str) {
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/orders/1"))
        .header("x-request-id", request_id)
        .header(AUTHORIZATION, SECRETS[0])
        .header(COOKIE, SECRETS[1])
        .header(COOKIE, "theme=dark")
        .header(PROXY_AUTHORIZATION, SECRETS[2])
        .header("x-api-key", SECRETS[3])
        .header("x-tenant", "acme")
        .send()
        .await
        .expect("answer");
    assert!(res.status().is_success());
}

#[tokio::test]
async fn credentials_and_redacted_names_are_never_recorded() {
    exporter();
    let layer = MeshServerLayer::new()
        .record_request_header(AUTHORIZATION)
        .record_request_header(COOKIE)
        .record_request_header(PROXY_AUTHORIZATION)
        .record_request_header(x("x-tenant"))
        .record_request_header(x("x-api-key"))
        .redact_header(x("x-api-key"));
    let configured = serve(
        Router::new()
            .route("/orders/{id}", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;
    let plain = serve(
        Router::new()
            .route("/orders/{id}", get(|| async { "ok" }))
            .layer(MeshServerLayer::new()),
    )
    .await;
    send(configured, "configured-1").await;
    send(plain, "plain-1").await;

    let span = server_span("configured-1");
    assert_eq!(
        attr(&span, "http.request.header.x-tenant"),
        Some(vec!["acme".into()])
    );
    assert_eq!(
        attr(&span, "http.request.header.authorization"),
        Some(vec!["[REDACTED]".into()])
    );
    assert_eq!(
        attr(&span, "http.request.header.cookie"),
        Some(vec!["[REDACTED]".into(), "[REDACTED]".into()]),
        "one [REDACTED] per cookie line"
    );
    assert_eq!(
        attr(&span, "http.request.header.proxy-authorization"),
        Some(vec!["[REDACTED]".into()])
    );
    assert_eq!(
        attr(&span, "http.request.header.x-api-key"),
        Some(vec!["[REDACTED]".into()])
    );

    let plain = server_span("plain-1");
    for key in [
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
        "x-tenant",
    ] {
        assert_eq!(
            attr(&plain, &format!("http.request.header.{key}")),
            None,
            "{key}"
        );
    }

    let exported = everything_exported();
    for secret in SECRETS {
        assert!(!exported.contains(secret), "{secret:?} was exported");
    }
}
