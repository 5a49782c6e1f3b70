//! [`MeshPropagatorBuilder`], the presets that start it, and the checks of [`build`].
//!
//! [`build`]: MeshPropagatorBuilder::build

use super::format::{self, B3Encoding, Format, Formats};
use super::resolve::DEFAULT_PRIORITY;
use super::{passthrough, Config, MeshPropagator};
use http::HeaderName;
use std::sync::Arc;

/// A mistake in a [`MeshPropagatorBuilder`] configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A pass-through name that is not a valid HTTP header name.
    #[error("`{0}` is not a valid header name")]
    InvalidHeaderName(String),
    /// A pass-through name that one of the trace formats owns (or that starts like the
    /// `uberctx-` and `ot-baggage-` headers).
    #[error("`{0}` is a trace header and is written by its format, not passed through")]
    ReservedHeaderName(String),
    /// A priority entry that is not a trace format, or that is listed twice.
    #[error("priority may list each trace format once; got {0:?}")]
    Priority(Format),
    /// The pass-through names at [`max_pass_through_len`] could take more than
    /// [`PASS_THROUGH_BUDGET`] bytes, so an inject could pass 16 KiB.
    ///
    /// [`max_pass_through_len`]: MeshPropagatorBuilder::max_pass_through_len
    /// [`PASS_THROUGH_BUDGET`]: passthrough::PASS_THROUGH_BUDGET
    #[error("pass-through headers could take {0} bytes; {budget} are left under the 16 KiB of one inject", budget = passthrough::PASS_THROUGH_BUDGET)]
    PassThroughBudget(usize),
}

/// Builds a [`MeshPropagator`].
///
/// ```
/// use meshtrace::{B3Encoding, Format, Formats, MeshPropagator};
/// let p = MeshPropagator::builder()
///     .extract(Formats::ALL)
///     .inject(Formats::TRACE_CONTEXT | Format::Baggage | Format::PassThrough)
///     .b3_inject(B3Encoding::Single)
///     .pass_through_header("x-client-trace-id")
///     .priority([Format::B3Single, Format::B3Multi, Format::TraceContext])
///     .build()
///     .unwrap();
/// use opentelemetry::propagation::TextMapPropagator;
/// assert!(p.fields().any(|f| f == "x-client-trace-id"));
/// ```
#[derive(Debug, Clone)]
pub struct MeshPropagatorBuilder {
    extract: Formats,
    inject: Formats,
    priority: Vec<Format>,
    pass_through: Vec<String>,
    max_pass_through_len: usize,
    random_trace_ids: bool,
}

impl Default for MeshPropagatorBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MeshPropagator {
    /// The preset for Istio / Envoy meshes: extracts traceparent/tracestate, baggage, B3
    /// single, B3 multi and the pass-through headers; injects traceparent/tracestate,
    /// baggage, the B3 multi headers and the pass-through headers.
    pub fn istio() -> Self {
        Self::builder_istio()
            .build()
            .expect("the Istio preset is a valid configuration")
    }

    /// A builder starting from the Istio preset.
    pub fn builder_istio() -> MeshPropagatorBuilder {
        MeshPropagatorBuilder::new()
            .extract(Formats::ISTIO_EXTRACT)
            .inject(Formats::ISTIO_INJECT)
    }

    /// A builder starting from nothing (no format extracted or injected).
    pub fn builder() -> MeshPropagatorBuilder {
        MeshPropagatorBuilder::new()
    }
}

impl MeshPropagatorBuilder {
    /// Nothing extracted or injected; `x-request-id` and `x-ot-span-context` are the
    /// pass-through names (used once [`Format::PassThrough`] is enabled).
    pub fn new() -> Self {
        MeshPropagatorBuilder {
            extract: Formats::NONE,
            inject: Formats::NONE,
            priority: DEFAULT_PRIORITY.to_vec(),
            pass_through: vec![
                format::name::X_REQUEST_ID.to_owned(),
                format::name::X_OT_SPAN_CONTEXT.to_owned(),
            ],
            max_pass_through_len: passthrough::DEFAULT_MAX_LEN,
            random_trace_ids: true,
        }
    }

    /// Sets the formats read from incoming requests.
    pub fn extract(mut self, formats: impl Into<Formats>) -> Self {
        self.extract = formats.into();
        self
    }

    /// Sets the formats written to outgoing requests.
    pub fn inject(mut self, formats: impl Into<Formats>) -> Self {
        self.inject = formats.into();
        self
    }

    /// Sets how B3 is written (replacing any B3 choice in [`inject`](Self::inject)).
    pub fn b3_inject(mut self, encoding: B3Encoding) -> Self {
        let base = self
            .inject
            .without(Format::B3Single)
            .without(Format::B3Multi);
        self.inject = match encoding {
            B3Encoding::Single => base.with(Format::B3Single),
            B3Encoding::Multi => base.with(Format::B3Multi),
            B3Encoding::Both => base | Formats::B3,
        };
        self
    }

    /// Adds a pass-through header name (case-insensitive), e.g. `x-client-trace-id`.
    pub fn pass_through_header(mut self, name: impl Into<String>) -> Self {
        let name = name.into().to_ascii_lowercase();
        if !self.pass_through.contains(&name) {
            self.pass_through.push(name);
        }
        self
    }

    /// Replaces the pass-through header names.
    pub fn pass_through_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.pass_through.clear();
        names
            .into_iter()
            .fold(self, |b, name| b.pass_through_header(name))
    }

    /// Bound on one pass-through value in bytes (default 512); longer values are dropped.
    /// All the names at this length must fit in
    /// [`PASS_THROUGH_BUDGET`](passthrough::PASS_THROUGH_BUDGET), else [`build`](Self::build)
    /// fails with [`BuildError::PassThroughBudget`].
    pub fn max_pass_through_len(mut self, bytes: usize) -> Self {
        self.max_pass_through_len = bytes;
        self
    }

    /// The order in which trace formats win when they disagree. Formats left out follow in
    /// the default order (traceparent, B3 single, B3 multi, Jaeger, OpenTracing, X-Ray).
    pub fn priority(mut self, order: impl IntoIterator<Item = Format>) -> Self {
        self.priority = order.into_iter().collect();
        self
    }

    /// Whether this process makes random trace ids (the SDK's default id generator does),
    /// so that traces it starts carry the W3C Level 2 `random` flag. Default true.
    pub fn random_trace_ids(mut self, random: bool) -> Self {
        self.random_trace_ids = random;
        self
    }

    /// Checks the configuration and builds the propagator.
    pub fn build(self) -> Result<MeshPropagator, BuildError> {
        let mut priority = Vec::with_capacity(DEFAULT_PRIORITY.len());
        for f in self.priority {
            if !f.is_trace() || priority.contains(&f) {
                return Err(BuildError::Priority(f));
            }
            priority.push(f);
        }
        for f in DEFAULT_PRIORITY {
            if !priority.contains(&f) {
                priority.push(f);
            }
        }
        let mut names = Vec::with_capacity(self.pass_through.len());
        for name in self.pass_through {
            if format::OWNED.contains(&name.as_str())
                || format::OWNED_PREFIXES.iter().any(|p| name.starts_with(p))
            {
                return Err(BuildError::ReservedHeaderName(name));
            }
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BuildError::InvalidHeaderName(name))?;
            names.push(header);
        }
        let pass_through_max: usize = names
            .iter()
            .map(|n| passthrough::line_len(n.as_str(), self.max_pass_through_len))
            .sum();
        if self.inject.contains(Format::PassThrough)
            && pass_through_max > passthrough::PASS_THROUGH_BUDGET
        {
            return Err(BuildError::PassThroughBudget(pass_through_max));
        }
        let mut fields = Vec::new();
        for f in self.inject.iter() {
            match f {
                Format::PassThrough => fields.extend(names.iter().map(|n| n.as_str().to_owned())),
                f => fields.extend(f.injected().iter().map(|&n| n.to_owned())),
            }
        }
        let mut first_bytes = [false; 256];
        // Only the names of the extracted formats: a request's other headers are passed over
        // on one lookup.
        for name in self
            .extract
            .iter()
            .flat_map(|f| f.read().iter().copied())
            .chain(names.iter().map(HeaderName::as_str))
        {
            first_bytes[usize::from(name.as_bytes()[0])] = true;
        }
        Ok(MeshPropagator {
            cfg: Arc::new(Config {
                first_bytes,
                extract: self.extract,
                inject: self.inject,
                priority: std::array::from_fn(|i| priority[i]),
                pass_through: names,
                max_pass_through_len: self.max_pass_through_len,
                random_trace_ids: self.random_trace_ids,
                fields,
            }),
        })
    }
}
