//! Services on 127.0.0.1 (axum, reqwest, tokio): binding and serving, a client with
//! meshtrace's reqwest middleware, and a back service that records what it received.
//!
//! Nothing here installs telemetry: see [`super::telemetry`].

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use meshtrace::client::reqwest::MeshClientMiddleware;
use reqwest_middleware::{ClientWithMiddleware, RequestBuilder};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Barrier;

// ---------------------------------------------------------------- serving and calling

/// A listener on a free port of 127.0.0.1, and its address.
pub async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// A port on 127.0.0.1 that nothing listens on: bound, then let go.
pub async fn closed_port() -> SocketAddr {
    let (listener, addr) = listen().await;
    drop(listener);
    addr
}

/// Serves `app` on a free port of 127.0.0.1 in the background; returns its address.
pub async fn serve(app: Router) -> SocketAddr {
    let (listener, addr) = listen().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A reqwest client through reqwest-middleware with `MeshClientMiddleware`.
pub fn traced_client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(MeshClientMiddleware::new())
        .build()
}

/// How a front service reaches its back service: a traced client and the back service's
/// base URL.
#[derive(Clone)]
pub struct Caller {
    pub client: ClientWithMiddleware,
    pub back: String,
}

impl Caller {
    /// A `traced_client` for the back service at `back`.
    pub fn new(back: String) -> Caller {
        Caller {
            client: traced_client(),
            back,
        }
    }

    /// `GET /back/{tag}` on the back service, ready to send.
    pub fn get(&self, tag: &str) -> RequestBuilder {
        self.client.get(format!("{}/back/{tag}", self.back))
    }

    /// Sends `GET /back/{tag}`: `Ok` if the back service answered with a success, else the
    /// 502 a front service answers with.
    pub async fn call(&self, tag: &str) -> Result<(), (StatusCode, String)> {
        match self.get(tag).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err((StatusCode::BAD_GATEWAY, r.status().to_string())),
            Err(e) => Err((StatusCode::BAD_GATEWAY, e.to_string())),
        }
    }
}

/// Waits (up to 5 s) until another request is at `barrier` too, so that both are in their
/// handlers at once; a lone request gets a 500 answer instead of hanging.
pub async fn wait_for_partner(barrier: &Barrier) -> Result<(), (StatusCode, String)> {
    match tokio::time::timeout(Duration::from_secs(5), barrier.wait()).await {
        Ok(_) => Ok(()),
        Err(_) => Err((StatusCode::INTERNAL_SERVER_ERROR, "no partner".into())),
    }
}

// ---------------------------------------------------------------- a recording back service

/// What a back service received: the `{id}` of each request's path and its headers, in
/// arrival order.
pub type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// A back service answering `GET /back/{id}` with `back {id}` (`/back/unavailable` answers
/// 503) that records every request in `seen`. It has no layer of its own.
pub fn recording_back(seen: Seen) -> Router {
    Router::new()
        .route("/back/{id}", get(record))
        .with_state(seen)
}

async fn record(
    State(seen): State<Seen>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    seen.lock().expect("lock").push((id.clone(), headers));
    if id == "unavailable" {
        (StatusCode::SERVICE_UNAVAILABLE, "no capacity".into())
    } else {
        (StatusCode::OK, format!("back {id}"))
    }
}

/// Starts a `recording_back` (no layer: it only records); returns its base URL and what it
/// records.
pub async fn start_back() -> (String, Seen) {
    let seen = Seen::default();
    let addr = serve(recording_back(seen.clone())).await;
    (format!("http://{addr}"), seen)
}

/// The headers of the one back request to `/back/{id}`.
pub fn seen_for(seen: &Seen, id: &str) -> HeaderMap {
    let hits: Vec<HeaderMap> = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|(t, _)| t == id)
        .map(|(_, h)| h.clone())
        .collect();
    assert_eq!(hits.len(), 1, "one back request tagged {id:?}");
    hits.into_iter().next().expect("one")
}

/// The headers of every back request, in arrival order.
pub fn all_seen(seen: &Seen) -> Vec<HeaderMap> {
    seen.lock()
        .expect("lock")
        .iter()
        .map(|(_, h)| h.clone())
        .collect()
}
