//! Pass-through headers: values the mesh needs forwarded byte-for-byte
//! (`x-request-id`, `x-ot-span-context`, and any extras the user names).

use http::{HeaderName, HeaderValue};

/// Envoy's request id: forwarded untouched on every outgoing call.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The OpenTracing / Lightstep span context: forwarded untouched.
pub const X_OT_SPAN_CONTEXT: HeaderName = HeaderName::from_static("x-ot-span-context");
/// Default bound on one pass-through value, in bytes.
pub const DEFAULT_MAX_LEN: usize = 512;

/// Is every byte visible ASCII, space or tab (what `HeaderValue::to_str` accepts)?
///
/// Checks eight bytes at a time: this runs over every trace and pass-through value of
/// every request, and almost every value passes.
#[inline]
pub(crate) fn is_text(v: &[u8]) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let byte_ok = |b: &u8| (0x20..0x7f).contains(b) || *b == b'\t';
    let mut chunks = v.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A high bit marks a byte below 0x20 (first term) or at or above 0x7f (second);
        // a marked chunk is checked byte by byte, which also lets tabs through.
        let below = x.wrapping_sub(LOW * 0x20) & !x;
        let above = x.wrapping_add(LOW) | x;
        if (below | above) & HIGH != 0 && !chunk.iter().all(byte_ok) {
            return false;
        }
    }
    chunks.remainder().iter().all(byte_ok)
}

/// Is this value fit to forward: 1..=`max_len` bytes of visible ASCII, space or tab?
/// Anything else (CR, LF, NUL, other controls, non-ASCII) is dropped, never forwarded.
#[inline]
pub fn is_forwardable(value: &[u8], max_len: usize) -> bool {
    !value.is_empty() && value.len() <= max_len && is_text(value)
}

#[cfg(test)]
mod tests {
    use super::is_text;

    #[test]
    fn is_text_agrees_with_a_byte_loop() {
        let slow = |v: &[u8]| v.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t');
        for b in 0..=255u8 {
            for pos in 0..17 {
                let mut v = vec![b'a'; 17];
                v[pos] = b;
                assert_eq!(is_text(&v), slow(&v), "byte {b:#x} at {pos}");
                assert_eq!(is_text(&v[..pos + 1]), slow(&v[..pos + 1]));
            }
        }
    }
}

/// The pass-through values taken from an incoming request: in the order of the configured
/// names, and as received within one name (the same order whichever path extracted them).
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

    /// Every value of a header, in the order received.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a HeaderValue> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The `x-request-id` value, if the request carried one.
    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.get(X_REQUEST_ID.as_str())
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

    /// Adds a value, if it is fit to forward (see [`is_forwardable`]); returns whether it was kept.
    pub fn push(&mut self, name: HeaderName, value: HeaderValue, max_len: usize) -> bool {
        let ok = is_forwardable(value.as_bytes(), max_len);
        if ok {
            self.entries.push((name, value));
        }
        ok
    }
}
