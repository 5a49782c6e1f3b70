//! Extraction: one walk over the headers (a `HeaderMap`, or any [`Extractor`] name by
//! name) gathers the lines each format needs; each format is then parsed once, the rules of
//! [`resolve`](super::resolve) pick the remote parent, and baggage is attached: the W3C
//! `baggage` members first, then the `uberctx-*` and `ot-baggage-*` ones for keys it lacks.

use super::b3::{self, MultiHeaders, B3};
use super::context::{
    ExtractError, MeshContext, ReceivedBaggage, ReceivedTracestate, TracestateLine,
};
use super::format::{name, Format};
use super::ottrace::{self, OtHeaders};
use super::passthrough::PassThrough;
use super::resolve::{self, Candidate, Candidates};
use super::traceparent::{self, TraceparentError};
use super::xray::{self, XRayError};
use super::{baggage, jaeger, MeshPropagator};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt, TraceId, TraceState};
use opentelemetry::Context;
use std::borrow::Cow;

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
    /// The `baggage` header when it came on one line of a `HeaderMap`: kept as is (a
    /// reference count) to be forwarded if the application leaves the baggage unchanged.
    baggage_value: Option<&'a HeaderValue>,
    /// `uberctx-*` members (key without the prefix, raw value).
    uberctx: Prefixed<'a>,
    /// `ot-baggage-*` members.
    ot_baggage: Prefixed<'a>,
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

/// Baggage members sent one per header, under a name prefix: at most
/// [`baggage::MAX_MEMBERS`] are kept, the others counted as dropped. Like the other
/// single-valued headers, the first line of a name counts, as `Extractor::get` sees it.
#[derive(Debug, Default)]
struct Prefixed<'a> {
    members: Vec<(Cow<'a, str>, &'a [u8])>,
    dropped: usize,
    /// The key of the last line pushed: a `HeaderMap` yields the lines of a name together.
    last: Option<Cow<'a, str>>,
}

impl<'a> Prefixed<'a> {
    fn push(&mut self, key: Cow<'a, str>, value: &'a [u8]) {
        if self.last.as_ref() == Some(&key) {
            return;
        }
        self.last = Some(key.clone());
        if key.is_empty() || self.members.len() == baggage::MAX_MEMBERS {
            self.dropped += 1;
        } else {
            self.members.push((key, value));
        }
    }
}

/// The lines of the trace formats.
#[derive(Debug, Default)]
struct TraceHeaders<'a> {
    traceparent: Lines<'a>,
    tracestate: Lines<'a>,
    /// The `tracestate` header when it came on one line of a `HeaderMap`.
    tracestate_value: Option<&'a HeaderValue>,
    b3: Option<&'a [u8]>,
    multi: MultiHeaders<'a>,
    jaeger: Option<&'a [u8]>,
    ot: OtHeaders<'a>,
    xray: Lines<'a>,
}

/// Two `traceparent` (or `X-Amzn-Trace-Id`) lines are enough to know it is invalid.
const DUPLICATE_LINES: usize = 2;

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
        name: &'a HeaderName,
        mut lines: impl Iterator<Item = &'a HeaderValue>,
    ) {
        let cfg = &*self.cfg;
        let ex = cfg.extract;
        let t = &mut raw.trace;
        let mut bytes = lines.by_ref().map(HeaderValue::as_bytes);
        match name.as_str() {
            name::TRACEPARENT => {
                if ex.contains(Format::TraceContext) {
                    t.traceparent = Lines::read(bytes, usize::MAX, DUPLICATE_LINES);
                }
            }
            name::TRACESTATE => {
                if ex.contains(Format::TraceContext) {
                    let mut first = None;
                    t.tracestate = Lines::read(
                        lines
                            .inspect(|v| {
                                first.get_or_insert(*v);
                            })
                            .map(HeaderValue::as_bytes),
                        traceparent::MAX_TRACESTATE_BYTES,
                        usize::MAX,
                    );
                    t.tracestate_value = first.filter(|_| matches!(t.tracestate, Lines::One(_)));
                }
            }
            name::BAGGAGE => {
                if ex.contains(Format::Baggage) {
                    let mut first = None;
                    raw.baggage = Lines::read(
                        lines
                            .inspect(|v| {
                                first.get_or_insert(*v);
                            })
                            .map(HeaderValue::as_bytes),
                        baggage::MAX_BYTES,
                        usize::MAX,
                    );
                    raw.baggage_value = first.filter(|_| matches!(raw.baggage, Lines::One(_)));
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
            name::UBER_TRACE_ID => first(&mut t.jaeger, bytes.next(), ex.contains(Format::Jaeger)),
            name::OT_TRACER_TRACEID => first(
                &mut t.ot.trace_id,
                bytes.next(),
                ex.contains(Format::OtTrace),
            ),
            name::OT_TRACER_SPANID => first(
                &mut t.ot.span_id,
                bytes.next(),
                ex.contains(Format::OtTrace),
            ),
            name::OT_TRACER_SAMPLED => first(
                &mut t.ot.sampled,
                bytes.next(),
                ex.contains(Format::OtTrace),
            ),
            name::X_AMZN_TRACE_ID => {
                if ex.contains(Format::XRay) {
                    t.xray = Lines::read(bytes, usize::MAX, DUPLICATE_LINES);
                }
            }
            name_str => {
                // Prefixed baggage headers are single-valued too: the first line counts.
                if let Some(key) = ex
                    .contains(Format::Jaeger)
                    .then(|| name_str.strip_prefix(name::UBERCTX_PREFIX))
                    .flatten()
                {
                    if let Some(v) = bytes.next() {
                        raw.uberctx.push(Cow::Borrowed(key), v);
                    }
                } else if let Some(key) = ex
                    .contains(Format::OtTrace)
                    .then(|| name_str.strip_prefix(name::OT_BAGGAGE_PREFIX))
                    .flatten()
                {
                    if let Some(v) = bytes.next() {
                        raw.ot_baggage.push(Cow::Borrowed(key), v);
                    }
                } else if ex.contains(Format::PassThrough) && cfg.pass_through.contains(name) {
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
        let xray_lines;
        if ex.contains(Format::TraceContext) {
            traceparent = extractor.get_all(name::TRACEPARENT);
            tracestate = extractor.get_all(name::TRACESTATE);
        }
        if ex.contains(Format::Baggage) {
            baggage_lines = extractor.get_all(name::BAGGAGE);
        }
        raw.trace.traceparent = Lines::read(bytes(&traceparent), usize::MAX, DUPLICATE_LINES);
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
        if ex.contains(Format::Jaeger) {
            raw.trace.jaeger = text(name::UBER_TRACE_ID);
        }
        if ex.contains(Format::OtTrace) {
            raw.trace.ot = OtHeaders {
                trace_id: text(name::OT_TRACER_TRACEID),
                span_id: text(name::OT_TRACER_SPANID),
                sampled: text(name::OT_TRACER_SAMPLED),
            };
        }
        if ex.contains(Format::XRay) {
            xray_lines = extractor.get_all(name::X_AMZN_TRACE_ID);
            raw.trace.xray = Lines::read(bytes(&xray_lines), usize::MAX, DUPLICATE_LINES);
        }
        if ex.contains(Format::Jaeger) || ex.contains(Format::OtTrace) {
            // Baggage headers are named by their key: only a scan of every name finds them.
            for key in extractor.keys() {
                let (jaeger, ot) = (
                    prefixed(key, name::UBERCTX_PREFIX),
                    prefixed(key, name::OT_BAGGAGE_PREFIX),
                );
                let (slot, rest) = match (jaeger, ot) {
                    (Some(rest), _) if ex.contains(Format::Jaeger) => (&mut raw.uberctx, rest),
                    (_, Some(rest)) if ex.contains(Format::OtTrace) => (&mut raw.ot_baggage, rest),
                    _ => continue,
                };
                let Some(value) = extractor.get(key) else {
                    continue;
                };
                if HeaderName::from_bytes(rest.as_bytes()).is_err() {
                    slot.dropped += 1;
                    continue;
                }
                let rest = match rest.bytes().any(|b| b.is_ascii_uppercase()) {
                    true => Cow::Owned(rest.to_ascii_lowercase()),
                    false => Cow::Borrowed(rest),
                };
                slot.push(rest, value.as_bytes());
            }
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

    /// Parses what the walk gathered into a child of `cx`. Inlined into both paths, so that
    /// what the walk gathered is not moved again.
    #[inline(always)]
    fn finish(&self, cx: &Context, raw: Raw<'_>) -> Context {
        let mut mesh = MeshContext {
            pass_through: raw.pass_through,
            ..MeshContext::default()
        };
        mesh.errors.extend(raw.pass_through_errors);
        let mut cands = Candidates::default();
        raw.trace.candidates(&mut mesh, &mut cands);
        let mut out = cx.clone();
        if let Some(remote) = resolve::resolve(&mut cands, self.cfg.priority, &mut mesh) {
            out = out.with_remote_span_context(remote);
        }
        let prefixed = [
            (
                raw.uberctx,
                jaeger::decode_baggage_value as fn(&[u8]) -> Option<String>,
            ),
            (raw.ot_baggage, ottrace::decode_baggage_value),
        ];
        let lines = Received {
            lines: raw.baggage.as_slice(),
            value: raw.baggage_value,
        };
        out = with_baggage(out, lines, prefixed, &mut mesh);
        if !mesh.is_empty() {
            out = out.with_value(mesh);
        }
        out
    }
}

impl TraceHeaders<'_> {
    /// Each trace format's context, parsed into `cands` (empty); what was rejected goes to
    /// the errors of `mesh`, the X-Ray fields to pass on to `mesh`.
    fn candidates(&self, mesh: &mut MeshContext, cands: &mut Candidates) {
        let errors = &mut mesh.errors;
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
                    let (trace_state, whole) =
                        match traceparent::read_tracestate(self.tracestate.as_slice()) {
                            Ok(read) => {
                                if read.as_written {
                                    mesh.tracestate_line =
                                        TracestateLine(self.tracestate_value.cloned());
                                }
                                (read.held, read.whole)
                            }
                            Err(e) => {
                                errors.push(e.into());
                                (TraceState::NONE, None)
                            }
                        };
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
        if let Some(v) = self.jaeger {
            match jaeger::parse_uber_trace_id(v) {
                Ok(j) => cands.put(Candidate::from_ids(
                    Format::Jaeger,
                    j.trace_id,
                    j.span_id,
                    j.sampling,
                )),
                Err(e) => errors.push(ExtractError::Jaeger(e)),
            }
        }
        match ottrace::parse(&self.ot) {
            Ok(Some(o)) => cands.put(Candidate::from_ids(
                Format::OtTrace,
                o.trace_id,
                o.span_id,
                o.sampling,
            )),
            Ok(None) => {}
            Err(e) => errors.push(ExtractError::OtTrace(e)),
        }
        let parsed = match self.xray.as_slice() {
            [] => None,
            [one] => Some(xray::parse_xray(one)),
            _ => Some(Err(XRayError::Duplicate)),
        };
        match parsed {
            Some(Ok(x)) => {
                if !x.other.is_empty() {
                    mesh.xray_other = Some((TraceId::from(x.trace_id), x.other));
                }
                cands.put(Candidate::from_ids(
                    Format::XRay,
                    x.trace_id,
                    x.span_id,
                    x.sampling,
                ));
            }
            Some(Err(e)) => errors.push(ExtractError::XRay(e)),
            None => {}
        }
    }
}

/// A value decoder of a prefixed baggage format.
type Decode = fn(&[u8]) -> Option<String>;

/// `out` with the baggage parsed from `lines`, then the prefixed members (`uberctx-*`, then
/// `ot-baggage-*`) for keys the earlier ones lack, within the same limits. The lines are
/// kept as received when every member was valid and no prefixed one was added, so that
/// unchanged baggage goes out byte-for-byte.
fn with_baggage(
    out: Context,
    received: Received<'_, '_>,
    prefixed: [(Prefixed<'_>, Decode); 2],
    mesh: &mut MeshContext,
) -> Context {
    let no_prefixed = prefixed
        .iter()
        .all(|(p, _)| p.members.is_empty() && p.dropped == 0);
    let lines = received.lines;
    if lines.is_empty() && no_prefixed {
        return out;
    }
    let parsed = baggage::parse_baggage(lines);
    let (mut baggage, mut dropped) = (parsed.baggage, parsed.dropped);
    let w3c_members = baggage.len();
    for (members, decode) in prefixed {
        dropped += members.dropped + merge(&mut baggage, members.members, decode);
    }
    if dropped > 0 {
        mesh.errors.push(ExtractError::Baggage(dropped));
    }
    if parsed.truncated {
        mesh.errors.push(ExtractError::BaggageOverLimit);
    }
    if baggage.is_empty() {
        return out;
    }
    let unchanged = baggage.len() == w3c_members;
    let out = out.with_baggage(baggage);
    // Kept only when whole and valid, so never more than 8192 bytes.
    if dropped == 0 && !parsed.truncated && unchanged && !lines.is_empty() {
        // Every member was valid, so the lines are visible ASCII, spaces and tabs: a
        // header value.
        let raw = match (received.value, lines) {
            (Some(value), [_]) => Ok(value.clone()),
            (_, [one]) => HeaderValue::from_bytes(one),
            (_, many) => HeaderValue::from_maybe_shared(bytes::Bytes::from(many.join(&b","[..]))),
        };
        if let Ok(raw) = raw {
            mesh.baggage_received = Some(ReceivedBaggage {
                raw,
                parsed: out.clone(),
            });
        }
    }
    out
}

/// The `baggage` lines, and the header value itself when they are its one line.
struct Received<'l, 'a> {
    lines: &'l [&'a [u8]],
    value: Option<&'a HeaderValue>,
}

/// Adds the members whose key `baggage` lacks, within [`baggage::MAX_MEMBERS`] and
/// [`baggage::MAX_BYTES`] (counted as `key=value` joined by `,`); returns how many were
/// dropped (not UTF-8, or past the limits). A key already present keeps its value.
fn merge(baggage: &mut Baggage, members: Vec<(Cow<'_, str>, &[u8])>, decode: Decode) -> usize {
    let mut bytes: usize = baggage
        .iter()
        .map(|(k, (v, _))| k.as_str().len() + v.as_str().len() + 2)
        .sum();
    let mut dropped = 0;
    for (key, raw) in members {
        if baggage.get(key.as_ref()).is_some() {
            continue;
        }
        let Some(value) = decode(raw) else {
            dropped += 1;
            continue;
        };
        let cost = key.len() + value.len() + 2;
        if baggage.len() == baggage::MAX_MEMBERS || bytes + cost > baggage::MAX_BYTES + 1 {
            dropped += 1;
            continue;
        }
        bytes += cost;
        baggage.insert(key.into_owned(), value);
    }
    dropped
}

/// The rest of `key` after `prefix` (compared case-insensitively, as header names are).
fn prefixed<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let head = key.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &key[prefix.len()..])
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
