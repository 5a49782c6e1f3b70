//! A tower [`Layer`](tower::Layer) for servers: axum routers, hyper services and tonic
//! servers alike.
//!
//! Per request it extracts the incoming trace with the `HeaderMap` fast path, opens a server
//! span whose parent is the remote caller, runs the handler inside it and keeps the span open
//! until the response body has ended. Everything a handler calls inside that span (nested
//! `#[tracing::instrument]` functions, tasks spawned with `.in_current_span()`, the reqwest
//! and tonic client layers) then lands in the same trace and forwards the same pass-through
//! headers.
//!
//! A request the caller did not sample (or the sampler declines) gets a span that records
//! nothing: under a parent-based sampler the decision is read before any attribute is
//! computed, and nothing is recorded once the span is known not to record; its context still
//! carries the trace to every call. See the "Unsampled requests" section of
//! `docs/layers.md`.
//!
//! ## Naming
//!
//! `Mesh` + `Server` + the framework's word for its hook: [`MeshServerLayer`] is a tower
//! `Layer`, and its `Service` is the layer's name without `Layer`, [`MeshServer`]. Its
//! response future is [`ResponseFuture`], and the responses it returns carry a
//! [`TracedBody`]. The client side follows the same scheme (`crate::client`).
//!
//! The per-request path, one file per step: [`MeshServer`]'s `call` (`service.rs`) runs
//! `on_request.rs` (extract, make the span with `make_span.rs`, record the request), calls
//! the handler inside the span, and [`ResponseFuture`] (`future.rs`) hands the response to
//! `on_response.rs`, whose [`TracedBody`] ends the span at the end of the stream.

mod future;
mod layer;
mod make_span;
mod on_request;
mod on_response;
mod public;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::MeshServerLayer;
pub use self::public::PublicEndpoint;
pub use self::service::MeshServer;
pub use crate::instrument::body::TracedBody;
