//! What both client layers do around a call: open and name its span, hold the call to the
//! deadline budget of the request being handled (and record that on the span), and record
//! who answered.

use super::span::{client_span, record_error};
use crate::client::SpanName;
use crate::mesh::deadline::{BudgetExhausted, DeadlineExt};
use crate::mesh::envoy::Origin;
use opentelemetry::Context;
use std::borrow::Cow;
use std::time::Duration;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// An outgoing call's budget, in milliseconds.
const DEADLINE_BUDGET_MS: &str = "meshtrace.deadline.budget_ms";
/// Who answered a call: `upstream`, `envoy` or `unknown` ([`Origin::as_str`]).
const REPLY_ORIGIN: &str = "meshtrace.reply.origin";
/// Which local reply Envoy made ([`crate::mesh::envoy::EnvoyReply::as_str`]).
const ENVOY_REPLY: &str = "meshtrace.envoy.reply";

/// The client span of a call: named `name` when the call carries a [`SpanName`], else
/// `default`.
pub(crate) fn start_span<'a>(
    name: Option<&SpanName>,
    default: impl FnOnce() -> Cow<'a, str>,
) -> Span {
    match name {
        Some(name) => client_span(&name.0),
        None => client_span(&default()),
    }
}

/// The time the call made inside client span `span` (whose context is `cx`) may take: `None`
/// when the request being handled has no deadline, [`BudgetExhausted`] when it has nothing
/// left. Recorded on the span: the budget as `meshtrace.deadline.budget_ms`, and a call
/// refused for lack of it as an error of type `budget_exhausted`.
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
    match budget {
        Ok(budget) => Ok(Some(budget)),
        Err(exhausted) => {
            record_error(span, "budget_exhausted", exhausted.to_string());
            Err(exhausted)
        }
    }
}

/// `meshtrace.reply.origin`, and `meshtrace.envoy.reply` when Envoy answered by itself.
pub(crate) fn record_origin(span: &Span, origin: &Origin) {
    if span.is_none() {
        return;
    }
    span.set_attribute(REPLY_ORIGIN, origin.as_str());
    if let Origin::Envoy(reply) = origin {
        span.set_attribute(ENVOY_REPLY, reply.as_str());
    }
}
