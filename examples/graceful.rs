//! A service in the README's quick-start shape that stops the way Kubernetes stops it:
//! `meshtrace::init()`, an axum server with `MeshServerLayer`, and graceful shutdown on
//! `meshtrace::shutdown_signal()`. On SIGTERM (or Ctrl-C) it stops taking connections,
//! finishes the requests in flight, returns from `main`, and the telemetry guard flushes every
//! span before the process exits.
//!
//! ```sh
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run --example graceful
//! curl localhost:9080/orders/7; kill -TERM <pid>   # or Ctrl-C
//! ```
//!
//! It listens on `LISTEN` (default `127.0.0.1:9080`) and prints `listening on ADDR` once
//! ready; `tests/shutdown.rs` runs it as a child process and sends it SIGTERM mid-traffic.

use axum::extract::Path;
use axum::{routing::get, Router};
use meshtrace::server::MeshServerLayer;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = meshtrace::init()?;

    let app = Router::new()
        .route("/orders/{id}", get(order))
        .layer(MeshServerLayer::new());
    let addr = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:9080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(meshtrace::shutdown_signal())
        .await?;
    println!("stopped serving; flushing telemetry");
    Ok(())
    // `_telemetry` drops here: every span still queued is exported before the process ends.
}

#[tracing::instrument]
async fn order(Path(id): Path<u32>) -> String {
    price(id).await
}

/// Some work inside the request, so that each one has a nested span and takes a moment.
#[tracing::instrument]
async fn price(id: u32) -> String {
    tokio::time::sleep(Duration::from_millis(2)).await;
    format!("order {id}: {} EUR", 10 + id % 7)
}
