//! Client layers: every outgoing call gets a client span, and the trace, baggage and
//! pass-through headers of the request being handled go out with it.
//!
//! A call made while the trace is not recorded (the current span is a local span the sampler
//! declined: an unsampled caller under a parent-based sampler, or a new trace the root
//! sampler said no to) gets no client span and no attributes; it still carries the trace
//! (flags `00`), the baggage and the pass-through headers, injected from the current span.
//! See the "Unsampled requests" section of `docs/layers.md`.
//!
//! - [`reqwest`](mod@self::reqwest) (feature `reqwest`): [`MeshClientMiddleware`](self::reqwest::MeshClientMiddleware),
//!   a reqwest-middleware `Middleware`, and an extension trait for plain `reqwest::RequestBuilder`.
//! - [`tonic`](mod@self::tonic) (feature `tonic`): [`MeshClientLayer`](self::tonic::MeshClientLayer),
//!   a tower `Layer` for `tonic::transport::Channel` (its service is [`MeshClient`](self::tonic::MeshClient)),
//!   and [`MeshClientInterceptor`](self::tonic::MeshClientInterceptor), a tonic `Interceptor`.
//!
//! ## Naming
//!
//! `Mesh` + `Client` + the framework's own word for its hook: `Middleware` for
//! reqwest-middleware, `Layer` for tower, `Interceptor` for tonic's interceptors. A tower
//! `Layer`'s `Service` is the layer's name without `Layer` (`MeshClientLayer` makes
//! `MeshClient`). The server side follows the same scheme ([`crate::server`]).
//!
//! ## Options
//!
//! Every client type has the same builder setters, `propagator(..)`, `deadline_margin(..)`
//! and `outbound_scope(..)` ([`OutboundScope`]: where baggage and pass-through headers may
//! go), and the layers a `mesh_timeout(..)` ([`crate::mesh::timeouts`]).
//! Per-call options travel as request extensions: [`DisablePropagation`] and [`SpanName`].
//!
//! All three respect the deadline budget of the request being handled
//! ([`crate::mesh::deadline`]): each call is capped at the time left less a margin
//! ([`DEFAULT_DEADLINE_MARGIN`] unless set), gRPC calls carry it as `grpc-timeout`, and a
//! call with nothing left fails at once with
//! [`BudgetExhausted`](crate::mesh::deadline::BudgetExhausted), without being sent. The
//! budget is recorded on the call's span (`meshtrace.deadline.budget_ms`; a refused call as
//! `error.type = budget_exhausted`): the client span for the layers, the current span for the
//! interceptor, which opens none.

#[cfg(feature = "reqwest")]
pub mod reqwest;
pub(crate) mod scope;
#[cfg(feature = "tonic")]
pub mod tonic;

pub use crate::instrument::options::DEFAULT_DEADLINE_MARGIN;
pub use scope::{Elsewhere, OutboundScope};
use std::borrow::Cow;

/// Per-call option: send this call with no trace, baggage or pass-through header (to a
/// third party outside the mesh, say). The client span is still recorded (when the trace
/// is).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisablePropagation;

/// Per-call option: the client span's name, instead of the HTTP method or the gRPC
/// `service/method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanName(pub Cow<'static, str>);

impl SpanName {
    /// A span name.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        SpanName(name.into())
    }
}
