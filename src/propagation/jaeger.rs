//! Jaeger: `uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}` and baggage in
//! `uberctx-{key}` headers (SPECS.md section 7).

use super::b3::SamplingState;
use super::{hex, ows, percent};

pub use super::format::name::{UBERCTX_PREFIX, UBER_TRACE_ID};

/// Flag bit: sampled.
pub const FLAG_SAMPLED: u8 = 0x1;
/// Flag bit: debug (implies sampled).
pub const FLAG_DEBUG: u8 = 0x2;

/// A Jaeger context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JaegerContext {
    /// Trace id; a shorter id is held left-padded with zeros.
    pub trace_id: u128,
    /// The caller's span id.
    pub span_id: u64,
    /// `Accept`, `Deny` or `Debug`: Jaeger always sends a decision.
    pub sampling: SamplingState,
}

/// Why an `uber-trace-id` header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JaegerError {
    /// Not four `:` (or `%3A`) separated fields.
    #[error("uber-trace-id does not have four `:` separated fields")]
    Fields,
    /// The trace id is not 1 to 32 lowercase hex digits.
    #[error("uber-trace-id trace id is not 1 to 32 lowercase hex digits")]
    InvalidTraceId,
    /// The trace id is all zeros.
    #[error("uber-trace-id trace id is all zeros")]
    ZeroTraceId,
    /// The span id is not 1 to 16 lowercase hex digits.
    #[error("uber-trace-id span id is not 1 to 16 lowercase hex digits")]
    InvalidSpanId,
    /// The span id is all zeros.
    #[error("uber-trace-id span id is all zeros")]
    ZeroSpanId,
    /// The flags are not one or two lowercase hex digits.
    #[error("uber-trace-id flags are not one or two lowercase hex digits")]
    InvalidFlags,
}

/// Splits at `:` and at its URL-encoded form `%3A` / `%3a`; `None` unless four fields.
fn fields(v: &[u8]) -> Option<[&[u8]; 4]> {
    let mut out: [&[u8]; 4] = [&[]; 4];
    let (mut n, mut start, mut i) = (0, 0, 0);
    while i < v.len() {
        let sep = match v[i] {
            b':' => 1,
            b'%' if v.get(i + 1) == Some(&b'3') && matches!(v.get(i + 2), Some(b'A' | b'a')) => 3,
            _ => 0,
        };
        if sep == 0 {
            i += 1;
            continue;
        }
        *out.get_mut(n)? = &v[start..i];
        n += 1;
        i += sep;
        start = i;
    }
    *out.get_mut(n)? = &v[start..];
    (n == 3).then_some(out)
}

/// Parses an `uber-trace-id` value. The parent span id is deprecated in Jaeger and ignored;
/// flag bits other than sampled and debug are ignored.
///
/// ```
/// use meshtrace::propagation::jaeger::parse_uber_trace_id;
/// use meshtrace::SamplingState;
/// let cx = parse_uber_trace_id(b"80f198ee56343ba8%3Ae457b5a2e4d86bd1%3A0%3A3").unwrap();
/// assert_eq!(cx.trace_id, 0x80f198ee56343ba8);
/// assert_eq!(cx.sampling, SamplingState::Debug);
/// ```
pub fn parse_uber_trace_id(value: &[u8]) -> Result<JaegerContext, JaegerError> {
    let [t, s, _parent, f] = fields(ows::trim(value)).ok_or(JaegerError::Fields)?;
    let trace_id = match hex::decode_u128(t) {
        Some(0) => return Err(JaegerError::ZeroTraceId),
        Some(id) => id,
        None => return Err(JaegerError::InvalidTraceId),
    };
    let span_id = match hex::decode_u64(s) {
        Some(0) => return Err(JaegerError::ZeroSpanId),
        Some(id) => id,
        None => return Err(JaegerError::InvalidSpanId),
    };
    let flags = match f.len() {
        1 | 2 => hex::decode_u64(f).ok_or(JaegerError::InvalidFlags)?,
        _ => return Err(JaegerError::InvalidFlags),
    };
    let sampling = if flags & u64::from(FLAG_DEBUG) != 0 {
        SamplingState::Debug
    } else if flags & u64::from(FLAG_SAMPLED) != 0 {
        SamplingState::Accept
    } else {
        SamplingState::Deny
    };
    Ok(JaegerContext {
        trace_id,
        span_id,
        sampling,
    })
}

/// Largest `uber-trace-id` written: 32 + 1 + 16 + 3 + 1.
pub(crate) const MAX_LEN: usize = 53;

/// Writes `{32 hex}:{16 hex}:0:{flags}`. Jaeger cannot say "deferred": a deferred decision
/// goes out as `0` (not sampled), the only value that is not a decision to record.
pub(crate) fn write_uber_trace_id(
    trace_id: u128,
    span_id: u64,
    sampling: SamplingState,
    out: &mut [u8; MAX_LEN],
) {
    hex::encode_into(trace_id, &mut out[..32]);
    out[32] = b':';
    hex::encode_into(u128::from(span_id), &mut out[33..49]);
    out[49..52].copy_from_slice(b":0:");
    out[52] = match sampling {
        SamplingState::Debug => b'3',
        SamplingState::Accept => b'1',
        SamplingState::Deny | SamplingState::Deferred => b'0',
    };
}

/// An `uberctx-*` header's value, URL-decoded; `None` when it is not UTF-8.
pub(crate) fn decode_baggage_value(value: &[u8]) -> Option<String> {
    std::str::from_utf8(ows::trim(value))
        .ok()
        .map(percent::decode)
}

/// Appends a baggage value URL-encoded (everything but RFC 3986 unreserved characters).
pub(crate) fn encode_baggage_value(value: &str, out: &mut Vec<u8>) {
    percent::encode_into(
        value,
        |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'),
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_it_reads() {
        let mut out = [0u8; MAX_LEN];
        write_uber_trace_id(7, 9, SamplingState::Debug, &mut out);
        let cx = parse_uber_trace_id(&out).unwrap();
        assert_eq!(
            (cx.trace_id, cx.span_id, cx.sampling),
            (7, 9, SamplingState::Debug)
        );
        assert_eq!(fields(b"a:b:c"), None);
        assert_eq!(fields(b"a:b:c:d:e"), None);
    }
}
