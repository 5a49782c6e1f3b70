//! # meshtrace
//!
//! Trace propagation for Rust services behind an Istio / Envoy sidecar.
//!
//! The sidecar makes the spans, but only the application can carry a trace from the request
//! it received to the requests it sends. [`MeshPropagator`] reads every format a mesh sends
//! (W3C `traceparent`/`tracestate`/`baggage`, B3 single and multi, `x-request-id`,
//! `x-ot-span-context`), settles disagreements between them, and writes them all back out
//! from one span context.
//!
//! ```
//! use meshtrace::{MeshContextExt, MeshPropagator};
//! use opentelemetry::trace::TraceContextExt;
//!
//! // Register once at start-up; every OpenTelemetry integration then uses it.
//! opentelemetry::global::set_text_map_propagator(MeshPropagator::istio());
//!
//! // What Envoy sends.
//! let mut incoming = http::HeaderMap::new();
//! incoming.insert("x-request-id", "3e1c6d4a-5b2f-4c8e-9d7a-1f0b2c3d4e5f".parse().unwrap());
//! incoming.insert("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7".parse().unwrap());
//! incoming.insert("x-b3-spanid", "e457b5a2e4d86bd1".parse().unwrap());
//! incoming.insert("x-b3-sampled", "1".parse().unwrap());
//!
//! let propagator = MeshPropagator::istio();
//! let cx = propagator.extract_from_headers(&incoming);
//! assert!(cx.span().span_context().is_sampled());
//! assert_eq!(cx.mesh().unwrap().request_id().unwrap(), "3e1c6d4a-5b2f-4c8e-9d7a-1f0b2c3d4e5f");
//!
//! // Everything goes out again on the next call.
//! let mut outgoing = http::HeaderMap::new();
//! propagator.inject_into_headers(&cx, &mut outgoing);
//! assert_eq!(outgoing["traceparent"], "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01");
//! assert_eq!(outgoing["x-b3-spanid"], "e457b5a2e4d86bd1");
//! assert_eq!(outgoing["x-request-id"], "3e1c6d4a-5b2f-4c8e-9d7a-1f0b2c3d4e5f");
//! ```
//!
//! ## Features
//!
//! Default: all but `check`. `default-features = false` leaves the propagation core alone,
//! needing only `opentelemetry` and `http`; the core also holds [`mesh`] (deadline budget,
//! Envoy replies, mesh timeouts) and [`GrpcCode`].
//!
//! - `sdk`: [`MeshSampler`], which lets a deferred B3 decision be made by the local sampler.
//! - `tracing`: warnings (for example about `OTEL_PROPAGATORS`) go through `tracing`
//!   instead of standard error.
//! - `tower`: [`server::MeshServerLayer`], a server span per request for axum, hyper and
//!   tonic servers, its parent the caller's span.
//! - `axum`: `tower`, plus span names and `http.route` from axum's `MatchedPath`.
//! - `reqwest`: [`client::reqwest::MeshClientMiddleware`] for reqwest-middleware, and
//!   [`client::reqwest::RequestBuilderExt`] for plain reqwest.
//! - `tonic`: [`client::tonic::MeshClientLayer`] for channels, [`client::tonic::MeshClientInterceptor`].
//! - `otlp`: [`init()`]: the propagator, a `tracing` subscriber and an OTLP exporter, from
//!   OpenTelemetry's environment variables ([`export`]).
//! - `check`: [`check`], a checker for retries and timeouts that fight the mesh in Istio YAML
//!   and the app's client settings (the `mesh-check` binary: `cargo install meshtrace --features check`).
//!
//! ## Naming
//!
//! A layer type is `Mesh`, then `Server` or `Client`, then the framework's own word for its
//! hook: `Layer` for tower, `Middleware` for reqwest-middleware, `Interceptor` for tonic's
//! interceptors. A tower `Layer`'s `Service` is the layer's name without `Layer`.
//!
//! | framework | type | module |
//! |---|---|---|
//! | tower (axum, hyper, tonic servers) | `MeshServerLayer`, its service `MeshServer` | `server` |
//! | reqwest-middleware | `MeshClientMiddleware` | `client::reqwest` |
//! | tower (tonic channels) | `MeshClientLayer`, its service `MeshClient` | `client::tonic` |
//! | tonic interceptors | `MeshClientInterceptor` | `client::tonic` |
//!
//! The body of the responses the layers return is `server::TracedBody`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "check")]
pub mod check;
#[cfg(any(feature = "reqwest", feature = "tonic"))]
pub mod client;
#[cfg(feature = "otlp")]
pub mod export;
pub mod grpc;
#[cfg(any(feature = "tower", feature = "otlp"))]
mod header_list;
#[cfg(feature = "tower")]
mod instrument;
pub mod mesh;
pub mod propagation;
#[cfg(feature = "sdk")]
mod sampler;
#[cfg(feature = "tower")]
pub mod server;

#[cfg(feature = "otlp")]
pub use export::{init, shutdown_signal};
pub use grpc::GrpcCode;
pub use propagation::b3::SamplingState;
pub use propagation::{global_propagator, set_global_propagator};
pub use propagation::{
    B3Encoding, BuildError, ExtractError, Format, Formats, LosingContext, MeshContext,
    MeshContextExt, MeshPropagator, MeshPropagatorBuilder, RemoteParent,
};
#[cfg(feature = "sdk")]
pub use sampler::MeshSampler;

/// The examples of the README and of the pages under `docs/`, compiled and run as doctests.
#[cfg(all(
    doctest,
    feature = "sdk",
    feature = "axum",
    feature = "reqwest",
    feature = "tonic"
))]
pub mod doc_pages {
    #[doc = include_str!("../README.md")]
    pub struct Readme;
    #[doc = include_str!("../docs/propagation.md")]
    pub struct Propagation;
    #[doc = include_str!("../docs/layers.md")]
    pub struct Layers;
    #[doc = include_str!("../docs/mesh.md")]
    pub struct Mesh;
    #[doc = include_str!("../docs/configuration.md")]
    pub struct Configuration;
}
