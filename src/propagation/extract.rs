//! Extraction: one walk over the headers (a `HeaderMap`, or any [`Extractor`] name by
//! name) gathers the lines each format needs; each format is then parsed once, the rules of
//! [`resolve`](super::resolve) pick the remote parent, and baggage is attached.

use super::b3::{self, MultiHeaders, B3};
use super::baggage;
use super::context::{ExtractError, MeshContext, ReceivedBaggage, ReceivedTracestate};
use super::format::{name, Format};
use super::passthrough::PassThrough;
use super::resolve::{self, Candidate, Candidates};
use super::traceparent::{self, TraceparentError};
use super::MeshPropagator;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt, TraceId, TraceState};
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
    /// The lines of one header, read until they pass `max` bytes (joined with commas) or
    /// `max_lines`; the line that passes `max` is kept, so the parser sees the limit was
    /// passed. Later lines are not looked at.
    #[inline]
    fn read(lines: impl Iterator<Item = &'a [u8]>, max: usize, max_lines: usize) -> Self {
        let mut lines = lines.take(max_lines);
        let Some(first) = lines.next() else {
            return Lines::Zero;
        };
        let Some(second) = lines.next().filter(|_| first.len() <= max) else {
            return Lines::One(first);
        };
        let mut joined = first.len() + 1 + second.len();
        let mut all = vec![first, second];
        for v in lines {
            if joined > max {
                break;
            }
            joined += 1 + v.len();
            all.push(v);
        }
        Lines::Many(all)
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
    trace: TraceHeaders<'a>,
    baggage: Lines<'a>,
    pass_through: PassThrough,
    /// Pass-through values dropped or not read, to be reported.
    pass_through_errors: Vec<ExtractError>,
}

impl Raw<'_> {
    /// Reports a pass-through header whose first line was not kept, or that came on more
    /// lines than the one read.
    #[inline]
    fn report_pass_through(&mut self, name: &HeaderName, kept: bool, repeated: bool) {
        if !kept {
            self.pass_through_errors
                .push(ExtractError::PassThrough(name.clone()));
        }
        if repeated {
            self.pass_through_errors
                .push(ExtractError::PassThroughRepeated(name.clone()));
        }
    }
}

/// The lines of the trace formats.
#[derive(Debug, Default)]
struct TraceHeaders<'a> {
    traceparent: Lines<'a>,
    tracestate: Lines<'a>,
    b3: Option<&'a [u8]>,
    multi: MultiHeaders<'a>,
}

/// Two `traceparent` lines are enough to know it is invalid.
const TRACEPARENT_LINES: usize = 2;

impl MeshPropagator {
    /// Extracts from a `HeaderMap` into a child of the current context, walking the map once.
    pub fn extract_from_headers(&self, headers: &HeaderMap) -> Context {
        Context::map_current(|cx| self.extract_from_headers_with_context(cx, headers))
    }

    /// Extracts from a `HeaderMap` into a child of `cx`, walking the map once. A name sent
    /// on many lines costs only the lines its format reads, up to the limits.
    pub fn extract_from_headers_with_context(&self, cx: &Context, headers: &HeaderMap) -> Context {
        let cfg = &*self.cfg;
        let mut raw = Raw::default();
        if headers.len() == headers.keys_len() {
            // One line per name, the common case: one walk over the lines.
            for (name, value) in headers {
                if cfg.first_bytes[usize::from(name.as_str().as_bytes()[0])] {
                    self.gather(&mut raw, name, std::iter::once(value));
                }
            }
        } else {
            // Some name has several lines: walk the names, and read each one's lines only as
            // far as its format needs.
            for name in headers.keys() {
                if cfg.first_bytes[usize::from(name.as_str().as_bytes()[0])] {
                    self.gather(&mut raw, name, headers.get_all(name).iter());
                }
            }
        }
        // Keep the order the `Extractor` path produces, which asks name by name.
        raw.pass_through.order_by(&cfg.pass_through);
        raw.pass_through_errors
            .sort_by_key(|e| pass_through_position(e, &cfg.pass_through));
        self.finish(cx, raw)
    }

    /// Takes what the formats need from the lines of one header.
    #[inline(always)]
    fn gather<'a>(
        &self,
        raw: &mut Raw<'a>,
        name: &HeaderName,
        mut lines: impl Iterator<Item = &'a HeaderValue>,
    ) {
        let cfg = &*self.cfg;
        let ex = cfg.extract;
        let t = &mut raw.trace;
        let mut bytes = lines.by_ref().map(HeaderValue::as_bytes);
        match name.as_str() {
            name::TRACEPARENT => {
                if ex.contains(Format::TraceContext) {
                    t.traceparent = Lines::read(bytes, usize::MAX, TRACEPARENT_LINES);
                }
            }
            name::TRACESTATE => {
                if ex.contains(Format::TraceContext) {
                    t.tracestate =
                        Lines::read(bytes, traceparent::MAX_TRACESTATE_BYTES, usize::MAX);
                }
            }
            name::BAGGAGE => {
                if ex.contains(Format::Baggage) {
                    raw.baggage = Lines::read(bytes, baggage::MAX_BYTES, usize::MAX);
                }
            }
            // B3 headers are single-valued: the first line counts, as `Extractor::get` sees it.
            name::B3 => first(&mut t.b3, bytes.next(), ex.contains(Format::B3Single)),
            name::X_B3_TRACEID => first(
                &mut t.multi.trace_id,
                bytes.next(),
                ex.contains(Format::B3Multi),
            ),
            name::X_B3_SPANID => first(
                &mut t.multi.span_id,
                bytes.next(),
                ex.contains(Format::B3Multi),
            ),
            name::X_B3_PARENTSPANID => first(
                &mut t.multi.parent_span_id,
                bytes.next(),
                ex.contains(Format::B3Multi),
            ),
            name::X_B3_SAMPLED => first(
                &mut t.multi.sampled,
                bytes.next(),
                ex.contains(Format::B3Multi),
            ),
            name::X_B3_FLAGS => first(
                &mut t.multi.flags,
                bytes.next(),
                ex.contains(Format::B3Multi),
            ),
            _ => {
                if ex.contains(Format::PassThrough) && cfg.pass_through.contains(name) {
                    if let Some(value) = lines.next() {
                        let kept = raw.pass_through.push(
                            name.clone(),
                            value.clone(),
                            cfg.max_pass_through_len,
                        );
                        raw.report_pass_through(name, kept, lines.next().is_some());
                    }
                }
            }
        }
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
        raw.trace.traceparent = Lines::read(bytes(&traceparent), usize::MAX, TRACEPARENT_LINES);
        raw.trace.tracestate = Lines::read(
            bytes(&tracestate),
            traceparent::MAX_TRACESTATE_BYTES,
            usize::MAX,
        );
        raw.baggage = Lines::read(bytes(&baggage_lines), baggage::MAX_BYTES, usize::MAX);
        let text = |name: &str| extractor.get(name).map(str::as_bytes);
        if ex.contains(Format::B3Single) {
            raw.trace.b3 = text(name::B3);
        }
        if ex.contains(Format::B3Multi) {
            raw.trace.multi = MultiHeaders {
                trace_id: text(name::X_B3_TRACEID),
                span_id: text(name::X_B3_SPANID),
                parent_span_id: text(name::X_B3_PARENTSPANID),
                sampled: text(name::X_B3_SAMPLED),
                flags: text(name::X_B3_FLAGS),
            };
        }
        if ex.contains(Format::PassThrough) {
            for name in &cfg.pass_through {
                let values = extractor.get_all(name.as_str()).unwrap_or_default();
                if let Some(first) = values.first() {
                    // Only a value short enough to forward is copied (`push` checks the rest).
                    let value = (first.len() <= cfg.max_pass_through_len)
                        .then(|| HeaderValue::from_str(first).ok())
                        .flatten();
                    let kept = value.is_some_and(|value| {
                        raw.pass_through
                            .push(name.clone(), value, cfg.max_pass_through_len)
                    });
                    raw.report_pass_through(name, kept, values.len() > 1);
                }
            }
        }
        self.finish(cx, raw)
    }

    /// Parses what the walk gathered into a child of `cx`.
    fn finish(&self, cx: &Context, raw: Raw<'_>) -> Context {
        let mut mesh = MeshContext {
            pass_through: raw.pass_through,
            ..MeshContext::default()
        };
        mesh.errors.extend(raw.pass_through_errors);
        let cands = raw.trace.candidates(&mut mesh.errors);
        let mut out = cx.clone();
        if let Some(remote) = resolve::resolve(cands, self.cfg.priority, &mut mesh) {
            out = out.with_remote_span_context(remote);
        }
        out = with_baggage(out, raw.baggage.as_slice(), &mut mesh);
        if !mesh.is_empty() {
            out = out.with_value(mesh);
        }
        out
    }
}

impl TraceHeaders<'_> {
    /// Each trace format's context, parsed; what was rejected goes to `errors`.
    fn candidates(&self, errors: &mut Vec<ExtractError>) -> Candidates {
        let mut cands = Candidates::default();
        let tp_lines = self.traceparent.as_slice();
        if !tp_lines.is_empty() {
            let parsed = if tp_lines.len() > 1 || tp_lines[0].contains(&b',') {
                Err(TraceparentError::Duplicate)
            } else {
                traceparent::parse_traceparent(tp_lines[0])
            };
            match parsed {
                // tracestate is read only with a valid traceparent.
                Ok(tp) => {
                    let (trace_state, whole) = traceparent::read_tracestate(
                        self.tracestate.as_slice(),
                    )
                    .unwrap_or_else(|e| {
                        errors.push(e.into());
                        (TraceState::NONE, None)
                    });
                    if let Some(whole) = whole {
                        cands.put_tracestate_received(ReceivedTracestate {
                            trace_id: TraceId::from(tp.trace_id),
                            whole,
                            held: trace_state.clone(),
                        });
                    }
                    cands.put(Candidate::from_traceparent(tp, trace_state));
                }
                Err(e) => errors.push(e.into()),
            }
        }
        if let Some(v) = self.b3 {
            match b3::parse_single(v) {
                Ok(B3::Context(b)) => cands.put(Candidate::from_b3(Format::B3Single, b)),
                Ok(B3::SamplingOnly(s)) => cands.put_sampling_only(Format::B3Single, s),
                Err(e) => errors.push(ExtractError::B3Single(e)),
            }
        }
        match b3::parse_multi(&self.multi) {
            Ok(Some(B3::Context(b))) => cands.put(Candidate::from_b3(Format::B3Multi, b)),
            Ok(Some(B3::SamplingOnly(s))) => cands.put_sampling_only(Format::B3Multi, s),
            Ok(None) => {}
            Err(e) => errors.push(ExtractError::B3Multi(e)),
        }
        cands
    }
}

/// `out` with the baggage parsed from `lines`; the lines are kept as received when every
/// member was valid, so that unchanged baggage goes out byte-for-byte.
fn with_baggage(out: Context, lines: &[&[u8]], mesh: &mut MeshContext) -> Context {
    if lines.is_empty() {
        return out;
    }
    let parsed = baggage::parse_baggage(lines);
    if parsed.dropped > 0 {
        mesh.errors.push(ExtractError::Baggage(parsed.dropped));
    }
    if parsed.truncated {
        mesh.errors.push(ExtractError::BaggageOverLimit);
    }
    if parsed.baggage.is_empty() {
        return out;
    }
    let out = out.with_baggage(parsed.baggage);
    // Kept only when whole and valid, so never more than 8192 bytes.
    if parsed.dropped == 0 && !parsed.truncated {
        mesh.baggage_received = Some(ReceivedBaggage {
            raw: match lines {
                [one] => bytes::Bytes::copy_from_slice(one),
                many => many.join(&b","[..]).into(),
            },
            parsed: out.clone(),
        });
    }
    out
}

/// The lines an `Extractor` returned, as bytes.
fn bytes<'a>(lines: &'a Option<Vec<&'a str>>) -> impl Iterator<Item = &'a [u8]> {
    lines
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|v| v.as_bytes())
}

#[inline]
fn first<'a>(slot: &mut Option<&'a [u8]>, v: Option<&'a [u8]>, enabled: bool) {
    if enabled && slot.is_none() {
        *slot = v;
    }
}

/// Where a pass-through error's header stands in the configured names.
fn pass_through_position(e: &ExtractError, names: &[HeaderName]) -> Option<usize> {
    match e {
        ExtractError::PassThrough(n) | ExtractError::PassThroughRepeated(n) => {
            names.iter().position(|c| c == n)
        }
        _ => None,
    }
}
