//! Client layers: every outgoing call gets a client span, and the trace, baggage and
//! pass-through headers of the request being handled go out with it.
//!
//! - [`reqwest`](mod@self::reqwest) (feature `reqwest`): a reqwest-middleware `Middleware`,
//!   and an extension trait for plain `reqwest::RequestBuilder`.
//! - [`tonic`](mod@self::tonic) (feature `tonic`): a tower `Layer` for `tonic::transport::Channel`,
//!   and an `Interceptor`.
//!
//! Per-call options travel as request extensions: [`DisablePropagation`] and [`SpanName`].
//!
//! Both layers respect the deadline budget of the request being handled
//! ([`crate::mesh::deadline`]): each call is capped at the time left less a margin
//! ([`DEFAULT_DEADLINE_MARGIN`] unless set), gRPC calls carry it as `grpc-timeout`, and a
//! call with nothing left fails at once with [`BudgetExhausted`], without being sent.

#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "tonic")]
pub mod tonic;

pub(crate) use crate::instrument::context_of;
use crate::instrument::Propagation;
use crate::mesh::deadline::{BudgetExhausted, DeadlineExt};
use crate::MeshPropagator;
use http::HeaderMap;
use opentelemetry::Context;
use std::borrow::Cow;
use std::time::Duration;
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

/// Writes the context of `span` (a client span, or the current span) into `headers`.
#[cfg(feature = "reqwest")]
pub(crate) fn inject_from(
    span: &Span,
    propagator: Option<&MeshPropagator>,
    headers: &mut HeaderMap,
) {
    inject_cx(&context_of(span), propagator, headers);
}

/// Writes `cx` into `headers`.
pub(crate) fn inject_cx(
    cx: &Context,
    propagator: Option<&MeshPropagator>,
    headers: &mut HeaderMap,
) {
    Propagation::resolve(propagator).inject(cx, headers);
}

/// Time kept, by default, between the end of an outgoing call's budget and the deadline of
/// the request being handled: for the answer to travel back.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_millis(5);

/// The time the call made inside client span `span` (whose context is `cx`) may take: `None`
/// when the request being handled has no deadline, [`BudgetExhausted`] when it has nothing
/// left. Recorded on the span as `meshtrace.deadline.budget_ms`.
pub(crate) fn call_budget(
    cx: &Context,
    span: &Span,
    margin: Duration,
) -> Result<Option<Duration>, BudgetExhausted> {
    let Some(deadline) = cx.deadline() else {
        return Ok(None);
    };
    let budget = deadline.budget_for_call(margin);
    let ms = budget.map_or(0, |b| i64::try_from(b.as_millis()).unwrap_or(i64::MAX));
    span.set_attribute(DEADLINE_BUDGET_MS, ms);
    budget.map(Some)
}

/// The attribute recording an outgoing call's budget, in milliseconds.
pub(crate) const DEADLINE_BUDGET_MS: &str = "meshtrace.deadline.budget_ms";
