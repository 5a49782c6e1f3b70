//! SPECS.md section 6: which format's context becomes the remote parent, what the formats
//! that agree with it lend it, and which contexts are kept as losers. One function per rule;
//! [`resolve`] applies them in order.

use super::b3::{B3Context, SamplingState};
use super::context::{LosingContext, MeshContext, ReceivedTracestate, RemoteParent};
use super::traceparent::{Traceparent, FLAG_RANDOM, FLAG_SAMPLED};
use super::Format;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// How many formats carry a trace context (see [`Format::is_trace`]).
pub(super) const TRACE_FORMATS: usize = 6;

/// The trace formats in the order they win conflicts.
pub(super) type Priority = [Format; TRACE_FORMATS];

/// SPECS.md section 6: traceparent, then B3 single, then B3 multi; then the formats of
/// section 7: Jaeger (128-bit ids and a debug flag), OpenTracing (often only 64 bits), and
/// X-Ray last, because an AWS load balancer adds its own `X-Amzn-Trace-Id` to requests that
/// already carry the caller's trace.
pub(super) const DEFAULT_PRIORITY: Priority = [
    Format::TraceContext,
    Format::B3Single,
    Format::B3Multi,
    Format::Jaeger,
    Format::OtTrace,
    Format::XRay,
];

/// Slot positions in priority order.
type Order = [usize; TRACE_FORMATS];

/// One format's valid context, before the formats are reconciled.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    format: Format,
    trace_id: u128,
    span_id: u64,
    sampling: SamplingState,
    random: bool,
    b3_parent: Option<u64>,
    narrow: bool,
    trace_state: TraceState,
}

impl Candidate {
    pub(super) fn from_traceparent(tp: Traceparent, trace_state: TraceState) -> Self {
        Candidate {
            format: Format::TraceContext,
            trace_id: tp.trace_id,
            span_id: tp.parent_id,
            sampling: if tp.flags & FLAG_SAMPLED != 0 {
                SamplingState::Accept
            } else {
                SamplingState::Deny
            },
            random: tp.flags & FLAG_RANDOM != 0,
            b3_parent: None,
            narrow: false,
            trace_state,
        }
    }

    /// A context of a format that carries only ids and a decision (Jaeger, OpenTracing,
    /// X-Ray).
    pub(super) fn from_ids(
        format: Format,
        trace_id: u128,
        span_id: u64,
        sampling: SamplingState,
    ) -> Self {
        Candidate {
            format,
            trace_id,
            span_id,
            sampling,
            random: false,
            b3_parent: None,
            narrow: false,
            trace_state: TraceState::NONE,
        }
    }

    pub(super) fn from_b3(format: Format, b: B3Context) -> Self {
        Candidate {
            format,
            trace_id: b.trace_id,
            span_id: b.span_id,
            sampling: b.sampling,
            random: false,
            b3_parent: b.parent_span_id,
            narrow: b.trace_id_64bit,
            trace_state: TraceState::NONE,
        }
    }

    fn span_context(
        &self,
        sampling: SamplingState,
        random: bool,
        trace_state: TraceState,
    ) -> SpanContext {
        let mut flags = 0;
        if sampling.is_sampled() == Some(true) {
            flags |= FLAG_SAMPLED;
        }
        if random {
            flags |= FLAG_RANDOM;
        }
        SpanContext::new(
            TraceId::from(self.trace_id),
            SpanId::from(self.span_id),
            TraceFlags::new(flags),
            true,
            trace_state,
        )
    }
}

/// What the trace formats of one request carried: the rules' input.
#[derive(Debug, Default)]
pub(super) struct Candidates {
    /// One slot per trace format, in `Format` order: TraceContext, B3Single, B3Multi,
    /// Jaeger, OtTrace, XRay.
    slots: [Option<Candidate>; TRACE_FORMATS],
    /// The B3 decision the single header sent without ids (`b3: 0|1|d`).
    single_sampling_only: Option<SamplingState>,
    /// The B3 decision the multi headers sent without ids (`x-b3-sampled` alone).
    multi_sampling_only: Option<SamplingState>,
    /// The `tracestate` list, when the traceparent's `TraceState` could not hold it whole.
    tracestate_received: Option<ReceivedTracestate>,
}

impl Candidates {
    /// Fills the slot of the candidate's format.
    pub(super) fn put(&mut self, candidate: Candidate) {
        let i = slot(candidate.format);
        self.slots[i] = Some(candidate);
    }

    /// Keeps the whole `tracestate` list the traceparent candidate's `TraceState` could not hold.
    pub(super) fn put_tracestate_received(&mut self, received: ReceivedTracestate) {
        self.tracestate_received = Some(received);
    }

    /// Records a B3 decision sent without ids by `format` (B3 single or multi).
    pub(super) fn put_sampling_only(&mut self, format: Format, sampling: SamplingState) {
        match format {
            Format::B3Single => self.single_sampling_only = Some(sampling),
            _ => self.multi_sampling_only = Some(sampling),
        }
    }
}

const fn slot(format: Format) -> usize {
    match format {
        Format::TraceContext => 0,
        Format::B3Single => 1,
        Format::Jaeger => 3,
        Format::OtTrace => 4,
        Format::XRay => 5,
        // Only the trace formats make candidates.
        Format::B3Multi | Format::Baggage | Format::PassThrough => 2,
    }
}

/// Settles the request's contexts: records the remote parent, the losers and the sampling
/// state in `mesh`, and returns the span context of the remote parent, if any.
pub(super) fn resolve(
    cands: &mut Candidates,
    priority: Priority,
    mesh: &mut MeshContext,
) -> Option<SpanContext> {
    let order = priority.map(slot);
    mesh.tracestate_received = cands.tracestate_received.take();
    let sampling_only = sampling_without_ids(cands);
    let Some(first) = by_priority(cands, order) else {
        mesh.sampling_only = sampling_only;
        return None;
    };
    let winner = newer_b3_hop(cands, order, first).unwrap_or(first);
    let (trace_id, span_id, own) = cands.slots[winner]
        .as_ref()
        .map(|w| (w.trace_id, w.span_id, w.sampling))
        .expect("the winner's slot is filled");
    let lent = same_trace(cands, order, trace_id, span_id);
    let sampling = decision(own, &lent, sampling_only);
    let w = cands.slots[winner].take().expect("winner slot is filled");
    mesh.losing = losers(cands, order, trace_id, span_id);
    mesh.remote = Some(RemoteParent {
        format: w.format,
        trace_id: TraceId::from(trace_id),
        span_id: SpanId::from(span_id),
        sampling,
        b3_trace_id_64bit: lent.narrow,
        random: lent.random,
    });
    Some(w.span_context(sampling, lent.random, lent.trace_state))
}

/// SPECS 3, "single takes precedence over multi": the B3 decision sent without ids. It is
/// the request's sampling state when no format carried a context, and a deferred winner's
/// decision when no agreeing format lends one.
fn sampling_without_ids(cands: &Candidates) -> Option<SamplingState> {
    cands.single_sampling_only.or(cands.multi_sampling_only)
}

/// SPECS 6, "the configured priority wins" (by default traceparent, then B3 single, then
/// B3 multi, then Jaeger, OpenTracing and X-Ray): the first trace format in priority order that carried a valid context.
fn by_priority(cands: &Candidates, order: Order) -> Option<usize> {
    order.into_iter().find(|&i| cands.slots[i].is_some())
}

/// SPECS 6, "same trace id, different span ids: a sidecar rewrote one of them; if
/// `x-b3-parentspanid` equals the traceparent's parent-id, B3 is the newer hop and wins":
/// when traceparent won on priority, the first B3 context in priority order that names
/// traceparent's span as its parent.
fn newer_b3_hop(cands: &Candidates, order: Order, winner: usize) -> Option<usize> {
    let tc = cands.slots[slot(Format::TraceContext)].as_ref()?;
    if winner != slot(Format::TraceContext) {
        return None;
    }
    order.into_iter().find(|&i| {
        cands.slots[i].as_ref().is_some_and(|c| {
            c.format != Format::TraceContext
                && c.trace_id == tc.trace_id
                && c.span_id != tc.span_id
                && c.b3_parent == Some(tc.span_id)
        })
    })
}

/// What the formats that carried the winner's trace lend it.
#[derive(Debug, Default)]
struct Lent {
    /// The first decision (in priority order) of a format with the winner's ids.
    agreed: Option<SamplingState>,
    /// A format with the winner's ids said debug.
    debug: bool,
    /// B3 sent the trace id as 64 bits.
    narrow: bool,
    /// traceparent's `random` flag.
    random: bool,
    /// traceparent's tracestate.
    trace_state: TraceState,
}

/// SPECS 6, "several formats present and agreeing: one context": the formats with the
/// winner's ids lend it their decision and debug flag; every format of the winner's trace
/// lends B3's 64-bit width (SPECS 3) and W3C's `random` flag and tracestate (SPECS 1).
fn same_trace(cands: &mut Candidates, order: Order, trace_id: u128, span_id: u64) -> Lent {
    let mut lent = Lent::default();
    for i in order {
        let Some(c) = cands.slots[i].as_mut() else {
            continue;
        };
        if c.trace_id != trace_id {
            continue;
        }
        lent.narrow |= c.narrow;
        if c.format == Format::TraceContext {
            lent.random = c.random;
            // A traceparent that lost keeps its tracestate for its link too.
            lent.trace_state = if c.span_id == span_id {
                std::mem::take(&mut c.trace_state)
            } else {
                c.trace_state.clone()
            };
        }
        if c.span_id == span_id {
            lent.debug |= c.sampling == SamplingState::Debug;
            if lent.agreed.is_none() && c.sampling != SamplingState::Deferred {
                lent.agreed = Some(c.sampling);
            }
        }
    }
    lent
}

/// SPECS 3, "debug must be kept" and "a deferred decision must not silently become not
/// sampled": debug if any agreeing format said so; else the winner's own decision; else,
/// for a deferred winner, an agreeing format's, else one sent without ids, else still
/// deferred, for the local sampler.
fn decision(
    own: SamplingState,
    lent: &Lent,
    sampling_only: Option<SamplingState>,
) -> SamplingState {
    if lent.debug {
        return SamplingState::Debug;
    }
    match own {
        SamplingState::Deferred => lent.agreed.or(sampling_only).unwrap_or(own),
        decided => decided,
    }
}

/// SPECS 6, "different trace ids: the priority wins and the other contexts are kept so that
/// the server span can link to them": every remaining context without the winner's ids, in
/// priority order.
fn losers(
    cands: &mut Candidates,
    order: Order,
    trace_id: u128,
    span_id: u64,
) -> Vec<LosingContext> {
    order
        .into_iter()
        .filter_map(|i| cands.slots[i].take())
        .filter(|c| c.trace_id != trace_id || c.span_id != span_id)
        .map(|mut c| {
            let trace_state = std::mem::take(&mut c.trace_state);
            LosingContext {
                format: c.format,
                span_context: c.span_context(c.sampling, c.random, trace_state),
            }
        })
        .collect()
}
