//! The ids a log line carries: the trace and span of the OpenTelemetry span the event
//! belongs to, and the request's `x-request-id`.
//!
//! For an event in the current span (nearly all of them), the ids come from
//! [`Context::map_current`], a thread-local borrow. tracing-opentelemetry makes a tracked
//! span's context current while the span is entered, so this is the context of the innermost
//! entered span the exporter knows, whatever the fmt layer's own filter (`RUST_LOG`) shows:
//! with `RUST_LOG=my_app=debug` the server span is not printed, but a line inside it still
//! carries its ids. When no OpenTelemetry layer tracks the server span, the server layer makes
//! the extracted context current instead, so a line carries the caller's ids. The
//! `x-request-id` is the [`MeshContext`]'s of the same context: the server span's context is
//! built on the extracted one, and every span below it inherits its values.
//!
//! An event with an explicit parent (`info!(parent: &span, ..)`) takes the ids of that span,
//! or of its nearest ancestor the OpenTelemetry layer tracks (none without such a layer: the
//! extracted context is current only where the request's span is entered). An event with
//! `parent: None`, or outside any span, carries none.
//!
//! [`MeshContext`]: crate::propagation::MeshContext

use crate::propagation::MeshContextExt;
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use opentelemetry::Context;
use std::sync::{Arc, OnceLock};
use tracing::dispatcher::WeakDispatch;
use tracing::span::Id;
use tracing::{Dispatch, Event};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Registry;

/// What one log line carries besides the event; nothing at all outside a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LineIds<'a> {
    /// The trace and span, when the context has a valid span (sampled or not).
    pub(super) span: Option<(TraceId, SpanId)>,
    /// `x-request-id`, as the server layer extracted it (visible ASCII).
    pub(super) request_id: Option<&'a str>,
}

impl<'a> LineIds<'a> {
    const NONE: LineIds<'static> = LineIds {
        span: None,
        request_id: None,
    };

    fn of(cx: &'a Context) -> LineIds<'a> {
        let span = cx.span();
        let sc = span.span_context();
        LineIds {
            span: sc.is_valid().then(|| (sc.trace_id(), sc.span_id())),
            request_id: cx
                .mesh()
                .and_then(|mesh| mesh.request_id())
                .and_then(|v| v.to_str().ok()),
        }
    }
}

/// The subscriber the fmt layer is part of, for looking up an explicit parent's context.
///
/// tracing hands a layer no way to its own subscriber, and `dispatcher::get_default` answers
/// the no-op subscriber while an event is being dispatched; so the subscriber is given to the
/// formatter once built. Weakly: a subscriber holding itself would never be dropped.
#[derive(Debug, Clone, Default)]
pub(in crate::export) struct Subscriber(Arc<OnceLock<WeakDispatch>>);

impl Subscriber {
    /// Tells the formatters which subscriber they are part of (once; later calls are ignored).
    pub(in crate::export) fn set(&self, dispatch: &Dispatch) {
        let _ = self.0.set(dispatch.downgrade());
    }

    /// Calls `f` with the ids of `event`'s line (see the module docs).
    pub(super) fn with_ids<R>(&self, event: &Event<'_>, f: impl FnOnce(LineIds<'_>) -> R) -> R {
        if event.is_contextual() {
            Context::map_current(|cx| f(LineIds::of(cx)))
        } else {
            match event.parent().and_then(|id| self.context_of(id)) {
                Some(cx) => f(LineIds::of(&cx)),
                None => f(LineIds::NONE),
            }
        }
    }

    /// The OpenTelemetry context of span `id`, or of its nearest ancestor that has one. The
    /// registry is asked directly: the fmt layer's view leaves out the spans its filter does.
    pub(super) fn context_of(&self, id: &Id) -> Option<Context> {
        let dispatch = self.0.get()?.upgrade()?;
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(id)?;
        span.scope()
            .find_map(|s| tracing_opentelemetry::get_otel_context(&s.id(), &dispatch))
    }
}
