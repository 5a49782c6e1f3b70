//! Which propagator a layer reads and writes headers with.
//!
//! A layer given a propagator of its own borrows it. A layer without one uses the process's
//! registered choice, settled once, at the first request or call any layer handles: the
//! propagator given to [`crate::set_global_propagator`], else opentelemetry's global one when
//! it is not the no-op default, else [`MeshPropagator::istio`]. Settling it once keeps both
//! registries' locks (and a propagator clone) off every request; opentelemetry's global
//! cannot be watched for changes without taking its lock, so a cache could not follow a
//! later registration cheaply anyway. Services register at start-up (`meshtrace::init()` does),
//! before their first request.

use crate::propagation::{global_propagator, MeshPropagator};
use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry_http::HeaderExtractor;
use std::sync::OnceLock;

/// How a layer propagates one request: through a `MeshPropagator` on the `HeaderMap` fast
/// path, or through opentelemetry's global propagator when the user registered a different
/// one there.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Propagation<'a> {
    Mesh(&'a MeshPropagator),
    Global,
}

/// The registered choice, as settled at first use.
enum Registered {
    Mesh(MeshPropagator),
    Global,
}

impl<'a> Propagation<'a> {
    /// `explicit` when the layer was given one, else the registered choice.
    pub(crate) fn resolve(explicit: Option<&'a MeshPropagator>) -> Propagation<'a> {
        match explicit {
            Some(p) => Propagation::Mesh(p),
            None => registered(),
        }
    }

    pub(crate) fn extract(self, headers: &HeaderMap) -> Context {
        let root = Context::new();
        match self {
            Propagation::Mesh(p) => p.extract_from_headers_with_context(&root, headers),
            Propagation::Global => opentelemetry::global::get_text_map_propagator(|p| {
                p.extract_with_context(&root, &HeaderExtractor(headers))
            }),
        }
    }

    #[cfg(any(feature = "reqwest", feature = "tonic"))]
    pub(crate) fn inject(self, cx: &Context, headers: &mut HeaderMap) {
        match self {
            Propagation::Mesh(p) => p.inject_into_headers(cx, headers),
            Propagation::Global => opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers))
            }),
        }
    }
}

fn registered() -> Propagation<'static> {
    static REGISTERED: OnceLock<Registered> = OnceLock::new();
    match REGISTERED.get_or_init(|| {
        crate::propagation::global::mark_settled();
        if let Some(p) = global_propagator() {
            return Registered::Mesh(p);
        }
        let user_set_one =
            opentelemetry::global::get_text_map_propagator(|p| p.fields().next().is_some());
        if user_set_one {
            Registered::Global
        } else {
            Registered::Mesh(MeshPropagator::istio())
        }
    }) {
        Registered::Mesh(p) => Propagation::Mesh(p),
        Registered::Global => Propagation::Global,
    }
}
