//! Pass-through headers: values the mesh needs forwarded byte-for-byte
//! (`x-request-id`, `x-ot-span-context`, and any extras the user names).

use super::format::name;
pub use super::format::{X_OT_SPAN_CONTEXT, X_REQUEST_ID};
use super::{b3, baggage, jaeger, traceparent, xray};
use http::{HeaderName, HeaderValue};

/// Default bound on one pass-through value, in bytes.
pub const DEFAULT_MAX_LEN: usize = 512;

/// Most bytes every header one inject writes may take together, each line counted as
/// HTTP/1.1 sends it: name, `: `, value, CRLF.
pub const MAX_INJECTED_BYTES: usize = 16 * 1024;

/// The bytes of one header line as HTTP/1.1 sends it.
pub const fn line_len(name: &str, value_len: usize) -> usize {
    name.len() + 2 + value_len + 2
}

/// The most the trace formats and baggage write, each at its largest (`x-b3-sampled` and
/// `x-b3-flags` both counted, though only one is sent; Jaeger's `uberctx-*` and
/// OpenTracing's `ot-baggage-*` headers share the `baggage` line's allotment, see
/// [`BAGGAGE_ALLOTMENT`]): 13,070 bytes.
const FORMATS_MAX: usize = line_len(name::TRACEPARENT, 55)
    + line_len(name::TRACESTATE, traceparent::MAX_TRACESTATE_BYTES)
    + line_len(name::B3, b3::SINGLE_MAX)
    + line_len(name::X_B3_TRACEID, 32)
    + line_len(name::X_B3_SPANID, 16)
    + line_len(name::X_B3_SAMPLED, 1)
    + line_len(name::X_B3_FLAGS, 1)
    + BAGGAGE_ALLOTMENT
    + line_len(name::UBER_TRACE_ID, jaeger::MAX_LEN)
    + line_len(name::OT_TRACER_TRACEID, 16)
    + line_len(name::OT_TRACER_SPANID, 16)
    + line_len(name::OT_TRACER_SAMPLED, "false".len())
    // `Root=1-{8}-{24};Parent={16};Sampled=1`, then `;` and the fields passed on.
    + line_len(name::X_AMZN_TRACE_ID, 74 + 1 + xray::MAX_OTHER_LEN);

/// What the baggage may take of an inject, in every encoding together: the `baggage` line at
/// its largest. Jaeger's `uberctx-*` and OpenTracing's `ot-baggage-*` headers get what the
/// `baggage` line left of it; members that do not fit are not written in them (they still go
/// out in `baggage` when that is injected).
pub(crate) const BAGGAGE_ALLOTMENT: usize = line_len(name::BAGGAGE, baggage::MAX_BYTES);

/// Room left in [`MAX_INJECTED_BYTES`] for the pass-through headers (3,314 bytes): the
/// builder refuses names and a [`max_pass_through_len`] whose lines could pass it, so that
/// every inject stays under 16 KiB by construction. The default (`x-request-id` and
/// `x-ot-span-context`, 512 bytes each) takes 1,061.
///
/// [`max_pass_through_len`]: crate::MeshPropagatorBuilder::max_pass_through_len
pub const PASS_THROUGH_BUDGET: usize = MAX_INJECTED_BYTES - FORMATS_MAX;

/// Is this value fit to forward: 1..=`max_len` bytes of visible ASCII, space or tab?
/// Anything else (CR, LF, NUL, other controls, non-ASCII) is dropped, never forwarded.
#[inline]
pub fn is_forwardable(value: &[u8], max_len: usize) -> bool {
    !value.is_empty() && value.len() <= max_len && forwardable_bytes(value)
}

/// Every byte is visible ASCII, space or tab. Eight bytes at a time: a word with no byte
/// below 0x20, none at or above 0x7f passes at once; any other word (a tab, or a byte to
/// reject) is looked at byte by byte.
#[inline]
fn forwardable_bytes(value: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let byte_ok = |b: &u8| (0x20..0x7f).contains(b) || *b == b'\t';
    let mut words = value.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_ne_bytes(word.try_into().expect("eight bytes"));
        // With no high bit set (checked first), `x - 0x20` per byte borrows, setting a high
        // bit, only from a byte below 0x20; `x + 1` per byte sets one only at 0x7f.
        let below_space = x.wrapping_sub(ONES * 0x20) & !x;
        let delete = x.wrapping_add(ONES);
        if (x | below_space | delete) & HIGH != 0 && !word.iter().all(byte_ok) {
            return false;
        }
    }
    words.remainder().iter().all(byte_ok)
}

/// The pass-through values taken from an incoming request: in the order of the configured
/// names (the same order whichever path extracted them), one value per name: the first line
/// received, if it was fit to forward.
///
/// ```
/// use meshtrace::MeshPropagator;
/// use meshtrace::MeshContextExt;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-request-id", "5f1c4e2a-8d7b-4c1e-9a3f-2b6d8e0f1a2b".parse().unwrap());
/// let cx = MeshPropagator::istio().extract_from_headers(&headers);
/// let id = cx.mesh().unwrap().pass_through().request_id().unwrap();
/// assert_eq!(id, "5f1c4e2a-8d7b-4c1e-9a3f-2b6d8e0f1a2b");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassThrough {
    entries: Vec<(HeaderName, HeaderValue)>,
}

impl PassThrough {
    /// The first value of a header, if any.
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.entries
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every value of a header held: one at most, the first line received.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a HeaderValue> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The `x-request-id` value, if the request carried one.
    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.get(super::format::name::X_REQUEST_ID)
    }

    /// All names and values.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.entries.iter().map(|(n, v)| (n, v))
    }

    /// How many values are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no value is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Orders entries by the position of their name in `names` (a stable sort, so values
    /// of one name keep the order received).
    pub(crate) fn order_by(&mut self, names: &[HeaderName]) {
        if self.entries.len() > 1 {
            self.entries
                .sort_by_key(|(n, _)| names.iter().position(|c| c == n));
        }
    }

    /// Adds a value, if it is fit to forward (see [`is_forwardable`]); returns whether it was
    /// kept. Extraction adds one value per name at most: the first line received.
    pub fn push(&mut self, name: HeaderName, value: HeaderValue, max_len: usize) -> bool {
        let ok = is_forwardable(value.as_bytes(), max_len);
        if ok {
            self.entries.push((name, value));
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(value: &[u8]) -> bool {
        value
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) || b == b'\t')
    }

    #[test]
    fn word_check_agrees_with_the_byte_check() {
        // Every byte value at every position of values of 1 to 24 bytes.
        for len in 1..=24 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut value = vec![b'a'; len];
                    value[at] = b;
                    assert_eq!(
                        forwardable_bytes(&value),
                        naive(&value),
                        "{b:#x} at {at} of {len}"
                    );
                    // And after a byte the word check passes over only byte by byte.
                    if at > 0 {
                        value[at - 1] = b'\t';
                        assert_eq!(forwardable_bytes(&value), naive(&value));
                    }
                }
            }
        }
    }
}
