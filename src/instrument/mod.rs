//! What the server and client layers share: choosing the propagator, reading the trace
//! context a span carries, the semantic-convention attributes, gRPC status codes, the body
//! that ends a span at the end of its stream, and the client layers' options and call
//! helpers.
//!
//! Everything here is a free function over `http` types, so the framework layers stay thin.

pub(crate) mod body;
#[cfg(any(feature = "reqwest", feature = "tonic"))]
pub(crate) mod client;
pub(crate) mod grpc;
#[cfg(any(feature = "reqwest", feature = "tonic"))]
pub(crate) mod options;
pub(crate) mod propagation;
pub(crate) mod span;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace context an outgoing call made inside `span` carries: the span's own when an
/// OpenTelemetry layer tracks it, else the current OpenTelemetry context (which the server
/// layer sets to the extracted one when no OpenTelemetry layer is installed, so that the
/// incoming headers are at least forwarded).
pub(crate) fn context_of(span: &Span) -> Context {
    let cx = span.context();
    if cx.has_active_span() {
        cx
    } else {
        Context::current()
    }
}
