//! What the server and client layers share: choosing the propagator, reading the trace
//! context a span carries, the semantic-convention attributes, gRPC status handling and the
//! body that ends a span at the end of its stream.
//!
//! Everything here is a free function over `http` types, so the framework layers stay thin.

pub(crate) mod body;
pub(crate) mod grpc;
pub(crate) mod span;

use crate::propagation::{global_propagator, MeshPropagator};
use http::HeaderMap;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_http::HeaderExtractor;
use std::sync::OnceLock;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How a layer propagates one request: through a `MeshPropagator` on the `HeaderMap` fast
/// path, or through opentelemetry's global propagator when the user registered a different
/// one there.
#[derive(Debug, Clone)]
pub(crate) enum Propagation {
    Mesh(MeshPropagator),
    Global,
}

impl Propagation {
    /// The propagator for this request: `explicit` when the layer was given one, else the one
    /// from [`crate::set_global_propagator`], else opentelemetry's global one when it is not the
    /// no-op default, else [`MeshPropagator::istio`].
    pub(crate) fn resolve(explicit: Option<&MeshPropagator>) -> Propagation {
        if let Some(p) = explicit {
            return Propagation::Mesh(p.clone());
        }
        if let Some(p) = global_propagator() {
            return Propagation::Mesh(p);
        }
        let user_set_one =
            opentelemetry::global::get_text_map_propagator(|p| p.fields().next().is_some());
        if user_set_one {
            Propagation::Global
        } else {
            static ISTIO: OnceLock<MeshPropagator> = OnceLock::new();
            Propagation::Mesh(ISTIO.get_or_init(MeshPropagator::istio).clone())
        }
    }

    pub(crate) fn extract(&self, headers: &HeaderMap) -> Context {
        let root = Context::new();
        match self {
            Propagation::Mesh(p) => p.extract_from_headers_with_context(&root, headers),
            Propagation::Global => opentelemetry::global::get_text_map_propagator(|p| {
                p.extract_with_context(&root, &HeaderExtractor(headers))
            }),
        }
    }

    #[cfg(any(feature = "reqwest", feature = "tonic"))]
    pub(crate) fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        match self {
            Propagation::Mesh(p) => p.inject_into_headers(cx, headers),
            Propagation::Global => opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers))
            }),
        }
    }
}

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
