//! Client layers: every outgoing call gets a client span, and the trace, baggage and
//! pass-through headers of the request being handled go out with it.
//!
//! - [`reqwest`](mod@self::reqwest) (feature `reqwest`): a reqwest-middleware `Middleware`,
//!   and an extension trait for plain `reqwest::RequestBuilder`.
//! - [`tonic`](mod@self::tonic) (feature `tonic`): a tower `Layer` for `tonic::transport::Channel`,
//!   and an `Interceptor`.
//!
//! Per-call options travel as request extensions: [`DisablePropagation`] and [`SpanName`].

#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "tonic")]
pub mod tonic;

use crate::instrument::Propagation;
use crate::MeshPropagator;
use http::HeaderMap;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use std::borrow::Cow;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Per-call option: send this call with no trace, baggage or pass-through header (to a
/// third party outside the mesh, say). The client span is still recorded.
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

/// The trace context an outgoing call made inside `span` carries: the span's own when an
/// OpenTelemetry layer tracks it, else the current OpenTelemetry context (which the server
/// layer sets to the extracted one when no OpenTelemetry layer is installed, so that the
/// incoming headers are at least forwarded).
fn context_of(span: &Span) -> Context {
    let cx = span.context();
    if cx.has_active_span() {
        cx
    } else {
        Context::current()
    }
}

/// Writes the context of `span` (a client span, or the current span) into `headers`.
pub(crate) fn inject_from(
    span: &Span,
    propagator: Option<&MeshPropagator>,
    headers: &mut HeaderMap,
) {
    let cx = context_of(span);
    Propagation::resolve(propagator).inject(&cx, headers);
}
