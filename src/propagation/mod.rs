//! The core: one propagator for every trace format a mesh sends.
//!
//! [`MeshPropagator`] reads W3C `traceparent`/`tracestate`/`baggage`, B3 single and multi,
//! Jaeger, OpenTracing and AWS X-Ray, and pass-through headers in one pass, resolves disagreements between formats by the
//! rules of `SPECS.md` section 6, and writes every configured format from the same span
//! context. It implements [`TextMapPropagator`] for any carrier, and has a faster path for
//! [`http::HeaderMap`].
//!
//! Each job has its file: [`format`](mod@format) (the formats and every header name), `builder`,
//! `context` ([`MeshContext`]), `extract` (the walk over the headers), `resolve` (the rules
//! of section 6) and `inject`. One module per wire format ([`traceparent`], [`baggage`],
//! [`b3`], [`jaeger`], [`ottrace`], [`xray`], [`passthrough`]) holds its parser and writer, over the codecs they share
//! (`hex`, `percent`, `ows`).

pub mod b3;
pub mod baggage;
mod builder;
mod context;
pub mod env;
mod extract;
pub mod format;
pub(crate) mod global;
mod hex;
mod inject;
pub mod jaeger;
pub mod ottrace;
mod ows;
pub mod passthrough;
pub(crate) mod percent;
mod resolve;
pub mod traceparent;
pub mod xray;

pub use self::builder::{BuildError, MeshPropagatorBuilder};
pub use self::context::{ExtractError, LosingContext, MeshContext, MeshContextExt, RemoteParent};
pub use self::format::{B3Encoding, Format, Formats};
pub use self::global::{global_propagator, set_global_propagator};
use http::HeaderName;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;
use std::sync::Arc;

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

/// What [`MeshPropagatorBuilder::build`] checked and settled.
#[derive(Debug)]
struct Config {
    extract: Formats,
    inject: Formats,
    priority: resolve::Priority,
    pass_through: Vec<HeaderName>,
    max_pass_through_len: usize,
    random_trace_ids: bool,
    fields: Vec<String>,
    /// First bytes of every header name extraction looks at: most headers of a request
    /// (`host`, `accept`, `user-agent`, ...) are passed over on this one lookup.
    first_bytes: [bool; 256],
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
}

impl TextMapPropagator for MeshPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inject_generic(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.extract_generic(cx, extractor)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.cfg.fields)
    }
}
