//! A small mesh on 127.0.0.1 for the integration tests, built from meshtrace's layers:
//!
//! ```text
//! client ──HTTP──▶ front (axum) ──gRPC──▶ relay (tonic) ──HTTP──▶ back (axum)
//! ```
//!
//! - front `GET /front/{id}`: `front_handler` (`#[instrument]`) spawns `call_relay`
//!   (`#[instrument]`, `.in_current_span()`), which calls `Relay/Forward` through
//!   `MeshClientLayer` with `path = /back/{id}`; `id = fail` asks the relay for an error.
//! - relay (`support::relay`) `Relay/Forward`: `forward` (`#[instrument]`) calls the back
//!   service through reqwest-middleware with `MeshClientMiddleware`. `Relay/Count` streams `n`
//!   messages `gap_ms` apart.
//! - back `GET /back/{id}`: records the headers it received; `/back/unavailable` answers 503.
//!
//! Spans go to the in-memory exporter of [`super::telemetry::exporter`].

use super::relay::{self, ForwardReply, RelayClient};
use super::servers::{self, Seen};
use super::telemetry::exporter;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use meshtrace::server::MeshServerLayer;
use reqwest_middleware::ClientWithMiddleware;
use std::net::SocketAddr;
use tracing::Instrument;

/// The relay's `Forward`: calls the back service at `back` with `path` through `http`.
#[tracing::instrument(skip(back, http))]
async fn forward(
    back: String,
    http: ClientWithMiddleware,
    path: String,
) -> Result<ForwardReply, tonic::Status> {
    if path == "/back/fail" {
        return Err(tonic::Status::internal("relay was asked to fail"));
    }
    let res = http
        .get(format!("{back}{path}"))
        .send()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    if !res.status().is_success() {
        return Err(tonic::Status::unavailable(format!(
            "back answered {}",
            res.status()
        )));
    }
    let body = res
        .text()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    Ok(ForwardReply { body })
}

// ---------------------------------------------------------------- the mesh

pub struct Mesh {
    pub front: SocketAddr,
    pub relay: SocketAddr,
    pub back: SocketAddr,
    pub seen: Seen,
}

#[derive(Clone)]
struct Front {
    relay: RelayClient,
}

#[tracing::instrument(skip(front))]
async fn front_handler(State(front): State<Front>, Path(id): Path<String>) -> (StatusCode, String) {
    let relay = front.relay.clone();
    // A spawned task keeps the request's trace only through `.in_current_span()`.
    let handle = tokio::spawn(call_relay(relay, format!("/back/{id}")).in_current_span());
    match handle.await {
        Ok(Ok(reply)) => (StatusCode::OK, reply.body),
        Ok(Err(status)) => (StatusCode::BAD_GATEWAY, status.message().to_owned()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[tracing::instrument(skip(relay))]
async fn call_relay(mut relay: RelayClient, path: String) -> Result<ForwardReply, tonic::Status> {
    relay.forward(path).await
}

impl Mesh {
    /// Starts the three services; `front_layer` is the front service's server layer (the
    /// tests vary its options).
    pub async fn start(front_layer: MeshServerLayer) -> Mesh {
        exporter();
        let seen = Seen::default();

        let back_app = servers::recording_back(seen.clone()).layer(MeshServerLayer::new());
        let back = servers::serve(back_app).await;

        let back_url = format!("http://{back}");
        let http = servers::traced_client();
        let relay = relay::serve_grpc(relay::relay(move |path| {
            forward(back_url.clone(), http.clone(), path)
        }))
        .await;

        let front_app = Router::new()
            .route("/front/{id}", get(front_handler))
            .with_state(Front {
                relay: RelayClient::new(relay),
            })
            .layer(front_layer);
        let front = servers::serve(front_app).await;

        Mesh {
            front,
            relay,
            back,
            seen,
        }
    }

    /// The headers of every back request, in arrival order.
    pub fn received(&self) -> Vec<HeaderMap> {
        servers::all_seen(&self.seen)
    }

    /// The headers of the back request that carried `x-request-id: id`.
    pub fn seen_with_request_id(&self, id: &str) -> Vec<HeaderMap> {
        self.received()
            .into_iter()
            .filter(|h| h.get("x-request-id").is_some_and(|v| v == id))
            .collect()
    }
}
