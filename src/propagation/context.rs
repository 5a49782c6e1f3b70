//! What extraction learnt beyond the span context and baggage, as stored in the extracted
//! [`Context`]: the chosen remote parent, the contexts that lost a conflict, pass-through
//! values and why anything was rejected.

use super::b3::{B3Error, SamplingState};
use super::jaeger::JaegerError;
use super::ottrace::OtTraceError;
use super::passthrough::PassThrough;
use super::traceparent::{TraceparentError, TracestateError};
use super::xray::XRayError;
use super::Format;
use http::{HeaderName, HeaderValue};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanContext, SpanId, TraceId, TraceState};
use opentelemetry::Context;
use std::fmt;

/// Why part of an incoming request's trace headers was not used.
///
/// These are diagnostics: extraction still returns everything that was valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// `traceparent` was rejected (and `tracestate` with it).
    #[error(transparent)]
    Traceparent(#[from] TraceparentError),
    /// `tracestate` was discarded; the trace was kept.
    #[error(transparent)]
    Tracestate(#[from] TracestateError),
    /// The `b3` header was rejected.
    #[error("b3: {0}")]
    B3Single(B3Error),
    /// The `x-b3-*` headers were rejected.
    #[error("x-b3-*: {0}")]
    B3Multi(B3Error),
    /// The `uber-trace-id` header was rejected.
    #[error("uber-trace-id: {0}")]
    Jaeger(JaegerError),
    /// The `ot-tracer-*` headers were rejected.
    #[error("ot-tracer-*: {0}")]
    OtTrace(OtTraceError),
    /// The `X-Amzn-Trace-Id` header was rejected.
    #[error("x-amzn-trace-id: {0}")]
    XRay(XRayError),
    /// Some baggage members were dropped (`baggage`, `uberctx-*` and `ot-baggage-*` alike).
    #[error("{0} baggage member(s) dropped")]
    Baggage(usize),
    /// The `baggage` lines went past 64 members or 8192 bytes: reading stopped there.
    #[error("baggage past 64 members or 8192 bytes was not read")]
    BaggageOverLimit,
    /// A pass-through header came on several lines: only the first is read and forwarded.
    #[error("pass-through header `{0}` sent more than once: only its first line is forwarded")]
    PassThroughRepeated(HeaderName),
    /// A pass-through value was dropped (control characters, non-ASCII, too long, empty).
    #[error("pass-through header `{0}` dropped: not visible ASCII of bounded length")]
    PassThrough(HeaderName),
}

/// The remote parent chosen among the formats of an incoming request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteParent {
    /// The format the winning context came from.
    pub format: Format,
    /// Its trace id.
    pub trace_id: TraceId,
    /// Its span id.
    pub span_id: SpanId,
    /// The sampling state, merged across agreeing formats (`Debug` if any said debug).
    pub sampling: SamplingState,
    /// True when B3 sent this trace id as 64 bits; B3 output then keeps 16 hex digits.
    pub b3_trace_id_64bit: bool,
    /// True when `traceparent` carried this trace with the W3C random flag (`0x02`); every
    /// outgoing call of the trace re-sends it, whatever flags a local span has.
    pub random: bool,
}

/// A context that lost a conflict, kept so the server span can link to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LosingContext {
    /// The format it came from.
    pub format: Format,
    /// The span context it carried.
    pub span_context: SpanContext,
}

/// What [`MeshPropagator`](super::MeshPropagator) learnt from an incoming request beyond
/// the span context and baggage: pass-through values, B3 sampling state, conflicts and
/// diagnostics.
///
/// Stored in the extracted [`Context`]; read it with [`MeshContextExt::mesh`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshContext {
    pub(super) pass_through: PassThrough,
    pub(super) remote: Option<RemoteParent>,
    pub(super) sampling_only: Option<SamplingState>,
    pub(super) losing: Vec<LosingContext>,
    pub(super) errors: Vec<ExtractError>,
    /// The incoming baggage, kept when every member was valid so that baggage the
    /// application did not change goes out byte-for-byte.
    pub(super) baggage_received: Option<ReceivedBaggage>,
    /// The incoming `tracestate`, kept when opentelemetry's `TraceState` could not hold all
    /// of it (Level 2 keys), so that a trace state the application did not change goes out
    /// whole.
    pub(super) tracestate_received: Option<ReceivedTracestate>,
    /// The `tracestate` line received (on one line of a `HeaderMap`), when it is exactly what
    /// writing its trace state gives: inject sends it again as it is (a reference count)
    /// while the outgoing span context's trace state has the same members.
    pub(super) tracestate_line: TracestateLine,
    /// The X-Ray fields to pass on (`Lineage`, ...) and the trace they belong to.
    pub(super) xray_other: Option<(TraceId, String)>,
}

/// The `tracestate` line received, kept only when it is exactly what writing the trace
/// state made from it gives (see [`MeshContext`]). It carries nothing the trace state does
/// not: it only saves inject the writing, and only the `HeaderMap` path keeps it (it is the
/// received `HeaderValue`, a reference count), so it plays no part in equality.
#[derive(Debug, Clone, Default)]
pub(super) struct TracestateLine(pub(super) Option<HeaderValue>);

impl PartialEq for TracestateLine {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TracestateLine {}

/// A `tracestate` list opentelemetry's [`TraceState`] could not hold whole: the list as
/// received (valid members joined by `,`), with the trace it came with and the trace state
/// the remote parent's `SpanContext` got from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReceivedTracestate {
    pub(super) trace_id: TraceId,
    pub(super) whole: bytes::Bytes,
    pub(super) held: TraceState,
}

impl ReceivedTracestate {
    /// The whole received list, if `sc` is of its trace and still carries the trace state
    /// made from it. A `TraceState` is copied into every child span, so "unchanged" is a
    /// comparison of at most 32 members, not of an address.
    pub(super) fn unchanged_in(&self, sc: &SpanContext) -> Option<&[u8]> {
        (sc.trace_id() == self.trace_id && sc.trace_state() == &self.held)
            .then_some(&self.whole[..])
    }
}

/// The `baggage` lines as received (joined; the received header value itself when it came on
/// one line, so that forwarding it copies nothing), and a context holding the [`Baggage`] they were
/// parsed into.
///
/// Holding that context keeps the `Baggage` allocation alive, so no other baggage can ever
/// sit at its address: at inject, "the context's baggage is this very allocation" is a
/// pointer comparison, and it means the application did not replace the baggage.
///
/// [`Baggage`]: opentelemetry::baggage::Baggage
#[derive(Clone)]
pub(super) struct ReceivedBaggage {
    pub(super) raw: HeaderValue,
    pub(super) parsed: Context,
}

impl ReceivedBaggage {
    /// The received bytes, if `cx` still carries the baggage they were parsed into.
    pub(super) fn unchanged_in(&self, cx: &Context) -> Option<&HeaderValue> {
        std::ptr::eq(self.parsed.baggage(), cx.baggage()).then_some(&self.raw)
    }
}

impl PartialEq for ReceivedBaggage {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for ReceivedBaggage {}

impl fmt::Debug for ReceivedBaggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReceivedBaggage").field(&self.raw).finish()
    }
}

impl MeshContext {
    /// Pass-through values, to be forwarded byte-for-byte.
    pub fn pass_through(&self) -> &PassThrough {
        &self.pass_through
    }

    /// `x-request-id`, if the request carried a forwardable one.
    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.pass_through.request_id()
    }

    /// The chosen remote parent, if any format carried a valid one.
    pub fn remote(&self) -> Option<&RemoteParent> {
        self.remote.as_ref()
    }

    /// The incoming sampling state: the remote parent's, else a B3 decision sent without
    /// ids (`b3: 0|1|d`, `x-b3-sampled` alone).
    pub fn sampling(&self) -> Option<SamplingState> {
        self.remote.map(|r| r.sampling).or(self.sampling_only)
    }

    /// True when the caller forced this trace (B3 debug).
    pub fn is_debug(&self) -> bool {
        self.sampling() == Some(SamplingState::Debug)
    }

    /// True when the caller left the sampling decision to us (B3 without a state).
    pub fn is_deferred(&self) -> bool {
        self.sampling() == Some(SamplingState::Deferred)
    }

    /// Contexts from other formats that disagreed with the chosen one.
    pub fn losing(&self) -> &[LosingContext] {
        &self.losing
    }

    /// What was rejected or dropped, and why.
    pub fn errors(&self) -> &[ExtractError] {
        &self.errors
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pass_through.is_empty()
            && self.remote.is_none()
            && self.sampling_only.is_none()
            && self.losing.is_empty()
            && self.errors.is_empty()
            && self.baggage_received.is_none()
            && self.tracestate_received.is_none()
            && self.tracestate_line.0.is_none()
            && self.xray_other.is_none()
    }
}

/// Read the [`MeshContext`] of a [`Context`].
pub trait MeshContextExt {
    /// The mesh state extracted into this context, if any.
    fn mesh(&self) -> Option<&MeshContext>;
}

impl MeshContextExt for Context {
    fn mesh(&self) -> Option<&MeshContext> {
        self.get::<MeshContext>()
    }
}
