//! The propagator the server and client layers use when they were not given one.
//!
//! opentelemetry's global propagator is a `dyn TextMapPropagator`: a layer cannot tell whether
//! it is a [`MeshPropagator`] and so cannot take the `HeaderMap` fast path through it.
//! [`set_global_propagator`] registers a `MeshPropagator` in both places, so that every
//! OpenTelemetry integration uses it and meshtrace's layers use it on the fast path.

use super::MeshPropagator;
use std::sync::{PoisonError, RwLock};

static MESH_GLOBAL: RwLock<Option<MeshPropagator>> = RwLock::new(None);

/// Registers `propagator` as opentelemetry's global text-map propagator and as the one
/// meshtrace's layers use.
///
/// ```
/// meshtrace::set_global_propagator(meshtrace::MeshPropagator::istio());
/// ```
pub fn set_global_propagator(propagator: MeshPropagator) {
    opentelemetry::global::set_text_map_propagator(propagator.clone());
    *MESH_GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(propagator);
}

/// The propagator last given to [`set_global_propagator`], if any.
///
/// ```
/// use meshtrace::{propagation::global_propagator, set_global_propagator, MeshPropagator};
/// set_global_propagator(MeshPropagator::istio());
/// assert!(global_propagator().is_some());
/// ```
pub fn global_propagator() -> Option<MeshPropagator> {
    MESH_GLOBAL
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}
