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
pub(crate) mod metrics;
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

/// True when `cx`'s span is one this process started and did not record: the sampler said
/// no to the trace (a parent-based sampler under an unsampled caller, or the root sampler),
/// so a span opened under it would not be recorded either, and would have no recorded parent
/// if it were. The client layers then open no span of their own and compute no attribute,
/// and inject from `cx` itself: same trace, flags `00`, baggage and pass-through values.
///
/// A remote span context (the server layer's fallback when no OpenTelemetry layer tracks
/// its span) is not "ours": with no OpenTelemetry layer the question does not arise.
#[cfg(any(feature = "reqwest", feature = "tonic"))]
pub(crate) fn is_unrecorded(cx: &Context) -> bool {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid() && !sc.is_remote() && !span.is_recording()
}
