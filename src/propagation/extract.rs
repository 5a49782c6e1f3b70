//! Extraction: one walk over the headers (a `HeaderMap`, or any [`Extractor`] name by
//! name) gathers the lines each format needs; each format is then parsed once, the rules of
//! `SPECS.md` section 6 pick the remote parent, and baggage is attached.

use super::b3::{self, B3Context, MultiHeaders, SamplingState, B3};
use super::baggage;
use super::context::{ExtractError, LosingContext, MeshContext, ReceivedBaggage, RemoteParent};
use super::format::{name, Format};
use super::passthrough::PassThrough;
use super::traceparent::{self, TraceparentError, FLAG_RANDOM, FLAG_SAMPLED};
use super::MeshPropagator;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;

/// Header values seen for one name: most requests carry one, some carry several lines.
#[derive(Debug, Default)]
enum Lines<'a> {
    #[default]
    Zero,
    One(&'a [u8]),
    Many(Vec<&'a [u8]>),
}

impl<'a> Lines<'a> {
    #[inline]
    fn push(&mut self, v: &'a [u8]) {
        *self = match std::mem::take(self) {
            Lines::Zero => Lines::One(v),
            Lines::One(first) => Lines::Many(vec![first, v]),
            Lines::Many(mut all) => {
                all.push(v);
                Lines::Many(all)
            }
        };
    }

    fn as_slice(&self) -> &[&'a [u8]] {
        match self {
            Lines::Zero => &[],
            Lines::One(v) => std::slice::from_ref(v),
            Lines::Many(all) => all,
        }
    }
}

/// Everything the formats need from one request, gathered in one walk over its headers.
#[derive(Debug, Default)]
struct Raw<'a> {
    traceparent: Lines<'a>,
    tracestate: Lines<'a>,
    baggage: Lines<'a>,
    b3: Option<&'a [u8]>,
    multi: MultiHeaders<'a>,
    pass_through: PassThrough,
    dropped: Vec<HeaderName>,
}

/// One format's valid context, before the formats are reconciled.
#[derive(Debug, Clone)]
struct Candidate {
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
    fn from_b3(format: Format, b: B3Context) -> Self {
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

impl MeshPropagator {
    /// Extracts from a `HeaderMap` into a child of the current context, walking the map once.
    pub fn extract_from_headers(&self, headers: &HeaderMap) -> Context {
        Context::map_current(|cx| self.extract_from_headers_with_context(cx, headers))
    }

    /// Extracts from a `HeaderMap` into a child of `cx`, walking the map once.
    pub fn extract_from_headers_with_context(&self, cx: &Context, headers: &HeaderMap) -> Context {
        let cfg = &*self.cfg;
        let ex = cfg.extract;
        let mut raw = Raw::default();
        for (name, value) in headers {
            let name_str = name.as_str();
            if !cfg.first_bytes[usize::from(name_str.as_bytes()[0])] {
                continue;
            }
            let v = value.as_bytes();
            match name_str {
                name::TRACEPARENT => {
                    if ex.contains(Format::TraceContext) {
                        raw.traceparent.push(v);
                    }
                }
                name::TRACESTATE => {
                    if ex.contains(Format::TraceContext) {
                        raw.tracestate.push(v);
                    }
                }
                name::BAGGAGE => {
                    if ex.contains(Format::Baggage) {
                        raw.baggage.push(v);
                    }
                }
                // B3 headers are single-valued: the first line counts, as `Extractor::get` sees it.
                name::B3 => first(&mut raw.b3, v, ex.contains(Format::B3Single)),
                name::X_B3_TRACEID => {
                    first(&mut raw.multi.trace_id, v, ex.contains(Format::B3Multi))
                }
                name::X_B3_SPANID => first(&mut raw.multi.span_id, v, ex.contains(Format::B3Multi)),
                name::X_B3_PARENTSPANID => first(
                    &mut raw.multi.parent_span_id,
                    v,
                    ex.contains(Format::B3Multi),
                ),
                name::X_B3_SAMPLED => {
                    first(&mut raw.multi.sampled, v, ex.contains(Format::B3Multi))
                }
                name::X_B3_FLAGS => first(&mut raw.multi.flags, v, ex.contains(Format::B3Multi)),
                _ => {
                    if ex.contains(Format::PassThrough)
                        && cfg.pass_through.contains(name)
                        && !raw.pass_through.push(
                            name.clone(),
                            value.clone(),
                            cfg.max_pass_through_len,
                        )
                    {
                        raw.dropped.push(name.clone());
                    }
                }
            }
        }
        // Keep the order the `Extractor` path produces, which asks name by name.
        raw.pass_through.order_by(&cfg.pass_through);
        raw.dropped
            .sort_by_key(|n| cfg.pass_through.iter().position(|c| c == n));
        self.resolve(cx, raw)
    }

    /// Extracts from any carrier, asking it name by name.
    pub(super) fn extract_generic(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let cfg = &*self.cfg;
        let ex = cfg.extract;
        let mut raw = Raw::default();
        let mut traceparent = None;
        let mut tracestate = None;
        let mut baggage_lines = None;
        if ex.contains(Format::TraceContext) {
            traceparent = extractor.get_all(name::TRACEPARENT);
            tracestate = extractor.get_all(name::TRACESTATE);
        }
        if ex.contains(Format::Baggage) {
            baggage_lines = extractor.get_all(name::BAGGAGE);
        }
        for v in traceparent.iter().flatten() {
            raw.traceparent.push(v.as_bytes());
        }
        for v in tracestate.iter().flatten() {
            raw.tracestate.push(v.as_bytes());
        }
        for v in baggage_lines.iter().flatten() {
            raw.baggage.push(v.as_bytes());
        }
        let text = |name: &str| extractor.get(name).map(str::as_bytes);
        if ex.contains(Format::B3Single) {
            raw.b3 = text(name::B3);
        }
        if ex.contains(Format::B3Multi) {
            raw.multi = MultiHeaders {
                trace_id: text(name::X_B3_TRACEID),
                span_id: text(name::X_B3_SPANID),
                parent_span_id: text(name::X_B3_PARENTSPANID),
                sampled: text(name::X_B3_SAMPLED),
                flags: text(name::X_B3_FLAGS),
            };
        }
        if ex.contains(Format::PassThrough) {
            for name in &cfg.pass_through {
                for v in extractor.get_all(name.as_str()).into_iter().flatten() {
                    let kept = HeaderValue::from_str(v).is_ok_and(|value| {
                        raw.pass_through
                            .push(name.clone(), value, cfg.max_pass_through_len)
                    });
                    if !kept {
                        raw.dropped.push(name.clone());
                    }
                }
            }
        }
        self.resolve(cx, raw)
    }

    fn resolve(&self, cx: &Context, raw: Raw<'_>) -> Context {
        let cfg = &*self.cfg;
        let mut mesh = MeshContext {
            pass_through: raw.pass_through,
            ..MeshContext::default()
        };
        mesh.errors
            .extend(raw.dropped.into_iter().map(ExtractError::PassThrough));

        // One slot per trace format, in `Format` order: TraceContext, B3Single, B3Multi.
        let mut cands: [Option<Candidate>; 3] = [None, None, None];
        let mut sampling_only = [None, None];

        let tp_lines = raw.traceparent.as_slice();
        if !tp_lines.is_empty() {
            let parsed = if tp_lines.len() > 1 || tp_lines[0].contains(&b',') {
                Err(TraceparentError::Duplicate)
            } else {
                traceparent::parse_traceparent(tp_lines[0])
            };
            match parsed {
                Ok(tp) => {
                    let trace_state = match traceparent::parse_tracestate(raw.tracestate.as_slice())
                    {
                        Ok(ts) => ts,
                        Err(e) => {
                            mesh.errors.push(e.into());
                            TraceState::NONE
                        }
                    };
                    cands[0] = Some(Candidate {
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
                    });
                }
                Err(e) => mesh.errors.push(e.into()),
            }
        }
        if let Some(v) = raw.b3 {
            match b3::parse_single(v) {
                Ok(B3::Context(b)) => cands[1] = Some(Candidate::from_b3(Format::B3Single, b)),
                Ok(B3::SamplingOnly(s)) => sampling_only[0] = Some(s),
                Err(e) => mesh.errors.push(ExtractError::B3Single(e)),
            }
        }
        match b3::parse_multi(&raw.multi) {
            Ok(Some(B3::Context(b))) => cands[2] = Some(Candidate::from_b3(Format::B3Multi, b)),
            Ok(Some(B3::SamplingOnly(s))) => sampling_only[1] = Some(s),
            Ok(None) => {}
            Err(e) => mesh.errors.push(ExtractError::B3Multi(e)),
        }
        let sampling_only = sampling_only[0].or(sampling_only[1]);

        let slot = |f: Format| match f {
            Format::TraceContext => 0,
            Format::B3Single => 1,
            _ => 2,
        };
        let order = cfg.priority.map(slot);
        let mut winner = order.into_iter().find(|&i| cands[i].is_some());

        // Same trace, different span: a sidecar rewrote one format. If B3 names the
        // traceparent's span as its parent, B3 is the newer hop.
        if let (Some(0), Some(tc)) = (winner, &cands[0]) {
            if let Some(newer) = order.into_iter().find(|&i| {
                cands[i].as_ref().is_some_and(|c| {
                    c.format != Format::TraceContext
                        && c.trace_id == tc.trace_id
                        && c.span_id != tc.span_id
                        && c.b3_parent == Some(tc.span_id)
                })
            }) {
                winner = Some(newer);
            }
        }

        let mut out = cx.clone();
        match winner {
            Some(wi) => {
                let (trace_id, span_id, own) = cands[wi]
                    .as_ref()
                    .map(|w| (w.trace_id, w.span_id, w.sampling))
                    .expect("the winner's slot is filled");
                let mut agreed = None;
                let (mut debug, mut narrow, mut random) = (false, false, false);
                let mut trace_state = TraceState::NONE;
                // Agreeing formats (same ids) lend their decision to a deferred winner and
                // their debug flag to any winner; the same trace keeps B3's 64-bit width
                // and W3C's random flag and tracestate.
                for i in order {
                    let Some(c) = cands[i].as_mut() else { continue };
                    if c.trace_id != trace_id {
                        continue;
                    }
                    narrow |= c.narrow;
                    if c.format == Format::TraceContext {
                        random = c.random;
                        trace_state = if c.span_id == span_id {
                            std::mem::take(&mut c.trace_state)
                        } else {
                            c.trace_state.clone()
                        };
                    }
                    if c.span_id == span_id {
                        debug |= c.sampling == SamplingState::Debug;
                        if agreed.is_none() && c.sampling != SamplingState::Deferred {
                            agreed = Some(c.sampling);
                        }
                    }
                }
                let mut sampling = match own {
                    SamplingState::Deferred => agreed.or(sampling_only).unwrap_or(own),
                    decided => decided,
                };
                if debug {
                    sampling = SamplingState::Debug;
                }
                let w = cands[wi].take().expect("winner slot is filled");
                mesh.losing = order
                    .into_iter()
                    .filter_map(|i| cands[i].take())
                    .filter(|c| c.trace_id != trace_id || c.span_id != span_id)
                    .map(|c| LosingContext {
                        format: c.format,
                        span_context: c.span_context(c.sampling, c.random, c.trace_state.clone()),
                    })
                    .collect();
                mesh.remote = Some(RemoteParent {
                    format: w.format,
                    trace_id: TraceId::from(trace_id),
                    span_id: SpanId::from(span_id),
                    sampling,
                    b3_trace_id_64bit: narrow,
                });
                out = out.with_remote_span_context(w.span_context(sampling, random, trace_state));
            }
            None => mesh.sampling_only = sampling_only,
        }

        let baggage_lines = raw.baggage.as_slice();
        if !baggage_lines.is_empty() {
            let (baggage, dropped) = baggage::parse_baggage(baggage_lines);
            if dropped > 0 {
                mesh.errors.push(ExtractError::Baggage(dropped));
            }
            if !baggage.is_empty() {
                out = out.with_baggage(baggage);
                if dropped == 0 {
                    mesh.baggage_received = Some(ReceivedBaggage {
                        raw: match baggage_lines {
                            [one] => bytes::Bytes::copy_from_slice(one),
                            many => many.join(&b","[..]).into(),
                        },
                        parsed: out.clone(),
                    });
                }
            }
        }
        if !mesh.is_empty() {
            out = out.with_value(mesh);
        }
        out
    }
}

#[inline]
fn first<'a>(slot: &mut Option<&'a [u8]>, v: &'a [u8], enabled: bool) {
    if enabled && slot.is_none() {
        *slot = Some(v);
    }
}
