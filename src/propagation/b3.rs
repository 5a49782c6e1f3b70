//! B3 (Zipkin): the single `b3` header and the `x-b3-*` multi headers.

use super::{hex, ows};

pub use super::format::name::{
    B3, X_B3_FLAGS, X_B3_PARENTSPANID, X_B3_SAMPLED, X_B3_SPANID, X_B3_TRACEID,
};

/// A B3 sampling state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamplingState {
    /// `1`: record and report.
    Accept,
    /// `0`: do not record.
    Deny,
    /// `d` / `x-b3-flags: 1`: forced trace; implies accept and must be passed on as debug.
    Debug,
    /// No decision was sent: the receiver (our local sampler) decides.
    Deferred,
}

impl SamplingState {
    /// Does this state mean "sampled" once a decision is needed now?
    /// `Deferred` answers `None`: it is not a decision.
    pub fn is_sampled(self) -> Option<bool> {
        match self {
            SamplingState::Accept | SamplingState::Debug => Some(true),
            SamplingState::Deny => Some(false),
            SamplingState::Deferred => None,
        }
    }
}

/// A B3 context with ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct B3Context {
    /// Trace id; a 64-bit id is held left-padded with zeros.
    pub trace_id: u128,
    /// True when the trace id arrived as 16 hex digits (and so must leave as 16).
    pub trace_id_64bit: bool,
    /// The caller's span id.
    pub span_id: u64,
    /// The caller's parent span id, if it sent a non-zero one.
    pub parent_span_id: Option<u64>,
    /// The sampling state.
    pub sampling: SamplingState,
}

/// What a B3 header set carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B3 {
    /// A full context.
    Context(B3Context),
    /// Only a sampling decision (`b3: 0|1|d`, or `x-b3-sampled`/`x-b3-flags` without ids).
    /// Never `Deferred`.
    SamplingOnly(SamplingState),
}

/// Why a B3 header set was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum B3Error {
    /// Empty header, or the wrong number of `-` separated fields.
    #[error("b3 header has the wrong number of fields")]
    Fields,
    /// The trace id is not 16 or 32 lowercase hex digits.
    #[error("b3 trace id is not 16 or 32 lowercase hex digits")]
    InvalidTraceId,
    /// The trace id is all zeros.
    #[error("b3 trace id is all zeros")]
    ZeroTraceId,
    /// The span id is not 16 lowercase hex digits.
    #[error("b3 span id is not 16 lowercase hex digits")]
    InvalidSpanId,
    /// The span id is all zeros.
    #[error("b3 span id is all zeros")]
    ZeroSpanId,
    /// The parent span id is not 16 lowercase hex digits.
    #[error("b3 parent span id is not 16 lowercase hex digits")]
    InvalidParentSpanId,
    /// The sampling state is not `0`, `1` or `d` (`b3`), or not `1`, `0`, `true` or `false`
    /// in any case (`x-b3-sampled`).
    #[error("b3 sampling state is not 0, 1 or d (b3), or 1, 0, true or false (x-b3-sampled)")]
    InvalidSampling,
    /// A trace id without a span id or the reverse.
    #[error("x-b3-traceid and x-b3-spanid must come together")]
    IdsNotPaired,
    /// The header came more than once.
    #[error("b3 header sent more than once")]
    Duplicate,
}

fn trace_id(v: &[u8]) -> Result<(u128, bool), B3Error> {
    if v.len() != 16 && v.len() != 32 {
        return Err(B3Error::InvalidTraceId);
    }
    match hex::decode_u128(v) {
        Some(0) => Err(B3Error::ZeroTraceId),
        Some(id) => Ok((id, v.len() == 16)),
        None => Err(B3Error::InvalidTraceId),
    }
}

fn span_id(v: &[u8]) -> Result<u64, B3Error> {
    if v.len() != 16 {
        return Err(B3Error::InvalidSpanId);
    }
    match hex::decode_u64(v) {
        Some(0) => Err(B3Error::ZeroSpanId),
        Some(id) => Ok(id),
        None => Err(B3Error::InvalidSpanId),
    }
}

fn parent_span_id(v: &[u8]) -> Result<Option<u64>, B3Error> {
    if v.len() != 16 {
        return Err(B3Error::InvalidParentSpanId);
    }
    // An all-zero parent means "no parent".
    hex::decode_u64(v)
        .map(|id| (id != 0).then_some(id))
        .ok_or(B3Error::InvalidParentSpanId)
}

fn single_sampling(v: &[u8]) -> Result<SamplingState, B3Error> {
    match v {
        b"1" => Ok(SamplingState::Accept),
        b"0" => Ok(SamplingState::Deny),
        b"d" => Ok(SamplingState::Debug),
        _ => Err(B3Error::InvalidSampling),
    }
}

/// Parses the single `b3` header.
///
/// ```
/// use meshtrace::propagation::b3::{parse_single, SamplingState, B3};
/// let B3::Context(cx) = parse_single(b"80f198ee56343ba8-e457b5a2e4d86bd1-d").unwrap() else { panic!() };
/// assert!(cx.trace_id_64bit);
/// assert_eq!(cx.sampling, SamplingState::Debug);
/// assert_eq!(parse_single(b"0").unwrap(), B3::SamplingOnly(SamplingState::Deny));
/// ```
pub fn parse_single(value: &[u8]) -> Result<B3, B3Error> {
    let v = ows::trim(value);
    if v.len() == 1 {
        return single_sampling(v).map(B3::SamplingOnly);
    }
    let mut fields = v.split(|&b| b == b'-');
    let (Some(t), Some(s)) = (fields.next(), fields.next()) else {
        return Err(B3Error::Fields);
    };
    let sampling = fields.next();
    let parent = fields.next();
    if fields.next().is_some() {
        return Err(B3Error::Fields);
    }
    let (trace_id, trace_id_64bit) = trace_id(t)?;
    let span_id = span_id(s)?;
    let sampling = match sampling {
        Some(f) => single_sampling(f)?,
        None => SamplingState::Deferred,
    };
    let parent_span_id = match parent {
        Some(p) => parent_span_id(p)?,
        None => None,
    };
    Ok(B3::Context(B3Context {
        trace_id,
        trace_id_64bit,
        span_id,
        parent_span_id,
        sampling,
    }))
}

/// The raw `x-b3-*` values, one per header (`None` when absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct MultiHeaders<'a> {
    /// `x-b3-traceid`
    pub trace_id: Option<&'a [u8]>,
    /// `x-b3-spanid`
    pub span_id: Option<&'a [u8]>,
    /// `x-b3-parentspanid`
    pub parent_span_id: Option<&'a [u8]>,
    /// `x-b3-sampled`
    pub sampled: Option<&'a [u8]>,
    /// `x-b3-flags`
    pub flags: Option<&'a [u8]>,
}

impl MultiHeaders<'_> {
    fn is_empty(&self) -> bool {
        self.trace_id.is_none()
            && self.span_id.is_none()
            && self.parent_span_id.is_none()
            && self.sampled.is_none()
            && self.flags.is_none()
    }
}

/// Parses the multi headers. `Ok(None)` when none of them is present.
///
/// A `x-b3-sampled` value that is none of `1`, `0`, `true`, `false` (any case), the empty
/// one included, makes the whole set invalid, as brave, zipkin-go and go-contrib read it.
///
/// ```
/// use meshtrace::propagation::b3::{parse_multi, B3Error, MultiHeaders, SamplingState, B3};
/// let h = MultiHeaders { sampled: Some(b"True"), ..Default::default() };
/// assert_eq!(parse_multi(&h).unwrap(), Some(B3::SamplingOnly(SamplingState::Accept)));
/// let h = MultiHeaders { sampled: Some(b"yes"), ..Default::default() };
/// assert_eq!(parse_multi(&h), Err(B3Error::InvalidSampling));
/// ```
pub fn parse_multi(h: &MultiHeaders<'_>) -> Result<Option<B3>, B3Error> {
    if h.is_empty() {
        return Ok(None);
    }
    let sampled = match h.sampled.map(ows::trim) {
        None => SamplingState::Deferred,
        Some(b"1") => SamplingState::Accept,
        Some(b"0") => SamplingState::Deny,
        Some(v) if v.eq_ignore_ascii_case(b"true") => SamplingState::Accept,
        Some(v) if v.eq_ignore_ascii_case(b"false") => SamplingState::Deny,
        Some(_) => return Err(B3Error::InvalidSampling),
    };
    let sampling = if h.flags.map(ows::trim) == Some(b"1") {
        SamplingState::Debug
    } else {
        sampled
    };
    match (h.trace_id, h.span_id) {
        (Some(t), Some(s)) => {
            let (trace_id, trace_id_64bit) = trace_id(ows::trim(t))?;
            let span_id = span_id(ows::trim(s))?;
            let parent_span_id = match h.parent_span_id {
                Some(p) => parent_span_id(ows::trim(p))?,
                None => None,
            };
            Ok(Some(B3::Context(B3Context {
                trace_id,
                trace_id_64bit,
                span_id,
                parent_span_id,
                sampling,
            })))
        }
        (None, None) => Ok(match sampling {
            SamplingState::Deferred => None,
            state => Some(B3::SamplingOnly(state)),
        }),
        _ => Err(B3Error::IdsNotPaired),
    }
}

/// Largest single header: 32 + 1 + 16 + 2.
pub(crate) const SINGLE_MAX: usize = 51;

/// Writes a trace id as 16 or 32 hex digits into `buf`, returning the used part.
#[inline]
pub(crate) fn write_trace_id(trace_id: u128, narrow: bool, buf: &mut [u8; 32]) -> &[u8] {
    if narrow {
        hex::encode_into(trace_id, &mut buf[..16]);
        &buf[..16]
    } else {
        hex::encode_into(trace_id, &mut buf[..]);
        &buf[..]
    }
}

/// Writes the single header `{trace}-{span}[-{state}]`; the parent is never written.
pub(crate) fn write_single(
    trace_id: u128,
    narrow: bool,
    span_id: u64,
    sampling: SamplingState,
    out: &mut [u8; SINGLE_MAX],
) -> usize {
    let tlen = if narrow { 16 } else { 32 };
    hex::encode_into(trace_id, &mut out[..tlen]);
    out[tlen] = b'-';
    hex::encode_into(u128::from(span_id), &mut out[tlen + 1..tlen + 17]);
    let mut n = tlen + 17;
    let state = match sampling {
        SamplingState::Accept => Some(b'1'),
        SamplingState::Deny => Some(b'0'),
        SamplingState::Debug => Some(b'd'),
        SamplingState::Deferred => None,
    };
    if let Some(s) = state {
        out[n] = b'-';
        out[n + 1] = s;
        n += 2;
    }
    n
}
