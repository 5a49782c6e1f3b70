//! The formats, and every header name they read or write, each written once here.
//!
//! A name is a [`HeaderName`] (what a `HeaderMap` takes), built from its `&str` form in
//! [`name`] (what `match` arms, [`Extractor`] and [`Injector`] take).
//!
//! [`Extractor`]: opentelemetry::propagation::Extractor
//! [`Injector`]: opentelemetry::propagation::Injector

use http::HeaderName;
use std::fmt;
use std::ops::BitOr;

/// The header names as `&str`.
pub mod name {
    /// W3C trace parent.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace state.
    pub const TRACESTATE: &str = "tracestate";
    /// W3C baggage.
    pub const BAGGAGE: &str = "baggage";
    /// The single B3 header.
    pub const B3: &str = "b3";
    /// B3 multi-header trace id.
    pub const X_B3_TRACEID: &str = "x-b3-traceid";
    /// B3 multi-header span id.
    pub const X_B3_SPANID: &str = "x-b3-spanid";
    /// B3 multi-header parent span id: read, never injected.
    pub const X_B3_PARENTSPANID: &str = "x-b3-parentspanid";
    /// B3 multi-header sampling decision.
    pub const X_B3_SAMPLED: &str = "x-b3-sampled";
    /// B3 multi-header debug flag.
    pub const X_B3_FLAGS: &str = "x-b3-flags";
    /// Envoy's request id: forwarded untouched on every outgoing call.
    pub const X_REQUEST_ID: &str = "x-request-id";
    /// The OpenTracing / Lightstep span context: forwarded untouched.
    pub const X_OT_SPAN_CONTEXT: &str = "x-ot-span-context";
    /// Jaeger's trace context.
    pub const UBER_TRACE_ID: &str = "uber-trace-id";
    /// Prefix of Jaeger's baggage headers (`uberctx-{key}`).
    pub const UBERCTX_PREFIX: &str = "uberctx-";
    /// OpenTracing trace id.
    pub const OT_TRACER_TRACEID: &str = "ot-tracer-traceid";
    /// OpenTracing span id.
    pub const OT_TRACER_SPANID: &str = "ot-tracer-spanid";
    /// OpenTracing sampling decision.
    pub const OT_TRACER_SAMPLED: &str = "ot-tracer-sampled";
    /// Prefix of OpenTracing's baggage headers (`ot-baggage-{key}`).
    pub const OT_BAGGAGE_PREFIX: &str = "ot-baggage-";
    /// AWS X-Ray's trace header (`X-Amzn-Trace-Id`; header names are case-insensitive).
    pub const X_AMZN_TRACE_ID: &str = "x-amzn-trace-id";
}

/// W3C trace parent.
pub const TRACEPARENT: HeaderName = HeaderName::from_static(name::TRACEPARENT);
/// W3C trace state.
pub const TRACESTATE: HeaderName = HeaderName::from_static(name::TRACESTATE);
/// W3C baggage.
pub const BAGGAGE: HeaderName = HeaderName::from_static(name::BAGGAGE);
/// The single B3 header.
pub const B3: HeaderName = HeaderName::from_static(name::B3);
/// B3 multi-header trace id.
pub const X_B3_TRACEID: HeaderName = HeaderName::from_static(name::X_B3_TRACEID);
/// B3 multi-header span id.
pub const X_B3_SPANID: HeaderName = HeaderName::from_static(name::X_B3_SPANID);
/// B3 multi-header parent span id: read, never injected.
pub const X_B3_PARENTSPANID: HeaderName = HeaderName::from_static(name::X_B3_PARENTSPANID);
/// B3 multi-header sampling decision.
pub const X_B3_SAMPLED: HeaderName = HeaderName::from_static(name::X_B3_SAMPLED);
/// B3 multi-header debug flag.
pub const X_B3_FLAGS: HeaderName = HeaderName::from_static(name::X_B3_FLAGS);
/// Envoy's request id: forwarded untouched on every outgoing call.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static(name::X_REQUEST_ID);
/// The OpenTracing / Lightstep span context: forwarded untouched.
pub const X_OT_SPAN_CONTEXT: HeaderName = HeaderName::from_static(name::X_OT_SPAN_CONTEXT);
/// Jaeger's trace context.
pub const UBER_TRACE_ID: HeaderName = HeaderName::from_static(name::UBER_TRACE_ID);
/// OpenTracing trace id.
pub const OT_TRACER_TRACEID: HeaderName = HeaderName::from_static(name::OT_TRACER_TRACEID);
/// OpenTracing span id.
pub const OT_TRACER_SPANID: HeaderName = HeaderName::from_static(name::OT_TRACER_SPANID);
/// OpenTracing sampling decision.
pub const OT_TRACER_SAMPLED: HeaderName = HeaderName::from_static(name::OT_TRACER_SAMPLED);
/// AWS X-Ray's trace header.
pub const X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static(name::X_AMZN_TRACE_ID);

/// The headers the trace and baggage formats own: a pass-through name may not be one of
/// them, and the extract walk looks closer only at names that start like one of these (or
/// like a pass-through name).
pub(super) const OWNED: [&str; 14] = [
    name::TRACEPARENT,
    name::TRACESTATE,
    name::BAGGAGE,
    name::B3,
    name::X_B3_TRACEID,
    name::X_B3_SPANID,
    name::X_B3_PARENTSPANID,
    name::X_B3_SAMPLED,
    name::X_B3_FLAGS,
    name::UBER_TRACE_ID,
    name::OT_TRACER_TRACEID,
    name::OT_TRACER_SPANID,
    name::OT_TRACER_SAMPLED,
    name::X_AMZN_TRACE_ID,
];

/// Whether `name` carries only trace context (ids, sampling, trace state): every header the
/// formats own but `baggage` and the Jaeger and OpenTracing baggage prefixes. What a call
/// outside a client's outbound scope may still get.
pub fn is_trace_context_header(name: &str) -> bool {
    name != self::name::BAGGAGE && OWNED.contains(&name)
}

/// Prefixes of the baggage headers the Jaeger and OpenTracing formats own.
pub(super) const OWNED_PREFIXES: [&str; 2] = [name::UBERCTX_PREFIX, name::OT_BAGGAGE_PREFIX];

/// A propagation format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// W3C `traceparent` + `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// B3 single header `b3`.
    B3Single,
    /// B3 multi headers `x-b3-*`.
    B3Multi,
    /// Pass-through headers (`x-request-id`, `x-ot-span-context`, extras).
    PassThrough,
    /// Jaeger `uber-trace-id`, with baggage in `uberctx-*`.
    Jaeger,
    /// OpenTracing `ot-tracer-*`, with baggage in `ot-baggage-*`.
    OtTrace,
    /// AWS X-Ray `X-Amzn-Trace-Id`.
    XRay,
}

impl Format {
    /// The format's name as `OTEL_PROPAGATORS` spells it (`passthrough` for pass-through).
    ///
    /// ```
    /// assert_eq!(meshtrace::Format::B3Multi.as_str(), "b3multi");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::TraceContext => "tracecontext",
            Format::Baggage => "baggage",
            Format::B3Single => "b3",
            Format::B3Multi => "b3multi",
            Format::PassThrough => "passthrough",
            Format::Jaeger => "jaeger",
            Format::OtTrace => "ottrace",
            Format::XRay => "xray",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Format::TraceContext => 1,
            Format::Baggage => 2,
            Format::B3Single => 4,
            Format::B3Multi => 8,
            Format::PassThrough => 16,
            Format::Jaeger => 32,
            Format::OtTrace => 64,
            Format::XRay => 128,
        }
    }

    /// Does the format carry a trace context (and so take part in the priority)?
    pub(super) const fn is_trace(self) -> bool {
        matches!(
            self,
            Format::TraceContext
                | Format::B3Single
                | Format::B3Multi
                | Format::Jaeger
                | Format::OtTrace
                | Format::XRay
        )
    }

    /// The headers the format writes on inject; pass-through writes its configured names.
    pub(super) const fn injected(self) -> &'static [&'static str] {
        match self {
            Format::TraceContext => &[name::TRACEPARENT, name::TRACESTATE],
            Format::Baggage => &[name::BAGGAGE],
            Format::B3Single => &[name::B3],
            Format::B3Multi => &[
                name::X_B3_TRACEID,
                name::X_B3_SPANID,
                name::X_B3_SAMPLED,
                name::X_B3_FLAGS,
            ],
            Format::Jaeger => &[name::UBER_TRACE_ID],
            Format::OtTrace => &[
                name::OT_TRACER_TRACEID,
                name::OT_TRACER_SPANID,
                name::OT_TRACER_SAMPLED,
            ],
            Format::XRay => &[name::X_AMZN_TRACE_ID],
            Format::PassThrough => &[],
        }
    }

    /// The fixed header names the format reads (B3 multi also reads `x-b3-parentspanid`;
    /// Jaeger and OpenTracing also read their baggage prefixes).
    pub(super) const fn read(self) -> &'static [&'static str] {
        match self {
            Format::B3Multi => &[
                name::X_B3_TRACEID,
                name::X_B3_SPANID,
                name::X_B3_PARENTSPANID,
                name::X_B3_SAMPLED,
                name::X_B3_FLAGS,
            ],
            Format::Jaeger => &[name::UBER_TRACE_ID, name::UBERCTX_PREFIX],
            Format::OtTrace => &[
                name::OT_TRACER_TRACEID,
                name::OT_TRACER_SPANID,
                name::OT_TRACER_SAMPLED,
                name::OT_BAGGAGE_PREFIX,
            ],
            f => f.injected(),
        }
    }
}

/// A set of [`Format`]s.
///
/// ```
/// use meshtrace::{Format, Formats};
/// let f = Formats::TRACE_CONTEXT | Format::B3Multi;
/// assert!(f.contains(Format::B3Multi) && !f.contains(Format::B3Single));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Formats(u8);

impl Formats {
    /// No format.
    pub const NONE: Formats = Formats(0);
    /// W3C trace context.
    pub const TRACE_CONTEXT: Formats = Formats(Format::TraceContext.bit());
    /// W3C baggage.
    pub const BAGGAGE: Formats = Formats(Format::Baggage.bit());
    /// B3 single and multi.
    pub const B3: Formats = Formats(Format::B3Single.bit() | Format::B3Multi.bit());
    /// Pass-through headers.
    pub const PASS_THROUGH: Formats = Formats(Format::PassThrough.bit());
    /// Jaeger, OpenTracing and X-Ray: the formats of older clients and AWS load balancers.
    pub const LEGACY: Formats =
        Formats(Format::Jaeger.bit() | Format::OtTrace.bit() | Format::XRay.bit());
    /// Every format.
    pub const ALL: Formats = Formats(255);
    /// What the Istio preset extracts: W3C, B3 and pass-through (not [`LEGACY`](Self::LEGACY)).
    pub const ISTIO_EXTRACT: Formats = Formats(31);
    /// What the Istio preset injects: what it extracts but the B3 single header.
    pub const ISTIO_INJECT: Formats = Formats(31 & !Format::B3Single.bit());

    /// Is `format` in the set?
    pub const fn contains(self, format: Format) -> bool {
        self.0 & format.bit() != 0
    }

    /// The set with `format` added.
    pub const fn with(self, format: Format) -> Formats {
        Formats(self.0 | format.bit())
    }

    /// The set with `format` removed.
    pub const fn without(self, format: Format) -> Formats {
        Formats(self.0 & !format.bit())
    }

    /// Is the set empty?
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(super) fn iter(self) -> impl Iterator<Item = Format> {
        [
            Format::TraceContext,
            Format::Baggage,
            Format::B3Single,
            Format::B3Multi,
            Format::PassThrough,
            Format::Jaeger,
            Format::OtTrace,
            Format::XRay,
        ]
        .into_iter()
        .filter(move |f| self.contains(*f))
    }
}

impl From<Format> for Formats {
    fn from(f: Format) -> Self {
        Formats(f.bit())
    }
}

impl<T: Into<Formats>> BitOr<T> for Formats {
    type Output = Formats;
    fn bitor(self, rhs: T) -> Formats {
        Formats(self.0 | rhs.into().0)
    }
}

impl BitOr for Format {
    type Output = Formats;
    fn bitor(self, rhs: Format) -> Formats {
        Formats(self.bit() | rhs.bit())
    }
}

impl fmt::Debug for Formats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// How B3 is written on inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum B3Encoding {
    /// The single `b3` header (OpenTelemetry's default).
    Single,
    /// The `x-b3-*` headers (what Istio's documentation lists).
    Multi,
    /// Both.
    Both,
}
