//! The core: one propagator for every trace format a mesh sends.
//!
//! [`MeshPropagator`] reads W3C `traceparent`/`tracestate`/`baggage`, B3 single and multi,
//! and pass-through headers in one pass, resolves disagreements between formats by the
//! rules of `SPECS.md` section 6, and writes every configured format from the same span
//! context. It implements [`TextMapPropagator`] for any carrier, and has a faster path for
//! [`http::HeaderMap`].

pub mod b3;
pub mod baggage;
mod builder;
mod context;
pub mod env;
mod extract;
pub mod format;
mod global;
mod hex;
pub mod passthrough;
pub(crate) mod percent;
mod resolve;
pub mod traceparent;

use self::b3::SamplingState;
pub use self::builder::{BuildError, MeshPropagatorBuilder};
pub use self::context::{ExtractError, LosingContext, MeshContext, MeshContextExt, RemoteParent};
pub use self::format::{B3Encoding, Format, Formats};
pub use self::global::{global_propagator, set_global_propagator};
use self::passthrough::PassThrough;
use self::traceparent::FLAG_RANDOM;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use std::sync::Arc;

/// What [`MeshPropagatorBuilder::build`] checked and settled.
#[derive(Debug)]
struct Config {
    extract: Formats,
    inject: Formats,
    priority: [Format; 3],
    pass_through: Vec<HeaderName>,
    max_pass_through_len: usize,
    random_trace_ids: bool,
    fields: Vec<String>,
    /// First bytes of every header name extraction looks at: most headers of a request
    /// (`host`, `accept`, `user-agent`, ...) are passed over on this one lookup.
    first_bytes: [bool; 256],
}

/// The composite mesh propagator. Cheap to clone.
///
/// ```
/// use meshtrace::MeshPropagator;
/// opentelemetry::global::set_text_map_propagator(MeshPropagator::istio());
/// ```
#[derive(Debug, Clone)]
pub struct MeshPropagator {
    cfg: Arc<Config>,
}

impl MeshPropagator {
    /// The formats this propagator extracts.
    pub fn extract_formats(&self) -> Formats {
        self.cfg.extract
    }

    /// The formats this propagator injects.
    pub fn inject_formats(&self) -> Formats {
        self.cfg.inject
    }

    /// Injects the span context, baggage and pass-through values of `cx` into a `HeaderMap`.
    pub fn inject_into_headers(&self, cx: &Context, headers: &mut HeaderMap) {
        self.inject_impl(cx, &mut HeaderMapOut::new(headers));
    }

    fn inject_impl(&self, cx: &Context, out: &mut impl Out) {
        let cfg = &*self.cfg;
        let inj = cfg.inject;
        let mesh = cx.mesh();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid()
            && (inj.contains(Format::TraceContext)
                || inj.contains(Format::B3Single)
                || inj.contains(Format::B3Multi))
        {
            let trace_id = u128::from_be_bytes(sc.trace_id().to_bytes());
            let span_id = u64::from_be_bytes(sc.span_id().to_bytes());
            let remote = mesh
                .and_then(|m| m.remote.as_ref())
                .filter(|r| r.trace_id == sc.trace_id());
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
            let narrow = remote.is_some_and(|r| r.b3_trace_id_64bit) && trace_id >> 64 == 0;

            if inj.contains(Format::TraceContext) {
                let mut flags = sc.trace_flags().to_u8() & traceparent::KNOWN_FLAGS;
                if remote.is_none() && !sc.is_remote() && cfg.random_trace_ids {
                    // This process started the trace, with a random id.
                    flags |= FLAG_RANDOM;
                }
                out.put(&format::TRACEPARENT, |buf| {
                    buf.extend_from_slice(&traceparent::write_traceparent(trace_id, span_id, flags))
                });
                out.put(&format::TRACESTATE, |buf| {
                    traceparent::write_tracestate(sc.trace_state(), buf)
                });
            }
            if inj.contains(Format::B3Single) {
                out.put(&format::B3, |buf| {
                    let mut single = [0u8; b3::SINGLE_MAX];
                    let n = b3::write_single(trace_id, narrow, span_id, sampling, &mut single);
                    buf.extend_from_slice(&single[..n]);
                });
            }
            if inj.contains(Format::B3Multi) {
                out.put(&format::X_B3_TRACEID, |buf| {
                    buf.extend_from_slice(b3::write_trace_id(trace_id, narrow, &mut [0u8; 32]))
                });
                out.put(&format::X_B3_SPANID, |buf| {
                    let mut id = [0u8; 16];
                    hex::encode_into(u128::from(span_id), &mut id);
                    buf.extend_from_slice(&id);
                });
                match sampling {
                    SamplingState::Accept => out.put_static(&format::X_B3_SAMPLED, "1"),
                    SamplingState::Deny => out.put_static(&format::X_B3_SAMPLED, "0"),
                    SamplingState::Debug => out.put_static(&format::X_B3_FLAGS, "1"),
                    SamplingState::Deferred => {}
                }
            }
        }
        if inj.contains(Format::Baggage) {
            let baggage = cx.baggage();
            if !baggage.is_empty() {
                // Baggage as received, unless the application changed it.
                match mesh.and_then(|m| m.baggage_received.as_ref()?.unchanged_in(cx)) {
                    Some(raw) => out.put(&format::BAGGAGE, |buf| buf.extend_from_slice(raw)),
                    None => out.put(&format::BAGGAGE, |buf| {
                        baggage::encode_baggage_into(baggage, buf)
                    }),
                }
            }
        }
        if inj.contains(Format::PassThrough) {
            if let Some(m) = mesh {
                out.pass_through(&m.pass_through, &cfg.pass_through);
            }
        }
        out.finish();
    }
}

/// Where inject writes: a `HeaderMap` or any `Injector`.
trait Out {
    /// Adds the value `write` appends to the buffer; nothing if it appends nothing.
    fn put(&mut self, name: &HeaderName, write: impl FnOnce(&mut Vec<u8>));
    fn put_static(&mut self, name: &HeaderName, value: &'static str);
    fn pass_through(&mut self, values: &PassThrough, allowed: &[HeaderName]);
    fn finish(&mut self) {}
}

/// Most generated values one inject writes (traceparent, tracestate, b3, x-b3-traceid,
/// x-b3-spanid, baggage).
const MAX_GENERATED: usize = 6;

/// Writes every generated value into one buffer, then hands each header a slice of it,
/// so an inject costs one allocation for all its values instead of one per header.
struct HeaderMapOut<'a> {
    map: &'a mut HeaderMap,
    buf: Vec<u8>,
    pending: [(Option<HeaderName>, usize, usize); MAX_GENERATED],
    n: usize,
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
            self.pending[self.n] = (Some(name.clone()), start, self.buf.len());
            self.n += 1;
        }
    }

    fn put_static(&mut self, name: &HeaderName, value: &'static str) {
        self.map
            .insert(name.clone(), HeaderValue::from_static(value));
    }

    fn pass_through(&mut self, values: &PassThrough, allowed: &[HeaderName]) {
        for (i, (name, value)) in values.iter().enumerate() {
            if !allowed.contains(name) {
                continue;
            }
            // The first value replaces what the map holds; later lines are appended.
            if values.iter().take(i).any(|(n, _)| n == name) {
                self.map.append(name.clone(), value.clone());
            } else {
                self.map.insert(name.clone(), value.clone());
            }
        }
    }

    fn finish(&mut self) {
        let bytes = bytes::Bytes::from(std::mem::take(&mut self.buf));
        for (name, start, end) in &mut self.pending[..self.n] {
            if let (Some(name), Ok(value)) = (
                name.take(),
                HeaderValue::from_maybe_shared(bytes.slice(*start..*end)),
            ) {
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

    fn pass_through(&mut self, values: &PassThrough, allowed: &[HeaderName]) {
        for name in allowed {
            let mut joined = String::new();
            for v in values.get_all(name.as_str()) {
                if let Ok(s) = v.to_str() {
                    if !joined.is_empty() {
                        // An `Injector` holds one value per name; RFC 9110 5.3 lets lines combine.
                        joined.push_str(", ");
                    }
                    joined.push_str(s);
                }
            }
            if !joined.is_empty() {
                self.0.set(name.as_str(), joined);
            }
        }
    }
}

impl TextMapPropagator for MeshPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inject_impl(cx, &mut InjectorOut(injector));
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.extract_generic(cx, extractor)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.cfg.fields)
    }
}
