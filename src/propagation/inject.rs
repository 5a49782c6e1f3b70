//! Injection: every configured format written from one span context (SPECS.md section 6:
//! same ids, same sampled/debug decision, same tracestate), into a `HeaderMap` or any
//! [`Injector`].

use super::b3::{self, SamplingState};
use super::context::{MeshContext, MeshContextExt, RemoteParent};
use super::format::{self, Format};
use super::passthrough::{line_len, PassThrough, BAGGAGE_ALLOTMENT};
use super::traceparent::{self, FLAG_RANDOM};
use super::{baggage, hex, jaeger, ottrace, xray, Formats, MeshPropagator};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::Injector;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;

impl MeshPropagator {
    /// Injects the span context, baggage and pass-through values of `cx` into a `HeaderMap`.
    pub fn inject_into_headers(&self, cx: &Context, headers: &mut HeaderMap) {
        self.inject_impl(cx, &mut HeaderMapOut::new(headers));
    }

    /// Injects into any carrier.
    pub(super) fn inject_generic(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inject_impl(cx, &mut InjectorOut(injector));
    }

    fn inject_impl(&self, cx: &Context, out: &mut impl Out) {
        let cfg = &*self.cfg;
        let inj = cfg.inject;
        let mesh = cx.mesh();
        let span = cx.span();
        let sc = span.span_context();
        // With no valid span context no trace header goes out, not even a decision.
        if sc.is_valid() && inj.iter().any(Format::is_trace) {
            let remote = mesh
                .and_then(|m| m.remote.as_ref())
                .filter(|r| r.trace_id == sc.trace_id());
            let ids = Outgoing::new(sc, remote);
            if inj.contains(Format::TraceContext) {
                // The `random` flag: as the remote parent of this trace sent it (SDK spans
                // of an unsampled trace carry no flags), else when this process started the
                // trace with a random id.
                let random = match remote {
                    Some(r) => r.random,
                    None => !sc.is_remote() && cfg.random_trace_ids,
                };
                put_traceparent(out, &ids, sc, random, mesh);
            }
            if inj.contains(Format::B3Single) {
                put_b3_single(out, &ids);
            }
            if inj.contains(Format::B3Multi) {
                put_b3_multi(out, &ids);
            }
            if inj.contains(Format::Jaeger) {
                put_jaeger(out, &ids);
            }
            if inj.contains(Format::OtTrace) {
                put_ottrace(out, &ids);
            }
            if inj.contains(Format::XRay) {
                // The fields X-Ray does not read go on with their trace.
                let other = mesh
                    .and_then(|m| m.xray_other.as_ref())
                    .filter(|(trace_id, _)| *trace_id == sc.trace_id())
                    .map_or("", |(_, other)| other.as_str());
                put_xray(out, &ids, other);
            }
        }
        let mut baggage_room = BAGGAGE_ALLOTMENT;
        if inj.contains(Format::Baggage) {
            baggage_room -= put_baggage(out, cx, mesh);
        }
        if inj.contains(Format::Jaeger) || inj.contains(Format::OtTrace) {
            put_prefixed_baggage(out, cx, inj, baggage_room);
        }
        if inj.contains(Format::PassThrough) {
            if let Some(m) = mesh {
                out.pass_through(&m.pass_through, &cfg.pass_through);
            }
        }
        out.finish();
    }
}

/// What every trace format writes.
struct Outgoing {
    trace_id: u128,
    span_id: u64,
    sampling: SamplingState,
    /// B3 writes the trace id as 16 hex digits: it arrived so, and still fits.
    narrow: bool,
}

impl Outgoing {
    /// The ids of `sc`, and the decision: a debug trace stays debug while sampled, a
    /// deferred one stays deferred while no local span has decided (the span is still the
    /// caller's); else sampled or not, as `sc` says.
    fn new(sc: &SpanContext, remote: Option<&RemoteParent>) -> Self {
        let trace_id = u128::from_be_bytes(sc.trace_id().to_bytes());
        let sampled = sc.is_sampled();
        let sampling = match remote.map(|r| r.sampling) {
            Some(SamplingState::Debug) if sampled => SamplingState::Debug,
            Some(SamplingState::Deferred)
                if !sampled && remote.is_some_and(|r| r.span_id == sc.span_id()) =>
            {
                SamplingState::Deferred
            }
            _ if sampled => SamplingState::Accept,
            _ => SamplingState::Deny,
        };
        Outgoing {
            trace_id,
            span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
            sampling,
            narrow: remote.is_some_and(|r| r.b3_trace_id_64bit) && trace_id >> 64 == 0,
        }
    }
}

/// `traceparent` (version 00, the flags as received plus `random` if asked) and `tracestate`:
/// the whole list received, if the application left the trace state unchanged, else the
/// span context's.
#[inline]
fn put_traceparent(
    out: &mut impl Out,
    ids: &Outgoing,
    sc: &SpanContext,
    random: bool,
    mesh: Option<&MeshContext>,
) {
    let mut flags = sc.trace_flags().to_u8() & traceparent::KNOWN_FLAGS;
    if random {
        flags |= FLAG_RANDOM;
    }
    out.put(&format::TRACEPARENT, |buf| {
        buf.extend_from_slice(&traceparent::write_traceparent(
            ids.trace_id,
            ids.span_id,
            flags,
        ))
    });
    // The line received, when writing this trace state would give the same bytes.
    let line = mesh
        .and_then(|m| m.tracestate_line.0.as_ref())
        .filter(|line| traceparent::is_written_as(sc.trace_state(), line.as_bytes()));
    if let Some(line) = line {
        out.put_value(&format::TRACESTATE, line);
        return;
    }
    out.put(&format::TRACESTATE, |buf| {
        match mesh.and_then(|m| m.tracestate_received.as_ref()?.unchanged_in(sc)) {
            Some(whole) => buf.extend_from_slice(whole),
            None => traceparent::write_tracestate(sc.trace_state(), buf),
        }
    });
}

/// The single `b3` header.
fn put_b3_single(out: &mut impl Out, ids: &Outgoing) {
    out.put(&format::B3, |buf| {
        let mut single = [0u8; b3::SINGLE_MAX];
        let n = b3::write_single(
            ids.trace_id,
            ids.narrow,
            ids.span_id,
            ids.sampling,
            &mut single,
        );
        buf.extend_from_slice(&single[..n]);
    });
}

/// The `x-b3-*` headers; the parent span id is never written, a deferred decision is not
/// written at all, and debug replaces `x-b3-sampled`.
fn put_b3_multi(out: &mut impl Out, ids: &Outgoing) {
    out.put(&format::X_B3_TRACEID, |buf| {
        buf.extend_from_slice(b3::write_trace_id(ids.trace_id, ids.narrow, &mut [0u8; 32]))
    });
    out.put(&format::X_B3_SPANID, |buf| {
        let mut id = [0u8; 16];
        hex::encode_into(u128::from(ids.span_id), &mut id);
        buf.extend_from_slice(&id);
    });
    match ids.sampling {
        SamplingState::Accept => out.put_static(&format::X_B3_SAMPLED, "1"),
        SamplingState::Deny => out.put_static(&format::X_B3_SAMPLED, "0"),
        SamplingState::Debug => out.put_static(&format::X_B3_FLAGS, "1"),
        SamplingState::Deferred => {}
    }
}

/// `uber-trace-id`: `{trace}:{span}:0:{flags}`.
fn put_jaeger(out: &mut impl Out, ids: &Outgoing) {
    out.put(&format::UBER_TRACE_ID, |buf| {
        let mut value = [0u8; jaeger::MAX_LEN];
        jaeger::write_uber_trace_id(ids.trace_id, ids.span_id, ids.sampling, &mut value);
        buf.extend_from_slice(&value);
    });
}

/// `ot-tracer-*`: the low 64 bits of the trace id; a deferred decision is not written.
fn put_ottrace(out: &mut impl Out, ids: &Outgoing) {
    out.put(&format::OT_TRACER_TRACEID, |buf| {
        buf.extend_from_slice(&ottrace::write_trace_id(ids.trace_id))
    });
    out.put(&format::OT_TRACER_SPANID, |buf| {
        let mut id = [0u8; 16];
        hex::encode_into(u128::from(ids.span_id), &mut id);
        buf.extend_from_slice(&id);
    });
    if let Some(sampled) = ottrace::sampled_value(ids.sampling) {
        out.put_static(&format::OT_TRACER_SAMPLED, sampled);
    }
}

/// `X-Amzn-Trace-Id`, with the fields passed on.
fn put_xray(out: &mut impl Out, ids: &Outgoing, other: &str) {
    out.put(&format::X_AMZN_TRACE_ID, |buf| {
        xray::write_xray(ids.trace_id, ids.span_id, ids.sampling, other, buf)
    });
}

/// `uberctx-{key}` (value URL-encoded) and `ot-baggage-{key}` (value as is) for each member
/// whose key can be a header name as it is (a lowercase token) and, for OpenTracing, whose
/// value fits a header unencoded. Every member still goes out in `baggage` when that is
/// injected.
fn put_prefixed_baggage(out: &mut impl Out, cx: &Context, inj: Formats, mut room: usize) {
    let mut value = Vec::new();
    // A header line as HTTP/1.1 sends it; written only while the baggage allotment lasts.
    let mut fits = |prefix: &str, key: &str, value: &[u8]| {
        let line = prefix.len() + key.len() + 2 + value.len() + 2;
        let fits = line <= room;
        if fits {
            room -= line;
        }
        fits
    };
    for (key, (v, _)) in baggage::in_key_order(cx.baggage())
        .into_iter()
        .take(baggage::MAX_MEMBERS)
    {
        let (key, v) = (key.as_str(), v.as_str());
        if key.is_empty()
            || key.bytes().any(|b| b.is_ascii_uppercase())
            || HeaderName::from_bytes(key.as_bytes()).is_err()
        {
            continue;
        }
        if inj.contains(Format::Jaeger) {
            value.clear();
            jaeger::encode_baggage_value(v, &mut value);
            if fits(jaeger::UBERCTX_PREFIX, key, &value) {
                out.put_prefixed(jaeger::UBERCTX_PREFIX, key, &value);
            }
        }
        if inj.contains(Format::OtTrace)
            && ottrace::fits_header(v)
            && fits(ottrace::OT_BAGGAGE_PREFIX, key, v.as_bytes())
        {
            out.put_prefixed(ottrace::OT_BAGGAGE_PREFIX, key, v.as_bytes());
        }
    }
}

/// `baggage`: as received, unless the application changed it. Returns the bytes of the
/// line written (0 for none).
fn put_baggage(out: &mut impl Out, cx: &Context, mesh: Option<&MeshContext>) -> usize {
    let baggage = cx.baggage();
    if baggage.is_empty() {
        return 0;
    }
    let mut written = 0;
    if let Some(raw) = mesh.and_then(|m| m.baggage_received.as_ref()?.unchanged_in(cx)) {
        // As received: the header value itself goes out again.
        out.put_value(&format::BAGGAGE, raw);
        written = raw.len();
    } else {
        out.put(&format::BAGGAGE, |buf| {
            let start = buf.len();
            baggage::encode_baggage_into(baggage, buf);
            written = buf.len() - start;
        });
    }
    match written {
        0 => 0,
        n => line_len(format::name::BAGGAGE, n),
    }
}

/// Where inject writes: a `HeaderMap` or any `Injector`.
trait Out {
    /// Adds the value `write` appends to the buffer; nothing if it appends nothing.
    fn put(&mut self, name: &HeaderName, write: impl FnOnce(&mut Vec<u8>));
    fn put_static(&mut self, name: &HeaderName, value: &'static str);
    /// Adds a value made before (never empty).
    fn put_value(&mut self, name: &HeaderName, value: &HeaderValue);
    /// Adds `{prefix}{key}: {value}`; the caller checked that it is a valid header name.
    fn put_prefixed(&mut self, prefix: &str, key: &str, value: &[u8]);
    fn pass_through(&mut self, values: &PassThrough, allowed: &[HeaderName]);
    fn finish(&mut self) {}
}

/// Most generated values one inject writes (traceparent, tracestate, b3, x-b3-traceid,
/// x-b3-spanid, baggage, uber-trace-id, ot-tracer-traceid, ot-tracer-spanid,
/// x-amzn-trace-id).
const MAX_GENERATED: usize = 10;

/// Writes every generated value into one buffer, then hands each header a slice of it,
/// so an inject costs one allocation for all its values instead of one per header.
struct HeaderMapOut<'a> {
    map: &'a mut HeaderMap,
    buf: Vec<u8>,
    pending: [(Option<HeaderName>, Pending); MAX_GENERATED],
    n: usize,
}

/// A value to add at the end, in the order written.
#[derive(Default)]
enum Pending {
    /// Not used.
    #[default]
    None,
    /// A range of the buffer.
    Slice(usize, usize),
    /// A value made before.
    Value(HeaderValue),
}

impl<'a> HeaderMapOut<'a> {
    fn new(map: &'a mut HeaderMap) -> Self {
        HeaderMapOut {
            map,
            buf: Vec::new(),
            pending: Default::default(),
            n: 0,
        }
    }
}

impl Out for HeaderMapOut<'_> {
    #[inline]
    fn put(&mut self, name: &HeaderName, write: impl FnOnce(&mut Vec<u8>)) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(256);
        }
        let start = self.buf.len();
        write(&mut self.buf);
        if self.buf.len() > start && self.n < MAX_GENERATED {
            self.pending[self.n] = (Some(name.clone()), Pending::Slice(start, self.buf.len()));
            self.n += 1;
        }
    }

    fn put_value(&mut self, name: &HeaderName, value: &HeaderValue) {
        if self.n < MAX_GENERATED {
            self.pending[self.n] = (Some(name.clone()), Pending::Value(value.clone()));
            self.n += 1;
        }
    }

    fn put_static(&mut self, name: &HeaderName, value: &'static str) {
        self.map
            .insert(name.clone(), HeaderValue::from_static(value));
    }

    fn put_prefixed(&mut self, prefix: &str, key: &str, value: &[u8]) {
        let mut full = Vec::with_capacity(prefix.len() + key.len());
        full.extend_from_slice(prefix.as_bytes());
        full.extend_from_slice(key.as_bytes());
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&full),
            HeaderValue::from_bytes(value),
        ) {
            self.map.insert(name, value);
        }
    }

    fn pass_through(&mut self, values: &PassThrough, allowed: &[HeaderName]) {
        for (name, value) in values.iter() {
            if allowed.contains(name) {
                self.map.insert(name.clone(), value.clone());
            }
        }
    }

    fn finish(&mut self) {
        let bytes = bytes::Bytes::from(std::mem::take(&mut self.buf));
        for (name, pending) in &mut self.pending[..self.n] {
            let value = match std::mem::take(pending) {
                Pending::Slice(start, end) => {
                    HeaderValue::from_maybe_shared(bytes.slice(start..end)).ok()
                }
                Pending::Value(value) => Some(value),
                Pending::None => None,
            };
            if let (Some(name), Some(value)) = (name.take(), value) {
                self.map.insert(name, value);
            }
        }
        self.n = 0;
    }
}

struct InjectorOut<'a>(&'a mut dyn Injector);

impl Out for InjectorOut<'_> {
    #[inline]
    fn put(&mut self, name: &HeaderName, write: impl FnOnce(&mut Vec<u8>)) {
        let mut value = Vec::new();
        write(&mut value);
        if let (false, Ok(v)) = (value.is_empty(), String::from_utf8(value)) {
            self.0.set(name.as_str(), v);
        }
    }

    fn put_static(&mut self, name: &HeaderName, value: &'static str) {
        self.0.set(name.as_str(), value.to_owned());
    }

    fn put_value(&mut self, name: &HeaderName, value: &HeaderValue) {
        if let Ok(v) = value.to_str() {
            self.0.set(name.as_str(), v.to_owned());
        }
    }

    fn put_prefixed(&mut self, prefix: &str, key: &str, value: &[u8]) {
        if let Ok(value) = std::str::from_utf8(value) {
            self.0.set(&format!("{prefix}{key}"), value.to_owned());
        }
    }

    fn pass_through(&mut self, values: &PassThrough, allowed: &[HeaderName]) {
        for (name, value) in values.iter() {
            if let (true, Ok(v)) = (allowed.contains(name), value.to_str()) {
                self.0.set(name.as_str(), v.to_owned());
            }
        }
    }
}
