//! The test service the W3C Trace Context test harness (github.com/w3c/trace-context,
//! `test/`) drives, built as a service would be: axum behind `MeshServerLayer`, calls made
//! with reqwest and `MeshClientMiddleware`, spans made by the OpenTelemetry SDK with
//! `MeshSampler`.
//!
//! The harness POSTs a JSON list of `{"url": …, "arguments": …}`; for each element the
//! service POSTs `arguments` (as JSON) to `url`, from inside the request's span, so that the
//! harness sees the headers meshtrace propagates. It answers with the list of the statuses.
//!
//! `cargo run --example w3c_harness [ADDR]` (default `127.0.0.1:5000`; the propagator comes
//! from `OTEL_PROPAGATORS`, unset meaning `tracecontext,baggage`). docs/propagation.md, "W3C
//! test harness", has the harness's command.

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use meshtrace::client::reqwest::MeshClientMiddleware;
use meshtrace::server::MeshServerLayer;
use meshtrace::{MeshPropagator, MeshSampler};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::Value;
use std::error::Error;
use tracing_subscriber::layer::SubscriberExt;

/// POSTs each element's `arguments` to its `url`; answers with their statuses.
async fn test(
    axum::extract::State(client): axum::extract::State<ClientWithMiddleware>,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let json = [(header::CONTENT_TYPE, "application/json")];
    let Ok(Value::Array(actions)) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            json,
            "\"expected a JSON list\"".into(),
        );
    };
    let mut statuses = Vec::new();
    for action in &actions {
        let Some(url) = action.get("url").and_then(Value::as_str) else {
            return (
                StatusCode::BAD_REQUEST,
                json,
                "\"an element without url\"".into(),
            );
        };
        let arguments = action.get("arguments").cloned().unwrap_or(Value::Null);
        let status = client
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(arguments.to_string())
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        statuses.push(Value::from(status));
    }
    (StatusCode::OK, json, Value::Array(statuses).to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5000".into());
    // Spans as a service makes them: parent-based, so an unsampled request gets unsampled
    // spans (which the SDK gives no flags). Nothing is exported.
    let provider = SdkTracerProvider::builder()
        .with_sampler(MeshSampler::new(Sampler::AlwaysOn))
        .build();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("w3c_harness"))),
    )?;
    meshtrace::set_global_propagator(MeshPropagator::try_from_env()?);

    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(MeshClientMiddleware::new())
        .build();
    let app = Router::new()
        .route("/test", post(test))
        .with_state(client)
        .layer(MeshServerLayer::new());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("w3c_harness test service on http://{addr}/test");
    axum::serve(listener, app).await?;
    Ok(())
}
