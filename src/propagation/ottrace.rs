//! OpenTracing (`ottrace`): `ot-tracer-traceid`, `ot-tracer-spanid`, `ot-tracer-sampled`,
//! and baggage in `ot-baggage-{key}` headers (SPECS.md section 7).

use super::b3::SamplingState;
use super::{hex, ows};

pub use super::format::name::{
    OT_BAGGAGE_PREFIX, OT_TRACER_SAMPLED, OT_TRACER_SPANID, OT_TRACER_TRACEID,
};

/// The raw `ot-tracer-*` values, one per header (`None` when absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct OtHeaders<'a> {
    /// `ot-tracer-traceid`
    pub trace_id: Option<&'a [u8]>,
    /// `ot-tracer-spanid`
    pub span_id: Option<&'a [u8]>,
    /// `ot-tracer-sampled`
    pub sampled: Option<&'a [u8]>,
}

/// An OpenTracing context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtContext {
    /// Trace id; a shorter id is held left-padded with zeros.
    pub trace_id: u128,
    /// The caller's span id.
    pub span_id: u64,
    /// `Accept` or `Deny`; `Deferred` when `ot-tracer-sampled` is absent.
    pub sampling: SamplingState,
}

/// Why the `ot-tracer-*` headers were rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtTraceError {
    /// The trace id is not 1 to 32 lowercase hex digits.
    #[error("ot-tracer-traceid is not 1 to 32 lowercase hex digits")]
    InvalidTraceId,
    /// The trace id is all zeros.
    #[error("ot-tracer-traceid is all zeros")]
    ZeroTraceId,
    /// The span id is not 1 to 16 lowercase hex digits.
    #[error("ot-tracer-spanid is not 1 to 16 lowercase hex digits")]
    InvalidSpanId,
    /// The span id is all zeros.
    #[error("ot-tracer-spanid is all zeros")]
    ZeroSpanId,
    /// `ot-tracer-sampled` is none of `true`, `false`, `1`, `0`.
    #[error("ot-tracer-sampled is none of true, false, 1, 0")]
    InvalidSampled,
    /// A trace id without a span id, the reverse, or a decision without either.
    #[error("ot-tracer-traceid and ot-tracer-spanid must come together")]
    IdsNotPaired,
}

/// Parses the `ot-tracer-*` headers. `Ok(None)` when none of them is present.
///
/// Ids of 16 and 32 digits are what tracers send, but shorter ones are read left-padded:
/// OpenTelemetry Python's `ot-trace` propagator writes ids without their leading zeros.
///
/// ```
/// use meshtrace::propagation::ottrace::{parse, OtHeaders};
/// use meshtrace::SamplingState;
/// let h = OtHeaders {
///     trace_id: Some(b"80f198ee56343ba8"),
///     span_id: Some(b"e457b5a2e4d86bd1"),
///     sampled: Some(b"true"),
/// };
/// assert_eq!(parse(&h).unwrap().unwrap().sampling, SamplingState::Accept);
/// ```
pub fn parse(h: &OtHeaders<'_>) -> Result<Option<OtContext>, OtTraceError> {
    let (t, s) = match (h.trace_id, h.span_id) {
        (Some(t), Some(s)) => (ows::trim(t), ows::trim(s)),
        (None, None) if h.sampled.is_none() => return Ok(None),
        _ => return Err(OtTraceError::IdsNotPaired),
    };
    let trace_id = match hex::decode_u128(t) {
        Some(0) => return Err(OtTraceError::ZeroTraceId),
        Some(id) => id,
        None => return Err(OtTraceError::InvalidTraceId),
    };
    let span_id = match hex::decode_u64(s) {
        Some(0) => return Err(OtTraceError::ZeroSpanId),
        Some(id) => id,
        None => return Err(OtTraceError::InvalidSpanId),
    };
    let sampling = match h.sampled.map(ows::trim) {
        None => SamplingState::Deferred,
        Some(b"true" | b"1") => SamplingState::Accept,
        Some(b"false" | b"0") => SamplingState::Deny,
        Some(_) => return Err(OtTraceError::InvalidSampled),
    };
    Ok(Some(OtContext {
        trace_id,
        span_id,
        sampling,
    }))
}

/// The low 64 bits of the trace id, as 16 hex digits (what OpenTracing tracers read).
pub(crate) fn write_trace_id(trace_id: u128) -> [u8; 16] {
    let mut out = [0u8; 16];
    hex::encode_into(trace_id & u128::from(u64::MAX), &mut out);
    out
}

/// `true` / `false`; `None` for a deferred decision, which is not written.
pub(crate) fn sampled_value(sampling: SamplingState) -> Option<&'static str> {
    sampling
        .is_sampled()
        .map(|sampled| if sampled { "true" } else { "false" })
}

/// An `ot-baggage-*` header's value as sent (no encoding); `None` when it is not UTF-8.
pub(crate) fn decode_baggage_value(value: &[u8]) -> Option<String> {
    std::str::from_utf8(ows::trim(value))
        .ok()
        .map(str::to_owned)
}

/// A baggage value that can go out as an `ot-baggage-*` header unchanged: visible ASCII and
/// inner spaces (the header has no encoding, and surrounding whitespace would be trimmed).
pub(crate) fn fits_header(value: &str) -> bool {
    !value.is_empty()
        && ows::trim_str(value).len() == value.len()
        && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}
