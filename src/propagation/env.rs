//! `OTEL_PROPAGATORS`: the OpenTelemetry environment variable that picks propagators.

use super::{Format, Formats, MeshPropagator, MeshPropagatorBuilder};
use std::str::FromStr;

/// Name of the environment variable.
pub const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";

/// One recognised value of `OTEL_PROPAGATORS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PropagatorName {
    /// `tracecontext`: W3C traceparent and tracestate.
    TraceContext,
    /// `baggage`: W3C baggage.
    Baggage,
    /// `b3`: B3, injected as the single header (extracts single and multi).
    B3,
    /// `b3multi`: B3, injected as the multi headers (extracts single and multi).
    B3Multi,
    /// `jaeger`: Jaeger `uber-trace-id` and `uberctx-*` baggage.
    Jaeger,
    /// `ottrace`: OpenTracing `ot-tracer-*` and `ot-baggage-*` baggage.
    OtTrace,
    /// `xray`: AWS X-Ray `X-Amzn-Trace-Id`.
    XRay,
    /// `none`: no propagation at all.
    None,
    /// `istio` (meshtrace's own): the preset of [`MeshPropagator::istio`](super::MeshPropagator::istio).
    Istio,
    /// `passthrough` (meshtrace's own): `x-request-id`, `x-ot-span-context`.
    PassThrough,
}

impl PropagatorName {
    const ALL: [PropagatorName; 10] = [
        PropagatorName::TraceContext,
        PropagatorName::Baggage,
        PropagatorName::B3,
        PropagatorName::B3Multi,
        PropagatorName::Jaeger,
        PropagatorName::OtTrace,
        PropagatorName::XRay,
        PropagatorName::None,
        PropagatorName::Istio,
        PropagatorName::PassThrough,
    ];

    /// The value as written in the variable (a format's name is its [`Format::as_str`]).
    pub fn as_str(self) -> &'static str {
        match self {
            PropagatorName::TraceContext => Format::TraceContext.as_str(),
            PropagatorName::Baggage => Format::Baggage.as_str(),
            PropagatorName::B3 => Format::B3Single.as_str(),
            PropagatorName::B3Multi => Format::B3Multi.as_str(),
            PropagatorName::Jaeger => Format::Jaeger.as_str(),
            PropagatorName::OtTrace => Format::OtTrace.as_str(),
            PropagatorName::XRay => Format::XRay.as_str(),
            PropagatorName::None => "none",
            PropagatorName::Istio => "istio",
            PropagatorName::PassThrough => Format::PassThrough.as_str(),
        }
    }
}

/// A value of `OTEL_PROPAGATORS` that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PropagatorsError {
    /// Not a propagator name anyone defines.
    #[error("OTEL_PROPAGATORS: unknown propagator `{0}`")]
    Unknown(String),
    /// An empty entry between commas.
    #[error("OTEL_PROPAGATORS: empty entry in `{0}`")]
    EmptyEntry(String),
    /// `none` listed together with real propagators.
    #[error("OTEL_PROPAGATORS: `none` cannot be combined with other propagators")]
    NoneWithOthers,
}

/// A parsed `OTEL_PROPAGATORS` list: recognised names, duplicates removed, order kept.
///
/// ```
/// use meshtrace::propagation::env::{PropagatorList, PropagatorName, PropagatorsError};
/// let list: PropagatorList = "TraceContext, b3multi,tracecontext".parse().unwrap();
/// assert_eq!(list.names(), &[PropagatorName::TraceContext, PropagatorName::B3Multi]);
/// assert_eq!(
///     "tracecontext,ottracer".parse::<PropagatorList>().unwrap_err(),
///     PropagatorsError::Unknown("ottracer".into())
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropagatorList {
    names: Vec<PropagatorName>,
}

impl Default for PropagatorList {
    /// `tracecontext,baggage`, the specification's default.
    fn default() -> Self {
        PropagatorList {
            names: vec![PropagatorName::TraceContext, PropagatorName::Baggage],
        }
    }
}

fn classify(item: &str) -> Result<PropagatorName, PropagatorsError> {
    PropagatorName::ALL
        .into_iter()
        .find(|name| name.as_str().eq_ignore_ascii_case(item))
        .ok_or_else(|| PropagatorsError::Unknown(item.to_owned()))
}

impl PropagatorList {
    /// The names, in the order given.
    pub fn names(&self) -> &[PropagatorName] {
        &self.names
    }

    /// Parses like the specification asks of SDKs: unknown values are
    /// skipped and returned as warnings; an empty or blank string means the default.
    ///
    /// ```
    /// use meshtrace::propagation::env::{PropagatorList, PropagatorName};
    /// let (list, warnings) = PropagatorList::parse_lenient("b3,jaeger,foo,");
    /// assert_eq!(list.names(), &[PropagatorName::B3, PropagatorName::Jaeger]);
    /// assert_eq!(warnings.len(), 2);
    /// ```
    pub fn parse_lenient(value: &str) -> (Self, Vec<PropagatorsError>) {
        let mut warnings = Vec::new();
        if value.trim().is_empty() {
            return (Self::default(), warnings);
        }
        let mut names = Vec::new();
        for item in value.split(',').map(str::trim) {
            if item.is_empty() {
                warnings.push(PropagatorsError::EmptyEntry(value.to_owned()));
                continue;
            }
            match classify(item) {
                Ok(name) if !names.contains(&name) => names.push(name),
                Ok(_) => {}
                Err(e) => warnings.push(e),
            }
        }
        if names.len() > 1 && names.contains(&PropagatorName::None) {
            warnings.push(PropagatorsError::NoneWithOthers);
            names.retain(|n| *n != PropagatorName::None);
        }
        (PropagatorList { names }, warnings)
    }

    /// The formats to extract and inject for this list.
    pub fn formats(&self) -> (Formats, Formats) {
        let (mut extract, mut inject) = (Formats::NONE, Formats::NONE);
        for name in &self.names {
            let (e, i) = match name {
                PropagatorName::TraceContext => (Formats::TRACE_CONTEXT, Formats::TRACE_CONTEXT),
                PropagatorName::Baggage => (Formats::BAGGAGE, Formats::BAGGAGE),
                PropagatorName::B3 => (Formats::B3, Formats::from(Format::B3Single)),
                PropagatorName::B3Multi => (Formats::B3, Formats::from(Format::B3Multi)),
                PropagatorName::Jaeger => (Format::Jaeger.into(), Format::Jaeger.into()),
                PropagatorName::OtTrace => (Format::OtTrace.into(), Format::OtTrace.into()),
                PropagatorName::XRay => (Format::XRay.into(), Format::XRay.into()),
                PropagatorName::None => (Formats::NONE, Formats::NONE),
                PropagatorName::Istio => (Formats::ISTIO_EXTRACT, Formats::ISTIO_INJECT),
                PropagatorName::PassThrough => (Formats::PASS_THROUGH, Formats::PASS_THROUGH),
            };
            extract = extract | e;
            inject = inject | i;
        }
        (extract, inject)
    }

    /// A builder configured for this list.
    pub fn into_builder(self) -> MeshPropagatorBuilder {
        let (extract, inject) = self.formats();
        MeshPropagatorBuilder::new().extract(extract).inject(inject)
    }
}

impl FromStr for PropagatorList {
    type Err = PropagatorsError;

    /// The strict parser: the first value that cannot be honoured is an error.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (list, warnings) = Self::parse_lenient(value);
        match warnings.into_iter().next() {
            Some(err) => Err(err),
            None => Ok(list),
        }
    }
}

impl MeshPropagator {
    /// Configured from `OTEL_PROPAGATORS` as the OpenTelemetry specification says: unset or
    /// empty means `tracecontext,baggage`; unknown values are skipped with a
    /// warning. Use [`try_from_env`](Self::try_from_env) to refuse them instead.
    pub fn from_env() -> Self {
        let value = std::env::var(OTEL_PROPAGATORS).unwrap_or_default();
        let (list, warnings) = PropagatorList::parse_lenient(&value);
        for warning in &warnings {
            warn(warning);
        }
        Self::from_list(list)
    }

    /// Configured from `OTEL_PROPAGATORS`, refusing any value it cannot honour.
    pub fn try_from_env() -> Result<Self, PropagatorsError> {
        let value = std::env::var(OTEL_PROPAGATORS).unwrap_or_default();
        Ok(Self::from_list(value.parse()?))
    }

    fn from_list(list: PropagatorList) -> Self {
        list.into_builder()
            .build()
            .expect("the default pass-through names are valid")
    }
}

fn warn(warning: &PropagatorsError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(%warning, "ignoring OTEL_PROPAGATORS entry");
    #[cfg(not(feature = "tracing"))]
    eprintln!("meshtrace: ignoring OTEL_PROPAGATORS entry: {warning}");
}
