//! The propagator the server and client layers use when they were not given one.
//!
//! opentelemetry's global propagator is a `dyn TextMapPropagator`: a layer cannot tell whether
//! it is a [`MeshPropagator`] and so cannot take the `HeaderMap` fast path through it.
//! [`set_global_propagator`] registers a `MeshPropagator` in both places, so that every
//! OpenTelemetry integration uses it and meshtrace's layers use it on the fast path.

use super::MeshPropagator;
#[cfg(feature = "tower")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

static MESH_GLOBAL: RwLock<Option<MeshPropagator>> = RwLock::new(None);

/// Set once the layers have settled on the registered propagator (at the first request or
/// call any layer handles, so that no request pays for a lock); a registration after that
/// no longer reaches them.
#[cfg(feature = "tower")]
static SETTLED: AtomicBool = AtomicBool::new(false);

/// The layers settled on the registered propagator: later registrations are warned about.
#[cfg(feature = "tower")]
pub(crate) fn mark_settled() {
    SETTLED.store(true, Ordering::Relaxed);
}

#[cfg(feature = "tower")]
fn warn_if_settled() {
    if SETTLED.load(Ordering::Relaxed) {
        tracing::warn!(
            "meshtrace::set_global_propagator called after the layers handled their first \
             request: layers without a propagator of their own keep the one they settled on; \
             register it before serving (meshtrace::init() does)"
        );
    }
}

/// Registers `propagator` as opentelemetry's global text-map propagator and as the one
/// meshtrace's layers use. Call it at start-up, before the first request: the layers settle
/// on the registered propagator once, when they handle their first request or call, and a
/// later registration is warned about and does not reach them (opentelemetry's global is
/// still replaced).
///
/// ```
/// meshtrace::set_global_propagator(meshtrace::MeshPropagator::istio());
/// ```
pub fn set_global_propagator(propagator: MeshPropagator) {
    #[cfg(feature = "tower")]
    warn_if_settled();
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
